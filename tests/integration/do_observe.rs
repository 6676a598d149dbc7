//! Observing DigitalOcean: objects made through the API (as the console or an earlier tool
//! would) are read back in the desired state's vocabulary, so a desired state describing
//! them plans adoptions with no field changes — and a hand edit shows as the right diff.

use std::time::Duration;

use provisioner::desired;
use provisioner::ledger::Ledger;
use provisioner::live::{LiveState, ObserveStatus};
use provisioner::plan::{self, Action};
use provisioner::providers::digitalocean::observe::observe;
use provisioner::providers::digitalocean::{ApiConfig, DoClient};
use provisioner::sim::Fault;
use provisioner::sim::digitalocean::{DoConfig, DoSim};
use reqwest::Method;
use serde_json::{Value, json};

const DESIRED: &str = r#"
[digitalocean.vpc.main]
name = "prod-ams3"
region = "ams3"
ip_range = "10.10.0.0/20"

[digitalocean.kubernetes_cluster.prod]
name = "prod"
region = "ams3"
version = "1.33"
vpc_uuid = "${digitalocean.vpc.main.id}"
ha = true
tags = ["env:prod"]

[digitalocean.kubernetes_cluster.prod.maintenance_policy]
start_time = "03:00"
day = "sunday"

[digitalocean.kubernetes_cluster.prod.node_pools.workers]
size = "s-4vcpu-8gb"
count = 3
labels = { role = "worker" }

[digitalocean.kubernetes_cluster.prod.node_pools.batch]
size = "s-2vcpu-4gb"
count = 1
auto_scale = true
min_nodes = 1
max_nodes = 4

[digitalocean.load_balancer.ingress]
name = "ingress"
region = "ams3"
vpc_uuid = "${digitalocean.vpc.main.id}"
tag = "k8s-worker"
redirect_http_to_https = true

[[digitalocean.load_balancer.ingress.forwarding_rules]]
entry_protocol = "https"
entry_port = 443
target_protocol = "https"
target_port = 443
tls_passthrough = true

[digitalocean.firewall.nodes]
name = "nodes"
tags = ["k8s-worker"]

[[digitalocean.firewall.nodes.inbound_rules]]
protocol = "tcp"
ports = "443"
sources = { load_balancer_uids = ["${digitalocean.load_balancer.ingress.id}"] }

[[digitalocean.firewall.nodes.outbound_rules]]
protocol = "tcp"
ports = "all"
destinations = { addresses = ["0.0.0.0/0", "::/0"] }

[digitalocean.domain.main]
name = "example.com"

[digitalocean.domain_record.dmarc]
domain = "${digitalocean.domain.main.name}"
type = "TXT"
name = "_dmarc"
data = "v=DMARC1; p=quarantine"

[digitalocean.domain_record.mx]
domain = "${digitalocean.domain.main.name}"
type = "MX"
name = "mail"
data = "feedback-smtp.us-east-1.amazonses.com"
priority = 10

[digitalocean.cdn_endpoint.assets]
origin = "assets.ams3.digitaloceanspaces.com"
ttl = 86400

[digitalocean.spaces_key.ci]
name = "ci"
grants = [{ bucket = "assets", permission = "readwrite" }]

[digitalocean.project.platform]
name = "platform"
description = "everything"
purpose = "Platform"
environment = "Production"
resources = ["${digitalocean.vpc.main.urn}"]
"#;

