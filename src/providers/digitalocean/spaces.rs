//! Spaces buckets, through the S3-compatible Spaces API with `aws-sdk-s3`: versioning, CORS,
//! lifecycle and the canned ACL. Spaces rejects the checksums recent AWS SDKs add by default,
//! so checksums are computed only when an operation requires them.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketCannedAcl, BucketLifecycleConfiguration,
    BucketVersioningStatus, CorsConfiguration, CorsRule, ExpirationStatus, LifecycleExpiration,
    LifecycleRule, LifecycleRuleFilter, NoncurrentVersionExpiration, VersioningConfiguration,
};
use serde_json::{Map, Value, json};

use crate::desired::{DesiredState, Kind, Spec};
use crate::ledger::Ledger;
use crate::live::{KindObservation, LiveObject, ObserveStatus};
use crate::plan::Action;
use crate::providers::{Applied, ApplyRequest, ProviderError};

/// Where Spaces is and how to sign for it.
#[derive(Clone)]
pub struct SpacesConfig {
    /// `SPACES_ENDPOINT_URL`; `None`: `https://<region>.digitaloceanspaces.com` per bucket.
    pub endpoint: Option<String>,
    /// `SPACES_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `SPACES_SECRET_ACCESS_KEY` (never printed).
    pub secret_access_key: String,
}

impl std::fmt::Debug for SpacesConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpacesConfig")
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl SpacesConfig {
    /// From `SPACES_ACCESS_KEY_ID`, `SPACES_SECRET_ACCESS_KEY` and `SPACES_ENDPOINT_URL`.
    pub fn from_env() -> Result<Self, String> {
        let get =
            |k: &str| std::env::var(k).map_err(|_| format!("set {k} to manage Spaces buckets"));
        Ok(SpacesConfig {
            endpoint: std::env::var("SPACES_ENDPOINT_URL").ok(),
            access_key_id: get("SPACES_ACCESS_KEY_ID")?,
            secret_access_key: get("SPACES_SECRET_ACCESS_KEY")?,
        })
    }

    /// A client for a region's endpoint.
    pub fn client(&self, region: &str) -> Client {
        let endpoint = self
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://{region}.digitaloceanspaces.com"));
        let path_style = crate::ledger::store::needs_path_style(&endpoint);
        let config = aws_sdk_s3::Config::builder()
            .endpoint_url(endpoint)
            // Spaces signs with any region name; us-east-1 is what its documentation uses.
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                &self.access_key_id,
                &self.secret_access_key,
                None,
                None,
                "spaces",
            ))
            .force_path_style(path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .build();
        Client::from_conf(config)
    }
}

fn err(what: &str, e: impl std::error::Error + 'static) -> ProviderError {
    ProviderError {
        message: format!("{what}: {}", crate::errors::chain(&e)),
        retryable: true,
    }
}

/// The buckets the desired state and the ledger name, with their regions.
fn wanted(desired: &DesiredState, ledger: &Ledger) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for r in desired.resources.values() {
        if let Spec::DoSpacesBucket(_) = r.spec
            && let (Some(n), Some(region)) =
                (r.spec_json["name"].as_str(), r.spec_json["region"].as_str())
        {
            out.insert(n.to_string(), region.to_string());
        }
    }
    for e in ledger.resources.values() {
        if e.kind == Kind::DoSpacesBucket.key() {
            let region = e
                .applied
                .get("region")
                .and_then(Value::as_str)
                .unwrap_or("nyc3");
            out.entry(e.id.clone())
                .or_insert_with(|| region.to_string());
        }
    }
    out
}

/// Observes the buckets that matter here: one list per region, then each bucket's settings.
pub async fn observe(
    config: &SpacesConfig,
    desired: &DesiredState,
    ledger: &Ledger,
) -> KindObservation {
    match observe_inner(config, desired, ledger).await {
        Ok(objects) => KindObservation {
            status: ObserveStatus::Complete,
            objects,
        },
        Err(e) => KindObservation {
            status: ObserveStatus::Failed(e.message),
            objects: Vec::new(),
        },
    }
}

