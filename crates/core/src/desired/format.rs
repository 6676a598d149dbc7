//! The canonical layout of a desired-state file (`provisioner fmt`), by Taplo's formatter —
//! the one the "Even Better TOML" editor extension runs on save — so the command line and
//! the editor agree. Comments, the order of keys and tables, and blank lines between groups
//! are kept; spacing, indentation, quotes of keys and long arrays are normalised.

use std::path::PathBuf;

use super::source::{Diagnostic, Sources, Span};

/// The formatter's options: Taplo's defaults, written out so a change of taplo's defaults
/// cannot reformat every file unnoticed (and so `desired-state/.taplo.toml` can say the same).
pub fn options() -> taplo::formatter::Options {
    taplo::formatter::Options {
        align_entries: false,
        align_comments: false,
        align_single_comments: true,
        array_trailing_comma: true,
        array_auto_expand: true,
        inline_table_expand: true,
        array_auto_collapse: true,
        compact_arrays: true,
        compact_inline_tables: false,
        compact_entries: false,
        column_width: 80,
        indent_tables: false,
        indent_entries: false,
        indent_string: "  ".into(),
        trailing_newline: true,
        reorder_keys: false,
        reorder_arrays: false,
        reorder_inline_tables: false,
        allowed_blank_lines: 2,
        crlf: false,
    }
}

/// The file's text in canonical form, or its syntax errors (a file that does not parse is
/// never rewritten).
pub fn format(path: PathBuf, text: &str) -> Result<String, Vec<String>> {
    let parsed = taplo::parser::parse(text);
    if !parsed.errors.is_empty() {
        let mut sources = Sources::default();
        let id = sources.add(path, text.to_string());
        return Err(parsed
            .errors
            .iter()
            .map(|e| {
                let range = usize::from(e.range.start())..usize::from(e.range.end());
                Diagnostic::at(
                    Span::new(id, range),
                    format!("invalid TOML: {}", e.message.trim()),
                )
                .render(&sources)
            })
            .collect());
    }
    Ok(taplo::formatter::format(text, options()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_survive_and_spacing_is_normalised() {
        let text = "# head\n[digitalocean.vpc.main]\nname=\"a\"   # why\n  region  =  \"nyc3\"\n";
        let out = format("x.toml".into(), text).unwrap();
        assert_eq!(
            out,
            "# head\n[digitalocean.vpc.main]\nname = \"a\" # why\nregion = \"nyc3\"\n"
        );
        assert_eq!(format("x.toml".into(), &out).unwrap(), out, "idempotent");
    }

    #[test]
    fn a_file_that_does_not_parse_is_reported_with_its_line() {
        let errors = format("bad.toml".into(), "[a]\nb = \n").unwrap_err();
        assert!(errors[0].contains("bad.toml:2:"), "{errors:?}");
    }
}