async fn populate(c: &DoClient) -> Value {
    let call = |m: Method, p: &'static str, b: Value| async move {
        c.request(m, p, Some(&b)).await.unwrap().body
    };
    let vpc = call(
        Method::POST,
        "/v2/vpcs",
        json!({"name": "prod-ams3", "region": "ams3", "ip_range": "10.10.0.0/20"}),
    )
    .await;
    let vpc_id = vpc["vpc"]["id"].as_str().unwrap().to_string();
    c.request(Method::POST, "/v2/kubernetes/clusters", Some(&json!({
        "name": "prod", "region": "ams3", "version": "1.33", "vpc_uuid": vpc_id, "ha": true, "surge_upgrade": true,
        "tags": ["env:prod"], "maintenance_policy": {"start_time": "03:00", "day": "sunday"},
        "node_pools": [
            {"name": "workers", "size": "s-4vcpu-8gb", "count": 3, "labels": {"role": "worker"}},
            {"name": "batch", "size": "s-2vcpu-4gb", "count": 1, "auto_scale": true, "min_nodes": 1, "max_nodes": 4}
        ]
    }))).await.unwrap();
    let lb = c.request(Method::POST, "/v2/load_balancers", Some(&json!({
        "name": "ingress", "region": "ams3", "vpc_uuid": vpc_id, "tag": "k8s-worker", "redirect_http_to_https": true,
        "forwarding_rules": [{"entry_protocol": "https", "entry_port": 443, "target_protocol": "https", "target_port": 443, "tls_passthrough": true}]
    }))).await.unwrap().body;
    let lb_id = lb["load_balancer"]["id"].as_str().unwrap().to_string();
    c.request(Method::POST, "/v2/firewalls", Some(&json!({
        "name": "nodes", "tags": ["k8s-worker"],
        "inbound_rules": [{"protocol": "tcp", "ports": "443", "sources": {"load_balancer_uids": [lb_id]}}],
        "outbound_rules": [{"protocol": "tcp", "ports": "0", "destinations": {"addresses": ["0.0.0.0/0", "::/0"]}}]
    }))).await.unwrap();
    call(Method::POST, "/v2/domains", json!({"name": "example.com"})).await;
    call(
        Method::POST,
        "/v2/domains/example.com/records",
        json!({"type": "TXT", "name": "_dmarc", "data": "v=DMARC1; p=quarantine"}),
    )
    .await;
    call(Method::POST, "/v2/domains/example.com/records", json!({"type": "MX", "name": "mail", "data": "feedback-smtp.us-east-1.amazonses.com.", "priority": 10})).await;
    call(
        Method::POST,
        "/v2/cdn/endpoints",
        json!({"origin": "assets.ams3.digitaloceanspaces.com", "ttl": 86400}),
    )
    .await;
    call(
        Method::POST,
        "/v2/spaces/keys",
        json!({"name": "ci", "grants": [{"bucket": "assets", "permission": "readwrite"}]}),
    )
    .await;
    let p = call(Method::POST, "/v2/projects", json!({"name": "platform", "description": "everything", "purpose": "Platform", "environment": "Production"})).await;
    let pid = p["project"]["id"].as_str().unwrap().to_string();
    c.request(
        Method::POST,
        &format!("/v2/projects/{pid}/resources"),
        Some(&json!({"resources": [vpc["vpc"]["urn"]]})),
    )
    .await
    .unwrap();
    vpc
}

fn state() -> desired::DesiredState {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("do.toml"), DESIRED).unwrap();
    let mut d = desired::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    // The objects are made by hand (`populate`), so only the user's word adopts them.
    for r in d.resources.values_mut() {
        r.lifecycle.adopt = true;
    }
    d
}

async fn live(c: &DoClient, d: &desired::DesiredState) -> LiveState {
    let mut live = LiveState::default();
    let ledger = Ledger::default();
    let scope = provisioner::providers::ObserveScope::new(d, &ledger);
    for (kind, obs) in observe(c, &scope).await {
        live.kinds.insert(kind.key().to_string(), obs);
    }
    live
}

#[tokio::test]
async fn objects_read_back_in_the_desired_vocabulary_plan_clean_adoptions() {
    let sim = DoSim::start(DoConfig {
        provisioning: Duration::from_millis(10),
        ..DoConfig::default()
    })
    .await
    .unwrap();
    let c = DoClient::new(ApiConfig::new(sim.url(), "sim-token", 250)).unwrap();
    populate(&c).await;
    let d = state();
    sim.faults.reset_requests();
    let live = live(&c, &d).await;
    let requests = sim.faults.requests();
    // One list per kind, plus the records of one zone and the resources of one project.
    assert_eq!(requests.len(), 10, "{requests:#?}");
    let (plan, report) = plan::plan(&d, &Ledger::default(), &live).unwrap();
    for c in &plan.changes {
        assert_eq!(
            c.action,
            Action::Adopt,
            "{}: {:?} {:#?}",
            c.address,
            c.action,
            c.fields
        );
        assert!(c.fields.is_empty(), "{}: {:#?}", c.address, c.fields);
    }
    assert_eq!(plan.changes.len(), d.resources.len());
    assert!(
        report
            .notes
            .iter()
            .all(|n| !n.subject.starts_with("digitalocean.vpc")),
        "{:?}",
        report.notes
    );
}

