//! Kubernetes kinds: `kubernetes.manifest` (the objects of a multi-document YAML file,
//! applied server-side) and `kubernetes.secret` (a Secret whose values come from secret
//! sources). Manifests are read and checked when the desired state is loaded: every object
//! needs `apiVersion`, `kind` and `metadata.name`, a kind known to be namespaced needs
//! `metadata.namespace` and one known to be cluster-scoped must not have it, and no
//! manifest may hold a `Secret` (its values would be in plain text in the repository:
//! `kubernetes.secret` takes them from secret sources). docs/kubernetes.md is the guide.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{Export, KindInfo, KindRules, Replacement, exact, plain};
use crate::desired::load::{Raw, RawValue};
use crate::desired::schema::{Cx, Decode, Shape};
use crate::desired::source::Span;
use crate::desired::values::{Secret, SecretSource};
use crate::{block, string_enum};

/// The largest manifest file read, in bytes (the Flux Operator's install manifest is about
/// 98 KB; a release's CRDs rarely pass 2 MB).
pub const MANIFEST_FILE_CAP: u64 = 8 << 20;

/// The key of the spec JSON (not a field: never compared, never in the ledger) that carries
/// a manifest's objects, as written, to the provider.
pub const DOCUMENTS: &str = "_documents";

/// One object of a manifest, as the file writes it.
#[derive(Clone, Debug, PartialEq)]
pub struct ManifestObject {
    /// `Kind[.group][/namespace]/name`, as [`object_key`] makes it: the object's name in
    /// plans and in the ledger's inventory.
    pub key: String,
    /// `apiVersion` (`apps/v1`, `v1`).
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// `metadata.namespace`, when it has one.
    pub namespace: Option<String>,
    /// `metadata.name`.
    pub name: String,
    /// `sha256:` and the first 16 hex digits of SHA-256 over the object's canonical JSON
    /// (keys sorted): what changed objects are told apart by.
    pub hash: String,
    /// The object as written.
    pub body: Value,
    /// The line of the file its document starts on (1-based).
    pub line: usize,
}

/// The objects of one manifest (a file, or inline YAML), in the order written.
#[derive(Clone, Debug, PartialEq)]
pub struct ManifestObjects {
    /// The path as written, or `yaml` for inline YAML.
    pub written: String,
    /// SHA-256 of the whole text, `sha256:` and 16 hex digits.
    pub digest: String,
    /// SHA-256 of the whole text, 64 hex digits (what `sha256sum` prints).
    pub sha256: String,
    /// The objects.
    pub objects: Vec<ManifestObject>,
}

/// `kubernetes.manifest` `file`: a multi-document YAML file, read and checked when the
/// desired state is loaded. Serialised as the path as written.
#[derive(Clone, Debug, PartialEq)]
pub struct ManifestFile(pub ManifestObjects);

impl serde::Serialize for ManifestFile {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.written)
    }
}

impl Decode for ManifestFile {
    fn shape() -> Shape {
        Shape::Format("path of a multi-document YAML file, relative to this TOML file")
    }

    fn decode(raw: &Raw, cx: &mut Cx<'_>) -> Option<Self> {
        let written = String::decode(raw, cx)?;
        if written.is_empty() || crate::desired::refs::contains_ref(&written) {
            cx.error(raw.span, "a manifest path must be a non-empty literal path");
            return None;
        }
        let path = PathBuf::from(&written);
        let path = if path.is_absolute() {
            path
        } else {
            cx.base_dir.join(path)
        };
        let bytes = match crate::fsread::read_regular(&path, MANIFEST_FILE_CAP) {
            Ok(b) => b,
            Err(e) => {
                cx.error(raw.span, format!("cannot read {}: {e}", path.display()));
                return None;
            }
        };
        let Ok(text) = String::from_utf8(bytes) else {
            cx.error(raw.span, format!("{} is not UTF-8 text", path.display()));
            return None;
        };
        let objects = parse_manifest(&text, &path.display().to_string(), raw.span, cx)?;
        Some(ManifestFile(ManifestObjects {
            written,
            digest: digest(text.as_bytes()),
            sha256: full_sha256(text.as_bytes()),
            objects,
        }))
    }
}

/// `kubernetes.manifest` `yaml`: inline multi-document YAML. Serialised as its digest (the
/// text itself never goes to the ledger).
#[derive(Clone, Debug, PartialEq)]
pub struct InlineYaml(pub ManifestObjects);

impl serde::Serialize for InlineYaml {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.digest)
    }
}

impl Decode for InlineYaml {
    fn shape() -> Shape {
        Shape::Format("multi-document YAML text")
    }

