//! The DigitalOcean API client: bearer auth, pagination, typed errors, and a rate-limit
//! discipline that keeps a daemon well inside the account's budget instead of discovering it
//! through 429s.
//!
//! - A client-side budget: never more than `per_minute` requests in any 60 seconds (the API
//!   allows 250), and, as the server's `ratelimit-remaining` falls below a tenth of the
//!   hourly limit, requests are spread evenly until `ratelimit-reset`.
//! - On 429: wait for `retry-after`, else until `ratelimit-reset`, then retry; the wait
//!   applies to every request of this client, not just the one that was refused.
//! - 5xx and transport errors are retried with capped, jittered exponential backoff
//!   (backon) — for requests that are safe to repeat. A POST that failed in a way that may
//!   have created the object is returned as [`DoError::Ambiguous`], so the caller looks the
//!   object up by name before trying again and never makes a duplicate.

use crate::desired::catalog::DoCatalogs;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use backon::BackoffBuilder;
use reqwest::Method;
use serde_json::Value;

/// How to reach the API.
#[derive(Clone)]
pub struct ApiConfig {
    /// `https://api.digitalocean.com` (or a simulator).
    pub base_url: String,
    /// The API token (never printed).
    pub token: String,
    /// Client-side cap on requests per `window` (the API allows 250 a minute).
    pub per_minute: u32,
    /// The window `per_minute` applies to: a minute, shorter only in tests.
    pub window: Duration,
    /// The window of the CDN endpoints' own limit (5 calls): ten seconds, shorter only in
    /// tests.
    pub cdn_window: Duration,
    /// Connection timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout.
    pub request_timeout: Duration,
    /// Retries after the first attempt.
    pub max_retries: usize,
    /// Smallest backoff delay.
    pub min_backoff: Duration,
    /// Largest backoff delay (and longest honoured `retry-after`).
    pub max_backoff: Duration,
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("base_url", &self.base_url)
            .field("token", &"(sensitive)")
            .field("per_minute", &self.per_minute)
            .finish_non_exhaustive()
    }
}

impl ApiConfig {
    /// From the environment: `DIGITALOCEAN_TOKEN` (or `DIGITALOCEAN_ACCESS_TOKEN`, as doctl
    /// and Terraform accept) and `DIGITALOCEAN_API_URL`.
    pub fn from_env(per_minute: u32) -> Result<ApiConfig, String> {
        let token = std::env::var("DIGITALOCEAN_TOKEN")
            .or_else(|_| std::env::var("DIGITALOCEAN_ACCESS_TOKEN"))
            .map_err(|_| {
                "set DIGITALOCEAN_TOKEN (or DIGITALOCEAN_ACCESS_TOKEN) to a DigitalOcean API token"
                    .to_string()
            })?;
        let base_url = std::env::var("DIGITALOCEAN_API_URL")
            .unwrap_or_else(|_| "https://api.digitalocean.com".into());
        Ok(ApiConfig::new(base_url, token, per_minute))
    }

