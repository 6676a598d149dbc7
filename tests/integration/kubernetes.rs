//! The Kubernetes provider end to end, through the registry and the executor as a pass uses
//! them, reached through a recording proxy on loopback: manifests are applied server-side
//! and re-plan empty; an edit by another field manager is reported, naming it, and
//! corrected; objects that leave the file are pruned or orphaned; a removed manifest is
//! deleted in reverse order; objects provisioner did not make are not taken over; an
//! unreachable cluster is not observed, never empty.
//!
//! Every test runs twice, with the same assertions (`…::real`, `…::sim`): against a real
//! kube-apiserver (v1.35, built by `.ci/kube-servers`; skipped when none is at hand, except
//! in CI) and against the project's simulator, `KubeSim` (always). A behaviour where the two
//! disagree fails one of them (see `kube/support.rs`).

#[path = "kube/support.rs"]
pub(crate) mod support;

/// Runs a test body against the real kube-apiserver (`name::real`) and against `KubeSim`
/// (`name::sim`); the extra arguments are `#[tokio::test]`'s.
macro_rules! both {
    ($name:ident $(, $($test:tt)*)?) => {
        mod $name {
            #[tokio::test$(($($test)*))?]
            async fn real() {
                super::$name(crate::kubernetes::support::Backend::Real).await
            }
            #[tokio::test$(($($test)*))?]
            async fn sim() {
                super::$name(crate::kubernetes::support::Backend::Sim).await
            }
        }
    };
}

#[path = "kube/flux.rs"]
mod flux;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use provisioner::desired::{self, Address, DesiredState};
use provisioner::exec::apply_sequential;
use provisioner::ledger::Ledger;
use provisioner::ledger::fingerprint::FingerprintKey;
use provisioner::live::LiveState;
use provisioner::plan::{self, Action, Plan, PlanReport};
use provisioner::providers::Clouds;
use provisioner::providers::kubernetes::{KubeOptions, KubeProvider};
use serde_json::json;

use support::{Backend, Proxy, Server};

/// One test's world: a proxy to the server, a folder for the desired state and the
/// kubeconfig, the registry (with the Kubernetes provider only), a namespace of its own
/// (namespaces cannot be deleted on a server with no controllers: every test makes new
/// ones).
struct World {
    server: &'static Server,
    proxy: Proxy,
    dir: tempfile::TempDir,
    clouds: Clouds,
    key: FingerprintKey,
    ns: String,
    ledger: Ledger,
}

fn options() -> KubeOptions {
    KubeOptions {
        wait: std::time::Duration::from_secs(30),
        poll_every: std::time::Duration::from_millis(100),
        ..KubeOptions::default()
    }
}

/// A world on `backend`'s server (`None`: the real server's tests are skipped).
async fn world(backend: Backend) -> Option<World> {
    let server = support::server(backend)?;
    let proxy = Proxy::start(server).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("kubeconfig"),
        support::kubeconfig(&proxy.url, &server.token, None),
    )
    .unwrap();
    let clouds = Clouds::new(Err("none".into()), Err("none".into()), Err("none".into()))
        .with_kubernetes(KubeProvider::new(None, options()))
        .with_flux(KubeProvider::flux(None, options()));
    let ns = format!("t-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    Some(World {
        server,
        proxy,
        dir,
        clouds,
        key: FingerprintKey::new(b"test-fingerprint-key-0123456789".to_vec()).unwrap(),
        ns,
        ledger: Ledger::new(uuid::Uuid::new_v4().to_string()),
    })
}

impl World {
    /// The desired state: `toml` (with `NS` replaced by the test's namespace, `KUBECONFIG`
    /// and `SECRET_FILE` by the paths of the kubeconfig and the secret file) in
    /// `desired/main.toml`, and the YAML files beside it.
    fn state(&self, toml: &str, files: &[(&str, &str)]) -> DesiredState {
        let state_dir = self.dir.path().join("desired");
        let _ = std::fs::remove_dir_all(&state_dir);
        std::fs::create_dir_all(&state_dir).unwrap();
        for (name, text) in files {
            std::fs::write(state_dir.join(name), text.replace("NS", &self.ns)).unwrap();
        }
        // The namespace before the paths: a temporary folder's random name can hold "NS".
        let path = |name: &str| self.dir.path().join(name).display().to_string();
        let toml = toml
            .replace("NS", &self.ns)
            .replace("KUBECONFIG", &path("kubeconfig"))
            .replace("SECRET_FILE", &path("identity"));
        std::fs::write(state_dir.join("main.toml"), toml).unwrap();
        let mut d = desired::load(&state_dir).unwrap_or_else(|e| panic!("{e}"));
        desired::secrets::fingerprint_all(&mut d, &self.key).unwrap();
        d
    }

    fn requests(&self) -> u64 {
        self.clouds
            .request_stats()
            .get("kubernetes")
            .map_or(0, |s| s.requests)
    }

    async fn live(&self, d: &DesiredState) -> LiveState {
        self.clouds.observe(d, &self.ledger).await
    }

    async fn plan(&self, d: &DesiredState) -> (Plan, PlanReport, LiveState) {
        let live = self.live(d).await;
        let (plan, report) = plan::plan(d, &self.ledger, &live).unwrap();
        (plan, report, live)
    }

    /// Plans and applies; every change must succeed.
    async fn converge(&mut self, d: &DesiredState) -> Plan {
        let (plan, _, live) = self.plan(d).await;
        let outcomes = apply_sequential(
            &plan,
            d,
            &mut self.ledger,
            &live,
            &self.clouds,
            Some(&self.key),
        )
        .await;
        for o in &outcomes {
            assert!(
                o.result.is_ok(),
                "{} {:?}: {:?}",
                o.address,
                o.action,
                o.result
            );
        }
        plan
    }

