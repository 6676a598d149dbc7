//! An in-memory cloud for planner and executor tests: a [`Provider`] of every kind, driven
//! by the real executor ([`provisioner_engine::exec::execute`]), so a test runs plan → apply → re-plan
//! and the ledger it checks is the one the executor recorded (write-ahead intents, the
//! attributes and times the cloud answered, fingerprints, local settings, replacements in
//! the order of their strategy, the deletion of what an interrupted create left).
//!
//! It behaves like a cloud and nothing more: a create gets a new id and the fields sent,
//! plausible attributes ([`fake_attributes`]) and, where the kind has them, secret outputs;
//! an update or adoption stores the fields sent over the old ones; a delete removes the
//! object (one already gone is deleted, as with every real provider). Every write is stamped
//! [`FAKE_WRITE_TIME`], objects of kinds that carry a lineage marker carry the ledger's, and
//! each request is kept in [`FakeCloud::requests`]. It does no I/O, checks nothing a real
//! API would reject, and keeps no superseded parts: a renewal in place replaces the secret
//! output at once, so nothing is ever retiring.
//!
//! It serves every kind of every provider under one name, `fake`, and stands in for the
//! whole registry (`provisioner_engine::providers::Clouds`) rather than taking a slot in it: the
//! executor takes any `Changes`, which every [`Provider`] is, and the registry lists only the
//! clouds a process can really talk to.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde_json::Value;

use provisioner_engine::desired::DesiredState;
use provisioner_engine::desired::kinds::Kind;
use provisioner_engine::exec::engine::{NoPersist, NoProgress};
use provisioner_engine::exec::{ApplyReport, ExecOptions, execute, forget_dropped};
use provisioner_engine::ledger::Ledger;
use provisioner_engine::ledger::fingerprint::FingerprintKey;
use provisioner_engine::live::{KindObservation, LiveObject, LiveState, ObserveStatus};
use provisioner_engine::plan::{Action, Plan};
use provisioner_engine::providers::{
    Applied, ApplyRequest, ObserveScope, Provider, ProviderError, SecretValue,
};

/// The time every fake write is stamped with (the fake has no clock).
pub const FAKE_WRITE_TIME: &str = "2026-01-01T00:00:00Z";

/// A cloud that lives in memory. The state sits behind a lock because [`Provider`] takes
/// `&self`; the methods that take `&mut self` (a hand in the console) need no lock.
#[derive(Debug, Default)]
pub struct FakeCloud {
    state: Mutex<State>,
}

#[derive(Clone, Debug, Default)]
struct State {
    live: LiveState,
    /// The number of the last id given out.
    last_id: u64,
    /// Secret values by kind and id: the outputs made and the values written.
    secrets: BTreeMap<(Kind, String), BTreeMap<String, SecretValue>>,
    requests: Vec<Request>,
}

/// One change a [`FakeCloud`] was asked to make, as the executor asked it.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// What was asked (`Replace` only for a renewal in place).
    pub action: Action,
    /// The kind.
    pub kind: Kind,
    /// The object: the id given to a create, the id asked for otherwise.
    pub id: String,
    /// The resource's spec as sent: the desired spec, or for a delete the local settings
    /// the ledger kept (`force_delete`, `recovery_window_days`).
    pub spec: Option<Value>,
}

impl Clone for FakeCloud {
    fn clone(&self) -> Self {
        FakeCloud {
            state: Mutex::new(self.lock().clone()),
        }
    }
}

