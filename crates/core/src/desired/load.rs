//! Reading the desired-state folder: every `*.toml` below it, in sorted order, parsed into a
//! span-carrying raw tree. Nothing here knows about kinds or fields; `validate` does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::source::{Diagnostic, FileId, Sources, Span};

/// Largest desired-state file accepted. A hand-written description of even a very large
/// platform is a few hundred kilobytes; 8 MiB leaves room for generated files while keeping
/// a stray dump (a log, a state file) from being parsed as configuration.
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// Deepest folder nesting followed, so a symlink loop cannot make the walk endless.
const MAX_DEPTH: usize = 16;

/// A parsed TOML value with its span.
#[derive(Clone, Debug)]
pub struct Raw {
    /// Where the value is written.
    pub span: Span,
    /// The value.
    pub value: RawValue,
}

/// A TOML value, owned.
#[derive(Clone, Debug)]
pub enum RawValue {
    /// A string.
    String(String),
    /// An integer that fits in i64.
    Integer(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A date or time (no field accepts one; kept to report it properly).
    Datetime(String),
    /// An array.
    Array(Vec<Raw>),
    /// A table.
    Table(RawTable),
}

impl RawValue {
    /// The TOML type name, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            RawValue::String(_) => "a string",
            RawValue::Integer(_) => "an integer",
            RawValue::Float(_) => "a float",
            RawValue::Bool(_) => "a boolean",
            RawValue::Datetime(_) => "a date-time",
            RawValue::Array(_) => "an array",
            RawValue::Table(_) => "a table",
        }
    }
}

/// A key of a table with the span of the key itself.
#[derive(Clone, Debug)]
pub struct RawEntry {
    /// Span of the key as written (for "unknown field" errors).
    pub key_span: Span,
    /// The value.
    pub value: Raw,
}

/// A TOML table: keys in sorted order.
pub type RawTable = BTreeMap<String, RawEntry>;

/// What loading a folder produced: the files, one raw table per file, and every problem met.
#[derive(Debug, Default)]
pub struct Loaded {
    /// All files read.
    pub sources: Sources,
    /// The parsed top-level table of each file that parsed, in path order.
    pub documents: Vec<(FileId, Raw)>,
    /// Problems found while reading and parsing.
    pub diagnostics: Vec<Diagnostic>,
}

/// Reads every `*.toml` below `dir`, recursively, in sorted path order.
pub fn load_dir(dir: &Path) -> Loaded {
    load_dir_except(dir, &[])
}

/// [`load_dir`], leaving out the folders of `dir` itself named in `except` (the root
/// module leaves out `modules/` and `environments/`).
pub fn load_dir_except(dir: &Path, except: &[&str]) -> Loaded {
    let mut loaded = Loaded::default();
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            loaded.diagnostics.push(
                Diagnostic::path(dir, "the desired-state folder does not exist")
                    .help("create it, or point at another folder with `-d DIR`"),
            );
            return loaded;
        }
        Err(e) => {
            loaded.diagnostics.push(Diagnostic::path(
                dir,
                format!("cannot read the desired-state folder: {e}"),
            ));
            return loaded;
        }
    };
    if !meta.is_dir() {
        loaded.diagnostics.push(
            Diagnostic::path(dir, "the desired state must be a folder, not a file")
                .help("pass the folder that holds the `*.toml` files with `-d DIR`"),
        );
        return loaded;
    }
    let mut files = Vec::new();
    let mut ancestors = Vec::new();
    walk(
        dir,
        0,
        except,
        &mut ancestors,
        &mut files,
        &mut loaded.diagnostics,
    );
    files.sort();
    if files.is_empty() && loaded.diagnostics.is_empty() {
        loaded.diagnostics.push(
            Diagnostic::path(dir, "no `*.toml` files found in the desired-state folder").help(
                "describe resources in files such as `network.toml` (see docs/desired-state.md)",
            ),
        );
    }
    // A link that leads out of the folder is not read: an error quotes the lines of the
    // file it is about, and a `*.toml` link to `/proc/self/environ` or `/etc/shadow` would
    // put the process's tokens or the host's secrets into an error message (and a CI log).
    let root = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    for path in files {
        if let Ok(target) = path.canonicalize()
            && !target.starts_with(&root)
        {
            loaded.diagnostics.push(
                Diagnostic::path(
                    &path,
                    format!(
                        "links outside the desired-state folder (to {}): not read",
                        target.display()
                    ),
                )
                .help("copy the file into the folder, or point `-d` at a folder that holds it"),
            );
            continue;
        }
        load_file(&path, &mut loaded);
    }
    loaded
}

/// Parses one document from text (used by the loader and by the fuzz target).
pub fn load_text(path: PathBuf, text: String, loaded: &mut Loaded) {
    let id = loaded.sources.add(path, text);
    let text = &loaded.sources.file(id).text;
    let (table, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        for e in errors.iter().take(10) {
            let range = e.span().unwrap_or(0..0);
            loaded.diagnostics.push(
                Diagnostic::at(
                    Span::new(id, range),
                    format!("invalid TOML: {}", e.message().trim()),
                )
                .help("see https://toml.io for the syntax"),
            );
        }
        return;
    }
    let mut diags = Vec::new();
    let span = Span::new(id, 0..0);
    let value = RawValue::Table(convert_table(id, table.get_ref(), &mut diags));
    loaded.diagnostics.extend(diags);
    loaded.documents.push((id, Raw { span, value }));
}

