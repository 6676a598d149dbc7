//! Checked string formats (CIDRs, slugs, DNS names, durations, ...) and secret sources.
//! A format is only checked when the string holds no reference: a reference's value is
//! known after apply, and its target is checked where it is declared.

use std::net::IpAddr;
use std::path::PathBuf;

use super::load::{Raw, RawValue};
use super::refs::{self, Reference};
use super::schema::{Cx, Decode, Shape, record_refs, suggest};
use crate::{block, string_enum};

macro_rules! format_type {
    ($(#[doc = $doc:literal])* $name:ident, $desc:literal, $check:expr) => {
        $(#[doc = $doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// The text as written.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Decode for $name {
            fn shape() -> Shape {
                Shape::Format($desc)
            }
            fn decode(raw: &Raw, cx: &mut Cx<'_>) -> Option<Self> {
                let s = String::decode(raw, cx)?;
                if !refs::contains_ref(&s) {
                    let check: fn(&str) -> Result<(), String> = $check;
                    if let Err(e) = check(&s) {
                        cx.error(raw.span, e);
                        return None;
                    }
                }
                Some($name(s))
            }
        }
    };
}

format_type!(
    /// A DigitalOcean region slug such as `nyc3`.
    DoRegion, "DigitalOcean region slug, e.g. `nyc3`", |s| {
        let b = s.as_bytes();
        if b.len() == 4 && b[..3].iter().all(u8::is_ascii_lowercase) && b[3].is_ascii_digit() {
            Ok(())
        } else {
            Err(format!("\"{s}\" is not a DigitalOcean region slug (three lower-case letters and a digit, like \"nyc3\" or \"fra1\")"))
        }
    }
);

format_type!(
    /// An AWS region such as `eu-west-1`.
    AwsRegion, "AWS region, e.g. `eu-west-1`", |s| {
        let parts: Vec<&str> = s.split('-').collect();
        let ok = parts.len() >= 3
            && parts[0].len() == 2
            && parts[0].bytes().all(|c| c.is_ascii_lowercase())
            && parts[1..parts.len() - 1].iter().all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_lowercase()))
            && parts[parts.len() - 1].parse::<u8>().is_ok();
        if ok { Ok(()) } else {
            Err(format!("\"{s}\" is not an AWS region (like \"us-east-1\" or \"eu-west-1\")"))
        }
    }
);

format_type!(
    /// A DigitalOcean size slug such as `s-4vcpu-8gb`.
    SizeSlug, "size slug, e.g. `s-4vcpu-8gb`", |s| {
        let ok = s.contains('-')
            && s.split('-').all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        if ok { Ok(()) } else {
            Err(format!("\"{s}\" is not a size slug (lower-case words joined by `-`, like \"s-4vcpu-8gb\")"))
        }
    }
);

format_type!(
    /// A DOKS version slug: `1.33.1-do.0`, a minor version `1.33`, or `latest`.
    KubernetesVersion, "DOKS version slug: `1.33.1-do.0`, `1.33` or `latest`", |s| {
        if s == "latest" || parse_k8s_version(s).is_some() { Ok(()) } else {
            Err(format!("\"{s}\" is not a DOKS version: write \"1.33.1-do.0\", a minor version \"1.33\", or \"latest\""))
        }
    }
);

/// Parses `1.33` or `1.33.1-do.0` into comparable numbers (major, minor, patch, do-revision).
pub fn parse_k8s_version(s: &str) -> Option<(u32, u32, Option<u32>, Option<u32>)> {
    let (base, rev) = match s.split_once("-do.") {
        Some((b, r)) => (b, Some(r.parse().ok()?)),
        None => (s, None),
    };
    let nums: Vec<&str> = base.split('.').collect();
    match (nums.as_slice(), rev) {
        ([a, b], None) => Some((a.parse().ok()?, b.parse().ok()?, None, None)),
        ([a, b, c], Some(r)) => Some((
            a.parse().ok()?,
            b.parse().ok()?,
            Some(c.parse().ok()?),
            Some(r),
        )),
        _ => None,
    }
}

