//! The lease lock: who may write the ledger now. A lease is a small document (holder,
//! acquired and expiry times) created only if absent, renewed and released only by the
//! holder (compare-and-swap on its tag), and taken over only after it expired — again by
//! compare-and-swap, so two contenders never both win. A process that dies simply stops
//! renewing: nobody needs to delete its lock by hand.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// The longest a lease may run without being renewed: a lease document claiming more (an
/// expiry in 2099, written by hand or by a broken tool) is treated as expiring this long
/// after it was last renewed. Every lifetime provisioner itself asks for is under it (the
/// daemon and the state commands use 60 seconds).
pub const MAX_LEASE_TTL: Duration = Duration::from_secs(10 * 60);

/// Who holds (or wants) the lease.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Owner {
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// This run's id (a UUID per process).
    pub run_id: String,
    /// The kernel's boot id (`/proc/sys/kernel/random/boot_id`): with the PID namespace,
    /// what makes the pid mean the same process here. Absent from older leases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// The inode of the holder's PID namespace (`/proc/self/ns/pid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_namespace: Option<u64>,
    /// The holder's start time in clock ticks after boot (`/proc/PID/stat` field 22), so a
    /// pid reused by another process is not taken for the holder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<u64>,
}

impl Owner {
    /// This process.
    pub fn current(run_id: &str) -> Self {
        let pid = std::process::id();
        Owner {
            host: host_name(),
            pid,
            run_id: run_id.to_string(),
            boot_id: boot_id(),
            pid_namespace: pid_namespace(),
            start_time: start_time(pid),
        }
    }

    /// True only when this owner's process is provably gone: it ran on this boot of this
    /// machine, in this PID namespace (so its pid means the same here), and no process with
    /// that pid and start time exists. Anything short of that proof (another host or boot, a
    /// container's own PID namespace, a lease without these fields, no `/proc`) is `false`:
    /// the lease is then waited out to its expiry.
    pub fn is_provably_gone(&self) -> bool {
        if !cfg!(target_os = "linux") || self.host != host_name() {
            return false;
        }
        let (Some(boot), Some(ns), Some(started)) =
            (&self.boot_id, self.pid_namespace, self.start_time)
        else {
            return false;
        };
        if boot_id().as_ref() != Some(boot) || pid_namespace() != Some(ns) {
            return false;
        }
        match start_time(self.pid) {
            // No such process: gone. (A /proc that cannot be read says nothing, but then
            // our own boot id and namespace could not have been read either.)
            None => !std::path::Path::new(&format!("/proc/{}", self.pid)).exists(),
            // The pid was reused by a process that started at another time.
            Some(now) => now != started,
        }
    }
}

/// This boot's id, when the kernel says.
fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The inode of this process's PID namespace.
fn pid_namespace() -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/pid").ok().map(|m| m.ino())
}

/// Field 22 of `/proc/PID/stat`: the process's start time, in clock ticks after boot.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces or ')': the fields
    // after the last ')' start at field 3.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} on {} (run {})",
            self.pid,
            crate::errors::escape(&self.host),
            crate::errors::escape(&self.run_id)
        )
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
    /// RFC 3339, UTC: when the holder last wrote the lease (acquired or renewed); an expiry
    /// more than [`MAX_LEASE_TTL`] after it is not believed. Absent from older leases (then
    /// `acquired_at` stands in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewed_at: Option<String>,
}

impl LeaseInfo {
    /// A new lease for `owner`, valid for `ttl` (at most [`MAX_LEASE_TTL`]) from now.
    pub fn new(owner: Owner, ttl: Duration) -> Self {
        LeaseInfo::new_at(owner, ttl, SystemTime::now())
    }

    /// As [`LeaseInfo::new`], from `now`.
    pub fn new_at(owner: Owner, ttl: Duration, now: SystemTime) -> Self {
        LeaseInfo {
            lease_id: uuid::Uuid::new_v4().to_string(),
            owner,
            acquired_at: rfc3339_millis(now),
            expires_at: rfc3339_millis(now + ttl.min(MAX_LEASE_TTL)),
            renewed_at: Some(rfc3339_millis(now)),
        }
    }