#[tokio::test]
async fn hand_edits_show_as_the_right_field_changes() {
    let sim = DoSim::start(DoConfig {
        provisioning: Duration::from_millis(10),
        ..DoConfig::default()
    })
    .await
    .unwrap();
    let c = DoClient::new(ApiConfig::new(sim.url(), "sim-token", 250)).unwrap();
    populate(&c).await;
    assert!(sim.scale_node_pool("prod", "workers", 5));
    assert!(sim.add_firewall_rule(
        "nodes",
        json!({"protocol": "tcp", "ports": "22", "sources": {"addresses": ["0.0.0.0/0"]}})
    ));
    assert!(sim.delete_record("example.com", "_dmarc", "TXT"));
    let d = state();
    let live = live(&c, &d).await;
    let (plan, _) = plan::plan(&d, &Ledger::default(), &live).unwrap();
    let by = |a: &str| {
        plan.changes
            .iter()
            .find(|c| c.address.to_string() == a)
            .unwrap()
    };
    let cluster = by("digitalocean.kubernetes_cluster.prod");
    assert_eq!(cluster.action, Action::Adopt);
    let paths: Vec<&str> = cluster.fields.iter().map(|f| f.path.as_ref()).collect();
    assert_eq!(paths, ["node_pools.workers.count"]);
    let fw = by("digitalocean.firewall.nodes");
    assert_eq!(
        fw.fields
            .iter()
            .map(|f| f.path.as_ref())
            .collect::<Vec<_>>(),
        ["inbound_rules[-]"],
        "only the rule added by hand, not the whole list"
    );
    assert_eq!(
        by("digitalocean.domain_record.dmarc").action,
        Action::Create
    );
}

#[tokio::test]
async fn a_kind_that_cannot_be_listed_is_failed_not_empty() {
    let sim = DoSim::start(DoConfig::default()).await.unwrap();
    let mut config = ApiConfig::new(sim.url(), "sim-token", 250);
    config.max_retries = 1;
    config.min_backoff = Duration::from_millis(5);
    let c = DoClient::new(config).unwrap();
    sim.faults.inject(
        Some("GET"),
        "/v2/firewalls",
        Fault::Respond {
            status: 503,
            body: r#"{"id":"server_error","message":"Server Error"}"#.into(),
            headers: vec![],
        },
        None,
    );
    let d = state();
    let live = live(&c, &d).await;
    assert!(matches!(
        live.kinds["digitalocean.firewall"].status,
        ObserveStatus::Failed(_)
    ));
    assert!(matches!(
        live.kinds["digitalocean.vpc"].status,
        ObserveStatus::Complete
    ));
    let (plan, report) = plan::plan(&d, &Ledger::default(), &live).unwrap();
    assert!(
        plan.changes.iter().all(|c| c.address.kind() != "firewall"),
        "nothing planned for firewalls"
    );
    assert!(
        report
            .unobserved
            .iter()
            .any(|u| u.kind == "digitalocean.firewall" && u.reason.contains("503")),
        "{:?}",
        report.unobserved
    );
}

