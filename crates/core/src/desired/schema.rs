//! The typed model is declared once, with `block!` and `string_enum!`: each declaration yields
//! the Rust struct, a decoder that reports *every* problem with its span and field path, and
//! a [`Shape`] describing each field (type, default, update or replace) for the docs, the
//! planner and the tests that keep the docs complete.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::load::{Raw, RawTable, RawValue};
use super::refs::{self, Reference, Segment};
use super::source::{Diagnostic, Span};

/// What changing a field does to the cloud object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Updated in place by the cloud's update call.
    Update,
    /// The cloud cannot change it: the object is replaced.
    Replace,
    /// Updated in place when it moves forward (a newer version, `false` to `true`); moving
    /// back forces a replacement.
    Upgrade,
    /// A provisioner-side setting that makes no API call by itself.
    Local,
}

// Lower-case spellings used by `block!` declarations (`field: T => update`).
#[allow(non_upper_case_globals, missing_docs)]
impl Change {
    pub const update: Change = Change::Update;
    pub const replace: Change = Change::Replace;
    pub const upgrade: Change = Change::Upgrade;
    pub const local: Change = Change::Local;
}

impl Change {
    /// Words used in docs and plans.
    pub fn describe(self) -> &'static str {
        match self {
            Change::Update => "updates in place",
            Change::Replace => "forces replacement",
            Change::Upgrade => "updates in place forward; backward forces replacement",
            Change::Local => "provisioner setting; no API call",
        }
    }
}

/// The type of a field, as docs and suggestions need it.
#[derive(Clone, Debug)]
pub enum Shape {
    /// Free text (may hold references).
    String,
    /// A whole number.
    Integer,
    /// A number that may have a fraction.
    Float,
    /// `true` or `false`.
    Bool,
    /// A string with a checked format (a CIDR, a region slug, ...).
    Format(&'static str),
    /// One of a fixed set of strings.
    Enum(&'static [&'static str]),
    /// A secret source; `generate` says whether `{ generate = ... }` is allowed.
    Secret {
        /// Whether provisioner may generate the value.
        generate: bool,
    },
    /// A list whose order matters.
    List(Box<Shape>),
    /// A list whose order does not matter: the cloud keeps no order (or its own), so two
    /// lists with the same elements in another order are the same (the Terraform providers'
    /// `TypeSet` fields; see the realism inventory in `docs/testing.md`).
    Set(Box<Shape>),
    /// A table with free keys.
    Map(Box<Shape>),
    /// A table with fixed fields.
    Block(&'static str, Vec<FieldInfo>),
    /// May be left out.
    Optional(Box<Shape>),
}

impl Shape {
    /// Human description: `list of string`, `one of "a", "b"`.
    pub fn describe(&self) -> String {
        match self {
            Shape::String => "string".into(),
            Shape::Integer => "integer".into(),
            Shape::Float => "number".into(),
            Shape::Bool => "boolean".into(),
            Shape::Format(f) => format!("string ({f})"),
            Shape::Enum(v) => {
                let vals: Vec<String> = v.iter().map(|s| format!("`\"{s}\"`")).collect();
                format!("one of {}", vals.join(", "))
            }
            Shape::Secret { generate: true } => {
                "secret source (env, file, reference or generate)".into()
            }
            Shape::Secret { generate: false } => "secret source (env, file or reference)".into(),
            Shape::List(s) => format!("list of {}", s.describe()),
            Shape::Set(s) => format!("list of {} (order does not matter)", s.describe()),
            Shape::Map(s) => format!("table of string to {}", s.describe()),
            Shape::Block(n, _) => format!("table ({n})"),
            Shape::Optional(s) => s.describe(),
        }
    }

    /// The fields of the block this shape is, or holds (through lists, maps and options).
    pub fn block_fields(&self) -> Option<&[FieldInfo]> {
        match self {
            Shape::Block(_, f) => Some(f),
            Shape::List(s) | Shape::Set(s) | Shape::Map(s) | Shape::Optional(s) => s.block_fields(),
            _ => None,
        }
    }

