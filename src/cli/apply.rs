//! `provisioner apply`: one reconcile pass ([`crate::reconcile`]) under the lease: plan,
//! render, confirm, carry out, release.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use clap::Args;

use crate::desired::Address;
use crate::exec::{Outcome, Progress};
use crate::ledger::lease::{Owner, rfc3339};
use crate::ledger::store::{LEASE_TTL, OnLoss, hold};
use crate::plan::display::PlanDisplay;
use crate::plan::{Action, Change};
use crate::reconcile::{
    Loaded, LogProgress, PassConfig, PassError, PassOptions, PassStatus, Planned, Reconciler,
};

/// Flags of `apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A plan saved by `provisioner diff -o FILE`: carry out exactly it, without asking, or
    /// refuse it if it is stale (the desired state, the ledger or the clouds changed since).
    #[arg(value_name = "PLANFILE", conflicts_with_all = ["target", "replace", "allow_destroy"])]
    pub plan: Option<std::path::PathBuf>,
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long)]
    pub auto_approve: bool,
    /// Limit the apply to this address and what it depends on (repeatable).
    #[arg(long, value_name = "ADDR")]
    pub target: Vec<String>,
    /// Replace this resource even though nothing forces it: a new key pair, access key or
    /// token, handed on to every consumer (repeatable).
    #[arg(long, value_name = "ADDR")]
    pub replace: Vec<String>,
    /// Let this apply destroy a resource protected by `prevent_destroy` (a deliberate
    /// replacement with `--replace`, or a removal with `prune`); repeatable. The
    /// protection itself stays in force for every other command.
    #[arg(long, value_name = "ADDR")]
    pub allow_destroy: Vec<String>,
    /// Lease options.
    #[command(flatten)]
    pub lock: super::state::LockArgs,
}

/// Runs `apply`.
pub async fn exec(
    desired: &Path,
    inputs: &crate::desired::Inputs,
    ledger: Option<&str>,
    args: &ApplyArgs,
) -> ExitCode {
    match apply(desired, inputs, ledger, args).await {
        Ok(status) => ExitCode::from(status.exit_code()),
        Err(e) => {
            super::print_error(&e);
            ExitCode::FAILURE
        }
    }
}

/// Parses `--target`/`--replace`/`--allow-destroy` addresses.
pub(super) fn addresses(list: &[String]) -> anyhow::Result<Vec<Address>> {
    list.iter()
        .map(|a| Address::parse(a).map_err(anyhow::Error::msg))
        .collect()
}

