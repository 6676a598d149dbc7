//! Providers: the adapters that observe and change one cloud each. The real ones
//! (DigitalOcean, AWS, GitHub) arrive with their issues; `fake` is an in-memory cloud for
//! planner and executor tests.

pub mod fake;
