//! Where the ledger lives: an S3 (or S3-compatible) bucket with versioning, or a local
//! folder. Both give the same guarantees, built on three primitives each backend provides:
//! read with a tag, write only if absent or only if the tag still matches (compare-and-
//! swap), and a list of the ledger's past versions.
//!
//! - Every ledger write is conditional on the version it was based on: a lost race is
//!   [`LedgerError::Conflict`], never an overwrite.
//! - The serial goes up by one with every write, and each version records who wrote it,
//!   when and why, so `state history` can show it.
//! - A lease lock (see [`super::lease`]) serialises writers that act on the clouds; [`hold`]
//!   is the one routine that takes, renews and releases it.
//! - The audit journal is one immutable record per apply.

mod file;
mod hold;
mod s3;

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

pub use file::FileBackend;
pub use hold::{Held, HoldError, LEASE_TTL, OnLoss, hold};
pub use s3::{S3Backend, needs_path_style, sdk_timeouts};

use super::codec;
use super::error::LedgerError;
use super::lease::{Lease, LeaseInfo, Owner, rfc3339, who};
use super::model::{Ledger, Written};

/// The ledger document's key under the store's prefix.
pub const LEDGER_KEY: &str = "ledger.json";
/// The lease lock's key.
pub const LOCK_KEY: &str = "lock";
/// Where journal records go.
pub const JOURNAL_PREFIX: &str = "journal/";
/// The lineage marker: the lineage this store holds, written after the first ledger write
/// (and replaced only by `--new-lineage`), so a ledger of another lineage copied over the
/// current one, or a current one deleted, is noticed.
pub const LINEAGE_KEY: &str = "lineage";

