//! Saved plans: `provisioner diff -o FILE` writes the plan with what it was made from, and
//! `provisioner apply FILE` carries out exactly that plan — or refuses a stale one, as
//! Terraform's `plan -out` / `apply PLANFILE` do.
//!
//! The file is JSON (`format = "provisioner-plan"`, `format_version = 1`): the plan as
//! `diff --json` prints it, and its basis — the ledger's location, lineage and serial as
//! read, a SHA-256 digest of the desired state (every `*.toml` file's path and bytes, and
//! the keyed fingerprints of the secret values it reads), the observation time, and the
//! `--target`, `--replace` and `--allow-destroy` addresses. It never holds a secret value:
//! plans never do.
//!
//! A plan is stale, and `apply` refuses it naming why, when the desired state's digest
//! differs, when the ledger is another lineage or has moved on (another apply, a `state`
//! command), or when planning again now gives other changes (the clouds changed).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::desired::{Address, DesiredState};
use crate::plan::{Plan, PlanReport};

/// The file's format name.
pub const FORMAT: &str = "provisioner-plan";
/// The file's format version.
pub const FORMAT_VERSION: u32 = 1;
/// The largest plan file read (a plan of 10,000 resources is a few MB).
const MAX_BYTES: u64 = 64 << 20;

/// What a saved plan was made from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Basis {
    /// The ledger URL.
    pub ledger: String,
    /// The ledger's lineage as read (empty: no ledger yet).
    pub lineage: String,
    /// The ledger's serial as read (0: no ledger yet).
    pub serial: u64,
    /// `sha256:<hex>` of the desired state (see the module docs).
    pub desired_digest: String,
    /// When the clouds were observed (RFC 3339).
    pub observed_at: Option<String>,
    /// `--target` addresses.
    pub targets: Vec<Address>,
    /// `--replace` addresses.
    pub replace: Vec<Address>,
    /// `--allow-destroy` addresses.
    pub allow_destroy: Vec<Address>,
}

/// A saved plan.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PlanFile {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// What the plan was made from.
    pub basis: Basis,
    /// The plan, as `diff --json` prints it.
    pub plan: Value,
}

/// `sha256:<hex>` over every `*.toml` file under `dir` (relative path and bytes, in path
/// order) and the desired state's secret fingerprints (keyed hashes, never values).
pub fn desired_digest(dir: &Path, desired: &DesiredState) -> anyhow::Result<String> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let e = e?;
            let p = e.path();
            let t = e.file_type()?;
            if t.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "toml") {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut h = Sha256::new();
    for f in &files {
        let rel = f.strip_prefix(dir).unwrap_or(f);
        h.update(rel.to_string_lossy().as_bytes());
        h.update([0]);
        let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    for (k, v) in &desired.secret_fingerprints {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    Ok(format!(
        "sha256:{}",
        h.finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    ))
}

/// Writes a plan file (through a temporary file and a rename: never half-written).
pub fn write(path: &Path, basis: Basis, plan: &Plan, report: &PlanReport) -> anyhow::Result<()> {
    // Only a new file or a regular one is replaced: never a device (`-o /dev/null` run as
    // root would replace the device node with a file), a link, or a folder.
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_file() => bail!(
            "{}: a saved plan is written to a regular file, and this is not one",
            path.display()
        ),
        _ => {}
    }
    if path.extension().is_some_and(|x| x == "toml") {
        bail!(
            "{}: a saved plan is JSON; a `.toml` name would put it among the desired state's files",
            path.display()
        );
    }
    let file = PlanFile {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        basis,
        plan: serde_json::from_str(&super::diff::to_json(plan, report))
            .context("rendering the plan")?,
    };
    let text = serde_json::to_string_pretty(&file)?;
    let tmp = tmp_path(path);
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Reads a plan file: a regular file of at most 64 MiB, of this format and version.
pub fn read(path: &Path) -> anyhow::Result<PlanFile> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if !meta.is_file() {
        bail!("{}: a saved plan is a regular file", path.display());
    }
    if meta.len() > MAX_BYTES {
        bail!(
            "{}: {} bytes is larger than a saved plan can be ({MAX_BYTES} bytes)",
            path.display(),
            meta.len()
        );
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let file: PlanFile = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a saved plan", path.display()))?;
    if file.format != FORMAT {
        bail!(
            "{}: not a saved plan (format `{}`)",
            path.display(),
            file.format
        );
    }
    if file.format_version != FORMAT_VERSION {
        bail!(
            "{}: saved-plan format_version {} is not supported (this build reads {FORMAT_VERSION})",
            path.display(),
            file.format_version
        );
    }
    Ok(file)
}

/// What must match between a saved plan and the plan made again now: each change's address,
/// action, cause, cloud id, fields (old and new values) and replacement order. Step numbers
/// and notes may differ.
fn essence(plan: &Value) -> Vec<Value> {
    plan["changes"]
        .as_array()
        .map(|changes| {
            changes
                .iter()
                .filter(|c| c["action"] != "no-op")
                .map(|c| {
                    serde_json::json!({
                        "address": c["address"], "action": c["action"], "cause": c["cause"],
                        "cloud_id": c["cloud_id"], "fields": c["fields"], "strategy": c["strategy"],
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Why the plan made now differs from the saved one (`None`: the same changes).
pub fn differences(saved: &Value, now: &Plan, report: &PlanReport) -> Option<String> {
    let now: Value = serde_json::from_str(&super::diff::to_json(now, report)).ok()?;
    let (a, b) = (essence(saved), essence(&now));
    if a == b {
        return None;
    }
    let key = |c: &Value| {
        format!(
            "{} {}",
            c["action"].as_str().unwrap_or(""),
            c["address"].as_str().unwrap_or("")
        )
    };
    // The same change on both sides with other fields: name the fields.
    let fields_of = |c: &Value| -> Vec<(String, String)> {
        c["fields"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| (f["path"].as_str().unwrap_or("").to_string(), f.to_string()))
            .collect()
    };
    let mut said = Vec::new();
    for x in a.iter().filter(|c| !b.contains(c)) {
        match b.iter().find(|y| key(y) == key(x)) {
            Some(y) => {
                let (fx, fy) = (fields_of(x), fields_of(y));
                let paths: std::collections::BTreeSet<&str> = fx
                    .iter()
                    .filter(|f| !fy.contains(f))
                    .chain(fy.iter().filter(|f| !fx.contains(f)))
                    .map(|(p, _)| p.as_str())
                    .collect();
                said.push(format!(
                    "{} differs in {}",
                    key(x),
                    if paths.is_empty() {
                        "its cause, id or order".to_string()
                    } else {
                        paths.into_iter().collect::<Vec<_>>().join(", ")
                    }
                ));
            }
            None => said.push(format!("{} is no longer planned", key(x))),
        }
    }
    for y in b.iter().filter(|c| !a.contains(c)) {
        if !a.iter().any(|x| key(x) == key(y)) {
            said.push(format!("{} is planned now", key(y)));
        }
    }
    Some(said.join("; "))
}
