//! The `provisioner` binary's library: the command line ([`cli`]), the daemon ([`daemon`])
//! and its metrics ([`metrics`]). The work is done by the workspace's crates, re-exported
//! here under their module names so that `provisioner::plan::…` means the same wherever an
//! item lives:
//!
//! - `provisioner-core` ([`desired`], [`plan`], [`live`], the ledger's model, [`errors`]):
//!   load, validate and plan, with no async runtime and no SDK;
//! - `provisioner-engine` ([`providers`], [`exec`], [`ledger`] with its store, [`reconcile`],
//!   [`signals`]): the clouds' clients, the executor and the reconcile pass;
//! - `provisioner-sim` ([`sim`], only with the `sandbox` feature, on by default): the
//!   simulators `provisioner sandbox` and the tests run against, and the in-memory fake
//!   cloud. `cargo build --release --no-default-features` leaves them out.
//!
//! One reconcile is a loop of four steps: *load* the desired state from a folder of TOML and
//! validate it into a typed graph ([`desired`]); *observe* the clouds by listing each kind;
//! *plan*, a pure function of the desired state, the ledger (provisioner's memory of what it
//! created) and the observed state; *apply* the plan in dependency order, recording every
//! step in the ledger. [`reconcile`] is that loop, once: `provisioner diff` runs it as a dry
//! run that stops after the plan, `provisioner apply` runs it once, and `provisioner run`
//! ([`daemon`]) repeats it.
//!
//! ```
//! use provisioner::{desired, ledger::Ledger, live::LiveState, plan};
//!
//! // The worked example's production environment against an empty cloud and an empty
//! // ledger: everything is created.
//! let inputs = desired::Inputs { environment: Some("production".into()), ..Default::default() };
//! let state = desired::load_with(std::path::Path::new("desired-state"), &inputs).expect("valid");
//! let (plan, _report) = plan::plan(&state, &Ledger::default(), &LiveState::default()).expect("plan");
//! assert_eq!(plan.changes.len(), state.resources.len());
//! ```

pub mod cli;
pub mod daemon;
pub mod metrics;

pub use provisioner_core::{desired, errors, fsread, live, percent, plan};
pub use provisioner_engine::{exec, ledger, providers, reconcile, signals};
#[cfg(feature = "sandbox")]
pub use provisioner_sim as sim;
