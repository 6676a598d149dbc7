//! `flux.instance` against the real kube-apiserver and the simulator (each test on both, as
//! the rest of the suite). Nothing runs pods there, so a test
//! task plays the Flux Operator's part: it adds the operator's finalizer to the instance,
//! writes its status (`observedGeneration`, the `Ready` or `Stalled` condition) through the
//! status subresource, and removes the finalizer when the instance is deleted. The
//! `FluxInstance` CRD is a schemaless one of the project's own (the operator's manifest is
//! not vendored: its licence differs), installed once per server.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};

use super::*;

/// What the stand-in operator does with the instances of one namespace.
#[derive(Clone, Debug, PartialEq)]
enum Operator {
    /// Reconciles each generation: `Ready=True`.
    Ready,
    /// Says the last reconciliation failed: `Ready=False`, with this message.
    Failing(&'static str),
    /// Gives up: `Stalled=True`, `Ready=False`, with this message.
    Stalled(&'static str),
    /// Does nothing (not running).
    Down,
}

/// The stand-in operator: a task polling the namespace's instance.
struct FakeOperator {
    mode: Arc<Mutex<Operator>>,
    /// Instances whose deletion it finished (finalizer removed), by the time it did.
    uninstalled: Arc<Mutex<Vec<std::time::Instant>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeOperator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const FINALIZER: &str = "fluxcd.controlplane.io/finalizer";

fn instance_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("fluxcd.controlplane.io", "v1", "FluxInstance"),
        "fluxinstances",
    )
}

/// The `FluxInstance` CRD: served, stored, with a status subresource, schemaless.
fn crd() -> Value {
    let open = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "fluxinstances.fluxcd.controlplane.io"},
        "spec": {
            "group": "fluxcd.controlplane.io",
            "scope": "Namespaced",
            "names": {"plural": "fluxinstances", "singular": "fluxinstance",
                      "kind": "FluxInstance", "listKind": "FluxInstanceList"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object",
                    "properties": {"spec": open, "status": open}}},
            }],
        },
    })
}

/// Whether the CRD is installed, per server (the real one, the simulator).
static CRD_READY: [tokio::sync::OnceCell<()>; 2] = [
    tokio::sync::OnceCell::const_new(),
    tokio::sync::OnceCell::const_new(),
];

impl World {
    /// The registry's `flux` provider's requests so far.
    fn flux_requests(&self) -> u64 {
        self.clouds
            .request_stats()
            .get("flux")
            .map_or(0, |s| s.requests)
    }

