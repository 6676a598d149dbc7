//! The rules kube-apiserver v1.35 applies to an object on its way in, each with its source:
//! defaulting (`pkg/apis/core/v1/defaults.go`, `pkg/apis/apps/v1/defaults.go`,
//! `apiextensions-apiserver/pkg/apis/apiextensions/v1/defaults.go`), what each kind's
//! strategy sets on create and update (`pkg/registry/*/strategy.go`: generation, status
//! reset, a Namespace's finalizer), and the validation of names and labels
//! (`apimachinery/pkg/api/validation`, `pkg/apis/core/validation`), with the messages the
//! apiserver writes.

use serde_json::{Map, Value, json};

use super::schema::Resource;

/// A field's validation failure.
#[derive(Debug, Clone)]
pub struct Cause {
    /// `metadata.name`.
    pub field: String,
    /// `FieldValueInvalid`, `FieldValueRequired`, ...
    pub reason: &'static str,
    /// `Invalid value: "x": ...`.
    pub message: String,
}

const DNS1123_SUBDOMAIN: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1123_LABEL: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_LABEL: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const LABEL_VALUE: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const QUALIFIED_NAME: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

fn is_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_label)
}

fn is_dns1035(s: &str) -> bool {
    is_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

fn is_label_value(s: &str) -> bool {
    let b = s.as_bytes();
    s.is_empty()
        || (b.len() <= 63
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric())
}

fn is_qualified_name(s: &str) -> bool {
    let (prefix, name) = match s.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    prefix.is_none_or(is_subdomain) && name.len() <= 63 && is_label_value(name) && !name.is_empty()
}

fn invalid(field: &str, value: &str, detail: &str) -> Cause {
    Cause {
        field: field.into(),
        reason: "FieldValueInvalid",
        message: format!("Invalid value: {value:?}: {detail}"),
    }
}

/// The name rule of a kind (`ValidateObjectMeta` with each kind's `ValidateNameFunc`):
/// Namespaces are RFC 1123 labels, Services RFC 1035 labels, RBAC objects path segments,
/// everything else RFC 1123 subdomains.
pub fn validate(r: &Resource, obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    if name.is_empty() {
        causes.push(Cause {
            field: "metadata.name".into(),
            reason: "FieldValueRequired",
            message: "Required value: name or generateName is required".into(),
        });
    } else {
        match (r.group.as_str(), r.kind.as_str()) {
            // `IsDNS1123Label` says "must not contain dots" for a name with dots.
            ("", "Namespace") if name.contains('.') => {
                causes.push(invalid("metadata.name", name, "must not contain dots"))
            }
            ("", "Namespace") if !is_label(name) => {
                causes.push(invalid("metadata.name", name, DNS1123_LABEL))
            }
            ("", "Service") if !is_dns1035(name) => {
                causes.push(invalid("metadata.name", name, DNS1035_LABEL))
            }
            ("rbac.authorization.k8s.io", _) => {
                // `path.ValidatePathSegmentName`.
                if name == "." || name == ".." {
                    causes.push(invalid(
                        "metadata.name",
                        name,
                        &format!("may not be '{name}'"),
                    ));
                } else if let Some(c) = ['/', '%'].into_iter().find(|c| name.contains(*c)) {
                    causes.push(invalid(
                        "metadata.name",
                        name,
                        &format!("may not contain '{c}'"),
                    ));
                }
            }
            ("", "Namespace" | "Service") => {}
            _ if !is_subdomain(name) => {
                causes.push(invalid("metadata.name", name, DNS1123_SUBDOMAIN))
            }
            _ => {}
        }
    }
    if let Some(labels) = obj["metadata"]["labels"].as_object() {
        for (k, v) in labels {
            if !is_qualified_name(k) {
                causes.push(invalid("metadata.labels", k, QUALIFIED_NAME));
            }
            match v.as_str() {
                Some(s) if is_label_value(s) => {}
                _ => causes.push(invalid(
                    "metadata.labels",
                    v.as_str().unwrap_or(""),
                    LABEL_VALUE,
                )),
            }
        }
    }
    if r.group == "apiextensions.k8s.io" && r.kind == "CustomResourceDefinition" {
        // `ValidateCustomResourceDefinition`: the name is `<plural>.<group>`.
        let spec = &obj["spec"];
        let want = format!(
            "{}.{}",
            spec["names"]["plural"].as_str().unwrap_or(""),
            spec["group"].as_str().unwrap_or("")
        );
        if !name.is_empty() && name != want {
            causes.push(invalid(
                "metadata.name",
                name,
                "must be spec.names.plural+\".\"+spec.group",
            ));
        }
        match spec["scope"].as_str() {
            Some("Namespaced" | "Cluster") => {}
            other => causes.push(Cause {
                field: "spec.scope".into(),
                reason: "FieldValueNotSupported",
                message: format!(
                    "Unsupported value: {:?}: supported values: \"Cluster\", \"Namespaced\"",
                    other.unwrap_or("")
                ),
            }),
        }
        // `ValidateCustomResourceDefinitionOpenAPISchema`: a list-map key has a default or
        // is required. One version's schema is reported at `spec.validation` (the internal
        // form, when every version shares it).
        let versions = spec["versions"].as_array().cloned().unwrap_or_default();
        for (i, v) in versions.iter().enumerate() {
            if let Some(root) = v["schema"].get("openAPIV3Schema") {
                let at = if versions.len() == 1 {
                    "spec.validation.openAPIV3Schema".to_string()
                } else {
                    format!("spec.versions[{i}].schema.openAPIV3Schema")
                };
                list_map_keys(root, &at, &mut causes);
            }
        }
        let storage = spec["versions"]
            .as_array()
            .map_or(0, |v| v.iter().filter(|v| v["storage"] == true).count());
        if storage != 1 {
            causes.push(Cause {
                field: "spec.versions".into(),
                reason: "FieldValueInvalid",
                message: "Invalid value: []apiextensions.CustomResourceDefinitionVersion(nil): must have exactly one version marked as storage version".into(),
            });
        }
    }
    causes
}

fn list_map_keys(s: &Value, at: &str, causes: &mut Vec<Cause>) {
    if s["x-kubernetes-list-type"] == "map" {
        let required: Vec<&str> = s["items"]["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        for k in s["x-kubernetes-list-map-keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            let prop = &s["items"]["properties"][k];
            if !prop.is_null() && prop.get("default").is_none() && !required.contains(&k) {
                causes.push(Cause {
                    field: format!("{at}.items.properties[{k}].default"),
                    reason: "FieldValueRequired",
                    message: "Required value: this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property".into(),
                });
            }
        }
    }
    if let Some(props) = s["properties"].as_object() {
        for (k, v) in props {
            list_map_keys(v, &format!("{at}.properties[{k}]"), causes);
        }
    }
    if s["items"].is_object() {
        list_map_keys(&s["items"], &format!("{at}.items"), causes);
    }
}

fn set_default(o: &mut Map<String, Value>, k: &str, v: Value) {
    if o.get(k).is_none_or(Value::is_null) {
        o.insert(k.into(), v);
    }
}

fn obj_at<'a>(v: &'a mut Value, k: &str) -> Option<&'a mut Map<String, Value>> {
    let o = v.as_object_mut()?;
    if !o.get(k).is_some_and(Value::is_object) {
        return None;
    }
    o.get_mut(k)?.as_object_mut()
}

