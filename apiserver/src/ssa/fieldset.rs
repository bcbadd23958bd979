//! Field sets: which fields of an object a manager owns, as upstream's structured-merge-diff
//! records them in `managedFields[].fieldsV1` (`{"f:spec":{"f:replicas":{}}}`, list-map items
//! as `k:{"name":"web"}`, set items as `v:"x"`, atomic lists as one leaf).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::patch::{ListType, Schema};

/// One step of a path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Field(String),
    /// A list-map item, by its key fields serialized as a JSON object.
    Key(String),
    /// A set item, by its JSON value.
    Value(String),
}

impl Step {
    fn encode(&self) -> String {
        match self {
            Step::Field(f) => format!("f:{f}"),
            Step::Key(k) => format!("k:{k}"),
            Step::Value(v) => format!("v:{v}"),
        }
    }

    fn decode(s: &str) -> Option<Step> {
        let (tag, rest) = s.split_at_checked(2)?;
        match tag {
            "f:" => Some(Step::Field(rest.to_string())),
            "k:" => Some(Step::Key(rest.to_string())),
            "v:" => Some(Step::Value(rest.to_string())),
            _ => None,
        }
    }
}

/// A set of owned paths, as a tree. `own` marks that the node itself is owned (a leaf, or a
/// list-map item's `.` entry).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    pub own: bool,
    pub children: BTreeMap<Step, FieldSet>,
}

/// Top-level and metadata fields that no manager owns (server-set or identity).
const SKIP_TOP: &[&str] = &["apiVersion", "kind", "status"];
const SKIP_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

impl FieldSet {
    pub fn is_empty(&self) -> bool {
        !self.own && self.children.is_empty()
    }

    /// The fields an applied configuration sets.
    pub fn of_object(obj: &Map<String, Value>, schema: &'static Schema) -> FieldSet {
        let mut set = FieldSet::default();
        for (k, v) in obj {
            if SKIP_TOP.contains(&k.as_str()) {
                continue;
            }
            let child = if k == "metadata" {
                match v.as_object() {
                    Some(m) => {
                        let mut meta = FieldSet::default();
                        for (mk, mv) in m {
                            if !SKIP_META.contains(&mk.as_str()) {
                                meta.children.insert(
                                    Step::Field(mk.clone()),
                                    Self::of_value(mv, schema.field("metadata").field(mk), 1),
                                );
                            }
                        }
                        meta
                    }
                    None => continue,
                }
            } else {
                Self::of_value(v, schema.field(k), 1)
            };
            if !child.is_empty() {
                set.children.insert(Step::Field(k.clone()), child);
            }
        }
        set
    }

    fn of_value(v: &Value, schema: &'static Schema, depth: usize) -> FieldSet {
        let leaf = FieldSet {
            own: true,
            children: BTreeMap::new(),
        };
        if depth > 64 {
            return leaf;
        }
        match v {
            Value::Object(m) if !m.is_empty() => {
                let mut set = FieldSet::default();
                for (k, child) in m {
                    set.children.insert(
                        Step::Field(k.clone()),
                        Self::of_value(child, schema.field(k), depth + 1),
                    );
                }
                set
            }
            Value::Array(items) => match schema.list_meta().map(|m| m.ssa) {
                Some(ListType::Map(keys)) => {
                    let mut set = FieldSet::default();
                    for item in items {
                        let Some(key) = item_key(item, keys) else {
                            return leaf;
                        };
                        let mut node = Self::of_value(item, schema.element(), depth + 1);
                        node.own = true;
                        set.children.insert(Step::Key(key), node);
                    }
                    set
                }
                Some(ListType::Set) => {
                    let mut set = FieldSet::default();
                    for item in items {
                        set.children
                            .insert(Step::Value(item.to_string()), leaf.clone());
                    }
                    set
                }
                _ => leaf,
            },
            _ => leaf,
        }
    }

