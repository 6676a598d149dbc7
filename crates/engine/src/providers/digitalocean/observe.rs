//! Observing DigitalOcean: one paginated list per kind (per parent where the API nests:
//! records per domain, resources per project), mapped into the desired state's vocabulary so
//! the planner compares like with like. A kind whose listing fails is reported `failed`,
//! never empty.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::client::{DoClient, DoError};
use crate::desired::{DesiredState, Kind, Spec};
use crate::ledger::Ledger;
use crate::live::{KindObservation, LiveObject, ObserveStatus};

/// The DigitalOcean kinds this provider observes through the API v2.
pub const API_KINDS: &[Kind] = &[
    Kind::DoVpc,
    Kind::DoKubernetesCluster,
    Kind::DoLoadBalancer,
    Kind::DoFirewall,
    Kind::DoDomain,
    Kind::DoDomainRecord,
    Kind::DoCdnEndpoint,
    Kind::DoSpacesKey,
    Kind::DoProject,
];

/// Maps one API object to a live object (`None` for what is not the user's).
type MapFn = fn(&Value) -> Option<LiveObject>;

/// Observes every DigitalOcean kind the desired state or the ledger uses, all lists at once
/// (the client's budget paces them). Records are listed for the domains the desired state or
/// the ledger mentions, every domain at once; project resources for the projects they
/// mention. A kind nobody uses costs no request.
pub async fn observe(
    client: &DoClient,
    scope: &crate::providers::ObserveScope<'_>,
) -> BTreeMap<Kind, KindObservation> {
    use futures_util::future::join_all;
    let (desired, ledger) = (scope.desired, scope.ledger);
    let used = |k: Kind| scope.uses(k);
    let empty = || KindObservation {
        status: ObserveStatus::Complete,
        objects: Vec::new(),
        failed_scopes: Vec::new(),
    };
    let lists: [(Kind, &str, &str, MapFn); 6] = [
        (Kind::DoVpc, "/v2/vpcs", "vpcs", vpc),
        (
            Kind::DoKubernetesCluster,
            "/v2/kubernetes/clusters",
            "kubernetes_clusters",
            cluster,
        ),
        (
            Kind::DoLoadBalancer,
            "/v2/load_balancers",
            "load_balancers",
            load_balancer,
        ),
        (Kind::DoFirewall, "/v2/firewalls", "firewalls", firewall),
        (
            Kind::DoCdnEndpoint,
            "/v2/cdn/endpoints",
            "endpoints",
            cdn_endpoint,
        ),
        (Kind::DoSpacesKey, "/v2/spaces/keys", "keys", spaces_key),
    ];
    let kinds = join_all(lists.into_iter().map(|(kind, path, key, map)| {
        let used = used(kind);
        async move {
            if !used {
                return (kind, empty());
            }
            let obs = match client.list(path, key).await {
                Ok(items) => KindObservation {
                    status: ObserveStatus::Complete,
                    objects: items.iter().filter_map(map).collect(),
                    failed_scopes: Vec::new(),
                },
                Err(e) => failed(&e),
            };
            (kind, obs)
        }
    }));
    let zones = async {
        if !used(Kind::DoDomain) && !used(Kind::DoDomainRecord) {
            return vec![(Kind::DoDomain, empty()), (Kind::DoDomainRecord, empty())];
        }
        observe_zones(client, desired, ledger).await
    };
    let projects = async {
        if !used(Kind::DoProject) {
            return (Kind::DoProject, empty());
        }
        (
            Kind::DoProject,
            observe_projects(client, desired, ledger).await,
        )
    };
    let (kinds, zones, projects) = futures_util::join!(kinds, zones, projects);
    // Spaces buckets live behind the S3-compatible Spaces API: see `spaces`.
    kinds
        .into_iter()
        .chain(zones)
        .chain(std::iter::once(projects))
        .collect()
}

