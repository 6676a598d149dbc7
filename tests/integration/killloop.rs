//! The kill loop (issue 20, "Hostile conditions"): `provisioner apply --auto-approve` of the
//! worked example (`desired-state/`) against the DigitalOcean, GitHub and AWS simulators is
//! killed with SIGKILL at random points, several times a round, and then left to finish.
//! Every round starts from fresh simulators and a fresh ledger: a file ledger in some
//! rounds, the S3 ledger on the AWS simulator (made by `provisioner init`, as in
//! docs/operations.md) in the others. After the kills:
//!
//! - the ledger always loads (`state list --json` succeeds after every kill);
//! - no run is stuck: an uninterrupted `apply --auto-approve` exits 0 within 3 tries, and
//!   `diff --detailed-exitcode` then exits 0;
//! - no duplicates: no two cloud objects share one natural key (a name, a record's type,
//!   name and data, a deploy key's title);
//! - no orphans: every cloud object the test did not make (the simulators' own defaults, the
//!   ledger bucket and fingerprint key `init` made) is known to the ledger, by its id (for
//!   the SMTP user's access key: the ledger's `smtp_username`).
//!
//! The figures are printed on one line (`kill-loop: …`). The seed comes from
//! `PROVISIONER_KILLLOOP_SEED` or the clock, and is printed, so a failing run can be
//! replayed (the kill points then differ only by the machine's timing).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use provisioner::sim::aws::AwsSim;
use provisioner::sim::digitalocean::{DoConfig, DoSim};
use provisioner::sim::flux_operator::FluxOperator;
use provisioner::sim::github::{GhConfig, GhSim};
use provisioner::sim::kubernetes::{KubeConfig, KubeSim};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_provisioner");
/// At least this many kills must land while an apply is running.
const KILLS: usize = 30;
/// At least this many rounds, and never more than `MAX_ROUNDS`.
const ROUNDS: usize = 8;
const MAX_ROUNDS: usize = 16;
/// An uninterrupted run that has not finished after this long is killed and counted as
/// stuck (a bound on the loop, so the test cannot hang; no run comes near it).
const RUN_BOUND: Duration = Duration::from_secs(180);

/// splitmix64: small, seeded, good enough to spread kill points.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi` (milliseconds).
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi.saturating_sub(lo) + 1)
    }
}

fn desired_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("desired-state")
}

/// Fresh simulators and a fresh ledger.
struct World {
    do_sim: DoSim,
    gh_sim: GhSim,
    aws_sim: AwsSim,
    /// The cluster the DigitalOcean simulator's cluster reaches, with the Flux Operator
    /// played against it.
    kube_sim: std::sync::Arc<KubeSim>,
    _operator: FluxOperator,
    dir: tempfile::TempDir,
    /// The S3 ledger of `[settings] ledger` on the AWS simulator, else a file ledger.
    s3_ledger: bool,
}

