//! Reference resolution: the values a desired resource asks for, with every `${...}` it holds
//! filled in from what is known (live attributes over the ledger's record, or the
//! executor's results), or marked known only after apply.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{Map, Value};

use crate::desired::kinds::Kind;
use crate::desired::refs::{Part, RefParts, may_hold_reference, parse_parts, sole_reference};
use crate::desired::{Address, Resource};

/// Attribute values a reference may read, per address; `None` = known after apply.
pub type Attributes = BTreeMap<Address, Option<BTreeMap<String, Value>>>;

/// Where references find the attribute values they read.
pub trait AttributeSource {
    /// The value of the referenced attribute (the whole list when it is indexed); `None`
    /// when it is not known before apply.
    fn attribute(&self, reference: &RefParts<'_>) -> Option<&Value>;
}

impl AttributeSource for Attributes {
    fn attribute(&self, r: &RefParts<'_>) -> Option<&Value> {
        self.get(&Address::parse(r.address).ok()?)?
            .as_ref()?
            .get(r.attribute)
    }
}

/// A value after resolving references: known, or decided by this apply.
#[derive(Clone, Debug, PartialEq)]
pub enum Resolved<'v> {
    /// Fully known: borrowed from the desired state when it holds no reference.
    Known(Cow<'v, Value>),
    /// Holds a reference to something created in this apply.
    Unknown,
}

/// Resolves every `${...}` in a JSON value. A value without references is borrowed, not
/// copied: most fields of most resources are plain.
pub fn resolve<'v, A: AttributeSource + ?Sized>(value: &'v Value, attrs: &A) -> Resolved<'v> {
    if !holds_template(value) {
        return Resolved::Known(Cow::Borrowed(value));
    }
    match resolve_owned(value, attrs) {
        Some(v) => Resolved::Known(Cow::Owned(v)),
        None => Resolved::Unknown,
    }
}

fn holds_template(value: &Value) -> bool {
    match value {
        Value::String(s) => may_hold_reference(s),
        Value::Array(items) => items.iter().any(holds_template),
        Value::Object(map) => map.values().any(holds_template),
        _ => false,
    }
}

/// The value with its references filled in; `None` when one is not known before apply.
fn resolve_owned<A: AttributeSource + ?Sized>(value: &Value, attrs: &A) -> Option<Value> {
    match value {
        Value::String(s) if may_hold_reference(s) => resolve_str(s, attrs),
        Value::Array(items) => items
            .iter()
            .map(|i| resolve_owned(i, attrs))
            .collect::<Option<Vec<_>>>()
            .map(Value::Array),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| Some((k.clone(), resolve_owned(v, attrs)?)))
            .collect::<Option<Map<_, _>>>()
            .map(Value::Object),
        other => Some(other.clone()),
    }
}

fn lookup<A: AttributeSource + ?Sized>(r: &RefParts<'_>, attrs: &A) -> Option<Value> {
    let v = attrs.attribute(r)?;
    match r.index {
        Some(i) => v.as_array()?.get(i).cloned(),
        None => Some(v.clone()),
    }
}

fn resolve_str<A: AttributeSource + ?Sized>(s: &str, attrs: &A) -> Option<Value> {
    if let Some(r) = sole_reference(s) {
        return lookup(&r, attrs);
    }
    let Ok(parts) = parse_parts(s) else {
        return Some(Value::String(s.into()));
    };
    if let [Part::Ref(r)] = parts.as_slice() {
        return lookup(r, attrs);
    }
    let mut out = String::new();
    for part in parts {
        match part {
            Part::Literal(l) => out.push_str(&l),
            Part::Ref(r) => match lookup(&r, attrs)? {
                Value::String(v) => out.push_str(&v),
                v => out.push_str(&v.to_string()),
            },
        }
    }
    Some(Value::String(out))
}

/// The desired values of the compared fields, with references resolved where possible.
/// Unset optional fields are left out: the cloud's default is accepted.
pub fn desired_fields<'r, A: AttributeSource + ?Sized>(
    resource: &'r Resource,
    attrs: &A,
) -> BTreeMap<&'static str, Resolved<'r>> {
    resource
        .kind()
        .compared_fields()
        .iter()
        .zip(wanted(resource.kind(), &resource.spec_json, attrs))
        .filter_map(|(f, v)| Some((f.name, v?)))
        .collect()
}

/// The desired values of a kind's compared fields, in the order of
/// [`Kind::compared_fields`]; `None` where the field is unset.
pub(crate) fn wanted<'v, A: AttributeSource + ?Sized>(
    kind: Kind,
    spec: &'v Value,
    attrs: &A,
) -> Vec<Option<Resolved<'v>>> {
    let mut out: Vec<Option<Resolved<'v>>> =
        (0..kind.compared_fields().len()).map(|_| None).collect();
    let Some(spec) = spec.as_object() else {
        return out;
    };
    // Both sides are sorted by name (see `serde_json_maps_are_sorted`).
    let mut names = by_name(kind).iter().peekable();
    for (key, value) in spec {
        while names.next_if(|(n, _)| *n < key.as_str()).is_some() {}
        if let Some((_, i)) = names.next_if(|(n, _)| *n == key.as_str())
            && !value.is_null()
        {
            out[*i] = Some(resolve(value, attrs));
        }
    }
    out
}

