//! Environments, variables, outputs, `for_each` and modules: the layer between the files as
//! read ([`super::load`]) and the validator ([`super::validate`]).
//!
//! Everything here works on the span-carrying raw tree, so every problem, and every
//! problem the validator finds later in what this layer made, still points at the file,
//! line and column where the text is written — in a module's own files, with the chain of
//! module calls that reached it (docs/desired-state.md, "Environments and reuse").
//!
//! The language follows Terraform's where it fits a declarative TOML one:
//! - `[variable.NAME]` declares an input (`type`, `default`, `description`, and the checks
//!   `allowed`, `pattern`, `min`, `max` with `error_message`), read as `${var.NAME}`.
//!   Values come, each overriding the one before (Terraform's order): the `default`, the
//!   process environment (`PROVISIONER_VAR_NAME`), the chosen environment's file
//!   (`environments/NAME.toml`, table `[variables]`), and `--var NAME=VALUE`.
//! - `[output.NAME]` publishes a value (`value`, `description`, `sensitive`); the root
//!   module's outputs are written to the ledger after each pass (`provisioner output`).
//! - `for_each` on a resource or a module call makes one instance per element of a list of
//!   strings or per key of a table, addressed `kind.name["key"]`, with `${each.key}` and
//!   `${each.value}` (`${each.value.FIELD}` for a table) inside.
//! - `[module.NAME]` instantiates the folder `source` (below `modules/`) with the call's
//!   other keys as its inputs; its resources are addressed `module.NAME.provider.kind.name`
//!   and its outputs read as `${module.NAME.OUTPUT}`.
//! - `${environment.name}` is the chosen environment (Terraform's `terraform.workspace`).
//!
//! Where it differs, and why: no `count` (index addresses shift when an element is removed,
//! which makes Terraform plans destroy and re-create; `for_each` keys are stable), no
//! expressions beyond substitution (a TOML file stays data a reviewer reads at a glance),
//! and a variable never carries a secret value (`type = "secret"` takes a secret source,
//! `{ env = … }` or `{ file = … }`, which is read only when a value is written).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::kinds::{Kind, PROVIDERS};
use super::load::{Loaded, Raw, RawEntry, RawTable, RawValue, load_text};
use super::refs::{Address, is_key, is_name, may_hold_reference, split_outside_keys};
use super::schema::suggest;
use super::source::{Diagnostic, FileId, Span};

/// The folder below the desired-state folder that holds modules: it is not part of the
/// root module, and a module's `source` must lie inside it.
pub const MODULES_DIR: &str = "modules";

/// The folder below the desired-state folder that holds one file per environment
/// (`environments/staging.toml`): not part of the root module.
pub const ENVIRONMENTS_DIR: &str = "environments";

/// Prefix of the process environment variables that set variables
/// (`PROVISIONER_VAR_region=fra1`), as Terraform's `TF_VAR_`.
pub const VAR_ENV_PREFIX: &str = "PROVISIONER_VAR_";

/// Deepest module nesting followed.
const MAX_MODULE_DEPTH: usize = 8;

/// Most resource instances one desired state may expand to: a `for_each` over a huge list
/// is a mistake to report, not a plan to make.
pub const MAX_INSTANCES: usize = 10_000;

/// The environments a desired-state folder describes (`environments/NAME.toml`), sorted.
pub fn environments(root: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(root.join(ENVIRONMENTS_DIR))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().into_string().ok()?;
                    let stem = name.strip_suffix(".toml")?;
                    is_name(stem).then(|| stem.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// What the command line and the process environment choose: the environment and
/// variable values.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// `-e NAME` / `PROVISIONER_ENVIRONMENT`.
    pub environment: Option<String>,
    /// `--var NAME=VALUE`, in the order given (a later one wins).
    pub vars: Vec<(String, String)>,
    /// `PROVISIONER_VAR_NAME` values of the process environment, by `NAME`.
    pub env_vars: BTreeMap<String, String>,
}

impl Inputs {
    /// The environment and `--var` values given, with the `PROVISIONER_VAR_*` variables of
    /// this process's environment.
    pub fn from_process(environment: Option<String>, vars: Vec<(String, String)>) -> Self {
        let env_vars = std::env::vars_os()
            .filter_map(|(k, v)| {
                let k = k.into_string().ok()?;
                let name = k.strip_prefix(VAR_ENV_PREFIX)?.to_string();
                Some((name, v.into_string().ok()?))
            })
            .collect();
        Inputs {
            // `PROVISIONER_ENVIRONMENT=` (set, empty) is no choice, not an environment
            // named "".
            environment: environment.filter(|e| !e.is_empty()),
            vars,
            env_vars,
        }
    }
}

/// The chosen environment, as its file describes it.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Environment {
    /// Its name: the file's name without `.toml`.
    pub name: String,
    /// `[environment] ledger`: where its ledger lives, when not the default (the base
    /// ledger location with `/env/NAME` appended).
    pub ledger: Option<String>,
    /// `[environment] description`.
    pub description: Option<String>,
}

/// One resource instance after expansion.
#[derive(Clone, Debug)]
pub struct Instance {
    /// Its address, with module path and `for_each` key.
    pub address: Address,
    /// Its kind.
    pub kind: Kind,
    /// Its table, variables substituted, `for_each` removed.
    pub raw: Raw,
    /// Where its name is written.
    pub key_span: Span,
    /// The folder of the file that describes it (relative paths resolve against it).
    pub base_dir: PathBuf,
}

/// A declared output of the root module.
#[derive(Clone, Debug)]
pub struct OutputDecl {
    /// Its name.
    pub name: String,
    /// Its value, references to resources left for the engine to resolve.
    pub value: Raw,
    /// `description`.
    pub description: Option<String>,
    /// `sensitive`: masked by `provisioner output` unless asked for by name.
    pub sensitive: bool,
    /// Where it is declared.
    pub span: Span,
}

/// What expansion made of the files.
#[derive(Debug, Default)]
pub struct Expanded {
    /// `[settings]`, with the span of its key.
    pub settings: Option<(Span, Raw)>,
    /// The `[[moved]]` entries.
    pub moved: Vec<RawEntry>,
    /// Every resource instance.
    pub instances: Vec<Instance>,
    /// Root outputs.
    pub outputs: Vec<OutputDecl>,
    /// The chosen environment.
    pub environment: Option<Environment>,
    /// Every environment the tree declares, sorted.
    pub environments: Vec<String>,
    /// Module instances (`module.app["web"]`) and where each is called.
    pub calls: BTreeMap<String, Span>,
    /// Instances whose substitution already failed (reported): not decoded, so one
    /// misspelt variable is one problem, not two.
    pub failed: BTreeSet<Address>,
    /// The environment could not be chosen or read (reported): nothing was expanded, so
    /// that one problem is not buried under what missing values would cause.
    pub environment_failed: bool,
    /// Sources that are not files (`--var` and `PROVISIONER_VAR_` values, kept to show
    /// them in problems): not counted as files read.
    pub pseudo_files: usize,
    /// Every module instance's outputs, named `module.NAME.output.OUTPUT`: their
    /// references are checked as the root's are, whether the caller reads them or not.
    pub module_outputs: Vec<OutputDecl>,
}

/// Reads the chosen environment's file and expands the root module (the documents already
/// in `loaded`) with its variables, module calls and `for_each`. `root` is the
/// desired-state folder (`None` for text loaded without one: no environments, no modules).
/// Problems go to `loaded.diagnostics`.
pub fn expand(root: Option<&Path>, loaded: &mut Loaded, inputs: &Inputs) -> Expanded {
    let root_docs: Vec<usize> = (0..loaded.documents.len()).collect();
    let mut x = Expander {
        root: root.map(|r| r.canonicalize().unwrap_or_else(|_| r.to_path_buf())),
        root_shown: root.map(Path::to_path_buf).unwrap_or_default(),
        loaded,
        out: Expanded::default(),
        modules: BTreeMap::new(),
        instances: 0,
        env_dir: PathBuf::new(),
        sensitive_read: false,
        subst_failed: false,
        reported: BTreeSet::new(),
    };
    let env_values = x.environment(root, inputs);
    if x.out.environment_failed {
        return x.out;
    }
    let docs = x.docs(&root_docs);
    let root_inputs = RootInputs {
        env_dir: x.env_dir.clone(),
        env_file: env_values,
        inputs,
    };
    x.module(
        &docs,
        &Context {
            prefix: String::new(),
            depth: 0,
            chain: Vec::new(),
            root: Some(&root_inputs),
            environment: x.out.environment.as_ref().map(|e| e.name.clone()),
        },
        BTreeMap::new(),
    );
    x.out
}

