//! The ledger store's behaviour, the same suite against the local file store and against S3
//! (moto's server on loopback): conditional writes, racing writers (tasks and processes),
//! the lease lock (also with its holder killed), rollback, the journal, corruption, schema
//! fixtures, and canary secrets that must never reach a ledger version or journal record.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use crate::support::moto;
use provisioner::desired::Address;
use provisioner::ledger::lease::{LeaseInfo, Owner};
use provisioner::ledger::store::{ActionRecord, JournalRecord, Store};
use provisioner::ledger::{Ledger, LedgerEntry, LedgerError, codec};

/// VPCs that exist in a DigitalOcean simulator and a desired state that names them:
/// `state import` checks an object exists (and is in the desired state) before it writes.
struct Estate {
    sim: provisioner::sim::digitalocean::DoSim,
    dir: tempfile::TempDir,
}

impl Estate {
    /// VPCs `vpc-NAME` named `NAME`, each declared as `digitalocean.vpc.NAME`.
    async fn with_vpcs(names: &[String]) -> Estate {
        use provisioner::sim::digitalocean::{DoConfig, DoSim};
        let sim = DoSim::start(DoConfig::default()).await.expect("sim");
        let dir = tempfile::tempdir().expect("tmp");
        let mut toml = String::new();
        sim.edit(|s| {
            for (i, n) in names.iter().enumerate() {
                s.vpcs.push(serde_json::json!({
                    "id": format!("vpc-{n}"), "urn": format!("do:vpc:vpc-{n}"), "name": n,
                    "region": "nyc3", "ip_range": format!("10.{i}.0.0/16"), "description": "",
                    "default": false, "created_at": "2026-11-25T00:00:00Z"
                }));
            }
        });
        for (i, n) in names.iter().enumerate() {
            toml.push_str(&format!(
                "[digitalocean.vpc.{n}]\nname = \"{n}\"\nregion = \"nyc3\"\nip_range = \"10.{i}.0.0/16\"\n\n"
            ));
        }
        std::fs::write(dir.path().join("vpcs.toml"), toml).expect("write");
        Estate { sim, dir }
    }

    /// The command, pointed at the estate's desired state and simulator.
    fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_provisioner"));
        cmd.arg("-d")
            .arg(self.dir.path())
            .env("DIGITALOCEAN_TOKEN", "sim-token")
            .env("DIGITALOCEAN_API_URL", self.sim.url());
        cmd
    }
}

/// Where a suite runs.
struct Place {
    url: String,
    _dir: Option<tempfile::TempDir>,
    s3: bool,
    /// The S3 endpoint (moto, or the project's AWS simulator).
    endpoint: String,
    _sim: Option<provisioner::sim::aws::AwsSim>,
}

impl Place {
    async fn file() -> Place {
        let dir = tempfile::tempdir().expect("tmp");
        Place {
            url: format!("file://{}", dir.path().join("state").display()),
            _dir: Some(dir),
            s3: false,
            endpoint: String::new(),
            _sim: None,
        }
    }

    async fn s3() -> Place {
        let bucket = moto::bucket(true).await;
        Place {
            url: format!("s3://{bucket}/prod"),
            _dir: None,
            s3: true,
            endpoint: moto::endpoint().to_string(),
            _sim: None,
        }
    }

    /// The project's AWS simulator instead of moto: same assertions.
    async fn sim() -> Place {
        let sim = provisioner::sim::aws::AwsSim::start("us-east-1")
            .await
            .expect("AWS simulator");
        let endpoint = sim.url().to_string();
        let bucket = moto::bucket_at(&endpoint, true).await;
        Place {
            url: format!("s3://{bucket}/prod"),
            _dir: None,
            s3: true,
            endpoint,
            _sim: Some(sim),
        }
    }

    async fn store(&self) -> Store {
        if self.s3 {
            Store::open_with_aws(&self.url, &moto::aws_config_at(&self.endpoint))
                .await
                .expect("open")
        } else {
            Store::open(&self.url).await.expect("open")
        }
    }

    fn cli(&self, args: &[&str]) -> (i32, String, String) {
        self.cli_with(Command::new(env!("CARGO_BIN_EXE_provisioner")), args)
    }

