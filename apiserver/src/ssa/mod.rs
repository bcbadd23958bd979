//! Server-side apply: merge an applied configuration into the live object for one field
//! manager, track ownership in `metadata.managedFields`, and report conflicts with other
//! managers' fields (or take them over with `force`). Fields a manager applied before and no
//! longer applies are removed unless another manager owns them, as upstream.
//!
//! The merge itself is a strategic merge of the applied configuration (the same list
//! semantics as upstream's schema: list-maps by key, sets, atomic lists).
//!
//! Other writes (create, update, patch, status writes) are tracked too, as upstream's
//! `Update` operations ([`track_update`]): the fields a write changes move to its manager's
//! `Update` entry, so a later apply by someone else conflicts with them.

mod fieldset;

use serde_json::{Map, Value, json};

use crate::patch::{self, PatchError, Schema};
pub use fieldset::{FieldSet, Step};

/// One field another manager owns with a different value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub manager: String,
    /// Upstream's printed path, e.g. `.spec.replicas`.
    pub field: String,
    /// For an `Update` entry, the apiVersion it was written with (printed as `using ...`).
    pub update_api_version: Option<String>,
    /// The entry's subresource, when it was written through one (e.g. `status`).
    pub subresource: Option<String>,
}

impl Conflict {
    /// The manager as upstream's `printManager`: `"name"`, then ` with subresource "status"`,
    /// then ` using apps/v1` for an `Update` entry.
    pub fn printed_manager(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            s.push_str(&format!(" with subresource {sub:?}"));
        }
        if let Some(v) = &self.update_api_version {
            s.push_str(&format!(" using {v}"));
        }
        s
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("apply conflicts: {0:?}")]
    Conflicts(Vec<Conflict>),
    #[error(transparent)]
    Patch(#[from] PatchError),
}

struct Entry {
    manager: String,
    operation: String,
    raw: Map<String, Value>,
    fields: FieldSet,
}

impl Entry {
    fn str_field(&self, k: &str) -> Option<&str> {
        self.raw
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    fn conflict(&self, field: String) -> Conflict {
        Conflict {
            manager: self.manager.clone(),
            field,
            update_api_version: (self.operation == "Update")
                .then(|| self.str_field("apiVersion").unwrap_or("").to_string()),
            subresource: self.str_field("subresource").map(str::to_string),
        }
    }

    /// Upstream's manager identifier: manager, operation, subresource, and the apiVersion of
    /// an `Update` entry (appliers keep one entry across versions).
    fn is(&self, manager: &str, operation: &str, api_version: &str, sub: Option<&str>) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.str_field("subresource") == sub.filter(|s| !s.is_empty())
            && (operation == "Apply" || self.str_field("apiVersion").unwrap_or("") == api_version)
    }
}

fn entry_of(e: &Value) -> Option<Entry> {
    let raw = e.as_object()?.clone();
    Some(Entry {
        manager: raw
            .get("manager")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        operation: raw
            .get("operation")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        fields: raw
            .get("fieldsV1")
            .map(|f| FieldSet::parse_fields_v1(f).unwrap_or_else(|| FieldSet::from_json(f)))
            .unwrap_or_default(),
        raw,
    })
}

