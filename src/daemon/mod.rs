//! One reconcile pass — load, observe, plan, (apply) — shared by `provisioner apply` and the
//! daemon (`provisioner run`), and the daemon's loop, HTTP endpoints and systemd
//! notifications.

pub mod http;
pub mod notify;
pub mod run;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;

use crate::desired::{Address, DesiredState, Mode};
use crate::exec::{ApplyReport, ExecOptions, Persist, Progress, execute};
use crate::ledger::Ledger;
use crate::ledger::fingerprint::FingerprintKey;
use crate::ledger::store::{Snapshot, Store};
use crate::live::LiveState;
use crate::plan::{Plan, PlanReport};
use crate::providers::clouds::Clouds;

/// What a pass works from.
#[derive(Clone, Debug, Default)]
pub struct PassConfig {
    /// The desired-state folder.
    pub desired_dir: PathBuf,
    /// `--ledger` / `PROVISIONER_LEDGER`; else `[settings] ledger`; else `file://state`.
    pub ledger_url: Option<String>,
    /// Overrides `[settings] mode`.
    pub mode: Option<Mode>,
    /// Only these addresses (and what they depend on).
    pub targets: Vec<Address>,
    /// Replace these even though nothing forces it.
    pub replace: BTreeSet<Address>,
    /// Protected resources this command may destroy anyway (`--allow-destroy`).
    pub allow_destroy: BTreeSet<Address>,
}

/// The desired state, ready to plan: validated, secret values fingerprinted.
#[derive(Debug)]
pub struct Loaded {
    /// The desired state.
    pub desired: DesiredState,
    /// The fingerprint key, when configured.
    pub key: Option<FingerprintKey>,
    /// Where the ledger lives.
    pub ledger_url: String,
    /// Warnings to show (no fingerprint key, ...).
    pub warnings: Vec<String>,
}

