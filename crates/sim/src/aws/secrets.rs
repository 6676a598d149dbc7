//! Secrets Manager: JSON 1.1 (`X-Amz-Target: secretsmanager.<Op>`), errors as
//! `{"__type": …, "message": …}` with status 400, times as epoch seconds.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{ACCOUNT, AwsState, now_epoch};

/// A secret.
#[derive(Clone, Debug)]
pub struct Secret {
    /// ARN (name, `-`, six characters).
    pub arn: String,
    /// Description.
    pub description: String,
    /// KMS key, when one was named.
    pub kms_key_id: Option<String>,
    /// Tags in order.
    pub tags: Vec<(String, String)>,
    /// Versions, oldest first: (version id, value). The last is `AWSCURRENT`.
    pub versions: Vec<(String, String)>,
    /// Created (epoch seconds).
    pub created: f64,
    /// Last changed (epoch seconds).
    pub last_changed: f64,
    /// Set while scheduled for deletion.
    pub deleted: Option<f64>,
    /// Not in `ListSecrets` answers before this time (epoch seconds): the list is
    /// eventually consistent (see [`super::AwsState::secrets_list_lag`]).
    pub listed_from: f64,
}

fn fail(code: &str, message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [("content-type", "application/x-amz-json-1.1")],
        json!({"__type": code, "message": message.into()}).to_string(),
    )
        .into_response()
}

fn ok(v: Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/x-amz-json-1.1")],
        v.to_string(),
    )
        .into_response()
}

fn tags_json(tags: &[(String, String)]) -> Value {
    Value::Array(
        tags.iter()
            .map(|(k, v)| json!({"Key": k, "Value": v}))
            .collect(),
    )
}

fn tags_from(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            Some((
                t["Key"].as_str()?.to_string(),
                t["Value"].as_str().unwrap_or("").to_string(),
            ))
        })
        .collect()
}

/// Finds a secret by name or ARN.
fn find<'a>(state: &'a mut AwsState, id: &str) -> Option<&'a mut Secret> {
    let name = state
        .secrets
        .iter()
        .find(|(n, s)| *n == id || s.arn == id)
        .map(|(n, _)| n.clone())?;
    state.secrets.get_mut(&name)
}

fn describe(name: &str, s: &Secret) -> Value {
    let mut v = json!({
        "ARN": s.arn,
        "Name": name,
        "Description": s.description,
        "CreatedDate": s.created,
        "LastChangedDate": s.last_changed,
        "Tags": tags_json(&s.tags),
        "VersionIdsToStages": s.versions.iter().enumerate().map(|(i, (id, _))| {
            let stage = if i + 1 == s.versions.len() { "AWSCURRENT" } else { "AWSPREVIOUS" };
            (id.clone(), json!([stage]))
        }).filter(|(_, st)| st[0] == "AWSCURRENT" || s.versions.len() > 1).collect::<serde_json::Map<_, _>>(),
    });
    if let Some(k) = &s.kms_key_id {
        v["KmsKeyId"] = json!(k);
    }
    if let Some(d) = s.deleted {
        v["DeletedDate"] = json!(d);
    }
    v
}