    fn decode(raw: &Raw, cx: &mut Cx<'_>) -> Option<Self> {
        let RawValue::String(text) = &raw.value else {
            cx.expected(raw, "a string of YAML");
            return None;
        };
        if crate::desired::refs::contains_ref(text) {
            cx.error(
                raw.span,
                "manifests take no references: `${…}` is not filled in here",
            )
            .set_help("write `$${` for a literal `${`, or put the value in a kubernetes.secret");
            return None;
        }
        let objects = parse_manifest(text, "the inline YAML", raw.span, cx)?;
        Some(InlineYaml(ManifestObjects {
            written: "yaml".into(),
            digest: digest(text.as_bytes()),
            sha256: full_sha256(text.as_bytes()),
            objects,
        }))
    }
}

/// `kubernetes.manifest` `objects`: computed from `file` or `yaml`, never written. In the
/// spec JSON (and so in plans and the ledger's applied values) it is the inventory,
/// `key → hash`, which [`crate::desired::Spec::to_json`] fills in.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Inventory;

impl Decode for Inventory {
    fn shape() -> Shape {
        Shape::Map(Box::new(Shape::String))
    }

    fn decode(raw: &Raw, cx: &mut Cx<'_>) -> Option<Self> {
        cx.error(
            raw.span,
            "`objects` is computed from `file` or `yaml`: do not write it",
        )
        .set_help("list the objects in the YAML file (or inline `yaml`)");
        None
    }

    fn missing() -> Option<Self> {
        Some(Inventory)
    }
}

/// SHA-256 of `bytes`, 64 hex digits (what `sha256sum` prints).
pub fn full_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// SHA-256 of `bytes`: `sha256:` and the first 16 hex digits (64 bits: enough to tell
/// versions of one object apart, short enough for a plan line).
pub fn digest(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    let hex: String = d.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The hash of an object: [`digest`] of its canonical JSON (serde_json sorts keys).
pub fn object_hash(body: &Value) -> String {
    digest(&serde_json::to_vec(body).unwrap_or_default())
}

/// The group of an `apiVersion` (`apps/v1` → `apps`, `v1` → the core group, ``).
pub fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

/// An object's name in plans and inventories: `Kind` (with `.group` outside the core
/// group), then `/namespace` for a namespaced object, then `/name`:
/// `Deployment.apps/flux-system/flux-operator`, `Namespace/flux-system`. The version is
/// left out: it is one object whatever version it is read at.
pub fn object_key(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> String {
    let group = group_of(api_version);
    let mut key = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    if let Some(ns) = namespace {
        key.push('/');
        key.push_str(ns);
    }
    key.push('/');
    key.push_str(name);
    key
}

/// Built-in kinds that are cluster-scoped, by (group, kind): from the Kubernetes API
/// reference (kubernetes.io/docs/reference/kubernetes-api/, each kind's "cluster-scoped"
/// or namespaced endpoint paths), v1.35.
const CLUSTER_SCOPED: &[(&str, &str)] = &[
    ("", "Namespace"),
    ("", "Node"),
    ("", "PersistentVolume"),
    ("", "ComponentStatus"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("apiregistration.k8s.io", "APIService"),
    ("storage.k8s.io", "StorageClass"),
    ("storage.k8s.io", "CSIDriver"),
    ("storage.k8s.io", "CSINode"),
    ("storage.k8s.io", "VolumeAttachment"),
    ("storage.k8s.io", "VolumeAttributesClass"),
    ("scheduling.k8s.io", "PriorityClass"),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
    ),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicyBinding",
    ),
    ("networking.k8s.io", "IngressClass"),
    ("networking.k8s.io", "IPAddress"),
    ("networking.k8s.io", "ServiceCIDR"),
    ("node.k8s.io", "RuntimeClass"),
    ("certificates.k8s.io", "CertificateSigningRequest"),
    ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
];

/// Built-in kinds that are namespaced, by (group, kind) (same source).
const NAMESPACED: &[(&str, &str)] = &[
    ("", "ConfigMap"),
    ("", "Secret"),
    ("", "Service"),
    ("", "ServiceAccount"),
    ("", "Pod"),
    ("", "PodTemplate"),
    ("", "PersistentVolumeClaim"),
    ("", "Endpoints"),
    ("", "LimitRange"),
    ("", "ResourceQuota"),
    ("", "ReplicationController"),
    ("", "Event"),
    ("apps", "Deployment"),
    ("apps", "StatefulSet"),
    ("apps", "DaemonSet"),
    ("apps", "ReplicaSet"),
    ("apps", "ControllerRevision"),
    ("batch", "Job"),
    ("batch", "CronJob"),
    ("rbac.authorization.k8s.io", "Role"),
    ("rbac.authorization.k8s.io", "RoleBinding"),
    ("networking.k8s.io", "Ingress"),
    ("networking.k8s.io", "NetworkPolicy"),
    ("policy", "PodDisruptionBudget"),
    ("autoscaling", "HorizontalPodAutoscaler"),
    ("coordination.k8s.io", "Lease"),
    ("discovery.k8s.io", "EndpointSlice"),
    ("events.k8s.io", "Event"),
];

/// Whether a kind is namespaced, as far as it is known without asking a cluster: built-in
/// kinds from the tables above, custom kinds from a CustomResourceDefinition among
/// `crds` (`(group, kind) → namespaced`); `None` for a kind known neither way.
pub fn namespaced(
    group: &str,
    kind: &str,
    crds: &BTreeMap<(String, String), bool>,
) -> Option<bool> {
    if CLUSTER_SCOPED.contains(&(group, kind)) {
        Some(false)
    } else if NAMESPACED.contains(&(group, kind)) {
        Some(true)
    } else {
        crds.get(&(group.to_string(), kind.to_string())).copied()
    }
}

/// True for the kinds applied first and deleted last: CustomResourceDefinitions and
/// Namespaces (what other objects of a manifest need to exist before them).
pub fn first_stage(api_version: &str, kind: &str) -> bool {
    matches!(
        (group_of(api_version), kind),
        ("", "Namespace") | ("apiextensions.k8s.io", "CustomResourceDefinition")
    )
}

/// Checks a DNS-1123 label (a namespace): 1 to 63 lower-case letters, digits and `-`,
/// starting and ending with a letter or digit (Kubernetes "Object Names and IDs").
pub fn check_label(s: &str) -> Result<(), String> {
    let ok = (1..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "\"{s}\" is not a valid namespace: 1 to 63 lower-case letters, digits and `-`, starting and ending with a letter or digit"
        ))
    }
}

