//! `plan`: desired state + ledger + live state → the changes that make the clouds match.
//! Pure and deterministic: no I/O, no clock (the live state's `observed_at` is "now"), every
//! map a BTreeMap, every list sorted.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::model::{
    Action, Change, FieldChange, Note, PLAN_FORMAT_VERSION, Plan, PlanError, PlanReport,
    ReplaceStrategy, Shown,
};
use crate::desired::kinds::Kind;
use crate::desired::refs::{Reference, Segment, parse_template};
use crate::desired::schema::{Change as Policy, FieldInfo, Shape};
use crate::desired::values::{SecretSource, parse_k8s_version};
use crate::desired::{Address, DesiredState, Mode, Resource};
use crate::ledger::{Ledger, LedgerEntry};
use crate::live::{LiveObject, LiveState};

/// Plans the changes that bring the clouds to the desired state.
pub fn plan(
    desired: &DesiredState,
    ledger: &Ledger,
    live: &LiveState,
) -> Result<(Plan, PlanReport), PlanError> {
    Planner::new(desired, ledger, live).run()
}

/// Fields of a kind that identify its cloud object (matched case-insensitively where the
/// cloud is: GitHub names are stored upper-case, repositories are case-insensitive).
pub fn key_fields(kind: Kind) -> &'static [&'static str] {
    use Kind::*;
    match kind {
        DoVpc | DoKubernetesCluster | DoLoadBalancer | DoFirewall | DoDomain | DoSpacesBucket
        | DoSpacesKey | DoProject => &["name"],
        DoDomainRecord => &["domain", "type", "name", "data"],
        DoCdnEndpoint => &["origin"],
        AwsS3Bucket => &["bucket"],
        AwsSnsTopic | AwsSesConfigurationSet | AwsIamSmtpUser | AwsSecretsmanagerSecret => {
            &["name"]
        }
        AwsSesDomainIdentity => &["domain"],
        GhActionsSecret => &["repository", "name"],
        GhEnvironmentSecret => &["repository", "environment", "name"],
        GhActionsVariable => &["repository", "environment", "name"],
        GhDeployKey => &["repository", "title"],
    }
}

/// The natural key of an object from its fields; `None` when a key field is unknown.
pub fn natural_key(kind: Kind, fields: &Map<String, Value>) -> Option<String> {
    let mut parts = Vec::new();
    for f in key_fields(kind) {
        let text = match fields.get(*f) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) if s.contains("${") => return None,
            Some(Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
        };
        let text = match (kind.provider(), *f) {
            ("github", "name") => text.to_ascii_uppercase(),
            ("github", "repository") => text.to_ascii_lowercase(),
            _ => text,
        };
        parts.push(text);
    }
    Some(parts.join("\u{1f}"))
}

/// Whether a kind's replacement can create the new object before deleting the old one.
pub fn replace_strategy(kind: Kind) -> ReplaceStrategy {
    match kind {
        // Nothing unique stops two of these existing side by side for a moment.
        Kind::GhDeployKey
        | Kind::DoDomainRecord
        | Kind::DoSpacesKey
        | Kind::DoLoadBalancer
        | Kind::DoFirewall => ReplaceStrategy::CreateBeforeDestroy,
        // Names are unique in the account (or the key fields are the identity).
        _ => ReplaceStrategy::DestroyFirst,
    }
}

/// Attribute values a reference may read, per address; `None` = known after apply.
pub type Attributes = BTreeMap<Address, Option<BTreeMap<String, Value>>>;

/// A value after resolving references: known, or decided by this apply.
#[derive(Clone, Debug, PartialEq)]
pub enum Resolved {
    /// Fully known.
    Known(Value),
    /// Holds a reference to something created in this apply.
    Unknown,
}

