//! A simulator of the Amazon SES v2 API (REST-JSON, as `aws-sdk-sesv2` speaks it) for the
//! operations the AWS provider uses, including the ones moto lacks: Easy DKIM tokens and the
//! signing hosted zone on `CreateEmailIdentity`, custom MAIL FROM, and configuration-set
//! event destinations. Identities stay `PENDING` for a configurable time, then verify.
//! Errors carry `x-amzn-ErrorType` and a `message`, as the model's error shapes say.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{Faults, Running, parse_query, percent_decode, serve_api};

/// How the simulator behaves.
#[derive(Clone, Debug)]
pub struct SesConfig {
    /// How long a new identity stays `PENDING` before it verifies.
    pub verification: Duration,
    /// The region it pretends to be (for ARNs and the MAIL FROM MX host).
    pub region: String,
}

impl Default for SesConfig {
    fn default() -> Self {
        SesConfig {
            verification: Duration::from_secs(2),
            region: "us-east-1".into(),
        }
    }
}

/// One email identity.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The domain or address.
    pub name: String,
    /// The three Easy DKIM tokens.
    pub tokens: Vec<String>,
    /// `RSA_1024_BIT` or `RSA_2048_BIT`.
    pub key_length: String,
    /// DKIM signing on.
    pub signing_enabled: bool,
    /// Custom MAIL FROM domain.
    pub mail_from: Option<String>,
    /// `USE_DEFAULT_VALUE` or `REJECT_MESSAGE`.
    pub behavior_on_mx_failure: String,
    /// Default configuration set.
    pub configuration_set: Option<String>,
    /// Tags.
    pub tags: Vec<Value>,
    created: Instant,
    created_epoch: f64,
}

/// One configuration set: its options as sent, and its event destinations.
#[derive(Clone, Debug, Default)]
pub struct ConfigurationSet {
    /// `TrackingOptions`, `DeliveryOptions`, `ReputationOptions`, `SendingOptions`,
    /// `SuppressionOptions`, ... as JSON.
    pub options: Map<String, Value>,
    /// Event destinations by name (`EventDestination` bodies).
    pub destinations: BTreeMap<String, Value>,
    /// Tags.
    pub tags: Vec<Value>,
}

/// Everything the simulated account holds.
#[derive(Debug, Default)]
pub struct SesState {
    /// Identities by name.
    pub identities: BTreeMap<String, Identity>,
    /// Configuration sets by name.
    pub configuration_sets: BTreeMap<String, ConfigurationSet>,
}

struct Shared {
    config: SesConfig,
    state: Mutex<SesState>,
    exchanges: Mutex<Vec<Exchange>>,
}

/// One request and its answer, kept so tests can check both against AWS's model.
#[derive(Clone, Debug)]
pub struct Exchange {
    /// HTTP method.
    pub method: String,
    /// Path (percent-encoded, as sent).
    pub path: String,
    /// The JSON body sent (`null` when empty).
    pub request: Value,
    /// The status answered.
    pub status: u16,
    /// The JSON body answered.
    pub response: Value,
}

/// A running SES v2 simulator.
pub struct SesSim {
    /// The server (stops when dropped).
    pub running: Running,
    /// Fault injection and the request log.
    pub faults: Faults,
    shared: Arc<Shared>,
}

impl SesSim {
    /// Starts a simulator on a free loopback port.
    pub async fn start(config: SesConfig) -> std::io::Result<SesSim> {
        let shared = Arc::new(Shared {
            config,
            state: Mutex::new(SesState::default()),
            exchanges: Mutex::new(Vec::new()),
        });
        let (running, faults) = serve_api(handle, shared.clone()).await?;
        Ok(SesSim {
            running,
            faults,
            shared,
        })
    }

    /// The endpoint URL for the SES v2 client.
    pub fn url(&self) -> &str {
        &self.running.url
    }

    /// Every exchange so far.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.shared.exchanges.lock().expect("exchanges").clone()
    }

    /// Reads or changes the state directly (out-of-band edits).
    pub fn edit<R>(&self, f: impl FnOnce(&mut SesState) -> R) -> R {
        f(&mut self.shared.state.lock().expect("state"))
    }
}

