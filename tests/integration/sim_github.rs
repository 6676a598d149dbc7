//! The GitHub simulator: every endpoint the provider needs, exercised through Prism with
//! GitHub's official OpenAPI description, and its behaviours — sealed boxes really opened,
//! case-insensitive names, ETags and free 304s, pagination, rate-limit headers, secondary
//! limits, drift — checked directly.

use crate::support;

use std::sync::OnceLock;

use crate::support::http::Api;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use provisioner::sim::Fault;
use provisioner::sim::github::{GhConfig, GhSim};
use reqwest::Method;
use serde_json::json;

const SPEC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/.ci/node_modules/@octokit/openapi/generated/api.github.com.json"
);
const REPO: &str = "example-org/platform-apps";
/// A repository the token cannot see.
const HIDDEN: &str = "example-org/hidden-repo";

/// One simulator (with the test repository) behind one Prism proxy, for the whole binary.
fn proxy() -> &'static str {
    static PROXY: OnceLock<String> = OnceLock::new();
    PROXY.get_or_init(|| {
        let direct = support::prism::background(|| async {
            let sim = GhSim::start(GhConfig::default()).await.expect("sim");
            sim.create_repo(REPO);
            sim.create_repo(HIDDEN);
            sim.set_visible(HIDDEN, false);
            let url = sim.url().to_string();
            std::mem::forget(sim);
            url
        });
        support::prism::proxy(SPEC, &direct)
    })
}

/// A GitHub client: the API version header, a user agent, and only application/json
/// (GitHub's description lists no other media type).
fn gh_api(base: &str) -> Api {
    let mut api = Api::new(base, "sim-gh-token");
    api.headers.push(("x-github-api-version", "2022-11-28"));
    api.headers.push(("user-agent", "provisioner-tests"));
    api
}

fn seal(public_b64: &str, value: &[u8]) -> String {
    let pk = crypto_box::PublicKey::from_slice(&B64.decode(public_b64).unwrap()).unwrap();
    B64.encode(pk.seal(&mut crypto_box::aead::OsRng, value).unwrap())
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
    .to_ascii_uppercase()
}

