//! `kubernetes.manifest`: observing each manifest's objects (metadata-only lists), applying
//! them with server-side apply (CustomResourceDefinitions and Namespaces first, then waiting
//! until they are established), pruning or orphaning what left the file, and deleting in
//! reverse: workloads, then RBAC, then CustomResourceDefinitions, Namespaces last.
//!
//! The plan compares each manifest's inventory, `key → hash`: the desired hash of each
//! object against the `provisioner.dev/applied` annotation of the live one. An object whose
//! `metadata.generation` (or, for kinds that keep none, `metadata.resourceVersion`) moved
//! since provisioner's last write was changed by someone else: its live value says so and
//! names the newest field manager in `metadata.managedFields` (Kubernetes docs, "Server-Side
//! Apply", "Field management").

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::discovery::{Discovery, Scope};
use serde_json::{Map, Value, json};

use super::cluster::{Cluster, Source};
use super::{
    ADDRESS_ANNOTATION, APPLIED_ANNOTATION, FIELD_MANAGER, KubeOptions, KubeProvider,
    LINEAGE_LABEL, MANAGED_BY, Target, kube_error, status_of,
};
use crate::desired::kinds::kubernetes::{DOCUMENTS, first_stage, object_hash, object_key};
use crate::ledger::Ledger;
use crate::live::{LiveObject, lineage_tag};
use crate::providers::{Applied, ApplyRequest, Failure, ProviderError};

/// An object by its coordinates.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectRef {
    /// `apiVersion`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// Its namespace, for a namespaced object.
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
}

impl ObjectRef {
    /// Its key in inventories and plans ([`object_key`]).
    pub fn key(&self) -> String {
        object_key(
            &self.api_version,
            &self.kind,
            self.namespace.as_deref(),
            &self.name,
        )
    }

    /// Its group, version and kind.
    pub fn gvk(&self) -> GroupVersionKind {
        let (group, version) = match self.api_version.rsplit_once('/') {
            Some((g, v)) => (g, v),
            None => ("", self.api_version.as_str()),
        };
        GroupVersionKind::gvk(group, version, &self.kind)
    }

    /// The coordinates of an object as written (or an inventory record, which has the same
    /// fields at the top: `apiVersion`, `kind`, `namespace`, `name`).
    fn of(v: &Value) -> Option<ObjectRef> {
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let meta = |k: &str| {
            v.get("metadata")
                .and_then(|m| m.get(k))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        Some(ObjectRef {
            api_version: text("apiVersion")?,
            kind: text("kind")?,
            namespace: meta("namespace").or_else(|| text("namespace")),
            name: meta("name").or_else(|| text("name"))?,
        })
    }

    fn describe(&self) -> String {
        self.key()
    }
}

/// What observing saw of one manifest: its objects, by key.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// The API server.
    pub server: String,
    /// The objects that carry the manifest's address and this ledger's lineage.
    pub objects: BTreeMap<String, ObjectRef>,
}

/// One listed object.
struct Seen {
    r: ObjectRef,
    meta: ObjectMeta,
}

impl Seen {
    fn label(&self, k: &str) -> Option<&str> {
        self.meta.labels.as_ref()?.get(k).map(String::as_str)
    }
    fn annotation(&self, k: &str) -> Option<&str> {
        self.meta.annotations.as_ref()?.get(k).map(String::as_str)
    }
}

/// One list: (group, version, plural, namespace).
type ListKey = (String, String, String, Option<String>);

/// The label selector every list uses.
fn selector() -> String {
    format!("{}={}", MANAGED_BY.0, MANAGED_BY.1)
}

/// The API of an object's kind, or `None` when the cluster does not serve it (its
/// CustomResourceDefinition is not installed: no object of it can exist). Refuses an
/// object whose namespace does not fit its kind's scope.
fn api_for(
    cluster: &Cluster,
    discovery: &Discovery,
    r: &ObjectRef,
) -> Result<Option<(Api<DynamicObject>, ApiResource)>, ProviderError> {
    let Some((ar, caps)) = discovery.resolve_gvk(&r.gvk()) else {
        return Ok(None);
    };
    let api = match (caps.scope == Scope::Namespaced, &r.namespace) {
        (true, Some(ns)) => Api::namespaced_with(cluster.client.clone(), ns, &ar),
        (false, None) => Api::all_with(cluster.client.clone(), &ar),
        (true, None) => {
            return Err(ProviderError::msg(format!(
                "{} is namespaced on {}: write its `metadata.namespace`",
                r.describe(),
                cluster.server
            )));
        }
        (false, Some(ns)) => {
            return Err(ProviderError::msg(format!(
                "{} is cluster-scoped on {}: remove `metadata.namespace: {ns}`",
                r.describe(),
                cluster.server
            )));
        }
    };
    Ok(Some((api, ar)))
}