    /// Plans and applies, returning the outcomes' errors.
    async fn apply_errors(&mut self, d: &DesiredState) -> Vec<String> {
        let (plan, _, live) = self.plan(d).await;
        apply_sequential(
            &plan,
            d,
            &mut self.ledger,
            &live,
            &self.clouds,
            Some(&self.key),
        )
        .await
        .into_iter()
        .filter_map(|o| o.result.err())
        .collect()
    }

    async fn assert_converged(&self, d: &DesiredState) {
        let (plan, report, _) = self.plan(d).await;
        assert!(report.is_complete(), "{:?}", report.unobserved);
        assert!(acting(&plan).is_empty(), "{:#?}", plan.changes);
    }

    async fn kube(&self) -> kube::Client {
        support::client(self.server).await
    }

    /// A namespaced object as the server has it (`None`: absent).
    async fn get(
        &self,
        api_version: &str,
        kind: &str,
        plural: &str,
        ns: Option<&str>,
        name: &str,
    ) -> Option<DynamicObject> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let ar = kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk(group, version, kind),
            plural,
        );
        let api: Api<DynamicObject> = match ns {
            Some(ns) => Api::namespaced_with(self.kube().await, ns, &ar),
            None => Api::all_with(self.kube().await, &ar),
        };
        api.get_opt(name).await.unwrap()
    }

    async fn config_map(&self, name: &str) -> Option<DynamicObject> {
        self.get("v1", "ConfigMap", "configmaps", Some(&self.ns), name)
            .await
    }
}

fn render(plan: &Plan, report: &PlanReport) -> String {
    provisioner::plan::display::PlanDisplay {
        plan,
        report,
        color: false,
        verbose: false,
    }
    .to_string()
}

fn acting(plan: &Plan) -> Vec<(String, Action)> {
    plan.changes
        .iter()
        .filter(|c| c.action.acts())
        .map(|c| (c.address.to_string(), c.action))
        .collect()
}

fn change<'p>(plan: &'p Plan, address: &str) -> &'p provisioner::plan::Change {
    plan.changes
        .iter()
        .find(|c| c.address.to_string() == address)
        .unwrap_or_else(|| panic!("no change for {address}: {:#?}", plan.changes))
}

const APP_TOML: &str = r#"
[kubernetes.manifest.app]
cluster = { file = "KUBECONFIG" }
file = "app.yaml"
prune = true
"#;

/// A Namespace, a CustomResourceDefinition and one of its objects, a ServiceAccount, a
/// ClusterRole, a ConfigMap and a Deployment (stored and served without controllers).
const APP_YAML: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: NS
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.NS.provisioner.dev
spec:
  group: NS.provisioner.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                size: {type: integer}
---
apiVersion: NS.provisioner.dev/v1
kind: Widget
metadata:
  name: w1
  namespace: NS
spec:
  size: 3
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: runner
  namespace: NS
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: NS-reader
rules:
  - apiGroups: [""]
    resources: ["configmaps"]
    verbs: ["get", "list"]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: NS
data:
  region: eu-west-1
  replicas: "2"
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: NS
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: nginx:1.27
"#;