struct Expander<'l> {
    /// The desired-state folder's real path.
    root: Option<PathBuf>,
    /// The desired-state folder as the user named it: module files are shown below it.
    root_shown: PathBuf,
    loaded: &'l mut Loaded,
    out: Expanded,
    /// Module folders read, by real path: the indices of their documents.
    modules: BTreeMap<PathBuf, Vec<usize>>,
    /// Resource instances and module instances made so far (bounded by [`MAX_INSTANCES`]).
    instances: usize,
    /// The folder of the chosen environment's file.
    env_dir: PathBuf,
    /// Set when a substitution reads a sensitive module output.
    sensitive_read: bool,
    /// Set when a substitution could not be made (reported where it failed, or where the
    /// variable or module it needs failed).
    subst_failed: bool,
    /// Call sites whose problem is reported (once, not once per instance).
    reported: BTreeSet<Span>,
}

struct RootInputs<'i> {
    /// `[variables]` of the environment's file.
    env_file: RawTable,
    /// The folder of the environment's file (relative `{ file = … }` sources in it resolve
    /// against it).
    env_dir: PathBuf,
    inputs: &'i Inputs,
}

struct Context<'c> {
    /// `""` at the root, else `module.a` or `module.a["k"].module.b`.
    prefix: String,
    depth: usize,
    /// Real paths of the module folders being expanded, outermost first.
    chain: Vec<PathBuf>,
    /// The root's value sources; `None` inside a module.
    root: Option<&'c RootInputs<'c>>,
    environment: Option<String>,
}

impl Context<'_> {
    /// `field` under this module's prefix.
    fn field(&self, field: &str) -> String {
        if self.prefix.is_empty() {
            field.to_string()
        } else {
            format!("{}.{field}", self.prefix)
        }
    }
}

/// What `${...}` may name inside one module instance, besides resources.
struct Scope {
    vars: BTreeMap<String, Raw>,
    /// Variables whose value was missing or refused (already reported).
    failed_vars: BTreeSet<String>,
    /// `each.key` and `each.value`.
    each: Option<(Raw, Raw)>,
    /// Outputs of the module instances called here, by `NAME` or `NAME["key"]`.
    module_outputs: BTreeMap<String, BTreeMap<String, (Raw, bool)>>,
    /// Module calls of this module that have `for_each`.
    for_each_calls: BTreeSet<String>,
    /// Module calls of this module that exist at all.
    calls: BTreeSet<String>,
    /// Module calls one of whose instances could not be expanded (reported): reading their
    /// outputs says nothing more.
    failed_calls: BTreeSet<String>,
    prefix: String,
    environment: Option<String>,
}

/// A module body's top-level declarations.
#[derive(Default)]
struct Body {
    variables: Vec<(String, RawEntry, FileId)>,
    outputs: Vec<(String, RawEntry)>,
    calls: Vec<(String, RawEntry, PathBuf)>,
    /// (provider, kind, name, entry, base_dir)
    resources: Vec<(String, Kind, String, RawEntry, PathBuf)>,
}