    /// True when the value is a table with free keys (path segments below it are keys).
    pub fn is_map(&self) -> bool {
        match self {
            Shape::Map(_) => true,
            Shape::Optional(s) => s.is_map(),
            _ => false,
        }
    }
}

/// One field of a block.
#[derive(Clone, Debug)]
pub struct FieldInfo {
    /// The TOML key.
    pub name: &'static str,
    /// One-line documentation.
    pub doc: &'static str,
    /// Its type.
    pub shape: Shape,
    /// The default as TOML text, when there is one.
    pub default: Option<&'static str>,
    /// True when it must be given.
    pub required: bool,
    /// What changing it does.
    pub change: Change,
    /// Inclusive bounds for integers.
    pub range: Option<(i64, i64)>,
}

/// A reference met while decoding a field.
#[derive(Clone, Debug)]
pub struct RefUse {
    /// What it points at.
    pub target: Reference,
    /// The string that holds it.
    pub span: Span,
    /// The field path that holds it.
    pub field: String,
    /// True when the field is a secret source (secret outputs may flow there only).
    pub in_secret: bool,
}

/// Decoding context: where we are, what went wrong, which references were seen.
pub struct Cx<'a> {
    /// Problems found so far.
    pub diags: &'a mut Vec<Diagnostic>,
    path: Vec<String>,
    /// References met, in order.
    pub refs: Vec<RefUse>,
    /// Folder of the file being decoded (relative `file` secrets resolve against it).
    pub base_dir: PathBuf,
    in_secret: bool,
}

impl<'a> Cx<'a> {
    /// A context whose field paths start with `root` (an address, or `settings`).
    pub fn new(diags: &'a mut Vec<Diagnostic>, root: &str, base_dir: PathBuf) -> Self {
        Cx {
            diags,
            path: vec![root.to_string()],
            refs: Vec::new(),
            base_dir,
            in_secret: false,
        }
    }

    /// The current field path, dotted.
    pub fn path(&self) -> String {
        let mut out = String::new();
        for seg in &self.path {
            if seg.starts_with('[') || out.is_empty() {
                out.push_str(seg);
            } else {
                out.push('.');
                out.push_str(seg);
            }
        }
        out
    }

    /// Runs `f` one level deeper in the field path.
    pub fn nested<T>(&mut self, seg: impl Into<String>, f: impl FnOnce(&mut Self) -> T) -> T {
        self.path.push(seg.into());
        let out = f(self);
        self.path.pop();
        out
    }

    /// Records a problem at the current field path.
    pub fn error(&mut self, span: Span, message: impl Into<String>) -> &mut Diagnostic {
        let message = message.into();
        // Inside a secret field, any quoted text in a message may be (part of) the secret.
        let message = if self.in_secret {
            redact_quoted(&message)
        } else {
            message
        };
        let d = Diagnostic::at(span, message).field(self.path());
        let d = if self.in_secret { d.redacted() } else { d };
        self.diags.push(d);
        self.diags.last_mut().expect("just pushed")
    }

    /// Runs `f` with secret handling on: no source line is echoed in errors.
    pub fn secret<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        let was = std::mem::replace(&mut self.in_secret, true);
        let out = f(self);
        self.in_secret = was;
        out
    }

    /// True while decoding a secret field.
    pub fn in_secret(&self) -> bool {
        self.in_secret
    }

    /// Reports a type mismatch.
    pub fn expected(&mut self, raw: &Raw, what: &str) -> &mut Diagnostic {
        let got = raw.value.type_name();
        self.error(raw.span, format!("expected {what}, found {got}"))
    }

    /// The table inside `raw`, or an error.
    pub fn table<'r>(&mut self, raw: &'r Raw, what: &str) -> Option<&'r RawTable> {
        match &raw.value {
            RawValue::Table(t) => Some(t),
            _ => {
                self.expected(raw, what);
                None
            }
        }
    }

    /// Reports every key of `table` not in `known`, with a suggestion.
    pub fn reject_unknown(&mut self, table: &RawTable, known: &[&str]) {
        for (key, entry) in table {
            if known.contains(&key.as_str()) {
                continue;
            }
            let msg = format!("unknown field `{key}`");
            let help = match suggest(key, known.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("known fields: {}", known.join(", ")),
            };
            self.error(entry.key_span, msg).set_help(help);
        }
    }

    /// Decodes the field `name` of `table` (declared by `block!`).
    pub fn field<T: Decode>(
        &mut self,
        table: &RawTable,
        name: &str,
        parent: Span,
        default: Option<fn() -> RawValue>,
        range: Option<(i64, i64)>,
    ) -> Option<T> {
        self.nested(name, |cx| match table.get(name) {
            Some(entry) => {
                if let (Some((lo, hi)), RawValue::Integer(n)) = (range, &entry.value.value)
                    && (*n < lo || *n > hi)
                {
                    cx.error(
                        entry.value.span,
                        format!("{n} is out of range: must be {lo} to {hi}"),
                    );
                    return None;
                }
                T::decode(&entry.value, cx)
            }
            None => match default {
                Some(d) => T::decode(
                    &Raw {
                        span: parent,
                        value: d(),
                    },
                    cx,
                ),
                None => match T::missing() {
                    Some(v) => Some(v),
                    None => {
                        cx.error(parent, format!("missing required field `{name}`"));
                        None
                    }
                },
            },
        })
    }
}