/// Answers one Secrets Manager operation.
pub fn handle(region: &str, state: &mut AwsState, op: &str, body: &[u8]) -> Response {
    let b: Value = serde_json::from_slice(body).unwrap_or(json!({}));
    let id = b["SecretId"].as_str().unwrap_or("").to_string();
    let not_found = || {
        fail(
            "ResourceNotFoundException",
            "Secrets Manager can't find the specified secret.",
        )
    };
    let scheduled = || {
        fail(
            "InvalidRequestException",
            "You can't perform this operation on the secret because it was marked for deletion.",
        )
    };
    let value_of = |b: &Value| -> Option<String> {
        b["SecretString"]
            .as_str()
            .map(str::to_string)
            .or_else(|| b["SecretBinary"].as_str().map(str::to_string))
    };
    match op {
        "CreateSecret" => {
            let name = b["Name"].as_str().unwrap_or("").to_string();
            if name.is_empty() {
                return fail("InvalidParameterException", "Name is required.");
            }
            if let Some(existing) = state.secrets.get(&name) {
                return if existing.deleted.is_some() {
                    fail(
                        "InvalidRequestException",
                        "You can't create this secret because a secret with this name is already scheduled for deletion.",
                    )
                } else {
                    fail(
                        "ResourceExistsException",
                        format!("The operation failed because the secret {name} already exists."),
                    )
                };
            }
            let n = state.next();
            let suffix: String = format!("{:06x}", (n * 2_654_435_761) % 0xffffff)
                .chars()
                .map(|c| {
                    if c.is_ascii_digit() {
                        (b'a' + (c as u8 - b'0')) as char
                    } else {
                        c
                    }
                })
                .collect();
            let arn = format!("arn:aws:secretsmanager:{region}:{ACCOUNT}:secret:{name}-{suffix}");
            let now = now_epoch();
            let version = uuid::Uuid::new_v4().to_string();
            let versions = value_of(&b)
                .map(|v| vec![(version.clone(), v)])
                .unwrap_or_default();
            state.secrets.insert(
                name.clone(),
                Secret {
                    arn: arn.clone(),
                    description: b["Description"].as_str().unwrap_or("").to_string(),
                    kms_key_id: b["KmsKeyId"].as_str().map(str::to_string),
                    tags: tags_from(&b["Tags"]),
                    versions,
                    created: now,
                    last_changed: now,
                    deleted: None,
                    listed_from: now + state.secrets_list_lag.as_secs_f64(),
                },
            );
            ok(json!({"ARN": arn, "Name": name, "VersionId": version}))
        }
        "DescribeSecret" => {
            let Some(s) = find(state, &id) else {
                return not_found();
            };
            let s = s.clone();
            let name = state
                .secrets
                .iter()
                .find(|(_, x)| x.arn == s.arn)
                .map(|(n, _)| n.clone())
                .unwrap_or_default();
            ok(describe(&name, &s))
        }
        "GetSecretValue" => {
            let Some(s) = find(state, &id) else {
                return not_found();
            };
            if s.deleted.is_some() {
                return scheduled();
            }
            let Some((version, value)) = s.versions.last() else {
                return fail(
                    "ResourceNotFoundException",
                    "Secrets Manager can't find the specified secret value for staging label: AWSCURRENT",
                );
            };
            let arn = s.arn.clone();
            let name = arn
                .rsplit_once(":secret:")
                .map(|(_, n)| n[..n.len().saturating_sub(7)].to_string())
                .unwrap_or_default();
            ok(json!({
                "ARN": arn,
                "Name": name,
                "VersionId": version,
                "SecretString": value,
                "VersionStages": ["AWSCURRENT"],
                "CreatedDate": s.last_changed,
            }))
        }
        "PutSecretValue" => {
            let Some(s) = find(state, &id) else {
                return not_found();
            };
            if s.deleted.is_some() {
                return scheduled();
            }
            let version = uuid::Uuid::new_v4().to_string();
            s.versions
                .push((version.clone(), value_of(&b).unwrap_or_default()));
            if s.versions.len() > 100 {
                s.versions.remove(0);
            }
            s.last_changed = now_epoch();
            let arn = s.arn.clone();
            ok(json!({"ARN": arn, "VersionId": version, "VersionStages": ["AWSCURRENT"]}))
        }
        "UpdateSecret" => {
            let Some(s) = find(state, &id) else {
                return not_found();
            };
            if s.deleted.is_some() {
                return scheduled();
            }
            if let Some(d) = b["Description"].as_str() {
                s.description = d.to_string();
            }
            if let Some(k) = b["KmsKeyId"].as_str() {
                s.kms_key_id = Some(k.to_string());
            }
            if let Some(v) = value_of(&b) {
                s.versions.push((uuid::Uuid::new_v4().to_string(), v));
            }
            s.last_changed = now_epoch();
            let arn = s.arn.clone();
            ok(json!({"ARN": arn}))
        }
        "DeleteSecret" => {
            let force = b["ForceDeleteWithoutRecovery"].as_bool().unwrap_or(false);
            let days = b["RecoveryWindowInDays"].as_i64();
            if force && days.is_some() {
                return fail(
                    "InvalidParameterException",
                    "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.",
                );
            }
            if days.is_some_and(|d| !(7..=30).contains(&d)) {
                return fail(
                    "InvalidParameterException",
                    "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).",
                );
            }
            let name = state
                .secrets
                .iter()
                .find(|(n, s)| **n == id || s.arn == id)
                .map(|(n, _)| n.clone());
            let Some(name) = name else {
                // A forced delete of a missing secret succeeds.
                return if force {
                    ok(json!({"Name": id}))
                } else {
                    not_found()
                };
            };
            let now = now_epoch();
            let arn = state.secrets[&name].arn.clone();
            if force {
                state.secrets.remove(&name);
            } else if let Some(s) = state.secrets.get_mut(&name) {
                s.deleted = Some(now);
            }
            ok(
                json!({"ARN": arn, "Name": name, "DeletionDate": now + 86_400.0 * days.unwrap_or(30) as f64}),
            )
        }
        "RestoreSecret" => {
            let Some(s) = find(state, &id) else {
                return not_found();
            };
            s.deleted = None;
            let arn = s.arn.clone();
            ok(json!({"ARN": arn}))
        }
        "ListSecrets" => {
            let now = now_epoch();
            let names: Vec<String> = b["Filters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|f| f["Key"] == "name")
                .flat_map(|f| {
                    f["Values"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                })
                .collect();
            let include_deleted = b["IncludePlannedDeletion"].as_bool().unwrap_or(false);
            let list: Vec<Value> = state
                .secrets
                .iter()
                .filter(|(n, _)| {
                    names.is_empty() || names.iter().any(|p| n.starts_with(p.as_str()))
                })
                .filter(|(_, s)| include_deleted || s.deleted.is_none())
                .filter(|(_, s)| s.listed_from <= now)
                .map(|(n, s)| describe(n, s))
                .collect();
            ok(json!({"SecretList": list}))
        }
        "TagResource" => {
            let Some(s) = find(state, &id) else {
                return not_found();
            };
            for (k, v) in tags_from(&b["Tags"]) {
                s.tags.retain(|(x, _)| *x != k);
                s.tags.push((k, v));
            }
            ok(json!({}))
        }
        "UntagResource" => {
            let Some(s) = find(state, &id) else {
                return not_found();
            };
            let keys: Vec<&str> = b["TagKeys"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            s.tags.retain(|(k, _)| !keys.contains(&k.as_str()));
            ok(json!({}))
        }
        other => fail(
            "InvalidRequestException",
            format!("Secrets Manager {other} is not simulated"),
        ),
    }
}
