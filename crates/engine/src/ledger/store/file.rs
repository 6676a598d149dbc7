//! The local store (`file://PATH`): the embedded choice for a single machine, with the same
//! semantics as S3. Every write goes to a temporary file that is fsynced and then renamed
//! into place, so a crash leaves the old document or the new one, never half of either.
//! Compare-and-swap is made atomic by an advisory lock (`flock`) on `PATH/.guard`, held only
//! for the check and the rename; the kernel drops it if the process dies. Each ledger write
//! also lands as a numbered file under `PATH/history/`, which is the version history.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{Cond, LEDGER_KEY, Put, VersionMeta};
use crate::ledger::error::LedgerError;
use crate::ledger::lease::rfc3339;

/// A ledger folder.
#[derive(Clone, Debug)]
pub struct FileBackend {
    root: PathBuf,
}

const HISTORY: &str = "history";

/// Largest document the local store reads (the ledger, a version, the lease, a journal
/// record). A ledger of 10,000 resources is about 20 MB; anything past 256 MiB is not a
/// ledger (a link to `/dev/zero`, a log written to the wrong place) and is refused before
/// it fills memory.
pub const MAX_DOCUMENT_BYTES: u64 = 256 * 1024 * 1024;

/// Reads one stored document: a regular file, at most [`MAX_DOCUMENT_BYTES`].
fn read(path: &Path) -> std::io::Result<Vec<u8>> {
    crate::fsread::read_regular(path, MAX_DOCUMENT_BYTES)
}

impl FileBackend {
    /// Opens (and creates if needed) the folder.
    pub fn open(root: impl AsRef<Path>) -> Result<Self, LedgerError> {
        // Nothing is made until something is written: a command that only reads (`state
        // list` with a mistyped `--ledger file://…`) finds no ledger and creates nothing.
        let root = root.as_ref().to_path_buf();
        if root.exists() && !root.is_dir() {
            return Err(LedgerError::io(
                root.display(),
                std::io::Error::other("not a folder: a file ledger is a folder"),
            ));
        }
        Ok(FileBackend { root })
    }

    pub(super) fn location(&self, key: &str) -> String {
        format!("file://{}", self.root.join(key).display())
    }

    fn path(&self, key: &str) -> Result<PathBuf, LedgerError> {
        // Keys are ours, but refuse anything that could leave the folder.
        if key
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
        {
            return Err(LedgerError::BadUrl {
                url: self.location(key),
                why: "not a key inside the ledger folder".into(),
            });
        }
        Ok(self.root.join(key))
    }

