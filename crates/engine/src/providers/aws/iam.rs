//! `aws.iam_smtp_user`: an IAM user with an inline policy allowing `ses:SendRawEmail`, and
//! one access key turned into SES SMTP credentials. The secret access key exists only in
//! the answer to `CreateAccessKey`: it becomes the `smtp_password` secret output, handed to
//! the consumers in the same apply, and is never stored.
//!
//! A user whose current access key is gone (deleted by hand) is observed as absent, so the
//! next pass creates a new key (the user itself is kept) and rewrites every consumer.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_iam::types::Tag;
use serde_json::{Map, Value, json};

use super::{AwsProvider, code, err, object, smtp, split_tags, text, tolerate, wanted_tags};
use crate::ledger::Ledger;
use crate::live::LiveObject;
use crate::plan::Action;
use crate::providers::{Applied, ApplyRequest, ProviderError, SecretValue};

/// Lists the users, then reads the managed ones (access keys, inline policy, tags).
pub async fn observe(
    p: &AwsProvider,
    wanted: BTreeSet<String>,
    ledger: &Ledger,
) -> Result<Vec<LiveObject>, ProviderError> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let mut users = Vec::new();
    let mut marker = None;
    loop {
        let page = p
            .iam
            .list_users()
            .set_marker(marker.take())
            .send()
            .await
            .map_err(|e| err("listing IAM users", e))?;
        users.extend(page.users().iter().cloned());
        match page.marker().filter(|_| page.is_truncated()) {
            Some(m) => marker = Some(m.to_string()),
            None => break,
        }
    }
    // IAM is eventually consistent: "changes that you make … are not always immediately
    // visible" (IAM User Guide, "Troubleshoot IAM": changes not immediately visible), so a
    // user the ledger or an intent knows that `ListUsers` leaves out is read with `GetUser`
    // before it is taken as gone.
    let listed: BTreeSet<String> = users.iter().map(|u| u.user_name().to_string()).collect();
    let known = ledger
        .resources
        .values()
        .filter(|e| e.kind == "aws.iam_smtp_user")
        .map(|e| e.id.clone())
        .chain(
            ledger
                .pending
                .values()
                .filter(|i| i.kind == "aws.iam_smtp_user")
                .map(|i| i.key.clone()),
        )
        .filter(|n| wanted.contains(n) && !listed.contains(n))
        .collect::<BTreeSet<_>>();
    for name in known {
        match p.iam.get_user().user_name(&name).send().await {
            Ok(got) => users.extend(got.user().cloned()),
            // Confirmed gone.
            Err(e) if code(&e) == Some("NoSuchEntity") => {}
            Err(e) => {
                return Err(err(
                    &format!("reading IAM user {name}, which the list left out"),
                    e,
                ));
            }
        }
    }
    let mut out = Vec::new();
    for u in users {
        let name = u.user_name();
        if !wanted.contains(name) {
            continue;
        }
        // What the ledger applied: the region the password was derived for, the policy
        // name, and the key the consumers hold.
        let entry = ledger
            .resources
            .values()
            .find(|e| e.kind == "aws.iam_smtp_user" && e.id == name);
        // An unfinished create or rotation of this user: keys dated after it are its own.
        let since = ledger
            .pending
            .values()
            .find(|i| i.kind == "aws.iam_smtp_user" && i.key == name)
            .and_then(|i| i.at.as_deref())
            .and_then(epoch_seconds);
        if let Some(o) = read(p, &u, entry, since).await? {
            out.push(o);
        }
    }
    Ok(out)
}