/// Resolves every `${...}` in a JSON value.
pub fn resolve(value: &Value, attrs: &Attributes) -> Resolved {
    match value {
        Value::String(s) if s.contains("${") => resolve_str(s, attrs),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for i in items {
                match resolve(i, attrs) {
                    Resolved::Known(v) => out.push(v),
                    Resolved::Unknown => return Resolved::Unknown,
                }
            }
            Resolved::Known(Value::Array(out))
        }
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                match resolve(v, attrs) {
                    Resolved::Known(v) => {
                        out.insert(k.clone(), v);
                    }
                    Resolved::Unknown => return Resolved::Unknown,
                }
            }
            Resolved::Known(Value::Object(out))
        }
        other => Resolved::Known(other.clone()),
    }
}

fn lookup(r: &Reference, attrs: &Attributes) -> Option<Value> {
    let values = attrs.get(&r.address)?.as_ref()?;
    let v = values.get(&r.attribute)?;
    match r.index {
        Some(i) => v.as_array()?.get(i).cloned(),
        None => Some(v.clone()),
    }
}

fn resolve_str(s: &str, attrs: &Attributes) -> Resolved {
    let Ok(segments) = parse_template(s) else {
        return Resolved::Known(Value::String(s.into()));
    };
    if let [Segment::Ref(r)] = segments.as_slice() {
        return lookup(r, attrs).map_or(Resolved::Unknown, Resolved::Known);
    }
    let mut out = String::new();
    for seg in segments {
        match seg {
            Segment::Literal(l) => out.push_str(&l),
            Segment::Ref(r) => match lookup(&r, attrs) {
                Some(Value::String(v)) => out.push_str(&v),
                Some(v) => out.push_str(&v.to_string()),
                None => return Resolved::Unknown,
            },
        }
    }
    Resolved::Known(Value::String(out))
}

/// The fields of a resource that are compared with the cloud: not secret, not local.
pub fn compared_fields(kind: Kind) -> Vec<FieldInfo> {
    kind.fields()
        .into_iter()
        .filter(|f| f.change != Policy::Local && !matches!(f.shape, Shape::Secret { .. }))
        .collect()
}

/// The secret fields of a kind.
pub fn secret_fields(kind: Kind) -> Vec<&'static str> {
    kind.fields()
        .into_iter()
        .filter(|f| matches!(f.shape, Shape::Secret { .. }))
        .map(|f| f.name)
        .collect()
}

/// The desired values of the compared fields, with references resolved where possible.
/// Unset optional fields are left out: the cloud's default is accepted.
pub fn desired_fields(resource: &Resource, attrs: &Attributes) -> BTreeMap<String, Resolved> {
    desired_fields_of(
        resource,
        &serde_json::to_value(&resource.spec).unwrap_or(Value::Null),
        attrs,
    )
}

fn desired_fields_of(
    resource: &Resource,
    spec: &Value,
    attrs: &Attributes,
) -> BTreeMap<String, Resolved> {
    let mut out = BTreeMap::new();
    for f in compared_fields(resource.kind()) {
        match spec.get(f.name) {
            None | Some(Value::Null) => {}
            Some(v) => {
                out.insert(f.name.to_string(), resolve(v, attrs));
            }
        }
    }
    out
}

/// Known desired fields as a JSON object (unknown ones left out).
pub fn known_fields(fields: &BTreeMap<String, Resolved>) -> Map<String, Value> {
    fields
        .iter()
        .filter_map(|(k, v)| match v {
            Resolved::Known(v) => Some((k.clone(), v.clone())),
            Resolved::Unknown => None,
        })
        .collect()
}

