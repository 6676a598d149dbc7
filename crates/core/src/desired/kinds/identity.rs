//! What makes two objects of a kind the same cloud object, and the other per-kind rules the
//! planner reads without knowing any kind: how a replacement proceeds, which secret outputs
//! the cloud never gives back, which expire, which fields the cloud compares ignoring case.
//! Each kind states every rule in its `KindInfo::RULES` (no defaults, so a new kind cannot
//! inherit a rule by accident); this module holds the types and the generic readers.

use std::sync::OnceLock;

use serde_json::{Map, Value};

use super::Kind;
use crate::desired::schema::{Change as Policy, FieldInfo, Shape};

/// How a key field's text is compared when objects are matched by natural key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// As written.
    Exact,
    /// Upper-cased (GitHub stores secret and variable names upper-case).
    Upper,
    /// Lower-cased (GitHub matches repositories case-insensitively).
    Lower,
}

/// One field of a kind's natural key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyField {
    /// The field name.
    pub name: &'static str,
    /// How its text is compared.
    pub case: Case,
}

/// A key field compared as written.
pub const fn exact(name: &'static str) -> KeyField {
    KeyField {
        name,
        case: Case::Exact,
    }
}

/// A key field compared upper-cased.
pub const fn upper(name: &'static str) -> KeyField {
    KeyField {
        name,
        case: Case::Upper,
    }
}

/// A key field compared lower-cased.
pub const fn lower(name: &'static str) -> KeyField {
    KeyField {
        name,
        case: Case::Lower,
    }
}

/// How a replacement of an object of a kind proceeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replacement {
    /// Nothing unique stops two objects existing side by side for a moment: the new one is
    /// created first, then the old one deleted.
    CreateBeforeDestroy,
    /// The name is unique in the account (or the key fields are the identity): the old one
    /// goes first.
    DestroyFirst,
    /// The object is kept and the provider renews a part of it (an SMTP user gets a new
    /// access key, a secret a new generated value), unless one of these identity fields
    /// forces the replacement: then a new object is made, the old one first.
    InPlaceUnless(&'static [&'static str]),
}

/// How one replacement goes, given the fields that force it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// The object stays; the provider renews the part that forced it.
    InPlace,
    /// The new object first, then the old one deleted.
    CreateFirst,
    /// The old object deleted first.
    DestroyFirst,
}

impl Replacement {
    /// The order of a replacement forced by these fields.
    pub fn order<'f>(self, forced: impl IntoIterator<Item = &'f str>) -> Order {
        match self {
            Replacement::CreateBeforeDestroy => Order::CreateFirst,
            Replacement::DestroyFirst => Order::DestroyFirst,
            Replacement::InPlaceUnless(fields) => {
                if forced.into_iter().any(|f| fields.contains(&f)) {
                    Order::DestroyFirst
                } else {
                    Order::InPlace
                }
            }
        }
    }

    /// True when the new object is made before the old one goes.
    pub fn creates_first<'f>(self, forced: impl IntoIterator<Item = &'f str>) -> bool {
        self.order(forced) == Order::CreateFirst
    }
}

/// A secret output that expires, and is written to its consumers again before it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expiry {
    /// The output (`kubeconfig`).
    pub output: &'static str,
    /// The producer's field that sets its lifetime (a duration), if set.
    pub lifetime_field: &'static str,
    /// The lifetime when that field is unset, in seconds.
    pub default_seconds: u64,
}

/// The rules a kind declares for the planner. Every field is stated by every kind.
#[derive(Clone, Copy, Debug)]
pub struct KindRules {
    /// The fields that identify the cloud object, in the order a natural key joins them.
    pub key: &'static [KeyField],
    /// Fields the cloud compares ignoring ASCII case: a difference of case alone is no drift.
    pub ignore_case: &'static [&'static str],
    /// How a replacement proceeds.
    pub replacement: Replacement,
    /// Secret outputs the cloud keeps no copy of: they exist only in the apply that creates
    /// (or rotates) the object.
    pub unrecoverable: &'static [&'static str],
    /// Secret outputs that expire.
    pub expiring: &'static [Expiry],
    /// True when objects of the kind carry the ledger's lineage marker (see
    /// [`Kind::carries_lineage`]).
    pub carries_lineage: bool,
}

/// The separator between key fields in a natural key.
pub const KEY_SEPARATOR: char = '\u{1f}';

