//! The lease lock: who may write the ledger now. A lease is a small document (holder,
//! acquired and expiry times) created only if absent, renewed and released only by the
//! holder (compare-and-swap on its tag), and taken over only after it expired — again by
//! compare-and-swap, so two contenders never both win. A process that dies simply stops
//! renewing: nobody needs to delete its lock by hand.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// Who holds (or wants) the lease.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Owner {
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// This run's id (a UUID per process).
    pub run_id: String,
}

impl Owner {
    /// This process.
    pub fn current(run_id: &str) -> Self {
        Owner {
            host: host_name(),
            pid: std::process::id(),
            run_id: run_id.to_string(),
        }
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} on {} (run {})", self.pid, self.host, self.run_id)
    }
}

/// The lease document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeaseInfo {
    /// Names this lease for `state unlock --force`.
    pub lease_id: String,
    /// The holder.
    pub owner: Owner,
    /// RFC 3339, UTC.
    pub acquired_at: String,
    /// RFC 3339, UTC: after this anyone may take it over.
    pub expires_at: String,
}

impl LeaseInfo {
    /// A new lease for `owner`, valid for `ttl` from now.
    pub fn new(owner: Owner, ttl: Duration) -> Self {
        let now = SystemTime::now();
        LeaseInfo {
            lease_id: uuid::Uuid::new_v4().to_string(),
            owner,
            acquired_at: rfc3339_millis(now),
            expires_at: rfc3339_millis(now + ttl),
        }
    }

    /// True once the expiry has passed (or cannot be read: a lease nobody can interpret
    /// must not block everyone forever).
    pub fn expired(&self, now: SystemTime) -> bool {
        humantime::parse_rfc3339(&self.expires_at).map_or(true, |t| now > t)
    }

    /// True when the holder ran on this host and its process is gone (it was killed, or the
    /// machine rebooted): its lease is stale and may be taken over at once instead of
    /// waiting for it to expire. Only decidable on Linux (`/proc`); elsewhere `false`.
    pub fn holder_is_gone(&self) -> bool {
        cfg!(target_os = "linux")
            && self.owner.host == host_name()
            && self.owner.pid != std::process::id()
            && !std::path::Path::new(&format!("/proc/{}", self.owner.pid)).exists()
    }
}

/// A lease this process holds.
#[derive(Clone, Debug)]
pub struct Lease {
    /// What is written in the lock.
    pub info: LeaseInfo,
    /// The lock document's tag (S3 ETag or the file's digest) after our last write.
    pub(crate) tag: String,
}

/// RFC 3339 in UTC, to the millisecond: lease times, which must not be rounded (a rounded
/// expiry would let a lease be taken over up to a second early).
pub fn rfc3339_millis(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// RFC 3339 in UTC, to the second.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The machine's host name (for lease owners and history).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}

/// `user@host pid N`: who wrote a ledger version.
pub fn who() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("{user}@{} pid {}", host_name(), std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_not_expired_a_moment_before_its_expiry() {
        let l = LeaseInfo::new(Owner::current("r"), Duration::from_millis(1500));
        let acquired = humantime::parse_rfc3339(&l.acquired_at).unwrap();
        assert!(!l.expired(acquired + Duration::from_millis(1400)));
        assert!(l.expired(acquired + Duration::from_millis(1600)));
    }

    #[test]
    fn a_lease_expires_after_its_ttl() {
        let l = LeaseInfo::new(Owner::current("r"), Duration::from_secs(60));
        let now = SystemTime::now();
        assert!(!l.expired(now));
        assert!(l.expired(now + Duration::from_secs(61)));
        let garbled = LeaseInfo {
            expires_at: "soon".into(),
            ..l
        };
        assert!(garbled.expired(now));
    }
}