fn failed(e: &DoError) -> KindObservation {
    KindObservation {
        status: ObserveStatus::Failed(e.to_string()),
        objects: Vec::new(),
        failed_scopes: Vec::new(),
    }
}

/// Domains, then the records of the domains that matter here, all zones at once.
async fn observe_zones(
    client: &DoClient,
    desired: &DesiredState,
    ledger: &Ledger,
) -> Vec<(Kind, KindObservation)> {
    let items = match client.list("/v2/domains", "domains").await {
        Ok(items) => items,
        Err(e) => {
            return vec![
                (Kind::DoDomain, failed(&e)),
                (Kind::DoDomainRecord, failed(&e)),
            ];
        }
    };
    let wanted_domains = record_domains(desired, ledger);
    let names: Vec<&str> = items
        .iter()
        .filter_map(|d| d["name"].as_str())
        .filter(|n| wanted_domains.contains(*n))
        .collect();
    let lists = futures_util::future::join_all(names.iter().map(|name| async move {
        let listed = client
            .list(&format!("/v2/domains/{name}/records"), "domain_records")
            .await;
        (*name, listed)
    }))
    .await;
    let mut records = Vec::new();
    // A zone whose records could not be listed makes only its own records unknown.
    let mut failed_zones = Vec::new();
    let mut apex: BTreeMap<String, String> = BTreeMap::new();
    for (name, listed) in lists {
        match listed {
            Ok(rs) => {
                for r in &rs {
                    if r["type"] == "A"
                        && r["name"] == "@"
                        && let Some(ip) = r["data"].as_str()
                    {
                        apex.entry(name.to_string())
                            .or_insert_with(|| ip.to_string());
                    }
                    if let Some(o) = record(name, r) {
                        records.push(o);
                    }
                }
            }
            Err(e) => failed_zones.push(crate::live::FailedScope::new(
                [("domain", name.to_string())],
                e.to_string(),
            )),
        }
    }
    vec![
        (
            Kind::DoDomain,
            KindObservation {
                status: ObserveStatus::Complete,
                objects: items.iter().filter_map(|d| domain(d, &apex)).collect(),
                // A domain's apex address is read from its records.
                failed_scopes: failed_zones
                    .iter()
                    .map(|z| crate::live::FailedScope {
                        scope: [("name".to_string(), z.scope["domain"].clone())].into(),
                        reason: z.reason.clone(),
                    })
                    .collect(),
            },
        ),
        (
            Kind::DoDomainRecord,
            KindObservation {
                status: ObserveStatus::Complete,
                objects: records,
                failed_scopes: failed_zones,
            },
        ),
    ]
}

/// Projects, with the resources of the projects that matter here.
async fn observe_projects(
    client: &DoClient,
    desired: &DesiredState,
    ledger: &Ledger,
) -> KindObservation {
    let wanted_projects = project_names(desired, ledger);
    let items = match client.list("/v2/projects", "projects").await {
        Ok(items) => items,
        Err(e) => return failed(&e),
    };
    let mut objects = Vec::new();
    let mut error = None;
    for p in &items {
        let Some(mut o) = project(p) else { continue };
        let name = p["name"].as_str().unwrap_or("");
        if wanted_projects.contains(name) || wanted_projects.contains(o.id.as_str()) {
            match client
                .list(&format!("/v2/projects/{}/resources", o.id), "resources")
                .await
            {
                Ok(rs) => {
                    let urns: Vec<Value> = rs
                        .iter()
                        .filter_map(|r| r["urn"].as_str())
                        .map(|u| json!(u))
                        .collect();
                    o.fields.insert("resources".into(), Value::Array(urns));
                }
                Err(e) => error = Some(e),
            }
        }
        objects.push(o);
    }
    match error {
        None => KindObservation {
            status: ObserveStatus::Complete,
            objects,
            failed_scopes: Vec::new(),
        },
        Some(e) => failed(&e),
    }
}

