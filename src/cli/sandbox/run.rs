//! The sandbox itself (only with the `sandbox` feature): the simulators, the local ledger,
//! the daemon, and the drift it injects.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::desired::values::SecretSource;
use provisioner_sim::aws::AwsSim;
use provisioner_sim::digitalocean::{DoConfig, DoSim};
use provisioner_sim::github::{GhConfig, GhSim};
use provisioner_sim::kubernetes::{KubeConfig, KubeSim};

use super::SandboxArgs;

fn say(line: impl AsRef<str>) {
    outln!("sandbox: {}", line.as_ref());
}

/// A folder removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> std::io::Result<Self> {
        let path = std::env::temp_dir().join(format!(
            "provisioner-sandbox-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&path)?;
        Ok(TempDir(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The daemon child, stopped (SIGTERM, then a wait) when dropped.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(super) async fn sandbox(
    desired_dir: &Path,
    inputs: &crate::desired::Inputs,
    args: &SandboxArgs,
) -> anyhow::Result<()> {
    // With environments and none chosen, the sandbox runs the first (it is a simulated
    // world; `-e NAME` picks another).
    let mut inputs = inputs.clone();
    let environments = crate::desired::expand::environments(desired_dir);
    if inputs.environment.is_none()
        && let Some(first) = environments.first()
    {
        say(format!(
            "environment {first} (of {}; choose another with -e NAME)",
            environments.join(", ")
        ));
        inputs.environment = Some(first.clone());
    }
    let desired =
        crate::desired::load_with(desired_dir, &inputs).map_err(|e| anyhow::anyhow!("{e}"))?;
    let region = desired
        .settings
        .aws
        .region
        .as_ref()
        .map(|r| r.as_str().to_string())
        .unwrap_or_else(|| "us-east-1".into());
    // The cluster the DigitalOcean simulator makes is served by the Kubernetes simulator,
    // whose controllers play the namespace controller's and the garbage collector's part;
    // a task here plays the Flux Operator's.
    let kube_sim = std::sync::Arc::new(
        KubeSim::start(KubeConfig {
            token: format!("sandbox-{}", uuid::Uuid::new_v4().simple()),
            controllers: true,
        })
        .await?,
    );
    let do_sim = DoSim::start(DoConfig {
        provisioning: Duration::from_secs(3),
        kubernetes: Some((kube_sim.url().to_string(), kube_sim.token().to_string())),
        ..DoConfig::default()
    })
    .await?;
    let _operator = provisioner_sim::flux_operator::FluxOperator::start(kube_sim.clone());
    let gh_sim = GhSim::start(GhConfig::default()).await?;
    let aws_sim = AwsSim::start(&region).await?;
    // The repositories and environments the desired state names exist already, as they
    // would on GitHub.
    for r in desired.resources.values() {
        if r.kind().provider() != "github" {
            continue;
        }
        if let Some(repo) = r.spec_json["repository"].as_str() {
            gh_sim.create_repo(repo);
            if let Some(env) = r.spec_json["environment"].as_str() {
                gh_sim.create_environment(repo, env);
            }
        }
    }
    let dir = TempDir::new()?;
    say(format!(
        "DigitalOcean simulator on {}, GitHub on {}, AWS on {}, Kubernetes on {} (the Flux Operator played here)",
        do_sim.url(),
        gh_sim.url(),
        aws_sim.url(),
        kube_sim.url()
    ));
    say(format!(
        "ledger in {} (removed at exit)",
        dir.path().join("state").display()
    ));

    let mut env: Vec<(String, String)> = vec![
        (
            "PROVISIONER_LEDGER".into(),
            format!("file://{}", dir.path().join("state").display()),
        ),
        (
            "PROVISIONER_FINGERPRINT_KEY".into(),
            uuid::Uuid::new_v4().simple().to_string(),
        ),
        ("DIGITALOCEAN_TOKEN".into(), "sim-token".into()),
        ("DIGITALOCEAN_API_URL".into(), do_sim.url().into()),
        ("SPACES_ENDPOINT_URL".into(), aws_sim.url().into()),
        ("SPACES_ACCESS_KEY_ID".into(), "sandbox".into()),
        ("SPACES_SECRET_ACCESS_KEY".into(), "sandbox".into()),
        ("GITHUB_TOKEN".into(), "sim-gh-token".into()),
        ("GITHUB_API_URL".into(), gh_sim.url().into()),
        ("AWS_ENDPOINT_URL".into(), aws_sim.url().into()),
        ("AWS_ACCESS_KEY_ID".into(), "sandbox".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "sandbox".into()),
        ("AWS_REGION".into(), region.clone()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
    ];
    if let Some(e) = &inputs.environment {
        env.push(("PROVISIONER_ENVIRONMENT".into(), e.clone()));
    }
    // Secrets the desired state reads from the environment get sandbox values.
    for (r, _, source) in crate::desired::secrets::readable(&desired) {
        if let SecretSource::Env(name) = source
            && std::env::var_os(name).is_none()
        {
            env.push((
                name.clone(),
                format!("sandbox-value-for-{}", r.address.name()),
            ));
        }
    }
    let exe = std::env::current_exe()?;
    let child = |sub: &[&str]| {
        let mut c = Command::new(&exe);
        c.arg("-d").arg(desired_dir).args(sub).stdin(Stdio::null());
        for (name, value) in &inputs.vars {
            c.arg("--var").arg(format!("{name}={value}"));
        }
        for (k, v) in &env {
            c.env(k, v);
        }
        c.env_remove("RUST_LOG");
        c
    };

    // The port first: a taken one is an error now, not a daemon reporting someone else's
    // /status later; port 0 becomes the free port it finds.
    let listen = {
        let probe = std::net::TcpListener::bind(&args.listen).map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {}: {e} (another provisioner? pass --listen 127.0.0.1:0 for any free port)",
                args.listen
            )
        })?;
        probe.local_addr()?.to_string()
    };

    say("to point your own provisioner at these simulators (in another shell):");
    for (k, v) in &env {
        outln!("  export {k}={v}");
    }
    say(format!(
        "the plan for {} ({} resources){}:",
        desired_dir.display(),
        desired.resources.len(),
        if args.verbose {
            ""
        } else {
            " (the whole plan with --verbose)"
        }
    ));
    let plan = child(&["diff"]).output()?;
    if !plan.status.success() {
        anyhow::bail!(
            "`provisioner diff` failed against the simulators:\n{}",
            String::from_utf8_lossy(&plan.stderr)
        );
    }
    let text = String::from_utf8_lossy(&plan.stdout);
    if args.verbose {
        out!("{text}");
    } else {
        for line in text
            .lines()
            .filter(|l| l.starts_with("Plan:") || l.starts_with("No changes"))
        {
            outln!("  {line}");
        }
    }

    // Detect mode has nothing to detect in empty clouds: one enforcing pass applies the
    // desired state first, then the daemon only reports.
    if args.mode == "detect" {
        say("applying once (enforce), so that detect mode has something to watch");
        let once = child(&["run", "--once", "--mode", "enforce"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if !once.success() {
            anyhow::bail!("the first apply failed (exit {:?})", once.code());
        }
    }
    let log = dir.path().join("daemon.log");
    let run_args = [
        "run".to_string(),
        "--interval".into(),
        humantime::format_duration(args.interval).to_string(),
        "--listen".into(),
        listen.clone(),
        "--mode".into(),
        args.mode.clone(),
    ];
    let refs: Vec<&str> = run_args.iter().map(String::as_str).collect();
    let mut command = child(&refs);
    if !args.verbose {
        command.stderr(std::fs::File::create(&log)?);
    }
    let daemon = Daemon(command.spawn()?);
    let status_url = format!("http://{listen}/status");
    say(format!(
        "daemon started ({} mode, a pass every {}): metrics on http://{listen}/metrics, status on {status_url}{}",
        args.mode,
        humantime::format_duration(args.interval),
        if args.verbose {
            String::new()
        } else {
            format!("; its log in {}", log.display())
        }
    ));

    let stop = async {
        let s = crate::signals::shutdown_signal().await;
        say(format!("{s}: stopping the daemon and the simulators"));
    };
    tokio::pin!(stop);
    let work = drive(&status_url, args, &do_sim, &gh_sim, &aws_sim, &kube_sim);
    tokio::select! {
        () = &mut stop => {}
        r = work => r?,
    }
    drop(daemon);
    say("stopped");
    Ok(())
}

async fn status(url: &str) -> Value {
    match reqwest::get(url).await {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

fn passes(s: &Value) -> Vec<Value> {
    s["passes"].as_array().cloned().unwrap_or_default()
}

/// Waits for the first converged pass, then injects drift and watches it handled; runs
/// until stopped.
async fn drive(
    url: &str,
    args: &SandboxArgs,
    do_sim: &DoSim,
    gh_sim: &GhSim,
    aws_sim: &AwsSim,
    kube_sim: &KubeSim,
) -> anyhow::Result<()> {
    // The first pass applies the plan.
    loop {
        let s = status(url).await;
        if let Some(p) = passes(&s)
            .iter()
            .find(|p| p["result"] != "failed" && p["result"] != "contended")
        {
            say(format!(
                "first pass: {} — {} done, {} failed",
                p["result"].as_str().unwrap_or(""),
                p["applied"]["done"],
                p["applied"]["failed"]
            ));
            break;
        }
        if let Some(p) = passes(&s).last() {
            say(format!(
                "pass {}: {}",
                p["result"],
                p["error"].as_str().unwrap_or("")
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    if args.no_drift {
        say("no drift will be injected (--no-drift); Ctrl-C to stop");
        return std::future::pending().await;
    }
    let mut round = 0usize;
    loop {
        tokio::time::sleep(args.drift_every).await;
        let Some(what) = inject(round, do_sim, gh_sim, aws_sim, kube_sim) else {
            round += 1;
            continue;
        };
        round += 1;
        // Passes that started after the injection are the ones that can see it.
        let since = crate::ledger::lease::rfc3339(std::time::SystemTime::now());
        say(format!("drift injected: {what}"));
        // Watch the next passes until one handles it.
        let deadline = Instant::now() + args.interval * 6 + Duration::from_secs(30);
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let s = status(url).await;
            let all = passes(&s);
            let new: Vec<&Value> = all
                .iter()
                .filter(|p| {
                    p["started_at"]
                        .as_str()
                        .is_some_and(|t| t >= since.as_str())
                })
                .collect();
            if let Some(p) = new.iter().find(|p| p["result"] == "applied") {
                say(format!(
                    "drift detected and corrected: {} change(s) in {:.1}s",
                    p["applied"]["done"],
                    p["duration_seconds"].as_f64().unwrap_or(0.0)
                ));
                break;
            }
            if let Some(p) = new.iter().find(|p| p["result"] == "detected") {
                say(format!(
                    "drift detected and reported (detect mode): {}",
                    p["drifted"]
                ));
                break;
            }
            if Instant::now() > deadline {
                say("the drift was not handled in time: see the daemon's log above");
                break;
            }
        }
    }
}

/// Changes one thing behind the daemon's back; what it did, or `None` when the simulated
/// clouds hold nothing of that sort.
fn inject(
    round: usize,
    do_sim: &DoSim,
    gh_sim: &GhSim,
    aws_sim: &AwsSim,
    kube_sim: &KubeSim,
) -> Option<String> {
    match round % 6 {
        5 => {
            // Flux's pull secret deleted by hand: rebuilt from Secrets Manager, the deploy
            // key unchanged.
            let secret = kube_sim.list("v1", "Secret", None).into_iter().find(|s| {
                s["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "provisioner"
            })?;
            let ns = secret["metadata"]["namespace"].as_str()?.to_string();
            let name = secret["metadata"]["name"].as_str()?.to_string();
            let answer = kube_sim.delete("v1", "Secret", Some(&ns), &name);
            (answer.code == 200).then(|| {
                format!("Kubernetes Secret {ns}/{name} (Flux's pull secret) deleted by hand")
            })
        }
        0 => {
            // A pool scaled by hand; an autoscaled pool's count belongs to the autoscaler, so
            // its bounds are what someone changes there.
            do_sim.edit(|s| {
                let c = s.clusters.first_mut()?;
                let cluster = c["name"].as_str()?.to_string();
                let p = c["node_pools"].as_array_mut()?.first_mut()?;
                let pool = p["name"].as_str()?.to_string();
                if p["auto_scale"] == true {
                    let max = p["max_nodes"].as_u64()?;
                    p["max_nodes"] = json!(max + 3);
                    Some(format!(
                        "node pool {pool} of cluster {cluster}: autoscaler maximum raised by hand from {max} to {}",
                        max + 3
                    ))
                } else {
                    let count = p["count"].as_u64()?;
                    p["count"] = json!(count + 2);
                    Some(format!(
                        "node pool {pool} of cluster {cluster} scaled by hand from {count} to {}",
                        count + 2
                    ))
                }
            })
        }
        1 => {
            let name =
                do_sim.edit(|s| s.firewalls.first()?["name"].as_str().map(str::to_string))?;
            do_sim
                .add_firewall_rule(
                    &name,
                    json!({"protocol": "tcp", "ports": "22", "sources": {"addresses": ["0.0.0.0/0"]}}),
                )
                .then(|| format!("firewall {name}: SSH from anywhere added by hand"))
        }
        2 => {
            let (domain, name, kind) = do_sim.edit(|s| {
                s.records.iter().find_map(|(d, rs)| {
                    let r = rs
                        .iter()
                        .find(|r| r["type"] != "NS" && r["type"] != "SOA")?;
                    Some((
                        d.clone(),
                        r["name"].as_str()?.to_string(),
                        r["type"].as_str()?.to_string(),
                    ))
                })
            })?;
            do_sim
                .delete_record(&domain, &name, &kind)
                .then(|| format!("DNS record {kind} {name}.{domain} deleted by hand"))
        }
        3 => {
            let (repo, name) = gh_sim.edit(|s| {
                s.repos.iter().find_map(|(r, repo)| {
                    repo.actions
                        .secrets
                        .keys()
                        .next()
                        .map(|n| (r.clone(), n.clone()))
                })
            })?;
            gh_sim
                .overwrite_secret(&repo, &name, b"set-by-hand-in-the-sandbox")
                .then(|| format!("GitHub secret {name} in {repo} overwritten by hand"))
        }
        _ => {
            let bucket = aws_sim.edit(|s| {
                s.buckets
                    .iter()
                    .find(|(_, b)| b.versioning == "Enabled")
                    .map(|(n, _)| n.clone())
            })?;
            aws_sim
                .suspend_versioning(&bucket)
                .then(|| format!("S3 bucket {bucket}: versioning suspended by hand"))
        }
    }
}
