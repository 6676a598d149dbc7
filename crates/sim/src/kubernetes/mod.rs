//! A stateful simulator of the Kubernetes API as kube-apiserver v1.35 serves it to
//! provisioner's Kubernetes provider, held to a real kube-apiserver by the differential test
//! `tests/integration/sim_kubernetes.rs` (the same requests to both, answers compared).
//!
//! Served: `/version`; discovery, aggregated (`/api`, `/apis` with `Accept:
//! application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList`, what kube-rs 5's
//! `Discovery::run_aggregated` asks for) and legacy (`APIVersions`, `APIGroupList`,
//! `APIResourceList`) (Kubernetes docs, "Discovery API"); Namespaces, ConfigMaps, Secrets,
//! ServiceAccounts, Services, Deployments, the four RBAC kinds, CustomResourceDefinitions, and
//! the custom resources of every established CustomResourceDefinition (namespaced or
//! cluster-scoped, with `/status` where the version declares it); GET, LIST (label and field
//! selectors, metadata-only answers for `Accept: ...;as=PartialObjectMetadata[List]`), POST,
//! PUT, PATCH (apply, merge, JSON, strategic merge), DELETE, `dryRun=All`.
//!
//! Server-side apply follows the Kubernetes docs "Server-Side Apply" and the code it names,
//! kubernetes-sigs/structured-merge-diff ([`fields`]) and
//! `k8s.io/apiserver/pkg/endpoints/handlers/fieldmanager` (`managedFields` entries keyed by
//! manager, operation, subresource and, for updates, apiVersion; `stripMeta`; reset fields;
//! the conflict message and causes of `internal/conflict.go`). Writes follow each kind's
//! strategy ([`rules`]): generation, defaults, status resets, validation. Every answer that
//! is not an object is a `Status` as `k8s.io/apimachinery/pkg/api/errors` builds it.
//!
//! What kube-controller-manager would do is done lazily, at the start of each request:
//! the CustomResourceDefinition controllers of the apiserver itself (names accepted,
//! `Established`; a deleted definition's objects removed, then the definition), and, when
//! [`KubeConfig::controllers`] is on, the namespace controller (a Terminating Namespace's
//! objects deleted, then the Namespace) and the garbage collector's part in deletion (the
//! `orphan` and `foregroundDeletion` finalizers released). The test apiserver runs no
//! controller manager: the differential test turns them off.
//!
//! Simpler than the apiserver: no watches, no pagination (`limit` is ignored), no
//! admission webhooks or RBAC (one bearer token is everything), no conversion between
//! versions of a custom resource (strategy `None` only), no OpenAPI defaulting or validation
//! of custom resources beyond structural pruning, no ownerReference-driven garbage
//! collection, YAML read by serde-saphyr (YAML 1.2) where the apiserver's reader is YAML 1.1,
//! `managedFields` sent by a client ignored, unknown fields of built-in kinds kept (the
//! apiserver refuses or drops them), only the kinds above (anything else is a 404), no
//! subresource but `status` (nor in discovery: no `finalize`, `token`, `proxy`, `scale`), and
//! compact JSON only (the apiserver indents an error whose `Accept` it cannot meet, such as
//! `as=PartialObjectMetadata`: the same value).

mod fields;
mod patch;
mod rules;
mod schema;
mod select;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use self::fields::{Path, Pe, Set};
use self::schema::Resource;
use super::{Faults, Running, now, parse_query, serve_api, uuid};

/// The largest request body the apiserver reads (`MaxRequestBodyBytes`, 3 MiB); a larger
/// one is refused with 413.
const MAX_BODY: usize = 3 * 1024 * 1024;

/// How the simulator behaves.
#[derive(Clone, Debug)]
pub struct KubeConfig {
    /// The only bearer token it accepts.
    pub token: String,
    /// Plays kube-controller-manager's part in deletion (the namespace controller, the
    /// garbage collector's finalizers). Off, deleted Namespaces stay Terminating, as on an
    /// apiserver without a controller manager.
    pub controllers: bool,
}

impl Default for KubeConfig {
    fn default() -> Self {
        KubeConfig {
            token: "kubesim-token".into(),
            controllers: true,
        }
    }
}

/// An answer: status code and JSON body.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// HTTP status.
    pub code: u16,
    /// The object, list or `Status`.
    pub body: Value,
}

impl Answer {
    fn ok(body: Value) -> Answer {
        Answer { code: 200, body }
    }
}

/// An object's storage key: (group, plural, namespace, name).
type Key = (String, String, String, String);

/// Everything the simulated cluster holds.
#[derive(Debug, Default)]
pub struct KubeState {
    /// The last resourceVersion given.
    rv: u64,
    /// Every object, by key, as GET returns it.
    objects: BTreeMap<Key, Value>,
    /// Where the next Service's cluster IP comes from.
    next_ip: u32,
}

struct Shared {
    config: KubeConfig,
    state: Mutex<KubeState>,
    builtins: Vec<Resource>,
}

/// A running simulator.
pub struct KubeSim {
    /// The server (stops when dropped).
    pub running: Running,
    /// Fault injection and the request log.
    pub faults: Faults,
    shared: Arc<Shared>,
}

/// What a write does.
enum How {
    Create(Value),
    Replace(Value),
    Merge(Value),
    Json(Value),
    Strategic(Value),
    Apply { config: Value, force: bool },
}

/// Where a request goes.
struct Target {
    r: Resource,
    namespace: String,
    name: Option<String>,
    sub: Option<String>,
}

fn status(code: u16, reason: &str, message: &str, details: Option<Value>) -> Answer {
    let mut body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    });
    if let Some(d) = details {
        body["details"] = d;
    }
    Answer { code, body }
}

fn details(r: &Resource, name: &str) -> Value {
    let mut d = json!({"name": name, "kind": r.plural});
    if !r.group.is_empty() {
        d["group"] = json!(r.group);
    }
    d
}

fn not_found(r: &Resource, name: &str) -> Answer {
    status(
        404,
        "NotFound",
        &format!("{} \"{name}\" not found", r.qualified()),
        Some(details(r, name)),
    )
}

fn bad_request(message: &str) -> Answer {
    status(400, "BadRequest", message, None)
}

fn namespace_missing(ns: &str) -> Answer {
    status(
        404,
        "NotFound",
        &format!("namespaces \"{ns}\" not found"),
        Some(json!({"name": ns, "kind": "namespaces"})),
    )
}

fn invalid(r: &Resource, name: &str, causes: &[rules::Cause]) -> Answer {
    let text: Vec<String> = causes
        .iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect();
    let joined = if text.len() == 1 {
        text[0].clone()
    } else {
        format!("[{}]", text.join(", "))
    };
    let mut d = json!({"name": name, "kind": r.kind, "causes": causes.iter().map(|c| json!({
        "reason": c.reason, "message": c.message, "field": c.field})).collect::<Vec<_>>()});
    if !r.group.is_empty() {
        d["group"] = json!(r.group);
    }
    // The kind is qualified by its group (`Deployment.apps "x" is invalid`).
    let kind = if r.group.is_empty() {
        r.kind.clone()
    } else {
        format!("{}.{}", r.kind, r.group)
    };
    status(
        422,
        "Invalid",
        &format!("{kind} \"{name}\" is invalid: {joined}"),
        Some(d),
    )
}

/// A `managedFields` entry.
#[derive(Clone, Debug)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    subresource: String,
    time: String,
    set: Set,
}

