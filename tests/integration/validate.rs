//! `provisioner validate` as a user runs it: exit codes, where the errors go, and output
//! hygiene (no hang on a FIFO, control characters escaped, no secret in a report). The
//! library's validation cases are in `crates/core/tests/validate.rs`.

use std::path::Path;
use std::process::Command;

use crate::support::folder;

const VPC: &str = "[digitalocean.vpc.main]\nname = \"prod\"\nregion = \"nyc3\"\n";
const CANARY: &str = "canary-7f3a9c-hunter2";

/// Runs `provisioner validate` on `dir`, killed if it has not finished when the test gives
/// up (a hang is what these tests guard against; the limit only keeps a regression from
/// hanging the suite, it measures nothing).
fn validate_cli(dir: &Path) -> (Option<i32>, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_provisioner"))
        .arg("-d")
        .arg(dir)
        .arg("validate")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run provisioner");
    for _ in 0..600 {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            return (status.code(), err);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child.kill().expect("kill");
    child.wait().expect("reap");
    (None, "still running after a minute: it hangs".into())
}

#[test]
fn a_fifo_named_toml_is_an_error_naming_it_not_a_hang() {
    let dir = folder(&[("a.toml", VPC)]);
    let fifo = dir.path().join("pipe.toml");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo")
            .success()
    );
    let (code, err) = validate_cli(dir.path());
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("pipe.toml") && err.contains("FIFO") && err.contains("not a regular file"),
        "{err}"
    );
}

#[test]
fn a_toml_link_to_dev_zero_is_refused_without_reading_it() {
    let dir = folder(&[("a.toml", VPC)]);
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.toml")).expect("symlink");
    let (code, err) = validate_cli(dir.path());
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("zero.toml") && err.contains("character device"),
        "{err}"
    );
}

#[test]
fn control_characters_in_keys_and_values_are_escaped_in_every_report() {
    // A key with ESC (a terminal title sequence) and BEL, a key that would start a line with
    // a GitHub workflow command, and a value with a carriage return.
    let dir = folder(&[(
        "a.toml",
        "[digitalocean.vpc.\"x\\u001b]0;pwned\\u0007\"]\nname = \"a\"\n\n[digitalocean.vpc.\"\\n::error::forged\"]\nname = \"b\\rc\"\n",
    )]);
    let (code, err) = validate_cli(dir.path());
    assert_eq!(code, Some(1), "{err}");
    assert!(
        !err.contains('\u{1b}') && !err.contains('\u{7}') && !err.contains('\r'),
        "{err:?}"
    );
    assert!(err.contains("\\u{1b}]0;pwned\\u{7}"), "{err}");
    assert!(
        !err.lines().any(|l| l.starts_with("::")),
        "a line starts a workflow command: {err}"
    );
}

fn provisioner(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_provisioner"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("run provisioner");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn validate_prints_a_summary_and_exits_0() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("desired-state");
    let (code, out, err) = provisioner(&["-d", dir.to_str().expect("utf-8 path"), "validate"]);
    assert_eq!(code, 0, "{err}");
    // Both environments of the worked example, each checked.
    assert_eq!(
        out,
        "production: valid: 44 resources (digitalocean 20, aws 13, github 8, kubernetes 2, flux 1) in 17 files\n\
         staging: valid: 44 resources (digitalocean 20, aws 13, github 8, kubernetes 2, flux 1) in 17 files\n"
    );
    let (code, out, err) = provisioner(&[
        "-d",
        dir.to_str().expect("utf-8 path"),
        "-e",
        "staging",
        "validate",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("valid: 44 resources"), "{out}");
}

#[test]
fn validate_prints_every_error_to_stderr_and_exits_1_without_a_panic() {
    let file = format!(
        "[settings]\nmode = \"x\"\n\n[github.actions_secret.s]\nrepository = \"o/r\"\nname = \"T\"\nvalue = \"{CANARY}\"\n"
    );
    let dir = folder(&[("a.toml", &file)]);
    let (code, out, err) =
        provisioner(&["-d", dir.path().to_str().expect("utf-8 path"), "validate"]);
    assert_eq!(code, 1);
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("a.toml:2:8") && err.contains("a.toml:7:9") && err.contains("2 problems"),
        "{err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("backtrace") && !err.contains(CANARY),
        "{err}"
    );
}

#[test]
fn a_missing_folder_exits_1_with_a_clear_message() {
    let (code, _, err) = provisioner(&["-d", "/nonexistent/x", "validate"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("/nonexistent/x") && err.contains("does not exist"),
        "{err}"
    );
}
