//! `aws.secretsmanager_secret`: created with a value from a secret source, or generated
//! once with the system's CSPRNG (`{ generate = { length = 32 } }`) and kept only in the
//! secret; description, KMS key and tags updated in place; deleted with a recovery window
//! (or at once with `force_delete`); a secret scheduled for deletion that is desired again
//! is restored, not re-created.
//!
//! Value drift: provisioner never reads a value to compare it in a plan. The ledger keeps
//! the keyed fingerprint of what it wrote and the secret's `LastChangedDate` after the
//! write; a newer date means someone changed the secret, and a pinned value (env, file, a
//! reference) is written again. A generated value belongs to the secret: hand edits are
//! not drift.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType, Tag};
use serde_json::{Map, Value, json};

use super::{AwsProvider, code, err, object, split_tags, text, tolerate, wanted_tags};
use crate::live::LiveObject;
use crate::plan::Action;
use crate::providers::{Applied, ApplyRequest, ProviderError, SecretValue};

fn rfc3339(d: &aws_sdk_secretsmanager::primitives::DateTime) -> String {
    crate::ledger::lease::rfc3339_millis(
        std::time::UNIX_EPOCH
            + std::time::Duration::from_millis(d.to_millis().unwrap_or(0).max(0) as u64),
    )
}

/// Lists the secrets (one paginated list, metadata only) and keeps the managed ones.
/// Secrets scheduled for deletion are left out: to the planner they are gone, and a desired
/// one is then restored by the create.
///
/// `ListSecrets` is eventually consistent: it "might not reflect changes from the last five
/// minutes" (Secrets Manager API reference; aws-sdk-go#3975), so a secret created seconds
/// ago can be missing from it. Every secret the ledger or a write-ahead intent knows (`known`:
/// ARNs or names) that the list leaves out is read directly with `DescribeSecret` before it
/// is taken as gone: absence that plans a create (and a producer's replacement) must be
/// confirmed.
pub async fn observe(
    p: &AwsProvider,
    wanted: BTreeSet<String>,
    known: BTreeSet<String>,
) -> Result<Vec<LiveObject>, ProviderError> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let mut op =
            p.sm.list_secrets()
                .max_results(100)
                .set_next_token(token.take());
        // With few names, ask for just those.
        if wanted.len() <= 10 {
            op = op.filters(
                Filter::builder()
                    .key(FilterNameStringType::Name)
                    .set_values(Some(wanted.iter().cloned().collect()))
                    .build(),
            );
        }
        let page = op
            .send()
            .await
            .map_err(|e| err("listing Secrets Manager secrets", e))?;
        for s in page.secret_list() {
            let (Some(name), Some(arn)) = (s.name(), s.arn()) else {
                continue;
            };
            if !wanted.contains(name) || s.deleted_date().is_some() {
                continue;
            }
            out.push(seen(
                name,
                arn,
                s.description(),
                s.kms_key_id(),
                s.tags(),
                s.last_changed_date(),
            ));
        }
        match page.next_token() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    // The confirming reads: what the ledger knows and the list did not show.
    let missing: Vec<&String> = known
        .iter()
        .filter(|k| {
            !out.iter()
                .any(|o| o.id == **k || o.fields.get("name").and_then(Value::as_str) == Some(k))
        })
        .collect();
    for id in missing {
        match p.sm.describe_secret().secret_id(id).send().await {
            Ok(s) => {
                let (Some(name), Some(arn)) = (s.name(), s.arn()) else {
                    continue;
                };
                if !wanted.contains(name) || s.deleted_date().is_some() {
                    continue;
                }
                out.push(seen(
                    name,
                    arn,
                    s.description(),
                    s.kms_key_id(),
                    s.tags(),
                    s.last_changed_date(),
                ));
            }
            // Confirmed gone.
            Err(e) if code(&e) == Some("ResourceNotFoundException") => {}
            Err(e) => {
                return Err(err(
                    &format!("reading secret {id}, which the list left out"),
                    e,
                ));
            }
        }
    }
    Ok(out)
}

/// A secret as the planner sees it, from a list entry or a `DescribeSecret` answer.
fn seen(
    name: &str,
    arn: &str,
    description: Option<&str>,
    kms_key_id: Option<&str>,
    tags: &[Tag],
    last_changed: Option<&aws_sdk_secretsmanager::primitives::DateTime>,
) -> LiveObject {
    let (tags, lineage) = split_tags(tags.iter().filter_map(|t| Some((t.key()?, t.value()?))));
    let mut fields = Map::new();
    fields.insert("name".into(), json!(name));
    fields.insert("description".into(), json!(description.unwrap_or("")));
    fields.insert("kms_key_id".into(), json!(kms_key_id));
    fields.insert("tags".into(), Value::Object(tags));
    let mut o = object(arn.to_string(), fields, attributes(arn, name), lineage);
    o.updated_at = last_changed.map(rfc3339);
    o
}

