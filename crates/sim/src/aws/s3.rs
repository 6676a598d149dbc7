//! S3, path-style (`/bucket/key`): buckets with their sub-resources (`?versioning`,
//! `?encryption`, `?publicAccessBlock`, `?lifecycle`, `?cors`, `?tagging`, `?acl`,
//! `?location`, `?versions`) and objects with versions and conditional writes.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::xml::{all, el, escape, text};
use super::{AwsState, now_iso, xml_response};

const NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// One version of an object (or a delete marker).
#[derive(Clone, Debug)]
pub struct ObjectVersion {
    /// Version id (`null` while versioning was never enabled).
    pub id: String,
    /// The bytes (`None`: a delete marker).
    pub body: Option<Vec<u8>>,
    /// ETag (quoted).
    pub etag: String,
    /// Last modified (ISO 8601).
    pub modified: String,
}

/// A bucket.
#[derive(Clone, Debug, Default)]
pub struct Bucket {
    /// Region.
    pub region: String,
    /// Created (ISO 8601).
    pub created: String,
    /// `Enabled`, `Suspended`, or empty (never enabled).
    pub versioning: String,
    /// The sub-resources as the last PUT sent them (XML), by name.
    pub config: BTreeMap<String, String>,
    /// Tags.
    pub tags: Vec<(String, String)>,
    /// Canned ACL (`private`, `public-read`).
    pub acl: String,
    /// Objects by key: versions, oldest first.
    pub objects: BTreeMap<String, Vec<ObjectVersion>>,
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    xml_response(
        status,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{}</Message><RequestId>{}</RequestId></Error>",
            escape(message),
            uuid::Uuid::new_v4()
        ),
    )
}

fn doc(root: &str, inner: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><{root} xmlns=\"{NS}\">{inner}</{root}>")
}

fn ok_xml(root: &str, inner: &str) -> Response {
    xml_response(StatusCode::OK, doc(root, inner))
}

fn empty(status: StatusCode) -> Response {
    (
        status,
        [("x-amz-request-id", uuid::Uuid::new_v4().to_string())],
    )
        .into_response()
}

