//! provisioner's engine: the part of a reconcile that talks to the clouds. [`providers`]
//! observe and change DigitalOcean, AWS and GitHub through one seam (`Provider`) and one
//! registry (`Clouds`); [`exec`] applies a plan in dependency order and records every step
//! in the ledger; [`ledger::store`] keeps the ledger in S3 or a local folder under a lease;
//! [`reconcile`] is the loop once (`diff` is its dry run, `apply` runs it once, the daemon
//! repeats it).
//!
//! The core's modules are re-exported here under their own names ([`desired`], [`plan`],
//! [`live`], …), and [`ledger`] is the core's ledger plus the store, so code in this crate
//! and its users write `crate::plan::…` or `provisioner_engine::ledger::Ledger` whichever
//! crate an item lives in.

pub use provisioner_core::{desired, errors, fsread, live, percent, plan};

pub mod exec;
pub mod ledger;
pub mod provider;
pub mod providers;
pub mod reconcile;
pub mod signals;