/// Checks a DNS-1123 subdomain (most object names, Secrets included): at most 253
/// characters of lower-case letters, digits, `-` and `.`, starting and ending with a letter
/// or digit (Kubernetes "Object Names and IDs").
pub fn check_subdomain(s: &str) -> Result<(), String> {
    let ok = (1..=253).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "\"{s}\" is not a valid name: at most 253 lower-case letters, digits, `-` and `.`, starting and ending with a letter or digit"
        ))
    }
}

/// One document of a multi-document YAML text: its text and its first line.
fn documents(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut start = 1;
    for (i, line) in text.lines().enumerate() {
        let marker =
            line == "---" || line.starts_with("--- ") || line.starts_with("---\t") || line == "...";
        if marker {
            out.push((start, std::mem::take(&mut current)));
            start = i + 1;
            // `--- value` starts a document with content on the marker line.
            if let Some(rest) = line
                .strip_prefix("--- ")
                .or_else(|| line.strip_prefix("---\t"))
            {
                current.push_str(rest);
                current.push('\n');
            } else {
                start = i + 2;
            }
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    out.push((start, current));
    out.retain(|(_, doc)| {
        doc.lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    });
    out
}

/// Parses and checks a manifest; every problem is reported (with `origin` and the line of
/// the document), and `None` returned when there was one.
pub fn parse_manifest(
    text: &str,
    origin: &str,
    span: Span,
    cx: &mut Cx<'_>,
) -> Option<Vec<ManifestObject>> {
    let mut ok = true;
    let mut parsed: Vec<(usize, Value)> = Vec::new();
    for (line, doc) in documents(text) {
        match serde_saphyr::from_str::<Value>(&doc) {
            Ok(Value::Null) => {}
            Ok(v) => parsed.push((line, v)),
            Err(e) => {
                ok = false;
                cx.error(
                    span,
                    format!(
                        "{origin}, document starting on line {line}: not YAML: {}",
                        yaml_problem(&e.to_string())
                    ),
                );
            }
        }
    }
    // CustomResourceDefinitions in the same manifest say whether their kinds are
    // namespaced.
    let mut crds = BTreeMap::new();
    for (_, v) in &parsed {
        if v["kind"] == "CustomResourceDefinition"
            && let (Some(group), Some(kind), Some(scope)) = (
                v["spec"]["group"].as_str(),
                v["spec"]["names"]["kind"].as_str(),
                v["spec"]["scope"].as_str(),
            )
        {
            crds.insert((group.to_string(), kind.to_string()), scope == "Namespaced");
        }
    }
    let mut objects: Vec<ManifestObject> = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (line, body) in parsed {
        let at = format!("{origin}, line {line}");
        let mut problem = |cx: &mut Cx<'_>, message: String| {
            ok = false;
            cx.error(span, format!("{at}: {message}"));
        };
        let Value::Object(map) = &body else {
            problem(
                cx,
                "a Kubernetes object is a mapping, with apiVersion, kind and metadata".into(),
            );
            continue;
        };
        let text =
            |m: &Map<String, Value>, k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
        let (Some(api_version), Some(kind)) = (text(map, "apiVersion"), text(map, "kind")) else {
            problem(
                cx,
                "the object has no `apiVersion` or no `kind` (both are strings)".into(),
            );
            continue;
        };
        if kind.ends_with("List") {
            problem(
                cx,
                format!("`{kind}`: write the list's items as documents of their own"),
            );
            continue;
        }
        let Some(metadata) = map.get("metadata").and_then(Value::as_object) else {
            problem(cx, format!("{kind}: no `metadata`"));
            continue;
        };
        let Some(name) = text(metadata, "name") else {
            problem(
                cx,
                format!(
                    "{kind}: `metadata.name` is missing or not a string (provisioner names every object, `generateName` is not supported; quote a name YAML reads as another type, such as \"n\" or \"123\")"
                ),
            );
            continue;
        };
        if (group_of(&api_version), kind.as_str()) == ("", "Secret") {
            problem(
                cx,
                format!(
                    "Secret {name}: a manifest holds no Secrets (their values would be plain text here); declare it as a kubernetes.secret, whose values come from secret sources"
                ),
            );
            continue;
        }
        let namespace = match metadata.get("namespace") {
            None | Some(Value::Null) => None,
            Some(Value::String(ns)) => {
                if let Err(e) = check_label(ns) {
                    problem(cx, format!("{kind} {name}: `metadata.namespace`: {e}"));
                    continue;
                }
                Some(ns.clone())
            }
            Some(_) => {
                problem(
                    cx,
                    format!("{kind} {name}: `metadata.namespace` is not a string"),
                );
                continue;
            }
        };
        match (namespaced(group_of(&api_version), &kind, &crds), &namespace) {
            (Some(true), None) => {
                problem(
                    cx,
                    format!(
                        "{kind} {name} is namespaced: write its `metadata.namespace` (provisioner does not guess one)"
                    ),
                );
                continue;
            }
            (Some(false), Some(ns)) => {
                problem(
                    cx,
                    format!("{kind} {name} is cluster-scoped: remove `metadata.namespace: {ns}`"),
                );
                continue;
            }
            _ => {}
        }
        let key = object_key(&api_version, &kind, namespace.as_deref(), &name);
        if let Some(first) = seen.get(&key) {
            problem(cx, format!("{key} is already declared on line {first}"));
            continue;
        }
        seen.insert(key.clone(), line);
        objects.push(ManifestObject {
            key,
            api_version,
            kind,
            namespace,
            name,
            hash: object_hash(&body),
            body,
            line,
        });
    }
    if objects.is_empty() && ok {
        cx.error(span, format!("{origin} holds no Kubernetes object"));
        return None;
    }
    ok.then_some(objects)
}

/// The parser's problem without the lines of the document it quotes after it: the file
/// may be one that holds secrets (a `file` pointing at an env file), and errors reach
/// CI logs.
fn yaml_problem(s: &str) -> String {
    one_line(s.lines().next().unwrap_or(s))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Checks a `cluster` secret source: a reference must be a DigitalOcean cluster's
/// `kubeconfig`.
pub(crate) fn check_cluster(cluster: &Secret, span: Span, cx: &mut Cx<'_>) {
    if let SecretSource::Ref(r) = &cluster.0
        && (r.address.provider(), r.address.kind(), r.attribute.as_str())
            != ("digitalocean", "kubernetes_cluster", "kubeconfig")
    {
        cx.nested("cluster", |cx| {
            cx.error(span, format!("`cluster` reads a kubeconfig: {r} is not a cluster's kubeconfig"))
                .set_help("write \"${digitalocean.kubernetes_cluster.<name>.kubeconfig}\", or `{ env = \"NAME\" }` / `{ file = \"path\" }` holding a kubeconfig");
        });
    }
}

block! {
    /// The objects of a multi-document YAML manifest, applied with server-side apply.
    pub struct Manifest {
        /// The cluster: a reference to a DigitalOcean cluster's kubeconfig (`"${digitalocean.kubernetes_cluster.prod.kubeconfig}"`), or `{ env = "NAME" }` / `{ file = "path" }` holding a kubeconfig (token or client-certificate credentials). Read into memory only.
        cluster: Secret => update,
        /// A multi-document YAML file, relative to this TOML file (one of `file` and `yaml`). Read when the desired state is loaded; a change shows as changes of `objects`.
        file: Option<ManifestFile> => local,
        /// The SHA-256 `file` must have (64 hex digits, as `sha256sum` prints it): pins a downloaded release manifest (the Flux Operator's `install.yaml`), so that a different download is refused when the desired state is loaded.
        sha256: Option<String> => local,
        /// Inline multi-document YAML (one of `file` and `yaml`); a change shows as changes of `objects`.
        yaml: Option<InlineYaml> => local,
        /// Computed, never written: the inventory of `file` or `yaml`, each object (`Kind.group/namespace/name`) with the hash of its YAML.
        objects: Inventory => update,
        /// Objects that leave the file are deleted (`true`) or orphaned, their provisioner labels removed (`false`); unset: as `[settings] prune` says.
        prune: Option<bool> => local,
        /// Take over objects of the file that already exist and were not made by provisioner (the forced apply makes provisioner their field manager). Off: such an object is refused, by name. An object another provisioner ledger made is always refused.
        take_over: bool = false => local,
    }
    check = check_manifest;
}

fn check_manifest(m: &Manifest, span: Span, cx: &mut Cx<'_>) {
    check_cluster(&m.cluster, span, cx);
    if let Some(pin) = &m.sha256 {
        let pin = pin.trim().to_ascii_lowercase();
        if pin.len() != 64 || !pin.bytes().all(|b| b.is_ascii_hexdigit()) {
            cx.nested("sha256", |cx| {
                cx.error(
                    span,
                    "a SHA-256 is 64 hex digits, as `sha256sum FILE` prints it",
                );
            });
        } else if let Some(f) = &m.file {
            if f.0.sha256 != pin {
                cx.nested("sha256", |cx| {
                    cx.error(
                        span,
                        format!(
                            "{} has SHA-256 {}, and `sha256` pins {pin}: it is not the file you pinned (download the pinned release again, or pin this one)",
                            f.0.written, f.0.sha256
                        ),
                    );
                });
            }
        } else {
            cx.nested("sha256", |cx| {
                cx.error(span, "`sha256` pins a `file`: inline `yaml` needs no pin");
            });
        }
    }
    match (&m.file, &m.yaml) {
        (Some(_), Some(_)) => {
            cx.error(span, "write one of `file` and `yaml`, not both");
        }
        (None, None) => {
            cx.error(span, "missing `file` (a YAML file) or `yaml` (inline YAML)");
        }
        _ => {}
    }
}

impl Manifest {
    /// The manifest's objects (from `file` or `yaml`).
    pub fn source(&self) -> Option<&ManifestObjects> {
        self.file
            .as_ref()
            .map(|f| &f.0)
            .or(self.yaml.as_ref().map(|y| &y.0))
    }
}

impl KindInfo for Manifest {
    const DOC: &'static str = "Kubernetes objects from a multi-document YAML file (or inline YAML), applied with server-side apply (field manager `provisioner`, forced), CustomResourceDefinitions and Namespaces first. The ledger records the inventory; objects that leave the file are pruned or orphaned; an object changed by another field manager is reported, naming it. See docs/kubernetes.md.";
    const EXPORTS: &'static [Export] = &[plain(
        "server",
        "the API server the objects were applied to",
    )];
    const RULES: KindRules = KindRules {
        // A manifest is its address: the objects it applied carry it (an annotation), and
        // the inventory is what a recovery matches by.
        key: &[exact("objects")],
        ignore_case: &[],
        // The same objects, by name: the old ones go before the new ones are applied.
        replacement: Replacement::DestroyFirst,
        unrecoverable: &[],
        expiring: &[],
        carries_lineage: true,
    };
}

