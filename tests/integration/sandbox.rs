//! `provisioner sandbox` as a user runs it: the plan is shown and applied, drift is injected,
//! detected and corrected, and Ctrl-C (SIGINT) stops everything with exit 0.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The child's standard output, line by line, as it comes.
fn lines(child: &mut std::process::Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let out = BufReader::new(child.stdout.take().expect("piped stdout"));
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Reads lines into `seen` until `done` holds; past `within`, kills the child and fails
/// with `what` and what was read.
fn read_until(
    rx: &mpsc::Receiver<String>,
    seen: &mut Vec<String>,
    child: &mut std::process::Child,
    within: Duration,
    done: impl Fn(&[String]) -> bool,
    what: &str,
) {
    let deadline = Instant::now() + within;
    while !done(seen) {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => seen.push(line),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{what}:\n{}", seen.join("\n"));
            }
        }
    }
}

#[test]
fn the_sandbox_applies_injects_drift_corrects_it_and_stops_on_sigint() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_provisioner"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "sandbox",
            "--drift-every",
            "2s",
            "--interval",
            "1s",
            "--listen",
        ])
        .arg(format!("127.0.0.1:{port}"))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = lines(&mut child);
    let mut seen = Vec::new();
    let corrected = |seen: &[String]| {
        seen.iter()
            .filter(|l| l.contains("drift detected and corrected"))
            .count()
            >= 6
    };
    read_until(
        &rx,
        &mut seen,
        &mut child,
        Duration::from_secs(180),
        corrected,
        "the sandbox did not correct six drifts in time",
    );
    let text = seen.join("\n");
    assert!(
        text.contains("Plan: 0 to replace, 0 to delete, 44 to create"),
        "{text}"
    );
    assert!(
        text.contains("first pass: applied — 44 done, 0 failed"),
        "{text}"
    );
    assert!(
        text.contains(&format!("status on http://127.0.0.1:{port}/status")),
        "{text}"
    );
    assert!(text.contains("drift injected:"), "{text}");
    // The worked example has environments; none chosen, the sandbox runs the first.
    assert!(
        text.contains(
            "environment production (of production, staging; choose another with -e NAME)"
        ),
        "{text}"
    );
    // The sixth drift deletes Flux's pull secret; it is rebuilt (from Secrets Manager).
    let deleted = seen
        .iter()
        .position(|l| {
            l.contains("drift injected: Kubernetes Secret flux-system/flux-system (Flux's pull secret) deleted by hand")
        })
        .unwrap_or_else(|| panic!("no pull secret deleted:\n{text}"));
    assert!(
        seen[deleted + 1].contains("drift detected and corrected"),
        "{text}"
    );
    // How to point one's own CLI at the simulators, and a short story: the daemon's log
    // goes to a file unless --verbose.
    assert!(
        text.contains("  export DIGITALOCEAN_API_URL=http://127.0.0.1:"),
        "{text}"
    );
    assert!(text.contains("its log in "), "{text}");
    let before_first_pass = seen
        .iter()
        .take_while(|l| !l.contains("first pass:"))
        .count();
    assert!(before_first_pass < 40, "{text}");

    // Ctrl-C.
    assert!(
        Command::new("kill")
            .arg("-INT")
            .arg(child.id().to_string())
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the sandbox did not stop");
        std::thread::sleep(Duration::from_millis(100));
    };
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) {
        seen.push(line);
    }
    assert!(status.success(), "{status:?}\n{}", seen.join("\n"));
    assert!(seen.iter().any(|l| l.contains("sandbox: stopped")));
    // Nothing keeps listening.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn a_taken_port_is_an_error_not_someone_elses_status() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_provisioner"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["sandbox", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: a sandbox that does not notice keeps running, and is killed here.
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the sandbox kept running on a taken port");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
}

/// `sandbox -e staging`: the worked example's other environment, on the simulators.
#[test]
fn the_sandbox_runs_the_staging_environment() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_provisioner"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "sandbox",
            "-e",
            "staging",
            "--no-drift",
            "--interval",
            "1s",
            "--listen",
            "127.0.0.1:0",
        ])
        .env_remove("RUST_LOG")
        .env_remove("PROVISIONER_ENVIRONMENT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let rx = lines(&mut child);
    let mut seen = Vec::new();
    read_until(
        &rx,
        &mut seen,
        &mut child,
        Duration::from_secs(120),
        |seen| seen.iter().any(|l| l.contains("first pass:")),
        "no first pass in time",
    );
    let _ = Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.wait();
    let text = seen.join("\n");
    assert!(
        text.contains("export PROVISIONER_ENVIRONMENT=staging"),
        "{text}"
    );
    assert!(
        text.contains("first pass: applied — 44 done, 0 failed"),
        "{text}"
    );
}
