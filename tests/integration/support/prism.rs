//! Prism in proxy mode in front of a simulator: every request and response that passes
//! through is validated against the official OpenAPI description, and a violation comes
//! back as an error (422 for a request, 500 for a response) naming the field.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// The Prism executable `.ci/run` installs.
pub fn executable() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/node_modules/.bin/prism");
    assert!(
        std::path::Path::new(path).exists(),
        "Prism is not installed: run `.ci/run` once (it runs `npm ci --prefix .ci`)"
    );
    path.to_string()
}

/// Starts `prism proxy --errors SPEC UPSTREAM` on a free loopback port; returns its URL. It
/// stops when this test process exits.
pub fn proxy(spec: &str, upstream: &str) -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let prism = executable();
    assert!(
        std::path::Path::new(spec).exists(),
        "the API description {spec} is missing"
    );
    let log = std::env::temp_dir().join(format!("prism-{port}.log"));
    let mut child: Child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{prism}' proxy --errors -h 127.0.0.1 -p {port} '{spec}' '{upstream}' >>'{log}' 2>&1 & pid=$!; echo started; cat >/dev/null; kill $pid",
            log = log.display()
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start prism");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("prism started");
    static KEEP: OnceLock<Mutex<Vec<Child>>> = OnceLock::new();
    KEEP.get_or_init(|| Mutex::new(Vec::new()))
        .lock()
        .expect("keep")
        .push(child);
    // Prism reads and compiles the description before it listens: that can take a while.
    for _ in 0..1800 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return format!("http://127.0.0.1:{port}");
        }
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(!text.contains("fatal"), "prism could not start:\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("prism did not start on port {port}");
}

/// Runs `start` on a runtime of its own, on a thread that lives as long as the test process,
/// and returns what it produced: a simulator shared by every test of a binary.
pub fn background<T: Send + 'static, F>(start: impl FnOnce() -> F + Send + 'static) -> T
where
    F: std::future::Future<Output = T>,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let value = start().await;
            tx.send(value).expect("send");
            std::future::pending::<()>().await;
        });
    });
    rx.recv().expect("started")
}
