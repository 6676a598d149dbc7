//! Error text for people: an error and its causes on one line, without the debug dumps some
//! SDK errors carry.

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
    fn causes_are_joined_once() {
        assert_eq!(super::chain(&Outer(Inner)), "outer: inner detail");
    }
}
