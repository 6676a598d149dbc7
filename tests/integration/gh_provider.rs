//! The GitHub provider end to end against the GitHub simulator, which opens every sealed box
//! and keeps the plaintext so the tests can check what was really delivered: secrets,
//! environment secrets, variables and deploy keys are created, updated, restored after hand
//! edits, rotated and deleted; rate limits are waited out or reported as unknown (never as
//! absent); unchanged lists are answered `304`; canary values never reach the ledger, the
//! plan, or an error.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use provisioner::desired::{self, DesiredState};
use provisioner::exec::apply_sequential;
use provisioner::ledger::Ledger;
use provisioner::ledger::fingerprint::FingerprintKey;
use provisioner::live::LiveState;
use provisioner::plan::{self, Action, Plan};
use provisioner::providers::github::{GhApiConfig, GhClient, GhProvider};
use provisioner::providers::{ObserveScope, Provider};
use provisioner::sim::Fault;
use provisioner::sim::github::{GhConfig, GhSim};

const APPS: &str = "example-org/platform-apps";
const GITOPS: &str = "example-org/platform-gitops";
const CANARY: &str = "canary-7f3a9c-do-not-leak";
const CANARY_2: &str = "canary-second-81bd20-do-not-leak";

struct World {
    sim: GhSim,
    provider: GhProvider,
    dir: tempfile::TempDir,
    key: FingerprintKey,
}

async fn world() -> World {
    let sim = GhSim::start(GhConfig::default()).await.unwrap();
    sim.create_repo(APPS);
    sim.create_repo(GITOPS);
    // The production environment exists, as the environment secret's docs require.
    let client = reqwest::Client::new();
    let r = client
        .put(format!(
            "{}/repos/{GITOPS}/environments/production",
            sim.url()
        ))
        .bearer_auth("sim-gh-token")
        .header("user-agent", "test")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    World {
        provider: provider(sim.url(), Duration::from_secs(5)),
        sim,
        dir: tempfile::tempdir().unwrap(),
        key: FingerprintKey::new(b"test-fingerprint-key-0123456789".to_vec()).unwrap(),
    }
}

fn provider(url: &str, max_wait: Duration) -> GhProvider {
    let mut config = GhApiConfig::new(url, "sim-gh-token");
    config.min_backoff = Duration::from_millis(10);
    config.max_backoff = Duration::from_millis(50);
    config.write_gap = Duration::ZERO;
    config.max_wait = max_wait;
    GhProvider::new(GhClient::new(config).unwrap())
}

impl World {
    /// The desired state, with the secret files written into the temporary folder.
    fn state(&self, text: &str, secret: &str) -> DesiredState {
        let dir = self.dir.path();
        std::fs::write(dir.join("secret.txt"), secret).unwrap();
        let text = text.replace("SECRET_FILE", &dir.join("secret.txt").display().to_string());
        let state_dir = dir.join("desired");
        let _ = std::fs::remove_dir_all(&state_dir);
        std::fs::create_dir_all(&state_dir).unwrap();
        std::fs::write(state_dir.join("github.toml"), text).unwrap();
        let mut d = desired::load(&state_dir).unwrap_or_else(|e| panic!("{e}"));
        desired::secrets::fingerprint_all(&mut d, &self.key).unwrap();
        d
    }

    async fn live(&self, d: &DesiredState, l: &Ledger) -> LiveState {
        let mut live = LiveState {
            observed_at: Some(provisioner::ledger::lease::rfc3339(
                std::time::SystemTime::now(),
            )),
            ..LiveState::default()
        };
        for (kind, obs) in self.provider.observe(&ObserveScope::new(d, l)).await {
            live.kinds.insert(kind.key().to_string(), obs);
        }
        live
    }

    async fn converge(&self, d: &DesiredState, ledger: &mut Ledger) -> Plan {
        let l = self.live(d, ledger).await;
        self.apply(d, ledger, &l).await
    }

