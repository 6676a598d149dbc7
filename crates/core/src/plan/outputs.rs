//! The root module's outputs (`[output.NAME]`), filled in from what the ledger records: what
//! a pass writes to the ledger's `outputs` and `provisioner output` prints.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::resolve::{AttributeSource, Resolved, resolve};
use crate::desired::DesiredState;
use crate::desired::refs::{Address, RefParts};
use crate::ledger::Ledger;

/// Reads attributes from the ledger's entries.
struct Recorded<'l>(&'l Ledger);

impl AttributeSource for Recorded<'_> {
    fn attribute(&self, r: &RefParts<'_>) -> Option<&Value> {
        self.0
            .resources
            .get(&Address::parse(r.address).ok()?)?
            .attributes
            .get(r.attribute)
    }
}

/// Every declared output, as the ledger's `outputs` holds it: `{ "value": …, "sensitive":
/// bool, "description": … }`, or `{ "unknown": "why", … }` when a reference names a
/// resource or an attribute the ledger has no value for yet (not applied, or failed).
pub fn evaluate(desired: &DesiredState, ledger: &Ledger) -> BTreeMap<String, Value> {
    desired
        .outputs
        .iter()
        .map(|(name, o)| {
            let mut entry = match resolve(&o.value, &Recorded(ledger)) {
                Resolved::Known(v) => json!({ "value": v.into_owned() }),
                Resolved::Unknown => json!({
                    "unknown": "it names a resource or attribute that is not applied yet",
                }),
            };
            entry["sensitive"] = Value::Bool(o.sensitive);
            if let Some(d) = &o.description {
                entry["description"] = Value::String(d.clone());
            }
            (name.clone(), entry)
        })
        .collect()
}