fn attributes(arn: &str, name: &str) -> BTreeMap<String, Value> {
    BTreeMap::from([
        ("arn".to_string(), json!(arn)),
        ("name".to_string(), json!(name)),
    ])
}

/// The current value of a secret (to hand a generated value to a consumer).
pub async fn read_value(p: &AwsProvider, id: &str) -> Result<SecretValue, ProviderError> {
    let v =
        p.sm.get_secret_value()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| err("reading a secret's value", e))?;
    if let Some(s) = v.secret_string() {
        return Ok(SecretValue::new(s.as_bytes().to_vec()));
    }
    if let Some(b) = v.secret_binary() {
        return Ok(SecretValue::new(b.as_ref().to_vec()));
    }
    Err(ProviderError::msg("the secret holds no value"))
}

/// A new value as `{ generate = … }` asks: `length` characters of `charset`, from the
/// operating system's CSPRNG (rejection sampling, so every character is equally likely).
pub fn generate(spec: &Value) -> Result<SecretValue, ProviderError> {
    use crypto_box::aead::rand_core::RngCore;
    let g = &spec["value"]["generate"];
    let length = g["length"].as_u64().unwrap_or(32) as usize;
    let alphabet: Vec<u8> = match g["charset"].as_str().unwrap_or("alphanumeric") {
        "hex" => b"0123456789abcdef".to_vec(),
        "printable" => (b'!'..=b'~').filter(|c| !b"\"'`\\".contains(c)).collect(),
        _ => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".to_vec(),
    };
    let limit = 256 - (256 % alphabet.len());
    let mut out = Vec::with_capacity(length);
    let mut buf = [0u8; 64];
    while out.len() < length {
        crypto_box::aead::OsRng
            .try_fill_bytes(&mut buf)
            .map_err(|e| ProviderError::msg(format!("the system's random source failed: {e}")))?;
        for &b in &buf {
            if (b as usize) < limit && out.len() < length {
                out.push(alphabet[b as usize % alphabet.len()]);
            }
        }
    }
    buf.fill(0);
    Ok(SecretValue::new(out))
}

fn is_generated(spec: Option<&Value>) -> bool {
    spec.is_some_and(|s| s["value"].get("generate").is_some())
}

/// Creates (or restores), updates, rotates or deletes a secret.
pub async fn apply(p: &AwsProvider, req: &ApplyRequest<'_>) -> Result<Applied, ProviderError> {
    let f = req.fields;
    let name = text(f, "name").ok_or_else(|| ProviderError::msg("a secret needs its name"))?;
    if req.action == Action::Delete {
        delete(p, req.cloud_id.unwrap_or(name), req.spec).await?;
        return Ok(Applied::default());
    }
    // A new name is a new secret: the executor replaces it by a delete and a create. In
    // place, only a generated value is renewed.
    if req.action == Action::Replace
        && req
            .cloud_id
            .is_some_and(|old| !old.contains(&format!(":secret:{name}-")))
    {
        return Err(crate::providers::not_in_place(req.kind));
    }
    let generated = is_generated(req.spec);
    let mut secrets = BTreeMap::new();
    let mut created_at = None;
    // The value to write, if any: a pinned value always; a generated one only when the
    // secret is new or rotated.
    let mut value: Option<SecretValue> =
        if generated {
            match req.action {
                Action::Create | Action::Replace => {
                    created_at = Some(crate::ledger::lease::rfc3339(std::time::SystemTime::now()));
                    Some(generate(req.spec.unwrap_or(&Value::Null))?)
                }
                _ => None,
            }
        } else {
            Some(req.secrets.get("value").cloned().ok_or_else(|| {
                ProviderError::msg("the secret's `value` was not available to write")
            })?)
        };
    let mut tags = Vec::new();
    for (k, v) in wanted_tags(f, req.lineage) {
        tags.push(Tag::builder().key(k).value(v).build());
    }
    let description = text(f, "description").unwrap_or("");
    let kms = text(f, "kms_key_id");
    let mut arn = req
        .cloud_id
        .filter(|_| req.action != Action::Create)
        .map(str::to_string);
    if req.action == Action::Create {
        let mut op =
            p.sm.create_secret()
                .name(name)
                .description(description)
                .set_kms_key_id(kms.map(str::to_string))
                .set_tags(Some(tags.clone()));
        if let Some(v) = &value {
            op = op.secret_string(String::from_utf8_lossy(v.expose()));
        }
        match op.send().await {
            Ok(out) => arn = out.arn().map(str::to_string),
            Err(e)
                if matches!(
                    code(&e),
                    Some("ResourceExistsException" | "InvalidRequestException")
                ) =>
            {
                // The name is taken: by a create whose answer was lost, or by this secret
                // scheduled for deletion (AWS answers InvalidRequestException, moto
                // ResourceExistsException). A scheduled one is restored, then set below.
                let described =
                    p.sm.describe_secret()
                        .secret_id(name)
                        .send()
                        .await
                        .map_err(|e| err(&format!("reading secret {name}"), e))?;
                if described.deleted_date().is_some() {
                    p.sm.restore_secret()
                        .secret_id(name)
                        .send()
                        .await
                        .map_err(|e| err(&format!("restoring secret {name}"), e))?;
                }
                arn = Some(name.to_string());
            }
            Err(e) => return Err(err(&format!("creating secret {name}"), e)),
        }
        if arn.as_deref() == Some(name) {
            if generated {
                // The existing secret keeps its value: a generated value is never replaced
                // behind the consumers' backs.
                value = None;
                created_at = None;
            }
            update(p, name, description, kms, value.as_ref(), tags).await?;
        }
    } else {
        let id = arn.clone().unwrap_or_else(|| name.to_string());
        update(p, &id, description, kms, value.as_ref(), tags).await?;
    }
    let id = arn.clone().unwrap_or_else(|| name.to_string());
    let described =
        p.sm.describe_secret()
            .secret_id(&id)
            .send()
            .await
            .map_err(|e| err(&format!("reading secret {name}"), e))?;
    let arn = described.arn().unwrap_or(&id).to_string();
    if let Some(v) = value.filter(|_| generated) {
        secrets.insert("value".to_string(), v);
    }
    let mut attributes = attributes(&arn, name);
    if let Some(c) = created_at {
        attributes.insert("created_at".into(), json!(c));
    }
    Ok(Applied {
        id: arn,
        attributes,
        secrets,
        updated_at: described.last_changed_date().map(rfc3339),
        ..Default::default()
    })
}

