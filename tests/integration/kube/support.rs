//! The Kubernetes API servers the provider's suite runs against ([`Backend`]), each test
//! once per backend:
//!
//! - a real kube-apiserver (and etcd): the one `.ci/run` started (`PROVISIONER_TEST_KUBE_URL`,
//!   `_TOKEN`, `_CA`), or one this test process starts from the binaries `.ci/kube-servers
//!   build` cached, stopped when the process exits. Without either, its tests skip — except
//!   in CI (`CI=true`), where a missing server fails them;
//! - the project's simulator, [`KubeSim`], always: one for the whole test binary, on a thread
//!   and runtime of its own (each test runs on its own runtime, which ends with the test).
//!
//! Tests reach either through a recording proxy on loopback ([`Proxy`]): plain HTTP in,
//! HTTPS (trusting the server's CA) or plain HTTP out, every request logged, and the way to
//! the server cut on demand (answered `502 Bad Gateway`, as a load balancer whose backend is
//! unreachable answers).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use provisioner::sim::kubernetes::{KubeConfig, KubeSim};

/// Which API server a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// kube-apiserver v1.35.4 (skipped when there is none, except in CI).
    Real,
    /// [`KubeSim`] (always there).
    Sim,
}

/// Where the API server is and how to authenticate.
#[derive(Debug)]
pub struct Server {
    /// Which one it is.
    pub backend: Backend,
    /// `https://127.0.0.1:PORT` (the real server), `http://127.0.0.1:PORT` (the simulator).
    pub url: String,
    /// A bearer token of `system:masters` (the simulator's only token).
    pub token: String,
    /// The PEM of the CA that signed the server's certificate (`None`: plain HTTP).
    pub ca_pem: Option<Vec<u8>>,
}

/// The server of `backend`, or `None` when its tests are to be skipped (only the real
/// server's, never in CI).
pub fn server(backend: Backend) -> Option<&'static Server> {
    match backend {
        Backend::Real => real(),
        Backend::Sim => Some(sim()),
    }
}

/// The simulator of the whole test binary. Its controllers are off: the real server runs
/// no kube-controller-manager either, so a deleted Namespace stays `Terminating` on both.
fn sim() -> &'static Server {
    static SIM: OnceLock<Server> = OnceLock::new();
    SIM.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        // The simulator serves from a runtime that lives as long as the process: a test's
        // runtime ends with the test, and the tests share the simulator as they share the
        // real server.
        std::thread::Builder::new()
            .name("kubesim".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the simulator");
                runtime.block_on(async move {
                    let sim = KubeSim::start(KubeConfig {
                        token: format!("kubesim-{}", uuid::Uuid::new_v4().simple()),
                        controllers: false,
                    })
                    .await
                    .expect("a loopback port for the simulator");
                    tx.send((sim.url().to_string(), sim.token().to_string()))
                        .expect("the test waits for the simulator");
                    // Held here, so it serves until the process exits.
                    std::future::pending::<()>().await;
                    drop(sim);
                })
            })
            .expect("a thread for the simulator");
        let (url, token) = rx.recv().expect("the simulator started");
        Server {
            backend: Backend::Sim,
            url,
            token,
            ca_pem: None,
        }
    })
}

