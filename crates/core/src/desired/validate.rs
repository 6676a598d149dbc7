//! Raw tree → validated model. Every problem is collected, never just the first: a user
//! fixing a folder of TOML wants the whole list at once, each with `file:line:col`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use super::expand::{ENVIRONMENTS_DIR, Expanded, Inputs, MODULES_DIR, expand};
use super::kinds::{Kind, PROVIDERS, Spec};
use super::load::{Loaded, Raw, RawEntry, RawTable, RawValue, load_dir_except};
use super::model::{DesiredState, Lifecycle, Output, Resource, Settings};
use super::refs::Address;
use super::schema::{Cx, Decode, RefUse, Shape, suggest};
use super::source::{Diagnostic, Sources, Span};

/// Keys of a resource table that belong to provisioner, not to the kind.
const META_KEYS: &[&str] = &["lifecycle", "depends_on"];

/// Everything wrong with a desired state.
#[derive(Debug)]
pub struct ValidationErrors {
    /// The files, to render locations and lines.
    pub sources: Sources,
    /// The problems, sorted by file and position.
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.diagnostics {
            writeln!(f, "{}", d.render(&self.sources))?;
        }
        let n = self.diagnostics.len();
        write!(
            f,
            "error: the desired state has {n} problem{}",
            if n == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for ValidationErrors {}

/// Loads and validates the desired-state folder, with no environment chosen and no
/// variable given on the command line (see [`load_with`]).
pub fn load(dir: &Path) -> Result<DesiredState, ValidationErrors> {
    load_with(dir, &Inputs::default())
}

/// Loads the desired-state folder — the root module (every `*.toml` below `dir` but
/// `modules/` and `environments/`), the chosen environment's file and the modules it
/// calls — expands it ([`super::expand`]) and validates it.
pub fn load_with(dir: &Path, inputs: &Inputs) -> Result<DesiredState, ValidationErrors> {
    let loaded = load_dir_except(dir, &[MODULES_DIR, ENVIRONMENTS_DIR]);
    validate_in(Some(dir), loaded, inputs)
}

struct Found {
    key_span: Span,
    raw: Raw,
    base_dir: std::path::PathBuf,
}

/// Validates what the loader read from text alone (no folder: no environments, no modules).
pub fn validate(loaded: Loaded) -> Result<DesiredState, ValidationErrors> {
    validate_in(None, loaded, &Inputs::default())
}

fn validate_in(
    root: Option<&Path>,
    mut loaded: Loaded,
    inputs: &Inputs,
) -> Result<DesiredState, ValidationErrors> {
    // A folder that could not be read at all is not expanded (no environment to complain of).
    let expanded = if loaded.documents.is_empty() && !loaded.diagnostics.is_empty() {
        Expanded::default()
    } else {
        expand(root, &mut loaded, inputs)
    };
    let Loaded {
        sources,
        documents: _,
        mut diagnostics,
    } = loaded;
    let Expanded {
        settings: settings_raw,
        moved: moved_entries,
        instances,
        outputs: output_decls,
        environment,
        environments,
        calls,
        failed,
        environment_failed: _,
        pseudo_files,
        module_outputs,
    } = expanded;
    let moved_raw: Vec<&RawEntry> = moved_entries.iter().collect();
    let mut found: BTreeMap<Address, (Kind, Found)> = BTreeMap::new();
    for i in instances {
        if let Some((_, first)) = found.get(&i.address) {
            diagnostics.push(
                Diagnostic::at(
                    i.key_span,
                    format!("`{}` is defined more than once", i.address),
                )
                .note(first.key_span, "first defined")
                .help("each address names one resource; rename one of them"),
            );
            continue;
        }
        found.insert(
            i.address,
            (
                i.kind,
                Found {
                    key_span: i.key_span,
                    raw: i.raw,
                    base_dir: i.base_dir,
                },
            ),
        );
    }

    let settings = match &settings_raw {
        Some((_, raw)) => {
            let mut cx = Cx::new(&mut diagnostics, "settings", Default::default());
            let s = Settings::decode(raw, &mut cx);
            let refs = std::mem::take(&mut cx.refs);
            for r in refs {
                diagnostics
                    .push(Diagnostic::at(r.span, "settings cannot hold references").field(r.field));
            }
            s
        }
        None => Some(Settings::default()),
    };

    let mut resources: BTreeMap<Address, Resource> = BTreeMap::new();
    let mut ref_uses: BTreeMap<Address, Vec<RefUse>> = BTreeMap::new();
    let mut explicit: BTreeMap<Address, Vec<(Address, Span)>> = BTreeMap::new();
    for (address, (kind, f)) in &found {
        let RawValue::Table(table) = &f.raw.value else {
            continue;
        };
        if failed.contains(address) {
            continue;
        }
        let (meta, fields): (RawTable, RawTable) = table
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .partition(|(k, _)| META_KEYS.contains(&k.as_str()));
        let fields_raw = Raw {
            span: f.key_span,
            value: RawValue::Table(fields),
        };
        let mut cx = Cx::new(&mut diagnostics, &address.to_string(), f.base_dir.clone());
        let spec = Spec::decode(*kind, &fields_raw, &mut cx);
        let lifecycle = match meta.get("lifecycle") {
            Some(e) => cx.nested("lifecycle", |cx| Lifecycle::decode(&e.value, cx)),
            None => Some(Lifecycle::default_value()),
        };
        let deps = match meta.get("depends_on") {
            Some(e) => cx.nested("depends_on", |cx| decode_depends_on(&e.value, cx)),
            None => Some(Vec::new()),
        };
        let uses = std::mem::take(&mut cx.refs);
        if let Some(lc) = &lifecycle
            && let Some(e) = meta.get("lifecycle")
        {
            check_ignore_changes(*kind, lc, &e.value, address, &mut diagnostics);
        }
        let (Some(spec), Some(lifecycle), Some(deps)) = (spec, lifecycle, deps) else {
            continue;
        };
        let location = sources.location(f.key_span);
        let references = uses
            .iter()
            .map(|u| (u.field.clone(), u.target.clone()))
            .collect();
        ref_uses.insert(address.clone(), uses);
        explicit.insert(address.clone(), deps);
        let mut resource = Resource::new(address.clone(), spec, lifecycle, references, location);
        resource.field_locations = table
            .iter()
            .filter(|(k, _)| !META_KEYS.contains(&k.as_str()))
            .map(|(k, e)| (k.clone(), sources.location(e.value.span)))
            .collect();
        resources.insert(address.clone(), resource);
    }

    // References and depends_on must name resources that exist (even ones with errors of
    // their own, so a typo in one resource does not cascade into "unknown" everywhere else).
    let known: Vec<String> = found.keys().map(Address::to_string).collect();
    for (address, uses) in &ref_uses {
        let mut deps = BTreeSet::new();
        for u in uses {
            if check_reference(u, &found, &known, &mut diagnostics) {
                deps.insert(u.target.address.clone());
            }
        }
        for (d, span) in explicit.get(address).map(Vec::as_slice).unwrap_or_default() {
            let every = || instances_of(d, &found);
            if found.contains_key(d) {
                deps.insert(d.clone());
            } else if let every @ [_, ..] = every().as_slice() {
                // A resource with `for_each`, named whole: each of its instances (as
                // Terraform's `depends_on`).
                deps.extend(every.iter().cloned());
            } else {
                let mut diag =
                    Diagnostic::at(*span, format!("`depends_on` names unknown resource `{d}`"))
                        .field(format!("{address}.depends_on"));
                if let Some(s) = suggest(&d.to_string(), known.iter().map(String::as_str)) {
                    diag = diag.help(format!("did you mean `{s}`?"));
                }
                diagnostics.push(diag);
            }
        }
        if let Some(r) = resources.get_mut(address) {
            r.depends_on = deps;
        }
    }

    let moved = decode_moved(&moved_raw, &found, &mut diagnostics);
    report_cycles(&resources, &found, &mut diagnostics);
    report_duplicate_identities(&resources, &found, &mut diagnostics);
    report_rrset_ttls(&resources, &found, &mut diagnostics);

    let outputs = decode_outputs(
        output_decls,
        true,
        &found,
        &known,
        &sources,
        &mut diagnostics,
    );
    // A module's outputs are checked the same way, read or not (the caller reads them
    // through `${module.NAME.OUTPUT}`, where a broken one would be blamed on the reader).
    let _ = decode_outputs(
        module_outputs,
        false,
        &found,
        &known,
        &sources,
        &mut diagnostics,
    );
    attach_call_chain(&mut diagnostics, &calls);

    let files = sources.len() - pseudo_files;
    match settings {
        Some(settings) if diagnostics.is_empty() => Ok(DesiredState {
            settings,
            resources,
            files,
            secret_fingerprints: BTreeMap::new(),
            replace: Default::default(),
            allow_destroy: Default::default(),
            moved,
            environment,
            environments,
            outputs,
        }),
        _ => {
            diagnostics.sort_by_key(|d| d.sort_key(&sources));
            diagnostics.dedup();
            Err(ValidationErrors {
                sources,
                diagnostics,
            })
        }
    }
}

/// The root module's outputs, their references checked: they must name resources and
/// attributes that exist, and never a secret output (the ledger, where outputs are kept,
/// never holds a secret).
/// `published`: the root's, kept in the ledger (no secret); a module's may hand a secret
/// output on to its caller, where it can only flow into a secret field.
fn decode_outputs(
    decls: Vec<super::expand::OutputDecl>,
    published: bool,
    found: &BTreeMap<Address, (Kind, Found)>,
    known: &[String],
    sources: &Sources,
    diagnostics: &mut Vec<Diagnostic>,
) -> BTreeMap<String, Output> {
    let mut out = BTreeMap::new();
    for d in decls {
        // A module's outputs come named `module.NAME.output.OUTPUT` already.
        let field = if d.name.starts_with("module.") {
            d.name.clone()
        } else {
            format!("output.{}", d.name)
        };
        let mut uses = Vec::new();
        output_refs(&d.value, &field, &mut uses, diagnostics);
        for u in &uses {
            let secret = found.get(&u.target.address).is_some_and(|(kind, _)| {
                kind.exports()
                    .iter()
                    .any(|e| e.name == u.target.attribute && e.secret)
            });
            if secret && published {
                diagnostics.push(
                    Diagnostic::at(u.span, format!("`{}` is a secret output: an output is kept in the ledger, which never holds a secret", u.target))
                        .field(u.field.clone())
                        .help("publish a non-secret attribute (an ARN, a name, an id) instead"),
                );
            } else {
                let u = RefUse {
                    in_secret: !published,
                    ..u.clone()
                };
                check_reference(&u, found, known, diagnostics);
            }
        }
        out.insert(
            d.name.clone(),
            Output {
                value: raw_json(&d.value),
                description: d.description,
                sensitive: d.sensitive,
                location: sources.location(d.span),
            },
        );
    }
    out
}

fn output_refs(raw: &Raw, field: &str, uses: &mut Vec<RefUse>, diags: &mut Vec<Diagnostic>) {
    match &raw.value {
        RawValue::String(s) if super::refs::may_hold_reference(s) => {
            match super::refs::parse_template(s) {
                Ok(segments) => {
                    for seg in segments {
                        if let super::refs::Segment::Ref(target) = seg {
                            uses.push(RefUse {
                                target,
                                span: raw.span,
                                field: field.to_string(),
                                in_secret: false,
                            });
                        }
                    }
                }
                Err(e) => diags.push(Diagnostic::at(raw.span, e).field(field)),
            }
        }
        RawValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                output_refs(item, &format!("{field}[{i}]"), uses, diags);
            }
        }
        RawValue::Table(t) => {
            for (k, e) in t {
                output_refs(&e.value, &format!("{field}.{k}"), uses, diags);
            }
        }
        _ => {}
    }
}

