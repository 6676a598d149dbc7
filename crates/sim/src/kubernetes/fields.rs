//! Field sets and the server-side apply algebra, after kubernetes-sigs/structured-merge-diff
//! v6 (the library kube-apiserver v1.35 uses): a [`Set`] is the tree of path elements
//! `fieldpath.Set` keeps (`members` are the paths themselves, `children` the subtrees), and
//! encodes as `fieldsV1` (`f:` a field or map key, `k:{...}` an associative-list item by its
//! keys, `v:` a set-list item, `i:` an index, `.` the node itself; `fieldpath/serialize.go`).
//! [`to_set`] is `typed/tofieldset.go`, [`compare`] `typed/compare.go` (the merging walker
//! with its leaf rule and post-item hook), [`merge`] `typed/merge.go` (including the order
//! of merged associative lists), and [`remove`] `typed/remove.go`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::schema::{Schema, Unknown};

/// One step of a path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pe {
    /// A struct field or a map key (`f:`).
    Field(String),
    /// An associative-list item, by the canonical JSON of its keys (`k:`).
    Key(String),
    /// A set-list item, by its JSON (`v:`).
    Value(String),
    /// A list item by position (`i:`), for lists with neither keys nor set semantics.
    Index(usize),
}

impl Pe {
    /// The `fieldsV1` key.
    fn encode(&self) -> String {
        match self {
            Pe::Field(f) => format!("f:{f}"),
            Pe::Key(k) => format!("k:{k}"),
            Pe::Value(v) => format!("v:{v}"),
            Pe::Index(i) => format!("i:{i}"),
        }
    }

    fn decode(s: &str) -> Option<Pe> {
        let (kind, rest) = s.split_once(':')?;
        Some(match kind {
            "f" => Pe::Field(rest.to_string()),
            "k" => Pe::Key(rest.to_string()),
            "v" => Pe::Value(rest.to_string()),
            "i" => Pe::Index(rest.parse().ok()?),
            _ => return None,
        })
    }

    /// As `fieldpath.PathElement.String()` writes it: `.name`, `[k="v",...]`, `[=v]`, `[0]`.
    fn display(&self) -> String {
        match self {
            Pe::Field(f) => format!(".{f}"),
            Pe::Key(k) => {
                let parsed: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
                let parts: Vec<String> = parsed.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("[{}]", parts.join(","))
            }
            Pe::Value(v) => format!("[={v}]"),
            Pe::Index(i) => format!("[{i}]"),
        }
    }
}

/// A path from the object's root.
pub type Path = Vec<Pe>;

/// A path as the apiserver prints it in conflicts (`.data.a`,
/// `.spec.template.spec.containers[name="web"].image`).
pub fn display(path: &[Pe]) -> String {
    path.iter().map(Pe::display).collect()
}

/// A set of paths, as a tree.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Set {
    members: BTreeSet<Pe>,
    children: BTreeMap<Pe, Set>,
}

impl Set {
    /// Adds a path.
    pub fn insert(&mut self, path: &[Pe]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    /// Whether it holds no path.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.values().all(Set::is_empty)
    }