struct Planner<'a> {
    desired: &'a DesiredState,
    ledger: &'a Ledger,
    live: &'a LiveState,
    by_id: BTreeMap<Kind, BTreeMap<&'a str, &'a LiveObject>>,
    by_key: BTreeMap<Kind, BTreeMap<String, &'a LiveObject>>,
    attrs: Attributes,
    changes: BTreeMap<Address, Change>,
    notes: Vec<Note>,
    protected: Vec<(Address, String)>,
    /// Objects a desired resource matched: never deleted or orphaned under another address.
    claimed: BTreeSet<(Kind, String)>,
    /// Kinds whose observation failed.
    failed: BTreeSet<Kind>,
    /// Ledger addresses by (kind, cloud id).
    owners: BTreeMap<(String, String), Vec<&'a Address>>,
}

impl<'a> Planner<'a> {
    fn new(desired: &'a DesiredState, ledger: &'a Ledger, live: &'a LiveState) -> Self {
        let mut by_id: BTreeMap<Kind, BTreeMap<&str, &LiveObject>> = BTreeMap::new();
        let mut by_key: BTreeMap<Kind, BTreeMap<String, &LiveObject>> = BTreeMap::new();
        for kind in Kind::ALL {
            for o in live.objects(*kind) {
                by_id.entry(*kind).or_default().insert(o.id.as_str(), o);
                if let Some(k) = natural_key(*kind, &o.fields) {
                    by_key.entry(*kind).or_default().entry(k).or_insert(o);
                }
            }
        }
        Planner {
            desired,
            ledger,
            live,
            by_id,
            by_key,
            attrs: BTreeMap::new(),
            changes: BTreeMap::new(),
            notes: Vec::new(),
            protected: Vec::new(),
            claimed: BTreeSet::new(),
            failed: Kind::ALL
                .iter()
                .copied()
                .filter(|k| !live.is_complete(*k))
                .collect(),
            owners: {
                let mut owners: BTreeMap<(String, String), Vec<&Address>> = BTreeMap::new();
                for (a, e) in &ledger.resources {
                    owners
                        .entry((e.kind.clone(), e.id.clone()))
                        .or_default()
                        .push(a);
                }
                owners
            },
        }
    }

    fn note(&mut self, subject: impl ToString, message: impl Into<String>) {
        self.notes.push(Note {
            subject: subject.to_string(),
            message: message.into(),
        });
    }

    fn run(mut self) -> Result<(Plan, PlanReport), PlanError> {
        for kind in Kind::ALL {
            if let Some(reason) = self.live.failure(*kind) {
                let has_any = self.desired.resources.values().any(|r| r.kind() == *kind)
                    || self
                        .ledger
                        .resources
                        .values()
                        .any(|e| e.kind == kind.to_string());
                if has_any {
                    self.note(kind, format!("observing failed ({reason}): no create, adopt or delete planned for this kind"));
                }
            }
        }
        let order: Vec<Address> = self
            .desired
            .topological_order()
            .into_iter()
            .cloned()
            .collect();
        for address in &order {
            let resource = &self.desired.resources[address];
            self.plan_resource(resource);
        }
        self.plan_removed();
        if !self.protected.is_empty() {
            return Err(PlanError::PreventDestroy(self.protected));
        }
        let mut notes = std::mem::take(&mut self.notes);
        notes.sort();
        notes.dedup();
        let plan = self.order_into_waves(&order);
        Ok((plan, PlanReport { notes }))
    }

    fn mode(&self, r: &Resource) -> Mode {
        r.lifecycle.mode.unwrap_or(self.desired.settings.mode)
    }

    fn find_live(
        &self,
        kind: Kind,
        entry: Option<&LedgerEntry>,
        key: Option<&str>,
    ) -> (Option<&'a LiveObject>, bool) {
        if let Some(e) = entry {
            if let Some(o) = self.by_id.get(&kind).and_then(|m| m.get(e.id.as_str())) {
                return (Some(o), false);
            }
        }
        match key.and_then(|k| self.by_key.get(&kind).and_then(|m| m.get(k))) {
            // An object another desired resource owns or already matched is not up for
            // adoption, whatever its name says (it may be mid-rename).
            Some(o)
                if self.claimed.contains(&(kind, o.id.clone()))
                    || self.owned_by_other(kind, &o.id, entry) =>
            {
                (None, false)
            }
            // Found by name: adopted unless the ledger already owns that very object.
            Some(o) => (Some(*o), entry.is_none_or(|e| e.id != o.id)),
            None => (None, false),
        }
    }