    pub(super) async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, LedgerError> {
        let path = self.path(key)?;
        match read(&path) {
            Ok(bytes) => {
                let tag = tag_of(&bytes);
                Ok(Some((bytes, tag)))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(LedgerError::io(path.display(), e)),
        }
    }

    pub(super) async fn put(
        &self,
        key: &str,
        body: &[u8],
        cond: Cond<'_>,
    ) -> Result<Put, LedgerError> {
        let this = self.clone();
        let key = key.to_string();
        let body = body.to_vec();
        let cond = match cond {
            Cond::Absent => None,
            Cond::Matches(t) => Some(t.to_string()),
        };
        tokio::task::spawn_blocking(move || this.put_blocking(&key, &body, cond.as_deref()))
            .await
            .expect("the write task does not panic")
    }

    fn put_blocking(&self, key: &str, body: &[u8], cond: Option<&str>) -> Result<Put, LedgerError> {
        let path = self.path(key)?;
        let _guard = self.guard()?;
        let current = match read(&path) {
            Ok(bytes) => Some(tag_of(&bytes)),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(LedgerError::io(path.display(), e)),
        };
        let allowed = match (cond, &current) {
            (None, None) => true,
            (Some(want), Some(have)) => want == have,
            _ => false,
        };
        if !allowed {
            return Err(LedgerError::Conflict {
                location: self.location(key),
            });
        }
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| LedgerError::io(parent.display(), e))?;
        }
        let mut version_id = None;
        if key == LEDGER_KEY {
            // The history copy first: a crash before the rename below leaves an extra
            // version that never became current, never a current one missing from history.
            let next = self.version_numbers()?.last().map_or(1, |n| n + 1);
            let id = format!("{next:06}");
            atomic_write(&self.root.join(HISTORY).join(format!("{id}.json")), body)?;
            version_id = Some(id);
        }
        atomic_write(&path, body)?;
        Ok(Put {
            tag: tag_of(body),
            version_id,
        })
    }

    pub(super) async fn delete(&self, key: &str, tag: &str) -> Result<(), LedgerError> {
        let path = self.path(key)?;
        let _guard = self.guard()?;
        match read(&path) {
            Ok(bytes) if tag_of(&bytes) == tag => {
                fs::remove_file(&path).map_err(|e| LedgerError::io(path.display(), e))?;
                sync_dir(path.parent().unwrap_or(&self.root))
            }
            Ok(_) => Err(LedgerError::Conflict {
                location: self.location(key),
            }),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(LedgerError::Conflict {
                location: self.location(key),
            }),
            Err(e) => Err(LedgerError::io(path.display(), e)),
        }
    }

    fn version_numbers(&self) -> Result<Vec<u64>, LedgerError> {
        let dir = self.root.join(HISTORY);
        let mut out = Vec::new();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(LedgerError::io(dir.display(), e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| LedgerError::io(dir.display(), e))?;
            let name = entry.file_name();
            if let Some(n) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.parse::<u64>().ok())
            {
                out.push(n);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// The id of the history file holding the current ledger (the newest one whose content
    /// matches: normally the newest file, so one read).
    pub(super) fn current_version(&self, tag: &str) -> Result<Option<String>, LedgerError> {
        for n in self.version_numbers()?.into_iter().rev() {
            let path = self.root.join(HISTORY).join(format!("{n:06}.json"));
            if read(&path).ok().map(|b| tag_of(&b)).as_deref() == Some(tag) {
                return Ok(Some(format!("{n:06}")));
            }
        }
        Ok(None)
    }

    pub(super) async fn versions(&self, key: &str) -> Result<Vec<VersionMeta>, LedgerError> {
        if key != LEDGER_KEY {
            return Ok(Vec::new());
        }
        let current = read(&self.root.join(LEDGER_KEY)).ok().map(|b| tag_of(&b));
        let mut found_latest = false;
        let mut out = Vec::new();
        for n in self.version_numbers()?.into_iter().rev() {
            let path = self.root.join(HISTORY).join(format!("{n:06}.json"));
            let latest = !found_latest
                && current.is_some()
                && read(&path).ok().map(|b| tag_of(&b)) == current;
            found_latest |= latest;
            let stored_at = fs::metadata(&path)
                .and_then(|m| m.modified())
                .map(rfc3339)
                .unwrap_or_default();
            out.push(VersionMeta {
                id: format!("{n:06}"),
                stored_at,
                latest,
            });
        }
        Ok(out)
    }

    pub(super) async fn get_version(
        &self,
        key: &str,
        id: &str,
    ) -> Result<Option<Vec<u8>>, LedgerError> {
        if key != LEDGER_KEY || id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(None);
        }
        let Ok(n) = id.parse::<u64>() else {
            return Ok(None);
        };
        let path = self.root.join(HISTORY).join(format!("{n:06}.json"));
        match read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(LedgerError::io(path.display(), e)),
        }
    }

    pub(super) async fn list(&self, prefix: &str) -> Result<Vec<String>, LedgerError> {
        let dir = self.root.join(prefix.trim_end_matches('/'));
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(LedgerError::io(dir.display(), e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| LedgerError::io(dir.display(), e))?;
            if let Some(name) = entry.file_name().to_str()
                && !name.starts_with('.')
                && entry.file_type().is_ok_and(|t| t.is_file())
            {
                out.push(format!("{prefix}{name}"));
            }
        }
        Ok(out)
    }

    /// The advisory lock that makes check-then-write atomic across processes.
    /// Waits for a write in flight (another process's, holding the folder's guard) to
    /// finish: a first write puts its history copy before the current document, and a
    /// reader that looks in between must not take that for a vanished ledger.
    pub(super) async fn settle(&self) -> Result<(), LedgerError> {
        if !self.root.join(".guard").exists() {
            return Ok(());
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.guard().map(drop))
            .await
            .expect("the guard task does not panic")
    }

    fn guard(&self) -> Result<File, LedgerError> {
        // Writes (and deletes) come here first: the folder and its history are made now.
        fs::create_dir_all(self.root.join(HISTORY))
            .map_err(|e| LedgerError::io(self.root.display(), e))?;
        let path = self.root.join(".guard");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| LedgerError::io(path.display(), e))?;
        file.lock()
            .map_err(|e| LedgerError::io(path.display(), e))?;
        Ok(file)
    }
}

/// The tag of a document: the start of its SHA-256.
fn tag_of(bytes: &[u8]) -> String {
    Sha256::digest(bytes)[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Write to a temporary file beside `path`, fsync it, rename it over `path`, fsync the
/// folder: readers see the old content or the new, never a mixture.
fn atomic_write(path: &Path, body: &[u8]) -> Result<(), LedgerError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("ledger"),
        uuid::Uuid::new_v4()
    ));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(body)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(LedgerError::io(path.display(), e));
    }
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), LedgerError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LedgerError::io(dir.display(), e))
}