/// The SES simulator without a server of its own, for joining another simulator's port
/// (the AWS simulator serves it under `/v2/email/`).
#[derive(Clone)]
pub struct SesHandle {
    shared: Arc<Shared>,
}

impl SesHandle {
    /// Fresh state.
    pub fn new(config: SesConfig) -> Self {
        SesHandle {
            shared: Arc::new(Shared {
                config,
                state: Mutex::new(SesState::default()),
                exchanges: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Answers one request (authenticated by the caller's server).
    pub async fn handle(&self, method: Method, uri: Uri, body: Bytes) -> Response {
        let mut headers = HeaderMap::new();
        if let Ok(v) = "AWS4-HMAC-SHA256 joined".parse() {
            headers.insert("authorization", v);
        }
        handle(State(self.shared.clone()), method, uri, headers, body).await
    }

    /// Reads or changes the state directly.
    pub fn edit<R>(&self, f: impl FnOnce(&mut SesState) -> R) -> R {
        f(&mut self.shared.state.lock().expect("state"))
    }
}

struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

fn err(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        kind,
        message: message.into(),
    }
}

fn not_found(what: &str) -> ApiError {
    err(
        StatusCode::NOT_FOUND,
        "NotFoundException",
        format!("{what} does not exist."),
    )
}

fn bad(message: impl Into<String>) -> ApiError {
    err(StatusCode::BAD_REQUEST, "BadRequestException", message)
}

fn exists(what: &str) -> ApiError {
    err(
        StatusCode::BAD_REQUEST,
        "AlreadyExistsException",
        format!("{what} already exists."),
    )
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signed = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("AWS4-HMAC-SHA256"));
    let reply = if !signed {
        Err(err(
            StatusCode::FORBIDDEN,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ))
    } else {
        let body = if body.is_empty() {
            Ok(json!({}))
        } else {
            serde_json::from_slice::<Value>(&body)
                .map_err(|_| bad("The request body is not valid JSON."))
        };
        let query = parse_query(uri.query().unwrap_or(""));
        let mut state = shared.state.lock().expect("state");
        body.and_then(|b| route(&shared.config, &mut state, &method, uri.path(), &query, b))
    };
    shared.exchanges.lock().expect("exchanges").push(Exchange {
        method: method.to_string(),
        path: uri.path().to_string(),
        request: serde_json::from_slice(&body).unwrap_or(Value::Null),
        status: match &reply {
            Ok(_) => 200,
            Err(e) => e.status.as_u16(),
        },
        response: match &reply {
            Ok(v) => v.clone(),
            Err(e) => json!({"message": e.message}),
        },
    });
    let request_id = uuid::Uuid::new_v4().to_string();
    let mut response = match reply {
        Ok(v) => (StatusCode::OK, axum::Json(v)).into_response(),
        Err(e) => {
            let mut r = (e.status, axum::Json(json!({"message": e.message}))).into_response();
            if let Ok(v) = e.kind.parse() {
                r.headers_mut().insert("x-amzn-errortype", v);
            }
            r
        }
    };
    if let Ok(v) = request_id.parse() {
        response.headers_mut().insert("x-amzn-requestid", v);
    }
    response
}

fn epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as f64
}

fn token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn status(config: &SesConfig, i: &Identity) -> &'static str {
    if i.created.elapsed() >= config.verification {
        "SUCCESS"
    } else {
        "PENDING"
    }
}

fn dkim(config: &SesConfig, i: &Identity) -> Value {
    json!({
        "SigningEnabled": i.signing_enabled,
        "Status": status(config, i),
        "Tokens": i.tokens,
        "SigningHostedZone": "dkim.amazonses.com",
        "SigningAttributesOrigin": "AWS_SES",
        "NextSigningKeyLength": i.key_length,
        "CurrentSigningKeyLength": i.key_length,
        "LastKeyGenerationTimestamp": i.created_epoch,
    })
}

fn str_field<'a>(body: &'a Value, field: &str) -> Result<&'a str, ApiError> {
    body.get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad(format!("{field} is required.")))
}