    fn cli_with(&self, mut cmd: Command, args: &[&str]) -> (i32, String, String) {
        cmd.arg("--ledger").arg(&self.url).args(args);
        if self.s3 {
            cmd.envs(moto::child_env_at(&self.endpoint));
        }
        let out = cmd.output().expect("run provisioner");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Overwrites the current ledger object with `bytes`, bypassing the store (as a broken
    /// tool or a bad hand edit would).
    async fn tamper(&self, bytes: &[u8]) {
        if self.s3 {
            let (bucket, prefix) = self.url["s3://".len()..].split_once('/').unwrap();
            moto::client_at(&self.endpoint)
                .put_object()
                .bucket(bucket)
                .key(format!("{prefix}/ledger.json"))
                .body(bytes.to_vec().into())
                .send()
                .await
                .expect("tamper");
        } else {
            let path = std::path::Path::new(&self.url["file://".len()..]).join("ledger.json");
            std::fs::write(path, bytes).expect("tamper");
        }
    }

    /// Deletes the current ledger object (S3: a delete marker; older versions remain), as a
    /// careless `rm` or `aws s3 rm` would.
    async fn remove_current(&self) {
        if self.s3 {
            let (bucket, prefix) = self.url["s3://".len()..].split_once('/').unwrap();
            moto::client_at(&self.endpoint)
                .delete_object()
                .bucket(bucket)
                .key(format!("{prefix}/ledger.json"))
                .send()
                .await
                .expect("delete");
        } else {
            let path = std::path::Path::new(&self.url["file://".len()..]).join("ledger.json");
            std::fs::remove_file(path).expect("rm");
        }
    }

    /// Every stored ledger version's bytes, and every journal record's.
    async fn everything_stored(&self) -> Vec<Vec<u8>> {
        let store = self.store().await;
        let mut out = Vec::new();
        for h in store.history(usize::MAX).await.expect("history") {
            let l = store.read_version(&h.version).await.expect("version");
            out.push(codec::encode(&l));
        }
        for r in store.journal(usize::MAX).await.expect("journal") {
            out.push(serde_json::to_vec(&r).unwrap());
        }
        out
    }
}

/// The moto a helper process must use: this process's (it holds the test's bucket).
fn helper_moto(place: &Place) -> String {
    if place.s3 {
        place.endpoint.clone()
    } else {
        std::env::var("PROVISIONER_TEST_MOTO_URL").unwrap_or_default()
    }
}

fn entry(id: &str) -> LedgerEntry {
    LedgerEntry {
        kind: "digitalocean.vpc".into(),
        id: id.into(),
        ..LedgerEntry::default()
    }
}

fn addr(name: &str) -> Address {
    Address::new("digitalocean", "vpc", name)
}

macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn file() {
                super::$name(super::Place::file().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn s3() {
                super::$name(super::Place::s3().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sim() {
                super::$name(super::Place::sim().await).await
            }
        }
    };
}

both!(a_lost_race_is_a_typed_error_and_overwrites_nothing);
async fn a_lost_race_is_a_typed_error_and_overwrites_nothing(place: Place) {
    let store = place.store().await;
    assert!(store.read().await.unwrap().is_none());
    let mut first = Ledger::create();
    first.resources.insert(addr("a"), entry("vpc-a"));
    let v1 = store.write(first.clone(), None, "first").await.unwrap();
    assert_eq!(v1.ledger.serial, 1);
    // A second "first write" loses.
    let e = store
        .write(Ledger::create(), None, "also first")
        .await
        .unwrap_err();
    assert!(matches!(e, LedgerError::Conflict { .. }), "{e}");

    // Two writers read the same version; the second to write loses.
    let a = store.read().await.unwrap().unwrap();
    let b = store.read().await.unwrap().unwrap();
    let mut la = a.ledger.clone();
    la.resources.insert(addr("from-a"), entry("vpc-1"));
    store.write(la, Some(&a), "writer a").await.unwrap();
    let mut lb = b.ledger.clone();
    lb.resources.insert(addr("from-b"), entry("vpc-2"));
    let e = store.write(lb, Some(&b), "writer b").await.unwrap_err();
    assert!(matches!(e, LedgerError::Conflict { .. }), "{e}");
    assert!(e.to_string().contains("nothing was overwritten"), "{e}");

    let now = store.read().await.unwrap().unwrap();
    assert_eq!(now.ledger.serial, 2);
    assert!(now.ledger.resources.contains_key(&addr("from-a")));
    assert!(!now.ledger.resources.contains_key(&addr("from-b")));
    assert_eq!(now.ledger.lineage, first.lineage);
}

both!(a_write_base_without_the_resources_guards_like_the_whole_snapshot);
/// The daemon keeps only the lineage and serial of the version it read (`into_base`): the
/// writes it makes on that base still number the versions, refuse another lineage, and
/// lose to a newer version.
async fn a_write_base_without_the_resources_guards_like_the_whole_snapshot(place: Place) {
    let store = place.store().await;
    let mut first = Ledger::create();
    first.resources.insert(addr("a"), entry("vpc-a"));
    store.write(first, None, "first").await.unwrap();
    let (mut ledger, base) = store.read().await.unwrap().unwrap().into_base();
    assert!(base.ledger.resources.is_empty());
    assert_eq!(ledger.resources.len(), 1);
    ledger.resources.insert(addr("b"), entry("vpc-b"));
    let (_, stale) = store.read().await.unwrap().unwrap().into_base();
    let written = store
        .write(ledger.clone(), Some(&base), "second")
        .await
        .unwrap();
    assert_eq!(written.ledger.serial, 2);
    let (_, base2) = written.into_base();
    // The stale base lost; another lineage is refused.
    let e = store
        .write(ledger.clone(), Some(&stale), "late")
        .await
        .unwrap_err();
    assert!(matches!(e, LedgerError::Conflict { .. }), "{e}");
    let e = store
        .write(Ledger::create(), Some(&base2), "foreign")
        .await
        .unwrap_err();
    assert!(matches!(e, LedgerError::LineageMismatch { .. }), "{e}");
    let now = store.read().await.unwrap().unwrap();
    assert_eq!(now.ledger.serial, 2);
    assert_eq!(now.ledger.resources.len(), 2);
}

both!(racing_writers_lose_no_write);
async fn racing_writers_lose_no_write(place: Place) {
    let store = place.store().await;
    store.write(Ledger::create(), None, "create").await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = place.store().await;
        tasks.push(tokio::spawn(async move {
            loop {
                let snap = store.read().await.unwrap().unwrap();
                let mut l = snap.ledger.clone();
                l.resources
                    .insert(addr(&format!("w{i}")), entry(&format!("vpc-{i}")));
                match store.write(l, Some(&snap), &format!("writer {i}")).await {
                    Ok(s) => return s.ledger.serial,
                    Err(LedgerError::Conflict { .. }) => {
                        tokio::time::sleep(Duration::from_millis(5 * (i % 4 + 1))).await
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }));
    }
    let mut serials = BTreeSet::new();
    for t in tasks {
        assert!(
            serials.insert(t.await.unwrap()),
            "two writes got the same serial"
        );
    }
    let last = store.read().await.unwrap().unwrap();
    assert_eq!(last.ledger.resources.len(), 20, "a write was lost");
    assert_eq!(serials, (2..=21).collect());
    // Every successful write is in the history, each exactly once.
    let history = store.history(usize::MAX).await.unwrap();
    let recorded: BTreeSet<u64> = history.iter().filter_map(|h| h.serial).collect();
    assert_eq!(history.len(), 21);
    assert_eq!(recorded, (1..=21).collect());
}

both!(twenty_writer_processes_queue_on_the_lease_and_lose_nothing);
async fn twenty_writer_processes_queue_on_the_lease_and_lose_nothing(place: Place) {
    let names: Vec<String> = (0..20).map(|i| format!("p{i}")).collect();
    let estate = Estate::with_vpcs(&names).await;
    let children: Vec<_> = (0..20)
        .map(|i| {
            let mut cmd = estate.command();
            cmd.args(["--ledger", &place.url, "state", "import"])
                .arg(format!("digitalocean.vpc.p{i}"))
                .arg(format!("vpc-p{i}"))
                .args(["--lock-timeout", "120s"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            if place.s3 {
                cmd.envs(moto::child_env_at(&place.endpoint));
            }
            cmd.spawn().expect("spawn")
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let store = place.store().await;
    let last = store.read().await.unwrap().unwrap();
    assert_eq!(last.ledger.resources.len(), 20);
    assert_eq!(last.ledger.serial, 20);
    let history = store.history(usize::MAX).await.unwrap();
    assert_eq!(history.len(), 20);
    let summaries: BTreeSet<String> = history
        .iter()
        .map(|h| h.written.as_ref().unwrap().summary.clone())
        .collect();
    assert_eq!(summaries.len(), 20, "every import is its own version");
    assert!(
        store.lease().await.unwrap().is_none(),
        "the lease was released"
    );
}

both!(two_contenders_never_both_hold_the_lease);
async fn two_contenders_never_both_hold_the_lease(place: Place) {
    // A free lease, then an expired one: ten contenders each time, one winner.
    for round in 0..2 {
        if round == 1 {
            let store = place.store().await;
            let (info, _) = store.lease().await.unwrap().expect("held");
            // Let the winner's lease run out (it was taken with a 5-second lifetime: long
            // enough that, on a loaded machine, it cannot run out while the ten contenders of
            // one round still race for it, which would make a second winner rightly).
            let expires = humantime::parse_rfc3339(&info.expires_at).unwrap();
            while SystemTime::now() <= expires + Duration::from_millis(50) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let mut tasks = Vec::new();
        for i in 0..10 {
            let store = place.store().await;
            tasks.push(tokio::spawn(async move {
                let owner = Owner::current(&format!("contender-{i}"));
                store.try_acquire(&owner, Duration::from_secs(5)).await
            }));
        }
        let mut winners = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => winners += 1,
                Err(LedgerError::LeaseHeld { .. } | LedgerError::Conflict { .. }) => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(winners, 1, "round {round}");
    }
}

/// Not a test on its own: the lease holder that `a_killed_holder_*` starts as a separate
/// process (this test binary, re-run with an environment variable) and then kills.
#[tokio::test]
#[ignore = "helper process for a_killed_holder_is_taken_over_after_expiry_and_not_before"]
async fn lease_holder_process() {
    let Ok(url) = std::env::var("PROVISIONER_TEST_HOLD_URL") else {
        return;
    };
    // The helper talks to the endpoint the parent passed (moto, or the parent's simulator).
    let place = Place {
        s3: url.starts_with("s3://"),
        url,
        _dir: None,
        endpoint: moto::endpoint().to_string(),
        _sim: None,
    };
    let store = place.store().await;
    let ttl = Duration::from_secs(3);
    let mut lease = store
        .try_acquire(&Owner::current("holder"), ttl)
        .await
        .expect("acquire");
    println!("held {}", lease.info.lease_id);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        store.renew(&mut lease, ttl).await.expect("renew");
    }
}

both!(a_killed_holder_on_this_host_is_taken_over_at_once);
async fn a_killed_holder_on_this_host_is_taken_over_at_once(place: Place) {
    use std::io::BufRead;
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "ledger::lease_holder_process",
        "--ignored",
        "--nocapture",
    ])
    .env("PROVISIONER_TEST_HOLD_URL", &place.url)
    .env("PROVISIONER_TEST_MOTO_URL", helper_moto(&place))
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("holder");
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let lease_id = loop {
        let line = lines.next().expect("holder output").unwrap();
        if let Some(id) = line.strip_prefix("held ") {
            break id.to_string();
        }
    };
    let store = place.store().await;
    let me = Owner::current("taker");
    match store.try_acquire(&me, Duration::from_secs(30)).await {
        Err(LedgerError::LeaseHeld { holder, .. }) => {
            assert_eq!(holder.lease_id, lease_id);
            assert_eq!(holder.owner.pid, child.id());
        }
        other => panic!("expected the lease to be held, got {other:?}"),
    }
    // SIGKILL: no release, no cleanup.
    child.kill().unwrap();
    child.wait().unwrap();
    let (last, _) = store.lease().await.unwrap().expect("still there");
    assert_eq!(last.lease_id, lease_id, "a killed holder releases nothing");
    // Its process is gone from this host: the lease is stale now, not in 30 seconds.
    let lease = store
        .try_acquire(&me, Duration::from_secs(30))
        .await
        .expect("a dead holder's lease is taken over at once");
    assert!(
        humantime::parse_rfc3339(&lease.info.acquired_at).unwrap()
            < humantime::parse_rfc3339(&last.expires_at).unwrap()
    );
    store.release(lease).await.unwrap();
    assert!(store.lease().await.unwrap().is_none());
}

/// A live holder in another PID namespace on this host (a container with the same host
/// name) is not "gone" because its pid means nothing here: the lease is waited out. The
/// holder runs under `unshare --pid --fork --mount-proc` (root only), at a pid this
/// namespace does not have.
#[tokio::test(flavor = "multi_thread")]
async fn a_live_holder_in_another_pid_namespace_is_not_taken_over() {
    use std::io::BufRead;
    let place = Place::file().await;
    let exe = std::env::current_exe().unwrap();
    let mut child = match Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            "--mount-proc",
            "--kill-child",
            "sh",
            "-c",
        ])
        // The holder starts at pid 4,000,000 in its namespace (a pid this one lacks), with
        // sh as the namespace's init waiting for it.
        .arg(r#"echo 3999999 > /proc/sys/kernel/ns_last_pid; "$0" "$@" & wait"#)
        .arg(&exe)
        .args([
            "--exact",
            "ledger::lease_holder_process",
            "--ignored",
            "--nocapture",
        ])
        .env("PROVISIONER_TEST_HOLD_URL", &place.url)
        .env("PROVISIONER_TEST_MOTO_URL", helper_moto(&place))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!("`unshare` (util-linux) is needed for this test: {e}"),
    };
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let lease_id = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(id) = line.strip_prefix("held ") {
                    break id.to_string();
                }
            }
            _ => {
                let mut err = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).ok();
                panic!(
                    "the holder in a new PID namespace did not start (unshare needs root or CAP_SYS_ADMIN): {err}"
                );
            }
        }
    };
    let store = place.store().await;
    let (held, _) = store.lease().await.unwrap().expect("held");
    assert_eq!(held.lease_id, lease_id);
    assert_ne!(
        held.owner.pid_namespace,
        Owner::current("x").pid_namespace,
        "the holder runs in its own PID namespace"
    );
    // Its pid does not exist here, yet it is alive: held, twice (across a renewal).
    for _ in 0..2 {
        match store
            .try_acquire(&Owner::current("taker"), Duration::from_secs(30))
            .await
        {
            Err(LedgerError::LeaseHeld { holder, .. }) => assert_eq!(holder.lease_id, lease_id),
            other => panic!("a live holder's lease was taken: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(800)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

both!(a_holder_elsewhere_is_taken_over_after_expiry_and_not_before);
async fn a_holder_elsewhere_is_taken_over_after_expiry_and_not_before(place: Place) {
    let store = place.store().await;
    // A holder on another machine: its process cannot be checked, only its expiry.
    let elsewhere = Owner {
        host: "another-host.example".into(),
        pid: 4_000_000,
        run_id: "remote".into(),
        ..Owner::current("remote")
    };
    let held = store
        .try_acquire(&elsewhere, Duration::from_secs(2))
        .await
        .unwrap();
    let expires = humantime::parse_rfc3339(&held.info.expires_at).unwrap();
    let me = Owner::current("taker");
    let lease = loop {
        match store.try_acquire(&me, Duration::from_secs(30)).await {
            Ok(l) => break l,
            Err(LedgerError::LeaseHeld { .. }) => {
                assert!(SystemTime::now() <= expires + Duration::from_secs(1));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert!(
        humantime::parse_rfc3339(&lease.info.acquired_at).unwrap() >= expires,
        "taken at {} before expiry {}",
        lease.info.acquired_at,
        held.info.expires_at
    );
    store.release(lease).await.unwrap();
    assert!(store.lease().await.unwrap().is_none());
}

both!(the_cli_names_the_holder_and_unlock_needs_force_and_the_right_id);
async fn the_cli_names_the_holder_and_unlock_needs_force_and_the_right_id(place: Place) {
    let store = place.store().await;
    let estate = Estate::with_vpcs(&["x".to_string()]).await;
    let (code, _, err) = place.cli_with(
        estate.command(),
        &["state", "import", "digitalocean.vpc.x", "vpc-x"],
    );
    assert_eq!(code, 0, "{err}");
    let lease = store
        .try_acquire(&Owner::current("someone"), Duration::from_secs(300))
        .await
        .unwrap();
    let (code, _, err) = place.cli(&["state", "forget", "digitalocean.vpc.x"]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("pid {}", std::process::id()))
            && err.contains(&format!("state unlock --force {}", lease.info.lease_id)),
        "{err}"
    );
    let (code, _, err) = place.cli(&["state", "unlock", &lease.info.lease_id]);
    assert_eq!(code, 1);
    assert!(err.contains("--force"), "{err}");
    let (code, _, err) = place.cli(&["state", "unlock", "--force", "not-this-one"]);
    assert_eq!(code, 1);
    assert!(err.contains(&lease.info.lease_id), "{err}");
    let (code, out, err) = place.cli(&["state", "unlock", "--force", &lease.info.lease_id]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("broke lease"), "{out}");
    // Our lease is gone: renewing it fails rather than writing over the next holder.
    let mut lease = lease;
    let e = store
        .renew(&mut lease, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(e, LedgerError::LeaseLost { .. }), "{e}");
    let (code, _, err) = place.cli(&["state", "forget", "digitalocean.vpc.x"]);
    assert_eq!(code, 0, "{err}");
}

both!(rollback_restores_exactly_the_chosen_version);
async fn rollback_restores_exactly_the_chosen_version(place: Place) {
    let store = place.store().await;
    let mut l = Ledger::create();
    l.resources.insert(addr("one"), entry("vpc-1"));
    l.outputs.insert("endpoint".into(), "https://one".into());
    let v1 = store.write(l, None, "v1").await.unwrap();
    let mut l = v1.ledger.clone();
    l.resources.insert(addr("two"), entry("vpc-2"));
    l.outputs.insert("endpoint".into(), "https://two".into());
    let v2 = store.write(l, Some(&v1), "v2").await.unwrap();
    let mut l = v2.ledger.clone();
    l.resources.remove(&addr("one"));
    let v3 = store.write(l, Some(&v2), "v3").await.unwrap();

    let history = store.history(10).await.unwrap();
    let v1_id = history
        .iter()
        .find(|h| h.serial == Some(1))
        .unwrap()
        .version
        .clone();
    let (code, out, err) = place.cli(&["state", "rollback", "--auto-approve", &v1_id]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("digitalocean.vpc.one") && out.contains("digitalocean.vpc.two"),
        "{out}"
    );
    let now = store.read().await.unwrap().unwrap();
    assert_eq!(now.ledger.serial, v3.ledger.serial + 1);
    assert_eq!(now.ledger.resources, v1.ledger.resources);
    assert_eq!(now.ledger.pending, v1.ledger.pending);
    assert_eq!(now.ledger.outputs, v1.ledger.outputs);
    assert_eq!(now.ledger.lineage, v1.ledger.lineage);
    assert_eq!(
        store.history(10).await.unwrap().len(),
        4,
        "v3 stays in the history"
    );

    let (code, _, err) = place.cli(&["state", "rollback", "--auto-approve", "no-such-version"]);
    assert_eq!(code, 1);
    assert!(err.contains("no version `no-such-version`"), "{err}");
}

both!(a_corrupt_ledger_is_a_clear_error_and_nothing_is_overwritten);
async fn a_corrupt_ledger_is_a_clear_error_and_nothing_is_overwritten(place: Place) {
    let store = place.store().await;
    let mut l = Ledger::create();
    l.resources.insert(addr("keep"), entry("vpc-keep"));
    let good = store.write(l, None, "good").await.unwrap();
    let full = codec::encode(&good.ledger);
    let truncated = &full[..full.len() / 2];
    place.tamper(truncated).await;
    for args in [
        &["state", "list"][..],
        &["state", "import", "digitalocean.vpc.new", "vpc-new"],
        &["state", "forget", "digitalocean.vpc.keep"],
    ] {
        let (code, _, err) = place.cli(args);
        assert_eq!(code, 1, "{args:?}");
        assert!(
            err.contains("corrupt") && err.contains("truncated") && err.contains("ledger.json"),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    // Still the broken bytes: nothing wrote over them.
    let store = place.store().await;
    let (bytes, _) = store.read_raw().await.unwrap().unwrap();
    assert_eq!(bytes, truncated);
    // The good version is still in the history and restores.
    let history = store.history(10).await.unwrap();
    let good_id = history
        .iter()
        .find(|h| h.serial == Some(1))
        .unwrap()
        .version
        .clone();
    let (code, _, err) = place.cli(&["state", "rollback", "--auto-approve", &good_id]);
    assert_eq!(code, 0, "{err}");
    let now = store.read().await.unwrap().unwrap();
    assert_eq!(now.ledger.resources, good.ledger.resources);
    assert!(now.ledger.serial > good.ledger.serial);
}

/// A local ledger that is not a regular file (a link to `/dev/zero`, a FIFO) or is too
/// large is refused, naming the file, instead of being read without end or blocking.
#[tokio::test(flavor = "multi_thread")]
async fn a_file_ledger_that_is_a_device_a_fifo_or_huge_is_refused_naming_it() {
    let place = Place::file().await;
    let root = std::path::PathBuf::from(&place.url["file://".len()..]);
    let store = place.store().await;
    store.write(Ledger::create(), None, "first").await.unwrap();
    let current = root.join("ledger.json");
    std::fs::remove_file(&current).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &current).unwrap();
    let (code, _, err) = place.cli(&["state", "list"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("ledger.json") && err.contains("character device"),
        "{err}"
    );
    assert_eq!(
        err.matches("character device").count(),
        1,
        "the cause printed twice: {err}"
    );
    std::fs::remove_file(&current).unwrap();
    assert!(
        Command::new("mkfifo")
            .arg(&current)
            .status()
            .unwrap()
            .success()
    );
    let (code, _, err) = place.cli(&["state", "list"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("ledger.json") && err.contains("FIFO"), "{err}");
    std::fs::remove_file(&current).unwrap();
    // Sparse: 300 MiB on paper, nothing on disk.
    let big = std::fs::File::create(&current).unwrap();
    big.set_len(300 * 1024 * 1024).unwrap();
    let (code, _, err) = place.cli(&["state", "list"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("ledger.json") && err.contains("larger than the 256 MiB limit"),
        "{err}"
    );
}

both!(a_ledger_of_another_lineage_copied_over_is_refused_naming_both);
async fn a_ledger_of_another_lineage_copied_over_is_refused_naming_both(place: Place) {
    let store = place.store().await;
    let mut ours = Ledger::create();
    ours.resources.insert(addr("keep"), entry("vpc-keep"));
    let first = store.write(ours, None, "first").await.unwrap();
    let second = store
        .write(first.ledger.clone(), Some(&first), "second")
        .await
        .unwrap();
    // Another environment's converged ledger, copied over this one.
    let mut theirs = Ledger::create();
    theirs.serial = 40;
    theirs.resources.insert(addr("keep"), entry("vpc-theirs"));
    place.tamper(&codec::encode(&theirs)).await;
    let store = place.store().await;
    match store.read().await {
        Err(e @ LedgerError::ForeignLineage { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains(&theirs.lineage)
                    && text.contains(&first.ledger.lineage)
                    && text.contains("state rollback")
                    && text.contains("--new-lineage"),
                "{text}"
            );
        }
        other => panic!("expected the foreign lineage to be refused, got {other:?}"),
    }
    let (code, out, err) = place.cli(&["state", "list"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(!out.contains("vpc-theirs"), "{out}");
    assert!(
        err.contains(&theirs.lineage) && err.contains(&first.ledger.lineage),
        "{err}"
    );
    // A write on top of it is refused the same way: every writer reads first.
    let (code, _, err) = place.cli(&["state", "forget", "digitalocean.vpc.keep"]);
    assert_eq!(code, 1, "{err}");
    // This store's own version restores over it.
    let (code, _, err) = place.cli(&["state", "rollback", "--auto-approve", &second.version.id]);
    assert_eq!(code, 0, "{err}");
    let now = place.store().await.read().await.unwrap().unwrap();
    assert_eq!(now.ledger.lineage, first.ledger.lineage);
    assert_eq!(now.ledger.resources[&addr("keep")].id, "vpc-keep");
    // Or, deliberately, the copy is taken on with --new-lineage, once; then it is the
    // store's lineage and reads need no flag.
    place.tamper(&codec::encode(&theirs)).await;
    let (code, _, err) = place.cli(&["--new-lineage", "state", "forget", "digitalocean.vpc.keep"]);
    assert_eq!(code, 0, "{err}");
    let now = place.store().await.read().await.unwrap().unwrap();
    assert_eq!(now.ledger.lineage, theirs.lineage);
}

both!(a_vanished_ledger_is_refused_with_the_command_that_restores_it);
async fn a_vanished_ledger_is_refused_with_the_command_that_restores_it(place: Place) {
    let store = place.store().await;
    let mut ours = Ledger::create();
    ours.resources.insert(addr("keep"), entry("vpc-keep"));
    let first = store.write(ours, None, "first").await.unwrap();
    place.remove_current().await;
    let store = place.store().await;
    match store.read().await {
        Err(e @ LedgerError::Vanished { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains(&format!("provisioner state rollback {}", first.version.id))
                    && text.contains("--new-lineage"),
                "{text}"
            );
        }
        other => panic!("expected a vanished ledger to be refused, got {other:?}"),
    }
    let (code, _, err) = place.cli(&["state", "list"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("is missing, but this store has held one"),
        "{err}"
    );
    // The advised command brings it back, with a serial after the last one.
    let (code, _, err) = place.cli(&["state", "rollback", "--auto-approve", &first.version.id]);
    assert_eq!(code, 0, "{err}");
    let now = place.store().await.read().await.unwrap().unwrap();
    assert_eq!(now.ledger.lineage, first.ledger.lineage);
    assert_eq!(now.ledger.resources, first.ledger.resources);
    assert!(now.ledger.serial > first.ledger.serial);
    // Gone again, and started afresh on purpose: a new lineage, which is then the store's.
    place.remove_current().await;
    let mut fresh = place.store().await;
    fresh.allow_new_lineage(true);
    assert!(fresh.read().await.unwrap().is_none());
    let new = fresh
        .write(Ledger::create(), None, "new lineage")
        .await
        .unwrap();
    assert_ne!(new.ledger.lineage, first.ledger.lineage);
    let again = place.store().await.read().await.unwrap().unwrap();
    assert_eq!(again.ledger.lineage, new.ledger.lineage);
}

both!(a_journal_without_a_ledger_is_refused);
async fn a_journal_without_a_ledger_is_refused(place: Place) {
    let store = place.store().await;
    store
        .append_journal(&JournalRecord {
            run_id: "run-1".into(),
            by: "tester".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            finished_at: "2026-01-01T00:00:01Z".into(),
            command: "apply".into(),
            summary: "1 to create".into(),
            outcome: "succeeded".into(),
            actions: Vec::new(),
            environment: None,
        })
        .await
        .unwrap();
    match store.read().await {
        Err(e @ LedgerError::Vanished { .. }) => {
            assert!(e.to_string().contains("1 journal record remain"), "{e}")
        }
        other => panic!("expected a journal without a ledger to be refused, got {other:?}"),
    }
    // A store never written is simply empty.
    let empty = Place::file().await;
    assert!(empty.store().await.read().await.unwrap().is_none());
}

both!(the_journal_keeps_immutable_records_newest_first);
async fn the_journal_keeps_immutable_records_newest_first(place: Place) {
    let store = place.store().await;
    let record = |n: u32| JournalRecord {
        run_id: format!("run-{n}"),
        by: "tester".into(),
        started_at: format!("2026-11-25T10:0{n}:00Z"),
        finished_at: format!("2026-11-25T10:0{n}:30Z"),
        command: "apply".into(),
        summary: format!("{n} to create"),
        outcome: "succeeded".into(),
        actions: vec![ActionRecord {
            address: "digitalocean.vpc.main".into(),
            action: "create".into(),
            outcome: "done".into(),
            error: None,
        }],
        environment: None,
    };
    store.append_journal(&record(1)).await.unwrap();
    store.append_journal(&record(2)).await.unwrap();
    let e = store.append_journal(&record(2)).await.unwrap_err();
    assert!(
        matches!(e, LedgerError::Conflict { .. }),
        "records are never overwritten: {e}"
    );
    let back = store.journal(10).await.unwrap();
    assert_eq!(back, vec![record(2), record(1)]);
    let (code, out, err) = place.cli(&["state", "history", "--journal"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("run-2") && out.contains("create digitalocean.vpc.main done"),
        "{out}"
    );
}

both!(canary_secrets_never_reach_a_ledger_version_or_journal_record);
async fn canary_secrets_never_reach_a_ledger_version_or_journal_record(place: Place) {
    use provisioner::desired;
    use provisioner::ledger::fingerprint::FingerprintKey;
    use provisioner::live::LiveState;
    use provisioner::sim::fake::FakeCloud;

    const CANARY: &str = "canary-4f1d9b2e-never-store-me";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("canary.txt"), CANARY).unwrap();
    std::fs::write(
        dir.path().join("a.toml"),
        "[github.actions_secret.token]\nrepository = \"org/repo\"\nname = \"TOKEN\"\nvalue = { file = \"canary.txt\" }\n\n\
         [aws.secretsmanager_secret.copy]\nname = \"copy\"\nvalue = { file = \"canary.txt\" }\n",
    )
    .unwrap();
    let mut state = desired::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let key = FingerprintKey::new(b"a-key-of-at-least-16-bytes".to_vec()).unwrap();
    desired::secrets::fingerprint_all(&mut state, &key).unwrap();
    assert_eq!(state.secret_fingerprints.len(), 2);

    let store = place.store().await;
    let (plan, report) =
        provisioner::plan::plan(&state, &Ledger::default(), &LiveState::default()).unwrap();
    let cloud = FakeCloud::default();
    let mut ledger = Ledger::create();
    cloud
        .apply_plan(&plan, &state, &mut ledger, Some(&key))
        .await
        .unwrap();
    let written = store.write(ledger, None, "apply").await.unwrap();
    assert!(
        written
            .ledger
            .resources
            .values()
            .any(|e| !e.fingerprints.is_empty())
    );
    store
        .append_journal(&JournalRecord {
            run_id: "r".into(),
            by: "t".into(),
            started_at: "2026-11-25T00:00:00Z".into(),
            finished_at: "2026-11-25T00:00:01Z".into(),
            command: "apply".into(),
            summary: provisioner::plan::display::Summary {
                plan: &plan,
                report: &report,
            }
            .to_string(),
            outcome: "succeeded".into(),
            actions: plan
                .changes
                .iter()
                .map(|c| ActionRecord {
                    address: c.address.to_string(),
                    action: c.action.as_str().into(),
                    outcome: "done".into(),
                    error: None,
                })
                .collect(),
            environment: None,
        })
        .await
        .unwrap();
    // Re-plan with the same value: nothing to do; with a changed value: the fingerprint says so.
    let (again, _) = provisioner::plan::plan(&state, &written.ledger, &cloud.live()).unwrap();
    assert!(!again.has_changes());
    std::fs::write(dir.path().join("canary.txt"), format!("{CANARY}-rotated")).unwrap();
    let mut rotated = desired::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    desired::secrets::fingerprint_all(&mut rotated, &key).unwrap();
    let (changed, _) = provisioner::plan::plan(&rotated, &written.ledger, &cloud.live()).unwrap();
    assert_eq!(
        changed.changes.iter().filter(|c| c.action.acts()).count(),
        2
    );

    for bytes in place.everything_stored().await {
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(CANARY), "a secret reached storage: {text}");
        assert!(!text.contains("canary-4f1d"), "{text}");
    }
}

both!(schema_fixtures_load_and_newer_ledgers_are_refused);
async fn schema_fixtures_load_and_newer_ledgers_are_refused(place: Place) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/fixtures");
    let mut fixtures = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "json") {
            fixtures += 1;
            let bytes = std::fs::read(&path).unwrap();
            let (l, _) = codec::decode_and_migrate(&bytes, &path.display().to_string())
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                l.schema_version,
                provisioner::ledger::model::LEDGER_SCHEMA_VERSION
            );
        }
    }
    assert!(fixtures >= 1);
    // Through the store and the CLI: a current ledger needs no migration.
    let bytes = std::fs::read(format!("{dir}/v1.json")).unwrap();
    // The store's first write has the fixture's lineage: a document of another lineage
    // put in its place would be refused (see `a_ledger_of_another_lineage_*`).
    let lineage = serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()["lineage"]
        .as_str()
        .unwrap()
        .to_string();
    place
        .store()
        .await
        .write(Ledger::new(lineage), None, "x")
        .await
        .unwrap();
    place.tamper(&bytes).await;
    let (code, out, err) = place.cli(&["ledger", "migrate"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("already at schema version 1"), "{out}");
    let (code, out, _) = place.cli(&["state", "list"]);
    assert_eq!(code, 0);
    assert!(out.contains("digitalocean.vpc.main"), "{out}");
    // From a newer provisioner: refused, with what to do.
    let newer = String::from_utf8(bytes).unwrap().replacen(
        "\"schema_version\": 1",
        "\"schema_version\": 2",
        1,
    );
    place.tamper(newer.as_bytes()).await;
    for args in [&["state", "list"][..], &["ledger", "migrate"]] {
        let (code, _, err) = place.cli(args);
        assert_eq!(code, 1);
        assert!(err.contains("upgrade provisioner"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_s3_bucket_without_versioning_is_refused_with_how_to_enable_it() {
    let bucket = moto::bucket(false).await;
    let e = Store::open_with_aws(&format!("s3://{bucket}/x"), &moto::aws_config())
        .await
        .err()
        .expect("refused");
    assert!(matches!(e, LedgerError::VersioningOff { .. }), "{e}");
    assert!(e.to_string().contains("put-bucket-versioning"), "{e}");
    // Versioned but not encrypted: a warning, not an error.
    let bucket = moto::bucket(true).await;
    let store = Store::open_with_aws(&format!("s3://{bucket}/x"), &moto::aws_config())
        .await
        .unwrap();
    assert!(
        store
            .warnings
            .iter()
            .any(|w| w.contains("default encryption"))
    );
}

#[test]
fn a_lease_document_round_trips() {
    let info = LeaseInfo::new(Owner::current("r"), Duration::from_secs(5));
    let back: LeaseInfo = serde_json::from_str(&serde_json::to_string(&info).unwrap()).unwrap();
    assert_eq!(back, info);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_fingerprint_key_can_come_from_secrets_manager() {
    use provisioner::ledger::fingerprint::FingerprintKey;
    let config = moto::aws_config();
    let sm = aws_sdk_secretsmanager::Client::new(&config);
    let name = format!("provisioner/fp-{}", uuid::Uuid::new_v4().simple());
    sm.create_secret()
        .name(&name)
        .secret_string("0123456789abcdef-fingerprint-key")
        .send()
        .await
        .unwrap();
    let from_sm = provisioner::ledger::key::from_secrets_manager(&config, &name)
        .await
        .unwrap();
    let direct = FingerprintKey::new(b"0123456789abcdef-fingerprint-key".to_vec()).unwrap();
    let a = addr("x");
    assert_eq!(
        from_sm.fingerprint(&a, "value", b"v"),
        direct.fingerprint(&a, "value", b"v")
    );
    let e = provisioner::ledger::key::from_secrets_manager(&config, "provisioner/missing")
        .await
        .unwrap_err();
    assert!(e.contains("provisioner/missing"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn settings_name_the_ledger_when_no_flag_does() {
    let dir = tempfile::tempdir().unwrap();
    let ledger_dir = dir.path().join("from-settings");
    let desired = dir.path().join("desired");
    std::fs::create_dir(&desired).unwrap();
    std::fs::write(
        desired.join("settings.toml"),
        format!("[settings]\nledger = \"file://{}\"\n", ledger_dir.display()),
    )
    .unwrap();
    let estate = Estate::with_vpcs(&["s".to_string()]).await;
    std::fs::copy(
        estate.dir.path().join("vpcs.toml"),
        desired.join("vpcs.toml"),
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_provisioner"))
            .arg("-d")
            .arg(&desired)
            .args(extra)
            .env_remove("PROVISIONER_LEDGER")
            .env("DIGITALOCEAN_TOKEN", "sim-token")
            .env("DIGITALOCEAN_API_URL", estate.sim.url())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&["state", "import", "digitalocean.vpc.s", "vpc-s"]);
    assert!(ledger_dir.join("ledger.json").exists());
    assert!(run(&["state", "list"]).contains("digitalocean.vpc.s"));
    // The flag wins over the settings.
    let other = dir.path().join("other");
    let flag = format!("file://{}", other.display());
    assert!(!run(&["--ledger", &flag, "state", "list"]).contains("digitalocean.vpc.s"));
    // An invalid desired state does not silently fall back to the default ledger.
    std::fs::write(desired.join("bad.toml"), "[settings]\nprune = 3\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_provisioner"))
        .arg("-d")
        .arg(&desired)
        .args(["state", "list"])
        .env_remove("PROVISIONER_LEDGER")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ledger"));
}

/// Not a test on its own: a process that holds the lease through the CLI's `with_lease`
/// while "working", for `sigterm_releases_the_lease_at_once`.
#[tokio::test]
#[ignore = "helper process for sigterm_releases_the_lease_at_once"]
async fn lease_worker_process() {
    let Ok(url) = std::env::var("PROVISIONER_TEST_WORK_URL") else {
        return;
    };
    // The helper talks to the endpoint the parent passed (moto, or the parent's simulator).
    let place = Place {
        s3: url.starts_with("s3://"),
        url,
        _dir: None,
        endpoint: moto::endpoint().to_string(),
        _sim: None,
    };
    let store = place.store().await;
    let lock = provisioner::cli::state::LockArgs { lock_timeout: None };
    let result = provisioner::cli::state::with_lease(&store, &lock, async {
        println!("working");
        tokio::time::sleep(Duration::from_secs(120)).await;
        Ok(())
    })
    .await;
    println!(
        "done: {}",
        result.map_or_else(|e| e.to_string(), |()| "ok".into())
    );
}

both!(sigterm_releases_the_lease_at_once);
async fn sigterm_releases_the_lease_at_once(place: Place) {
    use std::io::BufRead;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "ledger::lease_worker_process",
            "--ignored",
            "--nocapture",
        ])
        .env("PROVISIONER_TEST_WORK_URL", &place.url)
        .env("PROVISIONER_TEST_MOTO_URL", helper_moto(&place))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    while lines.next().expect("worker output").unwrap() != "working" {}
    let store = place.store().await;
    let (held, _) = store.lease().await.unwrap().expect("held while working");
    assert_eq!(held.owner.pid, child.id());
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let done = lines
        .map(Result::unwrap)
        .find(|l| l.starts_with("done: "))
        .expect("the worker reports how it ended");
    assert!(done.contains("interrupted by SIGTERM"), "{done}");
    child.wait().unwrap();
    // Released at once, not left to expire (its lifetime is a minute).
    assert!(store.lease().await.unwrap().is_none());
    store
        .try_acquire(&Owner::current("next"), Duration::from_secs(5))
        .await
        .expect("free for the next process");
}

#[test]
fn an_s3_ledger_without_region_or_credentials_says_what_to_set() {
    let home = tempfile::tempdir().unwrap();
    let run = |region: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_provisioner"));
        cmd.args(["--ledger", "s3://some-bucket/prod", "state", "list"])
            .env("HOME", home.path())
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", home.path().join("none"))
            .env("AWS_SHARED_CREDENTIALS_FILE", home.path().join("none"));
        for k in [
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_PROFILE",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_ENDPOINT_URL",
        ] {
            cmd.env_remove(k);
        }
        if let Some(r) = region {
            cmd.env("AWS_REGION", r);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(None);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("AWS_REGION") && err.contains("--ledger file://state"),
        "{err}"
    );
    let (code, err) = run(Some("us-east-1"));
    assert_eq!(code, Some(1));
    assert!(
        err.contains("AWS_ACCESS_KEY_ID") && !err.contains("panicked"),
        "{err}"
    );
}

/// A store that stops answering (accepts, never refuses, never answers) fails a lease
/// renewal within the request deadline, so the holder notices before its lease expires
/// instead of hanging. The store sits behind a loopback proxy that forwards to moto until
/// it is told to go silent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_that_stops_answering_fails_the_renewal_instead_of_hanging() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let place = Place::s3().await;
    let upstream = place.endpoint.trim_start_matches("http://").to_string();
    let silent = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = format!("http://{}", listener.local_addr().unwrap());
    let flag = silent.clone();
    tokio::spawn(async move {
        loop {
            let (client, _) = listener.accept().await.unwrap();
            let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                continue;
            };
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let (f1, f2) = (flag.clone(), flag.clone());
            // Each direction forwards while the proxy talks; once silent, bytes are read
            // and dropped, and the connection is held open.
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16384];
                while let Ok(n) = cr.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    if !f1.load(Ordering::SeqCst) && sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16384];
                while let Ok(n) = sr.read(&mut buf).await {
                    if n == 0 || f2.load(Ordering::SeqCst) {
                        break;
                    }
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                std::future::pending::<()>().await;
            });
        }
    });
    let mut store = Store::open_with_aws(&place.url, &moto::aws_config_at(&proxy))
        .await
        .expect("open through the proxy");
    store.set_request_timeout(Duration::from_secs(2));
    let mut lease = store
        .try_acquire(&Owner::current("holder"), Duration::from_secs(60))
        .await
        .unwrap();
    silent.store(true, Ordering::SeqCst);
    // The guard only keeps a regression from hanging the suite.
    let renewed = tokio::time::timeout(
        Duration::from_secs(120),
        store.renew(&mut lease, Duration::from_secs(60)),
    )
    .await
    .expect("the renewal hung on a silent store");
    match renewed {
        Err(e @ LedgerError::TimedOut { .. }) => {
            assert!(e.to_string().contains("no answer within 2 seconds"), "{e}")
        }
        other => panic!("expected the renewal to time out, got {other:?}"),
    }
}
