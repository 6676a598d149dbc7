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
        self.get(&Address::new(r.provider, r.kind, r.name))?
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
