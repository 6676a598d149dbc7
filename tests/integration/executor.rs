//! The executor with an in-process provider that records what it is asked: concurrency stays
//! within the per-provider bound, a create's intent is persisted before the create starts,
//! a failure skips its dependants and nothing else, and a stop request lets what is in
//! flight finish and starts nothing more.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use provisioner::desired::{self, DesiredState, Kind};
use provisioner::exec::engine::NoProgress;
use provisioner::exec::{ExecOptions, Persist, execute};
use provisioner::ledger::Ledger;
use provisioner::live::LiveState;
use provisioner::plan::{self, Action};
use provisioner::providers::{Applied, ApplyRequest, Changes, ProviderError};
use serde_json::json;

/// Creates succeed after a short pause, except for names listed in `fail`; every call
/// checks that its intent was persisted first.
#[derive(Default)]
struct Recorder {
    in_flight: AtomicUsize,
    most: AtomicUsize,
    calls: Mutex<Vec<String>>,
    fail: Vec<&'static str>,
    persisted_intents: Arc<Mutex<Vec<String>>>,
}

impl Changes for Recorder {
    async fn apply(&self, req: ApplyRequest<'_>) -> Result<Applied, ProviderError> {
        let name = req.fields["name"].as_str().unwrap_or_default().to_string();
        if req.action == Action::Create {
            assert!(
                self.persisted_intents.lock().unwrap().contains(&name),
                "{name} was created before its intent was persisted"
            );
        }
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(30)).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.calls.lock().unwrap().push(name.clone());
        if self.fail.contains(&name.as_str()) {
            return Err(ProviderError::msg(format!("{name} refused")));
        }
        let mut a = Applied {
            id: format!("id-{name}"),
            ..Applied::default()
        };
        a.attributes.insert("name".into(), json!(name));
        a.attributes
            .insert("id".into(), json!(format!("id-{name}")));
        a.attributes
            .insert("urn".into(), json!(format!("do:x:{name}")));
        Ok(a)
    }
}

/// Records the natural keys of the intents in each persisted ledger.
struct Saves(Arc<Mutex<Vec<String>>>, usize);

impl Persist for Saves {
    async fn save(
        &mut self,
        ledger: &Ledger,
        _: &str,
    ) -> Result<(), provisioner::ledger::LedgerError> {
        self.1 += 1;
        let mut seen = self.0.lock().unwrap();
        for i in ledger.pending.values() {
            seen.push(i.key.clone());
        }
        Ok(())
    }
}

fn state(text: &str) -> DesiredState {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.toml"), text).unwrap();
    desired::load(dir.path()).unwrap_or_else(|e| panic!("{e}"))
}

/// Six independent VPCs, and a domain with two records that depend on it.
fn desired() -> DesiredState {
    let mut text = String::new();
    for i in 0..6 {
        text.push_str(&format!(
            "[digitalocean.vpc.v{i}]\nname = \"v{i}\"\nregion = \"ams3\"\nip_range = \"10.{i}.0.0/20\"\n\n"
        ));
    }
    text.push_str(
        r#"
[digitalocean.domain.main]
name = "example.com"

[digitalocean.domain_record.a]
domain = "${digitalocean.domain.main.name}"
type = "A"
name = "a"
data = "203.0.113.1"

[digitalocean.domain_record.b]
domain = "${digitalocean.domain.main.name}"
type = "A"
name = "b"
data = "203.0.113.2"
"#,
    );
    state(&text)
}

#[tokio::test]
async fn concurrency_is_bounded_and_a_failure_skips_only_its_dependants() {
    let d = desired();
    let mut ledger = Ledger::new("lineage-x");
    let live = LiveState::default();
    let (plan, _) = plan::plan(&d, &ledger, &live).unwrap();
    let intents = Arc::new(Mutex::new(Vec::new()));
    let provider = Recorder {
        fail: vec!["example.com"],
        persisted_intents: intents.clone(),
        ..Recorder::default()
    };
    let options = ExecOptions {
        concurrency: BTreeMap::from([("digitalocean", 3)]),
        ..ExecOptions::sequential()
    };
    let mut saves = Saves(intents.clone(), 0);
    let report = execute(
        &plan,
        &d,
        &mut ledger,
        &live,
        &provider,
        &options,
        &mut saves,
        &NoProgress,
    )
    .await;
    assert_eq!(
        provider.most.load(Ordering::SeqCst),
        3,
        "at most three in flight, and three were"
    );
    let (done, failed, skipped) = report.counts();
    assert_eq!((done, failed, skipped), (6, 1, 2), "{:#?}", report.outcomes);
    for o in report.outcomes.iter().filter(|o| o.skipped) {
        assert!(o.address.kind() == "domain_record");
        assert!(
            o.result
                .as_ref()
                .unwrap_err()
                .contains("digitalocean.domain.main")
        );
    }
    assert!(
        !provider
            .calls
            .lock()
            .unwrap()
            .iter()
            .any(|c| c == "a" || c == "b")
    );
    // The VPCs are recorded; the failed domain's intent stays for the next pass to resolve.
    assert_eq!(ledger.resources.len(), 6);
    assert_eq!(ledger.pending.len(), 1);
    assert!(saves.1 >= 2, "intents first, results after");
    assert!(!report.succeeded());
    assert_eq!(Kind::parse("digitalocean.vpc"), Some(Kind::DoVpc));
}

