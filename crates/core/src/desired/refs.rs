//! Addresses (`provider.kind.name`) and references (`${provider.kind.name.attribute}`)
//! written inside strings. References are what make the desired state a graph.

use std::fmt;
use std::sync::Arc;

/// The identity of a resource in the desired state: `provider.kind.name`, or, for an
/// instance made by `for_each` or by a module, Terraform's form:
/// `module.app["web"].digitalocean.spaces_bucket.media["logs"]` (the module path first,
/// then the resource, then its `for_each` key).
///
/// Held as one shared string, so that a clone (plans and ledgers copy addresses a great deal)
/// costs a reference count, not three allocations. Ordered by (provider, kind, module, name).
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Address {
    text: Arc<str>,
    /// Where the provider starts in `text` (0 outside modules).
    provider_at: usize,
    /// Where the kind starts in `text`.
    kind_at: usize,
    /// Where the name starts in `text`.
    name_at: usize,
}

/// Longest `for_each` key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 128;

/// True for a `for_each` key: 1 to [`MAX_KEY_LEN`] characters among letters, digits and
/// `_ - . / : @ +` (enough for names, regions and domains; never a quote, a brace or a
/// space, so an address stays one word and a `${...}` reference stays parseable).
pub fn is_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_KEY_LEN
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/' | b':' | b'@' | b'+')
        })
}

/// `name` or `name["key"]`: a resource's or a module call's name with an optional
/// `for_each` key.
fn is_instance_name(s: &str) -> bool {
    match s.split_once("[\"") {
        None => is_name(s),
        Some((name, rest)) => is_name(name) && rest.strip_suffix("\"]").is_some_and(is_key),
    }
}

/// Splits `text` at the dots that are not inside `["..."]`.
pub(crate) fn split_outside_keys(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_key = false;
    for (i, b) in text.bytes().enumerate() {
        match b {
            b'[' => in_key = true,
            b']' => in_key = false,
            b'.' if !in_key => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out
}

impl Address {
    /// Builds an address from its three parts.
    pub fn new(provider: &str, kind: &str, name: &str) -> Self {
        Address::in_module("", provider, kind, name)
    }

    /// Builds the address of a resource inside the module instance `module`
    /// (`module.app["web"]`, or `""` for the root), `name` holding its `for_each` key if
    /// it has one (`media["logs"]`).
    pub fn in_module(module: &str, provider: &str, kind: &str, name: &str) -> Self {
        let provider_at = if module.is_empty() {
            0
        } else {
            module.len() + 1
        };
        let text = if module.is_empty() {
            format!("{provider}.{kind}.{name}")
        } else {
            format!("{module}.{provider}.{kind}.{name}")
        };
        Address {
            text: text.into(),
            provider_at,
            kind_at: provider_at + provider.len() + 1,
            name_at: provider_at + provider.len() + kind.len() + 2,
        }
    }

    /// Parses `provider.kind.name`, optionally with a `for_each` key (`name["key"]`) and a
    /// module path before it (`module.app.` or `module.app["web"].`, repeated for nesting).
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{s}` is not an address: write `provider.kind.name`, e.g. `digitalocean.vpc.main` \
                 (with `[\"key\"]` for a `for_each` instance, and `module.NAME.` before it inside a module)"
            )
        };
        let parts = split_outside_keys(s);
        if parts.len() < 3 || parts.len().is_multiple_of(2) {
            return Err(bad());
        }
        let (modules, resource) = parts.split_at(parts.len() - 3);
        for pair in modules.chunks(2) {
            if pair[0] != "module" || !is_instance_name(pair[1]) {
                return Err(bad());
            }
        }
        let [p, k, n] = resource else {
            return Err(bad());
        };
        if !(is_name(p) && is_name(k) && is_instance_name(n)) {
            return Err(bad());
        }
        let module_len = s.len() - p.len() - k.len() - n.len() - 2;
        let module = s[..module_len].strip_suffix('.').unwrap_or("");
        Ok(Address::in_module(module, p, k, n))
    }

    /// `digitalocean`, `aws` or `github`.
    pub fn provider(&self) -> &str {
        &self.text[self.provider_at..self.kind_at - 1]
    }

    /// The kind within the provider (`vpc`, `s3_bucket`, ...).
    pub fn kind(&self) -> &str {
        &self.text[self.kind_at..self.name_at - 1]
    }

    /// The user's name for the resource, with its `for_each` key if it has one
    /// (`media["logs"]`).
    pub fn name(&self) -> &str {
        &self.text[self.name_at..]
    }

    /// The module instance the resource belongs to (`module.app["web"]`), or `""` at the
    /// root.
    pub fn module(&self) -> &str {
        if self.provider_at == 0 {
            ""
        } else {
            &self.text[..self.provider_at - 1]
        }
    }

    /// The whole address, `provider.kind.name`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when this is one `for_each` instance of `whole` (`kind.name["a"]` of
    /// `kind.name`).
    pub fn is_instance_of(&self, whole: &Address) -> bool {
        self.text
            .strip_prefix(whole.as_str())
            .is_some_and(|rest| rest.starts_with("[\"") && !whole.name().contains('['))
    }

    fn parts(&self) -> (&str, &str, &str, &str) {
        (self.provider(), self.kind(), self.module(), self.name())
    }
}