/// The cluster's discovery, read again once when one of `refs` is not in it (a
/// CustomResourceDefinition may have been installed since it was read).
async fn discovery_for(
    cluster: &Cluster,
    options: &KubeOptions,
    refs: &[&ObjectRef],
) -> Result<std::sync::Arc<Discovery>, ProviderError> {
    let d = cluster.discovery(false, options.discovery_max_age).await?;
    if refs.iter().all(|r| d.resolve_gvk(&r.gvk()).is_some()) {
        return Ok(d);
    }
    cluster.discovery(true, options.discovery_max_age).await
}

/// The objects of each manifest of `targets` on `cluster`, each manifest with what was seen
/// of it; a manifest with no object on the cluster is left out (absent). Lists: one
/// metadata-only list per (resource type, namespace), labelled `managed-by=provisioner`.
pub(super) async fn observe(
    cluster: &Cluster,
    options: &KubeOptions,
    ledger: &Ledger,
    targets: &[&Target<'_>],
) -> Result<Vec<(LiveObject, Observed)>, ProviderError> {
    struct Want {
        ids: BTreeSet<String>,
        id: String,
        desired: BTreeMap<String, ObjectRef>,
        recorded: BTreeMap<String, Value>,
    }
    let wants: Vec<Want> = targets
        .iter()
        .map(|t| {
            let desired = t
                .desired
                .and_then(|r| r.spec_json.get(DOCUMENTS))
                .and_then(Value::as_array)
                .map(|docs| {
                    docs.iter()
                        .filter_map(ObjectRef::of)
                        .map(|r| (r.key(), r))
                        .collect()
                })
                .unwrap_or_default();
            let recorded = t
                .entry
                .and_then(|e| e.attributes.get("inventory"))
                .and_then(Value::as_array)
                .map(|records| {
                    records
                        .iter()
                        .filter_map(|v| Some((ObjectRef::of(v)?.key(), v.clone())))
                        .collect()
                })
                .unwrap_or_default();
            let mut ids = BTreeSet::from([t.address.to_string()]);
            if let Some(e) = t.entry {
                ids.insert(e.id.clone());
            }
            Want {
                ids,
                id: t
                    .entry
                    .map(|e| e.id.clone())
                    .unwrap_or_else(|| t.address.to_string()),
                desired,
                recorded,
            }
        })
        .collect();
    let refs: Vec<ObjectRef> = wants
        .iter()
        .flat_map(|w| {
            w.desired
                .values()
                .cloned()
                .chain(w.recorded.values().filter_map(ObjectRef::of))
        })
        .collect();
    let discovery = discovery_for(cluster, options, &refs.iter().collect::<Vec<_>>()).await?;
    // One list per (group, version, plural, namespace).
    let mut lists: BTreeMap<ListKey, (ApiResource, Option<String>)> = BTreeMap::new();
    for r in &refs {
        let Some((ar, caps)) = discovery.resolve_gvk(&r.gvk()) else {
            continue;
        };
        let ns = match (caps.scope == Scope::Namespaced, &r.namespace) {
            (true, Some(ns)) => Some(ns.clone()),
            (false, _) => None,
            (true, None) => continue,
        };
        lists.insert(
            (
                ar.group.clone(),
                ar.version.clone(),
                ar.plural.clone(),
                ns.clone(),
            ),
            (ar, ns),
        );
    }
    let lp = ListParams::default().labels(&selector());
    let answers = crate::providers::read_each(
        options.lists_in_flight,
        lists.values().map(|(ar, ns)| {
            let lp = lp.clone();
            async move {
                let api: Api<DynamicObject> = match ns {
                    Some(ns) => Api::namespaced_with(cluster.client.clone(), ns, ar),
                    None => Api::all_with(cluster.client.clone(), ar),
                };
                (ar, ns, api.list_metadata(&lp).await)
            }
        }),
    )
    .await;
    let mut seen: BTreeMap<String, Seen> = BTreeMap::new();
    for (ar, ns, answer) in answers {
        let list = answer.map_err(|e| {
            kube_error(
                &format!(
                    "listing {}{}",
                    ar.plural,
                    ns.as_deref()
                        .map(|n| format!(" in {n}"))
                        .unwrap_or_default()
                ),
                Failure::Transient,
                e,
            )
        })?;
        for item in list.items {
            let Some(name) = item.metadata.name.clone() else {
                continue;
            };
            let r = ObjectRef {
                api_version: ar.api_version.clone(),
                kind: ar.kind.clone(),
                namespace: item.metadata.namespace.clone(),
                name,
            };
            seen.insert(
                r.key(),
                Seen {
                    r,
                    meta: item.metadata,
                },
            );
        }
    }
    let lineage = ledger.lineage.as_str();
    let mut out = Vec::new();
    for w in &wants {
        let mut fields = Map::new();
        let mut observed = Observed {
            server: cluster.server.clone(),
            objects: BTreeMap::new(),
        };
        for (key, s) in &seen {
            let ours = s.label(LINEAGE_LABEL) == Some(lineage)
                && s.annotation(ADDRESS_ANNOTATION)
                    .is_some_and(|a| w.ids.contains(a));
            if ours {
                observed.objects.insert(key.clone(), s.r.clone());
                fields.insert(
                    key.clone(),
                    Value::String(live_value(s, w.recorded.get(key))),
                );
            } else if w.desired.contains_key(key) {
                // Desired here, but made for another resource or ledger.
                let whose = match (s.label(LINEAGE_LABEL), s.annotation(ADDRESS_ANNOTATION)) {
                    (Some(l), _) if l != lineage => {
                        format!("owned by another provisioner ledger (lineage {l})")
                    }
                    (_, Some(a)) => format!("applied by {a}"),
                    _ => "labelled managed-by=provisioner by someone else".to_string(),
                };
                fields.insert(key.clone(), Value::String(whose));
            }
        }
        if fields.is_empty() {
            continue;
        }
        let mut object = LiveObject {
            id: w.id.clone(),
            tags: vec![lineage_tag(lineage)],
            ..Default::default()
        };
        object
            .fields
            .insert("objects".into(), Value::Object(fields));
        object
            .attributes
            .insert("server".into(), Value::String(cluster.server.clone()));
        out.push((object, observed));
    }
    Ok(out)
}

/// What the plan shows of a live object: the hash provisioner applied, and what happened
/// to it since.
fn live_value(s: &Seen, recorded: Option<&Value>) -> String {
    let applied = s
        .annotation(APPLIED_ANNOTATION)
        .unwrap_or("(no applied hash)")
        .to_string();
    let mut notes = Vec::new();
    if let Some(why) = recorded.and_then(|r| changed_outside(&s.meta, r)) {
        notes.push(why);
    }
    if s.meta.deletion_timestamp.is_some() {
        notes.push("being deleted".to_string());
    }
    if notes.is_empty() {
        applied
    } else {
        format!("{applied} ({})", notes.join("; "))
    }
}

/// Whether the object changed since provisioner's last write, and who changed it: its
/// `generation` (kinds that keep one count only changes of what they hold, not their
/// status) or else its `resourceVersion` moved from what the ledger recorded; the author is
/// the field manager of the newest entry of `managedFields` other than provisioner's own,
/// status writes left out.
pub fn changed_outside(meta: &ObjectMeta, recorded: &Value) -> Option<String> {
    let recorded_generation = recorded.get("generation").and_then(Value::as_i64);
    let changed = match (recorded_generation, meta.generation) {
        (Some(before), Some(now)) if now > 0 => before != now,
        _ => {
            let before = recorded.get("resourceVersion").and_then(Value::as_str);
            before.is_some() && before != meta.resource_version.as_deref()
        }
    };
    if !changed {
        return None;
    }
    let author = meta
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.manager.as_deref() != Some(FIELD_MANAGER))
        .filter(|m| m.subresource.as_deref().unwrap_or("").is_empty())
        .max_by_key(|m| time_text(m.time.as_ref()));
    Some(match author {
        Some(m) => format!(
            "changed outside provisioner by {} ({}) at {}",
            m.manager.as_deref().unwrap_or("an unnamed manager"),
            m.operation.as_deref().unwrap_or("?"),
            time_text(m.time.as_ref())
        ),
        None => "changed outside provisioner".to_string(),
    })
}

