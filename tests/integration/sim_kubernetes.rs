//! The Kubernetes simulator held to a real kube-apiserver v1.35: one script of raw requests
//! (the ones the provider and its tests make: apply, re-apply, conflicting applies, an edit
//! by another field manager, metadata-only lists with selectors, a custom resource's status,
//! deletes, a Namespace's deletion, the validation errors) is sent to both, and every answer
//! is compared: status code, `Status` reason, message and causes, `managedFields` (manager,
//! operation, subresource, apiVersion, fieldsV1), generation, labels, annotations and the
//! whole body, once uids, resourceVersions, times and allocated IPs are normalised. The real
//! server is the one the provider tests use (`kube/support.rs`: skipped without one, except
//! in CI). Sim-only tests below run without any apiserver.

use provisioner::sim::kubernetes::{KubeConfig, KubeSim};
use serde_json::{Value, json};

use crate::kubernetes::support;

/// Where requests go: a base URL, a token, and a client that trusts the server.
struct Backend {
    url: String,
    token: String,
    client: reqwest::Client,
}

const APPLY: &str = "application/apply-patch+yaml";
const MERGE: &str = "application/merge-patch+json";
const JSON: &str = "application/json";
const META_LIST: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
const META: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";

impl Backend {
    fn real(s: &support::Server) -> Backend {
        let cert = reqwest::Certificate::from_pem(s.ca_pem.as_ref().unwrap()).unwrap();
        Backend {
            url: s.url.clone(),
            token: s.token.clone(),
            client: reqwest::Client::builder()
                .add_root_certificate(cert)
                .build()
                .unwrap(),
        }
    }

    fn sim(s: &KubeSim) -> Backend {
        Backend {
            url: s.url().to_string(),
            token: s.token().to_string(),
            client: reqwest::Client::new(),
        }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &str,
        accept: &str,
    ) -> (u16, Value) {
        self.send_as(method, path, content_type, body, accept, "")
            .await
    }

    /// [`Backend::send`] with a `User-Agent` (none when empty, as reqwest sends none).
    async fn send_as(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &str,
        accept: &str,
        user_agent: &str,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{path}", self.url),
            )
            .bearer_auth(&self.token);
        if !content_type.is_empty() {
            req = req.header("content-type", content_type);
        }
        if !accept.is_empty() {
            req = req.header("accept", accept);
        }
        if !user_agent.is_empty() {
            req = req.header("user-agent", user_agent);
        }
        if !body.is_empty() {
            req = req.body(body.to_string());
        }
        let answer = req.send().await.unwrap();
        let code = answer.status().as_u16();
        let text = answer.text().await.unwrap();
        (
            code,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

/// What the script saw, step by step: (label, code, body).
type Trace = Vec<(String, u16, Value)>;

/// Removes what differs between any two servers (uids, resourceVersions, times, allocated
/// IPs) and sorts what the apiserver orders by time.
fn normalise(v: &mut Value) {
    match v {
        Value::Object(o) => {
            for k in [
                "uid",
                "resourceVersion",
                "creationTimestamp",
                "deletionTimestamp",
                "time",
                "lastTransitionTime",
                "clusterIP",
                "clusterIPs",
            ] {
                if o.contains_key(k) {
                    o.insert(k.into(), json!("*"));
                }
            }
            if let Some(Value::Array(entries)) = o.get_mut("managedFields") {
                entries.sort_by_key(|e| {
                    format!(
                        "{} {} {} {}",
                        e["operation"], e["manager"], e["apiVersion"], e["subresource"]
                    )
                });
            }
            if let Some(Value::Array(causes)) = o.get_mut("causes") {
                causes.sort_by_key(|c| c.to_string());
            }
            for v in o.values_mut() {
                normalise(v);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(normalise),
        _ => {}
    }
}

/// The script, run against one backend, in namespace `ns` (the same name on both, so
/// bodies compare).
async fn script(b: &Backend, ns: &str) -> Trace {
    let mut t: Trace = Vec::new();
    let group = format!("{ns}.kubesim.dev");
    macro_rules! step {
        ($label:expr, $method:expr, $path:expr, $ct:expr, $body:expr) => {
            step!($label, $method, $path, $ct, $body, "")
        };
        ($label:expr, $method:expr, $path:expr, $ct:expr, $body:expr, $accept:expr) => {
            step!($label, $method, $path, $ct, $body, $accept, "")
        };
        ($label:expr, $method:expr, $path:expr, $ct:expr, $body:expr, $accept:expr, $agent:expr) => {{
            let (code, body) = b
                .send_as(
                    $method,
                    &$path,
                    $ct,
                    String::as_str(&$body),
                    $accept,
                    $agent,
                )
                .await;
            t.push(($label.to_string(), code, body.clone()));
            (code, body)
        }};
    }
    let cm = |data: Value| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "settings", "labels": {"app.kubernetes.io/managed-by": "provisioner", "tier": "front"},
                         "annotations": {"provisioner.dev/applied": "sha256:1"}},
            "data": data})
        .to_string()
    };
    let nsp = format!("/api/v1/namespaces/{ns}");
    let cmp = format!("{nsp}/configmaps/settings");

