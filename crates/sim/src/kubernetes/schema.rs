//! What the simulator knows of each kind: its resource (group, version, plural, scope,
//! subresources, as discovery shows them) and the shape server-side apply walks (which maps
//! are structs and which free maps, which lists are associative and by which keys). The
//! built-in shapes follow the `+listType`, `+listMapKey`, `+mapType` and `+structType`
//! markers of `k8s.io/api` v0.35 (`core/v1/types.go`, `apps/v1/types.go`,
//! `rbac/v1/types.go`, `apiextensions/v1/types.go`), which kube-apiserver turns into its
//! OpenAPI schema; a custom resource's comes from its CustomResourceDefinition's structural
//! schema (`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`, `x-kubernetes-map-type`,
//! `x-kubernetes-preserve-unknown-fields`; CustomResourceDefinition docs, "Specifying a
//! structural schema" and "Field pruning").

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

/// What a struct does with fields it does not declare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unknown {
    /// Keeps them, walked as deduced values (built-ins here; custom resources with
    /// `x-kubernetes-preserve-unknown-fields`).
    Keep,
    /// Drops them (a structural schema's pruning).
    Prune,
}

/// A struct's fields.
#[derive(Debug)]
pub struct Fields {
    /// Declared fields.
    pub fields: BTreeMap<String, Schema>,
    /// What happens to the others.
    pub unknown: Unknown,
}

/// An associative list's keys, each with its default.
pub type ListKeys = Vec<(String, Option<Value>)>;

/// The shape of a value, as server-side apply sees it.
#[derive(Clone, Debug)]
pub enum Schema {
    /// A scalar.
    Scalar,
    /// Replaced whole (`+listType=atomic`, `+structType=atomic`, `+mapType=atomic`).
    Atomic,
    /// Untyped: maps are free maps of deduced values, lists atomic.
    Deduced,
    /// A struct with declared fields.
    Struct(Arc<Fields>),
    /// A map with free keys.
    Map(Arc<Schema>),
    /// `+listType=map`: items by their keys (with each key's default).
    AssocList(Arc<(ListKeys, Schema)>),
    /// `+listType=set` of scalars.
    SetList,
}

fn st(fields: Vec<(&str, Schema)>) -> Schema {
    Schema::Struct(Arc::new(Fields {
        fields: fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        unknown: Unknown::Keep,
    }))
}

fn map(elem: Schema) -> Schema {
    Schema::Map(Arc::new(elem))
}

fn strings() -> Schema {
    map(Schema::Scalar)
}

fn assoc(keys: &[&str], elem: Schema) -> Schema {
    Schema::AssocList(Arc::new((
        keys.iter().map(|k| (k.to_string(), None)).collect(),
        elem,
    )))
}

/// A list of ports keyed by (`key`, `protocol`), `protocol` defaulting to `TCP`
/// (`ContainerPort`: `+listMapKey=containerPort`, `+listMapKey=protocol`; `ServicePort`:
/// `port`, `protocol`; structured-merge-diff fills a missing key from its default).
fn ports(key: &str) -> Schema {
    Schema::AssocList(Arc::new((
        vec![
            (key.to_string(), None),
            ("protocol".to_string(), Some(json!("TCP"))),
        ],
        Schema::Deduced,
    )))
}

/// `ObjectMeta`: labels and annotations are free maps, finalizers a set, owner references
/// keyed by `uid`.
fn object_meta() -> Schema {
    st(vec![
        ("labels", strings()),
        ("annotations", strings()),
        ("finalizers", Schema::SetList),
        ("ownerReferences", assoc(&["uid"], Schema::Deduced)),
        ("managedFields", Schema::Atomic),
    ])
}

fn container() -> Schema {
    st(vec![
        ("ports", ports("containerPort")),
        ("env", assoc(&["name"], Schema::Deduced)),
        ("volumeMounts", assoc(&["mountPath"], Schema::Deduced)),
        ("volumeDevices", assoc(&["devicePath"], Schema::Deduced)),
        ("command", Schema::Atomic),
        ("args", Schema::Atomic),
        ("envFrom", Schema::Atomic),
        (
            "resources",
            st(vec![
                ("limits", strings()),
                ("requests", strings()),
                ("claims", assoc(&["name"], Schema::Deduced)),
            ]),
        ),
    ])
}

fn pod_spec() -> Schema {
    st(vec![
        ("containers", assoc(&["name"], container())),
        ("initContainers", assoc(&["name"], container())),
        ("volumes", assoc(&["name"], Schema::Deduced)),
        ("imagePullSecrets", assoc(&["name"], Schema::Deduced)),
        ("tolerations", Schema::Atomic),
        ("nodeSelector", strings()),
        ("hostAliases", assoc(&["ip"], Schema::Deduced)),
        ("topologySpreadConstraints", Schema::Atomic),
    ])
}

fn label_selector() -> Schema {
    // `LabelSelector` is `+structType=atomic`.
    Schema::Atomic
}

