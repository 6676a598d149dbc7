//! The realism inventory (`docs/testing.md`), one test per row: the simulators answer the
//! way the clouds do (refusals, rewrites on read, their own order, TTL rectification,
//! percent-decoding), and the providers normalise both ways so that one apply converges and
//! the next plan is empty. Each test fails when the provider's normalisation is removed.

use crate::support;

use std::time::Duration;

use provisioner::desired::{self, DesiredState};
use provisioner::exec::apply_sequential;
use provisioner::ledger::Ledger;
use provisioner::ledger::fingerprint::FingerprintKey;
use provisioner::live::LiveState;
use provisioner::plan::{self, Plan};
use provisioner::providers::Clouds;
use provisioner::providers::aws::AwsProvider;
use provisioner::providers::digitalocean::{ApiConfig, DoClient, DoProvider};
use provisioner::providers::github::{GhApiConfig, GhClient, GhProvider};
use provisioner::sim::aws::AwsSim;
use provisioner::sim::digitalocean::{DoConfig, DoSim};
use provisioner::sim::github::{GhConfig, GhSim};
use provisioner::sim::ses::{SesConfig, SesSim};
use serde_json::{Value, json};

/// Every simulator, and the three providers pointed at them (AWS at the project's own
/// simulator, SES at the SES simulator so its exchanges can be read).
struct World {
    clouds: Clouds,
    do_sim: DoSim,
    gh_sim: GhSim,
    ses_sim: SesSim,
    _aws_sim: AwsSim,
    dir: tempfile::TempDir,
    key: FingerprintKey,
}

fn aws_config(url: &str) -> aws_config::SdkConfig {
    support::moto::aws_config_at(url)
}

async fn world() -> World {
    let do_sim = DoSim::start(DoConfig {
        provisioning: Duration::from_millis(200),
        ..DoConfig::default()
    })
    .await
    .unwrap();
    let gh_sim = GhSim::start(GhConfig::default()).await.unwrap();
    let ses_sim = SesSim::start(SesConfig::default()).await.unwrap();
    let aws_sim = AwsSim::start("us-east-1").await.unwrap();
    let mut gh = GhApiConfig::new(gh_sim.url(), "sim-gh-token");
    gh.write_gap = Duration::ZERO;
    let mut do_api = ApiConfig::new(do_sim.url(), "sim-token", 250);
    do_api.min_backoff = Duration::from_millis(20);
    let clouds = Clouds::new(
        Ok(DoProvider {
            client: DoClient::new(do_api).unwrap(),
            spaces: None,
            poll_every: Duration::from_millis(50),
        }),
        Ok(GhProvider::new(GhClient::new(gh).unwrap())),
        Ok(AwsProvider::new(
            &aws_config(aws_sim.url()),
            &aws_config(ses_sim.url()),
        )),
    );
    World {
        clouds,
        do_sim,
        gh_sim,
        ses_sim,
        _aws_sim: aws_sim,
        dir: tempfile::tempdir().unwrap(),
        key: FingerprintKey::new(b"fidelity-test-fingerprint-key-01".to_vec()).unwrap(),
    }
}

impl World {
    fn state(&self, text: &str) -> DesiredState {
        let dir = self.dir.path().join("desired");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("main.toml"), text).unwrap();
        let mut d = desired::load(&dir).unwrap_or_else(|e| panic!("{e}"));
        desired::secrets::fingerprint_all(&mut d, &self.key).unwrap();
        d
    }

    async fn live(&self, d: &DesiredState, l: &Ledger) -> LiveState {
        self.clouds.observe(d, l).await
    }

    async fn plan(&self, d: &DesiredState, ledger: &Ledger) -> Plan {
        let l = self.live(d, ledger).await;
        plan::plan(d, ledger, &l).unwrap().0
    }

    async fn converge(&self, d: &DesiredState, ledger: &mut Ledger) -> Plan {
        let l = self.live(d, ledger).await;
        let (plan, _) = plan::plan(d, ledger, &l).unwrap();
        let outcomes = apply_sequential(&plan, d, ledger, &l, &self.clouds, Some(&self.key)).await;
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

    /// One apply, then a plan that finds nothing to do.
    async fn converges(&self, text: &str) -> (DesiredState, Ledger) {
        let d = self.state(text);
        let mut ledger = Ledger::create();
        self.converge(&d, &mut ledger).await;
        let again = self.plan(&d, &ledger).await;
        assert!(acting(&again).is_empty(), "{}", describe(&again));
        (d, ledger)
    }
}