    /// Whether it holds `path` itself.
    #[cfg(test)]
    pub fn has(&self, path: &[Pe]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.has(rest)),
        }
    }

    /// Whether it holds `path` or any path under it.
    pub fn has_prefix(&self, path: &[Pe]) -> bool {
        match path {
            [] => !self.is_empty(),
            [first, rest @ ..] => {
                (rest.is_empty() && self.members.contains(first))
                    || self.children.get(first).is_some_and(|c| c.has_prefix(rest))
            }
        }
    }

    /// The paths of both.
    pub fn union(&self, other: &Set) -> Set {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (k, c) in &other.children {
            let merged = match out.children.get(k) {
                Some(mine) => mine.union(c),
                None => c.clone(),
            };
            out.children.insert(k.clone(), merged);
        }
        out
    }

    /// The paths of `self` that `other` does not hold (exactly: a path under one of
    /// `other`'s stays, as `fieldpath.Set.Difference`).
    pub fn difference(&self, other: &Set) -> Set {
        let mut out = Set {
            members: self.members.difference(&other.members).cloned().collect(),
            children: BTreeMap::new(),
        };
        for (k, c) in &self.children {
            let rest = match other.children.get(k) {
                Some(o) => c.difference(o),
                None => c.clone(),
            };
            if !rest.is_empty() {
                out.children.insert(k.clone(), rest);
            }
        }
        out
    }

    /// The paths both hold.
    pub fn intersection(&self, other: &Set) -> Set {
        let mut out = Set {
            members: self.members.intersection(&other.members).cloned().collect(),
            children: BTreeMap::new(),
        };
        for (k, c) in &self.children {
            if let Some(o) = other.children.get(k) {
                let both = c.intersection(o);
                if !both.is_empty() {
                    out.children.insert(k.clone(), both);
                }
            }
        }
        out
    }

    /// Leaves out every path that starts with one of `prefixes` (the apiserver's reset and
    /// ignored fields: `IgnoreFilter`).
    pub fn without_prefixes(&self, prefixes: &[Path]) -> Set {
        let mut out = self.clone();
        for p in prefixes {
            out.remove_prefix(p);
        }
        out
    }

    fn remove_prefix(&mut self, path: &[Pe]) {
        match path {
            [] => *self = Set::default(),
            [last] => {
                self.members.remove(last);
                self.children.remove(last);
            }
            [first, rest @ ..] => {
                if let Some(c) = self.children.get_mut(first) {
                    c.remove_prefix(rest);
                    if c.is_empty() {
                        self.children.remove(first);
                    }
                }
            }
        }
    }

    /// Every path it holds, in order.
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, prefix: &mut Path, out: &mut Vec<Path>) {
        let keys: BTreeSet<&Pe> = self.members.iter().chain(self.children.keys()).collect();
        for k in keys {
            prefix.push(k.clone());
            if self.members.contains(k) {
                out.push(prefix.clone());
            }
            if let Some(c) = self.children.get(k) {
                c.collect(prefix, out);
            }
            prefix.pop();
        }
    }

    /// The `fieldsV1` form.
    pub fn to_fields_v1(&self) -> Value {
        let mut out = Map::new();
        let keys: BTreeSet<&Pe> = self.members.iter().chain(self.children.keys()).collect();
        for k in keys {
            let child = self.children.get(k).filter(|c| !c.is_empty());
            let mut v = match child {
                Some(c) => c.to_fields_v1(),
                None => Value::Object(Map::new()),
            };
            if child.is_some()
                && self.members.contains(k)
                && let Some(o) = v.as_object_mut()
            {
                o.insert(".".into(), Value::Object(Map::new()));
            }
            out.insert(k.encode(), v);
        }
        Value::Object(out)
    }

    /// Reads the `fieldsV1` form (`None` when it is not one).
    pub fn from_fields_v1(v: &Value) -> Option<Set> {
        let mut set = Set::default();
        for (k, child) in v.as_object()? {
            if k == "." {
                continue;
            }
            let pe = Pe::decode(k)?;
            let o = child.as_object()?;
            if o.is_empty() || o.contains_key(".") {
                set.members.insert(pe.clone());
            }
            if o.keys().any(|k| k != ".") {
                set.children.insert(pe, Set::from_fields_v1(child)?);
            }
        }
        Some(set)
    }
}

/// How a node is walked.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Leaf,
    Map,
    List,
}

fn kind_of(schema: &Schema, v: &Value) -> Kind {
    match (schema, v) {
        (Schema::Scalar | Schema::Atomic, _) => Kind::Leaf,
        (Schema::Deduced | Schema::Struct(_) | Schema::Map(_), Value::Object(_)) => Kind::Map,
        (Schema::AssocList(_) | Schema::SetList, Value::Array(_)) => Kind::List,
        _ => Kind::Leaf,
    }
}

/// The schema of field `key` of a map node, whether it is a declared field, and whether
/// it is kept at all (an unknown field of a pruning structural schema is not).
pub fn child(schema: &Schema, key: &str) -> (Schema, bool, bool) {
    match schema {
        Schema::Struct(s) => match s.fields.get(key) {
            Some(f) => (f.clone(), true, true),
            None => (Schema::Deduced, false, s.unknown == Unknown::Keep),
        },
        Schema::Map(elem) => ((**elem).clone(), false, true),
        _ => (Schema::Deduced, false, true),
    }
}

