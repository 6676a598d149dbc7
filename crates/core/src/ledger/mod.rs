//! The ledger: provisioner's memory of what it manages. `model` is the document the planner
//! reads; `codec` and `migrate` guard its schema; `fingerprint` keys the fingerprints of
//! secret values; `lease` is the lock's record. Keeping it (in S3 or a local folder, with
//! conditional writes, the lease, history and an audit journal) is the engine's part:
//! `provisioner_engine::ledger::store`.

pub mod codec;
pub mod error;
pub mod fingerprint;
pub mod identity;
pub mod lease;
pub mod migrate;
pub mod model;

pub use error::{DecodeError, LedgerError};
pub use model::{Intent, Ledger, LedgerEntry, Written};
