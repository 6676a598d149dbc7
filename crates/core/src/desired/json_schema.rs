//! A JSON Schema of the whole desired-state language, for editors: Taplo and the "Even
//! Better TOML" extension use it for completion, hover and inline errors
//! (`provisioner schema`; docs/desired-state.md, "Editors").
//!
//! It is generated from the same declarations the decoder and the reference docs come from
//! ([`Settings::fields`], [`Lifecycle::fields`], [`Kind::fields`]), so it cannot drift from
//! them. Draft-07 (`definitions`, no `$defs`): the dialect Taplo's validator supports best.
//!
//! The schema is a sound over-approximation of `validate` where JSON Schema cannot say more:
//! what it refuses, `validate` refuses (unknown providers, kinds and fields; wrong types;
//! enum values; integer bounds; missing required fields; a plain string in a secret field),
//! but checks across fields and files (references that name nothing, cycles, formats such
//! as CIDRs and slugs, which it describes but does not check) are `validate`'s alone.

use serde_json::{Map, Value, json};

use super::kinds::{Kind, PROVIDERS};
use super::model::{Lifecycle, Settings};
use super::schema::{FieldInfo, Shape};
use super::values::Generate;

/// The draft the schema is written in.
pub const DRAFT: &str = "http://json-schema.org/draft-07/schema#";

/// A resource name: a letter or `_`, then letters, digits, `_` and `-` (`refs::is_name`).
const NAME_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_-]*$";

/// A whole-string reference, `${provider.kind.name.attribute}` with an optional index: the
/// only string a secret field accepts (`values::decode_secret`).
const WHOLE_REF_PATTERN: &str =
    r"^\$\{[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*){3}(\[[0-9]+\])?\}$";

/// An address, `provider.kind.name`, with a module path before it and a `for_each` key
/// after it where they apply (`[[moved]]` and `depends_on`).
const ADDRESS_PATTERN: &str = r#"^(module\.[A-Za-z_][A-Za-z0-9_-]*(\["[A-Za-z0-9_.:/@+-]+"\])?\.)*[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*){2}(\["[A-Za-z0-9_.:/@+-]+"\])?$"#;

/// A value written as one substitution, `"${var.NAME}"`, `"${each.value}"`,
/// `"${module.NAME.OUTPUT}"`: what any field accepts in place of a value of its own type
/// (`expand` checks the type once the value is known).
const SUBSTITUTION_PATTERN: &str = r"^\$\{\s*(var|each|module|environment)\.[^{}]*\}$";

/// The JSON Schema of the desired-state language.
pub fn json_schema() -> Value {
    let mut providers = Map::new();
    for &provider in PROVIDERS {
        let mut kinds = Map::new();
        for kind in Kind::ALL.iter().filter(|k| k.provider() == provider) {
            kinds.insert(
                kind.name().to_string(),
                json!({
                    "type": "object",
                    "description": format!("`{kind}` resources by name. {}", kind.doc()),
                    "propertyNames": { "pattern": NAME_PATTERN },
                    "additionalProperties": resource(*kind),
                }),
            );
        }
        providers.insert(
            provider.to_string(),
            json!({
                "type": "object",
                "description": format!("{provider} resources, by kind"),
                "properties": kinds,
                "additionalProperties": false,
            }),
        );
    }
    providers.insert(
        "settings".into(),
        with_description(
            block(&Settings::fields()),
            "How the daemon behaves; every setting has a default.",
        ),
    );
    providers.insert(
        "moved".into(),
        json!({
            "type": "array",
            "description": "Renamed resources: the ledger entry of `from` becomes `to` (as Terraform's `moved` blocks).",
            "items": {
                "type": "object",
                "properties": {
                    "from": { "type": "string", "pattern": ADDRESS_PATTERN, "description": "The old address (no longer in the desired state)." },
                    "to": { "type": "string", "pattern": ADDRESS_PATTERN, "description": "The new address, of the same kind." },
                },
                "required": ["from", "to"],
                "additionalProperties": false,
            },
        }),
    );
    providers.insert("variable".into(), variables());
    providers.insert("output".into(), outputs());
    providers.insert("module".into(), modules());
    providers.insert(
        "variables".into(),
        json!({
            "type": "object",
            "description": "Only in an environment's file (`environments/NAME.toml`): the root module's variable values for that environment, by name.",
        }),
    );
    providers.insert(
        "environment".into(),
        json!({
            "type": "object",
            "description": "Only in an environment's file (`environments/NAME.toml`): about the environment.",
            "properties": {
                "ledger": { "type": "string", "description": "Where this environment's ledger lives (`s3://bucket/prefix` or `file://path`); by default the ledger location with `/env/NAME` appended." },
                "description": { "type": "string", "description": "What the environment is for." },
            },
            "additionalProperties": false,
        }),
    );
    json!({
        "$schema": DRAFT,
        "$id": "https://provisioner.invalid/desired-state.schema.json",
        "title": "provisioner desired state",
        "description": "A file of provisioner's desired state: `[settings]`, `[[moved]]` and resources `[provider.kind.name]` (docs/desired-state.md).",
        "type": "object",
        "properties": providers,
        "additionalProperties": false,
        "definitions": {
            "lifecycle": with_description(block(&Lifecycle::fields()), "Per-resource lifecycle options."),
            "depends_on": {
                "type": "array",
                "description": "Resources to create first where no reference says so: addresses `provider.kind.name`.",
                "items": { "type": "string", "pattern": ADDRESS_PATTERN },
            },
        },
    })
}

