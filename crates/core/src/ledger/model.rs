//! The ledger document: address → cloud ids, what was last applied, keyed fingerprints of
//! secret values, and write-ahead intents. It never holds a plaintext secret.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::desired::Address;

/// The schema version this build writes.
pub const LEDGER_SCHEMA_VERSION: u32 = 1;

/// The whole ledger.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    /// Document schema version.
    pub schema_version: u32,
    /// Fixed at creation; tags on cloud objects carry it so ownership can be proven.
    pub lineage: String,
    /// Bumped on every write.
    pub serial: u64,
    /// Managed resources.
    #[serde(default)]
    pub resources: BTreeMap<Address, LedgerEntry>,
    /// Creates started but not yet recorded as done (write-ahead).
    #[serde(default)]
    pub pending: BTreeMap<Address, Intent>,
    /// The root module's outputs as of the last pass (`[output.NAME]`), published for people
    /// and other tools (`provisioner output`): `name` → `{ "value": …, "sensitive": bool,
    /// "description": "…" }`, or `{ "unknown": "why", … }` for one that names something not
    /// applied yet. Never a secret (validation refuses an output that reads a secret
    /// attribute).
    #[serde(default)]
    pub outputs: BTreeMap<String, Value>,
    /// The environment this ledger belongs to (`-e NAME`), recorded at its first write: a
    /// pass for another environment (or for none) is refused, so two environments never
    /// share, hence never adopt or delete, each other's objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Who wrote this version, when, and why: what `state history` shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written: Option<Written>,
}

/// The author of one ledger version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Written {
    /// `user@host pid N`.
    pub by: String,
    /// RFC 3339, UTC.
    pub at: String,
    /// One line: the command and what it changed.
    pub summary: String,
}

impl Ledger {
    /// An empty ledger with the given lineage.
    pub fn new(lineage: impl Into<String>) -> Self {
        Ledger {
            schema_version: LEDGER_SCHEMA_VERSION,
            lineage: lineage.into(),
            serial: 0,
            resources: BTreeMap::new(),
            pending: BTreeMap::new(),
            outputs: BTreeMap::new(),
            environment: None,
            written: None,
        }
    }

    /// Records that this ledger belongs to `environment` (the chosen one, or `None`), or
    /// refuses when it belongs to another. A ledger that records none takes the chosen
    /// one (a new ledger, or one written before environments existed and pointed at on
    /// purpose with `[environment] ledger`).
    ///
    /// Errors: the ledger records another environment, or one while none is chosen.
    pub fn claim_environment(&mut self, environment: Option<&str>) -> Result<(), String> {
        match (self.environment.as_deref(), environment) {
            (Some(ours), Some(chosen)) if ours == chosen => Ok(()),
            (Some(ours), Some(chosen)) => Err(format!(
                "this ledger belongs to environment `{ours}`, not `{chosen}`: each environment keeps its own ledger (check `--ledger`, PROVISIONER_LEDGER and `[environment] ledger`)"
            )),
            (Some(ours), None) => Err(format!(
                "this ledger belongs to environment `{ours}`: choose it with `-e {ours}`"
            )),
            (None, chosen) => {
                self.environment = chosen.map(str::to_string);
                Ok(())
            }
        }
    }

    /// A new ledger with a fresh random lineage (a UUID), as the first write creates.
    pub fn create() -> Self {
        Ledger::new(uuid::Uuid::new_v4().to_string())
    }

    /// Renames an address (`state mv`, `[[moved]]`): its entry, its write-ahead intent, and
    /// every other entry's `depends_on` that names it. The cloud is not touched.
    ///
    /// Errors: `from` unknown to the ledger, `to` already managed, or a change of kind.
    pub fn rename(&mut self, from: &Address, to: &Address) -> Result<(), String> {
        if (from.provider(), from.kind()) != (to.provider(), to.kind()) {
            return Err(format!(
                "{from} and {to} are of different kinds: a move keeps the object, so the kind cannot change"
            ));
        }
        if self.resources.contains_key(to) || self.pending.contains_key(to) {
            return Err(format!("{to} is already in the ledger"));
        }
        let entry = self.resources.remove(from);
        let intent = self.pending.remove(from);
        if entry.is_none() && intent.is_none() {
            return Err(format!("{from} is not in the ledger"));
        }
        if let Some(e) = entry {
            self.resources.insert(to.clone(), e);
        }
        if let Some(i) = intent {
            self.pending.insert(to.clone(), i);
        }
        for e in self.resources.values_mut() {
            if e.depends_on.remove(from) {
                e.depends_on.insert(to.clone());
            }
        }
        Ok(())
    }
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger::new("")
    }
}

/// What the ledger remembers of one resource.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// `provider.kind`.
    pub kind: String,
    /// The cloud's primary id.
    pub id: String,
    /// Hash of `applied`, to notice any change cheaply.
    pub applied_hash: String,
    /// Non-secret field values last applied (references resolved).
    #[serde(default)]
    pub applied: serde_json::Map<String, Value>,
    /// Keyed fingerprints (HMAC-SHA256) of secret field values, by field.
    #[serde(default)]
    pub fingerprints: BTreeMap<String, String>,
    /// The cloud's `updated_at` of write-only values when provisioner last wrote them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// Non-secret exported attributes, so references resolve without a live read.
    #[serde(default)]
    pub attributes: BTreeMap<String, Value>,
    /// What it depended on when applied, so deletes run in reverse order.
    #[serde(default)]
    pub depends_on: BTreeSet<Address>,
    /// Kept after the resource leaves the desired state: removing a protected resource from
    /// the description does not make it deletable.
    #[serde(default)]
    pub prevent_destroy: bool,
    /// The resource's local settings when it was last applied (`force_destroy`, ...): what a
    /// delete needs after the resource has left the desired state.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub options: serde_json::Map<String, Value>,
}

/// A create in flight: recorded before the API call, cleared when its id is recorded.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Intent {
    /// `provider.kind`.
    pub kind: String,
    /// The natural key the object will be found by if the process dies mid-create.
    pub key: String,
    /// When this attempt was written (RFC 3339, this machine's clock): parts of the object
    /// the cloud dates just after it that the ledger does not record (an access key made by
    /// a rotation killed before its result was recorded) are this ledger's, never delivered
    /// to anyone. Absent in ledgers written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

/// Stable hash of applied values (FNV-1a over canonical JSON): cheap change detection, not
/// security. serde_json maps are sorted, so the text is canonical.
pub fn applied_hash(applied: &serde_json::Map<String, Value>) -> String {
    let text = serde_json::to_string(applied).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}
