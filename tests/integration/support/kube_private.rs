//! A kube-apiserver (and etcd) of one test's own, from the binaries `.ci/kube-servers build`
//! caches: for a test whose cluster-wide objects (CRDs, a `flux-system` namespace) would
//! collide with other tests' on the shared server. Stopped when dropped. `None` when the
//! binaries are not built, which under `CI=true` is a failure instead.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use serde_json::{Value, json};

/// A running private API server.
pub struct PrivateApiServer {
    dir: PathBuf,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// A `system:masters` bearer token.
    pub token: String,
    /// The PEM of the CA that signed the server's certificate.
    pub ca_pem: Vec<u8>,
}

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/kube-servers");

impl PrivateApiServer {
    /// Starts one, or says why not.
    pub fn start() -> Option<PrivateApiServer> {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        let dir = std::env::temp_dir().join(format!(
            "provisioner-kube-private-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new(SCRIPT)
            .arg("start")
            .arg(&dir)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            let _ = Command::new(SCRIPT).arg("stop").arg(&dir).output();
            let _ = std::fs::remove_dir_all(&dir);
            if text.contains("no binaries") && !ci {
                eprintln!("skipping the real API server: {text}");
                return None;
            }
            panic!("starting a private Kubernetes API server failed:\n{text}");
        }
        let env = std::fs::read_to_string(dir.join("env")).unwrap();
        let get = |k: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .map(str::to_string)
                .unwrap_or_else(|| panic!("{k} missing from the server's env file"))
        };
        let ca_pem = std::fs::read(get("PROVISIONER_TEST_KUBE_CA")).unwrap();
        Some(PrivateApiServer {
            url: get("PROVISIONER_TEST_KUBE_URL"),
            token: get("PROVISIONER_TEST_KUBE_TOKEN"),
            ca_pem,
            dir,
        })
    }

    /// A client as `kubectl` would be.
    pub async fn client(&self) -> kube::Client {
        use base64::Engine;
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n    server: {}\n  name: c\ncontexts:\n- context:\n    cluster: c\n    user: u\n  name: c\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: {}\n",
            self.url, self.token
        );
        let kc = kube::config::Kubeconfig::from_yaml(&text).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        kube::Client::try_from(config).unwrap()
    }
}

impl Drop for PrivateApiServer {
    fn drop(&mut self) {
        let _ = Command::new(SCRIPT).arg("stop").arg(&self.dir).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Plays the Flux Operator against a real API server (nothing runs pods there): every
/// `FluxInstance` whose current generation is not reconciled yet is reported `Ready`
/// through its status subresource. Stops when the returned handle is dropped.
pub struct RealFluxOperator(tokio::task::JoinHandle<()>);

impl Drop for RealFluxOperator {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl RealFluxOperator {
    /// Starts playing the operator with `client`.
    pub fn start(client: kube::Client) -> RealFluxOperator {
        let ar = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("fluxcd.controlplane.io", "v1", "FluxInstance"),
            "fluxinstances",
        );
        RealFluxOperator(tokio::spawn(async move {
            let all: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
            let pp = PatchParams {
                field_manager: Some("flux-operator".into()),
                ..PatchParams::default()
            };
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                // 404 until the CRD is there.
                let Ok(list) = all.list(&ListParams::default()).await else {
                    continue;
                };
                for o in list.items {
                    let generation = o.metadata.generation.unwrap_or(0);
                    let seen = o
                        .data
                        .pointer("/status/observedGeneration")
                        .and_then(Value::as_i64);
                    if seen == Some(generation) || o.metadata.deletion_timestamp.is_some() {
                        continue;
                    }
                    let (Some(ns), Some(name)) = (&o.metadata.namespace, &o.metadata.name) else {
                        continue;
                    };
                    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
                    let _ = api
                        .patch_status(
                            name,
                            &pp,
                            &Patch::Merge(json!({"status": {
                                "observedGeneration": generation,
                                "lastAppliedRevision": "v2.8.3@sha256:4a2f",
                                "conditions": [{
                                    "type": "Ready", "status": "True",
                                    "reason": "ReconciliationSucceeded",
                                    "message": "Reconciliation finished in 2s",
                                    "observedGeneration": generation,
                                    "lastTransitionTime": "2026-11-30T00:00:00Z",
                                }],
                            }})),
                        )
                        .await;
                }
            }
        }))
    }
}
