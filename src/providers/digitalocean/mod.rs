//! The DigitalOcean provider. `client` talks to the API v2 with the rate-limit discipline the
//! account needs; `observe` lists every kind into the desired state's vocabulary; `apply`
//! creates, updates, replaces and deletes. Spaces buckets (the S3-compatible Spaces API) are
//! not handled yet.

pub mod apply;
pub mod client;
pub mod observe;

pub use client::{ApiConfig, DoClient, DoError};

/// The DigitalOcean provider: a client, and how often to poll long operations.
pub struct DoProvider {
    /// The API client.
    pub client: DoClient,
    /// Poll interval for clusters that are provisioning or upgrading.
    pub poll_every: std::time::Duration,
}

impl crate::providers::Provider for DoProvider {
    async fn apply(
        &self,
        req: crate::providers::ApplyRequest<'_>,
    ) -> Result<crate::providers::Applied, crate::providers::ProviderError> {
        apply::apply(&self.client, &req, self.poll_every, &|_| {}).await
    }
}