/// A Kubernetes time as RFC 3339 text (empty when absent).
fn time_text<T: serde::Serialize>(t: Option<&T>) -> String {
    t.and_then(|t| serde_json::to_value(t).ok())
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// One object to apply.
struct Wanted {
    r: ObjectRef,
    hash: String,
    body: Value,
}

/// What one apply needs to know.
struct Ctx<'a> {
    cluster: &'a Cluster,
    address: String,
    ids: BTreeSet<String>,
    lineage: &'a str,
    /// Objects known to be this manifest's (seen, or recorded).
    mine: BTreeSet<String>,
    take_over: bool,
}

/// The ids an object of this change may carry in its address annotation: the address, and
/// the cloud id the ledger knows it by (the address it was created under).
fn ids_of(req: &ApplyRequest<'_>) -> BTreeSet<String> {
    let mut ids = BTreeSet::from([req.address.to_string()]);
    if let Some(id) = req.cloud_id {
        ids.insert(id.to_string());
    }
    ids
}

/// The objects recorded in the ledger for this manifest.
fn recorded_refs(req: &ApplyRequest<'_>) -> BTreeMap<String, ObjectRef> {
    req.recorded
        .and_then(|a| a.get("inventory"))
        .and_then(Value::as_array)
        .map(|records| {
            records
                .iter()
                .filter_map(ObjectRef::of)
                .map(|r| (r.key(), r))
                .collect()
        })
        .unwrap_or_default()
}

