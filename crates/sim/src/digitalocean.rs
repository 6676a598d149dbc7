//! A stateful simulator of the DigitalOcean API v2 endpoints the DigitalOcean provider uses:
//! VPCs; Kubernetes clusters, node pools, upgrades, options and kubeconfig; load balancers;
//! firewalls; domains and records; CDN endpoints; projects and their resources; Spaces keys.
//!
//! Behaviour follows `../shared/reference/cloud-apis.md` §A and the OpenAPI description
//! (the test suite proxies every exchange through Prism to check it): singular/plural
//! envelopes, `page`/`per_page` (max 200) pagination with `links.pages` and `meta.total`,
//! `{"id", "message", "request_id"}` errors, `ratelimit-*` headers on every response with a
//! sliding one-hour window (5,000) and a one-minute burst limit (250) answered with 429 and
//! `retry-after`, bearer-token auth (401 otherwise), and clusters that stay `provisioning`
//! for a configurable time before `running`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{Faults, Running, now, parse_query, serve_api, uuid};

/// How the simulator behaves.
#[derive(Clone, Debug)]
pub struct DoConfig {
    /// The only token it accepts.
    pub token: String,
    /// How long a new cluster (or an upgrade) stays in progress.
    pub provisioning: Duration,
    /// Requests per hour per token.
    pub per_hour: usize,
    /// Requests per minute per token (the burst limit).
    pub per_minute: usize,
    /// The Kubernetes API every cluster's kubeconfig reaches, as (URL, bearer token): a
    /// [`crate::kubernetes::KubeSim`]'s, so that a simulated cluster can be reached. Unset,
    /// a kubeconfig names the cluster's own `https://{id}.k8s.ondigitalocean.com`, which no
    /// test can reach.
    pub kubernetes: Option<(String, String)>,
    /// The PEM of the CA that signed that API's certificate, when it speaks HTTPS (a real
    /// kube-apiserver in the tests): written as the kubeconfig's
    /// `certificate-authority-data`.
    pub kubernetes_ca: Option<Vec<u8>>,
}

impl Default for DoConfig {
    fn default() -> Self {
        DoConfig {
            token: "sim-token".into(),
            provisioning: Duration::from_secs(2),
            per_hour: 5000,
            per_minute: 250,
            kubernetes: None,
            kubernetes_ca: None,
        }
    }
}

/// Everything the simulated account holds.
#[derive(Debug, Default)]
pub struct DoState {
    /// VPCs.
    pub vpcs: Vec<Value>,
    /// Kubernetes clusters (node pools inside, as the API returns them).
    pub clusters: Vec<Value>,
    /// When each cluster's current operation finishes.
    busy_until: BTreeMap<String, (Instant, &'static str)>,
    /// Load balancers.
    pub load_balancers: Vec<Value>,
    /// Firewalls.
    pub firewalls: Vec<Value>,
    /// Domains.
    pub domains: Vec<Value>,
    /// Records per domain.
    pub records: BTreeMap<String, Vec<Value>>,
    next_record_id: u64,
    /// CDN endpoints.
    pub cdn_endpoints: Vec<Value>,
    /// Projects.
    pub projects: Vec<Value>,
    /// Resource URNs assigned to each project (by project id).
    pub project_resources: BTreeMap<String, Vec<Value>>,
    /// Spaces access keys (without their secrets, which are shown once).
    pub spaces_keys: Vec<Value>,
    /// Request times, for the rate limits.
    window: VecDeque<Instant>,
}

struct Shared {
    config: DoConfig,
    state: Mutex<DoState>,
}

/// A running DigitalOcean simulator.
pub struct DoSim {
    /// The server (stops when dropped).
    pub running: Running,
    /// Fault injection and the request log.
    pub faults: Faults,
    shared: Arc<Shared>,
}

const VERSIONS: &[(&str, &str)] = &[
    ("1.33.1-do.0", "1.33.1"),
    ("1.32.5-do.2", "1.32.5"),
    ("1.31.9-do.1", "1.31.9"),
];
const REGIONS: &[(&str, &str)] = &[
    ("nyc1", "New York 1"),
    ("nyc3", "New York 3"),
    ("sfo3", "San Francisco 3"),
    ("ams3", "Amsterdam 3"),
    ("fra1", "Frankfurt 1"),
    ("lon1", "London 1"),
    ("sgp1", "Singapore 1"),
    ("tor1", "Toronto 1"),
    ("blr1", "Bangalore 1"),
    ("syd1", "Sydney 1"),
];
const SIZES: &[(&str, &str)] = &[
    ("s-1vcpu-2gb", "s-1vcpu-2gb"),
    ("s-2vcpu-4gb", "s-2vcpu-4gb"),
    ("s-4vcpu-8gb", "s-4vcpu-8gb"),
    ("g-4vcpu-16gb", "g-4vcpu-16gb"),
];

/// `GET /v2/regions` items: every region of [`REGIONS`], available, with every size.
fn catalog_regions() -> Vec<Value> {
    let sizes: Vec<&str> = SIZES.iter().map(|(slug, _)| *slug).collect();
    REGIONS
        .iter()
        .map(|(slug, name)| {
            json!({
                "name": name,
                "slug": slug,
                "features": ["private_networking", "backups", "ipv6", "metadata", "install_agent", "storage", "image_transfer"],
                "available": true,
                "sizes": sizes,
            })
        })
        .collect()
}

/// `GET /v2/sizes` items: [`SIZES`] with the figures their slugs name, in every region.
fn catalog_sizes() -> Vec<Value> {
    let regions: Vec<&str> = REGIONS.iter().map(|(slug, _)| *slug).collect();
    SIZES
        .iter()
        .map(|(slug, _)| {
            // `s-4vcpu-8gb`: 4 vCPUs, 8 GiB; prices as the description's example scales them.
            let mut parts = slug.split('-').skip(1);
            let vcpus: u64 = parts
                .next()
                .and_then(|p| p.trim_end_matches("vcpu").parse().ok())
                .unwrap_or(1);
            let gib: u64 = parts
                .next()
                .and_then(|p| p.trim_end_matches("gb").parse().ok())
                .unwrap_or(1);
            let monthly = 6 * gib;
            json!({
                "slug": slug,
                "memory": gib * 1024,
                "vcpus": vcpus,
                "disk": 25 * gib,
                "transfer": gib as f64,
                "price_monthly": monthly as f64,
                "price_hourly": monthly as f64 / 672.0,
                "regions": regions,
                "available": true,
                "description": if slug.starts_with("g-") { "General Purpose" } else { "Basic" },
                "disk_info": [{"type": "local", "size": {"amount": 25 * gib, "unit": "gib"}}],
            })
        })
        .collect()
}

impl DoSim {
    /// Starts a simulator on a free loopback port.
    pub async fn start(config: DoConfig) -> std::io::Result<DoSim> {
        let shared = Arc::new(Shared {
            config,
            state: Mutex::new(DoState {
                next_record_id: 1000,
                projects: vec![default_project()],
                ..DoState::default()
            }),
        });
        let (running, faults) = serve_api(handle, shared.clone()).await?;
        Ok(DoSim {
            running,
            faults,
            shared,
        })
    }

    /// The base URL (`DIGITALOCEAN_API_URL`).
    pub fn url(&self) -> &str {
        &self.running.url
    }

    /// Reads or changes the account directly: out-of-band edits, as someone in the web
    /// console would make them.
    pub fn edit<R>(&self, f: impl FnOnce(&mut DoState) -> R) -> R {
        f(&mut self.shared.state.lock().expect("state"))
    }

    /// Drift: sets a node pool's node count by hand.
    pub fn scale_node_pool(&self, cluster_name: &str, pool_name: &str, count: u64) -> bool {
        self.edit(|s| {
            let Some(c) = s.clusters.iter_mut().find(|c| c["name"] == cluster_name) else {
                return false;
            };
            let Some(pools) = c["node_pools"].as_array_mut() else {
                return false;
            };
            let Some(p) = pools.iter_mut().find(|p| p["name"] == pool_name) else {
                return false;
            };
            p["count"] = json!(count);
            p["nodes"] = nodes(p["name"].as_str().unwrap_or("pool"), count, "running");
            true
        })
    }