impl PartialEq for Address {
    fn eq(&self, other: &Self) -> bool {
        // The parts hold no `.`, so equal texts are equal parts.
        self.text == other.text
    }
}

impl Eq for Address {}

impl PartialOrd for Address {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Address {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.parts().cmp(&other.parts())
    }
}

impl std::hash::Hash for Address {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state);
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({:?})", &*self.text)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl From<Address> for String {
    fn from(a: Address) -> String {
        a.text.to_string()
    }
}

impl TryFrom<String> for Address {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Address::parse(&s)
    }
}

/// True for a valid resource or attribute name: a letter or `_`, then letters, digits, `_`, `-`.
pub fn is_name(s: &str) -> bool {
    // Every allowed character is ASCII, so bytes suffice (a non-ASCII byte fails the test).
    match s.as_bytes().split_first() {
        Some((first, rest)) => {
            (first.is_ascii_alphabetic() || *first == b'_')
                && rest
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
        }
        None => false,
    }
}

/// `${provider.kind.name.attribute}` or `${provider.kind.name.attribute[N]}`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reference {
    /// The resource referred to.
    pub address: Address,
    /// The exported attribute.
    pub attribute: String,
    /// An element of a list attribute.
    pub index: Option<usize>,
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${{{}.{}", self.address, self.attribute)?;
        if let Some(i) = self.index {
            write!(f, "[{i}]")?;
        }
        f.write_str("}")
    }
}

impl serde::Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A piece of a string: literal text or a reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// Text as written (with `$${` already turned into `${`).
    Literal(String),
    /// A reference to fill in.
    Ref(Reference),
}

/// A reference as written, borrowed from its template: what planning reads on every pass
/// without allocating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefParts<'a> {
    /// The whole address as written (`digitalocean.vpc.main`,
    /// `module.app.aws.s3_bucket.media["logs"]`).
    pub address: &'a str,
    /// `digitalocean`, `aws` or `github`.
    pub provider: &'a str,
    /// The kind within the provider.
    pub kind: &'a str,
    /// The resource's name, with its `for_each` key if any.
    pub name: &'a str,
    /// The exported attribute.
    pub attribute: &'a str,
    /// An element of a list attribute.
    pub index: Option<usize>,
}

impl RefParts<'_> {
    /// The owned reference.
    pub fn to_reference(&self) -> Reference {
        let module = self.address[..self.address.len() - self.name.len()]
            .strip_suffix(&format!("{}.{}.", self.provider, self.kind))
            .and_then(|m| m.strip_suffix('.'))
            .unwrap_or("");
        Reference {
            address: Address::in_module(module, self.provider, self.kind, self.name),
            attribute: self.attribute.to_string(),
            index: self.index,
        }
    }
}

