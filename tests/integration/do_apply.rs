//! The DigitalOcean provider end to end against the simulator: a desired state converges in
//! one apply and re-plans empty; hand edits are detected and corrected; an autoscaled pool's
//! count is never fought; a create whose answer is lost makes no duplicate. Spaces buckets go
//! to moto standing in for the Spaces S3 endpoint.

use crate::support;

use std::time::Duration;

use provisioner::desired::{self, DesiredState};
use provisioner::exec::apply_sequential;
use provisioner::ledger::Ledger;
use provisioner::live::LiveState;
use provisioner::plan::{self, Action, Plan};
use provisioner::providers::digitalocean::{ApiConfig, DoClient, DoProvider};
use provisioner::providers::{ObserveScope, Provider};
use provisioner::sim::Fault;
use provisioner::sim::digitalocean::{DoConfig, DoSim};
use serde_json::json;

const DESIRED: &str = r#"
[digitalocean.vpc.main]
name = "prod-ams3"
region = "ams3"
ip_range = "10.10.0.0/20"

[digitalocean.kubernetes_cluster.prod]
name = "prod"
region = "ams3"
version = "1.32"
vpc_uuid = "${digitalocean.vpc.main.id}"
tags = ["env:prod"]
kubeconfig_expiry = "1d"

[digitalocean.kubernetes_cluster.prod.maintenance_policy]
start_time = "03:00"
day = "sunday"

[digitalocean.kubernetes_cluster.prod.node_pools.workers]
size = "s-4vcpu-8gb"
count = 3
labels = { role = "worker" }

[digitalocean.kubernetes_cluster.prod.node_pools.batch]
size = "s-2vcpu-4gb"
count = 2
auto_scale = true
min_nodes = 1
max_nodes = 5

[digitalocean.kubernetes_cluster.prod.lifecycle]
ignore_changes = ["node_pools.batch.count"]

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

[digitalocean.domain_record.apex]
domain = "${digitalocean.domain.main.name}"
type = "A"
name = "@"
data = "${digitalocean.load_balancer.ingress.ip}"
ttl = 300

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
resources = ["${digitalocean.vpc.main.urn}", "${digitalocean.kubernetes_cluster.prod.urn}", "${digitalocean.load_balancer.ingress.urn}"]
"#;

fn state(text: &str) -> DesiredState {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("do.toml"), text).unwrap();
    desired::load(dir.path()).unwrap_or_else(|e| panic!("{e}"))
}

async fn setup() -> (DoSim, DoProvider) {
    let sim = DoSim::start(DoConfig {
        provisioning: Duration::from_millis(300),
        ..DoConfig::default()
    })
    .await
    .unwrap();
    let mut config = ApiConfig::new(sim.url(), "sim-token", 250);
    config.min_backoff = Duration::from_millis(20);
    let provider = DoProvider {
        client: DoClient::new(config).unwrap(),
        spaces: None,
        poll_every: Duration::from_millis(50),
    };
    (sim, provider)
}

async fn live(p: &DoProvider, d: &DesiredState, l: &Ledger) -> LiveState {
    let mut live = LiveState::default();
    for (kind, obs) in p.observe(&ObserveScope::new(d, l)).await {
        live.kinds.insert(kind.key().to_string(), obs);
    }
    live
}

async fn converge(p: &DoProvider, d: &DesiredState, ledger: &mut Ledger) -> Plan {
    let l = live(p, d, ledger).await;
    let (plan, _) = plan::plan(d, ledger, &l).unwrap();
    let outcomes = apply_sequential(&plan, d, ledger, &l, p, None).await;
    for o in &outcomes {
        assert!(
            o.result.is_ok(),
            "{} {:?}: {:?}",
            o.address,
            o.action,
            o.result
        );
    }
    plan
}

/// A fresh observe and plan finds nothing to do.
async fn assert_converged(p: &DoProvider, d: &DesiredState, ledger: &Ledger) {
    let l = live(p, d, ledger).await;
    let (again, _) = plan::plan(d, ledger, &l).unwrap();
    assert!(acting(&again).is_empty(), "{:?}", acting(&again));
}

fn acting(plan: &Plan) -> Vec<String> {
    plan.changes
        .iter()
        .filter(|c| c.action.acts())
        .map(|c| format!("{} {}", c.action.as_str(), c.address))
        .collect()
}