/// One resource of `kind`: its fields, `lifecycle` and `depends_on`.
fn resource(kind: Kind) -> Value {
    let mut v = block(&kind.fields());
    let obj = v.as_object_mut().expect("a block is an object");
    let props = obj
        .get_mut("properties")
        .and_then(Value::as_object_mut)
        .expect("a block has properties");
    props.insert(
        "lifecycle".into(),
        or_substitution(json!({ "$ref": "#/definitions/lifecycle" })),
    );
    props.insert(
        "depends_on".into(),
        or_substitution(json!({ "$ref": "#/definitions/depends_on" })),
    );
    props.insert("for_each".into(), for_each());
    obj.insert("description".into(), Value::String(kind.doc().into()));
    v
}

/// `for_each`: a list of keys, a table, or one substitution that gives either.
fn for_each() -> Value {
    json!({
        "description": "One instance per element: a list of strings (the keys) or a table (keys and `${each.value}`), addressed `name[\"key\"]`; inside, `${each.key}` and `${each.value}`.",
        "anyOf": [
            { "type": "array", "items": { "type": "string", "pattern": r"^[A-Za-z0-9_.:/@+-]{1,128}$" } },
            { "type": "object", "propertyNames": { "pattern": r"^[A-Za-z0-9_.:/@+-]{1,128}$" } },
            substitution(),
        ],
    })
}

fn substitution() -> Value {
    json!({ "type": "string", "pattern": SUBSTITUTION_PATTERN, "description": "A variable, `each`, or a module's output, alone in the string." })
}

/// `[variable.NAME]` declarations.
fn variables() -> Value {
    json!({
        "type": "object",
        "description": "Variables of this module, by name, read as `${var.NAME}`.",
        "propertyNames": { "pattern": NAME_PATTERN },
        "additionalProperties": {
            "type": "object",
            "properties": {
                "type": { "type": "string", "pattern": r"^(string|number|bool|any|secret|list|map|(list|map)\((string|number|bool|any)\))$", "description": "string, number, bool, any, secret (a secret source), list(T) or map(T)." },
                "default": { "description": "The value when none is given." },
                "description": { "type": "string" },
                "allowed": { "type": "array", "description": "The values allowed." },
                "pattern": { "type": "string", "description": "A regular expression the whole string must match." },
                "min": { "type": "number", "description": "Smallest number allowed." },
                "max": { "type": "number", "description": "Largest number allowed." },
                "error_message": { "type": "string", "description": "Said when a check fails." },
            },
            "additionalProperties": false,
        },
    })
}

/// `[output.NAME]` declarations.
fn outputs() -> Value {
    json!({
        "type": "object",
        "description": "Outputs of this module, by name: the root's are recorded in the ledger (`provisioner output`), a module's are read by its caller as `${module.NAME.OUTPUT}`.",
        "propertyNames": { "pattern": NAME_PATTERN },
        "additionalProperties": {
            "type": "object",
            "properties": {
                "value": { "description": "The value; references to resources are filled in from the ledger." },
                "description": { "type": "string" },
                "sensitive": { "type": "boolean", "default": false, "description": "Masked by `provisioner output` unless named." },
            },
            "required": ["value"],
            "additionalProperties": false,
        },
    })
}

/// `[module.NAME]` calls.
fn modules() -> Value {
    json!({
        "type": "object",
        "description": "Module calls, by name: the folder `source` (below `modules/`) instantiated with the other keys as its variables; its resources are addressed `module.NAME.provider.kind.name`.",
        "propertyNames": { "pattern": NAME_PATTERN },
        "additionalProperties": {
            "type": "object",
            "properties": {
                "source": { "type": "string", "description": "The module's folder, relative to this file, below the desired state's `modules/`." },
                "for_each": for_each(),
            },
            "required": ["source"],
        },
    })
}

fn with_description(mut v: Value, text: &str) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.insert("description".into(), Value::String(text.into()));
    }
    v
}