    /// Drift: adds an inbound rule to a firewall by hand.
    pub fn add_firewall_rule(&self, firewall_name: &str, rule: Value) -> bool {
        self.edit(|s| {
            let Some(f) = s.firewalls.iter_mut().find(|f| f["name"] == firewall_name) else {
                return false;
            };
            if let Some(rules) = f["inbound_rules"].as_array_mut() {
                rules.push(rule);
            }
            true
        })
    }

    /// Drift: deletes a DNS record by hand.
    pub fn delete_record(&self, domain: &str, name: &str, kind: &str) -> bool {
        self.edit(|s| {
            let Some(records) = s.records.get_mut(domain) else {
                return false;
            };
            let before = records.len();
            records.retain(|r| !(r["name"] == name && r["type"] == kind));
            records.len() != before
        })
    }
}

fn default_project() -> Value {
    let t = now();
    json!({
        "id": uuid(),
        "owner_uuid": uuid(),
        "owner_id": 258992,
        "name": "first-project",
        "description": "My first project",
        "purpose": "Just trying out DigitalOcean",
        "environment": "Development",
        "created_at": t,
        "updated_at": t,
        "is_default": true,
    })
}

fn nodes(pool: &str, count: u64, state: &str) -> Value {
    let t = now();
    Value::Array(
        (0..count)
            .map(|i| {
                json!({
                    "id": uuid(),
                    "name": format!("{pool}-{i}"),
                    "status": {"state": state},
                    "droplet_id": format!("{}", 300000000 + i),
                    "created_at": t,
                    "updated_at": t,
                })
            })
            .collect(),
    )
}

/// An API error.
struct ApiError {
    status: StatusCode,
    id: &'static str,
    message: String,
    headers: Vec<(&'static str, String)>,
}

fn err(status: StatusCode, id: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        id,
        message: message.into(),
        headers: Vec::new(),
    }
}

fn not_found() -> ApiError {
    err(
        StatusCode::NOT_FOUND,
        "not_found",
        "The resource you were accessing could not be found.",
    )
}

fn unprocessable(message: impl Into<String>) -> ApiError {
    err(
        StatusCode::UNPROCESSABLE_ENTITY,
        "unprocessable_entity",
        message,
    )
}

fn bad_request(message: impl Into<String>) -> ApiError {
    err(StatusCode::BAD_REQUEST, "bad_request", message)
}

type Reply = Result<(StatusCode, Body), ApiError>;

/// A response body.
enum Body {
    Json(Value),
    Yaml(String),
    Empty,
}

fn ok(v: Value) -> Reply {
    Ok((StatusCode::OK, Body::Json(v)))
}

fn created(v: Value) -> Reply {
    Ok((StatusCode::CREATED, Body::Json(v)))
}

fn accepted(v: Value) -> Reply {
    Ok((StatusCode::ACCEPTED, Body::Json(v)))
}

fn no_content() -> Reply {
    Ok((StatusCode::NO_CONTENT, Body::Empty))
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = uuid();
    let token_ok = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t == shared.config.token);
    let mut state = shared.state.lock().expect("state");
    // Rate limits: a sliding hour, and a one-minute burst limit.
    let t = Instant::now();
    while state
        .window
        .front()
        .is_some_and(|s| t.duration_since(*s) > Duration::from_secs(3600))
    {
        state.window.pop_front();
    }
    let in_minute = state
        .window
        .iter()
        .rev()
        .take_while(|s| t.duration_since(**s) < Duration::from_secs(60))
        .count();
    let limited = if !token_ok {
        None
    } else if state.window.len() >= shared.config.per_hour {
        Some(None)
    } else if in_minute >= shared.config.per_minute {
        let oldest_in_minute = state.window[state.window.len() - in_minute];
        Some(Some(
            60u64
                .saturating_sub(t.duration_since(oldest_in_minute).as_secs())
                .max(1),
        ))
    } else {
        state.window.push_back(t);
        None
    };
    let remaining = shared.config.per_hour.saturating_sub(state.window.len());
    let reset = {
        let oldest = state.window.front().copied().unwrap_or(t);
        let age = t.duration_since(oldest);
        let now_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        now_epoch + 3600 - age.as_secs().min(3600)
    };
    let reply = if !token_ok {
        Err(err(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unable to authenticate you",
        ))
    } else if let Some(retry_after) = limited {
        let mut e = err(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "API Rate limit exceeded.",
        );
        if let Some(secs) = retry_after {
            e.headers.push(("retry-after", secs.to_string()));
        }
        Err(e)
    } else {
        let query = parse_query(uri.query().unwrap_or(""));
        let body = if body.is_empty() {
            Ok(Value::Null)
        } else {
            serde_json::from_slice::<Value>(&body)
                .map_err(|e| bad_request(format!("the request body is not valid JSON: {e}")))
        };
        match body {
            Ok(body) => route(
                &shared.config,
                &mut state,
                &method,
                uri.path(),
                &query,
                body,
            ),
            Err(e) => Err(e),
        }
    };
    drop(state);
    let mut response = match reply {
        Ok((status, Body::Json(v))) => (status, axum::Json(v)).into_response(),
        Ok((status, Body::Yaml(text))) => {
            (status, [("content-type", "application/yaml")], text).into_response()
        }
        Ok((status, Body::Empty)) => status.into_response(),
        Err(e) => {
            let mut r = (
                e.status,
                axum::Json(json!({"id": e.id, "message": e.message, "request_id": request_id})),
            )
                .into_response();
            for (k, v) in e.headers {
                if let Ok(v) = HeaderValue::from_str(&v) {
                    r.headers_mut().insert(k, v);
                }
            }
            r
        }
    };
    let h = response.headers_mut();
    for (k, v) in [
        ("ratelimit-limit", shared.config.per_hour.to_string()),
        ("ratelimit-remaining", remaining.to_string()),
        ("ratelimit-reset", reset.to_string()),
        ("x-request-id", request_id),
    ] {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
    response
}

/// A page of a list, with `links.pages` and `meta.total` as the API sets them.
fn page(
    items: &[Value],
    key: &str,
    path: &str,
    query: &BTreeMap<String, String>,
) -> Result<Value, ApiError> {
    let per_page: usize = match query.get("per_page") {
        Some(v) => v
            .parse()
            .map_err(|_| bad_request("per_page must be a whole number"))?,
        None => 20,
    };
    let per_page = per_page.clamp(1, 200);
    let page: usize = match query.get("page") {
        Some(v) => v
            .parse()
            .map_err(|_| bad_request("page must be a whole number"))?,
        None => 1,
    };
    let page = page.max(1);
    let total = items.len();
    let last = total.div_ceil(per_page).max(1);
    let slice: Vec<Value> = items
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .cloned()
        .collect();
    let link =
        |p: usize| format!("https://api.digitalocean.com{path}?page={p}&per_page={per_page}");
    let mut pages = Map::new();
    if page > 1 {
        pages.insert("first".into(), json!(link(1)));
        pages.insert("prev".into(), json!(link(page - 1)));
    }
    if page < last {
        pages.insert("next".into(), json!(link(page + 1)));
        pages.insert("last".into(), json!(link(last)));
    }
    let mut out = Map::new();
    out.insert(key.into(), Value::Array(slice));
    out.insert("links".into(), json!({"pages": pages}));
    out.insert("meta".into(), json!({"total": total}));
    Ok(Value::Object(out))
}

fn required<'a>(body: &'a Value, field: &str) -> Result<&'a Value, ApiError> {
    match body.get(field) {
        Some(v) if !v.is_null() => Ok(v),
        _ => Err(unprocessable(format!("{field} is required"))),
    }
}

fn required_str<'a>(body: &'a Value, field: &str) -> Result<&'a str, ApiError> {
    required(body, field)?
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| unprocessable(format!("{field} must be a non-empty string")))
}