/// The real server, or `None` when the tests are to be skipped (never in CI).
fn real() -> Option<&'static Server> {
    static SERVER: OnceLock<Option<Server>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true");
            if let Ok(url) = std::env::var("PROVISIONER_TEST_KUBE_URL") {
                let token = std::env::var("PROVISIONER_TEST_KUBE_TOKEN")
                    .expect("PROVISIONER_TEST_KUBE_TOKEN is set with PROVISIONER_TEST_KUBE_URL");
                let ca = std::env::var("PROVISIONER_TEST_KUBE_CA")
                    .expect("PROVISIONER_TEST_KUBE_CA is set with PROVISIONER_TEST_KUBE_URL");
                let ca_pem = std::fs::read(&ca).unwrap_or_else(|e| panic!("reading {ca}: {e}"));
                return Some(Server {
                    backend: Backend::Real,
                    url,
                    token,
                    ca_pem: Some(ca_pem),
                });
            }
            match start() {
                Some(s) => Some(s),
                None if ci => panic!(
                    "CI=true and no Kubernetes API server: .ci/run starts one and exports PROVISIONER_TEST_KUBE_URL"
                ),
                None => {
                    eprintln!(
                        "skipping: no Kubernetes API server (set PROVISIONER_TEST_KUBE_URL, or run `.ci/kube-servers build` once)"
                    );
                    None
                }
            }
        })
        .as_ref()
}

/// Starts the cached binaries in a temporary folder; `None` when they are not built.
fn start() -> Option<Server> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/kube-servers");
    let dir = std::env::temp_dir().join(format!(
        "provisioner-kube-test-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).ok()?;
    let log = dir.join("start.log");
    // The shell stops both servers when our stdin closes, i.e. when this process exits.
    let mut child: Child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "if '{script}' start '{dir}' >'{log}' 2>&1; then echo started; else echo failed; fi; cat >/dev/null; '{script}' stop '{dir}' >/dev/null 2>&1; rm -rf '{dir}'",
            dir = dir.display(),
            log = log.display()
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take()?);
    out.read_line(&mut line).ok()?;
    static KEEP: OnceLock<Mutex<Child>> = OnceLock::new();
    let _ = KEEP.set(Mutex::new(child));
    if line.trim() != "started" {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("no binaries") {
            return None;
        }
        panic!("starting the Kubernetes API server failed:\n{text}");
    }
    let env = std::fs::read_to_string(dir.join("env")).ok()?;
    let get = |k: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(str::to_string)
    };
    let ca = get("PROVISIONER_TEST_KUBE_CA")?;
    Some(Server {
        backend: Backend::Real,
        url: get("PROVISIONER_TEST_KUBE_URL")?,
        token: get("PROVISIONER_TEST_KUBE_TOKEN")?,
        ca_pem: Some(std::fs::read(ca).ok()?),
    })
}

/// One request that went through the proxy.
#[derive(Clone, Debug)]
pub struct Logged {
    /// `GET`, `PATCH`, ...
    pub method: String,
    /// The path and query.
    pub path: String,
    /// The `Accept` header.
    pub accept: String,
    /// The answer's status (502 when the way was cut).
    pub status: u16,
}

#[derive(Clone)]
struct ProxyState {
    upstream: String,
    client: reqwest::Client,
    log: Arc<Mutex<Vec<Logged>>>,
    /// Requests still let through before the way is cut (negative: never cut).
    through: Arc<AtomicI64>,
    /// The token every request is sent upstream with, whatever it came with (the proxy
    /// then stands for a cluster whose kubeconfig holds another token: a simulated DOKS
    /// cluster's).
    token: Arc<Mutex<Option<String>>>,
}

/// The recording proxy in front of the API server.
pub struct Proxy {
    _running: provisioner::sim::Running,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    log: Arc<Mutex<Vec<Logged>>>,
    through: Arc<AtomicI64>,
    token: Arc<Mutex<Option<String>>>,
}

impl Proxy {
    /// A proxy to `server`.
    pub async fn start(server: &Server) -> Proxy {
        let mut client = reqwest::Client::builder();
        if let Some(pem) = &server.ca_pem {
            client = client
                .add_root_certificate(reqwest::Certificate::from_pem(pem).expect("the CA is PEM"));
        }
        let client = client.build().expect("a client");
        let state = ProxyState {
            upstream: server.url.clone(),
            client,
            log: Arc::default(),
            through: Arc::new(AtomicI64::new(-1)),
            token: Arc::default(),
        };
        let (log, through, token) = (
            state.log.clone(),
            state.through.clone(),
            state.token.clone(),
        );
        let router = axum::Router::new().fallback(forward).with_state(state);
        let running = provisioner::sim::serve(router)
            .await
            .expect("a loopback port");
        Proxy {
            url: running.url.clone(),
            _running: running,
            log,
            through,
            token,
        }
    }