/// Answers one S3 request.
#[allow(clippy::too_many_arguments)]
pub fn handle(
    _region: &str,
    state: &mut AwsState,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let q = crate::parse_query(query);
    let has = |k: &str| q.contains_key(k);
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let bucket = crate::percent_decode(parts.next().unwrap_or(""));
    let key = parts
        .next()
        .map(crate::percent_decode)
        .filter(|k| !k.is_empty());
    let body_text = String::from_utf8_lossy(&body).to_string();
    if bucket.is_empty() {
        return match *method {
            Method::GET => list_buckets(state, &q),
            _ => error(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "The specified method is not allowed.",
            ),
        };
    }
    if let Some(key) = key {
        return object(state, method, &bucket, &key, &q, headers, body);
    }
    let no_bucket = || {
        error(
            StatusCode::NOT_FOUND,
            "NoSuchBucket",
            "The specified bucket does not exist",
        )
    };
    if *method == Method::PUT && q.is_empty() {
        if state.buckets.contains_key(&bucket) {
            return error(
                StatusCode::CONFLICT,
                "BucketAlreadyOwnedByYou",
                "Your previous request to create the named bucket succeeded and you already own it.",
            );
        }
        // The simulator keeps whatever region the bucket asks for; none means us-east-1.
        let location = text(&body_text, "LocationConstraint").filter(|l| !l.is_empty());
        state.buckets.insert(
            bucket.clone(),
            Bucket {
                region: location.unwrap_or_else(|| "us-east-1".to_string()),
                created: now_iso(),
                acl: headers
                    .get("x-amz-acl")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("private")
                    .to_string(),
                ..Bucket::default()
            },
        );
        return (StatusCode::OK, [("location", format!("/{bucket}"))]).into_response();
    }
    let Some(b) = state.buckets.get_mut(&bucket) else {
        return no_bucket();
    };
    // Sub-resources kept as the XML last sent: encryption, public access block, lifecycle,
    // CORS.
    let kept = [
        (
            "encryption",
            "ServerSideEncryptionConfiguration",
            "ServerSideEncryptionConfigurationNotFoundError",
            "The server side encryption configuration was not found",
        ),
        (
            "publicAccessBlock",
            "PublicAccessBlockConfiguration",
            "NoSuchPublicAccessBlockConfiguration",
            "The public access block configuration was not found",
        ),
        (
            "lifecycle",
            "LifecycleConfiguration",
            "NoSuchLifecycleConfiguration",
            "The lifecycle configuration does not exist",
        ),
        (
            "cors",
            "CORSConfiguration",
            "NoSuchCORSConfiguration",
            "The CORS configuration does not exist",
        ),
    ];
    for (sub, root, missing, message) in kept {
        if !has(sub) {
            continue;
        }
        return match *method {
            Method::GET => match b.config.get(sub) {
                Some(x) => ok_xml(root, &inner_of(x, root)),
                None => error(StatusCode::NOT_FOUND, missing, message),
            },
            Method::PUT => {
                b.config.insert(sub.to_string(), body_text);
                empty(StatusCode::OK)
            }
            Method::DELETE => {
                b.config.remove(sub);
                empty(StatusCode::NO_CONTENT)
            }
            _ => error(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "The specified method is not allowed.",
            ),
        };
    }
    if has("versioning") {
        return match *method {
            Method::GET => ok_xml(
                "VersioningConfiguration",
                &if b.versioning.is_empty() {
                    String::new()
                } else {
                    el("Status", &b.versioning)
                },
            ),
            Method::PUT => {
                b.versioning = text(&body_text, "Status").unwrap_or_default();
                empty(StatusCode::OK)
            }
            _ => error(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "The specified method is not allowed.",
            ),
        };
    }
    if has("tagging") {
        return match *method {
            Method::GET if b.tags.is_empty() => error(
                StatusCode::NOT_FOUND,
                "NoSuchTagSet",
                "The TagSet does not exist",
            ),
            Method::GET => ok_xml(
                "Tagging",
                &format!(
                    "<TagSet>{}</TagSet>",
                    b.tags
                        .iter()
                        .map(|(k, v)| format!("<Tag>{}{}</Tag>", el("Key", k), el("Value", v)))
                        .collect::<String>()
                ),
            ),
            Method::PUT => {
                b.tags = all(&body_text, "Tag")
                    .iter()
                    .map(|t| {
                        (
                            text(t, "Key").unwrap_or_default(),
                            text(t, "Value").unwrap_or_default(),
                        )
                    })
                    .collect();
                empty(StatusCode::NO_CONTENT)
            }
            Method::DELETE => {
                b.tags.clear();
                empty(StatusCode::NO_CONTENT)
            }
            _ => error(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "The specified method is not allowed.",
            ),
        };
    }
    if has("acl") {
        return match *method {
            Method::GET => {
                let public = if b.acl == "public-read" {
                    "<Grant><Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"Group\"><URI>http://acs.amazonaws.com/groups/global/AllUsers</URI></Grantee><Permission>READ</Permission></Grant>"
                } else {
                    ""
                };
                ok_xml(
                    "AccessControlPolicy",
                    &format!(
                        "<Owner><ID>sandbox</ID></Owner><AccessControlList><Grant><Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"CanonicalUser\"><ID>sandbox</ID></Grantee><Permission>FULL_CONTROL</Permission></Grant>{public}</AccessControlList>"
                    ),
                )
            }
            Method::PUT => {
                b.acl = headers
                    .get("x-amz-acl")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("private")
                    .to_string();
                empty(StatusCode::OK)
            }
            _ => error(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "The specified method is not allowed.",
            ),
        };
    }
    if has("location") {
        let constraint = if b.region == "us-east-1" {
            String::new()
        } else {
            escape(&b.region)
        };
        return xml_response(
            StatusCode::OK,
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><LocationConstraint xmlns=\"{NS}\">{constraint}</LocationConstraint>"
            ),
        );
    }
    if has("versions") {
        let prefix = q.get("prefix").cloned().unwrap_or_default();
        let mut entries = String::new();
        for (k, versions) in b.objects.iter().filter(|(k, _)| k.starts_with(&prefix)) {
            for (i, v) in versions.iter().enumerate().rev() {
                let latest = i + 1 == versions.len();
                let common = format!(
                    "{}{}<IsLatest>{latest}</IsLatest>{}",
                    el("Key", k),
                    el("VersionId", &v.id),
                    el("LastModified", &v.modified)
                );
                match &v.body {
                    Some(body) => entries.push_str(&format!(
                        "<Version>{common}{}<Size>{}</Size><StorageClass>STANDARD</StorageClass></Version>",
                        el("ETag", &v.etag),
                        body.len()
                    )),
                    None => entries.push_str(&format!("<DeleteMarker>{common}</DeleteMarker>")),
                }
            }
        }
        return ok_xml(
            "ListVersionsResult",
            &format!(
                "{}{}<IsTruncated>false</IsTruncated>{entries}",
                el("Name", &bucket),
                el("Prefix", &prefix)
            ),
        );
    }
    match *method {
        Method::HEAD => empty(StatusCode::OK),
        Method::DELETE => {
            if b.objects.values().any(|v| !v.is_empty()) {
                return error(
                    StatusCode::CONFLICT,
                    "BucketNotEmpty",
                    "The bucket you tried to delete is not empty",
                );
            }
            state.buckets.remove(&bucket);
            empty(StatusCode::NO_CONTENT)
        }
        Method::GET => {
            // ListObjectsV2: current, non-deleted objects.
            let prefix = q.get("prefix").cloned().unwrap_or_default();
            let contents: String = b
                .objects
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .filter_map(|(k, v)| {
                    let cur = v.last()?;
                    let body = cur.body.as_ref()?;
                    Some(format!(
                        "<Contents>{}{}{}<Size>{}</Size></Contents>",
                        el("Key", k),
                        el("LastModified", &cur.modified),
                        el("ETag", &cur.etag),
                        body.len()
                    ))
                })
                .collect();
            ok_xml(
                "ListBucketResult",
                &format!(
                    "{}{}<IsTruncated>false</IsTruncated>{contents}",
                    el("Name", &bucket),
                    el("Prefix", &prefix)
                ),
            )
        }
        _ => error(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            "This operation is not simulated.",
        ),
    }
}