    /// A configuration with the default timeouts and retries.
    pub fn new(base_url: impl Into<String>, token: impl Into<String>, per_minute: u32) -> Self {
        ApiConfig {
            base_url: base_url.into().trim_end_matches('/').to_string(),
            token: token.into(),
            per_minute: per_minute.clamp(1, 250),
            window: Duration::from_secs(60),
            cdn_window: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            // Under the 60-second lease lifetime: a hung API fails a call, not a pass.
            request_timeout: Duration::from_secs(30),
            max_retries: 6,
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// What went wrong with a request.
#[derive(Debug, thiserror::Error)]
pub enum DoError {
    /// The API answered with an error body.
    #[error("DigitalOcean API {status} {id}: {message}{}", request_id.as_deref().map(|r| format!(" (request {r})")).unwrap_or_default())]
    Api {
        /// HTTP status.
        status: u16,
        /// The error's `id` (`not_found`, `unprocessable_entity`, ...).
        id: String,
        /// Its message.
        message: String,
        /// `request_id`, or the `x-request-id` header.
        request_id: Option<String>,
        /// Whether trying again later can help (429, 5xx).
        retryable: bool,
    },
    /// The request may or may not have taken effect (a create that timed out or got a 5xx):
    /// look the object up before trying again.
    #[error("DigitalOcean API: {method} {path} may or may not have taken effect: {cause}")]
    Ambiguous {
        /// Method.
        method: String,
        /// Path.
        path: String,
        /// What happened.
        cause: String,
    },
    /// A success status whose body is not the answer the endpoint documents (not JSON, a
    /// wrong content type, a missing or mistyped list): not believed, so a list is never
    /// taken as empty because it could not be read.
    #[error("DigitalOcean API: GET {path} answered {status} with {what}: not believed")]
    Malformed {
        /// Path and query.
        path: String,
        /// HTTP status.
        status: u16,
        /// What is wrong with the body (never the body itself).
        what: String,
    },
    /// No usable answer after the retries.
    #[error("DigitalOcean API: {method} {path} failed: {cause}")]
    Transport {
        /// Method.
        method: String,
        /// Path.
        path: String,
        /// What happened.
        cause: String,
    },
}

impl DoError {
    /// True for a 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, DoError::Api { status: 404, .. })
    }

    /// Whether trying again later can help.
    pub fn retryable(&self) -> bool {
        match self {
            DoError::Api { retryable, .. } => *retryable,
            DoError::Ambiguous { .. } | DoError::Transport { .. } | DoError::Malformed { .. } => {
                true
            }
        }
    }
}

/// A successful answer.
#[derive(Clone, Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The JSON body (`Null` when empty or not JSON).
    pub body: Value,
    /// The raw text (for YAML answers such as the kubeconfig).
    pub text: String,
    /// The `content-type` header, if any.
    pub content_type: Option<String>,
}

#[derive(Debug)]
struct Budget {
    sent: VecDeque<Instant>,
    /// CDN endpoint calls: DigitalOcean allows 5 per 10 seconds on `/v2/cdn/endpoints*`.
    cdn_sent: VecDeque<Instant>,
    blocked_until: Option<Instant>,
    server_limit: Option<u64>,
    server_remaining: Option<u64>,
    server_reset: Option<u64>,
    last_sent: Option<Instant>,
}

/// Counters for metrics and tests.
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests put on the wire.
    pub requests: AtomicU64,
    /// Of which were retries.
    pub retries: AtomicU64,
    /// 429 answers received.
    pub rate_limited: AtomicU64,
    /// Answers by status class.
    pub classes: crate::providers::RequestClasses,
}

/// The client.
pub struct DoClient {
    config: ApiConfig,
    http: reqwest::Client,
    budget: Mutex<Budget>,
    /// The account's catalogs and when they were read (see [`DoClient::catalogs`]).
    catalogs: tokio::sync::Mutex<Option<(std::time::Instant, std::sync::Arc<DoCatalogs>)>>,
    /// Counters.
    pub stats: Stats,
}

/// Says that a request waits, and for how long: at INFO, or at WARN from 10 seconds on so
/// that a command run by hand shows it (its default level is WARN).
pub(crate) fn say_wait(wait: Duration, why: &str) {
    let seconds = (wait.as_secs_f64() * 1000.0).round() / 1000.0;
    if wait >= Duration::from_secs(10) {
        tracing::warn!(message = why, seconds);
    } else if !wait.is_zero() {
        tracing::info!(message = why, seconds);
    }
}

/// How long the catalogs are believed: regions, sizes and DOKS versions change a few times a
/// year, so a daemon reads them at most once an hour (3 requests of its 5,000).
pub const CATALOG_TTL: Duration = Duration::from_secs(3600);

fn epoch_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

