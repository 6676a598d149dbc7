//! What can go wrong with the ledger, typed so callers can tell a lost race (re-read and
//! retry) from a corrupt document (stop and let a human look) from a held lease (wait).
//! Messages name the ledger's location and say what to do; none holds a secret.

use super::lease::LeaseInfo;

/// A ledger store error.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// A conditional write lost: someone else wrote since this process read. Nothing was
    /// overwritten.
    #[error(
        "the ledger at {location} changed after it was read (another writer won the race); nothing was overwritten: read it again and retry"
    )]
    Conflict {
        /// Where the ledger lives.
        location: String,
    },
    /// The document cannot be decoded as a ledger of this build's schema.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Another process holds the lease.
    #[error(
        "the ledger at {location} is locked by {holder}; it expires at {expires}. Wait (`--lock-timeout 5m`), or if that process is gone: `provisioner state unlock --force {lease_id}`",
        holder = .holder.owner, expires = .holder.expires_at, lease_id = .holder.lease_id
    )]
    LeaseHeld {
        /// Where.
        location: String,
        /// Who holds it.
        holder: Box<LeaseInfo>,
    },
    /// Our lease was taken over or broken while we held it.
    #[error(
        "the lease on the ledger at {location} was lost (it expired and was taken over, or was broken by hand): stopping without writing"
    )]
    LeaseLost {
        /// Where.
        location: String,
    },
    /// `state unlock` named a lease that is not the current one.
    #[error("{message}")]
    Unlock {
        /// What is wrong.
        message: String,
    },
    /// A bucket without versioning cannot keep history or be rolled back.
    #[error(
        "bucket `{bucket}` does not have versioning enabled, so the ledger could not keep its history or be rolled back. Enable it: `provisioner init` does (with encryption, a public access block and a lifecycle for old versions), or `aws s3api put-bucket-versioning --bucket {bucket} --versioning-configuration Status=Enabled`"
    )]
    VersioningOff {
        /// The bucket.
        bucket: String,
    },
    /// The `--ledger` URL is not one provisioner understands.
    #[error("`{url}` is not a ledger location: {why}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// Why.
        why: String,
    },
    /// A version named by the user does not exist.
    #[error(
        "the ledger at {location} has no version `{version}` (see `provisioner state history`)"
    )]
    UnknownVersion {
        /// Where.
        location: String,
        /// The version asked for.
        version: String,
    },
    /// Rolling back to a version of another ledger.
    #[error(
        "version `{version}` belongs to ledger lineage {theirs}, not {ours}: refusing to mix two ledgers"
    )]
    LineageMismatch {
        /// The version.
        version: String,
        /// The current lineage.
        ours: String,
        /// The version's lineage.
        theirs: String,
    },
    /// The current document is missing, but the store held a ledger: never started afresh
    /// silently (every managed object would become an orphan).
    #[error(
        "the ledger at {location} is missing, but this store has held one: {evidence}. Nothing was written. {recover}; or, to start a new lineage on purpose (objects of the old one are then reported, not adopted), run the command again with `--new-lineage`"
    )]
    Vanished {
        /// Where the ledger lives.
        location: String,
        /// What shows that a ledger was there.
        evidence: String,
        /// The command (or step) that brings it back.
        recover: String,
    },
    /// The current document belongs to another lineage than the one this store holds (a
    /// ledger copied over another's).
    #[error(
        "the ledger at {location} has lineage {found}, but this store holds lineage {held} ({source_of_held}): a ledger of another lineage was put in its place. Nothing was read or written. Restore this store's own ledger with `provisioner state rollback VERSION` (see `provisioner state history`), or, if the copy is meant to replace it, run the command again with `--new-lineage`"
    )]
    ForeignLineage {
        /// Where the ledger lives.
        location: String,
        /// The lineage of the current document.
        found: String,
        /// The lineage the store holds.
        held: String,
        /// What says so.
        source_of_held: String,
    },
    /// The store did not answer in time (it neither answered nor refused).
    #[error(
        "{location}: no answer within {seconds} seconds (the store neither answered nor refused); nothing more is written until it answers"
    )]
    TimedOut {
        /// Where.
        location: String,
        /// The deadline.
        seconds: f64,
    },
    /// The file system failed. The cause is part of the message and deliberately not a
    /// `source`: printed as a chain (`{:#}`, [`crate::errors::chain`]) it would appear twice.
    #[error("{location}: {cause}")]
    Io {
        /// The path.
        location: String,
        /// The cause.
        cause: std::io::Error,
    },
    /// S3 failed (after the SDK's own retries).
    #[error("{location}: {message}")]
    S3 {
        /// Bucket and key.
        location: String,
        /// What S3 said.
        message: String,
    },
}

impl LedgerError {
    /// An I/O error at `location` (a file or folder of a `file://` ledger).
    pub fn io(location: impl std::fmt::Display, source: std::io::Error) -> Self {
        LedgerError::Io {
            location: location.to_string(),
            cause: source,
        }
    }
}

/// Why a ledger document could not be decoded: the codec's own error, a part of
/// [`LedgerError`] (`LedgerError::Decode`) for callers that read from a store. None of these is
/// worth retrying: the document stays as it is until a person restores or migrates it.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The document cannot be read as a ledger.
    #[error(
        "the ledger at {location} is corrupt: {detail}; nothing was written (restore a good version with `provisioner state rollback VERSION`, see `provisioner state history`)"
    )]
    Corrupt {
        /// Where (and which version).
        location: String,
        /// What is wrong with it.
        detail: String,
    },
    /// Written by a newer provisioner.
    #[error(
        "the ledger at {location} has schema version {found}, newer than this provisioner understands ({supported}): upgrade provisioner; nothing was written"
    )]
    TooNew {
        /// Where.
        location: String,
        /// Its schema version.
        found: u32,
        /// The newest this build reads.
        supported: u32,
    },
    /// Written by an older provisioner: `ledger migrate` upgrades it.
    #[error(
        "the ledger at {location} has schema version {found}; this provisioner uses {current}: run `provisioner ledger migrate` (the old version stays in the history)"
    )]
    NeedsMigration {
        /// Where.
        location: String,
        /// Its schema version.
        found: u32,
        /// This build's version.
        current: u32,
    },
    /// No chain of migrations leads from the document's version to this build's.
    #[error(
        "the ledger at {location} has schema version {found}, which no migration in this build upgrades"
    )]
    NoMigrationPath {
        /// Where.
        location: String,
        /// Its schema version.
        found: u32,
    },
}