    /// True when a ledger entry of another still-desired address owns the object. Looked up
    /// in an index built once, so matching stays linear in the number of resources.
    fn owned_by_other(&self, kind: Kind, id: &str, mine: Option<&LedgerEntry>) -> bool {
        self.owners
            .get(&(kind.to_string(), id.to_string()))
            .is_some_and(|owners| {
                owners.iter().any(|a| {
                    self.desired.resources.contains_key(*a)
                        && !mine.is_some_and(|m| {
                            self.ledger
                                .resources
                                .get(*a)
                                .is_some_and(|e| std::ptr::eq(m, e))
                        })
                })
            })
    }

    fn plan_resource(&mut self, r: &Resource) {
        let kind = r.kind();
        let address = r.address.clone();
        let entry = self.ledger.resources.get(&address);
        let spec = serde_json::to_value(&r.spec).unwrap_or(Value::Null);
        let fields = desired_fields_of(r, &spec, &self.attrs);
        let complete = !self.failed.contains(&kind);
        let detect = self.mode(r) == Mode::Detect;

        if !complete {
            // Unknown is not absent: plan nothing for it; references read the ledger.
            self.attrs
                .insert(address.clone(), entry.map(|e| e.attributes.clone()));
            return;
        }
        let key = natural_key(kind, &known_fields(&fields));
        let (object, adopt) = self.find_live(kind, entry, key.as_deref());
        let Some(object) = object else {
            let reason = match (entry, self.ledger.pending.get(&address)) {
                (Some(_), _) => Some("deleted outside provisioner: re-created".to_string()),
                (None, Some(_)) => {
                    Some("an earlier create did not finish and left nothing behind".to_string())
                }
                _ => None,
            };
            let action = if detect {
                Action::Drift
            } else {
                Action::Create
            };
            let shown = create_fields(r, &spec, &fields);
            self.changes.insert(
                address.clone(),
                change(address.clone(), action, None, shown, reason),
            );
            self.attrs.insert(
                address,
                if detect {
                    entry.map(|e| e.attributes.clone())
                } else {
                    None
                },
            );
            return;
        };

        self.claimed.insert((kind, object.id.clone()));
        let mut diffs = Vec::new();
        for f in compared_fields(kind) {
            let Some(want) = fields.get(f.name) else {
                continue;
            };
            let have = object.fields.get(f.name);
            diff_field(f.name, &f.shape, f.change, want, have, &mut diffs);
        }
        let secret_diffs = self.secret_changes(r, &spec, entry, object);
        let (ignored, mut diffs): (Vec<_>, Vec<_>) = diffs
            .into_iter()
            .partition(|d| is_ignored(&d.path, &r.lifecycle.ignore_changes));
        diffs.extend(secret_diffs);
        let forced: Vec<&FieldChange> = diffs.iter().filter(|d| d.forces_replacement).collect();
        let reason = if adopt {
            Some(if self.ledger.pending.contains_key(&address) {
                "found by name after an interrupted create: adopted".to_string()
            } else {
                "found by name: adopted".to_string()
            })
        } else {
            None
        };
        let action = if detect && (!diffs.is_empty() || adopt) {
            Action::Drift
        } else if !forced.is_empty() {
            Action::Replace
        } else if adopt {
            Action::Adopt
        } else if !diffs.is_empty() {
            Action::Update
        } else {
            Action::NoOp
        };
        if action == Action::Replace && r.lifecycle.prevent_destroy {
            let names: Vec<String> = forced.iter().map(|d| d.path.clone()).collect();
            self.protected.push((
                address.clone(),
                format!("replacement forced by {}", names.join(", ")),
            ));
        }
        let mut c = change(
            address.clone(),
            action,
            Some(object.id.clone()),
            diffs,
            reason,
        );
        if action == Action::Replace {
            c.strategy = Some(replace_strategy(kind));
        }
        c.ignored = ignored;
        self.changes.insert(address.clone(), c);
        // References read live attributes; a replaced object gets new ones.
        let attrs = if action == Action::Replace {
            None
        } else {
            let mut a = entry.map(|e| e.attributes.clone()).unwrap_or_default();
            a.extend(object.attributes.clone());
            Some(a)
        };
        self.attrs.insert(address, attrs);
    }