fn item_schema(schema: &Schema) -> Schema {
    match schema {
        Schema::AssocList(a) => a.1.clone(),
        Schema::SetList => Schema::Scalar,
        _ => Schema::Deduced,
    }
}

/// The path element of item `i` of a list.
pub fn item_pe(schema: &Schema, item: &Value, i: usize) -> Pe {
    match schema {
        Schema::AssocList(a) => {
            let mut keys = Map::new();
            for (k, default) in &a.0 {
                match item.get(k).filter(|v| !v.is_null()).or(default.as_ref()) {
                    Some(v) => {
                        keys.insert(k.clone(), v.clone());
                    }
                    // An item without its keys: by position (the apiserver refuses it).
                    None => return Pe::Index(i),
                }
            }
            Pe::Key(Value::Object(keys).to_string())
        }
        Schema::SetList => Pe::Value(item.to_string()),
        _ => Pe::Index(i),
    }
}

fn list_items<'a>(schema: &Schema, v: Option<&'a Value>) -> Vec<(Pe, &'a Value)> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .enumerate()
                .map(|(i, item)| (item_pe(schema, item, i), item))
                .collect()
        })
        .unwrap_or_default()
}

/// The fields a value sets (`TypedValue.ToFieldSet`): scalars and atomic values; map keys
/// that are not declared fields, and declared fields that are null or empty maps; every
/// list item.
pub fn to_set(v: &Value, schema: &Schema) -> Set {
    let mut set = Set::default();
    walk_set(v, schema, &mut Vec::new(), &mut set);
    set
}

fn walk_set(v: &Value, schema: &Schema, path: &mut Path, set: &mut Set) {
    match kind_of(schema, v) {
        Kind::Leaf => set.insert(path),
        Kind::Map => {
            for (k, cv) in v.as_object().into_iter().flatten() {
                let (cs, declared, kept) = child(schema, k);
                if !kept {
                    continue;
                }
                path.push(Pe::Field(k.clone()));
                walk_set(cv, &cs, path, set);
                let empty_map = cv.as_object().is_some_and(Map::is_empty);
                if cv.is_null() || empty_map || !declared {
                    set.insert(path);
                }
                path.pop();
            }
        }
        Kind::List => {
            let elem = item_schema(schema);
            for (pe, item) in list_items(schema, Some(v)) {
                path.push(pe);
                walk_set(item, &elem, path, set);
                set.insert(path);
                path.pop();
            }
        }
    }
}

/// What changed between two values (`TypedValue.Compare`).
#[derive(Debug, Default)]
pub struct Comparison {
    /// Paths only the new value has.
    pub added: Set,
    /// Paths only the old value has.
    pub removed: Set,
    /// Leaves whose value changed.
    pub modified: Set,
}

impl Comparison {
    /// Added and modified: what a writer takes.
    pub fn changed(&self) -> Set {
        self.added.union(&self.modified)
    }

    /// Leaves out paths under `prefixes`.
    pub fn without_prefixes(self, prefixes: &[Path]) -> Comparison {
        Comparison {
            added: self.added.without_prefixes(prefixes),
            removed: self.removed.without_prefixes(prefixes),
            modified: self.modified.without_prefixes(prefixes),
        }
    }
}

/// Compares two values of one schema.
pub fn compare(old: &Value, new: &Value, schema: &Schema) -> Comparison {
    let mut c = Comparison::default();
    walk_compare(Some(old), Some(new), schema, &mut Vec::new(), &mut c);
    c
}

fn null_wild(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| !v.is_null())
}

