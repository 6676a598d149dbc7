//! `plan`: desired state + ledger + live state → the changes that make the clouds match.
//! Pure and deterministic: no I/O, no clock (the live state's `observed_at` is "now"), every
//! map a BTreeMap, every list sorted.
//!
//! This module plans one resource at a time ([`Planner::plan_resource`]); its parts live
//! beside it: [`matching`] (which live object a resource is, and adoption), [`secrets`]
//! (write-only values, unrecoverable outputs, rotation), [`removed`] (what left the desired
//! state), [`schedule`] (planning order and waves) and [`observed`] (what could not be
//! seen). Field comparison is [`super::diff`], reference resolution [`super::resolve`], and
//! every per-kind rule a declaration on the kind ([`crate::desired::kinds::identity`]).

mod fx;
mod matching;
mod observed;
mod removed;
mod schedule;
mod secrets;

/// Builders for unit tests (a desired state from TOML text, a ledger and a live state from
/// JSON), for this crate's tests and, with the `testing` feature, for other crates' tests.
#[cfg(any(test, feature = "testing"))]
pub mod testing;

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::BTreeMap;

use serde_json::{Map, Value};

use self::fx::{FastMap, FastSet};
use self::matching::Adoption;
use self::schedule::{Graph, topological_indices};
use super::diff::{create_fields, diff_field, is_ignored, overlaps};
use super::model::{
    Action, Cause, Change, FieldChange, Note, Plan, PlanError, PlanReport, ReplaceStrategy, Shown,
    Unobserved,
};
use super::resolve::wanted;
use crate::desired::kinds::{Kind, Order};
use crate::desired::refs::RefParts;
use crate::desired::schema::FieldInfo;
use crate::desired::{Address, DesiredState, Mode, Resource};
use crate::ledger::{Ledger, LedgerEntry};
use crate::live::{LiveObject, LiveState};

pub use self::observed::{entry_in, intent_in};
pub use self::secrets::{
    RETIRING, UNDELIVERED, retiring, retiring_held, retiring_value, undelivered,
};
pub use super::resolve::{
    AttributeSource, Attributes, Resolved, desired_fields, known_fields, resolve,
};

/// Fields of a kind that identify its cloud object ([`Kind::key_fields`]).
pub fn key_fields(kind: Kind) -> &'static [&'static str] {
    kind.key_fields()
}

/// The natural key of an object from its fields ([`Kind::natural_key`]).
pub fn natural_key(kind: Kind, fields: &Map<String, Value>) -> Option<String> {
    kind.natural_key(fields)
}

/// True when the cloud keeps no copy of a kind's secret output ([`Kind::unrecoverable`]).
pub fn unrecoverable(kind: Kind, output: &str) -> bool {
    kind.unrecoverable(output).is_some()
}

/// The fields of a kind compared with the cloud ([`Kind::compared_fields`]).
pub fn compared_fields(kind: Kind) -> &'static [FieldInfo] {
    kind.compared_fields()
}

/// The secret fields of a kind ([`Kind::secret_fields`]).
pub fn secret_fields(kind: Kind) -> &'static [&'static str] {
    kind.secret_fields()
}

/// Plans the changes that bring the clouds to the desired state.
pub fn plan(
    desired: &DesiredState,
    ledger: &Ledger,
    live: &LiveState,
) -> Result<(Plan, PlanReport), PlanError> {
    let first = Planner::new(desired, ledger, live);
    let (result, needs_new) = first.run();
    // A consumer must be written again (its copy was changed by hand, or lost) with a secret
    // output its producer's cloud cannot give back (a private key, an SMTP password): the
    // producer makes a new one in the same apply, and every consumer gets it. A protected
    // producer (`prevent_destroy`) is not replaced behind the user's back: the plan says so.
    if needs_new.is_empty() {
        return result;
    }
    let mut again = desired.clone();
    let mut notes = Vec::new();
    for (producer, consumer) in needs_new {
        let protected = desired
            .resources
            .get(&producer)
            .is_some_and(|r| r.lifecycle.prevent_destroy)
            && !desired.allow_destroy.contains(&producer);
        if protected {
            notes.push(Note {
                subject: consumer.to_string(),
                message: format!(
                    "must be written again, but its value comes from {producer}, which cannot give it back and is protected by prevent_destroy: run `provisioner apply --replace {producer} --allow-destroy {producer}` to make a new one"
                ),
            });
        } else {
            again.replace.insert(producer.clone());
            notes.push(Note {
                subject: producer.to_string(),
                message: format!(
                    "replaced so that {consumer}, whose copy was changed or lost, gets a new value: the old one cannot be read back"
                ),
            });
        }
    }
    let (result, _) = Planner::new(&again, ledger, live).run();
    let (plan, mut report) = result?;
    report.notes.extend(notes);
    report.notes.sort();
    report.notes.dedup();
    Ok((plan, report))
}

