//! The Kubernetes provider, on kube-rs: `kubernetes.manifest` (objects of a YAML file,
//! applied with server-side apply) and `kubernetes.secret` (a Secret whose values come from
//! secret sources). Each resource names its cluster
//! with `cluster`, a kubeconfig from a secret source ([`cluster::Source`]); the clients made
//! from them live in memory only ([`cluster::Clusters`]).
//!
//! Observing lists, per cluster, each (resource type, namespace) the desired state and the
//! ledger name, metadata only, with the label selector
//! `app.kubernetes.io/managed-by=provisioner`. A cluster that cannot be reached makes the
//! kinds of its resources not observed, never empty. A resource whose cluster is a
//! DigitalOcean cluster not created yet has no objects: they plan as creates.
//!
//! Every object provisioner applies carries the labels `app.kubernetes.io/managed-by:
//! provisioner` and `provisioner.dev/lineage: <ledger lineage>`, and the annotations
//! `provisioner.dev/address` (the resource) and `provisioner.dev/applied` (the hash of the
//! object as written). docs/kubernetes.md is the user's guide.

pub mod cluster;
pub mod instance;
pub mod manifest;
pub mod secret;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use self::cluster::{Cluster, Clusters, DoksKubeconfigs, Source, Stats, Timeouts};
use crate::desired::{Address, DesiredState, Kind, Spec};
use crate::ledger::{Ledger, LedgerEntry};
use crate::live::{KindObservation, ObserveStatus};
use crate::plan::Action;
use crate::providers::{
    Applied, ApplyRequest, Failure, ObserveScope, ProviderError, RequestStats, SecretValue,
};

/// The Kubernetes kinds (provider `kubernetes`).
pub const KINDS: [Kind; 2] = [Kind::KubeManifest, Kind::KubeSecret];

/// The Flux kinds (provider `flux`, the same machinery with clients of its own).
pub const FLUX_KINDS: [Kind; 1] = [Kind::FluxInstance];

/// The field manager of every write (server-side apply's `fieldManager`).
pub const FIELD_MANAGER: &str = "provisioner";
/// The label every object provisioner applies carries, and the selector observing lists
/// with (the recommended label, Kubernetes docs "Recommended Labels").
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "provisioner");
/// The label holding the ledger's lineage.
pub const LINEAGE_LABEL: &str = "provisioner.dev/lineage";
/// The annotation holding the resource's address.
pub const ADDRESS_ANNOTATION: &str = "provisioner.dev/address";
/// The annotation holding the hash of the object as written.
pub const APPLIED_ANNOTATION: &str = "provisioner.dev/applied";

/// How long waits and polls take.
#[derive(Clone, Copy, Debug)]
pub struct KubeOptions {
    /// Client timeouts.
    pub timeouts: Timeouts,
    /// How long to wait for a CustomResourceDefinition to be `Established`, a Namespace to
    /// be `Active`, or a deleted object to be gone.
    pub wait: Duration,
    /// How often to look while waiting.
    pub poll_every: Duration,
    /// How long a cluster's API discovery is reused before it is read again (it is read
    /// again at once when a kind is not found in it).
    pub discovery_max_age: Duration,
    /// Lists in flight at once per cluster.
    pub lists_in_flight: u32,
}

impl Default for KubeOptions {
    fn default() -> Self {
        KubeOptions {
            timeouts: Timeouts::default(),
            wait: Duration::from_secs(60),
            poll_every: Duration::from_millis(500),
            discovery_max_age: Duration::from_secs(600),
            lists_in_flight: 8,
        }
    }
}