/// Defaulting, as the decoder runs it on every write of a built-in kind.
pub fn defaults(r: &Resource, obj: &mut Value) {
    match (r.group.as_str(), r.kind.as_str()) {
        ("", "Namespace") => {
            // `SetDefaults_Namespace`: the `kubernetes.io/metadata.name` label.
            if let Some(name) = obj["metadata"]["name"].as_str().map(str::to_string)
                && !name.is_empty()
                && let Some(m) = obj_at(obj, "metadata")
            {
                let labels = m.entry("labels").or_insert_with(|| json!({}));
                if let Some(l) = labels.as_object_mut() {
                    l.insert("kubernetes.io/metadata.name".into(), json!(name));
                }
            }
        }
        ("", "Secret") => {
            // `SetDefaults_Secret`: `type: Opaque`; `stringData` is merged into `data` on
            // conversion and never stored.
            if let Some(o) = obj.as_object_mut() {
                set_default(o, "type", json!("Opaque"));
                if let Some(Value::Object(sd)) = o.remove("stringData") {
                    use base64::Engine;
                    let data = o.entry("data").or_insert_with(|| json!({}));
                    if let Some(d) = data.as_object_mut() {
                        for (k, v) in sd {
                            let text = v.as_str().unwrap_or_default();
                            d.insert(
                                k,
                                json!(base64::engine::general_purpose::STANDARD.encode(text)),
                            );
                        }
                    }
                }
            }
        }
        ("", "Service") => {
            if let Some(spec) = obj_at(obj, "spec") {
                set_default(spec, "type", json!("ClusterIP"));
                set_default(spec, "sessionAffinity", json!("None"));
                set_default(spec, "internalTrafficPolicy", json!("Cluster"));
                for p in spec
                    .get_mut("ports")
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    if let Some(p) = p.as_object_mut() {
                        set_default(p, "protocol", json!("TCP"));
                        if let Some(port) = p.get("port").cloned() {
                            set_default(p, "targetPort", port);
                        }
                    }
                }
            }
        }
        ("apps", "Deployment") => {
            if let Some(spec) = obj_at(obj, "spec") {
                set_default(spec, "replicas", json!(1));
                set_default(spec, "revisionHistoryLimit", json!(10));
                set_default(spec, "progressDeadlineSeconds", json!(600));
                let strategy = spec.entry("strategy").or_insert_with(|| json!({}));
                if let Some(s) = strategy.as_object_mut() {
                    set_default(s, "type", json!("RollingUpdate"));
                    if s["type"] == "RollingUpdate" {
                        let ru = s.entry("rollingUpdate").or_insert_with(|| json!({}));
                        if let Some(ru) = ru.as_object_mut() {
                            set_default(ru, "maxUnavailable", json!("25%"));
                            set_default(ru, "maxSurge", json!("25%"));
                        }
                    }
                }
                if let Some(t) = spec.get_mut("template")
                    && let Some(ps) = obj_at(t, "spec")
                {
                    pod_defaults(ps);
                }
            }
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            if let Some(spec) = obj_at(obj, "spec") {
                set_default(spec, "conversion", json!({"strategy": "None"}));
                if let Some(names) = spec.get_mut("names").and_then(Value::as_object_mut) {
                    let kind = names
                        .get("kind")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    if !kind.is_empty() {
                        set_default(names, "singular", json!(kind.to_lowercase()));
                        set_default(names, "listKind", json!(format!("{kind}List")));
                    }
                }
            }
        }
        _ => {}
    }
}