fn find<'a>(items: &'a mut [Value], key: &str, id: &str) -> Result<&'a mut Value, ApiError> {
    items
        .iter_mut()
        .find(|v| {
            v[key].as_str() == Some(id)
                || v[key].as_u64().map(|n| n.to_string()).as_deref() == Some(id)
        })
        .ok_or_else(not_found)
}

fn region_slug(body: &Value) -> Result<String, ApiError> {
    let slug = required_str(body, "region")?;
    if !REGIONS.iter().any(|(s, _)| *s == slug) {
        return Err(unprocessable(format!("region {slug} is not available")));
    }
    Ok(slug.to_string())
}

fn region_object(slug: &str) -> Value {
    let name = REGIONS
        .iter()
        .find(|(s, _)| *s == slug)
        .map_or(slug, |(_, n)| n);
    json!({
        "name": name,
        "slug": slug,
        "sizes": ["s-1vcpu-1gb", "s-1vcpu-2gb", "s-2vcpu-4gb"],
        "features": ["backups", "ipv6", "metadata", "install_agent"],
        "available": true,
    })
}

fn route(
    config: &DoConfig,
    s: &mut DoState,
    method: &Method,
    path: &str,
    query: &BTreeMap<String, String>,
    body: Value,
) -> Reply {
    settle_clusters(s);
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    match (method.as_str(), parts.as_slice()) {
        // The token's account (what `provisioner init` names as the identity).
        ("GET", ["v2", "account"]) => ok(json!({"account": {
            "droplet_limit": 25,
            "floating_ip_limit": 5,
            "email": "sim@example.com",
            "name": "Simulated account",
            "uuid": "5f1c2e3d4b5a69788796a5b4c3d2e1f0a9b8c7d6",
            "email_verified": true,
            "status": "active",
            "status_message": "",
            "team": {"uuid": "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567", "name": "Simulated team"}
        }})),
        // VPCs
        ("GET", ["v2", "vpcs"]) => ok(page(&s.vpcs, "vpcs", path, query)?),
        ("POST", ["v2", "vpcs"]) => create_vpc(s, body),
        ("GET", ["v2", "vpcs", id]) => ok(json!({"vpc": find(&mut s.vpcs, "id", id)?.clone()})),
        ("PUT" | "PATCH", ["v2", "vpcs", id]) => {
            let full = method == Method::PUT;
            if full {
                required_str(&body, "name")?;
            }
            let names_taken = |s: &DoState, name: &str, id: &str| {
                s.vpcs.iter().any(|v| v["name"] == name && v["id"] != id)
            };
            if let Some(name) = body.get("name").and_then(Value::as_str)
                && names_taken(s, name, id)
            {
                return Err(unprocessable(format!("a VPC named {name} already exists")));
            }
            let vpc = find(&mut s.vpcs, "id", id)?;
            for f in ["name", "description"] {
                if let Some(v) = body.get(f) {
                    vpc[f] = v.clone();
                }
            }
            if body.get("default") == Some(&json!(true)) {
                vpc["default"] = json!(true);
            }
            ok(json!({"vpc": vpc.clone()}))
        }
        ("DELETE", ["v2", "vpcs", id]) => {
            let vpc = find(&mut s.vpcs, "id", id)?.clone();
            if vpc["default"] == json!(true) {
                return Err(err(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "Cannot delete the default VPC of a region",
                ));
            }
            let members = s.clusters.iter().any(|c| c["vpc_uuid"] == vpc["id"])
                || s.load_balancers.iter().any(|l| l["vpc_uuid"] == vpc["id"]);
            if members {
                return Err(err(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "Can not delete VPC with members",
                ));
            }
            s.vpcs.retain(|v| v["id"] != vpc["id"]);
            no_content()
        }

        // Catalogs: what the account may create, paginated like every list. Shapes and
        // example values from the API description (`all_regions`, `all_sizes`; `region` and
        // `size` schemas).
        ("GET", ["v2", "regions"]) => ok(page(&catalog_regions(), "regions", path, query)?),
        ("GET", ["v2", "sizes"]) => ok(page(&catalog_sizes(), "sizes", path, query)?),

        // Kubernetes
        ("GET", ["v2", "kubernetes", "options"]) => ok(json!({"options": {
            "regions": REGIONS.iter().map(|(slug, name)| json!({"name": name, "slug": slug})).collect::<Vec<_>>(),
            "versions": VERSIONS.iter().map(|(slug, v)| json!({"slug": slug, "kubernetes_version": v, "supported_features": ["cluster-autoscaler", "docr-integration", "ha-control-plane", "token-authentication"]})).collect::<Vec<_>>(),
            "sizes": SIZES.iter().map(|(slug, name)| json!({"name": name, "slug": slug})).collect::<Vec<_>>(),
        }})),
        ("GET", ["v2", "kubernetes", "clusters"]) => {
            ok(page(&s.clusters, "kubernetes_clusters", path, query)?)
        }
        ("POST", ["v2", "kubernetes", "clusters"]) => create_cluster(config, s, body),
        ("GET", ["v2", "kubernetes", "clusters", id]) => ok(json!({
            "kubernetes_cluster": find(&mut s.clusters, "id", id)?.clone()
        })),
        ("PUT", ["v2", "kubernetes", "clusters", id]) => {
            required_str(&body, "name")?;
            let c = find(&mut s.clusters, "id", id)?;
            for f in [
                "name",
                "tags",
                "maintenance_policy",
                "auto_upgrade",
                "surge_upgrade",
                "control_plane_firewall",
            ] {
                if let Some(v) = body.get(f) {
                    c[f] = v.clone();
                }
            }
            if let Some(tags) = c["tags"].as_array_mut() {
                for auto in ["k8s".to_string(), format!("k8s:{id}")] {
                    if !tags.iter().any(|t| t == auto.as_str()) {
                        tags.push(json!(auto));
                    }
                }
            }
            if let Some(ha) = body.get("ha") {
                if c["ha"] == json!(true) && ha == &json!(false) {
                    return Err(unprocessable("high availability cannot be disabled"));
                }
                c["ha"] = ha.clone();
            }
            if let Some(mp) = c.get_mut("maintenance_policy")
                && mp.is_object()
                && mp.get("duration").is_none()
            {
                mp["duration"] = json!("4h0m0s");
            }
            c["updated_at"] = json!(now());
            accepted(json!({"kubernetes_cluster": c.clone()}))
        }
        ("DELETE", ["v2", "kubernetes", "clusters", id]) => {
            find(&mut s.clusters, "id", id)?;
            s.clusters.retain(|c| c["id"] != *id);
            s.busy_until.remove(*id);
            no_content()
        }
        ("GET", ["v2", "kubernetes", "clusters", id, "kubeconfig"]) => {
            let c = find(&mut s.clusters, "id", id)?;
            Ok((
                StatusCode::OK,
                Body::Yaml(kubeconfig(
                    c,
                    config.kubernetes.as_ref(),
                    config.kubernetes_ca.as_deref(),
                )),
            ))
        }
        ("GET", ["v2", "kubernetes", "clusters", id, "upgrades"]) => {
            let c = find(&mut s.clusters, "id", id)?;
            let current = c["version"].as_str().unwrap_or("").to_string();
            let newer: Vec<Value> = VERSIONS
                .iter()
                .filter(|(slug, _)| version_key(slug) > version_key(&current))
                .map(|(slug, v)| json!({"slug": slug, "kubernetes_version": v, "supported_features": ["cluster-autoscaler"]}))
                .collect();
            ok(json!({"available_upgrade_versions": newer}))
        }
        ("POST", ["v2", "kubernetes", "clusters", id, "upgrade"]) => {
            let version = required_str(&body, "version")?.to_string();
            let Some(slug) = resolve_version(&version) else {
                return Err(unprocessable(format!("version {version} is not available")));
            };
            let c = find(&mut s.clusters, "id", id)?;
            if version_key(slug) <= version_key(c["version"].as_str().unwrap_or("")) {
                return Err(unprocessable(format!(
                    "cannot upgrade to {slug}: clusters can only be upgraded to newer versions"
                )));
            }
            c["version"] = json!(slug);
            c["status"] = json!({"state": "upgrading", "message": "Cluster is upgrading"});
            s.busy_until.insert(
                id.to_string(),
                (Instant::now() + config.provisioning, "upgrading"),
            );
            Ok((StatusCode::ACCEPTED, Body::Empty))
        }
        ("GET", ["v2", "kubernetes", "clusters", id, "node_pools"]) => {
            let c = find(&mut s.clusters, "id", id)?;
            ok(json!({"node_pools": c["node_pools"].clone()}))
        }
        ("POST", ["v2", "kubernetes", "clusters", id, "node_pools"]) => {
            let pool = node_pool(&body)?;
            let c = find(&mut s.clusters, "id", id)?;
            let pools = c["node_pools"].as_array_mut().expect("pools");
            if pools.iter().any(|p| p["name"] == pool["name"]) {
                return Err(unprocessable("a node pool with this name already exists"));
            }
            pools.push(pool.clone());
            created(json!({"node_pool": pool}))
        }
        ("GET", ["v2", "kubernetes", "clusters", id, "node_pools", pool]) => {
            let c = find(&mut s.clusters, "id", id)?;
            let pools = c["node_pools"].as_array_mut().expect("pools");
            ok(json!({"node_pool": find(pools, "id", pool)?.clone()}))
        }
        ("PUT", ["v2", "kubernetes", "clusters", id, "node_pools", pool]) => {
            required_str(&body, "name")?;
            let count = required(&body, "count")?
                .as_u64()
                .ok_or_else(|| unprocessable("count must be a whole number"))?;
            let c = find(&mut s.clusters, "id", id)?;
            let pools = c["node_pools"].as_array_mut().expect("pools");
            let p = find(pools, "id", pool)?;
            for f in [
                "name",
                "tags",
                "labels",
                "taints",
                "auto_scale",
                "min_nodes",
                "max_nodes",
            ] {
                if let Some(v) = body.get(f) {
                    p[f] = v.clone();
                }
            }
            if p["auto_scale"] != json!(true) {
                p["min_nodes"] = json!(0);
                p["max_nodes"] = json!(0);
            }
            if p["count"].as_u64() != Some(count) {
                p["count"] = json!(count);
                p["nodes"] = nodes(p["name"].as_str().unwrap_or("pool"), count, "running");
            }
            accepted(json!({"node_pool": p.clone()}))
        }
        ("DELETE", ["v2", "kubernetes", "clusters", id, "node_pools", pool]) => {
            let c = find(&mut s.clusters, "id", id)?;
            let pools = c["node_pools"].as_array_mut().expect("pools");
            find(pools, "id", pool)?;
            if pools.len() == 1 {
                return Err(unprocessable("a cluster must keep at least one node pool"));
            }
            pools.retain(|p| p["id"] != *pool);
            no_content()
        }

        // Load balancers
        ("GET", ["v2", "load_balancers"]) => {
            let read: Vec<Value> = s.load_balancers.iter().map(load_balancer_as_read).collect();
            ok(page(&read, "load_balancers", path, query)?)
        }
        ("POST", ["v2", "load_balancers"]) => {
            let lb = load_balancer(s, None, &body)?;
            s.load_balancers.push(lb.clone());
            accepted(json!({"load_balancer": load_balancer_as_read(&lb)}))
        }
        ("GET", ["v2", "load_balancers", id]) => ok(json!({
            "load_balancer": load_balancer_as_read(find(&mut s.load_balancers, "id", id)?)
        })),
        ("PUT", ["v2", "load_balancers", id]) => {
            let old = find(&mut s.load_balancers, "id", id)?.clone();
            let lb = load_balancer(s, Some(&old), &body)?;
            *find(&mut s.load_balancers, "id", id)? = lb.clone();
            ok(json!({"load_balancer": load_balancer_as_read(&lb)}))
        }
        ("DELETE", ["v2", "load_balancers", id]) => {
            find(&mut s.load_balancers, "id", id)?;
            s.load_balancers.retain(|l| l["id"] != *id);
            no_content()
        }

        // Firewalls
        ("GET", ["v2", "firewalls"]) => {
            let read: Vec<Value> = s.firewalls.iter().map(firewall_as_read).collect();
            ok(page(&read, "firewalls", path, query)?)
        }
        ("POST", ["v2", "firewalls"]) => {
            let fw = firewall(None, &body)?;
            s.firewalls.push(fw.clone());
            accepted(json!({"firewall": firewall_as_read(&fw)}))
        }
        ("GET", ["v2", "firewalls", id]) => {
            ok(json!({"firewall": firewall_as_read(find(&mut s.firewalls, "id", id)?)}))
        }
        ("PUT", ["v2", "firewalls", id]) => {
            let old = find(&mut s.firewalls, "id", id)?.clone();
            let fw = firewall(Some(&old), &body)?;
            *find(&mut s.firewalls, "id", id)? = fw.clone();
            ok(json!({"firewall": firewall_as_read(&fw)}))
        }
        ("DELETE", ["v2", "firewalls", id]) => {
            find(&mut s.firewalls, "id", id)?;
            s.firewalls.retain(|f| f["id"] != *id);
            no_content()
        }

        // Domains and records
        ("GET", ["v2", "domains"]) => ok(page(&s.domains, "domains", path, query)?),
        ("POST", ["v2", "domains"]) => {
            let name = required_str(&body, "name")?.to_ascii_lowercase();
            if s.domains.iter().any(|d| d["name"] == name) {
                return Err(unprocessable(format!("{name} already exists")));
            }
            let domain = json!({"name": name, "ttl": 1800, "zone_file": zone_file(&name, &[])});
            s.domains.push(domain.clone());
            let mut records = vec![
                json!({"id": 0, "type": "SOA", "name": "@", "data": "1800", "priority": null, "port": null, "ttl": 1800, "weight": null, "flags": null, "tag": null}),
            ];
            for ns in [
                "ns1.digitalocean.com",
                "ns2.digitalocean.com",
                "ns3.digitalocean.com",
            ] {
                records.push(json!({"id": 0, "type": "NS", "name": "@", "data": ns, "priority": null, "port": null, "ttl": 1800, "weight": null, "flags": null, "tag": null}));
            }
            if let Some(ip) = body.get("ip_address").and_then(Value::as_str) {
                records.push(json!({"id": 0, "type": "A", "name": "@", "data": ip, "priority": null, "port": null, "ttl": 1800, "weight": null, "flags": null, "tag": null}));
            }
            for r in &mut records {
                s.next_record_id += 1;
                r["id"] = json!(s.next_record_id);
            }
            s.records.insert(name.clone(), records);
            created(json!({"domain": {"name": name, "ttl": null, "zone_file": null}}))
        }
        ("GET", ["v2", "domains", name]) => {
            let records = s.records.get(*name).cloned().unwrap_or_default();
            let d = find(&mut s.domains, "name", name)?;
            d["zone_file"] = json!(zone_file(name, &records));
            ok(json!({"domain": d.clone()}))
        }
        ("DELETE", ["v2", "domains", name]) => {
            find(&mut s.domains, "name", name)?;
            s.domains.retain(|d| d["name"] != *name);
            s.records.remove(*name);
            no_content()
        }
        ("GET", ["v2", "domains", name, "records"]) => {
            find(&mut s.domains, "name", name)?;
            let all = s.records.get(*name).cloned().unwrap_or_default();
            let filtered: Vec<Value> = all
                .into_iter()
                .filter(|r| {
                    query.get("type").is_none_or(|t| r["type"] == t.as_str())
                        && query.get("name").is_none_or(|n| {
                            let fqdn = match r["name"].as_str() {
                                Some("@") => name.to_string(),
                                Some(rel) => format!("{rel}.{name}"),
                                None => String::new(),
                            };
                            fqdn == *n
                        })
                })
                .collect();
            ok(page(&filtered, "domain_records", path, query)?)
        }
        ("POST", ["v2", "domains", name, "records"]) => {
            find(&mut s.domains, "name", name)?;
            let record = record(name, s.next_record_id + 1, None, &body)?;
            s.next_record_id += 1;
            let records = s.records.entry(name.to_string()).or_default();
            records.push(record.clone());
            rectify_ttls(records, &record);
            created(json!({"domain_record": record}))
        }
        ("GET", ["v2", "domains", name, "records", id]) => {
            find(&mut s.domains, "name", name)?;
            let records = s.records.entry(name.to_string()).or_default();
            ok(json!({"domain_record": find(records, "id", id)?.clone()}))
        }
        ("PUT" | "PATCH", ["v2", "domains", name, "records", id]) => {
            find(&mut s.domains, "name", name)?;
            let records = s.records.entry(name.to_string()).or_default();
            let old = find(records, "id", id)?.clone();
            let new = record(name, old["id"].as_u64().unwrap_or(0), Some(&old), &body)?;
            *find(records, "id", id)? = new.clone();
            rectify_ttls(records, &new);
            ok(json!({"domain_record": new}))
        }
        ("DELETE", ["v2", "domains", name, "records", id]) => {
            find(&mut s.domains, "name", name)?;
            let records = s.records.entry(name.to_string()).or_default();
            let r = find(records, "id", id)?.clone();
            if r["type"] == "SOA" {
                return Err(err(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "SOA records cannot be deleted",
                ));
            }
            records.retain(|x| x["id"] != r["id"]);
            no_content()
        }

        // CDN
        ("GET", ["v2", "cdn", "endpoints"]) => {
            ok(page(&s.cdn_endpoints, "endpoints", path, query)?)
        }
        ("POST", ["v2", "cdn", "endpoints"]) => {
            let origin = required_str(&body, "origin")?.to_string();
            if s.cdn_endpoints
                .iter()
                .any(|e| e["origin"] == origin.as_str())
            {
                return Err(unprocessable(format!(
                    "an endpoint for {origin} already exists"
                )));
            }
            let ttl = cdn_ttl(&body, 3600)?;
            let endpoint =
                origin.replacen(".digitaloceanspaces.com", ".cdn.digitaloceanspaces.com", 1);
            let mut e = json!({
                "id": uuid(),
                "origin": origin,
                "endpoint": endpoint,
                "created_at": now(),
                "ttl": ttl,
            });
            for f in ["certificate_id", "custom_domain"] {
                if let Some(v) = body
                    .get(f)
                    .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
                {
                    e[f] = v.clone();
                }
            }
            s.cdn_endpoints.push(e.clone());
            created(json!({"endpoint": e}))
        }
        ("GET", ["v2", "cdn", "endpoints", id]) => {
            ok(json!({"endpoint": find(&mut s.cdn_endpoints, "id", id)?.clone()}))
        }
        ("PUT", ["v2", "cdn", "endpoints", id]) => {
            let e = find(&mut s.cdn_endpoints, "id", id)?;
            let old_ttl = e["ttl"].as_u64().unwrap_or(3600);
            e["ttl"] = json!(cdn_ttl(&body, old_ttl)?);
            for f in ["certificate_id", "custom_domain"] {
                match body.get(f) {
                    Some(Value::String(v)) if v.is_empty() => {
                        if let Some(o) = e.as_object_mut() {
                            o.remove(f);
                        }
                    }
                    Some(v) => e[f] = v.clone(),
                    None => {}
                }
            }
            ok(json!({"endpoint": e.clone()}))
        }
        ("DELETE", ["v2", "cdn", "endpoints", id]) => {
            find(&mut s.cdn_endpoints, "id", id)?;
            s.cdn_endpoints.retain(|e| e["id"] != *id);
            no_content()
        }

        // Projects
        ("GET", ["v2", "projects"]) => ok(page(&s.projects, "projects", path, query)?),
        ("POST", ["v2", "projects"]) => {
            let name = required_str(&body, "name")?.to_string();
            let purpose = required_str(&body, "purpose")?.to_string();
            if s.projects.iter().any(|p| p["name"] == name.as_str()) {
                return Err(unprocessable(format!(
                    "a project named {name} already exists"
                )));
            }
            let t = now();
            let p = json!({
                "id": uuid(),
                "owner_uuid": s.projects[0]["owner_uuid"].clone(),
                "owner_id": 258992,
                "name": name,
                "description": body.get("description").cloned().unwrap_or(json!("")),
                "purpose": project_purpose(&purpose),
                "environment": body.get("environment").cloned().unwrap_or(json!("")),
                "created_at": t,
                "updated_at": t,
                "is_default": false,
            });
            s.projects.push(p.clone());
            created(json!({"project": p}))
        }
        ("GET", ["v2", "projects", id]) => {
            let id = project_id(s, id);
            ok(json!({"project": find(&mut s.projects, "id", &id)?.clone()}))
        }
        ("PUT" | "PATCH", ["v2", "projects", id]) => {
            let id = project_id(s, id);
            if method == Method::PUT {
                for f in [
                    "name",
                    "description",
                    "purpose",
                    "environment",
                    "is_default",
                ] {
                    required(&body, f)?;
                }
            }
            let p = find(&mut s.projects, "id", &id)?;
            for f in ["name", "description", "environment", "is_default"] {
                if let Some(v) = body.get(f) {
                    p[f] = v.clone();
                }
            }
            if let Some(purpose) = body.get("purpose").and_then(Value::as_str) {
                p["purpose"] = json!(project_purpose(purpose));
            }
            p["updated_at"] = json!(now());
            ok(json!({"project": p.clone()}))
        }
        ("DELETE", ["v2", "projects", id]) => {
            let id = project_id(s, id);
            let p = find(&mut s.projects, "id", &id)?.clone();
            if p["is_default"] == json!(true) {
                return Err(err(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "the default project cannot be deleted",
                ));
            }
            if s.project_resources.get(&id).is_some_and(|r| !r.is_empty()) {
                return Err(err(
                    StatusCode::PRECONDITION_FAILED,
                    "precondition_failed",
                    "cannot delete a project with resources; move them first",
                ));
            }
            s.projects.retain(|x| x["id"] != p["id"]);
            no_content()
        }
        ("GET", ["v2", "projects", id, "resources"]) => {
            let id = project_id(s, id);
            find(&mut s.projects, "id", &id)?;
            let items = s.project_resources.get(&id).cloned().unwrap_or_default();
            ok(page(&items, "resources", path, query)?)
        }
        ("POST", ["v2", "projects", id, "resources"]) => {
            let id = project_id(s, id);
            find(&mut s.projects, "id", &id)?;
            let urns = required(&body, "resources")?
                .as_array()
                .ok_or_else(|| unprocessable("resources must be a list of URNs"))?
                .clone();
            let mut out = Vec::new();
            for urn in urns {
                let urn = urn
                    .as_str()
                    .ok_or_else(|| unprocessable("resources must be a list of URNs"))?
                    .to_string();
                let status = if urn_exists(s, &urn) {
                    "ok"
                } else {
                    "not_found"
                };
                let entry = json!({
                    "urn": urn,
                    "assigned_at": now(),
                    "links": {"self": format!("https://api.digitalocean.com/v2/{}", urn.replace(':', "/"))},
                    "status": status,
                });
                if status == "ok" {
                    for list in s.project_resources.values_mut() {
                        list.retain(|r| r["urn"] != urn.as_str());
                    }
                    s.project_resources
                        .entry(id.clone())
                        .or_default()
                        .push(entry.clone());
                }
                out.push(entry);
            }
            ok(json!({"resources": out}))
        }

        // Spaces keys
        ("GET", ["v2", "spaces", "keys"]) => {
            let filtered: Vec<Value> = s
                .spaces_keys
                .iter()
                .filter(|k| query.get("name").is_none_or(|n| k["name"] == n.as_str()))
                .cloned()
                .collect();
            ok(page(&filtered, "keys", path, query)?)
        }
        ("POST", ["v2", "spaces", "keys"]) => {
            let name = required_str(&body, "name")?.to_string();
            let grants = body.get("grants").cloned().unwrap_or(json!([]));
            check_grants(&grants)?;
            let access_key = random_key(20);
            let key = json!({
                "name": name,
                "access_key": access_key,
                "grants": grants,
                "created_at": now(),
            });
            s.spaces_keys.push(key.clone());
            let mut shown = key;
            shown["secret_key"] = json!(random_key(43));
            created(json!({"key": shown}))
        }
        ("GET", ["v2", "spaces", "keys", access_key]) => {
            ok(json!({"key": find(&mut s.spaces_keys, "access_key", access_key)?.clone()}))
        }
        ("PUT" | "PATCH", ["v2", "spaces", "keys", access_key]) => {
            let k = find(&mut s.spaces_keys, "access_key", access_key)?;
            if let Some(name) = body.get("name") {
                k["name"] = name.clone();
            }
            if let Some(grants) = body.get("grants") {
                let was_full = k["grants"]
                    .as_array()
                    .is_some_and(|g| g.iter().any(|x| x["permission"] == "fullaccess"));
                let now_full = grants
                    .as_array()
                    .is_some_and(|g| g.iter().any(|x| x["permission"] == "fullaccess"));
                if was_full != now_full {
                    return Err(bad_request(
                        "cannot convert between a full-access key and a scoped key",
                    ));
                }
            }
            ok(json!({"key": k.clone()}))
        }
        ("DELETE", ["v2", "spaces", "keys", access_key]) => {
            find(&mut s.spaces_keys, "access_key", access_key)?;
            s.spaces_keys.retain(|k| k["access_key"] != *access_key);
            no_content()
        }

        _ => Err(not_found()),
    }
}