/// The Kubernetes provider; also, as [`KubeProvider::flux`], the `flux` provider.
pub struct KubeProvider {
    /// `kubernetes` or `flux`.
    name: &'static str,
    /// The kinds it serves ([`KINDS`] or [`FLUX_KINDS`]).
    kinds: &'static [Kind],
    /// The DigitalOcean client that reads a DigitalOcean cluster's kubeconfig when
    /// observing (`None`: no `DIGITALOCEAN_TOKEN`; then such clusters are not observed).
    doks: Option<Box<crate::providers::digitalocean::DoClient>>,
    doks_kubeconfigs: DoksKubeconfigs,
    clusters: Clusters,
    stats: Arc<Stats>,
    options: KubeOptions,
    /// `[settings] prune` as the last observation saw it (0 not seen, 1 off, 2 on): what a
    /// manifest without `prune` of its own follows.
    settings_prune: AtomicU8,
    /// What the last observation saw of each manifest, by its cloud id.
    observed: Mutex<HashMap<String, manifest::Observed>>,
    /// The GitHub client that reads GitHub's SSH host keys (`GET /meta`) for Secrets with
    /// `known_hosts = "github"` (`None`: `GITHUB_API_URL` is not a URL).
    github: Option<Box<crate::providers::github::GhClient>>,
    /// GitHub's host keys as `known_hosts` lines, as this process last read them.
    known_hosts: Mutex<Option<String>>,
}

impl std::fmt::Debug for KubeProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeProvider")
            .field("doks", &self.doks.is_some())
            .finish_non_exhaustive()
    }
}

impl KubeProvider {
    /// A provider; `doks` reads DigitalOcean clusters' kubeconfigs while observing.
    pub fn new(
        doks: Option<crate::providers::digitalocean::DoClient>,
        options: KubeOptions,
    ) -> Self {
        KubeProvider {
            name: "kubernetes",
            kinds: &KINDS,
            doks: doks.map(Box::new),
            doks_kubeconfigs: DoksKubeconfigs::default(),
            clusters: Clusters::default(),
            stats: Arc::new(Stats::default()),
            options,
            settings_prune: AtomicU8::new(0),
            observed: Mutex::new(HashMap::new()),
            github: None,
            known_hosts: Mutex::new(None),
        }
    }

    /// The same provider, reading GitHub's SSH host keys with `github`.
    pub fn with_github(mut self, github: crate::providers::github::GhClient) -> Self {
        self.github = Some(Box::new(github));
        self
    }

    /// GitHub's SSH host keys as `known_hosts` lines (`github.com <type> <key>`), read
    /// from `GET /meta` (`ssh_keys`; GitHub REST API, "Meta"), one request.
    async fn read_github_known_hosts(&self) -> Result<String, ProviderError> {
        let Some(gh) = &self.github else {
            return Err(ProviderError::not_configured(
                "`known_hosts = \"github\"` reads GitHub's /meta: GITHUB_API_URL is not a URL",
            ));
        };
        let answer = gh.get("/meta").await.map_err(|e| {
            ProviderError::new(
                Failure::Transient,
                format!("reading GitHub's SSH host keys (GET /meta): {e}"),
            )
        })?;
        let text = known_hosts_lines(&answer.body)
            .map_err(|why| ProviderError::msg(format!("GitHub's GET /meta: {why}")))?;
        if let Ok(mut held) = self.known_hosts.lock() {
            *held = Some(text.clone());
        }
        Ok(text)
    }

    /// GitHub's host keys for an apply: as this pass's observation read them, else read now.
    async fn github_known_hosts(&self) -> Result<String, ProviderError> {
        let held = self.known_hosts.lock().ok().and_then(|h| h.clone());
        match held {
            Some(t) => Ok(t),
            None => self.read_github_known_hosts().await,
        }
    }

    /// The `flux` provider: `flux.instance`, with connections, discovery and request
    /// counts of its own (so the Flux part's requests are counted apart).
    pub fn flux(
        doks: Option<crate::providers::digitalocean::DoClient>,
        options: KubeOptions,
    ) -> Self {
        KubeProvider {
            name: "flux",
            kinds: &FLUX_KINDS,
            ..KubeProvider::new(doks, options)
        }
    }

