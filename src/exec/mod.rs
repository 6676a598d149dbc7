//! Carrying out a plan. This is the sequential core — one change at a time, in the plan's
//! order, resolving references from what earlier changes produced and recording each result
//! in the ledger — that the daemon's executor (waves, bounded concurrency, write-ahead
//! intents persisted as it goes) builds on.

use serde_json::Value;

use crate::desired::{Address, DesiredState, Kind};
use crate::ledger::model::applied_hash;
use crate::ledger::{Ledger, LedgerEntry};
use std::collections::HashMap;

use crate::live::{LiveObject, LiveState};
use crate::plan::planner::{Attributes, Resolved, desired_fields, known_fields};
use crate::plan::{Action, Plan};
use crate::providers::{ApplyRequest, Provider};

/// How one change ended.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The resource.
    pub address: Address,
    /// What was attempted.
    pub action: Action,
    /// `Ok` or why not.
    pub result: Result<(), String>,
}

/// The attributes references can read before anything runs: the ledger's record, with what
/// observing saw on top.
pub fn initial_attributes(desired: &DesiredState, ledger: &Ledger, live: &LiveState) -> Attributes {
    let by_id = live_index(live);
    let mut attrs = Attributes::new();
    for address in desired.resources.keys() {
        let Some(e) = ledger.resources.get(address) else {
            attrs.insert(address.clone(), None);
            continue;
        };
        let mut a = e.attributes.clone();
        if let Some(o) = by_id.get(&(e.kind.as_str(), e.id.as_str())) {
            a.extend(o.attributes.clone());
        }
        attrs.insert(address.clone(), Some(a));
    }
    attrs
}

/// Live objects by (`provider.kind`, id): one pass, so lookups stay linear overall.
fn live_index(live: &LiveState) -> HashMap<(&str, &str), &LiveObject> {
    live.kinds
        .iter()
        .flat_map(|(k, o)| {
            o.objects
                .iter()
                .map(move |o| ((k.as_str(), o.id.as_str()), o))
        })
        .collect()
}

/// Applies every acting change of `plan` in order with `apply`, recording results in
/// `ledger`. A change whose references are still unknown (because what it depends on failed)
/// is skipped and reported.
pub async fn apply_sequential<P: Provider>(
    plan: &Plan,
    desired: &DesiredState,
    ledger: &mut Ledger,
    live: &LiveState,
    provider: &P,
) -> Vec<Outcome> {
    let mut attrs = initial_attributes(desired, ledger, live);
    let by_id = live_index(live);
    // Adopted objects the ledger does not know yet: their live attributes.
    for c in &plan.changes {
        if let (Some(id), Some(r)) = (&c.cloud_id, desired.resources.get(&c.address))
            && let Some(o) = by_id.get(&(r.kind().key(), id.as_str()))
        {
            attrs
                .entry(c.address.clone())
                .or_insert(None)
                .get_or_insert_with(Default::default)
                .extend(o.attributes.clone());
        }
    }
    let lineage = ledger.lineage.clone();
    let mut out = Vec::new();
    for change in &plan.changes {
        if !change.action.acts() {
            continue;
        }
        let address = &change.address;
        let result = if change.action == Action::Delete {
            let Some(entry) = ledger.resources.get(address).cloned() else {
                continue;
            };
            let Some(kind) = Kind::parse(&entry.kind) else {
                continue;
            };
            // What was last applied (a bucket's region, say) and the local settings.
            let fields = entry.applied.clone();
            let options = Value::Object(entry.options.clone());
            match provider
                .apply(ApplyRequest {
                    kind,
                    action: Action::Delete,
                    cloud_id: Some(&entry.id),
                    fields: &fields,
                    strategy: None,
                    spec: Some(&options),
                    lineage: &lineage,
                })
                .await
            {
                Ok(_) => {
                    ledger.resources.remove(address);
                    Ok(())
                }
                Err(e) => Err(e.message),
            }
        } else {
            let Some(r) = desired.resources.get(address) else {
                continue;
            };
            let fields = desired_fields(r, &attrs);
            if let Some((name, _)) = fields.iter().find(|(_, v)| **v == Resolved::Unknown) {
                out.push(Outcome {
                    address: address.clone(),
                    action: change.action,
                    result: Err(format!(
                        "skipped: `{name}` refers to something that was not created"
                    )),
                });
                continue;
            }
            let known = known_fields(&fields);
            let kind = r.kind();
            if change.action == Action::Create {
                ledger.pending.insert(
                    address.clone(),
                    crate::ledger::Intent {
                        kind: kind.key().to_string(),
                        key: crate::plan::planner::natural_key(kind, &known).unwrap_or_default(),
                    },
                );
            }
            match provider
                .apply(ApplyRequest {
                    kind,
                    action: change.action,
                    cloud_id: change.cloud_id.as_deref(),
                    fields: &known,
                    strategy: change.strategy,
                    spec: Some(&r.spec_json),
                    lineage: &lineage,
                })
                .await
            {
                Ok(applied) => {
                    attrs.insert(address.clone(), Some(applied.attributes.clone()));
                    ledger.pending.remove(address);
                    ledger.resources.insert(
                        address.clone(),
                        LedgerEntry {
                            kind: kind.key().to_string(),
                            id: applied.id,
                            applied_hash: applied_hash(&known),
                            applied: known,
                            fingerprints: Default::default(),
                            updated_at: applied.updated_at,
                            attributes: applied
                                .attributes
                                .into_iter()
                                .filter(|(_, v)| !v.is_null())
                                .collect::<std::collections::BTreeMap<String, Value>>(),
                            depends_on: r.depends_on.clone(),
                            prevent_destroy: r.lifecycle.prevent_destroy,
                            options: local_options(r),
                        },
                    );
                    Ok(())
                }
                Err(e) => Err(e.message),
            }
        };
        out.push(Outcome {
            address: address.clone(),
            action: change.action,
            result,
        });
    }
    out
}

/// The local settings of a resource (not compared with the cloud, not secret), as the
/// ledger keeps them for a later delete.
fn local_options(r: &crate::desired::Resource) -> serde_json::Map<String, Value> {
    r.kind()
        .fields()
        .iter()
        .filter(|f| {
            f.change == crate::desired::schema::Change::Local
                && !matches!(f.shape, crate::desired::schema::Shape::Secret { .. })
        })
        .filter_map(|f| {
            r.spec_json
                .get(f.name)
                .filter(|v| !v.is_null())
                .map(|v| (f.name.to_string(), v.clone()))
        })
        .collect()
}
