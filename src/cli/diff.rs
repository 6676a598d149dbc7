//! `provisioner diff`: the reconcile pass as a dry run ([`crate::reconcile`]): plan against
//! the ledger and the observed (or snapshot) live state, render the plan, change nothing.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::SystemTime;

use anyhow::{Context, bail};
use clap::Args;

use crate::ledger::lease::rfc3339;
use crate::live::{LIVE_FORMAT_VERSION, LiveState};
use crate::plan::display::PlanDisplay;
use crate::plan::{Plan, PlanReport};
use crate::reconcile::{LogProgress, PassConfig, PassError, PassOptions, Planned, Reconciler};

/// Flags of `diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Print the plan as JSON (see docs/plan-json.md).
    #[arg(long)]
    pub json: bool,
    /// Exit 0 when there is nothing to do, 2 when there are changes, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Plan against a JSON snapshot of the live state instead of observing the clouds.
    #[arg(long, value_name = "FILE")]
    pub live_from: Option<PathBuf>,
    /// Also list resources that are unchanged.
    #[arg(short, long)]
    pub verbose: bool,
    /// Save the plan to FILE, for `provisioner apply FILE` to carry out exactly (see
    /// docs/running.md, "Saved plans").
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Plan only this address and what it depends on (repeatable), as `apply --target`.
    #[arg(long, value_name = "ADDR")]
    pub target: Vec<String>,
    /// Plan replacing this resource although nothing forces it (repeatable), as
    /// `apply --replace`.
    #[arg(long, value_name = "ADDR")]
    pub replace: Vec<String>,
    /// Let the plan destroy a resource protected by `prevent_destroy` (repeatable), as
    /// `apply --allow-destroy`.
    #[arg(long, value_name = "ADDR")]
    pub allow_destroy: Vec<String>,
}

/// Runs the command.
pub async fn exec(
    dir: &Path,
    inputs: &crate::desired::Inputs,
    ledger_url: Option<&str>,
    args: &DiffArgs,
) -> ExitCode {
    match run(dir, inputs, ledger_url, args).await {
        Ok((plan, report)) => {
            if args.json {
                outln!("{}", to_json(&plan, &report));
            } else {
                let color =
                    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
                crate::cli::write_out(&format!(
                    "{}",
                    PlanDisplay {
                        plan: &plan,
                        report: &report,
                        color,
                        verbose: args.verbose
                    }
                ));
            }
            exit_code(&plan, &report, args.detailed_exitcode)
        }
        Err(e) => {
            match e.downcast_ref::<PassError>() {
                // The validation report, as `validate` prints it.
                Some(PassError::Desired(errors)) => errln!("{errors}"),
                _ => super::print_error(&e),
            }
            ExitCode::FAILURE
        }
    }
}

