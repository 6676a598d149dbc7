//! Reading secret values at the moment they are needed, and turning them into keyed
//! fingerprints for the planner. Values are read from the environment or from files, used,
//! and dropped; errors name the resource, the field and the variable or file — never the
//! value.

use std::collections::BTreeMap;

use crate::desired::values::SecretSource;
use crate::desired::{DesiredState, Resource};
use crate::ledger::fingerprint::FingerprintKey;

/// The secret values of every resource that provisioner reads itself (`env` and `file`):
/// `(resource, path, source)`, the path as [`crate::desired::Spec::secret_sources`] names
/// it (`value`, `data.identity`).
pub fn readable(state: &DesiredState) -> Vec<(&Resource, String, &SecretSource)> {
    let mut out = Vec::new();
    for r in state.resources.values() {
        for (field, source) in r.spec.secret_sources() {
            if matches!(source, SecretSource::Env(_) | SecretSource::File(_)) {
                out.push((r, field, source));
            }
        }
    }
    out
}

/// Reads one secret value.
pub fn read(r: &Resource, field: &str, source: &SecretSource) -> Result<Vec<u8>, String> {
    match source {
        SecretSource::Env(name) => std::env::var_os(name)
            .map(|v| v.into_encoded_bytes())
            .ok_or_else(|| {
                format!(
                    "{}: {} `{field}` reads the environment variable {name}, which is not set",
                    r.location, r.address
                )
            }),
        // A regular file of at most 1 MiB: a FIFO would hang the pass, `/dev/zero` would
        // read until memory runs out (no secret value is that large).
        SecretSource::File(path) => {
            crate::fsread::read_regular(path, SECRET_FILE_CAP).map_err(|e| {
                format!(
                    "{}: {} `{field}` reads {}: {e}",
                    r.location,
                    r.address,
                    path.display()
                )
            })
        }
        SecretSource::Ref(_) | SecretSource::Generate(_) => Err(format!(
            "{}: {} `{field}` is not read by provisioner",
            r.location, r.address
        )),
    }
}

/// The largest secret value read from a file, in bytes (a key file, a token, a
/// certificate chain fit many times over).
pub const SECRET_FILE_CAP: u64 = 1 << 20;

/// Fingerprints every readable secret value (`address.field` → fingerprint) into the state,
/// so the planner sees which values changed since they were written. Every missing value is
/// reported, not just the first.
pub fn fingerprint_all(state: &mut DesiredState, key: &FingerprintKey) -> Result<(), Vec<String>> {
    let mut out = BTreeMap::new();
    let mut errors = Vec::new();
    for (r, field, source) in readable(state) {
        match read(r, &field, source) {
            Ok(value) => {
                out.insert(
                    format!("{}.{field}", r.address),
                    key.fingerprint(&r.address, &field, &value),
                );
            }
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    state.secret_fingerprints = out;
    Ok(())
}