/// `SetDefaults_PodSpec` and `SetDefaults_Container` (core/v1 defaults.go).
fn pod_defaults(ps: &mut Map<String, Value>) {
    set_default(ps, "restartPolicy", json!("Always"));
    set_default(ps, "terminationGracePeriodSeconds", json!(30));
    set_default(ps, "dnsPolicy", json!("ClusterFirst"));
    set_default(ps, "securityContext", json!({}));
    set_default(ps, "schedulerName", json!("default-scheduler"));
    for list in ["containers", "initContainers"] {
        for c in ps
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let Some(c) = c.as_object_mut() else { continue };
            set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
            set_default(c, "terminationMessagePolicy", json!("File"));
            set_default(c, "resources", json!({}));
            // `:latest` or no tag pulls always; anything else if not present.
            let image = c.get("image").and_then(Value::as_str).unwrap_or("");
            let tag = image
                .rsplit_once('/')
                .map_or(image, |(_, last)| last)
                .split_once(':')
                .map(|(_, t)| t);
            let digest = image.contains('@');
            let policy = if !digest && tag.is_none_or(|t| t == "latest") {
                "Always"
            } else {
                "IfNotPresent"
            };
            set_default(c, "imagePullPolicy", json!(policy));
            for p in c
                .get_mut("ports")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                if let Some(p) = p.as_object_mut() {
                    set_default(p, "protocol", json!("TCP"));
                }
            }
        }
    }
}