/// What one planner run returns.
type PlanResult = Result<(Plan, PlanReport), PlanError>;

/// What references to one desired resource can read while planning.
#[derive(Clone, Copy)]
enum Attrs<'a> {
    /// Not planned yet (references to it are not known).
    Unplanned,
    /// Created or replaced by this apply: known after apply.
    AfterApply,
    /// The live object's attributes over the ledger's record of them.
    Known {
        live: Option<&'a BTreeMap<String, Value>>,
        ledger: Option<&'a BTreeMap<String, Value>>,
    },
}

/// Ledger entries by (kind, cloud id).
type Owners<'a> = FastMap<(&'a str, &'a str), Vec<(&'a Address, &'a LedgerEntry)>>;

/// The planner's working set. Desired resources are numbered in address order, so every
/// per-resource table is a vector, and the hot path compares integers, not addresses.
struct Planner<'a> {
    desired: &'a DesiredState,
    ledger: &'a Ledger,
    live: &'a LiveState,
    /// Desired resources, in address order.
    resources: Vec<&'a Resource>,
    /// Address (provider, kind, name) → position in `resources`.
    index: FastMap<&'a str, usize>,
    /// The ledger entry of each desired resource.
    entries: Vec<Option<&'a LedgerEntry>>,
    /// Ledger entries no longer desired, in address order.
    removed: Vec<(&'a Address, &'a LedgerEntry)>,
    /// The desired resources each one depends on.
    deps: Graph,
    /// Live objects by id, per kind.
    by_id: Vec<FastMap<&'a str, &'a LiveObject>>,
    /// Live objects by natural key, per kind; built on first need (a no-drift pass finds
    /// everything by id and never needs it).
    by_key: OnceCell<Vec<FastMap<String, &'a LiveObject>>>,
    /// Ledger entries by (kind, cloud id); built on first need.
    owners: OnceCell<Owners<'a>>,
    attrs: Vec<Attrs<'a>>,
    changes: Vec<Option<Change>>,
    removed_changes: Vec<Change>,
    notes: Vec<Note>,
    protected: Vec<(Address, String)>,
    /// Objects a desired resource matched: never deleted or orphaned under another address.
    claimed: FastSet<(Kind, &'a str)>,
    /// Kinds whose observation failed, by kind index.
    failed: Vec<bool>,
    /// Desired resources that could not be planned for want of an observation (their own,
    /// or a dependency's) and that the ledger has no record of, by index.
    blind: Vec<bool>,
    /// Resources left unplanned because a dependency could not be observed.
    blinded: Vec<Unobserved>,
    /// (producer, consumer): consumers that need a secret output their producer must make
    /// anew.
    needs_new: Vec<(Address, Address)>,
}

impl AttributeSource for Planner<'_> {
    fn attribute(&self, r: &RefParts<'_>) -> Option<&Value> {
        let name = r.attribute;
        match self.attrs[*self.index.get(r.address)?] {
            Attrs::Known { live, ledger } => live
                .and_then(|m| m.get(name))
                .or_else(|| ledger.and_then(|m| m.get(name))),
            Attrs::Unplanned | Attrs::AfterApply => None,
        }
    }
}

