//! The command line as a finished tool (issue "Plans people can read and act on, saved
//! plans, and a CLI that feels finished"): saved plans round-trip and stale ones are
//! refused, `diff` previews `--target`/`--replace`, a closed pipe ends quietly, `--version`
//! names the commit, completions and the man page print.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use provisioner::sim::digitalocean::{DoConfig, DoSim};

const BIN: &str = env!("CARGO_BIN_EXE_provisioner");

const DESIRED: &str = r#"
[digitalocean.vpc.main]
name = "prod-ams3"
region = "ams3"
ip_range = "10.10.0.0/20"

[digitalocean.domain.zone]
name = "example.org"
"#;

struct World {
    sim: DoSim,
    dir: tempfile::TempDir,
}

impl World {
    async fn new() -> World {
        let w = World {
            sim: DoSim::start(DoConfig::default()).await.unwrap(),
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(w.desired()).unwrap();
        w.write(DESIRED);
        w
    }
    fn desired(&self) -> PathBuf {
        self.dir.path().join("desired")
    }
    fn write(&self, text: &str) {
        std::fs::write(self.desired().join("a.toml"), text).unwrap();
    }
    fn plan_file(&self) -> PathBuf {
        self.dir.path().join("reviewed.plan")
    }
    fn run(&self, args: &[&str]) -> Run {
        Run(Command::new(BIN)
            .arg("-d")
            .arg(self.desired())
            .args(args)
            .env(
                "PROVISIONER_LEDGER",
                format!("file://{}", self.dir.path().join("state").display()),
            )
            .env("DIGITALOCEAN_TOKEN", "sim-token")
            .env("DIGITALOCEAN_API_URL", self.sim.url())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .unwrap())
    }
}

use crate::support::run::Run;

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_saved_plan_is_applied_exactly_and_only_once() {
    let w = World::new().await;
    let plan = w.plan_file();
    let d = w.run(&["plan", "-o", path(&plan), "--detailed-exitcode"]);
    d.expect(2);
    assert!(d.err().contains("Saved the plan"), "{}", d.err());
    let saved = std::fs::read_to_string(&plan).unwrap();
    assert!(
        saved.contains("\"format\": \"provisioner-plan\""),
        "{saved}"
    );
    assert!(saved.contains("\"desired_digest\": \"sha256:"), "{saved}");

    // No terminal, no --auto-approve: the saved plan was the review.
    let a = w.run(&["apply", path(&plan)]);
    a.expect(0);
    assert_eq!(w.sim.edit(|s| s.vpcs.len()), 1);
    assert_eq!(w.sim.edit(|s| s.domains.len()), 1);
    w.run(&["diff", "--detailed-exitcode"]).expect(0);

    // The ledger has moved on: the same plan again is stale.
    let again = w.run(&["apply", path(&plan)]);
    again.expect(1);
    assert!(
        again.err().contains("stale") && again.err().contains("serial"),
        "{}",
        again.err()
    );
    assert_eq!(w.sim.edit(|s| s.vpcs.len()), 1, "nothing was made twice");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_plan_is_refused_when_the_files_or_the_clouds_changed() {
    let w = World::new().await;
    let plan = w.plan_file();
    w.run(&["diff", "-o", path(&plan)]).expect(0);
    w.write(&DESIRED.replace("example.org", "example.net"));
    let r = w.run(&["apply", path(&plan)]);
    r.expect(1);
    assert!(r.err().contains("desired state"), "{}", r.err());
    assert!(w.sim.edit(|s| s.domains.is_empty()));

    w.write(DESIRED);
    w.run(&["diff", "-o", path(&plan)]).expect(0);
    // Someone makes the domain by hand meanwhile: planning again gives another change.
    w.sim.edit(|s| {
        s.domains
            .push(serde_json::json!({"name": "example.org", "ttl": 1800, "zone_file": ""}))
    });
    let r = w.run(&["apply", path(&plan)]);
    r.expect(1);
    assert!(r.err().contains("the clouds changed"), "{}", r.err());
    assert!(w.sim.edit(|s| s.vpcs.is_empty()), "nothing was changed");

    // Not a plan at all.
    std::fs::write(&plan, "{}").unwrap();
    let r = w.run(&["apply", path(&plan)]);
    r.expect(1);
    assert!(r.err().contains("not a saved plan"), "{}", r.err());
}

#[tokio::test(flavor = "multi_thread")]
async fn diff_previews_target_and_replace() {
    let w = World::new().await;
    let d = w.run(&["diff", "--target", "digitalocean.domain.zone"]);
    d.expect(0);
    assert!(
        d.out().contains("digitalocean.domain.zone will be created"),
        "{}",
        d.out()
    );
    assert!(!d.out().contains("digitalocean.vpc.main"), "{}", d.out());
    w.run(&["apply", "--auto-approve"]).expect(0);
    let r = w.run(&["diff", "--replace", "digitalocean.domain.zone"]);
    r.expect(0);
    assert!(
        r.out()
            .contains("digitalocean.domain.zone will be replaced"),
        "{}",
        r.out()
    );
    let bad = w.run(&["diff", "--target", "digitalocean.vpc.nope"]);
    bad.expect(1);
    assert!(
        bad.err().contains("not in the desired state"),
        "{}",
        bad.err()
    );
}

#[test]
fn a_closed_pipe_ends_diff_quietly() {
    let ledger = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "diff",
            "-v",
            "--live-from",
            "tests/fixtures/live/empty.json",
        ])
        .env("PROVISIONER_ENVIRONMENT", "production")
        .env(
            "PROVISIONER_LEDGER",
            format!("file://{}", ledger.path().display()),
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before the plan is written: `provisioner diff | head -0`.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains("Broken pipe"), "{err}");
    assert_eq!(out.status.code(), Some(141), "{err}");
}