impl Expander<'_> {
    fn push(&mut self, d: Diagnostic) {
        self.loaded.diagnostics.push(d);
    }

    fn docs(&self, ids: &[usize]) -> Vec<(FileId, Raw)> {
        ids.iter()
            .map(|i| self.loaded.documents[*i].clone())
            .collect()
    }

    /// Lists the environments, checks the chosen one, reads its file; returns its
    /// `[variables]`.
    fn environment(&mut self, root: Option<&Path>, inputs: &Inputs) -> RawTable {
        let dir = root.map(|r| r.join(ENVIRONMENTS_DIR));
        let mut files: Vec<(String, PathBuf)> = Vec::new();
        if let Some(dir) = dir.as_ref().filter(|d| d.is_dir()) {
            match std::fs::read_dir(dir) {
                Ok(entries) => {
                    for e in entries.flatten() {
                        let path = e.path();
                        let name = e.file_name().to_string_lossy().to_string();
                        if name.starts_with('.') {
                            continue;
                        }
                        // Other files (a README) are not environments, as elsewhere in the
                        // folder; nor is a folder named `x.toml`.
                        let Some(stem) = name.strip_suffix(".toml") else {
                            continue;
                        };
                        if std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
                            continue;
                        }
                        if !is_name(stem) {
                            self.push(
                                Diagnostic::path(
                                    &path,
                                    format!("`{stem}` is not a valid environment name"),
                                )
                                .help(
                                    "start with a letter or `_`, then letters, digits, `_` or `-`",
                                ),
                            );
                            continue;
                        }
                        files.push((stem.to_string(), path));
                    }
                }
                Err(e) => self.push(Diagnostic::path(
                    dir,
                    format!("cannot list the environments folder: {e}"),
                )),
            }
        }
        files.sort();
        self.out.environments = files.iter().map(|(n, _)| n.clone()).collect();
        let names = self.out.environments.join(", ");
        let Some(chosen) = &inputs.environment else {
            if !files.is_empty() {
                self.push(
                    Diagnostic::path(
                        dir.as_deref().unwrap_or(Path::new(ENVIRONMENTS_DIR)),
                        format!("this desired state describes several environments ({names}): choose one"),
                    )
                    .help("pass `-e NAME` or set PROVISIONER_ENVIRONMENT"),
                );
                self.out.environment_failed = true;
            }
            return RawTable::new();
        };
        let Some((_, path)) = files.iter().find(|(n, _)| n == chosen) else {
            let mut d = if files.is_empty() {
                Diagnostic::path(
                    root.unwrap_or(Path::new(".")),
                    format!("environment `{chosen}` is not declared: this desired state has no `{ENVIRONMENTS_DIR}/` folder"),
                )
                .help(format!("create `{ENVIRONMENTS_DIR}/{chosen}.toml`, or leave out `-e` and PROVISIONER_ENVIRONMENT"))
            } else {
                Diagnostic::path(
                    dir.as_deref().unwrap_or(Path::new(ENVIRONMENTS_DIR)),
                    format!("there is no environment `{chosen}` (the environments are {names})"),
                )
            };
            if let Some(s) = suggest(chosen, self.out.environments.iter().map(String::as_str)) {
                d = d.help(format!("did you mean `{s}`?"));
            }
            self.push(d);
            self.out.environment_failed = true;
            return RawTable::new();
        };
        // A link that leads out of the folder is not read, as in the root module: an error
        // quotes the lines of the file it is about (a link to ~/.aws/credentials would put
        // them into a CI log).
        if let (Some(root), Ok(target)) = (&self.root, path.canonicalize())
            && !target.starts_with(root)
        {
            self.push(
                Diagnostic::path(
                    path,
                    format!(
                        "links outside the desired-state folder (to {}): not read",
                        target.display()
                    ),
                )
                .help("copy the file into the folder"),
            );
            self.out.environment_failed = true;
            return RawTable::new();
        }
        self.env_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let before = self.loaded.documents.len();
        super::load::load_file(path, self.loaded);
        let mut env = Environment {
            name: chosen.clone(),
            ..Default::default()
        };
        let mut vars = RawTable::new();
        if self.loaded.documents.len() == before {
            // Unreadable or not TOML: reported by the loader.
            self.out.environment_failed = true;
            return RawTable::new();
        }
        if let Some((_, doc)) = self.loaded.documents.get(before).cloned() {
            // The environment's file is read here, not as part of the root module.
            self.loaded.documents.truncate(before);
            let RawValue::Table(top) = doc.value else {
                return vars;
            };
            for (key, entry) in top {
                match (key.as_str(), entry.value.value) {
                    ("variables", RawValue::Table(t)) => vars = t,
                    ("environment", RawValue::Table(t)) => {
                        for (k, e) in t {
                            match (k.as_str(), &e.value.value) {
                                ("ledger", RawValue::String(_)) => {
                                    use super::schema::{Cx, Decode};
                                    let mut cx = Cx::new(&mut self.loaded.diagnostics, "environment", PathBuf::new());
                                    if let Some(url) = cx.nested("ledger", |cx| super::values::LedgerUrl::decode(&e.value, cx)) {
                                        env.ledger = Some(url.0);
                                    }
                                }
                                ("description", RawValue::String(s)) => {
                                    env.description = Some(s.clone())
                                }
                                ("ledger" | "description", other) => self.push(
                                    Diagnostic::at(
                                        e.value.span,
                                        format!("expected a string, found {}", other.type_name()),
                                    )
                                    .field(format!("environment.{k}")),
                                ),
                                _ => self.push(
                                    Diagnostic::at(e.key_span, format!("unknown field `{k}`"))
                                        .field(format!("environment.{k}"))
                                        .help("`[environment]` has `ledger` and `description`"),
                                ),
                            }
                        }
                    }
                    ("variables" | "environment", other) => self.push(
                        Diagnostic::at(
                            entry.value.span,
                            format!("expected a table, found {}", other.type_name()),
                        )
                        .field(key.clone()),
                    ),
                    _ => self.push(
                        Diagnostic::at(entry.key_span, format!("unknown table `{key}` in an environment's file"))
                            .help("an environment's file holds `[environment]` (`ledger`, `description`) and `[variables]` (values by name); resources belong in the desired-state folder"),
                    ),
                }
            }
        }
        self.out.environment = Some(env);
        vars
    }

    /// Expands one module instance: its variables, module calls, resources and outputs.
    /// `args` are the call's inputs (empty at the root); returns the outputs.
    fn module(
        &mut self,
        docs: &[(FileId, Raw)],
        cx: &Context<'_>,
        args: BTreeMap<String, RawEntry>,
    ) -> BTreeMap<String, (Raw, bool)> {
        let body = self.body(docs, cx);
        let (vars, failed_vars) = self.variables(&body, cx, args);
        let mut scope = Scope {
            vars,
            failed_vars,
            each: None,
            module_outputs: BTreeMap::new(),
            for_each_calls: body
                .calls
                .iter()
                .filter(|(_, e, _)| table_has(&e.value, "for_each"))
                .map(|(n, _, _)| n.clone())
                .collect(),
            calls: body.calls.iter().map(|(n, _, _)| n.clone()).collect(),
            failed_calls: BTreeSet::new(),
            prefix: cx.prefix.clone(),
            environment: cx.environment.clone(),
        };
        if cx.root.is_some()
            && let Some((span, raw)) = self.out.settings.take()
        {
            let raw = self.subst(&raw, &scope, "settings");
            self.out.settings = Some((span, raw));
        }
        self.calls(&body, cx, &mut scope);
        for (provider, kind, name, entry, base_dir) in &body.resources {
            self.resource(provider, *kind, name, entry, base_dir, cx, &mut scope);
        }
        let mut outputs = BTreeMap::new();
        for (name, entry) in &body.outputs {
            if let Some(decl) = self.output(name, entry, cx, &scope) {
                outputs.insert(name.clone(), (decl.value.clone(), decl.sensitive));
                if cx.root.is_some() {
                    self.out.outputs.push(decl);
                } else {
                    self.out.module_outputs.push(OutputDecl {
                        name: cx.field(&format!("output.{name}")),
                        ..decl
                    });
                }
            }
        }
        outputs
    }

    /// Sorts a module's top-level tables into declarations, reporting what is not one.
    fn body(&mut self, docs: &[(FileId, Raw)], cx: &Context<'_>) -> Body {
        let mut body = Body::default();
        let mut seen: BTreeMap<String, Span> = BTreeMap::new();
        let at_root = cx.root.is_some();
        for (file, doc) in docs {
            let RawValue::Table(top) = &doc.value else {
                continue;
            };
            let base_dir = self
                .loaded
                .sources
                .file(*file)
                .path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default();
            for (key, entry) in top {
                match key.as_str() {
                    "settings" | "moved" if !at_root => self.push(
                        Diagnostic::at(entry.key_span, format!("`{key}` belongs in the root module, not in a module"))
                            .field(cx.field(key))
                            .help(if key == "moved" {
                                "write `[[moved]]` in the root module with the full addresses (`module.NAME.provider.kind.name`)"
                            } else {
                                "a module describes resources; settings are the root's"
                            }),
                    ),
                    "settings" => {
                        if let Some((first, _)) = &self.out.settings {
                            let d = Diagnostic::at(entry.key_span, "`[settings]` is defined more than once")
                                .note(*first, "first defined")
                                .help("keep all settings in one table");
                            self.push(d);
                        } else {
                            self.out.settings = Some((entry.key_span, entry.value.clone()));
                        }
                    }
                    "moved" => self.out.moved.push(entry.clone()),
                    "variable" | "output" | "module" => {
                        let Some(t) = self.table(entry, &cx.field(key)) else {
                            continue;
                        };
                        for (name, e) in t {
                            let what = format!("{key}.{name}");
                            if !is_name(name) {
                                self.push(
                                    Diagnostic::at(e.key_span, format!("`{name}` is not a valid {key} name"))
                                        .field(cx.field(&what))
                                        .help("start with a letter or `_`, then letters, digits, `_` or `-`"),
                                );
                                continue;
                            }
                            if let Some(first) = seen.get(&what) {
                                let d = Diagnostic::at(e.key_span, format!("`{what}` is defined more than once"))
                                    .field(cx.field(&what))
                                    .note(*first, "first defined");
                                self.push(d);
                                continue;
                            }
                            seen.insert(what.clone(), e.key_span);
                            if self.table(e, &cx.field(&what)).is_none() {
                                continue;
                            }
                            match key.as_str() {
                                "variable" => body.variables.push((name.clone(), e.clone(), *file)),
                                "output" => body.outputs.push((name.clone(), e.clone())),
                                _ => body.calls.push((name.clone(), e.clone(), base_dir.clone())),
                            }
                        }
                    }
                    "variables" | "environment" => self.push(
                        Diagnostic::at(entry.key_span, format!("`[{key}]` belongs in an environment's file (`{ENVIRONMENTS_DIR}/NAME.toml`)"))
                            .field(cx.field(key))
                            .help("declare a variable here with `[variable.NAME]`, and give it a value per environment in that environment's `[variables]`"),
                    ),
                    provider if PROVIDERS.contains(&provider) => {
                        let Some(kinds) = self.table(entry, &cx.field(key)) else {
                            continue;
                        };
                        for (kind_name, kind_entry) in kinds {
                            let Some(kind) = Kind::lookup(key, kind_name) else {
                                self.push(super::validate::unknown_kind(key, kind_name, kind_entry.key_span));
                                continue;
                            };
                            let Some(names) = self.table(kind_entry, &cx.field(&format!("{key}.{kind_name}"))) else {
                                continue;
                            };
                            for (name, res) in names {
                                let shown = cx.field(&format!("{key}.{kind_name}.{name}"));
                                if !is_name(name) {
                                    self.push(
                                        Diagnostic::at(res.key_span, format!("`{name}` is not a valid resource name"))
                                            .field(shown)
                                            .help("start with a letter or `_`, then letters, digits, `_` or `-`"),
                                    );
                                    continue;
                                }
                                if !matches!(res.value.value, RawValue::Table(_)) {
                                    self.push(
                                        Diagnostic::at(res.value.span, format!("expected a table, found {}", res.value.value.type_name()))
                                            .field(shown.clone())
                                            .help(format!("describe the resource as a table: `[{key}.{kind_name}.{name}]` followed by its fields")),
                                    );
                                    continue;
                                }
                                if let Some(first) = seen.get(&shown) {
                                    let d = Diagnostic::at(res.key_span, format!("`{shown}` is defined more than once"))
                                        .note(*first, "first defined")
                                        .help("each address names one resource; rename one of them");
                                    self.push(d);
                                    continue;
                                }
                                seen.insert(shown, res.key_span);
                                body.resources.push((key.clone(), kind, name.clone(), res.clone(), base_dir.clone()));
                            }
                        }
                    }
                    _ => self.push(super::validate::unknown_top_level(key, entry)),
                }
            }
        }
        body
    }

    /// Counts one more resource or module instance; false (reported once) past
    /// [`MAX_INSTANCES`], when nothing more is expanded.
    fn count_instance(&mut self, span: Span, field: &str) -> bool {
        self.instances += 1;
        if self.instances == MAX_INSTANCES + 1 {
            self.push(
                Diagnostic::at(
                    span,
                    format!(
                        "the desired state expands to more than {MAX_INSTANCES} resources and module instances"
                    ),
                )
                .field(field.to_string())
                .help("check the `for_each` lists and module calls"),
            );
        }
        self.instances <= MAX_INSTANCES
    }

    fn table<'e>(&mut self, entry: &'e RawEntry, field: &str) -> Option<&'e RawTable> {
        match &entry.value.value {
            RawValue::Table(t) => Some(t),
            other => {
                self.push(
                    Diagnostic::at(
                        entry.value.span,
                        format!("expected a table, found {}", other.type_name()),
                    )
                    .field(field),
                );
                None
            }
        }
    }

    /// Decides every declared variable's value and checks it.
    fn variables(
        &mut self,
        body: &Body,
        cx: &Context<'_>,
        args: BTreeMap<String, RawEntry>,
    ) -> (BTreeMap<String, Raw>, BTreeSet<String>) {
        let mut out = BTreeMap::new();
        // Variables whose value is missing or refused (reported): their uses say nothing
        // more.
        let mut failed = BTreeSet::new();
        let declared: Vec<&str> = body.variables.iter().map(|(n, _, _)| n.as_str()).collect();
        // Values that name no variable.
        let unknown = |x: &mut Self, name: &str, d: Diagnostic| {
            let mut d = d;
            d = match suggest(name, declared.iter().copied()) {
                Some(s) => d.help(format!("did you mean `{s}`?")),
                None if declared.is_empty() => d.help("this module declares no variables"),
                None => d.help(format!("the variables are: {}", declared.join(", "))),
            };
            x.push(d);
        };
        for (name, e) in &args {
            if !declared.contains(&name.as_str()) {
                let d = Diagnostic::at(e.key_span, format!("the module has no variable `{name}`"))
                    .field(cx.field(name));
                unknown(self, name, d);
            }
        }
        if let Some(root) = cx.root {
            for (name, e) in &root.env_file {
                if !declared.contains(&name.as_str()) {
                    let d = Diagnostic::at(
                        e.key_span,
                        format!("`{name}` is not a variable of the root module"),
                    )
                    .field(format!("variables.{name}"));
                    unknown(self, name, d);
                }
            }
            for (name, _) in &root.inputs.vars {
                if !declared.contains(&name.as_str()) {
                    let d = Diagnostic::path(
                        Path::new(&format!("--var {name}")),
                        format!("`{name}` is not a variable of the root module"),
                    );
                    unknown(self, name, d);
                }
            }
        }
        for (name, entry, declared_file) in &body.variables {
            let field = cx.field(&format!("variable.{name}"));
            let Some(decl) = self.declaration(entry, &field) else {
                failed.insert(name.clone());
                continue;
            };
            // The value, by precedence: the first of `--var` (the last one given), the
            // environment's file, PROVISIONER_VAR_NAME, the default. Only the one that wins
            // is read, so a bad value that another overrides is no problem. A relative
            // `{ file = … }` is relative to where the value is written (the process's
            // folder for the command line and the environment).
            let cwd = std::env::current_dir().unwrap_or_default();
            let declared_in = self
                .loaded
                .sources
                .file(*declared_file)
                .path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default();
            let mut from_outside = true;
            // A value given as text that could not be read (reported).
            let mut unreadable = false;
            let value: Option<Raw> = match cx.root {
                Some(root) => {
                    if let Some((_, v)) = root.inputs.vars.iter().rev().find(|(n, _)| n == name) {
                        unreadable = true;
                        self.text_value("--var", name, v, &decl)
                            .map(|v| absolutize_files(v, &cwd))
                    } else if let Some(e) = root.env_file.get(name) {
                        Some(absolutize_files(e.value.clone(), &root.env_dir))
                    } else if let Some(v) = root.inputs.env_vars.get(name) {
                        unreadable = true;
                        self.text_value(&format!("{VAR_ENV_PREFIX}{name}"), name, v, &decl)
                            .map(|v| absolutize_files(v, &cwd))
                    } else {
                        decl.default
                            .clone()
                            .map(|v| absolutize_files(v, &declared_in))
                    }
                }
                None => match args.get(name) {
                    Some(e) => {
                        from_outside = false;
                        Some(e.value.clone())
                    }
                    None => decl
                        .default
                        .clone()
                        .map(|v| absolutize_files(v, &declared_in)),
                },
            };
            let Some(value) = value else {
                failed.insert(name.clone());
                if unreadable {
                    continue;
                }
                let d = Diagnostic::at(entry.key_span, format!("variable `{name}` has no value"))
                    .field(field.clone())
                    .help(if cx.root.is_some() {
                        format!("give it a `default`, or a value in the environment's `[variables]`, with `--var {name}=VALUE`, or in {VAR_ENV_PREFIX}{name}")
                    } else {
                        format!("set `{name} = …` in the module's call, or give it a `default`")
                    });
                self.push(d);
                continue;
            };
            if from_outside && has_unescaped_reference(&value) {
                let d = Diagnostic::at(value.span, format!("the value of variable `{name}` holds a reference (`${{`): a variable's value comes from outside the desired state and cannot name a resource"))
                    .field(field.clone())
                    .help("pass the resource's attribute where the variable is used instead, or write `$${` for a literal `${`");
                self.push(d);
                failed.insert(name.clone());
                continue;
            }
            if self.check_value(&value, &decl, name, &field, entry.key_span) {
                out.insert(name.clone(), value);
            } else {
                failed.insert(name.clone());
            }
        }
        (out, failed)
    }

    /// A value given as text (`--var`, `PROVISIONER_VAR_`): a string variable takes it as
    /// it is; any other type reads it as a TOML value (`3`, `true`, `["a", "b"]`).
    fn text_value(&mut self, origin: &str, name: &str, text: &str, decl: &VarDecl) -> Option<Raw> {
        let literal = if matches!(decl.ty, VarType::String) {
            toml::Value::String(text.to_string()).to_string()
        } else {
            text.to_string()
        };
        let mut scratch = Loaded::default();
        let path = PathBuf::from(format!("({origin} {name})"));
        load_text(path.clone(), format!("{name} = {literal}\n"), &mut scratch);
        if !scratch.diagnostics.is_empty() || scratch.documents.is_empty() {
            // A secret variable's text is never repeated: it may be the secret itself.
            let shown = if matches!(decl.ty, VarType::Secret) {
                "the value".to_string()
            } else {
                format!("`{text}`")
            };
            self.push(
                Diagnostic::path(
                    &path,
                    format!(
                        "{shown} is not a TOML value for variable `{name}` ({})",
                        decl.ty.describe()
                    ),
                )
                .help(if matches!(decl.ty, VarType::Secret) {
                    "give a secret source: `{ env = \"NAME\" }` or `{ file = \"path\" }`"
                } else {
                    "write it as in TOML: `3`, `true`, `[\"a\", \"b\"]`, `{ a = 1 }`"
                }),
            );
            return None;
        }
        // Keep the text as a source, so a problem with the value can show it.
        let id = self
            .loaded
            .sources
            .add(path, format!("{name} = {literal}\n"));
        self.out.pseudo_files += 1;
        let (_, doc) = scratch.documents.remove(0);
        let RawValue::Table(mut t) = doc.value else {
            return None;
        };
        let mut v = t.remove(name)?.value;
        respan(&mut v, &|_| id);
        Some(v)
    }

    fn declaration(&mut self, entry: &RawEntry, field: &str) -> Option<VarDecl> {
        let RawValue::Table(t) = &entry.value.value else {
            return None;
        };
        let mut ok = true;
        let mut decl = VarDecl {
            ty: VarType::Any,
            default: None,
            allowed: None,
            pattern: None,
            min: None,
            max: None,
            error_message: None,
        };
        for (k, e) in t {
            let f = format!("{field}.{k}");
            let v = &e.value;
            match (k.as_str(), &v.value) {
                ("type", RawValue::String(s)) => match VarType::parse(s) {
                    Some(ty) => decl.ty = ty,
                    None => {
                        ok = false;
                        self.push(Diagnostic::at(v.span, format!("`{s}` is not a variable type")).field(f).help("the types are string, number, bool, secret, any, list(T) and map(T) with T one of string, number, bool, any"));
                    }
                },
                ("default", _) => decl.default = Some(v.clone()),
                ("description", RawValue::String(_)) => {}
                ("error_message", RawValue::String(s)) => decl.error_message = Some(s.clone()),
                ("allowed", RawValue::Array(items)) => decl.allowed = Some(items.clone()),
                ("pattern", RawValue::String(s)) => {
                    match regex::Regex::new(&format!("^(?:{s})$")) {
                        Ok(r) => decl.pattern = Some((s.clone(), r)),
                        Err(e) => {
                            ok = false;
                            self.push(
                                Diagnostic::at(v.span, format!("not a regular expression: {e}"))
                                    .field(f),
                            );
                        }
                    }
                }
                ("min", RawValue::Integer(n)) => decl.min = Some(*n as f64),
                ("min", RawValue::Float(n)) => decl.min = Some(*n),
                ("max", RawValue::Integer(n)) => decl.max = Some(*n as f64),
                ("max", RawValue::Float(n)) => decl.max = Some(*n),
                ("type" | "description" | "error_message" | "pattern", other) => {
                    ok = false;
                    self.push(
                        Diagnostic::at(
                            v.span,
                            format!("expected a string, found {}", other.type_name()),
                        )
                        .field(f),
                    );
                }
                ("allowed", other) => {
                    ok = false;
                    self.push(
                        Diagnostic::at(
                            v.span,
                            format!("expected an array, found {}", other.type_name()),
                        )
                        .field(f),
                    );
                }
                ("min" | "max", other) => {
                    ok = false;
                    self.push(
                        Diagnostic::at(
                            v.span,
                            format!("expected a number, found {}", other.type_name()),
                        )
                        .field(f),
                    );
                }
                _ => {
                    ok = false;
                    let names = [
                        "type",
                        "default",
                        "description",
                        "allowed",
                        "pattern",
                        "min",
                        "max",
                        "error_message",
                    ];
                    let mut d = Diagnostic::at(e.key_span, format!("unknown field `{k}`")).field(f);
                    d = match suggest(k, names) {
                        Some(s) => d.help(format!("did you mean `{s}`?")),
                        None => d.help(format!("a variable has {}", names.join(", "))),
                    };
                    self.push(d);
                }
            }
        }
        if let Some(default) = &decl.default
            && has_unescaped_reference(default)
        {
            ok = false;
            self.push(
                Diagnostic::at(
                    default.span,
                    "a variable's default cannot hold a reference (`${`)",
                )
                .field(format!("{field}.default"))
                .help("write `$${` for a literal `${`"),
            );
        }
        ok.then_some(decl)
    }

    /// Checks a value against its declaration: type, then the checks. True when it passes.
    fn check_value(
        &mut self,
        v: &Raw,
        decl: &VarDecl,
        name: &str,
        field: &str,
        decl_span: Span,
    ) -> bool {
        let secret = matches!(decl.ty, VarType::Secret);
        let fail = |x: &mut Self, span: Span, msg: String| {
            let mut d = Diagnostic::at(span, msg)
                .field(field.to_string())
                .note(decl_span, format!("variable `{name}` declared"));
            if let Some(m) = &decl.error_message {
                d = d.help(m.clone());
            }
            // The line of a secret variable's value is never shown: it may hold the secret.
            if secret {
                d = d.redacted();
            }
            x.push(d);
            false
        };
        // A value that names a resource's attribute (a module input such as
        // `"${aws.iam_smtp_user.smtp.smtp_password}"`) is not known before apply: its type
        // and checks are the field's that finally holds it, where validation checks them.
        if holds_reference(v) {
            return true;
        }
        if let RawValue::Float(f) = v.value
            && !f.is_finite()
        {
            return fail(
                self,
                v.span,
                format!("variable `{name}` must be a finite number, not {f}"),
            );
        }
        if let Err((span, why)) = decl.ty.check(v) {
            return fail(
                self,
                span,
                format!("variable `{name}` is {}, {why}", decl.ty.describe()),
            );
        }
        if secret {
            return true;
        }
        if let Some(allowed) = &decl.allowed
            && !allowed.iter().any(|a| same(a, v))
        {
            let list: Vec<String> = allowed.iter().map(show).collect();
            return fail(
                self,
                v.span,
                format!(
                    "{} is not allowed for variable `{name}`: one of {}",
                    show(v),
                    list.join(", ")
                ),
            );
        }
        if let (Some((text, re)), RawValue::String(s)) = (&decl.pattern, &v.value)
            && !re.is_match(s)
        {
            return fail(
                self,
                v.span,
                format!("\"{s}\" does not match the pattern `{text}` of variable `{name}`"),
            );
        }
        let n = match v.value {
            RawValue::Integer(n) => Some(n as f64),
            RawValue::Float(n) => Some(n),
            _ => None,
        };
        if let Some(n) = n {
            if let Some(min) = decl.min
                && n < min
            {
                return fail(
                    self,
                    v.span,
                    format!("{n} is below the minimum {min} of variable `{name}`"),
                );
            }
            if let Some(max) = decl.max
                && n > max
            {
                return fail(
                    self,
                    v.span,
                    format!("{n} is above the maximum {max} of variable `{name}`"),
                );
            }
        }
        true
    }

    /// Expands the module calls, in the order their inputs need each other's outputs.
    fn calls(&mut self, body: &Body, cx: &Context<'_>, scope: &mut Scope) {
        let mut pending: Vec<&(String, RawEntry, PathBuf)> = body.calls.iter().collect();
        while !pending.is_empty() {
            let ready: Vec<usize> = pending
                .iter()
                .enumerate()
                .filter(|(_, (_, e, _))| {
                    let mut named = BTreeSet::new();
                    module_uses(&e.value, &mut named);
                    named
                        .iter()
                        .all(|n| !pending.iter().any(|(p, _, _)| p == n))
                })
                .map(|(i, _)| i)
                .collect();
            if ready.is_empty() {
                let names: Vec<&str> = pending.iter().map(|(n, _, _)| n.as_str()).collect();
                let (_, first, _) = pending[0];
                self.push(
                    Diagnostic::at(
                        first.key_span,
                        format!(
                            "module calls need each other's outputs in a cycle: {}",
                            names.join(", ")
                        ),
                    )
                    .field(cx.field(&format!("module.{}", names[0])))
                    .help("pass resources' attributes instead of one of the outputs"),
                );
                return;
            }
            for i in ready.iter().rev() {
                let (name, entry, base_dir) = pending.remove(*i);
                self.call(name, entry, base_dir, cx, scope);
            }
        }
    }

    fn call(
        &mut self,
        name: &str,
        entry: &RawEntry,
        base_dir: &Path,
        cx: &Context<'_>,
        scope: &mut Scope,
    ) {
        let field = cx.field(&format!("module.{name}"));
        let RawValue::Table(t) = &entry.value.value else {
            return;
        };
        let Some(source) = t.get("source") else {
            self.push(Diagnostic::at(entry.key_span, "`source` is required").field(format!("{field}.source")).help("name the module's folder, relative to this file: `source = \"../modules/mail\"`"));
            return;
        };
        let RawValue::String(rel) = &source.value.value else {
            self.push(
                Diagnostic::at(
                    source.value.span,
                    format!(
                        "expected a string, found {}",
                        source.value.value.type_name()
                    ),
                )
                .field(format!("{field}.source")),
            );
            return;
        };
        let Some(dir) =
            self.module_dir(rel, base_dir, source.value.span, &format!("{field}.source"))
        else {
            return;
        };
        if cx.depth + 1 > MAX_MODULE_DEPTH {
            // Once per call site, not once per instance that reaches it.
            if self.reported.insert(entry.key_span) {
                self.push(
                    Diagnostic::at(
                        entry.key_span,
                        format!("modules nested deeper than {MAX_MODULE_DEPTH} levels"),
                    )
                    .field(field),
                );
            }
            return;
        }
        if cx.chain.contains(&dir) {
            if self.reported.insert(source.value.span) {
                self.push(Diagnostic::at(source.value.span, format!("module `{name}` calls a module that is already being expanded ({}): a module cannot contain itself", dir.display())).field(format!("{field}.source")));
            }
            return;
        }
        let ids = match self.modules.get(&dir) {
            Some(ids) => ids.clone(),
            None => {
                let before = self.loaded.documents.len();
                // Shown as the user knows it (`desired-state/modules/app/main.toml`), not
                // by its real path.
                let shown = match &self.root {
                    Some(root) => self.root_shown.join(dir.strip_prefix(root).unwrap_or(&dir)),
                    None => dir.clone(),
                };
                let mut sub = super::load::load_dir_except(&shown, &[MODULES_DIR]);
                // Append the module's files to the one set of sources, renumbered.
                let offset = self.loaded.sources.len() as u32;
                for i in 0..sub.sources.len() {
                    let f = sub.sources.file(FileId(i as u32));
                    self.loaded.sources.add(f.path.clone(), f.text.clone());
                }
                for d in sub.diagnostics.iter_mut() {
                    renumber_diag(d, offset);
                }
                self.loaded.diagnostics.append(&mut sub.diagnostics);
                for (id, mut raw) in sub.documents {
                    respan(&mut raw, &|f| FileId(f.0 + offset));
                    self.loaded.documents.push((FileId(id.0 + offset), raw));
                }
                let ids: Vec<usize> = (before..self.loaded.documents.len()).collect();
                self.modules.insert(dir.clone(), ids.clone());
                ids
            }
        };
        let docs = self.docs(&ids);
        let inputs: BTreeMap<String, RawEntry> = t
            .iter()
            .filter(|(k, _)| *k != "source" && *k != "for_each")
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        let instances = match t.get("for_each") {
            None => vec![None],
            Some(fe) => match self.for_each(&fe.value, scope, &format!("{field}.for_each")) {
                Some(list) => list.into_iter().map(Some).collect(),
                None => return,
            },
        };
        let mut chain = cx.chain.clone();
        chain.push(dir);
        for each in instances {
            if !self.count_instance(entry.key_span, &field) {
                return;
            }
            let instance = match &each {
                None => name.to_string(),
                Some((k, _)) => format!("{name}[\"{}\"]", key_text(k)),
            };
            let prefix = cx.field(&format!("module.{instance}"));
            scope.each = each.clone();
            let before = self.loaded.diagnostics.len();
            self.subst_failed = false;
            let args: BTreeMap<String, RawEntry> = inputs
                .iter()
                .map(|(k, e)| {
                    let value = absolutize_files(
                        self.subst(&e.value, scope, &format!("{field}.{k}")),
                        base_dir,
                    );
                    (
                        k.clone(),
                        RawEntry {
                            key_span: e.key_span,
                            value,
                        },
                    )
                })
                .collect();
            scope.each = None;
            if self.loaded.diagnostics.len() > before || self.subst_failed {
                // An input could not be made (reported): the instance is not expanded, so
                // its resources do not add problems of their own about an empty value.
                scope.module_outputs.insert(instance, BTreeMap::new());
                scope.failed_calls.insert(name.to_string());
                continue;
            }
            self.out.calls.insert(prefix.clone(), entry.key_span);
            let outputs = self.module(
                &docs,
                &Context {
                    prefix,
                    depth: cx.depth + 1,
                    chain: chain.clone(),
                    root: None,
                    environment: cx.environment.clone(),
                },
                args,
            );
            scope.module_outputs.insert(instance, outputs);
        }
    }

    /// The real path of a module's folder: `rel` against `base_dir`, which must be a
    /// folder inside the desired state's `modules/`.
    fn module_dir(
        &mut self,
        rel: &str,
        base_dir: &Path,
        span: Span,
        field: &str,
    ) -> Option<PathBuf> {
        let Some(root) = self.root.clone() else {
            self.push(Diagnostic::at(span, "modules need a desired-state folder").field(field));
            return None;
        };
        let joined = base_dir.join(rel);
        let real = match joined.canonicalize() {
            Ok(r) => r,
            Err(e) => {
                self.push(Diagnostic::at(span, format!("cannot read the module's folder {}: {e}", joined.display())).field(field).help(format!("modules live in folders below `{MODULES_DIR}/` of the desired state; `source` is relative to the file that calls the module")));
                return None;
            }
        };
        if !real.is_dir() {
            self.push(
                Diagnostic::at(span, format!("{} is not a folder", joined.display())).field(field),
            );
            return None;
        }
        if !real.starts_with(root.join(MODULES_DIR)) || real == root.join(MODULES_DIR) {
            self.push(Diagnostic::at(span, format!("{} is not a module folder below `{MODULES_DIR}/` of the desired state", joined.display())).field(field).help(format!("put the module in its own folder below `{}`: files elsewhere are part of the root module, or outside the desired state", root.join(MODULES_DIR).display())));
            return None;
        }
        Some(real)
    }

    /// The instances a `for_each` makes: (key, value) pairs, checked.
    fn for_each(&mut self, raw: &Raw, scope: &Scope, field: &str) -> Option<Vec<(Raw, Raw)>> {
        let v = self.subst(raw, scope, field);
        let mut out: Vec<(Raw, Raw)> = Vec::new();
        let mut seen = BTreeSet::new();
        let mut check_key = |x: &mut Self, k: &str, span: Span| -> bool {
            if !is_key(k) {
                x.push(
                    Diagnostic::at(span, format!("\"{k}\" cannot be a `for_each` key"))
                        .field(field.to_string())
                        .help(format!(
                            "a key is 1 to {} characters among letters, digits and `_ - . / : @ +`",
                            super::refs::MAX_KEY_LEN
                        )),
                );
                return false;
            }
            if !seen.insert(k.to_string()) {
                x.push(
                    Diagnostic::at(
                        span,
                        format!("\"{k}\" is listed twice: each key makes one instance"),
                    )
                    .field(field.to_string()),
                );
                return false;
            }
            true
        };
        match &v.value {
            RawValue::Array(items) => {
                for item in items {
                    let RawValue::String(k) = &item.value else {
                        self.push(Diagnostic::at(item.span, format!("a `for_each` list holds strings (the keys), found {}", item.value.type_name())).field(field.to_string()).help("for other values, use a table: `for_each = { key = value, … }` and `${each.value}`"));
                        return None;
                    };
                    if !check_key(self, k, item.span) {
                        return None;
                    }
                    out.push((item.clone(), item.clone()));
                }
            }
            RawValue::Table(t) => {
                for (k, e) in t {
                    if !check_key(self, k, e.key_span) {
                        return None;
                    }
                    let key = Raw {
                        span: e.key_span,
                        value: RawValue::String(k.clone()),
                    };
                    out.push((key, e.value.clone()));
                }
            }
            other => {
                self.push(
                    Diagnostic::at(
                        v.span,
                        format!(
                            "`for_each` takes a list of strings or a table, found {}",
                            other.type_name()
                        ),
                    )
                    .field(field.to_string()),
                );
                return None;
            }
        }
        Some(out)
    }

    #[allow(clippy::too_many_arguments)]
    fn resource(
        &mut self,
        provider: &str,
        kind: Kind,
        name: &str,
        entry: &RawEntry,
        base_dir: &Path,
        cx: &Context<'_>,
        scope: &mut Scope,
    ) {
        let RawValue::Table(t) = &entry.value.value else {
            return;
        };
        let shown = cx.field(&format!("{provider}.{}.{name}", kind.name()));
        let instances = match t.get("for_each") {
            None => vec![None],
            Some(fe) => match self.for_each(&fe.value, scope, &format!("{shown}.for_each")) {
                Some(list) => list.into_iter().map(Some).collect(),
                None => return,
            },
        };
        let fields: RawTable = t
            .iter()
            .filter(|(k, _)| *k != "for_each")
            .map(|(k, e)| (k.clone(), e.clone()))
            .collect();
        for each in instances {
            if !self.count_instance(entry.key_span, &shown) {
                return;
            }
            let instance_name = match &each {
                None => name.to_string(),
                Some((k, _)) => format!("{name}[\"{}\"]", key_text(k)),
            };
            let address = Address::in_module(&cx.prefix, provider, kind.name(), &instance_name);
            scope.each = each;
            let before = self.loaded.diagnostics.len();
            self.subst_failed = false;
            let mut raw = self.subst(
                &Raw {
                    span: entry.value.span,
                    value: RawValue::Table(fields.clone()),
                },
                scope,
                address.as_str(),
            );
            scope.each = None;
            if !cx.prefix.is_empty()
                && let RawValue::Table(t) = &mut raw.value
                && let Some(deps) = t.get_mut("depends_on")
                && let RawValue::Array(items) = &mut deps.value.value
            {
                for item in items {
                    if let RawValue::String(s) = &mut item.value {
                        *s = format!("{}.{s}", cx.prefix);
                    }
                }
            }
            if self.loaded.diagnostics.len() > before || self.subst_failed {
                self.out.failed.insert(address.clone());
            }
            self.out.instances.push(Instance {
                address,
                kind,
                raw,
                key_span: entry.key_span,
                base_dir: base_dir.to_path_buf(),
            });
        }
    }

    fn output(
        &mut self,
        name: &str,
        entry: &RawEntry,
        cx: &Context<'_>,
        scope: &Scope,
    ) -> Option<OutputDecl> {
        let field = cx.field(&format!("output.{name}"));
        let RawValue::Table(t) = &entry.value.value else {
            return None;
        };
        let mut reads_sensitive = false;
        let mut decl = OutputDecl {
            name: name.to_string(),
            value: Raw {
                span: entry.key_span,
                value: RawValue::String(String::new()),
            },
            description: None,
            sensitive: false,
            span: entry.key_span,
        };
        let mut value = None;
        for (k, e) in t {
            let f = format!("{field}.{k}");
            match (k.as_str(), &e.value.value) {
                ("value", _) => {
                    self.sensitive_read = false;
                    value = Some(self.subst(&e.value, scope, &f));
                    reads_sensitive = self.sensitive_read;
                }
                ("description", RawValue::String(s)) => decl.description = Some(s.clone()),
                ("sensitive", RawValue::Bool(b)) => decl.sensitive = *b,
                ("description", other) => self.push(
                    Diagnostic::at(
                        e.value.span,
                        format!("expected a string, found {}", other.type_name()),
                    )
                    .field(f),
                ),
                ("sensitive", other) => self.push(
                    Diagnostic::at(
                        e.value.span,
                        format!("expected a boolean, found {}", other.type_name()),
                    )
                    .field(f),
                ),
                _ => self.push(
                    Diagnostic::at(e.key_span, format!("unknown field `{k}`"))
                        .field(f)
                        .help("an output has `value`, `description` and `sensitive`"),
                ),
            }
        }
        let Some(value) = value else {
            self.push(
                Diagnostic::at(entry.key_span, "`value` is required")
                    .field(format!("{field}.value")),
            );
            return None;
        };
        // As Terraform: an output that shows a sensitive output of a module must say it is
        // sensitive too, or `provisioner output` would print it in clear.
        if reads_sensitive && !decl.sensitive {
            self.push(
                Diagnostic::at(
                    entry.key_span,
                    format!("output `{name}` reads a module's sensitive output"),
                )
                .field(field.clone())
                .help("mark it `sensitive = true`"),
            );
            return None;
        }
        // A secret source (a `type = "secret"` variable) is not published: its variable
        // name or path is not for every reader of the ledger.
        if holds_secret_source(&value) {
            self.push(
                Diagnostic::at(
                    value.span,
                    format!("output `{name}` would publish a secret source"),
                )
                .field(format!("{field}.value"))
                .redacted()
                .help("a secret variable flows only into secret fields; publish something else"),
            );
            return None;
        }
        decl.value = value;
        Some(decl)
    }

    /// `raw` with every `${var.…}`, `${each.…}`, `${module.NAME.OUTPUT}` and
    /// `${environment.name}` filled in, and references to resources moved under this
    /// module's prefix.
    fn subst(&mut self, raw: &Raw, scope: &Scope, field: &str) -> Raw {
        match &raw.value {
            RawValue::String(s) if may_hold_reference(s) => {
                self.subst_str(s, raw.span, scope, field)
            }
            RawValue::Array(items) => Raw {
                span: raw.span,
                value: RawValue::Array(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, r)| self.subst(r, scope, &format!("{field}[{i}]")))
                        .collect(),
                ),
            },
            RawValue::Table(t) => Raw {
                span: raw.span,
                value: RawValue::Table(
                    t.iter()
                        .map(|(k, e)| {
                            (
                                k.clone(),
                                RawEntry {
                                    key_span: e.key_span,
                                    value: self.subst(&e.value, scope, &format!("{field}.{k}")),
                                },
                            )
                        })
                        .collect(),
                ),
            },
            _ => raw.clone(),
        }
    }

    fn subst_str(&mut self, s: &str, span: Span, scope: &Scope, field: &str) -> Raw {
        enum Piece {
            Text(String),
            Value(Raw),
        }
        let mut pieces: Vec<Piece> = Vec::new();
        let mut text = String::new();
        let mut rest = s;
        let mut failed = false;
        while let Some(pos) = rest.find('$') {
            let tail = &rest[pos..];
            if let Some(after) = tail.strip_prefix("$${") {
                text.push_str(&rest[..pos + 3]);
                rest = after;
                continue;
            }
            let Some(after) = tail.strip_prefix("${") else {
                text.push_str(&rest[..=pos]);
                rest = &tail[1..];
                continue;
            };
            text.push_str(&rest[..pos]);
            let Some(end) = after.find('}') else {
                // Left for the validator to report.
                text.push_str(tail);
                rest = "";
                break;
            };
            let body = after[..end].trim();
            rest = &after[end + 1..];
            match self.lookup(body, scope, span, field) {
                Lookup::Value(v) => {
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Value(v));
                }
                Lookup::Resource => {
                    if scope.prefix.is_empty() {
                        text.push_str(&format!("${{{body}}}"));
                    } else {
                        text.push_str(&format!("${{{}.{body}}}", scope.prefix));
                    }
                }
                Lookup::Failed => {
                    failed = true;
                    self.subst_failed = true;
                    text.push_str(&format!("$${{{body}}}"));
                }
            }
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        if failed {
            return Raw {
                span,
                value: RawValue::String(String::new()),
            };
        }
        if let [Piece::Value(v)] = pieces.as_slice() {
            return v.clone();
        }
        let mut out = String::new();
        for p in pieces {
            match p {
                Piece::Text(t) => out.push_str(&t),
                Piece::Value(v) => match &v.value {
                    RawValue::String(x) => out.push_str(x),
                    RawValue::Integer(n) => out.push_str(&n.to_string()),
                    RawValue::Float(n) => out.push_str(&n.to_string()),
                    RawValue::Bool(b) => out.push_str(&b.to_string()),
                    other => {
                        self.push(Diagnostic::at(span, format!("{} cannot be put inside a string", other.type_name())).field(field.to_string()).help("use the value alone in the string (`\"${var.x}\"`) to pass a list or a table"));
                        return Raw {
                            span,
                            value: RawValue::String(String::new()),
                        };
                    }
                },
            }
        }
        Raw {
            span,
            value: RawValue::String(out),
        }
    }

    fn lookup(&mut self, body: &str, scope: &Scope, span: Span, field: &str) -> Lookup {
        let fail = |x: &mut Self, msg: String, help: Option<String>| {
            let mut d = Diagnostic::at(span, msg).field(field.to_string());
            if let Some(h) = help {
                d = d.help(h);
            }
            x.push(d);
            Lookup::Failed
        };
        if let Some(name) = body.strip_prefix("var.") {
            if scope.failed_vars.contains(name) {
                return Lookup::Failed;
            }
            if name.contains(['.', '[']) {
                return fail(
                    self,
                    format!("`${{{body}}}`: a variable is used whole, `${{var.NAME}}`"),
                    Some("for a field of a table, loop over it with `for_each` and read `${each.value.FIELD}`, or declare a variable for the field".into()),
                );
            }
            return match scope.vars.get(name) {
                Some(v) => Lookup::Value(v.clone()),
                None => {
                    let names: Vec<&str> = scope.vars.keys().map(String::as_str).collect();
                    let help = suggest(name, names.iter().copied()).map(|s| format!("did you mean `var.{s}`?")).or_else(|| Some(format!("declare it with `[variable.{name}]` (variables of this module: {})", if names.is_empty() { "none".to_string() } else { names.join(", ") })));
                    fail(
                        self,
                        format!("`${{var.{name}}}` names no variable with a value"),
                        help,
                    )
                }
            };
        }
        if body.starts_with("environment.") && body != "environment.name" {
            return fail(
                self,
                format!("`${{{body}}}`: the environment has only `name`"),
                Some("write `${environment.name}`".into()),
            );
        }
        if let Some(first) = ["local", "count", "terraform", "path", "data"]
            .into_iter()
            .find(|w| body.starts_with(&format!("{w}.")))
        {
            return fail(
                self,
                format!("`${{{body}}}`: there is no `{first}` in this language"),
                Some("the names are `var.NAME`, `each.key`/`each.value`, `module.NAME.OUTPUT`, `environment.name` and resources' attributes; docs/desired-state.md says where it differs from Terraform".into()),
            );
        }
        if body == "environment.name" {
            return match &scope.environment {
                Some(e) => Lookup::Value(Raw { span, value: RawValue::String(e.clone()) }),
                None => fail(self, "`${environment.name}` is used, but no environment is chosen".into(), Some("pass `-e NAME` or set PROVISIONER_ENVIRONMENT; environments are the files of `environments/`".into())),
            };
        }
        if body == "each" || body.starts_with("each.") {
            let Some((key, value)) = &scope.each else {
                return fail(self, format!("`${{{body}}}` is used outside a `for_each`"), Some("`each.key` and `each.value` exist only in a resource or module call with `for_each`".into()));
            };
            if body == "each"
                || !(body == "each.key" || body == "each.value" || body.starts_with("each.value."))
            {
                return fail(
                    self,
                    format!("`${{{body}}}` is not `each.key`, `each.value` or `each.value.FIELD`"),
                    None,
                );
            }
            return match body {
                "each.key" => Lookup::Value(Raw {
                    span: key.span,
                    value: key.value.clone(),
                }),
                "each.value" => Lookup::Value(value.clone()),
                _ => {
                    let path = body.strip_prefix("each.value.").unwrap_or("");
                    let mut cur = value;
                    for seg in path.split('.') {
                        match &cur.value {
                            RawValue::Table(t) if t.contains_key(seg) => cur = &t[seg].value,
                            _ => return fail(self, format!("`${{{body}}}`: `each.value` has no field `{seg}` here"), Some("write `each.key`, `each.value`, or `each.value.FIELD` when the `for_each` table's values are tables".into())),
                        }
                    }
                    Lookup::Value(cur.clone())
                }
            };
        }
        if let Some(rest) = body.strip_prefix("module.") {
            let parts = split_outside_keys(rest);
            if parts.len() == 2 {
                let (call, output) = (parts[0], parts[1]);
                let base = call.split('[').next().unwrap_or(call);
                if !scope.calls.contains(base) {
                    let names: Vec<&str> = scope.calls.iter().map(String::as_str).collect();
                    return fail(
                        self,
                        format!("`${{{body}}}` names no module call `{base}` of this module"),
                        suggest(base, names.iter().copied())
                            .map(|s| format!("did you mean `module.{s}`?")),
                    );
                }
                if scope.for_each_calls.contains(base) && call == base {
                    return fail(
                        self,
                        format!("`module.{base}` has `for_each`: name one of its instances"),
                        Some(format!("write `${{module.{base}[\"KEY\"].{output}}}`")),
                    );
                }
                if scope.failed_calls.contains(base) {
                    return Lookup::Failed;
                }
                let Some(outputs) = scope.module_outputs.get(call) else {
                    if call == base {
                        // Not expanded: its own problems (a cycle, a bad `source`) are
                        // reported where they are.
                        return Lookup::Failed;
                    }
                    return fail(
                        self,
                        format!(
                            "`module.{call}` is not an instance of the call (no such `for_each` key)"
                        ),
                        None,
                    );
                };
                return match outputs.get(output) {
                    Some((v, sensitive)) => {
                        self.sensitive_read |= *sensitive;
                        Lookup::Value(v.clone())
                    }
                    None => {
                        let names: Vec<&str> = outputs.keys().map(String::as_str).collect();
                        fail(
                            self,
                            format!("module `{base}` has no output `{output}`"),
                            Some(match suggest(output, names.iter().copied()) {
                                Some(s) => format!("did you mean `{s}`?"),
                                None => format!(
                                    "its outputs: {}",
                                    if names.is_empty() {
                                        "none".to_string()
                                    } else {
                                        names.join(", ")
                                    }
                                ),
                            }),
                        )
                    }
                };
            }
            return fail(
                self,
                format!(
                    "`${{{body}}}`: a module is read through its outputs, `${{module.NAME.OUTPUT}}`"
                ),
                Some("declare an `[output.NAME]` in the module for what the caller needs".into()),
            );
        }
        Lookup::Resource
    }
}