fn route(
    config: &SesConfig,
    s: &mut SesState,
    method: &Method,
    path: &str,
    query: &BTreeMap<String, String>,
    body: Value,
) -> Result<Value, ApiError> {
    let decoded: Vec<String> = path
        .trim_end_matches('/')
        .split('/')
        .skip(1)
        .map(percent_decode)
        .collect();
    let parts: Vec<&str> = decoded.iter().map(String::as_str).collect();
    match (method.as_str(), parts.as_slice()) {
        ("POST", ["v2", "email", "identities"]) => {
            let name = str_field(&body, "EmailIdentity")?.to_ascii_lowercase();
            if s.identities.contains_key(&name) {
                return Err(exists(&format!("Email identity {name}")));
            }
            let key_length = body
                .pointer("/DkimSigningAttributes/NextSigningKeyLength")
                .and_then(Value::as_str)
                .unwrap_or("RSA_2048_BIT")
                .to_string();
            if !["RSA_1024_BIT", "RSA_2048_BIT"].contains(&key_length.as_str()) {
                return Err(bad(format!(
                    "NextSigningKeyLength {key_length} is not valid."
                )));
            }
            if let Some(cs) = body.get("ConfigurationSetName").and_then(Value::as_str)
                && !s.configuration_sets.contains_key(cs)
            {
                return Err(not_found(&format!("Configuration set <{cs}>")));
            }
            let is_domain = !name.contains('@');
            let identity = Identity {
                name: name.clone(),
                tokens: if is_domain {
                    (0..3).map(|_| token()).collect()
                } else {
                    Vec::new()
                },
                key_length,
                signing_enabled: is_domain,
                mail_from: None,
                behavior_on_mx_failure: "USE_DEFAULT_VALUE".into(),
                configuration_set: body
                    .get("ConfigurationSetName")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                tags: body
                    .get("Tags")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
                created: Instant::now(),
                created_epoch: epoch(),
            };
            let out = json!({
                "IdentityType": if is_domain { "DOMAIN" } else { "EMAIL_ADDRESS" },
                "VerifiedForSendingStatus": false,
                "DkimAttributes": dkim(config, &identity),
            });
            s.identities.insert(name, identity);
            Ok(out)
        }
        // Older SDKs list with GET; the current model binds the same operations to POST.
        ("GET", ["v2", "email", "identities"]) | ("POST", ["v2", "email", "list-identities"]) => {
            let items: Vec<Value> = s
                .identities
                .values()
                .map(|i| {
                    json!({
                        "IdentityType": if i.name.contains('@') { "EMAIL_ADDRESS" } else { "DOMAIN" },
                        "IdentityName": i.name,
                        "SendingEnabled": true,
                        "VerificationStatus": status(config, i),
                    })
                })
                .collect();
            let _ = query;
            Ok(json!({"EmailIdentities": items}))
        }
        ("GET", ["v2", "email", "identities", name]) => {
            let i = s
                .identities
                .get(&name.to_ascii_lowercase())
                .ok_or_else(|| not_found(&format!("Email identity {name}")))?;
            let verified = status(config, i) == "SUCCESS";
            let mut out = json!({
                "IdentityType": if i.name.contains('@') { "EMAIL_ADDRESS" } else { "DOMAIN" },
                "FeedbackForwardingStatus": true,
                "VerifiedForSendingStatus": verified,
                "DkimAttributes": dkim(config, i),
                "MailFromAttributes": {
                    "MailFromDomain": i.mail_from.clone().unwrap_or_default(),
                    "MailFromDomainStatus": if i.mail_from.is_some() { status(config, i) } else { "FAILED" },
                    "BehaviorOnMxFailure": i.behavior_on_mx_failure,
                },
                "Policies": {},
                "Tags": i.tags,
                "VerificationStatus": status(config, i),
            });
            if let Some(cs) = &i.configuration_set {
                out["ConfigurationSetName"] = json!(cs);
            }
            Ok(out)
        }
        ("DELETE", ["v2", "email", "identities", name]) => {
            s.identities
                .remove(&name.to_ascii_lowercase())
                .ok_or_else(|| not_found(&format!("Email identity {name}")))?;
            Ok(json!({}))
        }
        ("PUT", ["v2", "email", "identities", name, "mail-from"]) => {
            let i = s
                .identities
                .get_mut(&name.to_ascii_lowercase())
                .ok_or_else(|| not_found(&format!("Email identity {name}")))?;
            let domain = body
                .get("MailFromDomain")
                .and_then(Value::as_str)
                .filter(|d| !d.is_empty());
            if let Some(d) = domain
                && !d.ends_with(&format!(".{}", i.name))
            {
                return Err(bad(format!(
                    "MAIL FROM domain {d} must be a subdomain of {}.",
                    i.name
                )));
            }
            let behavior = body
                .get("BehaviorOnMxFailure")
                .and_then(Value::as_str)
                .unwrap_or("USE_DEFAULT_VALUE");
            if !["USE_DEFAULT_VALUE", "REJECT_MESSAGE"].contains(&behavior) {
                return Err(bad(format!("BehaviorOnMxFailure {behavior} is not valid.")));
            }
            i.mail_from = domain.map(str::to_string);
            i.behavior_on_mx_failure = behavior.to_string();
            Ok(json!({}))
        }
        ("PUT", ["v2", "email", "identities", name, "dkim"]) => {
            let i = s
                .identities
                .get_mut(&name.to_ascii_lowercase())
                .ok_or_else(|| not_found(&format!("Email identity {name}")))?;
            i.signing_enabled = body
                .get("SigningEnabled")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            Ok(json!({}))
        }
        ("PUT", ["v2", "email", "identities", name, "dkim", "signing"]) => {
            let i = s
                .identities
                .get_mut(&name.to_ascii_lowercase())
                .ok_or_else(|| not_found(&format!("Email identity {name}")))?;
            if let Some(len) = body
                .pointer("/SigningAttributes/NextSigningKeyLength")
                .and_then(Value::as_str)
            {
                i.key_length = len.to_string();
            }
            Ok(json!({"DkimStatus": status(config, i), "DkimTokens": i.tokens}))
        }
        ("PUT", ["v2", "email", "identities", name, "configuration-set"]) => {
            let cs = body
                .get("ConfigurationSetName")
                .and_then(Value::as_str)
                .map(str::to_string);
            if let Some(cs) = &cs
                && !s.configuration_sets.contains_key(cs)
            {
                return Err(not_found(&format!("Configuration set <{cs}>")));
            }
            let i = s
                .identities
                .get_mut(&name.to_ascii_lowercase())
                .ok_or_else(|| not_found(&format!("Email identity {name}")))?;
            i.configuration_set = cs;
            Ok(json!({}))
        }
        ("POST", ["v2", "email", "configuration-sets"]) => {
            let name = str_field(&body, "ConfigurationSetName")?.to_string();
            if name.len() > 64
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(bad(
                    "ConfigurationSetName may hold only letters, digits, _ and -, up to 64.",
                ));
            }
            if s.configuration_sets.contains_key(&name) {
                return Err(exists(&format!("Configuration set <{name}>")));
            }
            let mut options = Map::new();
            for f in [
                "TrackingOptions",
                "DeliveryOptions",
                "ReputationOptions",
                "SendingOptions",
                "SuppressionOptions",
                "VdmOptions",
            ] {
                if let Some(v) = body.get(f) {
                    options.insert(f.into(), v.clone());
                }
            }
            s.configuration_sets.insert(
                name,
                ConfigurationSet {
                    options,
                    destinations: BTreeMap::new(),
                    tags: body
                        .get("Tags")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                },
            );
            Ok(json!({}))
        }
        ("GET", ["v2", "email", "configuration-sets"])
        | ("POST", ["v2", "email", "list-configuration-sets"]) => Ok(json!({
            "ConfigurationSets": s.configuration_sets.keys().collect::<Vec<_>>()
        })),
        ("GET", ["v2", "email", "configuration-sets", name]) => {
            let cs = s
                .configuration_sets
                .get(*name)
                .ok_or_else(|| not_found(&format!("Configuration set <{name}>")))?;
            let mut out = cs.options.clone();
            out.insert("ConfigurationSetName".into(), json!(name));
            out.insert("Tags".into(), json!(cs.tags));
            out.entry("SendingOptions")
                .or_insert(json!({"SendingEnabled": true}));
            out.entry("ReputationOptions")
                .or_insert(json!({"ReputationMetricsEnabled": false}));
            Ok(Value::Object(out))
        }
        ("DELETE", ["v2", "email", "configuration-sets", name]) => {
            s.configuration_sets
                .remove(*name)
                .ok_or_else(|| not_found(&format!("Configuration set <{name}>")))?;
            Ok(json!({}))
        }
        ("PUT", ["v2", "email", "configuration-sets", name, option]) => {
            let cs = s
                .configuration_sets
                .get_mut(*name)
                .ok_or_else(|| not_found(&format!("Configuration set <{name}>")))?;
            let key = match *option {
                "sending" => "SendingOptions",
                "reputation-options" => "ReputationOptions",
                "suppression-options" => "SuppressionOptions",
                "delivery-options" => "DeliveryOptions",
                "tracking-options" => "TrackingOptions",
                _ => return Err(not_found("Operation")),
            };
            cs.options.insert(key.into(), body);
            Ok(json!({}))
        }
        (
            "GET",
            [
                "v2",
                "email",
                "configuration-sets",
                name,
                "event-destinations",
            ],
        ) => {
            let cs = s
                .configuration_sets
                .get(*name)
                .ok_or_else(|| not_found(&format!("Configuration set <{name}>")))?;
            let list: Vec<Value> = cs
                .destinations
                .iter()
                .map(|(n, d)| {
                    let mut v = d.clone();
                    v["Name"] = json!(n);
                    v
                })
                .collect();
            Ok(json!({"EventDestinations": list}))
        }
        (
            "POST",
            [
                "v2",
                "email",
                "configuration-sets",
                name,
                "event-destinations",
            ],
        ) => {
            let dest_name = str_field(&body, "EventDestinationName")?.to_string();
            let dest = body
                .get("EventDestination")
                .cloned()
                .ok_or_else(|| bad("EventDestination is required."))?;
            check_destination(&dest)?;
            let cs = s
                .configuration_sets
                .get_mut(*name)
                .ok_or_else(|| not_found(&format!("Configuration set <{name}>")))?;
            if cs.destinations.contains_key(&dest_name) {
                return Err(exists(&format!("Event destination {dest_name}")));
            }
            cs.destinations
                .insert(dest_name, normalise_destination(dest));
            Ok(json!({}))
        }
        (
            "PUT",
            [
                "v2",
                "email",
                "configuration-sets",
                name,
                "event-destinations",
                dest_name,
            ],
        ) => {
            let dest = body
                .get("EventDestination")
                .cloned()
                .ok_or_else(|| bad("EventDestination is required."))?;
            check_destination(&dest)?;
            let cs = s
                .configuration_sets
                .get_mut(*name)
                .ok_or_else(|| not_found(&format!("Configuration set <{name}>")))?;
            let slot = cs
                .destinations
                .get_mut(*dest_name)
                .ok_or_else(|| not_found(&format!("Event destination {dest_name}")))?;
            *slot = normalise_destination(dest);
            Ok(json!({}))
        }
        (
            "DELETE",
            [
                "v2",
                "email",
                "configuration-sets",
                name,
                "event-destinations",
                dest_name,
            ],
        ) => {
            let cs = s
                .configuration_sets
                .get_mut(*name)
                .ok_or_else(|| not_found(&format!("Configuration set <{name}>")))?;
            cs.destinations
                .remove(*dest_name)
                .ok_or_else(|| not_found(&format!("Event destination {dest_name}")))?;
            Ok(json!({}))
        }
        ("GET", ["v2", "email", "tags"]) => {
            let arn = query
                .get("ResourceArn")
                .ok_or_else(|| bad("ResourceArn is required."))?;
            Ok(json!({"Tags": tags_of(config, s, arn)?.clone()}))
        }
        ("POST", ["v2", "email", "tags"]) => {
            let arn = str_field(&body, "ResourceArn")?.to_string();
            let new: Vec<Value> = body
                .get("Tags")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let tags = tags_of(config, s, &arn)?;
            for t in new {
                tags.retain(|x| x["Key"] != t["Key"]);
                tags.push(t);
            }
            Ok(json!({}))
        }
        ("DELETE", ["v2", "email", "tags"]) => {
            let arn = query
                .get("ResourceArn")
                .ok_or_else(|| bad("ResourceArn is required."))?
                .clone();
            let keys: Vec<String> = query
                .iter()
                .filter(|(k, _)| k.starts_with("TagKeys"))
                .map(|(_, v)| v.clone())
                .collect();
            let tags = tags_of(config, s, &arn)?;
            tags.retain(|t| !keys.iter().any(|k| t["Key"] == k.as_str()));
            Ok(json!({}))
        }
        _ => Err(err(
            StatusCode::NOT_FOUND,
            "NotFoundException",
            format!("No operation at {} {path}", method),
        )),
    }
}