/// A piece of a template, borrowed from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part<'a> {
    /// Text as written (with `$${` turned into `${`, which needs a copy).
    Literal(std::borrow::Cow<'a, str>),
    /// A reference to fill in.
    Ref(RefParts<'a>),
}

/// The reference when `s` is exactly one `${...}` and nothing else, borrowed from it: the
/// common case, read without allocating.
pub fn sole_reference(s: &str) -> Option<RefParts<'_>> {
    let body = s.strip_prefix("${")?.strip_suffix('}')?;
    if body.bytes().any(|b| matches!(b, b'$' | b'{' | b'}')) {
        return None;
    }
    parse_reference(body).ok()
}

/// Splits a string into literal text and references, borrowing from it.
pub fn parse_parts(s: &str) -> Result<Vec<Part<'_>>, String> {
    use std::borrow::Cow;
    let mut out = Vec::new();
    // Literal text gathered so far: a slice of `s` until an escape forces a copy.
    let mut lit: Cow<'_, str> = Cow::Borrowed("");
    let push = |lit: &mut Cow<'_, str>, text: &str| {
        if text.is_empty() {
        } else if lit.is_empty() {
            *lit = Cow::Owned(text.to_string());
        } else {
            lit.to_mut().push_str(text);
        }
    };
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        let tail = &rest[pos..];
        if let Some(after) = tail.strip_prefix("$${") {
            push(&mut lit, &rest[..pos]);
            push(&mut lit, "${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let Some(end) = after.find('}') else {
                return Err("unterminated reference: `${` without a closing `}`".into());
            };
            let reference = parse_reference(&after[..end])?;
            if lit.is_empty() {
                if pos > 0 {
                    out.push(Part::Literal(Cow::Borrowed(&rest[..pos])));
                }
            } else {
                push(&mut lit, &rest[..pos]);
                out.push(Part::Literal(std::mem::take(&mut lit)));
            }
            out.push(Part::Ref(reference));
            rest = &after[end + 1..];
        } else {
            push(&mut lit, &rest[..=pos]);
            rest = &tail[1..];
        }
    }
    if lit.is_empty() {
        if !rest.is_empty() {
            out.push(Part::Literal(Cow::Borrowed(rest)));
        }
    } else {
        push(&mut lit, rest);
        out.push(Part::Literal(lit));
    }
    Ok(out)
}

/// Splits a string into literal text and references.
pub fn parse_template(s: &str) -> Result<Vec<Segment>, String> {
    Ok(parse_parts(s)?
        .into_iter()
        .map(|p| match p {
            Part::Literal(l) => Segment::Literal(l.into_owned()),
            Part::Ref(r) => Segment::Ref(r.to_reference()),
        })
        .collect())
}

