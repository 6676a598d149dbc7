//! Error text for people: an error and its causes on one line, without the debug dumps some
//! SDK errors carry.

use std::borrow::Cow;

/// A user- or cloud-controlled string made safe to print on one line of a terminal or a CI
/// log: every control character (ESC, BEL, CR, LF, DEL, the C1 range) and every bidi
/// override is shown as a Rust escape (`\u{1b}`), so nothing can move the cursor, recolour
/// the terminal, rewrite a line or start a new one; and a leading `::` (a GitHub Actions
/// workflow command such as `::add-mask::` or `::error::`) is broken as `\::`.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.starts_with("::") && !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    if text.starts_with("::") {
        out.push('\\');
    }
    for c in text.chars() {
        if needs_escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// As [`escape`], for text of several lines (a report, a rendered plan): line breaks are
/// kept, and each line is escaped on its own (so none can start with `::`).
pub fn escape_lines(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c != '\n' && needs_escape(c))
        && !text.starts_with("::")
        && !text.contains("\n::")
    {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.split('\n')
            .map(|line| match line.strip_suffix('\r') {
                // A CRLF line ending is a line ending, not a cursor move.
                Some(l) => format!("{}\r", escape(l)),
                None => escape(line).into_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

fn needs_escape(c: char) -> bool {
    (c.is_control() && c != '\t') || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `error: cause: cause`, each message once (SDK errors often repeat their cause in their
/// own text), each cut to a readable length.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(error);
    while let Some(e) = current {
        let text = e.to_string();
        let text = match text.char_indices().nth(300) {
            Some((i, _)) => format!("{}…", &text[..i]),
            None => text,
        };
        let text = escape(&text).into_owned();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(text.as_str())) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner detail")]
    struct Inner;

    #[test]
    fn control_characters_and_workflow_commands_are_escaped() {
        assert_eq!(super::escape("plain name-1"), "plain name-1");
        assert_eq!(
            super::escape("a\u{1b}[31mred\u{7}bel\rcr\nlf"),
            "a\\u{1b}[31mred\\u{7}bel\\rcr\\nlf"
        );
        assert_eq!(super::escape("::add-mask::x"), "\\::add-mask::x");
        assert_eq!(super::escape("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(
            super::escape_lines("ok\n::error::forged\r\nkey \u{1b}]0;title\u{7}\n"),
            "ok\n\\::error::forged\r\nkey \\u{1b}]0;title\\u{7}\n"
        );
    }

    #[test]
    fn causes_are_joined_once() {
        assert_eq!(super::chain(&Outer(Inner)), "outer: inner detail");
    }
}