fn settle_clusters(s: &mut DoState) {
    let t = Instant::now();
    let done: Vec<String> = s
        .busy_until
        .iter()
        .filter(|(_, (until, _))| *until <= t)
        .map(|(id, _)| id.clone())
        .collect();
    for id in done {
        s.busy_until.remove(&id);
        if let Some(c) = s.clusters.iter_mut().find(|c| c["id"] == id.as_str()) {
            c["status"] = json!({"state": "running", "message": "Cluster is running"});
            if let Some(pools) = c["node_pools"].as_array_mut() {
                for p in pools {
                    let count = p["count"].as_u64().unwrap_or(0);
                    p["nodes"] = nodes(p["name"].as_str().unwrap_or("pool"), count, "running");
                }
            }
            c["updated_at"] = json!(now());
        }
    }
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

/// A version as the create body may give it: a slug, a minor (`1.33`) or `latest`.
fn resolve_version(v: &str) -> Option<&'static str> {
    if v == "latest" {
        return VERSIONS
            .iter()
            .map(|(s, _)| *s)
            .max_by_key(|s| version_key(s));
    }
    VERSIONS
        .iter()
        .map(|(s, _)| *s)
        .filter(|s| *s == v || s.starts_with(&format!("{v}.")))
        .max_by_key(|s| version_key(s))
}