/// Applies a manifest: CustomResourceDefinitions and Namespaces first, waited until
/// established and active; then the rest, in file order; then what left the file is
/// deleted (prune) or orphaned. Returns the inventory for the ledger.
pub(super) async fn apply(
    p: &KubeProvider,
    cluster: &Cluster,
    req: &ApplyRequest<'_>,
    seen: Option<&Observed>,
) -> Result<Applied, ProviderError> {
    let spec = req
        .spec
        .ok_or_else(|| ProviderError::msg(format!("{}: no spec to apply", req.address)))?;
    let wanted: Vec<Wanted> = spec
        .get(DOCUMENTS)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|body| {
            Some(Wanted {
                r: ObjectRef::of(body)?,
                hash: object_hash(body),
                body: body.clone(),
            })
        })
        .collect();
    if wanted.is_empty() {
        return Err(ProviderError::msg(format!(
            "{}: the manifest holds no object",
            req.address
        )));
    }
    let recorded = recorded_refs(req);
    let mut previous = recorded.clone();
    if let Some(s) = seen.filter(|s| s.server == cluster.server) {
        previous.extend(s.objects.clone());
    }
    let ctx = Ctx {
        cluster,
        address: req.address.to_string(),
        ids: ids_of(req),
        lineage: req.lineage,
        mine: previous.keys().cloned().collect(),
        take_over: spec
            .get("take_over")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    };
    let (first, rest): (Vec<&Wanted>, Vec<&Wanted>) = wanted
        .iter()
        .partition(|w| first_stage(&w.r.api_version, &w.r.kind));
    let options = &p.options;
    let mut inventory = Vec::new();
    if !first.is_empty() {
        let refs: Vec<&ObjectRef> = first.iter().map(|w| &w.r).collect();
        let discovery = discovery_for(cluster, options, &refs).await?;
        for w in &first {
            inventory.push(apply_one(&ctx, &discovery, w).await?);
        }
        wait_established(cluster, options, &first).await?;
    }
    if !rest.is_empty() {
        let refs: Vec<&ObjectRef> = rest.iter().map(|w| &w.r).collect();
        let discovery = if first.iter().any(|w| w.r.kind == "CustomResourceDefinition") {
            served(cluster, options, &refs).await?
        } else {
            discovery_for(cluster, options, &refs).await?
        };
        for w in &rest {
            inventory.push(apply_one(&ctx, &discovery, w).await?);
        }
    }
    // What left the file.
    let desired: BTreeSet<String> = wanted.iter().map(|w| w.r.key()).collect();
    let gone: Vec<ObjectRef> = previous
        .into_iter()
        .filter(|(k, _)| !desired.contains(k))
        .map(|(_, r)| r)
        .collect();
    let mut orphaned: BTreeSet<String> = req
        .recorded
        .and_then(|a| a.get("orphaned"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .filter(|k| !desired.contains(k))
        .collect();
    if !gone.is_empty() {
        if p.prune(Some(spec)) {
            remove(&ctx, options, gone).await?;
        } else {
            let discovery = cluster.discovery(false, options.discovery_max_age).await?;
            for r in gone {
                orphan(&ctx, &discovery, &r).await?;
                orphaned.insert(r.key());
            }
        }
    }
    let mut attributes = BTreeMap::new();
    attributes.insert("server".into(), Value::String(cluster.server.clone()));
    if let Some(source) = spec.get("cluster").and_then(Source::from_spec) {
        attributes.insert("cluster_source".into(), source.to_json());
    }
    attributes.insert("inventory".into(), Value::Array(inventory));
    if !orphaned.is_empty() {
        attributes.insert(
            "orphaned".into(),
            Value::Array(orphaned.into_iter().map(Value::String).collect()),
        );
    }
    Ok(Applied {
        id: ctx.address.clone(),
        attributes,
        ..Applied::default()
    })
}

/// The discovery once every kind of `refs` is served, read again every `poll_every` for up
/// to `wait`: a CustomResourceDefinition's API may be served a moment after it is
/// `Established`.
async fn served(
    cluster: &Cluster,
    options: &KubeOptions,
    refs: &[&ObjectRef],
) -> Result<std::sync::Arc<Discovery>, ProviderError> {
    let deadline = tokio::time::Instant::now() + options.wait;
    loop {
        let d = cluster.discovery(true, options.discovery_max_age).await?;
        let missing: Vec<&&ObjectRef> = refs
            .iter()
            .filter(|r| d.resolve_gvk(&r.gvk()).is_none())
            .collect();
        if missing.is_empty() {
            return Ok(d);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ProviderError::msg(format!(
                "{} does not serve {} (after {} s): is its CustomResourceDefinition in the manifest, or installed?",
                cluster.server,
                missing
                    .iter()
                    .map(|r| format!("{} {}", r.api_version, r.kind))
                    .collect::<Vec<_>>()
                    .join(", "),
                options.wait.as_secs()
            )));
        }
        tokio::time::sleep(options.poll_every).await;
    }
}

