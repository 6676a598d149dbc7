//! `provisioner diff` end to end through the binary: exit codes, text and JSON plans, errors.

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn provisioner(args: &[&str], ledger: &Path) -> (i32, String, String) {
    // The worked example (no `-d`) runs as production.
    let environment = (!args.contains(&"-d")).then_some(("PROVISIONER_ENVIRONMENT", "production"));
    let out = Command::new(env!("CARGO_BIN_EXE_provisioner"))
        .current_dir(root())
        .args(args)
        .envs(environment)
        .env("PROVISIONER_LEDGER", format!("file://{}", ledger.display()))
        // No credentials here: never let the AWS chain try the instance metadata service.
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("NO_COLOR")
        .output()
        .expect("run provisioner");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn diff_against_an_empty_cloud_plans_everything_and_exits_2_with_detailed_exitcode() {
    let ledger = tempfile::tempdir().expect("tmp");
    let (code, out, err) = provisioner(
        &[
            "diff",
            "--live-from",
            "tests/fixtures/live/empty.json",
            "--detailed-exitcode",
        ],
        ledger.path(),
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        out.contains("Plan: 0 to replace, 0 to delete, 44 to create, 0 to update, 0 to adopt."),
        "{out}"
    );
    assert!(
        out.contains("+ digitalocean.vpc.prod will be created [step 1]"),
        "{out}"
    );
    assert!(
        !out.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );
    let (code, _, _) = provisioner(
        &["diff", "--live-from", "tests/fixtures/live/empty.json"],
        ledger.path(),
    );
    assert_eq!(code, 0, "without --detailed-exitcode changes exit 0");
}

#[test]
fn diff_json_has_a_format_version_and_ordered_changes() {
    let ledger = tempfile::tempdir().expect("tmp");
    let (code, out, err) = provisioner(
        &[
            "diff",
            "--json",
            "--live-from",
            "tests/fixtures/live/empty.json",
        ],
        ledger.path(),
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
    assert_eq!(v["format_version"], 1);
    assert_eq!(v["summary"]["create"], 44);
    let changes = v["changes"].as_array().expect("changes");
    let pos = |a: &str| changes.iter().position(|c| c["address"] == a).expect(a);
    assert!(pos("digitalocean.vpc.prod") < pos("digitalocean.kubernetes_cluster.prod"));
    assert!(pos("aws.iam_smtp_user.smtp") < pos("github.actions_secret.smtp_password"));
    let secret = &changes[pos("github.actions_secret.smtp_password")];
    let value = secret["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .find(|f| f["path"] == "value")
        .expect("value");
    assert_eq!(value["new"]["kind"], "sensitive");
}

#[test]
fn diff_without_credentials_plans_nothing_it_cannot_see_and_says_why() {
    let ledger = tempfile::tempdir().expect("tmp");
    let out = Command::new(env!("CARGO_BIN_EXE_provisioner"))
        .current_dir(root())
        .args(["diff", "--json"])
        .env("PROVISIONER_ENVIRONMENT", "production")
        .env(
            "PROVISIONER_LEDGER",
            format!("file://{}", ledger.path().display()),
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("DIGITALOCEAN_TOKEN")
        .env_remove("DIGITALOCEAN_ACCESS_TOKEN")
        .env_remove("GITHUB_TOKEN")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("run provisioner");
    assert_eq!(
        out.status.code(),
        Some(3),
        "unknown is never \"no changes\": an incomplete plan exits 3\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        plan["has_changes"], false,
        "unknown is not absent: nothing is created"
    );
    assert_eq!(plan["complete"], false);
    let unobserved = plan["unobserved"].to_string();
    assert!(unobserved.contains("DIGITALOCEAN_TOKEN"), "{unobserved}");
    assert!(
        unobserved.contains("no AWS credentials") && unobserved.contains("set GITHUB_TOKEN"),
        "{unobserved}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn diff_observes_digitalocean_when_it_has_a_token() {
    use provisioner::sim::digitalocean::{DoConfig, DoSim};
    let sim = DoSim::start(DoConfig::default()).await.expect("sim");
    let desired = tempfile::tempdir().expect("tmp");
    std::fs::write(
        desired.path().join("do.toml"),
        "[digitalocean.vpc.main]\nname = \"prod\"\nregion = \"nyc3\"\n\n[digitalocean.domain.main]\nname = \"example.com\"\n",
    )
    .expect("write");
    let ledger = tempfile::tempdir().expect("tmp");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_provisioner"))
            .args([
                "-d",
                desired.path().to_str().expect("utf-8"),
                "diff",
                "--json",
                "--detailed-exitcode",
            ])
            .env(
                "PROVISIONER_LEDGER",
                format!("file://{}", ledger.path().display()),
            )
            .env("DIGITALOCEAN_API_URL", sim.url())
            .env("DIGITALOCEAN_TOKEN", "sim-token")
            .output()
            .expect("run provisioner")
    };
    let out = tokio::task::block_in_place(run);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let actions: Vec<String> = plan["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c["action"].as_str().unwrap_or(""),
                c["address"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            "create digitalocean.domain.main",
            "create digitalocean.vpc.main"
        ]
    );
    // Someone makes the VPC by hand: nothing proves it is this ledger's, so the next diff
    // reports a conflict instead of adopting it.
    sim.edit(|s| {
        s.vpcs.push(serde_json::json!({"id": "11111111-2222-3333-4444-555555555555", "urn": "do:vpc:11111111-2222-3333-4444-555555555555", "name": "prod", "region": "nyc3", "ip_range": "10.1.0.0/20", "description": "", "default": true, "created_at": "2026-11-25T00:00:00Z"}))
    });
    let out = tokio::task::block_in_place(run);
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(
        plan["changes"]
            .as_array()
            .expect("changes")
            .iter()
            .any(|c| c["action"] == "conflict" && c["address"] == "digitalocean.vpc.main")
    );
    let requests = sim.faults.requests();
    assert!(
        requests.iter().all(|r| r.starts_with("GET")),
        "a diff only reads: {requests:?}"
    );
}

#[test]
fn diff_with_a_broken_snapshot_names_the_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("live.json");
    std::fs::write(&bad, "{ not json").expect("write");
    let (code, _, err) = provisioner(
        &["diff", "--live-from", bad.to_str().expect("utf-8")],
        dir.path(),
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("parsing live-state snapshot") && err.contains("live.json"),
        "{err}"
    );
}

#[test]
fn diff_on_invalid_desired_state_exits_1_with_every_error() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(
        dir.path().join("a.toml"),
        "[digitalocean.vpc.x]\nregion = \"nyc3\"\n",
    )
    .expect("write");
    let (code, _, err) = provisioner(
        &[
            "-d",
            dir.path().to_str().expect("utf-8"),
            "diff",
            "--live-from",
            "tests/fixtures/live/empty.json",
            "--detailed-exitcode",
        ],
        dir.path(),
    );
    assert_eq!(code, 1);
    assert!(err.contains("missing required field `name`"), "{err}");
}

/// A deliberate change (issue 21, one reconcile pass): `diff` now takes the pass `apply` and
/// the daemon take, so a ledger it cannot read is reported as theirs is, `reading the
/// ledger: …` (before, `diff` printed the store's error alone).
#[test]
fn diff_and_apply_report_an_unreadable_ledger_alike() {
    let ledger = tempfile::tempdir().expect("tmp");
    std::fs::write(ledger.path().join("ledger.json"), "not a ledger").expect("write");
    let desired = tempfile::tempdir().expect("tmp");
    std::fs::write(
        desired.path().join("vpc.toml"),
        "[digitalocean.vpc.prod]\nname = \"prod\"\nregion = \"nyc3\"\nip_range = \"10.10.0.0/16\"\n",
    )
    .expect("write");
    let dir = desired.path().to_str().expect("utf-8");
    let (code, _, diff) = provisioner(
        &[
            "-d",
            dir,
            "diff",
            "--live-from",
            "tests/fixtures/live/empty.json",
        ],
        ledger.path(),
    );
    assert_eq!(code, 1, "{diff}");
    assert!(diff.starts_with("error: reading the ledger: "), "{diff}");
    let (code, _, apply) = provisioner(&["-d", dir, "apply", "--auto-approve"], ledger.path());
    assert_eq!(code, 1, "{apply}");
    assert_eq!(diff, apply);
}