/// Parses a CIDR block, insisting the host bits are zero.
pub fn parse_cidr(s: &str) -> Result<(IpAddr, u8), String> {
    let Some((ip, len)) = s.split_once('/') else {
        return Err(format!(
            "\"{s}\" is not a CIDR block: write an address and a prefix length, like \"10.10.0.0/16\""
        ));
    };
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| format!("\"{s}\" is not a CIDR block: \"{ip}\" is not an IP address"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len: u8 = match len.parse() {
        Ok(l) if l <= max => l,
        _ => {
            return Err(format!(
                "\"{s}\" is not a CIDR block: the prefix length must be 0 to {max}"
            ));
        }
    };
    let (bits, width): (u128, u32) = match ip {
        IpAddr::V4(v) => (u128::from(u32::from(v)), 32),
        IpAddr::V6(v) => (u128::from(v), 128),
    };
    let host_bits = width - u32::from(len);
    let host_mask: u128 = if host_bits == 0 {
        0
    } else {
        u128::MAX >> (128 - host_bits)
    };
    if bits & host_mask != 0 {
        let net = bits & !host_mask;
        let net: IpAddr = match ip {
            IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::from(net as u32)),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::from(net)),
        };
        return Err(format!(
            "\"{s}\" has host bits set: did you mean \"{net}/{len}\"?"
        ));
    }
    Ok((ip, len))
}

format_type!(
    /// A CIDR block such as `10.10.0.0/16`.
    Cidr, "CIDR block, e.g. `10.10.0.0/16`", |s| parse_cidr(s).map(|_| ())
);

format_type!(
    /// An IP address or a CIDR block (firewall sources and destinations).
    IpOrCidr, "IP address or CIDR block", |s| {
        if s.contains('/') { parse_cidr(s).map(|_| ()) } else {
            s.parse::<IpAddr>().map(|_| ()).map_err(|_| format!("\"{s}\" is neither an IP address nor a CIDR block"))
        }
    }
);

format_type!(
    /// An IPv4 or IPv6 address.
    IpAddress, "IP address", |s| s.parse::<IpAddr>().map(|_| ()).map_err(|_| format!("\"{s}\" is not an IP address"))
);

/// Checks a DNS name: labels of letters, digits and `-`, at most 253 characters.
pub fn check_dns_name(
    s: &str,
    allow_underscore_and_star: bool,
    min_labels: usize,
) -> Result<(), String> {
    if s.ends_with('.') {
        return Err(format!(
            "\"{s}\" ends with a dot: write the name without the trailing dot"
        ));
    }
    if s.len() > 253 {
        return Err(format!(
            "\"{}…\" is longer than the 253 characters a DNS name may have",
            &s[..20]
        ));
    }
    if s.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(format!(
            "\"{s}\" has upper-case letters: DNS names are stored in lower case, write \"{}\"",
            s.to_lowercase()
        ));
    }
    let labels: Vec<&str> = s.split('.').collect();
    if labels.len() < min_labels {
        return Err(format!(
            "\"{s}\" is not a fully qualified domain name (like \"example.com\")"
        ));
    }
    for (i, l) in labels.iter().enumerate() {
        let ok_char = |c: char| {
            c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || c == '-'
                || (allow_underscore_and_star && c == '_')
        };
        let ok = !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && (l.chars().all(ok_char) || (allow_underscore_and_star && i == 0 && *l == "*"));
        if !ok {
            return Err(format!(
                "\"{s}\" is not a valid DNS name: label \"{l}\" must be 1 to 63 letters, digits or hyphens, not starting or ending with a hyphen"
            ));
        }
    }
    Ok(())
}

format_type!(
    /// A fully qualified domain name without the trailing dot, such as `example.com`.
    DnsName, "domain name, e.g. `example.com`", |s| check_dns_name(s, false, 2)
);