/// `diff`'s exit code: 3 whenever a kind the plan needed could not be observed (with or
/// without `--detailed-exitcode`: an incomplete plan never exits 0); with
/// `--detailed-exitcode`, 2 when there are changes to make or conflicts to resolve, 0 when
/// the clouds match; without it, 0. Errors exit 1 (see [`exec`]).
pub fn exit_code(plan: &Plan, report: &PlanReport, detailed: bool) -> ExitCode {
    if !report.is_complete() {
        ExitCode::from(3)
    } else if detailed && (plan.has_changes() || plan.conflicts().next().is_some()) {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

/// The pass as a dry run: read the ledger, observe (or read the snapshot), plan, and save
/// the plan when asked; nothing is written to the ledger or the clouds.
async fn run(
    dir: &Path,
    inputs: &crate::desired::Inputs,
    ledger_url: Option<&str>,
    args: &DiffArgs,
) -> anyhow::Result<(Plan, PlanReport)> {
    let targets = super::apply::addresses(&args.target)?;
    let replace = super::apply::addresses(&args.replace)?;
    let allow_destroy = super::apply::addresses(&args.allow_destroy)?;
    let config = PassConfig {
        desired_dir: dir.to_path_buf(),
        ledger_url: ledger_url.map(str::to_string),
        inputs: inputs.clone(),
        mode: None,
        targets: targets.clone(),
        replace: replace.iter().cloned().collect(),
        allow_destroy: allow_destroy.iter().cloned().collect(),
    };
    let mut reconciler = Reconciler::default();
    let loaded = reconciler.load(&config, true).await?;
    // Planning writes nothing: no lease.
    let store = reconciler.ledger(&loaded.ledger_url).await?;
    for w in &store.warnings {
        errln!("warning: {w}");
    }
    for w in &loaded.warnings {
        errln!("warning: {w}");
    }
    for n in &loaded.notes {
        errln!("note: {n}");
    }
    let live_from = match &args.live_from {
        Some(path) => Some(read_live(path)?),
        None => {
            // The kinds of providers this build lacks, or lacks credentials for, are
            // reported as not observed, so the plan changes nothing of theirs and says why.
            reconciler.providers(&loaded.desired).await;
            None
        }
    };
    let warn = |why: &str| errln!("warning: {why}");
    let options = PassOptions {
        dry_run: true,
        targets: &targets,
        live_from,
        command: "diff",
        started_at: rfc3339(SystemTime::now()),
        warn: &warn,
    };
    let save = async |planned: &Planned| -> anyhow::Result<()> {
        let Some(out) = &args.out else {
            return Ok(());
        };
        if args.live_from.is_some() {
            bail!(
                "a plan made against a snapshot (--live-from) cannot be saved: it would be applied against clouds it never saw"
            );
        }
        let read = planned.read.clone().unwrap_or_default();
        let basis = super::planfile::Basis {
            ledger: loaded.ledger_url.clone(),
            lineage: read.0,
            serial: read.1,
            desired_digest: super::planfile::desired_digest(dir, &loaded.desired)?,
            observed_at: planned.live.observed_at.clone(),
            targets: targets.clone(),
            replace: replace.clone(),
            allow_destroy: allow_destroy.clone(),
        };
        super::planfile::write(out, basis, &planned.plan, &planned.report)?;
        errln!(
            "Saved the plan to {}: `provisioner apply {}` carries out exactly this plan.",
            out.display(),
            out.display()
        );
        Ok(())
    };
    let stop = Arc::new(AtomicBool::new(false));
    let passed = reconciler
        .pass(&loaded, options, save, &LogProgress, stop)
        .await?;
    Ok((passed.planned.plan, passed.planned.report))
}

/// Reads a live-state snapshot.
pub fn read_live(path: &Path) -> anyhow::Result<LiveState> {
    // A regular file of at most 256 MiB (a snapshot of 10,000 objects is a few MB).
    let bytes = crate::fsread::read_regular(path, 256 << 20)
        .with_context(|| format!("reading live-state snapshot {}", path.display()))?;
    let text = String::from_utf8(bytes)
        .with_context(|| format!("reading live-state snapshot {}", path.display()))?;
    let mut live: LiveState = serde_json::from_str(&text)
        .with_context(|| format!("parsing live-state snapshot {}", path.display()))?;
    // Unknown is never absent: a kind the snapshot leaves out was not observed.
    live.mark_missing(
        crate::desired::Kind::ALL.iter().copied(),
        &format!("not in the snapshot {}", path.display()),
    );
    if live.format_version != LIVE_FORMAT_VERSION {
        bail!(
            "{}: snapshot format_version {} is not supported (this build reads {LIVE_FORMAT_VERSION})",
            path.display(),
            live.format_version
        );
    }
    Ok(live)
}

/// The JSON plan: the same plan, with a summary and the report's notes.
pub fn to_json(plan: &Plan, report: &PlanReport) -> String {
    let summary: serde_json::Map<String, serde_json::Value> = plan
        .counts()
        .into_iter()
        .map(|(a, n)| (a.as_str().to_string(), n.into()))
        .collect();
    let doc = serde_json::json!({
        "format_version": plan.format_version,
        "environment": plan.environment,
        "summary": summary,
        "has_changes": plan.has_changes(),
        "complete": report.is_complete(),
        "unobserved": report.unobserved,
        "drift": plan.drifted().count(),
        "conflicts": plan.conflicts().count(),
        "changes": plan.changes,
        "notes": report.notes,
    });
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}
