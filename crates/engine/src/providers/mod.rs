//! The providers — the adapters that observe and change one cloud each (`digitalocean`,
//! `aws`, `github`, `kubernetes`, `flux`), each behind [`Provider`] (the seam, in [`crate::provider`], re-exported
//! here) — and the registry, the only list of them: every provider of the build in a
//! [`Slot`] (set up, not available with the reason, or set up on first need), behind one
//! [`Changes`] that hands each request to the provider of its kind, and one observe fan-out
//! over the pass's [`ObserveScope`].
//!
//! Adding a provider means, in this file, its `pub mod`, a variant of [`AnyProvider`], an
//! arm in [`dispatch!`], and its slot in [`Clouds::new`] and [`Clouds::from_env`]; and in
//! `desired/kinds/mod.rs` (core) its kinds' lines and its name in [`PROVIDERS`]. Nothing
//! else outside its own files.

pub mod aws;
pub mod digitalocean;
pub mod github;
pub mod kubernetes;
pub mod s3api;

pub use crate::provider::*;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;

use serde_json::Value;

use crate::desired::{DesiredState, Kind};
use crate::ledger::Ledger;
use crate::live::{KindObservation, LiveState, ObserveStatus};
use aws::AwsProvider;
use digitalocean::DoProvider;
use github::GhProvider;
use kubernetes::KubeProvider;

/// One provider of the registry.
pub enum AnyProvider {
    /// DigitalOcean (API v2 and Spaces).
    DigitalOcean(DoProvider),
    /// GitHub.
    GitHub(GhProvider),
    /// AWS.
    Aws(AwsProvider),
    /// Kubernetes clusters (each resource names its own).
    Kubernetes(KubeProvider),
    /// Flux, through the Flux Operator's `FluxInstance` (the Kubernetes machinery, with
    /// clients of its own).
    Flux(KubeProvider),
}

/// Runs `$body` with `$p` bound to the provider inside an [`AnyProvider`].
macro_rules! dispatch {
    ($any:expr, $p:ident => $body:expr) => {
        match $any {
            AnyProvider::DigitalOcean($p) => $body,
            AnyProvider::GitHub($p) => $body,
            AnyProvider::Aws($p) => $body,
            AnyProvider::Kubernetes($p) => $body,
            AnyProvider::Flux($p) => $body,
        }
    };
}

impl AnyProvider {
    /// The provider's name.
    pub fn name(&self) -> &'static str {
        dispatch!(self, p => p.name())
    }
}

/// Sets up a provider on first need, from the desired state (AWS: loading the credential
/// chain may ask the instance metadata service, so a desired state without AWS never does).
type Setup =
    for<'a> fn(&'a DesiredState) -> Pin<Box<dyn Future<Output = Result<AnyProvider, String>> + 'a>>;

/// One provider's place in the registry.
pub struct Slot {
    name: &'static str,
    cell: tokio::sync::OnceCell<Result<AnyProvider, String>>,
    setup: Option<Setup>,
}

impl Slot {
    fn ready(name: &'static str, provider: Result<AnyProvider, String>) -> Self {
        Slot {
            name,
            cell: tokio::sync::OnceCell::new_with(Some(provider)),
            setup: None,
        }
    }

    fn lazy(name: &'static str, setup: Setup) -> Self {
        Slot {
            name,
            cell: tokio::sync::OnceCell::new(),
            setup: Some(setup),
        }
    }

    /// The provider, once set up and available.
    pub fn ready_provider(&self) -> Option<&AnyProvider> {
        self.cell.get().and_then(|r| r.as_ref().ok())
    }

    /// The provider, set up now if it was waiting for its first need.
    async fn get(&self, desired: &DesiredState) -> &Result<AnyProvider, String> {
        match self.setup {
            Some(setup) => self.cell.get_or_init(|| setup(desired)).await,
            None => self.cell.get().expect("a slot without setup is set"),
        }
    }