async fn apply(
    desired: &Path,
    inputs: &crate::desired::Inputs,
    ledger: Option<&str>,
    args: &ApplyArgs,
) -> anyhow::Result<PassStatus> {
    let config = PassConfig {
        desired_dir: desired.to_path_buf(),
        ledger_url: ledger.map(str::to_string),
        inputs: inputs.clone(),
        mode: None,
        targets: addresses(&args.target)?,
        replace: addresses(&args.replace)?
            .into_iter()
            .collect::<BTreeSet<_>>(),
        allow_destroy: addresses(&args.allow_destroy)?.into_iter().collect(),
    };
    let saved = match &args.plan {
        Some(path) => Some(super::planfile::read(path)?),
        None => None,
    };
    let config = match &saved {
        Some(f) => PassConfig {
            targets: f.basis.targets.clone(),
            replace: f.basis.replace.iter().cloned().collect(),
            allow_destroy: f.basis.allow_destroy.iter().cloned().collect(),
            ..config
        },
        None => config,
    };
    let interactive = std::io::stdin().is_terminal();
    if saved.is_none() && !args.auto_approve && !interactive {
        anyhow::bail!(
            "stdin is not a terminal, so apply cannot ask for confirmation: pass --auto-approve (and review the plan with `provisioner diff` first)"
        );
    }
    let mut reconciler = Reconciler::default();
    let loaded = reconciler.load(&config, false).await?;
    for w in &loaded.warnings {
        errln!("warning: {w}");
    }
    if let Some(f) = &saved {
        let planned_for = f.plan.get("environment").and_then(|e| e.as_str());
        if planned_for != loaded.desired.environment_name() {
            anyhow::bail!(
                "the saved plan was made for {}, not {}: apply it with the same `-e`",
                planned_for.map_or("no environment".to_string(), |e| format!(
                    "environment `{e}`"
                )),
                loaded
                    .desired
                    .environment_name()
                    .map_or("no environment".to_string(), |e| format!(
                        "environment `{e}`"
                    ))
            );
        }
        if f.basis.ledger != loaded.ledger_url {
            anyhow::bail!(
                "the saved plan was made against the ledger {}, not {}: apply it with the same `--ledger`",
                f.basis.ledger,
                loaded.ledger_url
            );
        }
        let digest = super::planfile::desired_digest(&config.desired_dir, &loaded.desired)?;
        if digest != f.basis.desired_digest {
            anyhow::bail!(
                "the saved plan is stale: the desired state (or a secret value it reads) changed since it was made; make a new one with `provisioner diff -o FILE`"
            );
        }
    }
    let store = reconciler.ledger(&loaded.ledger_url).await?;
    for w in &store.warnings {
        errln!("warning: {w}");
    }
    reconciler.providers(&loaded.desired).await;
    let reconciler = &reconciler;
    let Some(store) = reconciler.store() else {
        return Err(PassError::NoStore.into());
    };
    let owner = Owner::current(&uuid::Uuid::new_v4().to_string());
    let stop = Arc::new(AtomicBool::new(false));
    let signals = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let first = crate::signals::shutdown_signal().await;
            errln!(
                "\n{first}: the changes in flight finish and are recorded; nothing more starts. Again to abort."
            );
            stop.store(true, Ordering::SeqCst);
            crate::signals::shutdown_signal().await;
            std::process::exit(130);
        })
    };
    let lost = |e: &crate::ledger::LedgerError| {
        errln!(
            "error: the lease was lost ({}); starting nothing more",
            crate::errors::chain(e)
        );
    };
    let on_loss = OnLoss::Finish {
        stop: &stop,
        lost: &lost,
    };
    let work = work(
        &loaded,
        reconciler,
        &config,
        args,
        saved.as_ref(),
        interactive,
        stop.clone(),
    );
    let held = hold(
        store,
        &owner,
        LEASE_TTL,
        args.lock.lock_timeout,
        on_loss,
        work,
    )
    .await;
    signals.abort();
    if let Err(e) = &held.release {
        errln!("warning: releasing the lease: {}", crate::errors::chain(e));
    }
    held.result?
}