/// The inner XML of a stored document's root (what the client sent), so it is answered
/// under the root S3 uses.
fn inner_of(stored: &str, root: &str) -> String {
    all(stored, root)
        .first()
        .map(|s| s.to_string())
        .unwrap_or_default()
}

fn etag(body: &[u8]) -> String {
    let d = Sha256::digest(body);
    format!(
        "\"{}\"",
        d[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

#[allow(clippy::too_many_arguments)]
fn object(
    state: &mut AwsState,
    method: &Method,
    bucket: &str,
    key: &str,
    q: &BTreeMap<String, String>,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let n = state.next();
    let Some(b) = state.buckets.get_mut(bucket) else {
        return error(
            StatusCode::NOT_FOUND,
            "NoSuchBucket",
            "The specified bucket does not exist",
        );
    };
    let versioned = b.versioning == "Enabled";
    let header = |h: &str| {
        headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let version_id = q.get("versionId").cloned();
    let versions = b.objects.entry(key.to_string()).or_default();
    let current = versions.last().filter(|v| v.body.is_some()).cloned();
    let no_key = || {
        error(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The specified key does not exist.",
        )
    };
    match *method {
        Method::PUT => {
            if let Some(want) = header("if-match") {
                match &current {
                    Some(c) if c.etag == want || want == "*" => {}
                    Some(_) => {
                        return error(
                            StatusCode::PRECONDITION_FAILED,
                            "PreconditionFailed",
                            "At least one of the pre-conditions you specified did not hold",
                        );
                    }
                    None => return no_key(),
                }
            }
            if header("if-none-match").as_deref() == Some("*") && current.is_some() {
                return error(
                    StatusCode::PRECONDITION_FAILED,
                    "PreconditionFailed",
                    "At least one of the pre-conditions you specified did not hold",
                );
            }
            let id = if versioned {
                format!("v{n:020}")
            } else {
                "null".to_string()
            };
            if !versioned {
                versions.retain(|v| v.id != "null");
            }
            let tag = etag(&body);
            versions.push(ObjectVersion {
                id: id.clone(),
                body: Some(body.to_vec()),
                etag: tag.clone(),
                modified: now_iso(),
            });
            (StatusCode::OK, [("etag", tag), ("x-amz-version-id", id)]).into_response()
        }
        Method::GET | Method::HEAD => {
            let found = match &version_id {
                Some(v) => versions.iter().find(|x| x.id == *v).cloned(),
                None => current,
            };
            let Some(found) = found.filter(|f| f.body.is_some()) else {
                return no_key();
            };
            let len = found.body.as_ref().map(Vec::len).unwrap_or(0);
            let hdrs = [
                ("etag", found.etag.clone()),
                ("x-amz-version-id", found.id.clone()),
                ("content-length", len.to_string()),
                ("last-modified", httpdate(&found.modified)),
                ("content-type", "application/octet-stream".to_string()),
            ];
            if *method == Method::HEAD {
                (StatusCode::OK, hdrs).into_response()
            } else {
                (StatusCode::OK, hdrs, found.body.unwrap_or_default()).into_response()
            }
        }
        Method::DELETE => {
            match version_id {
                Some(v) => versions.retain(|x| x.id != v),
                None if versioned => versions.push(ObjectVersion {
                    id: format!("v{n:020}"),
                    body: None,
                    etag: String::new(),
                    modified: now_iso(),
                }),
                None => versions.clear(),
            }
            if versions.is_empty() {
                b.objects.remove(key);
            }
            empty(StatusCode::NO_CONTENT)
        }
        _ => error(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            "This operation is not simulated.",
        ),
    }
}

/// ISO 8601 to the HTTP date `Last-Modified` uses.
fn httpdate(iso: &str) -> String {
    humantime::parse_rfc3339_weak(iso)
        .map(httpdate_of)
        .unwrap_or_default()
}

fn httpdate_of(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    let iso = provisioner_core::ledger::lease::rfc3339(t);
    let (y, mo, d) = (&iso[0..4], &iso[5..7], &iso[8..10]);
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][mo.parse::<usize>().unwrap_or(1).saturating_sub(1)];
    format!("{weekday}, {d} {month} {y} {h:02}:{m:02}:{s:02} GMT")
}

/// `ListBuckets`. With any of its parameters (`max-buckets`, `continuation-token`,
/// `prefix`, `bucket-region`) the answer is paginated and each bucket carries its
/// `BucketRegion`, as S3 does; without, it is the classic answer: every bucket, names and
/// dates only.
fn list_buckets(state: &AwsState, q: &BTreeMap<String, String>) -> Response {
    let paged = [
        "max-buckets",
        "continuation-token",
        "prefix",
        "bucket-region",
    ]
    .iter()
    .any(|k| q.contains_key(*k));
    let max = match q.get("max-buckets").map(|m| m.parse::<usize>()) {
        None => 10_000,
        Some(Ok(m)) if (1..=10_000).contains(&m) => m,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "InvalidArgument",
                "max-buckets must be between 1 and 10000",
            );
        }
    };
    let after = q.get("continuation-token").cloned().unwrap_or_default();
    let prefix = q.get("prefix").cloned().unwrap_or_default();
    let region = q.get("bucket-region");
    let mut matching = state
        .buckets
        .iter()
        .filter(|(n, _)| n.as_str() > after.as_str() && n.starts_with(&prefix))
        .filter(|(_, b)| region.is_none_or(|r| &b.region == r));
    let page: Vec<_> = matching.by_ref().take(max).collect();
    let more = paged && matching.next().is_some();
    let buckets: String = page
        .iter()
        .map(|(n, b)| {
            format!(
                "<Bucket>{}{}{}</Bucket>",
                el("Name", n),
                el("CreationDate", &b.created),
                if paged {
                    el("BucketRegion", &b.region)
                } else {
                    String::new()
                }
            )
        })
        .collect();
    let token = match page.last() {
        Some((n, _)) if more => el("ContinuationToken", n),
        _ => String::new(),
    };
    ok_xml(
        "ListAllMyBucketsResult",
        &format!(
            "<Owner><ID>sandbox</ID><DisplayName>sandbox</DisplayName></Owner><Buckets>{buckets}</Buckets>{token}"
        ),
    )
}