/// The spec JSON of a manifest, as the planner and the provider read it: `objects` is the
/// inventory (`key → hash`) and [`DOCUMENTS`] the objects as written.
pub fn manifest_json(m: &Manifest, v: &mut Value) {
    let Some(source) = m.source() else {
        return;
    };
    let Some(obj) = v.as_object_mut() else {
        return;
    };
    let inventory: Map<String, Value> = source
        .objects
        .iter()
        .map(|o| (o.key.clone(), Value::String(o.hash.clone())))
        .collect();
    obj.insert("objects".into(), Value::Object(inventory));
    obj.insert(
        DOCUMENTS.into(),
        Value::Array(source.objects.iter().map(|o| o.body.clone()).collect()),
    );
}

/// A namespace name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Namespace(pub String);

impl Decode for Namespace {
    fn shape() -> Shape {
        Shape::Format("namespace: a DNS label, e.g. `flux-system`")
    }
    fn decode(raw: &Raw, cx: &mut Cx<'_>) -> Option<Self> {
        let s = String::decode(raw, cx)?;
        if !crate::desired::refs::contains_ref(&s)
            && let Err(e) = check_label(&s)
        {
            cx.error(raw.span, e);
            return None;
        }
        Some(Namespace(s))
    }
}

/// An object name (a DNS subdomain).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct ObjectName(pub String);