    /// Installs the `FluxInstance` CRD once per server (as a setup step, not through
    /// provisioner: CRDs are cluster-wide and the tests run side by side).
    async fn flux_crd(&self) {
        let client = self.kube().await;
        CRD_READY[self.server.backend as usize]
            .get_or_init(|| async move {
                let crd = crd();
                let api: Api<
                    k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
                > = Api::all(client.clone());
                api.patch(
                    "fluxinstances.fluxcd.controlplane.io",
                    &PatchParams::apply("test-setup").force(),
                    &Patch::Apply(&crd),
                )
                .await
                .unwrap();
                for _ in 0..100 {
                    let c = api.get("fluxinstances.fluxcd.controlplane.io").await.unwrap();
                    let established = c
                        .status
                        .and_then(|s| s.conditions)
                        .is_some_and(|cs| {
                            cs.iter()
                                .any(|c| c.type_ == "Established" && c.status == "True")
                        });
                    if established {
                        // Discovery may lag the condition a little.
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                panic!("the FluxInstance CRD was not established");
            })
            .await;
    }

    /// Starts the stand-in operator for this test's namespace.
    async fn operator(&self, mode: Operator) -> FakeOperator {
        let client = self.kube().await;
        let api: Api<DynamicObject> = Api::namespaced_with(client, &self.ns, &instance_resource());
        let mode = Arc::new(Mutex::new(mode));
        let uninstalled = Arc::new(Mutex::new(Vec::new()));
        let (m, u) = (mode.clone(), uninstalled.clone());
        let task = tokio::spawn(async move {
            let pp = PatchParams {
                field_manager: Some("flux-operator".into()),
                ..PatchParams::default()
            };
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let now = m.lock().unwrap().clone();
                if now == Operator::Down {
                    continue;
                }
                let Ok(Some(o)) = api.get_opt("flux").await else {
                    continue;
                };
                let finalizers = o.metadata.finalizers.clone().unwrap_or_default();
                if o.metadata.deletion_timestamp.is_some() {
                    // Uninstalling Flux takes the operator a moment.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    if api
                        .patch(
                            "flux",
                            &pp,
                            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
                        )
                        .await
                        .is_ok()
                    {
                        u.lock().unwrap().push(std::time::Instant::now());
                    }
                    continue;
                }
                if !finalizers.iter().any(|f| f == FINALIZER) {
                    let _ = api
                        .patch(
                            "flux",
                            &pp,
                            &Patch::Merge(json!({"metadata": {"finalizers": [FINALIZER]}})),
                        )
                        .await;
                    continue;
                }
                let generation = o.metadata.generation.unwrap_or(0);
                let conditions = match &now {
                    Operator::Ready => json!([{
                        "type": "Ready", "status": "True", "reason": "ReconciliationSucceeded",
                        "message": "Reconciliation finished in 2s",
                        "lastTransitionTime": "2026-11-30T00:00:00Z", "observedGeneration": generation,
                    }]),
                    Operator::Failing(m) => json!([{
                        "type": "Ready", "status": "False", "reason": "ReconciliationFailed",
                        "message": m, "lastTransitionTime": "2026-11-30T00:00:00Z",
                        "observedGeneration": generation,
                    }]),
                    Operator::Stalled(m) => json!([
                        {"type": "Ready", "status": "False", "reason": "InvalidDistribution",
                         "message": m, "lastTransitionTime": "2026-11-30T00:00:00Z",
                         "observedGeneration": generation},
                        {"type": "Stalled", "status": "True", "reason": "InvalidDistribution",
                         "message": m, "lastTransitionTime": "2026-11-30T00:00:00Z",
                         "observedGeneration": generation},
                    ]),
                    Operator::Down => unreachable!(),
                };
                let status = json!({
                    "observedGeneration": generation,
                    "conditions": conditions,
                    "lastAppliedRevision": "v2.8.3@sha256:4a2f",
                });
                if o.data.get("status") != Some(&status) {
                    let _ = api
                        .patch_status("flux", &pp, &Patch::Merge(json!({ "status": status })))
                        .await;
                }
            }
        });
        FakeOperator {
            mode,
            uninstalled,
            task,
        }
    }

    async fn instance(&self) -> Option<DynamicObject> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.kube().await, &self.ns, &instance_resource());
        api.get_opt("flux").await.unwrap()
    }
}

/// The operator's part of the worked example: its namespace (the stand-in for the
/// operator's install manifest), the pull secret, the instance.
const FLUX_TOML: &str = r#"
[kubernetes.manifest.operator]
cluster = { file = "KUBECONFIG" }
yaml = """
apiVersion: v1
kind: Namespace
metadata:
  name: NS
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: flux-operator
  namespace: NS
"""

[kubernetes.secret.git]
cluster = { file = "KUBECONFIG" }
namespace = "NS"
name = "flux-system"
data = { identity = { file = "SECRET_FILE" } }
plain = { known_hosts = "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl" }
depends_on = ["kubernetes.manifest.operator"]

[flux.instance.prod]
cluster = { file = "KUBECONFIG" }
namespace = "NS"
version = "VERSION"
components = ["source-controller", "kustomize-controller"]
sync = { url = "ssh://git@github.com/example-org/platform-gitops.git", ref = "refs/heads/main", path = "clusters/prod", pull_secret = "${kubernetes.secret.git.name}" }
wait = "20s"
depends_on = ["kubernetes.manifest.operator"]
"#;

impl World {
    fn flux_state(&self, version: &str) -> DesiredState {
        self.secret_state(&FLUX_TOML.replace("VERSION", version), CANARY)
    }
}

