//! `flux.instance`: the Flux Operator's `FluxInstance` (`fluxcd.controlplane.io/v1`), which
//! installs and upgrades Flux in a cluster and makes it sync a Git repository. provisioner
//! writes the instance (and, with `kubernetes.manifest` and `kubernetes.secret`, the
//! operator and the pull secret); the operator does the rest. The fields follow the
//! operator's API reference (fluxoperator.dev/docs/crd/fluxinstance, "Flux Instance CRD";
//! controlplaneio-fluxcd/flux-operator `docs/api/v1/fluxinstance.md`). docs/kubernetes.md is
//! the guide.

use super::kubernetes::{Namespace, WrittenBy};
use super::{Export, KindInfo, KindRules, Replacement, exact, plain};
use crate::desired::schema::{Cx, Set};
use crate::desired::source::Span;
use crate::desired::values::{Duration, Secret};
use crate::{block, string_enum};

/// The one name a `FluxInstance` may have: the operator reconciles only the instance named
/// `flux`, in its own namespace (fluxoperator.dev, "Flux Instance CRD": "A single custom
/// resource of this kind can exist in a Kubernetes cluster with the name `flux`").
pub const INSTANCE_NAME: &str = "flux";

/// The API version of `FluxInstance`.
pub const API_VERSION: &str = "fluxcd.controlplane.io/v1";

string_enum! {
    /// A Flux controller the operator installs (fluxoperator.dev, "Flux Instance CRD",
    /// `.spec.components`).
    pub enum FluxComponent {
        /// Fetches sources (Git, OCI, Helm, buckets).
        SourceController = "source-controller",
        /// Applies Kustomizations.
        KustomizeController = "kustomize-controller",
        /// Installs HelmReleases.
        HelmController = "helm-controller",
        /// Sends and receives notifications.
        NotificationController = "notification-controller",
        /// Scans image registries.
        ImageReflectorController = "image-reflector-controller",
        /// Writes image updates to Git.
        ImageAutomationController = "image-automation-controller",
        /// Watches sources to compose artifacts.
        SourceWatcher = "source-watcher",
    }
}

string_enum! {
    /// The kind of cluster (`.spec.cluster.type`), which adjusts the install to the
    /// platform.
    pub enum FluxClusterType {
        /// Any conformant cluster (DOKS included).
        Kubernetes = "kubernetes",
        /// OpenShift.
        Openshift = "openshift",
        /// EKS.
        Aws = "aws",
        /// AKS.
        Azure = "azure",
        /// GKE.
        Gcp = "gcp",
    }
}

string_enum! {
    /// The kind of source the operator makes for `sync` (`.spec.sync.kind`).
    pub enum FluxSyncKind {
        /// A Git repository.
        GitRepository = "GitRepository",
        /// An OCI artifact.
        OciRepository = "OCIRepository",
        /// A bucket.
        Bucket = "Bucket",
    }
}

block! {
    /// What the cluster syncs from: the operator makes a source and a Kustomization, both
    /// named after the namespace, as `flux bootstrap` names them.
    pub struct FluxSync {
        /// The kind of source.
        kind: FluxSyncKind = "GitRepository" => update,
        /// The repository: `ssh://git@github.com/org/repo.git` (with a deploy key in `pull_secret`), `https://…`, or `oci://…` for `OCIRepository`.
        url: String => update,
        /// The Git reference (`refs/heads/main`, `refs/tags/v1.0.0`) or the OCI tag.
        r#ref: String => update,
        /// The folder of the repository the cluster syncs (`clusters/prod`).
        path: String => update,
        /// The Secret (in the instance's namespace) holding the credentials: for SSH, `identity` and `known_hosts`. A reference such as `"${kubernetes.secret.flux_git.name}"` orders the Secret first.
        pull_secret: Option<String> => update,
    }
    check = check_sync;
}

fn check_sync(s: &FluxSync, span: Span, cx: &mut Cx<'_>) {
    let refs = crate::desired::refs::contains_ref;
    if !refs(&s.url) {
        let schemes: &[&str] = match s.kind {
            FluxSyncKind::GitRepository => &["ssh://", "https://", "http://"],
            FluxSyncKind::OciRepository => &["oci://"],
            FluxSyncKind::Bucket => &["https://", "http://", "s3://", "gs://", ""],
        };
        if s.url.trim().is_empty() || !schemes.iter().any(|p| s.url.starts_with(p)) {
            cx.nested("url", |cx| {
                cx.error(
                    span,
                    format!(
                        "\"{}\" is not a {} URL: it starts with {}",
                        s.url,
                        s.kind,
                        schemes
                            .iter()
                            .filter(|p| !p.is_empty())
                            .map(|p| format!("`{p}`"))
                            .collect::<Vec<_>>()
                            .join(" or ")
                    ),
                );
            });
        }
    }
    if s.r#ref.trim().is_empty() {
        cx.nested("ref", |cx| {
            cx.error(span, "an empty `ref`: write `refs/heads/main` or a tag");
        });
    }
    if !refs(&s.path)
        && (s.path.trim().is_empty()
            || s.path.starts_with('/')
            || s.path.split('/').any(|p| p == ".."))
    {
        cx.nested("path", |cx| {
            cx.error(
                span,
                format!(
                    "\"{}\" is not a folder of the repository: write a relative path without `..`, like `clusters/prod`",
                    s.path
                ),
            );
        });
    }
}

