//! A stateful simulator of the GitHub REST endpoints the GitHub provider uses: Actions
//! secrets for repositories and environments (a real X25519 key pair per repository and per
//! environment; every sealed box received is opened, and one that does not open is
//! refused), Actions variables, environments, and deploy keys. It sends the
//! `x-ratelimit-*` headers, answers conditional GETs with `304 Not Modified` (which, as on
//! GitHub, cost nothing against the limit), paginates with `Link` headers, and takes
//! secondary-limit faults (403/429 with `retry-after`) through [`super::Faults`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use crypto_box::SecretKey;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Faults, Running, now, serve_api};

/// How the simulator behaves.
#[derive(Clone, Debug)]
pub struct GhConfig {
    /// The only token it accepts.
    pub token: String,
    /// Requests per hour.
    pub per_hour: u64,
}

impl Default for GhConfig {
    fn default() -> Self {
        GhConfig {
            token: "sim-gh-token".into(),
            per_hour: 5000,
        }
    }
}

/// A secret as the simulator keeps it: the plaintext is kept so tests can check what was
/// really delivered.
#[derive(Clone, Debug)]
pub struct StoredSecret {
    /// Upper-case name.
    pub name: String,
    /// The decrypted value.
    pub value: Vec<u8>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// A key pair for sealed boxes.
pub struct BoxKey {
    /// The id clients send back with `key_id`.
    pub id: String,
    secret: SecretKey,
}

impl std::fmt::Debug for BoxKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BoxKey({})", self.id)
    }
}

impl BoxKey {
    fn new(n: u64) -> Self {
        BoxKey {
            id: format!("{}", 568250167242549743u64 + n),
            secret: SecretKey::generate(&mut crypto_box::aead::OsRng),
        }
    }

    /// The public half, base64 as the API returns it.
    pub fn public_b64(&self) -> String {
        B64.encode(self.secret.public_key().as_bytes())
    }
}

/// Secrets, variables and a key pair: what a repository and each environment hold.
#[derive(Debug)]
pub struct Scope {
    /// The sealed-box key.
    pub key: BoxKey,
    /// Secrets by upper-case name.
    pub secrets: BTreeMap<String, StoredSecret>,
    /// Variables by upper-case name (`{name, value, created_at, updated_at}`).
    pub variables: BTreeMap<String, Value>,
}

impl Scope {
    fn new(n: u64) -> Self {
        Scope {
            key: BoxKey::new(n),
            secrets: BTreeMap::new(),
            variables: BTreeMap::new(),
        }
    }
}

/// One repository.
#[derive(Debug)]
pub struct Repo {
    /// Numeric id.
    pub id: u64,
    /// Repository secrets and variables.
    pub actions: Scope,
    /// Environments by name.
    pub environments: BTreeMap<String, Scope>,
    /// Deploy keys.
    pub keys: Vec<Value>,
    /// When false the token cannot see the repository: every `/repos/{owner}/{repo}/…`
    /// path answers 404 `Not Found`, as GitHub does for a private repository the token has
    /// no access to ("some private resources return 404 instead of 403", cloud-apis C.4;
    /// GitHub REST docs, "Troubleshooting the REST API": "404 Not Found" for a private
    /// repository without access).
    pub visible: bool,
    /// `owner/name` as created (its case kept), for `full_name`.
    pub full_name: String,
}

/// Everything the simulated GitHub holds.
#[derive(Debug, Default)]
pub struct GhState {
    /// Repositories by lower-case `owner/name`.
    pub repos: BTreeMap<String, Repo>,
    /// The SSH host keys `GET /meta` lists (`ssh_keys`), as `type base64`; a test rotates
    /// them by writing new ones. Empty: GitHub's published Ed25519 and ECDSA keys.
    pub ssh_keys: Vec<String>,
    next_id: u64,
    used: u64,
    window_start: u64,
}

struct Shared {
    config: GhConfig,
    state: Mutex<GhState>,
}

/// A running GitHub simulator.
pub struct GhSim {
    /// The server (stops when dropped).
    pub running: Running,
    /// Fault injection and the request log.
    pub faults: Faults,
    shared: Arc<Shared>,
}

