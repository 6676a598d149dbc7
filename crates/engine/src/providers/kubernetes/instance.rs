//! `flux.instance`: the Flux Operator's `FluxInstance` (`fluxcd.controlplane.io/v1`, named
//! `flux`, in the operator's namespace).
//!
//! - **Observe:** one labelled list per namespace (whole objects: the status is needed). A
//!   cluster without the `FluxInstance` CRD answers the list with 404: no instance exists
//!   there (the operator's manifest has not been applied yet).
//! - **Apply:** server-side apply (field manager `provisioner`, forced), then a wait until
//!   the operator reports `Ready=True` for the written generation (`status.observedGeneration
//!   == metadata.generation`), or `Stalled=True` (it gave up), or `wait` runs out. An
//!   instance that is not Ready then is recorded as applied all the same (writing it again
//!   cannot make it Ready, and an unrecorded one would be written again every pass) and
//!   reported: a warning now, its health in every later plan, `/status` and the metrics.
//! - **Delete:** the instance is deleted (propagation `Background`) and waited for until it
//!   is gone: the operator's finalizer uninstalls Flux first, so the operator must still be
//!   running (the delete of its manifest is ordered after, by `depends_on`).
//!
//! Health comes from the conditions the operator writes (kstatus: `Ready`, `Reconciling`,
//! `Stalled`; fluxoperator.dev "Flux Instance CRD", "FluxInstance Status").

use std::collections::{BTreeMap, BTreeSet};

use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams};
use kube::api::{Patch, PatchParams};
use serde_json::{Map, Value, json};

use super::cluster::{Cluster, Source};
use super::manifest::changed_outside;
use super::{
    ADDRESS_ANNOTATION, FIELD_MANAGER, KubeOptions, LINEAGE_LABEL, MANAGED_BY, Target, kube_error,
    status_of,
};
use crate::desired::kinds::flux::{API_VERSION, INSTANCE_NAME};
use crate::desired::kinds::kubernetes::WRITTEN_BY_PROVISIONER;
use crate::live::{Health, HealthState, LiveObject, lineage_tag};
use crate::providers::{Applied, ApplyRequest, Failure, ProviderError};

/// The API resource of `FluxInstance` (plural `fluxinstances`, namespaced).
pub fn resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("fluxcd.controlplane.io", "v1", "FluxInstance"),
        "fluxinstances",
    )
}

/// An instance's cloud id: `namespace/flux`.
pub fn id(namespace: &str) -> String {
    format!("{namespace}/{INSTANCE_NAME}")
}

fn namespace_of(t: &Target<'_>) -> Option<String> {
    if let Some(r) = t.desired {
        return r
            .spec_json
            .get("namespace")
            .and_then(Value::as_str)
            .map(str::to_string);
    }
    t.entry?.id.split_once('/').map(|(ns, _)| ns.to_string())
}

fn api(cluster: &Cluster, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(cluster.client.clone(), ns, &resource())
}

