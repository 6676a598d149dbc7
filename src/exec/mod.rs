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
use crate::providers::{ApplyRequest, Provider, SecretValue};
use std::collections::BTreeMap;

use crate::desired::values::SecretSource;
use crate::ledger::fingerprint::FingerprintKey;

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

/// Secret outputs produced during one pass (`kubeconfig`, `private_key`, `smtp_password`),
/// by address, held in memory only until the pass ends.
pub type SecretOutputs = HashMap<Address, BTreeMap<String, SecretValue>>;

/// The values of a resource's secret fields: read from the environment or a file, or taken
/// from the secret output of another resource (produced earlier in this pass, or read again
/// from its cloud where the cloud can give it back). `generate` values are the provider's
/// business and are not resolved here. Errors name the resource and field, never a value.
pub async fn resolve_secrets<P: Provider>(
    r: &crate::desired::Resource,
    desired: &DesiredState,
    ledger: &Ledger,
    outputs: &SecretOutputs,
    provider: &P,
) -> Result<BTreeMap<String, SecretValue>, String> {
    let mut out = BTreeMap::new();
    for &field in crate::plan::planner::secret_fields(r.kind()) {
        let Some(source) = r.spec.secret(field) else {
            continue;
        };
        let value = match source {
            SecretSource::Env(_) | SecretSource::File(_) => {
                SecretValue::new(crate::desired::secrets::read(r, field, source)?)
            }
            SecretSource::Generate(_) => continue,
            SecretSource::Ref(reference) => {
                let from = &reference.address;
                let output = reference.attribute.as_str();
                if let Some(v) = outputs.get(from).and_then(|o| o.get(output)) {
                    v.clone()
                } else {
                    let entry = ledger.resources.get(from);
                    let spec = desired.resources.get(from).map(|x| &x.spec_json);
                    let again = match (
                        entry,
                        Kind::parse(entry.map(|e| e.kind.as_str()).unwrap_or("")),
                    ) {
                        (Some(e), Some(kind)) => provider
                            .secret_output(kind, &e.id, output, spec)
                            .await
                            .map_err(|e| {
                                format!(
                                    "{}: {} `{field}`: reading {from}.{output}: {}",
                                    r.location, r.address, e.message
                                )
                            })?,
                        _ => None,
                    };
                    again.ok_or_else(|| {
                        format!(
                            "{}: {} `{field}` needs {from}.{output}, which its cloud does not give back: it exists only in the pass that creates or rotates {from} (replace it with `provisioner apply --replace {from}` to produce a new one)",
                            r.location, r.address
                        )
                    })?
                }
            }
        };
        out.insert(field.to_string(), value);
    }
    Ok(out)
}

/// Applies every acting change of `plan` in order with `apply`, recording results in
/// `ledger`. A change whose references are still unknown (because what it depends on failed)
/// is skipped and reported. Secret values are resolved as each change needs them, and their
/// keyed fingerprints (with `key`) go to the ledger; the values never do.
pub async fn apply_sequential<P: Provider>(
    plan: &Plan,
    desired: &DesiredState,
    ledger: &mut Ledger,
    live: &LiveState,
    provider: &P,
    key: Option<&FingerprintKey>,
) -> Vec<Outcome> {
    let mut outputs = SecretOutputs::new();
    let no_secrets = BTreeMap::new();
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
                    secrets: &no_secrets,
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
            let secrets = match resolve_secrets(r, desired, ledger, &outputs, provider).await {
                Ok(s) => s,
                Err(e) => {
                    out.push(Outcome {
                        address: address.clone(),
                        action: change.action,
                        result: Err(e),
                    });
                    continue;
                }
            };
            let fingerprints: BTreeMap<String, String> = key
                .map(|k| {
                    secrets
                        .iter()
                        .map(|(f, v)| (f.clone(), k.fingerprint(address, f, v.expose())))
                        .collect()
                })
                .unwrap_or_default();
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
                    secrets: &secrets,
                })
                .await
            {
                Ok(applied) => {
                    attrs.insert(address.clone(), Some(applied.attributes.clone()));
                    if !applied.secrets.is_empty() {
                        outputs.insert(address.clone(), applied.secrets.clone());
                    }
                    ledger.pending.remove(address);
                    ledger.resources.insert(
                        address.clone(),
                        LedgerEntry {
                            kind: kind.key().to_string(),
                            id: applied.id,
                            applied_hash: applied_hash(&known),
                            applied: known,
                            fingerprints,
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