    /// Write-only values: changed when the desired fingerprint differs from the ledger's,
    /// when the cloud says it changed after provisioner's last write, or when the value comes
    /// from a resource that gets a new one in this apply.
    fn secret_changes(
        &self,
        r: &Resource,
        spec: &Value,
        entry: Option<&LedgerEntry>,
        object: &LiveObject,
    ) -> Vec<FieldChange> {
        let mut out = Vec::new();
        for name in secret_fields(r.kind()) {
            let source = r.spec.secret(name);
            let mut changed = false;
            if let Some(SecretSource::Ref(reference)) = source {
                if matches!(self.attrs.get(&reference.address), Some(None)) {
                    changed = true;
                }
            }
            let key = format!("{}.{name}", r.address);
            if let (Some(want), Some(e)) = (self.desired.secret_fingerprints.get(&key), entry) {
                if e.fingerprints.get(name) != Some(want) {
                    changed = true;
                }
            }
            if let (Some(seen), Some(written)) = (
                &object.updated_at,
                entry.and_then(|e| e.updated_at.as_ref()),
            ) {
                if seen > written {
                    changed = true;
                }
            }
            if entry.is_none()
                && !matches!(source, Some(SecretSource::Generate(_)))
                && spec.get(name).is_some()
            {
                // Adopted: provisioner has never written the value, so it must.
                changed = true;
            }
            if changed {
                out.push(FieldChange {
                    path: name.to_string(),
                    old: Shown::Sensitive,
                    new: Shown::Sensitive,
                    forces_replacement: false,
                });
            }
        }
        out
    }

    fn plan_removed(&mut self) {
        for (address, entry) in &self.ledger.resources {
            if self.desired.resources.contains_key(address) {
                continue;
            }
            let Some(kind) = Kind::ALL
                .iter()
                .copied()
                .find(|k| k.to_string() == entry.kind)
            else {
                self.note(
                    address,
                    format!("the ledger names unknown kind `{}`; left alone", entry.kind),
                );
                continue;
            };
            if !self.live.is_complete(kind) {
                continue;
            }
            let exists = self
                .by_id
                .get(&kind)
                .is_some_and(|m| m.contains_key(entry.id.as_str()));
            if !exists {
                self.note(address, "removed from the desired state and already gone from the cloud: dropped from the ledger");
                continue;
            }
            if self.claimed.contains(&(kind, entry.id.clone())) {
                self.note(address, "its object is now managed under another address: dropped from the ledger, not deleted");
                continue;
            }
            let action = if self.desired.settings.prune {
                Action::Delete
            } else {
                Action::Orphan
            };
            if action == Action::Delete && entry.prevent_destroy {
                self.protected.push((address.clone(), "removed from the desired state, but prevent_destroy was set when it was last applied".into()));
            }
            let reason = if action == Action::Orphan {
                Some(
                    "removed from the desired state; prune is off, so it is left alone".to_string(),
                )
            } else {
                None
            };
            self.changes.insert(
                address.clone(),
                change(
                    address.clone(),
                    action,
                    Some(entry.id.clone()),
                    Vec::new(),
                    reason,
                ),
            );
        }
    }

