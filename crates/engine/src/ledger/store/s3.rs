//! The S3 store (`s3://BUCKET/PREFIX`): AWS or any S3-compatible endpoint
//! (`AWS_ENDPOINT_URL`; path-style addressing when the endpoint is an IP address or
//! `localhost`). Conditional writes use `If-None-Match: *` and `If-Match: <etag>`; the
//! bucket's versioning is the history.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::BucketVersioningStatus;
use aws_smithy_runtime_api::http::Response as HttpResponse;

use super::{Cond, Put, VersionMeta};
use crate::ledger::error::LedgerError;

/// A bucket and a key prefix.
#[derive(Clone, Debug)]
pub struct S3Backend {
    client: Client,
    bucket: String,
    /// Empty, or ending in `/`.
    prefix: String,
}

impl S3Backend {
    /// Connects with the standard AWS configuration chain, checks that the bucket keeps
    /// versions, and returns warnings worth showing (default encryption off).
    ///
    /// The ledger may live in another account than the AWS resources provisioner manages
    /// (a management account, as Terraform state buckets often do): variables prefixed
    /// `PROVISIONER_LEDGER_` apply to the ledger alone and win over the standard ones —
    /// `PROVISIONER_LEDGER_ENDPOINT_URL`, `PROVISIONER_LEDGER_REGION`,
    /// `PROVISIONER_LEDGER_PROFILE`, and `PROVISIONER_LEDGER_ACCESS_KEY_ID` with
    /// `PROVISIONER_LEDGER_SECRET_ACCESS_KEY` (and `PROVISIONER_LEDGER_SESSION_TOKEN`).
    pub async fn open(bucket: &str, prefix: &str) -> Result<(Self, Vec<String>), LedgerError> {
        let var = |name: &str| {
            std::env::var(format!("PROVISIONER_LEDGER_{name}"))
                .ok()
                .filter(|v| !v.is_empty())
        };
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .timeout_config(sdk_timeouts());
        if let Some(url) = var("ENDPOINT_URL") {
            loader = loader.endpoint_url(url);
        }
        if let Some(region) = var("REGION") {
            loader = loader.region(aws_config::Region::new(region));
        }
        if let Some(profile) = var("PROFILE") {
            loader = loader.profile_name(profile);
        }
        match (var("ACCESS_KEY_ID"), var("SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => {
                loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
                    id,
                    secret,
                    var("SESSION_TOKEN"),
                    None,
                    "PROVISIONER_LEDGER_ACCESS_KEY_ID",
                ));
            }
            (None, None) => {}
            _ => {
                return Err(LedgerError::S3 {
                    location: format!("s3://{bucket}"),
                    message: "set both PROVISIONER_LEDGER_ACCESS_KEY_ID and PROVISIONER_LEDGER_SECRET_ACCESS_KEY, or neither".into(),
                });
            }
        }
        let config = loader.load().await;
        Self::open_with(&config, bucket, prefix).await
    }

    /// As [`S3Backend::open`], with an explicit AWS configuration.
    pub async fn open_with(
        config: &aws_config::SdkConfig,
        bucket: &str,
        prefix: &str,
    ) -> Result<(Self, Vec<String>), LedgerError> {
        if config.region().is_none() {
            return Err(LedgerError::S3 {
                location: format!("s3://{bucket}"),
                message: "no AWS region: set AWS_REGION (and credentials through the standard AWS chain), or use a local ledger with --ledger file://state".into(),
            });
        }
        let path_style = config.endpoint_url().is_some_and(needs_path_style);
        let s3_config = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(path_style)
            .build();
        let prefix = prefix.trim_matches('/');
        let backend = S3Backend {
            client: Client::from_conf(s3_config),
            bucket: bucket.to_string(),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
        };
        let enabled = match backend
            .client
            .get_bucket_versioning()
            .bucket(bucket)
            .send()
            .await
        {
            Ok(out) => out.status() == Some(&BucketVersioningStatus::Enabled),
            // Some S3-compatible servers (moto 5.2) answer 200 with a differently named XML
            // root, which the SDK refuses to parse; the answer itself is still there.
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 200) => e
                .raw_response()
                .and_then(|r| r.body().bytes())
                .is_some_and(|b| String::from_utf8_lossy(b).contains("<Status>Enabled</Status>")),
            Err(e) => {
                let missing = e.raw_response().is_some_and(|r| r.status().as_u16() == 404);
                let mut error = backend.error(&format!("s3://{bucket}"), e);
                if missing && let LedgerError::S3 { message, .. } = &mut error {
                    message.push_str(
                        "; the ledger bucket does not exist: `provisioner init` creates it (versioned, encrypted, private)",
                    );
                }
                return Err(error);
            }
        };
        if !enabled {
            return Err(LedgerError::VersioningOff {
                bucket: bucket.to_string(),
            });
        }
        let mut warnings = Vec::new();
        let encrypted = match backend
            .client
            .get_bucket_encryption()
            .bucket(bucket)
            .send()
            .await
        {
            Ok(out) => out
                .server_side_encryption_configuration()
                .is_some_and(|c| !c.rules().is_empty()),
            // As above: a 200 the SDK could not parse still says what it says.
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 200) => e
                .raw_response()
                .and_then(|r| r.body().bytes())
                .is_some_and(|b| String::from_utf8_lossy(b).contains("<SSEAlgorithm>")),
            Err(_) => false,
        };
        match encrypted {
            true => {}
            false => warnings.push(format!(
                "bucket `{bucket}` has no default encryption: the ledger holds no secrets, but cloud ids and settings are worth encrypting at rest (`aws.s3_bucket` with `encryption`)"
            )),
        }
        Ok((backend, warnings))
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    pub(super) fn location(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.key(key))
    }

    fn error<E, R>(&self, location: &str, e: SdkError<E, R>) -> LedgerError
    where
        E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
        R: std::fmt::Debug + 'static,
    {
        LedgerError::S3 {
            location: location.to_string(),
            message: match e.as_service_error() {
                Some(s) if s.code().is_some() => format!(
                    "{}: {}",
                    s.code().unwrap_or("error"),
                    s.message().unwrap_or("no message")
                ),
                _ => {
                    let text = crate::errors::chain(&e);
                    if text.contains("credential") {
                        format!(
                            "{text}; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or use a local ledger with --ledger file://state"
                        )
                    } else {
                        text
                    }
                }
            },
        }
    }

    pub(super) async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, LedgerError> {
        Ok(self
            .get_versioned(key)
            .await?
            .map(|(bytes, tag, _)| (bytes, tag)))
    }

    /// The object with its tag and version id.
    pub(super) async fn get_versioned(
        &self,
        key: &str,
    ) -> Result<Option<(Vec<u8>, String, Option<String>)>, LedgerError> {
        let location = self.location(key);
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .send()
            .await
        {
            Ok(out) => {
                let tag = out.e_tag().unwrap_or_default().to_string();
                let version = out.version_id().map(str::to_string);
                let bytes = out.body.collect().await.map_err(|e| LedgerError::S3 {
                    location: location.clone(),
                    message: format!("reading the body: {e}"),
                })?;
                Ok(Some((bytes.to_vec(), tag, version)))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(self.error(&location, e)),
        }
    }

    pub(super) async fn put(
        &self,
        key: &str,
        body: &[u8],
        cond: Cond<'_>,
    ) -> Result<Put, LedgerError> {
        let location = self.location(key);
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .content_type("application/json")
            .body(ByteStream::from(body.to_vec()));
        request = match cond {
            Cond::Absent => request.if_none_match("*"),
            Cond::Matches(tag) => request.if_match(tag),
        };
        match request.send().await {
            Ok(out) => Ok(Put {
                tag: out.e_tag().unwrap_or_default().to_string(),
                version_id: out.version_id().map(str::to_string),
            }),
            Err(e) if lost_race(&e) => Err(LedgerError::Conflict { location }),
            Err(e) => Err(self.error(&location, e)),
        }
    }

    pub(super) async fn delete(&self, key: &str, tag: &str) -> Result<(), LedgerError> {
        let location = self.location(key);
        // Check first, then delete conditionally: S3 honours `If-Match` on DeleteObject; the
        // read makes a store that ignores it fail closed in all but a narrow window.
        match self.get(key).await? {
            Some((_, current)) if current == tag => {}
            _ => return Err(LedgerError::Conflict { location }),
        }
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .if_match(tag)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if lost_race(&e) => Err(LedgerError::Conflict { location }),
            Err(e) => Err(self.error(&location, e)),
        }
    }

    pub(super) async fn versions(&self, key: &str) -> Result<Vec<VersionMeta>, LedgerError> {
        let full = self.key(key);
        let location = self.location(key);
        let mut out = Vec::new();
        let mut key_marker: Option<String> = None;
        let mut version_marker: Option<String> = None;
        loop {
            let page = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(&full)
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
                .map_err(|e| self.error(&location, e))?;
            for v in page.versions() {
                if v.key() != Some(full.as_str()) {
                    continue;
                }
                out.push((
                    v.last_modified().map(|t| t.secs()).unwrap_or_default(),
                    VersionMeta {
                        id: v.version_id().unwrap_or_default().to_string(),
                        stored_at: v
                            .last_modified()
                            .and_then(|t| {
                                t.fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime).ok()
                            })
                            .unwrap_or_default(),
                        latest: v.is_latest().unwrap_or(false),
                    },
                ));
            }
            if page.is_truncated() == Some(true) {
                key_marker = page.next_key_marker().map(str::to_string);
                version_marker = page.next_version_id_marker().map(str::to_string);
                if key_marker.is_none() && version_marker.is_none() {
                    break;
                }
            } else {
                break;
            }
        }
        // Newest first; S3 lists a key's versions newest first already, keep that order
        // for equal times.
        out.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.latest.cmp(&a.1.latest)));
        Ok(out.into_iter().map(|(_, v)| v).collect())
    }

    pub(super) async fn get_version(
        &self,
        key: &str,
        id: &str,
    ) -> Result<Option<Vec<u8>>, LedgerError> {
        let location = format!("{} version {id}", self.location(key));
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .version_id(id)
            .send()
            .await
        {
            Ok(out) => {
                let bytes = out.body.collect().await.map_err(|e| LedgerError::S3 {
                    location: location.clone(),
                    message: format!("reading the body: {e}"),
                })?;
                Ok(Some(bytes.to_vec()))
            }
            Err(e)
                if e.as_service_error().is_some_and(|s| s.is_no_such_key())
                    || matches!(
                        e.raw_response().map(|r| r.status().as_u16()),
                        Some(400 | 404)
                    ) =>
            {
                Ok(None)
            }
            Err(e) => Err(self.error(&location, e)),
        }
    }

    pub(super) async fn list(&self, prefix: &str) -> Result<Vec<String>, LedgerError> {
        let full = self.key(prefix);
        let location = self.location(prefix);
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&full)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| self.error(&location, e))?;
            for o in page.contents() {
                if let Some(k) = o.key().and_then(|k| k.strip_prefix(&self.prefix)) {
                    out.push(k.to_string());
                }
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }
}

