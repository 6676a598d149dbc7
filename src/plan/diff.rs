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
    for &name in r.kind().secret_fields() {
        if spec.get(name).is_some_and(|v| !v.is_null()) {
            out.push(FieldChange {
                path: Cow::Borrowed(name),
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