both!(a_manifest_is_applied_server_side_and_replans_empty);
async fn a_manifest_is_applied_server_side_and_replans_empty(backend: Backend) {
    let Some(mut w) = world(backend).await else {
        return;
    };
    let d = w.state(APP_TOML, &[("app.yaml", APP_YAML)]);
    let plan = w.converge(&d).await;
    assert_eq!(
        acting(&plan),
        [("kubernetes.manifest.app".to_string(), Action::Create)]
    );

    // Everything is there, applied by provisioner, labelled and annotated.
    let cm = w.config_map("settings").await.expect("the ConfigMap");
    assert_eq!(cm.data["data"]["region"], "eu-west-1");
    let labels = cm.metadata.labels.clone().unwrap();
    assert_eq!(labels["app.kubernetes.io/managed-by"], "provisioner");
    assert_eq!(labels["provisioner.dev/lineage"], w.ledger.lineage);
    let annotations = cm.metadata.annotations.clone().unwrap();
    assert_eq!(
        annotations["provisioner.dev/address"],
        "kubernetes.manifest.app"
    );
    assert!(annotations["provisioner.dev/applied"].starts_with("sha256:"));
    let managers: Vec<(String, String)> = cm
        .metadata
        .managed_fields
        .unwrap()
        .iter()
        .map(|m| (m.manager.clone().unwrap(), m.operation.clone().unwrap()))
        .collect();
    assert_eq!(managers, [("provisioner".to_string(), "Apply".to_string())]);
    let widget = w
        .get(
            &format!("{}.provisioner.dev/v1", w.ns),
            "Widget",
            "widgets",
            Some(&w.ns),
            "w1",
        )
        .await
        .expect("the Widget, applied once its CRD was established");
    assert_eq!(widget.data["spec"]["size"], 3);
    assert!(
        w.get("apps/v1", "Deployment", "deployments", Some(&w.ns), "web")
            .await
            .is_some()
    );

    // The ledger records the inventory, and no more than that.
    let entry = &w.ledger.resources[&Address::new("kubernetes", "manifest", "app")];
    assert_eq!(entry.id, "kubernetes.manifest.app");
    let inventory: Vec<String> = entry.attributes["inventory"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap(),
                o["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(inventory.len(), 7, "{inventory:?}");
    assert!(
        inventory[0] == format!("Namespace/{}", w.ns),
        "{inventory:?}"
    );
    assert!(entry.applied["objects"].as_object().unwrap().len() == 7);
    assert!(entry.fingerprints["cluster"].starts_with("hmac-sha256:"));
    let text = serde_json::to_string(&w.ledger).unwrap();
    assert!(
        !text.contains(&w.server.token),
        "the token reached the ledger"
    );
    assert!(
        !text.contains("nginx:1.27"),
        "object bodies reached the ledger"
    );

    // A second pass changes nothing, and costs a few requests: discovery is reused, one
    // metadata-only list per (resource type, namespace).
    let before = w.requests();
    w.proxy.take();
    w.assert_converged(&d).await;
    let used = w.requests() - before;
    let logged = w.proxy.take();
    assert!(
        logged.iter().all(|l| l.status == 200
            && l.accept
                .starts_with("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1")),
        "metadata-only lists: {logged:#?}"
    );
    let lists: Vec<String> = logged
        .iter()
        .map(|l| format!("{} {}", l.method, l.path))
        .collect();
    println!("requests in a no-change pass over 7 objects: {used}: {lists:#?}");
    assert_eq!(
        used as usize,
        lists.len(),
        "the count is what went on the wire"
    );
    assert!(
        lists.iter().all(|l| l.starts_with("GET ")
            && l.contains("labelSelector=app.kubernetes.io%2Fmanaged-by%3Dprovisioner")),
        "{lists:#?}"
    );
    assert_eq!(used, 7, "one list per type and namespace: {lists:#?}");
}

both!(an_edit_by_another_field_manager_is_reported_by_name_and_taken_back);
async fn an_edit_by_another_field_manager_is_reported_by_name_and_taken_back(backend: Backend) {
    let Some(mut w) = world(backend).await else {
        return;
    };
    let yaml = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: NS\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: NS\ndata:\n  region: eu-west-1\n  replicas: \"2\"\n";
    let d = w.state(APP_TOML, &[("app.yaml", yaml)]);
    w.converge(&d).await;

    // Someone edits a field provisioner owns, as `kubectl edit` does (an update with its
    // field manager).
    let api: Api<DynamicObject> = Api::namespaced_with(
        w.kube().await,
        &w.ns,
        &kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&()),
    );
    let edit = PatchParams {
        field_manager: Some("kubectl-edit".into()),
        ..PatchParams::default()
    };
    api.patch(
        "settings",
        &edit,
        &Patch::Merge(json!({"data": {"replicas": "5"}})),
    )
    .await
    .unwrap();

    let (plan, report, _) = w.plan(&d).await;
    let c = change(&plan, "kubernetes.manifest.app");
    assert_eq!(c.action, Action::Update, "{c:#?}");
    let field = c
        .fields
        .iter()
        .find(|f| f.path.contains("ConfigMap/"))
        .expect("the ConfigMap's line");
    assert!(field.drift, "{field:?}");
    let old = serde_json::to_string(&field.old).unwrap();
    assert!(
        old.contains("changed outside provisioner by kubectl-edit (Update)"),
        "{old}"
    );
    let shown = render(&plan, &report);
    println!("{shown}");
    assert!(shown.contains("kubectl-edit"), "{shown}");

    // The forced apply takes the field back.
    w.converge(&d).await;
    let cm = w.config_map("settings").await.unwrap();
    assert_eq!(cm.data["data"]["replicas"], "2");
    w.assert_converged(&d).await;

    // Server-side apply by another manager that claims a field provisioner owns, with
    // another value, conflicts (409) unless forced; forced, it takes the field over, and
    // the plan names it.
    let other = PatchParams::apply("someone-else");
    let claim = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": w.ns}, "data": {"region": "us-east-1"}});
    let refused = api.patch("settings", &other, &Patch::Apply(&claim)).await;
    match refused {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (409, "Conflict")),
        other => panic!("expected a conflict, got {other:?}"),
    }
    api.patch("settings", &other.clone().force(), &Patch::Apply(&claim))
        .await
        .unwrap();
    let (plan, report, _) = w.plan(&d).await;
    let shown = render(&plan, &report);
    assert!(
        shown.contains("changed outside provisioner by someone-else (Apply)"),
        "{shown}"
    );
    w.converge(&d).await;
    let cm = w.config_map("settings").await.unwrap();
    assert_eq!(cm.data["data"]["region"], "eu-west-1");
    let owner_of_region: Vec<String> = cm
        .metadata
        .managed_fields
        .unwrap()
        .iter()
        .filter(|m| {
            serde_json::to_string(&m.fields_v1)
                .unwrap()
                .contains("f:region")
        })
        .map(|m| m.manager.clone().unwrap())
        .collect();
    assert_eq!(
        owner_of_region,
        ["provisioner"],
        "provisioner owns the field again"
    );
    w.assert_converged(&d).await;
}