fn parse_reference(body: &str) -> Result<RefParts<'_>, String> {
    // Spaces inside the braces are allowed; trimming only when an end may be one keeps the
    // common case cheap (Unicode whitespace never starts or ends with an ASCII letter).
    let plain_ends = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_graphic());
    let bytes = body.as_bytes();
    let body = if plain_ends(bytes.first()) && plain_ends(bytes.last()) {
        body
    } else {
        body.trim()
    };
    let bad = || {
        format!(
            "`${{{body}}}` is not a reference: write `${{provider.kind.name.attribute}}`, \
             optionally with an index like `[0]`"
        )
    };
    if body.starts_with("module.") || body.contains('"') {
        return parse_instance_reference(body).ok_or_else(bad);
    }
    // One pass over the bytes: the three dots and the opening bracket (all ASCII).
    let bytes = body.as_bytes();
    let mut dots = [0usize; 3];
    let mut found = 0;
    let mut open = None;
    for (i, b) in bytes.iter().enumerate() {
        match b {
            b'[' => {
                open = Some(i);
                break;
            }
            b'.' if found < 3 => {
                dots[found] = i;
                found += 1;
            }
            b'.' => return Err(bad()),
            _ => {}
        }
    }
    let (path_end, index) = match open {
        Some(open) => {
            let idx = body[open + 1..].strip_suffix(']').ok_or_else(bad)?;
            let n: usize = idx.trim().parse().map_err(|_| bad())?;
            (open, Some(n))
        }
        None => (body.len(), None),
    };
    if found != 3 {
        return Err(bad());
    }
    let provider = &body[..dots[0]];
    let kind = &body[dots[0] + 1..dots[1]];
    let name = &body[dots[1] + 1..dots[2]];
    let attribute = &body[dots[2] + 1..path_end];
    if [provider, kind, name, attribute].iter().all(|x| is_name(x)) {
        Ok(RefParts {
            address: &body[..dots[2]],
            provider,
            kind,
            name,
            attribute,
            index,
        })
    } else {
        Err(bad())
    }
}

/// A reference to a `for_each` instance or into a module:
/// `module.app.aws.s3_bucket.media["logs"].arn[0]`.
fn parse_instance_reference(body: &str) -> Option<RefParts<'_>> {
    let parts = split_outside_keys(body);
    let (last, _) = parts.split_last()?;
    let address = body.get(..body.len().checked_sub(last.len() + 1)?)?;
    let (attribute, index) = match last.split_once('[') {
        Some((a, i)) => (a, Some(i.strip_suffix(']')?.trim().parse::<usize>().ok()?)),
        None => (*last, None),
    };
    if !is_name(attribute) {
        return None;
    }
    let parsed = Address::parse(address).ok()?;
    // Slices of `body` for the parts (the parsed address is an owned copy).
    let name = &address[address.len() - parsed.name().len()..];
    let kind_end = address.len() - name.len() - 1;
    let kind = &address[kind_end - parsed.kind().len()..kind_end];
    let provider_end = kind_end - kind.len() - 1;
    let provider = &address[provider_end - parsed.provider().len()..provider_end];
    Some(RefParts {
        address,
        provider,
        kind,
        name,
        attribute,
        index,
    })
}

/// True when the string may hold a reference: it contains `${` (which an escaped `$${`
/// also does). A quick test that skips the parser for plain strings.
pub fn may_hold_reference(s: &str) -> bool {
    let bytes = s.as_bytes();
    let mut from = 0;
    while let Some(i) = bytes[from..].iter().position(|b| *b == b'$') {
        if bytes.get(from + i + 1) == Some(&b'{') {
            return true;
        }
        from += i + 1;
    }
    false
}

/// True when the string holds at least one reference.
pub fn contains_ref(s: &str) -> bool {
    matches!(parse_template(s), Ok(segs) if segs.iter().any(|s| matches!(s, Segment::Ref(_))))
}

