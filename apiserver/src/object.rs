//! Helpers on objects as JSON values: metadata access and edits. Objects travel through the
//! server as `serde_json::Value` so one generic code path serves every kind; per-kind logic
//! lives in `registry::strategy`.

use serde_json::{Map, Value};

pub type Object = Map<String, Value>;

/// `metadata` of an object (empty when missing or not an object).
pub fn meta(obj: &Object) -> Option<&Object> {
    obj.get("metadata").and_then(Value::as_object)
}

/// `metadata`, created when missing.
pub fn meta_mut(obj: &mut Object) -> &mut Object {
    let m = obj
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !m.is_object() {
        *m = Value::Object(Map::new());
    }
    match m {
        Value::Object(map) => map,
        // Set to an object just above.
        _ => unreachable_object(),
    }
}

#[allow(clippy::panic)]
fn unreachable_object() -> ! {
    panic!("metadata was just set to an object")
}

pub fn meta_str<'a>(obj: &'a Object, field: &str) -> Option<&'a str> {
    meta(obj).and_then(|m| m.get(field)).and_then(Value::as_str)
}

pub fn name(obj: &Object) -> Option<&str> {
    meta_str(obj, "name").filter(|s| !s.is_empty())
}

pub fn namespace(obj: &Object) -> Option<&str> {
    meta_str(obj, "namespace").filter(|s| !s.is_empty())
}

pub fn uid(obj: &Object) -> &str {
    meta_str(obj, "uid").unwrap_or("")
}

pub fn resource_version(obj: &Object) -> Option<&str> {
    meta_str(obj, "resourceVersion").filter(|s| !s.is_empty())
}

pub fn set_meta(obj: &mut Object, field: &str, value: Value) {
    meta_mut(obj).insert(field.to_string(), value);
}

pub fn remove_meta(obj: &mut Object, field: &str) -> Option<Value> {
    meta_mut(obj).remove(field)
}

pub fn set_resource_version(obj: &mut Object, rv: i64) {
    set_meta(obj, "resourceVersion", Value::String(rv.to_string()));
}

/// `metadata.labels` as string pairs (non-string values are ignored).
pub fn labels(obj: &Object) -> impl Iterator<Item = (&str, &str)> {
    meta(obj)
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|l| {
            l.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.as_str(), v)))
        })
}

pub fn label<'a>(obj: &'a Object, key: &str) -> Option<&'a str> {
    meta(obj)
        .and_then(|m| m.get("labels"))
        .and_then(|l| l.get(key))
        .and_then(Value::as_str)
}

pub fn finalizers(obj: &Object) -> Vec<String> {
    meta(obj)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub fn is_deleting(obj: &Object) -> bool {
    meta(obj).is_some_and(|m| m.get("deletionTimestamp").is_some_and(|v| !v.is_null()))
}

/// The value at a dotted path (`spec.nodeName`, `status.phase`).
pub fn path<'a>(obj: &'a Object, dotted: &str) -> Option<&'a Value> {
    let mut parts = dotted.split('.');
    let first = parts.next()?;
    let mut cur = obj.get(first)?;
    for p in parts {
        cur = cur.as_object()?.get(p)?;
    }
    Some(cur)
}

/// RFC 3339 with seconds precision, as upstream's metav1.Time marshals.
pub fn now_rfc3339() -> String {
    // The text changes once a second: formatted once per second and thread (strftime was
    // about a microsecond per create, which stamps two times).
    thread_local! {
        static LAST: std::cell::RefCell<(i64, String)> =
            const { std::cell::RefCell::new((0, String::new())) };
    }
    let now = jiff::Timestamp::now();
    let secs = now.as_second();
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != secs || last.1.is_empty() {
            *last = (secs, format_time(now));
        }
        last.1.clone()
    })
}