fn walk_compare(
    old: Option<&Value>,
    new: Option<&Value>,
    schema: &Schema,
    path: &mut Path,
    c: &mut Comparison,
) {
    // A null is a wildcard: it takes the form of the other side (`merge.go`), so a
    // null list or map that gains items is not itself added.
    let (ko, kn) = (
        old.map(|v| kind_of(schema, v)),
        new.map(|v| kind_of(schema, v)),
    );
    let kind = match (ko, kn) {
        (Some(a), Some(b)) if a == b => a,
        (Some(Kind::Leaf), Some(b)) if old.is_some_and(Value::is_null) => b,
        (Some(a), Some(Kind::Leaf)) if new.is_some_and(Value::is_null) => a,
        (Some(_), Some(_)) => Kind::Leaf,
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => return,
    };
    match kind {
        Kind::Leaf => {
            match (old, new) {
                (None, Some(_)) => c.added.insert(path),
                (Some(_), None) => c.removed.insert(path),
                (Some(a), Some(b)) if a != b => c.modified.insert(path),
                _ => {}
            }
            return;
        }
        Kind::Map => {
            let (o, n) = (
                null_wild(old).and_then(Value::as_object),
                null_wild(new).and_then(Value::as_object),
            );
            let keys: BTreeSet<&String> = o.into_iter().chain(n).flat_map(Map::keys).collect();
            for k in keys {
                let (cs, _, kept) = child(schema, k);
                if !kept {
                    continue;
                }
                path.push(Pe::Field(k.clone()));
                walk_compare(
                    o.and_then(|m| m.get(k)),
                    n.and_then(|m| m.get(k)),
                    &cs,
                    path,
                    c,
                );
                path.pop();
            }
        }
        Kind::List => {
            let elem = item_schema(schema);
            let o: BTreeMap<Pe, &Value> = list_items(schema, null_wild(old)).into_iter().collect();
            let n: BTreeMap<Pe, &Value> = list_items(schema, null_wild(new)).into_iter().collect();
            let keys: BTreeSet<&Pe> = o.keys().chain(n.keys()).collect();
            for k in keys {
                path.push(k.clone());
                walk_compare(o.get(k).copied(), n.get(k).copied(), &elem, path, c);
                path.pop();
            }
        }
    }
    if !path.is_empty() {
        match (old, new) {
            (None, Some(_)) => c.added.insert(path),
            (Some(_), None) => c.removed.insert(path),
            _ => {}
        }
    }
}