/// The single reference when the string is exactly one `${...}` and nothing else.
pub fn whole_ref(s: &str) -> Option<Reference> {
    match parse_template(s) {
        Ok(mut segs) if segs.len() == 1 => match segs.pop() {
            Some(Segment::Ref(r)) => Some(r),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_split_into_literals_and_references() {
        let segs =
            parse_template("${aws.ses_domain_identity.mail.dkim_tokens[1]}._domainkey").unwrap();
        assert_eq!(segs.len(), 2);
        let Segment::Ref(r) = &segs[0] else {
            panic!("expected a reference")
        };
        assert_eq!(r.address.to_string(), "aws.ses_domain_identity.mail");
        assert_eq!(r.index, Some(1));
        assert_eq!(segs[1], Segment::Literal("._domainkey".into()));
    }

    #[test]
    fn a_doubled_dollar_escapes_a_reference() {
        assert_eq!(
            parse_template("a$${b}").unwrap(),
            vec![Segment::Literal("a${b}".into())]
        );
        assert!(!contains_ref("cost $5 and $${x}"));
    }

    #[test]
    fn borrowed_parts_match_the_owned_segments() {
        for text in [
            "plain",
            "${a.b.c.d}",
            "x-${a.b.c.d[2]}-y",
            "a$${b}${a.b.c.d}$c$",
            "$${a}$${b}",
            "",
            "${a.b.c.d}${e.f.g.h}",
        ] {
            let parts = parse_parts(text).unwrap();
            let owned = parse_template(text).unwrap();
            assert_eq!(parts.len(), owned.len(), "{text}");
            let mut rebuilt = String::new();
            for p in &parts {
                match p {
                    Part::Literal(l) => rebuilt.push_str(l),
                    Part::Ref(r) => rebuilt.push_str(&r.to_reference().to_string()),
                }
            }
            let expected: String = owned
                .iter()
                .map(|s| match s {
                    Segment::Literal(l) => l.clone(),
                    Segment::Ref(r) => r.to_string(),
                })
                .collect();
            assert_eq!(rebuilt, expected, "{text}");
        }
        assert_eq!(
            sole_reference("${a.b.c.d[1]}").map(|r| r.to_reference().to_string()),
            Some("${a.b.c.d[1]}".to_string())
        );
        assert_eq!(sole_reference("${a.b.c.d}x"), None);
        assert_eq!(sole_reference("${a.b.c.d}${a.b.c.e}"), None);
        assert_eq!(
            parse_parts("a$${b}c").unwrap(),
            vec![Part::Literal("a${b}c".into())]
        );
        assert_eq!(
            parse_parts("cost $5").unwrap(),
            vec![Part::Literal("cost $5".into())]
        );
    }

    #[test]
    fn names_and_the_quick_reference_test() {
        for good in ["a", "_x", "web-1", "A_b-9"] {
            assert!(is_name(good), "{good}");
        }
        for bad in ["", "1a", "-a", "a.b", "é", "aé", "a b"] {
            assert!(!is_name(bad), "{bad}");
        }
        assert!(may_hold_reference("x ${a.b.c.d}"));
        assert!(may_hold_reference("$${escaped}"));
        assert!(!may_hold_reference("cost $5, {braces}"));
        assert!(!may_hold_reference("ends with $"));
    }

    #[test]
    fn instance_addresses_and_references_round_trip() {
        for text in [
            "digitalocean.vpc.main",
            "aws.s3_bucket.media[\"logs\"]",
            "module.app.aws.s3_bucket.media",
            "module.app[\"web.example.com\"].module.mail.aws.ses_domain_identity.main[\"a\"]",
        ] {
            let a = Address::parse(text).unwrap();
            assert_eq!(a.as_str(), text);
            let r = parse_template(&format!("x-${{{text}.arn[1]}}")).unwrap();
            let Segment::Ref(r) = &r[1] else {
                panic!("{text}")
            };
            assert_eq!(r.address, a, "{text}");
            assert_eq!(r.attribute, "arn");
            assert_eq!(r.index, Some(1));
        }
        let a = Address::parse("module.app[\"web\"].aws.s3_bucket.media[\"logs\"]").unwrap();
        assert_eq!(
            (a.module(), a.provider(), a.kind(), a.name()),
            ("module.app[\"web\"]", "aws", "s3_bucket", "media[\"logs\"]")
        );
        for bad in [
            "module.aws.s3_bucket.media",
            "mod.app.aws.s3_bucket.media",
            "aws.s3_bucket.media[\"\"]",
            "aws.s3_bucket.media[\"a b\"]",
            "aws.s3_bucket.media[logs]",
            "aws[\"x\"].s3_bucket.media",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn malformed_references_are_errors() {
        assert!(parse_template("${digitalocean.vpc.main").is_err());
        assert!(parse_template("${digitalocean.vpc}").is_err());
        assert!(parse_template("${a.b.c.d[x]}").is_err());
    }
}