format_type!(
    /// A record name relative to its domain: `@` for the apex, `www`, `_dmarc`, `*.dev`.
    RecordName, "record name relative to the domain: `@`, `www`, `_dmarc`", |s| {
        if s == "@" { Ok(()) } else { check_dns_name(s, true, 1) }
    }
);

/// A duration written `30s`, `5m`, `1h30m`, `90d` or `2w`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Duration(pub String);

impl Duration {
    /// Parses the text into seconds.
    pub fn parse(s: &str) -> Result<u64, String> {
        let bad = || {
            format!(
                "\"{s}\" is not a duration: write a number and a unit (s, m, h, d, w), like \"30s\", \"5m\", \"1h30m\" or \"90d\""
            )
        };
        if s.is_empty() {
            return Err(bad());
        }
        let mut total: u64 = 0;
        let mut num = String::new();
        for c in s.chars() {
            if c.is_ascii_digit() {
                num.push(c);
                continue;
            }
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                'w' => 604_800,
                _ => return Err(bad()),
            };
            let n: u64 = num.parse().map_err(|_| bad())?;
            total = n
                .checked_mul(unit)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(bad)?;
            num.clear();
        }
        if !num.is_empty() {
            return Err(bad());
        }
        if total == 0 {
            return Err(format!(
                "\"{s}\" is zero: a duration must be longer than that"
            ));
        }
        Ok(total)
    }

    /// Length in seconds (the text was checked when decoded).
    pub fn seconds(&self) -> u64 {
        Duration::parse(&self.0).unwrap_or(0)
    }
}

impl Decode for Duration {
    fn shape() -> Shape {
        Shape::Format("duration, e.g. `30s`, `5m`, `1h30m`, `90d`")
    }
    fn decode(raw: &Raw, cx: &mut Cx<'_>) -> Option<Self> {
        let RawValue::String(s) = &raw.value else {
            let help = matches!(raw.value, RawValue::Integer(_))
                .then_some("add a unit, like \"300s\" or \"5m\"");
            cx.expected(raw, "a duration string");
            if let Some(h) = help {
                cx.diags.last_mut().expect("just reported").help = Some(h.into());
            }
            return None;
        };
        match Duration::parse(s) {
            Ok(_) => Some(Duration(s.clone())),
            Err(e) => {
                cx.error(raw.span, e);
                None
            }
        }
    }
}

format_type!(
    /// A time of day in UTC, `HH:MM`.
    TimeOfDay, "time of day in UTC, `HH:MM`", |s| {
        let ok = s.len() == 5
            && s.as_bytes()[2] == b':'
            && s[..2].parse::<u8>().is_ok_and(|h| h < 24)
            && s[3..].parse::<u8>().is_ok_and(|m| m < 60);
        if ok { Ok(()) } else { Err(format!("\"{s}\" is not a time of day: write \"HH:MM\" in UTC, like \"04:00\"")) }
    }
);

format_type!(
    /// Firewall ports: `"22"`, `"8000-9000"`, or `"all"` (also written `"0"`).
    PortSpec, "port, range `8000-9000`, or `all`", |s| {
        if s == "all" || s == "0" {
            return Ok(());
        }
        let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p >= 1);
        match s.split_once('-') {
            None if port(s).is_some() => Ok(()),
            Some((a, b)) => match (port(a), port(b)) {
                (Some(a), Some(b)) if a <= b => Ok(()),
                (Some(a), Some(b)) => Err(format!("\"{s}\" is not a port range: {a} is larger than {b}")),
                _ => Err(format!("\"{s}\" is not a port range: ports are 1 to 65535")),
            },
            None => Err(format!("\"{s}\" is not a port: write \"22\", \"8000-9000\" or \"all\" (ports are 1 to 65535)")),
        }
    }
);

format_type!(
    /// A GitHub repository, `owner/name`.
    Repository, "GitHub repository, `owner/name`", |s| {
        let ok = match s.split_once('/') {
            Some((o, n)) => !o.is_empty() && o.len() <= 39
                && o.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !n.is_empty() && n.len() <= 100
                && n.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
            None => false,
        };
        if ok { Ok(()) } else { Err(format!("\"{s}\" is not a repository: write \"owner/name\"")) }
    }
);

