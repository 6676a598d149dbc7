//! `plan`: desired state + ledger + live state → the changes that make the clouds match.
//! Pure and deterministic: no I/O, no clock (the live state's `observed_at` is "now"), every
//! map a BTreeMap, every list sorted.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};
use std::hash::BuildHasherDefault;
use std::sync::OnceLock;

use serde_json::{Map, Value};

use super::model::{
    Action, Cause, Change, FieldChange, Note, PLAN_FORMAT_VERSION, Plan, PlanError, PlanReport,
    ReplaceStrategy, Shown, Unobserved,
};
use crate::desired::kinds::Kind;
use crate::desired::refs::{Part, RefParts, may_hold_reference, parse_parts, sole_reference};
use crate::desired::schema::{Change as Policy, FieldInfo, Shape};
use crate::desired::values::{SecretSource, parse_k8s_version};
use crate::desired::{Address, DesiredState, Mode, Resource};
use crate::ledger::{Ledger, LedgerEntry};
use crate::live::{FailedScope, LiveObject, LiveState};

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

/// Secret outputs the cloud keeps no copy of: they exist only in the apply that creates (or
/// rotates) their producer.
pub fn unrecoverable(kind: Kind, output: &str) -> bool {
    UNRECOVERABLE
        .iter()
        .any(|(k, o)| *k == kind && *o == output)
}

/// (kind, output) of every secret output the cloud returns only once.
const UNRECOVERABLE: &[(Kind, &str)] = &[
    (Kind::AwsIamSmtpUser, "smtp_password"),
    (Kind::GhDeployKey, "private_key"),
    (Kind::DoSpacesKey, "secret_key"),
];

/// The key, in a ledger entry's `options`, of the secret outputs its object produced that not
/// every consumer has been written with yet: `{ "<output>": ["<consumer address>", …] }`.
/// The executor sets it (and persists it) when the producer's result is recorded, before any
/// consumer starts, and clears each consumer as it is written; a crash in between leaves it,
/// and the next plan makes the producer anew (see [`undelivered`]).
pub const UNDELIVERED: &str = "undelivered";

/// The key, in a ledger entry's `options`, of the parts of its object that a change
/// superseded and that are removed once every consumer that held them has their successors
/// ([`crate::providers::Applied::retiring`]): `[{"id": "<id>", "held_by": ["<consumer
/// address>", …]}, …]`.
pub const RETIRING: &str = "retiring";

/// The parts of a ledger entry's object still to be retired.
pub fn retiring(entry: &LedgerEntry) -> Vec<String> {
    retiring_held(entry).into_keys().collect()
}

/// The parts still to be retired, each with the consumers that may still hold it (empty:
/// nobody, it may go).
pub fn retiring_held(entry: &LedgerEntry) -> BTreeMap<String, BTreeSet<String>> {
    entry
        .options
        .get(RETIRING)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| {
            let id = v["id"].as_str()?.to_string();
            let held = v["held_by"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
            Some((id, held))
        })
        .collect()
}

/// The `options` value of [`RETIRING`] for these parts.
pub fn retiring_value(parts: &BTreeMap<String, BTreeSet<String>>) -> Value {
    Value::Array(
        parts
            .iter()
            .map(|(id, held)| serde_json::json!({ "id": id, "held_by": held }))
            .collect(),
    )
}

/// The unrecoverable outputs of a ledger entry that some consumer never received, each with
/// the consumers still waiting for it.
pub fn undelivered(entry: &LedgerEntry) -> BTreeMap<String, BTreeSet<String>> {
    let Some(Value::Object(outputs)) = entry.options.get(UNDELIVERED) else {
        return BTreeMap::new();
    };
    outputs
        .iter()
        .map(|(output, waiting)| {
            let waiting = waiting
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
            (output.clone(), waiting)
        })
        .filter(|(_, w): &(String, BTreeSet<String>)| !w.is_empty())
        .collect()
}

