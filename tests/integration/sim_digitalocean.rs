//! The DigitalOcean simulator: every endpoint the provider needs, exercised through Prism
//! proxying to it with DigitalOcean's official OpenAPI description (so a request or response
//! that strays from the description fails the test), and its behaviours — pagination, auth,
//! rate limits, provisioning, faults and drift — checked directly.

use crate::support;

use std::sync::OnceLock;
use std::time::Duration;

use crate::support::http::Api;
use provisioner::sim::Fault;
use provisioner::sim::digitalocean::{DoConfig, DoSim};
use reqwest::Method;
use serde_json::json;

const SPEC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/specs/digitalocean/DigitalOcean-public.v2.yaml"
);

struct Shared {
    proxy: String,
}

/// One simulator (provisioning takes 1 s) behind one Prism proxy, for the whole binary.
fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let direct = support::prism::background(|| async {
            let sim = DoSim::start(DoConfig {
                provisioning: Duration::from_secs(1),
                ..DoConfig::default()
            })
            .await
            .expect("sim");
            let url = sim.url().to_string();
            // Lives as long as the test process.
            std::mem::forget(sim);
            url
        });
        Shared {
            proxy: support::prism::proxy(SPEC, &direct),
        }
    })
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

#[tokio::test]
async fn vpcs_and_pagination_follow_the_description() {
    let api = Api::new(&shared().proxy, "sim-token");
    let mut ids = Vec::new();
    for i in 0..3 {
        let name = unique("vpc");
        let v = api
            .expect(Method::POST, "/v2/vpcs", Some(json!({"name": name, "region": "fra1", "ip_range": format!("10.{}.{}.0/24", 50 + i, rand_octet())})), 201)
            .await;
        assert_eq!(v["vpc"]["name"], name.as_str());
        assert!(v["vpc"]["urn"].as_str().unwrap().starts_with("do:vpc:"));
        ids.push(v["vpc"]["id"].as_str().unwrap().to_string());
    }
    let page = api
        .expect(Method::GET, "/v2/vpcs?per_page=2&page=1", None, 200)
        .await;
    assert_eq!(page["vpcs"].as_array().unwrap().len(), 2);
    assert!(page["meta"]["total"].as_u64().unwrap() >= 3);
    assert!(
        page["links"]["pages"]["next"]
            .as_str()
            .unwrap()
            .contains("page=2")
    );
    assert!(page["links"]["pages"].get("prev").is_none());
    let id = &ids[1];
    let v = api
        .expect(
            Method::PATCH,
            &format!("/v2/vpcs/{id}"),
            Some(json!({"description": "changed"})),
            200,
        )
        .await;
    assert_eq!(v["vpc"]["description"], "changed");
    let renamed = unique("vpc");
    api.expect(
        Method::PUT,
        &format!("/v2/vpcs/{id}"),
        Some(json!({"name": renamed})),
        200,
    )
    .await;
    let v = api
        .expect(Method::GET, &format!("/v2/vpcs/{id}"), None, 200)
        .await;
    assert_eq!(v["vpc"]["name"], renamed.as_str());
    api.expect(Method::DELETE, &format!("/v2/vpcs/{id}"), None, 204)
        .await;
    let e = api
        .expect(Method::GET, &format!("/v2/vpcs/{id}"), None, 404)
        .await;
    assert_eq!(e["id"], "not_found");
}

