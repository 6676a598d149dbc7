//! Every configured provider behind one [`Provider`]: a change goes to the provider of its
//! kind; a provider without credentials says which variables to set.

use std::collections::BTreeMap;

use serde_json::Value;

use super::aws::AwsProvider;
use super::digitalocean::DoProvider;
use super::github::GhProvider;
use super::{Applied, ApplyRequest, Provider, ProviderError, SecretValue};
use crate::desired::{DesiredState, Kind};
use crate::ledger::Ledger;
use crate::live::{KindObservation, LiveState, ObserveStatus};

/// The providers of one pass. `None` carries the reason the provider is not available
/// (missing credentials).
pub struct Clouds {
    /// DigitalOcean.
    pub digitalocean: Result<DoProvider, String>,
    /// GitHub.
    pub github: Result<GhProvider, String>,
    /// AWS.
    pub aws: Result<AwsProvider, String>,
}

impl std::fmt::Debug for Clouds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clouds")
            .field("digitalocean", &self.digitalocean.is_ok())
            .field("github", &self.github.as_ref().map(|_| ()))
            .field("aws", &self.aws.as_ref().map(|_| ()))
            .finish()
    }
}

impl Clouds {
    /// The providers configured from the environment (`DIGITALOCEAN_TOKEN`, `SPACES_*`,
    /// `GITHUB_TOKEN`, `GITHUB_API_URL`, the AWS chain). AWS is only configured when the
    /// desired state has AWS resources (loading its credential chain may ask the instance
    /// metadata service).
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
        let wants_aws = desired
            .resources
            .values()
            .any(|r| r.kind().provider() == "aws");
        let aws = if wants_aws {
            AwsProvider::from_env(desired).await
        } else {
            Err("the desired state has no AWS resources".to_string())
        };
        Clouds {
            digitalocean,
            github,
            aws,
        }
    }

    /// Observes every kind the desired state or the ledger uses; kinds of a provider that is
    /// not available (or not built yet) are unknown, with the reason.
    pub async fn observe(&self, desired: &DesiredState, ledger: &Ledger) -> LiveState {
        let mut live = LiveState::default();
        let used = |provider: &str| {
            desired
                .resources
                .values()
                .any(|r| r.kind().provider() == provider)
                || ledger
                    .resources
                    .values()
                    .any(|e| e.kind.split('.').next() == Some(provider))
        };
        let unknown = |why: &str| KindObservation {
            status: ObserveStatus::Failed(why.to_string()),
            objects: Vec::new(),
        };
        let mut put = |found: BTreeMap<Kind, KindObservation>| {
            for (k, o) in found {
                live.kinds.insert(k.key().to_string(), o);
            }
        };
        let (d, g, a) = futures_util::join!(
            async {
                match &self.digitalocean {
                    Ok(p) if used("digitalocean") => {
                        Some(Ok(Box::pin(p.observe(desired, ledger)).await))
                    }
                    Err(why) if used("digitalocean") => Some(Err(why.clone())),
                    _ => None,
                }
            },
            async {
                match &self.github {
                    Ok(p) if used("github") => Some(Ok(Box::pin(p.observe(desired, ledger)).await)),
                    Err(why) if used("github") => Some(Err(why.clone())),
                    _ => None,
                }
            },
            async {
                match &self.aws {
                    Ok(p) if used("aws") => Some(Ok(Box::pin(p.observe(desired, ledger)).await)),
                    Err(why) if used("aws") => Some(Err(why.clone())),
                    _ => None,
                }
            }
        );
        for (provider, result) in [("digitalocean", d), ("github", g), ("aws", a)] {
            match result {
                Some(Ok(found)) => put(found),
                Some(Err(why)) => put(Kind::ALL
                    .iter()
                    .filter(|k| k.provider() == provider)
                    .map(|k| (*k, unknown(&why)))
                    .collect()),
                None => {}
            }
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
            "aws" => match &self.aws {
                Ok(p) => Box::pin(p.apply(req)).await,
                Err(why) => Err(ProviderError::msg(why.clone())),
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
            "aws" => match &self.aws {
                Ok(p) => Box::pin(p.secret_output(kind, id, output, spec)).await,
                Err(_) => Ok(None),
            },
            _ => Ok(None),
        }
    }
}
