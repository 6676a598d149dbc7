//! A small JSON-over-HTTP client for driving the simulators (directly or through Prism).

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;

/// A base URL, a bearer token and extra headers.
pub struct Api {
    /// Base URL.
    pub base: String,
    /// Bearer token.
    pub token: String,
    /// Sent with every request.
    pub headers: Vec<(&'static str, &'static str)>,
    http: reqwest::Client,
}

impl Api {
    /// A client that sends `Accept: application/json` and `token`.
    pub fn new(base: &str, token: &str) -> Api {
        Api {
            base: base.to_string(),
            token: token.to_string(),
            headers: vec![("accept", "application/json")],
            http: reqwest::Client::new(),
        }
    }

    /// One call; the body parsed as JSON (or kept as a string).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, HeaderMap, Value) {
        self.call_with(method, path, body, None).await
    }

    /// One call, conditional on `etag` when given.
    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        etag: Option<&str>,
    ) -> (u16, HeaderMap, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        for (k, v) in &self.headers {
            req = req.header(*k, *v);
        }
        if let Some(e) = etag {
            req = req.header("if-none-match", e);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("send");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, headers, v)
    }

    /// Calls and insists on `want`; the message names Prism's violations if there were any.
    pub async fn expect(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        want: u16,
    ) -> Value {
        let (status, headers, v) = self.call(method.clone(), path, body).await;
        assert_eq!(
            status,
            want,
            "{method} {path}: {v:#}\nviolations: {:?}",
            headers.get("sl-violations")
        );
        assert!(
            headers.get("sl-violations").is_none(),
            "{method} {path}: {:?}",
            headers.get("sl-violations")
        );
        v
    }
}