async fn observe_inner(
    config: &SpacesConfig,
    desired: &DesiredState,
    ledger: &Ledger,
) -> Result<Vec<LiveObject>, ProviderError> {
    let wanted = wanted(desired, ledger);
    let regions: BTreeSet<&String> = wanted.values().collect();
    let mut out = Vec::new();
    for region in regions {
        let client = config.client(region);
        let listed = client
            .list_buckets()
            .send()
            .await
            .map_err(|e| err("listing Spaces buckets", e))?;
        let names: BTreeSet<String> = listed
            .buckets()
            .iter()
            .filter_map(|b| b.name().map(str::to_string))
            .collect();
        for (name, r) in &wanted {
            if r != region || !names.contains(name) {
                continue;
            }
            out.push(read_bucket(&client, name, region).await?);
        }
    }
    Ok(out)
}

async fn read_bucket(
    client: &Client,
    name: &str,
    region: &str,
) -> Result<LiveObject, ProviderError> {
    let versioning = match client.get_bucket_versioning().bucket(name).send().await {
        Ok(v) => v.status() == Some(&BucketVersioningStatus::Enabled),
        // An S3-compatible server may name the XML root differently; the answer is there.
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 200) => e
            .raw_response()
            .and_then(|r| r.body().bytes())
            .is_some_and(|b| String::from_utf8_lossy(b).contains("<Status>Enabled</Status>")),
        Err(e) => return Err(err(&format!("reading {name}'s versioning"), e)),
    };
    let cors: Vec<Value> = match client.get_bucket_cors().bucket(name).send().await {
        Ok(c) => c
            .cors_rules()
            .iter()
            .map(|r| {
                let mut rule = json!({
                    "allowed_origins": r.allowed_origins(),
                    "allowed_methods": r.allowed_methods(),
                    "allowed_headers": r.allowed_headers(),
                    "expose_headers": r.expose_headers(),
                });
                if let Some(age) = r.max_age_seconds() {
                    rule["max_age_seconds"] = json!(age);
                }
                rule
            })
            .collect(),
        Err(e)
            if e.as_service_error()
                .and_then(|s| aws_sdk_s3::error::ProvideErrorMetadata::code(s))
                == Some("NoSuchCORSConfiguration") =>
        {
            Vec::new()
        }
        Err(e) => return Err(err(&format!("reading {name}'s CORS rules"), e)),
    };
    let lifecycle: Vec<Value> = match client
        .get_bucket_lifecycle_configuration()
        .bucket(name)
        .send()
        .await
    {
        Ok(l) => l
            .rules()
            .iter()
            .map(|r| {
                let mut rule = json!({
                    "id": r.id().unwrap_or(""),
                    "enabled": r.status() == &ExpirationStatus::Enabled,
                    "prefix": r.filter().and_then(|f| f.prefix()).unwrap_or(""),
                });
                if let Some(d) = r.expiration().and_then(|e| e.days()) {
                    rule["expiration_days"] = json!(d);
                }
                if let Some(d) = r
                    .noncurrent_version_expiration()
                    .and_then(|e| e.noncurrent_days())
                {
                    rule["noncurrent_version_expiration_days"] = json!(d);
                }
                if let Some(d) = r
                    .abort_incomplete_multipart_upload()
                    .and_then(|a| a.days_after_initiation())
                {
                    rule["abort_incomplete_multipart_upload_days"] = json!(d);
                }
                rule
            })
            .collect(),
        Err(e)
            if e.as_service_error()
                .and_then(|s| aws_sdk_s3::error::ProvideErrorMetadata::code(s))
                == Some("NoSuchLifecycleConfiguration") =>
        {
            Vec::new()
        }
        Err(e) => return Err(err(&format!("reading {name}'s lifecycle rules"), e)),
    };
    let acl = match client.get_bucket_acl().bucket(name).send().await {
        Ok(a) => {
            let public = a.grants().iter().any(|g| {
                g.grantee()
                    .and_then(|x| x.uri())
                    .is_some_and(|u| u.ends_with("/AllUsers"))
            });
            if public { "public-read" } else { "private" }
        }
        Err(e) => return Err(err(&format!("reading {name}'s ACL"), e)),
    };
    let mut fields = Map::new();
    fields.insert("name".into(), json!(name));
    fields.insert("region".into(), json!(region));
    fields.insert("acl".into(), json!(acl));
    fields.insert("versioning".into(), json!(versioning));
    fields.insert("cors_rules".into(), Value::Array(cors));
    fields.insert("lifecycle_rules".into(), Value::Array(lifecycle));
    Ok(LiveObject {
        id: name.to_string(),
        attributes: attributes(name, region),
        fields,
        tags: Vec::new(),
        updated_at: None,
    })
}

