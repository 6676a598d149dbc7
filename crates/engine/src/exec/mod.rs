//! Carrying out a plan: changes start as soon as the changes they depend on have finished,
//! with a bounded number in flight per provider; references are resolved from what earlier
//! changes produced; a write-ahead intent is persisted before every create and results are
//! persisted as they arrive (coalesced); a failure skips its dependants and nothing else.

use serde_json::Value;

use crate::desired::{Address, DesiredState, Kind};
use crate::ledger::Ledger;
use std::collections::HashMap;

use crate::live::{LiveObject, LiveState};
use crate::plan::planner::Attributes;
use crate::plan::{Action, Plan};
use crate::providers::{Changes, SecretValue};
use std::collections::BTreeMap;

use crate::desired::values::SecretSource;
use crate::ledger::fingerprint::FingerprintKey;

pub mod engine;

pub use engine::{ApplyReport, ExecOptions, Persist, Progress, execute};

/// How one change ended.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The resource.
    pub address: Address,
    /// What was attempted.
    pub action: Action,
    /// `Ok` or why not.
    pub result: Result<(), String>,
    /// True when it was not attempted (something it depends on failed).
    pub skipped: bool,
    /// How long it took.
    pub elapsed: std::time::Duration,
    /// For a failed change the provider attempted: what kind of failure it was (the daemon
    /// waits at least as long as a rate limit asked before its next pass).
    pub failure: Option<crate::providers::Failure>,
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
pub async fn resolve_secrets<P: Changes>(
    r: &crate::desired::Resource,
    desired: &DesiredState,
    ledger: &Ledger,
    outputs: &SecretOutputs,
    provider: &P,
) -> Result<BTreeMap<String, SecretValue>, String> {
    let mut out = BTreeMap::new();
    for (field, source) in r.spec.secret_sources() {
        let value = match source {
            SecretSource::Env(_) | SecretSource::File(_) => {
                SecretValue::new(crate::desired::secrets::read(r, &field, source)?)
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
        out.insert(field, value);
    }
    Ok(out)
}

/// Forgets what the plan says is gone: ledger entries and intents of resources that are no
/// longer desired and got no change (their objects are gone, or belong to another address
/// now), unless their kind could not be observed. Run on the whole plan, before `--target`
/// narrows it.
pub fn forget_dropped(plan: &Plan, desired: &DesiredState, ledger: &mut Ledger, live: &LiveState) {
    let planned: std::collections::HashSet<&Address> =
        plan.changes.iter().map(|c| &c.address).collect();
    let keep = |a: &Address, kind: &str| {
        desired.resources.contains_key(a)
            || planned.contains(a)
            || Kind::parse(kind).is_none_or(|k| !live.is_complete(k))
    };
    // An entry in a scope that could not be observed (one repository, one zone) is kept:
    // whether its object still exists is unknown.
    let unseen_entry = |e: &crate::ledger::LedgerEntry| {
        Kind::parse(&e.kind).is_some_and(|k| {
            live.failed_scopes(k)
                .iter()
                .any(|s| crate::plan::planner::entry_in(e, s))
        })
    };
    let unseen_intent = |i: &crate::ledger::Intent| {
        Kind::parse(&i.kind).is_some_and(|k| {
            live.failed_scopes(k)
                .iter()
                .any(|s| crate::plan::planner::intent_in(k, &i.key, s))
        })
    };
    ledger
        .resources
        .retain(|a, e| keep(a, &e.kind) || unseen_entry(e));
    ledger
        .pending
        .retain(|a, i| keep(a, &i.kind) || unseen_intent(i));
}

/// Applies the desired state's `[[moved]]` hints to the ledger: each `from` the ledger
/// still has is renamed to `to` (unless `to` is managed already). Returns the moves made.
pub fn apply_moves(desired: &DesiredState, ledger: &mut Ledger) -> Vec<(Address, Address)> {
    let mut done = Vec::new();
    for (from, to) in &desired.moved {
        let has = ledger.resources.contains_key(from) || ledger.pending.contains_key(from);
        if has && ledger.rename(from, to).is_ok() {
            done.push((from.clone(), to.clone()));
        }
    }
    done
}

/// Records each desired resource's `prevent_destroy` in its ledger entry, whatever else the
/// plan does: a protection added to a resource that needs no change still holds once its
/// block is deleted from the files (the planner reads the ledger's copy for removed
/// resources). Returns the addresses whose protection changed.
pub fn record_protections(desired: &DesiredState, ledger: &mut Ledger) -> Vec<Address> {
    let mut changed = Vec::new();
    for (address, r) in &desired.resources {
        if let Some(e) = ledger.resources.get_mut(address)
            && e.prevent_destroy != r.lifecycle.prevent_destroy
        {
            e.prevent_destroy = r.lifecycle.prevent_destroy;
            changed.push(address.clone());
        }
    }
    changed
}

/// Applies every acting change of `plan` one at a time, recording results in `ledger` (in
/// memory only): the executor with a concurrency of one and nothing persisted, for tests
/// and tools.
pub async fn apply_sequential<P: Changes>(
    plan: &Plan,
    desired: &DesiredState,
    ledger: &mut Ledger,
    live: &LiveState,
    provider: &P,
    key: Option<&FingerprintKey>,
) -> Vec<Outcome> {
    let options = ExecOptions {
        key,
        ..ExecOptions::sequential()
    };
    forget_dropped(plan, desired, ledger, live);
    Box::pin(execute(
        plan,
        desired,
        ledger,
        live,
        provider,
        &options,
        &mut engine::NoPersist,
        &engine::NoProgress,
    ))
    .await
    .outcomes
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