impl DoClient {
    /// A client for `config`.
    pub fn new(config: ApiConfig) -> Result<DoClient, String> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("provisioner/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        Ok(DoClient {
            config,
            http,
            budget: Mutex::new(Budget {
                sent: VecDeque::new(),
                cdn_sent: VecDeque::new(),
                blocked_until: None,
                server_limit: None,
                server_remaining: None,
                server_reset: None,
                last_sent: None,
            }),
            catalogs: tokio::sync::Mutex::new(None),
            stats: Stats::default(),
        })
    }

    /// The account's catalogs: `GET /v2/regions` and `GET /v2/sizes` (paginated) and
    /// `GET /v2/kubernetes/options` (API v2 reference; `regions_list`, `sizes_list`,
    /// `kubernetes_list_options`). Read once and kept for [`CATALOG_TTL`], so a pass makes at
    /// most one request per catalog and a daemon one an hour; concurrent callers wait for
    /// the one read. A failed read is not kept: the next pass tries again.
    pub async fn catalogs(&self) -> Result<std::sync::Arc<DoCatalogs>, DoError> {
        let mut cached = self.catalogs.lock().await;
        if let Some((at, c)) = cached.as_ref()
            && at.elapsed() < CATALOG_TTL
        {
            return Ok(c.clone());
        }
        let slugs = |items: Vec<Value>| -> Vec<String> {
            items
                .iter()
                .filter_map(|i| i["slug"].as_str().map(str::to_string))
                .collect()
        };
        let regions = slugs(self.list("/v2/regions", "regions").await?);
        let sizes = slugs(self.list("/v2/sizes", "sizes").await?);
        let reply = self
            .request(Method::GET, "/v2/kubernetes/options", None)
            .await?;
        let Some(versions) = reply.body["options"]["versions"].as_array() else {
            return Err(DoError::Malformed {
                path: "/v2/kubernetes/options".into(),
                status: reply.status,
                what: "no `options.versions` list".into(),
            });
        };
        let versions = slugs(versions.clone());
        let c = std::sync::Arc::new(DoCatalogs {
            regions,
            sizes,
            versions,
        });
        *cached = Some((std::time::Instant::now(), c.clone()));
        Ok(c)
    }

    /// What the server last said remains of the hourly budget.
    pub fn remaining(&self) -> Option<u64> {
        self.budget.lock().expect("budget").server_remaining
    }

    /// Waits until sending one more request keeps within the budget, and records it.
    async fn take_slot(&self, path: &str) {
        let cdn = path.starts_with("/v2/cdn/endpoints");
        loop {
            let wait = {
                let mut b = self.budget.lock().expect("budget");
                let now = Instant::now();
                if cdn {
                    while b
                        .cdn_sent
                        .front()
                        .is_some_and(|t| now.duration_since(*t) >= self.config.cdn_window)
                    {
                        b.cdn_sent.pop_front();
                    }
                }
                let cdn_wait = match (cdn, b.cdn_sent.front()) {
                    (true, Some(oldest)) if b.cdn_sent.len() >= 5 => {
                        (*oldest + self.config.cdn_window).saturating_duration_since(now)
                    }
                    _ => Duration::ZERO,
                };
                while b
                    .sent
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= self.config.window)
                {
                    b.sent.pop_front();
                }
                let mut wait = Duration::ZERO;
                if let Some(until) = b.blocked_until {
                    wait = wait.max(until.saturating_duration_since(now));
                }
                if b.sent.len() >= self.config.per_minute as usize {
                    let oldest = b.sent.front().copied().unwrap_or(now);
                    wait = wait.max((oldest + self.config.window).saturating_duration_since(now));
                }
                // Pacing: with little of the hour left, spread what remains until the reset.
                if let (Some(limit), Some(remaining), Some(reset), Some(last)) = (
                    b.server_limit,
                    b.server_remaining,
                    b.server_reset,
                    b.last_sent,
                ) && remaining < limit / 10
                {
                    let left = reset.saturating_sub(epoch_now()).max(1);
                    let gap = Duration::from_secs_f64(left as f64 / (remaining.max(1)) as f64)
                        .min(self.config.max_backoff);
                    wait = wait.max((last + gap).saturating_duration_since(now));
                }
                wait = wait.max(cdn_wait);
                if wait.is_zero() {
                    if cdn {
                        b.cdn_sent.push_back(now);
                    }
                    b.sent.push_back(now);
                    b.last_sent = Some(now);
                    return;
                }
                wait
            };
            say_wait(
                wait,
                "DigitalOcean request budget spent ([settings.rate_limits]): waiting",
            );
            tokio::time::sleep(wait).await;
        }
    }

    fn note_headers(&self, headers: &reqwest::header::HeaderMap) {
        let num = |k: &str| {
            headers
                .get(k)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let mut b = self.budget.lock().expect("budget");
        if let Some(v) = num("ratelimit-limit") {
            b.server_limit = Some(v);
        }
        if let Some(v) = num("ratelimit-remaining") {
            b.server_remaining = Some(v);
        }
        if let Some(v) = num("ratelimit-reset") {
            b.server_reset = Some(v);
        }
    }

    fn block_for(&self, wait: Duration) {
        let mut b = self.budget.lock().expect("budget");
        let until = Instant::now() + wait;
        if b.blocked_until.is_none_or(|u| u < until) {
            b.blocked_until = Some(until);
        }
    }

    /// One API call, with the budget, retries and error mapping described above.
    pub async fn request(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<&Value>,
    ) -> Result<Reply, DoError> {
        let idempotent = method != Method::POST;
        let mut backoff = backon::ExponentialBuilder::default()
            .with_min_delay(self.config.min_backoff)
            .with_max_delay(self.config.max_backoff)
            .with_max_times(self.config.max_retries)
            .with_jitter()
            .build();
        let url = format!("{}{path_and_query}", self.config.base_url);
        let describe = |cause: String, ambiguous: bool| {
            if ambiguous {
                DoError::Ambiguous {
                    method: method.to_string(),
                    path: path_and_query.to_string(),
                    cause,
                }
            } else {
                DoError::Transport {
                    method: method.to_string(),
                    path: path_and_query.to_string(),
                    cause,
                }
            }
        };
        let mut first = true;
        loop {
            self.take_slot(path_and_query).await;
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            if !first {
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
            }
            first = false;
            let mut req = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(&self.config.token)
                .header("accept", "application/json");
            if let Some(b) = body {
                req = req.json(b);
            }
            let outcome = match req.send().await {
                Ok(resp) => {
                    self.note_headers(resp.headers());
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    match resp.text().await {
                        Ok(text) => Ok((status, headers, text)),
                        Err(e) => Err(format!("reading the answer: {}", crate::errors::chain(&e))),
                    }
                }
                Err(e) => Err(crate::errors::chain(&e)),
            };
            self.stats
                .classes
                .note(outcome.as_ref().ok().map(|(s, _, _)| *s));
            let (status, headers, text) = match outcome {
                Ok(x) => x,
                Err(cause) => {
                    // The request may have landed: repeat it only if that is harmless.
                    match (idempotent, backoff.next()) {
                        (true, Some(delay)) => {
                            tokio::time::sleep(delay).await;
                            continue;
                        }
                        (idempotent, _) => return Err(describe(cause, !idempotent)),
                    }
                }
            };
            if (200..300).contains(&status) {
                let body = serde_json::from_str(&text).unwrap_or(Value::Null);
                let content_type = headers
                    .get(reqwest::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                return Ok(Reply {
                    status,
                    body,
                    text,
                    content_type,
                });
            }
            let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let error = DoError::Api {
                status,
                id: parsed["id"].as_str().unwrap_or("unknown").to_string(),
                message: parsed["message"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| text.chars().take(200).collect()),
                request_id: parsed["request_id"]
                    .as_str()
                    .map(str::to_string)
                    .or_else(|| {
                        headers
                            .get("x-request-id")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string)
                    }),
                retryable: status == 429 || status >= 500,
            };
            if status == 429 {
                self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                let header = |k: &str| {
                    headers
                        .get(k)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                };
                let server_wait = header("retry-after").map(Duration::from_secs).or_else(|| {
                    header("ratelimit-reset")
                        .map(|r| Duration::from_secs(r.saturating_sub(epoch_now()).max(1)))
                });
                // A 429 was not processed: always safe to repeat, POST included.
                match backoff.next() {
                    Some(delay) => {
                        let wait = server_wait.unwrap_or(delay).min(self.config.max_backoff);
                        say_wait(wait, "DigitalOcean answered 429 Too Many Requests: waiting");
                        self.block_for(wait);
                        continue;
                    }
                    None => return Err(error),
                }
            }
            if status >= 500 {
                match (idempotent, backoff.next()) {
                    (true, Some(delay)) => {
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    (false, _) => return Err(describe(error.to_string(), true)),
                    (true, None) => return Err(error),
                }
            }
            return Err(error);
        }
    }

    /// Every item of a list endpoint: `per_page=200`, following `links.pages.next`. Each
    /// page is checked by [`list_page`] before it is believed: an answer that is not the
    /// documented list is an error, never an empty list.
    pub async fn list(&self, path: &str, key: &str) -> Result<Vec<Value>, DoError> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut next = Some(format!("{path}{sep}per_page=200"));
        let mut out = Vec::new();
        while let Some(p) = next.take() {
            let reply = self.request(Method::GET, &p, None).await?;
            let (items, more) = list_page(&reply, key).map_err(|what| DoError::Malformed {
                path: p.clone(),
                status: reply.status,
                what,
            })?;
            out.extend(items.iter().cloned());
            next = more;
        }
        Ok(out)
    }
}