fn attributes(name: &str, region: &str) -> BTreeMap<String, Value> {
    BTreeMap::from([
        ("name".to_string(), json!(name)),
        ("urn".to_string(), json!(format!("do:space:{name}"))),
        ("region".to_string(), json!(region)),
        (
            "bucket_domain_name".to_string(),
            json!(format!("{name}.{region}.digitaloceanspaces.com")),
        ),
        (
            "endpoint".to_string(),
            json!(format!("https://{region}.digitaloceanspaces.com")),
        ),
    ])
}

/// Creates, updates or deletes a bucket.
pub async fn apply(
    config: &SpacesConfig,
    req: &ApplyRequest<'_>,
) -> Result<Applied, ProviderError> {
    let f = req.fields;
    let region = f
        .get("region")
        .and_then(Value::as_str)
        .unwrap_or("nyc3")
        .to_string();
    let client = config.client(&region);
    let name = f
        .get("name")
        .and_then(Value::as_str)
        .or(req.cloud_id)
        .ok_or_else(|| ProviderError::msg("a bucket needs its name"))?
        .to_string();
    let force = req
        .spec
        .and_then(|s| s["force_destroy"].as_bool())
        .unwrap_or(false);
    match req.action {
        Action::Delete => {
            delete(&client, req.cloud_id.unwrap_or(&name), force).await?;
            return Ok(Applied::default());
        }
        Action::Replace => {
            delete(&client, req.cloud_id.unwrap_or(&name), force).await?;
            create(&client, &name, f).await?;
        }
        Action::Create => create(&client, &name, f).await?,
        Action::Update | Action::Adopt => {}
        _ => return Err(ProviderError::msg("nothing to apply for this action")),
    }
    configure(&client, &name, f).await?;
    Ok(Applied {
        id: name.clone(),
        attributes: attributes(&name, &region),
        secrets: BTreeMap::new(),
        updated_at: None,
    })
}

async fn create(client: &Client, name: &str, f: &Map<String, Value>) -> Result<(), ProviderError> {
    let acl = if f.get("acl").and_then(Value::as_str) == Some("public-read") {
        BucketCannedAcl::PublicRead
    } else {
        BucketCannedAcl::Private
    };
    match client.create_bucket().bucket(name).acl(acl).send().await {
        Ok(_) => Ok(()),
        // Ours already (a retried create): fine.
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_bucket_already_owned_by_you()) =>
        {
            Ok(())
        }
        Err(e) => Err(err(&format!("creating Spaces bucket {name}"), e)),
    }
}

/// Deletes a bucket. A bucket that still holds objects (or old versions of them) is only
/// emptied and deleted with `force_destroy`; otherwise it is refused, never silently kept.
async fn delete(client: &Client, name: &str, force: bool) -> Result<(), ProviderError> {
    let mut key_marker: Option<String> = None;
    let mut version_marker: Option<String> = None;
    loop {
        let page = match client
            .list_object_versions()
            .bucket(name)
            .set_key_marker(key_marker.take())
            .set_version_id_marker(version_marker.take())
            .send()
            .await
        {
            Ok(p) => p,
            Err(e)
                if e.as_service_error()
                    .and_then(|s| aws_sdk_s3::error::ProvideErrorMetadata::code(s))
                    == Some("NoSuchBucket") =>
            {
                return Ok(());
            }
            Err(e) => return Err(err(&format!("listing Spaces bucket {name}"), e)),
        };
        let entries: Vec<(String, Option<String>)> =
            page.versions()
                .iter()
                .filter_map(|v| Some((v.key()?.to_string(), v.version_id().map(str::to_string))))
                .chain(page.delete_markers().iter().filter_map(|m| {
                    Some((m.key()?.to_string(), m.version_id().map(str::to_string)))
                }))
                .collect();
        if !entries.is_empty() && !force {
            return Err(ProviderError::msg(format!(
                "Spaces bucket {name} is not empty: provisioner does not delete data unless the bucket says `force_destroy = true`"
            )));
        }
        for (key, version) in entries {
            client
                .delete_object()
                .bucket(name)
                .key(&key)
                .set_version_id(version)
                .send()
                .await
                .map_err(|e| err(&format!("emptying Spaces bucket {name}"), e))?;
        }
        if page.is_truncated() == Some(true) {
            key_marker = page.next_key_marker().map(str::to_string);
            version_marker = page.next_version_id_marker().map(str::to_string);
        } else {
            break;
        }
    }
    client
        .delete_bucket()
        .bucket(name)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| err(&format!("deleting Spaces bucket {name}"), e))
}