fn entries(obj: &Value) -> Vec<Entry> {
    obj.get("metadata")
        .and_then(|m| m.get("managedFields"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(entry_of).collect())
        .unwrap_or_default()
}

/// A client-given `managedFields` value as upstream's `DecodeManagedFields` takes it: a list
/// of entries with parseable `fieldsV1`, an `Apply`/`Update` operation (or none, for an entry
/// with no fields, as in the `[{}]` that resets managedFields). `None` when not valid.
fn client_entries(v: &Value) -> Option<Vec<Entry>> {
    v.as_array()?
        .iter()
        .map(|e| {
            let raw = e.as_object()?;
            let fields = match raw.get("fieldsV1") {
                None | Some(Value::Null) => FieldSet::default(),
                Some(f) => FieldSet::parse_fields_v1(f)?,
            };
            if let Some(t) = raw.get("fieldsType")
                && t != "FieldsV1"
                && t != ""
            {
                return None;
            }
            for k in ["manager", "operation", "apiVersion", "time", "subresource"] {
                if raw.get(k).is_some_and(|v| !v.is_string() && !v.is_null()) {
                    return None;
                }
            }
            let mut entry = entry_of(e)?;
            if !matches!(entry.operation.as_str(), "Apply" | "Update") && !fields.is_empty() {
                return None;
            }
            entry.fields = fields;
            Some(entry)
        })
        .collect()
}

fn entry_json(e: &Entry) -> Value {
    let mut raw = e.raw.clone();
    raw.insert("fieldsV1".into(), e.fields.to_json());
    raw.insert("fieldsType".into(), json!("FieldsV1"));
    Value::Object(raw)
}

/// Apply `applied` (an object of `kind`, e.g. `apps/Deployment`) for `manager`.
/// `live` is `None` when the object does not exist yet.
pub fn apply(
    kind: &str,
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    api_version: &str,
    now: &str,
    force: bool,
) -> Result<Value, ApplyError> {
    let schema: &'static Schema = patch::schema_for_kind(kind).unwrap_or(&Schema::Any);
    let Some(applied_obj) = applied.as_object() else {
        return Err(ApplyError::Patch(PatchError::InvalidPatch {
            path: String::new(),
            reason: "an applied configuration must be an object".into(),
        }));
    };
    let mut applied_clean = applied_obj.clone();
    if let Some(m) = applied_clean
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
    {
        m.remove("managedFields");
        m.remove("resourceVersion");
    }
    let mine = FieldSet::of_object(&applied_clean, schema);
    let mine_entry = |fields: FieldSet| Entry {
        manager: manager.to_string(),
        operation: "Apply".into(),
        raw: {
            let mut m = Map::new();
            m.insert("manager".into(), json!(manager));
            m.insert("operation".into(), json!("Apply"));
            m.insert("apiVersion".into(), json!(api_version));
            m.insert("time".into(), json!(now));
            m
        },
        fields,
    };

    let Some(live) = live else {
        let mut created = Value::Object(applied_clean);
        set_managed(&mut created, &[mine_entry(mine)]);
        return Ok(created);
    };

    let mut managers = entries(live);
    let previous = managers
        .iter()
        .position(|e| e.manager == manager && e.operation == "Apply")
        .map(|i| managers.remove(i).fields)
        .unwrap_or_default();

    // Conflicts: another manager owns a field we set, and the values differ.
    let applied_value = Value::Object(applied_clean.clone());
    let mut conflicts = Vec::new();
    for path in mine.paths() {
        let ours = fieldset::value_at(&applied_value, &path, schema);
        let theirs = fieldset::value_at(live, &path, schema);
        if ours == theirs {
            continue;
        }
        for other in managers.iter_mut() {
            if other.fields.contains(&path) {
                if force {
                    other.fields.remove(&path);
                } else {
                    conflicts.push(other.conflict(fieldset::display(&path)));
                }
            }
        }
    }
    if !conflicts.is_empty() {
        conflicts.sort_by_key(|c| (c.printed_manager(), c.field.clone()));
        return Err(ApplyError::Conflicts(conflicts));
    }

    // Merge, then drop what we applied before and no longer apply (unless someone else
    // owns it).
    let mut merged = patch::strategic_merge(kind, live, &applied_value)?;
    for path in previous.paths() {
        if mine.contains(&path) || managers.iter().any(|m| m.fields.contains(&path)) {
            continue;
        }
        fieldset::remove_at(&mut merged, &path, schema);
    }
    managers.retain(|e| !e.fields.is_empty());
    managers.push(mine_entry(mine));
    set_managed(&mut merged, &managers);
    Ok(merged)
}

fn set_managed(obj: &mut Value, entries: &[Entry]) {
    if let Some(o) = obj.as_object_mut() {
        set_managed_map(o, entries);
    }
}

/// Write the entries in upstream's order (`sortEncodedManagedFields`: operation, time,
/// manager, apiVersion, subresource); no entries drops the field.
fn set_managed_map(o: &mut Map<String, Value>, entries: &[Entry]) {
    let mut sorted: Vec<&Entry> = entries.iter().filter(|e| !e.fields.is_empty()).collect();
    let key = |e: &Entry| {
        (
            e.operation.clone(),
            e.str_field("time").unwrap_or("").to_string(),
            e.manager.clone(),
            e.str_field("apiVersion").unwrap_or("").to_string(),
            e.str_field("subresource").unwrap_or("").to_string(),
        )
    };
    sorted.sort_by_key(|e| key(e));
    let list: Vec<Value> = sorted.into_iter().map(entry_json).collect();
    let meta = o.entry("metadata").or_insert_with(|| json!({}));
    if let Some(m) = meta.as_object_mut() {
        if list.is_empty() {
            m.remove("managedFields");
        } else {
            m.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Record a non-apply write (create, update, patch, a subresource write) for `manager`, as
/// upstream's field manager does for `Update` operations: the fields the write added or
/// changed (on create, every field set) join `manager`'s `Update` entry (one per apiVersion
/// and subresource) and leave every other manager's set; fields the write removed leave
/// every set; entries left empty are dropped.
///
/// `old` is the stored object (`None` on create) and `new` the object about to be stored,
/// both of `kind` (e.g. `apps/Deployment`). A `managedFields` value the client sent in `new`
/// is taken as the starting point when it is a valid, non-empty list and the write is to the
/// main resource (so `[{}]` resets the field); otherwise the stored value is kept. With
/// `subresource` `Some("status")` only status is compared, and the entry records the
/// subresource.
pub fn track_update(
    kind: &str,
    old: Option<&Map<String, Value>>,
    new: &mut Map<String, Value>,
    manager: &str,
    api_version: &str,
    now: &str,
    subresource: Option<&str>,
) {
    let schema: &'static Schema = patch::schema_for_kind(kind).unwrap_or(&Schema::Any);
    let stored = old
        .and_then(|o| o.get("metadata"))
        .and_then(|m| m.get("managedFields"))
        .cloned();
    let given = new
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .and_then(|m| m.remove("managedFields"));
    let from_client = given
        .as_ref()
        .filter(|_| subresource.is_none())
        .and_then(client_entries)
        .filter(|e| !e.is_empty());
    if old.is_none() && from_client.is_none() && subresource.is_none() {
        // A create: every field set is this manager's, in its one entry (what the general
        // path below computes with no stored entries, without building the tree).
        if let Some(fields) = fieldset::created_fields_json(new, schema)
            && let Some(meta) = new
                .entry("metadata")
                .or_insert_with(|| json!({}))
                .as_object_mut()
        {
            let mut entry = Map::new();
            entry.insert("manager".into(), json!(manager));
            entry.insert("operation".into(), json!("Update"));
            entry.insert("apiVersion".into(), json!(api_version));
            entry.insert("time".into(), json!(now));
            entry.insert("fieldsV1".into(), fields);
            entry.insert("fieldsType".into(), json!("FieldsV1"));
            meta.insert(
                "managedFields".into(),
                Value::Array(vec![Value::Object(entry)]),
            );
        }
        return;
    }
    let comparison = fieldset::compare(old, new, schema, subresource == Some("status"));
    let mut managers = match from_client {
        Some(list) => list,
        None => {
            if comparison.is_empty() {
                // Nothing changed: the stored value stays as it is.
                if let (Some(v), Some(m)) = (
                    stored,
                    new.get_mut("metadata").and_then(Value::as_object_mut),
                ) {
                    m.insert("managedFields".into(), v);
                }
                return;
            }
            stored
                .as_ref()
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(entry_of).collect())
                .unwrap_or_default()
        }
    };
    let mine = managers
        .iter()
        .position(|e| e.is(manager, "Update", api_version, subresource))
        .map(|i| managers.remove(i));
    for other in managers.iter_mut() {
        other.fields.difference(&comparison.removed);
        other.fields.difference(&comparison.changed);
    }
    // The entry's time moves only when this write gave it fields (upstream's
    // managedFieldsUpdater); a write that only removed fields keeps the old time.
    let touched = !comparison.changed.is_empty();
    let (mut raw, mut fields) = match mine {
        Some(e) => (e.raw, e.fields),
        None => (Map::new(), FieldSet::default()),
    };
    fields.difference(&comparison.removed);
    fields.union(&comparison.changed);
    if !fields.is_empty() {
        raw.insert("manager".into(), json!(manager));
        raw.insert("operation".into(), json!("Update"));
        raw.insert("apiVersion".into(), json!(api_version));
        if touched || !raw.contains_key("time") {
            raw.insert("time".into(), json!(now));
        }
        match subresource.filter(|s| !s.is_empty()) {
            Some(sub) => raw.insert("subresource".into(), json!(sub)),
            None => raw.remove("subresource"),
        };
        managers.push(Entry {
            manager: manager.to_string(),
            operation: "Update".into(),
            raw,
            fields,
        });
    }
    set_managed_map(new, &managers);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy(replicas: i64, image: &str) -> Value {
        json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d","labels":{"a":"1"}},
               "spec":{"replicas":replicas,"template":{"spec":{"containers":[{"name":"web","image":image}]}}}})
    }

    fn managers(v: &Value) -> Vec<String> {
        entries(v).into_iter().map(|e| e.manager).collect()
    }

    #[test]
    fn create_records_the_manager() {
        let r = apply(
            "apps/Deployment",
            None,
            &deploy(1, "i:1"),
            "alice",
            "apps/v1",
            "t",
            false,
        );
        let Ok(v) = r else { panic!("{r:?}") };
        assert_eq!(managers(&v), vec!["alice"]);
        let f = &v["metadata"]["managedFields"][0]["fieldsV1"];
        assert!(
            f["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"]["f:image"]
                .is_object()
        );
        assert!(f["f:spec"]["f:replicas"].is_object());
        assert!(f.get("f:apiVersion").is_none());
    }

    #[test]
    fn conflicts_unless_forced() {
        let Ok(live) = apply(
            "apps/Deployment",
            None,
            &deploy(1, "i:1"),
            "alice",
            "apps/v1",
            "t",
            false,
        ) else {
            panic!()
        };
        // Same values: no conflict, shared ownership.
        assert!(
            apply(
                "apps/Deployment",
                Some(&live),
                &deploy(1, "i:1"),
                "bob",
                "apps/v1",
                "t",
                false
            )
            .is_ok()
        );
        match apply(
            "apps/Deployment",
            Some(&live),
            &deploy(3, "i:1"),
            "bob",
            "apps/v1",
            "t",
            false,
        ) {
            Err(ApplyError::Conflicts(c)) => assert_eq!(
                c,
                vec![Conflict {
                    manager: "alice".into(),
                    field: ".spec.replicas".into(),
                    update_api_version: None,
                    subresource: None,
                }]
            ),
            other => panic!("{other:?}"),
        }
        let Ok(forced) = apply(
            "apps/Deployment",
            Some(&live),
            &deploy(3, "i:1"),
            "bob",
            "apps/v1",
            "t",
            true,
        ) else {
            panic!()
        };
        assert_eq!(forced["spec"]["replicas"], json!(3));
        // alice lost .spec.replicas but keeps the rest.
        let alice = entries(&forced).into_iter().find(|e| e.manager == "alice");
        assert!(alice.is_some_and(|a| {
            !a.fields
                .contains(&[Step::Field("spec".into()), Step::Field("replicas".into())])
        }));
    }

    #[test]
    fn fields_dropped_from_the_config_are_removed() {
        let Ok(live) = apply(
            "apps/Deployment",
            None,
            &deploy(1, "i:1"),
            "alice",
            "apps/v1",
            "t",
            false,
        ) else {
            panic!()
        };
        let mut smaller = deploy(1, "i:1");
        if let Some(m) = smaller["metadata"].as_object_mut() {
            m.remove("labels");
        }
        let Ok(v) = apply(
            "apps/Deployment",
            Some(&live),
            &smaller,
            "alice",
            "apps/v1",
            "t",
            false,
        ) else {
            panic!()
        };
        assert!(
            v["metadata"]
                .get("labels")
                .is_none_or(|l| l.get("a").is_none()),
            "{v}"
        );
        // Containers merge by name.
        let Ok(v2) = apply(
            "apps/Deployment",
            Some(&v),
            &deploy(1, "i:2"),
            "alice",
            "apps/v1",
            "t",
            false,
        ) else {
            panic!()
        };
        assert_eq!(
            v2["spec"]["template"]["spec"]["containers"][0]["image"],
            json!("i:2")
        );
        assert_eq!(
            v2["spec"]["template"]["spec"]["containers"]
                .as_array()
                .map(Vec::len),
            Some(1)
        );
    }

    #[test]
    fn fields_v1_round_trips() {
        let Ok(v) = apply(
            "apps/Deployment",
            None,
            &deploy(1, "i:1"),
            "a",
            "apps/v1",
            "t",
            false,
        ) else {
            panic!()
        };
        let f = &v["metadata"]["managedFields"][0]["fieldsV1"];
        assert_eq!(&FieldSet::from_json(f).to_json(), f);
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn entry<'a>(v: &'a Map<String, Value>, manager: &str) -> Option<&'a Value> {
        v.get("metadata")?
            .get("managedFields")?
            .as_array()?
            .iter()
            .find(|e| e["manager"] == json!(manager))
    }

    #[test]
    fn create_records_an_update_entry() {
        let mut d = obj(deploy(1, "i:1"));
        track_update(
            "apps/Deployment",
            None,
            &mut d,
            "kubectl-create",
            "apps/v1",
            "2024-01-01T00:00:00Z",
            None,
        );
        let Some(e) = entry(&d, "kubectl-create") else {
            panic!("{d:?}")
        };
        assert_eq!(e["operation"], json!("Update"));
        assert_eq!(e["apiVersion"], json!("apps/v1"));
        assert_eq!(e["fieldsType"], json!("FieldsV1"));
        assert_eq!(e["time"], json!("2024-01-01T00:00:00Z"));
        assert!(e.get("subresource").is_none());
        let f = &e["fieldsV1"];
        assert!(f["f:spec"]["f:replicas"].is_object());
        assert!(f["f:metadata"]["f:labels"]["f:a"].is_object());
        assert!(
            f["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"]["f:image"]
                .is_object()
        );
        assert!(f["f:metadata"].get("f:name").is_none());
    }

    #[test]
    fn update_moves_ownership_to_the_last_writer() {
        let mut live = obj(deploy(1, "i:1"));
        track_update(
            "apps/Deployment",
            None,
            &mut live,
            "alice",
            "apps/v1",
            "t1",
            None,
        );
        // bob changes replicas and drops the label.
        let mut new = live.clone();
        new.insert("spec".into(), deploy(2, "i:1")["spec"].clone());
        if let Some(m) = new.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("labels");
        }
        track_update(
            "apps/Deployment",
            Some(&live),
            &mut new,
            "bob",
            "apps/v1",
            "t2",
            None,
        );
        let (Some(a), Some(b)) = (entry(&new, "alice"), entry(&new, "bob")) else {
            panic!("{new:?}")
        };
        assert!(a["fieldsV1"]["f:spec"].get("f:replicas").is_none(), "{a}");
        assert!(a["fieldsV1"].get("f:metadata").is_none(), "{a}");
        assert!(a["fieldsV1"]["f:spec"]["f:template"].is_object(), "{a}");
        assert_eq!(a["time"], json!("t1"));
        assert_eq!(b["fieldsV1"], json!({"f:spec":{"f:replicas":{}}}));
        assert_eq!(b["time"], json!("t2"));
        // An unchanged write records nothing.
        let mut same = new.clone();
        track_update(
            "apps/Deployment",
            Some(&new),
            &mut same,
            "carol",
            "apps/v1",
            "t3",
            None,
        );
        assert_eq!(same, new);
        // A later write by alice takes replicas back, merging into her entry; bob's entry,
        // now empty, is dropped.
        let mut again = new.clone();
        again.insert("spec".into(), deploy(5, "i:1")["spec"].clone());
        track_update(
            "apps/Deployment",
            Some(&new),
            &mut again,
            "alice",
            "apps/v1",
            "t4",
            None,
        );
        assert!(entry(&again, "bob").is_none(), "{again:?}");
        let Some(a) = entry(&again, "alice") else {
            panic!()
        };
        assert!(a["fieldsV1"]["f:spec"]["f:replicas"].is_object());
        assert!(a["fieldsV1"]["f:spec"]["f:template"].is_object());
        assert_eq!(a["time"], json!("t4"));
    }

    #[test]
    fn apply_after_a_client_side_update_conflicts_unless_forced() {
        let mut live = obj(deploy(1, "i:1"));
        track_update(
            "apps/Deployment",
            None,
            &mut live,
            "kubectl-client-side-apply",
            "apps/v1",
            "t",
            None,
        );
        let live = Value::Object(live);
        let r = apply(
            "apps/Deployment",
            Some(&live),
            &deploy(3, "i:1"),
            "kubectl",
            "apps/v1",
            "t",
            false,
        );
        let Err(ApplyError::Conflicts(c)) = r else {
            panic!("{r:?}")
        };
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].field, ".spec.replicas");
        assert_eq!(
            c[0].printed_manager(),
            "\"kubectl-client-side-apply\" using apps/v1"
        );
        // Same values: shared, no conflict.
        assert!(
            apply(
                "apps/Deployment",
                Some(&live),
                &deploy(1, "i:1"),
                "kubectl",
                "apps/v1",
                "t",
                false
            )
            .is_ok()
        );
        let r = apply(
            "apps/Deployment",
            Some(&live),
            &deploy(3, "i:1"),
            "kubectl",
            "apps/v1",
            "t",
            true,
        );
        let Ok(forced) = r else { panic!("{r:?}") };
        assert_eq!(forced["spec"]["replicas"], json!(3));
        let csa = entries(&forced)
            .into_iter()
            .find(|e| e.manager == "kubectl-client-side-apply");
        assert!(csa.is_some_and(|e| {
            e.operation == "Update"
                && !e
                    .fields
                    .contains(&[Step::Field("spec".into()), Step::Field("replicas".into())])
        }));
        // Apply entries sort before Update ones, as upstream.
        assert_eq!(
            managers(&forced),
            vec!["kubectl", "kubectl-client-side-apply"]
        );
    }

    #[test]
    fn status_writes_are_recorded_separately() {
        let mut live = obj(
            json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},
            "spec":{"containers":[{"name":"c","image":"i"}]},"status":{"phase":"Pending"}}),
        );
        track_update(
            "core/Pod",
            None,
            &mut live,
            "kubectl-create",
            "v1",
            "t1",
            None,
        );
        let main_entry = entry(&live, "kubectl-create").cloned();
        assert!(
            main_entry
                .as_ref()
                .is_some_and(|e| e["fieldsV1"].get("f:status").is_none())
        );
        let mut new = live.clone();
        new.insert(
            "status".into(),
            json!({"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}),
        );
        track_update(
            "core/Pod",
            Some(&live),
            &mut new,
            "kubelet",
            "v1",
            "t2",
            Some("status"),
        );
        let Some(k) = entry(&new, "kubelet") else {
            panic!("{new:?}")
        };
        assert_eq!(k["subresource"], json!("status"));
        assert_eq!(k["operation"], json!("Update"));
        assert!(k["fieldsV1"]["f:status"]["f:phase"].is_object(), "{k}");
        assert!(k["fieldsV1"].get("f:spec").is_none(), "{k}");
        // The main entry is untouched.
        assert_eq!(entry(&new, "kubectl-create").cloned(), main_entry);
        // The same manager writing the main resource gets a separate entry.
        let mut main = new.clone();
        if let Some(m) = main.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("labels".into(), json!({"x":"1"}));
        }
        track_update(
            "core/Pod",
            Some(&new),
            &mut main,
            "kubelet",
            "v1",
            "t3",
            None,
        );
        let n = main["metadata"]["managedFields"].as_array().map_or(0, |a| {
            a.iter()
                .filter(|e| e["manager"] == json!("kubelet"))
                .count()
        });
        assert_eq!(n, 2, "{main:?}");
    }

    #[test]
    fn clients_cannot_forge_managed_fields() {
        let mut live = obj(deploy(1, "i:1"));
        track_update(
            "apps/Deployment",
            None,
            &mut live,
            "alice",
            "apps/v1",
            "t1",
            None,
        );
        let stored = live["metadata"]["managedFields"].clone();
        // Invalid: kept as stored.
        let mut bad = live.clone();
        if let Some(m) = bad.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert(
                "managedFields".into(),
                json!([{"manager":"x","operation":"Bogus","fieldsV1":{"f:spec":{}}}]),
            );
        }
        track_update(
            "apps/Deployment",
            Some(&live),
            &mut bad,
            "bob",
            "apps/v1",
            "t2",
            None,
        );
        assert_eq!(bad["metadata"]["managedFields"], stored);
        // An empty list is ignored (clients unaware of the field keep it).
        let mut empty = live.clone();
        if let Some(m) = empty.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("managedFields".into(), json!([]));
        }
        track_update(
            "apps/Deployment",
            Some(&live),
            &mut empty,
            "bob",
            "apps/v1",
            "t2",
            None,
        );
        assert_eq!(empty["metadata"]["managedFields"], stored);
        // `[{}]` resets it.
        let mut reset = live.clone();
        if let Some(m) = reset.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("managedFields".into(), json!([{}]));
        }
        track_update(
            "apps/Deployment",
            Some(&live),
            &mut reset,
            "bob",
            "apps/v1",
            "t2",
            None,
        );
        assert!(
            reset["metadata"].get("managedFields").is_none(),
            "{reset:?}"
        );
    }
}
