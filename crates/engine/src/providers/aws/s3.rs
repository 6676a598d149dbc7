//! `aws.s3_bucket`: created in its region, with versioning, default encryption, public
//! access block, lifecycle, CORS and tags; deleted only when empty unless `force_destroy`.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_s3::types::{
    BucketLocationConstraint, CreateBucketConfiguration, PublicAccessBlockConfiguration,
    ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
    ServerSideEncryptionRule, Tag, Tagging,
};
use serde_json::{Map, Value, json};

use super::{AwsProvider, S3Clients, code, err, object, split_tags, text, wanted_tags};
use crate::live::LiveObject;
use crate::plan::Action;
use crate::providers::s3api;
use crate::providers::{Applied, ApplyRequest, ProviderError};

/// Lists the buckets, then reads the ones provisioner manages.
///
/// The list is asked for with `max-buckets`, so that S3 names each bucket's region in it
/// (`BucketRegion`, returned only to a request with a parameter): a bucket's configuration
/// is then read one round trip after the list, not two. A server that leaves the region
/// out (older S3-compatible servers, moto) costs one `GetBucketLocation` per bucket.
pub async fn observe(
    p: &AwsProvider,
    wanted: BTreeSet<String>,
    in_flight: u32,
) -> Result<Vec<LiveObject>, ProviderError> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let mut found: Vec<(String, Option<String>)> = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let asked = token.take();
        let page =
            p.s3.list_buckets()
                .max_buckets(10_000)
                .set_continuation_token(asked.clone())
                .send()
                .await
                .map_err(|e| err("listing S3 buckets", e))?;
        found.extend(
            page.buckets()
                .iter()
                .filter_map(|b| Some((b.name()?, b.bucket_region())))
                .filter(|(name, _)| wanted.contains(*name))
                .map(|(name, region)| (name.to_string(), region.map(str::to_string))),
        );
        match page.continuation_token() {
            // A server that hands back the token it was given would page forever.
            Some(t) if !t.is_empty() && Some(t) != asked.as_deref() => token = Some(t.to_string()),
            _ => break,
        }
    }
    // Every managed bucket at once (`in_flight` at a time).
    let clients = p.s3_clients();
    let reads = found
        .into_iter()
        .map(|(name, region)| read(clients.clone(), name, region));
    crate::providers::read_each(in_flight, reads)
        .await
        .into_iter()
        .collect()
}

async fn region_of(s3: &aws_sdk_s3::Client, name: &str) -> Result<String, ProviderError> {
    let loc = s3
        .get_bucket_location()
        .bucket(name)
        .send()
        .await
        .map_err(|e| err(&format!("reading {name}'s region"), e))?;
    Ok(match loc.location_constraint() {
        None => "us-east-1".to_string(),
        Some(c) if c.as_str().is_empty() => "us-east-1".to_string(),
        Some(BucketLocationConstraint::Eu) => "eu-west-1".to_string(),
        Some(c) => c.as_str().to_string(),
    })
}

