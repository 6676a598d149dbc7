//! Values checked against what the clouds offer, at plan time (never in offline
//! `validate`): DigitalOcean regions, droplet sizes and DOKS versions against the account's
//! catalogs (`GET /v2/regions`, `GET /v2/sizes`, `GET /v2/kubernetes/options`, fetched and
//! cached by the DigitalOcean client), AWS regions against the partitions' lists. The fields
//! checked are found by their declared format ([`Shape::Format`]), so a new field of one of
//! these formats is checked without being listed here. Pure: no I/O.

use serde_json::Value;

use super::schema::{FieldInfo, Shape, suggest};
use super::{DesiredState, Resource};

/// What a DigitalOcean account offers.
#[derive(Clone, Debug, Default)]
pub struct DoCatalogs {
    /// Region slugs (`GET /v2/regions`, every listed region: one not `available` for new
    /// droplets may still hold existing objects).
    pub regions: Vec<String>,
    /// Droplet size slugs (`GET /v2/sizes`).
    pub sizes: Vec<String>,
    /// DOKS version slugs, newest first (`GET /v2/kubernetes/options`, `options.versions[].slug`).
    pub versions: Vec<String>,
}

/// Every AWS region of every partition, from botocore 1.44.8's `data/endpoints.json`
/// (`partitions[].regions`): aws, aws-cn, aws-us-gov, aws-iso, aws-iso-b, aws-iso-e,
/// aws-iso-f, aws-eusc.
pub const AWS_REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "cn-north-1",
    "cn-northwest-1",
    "us-gov-east-1",
    "us-gov-west-1",
    "us-iso-east-1",
    "us-iso-west-1",
    "us-isob-east-1",
    "us-isob-west-1",
    "eu-isoe-west-1",
    "us-isof-east-1",
    "us-isof-south-1",
    "eusc-de-east-1",
];

/// The catalog a format is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Catalog {
    DoRegion,
    DoSize,
    DoVersion,
    AwsRegion,
}

fn catalog_of(shape: &Shape) -> Option<Catalog> {
    match shape {
        Shape::Format(f) if f.starts_with("DigitalOcean region slug") => Some(Catalog::DoRegion),
        Shape::Format(f) if f.starts_with("size slug") => Some(Catalog::DoSize),
        Shape::Format(f) if f.starts_with("DOKS version slug") => Some(Catalog::DoVersion),
        Shape::Format(f) if f.starts_with("AWS region") => Some(Catalog::AwsRegion),
        Shape::Optional(s) => catalog_of(s),
        _ => None,
    }
}

/// True when some resource has a DigitalOcean field a catalog checks (so the catalogs are
/// worth a request).
pub fn needs_do_catalogs(desired: &DesiredState) -> bool {
    let mut found = false;
    for r in desired.resources.values() {
        each_value(r, &mut |c, _, _| found |= c != Catalog::AwsRegion);
    }
    found
}

/// Every value of `r` a catalog checks: `(catalog, field path, value)`, references left out.
fn each_value(r: &Resource, f: &mut dyn FnMut(Catalog, String, &str)) {
    walk(&r.kind().fields(), &r.spec_json, String::new(), f);
}

fn walk(fields: &[FieldInfo], v: &Value, prefix: String, f: &mut dyn FnMut(Catalog, String, &str)) {
    for field in fields {
        let path = format!("{prefix}{}", field.name);
        let Some(value) = v.get(field.name) else {
            continue;
        };
        visit(&field.shape, value, path, f);
    }
}