/// Merges an applied configuration into the live object (`TypedValue.Merge`): the
/// configuration's leaves win, maps merge by key, associative and set lists by item, in the
/// order `merge.go` gives (the configuration's order, the live object's other items kept
/// where they were).
pub fn merge(live: Option<&Value>, config: &Value, schema: &Schema) -> Value {
    let Some(live) = live.filter(|l| !l.is_null()) else {
        return prune_unknown(config, schema);
    };
    match (kind_of(schema, config), kind_of(schema, live)) {
        (Kind::Map, Kind::Map) => {
            let mut out = live.as_object().cloned().unwrap_or_default();
            for (k, cv) in config.as_object().into_iter().flatten() {
                let (cs, _, kept) = child(schema, k);
                if !kept {
                    continue;
                }
                let merged = merge(out.get(k), cv, &cs);
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Kind::List, Kind::List) => merge_list(live, config, schema),
        _ => prune_unknown(config, schema),
    }
}

fn merge_list(live: &Value, config: &Value, schema: &Schema) -> Value {
    let elem = item_schema(schema);
    let lhs = list_items(schema, Some(live));
    let rhs = list_items(schema, Some(config));
    let in_rhs: BTreeMap<&Pe, &Value> = rhs.iter().map(|(p, v)| (p, *v)).collect();
    let in_lhs: BTreeMap<&Pe, &Value> = lhs.iter().map(|(p, v)| (p, *v)).collect();
    let mut shared: std::collections::VecDeque<&Pe> = rhs
        .iter()
        .map(|(p, _)| p)
        .filter(|p| in_lhs.contains_key(p))
        .collect();
    let mut next_shared = shared.pop_front();
    let mut merged_rhs: BTreeSet<&Pe> = BTreeSet::new();
    let mut out = Vec::new();
    let (mut l, mut r) = (0, 0);
    while l < lhs.len() || r < rhs.len() {
        if l < lhs.len() && r < rhs.len() {
            let pe = &lhs[l].0;
            if *pe == rhs[r].0 {
                merged_rhs.insert(pe);
                out.push(merge(Some(lhs[l].1), rhs[r].1, &elem));
                l += 1;
                r += 1;
                if next_shared == Some(pe) {
                    next_shared = shared.pop_front();
                }
                continue;
            }
            if in_rhs.contains_key(pe) && next_shared.is_some_and(|n| n != pe) {
                l += 1;
                continue;
            }
        }
        if l < lhs.len() {
            let pe = &lhs[l].0;
            if !in_rhs.contains_key(pe) {
                out.push(lhs[l].1.clone());
                l += 1;
                continue;
            } else if merged_rhs.contains(pe) {
                l += 1;
                continue;
            }
        }
        if r < rhs.len() {
            let pe = &rhs[r].0;
            merged_rhs.insert(pe);
            out.push(merge(in_lhs.get(pe).copied(), rhs[r].1, &elem));
            r += 1;
            if next_shared == Some(pe) {
                next_shared = shared.pop_front();
            }
        }
    }
    Value::Array(out)
}

/// Drops the fields a pruning structural schema does not declare (CustomResourceDefinition
/// docs, "Field pruning").
pub fn prune_unknown(v: &Value, schema: &Schema) -> Value {
    match kind_of(schema, v) {
        Kind::Leaf => v.clone(),
        Kind::Map => {
            let mut out = Map::new();
            for (k, cv) in v.as_object().into_iter().flatten() {
                let (cs, _, kept) = child(schema, k);
                if kept {
                    out.insert(k.clone(), prune_unknown(cv, &cs));
                }
            }
            Value::Object(out)
        }
        Kind::List => {
            let elem = item_schema(schema);
            Value::Array(
                v.as_array()
                    .into_iter()
                    .flatten()
                    .map(|i| prune_unknown(i, &elem))
                    .collect(),
            )
        }
    }
}

/// The paths (`.spec.x`) of fields a pruning schema does not declare.
pub fn undeclared(v: &Value, schema: &Schema, at: &mut String, out: &mut Vec<String>) {
    match kind_of(schema, v) {
        Kind::Leaf => {}
        Kind::Map => {
            for (k, cv) in v.as_object().into_iter().flatten() {
                let (cs, _, kept) = child(schema, k);
                let len = at.len();
                at.push('.');
                at.push_str(k);
                if kept {
                    undeclared(cv, &cs, at, out);
                } else {
                    out.push(at.clone());
                }
                at.truncate(len);
            }
        }
        Kind::List => {
            let elem = item_schema(schema);
            for (i, item) in v.as_array().into_iter().flatten().enumerate() {
                let len = at.len();
                at.push_str(&format!("[{i}]"));
                undeclared(item, &elem, at, out);
                at.truncate(len);
            }
        }
    }
}

/// Removes the node at `path` (`TypedValue.RemoveItems` for one path).
pub fn remove(v: &mut Value, path: &[Pe], schema: &Schema) {
    let [first, rest @ ..] = path else { return };
    match first {
        Pe::Field(f) => {
            let (cs, _, _) = child(schema, f);
            let Some(o) = v.as_object_mut() else { return };
            if rest.is_empty() {
                o.remove(f);
            } else if let Some(c) = o.get_mut(f) {
                remove(c, rest, &cs);
            }
        }
        _ => {
            let elem = item_schema(schema);
            let position = list_items(schema, Some(v))
                .iter()
                .position(|(pe, _)| pe == first);
            let (Some(i), Some(a)) = (position, v.as_array_mut()) else {
                return;
            };
            if rest.is_empty() {
                a.remove(i);
            } else {
                remove(&mut a[i], rest, &elem);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_v1_round_trips_with_dot_for_a_node_that_is_also_a_member() {
        let v = json!({"f:data": {".": {}, "f:a": {}}, "f:metadata": {"f:finalizers": {".": {}, "v:\"x\"": {}}}});
        let set = Set::from_fields_v1(&v).unwrap();
        assert!(set.has(&[Pe::Field("data".into())]));
        assert!(set.has(&[Pe::Field("data".into()), Pe::Field("a".into())]));
        assert_eq!(set.to_fields_v1(), v);
    }

    #[test]
    fn paths_print_as_the_apiserver_prints_them() {
        let p = vec![
            Pe::Field("spec".into()),
            Pe::Field("containers".into()),
            Pe::Key(json!({"name": "web"}).to_string()),
            Pe::Field("image".into()),
        ];
        assert_eq!(display(&p), ".spec.containers[name=\"web\"].image");
    }
}
