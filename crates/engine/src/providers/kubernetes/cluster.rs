//! Reaching a cluster: where its kubeconfig comes from (an environment variable, a file, or
//! a DigitalOcean cluster's `kubeconfig` output), the kube-rs client made from it (held in
//! memory only, one per kubeconfig), the API discovery of each cluster, and the layer that
//! counts what the clients put on the wire.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::Discovery;
use serde_json::{Value, json};

use super::{kube_error, secret_text};
use crate::desired::Address;
use crate::desired::values::SecretSource;
use crate::providers::{Failure, ProviderError, RequestClasses, SecretValue};

/// What the provider's clients have put on the wire: requests (a request kube-rs retries on
/// a 429, 503 or 504 counts once) and answers by status class.
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests sent.
    pub requests: AtomicU64,
    /// Answers by status class.
    pub classes: RequestClasses,
}

/// The tower layer that counts every request a kube client sends, and its answer's status
/// class, into [`Stats`].
#[derive(Clone)]
pub struct CountLayer(pub Arc<Stats>);

impl<S> tower::Layer<S> for CountLayer {
    type Service = Counted<S>;
    fn layer(&self, inner: S) -> Counted<S> {
        Counted {
            inner,
            stats: self.0.clone(),
        }
    }
}

/// A service wrapped by [`CountLayer`].
#[derive(Clone)]
pub struct Counted<S> {
    inner: S,
    stats: Arc<Stats>,
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for Counted<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let stats = self.stats.clone();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let answer = answer.await;
            stats
                .classes
                .note(answer.as_ref().ok().map(|r| r.status().as_u16()));
            answer
        })
    }
}

/// Where a resource's kubeconfig comes from. Recorded in its ledger entry (the source, never
/// the kubeconfig), so a resource that left the desired state can still be observed and
/// deleted.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// An environment variable of the provisioner process holding a kubeconfig.
    Env(String),
    /// A file holding a kubeconfig.
    File(PathBuf),
    /// A DigitalOcean cluster's `kubeconfig` output, by the cluster's address.
    Doks(Address),
}

impl Source {
    /// The source of a `cluster` secret source; `None` for a reference to anything but a
    /// DigitalOcean cluster's kubeconfig (validation refuses those).
    pub fn of(source: &SecretSource) -> Option<Source> {
        match source {
            SecretSource::Env(name) => Some(Source::Env(name.clone())),
            SecretSource::File(path) => Some(Source::File(path.clone())),
            SecretSource::Ref(r) if r.attribute == "kubeconfig" => {
                Some(Source::Doks(r.address.clone()))
            }
            _ => None,
        }
    }

    /// The source as the ledger records it (`{"env": NAME}`, `{"file": path}`,
    /// `{"cluster": address}`).
    pub fn to_json(&self) -> Value {
        match self {
            Source::Env(name) => json!({ "env": name }),
            Source::File(path) => json!({ "file": path.display().to_string() }),
            Source::Doks(address) => json!({ "cluster": address.to_string() }),
        }
    }

    /// The source a ledger entry recorded.
    pub fn from_json(v: &Value) -> Option<Source> {
        if let Some(name) = v.get("env").and_then(Value::as_str) {
            return Some(Source::Env(name.to_string()));
        }
        if let Some(path) = v.get("file").and_then(Value::as_str) {
            return Some(Source::File(PathBuf::from(path)));
        }
        let address = v.get("cluster").and_then(Value::as_str)?;
        crate::desired::Address::parse(address)
            .ok()
            .map(Source::Doks)
    }

    /// The source of a `cluster` field as the spec JSON writes it (`{"env": NAME}`,
    /// `{"file": path}`, or the reference `"${digitalocean.kubernetes_cluster.x.kubeconfig}"`).
    pub fn from_spec(v: &Value) -> Option<Source> {
        if let Some(text) = v.as_str() {
            let inner = text.strip_prefix("${")?.strip_suffix('}')?;
            let address = inner.strip_suffix(".kubeconfig")?;
            return crate::desired::Address::parse(address)
                .ok()
                .map(Source::Doks);
        }
        Source::from_json(v).filter(|s| !matches!(s, Source::Doks(_)))
    }

    /// The source in words, for errors.
    pub fn describe(&self) -> String {
        match self {
            Source::Env(name) => format!("the kubeconfig in environment variable {name}"),
            Source::File(path) => format!("the kubeconfig in {}", path.display()),
            Source::Doks(address) => format!("the kubeconfig of {address}"),
        }
    }
}