/// Loads and validates the desired state, checks `--target`/`--replace` addresses, and
/// fingerprints the secret values it can read.
pub async fn load(config: &PassConfig) -> anyhow::Result<Loaded> {
    let mut desired =
        crate::desired::load(&config.desired_dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(mode) = config.mode {
        desired.settings.mode = mode;
    }
    for a in config.targets.iter().chain(&config.replace) {
        if !desired.resources.contains_key(a) {
            anyhow::bail!(
                "{a} is not in the desired state ({}): check the address (`provider.kind.name`)",
                config.desired_dir.display()
            );
        }
    }
    desired.replace = config.replace.clone();
    desired.allow_destroy = config.allow_destroy.clone();
    let mut warnings = Vec::new();
    let secret = desired
        .settings
        .fingerprint_key_secret
        .as_ref()
        .map(|s| s.0.clone());
    let key = FingerprintKey::load(secret.as_deref())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    match &key {
        Some(k) => crate::desired::secrets::fingerprint_all(&mut desired, k)
            .map_err(|errors| anyhow::anyhow!("{}", errors.join("\n")))?,
        None if !crate::desired::secrets::readable(&desired).is_empty() => warnings.push(
            "PROVISIONER_FINGERPRINT_KEY is not set (nor `[settings] fingerprint_key_secret`): a changed secret value is not noticed until it is written for another reason; see docs/ledger.md".into(),
        ),
        None => {}
    }
    let ledger_url = config
        .ledger_url
        .clone()
        .or_else(|| desired.settings.ledger.as_ref().map(|l| l.0.clone()))
        .unwrap_or_else(|| crate::cli::DEFAULT_LEDGER.to_string());
    Ok(Loaded {
        desired,
        key,
        ledger_url,
        warnings,
    })
}

/// A plan and what it was made from.
#[derive(Debug)]
pub struct Planned {
    /// The base of the next conditional write: the version read (or written since), with
    /// only the lineage and serial of its ledger; `None` before the first write. The
    /// ledger itself is `ledger`.
    pub snapshot: Option<Snapshot>,
    /// The ledger to change.
    pub ledger: Ledger,
    /// What observing saw.
    pub live: LiveState,
    /// The plan (restricted to the targets, if any).
    pub plan: Plan,
    /// The planner's notes.
    pub report: PlanReport,
    /// The ledger's lineage and serial as read, before this pass wrote anything (`None`:
    /// no ledger yet). A saved plan's basis is checked against it.
    pub read: Option<(String, u64)>,
}

/// Reads the ledger, observes the clouds and plans.
pub async fn plan(
    loaded: &Loaded,
    store: &Store,
    clouds: &Clouds,
    targets: &[Address],
) -> anyhow::Result<Planned> {
    let found = store.read().await.context("reading the ledger")?;
    let as_read = found
        .as_ref()
        .map(|s| (s.ledger.lineage.clone(), s.ledger.serial));
    let (mut ledger, mut snapshot) = match found {
        Some(s) => {
            let (ledger, base) = s.into_base();
            (ledger, Some(base))
        }
        None => (Ledger::create(), None),
    };
    let counts = |l: &Ledger| (l.resources.len(), l.pending.len());
    let read = counts(&ledger);
    let moves = crate::exec::apply_moves(&loaded.desired, &mut ledger);
    match clouds.check_catalogs(&loaded.desired).await {
        Ok(None) => {}
        Ok(Some(why)) => tracing::warn!(message = "Catalogs not checked.", reason = %why),
        Err(problems) => anyhow::bail!(
            "{}\nerror: {} value{} the clouds do not offer",
            problems.join("\n"),
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        ),
    }
    let live = clouds.observe(&loaded.desired, &ledger).await;
    crate::ledger::identity::check_objects(&ledger, &live)?;
    let (plan, report) = crate::plan::plan(&loaded.desired, &ledger, &live)?;
    crate::exec::forget_dropped(&plan, &loaded.desired, &mut ledger, &live);
    let forgot = read != counts(&ledger);
    let protections = crate::exec::record_protections(&loaded.desired, &mut ledger);
    if let Some(s) = &snapshot
        && (forgot || !protections.is_empty() || !moves.is_empty())
    {
        // Moves made, entries the plan says are gone forgotten, and protections recorded,
        // now, whatever the apply does.
        let mut why = Vec::new();
        if !moves.is_empty() {
            let list: Vec<String> = moves.iter().map(|(f, t)| format!("{f} to {t}")).collect();
            why.push(format!("moved {}", list.join(", ")));
        }
        if forgot {
            why.push("forgot resources that are gone".to_string());
        }
        if !protections.is_empty() {
            why.push(format!(
                "recorded prevent_destroy of {}",
                join(&protections)
            ));
        }
        let why = why.join("; ");
        let written = store
            .write(ledger.clone(), Some(s), &why)
            .await
            .context("writing the ledger")?;
        snapshot = Some(written.into_base().1);
    }
    let plan = restrict(plan, targets);
    Ok(Planned {
        snapshot,
        ledger,
        live,
        plan,
        report,
        read: as_read,
    })
}

fn join(addresses: &[Address]) -> String {
    addresses
        .iter()
        .map(Address::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Keeps only the changes of `targets` and of what they depend on (transitively). Empty
/// `targets` keeps everything.
pub fn restrict(mut plan: Plan, targets: &[Address]) -> Plan {
    if targets.is_empty() {
        return plan;
    }
    let by_address: std::collections::HashMap<&Address, &crate::plan::Change> =
        plan.changes.iter().map(|c| (&c.address, c)).collect();
    let mut keep: BTreeSet<Address> = BTreeSet::new();
    let mut stack: Vec<&Address> = targets.iter().collect();
    while let Some(a) = stack.pop() {
        if !keep.insert(a.clone()) {
            continue;
        }
        if let Some(c) = by_address.get(a) {
            stack.extend(c.after.iter());
        }
    }
    plan.changes.retain(|c| keep.contains(&c.address));
    plan
}

/// Persists through the store, each write conditional on the version before it.
pub struct StorePersist<'a> {
    /// The store.
    pub store: &'a Store,
    /// The version the next write must replace.
    pub snapshot: Option<Snapshot>,
}

impl Persist for StorePersist<'_> {
    async fn save(&mut self, ledger: &Ledger, why: &str) -> Result<(), String> {
        match self
            .store
            .write(ledger.clone(), self.snapshot.as_ref(), why)
            .await
        {
            Ok(s) => {
                self.snapshot = Some(s.into_base().1);
                Ok(())
            }
            Err(e) => Err(crate::errors::chain(&e)),
        }
    }
}

/// Carries out a plan, persisting the ledger as it goes; `stop` set means start nothing
/// more (what is in flight finishes and is recorded).
#[allow(clippy::too_many_arguments)]
pub async fn apply<G: Progress>(
    loaded: &Loaded,
    store: &Store,
    clouds: &Clouds,
    planned: &mut Planned,
    progress: &G,
    stop: Arc<AtomicBool>,
) -> ApplyReport {
    let options = ExecOptions {
        key: loaded.key.as_ref(),
        stop: Some(stop),
        ..ExecOptions::from_settings(&loaded.desired.settings)
    };
    let mut persist = StorePersist {
        store,
        snapshot: planned.snapshot.clone(),
    };
    let report = Box::pin(execute(
        &planned.plan,
        &loaded.desired,
        &mut planned.ledger,
        &planned.live,
        clouds,
        &options,
        &mut persist,
        progress,
    ))
    .await;
    planned.snapshot = persist.snapshot;
    report
}

/// The audit record of one apply (`command` is `apply` or `run`).
pub fn journal_record(
    command: &str,
    started_at: String,
    report: &ApplyReport,
) -> crate::ledger::store::JournalRecord {
    use crate::ledger::store::{ActionRecord, JournalRecord};
    let (done, failed, skipped) = report.counts();
    let outcome = |o: &crate::exec::Outcome| match (&o.result, o.skipped) {
        (Ok(()), _) => "done",
        (Err(_), true) => "skipped",
        (Err(_), false) => "failed",
    };
    JournalRecord {
        run_id: uuid::Uuid::new_v4().to_string(),
        by: crate::ledger::lease::who(),
        started_at,
        finished_at: crate::ledger::lease::rfc3339(std::time::SystemTime::now()),
        command: command.into(),
        summary: format!("{done} done, {failed} failed, {skipped} skipped"),
        outcome: if report.succeeded() {
            "succeeded"
        } else if done > 0 {
            "partial"
        } else {
            "failed"
        }
        .into(),
        actions: report
            .outcomes
            .iter()
            .map(|o| ActionRecord {
                address: o.address.to_string(),
                action: format!("{:?}", o.action).to_ascii_lowercase(),
                outcome: outcome(o).into(),
                error: o.result.as_ref().err().cloned(),
            })
            .collect(),
    }
}

/// Every `*.toml` under `dir` with its modification time and size: a cheap fingerprint for
/// noticing that the desired state changed.
pub fn files_signature(dir: &Path) -> Vec<(PathBuf, std::time::SystemTime, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "toml") {
                out.push((
                    p,
                    meta.modified().unwrap_or(std::time::UNIX_EPOCH),
                    meta.len(),
                ));
            }
        }
    }
    out.sort();
    out
}
