//! Bringing existing infrastructure under management: `provisioner scan` lists what the
//! observed clouds hold that this ledger does not manage, and `provisioner import` writes
//! TOML for chosen objects and records them in the ledger once a plan against that TOML
//! shows no change.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;

use crate::desired::{self, Address, DesiredState, Kind};
use crate::ledger::model::applied_hash;
use crate::ledger::{Ledger, LedgerEntry};
use crate::live::{LiveObject, LiveState};
use crate::plan::planner::compared_fields;
use crate::plan::scan::{Category, KindScan, scan};
use crate::plan::{Action, Plan};
use crate::providers::{Clouds, used_kinds};

/// Flags of `scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// Print the scan as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The address to write (`digitalocean.vpc.legacy`) and the object's cloud id.
    #[arg(value_names = ["ADDR", "CLOUD_ID"], num_args = 2, required_unless_present = "all_unmanaged")]
    pub object: Vec<String>,
    /// Import every object `scan` calls unmanaged or adoptable, under addresses made from
    /// their names.
    #[arg(long, conflicts_with = "object")]
    pub all_unmanaged: bool,
    /// The TOML file to write the resources into (appended to if it exists); it must lie
    /// in the desired-state folder to take part in later plans.
    #[arg(long, value_name = "FILE")]
    pub to: PathBuf,
    /// Lease options.
    #[command(flatten)]
    pub lock: super::state::LockArgs,
}

struct World {
    desired: DesiredState,
    ledger: Ledger,
    live: LiveState,
    plan: Plan,
    clouds: Clouds,
}

async fn observe(
    dir: &Path,
    inputs: &crate::desired::Inputs,
    ledger_url: &str,
) -> anyhow::Result<World> {
    let desired = desired::load_with(dir, inputs).map_err(|e| anyhow::anyhow!("{e}"))?;
    let store = super::state::open(ledger_url).await?;
    // No ledger yet: a new one with its own lineage (an import may be its first write).
    let mut ledger = store
        .read()
        .await?
        .map(|s| s.ledger)
        .unwrap_or_else(Ledger::create);
    ledger
        .claim_environment(desired.environment_name())
        .map_err(anyhow::Error::msg)?;
    crate::exec::apply_moves(&desired, &mut ledger);
    let clouds = Clouds::from_env(&desired).await;
    let live = clouds.observe(&desired, &ledger).await;
    let (plan, _) = crate::plan::plan(&desired, &ledger, &live)?;
    Ok(World {
        desired,
        ledger,
        live,
        plan,
        clouds,
    })
}

/// Requests each provider's client put on the wire so far (AWS SDK clients keep no count).
fn requests(clouds: &Clouds) -> BTreeMap<&'static str, u64> {
    clouds
        .request_stats()
        .into_iter()
        .map(|(provider, stats)| (provider, stats.requests))
        .collect()
}

