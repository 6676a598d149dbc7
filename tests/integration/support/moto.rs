//! A moto S3 server for tests: the one `.ci/run` started (`PROVISIONER_TEST_MOTO_URL`), or one
//! this test process starts from `.ci/venv` on a free loopback port and stops when it exits.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

/// The endpoint, e.g. `http://127.0.0.1:5000`.
pub fn endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        if let Ok(url) = std::env::var("PROVISIONER_TEST_MOTO_URL") {
            return url;
        }
        let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/venv/bin/moto_server");
        assert!(
            std::path::Path::new(venv).exists(),
            "moto is not installed: run `.ci/run` once (it creates .ci/venv and starts moto), \
             or set PROVISIONER_TEST_MOTO_URL to a running moto server"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        // The shell stops moto when our stdin closes, i.e. when this test process exits.
        let mut child: Child = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "'{venv}' -H 127.0.0.1 -p {port} >/dev/null 2>&1 & pid=$!; echo started; cat >/dev/null; kill $pid"
            ))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start moto");
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        out.read_line(&mut line).expect("moto started");
        // Kept (with its stdin open) for the life of this process; the shell reaps moto.
        static KEEP: OnceLock<std::sync::Mutex<Child>> = OnceLock::new();
        let _ = KEEP.set(std::sync::Mutex::new(child));
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return url;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("moto did not start on {url}");
    })
}

/// An AWS configuration pointing at moto.
pub fn aws_config() -> aws_config::SdkConfig {
    aws_config_at(endpoint())
}

/// An AWS configuration pointing at `url` (moto, or the project's AWS simulator).
pub fn aws_config_at(url: &str) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .endpoint_url(url)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(
            aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "tests"),
        ))
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build()
}

/// A raw S3 client on moto (path-style), for setting buckets up and for tampering.
pub fn client() -> aws_sdk_s3::Client {
    client_at(endpoint())
}

/// A raw S3 client (path-style) on `url`.
pub fn client_at(url: &str) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::from(&aws_config_at(url))
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// A fresh bucket, with versioning unless `versioned` is false.
pub async fn bucket(versioned: bool) -> String {
    bucket_at(endpoint(), versioned).await
}

/// A fresh bucket on `url`, with versioning unless `versioned` is false.
pub async fn bucket_at(url: &str, versioned: bool) -> String {
    let name = format!("ledger-{}", uuid::Uuid::new_v4().simple());
    let c = client_at(url);
    c.create_bucket()
        .bucket(&name)
        .send()
        .await
        .expect("create bucket");
    if versioned {
        c.put_bucket_versioning()
            .bucket(&name)
            .versioning_configuration(
                aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .expect("enable versioning");
    }
    name
}

/// Environment for a `provisioner` child process talking to moto.
pub fn child_env() -> Vec<(&'static str, String)> {
    child_env_at(endpoint())
}

/// Environment for a `provisioner` child process talking to `url`.
pub fn child_env_at(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", url.to_string()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ]
}

/// moto behind the simulators' fault rules: a reverse proxy on a free loopback port that
/// forwards every request to moto unless a rule of the returned [`Faults`] answers it, so
/// a test can feed moto's clients the same bad answers as the simulators'. Stops when the
/// returned server is dropped.
pub async fn behind_faults() -> (provisioner::sim::Running, provisioner::sim::Faults) {
    use axum::extract::{Request, State};
    use axum::response::{IntoResponse, Response};

    async fn forward(State(client): State<reqwest::Client>, request: Request) -> Response {
        let (parts, body) = request.into_parts();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let Ok(body) = axum::body::to_bytes(body, 64 << 20).await else {
            return (axum::http::StatusCode::BAD_REQUEST, "unreadable body").into_response();
        };
        let mut headers = parts.headers.clone();
        headers.remove(axum::http::header::HOST);
        let answer = client
            .request(parts.method.clone(), format!("{}{path}", endpoint()))
            .headers(headers)
            .body(body)
            .send()
            .await;
        let Ok(answer) = answer else {
            return (axum::http::StatusCode::BAD_GATEWAY, "moto did not answer").into_response();
        };
        let status = answer.status();
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

    provisioner::sim::serve_api(forward, reqwest::Client::new())
        .await
        .expect("a loopback port for the moto proxy")
}
