//! What observing the clouds returned: per kind, whether the observation is complete, and
//! every object seen with its ids, fields (in the desired state's vocabulary), tags and
//! exported attributes. Providers fill it; the planner reads it; `--live-from` loads it
//! from a JSON snapshot so plans can be made with no credentials.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::desired::Kind;

/// Objects provisioner creates carry `provisioner:lineage:<ledger lineage>` where their kind
/// has tags, so an object made by another ledger is never mistaken for one to adopt.
pub const LINEAGE_TAG_PREFIX: &str = "provisioner:lineage:";

/// The lineage tag for a ledger.
pub fn lineage_tag(lineage: &str) -> String {
    format!("{LINEAGE_TAG_PREFIX}{lineage}")
}

/// The snapshot format understood by `--live-from`.
pub const LIVE_FORMAT_VERSION: u32 = 1;

/// Everything observed in one pass.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveState {
    /// Snapshot format version.
    #[serde(default = "format_version")]
    pub format_version: u32,
    /// When the observation finished (RFC 3339), the planner's only notion of "now".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_at: Option<String>,
    /// Observations by kind (`digitalocean.vpc`). A kind that could not be observed says so
    /// with `failed`. A kind absent from a provider's answer or from a `--live-from`
    /// snapshot is marked not observed by [`LiveState::mark_missing`] (unknown is never
    /// absent); only a `LiveState` built in code treats an absent kind as empty.
    #[serde(default)]
    pub kinds: BTreeMap<String, KindObservation>,
}

fn format_version() -> u32 {
    LIVE_FORMAT_VERSION
}

/// What was seen of one kind.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KindObservation {
    /// Whether the list was read completely.
    #[serde(default)]
    pub status: ObserveStatus,
    /// The objects.
    #[serde(default)]
    pub objects: Vec<LiveObject>,
    /// Parts of a complete observation that could not be read: the kind was listed
    /// everywhere else, and only what lies in these scopes is unknown (a GitHub repository
    /// the token cannot see, one DigitalOcean zone whose records failed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_scopes: Vec<FailedScope>,
}

/// A part of a kind that could not be observed, named by the field values its objects
/// share: `{"repository": "example-org/third-repo"}`, `{"repository": …, "environment":
/// …}`, `{"domain": "example.com"}`. An object (or a ledger entry, by its applied fields) is
/// in the scope when each of these fields has this value (ASCII case-insensitively: GitHub
/// repositories and environments, DNS zones and regions are).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FailedScope {
    /// The identifying field values.
    pub scope: BTreeMap<String, String>,
    /// Why it could not be observed.
    pub reason: String,
}

impl FailedScope {
    /// A scope named by its field values.
    pub fn new<'k>(
        fields: impl IntoIterator<Item = (&'k str, String)>,
        reason: impl Into<String>,
    ) -> Self {
        FailedScope {
            scope: fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            reason: reason.into(),
        }
    }

    /// Whether the object whose fields `get` reads lies in this scope. A field whose value
    /// is not known (`None` from `get`) may lie anywhere: it counts as inside.
    pub fn contains(&self, get: impl Fn(&str) -> Option<Option<String>>) -> bool {
        self.scope.iter().all(|(field, want)| match get(field) {
            Some(Some(have)) => have.eq_ignore_ascii_case(want),
            Some(None) => false,
            None => true,
        })
    }

    /// The scope as text: `repository=example-org/third-repo, environment=production`.
    pub fn describe(&self) -> String {
        self.scope
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Whether a kind's observation can be trusted to be complete.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObserveStatus {
    /// Every page was read.
    #[default]
    Complete,
    /// Listing failed (429, 5xx, timeout): unknown, never absent.
    Failed(String),
}

/// One cloud object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveObject {
    /// The cloud's primary id (UUID, ARN, name: whatever the API addresses it by).
    pub id: String,
    /// Fields in the desired state's vocabulary (`name`, `region`, `node_pools`, ...).
    #[serde(default)]
    pub fields: serde_json::Map<String, Value>,
    /// Exported attributes (`id`, `urn`, `ip`, `dkim_tokens`, ...), secrets excluded.
    #[serde(default)]
    pub attributes: BTreeMap<String, Value>,
    /// Tags (lineage tags tie objects to a ledger).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Write-only values' last change time (GitHub secrets), RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// Parts of the object provisioner did not make and never removes (an access key added
    /// to an IAM user by hand), by a field name of their own (`unmanaged_access_keys`): the
    /// plan reports them as drift (action `drift` when nothing else differs), and no apply
    /// touches them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unmanaged: BTreeMap<String, Value>,
    /// Parts of the object that an interrupted change of provisioner's made and the ledger
    /// does not record (an access key a killed rotation created), by id: nobody received
    /// them, and the next change of the object removes them (the plan has one for it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leftover_parts: Vec<String>,
    /// What the object says of its own health, for kinds whose controller reports it (a
    /// `FluxInstance`'s `Ready` and `Stalled` conditions): reported in plans, on `/status`
    /// and in metrics, never corrected by applying again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
}

