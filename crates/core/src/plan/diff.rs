//! Field diff: how one desired field compares with what the cloud holds, with the rules
//! that make "equal" mean what the clouds mean (unset accepts the cloud's default, sets
//! match in any order, a minor version covers its patches, GitHub names ignore case).

use std::borrow::Cow;
use std::collections::BTreeSet;

use serde_json::Value;

use super::model::{FieldChange, Shown};
use super::resolve::Resolved;
use crate::desired::Resource;
use crate::desired::schema::{Change as Policy, Shape};
use crate::desired::values::parse_k8s_version;

/// True when one field path is the other or contains it.
pub(super) fn overlaps(a: &str, b: &str) -> bool {
    within(a, b) || within(b, a)
}

pub(super) fn create_fields(
    r: &Resource,
    spec: &Value,
    fields: &[Option<Resolved<'_>>],
) -> Vec<FieldChange> {
    let mut out: Vec<FieldChange> = r
        .kind()
        .compared_fields()
        .iter()
        .zip(fields)
        .filter_map(|(f, v)| Some((f.name, v.as_ref()?)))
        .map(|(k, v)| FieldChange {
            path: Cow::Borrowed(k),
            old: Shown::Absent,
            new: match v {
                Resolved::Known(v) => Shown::Value(v.clone().into_owned()),
                Resolved::Unknown => Shown::KnownAfterApply,
            },
            forces_replacement: false,
            drift: false,
            source: None,
            unchanged: None,
        })
        .collect();
    for (name, _) in r.spec.secret_sources() {
        if spec.get(&name).is_some_and(|v| !v.is_null()) || name.contains('.') {
            out.push(FieldChange {
                path: Cow::Owned(name),
                old: Shown::Absent,
                new: Shown::Sensitive,
                forces_replacement: false,
                drift: false,
                source: None,
                unchanged: None,
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

pub(super) fn is_ignored(path: &str, ignore: &[String]) -> bool {
    ignore.iter().any(|i| within(i, path))
}

/// True when `inner` is the field path `outer` or lies inside it (`outer.x`, `outer[+]`,
/// `outer[2].port`).
fn within(outer: &str, inner: &str) -> bool {
    inner == outer
        || (inner.starts_with(outer)
            && matches!(inner.as_bytes().get(outer.len()), Some(b'.') | Some(b'[')))
}

fn shown(v: Option<&Value>) -> Shown {
    match v {
        None | Some(Value::Null) => Shown::Absent,
        Some(v) => Shown::Value(v.clone()),
    }
}

/// Compares one field, descending into tables so paths name the innermost difference.
/// `ignore_case`: the cloud compares this (top-level) field ignoring ASCII case
/// ([`crate::desired::Kind::ignores_case`]).
pub(super) fn diff_field(
    path: Cow<'static, str>,
    shape: &Shape,
    policy: Policy,
    ignore_case: bool,
    want: &Resolved<'_>,
    have: Option<&Value>,
    out: &mut Vec<FieldChange>,
) {
    let want = match want {
        Resolved::Unknown => {
            out.push(FieldChange {
                path: path.clone(),
                old: shown(have),
                new: Shown::KnownAfterApply,
                forces_replacement: policy == Policy::Replace,
                drift: false,
                source: None,
                unchanged: None,
            });
            return;
        }
        Resolved::Known(v) => v.as_ref(),
    };
    // An optional list written `[]` is an explicit "none" (an SES configuration set's
    // `suppressed_reasons = []` turns suppression off), not "unset": the cloud having no
    // value at all is a difference.
    if matches!(shape, Shape::Optional(_))
        && want.as_array().is_some_and(Vec::is_empty)
        && have.is_none_or(Value::is_null)
    {
        out.push(FieldChange {
            path: path.clone(),
            old: shown(have),
            new: Shown::Value(want.clone()),
            forces_replacement: policy == Policy::Replace,
            drift: false,
            source: None,
            unchanged: None,
        });
        return;
    }
    let shape = match shape {
        Shape::Optional(inner) => inner.as_ref(),
        s => s,
    };
    match (shape, want, have) {
        (Shape::Map(inner), Value::Object(w), Some(Value::Object(h))) => {
            let keys: BTreeSet<&String> = w.keys().chain(h.keys()).collect();
            for k in keys {
                let p = format!("{path}.{k}");
                match (w.get(k), h.get(k)) {
                    (Some(wv), hv) => diff_field(
                        Cow::Owned(p.clone()),
                        inner,
                        policy,
                        false,
                        &Resolved::Known(Cow::Borrowed(wv)),
                        hv,
                        out,
                    ),
                    (None, Some(hv)) => out.push(FieldChange {
                        path: p.into(),
                        old: Shown::Value(hv.clone()),
                        new: Shown::Absent,
                        forces_replacement: policy == Policy::Replace,
                        drift: false,
                        source: None,
                        unchanged: None,
                    }),
                    (None, None) => {}
                }
            }
        }
        (Shape::Block(_, fields), Value::Object(w), Some(Value::Object(h))) => {
            for f in fields {
                let Some(wv) = w.get(f.name).filter(|v| !v.is_null()) else {
                    continue;
                };
                // A field inside a table changes with its table: a pool's size replaces the
                // pool through the pool endpoints, not the whole cluster.
                diff_field(
                    Cow::Owned(format!("{path}.{}", f.name)),
                    &f.shape,
                    policy,
                    false,
                    &Resolved::Known(Cow::Borrowed(wv)),
                    h.get(f.name),
                    out,
                );
            }
        }
        (Shape::Set(inner) | Shape::List(inner), Value::Array(w), Some(Value::Array(h)))
            if holds_tables(inner) =>
        {
            if covers_shaped(shape, want, have) {
                return;
            }
            let ordered = matches!(shape, Shape::List(_));
            element_changes(&path, inner, policy, ordered, w, h, out);
        }
        _ => {
            if covers_shaped(shape, want, have) || (ignore_case && same_ignoring_case(want, have)) {
                return;
            }
            let forces = match policy {
                Policy::Replace => true,
                Policy::Upgrade => is_backward(want, have),
                _ => false,
            };
            if policy == Policy::Upgrade && same_version(want, have) {
                return;
            }
            out.push(FieldChange {
                path: path.clone(),
                old: shown(have),
                new: Shown::Value(want.clone()),
                forces_replacement: forces,
                drift: false,
                source: None,
                unchanged: None,
            });
        }
    }
}

/// True when a list's elements are tables (firewall rules, forwarding rules): their
/// differences are shown element by element.
fn holds_tables(shape: &Shape) -> bool {
    match shape {
        Shape::Optional(inner) => holds_tables(inner),
        Shape::Block(..) | Shape::Map(_) => true,
        _ => false,
    }
}

/// The differences between two lists of tables, element by element, so a plan shows the
/// rule that changed, not two whole lists. An order-free list (a [`Shape::Set`]: firewall
/// rules) pairs elements as a multiset: each desired element the cloud lacks is `path[+]`,
/// each cloud element no desired one covers is `path[-]`. An ordered list compares
/// position by position (`path[2].port`), then adds or removes the tail.
fn element_changes(
    path: &str,
    inner: &Shape,
    policy: Policy,
    ordered: bool,
    want: &[Value],
    have: &[Value],
    out: &mut Vec<FieldChange>,
) {
    let forces = policy == Policy::Replace;
    let added = |v: &Value| FieldChange {
        path: Cow::Owned(format!("{path}[+]")),
        old: Shown::Absent,
        new: Shown::Value(v.clone()),
        forces_replacement: forces,
        drift: false,
        source: None,
        unchanged: None,
    };
    let removed = |v: &Value| FieldChange {
        path: Cow::Owned(format!("{path}[-]")),
        old: Shown::Value(v.clone()),
        new: Shown::Absent,
        forces_replacement: forces,
        drift: false,
        source: None,
        unchanged: None,
    };
    if ordered {
        for (i, (w, h)) in want.iter().zip(have).enumerate() {
            diff_field(
                Cow::Owned(format!("{path}[{i}]")),
                inner,
                policy,
                false,
                &Resolved::Known(Cow::Borrowed(w)),
                Some(h),
                out,
            );
        }
        out.extend(want.iter().skip(have.len()).map(added));
        out.extend(have.iter().skip(want.len()).map(removed));
        return;
    }
    let mut used = vec![false; have.len()];
    let mut missing = Vec::new();
    for w in want {
        match (0..have.len()).find(|&i| !used[i] && covers_shaped(inner, w, Some(&have[i]))) {
            Some(i) => used[i] = true,
            None => missing.push(w),
        }
    }
    let first = out.len();
    out.extend(missing.into_iter().map(added));
    out.extend(
        have.iter()
            .zip(&used)
            .filter(|(_, u)| !**u)
            .map(|(h, _)| removed(h)),
    );
    let kept = used.iter().filter(|u| **u).count();
    if let Some(f) = out.get_mut(first).filter(|_| kept > 0) {
        f.unchanged = Some(kept);
    }
}

/// True when the cloud's value satisfies the desired one. What the desired state leaves
/// unset (null, or an empty list or table) accepts whatever the cloud has; inside tables,
/// fields the desired state does not name are the cloud's business; lists match element by
/// element, in order.
fn covers(want: &Value, have: Option<&Value>) -> bool {
    let empty = |v: &Value| match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(|x| x.is_null()),
        _ => false,
    };
    match (want, have) {
        (w, None | Some(Value::Null)) => empty(w),
        (Value::Object(w), Some(Value::Object(h))) => w
            .iter()
            .all(|(k, wv)| covers(wv, h.get(k)) || (empty(wv) && h.get(k).is_none_or(empty))),
        (Value::Array(w), Some(Value::Array(h))) => {
            w.len() == h.len() && w.iter().zip(h).all(|(a, b)| covers(a, Some(b)))
        }
        (w, Some(h)) => w == h,
    }
}

/// [`covers`], guided by the field's shape: a [`Shape::Set`] matches as a multiset (each
/// desired element covered by a different observed one, in any order), and blocks and
/// tables pass each field's shape down, so a set inside a list element is a set too.
fn covers_shaped(shape: &Shape, want: &Value, have: Option<&Value>) -> bool {
    match (shape, want, have) {
        (Shape::Optional(inner), _, _) => covers_shaped(inner, want, have),
        (Shape::Set(inner), Value::Array(w), Some(Value::Array(h))) => {
            if w.len() != h.len() {
                return false;
            }
            let mut used = vec![false; h.len()];
            w.iter().all(|wv| {
                let found = h
                    .iter()
                    .enumerate()
                    .position(|(i, hv)| !used[i] && covers_shaped(inner, wv, Some(hv)));
                found.map(|i| used[i] = true).is_some()
            })
        }
        (Shape::List(inner), Value::Array(w), Some(Value::Array(h))) => {
            w.len() == h.len()
                && w.iter()
                    .zip(h)
                    .all(|(a, b)| covers_shaped(inner, a, Some(b)))
        }
        (Shape::Block(_, fields), Value::Object(w), Some(Value::Object(h))) => {
            w.iter()
                .all(|(k, wv)| match fields.iter().find(|f| f.name == k) {
                    Some(f) => {
                        covers_shaped(&f.shape, wv, h.get(k))
                            || (covers(wv, None) && h.get(k).is_none_or(|hv| covers(hv, None)))
                    }
                    None => covers(wv, h.get(k)),
                })
        }
        (Shape::Map(inner), Value::Object(w), Some(Value::Object(h))) => w.iter().all(|(k, wv)| {
            covers_shaped(inner, wv, h.get(k))
                || (covers(wv, None) && h.get(k).is_none_or(|hv| covers(hv, None)))
        }),
        _ => covers(want, have),
    }
}

/// GitHub stores names upper-case and matches repositories case-insensitively: `kubeconfig`
/// written in the desired state is `KUBECONFIG` on GitHub, and that is no drift.
fn same_ignoring_case(want: &Value, have: Option<&Value>) -> bool {
    match (want.as_str(), have.and_then(Value::as_str)) {
        (Some(w), Some(h)) => w.eq_ignore_ascii_case(h),
        _ => false,
    }
}

/// A minor version (`1.33`) or `latest` is satisfied by any matching patch the cloud runs.
fn same_version(want: &Value, have: Option<&Value>) -> bool {
    let (Some(w), Some(h)) = (want.as_str(), have.and_then(Value::as_str)) else {
        return false;
    };
    if w == "latest" {
        return true;
    }
    match (parse_k8s_version(w), parse_k8s_version(h)) {
        (Some((a, b, None, None)), Some((c, d, _, _))) => (a, b) == (c, d),
        _ => false,
    }
}

/// True when moving from `have` to `want` goes backward (a version down, `true` to `false`).
fn is_backward(want: &Value, have: Option<&Value>) -> bool {
    match (want, have) {
        (Value::Bool(false), Some(Value::Bool(true))) => true,
        (Value::String(w), Some(Value::String(h))) => {
            match (parse_k8s_version(w), parse_k8s_version(h)) {
                (Some(w), Some(h)) => {
                    (w.0, w.1) < (h.0, h.1)
                        || ((w.0, w.1) == (h.0, h.1) && w.2.is_some() && (w.2, w.3) < (h.2, h.3))
                }
                _ => false,
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::desired::schema::FieldInfo;

    fn diff(
        shape: &Shape,
        policy: Policy,
        case: bool,
        want: Value,
        have: Value,
    ) -> Vec<FieldChange> {
        let mut out = Vec::new();
        let have = (!have.is_null()).then_some(&have);
        diff_field(
            Cow::Borrowed("f"),
            shape,
            policy,
            case,
            &Resolved::Known(Cow::Borrowed(&want)),
            have,
            &mut out,
        );
        out
    }

    fn paths(changes: &[FieldChange]) -> Vec<&str> {
        changes.iter().map(|c| c.path.as_ref()).collect()
    }

    fn field(name: &'static str, shape: Shape) -> FieldInfo {
        FieldInfo {
            name,
            doc: "",
            shape,
            default: None,
            required: false,
            change: Policy::Update,
            range: None,
        }
    }

    fn rule() -> Shape {
        Shape::Block(
            "rule",
            vec![
                field("port", Shape::Integer),
                field("sources", Shape::Set(Box::new(Shape::String))),
            ],
        )
    }

    #[test]
    fn a_set_matches_in_any_order_and_a_list_does_not() {
        let set = Shape::Set(Box::new(Shape::String));
        assert!(
            diff(
                &set,
                Policy::Update,
                false,
                json!(["a", "b"]),
                json!(["b", "a"])
            )
            .is_empty()
        );
        let list = Shape::List(Box::new(Shape::String));
        assert_eq!(
            paths(&diff(
                &list,
                Policy::Update,
                false,
                json!(["a", "b"]),
                json!(["b", "a"])
            )),
            ["f"]
        );
    }

    #[test]
    fn a_set_of_tables_names_the_elements_added_and_removed_and_counts_the_rest() {
        let set = Shape::Set(Box::new(rule()));
        let want = json!([{"port": 22, "sources": ["a"]}, {"port": 80, "sources": ["x", "y"]}]);
        // The second rule's sources in another order are the same rule.
        let have = json!([{"port": 80, "sources": ["y", "x"]}, {"port": 23, "sources": ["a"]}]);
        let out = diff(&set, Policy::Update, false, want, have);
        assert_eq!(paths(&out), ["f[+]", "f[-]"]);
        assert_eq!(
            out[0].new,
            Shown::Value(json!({"port": 22, "sources": ["a"]}))
        );
        assert_eq!(
            out[1].old,
            Shown::Value(json!({"port": 23, "sources": ["a"]}))
        );
        assert_eq!(out[0].unchanged, Some(1));
    }

    #[test]
    fn an_ordered_list_of_tables_names_the_position_and_field_that_changed() {
        let list = Shape::List(Box::new(rule()));
        let want = json!([{"port": 22}, {"port": 80}, {"port": 443}]);
        let have = json!([{"port": 22}, {"port": 8080}]);
        let out = diff(&list, Policy::Update, false, want, have);
        assert_eq!(paths(&out), ["f[1].port", "f[+]"]);
    }

    #[test]
    fn a_table_field_the_desired_state_leaves_out_is_the_clouds_business() {
        let shape = Shape::Block(
            "b",
            vec![field("a", Shape::Integer), field("b", Shape::Integer)],
        );
        assert!(
            diff(
                &shape,
                Policy::Update,
                false,
                json!({"a": 1}),
                json!({"a": 1, "b": 2})
            )
            .is_empty()
        );
        let out = diff(
            &shape,
            Policy::Update,
            false,
            json!({"a": 1, "b": 3}),
            json!({"a": 1, "b": 2}),
        );
        assert_eq!(paths(&out), ["f.b"]);
        let map = Shape::Map(Box::new(Shape::String));
        let out = diff(
            &map,
            Policy::Update,
            false,
            json!({"k": "v"}),
            json!({"k": "v", "extra": "x"}),
        );
        assert_eq!(
            paths(&out),
            ["f.extra"],
            "a map's keys are the desired state's"
        );
    }

    #[test]
    fn case_is_ignored_only_where_the_kind_says_the_cloud_ignores_it() {
        let s = Shape::String;
        assert!(
            diff(
                &s,
                Policy::Replace,
                true,
                json!("kubeconfig"),
                json!("KUBECONFIG")
            )
            .is_empty()
        );
        let out = diff(
            &s,
            Policy::Replace,
            false,
            json!("kubeconfig"),
            json!("KUBECONFIG"),
        );
        assert!(out[0].forces_replacement);
    }

    #[test]
    fn a_minor_version_or_latest_is_satisfied_by_any_patch() {
        let s = Shape::String;
        assert!(
            diff(
                &s,
                Policy::Upgrade,
                false,
                json!("1.33"),
                json!("1.33.4-do.0")
            )
            .is_empty()
        );
        assert!(
            diff(
                &s,
                Policy::Upgrade,
                false,
                json!("latest"),
                json!("1.31.1-do.2")
            )
            .is_empty()
        );
        assert!(same_version(&json!("1.33"), Some(&json!("1.33.1-do.0"))));
        assert!(!same_version(
            &json!("1.33.1-do.0"),
            Some(&json!("1.33.2-do.0"))
        ));
        assert!(!same_version(&json!("1.33"), Some(&json!("1.34.1-do.0"))));
        let up = diff(
            &s,
            Policy::Upgrade,
            false,
            json!("1.34"),
            json!("1.33.4-do.0"),
        );
        assert!(!up[0].forces_replacement, "upgrades in place");
    }

    #[test]
    fn going_backward_forces_a_replacement_under_the_upgrade_policy() {
        assert!(is_backward(&json!("1.32"), Some(&json!("1.33.1-do.0"))));
        assert!(is_backward(
            &json!("1.33.1-do.0"),
            Some(&json!("1.33.2-do.0"))
        ));
        assert!(!is_backward(&json!("1.33"), Some(&json!("1.33.2-do.0"))));
        assert!(is_backward(&json!(false), Some(&json!(true))));
        assert!(!is_backward(&json!(true), Some(&json!(false))));
        let down = diff(
            &Shape::String,
            Policy::Upgrade,
            false,
            json!("1.32"),
            json!("1.33.4-do.0"),
        );
        assert!(down[0].forces_replacement);
    }

    #[test]
    fn unset_accepts_the_cloud_but_an_explicit_empty_optional_list_does_not() {
        assert!(covers(
            &json!({"a": 1, "b": null, "c": []}),
            Some(&json!({"a": 1, "d": "the cloud's"}))
        ));
        assert!(!covers(&json!({"b": null}), Some(&json!({"b": 2}))));
        assert!(covers(&json!([]), None));
        assert!(!covers(&json!("a"), None));
        let opt = Shape::Optional(Box::new(Shape::List(Box::new(Shape::String))));
        let out = diff(&opt, Policy::Update, false, json!([]), Value::Null);
        assert_eq!(out[0].new, Shown::Value(json!([])));
        assert!(diff(&opt, Policy::Update, false, json!([]), json!([])).is_empty());
    }

    #[test]
    fn an_unknown_value_is_a_change_known_after_apply() {
        let mut out = Vec::new();
        let have = json!("old");
        diff_field(
            Cow::Borrowed("vpc"),
            &Shape::String,
            Policy::Replace,
            false,
            &Resolved::Unknown,
            Some(&have),
            &mut out,
        );
        assert_eq!(out[0].new, Shown::KnownAfterApply);
        assert!(out[0].forces_replacement);
    }

    #[test]
    fn ignore_changes_covers_a_path_and_what_lies_inside_it_only() {
        let ignore = ["node_pools.workers".to_string()];
        assert!(is_ignored("node_pools.workers", &ignore));
        assert!(is_ignored("node_pools.workers.count", &ignore));
        assert!(is_ignored("node_pools.workers[0]", &ignore));
        assert!(!is_ignored("node_pools.workers2", &ignore));
        assert!(!is_ignored("node_pools", &ignore));
        assert!(overlaps("node_pools", "node_pools.workers.count"));
        assert!(!overlaps("tags", "tag"));
    }

    #[test]
    fn a_create_shows_every_set_field_and_secrets_as_sensitive_in_path_order() {
        let d = crate::plan::planner::testing::desired(
            "[github.actions_secret.s]\nrepository = \"o/r\"\nname = \"token\"\nvalue = { env = \"TOKEN\" }\n",
        );
        let r = d.resources.values().next().expect("one");
        let fields = crate::plan::resolve::wanted(
            r.kind(),
            &r.spec_json,
            &crate::plan::resolve::Attributes::new(),
        );
        let out = create_fields(r, &r.spec_json, &fields);
        assert_eq!(paths(&out), ["name", "repository", "value"]);
        assert_eq!(out[2].new, Shown::Sensitive);
        assert_eq!(out[0].old, Shown::Absent);
    }
}
