//! Spaces buckets, through the S3-compatible Spaces API with `aws-sdk-s3`: versioning, CORS,
//! lifecycle and the canned ACL. Spaces rejects the checksums recent AWS SDKs add by default,
//! so checksums are computed only when an operation requires them.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::types::BucketCannedAcl;
use serde_json::{Map, Value, json};

use crate::desired::{DesiredState, Kind, Spec};
use crate::ledger::Ledger;
use crate::live::{KindObservation, LiveObject};
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
            .http_client(crate::providers::aws_http_client())
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            // Answers are checked before they are believed, as on AWS.
            .interceptor(crate::providers::aws::answers::Answers(
                crate::providers::aws::answers::Service::S3,
            ))
            .build();
        Client::from_conf(config)
    }
}

fn err(
    what: &str,
    e: impl std::error::Error + crate::providers::aws::Classify + Send + Sync + 'static,
) -> ProviderError {
    crate::providers::aws::err(what, e)
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
/// A region that cannot be read makes only its own buckets unknown (a failed scope).
pub async fn observe(
    config: &SpacesConfig,
    desired: &DesiredState,
    ledger: &Ledger,
) -> KindObservation {
    let mut obs = KindObservation::default();
    for (region, result) in observe_inner(config, desired, ledger).await {
        match result {
            Ok(objects) => obs.objects.extend(objects),
            Err(e) => obs.failed_scopes.push(crate::live::FailedScope::new(
                [("region", region)],
                e.message,
            )),
        }
    }
    obs
}

/// Each region's buckets, or why that region could not be read.
async fn observe_inner(
    config: &SpacesConfig,
    desired: &DesiredState,
    ledger: &Ledger,
) -> Vec<(String, Result<Vec<LiveObject>, ProviderError>)> {
    let wanted = wanted(desired, ledger);
    let regions: BTreeSet<&String> = wanted.values().collect();
    // Each region is its own endpoint: all are listed and read at once.
    let per_region = regions.into_iter().map(|region| {
        let wanted = &wanted;
        let result = async move {
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
            // Every bucket at once (`[settings.concurrency] reads` at a time).
            let reads = wanted
                .iter()
                .filter(|(name, r)| *r == region && names.contains(*name))
                .map(|(name, _)| read_bucket(client.clone(), name.clone(), region.clone()));
            crate::providers::read_each(desired.settings.concurrency.reads, reads)
                .await
                .into_iter()
                .collect::<Result<Vec<LiveObject>, ProviderError>>()
        };
        async move { (region.clone(), result.await) }
    });
    futures_util::future::join_all(per_region).await
}

async fn read_bucket(
    client: Client,
    name: String,
    region: String,
) -> Result<LiveObject, ProviderError> {
    let (client, name, region) = (&client, name.as_str(), region.as_str());
    let rules = super::super::s3api::read_rules(client, name);
    let acl = async {
        Ok::<&str, ProviderError>(match client.get_bucket_acl().bucket(name).send().await {
            Ok(a) => {
                let public = a.grants().iter().any(|g| {
                    g.grantee()
                        .and_then(|x| x.uri())
                        .is_some_and(|u| u.ends_with("/AllUsers"))
                });
                if public { "public-read" } else { "private" }
            }
            Err(e) => return Err(err(&format!("reading {name}'s ACL"), e)),
        })
    };
    let (rules, acl) = futures_util::join!(rules, acl);
    let super::super::s3api::BucketRules {
        versioning,
        cors,
        lifecycle,
    } = rules?;
    let acl = acl?;
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
        ..Default::default()
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
        Action::Replace => return Err(crate::providers::not_in_place(req.kind)),
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
        ..Default::default()
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

async fn delete(client: &Client, name: &str, force: bool) -> Result<(), ProviderError> {
    super::super::s3api::delete_bucket(client, name, force).await
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
    super::super::s3api::write_rules(client, name, f).await?;
    Ok(())
}