impl Decode for ObjectName {
    fn shape() -> Shape {
        Shape::Format("object name: a DNS subdomain, e.g. `flux-system`")
    }
    fn decode(raw: &Raw, cx: &mut Cx<'_>) -> Option<Self> {
        let s = String::decode(raw, cx)?;
        if !crate::desired::refs::contains_ref(&s)
            && let Err(e) = check_subdomain(&s)
        {
            cx.error(raw.span, e);
            return None;
        }
        Some(ObjectName(s))
    }
}

/// `kubernetes.secret` `keys`: computed, never written. In the spec JSON, every key of the
/// Secret (`data` and `plain`), sorted.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct SecretKeys;

impl Decode for SecretKeys {
    fn shape() -> Shape {
        Shape::Set(Box::new(Shape::String))
    }

    fn decode(raw: &Raw, cx: &mut Cx<'_>) -> Option<Self> {
        cx.error(
            raw.span,
            "`keys` is computed from `data` and `plain`: do not write it",
        );
        None
    }

    fn missing() -> Option<Self> {
        Some(SecretKeys)
    }
}

/// `kubernetes.secret` `written_by`: computed, never written. In the spec JSON,
/// `provisioner`: the Secret as provisioner last wrote it.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct WrittenBy;

impl Decode for WrittenBy {
    fn shape() -> Shape {
        Shape::String
    }

