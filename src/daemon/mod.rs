//! The daemon (`provisioner run`): its loop ([`run`]), HTTP endpoints ([`http`]) and systemd
//! notifications ([`notify`]). Each pass is [`crate::reconcile`]'s, the one `diff` and
//! `apply` take too.

pub mod http;
pub mod notify;
pub mod run;

use std::path::{Path, PathBuf};

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