/// The shape of a built-in kind (`group/version`, kind); `None` for a kind not built in.
pub fn builtin(api_version: &str, kind: &str) -> Option<Schema> {
    let meta = || ("metadata", object_meta());
    Some(match (api_version, kind) {
        ("v1", "ConfigMap") => st(vec![meta(), ("data", strings()), ("binaryData", strings())]),
        ("v1", "Secret") => st(vec![meta(), ("data", strings()), ("stringData", strings())]),
        ("v1", "Namespace") => st(vec![
            meta(),
            ("spec", st(vec![("finalizers", Schema::Atomic)])),
            (
                "status",
                st(vec![("conditions", assoc(&["type"], Schema::Deduced))]),
            ),
        ]),
        ("v1", "ServiceAccount") => st(vec![
            meta(),
            ("secrets", assoc(&["name"], Schema::Deduced)),
            ("imagePullSecrets", Schema::Atomic),
        ]),
        ("v1", "Service") => st(vec![
            meta(),
            (
                "spec",
                st(vec![
                    ("ports", ports("port")),
                    ("selector", Schema::Atomic),
                    ("clusterIPs", Schema::Atomic),
                    ("ipFamilies", Schema::Atomic),
                    ("externalIPs", Schema::Atomic),
                    ("loadBalancerSourceRanges", Schema::Atomic),
                ]),
            ),
            (
                "status",
                st(vec![("conditions", assoc(&["type"], Schema::Deduced))]),
            ),
        ]),
        ("apps/v1", "Deployment") => st(vec![
            meta(),
            (
                "spec",
                st(vec![
                    ("selector", label_selector()),
                    (
                        "template",
                        st(vec![("metadata", object_meta()), ("spec", pod_spec())]),
                    ),
                    ("strategy", st(vec![])),
                ]),
            ),
            (
                "status",
                st(vec![("conditions", assoc(&["type"], Schema::Deduced))]),
            ),
        ]),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => st(vec![
            meta(),
            ("rules", Schema::Atomic),
            (
                "aggregationRule",
                st(vec![("clusterRoleSelectors", Schema::Atomic)]),
            ),
        ]),
        ("rbac.authorization.k8s.io/v1", "Role") => st(vec![meta(), ("rules", Schema::Atomic)]),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding" | "RoleBinding") => st(vec![
            meta(),
            ("subjects", Schema::Atomic),
            ("roleRef", Schema::Atomic),
        ]),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => st(vec![
            meta(),
            (
                "spec",
                st(vec![
                    ("versions", Schema::Atomic),
                    (
                        "names",
                        st(vec![
                            ("shortNames", Schema::Atomic),
                            ("categories", Schema::Atomic),
                        ]),
                    ),
                ]),
            ),
            (
                "status",
                st(vec![
                    ("conditions", assoc(&["type"], Schema::Deduced)),
                    ("storedVersions", Schema::Atomic),
                ]),
            ),
        ]),
        _ => return None,
    })
}

/// A resource type the server serves.
#[derive(Clone, Debug)]
pub struct Resource {
    /// API group (`""` for the core group).
    pub group: String,
    /// Version.
    pub version: String,
    /// Plural name (the URL segment).
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Kind.
    pub kind: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Whether it has a `/status` subresource.
    pub status: bool,
    /// Short names.
    pub short_names: Vec<String>,
    /// Categories.
    pub categories: Vec<String>,
    /// Its shape.
    pub schema: Schema,
    /// Whether it is a custom resource (stored unstructured).
    pub custom: bool,
}