impl<'a> Planner<'a> {
    fn new(desired: &'a DesiredState, ledger: &'a Ledger, live: &'a LiveState) -> Self {
        let resources: Vec<&Resource> = desired.resources.values().collect();
        let mut index: FastMap<&str, usize> =
            FastMap::with_capacity_and_hasher(desired.resources.len(), Default::default());
        index.extend(
            desired
                .resources
                .keys()
                .enumerate()
                .map(|(i, a)| (key_of(a), i)),
        );
        // Both maps are sorted by address: one merge pass pairs them.
        let mut entries = Vec::with_capacity(resources.len());
        let mut removed = Vec::new();
        let mut ledger_iter = ledger.resources.iter().peekable();
        for address in desired.resources.keys() {
            while let Some((a, e)) = ledger_iter.next_if(|(a, _)| *a < address) {
                removed.push((a, e));
            }
            entries.push(ledger_iter.next_if(|(a, _)| *a == address).map(|(_, e)| e));
        }
        removed.extend(ledger_iter);
        let deps = Graph::from_lists(resources.iter().map(|r| {
            r.depends_on
                .iter()
                .filter_map(|d| index.get(key_of(d)).copied())
        }));
        let by_id = Kind::ALL
            .iter()
            .map(|k| {
                let objects = live.objects(*k);
                let mut m = FastMap::with_capacity_and_hasher(objects.len(), Default::default());
                m.extend(objects.iter().map(|o| (o.id.as_str(), o)));
                m
            })
            .collect();
        let n = resources.len();
        Planner {
            desired,
            ledger,
            live,
            resources,
            index,
            entries,
            removed,
            deps,
            by_id,
            by_key: OnceCell::new(),
            owners: OnceCell::new(),
            attrs: vec![Attrs::Unplanned; n],
            changes: vec![None; n],
            removed_changes: Vec::new(),
            notes: Vec::new(),
            protected: Vec::new(),
            claimed: FastSet::default(),
            failed: Kind::ALL.iter().map(|k| !live.is_complete(*k)).collect(),
            blind: vec![false; n],
            blinded: Vec::new(),
            needs_new: Vec::new(),
        }
    }

    fn note(&mut self, subject: impl ToString, message: impl Into<String>) {
        self.notes.push(Note {
            subject: subject.to_string(),
            message: message.into(),
        });
    }

    fn run(mut self) -> (PlanResult, Vec<(Address, Address)>) {
        // Unknown is never absent, and never "unchanged".
        let mut unobserved = self.unobserved();
        let order = topological_indices(&self.deps);
        for &i in &order {
            self.plan_resource(i);
        }
        self.plan_removed();
        self.plan_interrupted();
        let needs_new = std::mem::take(&mut self.needs_new);
        if !self.protected.is_empty() {
            return (Err(PlanError::PreventDestroy(self.protected)), needs_new);
        }
        let mut notes = std::mem::take(&mut self.notes);
        notes.sort();
        notes.dedup();
        unobserved.append(&mut self.blinded);
        let plan = self.order_into_waves(&order);
        (Ok((plan, PlanReport { notes, unobserved })), needs_new)
    }

    fn mode(&self, r: &Resource) -> Mode {
        r.lifecycle.mode.unwrap_or(self.desired.settings.mode)
    }