/// Runs `scan`: exit 0 when every kind in scope was scanned, 3 when some could not be.
pub async fn exec_scan(
    dir: &Path,
    inputs: &crate::desired::Inputs,
    ledger_url: &str,
    args: &ScanArgs,
) -> ExitCode {
    let result = async {
        let w = observe(dir, inputs, ledger_url).await?;
        let kinds: Vec<Kind> = used_kinds(&w.desired, &w.ledger).into_iter().collect();
        let scanned = scan(&w.plan, &w.ledger, &w.live, &kinds);
        Ok::<_, anyhow::Error>((scanned, requests(&w.clouds)))
    }
    .await;
    let (scanned, requests) = match result {
        Ok(r) => r,
        Err(e) => {
            super::print_error(&e);
            return ExitCode::FAILURE;
        }
    };
    if args.json {
        let doc = serde_json::json!({
            "format_version": 1,
            "complete": scanned.iter().all(KindScan::is_complete),
            "requests": requests,
            "kinds": scanned,
        });
        outln!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else {
        out!("{}", render(&scanned, &requests));
    }
    if !scanned.iter().all(KindScan::is_complete) {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    }
}

fn render(scanned: &[KindScan], requests: &BTreeMap<&str, u64>) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let count = |c: Category| {
        scanned
            .iter()
            .flat_map(|k| &k.objects)
            .filter(|o| o.category == c)
            .count()
    };
    for k in scanned {
        let _ = writeln!(out, "{}", k.kind);
        if let Some(why) = &k.not_observed {
            let _ = writeln!(out, "  not scanned: {why}");
            continue;
        }
        let _ = writeln!(out, "  {} managed by this ledger", k.managed);
        for scope in &k.unobserved_scopes {
            let _ = writeln!(out, "  not scanned: {scope}");
        }
        if k.coverage == Some("named") {
            let _ = writeln!(
                out,
                "  (only objects the desired state or the ledger names are read for this kind: others are not seen)"
            );
        }
        for o in &k.objects {
            let key: Vec<String> = o
                .key
                .iter()
                .map(|(f, v)| match v {
                    Value::String(s) => format!("{f}={s:?}"),
                    v => format!("{f}={v}"),
                })
                .collect();
            let _ = write!(
                out,
                "  {:<10} {} ({})",
                o.category.as_str(),
                o.id,
                key.join(" ")
            );
            match (o.category, &o.address, &o.lineage) {
                (Category::Adoptable, Some(a), _) => {
                    let _ = write!(
                        out,
                        " matches {a}: `provisioner state import {a} {}` or `lifecycle.adopt = true`",
                        o.id
                    );
                }
                (Category::Theirs, _, Some(l)) => {
                    let _ = write!(out, " belongs to ledger {l}");
                }
                _ => {}
            }
            out.push('\n');
        }
    }
    let unscanned = scanned.iter().filter(|k| !k.is_complete()).count();
    let cost: Vec<String> = requests.iter().map(|(p, n)| format!("{p} {n}")).collect();
    let _ = writeln!(
        out,
        "\n{} managed, {} adoptable, {} unmanaged, {} of another ledger; {} kind{} scanned, {unscanned} not{}.",
        scanned.iter().map(|k| k.managed).sum::<usize>(),
        count(Category::Adoptable),
        count(Category::Unmanaged),
        count(Category::Theirs),
        scanned.len() - unscanned,
        if scanned.len() - unscanned == 1 {
            ""
        } else {
            "s"
        },
        if cost.is_empty() {
            String::new()
        } else {
            format!(" (requests: {})", cost.join(", "))
        }
    );
    out
}

/// Runs `import`.
pub async fn exec_import(
    dir: &Path,
    inputs: &crate::desired::Inputs,
    ledger_url: &str,
    args: &ImportArgs,
) -> ExitCode {
    match import(dir, inputs, ledger_url, args).await {
        Ok(code) => code,
        Err(e) => {
            super::print_error(&e);
            ExitCode::FAILURE
        }
    }
}

/// An object chosen for import, with the address it gets.
struct Chosen<'a> {
    address: Address,
    kind: Kind,
    object: &'a LiveObject,
}