    fn decode(raw: &Raw, cx: &mut Cx<'_>) -> Option<Self> {
        cx.error(raw.span, "`written_by` is computed: do not write it");
        None
    }

    fn missing() -> Option<Self> {
        Some(WrittenBy)
    }
}

/// What `written_by` says of a Secret no one else changed since provisioner wrote it.
pub const WRITTEN_BY_PROVISIONER: &str = "provisioner";

/// Checks a key of a Secret's data: letters, digits, `-`, `_` and `.`, at most 253
/// (Kubernetes `IsConfigMapKey`, which Secrets use).
pub fn check_data_key(k: &str) -> Result<(), String> {
    let ok = (1..=253).contains(&k.len())
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && k != "."
        && k != ".."
        && !k.starts_with("..");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "\"{k}\" is not a valid Secret key: 1 to 253 letters, digits, `-`, `_` and `.` (not `.`, `..`, or starting with `..`)"
        ))
    }
}

string_enum! {
    /// Whose SSH host keys `known_hosts` holds.
    pub enum KnownHosts {
        /// GitHub's (`github.com`), from `GET /meta` `ssh_keys` (GitHub REST API, "Meta":
        /// "Get GitHub meta information").
        Github = "github",
    }
}

/// The key of a Secret that `known_hosts` fills (the key Flux's Git sources read: Flux
/// docs, "GitRepository", "SSH authentication").
pub const KNOWN_HOSTS_KEY: &str = "known_hosts";

block! {
    /// A Kubernetes Secret whose values come from secret sources.
    pub struct KubeSecret {
        /// The cluster: a reference to a DigitalOcean cluster's kubeconfig (`"${digitalocean.kubernetes_cluster.prod.kubeconfig}"`), or `{ env = "NAME" }` / `{ file = "path" }` holding a kubeconfig. Read into memory only.
        cluster: Secret => update,
        /// The Secret's namespace (it must exist: a `kubernetes.manifest` can make it, named in `depends_on`).
        namespace: Namespace => replace,
        /// The Secret's name.
        name: ObjectName => replace,
        /// The Secret's type (`Opaque`, `kubernetes.io/dockerconfigjson`, ...); Kubernetes does not change it in place.
        r#type: String = "Opaque" => replace,
        /// Secret keys: each value from a secret source (env, file, or a reference to a secret output such as `"${aws.secretsmanager_secret.flux_key.value}"`). Shown as `(sensitive)`; the ledger keeps keyed fingerprints only.
        data: BTreeMap<String, Secret> => update,
        /// Keys whose values are not secret (a `known_hosts`), written here and shown in plans.
        plain: BTreeMap<String, String> => update,
        /// Fill the key `known_hosts` with a host's current SSH host keys: `"github"` reads GitHub's from `GET /meta` on every pass (one request), so a host-key rotation at GitHub becomes a planned update of this Secret instead of a Flux that cannot clone.
        known_hosts: Option<KnownHosts> => update,
        /// Computed, never written: every key of the Secret.
        keys: SecretKeys => update,
        /// Computed, never written: `provisioner`, or who changed the Secret since provisioner wrote it.
        written_by: WrittenBy => update,
        /// Take over a Secret of that name that exists already and was not made by provisioner. Off: it is refused. One another provisioner ledger made is a conflict.
        take_over: bool = false => local,
    }
    check = check_kube_secret;
}