/// 412 Precondition Failed, 409 ConditionalRequestConflict, or 404 on `If-Match` of a key
/// that is gone: another writer got there first.
fn lost_race<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e.as_service_error().and_then(|s| s.code());
    matches!(status, Some(412 | 409))
        || matches!(
            code,
            Some("PreconditionFailed" | "ConditionalRequestConflict" | "NoSuchKey")
        )
}

/// Deadlines for AWS SDK calls (the ledger's and the providers'): a connection in 10
/// seconds, an attempt in 20, a whole call with its retries in 45 — under the 60-second
/// lease lifetime, so a hung endpoint fails a call instead of stalling a pass.
pub fn sdk_timeouts() -> aws_config::timeout::TimeoutConfig {
    use std::time::Duration;
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(20))
        .operation_attempt_timeout(Duration::from_secs(20))
        .operation_timeout(Duration::from_secs(45))
        .build()
}

/// Path-style for endpoints S3 virtual hosts cannot work with: IP addresses and localhost.
pub fn needs_path_style(endpoint: &str) -> bool {
    let host = endpoint
        .split("://")
        .nth(1)
        .unwrap_or(endpoint)
        .split(['/', '?'])
        .next()
        .unwrap_or("");
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let bare = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    bare == "localhost" || bare.parse::<std::net::IpAddr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::needs_path_style;

    #[test]
    fn ip_and_localhost_endpoints_use_path_style() {
        assert!(needs_path_style("http://127.0.0.1:5000"));
        assert!(needs_path_style("http://localhost:9000/"));
        assert!(needs_path_style("http://[::1]:9000"));
        assert!(!needs_path_style("https://s3.eu-west-1.amazonaws.com"));
        assert!(!needs_path_style("https://nyc3.digitaloceanspaces.com"));
    }
}