/// Bodies a list endpoint may answer with a 200 that are not the list it documents: each
/// (body, content type) for a list under `key`.
fn malformed_lists(key: &str) -> Vec<(String, &'static str)> {
    vec![
        ("{}".to_string(), "application/json"),
        (format!(r#"{{"{key}": {{}}}}"#), "application/json"),
        (format!(r#"{{"{key}": "none"}}"#), "application/json"),
        (format!(r#"{{"{key}": [1, 2]}}"#), "application/json"),
        ("[]".to_string(), "application/json"),
        ("<html>Bad gateway</html>".to_string(), "application/json"),
        (format!(r#"{{"{key}": [{{"id": "a"#), "application/json"),
        (
            format!(r#"{{"{key}": [], "links": {{}}, "meta": {{"total": 0}}}}"#),
            "text/html",
        ),
        (String::new(), "application/json"),
    ]
}

#[tokio::test]
async fn a_list_answered_with_anything_but_the_list_is_not_observed_and_nothing_is_created() {
    let sim = DoSim::start(DoConfig {
        provisioning: Duration::from_millis(10),
        per_minute: 100_000,
        per_hour: 100_000,
        ..DoConfig::default()
    })
    .await
    .unwrap();
    // A client per case: each has its own budget, CDN calls included (5 per 10 s).
    let client = || {
        let mut config = ApiConfig::new(sim.url(), "sim-token", 10_000);
        config.max_retries = 1;
        config.min_backoff = Duration::from_millis(5);
        DoClient::new(config).unwrap()
    };
    let c = client();
    populate(&c).await;
    let project = c
        .list("/v2/projects", "projects")
        .await
        .unwrap()
        .into_iter()
        .find(|p| p["name"] == "platform")
        .unwrap();
    let project_resources = format!("/v2/projects/{}/resources", project["id"].as_str().unwrap());
    let d = state();
    // Every list observing makes: (path, envelope key, the kind it fails).
    let lists = [
        ("/v2/vpcs", "vpcs", "digitalocean.vpc"),
        (
            "/v2/kubernetes/clusters",
            "kubernetes_clusters",
            "digitalocean.kubernetes_cluster",
        ),
        (
            "/v2/load_balancers",
            "load_balancers",
            "digitalocean.load_balancer",
        ),
        ("/v2/firewalls", "firewalls", "digitalocean.firewall"),
        ("/v2/domains", "domains", "digitalocean.domain"),
        (
            "/v2/domains/example.com/records",
            "domain_records",
            "digitalocean.domain_record",
        ),
        (
            "/v2/cdn/endpoints",
            "endpoints",
            "digitalocean.cdn_endpoint",
        ),
        ("/v2/spaces/keys", "keys", "digitalocean.spaces_key"),
        ("/v2/projects", "projects", "digitalocean.project"),
        (
            project_resources.as_str(),
            "resources",
            "digitalocean.project",
        ),
    ];
    let mut cases = 0;
    for (path, key, kind) in lists {
        for (body, content_type) in malformed_lists(key) {
            sim.faults.clear();
            sim.faults.inject(
                Some("GET"),
                path,
                Fault::Respond {
                    status: 200,
                    body: body.clone(),
                    headers: vec![("content-type".into(), content_type.into())],
                },
                None,
            );
            let live = live(&client(), &d).await;
            let what = format!("GET {path} answered 200 {body:?} ({content_type})");
            // The whole kind, or (for records, listed per zone) the zone's scope.
            assert!(
                matches!(live.kinds[kind].status, ObserveStatus::Failed(_))
                    || !live.kinds[kind].failed_scopes.is_empty(),
                "{what}: {kind} was believed: {:?}",
                live.kinds[kind].status
            );
            let (plan, report) = plan::plan(&d, &Ledger::default(), &live).unwrap();
            assert!(
                plan.changes
                    .iter()
                    .filter(|c| c.address.to_string().starts_with(&format!("{kind}.")))
                    .all(|c| c.action == Action::Conflict || !c.action.acts()),
                "{what}: changes planned for {kind}: {:#?}",
                plan.changes
            );
            assert!(
                report.unobserved.iter().any(|u| u.kind == kind),
                "{what}: {:?}",
                report.unobserved
            );
            assert!(
                report
                    .unobserved
                    .iter()
                    .all(|u| !u.reason.contains("Bad gateway")),
                "the body is never quoted"
            );
            cases += 1;
        }
    }
    assert_eq!(cases, 90);
    // With the faults gone, everything is observed again and adopted as before.
    sim.faults.clear();
    let live = live(&client(), &d).await;
    assert!(
        live.kinds
            .values()
            .all(|k| matches!(k.status, ObserveStatus::Complete))
    );
}