    async fn apply(&self, d: &DesiredState, ledger: &mut Ledger, l: &LiveState) -> Plan {
        let (plan, _) = plan::plan(d, ledger, l).unwrap();
        let outcomes = apply_sequential(&plan, d, ledger, l, &self.provider, Some(&self.key)).await;
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

    async fn assert_converged(&self, d: &DesiredState, ledger: &Ledger) {
        let l = self.live(d, ledger).await;
        let (again, _) = plan::plan(d, ledger, &l).unwrap();
        assert!(acting(&again).is_empty(), "{:?}", acting(&again));
    }

    fn keys(&self, repo: &str) -> Vec<serde_json::Value> {
        self.sim.edit(|s| {
            s.repos
                .get(repo)
                .map(|r| r.keys.clone())
                .unwrap_or_default()
        })
    }
}

fn acting(plan: &Plan) -> Vec<(String, Action)> {
    plan.changes
        .iter()
        .filter(|c| c.action.acts())
        .map(|c| (c.address.to_string(), c.action))
        .collect()
}

/// Everything the provider manages, with a deploy key whose private half goes to an
/// environment secret (in the worked example it goes to Secrets Manager), so the tests can
/// check that the pair really belongs together.
const DESIRED: &str = r#"
[github.actions_secret.token]
repository = "example-org/platform-apps"
name = "deploy_token"
value = { file = "SECRET_FILE" }

[github.environment_secret.do_token]
repository = "example-org/platform-gitops"
environment = "production"
name = "DIGITALOCEAN_TOKEN"
value = { file = "SECRET_FILE" }

[github.actions_variable.host]
repository = "example-org/platform-apps"
name = "SMTP_HOST"
value = "email-smtp.eu-west-1.amazonaws.com"

[github.actions_variable.stage]
repository = "example-org/platform-gitops"
environment = "production"
name = "STAGE"
value = "prod"

[github.deploy_key.flux]
repository = "example-org/platform-gitops"
title = "flux-prod"
read_only = true

[github.environment_secret.flux_identity]
repository = "example-org/platform-gitops"
environment = "production"
name = "FLUX_IDENTITY"
value = "${github.deploy_key.flux.private_key}"
"#;

#[tokio::test]
async fn converges_then_replans_empty_and_delivers_the_real_values() {
    let w = world().await;
    let d = w.state(DESIRED, CANARY);
    let mut ledger = Ledger::new("lineage-gh");
    let plan = w.converge(&d, &mut ledger).await;
    assert_eq!(acting(&plan).len(), 6, "{:?}", acting(&plan));

    // The simulator opened the sealed boxes: the values are the intended ones.
    assert_eq!(
        w.sim.secret(APPS, None, "DEPLOY_TOKEN").unwrap(),
        CANARY.as_bytes()
    );
    assert_eq!(
        w.sim
            .secret(GITOPS, Some("production"), "DIGITALOCEAN_TOKEN")
            .unwrap(),
        CANARY.as_bytes()
    );
    // The deploy key's private half (delivered through the environment secret) derives the
    // public key GitHub holds.
    let private = w
        .sim
        .secret(GITOPS, Some("production"), "FLUX_IDENTITY")
        .unwrap();
    let keys = w.keys(GITOPS);
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["read_only"], true);
    assert_eq!(keys[0]["title"], "flux-prod");
    assert_public_matches(&private, keys[0]["key"].as_str().unwrap());

    // A lower-case name in the desired state is no drift against GitHub's upper case.
    w.assert_converged(&d, &ledger).await;

    // The ledger keeps fingerprints and GitHub's times, never a value.
    let entry =
        &ledger.resources[&provisioner::desired::Address::new("github", "actions_secret", "token")];
    assert!(entry.fingerprints["value"].starts_with("hmac-sha256:"));
    assert!(entry.updated_at.is_some());
    let text = serde_json::to_string(&ledger).unwrap();
    assert!(!text.contains(CANARY));
    assert!(!text.contains("PRIVATE KEY"));
    assert!(!text.contains(&String::from_utf8_lossy(&private)[40..80]));
}