async fn read(
    clients: S3Clients,
    name: String,
    listed_region: Option<String>,
) -> Result<LiveObject, ProviderError> {
    let name = name.as_str();
    let region = match listed_region {
        Some(r) if !r.is_empty() => r,
        _ => region_of(&clients.home, name).await?,
    };
    let client = clients.in_region(&region);
    // The configuration reads are independent: one round trip after the list (or the
    // location).
    let rules = s3api::read_rules(&client, name);
    let encryption = async {
        Ok::<Value, ProviderError>(
            match client.get_bucket_encryption().bucket(name).send().await {
                Ok(e) => e
                    .server_side_encryption_configuration()
                    .and_then(|c| c.rules().first())
                    .map(|r| {
                        let d = r.apply_server_side_encryption_by_default();
                        let mut v = json!({
                            "algorithm": d.map(|d| d.sse_algorithm().as_str()).unwrap_or("AES256"),
                            "bucket_key_enabled": r.bucket_key_enabled().unwrap_or(false),
                        });
                        if let Some(k) = d.and_then(|d| d.kms_master_key_id()) {
                            v["kms_key_id"] = json!(k);
                        }
                        v
                    })
                    .unwrap_or(Value::Null),
                Err(e) if code(&e) == Some("ServerSideEncryptionConfigurationNotFoundError") => {
                    Value::Null
                }
                Err(e) => return Err(err(&format!("reading {name}'s encryption"), e)),
            },
        )
    };
    let public = async {
        Ok::<Value, ProviderError>(
            match client.get_public_access_block().bucket(name).send().await {
                Ok(b) => b
                    .public_access_block_configuration()
                    .map(|c| {
                        json!({
                            "block_public_acls": c.block_public_acls().unwrap_or(false),
                            "ignore_public_acls": c.ignore_public_acls().unwrap_or(false),
                            "block_public_policy": c.block_public_policy().unwrap_or(false),
                            "restrict_public_buckets": c.restrict_public_buckets().unwrap_or(false),
                        })
                    })
                    .unwrap_or(Value::Null),
                Err(e) if code(&e) == Some("NoSuchPublicAccessBlockConfiguration") => Value::Null,
                Err(e) => return Err(err(&format!("reading {name}'s public access block"), e)),
            },
        )
    };
    let tag_pairs = async {
        Ok::<Vec<(String, String)>, ProviderError>(
            match client.get_bucket_tagging().bucket(name).send().await {
                Ok(t) => t
                    .tag_set()
                    .iter()
                    .map(|t| (t.key().to_string(), t.value().to_string()))
                    .collect(),
                Err(e) if code(&e) == Some("NoSuchTagSet") => Vec::new(),
                Err(e) => return Err(err(&format!("reading {name}'s tags"), e)),
            },
        )
    };
    let (rules, encryption, public, tag_pairs) =
        futures_util::join!(rules, encryption, public, tag_pairs);
    let (rules, encryption, public, tag_pairs) = (rules?, encryption?, public?, tag_pairs?);
    let (tags, lineage) = split_tags(tag_pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut fields = Map::new();
    fields.insert("bucket".into(), json!(name));
    fields.insert("region".into(), json!(region));
    fields.insert("versioning".into(), json!(rules.versioning));
    fields.insert("encryption".into(), encryption);
    fields.insert("public_access_block".into(), public);
    fields.insert("lifecycle_rules".into(), Value::Array(rules.lifecycle));
    fields.insert("cors_rules".into(), Value::Array(rules.cors));
    fields.insert("tags".into(), Value::Object(tags));
    Ok(object(
        name.to_string(),
        fields,
        attributes(name, &region),
        lineage,
    ))
}

fn attributes(name: &str, region: &str) -> BTreeMap<String, Value> {
    BTreeMap::from([
        ("name".to_string(), json!(name)),
        ("arn".to_string(), json!(format!("arn:aws:s3:::{name}"))),
        ("region".to_string(), json!(region)),
        (
            "bucket_domain_name".to_string(),
            json!(format!("{name}.s3.{region}.amazonaws.com")),
        ),
    ])
}

/// Creates, configures, replaces or deletes a bucket.
pub async fn apply(p: &AwsProvider, req: &ApplyRequest<'_>) -> Result<Applied, ProviderError> {
    let f = req.fields;
    let name = text(f, "bucket")
        .or(req.cloud_id)
        .ok_or_else(|| ProviderError::msg("a bucket needs its name"))?
        .to_string();
    let region = text(f, "region").unwrap_or(&p.region).to_string();
    let client = p.s3_in(&region);
    let force = req
        .spec
        .and_then(|s| s["force_destroy"].as_bool())
        .unwrap_or(false);
    match req.action {
        Action::Delete => {
            let old = req.cloud_id.unwrap_or(&name);
            s3api::delete_bucket(&client, old, force).await?;
            return Ok(Applied::default());
        }
        Action::Replace => {
            return Err(crate::providers::not_in_place(req.kind));
        }
        Action::Create => create(&client, &name, &region).await?,
        _ => {}
    }
    configure(&client, &name, f, req.lineage).await?;
    Ok(Applied {
        id: name.clone(),
        attributes: attributes(&name, &region),
        secrets: BTreeMap::new(),
        updated_at: None,
        ..Default::default()
    })
}

async fn create(
    client: &aws_sdk_s3::Client,
    name: &str,
    region: &str,
) -> Result<(), ProviderError> {
    let mut op = client.create_bucket().bucket(name);
    // us-east-1 takes no location constraint; every other region needs one.
    if region != "us-east-1" {
        op = op.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region))
                .build(),
        );
    }
    match op.send().await {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_bucket_already_owned_by_you()) =>
        {
            Ok(())
        }
        Err(e) => Err(err(&format!("creating S3 bucket {name}"), e)),
    }
}