/// Replaces every `"quoted"` part of a message with `"(redacted)"`.
fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut parts = message.split('"');
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    for (i, part) in parts.enumerate() {
        out.push('"');
        out.push_str(if i % 2 == 0 { "(redacted)" } else { part });
    }
    out
}

/// Decoding from the raw tree into the typed model.
pub trait Decode: Sized {
    /// The field's type, for docs.
    fn shape() -> Shape;
    /// Decodes `raw`, reporting every problem to `cx`; `None` when something was reported.
    fn decode(raw: &Raw, cx: &mut Cx<'_>) -> Option<Self>;
    /// The value of an absent field without a default; `None` makes the field required.
    fn missing() -> Option<Self> {
        None
    }
}

/// Turns a default written in a declaration (`1800`, `"private"`, `true`) into a raw value.
pub fn default_raw(v: impl Into<DefaultValue>) -> RawValue {
    v.into().0
}

/// A default value written in a `block!` declaration.
pub struct DefaultValue(RawValue);

impl From<i32> for DefaultValue {
    fn from(v: i32) -> Self {
        DefaultValue(RawValue::Integer(v.into()))
    }
}
impl From<f64> for DefaultValue {
    fn from(v: f64) -> Self {
        DefaultValue(RawValue::Float(v))
    }
}
impl From<bool> for DefaultValue {
    fn from(v: bool) -> Self {
        DefaultValue(RawValue::Bool(v))
    }
}
impl From<&str> for DefaultValue {
    fn from(v: &str) -> Self {
        DefaultValue(RawValue::String(v.to_string()))
    }
}

/// The closest candidate to `word`, if any is close enough to be a likely typo.
pub fn suggest<'s>(word: &str, candidates: impl IntoIterator<Item = &'s str>) -> Option<&'s str> {
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::damerau_levenshtein(&word.to_lowercase(), &c.to_lowercase()),
                c,
            )
        })
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

impl Decode for String {
    fn shape() -> Shape {
        Shape::String
    }
    fn decode(raw: &Raw, cx: &mut Cx<'_>) -> Option<Self> {
        let RawValue::String(s) = &raw.value else {
            cx.expected(raw, "a string");
            return None;
        };
        record_refs(s, raw.span, cx)?;
        Some(s.clone())
    }
}

/// Parses the `${...}` references in `s` and records them; reports malformed ones.
pub fn record_refs(s: &str, span: Span, cx: &mut Cx<'_>) -> Option<Vec<Segment>> {
    match refs::parse_template(s) {
        Ok(segments) => {
            for seg in &segments {
                if let Segment::Ref(r) = seg {
                    let field = cx.path();
                    let in_secret = cx.in_secret;
                    cx.refs.push(RefUse {
                        target: r.clone(),
                        span,
                        field,
                        in_secret,
                    });
                }
            }
            Some(segments)
        }
        Err(e) => {
            cx.error(span, e).set_help(
                "a reference is written `${provider.kind.name.attribute}`, e.g. `${digitalocean.vpc.main.id}`; \
                 write `$${` for a literal `${`",
            );
            None
        }
    }
}

impl Decode for bool {
    fn shape() -> Shape {
        Shape::Bool
    }
    fn decode(raw: &Raw, cx: &mut Cx<'_>) -> Option<Self> {
        match &raw.value {
            RawValue::Bool(b) => Some(*b),
            RawValue::String(s) if s == "true" || s == "false" => {
                cx.expected(raw, "a boolean")
                    .set_help(format!("write {s} without quotes"));
                None
            }
            _ => {
                cx.expected(raw, "a boolean (true or false)");
                None
            }
        }
    }
}

impl Decode for f64 {
    fn shape() -> Shape {
        Shape::Float
    }
    fn decode(raw: &Raw, cx: &mut Cx<'_>) -> Option<Self> {
        match &raw.value {
            RawValue::Float(f) if f.is_finite() => Some(*f),
            RawValue::Integer(i) => Some(*i as f64),
            _ => {
                cx.expected(raw, "a finite number");
                None
            }
        }
    }
}