/// The `*.toml` files below `dir` that [`load_dir`] reads, in sorted path order, and the
/// problems met while listing them (for `provisioner fmt`).
pub fn list_files(dir: &Path) -> (Vec<PathBuf>, Vec<Diagnostic>) {
    let mut files = Vec::new();
    let mut diags = Vec::new();
    collect(dir, 0, &mut files, &mut diags);
    files.sort();
    (files, diags)
}

fn collect(dir: &Path, depth: usize, out: &mut Vec<PathBuf>, diags: &mut Vec<Diagnostic>) {
    let mut ancestors = Vec::new();
    walk(dir, depth, &[], &mut ancestors, out, diags);
}

/// `ancestors` holds the real paths of the folders being walked, so a symbolic link back to
/// one of them is reported as a cycle instead of being walked again.
fn walk(
    dir: &Path,
    depth: usize,
    except: &[&str],
    ancestors: &mut Vec<PathBuf>,
    out: &mut Vec<PathBuf>,
    diags: &mut Vec<Diagnostic>,
) {
    if depth > MAX_DEPTH {
        diags.push(Diagnostic::path(
            dir,
            format!("folders nested deeper than {MAX_DEPTH} levels"),
        ));
        return;
    }
    let real = match std::fs::canonicalize(dir) {
        Ok(r) => r,
        Err(e) => {
            diags.push(Diagnostic::path(dir, format!("cannot list folder: {e}")));
            return;
        }
    };
    if ancestors.contains(&real) {
        diags.push(
            Diagnostic::path(
                dir,
                format!(
                    "a cycle of symbolic links: this folder is {}, which contains it",
                    real.display()
                ),
            )
            .help("remove the link, or point it outside the desired-state folder"),
        );
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            diags.push(Diagnostic::path(dir, format!("cannot list folder: {e}")));
            return;
        }
    };
    ancestors.push(real);
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                diags.push(Diagnostic::path(dir, format!("cannot list folder: {e}")));
                continue;
            }
        };
        let path = entry.path();
        let name = entry.file_name();
        // Hidden files and folders are editor and VCS droppings (.git, .#swap), never input.
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if depth == 0 && except.iter().any(|e| name == *e) {
            continue;
        }
        let toml = path.extension().is_some_and(|e| e == "toml");
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => walk(&path, depth + 1, &[], ancestors, out, diags),
            Ok(m) if toml && m.is_file() => out.push(path),
            // A FIFO, socket or device named `*.toml` would block or never end: refused.
            Ok(_) if toml => match crate::fsread::not_regular(&path) {
                Ok(Some(what)) => diags.push(
                    Diagnostic::path(&path, format!("{what}, not a regular file"))
                        .help("desired-state files must be regular files (or links to them)"),
                ),
                Ok(None) => out.push(path),
                Err(e) => diags.push(Diagnostic::path(&path, format!("cannot read file: {e}"))),
            },
            Ok(_) => {}
            Err(e) => {
                let e = crate::fsread::not_regular(&path).err().unwrap_or(e);
                diags.push(Diagnostic::path(&path, format!("cannot read file: {e}")))
            }
        }
    }
    ancestors.pop();
}

/// Reads and parses one file into `loaded`.
pub(crate) fn load_file(path: &Path, loaded: &mut Loaded) {
    let bytes = match crate::fsread::read_regular(path, MAX_FILE_BYTES) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::FileTooLarge => {
            loaded
                .diagnostics
                .push(Diagnostic::path(path, format!("file is {e}")).help(
                "split it into several files, or move what is not desired state out of the folder",
            ));
            return;
        }
        Err(e) => {
            loaded
                .diagnostics
                .push(Diagnostic::path(path, format!("cannot read file: {e}")));
            return;
        }
    };
    match String::from_utf8(bytes) {
        Ok(text) => load_text(path.to_path_buf(), text, loaded),
        Err(e) => {
            let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = good.iter().filter(|b| **b == b'\n').count() + 1;
            let line_start = good.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
            let col = String::from_utf8_lossy(&good[line_start..]).chars().count() + 1;
            // The file is not loaded (it is not text), so its place is written out.
            let at = PathBuf::from(format!("{}:{line}:{col}", path.display()));
            loaded.diagnostics.push(
                Diagnostic::path(
                    &at,
                    format!("file is not valid UTF-8: invalid byte at line {line}, column {col}"),
                )
                .help("TOML files must be UTF-8; re-save the file with UTF-8 encoding"),
            );
        }
    }
}

fn convert_table(file: FileId, table: &DeTable<'_>, diags: &mut Vec<Diagnostic>) -> RawTable {
    table
        .iter()
        .map(|(k, v)| {
            let key_span = Span::new(file, k.span());
            (
                k.get_ref().to_string(),
                RawEntry {
                    key_span,
                    value: convert(file, v, diags),
                },
            )
        })
        .collect()
}

fn convert(file: FileId, v: &Spanned<DeValue<'_>>, diags: &mut Vec<Diagnostic>) -> Raw {
    let span = Span::new(file, v.span());
    let value = match v.get_ref() {
        DeValue::String(s) => RawValue::String(s.to_string()),
        DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => RawValue::Integer(n),
            Err(_) => {
                diags.push(Diagnostic::at(span, "integer does not fit in 64 bits"));
                RawValue::Integer(0)
            }
        },
        DeValue::Float(f) => RawValue::Float(f.as_str().parse().unwrap_or(f64::NAN)),
        DeValue::Boolean(b) => RawValue::Bool(*b),
        DeValue::Datetime(d) => RawValue::Datetime(d.to_string()),
        DeValue::Array(a) => RawValue::Array(a.iter().map(|x| convert(file, x, diags)).collect()),
        DeValue::Table(t) => RawValue::Table(convert_table(file, t, diags)),
    };
    Raw { span, value }
}