/// Whether an object found by name may be adopted.
enum Adoption {
    /// Yes, and why.
    Proven(&'static str),
    /// It is this ledger's (marker or intent), but its unrecoverable output (named) was
    /// never delivered: replace it.
    ReplaceLeftover(&'static str),
    /// No: a conflict, with the reason and what to do.
    Refused(String),
}

/// True when one field path is the other or contains it.
fn overlaps(a: &str, b: &str) -> bool {
    within(a, b) || within(b, a)
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
    natural_key_by(kind, |f| fields.get(f))
}

fn natural_key_by<'v>(kind: Kind, get: impl Fn(&str) -> Option<&'v Value>) -> Option<String> {
    let mut parts = Vec::new();
    for f in key_fields(kind) {
        let text = match get(f) {
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

/// For kinds whose replacement can renew the object in place (a new access key for an
/// SMTP user, a new generated value for a secret): the identity fields whose change makes a
/// new object instead. `None` for every other kind.
pub fn renews_in_place(kind: Kind) -> Option<&'static [&'static str]> {
    match kind {
        // The password is per key and region: a new region is a new key, not a new user.
        Kind::AwsIamSmtpUser => Some(&["name", "path"]),
        Kind::AwsSecretsmanagerSecret => Some(&["name"]),
        _ => None,
    }
}

/// Attribute values a reference may read, per address; `None` = known after apply.
pub type Attributes = BTreeMap<Address, Option<BTreeMap<String, Value>>>;

/// Where references find the attribute values they read.
pub trait AttributeSource {
    /// The value of the referenced attribute (the whole list when it is indexed); `None`
    /// when it is not known before apply.
    fn attribute(&self, reference: &RefParts<'_>) -> Option<&Value>;
}

impl AttributeSource for Attributes {
    fn attribute(&self, r: &RefParts<'_>) -> Option<&Value> {
        self.get(&Address::new(r.provider, r.kind, r.name))?
            .as_ref()?
            .get(r.attribute)
    }
}

/// A value after resolving references: known, or decided by this apply.
#[derive(Clone, Debug, PartialEq)]
pub enum Resolved<'v> {
    /// Fully known: borrowed from the desired state when it holds no reference.
    Known(Cow<'v, Value>),
    /// Holds a reference to something created in this apply.
    Unknown,
}

/// Resolves every `${...}` in a JSON value. A value without references is borrowed, not
/// copied: most fields of most resources are plain.
pub fn resolve<'v, A: AttributeSource + ?Sized>(value: &'v Value, attrs: &A) -> Resolved<'v> {
    if !holds_template(value) {
        return Resolved::Known(Cow::Borrowed(value));
    }
    match resolve_owned(value, attrs) {
        Some(v) => Resolved::Known(Cow::Owned(v)),
        None => Resolved::Unknown,
    }
}

fn holds_template(value: &Value) -> bool {
    match value {
        Value::String(s) => may_hold_reference(s),
        Value::Array(items) => items.iter().any(holds_template),
        Value::Object(map) => map.values().any(holds_template),
        _ => false,
    }
}

/// The value with its references filled in; `None` when one is not known before apply.
fn resolve_owned<A: AttributeSource + ?Sized>(value: &Value, attrs: &A) -> Option<Value> {
    match value {
        Value::String(s) if may_hold_reference(s) => resolve_str(s, attrs),
        Value::Array(items) => items
            .iter()
            .map(|i| resolve_owned(i, attrs))
            .collect::<Option<Vec<_>>>()
            .map(Value::Array),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| Some((k.clone(), resolve_owned(v, attrs)?)))
            .collect::<Option<Map<_, _>>>()
            .map(Value::Object),
        other => Some(other.clone()),
    }
}

fn lookup<A: AttributeSource + ?Sized>(r: &RefParts<'_>, attrs: &A) -> Option<Value> {
    let v = attrs.attribute(r)?;
    match r.index {
        Some(i) => v.as_array()?.get(i).cloned(),
        None => Some(v.clone()),
    }
}

fn resolve_str<A: AttributeSource + ?Sized>(s: &str, attrs: &A) -> Option<Value> {
    if let Some(r) = sole_reference(s) {
        return lookup(&r, attrs);
    }
    let Ok(parts) = parse_parts(s) else {
        return Some(Value::String(s.into()));
    };
    if let [Part::Ref(r)] = parts.as_slice() {
        return lookup(r, attrs);
    }
    let mut out = String::new();
    for part in parts {
        match part {
            Part::Literal(l) => out.push_str(&l),
            Part::Ref(r) => match lookup(&r, attrs)? {
                Value::String(v) => out.push_str(&v),
                v => out.push_str(&v.to_string()),
            },
        }
    }
    Some(Value::String(out))
}

/// A kind's fields as the planner sorts them, computed once per process.
struct KindFields {
    compared: Vec<FieldInfo>,
    /// `compared` positions, by field name: specs are JSON objects with sorted keys, so
    /// one merge pass finds every compared field without a lookup per field.
    by_name: Vec<(&'static str, usize)>,
    secret: Vec<&'static str>,
}

fn kind_fields(kind: Kind) -> &'static KindFields {
    static TABLE: OnceLock<Vec<KindFields>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        Kind::ALL
            .iter()
            .map(|k| {
                let all = k.fields();
                let secret = all
                    .iter()
                    .filter(|f| matches!(f.shape, Shape::Secret { .. }))
                    .map(|f| f.name)
                    .collect();
                let compared: Vec<FieldInfo> = all
                    .into_iter()
                    .filter(|f| {
                        f.change != Policy::Local && !matches!(f.shape, Shape::Secret { .. })
                    })
                    .collect();
                let mut by_name: Vec<(&str, usize)> = compared
                    .iter()
                    .enumerate()
                    .map(|(i, f)| (f.name, i))
                    .collect();
                by_name.sort();
                KindFields {
                    compared,
                    by_name,
                    secret,
                }
            })
            .collect()
    });
    &table[kind.index()]
}

/// The fields of a resource that are compared with the cloud: not secret, not local.
pub fn compared_fields(kind: Kind) -> &'static [FieldInfo] {
    &kind_fields(kind).compared
}

/// The secret fields of a kind.
pub fn secret_fields(kind: Kind) -> &'static [&'static str] {
    &kind_fields(kind).secret
}

/// The desired values of the compared fields, with references resolved where possible.
/// Unset optional fields are left out: the cloud's default is accepted.
pub fn desired_fields<'r, A: AttributeSource + ?Sized>(
    resource: &'r Resource,
    attrs: &A,
) -> BTreeMap<&'static str, Resolved<'r>> {
    compared_fields(resource.kind())
        .iter()
        .zip(wanted(resource.kind(), &resource.spec_json, attrs))
        .filter_map(|(f, v)| Some((f.name, v?)))
        .collect()
}

/// The desired values of a kind's compared fields, in the order of `compared_fields`;
/// `None` where the field is unset.
fn wanted<'v, A: AttributeSource + ?Sized>(
    kind: Kind,
    spec: &'v Value,
    attrs: &A,
) -> Vec<Option<Resolved<'v>>> {
    let table = kind_fields(kind);
    let mut out: Vec<Option<Resolved<'v>>> = (0..table.compared.len()).map(|_| None).collect();
    let Some(spec) = spec.as_object() else {
        return out;
    };
    // Both sides are sorted by name (see `serde_json_maps_are_sorted`).
    let mut names = table.by_name.iter().peekable();
    for (key, value) in spec {
        while names.next_if(|(n, _)| *n < key.as_str()).is_some() {}
        if let Some((_, i)) = names.next_if(|(n, _)| *n == key.as_str())
            && !value.is_null()
        {
            out[*i] = Some(resolve(value, attrs));
        }
    }
    out
}