impl Entry {
    fn read(v: &Value) -> Option<Entry> {
        Some(Entry {
            manager: v["manager"].as_str().unwrap_or("").into(),
            operation: v["operation"].as_str()?.into(),
            api_version: v["apiVersion"].as_str().unwrap_or("").into(),
            subresource: v["subresource"].as_str().unwrap_or("").into(),
            time: v["time"].as_str().unwrap_or("").into(),
            set: Set::from_fields_v1(&v["fieldsV1"]).unwrap_or_default(),
        })
    }

    fn write(&self) -> Value {
        let mut v = json!({
            "manager": self.manager, "operation": self.operation, "apiVersion": self.api_version,
            "fieldsType": "FieldsV1", "fieldsV1": self.set.to_fields_v1(),
        });
        // An applier that changed nothing gets no time (`managedFieldsUpdater.Apply`).
        if !self.time.is_empty() {
            v["time"] = json!(self.time);
        }
        if !self.subresource.is_empty() {
            v["subresource"] = json!(self.subresource);
        }
        v
    }

    /// The manager's identity (`BuildManagerIdentifier`): an applier's apiVersion is not
    /// part of it.
    fn is(&self, manager: &str, operation: &str, subresource: &str, api_version: &str) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource == subresource
            && (operation == "Apply" || self.api_version == api_version)
    }
}

fn read_entries(obj: Option<&Value>) -> Vec<Entry> {
    obj.and_then(|o| o["metadata"]["managedFields"].as_array())
        .into_iter()
        .flatten()
        .filter_map(Entry::read)
        .collect()
}

