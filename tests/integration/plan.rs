//! Planner scenarios: every plan passes the invariants, and plan → apply to the fake cloud
//! with the real executor → re-plan is empty (convergence). Rendered plans are snapshotted in
//! tests/output/.

use std::path::Path;

use provisioner::desired::kinds::Kind;
use provisioner::desired::values::SecretSource;
use provisioner::desired::{self, Address, DesiredState, Spec};
use provisioner::ledger::fingerprint::FingerprintKey;
use provisioner::ledger::{Intent, Ledger};
use provisioner::live::{KindObservation, LiveObject, LiveState, ObserveStatus};
use provisioner::plan::display::PlanDisplay;
use provisioner::plan::invariants::check_plan_invariants;
use provisioner::plan::{self, Action, Plan, PlanError, PlanReport};
use provisioner::sim::fake::FakeCloud;

fn worked_example() -> DesiredState {
    desired::load_with(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("desired-state"),
        &provisioner::desired::Inputs {
            environment: Some("production".into()),
            ..Default::default()
        },
    )
    .expect("worked example")
}

fn load(files: &[(&str, &str)]) -> DesiredState {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write");
    }
    desired::load(dir.path()).unwrap_or_else(|e| panic!("{e}"))
}

fn plan_checked(d: &DesiredState, l: &Ledger, live: &LiveState) -> (Plan, PlanReport) {
    let (p, r) = plan::plan(d, l, live).unwrap_or_else(|e| panic!("{e}"));
    if let Err(problems) = check_plan_invariants(&p, d, l) {
        panic!("plan invariants broken:\n{}", problems.join("\n"));
    }
    (p, r)
}

/// The fingerprint key the executor records secret values with in these tests.
fn key() -> FingerprintKey {
    FingerprintKey::new(b"a-test-key-of-at-least-16-bytes".to_vec()).expect("key")
}

/// `d` with every secret read from the environment read from a file of `dir` instead, named
/// after the variable: the executor reads secret values when it writes them, and a test
/// cannot set the environment (that is unsafe, and the crate forbids unsafe code).
fn env_from_files(d: &DesiredState, dir: &Path) -> DesiredState {
    let mut d = d.clone();
    for r in d.resources.values_mut() {
        let source = match &mut r.spec {
            Spec::GhActionsSecret(s) => &mut s.value.0,
            Spec::GhEnvironmentSecret(s) => &mut s.value.0,
            Spec::AwsSecretsmanagerSecret(s) => &mut s.value.0,
            _ => continue,
        };
        if let SecretSource::Env(name) = source {
            let file = dir.join(&*name);
            std::fs::write(&file, format!("the value of {name}")).expect("write");
            *source = SecretSource::File(file);
            r.spec_json = r.spec.to_json();
        }
    }
    d
}

/// Applies the plan to the fake cloud with the real executor and asserts the next plan is
/// empty.
fn converge(d: &DesiredState, ledger: &mut Ledger, cloud: &mut FakeCloud) -> Plan {
    let (p, _) = plan_checked(d, ledger, &cloud.live());
    let env = tempfile::tempdir().expect("temp dir");
    cloud
        .apply_plan_blocking(&p, &env_from_files(d, env.path()), ledger, Some(&key()))
        .unwrap_or_else(|e| panic!("{e}"));
    let (again, _) = plan_checked(d, ledger, &cloud.live());
    let acting: Vec<String> = again
        .changes
        .iter()
        .filter(|c| c.action.acts())
        .map(|c| format!("{} {:?} {:?}", c.address, c.action, c.fields))
        .collect();
    assert!(
        acting.is_empty(),
        "not converged after one apply:\n{}",
        acting.join("\n")
    );
    p
}

fn render(p: &Plan, r: &PlanReport) -> String {
    // Sources are cited by path: the checkout's own place is left out, so snapshots hold
    // `desired-state/...` wherever the tests run.
    PlanDisplay {
        plan: p,
        report: r,
        color: false,
        verbose: false,
    }
    .to_string()
    .replace(concat!(env!("CARGO_MANIFEST_DIR"), "/"), "")
}