#[test]
fn version_completions_and_man_page() {
    let run = |args: &[&str]| {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let version = run(&["--version"]);
    // `provisioner 0.1.0 (<12 hex> <date>)`, or `unknown` outside a Git checkout.
    let inside = version
        .trim()
        .strip_prefix(concat!("provisioner ", env!("CARGO_PKG_VERSION"), " ("))
        .and_then(|v| v.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{version}"));
    let (commit, date) = inside.split_once(' ').unwrap();
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{version}"
    );
    assert!(date == "unknown" || date.len() == 10, "{version}");
    for shell in ["bash", "zsh", "fish"] {
        let script = run(&["completions", shell]);
        assert!(
            script.contains("provisioner") && script.contains("diff"),
            "{shell}"
        );
    }
    let man = run(&["man"]);
    assert!(man.contains(".TH provisioner 1"), "{man}");
    assert!(man.contains("scan"), "{man}");
}

#[tokio::test(flavor = "multi_thread")]
async fn run_once_needs_no_port_and_ledger_versions_say_what_they_record() {
    let w = World::new().await;
    // The default metrics port is taken (by us, or by someone else already).
    let _busy = std::net::TcpListener::bind("127.0.0.1:9464");
    let once = w.run(&["run", "--once"]);
    once.expect(0);
    // Pass and change times in milliseconds, not 16 digits.
    for line in once.err().lines().filter(|l| l.contains("seconds=")) {
        let value = line
            .split("seconds=")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap();
        let decimals = value.split('.').nth(1).map_or(0, str::len);
        assert!(decimals <= 3, "{line}");
    }
    let history = w.run(&["state", "history"]);
    history.expect(0);
    assert!(
        !history.out().contains("apply in progress"),
        "{}",
        history.out()
    );
    assert!(
        history.out().contains("about to create"),
        "{}",
        history.out()
    );
    assert!(history.out().contains("changes done"), "{}", history.out());
    // A rollback without a terminal must be told it may write.
    let version = history
        .out()
        .lines()
        .last()
        .and_then(|l| l.split_whitespace().find(|t| *t != "*").map(str::to_string))
        .unwrap();
    let r = w.run(&["state", "rollback", &version]);
    r.expect(1);
    assert!(r.err().contains("--auto-approve"), "{}", r.err());
}

#[tokio::test(flavor = "multi_thread")]
async fn waits_are_said_and_missing_aws_credentials_are_one_line() {
    use provisioner::sim::Fault;
    let w = World::new().await;
    w.sim.faults.inject(
        Some("GET"),
        "/v2/vpcs",
        Fault::Respond {
            status: 429,
            body: r#"{"id":"too_many_requests","message":"API Rate limit exceeded."}"#.into(),
            headers: vec![("retry-after".into(), "1".into())],
        },
        Some(1),
    );
    let out = Command::new(BIN)
        .arg("-d")
        .arg(w.desired())
        .arg("diff")
        .env(
            "PROVISIONER_LEDGER",
            format!("file://{}", w.dir.path().join("state").display()),
        )
        .env("DIGITALOCEAN_TOKEN", "sim-token")
        .env("DIGITALOCEAN_API_URL", w.sim.url())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("429 Too Many Requests: waiting"), "{err}");

    // AWS without credentials: the plan names what to set; no SDK warning dumps.
    std::fs::write(
        w.desired().join("aws.toml"),
        "[aws.sns_topic.alerts]\nname = \"alerts\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("-d")
        .arg(w.desired())
        .arg("diff")
        .env(
            "PROVISIONER_LEDGER",
            format!("file://{}", w.dir.path().join("state").display()),
        )
        .env("DIGITALOCEAN_TOKEN", "sim-token")
        .env("DIGITALOCEAN_API_URL", w.sim.url())
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{text}\n{err}");
    assert!(
        text.contains("aws.sns_topic: no AWS credentials: set AWS_ACCESS_KEY_ID"),
        "{text}"
    );
    assert!(!err.contains(" WARN "), "no SDK warnings:\n{err}");
}

#[test]
fn state_on_a_ledger_that_does_not_exist_says_so_and_makes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("sttae");
    let out = Command::new(BIN)
        .args([
            "--ledger",
            &format!("file://{}", typo.display()),
            "state",
            "list",
        ])
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("no ledger at"));
    assert!(!typo.exists(), "nothing is created by a read");
    // A file that is not UTF-8 is located to the line and column.
    let desired = dir.path().join("desired");
    std::fs::create_dir_all(&desired).unwrap();
    std::fs::write(desired.join("a.toml"), b"[settings]\ninterval = \"\xff\"\n").unwrap();
    let out = Command::new(BIN)
        .arg("-d")
        .arg(&desired)
        .arg("validate")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("a.toml:2:13"), "{err}");
}

