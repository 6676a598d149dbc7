//! The provider seam: what every provider implements ([`Provider`]: name, kinds, observe a
//! scope, apply a change, read a secret output again, retire superseded parts), the
//! executor's view of one ([`Changes`]), the requests and answers that cross it
//! ([`ApplyRequest`], [`Applied`]), the typed failure ([`ProviderError`], [`Failure`]) and
//! the pass's scope ([`ObserveScope`]). The providers themselves, and the registry that lists
//! them, are in [`crate::providers`].

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::desired::Kind;
use crate::plan::Action;
use crate::plan::model::ReplaceStrategy;

/// The one HTTP client (and so the one connection pool) behind every AWS SDK client: S3 in
/// each region, Spaces in each region, SNS, SES, IAM, Secrets Manager and STS. Without it
/// each SDK client makes its own pool, so connections are not reused across clients and a
/// client made per pass opens (and, over TLS, handshakes) new connections every pass.
///
/// It is the SDK's default client (rustls with aws-lc, proxy settings from the
/// environment), built once.
pub fn aws_http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
    use aws_smithy_http_client::{Builder, ConnectorBuilder, proxy::ProxyConfig};
    static CLIENT: std::sync::OnceLock<aws_smithy_runtime_api::client::http::SharedHttpClient> =
        std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            Builder::new().build_with_connector_fn(|settings, components| {
                let mut connector = ConnectorBuilder::default()
                    .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc));
                connector.set_connector_settings(settings.cloned());
                if let Some(components) = components {
                    connector.set_sleep_impl(components.sleep_impl());
                }
                connector.set_proxy_config(Some(ProxyConfig::from_env()));
                connector.build()
            })
        })
        .clone()
}

/// Runs per-object reads (a bucket's configuration, a topic's attributes), `in_flight` at
/// a time (`[settings.concurrency] reads`); the answers come back in the order they finish.
///
/// An object's reads go side by side (up to six for an S3 bucket), and each request in
/// flight is an HTTP/1.1 connection (S3 has no HTTP/2), so `in_flight` trades memory for
/// round trips. Measured at 1,000 resources with a 50 ms round trip (docs/performance.md):
/// 16 gives a 0.29 s pass and a 41 MB daemon, 24 (the default) 0.23 s and 45 MB, 32 0.21 s
/// and 49 MB. 24 keeps a margin under the 50 MB target, which TLS buffers eat into in
/// production.
///
/// Running them as tasks of their own, to spread the signing and parsing over the
/// runtime's threads, was measured: no gain in the pass's wall time on two cores, so they
/// stay in the observing task.
pub async fn read_each<T, F>(in_flight: u32, reads: impl IntoIterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T>,
{
    use futures_util::StreamExt;
    futures_util::stream::iter(reads)
        .buffer_unordered(in_flight.max(1) as usize)
        .collect()
        .await
}

/// One change for a provider to make.
#[derive(Clone, Copy, Debug)]
pub struct ApplyRequest<'a> {
    /// The resource's address (objects that carry it, such as Kubernetes objects, are
    /// annotated with it).
    pub address: &'a crate::desired::Address,
    /// The kind.
    pub kind: Kind,
    /// What to do.
    pub action: Action,
    /// The object's id, for everything but a create.
    pub cloud_id: Option<&'a str>,
    /// The desired fields, references resolved.
    pub fields: &'a Map<String, Value>,
    /// For a replace: which object goes first.
    pub strategy: Option<ReplaceStrategy>,
    /// The resource's whole spec, local fields included (`kubeconfig_expiry`), when it is
    /// desired.
    pub spec: Option<&'a Value>,
    /// The ledger's lineage, for the tag created objects carry.
    pub lineage: &'a str,
    /// The values of the resource's secret fields (`value`), read or handed on by the
    /// executor; empty for deletes.
    pub secrets: &'a BTreeMap<String, SecretValue>,
    /// The attributes the ledger last recorded for this resource (what provisioner itself
    /// made: an IAM user's `smtp_username` is the access key it created), if any.
    pub recorded: Option<&'a BTreeMap<String, Value>>,
    /// Parts an earlier change superseded that are still to be retired (see
    /// [`Applied::retiring`]): provisioner's own, and possibly still held by consumers.
    pub retiring: &'a [String],
    /// True when the recorded object's unrecoverable outputs reached no consumer (every
    /// consumer is still owed them): the parts holding them are used by nobody and may go
    /// before their successor exists.
    pub unused: bool,
    /// When the first unfinished attempt of this change began (the write-ahead intent's
    /// time, RFC 3339), if one did: parts of the object dated after it that the ledger does
    /// not record were made by that attempt and never delivered (an access key made by a
    /// rotation killed before its result was recorded).
    pub attempted_since: Option<&'a str>,
}