    // A Namespace made by hand (an Update), then everything in it applied.
    step!(
        "create namespace",
        "POST",
        "/api/v1/namespaces?fieldManager=kubectl-create",
        JSON,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}).to_string()
    );
    let (_, first) = step!(
        "apply configmap",
        "PATCH",
        format!("{cmp}?fieldManager=provisioner&force=true"),
        APPLY,
        cm(json!({"region": "eu-west-1", "replicas": "2", "extra": "x"}))
    );
    let (_, again) = step!(
        "re-apply configmap unchanged",
        "PATCH",
        format!("{cmp}?fieldManager=provisioner&force=true"),
        APPLY,
        cm(json!({"region": "eu-west-1", "replicas": "2", "extra": "x"}))
    );
    t.push((
        "an unchanged re-apply keeps the resourceVersion".into(),
        0,
        json!(first["metadata"]["resourceVersion"] == again["metadata"]["resourceVersion"]),
    ));
    step!(
        "conflicting apply by another manager",
        "PATCH",
        format!("{cmp}?fieldManager=someone-else"),
        APPLY,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
            "data": {"region": "us-east-1", "replicas": "3"}})
        .to_string()
    );
    step!(
        "same-value apply by another manager shares the field",
        "PATCH",
        format!("{cmp}?fieldManager=sharer"),
        APPLY,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
            "data": {"replicas": "2"}})
        .to_string()
    );
    step!(
        "forced apply by another manager",
        "PATCH",
        format!("{cmp}?fieldManager=someone-else&force=true"),
        APPLY,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
            "data": {"region": "us-east-1"}})
        .to_string()
    );
    step!(
        "merge patch by kubectl-edit",
        "PATCH",
        format!("{cmp}?fieldManager=kubectl-edit"),
        MERGE,
        json!({"data": {"replicas": "5", "added": "y"}, "metadata": {"labels": {"edited": "true"}}})
            .to_string()
    );
    step!(
        "conflict with an updater",
        "PATCH",
        format!("{cmp}?fieldManager=provisioner"),
        APPLY,
        cm(json!({"region": "eu-west-1", "replicas": "2"}))
    );
    step!(
        "forced apply takes back and prunes what it dropped",
        "PATCH",
        format!("{cmp}?fieldManager=provisioner&force=true"),
        APPLY,
        cm(json!({"region": "eu-west-1", "replicas": "2"}))
    );
    step!(
        "yaml apply",
        "PATCH",
        format!("{nsp}/configmaps/yaml?fieldManager=provisioner"),
        APPLY,
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: yaml\n  labels:\n    tier: back\ndata:\n  a: \"1\"\n"
        )
    );

    // Built-in kinds with defaults and generations.
    let deploy = |image: &str, annotation: &str| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "annotations": {"provisioner.dev/applied": annotation},
                         "labels": {"app.kubernetes.io/managed-by": "provisioner"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                    {"name": "web", "image": image, "ports": [{"containerPort": 80}],
                     "env": [{"name": "A", "value": "1"}]},
                    {"name": "side", "image": "busybox"}]}}}})
        .to_string()
    };
    let dp = format!("/apis/apps/v1/namespaces/{ns}/deployments/web");
    step!(
        "apply deployment",
        "PATCH",
        format!("{dp}?fieldManager=provisioner&force=true"),
        APPLY,
        deploy("nginx:1.27", "sha256:1")
    );
    step!(
        "deployment spec change bumps generation",
        "PATCH",
        format!("{dp}?fieldManager=provisioner&force=true"),
        APPLY,
        deploy("nginx:1.28", "sha256:1")
    );
    step!(
        "deployment annotation change bumps generation",
        "PATCH",
        format!("{dp}?fieldManager=provisioner&force=true"),
        APPLY,
        deploy("nginx:1.28", "sha256:2")
    );
    step!(
        "deployment label change does not",
        "PATCH",
        format!("{dp}?fieldManager=kubectl-label"),
        MERGE,
        json!({"metadata": {"labels": {"x": "y"}}}).to_string()
    );
    step!(
        "deployment scaled by an updater",
        "PATCH",
        format!("{dp}?fieldManager=kubectl-scale"),
        MERGE,
        json!({"spec": {"replicas": 3}}).to_string()
    );
    step!(
        "apply secret",
        "PATCH",
        format!("{nsp}/secrets/creds?fieldManager=provisioner&force=true"),
        APPLY,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
            "data": {"identity": "c2VjcmV0"}})
        .to_string()
    );
    step!(
        "edit secret by hand",
        "PATCH",
        format!("{nsp}/secrets/creds?fieldManager=kubectl-edit"),
        MERGE,
        json!({"data": {"identity": "aGFuZA==", "extra": "eA=="}}).to_string()
    );
    step!(
        "apply service account",
        "PATCH",
        format!("{nsp}/serviceaccounts/runner?fieldManager=provisioner&force=true"),
        APPLY,
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "runner"}})
            .to_string()
    );
    step!(
        "apply service",
        "PATCH",
        format!("{nsp}/services/web?fieldManager=provisioner&force=true"),
        APPLY,
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
        .to_string()
    );
    let rules = json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]);
    step!(
        "apply cluster role",
        "PATCH",
        format!(
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/{ns}-reader?fieldManager=provisioner&force=true"
        ),
        APPLY,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": format!("{ns}-reader")}, "rules": rules})
        .to_string()
    );
    let binding = |kind: &str, role: &str| {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
            "metadata": {"name": format!("{ns}-reader")},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role, "name": format!("{ns}-reader")},
            "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": ns}]})
        .to_string()
    };
    step!(
        "apply cluster role binding",
        "PATCH",
        format!(
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/{ns}-reader?fieldManager=provisioner&force=true"
        ),
        APPLY,
        binding("ClusterRoleBinding", "ClusterRole")
    );
    step!(
        "apply role",
        "PATCH",
        format!(
            "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles/{ns}-reader?fieldManager=provisioner&force=true"
        ),
        APPLY,
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": format!("{ns}-reader")}, "rules": rules})
        .to_string()
    );
    step!(
        "apply role binding",
        "PATCH",
        format!(
            "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings/{ns}-reader?fieldManager=provisioner&force=true"
        ),
        APPLY,
        binding("RoleBinding", "Role")
    );

    // A CustomResourceDefinition (status subresource, unknown fields preserved), one with a
    // pruning structural schema, and their objects.
    let crd = |plural: &str, kind: &str, schema: Value, status: bool| {
        let mut version = json!({"name": "v1", "served": true, "storage": true,
            "schema": {"openAPIV3Schema": schema}});
        if status {
            version["subresources"] = json!({"status": {}});
        }
        json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{plural}.{group}")},
            "spec": {"group": group, "scope": "Namespaced",
                "names": {"plural": plural, "singular": plural.trim_end_matches('s'), "kind": kind},
                "versions": [version]}})
        .to_string()
    };
    let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    step!(
        "apply crd",
        "PATCH",
        format!("{crds}/instances.{group}?fieldManager=provisioner&force=true"),
        APPLY,
        crd(
            "instances",
            "Instance",
            json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
            true
        )
    );
    step!(
        "a list-map key without a default is refused",
        "PATCH",
        format!("{crds}/gadgets.{group}?fieldManager=provisioner&force=true"),
        APPLY,
        crd(
            "gadgets",
            "Gadget",
            json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
                "items": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                          "items": {"type": "object", "properties": {"name": {"type": "string"}}}}}}}}),
            false
        )
    );
    step!(
        "apply structural crd",
        "PATCH",
        format!("{crds}/widgets.{group}?fieldManager=provisioner&force=true"),
        APPLY,
        crd(
            "widgets",
            "Widget",
            json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {
                "size": {"type": "integer"},
                "items": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                          "items": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}, "v": {"type": "string"}}}}}},
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}),
            false
        )
    );
    for name in ["instances", "widgets"] {
        for _ in 0..100 {
            let (_, body) = b
                .send("GET", &format!("{crds}/{name}.{group}"), "", "", "")
                .await;
            let established = body["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Established" && c["status"] == "True");
            let served =
                b.send(
                    "GET",
                    &format!("/apis/{group}/v1/namespaces/{ns}/{name}"),
                    "",
                    "",
                    "",
                )
                .await
                .0 == 200;
            if established && served {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        step!(
            format!("established crd {name}"),
            "GET",
            format!("{crds}/{name}.{group}"),
            "",
            String::new()
        );
    }
    let inst = format!("/apis/{group}/v1/namespaces/{ns}/instances/flux");
    let instance = |size: u64| {
        json!({"apiVersion": format!("{group}/v1"), "kind": "Instance",
            "metadata": {"name": "flux", "labels": {"app.kubernetes.io/managed-by": "provisioner"}},
            "spec": {"size": size, "tags": ["a", "b"], "nested": {"x": {"y": 1}}},
            "status": {"ignored": true}})
        .to_string()
    };
    step!(
        "apply custom resource",
        "PATCH",
        format!("{inst}?fieldManager=provisioner&force=true"),
        APPLY,
        instance(3)
    );
    step!(
        "status by a controller",
        "PATCH",
        format!("{inst}/status?fieldManager=flux-operator"),
        MERGE,
        json!({"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Reconciled"}]},
            "spec": {"size": 9}, "metadata": {"labels": {"z": "1"}}})
        .to_string()
    );
    step!(
        "custom resource spec change",
        "PATCH",
        format!("{inst}?fieldManager=provisioner&force=true"),
        APPLY,
        instance(4)
    );
    step!(
        "status through the main resource is ignored",
        "PATCH",
        format!("{inst}?fieldManager=kubectl-edit"),
        MERGE,
        json!({"status": {"conditions": []}}).to_string()
    );
    let widget = format!("/apis/{group}/v1/namespaces/{ns}/widgets/w1");
    step!(
        "apply of an undeclared field fails",
        "PATCH",
        format!("{widget}?fieldManager=provisioner&force=true"),
        APPLY,
        json!({"apiVersion": format!("{group}/v1"), "kind": "Widget", "metadata": {"name": "w1"},
            "spec": {"size": 3, "unknown": true}})
        .to_string()
    );
    step!(
        "apply structural custom resource",
        "PATCH",
        format!("{widget}?fieldManager=provisioner&force=true"),
        APPLY,
        json!({"apiVersion": format!("{group}/v1"), "kind": "Widget", "metadata": {"name": "w1"},
            "spec": {"size": 3, "items": [{"name": "a", "v": "1"}, {"name": "b", "v": "2"}]},
            "status": {"kept": "without a status subresource"}})
        .to_string()
    );
    step!(
        "an updated undeclared field is pruned",
        "PATCH",
        format!("{widget}?fieldManager=kubectl-edit"),
        MERGE,
        json!({"spec": {"unknown": true, "items": [{"name": "c", "v": "3"}]}}).to_string()
    );
    step!(
        "widget status change bumps generation without a status subresource",
        "PATCH",
        format!("{widget}?fieldManager=ctl"),
        MERGE,
        json!({"status": {"kept": "changed"}}).to_string()
    );

    // Reads: metadata-only lists with selectors, one object metadata-only.
    for sel in [
        "app.kubernetes.io%2Fmanaged-by%3Dprovisioner",
        "tier%21%3Dfront",
        "tier",
        "%21tier",
        "tier%20in%20%28front%2Cback%29",
        "tier%20notin%20%28front%29",
    ] {
        let (_, mut body) = step!(
            format!("metadata list {sel}"),
            "GET",
            format!("{nsp}/configmaps?labelSelector={sel}"),
            "",
            String::new(),
            META_LIST
        );
        // Only the names matter across servers for an unlabelled list's order.
        if let Some(items) = body["items"].as_array_mut() {
            items.sort_by_key(|i| i["metadata"]["name"].to_string());
        }
    }
    step!(
        "full list",
        "GET",
        format!("{nsp}/configmaps?labelSelector=tier"),
        "",
        String::new()
    );
    step!(
        "custom resource list",
        "GET",
        format!("/apis/{group}/v1/namespaces/{ns}/instances"),
        "",
        String::new()
    );
    step!("metadata get", "GET", cmp.clone(), "", String::new(), META);
    step!(
        "bad selector",
        "GET",
        format!("{nsp}/configmaps?labelSelector=a%20in%20x"),
        "",
        String::new()
    );

    // Refusals.
    step!(
        "bad name",
        "PATCH",
        format!("{nsp}/configmaps/Bad_Name?fieldManager=provisioner"),
        APPLY,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name"}})
            .to_string()
    );
    step!(
        "bad namespace name",
        "POST",
        "/api/v1/namespaces",
        JSON,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a.b"}}).to_string()
    );
    step!(
        "bad label value",
        "PATCH",
        format!("{nsp}/configmaps/labelled?fieldManager=provisioner"),
        APPLY,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "labelled", "labels": {"a": "-bad-"}}}).to_string()
    );
    step!(
        "missing namespace",
        "PATCH",
        "/api/v1/namespaces/kubesim-missing/configmaps/c?fieldManager=provisioner",
        APPLY,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}).to_string()
    );
    step!(
        "already exists",
        "POST",
        format!("{nsp}/configmaps"),
        JSON,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}})
            .to_string()
    );
    step!(
        "unknown resource type",
        "GET",
        format!("{nsp}/gadgets"),
        "",
        String::new()
    );
    step!(
        "unknown object",
        "GET",
        format!("/apis/apps/v1/namespaces/{ns}/deployments/nope"),
        "",
        String::new()
    );
    step!(
        "malformed yaml",
        "PATCH",
        format!("{cmp}?fieldManager=provisioner"),
        APPLY,
        "a: [\n".to_string()
    );
    step!(
        "apply without a field manager",
        "PATCH",
        cmp.clone(),
        APPLY,
        cm(json!({}))
    );
    step!(
        "unsupported media type",
        "PATCH",
        cmp.clone(),
        "text/plain",
        "x".to_string()
    );
    step!(
        "name mismatch",
        "PATCH",
        format!("{cmp}?fieldManager=provisioner"),
        APPLY,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "other"}}).to_string()
    );
    step!(
        "merge patch of a missing object",
        "PATCH",
        format!("{nsp}/configmaps/zz?fieldManager=x"),
        MERGE,
        "{}".to_string()
    );

    // Who an update without a field manager is recorded as; what metadata keeps.
    step!(
        "an update with no field manager or user agent is unknown's",
        "POST",
        format!("{nsp}/configmaps"),
        JSON,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "plain", "labels": {"a": "1"}, "annotations": {"b": "2"}},
            "data": {"k": "v"}})
        .to_string()
    );
    step!(
        "a user agent names the manager; emptied labels and annotations are dropped",
        "PATCH",
        format!("{nsp}/configmaps/plain"),
        MERGE,
        json!({"metadata": {"labels": {"a": null}, "annotations": {"b": null}}, "data": {"k": "w"}})
            .to_string(),
        "",
        "kubectl/v1.35.4 (linux/amd64) kubernetes/e3b1a0b"
    );

    // Deletes.
    step!(
        "delete configmap",
        "DELETE",
        format!("{nsp}/configmaps/yaml?propagationPolicy=Background"),
        "",
        String::new()
    );
    step!(
        "deleted configmap",
        "GET",
        format!("{nsp}/configmaps/yaml"),
        "",
        String::new()
    );
    step!(
        "create held configmap",
        "POST",
        format!("{nsp}/configmaps?fieldManager=kubectl-create"),
        JSON,
        json!({"metadata": {"name": "held", "finalizers": ["kubesim.dev/hold"]}, "data": {"a": "1"}})
            .to_string()
    );
    step!(
        "delete held configmap",
        "DELETE",
        format!("{nsp}/configmaps/held"),
        JSON,
        json!({"propagationPolicy": "Background"}).to_string()
    );
    step!(
        "delete it again",
        "DELETE",
        format!("{nsp}/configmaps/held"),
        "",
        String::new()
    );
    step!(
        "release the finalizer",
        "PATCH",
        format!("{nsp}/configmaps/held?fieldManager=controller"),
        MERGE,
        json!({"metadata": {"finalizers": null}}).to_string()
    );
    step!(
        "released configmap is gone",
        "GET",
        format!("{nsp}/configmaps/held"),
        "",
        String::new()
    );
    step!(
        "delete deployment",
        "DELETE",
        format!("{dp}?propagationPolicy=Background"),
        "",
        String::new()
    );
    step!(
        "delete service account answers with the object",
        "DELETE",
        format!("{nsp}/serviceaccounts/runner?propagationPolicy=Background"),
        "",
        String::new()
    );
    step!(
        "delete service answers with the object",
        "DELETE",
        format!("{nsp}/services/web?propagationPolicy=Background"),
        "",
        String::new()
    );
    let held_widget = format!("/apis/{group}/v1/namespaces/{ns}/widgets/held");
    step!(
        "create held widget",
        "POST",
        format!("/apis/{group}/v1/namespaces/{ns}/widgets?fieldManager=kubectl-create"),
        JSON,
        json!({"apiVersion": format!("{group}/v1"), "kind": "Widget",
            "metadata": {"name": "held", "finalizers": ["kubesim.dev/hold"]}, "spec": {"size": 1}})
        .to_string()
    );
    step!(
        "delete held widget moves its generation",
        "DELETE",
        format!("{held_widget}?propagationPolicy=Background"),
        "",
        String::new()
    );
    step!(
        "release the widget's finalizer",
        "PATCH",
        format!("{held_widget}?fieldManager=controller"),
        MERGE,
        json!({"metadata": {"finalizers": null}}).to_string()
    );
    let (_, deleted_crd) = step!(
        "delete crd",
        "DELETE",
        format!("{crds}/instances.{group}?propagationPolicy=Background"),
        "",
        String::new()
    );
    let _ = deleted_crd;
    let mut gone = false;
    for _ in 0..100 {
        if b.send("GET", &format!("{crds}/instances.{group}"), "", "", "")
            .await
            .0
            == 404
        {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    t.push(("the deleted crd goes".into(), 0, json!(gone)));
    step!(
        "its objects went with it",
        "GET",
        format!("/apis/{group}/v1/namespaces/{ns}/instances/flux"),
        "",
        String::new()
    );
    step!(
        "delete namespace",
        "DELETE",
        format!("{nsp}?propagationPolicy=Background"),
        "",
        String::new()
    );
    step!(
        "no new object in a terminating namespace",
        "PATCH",
        format!("{nsp}/configmaps/late?fieldManager=provisioner"),
        APPLY,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late"}}).to_string()
    );
    step!(
        "cluster-scoped clean-up",
        "DELETE",
        format!("/apis/rbac.authorization.k8s.io/v1/clusterroles/{ns}-reader"),
        "",
        String::new()
    );
    for (label, _, body) in &mut t {
        normalise(body);
        // The YAML parsers' own words differ (go-yaml's against serde-saphyr's): only the
        // message's head is compared.
        if label == "malformed yaml"
            && let Some(m) = body["message"].as_str()
        {
            body["message"] = json!(m.split(": yaml:").next().unwrap_or(m));
        }
    }
    t
}

#[tokio::test]
async fn the_simulator_answers_as_kube_apiserver_does() {
    let Some(server) = support::server(support::Backend::Real) else {
        return;
    };
    let ns = format!("d-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let real = script(&Backend::real(server), &ns).await;
    let sim = KubeSim::start(KubeConfig {
        controllers: false,
        ..KubeConfig::default()
    })
    .await
    .unwrap();
    let simulated = script(&Backend::sim(&sim), &ns).await;
    assert_eq!(real.len(), simulated.len());
    let mut differences = Vec::new();
    for ((label, code_r, body_r), (_, code_s, body_s)) in real.iter().zip(&simulated) {
        if code_r != code_s || body_r != body_s {
            differences.push(format!(
                "{label}:\n  real      {code_r} {}\n  simulated {code_s} {}",
                serde_json::to_string(body_r).unwrap(),
                serde_json::to_string(body_s).unwrap()
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "{} of {} steps differ:\n{}",
        differences.len(),
        real.len(),
        differences.join("\n")
    );
}

/// A FluxInstance CustomResourceDefinition as the Flux Operator ships it, trimmed to what
/// the simulator reads: a namespaced kind with a status subresource.
fn flux_instance_crd() -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "fluxinstances.fluxcd.controlplane.io"},
        "spec": {"group": "fluxcd.controlplane.io", "scope": "Namespaced",
            "names": {"plural": "fluxinstances", "singular": "fluxinstance", "kind": "FluxInstance",
                      "shortNames": ["fi"]},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}]}})
}

