//! Just enough XML for the AWS simulator: escaping for answers, and reading the small,
//! flat documents the SDKs send (`<Tag><Key>k</Key></Tag>`): the text of a child, and the
//! children with one name.

/// Escapes text for an element or attribute.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// `<tag>text</tag>`, escaped.
pub fn el(tag: &str, text: &str) -> String {
    format!("<{tag}>{}</{tag}>", escape(text))
}

/// The inner XML of every `<tag>…</tag>` directly found in `xml` (elements of one name are
/// not nested in the documents read here).
pub fn all<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let open = format!("<{tag}>");
    let open_attr = format!("<{tag} ");
    let self_closed = format!("<{tag}/>");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = [&open, &open_attr, &self_closed]
        .iter()
        .filter_map(|p| rest.find(p.as_str()))
        .min()
    {
        let after = &rest[start..];
        let Some(gt) = after.find('>') else { break };
        if after[..gt].ends_with('/') {
            out.push("");
            rest = &after[gt + 1..];
            continue;
        }
        let body = &after[gt + 1..];
        let Some(end) = body.find(&close) else { break };
        out.push(&body[..end]);
        rest = &body[end + close.len()..];
    }
    out
}

/// The text of the first `<tag>`, unescaped.
pub fn text(xml: &str, tag: &str) -> Option<String> {
    all(xml, tag).first().map(|t| unescape(t.trim()))
}

/// The texts of every `<tag>`, unescaped.
pub fn texts(xml: &str, tag: &str) -> Vec<String> {
    all(xml, tag).iter().map(|t| unescape(t.trim())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_sdks_send() {
        let x = r#"<?xml version="1.0"?><Tagging xmlns="x"><TagSet><Tag><Key>a&amp;b</Key><Value>1</Value></Tag><Tag><Key>c</Key><Value/></Tag></TagSet></Tagging>"#;
        let tags = all(x, "Tag");
        assert_eq!(tags.len(), 2);
        assert_eq!(text(tags[0], "Key").as_deref(), Some("a&b"));
        assert_eq!(text(tags[1], "Value").as_deref(), Some(""));
        assert_eq!(texts(x, "Key"), vec!["a&b", "c"]);
        assert_eq!(el("K", "<x>"), "<K>&lt;x&gt;</K>");
    }
}