fn addr(s: &str) -> Address {
    Address::parse(s).expect("address")
}

fn id_of(ledger: &Ledger, a: &str) -> String {
    ledger.resources[&addr(a)].id.clone()
}

fn action_of(p: &Plan, a: &str) -> Action {
    p.changes
        .iter()
        .find(|c| c.address == addr(a))
        .map_or(Action::NoOp, |c| c.action)
}

#[test]
fn the_worked_example_is_created_in_dependency_order_and_converges() {
    let d = worked_example();
    let mut ledger = Ledger::new("lineage-1");
    let mut cloud = FakeCloud::default();
    let p = converge(&d, &mut ledger, &mut cloud);
    assert_eq!(p.changes.len(), d.resources.len());
    assert!(p.changes.iter().all(|c| c.action == Action::Create));
    let wave = |a: &str| {
        p.changes
            .iter()
            .find(|c| c.address == addr(a))
            .expect("planned")
            .wave
    };
    assert_eq!(wave("digitalocean.vpc.prod"), 0);
    assert!(wave("digitalocean.kubernetes_cluster.prod") > wave("digitalocean.vpc.prod"));
    assert!(wave("digitalocean.firewall.nodes") > wave("digitalocean.load_balancer.ingress"));
    assert!(
        wave("module.mail.digitalocean.domain_record.dkim_1")
            > wave("module.mail.aws.ses_domain_identity.mail")
    );
    assert_eq!(ledger.resources.len(), d.resources.len());
}

#[test]
fn the_creation_plan_of_the_worked_example_renders_as_recorded() {
    let d = worked_example();
    let (p, r) = plan_checked(&d, &Ledger::default(), &LiveState::default());
    expectorate::assert_contents("tests/output/worked-example-create.txt", &render(&p, &r));
}

#[test]
fn drift_is_detected_with_field_diffs_and_corrected() {
    let d = worked_example();
    let mut ledger = Ledger::new("l");
    let mut cloud = FakeCloud::default();
    converge(&d, &mut ledger, &mut cloud);

    // The autoscaler grows the pool; someone edits the firewall and deletes a DNS record.
    let cluster = id_of(&ledger, "digitalocean.kubernetes_cluster.prod");
    let o = cloud
        .object_mut(Kind::DoKubernetesCluster, &cluster)
        .expect("cluster");
    o.fields["node_pools"]["workers"]["count"] = 5.into();
    let fw = id_of(&ledger, "digitalocean.firewall.nodes");
    cloud.object_mut(Kind::DoFirewall, &fw).expect("fw").fields["name"] = "renamed-by-hand".into();
    let rec = id_of(&ledger, "module.mail.digitalocean.domain_record.dmarc");
    cloud.remove(Kind::DoDomainRecord, &rec);

    let (p, r) = plan_checked(&d, &ledger, &cloud.live());
    let text = render(&p, &r);
    expectorate::assert_contents("tests/output/worked-example-drift.txt", &text);
    assert_eq!(
        action_of(&p, "digitalocean.kubernetes_cluster.prod"),
        Action::NoOp,
        "the autoscaler's count is not fought"
    );
    assert_eq!(action_of(&p, "digitalocean.firewall.nodes"), Action::Update);
    assert_eq!(
        action_of(&p, "module.mail.digitalocean.domain_record.dmarc"),
        Action::Create
    );
    // With `auto_scale`, `count` is the initial size only: not even expected drift.
    assert!(!text.contains("node_pools.workers.count"), "{text}");
    converge(&d, &mut ledger, &mut cloud);
}

const ONE_VPC: &str =
    "[digitalocean.vpc.main]\nname = \"prod\"\nregion = \"nyc3\"\nip_range = \"10.10.0.0/16\"\n";