/// An object's health as its controller reports it (Kubernetes "kstatus" conditions:
/// `Ready`, `Reconciling`, `Stalled`; fluxcd/pkg `runtime/conditions`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Where it stands.
    pub state: HealthState,
    /// The condition's reason (`ReconciliationSucceeded`, `ArtifactFailed`, ...), or a
    /// few words of provisioner's when no condition says (`NotObservedYet`).
    pub reason: String,
    /// The condition's message, as the controller wrote it.
    pub message: String,
}

impl Health {
    /// True when the controller says the object is ready.
    pub fn is_ready(&self) -> bool {
        self.state == HealthState::Ready
    }
}

/// Where an object's reconciliation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    /// `Ready=True` for the object's current generation.
    Ready,
    /// Not ready yet: the controller has not seen the current generation, or says it is
    /// reconciling (`Ready=Unknown`, `Reconciling=True`), or has said nothing yet.
    Progressing,
    /// `Ready=False`: the last reconciliation failed; the controller keeps trying.
    Failed,
    /// `Stalled=True`: the controller gave up until something changes.
    Stalled,
}

impl HealthState {
    /// The word plans, `/status` and metrics use.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Ready => "ready",
            HealthState::Progressing => "progressing",
            HealthState::Failed => "failed",
            HealthState::Stalled => "stalled",
        }
    }
}

impl LiveObject {
    /// The lineage of the ledger that created this object, if it says.
    pub fn lineage(&self) -> Option<&str> {
        self.tags
            .iter()
            .find_map(|t| t.strip_prefix(LINEAGE_TAG_PREFIX))
    }
}

impl LiveState {
    /// The observation of a kind: absent means complete and empty.
    pub fn kind(&self, kind: Kind) -> Option<&KindObservation> {
        self.kinds.get(kind.key())
    }

    /// True unless the kind's observation failed.
    pub fn is_complete(&self, kind: Kind) -> bool {
        !matches!(
            self.kind(kind).map(|k| &k.status),
            Some(ObserveStatus::Failed(_))
        )
    }

    /// The failure reason, if observing the kind failed.
    pub fn failure(&self, kind: Kind) -> Option<&str> {
        match self.kind(kind).map(|k| &k.status) {
            Some(ObserveStatus::Failed(r)) => Some(r),
            _ => None,
        }
    }

    /// Marks every kind of `kinds` that this observation does not mention as not observed,
    /// with `reason`: a provider that forgot a kind, or a snapshot that leaves one out,
    /// must never make it look empty.
    pub fn mark_missing(&mut self, kinds: impl IntoIterator<Item = Kind>, reason: &str) {
        for kind in kinds {
            self.kinds
                .entry(kind.key().to_string())
                .or_insert_with(|| KindObservation {
                    status: ObserveStatus::Failed(reason.to_string()),
                    objects: Vec::new(),
                    failed_scopes: Vec::new(),
                });
        }
    }

    /// The kinds not observed, with the reason, in key order.
    pub fn unobserved(&self) -> impl Iterator<Item = (&str, &str)> {
        self.kinds.iter().filter_map(|(k, o)| match &o.status {
            ObserveStatus::Failed(why) => Some((k.as_str(), why.as_str())),
            ObserveStatus::Complete => None,
        })
    }

    /// The scopes of a complete observation that could not be read (none when the kind
    /// failed as a whole or was read everywhere).
    pub fn failed_scopes(&self, kind: Kind) -> &[FailedScope] {
        self.kind(kind)
            .map(|k| k.failed_scopes.as_slice())
            .unwrap_or_default()
    }

    /// Objects of a kind (none when absent).
    pub fn objects(&self, kind: Kind) -> &[LiveObject] {
        self.kind(kind)
            .map(|k| k.objects.as_slice())
            .unwrap_or_default()
    }
}