    /// Every owned path (leaves and owned inner nodes).
    pub fn paths(&self) -> Vec<Vec<Step>> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, prefix: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
        if self.own {
            out.push(prefix.clone());
        }
        for (step, child) in &self.children {
            prefix.push(step.clone());
            child.collect(prefix, out);
            prefix.pop();
        }
    }

    pub fn contains(&self, path: &[Step]) -> bool {
        match path.split_first() {
            None => self.own,
            Some((first, rest)) => self.children.get(first).is_some_and(|c| c.contains(rest)),
        }
    }

    /// Remove one owned path; empty inner nodes are pruned.
    pub fn remove(&mut self, path: &[Step]) {
        match path.split_first() {
            None => self.own = false,
            Some((first, rest)) => {
                if let Some(child) = self.children.get_mut(first) {
                    child.remove(rest);
                    if child.is_empty() {
                        self.children.remove(first);
                    }
                }
            }
        }
    }

    /// `fieldsV1` JSON.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        if self.own && !self.children.is_empty() {
            m.insert(".".into(), Value::Object(Map::new()));
        }
        for (step, child) in &self.children {
            m.insert(step.encode(), child.to_json());
        }
        Value::Object(m)
    }

    /// Parse `fieldsV1`; unknown entries are ignored.
    pub fn from_json(v: &Value) -> FieldSet {
        let mut set = FieldSet::default();
        let Some(m) = v.as_object() else {
            return set;
        };
        if m.is_empty() {
            set.own = true;
            return set;
        }
        for (k, child) in m {
            if k == "." {
                set.own = true;
            } else if let Some(step) = Step::decode(k) {
                set.children.insert(step, Self::from_json(child));
            }
        }
        set
    }
}

/// The key of a list-map item: its key fields as a compact JSON object, or `None` when one
/// is missing.
pub fn item_key(item: &Value, keys: &[&str]) -> Option<String> {
    let mut m = Map::new();
    for k in keys {
        match item.get(*k) {
            Some(v) => {
                m.insert((*k).to_string(), v.clone());
            }
            None if keys.len() > 1 => {}
            None => return None,
        }
    }
    if m.is_empty() {
        return None;
    }
    Some(Value::Object(m).to_string())
}

/// The value at `path` in `v`, if present.
pub fn value_at<'a>(v: &'a Value, path: &[Step], schema: &'static Schema) -> Option<&'a Value> {
    let mut cur = v;
    let mut sch = schema;
    for step in path {
        match step {
            Step::Field(f) => {
                cur = cur.get(f)?;
                sch = sch.field(f);
            }
            Step::Key(k) => {
                let keys = match sch.list_meta().map(|m| m.ssa) {
                    Some(ListType::Map(keys)) => keys,
                    _ => return None,
                };
                cur = cur
                    .as_array()?
                    .iter()
                    .find(|item| item_key(item, keys).as_deref() == Some(k.as_str()))?;
                sch = sch.element();
            }
            Step::Value(val) => {
                cur = cur
                    .as_array()?
                    .iter()
                    .find(|item| item.to_string() == *val)?;
            }
        }
    }
    Some(cur)
}