both!(a_flux_instance_is_applied_after_its_secret_waited_for_until_ready_and_replans_empty);
async fn a_flux_instance_is_applied_after_its_secret_waited_for_until_ready_and_replans_empty(
    backend: Backend,
) {
    let Some(mut w) = world(backend).await else {
        return;
    };
    w.flux_crd().await;
    let _operator = w.operator(Operator::Ready).await;
    let d = w.flux_state("2.8.x");
    let (plan, report, _) = w.plan(&d).await;
    let shown = render(&plan, &report);
    println!("{shown}");
    let wave = |a: &str| change(&plan, a).wave;
    assert!(wave("kubernetes.manifest.operator") < wave("kubernetes.secret.git"));
    assert!(
        wave("kubernetes.secret.git") < wave("flux.instance.prod"),
        "the pull secret's name is referenced: it goes first"
    );
    assert!(
        shown.contains("+ flux.instance.prod will be created"),
        "{shown}"
    );
    w.converge(&d).await;

    let o = w.instance().await.expect("the FluxInstance");
    assert_eq!(
        o.data["spec"],
        json!({
            "distribution": {"version": "2.8.x", "registry": "ghcr.io/fluxcd"},
            "components": ["source-controller", "kustomize-controller"],
            "cluster": {"type": "kubernetes", "multitenant": false, "networkPolicy": true, "domain": "cluster.local"},
            "sync": {"kind": "GitRepository", "url": "ssh://git@github.com/example-org/platform-gitops.git",
                     "ref": "refs/heads/main", "path": "clusters/prod", "pullSecret": "flux-system"},
        })
    );
    let labels = o.metadata.labels.clone().unwrap();
    assert_eq!(labels["provisioner.dev/lineage"], w.ledger.lineage);
    // The apply returned only once the operator said Ready for this generation.
    assert_eq!(
        o.data["status"]["observedGeneration"],
        json!(o.metadata.generation.unwrap())
    );
    let entry = &w.ledger.resources[&Address::parse("flux.instance.prod").unwrap()];
    assert_eq!(
        entry.attributes["last_applied_revision"],
        "v2.8.3@sha256:4a2f"
    );
    assert_eq!(entry.id, format!("{}/flux", w.ns));

    assert_eq!(
        w.secret_value("flux-system", "identity").await.as_deref(),
        Some(CANARY)
    );
    // Nothing to do, Ready reported; one list for the Flux part.
    let before = w.flux_requests();
    let (plan, report, live) = w.plan(&d).await;
    assert!(report.is_complete(), "{:?}", report.unobserved);
    assert!(
        acting(&plan).is_empty(),
        "{:#?}\n{:#?}",
        live.kinds,
        acting(&plan)
    );
    let c = change(&plan, "flux.instance.prod");
    assert!(c.health.as_ref().unwrap().is_ready(), "{c:#?}");
    assert_eq!(w.flux_requests() - before, 1, "one list per namespace");

    // A new version range is an update, waited for again.
    let d2 = w.flux_state("2.9.x");
    let plan = w.converge(&d2).await;
    assert_eq!(
        acting(&plan),
        [("flux.instance.prod".to_string(), Action::Update)]
    );
    let o = w.instance().await.unwrap();
    assert_eq!(o.data["spec"]["distribution"]["version"], "2.9.x");
    w.assert_converged(&d2).await;
}