    /// The provider as set up so far (`None`: not needed yet).
    fn current(&self) -> Option<&Result<AnyProvider, String>> {
        self.cell.get()
    }
}

/// The providers of a process. `Err` in a slot carries the reason the provider is not
/// available (missing credentials).
pub struct Clouds {
    slots: Vec<Slot>,
}

impl std::fmt::Debug for Clouds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Clouds");
        for s in &self.slots {
            d.field(s.name, &s.current().map(|r| r.as_ref().map(|_| ())));
        }
        d.finish()
    }
}

/// The providers of this build, by name: the language's list (`desired::kinds::PROVIDERS`,
/// in the order plans list them), which the registry's slots match one for one (a test holds
/// them to it).
pub use crate::desired::kinds::PROVIDERS;

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
    /// Providers made in code (tests, benchmarks, the sandbox), all set up.
    pub fn new(
        digitalocean: Result<DoProvider, String>,
        github: Result<GhProvider, String>,
        aws: Result<AwsProvider, String>,
    ) -> Self {
        Clouds {
            slots: vec![
                Slot::ready("digitalocean", digitalocean.map(AnyProvider::DigitalOcean)),
                Slot::ready("github", github.map(AnyProvider::GitHub)),
                Slot::ready("aws", aws.map(AnyProvider::Aws)),
                Slot::ready(
                    "kubernetes",
                    Ok(AnyProvider::Kubernetes(KubeProvider::new(
                        None,
                        Default::default(),
                    ))),
                ),
                Slot::ready(
                    "flux",
                    Ok(AnyProvider::Flux(KubeProvider::flux(
                        None,
                        Default::default(),
                    ))),
                ),
            ],
        }
    }

    /// The same registry with this Kubernetes provider ([`Clouds::new`] makes one that
    /// reads no DigitalOcean kubeconfig while observing).
    pub fn with_kubernetes(mut self, kubernetes: KubeProvider) -> Self {
        if let Some(slot) = self.slots.iter_mut().find(|s| s.name == "kubernetes") {
            *slot = Slot::ready("kubernetes", Ok(AnyProvider::Kubernetes(kubernetes)));
        }
        self
    }

    /// The same registry with this `flux` provider (made with [`KubeProvider::flux`]).
    pub fn with_flux(mut self, flux: KubeProvider) -> Self {
        if let Some(slot) = self.slots.iter_mut().find(|s| s.name == "flux") {
            *slot = Slot::ready("flux", Ok(AnyProvider::Flux(flux)));
        }
        self
    }

    /// The providers configured from the environment (`DIGITALOCEAN_TOKEN`, `SPACES_*`,
    /// `GITHUB_TOKEN`, `GITHUB_API_URL`, the AWS chain). AWS is set up now when the desired
    /// state has AWS resources, else by [`Clouds::observe_scope`] once the ledger turns out
    /// to have some.
    pub async fn from_env(desired: &DesiredState) -> Self {
        use digitalocean::{ApiConfig, DoClient, spaces::SpacesConfig};
        let per_minute = desired.settings.rate_limits.digitalocean_per_minute;
        let digitalocean = ApiConfig::from_env(per_minute)
            .and_then(DoClient::new)
            .map(|client| {
                AnyProvider::DigitalOcean(DoProvider {
                    client,
                    spaces: SpacesConfig::from_env().ok(),
                    poll_every: std::time::Duration::from_secs(10),
                })
            });
        let github = github::GhApiConfig::from_env()
            .and_then(github::GhClient::new)
            .map(|c| AnyProvider::GitHub(GhProvider::new(c)));
        let clouds = Clouds {
            slots: vec![
                Slot::ready("digitalocean", digitalocean),
                Slot::ready("github", github),
                Slot::lazy("aws", |desired| {
                    Box::pin(
                        async move { AwsProvider::from_env(desired).await.map(AnyProvider::Aws) },
                    )
                }),
                Slot::ready(
                    "kubernetes",
                    Ok(AnyProvider::Kubernetes(KubeProvider::from_env(per_minute))),
                ),
                Slot::ready(
                    "flux",
                    Ok(AnyProvider::Flux(KubeProvider::flux_from_env(per_minute))),
                ),
            ],
        };
        for slot in &clouds.slots {
            if desired
                .resources
                .values()
                .any(|r| r.kind().provider() == slot.name)
            {
                slot.get(desired).await;
            }
        }
        clouds
    }

    /// The slot of provider `name`.
    pub fn slot(&self, name: &str) -> Option<&Slot> {
        self.slots.iter().find(|s| s.name == name)
    }

    /// The providers set up and available so far.
    pub fn ready(&self) -> impl Iterator<Item = &AnyProvider> {
        self.slots.iter().filter_map(Slot::ready_provider)
    }

    /// The AWS provider, once set up (`None`: nothing has needed AWS yet).
    pub fn aws(&self) -> Option<Result<&AwsProvider, &String>> {
        self.slot("aws")?.current().map(|r| match r {
            Ok(AnyProvider::Aws(p)) => Ok(p),
            Ok(_) => unreachable!("the aws slot holds the AWS provider"),
            Err(why) => Err(why),
        })
    }

    /// What each available provider's client has put on the wire so far, by provider
    /// (providers whose clients keep no count are left out).
    pub fn request_stats(&self) -> BTreeMap<&'static str, RequestStats> {
        self.ready()
            .filter_map(|p| Some((p.name(), dispatch!(p, p => p.request_stats())?)))
            .collect()
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
            match self.slot("digitalocean").and_then(Slot::ready_provider) {
                Some(AnyProvider::DigitalOcean(p)) => match p.client.catalogs().await {
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
                _ => None,
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

    /// Observes every kind the desired state or the ledger uses ([`used_kinds`]).
    pub async fn observe(&self, desired: &DesiredState, ledger: &Ledger) -> LiveState {
        self.observe_scope(&ObserveScope::new(desired, ledger))
            .await
    }

    /// Observes the kinds of `scope`, every provider at once. A provider that is not
    /// available (no credentials) has every kind of it in the scope unknown, with the
    /// reason; a kind in the scope that a provider's answer leaves out is unknown too, never
    /// empty.
    pub async fn observe_scope(&self, scope: &ObserveScope<'_>) -> LiveState {
        let mut live = LiveState::default();
        let unknown = |why: &str| KindObservation {
            status: ObserveStatus::Failed(why.to_string()),
            objects: Vec::new(),
            failed_scopes: Vec::new(),
        };
        let answers = futures_util::future::join_all(
            self.slots
                .iter()
                .filter(|slot| scope.uses_provider(slot.name))
                .map(|slot| async move {
                    let found = match slot.get(scope.desired).await {
                        // Each provider's future lives on the heap: together they would
                        // make this one too large for a thread's stack in debug builds.
                        Ok(p) => dispatch!(p, p => Box::pin(p.observe(scope)).await),
                        Err(why) => scope
                            .kinds
                            .iter()
                            .filter(|k| k.provider() == slot.name)
                            .map(|k| (*k, unknown(why)))
                            .collect(),
                    };
                    (slot.name, found)
                }),
        )
        .await;
        for (provider, found) in answers {
            for (k, o) in found {
                // A provider speaks for its own kinds only (an answer for another's would
                // overwrite that provider's observation).
                if scope.uses(k) && k.provider() == provider {
                    live.kinds.insert(k.key().to_string(), o);
                }
            }
            live.mark_missing(
                scope
                    .kinds
                    .iter()
                    .copied()
                    .filter(|k| k.provider() == provider),
                &format!("the {provider} provider did not report this kind"),
            );
        }
        // A kind of no provider of this build.
        live.mark_missing(
            scope
                .kinds
                .iter()
                .copied()
                .filter(|k| !PROVIDERS.contains(&k.provider())),
            "no provider of this build observes this kind",
        );
        live.observed_at = Some(crate::ledger::lease::rfc3339(std::time::SystemTime::now()));
        live
    }

    /// The provider of `kind`, or why there is none.
    fn provider_of(&self, kind: Kind) -> Result<&AnyProvider, ProviderError> {
        let slot = self
            .slot(kind.provider())
            .ok_or_else(|| ProviderError::msg(format!("{} is not a provider", kind.provider())))?;
        match slot.current() {
            Some(Ok(p)) => Ok(p),
            // A slot holds why its provider could not be set up: missing or malformed
            // credentials or endpoints, which only the operator can change.
            Some(Err(why)) => Err(ProviderError::not_configured(why.clone())),
            None => Err(ProviderError::not_configured(format!(
                "the {} provider was not set up",
                slot.name
            ))),
        }
    }
}

impl Changes for Clouds {
    async fn apply(&self, req: ApplyRequest<'_>) -> Result<Applied, ProviderError> {
        let p = self.provider_of(req.kind)?;
        // Boxed: together the providers' futures would make this one too large for a
        // thread's stack in debug builds.
        dispatch!(p, p => Box::pin(Provider::apply(p, req)).await)
    }

    async fn secret_output(
        &self,
        kind: Kind,
        id: &str,
        output: &str,
        spec: Option<&Value>,
    ) -> Result<Option<SecretValue>, ProviderError> {
        match self.provider_of(kind) {
            Ok(p) => {
                dispatch!(p, p => Box::pin(Provider::secret_output(p, kind, id, output, spec)).await)
            }
            Err(_) => Ok(None),
        }
    }

    async fn retire(&self, kind: Kind, id: &str, parts: &[String]) -> Result<(), ProviderError> {
        let p = self.provider_of(kind)?;
        dispatch!(p, p => Box::pin(Provider::retire(p, kind, id, parts)).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_change_for_a_provider_that_is_not_set_up_is_not_configured_not_rejected() {
        let clouds = Clouds::new(
            Err("DIGITALOCEAN_TOKEN is not set".into()),
            Err("none".into()),
            Err("none".into()),
        );
        let e = Changes::retire(&clouds, Kind::DoKubernetesCluster, "id", &[])
            .await
            .expect_err("no provider");
        assert_eq!(e.failure, crate::provider::Failure::NotConfigured);
        assert!(!e.is_retryable());
        assert!(e.message.contains("DIGITALOCEAN_TOKEN"), "{}", e.message);
    }

    #[test]
    fn every_concurrency_setting_is_a_provider_of_the_registry_and_back() {
        use crate::desired::model::{Concurrency, Settings};
        let keys: Vec<&str> = Concurrency::fields()
            .iter()
            .map(|f| f.name)
            .filter(|n| !Concurrency::NOT_PROVIDERS.contains(n))
            .collect();
        let settings = Settings::default();
        for key in &keys {
            assert!(
                PROVIDERS.contains(key),
                "[settings.concurrency] {key} is not a provider"
            );
            assert!(
                settings.concurrency.for_provider(key).is_some(),
                "[settings.concurrency] {key} is not read by Concurrency::for_provider"
            );
        }
        let options = crate::exec::ExecOptions::from_settings(&settings);
        let limited: Vec<&str> = options.concurrency.keys().copied().collect();
        // BTreeMap keys come sorted.
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(limited, sorted);
    }

    #[test]
    fn every_kind_has_a_provider_in_the_registry() {
        for k in Kind::ALL {
            assert!(
                PROVIDERS.contains(&k.provider()),
                "{k}: provider {} is not in the registry",
                k.provider()
            );
        }
        let clouds = Clouds::new(Err("none".into()), Err("none".into()), Err("none".into()));
        let mut names: Vec<&str> = clouds.slots.iter().map(|s| s.name).collect();
        names.sort_unstable();
        let mut providers = PROVIDERS.to_vec();
        providers.sort_unstable();
        assert_eq!(names, providers);
    }
}