    /// This lease renewed at `now` for `ttl` (at most [`MAX_LEASE_TTL`]).
    pub fn renewed(&self, ttl: Duration, now: SystemTime) -> Self {
        LeaseInfo {
            expires_at: rfc3339_millis(now + ttl.min(MAX_LEASE_TTL)),
            renewed_at: Some(rfc3339_millis(now)),
            ..self.clone()
        }
    }

    /// True once the expiry has passed (or cannot be read: a lease nobody can interpret
    /// must not block everyone forever). The expiry believed is at most [`MAX_LEASE_TTL`]
    /// after the last renewal; a renewal time further in the future than that is not
    /// believed at all.
    pub fn expired(&self, now: SystemTime) -> bool {
        let Ok(expires) = humantime::parse_rfc3339(&self.expires_at) else {
            return true;
        };
        let renewed = self.renewed_at.as_deref().unwrap_or(&self.acquired_at);
        let Ok(renewed) = humantime::parse_rfc3339(renewed) else {
            return true;
        };
        if renewed > now + MAX_LEASE_TTL {
            return true;
        }
        now > expires.min(renewed + MAX_LEASE_TTL)
    }

    /// True when the holder is provably dead ([`Owner::is_provably_gone`]) and is not this
    /// very process: its lease is stale and may be taken over at once instead of waiting
    /// for it to expire.
    pub fn holder_is_gone(&self) -> bool {
        let me = &self.owner;
        let this_process = me.pid == std::process::id()
            && me.start_time.is_some()
            && me.start_time == start_time(me.pid)
            && me.pid_namespace == pid_namespace();
        !this_process && me.is_provably_gone()
    }
}

/// A lease this process holds.
#[derive(Clone, Debug)]
pub struct Lease {
    /// What is written in the lock.
    pub info: LeaseInfo,
    /// The lock document's tag (S3 ETag or the file's digest) after our last write: the
    /// store renews and releases the lease only while the lock still has this tag.
    pub tag: String,
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
    fn an_expiry_in_2099_is_capped_at_the_longest_lifetime_after_the_renewal() {
        let now = SystemTime::now();
        let l = LeaseInfo {
            expires_at: "2099-01-01T00:00:00.000Z".into(),
            ..LeaseInfo::new_at(Owner::current("r"), Duration::from_secs(60), now)
        };
        assert!(!l.expired(now + MAX_LEASE_TTL - Duration::from_secs(1)));
        assert!(l.expired(now + MAX_LEASE_TTL + Duration::from_secs(1)));
        // Renewed "in 2099" too: not believed.
        let forged = LeaseInfo {
            renewed_at: Some("2099-01-01T00:00:00.000Z".into()),
            ..l.clone()
        };
        assert!(forged.expired(now));
        // A lifetime asked for beyond the cap is cut to it.
        let long = LeaseInfo::new_at(Owner::current("r"), Duration::from_secs(86_400), now);
        assert!(long.expired(now + MAX_LEASE_TTL + Duration::from_secs(1)));
    }

    #[test]
    fn this_process_is_alive_and_a_reused_pid_is_not() {
        let me = Owner::current("r");
        assert!(me.boot_id.is_some() && me.pid_namespace.is_some() && me.start_time.is_some());
        assert!(!me.is_provably_gone());
        let lease = LeaseInfo::new(me.clone(), Duration::from_secs(60));
        assert!(!lease.holder_is_gone());
        // The same pid with another start time is another process: the holder is gone.
        let reused = Owner {
            start_time: me.start_time.map(|t| t + 1),
            ..me.clone()
        };
        assert!(reused.is_provably_gone());
        assert!(LeaseInfo::new(reused, Duration::from_secs(60)).holder_is_gone());
        // Another boot or PID namespace proves nothing.
        let other_boot = Owner {
            boot_id: Some("another-boot".into()),
            pid: 4_000_000,
            ..me.clone()
        };
        assert!(!other_boot.is_provably_gone());
        let other_ns = Owner {
            pid_namespace: me.pid_namespace.map(|n| n + 1),
            pid: 4_000_000,
            ..me.clone()
        };
        assert!(!other_ns.is_provably_gone());
        // A lease from before these fields proves nothing either.
        let old = Owner {
            boot_id: None,
            pid: 4_000_000,
            ..me
        };
        assert!(!old.is_provably_gone());
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