fn tags_of<'a>(
    config: &SesConfig,
    s: &'a mut SesState,
    arn: &str,
) -> Result<&'a mut Vec<Value>, ApiError> {
    let prefix = format!("arn:aws:ses:{}:123456789012:", config.region);
    let rest = arn
        .strip_prefix(&prefix)
        .ok_or_else(|| bad(format!("{arn} is not an SES ARN.")))?;
    if let Some(name) = rest.strip_prefix("identity/") {
        return s
            .identities
            .get_mut(name)
            .map(|i| &mut i.tags)
            .ok_or_else(|| not_found(&format!("Email identity {name}")));
    }
    if let Some(name) = rest.strip_prefix("configuration-set/") {
        return s
            .configuration_sets
            .get_mut(name)
            .map(|c| &mut c.tags)
            .ok_or_else(|| not_found(&format!("Configuration set <{name}>")));
    }
    Err(bad(format!("{arn} is not an SES ARN.")))
}

fn check_destination(d: &Value) -> Result<(), ApiError> {
    const TYPES: &[&str] = &[
        "SEND",
        "REJECT",
        "BOUNCE",
        "COMPLAINT",
        "DELIVERY",
        "OPEN",
        "CLICK",
        "RENDERING_FAILURE",
        "DELIVERY_DELAY",
        "SUBSCRIPTION",
    ];
    if let Some(types) = d.get("MatchingEventTypes") {
        let types = types
            .as_array()
            .ok_or_else(|| bad("MatchingEventTypes must be a list."))?;
        for t in types {
            let t = t.as_str().unwrap_or("");
            if !TYPES.contains(&t) {
                return Err(bad(format!("{t} is not an event type.")));
            }
        }
    }
    if let Some(arn) = d.pointer("/SnsDestination/TopicArn")
        && !arn.as_str().is_some_and(|a| a.starts_with("arn:aws:sns:"))
    {
        return Err(bad("SnsDestination.TopicArn must be an SNS topic ARN."));
    }
    Ok(())
}

fn normalise_destination(mut d: Value) -> Value {
    if d.get("Enabled").is_none() {
        d["Enabled"] = json!(false);
    }
    if d.get("MatchingEventTypes").is_none() {
        d["MatchingEventTypes"] = json!([]);
    }
    // SES keeps the event types as a set, not in the order written (the AWS Terraform
    // provider's `matching_event_types` is a `TypeSet`): answer them sorted.
    if let Some(types) = d["MatchingEventTypes"].as_array_mut() {
        types.sort_by_key(Value::to_string);
    }
    d
}
