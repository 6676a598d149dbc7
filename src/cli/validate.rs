//! `provisioner validate`: load the desired state, print every problem or a one-line summary.

use std::path::Path;
use std::process::ExitCode;

use crate::desired;

/// Runs the command.
pub fn exec(dir: &Path) -> ExitCode {
    match desired::load(dir) {
        Ok(state) => {
            let counts: Vec<String> = state
                .counts_by_provider()
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .map(|(p, n)| format!("{p} {n}"))
                .collect();
            let n = state.resources.len();
            outln!(
                "valid: {n} resource{} ({}) in {} file{}",
                if n == 1 { "" } else { "s" },
                if counts.is_empty() {
                    "none".to_string()
                } else {
                    counts.join(", ")
                },
                state.files,
                if state.files == 1 { "" } else { "s" },
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            errln!("{errors}");
            ExitCode::FAILURE
        }
    }
}
