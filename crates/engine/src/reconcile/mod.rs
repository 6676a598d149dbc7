//! One reconcile pass — load, observe, plan, apply — and the one path `provisioner diff`,
//! `provisioner apply` and the daemon (`provisioner run`) all take through it. A dry run
//! (`diff`) is the same pass with `dry_run` set: it reads the ledger and observes as an
//! apply does, and stops before writing anything (as cargo's `update --dry-run`). The
//! commands differ only in what they do around the pass: `apply` and the daemon hold the
//! ledger lease ([`crate::ledger::store::hold`]) while it runs; `apply` renders the plan and
//! asks before acting; the daemon turns the result into metrics and `/status`.
//!
//! A [`Reconciler`] keeps what a pass needs from the outside world — the ledger store and
//! the providers — so the daemon sets them up once, not every pass.

mod status;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

pub use status::{LogProgress, PassStatus, millis};

use crate::desired::validate::ValidationErrors;
use crate::desired::{Address, DesiredState, Mode};
use crate::exec::{ApplyReport, ExecOptions, Persist, Progress, execute};
use crate::ledger::fingerprint::{FingerprintKey, KEY_ENV};
use crate::ledger::identity::ForeignObjects;
use crate::ledger::store::{Snapshot, Store};
use crate::ledger::{Ledger, LedgerError};
use crate::live::LiveState;
use crate::plan::{Action, Change, Plan, PlanError, PlanReport};
use crate::providers::Clouds;

/// The ledger location when neither `--ledger`/`PROVISIONER_LEDGER` nor `[settings] ledger`
/// names one.
pub const DEFAULT_LEDGER: &str = "file://state";

/// Where the ledger lives: `flag` (`--ledger` or `PROVISIONER_LEDGER`), else `[settings]
/// ledger` of the desired state, else [`DEFAULT_LEDGER`]. The one statement of this order.
///
/// With an environment chosen (`-e NAME`) and no `flag`: its file's `[environment] ledger`
/// when it names one, else the settings' (or default) location with `/env/NAME` appended
/// (as Terraform's S3 backend keeps a workspace's state under `env:/NAME/`). Each
/// environment so has its own ledger, hence its own lineage, and never adopts another's
/// objects. `flag` names the ledger exactly; the ledger records the environment it belongs
/// to, so the same `flag` for two environments is refused for the second
/// ([`crate::ledger::Ledger::claim_environment`]).
pub fn ledger_url(flag: Option<&str>, desired: &DesiredState) -> String {
    if let Some(flag) = flag {
        return flag.to_string();
    }
    let base = desired
        .settings
        .ledger
        .as_ref()
        .map(|l| l.0.clone())
        .unwrap_or_else(|| DEFAULT_LEDGER.to_string());
    match &desired.environment {
        Some(env) => match &env.ledger {
            Some(own) => own.clone(),
            None => format!("{}/env/{}", base.trim_end_matches('/'), env.name),
        },
        None => base,
    }
}

/// Why a pass stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// The desired state is invalid (the report lists every problem).
    #[error(transparent)]
    Desired(ValidationErrors),
    /// A `--target` or `--replace` address the desired state does not have.
    #[error(
        "{address} is not in the desired state ({dir}): check the address (`provider.kind.name`)"
    )]
    UnknownAddress {
        /// The address given.
        address: Address,
        /// The desired-state folder.
        dir: String,
    },
    /// A `--target` or `--replace` address that names a resource with `for_each` whole.
    #[error(
        "{address} has `for_each`: name each instance to target ({})",
        .instances.iter().map(|a| format!("'{a}'")).collect::<Vec<_>>().join(", ")
    )]
    WholeForEach {
        /// The address given.
        address: Address,
        /// Its instances.
        instances: Vec<Address>,
    },
    /// The fingerprint key could not be loaded.
    #[error("{0}")]
    Key(String),
    /// Secret values could not be fingerprinted.
    #[error("{}", .0.join("\n"))]
    Secrets(Vec<String>),
    /// The ledger could not be read.
    #[error("reading the ledger")]
    ReadLedger(#[source] LedgerError),
    /// The ledger could not be written (moves, forgotten entries, protections).
    #[error("writing the ledger")]
    WriteLedger(#[source] LedgerError),
    /// Values the clouds' catalogs do not offer.
    #[error(
        "{}\nerror: {} value{} the clouds do not offer",
        .0.join("\n"),
        .0.len(),
        if .0.len() == 1 { "" } else { "s" }
    )]
    Catalogs(Vec<String>),
    /// The ledger belongs to another environment.
    #[error("{0}")]
    Environment(String),
    /// Objects the ledger names carry another ledger's lineage.
    #[error(transparent)]
    Foreign(#[from] ForeignObjects),
    /// The planner refused.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// Observing or applying was asked for before [`Reconciler::providers`] set the
    /// providers up.
    #[error("no providers")]
    NoProviders,
    /// Planning was asked for before [`Reconciler::ledger`] opened the store.
    #[error("the ledger store is not open")]
    NoStore,
}

