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