#[tokio::test]
async fn a_stop_request_finishes_what_is_in_flight_and_starts_nothing_more() {
    let d = desired();
    let mut ledger = Ledger::new("lineage-x");
    let live = LiveState::default();
    let (plan, _) = plan::plan(&d, &ledger, &live).unwrap();
    let intents = Arc::new(Mutex::new(Vec::new()));
    let provider = Recorder {
        persisted_intents: intents.clone(),
        ..Recorder::default()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let options = ExecOptions {
        concurrency: BTreeMap::from([("digitalocean", 2)]),
        stop: Some(stop.clone()),
        ..ExecOptions::sequential()
    };
    let mut saves = Saves(intents.clone(), 0);
    let stopper = async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        stop.store(true, Ordering::SeqCst);
    };
    let (report, ()) = tokio::join!(
        execute(
            &plan,
            &d,
            &mut ledger,
            &live,
            &provider,
            &options,
            &mut saves,
            &NoProgress
        ),
        stopper
    );
    let (done, failed, skipped) = report.counts();
    assert_eq!((done, failed), (2, 0), "the two in flight finished");
    assert_eq!(skipped, 7);
    assert_eq!(ledger.resources.len(), 2, "and were recorded");
}

/// Records each call as `action id` (the cloud id, or the name for a create).
#[derive(Default)]
struct Calls(Mutex<Vec<String>>);

impl Changes for Calls {
    async fn apply(&self, req: ApplyRequest<'_>) -> Result<Applied, ProviderError> {
        let name = req.fields["name"].as_str().unwrap_or_default().to_string();
        let what = req.cloud_id.map(str::to_string).unwrap_or(name.clone());
        self.0
            .lock()
            .unwrap()
            .push(format!("{} {what}", req.action.as_str()));
        let mut a = Applied {
            id: format!("new-{name}"),
            ..Applied::default()
        };
        a.attributes.insert("name".into(), json!(name));
        Ok(a)
    }
}

/// The executor, not the provider, orders a replacement: a kind whose names are unique
/// loses its old object first, one that can have two side by side gets the new one first.
/// A provider is only ever asked to create and delete for them.
#[tokio::test]
async fn a_replacement_is_a_create_and_a_delete_in_the_order_of_its_strategy() {
    let d = desired();
    let mut ledger = Ledger::new("lineage-x");
    let none = LiveState::default();
    let (plan, _) = plan::plan(&d, &ledger, &none).unwrap();
    let report = execute(
        &plan,
        &d,
        &mut ledger,
        &none,
        &Calls::default(),
        &ExecOptions::sequential(),
        &mut provisioner::exec::engine::NoPersist,
        &NoProgress,
    )
    .await;
    assert!(report.succeeded(), "{:#?}", report.outcomes);
    // The clouds hold what the ledger recorded.
    let mut live = LiveState::default();
    for e in ledger.resources.values() {
        let kind = live.kinds.entry(e.kind.clone()).or_default();
        kind.objects.push(provisioner::live::LiveObject {
            id: e.id.clone(),
            fields: e.applied.clone(),
            ..Default::default()
        });
    }
    let mut again = d.clone();
    for a in ["digitalocean.vpc.v0", "digitalocean.domain_record.a"] {
        again.replace.insert(desired::Address::parse(a).unwrap());
    }
    let (plan, _) = plan::plan(&again, &ledger, &live).unwrap();
    let calls = Calls::default();
    let report = execute(
        &plan,
        &again,
        &mut ledger,
        &live,
        &calls,
        &ExecOptions::sequential(),
        &mut provisioner::exec::engine::NoPersist,
        &NoProgress,
    )
    .await;
    assert!(report.succeeded(), "{:#?}", report.outcomes);
    let calls = calls.0.into_inner().unwrap();
    let of = |object: &str| -> Vec<&str> {
        calls
            .iter()
            .filter(|c| c.ends_with(&format!(" {object}")) || c.ends_with(&format!("-{object}")))
            .map(String::as_str)
            .collect()
    };
    assert_eq!(of("v0"), vec!["delete new-v0", "create v0"], "{calls:?}");
    assert_eq!(of("a"), vec!["create a", "delete new-a"], "{calls:?}");
    assert_eq!(calls.len(), 4, "{calls:?}");
    let v0 = &ledger.resources[&desired::Address::parse("digitalocean.vpc.v0").unwrap()];
    assert_eq!(v0.id, "new-v0");
}