    /// The `flux` provider as the environment sets it up (see [`KubeProvider::from_env`]).
    pub fn flux_from_env(per_minute: u32) -> Self {
        use crate::providers::digitalocean::{ApiConfig, DoClient};
        let doks = ApiConfig::from_env(per_minute).and_then(DoClient::new).ok();
        KubeProvider::flux(doks, KubeOptions::default())
    }

    /// The provider as the environment sets it up: it needs no credentials of its own (each
    /// resource names its cluster); with `DIGITALOCEAN_TOKEN` (and `DIGITALOCEAN_API_URL`)
    /// it reads DigitalOcean clusters' kubeconfigs while observing, through a client of its
    /// own (so those requests count here, not under `digitalocean`).
    pub fn from_env(per_minute: u32) -> Self {
        use crate::providers::digitalocean::{ApiConfig, DoClient};
        use crate::providers::github::{GhApiConfig, GhClient};
        let doks = ApiConfig::from_env(per_minute).and_then(DoClient::new).ok();
        let provider = KubeProvider::new(doks, KubeOptions::default());
        match GhApiConfig::public_from_env().and_then(GhClient::new) {
            Ok(gh) => provider.with_github(gh),
            Err(_) => provider,
        }
    }

    /// The prune setting a manifest follows: its own, else `[settings] prune` as last
    /// observed, else off (orphaning is the safe choice).
    fn prune(&self, spec: Option<&Value>) -> bool {
        match spec.and_then(|s| s.get("prune")).and_then(Value::as_bool) {
            Some(p) => p,
            None => self.settings_prune.load(Ordering::Relaxed) == 2,
        }
    }

    /// The cluster a resource reaches: `Ok(None)` when its cluster is a DigitalOcean
    /// cluster that does not exist yet (its objects are known absent).
    async fn reach(
        &self,
        source: &Source,
        desired: Option<&DesiredState>,
        ledger: Option<&Ledger>,
    ) -> Result<Option<Arc<Cluster>>, ProviderError> {
        let what = source.describe();
        let kubeconfig = match source {
            Source::Env(name) => match std::env::var_os(name) {
                Some(v) => SecretValue::new(v.into_encoded_bytes()),
                None => {
                    return Err(ProviderError::not_configured(format!(
                        "{what}: the variable is not set"
                    )));
                }
            },
            Source::File(path) => {
                match crate::fsread::read_regular(path, crate::desired::secrets::SECRET_FILE_CAP) {
                    Ok(b) => SecretValue::new(b),
                    Err(e) => {
                        return Err(ProviderError::not_configured(format!("{what}: {e}")));
                    }
                }
            }
            Source::Doks(address) => {
                let Some(ledger) = ledger else {
                    return Err(ProviderError::msg(format!(
                        "{what} is not at hand: observe first (the pass that observes the cluster reads it)"
                    )));
                };
                let Some(entry) = ledger.resources.get(address) else {
                    return Ok(None);
                };
                let Some(client) = &self.doks else {
                    return Err(ProviderError::not_configured(format!(
                        "{what} is read from DigitalOcean: set DIGITALOCEAN_TOKEN"
                    )));
                };
                let spec = desired
                    .and_then(|d| d.resources.get(address))
                    .map(|r| &r.spec_json);
                self.doks_kubeconfigs.get(client, &entry.id, spec).await?
            }
        };
        self.clusters
            .connect(&kubeconfig, &what, &self.stats, self.options.timeouts)
            .await
            .map(Some)
    }