macro_rules! int_decode {
    ($($t:ty),*) => {$(
        impl Decode for $t {
            fn shape() -> Shape {
                Shape::Integer
            }
            fn decode(raw: &Raw, cx: &mut Cx<'_>) -> Option<Self> {
                match &raw.value {
                    RawValue::Integer(n) => match <$t>::try_from(*n) {
                        Ok(v) => Some(v),
                        Err(_) => {
                            cx.error(raw.span, format!(
                                "{n} is out of range: must be {} to {}", <$t>::MIN, <$t>::MAX));
                            None
                        }
                    },
                    RawValue::String(s) if s.parse::<i64>().is_ok() => {
                        cx.expected(raw, "an integer").set_help(format!("write {s} without quotes"));
                        None
                    }
                    _ => {
                        cx.expected(raw, "an integer");
                        None
                    }
                }
            }
        }
    )*};
}
int_decode!(u8, u16, u32, u64, i64);

impl<T: Decode> Decode for Option<T> {
    fn shape() -> Shape {
        Shape::Optional(Box::new(T::shape()))
    }
    fn decode(raw: &Raw, cx: &mut Cx<'_>) -> Option<Self> {
        T::decode(raw, cx).map(Some)
    }
    fn missing() -> Option<Self> {
        Some(None)
    }
}

