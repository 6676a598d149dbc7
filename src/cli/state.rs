//! `provisioner state …` and `provisioner ledger migrate`: read and repair the ledger. Every
//! command that writes takes the lease first ([`with_lease`], over the one lease routine),
//! writes conditionally, and releases the lease on the way out — also on Ctrl-C or SIGTERM.

use std::collections::BTreeSet;
use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::desired::{Address, Kind};
use crate::ledger::lease::Owner;
use crate::ledger::store::{LEASE_TTL, OnLoss, Snapshot, Store, hold};
use crate::ledger::{Ledger, LedgerEntry, codec};

/// How long to wait for the lease.
#[derive(Debug, Clone, Args)]
pub struct LockArgs {
    /// Wait up to this long for another process's lease (`30s`, `5m`); without it, a held
    /// lease is an error naming its holder.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub lock_timeout: Option<Duration>,
}

/// `state` subcommands.
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// List managed resources.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Show one resource's ledger entry.
    Show {
        /// Address.
        address: String,
    },
    /// Show the ledger's version history (or, with --journal, the apply journal).
    History {
        /// How many entries, newest first.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Show the audit journal instead.
        #[arg(long)]
        journal: bool,
    },
    /// Make an earlier ledger version the latest (the current one stays in the history).
    Rollback {
        /// Version to restore (from `state history`).
        version: String,
        /// Do not ask (required when stdin is not a terminal): the differences are printed
        /// first either way.
        #[arg(long)]
        auto_approve: bool,
        /// Lease wait.
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Stop managing a resource, leaving the cloud object alone.
    Forget {
        /// Address.
        address: String,
        /// Lease wait.
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Rename an address in the ledger (and the `depends_on` that name it), leaving the
    /// cloud object alone: for a resource renamed in the desired state. A `[[moved]]` table
    /// in the desired state does the same inside a normal apply.
    Mv {
        /// The address the ledger has now.
        from: String,
        /// The new address (of the same kind).
        to: String,
        /// Lease wait.
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Adopt an existing cloud object under an address.
    Import {
        /// Address.
        address: String,
        /// The cloud's id for the object.
        cloud_id: String,
        /// Lease wait.
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Break a lease lock held by a dead process.
    Unlock {
        /// Required: breaking a lock is a human decision.
        #[arg(long)]
        force: bool,
        /// The lease to break (the error that names the holder shows it).
        lease_id: String,
    },
}

/// `ledger` subcommands.
#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Upgrade the ledger document to this version's schema.
    Migrate {
        /// Lease wait.
        #[command(flatten)]
        lock: LockArgs,
    },
}

/// Runs a `state` command (`desired` is the desired-state folder, which `import` checks
/// the address against and observes the clouds for).
pub async fn exec_state(
    desired: &std::path::Path,
    inputs: &crate::desired::Inputs,
    ledger_url: &str,
    command: &StateCommand,
) -> ExitCode {
    finish(state(desired, inputs, ledger_url, command).await)
}

/// Runs a `ledger` command.
pub async fn exec_ledger(ledger_url: &str, command: &LedgerCommand) -> ExitCode {
    finish(ledger(ledger_url, command).await)
}

fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            errln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The kind an address names, or an error saying it is not one provisioner manages.
pub(super) fn kind_of(address: &Address) -> anyhow::Result<Kind> {
    Kind::lookup(address.provider(), address.kind()).with_context(|| {
        format!(
            "{address}: `{}.{}` is not a kind provisioner manages",
            address.provider(),
            address.kind()
        )
    })
}

/// Before `state import` writes anything: the address must be in the desired state (as
/// Terraform's `import` needs the resource in configuration), its kind must be observable
/// now, an object with `cloud_id` must exist, and it must not carry another ledger's
/// lineage. Observing costs the same requests as a plan.
async fn check_importable(
    desired_dir: &std::path::Path,
    inputs: &crate::desired::Inputs,
    ledger: Option<Ledger>,
    address: &Address,
    kind: Kind,
    cloud_id: &str,
) -> anyhow::Result<()> {
    let desired = crate::desired::load_with(desired_dir, inputs).map_err(|e| {
        anyhow::anyhow!(
            "{e}\n`state import` checks the address against the desired state in {}: fix it first",
            desired_dir.display()
        )
    })?;
    if !desired.resources.contains_key(address) {
        bail!(
            "{address} is not in the desired state ({}): write its block first, then import the object into it",
            desired_dir.display()
        );
    }
    let mut probe = ledger.unwrap_or_else(Ledger::create);
    probe.resources.insert(
        address.clone(),
        LedgerEntry {
            kind: kind.key().to_string(),
            id: cloud_id.to_string(),
            ..LedgerEntry::default()
        },
    );
    let clouds = crate::providers::Clouds::from_env(&desired).await;
    let live = clouds.observe(&desired, &probe).await;
    if let Some(why) = live.failure(kind) {
        bail!(
            "cannot check that {kind} {cloud_id} exists: {kind} could not be observed ({why}); nothing was written"
        );
    }
    let Some(object) = live.objects(kind).iter().find(|o| o.id == cloud_id) else {
        let seen = live.objects(kind).len();
        bail!(
            "no {kind} with id {cloud_id} exists (observed {seen} object{} of this kind); nothing was written",
            if seen == 1 { "" } else { "s" }
        );
    };
    if let Some(theirs) = object.lineage().filter(|l| *l != probe.lineage) {
        bail!(
            "{kind} {cloud_id} belongs to another provisioner ledger (lineage {theirs}): run `provisioner state forget` for it in that ledger first; nothing was written"
        );
    }
    Ok(())
}

/// Opens the store, printing its warnings.
pub async fn open(ledger_url: &str) -> anyhow::Result<Store> {
    let store = Store::open(ledger_url).await?;
    for w in &store.warnings {
        errln!("warning: {w}");
    }
    Ok(store)
}

async fn state(
    desired_dir: &std::path::Path,
    inputs: &crate::desired::Inputs,
    ledger_url: &str,
    command: &StateCommand,
) -> anyhow::Result<()> {
    let store = open(ledger_url).await?;
    // Another environment's ledger is neither shown nor changed as this one's. The
    // commands that repair a ledger (`history`, `rollback`, `unlock`) work whatever it
    // holds; a ledger that cannot be read is reported by the command itself.
    let repairs = matches!(
        command,
        StateCommand::History { .. } | StateCommand::Rollback { .. } | StateCommand::Unlock { .. }
    );
    if !repairs && let Ok(Some(current)) = store.read().await {
        current
            .ledger
            .clone()
            .claim_environment(inputs.environment.as_deref())
            .map_err(anyhow::Error::msg)?;
    }
    match command {
        StateCommand::List { json } => {
            let Some(ledger) = store.read().await?.map(|s| s.ledger) else {
                errln!(
                    "no ledger at {} yet (nothing has been applied with it; check --ledger)",
                    store.location()
                );
                return Ok(());
            };
            for (address, e) in &ledger.resources {
                if *json {
                    outln!(
                        "{}",
                        serde_json::json!({"address": address, "kind": e.kind, "id": e.id})
                    );
                } else {
                    outln!("{address}\t{}", e.id);
                }
            }
            for address in ledger.pending.keys() {
                if !*json {
                    outln!("{address}\t(create in flight)");
                }
            }
            Ok(())
        }
        StateCommand::Show { address } => {
            let address = parse_address(address)?;
            let ledger = store.read().await?.map(|s| s.ledger).unwrap_or_default();
            match (ledger.resources.get(&address), ledger.pending.get(&address)) {
                (Some(e), _) => outln!("{}", serde_json::to_string_pretty(e)?),
                (None, Some(i)) => outln!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({"pending": i}))?
                ),
                (None, None) => bail!(
                    "{address} is not in the ledger at {}{}",
                    store.location(),
                    suggestion(&ledger, &address)
                ),
            }
            Ok(())
        }
        StateCommand::History { limit, journal } => {
            if *journal {
                for r in store.journal(*limit).await? {
                    outln!(
                        "{}  {}  {}  {}  {}: {}",
                        r.started_at,
                        r.run_id,
                        r.by,
                        r.command,
                        r.outcome,
                        r.summary
                    );
                    for a in &r.actions {
                        outln!(
                            "    {} {} {}{}",
                            a.action,
                            a.address,
                            a.outcome,
                            a.error
                                .as_deref()
                                .map(|e| format!(": {e}"))
                                .unwrap_or_default()
                        );
                    }
                }
                return Ok(());
            }
            let history = store.history(*limit).await?;
            if history.is_empty() {
                outln!("the ledger at {} has no versions yet", store.location());
            }
            for h in history {
                let mark = if h.latest { "*" } else { " " };
                let serial = h.serial.map_or("?".into(), |s| s.to_string());
                match (&h.written, &h.problem) {
                    (_, Some(p)) => outln!(
                        "{mark} {}  serial {serial}  {}  unreadable: {p}",
                        h.version,
                        h.stored_at
                    ),
                    (Some(w), None) => outln!(
                        "{mark} {}  serial {serial}  {}  {}  {}",
                        h.version,
                        w.at,
                        w.by,
                        w.summary
                    ),
                    (None, None) => {
                        outln!("{mark} {}  serial {serial}  {}", h.version, h.stored_at)
                    }
                }
            }
            Ok(())
        }
        StateCommand::Rollback {
            version,
            auto_approve,
            lock,
        } => {
            use std::io::IsTerminal;
            let interactive = std::io::stdin().is_terminal();
            if !auto_approve && !interactive {
                bail!(
                    "stdin is not a terminal, so rollback cannot ask for confirmation: pass --auto-approve (the differences are printed first)"
                );
            }
            with_lease(&store, lock, async {
                let old = store.read_version(version).await?;
                match store.read().await {
                    Ok(Some(current)) => print_ledger_diff(&current.ledger, &old),
                    Ok(None) => {}
                    Err(e) => outln!("  the current version cannot be read ({e}); restoring version {version} over it"),
                }
                if !auto_approve {
                    use std::io::{BufRead, Write};
                    out!("\nRoll the ledger back to version {version}? Only `yes` is accepted: ");
                    std::io::stdout().flush()?;
                    let mut answer = String::new();
                    std::io::stdin().lock().read_line(&mut answer)?;
                    if answer.trim() != "yes" {
                        bail!("rollback cancelled: nothing was written");
                    }
                }
                let written = store.rollback(version).await?;
                outln!(
                    "rolled back to version {version}: now serial {} (version {}); the version it replaced stays in the history",
                    written.ledger.serial, written.version.id
                );
                Ok(())
            })
            .await
        }
        StateCommand::Forget { address, lock } => {
            let address = parse_address(address)?;
            with_lease(&store, lock, async {
                let current = read_existing(&store).await?;
                let mut ledger = current.ledger.clone();
                let entry = ledger.resources.remove(&address);
                let intent = ledger.pending.remove(&address);
                if entry.is_none() && intent.is_none() {
                    bail!(
                        "{address} is not in the ledger at {}{}",
                        store.location(),
                        suggestion(&current.ledger, &address)
                    );
                }
                let written = store
                    .write(ledger, Some(&current), &format!("state forget {address}"))
                    .await?;
                outln!(
                    "{address} is no longer managed{}; the cloud object was left alone (serial {}). \
                     If it is still in the desired state, the next plan adopts it again only with proof \
                     that it is this ledger's (its lineage marker) or `lifecycle.adopt`; otherwise it \
                     reports a conflict.",
                    entry.map(|e| format!(" (was {})", e.id)).unwrap_or_default(),
                    written.ledger.serial
                );
                Ok(())
            })
            .await
        }
        StateCommand::Mv { from, to, lock } => {
            let (from, to) = (parse_address(from)?, parse_address(to)?);
            with_lease(&store, lock, async {
                let Some(current) = store.read().await? else {
                    bail!("the ledger at {} does not exist yet", store.location());
                };
                let mut ledger = current.ledger.clone();
                if let Err(why) = ledger.rename(&from, &to) {
                    bail!(
                        "{why}{}",
                        if ledger.resources.contains_key(&from) {
                            String::new()
                        } else {
                            suggestion(&ledger, &from)
                        }
                    );
                }
                let written = store
                    .write(ledger, Some(&current), &format!("state mv {from} {to}"))
                    .await?;
                outln!(
                    "{from} is now {to} (serial {}); the cloud object was left alone",
                    written.ledger.serial
                );
                Ok(())
            })
            .await
        }
        StateCommand::Import {
            address,
            cloud_id,
            lock,
        } => {
            let address = parse_address(address)?;
            let kind = kind_of(&address)?;
            if cloud_id.trim().is_empty() {
                bail!("the cloud id must not be empty");
            }
            let read = store.read().await?.map(|s| s.ledger);
            check_importable(desired_dir, inputs, read, &address, kind, cloud_id).await?;
            with_lease(&store, lock, async {
                let current = store.read().await?;
                let mut ledger = current
                    .as_ref()
                    .map(|s| s.ledger.clone())
                    .unwrap_or_else(Ledger::create);
                if let Some(e) = ledger.resources.get(&address) {
                    bail!(
                        "{address} is already managed (cloud id {}); `provisioner state forget {address}` first to re-import it",
                        e.id
                    );
                }
                if let Some((other, _)) = ledger
                    .resources
                    .iter()
                    .find(|(_, e)| e.kind == kind.key() && e.id == *cloud_id)
                {
                    bail!("{} {cloud_id} is already managed as {other}", kind.key());
                }
                ledger.pending.remove(&address);
                ledger.resources.insert(
                    address.clone(),
                    LedgerEntry {
                        kind: kind.key().to_string(),
                        id: cloud_id.clone(),
                        ..LedgerEntry::default()
                    },
                );
                let written = store
                    .write(
                        ledger,
                        current.as_ref(),
                        &format!("state import {address} {cloud_id}"),
                    )
                    .await?;
                outln!(
                    "{address} now manages {} {cloud_id} (serial {}); the next plan compares it with the desired state",
                    kind.key(),
                    written.ledger.serial
                );
                Ok(())
            })
            .await
        }
        StateCommand::Unlock { force, lease_id } => {
            if !force {
                bail!(
                    "breaking a lease can let two processes write at once: check that its holder is gone, then run `provisioner state unlock --force {lease_id}`"
                );
            }
            let info = store.break_lease(lease_id).await?;
            outln!(
                "broke lease {} held by {} (acquired {}, expiring {})",
                info.lease_id,
                info.owner,
                info.acquired_at,
                info.expires_at
            );
            Ok(())
        }
    }
}

