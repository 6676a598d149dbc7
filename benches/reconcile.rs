//! The cost of one no-drift reconcile pass, against the lower bound and against the
//! per-resource refresh that Terraform and Crossplane do.
//!
//! `cargo bench --bench reconcile` (sizes 100 and 1,000; add `-- 10000` for 10,000;
//! `--quick` leaves out the per-resource refresh; `--reads=N` sets
//! `[settings.concurrency] reads`, 24 by default). It
//! builds a realistic desired state, applies it to the simulators (DigitalOcean, GitHub,
//! and the project's AWS simulator, which also stands in for Spaces), then injects a 50 ms
//! round trip on every request and measures:
//!
//! - a no-drift pass (observe + plan) as the daemon does it: requests per provider, wall
//!   time, against the lower bound (the fewest requests the APIs allow, and the longest chain
//!   of dependent requests × RTT);
//! - the same state refreshed the per-resource way (one GET per resource, 10 in parallel,
//!   with the same clients against the same simulators);
//! - `provisioner run --once` as a separate process on the converged state: its CPU time
//!   and peak RSS.
//!
//! Figures are reported in docs/performance.md.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use provisioner::desired::{self, DesiredState};
use provisioner::exec::engine::{ExecOptions, NoPersist, NoProgress};
use provisioner::ledger::Ledger;
use provisioner::ledger::fingerprint::FingerprintKey;
use provisioner::providers::Clouds;
use provisioner::providers::aws::AwsProvider;
use provisioner::providers::digitalocean::spaces::SpacesConfig;
use provisioner::providers::digitalocean::{ApiConfig, DoClient, DoProvider};
use provisioner::providers::github::{GhApiConfig, GhClient, GhProvider};
use provisioner::sim::Fault;
use provisioner::sim::aws::AwsSim;
use provisioner::sim::digitalocean::{DoConfig, DoSim};
use provisioner::sim::github::{GhConfig, GhSim};

const RTT: Duration = Duration::from_millis(50);

/// How many of each kind, for `n` resources (proportions of a real platform at 1,000).
struct Mix {
    domains: usize,
    records: usize,
    repos: usize,
    secrets: usize,
    firewalls: usize,
    load_balancers: usize,
    clusters: usize,
    spaces: usize,
    s3: usize,
    topics: usize,
    sm: usize,
    vpcs: usize,
}

impl Mix {
    fn of(n: usize) -> Mix {
        let part = |per_thousand: usize| (n * per_thousand / 1000).max(1);
        let mut m = Mix {
            domains: part(5),
            records: part(500),
            repos: part(20),
            secrets: part(200),
            firewalls: part(60),
            load_balancers: part(20),
            clusters: part(10),
            spaces: part(50),
            s3: part(40),
            topics: part(40),
            sm: part(40),
            vpcs: 0,
        };
        m.vpcs = n.saturating_sub(m.total()).max(1);
        m
    }

    fn total(&self) -> usize {
        self.domains
            + self.records
            + self.secrets
            + self.firewalls
            + self.load_balancers
            + self.clusters
            + self.spaces
            + self.s3
            + self.topics
            + self.sm
            + self.vpcs
    }