impl<T: Decode> Decode for Vec<T> {
    fn shape() -> Shape {
        Shape::List(Box::new(T::shape()))
    }
    fn decode(raw: &Raw, cx: &mut Cx<'_>) -> Option<Self> {
        let RawValue::Array(items) = &raw.value else {
            cx.expected(raw, "an array");
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match cx.nested(format!("[{i}]"), |cx| T::decode(item, cx)) {
                Some(v) => out.push(v),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }
    fn missing() -> Option<Self> {
        Some(Vec::new())
    }
}

/// A list whose order does not matter (see [`Shape::Set`]): decoded and serialised as a
/// list, compared as a multiset.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
#[serde(transparent)]
pub struct Set<T>(pub Vec<T>);

impl<T> std::ops::Deref for Set<T> {
    type Target = Vec<T>;
    fn deref(&self) -> &Vec<T> {
        &self.0
    }
}

impl<'a, T> IntoIterator for &'a Set<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<T> From<Vec<T>> for Set<T> {
    fn from(v: Vec<T>) -> Self {
        Set(v)
    }
}

impl<T: Decode> Decode for Set<T> {
    fn shape() -> Shape {
        Shape::Set(Box::new(T::shape()))
    }
    fn decode(raw: &Raw, cx: &mut Cx<'_>) -> Option<Self> {
        Vec::<T>::decode(raw, cx).map(Set)
    }
    fn missing() -> Option<Self> {
        Some(Set(Vec::new()))
    }
}

impl<T: Decode> Decode for BTreeMap<String, T> {
    fn shape() -> Shape {
        Shape::Map(Box::new(T::shape()))
    }
    fn decode(raw: &Raw, cx: &mut Cx<'_>) -> Option<Self> {
        let table = cx.table(raw, "a table")?;
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (k, entry) in table {
            match cx.nested(k.clone(), |cx| T::decode(&entry.value, cx)) {
                Some(v) => {
                    out.insert(k.clone(), v);
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }
    fn missing() -> Option<Self> {
        Some(BTreeMap::new())
    }
}

/// Strips the `r#` of a raw identifier (`r#type` is the TOML key `type`).
pub fn key_name(ident: &'static str) -> &'static str {
    ident.strip_prefix("r#").unwrap_or(ident)
}

/// Declares a struct of the typed model, its decoder and its shape.
///
/// ```text
/// block! {
///     /// Doc of the block.
///     pub struct Name {
///         /// Doc of the field.
///         field: Type = default => change [lo, hi],
///     }
///     check = path::to::fn;   // optional cross-field check
/// }
/// ```
/// A field is required unless it is an `Option`, a list, a table, or has a default.
#[macro_export]
macro_rules! block {
    (
        $(#[doc = $sdoc:literal])*
        pub struct $name:ident {
            $(
                $(#[doc = $doc:literal])*
                $field:ident : $ty:ty $(= $default:expr)? => $change:ident $([$lo:literal, $hi:literal])?
            ),* $(,)?
        }
        $(check = $check:path;)?
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Clone, Debug, PartialEq, serde::Serialize)]
        pub struct $name {
            $(
                $(#[doc = $doc])*
                pub $field: $ty,
            )*
        }

        impl $name {
            /// The fields, for docs and the planner.
            pub fn fields() -> Vec<$crate::desired::schema::FieldInfo> {
                vec![$(
                    $crate::desired::schema::FieldInfo {
                        name: $crate::desired::schema::key_name(stringify!($field)),
                        doc: concat!($($doc, " "),*).trim_ascii(),
                        shape: <$ty as $crate::desired::schema::Decode>::shape(),
                        default: { let _d: Option<&'static str> = None; $(let _d = Some(stringify!($default));)? _d },
                        required: {
                            let _r = <$ty as $crate::desired::schema::Decode>::missing().is_none();
                            $(let _r = { let _ = stringify!($default); false };)?
                            _r
                        },
                        change: $crate::desired::schema::Change::$change,
                        range: { let _r: Option<(i64, i64)> = None; $(let _r = Some(($lo, $hi));)? _r },
                    }
                ),*]
            }
        }

        impl $crate::desired::schema::Decode for $name {
            fn shape() -> $crate::desired::schema::Shape {
                $crate::desired::schema::Shape::Block(stringify!($name), Self::fields())
            }

            #[allow(unused_variables)]
            fn decode(
                raw: &$crate::desired::load::Raw,
                cx: &mut $crate::desired::schema::Cx<'_>,
            ) -> Option<Self> {
                let table = cx.table(raw, "a table")?;
                cx.reject_unknown(table, &[$($crate::desired::schema::key_name(stringify!($field))),*]);
                $(
                    let $field: Option<$ty> = cx.field(
                        table,
                        $crate::desired::schema::key_name(stringify!($field)),
                        raw.span,
                        {
                            let _d: Option<fn() -> $crate::desired::load::RawValue> = None;
                            $(let _d: Option<fn() -> $crate::desired::load::RawValue> =
                                Some(|| $crate::desired::schema::default_raw($default));)?
                            _d
                        },
                        { let _r: Option<(i64, i64)> = None; $(let _r = Some(($lo, $hi));)? _r },
                    );
                )*
                let value = Self { $($field: $field?,)* };
                $($check(&value, raw.span, cx);)?
                Some(value)
            }

            fn missing() -> Option<Self> {
                // A block whose fields all have defaults may be left out entirely.
                let mut sink = Vec::new();
                let mut cx = $crate::desired::schema::Cx::new(&mut sink, "", Default::default());
                let empty = $crate::desired::load::Raw {
                    span: $crate::desired::source::Span {
                        file: $crate::desired::source::FileId(0), start: 0, end: 0,
                    },
                    value: $crate::desired::load::RawValue::Table(Default::default()),
                };
                <Self as $crate::desired::schema::Decode>::decode(&empty, &mut cx)
            }
        }
    };
}

/// Declares an enum of fixed strings with its decoder (suggesting the closest value).
#[macro_export]
macro_rules! string_enum {
    (
        $(#[doc = $sdoc:literal])*
        pub enum $name:ident {
            $( $(#[doc = $doc:literal])* $variant:ident = $text:literal ),* $(,)?
        }
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $( $(#[doc = $doc])* #[serde(rename = $text)] $variant ),*
        }

        impl $name {
            /// Every accepted spelling.
            pub const VALUES: &'static [&'static str] = &[$($text),*];

            /// The spelling used in TOML and in the APIs.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl $crate::desired::schema::Decode for $name {
            fn shape() -> $crate::desired::schema::Shape {
                $crate::desired::schema::Shape::Enum(Self::VALUES)
            }
            fn decode(
                raw: &$crate::desired::load::Raw,
                cx: &mut $crate::desired::schema::Cx<'_>,
            ) -> Option<Self> {
                let $crate::desired::load::RawValue::String(s) = &raw.value else {
                    let quoted: Vec<String> = Self::VALUES.iter().map(|v| format!("\"{v}\"")).collect();
                    cx.expected(raw, &format!("one of {}", quoted.join(", ")));
                    return None;
                };
                match s.as_str() {
                    $($text => Some($name::$variant),)*
                    other => {
                        let quoted: Vec<String> = Self::VALUES.iter().map(|v| format!("\"{v}\"")).collect();
                        let d = cx.error(raw.span, format!(
                            "\"{other}\" is not one of {}", quoted.join(", ")));
                        if let Some(s) = $crate::desired::schema::suggest(other, Self::VALUES.iter().copied()) {
                            d.help = Some(format!("did you mean \"{s}\"?"));
                        }
                        None
                    }
                }
            }
        }
    };
}
