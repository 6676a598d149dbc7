//! `provisioner validate`: load the desired state, print every problem or a one-line summary.

use std::path::Path;
use std::process::ExitCode;

use crate::desired;

/// Runs the command. With no environment chosen, a desired state that describes several is
/// validated once per environment (what CI wants to know before any of them is planned).
pub fn exec(dir: &Path, inputs: &desired::Inputs) -> ExitCode {
    let all = desired::expand::environments(dir);
    if inputs.environment.is_none() && !all.is_empty() {
        let mut code = ExitCode::SUCCESS;
        for env in all {
            let inputs = desired::Inputs {
                environment: Some(env.clone()),
                ..inputs.clone()
            };
            out!("{env}: ");
            if exec_one(dir, &inputs, true) != ExitCode::SUCCESS {
                code = ExitCode::FAILURE;
            }
        }
        return code;
    }
    exec_one(dir, inputs, false)
}

fn exec_one(dir: &Path, inputs: &desired::Inputs, named: bool) -> ExitCode {
    match desired::load_with(dir, inputs) {
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
            if named {
                outln!("invalid");
            }
            errln!("{errors}");
            ExitCode::FAILURE
        }
    }
}