#[tokio::test]
async fn a_desired_state_converges_in_one_apply_and_replans_empty() {
    let (sim, p) = setup().await;
    let d = state(DESIRED);
    let mut ledger = Ledger::create();
    let first = converge(&p, &d, &mut ledger).await;
    assert_eq!(acting(&first).len(), d.resources.len());
    assert!(first.changes.iter().all(|c| c.action == Action::Create));
    let l = live(&p, &d, &ledger).await;
    let (again, _) = plan::plan(&d, &ledger, &l).unwrap();
    assert!(
        acting(&again).is_empty(),
        "{:#?}",
        again
            .changes
            .iter()
            .filter(|c| c.action.acts())
            .collect::<Vec<_>>()
    );
    // The references were filled in from what the creates returned.
    let apex = sim.edit(|s| {
        s.records["example.com"]
            .iter()
            .find(|r| r["type"] == "A")
            .cloned()
            .unwrap()
    });
    let lb_ip = sim.edit(|s| s.load_balancers[0]["ip"].clone());
    assert_eq!(apex["data"], lb_ip);
    let assigned = sim.edit(|s| s.project_resources.values().next().map(Vec::len));
    assert_eq!(assigned, Some(3));
    // The kubeconfig's token lives as long as the desired state says.
    assert!(
        sim.faults
            .requests()
            .iter()
            .any(|r| r.ends_with("/kubeconfig?expiry_seconds=86400")),
        "{:#?}",
        sim.faults.requests()
    );
    assert!(ledger.pending.is_empty());
}

#[tokio::test]
async fn hand_edits_are_detected_and_corrected() {
    let (sim, p) = setup().await;
    let d = state(DESIRED);
    let mut ledger = Ledger::create();
    converge(&p, &d, &mut ledger).await;
    assert!(sim.scale_node_pool("prod", "workers", 5));
    assert!(sim.add_firewall_rule(
        "nodes",
        json!({"protocol": "tcp", "ports": "22", "sources": {"addresses": ["0.0.0.0/0"]}})
    ));
    assert!(sim.delete_record("example.com", "_dmarc", "TXT"));
    sim.edit(|s| {
        s.load_balancers[0]["forwarding_rules"][0]["target_port"] = json!(8443);
    });
    let plan = converge(&p, &d, &mut ledger).await;
    let mut got = acting(&plan);
    got.sort();
    assert_eq!(
        got,
        [
            "create digitalocean.domain_record.dmarc",
            "update digitalocean.firewall.nodes",
            "update digitalocean.kubernetes_cluster.prod",
            "update digitalocean.load_balancer.ingress",
        ]
    );
    let cluster = plan
        .changes
        .iter()
        .find(|c| c.address.name() == "prod")
        .unwrap();
    assert_eq!(
        cluster
            .fields
            .iter()
            .map(|f| f.path.as_ref())
            .collect::<Vec<_>>(),
        ["node_pools.workers.count"]
    );
    assert_converged(&p, &d, &ledger).await;
    assert_eq!(
        sim.edit(|s| s.firewalls[0]["inbound_rules"].as_array().unwrap().len()),
        1
    );
}

