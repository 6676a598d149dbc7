//! Checks JSON bodies against an AWS service model (botocore's `service-2.json`, which moto's
//! venv carries): the operation is found by method and URI template, and every member sent or
//! answered must exist in the operation's input or output shape with the right type; required
//! members must be present.

use serde_json::{Map, Value};

/// A loaded model.
pub struct Model {
    doc: Value,
}

/// The botocore model of `service` (`sesv2/2019-09-27`) from `.ci/venv`.
pub fn load(service: &str) -> Model {
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/venv/lib");
    let python = std::fs::read_dir(venv)
        .expect("run .ci/run once: it creates .ci/venv with moto and botocore")
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .expect("a python3.x folder in .ci/venv/lib")
        .path();
    let dir = python.join(format!("site-packages/botocore/data/{service}"));
    let plain = dir.join("service-2.json");
    let bytes = if plain.exists() {
        std::fs::read(&plain).expect("read model")
    } else {
        let out = std::process::Command::new("gzip")
            .arg("-dc")
            .arg(dir.join("service-2.json.gz"))
            .output()
            .expect("gzip");
        assert!(out.status.success(), "could not decompress the model");
        out.stdout
    };
    Model {
        doc: serde_json::from_slice(&bytes).expect("model JSON"),
    }
}

impl Model {
    /// The operation whose HTTP binding matches, with its name.
    pub fn operation(&self, method: &str, path: &str) -> Option<(&str, &Value)> {
        let path_parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        let ops = self.doc["operations"].as_object()?;
        let mut best: Option<(&str, &Value, usize)> = None;
        for (name, op) in ops {
            if op["http"]["method"] != method {
                continue;
            }
            let uri = op["http"]["requestUri"].as_str().unwrap_or("");
            let uri = uri.split('?').next().unwrap_or("");
            let tpl: Vec<&str> = uri.trim_end_matches('/').split('/').collect();
            if tpl.len() != path_parts.len() {
                continue;
            }
            let mut literal = 0;
            let matches = tpl.iter().zip(&path_parts).all(|(t, p)| {
                if t.starts_with('{') {
                    true
                } else {
                    literal += 1;
                    t == p
                }
            });
            if matches && best.is_none_or(|(_, _, l)| literal > l) {
                best = Some((name, op, literal));
            }
        }
        best.map(|(n, op, _)| (n, op))
    }

    fn shape(&self, name: &str) -> &Value {
        &self.doc["shapes"][name]
    }

    /// Problems of a body against a structure shape (only its body members).
    pub fn check_body(&self, shape_name: Option<&str>, body: &Value, at: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let Some(shape_name) = shape_name else {
            if body.as_object().is_some_and(|o| !o.is_empty()) {
                problems.push(format!("{at}: the model expects no body, got {body}"));
            }
            return problems;
        };
        let shape = self.shape(shape_name);
        let members = shape["members"].as_object().cloned().unwrap_or_default();
        let body_members: Map<String, Value> = members
            .into_iter()
            .filter(|(_, m)| m.get("location").is_none())
            .collect();
        let object = match body {
            Value::Null => Map::new(),
            Value::Object(o) => o.clone(),
            other => {
                problems.push(format!("{at}: expected an object, got {other}"));
                return problems;
            }
        };
        for req in shape["required"].as_array().into_iter().flatten() {
            let r = req.as_str().unwrap_or("");
            if body_members.contains_key(r) && !object.contains_key(r) {
                problems.push(format!("{at}: required member {r} is missing"));
            }
        }
        for (k, v) in &object {
            match body_members.get(k) {
                None => problems.push(format!("{at}: {k} is not a member of {shape_name}")),
                Some(m) => self.check_value(
                    m["shape"].as_str().unwrap_or(""),
                    v,
                    &format!("{at}.{k}"),
                    &mut problems,
                ),
            }
        }
        problems
    }

    fn check_value(&self, shape_name: &str, v: &Value, at: &str, problems: &mut Vec<String>) {
        let shape = self.shape(shape_name);
        let ty = shape["type"].as_str().unwrap_or("");
        let ok = match ty {
            "structure" => {
                let Some(o) = v.as_object() else {
                    problems.push(format!("{at}: expected a structure ({shape_name})"));
                    return;
                };
                let members = shape["members"].as_object().cloned().unwrap_or_default();
                for req in shape["required"].as_array().into_iter().flatten() {
                    let r = req.as_str().unwrap_or("");
                    if !o.contains_key(r) {
                        problems.push(format!("{at}: required member {r} is missing"));
                    }
                }
                for (k, x) in o {
                    match members.get(k) {
                        None => problems.push(format!("{at}: {k} is not a member of {shape_name}")),
                        Some(m) => self.check_value(
                            m["shape"].as_str().unwrap_or(""),
                            x,
                            &format!("{at}.{k}"),
                            problems,
                        ),
                    }
                }
                true
            }
            "list" => match v.as_array() {
                Some(items) => {
                    let member = shape["member"]["shape"].as_str().unwrap_or("");
                    for (i, x) in items.iter().enumerate() {
                        self.check_value(member, x, &format!("{at}[{i}]"), problems);
                    }
                    true
                }
                None => false,
            },
            "map" => match v.as_object() {
                Some(o) => {
                    let value = shape["value"]["shape"].as_str().unwrap_or("");
                    for (k, x) in o {
                        self.check_value(value, x, &format!("{at}.{k}"), problems);
                    }
                    true
                }
                None => false,
            },
            "string" => match v.as_str() {
                Some(s) => {
                    if let Some(allowed) = shape["enum"].as_array()
                        && !allowed.iter().any(|a| a == s)
                    {
                        problems.push(format!("{at}: {s} is not one of {shape_name}'s values"));
                    }
                    true
                }
                None => false,
            },
            "integer" | "long" => v.is_i64() || v.is_u64(),
            "double" | "float" => v.is_number(),
            "boolean" => v.is_boolean(),
            "timestamp" => v.is_number() || v.is_string(),
            "blob" => v.is_string(),
            _ => true,
        };
        if !ok {
            problems.push(format!("{at}: {v} is not a {ty} ({shape_name})"));
        }
    }
}
