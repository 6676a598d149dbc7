//! How a pass ended ([`PassStatus`], the one rule `apply` and the daemon share), and the
//! progress log both use when nobody watches a terminal.

use std::time::Duration;

use crate::exec::{Outcome, Progress};
use crate::plan::Change;

/// A duration in seconds, to the millisecond, for log lines (`seconds=4.888`, not
/// `4.8880672149999995`).
pub fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// How a pass ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PassStatus {
    /// Nothing was out of line.
    Unchanged,
    /// Every change succeeded.
    Applied {
        /// Changes made.
        done: usize,
    },
    /// Some changes failed or were skipped.
    Partial {
        /// Succeeded.
        done: usize,
        /// Failed.
        failed: usize,
        /// Not attempted.
        skipped: usize,
    },
    /// Everything observed was handled, but kinds the plan needed could not be observed:
    /// whether they match is unknown (never reported as `unchanged`).
    Incomplete {
        /// Kinds not observed.
        unobserved: usize,
        /// Changes made to what was observed.
        done: usize,
    },
    /// Detect mode: differences found and left alone.
    Detected {
        /// Resources out of line.
        drifted: usize,
    },
    /// Another process holds the lease.
    Contended(String),
    /// The pass could not run (bad desired state, ledger unreachable, plan refused).
    Failed(String),
}

impl PassStatus {
    /// The `result` label.
    pub fn label(&self) -> &'static str {
        match self {
            PassStatus::Unchanged => "unchanged",
            PassStatus::Applied { .. } => "applied",
            PassStatus::Partial { .. } => "partial",
            PassStatus::Incomplete { .. } => "incomplete",
            PassStatus::Detected { .. } => "detected",
            PassStatus::Contended(_) => "contended",
            PassStatus::Failed(_) => "failed",
        }
    }

    /// The exit code `apply` and `run --once` use (docs/running.md): 0 converged (or
    /// differences reported in detect mode), 1 nothing was attempted, 3 partial or
    /// incomplete (some changes failed, were skipped or could not be recorded, a conflict
    /// blocked one, or some kinds could not be observed), 4 the lease was held.
    pub fn exit_code(&self) -> u8 {
        match self {
            PassStatus::Unchanged | PassStatus::Applied { .. } | PassStatus::Detected { .. } => 0,
            PassStatus::Failed(_) => 1,
            PassStatus::Partial { .. } | PassStatus::Incomplete { .. } => 3,
            PassStatus::Contended(_) => 4,
        }
    }

    /// True for a pass that should back off the next one, and that is not a successful
    /// reconcile (`provisioner_last_success_timestamp_seconds` stays where it was).
    pub fn failed(&self) -> bool {
        matches!(
            self,
            PassStatus::Failed(_) | PassStatus::Partial { .. } | PassStatus::Incomplete { .. }
        )
    }

    /// How a pass ended, from its plan and what applying it did: the one rule `apply` and
    /// the daemon share. A ledger write that failed after changes were attempted is partial
    /// (they happened; the next pass finds them), before any was attempted a failure;
    /// conflicts count as skipped; unobserved kinds make an otherwise clean pass
    /// incomplete; `reported` is what is still out of line and was left alone (detect mode).
    pub fn conclude(
        plan: &crate::plan::Plan,
        report: &crate::plan::PlanReport,
        applied: Option<&crate::exec::ApplyReport>,
        reported: usize,
    ) -> PassStatus {
        let conflicts = plan.conflicts().count();
        let (done, failed, skipped) = applied.map(|r| r.counts()).unwrap_or_default();
        if let Some(e) = applied.and_then(|r| r.ledger_error.as_ref())
            && done + failed == 0
        {
            return PassStatus::Failed(format!("writing the ledger: {}", crate::errors::chain(e)));
        }
        let unrecorded = applied.is_some_and(|r| r.ledger_error.is_some());
        if failed + skipped + conflicts > 0 || unrecorded {
            return PassStatus::Partial {
                done,
                failed,
                skipped: skipped + conflicts,
            };
        }
        if !report.is_complete() {
            return PassStatus::Incomplete {
                unobserved: report.unobserved.len(),
                done,
            };
        }
        if reported > 0 {
            return PassStatus::Detected { drifted: reported };
        }
        if done > 0 {
            PassStatus::Applied { done }
        } else {
            PassStatus::Unchanged
        }
    }
}

/// Logs each change as it starts and ends.
#[derive(Debug)]
pub struct LogProgress;

impl Progress for LogProgress {
    fn started(&self, c: &Change) {
        tracing::info!(message = "Change started.", address = %c.address, action = ?c.action);
    }

    fn finished(&self, o: &Outcome) {
        match &o.result {
            Ok(()) => tracing::info!(
                message = "Change done.",
                address = %o.address,
                action = ?o.action,
                seconds = millis(o.elapsed)
            ),
            Err(error) if o.skipped => tracing::warn!(
                message = "Change skipped.",
                address = %o.address,
                action = ?o.action,
                error = %error
            ),
            Err(error) => tracing::error!(
                message = "Change failed.",
                address = %o.address,
                action = ?o.action,
                error = %error
            ),
        }
    }
}