/// Hostile paths found by trying to break it: a `*.toml` link out of the folder is never
/// read (an error would quote it), a secret file must be a small regular file, and a saved
/// plan is never written over a device or a link.
#[tokio::test(flavor = "multi_thread")]
async fn hostile_paths_are_refused_before_they_are_read_or_written() {
    let w = World::new().await;
    let canary = "DIGITALOCEAN_TOKEN=dop_v1_CANARY_outside_link";
    let outside = w.dir.path().join("outside.txt");
    std::fs::write(&outside, format!("{canary}\n")).unwrap();
    std::os::unix::fs::symlink(&outside, w.desired().join("env.toml")).unwrap();
    let v = w.run(&["validate"]);
    v.expect(1);
    assert!(
        v.err().contains("links outside the desired-state folder"),
        "{}",
        v.err()
    );
    assert!(
        !v.err().contains("CANARY"),
        "the file is never quoted: {}",
        v.err()
    );
    std::fs::remove_file(w.desired().join("env.toml")).unwrap();

    // A secret read from /dev/zero or a FIFO: refused at once, no hang, no endless read.
    let fifo = w.dir.path().join("secret.fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    for source in ["/dev/zero", fifo.to_str().unwrap()] {
        w.write(&format!(
            "{DESIRED}\n[github.actions_variable.v]\nrepository = \"o/r\"\nname = \"V\"\nvalue = \"x\"\n\n[github.actions_secret.s]\nrepository = \"o/r\"\nname = \"S\"\nvalue = {{ file = \"{source}\" }}\n"
        ));
        let d = Command::new(BIN)
            .arg("-d")
            .arg(w.desired())
            .arg("diff")
            .env(
                "PROVISIONER_LEDGER",
                format!("file://{}", w.dir.path().join("state").display()),
            )
            .env(
                "PROVISIONER_FINGERPRINT_KEY",
                "cli-test-fingerprint-key-0123456789",
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(d.status.code(), Some(1), "{source}");
        let err = String::from_utf8_lossy(&d.stderr);
        assert!(err.contains(source), "{err}");
    }
    w.write(DESIRED);

    // `-o` at a device or a link: refused, the node left as it was.
    let link = w.dir.path().join("plan-link");
    std::os::unix::fs::symlink("/dev/null", &link).unwrap();
    for target in [Path::new("/dev/null"), link.as_path()] {
        let r = w.run(&["diff", "-o", path(target)]);
        r.expect(1);
        assert!(r.err().contains("not one"), "{}", r.err());
    }
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        !std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_file()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_import_founds_a_ledger_with_a_lineage_and_a_failed_pass_is_not_ready() {
    let w = World::new().await;
    let r = reqwest::Client::new()
        .post(format!("{}/v2/vpcs", w.sim.url()))
        .bearer_auth("sim-token")
        .json(&serde_json::json!({"name": "legacy", "region": "nyc3", "ip_range": "10.77.0.0/16"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let to = w.desired().join("imported.toml");
    let i = w.run(&["import", "--all-unmanaged", "--to", path(&to)]);
    i.expect(0);
    assert!(
        i.err().contains("cannot carry a lineage marker"),
        "{}",
        i.err()
    );
    let ledger: serde_json::Value = serde_json::from_slice(
        &std::fs::read(w.dir.path().join("state").join("ledger.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(ledger["lineage"].as_str().unwrap().len(), 36, "{ledger:#}");

    // The daemon with a desired state that does not load: not ready, and says why.
    w.write("this is not toml");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(BIN)
        .arg("-d")
        .arg(w.desired())
        .args(["run", "--listen", &format!("127.0.0.1:{port}")])
        .env(
            "PROVISIONER_LEDGER",
            format!("file://{}", w.dir.path().join("state").display()),
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut seen = (0, String::new());
    for _ in 0..300 {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await {
            seen = (r.status().as_u16(), r.text().await.unwrap_or_default());
            if seen.1.contains("the last pass failed") {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(seen.0, 503, "{}", seen.1);
    assert!(seen.1.contains("the last pass failed"), "{}", seen.1);
}