fn node_pool(body: &Value) -> Result<Value, ApiError> {
    let name = required_str(body, "name")?;
    let size = required_str(body, "size")?;
    if !SIZES.iter().any(|(s, _)| *s == size) {
        return Err(unprocessable(format!(
            "size {size} is not available for Kubernetes"
        )));
    }
    let count = required(body, "count")?
        .as_u64()
        .filter(|c| *c >= 1)
        .ok_or_else(|| unprocessable("count must be at least 1"))?;
    let id = uuid();
    let auto = body.get("auto_scale") == Some(&json!(true));
    let mut tags: Vec<Value> = body
        .get("tags")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for t in ["k8s", "k8s-worker"] {
        if !tags.iter().any(|x| x == t) {
            tags.push(json!(t));
        }
    }
    Ok(json!({
        "id": id,
        "name": name,
        "size": size,
        "count": count,
        "tags": tags,
        "labels": body.get("labels").cloned().unwrap_or(json!({})),
        "taints": body.get("taints").cloned().unwrap_or(json!([])),
        "auto_scale": auto,
        "min_nodes": if auto { body.get("min_nodes").cloned().unwrap_or(json!(count)) } else { json!(0) },
        "max_nodes": if auto { body.get("max_nodes").cloned().unwrap_or(json!(count)) } else { json!(0) },
        "nodes": nodes(name, count, "provisioning"),
    }))
}

