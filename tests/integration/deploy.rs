//! What `deploy/` ships: the systemd unit verifies and is hardened; the alert rules check and
//! pass their unit tests; the alerts and the dashboard name only metrics the daemon exposes;
//! and, end to end, a real Prometheus scraping a daemon in detect mode fires the drift alert
//! when the simulator drifts and resolves it when the drift goes away.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use provisioner::sim::digitalocean::{DoConfig, DoSim};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_provisioner");

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

/// A tool, or `None` outside CI when it is not installed (CI installs every one of them).
fn tool(name: &str) -> Option<&str> {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is missing in CI: .ci/run installs it"
        );
        eprintln!("{name} is not installed: skipped");
        return None;
    }
    Some(name)
}

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    let Some(analyze) = tool("systemd-analyze") else {
        return;
    };
    // Verify against the binary just built, where the unit expects the installed one.
    let dir = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(deploy("systemd/provisioner.service"))
        .unwrap()
        .replace("/usr/local/bin/provisioner", BIN);
    let path = dir.path().join("provisioner.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new(analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(analyze)
        .args(["--offline=true", "security"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("{text}"));
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    eprintln!("{line}");
    assert!(score < 2.0, "{line}");
    // The credentials file example is documented as 0600 and holds no value.
    let example = std::fs::read_to_string(deploy("systemd/provisioner.env.example")).unwrap();
    assert!(example.contains("install -m 0600"));
    for line in example
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('='))
    {
        let (k, v) = line.split_once('=').unwrap();
        assert!(v.is_empty() || k == "AWS_REGION", "{line}");
    }
}

