//! The patch types an update can send besides apply (Kubernetes docs, "Update API Objects
//! in Place Using kubectl patch"): JSON merge patch (RFC 7386), JSON patch (RFC 6902), and
//! strategic merge patch for the built-in kinds (a merge patch whose associative lists merge
//! item by item on their merge keys, and `$patch: delete` / `$patch: replace` directives;
//! `k8s.io/apimachinery/pkg/util/strategicpatch`). The simulator's strategic merge patch
//! covers those rules only (no `$setElementOrder`, `$retainKeys` or
//! `$deleteFromPrimitiveList`).

use serde_json::{Map, Value};

use super::fields::item_pe;
use super::schema::Schema;

/// RFC 7386: objects merge, `null` removes, anything else replaces.
pub fn merge_patch(target: &Value, patch: &Value) -> Value {
    let Some(p) = patch.as_object() else {
        return patch.clone();
    };
    let mut out = target.as_object().cloned().unwrap_or_default();
    for (k, v) in p {
        if v.is_null() {
            out.remove(k);
        } else {
            let merged = merge_patch(out.get(k).unwrap_or(&Value::Null), v);
            out.insert(k.clone(), merged);
        }
    }
    Value::Object(out)
}

/// A strategic merge patch over `schema`.
pub fn strategic(target: &Value, patch: &Value, schema: &Schema) -> Value {
    let Some(p) = patch.as_object() else {
        return patch.clone();
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut out = p.clone();
        out.remove("$patch");
        return Value::Object(out);
    }
    let mut out = target.as_object().cloned().unwrap_or_default();
    for (k, v) in p {
        if k.starts_with('$') {
            continue;
        }
        let (cs, _, _) = super::fields::child(schema, k);
        if v.is_null() {
            out.remove(k);
            continue;
        }
        let merged = match (&cs, out.get(k), v) {
            (Schema::AssocList(_), Some(Value::Array(old)), Value::Array(items)) => {
                let mut list = old.clone();
                for (i, item) in items.iter().enumerate() {
                    let pe = item_pe(&cs, item, i);
                    let at = list
                        .iter()
                        .enumerate()
                        .position(|(j, o)| item_pe(&cs, o, j) == pe);
                    let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
                    let elem = match &cs {
                        Schema::AssocList(a) => a.1.clone(),
                        _ => Schema::Deduced,
                    };
                    match (at, delete) {
                        (Some(j), true) => {
                            list.remove(j);
                        }
                        (None, true) => {}
                        (Some(j), false) => list[j] = strategic(&list[j], item, &elem),
                        (None, false) => list.push(strategic(&Value::Null, item, &elem)),
                    }
                }
                Value::Array(list)
            }
            (_, Some(old), Value::Object(_)) => strategic(old, v, &cs),
            (_, None, Value::Object(_)) => strategic(&Value::Null, v, &cs),
            _ => v.clone(),
        };
        out.insert(k.clone(), merged);
    }
    Value::Object(out)
}

/// An RFC 6902 failure, in the apiserver's words where they matter.
pub type PatchError = String;

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn tokens(pointer: &str) -> Result<Vec<String>, PatchError> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let rest = pointer
        .strip_prefix('/')
        .ok_or_else(|| format!("invalid JSON pointer: {pointer:?}"))?;
    Ok(rest.split('/').map(unescape).collect())
}

fn parent<'a>(doc: &'a mut Value, path: &[String]) -> Result<(&'a mut Value, String), PatchError> {
    let (last, init) = path
        .split_last()
        .ok_or_else(|| "the root cannot be the target".to_string())?;
    let mut cur = doc;
    for t in init {
        cur = match cur {
            Value::Object(o) => o
                .get_mut(t)
                .ok_or_else(|| format!("doc is missing path: /{}", path.join("/")))?,
            Value::Array(a) => {
                let i: usize = t.parse().map_err(|_| format!("invalid index: {t}"))?;
                a.get_mut(i)
                    .ok_or_else(|| format!("doc is missing path: /{}", path.join("/")))?
            }
            _ => return Err(format!("doc is missing path: /{}", path.join("/"))),
        };
    }
    Ok((cur, last.clone()))
}