/// What the kind's strategy sets on create, after defaulting (`PrepareForCreate`): a
/// Namespace's `kubernetes` finalizer and `Active` phase, a Deployment's empty status, a
/// CustomResourceDefinition's initial status (its names not yet accepted).
pub fn prepare_create(r: &Resource, obj: &mut Value) {
    let Some(o) = obj.as_object_mut() else { return };
    match (r.group.as_str(), r.kind.as_str()) {
        ("", "Namespace") => {
            o.insert("spec".into(), json!({"finalizers": ["kubernetes"]}));
            o.insert("status".into(), json!({"phase": "Active"}));
        }
        ("apps", "Deployment") => {
            o.insert("status".into(), json!({}));
        }
        ("", "Service") => {
            o.insert("status".into(), json!({"loadBalancer": {}}));
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            let storage: Vec<Value> = o["spec"]["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|v| v["storage"] == true)
                .map(|v| v["name"].clone())
                .collect();
            o.insert(
                "status".into(),
                json!({"conditions": null, "acceptedNames": {"plural": "", "kind": ""}, "storedVersions": storage}),
            );
        }
        _ => {}
    }
}

/// Whether a write moves `metadata.generation`, and whether the kind keeps one at all
/// (`None`): Deployments on a change of spec or annotations (`deployment/strategy.go`),
/// CustomResourceDefinitions on a change of spec, custom resources on a change of anything
/// but metadata (and status, with a status subresource) (`customresource/strategy.go`);
/// the other kinds served keep none.
pub fn generation_moves(r: &Resource, old: &Value, new: &Value) -> Option<bool> {
    let without = |v: &Value, keys: &[&str]| {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            for k in keys {
                o.remove(*k);
            }
        }
        v
    };
    if r.custom {
        let skip: &[&str] = if r.status {
            &["metadata", "status"]
        } else {
            &["metadata"]
        };
        return Some(without(old, skip) != without(new, skip));
    }
    match (r.group.as_str(), r.kind.as_str()) {
        ("apps", "Deployment") => Some(
            old["spec"] != new["spec"]
                || old["metadata"]["annotations"] != new["metadata"]["annotations"],
        ),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => Some(old["spec"] != new["spec"]),
        _ => None,
    }
}

/// The longest field manager name (`validation.FieldManagerMaxLength`).
const FIELD_MANAGER_MAX: usize = 128;

/// The manager a write is recorded under: the `fieldManager` parameter, or else the
/// User-Agent up to its first `/`, unprintable characters left out, cut at 128 bytes
/// (`handlers/create.go` `managerOrUserAgent`, `prefixFromUserAgent`); `unknown` when that is
/// empty (`managedfields/internal/buildmanagerinfo.go`).
pub fn manager_name(field_manager: &str, user_agent: &str) -> String {
    if !field_manager.is_empty() {
        return field_manager.to_string();
    }
    let mut name = String::new();
    // Go's `unicode.IsPrint`: graphic characters and the ASCII space.
    for c in user_agent.split('/').next().unwrap_or("").chars() {
        if c.is_control() || (c.is_whitespace() && c != ' ') {
            continue;
        }
        if name.len() + c.len_utf8() > FIELD_MANAGER_MAX {
            break;
        }
        name.push(c);
    }
    if name.is_empty() {
        "unknown".into()
    } else {
        name
    }
}