fn assert_public_matches(private: &[u8], public: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("id");
    std::fs::write(&path, private).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let Ok(out) = std::process::Command::new("ssh-keygen")
        .arg("-y")
        .arg("-f")
        .arg(&path)
        .output()
    else {
        // Without ssh-keygen, at least the armour is the OpenSSH one.
        assert!(
            String::from_utf8_lossy(private).starts_with("-----BEGIN OPENSSH PRIVATE KEY-----")
        );
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let derived = String::from_utf8(out.stdout).unwrap();
    let bare = |s: &str| s.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    assert_eq!(bare(&derived), bare(public));
}

#[tokio::test]
async fn a_new_value_a_hand_edit_and_a_vanished_secret_are_all_rewritten() {
    let w = world().await;
    let d = w.state(DESIRED, CANARY);
    let mut ledger = Ledger::new("lineage-gh");
    w.converge(&d, &mut ledger).await;

    // The value changes at its source: the fingerprint differs, the secret is rewritten.
    let d2 = w.state(DESIRED, CANARY_2);
    let plan = w.converge(&d2, &mut ledger).await;
    let changed = acting(&plan);
    assert!(
        changed.contains(&("github.actions_secret.token".into(), Action::Update)),
        "{changed:?}"
    );
    assert_eq!(
        w.sim.secret(APPS, None, "DEPLOY_TOKEN").unwrap(),
        CANARY_2.as_bytes()
    );
    w.assert_converged(&d2, &ledger).await;

    // Someone sets it by hand: GitHub's updated_at is newer than provisioner's write.
    assert!(
        w.sim
            .overwrite_secret(APPS, "deploy_token", b"typed-by-hand")
    );
    let l = w.live(&d2, &ledger).await;
    let (plan, report) = plan::plan(&d2, &ledger, &l).unwrap();
    w.apply(&d2, &mut ledger, &l).await;
    assert_eq!(
        acting(&plan),
        vec![("github.actions_secret.token".to_string(), Action::Update)]
    );
    let rendered = format!(
        "{}{}",
        provisioner::plan::display::PlanDisplay {
            plan: &plan,
            report: &report,
            color: false,
            verbose: true,
        },
        serde_json::to_string(&plan).unwrap()
    );
    assert!(!rendered.contains(CANARY_2) && !rendered.contains("typed-by-hand"));
    assert!(rendered.contains("(sensitive)"), "{rendered}");
    assert_eq!(
        w.sim.secret(APPS, None, "DEPLOY_TOKEN").unwrap(),
        CANARY_2.as_bytes()
    );
    w.assert_converged(&d2, &ledger).await;

    // It vanishes: re-created.
    w.sim.edit(|s| {
        s.repos.get_mut(APPS).unwrap().actions.secrets.clear();
    });
    let plan = w.converge(&d2, &mut ledger).await;
    assert_eq!(
        acting(&plan),
        vec![("github.actions_secret.token".to_string(), Action::Create)]
    );
    assert_eq!(
        w.sim.secret(APPS, None, "DEPLOY_TOKEN").unwrap(),
        CANARY_2.as_bytes()
    );

    // A variable edited by hand is compared field by field and set back.
    w.sim.edit(|s| {
        let v = s
            .repos
            .get_mut(APPS)
            .unwrap()
            .actions
            .variables
            .get_mut("SMTP_HOST")
            .unwrap();
        v["value"] = "smtp.elsewhere.example".into();
    });
    let plan = w.converge(&d2, &mut ledger).await;
    assert_eq!(
        acting(&plan),
        vec![("github.actions_variable.host".to_string(), Action::Update)]
    );
    w.assert_converged(&d2, &ledger).await;
}

#[tokio::test]
async fn a_deploy_key_is_rotated_new_first_and_its_consumer_follows() {
    let w = world().await;
    let text = DESIRED.replace(
        "read_only = true",
        "read_only = true\nrotate_after = \"30d\"",
    );
    let d = w.state(&text, CANARY);
    let mut ledger = Ledger::new("lineage-gh");
    w.converge(&d, &mut ledger).await;
    let before = w.keys(GITOPS);
    w.assert_converged(&d, &ledger).await;

    // Thirty-one days later (the observation's time is the planner's clock).
    let mut l = w.live(&d, &ledger).await;
    let later = std::time::SystemTime::now() + Duration::from_secs(31 * 86_400);
    l.observed_at = Some(provisioner::ledger::lease::rfc3339(later));
    let plan = w.apply(&d, &mut ledger, &l).await;
    let changed = acting(&plan);
    assert!(
        changed.contains(&("github.deploy_key.flux".into(), Action::Replace)),
        "{changed:?}"
    );
    assert!(
        changed.contains(&(
            "github.environment_secret.flux_identity".into(),
            Action::Update
        )),
        "{changed:?}"
    );
    let after = w.keys(GITOPS);
    assert_eq!(
        after.len(),
        1,
        "the old key is deleted after the new one exists"
    );
    assert_ne!(after[0]["id"], before[0]["id"]);
    let private = w
        .sim
        .secret(GITOPS, Some("production"), "FLUX_IDENTITY")
        .unwrap();
    assert_public_matches(&private, after[0]["key"].as_str().unwrap());

    // A title change replaces the key as well: create the new one, then delete the old.
    let d2 = w.state(&text.replace("flux-prod", "flux-production"), CANARY);
    let plan = w.converge(&d2, &mut ledger).await;
    assert!(acting(&plan).contains(&("github.deploy_key.flux".into(), Action::Replace)));
    let keys = w.keys(GITOPS);
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["title"], "flux-production");
    let log = w.sim.faults.requests();
    let post = log
        .iter()
        .rposition(|r| r.starts_with("POST /repos/example-org/platform-gitops/keys"));
    let delete = log
        .iter()
        .rposition(|r| r.starts_with("DELETE /repos/example-org/platform-gitops/keys/"));
    assert!(post < delete, "new key first: {log:?}");
}

