//! Build script: the commit and its date, for `provisioner --version` (`0.1.0 (1a2b3c4d5e6f
//! 2026-11-30)`). Outside a Git checkout (a source tarball) both are `unknown`.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let date = git(&["log", "-1", "--format=%cs"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=PROVISIONER_COMMIT={commit}");
    println!("cargo:rustc-env=PROVISIONER_COMMIT_DATE={date}");
    println!("cargo:rerun-if-changed=src/build.rs");
    // A new commit moves HEAD's reflog (in a worktree, `.git` is a file naming the real one).
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        println!("cargo:rerun-if-changed={dir}/logs/HEAD");
    }
}
