//! Providers: the adapters that observe and change one cloud each. `digitalocean` is the
//! first (its API client so far); `fake` is an in-memory cloud for planner and executor tests.

pub mod digitalocean;
pub mod fake;