format_type!(
    /// A GitHub Actions secret or variable name: letters, digits and `_`; not starting with a
    /// digit or `GITHUB_`. GitHub stores it upper-case.
    GhName, "letters, digits and `_`; not starting with a digit or `GITHUB_`", |s| {
        let first_ok = s.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if !first_ok || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            Err(format!("\"{s}\" is not a valid GitHub name: use letters, digits and `_`, not starting with a digit"))
        } else if s.to_ascii_uppercase().starts_with("GITHUB_") {
            Err(format!("\"{s}\" starts with `GITHUB_`, which GitHub reserves"))
        } else {
            Ok(())
        }
    }
);

format_type!(
    /// A GitHub environment name.
    GhEnvironment, "GitHub environment name", |s| {
        if s.is_empty() || s.len() > 255 || s.contains('/') {
            Err(format!("\"{s}\" is not an environment name: 1 to 255 characters, no `/`"))
        } else { Ok(()) }
    }
);

format_type!(
    /// A bucket name: 3 to 63 lower-case letters, digits, `-` and `.`.
    BucketName, "bucket name: 3-63 lower-case letters, digits, `-`, `.`", |s| {
        let ok = (3..=63).contains(&s.len())
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric())
            && !s.contains("..")
            && s.parse::<std::net::Ipv4Addr>().is_err();
        if ok { Ok(()) } else {
            Err(format!("\"{s}\" is not a valid bucket name: 3 to 63 lower-case letters, digits, `-` and `.`, starting and ending with a letter or digit"))
        }
    }
);

format_type!(
    /// An IAM user or policy name: up to 64 of letters, digits and `+=,.@_-`.
    IamName, "IAM name: up to 64 of letters, digits, `+=,.@_-`", |s| {
        let ok = (1..=64).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c));
        if ok { Ok(()) } else { Err(format!("\"{s}\" is not a valid IAM name: 1 to 64 letters, digits and `+=,.@_-`")) }
    }
);

format_type!(
    /// An IAM path: `/` or `/division/team/`.
    IamPath, "IAM path, `/` or `/team/`", |s| {
        let ok = s.starts_with('/') && s.ends_with('/') && s.len() <= 512 && !s.contains("//") || s == "/";
        if ok { Ok(()) } else { Err(format!("\"{s}\" is not an IAM path: it starts and ends with `/`, like \"/smtp/\"")) }
    }
);

format_type!(
    /// A name made of letters, digits, `_` and `-` (SES configuration sets, SNS topics).
    AwsName, "letters, digits, `_` and `-` (SNS FIFO topics end in `.fifo`)", |s| {
        let base = s.strip_suffix(".fifo").unwrap_or(s);
        let ok = (1..=256).contains(&s.len()) && base.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if ok { Ok(()) } else { Err(format!("\"{s}\" is not a valid name: use letters, digits, `_` and `-`")) }
    }
);

format_type!(
    /// A Secrets Manager secret name: up to 512 of letters, digits and `/_+=.@-`.
    SecretName, "Secrets Manager name: letters, digits, `/_+=.@-`", |s| {
        let ok = (1..=512).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c));
        if ok { Ok(()) } else { Err(format!("\"{s}\" is not a valid secret name: 1 to 512 letters, digits and `/_+=.@-`")) }
    }
);

format_type!(
    /// Where the ledger lives: `s3://bucket/prefix` or `file://path`.
    LedgerUrl, "`s3://bucket/prefix` or `file://path`", |s| {
        if let Some(rest) = s.strip_prefix("s3://") {
            let bucket = rest.split('/').next().unwrap_or("");
            if bucket.is_empty() { Err(format!("\"{s}\" names no bucket: write \"s3://bucket/prefix\"")) } else { Ok(()) }
        } else if let Some(rest) = s.strip_prefix("file://") {
            if rest.is_empty() { Err(format!("\"{s}\" names no path: write \"file://state\"")) } else { Ok(()) }
        } else {
            Err(format!("\"{s}\" is not a ledger location: write \"s3://bucket/prefix\" or \"file://path\""))
        }
    }
);