fn check_kube_secret(s: &KubeSecret, span: Span, cx: &mut Cx<'_>) {
    check_cluster(&s.cluster, span, cx);
    if s.known_hosts.is_some()
        && (s.data.contains_key(KNOWN_HOSTS_KEY) || s.plain.contains_key(KNOWN_HOSTS_KEY))
    {
        cx.nested("known_hosts", |cx| {
            cx.error(
                span,
                "`known_hosts` fills the key `known_hosts`: remove that key from `data` or `plain`",
            );
        });
    }
    if s.data.is_empty() && s.plain.is_empty() && s.known_hosts.is_none() {
        cx.error(span, "a Secret with no keys: write `data` (secret values) or `plain` (values that are not secret)");
    }
    for k in s.data.keys() {
        if let Err(e) = check_data_key(k) {
            cx.nested("data", |cx| {
                cx.nested(k.clone(), |cx| {
                    cx.error(span, e.clone());
                })
            });
        }
        if s.plain.contains_key(k) {
            cx.nested("plain", |cx| {
                cx.nested(k.clone(), |cx| {
                    cx.error(span, format!("`{k}` is in both `data` and `plain`"));
                })
            });
        }
    }
    for k in s.plain.keys() {
        if let Err(e) = check_data_key(k) {
            cx.nested("plain", |cx| {
                cx.nested(k.clone(), |cx| {
                    cx.error(span, e.clone());
                })
            });
        }
    }
    if s.r#type.is_empty() || s.r#type.len() > 253 {
        cx.nested("type", |cx| {
            cx.error(span, "a Secret type is 1 to 253 characters");
        });
    }
}

impl KindInfo for KubeSecret {
    const DOC: &'static str = "A Kubernetes Secret, applied with server-side apply (field manager `provisioner`). `data` values come from secret sources and are never shown or stored (the ledger keeps keyed fingerprints); `plain` values are shown and compared. A Secret deleted or changed outside provisioner is written again. See docs/kubernetes.md.";
    const EXPORTS: &'static [Export] = &[
        plain("name", "the Secret's name"),
        plain("namespace", "the Secret's namespace"),
    ];
    const RULES: KindRules = KindRules {
        key: &[exact("namespace"), exact("name")],
        ignore_case: &[],
        // Names are unique in a namespace: the old Secret goes first.
        replacement: Replacement::DestroyFirst,
        unrecoverable: &[],
        expiring: &[],
        carries_lineage: true,
    };
    fn identity(&self) -> Option<String> {
        Some(format!("secret {}/{}", self.namespace.0, self.name.0))
    }
}