#[test]
fn a_region_change_replaces_and_names_the_field() {
    let mut ledger = Ledger::default();
    let mut cloud = FakeCloud::default();
    converge(&load(&[("a.toml", ONE_VPC)]), &mut ledger, &mut cloud);
    let moved = load(&[("a.toml", &ONE_VPC.replace("nyc3", "sfo3"))]);
    let (p, r) = plan_checked(&moved, &ledger, &cloud.live());
    let c = &p.changes[0];
    assert_eq!(c.action, Action::Replace);
    assert!(
        c.fields
            .iter()
            .any(|f| f.path == "region" && f.forces_replacement)
    );
    let text = render(&p, &r);
    assert!(
        text.contains("-/+ digitalocean.vpc.main will be replaced (old one deleted first)")
            && text.contains("# forces replacement"),
        "{text}"
    );
    converge(&moved, &mut ledger, &mut cloud);
}

#[test]
fn prevent_destroy_turns_a_replacement_into_an_error_naming_it() {
    let mut ledger = Ledger::default();
    let mut cloud = FakeCloud::default();
    let protected = format!("{ONE_VPC}lifecycle = {{ prevent_destroy = true }}\n");
    converge(&load(&[("a.toml", &protected)]), &mut ledger, &mut cloud);
    let moved = load(&[("a.toml", &protected.replace("nyc3", "sfo3"))]);
    let err = plan::plan(&moved, &ledger, &cloud.live()).expect_err("protected");
    let PlanError::PreventDestroy(list) = &err;
    assert_eq!(list[0].0, addr("digitalocean.vpc.main"));
    assert!(
        err.to_string().contains("replacement forced by region"),
        "{err}"
    );
}

#[test]
fn removing_a_resource_orphans_it_unless_prune_is_on() {
    let two = format!("{ONE_VPC}\n[digitalocean.domain.d]\nname = \"example.com\"\n");
    let mut ledger = Ledger::default();
    let mut cloud = FakeCloud::default();
    converge(&load(&[("a.toml", &two)]), &mut ledger, &mut cloud);
    let one = load(&[("a.toml", ONE_VPC)]);
    let (p, r) = plan_checked(&one, &ledger, &cloud.live());
    assert_eq!(action_of(&p, "digitalocean.domain.d"), Action::Orphan);
    assert!(!p.has_changes());
    assert!(render(&p, &r).contains("prune is off"));
    let pruned = load(&[("a.toml", &format!("[settings]\nprune = true\n\n{ONE_VPC}"))]);
    let (p, _) = plan_checked(&pruned, &ledger, &cloud.live());
    assert_eq!(action_of(&p, "digitalocean.domain.d"), Action::Delete);
    converge(&pruned, &mut ledger, &mut cloud);
    assert!(cloud.live().objects(Kind::DoDomain).is_empty());
}

#[test]
fn deletes_run_dependants_first() {
    let chain = "[digitalocean.domain.d]\nname = \"example.com\"\n\n[digitalocean.domain_record.r]\ndomain = \"${digitalocean.domain.d.name}\"\ntype = \"TXT\"\nname = \"@\"\ndata = \"x\"\n";
    let mut ledger = Ledger::default();
    let mut cloud = FakeCloud::default();
    converge(
        &load(&[("a.toml", &format!("{ONE_VPC}\n{chain}"))]),
        &mut ledger,
        &mut cloud,
    );
    let pruned = load(&[("a.toml", &format!("[settings]\nprune = true\n\n{ONE_VPC}"))]);
    let (p, _) = plan_checked(&pruned, &ledger, &cloud.live());
    let wave = |a: &str| {
        p.changes
            .iter()
            .find(|c| c.address == addr(a))
            .expect("planned")
            .wave
    };
    assert!(wave("digitalocean.domain_record.r") < wave("digitalocean.domain.d"));
}

#[test]
fn a_kind_whose_observe_failed_gets_no_create_adopt_or_delete() {
    let d = load(&[(
        "a.toml",
        &format!(
            "[settings]\nprune = true\n\n{ONE_VPC}\n[digitalocean.domain.d]\nname = \"example.com\"\n"
        ),
    )]);
    let mut live = LiveState::default();
    live.kinds.insert(
        "digitalocean.domain".into(),
        KindObservation {
            status: ObserveStatus::Failed("429 too_many_requests".into()),
            objects: vec![],
            failed_scopes: Vec::new(),
        },
    );
    let (p, r) = plan_checked(&d, &Ledger::default(), &live);
    assert_eq!(action_of(&p, "digitalocean.vpc.main"), Action::Create);
    assert!(
        p.changes.iter().all(|c| c.address.kind() != "domain"),
        "{:?}",
        p.changes
    );
    assert!(!r.is_complete());
    let text = render(&p, &r);
    assert!(
        text.contains("Not observed (nothing of these kinds, or of these parts of them, is created, adopted or deleted")
            && text.contains("  - digitalocean.domain: 429 too_many_requests"),
        "{text}"
    );
    assert!(
        text.contains("Incomplete: 1 kind could not be observed"),
        "{text}"
    );
    assert!(!text.contains("No changes"), "{text}");
}