fn record_domains(desired: &DesiredState, ledger: &Ledger) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for r in desired.resources.values() {
        match &r.spec {
            Spec::DoDomainRecord(_) => {
                // The domain may be a reference: take the resolved name from the domain the
                // record depends on, else the literal.
                let literal = r.spec_json["domain"].as_str().unwrap_or("");
                if !literal.contains("${") {
                    out.insert(literal.to_string());
                }
                for d in &r.depends_on {
                    if let Some(dep) = desired.resources.get(d)
                        && let Spec::DoDomain(_) = dep.spec
                        && let Some(n) = dep.spec_json["name"].as_str()
                    {
                        out.insert(n.to_string());
                    }
                }
            }
            Spec::DoDomain(_) if r.spec_json.get("ip_address").is_some_and(|v| !v.is_null()) => {
                if let Some(n) = r.spec_json["name"].as_str() {
                    out.insert(n.to_string());
                }
            }
            _ => {}
        }
    }
    for e in ledger.resources.values() {
        if e.kind == Kind::DoDomainRecord.key()
            && let Some((domain, _)) = e.id.split_once('/')
        {
            out.insert(domain.to_string());
        }
    }
    out
}

fn project_names(desired: &DesiredState, ledger: &Ledger) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for r in desired.resources.values() {
        if let Spec::DoProject(_) = r.spec
            && let Some(n) = r.spec_json["name"].as_str()
        {
            out.insert(n.to_string());
        }
    }
    for e in ledger.resources.values() {
        if e.kind == Kind::DoProject.key() {
            out.insert(e.id.clone());
        }
    }
    out
}

/// Maps one API object of `kind` (not records: see [`map_record`]).
pub fn map(kind: Kind, v: &Value) -> Option<LiveObject> {
    match kind {
        Kind::DoVpc => vpc(v),
        Kind::DoKubernetesCluster => cluster(v),
        Kind::DoLoadBalancer => load_balancer(v),
        Kind::DoFirewall => firewall(v),
        Kind::DoCdnEndpoint => cdn_endpoint(v),
        Kind::DoSpacesKey => spaces_key(v),
        Kind::DoProject => project(v),
        Kind::DoDomain => domain(v, &BTreeMap::new()),
        _ => None,
    }
}

/// Maps one record of `domain`.
pub fn map_record(domain: &str, v: &Value) -> Option<LiveObject> {
    record(domain, v)
}

