//! The DigitalOcean provider. `client` talks to the API v2 with the rate-limit discipline the
//! account needs; `observe` lists every kind into the desired state's vocabulary. Applying
//! changes arrives next (see the issue tracker).

pub mod client;
pub mod observe;

pub use client::{ApiConfig, DoClient, DoError};