async fn ledger(ledger_url: &str, command: &LedgerCommand) -> anyhow::Result<()> {
    let store = open(ledger_url).await?;
    match command {
        LedgerCommand::Migrate { lock } => with_lease(&store, lock, async {
            let Some((bytes, version)) = store.read_raw().await? else {
                outln!(
                    "the ledger at {} does not exist yet: nothing to migrate",
                    store.location()
                );
                return Ok(());
            };
            let (ledger, applied) = codec::decode_and_migrate(&bytes, &store.location())?;
            if applied.is_empty() {
                outln!(
                    "the ledger at {} is already at schema version {}",
                    store.location(),
                    ledger.schema_version
                );
                return Ok(());
            }
            let base = Snapshot {
                ledger: ledger.clone(),
                version,
            };
            let written = store
                .write(
                    ledger,
                    Some(&base),
                    &format!("ledger migrate: {}", applied.join(", ")),
                )
                .await?;
            outln!(
                "migrated the ledger at {} with {} (serial {}); version {} keeps the old format",
                store.location(),
                applied.join(", "),
                written.ledger.serial,
                base.version.id
            );
            Ok(())
        })
        .await,
    }
}

async fn read_existing(store: &Store) -> anyhow::Result<Snapshot> {
    match store.read().await? {
        Some(s) => Ok(s),
        None => bail!("the ledger at {} does not exist yet", store.location()),
    }
}

