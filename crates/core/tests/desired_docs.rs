//! `docs/desired-state.md` documents every kind and field. Its reference section is generated
//! from the model; this test fails when the document and the model disagree, and rewrites
//! the section with `PROVISIONER_UPDATE_DOCS=1 cargo test -p provisioner-core --test desired_docs`.

use provisioner_core::desired::kinds::Kind;
use provisioner_core::desired::model::{Lifecycle, Settings};
use provisioner_core::desired::schema::{FieldInfo, Shape};

const BEGIN: &str = "<!-- BEGIN GENERATED REFERENCE: edit the model, then run PROVISIONER_UPDATE_DOCS=1 cargo test -p provisioner-core --test desired_docs -->";
const END: &str = "<!-- END GENERATED REFERENCE -->";

fn rows(prefix: &str, fields: &[FieldInfo], out: &mut Vec<String>) {
    for f in fields {
        let path = format!("{prefix}{}", f.name);
        let default = match (f.default, f.required) {
            (Some(d), _) => format!("`{d}`"),
            (None, true) => "**required**".to_string(),
            (None, false) => match &f.shape {
                Shape::List(_) | Shape::Set(_) => "`[]`".into(),
                Shape::Map(_) => "`{}`".into(),
                Shape::Block(..) => "defaults below".into(),
                _ => "unset".into(),
            },
        };
        let range = f
            .range
            .map(|(lo, hi)| format!(", {lo} to {hi}"))
            .unwrap_or_default();
        out.push(format!(
            "| `{path}` | {}{range} | {default} | {} | {} |",
            f.shape.describe(),
            f.change.describe(),
            f.doc
        ));
        if let Some(inner) = f.shape.block_fields() {
            let seg = match &f.shape {
                s if s.is_map() => format!("{path}.<name>."),
                Shape::List(_) | Shape::Set(_) => format!("{path}[]."),
                _ => format!("{path}."),
            };
            rows(&seg, inner, out);
        }
    }
}

fn table(fields: &[FieldInfo]) -> String {
    let mut out = vec![
        "| field | type | default | on change | meaning |".to_string(),
        "|---|---|---|---|---|".to_string(),
    ];
    rows("", fields, &mut out);
    out.join("\n")
}

fn generated() -> String {
    let mut s = String::new();
    s.push_str(BEGIN);
    s.push_str("\n\n### `[settings]`\n\n");
    s.push_str(&table(&Settings::fields()));
    s.push_str("\n\n### `lifecycle` (any resource)\n\n");
    s.push_str(&table(&Lifecycle::fields()));
    s.push('\n');
    let mut provider = "";
    for kind in Kind::ALL {
        if kind.provider() != provider {
            provider = kind.provider();
            s.push_str(&format!("\n### {provider}\n"));
        }
        s.push_str(&format!("\n#### `{kind}`\n\n{}\n\n", kind.doc()));
        s.push_str(&table(&kind.fields()));
        s.push_str("\n\nAttributes for references:\n\n| attribute | value |\n|---|---|\n");
        for e in kind.exports() {
            let mut what = e.doc.to_string();
            if e.secret {
                what.push_str(" (**secret**: only into secret fields)");
            }
            if e.list {
                what.push_str(" (list: index it, `[0]`)");
            }
            s.push_str(&format!("| `{}` | {what} |\n", e.name));
        }
    }
    s.push('\n');
    s.push_str(END);
    s
}

fn doc_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/desired-state.md")
}

#[test]
fn the_reference_section_matches_the_model() {
    let path = doc_path();
    let doc = std::fs::read_to_string(&path).expect("docs/desired-state.md exists");
    let (Some(b), Some(e)) = (doc.find(BEGIN), doc.find(END)) else {
        panic!("docs/desired-state.md lacks the generated-reference markers");
    };
    let current = &doc[b..e + END.len()];
    let want = generated();
    if current != want {
        if std::env::var_os("PROVISIONER_UPDATE_DOCS").is_some() {
            let new = format!("{}{}{}", &doc[..b], want, &doc[e + END.len()..]);
            std::fs::write(&path, new).expect("rewrite docs");
        } else {
            panic!(
                "docs/desired-state.md is out of date: run PROVISIONER_UPDATE_DOCS=1 cargo test -p provisioner-core --test desired_docs"
            );
        }
    }
}

fn all_paths(prefix: &str, fields: &[FieldInfo], out: &mut Vec<String>) {
    for f in fields {
        out.push(format!("{prefix}{}", f.name));
        if let Some(inner) = f.shape.block_fields() {
            all_paths(&format!("{prefix}{}.", f.name), inner, out);
        }
    }
}

#[test]
fn every_kind_and_field_is_mentioned_in_the_docs() {
    let doc = std::fs::read_to_string(doc_path()).expect("docs/desired-state.md exists");
    for kind in Kind::ALL {
        assert!(
            doc.contains(&format!("`{kind}`")),
            "docs/desired-state.md does not mention `{kind}`"
        );
        let mut paths = Vec::new();
        all_paths("", &kind.fields(), &mut paths);
        for p in paths {
            let leaf = p.rsplit('.').next().unwrap_or(&p);
            assert!(
                doc.contains(&format!("{leaf}`")),
                "docs/desired-state.md does not mention field `{p}` of `{kind}`"
            );
        }
        for e in kind.exports() {
            assert!(
                doc.contains(&format!("`{}`", e.name)),
                "docs do not mention attribute `{}` of `{kind}`",
                e.name
            );
        }
    }
}
