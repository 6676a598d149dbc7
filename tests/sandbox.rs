//! `provisioner sandbox` as a user runs it: the plan is shown and applied, drift is injected,
//! detected and corrected, and Ctrl-C (SIGINT) stops everything with exit 0.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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
    let (tx, rx) = mpsc::channel();
    let out = BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    let wanted = |seen: &[String]| {
        seen.iter()
            .filter(|l| l.contains("drift detected and corrected"))
            .count()
            >= 2
    };
    while !wanted(&seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "the sandbox did not correct two drifts in time:\n{}",
                    seen.join("\n")
                );
            }
        }
    }
    let text = seen.join("\n");
    assert!(
        text.contains("Plan: 0 to replace, 0 to delete, 41 to create"),
        "{text}"
    );
    assert!(
        text.contains("first pass: applied — 41 done, 0 failed"),
        "{text}"
    );
    assert!(
        text.contains(&format!("status on http://127.0.0.1:{port}/status")),
        "{text}"
    );
    assert!(text.contains("drift injected:"), "{text}");

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
