//! Reading and writing the ledger document: schema checks before anything is trusted, and
//! errors that say where the document is broken.

use serde_json::Value;

use super::error::DecodeError;
use super::migrate;
use super::model::{LEDGER_SCHEMA_VERSION, Ledger};

/// Parses a ledger document of this build's schema version.
pub fn decode(bytes: &[u8], location: &str) -> Result<Ledger, DecodeError> {
    let (value, found) = parse_known(bytes, location)?;
    if found < LEDGER_SCHEMA_VERSION {
        return Err(DecodeError::NeedsMigration {
            location: location.into(),
            found,
            current: LEDGER_SCHEMA_VERSION,
        });
    }
    from_value(value, location)
}

/// Parses a ledger document of any known schema version, upgrading it in memory; returns the
/// ledger and the names of the migrations applied (none when it was current).
pub fn decode_and_migrate(
    bytes: &[u8],
    location: &str,
) -> Result<(Ledger, Vec<&'static str>), DecodeError> {
    let (value, found) = parse_known(bytes, location)?;
    let (value, applied) = migrate::upgrade(value, found, migrate::STEPS).map_err(|e| match e {
        migrate::Error::NoPath(found) => DecodeError::NoMigrationPath {
            location: location.into(),
            found,
        },
        migrate::Error::Step { name, detail } => DecodeError::Corrupt {
            location: location.into(),
            detail: format!("migration {name} failed: {detail}"),
        },
    })?;
    Ok((from_value(value, location)?, applied))
}

/// The document's bytes: pretty JSON with a final newline (diffable, and readable in the S3
/// console).
pub fn encode(ledger: &Ledger) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(ledger).expect("a ledger always serializes");
    bytes.push(b'\n');
    bytes
}

/// The document and its schema version, refusing versions newer than this build's.
fn parse_known(bytes: &[u8], location: &str) -> Result<(Value, u32), DecodeError> {
    let value = parse(bytes, location)?;
    let found = schema_version(&value, location)?;
    if found > LEDGER_SCHEMA_VERSION {
        return Err(DecodeError::TooNew {
            location: location.into(),
            found,
            supported: LEDGER_SCHEMA_VERSION,
        });
    }
    Ok((value, found))
}

fn parse(bytes: &[u8], location: &str) -> Result<Value, DecodeError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(DecodeError::Corrupt {
            location: location.into(),
            detail: "the document is empty".into(),
        });
    }
    serde_json::from_slice(bytes).map_err(|e| DecodeError::Corrupt {
        location: location.into(),
        detail: format!(
            "not valid JSON at line {}, column {} ({})",
            e.line(),
            e.column(),
            match e.classify() {
                serde_json::error::Category::Eof => "it ends early: truncated?",
                serde_json::error::Category::Syntax => "syntax error",
                serde_json::error::Category::Data => "unexpected value",
                serde_json::error::Category::Io => "read error",
            }
        ),
    })
}

fn schema_version(value: &Value, location: &str) -> Result<u32, DecodeError> {
    let corrupt = |detail: &str| DecodeError::Corrupt {
        location: location.into(),
        detail: detail.into(),
    };
    let object = value
        .as_object()
        .ok_or_else(|| corrupt("the document is not a JSON object"))?;
    let version = object
        .get("schema_version")
        .ok_or_else(|| corrupt("it has no `schema_version`: not a provisioner ledger"))?;
    version
        .as_u64()
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| corrupt("`schema_version` is not a small whole number"))
}

fn from_value(value: Value, location: &str) -> Result<Ledger, DecodeError> {
    serde_json::from_value(value).map_err(|e| DecodeError::Corrupt {
        location: location.into(),
        detail: format!("it does not match schema version {LEDGER_SCHEMA_VERSION}: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ledger_round_trips() {
        let mut l = Ledger::create();
        l.serial = 7;
        let back = decode(&encode(&l), "test").unwrap();
        assert_eq!(back, l);
    }

    #[test]
    fn truncation_is_reported_with_its_position() {
        let bytes = encode(&Ledger::create());
        let e = decode(&bytes[..bytes.len() / 2], "file://x/ledger.json").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("file://x/ledger.json"), "{text}");
        assert!(text.contains("truncated"), "{text}");
        assert!(matches!(e, DecodeError::Corrupt { .. }));
    }

    #[test]
    fn versions_outside_this_build_are_refused_with_what_to_do() {
        let newer = br#"{"schema_version": 99, "lineage": "x", "serial": 1}"#;
        let e = decode(newer, "here").unwrap_err();
        assert!(e.to_string().contains("upgrade provisioner"), "{e}");
        let older = br#"{"schema_version": 0, "lineage": "x", "serial": 1}"#;
        let e = decode(older, "here").unwrap_err();
        assert!(e.to_string().contains("provisioner ledger migrate"), "{e}");
        let e = decode_and_migrate(older, "here").unwrap_err();
        assert!(
            matches!(e, DecodeError::NoMigrationPath { found: 0, .. }),
            "{e}"
        );
        let e = decode(br#"{"lineage": "x"}"#, "here").unwrap_err();
        assert!(e.to_string().contains("not a provisioner ledger"), "{e}");
    }
}