    /// The fewest requests a complete observation needs: one list page per kind (per
    /// parent where the API nests), and the per-bucket configuration reads no API batches.
    fn request_bound(&self) -> BTreeMap<&'static str, usize> {
        let pages = |n: usize, per: usize| n.div_ceil(per).max(1);
        let do_ = pages(self.vpcs, 200)
            + pages(self.clusters, 200)
            + pages(self.load_balancers, 200)
            + pages(self.firewalls, 200)
            + pages(self.domains, 200)
            + self.domains * pages(self.records.div_ceil(self.domains) + 3, 200);
        // Spaces (served here by the AWS simulator): one ListBuckets, then versioning, CORS,
        // lifecycle and ACL per bucket.
        let spaces = 1 + 4 * self.spaces;
        let gh = self.repos * pages(self.secrets.div_ceil(self.repos), 100);
        // S3: ListBuckets, then versioning, encryption, public access block, lifecycle, CORS
        // and tags per bucket; SNS: the list, then attributes and tags per topic; Secrets
        // Manager: the list carries everything.
        // The list names each bucket's region (asked with `max-buckets`), so no location
        // read is needed.
        let aws = 1 + 6 * self.s3 + pages(self.topics, 100) + 2 * self.topics + pages(self.sm, 100);
        BTreeMap::from([("digitalocean", do_), ("github", gh), ("aws", aws + spaces)])
    }

    fn desired(&self, secret_file: &Path) -> String {
        let mut t = String::with_capacity(self.total() * 200);
        t.push_str("[settings]\nprune = true\n\n");
        if let Some(reads) = reads() {
            t.push_str(&format!("[settings.concurrency]\nreads = {reads}\n\n"));
        }
        for i in 0..self.vpcs {
            t.push_str(&format!(
                "[digitalocean.vpc.v{i}]\nname = \"vpc-{i}\"\nregion = \"nyc3\"\nip_range = \"10.{}.{}.0/24\"\n\n",
                (i / 256) % 256,
                i % 256
            ));
        }
        for d in 0..self.domains {
            t.push_str(&format!(
                "[digitalocean.domain.d{d}]\nname = \"d{d}.example.com\"\n\n"
            ));
        }
        for r in 0..self.records {
            let d = r % self.domains;
            t.push_str(&format!(
                "[digitalocean.domain_record.r{r}]\ndomain = \"${{digitalocean.domain.d{d}.name}}\"\ntype = \"A\"\nname = \"h{r}\"\ndata = \"10.{}.{}.{}\"\n\n",
                (r / 65536) % 256,
                (r / 256) % 256,
                r % 256
            ));
        }
        for f in 0..self.firewalls {
            t.push_str(&format!(
                "[digitalocean.firewall.f{f}]\nname = \"fw-{f}\"\ntags = [\"t{f}\"]\n\n[[digitalocean.firewall.f{f}.inbound_rules]]\nprotocol = \"tcp\"\nports = \"443\"\nsources = {{ addresses = [\"0.0.0.0/0\"] }}\n\n"
            ));
        }
        for l in 0..self.load_balancers {
            t.push_str(&format!(
                "[digitalocean.load_balancer.l{l}]\nname = \"lb-{l}\"\nregion = \"nyc3\"\ntag = \"t{l}\"\n\n[[digitalocean.load_balancer.l{l}.forwarding_rules]]\nentry_protocol = \"http\"\nentry_port = 80\ntarget_protocol = \"http\"\ntarget_port = 80\n\n"
            ));
        }
        for c in 0..self.clusters {
            t.push_str(&format!(
                "[digitalocean.kubernetes_cluster.c{c}]\nname = \"k8s-{c}\"\nregion = \"nyc3\"\nversion = \"1.33\"\n\n"
            ));
            for p in 0..4 {
                t.push_str(&format!(
                    "[digitalocean.kubernetes_cluster.c{c}.node_pools.p{p}]\nsize = \"s-2vcpu-4gb\"\ncount = 2\n\n"
                ));
            }
        }
        for b in 0..self.spaces {
            t.push_str(&format!(
                "[digitalocean.spaces_bucket.s{b}]\nname = \"space-{b}\"\nregion = \"nyc3\"\nversioning = true\n\n"
            ));
        }
        for s in 0..self.secrets {
            let repo = s % self.repos;
            t.push_str(&format!(
                "[github.actions_secret.g{s}]\nrepository = \"org/repo-{repo}\"\nname = \"SECRET_{s}\"\nvalue = {{ file = \"{}\" }}\n\n",
                secret_file.display()
            ));
        }
        for b in 0..self.s3 {
            t.push_str(&format!(
                "[aws.s3_bucket.b{b}]\nbucket = \"bucket-{b}\"\nversioning = true\ntags = {{ team = \"platform\" }}\n\n"
            ));
        }
        for i in 0..self.topics {
            t.push_str(&format!("[aws.sns_topic.t{i}]\nname = \"topic-{i}\"\n\n"));
        }
        for i in 0..self.sm {
            t.push_str(&format!(
                "[aws.secretsmanager_secret.m{i}]\nname = \"app/secret-{i}\"\nvalue = {{ generate = {{ length = 32 }} }}\n\n"
            ));
        }
        t
    }
}

struct Sims {
    do_sim: DoSim,
    gh_sim: GhSim,
    aws_sim: AwsSim,
}

