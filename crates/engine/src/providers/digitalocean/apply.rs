//! Changing DigitalOcean: create, update, replace and delete for every API kind, with each
//! kind's own semantics (`../shared/reference/cloud-apis.md` §A): full-representation PUTs
//! for load balancers and firewalls, no update for domains, records addressed within their
//! zone, clusters polled until `running` with progress reported, node pools changed through
//! their own endpoints, versions only upgraded, projects assigned their resources after
//! create. A create whose outcome is unknown (timeout, 5xx) looks the object up by name
//! before trying again, so a retry never makes a duplicate.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::client::{DoClient, DoError};
use super::observe;
use crate::desired::Kind;
use crate::plan::Action;
use crate::providers::{Applied, ApplyRequest, ProviderError};

/// How long to wait for a cluster to become `running`.
pub const CLUSTER_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Applies one change.
pub async fn apply(
    client: &DoClient,
    req: &ApplyRequest<'_>,
    poll_every: Duration,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Applied, ProviderError> {
    let f = req.fields;
    match req.action {
        Action::Delete => {
            let id = req
                .cloud_id
                .ok_or_else(|| ProviderError::msg("delete without a cloud id"))?;
            delete(client, req.kind, id).await?;
            Ok(Applied::default())
        }
        Action::Create => create(client, req, f, poll_every, progress).await,
        // The executor replaces DigitalOcean objects by a create and a delete; none is
        // renewed in place.
        Action::Replace => Err(crate::providers::not_in_place(req.kind)),
        Action::Update | Action::Adopt => {
            let id = req
                .cloud_id
                .ok_or_else(|| ProviderError::msg("update without a cloud id"))?;
            update(client, req, id, f, poll_every, progress).await
        }
        Action::Orphan | Action::Drift | Action::Conflict | Action::NoOp => {
            Err(ProviderError::msg("nothing to apply for this action"))
        }
    }
}

fn path_for(kind: Kind) -> Option<(&'static str, &'static str)> {
    Some(match kind {
        Kind::DoVpc => ("/v2/vpcs", "vpc"),
        Kind::DoKubernetesCluster => ("/v2/kubernetes/clusters", "kubernetes_cluster"),
        Kind::DoLoadBalancer => ("/v2/load_balancers", "load_balancer"),
        Kind::DoFirewall => ("/v2/firewalls", "firewall"),
        Kind::DoDomain => ("/v2/domains", "domain"),
        Kind::DoCdnEndpoint => ("/v2/cdn/endpoints", "endpoint"),
        Kind::DoSpacesKey => ("/v2/spaces/keys", "key"),
        Kind::DoProject => ("/v2/projects", "project"),
        _ => return None,
    })
}

fn unsupported(kind: Kind) -> ProviderError {
    ProviderError::msg(format!(
        "{kind}: this build cannot change it yet (Spaces buckets go through the Spaces S3 API)"
    ))
}

async fn delete(client: &DoClient, kind: Kind, id: &str) -> Result<(), ProviderError> {
    let path = match kind {
        Kind::DoDomainRecord => {
            let (domain, rid) = id
                .split_once('/')
                .ok_or_else(|| ProviderError::msg(format!("record id {id} is not domain/id")))?;
            format!("/v2/domains/{domain}/records/{rid}")
        }
        k => format!("{}/{id}", path_for(k).ok_or_else(|| unsupported(k))?.0),
    };
    match client.request(Method::DELETE, &path, None).await {
        // Already gone counts as deleted.
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The API body for a kind, from the desired fields.
fn body(kind: Kind, f: &Map<String, Value>) -> Value {
    let pick = |keys: &[&str]| -> Value {
        Value::Object(
            keys.iter()
                .filter_map(|k| {
                    f.get(*k)
                        .filter(|v| !v.is_null())
                        .map(|v| (k.to_string(), v.clone()))
                })
                .collect(),
        )
    };
    match kind {
        Kind::DoVpc => pick(&["name", "region", "description", "ip_range"]),
        Kind::DoDomain => pick(&["name", "ip_address"]),
        Kind::DoDomainRecord => {
            let mut b = pick(&[
                "type", "name", "data", "priority", "port", "ttl", "weight", "flags", "tag",
            ]);
            // A host name must be fully qualified: without the final dot the API answers
            // 422 "Data needs to end with a dot (.)" (digitalocean/api-v2#130, doctl#919).
            let host = b["type"]
                .as_str()
                .is_some_and(crate::desired::kinds::digitalocean::host_name_data);
            if host
                && let Some(data) = b["data"].as_str()
                && data != "@"
                && !data.ends_with('.')
            {
                b["data"] = json!(format!("{data}."));
            }
            b
        }
        Kind::DoCdnEndpoint => pick(&["origin", "ttl", "custom_domain", "certificate_id"]),
        Kind::DoSpacesKey => pick(&["name", "grants"]),
        Kind::DoProject => pick(&["name", "description", "purpose", "environment"]),
        Kind::DoLoadBalancer => {
            let mut b = pick(&[
                "name",
                "region",
                "size_unit",
                "vpc_uuid",
                "network",
                "tag",
                "droplet_ids",
                "forwarding_rules",
                "health_check",
                "redirect_http_to_https",
                "enable_proxy_protocol",
                "enable_backend_keepalive",
                "http_idle_timeout_seconds",
                "disable_lets_encrypt_dns_records",
            ]);
            // `droplet_ids` and `tag` are mutually exclusive: an empty list is no list.
            if b["droplet_ids"].as_array().is_some_and(Vec::is_empty)
                && let Some(o) = b.as_object_mut()
            {
                o.remove("droplet_ids");
            }
            b
        }
        Kind::DoFirewall => {
            let mut b = pick(&[
                "name",
                "tags",
                "droplet_ids",
                "inbound_rules",
                "outbound_rules",
            ]);
            // The desired state writes "all"; the API writes "0".
            for list in ["inbound_rules", "outbound_rules"] {
                if let Some(rules) = b.get_mut(list).and_then(Value::as_array_mut) {
                    for r in rules {
                        if r["ports"] == "all" {
                            r["ports"] = json!("0");
                        }
                    }
                }
            }
            b
        }
        Kind::DoKubernetesCluster => {
            let mut b = pick(&[
                "name",
                "region",
                "version",
                "vpc_uuid",
                "cluster_subnet",
                "service_subnet",
                "ha",
                "auto_upgrade",
                "surge_upgrade",
                "tags",
                "maintenance_policy",
                "control_plane_firewall",
            ]);
            b["node_pools"] = Value::Array(
                f.get("node_pools")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                    .map(|(name, p)| pool_body(name, p))
                    .collect(),
            );
            b
        }
        _ => json!({}),
    }
}

/// Adds the ledger's lineage tag to a body's `tags`, so the object can be told apart from one
/// another ledger (or a person) made.
fn with_lineage(b: &mut Value, lineage: &str) {
    if lineage.is_empty() {
        return;
    }
    let tag = json!(crate::live::lineage_tag(lineage));
    match b.get_mut("tags").and_then(Value::as_array_mut) {
        Some(tags) if !tags.contains(&tag) => tags.push(tag),
        Some(_) => {}
        None => b["tags"] = json!([tag]),
    }
}

fn pool_body(name: &str, p: &Value) -> Value {
    let mut b = json!({"name": name});
    // The API needs a count; an autoscaled pool may leave it out (its `initial_count`,
    // else `min_nodes`, is the size it starts at).
    if let Some(c) = ["count", "initial_count", "min_nodes"]
        .iter()
        .find_map(|k| p.get(*k).filter(|v| !v.is_null()))
    {
        b["count"] = c.clone();
    }
    for k in [
        "size",
        "count",
        "auto_scale",
        "min_nodes",
        "max_nodes",
        "labels",
        "taints",
        "tags",
    ] {
        if let Some(v) = p.get(k).filter(|v| !v.is_null()) {
            b[k] = v.clone();
        }
    }
    b
}

/// The object an ambiguous create may have made, found by its natural key.
async fn find_existing(
    client: &DoClient,
    kind: Kind,
    f: &Map<String, Value>,
) -> Result<Option<String>, ProviderError> {
    let key = crate::plan::planner::natural_key(kind, f);
    let Some(key) = key else { return Ok(None) };
    let live = match kind {
        Kind::DoDomainRecord => {
            let domain = f.get("domain").and_then(Value::as_str).unwrap_or("");
            client
                .list(&format!("/v2/domains/{domain}/records"), "domain_records")
                .await?
                .iter()
                .filter_map(|r| observe::map_record(domain, r))
                .collect::<Vec<_>>()
        }
        k => {
            let (path, _) = path_for(k).ok_or_else(|| unsupported(k))?;
            let list_key = match k {
                Kind::DoKubernetesCluster => "kubernetes_clusters",
                Kind::DoLoadBalancer => "load_balancers",
                Kind::DoCdnEndpoint => "endpoints",
                Kind::DoSpacesKey => "keys",
                Kind::DoVpc => "vpcs",
                Kind::DoFirewall => "firewalls",
                Kind::DoDomain => "domains",
                Kind::DoProject => "projects",
                _ => return Ok(None),
            };
            let items = client.list(path, list_key).await?;
            items.iter().filter_map(|v| observe::map(k, v)).collect()
        }
    };
    Ok(live
        .into_iter()
        .find(|o| {
            crate::plan::planner::natural_key(kind, &o.fields).as_deref() == Some(key.as_str())
        })
        .map(|o| o.id))
}

async fn create(
    client: &DoClient,
    req: &ApplyRequest<'_>,
    f: &Map<String, Value>,
    poll_every: Duration,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Applied, ProviderError> {
    let kind = req.kind;
    let (path, key) = match kind {
        Kind::DoDomainRecord => {
            let domain = f
                .get("domain")
                .and_then(Value::as_str)
                .ok_or_else(|| ProviderError::msg("a record needs its domain"))?;
            (format!("/v2/domains/{domain}/records"), "domain_record")
        }
        k => {
            let (p, key) = path_for(k).ok_or_else(|| unsupported(k))?;
            (p.to_string(), key)
        }
    };
    let mut b = body(kind, f);
    if kind == Kind::DoKubernetesCluster {
        with_lineage(&mut b, req.lineage);
    }
    let mut attempts = 0;
    let reply = loop {
        attempts += 1;
        match client.request(Method::POST, &path, Some(&b)).await {
            Ok(r) => break r.body,
            Err(DoError::Ambiguous { .. }) if attempts < 3 => {
                // It may exist already: look before creating again.
                if let Some(id) = find_existing(client, kind, f).await? {
                    progress("the create landed although its answer was lost: found by name");
                    return finish_existing(client, req, &id, f, poll_every, progress).await;
                }
            }
            Err(e) => return Err(e.into()),
        }
    };
    let object = &reply[key];
    let mut applied = applied_from(kind, object, f)?;
    if kind == Kind::DoSpacesKey
        && let Some(secret) = object["secret_key"].as_str()
    {
        applied.secrets.insert(
            "secret_key".into(),
            crate::providers::SecretValue::new(secret.as_bytes().to_vec()),
        );
    }
    if kind == Kind::DoProject {
        assign_resources(client, &applied.id, f).await?;
        if f.get("is_default") == Some(&json!(true)) {
            client
                .request(
                    Method::PATCH,
                    &format!("/v2/projects/{}", applied.id),
                    Some(&json!({"is_default": true})),
                )
                .await?;
        }
    }
    if kind == Kind::DoKubernetesCluster {
        return finish_existing(client, req, &applied.id, f, poll_every, progress).await;
    }
    Ok(applied)
}

/// A cluster's kubeconfig, its token living as long as `kubeconfig_expiry` says (the API's
/// default is 7 days).
pub async fn kubeconfig(
    client: &DoClient,
    id: &str,
    spec: Option<&Value>,
) -> Result<crate::providers::SecretValue, ProviderError> {
    let expiry = spec
        .and_then(|s| s["kubeconfig_expiry"].as_str())
        .and_then(|d| crate::desired::values::Duration::parse(d).ok())
        .unwrap_or(7 * 86_400);
    let answer = client
        .request(
            Method::GET,
            &format!("/v2/kubernetes/clusters/{id}/kubeconfig?expiry_seconds={expiry}"),
            None,
        )
        .await?;
    Ok(crate::providers::SecretValue::new(answer.text.into_bytes()))
}

/// After a create (or an adopted create): wait for clusters, read attributes.
async fn finish_existing(
    client: &DoClient,
    req: &ApplyRequest<'_>,
    id: &str,
    f: &Map<String, Value>,
    poll_every: Duration,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Applied, ProviderError> {
    let kind = req.kind;
    if kind == Kind::DoKubernetesCluster {
        let c = wait_running(client, id, poll_every, progress).await?;
        let mut applied = applied_from(kind, &c, f)?;
        applied
            .secrets
            .insert("kubeconfig".into(), kubeconfig(client, id, req.spec).await?);
        return Ok(applied);
    }
    let path = match kind {
        Kind::DoDomainRecord => {
            let (domain, rid) = id.split_once('/').unwrap_or(("", id));
            format!("/v2/domains/{domain}/records/{rid}")
        }
        k => format!("{}/{id}", path_for(k).ok_or_else(|| unsupported(k))?.0),
    };
    let reply = client.request(Method::GET, &path, None).await?;
    let key = match kind {
        Kind::DoDomainRecord => "domain_record",
        k => path_for(k).map(|p| p.1).unwrap_or(""),
    };
    applied_from(kind, &reply.body[key], f)
}

async fn wait_running(
    client: &DoClient,
    id: &str,
    poll_every: Duration,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Value, ProviderError> {
    let started = Instant::now();
    let mut polls = 0u32;
    loop {
        let c = client
            .request(Method::GET, &format!("/v2/kubernetes/clusters/{id}"), None)
            .await?
            .body["kubernetes_cluster"]
            .clone();
        let state = c["status"]["state"]
            .as_str()
            .unwrap_or("unknown")
            .to_string();
        match state.as_str() {
            "running" => return Ok(c),
            "error" | "degraded" | "deleted" => {
                return Err(ProviderError::msg(format!(
                    "cluster {id} is {state}: {}",
                    c["status"]["message"].as_str().unwrap_or("")
                )));
            }
            _ => {}
        }
        let elapsed = started.elapsed();
        progress(&format!(
            "{state} {}m{:02}s",
            elapsed.as_secs() / 60,
            elapsed.as_secs() % 60
        ));
        // Without a terminal (CI, the daemon) the log says what is waited for, every
        // half minute or so.
        if polls % 3 == 2 {
            tracing::info!(
                message = "Waiting for a Kubernetes cluster to be running.",
                cluster = id,
                state = %state,
                seconds = elapsed.as_secs()
            );
        }
        if elapsed > CLUSTER_TIMEOUT {
            return Err(ProviderError::msg(format!(
                "cluster {id} is still {state} after {} minutes",
                CLUSTER_TIMEOUT.as_secs() / 60
            )));
        }
        // Quick looks first (a small cluster or a resize can be ready in seconds), then
        // every `poll_every`: at most ~20 requests for the first five minutes.
        let pause = Duration::from_millis(250)
            .saturating_mul(1 << polls.min(8))
            .min(poll_every);
        polls += 1;
        tokio::time::sleep(pause).await;
    }
}

fn applied_from(
    kind: Kind,
    object: &Value,
    f: &Map<String, Value>,
) -> Result<Applied, ProviderError> {
    let live = match kind {
        Kind::DoDomainRecord => {
            let domain = f.get("domain").and_then(Value::as_str).unwrap_or("");
            observe::map_record(domain, object)
        }
        k => observe::map(k, object),
    }
    .ok_or_else(|| ProviderError::msg(format!("{kind}: the API's answer has no id")))?;
    Ok(Applied {
        id: live.id,
        attributes: live.attributes,
        secrets: BTreeMap::new(),
        updated_at: live.updated_at,
        ..Default::default()
    })
}

async fn assign_resources(
    client: &DoClient,
    project: &str,
    f: &Map<String, Value>,
) -> Result<(), ProviderError> {
    let urns: Vec<Value> = f
        .get("resources")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if urns.is_empty() {
        return Ok(());
    }
    let reply = client
        .request(
            Method::POST,
            &format!("/v2/projects/{project}/resources"),
            Some(&json!({"resources": urns})),
        )
        .await?;
    let failed: Vec<String> = reply.body["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| {
            !matches!(
                r["status"].as_str(),
                Some("ok" | "assigned" | "already_assigned")
            )
        })
        .map(|r| {
            format!(
                "{} ({})",
                r["urn"].as_str().unwrap_or("?"),
                r["status"].as_str().unwrap_or("?")
            )
        })
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(ProviderError::msg(format!(
            "project {project}: could not assign {}",
            failed.join(", ")
        )))
    }
}

async fn update(
    client: &DoClient,
    req: &ApplyRequest<'_>,
    id: &str,
    f: &Map<String, Value>,
    poll_every: Duration,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Applied, ProviderError> {
    let kind = req.kind;
    match kind {
        Kind::DoDomain => {}
        Kind::DoDomainRecord => {
            let (domain, rid) = id.split_once('/').unwrap_or(("", id));
            client
                .request(
                    Method::PUT,
                    &format!("/v2/domains/{domain}/records/{rid}"),
                    Some(&body(kind, f)),
                )
                .await?;
        }
        Kind::DoVpc => {
            let mut b = body(kind, f);
            if let Some(o) = b.as_object_mut() {
                o.remove("region");
                o.remove("ip_range");
            }
            client
                .request(Method::PATCH, &format!("/v2/vpcs/{id}"), Some(&b))
                .await?;
        }
        Kind::DoLoadBalancer | Kind::DoFirewall => {
            // A PUT replaces the whole object: send everything.
            let (path, _) = path_for(kind).ok_or_else(|| unsupported(kind))?;
            client
                .request(Method::PUT, &format!("{path}/{id}"), Some(&body(kind, f)))
                .await?;
        }
        Kind::DoCdnEndpoint => {
            let mut b = body(kind, f);
            if let Some(o) = b.as_object_mut() {
                o.remove("origin");
            }
            client
                .request(Method::PUT, &format!("/v2/cdn/endpoints/{id}"), Some(&b))
                .await?;
        }
        Kind::DoSpacesKey => {
            client
                .request(
                    Method::PUT,
                    &format!("/v2/spaces/keys/{id}"),
                    Some(&json!({"name": f.get("name")})),
                )
                .await?;
        }
        Kind::DoProject => {
            let mut b = body(kind, f);
            if f.get("is_default") == Some(&json!(true)) {
                b["is_default"] = json!(true);
            }
            client
                .request(Method::PATCH, &format!("/v2/projects/{id}"), Some(&b))
                .await?;
            assign_resources(client, id, f).await?;
        }
        Kind::DoKubernetesCluster => {
            update_cluster(client, id, f, req.lineage, poll_every, progress).await?
        }
        k => return Err(unsupported(k)),
    }
    finish_existing(client, req, id, f, poll_every, progress).await
}

async fn update_cluster(
    client: &DoClient,
    id: &str,
    f: &Map<String, Value>,
    lineage: &str,
    poll_every: Duration,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<(), ProviderError> {
    let current = client
        .request(Method::GET, &format!("/v2/kubernetes/clusters/{id}"), None)
        .await?
        .body["kubernetes_cluster"]
        .clone();
    // The cluster's own fields first, then its pools, then the version (as Terraform does).
    let mut b = json!({"name": f.get("name")});
    for k in [
        "tags",
        "maintenance_policy",
        "auto_upgrade",
        "surge_upgrade",
        "control_plane_firewall",
    ] {
        if let Some(v) = f.get(k).filter(|v| !v.is_null()) {
            b[k] = v.clone();
        }
    }
    with_lineage(&mut b, lineage);
    // HA only ever goes from off to on.
    if f.get("ha") == Some(&json!(true)) {
        b["ha"] = json!(true);
    }
    client
        .request(
            Method::PUT,
            &format!("/v2/kubernetes/clusters/{id}"),
            Some(&b),
        )
        .await?;
    let live_pools: BTreeMap<String, Value> = current["node_pools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["name"].as_str()?.to_string(), p.clone())))
        .collect();
    let empty = Map::new();
    let wanted = f
        .get("node_pools")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    for (name, want) in wanted {
        match live_pools.get(name) {
            None => {
                client
                    .request(
                        Method::POST,
                        &format!("/v2/kubernetes/clusters/{id}/node_pools"),
                        Some(&pool_body(name, want)),
                    )
                    .await?;
            }
            Some(have) => {
                let pid = have["id"].as_str().unwrap_or("");
                if want.get("size").is_some_and(|s| s != &have["size"]) {
                    // A pool's size cannot change: replace the pool, the new one first.
                    let temp = format!("{name}-new");
                    let mut nb = pool_body(&temp, want);
                    nb["name"] = json!(temp);
                    client
                        .request(
                            Method::POST,
                            &format!("/v2/kubernetes/clusters/{id}/node_pools"),
                            Some(&nb),
                        )
                        .await?;
                    client
                        .request(
                            Method::DELETE,
                            &format!("/v2/kubernetes/clusters/{id}/node_pools/{pid}"),
                            None,
                        )
                        .await?;
                    continue;
                }
                let mut pb = pool_body(name, want);
                // An autoscaled pool keeps the size the autoscaler gave it.
                if want.get("count").is_none_or(Value::is_null) {
                    pb["count"] = have["count"].clone();
                }
                if let Some(o) = pb.as_object_mut() {
                    o.remove("size");
                }
                client
                    .request(
                        Method::PUT,
                        &format!("/v2/kubernetes/clusters/{id}/node_pools/{pid}"),
                        Some(&pb),
                    )
                    .await?;
            }
        }
    }
    for (name, have) in &live_pools {
        if !wanted.contains_key(name) {
            let pid = have["id"].as_str().unwrap_or("");
            client
                .request(
                    Method::DELETE,
                    &format!("/v2/kubernetes/clusters/{id}/node_pools/{pid}"),
                    None,
                )
                .await?;
        }
    }
    if let Some(want) = f.get("version").and_then(Value::as_str) {
        let have = current["version"].as_str().unwrap_or("");
        let options = client
            .request(Method::GET, "/v2/kubernetes/options", None)
            .await?
            .body;
        let slug = resolve_version(&options, want);
        if let Some(slug) = slug
            && version_key(&slug) > version_key(have)
        {
            progress(&format!("upgrading to {slug}"));
            client
                .request(
                    Method::POST,
                    &format!("/v2/kubernetes/clusters/{id}/upgrade"),
                    Some(&json!({"version": slug})),
                )
                .await?;
            wait_running(client, id, poll_every, progress).await?;
        }
    }
    Ok(())
}

fn version_key(slug: &str) -> (u64, u64, u64) {
    let v = slug.split('-').next().unwrap_or("");
    let mut it = v.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    (
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
    )
}

/// The newest offered slug matching a desired version (`1.33`, `1.33.1-do.0`, `latest`).
fn resolve_version(options: &Value, want: &str) -> Option<String> {
    options["options"]["versions"]
        .as_array()?
        .iter()
        .filter_map(|v| v["slug"].as_str())
        .filter(|s| want == "latest" || *s == want || s.starts_with(&format!("{want}.")))
        .max_by_key(|s| version_key(s))
        .map(str::to_string)
}

impl From<DoError> for ProviderError {
    fn from(e: DoError) -> Self {
        use crate::providers::Failure;
        let failure = match &e {
            DoError::Api { status, .. } => Failure::of_status(*status, None),
            DoError::Ambiguous { .. } => Failure::Ambiguous,
            // No usable answer after the client's retries, or one that could not be read.
            DoError::Transport { .. } | DoError::Malformed { .. } => Failure::Transient,
        };
        ProviderError {
            message: e.to_string(),
            failure,
            source: None,
        }
    }
}