async fn work(
    loaded: &Loaded,
    reconciler: &Reconciler,
    config: &PassConfig,
    args: &ApplyArgs,
    saved: Option<&super::planfile::PlanFile>,
    interactive: bool,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<PassStatus> {
    let warn = |why: &str| tracing::warn!(message = "Catalogs not checked.", reason = %why);
    let options = PassOptions {
        dry_run: false,
        targets: &config.targets,
        live_from: None,
        command: "apply",
        started_at: rfc3339(SystemTime::now()),
        warn: &warn,
    };
    // Between planning and acting: a saved plan must still hold; the plan is shown, and
    // changes wait for a `yes` (unless --auto-approve or a saved plan).
    let gate = async |planned: &Planned| -> anyhow::Result<()> {
        if let Some(f) = saved {
            let now = planned.read.clone().unwrap_or_default();
            if (now.0.as_str(), now.1) != (f.basis.lineage.as_str(), f.basis.serial) {
                anyhow::bail!(
                    "the saved plan is stale: it was made against ledger {} serial {}, and the ledger is now {} serial {} (another apply or a `state` command wrote it); make a new one with `provisioner diff -o FILE`",
                    if f.basis.lineage.is_empty() {
                        "(none)"
                    } else {
                        &f.basis.lineage
                    },
                    f.basis.serial,
                    if now.0.is_empty() { "(none)" } else { &now.0 },
                    now.1
                );
            }
            if let Some(why) = super::planfile::differences(&f.plan, &planned.plan, &planned.report)
            {
                anyhow::bail!(
                    "the saved plan is stale: planning again now gives other changes (the clouds changed since it was made, or the file was edited): {why}; nothing was changed"
                );
            }
        }
        let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        crate::cli::write_out(&format!(
            "{}",
            PlanDisplay {
                plan: &planned.plan,
                report: &planned.report,
                color,
                verbose: false,
            }
        ));
        if planned.plan.has_changes() && !args.auto_approve && saved.is_none() {
            out!("\nApply these changes? Only `yes` is accepted: ");
            std::io::stdout().flush()?;
            let mut answer = String::new();
            std::io::stdin().lock().read_line(&mut answer)?;
            if answer.trim() != "yes" {
                anyhow::bail!("apply cancelled: nothing was changed");
            }
        }
        Ok(())
    };
    let progress = if interactive && std::io::stderr().is_terminal() {
        Shown::Bars(Bars::default())
    } else {
        Shown::Log(LogProgress)
    };
    let passed = reconciler
        .pass(loaded, options, gate, &progress, stop)
        .await?;
    let Some(report) = &passed.applied else {
        explain(&passed.status);
        return Ok(passed.status);
    };
    let (done, failed, skipped) = report.counts();
    for o in report.outcomes.iter().filter(|o| o.result.is_err()) {
        errln!(
            "{} {} {}: {}",
            if o.skipped { "skipped" } else { "failed" },
            verb(o.action),
            o.address,
            o.result
                .as_ref()
                .err()
                .map(String::as_str)
                .unwrap_or_default()
        );
    }
    if let Err(e) = &passed.journal {
        errln!("warning: writing the journal: {}", crate::errors::chain(e));
    }
    outln!(
        "Apply finished in {:.1}s: {done} done, {failed} failed, {skipped} skipped.",
        report.elapsed.as_secs_f64()
    );
    if let Some(e) = &report.ledger_error {
        errln!(
            "error: writing the ledger: {}{}",
            crate::errors::chain(e),
            if done + failed > 0 {
                "; the changes made are found again and recorded by the next apply"
            } else {
                ""
            }
        );
    }
    explain(&passed.status);
    Ok(passed.status)
}

/// How changes in flight are shown: live lines on a terminal, log lines otherwise.
enum Shown {
    Bars(Bars),
    Log(LogProgress),
}

impl Progress for Shown {
    fn started(&self, c: &Change) {
        match self {
            Shown::Bars(b) => b.started(c),
            Shown::Log(l) => l.started(c),
        }
    }

    fn finished(&self, o: &Outcome) {
        match self {
            Shown::Bars(b) => b.finished(o),
            Shown::Log(l) => l.finished(o),
        }
    }
}

/// Says on stderr why an apply that is not failing outright still does not exit 0.
fn explain(status: &PassStatus) {
    match status {
        PassStatus::Incomplete { unobserved, .. } => errln!(
            "incomplete: {unobserved} kind{} or scope{} could not be observed (listed above), so whether they match is unknown; exit 3",
            if *unobserved == 1 { "" } else { "s" },
            if *unobserved == 1 { "" } else { "s" }
        ),
        PassStatus::Partial { skipped, .. } if *skipped > 0 => errln!(
            "partial: {skipped} change{} skipped or blocked by a conflict (listed above); exit 3",
            if *skipped == 1 { " was" } else { "s were" }
        ),
        _ => {}
    }
}

fn verb(a: Action) -> &'static str {
    match a {
        Action::Create => "creating",
        Action::Update => "updating",
        Action::Replace => "replacing",
        Action::Delete => "deleting",
        Action::Adopt => "adopting",
        _ => "",
    }
}

/// One live line per change in flight, on a terminal.
#[derive(Default)]
struct Bars {
    multi: indicatif::MultiProgress,
    bars: Mutex<HashMap<Address, indicatif::ProgressBar>>,
}

impl Progress for Bars {
    fn started(&self, c: &Change) {
        let bar = self.multi.add(indicatif::ProgressBar::new_spinner());
        if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} — {elapsed}")
        {
            bar.set_style(style);
        }
        bar.set_message(format!("{} {}", verb(c.action), c.address));
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        if let Ok(mut b) = self.bars.lock() {
            b.insert(c.address.clone(), bar);
        }
    }

    fn finished(&self, o: &Outcome) {
        let bar = self.bars.lock().ok().and_then(|mut b| b.remove(&o.address));
        let line = match &o.result {
            Ok(()) => format!(
                "done    {} {} ({:.1}s)",
                verb(o.action),
                o.address,
                o.elapsed.as_secs_f64()
            ),
            Err(_) if o.skipped => format!("skipped {} {}", verb(o.action), o.address),
            Err(_) => format!("failed  {} {}", verb(o.action), o.address),
        };
        match bar {
            Some(b) => {
                b.finish_and_clear();
                let _ = self.multi.println(line);
            }
            None => {
                let _ = self.multi.println(line);
            }
        }
    }
}