format_type!(
    /// An environment variable name.
    EnvName, "environment variable name", |s| {
        let ok = s.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if ok { Ok(()) } else { Err(format!("\"{s}\" is not an environment variable name: letters, digits and `_`, not starting with a digit")) }
    }
);

format_type!(
    /// A CORS origin: `*`, or a scheme and host such as `https://cloud.example.com`.
    CorsOrigin, "`*` or `https://host`", |s| {
        if s == "*" || ((s.starts_with("https://") || s.starts_with("http://")) && !s.ends_with('/') && s.split("://").nth(1).is_some_and(|h| !h.is_empty())) {
            Ok(())
        } else {
            Err(format!("\"{s}\" is not a CORS origin: write \"*\" or a scheme and host like \"https://cloud.example.com\" (no trailing `/`)"))
        }
    }
);

string_enum! {
    /// Characters a generated secret is made of.
    pub enum Charset {
        /// `A-Z a-z 0-9`.
        Alphanumeric = "alphanumeric",
        /// `0-9 a-f`.
        Hex = "hex",
        /// Printable ASCII without space and quotes, for systems that demand symbols.
        Printable = "printable",
    }
}

block! {
    /// How provisioner generates a secret value once.
    pub struct Generate {
        /// Number of characters.
        length: u32 = 32 => local [16, 4096],
        /// Which characters to draw from.
        charset: Charset = "alphanumeric" => local,
    }
}

/// Where a secret value comes from. The value itself is never in the desired state.
#[derive(Clone, Debug, PartialEq)]
pub enum SecretSource {
    /// An environment variable of the provisioner process.
    Env(String),
    /// A file (relative paths resolve against the desired-state file that names it).
    File(PathBuf),
    /// Another resource's output.
    Ref(Reference),
    /// Generated once by provisioner and kept only by the resource itself.
    Generate(Generate),
}

impl serde::Serialize for SecretSource {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            SecretSource::Ref(r) => s.collect_str(r),
            SecretSource::Env(name) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("env", name)?;
                m.end()
            }
            SecretSource::File(p) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("file", p)?;
                m.end()
            }
            SecretSource::Generate(g) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("generate", g)?;
                m.end()
            }
        }
    }
}

const SECRET_HELP: &str = "write where the value comes from instead: `{ env = \"NAME\" }`, \
    `{ file = \"path\" }`, or a reference to another resource's secret output such as \
    \"${aws.iam_smtp_user.smtp.smtp_password}\"";

