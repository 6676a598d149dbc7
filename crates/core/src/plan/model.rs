//! What a plan is: an ordered list of changes, each decided completely (no choice is left to
//! the executor), grouped into waves that may run in parallel, plus a report of what was
//! skipped and why.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::Value;

use crate::desired::Address;

/// Version of the JSON plan format (`provisioner diff --json`).
pub const PLAN_FORMAT_VERSION: u32 = 1;

/// What happens to one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Replacements first in summaries: they destroy something.
    Replace,
    /// Delete a ledger-owned object (only with `prune`).
    Delete,
    /// Create a new object.
    Create,
    /// Change fields in place.
    Update,
    /// Take over an object found by name that the ledger does not know yet.
    Adopt,
    /// Left the desired state with `prune` off: reported, left alone.
    Orphan,
    /// Drift seen on a `detect` resource: reported, not corrected.
    Drift,
    /// An object with the resource's name exists that this ledger cannot prove is its own
    /// (no lineage marker of this ledger, no write-ahead intent, no `lifecycle.adopt`):
    /// nothing is done, and the change's reason says how to adopt it or rename.
    Conflict,
    /// Nothing to do.
    NoOp,
}

impl Action {
    /// The word used in the JSON plan and summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Replace => "replace",
            Action::Delete => "delete",
            Action::Create => "create",
            Action::Update => "update",
            Action::Adopt => "adopt",
            Action::Orphan => "orphan",
            Action::Drift => "drift",
            Action::Conflict => "conflict",
            Action::NoOp => "no-op",
        }
    }

    /// True when the executor must call the cloud.
    pub fn acts(self) -> bool {
        matches!(
            self,
            Action::Replace | Action::Delete | Action::Create | Action::Update | Action::Adopt
        )
    }
}

/// Why a change is planned: because the desired state asks for something the ledger has
/// not applied, or because the cloud no longer matches what provisioner last applied.
/// Only drift is drift: `provisioner_drift_detected_total` and the drift alert count
/// `drift` and `desired-and-drift`, never a rollout of edited files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cause {
    /// The desired state changed: a new resource, an edited field, a removal, a requested
    /// replacement or rotation, a value from a producer that changes in this apply.
    #[default]
    Desired,
    /// The cloud changed: an object deleted, a field edited or a secret overwritten outside
    /// provisioner since it last applied the resource.
    Drift,
    /// Both: some fields were edited in the files, others in the cloud.
    DesiredAndDrift,
    /// Left by an interrupted apply: a create whose result was never recorded.
    Recovery,
}

impl Cause {
    /// The word used in the JSON plan, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Desired => "desired",
            Cause::Drift => "drift",
            Cause::DesiredAndDrift => "desired-and-drift",
            Cause::Recovery => "recovery",
        }
    }

    /// True when the cloud changed behind provisioner's back.
    pub fn is_drift(self) -> bool {
        matches!(self, Cause::Drift | Cause::DesiredAndDrift)
    }

    /// The cause of a change made of fields, some of which drifted.
    pub fn of_fields(fields: &[FieldChange]) -> Cause {
        let drift = fields.iter().filter(|f| f.drift).count();
        match drift {
            0 => Cause::Desired,
            n if n == fields.len() => Cause::Drift,
            _ => Cause::DesiredAndDrift,
        }
    }
}

/// Order of a replacement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReplaceStrategy {
    /// The new object is created before the old one is deleted (no outage).
    CreateBeforeDestroy,
    /// The old object must go first (its name is unique).
    DestroyFirst,
    /// The object stays and the provider renews what forced the replacement in it: an IAM
    /// user's access key, a secret's generated value. The old credential goes only once
    /// every consumer has the new one (`provisioner_engine::providers::Applied::retiring`).
    InPlace,
}

/// A value as a plan shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum Shown {
    /// A known value.
    Value(Value),
    /// Not set.
    Absent,
    /// A secret: never shown.
    Sensitive,
    /// Decided by a resource created in the same apply.
    KnownAfterApply,
}

impl Shown {
    /// Human form: JSON text, `(sensitive)`, `(known after apply)`.
    pub fn render(&self) -> String {
        match self {
            Shown::Value(Value::String(s)) => format!("{:?}", elide(s)),
            Shown::Value(v) => inline(v),
            Shown::Absent => "(none)".into(),
            Shown::Sensitive => "(sensitive)".into(),
            Shown::KnownAfterApply => "(known after apply)".into(),
        }
    }
}

/// The longest string a text plan shows whole, in characters.
const LONGEST: usize = 160;

/// A long string with its middle left out (`"-----BEGIN…(1,204 more characters)…END-----"`);
/// the JSON plan keeps it whole.
pub fn elide(s: &str) -> std::borrow::Cow<'_, str> {
    let n = s.chars().count();
    if n <= LONGEST {
        return std::borrow::Cow::Borrowed(s);
    }
    let head: String = s.chars().take(100).collect();
    let tail: String = s.chars().skip(n - 40).collect();
    std::borrow::Cow::Owned(format!("{head}…({} more characters)…{tail}", n - 140))
}

/// A value on one line, as the desired state would write it: `{ port = 443, protocol =
/// "tcp" }`, `["a", "b"]`; long strings elided.
pub fn inline(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{:?}", elide(s)),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(inline).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => {
            let fields: Vec<String> = map
                .iter()
                .filter(|(_, v)| !is_nothing(v))
                .map(|(k, v)| format!("{} = {}", key(k), inline(v)))
                .collect();
            if fields.is_empty() {
                "{}".into()
            } else {
                format!("{{ {} }}", fields.join(", "))
            }
        }
        other => other.to_string(),
    }
}

