//! The DigitalOcean provider. `client` talks to the API v2 with the rate-limit discipline the
//! account needs; `observe` lists every kind into the desired state's vocabulary; `apply`
//! creates, updates, replaces and deletes; `spaces` handles Spaces buckets through the
//! S3-compatible Spaces API.

pub mod apply;
pub mod client;
pub mod observe;
pub mod spaces;

pub use client::{ApiConfig, DoClient, DoError};

/// The DigitalOcean provider: the API client, the Spaces credentials, and how often to poll
/// long operations.
pub struct DoProvider {
    /// The API client.
    pub client: DoClient,
    /// Spaces (S3 API) access; without it, Spaces buckets are reported as not observable.
    pub spaces: Option<spaces::SpacesConfig>,
    /// Poll interval for clusters that are provisioning or upgrading.
    pub poll_every: std::time::Duration,
}

impl crate::providers::Provider for DoProvider {
    fn name(&self) -> &'static str {
        "digitalocean"
    }

    fn request_stats(&self) -> Option<crate::providers::RequestStats> {
        Some(crate::providers::RequestStats {
            requests: self
                .client
                .stats
                .requests
                .load(std::sync::atomic::Ordering::Relaxed),
            classes: self.client.stats.classes.snapshot(),
            remaining: self.client.remaining(),
        })
    }

    /// Observes the DigitalOcean kinds of the scope, Spaces buckets included (through the
    /// Spaces API, alongside the DigitalOcean API).
    async fn observe(
        &self,
        scope: &crate::providers::ObserveScope<'_>,
    ) -> std::collections::BTreeMap<crate::desired::Kind, crate::live::KindObservation> {
        // The Spaces API is another endpoint: it is observed alongside the DigitalOcean API,
        // not after it.
        let spaces = async {
            match &self.spaces {
                Some(config) if scope.uses(crate::desired::Kind::DoSpacesBucket) => {
                    Some(spaces::observe(config, scope.desired, scope.ledger).await)
                }
                _ => None,
            }
        };
        let (mut out, spaces) = futures_util::join!(observe::observe(&self.client, scope), spaces);
        if let Some(spaces) = spaces {
            out.insert(crate::desired::Kind::DoSpacesBucket, spaces);
        } else if scope.uses(crate::desired::Kind::DoSpacesBucket) {
            out.insert(
                crate::desired::Kind::DoSpacesBucket,
                crate::live::KindObservation {
                    status: crate::live::ObserveStatus::Failed(
                        "no Spaces credentials: set SPACES_ACCESS_KEY_ID and SPACES_SECRET_ACCESS_KEY".into(),
                    ),
                    objects: Vec::new(),
                    failed_scopes: Vec::new(),
                },
            );
        }
        out
    }

    async fn apply(
        &self,
        req: crate::providers::ApplyRequest<'_>,
    ) -> Result<crate::providers::Applied, crate::providers::ProviderError> {
        if req.kind == crate::desired::Kind::DoSpacesBucket {
            let config = self.spaces.as_ref().ok_or_else(|| {
                crate::providers::ProviderError::msg(
                    "no Spaces credentials: set SPACES_ACCESS_KEY_ID and SPACES_SECRET_ACCESS_KEY",
                )
            })?;
            return Box::pin(spaces::apply(config, &req)).await;
        }
        Box::pin(apply::apply(&self.client, &req, self.poll_every, &|_| {})).await
    }

    async fn secret_output(
        &self,
        kind: crate::desired::Kind,
        id: &str,
        output: &str,
        spec: Option<&serde_json::Value>,
    ) -> Result<Option<crate::providers::SecretValue>, crate::providers::ProviderError> {
        match (kind, output) {
            (crate::desired::Kind::DoKubernetesCluster, "kubeconfig") => {
                Ok(Some(apply::kubeconfig(&self.client, id, spec).await?))
            }
            _ => Ok(None),
        }
    }
}