enum Lookup {
    Value(Raw),
    Resource,
    Failed,
}

struct VarDecl {
    ty: VarType,
    default: Option<Raw>,
    allowed: Option<Vec<Raw>>,
    pattern: Option<(String, regex::Regex)>,
    min: Option<f64>,
    max: Option<f64>,
    error_message: Option<String>,
}

/// A variable's type.
#[derive(Clone, Debug, PartialEq)]
enum VarType {
    String,
    Number,
    Bool,
    Any,
    /// A secret source: `{ env = … }` or `{ file = … }`.
    Secret,
    List(Box<VarType>),
    Map(Box<VarType>),
}

impl VarType {
    fn parse(s: &str) -> Option<VarType> {
        let scalar = |t: &str| match t {
            "string" => Some(VarType::String),
            "number" => Some(VarType::Number),
            "bool" => Some(VarType::Bool),
            "any" => Some(VarType::Any),
            _ => None,
        };
        if s == "secret" {
            return Some(VarType::Secret);
        }
        if let Some(t) = s.strip_prefix("list(").and_then(|r| r.strip_suffix(')')) {
            return Some(VarType::List(Box::new(scalar(t)?)));
        }
        if let Some(t) = s.strip_prefix("map(").and_then(|r| r.strip_suffix(')')) {
            return Some(VarType::Map(Box::new(scalar(t)?)));
        }
        match s {
            "list" => Some(VarType::List(Box::new(VarType::Any))),
            "map" => Some(VarType::Map(Box::new(VarType::Any))),
            _ => scalar(s),
        }
    }

