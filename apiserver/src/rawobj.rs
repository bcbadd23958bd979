//! Stored objects as bytes. The registry stores every object as serde_json's compact
//! serialization of a map with sorted keys (`registry::encode`), without
//! `metadata.resourceVersion`. The JSON a GET answers for an object that needs no conversion is
//! those same bytes with `"resourceVersion":"<mod revision>"` at its sorted place in
//! `metadata`, so a LIST can answer with the stored bytes spliced, without parsing each object
//! into a `Value` and serializing it again.
//!
//! The scan reads only what it needs (the top-level keys up to `metadata`, and `metadata`'s
//! keys) and gives up (`None`, the caller takes the slow path) on anything that is not in that
//! canonical form: whitespace, escaped keys, keys out of order (up to where `resourceVersion`
//! goes), a `resourceVersion` already present.

use bytes::Bytes;

/// Where the parts of a stored object are, as byte ranges of its stored JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The raw JSON of `apiVersion` and `kind` (with quotes), when present.
    pub api_version: Option<(usize, usize)>,
    pub kind: Option<(usize, usize)>,
    /// The raw JSON of `metadata.labels`, when present.
    pub labels: Option<(usize, usize)>,
    /// Where `"resourceVersion":…` goes in `metadata`, and whether a comma comes before it
    /// (it goes last in a non-empty `metadata`) or after it (another key follows).
    pub rv_at: usize,
    pub rv_comma: Comma,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comma {
    /// `metadata` is otherwise empty.
    None,
    Before,
    After,
}

/// Scan stored object bytes (see the module docs). `None`: not in canonical form.
pub fn scan(b: &[u8]) -> Option<Layout> {
    let mut s = Scanner { b, i: 0 };
    s.expect(b'{')?;
    let (mut api_version, mut kind) = (None, None);
    let mut prev: &[u8] = b"";
    if s.peek()? == b'}' {
        return None;
    }
    loop {
        let key = s.key()?;
        if key <= prev {
            return None;
        }
        prev = key;
        let start = s.i;
        match key {
            b"metadata" => {
                let (labels, rv_at, rv_comma) = s.metadata()?;
                return Some(Layout {
                    api_version,
                    kind,
                    labels,
                    rv_at,
                    rv_comma,
                });
            }
            b"apiVersion" | b"kind" => {
                if s.peek()? != b'"' {
                    return None;
                }
                s.value()?;
                if key == b"kind" {
                    kind = Some((start, s.i));
                } else {
                    api_version = Some((start, s.i));
                }
            }
            _ => s.value()?,
        }
        // `metadata` not reached yet: another key must follow.
        s.expect(b',')?;
    }
}

/// The raw JSON of `metadata.labels` of stored object bytes: `Some(None)` when it has no
/// labels, `None` when the bytes are not in canonical form.
pub fn labels(b: &[u8]) -> Option<Option<&[u8]>> {
    let layout = scan(b)?;
    Some(layout.labels.map(|(s, e)| &b[s..e]))
}

