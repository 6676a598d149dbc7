//! The daemon's metrics, all `provisioner_*`, with bounded labels: provider, kind, result,
//! action, status class — and, for the per-resource drift gauge, the address, which comes
//! from the desired state (never a cloud id).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// Every metric of the daemon.
pub struct Metrics {
    registry: Registry,
    /// Passes by result (`unchanged`, `applied`, `partial`, `failed`, `detected`, `contended`).
    pub reconcile_runs: Family<Labels, Counter>,
    /// Pass duration.
    pub reconcile_duration: Histogram,
    /// Unix time of the last pass that finished without an error.
    pub last_success: Gauge<f64, AtomicU64>,
    /// Unix time of the last pass, whatever its result.
    pub last_pass: Gauge<f64, AtomicU64>,
    /// Unix time the process started.
    pub start_time: Gauge<f64, AtomicU64>,
    /// The reconcile interval, for alerts that count in intervals.
    pub interval: Gauge<f64, AtomicU64>,
    /// Resources out of line with the desired state after the last pass, by provider/kind.
    pub drifted: Family<Labels, Gauge>,
    /// 1 for each address out of line after the last pass.
    pub resource_drifted: Family<Labels, Gauge>,
    /// For resources whose controller reports health (`flux.instance`): 1 when the last
    /// pass observed them Ready, else 0, labelled with the state (`ready`, `progressing`,
    /// `failed`, `stalled`).
    pub resource_ready: Family<Labels, Gauge>,
    /// Drift found (before correction), by provider/kind.
    pub drift_detected: Family<Labels, Counter>,
    /// Resources in the ledger, by provider/kind.
    pub managed: Family<Labels, Gauge>,
    /// Changes carried out, by provider/action/outcome.
    pub changes: Family<Labels, Counter>,
    /// API answers, by provider/status class.
    pub api_requests: Family<Labels, Counter>,
    /// The provider's remaining request budget, as the API last said.
    pub rate_limit_remaining: Family<Labels, Gauge>,
    /// Kinds that could not be observed in the last pass.
    pub observe_failures: Family<Labels, Gauge>,
    /// Objects this ledger does not manage, by provider/kind/category (`adoptable`,
    /// `unmanaged`, `theirs`), with `[settings] report_unmanaged = true`.
    pub unmanaged: Family<Labels, Gauge>,
    /// 1 while this process holds the ledger lease.
    pub lease_held: Gauge,
    /// Passes that found the lease held by someone else.
    pub lease_contended: Counter,
    /// Leases lost while held (renewal failed or taken over).
    pub lease_lost: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under `provisioner_`.
    pub fn new() -> Self {
        Self::for_environment(None)
    }