/// A table with fixed fields.
fn block(fields: &[FieldInfo]) -> Value {
    let mut props = Map::new();
    let mut required = Vec::new();
    for f in fields {
        props.insert(f.name.to_string(), field(f));
        if f.required {
            required.push(Value::String(f.name.into()));
        }
    }
    let mut out = json!({
        "type": "object",
        "properties": props,
        "additionalProperties": false,
    });
    if !required.is_empty() {
        out["required"] = Value::Array(required.clone());
        // Taplo fills these in when it completes a new table.
        out["x-taplo"] = json!({ "initKeys": required });
    }
    out
}

/// One field: its shape, documentation, default and bounds.
fn field(f: &FieldInfo) -> Value {
    let mut v = shape(&f.shape);
    let o = v.as_object_mut().expect("every shape is an object");
    let mut doc = f.doc.to_string();
    if let Shape::Format(what) = strip_optional(&f.shape) {
        doc.push_str(&format!(" Format: {what}."));
    }
    doc.push_str(&format!(
        " On change: {}.",
        f.change
            .describe()
            .replace("; no API call", " (no API call)")
    ));
    if f.required {
        doc.push_str(" Required.");
    }
    o.insert("description".into(), Value::String(doc));
    if let Some(d) = f.default.and_then(default_json) {
        o.insert("default".into(), d);
    }
    if let Some((lo, hi)) = f.range {
        o.insert("minimum".into(), lo.into());
        o.insert("maximum".into(), hi.into());
    }
    v
}

fn strip_optional(s: &Shape) -> &Shape {
    match s {
        Shape::Optional(inner) => strip_optional(inner),
        other => other,
    }
}

/// A default as `block!` writes it (TOML text: `"5m"`, `1800`, `true`), as JSON.
fn default_json(text: &str) -> Option<Value> {
    let table: toml::Table = toml::from_str(&format!("v = {text}")).ok()?;
    serde_json::to_value(table.get("v")?).ok()
}

fn shape(s: &Shape) -> Value {
    match s {
        Shape::String | Shape::Format(_) => json!({ "type": "string" }),
        Shape::Integer => or_substitution(json!({ "type": "integer" })),
        Shape::Float => or_substitution(json!({ "type": "number" })),
        Shape::Bool => or_substitution(json!({ "type": "boolean" })),
        Shape::Enum(values) => or_substitution(json!({ "type": "string", "enum": values })),
        Shape::Secret { generate } => secret(*generate),
        Shape::List(inner) | Shape::Set(inner) => {
            or_substitution(json!({ "type": "array", "items": shape(inner) }))
        }
        Shape::Map(inner) => {
            or_substitution(json!({ "type": "object", "additionalProperties": shape(inner) }))
        }
        Shape::Block(_, fields) => or_substitution(block(fields)),
        Shape::Optional(inner) => shape(inner),
    }
}

/// `v`, or a substitution that gives one (`"${var.nodes}"`).
fn or_substitution(v: Value) -> Value {
    json!({ "anyOf": [v, substitution()] })
}

/// A secret source: `{ env = … }`, `{ file = … }`, a whole reference to a secret output, or
/// (where the kind keeps the value) `{ generate = … }` — never a plain string.
fn secret(generate: bool) -> Value {
    let mut forms = vec![
        json!({
            "type": "string",
            "pattern": WHOLE_REF_PATTERN,
            "description": "Another resource's secret output, alone in the string: \"${aws.iam_smtp_user.smtp.smtp_password}\". A plain value is never written here.",
        }),
        json!({
            "type": "object",
            "properties": { "env": { "type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$", "description": "The environment variable of the provisioner process holding the value." } },
            "required": ["env"],
            "additionalProperties": false,
        }),
        json!({
            "type": "object",
            "properties": { "file": { "type": "string", "minLength": 1, "description": "A file holding the value; a relative path is relative to this TOML file." } },
            "required": ["file"],
            "additionalProperties": false,
        }),
    ];
    if generate {
        let mut g = block(&Generate::fields());
        g["description"] = Value::String(
            "Generated once by provisioner and kept only by the resource itself.".into(),
        );
        forms.push(json!({
            "type": "object",
            "properties": { "generate": g },
            "required": ["generate"],
            "additionalProperties": false,
        }));
    }
    forms.push(substitution());
    json!({ "anyOf": forms })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_become_json_values() {
        assert_eq!(default_json("\"5m\""), Some(json!("5m")));
        assert_eq!(default_json("1800"), Some(json!(1800)));
        assert_eq!(default_json("true"), Some(json!(true)));
    }

    #[test]
    fn every_kind_is_in_the_schema_with_its_required_fields() {
        let s = json_schema();
        for kind in Kind::ALL {
            let r = &s["properties"][kind.provider()]["properties"][kind.name()]["additionalProperties"];
            assert_eq!(r["type"], "object", "{kind}");
            for f in kind.fields() {
                assert!(r["properties"].get(f.name).is_some(), "{kind}.{}", f.name);
                let listed = r["required"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|v| v == f.name));
                assert_eq!(listed, f.required, "{kind}.{}", f.name);
            }
        }
    }
}