/// What a provider's API client has put on the wire since it was made, for the metrics and
/// `scan`'s request count.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestStats {
    /// Requests sent (retries included).
    pub requests: u64,
    /// Answers by status class ([`RequestClasses::CLASSES`]).
    pub classes: [(&'static str, u64); 5],
    /// The API's own count of requests left in its window, from its last answer.
    pub remaining: Option<u64>,
}

/// Answers by status class, for `provisioner_api_requests_total`.
#[derive(Debug, Default)]
pub struct RequestClasses([std::sync::atomic::AtomicU64; 5]);

impl RequestClasses {
    /// The label values, in order.
    pub const CLASSES: [&'static str; 5] = ["2xx", "3xx", "4xx", "5xx", "error"];

    /// Counts one answer (`None`: no answer at all).
    pub fn note(&self, status: Option<u16>) {
        let i = match status {
            Some(200..=299) => 0,
            Some(300..=399) => 1,
            Some(400..=499) => 2,
            Some(500..=599) => 3,
            _ => 4,
        };
        self.0[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The counts, by class.
    pub fn snapshot(&self) -> [(&'static str, u64); 5] {
        std::array::from_fn(|i| {
            (
                Self::CLASSES[i],
                self.0[i].load(std::sync::atomic::Ordering::Relaxed),
            )
        })
    }
}

/// A secret value in memory: never printed (`Debug` and `Display` are redacted), wiped when
/// dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Vec<u8>);

impl SecretValue {
    /// Wraps bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretValue(bytes)
    }

    /// The bytes, for the one place that must send them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for SecretValue {
    fn drop(&mut self) {
        self.0.iter_mut().for_each(|b| *b = 0);
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue(redacted)")
    }
}

impl std::fmt::Display for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("(sensitive)")
    }
}

/// What a change produced.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    /// The object's id (empty after a delete).
    pub id: String,
    /// Its exported, non-secret attributes.
    pub attributes: BTreeMap<String, Value>,
    /// Secret outputs (`kubeconfig`, `secret_key`, `private_key`): handed on by reference,
    /// never stored.
    pub secrets: BTreeMap<String, SecretValue>,
    /// The cloud's timestamp of the change, where it keeps one.
    pub updated_at: Option<String>,
    /// Parts of the object this change superseded but did not remove, because consumers may
    /// still hold them (an IAM user's previous access key after a rotation): the executor
    /// records them in the ledger and hands them to [`Provider::retire`] once every consumer
    /// of the object's unrecoverable outputs has been written with the new ones. Ids, in the
    /// cloud's terms.
    pub retiring: Vec<String>,
}

/// What kind of failure a [`ProviderError`] is: what the executor (retry within the pass or
/// not) and the daemon (how long to wait before the next pass) decide from, never the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Not carried out, and trying again may succeed: a 503, a connection that could not be
    /// made, an answer that could not be read.
    Transient,
    /// The API asked to wait (429, a throttling error): not carried out.
    RateLimited {
        /// How long the API asked to wait, when it said.
        retry_after: Option<std::time::Duration>,
    },
    /// Refused, by the API (a 4xx other than 429) or by provisioner (bad input, a key it
    /// will not delete): trying again changes nothing until the desired state or the cloud
    /// does. Never retried.
    Rejected,
    /// The request may have been carried out (a timeout after it was sent, a 500, 502 or 504
    /// to a write): look before trying again, which the next pass's observation does.
    Ambiguous,
    /// The provider is not set up (missing credentials): the message says what to set.
    NotConfigured,
}