#[test]
fn detect_mode_reports_drift_and_plans_no_action() {
    let mut ledger = Ledger::default();
    let mut cloud = FakeCloud::default();
    converge(&load(&[("a.toml", ONE_VPC)]), &mut ledger, &mut cloud);
    let id = id_of(&ledger, "digitalocean.vpc.main");
    cloud.object_mut(Kind::DoVpc, &id).expect("vpc").fields["name"] = "hand-edited".into();
    let detect = load(&[(
        "a.toml",
        &format!("[settings]\nmode = \"detect\"\n\n{ONE_VPC}"),
    )]);
    let (p, _) = plan_checked(&detect, &ledger, &cloud.live());
    assert_eq!(action_of(&p, "digitalocean.vpc.main"), Action::Drift);
    assert!(!p.has_changes());
}

#[test]
fn an_object_found_by_name_is_adopted_not_duplicated() {
    let d = load(&[("a.toml", ONE_VPC)]);
    let mut live = LiveState::default();
    let mut fields = serde_json::Map::new();
    fields.insert("name".into(), "prod".into());
    fields.insert("region".into(), "nyc3".into());
    fields.insert("ip_range".into(), "10.10.0.0/16".into());
    live.kinds.insert(
        "digitalocean.vpc".into(),
        KindObservation {
            status: ObserveStatus::Complete,
            objects: vec![LiveObject {
                id: "vpc-existing".into(),
                fields,
                ..Default::default()
            }],
            failed_scopes: Vec::new(),
        },
    );
    let mut ledger = Ledger::default();
    ledger.pending.insert(
        addr("digitalocean.vpc.main"),
        Intent {
            kind: "digitalocean.vpc".into(),
            key: "prod".into(),
            at: None,
        },
    );
    let mut cloud = FakeCloud::new(live);
    let p = converge(&d, &mut ledger, &mut cloud);
    assert_eq!(p.changes[0].action, Action::Adopt);
    assert!(
        p.changes[0]
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("interrupted create")
    );
    assert_eq!(cloud.live().objects(Kind::DoVpc).len(), 1, "no duplicate");
    assert_eq!(id_of(&ledger, "digitalocean.vpc.main"), "vpc-existing");
    assert!(ledger.pending.is_empty());
}

/// An Actions secret whose value is the file `value` of `dir`.
fn secret_in(dir: &Path) -> String {
    format!(
        "[github.actions_secret.s]\nrepository = \"o/r\"\nname = \"TOKEN\"\nvalue = {{ file = \"{}\" }}\n",
        dir.join("value").display()
    )
}

#[test]
fn a_secret_changed_by_hand_is_rewritten_and_never_shown() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("value"), "first").expect("write");
    let mut d = load(&[("a.toml", &secret_in(dir.path()))]);
    desired::secrets::fingerprint_all(&mut d, &key()).expect("fingerprints");
    let mut ledger = Ledger::default();
    let mut cloud = FakeCloud::default();
    converge(&d, &mut ledger, &mut cloud);
    let id = id_of(&ledger, "github.actions_secret.s");
    cloud
        .object_mut(Kind::GhActionsSecret, &id)
        .expect("secret")
        .updated_at = Some("2026-02-01T00:00:00Z".into());
    let (p, r) = plan_checked(&d, &ledger, &cloud.live());
    assert_eq!(action_of(&p, "github.actions_secret.s"), Action::Update);
    assert!(render(&p, &r).contains("value : (sensitive) -> (sensitive)"));
    converge(&d, &mut ledger, &mut cloud);
    // A new desired value (a new fingerprint) is also an update.
    std::fs::write(dir.path().join("value"), "second").expect("write");
    desired::secrets::fingerprint_all(&mut d, &key()).expect("fingerprints");
    let (p, _) = plan_checked(&d, &ledger, &cloud.live());
    assert_eq!(action_of(&p, "github.actions_secret.s"), Action::Update);
}

