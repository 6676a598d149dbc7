//! The daemon's HTTP endpoints: `/metrics` (Prometheus text format), `/healthz` (the process
//! answers), `/readyz` (the last pass finished within two intervals and could read the
//! ledger), `/status` (JSON: the last passes).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;

use crate::metrics::Metrics;

/// How many passes `/status` keeps.
pub const KEPT_PASSES: usize = 20;

/// One pass as `/status` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct PassRecord {
    /// When it started (RFC 3339).
    pub started_at: String,
    /// How long it took, in seconds.
    pub duration_seconds: f64,
    /// `unchanged`, `applied`, `partial`, `incomplete`, `failed`, `detected`, `contended`.
    pub result: String,
    /// Why it failed, when it did (never a secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Changes by action (`create: 2`, `drift: 1`).
    pub planned: std::collections::BTreeMap<String, usize>,
    /// Changes carried out: done, failed, skipped.
    pub applied: AppliedCounts,
    /// Addresses still out of line after the pass.
    pub drifted: Vec<String>,
    /// Kinds (or scopes of them: `github.actions_secret (repository=o/r)`) that could not
    /// be observed, with the reason.
    pub unobserved: std::collections::BTreeMap<String, String>,
    /// Resources whose controller reports them not Ready (a `flux.instance` the Flux
    /// Operator reports `Ready=False` or `Stalled`), as the pass observed them: state,
    /// reason and message, by address.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub not_ready: std::collections::BTreeMap<String, crate::live::Health>,
}

/// Done, failed, skipped.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AppliedCounts {
    /// Succeeded.
    pub done: usize,
    /// Failed.
    pub failed: usize,
    /// Not attempted.
    pub skipped: usize,
}

/// What the endpoints read.
#[derive(Debug)]
pub struct Shared {
    /// The metrics.
    pub metrics: Metrics,
    /// The last passes, newest last.
    pub passes: Mutex<VecDeque<PassRecord>>,
    /// When the last pass finished, and whether it could read the ledger.
    pub last_finished: Mutex<Option<(Instant, bool)>>,
    /// The reconcile interval (readiness allows two).
    pub interval: Mutex<Duration>,
    /// `enforce` or `detect`.
    pub mode: Mutex<String>,
    /// The environment the daemon keeps (`-e NAME`), if the desired state has several.
    pub environment: Option<String>,
}

impl Shared {
    /// Fresh state, for the environment `environment` (every metric then carries the label
    /// `environment="NAME"`).
    pub fn new(interval: Duration, environment: Option<String>) -> Self {
        Shared {
            metrics: Metrics::for_environment(environment.as_deref()),
            environment,
            passes: Mutex::new(VecDeque::new()),
            last_finished: Mutex::new(None),
            interval: Mutex::new(interval),
            mode: Mutex::new("enforce".into()),
        }
    }

    /// Records a finished pass.
    pub fn record(&self, pass: PassRecord, ledger_ok: bool) {
        if let Ok(mut p) = self.passes.lock() {
            p.push_back(pass);
            while p.len() > KEPT_PASSES {
                p.pop_front();
            }
        }
        if let Ok(mut l) = self.last_finished.lock() {
            *l = Some((Instant::now(), ledger_ok));
        }
    }
}

/// Connections served at once. The endpoints answer in milliseconds; a scraper or a health
/// check needs one or two. Connections past the cap are closed at once, so idle or slow
/// clients can never hold more file descriptors than this (the unit's `LimitNOFILE` leaves
/// room for the providers' and the ledger's own connections).
pub const MAX_CONNECTIONS: usize = 128;

/// How long a client may take to send a request's headers, also the first request of a new
/// connection and the next one of a kept-alive connection (one header byte every few
/// seconds keeps nothing open).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest a connection is kept, busy or idle.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);

/// Serves `router` on `listener` with the limits above (axum's own `serve` has no header
/// timeout, idle timeout or connection cap). Runs until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, router: Router) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, most likely: wait for some to close instead of
                // spinning.
                tracing::warn!(message = "Accepting a connection failed.", error = %e);
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
            drop(slot);
        });
    }
}

/// The router.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .with_state(shared)
}

async fn metrics(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.encode(),
    )
}

async fn readyz(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    let interval = s
        .interval
        .lock()
        .map(|i| *i)
        .unwrap_or(Duration::from_secs(300));
    match s.last_finished.lock().ok().and_then(|l| *l) {
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "no pass has finished yet\n".to_string(),
        ),
        Some((_, false)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the last pass could not read the ledger\n".to_string(),
        ),
        Some((at, true)) if at.elapsed() > interval * 2 => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "the last pass finished {}s ago, more than two intervals\n",
                at.elapsed().as_secs()
            ),
        ),
        Some(_) => match incomplete(&s) {
            Some(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
            None => (StatusCode::OK, "ready\n".to_string()),
        },
    }
}

/// Why the last pass that observed the clouds is incomplete: the kinds it could not
/// observe, with their reasons. Passes that never observed (the lease was held, the pass
/// failed before planning) neither set nor clear it.
fn incomplete(s: &Shared) -> Option<String> {
    let passes = s.passes.lock().ok()?;
    let last = passes.iter().rev().find(|p| p.result != "contended")?;
    if last.result == "failed" && last.unobserved.is_empty() {
        // The pass could not run (an invalid desired state, a refused plan): the daemon
        // sees nothing it should, so it is not ready.
        return Some(format!(
            "the last pass failed: {}\n",
            last.error.as_deref().unwrap_or("(no reason recorded)")
        ));
    }
    if last.unobserved.is_empty() {
        return None;
    }
    let kinds: Vec<String> = last
        .unobserved
        .iter()
        .map(|(k, why)| format!("{k} ({why})"))
        .collect();
    Some(format!(
        "the last pass could not observe {} kind{} or scope{}, so whether they match is unknown: {}\n",
        kinds.len(),
        if kinds.len() == 1 { "" } else { "s" },
        if kinds.len() == 1 { "" } else { "s" },
        kinds.join("; ")
    ))
}

async fn status(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    let passes: Vec<PassRecord> = s
        .passes
        .lock()
        .map(|p| p.iter().cloned().collect())
        .unwrap_or_default();
    let mode = s.mode.lock().map(|m| m.clone()).unwrap_or_default();
    let interval = s.interval.lock().map(|i| i.as_secs_f64()).unwrap_or(0.0);
    axum::Json(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "environment": s.environment,
        "mode": mode,
        "interval_seconds": interval,
        "passes": passes,
    }))
}
