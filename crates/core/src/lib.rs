//! provisioner's core: what it means to keep infrastructure equal to a declarative TOML
//! description, with no I/O beyond reading the description's files. One reconcile is a loop
//! of four steps: *load* the desired state from a folder of TOML and validate it into a
//! typed graph ([`desired`]); *observe* the clouds by listing each kind (the result is a
//! [`live::LiveState`]); *plan*, a pure function of the desired state, the ledger
//! (provisioner's memory of what it created, [`ledger`]) and the observed state ([`plan`]);
//! *apply* the plan in dependency order, recording every step in the ledger. Observing and
//! applying need the clouds' APIs, so they live in `provisioner-engine`; this crate has no
//! async runtime and no SDK, and its tests build without either.
//!
//! ```
//! use provisioner_core::{desired, ledger::Ledger, live::LiveState, plan};
//!
//! // The worked example's production environment against an empty cloud and an empty
//! // ledger: everything is created.
//! let inputs = desired::Inputs { environment: Some("production".into()), ..Default::default() };
//! let state = desired::load_with(std::path::Path::new("../../desired-state"), &inputs).expect("valid");
//! let (plan, _report) = plan::plan(&state, &Ledger::default(), &LiveState::default()).expect("plan");
//! assert_eq!(plan.changes.len(), state.resources.len());
//! ```

pub mod desired;
pub mod errors;
pub mod fsread;
pub mod ledger;
pub mod live;
pub mod percent;
pub mod plan;