#[test]
fn a_removed_resource_is_deleted_with_the_local_settings_its_ledger_entry_kept() {
    // `force_delete` is provisioner's own setting, which no cloud keeps: once the block is
    // gone, only the ledger entry the executor recorded still knows it.
    let secret = "[aws.secretsmanager_secret.s]\nname = \"app\"\nvalue = { generate = { length = 32 } }\nforce_delete = true\n";
    let mut ledger = Ledger::new("l");
    let mut cloud = FakeCloud::default();
    converge(&load(&[("a.toml", secret)]), &mut ledger, &mut cloud);
    let entry = &ledger.resources[&addr("aws.secretsmanager_secret.s")];
    assert_eq!(entry.options.get("force_delete"), Some(&true.into()));
    let pruned = load(&[("a.toml", "[settings]\nprune = true\n")]);
    converge(&pruned, &mut ledger, &mut cloud);
    assert!(
        cloud
            .live()
            .objects(Kind::AwsSecretsmanagerSecret)
            .is_empty()
    );
    let deletes: Vec<_> = cloud
        .requests()
        .into_iter()
        .filter(|r| r.action == Action::Delete)
        .collect();
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    assert_eq!(
        deletes[0].spec.as_ref().and_then(|s| s.get("force_delete")),
        Some(&true.into()),
        "the delete is asked with the setting: {deletes:?}"
    );
}

#[test]
fn an_update_made_for_another_field_leaves_an_ignored_field_as_someone_else_set_it() {
    let vpc = |name: &str| {
        format!(
            "[digitalocean.vpc.main]\nname = \"{name}\"\nregion = \"nyc3\"\ndescription = \"ours\"\nlifecycle = {{ ignore_changes = [\"description\"] }}\n"
        )
    };
    let mut ledger = Ledger::new("l");
    let mut cloud = FakeCloud::default();
    converge(&load(&[("a.toml", &vpc("prod"))]), &mut ledger, &mut cloud);
    let id = id_of(&ledger, "digitalocean.vpc.main");
    cloud.object_mut(Kind::DoVpc, &id).expect("vpc").fields["description"] = "theirs".into();
    let renamed = load(&[("a.toml", &vpc("production"))]);
    let (p, _) = plan_checked(&renamed, &ledger, &cloud.live());
    assert_eq!(action_of(&p, "digitalocean.vpc.main"), Action::Update);
    converge(&renamed, &mut ledger, &mut cloud);
    let live = cloud.live();
    let o = &live.objects(Kind::DoVpc)[0];
    assert_eq!(o.fields["name"], "production");
    assert_eq!(
        o.fields["description"], "theirs",
        "ignored, so never changed"
    );
}

fn cluster(version: &str, ha: bool) -> String {
    format!(
        "[digitalocean.kubernetes_cluster.k]\nname = \"k\"\nregion = \"nyc3\"\nversion = \"{version}\"\nha = {ha}\n\n[digitalocean.kubernetes_cluster.k.node_pools.w]\nsize = \"s-2vcpu-4gb\"\ncount = 2\n"
    )
}