/// One cluster, reached with one kubeconfig: its client and what its API serves.
pub struct Cluster {
    /// The API server's URL, from the kubeconfig.
    pub server: String,
    /// The client (credentials inside, in memory only).
    pub client: kube::Client,
    /// The API discovery, once made, and when.
    discovery: tokio::sync::Mutex<Option<(Arc<Discovery>, Instant)>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// What the cluster's API serves: aggregated discovery (`GET /api`, `GET /apis`, two
    /// requests; Kubernetes docs, "Discovery API", aggregated since v1.30), made again
    /// when `fresh` or older than `max_age`.
    pub async fn discovery(
        &self,
        fresh: bool,
        max_age: Duration,
    ) -> Result<Arc<Discovery>, ProviderError> {
        let mut held = self.discovery.lock().await;
        if !fresh
            && let Some((d, at)) = held.as_ref()
            && at.elapsed() < max_age
        {
            return Ok(d.clone());
        }
        let d = Discovery::new(self.client.clone())
            .run_aggregated()
            .await
            .map_err(|e| {
                kube_error(
                    &format!("reading the API discovery of {}", self.server),
                    Failure::Transient,
                    e,
                )
            })?;
        let d = Arc::new(d);
        *held = Some((d.clone(), Instant::now()));
        Ok(d)
    }
}

/// Timeouts of the kube clients.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// To open a connection (kube-rs's default is 30 s; an unreachable cluster should cost
    /// a pass less than that).
    pub connect: Duration,
    /// To read an answer (kube-rs sets none by default: it is made for watches, which
    /// provisioner never opens).
    pub read: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            read: Duration::from_secs(60),
        }
    }
}

/// The clusters reached so far, by the digest of their kubeconfig (so a new token makes a
/// new client), in memory only.
#[derive(Default)]
pub struct Clusters {
    by_kubeconfig: Mutex<HashMap<String, Arc<Cluster>>>,
    by_server: Mutex<HashMap<String, Arc<Cluster>>>,
}

impl Clusters {
    /// The cluster a kubeconfig reaches, connecting on first use.
    pub async fn connect(
        &self,
        kubeconfig: &SecretValue,
        what: &str,
        stats: &Arc<Stats>,
        timeouts: Timeouts,
    ) -> Result<Arc<Cluster>, ProviderError> {
        let key = hmac_free_digest(kubeconfig.expose());
        if let Some(c) = self
            .by_kubeconfig
            .lock()
            .ok()
            .and_then(|m| m.get(&key).cloned())
        {
            return Ok(c);
        }
        let text = secret_text(kubeconfig, what)?;
        // The parse errors of serde-saphyr may quote the text: none of it goes into ours.
        let parsed = Kubeconfig::from_yaml(text).map_err(|_| {
            ProviderError::msg(format!(
                "{what} is not a kubeconfig (it does not parse as one)"
            ))
        })?;
        let mut config =
            kube::Config::from_custom_kubeconfig(parsed, &KubeConfigOptions::default())
                .await
                .map_err(|e| {
                    ProviderError::msg(format!(
                        "{what} cannot be used: {}",
                        crate::errors::chain(&e)
                    ))
                })?;
        config.connect_timeout = Some(timeouts.connect);
        config.read_timeout = Some(timeouts.read);
        let server = config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_string();
        let client = kube::client::ClientBuilder::try_from(config)
            .map_err(|e| {
                kube_error(
                    &format!("making a client for {server}"),
                    Failure::Rejected,
                    e,
                )
            })?
            .with_layer(&CountLayer(stats.clone()))
            .build();
        let cluster = Arc::new(Cluster {
            server: server.clone(),
            client,
            discovery: tokio::sync::Mutex::new(None),
        });
        if let Ok(mut m) = self.by_kubeconfig.lock() {
            m.insert(key, cluster.clone());
        }
        if let Ok(mut m) = self.by_server.lock() {
            m.insert(server, cluster.clone());
        }
        Ok(cluster)
    }

    /// The last cluster reached at `server`, if any.
    pub fn at(&self, server: &str) -> Option<Arc<Cluster>> {
        self.by_server.lock().ok()?.get(server).cloned()
    }
}

/// SHA-256 of a kubeconfig, the key of its client in memory (never stored, never shown).
fn hmac_free_digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Kubeconfigs read from DigitalOcean, by cluster id, with when to read them again: at two
/// thirds of their life, as the design says (the API's default life is 7 days; the
/// cluster's `kubeconfig_expiry` sets it).
#[derive(Default)]
pub struct DoksKubeconfigs {
    held: Mutex<HashMap<String, (SecretValue, Instant)>>,
}

impl DoksKubeconfigs {
    /// The kubeconfig of DigitalOcean cluster `id`, read again once due.
    pub async fn get(
        &self,
        client: &crate::providers::digitalocean::DoClient,
        id: &str,
        spec: Option<&Value>,
    ) -> Result<SecretValue, ProviderError> {
        if let Some((v, due)) = self.held.lock().ok().and_then(|m| m.get(id).cloned())
            && Instant::now() < due
        {
            return Ok(v);
        }
        let lifetime = spec
            .and_then(|s| s["kubeconfig_expiry"].as_str())
            .and_then(|d| crate::desired::values::Duration::parse(d).ok())
            .unwrap_or(7 * 86_400);
        let value = crate::providers::digitalocean::apply::kubeconfig(client, id, spec).await?;
        let due = Instant::now() + Duration::from_secs(lifetime * 2 / 3);
        if let Ok(mut m) = self.held.lock() {
            m.insert(id.to_string(), (value.clone(), due));
        }
        Ok(value)
    }
}