async fn configure(
    client: &Client,
    name: &str,
    f: &Map<String, Value>,
) -> Result<(), ProviderError> {
    let acl = if f.get("acl").and_then(Value::as_str) == Some("public-read") {
        BucketCannedAcl::PublicRead
    } else {
        BucketCannedAcl::Private
    };
    client
        .put_bucket_acl()
        .bucket(name)
        .acl(acl)
        .send()
        .await
        .map_err(|e| err(&format!("setting {name}'s ACL"), e))?;
    let versioning = f.get("versioning") == Some(&json!(true));
    client
        .put_bucket_versioning()
        .bucket(name)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(if versioning {
                    BucketVersioningStatus::Enabled
                } else {
                    BucketVersioningStatus::Suspended
                })
                .build(),
        )
        .send()
        .await
        .map_err(|e| err(&format!("setting {name}'s versioning"), e))?;
    let cors = f
        .get("cors_rules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if cors.is_empty() {
        client
            .delete_bucket_cors()
            .bucket(name)
            .send()
            .await
            .map_err(|e| err(&format!("clearing {name}'s CORS rules"), e))?;
    } else {
        let mut rules = Vec::new();
        for r in &cors {
            let strings = |k: &str| -> Vec<String> {
                r[k].as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            };
            let mut b = CorsRule::builder()
                .set_allowed_origins(Some(strings("allowed_origins")))
                .set_allowed_methods(Some(strings("allowed_methods")))
                .set_allowed_headers(Some(strings("allowed_headers")))
                .set_expose_headers(Some(strings("expose_headers")));
            if let Some(age) = r["max_age_seconds"].as_i64() {
                b = b.max_age_seconds(age as i32);
            }
            rules.push(b.build().map_err(|e| err("building a CORS rule", e))?);
        }
        client
            .put_bucket_cors()
            .bucket(name)
            .cors_configuration(
                CorsConfiguration::builder()
                    .set_cors_rules(Some(rules))
                    .build()
                    .map_err(|e| err("building the CORS configuration", e))?,
            )
            .send()
            .await
            .map_err(|e| err(&format!("setting {name}'s CORS rules"), e))?;
    }
    let lifecycle = f
        .get("lifecycle_rules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if lifecycle.is_empty() {
        client
            .delete_bucket_lifecycle()
            .bucket(name)
            .send()
            .await
            .map_err(|e| err(&format!("clearing {name}'s lifecycle rules"), e))?;
    } else {
        let mut rules = Vec::new();
        for r in &lifecycle {
            let mut b = LifecycleRule::builder()
                .id(r["id"].as_str().unwrap_or(""))
                .status(if r["enabled"] == json!(false) {
                    ExpirationStatus::Disabled
                } else {
                    ExpirationStatus::Enabled
                })
                .filter(
                    LifecycleRuleFilter::builder()
                        .prefix(r["prefix"].as_str().unwrap_or(""))
                        .build(),
                );
            if let Some(d) = r["expiration_days"].as_i64() {
                b = b.expiration(LifecycleExpiration::builder().days(d as i32).build());
            }
            if let Some(d) = r["noncurrent_version_expiration_days"].as_i64() {
                b = b.noncurrent_version_expiration(
                    NoncurrentVersionExpiration::builder()
                        .noncurrent_days(d as i32)
                        .build(),
                );
            }
            if let Some(d) = r["abort_incomplete_multipart_upload_days"].as_i64() {
                b = b.abort_incomplete_multipart_upload(
                    AbortIncompleteMultipartUpload::builder()
                        .days_after_initiation(d as i32)
                        .build(),
                );
            }
            rules.push(b.build().map_err(|e| err("building a lifecycle rule", e))?);
        }
        client
            .put_bucket_lifecycle_configuration()
            .bucket(name)
            .lifecycle_configuration(
                BucketLifecycleConfiguration::builder()
                    .set_rules(Some(rules))
                    .build()
                    .map_err(|e| err("building the lifecycle configuration", e))?,
            )
            .send()
            .await
            .map_err(|e| err(&format!("setting {name}'s lifecycle rules"), e))?;
    }
    Ok(())
}
