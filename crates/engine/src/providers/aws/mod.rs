//! The AWS provider, on the official SDK with the standard credential chain and
//! `AWS_ENDPOINT_URL` (and the per-service `AWS_ENDPOINT_URL_<SERVICE>`): S3 buckets, SNS
//! topics, SES v2 domain identities and configuration sets, the IAM user behind SES SMTP,
//! and Secrets Manager secrets. Every kind is observed by listing, then reading only the
//! objects provisioner manages.
//!
//! Objects carry the tag `provisioner:lineage = <ledger lineage>`, so an object made by
//! another ledger is never adopted; the tag is not part of the desired `tags`.

pub mod answers;
pub mod iam;
pub mod s3;
pub mod secrets;
pub mod ses;
pub mod smtp;
pub mod sns;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::desired::{DesiredState, Kind};
use crate::ledger::Ledger;
use crate::live::{KindObservation, LiveObject, ObserveStatus};
use crate::plan::Action;
use crate::providers::{Applied, ApplyRequest, ObserveScope, ProviderError, SecretValue};

/// The tag key that carries the ledger lineage on AWS objects.
pub const LINEAGE_KEY: &str = "provisioner:lineage";

/// The AWS kinds.
pub const KINDS: [Kind; 6] = [
    Kind::AwsS3Bucket,
    Kind::AwsSnsTopic,
    Kind::AwsSesDomainIdentity,
    Kind::AwsSesConfigurationSet,
    Kind::AwsIamSmtpUser,
    Kind::AwsSecretsmanagerSecret,
];

/// The AWS provider: one client per service.
pub struct AwsProvider {
    /// The region of resources that name none.
    pub region: String,
    config: aws_config::SdkConfig,
    s3: aws_sdk_s3::Client,
    sns: aws_sdk_sns::Client,
    ses: aws_sdk_sesv2::Client,
    iam: aws_sdk_iam::Client,
    sm: aws_sdk_secretsmanager::Client,
    sts: aws_sdk_sts::Client,
    account: tokio::sync::OnceCell<String>,
}

