//! The GitHub REST client, on octocrab's HTTP stack: the token and base URL from the
//! environment, `x-ratelimit-*` read on every answer, primary and secondary limits honoured
//! (403/429 with `retry-after`, or `remaining: 0` until `reset`), 5xx and connection errors
//! retried with capped, jittered exponential backoff, conditional GETs with ETags (a `304`
//! costs nothing against the limit), `Link` pagination, and writes serialised per
//! repository with a gap between them, as GitHub's best practices ask.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backon::BackoffBuilder;
use http::header::{ACCEPT, HeaderMap, HeaderName, HeaderValue, IF_NONE_MATCH, USER_AGENT};
use serde_json::Value;

/// The public API.
pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// How the client talks to GitHub.
#[derive(Clone)]
pub struct GhApiConfig {
    /// `GITHUB_API_URL`: `https://api.github.com`, or a GitHub Enterprise Server's
    /// `https://HOST/api/v3`.
    pub base_url: String,
    /// `GITHUB_TOKEN`.
    pub token: String,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Read timeout for one answer.
    pub read_timeout: Duration,
    /// Retries after a 5xx or a connection error.
    pub max_retries: usize,
    /// Smallest backoff.
    pub min_backoff: Duration,
    /// Largest backoff.
    pub max_backoff: Duration,
    /// The longest a request waits for a rate limit to reset before giving up (the pass is
    /// then reported as rate limited, and the kinds as unknown).
    pub max_wait: Duration,
    /// Pause between two writes to one repository (GitHub asks for a second).
    pub write_gap: Duration,
}

impl std::fmt::Debug for GhApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GhApiConfig")
            .field("base_url", &self.base_url)
            .field("token", &"(redacted)")
            .finish_non_exhaustive()
    }
}

impl GhApiConfig {
    /// A configuration with the defaults for `base_url` and `token`.
    pub fn new(base_url: impl Into<String>, token: impl Into<String>) -> Self {
        GhApiConfig {
            base_url: base_url.into().trim_end_matches('/').to_string(),
            token: token.into(),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            max_retries: 4,
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_wait: Duration::from_secs(300),
            write_gap: Duration::from_secs(1),
        }
    }

    /// For the public endpoints (`GET /meta`): `GITHUB_API_URL` (else the default), and
    /// `GITHUB_TOKEN` when it is set (a higher rate limit), else no credentials.
    pub fn public_from_env() -> Result<Self, String> {
        let token = std::env::var("GITHUB_TOKEN").unwrap_or_default();
        let base = std::env::var("GITHUB_API_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| DEFAULT_API_URL.to_string());
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(format!(
                "GITHUB_API_URL is \"{base}\": write a URL such as {DEFAULT_API_URL}"
            ));
        }
        Ok(GhApiConfig::new(base, token))
    }

    /// From `GITHUB_TOKEN` and `GITHUB_API_URL`.
    pub fn from_env() -> Result<Self, String> {
        let token = std::env::var("GITHUB_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .ok_or("no GitHub credentials: set GITHUB_TOKEN")?;
        let base = std::env::var("GITHUB_API_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| DEFAULT_API_URL.to_string());
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(format!(
                "GITHUB_API_URL is \"{base}\": write a URL such as {DEFAULT_API_URL}"
            ));
        }
        Ok(GhApiConfig::new(base, token))
    }
}

/// A failed request.
#[derive(Clone, Debug, thiserror::Error)]
pub enum GhError {
    /// GitHub answered with an error.
    #[error("GitHub answered {status} to {method} {path}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Method.
        method: String,
        /// Path (never a query with a value in it).
        path: String,
        /// GitHub's `message`.
        message: String,
    },
    /// A primary or secondary rate limit that does not reset soon enough.
    #[error(
        "GitHub rate limit reached on {method} {path}: it resets in {}s, longer than the {}s this pass waits",
        wait.as_secs(),
        max_wait.as_secs()
    )]
    RateLimited {
        /// Method.
        method: String,
        /// Path.
        path: String,
        /// How long until GitHub would answer again.
        wait: Duration,
        /// How long the client was willing to wait.
        max_wait: Duration,
    },
    /// A success status whose body is not the answer the endpoint documents (not JSON, a
    /// wrong content type, a missing or mistyped list): not believed, so a list is never
    /// taken as empty because it could not be read.
    #[error("GitHub answered GET {path} with {what}: not believed")]
    Malformed {
        /// Path (never a query with a value in it).
        path: String,
        /// What is wrong with the body (never the body itself).
        what: String,
    },
    /// The request did not complete (connection refused, reset, timeout).
    #[error("{method} {path} did not complete: {cause}")]
    Transport {
        /// Method.
        method: String,
        /// Path.
        path: String,
        /// What happened.
        cause: String,
    },
}