fn get(doc: &Value, path: &[String]) -> Option<Value> {
    let mut cur = doc;
    for t in path {
        cur = match cur {
            Value::Object(o) => o.get(t)?,
            Value::Array(a) => a.get(t.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur.clone())
}

fn add(doc: &mut Value, path: &[String], value: Value) -> Result<(), PatchError> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (p, last) = parent(doc, path)?;
    match p {
        Value::Object(o) => {
            o.insert(last, value);
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(value);
            } else {
                let i: usize = last.parse().map_err(|_| format!("invalid index: {last}"))?;
                if i > a.len() {
                    return Err(format!(
                        "add operation does not apply: index {i} out of bounds"
                    ));
                }
                a.insert(i, value);
            }
        }
        _ => return Err(format!("doc is missing path: /{}", path.join("/"))),
    }
    Ok(())
}

fn remove(doc: &mut Value, path: &[String]) -> Result<Value, PatchError> {
    let missing = || {
        format!(
            "remove operation does not apply: doc is missing path: \"/{}\"",
            path.join("/")
        )
    };
    let (p, last) = parent(doc, path)?;
    match p {
        Value::Object(o) => o.remove(&last).ok_or_else(missing),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| missing())?;
            if i < a.len() {
                Ok(a.remove(i))
            } else {
                Err(missing())
            }
        }
        _ => Err(missing()),
    }
}

/// Applies an RFC 6902 JSON patch.
pub fn json_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops = patch
        .as_array()
        .ok_or_else(|| "a JSON patch is an array of operations".to_string())?;
    let mut doc = target.clone();
    for op in ops {
        let o: &Map<String, Value> = op
            .as_object()
            .ok_or_else(|| "an operation is an object".to_string())?;
        let path = tokens(o.get("path").and_then(Value::as_str).unwrap_or(""))?;
        let value = || {
            o.get("value")
                .cloned()
                .ok_or_else(|| "missing value".to_string())
        };
        match o.get("op").and_then(Value::as_str).unwrap_or("") {
            "add" => add(&mut doc, &path, value()?)?,
            "remove" => {
                remove(&mut doc, &path)?;
            }
            "replace" => {
                remove(&mut doc, &path).map_err(|_| {
                    format!(
                        "replace operation does not apply: doc is missing key: /{}",
                        path.join("/")
                    )
                })?;
                add(&mut doc, &path, value()?)?;
            }
            "test" => {
                if get(&doc, &path) != Some(value()?) {
                    return Err("testing value failed".into());
                }
            }
            "move" | "copy" => {
                let from = tokens(o.get("from").and_then(Value::as_str).unwrap_or(""))?;
                let v = if o["op"] == "move" {
                    remove(&mut doc, &from)?
                } else {
                    get(&doc, &from).ok_or_else(|| "copy from a missing path".to_string())?
                };
                add(&mut doc, &path, v)?;
            }
            other => return Err(format!("Unexpected kind: {other}")),
        }
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_merge_patch_merges_objects_and_null_removes() {
        let t = json!({"a": {"b": 1, "c": 2}, "d": [1]});
        let out = merge_patch(&t, &json!({"a": {"b": null, "e": 3}, "d": [2]}));
        assert_eq!(out, json!({"a": {"c": 2, "e": 3}, "d": [2]}));
    }

    #[test]
    fn a_json_patch_adds_replaces_removes_and_tests() {
        let t = json!({"a": [1, 2], "b": {"c": 1}});
        let p = json!([
            {"op": "add", "path": "/a/-", "value": 3},
            {"op": "replace", "path": "/b/c", "value": 2},
            {"op": "remove", "path": "/a/0"},
            {"op": "test", "path": "/b/c", "value": 2},
            {"op": "add", "path": "/b/x~1y", "value": true},
        ]);
        assert_eq!(
            json_patch(&t, &p).unwrap(),
            json!({"a": [2, 3], "b": {"c": 2, "x/y": true}})
        );
        assert!(json_patch(&t, &json!([{"op": "remove", "path": "/zz"}])).is_err());
        assert!(json_patch(&t, &json!([{"op": "test", "path": "/a/0", "value": 9}])).is_err());
    }
}