/// Applies one object with server-side apply (forced, field manager `provisioner`), after
/// checking that an object of that name which is not known to be this manifest's may be
/// taken: never one of another ledger, one nobody labelled only with `take_over`.
async fn apply_one(
    ctx: &Ctx<'_>,
    discovery: &Discovery,
    w: &Wanted,
) -> Result<Value, ProviderError> {
    let key = w.r.key();
    let (api, _) = api_for(ctx.cluster, discovery, &w.r)?.ok_or_else(|| {
        ProviderError::msg(format!(
            "{} does not serve {} {}: is its CustomResourceDefinition in the manifest, or installed?",
            ctx.cluster.server, w.r.api_version, w.r.kind
        ))
    })?;
    if !ctx.mine.contains(&key) {
        let existing = api
            .get_metadata_opt(&w.r.name)
            .await
            .map_err(|e| kube_error(&format!("reading {key}"), Failure::Transient, e))?;
        if let Some(m) = existing {
            let label = |k: &str| m.metadata.labels.as_ref().and_then(|l| l.get(k)).cloned();
            let address = m
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ADDRESS_ANNOTATION))
                .cloned();
            match (label(LINEAGE_LABEL), address) {
                (Some(l), Some(a)) if l == ctx.lineage && ctx.ids.contains(&a) => {}
                (Some(l), _) if l != ctx.lineage => {
                    return Err(ProviderError::msg(format!(
                        "{key} exists and belongs to another provisioner ledger (lineage {l}): not taken over"
                    )));
                }
                (Some(_), Some(a)) => {
                    return Err(ProviderError::msg(format!(
                        "{key} exists and is applied by {a}: two resources cannot own one object"
                    )));
                }
                _ if ctx.take_over => {}
                _ => {
                    return Err(ProviderError::msg(format!(
                        "{key} exists and was not made by provisioner: set `take_over = true` on {} to take it over (provisioner becomes its field manager), or delete it",
                        ctx.address
                    )));
                }
            }
        }
    }
    let body = labelled(&w.body, ctx.lineage, &ctx.address, &w.hash);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let applied = api
        .patch(&w.r.name, &params, &Patch::Apply(&body))
        .await
        .map_err(|e| kube_error(&format!("applying {key}"), Failure::Ambiguous, e))?;
    Ok(record(&w.r, &applied.metadata))
}