    fn describe(&self) -> String {
        match self {
            VarType::String => "a string".into(),
            VarType::Number => "a number".into(),
            VarType::Bool => "a boolean".into(),
            VarType::Any => "of any type".into(),
            VarType::Secret => "a secret source (`{ env = … }` or `{ file = … }`)".into(),
            VarType::List(t) => format!("a list of {}", t.plural()),
            VarType::Map(t) => format!("a table of {}", t.plural()),
        }
    }

    fn plural(&self) -> &'static str {
        match self {
            VarType::String => "strings",
            VarType::Number => "numbers",
            VarType::Bool => "booleans",
            _ => "values",
        }
    }

    fn check(&self, v: &Raw) -> Result<(), (Span, String)> {
        let found = || (v.span, format!("found {}", v.value.type_name()));
        match (self, &v.value) {
            (VarType::Any, _) => Ok(()),
            (VarType::String, RawValue::String(_)) => Ok(()),
            (VarType::Number, RawValue::Integer(_) | RawValue::Float(_)) => Ok(()),
            (VarType::Bool, RawValue::Bool(_)) => Ok(()),
            (VarType::Secret, RawValue::Table(t)) => {
                let ok = t.len() == 1
                    && t.iter().all(|(k, e)| {
                        (k == "env" || k == "file") && matches!(e.value.value, RawValue::String(_))
                    });
                if ok {
                    Ok(())
                } else {
                    Err((v.span, "found another table".into()))
                }
            }
            (VarType::Secret, RawValue::String(_)) => Err((
                v.span,
                "found a plain string: a secret value is never written in the desired state".into(),
            )),
            (VarType::List(t), RawValue::Array(items)) => items.iter().try_for_each(|i| t.check(i)),
            (VarType::Map(t), RawValue::Table(m)) => m.values().try_for_each(|e| t.check(&e.value)),
            _ => Err(found()),
        }
    }
}

