//! The DigitalOcean provider. `client` talks to the API v2 with the rate-limit discipline the
//! account needs; observing and applying every kind build on it.

pub mod client;

pub use client::{ApiConfig, DoClient, DoError};