async fn read(
    p: &AwsProvider,
    u: &aws_sdk_iam::types::User,
    entry: Option<&crate::ledger::LedgerEntry>,
    attempted_since: Option<i64>,
) -> Result<Option<LiveObject>, ProviderError> {
    let name = u.user_name();
    let keys = p
        .iam
        .list_access_keys()
        .user_name(name)
        .send()
        .await
        .map_err(|e| err(&format!("listing {name}'s access keys"), e))?;
    let recorded = entry
        .and_then(|e| e.attributes.get("smtp_username"))
        .and_then(Value::as_str);
    let current = keys
        .access_key_metadata()
        .iter()
        .filter(|k| recorded.is_none_or(|r| k.access_key_id() == Some(r)))
        .max_by_key(|k| k.create_date().map(|d| d.secs()));
    let Some(current) = current else {
        // No key the consumers could be using: as good as absent.
        return Ok(None);
    };
    // Keys that are neither the current one, nor one of provisioner's being retired, nor
    // one an unfinished attempt of provisioner's made (dated after its intent) were made by
    // someone else: reported, never deleted.
    let retiring = entry
        .map(crate::plan::planner::retiring)
        .unwrap_or_default();
    let leftovers: Vec<String> = keys
        .access_key_metadata()
        .iter()
        .filter(|k| made_since(k, attempted_since))
        .filter_map(|k| k.access_key_id())
        .filter(|k| Some(*k) != current.access_key_id() && !retiring.iter().any(|r| r == k))
        .map(str::to_string)
        .collect();
    let unmanaged: Vec<Value> = keys
        .access_key_metadata()
        .iter()
        .filter(|k| !made_since(k, attempted_since))
        .filter_map(|k| k.access_key_id())
        .filter(|k| Some(*k) != current.access_key_id() && !retiring.iter().any(|r| r == k))
        .map(|k| json!(k))
        .collect();
    let policy_name = entry
        .and_then(|e| e.applied.get("policy_name"))
        .and_then(Value::as_str)
        .unwrap_or("ses-send-raw-email")
        .to_string();
    let (policy_name, allowed) = match p
        .iam
        .get_user_policy()
        .user_name(name)
        .policy_name(&policy_name)
        .send()
        .await
    {
        Ok(pol) => (
            Value::String(policy_name),
            allowed_identities(pol.policy_document()),
        ),
        Err(e) if code(&e) == Some("NoSuchEntity") => (Value::Null, Value::Null),
        Err(e) => return Err(err(&format!("reading {name}'s policy"), e)),
    };
    let tags = p
        .iam
        .list_user_tags()
        .user_name(name)
        .send()
        .await
        .map_err(|e| err(&format!("reading {name}'s tags"), e))?;
    let (tags, lineage) = split_tags(tags.tags().iter().map(|t| (t.key(), t.value())));
    let region = entry
        .and_then(|e| e.applied.get("region"))
        .cloned()
        .unwrap_or_else(|| json!(p.region));
    let mut fields = Map::new();
    fields.insert("name".into(), json!(name));
    fields.insert("path".into(), json!(u.path()));
    fields.insert("region".into(), region.clone());
    fields.insert("policy_name".into(), policy_name);
    fields.insert("allowed_identities".into(), allowed);
    fields.insert("tags".into(), Value::Object(tags));
    let key_id = current.access_key_id().unwrap_or_default();
    let created = current.create_date().map(key_created_at);
    let mut attributes = attributes(u.arn(), name, key_id, region.as_str().unwrap_or(&p.region));
    if let Some(c) = created {
        attributes.insert("created_at".into(), json!(c));
    }
    let mut o = object(name.to_string(), fields, attributes, lineage);
    if !unmanaged.is_empty() {
        o.unmanaged
            .insert("unmanaged_access_keys".into(), Value::Array(unmanaged));
    }
    o.leftover_parts = leftovers;
    Ok(Some(o))
}

/// Seconds since the epoch of an RFC 3339 time.
fn epoch_seconds(t: &str) -> Option<i64> {
    let t = humantime::parse_rfc3339_weak(t).ok()?;
    Some(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs() as i64)
}

/// How long after its intent an unfinished attempt may have made its key: the key is made
/// right after the intent is persisted, so anything later is someone else's.
const ATTEMPT_WINDOW_SECONDS: i64 = 300;

/// True when key `k` was made by the unfinished attempt the intent records: at or after
/// `since` (seconds; IAM dates keys to the second, so the intent's second counts) and within
/// [`ATTEMPT_WINDOW_SECONDS`] of it. An intent left in the ledger long after never makes a
/// later key provisioner's.
fn made_since(k: &aws_sdk_iam::types::AccessKeyMetadata, since: Option<i64>) -> bool {
    match (since, k.create_date()) {
        (Some(since), Some(created)) => {
            created.secs() >= since && created.secs() <= since + ATTEMPT_WINDOW_SECONDS
        }
        _ => false,
    }
}

/// An access key's creation time, as the planner's rotation rule reads it.
fn key_created_at(d: &aws_sdk_iam::primitives::DateTime) -> String {
    crate::ledger::lease::rfc3339(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(d.secs().max(0) as u64),
    )
}