impl Resource {
    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `plural` or `plural.group`, as the apiserver's messages name it.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

/// The built-in resources served (a subset of kube-apiserver v1.35's, with their discovery
/// data as `/api` and `/apis` show it).
pub fn builtins() -> Vec<Resource> {
    let r = |group: &str,
             version: &str,
             plural: &str,
             singular: &str,
             kind: &str,
             namespaced: bool,
             status: bool,
             short: &[&str],
             categories: &[&str]| {
        let api_version = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        Resource {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            singular: singular.into(),
            kind: kind.into(),
            namespaced,
            status,
            short_names: short.iter().map(|s| s.to_string()).collect(),
            categories: categories.iter().map(|s| s.to_string()).collect(),
            schema: builtin(&api_version, kind).unwrap_or(Schema::Deduced),
            custom: false,
        }
    };
    vec![
        r(
            "",
            "v1",
            "configmaps",
            "configmap",
            "ConfigMap",
            true,
            false,
            &["cm"],
            &[],
        ),
        r(
            "",
            "v1",
            "namespaces",
            "namespace",
            "Namespace",
            false,
            true,
            &["ns"],
            &[],
        ),
        r(
            "",
            "v1",
            "secrets",
            "secret",
            "Secret",
            true,
            false,
            &[],
            &[],
        ),
        r(
            "",
            "v1",
            "serviceaccounts",
            "serviceaccount",
            "ServiceAccount",
            true,
            false,
            &["sa"],
            &[],
        ),
        r(
            "",
            "v1",
            "services",
            "service",
            "Service",
            true,
            true,
            &["svc"],
            &["all"],
        ),
        r(
            "apps",
            "v1",
            "deployments",
            "deployment",
            "Deployment",
            true,
            true,
            &["deploy"],
            &["all"],
        ),
        r(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterrolebindings",
            "clusterrolebinding",
            "ClusterRoleBinding",
            false,
            false,
            &[],
            &[],
        ),
        r(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterroles",
            "clusterrole",
            "ClusterRole",
            false,
            false,
            &[],
            &[],
        ),
        r(
            "rbac.authorization.k8s.io",
            "v1",
            "rolebindings",
            "rolebinding",
            "RoleBinding",
            true,
            false,
            &[],
            &[],
        ),
        r(
            "rbac.authorization.k8s.io",
            "v1",
            "roles",
            "role",
            "Role",
            true,
            false,
            &[],
            &[],
        ),
        r(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "customresourcedefinition",
            "CustomResourceDefinition",
            false,
            true,
            &["crd", "crds"],
            &["api-extensions"],
        ),
    ]
}

/// The shape of a custom resource from one version's `openAPIV3Schema`: the object's
/// `apiVersion`, `kind` and `metadata` are always declared.
pub fn from_openapi(root: Option<&Value>) -> Schema {
    let mut s = match root {
        Some(r) => openapi(r),
        None => Schema::Deduced,
    };
    if let Schema::Struct(fields) = &mut s {
        let mut f = BTreeMap::new();
        for (k, v) in &fields.fields {
            f.insert(k.clone(), v.clone());
        }
        f.insert("metadata".into(), object_meta());
        f.insert("apiVersion".into(), Schema::Scalar);
        f.insert("kind".into(), Schema::Scalar);
        s = Schema::Struct(Arc::new(Fields {
            fields: f,
            unknown: fields.unknown,
        }));
    } else {
        // A root that preserves everything: a struct that keeps unknown fields.
        s = Schema::Struct(Arc::new(Fields {
            fields: BTreeMap::from([
                ("metadata".to_string(), object_meta()),
                ("apiVersion".to_string(), Schema::Scalar),
                ("kind".to_string(), Schema::Scalar),
            ]),
            unknown: Unknown::Keep,
        }));
    }
    s
}

fn openapi(s: &Value) -> Schema {
    let preserve = s
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true);
    if s.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true) {
        return Schema::Scalar;
    }
    let ty = s.get("type").and_then(Value::as_str).unwrap_or("");
    match ty {
        "array" => match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("map") => {
                let keys: Vec<(String, Option<Value>)> = s
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(|k| {
                        let default = s
                            .pointer(&format!("/items/properties/{k}/default"))
                            .cloned();
                        (k.to_string(), default)
                    })
                    .collect();
                let elem = s.get("items").map_or(Schema::Deduced, openapi);
                Schema::AssocList(Arc::new((keys, elem)))
            }
            Some("set") => Schema::SetList,
            _ => Schema::Atomic,
        },
        "object" | "" => {
            if s.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic") {
                return Schema::Atomic;
            }
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                Schema::Struct(Arc::new(Fields {
                    fields: props.iter().map(|(k, v)| (k.clone(), openapi(v))).collect(),
                    unknown: if preserve {
                        Unknown::Keep
                    } else {
                        Unknown::Prune
                    },
                }))
            } else if let Some(ap) = s.get("additionalProperties") {
                if ap.is_object() {
                    map(openapi(ap))
                } else {
                    map(Schema::Deduced)
                }
            } else if preserve || ty.is_empty() {
                Schema::Deduced
            } else {
                // An object that declares nothing and preserves nothing: every field is
                // pruned.
                Schema::Struct(Arc::new(Fields {
                    fields: BTreeMap::new(),
                    unknown: Unknown::Prune,
                }))
            }
        }
        _ => Schema::Scalar,
    }
}

/// The kind's "zero object": what an empty Go struct of it serialises to, the old object a
/// create is compared with for its managed fields (`scope.Creater.New`; non-pointer
/// structs are present, nil maps and slices without `omitempty` are null).
pub fn zero(api_version: &str, kind: &str) -> Value {
    let meta = json!({"creationTimestamp": null});
    match (api_version, kind) {
        ("v1", "Namespace") => json!({"metadata": meta, "spec": {}, "status": {}}),
        ("v1", "Service") => {
            json!({"metadata": meta, "spec": {}, "status": {"loadBalancer": {}}})
        }
        ("apps/v1", "Deployment") => json!({"metadata": meta, "spec": {
            "selector": null, "strategy": {},
            "template": {"metadata": {"creationTimestamp": null}, "spec": {"containers": null}}},
            "status": {}}),
        ("rbac.authorization.k8s.io/v1", "ClusterRole" | "Role") => {
            json!({"metadata": meta, "rules": null})
        }
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding" | "RoleBinding") => {
            json!({"metadata": meta, "roleRef": {"apiGroup": "", "kind": "", "name": ""}})
        }
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => json!({"metadata": meta,
            "spec": {"group": "", "names": {"plural": "", "kind": ""}, "scope": "", "versions": null},
            "status": {"conditions": null, "acceptedNames": {"plural": "", "kind": ""}, "storedVersions": null}}),
        (_, _) if builtin(api_version, kind).is_some() => json!({"metadata": meta}),
        _ => json!({}),
    }
}
