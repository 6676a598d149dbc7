//! The ledger as the engine sees it: everything of `provisioner_core::ledger` (the model,
//! codec, migrations, fingerprints, the lease record), plus what needs I/O: [`store`]
//! keeps the document in S3 or a local folder with conditional writes, a lease lock,
//! history and an audit journal, and [`key`] loads the fingerprint key.

pub use provisioner_core::ledger::*;

pub mod key;
pub mod store;

pub use store::{Snapshot, Store};
