//! `provisioner run`: the daemon.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::daemon::run::RunOptions;
use crate::desired::Mode;
use crate::reconcile::PassConfig;

/// Flags of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run one pass and exit (exit codes as for `apply`).
    #[arg(long)]
    pub once: bool,
    /// Address for /metrics, /healthz, /readyz and /status (default 127.0.0.1:9464; with
    /// `--once`, nothing listens unless this is given).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Time between passes; overrides `[settings] interval` (`30s`, `5m`).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub interval: Option<Duration>,
    /// `enforce` corrects drift, `detect` only reports it; overrides `[settings] mode`.
    #[arg(long, value_name = "MODE", value_parser = parse_mode)]
    pub mode: Option<Mode>,
    /// Lease options (`--once` waits this long for the lease; the daemon never waits, it
    /// tries again at the next pass).
    #[command(flatten)]
    pub lock: super::state::LockArgs,
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    match s {
        "enforce" => Ok(Mode::Enforce),
        "detect" => Ok(Mode::Detect),
        other => Err(format!("\"{other}\" is not a mode: use enforce or detect")),
    }
}

/// Runs the daemon.
pub async fn exec(
    desired: &Path,
    inputs: &crate::desired::Inputs,
    ledger: Option<&str>,
    args: &RunArgs,
) -> ExitCode {
    let options = RunOptions {
        pass: PassConfig {
            desired_dir: desired.to_path_buf(),
            ledger_url: ledger.map(str::to_string),
            inputs: inputs.clone(),
            mode: args.mode,
            targets: Vec::new(),
            replace: Default::default(),
            allow_destroy: Default::default(),
        },
        listen: match (&args.listen, args.once) {
            (Some(l), _) => Some(l.clone()),
            (None, true) => None,
            (None, false) => Some("127.0.0.1:9464".to_string()),
        },
        once: args.once,
        interval: args.interval,
        lock_timeout: args.lock.lock_timeout,
    };
    ExitCode::from(crate::daemon::run::run(options).await)
}