impl Sims {
    fn counts(&self) -> BTreeMap<&'static str, usize> {
        BTreeMap::from([
            ("digitalocean", self.do_sim.faults.requests().len()),
            ("github", self.gh_sim.faults.requests().len()),
            ("aws", self.aws_sim.faults.requests().len()),
        ])
    }

    fn latency(&self, on: bool) {
        for f in [
            &self.do_sim.faults,
            &self.gh_sim.faults,
            &self.aws_sim.faults,
        ] {
            f.clear();
            if on {
                f.inject(None, "/", Fault::Latency(RTT), None);
            }
        }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DIGITALOCEAN_TOKEN", "sim-token".into()),
            ("DIGITALOCEAN_API_URL", self.do_sim.url().into()),
            ("SPACES_ENDPOINT_URL", self.aws_sim.url().into()),
            ("SPACES_ACCESS_KEY_ID", "bench".into()),
            ("SPACES_SECRET_ACCESS_KEY", "bench".into()),
            ("GITHUB_TOKEN", "sim-gh-token".into()),
            ("GITHUB_API_URL", self.gh_sim.url().into()),
            ("AWS_ENDPOINT_URL", self.aws_sim.url().into()),
            ("AWS_ACCESS_KEY_ID", "bench".into()),
            ("AWS_SECRET_ACCESS_KEY", "bench".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            (
                "PROVISIONER_FINGERPRINT_KEY",
                "bench-fingerprint-key-0123456789".into(),
            ),
        ]
    }
}

fn aws_config(url: &str) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .endpoint_url(url)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(
            aws_sdk_s3::config::Credentials::new("bench", "bench", None, None, "bench"),
        ))
        .behavior_version(aws_config::BehaviorVersion::latest())
        .build()
}

/// The providers, configured like `Clouds::from_env` would, but in-process. `fast` lifts
/// the DigitalOcean budget window and GitHub's write gap for setting the state up.
fn clouds(s: &Sims, fast: bool) -> Clouds {
    let mut do_config = ApiConfig::new(s.do_sim.url(), "sim-token", 250);
    if fast {
        do_config.window = Duration::from_millis(200);
    }
    let mut gh = GhApiConfig::new(s.gh_sim.url(), "sim-gh-token");
    if fast {
        gh.write_gap = Duration::ZERO;
    }
    let aws = aws_config(s.aws_sim.url());
    Clouds::new(
        Ok(DoProvider {
            client: DoClient::new(do_config).unwrap(),
            spaces: Some(SpacesConfig {
                endpoint: Some(s.aws_sim.url().into()),
                access_key_id: "bench".into(),
                secret_access_key: "bench".into(),
            }),
            poll_every: Duration::from_millis(100),
        }),
        Ok(GhProvider::new(GhClient::new(gh).unwrap())),
        Ok(AwsProvider::new(&aws, &aws)),
    )
}

/// One GET per managed resource, ten at a time: the per-resource refresh.
async fn refresh_per_resource(s: &Sims, ledger: &Ledger) -> usize {
    let do_client = DoClient::new(ApiConfig::new(s.do_sim.url(), "sim-token", 250)).unwrap();
    let gh = GhClient::new(GhApiConfig::new(s.gh_sim.url(), "sim-gh-token")).unwrap();
    let aws = aws_config(s.aws_sim.url());
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&aws)
            .force_path_style(true)
            .build(),
    );
    let sns = aws_sdk_sns::Client::new(&aws);
    let sm = aws_sdk_secretsmanager::Client::new(&aws);
    let gets = ledger.resources.values().map(|e| {
        let (do_client, gh, s3, sns, sm) = (&do_client, &gh, &s3, &sns, &sm);
        async move {
            let id = e.id.as_str();
            match e.kind.as_str() {
                "digitalocean.vpc" => do_client
                    .request(reqwest::Method::GET, &format!("/v2/vpcs/{id}"), None)
                    .await
                    .is_ok(),
                "digitalocean.domain" => do_client
                    .request(reqwest::Method::GET, &format!("/v2/domains/{id}"), None)
                    .await
                    .is_ok(),
                "digitalocean.domain_record" => {
                    let (d, r) = id.split_once('/').unwrap_or(("", id));
                    do_client
                        .request(
                            reqwest::Method::GET,
                            &format!("/v2/domains/{d}/records/{r}"),
                            None,
                        )
                        .await
                        .is_ok()
                }
                "digitalocean.firewall" => do_client
                    .request(reqwest::Method::GET, &format!("/v2/firewalls/{id}"), None)
                    .await
                    .is_ok(),
                "digitalocean.load_balancer" => do_client
                    .request(
                        reqwest::Method::GET,
                        &format!("/v2/load_balancers/{id}"),
                        None,
                    )
                    .await
                    .is_ok(),
                "digitalocean.kubernetes_cluster" => do_client
                    .request(
                        reqwest::Method::GET,
                        &format!("/v2/kubernetes/clusters/{id}"),
                        None,
                    )
                    .await
                    .is_ok(),
                "digitalocean.spaces_bucket" | "aws.s3_bucket" => {
                    s3.head_bucket().bucket(id).send().await.is_ok()
                }
                "github.actions_secret" => {
                    let (repo, name) = id.rsplit_once('/').unwrap_or(("", id));
                    gh.get(&format!("/repos/{repo}/actions/secrets/{name}"))
                        .await
                        .is_ok()
                }
                "aws.sns_topic" => sns
                    .get_topic_attributes()
                    .topic_arn(id)
                    .send()
                    .await
                    .is_ok(),
                "aws.secretsmanager_secret" => {
                    sm.describe_secret().secret_id(id).send().await.is_ok()
                }
                _ => true,
            }
        }
    });
    futures_util::stream::iter(gets)
        .buffer_unordered(10)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await
}