    /// Plans desired resource `i`, whose dependencies are planned.
    fn plan_resource(&mut self, i: usize) {
        let r = self.resources[i];
        let kind = r.kind();
        let address = &r.address;
        let entry = self.entries[i];
        let complete = self.is_observed(r);
        // What depends on something that could not be observed, and that the ledger has no
        // record of either, cannot be planned: its inputs are unknown, not absent.
        let blind_dep = self.deps.edges(i).iter().copied().find(|&j| self.blind[j]);
        if complete && let Some(j) = blind_dep {
            self.blinded.push(Unobserved {
                kind: kind.key().to_string(),
                scope: Some(std::collections::BTreeMap::from([(
                    "address".to_string(),
                    address.to_string(),
                )])),
                reason: format!(
                    "depends on {}, which could not be observed",
                    self.resources[j].address
                ),
            });
        }
        if !complete || blind_dep.is_some() {
            self.blind[i] = entry.is_none();
            // Unknown is not absent: plan nothing for it; references read the ledger.
            self.attrs[i] = match entry {
                Some(e) => Attrs::Known {
                    live: None,
                    ledger: Some(&e.attributes),
                },
                None => Attrs::AfterApply,
            };
            return;
        }
        let spec = &r.spec_json;
        let fields = wanted(kind, spec, &*self);
        let detect = self.mode(r) == Mode::Detect;
        let (object, adopt) = self.find_live(kind, entry, &fields);
        let mut recovery_replace = None;
        // Made by an apply that was interrupted before every consumer got its output, which
        // the cloud cannot give back: made anew (the new one first where the kind allows).
        let never_delivered = match (object, entry) {
            (Some(_), Some(e)) if !adopt && !detect => self.never_delivered(r, e),
            _ => None,
        };
        if let Some((output, _)) = &never_delivered {
            recovery_replace = Some(*output);
        }
        if let Some(o) = object.filter(|_| adopt) {
            match self.adoption(i, o) {
                Adoption::Proven(_) => {}
                Adoption::ReplaceLeftover(output) => recovery_replace = Some(output),
                Adoption::Refused(reason) => {
                    self.changes[i] = Some(change(
                        address.clone(),
                        Action::Conflict,
                        Some(o.id.clone()),
                        Vec::new(),
                        Some(reason),
                    ));
                    self.attrs[i] = Attrs::AfterApply;
                    return;
                }
            }
        }
        // What depends on a conflict waits for it: its references cannot be known.
        if let Some(blocker) = self.deps.edges(i).iter().find(|&&j| {
            self.changes[j]
                .as_ref()
                .is_some_and(|c| c.action == Action::Conflict)
        }) {
            let reason = format!(
                "blocked: it depends on {}, which is in conflict",
                self.resources[*blocker].address
            );
            self.changes[i] = Some(change(
                address.clone(),
                Action::Conflict,
                entry.map(|e| e.id.clone()),
                Vec::new(),
                Some(reason),
            ));
            self.attrs[i] = match entry {
                Some(e) => Attrs::Known {
                    live: None,
                    ledger: Some(&e.attributes),
                },
                None => Attrs::AfterApply,
            };
            return;
        }
        let Some(object) = object else {
            let pending = self.desired_pending(address);
            let reason = match (entry, pending) {
                (Some(_), _) => Some("deleted outside provisioner: re-created".to_string()),
                (None, true) => {
                    Some("an earlier create did not finish and left nothing behind".to_string())
                }
                _ => None,
            };
            let action = if detect {
                Action::Drift
            } else {
                Action::Create
            };
            if entry.is_some() && !detect {
                self.note_needs_new(r);
            }
            let shown = create_fields(r, spec, &fields);
            let mut c = change(address.clone(), action, None, shown, reason);
            cite(&mut c, r);
            c.cause = match (entry, pending) {
                (Some(_), _) => Cause::Drift,
                (None, true) => Cause::Recovery,
                (None, false) => Cause::Desired,
            };
            self.changes[i] = Some(c);
            self.attrs[i] = match entry {
                Some(e) if detect => Attrs::Known {
                    live: None,
                    ledger: Some(&e.attributes),
                },
                _ => Attrs::AfterApply,
            };
            return;
        };

        self.claimed.insert((kind, object.id.as_str()));
        let mut diffs = Vec::new();
        for (f, want) in kind.compared_fields().iter().zip(&fields) {
            let Some(want) = want else {
                continue;
            };
            let have = object.fields.get(f.name);
            let start = diffs.len();
            diff_field(
                Cow::Borrowed(f.name),
                &f.shape,
                f.change,
                kind.ignores_case(f.name),
                want,
                have,
                &mut diffs,
            );
            // A field drifted when the cloud no longer has what provisioner last applied
            // (compared the same way); otherwise only the desired state changed.
            if diffs.len() > start
                && let Some(e) = entry.filter(|_| !adopt)
                && let Some(applied) = e.applied.get(f.name).filter(|v| !v.is_null())
            {
                let mut since = Vec::new();
                diff_field(
                    Cow::Borrowed(f.name),
                    &f.shape,
                    f.change,
                    kind.ignores_case(f.name),
                    &Resolved::Known(Cow::Borrowed(applied)),
                    have,
                    &mut since,
                );
                for d in &mut diffs[start..] {
                    d.drift = since.iter().any(|w| overlaps(&w.path, &d.path));
                }
            }
        }
        let secret_diffs = self.secret_changes(r, spec, entry, object);
        let (ignored, mut diffs): (Vec<_>, Vec<_>) = diffs
            .into_iter()
            .partition(|d| is_ignored(&d.path, &r.lifecycle.ignore_changes));
        diffs.extend(secret_diffs);
        diffs.extend(self.rotation_due(r, entry, object));
        if self.desired.replace.contains(address) && adopt {
            // `--replace` never deletes an object the ledger does not record yet.
            self.note(
                address,
                "not replaced: its object is adopted in this apply; replace it once the ledger records it",
            );
        } else if self.desired.replace.contains(address) {
            diffs.push(FieldChange {
                path: Cow::Borrowed("(replacement requested)"),
                old: Shown::Absent,
                new: Shown::Absent,
                forces_replacement: true,
                drift: false,
                source: None,
                unchanged: None,
            });
        }
        if let Some(output) = recovery_replace {
            diffs.push(FieldChange {
                path: Cow::Borrowed(output),
                old: Shown::Value(Value::String("never delivered".into())),
                new: Shown::Sensitive,
                forces_replacement: true,
                drift: false,
                source: None,
                unchanged: None,
            });
        }
        let forced: Vec<&FieldChange> = diffs.iter().filter(|d| d.forces_replacement).collect();
        let reason = if let Some((output, consumer)) = &never_delivered {
            Some(format!(
                "its {output} was made by an apply that stopped before {consumer} was written with it, and cannot be read back: made anew, which prevent_destroy allows (nothing is destroyed before its successor exists)"
            ))
        } else if let Some(output) = recovery_replace {
            Some(format!(
                "an interrupted create left this object, but its {output} was never delivered and cannot be read back: replaced"
            ))
        } else if adopt {
            Some(match self.adoption(i, object) {
                Adoption::Proven(why) => format!("found by name: adopted ({why})"),
                _ => "found by name: adopted".to_string(),
            })
        } else {
            None
        };
        // Parts of the object provisioner did not make (a hand-made access key): drift it
        // reports and never corrects, so it alone makes no acting change.
        let unmanaged: Vec<FieldChange> = object
            .unmanaged
            .iter()
            .map(|(path, v)| FieldChange {
                path: Cow::Owned(path.clone()),
                old: Shown::Value(v.clone()),
                new: Shown::Absent,
                forces_replacement: false,
                drift: true,
                source: None,
                unchanged: None,
            })
            .collect();
        // What an earlier rotation superseded and could not remove yet (a consumer was not
        // rewritten): once nobody is owed the new value, it goes.
        let superseded: Vec<String> = entry
            .filter(|_| !adopt && !detect)
            .map(retiring_held)
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, held)| held.is_empty())
            .map(|(id, _)| id)
            .collect();
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
        // A leftover of an interrupted create was never recorded as applied: replacing it
        // (the new one first) destroys nothing the ledger protects.
        if action == Action::Replace
            && r.lifecycle.prevent_destroy
            && recovery_replace.is_none()
            && !self.desired.allow_destroy.contains(address)
        {
            let names: Vec<&str> = forced.iter().map(|d| d.path.as_ref()).collect();
            self.protected.push((
                address.clone(),
                format!(
                    "replacement forced by {}; to replace it deliberately: `provisioner apply --replace {address} --allow-destroy {address}`",
                    names.join(", ")
                ),
            ));
        }
        // Other objects of this key that this ledger's interrupted creates (or replacements)
        // left behind: the intent proves them ours; they go once the change succeeds.
        let leftovers = if self.desired_pending(address) {
            self.leftovers(kind, entry, object)
        } else {
            Vec::new()
        };
        // Parts an interrupted change made that the ledger does not record: the object's
        // next change removes them.
        let superseded: Vec<String> = superseded
            .into_iter()
            .chain(object.leftover_parts.iter().cloned())
            .collect();
        let action = if action == Action::NoOp
            && (!leftovers.is_empty() || !superseded.is_empty())
            && !detect
        {
            Action::Update
        } else if action == Action::NoOp && !unmanaged.is_empty() {
            Action::Drift
        } else {
            action
        };
        let recovered = !superseded.is_empty() && diffs.is_empty();
        if !superseded.is_empty() {
            diffs.push(FieldChange {
                path: Cow::Borrowed("(superseded, to remove)"),
                old: Shown::Value(Value::Array(
                    superseded.iter().cloned().map(Value::String).collect(),
                )),
                new: Shown::Absent,
                forces_replacement: false,
                drift: false,
                source: None,
                unchanged: None,
            });
        }
        let unmanaged_note = (!unmanaged.is_empty()).then(|| {
            format!(
                "{} not made by provisioner: reported, never removed (delete it yourself if nothing uses it)",
                unmanaged
                    .iter()
                    .map(|f| match &f.old {
                        Shown::Value(v) => format!("{} {v}", f.path),
                        _ => f.path.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        });
        diffs.extend(unmanaged);
        let cause = if recovery_replace.is_some()
            || (adopt && self.desired_pending(address))
            || !leftovers.is_empty()
            || recovered
        {
            Cause::Recovery
        } else {
            Cause::of_fields(&diffs)
        };
        let reason = match (reason, unmanaged_note) {
            (Some(r), Some(n)) => Some(format!("{r}; {n}")),
            (r, n) => r.or(n),
        };
        let mut c = change(
            address.clone(),
            action,
            Some(object.id.clone()),
            diffs,
            reason,
        );
        c.cause = cause;
        c.health = object.health.clone();
        cite(&mut c, r);
        if !leftovers.is_empty() {
            let note = format!(
                "{} left by an interrupted create or replacement of this resource: deleted after the change",
                leftovers.join(", ")
            );
            c.reason = Some(match c.reason.take() {
                Some(r) => format!("{r}; {note}"),
                None => note,
            });
            for id in &leftovers {
                if let Some(o) = self.by_id[kind.index()].get(id.as_str()) {
                    self.claimed.insert((kind, o.id.as_str()));
                }
            }
            c.leftovers = leftovers;
        }
        if action == Action::Replace {
            // The kind says which goes first, or that it renews in place (an SMTP user
            // keeping its name rotates its access key).
            let forced = c
                .fields
                .iter()
                .filter(|d| d.forces_replacement)
                .map(|d| d.path.as_ref());
            c.strategy = Some(match kind.replacement().order(forced) {
                Order::InPlace => ReplaceStrategy::InPlace,
                Order::CreateFirst => ReplaceStrategy::CreateBeforeDestroy,
                Order::DestroyFirst => ReplaceStrategy::DestroyFirst,
            });
        }
        c.ignored = ignored;
        self.changes[i] = Some(c);
        // References read live attributes; a replaced object gets new ones.
        self.attrs[i] = if action == Action::Replace {
            Attrs::AfterApply
        } else {
            Attrs::Known {
                live: Some(&object.attributes),
                ledger: entry.map(|e| &e.attributes),
            }
        };
    }
}

fn key_of(a: &Address) -> &str {
    a.as_str()
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
        cause: Cause::Desired,
        source: None,
        cloud_id,
        fields,
        strategy: None,
        ignored: Vec::new(),
        reason,
        leftovers: Vec::new(),
        after: Vec::new(),
        wave: 0,
        health: None,
    }
}

/// Cites where the desired state says what a change asks for: the resource's table, and
/// each field that changed because of the files (not drift) by its top-level key.
fn cite(c: &mut Change, r: &Resource) {
    c.source = Some(r.location.to_string());
    for f in &mut c.fields {
        if f.drift {
            continue;
        }
        let top = f.path.split(['.', '[']).next().unwrap_or_default();
        f.source = r.field_locations.get(top).map(ToString::to_string);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn serde_json_maps_are_sorted() {
        // `wanted` merges a spec's keys with sorted field names; a dependency turning on
        // serde_json's `preserve_order` would break that, and this test.
        let v = serde_json::json!({"zeta": 1, "alpha": 2, "mid": 3});
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["alpha", "mid", "zeta"]);
    }
}
