//! S3 API operations shared by AWS S3 buckets and DigitalOcean Spaces buckets (the Spaces
//! API is S3-compatible): reading and writing versioning, CORS and lifecycle rules in the
//! desired state's vocabulary, and emptying then deleting a bucket.

use aws_sdk_s3::Client;
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketVersioningStatus,
    CorsConfiguration, CorsRule, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleFilter, NoncurrentVersionExpiration, VersioningConfiguration,
};
use serde_json::{Map, Value, json};

use crate::providers::ProviderError;

/// A provider error for a failed S3 call, with its whole cause.
pub fn err(
    what: &str,
    e: impl std::error::Error + crate::providers::aws::Classify + Send + Sync + 'static,
) -> ProviderError {
    crate::providers::aws::err(what, e)
}

/// True when `e` is the S3 error `code`.
pub fn is_code<E: aws_sdk_s3::error::ProvideErrorMetadata>(e: Option<&E>, code: &str) -> bool {
    e.and_then(|s| s.code()) == Some(code)
}

/// Versioning, CORS rules and lifecycle rules, as the desired state writes them.
pub struct BucketRules {
    /// Versioning enabled (suspended or never enabled: `false`).
    pub versioning: bool,
    /// CORS rules.
    pub cors: Vec<Value>,
    /// Lifecycle rules.
    pub lifecycle: Vec<Value>,
}

/// Reads a bucket's versioning, CORS and lifecycle rules.
pub async fn read_rules(client: &Client, name: &str) -> Result<BucketRules, ProviderError> {
    // The three reads are independent: one round trip, not three.
    let versioning = async {
        Ok::<bool, ProviderError>(
            match client.get_bucket_versioning().bucket(name).send().await {
                Ok(v) => v.status() == Some(&BucketVersioningStatus::Enabled),
                // An S3-compatible server may name the XML root differently; the answer is there.
                Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 200) => e
                    .raw_response()
                    .and_then(|r| r.body().bytes())
                    .is_some_and(|b| {
                        String::from_utf8_lossy(b).contains("<Status>Enabled</Status>")
                    }),
                Err(e) => return Err(err(&format!("reading {name}'s versioning"), e)),
            },
        )
    };
    let cors = async {
        Ok::<Vec<Value>, ProviderError>(match client.get_bucket_cors().bucket(name).send().await {
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
        })
    };
    let lifecycle = async {
        Ok::<Vec<Value>, ProviderError>(
            match client
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
            },
        )
    };
    let (versioning, cors, lifecycle) = futures_util::join!(versioning, cors, lifecycle);
    let (versioning, cors, lifecycle) = (versioning?, cors?, lifecycle?);
    Ok(BucketRules {
        versioning,
        cors,
        lifecycle,
    })
}

/// Deletes a bucket. A bucket that still holds objects (or old versions of them) is only
/// emptied and deleted with `force_destroy`; otherwise it is refused, never silently kept.
pub async fn delete_bucket(client: &Client, name: &str, force: bool) -> Result<(), ProviderError> {
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
            Err(e) => return Err(err(&format!("listing bucket {name}"), e)),
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
                "bucket {name} is not empty: provisioner does not delete data unless the bucket says `force_destroy = true`"
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
                .map_err(|e| err(&format!("emptying bucket {name}"), e))?;
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
        .map_err(|e| err(&format!("deleting bucket {name}"), e))
}

/// Sets a bucket's versioning, CORS and lifecycle rules to the desired fields.
pub async fn write_rules(
    client: &Client,
    name: &str,
    f: &Map<String, Value>,
) -> Result<(), ProviderError> {
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