async fn import(
    dir: &Path,
    inputs: &crate::desired::Inputs,
    ledger_url: &str,
    args: &ImportArgs,
) -> anyhow::Result<ExitCode> {
    // `import` writes root-module TOML. A `for_each` instance or a module's resource is
    // written by hand and then recorded with `provisioner state import ADDR ID`; a module's
    // folder and an environment's file are not where root resources go.
    if let Some(address) = args.object.first()
        && let Ok(a) = Address::parse(address)
        && (!a.module().is_empty() || a.name().contains('['))
    {
        anyhow::bail!(
            "{a} is a for_each instance or a module's resource: write its block in the desired state, then record the object with `provisioner state import '{a}' ID`"
        );
    }
    let to = args.to.canonicalize().unwrap_or_else(|_| args.to.clone());
    let root = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    for folder in [
        crate::desired::expand::MODULES_DIR,
        crate::desired::expand::ENVIRONMENTS_DIR,
    ] {
        if to.starts_with(root.join(folder)) {
            anyhow::bail!(
                "{} is inside `{folder}/`: import writes root-module resources; choose a file elsewhere in {}",
                args.to.display(),
                dir.display()
            );
        }
    }
    let w = observe(dir, inputs, ledger_url).await?;
    let mut taken: BTreeSet<Address> = w.desired.resources.keys().cloned().collect();
    taken.extend(w.ledger.resources.keys().cloned());
    let mut chosen: Vec<Chosen<'_>> = Vec::new();
    if args.all_unmanaged {
        let kinds: Vec<Kind> = used_kinds(&w.desired, &w.ledger).into_iter().collect();
        for k in scan(&w.plan, &w.ledger, &w.live, &kinds) {
            let Some(kind) = Kind::parse(&k.kind) else {
                continue;
            };
            if let Some(why) = &k.not_observed {
                errln!(
                    "warning: {} not scanned ({why}): nothing of it imported",
                    k.kind
                );
                continue;
            }
            for found in k
                .objects
                .iter()
                .filter(|o| o.category == Category::Unmanaged)
            {
                let Some(object) = w.live.objects(kind).iter().find(|o| o.id == found.id) else {
                    continue;
                };
                let address = fresh_address(kind, object, &taken);
                taken.insert(address.clone());
                chosen.push(Chosen {
                    address,
                    kind,
                    object,
                });
            }
        }
        if chosen.is_empty() {
            outln!("nothing unmanaged to import");
            return Ok(ExitCode::SUCCESS);
        }
    } else {
        let [address, id] = args.object.as_slice() else {
            bail!("give ADDR and CLOUD_ID, or --all-unmanaged");
        };
        let address = Address::parse(address).map_err(anyhow::Error::msg)?;
        let kind = super::state::kind_of(&address)?;
        if w.desired.resources.contains_key(&address) {
            bail!(
                "{address} is already in the desired state: to manage an existing object under it, run `provisioner state import {address} {id}`"
            );
        }
        if w.ledger.resources.contains_key(&address) {
            bail!("{address} is already in the ledger");
        }
        if let Some(why) = w.live.failure(kind) {
            bail!("cannot import: {kind} could not be observed ({why}); nothing was written");
        }
        let Some(object) = w.live.objects(kind).iter().find(|o| o.id == *id) else {
            bail!(
                "no {kind} with id {id} is in scope (observed {} object{} of this kind; kinds listed per zone, repository or region are observed where the desired state names one); nothing was written",
                w.live.objects(kind).len(),
                if w.live.objects(kind).len() == 1 {
                    ""
                } else {
                    "s"
                }
            );
        };
        if w.ledger
            .resources
            .values()
            .any(|e| e.kind == kind.key() && e.id == *id)
        {
            bail!("{kind} {id} is already managed by this ledger");
        }
        chosen.push(Chosen {
            address,
            kind,
            object,
        });
    }
    for c in &chosen {
        if let Some(theirs) = c.object.lineage().filter(|l| *l != w.ledger.lineage) {
            bail!(
                "{} {} belongs to another provisioner ledger (lineage {theirs}); nothing was written",
                c.kind,
                c.object.id
            );
        }
    }

    // The TOML first: the plan against it decides what the ledger records.
    let mut text = String::new();
    let mut placeholders = Vec::new();
    for c in &chosen {
        let (toml, secrets) = resource_toml(&c.address, c.kind, c.object)?;
        text.push_str(&toml);
        text.push('\n');
        placeholders.extend(secrets);
    }
    let existed = args.to.exists();
    let before = if existed {
        Some(std::fs::read(&args.to).with_context(|| format!("reading {}", args.to.display()))?)
    } else {
        None
    };
    // Puts the file back as it was: what was written did not validate.
    let restore = || -> anyhow::Result<()> {
        match &before {
            Some(bytes) => std::fs::write(&args.to, bytes)?,
            None => std::fs::remove_file(&args.to)?,
        }
        Ok(())
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.to)
        .with_context(|| format!("opening {}", args.to.display()))?;
    if existed {
        file.write_all(b"\n")?;
    }
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", args.to.display()))?;
    drop(file);
    outln!(
        "wrote {} resource{} to {}",
        chosen.len(),
        if chosen.len() == 1 { "" } else { "s" },
        args.to.display()
    );
    let unmarked: Vec<String> = chosen
        .iter()
        .filter(|c| !c.kind.carries_lineage())
        .map(|c| c.address.to_string())
        .collect();
    if !unmarked.is_empty() {
        errln!(
            "warning: {} cannot carry a lineage marker, so nothing shows whether another ledger or tool manages them: review {} before the next apply",
            unmarked.join(", "),
            args.to.display()
        );
    }
    for (address, var) in &placeholders {
        outln!(
            "  {address}: its secret value cannot be read back; set {var} (or change the source) before the next apply writes it"
        );
    }

    let inside = args
        .to
        .canonicalize()
        .ok()
        .zip(dir.canonicalize().ok())
        .is_some_and(|(f, d)| f.starts_with(d));
    if !inside {
        outln!(
            "{} is outside the desired-state folder {}: move the resources into it, then run `provisioner state import ADDR ID` for each",
            args.to.display(),
            dir.display()
        );
        return Ok(ExitCode::from(3));
    }
    let desired = match desired::load_with(dir, inputs) {
        Ok(d) => d,
        Err(e) => {
            restore().with_context(|| format!("restoring {}", args.to.display()))?;
            bail!(
                "{e}\nthe TOML made for these objects does not validate with the rest of the desired state, so {} was put back as it was and nothing was recorded; the TOML was:\n{text}",
                args.to.display()
            );
        }
    };
    // Plan with the objects recorded, as they would be once imported.
    let mut probe = w.ledger.clone();
    for c in &chosen {
        probe.resources.insert(
            c.address.clone(),
            entry(&desired, c.address.clone(), c.kind, c.object),
        );
    }
    let (plan, _) = crate::plan::plan(&desired, &probe, &w.live)?;
    let mut clean = Vec::new();
    for c in &chosen {
        let change = plan.changes.iter().find(|ch| ch.address == c.address);
        let secret = crate::plan::planner::secret_fields(c.kind);
        let differs: Vec<String> = change
            .map(|ch| {
                ch.fields
                    .iter()
                    .filter(|f| {
                        // A secret field, or an entry of a table of them (`data.identity`).
                        let top = f.path.split('.').next().unwrap_or_default();
                        !secret.contains(&f.path.as_ref()) && !secret.contains(&top)
                    })
                    .map(|f| f.path.to_string())
                    .collect()
            })
            .unwrap_or_default();
        let acts = change.is_some_and(|ch| {
            matches!(ch.action, Action::Replace | Action::Delete | Action::Create)
        });
        if acts || !differs.is_empty() {
            outln!(
                "  {} not recorded: the plan against the written TOML still changes {}; edit it, then `provisioner state import {} {}`",
                c.address,
                if differs.is_empty() {
                    "it".to_string()
                } else {
                    differs.join(", ")
                },
                c.address,
                c.object.id
            );
        } else {
            clean.push(c);
        }
    }
    if clean.is_empty() {
        return Ok(ExitCode::from(3));
    }
    let store = super::state::open(ledger_url).await?;
    let owner = crate::ledger::lease::Owner::current(&uuid::Uuid::new_v4().to_string());
    let lease = store
        .acquire(
            &owner,
            std::time::Duration::from_secs(60),
            args.lock.lock_timeout,
        )
        .await?;
    let written = async {
        let current = store.read().await?;
        let mut ledger = current
            .as_ref()
            .map(|s| s.ledger.clone())
            .unwrap_or_else(|| w.ledger.clone());
        for c in &clean {
            if ledger.resources.contains_key(&c.address) {
                bail!("{} was recorded by someone else meanwhile", c.address);
            }
            ledger.resources.insert(
                c.address.clone(),
                entry(&desired, c.address.clone(), c.kind, c.object),
            );
        }
        let names: Vec<String> = clean.iter().map(|c| c.address.to_string()).collect();
        Ok(store
            .write(
                ledger,
                current.as_ref(),
                &format!("import {}", names.join(", ")),
            )
            .await?)
    }
    .await;
    store.release(lease).await?;
    let written = written?;
    outln!(
        "recorded {} resource{} in the ledger (serial {})",
        clean.len(),
        if clean.len() == 1 { "" } else { "s" },
        written.ledger.serial
    );
    Ok(if clean.len() == chosen.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

/// The ledger entry of an imported object: its id, the fields the desired state now holds
/// (what "last applied" means for an object provisioner did not write), its attributes.
fn entry(desired: &DesiredState, address: Address, kind: Kind, o: &LiveObject) -> LedgerEntry {
    let applied: serde_json::Map<String, Value> = compared_fields(kind)
        .iter()
        .filter_map(|f| Some((f.name.to_string(), o.fields.get(f.name)?.clone())))
        .filter(|(_, v)| !v.is_null())
        .collect();
    let r = desired.resources.get(&address);
    LedgerEntry {
        kind: kind.key().to_string(),
        id: o.id.clone(),
        applied_hash: applied_hash(&applied),
        applied,
        updated_at: o.updated_at.clone(),
        attributes: o
            .attributes
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        depends_on: r.map(|r| r.depends_on.clone()).unwrap_or_default(),
        prevent_destroy: r.is_some_and(|r| r.lifecycle.prevent_destroy),
        ..LedgerEntry::default()
    }
}

/// An address for an object, from its name (or other key field), unused so far.
fn fresh_address(kind: Kind, o: &LiveObject, taken: &BTreeSet<Address>) -> Address {
    let text = |f: &str| {
        o.fields
            .get(f)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    // The name where the kind has one (a record at the apex is named by its type), else
    // the last key field (a CDN endpoint's origin), else the id.
    let picked = match (text("name"), text("type")) {
        (Some("@"), Some(t)) => format!("{t}_apex"),
        (Some(n), Some(t)) if kind == Kind::DoDomainRecord => format!("{n}_{t}"),
        (Some(n), _) => n.to_string(),
        (None, _) => crate::plan::planner::key_fields(kind)
            .iter()
            .rev()
            .find_map(|f| text(f))
            .unwrap_or(&o.id)
            .to_string(),
    };
    let raw: String = picked
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let raw = raw.trim_matches('_');
    let base = match raw.chars().next() {
        Some(c) if c.is_ascii_alphabetic() => raw.to_string(),
        _ => format!("imported_{raw}"),
    };
    let base: String = base.chars().take(48).collect();
    let mut n = 1;
    loop {
        let name = if n == 1 {
            base.clone()
        } else {
            format!("{base}_{n}")
        };
        let a = Address::new(kind.provider(), kind.name(), &name);
        if !taken.contains(&a) {
            return a;
        }
        n += 1;
    }
}

/// The TOML of one resource, from its live fields: every field the kind declares and the
/// cloud reports (local settings left to their defaults); secret fields as `{ env = … }`
/// placeholders, never values. Returns the text and the placeholders it used.
fn resource_toml(
    address: &Address,
    kind: Kind,
    o: &LiveObject,
) -> anyhow::Result<(String, Vec<(Address, String)>)> {
    use crate::desired::schema::Shape;
    let mut fields = toml::Table::new();
    let mut placeholders = Vec::new();
    for f in kind.fields() {
        if matches!(f.shape, Shape::Secret { .. }) {
            let var = format!("{}_{}", address.name(), f.name)
                .to_ascii_uppercase()
                .replace('-', "_");
            let mut t = toml::Table::new();
            t.insert("env".into(), toml::Value::String(var.clone()));
            fields.insert(f.name.into(), toml::Value::Table(t));
            placeholders.push((address.clone(), var));
            continue;
        }
        if f.change == crate::desired::schema::Change::Local {
            continue;
        }
        if let Some(v) = o.fields.get(f.name).and_then(to_toml) {
            fields.insert(f.name.into(), v);
        }
    }
    let mut by_name = toml::Table::new();
    by_name.insert(address.name().into(), toml::Value::Table(fields));
    let mut by_kind = toml::Table::new();
    by_kind.insert(address.kind().into(), toml::Value::Table(by_name));
    let mut doc = toml::Table::new();
    doc.insert(address.provider().into(), toml::Value::Table(by_kind));
    let text = toml::to_string(&doc).with_context(|| format!("writing TOML for {address}"))?;
    Ok((
        format!("# imported: {} {}\n{text}", kind, o.id),
        placeholders,
    ))
}

/// A JSON value as TOML; `None` for null (TOML has none) and empty tables.
fn to_toml(v: &Value) -> Option<toml::Value> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => toml::Value::Float(n.as_f64()?),
        },
        Value::String(s) => toml::Value::String(s.clone()),
        Value::Array(a) => toml::Value::Array(a.iter().filter_map(to_toml).collect()),
        Value::Object(m) => {
            let t: toml::Table = m
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), to_toml(v)?)))
                .collect();
            if t.is_empty() {
                return None;
            }
            toml::Value::Table(t)
        }
    })
}