/// `value` as served with `resourceVersion` = `rv`, as pieces to write in order (no copy of
/// the stored bytes), when `value` is canonical and its `apiVersion` and `kind` are
/// `api_version` and `kind` (JSON strings, with quotes).
pub fn served(value: &Bytes, rv: i64, api_version: &[u8], kind: &[u8]) -> Option<[Bytes; 3]> {
    let layout = scan(value)?;
    let raw = |r: Option<(usize, usize)>| r.map(|(s, e)| &value[s..e]);
    if raw(layout.api_version) != Some(api_version) || raw(layout.kind) != Some(kind) {
        return None;
    }
    let insert = match layout.rv_comma {
        Comma::None => format!("\"resourceVersion\":\"{rv}\""),
        Comma::Before => format!(",\"resourceVersion\":\"{rv}\""),
        Comma::After => format!("\"resourceVersion\":\"{rv}\","),
    };
    Some([
        value.slice(..layout.rv_at),
        Bytes::from(insert),
        value.slice(layout.rv_at..),
    ])
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// A key without escapes and its colon; the key's bytes (without quotes).
    fn key(&mut self) -> Option<&'a [u8]> {
        self.expect(b'"')?;
        let start = self.i;
        let len = memchr::memchr2(b'"', b'\\', &self.b[start..])?;
        if self.b[start + len] != b'"' {
            return None;
        }
        self.i = start + len + 1;
        self.expect(b':')?;
        Some(&self.b[start..start + len])
    }

    /// Skip a string (at its opening quote).
    fn string(&mut self) -> Option<()> {
        self.expect(b'"')?;
        loop {
            let at = self.i + memchr::memchr2(b'"', b'\\', &self.b[self.i..])?;
            if self.b[at] == b'"' {
                self.i = at + 1;
                return Some(());
            }
            // An escape: skip the backslash and the escaped byte.
            self.i = at + 2;
        }
    }

    /// Skip one value, of any type.
    fn value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string(),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.i += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.i += 1;
                }
            }
            _ => {
                // A number, true, false or null: up to the next delimiter.
                let len = self.b[self.i..]
                    .iter()
                    .position(|c| matches!(c, b',' | b'}' | b']'))?;
                if len == 0 {
                    return None;
                }
                self.i += len;
                Some(())
            }
        }
    }

    /// `metadata`'s labels and where `resourceVersion` goes.
    #[allow(clippy::type_complexity)]
    fn metadata(&mut self) -> Option<(Option<(usize, usize)>, usize, Comma)> {
        self.expect(b'{')?;
        if self.peek()? == b'}' {
            return Some((None, self.i, Comma::None));
        }
        let mut labels = None;
        let mut prev: &[u8] = b"";
        loop {
            let key_at = self.i;
            let key = self.key()?;
            if key <= prev {
                return None;
            }
            prev = key;
            match key.cmp(b"resourceVersion".as_slice()) {
                std::cmp::Ordering::Equal => return None,
                std::cmp::Ordering::Greater => {
                    // Labels sort before resourceVersion, so they are known by now.
                    return Some((labels, key_at, Comma::After));
                }
                std::cmp::Ordering::Less => {}
            }
            let start = self.i;
            self.value()?;
            if key == b"labels" {
                labels = Some((start, self.i));
            }
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => return Some((labels, self.i, Comma::Before)),
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// What GET answers: parse, set the resourceVersion, serialize.
    fn slow(stored: &[u8], rv: i64) -> Vec<u8> {
        let mut v: Value = serde_json::from_slice(stored).unwrap();
        v["metadata"]["resourceVersion"] = json!(rv.to_string());
        serde_json::to_vec(&v).unwrap()
    }

    fn fast(stored: &[u8], rv: i64) -> Option<Vec<u8>> {
        let v: Value = serde_json::from_slice(stored).unwrap();
        let av = serde_json::to_vec(&v["apiVersion"]).unwrap();
        let kind = serde_json::to_vec(&v["kind"]).unwrap();
        let parts = served(&Bytes::copy_from_slice(stored), rv, &av, &kind)?;
        Some(parts.concat())
    }

    #[test]
    fn splices_like_a_reserialization() {
        for obj in [
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"uid": "u"}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"a": 1, "z": [1, {"}": "]"}]}}),
            json!({"apiVersion": "v1", "data": {"k\"\\": "v\\\""}, "kind": "ConfigMap",
                   "metadata": {"annotations": {"x": "{[\\\"}"}, "creationTimestamp": null,
                                "labels": {"app": "x"}, "managedFields": [{"a": [1.5, true]}],
                                "name": "n", "namespace": "ns", "uid": "u"},
                   "spec": {"x": "é\u{1}"}}),
        ] {
            let stored = serde_json::to_vec(&obj).unwrap();
            assert_eq!(
                fast(&stored, 42).as_deref(),
                Some(slow(&stored, 42).as_slice()),
                "{obj}"
            );
        }
    }

    #[test]
    fn labels_are_found() {
        let stored = serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"annotations": {"labels": "no"}, "labels": {"a": "b"}, "name": "x"}}))
        .unwrap();
        assert_eq!(labels(&stored), Some(Some(br#"{"a":"b"}"#.as_slice())));
        let stored = br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x"}}"#;
        assert_eq!(labels(stored), Some(None));
    }

    #[test]
    fn gives_up_on_anything_not_canonical() {
        for stored in [
            r#"{"apiVersion": "v1","kind":"Pod","metadata":{}}"#,
            r#"{"kind":"Pod","apiVersion":"v1","metadata":{}}"#,
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"resourceVersion":"1"}}"#,
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"b","labels":{}}}"#,
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"n\u0061me":"b"}}"#,
            r#"{"apiVersion":"v1","kind":"Pod","metadata":[]}"#,
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"x""#,
            r#"{"apiVersion":"v1","kind":"Pod","spec":{}}"#,
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"a":}}"#,
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"a":"#,
            r#"{"apiVersion":1,"kind":"Pod","metadata":{}}"#,
            r#"{}"#,
            r#""#,
            r#"["#,
        ] {
            let b = Bytes::from(stored);
            assert!(served(&b, 1, b"\"v1\"", b"\"Pod\"").is_none(), "{stored}");
        }
        // A served version other than the stored one.
        let b =
            Bytes::from_static(br#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{}}"#);
        assert!(served(&b, 1, b"\"apps/v1beta1\"", b"\"Deployment\"").is_none());
        assert!(served(&b, 1, b"\"apps/v1\"", b"\"Deployment\"").is_some());
    }
}
