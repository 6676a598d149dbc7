//! `provisioner diff`: plan against the ledger and the observed (or snapshot) live state,
//! render the plan, change nothing.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;

use crate::desired;
use crate::ledger::Ledger;
use crate::ledger::fingerprint::{FingerprintKey, KEY_ENV};
use crate::live::{LIVE_FORMAT_VERSION, LiveState};
use crate::plan::display::PlanDisplay;
use crate::plan::{self, Plan, PlanReport};

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
pub fn exec(dir: &Path, ledger_url: Option<&str>, args: &DiffArgs) -> ExitCode {
    let state = match desired::load(dir) {
        Ok(s) => s,
        Err(errors) => {
            errln!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    match run(&state, dir, ledger_url, args) {
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
            super::print_error(&e);
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

fn run(
    state: &desired::DesiredState,
    dir: &Path,
    ledger_url: Option<&str>,
    args: &DiffArgs,
) -> anyhow::Result<(Plan, PlanReport)> {
    let from_settings = state.settings.ledger.as_ref().map(|l| l.0.as_str());
    let url = ledger_url
        .or(from_settings)
        .unwrap_or(super::DEFAULT_LEDGER);
    let mut ledger = read_ledger(url)?;
    let read = (ledger.lineage.clone(), ledger.serial);
    // `[[moved]]` hints, as apply will make them (here in memory only).
    crate::exec::apply_moves(state, &mut ledger);
    let mut state = state.clone();
    let targets = super::apply::addresses(&args.target)?;
    let replace = super::apply::addresses(&args.replace)?;
    let allow_destroy = super::apply::addresses(&args.allow_destroy)?;
    for a in targets.iter().chain(&replace) {
        if !state.resources.contains_key(a) {
            bail!(
                "{a} is not in the desired state ({}): check the address (`provider.kind.name`)",
                dir.display()
            );
        }
    }
    state.replace = replace.iter().cloned().collect();
    state.allow_destroy = allow_destroy.iter().cloned().collect();
    fingerprint_secrets(&mut state)?;
    let state = &state;
    let live = match &args.live_from {
        Some(path) => read_live(path)?,
        None => observe_clouds(state, &ledger)?,
    };
    crate::ledger::identity::check_objects(&ledger, &live)?;
    let (plan, report) = plan::plan(state, &ledger, &live)?;
    let plan = crate::daemon::restrict(plan, &targets);
    if let Some(out) = &args.out {
        if args.live_from.is_some() {
            bail!(
                "a plan made against a snapshot (--live-from) cannot be saved: it would be applied against clouds it never saw"
            );
        }
        let basis = super::planfile::Basis {
            ledger: url.to_string(),
            lineage: read.0,
            serial: read.1,
            desired_digest: super::planfile::desired_digest(dir, state)?,
            observed_at: live.observed_at.clone(),
            targets,
            replace,
            allow_destroy,
        };
        super::planfile::write(out, basis, &plan, &report)?;
        errln!(
            "Saved the plan to {}: `provisioner apply {}` carries out exactly this plan.",
            out.display(),
            out.display()
        );
    }
    Ok((plan, report))
}

/// Observes the clouds this build has providers for: DigitalOcean with `DIGITALOCEAN_TOKEN`
/// (and Spaces with `SPACES_ACCESS_KEY_ID`/`SPACES_SECRET_ACCESS_KEY`), GitHub with
/// `GITHUB_TOKEN`. The kinds of providers this build lacks, or lacks credentials for, are
/// reported as not observed, so the plan changes nothing of theirs and says why.
fn observe_clouds(state: &desired::DesiredState, ledger: &Ledger) -> anyhow::Result<LiveState> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let clouds = crate::providers::clouds::Clouds::from_env(state).await;
        match clouds.check_catalogs(state).await {
            Ok(None) => {}
            Ok(Some(why)) => errln!("warning: {why}"),
            Err(problems) => bail!(
                "{}\nerror: {} value{} the clouds do not offer",
                problems.join("\n"),
                problems.len(),
                if problems.len() == 1 { "" } else { "s" }
            ),
        }
        Ok(clouds.observe(state, ledger).await)
    })
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

/// Reads the ledger for planning (no lease: planning writes nothing); a ledger that does
/// not exist yet is empty.
fn read_ledger(url: &str) -> anyhow::Result<Ledger> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let store = super::state::open(url).await?;
        Ok(store.read().await?.map(|s| s.ledger).unwrap_or_default())
    })
}

/// Fingerprints the secret values provisioner reads itself, so the plan shows which changed.
/// The key comes from `PROVISIONER_FINGERPRINT_KEY`, else from the Secrets Manager secret
/// `[settings] fingerprint_key_secret` names. Without a key, changed values cannot be seen:
/// say so once, and plan without them.
fn fingerprint_secrets(state: &mut desired::DesiredState) -> anyhow::Result<()> {
    if desired::secrets::readable(state).is_empty() {
        return Ok(());
    }
    let secret = state
        .settings
        .fingerprint_key_secret
        .as_ref()
        .map(|s| s.0.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // A dry run goes on without the key (saying so); apply and the daemon refuse to.
    let key = match runtime.block_on(FingerprintKey::load(secret.as_deref())) {
        Ok(key) => key,
        Err(e) => {
            errln!("warning: {e}; changed secret values cannot be noticed in this plan");
            return Ok(());
        }
    };
    match key {
        Some(key) => desired::secrets::fingerprint_all(state, &key)
            .map_err(|errors| anyhow::anyhow!("{}", errors.join("\n"))),
        None => {
            errln!(
                "note: {KEY_ENV} is not set (nor `[settings] fingerprint_key_secret`), so a changed secret value cannot be noticed; see docs/ledger.md"
            );
            Ok(())
        }
    }
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
