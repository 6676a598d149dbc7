//! What provisioner says is true (issue "What provisioner says is true"): blind is never "no
//! changes", a provider only the ledger still uses is observed, drift is only what changed
//! in the cloud, ownership is proven before adopting or deleting, protections hold, and
//! exit codes match docs/running.md. Every test runs the binary against the DigitalOcean,
//! GitHub and AWS simulators on loopback.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use provisioner::sim::Fault;
use provisioner::sim::aws::AwsSim;
use provisioner::sim::digitalocean::{DoConfig, DoSim};
use provisioner::sim::github::{GhConfig, GhSim};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_provisioner");
const APPS: &str = "example-org/platform-apps";
const GITOPS: &str = "example-org/gitops";

struct World {
    do_sim: DoSim,
    gh_sim: GhSim,
    aws_sim: AwsSim,
    dir: tempfile::TempDir,
}

impl World {
    async fn new(desired: &str) -> World {
        let w = World {
            do_sim: DoSim::start(DoConfig::default()).await.unwrap(),
            gh_sim: GhSim::start(GhConfig::default()).await.unwrap(),
            aws_sim: AwsSim::start("us-east-1").await.unwrap(),
            dir: tempfile::tempdir().unwrap(),
        };
        w.gh_sim.create_repo(APPS);
        w.gh_sim.create_repo(GITOPS);
        w.write(desired);
        w
    }

    fn write(&self, desired: &str) {
        let d = self.desired_dir();
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("platform.toml"), desired).unwrap();
    }

    fn desired_dir(&self) -> PathBuf {
        self.dir.path().join("desired")
    }

    fn ledger(&self, name: &str) -> String {
        format!("file://{}", self.dir.path().join(name).display())
    }

    /// The binary with every simulator's endpoint and credentials, and ledger `state`.
    fn command(&self) -> Command {
        let mut c = Command::new(BIN);
        c.arg("-d")
            .arg(self.desired_dir())
            .env("PROVISIONER_LEDGER", self.ledger("state"))
            .env("DIGITALOCEAN_TOKEN", "sim-token")
            .env("DIGITALOCEAN_API_URL", self.do_sim.url())
            .env("GITHUB_TOKEN", "sim-gh-token")
            .env("GITHUB_API_URL", self.gh_sim.url())
            .env("AWS_ENDPOINT_URL", self.aws_sim.url())
            .env("AWS_ACCESS_KEY_ID", "truth")
            .env("AWS_SECRET_ACCESS_KEY", "truth")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env(
                "PROVISIONER_FINGERPRINT_KEY",
                "truth-test-fingerprint-key-0123",
            )
            .env_remove("SPACES_ACCESS_KEY_ID")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, |_| {})
    }

    fn run_with(&self, args: &[&str], f: impl FnOnce(&mut Command)) -> Run {
        let mut c = self.command();
        c.args(args);
        f(&mut c);
        Run(c.output().unwrap())
    }
}

use crate::support::run::Run;

const VPC: &str = r#"
[digitalocean.vpc.main]
name = "prod-ams3"
region = "ams3"
ip_range = "10.10.0.0/20"
"#;