#[test]
fn the_alert_rules_check_and_pass_their_unit_tests() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    for args in [
        vec!["check", "rules", "alerts.yml"],
        vec!["test", "rules", "alerts_test.yml"],
    ] {
        let out = Command::new(promtool)
            .args(&args)
            .current_dir(deploy("prometheus"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Every `provisioner_*` name in `text`, without histogram suffixes.
fn metric_names(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("provisioner_") {
        let start = i + at;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        let before_ok = start == 0
            || !(bytes[start - 1].is_ascii_alphanumeric()
                || bytes[start - 1] == b'_'
                || bytes[start - 1] == b'/'
                || bytes[start - 1] == b'-');
        let name = &text[start..end];
        if before_ok {
            let name = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|_| name.contains("duration")))
                .unwrap_or(name);
            out.push(name.to_string());
        }
        i = end;
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn alerts_and_dashboard_name_only_metrics_the_daemon_exposes() {
    // Every family with one child, so each shows in the exposition.
    let m = provisioner::metrics::Metrics::new();
    let l = |pairs: &[(&'static str, &str)]| provisioner::metrics::labels(pairs);
    let pk = l(&[("provider", "digitalocean"), ("kind", "vpc")]);
    m.reconcile_runs
        .get_or_create(&l(&[("result", "applied")]))
        .inc();
    m.drifted.get_or_create(&pk).set(1);
    m.resource_drifted
        .get_or_create(&l(&[("address", "digitalocean.vpc.x")]))
        .set(1);
    m.drift_detected.get_or_create(&pk).inc();
    m.managed.get_or_create(&pk).set(1);
    m.observe_failures.get_or_create(&pk).set(1);
    m.changes
        .get_or_create(&l(&[
            ("provider", "digitalocean"),
            ("action", "create"),
            ("outcome", "done"),
        ]))
        .inc();
    m.api_requests
        .get_or_create(&l(&[("provider", "digitalocean"), ("status_class", "2xx")]))
        .inc();
    m.rate_limit_remaining
        .get_or_create(&l(&[("provider", "digitalocean")]))
        .set(1);
    let exposed: Vec<String> = m
        .encode()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    assert!(
        exposed.contains(&"provisioner_reconcile_runs_total".to_string()),
        "{exposed:?}"
    );
    let dashboard = std::fs::read_to_string(deploy("grafana/provisioner.json")).unwrap();
    let parsed: Value = serde_json::from_str(&dashboard).unwrap();
    assert!(parsed["panels"].as_array().unwrap().len() >= 8);
    for (file, text) in [
        (
            "alerts.yml",
            std::fs::read_to_string(deploy("prometheus/alerts.yml")).unwrap(),
        ),
        ("provisioner.json", dashboard),
    ] {
        let names = metric_names(&text);
        assert!(!names.is_empty());
        for n in names {
            assert!(
                exposed.contains(&n),
                "{file} names {n}, which the daemon does not expose"
            );
        }
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn firing(prometheus: &str) -> Vec<Value> {
    let Ok(r) = reqwest::get(format!("{prometheus}/api/v1/alerts")).await else {
        return Vec::new();
    };
    let v: Value = r.json().await.unwrap_or(Value::Null);
    v["data"]["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|a| {
            a["state"] == "firing" && a["labels"]["alertname"] == "ProvisionerDriftDetected"
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_fires_the_drift_alert_and_resolves_it() {
    let Some(prometheus_bin) = tool("prometheus") else {
        return;
    };
    let sim = DoSim::start(DoConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let desired = dir.path().join("desired");
    std::fs::create_dir_all(&desired).unwrap();
    std::fs::write(
        desired.join("dns.toml"),
        r#"
[digitalocean.domain.main]
name = "example.com"

[digitalocean.domain_record.www]
domain = "${digitalocean.domain.main.name}"
type = "A"
name = "www"
data = "203.0.113.10"
ttl = 300
"#,
    )
    .unwrap();
    let env = |c: &mut Command| {
        c.arg("-d")
            .arg(&desired)
            .env(
                "PROVISIONER_LEDGER",
                format!("file://{}", dir.path().join("state").display()),
            )
            .env("DIGITALOCEAN_TOKEN", "sim-token")
            .env("DIGITALOCEAN_API_URL", sim.url())
            .env_remove("GITHUB_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
    };
    let mut apply = Command::new(BIN);
    env(&mut apply);
    assert!(
        apply
            .args(["apply", "--auto-approve"])
            .status()
            .unwrap()
            .success()
    );

    // The daemon in detect mode, every second.
    let daemon_port = free_port();
    let mut daemon = Command::new(BIN);
    env(&mut daemon);
    let _daemon = Killed(
        daemon
            .args(["run", "--mode", "detect", "--interval", "1s", "--listen"])
            .arg(format!("127.0.0.1:{daemon_port}"))
            .spawn()
            .unwrap(),
    );

    // Prometheus with the shipped rules, the drift alert's `for` shortened for the test.
    let rules = std::fs::read_to_string(deploy("prometheus/alerts.yml"))
        .unwrap()
        .replace("for: 15m", "for: 3s");
    std::fs::write(dir.path().join("alerts.yml"), rules).unwrap();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - alerts.yml\nscrape_configs:\n  - job_name: provisioner\n    static_configs:\n      - targets: ['127.0.0.1:{daemon_port}']\n"
        ),
    )
    .unwrap();
    let prom_port = free_port();
    let _prometheus = Killed(
        Command::new(prometheus_bin)
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let prometheus = format!("http://127.0.0.1:{prom_port}");
    let log = || std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();

    // No drift yet: after a few evaluations, nothing fires.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(firing(&prometheus).await.is_empty(), "{}", log());

    // Someone changes the record's TTL by hand: the alert fires.
    let set_ttl = |ttl: u64| {
        sim.edit(|s| {
            for r in s.records.get_mut("example.com").unwrap() {
                if r["name"] == "www" {
                    r["ttl"] = ttl.into();
                }
            }
        })
    };
    set_ttl(60);
    let deadline = Instant::now() + Duration::from_secs(60);
    let alert = loop {
        if let Some(a) = firing(&prometheus).await.pop() {
            break a;
        }
        assert!(
            Instant::now() < deadline,
            "the drift alert never fired:\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(alert["labels"]["provider"], "digitalocean");
    assert_eq!(alert["labels"]["kind"], "domain_record");
    assert!(
        alert["annotations"]["runbook_url"]
            .as_str()
            .unwrap()
            .contains("docs/operations.md#provisionerdriftdetected")
    );

    // The drift goes away: the alert resolves.
    set_ttl(300);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !firing(&prometheus).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the drift alert never resolved:\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
