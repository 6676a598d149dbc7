//! The one lease routine every command that writes the ledger goes through (`apply`, `run`,
//! the `state` and `ledger` commands): take the lease, renew it while the work runs,
//! release it afterwards — also when the work fails or is abandoned.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::Store;
use crate::ledger::LedgerError;
use crate::ledger::lease::Owner;

/// How long a lease lasts without renewal; [`hold`] renews it every third of that, so two
/// renewals can fail (a slow store) before another process may take it over.
pub const LEASE_TTL: Duration = Duration::from_secs(60);

/// What becomes of the work when the lease is lost (a renewal failed) while it runs.
pub enum OnLoss<'a> {
    /// Drop the work at once, and also at the first SIGINT or SIGTERM: for commands that
    /// write once, at their end (the `state` and `ledger` commands), whose work then stops
    /// before writing anything.
    Abandon,
    /// Call `lost`, raise `stop` and let the work finish: what is in flight completes and is
    /// recorded, and nothing more starts (`apply` and the daemon, which watch the signals
    /// themselves and raise the same flag).
    Finish {
        /// Raised when the lease is lost.
        stop: &'a AtomicBool,
        /// Told why, at once (a log line, a metric).
        lost: &'a (dyn Fn(&LedgerError) + Send + Sync),
    },
}

/// Why the work did not run to its end under the lease.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    /// The lease could not be taken ([`LedgerError::LeaseHeld`]: another process holds it).
    #[error(transparent)]
    Acquire(LedgerError),
    /// [`OnLoss::Abandon`]: the lease was lost while working, and the work dropped.
    #[error(transparent)]
    Lost(LedgerError),
    /// [`OnLoss::Abandon`]: a SIGINT or SIGTERM (named) dropped the work.
    #[error("interrupted by {0}: stopped before writing anything more")]
    Interrupted(&'static str),
}

/// What [`hold`] gives back.
#[derive(Debug)]
#[must_use]
pub struct Held<T> {
    /// What the work returned, unless it never ran or was abandoned.
    pub result: Result<T, HoldError>,
    /// Releasing the lease afterwards failed (a lease already lost or taken over is not a
    /// failure: there is nothing left to release).
    pub release: Result<(), LedgerError>,
}

/// Runs `work` holding the ledger lease for `owner`: waits up to `wait` for another holder
/// (none: a held lease is [`HoldError::Acquire`] at once), renews the lease every third of
/// `ttl` while the work runs, and releases it afterwards, whatever became of the work.
pub async fn hold<T>(
    store: &Store,
    owner: &Owner,
    ttl: Duration,
    wait: Option<Duration>,
    on_loss: OnLoss<'_>,
    work: impl Future<Output = T>,
) -> Held<T> {
    let lease = match store.acquire(owner, ttl, wait).await {
        Ok(l) => l,
        Err(e) => {
            return Held {
                result: Err(HoldError::Acquire(e)),
                release: Ok(()),
            };
        }
    };
    let lease = tokio::sync::Mutex::new(lease);
    let result = {
        let renew = async {
            loop {
                tokio::time::sleep(ttl / 3).await;
                let mut l = lease.lock().await;
                if let Err(e) = store.renew(&mut l, ttl).await {
                    return e;
                }
            }
        };
        match on_loss {
            OnLoss::Abandon => tokio::select! {
                r = work => Ok(r),
                e = renew => Err(HoldError::Lost(e)),
                s = crate::signals::shutdown_signal() => Err(HoldError::Interrupted(s)),
            },
            OnLoss::Finish { stop, lost } => {
                tokio::pin!(work);
                tokio::pin!(renew);
                tokio::select! {
                    r = &mut work => Ok(r),
                    e = &mut renew => {
                        lost(&e);
                        stop.store(true, Ordering::SeqCst);
                        Ok(work.await)
                    }
                }
            }
        }
    };
    // Released also after a failed renewal: unless it was taken over, it is still ours.
    let release = match store.release(lease.into_inner()).await {
        Ok(()) | Err(LedgerError::LeaseLost { .. }) => Ok(()),
        Err(e) => Err(e),
    };
    Held { result, release }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::store::{Backend, FileBackend};

    fn store() -> (Store, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("provisioner-hold-{}", uuid::Uuid::new_v4()));
        let backend = FileBackend::open(&dir).expect("a folder");
        (Store::with_backend(Backend::File(backend)), dir)
    }

    #[tokio::test]
    async fn the_lease_is_held_while_the_work_runs_and_released_after() {
        let (store, dir) = store();
        let owner = Owner::current("hold");
        let held = hold(&store, &owner, LEASE_TTL, None, OnLoss::Abandon, async {
            store.lease().await.expect("readable").map(|(l, _)| l.owner)
        })
        .await;
        assert_eq!(held.result.expect("ran"), Some(owner));
        assert!(held.release.is_ok());
        assert!(store.lease().await.expect("readable").is_none());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_lost_lease_stops_new_work_and_lets_the_work_in_flight_finish() {
        let (store, dir) = store();
        let stop = AtomicBool::new(false);
        let told = std::sync::Mutex::new(None);
        let lost = |e: &LedgerError| *told.lock().expect("unpoisoned") = Some(e.to_string());
        let ttl = Duration::from_millis(300);
        let work = async {
            // Broken by hand (`state unlock --force`): the next renewal fails.
            let (info, _) = store.lease().await.expect("readable").expect("held");
            store.break_lease(&info.lease_id).await.expect("broken");
            while !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            "finished"
        };
        let on_loss = OnLoss::Finish {
            stop: &stop,
            lost: &lost,
        };
        let held = hold(&store, &Owner::current("hold"), ttl, None, on_loss, work).await;
        assert_eq!(held.result.expect("finished"), "finished");
        assert!(held.release.is_ok(), "a lost lease has nothing to release");
        assert!(told.lock().expect("unpoisoned").is_some());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_held_lease_is_an_error_and_abandoned_work_is_dropped_on_loss() {
        let (store, dir) = store();
        let other = store
            .acquire(&Owner::current("other"), LEASE_TTL, None)
            .await
            .expect("taken");
        let held = hold(
            &store,
            &Owner::current("hold"),
            LEASE_TTL,
            None,
            OnLoss::Abandon,
            async {},
        )
        .await;
        assert!(matches!(
            held.result,
            Err(HoldError::Acquire(LedgerError::LeaseHeld { .. }))
        ));
        store.release(other).await.expect("released");
        let work = async {
            let (info, _) = store.lease().await.expect("readable").expect("held");
            store.break_lease(&info.lease_id).await.expect("broken");
            std::future::pending::<()>().await
        };
        let ttl = Duration::from_millis(300);
        let held = hold(
            &store,
            &Owner::current("hold"),
            ttl,
            None,
            OnLoss::Abandon,
            work,
        )
        .await;
        assert!(matches!(held.result, Err(HoldError::Lost(_))));
        let _ = std::fs::remove_dir_all(dir);
    }
}