/// The sorted entries (`sortEncodedManagedFields`: operation, time, manager, apiVersion,
/// subresource).
fn write_entries(obj: &mut Value, mut entries: Vec<Entry>) {
    entries.retain(|e| !e.set.is_empty());
    entries.sort_by(|a, b| {
        (
            &a.operation,
            &a.time,
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                &b.operation,
                &b.time,
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    if let Some(m) = obj["metadata"].as_object_mut() {
        if entries.is_empty() {
            m.remove("managedFields");
        } else {
            m.insert(
                "managedFields".into(),
                Value::Array(entries.iter().map(Entry::write).collect()),
            );
        }
    }
}

/// The paths no manager owns (`NewStripMetaManager`).
fn strip_set() -> Set {
    let mut s = Set::default();
    let f = |x: &str| Pe::Field(x.into());
    s.insert(&[f("apiVersion")]);
    s.insert(&[f("kind")]);
    s.insert(&[f("metadata")]);
    for m in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
    ] {
        s.insert(&[f("metadata"), f(m)]);
    }
    s
}

/// The fields a write to `sub` does not own (`GetResetFields`): a main-resource write
/// leaves status alone where there is a status subresource; a status write leaves the
/// spec (and, for built-in kinds, labels and annotations) alone.
fn reset_fields(r: &Resource, sub: Option<&str>) -> Vec<Path> {
    let f = |x: &str| Pe::Field(x.into());
    match sub {
        Some("status") if r.custom => vec![vec![f("spec")]],
        Some("status") => vec![
            vec![f("spec")],
            vec![f("metadata"), f("labels")],
            vec![f("metadata"), f("annotations")],
        ],
        _ if r.status => vec![vec![f("status")]],
        _ => vec![],
    }
}

fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj["metadata"]["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

fn condition_true(obj: &Value, ty: &str) -> bool {
    obj["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == ty && c["status"] == "True")
}

fn version_priority(v: &str) -> (u8, u32, u32) {
    // Kubernetes version ordering: GA > beta > alpha, higher numbers first.
    let rest = v.strip_prefix('v').unwrap_or(v);
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let major: u32 = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    if tail.is_empty() {
        (3, major, 0)
    } else if let Some(n) = tail.strip_prefix("beta") {
        (2, major, n.parse().unwrap_or(0))
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, major, n.parse().unwrap_or(0))
    } else {
        (0, 0, 0)
    }
}

impl KubeState {
    fn next_rv(&mut self) -> String {
        self.rv += 1;
        self.rv.to_string()
    }

    /// The resources of the established CustomResourceDefinitions.
    fn custom_resources(&self) -> Vec<Resource> {
        let mut out = Vec::new();
        for ((g, p, _, _), crd) in &self.objects {
            if g != "apiextensions.k8s.io" || p != "customresourcedefinitions" {
                continue;
            }
            if !condition_true(crd, "Established") {
                continue;
            }
            let spec = &crd["spec"];
            let names = &spec["names"];
            for v in spec["versions"].as_array().into_iter().flatten() {
                if v["served"] != true {
                    continue;
                }
                let text = |x: &Value| x.as_str().unwrap_or("").to_string();
                let list = |x: &Value| -> Vec<String> {
                    x.as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                };
                out.push(Resource {
                    group: text(&spec["group"]),
                    version: text(&v["name"]),
                    plural: text(&names["plural"]),
                    singular: text(&names["singular"]),
                    kind: text(&names["kind"]),
                    namespaced: spec["scope"] == "Namespaced",
                    status: v["subresources"]["status"].is_object(),
                    short_names: list(&names["shortNames"]),
                    categories: list(&names["categories"]),
                    schema: schema::from_openapi(v["schema"].get("openAPIV3Schema")),
                    custom: true,
                });
            }
        }
        out
    }

    /// The controllers' work since the last request (see the module doc).
    fn reconcile(&mut self, controllers: bool) {
        // The apiserver's own CRD controllers: names accepted and established.
        let crd_keys: Vec<Key> = self
            .objects
            .keys()
            .filter(|(g, p, _, _)| g == "apiextensions.k8s.io" && p == "customresourcedefinitions")
            .cloned()
            .collect();
        for key in &crd_keys {
            let Some(crd) = self.objects.get(key).cloned() else {
                continue;
            };
            let names = crd["spec"]["names"].clone();
            let accepted = crd["status"]["acceptedNames"] == names;
            if crd["metadata"]["deletionTimestamp"].is_null()
                && (!accepted || !condition_true(&crd, "Established"))
            {
                let t = now();
                let mut next = crd.clone();
                let old_conditions = crd["status"]["conditions"].clone();
                let since = |ty: &str| {
                    old_conditions
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|c| c["type"] == ty && c["status"] == "True")
                        .map_or(json!(t), |c| c["lastTransitionTime"].clone())
                };
                next["status"]["acceptedNames"] = names;
                next["status"]["conditions"] = json!([
                    {"type": "NamesAccepted", "status": "True", "lastTransitionTime": since("NamesAccepted"),
                     "reason": "NoConflicts", "message": "no conflicts found"},
                    {"type": "Established", "status": "True", "lastTransitionTime": since("Established"),
                     "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"},
                ]);
                let r = self.builtin_crd();
                let cmp = fields::compare(&crd, &next, &r.schema)
                    .without_prefixes(&reset_fields(&r, Some("status")));
                let mut entries = read_entries(Some(&crd));
                update_entries(
                    &mut entries,
                    &cmp,
                    "kube-apiserver",
                    "status",
                    "apiextensions.k8s.io/v1",
                    &t,
                );
                write_entries(&mut next, entries);
                next["metadata"]["resourceVersion"] = json!(self.next_rv());
                self.objects.insert(key.clone(), next);
            }
        }
        // A deleted CustomResourceDefinition: its objects go, then it does.
        for key in &crd_keys {
            let Some(crd) = self.objects.get(key).cloned() else {
                continue;
            };
            if crd["metadata"]["deletionTimestamp"].is_null() {
                continue;
            }
            let group = crd["spec"]["group"].as_str().unwrap_or("").to_string();
            let plural = crd["spec"]["names"]["plural"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let theirs: Vec<Key> = self
                .objects
                .keys()
                .filter(|(g, p, _, _)| *g == group && *p == plural)
                .cloned()
                .collect();
            for k in &theirs {
                self.delete_stored(k);
            }
            let left = self
                .objects
                .keys()
                .any(|(g, p, _, _)| *g == group && *p == plural);
            if !left {
                let mut next = crd.clone();
                let rest: Vec<String> = finalizers(&crd)
                    .into_iter()
                    .filter(|f| f != CRD_CLEANUP)
                    .collect();
                if rest.is_empty() {
                    self.objects.remove(key);
                } else {
                    next["metadata"]["finalizers"] = json!(rest);
                    next["metadata"]["resourceVersion"] = json!(self.next_rv());
                    self.objects.insert(key.clone(), next);
                }
            }
        }
        if !controllers {
            return;
        }
        // The garbage collector's deletion finalizers (no dependents are followed).
        let held: Vec<Key> = self
            .objects
            .iter()
            .filter(|(_, o)| {
                !o["metadata"]["deletionTimestamp"].is_null()
                    && finalizers(o)
                        .iter()
                        .any(|f| f == "orphan" || f == "foregroundDeletion")
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in held {
            if let Some(o) = self.objects.get_mut(&k) {
                let rest: Vec<String> = finalizers(o)
                    .into_iter()
                    .filter(|f| f != "orphan" && f != "foregroundDeletion")
                    .collect();
                o["metadata"]["finalizers"] = json!(rest);
            }
            self.settle(&k);
        }
        // The namespace controller.
        let terminating: Vec<(Key, String)> = self
            .objects
            .iter()
            .filter(|((g, p, _, _), o)| {
                g.is_empty() && p == "namespaces" && !o["metadata"]["deletionTimestamp"].is_null()
            })
            .map(|(k, o)| {
                (
                    k.clone(),
                    o["metadata"]["name"].as_str().unwrap_or("").into(),
                )
            })
            .collect();
        for (nk, ns) in terminating {
            let inside: Vec<Key> = self
                .objects
                .keys()
                .filter(|(_, _, n, _)| *n == ns)
                .cloned()
                .collect();
            for k in &inside {
                self.delete_stored(k);
            }
            if self.objects.keys().any(|(_, _, n, _)| *n == ns) {
                continue;
            }
            if let Some(o) = self.objects.get_mut(&nk) {
                o["spec"]["finalizers"] = json!([]);
                if finalizers(o).is_empty() {
                    self.objects.remove(&nk);
                }
            }
        }
    }

    fn builtin_crd(&self) -> Resource {
        schema::builtins()
            .into_iter()
            .find(|r| r.kind == "CustomResourceDefinition")
            .expect("the CRD resource is built in")
    }

    /// Deletes a stored object as a controller does: marked when finalizers hold it,
    /// removed otherwise.
    fn delete_stored(&mut self, k: &Key) {
        let Some(o) = self.objects.get(k).cloned() else {
            return;
        };
        if finalizers(&o).is_empty() {
            self.objects.remove(k);
        } else if o["metadata"]["deletionTimestamp"].is_null() {
            // A namespaced object or a custom resource: never a CustomResourceDefinition.
            let mut next = o;
            rules::mark_deleting(&mut next, &now(), false);
            next["metadata"]["resourceVersion"] = json!(self.next_rv());
            self.objects.insert(k.clone(), next);
        }
    }

    /// Removes a deleted object whose finalizers are all gone.
    fn settle(&mut self, k: &Key) {
        if let Some(o) = self.objects.get(k)
            && !o["metadata"]["deletionTimestamp"].is_null()
            && finalizers(o).is_empty()
            && !(k.0.is_empty()
                && k.1 == "namespaces"
                && o["spec"]["finalizers"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty()))
        {
            self.objects.remove(k);
        }
    }
}

const CRD_CLEANUP: &str = "customresourcecleanup.apiextensions.k8s.io";

/// The Update operation's ownership (`Updater.Update` with the `managedFieldsUpdater`'s
/// "current-operation"): every other manager loses what this write changed or removed;
/// this one keeps what it had (less what was removed) and takes what it changed, its time
/// moving only when it took something.
fn update_entries(
    entries: &mut Vec<Entry>,
    cmp: &fields::Comparison,
    manager: &str,
    sub: &str,
    api_version: &str,
    time: &str,
) {
    let changed = cmp.changed();
    for e in entries.iter_mut() {
        e.set = e.set.difference(&changed).difference(&cmp.removed);
    }
    let took = !changed.is_empty();
    match entries
        .iter_mut()
        .find(|e| e.is(manager, "Update", sub, api_version))
    {
        Some(e) => {
            e.set = e.set.union(&changed);
            if took {
                e.time = time.into();
            }
        }
        None if took => entries.push(Entry {
            manager: manager.into(),
            operation: "Update".into(),
            api_version: api_version.into(),
            subresource: sub.into(),
            time: time.into(),
            set: changed,
        }),
        None => {}
    }
}

/// The conflict `Status` (`internal/conflict.go`).
fn conflict(conflicts: &[(String, Path)]) -> Answer {
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(m, p)| {
            json!({"reason": "FieldManagerConflict", "message": format!("conflict with {m}"),
                   "field": fields::display(p)})
        })
        .collect();
    let message = if conflicts.len() == 1 {
        format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            conflicts[0].0,
            fields::display(&conflicts[0].1)
        )
    } else {
        let mut by: BTreeMap<&String, Vec<String>> = BTreeMap::new();
        for (m, p) in conflicts {
            by.entry(m).or_default().push(fields::display(p));
        }
        let mut lines = Vec::new();
        for (m, ps) in by {
            lines.push(format!("conflicts with {m}:"));
            lines.extend(ps.into_iter().map(|p| format!("- {p}")));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    };
    status(409, "Conflict", &message, Some(json!({"causes": causes})))
}

/// How a manager is named in a conflict (`printManager`).
fn manager_words(e: &Entry) -> String {
    let mut s = format!("{:?}", e.manager);
    if !e.subresource.is_empty() {
        s = format!("{s} with subresource {:?}", e.subresource);
    }
    if e.operation == "Update" {
        s = format!("{s} using {}", e.api_version);
    }
    s
}

impl Shared {
    fn resources(&self, state: &KubeState) -> Vec<Resource> {
        let mut all = self.builtins.clone();
        all.extend(state.custom_resources());
        all
    }

    /// The resource at `group/version/plural`.
    fn resolve(
        &self,
        state: &KubeState,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<Resource> {
        self.resources(state)
            .into_iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
    }

    fn group_versions(&self, state: &KubeState) -> BTreeSet<(String, String)> {
        self.resources(state)
            .into_iter()
            .map(|r| (r.group, r.version))
            .collect()
    }
}

/// What a write is asked to do besides `how`.
struct WriteOptions<'a> {
    manager: &'a str,
    dry_run: bool,
}

fn key_of(r: &Resource, ns: &str, name: &str) -> Key {
    (
        r.group.clone(),
        r.plural.clone(),
        ns.to_string(),
        name.to_string(),
    )
}

/// One write: the pipeline every create, update, patch and apply goes through (the
/// handlers of `k8s.io/apiserver/pkg/endpoints/handlers`: decode, field manager, strategy,
/// validation, storage).
fn write(
    state: &mut KubeState,
    t: &Target,
    how: How,
    opts: &WriteOptions<'_>,
) -> Result<Answer, Answer> {
    let r = &t.r;
    let ns = if r.namespaced {
        t.namespace.as_str()
    } else {
        ""
    };
    let sub = t.sub.as_deref();
    let api_version = r.api_version();
    // The namespace must exist; a Terminating one takes no new object.
    let ns_obj = if r.namespaced {
        let k = (
            String::new(),
            "namespaces".to_string(),
            String::new(),
            ns.to_string(),
        );
        Some(
            state
                .objects
                .get(&k)
                .cloned()
                .ok_or_else(|| namespace_missing(ns))?,
        )
    } else {
        None
    };
    // The name: the URL's, or the body's on a create.
    let body_name = |b: &Value| b["metadata"]["name"].as_str().unwrap_or("").to_string();
    let name = match (&t.name, &how) {
        (Some(n), _) => n.clone(),
        (None, How::Create(b)) => {
            let n = body_name(b);
            if n.is_empty() {
                match b["metadata"]["generateName"].as_str() {
                    Some(prefix) => format!(
                        "{prefix}{}",
                        &uuid::Uuid::new_v4().simple().to_string()[..5]
                    ),
                    None => n,
                }
            } else {
                n
            }
        }
        (None, _) => {
            return Err(status(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
                Some(json!({})),
            ));
        }
    };
    // The body must be of this kind, and name this object.
    if let How::Create(b) | How::Replace(b) | How::Apply { config: b, .. } = &how {
        let kind = b["kind"].as_str().unwrap_or("");
        let av = b["apiVersion"].as_str().unwrap_or("");
        if (!kind.is_empty() || !av.is_empty()) && (kind != r.kind || av != api_version) {
            return Err(bad_request(&format!(
                "invalid object type: {}, Kind={kind}",
                av.split_once('/')
                    .map_or(format!("/{av}"), |(g, v)| format!("{g}/{v}"))
            )));
        }
        let bn = body_name(b);
        if t.name.is_some() && !bn.is_empty() && bn != name {
            return Err(bad_request(&format!(
                "the name of the object ({bn}) does not match the name on the URL ({name})"
            )));
        }
        if let Some(bns) = b["metadata"]["namespace"].as_str()
            && r.namespaced
            && !bns.is_empty()
            && bns != ns
        {
            return Err(bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
    }
    let key = key_of(r, ns, &name);
    let old = state.objects.get(&key).cloned();
    if let Some(nso) = &ns_obj
        && old.is_none()
        && !nso["metadata"]["deletionTimestamp"].is_null()
    {
        return Err(status(
            403,
            "Forbidden",
            &format!(
                "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                r.qualified()
            ),
            Some(json!({"name": name, "kind": r.plural, "causes": [{
                "reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"),
                "field": "metadata.namespace"}]})),
        ));
    }
    let is_apply = matches!(how, How::Apply { .. });
    let creating = old.is_none();
    if creating && sub.is_some() {
        return Err(not_found(r, &name));
    }
    // The new object, before the field manager.
    let base = old.clone().unwrap_or_else(|| {
        let mut z = schema::zero(&api_version, &r.kind);
        if let Some(o) = z.as_object_mut() {
            o.insert("apiVersion".into(), json!(api_version));
            o.insert("kind".into(), json!(r.kind));
        }
        z
    });
    let time = now();
    let reset = reset_fields(r, sub);
    let mut entries = read_entries(old.as_ref());
    let subname = sub.unwrap_or("");
    let mut new = match how {
        How::Create(b) => {
            if old.is_some() {
                return Err(status(
                    409,
                    "AlreadyExists",
                    &format!("{} \"{name}\" already exists", r.qualified()),
                    Some(details(r, &name)),
                ));
            }
            b
        }
        How::Replace(b) => {
            let Some(o) = &old else {
                return Err(not_found(r, &name));
            };
            if let Some(rv) = b["metadata"]["resourceVersion"].as_str()
                && rv != o["metadata"]["resourceVersion"].as_str().unwrap_or("")
            {
                return Err(status(
                    409,
                    "Conflict",
                    &format!(
                        "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                        r.qualified()
                    ),
                    Some(details(r, &name)),
                ));
            }
            b
        }
        How::Merge(p) => {
            let Some(o) = &old else {
                return Err(not_found(r, &name));
            };
            patch::merge_patch(o, &p)
        }
        How::Strategic(p) => {
            let Some(o) = &old else {
                return Err(not_found(r, &name));
            };
            if r.custom {
                return Err(status(
                    415,
                    "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
                    Some(json!({})),
                ));
            }
            patch::strategic(o, &p, &r.schema)
        }
        How::Json(p) => {
            let Some(o) = &old else {
                return Err(not_found(r, &name));
            };
            patch::json_patch(o, &p).map_err(|e| status(422, "Invalid", &e, None))?
        }
        How::Apply { config, force } => {
            // An applied field a pruning schema does not declare fails the typed patch
            // (`failed to create typed patch object`, a 500 without a reason).
            let mut undeclared = Vec::new();
            fields::undeclared(&config, &r.schema, &mut String::new(), &mut undeclared);
            if !undeclared.is_empty() {
                // One error is written alone; several as a list (`ValidationErrors.Error`).
                let detail = if undeclared.len() == 1 {
                    format!("{}: field not declared in schema", undeclared[0])
                } else {
                    let lines: Vec<String> = undeclared
                        .iter()
                        .map(|p| format!("  {p}: field not declared in schema"))
                        .collect();
                    format!("errors:\n{}", lines.join("\n"))
                };
                let mut a = status(
                    500,
                    "",
                    &format!(
                        "failed to create typed patch object ({}/{}; {}, Kind={}): {}",
                        config["metadata"]["namespace"].as_str().unwrap_or(""),
                        config["metadata"]["name"].as_str().unwrap_or(""),
                        api_version,
                        r.kind,
                        detail
                    ),
                    None,
                );
                if let Some(o) = a.body.as_object_mut() {
                    o.remove("reason");
                }
                return Err(a);
            }
            let strip = strip_set();
            let config_set = fields::to_set(&config, &r.schema)
                .difference(&strip)
                .without_prefixes(&reset);
            let live = old.clone();
            let mut merged = fields::merge(live.as_ref(), &config, &r.schema);
            // The applier's new set replaces its last one; what it dropped and nobody
            // else owns is removed (`Updater.prune`).
            let last = entries
                .iter()
                .find(|e| e.is(opts.manager, "Apply", subname, &api_version))
                .map(|e| e.set.clone())
                .unwrap_or_default();
            let others: Set = entries
                .iter()
                .filter(|e| !e.is(opts.manager, "Apply", subname, &api_version))
                .fold(Set::default(), |acc, e| acc.union(&e.set));
            let owned = others.union(&config_set);
            for p in last.difference(&config_set).paths() {
                if !owned.has_prefix(&p) {
                    fields::remove(&mut merged, &p, &r.schema);
                }
            }
            let cmp = fields::compare(&base, &merged, &r.schema)
                .without_prefixes(&reset)
                .without_prefixes(&[]);
            let changed = cmp.changed().difference(&strip);
            let mut conflicts = Vec::new();
            for e in entries
                .iter()
                .filter(|e| !e.is(opts.manager, "Apply", subname, &api_version))
            {
                for p in e.set.intersection(&changed).paths() {
                    conflicts.push((manager_words(e), p));
                }
            }
            if !force && !conflicts.is_empty() {
                return Err(conflict(&conflicts));
            }
            for e in entries.iter_mut() {
                if !e.is(opts.manager, "Apply", subname, &api_version) {
                    e.set = e.set.difference(&changed).difference(&cmp.removed);
                }
            }
            let object_changed = old.as_ref() != Some(&merged);
            match entries
                .iter_mut()
                .find(|e| e.is(opts.manager, "Apply", subname, &api_version))
            {
                Some(e) => {
                    e.set = config_set;
                    e.api_version = api_version.clone();
                    if object_changed {
                        e.time = time.clone();
                    }
                }
                None => entries.push(Entry {
                    manager: opts.manager.into(),
                    operation: "Apply".into(),
                    api_version: api_version.clone(),
                    subresource: subname.into(),
                    time: if object_changed {
                        time.clone()
                    } else {
                        String::new()
                    },
                    set: config_set,
                }),
            }
            merged
        }
    };
    if !new.is_object() {
        return Err(bad_request("the body is not an object"));
    }
    if r.custom {
        new = fields::prune_unknown(&new, &r.schema);
    }
    // Built-in kinds are defaulted as they are decoded (before the field manager sees an
    // update; after the merge, for an apply); the metadata of every kind goes through the
    // typed `ObjectMeta`.
    rules::drop_empty_metadata(&mut new);
    rules::defaults(r, &mut new);
    if !is_apply {
        let cmp = fields::compare(&base, &new, &r.schema).without_prefixes(&reset);
        let strip = strip_set();
        let cmp = fields::Comparison {
            added: cmp.added.difference(&strip),
            removed: cmp.removed.difference(&strip),
            modified: cmp.modified.difference(&strip),
        };
        update_entries(
            &mut entries,
            &cmp,
            opts.manager,
            subname,
            &api_version,
            &time,
        );
    }
    // The strategy.
    let o = new.as_object_mut().expect("an object");
    o.insert("apiVersion".into(), json!(api_version));
    o.insert("kind".into(), json!(r.kind));
    match (&old, sub) {
        (Some(old), Some(_)) => {
            // A status write takes the status only.
            let status_part = new.get("status").cloned();
            let mut next = old.clone();
            match status_part {
                Some(s) => next["status"] = s,
                None => {
                    if let Some(m) = next.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            new = next;
        }
        (Some(old), None) if r.status => match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        },
        (None, _) => {
            if r.status
                && let Some(m) = new.as_object_mut()
            {
                m.remove("status");
            }
            rules::prepare_create(r, &mut new);
        }
        _ => {}
    }
    // Immutable metadata.
    let meta = new["metadata"].as_object_mut();
    let Some(meta) = meta else {
        return Err(bad_request("metadata is not an object"));
    };
    meta.insert("name".into(), json!(name));
    if r.namespaced {
        meta.insert("namespace".into(), json!(ns));
    } else {
        meta.remove("namespace");
    }
    for k in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "resourceVersion",
        "selfLink",
    ] {
        meta.remove(k);
        if let Some(v) = old.as_ref().and_then(|o| o["metadata"].get(k)) {
            meta.insert(k.into(), v.clone());
        }
    }
    if old.is_none() {
        meta.insert("uid".into(), json!(uuid()));
        meta.insert("creationTimestamp".into(), json!(time));
        meta.remove("generateName");
    }
    match (
        &old,
        rules::generation_moves(r, old.as_ref().unwrap_or(&base), &new),
    ) {
        (None, Some(_)) => new["metadata"]["generation"] = json!(1),
        (Some(o), Some(true)) => {
            new["metadata"]["generation"] =
                json!(o["metadata"]["generation"].as_i64().unwrap_or(0) + 1)
        }
        _ => {}
    }
    if r.group.is_empty() && r.kind == "Service" && old.is_none() {
        let ip = format!(
            "10.96.{}.{}",
            1 + state.next_ip / 250,
            1 + state.next_ip % 250
        );
        state.next_ip += 1;
        if let Some(spec) = new["spec"].as_object_mut() {
            spec.entry("clusterIP").or_insert(json!(ip.clone()));
            spec.entry("clusterIPs").or_insert(json!([ip]));
            spec.entry("ipFamilies").or_insert(json!(["IPv4"]));
            spec.entry("ipFamilyPolicy").or_insert(json!("SingleStack"));
        }
    }
    write_entries(&mut new, entries);
    let causes = rules::validate(r, &new);
    if !causes.is_empty() {
        return Err(invalid(r, &name, &causes));
    }
    if old.as_ref() == Some(&new) {
        // Nothing changed: nothing is written, the resourceVersion stays.
        return Ok(Answer::ok(new));
    }
    if opts.dry_run {
        return Ok(Answer {
            code: if creating { 201 } else { 200 },
            body: new,
        });
    }
    new["metadata"]["resourceVersion"] = json!(state.next_rv());
    state.objects.insert(key.clone(), new.clone());
    // A deleted object whose last finalizer went is removed.
    state.settle(&key);
    Ok(Answer {
        code: if creating { 201 } else { 200 },
        body: new,
    })
}

/// DELETE (`handlers/delete.go` and the registry's `BeforeDelete`).
fn delete(
    state: &mut KubeState,
    t: &Target,
    name: &str,
    propagation: Option<&str>,
    dry_run: bool,
) -> Answer {
    let r = &t.r;
    let ns = if r.namespaced {
        t.namespace.as_str()
    } else {
        ""
    };
    let key = key_of(r, ns, name);
    let Some(old) = state.objects.get(&key).cloned() else {
        return not_found(r, name);
    };
    let mut next = old.clone();
    let crd = r.group == "apiextensions.k8s.io" && r.kind == "CustomResourceDefinition";
    let namespace = r.group.is_empty() && r.kind == "Namespace";
    if !next["metadata"]["deletionTimestamp"].is_null() {
        // Already being deleted: answered with the object as it is.
        return Answer::ok(old);
    }
    let mut fins = finalizers(&next);
    match propagation {
        Some("Orphan") => fins.push("orphan".into()),
        Some("Foreground") => fins.push("foregroundDeletion".into()),
        _ => {}
    }
    if crd {
        fins.push(CRD_CLEANUP.into());
        if let Some(cs) = next["status"]["conditions"].as_array_mut() {
            cs.push(json!({"type": "Terminating", "status": "True", "lastTransitionTime": now(),
                "reason": "InstanceDeletionPending", "message": "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon"}));
        }
    }
    if !fins.is_empty() {
        next["metadata"]["finalizers"] = json!(fins);
    }
    if namespace {
        next["metadata"]["deletionTimestamp"] = json!(now());
        next["status"]["phase"] = json!("Terminating");
    } else if !fins.is_empty() {
        rules::mark_deleting(&mut next, &now(), crd);
    } else {
        if !dry_run {
            state.objects.remove(&key);
        }
        if rules::delete_returns_object(r) {
            return Answer::ok(old);
        }
        let mut d = details(r, name);
        d["uid"] = old["metadata"]["uid"].clone();
        return Answer::ok(json!({"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Success", "details": d}));
    }
    if !dry_run {
        next["metadata"]["resourceVersion"] = json!(state.next_rv());
        state.objects.insert(key, next.clone());
    }
    Answer::ok(next)
}

/// An object as `PartialObjectMetadata`.
fn partial(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]})
}

fn aggregated(resources: &[Resource], core: bool) -> Value {
    let mut groups: BTreeMap<String, BTreeMap<String, Vec<&Resource>>> = BTreeMap::new();
    for r in resources.iter().filter(|r| r.group.is_empty() == core) {
        groups
            .entry(r.group.clone())
            .or_default()
            .entry(r.version.clone())
            .or_default()
            .push(r);
    }
    let items: Vec<Value> = groups
        .into_iter()
        .map(|(g, versions)| {
            let mut vs: Vec<(String, Vec<&Resource>)> = versions.into_iter().collect();
            vs.sort_by_key(|(v, _)| std::cmp::Reverse(version_priority(v)));
            let versions: Vec<Value> = vs
                .into_iter()
                .map(|(v, mut rs)| {
                    rs.sort_by(|a, b| a.plural.cmp(&b.plural));
                    let resources: Vec<Value> = rs
                        .into_iter()
                        .map(|r| {
                            let mut e = json!({
                                "resource": r.plural,
                                "responseKind": {"group": "", "version": "", "kind": r.kind},
                                "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                                "singularResource": r.singular,
                                "verbs": verbs(r),
                            });
                            if !r.short_names.is_empty() {
                                e["shortNames"] = json!(r.short_names);
                            }
                            if !r.categories.is_empty() {
                                e["categories"] = json!(r.categories);
                            }
                            if r.status {
                                e["subresources"] = json!([{"subresource": "status",
                                    "responseKind": {"group": "", "version": "", "kind": r.kind},
                                    "verbs": ["get", "patch", "update"]}]);
                            }
                            e
                        })
                        .collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            let metadata = if core { json!({}) } else { json!({"name": g}) };
            json!({"metadata": metadata, "versions": versions})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

fn verbs(r: &Resource) -> Vec<&'static str> {
    if r.group.is_empty() && r.kind == "Namespace" {
        vec![
            "create", "delete", "get", "list", "patch", "update", "watch",
        ]
    } else {
        vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    }
}

fn resource_list(gv: &str, resources: &[&Resource]) -> Value {
    let mut out = Vec::new();
    for r in resources {
        let mut e = json!({"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
            "kind": r.kind, "verbs": verbs(r)});
        if !r.short_names.is_empty() {
            e["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            e["categories"] = json!(r.categories);
        }
        out.push(e);
        if r.status {
            out.push(
                json!({"name": format!("{}/status", r.plural), "singularName": "",
                "namespaced": r.namespaced, "kind": r.kind, "verbs": ["get", "patch", "update"]}),
            );
        }
    }
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out})
}

/// One parsed request, ready for [`serve`].
struct Call {
    method: Method,
    method_name: String,
    user_agent: String,
    path: String,
    query: BTreeMap<String, String>,
    accept: String,
    content_type: String,
    body: Vec<u8>,
}

fn parse_body(content_type: &str, body: &[u8], kind: &str) -> Result<Value, Answer> {
    let ct = content_type.split(';').next().unwrap_or("").trim();
    let text = std::str::from_utf8(body).map_err(|_| bad_request("the body is not UTF-8"))?;
    if ct == "application/apply-patch+yaml" || ct == "application/yaml" {
        return serde_saphyr::from_str::<Value>(text).map_err(|e| {
            bad_request(&format!(
                "error decoding YAML: error converting YAML to JSON: yaml: {}",
                e.to_string().lines().next().unwrap_or("invalid YAML")
            ))
        });
    }
    serde_json::from_str(text).map_err(|e| {
        bad_request(&format!(
            "the object provided is unrecognized (must be of type {kind}): couldn't get version/kind; json parse error: {e}"
        ))
    })
}

fn is_dry_run(q: &BTreeMap<String, String>) -> Result<bool, Answer> {
    match q.get("dryRun").map(String::as_str) {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(status(
            400,
            "BadRequest",
            &format!("Invalid dryRun value: [{other}]: supported values: \"All\""),
            None,
        )),
    }
}

/// Serves one call against the state (the handler and the handle's methods both use it).
fn serve(shared: &Shared, call: Call) -> Answer {
    let mut state = shared.state.lock().expect("kube state");
    state.reconcile(shared.config.controllers);
    let segs: Vec<&str> = call
        .path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let aggregated_wanted = call.accept.contains("as=APIGroupDiscoveryList");
    let resources = shared.resources(&state);
    match (call.method.clone(), segs.as_slice()) {
        (Method::GET, ["version"]) => {
            return Answer::ok(json!({"major": "1", "minor": "35", "emulationMajor": "1",
                "emulationMinor": "35", "minCompatibilityMajor": "1", "minCompatibilityMinor": "34",
                "gitVersion": "v1.35.4", "gitCommit": "kubesim", "gitTreeState": "clean",
                "buildDate": "1970-01-01T00:00:00Z", "goVersion": "go1.26", "compiler": "gc",
                "platform": "linux/amd64"}));
        }
        (Method::GET, ["api"]) => {
            return Answer::ok(if aggregated_wanted {
                aggregated(&resources, true)
            } else {
                json!({"kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]})
            });
        }
        (Method::GET, ["apis"]) => {
            if aggregated_wanted {
                return Answer::ok(aggregated(&resources, false));
            }
            let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (g, v) in shared.group_versions(&state) {
                if !g.is_empty() {
                    groups.entry(g).or_default().push(v);
                }
            }
            let groups: Vec<Value> = groups
                .into_iter()
                .map(|(g, mut vs)| {
                    vs.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
                    let gvs: Vec<Value> = vs
                        .iter()
                        .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                        .collect();
                    json!({"name": g, "versions": gvs, "preferredVersion": gvs[0]})
                })
                .collect();
            return Answer::ok(
                json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
            );
        }
        (Method::GET, ["api", "v1"]) => {
            let rs: Vec<&Resource> = resources.iter().filter(|r| r.group.is_empty()).collect();
            return Answer::ok(resource_list("v1", &rs));
        }
        (Method::GET, ["apis", g, v]) => {
            let rs: Vec<&Resource> = resources
                .iter()
                .filter(|r| r.group == *g && r.version == *v)
                .collect();
            if rs.is_empty() {
                return page_not_found();
            }
            return Answer::ok(resource_list(&format!("{g}/{v}"), &rs));
        }
        _ => {}
    }
    // /api/v1/... or /apis/{g}/{v}/...
    let (group, version, rest): (&str, &str, &[&str]) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return page_not_found(),
    };
    if !shared
        .group_versions(&state)
        .contains(&(group.to_string(), version.to_string()))
    {
        return page_not_found();
    }
    let (namespace, plural, name, sub) = match rest {
        ["namespaces", ns, plural, tail @ ..]
            if !matches!(*plural, "status" | "finalize") || !tail.is_empty() =>
        {
            (
                ns.to_string(),
                *plural,
                tail.first().map(|s| s.to_string()),
                tail.get(1).map(|s| s.to_string()),
            )
        }
        [plural, tail @ ..] => (
            String::new(),
            *plural,
            tail.first().map(|s| s.to_string()),
            tail.get(1).map(|s| s.to_string()),
        ),
        [] => return page_not_found(),
    };
    // A custom resource group's handler answers an unknown resource with the plain 404
    // of the apiserver's mux; a built-in group with a `Status`.
    let builtin_group = shared.builtins.iter().any(|b| b.group == group);
    let unknown = || {
        if builtin_group {
            status(
                404,
                "NotFound",
                "the server could not find the requested resource",
                Some(json!({})),
            )
        } else {
            page_not_found()
        }
    };
    let Some(r) = shared.resolve(&state, group, version, plural) else {
        return unknown();
    };
    if (r.namespaced && namespace.is_empty() && name.is_some())
        || (!r.namespaced && !namespace.is_empty())
        || rest.len() > if namespace.is_empty() { 3 } else { 5 }
    {
        return unknown();
    }
    if let Some(s) = &sub
        && !(s == "status" && r.status)
    {
        return unknown();
    }
    let t = Target {
        r: r.clone(),
        namespace,
        name: name.clone(),
        sub,
    };
    let metadata_only = call.accept.contains("as=PartialObjectMetadata");
    let dry_run = match is_dry_run(&call.query) {
        Ok(d) => d,
        Err(a) => return a,
    };
    let manager = call.query.get("fieldManager").cloned();
    match (call.method.clone(), &name) {
        (Method::GET, Some(n)) => {
            let ns = if r.namespaced {
                t.namespace.as_str()
            } else {
                ""
            };
            match state.objects.get(&key_of(&r, ns, n)) {
                Some(o) => {
                    let mut o = o.clone();
                    o["apiVersion"] = json!(r.api_version());
                    Answer::ok(if metadata_only { partial(&o) } else { o })
                }
                None => not_found(&r, n),
            }
        }
        (Method::GET, None) => list(&state, &t, &call.query, metadata_only),
        (Method::DELETE, Some(n)) => {
            let mut propagation = call.query.get("propagationPolicy").cloned();
            if !call.body.is_empty()
                && let Ok(v) = serde_json::from_slice::<Value>(&call.body)
                && let Some(p) = v["propagationPolicy"].as_str()
            {
                propagation = Some(p.to_string());
            }
            delete(&mut state, &t, n, propagation.as_deref(), dry_run)
        }
        (Method::POST, None) | (Method::PUT, Some(_)) | (Method::PATCH, Some(_)) => {
            let ct = call
                .content_type
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            let apply = ct == "application/apply-patch+yaml";
            let patch_types = [
                "application/apply-patch+yaml",
                "application/merge-patch+json",
                "application/json-patch+json",
                "application/strategic-merge-patch+json",
            ];
            let ok_type = if call.method_is_patch() {
                patch_types.contains(&ct.as_str())
            } else {
                ["application/json", "application/yaml", ""].contains(&ct.as_str())
            };
            if !ok_type {
                return status(
                    415,
                    "UnsupportedMediaType",
                    "415: Unsupported Media Type",
                    Some(json!({})),
                );
            }
            if apply && manager.as_deref().unwrap_or("").is_empty() {
                return status(
                    422,
                    "Invalid",
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                    Some(
                        json!({"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [{
                        "reason": "FieldValueRequired", "message": "Required value: is required for apply patch",
                        "field": "fieldManager"}]}),
                    ),
                );
            }
            if !apply && call.query.contains_key("force") {
                return status(
                    422,
                    "Invalid",
                    "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch",
                    Some(
                        json!({"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [{
                        "reason": "FieldValueForbidden", "message": "Forbidden: may not be specified for non-apply patch",
                        "field": "force"}]}),
                    ),
                );
            }
            let body = match parse_body(&ct, &call.body, &r.kind) {
                Ok(b) => b,
                Err(a) => return a,
            };
            if !matches!(ct.as_str(), "application/json-patch+json") && !body.is_object() {
                return bad_request(&format!(
                    "the object provided is unrecognized (must be of type {}): couldn't get version/kind; json parse error: the body is not an object",
                    r.kind
                ));
            }
            let how = match (call.method_name.as_str(), ct.as_str()) {
                ("POST", _) => How::Create(body),
                ("PUT", _) => How::Replace(body),
                (_, "application/apply-patch+yaml") => How::Apply {
                    config: body,
                    force: call.query.get("force").is_some_and(|f| f == "true"),
                },
                (_, "application/merge-patch+json") => How::Merge(body),
                (_, "application/json-patch+json") => How::Json(body),
                _ => How::Strategic(body),
            };
            let manager = rules::manager_name(manager.as_deref().unwrap_or(""), &call.user_agent);
            let opts = WriteOptions {
                manager: &manager,
                dry_run,
            };
            match write(&mut state, &t, how, &opts) {
                Ok(a) | Err(a) => a,
            }
        }
        _ => status(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            Some(json!({})),
        ),
    }
}

fn page_not_found() -> Answer {
    Answer {
        code: 404,
        body: Value::String("404 page not found\n".into()),
    }
}

fn list(
    state: &KubeState,
    t: &Target,
    q: &BTreeMap<String, String>,
    metadata_only: bool,
) -> Answer {
    let r = &t.r;
    let selector = match select::Selector::parse(q.get("labelSelector").map_or("", String::as_str))
    {
        Ok(s) => s,
        Err(e) => return bad_request(&e),
    };
    let fields = q.get("fieldSelector").cloned().unwrap_or_default();
    let mut items = Vec::new();
    for ((g, p, ns, name), o) in &state.objects {
        if *g != r.group || *p != r.plural || (!t.namespace.is_empty() && *ns != t.namespace) {
            continue;
        }
        if !selector.matches(&labels_of(o)) {
            continue;
        }
        match select::field_matches(&fields, name, ns) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => return bad_request(&e),
        }
        let mut o = o.clone();
        o["apiVersion"] = json!(r.api_version());
        if metadata_only {
            items.push(partial(&o));
        } else {
            // A built-in kind's list items carry no kind and apiVersion.
            if !r.custom
                && let Some(m) = o.as_object_mut()
            {
                m.remove("kind");
                m.remove("apiVersion");
            }
            items.push(o);
        }
    }
    let rv = state.rv.to_string();
    // An empty metadata-only list has `items: null` (a nil Go slice without `omitempty`);
    // a custom resource list (unstructured) carries `continue: ""`.
    Answer::ok(if metadata_only {
        let items = if items.is_empty() {
            Value::Null
        } else {
            Value::Array(items)
        };
        json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": rv}, "items": items})
    } else {
        let mut meta = json!({"resourceVersion": rv});
        if r.custom {
            meta["continue"] = json!("");
        }
        json!({"kind": format!("{}List", r.kind), "apiVersion": r.api_version(),
            "metadata": meta, "items": items})
    })
}

impl Call {
    fn method_is_patch(&self) -> bool {
        self.method == Method::PATCH
    }
}

/// The HTTP front: body cap, bearer token, then [`serve`].
async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let header = |h: &str| {
        parts
            .headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let token_ok = header("authorization")
        .strip_prefix("Bearer ")
        .is_some_and(|t| t == shared.config.token);
    if !token_ok {
        return reply(status(401, "Unauthorized", "Unauthorized", None), "");
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return reply(
            status(
                413,
                "RequestEntityTooLarge",
                &format!("Request entity too large: limit is {MAX_BODY}"),
                None,
            ),
            "",
        );
    };
    let accept = header("accept");
    let call = Call {
        method: parts.method.clone(),
        method_name: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parse_query(parts.uri.query().unwrap_or("")),
        accept: accept.clone(),
        content_type: header("content-type"),
        user_agent: header("user-agent"),
        body: bytes.to_vec(),
    };
    let answer = serve(&shared, call);
    reply(answer, &accept)
}

fn reply(a: Answer, accept: &str) -> Response {
    let code = StatusCode::from_u16(a.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Value::String(text) = &a.body {
        return (
            code,
            [("content-type", "text/plain; charset=utf-8")],
            text.clone(),
        )
            .into_response();
    }
    let ct = if a.body["kind"] == "APIGroupDiscoveryList"
        && accept.contains("as=APIGroupDiscoveryList")
    {
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    } else {
        "application/json"
    };
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static(ct));
    (code, headers, Body::from(a.body.to_string())).into_response()
}

impl KubeSim {
    /// Starts a simulator on a free loopback port.
    pub async fn start(config: KubeConfig) -> std::io::Result<KubeSim> {
        let mut state = KubeState::default();
        // The namespaces every cluster starts with.
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            state.rv += 1;
            state.objects.insert(
                (String::new(), "namespaces".into(), String::new(), ns.into()),
                json!({"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": ns, "uid": uuid(),
                    "resourceVersion": state.rv.to_string(), "creationTimestamp": now(),
                    "labels": {"kubernetes.io/metadata.name": ns}},
                    "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
            );
        }
        let shared = Arc::new(Shared {
            config,
            state: Mutex::new(state),
            builtins: schema::builtins(),
        });
        let (running, faults) = serve_api(handle, shared.clone()).await?;
        Ok(KubeSim {
            running,
            faults,
            shared,
        })
    }

    /// The API server's URL (plain HTTP).
    pub fn url(&self) -> &str {
        &self.running.url
    }

    /// The bearer token it accepts.
    pub fn token(&self) -> &str {
        &self.shared.config.token
    }

    /// A kubeconfig that reaches it.
    pub fn kubeconfig(&self) -> String {
        kubeconfig(self.url(), self.token())
    }

    /// The requests seen so far (`METHOD /path?query`).
    pub fn requests(&self) -> Vec<String> {
        self.faults.requests()
    }

    /// How many requests it has seen.
    pub fn request_count(&self) -> usize {
        self.faults.requests().len()
    }

    fn call(
        &self,
        method: Method,
        path: &str,
        query: &str,
        content_type: &str,
        body: Value,
    ) -> Answer {
        let call = Call {
            method: method.clone(),
            method_name: method.to_string(),
            path: path.to_string(),
            query: parse_query(query),
            accept: "application/json".into(),
            content_type: content_type.into(),
            user_agent: "kubesim".into(),
            body: if body.is_null() {
                Vec::new()
            } else {
                body.to_string().into_bytes()
            },
        };
        serve(&self.shared, call)
    }

    fn path(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: Option<&str>,
    ) -> Option<String> {
        let state = self.shared.state.lock().expect("kube state");
        let r = self
            .shared
            .resources(&state)
            .into_iter()
            .find(|r| r.api_version() == api_version && r.kind == kind)?;
        let base = if r.group.is_empty() {
            format!("/api/{}", r.version)
        } else {
            format!("/apis/{}/{}", r.group, r.version)
        };
        let ns = match namespace {
            Some(ns) if r.namespaced => format!("/namespaces/{ns}"),
            _ => String::new(),
        };
        let name = name.map(|n| format!("/{n}")).unwrap_or_default();
        Some(format!("{base}{ns}/{}{name}", r.plural))
    }

    fn unknown_kind(api_version: &str, kind: &str) -> Answer {
        status(
            404,
            "NotFound",
            &format!("no resource of kind {kind} in {api_version}"),
            None,
        )
    }

    /// Server-side apply of `object` by `manager`, out of band (as `kubectl apply
    /// --server-side` would).
    pub fn apply_as(&self, manager: &str, object: &Value, force: bool) -> Answer {
        let av = object["apiVersion"].as_str().unwrap_or("");
        let kind = object["kind"].as_str().unwrap_or("");
        let Some(path) = self.path(
            av,
            kind,
            object["metadata"]["namespace"].as_str(),
            object["metadata"]["name"].as_str(),
        ) else {
            return Self::unknown_kind(av, kind);
        };
        self.call(
            Method::PATCH,
            &path,
            &format!("fieldManager={manager}&force={force}"),
            "application/apply-patch+yaml",
            object.clone(),
        )
    }

    /// A JSON merge patch by `manager`, out of band (as `kubectl edit` or `kubectl patch`
    /// would).
    pub fn merge_patch_as(
        &self,
        manager: &str,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        patch: &Value,
    ) -> Answer {
        let Some(path) = self.path(api_version, kind, namespace, Some(name)) else {
            return Self::unknown_kind(api_version, kind);
        };
        self.call(
            Method::PATCH,
            &path,
            &format!("fieldManager={manager}"),
            "application/merge-patch+json",
            patch.clone(),
        )
    }

    /// Sets an object's status as a controller does (a merge patch of the `/status`
    /// subresource by field manager `kubesim-controller`): how the sandbox plays the Flux
    /// Operator, which reports a FluxInstance `Ready` in `status.conditions`.
    pub fn set_status(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        status_json: &Value,
    ) -> Answer {
        self.set_status_as(
            "kubesim-controller",
            api_version,
            kind,
            namespace,
            name,
            status_json,
        )
    }

    /// [`KubeSim::set_status`] with a field manager of the caller's choosing.
    pub fn set_status_as(
        &self,
        manager: &str,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        status_json: &Value,
    ) -> Answer {
        let Some(path) = self.path(api_version, kind, namespace, Some(name)) else {
            return Self::unknown_kind(api_version, kind);
        };
        let has_status = {
            let state = self.shared.state.lock().expect("kube state");
            self.shared
                .resources(&state)
                .iter()
                .any(|r| r.api_version() == api_version && r.kind == kind && r.status)
        };
        let path = if has_status {
            format!("{path}/status")
        } else {
            path
        };
        self.call(
            Method::PATCH,
            &path,
            &format!("fieldManager={manager}"),
            "application/merge-patch+json",
            json!({"status": status_json}),
        )
    }

    /// Deletes an object behind the provider's back (`propagationPolicy=Background`).
    pub fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Answer {
        let Some(path) = self.path(api_version, kind, namespace, Some(name)) else {
            return Self::unknown_kind(api_version, kind);
        };
        self.call(
            Method::DELETE,
            &path,
            "propagationPolicy=Background",
            "",
            Value::Null,
        )
    }

    /// An object as GET returns it (`None`: absent).
    pub fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let path = self.path(api_version, kind, namespace, Some(name))?;
        let a = self.call(Method::GET, &path, "", "", Value::Null);
        (a.code == 200).then_some(a.body)
    }

    /// Every object of a kind (in `namespace`, or everywhere).
    pub fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        let Some(path) = self.path(api_version, kind, namespace, None) else {
            return Vec::new();
        };
        let a = self.call(Method::GET, &path, "", "", Value::Null);
        a.body["items"].as_array().cloned().unwrap_or_default()
    }

    /// Reads or changes the stored objects directly (no rule applied).
    pub fn edit<R>(&self, f: impl FnOnce(&mut KubeState) -> R) -> R {
        f(&mut self.shared.state.lock().expect("kube state"))
    }
}