fn s(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

fn obj(pairs: impl IntoIterator<Item = (&'static str, Value)>) -> Map<String, Value> {
    pairs
        .into_iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

fn attrs(pairs: impl IntoIterator<Item = (&'static str, Value)>) -> BTreeMap<String, Value> {
    pairs
        .into_iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

fn string_list(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

fn vpc(v: &Value) -> Option<LiveObject> {
    let id = s(&v["id"])?;
    Some(LiveObject {
        fields: obj([
            ("name", v["name"].clone()),
            ("region", v["region"].clone()),
            (
                "description",
                match &v["description"] {
                    Value::String(d) if d.is_empty() => Value::Null,
                    d => d.clone(),
                },
            ),
            ("ip_range", v["ip_range"].clone()),
        ]),
        attributes: attrs([
            ("id", json!(id)),
            ("urn", v["urn"].clone()),
            ("name", v["name"].clone()),
            ("ip_range", v["ip_range"].clone()),
        ]),
        id,
        tags: Vec::new(),
        updated_at: None,
        ..Default::default()
    })
}

/// Tags DigitalOcean adds by itself: not the user's, never compared.
fn user_tags(tags: &Value, cluster_id: &str) -> Value {
    let auto = [
        "k8s".to_string(),
        "k8s-worker".to_string(),
        format!("k8s:{cluster_id}"),
    ];
    Value::Array(
        string_list(tags)
            .into_iter()
            .filter(|t| {
                !auto.contains(t)
                    && !t.starts_with("k8s:worker-pool:")
                    && !t.starts_with(crate::live::LINEAGE_TAG_PREFIX)
            })
            .map(Value::String)
            .collect(),
    )
}

fn cluster(c: &Value) -> Option<LiveObject> {
    let id = s(&c["id"])?;
    let mut pools = Map::new();
    for p in c["node_pools"].as_array().into_iter().flatten() {
        let Some(name) = p["name"].as_str() else {
            continue;
        };
        let auto = p["auto_scale"] == json!(true);
        pools.insert(
            name.to_string(),
            Value::Object(obj([
                ("size", p["size"].clone()),
                ("count", p["count"].clone()),
                ("auto_scale", json!(auto)),
                (
                    "min_nodes",
                    if auto {
                        p["min_nodes"].clone()
                    } else {
                        Value::Null
                    },
                ),
                (
                    "max_nodes",
                    if auto {
                        p["max_nodes"].clone()
                    } else {
                        Value::Null
                    },
                ),
                (
                    "labels",
                    if p["labels"].is_null() {
                        json!({})
                    } else {
                        p["labels"].clone()
                    },
                ),
                (
                    "taints",
                    if p["taints"].is_null() {
                        json!([])
                    } else {
                        p["taints"].clone()
                    },
                ),
                ("tags", user_tags(&p["tags"], &id)),
            ])),
        );
    }
    let maintenance = match &c["maintenance_policy"] {
        Value::Object(m) => json!({"start_time": m.get("start_time"), "day": m.get("day")}),
        _ => Value::Null,
    };
    let firewall = match &c["control_plane_firewall"] {
        Value::Object(f) => json!({
            "enabled": f.get("enabled").cloned().unwrap_or(json!(false)),
            "allowed_addresses": f.get("allowed_addresses").cloned().unwrap_or(json!([])),
        }),
        _ => Value::Null,
    };
    Some(LiveObject {
        fields: obj([
            ("name", c["name"].clone()),
            ("region", c["region"].clone()),
            ("version", c["version"].clone()),
            ("vpc_uuid", c["vpc_uuid"].clone()),
            ("cluster_subnet", c["cluster_subnet"].clone()),
            ("service_subnet", c["service_subnet"].clone()),
            ("ha", c["ha"].clone()),
            ("auto_upgrade", c["auto_upgrade"].clone()),
            ("surge_upgrade", c["surge_upgrade"].clone()),
            ("tags", user_tags(&c["tags"], &id)),
            ("maintenance_policy", maintenance),
            ("control_plane_firewall", firewall),
            ("node_pools", Value::Object(pools)),
        ]),
        attributes: attrs([
            ("id", json!(id)),
            ("urn", json!(format!("do:kubernetes:{id}"))),
            ("name", c["name"].clone()),
            ("endpoint", c["endpoint"].clone()),
            ("ipv4", c["ipv4"].clone()),
            ("status", c["status"]["state"].clone()),
        ]),
        id,
        tags: string_list(&c["tags"]),
        updated_at: s(&c["updated_at"]),
        ..Default::default()
    })
}

fn load_balancer(l: &Value) -> Option<LiveObject> {
    let id = s(&l["id"])?;
    let rules: Vec<Value> = l["forwarding_rules"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            Value::Object(obj([
                ("entry_protocol", r["entry_protocol"].clone()),
                ("entry_port", r["entry_port"].clone()),
                ("target_protocol", r["target_protocol"].clone()),
                ("target_port", r["target_port"].clone()),
                (
                    "certificate_id",
                    match &r["certificate_id"] {
                        Value::String(c) if c.is_empty() => Value::Null,
                        c => c.clone(),
                    },
                ),
                (
                    "tls_passthrough",
                    json!(r["tls_passthrough"] == json!(true)),
                ),
            ]))
        })
        .collect();
    let region = match &l["region"] {
        Value::Object(r) => r.get("slug").cloned().unwrap_or(Value::Null),
        other => other.clone(),
    };
    let tag = match &l["tag"] {
        Value::String(t) if t.is_empty() => Value::Null,
        t => t.clone(),
    };
    Some(LiveObject {
        fields: obj([
            ("name", l["name"].clone()),
            ("region", region),
            ("size_unit", l["size_unit"].clone()),
            ("vpc_uuid", l["vpc_uuid"].clone()),
            ("network", l["network"].clone()),
            ("tag", tag),
            ("droplet_ids", l["droplet_ids"].clone()),
            ("forwarding_rules", Value::Array(rules)),
            ("health_check", l["health_check"].clone()),
            (
                "redirect_http_to_https",
                l["redirect_http_to_https"].clone(),
            ),
            ("enable_proxy_protocol", l["enable_proxy_protocol"].clone()),
            (
                "enable_backend_keepalive",
                l["enable_backend_keepalive"].clone(),
            ),
            (
                "http_idle_timeout_seconds",
                l["http_idle_timeout_seconds"].clone(),
            ),
            (
                "disable_lets_encrypt_dns_records",
                l["disable_lets_encrypt_dns_records"].clone(),
            ),
        ]),
        attributes: attrs([
            ("id", json!(id)),
            ("urn", json!(format!("do:loadbalancer:{id}"))),
            ("ip", l["ip"].clone()),
            ("name", l["name"].clone()),
        ]),
        id,
        tags: Vec::new(),
        updated_at: None,
        ..Default::default()
    })
}

fn peers(p: &Value) -> Value {
    Value::Object(obj([
        ("addresses", p["addresses"].clone()),
        ("tags", p["tags"].clone()),
        ("droplet_ids", p["droplet_ids"].clone()),
        ("load_balancer_uids", p["load_balancer_uids"].clone()),
        ("kubernetes_ids", p["kubernetes_ids"].clone()),
    ]))
}

fn rules(list: &Value, peers_key: &'static str) -> Value {
    Value::Array(
        list.as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                let ports = match &r["ports"] {
                    // An icmp rule has no ports, and the API reads it back as "0" (the
                    // DigitalOcean Terraform provider, `firewall/firewalls.go`).
                    Value::String(p) if p == "0" && r["protocol"] == "icmp" => Value::Null,
                    // Otherwise "0" is "all ports", as the desired state writes it.
                    Value::String(p) if p == "0" => json!("all"),
                    Value::String(p) if p.is_empty() => Value::Null,
                    p => p.clone(),
                };
                Value::Object(obj([
                    ("protocol", r["protocol"].clone()),
                    ("ports", ports),
                    (peers_key, peers(&r[peers_key])),
                ]))
            })
            .collect(),
    )
}

fn firewall(f: &Value) -> Option<LiveObject> {
    let id = s(&f["id"])?;
    Some(LiveObject {
        fields: obj([
            ("name", f["name"].clone()),
            ("inbound_rules", rules(&f["inbound_rules"], "sources")),
            (
                "outbound_rules",
                rules(&f["outbound_rules"], "destinations"),
            ),
            ("tags", f["tags"].clone()),
            ("droplet_ids", f["droplet_ids"].clone()),
        ]),
        attributes: attrs([("id", json!(id)), ("name", f["name"].clone())]),
        id,
        tags: Vec::new(),
        updated_at: None,
        ..Default::default()
    })
}

fn domain(d: &Value, apex: &BTreeMap<String, String>) -> Option<LiveObject> {
    let name = s(&d["name"])?;
    Some(LiveObject {
        fields: obj([
            ("name", json!(name)),
            (
                "ip_address",
                apex.get(&name).map_or(Value::Null, |ip| json!(ip)),
            ),
        ]),
        attributes: attrs([
            ("name", json!(name)),
            ("urn", json!(format!("do:domain:{name}"))),
        ]),
        id: name,
        tags: Vec::new(),
        updated_at: None,
        ..Default::default()
    })
}

/// A record's id is `<domain>/<record id>`: record ids are only unique within a zone.
fn record(domain: &str, r: &Value) -> Option<LiveObject> {
    let rid = r["id"].as_u64()?;
    if r["type"] == "SOA" || (r["type"] == "NS" && r["name"] == "@") {
        // The zone's own records: DigitalOcean's, not the user's.
        return None;
    }
    let name = r["name"].as_str().unwrap_or("@");
    let data = match (r["type"].as_str(), r["data"].as_str()) {
        (Some(t), Some(d)) if crate::desired::kinds::digitalocean::host_name_data(t) => {
            json!(host_name(domain, d))
        }
        _ => r["data"].clone(),
    };
    let fqdn = if name == "@" {
        domain.to_string()
    } else {
        format!("{name}.{domain}")
    };
    Some(LiveObject {
        fields: obj([
            ("domain", json!(domain)),
            ("type", r["type"].clone()),
            ("name", json!(name)),
            ("data", data),
            ("priority", r["priority"].clone()),
            ("port", r["port"].clone()),
            ("ttl", r["ttl"].clone()),
            ("weight", r["weight"].clone()),
            ("flags", r["flags"].clone()),
            ("tag", r["tag"].clone()),
        ]),
        attributes: attrs([("id", json!(rid)), ("fqdn", json!(fqdn))]),
        id: format!("{domain}/{rid}"),
        tags: Vec::new(),
        updated_at: None,
        ..Default::default()
    })
}

/// A host name as the desired state writes it: without the final dot, and the zone's own
/// name where the API answers `@` (octodns#151; the DigitalOcean Terraform provider's
/// `DiffSuppressFunc` on `value`, `domain/resource_record.go`).
pub fn host_name(domain: &str, data: &str) -> String {
    if data == "@" {
        domain.to_string()
    } else {
        data.strip_suffix('.').unwrap_or(data).to_string()
    }
}

fn cdn_endpoint(e: &Value) -> Option<LiveObject> {
    let id = s(&e["id"])?;
    Some(LiveObject {
        fields: obj([
            ("origin", e["origin"].clone()),
            ("ttl", e["ttl"].clone()),
            ("custom_domain", e["custom_domain"].clone()),
            ("certificate_id", e["certificate_id"].clone()),
        ]),
        attributes: attrs([("id", json!(id)), ("endpoint", e["endpoint"].clone())]),
        id,
        tags: Vec::new(),
        updated_at: None,
        ..Default::default()
    })
}

fn spaces_key(k: &Value) -> Option<LiveObject> {
    let id = s(&k["access_key"])?;
    Some(LiveObject {
        fields: obj([("name", k["name"].clone()), ("grants", k["grants"].clone())]),
        attributes: attrs([("access_key", json!(id))]),
        id,
        tags: Vec::new(),
        updated_at: None,
        ..Default::default()
    })
}

fn project(p: &Value) -> Option<LiveObject> {
    let id = s(&p["id"])?;
    let purpose = match p["purpose"].as_str() {
        // The API stores an unlisted purpose as "Other: <it>".
        Some(x) => json!(x.strip_prefix("Other: ").unwrap_or(x)),
        None => Value::Null,
    };
    let environment = match &p["environment"] {
        Value::String(e) if e.is_empty() => Value::Null,
        e => e.clone(),
    };
    Some(LiveObject {
        fields: obj([
            ("name", p["name"].clone()),
            ("description", p["description"].clone()),
            ("purpose", purpose),
            ("environment", environment),
            ("is_default", p["is_default"].clone()),
        ]),
        attributes: attrs([("id", json!(id)), ("name", p["name"].clone())]),
        id,
        tags: Vec::new(),
        updated_at: s(&p["updated_at"]),
        ..Default::default()
    })
}
