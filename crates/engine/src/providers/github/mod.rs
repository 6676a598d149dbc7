//! The GitHub provider: Actions secrets (repository and environment), Actions variables and
//! deploy keys. `client` holds the rate-limit discipline; `keys` makes deploy-key pairs.
//!
//! Cloud ids are paths: `owner/repo/NAME` for a repository secret or variable,
//! `owner/repo/ENVIRONMENT/NAME` for an environment's, `owner/repo/ID` for a deploy key, so
//! a delete or replace knows where the old object lives.

pub mod client;
pub mod keys;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use futures_util::future::join_all;
use http::Method;
use serde_json::{Map, Value, json};

pub use client::{GhApiConfig, GhClient, GhError};

use crate::desired::{DesiredState, Kind};
use crate::ledger::Ledger;
use crate::live::{FailedScope, KindObservation, LiveObject, ObserveStatus};
use crate::plan::Action;
use crate::providers::{Applied, ApplyRequest, ObserveScope, ProviderError, SecretValue};

/// The GitHub kinds.
pub const KINDS: [Kind; 4] = [
    Kind::GhActionsSecret,
    Kind::GhEnvironmentSecret,
    Kind::GhActionsVariable,
    Kind::GhDeployKey,
];

/// Where secrets and variables live: a repository, or one of its environments.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Scope {
    /// `owner/name`, lower-case.
    repository: String,
    environment: Option<String>,
}

impl Scope {
    fn new(repository: &str, environment: Option<&str>) -> Self {
        Scope {
            repository: repository.to_ascii_lowercase(),
            environment: environment.map(str::to_string),
        }
    }

    /// The API path of the scope's secrets or variables collection (`what`).
    fn path(&self, what: &str) -> String {
        match &self.environment {
            None => format!("/repos/{}/actions/{what}", self.repository),
            Some(e) => format!(
                "/repos/{}/environments/{}/{what}",
                self.repository,
                segment(e)
            ),
        }
    }

    /// The cloud id of a named object in this scope.
    fn id(&self, name: &str) -> String {
        match &self.environment {
            None => format!("{}/{name}", self.repository),
            Some(e) => format!("{}/{e}/{name}", self.repository),
        }
    }

    fn from_id(id: &str) -> Option<(Scope, String)> {
        let parts: Vec<&str> = id.split('/').collect();
        match parts.as_slice() {
            [o, r, name] => Some((Scope::new(&format!("{o}/{r}"), None), name.to_string())),
            [o, r, env, name] => {
                Some((Scope::new(&format!("{o}/{r}"), Some(env)), name.to_string()))
            }
            _ => None,
        }
    }
}

impl Scope {
    /// This scope as a failed scope of an observation, by the fields its objects carry.
    fn failed(&self, reason: String) -> FailedScope {
        let mut fields = vec![("repository", self.repository.clone())];
        if let Some(e) = &self.environment {
            fields.push(("environment", e.clone()));
        }
        FailedScope::new(fields, reason)
    }
}

/// Why a scope's list gave no answer to trust.
#[derive(Debug)]
enum ScopeError {
    /// This scope only (a 404 not confirmed, a 403, a 5xx): the rest of the kind stands.
    Scope(String),
    /// Not the scope's own (bad credentials, a rate limit, a connection that failed): the
    /// whole kind is unknown.
    Kind(GhError),
}

impl ScopeError {
    fn of(e: GhError) -> Self {
        match &e {
            GhError::Api { status, .. } if *status != 401 => ScopeError::Scope(e.to_string()),
            _ => ScopeError::Kind(e),
        }
    }
}

/// Percent-encodes a path segment.
fn segment(s: &str) -> String {
    provisioner_core::percent::percent_encode(s)
}

/// The GitHub provider.
pub struct GhProvider {
    /// The API client.
    pub client: GhClient,
    /// Public keys for sealed boxes, fetched once per scope per pass.
    public_keys: Mutex<HashMap<Scope, (String, String)>>,
}

