//! Environments, variables, `for_each`, modules and outputs through the binary, against the
//! DigitalOcean simulator and the project's AWS simulator (Spaces): two environments in one
//! account, each with its own ledger, never adopting each other's objects
//! (issue "Environments, reuse and IDE support").

use std::path::PathBuf;
use std::process::{Command, Stdio};

use provisioner::sim::aws::AwsSim;
use provisioner::sim::digitalocean::{DoConfig, DoSim};
use serde_json::Value;

use crate::support::run::Run;

const BIN: &str = env!("CARGO_BIN_EXE_provisioner");

const MAIN: &str = r#"
[settings]
ledger = "file://LEDGER"

[variable.prefix]
type = "string"
pattern = "[a-z]+"
description = "Prefix of every name"

[variable.buckets]
type = "list(string)"
default = ["media"]

[digitalocean.vpc.net]
name = "${var.prefix}-net"
region = "nyc3"
description = "the ${environment.name} network"

[module.app]
source = "modules/app"
prefix = "${var.prefix}"
buckets = "${var.buckets}"

[output.vpc_name]
value = "${digitalocean.vpc.net.name}"
description = "the network's name"

[output.media_domain]
value = "${module.app.media_domain}"
sensitive = true
"#;

const APP: &str = r#"
[variable.prefix]
type = "string"

[variable.buckets]
type = "list(string)"

[digitalocean.spaces_bucket.data]
for_each = "${var.buckets}"
name = "${var.prefix}-app-${each.key}"
region = "nyc3"

[output.media_domain]
value = "${digitalocean.spaces_bucket.data[\"media\"].bucket_domain_name}"
"#;

struct World {
    do_sim: DoSim,
    aws_sim: AwsSim,
    dir: tempfile::TempDir,
}

impl World {
    async fn new() -> World {
        let w = World {
            do_sim: DoSim::start(DoConfig::default()).await.unwrap(),
            aws_sim: AwsSim::start("us-east-1").await.unwrap(),
            dir: tempfile::tempdir().unwrap(),
        };
        for (name, text) in [
            (
                "main.toml",
                MAIN.replace("LEDGER", &w.ledger_base().display().to_string()),
            ),
            ("modules/app/main.toml", APP.to_string()),
            (
                "environments/staging.toml",
                "[environment]\ndescription = \"try things here\"\n\n[variables]\nprefix = \"stg\"\nbuckets = [\"media\", \"logs\"]\n".to_string(),
            ),
            (
                "environments/production.toml",
                "[variables]\nprefix = \"prod\"\n".to_string(),
            ),
        ] {
            let path = w.desired().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        w
    }

    fn desired(&self) -> PathBuf {
        self.dir.path().join("desired")
    }

    fn ledger_base(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn run(&self, args: &[&str]) -> Run {
        Run(self.command(args).output().unwrap())
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("-d")
            .arg(self.desired())
            .args(args)
            .env_remove("PROVISIONER_LEDGER")
            .env_remove("PROVISIONER_ENVIRONMENT")
            .env_remove("PROVISIONER_FINGERPRINT_KEY")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .env("DIGITALOCEAN_TOKEN", "sim-token")
            .env("DIGITALOCEAN_API_URL", self.do_sim.url())
            .env("SPACES_ENDPOINT_URL", self.aws_sim.url())
            .env("SPACES_ACCESS_KEY_ID", "env")
            .env("SPACES_SECRET_ACCESS_KEY", "env")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null());
        c
    }

    fn ledger(&self, env: &str) -> Value {
        let path = self.ledger_base().join("env").join(env).join("ledger.json");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap()
    }

    /// The VPCs' names in the DigitalOcean simulator's account.
    fn vpc_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.do_sim.edit(|s| {
            s.vpcs
                .iter()
                .filter_map(|v| v["name"].as_str().map(str::to_string))
                .collect()
        });
        names.sort();
        names
    }
}