const PRUNE_YAML: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: NS\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kept\n  namespace: NS\ndata: {a: \"1\"}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: leaving\n  namespace: NS\ndata: {b: \"2\"}\n";

both!(an_object_that_leaves_the_file_is_pruned_with_prune_and_orphaned_without);
async fn an_object_that_leaves_the_file_is_pruned_with_prune_and_orphaned_without(
    backend: Backend,
) {
    let Some(mut w) = world(backend).await else {
        return;
    };
    let d = w.state(APP_TOML, &[("app.yaml", PRUNE_YAML)]);
    w.converge(&d).await;
    assert!(w.config_map("leaving").await.is_some());

    // Without the second ConfigMap: the plan shows it going, and the apply deletes it.
    let without = PRUNE_YAML
        .split("---\n")
        .take(2)
        .collect::<Vec<_>>()
        .join("---\n");
    let d = w.state(APP_TOML, &[("app.yaml", &without)]);
    let (plan, _, _) = w.plan(&d).await;
    let c = change(&plan, "kubernetes.manifest.app");
    assert_eq!(c.action, Action::Update);
    assert!(
        c.fields
            .iter()
            .any(|f| f.path.ends_with(&format!("ConfigMap/{}/leaving", w.ns)) && !f.drift),
        "{:#?}",
        c.fields
    );
    w.converge(&d).await;
    assert!(w.config_map("leaving").await.is_none(), "pruned");
    assert!(w.config_map("kept").await.is_some());
    w.assert_converged(&d).await;

    // With prune off, an object that leaves the file is orphaned: it stays, without
    // provisioner's labels, and no later pass sees it.
    let no_prune = APP_TOML.replace("prune = true", "prune = false");
    let d = w.state(&no_prune, &[("app.yaml", PRUNE_YAML)]);
    w.converge(&d).await;
    let d = w.state(&no_prune, &[("app.yaml", &without)]);
    w.converge(&d).await;
    let left = w
        .config_map("leaving")
        .await
        .expect("orphaned, not deleted");
    let labels = left.metadata.labels.unwrap_or_default();
    assert!(
        !labels.contains_key("app.kubernetes.io/managed-by"),
        "{labels:?}"
    );
    assert!(
        !left
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key("provisioner.dev/address")
    );
    let entry = &w.ledger.resources[&Address::new("kubernetes", "manifest", "app")];
    assert_eq!(
        entry.attributes["orphaned"],
        json!([format!("ConfigMap/{}/leaving", w.ns)])
    );
    w.assert_converged(&d).await;
}

both!(a_removed_manifest_is_deleted_workloads_first_namespace_last);
async fn a_removed_manifest_is_deleted_workloads_first_namespace_last(backend: Backend) {
    let Some(mut w) = world(backend).await else {
        return;
    };
    let toml = format!("[settings]\nprune = true\n{APP_TOML}");
    let d = w.state(&toml, &[("app.yaml", APP_YAML)]);
    w.converge(&d).await;

    // The manifest leaves the desired state (another resource stays, so the desired state
    // is not empty).
    let other = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\n  namespace: default\ndata: {x: \"1\"}\n"
        .replace("other", &format!("other-{}", w.ns));
    let rest = "[settings]\nprune = true\n\n[kubernetes.manifest.other]\ncluster = { file = \"KUBECONFIG\" }\nfile = \"other.yaml\"\n";
    let d = w.state(rest, &[("other.yaml", &other)]);
    let (plan, _, _) = w.plan(&d).await;
    assert_eq!(
        change(&plan, "kubernetes.manifest.app").action,
        Action::Delete
    );
    w.proxy.take();
    w.converge(&d).await;
    let deletes: Vec<String> = w
        .proxy
        .take()
        .into_iter()
        .filter(|l| l.method == "DELETE")
        .map(|l| l.path.split('?').next().unwrap().to_string())
        .collect();
    let ns = &w.ns;
    let position = |needle: &str| {
        deletes
            .iter()
            .position(|p| p.ends_with(needle))
            .unwrap_or_else(|| panic!("no DELETE of {needle}: {deletes:#?}"))
    };
    let deployment = position(&format!("/namespaces/{ns}/deployments/web"));
    let widget = position(&format!("/namespaces/{ns}/widgets/w1"));
    let config_map = position(&format!("/namespaces/{ns}/configmaps/settings"));
    let account = position(&format!("/namespaces/{ns}/serviceaccounts/runner"));
    let role = position(&format!("/clusterroles/{ns}-reader"));
    let crd = position(&format!(
        "/customresourcedefinitions/widgets.{ns}.provisioner.dev"
    ));
    let namespace = position(&format!("/namespaces/{ns}"));
    for workload in [deployment, widget, config_map] {
        assert!(workload < account && workload < role, "{deletes:#?}");
    }
    assert!(
        account < crd && role < crd && crd < namespace,
        "{deletes:#?}"
    );
    assert_eq!(namespace, deletes.len() - 1, "{deletes:#?}");
    assert!(w.config_map("settings").await.is_none());
    assert!(
        w.get(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            None,
            &format!("widgets.{ns}.provisioner.dev")
        )
        .await
        .is_none(),
        "the CRD is gone (the API server's own finalizer removed its objects)"
    );
    assert!(
        !w.ledger
            .resources
            .contains_key(&Address::new("kubernetes", "manifest", "app"))
    );
}

both!(an_object_provisioner_did_not_make_is_not_taken_over_unless_asked);
async fn an_object_provisioner_did_not_make_is_not_taken_over_unless_asked(backend: Backend) {
    let Some(mut w) = world(backend).await else {
        return;
    };
    // Someone made the namespace and a ConfigMap by hand.
    let kube = w.kube().await;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(kube.clone());
    namespaces
        .create(
            &Default::default(),
            &serde_json::from_value(json!({"metadata": {"name": w.ns}})).unwrap(),
        )
        .await
        .unwrap();
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: NS\ndata: {a: \"1\"}\n";
    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(kube, &w.ns);
    maps.create(
        &Default::default(),
        &serde_json::from_value(json!({"metadata": {"name": "settings"}, "data": {"a": "0"}}))
            .unwrap(),
    )
    .await
    .unwrap();
    let d = w.state(APP_TOML, &[("app.yaml", yaml)]);
    let errors = w.apply_errors(&d).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains(&format!(
            "ConfigMap/{}/settings exists and was not made by provisioner: set `take_over = true`",
            w.ns
        )),
        "{errors:?}"
    );
    assert_eq!(
        w.config_map("settings").await.unwrap().data["data"]["a"],
        "0",
        "untouched"
    );

    let d = w.state(
        &format!("{APP_TOML}take_over = true\n"),
        &[("app.yaml", yaml)],
    );
    w.converge(&d).await;
    assert_eq!(
        w.config_map("settings").await.unwrap().data["data"]["a"],
        "1"
    );
    w.assert_converged(&d).await;

    // Another ledger never takes it, whatever it says.
    let mut other = World {
        ledger: Ledger::new("another-lineage"),
        ..world(backend).await.unwrap()
    };
    other.ns = w.ns.clone();
    let d = other.state(
        &format!("{APP_TOML}take_over = true\n"),
        &[("app.yaml", yaml)],
    );
    let errors = other.apply_errors(&d).await;
    let expected = format!(
        "ConfigMap/{}/settings exists and belongs to another provisioner ledger (lineage {}): not taken over",
        w.ns, w.ledger.lineage
    );
    assert!(errors.iter().any(|e| e.contains(&expected)), "{errors:?}");
    assert_eq!(
        w.config_map("settings").await.unwrap().data["data"]["a"],
        "1"
    );
}

both!(
    an_unreachable_cluster_is_not_observed_and_never_planned_as_empty,
    flavor = "multi_thread",
    worker_threads = 2
);
// Multi-threaded: the child process talks to the proxy this runtime serves while the test
// waits for it.
async fn an_unreachable_cluster_is_not_observed_and_never_planned_as_empty(backend: Backend) {
    let Some(mut w) = world(backend).await else {
        return;
    };
    let yaml = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: NS\n";
    let d = w.state(APP_TOML, &[("app.yaml", yaml)]);
    w.converge(&d).await;

    // The way to the cluster is cut in the middle of a pass: the namespace list goes
    // through, the ConfigMap list does not.
    let d = w.state(APP_TOML, &[("app.yaml", &format!("{yaml}---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: NS\n"))]);
    w.converge(&d).await;
    w.proxy.take();
    w.proxy.cut_after(1);
    let (plan, report, live) = w.plan(&d).await;
    let logged = w.proxy.take();
    assert_eq!(
        {
            let mut statuses: Vec<u16> = logged.iter().map(|l| l.status).collect();
            statuses.sort();
            statuses
        },
        [200, 502],
        "{logged:#?}"
    );
    assert!(!report.is_complete());
    let why = live
        .failure(provisioner::desired::Kind::KubeManifest)
        .expect("not observed");
    assert!(why.contains("502"), "{why}");
    assert!(
        acting(&plan).is_empty(),
        "nothing is planned for what was not seen: {:#?}",
        plan.changes
    );
    let shown = render(&plan, &report);
    assert!(!shown.contains("No changes"), "{shown}");

    // A cluster nobody answers at: not observed either, with the reason.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    std::fs::write(
        w.dir.path().join("kubeconfig"),
        support::kubeconfig(&format!("http://{dead}"), "t", None),
    )
    .unwrap();
    let fresh = World {
        clouds: Clouds::new(Err("none".into()), Err("none".into()), Err("none".into()))
            .with_kubernetes(KubeProvider::new(None, options())),
        ledger: w.ledger.clone(),
        ..world(backend).await.unwrap()
    };
    std::fs::write(
        fresh.dir.path().join("kubeconfig"),
        support::kubeconfig(&format!("http://{dead}"), "t", None),
    )
    .unwrap();
    let d = fresh.state(APP_TOML, &[("app.yaml", yaml)]);
    let (plan, report, _) = fresh.plan(&d).await;
    assert!(!report.is_complete());
    assert!(acting(&plan).is_empty());

    // The command line says so: exit 3 (unknown), never 0.
    w.proxy.set_down(true);
    let ledger_dir = w.dir.path().join("ledger");
    std::fs::create_dir_all(&ledger_dir).unwrap();
    std::fs::write(
        ledger_dir.join("ledger.json"),
        serde_json::to_string(&w.ledger).unwrap(),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_provisioner"))
        .args(["diff", "--detailed-exitcode", "-d"])
        .arg(w.dir.path().join("desired"))
        .arg("--ledger")
        .arg(format!("file://{}", ledger_dir.display()))
        .env_remove("DIGITALOCEAN_TOKEN")
        .env_remove("GITHUB_TOKEN")
        .env(
            "PROVISIONER_FINGERPRINT_KEY",
            "test-fingerprint-key-0123456789",
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(3),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("kubernetes.manifest") || stderr.contains("kubernetes.manifest"),
        "{stdout}\n{stderr}"
    );
}

// Once, with no server: the desired state is refused as it loads, before any cluster is
// reached, so neither backend could change the outcome.
#[test]
fn a_bad_manifest_is_refused_naming_the_file_the_line_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("bad");
    std::fs::create_dir_all(&state_dir).unwrap();
    std::fs::write(state_dir.join("bad.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  namespace: a\ndata:\n  k: dmFsdWU=\n").unwrap();
    std::fs::write(
        state_dir.join("main.toml"),
        "[kubernetes.manifest.bad]\ncluster = { env = \"KUBECONFIG_PROD\" }\nfile = \"bad.yaml\"\n",
    )
    .unwrap();
    let e = desired::load(&state_dir).unwrap_err().to_string();
    assert!(e.contains("main.toml:3"), "{e}");
    assert!(e.contains("kubernetes.manifest.bad.file"), "{e}");
    assert!(
        e.contains("bad.yaml, line 1: ConfigMap x is namespaced"),
        "{e}"
    );
    assert!(
        e.contains("bad.yaml, line 6: Secret s: a manifest holds no Secrets"),
        "{e}"
    );
    assert!(!e.contains("dmFsdWU="), "{e}");
}

both!(requests_per_pass_grow_with_types_and_namespaces);
/// Counts the requests of a pass over `n` manifests of one object each (in `n`
/// namespaces), to show the cost grows with types and namespaces, not with objects.
async fn requests_per_pass_grow_with_types_and_namespaces(backend: Backend) {
    let Some(mut w) = world(backend).await else {
        return;
    };
    let mut files = Vec::new();
    let mut toml = String::new();
    let mut yaml = String::from("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: NS\n");
    for i in 0..20 {
        yaml.push_str(&format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c{i}\n  namespace: NS\ndata: {{i: \"{i}\"}}\n"));
    }
    files.push(("app.yaml".to_string(), yaml));
    toml.push_str(APP_TOML);
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let d = w.state(&toml, &files);
    w.converge(&d).await;
    let before = w.requests();
    w.assert_converged(&d).await;
    let used = w.requests() - before;
    println!("requests in a no-change pass over 21 objects of 2 types in 1 namespace: {used}");
    assert_eq!(used, 2);
}

const CANARY: &str = "canary-kube-7d41c2-do-not-leak";

const SECRET_TOML: &str = r#"
[kubernetes.manifest.ns]
cluster = { file = "KUBECONFIG" }
yaml = """
apiVersion: v1
kind: Namespace
metadata:
  name: NS
"""

[kubernetes.secret.git]
cluster = { file = "KUBECONFIG" }
namespace = "NS"
name = "flux-system"
data = { identity = { file = "SECRET_FILE" } }
plain = { known_hosts = "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl" }
depends_on = ["kubernetes.manifest.ns"]
"#;

impl World {
    /// The desired state of [`SECRET_TOML`], the secret file (`SECRET_FILE`) holding
    /// `value`.
    fn secret_state(&self, toml: &str, value: &str) -> DesiredState {
        std::fs::write(self.dir.path().join("identity"), value).unwrap();
        self.state(toml, &[])
    }

    async fn secret(&self, name: &str) -> Option<k8s_openapi::api::core::v1::Secret> {
        let api: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(self.kube().await, &self.ns);
        api.get_opt(name).await.unwrap()
    }

    async fn secret_value(&self, name: &str, key: &str) -> Option<String> {
        let s = self.secret(name).await?;
        let v = s.data?.get(key)?.0.clone();
        Some(String::from_utf8(v).unwrap())
    }
}

/// Asserts that `text` holds neither the canary nor its base64.
#[track_caller]
fn assert_no_canary(what: &str, text: &str, canary: &str) {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(canary);
    assert!(!text.contains(canary), "{what} holds the canary:\n{text}");
    assert!(
        !text.contains(&b64),
        "{what} holds the canary's base64:\n{text}"
    );
    // Base64 of the canary at another offset (inside a larger value).
    let shifted = base64::engine::general_purpose::STANDARD.encode(format!("x{canary}"));
    assert!(
        !text.contains(&shifted[4..20]),
        "{what} holds a base64 run of the canary:\n{text}"
    );
}

both!(a_secret_is_written_from_its_sources_and_its_values_never_shown_or_stored);
async fn a_secret_is_written_from_its_sources_and_its_values_never_shown_or_stored(
    backend: Backend,
) {
    let Some(mut w) = world(backend).await else {
        return;
    };
    let d = w.secret_state(SECRET_TOML, CANARY);
    let (plan, report, _) = w.plan(&d).await;
    let shown = render(&plan, &report);
    println!("{shown}");
    assert!(shown.contains("data.identity"), "{shown}");
    assert!(
        shown.contains("known_hosts"),
        "plain values are shown: {shown}"
    );
    assert_no_canary("the plan", &shown, CANARY);
    assert_no_canary(
        "the JSON plan",
        &serde_json::to_string(&plan).unwrap(),
        CANARY,
    );
    w.converge(&d).await;

    // The cluster has the value; the ledger has a keyed fingerprint of it, nothing more.
    assert_eq!(
        w.secret_value("flux-system", "identity").await.unwrap(),
        CANARY
    );
    assert!(
        w.secret_value("flux-system", "known_hosts")
            .await
            .unwrap()
            .starts_with("github.com ssh-ed25519")
    );
    let s = w.secret("flux-system").await.unwrap();
    assert_eq!(
        s.metadata.labels.unwrap()["app.kubernetes.io/managed-by"],
        "provisioner"
    );
    let entry = &w.ledger.resources[&Address::new("kubernetes", "secret", "git")];
    assert_eq!(entry.id, format!("{}/flux-system", w.ns));
    assert!(
        entry.fingerprints["data.identity"].starts_with("hmac-sha256:"),
        "{:?}",
        entry.fingerprints
    );
    assert_no_canary(
        "the ledger",
        &serde_json::to_string_pretty(&w.ledger).unwrap(),
        CANARY,
    );
    w.assert_converged(&d).await;

    // A pass over a Namespace and a Secret: one list of namespaces, one of the namespace's
    // Secrets.
    let before = w.requests();
    w.assert_converged(&d).await;
    let used = w.requests() - before;
    println!("requests in a no-change pass over a manifest and a Secret: {used}");
    assert_eq!(used, 2);

    // What observing saw holds no value of a secret key either.
    let live = w.live(&d).await;
    assert_no_canary(
        "the observation",
        &serde_json::to_string(&live).unwrap(),
        CANARY,
    );

    // A new value in the source is written; the plan says which key, never the values.
    let second = "canary-kube-second-0b9e77-do-not-leak";
    let d = w.secret_state(SECRET_TOML, second);
    let (plan, report, _) = w.plan(&d).await;
    let c = change(&plan, "kubernetes.secret.git");
    assert_eq!(c.action, Action::Update);
    assert_eq!(
        c.fields.iter().map(|f| f.path.as_ref()).collect::<Vec<_>>(),
        ["data.identity"]
    );
    let shown = render(&plan, &report);
    assert_no_canary("the plan", &shown, CANARY);
    assert_no_canary("the plan", &shown, second);
    w.converge(&d).await;
    assert_eq!(
        w.secret_value("flux-system", "identity").await.unwrap(),
        second
    );
    w.assert_converged(&d).await;

    // A failed write says why, without the value: the namespace does not exist.
    let gone = SECRET_TOML
        .replace("namespace = \"NS\"", "namespace = \"NS-missing\"")
        .replace("depends_on = [\"kubernetes.manifest.ns\"]\n", "");
    let d = w.secret_state(&gone, CANARY);
    let errors = w.apply_errors(&d).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("404"), "{errors:?}");
    assert_no_canary("the error", &errors.join("\n"), CANARY);
}

both!(a_deleted_secret_is_rebuilt_and_a_hand_edit_is_named_and_undone);
async fn a_deleted_secret_is_rebuilt_and_a_hand_edit_is_named_and_undone(backend: Backend) {
    let Some(mut w) = world(backend).await else {
        return;
    };
    let d = w.secret_state(SECRET_TOML, CANARY);
    w.converge(&d).await;

    // Deleted by hand: re-created with the same values on the next apply.
    let api: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(w.kube().await, &w.ns);
    api.delete("flux-system", &Default::default())
        .await
        .unwrap();
    let (plan, _, _) = w.plan(&d).await;
    let c = change(&plan, "kubernetes.secret.git");
    assert_eq!(c.action, Action::Create, "{c:#?}");
    assert_eq!(
        c.reason.as_deref(),
        Some("deleted outside provisioner: re-created")
    );
    w.converge(&d).await;
    assert_eq!(
        w.secret_value("flux-system", "identity").await.unwrap(),
        CANARY
    );
    w.assert_converged(&d).await;

    // Edited by hand (kubectl edit): reported, naming the editor, and written back.
    let edit = PatchParams {
        field_manager: Some("kubectl-edit".into()),
        ..PatchParams::default()
    };
    api.patch(
        "flux-system",
        &edit,
        &Patch::Merge(json!({"data": {"identity": "aGFuZC1lZGl0", "extra": "eA=="}})),
    )
    .await
    .unwrap();
    let (plan, report, _) = w.plan(&d).await;
    let c = change(&plan, "kubernetes.secret.git");
    assert_eq!(c.action, Action::Update, "{c:#?}");
    let shown = render(&plan, &report);
    println!("{shown}");
    assert!(shown.contains("written_by"), "{shown}");
    assert!(shown.contains("kubectl-edit (Update)"), "{shown}");
    assert!(
        shown.contains("keys_of_others [\"extra\"] not made by provisioner"),
        "a key added by hand is reported: {shown}"
    );
    assert!(
        !shown.contains("aGFuZC1lZGl0") && !shown.contains("hand-edit"),
        "{shown}"
    );
    w.converge(&d).await;
    assert_eq!(
        w.secret_value("flux-system", "identity").await.unwrap(),
        CANARY
    );
    // The key someone else added is theirs: reported (drift), never removed.
    assert_eq!(w.secret_value("flux-system", "extra").await.unwrap(), "x");
    w.assert_converged(&d).await;
    let (plan, _, _) = w.plan(&d).await;
    assert_eq!(change(&plan, "kubernetes.secret.git").action, Action::Drift);
}

both!(
    the_command_line_never_prints_a_secret_value_even_at_trace_level,
    flavor = "multi_thread",
    worker_threads = 2
);
// Multi-threaded: the child process talks to the proxy this runtime serves while the test
// waits for it.
async fn the_command_line_never_prints_a_secret_value_even_at_trace_level(backend: Backend) {
    let Some(w) = world(backend).await else {
        return;
    };
    let d = w.secret_state(SECRET_TOML, CANARY);
    drop(d);
    let ledger_dir = w.dir.path().join("ledger");
    std::fs::create_dir_all(&ledger_dir).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_provisioner"))
            .args(args)
            .arg("-d")
            .arg(w.dir.path().join("desired"))
            .arg("--ledger")
            .arg(format!("file://{}", ledger_dir.display()))
            .env_remove("DIGITALOCEAN_TOKEN")
            .env_remove("GITHUB_TOKEN")
            .env("RUST_LOG", "trace")
            .env(
                "PROVISIONER_FINGERPRINT_KEY",
                "test-fingerprint-key-0123456789",
            )
            .output()
            .unwrap();
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let (code, text) = run(&["apply", "--auto-approve"]);
    assert_eq!(code, Some(0), "{text}");
    assert_no_canary("apply's output at trace level", &text, CANARY);
    assert!(
        !text.contains(&w.server.token),
        "the kubeconfig's token is in the output"
    );
    assert!(text.contains("kubernetes.secret.git"), "{text}");
    assert_eq!(
        w.secret_value("flux-system", "identity").await.unwrap(),
        CANARY
    );
    let (code, text) = run(&["diff", "--detailed-exitcode", "--json"]);
    assert_eq!(code, Some(0), "{text}");
    assert_no_canary("diff's output", &text, CANARY);
    let ledger = std::fs::read_to_string(ledger_dir.join("ledger.json")).unwrap();
    assert_no_canary("the ledger file", &ledger, CANARY);
}

both!(a_deploy_key_kept_in_secrets_manager_becomes_the_flux_secret_and_is_rebuilt);
/// The design's Flux credentials, end to end: a deploy key's private half kept in Secrets
/// Manager (the project's AWS simulator) and handed on to the cluster as the Flux pull
/// Secret; deleted by hand, the Secret is rebuilt from Secrets Manager, with no new key.
async fn a_deploy_key_kept_in_secrets_manager_becomes_the_flux_secret_and_is_rebuilt(
    backend: Backend,
) {
    use provisioner::providers::aws::AwsProvider;
    use provisioner::providers::github::{GhApiConfig, GhClient, GhProvider};
    use provisioner::sim::github::{GhConfig, GhSim};
    let Some(w) = world(backend).await else {
        return;
    };
    let gh_sim = GhSim::start(GhConfig::default()).await.unwrap();
    gh_sim.create_repo("example-org/platform-gitops");
    let aws_sim = provisioner::sim::aws::AwsSim::start("us-east-1")
        .await
        .unwrap();
    let aws = aws_config::SdkConfig::builder()
        .endpoint_url(aws_sim.url())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(
            aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "tests"),
        ))
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build();
    let mut gh = GhApiConfig::new(gh_sim.url(), "sim-gh-token");
    gh.write_gap = std::time::Duration::ZERO;
    let mut w = World {
        clouds: Clouds::new(
            Err("none".into()),
            Ok(GhProvider::new(GhClient::new(gh).unwrap())),
            Ok(AwsProvider::new(&aws, &aws)),
        )
        .with_kubernetes(KubeProvider::new(None, options())),
        ..w
    };
    let toml = format!(
        "{}\n[github.deploy_key.flux]\nrepository = \"example-org/platform-gitops\"\ntitle = \"flux-NS\"\n\n[aws.secretsmanager_secret.flux_key]\nname = \"flux-key-NS\"\nvalue = \"${{github.deploy_key.flux.private_key}}\"\n",
        SECRET_TOML.replace(
            "{ file = \"SECRET_FILE\" }",
            "\"${aws.secretsmanager_secret.flux_key.value}\"",
        )
    );
    let d = w.state(&toml, &[]);
    w.converge(&d).await;
    let identity = w.secret_value("flux-system", "identity").await.unwrap();
    assert!(
        identity.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----"),
        "the deploy key's private half"
    );
    let sm = aws_sdk_secretsmanager::Client::new(&aws)
        .get_secret_value()
        .secret_id(format!("flux-key-{}", w.ns))
        .send()
        .await
        .unwrap();
    assert_eq!(sm.secret_string(), Some(identity.as_str()));
    let ledger_text = serde_json::to_string(&w.ledger).unwrap();
    assert!(!ledger_text.contains("PRIVATE KEY"), "{ledger_text}");
    w.assert_converged(&d).await;

    // Deleted by hand: rebuilt from Secrets Manager; the deploy key stays.
    let api: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(w.kube().await, &w.ns);
    api.delete("flux-system", &Default::default())
        .await
        .unwrap();
    let plan = w.converge(&d).await;
    assert_eq!(
        acting(&plan),
        [("kubernetes.secret.git".to_string(), Action::Create)]
    );
    assert_eq!(
        w.secret_value("flux-system", "identity").await.unwrap(),
        identity
    );
    w.assert_converged(&d).await;
}