/// True when two values are equal (for `allowed`).
fn same(a: &Raw, b: &Raw) -> bool {
    match (&a.value, &b.value) {
        (RawValue::String(x), RawValue::String(y)) => x == y,
        (RawValue::Integer(x), RawValue::Integer(y)) => x == y,
        (RawValue::Float(x), RawValue::Float(y)) => x == y,
        (RawValue::Integer(x), RawValue::Float(y)) | (RawValue::Float(y), RawValue::Integer(x)) => {
            (*x as f64) == *y
        }
        (RawValue::Bool(x), RawValue::Bool(y)) => x == y,
        _ => false,
    }
}

fn show(v: &Raw) -> String {
    match &v.value {
        RawValue::String(s) => format!("\"{s}\""),
        RawValue::Integer(n) => n.to_string(),
        RawValue::Float(n) => n.to_string(),
        RawValue::Bool(b) => b.to_string(),
        other => other.type_name().to_string(),
    }
}

fn key_text(k: &Raw) -> String {
    match &k.value {
        RawValue::String(s) => s.clone(),
        _ => String::new(),
    }
}

fn table_has(raw: &Raw, key: &str) -> bool {
    matches!(&raw.value, RawValue::Table(t) if t.contains_key(key))
}

/// The module calls a raw value reads outputs of (`${module.NAME…}`), by `NAME`.
fn module_uses(raw: &Raw, out: &mut BTreeSet<String>) {
    match &raw.value {
        RawValue::String(s) => {
            let mut rest = s.as_str();
            while let Some(i) = rest.find("${module.") {
                let after = &rest[i + "${module.".len()..];
                // `$${module.…}` is the escape for literal text, not a use.
                if rest[..i].ends_with('$') {
                    rest = after;
                    continue;
                }
                let name: String = after
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                    .collect();
                out.insert(name);
                rest = after;
            }
        }
        RawValue::Array(items) => items.iter().for_each(|i| module_uses(i, out)),
        RawValue::Table(t) => t.values().for_each(|e| module_uses(&e.value, out)),
        _ => {}
    }
}