fn parse_address(text: &str) -> anyhow::Result<Address> {
    Address::parse(text).map_err(anyhow::Error::msg)
}

fn suggestion(ledger: &Ledger, address: &Address) -> String {
    let names: Vec<String> = ledger.resources.keys().map(Address::to_string).collect();
    let target = address.to_string();
    names
        .iter()
        .filter(|n| strsim::levenshtein(n, &target) <= 3)
        .min_by_key(|n| strsim::levenshtein(n, &target))
        .map(|n| format!(" (did you mean {n}?)"))
        .unwrap_or_default()
}

/// What a rollback changes, resource by resource.
fn print_ledger_diff(current: &Ledger, target: &Ledger) {
    let addresses: BTreeSet<&Address> = current
        .resources
        .keys()
        .chain(target.resources.keys())
        .collect();
    let mut any = false;
    for a in addresses {
        match (current.resources.get(a), target.resources.get(a)) {
            (Some(c), Some(t)) if c == t => {}
            (Some(c), Some(t)) => {
                any = true;
                if c.id != t.id {
                    outln!("  ~ {a}: id {} -> {}", c.id, t.id);
                } else {
                    outln!("  ~ {a}: recorded values differ");
                }
            }
            (Some(c), None) => {
                any = true;
                outln!("  - {a} ({}): no longer in the ledger", c.id);
            }
            (None, Some(t)) => {
                any = true;
                outln!("  + {a} ({}): back in the ledger", t.id);
            }
            (None, None) => {}
        }
    }
    if !any {
        outln!("  (the versions record the same resources)");
    }
}

/// Runs `work` holding the lease ([`crate::ledger::store::hold`]): renews it while the work
/// runs, and releases it afterwards, also when the work fails or a SIGINT/SIGTERM arrives
/// (which abandons the work).
pub async fn with_lease<T>(
    store: &Store,
    lock: &LockArgs,
    work: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let owner = Owner::current(&uuid::Uuid::new_v4().to_string());
    let held = hold(
        store,
        &owner,
        LEASE_TTL,
        lock.lock_timeout,
        OnLoss::Abandon,
        work,
    )
    .await;
    if let Err(e) = held.release {
        errln!("warning: releasing the lease: {e}");
    }
    held.result?
}