#[tokio::test]
async fn the_autoscaler_owns_an_autoscaled_pools_count() {
    let (sim, p) = setup().await;
    let d = state(DESIRED);
    let mut ledger = Ledger::create();
    converge(&p, &d, &mut ledger).await;
    // The pool started at its `count` (2), the initial size.
    assert_eq!(
        sim.edit(|s| s.clusters[0]["node_pools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "batch")
            .unwrap()["count"]
            .clone()),
        json!(2)
    );
    assert!(sim.scale_node_pool("prod", "batch", 4));
    let l = live(&p, &d, &ledger).await;
    let (plan, _) = plan::plan(&d, &ledger, &l).unwrap();
    assert!(acting(&plan).is_empty(), "{:?}", acting(&plan));
    // With `auto_scale`, `count` is the initial size only: the autoscaler's size is not
    // drift, not even expected drift.
    let cluster = plan
        .changes
        .iter()
        .find(|c| c.address.name() == "prod")
        .unwrap();
    assert!(cluster.ignored.is_empty(), "{:?}", cluster.ignored);
}

#[tokio::test]
async fn a_create_whose_answer_is_lost_makes_no_duplicate() {
    let (sim, p) = setup().await;
    let d = state(DESIRED);
    // The firewall and the VPC are created, then the connection drops before the answers;
    // a record create gets a 500 after landing.
    sim.faults
        .inject(Some("POST"), "/v2/firewalls", Fault::Drop, Some(1));
    sim.faults
        .inject(Some("POST"), "/v2/vpcs", Fault::Drop, Some(1));
    let mut ledger = Ledger::create();
    converge(&p, &d, &mut ledger).await;
    assert_eq!(sim.edit(|s| s.firewalls.len()), 1);
    assert_eq!(sim.edit(|s| s.vpcs.len()), 1);
    assert_converged(&p, &d, &ledger).await;
}

#[tokio::test]
async fn a_version_change_upgrades_and_a_pool_resize_goes_through_the_pool() {
    let (sim, p) = setup().await;
    let mut ledger = Ledger::create();
    converge(&p, &state(DESIRED), &mut ledger).await;
    let newer = DESIRED
        .replace("version = \"1.32\"", "version = \"1.33\"")
        .replace("count = 3\nlabels", "count = 4\nlabels");
    let d = state(&newer);
    sim.faults.reset_requests();
    let plan = converge(&p, &d, &mut ledger).await;
    assert_eq!(
        acting(&plan),
        ["update digitalocean.kubernetes_cluster.prod"]
    );
    let requests = sim.faults.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("POST") && r.ends_with("/upgrade")),
        "{requests:#?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("PUT") && r.contains("/node_pools/"))
    );
    let version = sim.edit(|s| s.clusters[0]["version"].clone());
    assert!(version.as_str().unwrap().starts_with("1.33"));
    let l = live(&p, &d, &ledger).await;
    let (again, _) = plan::plan(&d, &ledger, &l).unwrap();
    assert!(acting(&again).is_empty(), "{:?}", acting(&again));
    // Going back down is a replacement the planner names, never a downgrade call.
    let (down, _) = plan::plan(&state(DESIRED), &ledger, &l).unwrap();
    let c = down
        .changes
        .iter()
        .find(|c| c.address.name() == "prod")
        .unwrap();
    assert_eq!(c.action, Action::Replace);
}

const BUCKET: &str = r#"
[digitalocean.spaces_bucket.assets]
name = "BUCKETNAME"
region = "ams3"
versioning = true

[[digitalocean.spaces_bucket.assets.cors_rules]]
allowed_origins = ["https://chat.example.com"]
allowed_methods = ["GET", "HEAD"]
max_age_seconds = 3000

[[digitalocean.spaces_bucket.assets.lifecycle_rules]]
id = "old-versions"
noncurrent_version_expiration_days = 30
abort_incomplete_multipart_upload_days = 7

[digitalocean.cdn_endpoint.assets]
origin = "${digitalocean.spaces_bucket.assets.bucket_domain_name}"
ttl = 3600
"#;

#[tokio::test]
async fn spaces_buckets_converge_through_the_s3_api_and_drift_is_corrected() {
    let (sim, mut p) = setup().await;
    p.spaces = Some(provisioner::providers::digitalocean::spaces::SpacesConfig {
        endpoint: Some(support::moto::endpoint().to_string()),
        access_key_id: "testing".into(),
        secret_access_key: "testing".into(),
    });
    let name = format!(
        "assets-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let d = state(&BUCKET.replace("BUCKETNAME", &name));
    let mut ledger = Ledger::create();
    let first = converge(&p, &d, &mut ledger).await;
    assert_eq!(acting(&first).len(), 2);
    let l = live(&p, &d, &ledger).await;
    let (again, _) = plan::plan(&d, &ledger, &l).unwrap();
    assert!(acting(&again).is_empty(), "{:#?}", again.changes);
    // The CDN endpoint's origin came from the bucket's attributes.
    let origin = sim.edit(|s| s.cdn_endpoints[0]["origin"].clone());
    assert_eq!(origin, json!(format!("{name}.ams3.digitaloceanspaces.com")));
    // Someone suspends versioning in the console.
    support::moto::client()
        .put_bucket_versioning()
        .bucket(&name)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Suspended)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let fixed = converge(&p, &d, &mut ledger).await;
    assert_eq!(
        acting(&fixed),
        ["update digitalocean.spaces_bucket.assets".to_string()]
    );
    let c = fixed
        .changes
        .iter()
        .find(|c| c.action == Action::Update)
        .unwrap();
    assert_eq!(
        c.fields.iter().map(|f| f.path.as_ref()).collect::<Vec<_>>(),
        ["versioning"]
    );
    assert_converged(&p, &d, &ledger).await;
}