async fn update(
    p: &AwsProvider,
    id: &str,
    description: &str,
    kms: Option<&str>,
    value: Option<&SecretValue>,
    tags: Vec<Tag>,
) -> Result<(), ProviderError> {
    p.sm.update_secret()
        .secret_id(id)
        .description(description)
        .set_kms_key_id(kms.map(str::to_string))
        .send()
        .await
        .map_err(|e| err("updating a secret", e))?;
    if let Some(v) = value {
        // Write a new version only when the value differs: Secrets Manager asks for no
        // more than one PutSecretValue every ten minutes.
        let same = read_value(p, id).await.is_ok_and(|cur| cur == *v);
        if !same {
            p.sm.put_secret_value()
                .secret_id(id)
                .secret_string(String::from_utf8_lossy(v.expose()))
                .send()
                .await
                .map_err(|e| err("writing a secret's value", e))?;
        }
    }
    let current: Vec<String> =
        p.sm.describe_secret()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| err("reading a secret's tags", e))?
            .tags()
            .iter()
            .filter_map(|t| t.key().map(str::to_string))
            .collect();
    let keep: BTreeSet<&str> = tags.iter().filter_map(|t| t.key()).collect();
    let stale: Vec<String> = current
        .into_iter()
        .filter(|k| !keep.contains(k.as_str()))
        .collect();
    if !stale.is_empty() {
        p.sm.untag_resource()
            .secret_id(id)
            .set_tag_keys(Some(stale))
            .send()
            .await
            .map_err(|e| err("removing a secret's old tags", e))?;
    }
    if !tags.is_empty() {
        p.sm.tag_resource()
            .secret_id(id)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| err("tagging a secret", e))?;
    }
    Ok(())
}

async fn delete(p: &AwsProvider, id: &str, spec: Option<&Value>) -> Result<(), ProviderError> {
    let force = spec
        .and_then(|s| s["force_delete"].as_bool())
        .unwrap_or(false);
    let days = spec
        .and_then(|s| s["recovery_window_days"].as_i64())
        .unwrap_or(7);
    let mut op = p.sm.delete_secret().secret_id(id);
    op = if force {
        op.force_delete_without_recovery(true)
    } else {
        op.recovery_window_in_days(days)
    };
    tolerate(
        op.send().await,
        "ResourceNotFoundException",
        "deleting a secret",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_values_have_the_length_and_alphabet_asked_for() {
        let spec = json!({"value": {"generate": {"length": 40, "charset": "hex"}}});
        let v = generate(&spec).unwrap();
        assert_eq!(v.expose().len(), 40);
        assert!(v.expose().iter().all(|c| c.is_ascii_hexdigit()));
        let w = generate(&spec).unwrap();
        assert_ne!(v, w, "two draws differ");
        let p = generate(&json!({"value": {"generate": {"length": 64, "charset": "printable"}}}))
            .unwrap();
        assert!(
            p.expose()
                .iter()
                .all(|c| c.is_ascii_graphic() && !b"\"'`\\".contains(c))
        );
        let a = generate(&json!({"value": {"generate": {}}})).unwrap();
        assert_eq!(a.expose().len(), 32);
        assert!(a.expose().iter().all(u8::is_ascii_alphanumeric));
    }
}