    /// Sends every request upstream with this bearer token.
    pub fn set_token(&self, token: &str) {
        *self.token.lock().unwrap() = Some(token.to_string());
    }

    /// Cuts (or restores) the way to the server.
    pub fn set_down(&self, down: bool) {
        self.through
            .store(if down { 0 } else { -1 }, Ordering::SeqCst);
    }

    /// Lets `n` more requests through, then cuts the way: a cluster that becomes
    /// unreachable in the middle of a pass.
    pub fn cut_after(&self, n: i64) {
        self.through.store(n, Ordering::SeqCst);
    }

    /// The requests so far, and forgets them.
    pub fn take(&self) -> Vec<Logged> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

async fn forward(
    axum::extract::State(s): axum::extract::State<ProxyState>,
    request: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/".to_string(), |p| p.as_str().to_string());
    let log = |status: u16| {
        s.log.lock().unwrap().push(Logged {
            method: parts.method.to_string(),
            path: path.clone(),
            accept: parts
                .headers
                .get(axum::http::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string(),
            status,
        })
    };
    let cut = s
        .through
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n > 0).then(|| n - 1)
        })
        .is_err()
        && s.through.load(Ordering::SeqCst) == 0;
    if cut {
        log(502);
        return (axum::http::StatusCode::BAD_GATEWAY, "upstream unreachable").into_response();
    }
    let Ok(body) = axum::body::to_bytes(body, 64 << 20).await else {
        return (axum::http::StatusCode::BAD_REQUEST, "unreadable body").into_response();
    };
    let mut headers = parts.headers.clone();
    headers.remove(axum::http::header::HOST);
    if let Some(token) = s.token.lock().unwrap().clone() {
        headers.insert(
            axum::http::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
    }
    let answer = s
        .client
        .request(parts.method.clone(), format!("{}{path}", s.upstream))
        .headers(headers)
        .body(body)
        .send()
        .await;
    let Ok(answer) = answer else {
        log(502);
        return (
            axum::http::StatusCode::BAD_GATEWAY,
            "upstream did not answer",
        )
            .into_response();
    };
    let status = answer.status();
    log(status.as_u16());
    let mut headers = answer.headers().clone();
    for h in [
        axum::http::header::TRANSFER_ENCODING,
        axum::http::header::CONNECTION,
        axum::http::header::CONTENT_LENGTH,
    ] {
        headers.remove(h);
    }
    let body = answer.bytes().await.unwrap_or_default();
    (status, headers, body).into_response()
}

/// A kubeconfig for `url` with `token` (and the CA, for an `https` URL).
pub fn kubeconfig(url: &str, token: &str, ca_pem: Option<&[u8]>) -> String {
    use base64::Engine;
    let ca = ca_pem
        .map(|pem| {
            format!(
                "    certificate-authority-data: {}\n",
                base64::engine::general_purpose::STANDARD.encode(pem)
            )
        })
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {url}\n{ca}contexts:\n- name: test\n  context:\n    cluster: test\n    user: test\ncurrent-context: test\nusers:\n- name: test\n  user:\n    token: {token}\n"
    )
}

/// A direct client of the server (no proxy), as a person with `kubectl` would be: for
/// out-of-band edits and for checking what is there.
pub async fn client(server: &Server) -> kube::Client {
    let kc = kube::config::Kubeconfig::from_yaml(&kubeconfig(
        &server.url,
        &server.token,
        server.ca_pem.as_deref(),
    ))
    .expect("a kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("a config");
    kube::Client::try_from(config).expect("a client")
}