impl std::fmt::Debug for GhProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GhProvider")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl GhProvider {
    /// A provider on this client.
    pub fn new(client: GhClient) -> Self {
        GhProvider {
            client,
            public_keys: Mutex::new(HashMap::new()),
        }
    }

    /// Observes every GitHub kind in the repositories and environments the desired state
    /// and the ledger name: one list per scope and kind, conditional on its ETag. A scope
    /// whose listing fails (a repository the token cannot see, a 403, a 5xx) is reported as
    /// a failed scope: only what lies in it is unknown, every other repository is observed.
    /// A failure that is not the scope's own (bad credentials, a rate limit that does not
    /// reset in time, a connection that fails) makes the whole kind unknown, never empty.
    /// Starts a new pass: the sealed-box keys are fetched again when next needed.
    async fn observe_in(&self, scope: &ObserveScope<'_>) -> BTreeMap<Kind, KindObservation> {
        if let Ok(mut keys) = self.public_keys.lock() {
            keys.clear();
        }
        let scopes = scopes(scope.desired, scope.ledger);
        let mut out = BTreeMap::new();
        for kind in KINDS.into_iter().filter(|k| scope.uses(*k)) {
            let wanted: Vec<&Scope> = scopes
                .iter()
                .filter(|(k, _)| *k == kind)
                .map(|(_, s)| s)
                .collect();
            let lists = join_all(wanted.iter().map(|s| self.observe_scope(kind, s))).await;
            let mut objects = Vec::new();
            let mut failure = None;
            let mut failed_scopes = Vec::new();
            for (scope, r) in wanted.iter().zip(lists) {
                match r {
                    Ok(o) => objects.extend(o),
                    Err(ScopeError::Scope(why)) => failed_scopes.push(scope.failed(why)),
                    Err(ScopeError::Kind(e)) => {
                        failure.get_or_insert(e.to_string());
                    }
                }
            }
            let status = match failure {
                Some(why) => {
                    objects.clear();
                    failed_scopes.clear();
                    ObserveStatus::Failed(why)
                }
                None => ObserveStatus::Complete,
            };
            out.insert(
                kind,
                KindObservation {
                    status,
                    objects,
                    failed_scopes,
                },
            );
        }
        out
    }

    /// What a 404 on a scope's list means. GitHub answers 404, not 403, for a private
    /// repository the token cannot see ("some private resources return 404 instead of
    /// 403", cloud-apis C.4; GitHub REST docs, "Troubleshooting"), so a 404 is "nothing
    /// there" only once `GET /repos/{owner}/{repo}` confirms the repository exists; for an
    /// environment, once `GET /repos/{owner}/{repo}/environments/{name}` confirms the
    /// environment does not (then its secrets and variables do not exist either).
    async fn confirm_absent(&self, scope: &Scope, listed: GhError) -> Result<(), ScopeError> {
        match self
            .client
            .get(&format!("/repos/{}", scope.repository))
            .await
        {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {
                return Err(ScopeError::Scope(format!(
                    "repository {} was not found or is not visible to the token (GitHub answers 404 for both): not observed",
                    scope.repository
                )));
            }
            Err(e) => return Err(ScopeError::of(e)),
        }
        let Some(environment) = &scope.environment else {
            return Err(ScopeError::Scope(format!(
                "{listed}, although repository {} exists (the token may lack the permission to read it): not observed",
                scope.repository
            )));
        };
        match self
            .client
            .get(&format!(
                "/repos/{}/environments/{}",
                scope.repository,
                segment(environment)
            ))
            .await
        {
            // The environment does not exist: it holds nothing.
            Err(e) if e.is_not_found() => Ok(()),
            Ok(_) => Err(ScopeError::Scope(format!(
                "{listed}, although environment \"{environment}\" of {} exists (the token may lack the permission to read it): not observed",
                scope.repository
            ))),
            Err(e) => Err(ScopeError::of(e)),
        }
    }

    async fn observe_scope(
        &self,
        kind: Kind,
        scope: &Scope,
    ) -> Result<Vec<LiveObject>, ScopeError> {
        let base = |name: &str| {
            let mut fields = Map::new();
            fields.insert("repository".into(), json!(scope.repository));
            if let Some(e) = &scope.environment {
                fields.insert("environment".into(), json!(e));
            }
            fields.insert("name".into(), json!(name));
            fields
        };
        let listed = match kind {
            Kind::GhActionsSecret | Kind::GhEnvironmentSecret => {
                self.client
                    .list(
                        &format!("{}?per_page=100", scope.path("secrets")),
                        Some("secrets"),
                    )
                    .await
            }
            Kind::GhActionsVariable => {
                self.client
                    .list(
                        &format!("{}?per_page=30", scope.path("variables")),
                        Some("variables"),
                    )
                    .await
            }
            Kind::GhDeployKey => {
                self.client
                    .list(
                        &format!("/repos/{}/keys?per_page=100", scope.repository),
                        None,
                    )
                    .await
            }
            _ => Ok(Vec::new()),
        };
        let items = match listed {
            Ok(items) => items,
            // Absent only once the repository (and the environment's absence) is confirmed.
            Err(e) if e.is_not_found() => {
                self.confirm_absent(scope, e).await?;
                Vec::new()
            }
            Err(e) => return Err(ScopeError::of(e)),
        };
        let mut out = Vec::new();
        for item in items {
            let text = |k: &str| item.get(k).and_then(Value::as_str).map(str::to_string);
            match kind {
                Kind::GhActionsSecret | Kind::GhEnvironmentSecret => {
                    let Some(name) = text("name") else { continue };
                    let mut attributes = BTreeMap::new();
                    attributes.insert("name".into(), json!(name));
                    out.push(LiveObject {
                        id: scope.id(&name),
                        fields: base(&name),
                        attributes,
                        tags: Vec::new(),
                        updated_at: text("updated_at"),
                        ..Default::default()
                    });
                }
                Kind::GhActionsVariable => {
                    let Some(name) = text("name") else { continue };
                    let mut fields = base(&name);
                    fields.insert("value".into(), item["value"].clone());
                    let mut attributes = BTreeMap::new();
                    attributes.insert("name".into(), json!(name));
                    attributes.insert("value".into(), item["value"].clone());
                    out.push(LiveObject {
                        id: scope.id(&name),
                        fields,
                        attributes,
                        tags: Vec::new(),
                        updated_at: text("updated_at"),
                        ..Default::default()
                    });
                }
                Kind::GhDeployKey => {
                    let Some(id) = item.get("id").and_then(Value::as_u64) else {
                        continue;
                    };
                    let mut fields = Map::new();
                    fields.insert("repository".into(), json!(scope.repository));
                    fields.insert("title".into(), item["title"].clone());
                    fields.insert("read_only".into(), item["read_only"].clone());
                    out.push(LiveObject {
                        id: scope.id(&id.to_string()),
                        fields,
                        attributes: key_attributes(&item),
                        tags: Vec::new(),
                        updated_at: None,
                        ..Default::default()
                    });
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// The scope's sealed-box public key (`key_id`, `key`), once per pass.
    async fn public_key(&self, scope: &Scope, fresh: bool) -> Result<(String, String), GhError> {
        if !fresh
            && let Some(k) = self
                .public_keys
                .lock()
                .ok()
                .and_then(|m| m.get(scope).cloned())
        {
            return Ok(k);
        }
        let answer = self
            .client
            .get(&format!("{}/public-key", scope.path("secrets")))
            .await?;
        let id = answer.body["key_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let key = answer.body["key"].as_str().unwrap_or_default().to_string();
        if let Ok(mut m) = self.public_keys.lock() {
            m.insert(scope.clone(), (id.clone(), key.clone()));
        }
        Ok((id, key))
    }

    async fn put_secret(
        &self,
        scope: &Scope,
        name: &str,
        value: &SecretValue,
    ) -> Result<Applied, ProviderError> {
        let _turn = self.client.lock_repository(&scope.repository).await;
        let path = format!("{}/{}", scope.path("secrets"), segment(name));
        let mut fresh = false;
        loop {
            let (key_id, key) = self.public_key(scope, fresh).await.map_err(|e| {
                if e.is_not_found() && scope.environment.is_some() {
                    ProviderError::msg(format!(
                        "environment \"{}\" does not exist in {}: create it in the repository settings (or with the API) first",
                        scope.environment.as_deref().unwrap_or_default(),
                        scope.repository
                    ))
                } else {
                    e.into()
                }
            })?;
            let sealed = seal(&key, value)?;
            let sent = self
                .client
                .write(
                    Method::PUT,
                    &path,
                    Some(&json!({"encrypted_value": sealed, "key_id": key_id})),
                )
                .await;
            match sent {
                Ok(_) => break,
                // The key was rotated since it was fetched: fetch it again, once.
                Err(GhError::Api { status: 422, .. }) if !fresh => fresh = true,
                Err(e) => return Err(e.into()),
            }
        }
        tokio::time::sleep(self.client.config().write_gap).await;
        // The time GitHub recorded, so a later hand edit shows as a newer `updated_at`.
        let seen = self.client.get(&path).await.ok();
        let stored = seen
            .as_ref()
            .and_then(|a| a.body["name"].as_str())
            .unwrap_or(name)
            .to_string();
        let mut attributes = BTreeMap::new();
        attributes.insert("name".into(), json!(stored));
        Ok(Applied {
            id: scope.id(&stored),
            attributes,
            secrets: BTreeMap::new(),
            updated_at: seen.and_then(|a| a.body["updated_at"].as_str().map(str::to_string)),
            ..Default::default()
        })
    }

    async fn delete_named(&self, scope: &Scope, what: &str, name: &str) -> Result<(), GhError> {
        let _turn = self.client.lock_repository(&scope.repository).await;
        let path = format!("{}/{}", scope.path(what), segment(name));
        let result = match self.client.write(Method::DELETE, &path, None).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        };
        tokio::time::sleep(self.client.config().write_gap).await;
        result
    }

    async fn put_variable(
        &self,
        scope: &Scope,
        old_name: Option<&str>,
        name: &str,
        value: &str,
    ) -> Result<Applied, ProviderError> {
        let _turn = self.client.lock_repository(&scope.repository).await;
        let upper = name.to_ascii_uppercase();
        let body = json!({"name": upper, "value": value});
        let patch = |from: String| {
            let path = format!("{}/{}", scope.path("variables"), segment(&from));
            let body = body.clone();
            async move { self.client.write(Method::PATCH, &path, Some(&body)).await }
        };
        let result = match old_name {
            Some(old) => patch(old.to_ascii_uppercase()).await,
            None => {
                match self
                    .client
                    .write(Method::POST, &scope.path("variables"), Some(&body))
                    .await
                {
                    // It exists (an earlier create whose answer was lost): set it instead.
                    Err(GhError::Api { status: 409, .. }) => patch(upper.clone()).await,
                    other => other,
                }
            }
        };
        tokio::time::sleep(self.client.config().write_gap).await;
        result.map_err(|e| {
            if e.is_not_found() && scope.environment.is_some() {
                ProviderError::msg(format!(
                    "environment \"{}\" does not exist in {}",
                    scope.environment.as_deref().unwrap_or_default(),
                    scope.repository
                ))
            } else {
                e.into()
            }
        })?;
        let mut attributes = BTreeMap::new();
        attributes.insert("name".into(), json!(upper));
        attributes.insert("value".into(), json!(value));
        Ok(Applied {
            id: scope.id(&upper),
            attributes,
            secrets: BTreeMap::new(),
            updated_at: None,
            ..Default::default()
        })
    }

    async fn create_key(
        &self,
        repository: &str,
        title: &str,
        read_only: bool,
    ) -> Result<Applied, ProviderError> {
        let scope = Scope::new(repository, None);
        let pair = keys::generate(&format!("provisioner {title}")).map_err(ProviderError::msg)?;
        let _turn = self.client.lock_repository(&scope.repository).await;
        let path = format!("/repos/{}/keys", scope.repository);
        let body = json!({"title": title, "key": pair.public, "read_only": read_only});
        let created = match self.client.write(Method::POST, &path, Some(&body)).await {
            Ok(a) => a.body,
            // A retried POST whose first attempt landed: the key is unique, so find it.
            Err(GhError::Api { status: 422, .. }) => {
                let bare = keys::bare(&pair.public);
                let listed = self
                    .client
                    .list(&format!("{path}?per_page=100"), None)
                    .await?;
                listed
                    .into_iter()
                    .find(|k| k["key"].as_str().map(keys::bare).as_deref() == Some(&bare))
                    .ok_or_else(|| {
                        ProviderError::msg(format!(
                            "GitHub refused the new deploy key for {repository}, and it is not in the list"
                        ))
                    })?
            }
            Err(e) => return Err(e.into()),
        };
        tokio::time::sleep(self.client.config().write_gap).await;
        let id = created["id"].as_u64().ok_or_else(|| {
            ProviderError::msg("GitHub's answer to a deploy key create has no id")
        })?;
        let mut secrets = BTreeMap::new();
        secrets.insert("private_key".to_string(), pair.private);
        Ok(Applied {
            id: scope.id(&id.to_string()),
            attributes: key_attributes(&created),
            secrets,
            updated_at: None,
            ..Default::default()
        })
    }

    async fn delete_key(&self, id: &str) -> Result<(), ProviderError> {
        let (scope, key_id) =
            Scope::from_id(id).ok_or_else(|| ProviderError::msg(bad_id(Kind::GhDeployKey, id)))?;
        let _turn = self.client.lock_repository(&scope.repository).await;
        let path = format!("/repos/{}/keys/{}", scope.repository, segment(&key_id));
        let result = match self.client.write(Method::DELETE, &path, None).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        };
        tokio::time::sleep(self.client.config().write_gap).await;
        result
    }

    async fn delete(&self, kind: Kind, id: &str) -> Result<(), ProviderError> {
        match kind {
            Kind::GhDeployKey => self.delete_key(id).await,
            Kind::GhActionsSecret | Kind::GhEnvironmentSecret | Kind::GhActionsVariable => {
                let (scope, name) =
                    Scope::from_id(id).ok_or_else(|| ProviderError::msg(bad_id(kind, id)))?;
                let what = if kind == Kind::GhActionsVariable {
                    "variables"
                } else {
                    "secrets"
                };
                Ok(self.delete_named(&scope, what, &name).await?)
            }
            other => Err(ProviderError::msg(format!("{other} is not a GitHub kind"))),
        }
    }

    async fn put(
        &self,
        req: &ApplyRequest<'_>,
        existing: Option<&str>,
    ) -> Result<Applied, ProviderError> {
        let f = req.fields;
        let text = |k: &str| f.get(k).and_then(Value::as_str);
        let repository =
            text("repository").ok_or_else(|| ProviderError::msg("`repository` is not known"))?;
        match req.kind {
            Kind::GhActionsSecret | Kind::GhEnvironmentSecret => {
                let scope = Scope::new(repository, text("environment"));
                let name = text("name").ok_or_else(|| ProviderError::msg("`name` is not known"))?;
                let value = req.secrets.get("value").ok_or_else(|| {
                    ProviderError::msg("the secret's `value` was not available to write")
                })?;
                self.put_secret(&scope, &name.to_ascii_uppercase(), value)
                    .await
            }
            Kind::GhActionsVariable => {
                let scope = Scope::new(repository, text("environment"));
                let name = text("name").ok_or_else(|| ProviderError::msg("`name` is not known"))?;
                let value = text("value").unwrap_or_default();
                let old = existing.and_then(Scope::from_id).map(|(_, n)| n);
                self.put_variable(&scope, old.as_deref(), name, value).await
            }
            Kind::GhDeployKey => {
                let title = text("title").unwrap_or_default();
                let read_only = f.get("read_only").and_then(Value::as_bool).unwrap_or(true);
                self.create_key(repository, title, read_only).await
            }
            other => Err(ProviderError::msg(format!("{other} is not a GitHub kind"))),
        }
    }
}

impl crate::providers::Provider for GhProvider {
    fn name(&self) -> &'static str {
        "github"
    }

    fn request_stats(&self) -> Option<crate::providers::RequestStats> {
        Some(crate::providers::RequestStats {
            requests: self
                .client
                .stats
                .requests
                .load(std::sync::atomic::Ordering::Relaxed),
            classes: self.client.stats.classes.snapshot(),
            remaining: self.client.remaining(),
        })
    }

    async fn observe(&self, scope: &ObserveScope<'_>) -> BTreeMap<Kind, KindObservation> {
        self.observe_in(scope).await
    }

    async fn apply(&self, req: ApplyRequest<'_>) -> Result<Applied, ProviderError> {
        match req.action {
            Action::Delete => {
                let id = req
                    .cloud_id
                    .ok_or_else(|| ProviderError::msg("delete without a cloud id"))?;
                self.delete(req.kind, id).await?;
                Ok(Applied::default())
            }
            Action::Create => self.put(&req, None).await,
            Action::Update | Action::Adopt => {
                if req.kind == Kind::GhDeployKey {
                    // Keys are immutable and every field replaces: nothing to update.
                    let id = req.cloud_id.unwrap_or_default();
                    let mut applied = Applied {
                        id: id.to_string(),
                        ..Applied::default()
                    };
                    if let Some((_, key_id)) = Scope::from_id(id) {
                        applied
                            .attributes
                            .insert("id".into(), json!(key_id.parse::<u64>().ok()));
                    }
                    return Ok(applied);
                }
                self.put(&req, req.cloud_id).await
            }
            // The executor replaces GitHub objects by a create and a delete.
            Action::Replace => Err(crate::providers::not_in_place(req.kind)),
            Action::Orphan | Action::Drift | Action::Conflict | Action::NoOp => {
                Err(ProviderError::msg("nothing to apply for this action"))
            }
        }
    }
}

fn bad_id(kind: Kind, id: &str) -> String {
    format!("{kind} id \"{id}\" is not owner/repo[/environment]/name")
}

fn key_attributes(item: &Value) -> BTreeMap<String, Value> {
    let mut a = BTreeMap::new();
    a.insert("id".into(), item["id"].clone());
    a.insert("public_key".into(), item["key"].clone());
    if let Some(t) = item.get("created_at").filter(|v| !v.is_null()) {
        a.insert("created_at".into(), t.clone());
    }
    a
}

/// Seals `value` for the base64 public key, as libsodium's `crypto_box_seal` does.
fn seal(public_b64: &str, value: &SecretValue) -> Result<String, ProviderError> {
    let raw = B64
        .decode(public_b64)
        .map_err(|_| ProviderError::msg("GitHub's public key is not base64"))?;
    let key = crypto_box::PublicKey::from_slice(&raw)
        .map_err(|_| ProviderError::msg("GitHub's public key is not 32 bytes"))?;
    let sealed = key
        .seal(&mut crypto_box::aead::OsRng, value.expose())
        .map_err(|_| ProviderError::msg("sealing the secret failed"))?;
    Ok(B64.encode(sealed))
}

/// The repositories and environments to list, per kind, from the desired state and the
/// ledger (so removed resources are still seen to be deleted).
fn scopes(desired: &DesiredState, ledger: &Ledger) -> BTreeSet<(Kind, Scope)> {
    let mut out = BTreeSet::new();
    let mut add = |kind: Kind, fields: &Value| {
        let Some(repo) = fields.get("repository").and_then(Value::as_str) else {
            return;
        };
        let environment = fields.get("environment").and_then(Value::as_str);
        if repo.contains("${") || environment.is_some_and(|e| e.contains("${")) {
            return;
        }
        let environment = match kind {
            Kind::GhActionsSecret | Kind::GhDeployKey => None,
            _ => environment,
        };
        out.insert((kind, Scope::new(repo, environment)));
    };
    for r in desired.resources.values() {
        if KINDS.contains(&r.kind()) {
            add(r.kind(), &r.spec_json);
        }
    }
    for e in ledger.resources.values() {
        if let Some(kind) = Kind::parse(&e.kind).filter(|k| KINDS.contains(k)) {
            add(kind, &Value::Object(e.applied.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        let s = Scope::new("Example-Org/Apps", Some("production"));
        assert_eq!(s.id("TOKEN"), "example-org/apps/production/TOKEN");
        assert_eq!(Scope::from_id(&s.id("TOKEN")), Some((s, "TOKEN".into())));
        let r = Scope::new("o/r", None);
        assert_eq!(Scope::from_id(&r.id("42")), Some((r, "42".into())));
        assert_eq!(Scope::from_id("nonsense"), None);
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
    }
}