/// The object as sent: provisioner's labels and annotations on, and the fields a read
/// object carries that an apply must not (`resourceVersion` would make it conditional).
fn labelled(body: &Value, lineage: &str, address: &str, hash: &str) -> Value {
    let mut body = body.clone();
    let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) else {
        return body;
    };
    for k in [
        "resourceVersion",
        "uid",
        "creationTimestamp",
        "managedFields",
        "generation",
        "selfLink",
    ] {
        meta.remove(k);
    }
    let labels = meta
        .entry("labels")
        .or_insert_with(|| Value::Object(Map::new()));
    if !labels.is_object() {
        *labels = Value::Object(Map::new());
    }
    if let Some(l) = labels.as_object_mut() {
        l.insert(MANAGED_BY.0.into(), Value::String(MANAGED_BY.1.into()));
        if !lineage.is_empty() {
            l.insert(LINEAGE_LABEL.into(), Value::String(lineage.into()));
        }
    }
    let annotations = meta
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if !annotations.is_object() {
        *annotations = Value::Object(Map::new());
    }
    if let Some(a) = annotations.as_object_mut() {
        a.insert(ADDRESS_ANNOTATION.into(), Value::String(address.into()));
        a.insert(APPLIED_ANNOTATION.into(), Value::String(hash.into()));
    }
    body
}

/// The ledger's record of an applied object: its coordinates, uid, generation and
/// resourceVersion (what later observations compare).
fn record(r: &ObjectRef, meta: &ObjectMeta) -> Value {
    let mut v = json!({
        "apiVersion": r.api_version,
        "kind": r.kind,
        "name": r.name,
    });
    if let Some(ns) = &r.namespace {
        v["namespace"] = json!(ns);
    }
    if let Some(uid) = &meta.uid {
        v["uid"] = json!(uid);
    }
    if let Some(g) = meta.generation.filter(|g| *g > 0) {
        v["generation"] = json!(g);
    }
    if let Some(rv) = &meta.resource_version {
        v["resourceVersion"] = json!(rv);
    }
    v
}

/// Waits until every CustomResourceDefinition of `first` is `Established` and every
/// Namespace `Active` (Kubernetes docs: "Create a CustomResourceDefinition", the
/// `Established` condition; "Namespaces", `status.phase`).
async fn wait_established(
    cluster: &Cluster,
    options: &KubeOptions,
    first: &[&Wanted],
) -> Result<(), ProviderError> {
    let crds: Api<CustomResourceDefinition> = Api::all(cluster.client.clone());
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    let deadline = tokio::time::Instant::now() + options.wait;
    let mut waiting: Vec<&ObjectRef> = first.iter().map(|w| &w.r).collect();
    loop {
        let mut still = Vec::new();
        for r in waiting {
            let ready = match r.kind.as_str() {
                "CustomResourceDefinition" => crds
                    .get_opt(&r.name)
                    .await
                    .map_err(|e| {
                        kube_error(&format!("reading {}", r.key()), Failure::Transient, e)
                    })?
                    .and_then(|c| c.status)
                    .and_then(|s| s.conditions)
                    .is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c.type_ == "Established" && c.status == "True")
                    }),
                "Namespace" => namespaces
                    .get_opt(&r.name)
                    .await
                    .map_err(|e| {
                        kube_error(&format!("reading {}", r.key()), Failure::Transient, e)
                    })?
                    .and_then(|n| n.status)
                    .and_then(|s| s.phase)
                    .is_some_and(|p| p == "Active"),
                _ => true,
            };
            if !ready {
                still.push(r);
            }
        }
        if still.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ProviderError::new(
                Failure::Transient,
                format!(
                    "not established after {} s: {} (the next pass applies the rest)",
                    options.wait.as_secs(),
                    still.iter().map(|r| r.key()).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        waiting = still;
        tokio::time::sleep(options.poll_every).await;
    }
}

/// True for the kinds deleted after the workloads and before the
/// CustomResourceDefinitions: what grants the workloads their access.
fn is_rbac(r: &ObjectRef) -> bool {
    r.api_version.starts_with("rbac.authorization.k8s.io/")
        || (r.api_version == "v1" && r.kind == "ServiceAccount")
}