#[tokio::test]
async fn removed_resources_are_deleted() {
    let w = world().await;
    let d = w.state(DESIRED, CANARY);
    let mut ledger = Ledger::new("lineage-gh");
    w.converge(&d, &mut ledger).await;
    let empty = w.state("[settings]\nprune = true\n", CANARY);
    let plan = w.converge(&empty, &mut ledger).await;
    assert!(acting(&plan).iter().all(|(_, a)| *a == Action::Delete));
    assert_eq!(acting(&plan).len(), 6);
    assert!(ledger.resources.is_empty());
    w.sim.edit(|s| {
        for r in s.repos.values() {
            assert!(r.actions.secrets.is_empty() && r.actions.variables.is_empty());
            assert!(r.keys.is_empty());
            for e in r.environments.values() {
                assert!(e.secrets.is_empty() && e.variables.is_empty());
            }
        }
    });
}

#[tokio::test]
async fn unchanged_lists_are_answered_304_and_cost_nothing() {
    let w = world().await;
    let d = w.state(DESIRED, CANARY);
    let mut ledger = Ledger::new("lineage-gh");
    w.converge(&d, &mut ledger).await;
    w.live(&d, &ledger).await;
    let stats = &w.provider.client.stats;
    let (requests, cached) = (
        stats.requests.load(Ordering::Relaxed),
        stats.not_modified.load(Ordering::Relaxed),
    );
    let remaining = w.provider.client.remaining().unwrap();
    let l = w.live(&d, &ledger).await;
    let lists = stats.requests.load(Ordering::Relaxed) - requests;
    // Repository secrets (apps), environment secrets (gitops/production), variables (apps,
    // and gitops/production), deploy keys (gitops).
    assert_eq!(lists, 5, "one list per scope and kind");
    assert_eq!(stats.not_modified.load(Ordering::Relaxed) - cached, lists);
    assert_eq!(
        w.provider.client.remaining().unwrap(),
        remaining,
        "304s are free"
    );
    let (plan, _) = plan::plan(&d, &ledger, &l).unwrap();
    assert!(acting(&plan).is_empty());
}

#[tokio::test]
async fn secondary_limits_are_waited_out() {
    let w = world().await;
    let d = w.state(DESIRED, CANARY);
    let mut ledger = Ledger::new("lineage-gh");
    // A storm: every write is refused twice with a secondary limit, then goes through.
    for method in ["PUT", "POST"] {
        w.sim.faults.inject(
            Some(method),
            "/repos/",
            Fault::Respond {
                status: 403,
                body: r#"{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again.","documentation_url":"https://docs.github.com/rest"}"#.into(),
                headers: vec![("retry-after".into(), "1".into())],
            },
            Some(2),
        );
    }
    w.sim.faults.inject(
        Some("GET"),
        "/repos/",
        Fault::Respond {
            status: 429,
            body: r#"{"message":"API rate limit exceeded"}"#.into(),
            headers: vec![
                ("retry-after".into(), "1".into()),
                ("x-ratelimit-remaining".into(), "0".into()),
            ],
        },
        Some(2),
    );
    let started = std::time::Instant::now();
    w.converge(&d, &mut ledger).await;
    assert!(w.provider.client.stats.rate_limited.load(Ordering::Relaxed) >= 6);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "retry-after was honoured"
    );
    assert_eq!(
        w.sim.secret(APPS, None, "DEPLOY_TOKEN").unwrap(),
        CANARY.as_bytes()
    );
    w.assert_converged(&d, &ledger).await;
}