impl std::fmt::Debug for AwsProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsProvider")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl AwsProvider {
    /// From the standard AWS configuration chain; the region is `[settings.aws] region`,
    /// else `AWS_REGION`.
    pub async fn from_env(desired: &DesiredState) -> Result<Self, String> {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .timeout_config(crate::ledger::store::sdk_timeouts());
        if let Some(r) = &desired.settings.aws.region {
            loader = loader.region(aws_config::Region::new(r.as_str().to_string()));
        }
        let config = loader.load().await;
        if config.region().is_none() {
            return Err("no AWS region: set AWS_REGION or `[settings.aws] region`".into());
        }
        let no_credentials = "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or run with a role)";
        let Some(credentials) = config.credentials_provider() else {
            return Err(no_credentials.into());
        };
        {
            use aws_sdk_s3::config::ProvideCredentials;
            if let Err(e) = credentials.provide_credentials().await {
                return Err(format!("{no_credentials}: {}", crate::errors::chain(&e)));
            }
        }
        Ok(Self::new(&config, &config))
    }

    /// With explicit configurations: `ses` for SES v2 (tests point it at the SES simulator,
    /// everything else at moto), `config` for the rest.
    /// Every client checks its answers before the SDK's output is believed ([`answers`]).
    pub fn new(config: &aws_config::SdkConfig, ses: &aws_config::SdkConfig) -> Self {
        use answers::{Answers, Service};
        // One connection pool for every client (unless the caller chose an HTTP client).
        let shared = |c: &aws_config::SdkConfig| match c.http_client() {
            Some(_) => c.clone(),
            None => c
                .to_builder()
                .http_client(crate::providers::aws_http_client())
                .build(),
        };
        let (config, ses) = (&shared(config), &shared(ses));
        let path_style = config
            .endpoint_url()
            .is_some_and(crate::ledger::store::needs_path_style);
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(config)
                .force_path_style(path_style)
                .interceptor(Answers(Service::S3))
                .build(),
        );
        AwsProvider {
            region: config
                .region()
                .map(|r| r.to_string())
                .unwrap_or_else(|| "us-east-1".into()),
            config: config.clone(),
            s3,
            sns: aws_sdk_sns::Client::from_conf(
                aws_sdk_sns::config::Builder::from(config)
                    .interceptor(Answers(Service::Sns))
                    .build(),
            ),
            ses: aws_sdk_sesv2::Client::from_conf(
                aws_sdk_sesv2::config::Builder::from(ses)
                    .interceptor(Answers(Service::SesV2))
                    .build(),
            ),
            iam: aws_sdk_iam::Client::from_conf(
                aws_sdk_iam::config::Builder::from(config)
                    .interceptor(Answers(Service::Iam))
                    .build(),
            ),
            sm: aws_sdk_secretsmanager::Client::from_conf(
                aws_sdk_secretsmanager::config::Builder::from(config)
                    .interceptor(Answers(Service::SecretsManager))
                    .build(),
            ),
            sts: aws_sdk_sts::Client::from_conf(
                aws_sdk_sts::config::Builder::from(config)
                    .interceptor(Answers(Service::Sts))
                    .build(),
            ),
            account: tokio::sync::OnceCell::new(),
        }
    }

    /// An S3 client for another region (bucket operations must go to the bucket's region).
    fn s3_in(&self, region: &str) -> aws_sdk_s3::Client {
        self.s3_clients().in_region(region)
    }

    /// What makes S3 clients for any region, owned, so that each bucket's read carries one.
    fn s3_clients(&self) -> S3Clients {
        S3Clients {
            home: self.s3.clone(),
            config: self.config.clone(),
            region: self.region.clone(),
        }
    }

    /// The account id (for ARNs the APIs do not return), asked once.
    async fn account(&self) -> Result<String, ProviderError> {
        self.account
            .get_or_try_init(|| async {
                let who = self
                    .sts
                    .get_caller_identity()
                    .send()
                    .await
                    .map_err(|e| err("asking STS for the account id", e))?;
                who.account()
                    .map(str::to_string)
                    .ok_or_else(|| ProviderError::msg("STS returned no account id"))
            })
            .await
            .cloned()
    }

    /// Observes every AWS kind: one (paginated) list per kind, then the details of the
    /// objects the desired state or the ledger names. A kind whose listing fails is unknown.
    async fn observe_in(&self, scope: &ObserveScope<'_>) -> BTreeMap<Kind, KindObservation> {
        let (desired, ledger) = (scope.desired, scope.ledger);
        let names = managed_names(desired, ledger);
        let wanted = |k: Kind| {
            if scope.uses(k) {
                names.get(&k).cloned().unwrap_or_default()
            } else {
                BTreeSet::new()
            }
        };
        let reads = desired.settings.concurrency.reads;
        let (b, t, i, c, u, s) = futures_util::join!(
            Box::pin(s3::observe(self, wanted(Kind::AwsS3Bucket), reads)),
            Box::pin(sns::observe(self, wanted(Kind::AwsSnsTopic), reads)),
            Box::pin(ses::observe_identities(
                self,
                wanted(Kind::AwsSesDomainIdentity)
            )),
            Box::pin(ses::observe_configuration_sets(
                self,
                wanted(Kind::AwsSesConfigurationSet)
            )),
            Box::pin(iam::observe(self, wanted(Kind::AwsIamSmtpUser), ledger)),
            Box::pin(secrets::observe(
                self,
                wanted(Kind::AwsSecretsmanagerSecret),
                known_ids(ledger, Kind::AwsSecretsmanagerSecret),
            )),
        );
        let mut out = BTreeMap::new();
        for (kind, result) in [
            (Kind::AwsS3Bucket, b),
            (Kind::AwsSnsTopic, t),
            (Kind::AwsSesDomainIdentity, i),
            (Kind::AwsSesConfigurationSet, c),
            (Kind::AwsIamSmtpUser, u),
            (Kind::AwsSecretsmanagerSecret, s),
        ] {
            if !scope.uses(kind) {
                continue;
            }
            out.insert(
                kind,
                match result {
                    Ok(objects) => KindObservation {
                        status: ObserveStatus::Complete,
                        objects,
                        failed_scopes: Vec::new(),
                    },
                    Err(e) => KindObservation {
                        status: ObserveStatus::Failed(e.message),
                        objects: Vec::new(),
                        failed_scopes: Vec::new(),
                    },
                },
            );
        }
        out
    }
}

