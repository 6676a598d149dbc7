//! The ledger: provisioner's memory of what it manages. `model` is the document the planner
//! reads; `store` keeps it in S3 or a local folder with conditional writes, a lease lock,
//! history and an audit journal; `codec` and `migrate` guard its schema; `fingerprint`
//! keys the fingerprints of secret values.

pub mod codec;
pub mod error;
pub mod fingerprint;
pub mod identity;
pub mod lease;
pub mod migrate;
pub mod model;
pub mod store;

pub use error::LedgerError;
pub use model::{Intent, Ledger, LedgerEntry, Written};
pub use store::{Snapshot, Store};
