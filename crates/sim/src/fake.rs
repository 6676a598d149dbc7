//! An in-memory cloud for planner tests: applying a plan changes its `LiveState` and the
//! ledger the way a real provider and executor would, so tests can run plan → apply →
//! re-plan and assert convergence. It is a test double: it does no I/O and checks nothing a
//! real API would reject.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use provisioner_engine::desired::kinds::Kind;
use provisioner_engine::desired::{Address, DesiredState};
use provisioner_engine::ledger::model::applied_hash;
use provisioner_engine::ledger::{Ledger, LedgerEntry};
use provisioner_engine::live::{LiveObject, LiveState};
use provisioner_engine::plan::planner::{Resolved, desired_fields, known_fields, secret_fields};
use provisioner_engine::plan::{Action, Plan};

/// The time every fake write is stamped with (the fake has no clock).
pub const FAKE_WRITE_TIME: &str = "2026-01-01T00:00:00Z";

/// A cloud that lives in memory.
#[derive(Clone, Debug, Default)]
pub struct FakeCloud {
    /// What observing returns.
    pub live: LiveState,
    next_id: u64,
}

impl FakeCloud {
    /// A cloud holding `live`.
    pub fn new(live: LiveState) -> Self {
        FakeCloud { live, next_id: 1 }
    }

    fn objects_mut(&mut self, kind: Kind) -> &mut Vec<LiveObject> {
        &mut self.live.kinds.entry(kind.to_string()).or_default().objects
    }

    /// Finds an object by kind and id.
    pub fn object_mut(&mut self, kind: Kind, id: &str) -> Option<&mut LiveObject> {
        self.objects_mut(kind).iter_mut().find(|o| o.id == id)
    }

    /// Removes an object, as someone deleting it by hand would.
    pub fn remove(&mut self, kind: Kind, id: &str) {
        self.objects_mut(kind).retain(|o| o.id != id);
    }

    /// Applies every acting change of `plan`, in order, updating the ledger as it goes.
    pub fn apply(
        &mut self,
        plan: &Plan,
        desired: &DesiredState,
        ledger: &mut Ledger,
    ) -> Result<(), String> {
        let mut attrs = provisioner_engine::exec::initial_attributes(desired, ledger, &self.live);
        for change in &plan.changes {
            let address = &change.address;
            match change.action {
                Action::Create | Action::Replace | Action::Update | Action::Adopt => {
                    let r = desired
                        .resources
                        .get(address)
                        .ok_or_else(|| format!("{address} is not desired"))?;
                    let kind = r.kind();
                    let fields = desired_fields(r, &attrs);
                    if fields.values().any(|v| *v == Resolved::Unknown) {
                        return Err(format!(
                            "{address}: a reference is still unknown when it is applied (bad ordering)"
                        ));
                    }
                    let mut new_fields = known_fields(&fields);
                    if change.action == Action::Replace
                        && let Some(id) = &change.cloud_id
                    {
                        self.remove(kind, id);
                    }
                    let id = match (&change.cloud_id, change.action) {
                        (Some(id), Action::Update | Action::Adopt) => id.clone(),
                        _ => {
                            self.next_id += 1;
                            format!("{}-{}", kind.name(), self.next_id)
                        }
                    };
                    // A new id cannot exist yet: only updates and adoptions look it up, which
                    // keeps applying a first plan of many resources linear.
                    let is_new = !matches!(change.action, Action::Update | Action::Adopt);
                    let existing = if is_new {
                        None
                    } else {
                        self.object_mut(kind, &id).map(|o| o.fields.clone())
                    };
                    if let Some(old) = &existing {
                        // ignore_changes: what someone else owns stays as they left it.
                        for path in &r.lifecycle.ignore_changes {
                            copy_path(old, &mut new_fields, path);
                        }
                    }
                    let attributes = fake_attributes(kind, &id, &new_fields);
                    attrs.insert(address.clone(), Some(attributes.clone()));
                    let object = LiveObject {
                        id: id.clone(),
                        fields: {
                            let mut f = existing.unwrap_or_default();
                            f.extend(new_fields.clone());
                            f
                        },
                        attributes: attributes.clone(),
                        tags: Vec::new(),
                        updated_at: Some(FAKE_WRITE_TIME.into()),
                        ..Default::default()
                    };
                    match self.object_mut(kind, &id).filter(|_| !is_new) {
                        Some(o) => *o = object,
                        None => self.objects_mut(kind).push(object),
                    }
                    let fingerprints = secret_fields(kind)
                        .iter()
                        .filter_map(|f| {
                            desired
                                .secret_fingerprints
                                .get(&format!("{address}.{f}"))
                                .map(|v| (f.to_string(), v.clone()))
                        })
                        .collect();
                    ledger.pending.remove(address);
                    ledger.resources.insert(
                        address.clone(),
                        LedgerEntry {
                            kind: kind.to_string(),
                            id,
                            applied_hash: applied_hash(&new_fields),
                            applied: new_fields,
                            fingerprints,
                            updated_at: Some(FAKE_WRITE_TIME.into()),
                            attributes,
                            depends_on: r.depends_on.clone(),
                            prevent_destroy: r.lifecycle.prevent_destroy,
                            options: Default::default(),
                        },
                    );
                }
                Action::Delete => {
                    let e = ledger
                        .resources
                        .remove(address)
                        .ok_or_else(|| format!("{address} is not in the ledger"))?;
                    if let Some(kind) = Kind::ALL.iter().find(|k| k.to_string() == e.kind) {
                        // Already gone counts as deleted, as with every real provider.
                        self.remove(*kind, &e.id);
                    }
                }
                Action::Orphan | Action::Drift | Action::Conflict | Action::NoOp => {}
            }
        }
        ledger.serial += 1;
        Ok(())
    }
}

fn get_path<'v>(fields: &'v Map<String, Value>, path: &str) -> Option<&'v Value> {
    let mut segs = path.split('.');
    let mut v = fields.get(segs.next()?)?;
    for s in segs {
        v = v.get(s)?;
    }
    Some(v)
}

fn copy_path(from: &Map<String, Value>, to: &mut Map<String, Value>, path: &str) {
    let Some(value) = get_path(from, path).cloned() else {
        return;
    };
    let segs: Vec<&str> = path.split('.').collect();
    let mut cur = to;
    for s in &segs[..segs.len() - 1] {
        let next = cur
            .entry(s.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(m) = next else { return };
        cur = m;
    }
    cur.insert(segs[segs.len() - 1].to_string(), value);
}

/// Plausible values for a kind's exported attributes.
pub fn fake_attributes(
    kind: Kind,
    id: &str,
    fields: &Map<String, Value>,
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

/// Addresses with a ledger entry whose object exists in the fake cloud.
pub fn managed(cloud: &FakeCloud, ledger: &Ledger) -> Vec<Address> {
    ledger
        .resources
        .iter()
        .filter(|(_, e)| {
            Kind::ALL.iter().any(|k| {
                k.to_string() == e.kind && cloud.live.objects(*k).iter().any(|o| o.id == e.id)
            })
        })
        .map(|(a, _)| a.clone())
        .collect()
}