impl PassError {
    /// True when the ledger store failed (the daemon's readiness follows it).
    pub fn is_ledger(&self) -> bool {
        matches!(self, PassError::ReadLedger(_) | PassError::WriteLedger(_))
    }
}

/// An error and its causes on one line, `outer: cause: cause` (as `anyhow`'s `{:#}`).
pub fn full_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// What a pass works from.
#[derive(Clone, Debug, Default)]
pub struct PassConfig {
    /// The desired-state folder.
    pub desired_dir: PathBuf,
    /// `--ledger` / `PROVISIONER_LEDGER` (see [`ledger_url`]).
    pub ledger_url: Option<String>,
    /// The environment and variable values chosen (`-e`, `--var`, `PROVISIONER_VAR_*`).
    pub inputs: crate::desired::Inputs,
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
    /// Notes to show (a dry run without a fingerprint key).
    pub notes: Vec<String>,
}

/// Loads and validates the desired state, checks `--target`/`--replace` addresses, and
/// fingerprints the secret values it can read. A dry run goes on without the fingerprint
/// key when it cannot be loaded (saying so); apply and the daemon refuse to.
async fn load(
    reconciler: &mut Reconciler,
    config: &PassConfig,
    dry_run: bool,
) -> Result<Loaded, PassError> {
    let mut desired = crate::desired::load_with(&config.desired_dir, &config.inputs)
        .map_err(PassError::Desired)?;
    if let Some(mode) = config.mode {
        desired.settings.mode = mode;
    }
    for a in config.targets.iter().chain(&config.replace) {
        if !desired.resources.contains_key(a) {
            let instances: Vec<Address> = desired
                .resources
                .keys()
                .filter(|r| r.is_instance_of(a))
                .cloned()
                .collect();
            if !instances.is_empty() {
                return Err(PassError::WholeForEach {
                    address: a.clone(),
                    instances,
                });
            }
            return Err(PassError::UnknownAddress {
                address: a.clone(),
                dir: config.desired_dir.display().to_string(),
            });
        }
    }
    desired.replace = config.replace.clone();
    desired.allow_destroy = config.allow_destroy.clone();
    let mut warnings = Vec::new();
    let mut notes = Vec::new();
    let secret = desired
        .settings
        .fingerprint_key_secret
        .as_ref()
        .map(|s| s.0.clone());
    let readable = !crate::desired::secrets::readable(&desired).is_empty();
    let key = if !dry_run {
        let key = reconciler
            .key(secret.as_deref())
            .await
            .map_err(PassError::Key)?;
        if key.is_none() && readable {
            warnings.push(
                "PROVISIONER_FINGERPRINT_KEY is not set (nor `[settings] fingerprint_key_secret`): a changed secret value is not noticed until it is written for another reason; see docs/ledger.md".into(),
            );
        }
        key
    } else if readable {
        match reconciler.key(secret.as_deref()).await {
            Ok(Some(key)) => Some(key),
            Ok(None) => {
                notes.push(format!(
                    "{KEY_ENV} is not set (nor `[settings] fingerprint_key_secret`), so a changed secret value cannot be noticed; see docs/ledger.md"
                ));
                None
            }
            Err(e) => {
                warnings.push(format!(
                    "{e}; changed secret values cannot be noticed in this plan"
                ));
                None
            }
        }
    } else {
        // Nothing to fingerprint: a dry run does not fetch the key.
        None
    };
    if let Some(k) = &key {
        crate::desired::secrets::fingerprint_all(&mut desired, k).map_err(PassError::Secrets)?;
    }
    let ledger_url = ledger_url(config.ledger_url.as_deref(), &desired);
    Ok(Loaded {
        desired,
        key,
        ledger_url,
        warnings,
        notes,
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

/// How one pass runs.
pub struct PassOptions<'a> {
    /// Plan only: write neither the ledger nor the clouds.
    pub dry_run: bool,
    /// Only these addresses (and what they depend on); empty: everything.
    pub targets: &'a [Address],
    /// Plan against this snapshot instead of observing (`diff --live-from`; dry runs only).
    pub live_from: Option<LiveState>,
    /// The journal's `command` (`apply`, `run`).
    pub command: &'a str,
    /// When the pass started (RFC 3339), for the journal.
    pub started_at: String,
    /// Told why the clouds' catalogs were not checked (the check goes on without them).
    pub warn: &'a (dyn Fn(&str) + Send + Sync),
}

/// How a pass went.
#[derive(Debug)]
pub struct Passed {
    /// What was planned, and the ledger as it stands after the pass.
    pub planned: Planned,
    /// What applying did (`None`: nothing to do, or a dry run).
    pub applied: Option<ApplyReport>,
    /// What is still out of line after the pass: changes that did not succeed, and drift a
    /// `detect` mode only reports.
    pub still: Vec<Change>,
    /// The pass's status.
    pub status: PassStatus,
    /// Appending the journal record failed (only an apply appends one).
    pub journal: Result<(), LedgerError>,
}

/// What a pass keeps from one run to the next: the ledger store, the providers and the
/// fingerprint key. The daemon keeps one for its whole life (GitHub's ETag cache lives in
/// the providers; opening an S3 store loads the AWS configuration and checks the bucket's
/// versioning; a key in Secrets Manager costs the same); a command makes one.
#[derive(Default)]
pub struct Reconciler {
    store: Option<(String, Store)>,
    clouds: Option<Clouds>,
    /// The fingerprint key, with the Secrets Manager secret it was read from (`None`: from
    /// `PROVISIONER_FINGERPRINT_KEY`, or no secret named).
    key: Option<(Option<String>, FingerprintKey)>,
    /// The longest wait a rate limit asked for in the last pass's changes
    /// ([`ApplyReport::retry_after`]): the daemon's next pass comes no sooner.
    pub retry_after: std::sync::Mutex<Option<std::time::Duration>>,
}

impl Reconciler {
    /// Loads the desired state for a pass (see [`PassConfig`]): validated, `--target` and
    /// `--replace` addresses checked, the secret values it can read fingerprinted.
    pub async fn load(&mut self, config: &PassConfig, dry_run: bool) -> Result<Loaded, PassError> {
        load(self, config, dry_run).await
    }

    /// The fingerprint key: the one kept, unless the settings now name another secret; else
    /// loaded now (and kept). A key that could not be loaded is tried again next time.
    async fn key(&mut self, secret: Option<&str>) -> Result<Option<FingerprintKey>, String> {
        if let Some((from, key)) = &self.key
            && from.as_deref() == secret
        {
            return Ok(Some(key.clone()));
        }
        let key = crate::ledger::key::load(secret).await?;
        self.key = key.clone().map(|k| (secret.map(str::to_string), k));
        Ok(key)
    }

    /// The store `url` names: the one kept, or (the first time, or when `url` changed) one
    /// opened now. A store that could not be opened is tried again at the next call.
    pub async fn ledger(&mut self, url: &str) -> Result<&Store, LedgerError> {
        let store = match self.store.take() {
            Some((kept, store)) if kept == url => store,
            _ => Store::open(url).await?,
        };
        Ok(&self.store.insert((url.to_string(), store)).1)
    }

    /// The store opened last.
    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref().map(|(_, s)| s)
    }

    /// Sets the providers up: once, and again while AWS could not be (credentials that
    /// appear later are picked up). AWS is set up once the desired state or the ledger has
    /// AWS resources.
    pub async fn providers(&mut self, desired: &DesiredState) -> &Clouds {
        let slot = &mut self.clouds;
        let again = slot
            .as_ref()
            .is_none_or(|c| c.aws().is_some_and(|a| a.is_err()));
        if again {
            *slot = None;
        }
        match slot {
            Some(clouds) => clouds,
            None => slot.insert(Clouds::from_env(desired).await),
        }
    }

    /// The providers set up last.
    pub fn clouds(&self) -> Option<&Clouds> {
        self.clouds.as_ref()
    }

    /// One pass: read the ledger, observe (or take `options.live_from`), plan; then, unless
    /// a dry run, hand the plan to `gate` (which may render it, ask, or refuse with an error)
    /// and carry out its changes, persisting the ledger as it goes, and append the journal.
    /// `stop` set means start nothing more (what is in flight finishes and is recorded).
    /// A dry run hands the plan to `gate` too, and stops there.
    pub async fn pass<E: From<PassError>>(
        &self,
        loaded: &Loaded,
        options: PassOptions<'_>,
        gate: impl AsyncFnOnce(&Planned) -> Result<(), E>,
        progress: &impl Progress,
        stop: Arc<AtomicBool>,
    ) -> Result<Passed, E> {
        let dry_run = options.dry_run;
        let command = options.command;
        let started_at = options.started_at.clone();
        let mut planned = self.plan(loaded, options).await?;
        gate(&planned).await?;
        // Out of line: what acts, and what detect mode only reports.
        let mut still: Vec<Change> = planned
            .plan
            .changes
            .iter()
            .filter(|c| c.action.acts() || c.action == Action::Drift)
            .cloned()
            .collect();
        let mut applied = None;
        let mut journal = Ok(());
        if !dry_run && planned.plan.has_changes() {
            let store = self.store().ok_or(PassError::NoStore)?;
            let clouds = self.clouds().ok_or(PassError::NoProviders)?;
            let report = apply(loaded, store, clouds, &mut planned, progress, stop).await;
            let succeeded: std::collections::HashSet<&Address> = report
                .outcomes
                .iter()
                .filter(|o| o.result.is_ok())
                .map(|o| &o.address)
                .collect();
            still.retain(|c| !succeeded.contains(&c.address));
            let mut record = journal_record(command, started_at, &report);
            record.environment = loaded.desired.environment_name().map(str::to_string);
            journal = store.append_journal(&record).await.map(|_| ());
            applied = Some(report);
        }
        // The outputs as the ledger now records them, written when they changed (a pass
        // that changed nothing else writes them too: a new `[output]` needs no change).
        if !dry_run {
            let outputs = crate::plan::outputs::evaluate(&loaded.desired, &planned.ledger);
            if outputs != planned.ledger.outputs
                && let Some(store) = self.store()
            {
                planned.ledger.outputs = outputs;
                match store
                    .write(planned.ledger.clone(), planned.snapshot.as_ref(), "outputs")
                    .await
                {
                    Ok(written) => planned.snapshot = Some(written.into_base().1),
                    Err(e) => {
                        if journal.is_ok() {
                            journal = Err(e);
                        }
                    }
                }
            }
        }
        let status = PassStatus::conclude(
            &planned.plan,
            &planned.report,
            applied.as_ref(),
            still.len(),
        );
        Ok(Passed {
            planned,
            applied,
            still,
            status,
            journal,
        })
    }

    /// Reads the ledger, observes the clouds (or takes the snapshot) and plans. Unless a
    /// dry run, the ledger changes planning makes by itself — `[[moved]]` renames, entries
    /// the plan says are gone, `prevent_destroy` protections — are written at once.
    async fn plan(&self, loaded: &Loaded, options: PassOptions<'_>) -> Result<Planned, PassError> {
        let store = self.store().ok_or(PassError::NoStore)?;
        let found = store.read().await.map_err(PassError::ReadLedger)?;
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
        ledger
            .claim_environment(loaded.desired.environment_name())
            .map_err(PassError::Environment)?;
        let counts = |l: &Ledger| (l.resources.len(), l.pending.len());
        let read = counts(&ledger);
        let moves = crate::exec::apply_moves(&loaded.desired, &mut ledger);
        let live = match options.live_from {
            Some(live) => live,
            None => {
                let clouds = self.clouds().ok_or(PassError::NoProviders)?;
                match clouds.check_catalogs(&loaded.desired).await {
                    Ok(None) => {}
                    Ok(Some(why)) => (options.warn)(&why),
                    Err(problems) => return Err(PassError::Catalogs(problems)),
                }
                clouds.observe(&loaded.desired, &ledger).await
            }
        };
        crate::ledger::identity::check_objects(&ledger, &live)?;
        let (plan, report) = crate::plan::plan(&loaded.desired, &ledger, &live)?;
        crate::exec::forget_dropped(&plan, &loaded.desired, &mut ledger, &live);
        let forgot = read != counts(&ledger);
        let protections = crate::exec::record_protections(&loaded.desired, &mut ledger);
        if let Some(s) = &snapshot
            && !options.dry_run
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
                .map_err(PassError::WriteLedger)?;
            snapshot = Some(written.into_base().1);
        }
        let plan = restrict(plan, options.targets);
        Ok(Planned {
            snapshot,
            ledger,
            live,
            plan,
            report,
            read: as_read,
        })
    }
}

/// Carries out a plan, persisting the ledger as it goes; `stop` set means start nothing
/// more (what is in flight finishes and is recorded).
async fn apply<G: Progress>(
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
    async fn save(&mut self, ledger: &Ledger, why: &str) -> Result<(), crate::ledger::LedgerError> {
        let s = self
            .store
            .write(ledger.clone(), self.snapshot.as_ref(), why)
            .await?;
        self.snapshot = Some(s.into_base().1);
        Ok(())
    }
}

/// The audit record of one apply (`command` is `apply` or `run`).
pub fn journal_record(
    command: &str,
    started_at: String,
    report: &ApplyReport,
) -> crate::ledger::store::JournalRecord {
    use crate::ledger::store::{ActionRecord, JournalRecord};
    let (done, failed, skipped) = report.counts();
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
        environment: None,
    }
}

/// `done`, `skipped` or `failed`: how one change ended (journal records, metrics).
pub fn outcome(o: &crate::exec::Outcome) -> &'static str {
    match (&o.result, o.skipped) {
        (Ok(()), _) => "done",
        (Err(_), true) => "skipped",
        (Err(_), false) => "failed",
    }
}