impl GhSim {
    /// Starts a simulator on a free loopback port.
    pub async fn start(config: GhConfig) -> std::io::Result<GhSim> {
        let shared = Arc::new(Shared {
            config,
            state: Mutex::new(GhState {
                next_id: 1,
                ..GhState::default()
            }),
        });
        let (running, faults) = serve_api(handle, shared.clone()).await?;
        Ok(GhSim {
            running,
            faults,
            shared,
        })
    }

    /// The base URL (`GITHUB_API_URL`).
    pub fn url(&self) -> &str {
        &self.running.url
    }

    /// Reads or changes the state directly (out-of-band edits).
    pub fn edit<R>(&self, f: impl FnOnce(&mut GhState) -> R) -> R {
        f(&mut self.shared.state.lock().expect("state"))
    }

    /// Creates a repository (`owner/name`), as existing before provisioner runs.
    pub fn create_repo(&self, full_name: &str) {
        self.edit(|s| {
            s.next_id += 1;
            let id = s.next_id;
            s.repos
                .entry(full_name.to_ascii_lowercase())
                .or_insert(Repo {
                    id: 1_296_269 + id,
                    actions: Scope::new(id * 10),
                    environments: BTreeMap::new(),
                    keys: Vec::new(),
                    visible: true,
                    full_name: full_name.to_string(),
                });
        });
    }

    /// Makes a repository visible or invisible to the token (its access revoked, the token
    /// replaced by one scoped to other repositories): an invisible repository answers 404 on
    /// every path, as GitHub does. False when there is no such repository.
    pub fn set_visible(&self, full_name: &str, visible: bool) -> bool {
        self.edit(|s| match s.repos.get_mut(&full_name.to_ascii_lowercase()) {
            Some(r) => {
                r.visible = visible;
                true
            }
            None => false,
        })
    }

    /// Creates a deployment environment in a repository (as someone would in its settings).
    pub fn create_environment(&self, full_name: &str, environment: &str) -> bool {
        self.edit(|s| {
            s.next_id += 1;
            let id = s.next_id;
            let Some(r) = s.repos.get_mut(&full_name.to_ascii_lowercase()) else {
                return false;
            };
            r.environments
                .entry(environment.to_string())
                .or_insert_with(|| Scope::new(id * 10 + 1));
            true
        })
    }

    /// The decrypted value of a repository secret (or an environment's), if set.
    pub fn secret(&self, repo: &str, environment: Option<&str>, name: &str) -> Option<Vec<u8>> {
        self.edit(|s| {
            let r = s.repos.get(&repo.to_ascii_lowercase())?;
            let scope = match environment {
                Some(e) => r.environments.get(e)?,
                None => &r.actions,
            };
            scope
                .secrets
                .get(&name.to_ascii_uppercase())
                .map(|x| x.value.clone())
        })
    }

    /// Drift: someone sets a secret by hand (its `updated_at` moves to now).
    pub fn overwrite_secret(&self, repo: &str, name: &str, value: &[u8]) -> bool {
        self.edit(|s| {
            let Some(r) = s.repos.get_mut(&repo.to_ascii_lowercase()) else {
                return false;
            };
            let Some(secret) = r.actions.secrets.get_mut(&name.to_ascii_uppercase()) else {
                return false;
            };
            secret.value = value.to_vec();
            secret.updated_at = later_than(&secret.updated_at);
            true
        })
    }
}

/// A timestamp after `previous`, even within the same second.
fn later_than(previous: &str) -> String {
    let t = now();
    if t.as_str() > previous {
        t
    } else {
        let when = humantime::parse_rfc3339(previous).unwrap_or(SystemTime::now())
            + std::time::Duration::from_secs(1);
        provisioner_core::ledger::lease::rfc3339(when)
    }
}

struct ApiError {
    status: StatusCode,
    message: String,
}

fn err(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        message: message.into(),
    }
}

fn not_found() -> ApiError {
    err(StatusCode::NOT_FOUND, "Not Found")
}