#[tokio::test]
async fn a_rate_limited_observe_is_unknown_never_absent() {
    let w = world().await;
    let d = w.state(DESIRED, CANARY);
    let mut ledger = Ledger::new("lineage-gh");
    w.converge(&d, &mut ledger).await;
    // The limit resets in an hour; this pass will not wait that long.
    let impatient = provider(w.sim.url(), Duration::from_secs(2));
    w.sim.faults.inject(
        Some("GET"),
        "/repos/",
        Fault::Respond {
            status: 403,
            body: r#"{"message":"API rate limit exceeded for user ID 1."}"#.into(),
            headers: vec![
                ("x-ratelimit-remaining".into(), "0".into()),
                (
                    "x-ratelimit-reset".into(),
                    (std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_secs()
                        + 3600)
                        .to_string(),
                ),
            ],
        },
        None,
    );
    let mut live = LiveState::default();
    for (kind, obs) in impatient.observe(&ObserveScope::new(&d, &ledger)).await {
        live.kinds.insert(kind.key().to_string(), obs);
    }
    for k in provisioner::providers::github::KINDS {
        let why = live
            .failure(k)
            .unwrap_or_else(|| panic!("{k} should be unknown"));
        assert!(why.contains("rate limit"), "{why}");
    }
    let (plan, _) = plan::plan(&d, &ledger, &live).unwrap();
    assert!(
        acting(&plan).is_empty(),
        "nothing is re-created after a rate limit: {:?}",
        acting(&plan)
    );
    w.sim.faults.clear();
}

#[tokio::test]
async fn a_missing_environment_is_a_clear_error_without_the_value() {
    let w = world().await;
    let text = r#"
[github.environment_secret.staging]
repository = "example-org/platform-apps"
environment = "staging"
name = "TOKEN"
value = { file = "SECRET_FILE" }
"#;
    let d = w.state(text, CANARY);
    let mut ledger = Ledger::new("lineage-gh");
    let l = w.live(&d, &ledger).await;
    let (plan, _) = plan::plan(&d, &ledger, &l).unwrap();
    let outcomes = apply_sequential(&plan, &d, &mut ledger, &l, &w.provider, Some(&w.key)).await;
    let err = outcomes[0].result.as_ref().unwrap_err();
    assert!(
        err.contains("environment \"staging\" does not exist"),
        "{err}"
    );
    assert!(!err.contains(CANARY));
    assert!(ledger.resources.is_empty());
}

#[tokio::test]
async fn a_lost_private_key_copy_makes_a_new_key_unless_the_key_is_protected() {
    let w = world().await;
    let d = w.state(DESIRED, CANARY);
    let mut ledger = Ledger::new("lineage-gh");
    w.converge(&d, &mut ledger).await;
    let before = w.keys(GITOPS);
    // The consumer of the private key vanishes; the key stays. GitHub never gives a private
    // key back, so the consumer is re-created with a new key (new first, old deleted).
    let lose_copy = || {
        w.sim.edit(|s| {
            s.repos
                .get_mut(GITOPS)
                .unwrap()
                .environments
                .get_mut("production")
                .unwrap()
                .secrets
                .remove("FLUX_IDENTITY");
        })
    };
    lose_copy();
    let plan = w.converge(&d, &mut ledger).await;
    let changed = acting(&plan);
    assert!(
        changed.contains(&("github.deploy_key.flux".into(), Action::Replace)),
        "{changed:?}"
    );
    assert!(changed.contains(&(
        "github.environment_secret.flux_identity".into(),
        Action::Create
    )));
    let after = w.keys(GITOPS);
    assert_eq!(after.len(), 1);
    assert_ne!(after[0]["id"], before[0]["id"]);
    let private = w
        .sim
        .secret(GITOPS, Some("production"), "FLUX_IDENTITY")
        .unwrap();
    assert_public_matches(&private, after[0]["key"].as_str().unwrap());

    // With `prevent_destroy` the key is not replaced behind the user's back: the plan says
    // what to run, and the consumer's change fails saying the same.
    let protected = w.state(
        &format!("{DESIRED}\n[github.deploy_key.flux.lifecycle]\nprevent_destroy = true\n"),
        CANARY,
    );
    lose_copy();
    let l = w.live(&protected, &ledger).await;
    let (plan, report) = plan::plan(&protected, &ledger, &l).unwrap();
    assert!(
        report.notes.iter().any(|n| n
            .message
            .contains("provisioner apply --replace github.deploy_key.flux")),
        "{:?}",
        report.notes
    );
    let outcomes = apply_sequential(
        &plan,
        &protected,
        &mut ledger,
        &l,
        &w.provider,
        Some(&w.key),
    )
    .await;
    let err = outcomes
        .iter()
        .find(|o| o.address.as_str() == "github.environment_secret.flux_identity")
        .unwrap()
        .result
        .as_ref()
        .unwrap_err();
    assert!(err.contains("--replace github.deploy_key.flux"), "{err}");
    assert_eq!(w.keys(GITOPS).len(), 1, "the protected key was left alone");
    assert!(Path::new(&w.dir.path().join("desired")).exists());
}