/// A raw value as JSON (strings keep their `${...}` for the engine to resolve).
fn raw_json(raw: &Raw) -> serde_json::Value {
    use serde_json::Value;
    match &raw.value {
        RawValue::String(s) => Value::String(s.clone()),
        RawValue::Integer(n) => Value::from(*n),
        RawValue::Float(f) => Value::from(*f),
        RawValue::Bool(b) => Value::Bool(*b),
        RawValue::Datetime(d) => Value::String(d.clone()),
        RawValue::Array(items) => Value::Array(items.iter().map(raw_json).collect()),
        RawValue::Table(t) => Value::Object(
            t.iter()
                .map(|(k, e)| (k.clone(), raw_json(&e.value)))
                .collect(),
        ),
    }
}

/// Adds to each problem inside a module the chain of calls that reached it, innermost
/// first: `in module.app["web"], called at main.toml:12:1`.
fn attach_call_chain(diagnostics: &mut [Diagnostic], calls: &BTreeMap<String, Span>) {
    if calls.is_empty() {
        return;
    }
    for d in diagnostics.iter_mut() {
        let Some(field) = d.field.clone() else {
            continue;
        };
        // Every module instance the field lies in, longest first.
        let mut chain: Vec<(Span, String)> = calls
            .iter()
            .filter(|(prefix, _)| {
                field
                    .strip_prefix(prefix.as_str())
                    .is_some_and(|rest| rest.starts_with('.'))
            })
            .map(|(prefix, span)| (*span, format!("in {prefix}, called")))
            .collect();
        chain.sort_by_key(|(_, p)| std::cmp::Reverse(p.len()));
        d.called_from = chain;
    }
}