/// CPU seconds and peak RSS (KiB) of `provisioner run --once` on the converged state.
fn daemon_pass(s: &Sims, desired_dir: &Path, ledger_url: &str) -> (f64, u64, f64, bool) {
    // `BENCH_WRAP="heaptrack -o /tmp/daemon"` runs the daemon under a profiler.
    let wrap: Vec<String> = std::env::var("BENCH_WRAP")
        .map(|w| w.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    let mut child = match wrap.split_first() {
        Some((tool, args)) => {
            let mut c = Command::new(tool);
            c.args(args).arg(env!("CARGO_BIN_EXE_provisioner"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_provisioner")),
    };
    let mut child = child
        .arg("-d")
        .arg(desired_dir)
        .args(["run", "--once", "--listen", "127.0.0.1:0"])
        .env("PROVISIONER_LEDGER", ledger_url)
        .envs(s.env())
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let started = Instant::now();
    let ticks = 100.0; // USER_HZ on Linux
    let (mut cpu, mut rss) = (0.0, 0u64);
    let status = loop {
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map(|(_, r)| r)
                .unwrap_or("")
                .split_whitespace()
                .collect();
            if fields.len() > 13 {
                let u: f64 = fields[11].parse().unwrap_or(0.0);
                let k: f64 = fields[12].parse().unwrap_or(0.0);
                cpu = (u + k) / ticks;
            }
        }
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:"))
        {
            rss = line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(rss);
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    (cpu, rss, started.elapsed().as_secs_f64(), status.success())
}

async fn run(n: usize) {
    let mix = Mix::of(n);
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "bench-secret-value").unwrap();
    let desired_dir = dir.path().join("desired");
    std::fs::create_dir_all(&desired_dir).unwrap();
    std::fs::write(desired_dir.join("bench.toml"), mix.desired(&secret)).unwrap();
    let key = FingerprintKey::new(b"bench-fingerprint-key-0123456789".to_vec()).unwrap();
    let mut d: DesiredState = desired::load(&desired_dir).unwrap_or_else(|e| panic!("{e}"));
    desired::secrets::fingerprint_all(&mut d, &key).unwrap();

    let sims = Sims {
        do_sim: DoSim::start(DoConfig {
            provisioning: Duration::ZERO,
            per_hour: usize::MAX / 2,
            per_minute: usize::MAX / 2,
            ..DoConfig::default()
        })
        .await
        .unwrap(),
        gh_sim: GhSim::start(GhConfig {
            per_hour: u64::MAX / 2,
            ..GhConfig::default()
        })
        .await
        .unwrap(),
        aws_sim: AwsSim::start("us-east-1").await.unwrap(),
    };
    for r in 0..mix.repos {
        sims.gh_sim.create_repo(&format!("org/repo-{r}"));
    }

    // Set up: apply everything (no latency), and write the ledger for the daemon run.
    let setup = clouds(&sims, true);
    let mut ledger = Ledger::create();
    let started = Instant::now();
    let live = setup.observe(&d, &ledger).await;
    let (plan, _) = provisioner::plan::plan(&d, &ledger, &live).unwrap();
    let options = ExecOptions {
        concurrency: BTreeMap::from([("digitalocean", 16), ("github", 16), ("aws", 16)]),
        key: Some(&key),
        ..ExecOptions::sequential()
    };
    let report = provisioner::exec::execute(
        &plan,
        &d,
        &mut ledger,
        &live,
        &setup,
        &options,
        &mut NoPersist,
        &NoProgress,
    )
    .await;
    let (done, failed, _) = report.counts();
    assert_eq!(
        failed,
        0,
        "{:?}",
        report.outcomes.iter().find(|o| o.result.is_err())
    );
    let setup_time = started.elapsed();
    let store = provisioner::ledger::store::Store::open(&format!(
        "file://{}",
        dir.path().join("state").display()
    ))
    .await
    .unwrap();
    store.write(ledger.clone(), None, "bench").await.unwrap();

    // The same pass with no injected latency: what the pass costs beyond round trips (the
    // work of both ends, on this machine's cores). The median of three. Its own clients,
    // so that the measured passes below start within a fresh DigitalOcean budget.
    let floor_clouds = clouds(&sims, false);
    let mut floors = Vec::new();
    for _ in 0..3 {
        let started0 = Instant::now();
        let live0 = floor_clouds.observe(&d, &ledger).await;
        let _ = provisioner::plan::plan(&d, &ledger, &live0).unwrap();
        floors.push(started0.elapsed());
    }
    floors.sort();
    let wall0 = floors[1];

    // The measured pass: observe + plan with a 50 ms round trip, as the daemon does it,
    // three times (the median is reported); requests are counted on the first.
    sims.latency(true);
    let daemon_clouds = Arc::new(clouds(&sims, false));
    let before = sims.counts();
    let started = Instant::now();
    let live = daemon_clouds.observe(&d, &ledger).await;
    let (plan, _) = provisioner::plan::plan(&d, &ledger, &live).unwrap();
    let mut walls = vec![started.elapsed()];
    let after = sims.counts();
    assert!(!plan.has_changes(), "the pass is a no-drift pass");
    let used: BTreeMap<&str, usize> = after.iter().map(|(k, v)| (*k, v - before[k])).collect();
    // Two more passes: GitHub's lists come back 304 (free against its limit).
    let before2 = sims.counts();
    for _ in 0..2 {
        let started2 = Instant::now();
        let live2 = daemon_clouds.observe(&d, &ledger).await;
        let _ = provisioner::plan::plan(&d, &ledger, &live2).unwrap();
        walls.push(started2.elapsed());
    }
    let after2 = sims.counts();
    let used2: BTreeMap<&str, usize> = after2
        .iter()
        .map(|(k, v)| (*k, (v - before2[k]) / 2))
        .collect();
    walls.sort();
    let (wall, wall_min, wall_max) = (walls[1], walls[0], walls[2]);
    let not_modified = match daemon_clouds
        .slot("github")
        .and_then(|s| s.ready_provider())
    {
        Some(provisioner::providers::AnyProvider::GitHub(g)) => g
            .client
            .stats
            .not_modified
            .load(std::sync::atomic::Ordering::Relaxed),
        _ => 0,
    };

    // The per-resource refresh, same clients, same simulators, same latency. Above 1,000
    // resources it is not run: its DigitalOcean GETs alone would take half an hour at the
    // 250-a-minute budget.
    let refresh = if mix.total() <= 1000 && !quick() {
        let before3 = sims.counts();
        let started3 = Instant::now();
        let refreshed = refresh_per_resource(&sims, &ledger).await;
        let wall3 = started3.elapsed();
        let after3 = sims.counts();
        Some((
            refreshed,
            wall3,
            after3.iter().map(|(k, v)| v - before3[k]).sum::<usize>(),
        ))
    } else {
        None
    };

    // The daemon process itself.
    let sims_ref = &sims;
    let ledger_url = format!("file://{}", dir.path().join("state").display());
    let (cpu, rss, daemon_wall, daemon_ok) =
        tokio::task::block_in_place(|| daemon_pass(sims_ref, &desired_dir, &ledger_url));
    sims.latency(false);

    let bound = mix.request_bound();
    let total: usize = used.values().sum();
    let total_bound: usize = bound.values().sum();
    // Longest chain of dependent requests: ListBuckets, then a bucket's configuration
    // (records: the domains, then each domain's records; topics: the list, then each
    // topic's attributes).
    let chain = 2;
    println!(
        "\n== {} resources ({} applied in {:.1}s) ==",
        mix.total(),
        done,
        setup_time.as_secs_f64()
    );
    println!("no-drift pass, RTT {} ms:", RTT.as_millis());
    for (p, used) in &used {
        // The AWS simulator also serves the Spaces (S3) API in this setup.
        let label = if *p == "aws" { "aws+spaces" } else { p };
        println!(
            "  {label:13} {used:5} requests (bound {:5}, {:.2}x)",
            bound[p],
            *used as f64 / bound[p].max(1) as f64
        );
    }
    println!(
        "  {:13} {total:5} requests (bound {total_bound:5}, {:.2}x); one GET per resource would be {}",
        "total",
        total as f64 / total_bound as f64,
        mix.total()
    );
    println!(
        "  wall {:.2}s (median of 3: {:.2}-{:.2}s); latency bound {} x {} ms = {:.2}s ({:.2}x)",
        wall.as_secs_f64(),
        wall_min.as_secs_f64(),
        wall_max.as_secs_f64(),
        chain,
        RTT.as_millis(),
        chain as f64 * RTT.as_secs_f64(),
        wall.as_secs_f64() / (chain as f64 * RTT.as_secs_f64())
    );
    println!(
        "  the same pass without injected latency (median of 3): {:.3}s",
        wall0.as_secs_f64()
    );
    println!(
        "later passes: {} requests each ({} GitHub lists answered 304 so far)",
        used2.values().sum::<usize>(),
        not_modified,
    );
    let do_resources =
        mix.vpcs + mix.domains + mix.records + mix.firewalls + mix.load_balancers + mix.clusters;
    println!(
        "per-resource refresh, projected: {} requests; its {do_resources} DigitalOcean GETs need {:.1} minutes at 250 a minute ({:.1}s at 10 in parallel with no budget)",
        mix.total(),
        do_resources as f64 / 250.0,
        (mix.total() as f64 / 10.0).ceil() * RTT.as_secs_f64()
    );
    match refresh {
        Some((refreshed, wall3, used3)) => println!(
            "per-resource refresh (one GET each, 10 in parallel): {used3} requests, wall {:.2}s ({refreshed} found); ratio {:.1}x requests, {:.1}x wall",
            wall3.as_secs_f64(),
            used3 as f64 / total as f64,
            wall3.as_secs_f64() / wall.as_secs_f64()
        ),
        None if quick() => println!("per-resource refresh: left out (--quick)"),
        None => println!(
            "per-resource refresh: not run above 1,000 resources (its DigitalOcean GETs alone would take {:.0} minutes at 250 a minute)",
            do_resources as f64 / 250.0
        ),
    }
    println!(
        "daemon process (`run --once`, first pass of a fresh process): {}, wall {daemon_wall:.2}s, CPU {cpu:.2}s, peak RSS {:.1} MB",
        if daemon_ok { "unchanged" } else { "FAILED" },
        rss as f64 / 1024.0
    );
    println!(
        "DigitalOcean budget at a 1-minute interval: {} requests/hour of 5,000 ({})",
        used["digitalocean"] * 60,
        if used["digitalocean"] * 60 <= 5000 {
            "safe"
        } else {
            "over: lengthen the interval"
        }
    );
}

/// `--quick`: leave out the per-resource refresh (two minutes at 1,000).
fn quick() -> bool {
    std::env::args().any(|a| a == "--quick")
}

/// `--reads=N`: `[settings.concurrency] reads` for the pass (default 24), to measure the
/// trade of memory for round trips.
fn reads() -> Option<u32> {
    std::env::args().find_map(|a| {
        let n = a.strip_prefix("--reads=")?;
        match n.parse() {
            Ok(n) if (1..=64).contains(&n) => Some(n),
            _ => {
                eprintln!("--reads={n}: expected a number from 1 to 64");
                std::process::exit(2)
            }
        }
    })
}

fn main() {
    let mut sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    if sizes.is_empty() {
        sizes = vec![100, 1000];
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for n in sizes {
        rt.block_on(run(n));
    }
}