impl GhError {
    /// True for a 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, GhError::Api { status: 404, .. })
    }

    /// Whether a later pass may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            GhError::Api { status, .. } => *status >= 500 || *status == 429,
            GhError::RateLimited { .. } | GhError::Transport { .. } | GhError::Malformed { .. } => {
                true
            }
        }
    }

    /// The HTTP status, when GitHub answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            GhError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl From<GhError> for crate::providers::ProviderError {
    fn from(e: GhError) -> Self {
        use crate::providers::Failure;
        let failure = match &e {
            GhError::Api { status, .. } => Failure::of_status(*status, None),
            GhError::RateLimited { wait, .. } => Failure::RateLimited {
                retry_after: Some(*wait),
            },
            GhError::Malformed { .. } => Failure::Transient,
            // A read that did not complete can be made again; a write may have landed.
            GhError::Transport { method, .. } if method == "GET" => Failure::Transient,
            GhError::Transport { .. } => Failure::Ambiguous,
        };
        crate::providers::ProviderError {
            message: e.to_string(),
            failure,
            source: None,
        }
    }
}

/// Counters for metrics and tests.
#[derive(Debug, Default)]
pub struct GhStats {
    /// Requests put on the wire.
    pub requests: AtomicU64,
    /// Of which answered `304 Not Modified` (free).
    pub not_modified: AtomicU64,
    /// Rate-limit answers (403/429) received.
    pub rate_limited: AtomicU64,
    /// Retries after 5xx or connection errors.
    pub retries: AtomicU64,
    /// Answers by status class.
    pub classes: crate::providers::RequestClasses,
}

/// What GitHub last said about the primary limit.
#[derive(Clone, Copy, Debug, Default)]
struct Budget {
    remaining: Option<u64>,
    reset_epoch: Option<u64>,
}

/// One answer: status, headers, JSON body (`Null` when empty).
#[derive(Debug)]
pub struct Answer {
    /// HTTP status (a `304` is turned into the cached `200`).
    pub status: u16,
    /// The body.
    pub body: Value,
    /// The `Link` header's `rel="next"`, as a path and query.
    pub next: Option<String>,
    /// True when the body came as JSON under a JSON content type (`application/json` or
    /// `application/…+json`); a cached body always did.
    pub json: bool,
}

/// The client.
pub struct GhClient {
    config: GhApiConfig,
    octo: octocrab::Octocrab,
    /// Conditional-GET cache: path and query → (ETag, body); only JSON bodies are kept.
    etags: Mutex<HashMap<String, (String, Value)>>,
    budget: Mutex<Budget>,
    /// One lock per repository: writes to one repository go one at a time.
    repo_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Counters.
    pub stats: GhStats,
}

