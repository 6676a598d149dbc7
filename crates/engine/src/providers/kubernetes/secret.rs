//! `kubernetes.secret`: observing Secrets (one list per namespace, labelled
//! `managed-by=provisioner`), writing them with server-side apply, and deleting them.
//!
//! Secret values are read into memory only: observing reads a Secret's `data` to show the
//! values of its `plain` keys and the names of all its keys; the values of its `data` keys
//! are dropped there and then. Writing sends the values the executor resolved. No value
//! goes into a live object, the ledger, a plan, a log or an error: an API error about a
//! Secret is reported by its status, reason and message with every value (and its base64)
//! cut out.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::{Map, Value, json};

use super::cluster::{Cluster, Source};
use super::manifest::changed_outside;
use super::{
    ADDRESS_ANNOTATION, FIELD_MANAGER, KubeOptions, LINEAGE_LABEL, MANAGED_BY, Target, status_of,
};
use crate::desired::kinds::kubernetes::{KNOWN_HOSTS_KEY, WRITTEN_BY_PROVISIONER};
use crate::live::{LiveObject, lineage_tag};
use crate::providers::{Applied, ApplyRequest, Failure, ProviderError, SecretValue};

/// A Secret's cloud id: `namespace/name`.
pub fn id(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// The (namespace, name) of a cloud id.
fn parse_id(id: &str) -> Option<(&str, &str)> {
    id.split_once('/')
}

/// Where a target's Secret is: from the desired spec, else from the ledger entry.
fn place(t: &Target<'_>) -> Option<(String, String)> {
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    if let Some(r) = t.desired {
        return Some((
            text(&r.spec_json, "namespace")?,
            text(&r.spec_json, "name")?,
        ));
    }
    let (ns, name) = parse_id(&t.entry?.id)?;
    Some((ns.to_string(), name.to_string()))
}

/// The keys a target shows the values of (`plain`): the desired ones, else those the
/// ledger recorded as applied.
fn plain_keys(t: &Target<'_>) -> BTreeSet<String> {
    let from = |v: Option<&Value>| -> BTreeSet<String> {
        v.and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    match t.desired {
        Some(r) => from(r.spec_json.get("plain")),
        None => from(t.entry.and_then(|e| e.applied.get("plain"))),
    }
}

/// The keys a target declares (`data` and `plain`): the desired ones, else those the
/// ledger recorded as applied.
fn declared_keys(t: &Target<'_>) -> BTreeSet<String> {
    let keys = match t.desired {
        Some(r) => r.spec_json.get("keys"),
        None => t.entry.and_then(|e| e.applied.get("keys")),
    };
    keys.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// The Secrets of `targets` on `cluster`: one list per namespace. A Secret that does not
/// exist is left out (absent).
pub(super) async fn observe(
    cluster: &Cluster,
    options: &KubeOptions,
    targets: &[&Target<'_>],
    github_known_hosts: Option<&str>,
) -> Result<Vec<LiveObject>, ProviderError> {
    let namespaces: BTreeSet<String> = targets
        .iter()
        .filter_map(|t| place(t).map(|(ns, _)| ns))
        .filter(|ns| !ns.contains("${"))
        .collect();
    let lp = ListParams::default().labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1));
    let answers = crate::providers::read_each(
        options.lists_in_flight,
        namespaces.iter().map(|ns| {
            let lp = lp.clone();
            async move {
                let api: Api<Secret> = Api::namespaced(cluster.client.clone(), ns);
                (ns, api.list(&lp).await)
            }
        }),
    )
    .await;
    let mut found: BTreeMap<(String, String), Secret> = BTreeMap::new();
    for (ns, answer) in answers {
        // The error of a list of Secrets never holds their values (it is a status, or a
        // connection failure), but it is not kept as a source either.
        let list = answer.map_err(|e| {
            ProviderError::new(
                Failure::Transient,
                format!("listing secrets in {ns}: {}", describe(&e, &[])),
            )
        })?;
        for s in list.items {
            if let Some(name) = s.metadata.name.clone() {
                found.insert((ns.clone(), name), s);
            }
        }
    }
    let mut out = Vec::new();
    for t in targets {
        let Some((ns, name)) = place(t) else { continue };
        let Some(s) = found.get(&(ns.clone(), name.clone())) else {
            continue;
        };
        out.push(live(s, &ns, &name, &plain_keys(t), t, github_known_hosts));
    }
    Ok(out)
}

/// A Secret as the plan sees it: namespace, name, type, the values of its plain keys, the
/// names of all its keys, and who changed it last.
fn live(
    s: &Secret,
    ns: &str,
    name: &str,
    plain: &BTreeSet<String>,
    t: &Target<'_>,
    github_known_hosts: Option<&str>,
) -> LiveObject {
    let mut fields = Map::new();
    fields.insert("namespace".into(), json!(ns));
    fields.insert("name".into(), json!(name));
    fields.insert(
        "type".into(),
        json!(s.type_.clone().unwrap_or_else(|| "Opaque".into())),
    );
    let data = s.data.clone().unwrap_or_default();
    let mut shown = Map::new();
    for (k, v) in &data {
        if plain.contains(k) {
            let text = String::from_utf8(v.0.clone()).unwrap_or_else(|_| "(not UTF-8)".into());
            shown.insert(k.clone(), Value::String(text));
        }
    }
    fields.insert("plain".into(), Value::Object(shown));
    // `known_hosts = "github"`: the key holds GitHub's current keys (then it reads as
    // `github`), or other lines (shown in short), or nothing.
    let wants_github = t
        .desired
        .and_then(|r| r.spec_json.get("known_hosts"))
        .and_then(Value::as_str)
        == Some("github");
    let known_hosts = if wants_github {
        match data
            .get(KNOWN_HOSTS_KEY)
            .map(|v| String::from_utf8_lossy(&v.0))
        {
            Some(text) if Some(text.as_ref()) == github_known_hosts => json!("github"),
            Some(text) => json!(format!(
                "{} (not the keys GitHub's /meta lists now)",
                summarize_known_hosts(&text)
            )),
            None => Value::Null,
        }
    } else {
        Value::Null
    };
    fields.insert("known_hosts".into(), known_hosts);
    // Keys provisioner's apply owns are compared; keys only someone else wrote are theirs:
    // reported, never removed (server-side apply removes only what its manager owns).
    let owned = owned_keys(&s.metadata);
    let declared = declared_keys(t);
    let (mine, theirs): (Vec<&String>, Vec<&String>) = data.keys().partition(|k| {
        owned.is_empty() || owned.contains(k.as_str()) || declared.contains(k.as_str())
    });
    fields.insert(
        "keys".into(),
        Value::Array(mine.into_iter().map(|k| Value::String(k.clone())).collect()),
    );
    let mut unmanaged = BTreeMap::new();
    if !theirs.is_empty() {
        unmanaged.insert(
            "keys_of_others".to_string(),
            Value::Array(
                theirs
                    .into_iter()
                    .map(|k| Value::String(k.clone()))
                    .collect(),
            ),
        );
    }
    // Values of the secret keys are dropped here, with `data`.
    drop(data);
    let recorded = t.entry.map(|e| {
        let mut r = Map::new();
        if let Some(rv) = e.attributes.get("resourceVersion") {
            r.insert("resourceVersion".into(), rv.clone());
        }
        Value::Object(r)
    });
    let written_by = recorded
        .as_ref()
        .and_then(|r| changed_outside(&s.metadata, r))
        .map(|why| {
            why.strip_prefix("changed outside provisioner by ")
                .unwrap_or(&why)
                .to_string()
        })
        .unwrap_or_else(|| WRITTEN_BY_PROVISIONER.to_string());
    fields.insert("written_by".into(), Value::String(written_by));
    let labels = s.metadata.labels.clone().unwrap_or_default();
    let mut attributes = BTreeMap::new();
    attributes.insert("name".into(), json!(name));
    attributes.insert("namespace".into(), json!(ns));
    LiveObject {
        id: id(ns, name),
        fields,
        attributes,
        tags: labels
            .get(LINEAGE_LABEL)
            .map(|l| vec![lineage_tag(l)])
            .unwrap_or_default(),
        unmanaged,
        ..Default::default()
    }
}

/// A `known_hosts` text in short: its hosts and key types, and how many lines
/// (`github.com ssh-rsa, github.com ecdsa-sha2-nistp256 (2 keys)`).
fn summarize_known_hosts(text: &str) -> String {
    let lines: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
        .collect();
    format!(
        "{} ({} key{})",
        lines.join(", "),
        lines.len(),
        if lines.len() == 1 { "" } else { "s" }
    )
}

/// The data keys provisioner's server-side apply owns, from its `managedFields` entry
/// (`fieldsV1` `f:data` → `f:<key>`; Kubernetes docs, "Server-Side Apply", "Field
/// management"). Empty when provisioner has no entry (a Secret it has not written yet).
fn owned_keys(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> BTreeSet<String> {
    meta.managed_fields
        .iter()
        .flatten()
        .filter(|m| m.manager.as_deref() == Some(FIELD_MANAGER))
        .filter(|m| m.subresource.as_deref().unwrap_or("").is_empty())
        .filter_map(|m| m.fields_v1.as_ref())
        .filter_map(|f| serde_json::to_value(f).ok())
        .filter_map(|v| v.get("f:data").and_then(Value::as_object).cloned())
        .flat_map(|data| {
            data.keys()
                .filter_map(|k| k.strip_prefix("f:").map(str::to_string))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// An API error about a Secret in words: status, reason and message, with every value of
/// `values` (and its base64) cut out; or, when no answer came, the kind of failure, never
/// the request.
fn describe(e: &kube::Error, values: &[&SecretValue]) -> String {
    let text = match e {
        kube::Error::Api(s) => format!("{} {}: {}", s.code, s.reason, s.message),
        other => crate::errors::chain(other),
    };
    scrub(&text, values)
}

/// `text` with every value of `values`, raw or base64, replaced by `(sensitive)`.
pub fn scrub(text: &str, values: &[&SecretValue]) -> String {
    let mut out = text.to_string();
    for v in values {
        for form in [
            String::from_utf8_lossy(v.expose()).into_owned(),
            B64.encode(v.expose()),
        ] {
            // Values of a few characters would cut out words: they are not in messages as
            // words of their own anyway.
            if form.len() >= 4 {
                out = out.replace(&form, "(sensitive)");
            }
        }
    }
    out
}

/// The failure of an error about a Secret.
fn failure(e: &kube::Error, otherwise: Failure) -> Failure {
    match status_of(e) {
        Some(code) => Failure::of_status(code, None),
        None => otherwise,
    }
}

/// Writes a Secret with server-side apply: every `data` value the executor resolved
/// (`data.<key>`), every `plain` value, provisioner's labels; after checking that a Secret
/// of that name not yet known as this resource's may be taken.
pub(super) async fn apply(
    cluster: &Cluster,
    req: &ApplyRequest<'_>,
    github_known_hosts: Option<&str>,
) -> Result<Applied, ProviderError> {
    let spec = req
        .spec
        .ok_or_else(|| ProviderError::msg(format!("{}: no spec to apply", req.address)))?;
    let text = |k: &str| spec.get(k).and_then(Value::as_str).map(str::to_string);
    let (Some(ns), Some(name)) = (text("namespace"), text("name")) else {
        return Err(ProviderError::msg(format!(
            "{}: `namespace` or `name` is not known",
            req.address
        )));
    };
    let what = format!("Secret {ns}/{name}");
    let mut data = Map::new();
    let mut values: Vec<&SecretValue> = Vec::new();
    for (k, v) in req.secrets {
        if let Some(key) = k.strip_prefix("data.") {
            data.insert(key.into(), Value::String(B64.encode(v.expose())));
            values.push(v);
        }
    }
    let wanted: BTreeSet<&str> = spec
        .get("data")
        .and_then(Value::as_object)
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    if let Some(missing) = wanted.iter().find(|k| !data.contains_key(**k)) {
        return Err(ProviderError::msg(format!(
            "{}: the value of `data.{missing}` was not available to write",
            req.address
        )));
    }
    for (k, v) in spec
        .get("plain")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        data.insert(
            k.clone(),
            Value::String(B64.encode(v.as_str().unwrap_or_default())),
        );
    }
    if let Some(text) = github_known_hosts {
        data.insert(KNOWN_HOSTS_KEY.into(), Value::String(B64.encode(text)));
    }
    let api: Api<Secret> = Api::namespaced(cluster.client.clone(), &ns);
    let known = req.cloud_id == Some(id(&ns, &name).as_str());
    if !known {
        check_taken(&api, req, &name, &what, spec).await?;
    }
    let mut labels = Map::new();
    labels.insert(MANAGED_BY.0.into(), json!(MANAGED_BY.1));
    if !req.lineage.is_empty() {
        labels.insert(LINEAGE_LABEL.into(), json!(req.lineage));
    }
    let body = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": labels,
            "annotations": { ADDRESS_ANNOTATION: req.address.to_string() },
        },
        "type": text("type").unwrap_or_else(|| "Opaque".into()),
        "data": data,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let written = api
        .patch(&name, &params, &Patch::Apply(&body))
        .await
        .map_err(|e| {
            ProviderError::new(
                failure(&e, Failure::Ambiguous),
                format!("writing {what}: {}", describe(&e, &values)),
            )
        })?;
    drop(body);
    let mut attributes = BTreeMap::new();
    attributes.insert("name".into(), json!(name));
    attributes.insert("namespace".into(), json!(ns));
    attributes.insert("server".into(), json!(cluster.server));
    if let Some(source) = spec.get("cluster").and_then(Source::from_spec) {
        attributes.insert("cluster_source".into(), source.to_json());
    }
    if let Some(uid) = written.metadata.uid {
        attributes.insert("uid".into(), json!(uid));
    }
    if let Some(rv) = written.metadata.resource_version {
        attributes.insert("resourceVersion".into(), json!(rv));
    }
    Ok(Applied {
        id: id(&ns, &name),
        attributes,
        ..Applied::default()
    })
}

/// Refuses a Secret of that name that exists and is not this resource's: another ledger's
/// always, one provisioner did not make unless `take_over`.
async fn check_taken(
    api: &Api<Secret>,
    req: &ApplyRequest<'_>,
    name: &str,
    what: &str,
    spec: &Value,
) -> Result<(), ProviderError> {
    let existing = api.get_metadata_opt(name).await.map_err(|e| {
        ProviderError::new(
            failure(&e, Failure::Transient),
            format!("reading {what}: {}", describe(&e, &[])),
        )
    })?;
    match existing {
        Some(m) => super::check_owner(&m.metadata, req, what, "Secret", "", spec),
        None => Ok(()),
    }
}

/// Deletes a Secret, if it is still this resource's (this ledger's lineage, this address);
/// a 404 is done.
pub(super) async fn delete(cluster: &Cluster, req: &ApplyRequest<'_>) -> Result<(), ProviderError> {
    let id = req
        .cloud_id
        .ok_or_else(|| ProviderError::msg(format!("{}: delete without a cloud id", req.address)))?;
    let (ns, name) = parse_id(id).ok_or_else(|| {
        ProviderError::msg(format!(
            "kubernetes.secret id \"{id}\" is not namespace/name"
        ))
    })?;
    let what = format!("Secret {ns}/{name}");
    let api: Api<Secret> = Api::namespaced(cluster.client.clone(), ns);
    let m = api.get_metadata_opt(name).await.map_err(|e| {
        ProviderError::new(
            failure(&e, Failure::Transient),
            format!("reading {what}: {}", describe(&e, &[])),
        )
    })?;
    let Some(m) = m else {
        return Ok(());
    };
    let lineage = m
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(LINEAGE_LABEL))
        .map(String::as_str);
    if lineage != Some(req.lineage) {
        // Someone else's now: left alone.
        return Ok(());
    }
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(e) if status_of(&e) == Some(404) => Ok(()),
        Err(e) => Err(ProviderError::new(
            failure(&e, Failure::Ambiguous),
            format!("deleting {what}: {}", describe(&e, &[])),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_their_base64_are_cut_out_of_messages() {
        let v = SecretValue::new(b"canary-5f1e".to_vec());
        let text = format!(
            "bad value \"canary-5f1e\" in data: {}",
            B64.encode(b"canary-5f1e")
        );
        let out = scrub(&text, &[&v]);
        assert!(!out.contains("canary"), "{out}");
        assert_eq!(out, "bad value \"(sensitive)\" in data: (sensitive)");
    }
}