    /// The cluster of a change: the kubeconfig the executor resolved (`cluster`), else the
    /// one recorded (a delete: the resource may have left the desired state), else the last
    /// client of the recorded server.
    async fn reach_for_change(
        &self,
        req: &ApplyRequest<'_>,
    ) -> Result<Arc<Cluster>, ProviderError> {
        let recorded_server = req
            .recorded
            .and_then(|a| a.get("server"))
            .and_then(Value::as_str);
        if let Some(kubeconfig) = req.secrets.get("cluster") {
            let c = self
                .clusters
                .connect(
                    kubeconfig,
                    "the kubeconfig of `cluster`",
                    &self.stats,
                    self.options.timeouts,
                )
                .await?;
            if let Some(before) = recorded_server
                && before != c.server
                && req.action != Action::Delete
            {
                return Err(ProviderError::msg(format!(
                    "{} was applied to {before}, and `cluster` now reaches {}: provisioner does not move objects between clusters (remove the resource with prune on, then add it again)",
                    req.address, c.server
                )));
            }
            return Ok(c);
        }
        if let Some(server) = recorded_server
            && let Some(c) = self.clusters.at(server)
        {
            return Ok(c);
        }
        let source = req
            .recorded
            .and_then(|a| a.get("cluster_source"))
            .and_then(Source::from_json)
            .ok_or_else(|| {
                ProviderError::msg(format!(
                    "{}: no kubeconfig to reach its cluster (the ledger records no cluster source)",
                    req.address
                ))
            })?;
        match self.reach(&source, None, None).await? {
            Some(c) => Ok(c),
            None => Err(ProviderError::msg(format!(
                "{}: {} is not recorded: its cluster is gone",
                req.address,
                source.describe()
            ))),
        }
    }