    /// Registers every metric under `provisioner_`, each with the label
    /// `environment="NAME"` when `environment` is given (a daemon keeping one environment of
    /// several: alerts and dashboards tell staging's drift from production's).
    pub fn for_environment(environment: Option<&str>) -> Self {
        let registry = match environment {
            Some(e) => Registry::with_prefix_and_labels(
                "provisioner",
                [(
                    std::borrow::Cow::Borrowed("environment"),
                    std::borrow::Cow::Owned(e.to_string()),
                )]
                .into_iter(),
            ),
            None => Registry::with_prefix("provisioner"),
        };
        let mut m = Metrics {
            registry,
            reconcile_runs: Family::default(),
            reconcile_duration: Histogram::new([
                0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 1800.0,
            ]),
            last_success: Gauge::default(),
            last_pass: Gauge::default(),
            start_time: Gauge::default(),
            interval: Gauge::default(),
            drifted: Family::default(),
            resource_drifted: Family::default(),
            resource_ready: Family::default(),
            drift_detected: Family::default(),
            managed: Family::default(),
            changes: Family::default(),
            api_requests: Family::default(),
            rate_limit_remaining: Family::default(),
            observe_failures: Family::default(),
            unmanaged: Family::default(),
            lease_held: Gauge::default(),
            lease_contended: Counter::default(),
            lease_lost: Counter::default(),
        };
        let r = &mut m.registry;
        r.register(
            "reconcile_runs",
            "Reconcile passes by result",
            m.reconcile_runs.clone(),
        );
        r.register_with_unit(
            "reconcile_duration",
            "Duration of a reconcile pass",
            prometheus_client::registry::Unit::Seconds,
            m.reconcile_duration.clone(),
        );
        r.register_with_unit(
            "last_successful_reconcile_timestamp",
            "Unix time of the last pass that finished without an error",
            prometheus_client::registry::Unit::Seconds,
            m.last_success.clone(),
        );
        r.register_with_unit(
            "last_reconcile_timestamp",
            "Unix time of the last pass",
            prometheus_client::registry::Unit::Seconds,
            m.last_pass.clone(),
        );
        r.register_with_unit(
            "start_time",
            "Unix time the process started",
            prometheus_client::registry::Unit::Seconds,
            m.start_time.clone(),
        );
        r.register_with_unit(
            "reconcile_interval",
            "Time between reconcile passes",
            prometheus_client::registry::Unit::Seconds,
            m.interval.clone(),
        );
        r.register(
            "drifted_resources",
            "Resources out of line with the desired state after the last pass",
            m.drifted.clone(),
        );
        r.register(
            "resource_drifted",
            "1 for each desired-state address out of line after the last pass",
            m.resource_drifted.clone(),
        );
        r.register(
            "resource_ready",
            "For resources whose controller reports health (flux.instance): 1 when the last pass observed them Ready, else 0; label state says where they stand",
            m.resource_ready.clone(),
        );
        r.register(
            "drift_detected",
            "Drifted resources found by passes, before correction",
            m.drift_detected.clone(),
        );
        r.register(
            "managed_resources",
            "Resources recorded in the ledger",
            m.managed.clone(),
        );
        r.register(
            "changes",
            "Changes carried out, by outcome",
            m.changes.clone(),
        );
        r.register(
            "api_requests",
            "API answers since start, by provider and status class",
            m.api_requests.clone(),
        );
        r.register(
            "rate_limit_remaining",
            "Requests left in the provider's current rate-limit window",
            m.rate_limit_remaining.clone(),
        );
        r.register(
            "observe_failures",
            "Kinds that could not be observed in the last pass (unknown, never absent)",
            m.observe_failures.clone(),
        );
        r.register(
            "unmanaged_objects",
            "Observed objects this ledger does not manage, by category (with [settings] report_unmanaged)",
            m.unmanaged.clone(),
        );
        r.register(
            "ledger_lock_held",
            "1 while this process holds the ledger lease",
            m.lease_held.clone(),
        );
        r.register(
            "lease_contended",
            "Passes that found the ledger lease held by another process",
            m.lease_contended.clone(),
        );
        r.register("lease_lost", "Leases lost while held", m.lease_lost.clone());
        let build: Family<Labels, Gauge> = Family::default();
        build
            .get_or_create(&vec![("version", env!("CARGO_PKG_VERSION").to_string())])
            .set(1);
        r.register("build_info", "The running version", build);
        m.start_time.set(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
        );
        m
    }

    /// The Prometheus text exposition (format 0.0.4, which `promtool check metrics` reads):
    /// the OpenMetrics text of prometheus-client with counters' `HELP` and `TYPE` lines named
    /// like their samples (`…_total`) and without the `# EOF` and `# UNIT` lines.
    pub fn encode(&self) -> String {
        let mut open = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut open, &self.registry);
        to_text_format(&open)
    }
}

fn to_text_format(open: &str) -> String {
    let counters: std::collections::HashSet<&str> = open
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open.len() + 64);
    for line in open.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// Label helper. Values are escaped as the text exposition format asks (`\\`, `\"`, `\n`):
/// prometheus-client writes them as they are, and an address of a `for_each` instance
/// (`digitalocean.vpc.net["a"]`) holds quotes that would otherwise end the value and make
/// the whole scrape unreadable.
pub fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, escape_label(v))).collect()
}

/// A label value escaped for the text exposition format.
fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_label_value_with_quotes_stays_one_value() {
        let m = Metrics::for_environment(Some("staging"));
        m.resource_drifted
            .get_or_create(&labels(&[("address", "digitalocean.vpc.net[\"a\\b\"]")]))
            .set(1);
        let text = m.encode();
        assert!(
            text.contains(
                "provisioner_resource_drifted{environment=\"staging\",address=\"digitalocean.vpc.net[\\\"a\\\\b\\\"]\"} 1"
            ),
            "{text}"
        );
    }

    #[test]
    fn counters_are_named_like_their_samples() {
        let m = Metrics::new();
        m.reconcile_runs
            .get_or_create(&labels(&[("result", "applied")]))
            .inc();
        let text = m.encode();
        assert!(
            text.contains("# TYPE provisioner_reconcile_runs_total counter"),
            "{text}"
        );
        assert!(
            text.contains("# HELP provisioner_reconcile_runs_total Reconcile passes by result")
        );
        assert!(text.contains("provisioner_reconcile_runs_total{result=\"applied\"} 1"));
        assert!(!text.contains("# EOF"));
        assert!(text.contains("# TYPE provisioner_ledger_lock_held gauge"));
    }
}
