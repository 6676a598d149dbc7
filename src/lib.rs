//! provisioner keeps DigitalOcean, AWS and GitHub infrastructure equal to a declarative TOML
//! description. One reconcile is a loop of four steps: *load* the desired state from a folder
//! of TOML and validate it into a typed graph ([`desired`]); *observe* the clouds by listing
//! each kind; *plan*, a pure function of the desired state, the ledger (provisioner's memory
//! of what it created) and the observed state; *apply* the plan in dependency order,
//! recording every step in the ledger. [`reconcile`] is that loop, once: `provisioner diff`
//! runs it as a dry run that stops after the plan, `provisioner apply` runs it once, and
//! `provisioner run` ([`daemon`]) repeats it.
//!
//! ```
//! use provisioner::{desired, ledger::Ledger, live::LiveState, plan};
//!
//! // The worked example against an empty cloud and an empty ledger: everything is created.
//! let state = desired::load(std::path::Path::new("desired-state")).expect("valid");
//! let (plan, _report) = plan::plan(&state, &Ledger::default(), &LiveState::default()).expect("plan");
//! assert_eq!(plan.changes.len(), state.resources.len());
//! ```

pub mod cli;
pub mod daemon;
pub mod desired;
pub mod errors;
pub mod exec;
pub mod fsread;
pub mod ledger;
pub mod live;
pub mod metrics;
pub mod plan;
pub mod providers;
pub mod reconcile;
pub mod signals;
pub mod sim;