const OTHER: &str = "example-org/other-repo";
const THIRD: &str = "example-org/third-repo";

/// Issue 26, case 3: one repository the token cannot see makes only that repository's
/// secrets unknown. A changed value and a new secret in another repository are applied; the
/// plan names the repository that was not observed; a secret removed from the files in the
/// unseen repository is neither deleted nor forgotten.
#[tokio::test]
async fn one_unseen_repository_leaves_the_others_planned_and_is_named() {
    let w = world().await;
    w.sim.create_repo(OTHER);
    w.sim.create_repo(THIRD);
    let first = r#"
[settings]
prune = true

[github.actions_secret.other]
repository = "example-org/other-repo"
name = "TOKEN"
value = { file = "SECRET_FILE" }

[github.actions_secret.third]
repository = "example-org/third-repo"
name = "TOKEN"
value = { file = "SECRET_FILE" }

[github.actions_variable.third]
repository = "example-org/third-repo"
name = "REGION"
value = "nyc3"
"#;
    let d = w.state(first, CANARY);
    let mut ledger = Ledger::new("lineage-gh");
    w.converge(&d, &mut ledger).await;
    assert!(w.sim.set_visible(THIRD, false));

    // A new value and a new secret in other-repo; the variable in third-repo is removed.
    let second = r#"
[settings]
prune = true

[github.actions_secret.other]
repository = "example-org/other-repo"
name = "TOKEN"
value = { file = "SECRET_FILE" }

[github.actions_secret.other_new]
repository = "example-org/other-repo"
name = "NEW_TOKEN"
value = { file = "SECRET_FILE" }

[github.actions_secret.third]
repository = "example-org/third-repo"
name = "TOKEN"
value = { file = "SECRET_FILE" }
"#;
    let d = w.state(second, CANARY_2);
    let l = w.live(&d, &ledger).await;
    let (plan, report) = plan::plan(&d, &ledger, &l).unwrap();
    let changed = acting(&plan);
    assert_eq!(
        changed,
        vec![
            ("github.actions_secret.other".to_string(), Action::Update),
            (
                "github.actions_secret.other_new".to_string(),
                Action::Create
            ),
        ],
        "only other-repo is planned: {changed:?}"
    );
    assert!(!report.is_complete());
    let scopes: Vec<String> = report.unobserved.iter().map(|u| u.subject()).collect();
    assert_eq!(
        scopes,
        vec![
            "github.actions_secret (repository=example-org/third-repo)".to_string(),
            "github.actions_variable (repository=example-org/third-repo)".to_string(),
        ]
    );
    for u in &report.unobserved {
        assert!(
            u.reason
                .contains("not found or is not visible to the token"),
            "{}",
            u.reason
        );
    }
    let text = plan::display::PlanDisplay {
        plan: &plan,
        report: &report,
        color: false,
        verbose: false,
    }
    .to_string();
    assert!(text.contains("Not observed"), "{text}");
    assert!(
        text.contains("github.actions_secret (repository=example-org/third-repo)"),
        "{text}"
    );
    let outcomes = apply_sequential(&plan, &d, &mut ledger, &l, &w.provider, Some(&w.key)).await;
    assert!(outcomes.iter().all(|o| o.result.is_ok()), "{outcomes:?}");
    assert_eq!(
        w.sim.secret(OTHER, None, "TOKEN").as_deref(),
        Some(CANARY_2.as_bytes())
    );
    assert_eq!(
        w.sim.secret(OTHER, None, "NEW_TOKEN").as_deref(),
        Some(CANARY_2.as_bytes())
    );
    // What lies in the unseen repository is still known to the ledger.
    for address in [
        "github.actions_secret.third",
        "github.actions_variable.third",
    ] {
        assert!(
            ledger.resources.keys().any(|a| a.to_string() == address),
            "{address} was dropped from the ledger"
        );
    }
    // Once the repository can be seen again, the removed variable is deleted and the
    // secret gets its new value.
    assert!(w.sim.set_visible(THIRD, true));
    let l = w.live(&d, &ledger).await;
    let (plan, report) = plan::plan(&d, &ledger, &l).unwrap();
    assert!(report.is_complete(), "{:?}", report.unobserved);
    let changed = acting(&plan);
    assert!(
        changed.contains(&("github.actions_variable.third".into(), Action::Delete))
            && changed.contains(&("github.actions_secret.third".into(), Action::Update)),
        "{changed:?}"
    );
}