    async fn observe_in(&self, scope: &ObserveScope<'_>) -> BTreeMap<Kind, KindObservation> {
        self.settings_prune.store(
            if scope.desired.settings.prune { 2 } else { 1 },
            Ordering::Relaxed,
        );
        let kinds: Vec<Kind> = self
            .kinds
            .iter()
            .copied()
            .filter(|k| scope.uses(*k))
            .collect();
        let mut out: BTreeMap<Kind, KindObservation> = kinds
            .iter()
            .map(|k| (*k, KindObservation::default()))
            .collect();
        let targets = targets(scope.desired, scope.ledger, &kinds);
        // GitHub's host keys, once per pass, when a Secret asks for them.
        let wants_github = targets.iter().any(|t| {
            t.kind == Kind::KubeSecret
                && t.desired
                    .and_then(|r| r.spec_json.get("known_hosts"))
                    .and_then(Value::as_str)
                    == Some("github")
        });
        let known_hosts = if wants_github {
            match self.read_github_known_hosts().await {
                Ok(t) => Some(t),
                Err(e) => {
                    // The Secrets cannot be compared: not observed, never "unchanged".
                    fail(&mut out, Kind::KubeSecret, e.message);
                    None
                }
            }
        } else {
            None
        };
        // One connection per cluster source; resources of a source that fails are not
        // observed, and neither is their kind (a failed scope would need a field naming the
        // cluster, and `cluster` is secret).
        let mut by_source: BTreeMap<String, (Source, Vec<&Target<'_>>)> = BTreeMap::new();
        for t in &targets {
            match &t.source {
                Some(s) => by_source
                    .entry(format!("{s:?}"))
                    .or_insert_with(|| (s.clone(), Vec::new()))
                    .1
                    .push(t),
                None => fail(
                    &mut out,
                    t.kind,
                    format!("{}: the ledger records no cluster source", t.address),
                ),
            }
        }
        // Sources reaching the same cluster are observed together.
        let mut by_cluster: BTreeMap<String, (Arc<Cluster>, Vec<&Target<'_>>)> = BTreeMap::new();
        for (_, (source, ts)) in by_source {
            match self
                .reach(&source, Some(scope.desired), Some(scope.ledger))
                .await
            {
                Ok(Some(c)) => by_cluster
                    .entry(c.server.clone())
                    .or_insert_with(|| (c.clone(), Vec::new()))
                    .1
                    .extend(ts),
                // Not created yet: nothing of it exists.
                Ok(None) => {}
                Err(e) => {
                    for t in ts {
                        fail(&mut out, t.kind, format!("{}: {}", t.address, e.message));
                    }
                }
            }
        }
        let mut observed = HashMap::new();
        for (server, (cluster, ts)) in by_cluster {
            let manifests: Vec<&Target<'_>> = ts
                .iter()
                .copied()
                .filter(|t| t.kind == Kind::KubeManifest)
                .collect();
            let secrets: Vec<&Target<'_>> = ts
                .iter()
                .copied()
                .filter(|t| t.kind == Kind::KubeSecret)
                .collect();
            let instances: Vec<&Target<'_>> = ts
                .iter()
                .copied()
                .filter(|t| t.kind == Kind::FluxInstance)
                .collect();
            if !instances.is_empty() {
                match instance::observe(&cluster, &self.options, &instances).await {
                    Ok(found) => out
                        .entry(Kind::FluxInstance)
                        .or_default()
                        .objects
                        .extend(found),
                    Err(e) => fail(
                        &mut out,
                        Kind::FluxInstance,
                        format!("cluster {server}: {}", e.message),
                    ),
                }
            }
            // Both at once: they are independent lists on the same cluster.
            let (found_manifests, found_secrets) = futures_util::join!(
                async {
                    if manifests.is_empty() {
                        return Ok(Vec::new());
                    }
                    manifest::observe(&cluster, &self.options, scope.ledger, &manifests).await
                },
                async {
                    if secrets.is_empty() {
                        return Ok(Vec::new());
                    }
                    secret::observe(&cluster, &self.options, &secrets, known_hosts.as_deref()).await
                },
            );
            match found_manifests {
                Ok(found) => {
                    let o = out.entry(Kind::KubeManifest).or_default();
                    for (object, seen) in found {
                        observed.insert(object.id.clone(), seen);
                        o.objects.push(object);
                    }
                }
                Err(e) => fail(
                    &mut out,
                    Kind::KubeManifest,
                    format!("cluster {server}: {}", e.message),
                ),
            }
            match found_secrets {
                Ok(found) => out
                    .entry(Kind::KubeSecret)
                    .or_default()
                    .objects
                    .extend(found),
                Err(e) => fail(
                    &mut out,
                    Kind::KubeSecret,
                    format!("cluster {server}: {}", e.message),
                ),
            }
        }
        if let Ok(mut m) = self.observed.lock() {
            *m = observed;
        }
        // Only this provider's kinds: an empty list of another's would read as "none".
        out.retain(|k, _| kinds.contains(k));
        for o in out.values_mut() {
            if matches!(o.status, ObserveStatus::Failed(_)) {
                o.objects.clear();
            }
            o.objects.sort_by(|a, b| a.id.cmp(&b.id));
        }
        out
    }
}

/// `known_hosts` lines for github.com from a `GET /meta` answer's `ssh_keys`
/// (`<type> <base64>` each), in GitHub's order, one per line.
pub fn known_hosts_lines(meta: &Value) -> Result<String, String> {
    let keys = meta
        .get("ssh_keys")
        .and_then(Value::as_array)
        .ok_or("no `ssh_keys` list in the answer")?;
    let mut out = String::new();
    for k in keys {
        let k = k.as_str().ok_or("an `ssh_keys` entry is not a string")?;
        let mut parts = k.split(' ');
        let (Some(kind), Some(key), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("`{k}` is not `<type> <key>`"));
        };
        let valid_kind = kind.starts_with("ssh-") || kind.starts_with("ecdsa-sha2-");
        let valid_key = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
        if !valid_kind || !valid_key {
            return Err(format!("`{k}` is not an SSH public key"));
        }
        out.push_str(&format!("github.com {kind} {key}\n"));
    }
    if out.is_empty() {
        return Err("`ssh_keys` is empty".into());
    }
    Ok(out)
}

/// Marks `kind` not observed, keeping the first reason.
fn fail(out: &mut BTreeMap<Kind, KindObservation>, kind: Kind, why: String) {
    let o = out.entry(kind).or_default();
    if !matches!(o.status, ObserveStatus::Failed(_)) {
        o.status = ObserveStatus::Failed(why);
    }
}

/// A resource to observe: desired, or recorded only (it left the desired state).
pub struct Target<'a> {
    /// Its address.
    pub address: Address,
    /// Its kind.
    pub kind: Kind,
    /// Where its kubeconfig comes from.
    pub source: Option<Source>,
    /// The desired resource, if desired.
    pub desired: Option<&'a crate::desired::Resource>,
    /// Its ledger entry, if it has one.
    pub entry: Option<&'a LedgerEntry>,
}

