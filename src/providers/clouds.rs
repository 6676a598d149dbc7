//! Every configured provider behind one [`Provider`]: a change goes to the provider of its
//! kind; a provider without credentials says which variables to set.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::aws::AwsProvider;
use super::digitalocean::DoProvider;
use super::github::GhProvider;
use super::{Applied, ApplyRequest, Provider, ProviderError, SecretValue};
use crate::desired::{DesiredState, Kind};
use crate::ledger::Ledger;
use crate::live::{KindObservation, LiveState, ObserveStatus};

/// The providers of one pass. `Err` carries the reason a provider is not available
/// (missing credentials).
pub struct Clouds {
    /// DigitalOcean.
    pub digitalocean: Result<DoProvider, String>,
    /// GitHub.
    pub github: Result<GhProvider, String>,
    /// AWS, set up on first need: when the desired state or the ledger has AWS resources
    /// (loading the credential chain may ask the instance metadata service, so a desired
    /// state without AWS never does).
    aws: tokio::sync::OnceCell<Result<AwsProvider, String>>,
}

impl std::fmt::Debug for Clouds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clouds")
            .field("digitalocean", &self.digitalocean.is_ok())
            .field("github", &self.github.as_ref().map(|_| ()))
            .field("aws", &self.aws.get().map(|a| a.as_ref().map(|_| ())))
            .finish()
    }
}

/// The kinds the desired state, the ledger's entries or its write-ahead intents use: what a
/// pass observes, decided once, for every provider.
pub fn used_kinds(desired: &DesiredState, ledger: &Ledger) -> BTreeSet<Kind> {
    desired
        .resources
        .values()
        .map(|r| r.kind())
        .chain(
            ledger
                .resources
                .values()
                .map(|e| e.kind.as_str())
                .chain(ledger.pending.values().map(|p| p.kind.as_str()))
                .filter_map(Kind::parse),
        )
        .collect()
}

impl Clouds {
    /// Providers made in code (tests, benchmarks, the sandbox): `aws` already set up.
    pub fn new(
        digitalocean: Result<DoProvider, String>,
        github: Result<GhProvider, String>,
        aws: Result<AwsProvider, String>,
    ) -> Self {
        Clouds {
            digitalocean,
            github,
            aws: tokio::sync::OnceCell::new_with(Some(aws)),
        }
    }

    /// The AWS provider, once set up (`None`: nothing has needed AWS yet).
    pub fn aws(&self) -> Option<&Result<AwsProvider, String>> {
        self.aws.get()
    }

    /// The providers configured from the environment (`DIGITALOCEAN_TOKEN`, `SPACES_*`,
    /// `GITHUB_TOKEN`, `GITHUB_API_URL`, the AWS chain). AWS is set up now when the desired
    /// state has AWS resources, else by [`Clouds::observe`] once the ledger turns out to
    /// have some.
    pub async fn from_env(desired: &DesiredState) -> Self {
        use super::digitalocean::{ApiConfig, DoClient, spaces::SpacesConfig};
        let per_minute = desired.settings.rate_limits.digitalocean_per_minute;
        let digitalocean = ApiConfig::from_env(per_minute)
            .and_then(DoClient::new)
            .map(|client| DoProvider {
                client,
                spaces: SpacesConfig::from_env().ok(),
                poll_every: std::time::Duration::from_secs(10),
            });
        let github = super::github::GhApiConfig::from_env()
            .and_then(super::github::GhClient::new)
            .map(GhProvider::new);
        let clouds = Clouds {
            digitalocean,
            github,
            aws: tokio::sync::OnceCell::new(),
        };
        if desired
            .resources
            .values()
            .any(|r| r.kind().provider() == "aws")
        {
            clouds.aws_for(desired).await;
        }
        clouds
    }

    async fn aws_for(&self, desired: &DesiredState) -> &Result<AwsProvider, String> {
        self.aws
            .get_or_init(|| AwsProvider::from_env(desired))
            .await
    }

    /// Checks the desired state's regions, sizes and Kubernetes versions against what the
    /// clouds offer ([`crate::desired::catalog`]): `Err` with every problem, rendered with
    /// its location and a suggestion, when a value is not offered (the plan is refused).
    /// `Ok(Some(why))` when the DigitalOcean catalogs could not be read: those values are
    /// unchecked in this pass, and the caller says so (never a silent pass).
    pub async fn check_catalogs(
        &self,
        desired: &DesiredState,
    ) -> Result<Option<String>, Vec<String>> {
        use crate::desired::catalog;
        let mut warning = None;
        let do_catalogs = if catalog::needs_do_catalogs(desired) {
            match &self.digitalocean {
                Ok(p) => match p.client.catalogs().await {
                    Ok(c) => Some(c),
                    Err(e) => {
                        warning = Some(format!(
                            "the DigitalOcean catalogs could not be read ({}): regions, sizes and Kubernetes versions are not checked in this plan",
                            crate::errors::chain(&e)
                        ));
                        None
                    }
                },
                // No credentials: every DigitalOcean kind is reported as not observed, and
                // nothing of it is planned.
                Err(_) => None,
            }
        } else {
            None
        };
        let problems = catalog::check(desired, do_catalogs.as_deref());
        if problems.is_empty() {
            Ok(warning)
        } else {
            Err(problems)
        }
    }