/// Issue 26, case 2: a 404 from an environment's secrets is "absent" only once the
/// environment is confirmed not to exist; a repository the token cannot see is not observed.
#[tokio::test]
async fn a_404_is_absent_only_once_the_repository_is_confirmed() {
    let w = world().await;
    let text = r#"
[github.environment_secret.prod]
repository = "example-org/platform-gitops"
environment = "production"
name = "TOKEN"
value = { file = "SECRET_FILE" }
"#;
    let d = w.state(text, CANARY);
    let mut ledger = Ledger::new("lineage-gh");
    w.converge(&d, &mut ledger).await;
    w.assert_converged(&d, &ledger).await;
    // The token loses sight of the repository: every path under it answers 404.
    assert!(w.sim.set_visible(GITOPS, false));
    let l = w.live(&d, &ledger).await;
    let obs = &l.kinds["github.environment_secret"];
    assert_eq!(obs.failed_scopes.len(), 1, "{obs:?}");
    assert!(
        obs.failed_scopes[0].reason.contains(
            "repository example-org/platform-gitops was not found or is not visible to the token"
        ),
        "{}",
        obs.failed_scopes[0].reason
    );
    let (plan, report) = plan::plan(&d, &ledger, &l).unwrap();
    assert!(acting(&plan).is_empty(), "{:?}", acting(&plan));
    assert_eq!(report.unobserved.len(), 1, "{:?}", report.unobserved);
    // The environment is deleted: its secrets are gone, and that is absence.
    assert!(w.sim.set_visible(GITOPS, true));
    w.sim.edit(|s| {
        s.repos
            .get_mut(GITOPS)
            .unwrap()
            .environments
            .remove("production")
    });
    let l = w.live(&d, &ledger).await;
    assert!(
        l.kinds["github.environment_secret"]
            .failed_scopes
            .is_empty()
    );
    let (plan, report) = plan::plan(&d, &ledger, &l).unwrap();
    assert!(report.is_complete(), "{:?}", report.unobserved);
    assert_eq!(
        acting(&plan),
        vec![("github.environment_secret.prod".to_string(), Action::Create)]
    );
}