fn acting(plan: &Plan) -> Vec<String> {
    plan.changes
        .iter()
        .filter(|c| c.action.acts())
        .map(|c| format!("{} {}", c.action.as_str(), c.address))
        .collect()
}

fn describe(plan: &Plan) -> String {
    format!(
        "{:#?}",
        plan.changes
            .iter()
            .filter(|c| c.action.acts())
            .collect::<Vec<_>>()
    )
}

/// The validation errors of a desired state, as `validate` prints them.
fn errors(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.toml"), text).unwrap();
    match desired::load(dir.path()) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

async fn do_post(w: &World, path: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", w.do_sim.url()))
        .bearer_auth("sim-token")
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn records(w: &World, zone: &str) -> Vec<Value> {
    w.do_sim.edit(|s| s.records[zone].clone())
}

const ZONE: &str = r#"
[digitalocean.domain.main]
name = "example.org"
"#;

// ---- DigitalOcean: DNS records -------------------------------------------------------

#[tokio::test]
async fn the_simulator_refuses_a_host_name_without_the_final_dot() {
    let w = world().await;
    w.converges(ZONE).await;
    let (status, body) = do_post(
        &w,
        "/v2/domains/example.org/records",
        json!({"type": "CNAME", "name": "www", "data": "app.example-cdn.net"}),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body["id"], "unprocessable_entity");
    assert_eq!(body["message"], "Data needs to end with a dot (.)");
    let (status, body) = do_post(
        &w,
        "/v2/domains/example.org/records",
        json!({"type": "CNAME", "name": "www", "data": "app.example-cdn.net."}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // Stored, and read back, without the dot.
    assert_eq!(body["domain_record"]["data"], "app.example-cdn.net");
}

#[tokio::test]
async fn host_names_are_sent_fully_qualified_written_with_or_without_the_dot() {
    let w = world().await;
    let text = format!(
        "{ZONE}{}",
        r#"
[digitalocean.domain_record.www]
domain = "${digitalocean.domain.main.name}"
type = "CNAME"
name = "www"
data = "app.example-cdn.net"

[digitalocean.domain_record.mx]
domain = "${digitalocean.domain.main.name}"
type = "MX"
name = "bounce"
data = "feedback-smtp.us-east-1.amazonses.com."
priority = 10

[digitalocean.domain_record.srv]
domain = "${digitalocean.domain.main.name}"
type = "SRV"
name = "_imaps._tcp"
data = "mail.example.net"
priority = 0
weight = 1
port = 993
"#
    );
    w.converges(&text).await;
    let mut data: Vec<String> = records(&w, "example.org")
        .iter()
        .filter(|r| ["CNAME", "MX", "SRV"].contains(&r["type"].as_str().unwrap()))
        .map(|r| r["data"].as_str().unwrap().to_string())
        .collect();
    data.sort();
    assert_eq!(
        data,
        [
            "app.example-cdn.net",
            "feedback-smtp.us-east-1.amazonses.com",
            "mail.example.net"
        ]
    );
}

#[tokio::test]
async fn a_record_pointing_at_its_own_zone_reads_back_as_at_and_is_no_change() {
    let w = world().await;
    let text = format!(
        "{ZONE}{}",
        r#"
[digitalocean.domain_record.www]
domain = "${digitalocean.domain.main.name}"
type = "CNAME"
name = "www"
data = "example.org"

[digitalocean.domain_record.mx]
domain = "${digitalocean.domain.main.name}"
type = "MX"
name = "@"
data = "@"
priority = 10
"#
    );
    w.converges(&text).await;
    let rs = records(&w, "example.org");
    for t in ["CNAME", "MX"] {
        let r = rs.iter().find(|r| r["type"] == t).unwrap();
        assert_eq!(r["data"], "@", "{r}");
    }
}

#[tokio::test]
async fn the_simulator_gives_one_ttl_to_records_of_one_name_and_type() {
    let w = world().await;
    w.converges(ZONE).await;
    for ttl in [300, 600] {
        let (status, _) = do_post(
            &w,
            "/v2/domains/example.org/records",
            json!({"type": "TXT", "name": "@", "data": format!("v{ttl}"), "ttl": ttl}),
        )
        .await;
        assert_eq!(status, 201);
    }
    let ttls: Vec<Value> = records(&w, "example.org")
        .iter()
        .filter(|r| r["type"] == "TXT")
        .map(|r| r["ttl"].clone())
        .collect();
    assert_eq!(ttls, [json!(600), json!(600)]);
}

#[test]
fn validate_reports_records_of_one_name_and_type_with_different_ttls() {
    let text = r#"[digitalocean.domain_record.a]
domain = "example.org"
type = "TXT"
name = "@"
data = "v=spf1 -all"
ttl = 300

[digitalocean.domain_record.b]
domain = "example.org"
type = "TXT"
name = "@"
data = "google-site-verification=abc"
ttl = 3600
"#;
    let e = errors(text);
    assert!(e.contains("a.toml:13:7"), "{e}");
    assert!(
        e.contains("ttl 3600 differs from `digitalocean.domain_record.a`'s 300"),
        "{e}"
    );
    assert!(e.contains("digitalocean.domain_record.b.ttl"), "{e}");
    // The same TTL, or another type, is fine.
    assert_eq!(errors(&text.replace("3600", "300")), "");
    assert_eq!(
        errors(&text.replacen(
            "type = \"TXT\"",
            "type = \"CAA\"\nflags = 0\ntag = \"issue\"",
            1
        )),
        ""
    );
}

#[test]
fn validate_accepts_a_host_name_with_or_without_the_final_dot() {
    for data in ["app.example-cdn.net", "app.example-cdn.net.", "@"] {
        let text = format!(
            "[digitalocean.domain_record.r]\ndomain = \"example.org\"\ntype = \"CNAME\"\nname = \"www\"\ndata = \"{data}\"\n"
        );
        assert_eq!(errors(&text), "", "{data}");
    }
}

// ---- DigitalOcean: firewalls and load balancers ----------------------------------------

const FIREWALL: &str = r#"
[digitalocean.firewall.nodes]
name = "nodes"
tags = ["k8s-worker", "db"]

[[digitalocean.firewall.nodes.inbound_rules]]
protocol = "tcp"
ports = "443"
sources = { addresses = ["::/0", "0.0.0.0/0"] }

[[digitalocean.firewall.nodes.inbound_rules]]
protocol = "tcp"
ports = "22"
sources = { addresses = ["203.0.113.0/24"], tags = ["vpn", "bastion"] }

[[digitalocean.firewall.nodes.outbound_rules]]
protocol = "udp"
ports = "all"
destinations = { addresses = ["0.0.0.0/0", "::/0"] }

[[digitalocean.firewall.nodes.outbound_rules]]
protocol = "icmp"
destinations = { addresses = ["0.0.0.0/0", "::/0"] }
"#;

#[tokio::test]
async fn an_icmp_rule_reads_back_with_ports_0_and_is_no_change() {
    let w = world().await;
    w.converges(FIREWALL).await;
    let icmp = w.do_sim.edit(|s| s.firewalls[0]["outbound_rules"].clone());
    // Stored as written; the API's answers carry `ports: "0"` (checked through the list).
    assert!(
        icmp.as_array()
            .unwrap()
            .iter()
            .any(|r| r["protocol"] == "icmp")
    );
    let listed: Value = reqwest::Client::new()
        .get(format!("{}/v2/firewalls", w.do_sim.url()))
        .bearer_auth("sim-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rule = listed["firewalls"][0]["outbound_rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["protocol"] == "icmp")
        .cloned()
        .unwrap();
    assert_eq!(rule["ports"], "0");
}

#[tokio::test]
async fn firewall_rules_and_their_peers_in_another_order_are_no_change() {
    let w = world().await;
    let (d, ledger) = w.converges(FIREWALL).await;
    // The API answers in its own order, not the order written.
    let listed: Value = reqwest::Client::new()
        .get(format!("{}/v2/firewalls", w.do_sim.url()))
        .bearer_auth("sim-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let fw = &listed["firewalls"][0];
    assert_eq!(fw["inbound_rules"][0]["ports"], "22");
    assert_eq!(fw["tags"], json!(["db", "k8s-worker"]));
    // A real change is still one: a rule added by hand is removed.
    assert!(w.do_sim.add_firewall_rule(
        "nodes",
        json!({"protocol": "tcp", "ports": "8080", "sources": {"addresses": ["0.0.0.0/0"]}})
    ));
    let plan = w.plan(&d, &ledger).await;
    assert_eq!(acting(&plan), ["update digitalocean.firewall.nodes"]);
}

#[tokio::test]
async fn load_balancer_forwarding_rules_in_another_order_are_no_change() {
    let w = world().await;
    let text = r#"
[digitalocean.load_balancer.ingress]
name = "ingress"
region = "ams3"
tag = "k8s-worker"

[[digitalocean.load_balancer.ingress.forwarding_rules]]
entry_protocol = "https"
entry_port = 443
target_protocol = "https"
target_port = 30443
tls_passthrough = true

[[digitalocean.load_balancer.ingress.forwarding_rules]]
entry_protocol = "http"
entry_port = 80
target_protocol = "http"
target_port = 30080
"#;
    w.converges(text).await;
    let listed: Value = reqwest::Client::new()
        .get(format!("{}/v2/load_balancers", w.do_sim.url()))
        .bearer_auth("sim-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["load_balancers"][0]["forwarding_rules"][0]["entry_port"],
        80
    );
}

// ---- DigitalOcean: autoscaled node pools -----------------------------------------------

#[tokio::test]
async fn an_autoscaled_pool_without_count_starts_at_min_nodes_and_is_never_corrected() {
    let w = world().await;
    let text = r#"
[digitalocean.kubernetes_cluster.prod]
name = "prod"
region = "ams3"
version = "1.33"

[digitalocean.kubernetes_cluster.prod.node_pools.workers]
size = "s-2vcpu-4gb"
auto_scale = true
min_nodes = 2
max_nodes = 5
"#;
    let (d, ledger) = w.converges(text).await;
    let count = || {
        w.do_sim
            .edit(|s| s.clusters[0]["node_pools"][0]["count"].clone())
    };
    assert_eq!(count(), json!(2));
    assert!(w.do_sim.scale_node_pool("prod", "workers", 4));
    let plan = w.plan(&d, &ledger).await;
    assert!(acting(&plan).is_empty(), "{}", describe(&plan));
}

#[tokio::test]
async fn an_autoscaled_pools_count_is_its_initial_size_only() {
    let w = world().await;
    let text = r#"
[digitalocean.kubernetes_cluster.prod]
name = "prod"
region = "ams3"
version = "1.33"

[digitalocean.kubernetes_cluster.prod.node_pools.workers]
size = "s-2vcpu-4gb"
count = 3
auto_scale = true
min_nodes = 2
max_nodes = 5
"#;
    let (d, ledger) = w.converges(text).await;
    assert_eq!(
        w.do_sim
            .edit(|s| s.clusters[0]["node_pools"][0]["count"].clone()),
        json!(3)
    );
    // No `ignore_changes`: the autoscaler grows the pool, and nothing fights it.
    assert!(w.do_sim.scale_node_pool("prod", "workers", 4));
    let plan = w.plan(&d, &ledger).await;
    assert!(acting(&plan).is_empty(), "{}", describe(&plan));
    // A pool without auto_scale still needs its count.
    let e = errors(
        "[digitalocean.kubernetes_cluster.c]\nname = \"c\"\nregion = \"ams3\"\nversion = \"1.33\"\n\n[digitalocean.kubernetes_cluster.c.node_pools.p]\nsize = \"s-2vcpu-4gb\"\n",
    );
    assert!(e.contains("missing required field `count`"), "{e}");
}

// ---- GitHub ----------------------------------------------------------------------------

#[tokio::test]
async fn an_environment_with_a_space_in_its_name_is_found() {
    let w = world().await;
    w.gh_sim.create_repo("example-org/platform-apps");
    assert!(
        w.gh_sim
            .create_environment("example-org/platform-apps", "staging deploy")
    );
    let dir = w.dir.path().join("secret.txt");
    std::fs::write(&dir, "s3cr3t-value").unwrap();
    let text = format!(
        r#"
[github.environment_secret.token]
repository = "example-org/platform-apps"
environment = "staging deploy"
name = "DEPLOY_TOKEN"
value = {{ file = "{}" }}
"#,
        dir.display()
    );
    w.converges(&text).await;
    assert_eq!(
        w.gh_sim
            .secret(
                "example-org/platform-apps",
                Some("staging deploy"),
                "DEPLOY_TOKEN"
            )
            .unwrap(),
        b"s3cr3t-value"
    );
}

// ---- AWS: SES configuration sets -------------------------------------------------------

fn suppression(w: &World, name: &str) -> Option<Value> {
    w.ses_sim.edit(|s| {
        s.configuration_sets[name]
            .options
            .get("SuppressionOptions")
            .cloned()
    })
}

#[tokio::test]
async fn an_unset_suppression_list_sends_nothing_and_an_empty_one_disables() {
    let w = world().await;
    let unset = r#"
[aws.ses_configuration_set.main]
name = "example-mail"
"#;
    let (_, mut ledger) = w.converges(unset).await;
    // Nothing was sent: the set follows the account-level suppression list.
    assert_eq!(suppression(&w, "example-mail"), None);
    assert!(
        !w.ses_sim
            .exchanges()
            .iter()
            .any(|e| e.path.ends_with("/suppression-options")
                || e.request.get("SuppressionOptions").is_some()),
        "no suppression options sent"
    );
    // `[]` is an explicit "suppress nothing": a change, then converged.
    let d = w.state(&format!("{unset}suppressed_reasons = []\n"));
    let plan = w.plan(&d, &ledger).await;
    assert_eq!(
        acting(&plan),
        ["update aws.ses_configuration_set.main"],
        "{}",
        describe(&plan)
    );
    w.converge(&d, &mut ledger).await;
    assert_eq!(
        suppression(&w, "example-mail"),
        Some(json!({"SuppressedReasons": []}))
    );
    let again = w.plan(&d, &ledger).await;
    assert!(acting(&again).is_empty(), "{}", describe(&again));
    // Reasons in another order than SES keeps them are no change.
    let d = w.state(&format!(
        "{unset}suppressed_reasons = [\"COMPLAINT\", \"BOUNCE\"]\n"
    ));
    w.converge(&d, &mut ledger).await;
    let again = w.plan(&d, &ledger).await;
    assert!(acting(&again).is_empty(), "{}", describe(&again));
}

#[tokio::test]
async fn event_types_in_another_order_are_no_change() {
    let w = world().await;
    let text = r#"
[aws.sns_topic.events]
name = "ses-events"

[aws.ses_configuration_set.main]
name = "example-mail"

[aws.ses_configuration_set.main.event_destinations.bounces]
matching_event_types = ["COMPLAINT", "BOUNCE", "DELIVERY"]
sns_topic_arn = "${aws.sns_topic.events.arn}"
"#;
    w.converges(text).await;
    let kept = w.ses_sim.edit(|s| {
        s.configuration_sets["example-mail"].destinations["bounces"]["MatchingEventTypes"].clone()
    });
    // SES keeps them as a set: in its own order, not the order written.
    assert_eq!(kept, json!(["BOUNCE", "COMPLAINT", "DELIVERY"]));
}