#[test]
fn versions_upgrade_in_place_and_never_downgrade() {
    let mut ledger = Ledger::default();
    let mut cloud = FakeCloud::default();
    converge(
        &load(&[("a.toml", &cluster("1.32.5-do.0", false))]),
        &mut ledger,
        &mut cloud,
    );
    let up = load(&[("a.toml", &cluster("1.33.1-do.0", true))]);
    let (p, _) = plan_checked(&up, &ledger, &cloud.live());
    assert_eq!(
        action_of(&p, "digitalocean.kubernetes_cluster.k"),
        Action::Update
    );
    converge(&up, &mut ledger, &mut cloud);
    let minor = load(&[("a.toml", &cluster("1.33", true))]);
    let (p, _) = plan_checked(&minor, &ledger, &cloud.live());
    assert_eq!(
        action_of(&p, "digitalocean.kubernetes_cluster.k"),
        Action::NoOp,
        "1.33 is satisfied by 1.33.1-do.0"
    );
    let down = load(&[("a.toml", &cluster("1.32.5-do.0", false))]);
    let (p, _) = plan_checked(&down, &ledger, &cloud.live());
    let c = p
        .changes
        .iter()
        .find(|c| c.address == addr("digitalocean.kubernetes_cluster.k"))
        .expect("planned");
    assert_eq!(c.action, Action::Replace);
    assert!(
        c.fields.iter().filter(|f| f.forces_replacement).count() == 2,
        "{:?}",
        c.fields
    );
}