both!(a_digitalocean_clusters_kubeconfig_reaches_the_cluster);
/// `cluster` as the design writes it: a DigitalOcean cluster's kubeconfig (the DigitalOcean
/// simulator's, its endpoint pointed at the proxy, which stands for the cluster's API). The
/// provider reads it from DigitalOcean while observing (once: it is kept in memory for two
/// thirds of its life), the executor hands it on when applying.
async fn a_digitalocean_clusters_kubeconfig_reaches_the_cluster(backend: Backend) {
    use provisioner::providers::digitalocean::{ApiConfig, DoClient, DoProvider};
    use provisioner::sim::digitalocean::{DoConfig, DoSim};
    let Some(w) = world(backend).await else {
        return;
    };
    let do_sim = DoSim::start(DoConfig {
        provisioning: std::time::Duration::from_millis(100),
        ..DoConfig::default()
    })
    .await
    .unwrap();
    let client = || DoClient::new(ApiConfig::new(do_sim.url(), "sim-token", 250)).unwrap();
    let mut w = World {
        clouds: Clouds::new(
            Ok(DoProvider {
                client: client(),
                spaces: None,
                poll_every: std::time::Duration::from_millis(50),
            }),
            Err("none".into()),
            Err("none".into()),
        )
        .with_kubernetes(KubeProvider::new(Some(client()), options())),
        ..w
    };
    let cluster = "[digitalocean.kubernetes_cluster.prod]\nname = \"prod-NS\"\nregion = \"ams3\"\nversion = \"1.33\"\n\n[digitalocean.kubernetes_cluster.prod.node_pools.workers]\nsize = \"s-2vcpu-4gb\"\ncount = 2\n";
    let d = w.state(cluster, &[]);
    w.converge(&d).await;
    // The cluster's API is the proxy, which sends the real server's token upstream.
    w.proxy.set_token(&w.server.token);
    let proxy_url = w.proxy.url.clone();
    do_sim.edit(|s| {
        for c in &mut s.clusters {
            c["endpoint"] = json!(proxy_url);
        }
    });
    let manifest = "[kubernetes.manifest.app]\ncluster = \"${digitalocean.kubernetes_cluster.prod.kubeconfig}\"\nyaml = \"\"\"\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: NS\n\"\"\"\n";
    let d = w.state(&format!("{cluster}\n{manifest}"), &[]);
    let plan = w.converge(&d).await;
    assert_eq!(
        acting(&plan),
        [("kubernetes.manifest.app".to_string(), Action::Create)]
    );
    assert!(
        w.get("v1", "Namespace", "namespaces", None, &w.ns)
            .await
            .is_some()
    );
    let entry = &w.ledger.resources[&Address::new("kubernetes", "manifest", "app")];
    assert_eq!(
        entry.attributes["cluster_source"],
        json!({"cluster": "digitalocean.kubernetes_cluster.prod"})
    );
    assert_eq!(entry.attributes["server"], json!(w.proxy.url));
    assert!(!serde_json::to_string(&w.ledger).unwrap().contains("sim-"));
    // Later passes reuse the kubeconfig read while observing: the cluster's list only.
    let before = w.requests();
    w.assert_converged(&d).await;
    assert_eq!(w.requests() - before, 1);
}