#[tokio::test]
async fn repository_and_environment_secrets_through_the_description() {
    let api = gh_api(proxy());
    let key = api
        .expect(
            Method::GET,
            &format!("/repos/{REPO}/actions/secrets/public-key"),
            None,
            200,
        )
        .await;
    let name = unique("smtp_password");
    let body = json!({"encrypted_value": seal(key["key"].as_str().unwrap(), b"hunter2"), "key_id": key["key_id"]});
    api.expect(
        Method::PUT,
        &format!("/repos/{REPO}/actions/secrets/{name}"),
        Some(body.clone()),
        201,
    )
    .await;
    api.expect(
        Method::PUT,
        &format!("/repos/{REPO}/actions/secrets/{name}"),
        Some(body),
        204,
    )
    .await;
    let got = api
        .expect(
            Method::GET,
            &format!("/repos/{REPO}/actions/secrets/{name}"),
            None,
            200,
        )
        .await;
    assert_eq!(got["name"], name.as_str());
    assert!(
        got.get("value").is_none() && got.get("encrypted_value").is_none(),
        "write-only"
    );
    let list = api
        .expect(
            Method::GET,
            &format!("/repos/{REPO}/actions/secrets?per_page=100"),
            None,
            200,
        )
        .await;
    assert!(
        list["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == name.as_str())
    );
    api.expect(
        Method::DELETE,
        &format!("/repos/{REPO}/actions/secrets/{name}"),
        None,
        204,
    )
    .await;

    let env = format!("env-{}", &unique("e")[2..]).to_ascii_lowercase();
    api.expect(
        Method::PUT,
        &format!("/repos/{REPO}/environments/{env}"),
        Some(json!({})),
        200,
    )
    .await;
    let ekey = api
        .expect(
            Method::GET,
            &format!("/repos/{REPO}/environments/{env}/secrets/public-key"),
            None,
            200,
        )
        .await;
    assert_ne!(
        ekey["key"], key["key"],
        "each environment has its own key pair"
    );
    let ename = unique("deploy_token");
    api.expect(
        Method::PUT,
        &format!("/repos/{REPO}/environments/{env}/secrets/{ename}"),
        Some(json!({"encrypted_value": seal(ekey["key"].as_str().unwrap(), b"t0k3n"), "key_id": ekey["key_id"]})),
        201,
    )
    .await;
    api.expect(
        Method::GET,
        &format!("/repos/{REPO}/environments/{env}/secrets"),
        None,
        200,
    )
    .await;
    api.expect(
        Method::GET,
        &format!("/repos/{REPO}/environments/{env}/secrets/{ename}"),
        None,
        200,
    )
    .await;
    api.expect(
        Method::DELETE,
        &format!("/repos/{REPO}/environments/{env}/secrets/{ename}"),
        None,
        204,
    )
    .await;
    let vname = unique("stage");
    api.expect(
        Method::POST,
        &format!("/repos/{REPO}/environments/{env}/variables"),
        Some(json!({"name": vname, "value": "blue"})),
        201,
    )
    .await;
    api.expect(
        Method::GET,
        &format!("/repos/{REPO}/environments/{env}/variables/{vname}"),
        None,
        200,
    )
    .await;
    api.expect(
        Method::PATCH,
        &format!("/repos/{REPO}/environments/{env}/variables/{vname}"),
        Some(json!({"value": "green"})),
        204,
    )
    .await;
    api.expect(
        Method::GET,
        &format!("/repos/{REPO}/environments/{env}/variables"),
        None,
        200,
    )
    .await;
    api.expect(
        Method::DELETE,
        &format!("/repos/{REPO}/environments/{env}/variables/{vname}"),
        None,
        204,
    )
    .await;
    api.expect(
        Method::DELETE,
        &format!("/repos/{REPO}/environments/{env}"),
        None,
        204,
    )
    .await;
    api.expect(Method::GET, "/rate_limit", None, 200).await;
    let me = api.expect(Method::GET, "/user", None, 200).await;
    assert_eq!(me["login"], "provisioner-sim");
}

#[tokio::test]
async fn variables_and_deploy_keys_through_the_description() {
    let api = gh_api(proxy());
    let name = unique("region");
    api.expect(
        Method::POST,
        &format!("/repos/{REPO}/actions/variables"),
        Some(json!({"name": name, "value": "nyc3"})),
        201,
    )
    .await;
    let v = api
        .expect(
            Method::GET,
            &format!("/repos/{REPO}/actions/variables/{name}"),
            None,
            200,
        )
        .await;
    assert_eq!(v["value"], "nyc3");
    api.expect(
        Method::PATCH,
        &format!("/repos/{REPO}/actions/variables/{name}"),
        Some(json!({"value": "ams3"})),
        204,
    )
    .await;
    let list = api
        .expect(
            Method::GET,
            &format!("/repos/{REPO}/actions/variables?per_page=30"),
            None,
            200,
        )
        .await;
    assert!(
        list["variables"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == name.as_str() && x["value"] == "ams3")
    );
    api.expect(
        Method::DELETE,
        &format!("/repos/{REPO}/actions/variables/{name}"),
        None,
        204,
    )
    .await;

    let public = format!(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{} flux",
        &uuid::Uuid::new_v4().simple().to_string()[..20]
    );
    let k = api
        .expect(
            Method::POST,
            &format!("/repos/{REPO}/keys"),
            Some(json!({"title": "flux", "key": public, "read_only": true})),
            201,
        )
        .await;
    let id = k["id"].as_u64().unwrap();
    assert_eq!(k["read_only"], true);
    api.expect(Method::GET, &format!("/repos/{REPO}/keys/{id}"), None, 200)
        .await;
    let keys = api
        .expect(Method::GET, &format!("/repos/{REPO}/keys"), None, 200)
        .await;
    assert!(keys.as_array().unwrap().iter().any(|x| x["id"] == id));
    api.expect(
        Method::DELETE,
        &format!("/repos/{REPO}/keys/{id}"),
        None,
        204,
    )
    .await;
    api.expect(Method::GET, &format!("/repos/{REPO}/keys/{id}"), None, 404)
        .await;
}

#[tokio::test]
async fn sealed_boxes_are_opened_and_bad_ones_refused() {
    let sim = GhSim::start(GhConfig::default()).await.unwrap();
    sim.create_repo("o/r");
    let api = gh_api(sim.url());
    let (_, _, key) = api
        .call_with(
            Method::GET,
            "/repos/o/r/actions/secrets/public-key",
            None,
            None,
        )
        .await;
    let pk = key["key"].as_str().unwrap();
    let (status, _, _) = api
        .call_with(
            Method::PUT,
            "/repos/o/r/actions/secrets/mixed_Case",
            Some(json!({"encrypted_value": seal(pk, b"canary-value"), "key_id": key["key_id"]})),
            None,
        )
        .await;
    assert_eq!(status, 201);
    // Stored upper-case, found case-insensitively, and really decrypted.
    assert_eq!(
        sim.secret("o/r", None, "MIXED_CASE").as_deref(),
        Some(&b"canary-value"[..])
    );
    let (status, _, _) = api
        .call_with(
            Method::GET,
            "/repos/o/r/actions/secrets/mixed_case",
            None,
            None,
        )
        .await;
    assert_eq!(status, 200);
    // Sealed for another key: refused.
    let other = crypto_box::SecretKey::generate(&mut crypto_box::aead::OsRng);
    let foreign = B64.encode(other.public_key().as_bytes());
    let (status, _, e) = api
        .call_with(
            Method::PUT,
            "/repos/o/r/actions/secrets/X",
            Some(json!({"encrypted_value": seal(&foreign, b"v"), "key_id": key["key_id"]})),
            None,
        )
        .await;
    assert_eq!(status, 422);
    assert!(e["message"].as_str().unwrap().contains("decrypted"), "{e}");
    let (status, _, _) = api
        .call_with(
            Method::PUT,
            "/repos/o/r/actions/secrets/X",
            Some(json!({"encrypted_value": "not base64!", "key_id": key["key_id"]})),
            None,
        )
        .await;
    assert_eq!(status, 422);
    for bad in ["GITHUB_TOKEN", "1ABC", "has-dash"] {
        let (status, _, _) = api
            .call_with(
                Method::PUT,
                &format!("/repos/o/r/actions/secrets/{bad}"),
                Some(json!({"encrypted_value": seal(pk, b"v"), "key_id": key["key_id"]})),
                None,
            )
            .await;
        assert_eq!(status, 422, "{bad}");
    }
    // Drift: set by hand, updated_at moves forward.
    let (_, _, before) = api
        .call_with(
            Method::GET,
            "/repos/o/r/actions/secrets/MIXED_CASE",
            None,
            None,
        )
        .await;
    assert!(sim.overwrite_secret("o/r", "mixed_case", b"by hand"));
    let (_, _, after) = api
        .call_with(
            Method::GET,
            "/repos/o/r/actions/secrets/MIXED_CASE",
            None,
            None,
        )
        .await;
    assert!(after["updated_at"].as_str().unwrap() > before["updated_at"].as_str().unwrap());
}

#[tokio::test]
async fn etags_make_unchanged_lists_free_and_limits_are_reported() {
    let sim = GhSim::start(GhConfig {
        per_hour: 50,
        ..GhConfig::default()
    })
    .await
    .unwrap();
    sim.create_repo("o/r");
    let api = gh_api(sim.url());
    for i in 0..35 {
        api.call_with(
            Method::POST,
            "/repos/o/r/actions/variables",
            Some(json!({"name": format!("V{i}"), "value": "x"})),
            None,
        )
        .await;
    }
    let (status, h, v) = api
        .call_with(Method::GET, "/repos/o/r/actions/variables", None, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(v["total_count"], 35);
    assert_eq!(v["variables"].as_array().unwrap().len(), 30);
    assert!(h["link"].to_str().unwrap().contains("rel=\"next\""));
    let etag = h["etag"].to_str().unwrap().to_string();
    let used: u64 = h["x-ratelimit-used"].to_str().unwrap().parse().unwrap();
    assert_eq!(h["x-ratelimit-limit"], "50");
    assert_eq!(h["x-ratelimit-resource"], "core");
    let (status, h2, _) = api
        .call_with(
            Method::GET,
            "/repos/o/r/actions/variables",
            None,
            Some(&etag),
        )
        .await;
    assert_eq!(status, 304);
    assert_eq!(
        h2["x-ratelimit-used"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap(),
        used,
        "a 304 is free"
    );
    // A change makes the ETag stale.
    api.call_with(
        Method::PATCH,
        "/repos/o/r/actions/variables/V0",
        Some(json!({"value": "y"})),
        None,
    )
    .await;
    let (status, _, _) = api
        .call_with(
            Method::GET,
            "/repos/o/r/actions/variables",
            None,
            Some(&etag),
        )
        .await;
    assert_eq!(status, 200);
    // Exhaust the primary limit: 403 with remaining 0.
    loop {
        let (status, h, _) = api
            .call_with(Method::GET, "/repos/o/r/actions/secrets", None, None)
            .await;
        if status == 403 {
            assert_eq!(h["x-ratelimit-remaining"], "0");
            break;
        }
    }
}

#[tokio::test]
async fn secondary_limits_and_auth() {
    let sim = GhSim::start(GhConfig::default()).await.unwrap();
    sim.create_repo("o/r");
    let mut api = gh_api(sim.url());
    sim.faults.inject(
        Some("PUT"),
        "/repos/o/r/actions/secrets/",
        Fault::Respond {
            status: 403,
            body: r#"{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again.","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"}"#.into(),
            headers: vec![("retry-after".into(), "7".into())],
        },
        Some(1),
    );
    let (status, h, v) = api
        .call_with(
            Method::PUT,
            "/repos/o/r/actions/secrets/A",
            Some(json!({"encrypted_value": "x", "key_id": "1"})),
            None,
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(h["retry-after"], "7");
    assert!(
        v["documentation_url"]
            .as_str()
            .unwrap()
            .ends_with("secondary-rate-limits")
    );
    let (status, _, _) = api
        .call_with(Method::GET, "/repos/o/missing/actions/secrets", None, None)
        .await;
    assert_eq!(status, 404);
    api.token = "nope".into();
    let (status, _, v) = api
        .call_with(Method::GET, "/repos/o/r/actions/secrets", None, None)
        .await;
    assert_eq!(status, 401);
    assert_eq!(v["message"], "Bad credentials");
}

/// `GET /repos/{owner}/{repo}` and `GET …/environments/{name}` (what the provider reads to
/// confirm a 404) hold to the description, and a repository the token cannot see answers
/// 404 on every path, as GitHub does for a private repository without access.
#[tokio::test]
async fn repositories_confirm_and_unseen_ones_answer_404_everywhere() {
    let api = gh_api(proxy());
    let repo = api
        .expect(Method::GET, &format!("/repos/{REPO}"), None, 200)
        .await;
    assert_eq!(repo["full_name"], REPO);
    let env = unique("confirm");
    api.expect(
        Method::PUT,
        &format!("/repos/{REPO}/environments/{env}"),
        None,
        200,
    )
    .await;
    let got = api
        .expect(
            Method::GET,
            &format!("/repos/{REPO}/environments/{env}"),
            None,
            200,
        )
        .await;
    assert_eq!(got["name"], env.as_str());
    api.expect(Method::GET, &format!("/repos/{HIDDEN}"), None, 404)
        .await;
    // GitHub's description lists no 404 for the paths below (only for the repository
    // itself), though GitHub answers one for a repository the token cannot see: these are
    // checked against the simulator directly.
    let sim = GhSim::start(GhConfig::default()).await.unwrap();
    sim.create_repo(HIDDEN);
    sim.create_environment(HIDDEN, "production");
    let direct = gh_api(sim.url());
    direct
        .expect(
            Method::GET,
            &format!("/repos/{HIDDEN}/environments/no-such-environment"),
            None,
            404,
        )
        .await;
    direct
        .expect(
            Method::GET,
            &format!("/repos/{HIDDEN}/environments/production"),
            None,
            200,
        )
        .await;
    assert!(sim.set_visible(HIDDEN, false));
    for path in [
        String::new(),
        "/actions/secrets".into(),
        "/actions/secrets/public-key".into(),
        "/actions/variables".into(),
        "/environments/production".into(),
        "/environments/production/secrets".into(),
        "/environments/production/variables".into(),
        "/keys".into(),
    ] {
        let body = direct
            .expect(Method::GET, &format!("/repos/{HIDDEN}{path}"), None, 404)
            .await;
        assert_eq!(body["message"], "Not Found", "{path}");
    }
}

/// `GET /meta` holds to the description (schema `api-overview`) and answers without
/// credentials (a public endpoint), but not with bad ones; its `ssh_keys` are GitHub's
/// published host keys until a test rotates them.
#[tokio::test]
async fn meta_lists_the_ssh_host_keys_through_the_description() {
    let mut api = gh_api(proxy());
    let (status, _, v) = api.call(Method::GET, "/meta", None).await;
    assert_eq!(status, 200, "{v}");
    let keys: Vec<&str> = v["ssh_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        provisioner::sim::github::GITHUB_SSH_KEYS
            .iter()
            .map(|(k, _, _)| *k)
            .collect::<Vec<_>>()
    );
    assert_eq!(
        v["ssh_key_fingerprints"]["SHA256_ED25519"],
        "SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU"
    );
    api.token = "nope".into();
    let (status, _, _) = api.call_with(Method::GET, "/meta", None, None).await;
    assert_eq!(status, 401, "bad credentials are refused even on /meta");
    // Without credentials: answered.
    let sim = GhSim::start(GhConfig::default()).await.unwrap();
    let anonymous = reqwest::Client::new()
        .get(format!("{}/meta", sim.url()))
        .header("user-agent", "provisioner-tests")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 200);
}