#[tokio::test]
async fn invalid_requests_get_the_api_error_body() {
    // Prism refuses requests that break the description before they reach the simulator,
    // so the simulator's own validation is checked directly.
    let sim = DoSim::start(DoConfig::default()).await.unwrap();
    let api = Api::new(sim.url(), "sim-token");
    for (path, body) in [
        ("/v2/vpcs", json!({"region": "fra1"})),
        ("/v2/vpcs", json!({"name": "x", "region": "mars1"})),
        ("/v2/firewalls", json!({"name": "no-rules"})),
        (
            "/v2/kubernetes/clusters",
            json!({"name": "c", "region": "nyc3", "version": "1.10", "node_pools": [{"name": "w", "size": "s-2vcpu-4gb", "count": 1}]}),
        ),
        (
            "/v2/kubernetes/clusters",
            json!({"name": "c", "region": "nyc3", "version": "latest", "node_pools": []}),
        ),
        (
            "/v2/cdn/endpoints",
            json!({"origin": "a.nyc3.digitaloceanspaces.com", "ttl": 7}),
        ),
    ] {
        let (status, _, e) = api.call(Method::POST, path, Some(body.clone())).await;
        assert_eq!(status, 422, "{path} {body}");
        assert_eq!(e["id"], "unprocessable_entity");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(e["request_id"].is_string());
    }
    let (status, _, e) = api.call(Method::GET, "/v2/vpcs/nope", None).await;
    assert_eq!((status, e["id"].as_str()), (404, Some("not_found")));
    let (status, _, e) = api.call(Method::GET, "/v2/vpcs?per_page=x", None).await;
    assert_eq!((status, e["id"].as_str()), (400, Some("bad_request")));
}