#[tokio::test]
async fn the_simulator_alone_refuses_strangers_and_oversized_bodies() {
    let sim = KubeSim::start(KubeConfig::default()).await.unwrap();
    let stranger = Backend {
        token: "wrong".into(),
        ..Backend::sim(&sim)
    };
    let (code, body) = stranger.send("GET", "/api/v1/namespaces", "", "", "").await;
    assert_eq!((code, body["reason"].as_str()), (401, Some("Unauthorized")));
    let b = Backend::sim(&sim);
    let huge = "x".repeat(3 * 1024 * 1024 + 1);
    let (code, _) = b
        .send(
            "POST",
            "/api/v1/namespaces/default/configmaps",
            JSON,
            &huge,
            "",
        )
        .await;
    assert_eq!(code, 413);
    let (code, body) = b
        .send(
            "POST",
            "/api/v1/namespaces/default/configmaps",
            JSON,
            "{\"metadata\":",
            "",
        )
        .await;
    assert_eq!((code, body["reason"].as_str()), (400, Some("BadRequest")));
    let log = sim.requests();
    assert!(
        log.first().is_some_and(|r| r == "GET /api/v1/namespaces")
            && log
                .last()
                .is_some_and(|r| r == "POST /api/v1/namespaces/default/configmaps"),
        "{log:?}"
    );
    // Faults: a 503 injected on the next list.
    sim.faults.inject(
        Some("GET"),
        "/api/v1/namespaces",
        provisioner::sim::Fault::Respond {
            status: 503,
            body: "{}".into(),
            headers: vec![],
        },
        Some(1),
    );
    assert_eq!(b.send("GET", "/api/v1/namespaces", "", "", "").await.0, 503);
    assert_eq!(b.send("GET", "/api/v1/namespaces", "", "", "").await.0, 200);
}