/// The instances of `targets` on `cluster`: one list per namespace. An instance that does
/// not exist is left out (absent); so is every instance of a cluster that does not serve
/// the `FluxInstance` type (404).
pub(super) async fn observe(
    cluster: &Cluster,
    options: &KubeOptions,
    targets: &[&Target<'_>],
) -> Result<Vec<LiveObject>, ProviderError> {
    let namespaces: BTreeSet<String> = targets
        .iter()
        .filter_map(|t| namespace_of(t))
        .filter(|ns| !ns.contains("${"))
        .collect();
    let lp = ListParams::default().labels(&format!("{}={}", MANAGED_BY.0, MANAGED_BY.1));
    let answers = crate::providers::read_each(
        options.lists_in_flight,
        namespaces.iter().map(|ns| {
            let lp = lp.clone();
            async move { (ns, api(cluster, ns).list(&lp).await) }
        }),
    )
    .await;
    let mut found: BTreeMap<String, DynamicObject> = BTreeMap::new();
    for (ns, answer) in answers {
        match answer {
            Ok(list) => {
                for o in list.items {
                    if o.metadata.name.as_deref() == Some(INSTANCE_NAME) {
                        found.insert(ns.clone(), o);
                    }
                }
            }
            // The type is not served: the operator's CRD is not there, so no instance is.
            Err(e) if status_of(&e) == Some(404) => {}
            Err(e) => {
                return Err(kube_error(
                    &format!("listing FluxInstances in {ns}"),
                    Failure::Transient,
                    e,
                ));
            }
        }
    }
    Ok(targets
        .iter()
        .filter_map(|t| {
            let ns = namespace_of(t)?;
            Some(live(found.get(&ns)?, &ns, t))
        })
        .collect())
}

/// A `FluxInstance` as the plan sees it, in the kind's vocabulary; its health apart.
fn live(o: &DynamicObject, ns: &str, t: &Target<'_>) -> LiveObject {
    let spec = o.data.get("spec").cloned().unwrap_or(Value::Null);
    let text =
        |v: &Value, k: &str, d: &str| v.get(k).and_then(Value::as_str).unwrap_or(d).to_string();
    let distribution = spec.get("distribution").cloned().unwrap_or(Value::Null);
    let cluster = spec.get("cluster").cloned().unwrap_or(Value::Null);
    let mut fields = Map::new();
    fields.insert("namespace".into(), json!(ns));
    fields.insert("version".into(), json!(text(&distribution, "version", "")));
    fields.insert(
        "registry".into(),
        json!(text(&distribution, "registry", "")),
    );
    fields.insert(
        "components".into(),
        spec.get("components")
            .filter(|c| c.is_array())
            .cloned()
            .unwrap_or_else(|| json!([])),
    );
    // The operator's CRD defaults (`.spec.cluster`): type `kubernetes`, multitenant off,
    // network policies on, domain `cluster.local`.
    fields.insert(
        "cluster_type".into(),
        json!(text(&cluster, "type", "kubernetes")),
    );
    fields.insert(
        "multitenant".into(),
        json!(
            cluster
                .get("multitenant")
                .and_then(Value::as_bool)
                .unwrap_or(false)
        ),
    );
    fields.insert(
        "network_policy".into(),
        json!(
            cluster
                .get("networkPolicy")
                .and_then(Value::as_bool)
                .unwrap_or(true)
        ),
    );
    fields.insert(
        "cluster_domain".into(),
        json!(text(&cluster, "domain", "cluster.local")),
    );
    let sync = match spec.get("sync") {
        Some(s) if s.is_object() => json!({
            "kind": text(s, "kind", "GitRepository"),
            "url": text(s, "url", ""),
            "ref": text(s, "ref", ""),
            "path": text(s, "path", ""),
            "pull_secret": s.get("pullSecret").and_then(Value::as_str),
        }),
        _ => Value::Null,
    };
    fields.insert("sync".into(), sync);
    let recorded = t.entry.map(|e| {
        let mut r = Map::new();
        for k in ["generation", "resourceVersion"] {
            if let Some(v) = e.attributes.get(k) {
                r.insert(k.into(), v.clone());
            }
        }
        Value::Object(r)
    });
    let written_by = recorded
        .as_ref()
        .and_then(|r| changed_outside(&o.metadata, r))
        .map(|why| {
            why.strip_prefix("changed outside provisioner by ")
                .unwrap_or(&why)
                .to_string()
        })
        .unwrap_or_else(|| WRITTEN_BY_PROVISIONER.to_string());
    fields.insert("written_by".into(), Value::String(written_by));
    let mut attributes = BTreeMap::new();
    attributes.insert("name".into(), json!(INSTANCE_NAME));
    attributes.insert("namespace".into(), json!(ns));
    if let Some(rev) = o
        .data
        .pointer("/status/lastAppliedRevision")
        .and_then(Value::as_str)
    {
        attributes.insert("last_applied_revision".into(), json!(rev));
    }
    let labels = o.metadata.labels.clone().unwrap_or_default();
    LiveObject {
        id: id(ns),
        fields,
        attributes,
        tags: labels
            .get(LINEAGE_LABEL)
            .map(|l| vec![lineage_tag(l)])
            .unwrap_or_default(),
        health: Some(health(o)),
        ..Default::default()
    }
}

/// What the operator says of the instance (kstatus): `Stalled=True` first, then whether it
/// has seen the current generation, then `Ready`.
pub fn health(o: &DynamicObject) -> Health {
    let conditions: Vec<&Value> = o
        .data
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map(|c| c.iter().collect())
        .unwrap_or_default();
    let condition = |t: &str| {
        conditions
            .iter()
            .find(|c| c.get("type").and_then(Value::as_str) == Some(t))
            .copied()
    };
    let words = |c: &Value| {
        (
            inert(c.get("reason").and_then(Value::as_str).unwrap_or("")),
            inert(c.get("message").and_then(Value::as_str).unwrap_or("")),
        )
    };
    let is = |c: &Value, s: &str| c.get("status").and_then(Value::as_str) == Some(s);
    if let Some(c) = condition("Stalled").filter(|c| is(c, "True")) {
        let (reason, message) = words(c);
        return Health {
            state: HealthState::Stalled,
            reason,
            message,
        };
    }
    let generation = o.metadata.generation.unwrap_or(0);
    let observed = o
        .data
        .pointer("/status/observedGeneration")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let ready = condition("Ready");
    if generation > 0 && observed < generation {
        return Health {
            state: HealthState::Progressing,
            reason: "NotObservedYet".into(),
            message: format!(
                "the Flux Operator has not reconciled generation {generation} yet (it last saw {observed}); is the operator running?"
            ),
        };
    }
    match ready {
        Some(c) if is(c, "True") => {
            let (reason, message) = words(c);
            Health {
                state: HealthState::Ready,
                reason,
                message,
            }
        }
        Some(c) if is(c, "False") => {
            let (reason, message) = words(c);
            Health {
                state: HealthState::Failed,
                reason,
                message,
            }
        }
        Some(c) => {
            let (reason, message) = words(c);
            Health {
                state: HealthState::Progressing,
                reason,
                message,
            }
        }
        None => Health {
            state: HealthState::Progressing,
            reason: "NoCondition".into(),
            message: "the Flux Operator has written no Ready condition yet".into(),
        },
    }
}

/// Text a controller wrote, made safe to log and show: control characters (newlines,
/// terminal escapes) escaped, at most 2,000 characters. Anyone allowed to write the
/// instance's status writes this text, and logs are read on terminals.
fn inert(text: &str) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == 2000 {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The object provisioner writes for a spec (field names of the operator's API).
fn body(spec: &Value, ns: &str, req: &ApplyRequest<'_>) -> Value {
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let mut labels = Map::new();
    labels.insert(MANAGED_BY.0.into(), json!(MANAGED_BY.1));
    if !req.lineage.is_empty() {
        labels.insert(LINEAGE_LABEL.into(), json!(req.lineage));
    }
    let mut s = Map::new();
    s.insert(
        "distribution".into(),
        json!({
            "version": text(spec, "version"),
            "registry": text(spec, "registry"),
        }),
    );
    if let Some(c) = spec
        .get("components")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
    {
        s.insert("components".into(), Value::Array(c.clone()));
    }
    s.insert(
        "cluster".into(),
        json!({
            "type": text(spec, "cluster_type"),
            "multitenant": spec.get("multitenant").and_then(Value::as_bool).unwrap_or(false),
            "networkPolicy": spec.get("network_policy").and_then(Value::as_bool).unwrap_or(true),
            "domain": text(spec, "cluster_domain"),
        }),
    );
    if let Some(sync) = spec.get("sync").filter(|s| s.is_object()) {
        let mut out = Map::new();
        for (from, to) in [
            ("kind", "kind"),
            ("url", "url"),
            ("ref", "ref"),
            ("path", "path"),
            ("pull_secret", "pullSecret"),
        ] {
            if let Some(v) = text(sync, from) {
                out.insert(to.into(), json!(v));
            }
        }
        s.insert("sync".into(), Value::Object(out));
    }
    json!({
        "apiVersion": API_VERSION,
        "kind": "FluxInstance",
        "metadata": {
            "name": INSTANCE_NAME,
            "namespace": ns,
            "labels": labels,
            "annotations": { ADDRESS_ANNOTATION: req.address.to_string() },
        },
        "spec": s,
    })
}

/// How long `wait` says, in the spec (default five minutes).
fn wait_of(spec: &Value) -> std::time::Duration {
    let secs = spec
        .get("wait")
        .and_then(Value::as_str)
        .and_then(|w| crate::desired::values::Duration::parse(w).ok())
        .unwrap_or(300);
    std::time::Duration::from_secs(secs)
}

/// Writes the instance, then waits until the operator reports it `Ready`.
pub(super) async fn apply(
    cluster: &Cluster,
    options: &KubeOptions,
    req: &ApplyRequest<'_>,
) -> Result<Applied, ProviderError> {
    let spec = req
        .spec
        .ok_or_else(|| ProviderError::msg(format!("{}: no spec to apply", req.address)))?;
    let ns = spec
        .get("namespace")
        .and_then(Value::as_str)
        .ok_or_else(|| ProviderError::msg(format!("{}: `namespace` is not known", req.address)))?
        .to_string();
    let what = format!("FluxInstance {ns}/{INSTANCE_NAME}");
    // The fields with references resolved (`pull_secret = "${kubernetes.secret.git.name}"`).
    let resolved = Value::Object(req.fields.clone());
    let api = api(cluster, &ns);
    if req.cloud_id != Some(id(&ns).as_str()) {
        check_taken(&api, req, &what, spec).await?;
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let written = api
        .patch(INSTANCE_NAME, &params, &Patch::Apply(&body(&resolved, &ns, req)))
        .await
        .map_err(|e| {
            let hint = if status_of(&e) == Some(404) {
                " (is the Flux Operator installed? Its manifest, with the FluxInstance CRD, goes first: name it in `depends_on`)"
            } else {
                ""
            };
            let mut err = kube_error(&format!("writing {what}"), Failure::Ambiguous, e);
            err.message.push_str(hint);
            err
        })?;
    let generation = written.metadata.generation.unwrap_or(0);
    let ready = wait_ready(&api, options, &what, generation, wait_of(spec)).await?;
    let mut attributes = BTreeMap::new();
    attributes.insert("name".into(), json!(INSTANCE_NAME));
    attributes.insert("namespace".into(), json!(ns));
    attributes.insert("server".into(), json!(cluster.server));
    attributes.insert("wait_seconds".into(), json!(wait_of(spec).as_secs()));
    if let Some(source) = spec.get("cluster").and_then(Source::from_spec) {
        attributes.insert("cluster_source".into(), source.to_json());
    }
    // What the ledger compares the next observation with: the generation (status writes
    // of the operator do not move it) and the resource version.
    let meta = &ready.metadata;
    if let Some(uid) = &meta.uid {
        attributes.insert("uid".into(), json!(uid));
    }
    if let Some(g) = meta.generation {
        attributes.insert("generation".into(), json!(g));
    }
    if let Some(rv) = &meta.resource_version {
        attributes.insert("resourceVersion".into(), json!(rv));
    }
    if let Some(rev) = ready
        .data
        .pointer("/status/lastAppliedRevision")
        .and_then(Value::as_str)
    {
        attributes.insert("last_applied_revision".into(), json!(rev));
    }
    Ok(Applied {
        id: id(&ns),
        attributes,
        ..Applied::default()
    })
}

/// Polls the instance until the operator has reconciled `generation` and says `Ready`, or
/// says `Stalled`, or `wait` runs out; the instance as last read. An instance that is not
/// Ready when the wait ends is logged as a warning, not an error: it is written, and writing
/// it again cannot help. Progress goes to the log every half minute or so.
async fn wait_ready(
    api: &Api<DynamicObject>,
    options: &KubeOptions,
    what: &str,
    generation: i64,
    wait: std::time::Duration,
) -> Result<DynamicObject, ProviderError> {
    let started = tokio::time::Instant::now();
    let mut last_log = started;
    loop {
        let o = api
            .get_opt(INSTANCE_NAME)
            .await
            .map_err(|e| kube_error(&format!("reading {what}"), Failure::Transient, e))?
            .ok_or_else(|| {
                ProviderError::new(
                    Failure::Transient,
                    format!("{what} was deleted while provisioner waited for it to be Ready"),
                )
            })?;
        let h = health(&o);
        let seen = o
            .data
            .pointer("/status/observedGeneration")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let elapsed = started.elapsed();
        let settled = match h.state {
            HealthState::Ready => seen >= generation,
            // The operator gave up until something changes: waiting longer changes nothing.
            HealthState::Stalled => true,
            _ => elapsed >= wait,
        };
        if settled {
            if !h.is_ready() {
                // Written, and this ledger's; not Ready. Recorded as applied (writing it
                // again cannot make it Ready), and reported: here, and by every pass's
                // observation (plan, /status, metrics) until the operator says Ready.
                tracing::warn!(
                    message = "A FluxInstance was written but is not Ready.",
                    instance = what,
                    state = h.state.as_str(),
                    reason = %h.reason,
                    detail = %h.message,
                    seconds = elapsed.as_secs(),
                    runbook = "docs/kubernetes.md, \"Runbook: a Flux that is not Ready\""
                );
            }
            return Ok(o);
        }
        if last_log.elapsed() >= std::time::Duration::from_secs(30) {
            last_log = tokio::time::Instant::now();
            tracing::info!(
                message = "Waiting for a FluxInstance to be Ready.",
                instance = what,
                state = h.state.as_str(),
                reason = %h.reason,
                detail = %h.message,
                seconds = elapsed.as_secs()
            );
        }
        tokio::time::sleep(options.poll_every).await;
    }
}

/// Refuses an instance that exists and is not this resource's: another ledger's always,
/// one provisioner did not make unless `take_over`.
async fn check_taken(
    api: &Api<DynamicObject>,
    req: &ApplyRequest<'_>,
    what: &str,
    spec: &Value,
) -> Result<(), ProviderError> {
    let existing = match api.get_metadata_opt(INSTANCE_NAME).await {
        Ok(m) => m,
        // The type is not served yet: nothing to take.
        Err(e) if status_of(&e) == Some(404) => None,
        Err(e) => {
            return Err(kube_error(
                &format!("reading {what}"),
                Failure::Transient,
                e,
            ));
        }
    };
    match existing {
        Some(m) => super::check_owner(
            &m.metadata,
            req,
            what,
            "instance",
            " (flux bootstrap or kubectl?)",
            spec,
        ),
        None => Ok(()),
    }
}

/// Deletes the instance if it is still this ledger's, and waits until it is gone (the
/// operator's finalizer uninstalls Flux first); a 404 is done.
pub(super) async fn delete(
    cluster: &Cluster,
    options: &KubeOptions,
    req: &ApplyRequest<'_>,
) -> Result<(), ProviderError> {
    let id = req
        .cloud_id
        .ok_or_else(|| ProviderError::msg(format!("{}: delete without a cloud id", req.address)))?;
    let (ns, _) = id.split_once('/').ok_or_else(|| {
        ProviderError::msg(format!("flux.instance id \"{id}\" is not namespace/name"))
    })?;
    let what = format!("FluxInstance {ns}/{INSTANCE_NAME}");
    let api = api(cluster, ns);
    let m = match api.get_metadata_opt(INSTANCE_NAME).await {
        Ok(m) => m,
        Err(e) if status_of(&e) == Some(404) => None,
        Err(e) => {
            return Err(kube_error(
                &format!("reading {what}"),
                Failure::Transient,
                e,
            ));
        }
    };
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
    match api.delete(INSTANCE_NAME, &DeleteParams::background()).await {
        Ok(_) => {}
        Err(e) if status_of(&e) == Some(404) => return Ok(()),
        Err(e) => {
            return Err(kube_error(
                &format!("deleting {what}"),
                Failure::Ambiguous,
                e,
            ));
        }
    }
    // The wait the instance was last applied with (it may have left the desired state).
    let wait = req
        .recorded
        .and_then(|a| a.get("wait_seconds"))
        .and_then(Value::as_u64)
        .map(std::time::Duration::from_secs)
        .unwrap_or(options.wait);
    let started = tokio::time::Instant::now();
    loop {
        match api.get_metadata_opt(INSTANCE_NAME).await {
            Ok(None) => return Ok(()),
            Err(e) if status_of(&e) == Some(404) => return Ok(()),
            Ok(Some(_)) => {}
            Err(e) => {
                return Err(kube_error(
                    &format!("reading {what}"),
                    Failure::Transient,
                    e,
                ));
            }
        }
        if started.elapsed() >= wait {
            return Err(ProviderError::new(
                Failure::Ambiguous,
                format!(
                    "{what} is still being deleted after {}s: the Flux Operator removes its finalizer once Flux is uninstalled, so the operator must be running (`kubectl -n {ns} get deploy`); docs/kubernetes.md, \"A Flux that is not Ready\"",
                    started.elapsed().as_secs()
                ),
            ));
        }
        tokio::time::sleep(options.poll_every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(generation: i64, status: Value) -> DynamicObject {
        let mut o = DynamicObject::new(INSTANCE_NAME, &resource()).within("flux-system");
        o.metadata.generation = Some(generation);
        o.data = json!({ "status": status });
        o
    }

    #[test]
    fn health_reads_stalled_first_then_the_generation_then_ready() {
        let stalled = object(
            2,
            json!({"observedGeneration": 1, "conditions": [
                {"type": "Ready", "status": "False", "reason": "X", "message": "m"},
                {"type": "Stalled", "status": "True", "reason": "InvalidSpec", "message": "bad"}]}),
        );
        assert_eq!(health(&stalled).state, HealthState::Stalled);
        assert_eq!(health(&stalled).reason, "InvalidSpec");
        let behind = object(
            2,
            json!({"observedGeneration": 1, "conditions": [
                {"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded", "message": "ok"}]}),
        );
        assert_eq!(health(&behind).state, HealthState::Progressing);
        let failed = object(
            2,
            json!({"observedGeneration": 2, "conditions": [
                {"type": "Ready", "status": "False", "reason": "ArtifactFailed", "message": "auth"}]}),
        );
        assert_eq!(health(&failed).state, HealthState::Failed);
        assert_eq!(health(&failed).message, "auth");
        let ready = object(
            2,
            json!({"observedGeneration": 2, "conditions": [
                {"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded", "message": "ok"}]}),
        );
        assert!(health(&ready).is_ready());
        let hostile = object(
            2,
            json!({"observedGeneration": 2, "conditions": [
                {"type": "Ready", "status": "False", "reason": "Bad\u{1b}[31mRED", "message": "line1\nforged log line\u{1b}]0;pwned\u{7}"}]}),
        );
        let h = health(&hostile);
        assert_eq!(h.reason, "Bad\\u{1b}[31mRED");
        assert!(!h.message.chars().any(char::is_control), "{:?}", h.message);
        assert!(h.message.starts_with("line1\\nforged"), "{:?}", h.message);
        assert_eq!(
            health(&object(1, Value::Null)).state,
            HealthState::Progressing
        );
    }
}