async fn configure(
    client: &aws_sdk_s3::Client,
    name: &str,
    f: &Map<String, Value>,
    lineage: &str,
) -> Result<(), ProviderError> {
    s3api::write_rules(client, name, f).await?;
    if let Some(e) = f.get("encryption").filter(|v| !v.is_null()) {
        {
            let algorithm = e["algorithm"].as_str().unwrap_or("AES256");
            let mut d = ServerSideEncryptionByDefault::builder()
                .sse_algorithm(ServerSideEncryption::from(algorithm));
            if let Some(k) = e["kms_key_id"].as_str() {
                d = d.kms_master_key_id(k);
            }
            let rule = ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(
                    d.build()
                        .map_err(|e| err("building the encryption rule", e))?,
                )
                .bucket_key_enabled(e["bucket_key_enabled"].as_bool().unwrap_or(false))
                .build();
            client
                .put_bucket_encryption()
                .bucket(name)
                .server_side_encryption_configuration(
                    ServerSideEncryptionConfiguration::builder()
                        .rules(rule)
                        .build()
                        .map_err(|e| err("building the encryption configuration", e))?,
                )
                .send()
                .await
                .map_err(|e| err(&format!("setting {name}'s encryption"), e))?;
        }
    }
    if let Some(b) = f.get("public_access_block").filter(|v| !v.is_null()) {
        let on = |k: &str| b[k].as_bool().unwrap_or(true);
        client
            .put_public_access_block()
            .bucket(name)
            .public_access_block_configuration(
                PublicAccessBlockConfiguration::builder()
                    .block_public_acls(on("block_public_acls"))
                    .ignore_public_acls(on("ignore_public_acls"))
                    .block_public_policy(on("block_public_policy"))
                    .restrict_public_buckets(on("restrict_public_buckets"))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| err(&format!("setting {name}'s public access block"), e))?;
    }
    let mut tags = Vec::new();
    for (k, v) in wanted_tags(f, lineage) {
        tags.push(
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| err("building a tag", e))?,
        );
    }
    put_tags(client, name, tags).await
}