impl Kind {
    /// Fields of the kind that identify its cloud object.
    pub fn key_fields(self) -> &'static [&'static str] {
        &kind_fields(self).key
    }

    /// How a replacement proceeds.
    pub fn replacement(self) -> Replacement {
        self.rules().replacement
    }

    /// True when the cloud never gives `output` back (see [`KindRules::unrecoverable`]).
    pub fn unrecoverable(self, output: &str) -> Option<&'static str> {
        self.rules()
            .unrecoverable
            .iter()
            .copied()
            .find(|o| *o == output)
    }

    /// The expiry rule of a secret output, if it expires.
    pub fn expiry(self, output: &str) -> Option<&'static Expiry> {
        self.rules().expiring.iter().find(|e| e.output == output)
    }

    /// True when the cloud compares the top-level `field` ignoring ASCII case.
    pub fn ignores_case(self, field: &str) -> bool {
        self.rules().ignore_case.contains(&field)
    }

    /// The natural key of an object from its fields; `None` when a key field is unknown.
    pub fn natural_key(self, fields: &Map<String, Value>) -> Option<String> {
        self.natural_key_by(|f| fields.get(f))
    }

    /// The natural key from a field reader: key fields joined by [`KEY_SEPARATOR`], each in
    /// its [`Case`]; an absent field is empty; `None` when a field holds a reference.
    pub fn natural_key_by<'v>(self, get: impl Fn(&str) -> Option<&'v Value>) -> Option<String> {
        let mut parts = Vec::new();
        for f in self.rules().key {
            let text = match get(f.name) {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) if s.contains("${") => return None,
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
            };
            parts.push(match f.case {
                Case::Exact => text,
                Case::Upper => text.to_ascii_uppercase(),
                Case::Lower => text.to_ascii_lowercase(),
            });
        }
        Some(parts.join(&KEY_SEPARATOR.to_string()))
    }

    /// The fields compared with the cloud: not secret, not local.
    pub fn compared_fields(self) -> &'static [FieldInfo] {
        &kind_fields(self).compared
    }

    /// The secret fields of the kind: secret sources, and tables of them (whose values a
    /// resource names as `field.key`: [`crate::desired::Spec::secret_sources`]).
    pub fn secret_fields(self) -> &'static [&'static str] {
        &kind_fields(self).secret
    }
}

/// A kind's fields as the planner sorts them, computed once per process.
struct KindFields {
    key: Vec<&'static str>,
    compared: Vec<FieldInfo>,
    secret: Vec<&'static str>,
}

