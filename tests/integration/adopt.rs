//! From an existing account to managed (issue "From an existing account to managed"):
//! `init` makes the ledger bucket and the fingerprint key, `scan` finds what is adoptable,
//! unmanaged or another ledger's, `state import` adopts what the desired state names,
//! `import` writes TOML for the rest, `state mv` and `[[moved]]` rename, and the worked
//! example converges — against the DigitalOcean and GitHub simulators and the project's AWS
//! simulator (a fresh, empty account per test, which a shared moto server is not).

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use provisioner::sim::aws::AwsSim;
use provisioner::sim::digitalocean::{DoConfig, DoSim};
use provisioner::sim::flux_operator::FluxOperator;
use provisioner::sim::github::{GhConfig, GhSim};
use provisioner::sim::kubernetes::{KubeConfig, KubeSim};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_provisioner");

struct World {
    do_sim: DoSim,
    gh_sim: GhSim,
    aws_sim: AwsSim,
    /// The cluster the DigitalOcean simulator's cluster reaches, with the Flux Operator
    /// played against it.
    _kube_sim: std::sync::Arc<KubeSim>,
    _operator: FluxOperator,
    dir: tempfile::TempDir,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

impl World {
    /// Empty simulators; the desired state is a copy of `desired` (so imports can write
    /// into it); GitHub repositories and environments exist, as they would.
    async fn new(desired: &Path) -> World {
        let kube_sim = std::sync::Arc::new(
            KubeSim::start(KubeConfig {
                token: "kube-sim-token".into(),
                controllers: true,
            })
            .await
            .unwrap(),
        );
        let w = World {
            _operator: FluxOperator::start(kube_sim.clone()),
            do_sim: DoSim::start(DoConfig {
                provisioning: std::time::Duration::from_millis(200),
                kubernetes: Some((kube_sim.url().to_string(), kube_sim.token().to_string())),
                ..DoConfig::default()
            })
            .await
            .unwrap(),
            gh_sim: GhSim::start(GhConfig::default()).await.unwrap(),
            aws_sim: AwsSim::start("us-east-1").await.unwrap(),
            _kube_sim: kube_sim,
            dir: tempfile::tempdir().unwrap(),
        };
        copy_dir(desired, &w.desired());
        let state =
            provisioner::desired::load_with(&w.desired(), &support::inputs_of(&w.desired()))
                .unwrap_or_else(|e| panic!("{e}"));
        for r in state.resources.values() {
            if let Some(repo) = r.spec_json["repository"].as_str() {
                w.gh_sim.create_repo(repo);
                if let Some(env) = r.spec_json["environment"].as_str() {
                    w.gh_sim.create_environment(repo, env);
                }
            }
        }
        w
    }

    fn desired(&self) -> PathBuf {
        self.dir.path().join("desired")
    }

    fn run(&self, args: &[&str]) -> Run {
        let out = Command::new(BIN)
            .arg("-d")
            .arg(self.desired())
            .args(args)
            .envs(support::environment_of(&self.desired()).map(|e| ("PROVISIONER_ENVIRONMENT", e)))
            .env_remove("PROVISIONER_LEDGER")
            .env_remove("PROVISIONER_FINGERPRINT_KEY")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .env("DIGITALOCEAN_TOKEN", "sim-token")
            .env("DIGITALOCEAN_API_URL", self.do_sim.url())
            .env("SPACES_ENDPOINT_URL", self.aws_sim.url())
            .env("SPACES_ACCESS_KEY_ID", "adopt")
            .env("SPACES_SECRET_ACCESS_KEY", "adopt")
            .env("GITHUB_TOKEN", "sim-gh-token")
            .env("GITHUB_API_URL", self.gh_sim.url())
            .env("AWS_ENDPOINT_URL", self.aws_sim.url())
            .env("AWS_ACCESS_KEY_ID", "adopt")
            .env("AWS_SECRET_ACCESS_KEY", "adopt")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("CI_DIGITALOCEAN_TOKEN", "canary-adopt-0b9e-do-not-leak")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        Run(out)
    }

