//! `provisioner sandbox`: the whole loop on one machine with no cloud account. It starts
//! the DigitalOcean, GitHub and AWS simulators on free loopback ports, a local ledger in a
//! temporary folder, shows the plan, and runs the daemon on the desired state (the worked
//! example by default). Then, every `--drift-every`, it changes something behind the
//! daemon's back — a node pool scaled in the console, a firewall rule added, a DNS record
//! deleted, a GitHub secret overwritten, bucket versioning suspended — and reports when the
//! daemon has corrected it (or, with `--mode detect`, reported it). Ctrl-C stops everything.
//!
//! The simulators come from `provisioner-sim`, which this binary has only with the
//! `sandbox` feature (on by default). Without it the command is still listed and says how
//! to get it.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

#[cfg(feature = "sandbox")]
mod run;

/// Flags of `sandbox`.
#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// `enforce` corrects the injected drift, `detect` only reports it.
    #[arg(long, default_value = "enforce", value_parser = ["enforce", "detect"])]
    pub mode: String,
    /// Time between drift injections.
    #[arg(long, default_value = "20s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub drift_every: Duration,
    /// Inject no drift: just converge and keep reconciling.
    #[arg(long)]
    pub no_drift: bool,
    /// Time between the daemon's passes.
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Where the daemon serves /metrics and /status (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:9464", value_name = "ADDR")]
    pub listen: String,
    /// Show the whole plan and the daemon's log as it goes (by default: a few lines per
    /// step, the daemon's log in a file).
    #[arg(short, long)]
    pub verbose: bool,
}

/// Runs the sandbox.
pub async fn exec(desired: &Path, inputs: &crate::desired::Inputs, args: &SandboxArgs) -> ExitCode {
    #[cfg(feature = "sandbox")]
    let result = run::sandbox(desired, inputs, args).await;
    #[cfg(not(feature = "sandbox"))]
    let result: anyhow::Result<()> = {
        let _ = (desired, inputs, args);
        Err(anyhow::anyhow!(
            "this provisioner was built without the simulators (`--no-default-features`); \
             `provisioner sandbox` needs the default `sandbox` feature: `cargo run -- sandbox`"
        ))
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            super::print_error(&e);
            ExitCode::FAILURE
        }
    }
}
