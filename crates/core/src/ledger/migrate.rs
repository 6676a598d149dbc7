//! Schema migrations: one step per schema version, each a pure function from the old
//! document to the next version's. `migrations/` in the repository keeps the history and a
//! fixture of every old format; `provisioner ledger migrate` applies the steps and writes
//! the result conditionally, so the old version stays in the ledger's history.
//!
//! Schema 1 is the first released format, so the chain is empty today. The machinery is
//! exercised by unit tests with a synthetic chain, and every fixture under `migrations/` is
//! loaded by the test suite.

use serde_json::Value;

/// One upgrade, from `from` to `from + 1`.
pub struct Step {
    /// The version it upgrades.
    pub from: u32,
    /// Its name, as in `migrations/` (`0002-rename-pending`).
    pub name: &'static str,
    /// The upgrade.
    pub apply: fn(Value) -> Result<Value, String>,
}

/// Every migration this build knows, oldest first.
pub const STEPS: &[Step] = &[];

/// Why a document could not be upgraded.
#[derive(Debug, PartialEq)]
pub enum Error {
    /// No step upgrades this version.
    NoPath(u32),
    /// A step rejected the document.
    Step {
        /// The step.
        name: &'static str,
        /// Why.
        detail: String,
    },
}

/// Upgrades a document of version `found` through `steps` to the newest version they reach,
/// which must be this build's. Returns the document and the names of the steps applied.
pub fn upgrade(
    mut value: Value,
    found: u32,
    steps: &[Step],
) -> Result<(Value, Vec<&'static str>), Error> {
    let target = super::model::LEDGER_SCHEMA_VERSION;
    let mut version = found;
    let mut applied = Vec::new();
    while version < target {
        let step = steps
            .iter()
            .find(|s| s.from == version)
            .ok_or(Error::NoPath(found))?;
        value = (step.apply)(value).map_err(|detail| Error::Step {
            name: step.name,
            detail,
        })?;
        version += 1;
        if let Some(o) = value.as_object_mut() {
            o.insert("schema_version".into(), Value::from(version));
        }
        applied.push(step.name);
    }
    Ok((value, applied))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rename_pending(mut v: Value) -> Result<Value, String> {
        let o = v.as_object_mut().ok_or("not an object")?;
        if let Some(p) = o.remove("in_flight") {
            o.insert("pending".into(), p);
        }
        Ok(v)
    }

    fn refuse(_: Value) -> Result<Value, String> {
        Err("cannot".into())
    }

    #[test]
    fn steps_apply_in_order_and_stamp_the_version() {
        let steps = [Step {
            from: 0,
            name: "0001-rename-in-flight",
            apply: rename_pending,
        }];
        let old =
            serde_json::json!({"schema_version": 0, "lineage": "l", "serial": 3, "in_flight": {}});
        let (new, applied) = upgrade(old, 0, &steps).unwrap();
        assert_eq!(applied, ["0001-rename-in-flight"]);
        assert_eq!(new["schema_version"], 1);
        assert!(new.get("pending").is_some() && new.get("in_flight").is_none());
    }

    #[test]
    fn a_missing_or_failing_step_is_an_error() {
        let old = serde_json::json!({"schema_version": 0});
        assert_eq!(upgrade(old.clone(), 0, &[]).unwrap_err(), Error::NoPath(0));
        let steps = [Step {
            from: 0,
            name: "bad",
            apply: refuse,
        }];
        assert!(matches!(
            upgrade(old, 0, &steps),
            Err(Error::Step { name: "bad", .. })
        ));
    }

    #[test]
    fn a_current_document_passes_unchanged() {
        let doc = serde_json::json!({"schema_version": 1});
        let (same, applied) = upgrade(doc.clone(), 1, STEPS).unwrap();
        assert_eq!(same, doc);
        assert!(applied.is_empty());
    }
}