#[tokio::test]
async fn a_list_answered_with_anything_but_the_list_is_not_observed_and_nothing_is_created() {
    let w = world().await;
    let d = w.state(DESIRED, CANARY);
    let mut ledger = Ledger::new("lineage-gh");
    w.converge(&d, &mut ledger).await;
    // Every list observing makes: (path, envelope key or a bare array, the kind it fails).
    let lists: [(&str, Option<&str>, &str); 5] = [
        (
            "/repos/example-org/platform-apps/actions/secrets",
            Some("secrets"),
            "github.actions_secret",
        ),
        (
            "/repos/example-org/platform-gitops/environments/production/secrets",
            Some("secrets"),
            "github.environment_secret",
        ),
        (
            "/repos/example-org/platform-apps/actions/variables",
            Some("variables"),
            "github.actions_variable",
        ),
        (
            "/repos/example-org/platform-gitops/environments/production/variables",
            Some("variables"),
            "github.actions_variable",
        ),
        (
            "/repos/example-org/platform-gitops/keys",
            None,
            "github.deploy_key",
        ),
    ];
    let mut cases = 0;
    for (path, key, kind) in lists {
        let bodies: Vec<(String, &str)> = match key {
            Some(k) => vec![
                ("{}".into(), "application/json; charset=utf-8"),
                (
                    format!(r#"{{"total_count": 0, "{k}": {{}}}}"#),
                    "application/json",
                ),
                (
                    format!(r#"{{"total_count": 2, "{k}": ["A", "B"]}}"#),
                    "application/json",
                ),
                ("[]".into(), "application/json"),
                ("<html>Unicorn!</html>".into(), "application/json"),
                (
                    format!(r#"{{"total_count": 1, "{k}": [{{"name": "#),
                    "application/json",
                ),
                (format!(r#"{{"total_count": 0, "{k}": []}}"#), "text/html"),
                (String::new(), "application/json"),
            ],
            None => vec![
                ("{}".into(), "application/json; charset=utf-8"),
                (r#"{"keys": []}"#.into(), "application/json"),
                ("[1, 2]".into(), "application/json"),
                ("<html>Unicorn!</html>".into(), "application/json"),
                (r#"[{"id": 1, "title": "#.into(), "application/json"),
                ("[]".into(), "text/html"),
                (String::new(), "application/json"),
            ],
        };
        for (body, content_type) in bodies {
            w.sim.faults.clear();
            w.sim.faults.inject(
                Some("GET"),
                path,
                Fault::Respond {
                    status: 200,
                    body: body.clone(),
                    headers: vec![("content-type".into(), content_type.into())],
                },
                None,
            );
            let l = w.live(&d, &ledger).await;
            let what = format!("GET {path} answered 200 {body:?} ({content_type})");
            assert!(
                matches!(
                    l.kinds[kind].status,
                    provisioner::live::ObserveStatus::Failed(_)
                ),
                "{what}: {kind} was believed: {:?}",
                l.kinds[kind].status
            );
            let (plan, report) = plan::plan(&d, &ledger, &l).unwrap();
            assert!(
                plan.changes
                    .iter()
                    .filter(|c| c.address.to_string().starts_with(&format!("{kind}.")))
                    .all(|c| !c.action.acts()),
                "{what}: changes planned for {kind}: {:?}",
                acting(&plan)
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
                    .all(|u| !u.reason.contains("Unicorn")),
                "the body is never quoted"
            );
            cases += 1;
        }
    }
    assert_eq!(cases, 39);
    // With the faults gone, everything is observed and nothing needs doing.
    w.sim.faults.clear();
    w.assert_converged(&d, &ledger).await;
}

#[tokio::test]
async fn a_deploy_key_whose_private_half_never_reached_its_consumer_is_made_anew_though_protected()
{
    let w = world().await;
    let d = w.state(
        &format!("{DESIRED}\n[github.deploy_key.flux.lifecycle]\nprevent_destroy = true\n"),
        CANARY,
    );
    let mut ledger = Ledger::new("lineage-gh");
    // The key is made and recorded, then the apply stops before its consumer is written (as
    // a SIGKILL there would leave it: the ledger is persisted before the consumer starts).
    w.sim.faults.inject(
        Some("PUT"),
        "/repos/example-org/platform-gitops/environments/production/secrets/FLUX_IDENTITY",
        Fault::Respond {
            status: 422,
            body: r#"{"message":"Validation Failed"}"#.into(),
            headers: vec![],
        },
        None,
    );
    let l = w.live(&d, &ledger).await;
    let (plan, _) = plan::plan(&d, &ledger, &l).unwrap();
    let outcomes = apply_sequential(&plan, &d, &mut ledger, &l, &w.provider, Some(&w.key)).await;
    assert!(outcomes.iter().any(|o| o.result.is_err()));
    let entry =
        &ledger.resources[&provisioner::desired::Address::new("github", "deploy_key", "flux")];
    assert!(
        entry.options.contains_key("undelivered"),
        "{:?}",
        entry.options
    );
    let first = w.keys(GITOPS);
    assert_eq!(first.len(), 1);
    w.sim.faults.clear();

    // The next pass makes a new key (the new one first, which prevent_destroy allows: nothing
    // is destroyed before its successor exists) and delivers it.
    let l = w.live(&d, &ledger).await;
    let (plan, report) = plan::plan(&d, &ledger, &l).expect("not refused by prevent_destroy");
    let key = plan
        .changes
        .iter()
        .find(|c| c.address.as_str() == "github.deploy_key.flux")
        .unwrap();
    assert_eq!(key.action, Action::Replace, "{report:?}");
    let reason = key.reason.as_deref().unwrap_or_default();
    assert!(
        reason.contains("private_key") && reason.contains("made anew"),
        "{reason}"
    );
    let outcomes = apply_sequential(&plan, &d, &mut ledger, &l, &w.provider, Some(&w.key)).await;
    for o in &outcomes {
        assert!(o.result.is_ok(), "{}: {:?}", o.address, o.result);
    }
    let after = w.keys(GITOPS);
    assert_eq!(after.len(), 1, "the undelivered key is gone: {after:?}");
    assert_ne!(after[0]["id"], first[0]["id"]);
    let private = w
        .sim
        .secret(GITOPS, Some("production"), "FLUX_IDENTITY")
        .unwrap();
    assert_public_matches(&private, after[0]["key"].as_str().unwrap());
    let entry =
        &ledger.resources[&provisioner::desired::Address::new("github", "deploy_key", "flux")];
    assert!(!entry.options.contains_key("undelivered"));
    w.assert_converged(&d, &ledger).await;
}