    async fn post_do(&self, path: &str, body: Value) -> Value {
        let r = reqwest::Client::new()
            .post(format!("{}{path}", self.do_sim.url()))
            .bearer_auth("sim-token")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    }
}

use crate::support::run::Run;

fn objects<'a>(scan: &'a Value, kind: &str) -> Vec<&'a Value> {
    scan["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["kind"] == kind)
        .flat_map(|k| k["objects"].as_array().unwrap())
        .collect()
}

/// The whole walk-through of docs/operations.md ("Adopting existing infrastructure").
#[tokio::test(flavor = "multi_thread")]
async fn an_existing_account_becomes_a_fully_managed_worked_example() {
    let w = World::new(&Path::new(env!("CARGO_MANIFEST_DIR")).join("desired-state")).await;

    // Made by hand before provisioner: the production VPC and zone the worked example
    // describes, a rogue record in that zone, and a VPC nobody describes.
    let vpc = w
        .post_do(
            "/v2/vpcs",
            json!({"name": "prod-nyc3", "region": "nyc3", "ip_range": "10.10.0.0/16"}),
        )
        .await["vpc"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    w.post_do("/v2/domains", json!({"name": "example.com"}))
        .await;
    w.post_do(
        "/v2/domains/example.com/records",
        json!({"type": "TXT", "name": "rogue", "data": "left-by-hand", "ttl": 3600}),
    )
    .await;
    w.post_do(
        "/v2/vpcs",
        json!({"name": "legacy-vpc", "region": "nyc3", "ip_range": "10.99.0.0/16"}),
    )
    .await;

    // Without init, the ledger bucket is missing and the error says what makes it.
    let d = w.run(&["diff"]);
    d.expect(1);
    assert!(d.err().contains("provisioner init"), "{}", d.err());

    let dry = w.run(&["init", "--dry-run"]);
    dry.expect(0);
    assert!(
        dry.out()
            .contains("would do created bucket example-platform-provisioner-ledger"),
        "{}",
        dry.out()
    );
    w.run(&["diff"]).expect(1);
    let init = w.run(&["init"]);
    init.expect(0);
    for line in [
        "created bucket example-platform-provisioner-ledger",
        "turned versioning on",
        "created Secrets Manager secret `provisioner/fingerprint-key`",
        "token of sim@example.com",
        "token of provisioner-sim",
        "credentials of arn:aws:",
    ] {
        assert!(init.out().contains(line), "{line}:\n{}", init.out());
    }
    // Idempotent: a second run makes nothing.
    let again = w.run(&["init"]);
    again.expect(0);
    assert!(!again.out().contains("  done "), "{}", again.out());

    // The plan refuses to take the hand-made objects silently.
    let d = w.run(&["diff", "--detailed-exitcode"]);
    d.expect(2);
    assert!(d.out().contains("x digitalocean.vpc.prod"), "{}", d.out());
    assert!(
        d.out().contains("x digitalocean.domain.main"),
        "{}",
        d.out()
    );

    let scan = w.run(&["scan", "--json"]);
    scan.expect(0);
    let s = scan.json();
    let vpcs = objects(&s, "digitalocean.vpc");
    let adoptable: Vec<&&Value> = vpcs
        .iter()
        .filter(|o| o["category"] == "adoptable")
        .collect();
    assert_eq!(adoptable.len(), 1, "{s:#}");
    assert_eq!(adoptable[0]["address"], "digitalocean.vpc.prod");
    assert!(
        vpcs.iter()
            .any(|o| o["category"] == "unmanaged" && o["key"]["name"] == "legacy-vpc")
    );
    let records = objects(&s, "digitalocean.domain_record");
    assert!(
        records
            .iter()
            .any(|o| o["category"] == "unmanaged" && o["key"]["name"] == "rogue"),
        "{s:#}"
    );
    assert!(s["requests"]["digitalocean"].as_u64().unwrap() > 0);

    // Adopt what the desired state names; import the rest as TOML.
    w.run(&["state", "import", "digitalocean.vpc.prod", &vpc])
        .expect(0);
    w.run(&["state", "import", "digitalocean.domain.main", "example.com"])
        .expect(0);
    let imported = w.desired().join("imported.toml");
    let i = w.run(&[
        "import",
        "--all-unmanaged",
        "--to",
        imported.to_str().unwrap(),
    ]);
    i.expect(0);
    let toml = std::fs::read_to_string(&imported).unwrap();
    assert!(toml.contains("[digitalocean.vpc.legacy_vpc]"), "{toml}");
    assert!(
        toml.contains("[digitalocean.domain_record.rogue_txt]"),
        "{toml}"
    );
    assert!(toml.contains("data = \"left-by-hand\""), "{toml}");
    // The account's default project, which every DigitalOcean account has, too.
    assert!(
        toml.contains("[digitalocean.project.first_project]"),
        "{toml}"
    );
    assert!(
        i.out().contains("recorded 3 resources"),
        "{}\n{toml}",
        i.out()
    );

    // Everything else is created; then nothing is left to do and nothing unmanaged.
    w.run(&["apply", "--auto-approve"]).expect(0);
    w.run(&["diff", "--detailed-exitcode"]).expect(0);
    let s = w.run(&["scan", "--json"]).json();
    let left: Vec<&Value> = s["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|k| k["objects"].as_array().unwrap())
        .collect();
    assert!(left.is_empty(), "{s:#}");
    assert_eq!(w.do_sim.edit(|s| s.vpcs.len()), 2, "no duplicate VPC");
}

/// `state mv` and a `[[moved]]` table rename an address without touching the cloud.
#[tokio::test(flavor = "multi_thread")]
async fn a_renamed_address_keeps_its_object() {
    let src = tempfile::tempdir().unwrap();
    let one = r#"
[digitalocean.vpc.main]
name = "prod-ams3"
region = "ams3"
ip_range = "10.10.0.0/20"

[digitalocean.domain.zone]
name = "example.org"
"#;
    std::fs::write(src.path().join("a.toml"), one).unwrap();
    let w = World::new(src.path()).await;
    let ledger = format!("file://{}", w.dir.path().join("state").display());
    w.run(&["--ledger", &ledger, "apply", "--auto-approve"])
        .expect(0);

    // By command.
    std::fs::write(
        w.desired().join("a.toml"),
        one.replace("vpc.main", "vpc.primary"),
    )
    .unwrap();
    w.run(&["--ledger", &ledger, "diff", "--detailed-exitcode"])
        .expect(2);
    w.run(&[
        "--ledger",
        &ledger,
        "state",
        "mv",
        "digitalocean.vpc.main",
        "digitalocean.vpc.primary",
    ])
    .expect(0);
    w.run(&["--ledger", &ledger, "diff", "--detailed-exitcode"])
        .expect(0);
    let bad = w.run(&[
        "--ledger",
        &ledger,
        "state",
        "mv",
        "digitalocean.vpc.primary",
        "digitalocean.domain.x",
    ]);
    bad.expect(1);
    assert!(bad.err().contains("different kinds"), "{}", bad.err());

    // By a `[[moved]]` table, inside a normal apply.
    let renamed = one
        .replace("vpc.main", "vpc.primary")
        .replace("domain.zone", "domain.primary");
    std::fs::write(
        w.desired().join("a.toml"),
        format!("{renamed}\n[[moved]]\nfrom = \"digitalocean.domain.zone\"\nto = \"digitalocean.domain.primary\"\n"),
    )
    .unwrap();
    w.run(&["--ledger", &ledger, "diff", "--detailed-exitcode"])
        .expect(0);
    w.run(&["--ledger", &ledger, "apply", "--auto-approve"])
        .expect(0);
    let list = w.run(&["--ledger", &ledger, "state", "list"]);
    assert!(
        list.out().contains("digitalocean.domain.primary"),
        "{}",
        list.out()
    );
    assert!(
        !list.out().contains("digitalocean.domain.zone"),
        "{}",
        list.out()
    );
    assert_eq!(w.do_sim.edit(|s| s.domains.len()), 1);

    // A move that names a resource still desired is refused, with its place.
    std::fs::write(
        w.desired().join("a.toml"),
        format!("{renamed}\n[[moved]]\nfrom = \"digitalocean.domain.primary\"\nto = \"digitalocean.vpc.primary\"\n"),
    )
    .unwrap();
    let v = w.run(&["validate"]);
    v.expect(1);
    assert!(
        v.err().contains("a.toml:") && v.err().contains("moved[0]"),
        "{}",
        v.err()
    );
}

/// `[settings] report_unmanaged` makes the daemon count what `scan` lists, by category.
#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_reports_unmanaged_objects_when_asked() {
    let src = tempfile::tempdir().unwrap();
    std::fs::write(
        src.path().join("a.toml"),
        "[settings]\ninterval = \"30s\"\nreport_unmanaged = true\n\n[digitalocean.vpc.main]\nname = \"prod-ams3\"\nregion = \"ams3\"\nip_range = \"10.10.0.0/20\"\n",
    )
    .unwrap();
    let w = World::new(src.path()).await;
    for name in ["legacy-a", "legacy-b"] {
        w.post_do(
            "/v2/vpcs",
            json!({"name": name, "region": "nyc3", "ip_range": format!("10.{}.0.0/16", name.len() * 3 + name.as_bytes()[7] as usize % 50)}),
        )
        .await;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(BIN)
        .arg("-d")
        .arg(w.desired())
        .envs(support::environment_of(&w.desired()).map(|e| ("PROVISIONER_ENVIRONMENT", e)))
        .args(["run", "--listen", &format!("127.0.0.1:{port}")])
        .env(
            "PROVISIONER_LEDGER",
            format!("file://{}", w.dir.path().join("state").display()),
        )
        .env("DIGITALOCEAN_TOKEN", "sim-token")
        .env("DIGITALOCEAN_API_URL", w.do_sim.url())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let want = "provisioner_unmanaged_objects{provider=\"digitalocean\",kind=\"vpc\",category=\"unmanaged\"} 2";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut metrics = String::new();
    while std::time::Instant::now() < deadline {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await {
            metrics = r.text().await.unwrap_or_default();
            if metrics.contains(want) {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(metrics.contains(want), "{metrics}");
    assert!(
        metrics.contains("provisioner_unmanaged_objects{provider=\"digitalocean\",kind=\"vpc\",category=\"adoptable\"} 0"),
        "the VPC the daemon made is managed, not adoptable:\n{metrics}"
    );
}

/// `init` against moto: the ledger bucket with versioning, encryption, a public access
/// block and a lifecycle, and the fingerprint key; a second run changes nothing.
#[test]
fn init_makes_the_ledger_bucket_and_key_on_moto() {
    let dir = tempfile::tempdir().unwrap();
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let bucket = format!("ledger-{}", &unique[..12]);
    let secret = format!("provisioner/key-{}", &unique[..12]);
    std::fs::write(
        dir.path().join("settings.toml"),
        format!(
            "[settings]\nledger = \"s3://{bucket}/prod\"\nfingerprint_key_secret = \"{secret}\"\n\n[aws.sns_topic.alerts]\nname = \"alerts-{}\"\n",
            &unique[..8]
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let mut c = Command::new(BIN);
        c.arg("-d")
            .arg(dir.path())
            .args(args)
            .env_remove("PROVISIONER_LEDGER");
        c.env_remove("PROVISIONER_FINGERPRINT_KEY");
        for (k, v) in support::moto::child_env() {
            c.env(k, v);
        }
        Run(c.output().unwrap())
    };
    let missing = run(&["state", "list"]);
    missing.expect(1);
    assert!(
        missing.err().contains("provisioner init"),
        "{}",
        missing.err()
    );
    let first = run(&["init"]);
    first.expect(0);
    for line in [
        "done     created bucket",
        "done     turned versioning on",
        "done     turned default encryption on",
        "done     blocked all public access",
        "done     old ledger versions expire",
        "done     created an empty ledger",
        "done     tagged the bucket",
        &format!("done     created Secrets Manager secret `{secret}`"),
        "ok       credentials of arn:aws:",
    ] {
        assert!(first.out().contains(line), "{line}:\n{}", first.out());
    }
    let second = run(&["init"]);
    second.expect(0);
    assert!(!second.out().contains("done "), "{}", second.out());
    run(&["state", "list"]).expect(0);
    run(&["diff", "--detailed-exitcode"]).expect(2);
}
