//! `provisioner apply` and `provisioner run` as processes, against the DigitalOcean and
//! GitHub simulators: the daemon converges, corrects an injected drift within an interval,
//! reports it without touching it in detect mode, serves metrics that promtool accepts;
//! SIGTERM mid-apply releases the lease; two daemons share a ledger without conflicting
//! writes; SIGKILL at random points never leaves a duplicate, an orphan or an unreadable
//! ledger.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use provisioner::ledger::store::Store;
use provisioner::sim::Fault;
use provisioner::sim::digitalocean::{DoConfig, DoSim};
use provisioner::sim::github::{GhConfig, GhSim};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_provisioner");
const APPS: &str = "example-org/platform-apps";
const CANARY: &str = "canary-daemon-5d1e77-do-not-leak";

const DESIRED: &str = r#"
[settings]
interval = "30s"
prune = true

[digitalocean.vpc.main]
name = "prod-ams3"
region = "ams3"
ip_range = "10.10.0.0/20"

[digitalocean.domain.main]
name = "example.com"

[digitalocean.domain_record.www]
domain = "${digitalocean.domain.main.name}"
type = "A"
name = "www"
data = "203.0.113.10"
ttl = 300

[digitalocean.domain_record.dmarc]
domain = "${digitalocean.domain.main.name}"
type = "TXT"
name = "_dmarc"
data = "v=DMARC1; p=quarantine"

[digitalocean.firewall.nodes]
name = "nodes"
tags = ["k8s-worker"]

[[digitalocean.firewall.nodes.inbound_rules]]
protocol = "tcp"
ports = "443"
sources = { addresses = ["0.0.0.0/0"] }

[github.actions_secret.token]
repository = "example-org/platform-apps"
name = "DEPLOY_TOKEN"
value = { file = "SECRET_FILE" }

[github.actions_variable.host]
repository = "example-org/platform-apps"
name = "SMTP_HOST"
value = "smtp.example.com"
"#;

struct World {
    do_sim: DoSim,
    gh_sim: GhSim,
    dir: tempfile::TempDir,
}

impl World {
    async fn new(desired: &str) -> World {
        let do_sim = DoSim::start(DoConfig::default()).await.unwrap();
        let gh_sim = GhSim::start(GhConfig::default()).await.unwrap();
        gh_sim.create_repo(APPS);
        let dir = tempfile::tempdir().unwrap();
        let w = World {
            do_sim,
            gh_sim,
            dir,
        };
        w.write_desired(desired);
        w
    }

    fn write_desired(&self, text: &str) {
        let secret = self.dir.path().join("secret.txt");
        std::fs::write(&secret, CANARY).unwrap();
        let desired = self.desired_dir();
        std::fs::create_dir_all(&desired).unwrap();
        std::fs::write(
            desired.join("platform.toml"),
            text.replace("SECRET_FILE", &secret.display().to_string()),
        )
        .unwrap();
    }

    fn desired_dir(&self) -> PathBuf {
        self.dir.path().join("desired")
    }

    fn ledger_url(&self) -> String {
        format!("file://{}", self.dir.path().join("state").display())
    }

    fn command(&self) -> Command {
        let mut c = Command::new(BIN);
        c.arg("-d")
            .arg(self.desired_dir())
            .env("PROVISIONER_LEDGER", self.ledger_url())
            .env("DIGITALOCEAN_TOKEN", "sim-token")
            .env("DIGITALOCEAN_API_URL", self.do_sim.url())
            .env("GITHUB_TOKEN", "sim-gh-token")
            .env("GITHUB_API_URL", self.gh_sim.url())
            .env(
                "PROVISIONER_FINGERPRINT_KEY",
                "daemon-test-fingerprint-key-0123",
            )
            .env_remove("SPACES_ACCESS_KEY_ID")
            .env_remove("RUST_LOG")
            .env("AWS_EC2_METADATA_DISABLED", "true");
        c
    }