/// Makes sure a bucket can hold provisioner's ledger, as `provisioner init` asks: created
/// (in `region`) when missing, versioning on (the ledger's history is the bucket's
/// versions), default encryption (SSE-S3), every public access blocked, and a lifecycle
/// that expires versions 90 days after they stop being current, keeping the newest 100
/// (only on a bucket without lifecycle rules of its own: those are left alone). With `dry`,
/// reads only. `report(made, line)` hears each step: `Some(true)` done (or would be),
/// `Some(false)` already so, `None` a note.
///
/// Errors: any S3 call other than the reads that find something missing.
pub async fn ensure_ledger_bucket(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    region: &str,
    dry: bool,
    report: &mut dyn FnMut(Option<bool>, String),
) -> Result<(), ProviderError> {
    use aws_sdk_s3::types::{
        BucketLifecycleConfiguration, BucketVersioningStatus, ExpirationStatus, LifecycleRule,
        LifecycleRuleFilter, NoncurrentVersionExpiration, VersioningConfiguration,
    };
    let exists = match client.head_bucket().bucket(bucket).send().await {
        Ok(_) => true,
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => false,
        Err(e) => return Err(err(&format!("reading bucket {bucket}"), e)),
    };
    if exists {
        report(Some(false), format!("bucket {bucket} exists"));
    } else {
        if !dry {
            create(client, bucket, region).await?;
        }
        report(Some(true), format!("created bucket {bucket} in {region}"));
    }
    // Some S3-compatible servers (moto 5.2) answer 200 with a differently named XML root,
    // which the SDK refuses to parse; the answer is still there to read.
    fn body_of<E>(
        e: &aws_sdk_s3::error::SdkError<
            E,
            aws_smithy_runtime_api::client::orchestrator::HttpResponse,
        >,
    ) -> Option<String> {
        let raw = e.raw_response()?;
        if raw.status().as_u16() != 200 {
            return None;
        }
        raw.body()
            .bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }
    // What a new bucket has not got yet, it is missing.
    let versioning = if exists {
        match client.get_bucket_versioning().bucket(bucket).send().await {
            Ok(o) => o.status() == Some(&BucketVersioningStatus::Enabled),
            Err(e) => match body_of(&e) {
                Some(text) => text.contains("<Status>Enabled</Status>"),
                None => return Err(err(&format!("reading {bucket}'s versioning"), e)),
            },
        }
    } else {
        false
    };
    if versioning {
        report(Some(false), "versioning is on".into());
    } else {
        if !dry {
            client
                .put_bucket_versioning()
                .bucket(bucket)
                .versioning_configuration(
                    VersioningConfiguration::builder()
                        .status(BucketVersioningStatus::Enabled)
                        .build(),
                )
                .send()
                .await
                .map_err(|e| err(&format!("turning on {bucket}'s versioning"), e))?;
        }
        report(
            Some(true),
            "turned versioning on (the ledger's history)".into(),
        );
    }
    let encrypted = exists
        && match client.get_bucket_encryption().bucket(bucket).send().await {
            Ok(o) => o
                .server_side_encryption_configuration()
                .is_some_and(|c| !c.rules().is_empty()),
            Err(e) => body_of(&e).is_some_and(|t| t.contains("<SSEAlgorithm>")),
        };
    if encrypted {
        report(Some(false), "default encryption is on".into());
    } else {
        if !dry {
            let by_default = ServerSideEncryptionByDefault::builder()
                .sse_algorithm(ServerSideEncryption::Aes256)
                .build()
                .map_err(|e| err("building the encryption rule", e))?;
            client
                .put_bucket_encryption()
                .bucket(bucket)
                .server_side_encryption_configuration(
                    ServerSideEncryptionConfiguration::builder()
                        .rules(
                            ServerSideEncryptionRule::builder()
                                .apply_server_side_encryption_by_default(by_default)
                                .build(),
                        )
                        .build()
                        .map_err(|e| err("building the encryption configuration", e))?,
                )
                .send()
                .await
                .map_err(|e| err(&format!("setting {bucket}'s encryption"), e))?;
        }
        report(Some(true), "turned default encryption on (SSE-S3)".into());
    }
    let all_blocked = |t: &str| {
        [
            "BlockPublicAcls",
            "IgnorePublicAcls",
            "BlockPublicPolicy",
            "RestrictPublicBuckets",
        ]
        .iter()
        .all(|k| t.contains(&format!("<{k}>true</{k}>")))
    };
    let blocked = exists
        && match client.get_public_access_block().bucket(bucket).send().await {
            Ok(o) => o.public_access_block_configuration().is_some_and(|c| {
                c.block_public_acls() == Some(true)
                    && c.ignore_public_acls() == Some(true)
                    && c.block_public_policy() == Some(true)
                    && c.restrict_public_buckets() == Some(true)
            }),
            Err(e) => body_of(&e).is_some_and(|t| all_blocked(&t)),
        };
    if blocked {
        report(Some(false), "public access is blocked".into());
    } else {
        if !dry {
            client
                .put_public_access_block()
                .bucket(bucket)
                .public_access_block_configuration(
                    PublicAccessBlockConfiguration::builder()
                        .block_public_acls(true)
                        .ignore_public_acls(true)
                        .block_public_policy(true)
                        .restrict_public_buckets(true)
                        .build(),
                )
                .send()
                .await
                .map_err(|e| err(&format!("blocking {bucket}'s public access"), e))?;
        }
        report(Some(true), "blocked all public access".into());
    }
    let rules = if exists {
        match client
            .get_bucket_lifecycle_configuration()
            .bucket(bucket)
            .send()
            .await
        {
            Ok(o) => o.rules().len(),
            Err(e) => body_of(&e).map_or(0, |t| t.matches("<Rule>").count()),
        }
    } else {
        0
    };
    if rules > 0 {
        report(
            None,
            format!(
                "the bucket has {rules} lifecycle rule(s) of its own: left alone (old ledger versions are kept as they say)"
            ),
        );
    } else {
        if !dry {
            let rule = LifecycleRule::builder()
                .id("provisioner-ledger-old-versions")
                .status(ExpirationStatus::Enabled)
                .filter(LifecycleRuleFilter::builder().prefix("").build())
                .noncurrent_version_expiration(
                    NoncurrentVersionExpiration::builder()
                        .noncurrent_days(90)
                        .newer_noncurrent_versions(100)
                        .build(),
                )
                .build()
                .map_err(|e| err("building the lifecycle rule", e))?;
            client
                .put_bucket_lifecycle_configuration()
                .bucket(bucket)
                .lifecycle_configuration(
                    BucketLifecycleConfiguration::builder()
                        .rules(rule)
                        .build()
                        .map_err(|e| err("building the lifecycle configuration", e))?,
                )
                .send()
                .await
                .map_err(|e| err(&format!("setting {bucket}'s lifecycle"), e))?;
        }
        report(
            Some(true),
            "old ledger versions expire 90 days after they stop being current, the newest 100 kept"
                .into(),
        );
    }
    Ok(())
}