/// A table key as TOML writes it: bare when it can be, quoted otherwise
/// (`"platform.example.com/pool"`).
pub fn key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        k.to_string()
    } else {
        format!("{k:?}")
    }
}

/// True for what a table's field shows nothing with: null, `[]`, `{}`.
pub fn is_nothing(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_nothing),
        _ => false,
    }
}

/// One field that differs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FieldChange {
    /// Field path (`node_pools.workers.count`); a top-level field's path is its static name.
    pub path: Cow<'static, str>,
    /// What the cloud (or the ledger) has.
    pub old: Shown,
    /// What the desired state says.
    pub new: Shown,
    /// True when this field forces the replacement.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub forces_replacement: bool,
    /// True when the cloud's value is no longer what provisioner last applied (someone
    /// changed it outside provisioner); false when only the desired state changed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub drift: bool,
    /// Where the desired value is written (`desired-state/dns.toml:12:7`), for a change the
    /// desired state asks for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// On the first element change of a list of tables (`inbound_rules[+]`): how many of its
    /// elements are unchanged (the text plan folds them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unchanged: Option<usize>,
}

/// One planned change.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Change {
    /// The resource.
    pub address: Address,
    /// What happens.
    pub action: Action,
    /// Why: the desired state changed, the cloud drifted, or both.
    pub cause: Cause,
    /// Where the resource is declared (`desired-state/network.toml:4:1`); absent for a
    /// resource removed from the desired state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The cloud id of the existing object (update, replace, delete, adopt, orphan).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_id: Option<String>,
    /// Fields that change (for create: every field set).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
    /// For a replacement: which order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<ReplaceStrategy>,
    /// Drift on `ignore_changes` fields: expected, never corrected.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<FieldChange>,
    /// Why, in a few words (re-created after an outside delete, adopted after a crash, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Objects of the same natural key that interrupted creates (or replacements) of this
    /// resource left behind (this ledger's write-ahead intent proves it): deleted by the
    /// executor once the change itself has succeeded, before it is recorded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub leftovers: Vec<String>,
    /// Changes in this plan that must finish first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<Address>,
    /// Parallel group: every change of wave N may run once waves before N are done.
    pub wave: usize,
    /// What the object's controller says of its health, for kinds that report it
    /// (`flux.instance`): shown when it is not ready; never a reason to act.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::live::Health>,
}

/// The plan: every change, in execution order.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Plan {
    /// JSON format version.
    pub format_version: u32,
    /// The environment planned (`-e NAME`), when the desired state has environments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Changes in order: waves ascending, then address.
    pub changes: Vec<Change>,
}

impl Plan {
    /// True when applying would call no cloud API.
    pub fn is_empty(&self) -> bool {
        !self.has_changes()
    }

    /// True when at least one change acts on the cloud.
    pub fn has_changes(&self) -> bool {
        let Plan {
            format_version: _,
            environment: _,
            changes,
        } = self;
        changes.iter().any(|c| c.action.acts())
    }

    /// Changes that cannot be made because an object of the same name exists that this
    /// ledger cannot prove is its own.
    pub fn conflicts(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.action == Action::Conflict)
    }

    /// Changes caused, at least in part, by drift (acting ones and detect-mode reports).
    pub fn drifted(&self) -> impl Iterator<Item = &Change> {
        self.changes
            .iter()
            .filter(|c| (c.action.acts() || c.action == Action::Drift) && c.cause.is_drift())
    }

    /// Number of changes with each action, in summary order.
    pub fn counts(&self) -> Vec<(Action, usize)> {
        let mut counts: std::collections::BTreeMap<Action, usize> = Default::default();
        for c in &self.changes {
            *counts.entry(c.action).or_default() += 1;
        }
        counts.into_iter().collect()
    }
}

/// A note of the report: something skipped, withheld or worth knowing.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Note {
    /// The resource or kind concerned.
    pub subject: String,
    /// What happened and why.
    pub message: String,
}

/// A kind the plan needed (the desired state or the ledger has resources of it) that could
/// not be observed, or one scope of it (a repository, an environment, a DNS zone, a region):
/// nothing of it (in that scope) is created, adopted or deleted, and whether it matches is
/// unknown.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Unobserved {
    /// `provider.kind`.
    pub kind: String,
    /// The part of the kind that was not observed, by the field values that identify it
    /// (`{"repository": "example-org/third-repo"}`); absent when the whole kind was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<std::collections::BTreeMap<String, String>>,
    /// Why: missing credentials, 401/403, rate limit, timeout, an answer that could not be
    /// read, or a provider that did not report the kind.
    pub reason: String,
}

impl Unobserved {
    /// `provider.kind`, with the scope when only part of the kind was not observed:
    /// `github.actions_secret (repository=example-org/third-repo)`.
    pub fn subject(&self) -> String {
        match &self.scope {
            None => self.kind.clone(),
            Some(scope) => format!(
                "{} ({})",
                self.kind,
                scope
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// What the planner skipped or withheld, and why.
#[must_use]
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PlanReport {
    /// Notes, sorted.
    pub notes: Vec<Note>,
    /// Kinds the plan needed that could not be observed, sorted. Non-empty means the plan
    /// is incomplete: no output may say the clouds match.
    pub unobserved: Vec<Unobserved>,
}

impl PlanReport {
    /// True when every kind the plan needed was observed.
    pub fn is_complete(&self) -> bool {
        self.unobserved.is_empty()
    }
}

/// A plan that must not be carried out.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PlanError {
    /// Resources protected by `prevent_destroy` would be destroyed.
    #[error("the plan would destroy protected resources: {}", .0.iter().map(|(a, why)| format!("{a} ({why})")).collect::<Vec<_>>().join("; "))]
    PreventDestroy(Vec<(Address, String)>),
}