fn unprocessable(message: impl Into<String>) -> ApiError {
    err(StatusCode::UNPROCESSABLE_ENTITY, message)
}

enum Reply {
    Json(StatusCode, Value, Option<String>),
    Empty(StatusCode),
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("token "))
        })
        .is_some_and(|t| t == shared.config.token);
    let mut state = shared.state.lock().expect("state");
    let epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    if epoch >= state.window_start + 3600 {
        state.window_start = epoch;
        state.used = 0;
    }
    // `GET /meta` is public: without credentials it is answered (within the
    // unauthenticated rate limit); with bad ones it is a 401, as every endpoint.
    let public =
        uri.path().trim_end_matches('/') == "/meta" && !headers.contains_key("authorization");
    let reply = if !authorized && !public {
        Err(err(StatusCode::UNAUTHORIZED, "Bad credentials"))
    } else if state.used >= shared.config.per_hour {
        Err(err(
            StatusCode::FORBIDDEN,
            "API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, please include the request ID.",
        ))
    } else {
        let query = super::parse_query(uri.query().unwrap_or(""));
        let body = if body.is_empty() {
            Ok(Value::Null)
        } else {
            serde_json::from_slice(&body)
                .map_err(|_| err(StatusCode::BAD_REQUEST, "Problems parsing JSON"))
        };
        body.and_then(|b| route(&mut state, &method, uri.path(), &query, b))
    };
    // Conditional GETs: a matching ETag is 304, and free.
    let mut not_modified = false;
    if let Ok(Reply::Json(StatusCode::OK, v, _)) = &reply {
        let etag = etag_of(v);
        not_modified = headers
            .get("if-none-match")
            .and_then(|h| h.to_str().ok())
            .is_some_and(|h| h.split(',').any(|t| t.trim() == etag));
    }
    if authorized && !not_modified {
        state.used += 1;
    }
    let remaining = shared.config.per_hour.saturating_sub(state.used);
    let used = state.used;
    let reset = state.window_start + 3600;
    drop(state);
    let mut response = match reply {
        Ok(Reply::Json(status, v, link)) => {
            let etag = etag_of(&v);
            let mut r = if not_modified {
                StatusCode::NOT_MODIFIED.into_response()
            } else {
                (status, axum::Json(v)).into_response()
            };
            if status == StatusCode::OK
                && let Ok(e) = HeaderValue::from_str(&etag)
            {
                r.headers_mut().insert("etag", e);
            }
            if let Some(link) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
                r.headers_mut().insert("link", link);
            }
            r
        }
        Ok(Reply::Empty(status)) => status.into_response(),
        Err(e) => (
            e.status,
            axum::Json(json!({
                "message": e.message,
                "documentation_url": "https://docs.github.com/rest",
                "status": e.status.as_u16().to_string(),
            })),
        )
            .into_response(),
    };
    let h = response.headers_mut();
    for (k, v) in [
        ("x-ratelimit-limit", shared.config.per_hour.to_string()),
        ("x-ratelimit-remaining", remaining.to_string()),
        ("x-ratelimit-used", used.to_string()),
        ("x-ratelimit-reset", reset.to_string()),
        ("x-ratelimit-resource", "core".to_string()),
        ("x-github-api-version-selected", "2022-11-28".to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
    response
}

fn etag_of(v: &Value) -> String {
    let digest = Sha256::digest(serde_json::to_vec(v).unwrap_or_default());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("W/\"{hex}\"")
}

fn paginate(
    items: Vec<Value>,
    key: &str,
    path: &str,
    query: &BTreeMap<String, String>,
    max_per_page: usize,
) -> Result<Reply, ApiError> {
    let per_page = query
        .get("per_page")
        .map(|v| v.parse::<usize>())
        .transpose()
        .map_err(|_| unprocessable("per_page must be a number"))?
        .unwrap_or(30)
        .clamp(1, max_per_page);
    let page = query
        .get("page")
        .map(|v| v.parse::<usize>())
        .transpose()
        .map_err(|_| unprocessable("page must be a number"))?
        .unwrap_or(1)
        .max(1);
    let total = items.len();
    let last = total.div_ceil(per_page).max(1);
    let slice: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let link = |p: usize, rel: &str| {
        format!("<https://api.github.com{path}?per_page={per_page}&page={p}>; rel=\"{rel}\"")
    };
    let mut links = Vec::new();
    if page < last {
        links.push(link(page + 1, "next"));
        links.push(link(last, "last"));
    }
    if page > 1 {
        links.push(link(1, "first"));
        links.push(link(page - 1, "prev"));
    }
    Ok(Reply::Json(
        StatusCode::OK,
        json!({"total_count": total, key: slice}),
        (!links.is_empty()).then(|| links.join(", ")),
    ))
}

/// `GET /repos/{owner}/{repo}`: a `full-repository` with every member GitHub's description
/// requires (the URLs follow GitHub's own answer for `octocat/Hello-World`).
fn full_repository(repo: &Repo) -> Value {
    let full = &repo.full_name;
    let (owner, name) = full.split_once('/').unwrap_or((full, full));
    let api = format!("https://api.github.com/repos/{full}");
    let user = format!("https://api.github.com/users/{owner}");
    let mut v = json!({
        "id": repo.id,
        "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5",
        "name": name,
        "full_name": full,
        "owner": {
            "login": owner, "id": 1, "node_id": "MDQ6VXNlcjE=",
            "avatar_url": "https://github.com/images/error/octocat_happy.gif",
            "gravatar_id": "", "url": user, "html_url": format!("https://github.com/{owner}"),
            "followers_url": format!("{user}/followers"),
            "following_url": format!("{user}/following{{/other_user}}"),
            "gists_url": format!("{user}/gists{{/gist_id}}"),
            "starred_url": format!("{user}/starred{{/owner}}{{/repo}}"),
            "subscriptions_url": format!("{user}/subscriptions"),
            "organizations_url": format!("{user}/orgs"),
            "repos_url": format!("{user}/repos"),
            "events_url": format!("{user}/events{{/privacy}}"),
            "received_events_url": format!("{user}/received_events"),
            "type": "Organization", "site_admin": false,
        },
        "private": true,
        "html_url": format!("https://github.com/{full}"),
        "description": null,
        "fork": false,
        "url": api,
        "clone_url": format!("https://github.com/{full}.git"),
        "git_url": format!("git:github.com/{full}.git"),
        "ssh_url": format!("git@github.com:{full}.git"),
        "svn_url": format!("https://svn.github.com/{full}"),
        "mirror_url": null,
        "homepage": null,
        "language": null,
        "default_branch": "main",
        "forks": 0, "forks_count": 0, "open_issues": 0, "open_issues_count": 0,
        "stargazers_count": 0, "watchers": 0, "watchers_count": 0, "size": 0,
        "network_count": 0, "subscribers_count": 0,
        "has_issues": true, "has_projects": true, "has_wiki": true, "has_pages": false,
        "has_discussions": false, "archived": false, "disabled": false,
        "license": null,
        "pushed_at": "2024-01-01T00:00:00Z",
        "created_at": "2024-01-01T00:00:00Z",
        "updated_at": "2024-01-01T00:00:00Z",
    });
    let templated = [
        ("archive_url", "/{archive_format}{/ref}"),
        ("assignees_url", "/assignees{/user}"),
        ("blobs_url", "/git/blobs{/sha}"),
        ("branches_url", "/branches{/branch}"),
        ("collaborators_url", "/collaborators{/collaborator}"),
        ("comments_url", "/comments{/number}"),
        ("commits_url", "/commits{/sha}"),
        ("compare_url", "/compare/{base}...{head}"),
        ("contents_url", "/contents/{+path}"),
        ("contributors_url", "/contributors"),
        ("deployments_url", "/deployments"),
        ("downloads_url", "/downloads"),
        ("events_url", "/events"),
        ("forks_url", "/forks"),
        ("git_commits_url", "/git/commits{/sha}"),
        ("git_refs_url", "/git/refs{/sha}"),
        ("git_tags_url", "/git/tags{/sha}"),
        ("hooks_url", "/hooks"),
        ("issue_comment_url", "/issues/comments{/number}"),
        ("issue_events_url", "/issues/events{/number}"),
        ("issues_url", "/issues{/number}"),
        ("keys_url", "/keys{/key_id}"),
        ("labels_url", "/labels{/name}"),
        ("languages_url", "/languages"),
        ("merges_url", "/merges"),
        ("milestones_url", "/milestones{/number}"),
        (
            "notifications_url",
            "/notifications{?since,all,participating}",
        ),
        ("pulls_url", "/pulls{/number}"),
        ("releases_url", "/releases{/id}"),
        ("stargazers_url", "/stargazers"),
        ("statuses_url", "/statuses/{sha}"),
        ("subscribers_url", "/subscribers"),
        ("subscription_url", "/subscription"),
        ("tags_url", "/tags"),
        ("teams_url", "/teams"),
        ("trees_url", "/git/trees{/sha}"),
    ];
    for (key, tail) in templated {
        v[key] = json!(format!("{api}{tail}"));
    }
    v
}

fn ok(v: Value) -> Result<Reply, ApiError> {
    Ok(Reply::Json(StatusCode::OK, v, None))
}

fn scope<'a>(repo: &'a mut Repo, environment: Option<&str>) -> Result<&'a mut Scope, ApiError> {
    match environment {
        None => Ok(&mut repo.actions),
        Some(e) => repo.environments.get_mut(e).ok_or_else(not_found),
    }
}

