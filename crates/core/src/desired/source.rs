//! Source files and byte spans, so that every problem in the desired state can be reported
//! as `file:line:col` with the offending line underneath.

use std::fmt;
use std::path::{Path, PathBuf};

/// Index of a file in [`Sources`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub u32);

/// A byte range inside one source file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    /// The file the range belongs to.
    pub file: FileId,
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

impl Span {
    /// A span covering `range` in `file`.
    pub fn new(file: FileId, range: std::ops::Range<usize>) -> Self {
        // Files are capped at MAX_FILE_BYTES (far below u32::MAX) by the loader.
        Span {
            file,
            start: u32::try_from(range.start).unwrap_or(u32::MAX),
            end: u32::try_from(range.end).unwrap_or(u32::MAX),
        }
    }
}

/// One loaded desired-state file.
#[derive(Debug)]
pub struct SourceFile {
    /// Path as the user will recognise it (the directory they named, joined with the file).
    pub path: PathBuf,
    /// The whole text.
    pub text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    fn new(path: PathBuf, text: String) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceFile {
            path,
            text,
            line_starts,
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line];
        let col = self
            .text
            .get(start..offset)
            .map_or(1, |s| s.chars().count() + 1);
        (line + 1, col)
    }

    /// The text of a 1-based line, without its newline.
    pub fn line_text(&self, line: usize) -> &str {
        let start = self
            .line_starts
            .get(line - 1)
            .copied()
            .unwrap_or(self.text.len());
        let end = self
            .line_starts
            .get(line)
            .map_or(self.text.len(), |e| e.saturating_sub(1));
        self.text
            .get(start..end.max(start))
            .unwrap_or("")
            .trim_end_matches('\r')
    }
}

/// All files of one load, addressed by [`FileId`].
#[derive(Debug, Default)]
pub struct Sources {
    files: Vec<SourceFile>,
}

impl Sources {
    /// Adds a file and returns its id.
    pub fn add(&mut self, path: PathBuf, text: String) -> FileId {
        self.files.push(SourceFile::new(path, text));
        FileId(u32::try_from(self.files.len() - 1).unwrap_or(u32::MAX))
    }

    /// The file behind an id.
    pub fn file(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    /// `path:line:col` of the start of a span.
    pub fn location(&self, span: Span) -> Location {
        let file = self.file(span.file);
        let (line, col) = file.line_col(span.start as usize);
        Location {
            path: file.path.clone(),
            line,
            col,
        }
    }

    /// Number of files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// True when no file was loaded.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// A human-readable position: `path:line:col`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    /// File path.
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.path.display(), self.line, self.col)
    }
}

/// Where a problem is: a span in a loaded file, or a whole path (a file that could not be read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Inside a loaded file.
    Span(Span),
    /// A file or directory as a whole.
    Path(PathBuf),
}

/// One problem found while loading or validating the desired state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Where it is.
    pub origin: Origin,
    /// The field path (`digitalocean.vpc.main.ip_range`), when the problem belongs to a field.
    pub field: Option<String>,
    /// What is wrong, in lower case, without the location.
    pub message: String,
    /// How to fix it, when there is something useful to say.
    pub help: Option<String>,
    /// Another place worth showing (the first definition of a duplicate, say).
    pub note: Option<(Span, String)>,
    /// True when the source line may hold a secret and must not be echoed.
    pub redact_source: bool,
    /// The module calls that reached the problem, innermost first: where each is called
    /// and which instance it made (`in module.app["web"], called`).
    pub called_from: Vec<(Span, String)>,
}

