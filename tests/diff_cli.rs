//! `provisioner diff` end to end through the binary: exit codes, text and JSON plans, errors.

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn provisioner(args: &[&str], ledger: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_provisioner"))
        .current_dir(root())
        .args(args)
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
        out.contains("Plan: 0 to replace, 0 to delete, 41 to create, 0 to update, 0 to adopt."),
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
    assert_eq!(v["summary"]["create"], 41);
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
fn diff_without_a_live_snapshot_says_what_to_do() {
    let ledger = tempfile::tempdir().expect("tmp");
    let (code, _, err) = provisioner(&["diff"], ledger.path());
    assert_eq!(code, 1);
    assert!(err.contains("--live-from FILE"), "{err}");
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