both!(a_failing_instance_is_reported_with_the_operators_message_and_not_reapplied);
async fn a_failing_instance_is_reported_with_the_operators_message_and_not_reapplied(
    backend: Backend,
) {
    let Some(mut w) = world(backend).await else {
        return;
    };
    w.flux_crd().await;
    let operator = w.operator(Operator::Ready).await;
    let d = w.flux_state("2.8.x");
    w.converge(&d).await;

    *operator.mode.lock().unwrap() = Operator::Failing(
        "GitRepository flux-system/flux-system: authentication required: ssh: handshake failed",
    );
    // The operator writes its status; the next observation sees it.
    let mut seen = None;
    for _ in 0..60 {
        let (plan, report, _) = w.plan(&d).await;
        let c = change(&plan, "flux.instance.prod").clone();
        if c.health.as_ref().is_some_and(|h| !h.is_ready()) {
            seen = Some((plan, report, c));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (plan, report, c) = seen.expect("the failure is observed");
    assert_eq!(
        c.action,
        Action::NoOp,
        "not re-applied for its health: {c:#?}"
    );
    let h = c.health.unwrap();
    assert_eq!(h.state, provisioner::live::HealthState::Failed);
    assert_eq!(h.reason, "ReconciliationFailed");
    let shown = render(&plan, &report);
    println!("{shown}");
    assert!(
        shown.contains("flux.instance.prod is unchanged")
            && shown.contains(
                "! not ready (failed, ReconciliationFailed): GitRepository flux-system/flux-system: authentication required"
            ),
        "{shown}"
    );
    // The summary says the clouds match the desired state, and that Flux is not ready.
    let summary = provisioner::plan::display::Summary {
        plan: &plan,
        report: &report,
    }
    .to_string();
    assert!(
        summary.contains("No changes: the clouds match the desired state.")
            && summary.contains("Not ready (their controllers say so; applying again does not help): flux.instance.prod (failed)."),
        "{summary}"
    );
    let json = serde_json::to_value(&plan).unwrap();
    let listed = json["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == "flux.instance.prod")
        .unwrap()
        .clone();
    assert_eq!(listed["health"]["state"], "failed", "{listed}");
}

/// Converges `d` (every change succeeds), then plans again: the instance's change.
async fn replanned(w: &mut World, d: &DesiredState) -> (provisioner::plan::Change, String) {
    w.converge(d).await;
    let (plan, report, _) = w.plan(d).await;
    (
        change(&plan, "flux.instance.prod").clone(),
        render(&plan, &report),
    )
}

both!(a_stalled_instance_is_recorded_reported_with_the_operators_message_and_not_rewritten);
async fn a_stalled_instance_is_recorded_reported_with_the_operators_message_and_not_rewritten(
    backend: Backend,
) {
    let Some(mut w) = world(backend).await else {
        return;
    };
    w.flux_crd().await;
    let _operator = w
        .operator(Operator::Stalled(
            "no Flux version matching 9.9.x in ghcr.io/fluxcd",
        ))
        .await;
    let d = w.flux_state("9.9.x");
    // The wait ends at once on Stalled; the instance is written and recorded.
    let started = std::time::Instant::now();
    let (c, shown) = replanned(&mut w, &d).await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "no wait for `wait`"
    );
    println!("{shown}");
    assert!(
        w.ledger
            .resources
            .contains_key(&Address::parse("flux.instance.prod").unwrap())
    );
    assert_eq!(c.action, Action::NoOp, "not written again: {c:#?}");
    assert!(
        shown.contains(
            "! not ready (stalled, InvalidDistribution): no Flux version matching 9.9.x in ghcr.io/fluxcd"
        ),
        "{shown}"
    );
    let o = w.instance().await.expect("written");
    assert_eq!(
        o.metadata.labels.unwrap()["provisioner.dev/lineage"],
        w.ledger.lineage
    );
}

both!(an_operator_that_is_not_running_ends_the_wait_and_is_reported);
async fn an_operator_that_is_not_running_ends_the_wait_and_is_reported(backend: Backend) {
    let Some(mut w) = world(backend).await else {
        return;
    };
    w.flux_crd().await;
    let _operator = w.operator(Operator::Down).await;
    let d = w.secret_state(
        &FLUX_TOML
            .replace("VERSION", "2.8.x")
            .replace("wait = \"20s\"", "wait = \"2s\""),
        CANARY,
    );
    let (c, shown) = replanned(&mut w, &d).await;
    println!("{shown}");
    assert_eq!(c.action, Action::NoOp, "{c:#?}");
    let h = c.health.expect("health");
    assert_eq!(h.state, provisioner::live::HealthState::Progressing);
    assert_eq!(h.reason, "NotObservedYet");
    assert!(h.message.contains("is the operator running?"), "{h:?}");
}

both!(an_edit_by_kubectl_is_named_and_taken_back);
async fn an_edit_by_kubectl_is_named_and_taken_back(backend: Backend) {
    let Some(mut w) = world(backend).await else {
        return;
    };
    w.flux_crd().await;
    let _operator = w.operator(Operator::Ready).await;
    let d = w.flux_state("2.8.x");
    w.converge(&d).await;
    let api: Api<DynamicObject> = Api::namespaced_with(w.kube().await, &w.ns, &instance_resource());
    let edit = PatchParams {
        field_manager: Some("kubectl-edit".into()),
        ..PatchParams::default()
    };
    api.patch(
        "flux",
        &edit,
        &Patch::Merge(json!({"spec": {"distribution": {"version": "2.7.x"}}})),
    )
    .await
    .unwrap();
    let (plan, report, _) = w.plan(&d).await;
    let shown = render(&plan, &report);
    println!("{shown}");
    let c = change(&plan, "flux.instance.prod");
    assert_eq!(c.action, Action::Update, "{c:#?}");
    assert!(shown.contains("\"2.7.x\" -> \"2.8.x\""), "{shown}");
    assert!(shown.contains("kubectl-edit (Update)"), "{shown}");
    w.converge(&d).await;
    let o = w.instance().await.unwrap();
    assert_eq!(o.data["spec"]["distribution"]["version"], "2.8.x");
    w.assert_converged(&d).await;
}

both!(a_removed_instance_is_deleted_before_its_operator_and_the_plan_warns);
async fn a_removed_instance_is_deleted_before_its_operator_and_the_plan_warns(backend: Backend) {
    let Some(mut w) = world(backend).await else {
        return;
    };
    w.flux_crd().await;
    let operator = w.operator(Operator::Ready).await;
    let d = w.flux_state("2.8.x");
    w.converge(&d).await;

    // All of it leaves the desired state, with prune on.
    let gone = w.state("[settings]\nprune = true\n", &[]);
    let (plan, report, _) = w.plan(&gone).await;
    let shown = render(&plan, &report);
    println!("{shown}");
    let c = change(&plan, "flux.instance.prod");
    assert_eq!(c.action, Action::Delete);
    assert!(
        c.reason
            .as_deref()
            .is_some_and(|r| r.contains("deleting a FluxInstance uninstalls Flux")),
        "{c:#?}"
    );
    assert!(shown.contains("uninstalls Flux"), "{shown}");
    let wave = |a: &str| change(&plan, a).wave;
    assert!(
        wave("flux.instance.prod") < wave("kubernetes.manifest.operator"),
        "the instance goes while the operator still runs"
    );
    let started = std::time::Instant::now();
    w.converge(&gone).await;
    assert!(w.instance().await.is_none());
    let finished = operator.uninstalled.lock().unwrap().clone();
    assert_eq!(finished.len(), 1, "the operator's finalizer ran");
    assert!(finished[0] > started);
    assert!(w.ledger.resources.is_empty(), "{:?}", w.ledger.resources);
}

both!(an_instance_made_by_hand_is_not_taken_over_unless_asked);
async fn an_instance_made_by_hand_is_not_taken_over_unless_asked(backend: Backend) {
    let Some(mut w) = world(backend).await else {
        return;
    };
    w.flux_crd().await;
    let _operator = w.operator(Operator::Ready).await;
    // The namespace first, then an instance made by `kubectl apply`.
    let d = w.flux_state("2.8.x");
    let ns_only = w.secret_state(
        FLUX_TOML.split("[flux.instance.prod]").next().unwrap(),
        CANARY,
    );
    w.converge(&ns_only).await;
    let api: Api<DynamicObject> = Api::namespaced_with(w.kube().await, &w.ns, &instance_resource());
    let by_hand = json!({
        "apiVersion": "fluxcd.controlplane.io/v1", "kind": "FluxInstance",
        "metadata": {"name": "flux", "namespace": w.ns},
        "spec": {"distribution": {"version": "2.7.x", "registry": "ghcr.io/fluxcd"}},
    });
    api.patch(
        "flux",
        &PatchParams::apply("kubectl").force(),
        &Patch::Apply(&by_hand),
    )
    .await
    .unwrap();
    let errors = w.apply_errors(&d).await;
    let all = errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        all.contains("exists and was not made by provisioner") && all.contains("take_over = true"),
        "{all}"
    );
    let o = w.instance().await.unwrap();
    assert_eq!(
        o.data["spec"]["distribution"]["version"], "2.7.x",
        "untouched"
    );

    let taken = w.secret_state(
        &FLUX_TOML
            .replace("VERSION", "2.8.x")
            .replace("wait = \"20s\"", "wait = \"20s\"\ntake_over = true"),
        CANARY,
    );
    w.converge(&taken).await;
    let o = w.instance().await.unwrap();
    assert_eq!(o.data["spec"]["distribution"]["version"], "2.8.x");
    w.assert_converged(&taken).await;
}

/// A Secret with `known_hosts = "github"`, in the test's namespace.
const KNOWN_HOSTS_TOML: &str = r#"
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
known_hosts = "github"
depends_on = ["kubernetes.manifest.ns"]
"#;

both!(known_hosts_come_from_githubs_meta_and_a_host_key_rotation_is_a_planned_update);
async fn known_hosts_come_from_githubs_meta_and_a_host_key_rotation_is_a_planned_update(
    backend: Backend,
) {
    use provisioner::providers::github::{GhApiConfig, GhClient};
    use provisioner::sim::faults::Fault;
    use provisioner::sim::github::{GITHUB_SSH_KEYS, GhConfig, GhSim};
    let Some(mut w) = world(backend).await else {
        return;
    };
    let gh = GhSim::start(GhConfig::default()).await.unwrap();
    // No token: `GET /meta` is public.
    let client = GhClient::new(GhApiConfig::new(gh.url(), "")).unwrap();
    w.clouds = Clouds::new(Err("none".into()), Err("none".into()), Err("none".into()))
        .with_kubernetes(KubeProvider::new(None, options()).with_github(client));
    let d = w.secret_state(KNOWN_HOSTS_TOML, CANARY);
    let (plan, report, _) = w.plan(&d).await;
    let shown = render(&plan, &report);
    assert!(
        shown
            .lines()
            .any(|l| l.trim_start().starts_with("known_hosts")
                && l.trim_end().ends_with("= \"github\"")),
        "{shown}"
    );
    w.converge(&d).await;
    let expected: String = GITHUB_SSH_KEYS
        .iter()
        .map(|(k, _, _)| format!("github.com {k}\n"))
        .collect();
    assert_eq!(
        w.secret_value("flux-system", "known_hosts").await.unwrap(),
        expected
    );
    assert_eq!(
        w.secret_value("flux-system", "identity").await.unwrap(),
        CANARY
    );
    let meta_reads = || {
        gh.faults
            .requests()
            .iter()
            .filter(|r| r.starts_with("GET /meta"))
            .count()
    };
    let before = meta_reads();
    w.assert_converged(&d).await;
    assert_eq!(meta_reads() - before, 1, "one read of /meta per pass");

    // GitHub rotates its host keys: the next plan updates the Secret.
    let rotated =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBZNewKeyAfterARotationXXXXXXXXXXXXXXXXXXXXX";
    gh.edit(|s| s.ssh_keys = vec![rotated.to_string()]);
    let (plan, report, _) = w.plan(&d).await;
    let shown = render(&plan, &report);
    println!("{shown}");
    let c = change(&plan, "kubernetes.secret.git");
    assert_eq!(c.action, Action::Update, "{c:#?}");
    assert!(
        shown.contains(
            ": \"github.com ssh-ed25519, github.com ecdsa-sha2-nistp256 (2 keys) (not the keys GitHub's /meta lists now)\" -> \"github\""
        ),
        "{shown}"
    );
    w.converge(&d).await;
    assert_eq!(
        w.secret_value("flux-system", "known_hosts").await.unwrap(),
        format!("github.com {rotated}\n")
    );
    w.assert_converged(&d).await;

    // /meta cannot be read: the Secret is not observed, never "unchanged".
    gh.faults.inject(
        Some("GET"),
        "/meta",
        Fault::Respond {
            status: 503,
            body: "{\"message\":\"Service Unavailable\"}".into(),
            headers: Vec::new(),
        },
        None,
    );
    let (plan, report, _) = w.plan(&d).await;
    assert!(
        report
            .unobserved
            .iter()
            .any(|u| u.kind == "kubernetes.secret" && u.reason.contains("GET /meta")),
        "{:?}",
        report.unobserved
    );
    assert!(
        plan.changes
            .iter()
            .all(|c| c.address.to_string() != "kubernetes.secret.git" || !c.action.acts()),
        "{:#?}",
        plan.changes
    );
}
