//! Subcommands whose implementation has not landed yet. They exist so that the interface
//! contract is visible from the first release; each says plainly what it is waiting for and
//! exits 1 rather than pretending to work.

use std::process::ExitCode;

use clap::Args;

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

/// Reports that a command has not landed yet.
pub fn exec(command: &str, waiting_for: &str) -> ExitCode {
    eprintln!(
        "error: `provisioner {command}` is not available in this build yet: it arrives with {waiting_for}.\n\
         `provisioner validate` works today."
    );
    ExitCode::FAILURE
}