fn valid_secret_name(name: &str) -> Result<String, ApiError> {
    let upper = name.to_ascii_uppercase();
    let ok = !upper.is_empty()
        && upper
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !upper.starts_with("GITHUB_")
        && !upper.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(upper)
    } else {
        Err(unprocessable(format!(
            "Secret names can only contain alphanumeric characters ([a-z], [A-Z], [0-9]) or underscores (_), must not start with a number or GITHUB_: {name}"
        )))
    }
}

/// GitHub's published SSH host keys for github.com (docs.github.com, "GitHub's SSH key
/// fingerprints"; the same lines as `GET /meta` `ssh_keys`), with their SHA-256
/// fingerprints.
pub const GITHUB_SSH_KEYS: [(&str, &str, &str); 2] = [
    (
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
        "SHA256_ED25519",
        "SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU",
    ),
    (
        "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEmKSENjQEezOmxkZMy7opKgwFB9nkt5YRrYMjNuG5N87uRgg6CLrbo5wAdT/y6v0mKV0U2w0WZ2YB/++Tpockg=",
        "SHA256_ECDSA",
        "SHA256:p2QAMXNIC1TJYWeIOttrVc98/R1BUFWu3/LiyKgUfQM",
    ),
];

/// `GET /meta` (GitHub REST API, "Meta": schema `api-overview`, of which only
/// `verifiable_password_authentication` is required): the SSH host keys and their
/// fingerprints, and a few of the address lists.
fn meta(s: &GhState) -> Value {
    let (keys, fingerprints): (Vec<String>, serde_json::Map<String, Value>) =
        if s.ssh_keys.is_empty() {
            (
                GITHUB_SSH_KEYS
                    .iter()
                    .map(|(k, _, _)| k.to_string())
                    .collect(),
                GITHUB_SSH_KEYS
                    .iter()
                    .map(|(_, name, fp)| (name.to_string(), json!(fp)))
                    .collect(),
            )
        } else {
            // Rotated keys: the fingerprints are not computed (the field is optional).
            (s.ssh_keys.clone(), serde_json::Map::new())
        };
    let mut v = json!({
        "verifiable_password_authentication": false,
        "ssh_keys": keys,
        "hooks": ["192.30.252.0/22"],
        "web": ["192.30.252.0/22"],
        "api": ["192.30.252.0/22"],
        "git": ["192.30.252.0/22"],
    });
    if !fingerprints.is_empty() {
        v["ssh_key_fingerprints"] = Value::Object(fingerprints);
    }
    v
}