    fn daemon(&self, extra: &[&str]) -> Daemon {
        let port = free_port();
        let log = self.dir.path().join(format!("daemon-{port}.log"));
        let child = self
            .command()
            .arg("run")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Daemon {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    fn apply(&self) -> std::process::Output {
        self.command()
            .args(["apply", "--auto-approve"])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// The zone's records, without the NS and SOA records DigitalOcean makes itself.
    fn records(&self) -> Vec<Value> {
        self.do_sim.edit(|s| {
            s.records
                .get("example.com")
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|r| r["type"] != "NS" && r["type"] != "SOA")
                .collect()
        })
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Daemon {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    async fn get(&self, path: &str) -> Option<(u16, String)> {
        let r = reqwest::get(format!("{}{path}", self.url)).await.ok()?;
        let status = r.status().as_u16();
        Some((status, r.text().await.ok()?))
    }

    async fn status(&self) -> Value {
        self.get("/status")
            .await
            .and_then(|(_, t)| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null)
    }

    /// Waits until `/status` satisfies `ok` (up to a minute).
    async fn wait_for(&self, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = self.status().await;
            if ok(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last status {s:#}\nlog:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
}

fn passes(s: &Value) -> Vec<Value> {
    s["passes"].as_array().cloned().unwrap_or_default()
}

fn last_result(s: &Value) -> String {
    passes(s)
        .last()
        .and_then(|p| p["result"].as_str())
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_converges_then_corrects_drift_within_an_interval() {
    let w = World::new(DESIRED).await;
    let d = w.daemon(&["--interval", "1s"]);
    let s = d
        .wait_for("a converged pass", |s| {
            passes(s).iter().any(|p| p["result"] == "applied") && last_result(s) == "unchanged"
        })
        .await;
    assert_eq!(s["mode"], "enforce");
    assert_eq!(w.records().len(), 2);
    assert_eq!(
        w.gh_sim.secret(APPS, None, "DEPLOY_TOKEN").unwrap(),
        CANARY.as_bytes()
    );
    let (code, _) = d.get("/readyz").await.unwrap();
    assert_eq!(code, 200);
    assert_eq!(d.get("/healthz").await.unwrap().0, 200);

    // Drift: a record deleted and a secret set by hand, outside provisioner.
    let before = passes(&d.status().await).len();
    assert!(w.do_sim.delete_record("example.com", "www", "A"));
    assert!(
        w.gh_sim
            .overwrite_secret(APPS, "DEPLOY_TOKEN", b"typed-by-hand")
    );
    let injected = Instant::now();
    d.wait_for("the drift corrected", |s| {
        passes(s)
            .iter()
            .skip(before)
            .any(|p| p["result"] == "applied" && p["applied"]["done"] == 2)
    })
    .await;
    assert!(injected.elapsed() < Duration::from_secs(10));
    assert_eq!(w.records().len(), 2);
    assert_eq!(
        w.gh_sim.secret(APPS, None, "DEPLOY_TOKEN").unwrap(),
        CANARY.as_bytes()
    );

    let (_, metrics) = d.get("/metrics").await.unwrap();
    assert!(
        metrics.contains("provisioner_reconcile_runs_total{result=\"applied\"}"),
        "{metrics}"
    );
    assert!(metrics.contains(
        "provisioner_drift_detected_total{provider=\"digitalocean\",kind=\"domain_record\"}"
    ));
    assert!(
        metrics
            .contains("provisioner_api_requests_total{provider=\"github\",status_class=\"2xx\"}")
    );
    assert!(
        metrics.contains("provisioner_managed_resources{provider=\"digitalocean\",kind=\"vpc\"} 1")
    );
    assert!(metrics.contains("provisioner_last_successful_reconcile_timestamp_seconds"));
    promtool_check(&metrics);

    // Canary: the value is in no log line, metric or status.
    let status = d.status().await.to_string();
    for text in [d.log(), metrics, status] {
        assert!(!text.contains(CANARY));
    }
}

/// `promtool check metrics` accepts the exposition (when promtool is installed: `.ci/run`
/// installs Debian's `prometheus` package for it).
fn promtool_check(metrics: &str) {
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is missing in CI: .ci/run installs it"
        );
        eprintln!("promtool is not installed: skipping `promtool check metrics`");
        return;
    };
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn detect_mode_reports_drift_in_metrics_and_changes_nothing() {
    let w = World::new(DESIRED).await;
    let out = w.apply();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(w.records().len(), 2);
    assert!(
        w.do_sim.delete_record("example.com", "dmarc", "TXT")
            || w.do_sim.delete_record("example.com", "_dmarc", "TXT")
    );
    let d = w.daemon(&["--interval", "1s", "--mode", "detect"]);
    let s = d
        .wait_for("drift reported", |s| last_result(s) == "detected")
        .await;
    assert_eq!(s["mode"], "detect");
    let last = passes(&s).pop().unwrap();
    assert_eq!(
        last["drifted"],
        serde_json::json!(["digitalocean.domain_record.dmarc"])
    );
    let (_, metrics) = d.get("/metrics").await.unwrap();
    assert!(
        metrics.contains(
            "provisioner_drifted_resources{provider=\"digitalocean\",kind=\"domain_record\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "provisioner_resource_drifted{address=\"digitalocean.domain_record.dmarc\"} 1"
        )
    );
    // A few more passes: still reported, never corrected.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(w.records().len(), 1);
    assert_eq!(last_result(&d.status().await), "detected");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_apply_finishes_what_is_in_flight_and_releases_the_lease() {
    let w = World::new(DESIRED).await;
    // Slow creates, so the signal lands while changes are in flight.
    w.do_sim.faults.inject(
        Some("POST"),
        "/v2/",
        Fault::Latency(Duration::from_millis(1500)),
        None,
    );
    let d = w.daemon(&["--interval", "1s"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !w
        .do_sim
        .faults
        .requests()
        .iter()
        .any(|r| r.starts_with("POST "))
    {
        assert!(Instant::now() < deadline, "no create started:\n{}", d.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    d.signal("TERM");
    let mut d = d;
    let stopped = Instant::now();
    let status = loop {
        if let Some(s) = d.child.try_wait().unwrap() {
            break s;
        }
        assert!(stopped.elapsed() < Duration::from_secs(20), "{}", d.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}\n{}", d.log());
    let store = Store::open(&w.ledger_url()).await.unwrap();
    assert!(
        store.lease().await.unwrap().is_none(),
        "the lease was released"
    );
    // What was in flight was recorded: a following apply converges without duplicates.
    w.do_sim.faults.clear();
    let out = w.apply();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    w.do_sim.edit(|s| {
        assert_eq!(s.vpcs.len(), 1);
        assert_eq!(s.domains.len(), 1);
        assert_eq!(s.firewalls.len(), 1);
    });
    assert_eq!(w.records().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_daemons_share_a_ledger_one_acts_the_other_waits() {
    let w = World::new(DESIRED).await;
    let a = w.daemon(&["--interval", "1s"]);
    let b = w.daemon(&["--interval", "1s"]);
    for d in [&a, &b] {
        d.wait_for("three passes", |s| passes(s).len() >= 3).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (sa, sb) = (a.status().await, b.status().await);
    let results: Vec<String> = passes(&sa)
        .iter()
        .chain(passes(&sb).iter())
        .map(|p| p["result"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        !results.iter().any(|r| r == "failed" || r == "partial"),
        "{results:?}\n{}\n{}",
        a.log(),
        b.log()
    );
    assert_eq!(
        results.iter().filter(|r| *r == "applied").count(),
        1,
        "exactly one pass acted: {results:?}"
    );
    // One of each object: nobody created anything twice.
    w.do_sim.edit(|s| {
        assert_eq!(s.vpcs.len(), 1);
        assert_eq!(s.domains.len(), 1);
        assert_eq!(s.firewalls.len(), 1);
    });
    assert_eq!(w.records().len(), 2);
    let store = Store::open(&w.ledger_url()).await.unwrap();
    let ledger = store.read().await.unwrap().unwrap().ledger;
    assert_eq!(ledger.resources.len(), 7);
}

/// Two desired states that share some records and differ in others, so that applies both
/// create and delete.
fn records_state(first: usize, last: usize) -> String {
    let mut s = String::from(
        "[settings]\nprune = true\n\n[digitalocean.domain.main]\nname = \"example.com\"\n\n[digitalocean.vpc.main]\nname = \"v\"\nregion = \"ams3\"\nip_range = \"10.20.0.0/20\"\n",
    );
    for i in first..last {
        s.push_str(&format!(
            "\n[digitalocean.domain_record.r{i}]\ndomain = \"${{digitalocean.domain.main.name}}\"\ntype = \"A\"\nname = \"host{i}\"\ndata = \"203.0.113.{i}\"\n"
        ));
    }
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_random_points_never_duplicates_orphans_or_corrupts() {
    use crypto_box::aead::rand_core::RngCore;
    let w = World::new(&records_state(0, 10)).await;
    // Every request takes a little while, so the kills land at every stage of an apply.
    w.do_sim.faults.inject(
        None,
        "/v2/",
        Fault::Latency(Duration::from_millis(15)),
        None,
    );
    let store = Store::open(&w.ledger_url()).await.unwrap();
    let mut rng = crypto_box::aead::OsRng;
    for round in 0..50 {
        let state = if (round / 5) % 2 == 0 {
            records_state(0, 10)
        } else {
            records_state(5, 15)
        };
        w.write_desired(&state);
        let mut child = w
            .command()
            .args(["apply", "--auto-approve"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let after = Duration::from_millis(50 + u64::from(rng.next_u32() % 500));
        tokio::time::sleep(after).await;
        let _ = child.kill();
        let _ = child.wait();
        // The ledger always loads.
        store
            .read()
            .await
            .unwrap_or_else(|e| panic!("round {round}: the ledger does not load: {e}"));
        assert_no_duplicates(&w, round);
    }
    // Let it finish: the final state converges exactly.
    w.write_desired(&records_state(5, 15));
    let out = w.apply();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = w.apply();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("No changes"));
    let mut names: Vec<String> = w
        .records()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    let mut want: Vec<String> = (5..15).map(|i| format!("host{i}")).collect();
    want.sort();
    assert_eq!(
        names, want,
        "exactly the desired records: no orphan, no duplicate"
    );
    w.do_sim.edit(|s| {
        assert_eq!(s.vpcs.len(), 1);
        assert_eq!(s.domains.len(), 1);
    });
}

fn assert_no_duplicates(w: &World, round: usize) {
    let mut seen = std::collections::BTreeSet::new();
    for r in w.records() {
        let key = format!("{} {}", r["name"], r["data"]);
        assert!(
            seen.insert(key.clone()),
            "round {round}: duplicate record {key}"
        );
    }
    w.do_sim.edit(|s| {
        assert!(s.vpcs.len() <= 1, "round {round}: duplicate VPC");
        assert!(s.domains.len() <= 1, "round {round}: duplicate domain");
    });
}

#[test]
fn apply_without_a_terminal_needs_auto_approve() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("-d")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("desired-state"))
        .env("PROVISIONER_ENVIRONMENT", "production")
        .arg("--ledger")
        .arg(format!("file://{}", dir.path().display()))
        .arg("apply")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--auto-approve"));
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_and_a_changed_file_trigger_a_pass_and_systemd_hears_about_it() {
    use std::os::unix::net::UnixDatagram;
    let w = World::new(DESIRED).await;
    let socket_path = w.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let port = free_port();
    let log = w.dir.path().join("json.log");
    let child = w
        .command()
        .args([
            "--log-format",
            "json",
            "run",
            "--interval",
            "1h",
            "--listen",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "2000000")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let d = Daemon {
        child,
        url: format!("http://127.0.0.1:{port}"),
        log,
    };
    let mut heard = Vec::new();
    let mut buf = [0u8; 256];
    while !heard.iter().any(|m: &String| m.starts_with("STATUS=")) {
        let n = socket.recv(&mut buf).expect("a notification");
        heard.push(String::from_utf8_lossy(&buf[..n]).to_string());
    }
    assert!(heard.contains(&"READY=1".to_string()), "{heard:?}");
    assert!(heard.contains(&"WATCHDOG=1".to_string()), "{heard:?}");
    d.wait_for("the first pass", |s| passes(s).len() == 1).await;

    // An hour-long interval, but SIGHUP asks for a pass now.
    d.signal("HUP");
    d.wait_for("a pass after SIGHUP", |s| passes(s).len() == 2)
        .await;

    // And so does editing the desired state.
    w.write_desired(&DESIRED.replace("smtp.example.com", "smtp2.example.com"));
    let s = d
        .wait_for("a pass after the file changed", |s| passes(s).len() == 3)
        .await;
    assert_eq!(last_result(&s), "applied");

    d.signal("TERM");
    let mut d = d;
    let status = d.child.wait().unwrap();
    assert!(status.success());
    let mut stopping = false;
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    while let Ok(n) = socket.recv(&mut buf) {
        stopping |= &buf[..n] == b"STOPPING=1";
    }
    assert!(stopping);
    // Every log line is one JSON object with a message, and no secret.
    let log = d.log();
    assert!(!log.contains(CANARY));
    for line in log.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["message"].is_string(), "{line}");
    }
    assert!(log.contains("\"address\":\"github.actions_variable.host\""));
}

/// The whole worked example (`desired-state/`), against every simulator (strict where the
/// clouds are: DNS host names need their final dot, firewall and load-balancer rules come
/// back in the API's own order, icmp rules with `ports: "0"`) and moto: one pass converges
/// it, and three later passes find nothing to do and write nothing.
#[tokio::test(flavor = "multi_thread")]
async fn the_worked_example_converges_in_one_pass() {
    use provisioner::sim::flux_operator::FluxOperator;
    use provisioner::sim::kubernetes::{KubeConfig, KubeSim};
    use provisioner::sim::ses::{SesConfig, SesSim};
    use support::kube_private::{PrivateApiServer, RealFluxOperator};
    // The cluster: a real kube-apiserver of this test's own when one can be started (always
    // in CI), else the Kubernetes simulator; the Flux Operator is played against it.
    let real = PrivateApiServer::start();
    let mut _kube_sim = None;
    let mut _sim_operator = None;
    let mut _real_operator = None;
    let (kube_url, kube_token, kube_ca) = match &real {
        Some(server) => {
            _real_operator = Some(RealFluxOperator::start(server.client().await));
            (
                server.url.clone(),
                server.token.clone(),
                Some(server.ca_pem.clone()),
            )
        }
        None => {
            let sim = std::sync::Arc::new(
                KubeSim::start(KubeConfig {
                    token: "kube-sim-token".into(),
                    controllers: true,
                })
                .await
                .unwrap(),
            );
            _sim_operator = Some(FluxOperator::start(sim.clone()));
            let pair = (sim.url().to_string(), sim.token().to_string(), None);
            _kube_sim = Some(sim);
            pair
        }
    };
    let do_sim = DoSim::start(DoConfig {
        provisioning: Duration::from_millis(300),
        kubernetes: Some((kube_url, kube_token)),
        kubernetes_ca: kube_ca,
        ..DoConfig::default()
    })
    .await
    .unwrap();
    let gh_sim = GhSim::start(GhConfig::default()).await.unwrap();
    for repo in ["example-org/platform-apps", "example-org/platform-gitops"] {
        gh_sim.create_repo(repo);
    }
    let r = reqwest::Client::new()
        .put(format!(
            "{}/repos/example-org/platform-gitops/environments/production",
            gh_sim.url()
        ))
        .bearer_auth("sim-gh-token")
        .header("user-agent", "test")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let ses_sim = SesSim::start(SesConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let moto = support::moto::endpoint().to_string();
    let run = |log: &str| {
        let mut c = Command::new(BIN);
        c.arg("-d")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("desired-state"))
            .env("PROVISIONER_ENVIRONMENT", "production")
            .args([
                "--log-format",
                "json",
                "run",
                "--once",
                "--listen",
                "127.0.0.1:0",
            ])
            .env(
                "PROVISIONER_LEDGER",
                format!("file://{}", dir.path().join("state").display()),
            )
            .env(
                "PROVISIONER_FINGERPRINT_KEY",
                "worked-example-fingerprint-key-01",
            )
            .env("DIGITALOCEAN_TOKEN", "sim-token")
            .env("DIGITALOCEAN_API_URL", do_sim.url())
            .env("SPACES_ENDPOINT_URL", &moto)
            .env("SPACES_ACCESS_KEY_ID", "testing")
            .env("SPACES_SECRET_ACCESS_KEY", "testing")
            .env("GITHUB_TOKEN", "sim-gh-token")
            .env("GITHUB_API_URL", gh_sim.url())
            .env("AWS_ENDPOINT_URL_SESV2", ses_sim.url())
            .env("CI_DIGITALOCEAN_TOKEN", CANARY)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join(log)).unwrap());
        for (k, v) in support::moto::child_env() {
            c.env(k, v);
        }
        c.status().unwrap()
    };
    let first = run("first.log");
    let log = std::fs::read_to_string(dir.path().join("first.log")).unwrap();
    assert_eq!(first.code(), Some(0), "{log}");
    assert!(log.contains("\"result\":\"applied\""), "{log}");
    // Writes the simulators saw (moto's are not counted: its requests are not logged here).
    let writes = || {
        let not_get = |r: &String| !r.starts_with("GET ");
        do_sim
            .faults
            .requests()
            .iter()
            .filter(|r| not_get(r))
            .count()
            + gh_sim
                .faults
                .requests()
                .iter()
                .filter(|r| not_get(r))
                .count()
            + ses_sim
                .exchanges()
                .iter()
                .filter(|e| e.method != "GET" && !e.path.contains("/list-"))
                .count()
    };
    let after_apply = writes();
    assert!(after_apply > 0);
    let mut logs = vec![log];
    for pass in ["second", "third", "fourth"] {
        let name = format!("{pass}.log");
        let status = run(&name);
        let text = std::fs::read_to_string(dir.path().join(&name)).unwrap();
        assert_eq!(status.code(), Some(0), "{text}");
        assert!(text.contains("\"result\":\"unchanged\""), "{pass}: {text}");
        assert_eq!(writes(), after_apply, "the {pass} pass wrote: {text}");
        logs.push(text);
    }
    for text in &logs {
        assert!(!text.contains(CANARY));
    }
    assert_eq!(
        gh_sim
            .secret(
                "example-org/platform-gitops",
                Some("production"),
                "DIGITALOCEAN_TOKEN"
            )
            .unwrap(),
        CANARY.as_bytes()
    );
    do_sim.edit(|s| {
        assert_eq!(s.clusters.len(), 1);
        assert_eq!(s.clusters[0]["status"]["state"], "running");
    });
    let ledger = std::fs::read_to_string(dir.path().join("state/ledger.json")).unwrap();
    assert!(!ledger.contains(CANARY));
    let doc: Value = serde_json::from_str(&ledger).unwrap();
    let desired = provisioner::desired::load_with(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("desired-state"),
        &provisioner::desired::Inputs {
            environment: Some("production".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        doc["resources"].as_object().unwrap().len(),
        desired.resources.len(),
        "every resource of the worked example is recorded"
    );
    // The Flux part is in the cluster: the operator's namespace and CRD, the pull secret
    // with the deploy key's private half and GitHub's host keys, the instance, Ready.
    if let Some(server) = &real {
        use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
        let client = server.client().await;
        let secrets: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(client.clone(), "flux-system");
        let s = secrets.get("flux-system").await.unwrap();
        let data = s.data.unwrap();
        assert!(
            String::from_utf8_lossy(&data["identity"].0).contains("OPENSSH PRIVATE KEY"),
            "the deploy key's private half"
        );
        assert!(
            String::from_utf8_lossy(&data["known_hosts"].0).starts_with("github.com ssh-ed25519 ")
        );
        let ar = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("fluxcd.controlplane.io", "v1", "FluxInstance"),
            "fluxinstances",
        );
        let fi: Api<DynamicObject> = Api::namespaced_with(client, "flux-system", &ar);
        let o = fi.get("flux").await.unwrap();
        assert_eq!(
            o.data["spec"]["sync"]["url"],
            "ssh://git@github.com/example-org/platform-gitops.git"
        );
        assert_eq!(o.data["status"]["conditions"][0]["status"], "True");
        eprintln!("the worked example's Kubernetes part converged on a real kube-apiserver");
    }
}

/// 2,000 idle connections to the metrics port of a daemon allowed 1,024 file descriptors:
/// the server keeps at most `MAX_CONNECTIONS` of them, closes idle ones after the header
/// timeout, so passes go on (no "Too many open files") and `/metrics` still answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_thousand_idle_connections_do_not_stop_passes_or_metrics() {
    let w = World::new(DESIRED).await;
    let d = w.daemon(&["--interval", "1s"]);
    let limited = Command::new("prlimit")
        .arg(format!("--pid={}", d.child.id()))
        .arg("--nofile=1024:1024")
        .status()
        .expect("prlimit (util-linux)");
    assert!(limited.success());
    d.wait_for("a first pass", |s| !passes(s).is_empty()).await;
    let port = d.url.rsplit(':').next().unwrap().to_string();
    let mut idle = Vec::new();
    for _ in 0..2000 {
        match std::net::TcpStream::connect(format!("127.0.0.1:{port}")) {
            // One header byte, then nothing: a slow client.
            Ok(mut s) => {
                let _ = std::io::Write::write_all(&mut s, b"G");
                idle.push(s);
            }
            Err(_) => break,
        }
    }
    assert_eq!(idle.len(), 2000, "the test could not open its connections");
    // Passes that start after the connections were opened (start times are RFC 3339 in
    // one format, so they sort as strings).
    let opened = passes(&d.status().await)
        .last()
        .and_then(|p| p["started_at"].as_str().map(str::to_string))
        .unwrap_or_default();
    let newer = |s: &Value| -> Vec<Value> {
        passes(s)
            .into_iter()
            .filter(|p| {
                p["started_at"]
                    .as_str()
                    .is_some_and(|t| t > opened.as_str())
            })
            .collect()
    };
    let s = d
        .wait_for("three passes after the idle connections", |s| {
            newer(s).len() >= 3
        })
        .await;
    for p in newer(&s) {
        assert_ne!(
            p["result"],
            "failed",
            "a pass failed: {p:#}\nlog:\n{}",
            d.log()
        );
    }
    assert!(!d.log().contains("Too many open files"), "{}", d.log());
    // A request may meet a server at its cap (the idle connections hold it until their
    // header timeout): it is closed at once, and the next try gets through.
    let mut answer = None;
    for _ in 0..600 {
        answer = d.get("/metrics").await;
        if answer.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, metrics) = answer.expect("/metrics answers");
    assert_eq!(code, 200);
    assert!(metrics.contains("provisioner_reconcile_runs_total"));
    drop(idle);
}

/// A `FluxInstance` the operator reports not Ready: every pass says so on `/status`
/// (`not_ready`, with the operator's reason and message), in the log and in
/// `provisioner_resource_ready`, and no pass re-applies it for that; once the operator
/// reports it Ready again, the metric says 1 and `/status` no longer lists it.
#[tokio::test(flavor = "multi_thread")]
async fn a_flux_instance_that_is_not_ready_is_on_status_and_in_metrics() {
    use provisioner::sim::kubernetes::{KubeConfig, KubeSim};
    use serde_json::json;
    let kube = KubeSim::start(KubeConfig {
        token: "kube-sim-token".into(),
        controllers: true,
    })
    .await
    .unwrap();
    let w = World::new("").await;
    let kubeconfig = w.dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, kube.kubeconfig()).unwrap();
    let operator =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("desired-state/kubernetes/flux-operator.yaml");
    w.write_desired(&format!(
        r#"
[kubernetes.manifest.flux_operator]
cluster = {{ file = "{k}" }}
file = "{o}"

[flux.instance.prod]
cluster = {{ file = "{k}" }}
version = "2.8.x"
wait = "1s"
depends_on = ["kubernetes.manifest.flux_operator"]
"#,
        k = kubeconfig.display(),
        o = operator.display()
    ));
    let d = w.daemon(&["--interval", "1s"]);
    // The first pass writes the instance; the operator (this test) says it failed.
    let fail = |kube: &KubeSim| {
        kube.set_status_as(
            "flux-operator",
            "fluxcd.controlplane.io/v1",
            "FluxInstance",
            Some("flux-system"),
            "flux",
            &json!({"observedGeneration": 1, "conditions": [{
                "type": "Ready", "status": "False", "reason": "ArtifactFailed",
                "message": "authentication required", "observedGeneration": 1,
                "lastTransitionTime": "2026-11-30T00:00:00Z"}]}),
        )
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while fail(&kube).code != 200 {
        assert!(
            Instant::now() < deadline,
            "no instance written:\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let s = d
        .wait_for("a pass that reports the instance not ready", |s| {
            passes(s)
                .iter()
                .any(|p| p["not_ready"]["flux.instance.prod"]["state"] == "failed")
        })
        .await;
    let p = passes(&s)
        .into_iter()
        .find(|p| p["not_ready"]["flux.instance.prod"].is_object())
        .unwrap();
    assert_eq!(
        p["not_ready"]["flux.instance.prod"],
        json!({"state": "failed", "reason": "ArtifactFailed", "message": "authentication required"})
    );
    let (_, metrics) = d.get("/metrics").await.unwrap();
    assert!(
        metrics.contains(
            "provisioner_resource_ready{address=\"flux.instance.prod\",state=\"failed\"} 0"
        ),
        "{metrics}"
    );
    promtool_check(&metrics);
    let writes = |kube: &KubeSim| {
        kube.requests()
            .iter()
            .filter(|r| r.starts_with("PATCH") && r.contains("/fluxinstances/flux?"))
            .count()
    };
    let before = writes(&kube);
    let since = p["started_at"].as_str().unwrap().to_string();
    d.wait_for("two more passes", |s| {
        passes(s)
            .iter()
            .filter(|q| q["started_at"].as_str().is_some_and(|t| t > since.as_str()))
            .count()
            >= 2
    })
    .await;
    assert_eq!(writes(&kube), before, "not re-applied for its health");
    assert!(d.log().contains("A resource is not Ready."), "{}", d.log());

    // Ready again.
    kube.set_status_as(
        "flux-operator",
        "fluxcd.controlplane.io/v1",
        "FluxInstance",
        Some("flux-system"),
        "flux",
        &json!({"observedGeneration": 1, "conditions": [{
            "type": "Ready", "status": "True", "reason": "ReconciliationSucceeded",
            "message": "ok", "observedGeneration": 1,
            "lastTransitionTime": "2026-11-30T00:00:01Z"}]}),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, metrics) = d.get("/metrics").await.unwrap();
        if metrics.contains(
            "provisioner_resource_ready{address=\"flux.instance.prod\",state=\"ready\"} 1",
        ) {
            assert!(!metrics.contains("state=\"failed\""), "{metrics}");
            break;
        }
        assert!(Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let s = d.status().await;
    assert!(passes(&s).last().unwrap()["not_ready"].is_null(), "{s:#}");
}