/// Set once by the command line's `--new-lineage`: stores opened afterwards may start a new
/// lineage where a ledger vanished, or take on the lineage of a document copied over theirs.
static NEW_LINEAGE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `--new-lineage`: stores opened from now on accept a change of lineage (see
/// [`Store::allow_new_lineage`]).
pub fn allow_new_lineage_for_this_process() {
    NEW_LINEAGE.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// A ledger as read, with the version it was read at.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The document.
    pub ledger: Ledger,
    /// Its version.
    pub version: Version,
}

impl Snapshot {
    /// Splits the snapshot into its ledger and the base of the next conditional write: the
    /// version, with a ledger that keeps only the lineage and serial. A base needs no more,
    /// and a second copy of a large ledger is memory held for nothing.
    pub fn into_base(self) -> (Ledger, Snapshot) {
        let base = Ledger {
            schema_version: self.ledger.schema_version,
            lineage: self.ledger.lineage.clone(),
            serial: self.ledger.serial,
            resources: Default::default(),
            pending: Default::default(),
            outputs: Default::default(),
            environment: self.ledger.environment.clone(),
            written: None,
        };
        (
            self.ledger,
            Snapshot {
                ledger: base,
                version: self.version,
            },
        )
    }
}

/// One version of the ledger document.
#[derive(Clone, Debug, PartialEq)]
pub struct Version {
    /// The id `state history` shows and `state rollback` takes (an S3 version id, or the
    /// number of the local version file).
    pub id: String,
    /// What conditional writes compare (the S3 ETag, or the local file's digest).
    pub(crate) tag: String,
}

/// One line of `state history`.
#[derive(Clone, Debug, Serialize)]
pub struct HistoryEntry {
    /// Version id.
    pub version: String,
    /// True for the current version.
    pub latest: bool,
    /// When the store recorded it (RFC 3339).
    pub stored_at: String,
    /// The document's serial, when it could be read.
    pub serial: Option<u64>,
    /// Who wrote it and why, when recorded.
    pub written: Option<Written>,
    /// Why the version could not be read, if it could not.
    pub problem: Option<String>,
}

/// What a backend reports about a stored version.
#[derive(Clone, Debug)]
pub struct VersionMeta {
    /// Version id.
    pub id: String,
    /// Stored at (RFC 3339).
    pub stored_at: String,
    /// The current version.
    pub latest: bool,
}

/// A condition on a write.
#[derive(Clone, Copy, Debug)]
pub enum Cond<'a> {
    /// Only if nothing is stored under the key (`If-None-Match: *`).
    Absent,
    /// Only if the stored tag is this one (`If-Match`).
    Matches(&'a str),
}

/// The result of a successful write.
#[derive(Clone, Debug)]
pub struct Put {
    /// The new tag.
    pub tag: String,
    /// The new version id, where the backend keeps versions.
    pub version_id: Option<String>,
}

/// One audit record: what one apply did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JournalRecord {
    /// The run.
    pub run_id: String,
    /// `user@host pid N`.
    pub by: String,
    /// Started at (RFC 3339).
    pub started_at: String,
    /// Finished at (RFC 3339).
    pub finished_at: String,
    /// The command (`apply`, `run`, `state forget`, ...).
    pub command: String,
    /// The plan's summary line.
    pub summary: String,
    /// `succeeded`, `partial` or `failed`.
    pub outcome: String,
    /// Each action and how it ended.
    pub actions: Vec<ActionRecord>,
    /// The environment the run applied (`-e NAME`), if the desired state has several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

/// How one planned action ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// The resource.
    pub address: String,
    /// `create`, `update`, ...
    pub action: String,
    /// `done`, `failed`, `skipped`.
    pub outcome: String,
    /// The error, when it failed (never holds a secret value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A backend: the primitives the store is built on.
pub enum Backend {
    /// A local folder.
    File(FileBackend),
    /// An S3 bucket and prefix.
    S3(S3Backend),
}

macro_rules! dispatch {
    ($self:ident, $b:ident => $e:expr) => {
        match $self {
            Backend::File($b) => $e,
            Backend::S3($b) => $e,
        }
    };
}

impl Backend {
    fn location(&self, key: &str) -> String {
        dispatch!(self, b => b.location(key))
    }

    /// Waits for writes in flight where a reader could see half of one (a file store's
    /// first write: its history copy before its current document). S3 writes are one
    /// request: nothing to wait for.
    async fn settle(&self) -> Result<(), LedgerError> {
        match self {
            Backend::File(b) => b.settle().await,
            Backend::S3(_) => Ok(()),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, LedgerError> {
        dispatch!(self, b => b.get(key).await)
    }

    async fn put(&self, key: &str, body: &[u8], cond: Cond<'_>) -> Result<Put, LedgerError> {
        dispatch!(self, b => b.put(key, body, cond).await)
    }

    async fn delete(&self, key: &str, tag: &str) -> Result<(), LedgerError> {
        dispatch!(self, b => b.delete(key, tag).await)
    }

    async fn versions(&self, key: &str) -> Result<Vec<VersionMeta>, LedgerError> {
        dispatch!(self, b => b.versions(key).await)
    }

    async fn get_version(&self, key: &str, id: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        dispatch!(self, b => b.get_version(key, id).await)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, LedgerError> {
        dispatch!(self, b => b.list(prefix).await)
    }
}

/// How long one ledger or lease request may take (S3 or the local folder) before it fails
/// with [`LedgerError::TimedOut`]: well under the 60-second lease lifetime, so a store that
/// stops answering (without refusing) is noticed by the next renewal, before the lease
/// expires, instead of stalling the pass.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// A backend whose every call has a deadline.
struct Timed {
    inner: Backend,
    deadline: Duration,
}

macro_rules! timed {
    ($self:ident, $key:expr, $call:expr) => {
        match tokio::time::timeout($self.deadline, $call).await {
            Ok(r) => r,
            Err(_) => Err(LedgerError::TimedOut {
                location: $self.inner.location($key),
                seconds: $self.deadline.as_secs_f64(),
            }),
        }
    };
}

impl Timed {
    fn location(&self, key: &str) -> String {
        self.inner.location(key)
    }

    async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, LedgerError> {
        timed!(self, key, self.inner.get(key))
    }

    async fn put(&self, key: &str, body: &[u8], cond: Cond<'_>) -> Result<Put, LedgerError> {
        timed!(self, key, self.inner.put(key, body, cond))
    }

    async fn delete(&self, key: &str, tag: &str) -> Result<(), LedgerError> {
        timed!(self, key, self.inner.delete(key, tag))
    }

    async fn settle(&self) -> Result<(), LedgerError> {
        timed!(self, LEDGER_KEY, self.inner.settle())
    }

    async fn versions(&self, key: &str) -> Result<Vec<VersionMeta>, LedgerError> {
        timed!(self, key, self.inner.versions(key))
    }

    async fn get_version(&self, key: &str, id: &str) -> Result<Option<Vec<u8>>, LedgerError> {
        timed!(self, key, self.inner.get_version(key, id))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, LedgerError> {
        timed!(self, prefix, self.inner.list(prefix))
    }

    async fn get_versioned(
        &self,
        key: &str,
    ) -> Result<Option<(Vec<u8>, String, Option<String>)>, LedgerError> {
        match &self.inner {
            Backend::S3(b) => timed!(self, key, b.get_versioned(key)),
            Backend::File(b) => {
                let got = timed!(self, key, b.get(key))?;
                match got {
                    Some((bytes, tag)) => {
                        let id = b.current_version(&tag)?;
                        Ok(Some((bytes, tag, id)))
                    }
                    None => Ok(None),
                }
            }
        }
    }
}

/// The ledger store.
pub struct Store {
    backend: Timed,
    /// Problems worth a warning that do not stop the store (default encryption off).
    pub warnings: Vec<String>,
    /// `--new-lineage`: a vanished ledger may be started afresh, a foreign one accepted.
    new_lineage: bool,
    /// The lineage known to be in the marker (checked or written by this store).
    marker: std::sync::Mutex<Option<String>>,
}

impl Store {
    /// Opens the store a `--ledger` URL names: `file://PATH` or `s3://BUCKET[/PREFIX]`. An S3
    /// bucket must have versioning enabled.
    pub async fn open(url: &str) -> Result<Store, LedgerError> {
        Self::open_inner(url, None).await
    }

    /// As [`Store::open`], with an explicit AWS configuration for `s3://` (instead of the
    /// environment's).
    pub async fn open_with_aws(
        url: &str,
        aws: &aws_config::SdkConfig,
    ) -> Result<Store, LedgerError> {
        Self::open_inner(url, Some(aws)).await
    }

    async fn open_inner(
        url: &str,
        aws: Option<&aws_config::SdkConfig>,
    ) -> Result<Store, LedgerError> {
        let bad = |why: &str| LedgerError::BadUrl {
            url: url.into(),
            why: why.into(),
        };
        if let Some(path) = url.strip_prefix("file://") {
            if path.is_empty() {
                return Err(bad("`file://` needs a folder, e.g. `file://state`"));
            }
            return Ok(Store::with_backend(Backend::File(FileBackend::open(path)?)));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad("`s3://` needs a bucket, e.g. `s3://my-ledger/prod`"));
            }
            let open = async {
                match aws {
                    Some(config) => S3Backend::open_with(config, bucket, prefix).await,
                    None => S3Backend::open(bucket, prefix).await,
                }
            };
            let (backend, warnings) = tokio::time::timeout(REQUEST_TIMEOUT * 2, open)
                .await
                .map_err(|_| LedgerError::TimedOut {
                    location: format!("s3://{bucket}"),
                    seconds: (REQUEST_TIMEOUT * 2).as_secs_f64(),
                })??;
            return Ok(Store {
                warnings,
                ..Store::with_backend(Backend::S3(backend))
            });
        }
        Err(bad(
            "use `s3://bucket/prefix` or `file://path` (the default is `file://state`)",
        ))
    }

    /// A store over a backend (tests build backends directly).
    pub fn with_backend(backend: Backend) -> Store {
        Store {
            backend: Timed {
                inner: backend,
                deadline: REQUEST_TIMEOUT,
            },
            warnings: Vec::new(),
            new_lineage: NEW_LINEAGE.load(std::sync::atomic::Ordering::SeqCst),
            marker: std::sync::Mutex::new(None),
        }
    }

    /// Sets how long one request to the store may take (default [`REQUEST_TIMEOUT`]).
    pub fn set_request_timeout(&mut self, deadline: Duration) {
        self.backend.deadline = deadline;
    }

    /// Allows (or not) a change of lineage: with it, [`Store::read`] answers `None` where the
    /// ledger vanished (the next write starts a new lineage) and accepts a current document
    /// of another lineage; the next write records the new lineage as this store's.
    pub fn allow_new_lineage(&mut self, allow: bool) {
        self.new_lineage = allow;
    }

    /// Where the ledger document lives.
    pub fn location(&self) -> String {
        self.backend.location(LEDGER_KEY)
    }

    /// Reads the current ledger; `None` before the first write.
    ///
    /// The store's identity is checked: a missing current document where the store has held
    /// one (earlier versions, the lineage marker or journal records remain) is
    /// [`LedgerError::Vanished`], and a document of another lineage than the one this store
    /// holds is [`LedgerError::ForeignLineage`] — unless [`Store::allow_new_lineage`].
    pub async fn read(&self) -> Result<Option<Snapshot>, LedgerError> {
        let mut raw = self.read_raw().await?;
        if raw.is_none() && !self.new_lineage {
            // A write in flight may have put its history copy and not yet its document.
            self.backend.settle().await?;
            raw = self.read_raw().await?;
        }
        let Some((bytes, version)) = raw else {
            if !self.new_lineage
                && let Some(evidence) = self.evidence_of_a_ledger().await?
            {
                return Err(LedgerError::Vanished {
                    location: self.location(),
                    evidence: evidence.0,
                    recover: evidence.1,
                });
            }
            return Ok(None);
        };
        let ledger = codec::decode(&bytes, &self.location())?;
        self.check_lineage(&ledger, &version).await?;
        Ok(Some(Snapshot { ledger, version }))
    }

    /// What shows that this store held a ledger, and how to get it back: earlier versions,
    /// the lineage marker, journal records. `None` for a store never written.
    async fn evidence_of_a_ledger(&self) -> Result<Option<(String, String)>, LedgerError> {
        let versions = self.backend.versions(LEDGER_KEY).await?;
        if let Some(newest) = versions.first() {
            return Ok(Some((
                format!(
                    "{} earlier version{} remain (the newest is {}, stored {})",
                    versions.len(),
                    if versions.len() == 1 { "" } else { "s" },
                    newest.id,
                    newest.stored_at
                ),
                format!(
                    "restore it with `provisioner state rollback {}` (see `provisioner state history`)",
                    newest.id
                ),
            )));
        }
        let restore = "restore the ledger document from a backup".to_string();
        if let Some((bytes, _)) = self.backend.get(LINEAGE_KEY).await? {
            return Ok(Some((
                format!(
                    "the lineage marker {} names lineage {}",
                    self.backend.location(LINEAGE_KEY),
                    String::from_utf8_lossy(&bytes).trim()
                ),
                restore,
            )));
        }
        let journal = self.backend.list(JOURNAL_PREFIX).await?;
        if !journal.is_empty() {
            return Ok(Some((
                format!(
                    "{} journal record{} remain under {}",
                    journal.len(),
                    if journal.len() == 1 { "" } else { "s" },
                    self.backend.location(JOURNAL_PREFIX)
                ),
                restore,
            )));
        }
        Ok(None)
    }

    /// Refuses a current document whose lineage is not the one this store holds: the one
    /// its marker names, or (a store written before markers, or a marker lost to a crash)
    /// the one of the version before the current.
    async fn check_lineage(&self, ledger: &Ledger, version: &Version) -> Result<(), LedgerError> {
        if self.known_marker().as_deref() == Some(ledger.lineage.as_str()) {
            return Ok(());
        }
        let (held, source) = match self.backend.get(LINEAGE_KEY).await? {
            Some((bytes, _)) => (
                String::from_utf8_lossy(&bytes).trim().to_string(),
                format!("its lineage marker {}", self.backend.location(LINEAGE_KEY)),
            ),
            None => {
                let earlier = self
                    .backend
                    .versions(LEDGER_KEY)
                    .await?
                    .into_iter()
                    .find(|v| !v.latest && v.id != version.id);
                let Some(earlier) = earlier else {
                    return Ok(());
                };
                let Some(bytes) = self.backend.get_version(LEDGER_KEY, &earlier.id).await? else {
                    return Ok(());
                };
                let Ok((old, _)) = codec::decode_and_migrate(&bytes, &self.location()) else {
                    return Ok(());
                };
                (old.lineage, format!("its version {}", earlier.id))
            }
        };
        if held == ledger.lineage {
            self.remember_marker(&held);
            return Ok(());
        }
        if self.new_lineage {
            return Ok(());
        }
        Err(LedgerError::ForeignLineage {
            location: self.location(),
            found: ledger.lineage.clone(),
            held,
            source_of_held: source,
        })
    }

    /// True when the lineage marker names `lineage`.
    async fn holds_lineage(&self, lineage: &str) -> Result<bool, LedgerError> {
        Ok(self
            .backend
            .get(LINEAGE_KEY)
            .await?
            .is_some_and(|(bytes, _)| String::from_utf8_lossy(&bytes).trim() == lineage))
    }

    fn known_marker(&self) -> Option<String> {
        self.marker.lock().ok().and_then(|m| m.clone())
    }

    fn remember_marker(&self, lineage: &str) {
        if let Ok(mut m) = self.marker.lock() {
            *m = Some(lineage.to_string());
        }
    }

    /// Records `lineage` as the one this store holds, after a ledger write of it: created
    /// if absent; replaced only with `--new-lineage`.
    async fn record_lineage(&self, lineage: &str) -> Result<(), LedgerError> {
        if self.known_marker().as_deref() == Some(lineage) {
            return Ok(());
        }
        let cond_tag = match self.backend.get(LINEAGE_KEY).await? {
            Some((bytes, _)) if String::from_utf8_lossy(&bytes).trim() == lineage => {
                self.remember_marker(lineage);
                return Ok(());
            }
            Some((_, tag)) if self.new_lineage => Some(tag),
            // Another lineage's marker without `--new-lineage`: reads refuse before a
            // write can get here; leave it for them.
            Some(_) => return Ok(()),
            None => None,
        };
        let cond = match &cond_tag {
            Some(tag) => Cond::Matches(tag),
            None => Cond::Absent,
        };
        match self
            .backend
            .put(LINEAGE_KEY, format!("{lineage}\n").as_bytes(), cond)
            .await
        {
            Ok(_) => {
                self.remember_marker(lineage);
                Ok(())
            }
            // Someone else wrote it first: the next read checks it.
            Err(LedgerError::Conflict { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Reads the current document's bytes, undecoded (for `ledger migrate`).
    pub async fn read_raw(&self) -> Result<Option<(Vec<u8>, Version)>, LedgerError> {
        // One request on S3 (GetObject carries the version id); one or two file reads locally.
        let Some((bytes, tag, id)) = self.backend.get_versioned(LEDGER_KEY).await? else {
            return Ok(None);
        };
        Ok(Some((
            bytes,
            Version {
                id: id.unwrap_or_default(),
                tag,
            },
        )))
    }

    /// Writes `ledger` as the next version after `base` (`None`: the first write), only if
    /// `base` is still the current version. Sets the serial and who wrote it; returns the
    /// new snapshot.
    pub async fn write(
        &self,
        mut ledger: Ledger,
        base: Option<&Snapshot>,
        summary: &str,
    ) -> Result<Snapshot, LedgerError> {
        if let Some(b) = base
            && ledger.lineage != b.ledger.lineage
        {
            return Err(LedgerError::LineageMismatch {
                version: b.version.id.clone(),
                ours: b.ledger.lineage.clone(),
                theirs: ledger.lineage,
            });
        }
        // A first write always founds a lineage: an empty one could never prove ownership.
        if base.is_none() && ledger.lineage.is_empty() {
            ledger.lineage = uuid::Uuid::new_v4().to_string();
        }
        ledger.serial = base.map_or(1, |b| b.ledger.serial + 1);
        ledger.written = Some(Written {
            by: who(),
            at: rfc3339(SystemTime::now()),
            summary: summary.to_string(),
        });
        let cond = match base {
            Some(b) => Cond::Matches(&b.version.tag),
            None => Cond::Absent,
        };
        self.put_ledger(ledger, cond).await
    }

    /// Writes the document (serial and author set) under `cond`, then records its lineage.
    async fn put_ledger(&self, ledger: Ledger, cond: Cond<'_>) -> Result<Snapshot, LedgerError> {
        let body = codec::encode(&ledger);
        let put = self.backend.put(LEDGER_KEY, &body, cond).await?;
        // After the document: a crash in between leaves a ledger without a marker (the
        // next read falls back on the earlier version), never a marker without a ledger.
        self.record_lineage(&ledger.lineage).await?;
        Ok(Snapshot {
            ledger,
            version: Version {
                id: put.version_id.unwrap_or_default(),
                tag: put.tag,
            },
        })
    }

    /// The ledger's versions, newest first, at most `limit`.
    pub async fn history(&self, limit: usize) -> Result<Vec<HistoryEntry>, LedgerError> {
        let mut out = Vec::new();
        for v in self
            .backend
            .versions(LEDGER_KEY)
            .await?
            .into_iter()
            .take(limit)
        {
            let location = format!("{} version {}", self.location(), v.id);
            let read = match self.backend.get_version(LEDGER_KEY, &v.id).await? {
                Some(bytes) => codec::decode_and_migrate(&bytes, &location)
                    .map(|(l, _)| l)
                    .map_err(LedgerError::from),
                None => Err(LedgerError::UnknownVersion {
                    location: self.location(),
                    version: v.id.clone(),
                }),
            };
            let (serial, written, problem) = match read {
                Ok(l) => (Some(l.serial), l.written, None),
                Err(e) => (None, None, Some(e.to_string())),
            };
            out.push(HistoryEntry {
                version: v.id,
                latest: v.latest,
                stored_at: v.stored_at,
                serial,
                written,
                problem,
            });
        }
        Ok(out)
    }

    /// One past version.
    pub async fn read_version(&self, id: &str) -> Result<Ledger, LedgerError> {
        let bytes = self
            .backend
            .get_version(LEDGER_KEY, id)
            .await?
            .ok_or_else(|| LedgerError::UnknownVersion {
                location: self.location(),
                version: id.into(),
            })?;
        Ok(codec::decode(
            &bytes,
            &format!("{} version {id}", self.location()),
        )?)
    }

    /// Makes past version `id` the latest: its content, written conditionally over the
    /// current version with the serial bumped. The version it replaces stays in the history.
    /// Works when the current document is corrupt (that is what rollback is for): the new
    /// serial then follows the highest serial any readable version has.
    pub async fn rollback(&self, id: &str) -> Result<Snapshot, LedgerError> {
        let old = self.read_version(id).await?;
        let Some((bytes, version)) = self.read_raw().await? else {
            // The current document vanished: the version becomes current again, written
            // only if nothing is there yet, with a serial after every readable version's.
            let highest = self
                .history(usize::MAX)
                .await?
                .iter()
                .filter_map(|h| h.serial)
                .max()
                .unwrap_or(old.serial);
            let mut restored = old.clone();
            restored.serial = highest + 1;
            restored.written = Some(Written {
                by: who(),
                at: rfc3339(SystemTime::now()),
                summary: format!(
                    "state rollback to version {id} (serial {}) over a missing ledger",
                    old.serial
                ),
            });
            return self.put_ledger(restored, Cond::Absent).await;
        };
        let base_ledger = match codec::decode(&bytes, &self.location()) {
            Ok(current) => {
                if current.lineage != old.lineage && !self.holds_lineage(&old.lineage).await? {
                    return Err(LedgerError::LineageMismatch {
                        version: id.into(),
                        ours: current.lineage,
                        theirs: old.lineage,
                    });
                }
                // Over a document of another lineage (copied over this store's), the
                // base takes the restored version's lineage: the write checks they agree.
                Ledger {
                    lineage: old.lineage.clone(),
                    ..current
                }
            }
            Err(_) => {
                let highest = self
                    .history(usize::MAX)
                    .await?
                    .iter()
                    .filter_map(|h| h.serial)
                    .max()
                    .unwrap_or(old.serial);
                Ledger {
                    serial: highest,
                    ..old.clone()
                }
            }
        };
        let summary = format!("state rollback to version {id} (serial {})", old.serial);
        let base = Snapshot {
            ledger: base_ledger,
            version,
        };
        self.write(old, Some(&base), &summary).await
    }

    /// Takes the lease, waiting up to `wait` for a live holder to let go (or its lease to
    /// expire). Without a wait, a held lease is an error naming the holder.
    pub async fn acquire(
        &self,
        owner: &Owner,
        ttl: Duration,
        wait: Option<Duration>,
    ) -> Result<Lease, LedgerError> {
        let deadline = wait.map(|w| std::time::Instant::now() + w);
        let mut pause = Duration::from_millis(200);
        let mut said = false;
        loop {
            match self.try_acquire(owner, ttl).await {
                Err(LedgerError::LeaseHeld { holder, .. })
                    if deadline.is_some_and(|d| std::time::Instant::now() < d) =>
                {
                    if !said {
                        // Once, at WARN: a command waiting on another one must say so.
                        tracing::warn!(
                            message = "The ledger lease is held: waiting (--lock-timeout).",
                            holder = %holder.owner,
                            expires_at = %holder.expires_at
                        );
                        said = true;
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Err(LedgerError::Conflict { .. })
                    if deadline.is_some_and(|d| std::time::Instant::now() < d) =>
                {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                other => return other,
            }
        }
    }

    /// One attempt at the lease: create it, or take over an expired one.
    pub async fn try_acquire(&self, owner: &Owner, ttl: Duration) -> Result<Lease, LedgerError> {
        let info = LeaseInfo::new(owner.clone(), ttl);
        let body = serde_json::to_vec_pretty(&info).expect("a lease serializes");
        match self.backend.put(LOCK_KEY, &body, Cond::Absent).await {
            Ok(put) => return self.confirm(Lease { info, tag: put.tag }).await,
            Err(LedgerError::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
        // Someone holds it, or held it.
        let Some((current, tag)) = self.lease().await? else {
            // Released between our two calls: try again from the top.
            return Err(LedgerError::Conflict {
                location: self.backend.location(LOCK_KEY),
            });
        };
        let now = SystemTime::now();
        if !current.expired(now) && !current.holder_is_gone() {
            return Err(LedgerError::LeaseHeld {
                location: self.location(),
                holder: Box::new(current),
            });
        }
        // Expired: take it over, only if nobody else did first. Our times start now, after
        // the old lease's end, not when this attempt began.
        let info = LeaseInfo {
            lease_id: info.lease_id,
            ..LeaseInfo::new_at(info.owner, ttl, now)
        };
        let body = serde_json::to_vec_pretty(&info).expect("a lease serializes");
        let put = self
            .backend
            .put(LOCK_KEY, &body, Cond::Matches(&tag))
            .await?;
        self.confirm(Lease { info, tag: put.tag }).await
    }

    /// Reads the lock back after a conditional write won it: an S3-compatible server whose
    /// conditional writes are not atomic (moto 5.2 under concurrent requests) can let two
    /// writers both "win"; the last write stands, and the one who reads another holder backs
    /// off as if it had lost.
    async fn confirm(&self, lease: Lease) -> Result<Lease, LedgerError> {
        match self.lease().await? {
            Some((held, _)) if held.lease_id == lease.info.lease_id => Ok(lease),
            Some((held, _)) => Err(LedgerError::LeaseHeld {
                location: self.location(),
                holder: Box::new(held),
            }),
            None => Err(LedgerError::Conflict {
                location: self.backend.location(LOCK_KEY),
            }),
        }
    }

    /// The current lease, if any, with its tag.
    pub async fn lease(&self) -> Result<Option<(LeaseInfo, String)>, LedgerError> {
        let Some((bytes, tag)) = self.backend.get(LOCK_KEY).await? else {
            return Ok(None);
        };
        match serde_json::from_slice::<LeaseInfo>(&bytes) {
            Ok(info) => Ok(Some((info, tag))),
            // An unreadable lock must not block forever: treat it as expired.
            Err(_) => Ok(Some((
                LeaseInfo {
                    lease_id: "unreadable".into(),
                    owner: Owner {
                        host: "unknown".into(),
                        pid: 0,
                        run_id: "unknown".into(),
                        boot_id: None,
                        pid_namespace: None,
                        start_time: None,
                    },
                    acquired_at: String::new(),
                    expires_at: String::new(),
                    renewed_at: None,
                },
                tag,
            ))),
        }
    }

    /// Extends our lease by `ttl` from now. Fails with [`LedgerError::LeaseLost`] if it
    /// was taken over or broken.
    pub async fn renew(&self, lease: &mut Lease, ttl: Duration) -> Result<(), LedgerError> {
        let info = lease.info.renewed(ttl, SystemTime::now());
        let body = serde_json::to_vec_pretty(&info).expect("a lease serializes");
        match self
            .backend
            .put(LOCK_KEY, &body, Cond::Matches(&lease.tag))
            .await
        {
            Ok(put) => {
                lease.info = info;
                lease.tag = put.tag;
                Ok(())
            }
            Err(LedgerError::Conflict { .. }) => Err(LedgerError::LeaseLost {
                location: self.location(),
            }),
            Err(e) => Err(e),
        }
    }

    /// Lets go of our lease (only if it is still ours).
    pub async fn release(&self, lease: Lease) -> Result<(), LedgerError> {
        match self.backend.delete(LOCK_KEY, &lease.tag).await {
            Ok(()) => Ok(()),
            Err(LedgerError::Conflict { .. }) => Err(LedgerError::LeaseLost {
                location: self.location(),
            }),
            Err(e) => Err(e),
        }
    }

    /// Breaks lease `lease_id` (a human's decision: `state unlock --force`). Returns who
    /// held it.
    pub async fn break_lease(&self, lease_id: &str) -> Result<LeaseInfo, LedgerError> {
        let Some((info, tag)) = self.lease().await? else {
            return Err(LedgerError::Unlock {
                message: format!("the ledger at {} is not locked", self.location()),
            });
        };
        if info.lease_id != lease_id {
            return Err(LedgerError::Unlock {
                message: format!(
                    "the ledger at {} is locked by lease {} ({}), not {lease_id}: nothing was broken",
                    self.location(),
                    info.lease_id,
                    info.owner
                ),
            });
        }
        self.backend.delete(LOCK_KEY, &tag).await?;
        Ok(info)
    }

    /// Records one apply in the journal (an immutable object; never overwritten).
    pub async fn append_journal(&self, record: &JournalRecord) -> Result<String, LedgerError> {
        let stamp = record.started_at.replace(':', "");
        let key = format!("{JOURNAL_PREFIX}{stamp}-{}.json", record.run_id);
        let body = serde_json::to_vec_pretty(record).expect("a journal record serializes");
        self.backend.put(&key, &body, Cond::Absent).await?;
        Ok(self.backend.location(&key))
    }

    /// The newest `limit` journal records, newest first.
    pub async fn journal(&self, limit: usize) -> Result<Vec<JournalRecord>, LedgerError> {
        let mut keys = self.backend.list(JOURNAL_PREFIX).await?;
        keys.sort();
        keys.reverse();
        let mut out = Vec::new();
        for key in keys.into_iter().take(limit) {
            let Some((bytes, _)) = self.backend.get(&key).await? else {
                continue;
            };
            let record = serde_json::from_slice(&bytes).map_err(|e| {
                LedgerError::Decode(crate::ledger::error::DecodeError::Corrupt {
                    location: self.backend.location(&key),
                    detail: format!("not a journal record: {e}"),
                })
            })?;
            out.push(record);
        }
        Ok(out)
    }
}