#[test]
fn the_json_plan_has_a_format_version_and_actions() {
    let d = worked_example();
    let (p, r) = plan_checked(&d, &Ledger::default(), &LiveState::default());
    let json = serde_json::to_value(serde_json::json!({ "format_version": p.format_version, "changes": p.changes, "notes": r.notes })).expect("json");
    assert_eq!(json["format_version"], 1);
    let changes = json["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 44);
    assert!(
        changes
            .iter()
            .all(|c| c["address"].is_string() && c["action"] == "create")
    );
}

#[test]
fn a_changed_rule_is_shown_alone_not_as_two_whole_lists() {
    let d = worked_example();
    let mut ledger = Ledger::new("l");
    let mut cloud = FakeCloud::default();
    converge(&d, &mut ledger, &mut cloud);

    // Someone opens SSH on the firewall and moves the LB's HTTPS rule to another port.
    let fw = id_of(&ledger, "digitalocean.firewall.nodes");
    let rules = cloud.object_mut(Kind::DoFirewall, &fw).expect("fw").fields["inbound_rules"]
        .as_array_mut()
        .expect("rules");
    let before = rules.len();
    rules.insert(
        0,
        serde_json::json!({"protocol": "tcp", "ports": "22", "sources": {"addresses": ["0.0.0.0/0"]}}),
    );
    let lb = id_of(&ledger, "digitalocean.load_balancer.ingress");
    let forwarding = cloud
        .object_mut(Kind::DoLoadBalancer, &lb)
        .expect("lb")
        .fields["forwarding_rules"]
        .as_array_mut()
        .expect("forwarding rules");
    let https = forwarding
        .iter_mut()
        .find(|r| r["entry_port"] == 443)
        .expect("the https rule");
    https["entry_port"] = 8443.into();

    let (p, r) = plan_checked(&d, &ledger, &cloud.live());
    let fields = |a: &str| -> Vec<String> {
        p.changes
            .iter()
            .find(|c| c.address.to_string() == a)
            .unwrap()
            .fields
            .iter()
            .map(|f| f.path.to_string())
            .collect()
    };
    assert_eq!(fields("digitalocean.firewall.nodes"), ["inbound_rules[-]"]);
    assert_eq!(
        fields("digitalocean.load_balancer.ingress"),
        ["forwarding_rules[+]", "forwarding_rules[-]"]
    );
    let text = render(&p, &r);
    let ssh = text
        .lines()
        .find(|l| l.contains("inbound_rules"))
        .expect("the firewall's line");
    assert!(
        ssh.trim_start().starts_with("inbound_rules - {") && ssh.contains("\"22\""),
        "{text}"
    );
    assert_eq!(
        text.matches("inbound_rules").count(),
        1,
        "only the rule that differs, not the {before} that match:\n{text}"
    );
    assert!(
        text.contains("forwarding_rules + {") && text.contains("8443"),
        "{text}"
    );
}

#[test]
fn objects_left_by_an_interrupted_replacement_are_deleted_with_the_change() {
    // The ledger records the VPC, and still holds the intent of a replacement that was
    // killed after making a second VPC of the same name: the second one is a leftover.
    let d = load(&[("a.toml", ONE_VPC)]);
    let mut ledger = Ledger::new("l");
    let mut cloud = FakeCloud::default();
    converge(&d, &mut ledger, &mut cloud);
    let kept = id_of(&ledger, "digitalocean.vpc.main");
    let mut copy = cloud.live().objects(Kind::DoVpc)[0].clone();
    copy.id = "vpc-left-by-a-kill".into();
    cloud
        .live_mut()
        .kinds
        .get_mut("digitalocean.vpc")
        .unwrap()
        .objects
        .push(copy);
    ledger.pending.insert(
        addr("digitalocean.vpc.main"),
        Intent {
            kind: "digitalocean.vpc".into(),
            key: "prod".into(),
            at: None,
        },
    );
    let (p, r) = plan_checked(&d, &ledger, &cloud.live());
    let c = &p.changes[0];
    assert_eq!(c.action, Action::Update, "{:?}", c);
    assert_eq!(c.cloud_id.as_deref(), Some(kept.as_str()));
    assert_eq!(c.leftovers, ["vpc-left-by-a-kill"]);
    assert!(render(&p, &r).contains("vpc-left-by-a-kill left by an interrupted create"));
    // Without the intent nothing proves the second one is this ledger's: left alone.
    ledger.pending.clear();
    let (p, _) = plan_checked(&d, &ledger, &cloud.live());
    assert!(
        p.changes
            .iter()
            .all(|c| c.leftovers.is_empty() && !c.action.acts())
    );
}

/// Edits every object of every kind in the cloud: the first field of each kind that changes
/// with `policy`, given another value of its type.
fn edit_every_kind(cloud: &mut FakeCloud, policy: provisioner::desired::schema::Change) -> usize {
    use serde_json::Value;
    let mut edited = 0;
    for kind in Kind::ALL {
        let Some(field) = provisioner::plan::planner::compared_fields(*kind)
            .iter()
            .find(|f| f.change == policy)
            .map(|f| f.name)
        else {
            continue;
        };
        let ids: Vec<String> = cloud
            .live()
            .objects(*kind)
            .iter()
            .map(|o| o.id.clone())
            .collect();
        for id in ids {
            let o = cloud.object_mut(*kind, &id).expect("object");
            let new = match o.fields.get(field) {
                Some(Value::String(s)) => Value::String(format!("{s}-edited")),
                Some(Value::Number(n)) => Value::from(n.as_i64().unwrap_or(0) + 7),
                Some(Value::Bool(b)) => Value::Bool(!b),
                _ => continue,
            };
            o.fields.insert(field.to_string(), new);
            edited += 1;
        }
    }
    edited
}

#[test]
fn every_kind_renders_its_update_replace_and_delete_as_recorded() {
    use provisioner::desired::schema::Change as Policy;
    let mut d = worked_example();
    let mut ledger = Ledger::new("l");
    let mut cloud = FakeCloud::default();
    converge(&d, &mut ledger, &mut cloud);

    // Each kind edited by hand in a field it updates in place, then in one that replaces.
    for (policy, file) in [
        (Policy::Update, "tests/output/every-kind-update.txt"),
        (Policy::Replace, "tests/output/every-kind-replace.txt"),
    ] {
        let mut edited = cloud.clone();
        assert!(edit_every_kind(&mut edited, policy) > 10);
        d.allow_destroy = d.resources.keys().cloned().collect();
        let (p, r) = plan_checked(&d, &ledger, &edited.live());
        expectorate::assert_contents(file, &render(&p, &r));
    }

    // Every block removed, with prune and the protections overridden.
    let mut gone = load(&[("settings.toml", "[settings]\nprune = true\n")]);
    gone.allow_destroy = ledger.resources.keys().cloned().collect();
    let (p, r) = plan_checked(&gone, &ledger, &cloud.live());
    let kinds: std::collections::BTreeSet<&str> = p
        .changes
        .iter()
        .filter(|c| c.action == Action::Delete)
        .map(|c| c.address.kind())
        .collect();
    assert_eq!(
        kinds.len(),
        provisioner::desired::Kind::ALL.len(),
        "every kind is deleted: {kinds:?}"
    );
    expectorate::assert_contents("tests/output/every-kind-delete.txt", &render(&p, &r));
}
