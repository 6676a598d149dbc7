//! Subcommands whose implementation has not landed yet. They exist so that the interface
//! contract is visible from the first release; each says plainly what it is waiting for and
//! exits 1 rather than pretending to work.

use std::process::ExitCode;

/// Reports that a command has not landed yet.
pub fn exec(command: &str, waiting_for: &str) -> ExitCode {
    eprintln!(
        "error: `provisioner {command}` is not available in this build yet: it arrives with {waiting_for}.\n\
         `provisioner validate` works today."
    );
    ExitCode::FAILURE
}