fn kind_fields(kind: Kind) -> &'static KindFields {
    static TABLE: OnceLock<Vec<KindFields>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        Kind::ALL
            .iter()
            .map(|k| {
                let all = k.fields();
                // A secret source, or a table of them (a `kubernetes.secret`'s `data`): never
                // compared with the cloud.
                let is_secret = |f: &FieldInfo| match &f.shape {
                    Shape::Secret { .. } => true,
                    Shape::Map(inner) => matches!(**inner, Shape::Secret { .. }),
                    _ => false,
                };
                KindFields {
                    key: k.rules().key.iter().map(|f| f.name).collect(),
                    secret: all
                        .iter()
                        .filter(|f| is_secret(f))
                        .map(|f| f.name)
                        .collect(),
                    compared: all
                        .into_iter()
                        .filter(|f| f.change != Policy::Local && !is_secret(f))
                        .collect(),
                }
            })
            .collect()
    });
    &table[kind.index()]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::desired::schema::Decode;
    use crate::desired::values::{GhEnvironment, GhName, Repository};

    fn fields(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn every_key_field_and_ignore_case_field_is_a_field_of_its_kind() {
        for kind in Kind::ALL {
            let names: Vec<&str> = kind.fields().iter().map(|f| f.name).collect();
            for f in kind.key_fields().iter().chain(kind.rules().ignore_case) {
                assert!(names.contains(f), "{kind}: `{f}` is not a field");
            }
            assert!(!kind.key_fields().is_empty(), "{kind} has no key");
        }
    }

    #[test]
    fn fields_compared_ignoring_case_are_exactly_those_of_github_name_formats() {
        // The cloud's case rule follows the value's type: a kind that declares otherwise
        // would diff `KUBECONFIG` against `kubeconfig`, or hide a real rename.
        let insensitive = [GhName::shape(), Repository::shape(), GhEnvironment::shape()];
        for kind in Kind::ALL {
            for f in kind.fields() {
                let shape = match &f.shape {
                    Shape::Optional(inner) => inner.as_ref(),
                    s => s,
                };
                let typed = insensitive
                    .iter()
                    .any(|s| matches!((s, shape), (Shape::Format(a), Shape::Format(b)) if a == b));
                assert_eq!(kind.ignores_case(f.name), typed, "{kind}.{}", f.name);
            }
        }
    }

    #[test]
    fn github_keys_upper_case_names_and_lower_case_repositories() {
        let key = Kind::GhActionsSecret.natural_key(&fields(
            json!({"repository": "Org/Repo", "name": "kubeconfig"}),
        ));
        assert_eq!(key.as_deref(), Some("org/repo\u{1f}KUBECONFIG"));
        // An environment keeps its case in the key; a deploy key's title too.
        let key = Kind::GhEnvironmentSecret.natural_key(&fields(
            json!({"repository": "o/r", "environment": "Prod", "name": "x"}),
        ));
        assert_eq!(key.as_deref(), Some("o/r\u{1f}Prod\u{1f}X"));
        let key =
            Kind::GhDeployKey.natural_key(&fields(json!({"repository": "O/R", "title": "Flux"})));
        assert_eq!(key.as_deref(), Some("o/r\u{1f}Flux"));
    }

    #[test]
    fn a_natural_key_joins_its_fields_in_order_and_leaves_absent_ones_empty() {
        let record =
            fields(json!({"domain": "example.com", "type": "TXT", "name": "@", "ttl": 30}));
        assert_eq!(
            Kind::DoDomainRecord.natural_key(&record).as_deref(),
            Some("example.com\u{1f}TXT\u{1f}@\u{1f}")
        );
        let variable = fields(json!({"repository": "o/r", "environment": null, "name": "v"}));
        assert_eq!(
            Kind::GhActionsVariable.natural_key(&variable).as_deref(),
            Some("o/r\u{1f}\u{1f}V")
        );
    }

    #[test]
    fn a_key_field_holding_a_reference_makes_no_key() {
        let f = fields(json!({"origin": "${aws.s3_bucket.b.bucket_domain_name}"}));
        assert_eq!(Kind::DoCdnEndpoint.natural_key(&f), None);
    }

    #[test]
    fn an_smtp_user_rotates_its_key_first_unless_renamed() {
        let r = Kind::AwsIamSmtpUser.replacement();
        assert_eq!(r.order(["tags"]), Order::InPlace);
        assert_eq!(r.order([]), Order::InPlace);
        // The password is per key and region: a new region is a new key, not a new user.
        assert_eq!(r.order(["region"]), Order::InPlace);
        assert_eq!(r.order(["name"]), Order::DestroyFirst);
        assert_eq!(r.order(["path"]), Order::DestroyFirst);
        let s = Kind::AwsSecretsmanagerSecret.replacement();
        assert_eq!(s.order(["value"]), Order::InPlace);
        assert_eq!(s.order(["name"]), Order::DestroyFirst);
        assert!(Kind::GhDeployKey.replacement().creates_first(["title"]));
        assert!(!Kind::DoVpc.replacement().creates_first([]));
    }

    #[test]
    fn unrecoverable_outputs_are_the_ones_the_clouds_return_once() {
        let all: Vec<(Kind, &str)> = Kind::ALL
            .iter()
            .flat_map(|k| k.rules().unrecoverable.iter().map(move |o| (*k, *o)))
            .collect();
        assert_eq!(
            all,
            [
                (Kind::DoSpacesKey, "secret_key"),
                (Kind::AwsIamSmtpUser, "smtp_password"),
                (Kind::GhDeployKey, "private_key"),
            ]
        );
        assert_eq!(Kind::GhDeployKey.unrecoverable("public_key"), None);
        for (kind, output) in all {
            assert!(
                kind.exports().iter().any(|e| e.name == output && e.secret),
                "{kind}.{output} must be a secret export"
            );
        }
    }

    #[test]
    fn a_kubeconfig_expires_after_its_cluster_field_or_a_week() {
        let e = Kind::DoKubernetesCluster
            .expiry("kubeconfig")
            .expect("expires");
        assert_eq!(
            (e.lifetime_field, e.default_seconds),
            ("kubeconfig_expiry", 7 * 86_400)
        );
        assert!(
            Kind::ALL
                .iter()
                .filter(|k| !k.rules().expiring.is_empty())
                .count()
                == 1
        );
    }

    #[test]
    fn secret_fields_are_not_compared() {
        assert_eq!(Kind::GhActionsSecret.secret_fields(), ["value"]);
        let compared: Vec<&str> = Kind::GhActionsSecret
            .compared_fields()
            .iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(compared, ["repository", "name"]);
        // `rotate_after` is local: never compared with the cloud.
        assert!(
            Kind::GhDeployKey
                .compared_fields()
                .iter()
                .all(|f| f.name != "rotate_after")
        );
    }
}