fn create_vpc(s: &mut DoState, body: Value) -> Reply {
    let name = required_str(&body, "name")?.to_string();
    let region = region_slug(&body)?;
    if s.vpcs.iter().any(|v| v["name"] == name.as_str()) {
        return Err(unprocessable(format!("a VPC named {name} already exists")));
    }
    let ip_range = match body.get("ip_range").and_then(Value::as_str) {
        Some(r) => r.to_string(),
        None => format!("10.{}.0.0/20", 100 + s.vpcs.len() % 100),
    };
    if s.vpcs
        .iter()
        .any(|v| v["region"] == region.as_str() && v["ip_range"] == ip_range.as_str())
    {
        return Err(unprocessable(format!(
            "ip_range {ip_range} overlaps a VPC in {region}"
        )));
    }
    let first_in_region = !s.vpcs.iter().any(|v| v["region"] == region.as_str());
    let id = uuid();
    let vpc = json!({
        "id": id,
        "urn": format!("do:vpc:{id}"),
        "name": name,
        "description": body.get("description").cloned().unwrap_or(json!("")),
        "region": region,
        "ip_range": ip_range,
        "default": first_in_region,
        "created_at": now(),
    });
    s.vpcs.push(vpc.clone());
    created(json!({"vpc": vpc}))
}

fn create_cluster(config: &DoConfig, s: &mut DoState, body: Value) -> Reply {
    let name = required_str(&body, "name")?.to_string();
    let region = region_slug(&body)?;
    let version = required_str(&body, "version")?;
    let Some(slug) = resolve_version(version) else {
        return Err(unprocessable(format!("version {version} is not available")));
    };
    if s.clusters.iter().any(|c| c["name"] == name.as_str()) {
        return Err(unprocessable(format!(
            "a cluster named {name} already exists"
        )));
    }
    let pools = required(&body, "node_pools")?
        .as_array()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| unprocessable("node_pools must hold at least one pool"))?;
    let pools: Vec<Value> = pools.iter().map(node_pool).collect::<Result<_, _>>()?;
    let vpc_uuid = match body.get("vpc_uuid").and_then(Value::as_str) {
        Some(v) => {
            let vpc = s
                .vpcs
                .iter()
                .find(|x| x["id"] == v)
                .ok_or_else(|| unprocessable(format!("vpc {v} does not exist")))?;
            if vpc["region"] != region.as_str() {
                return Err(unprocessable("the VPC is in another region"));
            }
            v.to_string()
        }
        None => s
            .vpcs
            .iter()
            .find(|x| x["region"] == region.as_str() && x["default"] == json!(true))
            .and_then(|x| x["id"].as_str())
            .map(str::to_string)
            .unwrap_or_else(uuid),
    };
    let id = uuid();
    let mut tags: Vec<Value> = body
        .get("tags")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for t in ["k8s".to_string(), format!("k8s:{id}")] {
        if !tags.iter().any(|x| x == t.as_str()) {
            tags.push(json!(t));
        }
    }
    let mut maintenance = body
        .get("maintenance_policy")
        .cloned()
        .unwrap_or(json!({"start_time": "04:00", "day": "any"}));
    maintenance["duration"] = json!("4h0m0s");
    let t = now();
    let cluster = json!({
        "id": id,
        "name": name,
        "region": region,
        "version": slug,
        "cluster_subnet": body.get("cluster_subnet").cloned().unwrap_or(json!("10.244.0.0/16")),
        "service_subnet": body.get("service_subnet").cloned().unwrap_or(json!("10.245.0.0/16")),
        "vpc_uuid": vpc_uuid,
        "ipv4": "",
        "endpoint": "",
        "tags": tags,
        "node_pools": pools,
        "maintenance_policy": maintenance,
        "auto_upgrade": body.get("auto_upgrade").cloned().unwrap_or(json!(false)),
        "status": {"state": "provisioning", "message": "Cluster is provisioning"},
        "created_at": t,
        "updated_at": t,
        "surge_upgrade": body.get("surge_upgrade").cloned().unwrap_or(json!(false)),
        "registry_enabled": false,
        "ha": body.get("ha").cloned().unwrap_or(json!(false)),
        "control_plane_firewall": body.get("control_plane_firewall").cloned().unwrap_or(json!({"enabled": false, "allowed_addresses": []})),
    });
    s.busy_until.insert(
        id.clone(),
        (Instant::now() + config.provisioning, "provisioning"),
    );
    let mut stored = cluster.clone();
    stored["ipv4"] = json!(format!("203.0.113.{}", 10 + s.clusters.len() % 200));
    stored["endpoint"] = json!(format!("https://{id}.k8s.ondigitalocean.com"));
    s.clusters.push(stored);
    created(json!({"kubernetes_cluster": cluster}))
}