impl KubeState {
    /// Every stored object.
    pub fn objects(&self) -> impl Iterator<Item = &Value> {
        self.objects.values()
    }

    /// Removes a finalizer from every object that holds it (what its controller does when
    /// it has cleaned up); objects being deleted with no finalizer left are removed.
    pub fn release_finalizer(&mut self, finalizer: &str) {
        let keys: Vec<Key> = self.objects.keys().cloned().collect();
        for k in keys {
            let Some(o) = self.objects.get(&k) else {
                continue;
            };
            let fins = finalizers(o);
            if !fins.iter().any(|f| f == finalizer) {
                continue;
            }
            let rest: Vec<String> = fins.into_iter().filter(|f| f != finalizer).collect();
            let rv = self.next_rv();
            if let Some(o) = self.objects.get_mut(&k) {
                o["metadata"]["finalizers"] = json!(rest);
                if rest.is_empty()
                    && let Some(m) = o["metadata"].as_object_mut()
                {
                    m.remove("finalizers");
                }
                o["metadata"]["resourceVersion"] = json!(rv);
            }
            self.settle(&k);
        }
    }
}

/// A kubeconfig for a plain-HTTP server `url` with bearer `token`.
pub fn kubeconfig(url: &str, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kubesim\n  cluster:\n    server: {url}\ncontexts:\n- name: kubesim\n  context:\n    cluster: kubesim\n    user: kubesim\ncurrent-context: kubesim\nusers:\n- name: kubesim\n  user:\n    token: {token}\n"
    )
}