impl Lifecycle {
    fn default_value() -> Lifecycle {
        Lifecycle::missing().expect("every lifecycle option has a default")
    }
}

/// `[[moved]]` tables, as Terraform's `moved` blocks: `from` (an address that left the
/// desired state) → `to` (a desired address of the same kind). Applied to the ledger before
/// planning, so a renamed resource keeps its object.
fn decode_moved(
    entries: &[&RawEntry],
    found: &BTreeMap<Address, (Kind, Found)>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<(Address, Address)> {
    let mut out: Vec<(Address, Address)> = Vec::new();
    for entry in entries {
        let RawValue::Array(items) = &entry.value.value else {
            diagnostics.push(
                Diagnostic::at(entry.key_span, "`moved` is a list of tables")
                    .field("moved")
                    .help("write `[[moved]]` with `from = \"provider.kind.old\"` and `to = \"provider.kind.new\"`"),
            );
            continue;
        };
        for (i, item) in items.iter().enumerate() {
            let field = format!("moved[{i}]");
            let RawValue::Table(t) = &item.value else {
                diagnostics.push(
                    Diagnostic::at(
                        item.span,
                        format!("expected a table, found {}", item.value.type_name()),
                    )
                    .field(field),
                );
                continue;
            };
            for k in t.keys().filter(|k| *k != "from" && *k != "to") {
                diagnostics.push(
                    Diagnostic::at(t[k].key_span, format!("unknown field `{k}`"))
                        .field(format!("{field}.{k}"))
                        .help("a `[[moved]]` table has `from` and `to`"),
                );
            }
            let mut get = |name: &str| -> Option<(Address, Span)> {
                let Some(e) = t.get(name) else {
                    diagnostics.push(
                        Diagnostic::at(item.span, format!("`{name}` is required"))
                            .field(format!("{field}.{name}")),
                    );
                    return None;
                };
                let RawValue::String(text) = &e.value.value else {
                    diagnostics.push(
                        Diagnostic::at(
                            e.value.span,
                            format!(
                                "expected an address string, found {}",
                                e.value.value.type_name()
                            ),
                        )
                        .field(format!("{field}.{name}")),
                    );
                    return None;
                };
                match Address::parse(text) {
                    Ok(a) if Kind::lookup(a.provider(), a.kind()).is_some() => {
                        Some((a, e.value.span))
                    }
                    Ok(a) => {
                        diagnostics.push(
                            Diagnostic::at(
                                e.value.span,
                                format!("`{a}` is not of a kind provisioner manages"),
                            )
                            .field(format!("{field}.{name}")),
                        );
                        None
                    }
                    Err(why) => {
                        diagnostics.push(
                            Diagnostic::at(e.value.span, why).field(format!("{field}.{name}")),
                        );
                        None
                    }
                }
            };
            let (Some((from, from_span)), Some((to, to_span))) = (get("from"), get("to")) else {
                continue;
            };
            if (from.provider(), from.kind()) != (to.provider(), to.kind()) {
                diagnostics.push(
                    Diagnostic::at(to_span, format!("`{from}` and `{to}` are of different kinds: a move keeps the object, so the kind cannot change"))
                        .field(format!("{field}.to")),
                );
                continue;
            }
            if found.contains_key(&from) {
                diagnostics.push(
                    Diagnostic::at(from_span, format!("`{from}` is still in the desired state: a move's `from` is the old address"))
                        .field(format!("{field}.from")),
                );
                continue;
            }
            if !found.contains_key(&to) {
                // An instance this environment does not have (its `for_each` lists other
                // keys, or it does not call the module): the move is another environment's,
                // and does nothing here.
                if !to.module().is_empty() || to.name().contains('[') {
                    continue;
                }
                diagnostics.push(
                    Diagnostic::at(
                        to_span,
                        format!(
                            "`{to}` is not in the desired state: a move's `to` is the new address"
                        ),
                    )
                    .field(format!("{field}.to")),
                );
                continue;
            }
            if out.iter().any(|(f, t)| *f == from || *t == to) {
                diagnostics.push(
                    Diagnostic::at(
                        from_span,
                        format!("`{from}` → `{to}` repeats an address another `[[moved]]` names"),
                    )
                    .field(field),
                );
                continue;
            }
            out.push((from, to));
        }
    }
    out
}

pub(crate) fn unknown_top_level(key: &str, entry: &RawEntry) -> Diagnostic {
    let mut known: Vec<&str> = PROVIDERS.to_vec();
    known.extend(["settings", "moved", "variable", "output", "module"]);
    let d = Diagnostic::at(entry.key_span, format!("unknown provider `{key}`"));
    if let Some(s) = suggest(key, known.iter().copied()) {
        return d.help(format!("did you mean `{s}`?"));
    }
    if let Some(k) = Kind::ALL.iter().find(|k| k.name() == key) {
        return d.help(format!(
            "resources are written `[provider.kind.name]`: did you mean `[{}.{key}.…]`?",
            k.provider()
        ));
    }
    d.help(format!(
        "the top-level tables are `settings`, `moved`, `variable`, `output`, `module` and the providers {}",
        PROVIDERS
            .iter()
            .map(|p| format!("`{p}`"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

pub(crate) fn unknown_kind(provider: &str, kind: &str, span: Span) -> Diagnostic {
    let names: Vec<&str> = Kind::ALL
        .iter()
        .filter(|k| k.provider() == provider)
        .map(|k| k.name())
        .collect();
    let d = Diagnostic::at(span, format!("unknown kind `{provider}.{kind}`"));
    if let Some(s) = suggest(kind, names.iter().copied()) {
        return d.help(format!("did you mean `{provider}.{s}`?"));
    }
    if let Some(k) = Kind::ALL.iter().find(|k| k.name() == kind) {
        return d.help(format!(
            "`{kind}` belongs to another provider: did you mean `{k}`?"
        ));
    }
    d.help(format!("{provider} kinds: {}", names.join(", ")))
}

fn decode_depends_on(raw: &Raw, cx: &mut Cx<'_>) -> Option<Vec<(Address, Span)>> {
    let RawValue::Array(items) = &raw.value else {
        cx.expected(raw, "an array of addresses");
        return None;
    };
    let mut out = Vec::new();
    for item in items {
        match &item.value {
            RawValue::String(s) => match Address::parse(s) {
                Ok(a) => out.push((a, item.span)),
                Err(e) => {
                    cx.error(item.span, e);
                }
            },
            _ => {
                cx.expected(item, "an address string");
            }
        }
    }
    Some(out)
}

/// The instances of a resource with `for_each` (`kind.name["a"]`, …) when `address` names it
/// without a key; empty otherwise.
fn instances_of(address: &Address, found: &BTreeMap<Address, (Kind, Found)>) -> Vec<Address> {
    found
        .keys()
        .filter(|a| a.is_instance_of(address))
        .cloned()
        .collect()
}

/// Returns true when the reference is sound (so it is a dependency).
fn check_reference(
    u: &RefUse,
    found: &BTreeMap<Address, (Kind, Found)>,
    known: &[String],
    diags: &mut Vec<Diagnostic>,
) -> bool {
    let target = &u.target;
    let base = || {
        let d = Diagnostic::at(u.span, "").field(u.field.clone());
        if u.in_secret { d.redacted() } else { d }
    };
    let Some((kind, _)) = found.get(&target.address) else {
        let mut d = base();
        d.message = format!("reference to unknown resource `{}`", target.address);
        if let Some(first) = instances_of(&target.address, found).first() {
            d.message = format!(
                "`{}` has `for_each`: a reference names one of its instances",
                target.address
            );
            d.help = Some(format!("like `${{{first}.{}}}`", target.attribute));
            diags.push(d);
            return false;
        }
        if Kind::lookup(target.address.provider(), target.address.kind()).is_none() {
            d.message = format!(
                "reference to unknown kind `{}.{}`",
                target.address.provider(),
                target.address.kind()
            );
        }
        if let Some(s) = suggest(
            &target.address.to_string(),
            known.iter().map(String::as_str),
        ) {
            d.help = Some(format!("did you mean `{s}`?"));
        }
        diags.push(d);
        return false;
    };
    let exports = kind.exports();
    let Some(export) = exports.iter().find(|e| e.name == target.attribute) else {
        let mut d = base();
        d.message = format!("`{kind}` has no attribute `{}`", target.attribute);
        let names: Vec<&str> = exports.iter().map(|e| e.name).collect();
        d.help = Some(match suggest(&target.attribute, names.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("`{kind}` exports: {}", names.join(", ")),
        });
        diags.push(d);
        return false;
    };
    if export.secret && !u.in_secret {
        let mut d = base();
        d.message = format!(
            "`{target}` is a secret output and cannot flow into a field that is not secret"
        );
        d.help = Some(
            "secret outputs may only be used where a secret source is expected, such as \
             github.actions_secret.value or aws.secretsmanager_secret.value"
                .into(),
        );
        diags.push(d);
        return false;
    }
    match (export.list, target.index) {
        (true, None) => {
            let mut d = base();
            d.message = format!("`{}` of `{}` is a list", target.attribute, target.address);
            d.help = Some(format!(
                "pick one element, like `${{{}.{}[0]}}`",
                target.address, target.attribute
            ));
            diags.push(d);
            false
        }
        (false, Some(_)) => {
            let mut d = base();
            d.message = format!(
                "`{}` of `{}` is not a list and cannot be indexed",
                target.attribute, target.address
            );
            diags.push(d);
            false
        }
        _ => true,
    }
}

fn check_ignore_changes(
    kind: Kind,
    lc: &Lifecycle,
    raw: &Raw,
    address: &Address,
    diags: &mut Vec<Diagnostic>,
) {
    let span = match &raw.value {
        RawValue::Table(t) => t.get("ignore_changes").map_or(raw.span, |e| e.value.span),
        _ => raw.span,
    };
    let fields = kind.fields();
    for path in &lc.ignore_changes {
        if let Err(e) = resolve_field_path(&fields, path) {
            let mut d = Diagnostic::at(span, format!("`ignore_changes` names `{path}`, {e}"))
                .field(format!("{address}.lifecycle.ignore_changes"));
            let names: Vec<&str> = fields.iter().map(|f| f.name).collect();
            if let Some(s) = suggest(path.split('.').next().unwrap_or(""), names.iter().copied()) {
                d = d.help(format!("did you mean `{s}`?"));
            }
            diags.push(d);
        }
    }
}

/// Checks that a dotted field path (`node_pools.workers.count`) exists in a kind's fields.
pub fn resolve_field_path(fields: &[super::schema::FieldInfo], path: &str) -> Result<(), String> {
    let mut segs = path.split('.').peekable();
    let mut current: Vec<super::schema::FieldInfo> = fields.to_vec();
    while let Some(seg) = segs.next() {
        let Some(field) = current.iter().find(|f| f.name == seg) else {
            return Err(format!("but there is no field `{seg}` there"));
        };
        let mut shape = field.shape.clone();
        if let Shape::Optional(inner) = shape {
            shape = *inner;
        }
        if segs.peek().is_none() {
            return Ok(());
        }
        if let Shape::Map(inner) = shape {
            segs.next(); // any key of the table
            if segs.peek().is_none() {
                return Ok(());
            }
            shape = *inner;
        }
        match shape {
            Shape::Block(_, f) => current = f,
            _ => return Err(format!("but `{seg}` has no fields below it")),
        }
    }
    Ok(())
}

fn report_cycles(
    resources: &BTreeMap<Address, Resource>,
    found: &BTreeMap<Address, (Kind, Found)>,
    diags: &mut Vec<Diagnostic>,
) {
    // Colour-marking DFS; each back edge closes a cycle, reported once per set of members.
    let mut state: BTreeMap<&Address, u8> = BTreeMap::new(); // 1 = on stack, 2 = done
    let mut reported: BTreeSet<BTreeSet<Address>> = BTreeSet::new();
    for start in resources.keys() {
        if state.contains_key(start) {
            continue;
        }
        let mut stack: Vec<(&Address, Vec<&Address>)> = Vec::new();
        let mut path: Vec<&Address> = Vec::new();
        let deps = |a: &Address| -> Vec<&Address> {
            resources
                .get(a)
                .map(|r| {
                    r.depends_on
                        .iter()
                        .filter(|d| resources.contains_key(*d))
                        .collect()
                })
                .unwrap_or_default()
        };
        state.insert(start, 1);
        path.push(start);
        stack.push((start, deps(start)));
        while let Some((node, pending)) = stack.last_mut() {
            let node = *node;
            match pending.pop() {
                Some(next) => match state.get(next) {
                    None => {
                        state.insert(next, 1);
                        path.push(next);
                        let d = deps(next);
                        stack.push((next, d));
                    }
                    Some(1) => {
                        let from = path.iter().position(|a| *a == next).expect("on the stack");
                        let members: Vec<&Address> = path[from..].to_vec();
                        let set: BTreeSet<Address> = members.iter().map(|a| (*a).clone()).collect();
                        if reported.insert(set) {
                            let mut chain: Vec<String> =
                                members.iter().map(|a| a.to_string()).collect();
                            chain.push(next.to_string());
                            let span = found.get(next).map(|(_, f)| f.key_span);
                            if let Some(span) = span {
                                let msg = if members.len() == 1 {
                                    format!("`{next}` refers to itself")
                                } else {
                                    format!("dependency cycle: {}", chain.join(" -> "))
                                };
                                diags.push(
                                    Diagnostic::at(span, msg)
                                        .help("break the cycle: one of these resources must not reference the next"),
                                );
                            }
                        }
                        let _ = node;
                    }
                    Some(_) => {}
                },
                None => {
                    state.insert(node, 2);
                    path.pop();
                    stack.pop();
                }
            }
        }
    }
}

fn report_duplicate_identities(
    resources: &BTreeMap<Address, Resource>,
    found: &BTreeMap<Address, (Kind, Found)>,
    diags: &mut Vec<Diagnostic>,
) {
    let mut seen: BTreeMap<String, &Address> = BTreeMap::new();
    for (address, r) in resources {
        let Some(id) = r.spec.identity() else {
            continue;
        };
        if id.contains("${") {
            continue;
        }
        match seen.get(&id) {
            Some(first) => {
                let span = found.get(address).map(|(_, f)| f.key_span);
                let first_span = found.get(*first).map(|(_, f)| f.key_span);
                if let (Some(span), Some(first_span)) = (span, first_span) {
                    diags.push(
                        Diagnostic::at(
                            span,
                            format!("`{address}` and `{first}` both describe {id}"),
                        )
                        .note(first_span, format!("`{first}` is defined"))
                        .help(
                            "two resources would fight over one cloud object; remove or rename one",
                        ),
                    );
                }
            }
            None => {
                seen.insert(id, address);
            }
        }
    }
}

/// Records of one zone, name and type form one RRset, which has one TTL (RFC 2181 §5.2):
/// DigitalOcean rectifies differing TTLs to the last one written (the DigitalOcean Terraform
/// provider warns "If inconsistent TTLs are provided, DigitalOcean will rectify them
/// automatically", `domain/resource_record.go`), so two such records would rewrite each
/// other on every pass. Reported at the second record's `ttl`.
fn report_rrset_ttls(
    resources: &BTreeMap<Address, Resource>,
    found: &BTreeMap<Address, (Kind, Found)>,
    diags: &mut Vec<Diagnostic>,
) {
    let mut seen: BTreeMap<(String, String, String), (&Address, u32)> = BTreeMap::new();
    for (address, r) in resources {
        let crate::desired::Spec::DoDomainRecord(rec) = &r.spec else {
            continue;
        };
        let key = (
            rec.domain.to_ascii_lowercase(),
            rec.name.as_str().to_ascii_lowercase(),
            rec.r#type.as_str().to_string(),
        );
        let Some((first, ttl)) = seen.get(&key).copied() else {
            seen.insert(key, (address, rec.ttl));
            continue;
        };
        if ttl == rec.ttl {
            continue;
        }
        let span_of = |a: &Address| {
            found.get(a).map(|(_, f)| match &f.raw.value {
                RawValue::Table(t) => t.get("ttl").map_or(f.key_span, |e| e.value.span),
                _ => f.key_span,
            })
        };
        if let (Some(span), Some(first_span)) = (span_of(address), span_of(first)) {
            diags.push(
                Diagnostic::at(
                    span,
                    format!(
                        "ttl {} differs from `{first}`'s {ttl}, a {} record of the same name",
                        rec.ttl, key.2
                    ),
                )
                .field(format!("{address}.ttl"))
                .note(first_span, format!("`{first}` has ttl {ttl}"))
                .help("records of one name and type share one TTL (RFC 2181 §5.2); DigitalOcean would rewrite one to match the other on every pass: give them the same ttl"),
            );
        }
    }
}