/// The order objects are deleted in: workloads and everything else (in reverse of the
/// order given), then RBAC, then CustomResourceDefinitions, then Namespaces.
pub fn delete_stages(objects: Vec<ObjectRef>) -> Vec<Vec<ObjectRef>> {
    let mut stages: [Vec<ObjectRef>; 4] = Default::default();
    for r in objects.into_iter().rev() {
        let stage = match (r.api_version.as_str(), r.kind.as_str()) {
            (_, "Namespace") if r.api_version == "v1" => 3,
            (v, "CustomResourceDefinition") if v.starts_with("apiextensions.k8s.io/") => 2,
            _ if is_rbac(&r) => 1,
            _ => 0,
        };
        stages[stage].push(r);
    }
    stages.into_iter().filter(|s| !s.is_empty()).collect()
}

/// Deletes objects, stage by stage ([`delete_stages`]), each only while its address
/// annotation still names this manifest (an object another resource has taken is left
/// alone); a 404 is done. Every stage but the Namespaces' is waited until gone: a
/// Namespace is emptied by the namespace controller, which takes its time (and does not
/// run on the test API server), so a deleted Namespace is left terminating.
async fn remove(
    ctx: &Ctx<'_>,
    options: &KubeOptions,
    objects: Vec<ObjectRef>,
) -> Result<(), ProviderError> {
    for stage in delete_stages(objects) {
        let refs: Vec<&ObjectRef> = stage.iter().collect();
        let discovery = discovery_for(ctx.cluster, options, &refs).await?;
        let mut deleted = Vec::new();
        for r in &stage {
            let Some((api, _)) = api_for(ctx.cluster, &discovery, r)? else {
                // Its kind is not served any more (its CRD went): it is gone with it.
                continue;
            };
            if !still_ours(ctx, &api, r).await? {
                continue;
            }
            match api.delete(&r.name, &DeleteParams::background()).await {
                Ok(_) => deleted.push((api, r)),
                // Already deleted: done.
                Err(e) if status_of(&e) == Some(404) => {}
                Err(e) => {
                    return Err(kube_error(
                        &format!("deleting {}", r.key()),
                        Failure::Ambiguous,
                        e,
                    ));
                }
            }
        }
        let deadline = tokio::time::Instant::now() + options.wait;
        for (api, r) in deleted {
            if r.kind == "Namespace" {
                continue;
            }
            loop {
                match api.get_metadata_opt(&r.name).await {
                    Ok(None) => break,
                    Ok(Some(_)) if tokio::time::Instant::now() < deadline => {
                        tokio::time::sleep(options.poll_every).await;
                    }
                    Ok(Some(_)) => {
                        return Err(ProviderError::new(
                            Failure::Transient,
                            format!(
                                "{} is still being deleted after {} s (a finalizer holds it): the next pass looks again",
                                r.key(),
                                options.wait.as_secs()
                            ),
                        ));
                    }
                    Err(e) => {
                        return Err(kube_error(
                            &format!("reading {}", r.key()),
                            Failure::Transient,
                            e,
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Whether the object exists and still carries this manifest's address (and this ledger's
/// lineage): what may be deleted or orphaned.
async fn still_ours(
    ctx: &Ctx<'_>,
    api: &Api<DynamicObject>,
    r: &ObjectRef,
) -> Result<bool, ProviderError> {
    let Some(m) = api
        .get_metadata_opt(&r.name)
        .await
        .map_err(|e| kube_error(&format!("reading {}", r.key()), Failure::Transient, e))?
    else {
        return Ok(false);
    };
    let lineage = m
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(LINEAGE_LABEL))
        .map(String::as_str);
    let address = m
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ADDRESS_ANNOTATION));
    Ok(lineage == Some(ctx.lineage) && address.is_some_and(|a| ctx.ids.contains(a)))
}

/// Orphans an object: removes provisioner's labels and annotations (a merge patch), so no
/// later observation lists it; the object itself stays.
async fn orphan(ctx: &Ctx<'_>, discovery: &Discovery, r: &ObjectRef) -> Result<(), ProviderError> {
    let Some((api, _)) = api_for(ctx.cluster, discovery, r)? else {
        return Ok(());
    };
    if !still_ours(ctx, &api, r).await? {
        return Ok(());
    }
    let patch = json!({
        "metadata": {
            "labels": { MANAGED_BY.0: null, LINEAGE_LABEL: null },
            "annotations": { ADDRESS_ANNOTATION: null, APPLIED_ANNOTATION: null },
        }
    });
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    match api.patch(&r.name, &params, &Patch::Merge(&patch)).await {
        Ok(_) => Ok(()),
        Err(e) if status_of(&e) == Some(404) => Ok(()),
        Err(e) => Err(kube_error(
            &format!("orphaning {}", r.key()),
            Failure::Ambiguous,
            e,
        )),
    }
}

/// Deletes a manifest's objects: those the ledger records and those observing saw, in
/// reverse ([`delete_stages`]).
pub(super) async fn delete(
    p: &KubeProvider,
    cluster: &Cluster,
    req: &ApplyRequest<'_>,
    seen: Option<&Observed>,
) -> Result<(), ProviderError> {
    let mut objects = recorded_refs(req);
    if let Some(s) = seen.filter(|s| s.server == cluster.server) {
        objects.extend(s.objects.clone());
    }
    let ctx = Ctx {
        cluster,
        address: req.address.to_string(),
        ids: ids_of(req),
        lineage: req.lineage,
        mine: objects.keys().cloned().collect(),
        take_over: false,
    };
    // The order objects were recorded in (file order) is the inventory's.
    let order: Vec<ObjectRef> = req
        .recorded
        .and_then(|a| a.get("inventory"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(ObjectRef::of)
        .collect();
    let mut ordered: Vec<ObjectRef> = Vec::new();
    for r in order {
        if objects.remove(&r.key()).is_some() {
            ordered.push(r);
        }
    }
    ordered.extend(objects.into_values());
    remove(&ctx, &p.options, ordered).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(api_version: &str, kind: &str, name: &str) -> ObjectRef {
        ObjectRef {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: None,
            name: name.into(),
        }
    }

    #[test]
    fn deletes_go_workloads_rbac_crds_then_namespaces() {
        let stages = delete_stages(vec![
            r("v1", "Namespace", "ns"),
            r("apiextensions.k8s.io/v1", "CustomResourceDefinition", "crd"),
            r("v1", "ServiceAccount", "sa"),
            r("rbac.authorization.k8s.io/v1", "ClusterRole", "role"),
            r("apps/v1", "Deployment", "a"),
            r("v1", "ConfigMap", "b"),
        ]);
        let names: Vec<Vec<&str>> = stages
            .iter()
            .map(|s| s.iter().map(|r| r.name.as_str()).collect())
            .collect();
        assert_eq!(
            names,
            [vec!["b", "a"], vec!["role", "sa"], vec!["crd"], vec!["ns"]]
        );
    }

    #[test]
    fn an_apply_carries_the_labels_and_drops_what_a_read_object_holds() {
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "n", "resourceVersion": "7", "labels": {"app": "x"}}});
        let sent = labelled(&body, "lineage-1", "kubernetes.manifest.m", "sha256:00");
        assert_eq!(sent["metadata"]["labels"]["app"], "x");
        assert_eq!(sent["metadata"]["labels"][MANAGED_BY.0], "provisioner");
        assert_eq!(sent["metadata"]["labels"][LINEAGE_LABEL], "lineage-1");
        assert_eq!(
            sent["metadata"]["annotations"][APPLIED_ANNOTATION],
            "sha256:00"
        );
        assert!(sent["metadata"].get("resourceVersion").is_none());
    }

    fn meta(generation: Option<i64>, rv: &str, managers: Value) -> ObjectMeta {
        serde_json::from_value(json!({
            "generation": generation, "resourceVersion": rv, "managedFields": managers,
        }))
        .unwrap()
    }

    #[test]
    fn a_moved_generation_is_a_change_by_the_newest_other_manager() {
        let managers = json!([
            {"manager": "provisioner", "operation": "Apply", "time": "2026-01-01T00:00:00Z"},
            {"manager": "kubectl-edit", "operation": "Update", "time": "2026-01-02T00:00:00Z"},
            {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status", "time": "2026-01-03T00:00:00Z"},
        ]);
        let recorded = json!({"generation": 1, "resourceVersion": "5"});
        let why = changed_outside(&meta(Some(2), "9", managers.clone()), &recorded).unwrap();
        assert_eq!(
            why,
            "changed outside provisioner by kubectl-edit (Update) at 2026-01-02T00:00:00Z"
        );
        // Only the status moved: the generation did not.
        assert_eq!(
            changed_outside(&meta(Some(1), "9", managers), &recorded),
            None
        );
        // A kind without a generation: its resourceVersion.
        let recorded = json!({"resourceVersion": "5"});
        assert!(changed_outside(&meta(None, "6", json!([])), &recorded).is_some());
        assert!(changed_outside(&meta(None, "5", json!([])), &recorded).is_none());
    }
}