/// The resources of `kinds` the desired state and the ledger name.
fn targets<'a>(desired: &'a DesiredState, ledger: &'a Ledger, kinds: &[Kind]) -> Vec<Target<'a>> {
    let mut out = Vec::new();
    for r in desired
        .resources
        .values()
        .filter(|r| kinds.contains(&r.kind()))
    {
        let source = match &r.spec {
            Spec::KubeManifest(m) => Source::of(&m.cluster.0),
            Spec::KubeSecret(s) => Source::of(&s.cluster.0),
            Spec::FluxInstance(f) => Source::of(&f.cluster.0),
            _ => None,
        };
        out.push(Target {
            address: r.address.clone(),
            kind: r.kind(),
            source,
            desired: Some(r),
            entry: ledger.resources.get(&r.address),
        });
    }
    for (address, e) in &ledger.resources {
        let Some(kind) = Kind::parse(&e.kind).filter(|k| kinds.contains(k)) else {
            continue;
        };
        if desired.resources.contains_key(address) {
            continue;
        }
        out.push(Target {
            address: address.clone(),
            kind,
            source: e
                .attributes
                .get("cluster_source")
                .and_then(Source::from_json),
            desired: None,
            entry: Some(e),
        });
    }
    out
}

/// A kube-rs error as a provider error: `what` failed, classified by the API's status
/// (`Failure::of_status`), or as `otherwise` when no answer came (a connection refused,
/// a timeout).
pub fn kube_error(what: &str, otherwise: Failure, e: kube::Error) -> ProviderError {
    match &e {
        // The API's own words (kube-rs's Display of a status repeats it in Debug form).
        kube::Error::Api(status) => ProviderError {
            message: format!(
                "{what}: {} {}: {}",
                status.code, status.reason, status.message
            ),
            failure: Failure::of_status(status.code, None),
            source: Some(std::sync::Arc::new(e)),
        },
        _ => ProviderError::caused(what, otherwise, e),
    }
}

/// Whether an object that exists (its metadata) may be written by this change, before
/// the change knows it as its own: this ledger's lineage and this resource's address (or
/// the cloud id it was recorded under) — yes; another ledger's — never; another resource's
/// of this ledger — never; one provisioner did not make — only with `take_over`. `noun`
/// names the object in the message (`Secret`), `hint` says who may have made it.
pub(crate) fn check_owner(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    req: &ApplyRequest<'_>,
    what: &str,
    noun: &str,
    hint: &str,
    spec: &Value,
) -> Result<(), ProviderError> {
    let label = meta.labels.as_ref().and_then(|l| l.get(LINEAGE_LABEL));
    let address = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(ADDRESS_ANNOTATION));
    let mine = req.address.to_string();
    match (label, address) {
        (Some(l), Some(a))
            if l == req.lineage && (*a == mine || Some(a.as_str()) == req.cloud_id) =>
        {
            Ok(())
        }
        (Some(l), _) if l != req.lineage => Err(ProviderError::msg(format!(
            "{what} exists and belongs to another provisioner ledger (lineage {l}): not taken over"
        ))),
        (Some(_), Some(a)) => Err(ProviderError::msg(format!(
            "{what} exists and is written by {a}: two resources cannot own one {noun}"
        ))),
        _ if spec.get("take_over").and_then(Value::as_bool) == Some(true) => Ok(()),
        _ => Err(ProviderError::msg(format!(
            "{what} exists and was not made by provisioner{hint}: set `take_over = true` on {} to take it over, or delete it",
            req.address
        ))),
    }
}