fn addresses(plan: &Value) -> Vec<(String, String)> {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["address"].as_str().unwrap().to_string(),
                c["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_environments_in_one_account_keep_their_own_ledgers_and_never_adopt_each_other() {
    let w = World::new().await;

    // Validate checks every environment when none is chosen; plan refuses to guess.
    let v = w.run(&["validate"]);
    v.expect(0);
    assert!(
        v.out().contains("production: valid: 2 resources")
            && v.out().contains("staging: valid: 3 resources"),
        "{}",
        v.out()
    );
    let d = w.run(&["diff"]);
    d.expect(1);
    assert!(
        d.err()
            .contains("several environments (production, staging): choose one"),
        "{}",
        d.err()
    );

    // Staging: the plan names the environment and the instances.
    let plan = w.run(&["-e", "staging", "diff", "--json"]);
    plan.expect(0);
    let plan = plan.json();
    assert_eq!(plan["environment"], "staging");
    let mut made = addresses(&plan);
    made.sort();
    assert_eq!(
        made,
        [
            ("digitalocean.vpc.net".to_string(), "create".to_string()),
            (
                "module.app.digitalocean.spaces_bucket.data[\"logs\"]".to_string(),
                "create".to_string()
            ),
            (
                "module.app.digitalocean.spaces_bucket.data[\"media\"]".to_string(),
                "create".to_string()
            ),
        ]
    );
    let text = w.run(&["-e", "staging", "diff"]);
    assert!(
        text.out().starts_with("environment staging\n"),
        "{}",
        text.out()
    );

    w.run(&["-e", "staging", "apply", "--auto-approve"])
        .expect(0);
    w.run(&["-e", "staging", "diff", "--detailed-exitcode"])
        .expect(0);
    let ledger = w.ledger("staging");
    assert_eq!(ledger["environment"], "staging");
    assert!(
        ledger["resources"]
            .as_object()
            .unwrap()
            .contains_key("module.app.digitalocean.spaces_bucket.data[\"logs\"]"),
        "{ledger}"
    );

    // The journal names the environment.
    let journal = w.ledger_base().join("env/staging/journal");
    let records: Vec<Value> = std::fs::read_dir(&journal)
        .unwrap_or_else(|e| panic!("{}: {e}", journal.display()))
        .map(|e| {
            serde_json::from_str(&std::fs::read_to_string(e.unwrap().path()).unwrap()).unwrap()
        })
        .collect();
    assert!(!records.is_empty());
    assert!(
        records.iter().all(|r| r["environment"] == "staging"),
        "{records:?}"
    );

    // Outputs, from the ledger: the sensitive one masked unless named.
    let out = w.run(&["-e", "staging", "output"]);
    out.expect(0);
    assert!(
        out.out().contains("vpc_name = \"stg-net\""),
        "{}",
        out.out()
    );
    assert!(
        out.out().contains("media_domain = <sensitive>") && !out.out().contains("stg-app-media."),
        "{}",
        out.out()
    );
    let one = w.run(&["-e", "staging", "output", "media_domain"]);
    one.expect(0);
    assert_eq!(
        one.out().trim(),
        "stg-app-media.nyc3.digitaloceanspaces.com"
    );
    let json = w.run(&["-e", "staging", "output", "--json"]).json();
    assert_eq!(json["vpc_name"]["value"], "stg-net");
    assert_eq!(json["media_domain"]["sensitive"], true);
    assert!(json["media_domain"].get("value").is_none(), "{json}");

    // Production, in the same account, with its own ledger: what staging made is not
    // its own, even where a name collides (`--var prefix=stg`).
    let clash = w.run(&["-e", "production", "--var", "prefix=stg", "diff", "--json"]);
    let clash_plan = clash.json();
    assert_eq!(clash_plan["environment"], "production");
    let actions = addresses(&clash_plan);
    assert!(
        actions
            .iter()
            .any(|(a, act)| a == "digitalocean.vpc.net" && act == "conflict"),
        "{actions:?}"
    );
    assert!(
        !actions
            .iter()
            .any(|(_, act)| act == "adopt" || act == "noop"),
        "production must not adopt staging's objects: {actions:?}"
    );
    let applied = w.run(&[
        "-e",
        "production",
        "--var",
        "prefix=stg",
        "apply",
        "--auto-approve",
    ]);
    assert_ne!(applied.code(), 0, "{}", applied.out());
    assert!(
        !w.ledger("production")["resources"]
            .as_object()
            .unwrap()
            .contains_key("digitalocean.vpc.net"),
        "production recorded staging's VPC"
    );

    // Production with its own names converges beside staging.
    w.run(&["-e", "production", "apply", "--auto-approve"])
        .expect(0);
    assert_eq!(w.vpc_names(), ["prod-net", "stg-net"]);
    w.run(&["-e", "staging", "diff", "--detailed-exitcode"])
        .expect(0);
    w.run(&["-e", "production", "diff", "--detailed-exitcode"])
        .expect(0);
    assert_eq!(
        w.run(&["-e", "production", "output", "vpc_name"])
            .out()
            .trim(),
        "prod-net"
    );

    // A ledger of one environment is refused for another: named with --ledger, or in the
    // environment's file.
    let staging_ledger = format!("file://{}", w.ledger_base().join("env/staging").display());
    for command in [&["diff"][..], &["output"], &["state", "list"]] {
        let mut args = vec!["-e", "production", "--ledger", &staging_ledger];
        args.extend_from_slice(command);
        let refused = w.run(&args);
        refused.expect(1);
        assert!(
            refused
                .err()
                .contains("this ledger belongs to environment `staging`, not `production`"),
            "{command:?}: {}",
            refused.err()
        );
        assert!(!refused.out().contains("stg-net"), "{}", refused.out());
    }
    std::fs::write(
        w.desired().join("environments/production.toml"),
        format!(
            "[environment]\nledger = \"file://{}\"\n\n[variables]\nprefix = \"prod\"\n",
            w.ledger_base().join("env/staging").display()
        ),
    )
    .unwrap();
    let refused = w.run(&["-e", "production", "diff"]);
    refused.expect(1);
    assert!(
        refused
            .err()
            .contains("this ledger belongs to environment `staging`, not `production`"),
        "{}",
        refused.err()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_output_not_applied_yet_is_not_known_and_exits_3() {
    let w = World::new().await;
    // Only the VPC: the bucket the sensitive output names is not made.
    w.run(&[
        "-e",
        "staging",
        "apply",
        "--auto-approve",
        "--target",
        "digitalocean.vpc.net",
    ])
    .expect(0);
    let out = w.run(&["-e", "staging", "output"]);
    out.expect(3);
    assert!(
        out.out().contains("vpc_name = \"stg-net\""),
        "{}",
        out.out()
    );
    assert!(
        out.out().contains("media_domain = (not known:"),
        "{}",
        out.out()
    );
    let one = w.run(&["-e", "staging", "output", "media_domain"]);
    one.expect(3);
    assert!(
        one.err().contains("output `media_domain` is not known"),
        "{}",
        one.err()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_names_its_environment_on_status_and_on_every_metric() {
    let w = World::new().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = w
        .command(&[
            "run",
            "--interval",
            "30s",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .env("PROVISIONER_ENVIRONMENT", "staging")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/status"))
            .send()
            .await
            && let Ok(v) = r.json::<Value>().await
            && v["passes"].as_array().is_some_and(|p| !p.is_empty())
        {
            break v;
        }
        assert!(std::time::Instant::now() < deadline, "no pass in time");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let metrics = client
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status["environment"], "staging", "{status}");
    let samples: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("provisioner_"))
        .collect();
    assert!(!samples.is_empty(), "{metrics}");
    for line in &samples {
        assert!(line.contains("environment=\"staging\""), "{line}");
    }
    assert!(
        metrics.contains("provisioner_managed_resources{")
            || metrics.contains("provisioner_reconcile_runs_total{"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_saved_for_one_environment_is_not_applied_to_another_and_import_writes_no_instance()
{
    let w = World::new().await;
    let plan = w.dir.path().join("staging.plan");
    w.run(&["-e", "staging", "diff", "-o", plan.to_str().unwrap()])
        .expect(0);
    let refused = w.run(&["-e", "production", "apply", plan.to_str().unwrap()]);
    refused.expect(1);
    assert!(
        refused.err().contains(
            "the saved plan was made for environment `staging`, not environment `production`"
        ),
        "{}",
        refused.err()
    );
    let import = w.run(&[
        "-e",
        "staging",
        "import",
        "--to",
        w.desired().join("more.toml").to_str().unwrap(),
        "module.app.digitalocean.spaces_bucket.data[\"x\"]",
        "x",
    ]);
    import.expect(1);
    assert!(
        import
            .err()
            .contains("is a for_each instance or a module's resource"),
        "{}",
        import.err()
    );
    assert!(!w.desired().join("more.toml").exists());
}

/// A relative `{ file = … }` in an environment's file is relative to that file, with `-d`
/// relative too (the usual `-d desired-state`).
#[tokio::test(flavor = "multi_thread")]
async fn a_secret_file_named_in_an_environment_file_is_read_from_beside_it() {
    let w = World::new().await;
    std::fs::write(
        w.desired().join("main.toml"),
        "[settings]\nledger = \"file://state\"\n\n[variable.pw]\ntype = \"secret\"\n\n[github.actions_secret.relay]\nrepository = \"o/r\"\nname = \"RELAY\"\nvalue = \"${var.pw}\"\n",
    )
    .unwrap();
    std::fs::remove_dir_all(w.desired().join("modules")).unwrap();
    std::fs::write(
        w.desired().join("environments/staging.toml"),
        "[variables]\npw = { file = \"pw.txt\" }\n",
    )
    .unwrap();
    std::fs::write(
        w.desired().join("environments/production.toml"),
        "[variables]\npw = { env = \"PW\" }\n",
    )
    .unwrap();
    std::fs::write(
        w.desired().join("environments/pw.txt"),
        "CANARY-env-file-9d1e",
    )
    .unwrap();
    let out = w
        .command(&["-e", "staging", "diff", "--live-from"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/live/empty.json"
        ))
        .env(
            "PROVISIONER_FINGERPRINT_KEY",
            "0123456789abcdef0123456789abcdef",
        )
        .current_dir(w.dir.path())
        .arg("-d")
        .arg("desired")
        .output()
        .unwrap();
    let run = Run(out);
    assert!(!run.err().contains("No such file"), "{}", run.err());
    assert!(!run.out().contains("CANARY") && !run.err().contains("CANARY"));
    assert!(
        run.out().contains("github.actions_secret.relay"),
        "{}\n{}",
        run.out(),
        run.err()
    );
}