/// True when `raw` is, or holds, a secret source table (`{ env = … }`, `{ file = … }`).
fn holds_secret_source(raw: &Raw) -> bool {
    match &raw.value {
        RawValue::Table(t) => {
            (t.len() == 1 && (t.contains_key("env") || t.contains_key("file")))
                || t.values().any(|e| holds_secret_source(&e.value))
        }
        RawValue::Array(items) => items.iter().any(holds_secret_source),
        _ => false,
    }
}

/// True when `raw` is one string that holds a reference (a `${` that is not `$${`) and
/// nothing else of another type: a value known only after apply.
fn holds_reference(raw: &Raw) -> bool {
    matches!(&raw.value, RawValue::String(_)) && has_unescaped_reference(raw)
}

/// True when a string in `raw` holds a `${` that is not the escape `$${`.
fn has_unescaped_reference(raw: &Raw) -> bool {
    match &raw.value {
        RawValue::String(s) => {
            let b = s.as_bytes();
            (0..b.len().saturating_sub(1))
                .any(|i| b[i] == b'$' && b[i + 1] == b'{' && (i == 0 || b[i - 1] != b'$'))
        }
        RawValue::Array(items) => items.iter().any(has_unescaped_reference),
        RawValue::Table(t) => t.values().any(|e| has_unescaped_reference(&e.value)),
        _ => false,
    }
}

