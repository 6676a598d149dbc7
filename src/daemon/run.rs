//! The daemon's loop: a pass every `interval` (with jitter), at once on SIGHUP or when a
//! desired-state file changes; the ledger lease held (and renewed) while a pass acts;
//! exponential backoff after failed passes, reset by a good one; the first SIGTERM/SIGINT
//! lets the changes in flight finish, records them and releases the lease, a second one
//! aborts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::http::{AppliedCounts, PassRecord, Shared};
use super::notify;
use crate::ledger::LedgerError;
use crate::ledger::lease::{Owner, rfc3339};
use crate::ledger::store::{HoldError, LEASE_TTL, OnLoss, hold};
use crate::metrics::labels;
use crate::plan::Action;
use crate::providers::Clouds;
use crate::reconcile::{
    self, LogProgress, PassConfig, PassError, PassOptions, PassStatus, Planned, Reconciler,
    full_chain, millis,
};

/// The daemon's settings from the command line.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// What each pass works from.
    pub pass: PassConfig,
    /// Where the HTTP endpoints listen (`None`: nowhere — `run --once` without `--listen`).
    pub listen: Option<String>,
    /// One pass, then exit.
    pub once: bool,
    /// Overrides `[settings] interval`.
    pub interval: Option<Duration>,
    /// How long `--once` waits for the lease.
    pub lock_timeout: Option<Duration>,
}

