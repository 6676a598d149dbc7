//! Subcommands whose implementation has not landed yet. They exist so that the interface
//! contract is visible from the first release; each says plainly what it is waiting for and
//! exits 1 rather than pretending to work.

use std::process::ExitCode;

use clap::{Args, Subcommand};

/// Flags of `apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Do not ask for confirmation.
    #[arg(long)]
    pub auto_approve: bool,
    /// Limit the apply to these addresses and what they depend on.
    #[arg(long, value_name = "ADDR")]
    pub target: Vec<String>,
}

/// Flags of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run one pass and exit.
    #[arg(long)]
    pub once: bool,
    /// Address for /metrics, /healthz, /readyz and /status.
    #[arg(long, default_value = "127.0.0.1:9464", value_name = "ADDR")]
    pub listen: String,
}

/// `state` subcommands.
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// List managed resources.
    List,
    /// Show one resource's ledger entry.
    Show {
        /// Address.
        address: String,
    },
    /// Show the ledger's version history.
    History,
    /// Make an earlier ledger version the latest.
    Rollback {
        /// Version to restore.
        version: String,
    },
    /// Stop managing a resource, leaving the cloud object alone.
    Forget {
        /// Address.
        address: String,
    },
    /// Adopt an existing cloud object under an address.
    Import {
        /// Address.
        address: String,
        /// The cloud's id for the object.
        cloud_id: String,
    },
    /// Break a lease lock held by a dead process.
    Unlock {
        /// Required: breaking a lock is a human decision.
        #[arg(long)]
        force: bool,
        /// The lease to break.
        lease_id: String,
    },
}

impl StateCommand {
    /// The full command name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            StateCommand::List => "state list",
            StateCommand::Show { .. } => "state show",
            StateCommand::History => "state history",
            StateCommand::Rollback { .. } => "state rollback",
            StateCommand::Forget { .. } => "state forget",
            StateCommand::Import { .. } => "state import",
            StateCommand::Unlock { .. } => "state unlock",
        }
    }
}

/// `ledger` subcommands.
#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Upgrade the ledger document to this version's schema.
    Migrate,
}

/// Reports that a command has not landed yet.
pub fn exec(command: &str, waiting_for: &str) -> ExitCode {
    eprintln!(
        "error: `provisioner {command}` is not available in this build yet: it arrives with {waiting_for}.\n\
         `provisioner validate` works today."
    );
    ExitCode::FAILURE
}