impl Failure {
    /// The failure an HTTP status means (`None`: no answer).
    pub fn of_status(status: u16, retry_after: Option<std::time::Duration>) -> Self {
        match status {
            429 => Failure::RateLimited { retry_after },
            503 => Failure::Transient,
            500..=599 => Failure::Ambiguous,
            _ => Failure::Rejected,
        }
    }
}

/// A change or a read that failed.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct ProviderError {
    /// What failed, with its cause in words (never a secret value).
    pub message: String,
    /// What kind of failure it is.
    pub failure: Failure,
    /// The error it comes from, when there is one (an SDK error, an I/O error).
    #[source]
    pub source: Option<std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl ProviderError {
    /// A request provisioner itself refuses (bad input, an answer it cannot use, a rule it
    /// keeps): [`Failure::Rejected`].
    pub fn msg(message: impl Into<String>) -> Self {
        ProviderError::new(Failure::Rejected, message)
    }

    /// A provider that is not set up, with what to set.
    pub fn not_configured(hint: impl Into<String>) -> Self {
        ProviderError::new(Failure::NotConfigured, hint)
    }

    /// An error of this kind with this message and no source.
    pub fn new(failure: Failure, message: impl Into<String>) -> Self {
        ProviderError {
            message: message.into(),
            failure,
            source: None,
        }
    }

    /// `what` failing with `cause`: the message is `what: <cause's chain>`.
    pub fn caused(
        what: &str,
        failure: Failure,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        ProviderError {
            message: format!("{what}: {}", crate::errors::chain(&cause)),
            failure,
            source: Some(std::sync::Arc::new(cause)),
        }
    }

    /// True when trying again may succeed without anything changing: transient failures
    /// and rate limits. A rejected request (a 4xx) is never retried, nor an ambiguous one
    /// (it may have been carried out: the next pass looks first).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.failure,
            Failure::Transient | Failure::RateLimited { .. }
        )
    }

    /// How long the API asked to wait, for a rate limit that said.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self.failure {
            Failure::RateLimited { retry_after } => retry_after,
            _ => None,
        }
    }
}

/// The error for a replacement in place asked of a kind that has none: the executor
/// replaces every other kind by a create and a delete, in the order of its strategy.
pub fn not_in_place(kind: Kind) -> ProviderError {
    ProviderError::msg(format!(
        "{kind} is not renewed in place: a replacement is a create and a delete"
    ))
}

/// What one pass observes, decided once for every provider: the kinds the desired state,
/// the ledger's entries or its write-ahead intents use ([`crate::providers::used_kinds`]), with the
/// desired state and ledger that name them (a provider looks up there which names,
/// repositories or buckets to read). A provider observes the kinds of the scope that are
/// its own, and nothing else.
#[derive(Clone, Debug)]
pub struct ObserveScope<'a> {
    /// The kinds to observe (of every provider).
    pub kinds: std::collections::BTreeSet<Kind>,
    /// The desired state.
    pub desired: &'a crate::desired::DesiredState,
    /// The ledger.
    pub ledger: &'a crate::ledger::Ledger,
}

impl<'a> ObserveScope<'a> {
    /// The scope of a pass: every kind `desired` or `ledger` uses ([`crate::providers::used_kinds`]).
    pub fn new(
        desired: &'a crate::desired::DesiredState,
        ledger: &'a crate::ledger::Ledger,
    ) -> Self {
        ObserveScope {
            kinds: crate::providers::used_kinds(desired, ledger),
            desired,
            ledger,
        }
    }

    /// True when `kind` is to be observed.
    pub fn uses(&self, kind: Kind) -> bool {
        self.kinds.contains(&kind)
    }

    /// True when any kind of `provider` is to be observed.
    pub fn uses_provider(&self, provider: &str) -> bool {
        self.kinds.iter().any(|k| k.provider() == provider)
    }
}

/// The changes the executor asks for, and the reads it needs: what every [`Provider`] does,
/// and what the registry ([`crate::providers::Clouds`]) does by handing each request to the provider
/// of its kind.
pub trait Changes {
    /// Makes one change: `Create`, `Update`, `Adopt`, `Delete`, or a `Replace` whose
    /// strategy is [`ReplaceStrategy::InPlace`] (the executor splits the other replacements
    /// into a create and a delete, in the order their strategy says).
    fn apply(
        &self,
        req: ApplyRequest<'_>,
    ) -> impl std::future::Future<Output = Result<Applied, ProviderError>>;

