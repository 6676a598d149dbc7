//! The integration tests, in one binary (as cargo's `tests/testsuite/main.rs`): every test
//! that runs the `provisioner` binary, talks HTTP to moto or a simulator, or drives the
//! executor. One binary links the SDKs once instead of once per file. The pure tests (the
//! desired state's validation and its generated reference) are in `crates/core/tests` and
//! build without any SDK; the planner's own unit tests are in `crates/core/src/plan`.
//!
//! Run one module with a filter: `cargo test --test integration aws_provider::`.

mod support;

mod adopt;
mod aws_provider;
mod catalogs;
mod cli;
mod daemon;
mod deploy;
mod diff_cli;
mod do_apply;
mod do_client;
mod do_observe;
mod environments;
mod executor;
mod fidelity;
mod gh_provider;
mod killloop;
mod kubernetes;
mod ledger;
mod plan;
mod plan_props;
mod sandbox;
mod schema;
mod sim_digitalocean;
mod sim_github;
mod sim_kubernetes;
mod sim_ses;
mod truth;
mod validate;
