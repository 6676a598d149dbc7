//! Addresses (`provider.kind.name`) and references (`${provider.kind.name.attribute}`)
//! written inside strings. References are what make the desired state a graph.

use std::fmt;

/// The identity of a resource in the desired state: `provider.kind.name`.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(into = "String", try_from = "String")]
pub struct Address {
    /// `digitalocean`, `aws` or `github`.
    pub provider: String,
    /// The kind within the provider (`vpc`, `s3_bucket`, ...).
    pub kind: String,
    /// The user's name for the resource.
    pub name: String,
}

impl Address {
    /// Builds an address from its three parts.
    pub fn new(provider: &str, kind: &str, name: &str) -> Self {
        Address {
            provider: provider.into(),
            kind: kind.into(),
            name: name.into(),
        }
    }

    /// Parses `provider.kind.name`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split('.').collect();
        match parts.as_slice() {
            [p, k, n] if [p, k, n].iter().all(|x| is_name(x)) => Ok(Address::new(p, k, n)),
            _ => Err(format!(
                "`{s}` is not an address: write `provider.kind.name`, e.g. `digitalocean.vpc.main`"
            )),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.provider, self.kind, self.name)
    }
}

impl From<Address> for String {
    fn from(a: Address) -> String {
        a.to_string()
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
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
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

/// Splits a string into literal text and references.
pub fn parse_template(s: &str) -> Result<Vec<Segment>, String> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        lit.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if let Some(after) = tail.strip_prefix("$${") {
            lit.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let Some(end) = after.find('}') else {
                return Err("unterminated reference: `${` without a closing `}`".into());
            };
            let reference = parse_reference(&after[..end])?;
            if !lit.is_empty() {
                out.push(Segment::Literal(std::mem::take(&mut lit)));
            }
            out.push(Segment::Ref(reference));
            rest = &after[end + 1..];
        } else {
            lit.push('$');
            rest = &tail[1..];
        }
    }
    lit.push_str(rest);
    if !lit.is_empty() {
        out.push(Segment::Literal(lit));
    }
    Ok(out)
}

fn parse_reference(body: &str) -> Result<Reference, String> {
    let body = body.trim();
    let bad = || {
        format!(
            "`${{{body}}}` is not a reference: write `${{provider.kind.name.attribute}}`, \
             optionally with an index like `[0]`"
        )
    };
    let (path, index) = match body.find('[') {
        Some(open) => {
            let idx = body[open..]
                .strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .ok_or_else(bad)?;
            let n: usize = idx.trim().parse().map_err(|_| bad())?;
            (&body[..open], Some(n))
        }
        None => (body, None),
    };
    let parts: Vec<&str> = path.split('.').collect();
    match parts.as_slice() {
        [p, k, n, a] if [p, k, n, a].iter().all(|x| is_name(x)) => Ok(Reference {
            address: Address::new(p, k, n),
            attribute: (*a).to_string(),
            index,
        }),
        _ => Err(bad()),
    }
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
    fn malformed_references_are_errors() {
        assert!(parse_template("${digitalocean.vpc.main").is_err());
        assert!(parse_template("${digitalocean.vpc}").is_err());
        assert!(parse_template("${a.b.c.d[x]}").is_err());
    }
}