fn visit(shape: &Shape, v: &Value, path: String, f: &mut dyn FnMut(Catalog, String, &str)) {
    match shape {
        Shape::Optional(s) => visit(s, v, path, f),
        Shape::Format(_) => {
            if let (Some(c), Some(s)) = (catalog_of(shape), v.as_str())
                && !s.contains("${")
            {
                f(c, path, s);
            }
        }
        Shape::Block(_, fields) => walk(fields, v, format!("{path}."), f),
        Shape::List(s) | Shape::Set(s) => {
            for (i, item) in v.as_array().into_iter().flatten().enumerate() {
                visit(s, item, format!("{path}[{i}]"), f);
            }
        }
        Shape::Map(s) => {
            for (k, item) in v.as_object().into_iter().flatten() {
                visit(s, item, format!("{path}.{k}"), f);
            }
        }
        _ => {}
    }
}

/// Checks every catalogued value; `do_catalogs` is `None` when the DigitalOcean catalogs
/// could not be read (then only AWS regions are checked). Each problem is rendered as
/// `validate` renders one: the field, the value, where the resource is written, and a
/// did-you-mean or the values offered.
pub fn check(desired: &DesiredState, do_catalogs: Option<&DoCatalogs>) -> Vec<String> {
    let mut out = Vec::new();
    for r in desired.resources.values() {
        each_value(r, &mut |c, path, value| {
            let (offered, what): (Vec<&str>, &str) = match (c, do_catalogs) {
                (Catalog::AwsRegion, _) => (AWS_REGIONS.to_vec(), "an AWS region"),
                (Catalog::DoRegion, Some(k)) => (
                    k.regions.iter().map(String::as_str).collect(),
                    "a region this DigitalOcean account offers (GET /v2/regions)",
                ),
                (Catalog::DoSize, Some(k)) => (
                    k.sizes.iter().map(String::as_str).collect(),
                    "a size this DigitalOcean account offers (GET /v2/sizes)",
                ),
                (Catalog::DoVersion, Some(k)) => (
                    k.versions.iter().map(String::as_str).collect(),
                    "a Kubernetes version DigitalOcean offers (GET /v2/kubernetes/options)",
                ),
                (_, None) => return,
            };
            let (ok, candidates) = if c == Catalog::DoVersion {
                version_offered(value, &offered)
            } else {
                (offered.contains(&value), offered.clone())
            };
            if ok {
                return;
            }
            let help = match suggest(value, candidates.iter().copied()) {
                Some(s) => format!("did you mean \"{s}\"?"),
                None => format!("offered: {}", candidates.join(", ")),
            };
            // The field's own place where the resource carries it (its top-level key), else
            // the resource's table.
            let top = path.split(['.', '[']).next().unwrap_or_default();
            let at = r
                .field_locations
                .get(top)
                .map_or_else(|| r.location.to_string(), ToString::to_string);
            out.push(format!(
                "error: {}.{path}: \"{value}\" is not {what}\n --> {at}\n  = help: {help}",
                r.address
            ));
        });
    }
    out
}

/// `latest`, a slug the catalog lists, or a minor version (`1.33`) some listed slug is a
/// patch of; with the minor versions offered (and the slugs) as candidates.
fn version_offered<'a>(value: &str, slugs: &[&'a str]) -> (bool, Vec<&'a str>) {
    let minor = |slug: &'a str| -> &'a str {
        let base = slug.split('-').next().unwrap_or(slug);
        base.rsplit_once('.').map_or(base, |(m, _)| m)
    };
    let mut minors: Vec<&str> = slugs.iter().map(|s| minor(s)).collect();
    minors.dedup();
    let ok = value == "latest" || slugs.contains(&value) || minors.contains(&value);
    let mut candidates = minors;
    candidates.extend(slugs.iter().copied());
    (ok, candidates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minor_versions_match_their_patches() {
        let slugs = ["1.33.1-do.0", "1.32.5-do.2"];
        assert!(version_offered("1.33", &slugs).0);
        assert!(version_offered("1.32.5-do.2", &slugs).0);
        assert!(version_offered("latest", &slugs).0);
        assert!(!version_offered("1.99", &slugs).0);
        assert_eq!(&version_offered("1.99", &slugs).1[..2], &["1.33", "1.32"]);
    }
}
