//! Property tests: random desired states, planned against whatever a random earlier desired
//! state left behind (ledger and cloud), with random hand edits and deletions in between,
//! converge in one apply of the real executor and never delete anything without `prune`.

use proptest::prelude::*;

use provisioner::desired::kinds::Kind;
use provisioner::desired::{self, DesiredState};
use provisioner::ledger::Ledger;
use provisioner::plan::invariants::check_plan_invariants;
use provisioner::plan::{self, Action};
use provisioner::sim::fake::FakeCloud;

#[derive(Clone, Debug)]
enum Res {
    Vpc {
        addr: u8,
        name: u8,
        region: u8,
    },
    Domain {
        addr: u8,
        name: u8,
    },
    Record {
        addr: u8,
        domain: u8,
        data: u8,
        ttl: u16,
    },
    Variable {
        addr: u8,
        name: u8,
        vpc: Option<u8>,
    },
}

fn res() -> impl Strategy<Value = Res> {
    prop_oneof![
        (0..4u8, 0..4u8, 0..2u8).prop_map(|(addr, name, region)| Res::Vpc { addr, name, region }),
        (0..3u8, 0..3u8).prop_map(|(addr, name)| Res::Domain { addr, name }),
        (0..4u8, 0..3u8, 0..3u8, 30..40u16).prop_map(|(addr, domain, data, ttl)| Res::Record {
            addr,
            domain,
            data,
            ttl
        }),
        (0..3u8, 0..3u8, proptest::option::of(0..4u8))
            .prop_map(|(addr, name, vpc)| Res::Variable { addr, name, vpc }),
    ]
}

/// Renders resources as TOML, dropping ones whose reference target is absent or duplicated.
fn toml(items: &[Res], prune: bool, prefix: &str) -> String {
    let mut out = format!("[settings]\nprune = {prune}\n\n");
    let mut seen = std::collections::BTreeSet::new();
    let mut names = std::collections::BTreeSet::new();
    let mut domains = std::collections::BTreeSet::new();
    let mut vpcs = std::collections::BTreeSet::new();
    // Referenced kinds first, so references only name what was actually emitted.
    let mut items = items.to_vec();
    items.sort_by_key(|r| matches!(r, Res::Record { .. } | Res::Variable { .. }));
    for r in &items {
        let (address, body, identity) = match r {
            Res::Vpc { addr, name, region } => (
                format!("digitalocean.vpc.{prefix}{addr}"),
                format!(
                    "name = \"vpc-{name}\"\nregion = \"{}\"\n",
                    ["nyc3", "sfo3"][*region as usize]
                ),
                format!("vpc-{name}"),
            ),
            Res::Domain { addr, name } => (
                format!("digitalocean.domain.d{addr}"),
                format!("name = \"d{name}.example.com\"\n"),
                format!("d{name}"),
            ),
            Res::Record {
                addr,
                domain,
                data,
                ttl,
            } => {
                if !domains.contains(domain) {
                    continue;
                }
                (
                    format!("digitalocean.domain_record.r{addr}"),
                    format!(
                        "domain = \"${{digitalocean.domain.d{domain}.name}}\"\ntype = \"TXT\"\nname = \"r{addr}\"\ndata = \"v{data}\"\nttl = {ttl}\n"
                    ),
                    format!("r{addr}-{domain}-{data}"),
                )
            }
            Res::Variable { addr, name, vpc } => {
                let value = match vpc {
                    Some(v) if vpcs.contains(v) => {
                        format!("${{digitalocean.vpc.{prefix}{v}.name}}")
                    }
                    _ => "plain".to_string(),
                };
                (
                    format!("github.actions_variable.v{addr}"),
                    format!("repository = \"o/r\"\nname = \"V{name}\"\nvalue = \"{value}\"\n"),
                    format!("V{name}"),
                )
            }
        };
        if !seen.insert(address.clone()) || !names.insert(identity) {
            continue;
        }
        match r {
            Res::Vpc { addr, .. } => {
                vpcs.insert(*addr);
            }
            Res::Domain { addr, .. } => {
                domains.insert(*addr);
            }
            _ => {}
        }
        out.push_str(&format!("[{address}]\n{body}\n"));
    }
    out
}

fn load(text: &str) -> DesiredState {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("a.toml"), text).expect("write");
    desired::load(dir.path()).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    #[test]
    fn random_states_converge_in_one_apply_and_never_delete_without_prune(
        before in proptest::collection::vec(res(), 0..8),
        after in proptest::collection::vec(res(), 0..8),
        prune in any::<bool>(),
        vanish in proptest::collection::vec(any::<bool>(), 8),
        edit in proptest::collection::vec(any::<bool>(), 8),
        prefix in prop_oneof![Just("a"), Just("b")],
    ) {
        // What an earlier desired state left behind.
        let first = load(&toml(&before, false, "a"));
        let mut ledger = Ledger::new("l");
        let mut cloud = FakeCloud::default();
        let (p, _) = plan::plan(&first, &ledger, &cloud.live()).expect("plan");
        cloud.apply_plan_blocking(&p, &first, &mut ledger, None).expect("apply");

        // Hands in the console: objects deleted, fields edited.
        let mut i = 0;
        for kind in [Kind::DoVpc, Kind::DoDomain, Kind::DoDomainRecord, Kind::GhActionsVariable] {
            let ids: Vec<String> = cloud.live().objects(kind).iter().map(|o| o.id.clone()).collect();
            for id in ids {
                if vanish[i % 8] && edit[(i + 3) % 8] {
                    cloud.remove(kind, &id);
                } else if edit[i % 8]
                    && let Some(o) = cloud.object_mut(kind, &id) {
                        if kind == Kind::DoDomainRecord { o.fields.insert("ttl".into(), 99.into()); }
                        if kind == Kind::GhActionsVariable { o.fields.insert("value".into(), "edited".into()); }
                    }
                i += 1;
            }
        }

        let second = load(&toml(&after, prune, prefix));
        let (p, _) = plan::plan(&second, &ledger, &cloud.live()).expect("plan");
        if let Err(problems) = check_plan_invariants(&p, &second, &ledger) {
            panic!("{}", problems.join("\n"));
        }
        if !prune {
            prop_assert!(p.changes.iter().all(|c| c.action != Action::Delete));
        }
        cloud.apply_plan_blocking(&p, &second, &mut ledger, None).expect("apply");
        let (again, _) = plan::plan(&second, &ledger, &cloud.live()).expect("plan");
        let acting: Vec<String> = again.changes.iter().filter(|c| c.action.acts()).map(|c| format!("{} {:?} {:?}", c.address, c.action, c.fields)).collect();
        prop_assert!(acting.is_empty(), "not converged: {:?}", acting);
        // Every desired resource exists exactly once in the cloud.
        for r in second.resources.values() {
            let id = &ledger.resources[&r.address].id;
            prop_assert_eq!(cloud.live().objects(r.kind()).iter().filter(|o| &o.id == id).count(), 1);
        }
    }
}