    fn order_into_waves(mut self, order: &[Address]) -> Plan {
        let acting = |c: &Change| c.action.acts() && c.action != Action::Delete;
        let mut waves: BTreeMap<Address, usize> = BTreeMap::new();
        for address in order {
            let Some(c) = self.changes.get(address) else {
                continue;
            };
            if !acting(c) {
                continue;
            }
            let deps: Vec<Address> = self.desired.resources[address]
                .depends_on
                .iter()
                .filter(|d| self.changes.get(*d).is_some_and(acting))
                .cloned()
                .collect();
            let wave = deps
                .iter()
                .filter_map(|d| waves.get(d))
                .max()
                .map_or(0, |w| w + 1);
            waves.insert(address.clone(), wave);
            if let Some(c) = self.changes.get_mut(address) {
                c.after = deps;
                c.wave = wave;
            }
        }
        // Deletes run after everything else, dependants first.
        let first_delete_wave = waves.values().max().map_or(0, |w| w + 1);
        let deletes: BTreeSet<Address> = self
            .changes
            .values()
            .filter(|c| c.action == Action::Delete)
            .map(|c| c.address.clone())
            .collect();
        let mut delete_wave: BTreeMap<Address, usize> = BTreeMap::new();
        let mut remaining = deletes.clone();
        let mut wave = first_delete_wave;
        while !remaining.is_empty() {
            // Ready: nothing still to delete depends on it.
            let ready: Vec<Address> = remaining
                .iter()
                .filter(|a| {
                    !remaining.iter().any(|other| {
                        other != *a
                            && self
                                .ledger
                                .resources
                                .get(other)
                                .is_some_and(|e| e.depends_on.contains(*a))
                    })
                })
                .cloned()
                .collect();
            let ready = if ready.is_empty() {
                remaining.iter().cloned().collect()
            } else {
                ready
            };
            for a in ready {
                remaining.remove(&a);
                delete_wave.insert(a, wave);
            }
            wave += 1;
        }
        for (a, w) in delete_wave {
            if let Some(c) = self.changes.get_mut(&a) {
                c.wave = w;
                c.after = self
                    .ledger
                    .resources
                    .iter()
                    .filter(|(other, e)| deletes.contains(*other) && e.depends_on.contains(&a))
                    .map(|(other, _)| other.clone())
                    .collect();
            }
        }
        let mut changes: Vec<Change> = std::mem::take(&mut self.changes).into_values().collect();
        changes.sort_by(|a, b| (a.wave, &a.address).cmp(&(b.wave, &b.address)));
        Plan {
            format_version: PLAN_FORMAT_VERSION,
            changes,
        }
    }
}

fn change(
    address: Address,
    action: Action,
    cloud_id: Option<String>,
    fields: Vec<FieldChange>,
    reason: Option<String>,
) -> Change {
    Change {
        address,
        action,
        cloud_id,
        fields,
        strategy: None,
        ignored: Vec::new(),
        reason,
        after: Vec::new(),
        wave: 0,
    }
}