#[tokio::test]
async fn the_catalogs_of_regions_sizes_and_kubernetes_options_page_as_described() {
    let api = Api::new(&shared().proxy, "sim-token");
    let mut regions = Vec::new();
    let mut page = 1;
    loop {
        let r = api
            .expect(
                Method::GET,
                &format!("/v2/regions?per_page=4&page={page}"),
                None,
                200,
            )
            .await;
        regions.extend(
            r["regions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x["slug"].as_str().unwrap().to_string()),
        );
        assert_eq!(r["meta"]["total"], 10);
        if r["links"]["pages"]["next"].is_null() {
            break;
        }
        page += 1;
    }
    assert_eq!(page, 3);
    assert!(
        regions.contains(&"nyc3".to_string()) && regions.len() == 10,
        "{regions:?}"
    );
    let sizes = api.expect(Method::GET, "/v2/sizes", None, 200).await;
    let s = sizes["sizes"].as_array().unwrap();
    let small = s.iter().find(|x| x["slug"] == "s-4vcpu-8gb").unwrap();
    assert_eq!(
        (small["vcpus"].as_u64(), small["memory"].as_u64()),
        (Some(4), Some(8192))
    );
    let options = api
        .expect(Method::GET, "/v2/kubernetes/options", None, 200)
        .await;
    assert!(options["options"]["versions"][0]["slug"].is_string());
}

fn rand_octet() -> u8 {
    uuid::Uuid::new_v4().as_bytes()[0]
}

#[tokio::test]
async fn kubernetes_clusters_pools_upgrades_and_kubeconfig() {
    let api = Api::new(&shared().proxy, "sim-token");
    let options = api
        .expect(Method::GET, "/v2/kubernetes/options", None, 200)
        .await;
    let versions = options["options"]["versions"].as_array().unwrap();
    let oldest = versions.last().unwrap()["slug"]
        .as_str()
        .unwrap()
        .to_string();
    let vpc = api
        .expect(Method::POST, "/v2/vpcs", Some(json!({"name": unique("k8s-vpc"), "region": "ams3", "ip_range": format!("10.20.{}.0/24", rand_octet())})), 201)
        .await;
    let vpc_id = vpc["vpc"]["id"].as_str().unwrap().to_string();
    let name = unique("prod");
    let c = api
        .expect(
            Method::POST,
            "/v2/kubernetes/clusters",
            Some(json!({
                "name": name, "region": "ams3", "version": oldest, "vpc_uuid": vpc_id,
                "maintenance_policy": {"start_time": "03:00", "day": "sunday"},
                "node_pools": [{"name": "workers", "size": "s-2vcpu-4gb", "count": 2, "labels": {"role": "w"}}]
            })),
            201,
        )
        .await;
    let c = &c["kubernetes_cluster"];
    assert_eq!(c["status"]["state"], "provisioning");
    let id = c["id"].as_str().unwrap().to_string();
    // Running after the configured time.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let got = api
        .expect(
            Method::GET,
            &format!("/v2/kubernetes/clusters/{id}"),
            None,
            200,
        )
        .await;
    assert_eq!(got["kubernetes_cluster"]["status"]["state"], "running");
    let list = api
        .expect(
            Method::GET,
            "/v2/kubernetes/clusters?per_page=200",
            None,
            200,
        )
        .await;
    assert!(
        list["kubernetes_clusters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["id"] == id.as_str())
    );
    api.expect(
        Method::PUT,
        &format!("/v2/kubernetes/clusters/{id}"),
        Some(json!({"name": name, "auto_upgrade": true, "tags": ["env:prod"]})),
        202,
    )
    .await;
    let pools = api
        .expect(
            Method::GET,
            &format!("/v2/kubernetes/clusters/{id}/node_pools"),
            None,
            200,
        )
        .await;
    let pool_id = pools["node_pools"][0]["id"].as_str().unwrap().to_string();
    let p = api
        .expect(
            Method::PUT,
            &format!("/v2/kubernetes/clusters/{id}/node_pools/{pool_id}"),
            Some(json!({"name": "workers", "count": 3})),
            202,
        )
        .await;
    assert_eq!(p["node_pool"]["count"], 3);
    let extra = api
        .expect(
            Method::POST,
            &format!("/v2/kubernetes/clusters/{id}/node_pools"),
            Some(json!({"name": "batch", "size": "s-4vcpu-8gb", "count": 1, "auto_scale": true, "min_nodes": 1, "max_nodes": 4})),
            201,
        )
        .await;
    let extra_id = extra["node_pool"]["id"].as_str().unwrap();
    api.expect(
        Method::GET,
        &format!("/v2/kubernetes/clusters/{id}/node_pools/{extra_id}"),
        None,
        200,
    )
    .await;
    api.expect(
        Method::DELETE,
        &format!("/v2/kubernetes/clusters/{id}/node_pools/{extra_id}"),
        None,
        204,
    )
    .await;
    let upgrades = api
        .expect(
            Method::GET,
            &format!("/v2/kubernetes/clusters/{id}/upgrades"),
            None,
            200,
        )
        .await;
    let newer = upgrades["available_upgrade_versions"][0]["slug"]
        .as_str()
        .unwrap()
        .to_string();
    api.expect(
        Method::POST,
        &format!("/v2/kubernetes/clusters/{id}/upgrade"),
        Some(json!({"version": newer})),
        202,
    )
    .await;
    let got = api
        .expect(
            Method::GET,
            &format!("/v2/kubernetes/clusters/{id}"),
            None,
            200,
        )
        .await;
    assert_eq!(got["kubernetes_cluster"]["status"]["state"], "upgrading");
    assert_eq!(got["kubernetes_cluster"]["version"], newer.as_str());
    // Going back is refused.
    api.expect(
        Method::POST,
        &format!("/v2/kubernetes/clusters/{id}/upgrade"),
        Some(json!({"version": oldest})),
        422,
    )
    .await;
    let resp = reqwest::Client::new()
        .get(format!(
            "{}/v2/kubernetes/clusters/{id}/kubeconfig",
            shared().proxy
        ))
        .bearer_auth("sim-token")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/yaml")
    );
    assert!(resp.text().await.unwrap().contains("kind: Config"));
    // A VPC with members cannot go.
    api.expect(Method::DELETE, &format!("/v2/vpcs/{vpc_id}"), None, 403)
        .await;
    api.expect(
        Method::DELETE,
        &format!("/v2/kubernetes/clusters/{id}"),
        None,
        204,
    )
    .await;
}

#[tokio::test]
async fn load_balancers_and_firewalls_replace_on_put() {
    let api = Api::new(&shared().proxy, "sim-token");
    let name = unique("lb");
    let lb = api
        .expect(
            Method::POST,
            "/v2/load_balancers",
            Some(json!({
                "name": name, "region": "nyc3", "tag": "web",
                "forwarding_rules": [{"entry_protocol": "https", "entry_port": 443, "target_protocol": "http", "target_port": 80, "tls_passthrough": true}],
                "redirect_http_to_https": true
            })),
            202,
        )
        .await;
    let id = lb["load_balancer"]["id"].as_str().unwrap().to_string();
    assert_eq!(lb["load_balancer"]["region"]["slug"], "nyc3");
    let put = api
        .expect(
            Method::PUT,
            &format!("/v2/load_balancers/{id}"),
            Some(json!({
                "name": name, "region": "nyc3", "tag": "web",
                "forwarding_rules": [{"entry_protocol": "http", "entry_port": 80, "target_protocol": "http", "target_port": 8080}]
            })),
            200,
        )
        .await;
    // Left out of the PUT: back to the default.
    assert_eq!(put["load_balancer"]["redirect_http_to_https"], false);
    api.expect(Method::GET, "/v2/load_balancers", None, 200)
        .await;
    api.expect(Method::GET, &format!("/v2/load_balancers/{id}"), None, 200)
        .await;
    api.expect(
        Method::DELETE,
        &format!("/v2/load_balancers/{id}"),
        None,
        204,
    )
    .await;

    let fw_name = unique("fw");
    let fw = api
        .expect(
            Method::POST,
            "/v2/firewalls",
            Some(json!({
                "name": fw_name,
                "inbound_rules": [{"protocol": "tcp", "ports": "443", "sources": {"addresses": ["0.0.0.0/0", "::/0"]}}],
                "outbound_rules": [{"protocol": "tcp", "ports": "0", "destinations": {"addresses": ["0.0.0.0/0"]}}],
                "tags": ["web"]
            })),
            202,
        )
        .await;
    let fid = fw["firewall"]["id"].as_str().unwrap().to_string();
    api.expect(
        Method::PUT,
        &format!("/v2/firewalls/{fid}"),
        Some(json!({
            "name": fw_name,
            "inbound_rules": [{"protocol": "tcp", "ports": "22", "sources": {"addresses": ["10.0.0.0/8"]}}],
        })),
        200,
    )
    .await;
    let got = api
        .expect(Method::GET, &format!("/v2/firewalls/{fid}"), None, 200)
        .await;
    assert_eq!(got["firewall"]["outbound_rules"], json!([]));
    api.expect(Method::GET, "/v2/firewalls?per_page=50", None, 200)
        .await;
    api.expect(Method::DELETE, &format!("/v2/firewalls/{fid}"), None, 204)
        .await;
}

#[tokio::test]
async fn domains_and_records() {
    let api = Api::new(&shared().proxy, "sim-token");
    let domain = format!("{}.example.com", unique("d"));
    api.expect(
        Method::POST,
        "/v2/domains",
        Some(json!({"name": domain})),
        201,
    )
    .await;
    let d = api
        .expect(Method::GET, &format!("/v2/domains/{domain}"), None, 200)
        .await;
    assert_eq!(d["domain"]["ttl"], 1800);
    let rec = api
        .expect(
            Method::POST,
            &format!("/v2/domains/{domain}/records"),
            Some(json!({"type": "CNAME", "name": "tok1._domainkey", "data": "tok1.dkim.amazonses.com.", "ttl": 3600})),
            201,
        )
        .await;
    // Stored without the final dot, as the API does.
    assert_eq!(rec["domain_record"]["data"], "tok1.dkim.amazonses.com");
    let rid = rec["domain_record"]["id"].as_u64().unwrap();
    api.expect(
        Method::POST,
        &format!("/v2/domains/{domain}/records"),
        Some(json!({"type": "MX", "name": "mail", "data": "feedback-smtp.us-east-1.amazonses.com.", "priority": 10})),
        201,
    )
    .await;
    api.expect(
        Method::POST,
        &format!("/v2/domains/{domain}/records"),
        Some(json!({"type": "MX", "name": "mail2", "data": "x.example.com"})),
        422,
    )
    .await;
    // A host name without the final dot is refused, as DigitalOcean does.
    let refused = api
        .expect(
            Method::POST,
            &format!("/v2/domains/{domain}/records"),
            Some(json!({"type": "CNAME", "name": "www", "data": "app.example-cdn.net"})),
            422,
        )
        .await;
    assert_eq!(refused["message"], "Data needs to end with a dot (.)");
    api.expect(
        Method::POST,
        &format!("/v2/domains/{domain}/records"),
        Some(json!({"type": "TXT", "name": "_dmarc", "data": "v=DMARC1; p=quarantine"})),
        201,
    )
    .await;
    let by_name = api
        .expect(
            Method::GET,
            &format!("/v2/domains/{domain}/records?name=_dmarc.{domain}&type=TXT"),
            None,
            200,
        )
        .await;
    assert_eq!(by_name["domain_records"].as_array().unwrap().len(), 1);
    let all = api
        .expect(
            Method::GET,
            &format!("/v2/domains/{domain}/records?per_page=200"),
            None,
            200,
        )
        .await;
    assert!(
        all["domain_records"].as_array().unwrap().len() >= 7,
        "SOA and NS come with the domain"
    );
    let upd = api
        .expect(
            Method::PATCH,
            &format!("/v2/domains/{domain}/records/{rid}"),
            Some(json!({"type": "CNAME", "ttl": 1800})),
            200,
        )
        .await;
    assert_eq!(upd["domain_record"]["ttl"], 1800);
    api.expect(
        Method::PUT,
        &format!("/v2/domains/{domain}/records/{rid}"),
        Some(json!({"type": "A", "data": "1.2.3.4"})),
        422,
    )
    .await;
    api.expect(
        Method::GET,
        &format!("/v2/domains/{domain}/records/{rid}"),
        None,
        200,
    )
    .await;
    api.expect(
        Method::DELETE,
        &format!("/v2/domains/{domain}/records/{rid}"),
        None,
        204,
    )
    .await;
    api.expect(Method::GET, "/v2/domains", None, 200).await;
    api.expect(Method::DELETE, &format!("/v2/domains/{domain}"), None, 204)
        .await;
}

#[tokio::test]
async fn cdn_projects_and_spaces_keys() {
    let api = Api::new(&shared().proxy, "sim-token");
    let origin = format!("{}.nyc3.digitaloceanspaces.com", unique("assets"));
    let e = api
        .expect(
            Method::POST,
            "/v2/cdn/endpoints",
            Some(json!({"origin": origin, "ttl": 3600})),
            201,
        )
        .await;
    let eid = e["endpoint"]["id"].as_str().unwrap().to_string();
    assert!(
        e["endpoint"]["endpoint"]
            .as_str()
            .unwrap()
            .ends_with(".cdn.digitaloceanspaces.com")
    );
    api.expect(
        Method::PUT,
        &format!("/v2/cdn/endpoints/{eid}"),
        Some(json!({"ttl": 86400})),
        200,
    )
    .await;
    api.expect(
        Method::PUT,
        &format!("/v2/cdn/endpoints/{eid}"),
        Some(json!({"ttl": 5})),
        422,
    )
    .await;
    api.expect(Method::GET, &format!("/v2/cdn/endpoints/{eid}"), None, 200)
        .await;
    api.expect(Method::GET, "/v2/cdn/endpoints", None, 200)
        .await;
    api.expect(
        Method::DELETE,
        &format!("/v2/cdn/endpoints/{eid}"),
        None,
        204,
    )
    .await;

    let p = api
        .expect(
            Method::POST,
            "/v2/projects",
            Some(json!({"name": unique("platform"), "purpose": "Service or API", "environment": "Production", "description": "the platform"})),
            201,
        )
        .await;
    let pid = p["project"]["id"].as_str().unwrap().to_string();
    api.expect(
        Method::PATCH,
        &format!("/v2/projects/{pid}"),
        Some(json!({"description": "x"})),
        200,
    )
    .await;
    api.expect(
        Method::PUT,
        &format!("/v2/projects/{pid}"),
        Some(json!({"name": unique("platform"), "description": "all of it", "purpose": "Web Application", "environment": "Production", "is_default": false})),
        200,
    )
    .await;
    api.expect(Method::GET, "/v2/projects/default", None, 200)
        .await;
    let vpc = api
        .expect(Method::POST, "/v2/vpcs", Some(json!({"name": unique("pvpc"), "region": "sgp1", "ip_range": format!("10.30.{}.0/24", rand_octet())})), 201)
        .await;
    let urn = vpc["vpc"]["urn"].as_str().unwrap().to_string();
    let assigned = api
        .expect(
            Method::POST,
            &format!("/v2/projects/{pid}/resources"),
            Some(json!({"resources": [urn]})),
            200,
        )
        .await;
    assert_eq!(assigned["resources"][0]["status"], "ok");
    let listed = api
        .expect(
            Method::GET,
            &format!("/v2/projects/{pid}/resources"),
            None,
            200,
        )
        .await;
    assert_eq!(listed["resources"][0]["urn"], urn.as_str());
    api.expect(Method::DELETE, &format!("/v2/projects/{pid}"), None, 412)
        .await;
    api.expect(Method::GET, "/v2/projects", None, 200).await;

    let key = api
        .expect(
            Method::POST,
            "/v2/spaces/keys",
            Some(json!({"name": unique("ci"), "grants": [{"bucket": "assets", "permission": "readwrite"}]})),
            201,
        )
        .await;
    assert!(
        key["key"]["secret_key"].is_string(),
        "the secret is shown once"
    );
    let access = key["key"]["access_key"].as_str().unwrap().to_string();
    let got = api
        .expect(Method::GET, &format!("/v2/spaces/keys/{access}"), None, 200)
        .await;
    assert!(got["key"].get("secret_key").is_none(), "and never again");
    api.expect(Method::GET, "/v2/spaces/keys", None, 200).await;
    api.expect(
        Method::PUT,
        &format!("/v2/spaces/keys/{access}"),
        Some(json!({"name": unique("ci2")})),
        200,
    )
    .await;
    api.expect(
        Method::PATCH,
        &format!("/v2/spaces/keys/{access}"),
        Some(json!({"name": unique("ci3")})),
        200,
    )
    .await;
    api.expect(
        Method::DELETE,
        &format!("/v2/spaces/keys/{access}"),
        None,
        204,
    )
    .await;
}

#[tokio::test]
async fn the_account_names_the_token_identity() {
    let api = Api::new(&shared().proxy, "sim-token");
    let v = api.expect(Method::GET, "/v2/account", None, 200).await;
    assert_eq!(v["account"]["status"], "active");
    assert!(v["account"]["email"].as_str().unwrap().contains('@'));
}

#[tokio::test]
async fn a_wrong_token_gets_401_with_an_error_body() {
    let mut api = Api::new(&shared().proxy, "sim-token");
    api.token = "wrong".into();
    let (status, headers, v) = api.call(Method::GET, "/v2/vpcs", None).await;
    assert_eq!(status, 401);
    assert_eq!(v["id"], "unauthorized");
    assert!(headers.get("sl-violations").is_none());
}

#[tokio::test]
async fn rate_limits_send_the_real_headers_and_429_with_retry_after() {
    let sim = DoSim::start(DoConfig {
        per_minute: 5,
        per_hour: 8,
        ..DoConfig::default()
    })
    .await
    .unwrap();
    let api = Api::new(sim.url(), "sim-token");
    let mut last = 0;
    for i in 0..5 {
        let (status, h, _) = api.call(Method::GET, "/v2/vpcs", None).await;
        assert_eq!(status, 200);
        let remaining: u64 = h["ratelimit-remaining"].to_str().unwrap().parse().unwrap();
        assert_eq!(remaining, 8 - (i + 1));
        assert_eq!(h["ratelimit-limit"], "8");
        let reset: u64 = h["ratelimit-reset"].to_str().unwrap().parse().unwrap();
        assert!(reset >= last);
        last = reset;
    }
    let (status, h, v) = api.call(Method::GET, "/v2/vpcs", None).await;
    assert_eq!(status, 429);
    assert_eq!(v["id"], "too_many_requests");
    let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
}

#[tokio::test]
async fn faults_inject_latency_errors_drops_and_truncation() {
    let sim = DoSim::start(DoConfig::default()).await.unwrap();
    let api = Api::new(sim.url(), "sim-token");
    sim.faults.inject(
        Some("GET"),
        "/v2/vpcs",
        Fault::Respond {
            status: 503,
            body: r#"{"id":"server_error","message":"Server Error"}"#.into(),
            headers: vec![],
        },
        Some(1),
    );
    assert_eq!(api.call(Method::GET, "/v2/vpcs", None).await.0, 503);
    assert_eq!(
        api.call(Method::GET, "/v2/vpcs", None).await.0,
        200,
        "only once"
    );
    sim.faults.inject(
        None,
        "/v2/vpcs",
        Fault::Latency(Duration::from_millis(300)),
        Some(1),
    );
    let t = std::time::Instant::now();
    api.call(Method::GET, "/v2/vpcs", None).await;
    assert!(t.elapsed() >= Duration::from_millis(300));
    sim.faults.inject(None, "/v2/vpcs", Fault::Drop, Some(1));
    let r = reqwest::Client::new()
        .get(format!("{}/v2/vpcs", sim.url()))
        .bearer_auth("sim-token")
        .send()
        .await;
    let failed = match r {
        Err(_) => true,
        Ok(resp) => resp.bytes().await.is_err(),
    };
    assert!(failed, "a dropped connection is an error for the client");
    sim.faults
        .inject(None, "/v2/kubernetes/options", Fault::Truncate, Some(1));
    let r = reqwest::Client::new()
        .get(format!("{}/v2/kubernetes/options", sim.url()))
        .bearer_auth("sim-token")
        .send()
        .await;
    let failed = match r {
        Err(_) => true,
        Ok(resp) => resp.bytes().await.is_err(),
    };
    assert!(failed, "a truncated body is an error");
    assert_eq!(sim.faults.requests().len(), 5, "every request is logged");
}

#[tokio::test]
async fn out_of_band_edits_make_drift() {
    let sim = DoSim::start(DoConfig::default()).await.unwrap();
    let api = Api::new(sim.url(), "sim-token");
    api.expect(
        Method::POST,
        "/v2/kubernetes/clusters",
        Some(json!({"name": "prod", "region": "nyc3", "version": "latest", "node_pools": [{"name": "workers", "size": "s-2vcpu-4gb", "count": 3}]})),
        201,
    )
    .await;
    assert!(sim.scale_node_pool("prod", "workers", 5));
    let list = api
        .expect(Method::GET, "/v2/kubernetes/clusters", None, 200)
        .await;
    assert_eq!(list["kubernetes_clusters"][0]["node_pools"][0]["count"], 5);
    api.expect(
        Method::POST,
        "/v2/firewalls",
        Some(json!({"name": "web", "inbound_rules": [{"protocol": "tcp", "ports": "443", "sources": {"addresses": ["0.0.0.0/0"]}}]})),
        202,
    )
    .await;
    assert!(sim.add_firewall_rule(
        "web",
        json!({"protocol": "tcp", "ports": "22", "sources": {"addresses": ["0.0.0.0/0"]}})
    ));
    let fw = api.expect(Method::GET, "/v2/firewalls", None, 200).await;
    assert_eq!(
        fw["firewalls"][0]["inbound_rules"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    api.expect(
        Method::POST,
        "/v2/domains",
        Some(json!({"name": "example.com"})),
        201,
    )
    .await;
    api.expect(
        Method::POST,
        "/v2/domains/example.com/records",
        Some(json!({"type": "TXT", "name": "_dmarc", "data": "v=DMARC1; p=none"})),
        201,
    )
    .await;
    assert!(sim.delete_record("example.com", "_dmarc", "TXT"));
    let recs = api
        .expect(
            Method::GET,
            "/v2/domains/example.com/records?type=TXT",
            None,
            200,
        )
        .await;
    assert_eq!(recs["domain_records"], json!([]));
}