/// The spec JSON of a Secret, as the planner reads it: `keys` (every key, sorted) and
/// `written_by` filled in.
pub fn secret_json(s: &KubeSecret, v: &mut Value) {
    let Some(obj) = v.as_object_mut() else {
        return;
    };
    let mut keys: std::collections::BTreeSet<&str> = s
        .data
        .keys()
        .chain(s.plain.keys())
        .map(String::as_str)
        .collect();
    if s.known_hosts.is_some() {
        keys.insert(KNOWN_HOSTS_KEY);
    }
    obj.insert(
        "keys".into(),
        Value::Array(keys.into_iter().map(|k| Value::String(k.into())).collect()),
    );
    obj.insert(
        "written_by".into(),
        Value::String(WRITTEN_BY_PROVISIONER.into()),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::source::{FileId, Span};

    fn parse(text: &str) -> (Option<Vec<ManifestObject>>, Vec<String>) {
        let mut diags = Vec::new();
        let mut cx = Cx::new(&mut diags, "kubernetes.manifest.m", PathBuf::new());
        let span = Span::new(FileId(0), 0..1);
        let out = parse_manifest(text, "m.yaml", span, &mut cx);
        (out, diags.iter().map(|d| d.message.clone()).collect())
    }

    #[test]
    fn keys_name_kind_group_namespace_and_name() {
        assert_eq!(
            object_key("apps/v1", "Deployment", Some("ns"), "web"),
            "Deployment.apps/ns/web"
        );
        assert_eq!(object_key("v1", "Namespace", None, "ns"), "Namespace/ns");
    }

    #[test]
    fn documents_are_split_with_their_lines_and_empty_ones_dropped() {
        let text = "# header\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\n# only a comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: a\n";
        let (objects, problems) = parse(text);
        assert!(problems.is_empty(), "{problems:?}");
        let objects = objects.unwrap();
        assert_eq!(
            objects
                .iter()
                .map(|o| (o.key.as_str(), o.line))
                .collect::<Vec<_>>(),
            [("Namespace/a", 3), ("ConfigMap/a/c", 10)]
        );
        assert!(objects[0].hash.starts_with("sha256:") && objects[0].hash.len() == 23);
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: no-namespace\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  namespace: a\n---\nkind: Thing\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: nsx\n  namespace: a\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: n\n---\n: : bad\n";
        let (objects, problems) = parse(text);
        assert!(objects.is_none());
        let all = problems.join("\n");
        assert!(
            all.contains("m.yaml, line 1: ConfigMap no-namespace is namespaced"),
            "{all}"
        );
        assert!(
            all.contains("m.yaml, line 6: Secret s: a manifest holds no Secrets"),
            "{all}"
        );
        assert!(
            all.contains("m.yaml, line 12: the object has no `apiVersion`"),
            "{all}"
        );
        assert!(
            all.contains("line 14: Namespace nsx is cluster-scoped"),
            "{all}"
        );
        // YAML reads `n` as a boolean, as Kubernetes's own YAML reader does.
        assert!(
            all.contains("line 20: Namespace: `metadata.name` is missing or not a string"),
            "{all}"
        );
        assert!(
            all.contains("document starting on line 25: not YAML"),
            "{all}"
        );
    }

    #[test]
    fn a_crd_in_the_file_says_whether_its_kind_is_namespaced() {
        let text = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec:\n  group: example.com\n  scope: Namespaced\n  names: {kind: Widget, plural: widgets}\n---\napiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n";
        let (_, problems) = parse(text);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("Widget w is namespaced"));
    }

    #[test]
    fn a_duplicate_object_is_refused() {
        let ns = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n";
        let (_, problems) = parse(&format!("{ns}---\n{ns}"));
        assert!(
            problems[0].contains("Namespace/a is already declared on line 1"),
            "{problems:?}"
        );
    }

    const SECRET: &str = "[kubernetes.secret.git]\ncluster = { env = \"KUBECONFIG_PROD\" }\nnamespace = \"flux-system\"\nname = \"flux-system\"\ndata = { identity = { env = \"IDENTITY\" }, password = { file = \"pw\" } }\nplain = { known_hosts = \"github.com ssh-ed25519 AAAA\" }\n";

    #[test]
    fn a_secrets_data_are_secret_values_of_their_own_and_never_compared() {
        let d = crate::plan::planner::testing::desired(SECRET);
        let r = d.resources.values().next().unwrap();
        let paths: Vec<String> = r
            .spec
            .secret_sources()
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(paths, ["cluster", "data.identity", "data.password"]);
        assert!(r.spec.secret("data.identity").is_some());
        assert!(r.spec.secret("data.nothing").is_none());
        let compared: Vec<&str> = crate::desired::Kind::KubeSecret
            .compared_fields()
            .iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(
            compared,
            [
                "namespace",
                "name",
                "type",
                "plain",
                "known_hosts",
                "keys",
                "written_by"
            ]
        );
        // The computed fields are filled in; the sources are not values.
        assert_eq!(
            r.spec_json["keys"],
            serde_json::json!(["identity", "known_hosts", "password"])
        );
        assert_eq!(r.spec_json["written_by"], "provisioner");
    }

    #[test]
    fn a_secret_key_in_data_and_plain_or_an_invalid_key_is_refused() {
        let mut loaded = crate::desired::load::Loaded::default();
        let text = SECRET.replace("password = ", "\"bad key\" = ")
            + "\n[kubernetes.secret.twice]\ncluster = { env = \"K\" }\nnamespace = \"a\"\nname = \"b\"\ndata = { x = { env = \"X\" } }\nplain = { x = \"y\" }\n";
        crate::desired::load::load_text(PathBuf::from("t.toml"), text, &mut loaded);
        let e = format!(
            "{:?}",
            crate::desired::validate::validate(loaded).unwrap_err()
        );
        assert!(
            e.contains("\\\"bad key\\\" is not a valid Secret key"),
            "{e}"
        );
        assert!(e.contains("`x` is in both `data` and `plain`"), "{e}");
    }

    #[test]
    fn names_follow_the_dns_rules() {
        assert!(check_label("flux-system").is_ok());
        assert!(check_label("Flux").is_err());
        assert!(check_label("-a").is_err());
        assert!(check_subdomain("a.b-c").is_ok());
        assert!(check_subdomain("a_b").is_err());
    }
}
