//! Swagger 2.0 (`/openapi/v2`) from the v3 documents: parameters lose their `schema`
//! wrapper, request bodies become `in: body` parameters, response content becomes `schema`
//! plus `consumes`/`produces`, `#/components/schemas/` refs become `#/definitions/`, and a
//! `$ref` wrapped in a one-element `allOf` (how OpenAPI 3.0 puts a description beside a
//! reference) becomes a plain `$ref` with its siblings, as in upstream's Swagger document:
//! kube-openapi's v2 model (kubectl ≤ 1.28's explain and client-side apply) ignores `allOf`.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::schemas::{Catalogue, REF_PREFIX};
use crate::discovery::GIT_VERSION;

const V2_PREFIX: &str = "#/definitions/";

/// Rewrites every `$ref` inside `v` to Swagger 2.0's `#/definitions/` and unwraps
/// `allOf: [{$ref}]`.
fn rewrite_refs(v: &mut Value) {
    match v {
        Value::Object(o) => {
            unwrap_all_of(o);
            for (k, v) in o.iter_mut() {
                match v {
                    Value::String(s) if k == "$ref" => {
                        if let Some(n) = s.strip_prefix(REF_PREFIX) {
                            *s = format!("{V2_PREFIX}{n}");
                        }
                    }
                    _ => rewrite_refs(v),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}

/// `{"allOf": [{"$ref": r}], …}` → `{"$ref": r, …}`.
fn unwrap_all_of(o: &mut Map<String, Value>) {
    if o.contains_key("$ref") {
        return;
    }
    let reference = match o.get("allOf") {
        Some(Value::Array(all)) if all.len() == 1 => match &all[0] {
            Value::Object(only) if only.len() == 1 => only.get("$ref").cloned(),
            _ => None,
        },
        _ => None,
    };
    if let Some(r) = reference {
        o.remove("allOf");
        o.insert("$ref".into(), r);
    }
}

/// Upstream's Swagger document has no `oneOf`, so IntOrString and Quantity (in our schemas
/// untyped with `x-kubernetes-int-or-string`, which [`crate::fieldcheck`] reads) are plain
/// strings there, IntOrString with `format: int-or-string`; kubectl's v2 explain prints them as
/// `<string>`.
fn string_scalar(name: &str, o: &mut Map<String, Value>) {
    if o.contains_key("type") || o.remove("x-kubernetes-int-or-string").is_none() {
        return;
    }
    o.insert("type".into(), "string".into());
    if name == "io.k8s.apimachinery.pkg.util.intstr.IntOrString" {
        o.insert("format".into(), "int-or-string".into());
    }
}

fn parameter(p: &Value) -> Value {
    let mut out = Map::new();
    if let Value::Object(o) = p {
        for (k, v) in o {
            if k == "schema" {
                if let Value::Object(s) = v {
                    out.extend(s.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            } else {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

fn parameters(ps: &Value) -> Value {
    Value::Array(ps.as_array().into_iter().flatten().map(parameter).collect())
}

/// The content types and the schema of the first one.
fn unpack_content(content: Option<&Value>) -> (Vec<String>, Option<Value>) {
    let Some(Value::Object(c)) = content else {
        return (Vec::new(), None);
    };
    let types = c.keys().cloned().collect();
    let schema = c.values().find_map(|m| m.get("schema").cloned());
    (types, schema)
}

fn operation(op: &Value) -> Value {
    let Value::Object(op) = op else {
        return op.clone();
    };
    let mut out = Map::new();
    let mut params = match op.get("parameters") {
        Some(ps) => parameters(ps).as_array().cloned().unwrap_or_default(),
        None => Vec::new(),
    };
    let mut produces = BTreeSet::new();
    for (k, v) in op {
        match k.as_str() {
            "parameters" => {}
            "requestBody" => {
                let (types, schema) = unpack_content(v.get("content"));
                out.insert("consumes".into(), json!(types));
                let mut body = json!({"name": "body", "in": "body", "required": true});
                if let (Some(schema), Value::Object(b)) = (schema, &mut body) {
                    b.insert("schema".into(), schema);
                }
                params.insert(0, body);
            }
            "responses" => {
                let mut rs = Map::new();
                for (code, r) in v.as_object().into_iter().flatten() {
                    let (types, schema) = unpack_content(r.get("content"));
                    produces.extend(types);
                    let mut resp = Map::new();
                    resp.insert(
                        "description".into(),
                        r.get("description").cloned().unwrap_or_default(),
                    );
                    if let Some(schema) = schema {
                        resp.insert("schema".into(), schema);
                    }
                    rs.insert(code.clone(), Value::Object(resp));
                }
                out.insert("responses".into(), Value::Object(rs));
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    if !params.is_empty() {
        out.insert("parameters".into(), Value::Array(params));
    }
    out.insert("produces".into(), json!(produces));
    out.insert("schemes".into(), json!(["https"]));
    Value::Object(out)
}

fn path_item(item: &Value) -> Value {
    let mut out = Map::new();
    for (k, v) in item.as_object().into_iter().flatten() {
        let converted = match k.as_str() {
            "parameters" => parameters(v),
            _ => operation(v),
        };
        out.insert(k.clone(), converted);
    }
    Value::Object(out)
}

/// The Swagger 2.0 document for all the v3 documents `docs` (`(key, document)`).
pub(super) fn build(cat: &Catalogue, docs: &[(String, Value)]) -> Value {
    let mut paths = Map::new();
    let mut used = Vec::new();
    for (_, doc) in docs {
        for (p, item) in doc["paths"].as_object().into_iter().flatten() {
            paths.insert(p.clone(), path_item(item));
        }
        used.extend(
            doc["components"]["schemas"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, _)| k.clone()),
        );
    }
    let mut definitions = cat.closure(used);
    for (name, schema) in definitions.iter_mut() {
        if let Value::Object(o) = schema {
            string_scalar(name, o);
        }
    }
    let mut definitions = Value::Object(definitions);
    rewrite_refs(&mut definitions);
    rewrite_refs_in_paths(&mut paths);
    json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": GIT_VERSION},
            "paths": paths,
            "definitions": definitions,
            "securityDefinitions": {
                "BearerToken": {
                    "description": "Bearer Token authentication",
                    "type": "apiKey",
                    "name": "authorization",
                    "in": "header",
                }
            },
            "security": [{"BearerToken": []}],
    })
}

fn rewrite_refs_in_paths(paths: &mut Map<String, Value>) {
    for v in paths.values_mut() {
        rewrite_refs(v);
    }
}