/// Case 1: a wrong or missing token. Never "No changes", never exit 0: the text plan, the
/// JSON plan, `apply` and `run --once` all say what was not observed and why.
#[tokio::test(flavor = "multi_thread")]
async fn wrong_or_missing_credentials_make_every_command_incomplete_never_no_changes() {
    let w = World::new(VPC).await;
    let wrong = |c: &mut Command| {
        c.env("DIGITALOCEAN_TOKEN", "wrong");
    };
    let d = w.run_with(&["diff", "--detailed-exitcode"], wrong);
    d.expect(3);
    assert!(!d.out().contains("No changes"), "{}", d.out());
    assert!(d.out().contains("Not observed"), "{}", d.out());
    assert!(d.out().contains("digitalocean.vpc: "), "{}", d.out());
    assert!(d.out().contains("401"), "the reason is given: {}", d.out());
    w.run_with(&["diff"], wrong).expect(3);

    let j = w.run_with(&["diff", "--json"], wrong);
    j.expect(3);
    let v = j.json();
    assert_eq!(v["complete"], false);
    assert_eq!(v["unobserved"][0]["kind"], "digitalocean.vpc");
    assert!(
        v["unobserved"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("401")
    );

    let a = w.run_with(&["apply", "--auto-approve"], wrong);
    a.expect(3);
    assert!(a.err().contains("incomplete"), "{}", a.err());
    assert!(w.do_sim.edit(|s| s.vpcs.is_empty()), "nothing was made");
    let once = w.run_with(&["run", "--once", "--listen", "127.0.0.1:0"], wrong);
    once.expect(3);
    assert!(
        once.err().contains("result=\"incomplete\"") || once.err().contains("result=incomplete"),
        "{}",
        once.err()
    );

    let missing = w.run_with(&["diff", "--detailed-exitcode"], |c| {
        c.env_remove("DIGITALOCEAN_TOKEN");
    });
    missing.expect(3);
    assert!(
        missing.out().contains("DIGITALOCEAN_TOKEN"),
        "{}",
        missing.out()
    );

    // With the right token the same plan is complete.
    let ok = w.run(&["diff", "--detailed-exitcode"]);
    ok.expect(2);
    assert!(!ok.out().contains("Not observed"), "{}", ok.out());
}

/// Case 1, GitHub: a rate limit that resets later than a pass waits leaves the kind
/// unobserved, and the plan says so instead of "the clouds match".
#[tokio::test(flavor = "multi_thread")]
async fn a_github_rate_limit_longer_than_the_wait_is_incomplete() {
    let w = World::new(&format!(
        r#"
[github.actions_variable.host]
repository = "{APPS}"
name = "SMTP_HOST"
value = "smtp.example.com"
"#
    ))
    .await;
    w.run(&["apply", "--auto-approve"]).expect(0);
    w.run(&["diff", "--detailed-exitcode"]).expect(0);
    let reset = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    w.gh_sim.faults.inject(
        Some("GET"),
        &format!("/repos/{APPS}/actions/variables"),
        Fault::Respond {
            status: 403,
            body: r#"{"message":"API rate limit exceeded","documentation_url":"https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting"}"#.into(),
            headers: vec![
                ("x-ratelimit-remaining".into(), "0".into()),
                ("x-ratelimit-reset".into(), reset.to_string()),
            ],
        },
        None,
    );
    let d = w.run(&["diff", "--detailed-exitcode"]);
    d.expect(3);
    assert!(!d.out().contains("No changes"), "{}", d.out());
    assert!(d.out().contains("github.actions_variable: "), "{}", d.out());
    assert!(d.out().contains("rate limit"), "{}", d.out());
}

/// Case 2: a provider that only the ledger still uses is set up and observed, so a resource
/// removed from the files is pruned.
#[tokio::test(flavor = "multi_thread")]
async fn a_provider_only_the_ledger_uses_is_observed_and_its_removed_resources_pruned() {
    let variable = format!(
        r#"
[settings]
prune = true

[github.actions_variable.host]
repository = "{APPS}"
name = "SMTP_HOST"
value = "smtp.example.com"
"#
    );
    let secret = r#"
[aws.secretsmanager_secret.db]
name = "app/db-password"
value = { generate = { length = 32 } }
force_delete = true
"#;
    let w = World::new(&format!("{variable}{secret}")).await;
    w.run(&["apply", "--auto-approve"]).expect(0);
    assert!(
        w.run(&["state", "list"])
            .out()
            .contains("aws.secretsmanager_secret.db")
    );

    w.write(&variable);
    let d = w.run(&["diff", "--detailed-exitcode"]);
    d.expect(2);
    assert!(
        d.out()
            .contains("- aws.secretsmanager_secret.db will be deleted"),
        "{}",
        d.out()
    );
    w.run(&["apply", "--auto-approve"]).expect(0);
    assert!(
        !w.run(&["state", "list"])
            .out()
            .contains("aws.secretsmanager_secret.db")
    );
    let after = w.run(&["diff", "--detailed-exitcode"]);
    after.expect(0);
    assert!(after.out().contains("No changes"), "{}", after.out());
}

/// Case 3: a kind left out of an observation (here a snapshot, through the same rule a
/// provider's answer goes through) is not observed, never empty.
#[test]
fn a_kind_missing_from_an_observation_is_not_observed_never_empty() {
    let dir = tempfile::tempdir().unwrap();
    let desired = dir.path().join("desired");
    std::fs::create_dir_all(&desired).unwrap();
    std::fs::write(desired.join("vpc.toml"), VPC).unwrap();
    let snapshot = dir.path().join("live.json");
    std::fs::write(
        &snapshot,
        r#"{ "format_version": 1, "kinds": { "digitalocean.domain": { "status": "complete", "objects": [] } } }"#,
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("-d")
        .arg(&desired)
        .arg("--ledger")
        .arg(format!("file://{}", dir.path().join("state").display()))
        .args(["diff", "--detailed-exitcode", "--live-from"])
        .arg(&snapshot)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let run = Run(out);
    run.expect(3);
    assert!(!run.out().contains("will be created"), "{}", run.out());
    assert!(
        run.out().contains("digitalocean.vpc: not in the snapshot"),
        "{}",
        run.out()
    );
}

async fn foreign_deploy_key(w: &World) -> Value {
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}/repos/{GITOPS}/keys", w.gh_sim.url()))
        .header("authorization", "Bearer sim-gh-token")
        .header("accept", "application/vnd.github+json")
        .header("user-agent", "truth-test")
        .json(&json!({
            "title": "flux-system",
            "key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOtherClusterKeyOtherClusterKeyOtherClust other@cluster",
            "read_only": true
        }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    r.json().await.unwrap()
}

fn deploy_keys(w: &World) -> Vec<Value> {
    w.gh_sim.edit(|s| s.repos[GITOPS].keys.clone())
}

/// Case 4: a deploy key of the same title made by another cluster is never adopted (its
/// private half is unknowable), and neither `apply` nor `apply --replace` deletes it.
#[tokio::test(flavor = "multi_thread")]
async fn a_same_named_deploy_key_made_elsewhere_is_a_conflict_never_adopted_or_deleted() {
    let desired = format!(
        r#"
[github.deploy_key.flux]
repository = "{GITOPS}"
title = "flux-system"

[github.actions_secret.flux]
repository = "{GITOPS}"
name = "FLUX_DEPLOY_KEY"
value = "${{github.deploy_key.flux.private_key}}"
"#
    );
    let w = World::new(&desired).await;
    let theirs = foreign_deploy_key(&w).await;
    let d = w.run(&["diff", "--detailed-exitcode"]);
    d.expect(2);
    assert!(d.out().contains("x github.deploy_key.flux"), "{}", d.out());
    assert!(d.out().contains("cannot be read back"), "{}", d.out());
    assert!(!d.out().contains("will be adopted"), "{}", d.out());

    w.run(&["apply", "--auto-approve"]).expect(3);
    w.run(&[
        "apply",
        "--auto-approve",
        "--replace",
        "github.deploy_key.flux",
    ])
    .expect(3);
    // `lifecycle.adopt` cannot make an unreadable private key readable.
    w.write(&format!(
        "{desired}\n[github.deploy_key.flux.lifecycle]\nadopt = true\n"
    ));
    let d = w.run(&["diff", "--detailed-exitcode"]);
    d.expect(2);
    assert!(d.out().contains("x github.deploy_key.flux"), "{}", d.out());
    w.run(&["apply", "--auto-approve"]).expect(3);

    let keys = deploy_keys(&w);
    assert_eq!(keys.len(), 1, "{keys:#?}");
    assert_eq!(
        keys[0]["id"], theirs["id"],
        "the other cluster's key is intact"
    );
}

const ESTATE: &str = r#"
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

[digitalocean.firewall.nodes]
name = "nodes"
tags = ["k8s-worker"]

[[digitalocean.firewall.nodes.inbound_rules]]
protocol = "tcp"
ports = "443"
sources = { addresses = ["0.0.0.0/0"] }
"#;

/// Case 4, more generally: a second ledger pointed at the same account adopts nothing of
/// the first's; it reports conflicts that name how to adopt, and adopts only what the user
/// says to.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_ledger_never_adopts_the_objects_of_the_first() {
    let w = World::new(ESTATE).await;
    w.run(&["apply", "--auto-approve"]).expect(0);
    let other = w.ledger("other");
    let with_other = |c: &mut Command| {
        c.env("PROVISIONER_LEDGER", &other);
    };
    let d = w.run_with(&["diff", "--json", "--detailed-exitcode"], with_other);
    d.expect(2);
    let v = d.json();
    assert!(v["summary"].get("adopt").is_none(), "{v:#}");
    assert!(v["summary"].get("create").is_none(), "{v:#}");
    assert_eq!(v["conflicts"], 4, "{v:#}");
    let text = w.run_with(&["diff"], with_other).out();
    assert!(text.contains("lifecycle.adopt = true"), "{text}");
    assert!(
        text.contains("provisioner state import digitalocean.vpc.main"),
        "{text}"
    );
    w.run_with(&["apply", "--auto-approve"], with_other)
        .expect(3);
    assert_eq!(w.do_sim.edit(|s| s.vpcs.len()), 1, "no duplicate");

    // The user's word adopts the one resource that says so.
    w.write(&format!(
        "{ESTATE}\n[digitalocean.vpc.main.lifecycle]\nadopt = true\n"
    ));
    let v = w.run_with(&["diff", "--json"], with_other).json();
    assert_eq!(v["summary"]["adopt"], 1, "{v:#}");
    assert_eq!(v["conflicts"], 3, "{v:#}");
}

/// Case 5: `prevent_destroy` added to a resource that needs no change is recorded, so it
/// still holds once the block is deleted; `--allow-destroy` is the documented override.
#[tokio::test(flavor = "multi_thread")]
async fn prevent_destroy_added_without_other_changes_is_recorded_and_holds() {
    let domain = "[settings]\nprune = true\n\n[digitalocean.domain.main]\nname = \"example.com\"\n";
    let w = World::new(domain).await;
    w.run(&["apply", "--auto-approve"]).expect(0);
    w.write(&format!(
        "{domain}\n[digitalocean.domain.main.lifecycle]\nprevent_destroy = true\n"
    ));
    let a = w.run(&["apply", "--auto-approve"]);
    a.expect(0);
    assert!(a.out().contains("No changes"), "{}", a.out());
    let shown = w.run(&["state", "show", "digitalocean.domain.main"]);
    assert!(
        shown.out().contains("\"prevent_destroy\": true"),
        "{}",
        shown.out()
    );

    w.write("[settings]\nprune = true\n");
    let refused = w.run(&["apply", "--auto-approve"]);
    refused.expect(1);
    assert!(
        refused.err().contains("prevent_destroy"),
        "{}",
        refused.err()
    );
    let advice = "provisioner apply --allow-destroy digitalocean.domain.main";
    assert!(refused.err().contains(advice), "{}", refused.err());
    assert_eq!(w.do_sim.edit(|s| s.domains.len()), 1);
    w.run(&[
        "apply",
        "--auto-approve",
        "--allow-destroy",
        "digitalocean.domain.main",
    ])
    .expect(0);
    assert_eq!(w.do_sim.edit(|s| s.domains.len()), 0);
}

/// Case 5: when the plan advises replacing a protected producer, the advised command works.
#[tokio::test(flavor = "multi_thread")]
async fn the_advised_replacement_of_a_protected_producer_is_a_command_that_works() {
    let w = World::new(&format!(
        r#"
[github.deploy_key.flux]
repository = "{GITOPS}"
title = "flux-system"

[github.deploy_key.flux.lifecycle]
prevent_destroy = true

[github.actions_secret.flux]
repository = "{GITOPS}"
name = "FLUX_DEPLOY_KEY"
value = "${{github.deploy_key.flux.private_key}}"
"#
    ))
    .await;
    w.run(&["apply", "--auto-approve"]).expect(0);
    let first = deploy_keys(&w);
    assert!(
        w.gh_sim
            .overwrite_secret(GITOPS, "FLUX_DEPLOY_KEY", b"edited by hand")
    );
    let d = w.run(&["diff"]);
    let advice =
        "provisioner apply --replace github.deploy_key.flux --allow-destroy github.deploy_key.flux";
    assert!(d.out().contains(advice), "{}", d.out());
    w.run(&[
        "apply",
        "--auto-approve",
        "--replace",
        "github.deploy_key.flux",
        "--allow-destroy",
        "github.deploy_key.flux",
    ])
    .expect(0);
    let keys = deploy_keys(&w);
    assert_eq!(keys.len(), 1);
    assert_ne!(keys[0]["id"], first[0]["id"], "a new key");
    let delivered = w.gh_sim.secret(GITOPS, None, "FLUX_DEPLOY_KEY").unwrap();
    assert!(String::from_utf8_lossy(&delivered).contains("PRIVATE KEY"));
    w.run(&["diff", "--detailed-exitcode"]).expect(0);
}

/// Case 6: drift is only what changed in the cloud. A first apply's creates and an edit of
/// the files are `desired`; a record deleted outside provisioner is `drift`.
#[tokio::test(flavor = "multi_thread")]
async fn only_changes_made_outside_provisioner_are_drift() {
    let w = World::new(ESTATE).await;
    let v = w.run(&["diff", "--json"]).json();
    assert_eq!(v["drift"], 0, "{v:#}");
    assert!(
        v["changes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["cause"] == "desired")
    );
    w.run(&["apply", "--auto-approve"]).expect(0);

    // An edit of the files.
    w.write(&ESTATE.replace("ttl = 300", "ttl = 600"));
    let v = w.run(&["diff", "--json"]).json();
    let www = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == "digitalocean.domain_record.www")
        .unwrap()
        .clone();
    assert_eq!(www["action"], "update");
    assert_eq!(www["cause"], "desired", "{www:#}");
    assert_eq!(v["drift"], 0);
    w.run(&["apply", "--auto-approve"]).expect(0);

    // A change outside provisioner.
    w.do_sim.delete_record("example.com", "www", "A");
    let v = w.run(&["diff", "--json"]).json();
    assert_eq!(v["drift"], 1, "{v:#}");
    let www = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == "digitalocean.domain_record.www")
        .unwrap()
        .clone();
    assert_eq!(
        (&www["action"], &www["cause"]),
        (&json!("create"), &json!("drift"))
    );
    let text = w.run(&["diff"]).out();
    assert!(
        text.contains("# deleted outside provisioner: re-created"),
        "{text}"
    );
    assert!(text.contains("1 because of drift"), "{text}");
    w.run(&["apply", "--auto-approve"]).expect(0);

    // Both at once: a field edited in the cloud, another in the files.
    w.do_sim.edit(|s| {
        for r in s.records.get_mut("example.com").unwrap() {
            if r["name"] == "www" {
                r["data"] = json!("203.0.113.99");
            }
        }
    });
    w.write(&ESTATE.replace("ttl = 300", "ttl = 900"));
    let v = w.run(&["diff", "--json"]).json();
    let www = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == "digitalocean.domain_record.www")
        .unwrap()
        .clone();
    assert_eq!(www["cause"], "desired-and-drift", "{www:#}");
    let drifted: Vec<&Value> = www["fields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["drift"] == true)
        .collect();
    assert_eq!(drifted.len(), 1, "{www:#}");
    assert_eq!(drifted[0]["path"], "data");
}

/// Case 6: the drift counter and the drift gauge see only drift; a first rollout counts
/// nothing. `/readyz` answers 503 while kinds cannot be observed.
#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_counts_only_drift_and_is_not_ready_while_blind() {
    let w = World::new(&format!("[settings]\ninterval = \"30s\"\n{ESTATE}")).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let mut child = w
        .command()
        .args(["run", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let get = |path: &str| {
        let url = format!("{url}{path}");
        async move {
            let r = reqwest::get(url).await.ok()?;
            let code = r.status().as_u16();
            Some((code, r.text().await.ok()?))
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let results = |s: &str| -> Vec<String> {
        serde_json::from_str::<Value>(s)
            .ok()
            .and_then(|v| v["passes"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|p| p["result"].as_str().map(String::from))
            .collect()
    };
    loop {
        if let Some((_, s)) = get("/status").await
            && !results(&s).is_empty()
        {
            assert_eq!(results(&s), ["applied"], "{s}");
            break;
        }
        assert!(Instant::now() < deadline, "no pass");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, metrics) = get("/metrics").await.unwrap();
    assert!(
        !metrics
            .lines()
            .any(|l| l.starts_with("provisioner_drift_detected_total{")),
        "a first rollout is no drift:\n{metrics}"
    );
    assert_eq!(get("/readyz").await.unwrap().0, 200);

    w.do_sim.delete_record("example.com", "www", "A");
    // The DigitalOcean API goes blind for what follows.
    w.do_sim.faults.inject(
        Some("GET"),
        "/v2/vpcs",
        Fault::Respond {
            status: 401,
            body: r#"{"id":"unauthorized","message":"Unable to authenticate you."}"#.into(),
            headers: vec![],
        },
        None,
    );
    assert!(
        Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some((_, s)) = get("/status").await
            && results(&s).len() >= 2
        {
            assert_eq!(results(&s)[1], "incomplete", "{s}");
            break;
        }
        assert!(Instant::now() < deadline, "no second pass");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, metrics) = get("/metrics").await.unwrap();
    assert!(
        metrics.contains(
            "provisioner_drift_detected_total{provider=\"digitalocean\",kind=\"domain_record\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("provisioner_observe_failures{provider=\"digitalocean\",kind=\"vpc\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("provisioner_reconcile_runs_total{result=\"incomplete\"} 1"),
        "{metrics}"
    );
    let (code, why) = get("/readyz").await.unwrap();
    assert_eq!(code, 503, "{why}");
    assert!(why.contains("digitalocean.vpc"), "{why}");
    let _ = child.kill();
    let _ = child.wait();
}

/// Case 6: `state import` checks that the object exists, and is not another ledger's,
/// before it writes.
#[tokio::test(flavor = "multi_thread")]
async fn state_import_checks_that_the_object_exists_before_writing() {
    let w = World::new(VPC).await;
    let missing = w.run(&[
        "state",
        "import",
        "digitalocean.vpc.main",
        "5a4981aa-9653-4bd1-bef5-d6bff52042e4",
    ]);
    missing.expect(1);
    assert!(
        missing
            .err()
            .contains("no digitalocean.vpc with id 5a4981aa"),
        "{}",
        missing.err()
    );
    assert!(w.run(&["state", "list"]).out().is_empty());

    // Made by hand, then imported.
    let client = reqwest::Client::new();
    let made: Value = client
        .post(format!("{}/v2/vpcs", w.do_sim.url()))
        .bearer_auth("sim-token")
        .json(&json!({"name": "prod-ams3", "region": "ams3", "ip_range": "10.10.0.0/20"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = made["vpc"]["id"].as_str().unwrap().to_string();
    let d = w.run(&["diff", "--detailed-exitcode"]);
    d.expect(2);
    assert!(d.out().contains("x digitalocean.vpc.main"), "{}", d.out());
    w.run(&["state", "import", "digitalocean.vpc.main", &id])
        .expect(0);
    w.run(&["diff", "--detailed-exitcode"]).expect(0);
    let outside = w.run(&["state", "import", "digitalocean.vpc.other", &id]);
    outside.expect(1);
    assert!(
        outside.err().contains("not in the desired state"),
        "{}",
        outside.err()
    );
}

/// A consumer in a repository the token cannot see: its producer is never replaced for it
/// (the consumer may well have its copy), and a resource that needs an unobserved producer's
/// output is not planned either — every pass is incomplete, and nothing rotates.
#[tokio::test(flavor = "multi_thread")]
async fn an_unseen_consumer_never_rotates_its_producer_and_blocks_what_needs_it() {
    let w = World::new(&format!(
        r#"
[aws.iam_smtp_user.smtp]
name = "smtp-truth"

[github.actions_secret.smtp_password]
repository = "{GITOPS}"
name = "SMTP_PASSWORD"
value = "${{aws.iam_smtp_user.smtp.smtp_password}}"

[github.deploy_key.flux]
repository = "{GITOPS}"
title = "flux-system"

[aws.secretsmanager_secret.flux]
name = "flux/deploy-key"
value = "${{github.deploy_key.flux.private_key}}"
force_delete = true
"#
    ))
    .await;
    assert!(w.gh_sim.set_visible(GITOPS, false));
    let keys = || {
        w.aws_sim
            .edit(|s| format!("{:?}", s.users.get("smtp-truth").map(|u| u.keys.clone())))
    };
    let first = w.run(&["apply", "--auto-approve"]);
    first.expect(3);
    let after_first = keys();
    for pass in 0..2 {
        let d = w.run(&["diff", "--detailed-exitcode"]);
        d.expect(3);
        assert!(
            !d.out().contains("aws.iam_smtp_user.smtp will be replaced"),
            "pass {pass}: {}",
            d.out()
        );
        assert!(
            !d.out()
                .contains("aws.secretsmanager_secret.flux will be created"),
            "pass {pass}: {}",
            d.out()
        );
        assert!(
            d.out()
                .contains("depends on github.deploy_key.flux, which could not be observed"),
            "{}",
            d.out()
        );
        w.run(&["apply", "--auto-approve"]).expect(3);
        assert_eq!(keys(), after_first, "pass {pass}: the SMTP key was rotated");
    }
}