impl std::fmt::Debug for GhClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GhClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl GhClient {
    /// A client for this configuration.
    pub fn new(config: GhApiConfig) -> Result<Self, String> {
        let version = concat!("provisioner/", env!("CARGO_PKG_VERSION"));
        let mut builder = octocrab::Octocrab::builder()
            .base_uri(config.base_url.as_str())
            .map_err(|e| format!("GITHUB_API_URL \"{}\": {e}", config.base_url))?;
        // No token: anonymous requests, for the public endpoints (`GET /meta`).
        if !config.token.is_empty() {
            builder = builder.personal_token(config.token.clone());
        }
        let octo = builder
            .add_header(USER_AGENT, version.to_string())
            .set_connect_timeout(Some(config.connect_timeout))
            .set_read_timeout(Some(config.read_timeout))
            .set_write_timeout(Some(config.read_timeout))
            .build()
            .map_err(|e| format!("building the GitHub client: {e}"))?;
        Ok(GhClient {
            config,
            octo,
            etags: Mutex::new(HashMap::new()),
            budget: Mutex::new(Budget::default()),
            repo_locks: Mutex::new(HashMap::new()),
            stats: GhStats::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &GhApiConfig {
        &self.config
    }

    /// Requests left in the current primary window, as GitHub last said.
    pub fn remaining(&self) -> Option<u64> {
        self.budget.lock().map(|b| b.remaining).unwrap_or(None)
    }

    /// Holds the repository's write lock; writes then wait `write_gap` after the previous
    /// one in the same repository.
    pub async fn lock_repository(&self, repository: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.repo_locks.lock().expect("repository locks");
            locks
                .entry(repository.to_ascii_lowercase())
                .or_default()
                .clone()
        };
        lock.lock_owned().await
    }

    /// A GET, conditional on the cached ETag; a `304` returns the cached body.
    pub async fn get(&self, path: &str) -> Result<Answer, GhError> {
        self.send(http::Method::GET, path, None).await
    }

    /// Every item of a paginated list (`key` is the envelope's array, or `None` for a bare
    /// array), following `Link: rel="next"`.
    pub async fn list(&self, path: &str, key: Option<&str>) -> Result<Vec<Value>, GhError> {
        let mut out = Vec::new();
        let mut next = Some(path.to_string());
        let mut pages = 0;
        while let Some(p) = next.take() {
            pages += 1;
            if pages > 1000 {
                break;
            }
            let answer = self.get(&p).await?;
            let items = list_page(&answer, key).map_err(|what| {
                // Not believed, so not kept: the next pass asks again in full.
                if let Ok(mut cache) = self.etags.lock() {
                    cache.remove(&p);
                }
                GhError::Malformed {
                    path: p.split('?').next().unwrap_or(&p).to_string(),
                    what,
                }
            })?;
            out.extend(items.iter().cloned());
            next = answer.next;
        }
        Ok(out)
    }

    /// A write (`PUT`, `POST`, `PATCH`, `DELETE`) with a JSON body.
    pub async fn write(
        &self,
        method: http::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, GhError> {
        self.send(method, path, body).await
    }

    async fn send(
        &self,
        method: http::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, GhError> {
        let mut backoff = backon::ExponentialBuilder::default()
            .with_min_delay(self.config.min_backoff)
            .with_max_delay(self.config.max_backoff)
            .with_max_times(self.config.max_retries)
            .with_jitter()
            .build();
        let bare_path = path.split('?').next().unwrap_or(path).to_string();
        let transport = |cause: String| GhError::Transport {
            method: method.to_string(),
            path: bare_path.clone(),
            cause,
        };
        let limited = |wait: Duration| GhError::RateLimited {
            method: method.to_string(),
            path: bare_path.clone(),
            wait,
            max_wait: self.config.max_wait,
        };
        let mut secondary_waits = 0u32;
        loop {
            // The primary window is spent: wait for its reset (or give up) before sending.
            if let Some(wait) = self.exhausted_for() {
                if wait > self.config.max_wait {
                    return Err(limited(wait));
                }
                crate::providers::digitalocean::client::say_wait(
                    wait,
                    "GitHub rate limit spent: waiting for its reset",
                );
                tokio::time::sleep(wait).await;
            }
            let url = format!("{}{path}", self.config.base_url);
            let cached = (method == http::Method::GET)
                .then(|| self.etags.lock().ok()?.get(path).cloned())
                .flatten();
            let mut headers = HeaderMap::new();
            headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
            headers.insert(
                HeaderName::from_static("x-github-api-version"),
                HeaderValue::from_static("2022-11-28"),
            );
            if let Some((etag, _)) = &cached
                && let Ok(v) = HeaderValue::from_str(etag)
            {
                headers.insert(IF_NONE_MATCH, v);
            }
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let sent = self.execute(&method, &url, headers, body).await;
            self.stats
                .classes
                .note(sent.as_ref().ok().map(|(s, _, _)| *s));
            let (status, headers, text) = match sent {
                Ok(r) => r,
                Err(cause) => match backoff.next() {
                    Some(d) => {
                        self.stats.retries.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(d).await;
                        continue;
                    }
                    None => return Err(transport(cause)),
                },
            };
            self.note_budget(&headers);
            let next = next_link(&headers);
            if status == 304
                && let Some((_, body)) = cached
            {
                self.stats.not_modified.fetch_add(1, Ordering::Relaxed);
                return Ok(Answer {
                    status: 200,
                    body,
                    next,
                    json: true,
                });
            }
            let json_type = headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(is_json_type);
            let parsed = serde_json::from_str::<Value>(&text).ok();
            let json = json_type && parsed.is_some();
            let body: Value = if text.trim().is_empty() {
                Value::Null
            } else {
                parsed.unwrap_or(Value::String(text))
            };
            if (200..300).contains(&status) {
                if method == http::Method::GET
                    && json
                    && let Some(etag) = headers.get("etag").and_then(|v| v.to_str().ok())
                    && let Ok(mut cache) = self.etags.lock()
                {
                    cache.insert(path.to_string(), (etag.to_string(), body.clone()));
                }
                return Ok(Answer {
                    status,
                    body,
                    next,
                    json,
                });
            }
            let message = body
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("(no message)")
                .to_string();
            if let Some(wait) = rate_limit_wait(status, &headers, &message, secondary_waits) {
                self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                secondary_waits += 1;
                if wait > self.config.max_wait || secondary_waits > 8 {
                    return Err(limited(wait));
                }
                tracing::warn!(
                    method = %method,
                    path = %bare_path,
                    wait_seconds = (wait.as_secs_f64() * 1000.0).round() / 1000.0,
                    "GitHub rate limit: waiting"
                );
                tokio::time::sleep(wait).await;
                continue;
            }
            if status >= 500
                && let Some(d) = backoff.next()
            {
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(d).await;
                continue;
            }
            return Err(GhError::Api {
                status,
                method: method.to_string(),
                path: bare_path,
                message,
            });
        }
    }

    async fn execute(
        &self,
        method: &http::Method,
        url: &str,
        headers: HeaderMap,
        body: Option<&Value>,
    ) -> Result<(u16, HeaderMap, String), String> {
        let mut builder = http::Request::builder().method(method.clone()).uri(url);
        for (k, v) in &headers {
            builder = builder.header(k, v);
        }
        let request = self
            .octo
            .build_request(builder, body)
            .map_err(|e| e.to_string())?;
        let response = self
            .octo
            .execute(request)
            .await
            .map_err(|e| errors_chain(&e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = self
            .octo
            .body_to_string(response)
            .await
            .map_err(|e| errors_chain(&e))?;
        Ok((status, headers, text))
    }

    fn note_budget(&self, headers: &HeaderMap) {
        let num = |h: &str| {
            headers
                .get(h)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
        };
        if let Ok(mut b) = self.budget.lock() {
            if let Some(r) = num("x-ratelimit-remaining") {
                b.remaining = Some(r);
            }
            if let Some(r) = num("x-ratelimit-reset") {
                b.reset_epoch = Some(r);
            }
        }
    }

    /// How long until the primary window resets, when it is spent.
    fn exhausted_for(&self) -> Option<Duration> {
        let b = *self.budget.lock().ok()?;
        if b.remaining != Some(0) {
            return None;
        }
        let reset = b.reset_epoch?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
        (reset > now).then(|| Duration::from_secs(reset - now + 1))
    }
}

/// For a rate-limit answer, how long to wait: `retry-after` when given; the reset time when
/// the primary limit is spent; at least a minute (doubling) for a secondary limit without
/// either, as GitHub's documentation asks. `None` when the answer is not a rate limit.
/// True for `application/json` and `application/…+json` (GitHub answers
/// `application/json; charset=utf-8`; REST API docs, "Media types").
fn is_json_type(t: &str) -> bool {
    let t = t
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    t == "application/json" || (t.starts_with("application/") && t.ends_with("+json"))
}

/// The one rule for reading a page of a list, whatever the endpoint: JSON under a JSON
/// content type, the list under its documented key (`{"total_count": N, "secrets": [...]}`,
/// `{"variables": [...]}`) or a bare array (`GET /repos/{o}/{r}/keys`), every item an
/// object (GitHub REST API reference for each endpoint). Otherwise says what is wrong,
/// never quoting the body.
pub fn list_page<'a>(answer: &'a Answer, key: Option<&str>) -> Result<&'a Vec<Value>, String> {
    if !answer.json {
        return Err(if answer.body.is_null() {
            "an empty body".to_string()
        } else {
            "a body that is not JSON under a JSON content type (or is cut short)".to_string()
        });
    }
    let items = match key {
        Some(k) => match answer.body.as_object().map(|o| o.get(k)) {
            None => return Err("JSON that is not an object".to_string()),
            Some(None) => return Err(format!("no `{k}` list")),
            Some(Some(Value::Array(items))) => items,
            Some(Some(_)) => return Err(format!("`{k}` that is not a list")),
        },
        None => match &answer.body {
            Value::Array(items) => items,
            _ => return Err("JSON that is not a list".to_string()),
        },
    };
    if items.iter().any(|i| !i.is_object()) {
        return Err("a list holding something that is not an object".to_string());
    }
    Ok(items)
}

fn rate_limit_wait(
    status: u16,
    headers: &HeaderMap,
    message: &str,
    previous: u32,
) -> Option<Duration> {
    if status != 403 && status != 429 {
        return None;
    }
    let header = |h: &str| {
        headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    if let Some(s) = header("retry-after") {
        return Some(Duration::from_secs(s));
    }
    if header("x-ratelimit-remaining") == Some(0) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let reset = header("x-ratelimit-reset").unwrap_or(now + 60);
        return Some(Duration::from_secs(reset.saturating_sub(now) + 1));
    }
    let lower = message.to_ascii_lowercase();
    if status == 429 || lower.contains("secondary rate limit") || lower.contains("abuse") {
        return Some(Duration::from_secs(60u64 << previous.min(4)));
    }
    // A plain 403: permissions, not a limit.
    None
}

/// The `rel="next"` target of a `Link` header, as a path and query (the host GitHub writes
/// there is ignored, so a proxy or GitHub Enterprise base URL keeps working).
fn next_link(headers: &HeaderMap) -> Option<String> {
    let link = headers.get("link")?.to_str().ok()?;
    for part in link.split(',') {
        let (target, params) = part.split_once(';')?;
        if !params.contains("rel=\"next\"") {
            continue;
        }
        let url = target.trim().trim_start_matches('<').trim_end_matches('>');
        let after_scheme = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
        let path = after_scheme
            .find('/')
            .map(|i| &after_scheme[i..])
            .unwrap_or("/");
        // A GitHub Enterprise base URL has a path prefix (`/api/v3`) the client adds itself.
        return Some(path.strip_prefix("/api/v3").unwrap_or(path).to_string());
    }
    None
}

fn errors_chain(e: &(dyn std::error::Error + 'static)) -> String {
    crate::errors::chain(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_link_is_a_path_whatever_the_host() {
        let mut h = HeaderMap::new();
        h.insert(
            "link",
            HeaderValue::from_static(
                "<https://api.github.com/repos/o/r/actions/secrets?per_page=100&page=2>; rel=\"next\", <https://api.github.com/repos/o/r/actions/secrets?per_page=100&page=3>; rel=\"last\"",
            ),
        );
        assert_eq!(
            next_link(&h).as_deref(),
            Some("/repos/o/r/actions/secrets?per_page=100&page=2")
        );
        h.insert(
            "link",
            HeaderValue::from_static(
                "<https://ghe.example.com/api/v3/repos/o/r/keys?page=2>; rel=\"next\"",
            ),
        );
        assert_eq!(next_link(&h).as_deref(), Some("/repos/o/r/keys?page=2"));
        h.insert(
            "link",
            HeaderValue::from_static("<https://api.github.com/x?page=1>; rel=\"prev\""),
        );
        assert_eq!(next_link(&h), None);
    }

    #[test]
    fn rate_limit_answers_are_told_from_permission_errors() {
        let mut h = HeaderMap::new();
        assert_eq!(rate_limit_wait(403, &h, "Resource not accessible", 0), None);
        assert_eq!(
            rate_limit_wait(403, &h, "You have exceeded a secondary rate limit", 0),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            rate_limit_wait(429, &h, "", 2),
            Some(Duration::from_secs(240))
        );
        h.insert("retry-after", HeaderValue::from_static("3"));
        assert_eq!(
            rate_limit_wait(403, &h, "", 0),
            Some(Duration::from_secs(3))
        );
        assert_eq!(rate_limit_wait(404, &h, "", 0), None);
    }
}