/// The identity ARNs the policy document allows (`[]` when it allows any).
fn allowed_identities(document: &str) -> Value {
    // IAM returns the document URL-encoded.
    let decoded = crate::percent::percent_decode(document);
    let Ok(doc) = serde_json::from_str::<Value>(&decoded) else {
        return Value::Null;
    };
    let resources: Vec<Value> = doc["Statement"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| match &s["Resource"] {
            Value::Array(a) => a.clone(),
            v @ Value::String(_) => vec![v.clone()],
            _ => Vec::new(),
        })
        .filter(|r| r != "*")
        .collect();
    Value::Array(resources)
}

fn policy(f: &Map<String, Value>) -> String {
    let allowed: Vec<Value> = f
        .get("allowed_identities")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let resource = if allowed.is_empty() {
        json!("*")
    } else {
        Value::Array(allowed)
    };
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Action": "ses:SendRawEmail",
            "Resource": resource,
        }]
    })
    .to_string()
}

fn attributes(arn: &str, name: &str, key_id: &str, region: &str) -> BTreeMap<String, Value> {
    BTreeMap::from([
        ("arn".to_string(), json!(arn)),
        ("name".to_string(), json!(name)),
        ("smtp_username".to_string(), json!(key_id)),
        ("smtp_endpoint".to_string(), json!(smtp::endpoint(region))),
    ])
}