fn kubeconfig(c: &Value, kube: Option<&(String, String)>, ca: Option<&[u8]>) -> String {
    if let Some((url, token)) = kube {
        let Some(ca) = ca else {
            return crate::kubernetes::kubeconfig(url, token);
        };
        use base64::Engine;
        let ca = base64::engine::general_purpose::STANDARD.encode(ca);
        return format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n    server: {url}\n  name: c\ncontexts:\n- context:\n    cluster: c\n    user: u\n  name: c\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: {token}\n"
        );
    }
    let name = c["name"].as_str().unwrap_or("cluster");
    let region = c["region"].as_str().unwrap_or("nyc1");
    let endpoint = c["endpoint"].as_str().unwrap_or("");
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: c2ltdWxhdGVkLWNh\n    server: {endpoint}\n  name: do-{region}-{name}\ncontexts:\n- context:\n    cluster: do-{region}-{name}\n    user: do-{region}-{name}-admin\n  name: do-{region}-{name}\ncurrent-context: do-{region}-{name}\nusers:\n- name: do-{region}-{name}-admin\n  user:\n    token: sim-{}\n",
        uuid()
    )
}

fn load_balancer(s: &DoState, old: Option<&Value>, body: &Value) -> Result<Value, ApiError> {
    let region = region_slug(body)?;
    if let Some(old) = old
        && old["region"]["slug"] != region.as_str()
    {
        return Err(unprocessable("region cannot be changed"));
    }
    let rules = required(body, "forwarding_rules")?
        .as_array()
        .filter(|r| !r.is_empty())
        .ok_or_else(|| unprocessable("forwarding_rules must hold at least one rule"))?
        .clone();
    for r in &rules {
        for f in [
            "entry_protocol",
            "entry_port",
            "target_protocol",
            "target_port",
        ] {
            required(r, f)?;
        }
    }
    let has_droplets = body.get("droplet_ids").is_some_and(|v| !v.is_null());
    let has_tag = body.get("tag").is_some_and(|v| !v.is_null() && v != "");
    if has_droplets && has_tag {
        return Err(unprocessable("droplet_ids and tag are mutually exclusive"));
    }
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("lb-{}", &uuid()[..8]));
    if s.load_balancers
        .iter()
        .any(|l| l["name"] == name.as_str() && old.is_none_or(|o| o["id"] != l["id"]))
    {
        return Err(unprocessable(format!(
            "a load balancer named {name} already exists"
        )));
    }
    let id = old.map_or_else(uuid, |o| o["id"].as_str().unwrap_or("").to_string());
    // PUT is a full replacement: anything left out returns to its default.
    Ok(json!({
        "id": id,
        "name": name,
        "ip": old.map_or_else(|| json!(format!("198.51.100.{}", 10 + s.load_balancers.len() % 200)), |o| o["ip"].clone()),
        "size_unit": body.get("size_unit").cloned().unwrap_or(json!(1)),
        "size": body.get("size").cloned().unwrap_or(json!("lb-small")),
        "algorithm": body.get("algorithm").cloned().unwrap_or(json!("round_robin")),
        "status": old.map_or(json!("new"), |_| json!("active")),
        "created_at": old.map_or_else(|| json!(now()), |o| o["created_at"].clone()),
        "forwarding_rules": rules,
        "health_check": body.get("health_check").cloned().unwrap_or(json!({
            "protocol": "http", "port": 80, "path": "/", "check_interval_seconds": 10,
            "response_timeout_seconds": 5, "healthy_threshold": 5, "unhealthy_threshold": 3
        })),
        "sticky_sessions": body.get("sticky_sessions").cloned().unwrap_or(json!({"type": "none"})),
        "redirect_http_to_https": body.get("redirect_http_to_https").cloned().unwrap_or(json!(false)),
        "enable_proxy_protocol": body.get("enable_proxy_protocol").cloned().unwrap_or(json!(false)),
        "enable_backend_keepalive": body.get("enable_backend_keepalive").cloned().unwrap_or(json!(false)),
        "http_idle_timeout_seconds": body.get("http_idle_timeout_seconds").cloned().unwrap_or(json!(60)),
        "vpc_uuid": body.get("vpc_uuid").cloned().unwrap_or_else(|| {
            // Without one, the load balancer joins the region's default VPC.
            s.vpcs
                .iter()
                .find(|v| v["region"] == region.as_str() && v["default"] == json!(true))
                .map_or_else(|| json!(uuid()), |v| v["id"].clone())
        }),
        "disable_lets_encrypt_dns_records": body.get("disable_lets_encrypt_dns_records").cloned().unwrap_or(json!(false)),
        "droplet_ids": body.get("droplet_ids").cloned().unwrap_or(json!([])),
        "tag": body.get("tag").cloned().unwrap_or(json!("")),
        "region": region_object(&region),
        "network": body.get("network").cloned().unwrap_or(json!("EXTERNAL")),
        "type": body.get("type").cloned().unwrap_or(json!("REGIONAL")),
    }))
}

fn firewall(old: Option<&Value>, body: &Value) -> Result<Value, ApiError> {
    let name = required_str(body, "name")?;
    let inbound = body.get("inbound_rules").cloned().unwrap_or(json!([]));
    let outbound = body.get("outbound_rules").cloned().unwrap_or(json!([]));
    let empty = |v: &Value| v.as_array().is_none_or(Vec::is_empty);
    if empty(&inbound) && empty(&outbound) {
        return Err(unprocessable(
            "a firewall needs at least one inbound or outbound rule",
        ));
    }
    for (rules, peers) in [(&inbound, "sources"), (&outbound, "destinations")] {
        for r in rules.as_array().into_iter().flatten() {
            let protocol = required_str(r, "protocol")?;
            if !["tcp", "udp", "icmp"].contains(&protocol) {
                return Err(unprocessable(format!(
                    "protocol {protocol} is not tcp, udp or icmp"
                )));
            }
            if protocol != "icmp" {
                required_str(r, "ports")?;
            }
            required(r, peers)?;
        }
    }
    Ok(json!({
        "id": old.map_or_else(uuid, |o| o["id"].as_str().unwrap_or("").to_string()),
        "name": name,
        "status": "succeeded",
        "created_at": old.map_or_else(|| json!(now()), |o| o["created_at"].clone()),
        "pending_changes": [],
        "inbound_rules": inbound,
        "outbound_rules": outbound,
        "droplet_ids": body.get("droplet_ids").cloned().unwrap_or(json!([])),
        "tags": body.get("tags").cloned().unwrap_or(json!([])),
    }))
}