fn create_fields(
    r: &Resource,
    spec: &Value,
    fields: &BTreeMap<String, Resolved>,
) -> Vec<FieldChange> {
    let mut out: Vec<FieldChange> = fields
        .iter()
        .map(|(k, v)| FieldChange {
            path: k.clone(),
            old: Shown::Absent,
            new: match v {
                Resolved::Known(v) => Shown::Value(v.clone()),
                Resolved::Unknown => Shown::KnownAfterApply,
            },
            forces_replacement: false,
        })
        .collect();
    for name in secret_fields(r.kind()) {
        if spec.get(name).is_some_and(|v| !v.is_null()) {
            out.push(FieldChange {
                path: name.into(),
                old: Shown::Absent,
                new: Shown::Sensitive,
                forces_replacement: false,
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

fn is_ignored(path: &str, ignore: &[String]) -> bool {
    ignore
        .iter()
        .any(|i| path == i || path.starts_with(&format!("{i}.")))
}

fn shown(v: Option<&Value>) -> Shown {
    match v {
        None | Some(Value::Null) => Shown::Absent,
        Some(v) => Shown::Value(v.clone()),
    }
}

/// Compares one field, descending into tables so paths name the innermost difference.
fn diff_field(
    path: &str,
    shape: &Shape,
    policy: Policy,
    want: &Resolved,
    have: Option<&Value>,
    out: &mut Vec<FieldChange>,
) {
    let want = match want {
        Resolved::Unknown => {
            out.push(FieldChange {
                path: path.into(),
                old: shown(have),
                new: Shown::KnownAfterApply,
                forces_replacement: policy == Policy::Replace,
            });
            return;
        }
        Resolved::Known(v) => v,
    };
    let shape = match shape {
        Shape::Optional(inner) => inner.as_ref(),
        s => s,
    };
    match (shape, want, have) {
        (Shape::Map(inner), Value::Object(w), Some(Value::Object(h))) => {
            let keys: BTreeSet<&String> = w.keys().chain(h.keys()).collect();
            for k in keys {
                let p = format!("{path}.{k}");
                match (w.get(k), h.get(k)) {
                    (Some(wv), hv) => {
                        diff_field(&p, inner, policy, &Resolved::Known(wv.clone()), hv, out)
                    }
                    (None, Some(hv)) => out.push(FieldChange {
                        path: p,
                        old: Shown::Value(hv.clone()),
                        new: Shown::Absent,
                        forces_replacement: policy == Policy::Replace,
                    }),
                    (None, None) => {}
                }
            }
        }
        (Shape::Block(_, fields), Value::Object(w), Some(Value::Object(h))) => {
            for f in fields {
                let Some(wv) = w.get(f.name).filter(|v| !v.is_null()) else {
                    continue;
                };
                // A field inside a table changes with its table: a pool's size replaces the
                // pool through the pool endpoints, not the whole cluster.
                diff_field(
                    &format!("{path}.{}", f.name),
                    &f.shape,
                    policy,
                    &Resolved::Known(wv.clone()),
                    h.get(f.name),
                    out,
                );
            }
        }
        _ => {
            if have == Some(want) || (want.as_array().is_some_and(Vec::is_empty) && have.is_none())
            {
                return;
            }
            let forces = match policy {
                Policy::Replace => true,
                Policy::Upgrade => is_backward(want, have),
                _ => false,
            };
            if policy == Policy::Upgrade && same_version(want, have) {
                return;
            }
            out.push(FieldChange {
                path: path.into(),
                old: shown(have),
                new: Shown::Value(want.clone()),
                forces_replacement: forces,
            });
        }
    }
}

/// A minor version (`1.33`) or `latest` is satisfied by any matching patch the cloud runs.
fn same_version(want: &Value, have: Option<&Value>) -> bool {
    let (Some(w), Some(h)) = (want.as_str(), have.and_then(Value::as_str)) else {
        return false;
    };
    if w == "latest" {
        return true;
    }
    match (parse_k8s_version(w), parse_k8s_version(h)) {
        (Some((a, b, None, None)), Some((c, d, _, _))) => (a, b) == (c, d),
        _ => false,
    }
}

/// True when moving from `have` to `want` goes backward (a version down, `true` to `false`).
fn is_backward(want: &Value, have: Option<&Value>) -> bool {
    match (want, have) {
        (Value::Bool(false), Some(Value::Bool(true))) => true,
        (Value::String(w), Some(Value::String(h))) => {
            match (parse_k8s_version(w), parse_k8s_version(h)) {
                (Some(w), Some(h)) => {
                    (w.0, w.1) < (h.0, h.1)
                        || ((w.0, w.1) == (h.0, h.1) && w.2.is_some() && (w.2, w.3) < (h.2, h.3))
                }
                _ => false,
            }
        }
        _ => false,
    }
}
