//! Simulators of the cloud APIs provisioner talks to, for tests and `provisioner sandbox`:
//! DigitalOcean API v2 ([`digitalocean`]), GitHub REST ([`github`]), the AWS calls
//! provisioner makes ([`aws`], held to moto by running the AWS suites against both) and the
//! SES v2 calls moto lacks ([`ses`]), the Kubernetes API ([`kubernetes`], held to a real
//! kube-apiserver by a differential test); plus [`fake`], an in-memory cloud of every kind for
//! planner and executor tests. Each simulator is stateful, speaks real HTTP on a loopback
//! port, follows the official API description (the DigitalOcean and GitHub suites check
//! every exchange against it through Prism), and can
//! misbehave on demand through [`Faults`]: latency, 429s with the real rate-limit headers,
//! 5xx, dropped connections, truncated bodies. Out-of-band edits (drift) are methods on
//! each simulator's handle.

pub mod aws;
pub mod digitalocean;
pub mod fake;
pub mod faults;
pub mod flux_operator;
pub mod github;
pub mod kubernetes;
pub mod ses;

use std::net::SocketAddr;

use tokio::sync::oneshot;

pub(crate) use provisioner_core::percent::percent_decode;

pub use faults::{Fault, Faults};

/// A running simulator: its address, and a handle that stops it when dropped.
pub struct Running {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The bound address.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Serves `router` on a free loopback port until the returned handle is dropped.
pub async fn serve(router: axum::Router) -> std::io::Result<Running> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    Ok(Running {
        url: format!("http://{addr}"),
        addr,
        stop: Some(stop),
    })
}

/// Serves one simulated API: every request goes to `handler` (with `state`), after the
/// fault rules; returns the server and its fault controls.
pub async fn serve_api<H, T, S>(handler: H, state: S) -> std::io::Result<(Running, Faults)>
where
    H: axum::handler::Handler<T, S>,
    T: 'static,
    S: Clone + Send + Sync + 'static,
{
    let faults = Faults::default();
    let router = axum::Router::new()
        .fallback(handler)
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            faults.clone(),
            faults::apply,
        ));
    Ok((serve(router).await?, faults))
}

/// A query string's parameters, percent-decoded.
pub(crate) fn parse_query(q: &str) -> std::collections::BTreeMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            // In a query, `+` is a space; in a path it is itself.
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

/// A random id in the style of the API (UUID v4).
pub(crate) fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// RFC 3339 timestamp of now, to the second.
pub(crate) fn now() -> String {
    provisioner_core::ledger::lease::rfc3339(std::time::SystemTime::now())
}

#[cfg(test)]
mod tests {
    #[test]
    fn queries_and_paths_decode() {
        let q = super::parse_query("name=_dmarc.example.com&type=TXT&x=a+b%2Bc");
        assert_eq!(q["name"], "_dmarc.example.com");
        assert_eq!(q["x"], "a b+c");
        assert_eq!(
            super::percent_decode("user+tag%40example.com"),
            "user+tag@example.com"
        );
        assert_eq!(super::percent_decode("100%"), "100%");
    }
}