#[tokio::test]
async fn the_simulator_alone_plays_the_controllers_a_sandbox_needs() {
    let sim = KubeSim::start(KubeConfig::default()).await.unwrap();
    assert_eq!(
        sim.apply_as("provisioner", &flux_instance_crd(), true).code,
        201
    );
    assert_eq!(
        sim.apply_as(
            "provisioner",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "flux-system"}}),
            true
        )
        .code,
        201
    );
    let instance = json!({"apiVersion": "fluxcd.controlplane.io/v1", "kind": "FluxInstance",
        "metadata": {"name": "flux", "namespace": "flux-system"},
        "spec": {"distribution": {"version": "2.x", "registry": "ghcr.io/fluxcd"}}});
    let applied = sim.apply_as("provisioner", &instance, true);
    assert_eq!(applied.code, 201, "{applied:?}");
    assert_eq!(applied.body["metadata"]["generation"], 1);
    // The Flux Operator's part: Ready in status.conditions, owned by its manager, with no
    // new generation.
    let ready = json!({"conditions": [{"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded"}]});
    let a = sim.set_status(
        "fluxcd.controlplane.io/v1",
        "FluxInstance",
        Some("flux-system"),
        "flux",
        &ready,
    );
    assert_eq!(a.code, 200, "{a:?}");
    let got = sim
        .get(
            "fluxcd.controlplane.io/v1",
            "FluxInstance",
            Some("flux-system"),
            "flux",
        )
        .unwrap();
    assert_eq!(got["status"], ready);
    assert_eq!(got["metadata"]["generation"], 1);
    let managers: Vec<(String, String)> = got["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["manager"].as_str().unwrap().to_string(),
                e["subresource"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        managers,
        [
            ("provisioner".to_string(), String::new()),
            ("kubesim-controller".to_string(), "status".to_string())
        ]
    );
    // An out-of-band edit that conflicts, then forced.
    let claim = json!({"apiVersion": "fluxcd.controlplane.io/v1", "kind": "FluxInstance",
        "metadata": {"name": "flux", "namespace": "flux-system"},
        "spec": {"distribution": {"version": "2.7"}}});
    let refused = sim.apply_as("someone-else", &claim, false);
    assert_eq!(refused.code, 409);
    assert_eq!(
        refused.body["details"]["causes"][0]["field"],
        ".spec.distribution.version"
    );
    assert_eq!(sim.apply_as("someone-else", &claim, true).code, 200);
    // With the controllers on, a deleted Namespace is emptied, then goes.
    let deleted = sim.delete("v1", "Namespace", None, "flux-system");
    assert_eq!(deleted.body["status"]["phase"], "Terminating");
    assert!(sim.get("v1", "Namespace", None, "flux-system").is_none());
    assert!(
        sim.list("fluxcd.controlplane.io/v1", "FluxInstance", None)
            .is_empty()
    );
}