/// Known desired fields as a JSON object (unknown ones left out).
pub fn known_fields(fields: &BTreeMap<&'static str, Resolved<'_>>) -> Map<String, Value> {
    fields
        .iter()
        .filter_map(|(k, v)| match v {
            Resolved::Known(v) => Some((k.to_string(), v.clone().into_owned())),
            Resolved::Unknown => None,
        })
        .collect()
}

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
    index: FastMap<(&'a str, &'a str, &'a str), usize>,
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
        match self.attrs[*self.index.get(&(r.provider, r.kind, r.name))?] {
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
        let mut index: FastMap<(&str, &str, &str), usize> =
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
                .filter_map(|d| index.get(&key_of(d)).copied())
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

    fn by_key(&self, kind: Kind) -> &FastMap<String, &'a LiveObject> {
        let live = self.live;
        &self.by_key.get_or_init(|| {
            Kind::ALL
                .iter()
                .map(|k| {
                    let mut m = FastMap::default();
                    for o in live.objects(*k) {
                        if let Some(key) = natural_key(*k, &o.fields) {
                            m.entry(key).or_insert(o);
                        }
                    }
                    m
                })
                .collect()
        })[kind.index()]
    }

    fn note(&mut self, subject: impl ToString, message: impl Into<String>) {
        self.notes.push(Note {
            subject: subject.to_string(),
            message: message.into(),
        });
    }

    fn run(mut self) -> (PlanResult, Vec<(Address, Address)>) {
        // Unknown is never absent, and never "unchanged": every kind the plan needed (the
        // desired state, the ledger or a write-ahead intent has something of it) that could
        // not be observed is reported, and makes the plan incomplete.
        let mut unobserved = Vec::new();
        for kind in Kind::ALL {
            if let Some(reason) = self.live.failure(*kind) {
                let key = kind.key();
                let has_any = self.resources.iter().any(|r| r.kind() == *kind)
                    || self.ledger.resources.values().any(|e| e.kind == key)
                    || self.ledger.pending.values().any(|p| p.kind == key);
                if has_any {
                    unobserved.push(Unobserved {
                        kind: key.to_string(),
                        scope: None,
                        reason: reason.to_string(),
                    });
                }
                continue;
            }
            // A kind observed except some scopes (one repository, one zone): each scope
            // that holds something the plan needed is reported.
            for scope in self.live.failed_scopes(*kind) {
                let key = kind.key();
                let has_any = self
                    .resources
                    .iter()
                    .any(|r| r.kind() == *kind && self.resource_in(r, scope))
                    || self
                        .ledger
                        .resources
                        .values()
                        .any(|e| e.kind == key && entry_in(e, scope))
                    || self
                        .ledger
                        .pending
                        .values()
                        .any(|p| p.kind == key && intent_in(*kind, &p.key, scope));
                if has_any {
                    unobserved.push(Unobserved {
                        kind: key.to_string(),
                        scope: Some(scope.scope.clone()),
                        reason: scope.reason.clone(),
                    });
                }
            }
        }
        unobserved.sort();
        unobserved.dedup();
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

    fn find_live(
        &self,
        kind: Kind,
        entry: Option<&'a LedgerEntry>,
        fields: &[Option<Resolved<'_>>],
    ) -> (Option<&'a LiveObject>, bool) {
        if let Some(e) = entry
            && let Some(o) = self.by_id[kind.index()].get(e.id.as_str())
        {
            return (Some(o), false);
        }
        if self.by_id[kind.index()].is_empty() {
            // Nothing of this kind exists: nothing to find by name.
            return (None, false);
        }
        let compared = compared_fields(kind);
        let key = natural_key_by(kind, |name| {
            let i = compared.iter().position(|f| f.name == name)?;
            match &fields[i] {
                Some(Resolved::Known(v)) => Some(v.as_ref()),
                _ => None,
            }
        });
        match key.and_then(|k| self.by_key(kind).get(&k).copied()) {
            // An object another desired resource owns or already matched is not up for
            // adoption, whatever its name says (it may be mid-rename).
            Some(o)
                if self.claimed.contains(&(kind, o.id.as_str()))
                    || self.owned_by_other(kind, &o.id, entry) =>
            {
                (None, false)
            }
            // Found by name: adopted unless the ledger already owns that very object.
            Some(o) => (Some(o), entry.is_none_or(|e| e.id != o.id)),
            None => (None, false),
        }
    }

    /// True when a ledger entry of another still-desired address owns the object. Looked up
    /// in an index built once, so matching stays linear in the number of resources.
    fn owned_by_other(&self, kind: Kind, id: &str, mine: Option<&LedgerEntry>) -> bool {
        let owners = self.owners.get_or_init(|| {
            let mut owners: FastMap<(&str, &str), Vec<(&Address, &LedgerEntry)>> =
                FastMap::default();
            let desired = self
                .entries
                .iter()
                .zip(&self.resources)
                .filter_map(|(e, r)| e.map(|e| (&r.address, e)));
            for (a, e) in desired.chain(self.removed.iter().copied()) {
                owners
                    .entry((e.kind.as_str(), e.id.as_str()))
                    .or_default()
                    .push((a, e));
            }
            owners
        });
        let kind_name = kind.to_string();
        owners.get(&(kind_name.as_str(), id)).is_some_and(|owners| {
            owners.iter().any(|(a, e)| {
                self.index.contains_key(&key_of(a)) && !mine.is_some_and(|m| std::ptr::eq(m, *e))
            })
        })
    }

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
        for (f, want) in compared_fields(kind).iter().zip(&fields) {
            let Some(want) = want else {
                continue;
            };
            let have = object.fields.get(f.name);
            let start = diffs.len();
            diff_field(
                Cow::Borrowed(f.name),
                &f.shape,
                f.change,
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
            // A kind that renews in place (an SMTP user's key, a secret's generated value)
            // keeps its object unless an identity field changes (docs/aws.md).
            let renamed = |identity: &[&str]| {
                c.fields
                    .iter()
                    .any(|d| d.forces_replacement && identity.contains(&d.path.as_ref()))
            };
            c.strategy = Some(match renews_in_place(kind) {
                Some(identity) if !renamed(identity) => ReplaceStrategy::InPlace,
                _ => replace_strategy(kind),
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

    /// Whether desired resource `r` lies in a scope that could not be observed, by its
    /// desired fields (references resolved where they can be: an unknown one may lie
    /// anywhere, so it counts as inside).
    /// True when the resource's kind, and the scope it lies in, were observed.
    fn is_observed(&self, r: &Resource) -> bool {
        let kind = r.kind();
        !self.failed[kind.index()]
            && !self
                .live
                .failed_scopes(kind)
                .iter()
                .any(|scope| self.resource_in(r, scope))
    }

    fn resource_in(&self, r: &Resource, scope: &FailedScope) -> bool {
        scope.contains(|field| match r.spec_json.get(field) {
            None | Some(Value::Null) => Some(None),
            Some(v) => match resolve(v, self) {
                Resolved::Known(v) => Some(Some(match v.as_ref() {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })),
                Resolved::Unknown => None,
            },
        })
    }

    /// Whether an object found by name (not by the ledger's id) may be adopted by desired
    /// resource `i`. Only with proof: this ledger's lineage marker on the object, this
    /// ledger's write-ahead intent for the address (a create that was interrupted), or the
    /// user's word (`lifecycle.adopt`). An object marked by another ledger, or whose
    /// unrecoverable secret output something reads, is never adopted.
    fn adoption(&self, i: usize, o: &LiveObject) -> Adoption {
        let r = self.resources[i];
        let (kind, address, id) = (r.kind(), &r.address, &o.id);
        let lineage = self.ledger.lineage.as_str();
        let marker = o.lineage();
        if let Some(theirs) = marker.filter(|l| *l != lineage) {
            return Adoption::Refused(format!(
                "{kind} {id} has this name but was created by another provisioner ledger (lineage {theirs}): not adopted, never deleted. Rename this resource, or move the object deliberately (`provisioner state forget` in that ledger, then `provisioner state import {address} {id}` here)"
            ));
        }
        let ours = !lineage.is_empty() && marker == Some(lineage);
        let intent = self.desired_pending(address);
        // Recorded by this ledger under an address that left the desired state: a rename.
        let renamed = self
            .removed
            .iter()
            .any(|(_, e)| e.kind == kind.key() && e.id == *id);
        if let Some((output, consumer)) = self.unreadable_output(r) {
            if renamed {
                return Adoption::Proven(
                    "the ledger records it under an address that left the desired state",
                );
            }
            return if ours || intent {
                Adoption::ReplaceLeftover(output)
            } else {
                Adoption::Refused(format!(
                    "{kind} {id} has this name, but this ledger did not create it, and its `{output}`, which {consumer} reads, cannot be read back from the cloud: it cannot be adopted. Rename this resource (its {}), or delete that object yourself if nothing uses it",
                    key_fields(kind)
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            };
        }
        if ours {
            Adoption::Proven("it carries this ledger's lineage")
        } else if renamed {
            Adoption::Proven("the ledger records it under an address that left the desired state")
        } else if intent {
            Adoption::Proven("after an interrupted create")
        } else if r.lifecycle.adopt {
            Adoption::Proven("lifecycle.adopt")
        } else {
            let marked = if kind.carries_lineage() {
                "it carries no lineage marker of this ledger"
            } else {
                "this kind cannot carry a lineage marker, and the ledger has no record of it"
            };
            Adoption::Refused(format!(
                "{kind} {id} has this name, but nothing proves this ledger made it ({marked}): not adopted. To manage it, set `lifecycle.adopt = true` on {address} or run `provisioner state import {address} {id}`; otherwise rename this resource"
            ))
        }
    }

    /// An unrecoverable output of `r` that its ledger entry says was never delivered to a
    /// consumer that is still desired and still reads it, with that consumer.
    fn never_delivered(
        &self,
        r: &Resource,
        entry: &LedgerEntry,
    ) -> Option<(&'static str, &'a Address)> {
        let waiting = undelivered(entry);
        if waiting.is_empty() {
            return None;
        }
        self.resources.iter().find_map(|c| {
            // A consumer that could not be observed may well have its copy: unknown.
            if !self.is_observed(c) {
                return None;
            }
            let pending = waiting.iter().find_map(|(output, consumers)| {
                consumers
                    .contains(&c.address.to_string())
                    .then_some(output.as_str())
            })?;
            c.references.iter().find_map(|(_, reference)| {
                if reference.address != r.address || reference.attribute != pending {
                    return None;
                }
                UNRECOVERABLE
                    .iter()
                    .find(|(k, out)| *k == r.kind() && *out == pending)
                    .map(|(_, out)| (*out, &c.address))
            })
        })
    }

    /// A secret output of `r` that another desired resource reads and that the cloud cannot
    /// give back (a deploy key's private key, an SMTP password), with its first reader.
    fn unreadable_output(&self, r: &Resource) -> Option<(&'static str, &'a Address)> {
        self.resources.iter().find_map(|c| {
            c.references.iter().find_map(|(_, reference)| {
                if reference.address != r.address {
                    return None;
                }
                UNRECOVERABLE
                    .iter()
                    .find(|(k, out)| *k == r.kind() && *out == reference.attribute)
                    .map(|(_, out)| (*out, &c.address))
            })
        })
    }

    /// Objects with the same natural key as `object` (the one this resource keeps) that
    /// nothing else claims or owns and that carry no other ledger's lineage, by id.
    fn leftovers(
        &self,
        kind: Kind,
        entry: Option<&LedgerEntry>,
        object: &LiveObject,
    ) -> Vec<String> {
        let Some(key) = natural_key(kind, &object.fields) else {
            return Vec::new();
        };
        let mut out: Vec<String> = self
            .live
            .objects(kind)
            .iter()
            .filter(|o| o.id != object.id)
            .filter(|o| natural_key(kind, &o.fields).as_deref() == Some(key.as_str()))
            .filter(|o| !self.claimed.contains(&(kind, o.id.as_str())))
            .filter(|o| !self.owned_by_other(kind, &o.id, entry))
            .filter(|o| {
                self.ledger
                    .resources
                    .values()
                    .all(|e| !(e.kind == kind.key() && e.id == o.id))
            })
            .filter(|o| o.lineage().is_none_or(|l| l == self.ledger.lineage))
            .map(|o| o.id.clone())
            .collect();
        out.sort();
        out
    }

    /// True when the ledger holds a write-ahead intent for the address.
    fn desired_pending(&self, address: &Address) -> bool {
        self.ledger.pending.contains_key(address)
    }

    /// Write-only values: changed when the desired fingerprint differs from the ledger's,
    /// when the cloud says it changed after provisioner's last write, or when the value comes
    /// from a resource that gets a new one in this apply.
    fn secret_changes(
        &mut self,
        r: &Resource,
        spec: &Value,
        entry: Option<&LedgerEntry>,
        object: &LiveObject,
    ) -> Vec<FieldChange> {
        let mut out = Vec::new();
        for &name in secret_fields(r.kind()) {
            let source = r.spec.secret(name);
            let mut changed = false;
            if let Some(SecretSource::Ref(reference)) = source
                && let Some(&j) = self.index.get(&key_of(&reference.address))
                && matches!(self.attrs[j], Attrs::AfterApply)
            {
                changed = true;
            }
            if let Some(SecretSource::Ref(reference)) = source
                && self.expiring(reference, entry)
            {
                changed = true;
            }
            if !self.desired.secret_fingerprints.is_empty() {
                let key = format!("{}.{name}", r.address);
                if let (Some(want), Some(e)) = (self.desired.secret_fingerprints.get(&key), entry)
                    && e.fingerprints.get(name) != Some(want)
                {
                    changed = true;
                }
            }
            // A generated value belongs to the resource: a hand edit there is not drift.
            let mut drift = false;
            if let (Some(seen), Some(written)) = (
                &object.updated_at,
                entry.and_then(|e| e.updated_at.as_ref()),
            ) && seen > written
                && !matches!(source, Some(SecretSource::Generate(_)))
            {
                changed = true;
                drift = true;
            }
            if entry.is_none()
                && !matches!(source, Some(SecretSource::Generate(_)))
                && spec.get(name).is_some()
            {
                // Adopted: provisioner has never written the value, so it must.
                changed = true;
            }
            if changed {
                if let Some(SecretSource::Ref(reference)) = source {
                    self.need_new_from(reference, &r.address);
                }
                out.push(FieldChange {
                    path: Cow::Borrowed(name),
                    old: Shown::Sensitive,
                    new: Shown::Sensitive,
                    forces_replacement: false,
                    drift,
                    source: None,
                    unchanged: None,
                });
            }
        }
        out
    }

    /// A value that expires — a cluster's kubeconfig, whose token lives `kubeconfig_expiry`
    /// (default 7 days) — is written again once two thirds of its lifetime have passed since
    /// the consumer last got it (the consumer's `updated_at` as the ledger recorded it,
    /// against the observation's time), so CI never holds an expired token.
    fn expiring(
        &self,
        reference: &crate::desired::refs::Reference,
        entry: Option<&LedgerEntry>,
    ) -> bool {
        if reference.attribute != "kubeconfig" || reference.address.kind() != "kubernetes_cluster" {
            return false;
        }
        let Some(&j) = self.index.get(&key_of(&reference.address)) else {
            return false;
        };
        let lifetime = self.resources[j]
            .spec_json
            .get("kubeconfig_expiry")
            .and_then(Value::as_str)
            .and_then(|d| crate::desired::values::Duration::parse(d).ok())
            .unwrap_or(7 * 86_400);
        let (Some(written), Some(now)) = (
            entry.and_then(|e| e.updated_at.as_deref()),
            self.live.observed_at.as_deref(),
        ) else {
            return false;
        };
        match (
            humantime::parse_rfc3339_weak(written),
            humantime::parse_rfc3339_weak(now),
        ) {
            (Ok(w), Ok(n)) => w + std::time::Duration::from_secs(lifetime * 2 / 3) <= n,
            _ => false,
        }
    }

    /// A consumer re-created from scratch needs every unrecoverable output it reads anew.
    fn note_needs_new(&mut self, r: &Resource) {
        for &name in secret_fields(r.kind()) {
            if let Some(SecretSource::Ref(reference)) = r.spec.secret(name) {
                self.need_new_from(reference, &r.address);
            }
        }
    }

    /// Records that `consumer` needs `reference` anew, when its producer's cloud cannot give
    /// it back and the producer is not already making a new one in this plan.
    fn need_new_from(&mut self, reference: &crate::desired::refs::Reference, consumer: &Address) {
        let Some(&j) = self.index.get(&key_of(&reference.address)) else {
            return;
        };
        let producer = self.resources[j];
        if !self.is_observed(producer) {
            return;
        }
        if unrecoverable(producer.kind(), &reference.attribute)
            && !matches!(self.attrs[j], Attrs::AfterApply)
            && !self.desired.replace.contains(&producer.address)
        {
            self.needs_new
                .push((producer.address.clone(), consumer.clone()));
        }
    }

    /// `rotate_after`: an object older than that (by its `created_at`, as the cloud or the
    /// ledger says, against the observation's time) is replaced. The observation's time is
    /// the planner's only clock, so plans stay reproducible.
    fn rotation_due(
        &self,
        r: &Resource,
        entry: Option<&LedgerEntry>,
        object: &LiveObject,
    ) -> Option<FieldChange> {
        let period = r.spec_json.get("rotate_after")?.as_str()?;
        let seconds = crate::desired::values::Duration::parse(period).ok()?;
        let born = object
            .attributes
            .get("created_at")
            .or_else(|| entry.and_then(|e| e.attributes.get("created_at")))?
            .as_str()?;
        let now = humantime::parse_rfc3339(self.live.observed_at.as_deref()?).ok()?;
        let created = humantime::parse_rfc3339(born).ok()?;
        let due = created + std::time::Duration::from_secs(seconds);
        (due <= now).then(|| FieldChange {
            path: Cow::Borrowed("rotate_after"),
            old: Shown::Value(Value::String(format!("created {born}"))),
            new: Shown::Value(Value::String(format!("rotation due (older than {period})"))),
            forces_replacement: true,
            drift: false,
            source: None,
            unchanged: None,
        })
    }

    fn plan_removed(&mut self) {
        for (address, entry) in std::mem::take(&mut self.removed) {
            let Some(kind) = Kind::parse(&entry.kind) else {
                self.note(
                    address,
                    format!("the ledger names unknown kind `{}`; left alone", entry.kind),
                );
                continue;
            };
            // Unknown is not absent: an entry in a scope that could not be observed is
            // neither deleted nor dropped.
            if self.failed[kind.index()]
                || self
                    .live
                    .failed_scopes(kind)
                    .iter()
                    .any(|scope| entry_in(entry, scope))
            {
                continue;
            }
            let exists = self.by_id[kind.index()].contains_key(entry.id.as_str());
            if !exists {
                self.note(address, "removed from the desired state and already gone from the cloud: dropped from the ledger");
                continue;
            }
            if self.claimed.contains(&(kind, entry.id.as_str())) {
                self.note(address, "its object is now managed under another address: dropped from the ledger, not deleted");
                continue;
            }
            let action = if self.desired.settings.prune {
                Action::Delete
            } else {
                Action::Orphan
            };
            if action == Action::Delete
                && entry.prevent_destroy
                && !self.desired.allow_destroy.contains(address)
            {
                self.protected.push((address.clone(), format!("removed from the desired state, but prevent_destroy was set when it was last applied; to delete it deliberately: `provisioner apply --allow-destroy {address}`")));
            }
            let reason = if action == Action::Orphan {
                Some(
                    "removed from the desired state; prune is off, so it is left alone".to_string(),
                )
            } else {
                None
            };
            let mut c = change(
                address.clone(),
                action,
                Some(entry.id.clone()),
                Vec::new(),
                reason,
            );
            if action == Action::Delete {
                // Kept for ordering deletes: what this one needed before it.
                c.after = entry.depends_on.iter().cloned().collect();
            }
            self.removed_changes.push(c);
        }
    }

    /// Write-ahead intents of resources no longer desired: a create was interrupted (the
    /// process died between the create and recording it) and the resource was removed from
    /// the desired state since. The object it may have left is found by the intent's natural
    /// key and deleted (with `prune`) or reported as an orphan, so nothing is left behind
    /// unnoticed.
    fn plan_interrupted(&mut self) {
        let ledger = self.ledger;
        for (address, intent) in &ledger.pending {
            if self.index.contains_key(&key_of(address)) || ledger.resources.contains_key(address) {
                continue;
            }
            let Some(kind) = Kind::parse(&intent.kind) else {
                continue;
            };
            if self.failed[kind.index()]
                || self
                    .live
                    .failed_scopes(kind)
                    .iter()
                    .any(|scope| intent_in(kind, &intent.key, scope))
            {
                continue;
            }
            let Some(object) = self.by_key(kind).get(&intent.key).copied() else {
                self.note(
                    address,
                    "an interrupted create left nothing behind and the resource is no longer desired: forgotten",
                );
                continue;
            };
            let foreign = object.lineage().is_some_and(|l| l != self.ledger.lineage);
            let owned = self
                .ledger
                .resources
                .values()
                .any(|e| e.kind == intent.kind && e.id == object.id);
            if foreign || owned || self.claimed.contains(&(kind, object.id.as_str())) {
                self.note(
                    address,
                    "an interrupted create's object belongs to something else now: forgotten, not deleted",
                );
                continue;
            }
            let action = if self.desired.settings.prune {
                Action::Delete
            } else {
                Action::Orphan
            };
            let reason = if action == Action::Delete {
                "left by an interrupted create; no longer desired"
            } else {
                "left by an interrupted create; no longer desired, and prune is off, so it is left alone"
            };
            let mut c = change(
                address.clone(),
                action,
                Some(object.id.clone()),
                Vec::new(),
                Some(reason.to_string()),
            );
            c.cause = Cause::Recovery;
            self.removed_changes.push(c);
        }
    }

    fn order_into_waves(mut self, order: &[usize]) -> Plan {
        let acting = |c: &Change| c.action.acts() && c.action != Action::Delete;
        let mut waves: Vec<Option<usize>> = vec![None; self.resources.len()];
        for &i in order {
            if !self.changes[i].as_ref().is_some_and(acting) {
                continue;
            }
            let deps: Vec<usize> = self
                .deps
                .edges(i)
                .iter()
                .copied()
                .filter(|&d| self.changes[d].as_ref().is_some_and(acting))
                .collect();
            let wave = deps
                .iter()
                .filter_map(|&d| waves[d])
                .max()
                .map_or(0, |w| w + 1);
            waves[i] = Some(wave);
            let after = deps
                .iter()
                .map(|&d| self.resources[d].address.clone())
                .collect();
            if let Some(c) = self.changes[i].as_mut() {
                c.after = after;
                c.wave = wave;
            }
        }
        // Deletes run after everything else, dependants first: a delete is ready once no
        // other pending delete depends on it.
        let first_delete_wave = waves.iter().flatten().max().map_or(0, |w| w + 1);
        let deletes: Vec<usize> = (0..self.removed_changes.len())
            .filter(|&j| self.removed_changes[j].action == Action::Delete)
            .collect();
        let position: FastMap<&Address, usize> = deletes
            .iter()
            .map(|&j| (&self.removed_changes[j].address, j))
            .collect();
        // needs[j]: the deletes j depends on; dependants[d]: deletes that depend on d.
        let mut needs: FastMap<usize, Vec<usize>> = FastMap::default();
        let mut dependants: FastMap<usize, Vec<usize>> = FastMap::default();
        for &j in &deletes {
            for d in &self.removed_changes[j].after {
                if let Some(&dj) = position.get(d)
                    && dj != j
                {
                    needs.entry(j).or_default().push(dj);
                    dependants.entry(dj).or_default().push(j);
                }
            }
        }
        let mut waiting: FastMap<usize, usize> = deletes
            .iter()
            .map(|&j| (j, dependants.get(&j).map_or(0, Vec::len)))
            .collect();
        let mut remaining: BTreeSet<usize> = deletes.iter().copied().collect();
        let mut wave = first_delete_wave;
        let mut delete_wave: FastMap<usize, usize> = FastMap::default();
        while !remaining.is_empty() {
            let mut ready: Vec<usize> = remaining
                .iter()
                .copied()
                .filter(|j| waiting[j] == 0)
                .collect();
            if ready.is_empty() {
                // A cycle in the ledger's record: break it rather than stall.
                ready = remaining.iter().copied().collect();
            }
            for &j in &ready {
                remaining.remove(&j);
                delete_wave.insert(j, wave);
            }
            for &j in &ready {
                for d in needs.get(&j).map(Vec::as_slice).unwrap_or_default() {
                    if let Some(n) = waiting.get_mut(d) {
                        *n = n.saturating_sub(1);
                    }
                }
            }
            wave += 1;
        }
        let removed_addresses: Vec<Address> = self
            .removed_changes
            .iter()
            .map(|c| c.address.clone())
            .collect();
        for (j, c) in self.removed_changes.iter_mut().enumerate() {
            if let Some(&w) = delete_wave.get(&j) {
                c.wave = w;
                let mut after: Vec<Address> = dependants
                    .get(&j)
                    .map(|ds| ds.iter().map(|&d| removed_addresses[d].clone()).collect())
                    .unwrap_or_default();
                after.sort();
                c.after = after;
            }
        }
        // Both lists are in address order: merge them, then order by wave (a stable sort,
        // so addresses stay sorted within a wave).
        let mut changes = Vec::with_capacity(self.resources.len() + self.removed_changes.len());
        let mut kept = std::mem::take(&mut self.changes)
            .into_iter()
            .flatten()
            .peekable();
        for c in std::mem::take(&mut self.removed_changes) {
            while let Some(k) = kept.next_if(|k| k.address < c.address) {
                changes.push(k);
            }
            changes.push(c);
        }
        changes.extend(kept);
        changes.sort_by_key(|c| c.wave);
        Plan {
            format_version: PLAN_FORMAT_VERSION,
            changes,
        }
    }
}

/// Whether a ledger entry lies in a scope that could not be observed, by the fields it was
/// last applied with.
pub fn entry_in(entry: &LedgerEntry, scope: &FailedScope) -> bool {
    scope.contains(|field| match entry.applied.get(field) {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(s)) if s.contains("${") => None,
        Some(Value::String(s)) => Some(Some(s.clone())),
        Some(v) => Some(Some(v.to_string())),
    })
}

/// Whether a write-ahead intent lies in a scope that could not be observed, by its natural
/// key (the key fields joined as [`natural_key`] joins them); a scope field that is not part
/// of the key may hold anything, so it counts as inside.
pub fn intent_in(kind: Kind, key: &str, scope: &FailedScope) -> bool {
    let parts: Vec<&str> = key.split('\u{1f}').collect();
    scope.contains(|field| {
        let i = key_fields(kind).iter().position(|f| *f == field)?;
        match parts.get(i) {
            Some(&"") => Some(None),
            Some(p) => Some(Some(p.to_string())),
            None => None,
        }
    })
}

fn key_of(a: &Address) -> (&str, &str, &str) {
    (a.provider(), a.kind(), a.name())
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
    }
}

fn create_fields(r: &Resource, spec: &Value, fields: &[Option<Resolved<'_>>]) -> Vec<FieldChange> {
    let mut out: Vec<FieldChange> = compared_fields(r.kind())
        .iter()
        .zip(fields)
        .filter_map(|(f, v)| Some((f.name, v.as_ref()?)))
        .map(|(k, v)| FieldChange {
            path: Cow::Borrowed(k),
            old: Shown::Absent,
            new: match v {
                Resolved::Known(v) => Shown::Value(v.clone().into_owned()),
                Resolved::Unknown => Shown::KnownAfterApply,
            },
            forces_replacement: false,
            drift: false,
            source: None,
            unchanged: None,
        })
        .collect();
    for &name in secret_fields(r.kind()) {
        if spec.get(name).is_some_and(|v| !v.is_null()) {
            out.push(FieldChange {
                path: Cow::Borrowed(name),
                old: Shown::Absent,
                new: Shown::Sensitive,
                forces_replacement: false,
                drift: false,
                source: None,
                unchanged: None,
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

fn is_ignored(path: &str, ignore: &[String]) -> bool {
    ignore.iter().any(|i| within(i, path))
}

/// True when `inner` is the field path `outer` or lies inside it (`outer.x`, `outer[+]`,
/// `outer[2].port`).
fn within(outer: &str, inner: &str) -> bool {
    inner == outer
        || (inner.starts_with(outer)
            && matches!(inner.as_bytes().get(outer.len()), Some(b'.') | Some(b'[')))
}

fn shown(v: Option<&Value>) -> Shown {
    match v {
        None | Some(Value::Null) => Shown::Absent,
        Some(v) => Shown::Value(v.clone()),
    }
}

/// Compares one field, descending into tables so paths name the innermost difference.
fn diff_field(
    path: Cow<'static, str>,
    shape: &Shape,
    policy: Policy,
    want: &Resolved<'_>,
    have: Option<&Value>,
    out: &mut Vec<FieldChange>,
) {
    let want = match want {
        Resolved::Unknown => {
            out.push(FieldChange {
                path: path.clone(),
                old: shown(have),
                new: Shown::KnownAfterApply,
                forces_replacement: policy == Policy::Replace,
                drift: false,
                source: None,
                unchanged: None,
            });
            return;
        }
        Resolved::Known(v) => v.as_ref(),
    };
    // An optional list written `[]` is an explicit "none" (an SES configuration set's
    // `suppressed_reasons = []` turns suppression off), not "unset": the cloud having no
    // value at all is a difference.
    if matches!(shape, Shape::Optional(_))
        && want.as_array().is_some_and(Vec::is_empty)
        && have.is_none_or(Value::is_null)
    {
        out.push(FieldChange {
            path: path.clone(),
            old: shown(have),
            new: Shown::Value(want.clone()),
            forces_replacement: policy == Policy::Replace,
            drift: false,
            source: None,
            unchanged: None,
        });
        return;
    }
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
                    (Some(wv), hv) => diff_field(
                        Cow::Owned(p.clone()),
                        inner,
                        policy,
                        &Resolved::Known(Cow::Borrowed(wv)),
                        hv,
                        out,
                    ),
                    (None, Some(hv)) => out.push(FieldChange {
                        path: p.into(),
                        old: Shown::Value(hv.clone()),
                        new: Shown::Absent,
                        forces_replacement: policy == Policy::Replace,
                        drift: false,
                        source: None,
                        unchanged: None,
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
                    Cow::Owned(format!("{path}.{}", f.name)),
                    &f.shape,
                    policy,
                    &Resolved::Known(Cow::Borrowed(wv)),
                    h.get(f.name),
                    out,
                );
            }
        }
        (Shape::Set(inner) | Shape::List(inner), Value::Array(w), Some(Value::Array(h)))
            if holds_tables(inner) =>
        {
            if covers_shaped(shape, want, have) {
                return;
            }
            let ordered = matches!(shape, Shape::List(_));
            element_changes(&path, inner, policy, ordered, w, h, out);
        }
        _ => {
            if covers_shaped(shape, want, have) || same_ignoring_case(shape, want, have) {
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
                path: path.clone(),
                old: shown(have),
                new: Shown::Value(want.clone()),
                forces_replacement: forces,
                drift: false,
                source: None,
                unchanged: None,
            });
        }
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

/// True when a list's elements are tables (firewall rules, forwarding rules): their
/// differences are shown element by element.
fn holds_tables(shape: &Shape) -> bool {
    match shape {
        Shape::Optional(inner) => holds_tables(inner),
        Shape::Block(..) | Shape::Map(_) => true,
        _ => false,
    }
}

/// The differences between two lists of tables, element by element, so a plan shows the
/// rule that changed, not two whole lists. An order-free list (a [`Shape::Set`]: firewall
/// rules) pairs elements as a multiset: each desired element the cloud lacks is `path[+]`,
/// each cloud element no desired one covers is `path[-]`. An ordered list compares
/// position by position (`path[2].port`), then adds or removes the tail.
fn element_changes(
    path: &str,
    inner: &Shape,
    policy: Policy,
    ordered: bool,
    want: &[Value],
    have: &[Value],
    out: &mut Vec<FieldChange>,
) {
    let forces = policy == Policy::Replace;
    let added = |v: &Value| FieldChange {
        path: Cow::Owned(format!("{path}[+]")),
        old: Shown::Absent,
        new: Shown::Value(v.clone()),
        forces_replacement: forces,
        drift: false,
        source: None,
        unchanged: None,
    };
    let removed = |v: &Value| FieldChange {
        path: Cow::Owned(format!("{path}[-]")),
        old: Shown::Value(v.clone()),
        new: Shown::Absent,
        forces_replacement: forces,
        drift: false,
        source: None,
        unchanged: None,
    };
    if ordered {
        for (i, (w, h)) in want.iter().zip(have).enumerate() {
            diff_field(
                Cow::Owned(format!("{path}[{i}]")),
                inner,
                policy,
                &Resolved::Known(Cow::Borrowed(w)),
                Some(h),
                out,
            );
        }
        out.extend(want.iter().skip(have.len()).map(added));
        out.extend(have.iter().skip(want.len()).map(removed));
        return;
    }
    let mut used = vec![false; have.len()];
    let mut missing = Vec::new();
    for w in want {
        match (0..have.len()).find(|&i| !used[i] && covers_shaped(inner, w, Some(&have[i]))) {
            Some(i) => used[i] = true,
            None => missing.push(w),
        }
    }
    let first = out.len();
    out.extend(missing.into_iter().map(added));
    out.extend(
        have.iter()
            .zip(&used)
            .filter(|(_, u)| !**u)
            .map(|(h, _)| removed(h)),
    );
    let kept = used.iter().filter(|u| **u).count();
    if let Some(f) = out.get_mut(first).filter(|_| kept > 0) {
        f.unchanged = Some(kept);
    }
}

/// True when the cloud's value satisfies the desired one. What the desired state leaves
/// unset (null, or an empty list or table) accepts whatever the cloud has; inside tables,
/// fields the desired state does not name are the cloud's business; lists match element by
/// element, in order.
fn covers(want: &Value, have: Option<&Value>) -> bool {
    let empty = |v: &Value| match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(|x| x.is_null()),
        _ => false,
    };
    match (want, have) {
        (w, None | Some(Value::Null)) => empty(w),
        (Value::Object(w), Some(Value::Object(h))) => w
            .iter()
            .all(|(k, wv)| covers(wv, h.get(k)) || (empty(wv) && h.get(k).is_none_or(empty))),
        (Value::Array(w), Some(Value::Array(h))) => {
            w.len() == h.len() && w.iter().zip(h).all(|(a, b)| covers(a, Some(b)))
        }
        (w, Some(h)) => w == h,
    }
}

/// [`covers`], guided by the field's shape: a [`Shape::Set`] matches as a multiset (each
/// desired element covered by a different observed one, in any order), and blocks and
/// tables pass each field's shape down, so a set inside a list element is a set too.
fn covers_shaped(shape: &Shape, want: &Value, have: Option<&Value>) -> bool {
    match (shape, want, have) {
        (Shape::Optional(inner), _, _) => covers_shaped(inner, want, have),
        (Shape::Set(inner), Value::Array(w), Some(Value::Array(h))) => {
            if w.len() != h.len() {
                return false;
            }
            let mut used = vec![false; h.len()];
            w.iter().all(|wv| {
                let found = h
                    .iter()
                    .enumerate()
                    .position(|(i, hv)| !used[i] && covers_shaped(inner, wv, Some(hv)));
                found.map(|i| used[i] = true).is_some()
            })
        }
        (Shape::List(inner), Value::Array(w), Some(Value::Array(h))) => {
            w.len() == h.len()
                && w.iter()
                    .zip(h)
                    .all(|(a, b)| covers_shaped(inner, a, Some(b)))
        }
        (Shape::Block(_, fields), Value::Object(w), Some(Value::Object(h))) => {
            w.iter()
                .all(|(k, wv)| match fields.iter().find(|f| f.name == k) {
                    Some(f) => {
                        covers_shaped(&f.shape, wv, h.get(k))
                            || (covers(wv, None) && h.get(k).is_none_or(|hv| covers(hv, None)))
                    }
                    None => covers(wv, h.get(k)),
                })
        }
        (Shape::Map(inner), Value::Object(w), Some(Value::Object(h))) => w.iter().all(|(k, wv)| {
            covers_shaped(inner, wv, h.get(k))
                || (covers(wv, None) && h.get(k).is_none_or(|hv| covers(hv, None)))
        }),
        _ => covers(want, have),
    }
}

/// GitHub stores names upper-case and matches repositories case-insensitively: `kubeconfig`
/// written in the desired state is `KUBECONFIG` on GitHub, and that is no drift.
fn same_ignoring_case(shape: &Shape, want: &Value, have: Option<&Value>) -> bool {
    use crate::desired::schema::Decode;
    use crate::desired::values::{GhEnvironment, GhName, Repository};
    let shape = match shape {
        Shape::Optional(inner) => inner.as_ref(),
        s => s,
    };
    let Shape::Format(d) = shape else {
        return false;
    };
    let insensitive = [GhName::shape(), Repository::shape(), GhEnvironment::shape()]
        .iter()
        .any(|s| matches!(s, Shape::Format(e) if e == d));
    match (want.as_str(), have.and_then(Value::as_str)) {
        (Some(w), Some(h)) => insensitive && w.eq_ignore_ascii_case(h),
        _ => false,
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

/// Edges between resource numbers, stored flat (one allocation, not one per resource).
struct Graph {
    /// `targets[starts[i]..starts[i + 1]]` are the edges of node `i`.
    starts: Vec<usize>,
    targets: Vec<usize>,
}

impl Graph {
    fn from_lists<I: IntoIterator<Item = usize>>(lists: impl Iterator<Item = I>) -> Self {
        let mut starts = vec![0];
        let mut targets = Vec::new();
        for list in lists {
            targets.extend(list);
            starts.push(targets.len());
        }
        Graph { starts, targets }
    }

    fn len(&self) -> usize {
        self.starts.len() - 1
    }

    fn edges(&self, i: usize) -> &[usize] {
        &self.targets[self.starts[i]..self.starts[i + 1]]
    }

    /// The same graph with every edge turned around.
    fn reversed(&self) -> Graph {
        let mut counts = vec![0usize; self.len() + 1];
        for &t in &self.targets {
            counts[t + 1] += 1;
        }
        for i in 1..counts.len() {
            counts[i] += counts[i - 1];
        }
        let starts = counts.clone();
        let mut next = counts;
        let mut targets = vec![0; self.targets.len()];
        for i in 0..self.len() {
            for &t in self.edges(i) {
                targets[next[t]] = i;
                next[t] += 1;
            }
        }
        Graph { starts, targets }
    }
}

/// Kahn's algorithm over resource numbers; ties go to the lowest number, which is the
/// address order, so the result is deterministic.
fn topological_indices(deps: &Graph) -> Vec<usize> {
    let mut waiting: Vec<usize> = (0..deps.len()).map(|i| deps.edges(i).len()).collect();
    let dependants = deps.reversed();
    let mut ready: BinaryHeap<Reverse<usize>> = waiting
        .iter()
        .enumerate()
        .filter(|(_, n)| **n == 0)
        .map(|(i, _)| Reverse(i))
        .collect();
    let mut out = Vec::with_capacity(deps.len());
    while let Some(Reverse(i)) = ready.pop() {
        out.push(i);
        for &d in dependants.edges(i) {
            waiting[d] -= 1;
            if waiting[d] == 0 {
                ready.push(Reverse(d));
            }
        }
    }
    // Validation rejects cycles, so every resource was emitted.
    out
}

/// The planner's hash: FxHash's word-at-a-time mix. Keys are addresses and cloud ids from the
/// user's own configuration and clouds, so flooding is not a threat, and this hashes those
/// short strings several times faster than the default SipHash.
#[derive(Clone, Copy, Default)]
struct Fx(u64);

impl Fx {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl std::hash::Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(c);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;
type FastSet<K> = HashSet<K, BuildHasherDefault<Fx>>;

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