impl FakeCloud {
    /// A cloud holding `live`.
    pub fn new(live: LiveState) -> Self {
        FakeCloud {
            state: Mutex::new(State {
                live,
                ..State::default()
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock left whole objects: go on with them.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn state_mut(&mut self) -> &mut State {
        self.state.get_mut().unwrap_or_else(PoisonError::into_inner)
    }

    /// A copy of everything the cloud holds: what observing every kind returns.
    pub fn live(&self) -> LiveState {
        self.lock().live.clone()
    }

    /// Everything the cloud holds, for a test to change by hand.
    pub fn live_mut(&mut self) -> &mut LiveState {
        &mut self.state_mut().live
    }

    /// Finds an object by kind and id, for a test to change by hand.
    pub fn object_mut(&mut self, kind: Kind, id: &str) -> Option<&mut LiveObject> {
        objects_mut(&mut self.state_mut().live, kind)
            .iter_mut()
            .find(|o| o.id == id)
    }

    /// Removes an object, as someone deleting it by hand would.
    pub fn remove(&mut self, kind: Kind, id: &str) {
        objects_mut(&mut self.state_mut().live, kind).retain(|o| o.id != id);
    }

    /// Every change asked of the cloud so far, in the order asked.
    pub fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    /// Carries out `plan` with the real executor, as one pass does after planning: entries
    /// the plan says are gone are forgotten, then every change runs (as many at a time as
    /// their dependencies allow), recording results in `ledger`. `key` fingerprints the
    /// secret values written, as the daemon's key does. The error lists every change that
    /// did not succeed.
    pub async fn apply_plan(
        &self,
        plan: &Plan,
        desired: &DesiredState,
        ledger: &mut Ledger,
        key: Option<&FingerprintKey>,
    ) -> Result<ApplyReport, String> {
        let live = self.live();
        forget_dropped(plan, desired, ledger, &live);
        let options = ExecOptions {
            // No bound: a wave's changes start together, in plan order (each is done before
            // the next one is polled: nothing here waits), so ids are given in plan order.
            concurrency: provisioner_engine::providers::PROVIDERS
                .iter()
                .map(|p| (*p, usize::MAX))
                .collect(),
            key,
            ..ExecOptions::sequential()
        };
        let report = Box::pin(execute(
            plan,
            desired,
            ledger,
            &live,
            self,
            &options,
            &mut NoPersist,
            &NoProgress,
        ))
        .await;
        if report.succeeded() {
            Ok(report)
        } else {
            Err(failures(&report))
        }
    }

    /// [`FakeCloud::apply_plan`] on a runtime of its own, for tests that are not async.
    pub fn apply_plan_blocking(
        &self,
        plan: &Plan,
        desired: &DesiredState,
        ledger: &mut Ledger,
        key: Option<&FingerprintKey>,
    ) -> Result<ApplyReport, String> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| format!("starting a runtime: {e}"))?
            .block_on(self.apply_plan(plan, desired, ledger, key))
    }
}

/// The changes of `report` that did not succeed, one a line.
fn failures(report: &ApplyReport) -> String {
    let mut lines: Vec<String> = report
        .outcomes
        .iter()
        .filter_map(|o| {
            o.result
                .as_ref()
                .err()
                .map(|e| format!("{} {}: {e}", o.action.as_str(), o.address))
        })
        .collect();
    if let Some(e) = &report.ledger_error {
        lines.push(format!("ledger: {e}"));
    }
    lines.join("\n")
}

fn objects_mut(live: &mut LiveState, kind: Kind) -> &mut Vec<LiveObject> {
    &mut live
        .kinds
        .entry(kind.key().to_string())
        .or_default()
        .objects
}

impl State {
    fn new_id(&mut self, kind: Kind) -> String {
        self.last_id += 1;
        format!("{}-{}", kind.name(), self.last_id)
    }

    /// The secret outputs of a create or a renewal: the value written where the kind
    /// exports it (a Secrets Manager secret's `value`), else one made up for this id and
    /// write (a generated value, a kubeconfig, a private key).
    fn make_secrets(&mut self, req: &ApplyRequest<'_>, id: &str) -> BTreeMap<String, SecretValue> {
        let write = self.requests.len();
        let outputs: BTreeMap<String, SecretValue> = req
            .kind
            .exports()
            .iter()
            .filter(|e| e.secret)
            .map(|e| {
                let value = req.secrets.get(e.name).cloned().unwrap_or_else(|| {
                    SecretValue::new(format!("{}-of-{id}-{write}", e.name).into_bytes())
                });
                (e.name.to_string(), value)
            })
            .collect();
        let stored = self.secrets.entry((req.kind, id.to_string())).or_default();
        stored.extend(req.secrets.iter().map(|(k, v)| (k.clone(), v.clone())));
        stored.extend(outputs.iter().map(|(k, v)| (k.clone(), v.clone())));
        outputs
    }
}

impl Provider for FakeCloud {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn kinds(&self) -> Vec<Kind> {
        Kind::ALL.to_vec()
    }

    /// Every kind of the scope, of every provider, read completely.
    async fn observe(&self, scope: &ObserveScope<'_>) -> BTreeMap<Kind, KindObservation> {
        let state = self.lock();
        scope
            .kinds
            .iter()
            .map(|&kind| {
                let observation = KindObservation {
                    status: ObserveStatus::Complete,
                    objects: state.live.objects(kind).to_vec(),
                    failed_scopes: Vec::new(),
                };
                (kind, observation)
            })
            .collect()
    }

    async fn apply(&self, req: ApplyRequest<'_>) -> Result<Applied, ProviderError> {
        let mut state = self.lock();
        let state = &mut *state;
        let kind = req.kind;
        let id = match (req.action, req.cloud_id) {
            (Action::Create, _) => state.new_id(kind),
            (_, Some(id)) => id.to_string(),
            (action, None) => {
                return Err(ProviderError::msg(format!(
                    "{} of a {kind} without an id",
                    action.as_str()
                )));
            }
        };
        state.requests.push(Request {
            action: req.action,
            kind,
            id: id.clone(),
            spec: req.spec.cloned(),
        });
        let objects = objects_mut(&mut state.live, kind);
        let object = match req.action {
            Action::Delete => {
                // Already gone counts as deleted, as with every real provider.
                objects.retain(|o| o.id != id);
                state.secrets.remove(&(kind, id));
                return Ok(Applied::default());
            }
            Action::Create => {
                let tags = if kind.carries_lineage() && !req.lineage.is_empty() {
                    vec![provisioner_engine::live::lineage_tag(req.lineage)]
                } else {
                    Vec::new()
                };
                objects.push(LiveObject {
                    id: id.clone(),
                    tags,
                    ..LiveObject::default()
                });
                // The one just pushed: no lookup, so a first apply of many objects stays
                // linear.
                objects.last_mut()
            }
            Action::Update | Action::Adopt | Action::Replace => {
                objects.iter_mut().find(|o| o.id == id)
            }
            Action::Orphan | Action::Drift | Action::Conflict | Action::NoOp => {
                return Err(ProviderError::msg(format!(
                    "{} is not a change a cloud makes",
                    req.action.as_str()
                )));
            }
        };
        let Some(object) = object else {
            return Err(ProviderError::msg(format!("{kind} {id} not found")));
        };
        object
            .fields
            .extend(req.fields.iter().map(|(k, v)| (k.clone(), v.clone())));
        object.attributes = fake_attributes(kind, &id, &object.fields);
        object.updated_at = Some(FAKE_WRITE_TIME.into());
        let attributes = object.attributes.clone();
        // A create or a renewal makes new secret outputs; an update or adoption keeps them,
        // and stores a value written (an Actions secret's).
        let secrets = if matches!(req.action, Action::Create | Action::Replace) {
            state.make_secrets(&req, &id)
        } else {
            let stored = state.secrets.entry((kind, id.clone())).or_default();
            stored.extend(req.secrets.iter().map(|(k, v)| (k.clone(), v.clone())));
            BTreeMap::new()
        };
        Ok(Applied {
            id,
            attributes,
            secrets,
            updated_at: Some(FAKE_WRITE_TIME.into()),
            retiring: Vec::new(),
        })
    }

    /// Gives back a stored output where the cloud can (a kubeconfig, a secret's value),
    /// never one it cannot (a private key, a secret access key).
    async fn secret_output(
        &self,
        kind: Kind,
        id: &str,
        output: &str,
        _spec: Option<&Value>,
    ) -> Result<Option<SecretValue>, ProviderError> {
        if kind.unrecoverable(output).is_some() {
            return Ok(None);
        }
        Ok(self
            .lock()
            .secrets
            .get(&(kind, id.to_string()))
            .and_then(|s| s.get(output))
            .cloned())
    }
}

/// Plausible values for a kind's exported attributes.
pub fn fake_attributes(
    kind: Kind,
    id: &str,
    fields: &serde_json::Map<String, Value>,
) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let name = fields
        .get("name")
        .or_else(|| fields.get("bucket"))
        .or_else(|| fields.get("domain"))
        .cloned();
    for e in kind.exports() {
        if e.secret {
            continue;
        }
        let v = match e.name {
            "id" => Value::String(id.into()),
            "urn" => Value::String(format!("do:{}:{id}", kind.name())),
            "name" | "domain" => name.clone().unwrap_or_else(|| Value::String(id.into())),
            "arn" => Value::String(format!(
                "arn:aws:{}:us-east-1:123456789012:{id}",
                kind.name()
            )),
            "ip" | "ipv4" => Value::String("203.0.113.10".into()),
            "dkim_tokens" => Value::from(vec!["tok1", "tok2", "tok3"]),
            "dkim_cname_targets" => Value::from(vec![
                "tok1.dkim.amazonses.com",
                "tok2.dkim.amazonses.com",
                "tok3.dkim.amazonses.com",
            ]),
            other => Value::String(format!("{other}-of-{id}")),
        };
        out.insert(e.name.to_string(), v);
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use provisioner_core::plan::planner::testing::{VPC, desired, entry, ledger, live};

    #[tokio::test]
    async fn observe_answers_every_kind_of_the_scope_of_every_provider() {
        let d = desired(&format!(
            "{VPC}\n[github.actions_variable.v]\nrepository = \"o/r\"\nname = \"V\"\nvalue = \"x\"\n"
        ));
        // A kind only the ledger still knows is in the scope too.
        let l = ledger(json!({ "aws.sns_topic.t": entry("aws.sns_topic", "arn-t") }));
        let cloud = FakeCloud::new(live(json!({
            "digitalocean.vpc": { "objects": [{ "id": "vpc-1", "fields": { "name": "prod" } }] },
            "digitalocean.domain": { "objects": [{ "id": "example.com" }] },
        })));
        let seen = cloud.observe(&ObserveScope::new(&d, &l)).await;
        assert_eq!(
            seen.keys().copied().collect::<Vec<_>>(),
            [Kind::DoVpc, Kind::AwsSnsTopic, Kind::GhActionsVariable]
        );
        assert!(
            seen.values()
                .all(|o| o.status == ObserveStatus::Complete && o.failed_scopes.is_empty())
        );
        assert_eq!(seen[&Kind::DoVpc].objects[0].id, "vpc-1");
        assert!(seen[&Kind::AwsSnsTopic].objects.is_empty());
    }
}