/// Runs the daemon; returns the exit code.
pub async fn run(options: RunOptions) -> u8 {
    let interval = options.interval.unwrap_or(Duration::from_secs(300));
    let shared = Arc::new(Shared::new(
        interval,
        options.pass.inputs.environment.clone(),
    ));
    if let Some(listen) = &options.listen {
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(message = "Cannot listen.", listen = %listen, error = %e);
                eprintln!("error: cannot listen on {listen}: {e}");
                return 1;
            }
        };
        let bound = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| listen.clone());
        tracing::info!(message = "Listening.", address = %bound, endpoints = "/metrics /healthz /readyz /status");
        let router = super::http::router(shared.clone());
        tokio::spawn(async move {
            super::http::serve(listener, router).await;
        });
    }
    shared.metrics.interval.set(interval.as_secs_f64());
    notify::notify("READY=1");
    if let Some(every) = notify::watchdog_interval() {
        tokio::spawn(async move {
            loop {
                notify::notify("WATCHDOG=1");
                tokio::time::sleep(every).await;
            }
        });
    }

    // Signals: the first asks to stop, the second aborts.
    let stop = Arc::new(AtomicBool::new(false));
    let wake = Arc::new(tokio::sync::Notify::new());
    {
        let (stop, wake) = (stop.clone(), wake.clone());
        tokio::spawn(async move {
            let first = crate::signals::shutdown_signal().await;
            tracing::warn!(
                message = "Stopping: the changes in flight finish, then the lease is released.",
                signal = first
            );
            notify::notify("STOPPING=1");
            stop.store(true, Ordering::SeqCst);
            wake.notify_waiters();
            let second = crate::signals::shutdown_signal().await;
            tracing::error!(message = "Aborting at once.", signal = second);
            std::process::exit(130);
        });
    }
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();

    // Kept across passes: the ledger store and the providers.
    let mut reconciler = Reconciler::default();
    let mut failures: u32 = 0;
    let mut signature = super::files_signature(&options.pass.desired_dir);
    loop {
        let status = pass(&options, &shared, &mut reconciler, stop.clone()).await;
        notify::notify(&format!("STATUS=last pass: {}", status.label()));
        if options.once {
            return status.exit_code();
        }
        if stop.load(Ordering::SeqCst) {
            break;
        }
        failures = if status.failed() { failures + 1 } else { 0 };
        let interval = shared.interval.lock().map(|i| *i).unwrap_or(interval);
        shared.metrics.interval.set(interval.as_secs_f64());
        // A rate limit that asked for a longer wait than the backoff gets it.
        let delay = next_delay(interval, failures).max(
            reconciler
                .retry_after
                .lock()
                .ok()
                .and_then(|mut w| w.take())
                .unwrap_or_default(),
        );
        tracing::info!(
            message = "Next pass scheduled.",
            seconds = millis(delay),
            consecutive_failures = failures
        );
        let deadline = tokio::time::Instant::now() + delay;
        loop {
            let poll = tokio::time::sleep(Duration::from_secs(2).min(delay));
            let hup_signal = async {
                match hup.as_mut() {
                    Some(h) => {
                        h.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => break,
                () = hup_signal => {
                    tracing::info!(message = "SIGHUP: reconciling now.");
                    break;
                }
                () = wake.notified() => break,
                () = poll => {
                    let now = super::files_signature(&options.pass.desired_dir);
                    if now != signature {
                        signature = now;
                        tracing::info!(message = "The desired state changed: reconciling now.");
                        break;
                    }
                }
            }
            if stop.load(Ordering::SeqCst) {
                break;
            }
        }
        if stop.load(Ordering::SeqCst) {
            break;
        }
    }
    tracing::info!(message = "Stopped.");
    0
}

/// The pause before the next pass: the interval (±10% jitter), or after `failures`
/// consecutive failed passes, 30 seconds (at most the interval) doubling with each one, up
/// to ten intervals.
pub fn next_delay(interval: Duration, failures: u32) -> Duration {
    let base = if failures == 0 {
        interval
    } else {
        let first = interval.min(Duration::from_secs(30));
        let grown = first.saturating_mul(1u32 << (failures - 1).min(16));
        grown.min(interval.saturating_mul(10))
    };
    jitter(base)
}

fn jitter(d: Duration) -> Duration {
    use crypto_box::aead::rand_core::RngCore;
    let r = crypto_box::aead::OsRng.next_u32() as f64 / u32::MAX as f64;
    d.mul_f64(0.9 + 0.2 * r)
}

/// One pass: load, lease, observe, plan, apply (enforce mode), record, release.
async fn pass(
    options: &RunOptions,
    shared: &Shared,
    reconciler: &mut Reconciler,
    stop: Arc<AtomicBool>,
) -> PassStatus {
    let started = Instant::now();
    let started_at = rfc3339(SystemTime::now());
    let mut record = PassRecord {
        started_at: started_at.clone(),
        duration_seconds: 0.0,
        result: String::new(),
        error: None,
        planned: Default::default(),
        applied: AppliedCounts::default(),
        drifted: Vec::new(),
        unobserved: Default::default(),
        not_ready: Default::default(),
    };
    let mut ledger_ok = true;
    let status = pass_inner(
        options,
        shared,
        reconciler,
        stop,
        &mut record,
        &mut ledger_ok,
    )
    .await;
    let m = &shared.metrics;
    m.reconcile_runs
        .get_or_create(&labels(&[("result", status.label())]))
        .inc();
    let elapsed = started.elapsed();
    m.reconcile_duration.observe(elapsed.as_secs_f64());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    m.last_pass.set(now);
    if !status.failed() && !matches!(status, PassStatus::Contended(_)) {
        m.last_success.set(now);
    }
    if let Some(c) = reconciler.clouds() {
        update_api_metrics(shared, c);
    }
    record.duration_seconds = millis(elapsed);
    record.result = status.label().to_string();
    if let PassStatus::Failed(e) | PassStatus::Contended(e) = &status {
        record.error = Some(e.clone());
    }
    match &status {
        PassStatus::Failed(e) => {
            tracing::error!(message = "Pass failed.", error = %e, seconds = millis(elapsed))
        }
        PassStatus::Contended(e) => {
            tracing::warn!(message = "Pass skipped: the lease is held.", error = %e)
        }
        s => tracing::info!(
            message = "Pass finished.",
            result = s.label(),
            drifted = record.drifted.len(),
            done = record.applied.done,
            failed = record.applied.failed,
            seconds = millis(elapsed)
        ),
    }
    shared.record(record, ledger_ok);
    status
}

async fn pass_inner(
    options: &RunOptions,
    shared: &Shared,
    reconciler: &mut Reconciler,
    stop: Arc<AtomicBool>,
    record: &mut PassRecord,
    ledger_ok: &mut bool,
) -> PassStatus {
    let loaded = match reconciler.load(&options.pass, false).await {
        Ok(l) => l,
        Err(e) => return PassStatus::Failed(full_chain(&e)),
    };
    for w in &loaded.warnings {
        tracing::warn!(message = "Configuration.", warning = %w);
    }
    if options.interval.is_none()
        && let Ok(mut i) = shared.interval.lock()
    {
        *i = Duration::from_secs(loaded.desired.settings.interval.seconds());
    }
    if let Ok(mut m) = shared.mode.lock() {
        *m = loaded.desired.settings.mode.as_str().to_string();
    }
    // The store is kept across passes (opened again only when `[settings] ledger` names
    // another), and so are the providers (GitHub's ETag cache lives in them).
    if let Err(e) = reconciler.ledger(&loaded.ledger_url).await {
        *ledger_ok = false;
        return PassStatus::Failed(crate::errors::chain(&e));
    }
    reconciler.providers(&loaded.desired).await;
    let reconciler = &*reconciler;
    let Some(store) = reconciler.store() else {
        return PassStatus::Failed(full_chain(&reconcile::PassError::NoStore));
    };
    let owner = Owner::current(&uuid::Uuid::new_v4().to_string());
    // `--once` waits for the lease as `apply` does; the daemon never waits, it tries again
    // at the next pass.
    let wait = if options.once {
        options.lock_timeout
    } else {
        None
    };
    let lost = |e: &LedgerError| {
        shared.metrics.lease_lost.inc();
        tracing::error!(message = "Lease lost: starting nothing more.", error = %crate::errors::chain(e));
    };
    let on_loss = OnLoss::Finish {
        stop: &stop,
        lost: &lost,
    };
    let work = async {
        shared.metrics.lease_held.set(1);
        work(&loaded, reconciler, shared, stop.clone(), record, ledger_ok).await
    };
    let held = hold(store, &owner, LEASE_TTL, wait, on_loss, work).await;
    if let Err(e) = &held.release {
        tracing::warn!(message = "Releasing the lease failed.", error = %crate::errors::chain(e));
    }
    match held.result {
        Ok(status) => {
            shared.metrics.lease_held.set(0);
            status
        }
        Err(HoldError::Acquire(e @ LedgerError::LeaseHeld { .. })) => {
            shared.metrics.lease_contended.inc();
            PassStatus::Contended(crate::errors::chain(&e))
        }
        Err(HoldError::Acquire(e) | HoldError::Lost(e)) => {
            *ledger_ok = false;
            PassStatus::Failed(crate::errors::chain(&e))
        }
        // Not in `OnLoss::Finish`: the daemon watches the signals itself.
        Err(e @ HoldError::Interrupted(_)) => PassStatus::Failed(e.to_string()),
    }
}

async fn work(
    loaded: &reconcile::Loaded,
    reconciler: &Reconciler,
    shared: &Shared,
    stop: Arc<AtomicBool>,
    record: &mut PassRecord,
    ledger_ok: &mut bool,
) -> PassStatus {
    let m = &shared.metrics;
    let warn = |why: &str| tracing::warn!(message = "Catalogs not checked.", reason = %why);
    let options = PassOptions {
        dry_run: false,
        targets: &[],
        live_from: None,
        command: "run",
        started_at: record.started_at.clone(),
        warn: &warn,
    };
    let planned = async |planned: &Planned| -> Result<(), PassError> {
        m.observe_failures.clear();
        for u in &planned.report.unobserved {
            record.unobserved.insert(u.subject(), u.reason.clone());
            let (p, k) = u.kind.split_once('.').unwrap_or((&u.kind, ""));
            m.observe_failures
                .get_or_create(&labels(&[("provider", p), ("kind", k)]))
                .set(1);
            tracing::warn!(message = "Not observed: nothing of this kind is planned.", kind = %u.kind, reason = %u.reason);
        }
        for c in planned.plan.conflicts() {
            tracing::warn!(
                message = "Conflict: nothing is done to this resource.",
                address = %c.address,
                reason = %c.reason.as_deref().unwrap_or("")
            );
        }
        for (action, n) in planned.plan.counts() {
            record.planned.insert(action.as_str().to_string(), n);
        }
        // Only drift is drift: a rollout of edited files is not counted.
        for c in planned
            .plan
            .changes
            .iter()
            .filter(|c| c.action.acts() || c.action == Action::Drift)
            .filter(|c| c.cause.is_drift())
        {
            m.drift_detected
                .get_or_create(&labels(&[
                    ("provider", c.address.provider()),
                    ("kind", c.address.kind()),
                ]))
                .inc();
        }
        Ok(())
    };
    let passed = match reconciler
        .pass(loaded, options, planned, &LogProgress, stop)
        .await
    {
        Ok(p) => p,
        Err(e) => {
            if e.is_ledger() {
                *ledger_ok = false;
            }
            return PassStatus::Failed(full_chain(&e));
        }
    };
    if let Ok(mut wait) = reconciler.retry_after.lock() {
        *wait = passed.applied.as_ref().and_then(|r| r.retry_after());
    }
    if let Some(report) = &passed.applied {
        let (done, failed, skipped) = report.counts();
        record.applied = AppliedCounts {
            done,
            failed,
            skipped,
        };
        for o in &report.outcomes {
            m.changes
                .get_or_create(&labels(&[
                    ("provider", o.address.provider()),
                    ("action", &format!("{:?}", o.action).to_ascii_lowercase()),
                    ("outcome", reconcile::outcome(o)),
                ]))
                .inc();
        }
        if let Err(e) = &passed.journal {
            tracing::warn!(message = "Writing the journal failed.", error = %crate::errors::chain(e));
        }
        if let Some(e) = &report.ledger_error {
            *ledger_ok = false;
            record.error = Some(format!("writing the ledger: {}", crate::errors::chain(e)));
        }
    }
    let planned = &passed.planned;
    // Gauges describe the state after this pass: drift still there (not corrected, or its
    // correction failed), never a change of the files waiting to be applied.
    m.drifted.clear();
    m.resource_drifted.clear();
    for c in passed.still.iter().filter(|c| c.cause.is_drift()) {
        m.drifted
            .get_or_create(&labels(&[
                ("provider", c.address.provider()),
                ("kind", c.address.kind()),
            ]))
            .inc();
        m.resource_drifted
            .get_or_create(&labels(&[("address", c.address.as_str())]))
            .set(1);
        record.drifted.push(c.address.to_string());
    }
    // Health as this pass observed it (an apply that waited for Ready and failed says so
    // in the pass's error; the next pass observes the outcome).
    m.resource_ready.clear();
    for c in &planned.plan.changes {
        let Some(h) = &c.health else { continue };
        m.resource_ready
            .get_or_create(&labels(&[
                ("address", c.address.as_str()),
                ("state", h.state.as_str()),
            ]))
            .set(i64::from(h.is_ready()));
        if !h.is_ready() {
            tracing::warn!(
                message = "A resource is not Ready.",
                address = %c.address,
                state = h.state.as_str(),
                reason = %h.reason,
                detail = %h.message
            );
            record.not_ready.insert(c.address.to_string(), h.clone());
        }
    }
    m.unmanaged.clear();
    if loaded.desired.settings.report_unmanaged {
        let kinds: Vec<crate::desired::Kind> =
            crate::providers::used_kinds(&loaded.desired, &planned.ledger)
                .into_iter()
                .collect();
        let scanned =
            crate::plan::scan::scan(&planned.plan, &planned.ledger, &planned.live, &kinds);
        for k in scanned.iter().filter(|k| k.not_observed.is_none()) {
            let (p, kind) = k.kind.split_once('.').unwrap_or((&k.kind, ""));
            for c in [
                crate::plan::scan::Category::Adoptable,
                crate::plan::scan::Category::Unmanaged,
                crate::plan::scan::Category::Theirs,
            ] {
                let n = k.objects.iter().filter(|o| o.category == c).count();
                m.unmanaged
                    .get_or_create(&labels(&[
                        ("provider", p),
                        ("kind", kind),
                        ("category", c.as_str()),
                    ]))
                    .set(n as i64);
            }
        }
    }
    m.managed.clear();
    for e in planned.ledger.resources.values() {
        let (p, k) = e.kind.split_once('.').unwrap_or((&e.kind, ""));
        m.managed
            .get_or_create(&labels(&[("provider", p), ("kind", k)]))
            .inc();
    }
    passed.status
}

fn update_api_metrics(shared: &Shared, clouds: &Clouds) {
    let m = &shared.metrics;
    let record = |provider: &str, classes: [(&'static str, u64); 5], remaining: Option<u64>| {
        for (class, n) in classes {
            let c = m
                .api_requests
                .get_or_create(&labels(&[("provider", provider), ("status_class", class)]));
            // The clients count since start; the counter follows them.
            let seen = c.get();
            if n > seen {
                c.inc_by(n - seen);
            }
        }
        if let Some(r) = remaining {
            m.rate_limit_remaining
                .get_or_create(&labels(&[("provider", provider)]))
                .set(r as i64);
        }
    };
    for (provider, stats) in clouds.request_stats() {
        record(provider, stats.classes, stats.remaining);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_passes_back_off_and_a_good_one_resets() {
        let interval = Duration::from_secs(300);
        let within = |d: Duration, want: u64| {
            let w = Duration::from_secs(want);
            d >= w.mul_f64(0.9) && d <= w.mul_f64(1.1)
        };
        assert!(within(next_delay(interval, 0), 300));
        assert!(within(next_delay(interval, 1), 30));
        assert!(within(next_delay(interval, 2), 60));
        assert!(within(next_delay(interval, 5), 480));
        assert!(within(next_delay(interval, 20), 3000));
        // A short interval (tests, the sandbox) is never exceeded by the first retry.
        assert!(within(next_delay(Duration::from_secs(2), 1), 2));
    }

    #[test]
    fn exit_codes_are_stable() {
        assert_eq!(PassStatus::Unchanged.exit_code(), 0);
        assert_eq!(PassStatus::Applied { done: 1 }.exit_code(), 0);
        assert_eq!(PassStatus::Failed("x".into()).exit_code(), 1);
        assert_eq!(
            PassStatus::Partial {
                done: 1,
                failed: 1,
                skipped: 0
            }
            .exit_code(),
            3
        );
        assert_eq!(PassStatus::Contended("x".into()).exit_code(), 4);
        assert_eq!(
            PassStatus::Incomplete {
                unobserved: 1,
                done: 0
            }
            .exit_code(),
            3
        );
    }
}