fn decode_secret(raw: &Raw, cx: &mut Cx<'_>, allow_generate: bool) -> Option<SecretSource> {
    cx.secret(|cx| match &raw.value {
        RawValue::String(s) => {
            if let Some(r) = refs::whole_ref(s) {
                record_refs(s, raw.span, cx)?;
                return Some(SecretSource::Ref(r));
            }
            if refs::contains_ref(s) {
                cx.error(raw.span, "a secret source must be a single reference with nothing around it")
                    .set_help(SECRET_HELP);
            } else if refs::parse_template(s).is_err() {
                record_refs(s, raw.span, cx);
            } else {
                let help = if allow_generate {
                    format!("{SECRET_HELP}; or let provisioner generate it: `{{ generate = {{ length = 32 }} }}`")
                } else {
                    SECRET_HELP.to_string()
                };
                cx.error(raw.span, "a secret value must not be written in plain text in the desired state")
                    .set_help(help);
            }
            None
        }
        RawValue::Table(t) => {
            let mut known = vec!["env", "file"];
            if allow_generate {
                known.push("generate");
            }
            let keys: Vec<&String> = t.keys().collect();
            if keys.len() != 1 {
                cx.error(raw.span, format!("a secret source has exactly one of {}; found {}",
                    known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "),
                    if keys.is_empty() { "none".to_string() } else { keys.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ") }))
                    .set_help(SECRET_HELP);
                return None;
            }
            let (key, entry) = t.iter().next().expect("one key");
            match key.as_str() {
                "env" => cx.nested("env", |cx| EnvName::decode(&entry.value, cx)).map(|n| SecretSource::Env(n.0)),
                "file" => cx.nested("file", |cx| {
                    let p = String::decode(&entry.value, cx)?;
                    if p.is_empty() || refs::contains_ref(&p) {
                        cx.error(entry.value.span, "a secret file path must be a non-empty literal path");
                        return None;
                    }
                    let path = PathBuf::from(&p);
                    Some(SecretSource::File(if path.is_absolute() { path } else { cx.base_dir.join(path) }))
                }),
                "generate" if allow_generate => {
                    cx.nested("generate", |cx| Generate::decode(&entry.value, cx)).map(SecretSource::Generate)
                }
                "generate" => {
                    cx.error(entry.key_span, "this kind cannot keep a generated value")
                        .set_help("`generate` is for kinds that store the value themselves, such as aws.secretsmanager_secret; \
                               generate it there and reference its `value` output here");
                    None
                }
                other => {
                    let d = cx.error(entry.key_span, format!("unknown secret source `{other}`"));
                    d.help = Some(match suggest(other, known.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => SECRET_HELP.to_string(),
                    });
                    None
                }
            }
        }
        _ => {
            cx.expected(raw, "a secret source");
            cx.diags.last_mut().expect("just reported").help = Some(SECRET_HELP.into());
            None
        }
    })
}

/// A write-only value supplied from outside: env, file or a reference to a secret output.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(transparent)]
pub struct Secret(pub SecretSource);

impl Decode for Secret {
    fn shape() -> Shape {
        Shape::Secret { generate: false }
    }
    fn decode(raw: &Raw, cx: &mut Cx<'_>) -> Option<Self> {
        decode_secret(raw, cx, false).map(Secret)
    }
}

/// A secret the resource keeps itself, so provisioner may also generate it once.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(transparent)]
pub struct StoredSecret(pub SecretSource);

impl Decode for StoredSecret {
    fn shape() -> Shape {
        Shape::Secret { generate: true }
    }
    fn decode(raw: &Raw, cx: &mut Cx<'_>) -> Option<Self> {
        decode_secret(raw, cx, true).map(StoredSecret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_add_their_parts() {
        assert_eq!(Duration::parse("1h30m").unwrap(), 5400);
        assert_eq!(Duration::parse("90d").unwrap(), 90 * 86_400);
        assert!(Duration::parse("5").is_err());
        assert!(Duration::parse("5x").is_err());
        assert!(Duration::parse("0s").is_err());
        assert!(Duration::parse("").is_err());
    }

    #[test]
    fn cidrs_with_host_bits_suggest_the_network() {
        assert!(parse_cidr("10.10.0.0/16").is_ok());
        assert!(parse_cidr("::/0").is_ok());
        let e = parse_cidr("10.10.1.0/16").unwrap_err();
        assert!(e.contains("did you mean \"10.10.0.0/16\""), "{e}");
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("10.0.0.0").is_err());
    }

    #[test]
    fn kubernetes_versions_compare_numerically() {
        assert!(parse_k8s_version("1.33.10-do.0") > parse_k8s_version("1.33.9-do.2"));
        assert_eq!(parse_k8s_version("1.33"), Some((1, 33, None, None)));
        assert_eq!(parse_k8s_version("1.33.1"), None);
    }

    #[test]
    fn dns_names_reject_trailing_dots_and_upper_case() {
        assert!(check_dns_name("example.com", false, 2).is_ok());
        assert!(check_dns_name("example.com.", false, 2).is_err());
        assert!(check_dns_name("Example.com", false, 2).is_err());
        assert!(check_dns_name("_dmarc", true, 1).is_ok());
        assert!(check_dns_name("-bad.com", false, 2).is_err());
    }
}
