//! The ledger: provisioner's memory of what it manages. `model` is the document the planner
//! reads; the stores (S3, local file) arrive with the ledger issue.

pub mod model;

pub use model::{Intent, Ledger, LedgerEntry};