pub fn format_time(t: jiff::Timestamp) -> String {
    // Whole seconds, UTC, `Z` suffix.
    let secs = t.as_second();
    match jiff::Timestamp::from_second(secs) {
        Ok(t) => t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Err(_) => "1970-01-01T00:00:00Z".to_string(),
    }
}

/// A new random UID in upstream's form (RFC 4122 v4, lowercase).
pub fn new_uid() -> String {
    uuid::Builder::from_random_bytes(random_16())
        .into_uuid()
        .to_string()
}

/// 16 random bytes from the OS, read 4 KiB at a time per thread: one `getrandom` call per
/// 256 UIDs instead of one per UID (a create paid a system call for its uid).
fn random_16() -> [u8; 16] {
    const BLOCK: usize = 4096;
    thread_local! {
        static POOL: std::cell::RefCell<(Box<[u8; BLOCK]>, usize)> =
            std::cell::RefCell::new((Box::new([0; BLOCK]), BLOCK));
    }
    POOL.with(|p| {
        let (buf, used) = &mut *p.borrow_mut();
        if *used + 16 > BLOCK {
            if getrandom::fill(&mut buf[..]).is_err() {
                // As uuid's own v4 would (it also reads the OS source).
                return *uuid::Uuid::new_v4().as_bytes();
            }
            *used = 0;
        }
        let mut out = [0u8; 16];
        out.copy_from_slice(&buf[*used..*used + 16]);
        // Never hand out the same bytes twice.
        buf[*used..*used + 16].fill(0);
        *used += 16;
        out
    })
}

/// Five lowercase alphanumerics for `generateName`, from upstream's alphabet (no vowels that
/// spell words, no confusable characters).
pub fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes
        .iter()
        .take(5)
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Object {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn now_is_the_current_second() {
        let before = format_time(jiff::Timestamp::now());
        let now = now_rfc3339();
        let after = format_time(jiff::Timestamp::now());
        assert!(before <= now && now <= after, "{before} {now} {after}");
        assert_eq!(now.len(), "2026-01-02T03:04:05Z".len());
    }

    #[test]
    #[allow(clippy::expect_used)]
    fn uids_are_distinct_random_v4_across_pool_refills() {
        let mut seen = std::collections::HashSet::new();
        // 4 KiB pools hold 256 UIDs: cross several refills.
        for _ in 0..1000 {
            let uid = new_uid();
            let parsed = uuid::Uuid::parse_str(&uid).expect("a uuid");
            assert_eq!(parsed.get_version_num(), 4, "{uid}");
            assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122, "{uid}");
            assert_eq!(uid, parsed.hyphenated().to_string());
            assert!(seen.insert(uid), "a uid repeated");
        }
    }

    #[test]
    fn metadata_access() {
        let mut o = obj(json!({"metadata":{"name":"a","labels":{"x":"1","n":2}}}));
        assert_eq!(name(&o), Some("a"));
        assert_eq!(labels(&o).collect::<Vec<_>>(), vec![("x", "1")]);
        set_resource_version(&mut o, 7);
        assert_eq!(resource_version(&o), Some("7"));
        let mut bad = obj(json!({"metadata": 3}));
        set_meta(&mut bad, "name", json!("b"));
        assert_eq!(name(&bad), Some("b"));
    }

    #[test]
    fn dotted_paths() {
        let o = obj(json!({"spec":{"nodeName":"n1"},"status":{"phase":"Running"}}));
        assert_eq!(path(&o, "spec.nodeName"), Some(&json!("n1")));
        assert_eq!(path(&o, "status.missing"), None);
    }

    #[test]
    fn suffixes_are_five_safe_chars() {
        let s = random_suffix();
        assert_eq!(s.len(), 5);
        assert!(
            s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
    }

    #[test]
    fn times_are_whole_seconds() {
        let t = jiff::Timestamp::from_second(1_700_000_000).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        assert_eq!(format_time(t), "2023-11-14T22:13:20Z");
    }
}