fn route(
    s: &mut GhState,
    method: &Method,
    path: &str,
    query: &BTreeMap<String, String>,
    body: Value,
) -> Result<Reply, ApiError> {
    // GitHub percent-decodes each path segment: an environment `staging deploy` is sent as
    // `staging%20deploy` and found under its own name (issue 19; RFC 3986 §2.1).
    let decoded: Vec<String> = path
        .trim_end_matches('/')
        .split('/')
        .skip(1)
        .map(super::percent_decode)
        .collect();
    let parts: Vec<&str> = decoded.iter().map(String::as_str).collect();
    if let ["rate_limit"] = parts.as_slice() {
        let reset = s.window_start + 3600;
        let core = json!({"limit": 5000, "used": s.used, "remaining": 5000u64.saturating_sub(s.used), "reset": reset});
        let other =
            |limit: u64| json!({"limit": limit, "used": 0, "remaining": limit, "reset": reset});
        return ok(json!({
            "resources": {"core": core, "search": other(30), "graphql": other(5000), "integration_manifest": other(5000)},
            "rate": core,
        }));
    }
    if let ["meta"] = parts.as_slice() {
        return ok(meta(s));
    }
    if let ["user"] = parts.as_slice() {
        // The token's user, as `GET /user` answers for a classic token (public view).
        let base = "https://api.github.com/users/provisioner-sim";
        return ok(json!({
            "login": "provisioner-sim", "id": 1001, "node_id": "U_kgDOAAAD6Q",
            "avatar_url": "https://avatars.githubusercontent.com/u/1001?v=4", "gravatar_id": "",
            "url": base, "html_url": "https://github.com/provisioner-sim",
            "followers_url": format!("{base}/followers"),
            "following_url": format!("{base}/following{{/other_user}}"),
            "gists_url": format!("{base}/gists{{/gist_id}}"),
            "starred_url": format!("{base}/starred{{/owner}}{{/repo}}"),
            "subscriptions_url": format!("{base}/subscriptions"),
            "organizations_url": format!("{base}/orgs"), "repos_url": format!("{base}/repos"),
            "events_url": format!("{base}/events{{/privacy}}"),
            "received_events_url": format!("{base}/received_events"),
            "type": "User", "site_admin": false, "user_view_type": "public",
            "name": "Simulated user", "company": null, "blog": "", "location": null,
            "email": null, "hireable": null, "bio": null,
            "public_repos": 0, "public_gists": 0, "followers": 0, "following": 0,
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"
        }));
    }
    let ["repos", owner, name, rest @ ..] = parts.as_slice() else {
        return Err(not_found());
    };
    let full = format!("{owner}/{name}").to_ascii_lowercase();
    s.next_id += 1;
    let next_id = s.next_id;
    let repo = s
        .repos
        .get_mut(&full)
        .filter(|r| r.visible)
        .ok_or_else(not_found)?;
    let m = method.as_str();
    if let ("GET", []) = (m, rest) {
        return ok(full_repository(repo));
    }
    // Split `environments/{env}/...` from `actions/...`.
    let (environment, tail): (Option<&str>, &[&str]) = match rest {
        ["environments", env, tail @ ..] => (Some(*env), tail),
        ["actions", tail @ ..] => (None, tail),
        other => (None, other),
    };
    match (m, environment, tail) {
        ("PUT", Some(env), []) => {
            repo.environments
                .entry(env.to_string())
                .or_insert_with(|| Scope::new(next_id * 10 + 1));
            let t = now();
            ok(json!({
                "id": 161088068 + next_id,
                "node_id": "MDExOkVudmlyb25tZW50MTYxMDg4MDY4",
                "name": env,
                "url": format!("https://api.github.com/repos/{full}/environments/{env}"),
                "html_url": format!("https://github.com/{full}/deployments/activity_log?environments_filter={env}"),
                "created_at": t,
                "updated_at": t,
                "protection_rules": [],
            }))
        }
        ("GET", Some(env), []) => {
            repo.environments.get(env).ok_or_else(not_found)?;
            ok(json!({
                "id": 161088068 + repo.id,
                "node_id": "MDExOkVudmlyb25tZW50MTYxMDg4MDY4",
                "name": env,
                "url": format!("https://api.github.com/repos/{full}/environments/{env}"),
                "html_url": format!("https://github.com/{full}/deployments/activity_log?environments_filter={env}"),
                "created_at": "2024-01-01T00:00:00Z",
                "updated_at": "2024-01-01T00:00:00Z",
                "protection_rules": [],
            }))
        }
        ("DELETE", Some(env), []) => {
            repo.environments.remove(env).ok_or_else(not_found)?;
            Ok(Reply::Empty(StatusCode::NO_CONTENT))
        }
        ("GET", env, ["secrets", "public-key"]) => {
            let sc = scope(repo, env)?;
            ok(json!({"key_id": sc.key.id, "key": sc.key.public_b64()}))
        }
        ("GET", env, ["secrets"]) => {
            let sc = scope(repo, env)?;
            let items = sc
                .secrets
                .values()
                .map(|x| json!({"name": x.name, "created_at": x.created_at, "updated_at": x.updated_at}))
                .collect();
            paginate(items, "secrets", path, query, 100)
        }
        ("GET", env, ["secrets", name]) => {
            let sc = scope(repo, env)?;
            let x = sc
                .secrets
                .get(&name.to_ascii_uppercase())
                .ok_or_else(not_found)?;
            ok(json!({"name": x.name, "created_at": x.created_at, "updated_at": x.updated_at}))
        }
        ("PUT", env, ["secrets", name]) => {
            let upper = valid_secret_name(name)?;
            let sc = scope(repo, env)?;
            let encrypted = body
                .get("encrypted_value")
                .and_then(Value::as_str)
                .ok_or_else(|| unprocessable("encrypted_value is required"))?;
            let key_id = body
                .get("key_id")
                .and_then(Value::as_str)
                .ok_or_else(|| unprocessable("key_id is required"))?;
            if key_id != sc.key.id {
                return Err(unprocessable(format!(
                    "key_id {key_id} is not the current public key"
                )));
            }
            let sealed = B64
                .decode(encrypted)
                .map_err(|_| unprocessable("encrypted_value is not base64"))?;
            let value = sc.key.secret.unseal(&sealed).map_err(|_| {
                unprocessable(
                    "encrypted_value could not be decrypted with the repository's public key",
                )
            })?;
            let t = now();
            match sc.secrets.get_mut(&upper) {
                Some(existing) => {
                    existing.value = value;
                    existing.updated_at = later_than(&existing.updated_at);
                    Ok(Reply::Empty(StatusCode::NO_CONTENT))
                }
                None => {
                    sc.secrets.insert(
                        upper.clone(),
                        StoredSecret {
                            name: upper,
                            value,
                            created_at: t.clone(),
                            updated_at: t,
                        },
                    );
                    Ok(Reply::Json(StatusCode::CREATED, json!({}), None))
                }
            }
        }
        ("DELETE", env, ["secrets", name]) => {
            let sc = scope(repo, env)?;
            sc.secrets
                .remove(&name.to_ascii_uppercase())
                .ok_or_else(not_found)?;
            Ok(Reply::Empty(StatusCode::NO_CONTENT))
        }
        ("GET", env, ["variables"]) => {
            let sc = scope(repo, env)?;
            let items = sc.variables.values().cloned().collect();
            paginate(items, "variables", path, query, 30)
        }
        ("POST", env, ["variables"]) => {
            let sc = scope(repo, env)?;
            let name = body
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| unprocessable("name is required"))?;
            let value = body
                .get("value")
                .and_then(Value::as_str)
                .ok_or_else(|| unprocessable("value is required"))?;
            let upper = valid_secret_name(name)?;
            if sc.variables.contains_key(&upper) {
                return Err(err(
                    StatusCode::CONFLICT,
                    "Already exists - Variable already exists",
                ));
            }
            let t = now();
            sc.variables.insert(
                upper.clone(),
                json!({"name": upper, "value": value, "created_at": t, "updated_at": t}),
            );
            Ok(Reply::Json(StatusCode::CREATED, json!({}), None))
        }
        ("GET", env, ["variables", name]) => {
            let sc = scope(repo, env)?;
            ok(sc
                .variables
                .get(&name.to_ascii_uppercase())
                .cloned()
                .ok_or_else(not_found)?)
        }
        ("PATCH", env, ["variables", name]) => {
            let sc = scope(repo, env)?;
            let upper = name.to_ascii_uppercase();
            let mut v = sc.variables.remove(&upper).ok_or_else(not_found)?;
            let mut key = upper;
            if let Some(new_name) = body.get("name").and_then(Value::as_str) {
                key = valid_secret_name(new_name)?;
                v["name"] = json!(key);
            }
            if let Some(value) = body.get("value").and_then(Value::as_str) {
                v["value"] = json!(value);
            }
            let previous = v["updated_at"].as_str().unwrap_or("").to_string();
            v["updated_at"] = json!(later_than(&previous));
            sc.variables.insert(key, v);
            Ok(Reply::Empty(StatusCode::NO_CONTENT))
        }
        ("DELETE", env, ["variables", name]) => {
            let sc = scope(repo, env)?;
            sc.variables
                .remove(&name.to_ascii_uppercase())
                .ok_or_else(not_found)?;
            Ok(Reply::Empty(StatusCode::NO_CONTENT))
        }
        ("GET", None, ["keys"]) if rest.first() == Some(&"keys") => {
            paginate_plain(repo.keys.clone(), path, query)
        }
        ("POST", None, ["keys"]) if rest.first() == Some(&"keys") => {
            let key = body
                .get("key")
                .and_then(Value::as_str)
                .ok_or_else(|| unprocessable("key is required"))?
                .trim()
                .to_string();
            let valid = ["ssh-ed25519 ", "ssh-rsa ", "ecdsa-sha2-nistp256 "]
                .iter()
                .any(|p| key.starts_with(p));
            if !valid {
                return Err(unprocessable(
                    "key is invalid. You must supply a key in OpenSSH public key format",
                ));
            }
            let bare: String = key.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
            if repo.keys.iter().any(|k| k["key"] == bare.as_str()) {
                return Err(unprocessable("key is already in use"));
            }
            let id = 1_000_000 + next_id;
            let k = json!({
                "id": id,
                "key": bare,
                "url": format!("https://api.github.com/repos/{full}/keys/{id}"),
                "title": body.get("title").cloned().unwrap_or(json!("")),
                "verified": true,
                "created_at": now(),
                "read_only": body.get("read_only").cloned().unwrap_or(json!(false)),
                "added_by": "provisioner",
                "last_used": null,
                "enabled": true,
            });
            repo.keys.push(k.clone());
            Ok(Reply::Json(StatusCode::CREATED, k, None))
        }
        ("GET", None, ["keys", id]) if rest.first() == Some(&"keys") => ok(repo
            .keys
            .iter()
            .find(|k| id.parse::<u64>().ok() == k["id"].as_u64())
            .cloned()
            .ok_or_else(not_found)?),
        ("DELETE", None, ["keys", id]) if rest.first() == Some(&"keys") => {
            let before = repo.keys.len();
            repo.keys
                .retain(|k| id.parse::<u64>().ok() != k["id"].as_u64());
            if repo.keys.len() == before {
                return Err(not_found());
            }
            Ok(Reply::Empty(StatusCode::NO_CONTENT))
        }
        _ => Err(not_found()),
    }
}

/// Deploy keys list as a bare array (with `Link` pagination), not an envelope.
fn paginate_plain(
    items: Vec<Value>,
    path: &str,
    query: &BTreeMap<String, String>,
) -> Result<Reply, ApiError> {
    match paginate(items, "items", path, query, 100)? {
        Reply::Json(status, v, link) => Ok(Reply::Json(status, v["items"].clone(), link)),
        other => Ok(other),
    }
}