/// Makes sure a bucket carries the tag `key = value`, keeping its other tags. Returns
/// whether it had to be added (with `dry`, whether it would be).
pub async fn ensure_tag(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    value: &str,
    dry: bool,
) -> Result<bool, ProviderError> {
    let mut tags: Vec<Tag> = match client.get_bucket_tagging().bucket(bucket).send().await {
        Ok(o) => o.tag_set().to_vec(),
        // A bucket without tags answers NoSuchTagSet.
        Err(e) if s3api::is_code(e.as_service_error(), "NoSuchTagSet") => Vec::new(),
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Vec::new(),
        Err(e) => return Err(err(&format!("reading {bucket}'s tags"), e)),
    };
    if tags.iter().any(|t| t.key() == key && t.value() == value) {
        return Ok(false);
    }
    if dry {
        return Ok(true);
    }
    tags.retain(|t| t.key() != key);
    tags.push(
        Tag::builder()
            .key(key)
            .value(value)
            .build()
            .map_err(|e| err("building a tag", e))?,
    );
    put_tags(client, bucket, tags).await?;
    Ok(true)
}

/// Sets a bucket's whole tag set.
async fn put_tags(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    tags: Vec<Tag>,
) -> Result<(), ProviderError> {
    client
        .put_bucket_tagging()
        .bucket(bucket)
        .tagging(
            Tagging::builder()
                .set_tag_set(Some(tags))
                .build()
                .map_err(|e| err("building the tag set", e))?,
        )
        .send()
        .await
        .map_err(|e| err(&format!("setting {bucket}'s tags"), e))?;
    Ok(())
}