/// The one rule for reading a page of a list, whatever the endpoint: a JSON content type,
/// a JSON object, the list under its documented key as an array of objects, and `links` (if
/// any) with a string `pages.next`. Returns the items and the next page's path; otherwise
/// says what is wrong (never quoting the body, which may hold a secret). The envelope is
/// DigitalOcean's: `{"<key>": [...], "links": {"pages": {"next": URL}}, "meta": {...}}`
/// (API v2 reference, "Links & Pagination"; cloud-apis.md A.1).
pub fn list_page<'r>(
    reply: &'r Reply,
    key: &str,
) -> Result<(&'r Vec<Value>, Option<String>), String> {
    let json_type = reply.content_type.as_deref().is_some_and(|t| {
        let t = t.split(';').next().unwrap_or("").trim();
        t.eq_ignore_ascii_case("application/json")
    });
    if !json_type {
        return Err(format!(
            "content type {:?}, not application/json",
            reply.content_type.as_deref().unwrap_or("(none)")
        ));
    }
    let Some(body) = reply.body.as_object() else {
        return Err(if reply.body.is_null() {
            "a body that is not JSON (or is cut short)".to_string()
        } else {
            "JSON that is not an object".to_string()
        });
    };
    let items = match body.get(key) {
        Some(Value::Array(items)) => items,
        Some(_) => return Err(format!("`{key}` that is not a list")),
        None => return Err(format!("no `{key}` list")),
    };
    if items.iter().any(|i| !i.is_object()) {
        return Err(format!("`{key}` holding something that is not an object"));
    }
    let next = match body.get("links").map(|l| &l["pages"]["next"]) {
        None | Some(Value::Null) => None,
        Some(Value::String(link)) => Some(
            path_of(link).ok_or_else(|| "a `links.pages.next` that is not a URL".to_string())?,
        ),
        Some(_) => return Err("a `links.pages.next` that is not a string".to_string()),
    };
    Ok((items, next))
}

/// The path and query of an absolute link (`https://api.digitalocean.com/v2/…?page=2`), so
/// that pages are fetched from the configured base URL.
fn path_of(link: &str) -> Option<String> {
    let rest = link.split_once("://").map_or(link, |(_, r)| r);
    let i = rest.find('/')?;
    Some(rest[i..].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_become_paths_on_our_base_url() {
        assert_eq!(
            path_of("https://api.digitalocean.com/v2/vpcs?page=2&per_page=200").as_deref(),
            Some("/v2/vpcs?page=2&per_page=200")
        );
        assert_eq!(path_of("nonsense"), None);
    }

    #[test]
    fn the_token_is_never_printed() {
        let c = ApiConfig::new("http://x", "dop_v1_canary", 100);
        assert!(!format!("{c:?}").contains("canary"));
    }
}