impl crate::providers::Provider for AwsProvider {
    fn name(&self) -> &'static str {
        "aws"
    }

    async fn observe(&self, scope: &ObserveScope<'_>) -> BTreeMap<Kind, KindObservation> {
        self.observe_in(scope).await
    }

    async fn apply(&self, req: ApplyRequest<'_>) -> Result<Applied, ProviderError> {
        if matches!(req.action, Action::Orphan | Action::Drift | Action::NoOp) {
            return Err(ProviderError::msg("nothing to apply for this action"));
        }
        // Boxed: the SDK futures are large, and a thread's stack is not.
        match req.kind {
            Kind::AwsS3Bucket => Box::pin(s3::apply(self, &req)).await,
            Kind::AwsSnsTopic => Box::pin(sns::apply(self, &req)).await,
            Kind::AwsSesDomainIdentity => Box::pin(ses::apply_identity(self, &req)).await,
            Kind::AwsSesConfigurationSet => {
                Box::pin(ses::apply_configuration_set(self, &req)).await
            }
            Kind::AwsIamSmtpUser => Box::pin(iam::apply(self, &req)).await,
            Kind::AwsSecretsmanagerSecret => Box::pin(secrets::apply(self, &req)).await,
            other => Err(ProviderError::msg(format!("{other} is not an AWS kind"))),
        }
    }

    async fn secret_output(
        &self,
        kind: Kind,
        id: &str,
        output: &str,
        _spec: Option<&Value>,
    ) -> Result<Option<SecretValue>, ProviderError> {
        match (kind, output) {
            // A secret keeps its value: it can be read back (a generated password, say).
            (Kind::AwsSecretsmanagerSecret, "value") => {
                secrets::read_value(self, id).await.map(Some)
            }
            _ => Ok(None),
        }
    }

    async fn retire(&self, kind: Kind, id: &str, parts: &[String]) -> Result<(), ProviderError> {
        match kind {
            Kind::AwsIamSmtpUser => Box::pin(iam::retire(self, id, parts)).await,
            // No other AWS kind supersedes parts of itself.
            _ => Ok(()),
        }
    }
}

/// What kind of failure an AWS error is ([`crate::providers::Failure`]).
pub trait Classify {
    /// The failure.
    fn failure(&self) -> crate::providers::Failure;
}

/// Throttling error codes across the services (S3 `SlowDown`, the query and JSON services'
/// `Throttling`/`ThrottlingException`, `TooManyRequestsException`, `RequestLimitExceeded`),
/// as the SDK's own retry classifier lists them (aws-smithy-runtime, `THROTTLING_ERRORS`).
const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

impl<E> Classify
    for aws_smithy_runtime_api::client::result::SdkError<
        E,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >
where
    E: aws_sdk_s3::error::ProvideErrorMetadata,
{
    fn failure(&self) -> crate::providers::Failure {
        use crate::providers::Failure;
        use aws_smithy_runtime_api::client::result::SdkError;
        match self {
            SdkError::ServiceError(e) => {
                if e.err().code().is_some_and(|c| THROTTLING.contains(&c)) {
                    return Failure::RateLimited { retry_after: None };
                }
                Failure::of_status(e.raw().status().as_u16(), None)
            }
            // Sent, and no answer in time: it may have been carried out.
            SdkError::TimeoutError(_) => Failure::Ambiguous,
            SdkError::DispatchFailure(d) if d.is_user() => Failure::Rejected,
            // A connection that failed may have carried the request.
            SdkError::DispatchFailure(_) => Failure::Ambiguous,
            // An answer that could not be read (the `answers` interceptor refuses bodies
            // that are not the operation's output).
            SdkError::ResponseError(_) => Failure::Transient,
            // Built wrong, here: never sent.
            _ => Failure::Rejected,
        }
    }
}

impl Classify for aws_smithy_types::error::operation::BuildError {
    fn failure(&self) -> crate::providers::Failure {
        crate::providers::Failure::Rejected
    }
}

/// A provider error for a failed SDK call, with its whole cause chain (never a value: the
/// SDK errors carry codes and messages, not request bodies), classified: a 4xx is rejected,
/// a throttling error or 429 rate-limited, a 503 transient, another 5xx or a timeout
/// ambiguous.
pub fn err(
    what: &str,
    e: impl std::error::Error + Classify + Send + Sync + 'static,
) -> ProviderError {
    let failure = e.failure();
    ProviderError::caused(what, failure, e)
}

/// `Ok` when the call succeeded or failed only with the service error `tolerated` (an
/// object already gone, or already there); any other failure is `what` failing.
pub fn tolerate<T, E>(
    result: Result<
        T,
        aws_smithy_runtime_api::client::result::SdkError<
            E,
            aws_smithy_runtime_api::client::orchestrator::HttpResponse,
        >,
    >,
    tolerated: &str,
    what: &str,
) -> Result<(), ProviderError>
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(()),
        Err(e) if code(&e) == Some(tolerated) => Ok(()),
        Err(e) => Err(err(what, e)),
    }
}

