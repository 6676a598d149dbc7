//! The Flux Operator's part, played against a [`KubeSim`] for the sandbox and the tests:
//! nothing runs pods there, so a task reports every `FluxInstance` `Ready` once it has "seen"
//! its current generation, as the operator does once Flux is installed.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::kubernetes::KubeSim;

/// The played operator: a task, stopped when this is dropped.
pub struct FluxOperator {
    task: tokio::task::JoinHandle<()>,
}

impl FluxOperator {
    /// Starts playing the operator against `kube`, four looks a second.
    pub fn start(kube: Arc<KubeSim>) -> FluxOperator {
        FluxOperator {
            task: tokio::spawn(play(kube)),
        }
    }
}

impl Drop for FluxOperator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Plays the Flux Operator in the simulated cluster: every `FluxInstance` whose current
/// generation it has not reconciled yet is reported `Ready` (status `observedGeneration`,
/// condition `Ready=True`, reason `ReconciliationSucceeded`), as the operator does once
/// Flux is installed (fluxoperator.dev, "Flux Instance CRD", status). Nothing is installed:
/// the sandbox runs no pods.
async fn play(kube: Arc<KubeSim>) {
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        for o in kube.list("fluxcd.controlplane.io/v1", "FluxInstance", None) {
            let generation = o["metadata"]["generation"].as_i64().unwrap_or(0);
            if o["status"]["observedGeneration"].as_i64() == Some(generation)
                || o["metadata"]["deletionTimestamp"].is_string()
            {
                continue;
            }
            let (Some(ns), Some(name)) = (
                o["metadata"]["namespace"].as_str(),
                o["metadata"]["name"].as_str(),
            ) else {
                continue;
            };
            let version = o["spec"]["distribution"]["version"]
                .as_str()
                .unwrap_or("2.x")
                .replace(".x", ".0");
            kube.set_status_as(
                "flux-operator",
                "fluxcd.controlplane.io/v1",
                "FluxInstance",
                Some(ns),
                name,
                &json!({
                    "observedGeneration": generation,
                    "lastAppliedRevision": format!("v{version}@sandbox"),
                    "conditions": [{
                        "type": "Ready",
                        "status": "True",
                        "reason": "ReconciliationSucceeded",
                        "message": format!("Reconciliation finished (sandbox: Flux v{version} not actually installed)"),
                        "observedGeneration": generation,
                        "lastTransitionTime": crate::now(),
                    }],
                }),
            );
        }
    }
}
