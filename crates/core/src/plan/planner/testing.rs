//! Builders for the planner's unit tests: a desired state from TOML text, a ledger and a
//! live state from JSON.

use std::path::PathBuf;

use serde_json::Value;

use crate::desired::load::{Loaded, load_text};
use crate::desired::validate::validate;
use crate::desired::{Address, DesiredState};
use crate::ledger::Ledger;
use crate::live::LiveState;

/// A desired state from one file's text.
pub fn desired(toml: &str) -> DesiredState {
    let mut loaded = Loaded::default();
    load_text(PathBuf::from("test.toml"), toml.to_string(), &mut loaded);
    validate(loaded).unwrap_or_else(|e| panic!("{e:?}"))
}

/// A ledger from its JSON form (`lineage` "l" and schema filled in).
pub fn ledger(resources: Value) -> Ledger {
    let mut l = Ledger::new("l");
    l.resources = serde_json::from_value(resources).expect("ledger resources");
    l
}

/// A live state from its JSON form: `{"digitalocean.vpc": {"objects": [...]}, ...}`.
pub fn live(kinds: Value) -> LiveState {
    serde_json::from_value(serde_json::json!({ "kinds": kinds })).expect("live state")
}

/// An address.
pub fn addr(s: &str) -> Address {
    Address::parse(s).expect("address")
}

/// One VPC, `digitalocean.vpc.main`, named `prod`.
pub const VPC: &str = "[digitalocean.vpc.main]\nname = \"prod\"\nregion = \"nyc3\"\n";

/// A ledger entry of `kind` for cloud object `id`.
pub fn entry(kind: &str, id: &str) -> Value {
    serde_json::json!({"kind": kind, "id": id, "applied_hash": ""})
}

/// Plans, panicking on a planning error.
pub fn plan_ok(
    d: &DesiredState,
    l: &Ledger,
    live: &LiveState,
) -> (crate::plan::Plan, crate::plan::PlanReport) {
    crate::plan::plan(d, l, live).unwrap_or_else(|e| panic!("{e}"))
}

/// The change planned for an address.
pub fn change_of<'p>(p: &'p crate::plan::Plan, a: &str) -> &'p crate::plan::Change {
    p.changes
        .iter()
        .find(|c| c.address == addr(a))
        .unwrap_or_else(|| panic!("no change for {a}"))
}