block! {
    /// The Flux Operator's `FluxInstance`: which Flux it installs and what the cluster syncs.
    pub struct FluxInstance {
        /// The cluster: a reference to a DigitalOcean cluster's kubeconfig (`"${digitalocean.kubernetes_cluster.prod.kubeconfig}"`), or `{ env = "NAME" }` / `{ file = "path" }` holding a kubeconfig. Read into memory only.
        cluster: Secret => update,
        /// The operator's namespace: the instance is made there, named `flux` (the only name the operator reconciles).
        namespace: Namespace = "flux-system" => replace,
        /// The Flux version or semver range the operator installs and keeps upgrading within (`2.8.x`, `2.x`, `2.8.3`).
        version: String => update,
        /// The registry of the Flux images.
        registry: String = "ghcr.io/fluxcd" => update,
        /// The controllers to install (order does not matter); empty: the operator's default (source-, kustomize-, helm- and notification-controller).
        components: Set<FluxComponent> => update,
        /// The kind of cluster (`.spec.cluster.type`).
        cluster_type: FluxClusterType = "kubernetes" => update,
        /// Lock down Flux for multi-tenancy (`.spec.cluster.multitenant`).
        multitenant: bool = false => update,
        /// Install the network policies of `flux-system` (`.spec.cluster.networkPolicy`).
        network_policy: bool = true => update,
        /// The cluster's DNS domain (`.spec.cluster.domain`).
        cluster_domain: String = "cluster.local" => update,
        /// What the cluster syncs from; absent: Flux is installed and syncs nothing.
        sync: Option<FluxSync> => update,
        /// How long an apply waits for the instance to be `Ready` (and a delete for it to be gone) before it fails, to be tried again.
        wait: Duration = "5m" => local,
        /// Computed, never written: `provisioner`, or who changed the instance since provisioner wrote it.
        written_by: WrittenBy => update,
        /// Take over a `FluxInstance` that exists already and was not made by provisioner (one `flux bootstrap` or `kubectl` made). Off: it is refused. One another provisioner ledger made is always refused.
        take_over: bool = false => local,
    }
    check = check_instance;
}

fn check_instance(f: &FluxInstance, span: Span, cx: &mut Cx<'_>) {
    super::kubernetes::check_cluster(&f.cluster, span, cx);
    if !crate::desired::refs::contains_ref(&f.version) && !is_version_range(&f.version) {
        cx.nested("version", |cx| {
            cx.error(
                span,
                format!(
                    "\"{}\" is not a Flux version or range: write `2.8.x`, `2.x`, `2.8.3` or a semver constraint like `>=2.7.0 <2.9.0`",
                    f.version
                ),
            );
        });
    }
    if f.registry.trim().is_empty() || f.registry.contains(char::is_whitespace) {
        cx.nested("registry", |cx| {
            cx.error(span, "a registry is a host and path, like `ghcr.io/fluxcd`");
        });
    }
    if f.cluster_domain.trim().is_empty() {
        cx.nested("cluster_domain", |cx| {
            cx.error(
                span,
                "an empty cluster domain: the default is `cluster.local`",
            );
        });
    }
    let mut seen = std::collections::BTreeSet::new();
    for c in &f.components {
        if !seen.insert(*c) {
            cx.nested("components", |cx| {
                cx.error(span, format!("`{c}` is listed twice"));
            });
        }
    }
    if !f.components.is_empty() && !f.components.contains(&FluxComponent::SourceController) {
        cx.nested("components", |cx| {
            cx.error(
                span,
                "every Flux needs `source-controller` (the other controllers read its artifacts)",
            );
        });
    }
    if let Err(e) = Duration::parse(&f.wait.0) {
        cx.nested("wait", |cx| {
            cx.error(span, e);
        });
    }
}

