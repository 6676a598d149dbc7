//! `provisioner fmt [--check] [PATH]...`: rewrite desired-state files in canonical form
//! (Taplo's formatter, comments kept), or with `--check` list the files that would change
//! and exit 1.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::desired::{format, load};

/// Arguments of `provisioner fmt`.
#[derive(Debug, Args)]
pub struct FmtArgs {
    /// Change nothing: list the files that are not in canonical form and exit 1 if any.
    #[arg(long)]
    pub check: bool,

    /// Files or folders to format (folders: every `*.toml` below, as `validate` reads
    /// them); the desired-state folder when none is given.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// Runs the command.
pub fn exec(dir: &Path, args: &FmtArgs) -> ExitCode {
    match run(dir, args) {
        Ok(code) => code,
        Err(e) => super::fail(e),
    }
}

fn run(dir: &Path, args: &FmtArgs) -> anyhow::Result<ExitCode> {
    let roots = if args.paths.is_empty() {
        vec![dir.to_path_buf()]
    } else {
        args.paths.clone()
    };
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for root in &roots {
        // A link named on the command line is not followed to rewrite what it points at
        // (a file or folder outside the desired state).
        if !args.paths.is_empty()
            && std::fs::symlink_metadata(root).is_ok_and(|m| m.file_type().is_symlink())
        {
            problems.push(format!(
                "error: {} is a symbolic link: not formatted (name the file it points at)",
                root.display()
            ));
            continue;
        }
        let meta =
            std::fs::metadata(root).with_context(|| format!("reading {}", root.display()))?;
        if meta.is_dir() {
            let (found, diags) = load::list_files(root);
            // A link that leads out of the folder is neither read nor rewritten (as the
            // loader refuses it): `fmt` must not write to a file outside the desired state.
            let real_root = root.canonicalize().unwrap_or_else(|_| root.clone());
            for f in found {
                match f.canonicalize() {
                    Ok(target) if !target.starts_with(&real_root) => problems.push(format!(
                        "error: {} links outside the desired-state folder (to {}): not formatted",
                        f.display(),
                        target.display()
                    )),
                    _ => files.push(f),
                }
            }
            problems.extend(diags.iter().map(|d| d.render(&Default::default())));
        } else {
            files.push(root.clone());
        }
    }
    let mut changed = Vec::new();
    for path in &files {
        let bytes = crate::fsread::read_regular(path, load::MAX_FILE_BYTES)
            .with_context(|| format!("reading {}", path.display()))?;
        let text = String::from_utf8(bytes)
            .with_context(|| format!("reading {}: not UTF-8", path.display()))?;
        match format::format(path.clone(), &text) {
            Ok(formatted) if formatted == text => {}
            Ok(formatted) => {
                if !args.check {
                    std::fs::write(path, formatted)
                        .with_context(|| format!("writing {}", path.display()))?;
                }
                changed.push(path);
            }
            Err(errors) => problems.extend(errors),
        }
    }
    for p in &problems {
        errln!("{p}");
    }
    for path in &changed {
        if args.check {
            outln!("would reformat {}", path.display());
        } else {
            outln!("formatted {}", path.display());
        }
    }
    if !problems.is_empty() {
        errln!(
            "error: {} problem{} found; files that do not parse are left as they are",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" }
        );
        return Ok(ExitCode::FAILURE);
    }
    if args.check && !changed.is_empty() {
        errln!(
            "error: {} of {} file{} not in canonical form: run `provisioner fmt`",
            changed.len(),
            files.len(),
            if files.len() == 1 { " is" } else { "s are" }
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