    /// Observes every kind the desired state or the ledger uses ([`used_kinds`]). A provider
    /// that is not available (no credentials) has every kind of it unknown, with the
    /// reason; a kind in use that a provider's answer leaves out is unknown too, never
    /// empty.
    pub async fn observe(&self, desired: &DesiredState, ledger: &Ledger) -> LiveState {
        let mut live = LiveState::default();
        let used = used_kinds(desired, ledger);
        let uses = |provider: &str| used.iter().any(|k| k.provider() == provider);
        let unknown = |why: &str| KindObservation {
            status: ObserveStatus::Failed(why.to_string()),
            objects: Vec::new(),
            failed_scopes: Vec::new(),
        };
        let (d, g, a) = futures_util::join!(
            async {
                match &self.digitalocean {
                    Ok(p) if uses("digitalocean") => {
                        Some(Ok(Box::pin(p.observe(desired, ledger)).await))
                    }
                    Err(why) if uses("digitalocean") => Some(Err(why.clone())),
                    _ => None,
                }
            },
            async {
                match &self.github {
                    Ok(p) if uses("github") => Some(Ok(Box::pin(p.observe(desired, ledger)).await)),
                    Err(why) if uses("github") => Some(Err(why.clone())),
                    _ => None,
                }
            },
            async {
                if !uses("aws") {
                    return None;
                }
                match self.aws_for(desired).await {
                    Ok(p) => Some(Ok(Box::pin(p.observe(desired, ledger)).await)),
                    Err(why) => Some(Err(why.clone())),
                }
            }
        );
        for (provider, result) in [("digitalocean", d), ("github", g), ("aws", a)] {
            let found = match result {
                Some(Ok(found)) => found,
                Some(Err(why)) => Kind::ALL
                    .iter()
                    .filter(|k| k.provider() == provider)
                    .map(|k| (*k, unknown(&why)))
                    .collect(),
                None => BTreeMap::new(),
            };
            for (k, o) in found {
                live.kinds.insert(k.key().to_string(), o);
            }
            live.mark_missing(
                used.iter().copied().filter(|k| k.provider() == provider),
                &format!("the {provider} provider did not report this kind"),
            );
        }
        live.observed_at = Some(crate::ledger::lease::rfc3339(std::time::SystemTime::now()));
        live
    }
}

impl Provider for Clouds {
    async fn apply(&self, req: ApplyRequest<'_>) -> Result<Applied, ProviderError> {
        match req.kind.provider() {
            // Each provider's future lives on the heap: together they would make this one
            // too large for a thread's stack in debug builds.
            "digitalocean" => match &self.digitalocean {
                Ok(p) => Box::pin(p.apply(req)).await,
                Err(why) => Err(ProviderError::msg(why.clone())),
            },
            "github" => match &self.github {
                Ok(p) => Box::pin(p.apply(req)).await,
                Err(why) => Err(ProviderError::msg(why.clone())),
            },
            "aws" => match self.aws.get() {
                Some(Ok(p)) => Box::pin(p.apply(req)).await,
                Some(Err(why)) => Err(ProviderError::msg(why.clone())),
                None => Err(ProviderError::msg("the AWS provider was not set up")),
            },
            other => Err(ProviderError::msg(format!("{other} is not a provider"))),
        }
    }

    async fn secret_output(
        &self,
        kind: Kind,
        id: &str,
        output: &str,
        spec: Option<&Value>,
    ) -> Result<Option<SecretValue>, ProviderError> {
        match kind.provider() {
            "digitalocean" => match &self.digitalocean {
                Ok(p) => Box::pin(p.secret_output(kind, id, output, spec)).await,
                Err(_) => Ok(None),
            },
            "aws" => match self.aws.get() {
                Some(Ok(p)) => Box::pin(p.secret_output(kind, id, output, spec)).await,
                _ => Ok(None),
            },
            _ => Ok(None),
        }
    }

    async fn retire(&self, kind: Kind, id: &str, parts: &[String]) -> Result<(), ProviderError> {
        match kind.provider() {
            "digitalocean" => match &self.digitalocean {
                Ok(p) => Box::pin(p.retire(kind, id, parts)).await,
                Err(why) => Err(ProviderError::msg(why.clone())),
            },
            "github" => match &self.github {
                Ok(p) => Box::pin(p.retire(kind, id, parts)).await,
                Err(why) => Err(ProviderError::msg(why.clone())),
            },
            "aws" => match self.aws.get() {
                Some(Ok(p)) => Box::pin(p.retire(kind, id, parts)).await,
                Some(Err(why)) => Err(ProviderError::msg(why.clone())),
                None => Err(ProviderError::msg("the AWS provider was not set up")),
            },
            other => Err(ProviderError::msg(format!("{other} is not a provider"))),
        }
    }
}