/// True for what the operator accepts as `.spec.distribution.version`: a version
/// (`2.8.3`, `v2.8.3`), an x-range (`2.8.x`, `2.x`, `*`), or a constraint of comparisons
/// (`>=2.7.0 <2.9.0`, `~2.8`, `^2.8`), as Masterminds/semver reads them.
pub fn is_version_range(s: &str) -> bool {
    let s = s.trim();
    if s.is_empty() || s.len() > 100 {
        return false;
    }
    s.split(['|', ',', ' '])
        .filter(|p| !p.is_empty())
        .all(|part| {
            let p = part.trim_start_matches(['>', '<', '=', '~', '^', '!']);
            let p = p.strip_prefix('v').unwrap_or(p);
            if p == "*" {
                return true;
            }
            let core = p.split(['-', '+']).next().unwrap_or("");
            let nums: Vec<&str> = core.split('.').collect();
            !nums.is_empty()
                && nums.len() <= 3
                && nums.iter().enumerate().all(|(i, n)| {
                    (i > 0 && matches!(*n, "x" | "X" | "*"))
                        || (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                })
        })
}

impl KindInfo for FluxInstance {
    const DOC: &'static str = "The Flux Operator's `FluxInstance` (named `flux`, in the operator's namespace): which Flux the operator installs and keeps upgraded, and the repository the cluster syncs. Applied with server-side apply (field manager `provisioner`); an apply waits until the instance is `Ready`. An instance that is not Ready is reported (plan, `/status`, metrics) with the operator's message, and not re-applied for it. Deleting it uninstalls Flux: the operator removes the Flux controllers and CRDs, and with the CRDs every Flux object in the cluster. See docs/kubernetes.md.";
    const ON_DELETE: Option<&'static str> = Some(
        "deleting a FluxInstance uninstalls Flux: the Flux Operator removes the Flux controllers and the Flux CRDs, and with the CRDs every GitRepository, Kustomization and HelmRelease in the cluster (the workloads they made stay; controlplaneio-fluxcd/flux-operator#423). `lifecycle.prevent_destroy` makes a delete take `--allow-destroy`",
    );
    const EXPORTS: &'static [Export] = &[
        plain("name", "the instance's name (`flux`)"),
        plain("namespace", "the instance's namespace"),
    ];
    const RULES: KindRules = KindRules {
        key: &[exact("namespace")],
        ignore_case: &[],
        // One instance per namespace, by its fixed name: the old one goes first.
        replacement: Replacement::DestroyFirst,
        unrecoverable: &[],
        expiring: &[],
        carries_lineage: true,
    };
    fn identity(&self) -> Option<String> {
        Some(format!("fluxinstance {}/{INSTANCE_NAME}", self.namespace.0))
    }
}

/// The spec JSON of an instance, as the planner reads it: `written_by` filled in.
pub fn instance_json(v: &mut serde_json::Value) {
    if let Some(obj) = v.as_object_mut() {
        obj.insert(
            "written_by".into(),
            serde_json::Value::String(super::kubernetes::WRITTEN_BY_PROVISIONER.into()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_ranges_the_operator_reads_are_accepted() {
        for ok in [
            "2.8.x",
            "2.x",
            "*",
            "2.8.3",
            "v2.8.3",
            ">=2.7.0 <2.9.0",
            "~2.8",
            "^2.8",
            "2.8.0-rc.1",
        ] {
            assert!(is_version_range(ok), "{ok}");
        }
        for bad in ["", "latest", "2..8", "x.2", "2.8.3.1", "two", "2.8.x; rm"] {
            assert!(!is_version_range(bad), "{bad}");
        }
    }

    const INSTANCE: &str =
        "[flux.instance.prod]\ncluster = { env = \"KUBECONFIG_PROD\" }\nversion = \"2.8.x\"\n";

    #[test]
    fn defaults_are_the_operators_and_written_by_is_filled_in() {
        let d = crate::plan::planner::testing::desired(INSTANCE);
        let r = d.resources.values().next().unwrap();
        assert_eq!(r.spec_json["namespace"], "flux-system");
        assert_eq!(r.spec_json["registry"], "ghcr.io/fluxcd");
        assert_eq!(r.spec_json["cluster_type"], "kubernetes");
        assert_eq!(r.spec_json["network_policy"], true);
        assert_eq!(r.spec_json["written_by"], "provisioner");
        assert_eq!(r.spec_json["components"], serde_json::json!([]));
        assert!(r.spec_json["sync"].is_null());
    }

    #[test]
    fn a_bad_version_url_path_or_components_are_refused_with_their_fields() {
        let text = "[flux.instance.prod]\ncluster = { env = \"K\" }\nversion = \"latest\"\ncomponents = [\"kustomize-controller\"]\nsync = { url = \"git@github.com:org/repo.git\", ref = \"refs/heads/main\", path = \"/abs\" }\n";
        let mut loaded = crate::desired::load::Loaded::default();
        crate::desired::load::load_text(
            std::path::PathBuf::from("t.toml"),
            text.to_string(),
            &mut loaded,
        );
        let all = format!(
            "{:?}",
            crate::desired::validate::validate(loaded).unwrap_err()
        );
        assert!(all.contains("latest\\\" is not a Flux version"), "{all}");
        assert!(all.contains("needs `source-controller`"), "{all}");
        assert!(all.contains("is not a GitRepository URL"), "{all}");
        assert!(all.contains("/abs\\\" is not a folder"), "{all}");
    }
}