fn record(zone: &str, id: u64, old: Option<&Value>, body: &Value) -> Result<Value, ApiError> {
    let kind = required_str(body, "type")?.to_string();
    if let Some(old) = old
        && old["type"] != kind.as_str()
    {
        return Err(unprocessable("the type of a record cannot be changed"));
    }
    let allowed = ["A", "AAAA", "CAA", "CNAME", "MX", "NS", "SOA", "SRV", "TXT"];
    if !allowed.contains(&kind.as_str()) {
        return Err(unprocessable(format!(
            "record type {kind} is not supported"
        )));
    }
    let get = |f: &str| {
        body.get(f)
            .cloned()
            .or_else(|| old.and_then(|o| o.get(f).cloned()))
            .unwrap_or(Value::Null)
    };
    let name = get("name");
    let name = name.as_str().filter(|n| !n.is_empty()).unwrap_or("@");
    let data = get("data");
    let mut data = data
        .as_str()
        .ok_or_else(|| unprocessable("data is required"))?
        .to_string();
    // A host name must be fully qualified (digitalocean/api-v2#130, doctl#919,
    // external-dns#624): without the final dot the API refuses it. It stores the name
    // without the dot, and the zone itself as `@` (octodns#151).
    let written = body.get("data").is_some_and(|d| !d.is_null());
    if written && ["CNAME", "MX", "NS", "SRV"].contains(&kind.as_str()) && data != "@" {
        let Some(bare) = data.strip_suffix('.') else {
            return Err(unprocessable("Data needs to end with a dot (.)"));
        };
        data = if bare.eq_ignore_ascii_case(zone) {
            "@".to_string()
        } else {
            bare.to_string()
        };
    }
    let needs = |f: &str| -> Result<(), ApiError> {
        if get(f).is_null() {
            Err(unprocessable(format!("{f} is required for {kind} records")))
        } else {
            Ok(())
        }
    };
    match kind.as_str() {
        "MX" => needs("priority")?,
        "SRV" => {
            needs("priority")?;
            needs("port")?;
            needs("weight")?;
        }
        "CAA" => {
            needs("flags")?;
            needs("tag")?;
        }
        _ => {}
    }
    Ok(json!({
        "id": id,
        "type": kind,
        "name": name,
        "data": data,
        "priority": get("priority"),
        "port": get("port"),
        "ttl": match get("ttl") { Value::Null => json!(1800), v => v },
        "weight": get("weight"),
        "flags": get("flags"),
        "tag": get("tag"),
    }))
}

/// One TTL per name and type (RFC 2181 §5.2): DigitalOcean gives every record of the RRset
/// the TTL just written ("If inconsistent TTLs are provided, DigitalOcean will rectify them
/// automatically", the DigitalOcean Terraform provider's `domain/resource_record.go`).
fn rectify_ttls(records: &mut [Value], written: &Value) {
    for r in records.iter_mut() {
        if r["name"] == written["name"] && r["type"] == written["type"] {
            r["ttl"] = written["ttl"].clone();
        }
    }
}

/// A firewall as the API answers it: rules in its own order (sorted, not the order they
/// were written), the addresses, tags and ids inside each rule sorted too, and an icmp rule
/// with `ports: "0"` (the DigitalOcean Terraform provider's `firewall/firewalls.go`: "If
/// protocol is `icmp` the API returns 0 for when port was not specified"; its rules and
/// their peers are `TypeSet`s).
fn firewall_as_read(fw: &Value) -> Value {
    let mut fw = fw.clone();
    for (list, peers) in [
        ("inbound_rules", "sources"),
        ("outbound_rules", "destinations"),
    ] {
        if let Some(rules) = fw[list].as_array_mut() {
            for r in rules.iter_mut() {
                if r["protocol"] == "icmp" {
                    r["ports"] = json!("0");
                }
                if let Some(p) = r.get_mut(peers).and_then(Value::as_object_mut) {
                    for v in p.values_mut() {
                        sort_values(v);
                    }
                }
            }
            rules.sort_by_key(Value::to_string);
        }
    }
    sort_values(&mut fw["tags"]);
    sort_values(&mut fw["droplet_ids"]);
    fw
}

/// A load balancer as the API answers it: forwarding rules in the API's own order (by entry
/// port, then the rest), not the order they were written (the DigitalOcean Terraform
/// provider keeps them in a `TypeSet`, `loadbalancer/resource_loadbalancer.go`).
fn load_balancer_as_read(lb: &Value) -> Value {
    let mut lb = lb.clone();
    if let Some(rules) = lb["forwarding_rules"].as_array_mut() {
        rules.sort_by_key(|r| (r["entry_port"].as_u64().unwrap_or(0), r.to_string()));
    }
    sort_values(&mut lb["droplet_ids"]);
    lb
}

fn sort_values(v: &mut Value) {
    if let Some(list) = v.as_array_mut() {
        list.sort_by_key(Value::to_string);
    }
}

fn zone_file(name: &str, records: &[Value]) -> String {
    let mut out = format!("$ORIGIN {name}.\n$TTL 1800\n");
    for r in records {
        out.push_str(&format!(
            "{} IN {} {}\n",
            r["name"].as_str().unwrap_or("@"),
            r["type"].as_str().unwrap_or(""),
            r["data"].as_str().unwrap_or("")
        ));
    }
    out
}

fn cdn_ttl(body: &Value, default: u64) -> Result<u64, ApiError> {
    match body.get("ttl") {
        None | Some(Value::Null) => Ok(default),
        Some(v) => {
            let ttl = v.as_u64().unwrap_or(0);
            if [60, 600, 3600, 86400, 604800].contains(&ttl) {
                Ok(ttl)
            } else {
                Err(unprocessable(
                    "ttl must be one of 60, 600, 3600, 86400, 604800",
                ))
            }
        }
    }
}

fn project_purpose(p: &str) -> String {
    const LISTED: &[&str] = &[
        "Just trying out DigitalOcean",
        "Class project / Educational purposes",
        "Website or blog",
        "Web Application",
        "Service or API",
        "Mobile Application",
        "Machine learning / AI / Data processing",
        "IoT",
        "Operational / Developer tooling",
    ];
    if LISTED.contains(&p) {
        p.to_string()
    } else {
        format!("Other: {p}")
    }
}

fn project_id(s: &DoState, id: &str) -> String {
    if id == "default" {
        s.projects
            .iter()
            .find(|p| p["is_default"] == json!(true))
            .and_then(|p| p["id"].as_str())
            .unwrap_or("")
            .to_string()
    } else {
        id.to_string()
    }
}

fn urn_exists(s: &DoState, urn: &str) -> bool {
    let mut parts = urn.splitn(3, ':');
    let (Some("do"), Some(kind), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    match kind {
        "vpc" => s.vpcs.iter().any(|v| v["id"] == id),
        "kubernetes" => s.clusters.iter().any(|c| c["id"] == id),
        "loadbalancer" => s.load_balancers.iter().any(|l| l["id"] == id),
        "domain" => s.domains.iter().any(|d| d["name"] == id),
        // Spaces buckets live in the S3 API; accept their URNs as the API does.
        "space" => true,
        _ => false,
    }
}

fn check_grants(grants: &Value) -> Result<(), ApiError> {
    let Some(list) = grants.as_array() else {
        return Err(unprocessable("grants must be a list"));
    };
    let mut full = false;
    let mut scoped = false;
    for g in list {
        let permission = g
            .get("permission")
            .and_then(Value::as_str)
            .ok_or_else(|| unprocessable("every grant needs a bucket and a permission"))?;
        g.get("bucket")
            .and_then(Value::as_str)
            .ok_or_else(|| unprocessable("every grant needs a bucket and a permission"))?;
        match permission {
            "fullaccess" => full = true,
            "read" | "readwrite" => scoped = true,
            other => {
                return Err(unprocessable(format!(
                    "permission {other} is not read, readwrite or fullaccess"
                )));
            }
        }
    }
    if full && scoped {
        return Err(bad_request(
            "cannot mix fullaccess with bucket-scoped grants",
        ));
    }
    Ok(())
}

fn random_key(len: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let more = uuid::Uuid::new_v4().into_bytes();
    bytes
        .iter()
        .chain(more.iter())
        .cycle()
        .take(len)
        .enumerate()
        .map(|(i, b)| CHARS[(usize::from(*b) + i * 7) % CHARS.len()] as char)
        .collect()
}