/// Known desired fields as a JSON object (unknown ones left out).
pub fn known_fields(fields: &BTreeMap<&'static str, Resolved<'_>>) -> Map<String, Value> {
    fields
        .iter()
        .filter_map(|(k, v)| match v {
            Resolved::Known(v) => Some((k.to_string(), v.clone().into_owned())),
            Resolved::Unknown => None,
        })
        .collect()
}

/// A kind's compared fields by name, with their positions in [`Kind::compared_fields`]:
/// specs are JSON objects with sorted keys, so one merge pass finds every compared field
/// without a lookup per field. Computed once per process.
fn by_name(kind: Kind) -> &'static [(&'static str, usize)] {
    static TABLE: OnceLock<Vec<Vec<(&'static str, usize)>>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        Kind::ALL
            .iter()
            .map(|k| {
                let mut by_name: Vec<(&str, usize)> = k
                    .compared_fields()
                    .iter()
                    .enumerate()
                    .map(|(i, f)| (f.name, i))
                    .collect();
                by_name.sort();
                by_name
            })
            .collect()
    });
    &table[kind.index()]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn attrs() -> Attributes {
        let mut a = Attributes::new();
        let vpc = BTreeMap::from([
            ("id".to_string(), json!(42)),
            ("name".to_string(), json!("prod")),
            ("tokens".to_string(), json!(["a", "b", "c"])),
        ]);
        a.insert(Address::new("digitalocean", "vpc", "main"), Some(vpc));
        a.insert(Address::new("digitalocean", "vpc", "new"), None);
        a
    }

    fn known(v: Resolved<'_>) -> Value {
        match v {
            Resolved::Known(v) => v.into_owned(),
            Resolved::Unknown => panic!("unknown"),
        }
    }

    #[test]
    fn a_value_without_references_is_borrowed_not_copied() {
        let v = json!({"name": "prod", "ports": [80, 443]});
        assert!(matches!(
            resolve(&v, &attrs()),
            Resolved::Known(Cow::Borrowed(_))
        ));
    }

    #[test]
    fn a_sole_reference_keeps_the_attribute_type() {
        let v = json!("${digitalocean.vpc.main.id}");
        assert_eq!(known(resolve(&v, &attrs())), json!(42));
    }

    #[test]
    fn references_inside_text_are_interpolated_and_indexes_read_one_element() {
        let v = json!([
            "${digitalocean.vpc.main.name}-${digitalocean.vpc.main.id}",
            "${digitalocean.vpc.main.tokens[1]}._domainkey"
        ]);
        assert_eq!(
            known(resolve(&v, &attrs())),
            json!(["prod-42", "b._domainkey"])
        );
    }

    #[test]
    fn a_reference_to_something_made_by_this_apply_is_unknown_wherever_it_sits() {
        let a = attrs();
        assert_eq!(
            resolve(&json!("${digitalocean.vpc.new.id}"), &a),
            Resolved::Unknown
        );
        let nested = json!({"rules": [{"vpc": "x-${digitalocean.vpc.new.id}"}]});
        assert_eq!(resolve(&nested, &a), Resolved::Unknown);
        // An attribute the object does not export, or an index past the end, is not known.
        assert_eq!(
            resolve(&json!("${digitalocean.vpc.main.nope}"), &a),
            Resolved::Unknown
        );
        assert_eq!(
            resolve(&json!("${digitalocean.vpc.main.tokens[9]}"), &a),
            Resolved::Unknown
        );
    }

    #[test]
    fn desired_fields_leave_out_unset_secret_and_local_fields() {
        let d = crate::plan::planner::testing::desired(
            "[github.actions_variable.v]\nrepository = \"o/r\"\nname = \"region\"\nvalue = \"${digitalocean.vpc.main.name}\"\n\n[digitalocean.vpc.main]\nname = \"prod\"\nregion = \"nyc3\"\n\n[github.actions_secret.s]\nrepository = \"o/r\"\nname = \"token\"\nvalue = { env = \"TOKEN\" }\n",
        );
        let v = &d.resources[&Address::new("github", "actions_variable", "v")];
        let fields = desired_fields(v, &attrs());
        let names: Vec<&str> = fields.keys().copied().collect();
        assert_eq!(
            names,
            ["name", "repository", "value"],
            "environment is unset"
        );
        assert_eq!(known(fields["value"].clone()), json!("prod"));
        let s = &d.resources[&Address::new("github", "actions_secret", "s")];
        assert!(!desired_fields(s, &attrs()).contains_key("value"), "secret");
    }

    #[test]
    fn known_fields_drop_what_is_known_only_after_apply() {
        let a = json!("a");
        let fields = BTreeMap::from([
            ("name", Resolved::Known(Cow::Borrowed(&a))),
            ("vpc_uuid", Resolved::Unknown),
        ]);
        assert_eq!(Value::Object(known_fields(&fields)), json!({"name": "a"}));
    }

    #[test]
    fn wanted_follows_compared_fields_order_whatever_the_spec_order() {
        let spec = json!({"zzz": 1, "region": "nyc3", "name": "prod", "description": null});
        let got = wanted(Kind::DoVpc, &spec, &Attributes::new());
        for (f, v) in Kind::DoVpc.compared_fields().iter().zip(&got) {
            match f.name {
                "name" => assert_eq!(v.clone().map(known), Some(json!("prod"))),
                "region" => assert_eq!(v.clone().map(known), Some(json!("nyc3"))),
                _ => assert!(v.is_none(), "{} is unset or null", f.name),
            }
        }
    }
}