#[tokio::test]
async fn without_spaces_credentials_buckets_are_unknown_not_absent() {
    let (_sim, p) = setup().await;
    let d = state(&BUCKET.replace("BUCKETNAME", "assets-nocreds"));
    let l = live(&p, &d, &Ledger::create()).await;
    let (plan, report) = plan::plan(&d, &Ledger::create(), &l).unwrap();
    assert!(
        plan.changes
            .iter()
            .all(|c| c.address.kind() != "spaces_bucket")
    );
    assert!(
        report
            .unobserved
            .iter()
            .any(|u| u.kind == "digitalocean.spaces_bucket"
                && u.reason.contains("SPACES_ACCESS_KEY_ID")),
        "{:?}",
        report.unobserved
    );
    assert!(!report.is_complete());
}

#[tokio::test]
async fn objects_carry_the_lineage_and_another_ledger_does_not_adopt_them() {
    let (sim, p) = setup().await;
    let d = state(DESIRED);
    let mut ours = Ledger::create();
    converge(&p, &d, &mut ours).await;
    let tag = provisioner::live::lineage_tag(&ours.lineage);
    let tags = sim.edit(|s| s.clusters[0]["tags"].clone());
    assert!(tags.as_array().unwrap().contains(&json!(tag)), "{tags}");
    // Our own ledger: still nothing to do (the tag is ours, and not a user tag).
    assert_converged(&p, &d, &ours).await;
    // A second ledger pointed at the same account finds the cluster by name, sees another
    // lineage, and reports instead of adopting.
    let theirs = Ledger::create();
    let l = live(&p, &d, &theirs).await;
    let (plan, _) = plan::plan(&d, &theirs, &l).unwrap();
    let c = plan
        .changes
        .iter()
        .find(|c| c.address.name() == "prod")
        .unwrap();
    assert_eq!(c.action, Action::Conflict);
    assert!(
        c.reason.as_deref().unwrap().contains(&ours.lineage),
        "{:?}",
        c.reason
    );
    let vpc = plan
        .changes
        .iter()
        .find(|c| c.address.kind() == "vpc")
        .unwrap();
    assert_eq!(
        vpc.action,
        Action::Conflict,
        "kinds without tags cannot prove whose they are, and are not adopted"
    );
    assert!(
        vpc.reason
            .as_deref()
            .unwrap()
            .contains("lifecycle.adopt = true"),
        "{:?}",
        vpc.reason
    );
}

#[tokio::test]
async fn a_non_empty_bucket_is_deleted_only_with_force_destroy() {
    let (_sim, mut p) = setup().await;
    p.spaces = Some(provisioner::providers::digitalocean::spaces::SpacesConfig {
        endpoint: Some(support::moto::endpoint().to_string()),
        access_key_id: "testing".into(),
        secret_access_key: "testing".into(),
    });
    let s3 = support::moto::client();
    for force in [false, true] {
        let name = format!("data-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let text = format!(
            "[settings]\nprune = true\n\n[digitalocean.spaces_bucket.data]\nname = \"{name}\"\nregion = \"ams3\"\nversioning = true\nforce_destroy = {force}\n"
        );
        let d = state(&text);
        let mut ledger = Ledger::create();
        converge(&p, &d, &mut ledger).await;
        // Two versions of one object: a versioned bucket holds more than its listing shows.
        for body in ["one", "two"] {
            s3.put_object()
                .bucket(&name)
                .key("backup.tar")
                .body(body.as_bytes().to_vec().into())
                .send()
                .await
                .unwrap();
        }
        // The bucket leaves the desired state; prune is on.
        let gone = state("[settings]\nprune = true\n");
        let l = live(&p, &gone, &ledger).await;
        let (plan, _) = plan::plan(&gone, &ledger, &l).unwrap();
        assert_eq!(acting(&plan), ["delete digitalocean.spaces_bucket.data"]);
        let outcomes = apply_sequential(&plan, &gone, &mut ledger, &l, &p, None).await;
        let exists = s3.head_bucket().bucket(&name).send().await.is_ok();
        if force {
            assert!(outcomes[0].result.is_ok(), "{:?}", outcomes[0].result);
            assert!(!exists, "emptied and deleted");
        } else {
            let e = outcomes[0].result.as_ref().unwrap_err();
            assert!(
                e.contains("not empty") && e.contains("force_destroy"),
                "{e}"
            );
            assert!(exists, "data is never deleted without force_destroy");
            assert!(
                ledger
                    .resources
                    .contains_key(&provisioner::desired::Address::new(
                        "digitalocean",
                        "spaces_bucket",
                        "data"
                    ))
            );
        }
    }
}
