//! A stateful simulator of the AWS calls provisioner makes, in AWS's own wire formats so the
//! official SDK clients talk to it unchanged, on one loopback port (`AWS_ENDPOINT_URL`):
//!
//! - S3 (REST XML, path-style): buckets with versioning, encryption, public access block,
//!   lifecycle, CORS, tags and ACL; objects with versions and conditional writes
//!   (`If-Match`/`If-None-Match`, 412 when they fail);
//! - IAM, SNS and STS (the `query` protocol: form-encoded `Action=…`, XML answers), told
//!   apart by the service in the SigV4 credential scope;
//! - Secrets Manager (JSON 1.1, `X-Amz-Target: secretsmanager.<Op>`);
//! - SES v2 (REST JSON under `/v2/email/`) is the [`super::ses`] simulator, joined here.
//!
//! Signatures are not checked (any access key works); the account is `123456789012`. The
//! test suite runs the AWS provider's and the ledger's tests against both moto and this
//! simulator with the same assertions, so the two cannot disagree unnoticed.

mod query;
mod s3;
mod secrets;
pub mod xml;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::{Faults, Running, serve_api};

/// The simulated account.
pub const ACCOUNT: &str = "123456789012";

/// Everything the simulated account holds.
#[derive(Debug, Default)]
pub struct AwsState {
    /// S3 buckets by name.
    pub buckets: BTreeMap<String, s3::Bucket>,
    /// IAM users by name.
    pub users: BTreeMap<String, query::User>,
    /// SNS topics by name.
    pub topics: BTreeMap<String, query::Topic>,
    /// Secrets by name.
    pub secrets: BTreeMap<String, secrets::Secret>,
    /// How long a new secret stays out of `ListSecrets` answers. Secrets Manager's list is
    /// eventually consistent: "ListSecrets … might not reflect changes from the last five
    /// minutes" (Secrets Manager API reference, `ListSecrets`; aws-sdk-go#3975). Zero by
    /// default; `DescribeSecret` and the other reads by id always see the secret.
    pub secrets_list_lag: std::time::Duration,
    counter: u64,
}

impl AwsState {
    fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }
}

pub use query::{Topic, User};
pub use s3::{Bucket, ObjectVersion};
pub use secrets::Secret;

struct Shared {
    region: String,
    state: Mutex<AwsState>,
    ses: super::ses::SesHandle,
}

/// A running AWS simulator.
pub struct AwsSim {
    /// The server (stops when dropped).
    pub running: Running,
    /// Fault injection and the request log.
    pub faults: Faults,
    shared: Arc<Shared>,
}

impl AwsSim {
    /// Starts a simulator for `region` on a free loopback port.
    pub async fn start(region: &str) -> std::io::Result<AwsSim> {
        let shared = Arc::new(Shared {
            region: region.to_string(),
            state: Mutex::new(AwsState::default()),
            ses: super::ses::SesHandle::new(super::ses::SesConfig {
                region: region.to_string(),
                ..super::ses::SesConfig::default()
            }),
        });
        let (running, faults) = serve_api(handle, shared.clone()).await?;
        Ok(AwsSim {
            running,
            faults,
            shared,
        })
    }

    /// `AWS_ENDPOINT_URL`.
    pub fn url(&self) -> &str {
        &self.running.url
    }

    /// Reads or changes the state directly (out-of-band edits).
    pub fn edit<R>(&self, f: impl FnOnce(&mut AwsState) -> R) -> R {
        f(&mut self.shared.state.lock().expect("state"))
    }

    /// The SES v2 part.
    pub fn ses(&self) -> &super::ses::SesHandle {
        &self.shared.ses
    }

    /// Drift: versioning suspended on a bucket by hand.
    pub fn suspend_versioning(&self, bucket: &str) -> bool {
        self.edit(|s| match s.buckets.get_mut(bucket) {
            Some(b) if b.versioning == "Enabled" => {
                b.versioning = "Suspended".into();
                true
            }
            _ => false,
        })
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or("").to_string();
    if path.starts_with("/v2/email") {
        return shared.ses.handle(method, uri, body).await;
    }
    if let Some(target) = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix("secretsmanager."))
    {
        let mut state = shared.state.lock().expect("state");
        return secrets::handle(&shared.region, &mut state, target, &body);
    }
    let service = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').nth(3))
        .unwrap_or("")
        .to_string();
    let form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if method == Method::POST && path == "/" && form && service != "s3" {
        let params = query::parse_form(&String::from_utf8_lossy(&body));
        let mut state = shared.state.lock().expect("state");
        return query::handle(&shared.region, &mut state, &service, &params);
    }
    let mut state = shared.state.lock().expect("state");
    s3::handle(
        &shared.region,
        &mut state,
        &method,
        &path,
        &query,
        &headers,
        body,
    )
}

/// An XML answer.
pub(crate) fn xml_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            ("content-type", "application/xml".to_string()),
            ("x-amzn-requestid", uuid::Uuid::new_v4().to_string()),
        ],
        body,
    )
        .into_response()
}

/// Now, as AWS writes times in XML (`2026-11-25T21:00:00Z`).
pub(crate) fn now_iso() -> String {
    provisioner_core::ledger::lease::rfc3339(std::time::SystemTime::now())
}

/// Now, as epoch seconds (JSON protocols).
pub(crate) fn now_epoch() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