/// Drops what an object's metadata loses on its way through the typed `ObjectMeta`, whose
/// fields are all `omitempty` (`apimachinery/pkg/apis/meta/v1/types.go`): an empty map
/// (`labels: {}` once a merge patch removed the last label), an empty list, an empty string,
/// a null. Built-in kinds are decoded into their Go type; a custom resource's metadata is
/// round-tripped through `ObjectMeta` too (`apiextensions-apiserver`
/// `pkg/apiserver/schema/objectmeta/coerce.go`).
pub fn drop_empty_metadata(obj: &mut Value) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.retain(|_, v| match v {
            Value::Null => false,
            Value::String(s) => !s.is_empty(),
            Value::Object(m) => !m.is_empty(),
            Value::Array(a) => !a.is_empty(),
            _ => true,
        });
    }
}

/// Marks an object as being deleted (`genericregistry.Store` `markAsDeleting`; for
/// graceful deletion `rest.BeforeDelete`): `deletionTimestamp` and a zero grace period,
/// and, the first time, the generation moves on if the kind keeps one ("controllers of
/// the object that's being deleted shouldn't take any nontrivial actions"). A
/// CustomResourceDefinition's own `Delete` (`crd`) does neither of the last two.
pub fn mark_deleting(obj: &mut Value, now: &str, crd: bool) {
    if !obj["metadata"]["deletionTimestamp"].is_null() {
        return;
    }
    obj["metadata"]["deletionTimestamp"] = json!(now);
    if crd {
        return;
    }
    obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
    if let Some(g) = obj["metadata"]["generation"].as_i64().filter(|g| *g > 0) {
        obj["metadata"]["generation"] = json!(g + 1);
    }
}

/// Whether a DELETE that removes the object at once answers with the object as it was
/// stored, rather than a `Status` of `Success`: the registries that set
/// `ReturnDeletedObject: true` (`pkg/registry/core/serviceaccount/storage/storage.go`,
/// `core/service/storage/storage.go`; `genericregistry.Store.finalizeDelete`). ConfigMaps,
/// Secrets, Deployments, RBAC objects, CustomResourceDefinitions and custom resources answer
/// with the `Status`; a Namespace is never removed at once (its `kubernetes` finalizer).
pub fn delete_returns_object(r: &Resource) -> bool {
    r.group.is_empty() && matches!(r.kind.as_str(), "ServiceAccount" | "Service")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rfc_each_kind_uses() {
        assert!(is_subdomain("a.b-c"));
        assert!(!is_subdomain("Bad_Name"));
        assert!(!is_label("a.b"));
        assert!(!is_dns1035("1abc"));
        assert!(is_qualified_name("app.kubernetes.io/managed-by"));
        assert!(!is_qualified_name("bad key!"));
        assert!(is_label_value(""));
        assert!(!is_label_value("-x"));
    }

    #[test]
    fn a_write_without_a_field_manager_is_its_user_agents_or_unknowns() {
        assert_eq!(
            manager_name("kubectl-edit", "kubectl/v1.35"),
            "kubectl-edit"
        );
        assert_eq!(
            manager_name("", "kubectl/v1.35.4 (linux/amd64) kubernetes/e3b1a0b"),
            "kubectl"
        );
        assert_eq!(manager_name("", ""), "unknown");
        assert_eq!(manager_name("", "/v1"), "unknown");
        assert_eq!(manager_name("", &"x".repeat(200)).len(), 128);
    }

    #[test]
    fn empty_metadata_maps_are_dropped_and_the_rest_kept() {
        let mut o = json!({"metadata": {"name": "a", "labels": {}, "annotations": {"k": "v"},
            "finalizers": [], "generateName": "", "ownerReferences": null}, "data": {}});
        drop_empty_metadata(&mut o);
        assert_eq!(
            o,
            json!({"metadata": {"name": "a", "annotations": {"k": "v"}}, "data": {}})
        );
    }
}