/// Creates, updates, rotates or deletes the user.
pub async fn apply(p: &AwsProvider, req: &ApplyRequest<'_>) -> Result<Applied, ProviderError> {
    let f = req.fields;
    let name = text(f, "name").ok_or_else(|| ProviderError::msg("an IAM user needs its name"))?;
    let own = req
        .recorded
        .and_then(|a| a.get("smtp_username"))
        .and_then(Value::as_str);
    match req.action {
        Action::Delete => {
            delete_user(p, req.cloud_id.unwrap_or(name), own, req.retiring).await?;
            return Ok(Applied::default());
        }
        // A new name or path is a new user: the executor replaces it by a delete and a
        // create. In place, only the key is renewed.
        Action::Replace if req.cloud_id.is_some_and(|old| old != name) => {
            return Err(crate::providers::not_in_place(req.kind));
        }
        _ => {}
    }
    let path = text(f, "path").unwrap_or("/");
    let region = text(f, "region").unwrap_or(&p.region).to_string();
    let mut tags = Vec::new();
    for (k, v) in wanted_tags(f, req.lineage) {
        tags.push(
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| err("building a tag", e))?,
        );
    }
    let arn = match p
        .iam
        .create_user()
        .user_name(name)
        .path(path)
        .set_tags(Some(tags.clone()))
        .send()
        .await
    {
        Ok(out) => out.user().map(|u| u.arn().to_string()).unwrap_or_default(),
        Err(e) if code(&e) == Some("EntityAlreadyExists") => p
            .iam
            .get_user()
            .user_name(name)
            .send()
            .await
            .map_err(|e| err(&format!("reading IAM user {name}"), e))?
            .user()
            .map(|u| u.arn().to_string())
            .unwrap_or_default(),
        Err(e) => return Err(err(&format!("creating IAM user {name}"), e)),
    };
    let policy_name = text(f, "policy_name").unwrap_or("ses-send-raw-email");
    p.iam
        .put_user_policy()
        .user_name(name)
        .policy_name(policy_name)
        .policy_document(policy(f))
        .send()
        .await
        .map_err(|e| err(&format!("setting {name}'s policy"), e))?;
    // Tags: exactly the wanted ones.
    let current = p
        .iam
        .list_user_tags()
        .user_name(name)
        .send()
        .await
        .map_err(|e| err(&format!("reading {name}'s tags"), e))?;
    let keep: BTreeSet<&str> = tags.iter().map(|t| t.key()).collect();
    let stale: Vec<String> = current
        .tags()
        .iter()
        .map(|t| t.key().to_string())
        .filter(|k| !keep.contains(k.as_str()))
        .collect();
    if !stale.is_empty() {
        p.iam
            .untag_user()
            .user_name(name)
            .set_tag_keys(Some(stale))
            .send()
            .await
            .map_err(|e| err(&format!("removing {name}'s old tags"), e))?;
    }
    p.iam
        .tag_user()
        .user_name(name)
        .set_tags(Some(tags))
        .send()
        .await
        .map_err(|e| err(&format!("tagging {name}"), e))?;

    let keys = p
        .iam
        .list_access_keys()
        .user_name(name)
        .send()
        .await
        .map_err(|e| err(&format!("listing {name}'s access keys"), e))?;
    let since = req.attempted_since.and_then(epoch_seconds);
    // Keys an unfinished attempt of this change made (dated after its intent) that the
    // ledger does not record: nobody ever received them. They go first.
    let mut existing: Vec<(String, i64)> = Vec::new();
    for k in keys.access_key_metadata() {
        let Some(id) = k.access_key_id() else {
            continue;
        };
        if made_since(k, since) && Some(id) != own && !req.retiring.iter().any(|r| r == id) {
            delete_key(p, name, id).await?;
            continue;
        }
        existing.push((
            id.to_string(),
            k.create_date().map(|d| d.secs()).unwrap_or(0),
        ));
    }
    // A new key on create and on replace (rotation, or a new region: the password is per
    // region and the old secret key is gone); otherwise the current key stays.
    let needs_key = matches!(req.action, Action::Create | Action::Replace) || existing.is_empty();
    // The key provisioner made and the consumers hold is the one the ledger recorded, never
    // a newer one added by hand.
    let own = own.filter(|own| existing.iter().any(|(k, _)| k == own));
    // Keys an earlier rotation superseded that consumers may still hold: provisioner's too.
    let mut retiring: Vec<String> = req
        .retiring
        .iter()
        .filter(|k| existing.iter().any(|(e, _)| e == *k) && Some(k.as_str()) != own)
        .cloned()
        .collect();
    let mut applied_key = own.map(str::to_string).or_else(|| {
        existing
            .iter()
            .max_by_key(|(_, t)| *t)
            .map(|(k, _)| k.clone())
    });
    let mut secrets = BTreeMap::new();
    let mut created_at = None;
    if needs_key {
        // IAM allows two keys per user ("IAM object quotas": access keys per user, 2), so
        // the new key needs a free slot. provisioner never frees one by deleting a key it
        // did not create, nor a key a consumer may hold before its successor exists.
        let foreign: Vec<&str> = existing
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| Some(*k) != own && !retiring.iter().any(|r| r == k))
            .collect();
        if existing.len() >= 2 && !foreign.is_empty() {
            return Err(ProviderError::msg(format!(
                "IAM user {name} already holds two access keys, and {} not created by provisioner: no room for a new key. provisioner never deletes a key it did not create; delete it yourself if nothing uses it (`aws iam delete-access-key --user-name {name} --access-key-id ID`) and apply again",
                match foreign.as_slice() {
                    [one] => format!("{one} was"),
                    many => format!("{} were", many.join(", ")),
                }
            )));
        }
        // The recorded key goes first only if no consumer ever received it.
        let mut held = existing.len();
        if let Some(unused) = own.filter(|_| req.unused) {
            delete_key(p, name, unused).await?;
            held -= 1;
        }
        if held >= 2 {
            // Both keys are provisioner's and possibly in use: the recorded one and one an
            // unfinished rotation left for consumers that were not all rewritten.
            return Err(ProviderError::msg(format!(
                "IAM user {name} holds two access keys provisioner made, both possibly in use: {} (current) and {} (superseded by a rotation whose consumers were not all rewritten): no room for a new key. Check which consumers still hold {}, delete the key nothing uses (`aws iam delete-access-key --user-name {name} --access-key-id ID`) and apply again",
                own.unwrap_or("?"),
                retiring.join(", "),
                retiring.join(", "),
            )));
        }
        let created = p
            .iam
            .create_access_key()
            .user_name(name)
            .send()
            .await
            .map_err(|e| err(&format!("creating {name}'s access key"), e))?;
        let key = created
            .access_key()
            .ok_or_else(|| ProviderError::msg("IAM returned no access key"))?;
        let secret = SecretValue::new(key.secret_access_key().as_bytes().to_vec());
        secrets.insert(
            "smtp_password".to_string(),
            smtp::password(&secret, &region),
        );
        let new_id = key.access_key_id().to_string();
        created_at = key.create_date().map(key_created_at);
        // provisioner's previous key is not deleted here: consumers hold it until they are
        // rewritten with the new password. The executor retires it after that (`retire`);
        // a key nobody received was deleted above.
        if let Some(old) = own.filter(|_| !req.unused) {
            retiring.push(old.to_string());
        }
        applied_key = Some(new_id);
    }
    let key_id = applied_key.unwrap_or_default();
    let mut attributes = attributes(&arn, name, &key_id, &region);
    if let Some(c) = created_at {
        attributes.insert("created_at".into(), json!(c));
    }
    Ok(Applied {
        id: name.to_string(),
        attributes,
        secrets,
        updated_at: None,
        retiring,
    })
}