    /// Reads a secret output of an existing object again (a cluster's kubeconfig), for a
    /// consumer that needs it in a pass that did not create the object. `None` when the
    /// cloud cannot give it back (a private key, a secret access key): only creating or
    /// rotating the object produces it.
    fn secret_output(
        &self,
        kind: Kind,
        id: &str,
        output: &str,
        spec: Option<&Value>,
    ) -> impl std::future::Future<Output = Result<Option<SecretValue>, ProviderError>> {
        let _ = (kind, id, output, spec);
        async { Ok(None) }
    }

    /// Removes parts of object `id` that a change superseded ([`Applied::retiring`]), now
    /// that every consumer holds their successors. Parts already gone are not an error.
    fn retire(
        &self,
        kind: Kind,
        id: &str,
        parts: &[String],
    ) -> impl std::future::Future<Output = Result<(), ProviderError>> {
        let _ = (kind, id, parts);
        async { Ok(()) }
    }
}

/// One cloud's adapter: it names itself and its kinds, observes the part of a pass's scope
/// that is its own, and makes changes. Adding a provider means its kinds (a file in
/// `desired/kinds/` and a line in the `kinds!` list), this trait's implementation, and one
/// variant in the registry ([`crate::providers::Clouds`]).
pub trait Provider {
    /// The provider's name: the first part of its kinds' addresses (`digitalocean`).
    fn name(&self) -> &'static str;

    /// Its kinds, as the `kinds!` declarations assign them.
    fn kinds(&self) -> Vec<Kind> {
        Kind::ALL
            .iter()
            .copied()
            .filter(|k| k.provider() == self.name())
            .collect()
    }

    /// What its API client has put on the wire so far; `None` for clients that keep no
    /// count (the AWS SDK's).
    fn request_stats(&self) -> Option<RequestStats> {
        None
    }

    /// Observes the kinds of `scope` that are its own. Every such kind is in the answer:
    /// complete, or failed with the reason (a kind left out is reported by the registry as
    /// not observed, never as empty).
    fn observe(
        &self,
        scope: &ObserveScope<'_>,
    ) -> impl std::future::Future<Output = BTreeMap<Kind, crate::live::KindObservation>>;

    /// Makes one change (see [`Changes::apply`]).
    fn apply(
        &self,
        req: ApplyRequest<'_>,
    ) -> impl std::future::Future<Output = Result<Applied, ProviderError>>;

    /// Reads a secret output again (see [`Changes::secret_output`]); by default the cloud
    /// cannot give any back.
    fn secret_output(
        &self,
        kind: Kind,
        id: &str,
        output: &str,
        spec: Option<&Value>,
    ) -> impl std::future::Future<Output = Result<Option<SecretValue>, ProviderError>> {
        let _ = (kind, id, output, spec);
        async { Ok(None) }
    }

    /// Removes superseded parts (see [`Changes::retire`]). Only kinds whose changes return
    /// [`Applied::retiring`] are ever asked; for the others there is nothing to remove.
    fn retire(
        &self,
        kind: Kind,
        id: &str,
        parts: &[String],
    ) -> impl std::future::Future<Output = Result<(), ProviderError>> {
        let _ = (kind, id, parts);
        async { Ok(()) }
    }
}

impl<P: Provider> Changes for P {
    fn apply(
        &self,
        req: ApplyRequest<'_>,
    ) -> impl std::future::Future<Output = Result<Applied, ProviderError>> {
        Provider::apply(self, req)
    }

    fn secret_output(
        &self,
        kind: Kind,
        id: &str,
        output: &str,
        spec: Option<&Value>,
    ) -> impl std::future::Future<Output = Result<Option<SecretValue>, ProviderError>> {
        Provider::secret_output(self, kind, id, output, spec)
    }

    fn retire(
        &self,
        kind: Kind,
        id: &str,
        parts: &[String],
    ) -> impl std::future::Future<Output = Result<(), ProviderError>> {
        Provider::retire(self, kind, id, parts)
    }
}