/// The error code of an SDK service error.
pub fn code<E, R>(e: &aws_smithy_runtime_api::client::result::SdkError<E, R>) -> Option<&str>
where
    E: aws_sdk_s3::error::ProvideErrorMetadata,
{
    e.as_service_error().and_then(|s| s.code())
}

/// Names of the objects provisioner manages, per kind: from the desired state (the natural
/// key field) and the ledger (the cloud id, and the key field it applied).
fn managed_names(desired: &DesiredState, ledger: &Ledger) -> BTreeMap<Kind, BTreeSet<String>> {
    let key = |k: Kind| match k {
        Kind::AwsS3Bucket => "bucket",
        Kind::AwsSesDomainIdentity => "domain",
        _ => "name",
    };
    let mut out: BTreeMap<Kind, BTreeSet<String>> = BTreeMap::new();
    for r in desired.resources.values() {
        let k = r.kind();
        if !KINDS.contains(&k) {
            continue;
        }
        if let Some(n) = r.spec_json.get(key(k)).and_then(Value::as_str)
            && !n.contains("${")
        {
            out.entry(k).or_default().insert(n.to_string());
        }
    }
    for (address, intent) in &ledger.pending {
        let _ = address;
        if let Some(k) = Kind::parse(&intent.kind).filter(|k| KINDS.contains(k)) {
            out.entry(k).or_default().insert(intent.key.clone());
        }
    }
    for e in ledger.resources.values() {
        let Some(k) = Kind::parse(&e.kind).filter(|k| KINDS.contains(k)) else {
            continue;
        };
        if let Some(n) = e.applied.get(key(k)).and_then(Value::as_str) {
            out.entry(k).or_default().insert(n.to_string());
        }
    }
    out
}

/// What the ledger knows of a kind, to confirm with a direct read when a list that can lag
/// leaves it out: each entry's cloud id, and each write-ahead intent's natural key (the
/// name).
fn known_ids(ledger: &Ledger, kind: Kind) -> BTreeSet<String> {
    let key = kind.key();
    ledger
        .resources
        .values()
        .filter(|e| e.kind == key)
        .map(|e| e.id.clone())
        .chain(
            ledger
                .pending
                .values()
                .filter(|i| i.kind == key)
                .map(|i| i.key.clone()),
        )
        .collect()
}

/// Tags as a desired-state map, without the lineage tag; the lineage separately.
pub fn split_tags<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> (serde_json::Map<String, Value>, Vec<String>) {
    let mut tags = serde_json::Map::new();
    let mut lineage = Vec::new();
    for (k, v) in pairs {
        if k == LINEAGE_KEY {
            lineage.push(crate::live::lineage_tag(v));
        } else {
            tags.insert(k.to_string(), Value::String(v.to_string()));
        }
    }
    (tags, lineage)
}

/// The desired tags plus the lineage tag, as key/value pairs.
pub fn wanted_tags(f: &serde_json::Map<String, Value>, lineage: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = f
        .get("tags")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect();
    if !lineage.is_empty() {
        out.push((LINEAGE_KEY.to_string(), lineage.to_string()));
    }
    out
}

/// A string field.
pub fn text<'a>(f: &'a serde_json::Map<String, Value>, k: &str) -> Option<&'a str> {
    f.get(k).and_then(Value::as_str)
}

/// A live object.
pub fn object(
    id: String,
    fields: serde_json::Map<String, Value>,
    attributes: BTreeMap<String, Value>,
    tags: Vec<String>,
) -> LiveObject {
    LiveObject {
        id,
        fields,
        attributes,
        tags,
        updated_at: None,
        ..Default::default()
    }
}

/// The S3 client of the home region, and what makes the clients of other regions.
#[derive(Clone)]
struct S3Clients {
    home: aws_sdk_s3::Client,
    config: aws_config::SdkConfig,
    region: String,
}

impl S3Clients {
    /// The client for `region` (bucket operations must go to the bucket's region).
    fn in_region(&self, region: &str) -> aws_sdk_s3::Client {
        if region == self.region {
            return self.home.clone();
        }
        let path_style = self
            .config
            .endpoint_url()
            .is_some_and(crate::ledger::store::needs_path_style);
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&self.config)
                .region(aws_config::Region::new(region.to_string()))
                .force_path_style(path_style)
                .interceptor(answers::Answers(answers::Service::S3))
                .build(),
        )
    }
}
