//! Fault injection shared by the simulators: rules set from tests, applied to matching
//! requests before the simulated API sees them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// What to do to a matching request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer after this delay (the request is then served normally).
    Latency(Duration),
    /// Answer with this status, body and headers instead of serving the request.
    Respond {
        /// HTTP status.
        status: u16,
        /// JSON body.
        body: String,
        /// Extra headers.
        headers: Vec<(String, String)>,
    },
    /// Serve the request, then cut the connection before the response is complete.
    Drop,
    /// Serve the request, but send only the first half of the body.
    Truncate,
}

#[derive(Clone, Debug)]
struct Rule {
    method: Option<String>,
    path_prefix: String,
    fault: Fault,
    /// How many more requests it applies to (`None`: all).
    remaining: Option<usize>,
}

/// The fault rules of one simulator. Cheap to clone; all clones share the rules.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    rules: Arc<Mutex<Vec<Rule>>>,
    /// Every request seen, as `METHOD /path?query` with when it arrived, in order.
    log: Arc<Mutex<Vec<(std::time::Instant, String)>>>,
}

impl Faults {
    /// Applies `fault` to the next `times` requests (`None`: every request) whose path starts
    /// with `path_prefix` and, if given, whose method is `method`.
    pub fn inject(
        &self,
        method: Option<&str>,
        path_prefix: &str,
        fault: Fault,
        times: Option<usize>,
    ) {
        self.rules.lock().expect("fault rules").push(Rule {
            method: method.map(str::to_ascii_uppercase),
            path_prefix: path_prefix.to_string(),
            fault,
            remaining: times,
        });
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.rules.lock().expect("fault rules").clear();
    }

    /// The requests seen so far.
    pub fn requests(&self) -> Vec<String> {
        self.log
            .lock()
            .expect("request log")
            .iter()
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// The requests seen so far, with when each arrived.
    pub fn requests_timed(&self) -> Vec<(std::time::Instant, String)> {
        self.log.lock().expect("request log").clone()
    }

    /// Forgets the requests seen so far.
    pub fn reset_requests(&self) {
        self.log.lock().expect("request log").clear();
    }

    fn take(&self, method: &str, path: &str) -> Vec<Fault> {
        let mut rules = self.rules.lock().expect("fault rules");
        let mut out = Vec::new();
        for r in rules.iter_mut() {
            let matches = r.method.as_deref().is_none_or(|m| m == method)
                && path.starts_with(&r.path_prefix)
                && r.remaining != Some(0);
            if matches {
                if let Some(n) = &mut r.remaining {
                    *n -= 1;
                }
                out.push(r.fault.clone());
            }
        }
        rules.retain(|r| r.remaining != Some(0));
        out
    }
}

/// The middleware: log the request, then apply the faults that match it.
pub async fn apply(State(faults): State<Faults>, request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_string();
    let path = request.uri().path().to_string();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or(path.clone(), |p| p.as_str().to_string());
    faults.log.lock().expect("request log").push((
        std::time::Instant::now(),
        format!("{method} {path_and_query}"),
    ));
    let mut cut = None;
    for fault in faults.take(&method, &path) {
        match fault {
            Fault::Latency(d) => tokio::time::sleep(d).await,
            Fault::Respond {
                status,
                body,
                headers,
            } => {
                let mut map = HeaderMap::new();
                map.insert("content-type", HeaderValue::from_static("application/json"));
                for (k, v) in headers {
                    if let (Ok(k), Ok(v)) = (
                        axum::http::HeaderName::from_bytes(k.as_bytes()),
                        HeaderValue::from_str(&v),
                    ) {
                        map.insert(k, v);
                    }
                }
                return (
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    map,
                    body,
                )
                    .into_response();
            }
            Fault::Drop | Fault::Truncate => cut = Some(fault),
        }
    }
    let response = next.run(request).await;
    match cut {
        None => response,
        Some(fault) => {
            let (parts, body) = response.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            let keep = match fault {
                Fault::Truncate => bytes.len() / 2,
                _ => 0,
            };
            let head = bytes.slice(..keep);
            // The declared length stays the full one; the stream then fails, so the
            // connection is cut mid-response, as a dropped connection or a proxy timeout does.
            let stream = futures_util::stream::iter(vec![
                Ok::<_, std::io::Error>(head),
                Err(std::io::Error::other("simulated connection drop")),
            ]);
            let mut response = Response::from_parts(parts, Body::from_stream(stream));
            response.headers_mut().insert(
                "content-length",
                HeaderValue::from_str(&bytes.len().to_string()).expect("a number"),
            );
            response
        }
    }
}