impl World {
    async fn new(s3_ledger: bool) -> World {
        let kube_sim = std::sync::Arc::new(
            KubeSim::start(KubeConfig {
                token: "kube-sim-token".into(),
                controllers: true,
            })
            .await
            .unwrap(),
        );
        let w = World {
            _operator: FluxOperator::start(kube_sim.clone()),
            do_sim: DoSim::start(DoConfig {
                provisioning: Duration::from_millis(200),
                kubernetes: Some((kube_sim.url().to_string(), kube_sim.token().to_string())),
                ..DoConfig::default()
            })
            .await
            .unwrap(),
            gh_sim: GhSim::start(GhConfig::default()).await.unwrap(),
            aws_sim: AwsSim::start("us-east-1").await.unwrap(),
            kube_sim,
            dir: tempfile::tempdir().unwrap(),
            s3_ledger,
        };
        // The repositories and environments the example names exist, as on GitHub.
        let state = provisioner::desired::load_with(
            &desired_dir(),
            &provisioner::desired::Inputs {
                environment: Some("production".into()),
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        for r in state.resources.values() {
            if let Some(repo) = r.spec_json["repository"].as_str() {
                w.gh_sim.create_repo(repo);
                if let Some(env) = r.spec_json["environment"].as_str() {
                    w.gh_sim.create_environment(repo, env);
                }
            }
        }
        w
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("-d").arg(desired_dir());
        c.env("PROVISIONER_ENVIRONMENT", "production");
        c.env_remove("PROVISIONER_LEDGER")
            .env_remove("PROVISIONER_FINGERPRINT_KEY")
            .env_remove("RUST_LOG");
        if !self.s3_ledger {
            c.arg("--ledger")
                .arg(format!(
                    "file://{}",
                    self.dir.path().join("state").display()
                ))
                .env(
                    "PROVISIONER_FINGERPRINT_KEY",
                    "killloop-fingerprint-key-0123456789",
                );
        }
        c.args(args)
            .env("NO_COLOR", "1")
            .env("DIGITALOCEAN_TOKEN", "sim-token")
            .env("DIGITALOCEAN_API_URL", self.do_sim.url())
            .env("SPACES_ENDPOINT_URL", self.aws_sim.url())
            .env("SPACES_ACCESS_KEY_ID", "killloop")
            .env("SPACES_SECRET_ACCESS_KEY", "killloop")
            .env("GITHUB_TOKEN", "sim-gh-token")
            .env("GITHUB_API_URL", self.gh_sim.url())
            .env("AWS_ENDPOINT_URL", self.aws_sim.url())
            .env("AWS_ACCESS_KEY_ID", "killloop")
            .env("AWS_SECRET_ACCESS_KEY", "killloop")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("CI_DIGITALOCEAN_TOKEN", "canary-killloop-do-not-leak")
            .stdin(Stdio::null());
        c
    }

    /// Runs to the end (or `RUN_BOUND`): the exit code (`None` if killed at the bound),
    /// stdout and stderr. Polled, so the simulators keep being served meanwhile.
    async fn run(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let out = self.dir.path().join("out.txt");
        let err = self.dir.path().join("err.txt");
        let mut child = self
            .command(args)
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let code = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status.code();
            }
            if started.elapsed() > RUN_BOUND {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        (code, read(&out), read(&err))
    }

    /// Starts an apply and SIGKILLs it after `after`; whether the kill landed (the apply
    /// was still running).
    async fn kill_apply_after(&self, after: Duration) -> bool {
        let mut child = self
            .command(&["apply", "--auto-approve"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        tokio::time::sleep(after).await;
        let running = child.try_wait().unwrap().is_none();
        // `Child::kill` sends SIGKILL on Unix.
        let _ = child.kill();
        let _ = child.wait();
        running
    }

    /// Every object the simulators hold, with the id the ledger would record.
    fn inventory(&self) -> Vec<Obj> {
        let mut out = Vec::new();
        let mut push = |kind: &str, key: String, id: String| {
            out.push(Obj {
                kind: kind.to_string(),
                key,
                id,
            })
        };
        let s = |v: &Value, k: &str| match &v[k] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        self.do_sim.edit(|st| {
            for (list, kind, key) in [
                (&st.vpcs, "vpc", "name"),
                (&st.clusters, "kubernetes_cluster", "name"),
                (&st.load_balancers, "load_balancer", "name"),
                (&st.firewalls, "firewall", "name"),
                (&st.cdn_endpoints, "cdn_endpoint", "origin"),
                (&st.projects, "project", "name"),
            ] {
                for o in list {
                    push(kind, s(o, key), s(o, "id"));
                }
            }
            for d in &st.domains {
                push("domain", s(d, "name"), s(d, "name"));
            }
            for (domain, records) in &st.records {
                for r in records {
                    // The zone's own SOA and NS records come with the domain.
                    if ["SOA", "NS"].contains(&s(r, "type").as_str()) {
                        continue;
                    }
                    push(
                        "domain_record",
                        format!(
                            "{domain} {} {} {}",
                            s(r, "type"),
                            s(r, "name"),
                            s(r, "data")
                        ),
                        format!("{domain}/{}", s(r, "id")),
                    );
                }
            }
            for k in &st.spaces_keys {
                push("spaces_key", s(k, "name"), s(k, "access_key"));
            }
        });
        self.aws_sim.edit(|st| {
            // S3 buckets and Spaces buckets: both on the AWS simulator.
            for name in st.buckets.keys() {
                push("bucket", name.clone(), name.clone());
            }
            for (name, u) in &st.users {
                push("iam_user", name.clone(), name.clone());
                for (key, _, _) in &u.keys {
                    push("iam_access_key", key.clone(), key.clone());
                }
            }
            for (name, t) in &st.topics {
                let arn = t.attributes.get("TopicArn").cloned().unwrap_or_else(|| {
                    format!(
                        "arn:aws:sns:us-east-1:{}:{name}",
                        provisioner::sim::aws::ACCOUNT
                    )
                });
                push("sns_topic", name.clone(), arn);
            }
            for (name, secret) in &st.secrets {
                push("secret", name.clone(), secret.arn.clone());
            }
        });
        self.aws_sim.ses().edit(|st| {
            for name in st.identities.keys() {
                push("ses_identity", name.clone(), name.clone());
            }
            for name in st.configuration_sets.keys() {
                push("ses_configuration_set", name.clone(), name.clone());
            }
        });
        self.gh_sim.edit(|st| {
            for (repo, r) in &st.repos {
                for name in r.actions.secrets.keys() {
                    push(
                        "gh_secret",
                        format!("{repo}/{name}"),
                        format!("{repo}/{name}"),
                    );
                }
                for name in r.actions.variables.keys() {
                    push(
                        "gh_variable",
                        format!("{repo}/{name}"),
                        format!("{repo}/{name}"),
                    );
                }
                for (env, scope) in &r.environments {
                    for name in scope.secrets.keys() {
                        let id = format!("{repo}/{env}/{name}");
                        push("gh_environment_secret", id.clone(), id);
                    }
                }
                for k in &r.keys {
                    push(
                        "gh_deploy_key",
                        format!("{repo} {}", s(k, "title")),
                        format!("{repo}/{}", s(k, "id")),
                    );
                }
            }
        });
        // Kubernetes objects provisioner labelled: Secrets and the FluxInstance by
        // `namespace/name`, a manifest's objects by the manifest's address (its ledger id).
        let objects: Vec<Value> = self.kube_sim.edit(|st| st.objects().cloned().collect());
        for o in objects {
            let m = &o["metadata"];
            if m["labels"]["app.kubernetes.io/managed-by"] != "provisioner" {
                continue;
            }
            let kind = s(&o, "kind");
            let name = s(m, "name");
            let place = match m["namespace"].as_str() {
                Some(ns) => format!("{ns}/{name}"),
                None => name,
            };
            match kind.as_str() {
                "Secret" => push("kube_secret", place.clone(), place),
                "FluxInstance" => push("flux_instance", place.clone(), place),
                _ => push(
                    "kube_object",
                    format!("{kind}/{place}"),
                    s(&m["annotations"], "provisioner.dev/address"),
                ),
            }
        }
        out
    }

    /// The ids the ledger knows (lower-cased: GitHub names are case-insensitive), or why
    /// it does not load.
    async fn ledger_ids(&self) -> Result<BTreeSet<String>, String> {
        let (code, out, err) = self.run(&["state", "list", "--json"]).await;
        if code != Some(0) {
            return Err(format!("state list exited {code:?}: {err}"));
        }
        let mut ids = BTreeSet::new();
        for line in out.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line).map_err(|e| format!("{e}: {line}"))?;
            ids.insert(v["id"].as_str().unwrap_or_default().to_lowercase());
        }
        // The SMTP user's access key is recorded as its SMTP user name.
        let (code, out, _) = self.run(&["state", "show", "aws.iam_smtp_user.smtp"]).await;
        if code == Some(0) {
            let v: Value = serde_json::from_str(&out).map_err(|e| format!("{e}: state show"))?;
            if let Some(key) = v["attributes"]["smtp_username"].as_str() {
                ids.insert(key.to_lowercase());
            }
        }
        Ok(ids)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Obj {
    kind: String,
    /// The natural key: two objects with one key are duplicates.
    key: String,
    /// The id as the ledger records it.
    id: String,
}

#[derive(Default)]
struct Figures {
    rounds: usize,
    file_rounds: usize,
    s3_rounds: usize,
    kills: usize,
    missed: usize,
    duplicates: Vec<String>,
    orphans: Vec<String>,
    stuck: Vec<String>,
    unreadable: Vec<String>,
}

#[tokio::test(flavor = "multi_thread")]
async fn thirty_sigkills_during_applies_leave_no_duplicate_orphan_or_stuck_run() {
    let seed = std::env::var("PROVISIONER_KILLLOOP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("kill-loop seed {seed} (PROVISIONER_KILLLOOP_SEED={seed} replays it)");
    let mut rng = Rng(seed);

    // How long one uninterrupted apply of the worked example takes here: kills are spread
    // over it.
    let calibration = World::new(false).await;
    let started = Instant::now();
    let (code, _, err) = calibration.run(&["apply", "--auto-approve"]).await;
    assert_eq!(code, Some(0), "the worked example applies: {err}");
    let whole = started.elapsed();
    drop(calibration);
    eprintln!("one apply takes {whole:?}");
    let whole_ms = whole.as_millis() as u64;

    let mut f = Figures::default();
    for round in 0..MAX_ROUNDS {
        if round >= ROUNDS && f.kills >= KILLS {
            break;
        }
        f.rounds += 1;
        let s3 = round % 2 == 1;
        if s3 {
            f.s3_rounds += 1;
        } else {
            f.file_rounds += 1;
        }
        let w = World::new(s3).await;
        if s3 {
            let (code, _, err) = w.run(&["init"]).await;
            assert_eq!(code, Some(0), "round {round}: init: {err}");
        }
        // What the test made: the simulators' defaults, and what `init` made.
        let made: BTreeSet<String> = w.inventory().into_iter().map(|o| o.id).collect();

        // Several kills, each within its share of one apply, so that together they land
        // all along it (each restart goes on where the last one stopped).
        let planned = 3 + (rng.next() % 2) as usize;
        for k in 0..planned {
            let after = rng.between(30, (whole_ms / planned as u64).max(60));
            if w.kill_apply_after(Duration::from_millis(after)).await {
                f.kills += 1;
            } else {
                f.missed += 1;
            }
            if let Err(e) = w.ledger_ids().await {
                f.unreadable
                    .push(format!("round {round} kill {k} after {after} ms: {e}"));
            }
        }

        // Then left alone: converges within three applies, and the plan is empty.
        let mut converged = false;
        let mut last = String::new();
        for _ in 0..3 {
            let (code, _, err) = w.run(&["apply", "--auto-approve"]).await;
            if code == Some(0) {
                converged = true;
                break;
            }
            last = format!("apply exited {code:?}: {}", tail(&err));
        }
        if !converged {
            f.stuck.push(format!("round {round}: {last}"));
        } else {
            let (code, out, err) = w.run(&["diff", "--detailed-exitcode"]).await;
            if code != Some(0) {
                f.stuck.push(format!(
                    "round {round}: diff exited {code:?} after convergence: {}{}",
                    tail(&out),
                    tail(&err)
                ));
            }
        }

        // Counted against the simulators themselves.
        let objects = w.inventory();
        let mut by_key: BTreeMap<(String, String), usize> = BTreeMap::new();
        for o in &objects {
            *by_key.entry((o.kind.clone(), o.key.clone())).or_default() += 1;
        }
        for ((kind, key), n) in by_key {
            if n > 1 {
                f.duplicates
                    .push(format!("round {round}: {n} × {kind} {key}"));
            }
        }
        match w.ledger_ids().await {
            Ok(known) => {
                for o in objects {
                    if !made.contains(&o.id) && !known.contains(&o.id.to_lowercase()) {
                        f.orphans
                            .push(format!("round {round}: {} {} ({})", o.kind, o.key, o.id));
                    }
                }
            }
            Err(e) => f.unreadable.push(format!("round {round} at the end: {e}")),
        }
    }

    eprintln!(
        "kill-loop: seed={seed} rounds={} (file ledger {}, S3 ledger on the AWS simulator {}) kills={} (missed, apply already done: {}) duplicates={} orphans={} stuck={} unreadable-ledger={} (one apply {:.1} s)",
        f.rounds,
        f.file_rounds,
        f.s3_rounds,
        f.kills,
        f.missed,
        f.duplicates.len(),
        f.orphans.len(),
        f.stuck.len(),
        f.unreadable.len(),
        whole.as_secs_f64(),
    );
    for line in f.stuck.iter().chain(&f.orphans) {
        eprintln!("  {line}");
    }
    assert!(f.kills >= KILLS, "only {} kills landed", f.kills);
    assert!(f.duplicates.is_empty(), "duplicates: {:#?}", f.duplicates);
    assert!(f.orphans.is_empty(), "orphans: {:#?}", f.orphans);
    assert!(f.stuck.is_empty(), "stuck: {:#?}", f.stuck);
    assert!(
        f.unreadable.is_empty(),
        "the ledger did not load: {:#?}",
        f.unreadable
    );
}

/// The last lines of an output, for a message.
fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}