impl Diagnostic {
    /// A problem at a span.
    pub fn at(span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            origin: Origin::Span(span),
            field: None,
            message: message.into(),
            help: None,
            note: None,
            redact_source: false,
            called_from: Vec::new(),
        }
    }

    /// A problem with a whole file or directory.
    pub fn path(path: &Path, message: impl Into<String>) -> Self {
        Diagnostic {
            origin: Origin::Path(path.to_path_buf()),
            field: None,
            message: message.into(),
            help: None,
            note: None,
            redact_source: false,
            called_from: Vec::new(),
        }
    }

    /// Names the field path the problem belongs to.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        let field = field.into();
        if !field.is_empty() {
            self.field = Some(field);
        }
        self
    }

    /// Adds a hint.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds a hint to a diagnostic already recorded.
    pub fn set_help(&mut self, help: impl Into<String>) {
        self.help = Some(help.into());
    }

    /// Adds a secondary location.
    pub fn note(mut self, span: Span, note: impl Into<String>) -> Self {
        self.note = Some((span, note.into()));
        self
    }

    /// Marks the source line as possibly secret: it is never printed.
    pub fn redacted(mut self) -> Self {
        self.redact_source = true;
        self
    }

    /// Sort key: file, then position.
    pub fn sort_key(&self, sources: &Sources) -> (PathBuf, usize, usize) {
        match &self.origin {
            Origin::Span(span) => {
                let l = sources.location(*span);
                (l.path, l.line, l.col)
            }
            Origin::Path(p) => (p.clone(), 0, 0),
        }
    }

    /// The location as `path:line:col` (or just the path).
    pub fn location(&self, sources: &Sources) -> String {
        match &self.origin {
            Origin::Span(span) => sources.location(*span).to_string(),
            Origin::Path(p) => p.display().to_string(),
        }
    }

    /// Renders the problem the way compilers do: message, location, the line, a caret, help.
    pub fn render(&self, sources: &Sources) -> String {
        let mut out = String::new();
        match &self.field {
            Some(field) => out.push_str(&format!("error: {field}: {}\n", self.message)),
            None => out.push_str(&format!("error: {}\n", self.message)),
        }
        let pad = match &self.origin {
            Origin::Span(span) => " ".repeat(sources.location(*span).line.to_string().len()),
            Origin::Path(_) => " ".into(),
        };
        out.push_str(&format!("{pad}--> {}\n", self.location(sources)));
        if let Origin::Span(span) = &self.origin
            && !self.redact_source
        {
            out.push_str(&snippet(sources, *span));
        }
        if let Some((span, note)) = &self.note {
            out.push_str(&format!(
                "{pad} = note: {note} at {}\n",
                sources.location(*span)
            ));
        }
        for (span, what) in &self.called_from {
            out.push_str(&format!(
                "{pad} = note: {what} at {}\n",
                sources.location(*span)
            ));
        }
        if let Some(help) = &self.help {
            out.push_str(&format!("{pad} = help: {help}\n"));
        }
        out
    }
}

fn snippet(sources: &Sources, span: Span) -> String {
    let file = sources.file(span.file);
    let (line, col) = file.line_col(span.start as usize);
    let text = file.line_text(line);
    // Very long lines (minified files, a 10 MB single line) are cut so the report stays readable.
    const MAX: usize = 160;
    let shown: String = text.chars().take(MAX).collect();
    let (end_line, end_col) = file.line_col(span.end as usize);
    let width = if end_line == line && end_col > col {
        end_col - col
    } else {
        1
    };
    let width = width.min(MAX.saturating_sub(col - 1)).max(1);
    let gutter = line.to_string().len();
    let pad = " ".repeat(gutter);
    let caret_pad: String = shown
        .chars()
        .take(col - 1)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    format!(
        "{pad} |\n{line} | {shown}{}\n{pad} | {caret_pad}{}\n",
        if text.chars().count() > MAX {
            " …"
        } else {
            ""
        },
        "^".repeat(width)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters_not_bytes() {
        let mut s = Sources::default();
        let id = s.add("a.toml".into(), "a = 1\nné = \"x\"\n".into());
        let at = "a = 1\nné = ".len();
        assert_eq!(
            s.location(Span::new(id, at..at + 3)).to_string(),
            "a.toml:2:6"
        );
    }

    #[test]
    fn snippet_points_at_the_span() {
        let mut s = Sources::default();
        let id = s.add("a.toml".into(), "x = 1\nname = 42\n".into());
        let d = Diagnostic::at(Span::new(id, 13..15), "expected a string").field("a.b");
        let r = d.render(&s);
        assert!(r.contains("error: a.b: expected a string"), "{r}");
        assert!(r.contains("--> a.toml:2:8"), "{r}");
        assert!(r.contains("2 | name = 42\n  |        ^^"), "{r}");
    }

    #[test]
    fn redacted_diagnostics_never_echo_the_line() {
        let mut s = Sources::default();
        let id = s.add("a.toml".into(), "value = \"hunter2\"\n".into());
        let d = Diagnostic::at(Span::new(id, 8..17), "plain secret").redacted();
        assert!(!d.render(&s).contains("hunter2"));
    }
}
