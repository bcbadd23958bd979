//! Field validation against the OpenAPI schema (`fieldValidation`): finds fields the schema
//! does not know (and, when asked, drops them, as upstream's decoder does) and values of the
//! wrong JSON type. Messages follow upstream's strict decoder: `unknown field "spec.foo"`.

use serde_json::{Map, Value};

use crate::object::Object;
use crate::resources::ResourceDef;

/// Upstream accepts at most this much nesting in an object.
const MAX_DEPTH: usize = 100;

/// What the schema found wrong with an object.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// `unknown field "spec.foo"`: dropped from the object; an error only under Strict.
    pub unknown: Vec<String>,
    /// Values of the wrong type: always an error (upstream fails to decode them).
    pub invalid: Vec<String>,
}

/// Check `obj` (in `def`'s version) against its schema, removing unknown fields (upstream's
/// decoder drops them in every mode; Warn and Strict also report them).
pub fn check(def: &ResourceDef, obj: &mut Object) -> Report {
    let mut report = Report::default();
    if let Some(root) = crate::openapi::kind_schema(def.group, def.version, def.kind) {
        walk_object(root, obj, &Path::Root, &mut report, 0);
    }
    report
}

/// Follow `$ref` (and single-element `allOf` wrappers) to the schema they name.
fn resolve(schema: &'static Value) -> &'static Value {
    let mut cur = schema;
    for _ in 0..16 {
        if let Some(r) = cur.get("$ref").and_then(Value::as_str) {
            match crate::openapi::schema_by_ref(r) {
                Some(s) => {
                    cur = s;
                    continue;
                }
                None => return cur,
            }
        }
        if let Some([only]) = cur
            .get("allOf")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
        {
            cur = only;
            continue;
        }
        break;
    }
    cur
}

/// `additionalProperties` of an object schema.
#[derive(Clone, Copy)]
enum Additional {
    /// Absent (or `false`): only `properties` are known.
    No,
    /// `true`: anything goes.
    Any,
    /// A schema every other key's value follows.
    Schema(&'static Value),
}

/// What the walk needs of one schema, read once per schema node and thread instead of
/// looking its keys up by name (`$ref`, `allOf`, `type`, `format`, ...) at every field of
/// every object checked: that was most of the check's cost.
#[derive(Clone, Copy)]
struct Facts {
    /// `x-kubernetes-preserve-unknown-fields: true`.
    preserve_unknown: bool,
    props: Option<&'static Map<String, Value>>,
    additional: Additional,
    ty: Option<&'static str>,
    /// int-or-string or quantity: a string or a number.
    string_or_number: bool,
    items: Option<&'static Value>,
}

impl Facts {
    fn read(schema: &'static Value) -> Facts {
        let schema = resolve(schema);
        let format = schema.get("format").and_then(Value::as_str);
        Facts {
            preserve_unknown: schema.get("x-kubernetes-preserve-unknown-fields")
                == Some(&Value::Bool(true)),
            props: schema.get("properties").and_then(Value::as_object),
            additional: match schema.get("additionalProperties") {
                Some(Value::Bool(true)) => Additional::Any,
                Some(s @ Value::Object(_)) => Additional::Schema(s),
                _ => Additional::No,
            },
            ty: schema.get("type").and_then(Value::as_str),
            string_or_number: schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true))
                || format == Some("int-or-string")
                || format == Some("quantity"),
            items: schema.get("items"),
        }
    }

    /// The facts of `schema` (a node of the static OpenAPI catalogue), cached per thread by
    /// the node's address.
    fn of(schema: &'static Value) -> Facts {
        thread_local! {
            static CACHE: std::cell::RefCell<std::collections::HashMap<usize, Facts>> =
                std::cell::RefCell::new(std::collections::HashMap::new());
        }
        let key = std::ptr::from_ref(schema) as usize;
        CACHE.with(|c| {
            if let Some(f) = c.borrow().get(&key) {
                return *f;
            }
            let f = Facts::read(schema);
            c.borrow_mut().insert(key, f);
            f
        })
    }
}

/// Where a value is, as a chain of steps on the stack: rendered (`spec.containers[0].name`)
/// only when something is reported, so a clean object allocates no paths.
#[derive(Clone, Copy)]
enum Path<'a> {
    Root,
    Field(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    fn render(&self) -> String {
        match self {
            Path::Root => String::new(),
            Path::Field(parent, field) => {
                let mut s = parent.render();
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(field);
                s
            }
            Path::Index(parent, i) => format!("{}[{i}]", parent.render()),
        }
    }
}

fn walk_object(
    schema: &'static Value,
    obj: &mut Map<String, Value>,
    path: &Path<'_>,
    out: &mut Report,
    depth: usize,
) {
    if depth > MAX_DEPTH {
        out.invalid.push(format!(
            "{}: exceeds the maximum nesting depth of {MAX_DEPTH}",
            path.render()
        ));
        return;
    }
    walk_fields(Facts::of(schema), obj, path, out, depth);
}

fn walk_fields(
    facts: Facts,
    obj: &mut Map<String, Value>,
    path: &Path<'_>,
    out: &mut Report,
    depth: usize,
) {
    // Embedded objects with free-form content (e.g. RawExtension) accept anything.
    if facts.preserve_unknown {
        return;
    }
    let props = facts.props;
    let mut unknown = Vec::new();
    for (k, v) in obj.iter_mut() {
        let child_path = Path::Field(path, k);
        let child_schema = props.and_then(|p| p.get(k)).or(match facts.additional {
            Additional::Schema(s) => Some(s),
            Additional::Any | Additional::No => None,
        });
        match child_schema {
            Some(s) => walk_value(s, v, &child_path, out, depth + 1),
            None if props.is_some() && matches!(facts.additional, Additional::No) => {
                unknown.push(k.clone());
                out.unknown
                    .push(format!("unknown field {:?}", child_path.render()));
            }
            None => {}
        }
    }
    for k in unknown {
        obj.remove(&k);
    }
}

fn walk_value(
    schema: &'static Value,
    v: &mut Value,
    path: &Path<'_>,
    out: &mut Report,
    depth: usize,
) {
    if v.is_null() {
        return;
    }
    let facts = Facts::of(schema);
    if facts.string_or_number {
        if !(v.is_string() || v.is_number()) {
            out.invalid
                .push(type_error(&path.render(), v, "string or number"));
        }
        return;
    }
    match (facts.ty, v) {
        (Some("object"), Value::Object(m)) | (None, Value::Object(m)) => {
            if depth > MAX_DEPTH {
                out.invalid.push(format!(
                    "{}: exceeds the maximum nesting depth of {MAX_DEPTH}",
                    path.render()
                ));
                return;
            }
            walk_fields(facts, m, path, out, depth)
        }
        (Some("array"), Value::Array(items)) => {
            if let Some(item_schema) = facts.items {
                for (i, item) in items.iter_mut().enumerate() {
                    walk_value(item_schema, item, &Path::Index(path, i), out, depth + 1);
                }
            }
        }
        (Some("string"), Value::String(_)) | (Some("boolean"), Value::Bool(_)) => {}
        (Some("integer"), Value::Number(n)) if n.is_i64() || n.is_u64() => {}
        (Some("number"), Value::Number(_)) => {}
        (None, _) => {}
        (Some(t), other) => out.invalid.push(type_error(&path.render(), other, t)),
    }
}

fn type_error(path: &str, v: &Value, want: &str) -> String {
    let got = match v {
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        Value::Null => "null",
    };
    format!("json: cannot unmarshal {got} into Go struct field {path} of type {want}")
}