/// Deletes access keys of `user` that a rotation superseded, once every consumer holds the
/// new password. Keys already gone are not an error.
pub async fn retire(p: &AwsProvider, user: &str, keys: &[String]) -> Result<(), ProviderError> {
    for key in keys {
        delete_key(p, user, key).await?;
    }
    Ok(())
}

async fn delete_key(p: &AwsProvider, user: &str, key: &str) -> Result<(), ProviderError> {
    tolerate(
        p.iam
            .delete_access_key()
            .user_name(user)
            .access_key_id(key)
            .send()
            .await,
        "NoSuchEntity",
        &format!("deleting {user}'s access key"),
    )
}

/// Deletes the user with its keys and inline policies (IAM refuses otherwise). A user that
/// holds a key provisioner did not make (neither `own`, the recorded one, nor one it is
/// `retiring`) is not deleted: that key is someone else's, and deleting the user would
/// delete it.
async fn delete_user(
    p: &AwsProvider,
    name: &str,
    own: Option<&str>,
    retiring: &[String],
) -> Result<(), ProviderError> {
    let keys = match p.iam.list_access_keys().user_name(name).send().await {
        Ok(k) => k,
        Err(e) if code(&e) == Some("NoSuchEntity") => return Ok(()),
        Err(e) => return Err(err(&format!("listing {name}'s access keys"), e)),
    };
    let foreign: Vec<&str> = keys
        .access_key_metadata()
        .iter()
        .filter_map(|k| k.access_key_id())
        .filter(|k| Some(*k) != own && !retiring.iter().any(|r| r == k))
        .collect();
    if !foreign.is_empty() {
        return Err(ProviderError::msg(format!(
            "IAM user {name} holds access keys provisioner did not create ({}): not deleted, since that would delete them. Delete them yourself if nothing uses them (`aws iam delete-access-key --user-name {name} --access-key-id ID`), then apply again",
            foreign.join(", ")
        )));
    }
    for k in keys.access_key_metadata() {
        if let Some(id) = k.access_key_id() {
            delete_key(p, name, id).await?;
        }
    }
    let policies = p
        .iam
        .list_user_policies()
        .user_name(name)
        .send()
        .await
        .map_err(|e| err(&format!("listing {name}'s policies"), e))?;
    for pol in policies.policy_names() {
        p.iam
            .delete_user_policy()
            .user_name(name)
            .policy_name(pol)
            .send()
            .await
            .map_err(|e| err(&format!("deleting {name}'s policy {pol}"), e))?;
    }
    tolerate(
        p.iam.delete_user().user_name(name).send().await,
        "NoSuchEntity",
        &format!("deleting IAM user {name}"),
    )
}

#[cfg(test)]
mod tests {
    use aws_sdk_iam::primitives::DateTime;
    use aws_sdk_iam::types::AccessKeyMetadata;

    use super::*;

    fn key(secs: i64) -> AccessKeyMetadata {
        AccessKeyMetadata::builder()
            .access_key_id("AKIA")
            .create_date(DateTime::from_secs(secs))
            .build()
    }

    #[test]
    fn a_key_is_an_unfinished_attempts_only_within_its_window() {
        assert!(
            made_since(&key(100), Some(100)),
            "the intent's second counts"
        );
        assert!(made_since(&key(100 + ATTEMPT_WINDOW_SECONDS), Some(100)));
        assert!(!made_since(&key(99), Some(100)), "made before the attempt");
        assert!(
            !made_since(&key(101 + ATTEMPT_WINDOW_SECONDS), Some(100)),
            "a stale intent never makes a later key provisioner's"
        );
        assert!(!made_since(&key(100), None));
        assert_eq!(epoch_seconds("1970-01-01T00:01:40Z"), Some(100));
    }
}