/// A DigitalOcean simulator's cluster reached through its kubeconfig, which points at the
/// Kubernetes simulator: kube-rs's discovery and an apply work through it.
#[tokio::test]
async fn a_simulated_doks_cluster_is_reached_through_its_kubeconfig() {
    use provisioner::sim::digitalocean::{DoConfig, DoSim};
    let kube = KubeSim::start(KubeConfig::default()).await.unwrap();
    let do_sim = DoSim::start(DoConfig {
        provisioning: std::time::Duration::ZERO,
        kubernetes: Some((kube.url().to_string(), kube.token().to_string())),
        ..DoConfig::default()
    })
    .await
    .unwrap();
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("{}/v2/kubernetes/clusters", do_sim.url()))
        .bearer_auth("sim-token")
        .json(&json!({"name": "prod", "region": "ams3", "version": "1.33",
            "node_pools": [{"name": "w", "size": "s-2vcpu-4gb", "count": 1}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["kubernetes_cluster"]["id"].as_str().unwrap();
    let kubeconfig = http
        .get(format!(
            "{}/v2/kubernetes/clusters/{id}/kubeconfig",
            do_sim.url()
        ))
        .bearer_auth("sim-token")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(kubeconfig.contains(kube.url()), "{kubeconfig}");
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::from_yaml(&kubeconfig).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let discovery = kube::discovery::Discovery::new(client.clone())
        .run_aggregated()
        .await
        .unwrap();
    let (ar, _) = discovery
        .resolve_gvk(&kube::api::GroupVersionKind::gvk(
            "apps",
            "v1",
            "Deployment",
        ))
        .expect("deployments are discovered");
    assert_eq!(ar.plural, "deployments");
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(client, "default");
    let cm = api
        .patch(
            "c",
            &kube::api::PatchParams::apply("provisioner").force(),
            &kube::api::Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c"}, "data": {"a": "1"}})),
        )
        .await
        .unwrap();
    assert_eq!(cm.data.unwrap()["a"], "1");
    let listed = api
        .list_metadata(&kube::api::ListParams::default().labels("!missing"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert!(
        kube.requests()
            .iter()
            .any(|r| r.starts_with("PATCH /api/v1/namespaces/default/configmaps/c?"))
    );
}