/// Remove the value at `path` from `v` (a field, a list-map item or a set item).
pub fn remove_at(v: &mut Value, path: &[Step], schema: &'static Schema) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    let mut sch = schema;
    for step in parents {
        let next = match step {
            Step::Field(f) => {
                sch = sch.field(f);
                cur.get_mut(f)
            }
            Step::Key(k) => {
                let keys = match sch.list_meta().map(|m| m.ssa) {
                    Some(ListType::Map(keys)) => keys,
                    _ => return,
                };
                sch = sch.element();
                cur.as_array_mut().and_then(|a| {
                    a.iter_mut()
                        .find(|item| item_key(item, keys).as_deref() == Some(k.as_str()))
                })
            }
            Step::Value(_) => return,
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match last {
        Step::Field(f) => {
            if let Some(m) = cur.as_object_mut() {
                m.remove(f);
            }
        }
        Step::Key(k) => {
            if let (Some(ListType::Map(keys)), Some(a)) =
                (sch.list_meta().map(|m| m.ssa), cur.as_array_mut())
            {
                a.retain(|item| item_key(item, keys).as_deref() != Some(k.as_str()));
            }
        }
        Step::Value(val) => {
            if let Some(a) = cur.as_array_mut() {
                a.retain(|item| item.to_string().as_str() != val.as_str());
            }
        }
    }
}

/// Upstream's printed form of a path: `.spec.template.spec.containers[name="web"].image`.
pub fn display(path: &[Step]) -> String {
    let mut s = String::new();
    for step in path {
        match step {
            Step::Field(f) => {
                s.push('.');
                s.push_str(f);
            }
            Step::Key(k) => {
                let parsed: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
                let parts: Vec<String> = parsed.iter().map(|(k, v)| format!("{k}={v}")).collect();
                s.push_str(&format!("[{}]", parts.join(",")));
            }
            Step::Value(v) => s.push_str(&format!("[={v}]")),
        }
    }
    s
}

impl FieldSet {
    /// Add every path of `other`.
    pub fn union(&mut self, other: &FieldSet) {
        self.own |= other.own;
        for (step, child) in &other.children {
            self.children.entry(step.clone()).or_default().union(child);
        }
    }

    /// Drop every path of `other`; empty inner nodes are pruned.
    pub fn difference(&mut self, other: &FieldSet) {
        if other.own {
            self.own = false;
        }
        for (step, child) in &other.children {
            if let Some(mine) = self.children.get_mut(step) {
                mine.difference(child);
                if mine.is_empty() {
                    self.children.remove(step);
                }
            }
        }
    }

    /// Parse a whole `fieldsV1` value strictly, as upstream's `FieldsToSet`: `None` when it is
    /// not an object or a key is not `.`, `f:`, `k:` or `v:`. The empty object is the empty
    /// set.
    pub fn parse_fields_v1(v: &Value) -> Option<FieldSet> {
        let m = v.as_object()?;
        let mut set = FieldSet::default();
        for (k, child) in m {
            if k == "." {
                set.own = true;
                continue;
            }
            let step = Step::decode(k)?;
            let node = match child.as_object() {
                Some(c) if c.is_empty() => FieldSet {
                    own: true,
                    children: BTreeMap::new(),
                },
                Some(_) => Self::parse_fields_v1(child)?,
                None => return None,
            };
            set.children.insert(step, node);
        }
        Some(set)
    }
}

/// What a write changed, as structured-merge-diff's comparison of the live and the new
/// object: `changed` holds the added and modified fields, `removed` the fields that are gone.
#[derive(Debug, Default)]
pub struct Comparison {
    pub changed: FieldSet,
    pub removed: FieldSet,
}

impl Comparison {
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.removed.is_empty()
    }
}

/// Compare two objects on the fields managers may own: with `status_only`, only `status`
/// (a status subresource write); otherwise everything but status and the server-set
/// metadata. `old` is `None` on create (everything is added).
pub fn compare(
    old: Option<&Map<String, Value>>,
    new: &Map<String, Value>,
    schema: &'static Schema,
    status_only: bool,
) -> Comparison {
    let mut out = Comparison::default();
    let empty = Map::new();
    let old = old.unwrap_or(&empty);
    if status_only {
        let mut c = Comparison::default();
        compare_values(
            old.get("status"),
            new.get("status"),
            schema.field("status"),
            1,
            &mut c,
        );
        insert_child(&mut out, Step::Field("status".into()), c);
        return out;
    }
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for k in keys {
        if SKIP_TOP.contains(&k.as_str()) {
            continue;
        }
        let mut c = Comparison::default();
        if k == "metadata" {
            let om = old.get(k).and_then(Value::as_object).unwrap_or(&empty);
            let nm = new.get(k).and_then(Value::as_object).unwrap_or(&empty);
            let mkeys: std::collections::BTreeSet<&String> = om.keys().chain(nm.keys()).collect();
            for mk in mkeys {
                if SKIP_META.contains(&mk.as_str()) {
                    continue;
                }
                let mut mc = Comparison::default();
                compare_values(
                    om.get(mk),
                    nm.get(mk),
                    schema.field("metadata").field(mk),
                    2,
                    &mut mc,
                );
                insert_child(&mut c, Step::Field(mk.clone()), mc);
            }
        } else {
            compare_values(old.get(k), new.get(k), schema.field(k), 1, &mut c);
        }
        insert_child(&mut out, Step::Field(k.clone()), c);
    }
    out
}

fn insert_child(out: &mut Comparison, step: Step, c: Comparison) {
    if !c.changed.is_empty() {
        out.changed.children.insert(step.clone(), c.changed);
    }
    if !c.removed.is_empty() {
        out.removed.children.insert(step, c.removed);
    }
}

fn compare_values(
    old: Option<&Value>,
    new: Option<&Value>,
    schema: &'static Schema,
    depth: usize,
    out: &mut Comparison,
) {
    match (old, new) {
        (None, None) => {}
        (None, Some(n)) => out.changed = FieldSet::of_value(n, schema, depth),
        (Some(o), None) => out.removed = FieldSet::of_value(o, schema, depth),
        (Some(o), Some(n)) if o == n => {}
        (Some(Value::Object(o)), Some(Value::Object(n)))
            if !o.is_empty() && !n.is_empty() && depth <= 64 =>
        {
            let keys: std::collections::BTreeSet<&String> = o.keys().chain(n.keys()).collect();
            for k in keys {
                let mut c = Comparison::default();
                compare_values(o.get(k), n.get(k), schema.field(k), depth + 1, &mut c);
                insert_child(out, Step::Field(k.clone()), c);
            }
        }
        (Some(Value::Array(o)), Some(Value::Array(n))) if depth <= 64 => {
            match schema.list_meta().map(|m| m.ssa) {
                Some(ListType::Map(keys)) => {
                    let keyed = |items: &[Value]| -> Option<Vec<(String, Value)>> {
                        items
                            .iter()
                            .map(|i| item_key(i, keys).map(|k| (k, i.clone())))
                            .collect()
                    };
                    let (Some(ok), Some(nk)) = (keyed(o), keyed(n)) else {
                        return changed_leaf(o, n, schema, depth, out);
                    };
                    let elem = schema.element();
                    for (k, item) in &nk {
                        let before = ok.iter().find(|(x, _)| x == k).map(|(_, v)| v);
                        let mut c = Comparison::default();
                        match before {
                            None => {
                                c.changed = FieldSet::of_value(item, elem, depth + 1);
                                c.changed.own = true;
                            }
                            Some(b) => compare_values(Some(b), Some(item), elem, depth + 1, &mut c),
                        }
                        insert_child(out, Step::Key(k.clone()), c);
                    }
                    for (k, item) in &ok {
                        if !nk.iter().any(|(x, _)| x == k) {
                            let mut gone = FieldSet::of_value(item, elem, depth + 1);
                            gone.own = true;
                            out.removed.children.insert(Step::Key(k.clone()), gone);
                        }
                    }
                }
                Some(ListType::Set) => {
                    let leaf = FieldSet {
                        own: true,
                        children: BTreeMap::new(),
                    };
                    for item in n.iter().filter(|i| !o.contains(i)) {
                        out.changed
                            .children
                            .insert(Step::Value(item.to_string()), leaf.clone());
                    }
                    for item in o.iter().filter(|i| !n.contains(i)) {
                        out.removed
                            .children
                            .insert(Step::Value(item.to_string()), leaf.clone());
                    }
                }
                _ => changed_leaf(o, n, schema, depth, out),
            }
        }
        (Some(o), Some(n)) => {
            out.removed = FieldSet::of_value(o, schema, depth);
            out.changed = FieldSet::of_value(n, schema, depth);
        }
    }
}

/// An atomic list (or one whose items lack their keys) that changed: replaced as a whole.
fn changed_leaf(
    o: &[Value],
    n: &[Value],
    schema: &'static Schema,
    depth: usize,
    out: &mut Comparison,
) {
    out.removed = FieldSet::of_value(&Value::Array(o.to_vec()), schema, depth);
    out.changed = FieldSet::of_value(&Value::Array(n.to_vec()), schema, depth);
}

// ---------------------------------------------------------------------------------------------
// Create: the `fieldsV1` of every field an object sets, written as JSON directly.

/// The `fieldsV1` JSON of `compare(None, obj, schema, false).changed` (every field a new
/// object sets, as a create records it), built without the intermediate tree; `None` when
/// that set is empty. A create's hot path: the same answer as the tree, one pass, fewer
/// allocations.
pub fn created_fields_json(obj: &Map<String, Value>, schema: &'static Schema) -> Option<Value> {
    let mut out = Map::new();
    for (k, v) in obj {
        if SKIP_TOP.contains(&k.as_str()) {
            continue;
        }
        if k == "metadata" {
            let Some(meta) = v.as_object() else {
                continue;
            };
            let meta_schema = schema.field("metadata");
            let mut fields = Map::new();
            for (mk, mv) in meta {
                if SKIP_META.contains(&mk.as_str()) {
                    continue;
                }
                if let Some(j) = value_fields_json(mv, meta_schema.field(mk), 2) {
                    fields.insert(step_key("f:", mk), j);
                }
            }
            if !fields.is_empty() {
                out.insert(step_key("f:", k), Value::Object(fields));
            }
        } else if let Some(j) = value_fields_json(v, schema.field(k), 1) {
            out.insert(step_key("f:", k), j);
        }
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

fn step_key(tag: &str, s: &str) -> String {
    let mut key = String::with_capacity(tag.len() + s.len());
    key.push_str(tag);
    key.push_str(s);
    key
}

/// `FieldSet::of_value(v, schema, depth).to_json()`; `None` for the empty set (a list-map
/// with no items).
fn value_fields_json(v: &Value, schema: &'static Schema, depth: usize) -> Option<Value> {
    let leaf = || Some(Value::Object(Map::new()));
    if depth > 64 {
        return leaf();
    }
    match v {
        Value::Object(m) if !m.is_empty() => {
            let mut out = Map::new();
            for (k, child) in m {
                let j = value_fields_json(child, schema.field(k), depth + 1)
                    .unwrap_or_else(|| Value::Object(Map::new()));
                out.insert(step_key("f:", k), j);
            }
            Some(Value::Object(out))
        }
        Value::Array(items) => match schema.list_meta().map(|m| m.ssa) {
            Some(ListType::Map(keys)) => {
                let mut out = Map::new();
                for item in items {
                    let Some(key) = item_key(item, keys) else {
                        return leaf();
                    };
                    // The item itself is owned: `.` beside its fields, `{}` when it has none.
                    let node = match value_fields_json(item, schema.element(), depth + 1) {
                        Some(Value::Object(mut fields)) if !fields.is_empty() => {
                            fields.insert(".".into(), Value::Object(Map::new()));
                            Value::Object(fields)
                        }
                        _ => Value::Object(Map::new()),
                    };
                    out.insert(step_key("k:", &key), node);
                }
                (!out.is_empty()).then_some(Value::Object(out))
            }
            Some(ListType::Set) => {
                let mut out = Map::new();
                for item in items {
                    out.insert(step_key("v:", &item.to_string()), Value::Object(Map::new()));
                }
                (!out.is_empty()).then_some(Value::Object(out))
            }
            _ => leaf(),
        },
        _ => leaf(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn slow(obj: &Value, schema: &'static Schema) -> Option<Value> {
        let set = compare(None, obj.as_object().unwrap_or(&Map::new()), schema, false).changed;
        (!set.is_empty()).then(|| set.to_json())
    }

    #[test]
    fn created_fields_match_the_tree() {
        let pod = crate::patch::schema_for_kind("core/Pod").unwrap_or(&Schema::Any);
        let svc = crate::patch::schema_for_kind("core/Service").unwrap_or(&Schema::Any);
        let dep = crate::patch::schema_for_kind("apps/Deployment").unwrap_or(&Schema::Any);
        let cases = [
            (json!({"apiVersion": "v1", "kind": "Pod"}), pod),
            (json!({"metadata": {"name": "a", "uid": "u"}}), pod),
            (json!({"metadata": null, "spec": {}}), pod),
            (json!({"metadata": "x", "spec": []}), pod),
            (
                json!({
                    "metadata": {"name": "a", "labels": {"app": "x"}, "finalizers": ["b", "a", "a"],
                                 "annotations": {}, "ownerReferences": [{"uid": "1", "name": "o"}]},
                    "spec": {
                        "containers": [
                            {"name": "app", "image": "i", "ports": [
                                {"containerPort": 80, "protocol": "TCP"},
                                {"containerPort": 80, "protocol": "UDP"},
                                {"containerPort": 81}],
                             "env": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}],
                             "args": ["--x"], "resources": {"limits": {"cpu": "1"}}},
                            {"name": "side"},
                        ],
                        "volumes": [],
                        "initContainers": [{"image": "no-name"}],
                        "tolerations": [{"key": "k"}],
                    },
                    "status": {"phase": "Pending"},
                }),
                pod,
            ),
            (
                json!({"spec": {"ports": [{"port": 80, "protocol": "TCP"}, {"port": 443}],
                                "selector": {"a": "b"}, "clusterIPs": []}}),
                svc,
            ),
            (
                json!({"spec": {"replicas": 2, "template": {"metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "ports": [], "env": [{"name": "E"}]}]}}}}),
                dep,
            ),
            (json!({"spec": {"containers": [1, "x", {}]}}), pod),
            (json!({"data": {"k": "v"}, "binaryData": {}}), &Schema::Any),
        ];
        for (obj, schema) in &cases {
            let fast = obj.as_object().and_then(|o| created_fields_json(o, schema));
            assert_eq!(fast, slow(obj, schema), "{obj}");
        }
        // Deep nesting: both stop at the same depth.
        let mut deep = json!("leaf");
        for _ in 0..80 {
            deep = json!({ "d": deep });
        }
        let obj = json!({ "spec": deep });
        let fast = obj.as_object().and_then(|o| created_fields_json(o, pod));
        assert_eq!(fast, slow(&obj, pod));
    }
}