/// The status code of an API error, if it is one.
pub fn status_of(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// A secret value as UTF-8 text, or an error naming `what` (never the value).
pub fn secret_text<'v>(v: &'v SecretValue, what: &str) -> Result<&'v str, ProviderError> {
    std::str::from_utf8(v.expose())
        .map_err(|_| ProviderError::msg(format!("{what} is not UTF-8 text")))
}

impl crate::providers::Provider for KubeProvider {
    fn name(&self) -> &'static str {
        self.name
    }

    /// The kube clients' requests, and those of the DigitalOcean client that reads
    /// clusters' kubeconfigs while observing.
    fn request_stats(&self) -> Option<RequestStats> {
        let mut requests = self.stats.requests.load(Ordering::Relaxed);
        let mut classes = self.stats.classes.snapshot();
        if let Some(doks) = &self.doks {
            requests += doks.stats.requests.load(Ordering::Relaxed);
            for (mine, theirs) in classes.iter_mut().zip(doks.stats.classes.snapshot()) {
                mine.1 += theirs.1;
            }
        }
        Some(RequestStats {
            requests,
            classes,
            remaining: None,
        })
    }

    async fn observe(&self, scope: &ObserveScope<'_>) -> BTreeMap<Kind, KindObservation> {
        self.observe_in(scope).await
    }

    async fn apply(&self, req: ApplyRequest<'_>) -> Result<Applied, ProviderError> {
        match (req.kind, req.action) {
            (Kind::KubeManifest, Action::Create | Action::Update | Action::Adopt) => {
                let cluster = self.reach_for_change(&req).await?;
                let seen = self.seen(req.cloud_id);
                manifest::apply(self, &cluster, &req, seen.as_ref()).await
            }
            (Kind::KubeManifest, Action::Delete) => {
                let cluster = self.reach_for_change(&req).await?;
                let seen = self.seen(req.cloud_id);
                manifest::delete(self, &cluster, &req, seen.as_ref()).await?;
                Ok(Applied::default())
            }
            (Kind::KubeSecret, Action::Create | Action::Update | Action::Adopt) => {
                let cluster = self.reach_for_change(&req).await?;
                let known_hosts = match req
                    .spec
                    .and_then(|s| s.get("known_hosts"))
                    .and_then(Value::as_str)
                {
                    Some("github") => Some(self.github_known_hosts().await?),
                    _ => None,
                };
                secret::apply(&cluster, &req, known_hosts.as_deref()).await
            }
            (Kind::KubeSecret, Action::Delete) => {
                let cluster = self.reach_for_change(&req).await?;
                secret::delete(&cluster, &req).await?;
                Ok(Applied::default())
            }
            (Kind::FluxInstance, Action::Create | Action::Update | Action::Adopt) => {
                let cluster = self.reach_for_change(&req).await?;
                instance::apply(&cluster, &self.options, &req).await
            }
            (Kind::FluxInstance, Action::Delete) => {
                let cluster = self.reach_for_change(&req).await?;
                instance::delete(&cluster, &self.options, &req).await?;
                Ok(Applied::default())
            }
            (_, Action::Replace) => Err(crate::providers::not_in_place(req.kind)),
            (kind, action) => Err(ProviderError::msg(format!(
                "{kind}: nothing to apply for {action:?}"
            ))),
        }
    }
}

impl KubeProvider {
    /// What the last observation saw of the manifest with this cloud id.
    fn seen(&self, id: Option<&str>) -> Option<manifest::Observed> {
        let id = id?;
        self.observed.lock().ok()?.get(id).cloned()
    }
}