/// `raw` with every secret source `{ file = "relative/path" }` in it made relative to `base`
/// (the folder of the file that writes the value, which is not the folder of the resource
/// that finally reads it).
fn absolutize_files(mut raw: Raw, base: &Path) -> Raw {
    // Absolute, so that the resource's own folder (joined later) does not apply again
    // when the desired-state folder was named by a relative path.
    let absolute = std::env::current_dir().unwrap_or_default().join(base);
    let base = absolute.as_path();
    fn walk(raw: &mut Raw, base: &Path) {
        match &mut raw.value {
            RawValue::Table(t) => {
                if t.len() == 1
                    && let Some(e) = t.get_mut("file")
                    && let RawValue::String(p) = &mut e.value.value
                    && Path::new(p.as_str()).is_relative()
                    && !base.as_os_str().is_empty()
                {
                    *p = base.join(p.as_str()).display().to_string();
                    return;
                }
                t.values_mut().for_each(|e| walk(&mut e.value, base));
            }
            RawValue::Array(items) => items.iter_mut().for_each(|i| walk(i, base)),
            _ => {}
        }
    }
    walk(&mut raw, base);
    raw
}

/// Moves every span of `raw` to the file `to` names for its file (a value read from a
/// scratch load, a module's files appended to the sources).
fn respan(raw: &mut Raw, to: &impl Fn(FileId) -> FileId) {
    raw.span.file = to(raw.span.file);
    match &mut raw.value {
        RawValue::Array(items) => items.iter_mut().for_each(|i| respan(i, to)),
        RawValue::Table(t) => t.values_mut().for_each(|e| {
            e.key_span.file = to(e.key_span.file);
            respan(&mut e.value, to);
        }),
        _ => {}
    }
}

fn renumber_diag(d: &mut Diagnostic, offset: u32) {
    if let super::source::Origin::Span(s) = &mut d.origin {
        s.file = FileId(s.file.0 + offset);
    }
    if let Some((s, _)) = &mut d.note {
        s.file = FileId(s.file.0 + offset);
    }
}
