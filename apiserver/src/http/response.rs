//! Encoding answers: objects and lists in the client's version, as JSON, YAML or a
//! server-side Table when the client asks for one.

use std::convert::Infallible;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use serde_json::{Map, Value, json};

use crate::convert;
use crate::error::ApiError;
use crate::object::Object;
use capstan_store::KeyValue;

use crate::registry::{ListCursor, ObjectList, RawList};
use crate::resources::ResourceDef;
use crate::table::{IncludeObject, ListMeta};

/// What the client accepts, reduced to the choices we make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
    Table,
}

pub fn negotiate(headers: &HeaderMap) -> Format {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if crate::table::wants_table(accept) {
        return Format::Table;
    }
    // The first acceptable media range wins; YAML only when asked before JSON.
    for range in accept.split(',') {
        let media = range.split(';').next().unwrap_or("").trim();
        match media {
            "application/json"
            | "application/*"
            | "*/*"
            | "application/vnd.kubernetes.protobuf" => {
                return Format::Json;
            }
            "application/yaml" => return Format::Yaml,
            _ => {}
        }
    }
    Format::Json
}

impl Format {
    /// Kinds that have no Table form (Scale, Status) answer JSON to a Table request.
    pub fn json_only(self) -> Format {
        if self == Format::Table {
            Format::Json
        } else {
            self
        }
    }
}

/// Serialize `v` as the chosen format with `code` and extra headers (warnings).
pub fn encode(code: StatusCode, format: Format, v: &Value, warnings: &[String]) -> Response {
    let (ct, body) = match format {
        Format::Yaml => match serde_yaml::to_string(v) {
            Ok(s) => ("application/yaml", s.into_bytes()),
            Err(e) => return ApiError::Internal(format!("encoding YAML: {e}")).into_response(),
        },
        _ => match serde_json::to_vec(v) {
            Ok(mut b) => {
                b.push(b'\n');
                ("application/json", b)
            }
            Err(e) => return ApiError::Internal(format!("encoding JSON: {e}")).into_response(),
        },
    };
    let mut resp = (code, [(header::CONTENT_TYPE, ct)], body).into_response();
    add_warnings(&mut resp, warnings);
    resp
}

pub fn add_warnings(resp: &mut Response, warnings: &[String]) {
    for w in warnings {
        let escaped = w.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
            resp.headers_mut().append("Warning", v);
        }
    }
}

/// One object in the client's version.
pub fn object(
    code: StatusCode,
    def: &'static ResourceDef,
    obj: Object,
    format: Format,
    include_object: IncludeObject,
    warnings: &[String],
) -> Response {
    let obj = Value::Object(convert::from_storage(def, obj));
    if format == Format::Table {
        let table =
            crate::table::object_table(def, &obj, jiff::Timestamp::now(), include_object, true);
        return encode(code, Format::Json, &table, warnings);
    }
    encode(code, format, &obj, warnings)
}

/// One object as JSON from its stored bytes, with `resourceVersion` = `rv` spliced in
/// (`rawobj::served`): the same bytes as [`object`] encodes. `None` when the stored form is
/// not the served one (a conversion) or not canonical; the caller then uses [`object`].
pub fn stored_object(
    code: StatusCode,
    def: &'static ResourceDef,
    stored: &Bytes,
    rv: i64,
    warnings: &[String],
) -> Option<Response> {
    let json = |v: &str| serde_json::to_string(v).unwrap_or_default();
    let pieces = crate::rawobj::served(
        stored,
        rv,
        json(&def.api_version()).as_bytes(),
        json(def.kind).as_bytes(),
    )?;
    let mut body = Vec::with_capacity(pieces.iter().map(Bytes::len).sum::<usize>() + 1);
    for p in &pieces {
        body.extend_from_slice(p);
    }
    body.push(b'\n');
    let mut resp = (code, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    add_warnings(&mut resp, warnings);
    Some(resp)
}

fn list_meta_value(rv: i64, cont: Option<&str>) -> Value {
    let mut m = Map::new();
    m.insert("resourceVersion".into(), json!(rv.to_string()));
    if let Some(c) = cont {
        m.insert("continue".into(), json!(c));
    }
    Value::Object(m)
}

/// Size of the pieces a JSON list answer is written in.
const LIST_CHUNK: usize = 256 * 1024;

/// Pieces a streamed list may have written ahead of the client (bounds its memory).
const LIST_CHUNKS_AHEAD: usize = 16;

/// A list in the client's version, from the items as stored. JSON is written in upstream's
/// field order (`kind`, `apiVersion`, `metadata`, `items`) with each item the bytes GET
/// answers for it (see [`item_json`]). Large answers are streamed in [`LIST_CHUNK`] pieces
/// as the client reads, each item's stored value freed once written. YAML and Table decode
/// every item.
pub fn raw_list(
    def: &'static ResourceDef,
    list: RawList,
    format: Format,
    include_object: IncludeObject,
) -> Result<Response, ApiError> {
    if format != Format::Json {
        return Ok(self::list(def, list.decode()?, format, include_object));
    }
    let served = Served::of(def);
    // Every item is made ready before the status is sent, so a bad one is still a clean error.
    let mut items = Vec::with_capacity(list.items.len());
    for kv in list.items {
        items.push(served.item_json(&kv)?);
    }
    let head = served.list_head(
        list.resource_version,
        list.continue_token.as_deref(),
        list.remaining,
    );
    let mut chunks = ListChunks {
        head: Some(Bytes::from(head)),
        items: items.into_iter(),
        first: true,
        done: false,
    };
    let first = chunks.next().unwrap_or_default();
    let body = if chunks.done {
        Body::from(first)
    } else {
        let rest = futures::stream::iter(chunks.map(Ok::<_, Infallible>));
        stream_body(futures::stream::once(async { Ok(first) }).chain(rest))
    };
    Ok(json_response(body))
}

/// An unlimited JSON list answered while it is read: the pages of `cursor` are read and
/// encoded by a task that stays at most [`LIST_CHUNKS_AHEAD`] pieces ahead of the client, so
/// reading the store and writing the answer overlap and memory stays bounded. A failure
/// after the status was sent (a later page's read) cuts the body short, which the client
/// sees as an error.
pub fn stream_list(def: &'static ResourceDef, mut cursor: ListCursor) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(LIST_CHUNKS_AHEAD);
    let served = Served::of(def);
    let head = served.list_head(cursor.resource_version(), None, None);
    tokio::spawn(async move {
        let mut buf = BytesMut::with_capacity(LIST_CHUNK + 64 * 1024);
        buf.extend_from_slice(head.as_bytes());
        let mut first = true;
        loop {
            let page = match cursor.next_page().await {
                Ok(Some(page)) => page,
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    return;
                }
            };
            for kv in page {
                let pieces = match served.item_json(&kv) {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                        return;
                    }
                };
                if !std::mem::take(&mut first) {
                    buf.extend_from_slice(b",");
                }
                for p in &pieces {
                    buf.extend_from_slice(p);
                }
                if buf.len() >= LIST_CHUNK {
                    let full = std::mem::replace(
                        &mut buf,
                        BytesMut::with_capacity(LIST_CHUNK + 64 * 1024),
                    );
                    if tx.send(Ok(full.freeze())).await.is_err() {
                        // The client went away.
                        return;
                    }
                }
            }
        }
        buf.extend_from_slice(b"]}\n");
        let _ = tx.send(Ok(buf.freeze())).await;
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    json_response(stream_body(body))
}

/// A body written from a stream, as every streamed answer (lists, watches) makes its body:
/// fused, since a body may be polled again after its end (tower-http's compression does) and
/// streams such as `unfold` panic then.
pub fn stream_body<S, E>(stream: S) -> Body
where
    S: futures::Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Into<axum::BoxError>,
{
    Body::from_stream(stream.fuse())
}

fn json_response(body: Body) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// The served version's `apiVersion` and `kind` as JSON strings.
struct Served {
    def: &'static ResourceDef,
    api_version: String,
    kind: String,
}

impl Served {
    fn of(def: &'static ResourceDef) -> Self {
        let json = |v: &str| serde_json::to_string(v).unwrap_or_default();
        Served {
            def,
            api_version: json(&def.api_version()),
            kind: json(def.kind),
        }
    }

    /// A JSON list up to its first item, in upstream's field order.
    fn list_head(&self, rv: i64, cont: Option<&str>, remaining: Option<i64>) -> String {
        let json = |v: &str| serde_json::to_string(v).unwrap_or_default();
        let mut head = format!(
            "{{\"kind\":{},\"apiVersion\":{},\"metadata\":{{\"resourceVersion\":\"{rv}\"",
            json(&format!("{}List", self.def.kind)),
            self.api_version,
        );
        if let Some(c) = cont {
            head.push_str(&format!(",\"continue\":{}", json(c)));
        }
        if let Some(n) = remaining {
            head.push_str(&format!(",\"remainingItemCount\":{n}"));
        }
        head.push_str("},\"items\":[");
        head
    }

    /// One item as GET answers it, as pieces to write in order: its stored JSON with the
    /// resourceVersion spliced in (`rawobj::served`), or, for an item that needs converting
    /// to the served version (or is not in canonical form), decoded, converted and encoded.
    fn item_json(&self, kv: &KeyValue) -> Result<[Bytes; 3], ApiError> {
        if let Some(pieces) = crate::rawobj::served(
            &kv.value,
            kv.mod_revision,
            self.api_version.as_bytes(),
            self.kind.as_bytes(),
        ) {
            return Ok(pieces);
        }
        let obj = convert::from_storage(self.def, crate::registry::decode_kv(kv)?);
        let bytes = serde_json::to_vec(&obj)
            .map_err(|e| ApiError::Internal(format!("encoding JSON: {e}")))?;
        Ok([Bytes::from(bytes), Bytes::new(), Bytes::new()])
    }
}

/// The body of a JSON list: the envelope's head, the items (comma-separated), the end.
struct ListChunks {
    head: Option<Bytes>,
    items: std::vec::IntoIter<[Bytes; 3]>,
    first: bool,
    done: bool,
}

impl Iterator for ListChunks {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        let mut buf = BytesMut::with_capacity(LIST_CHUNK + 64 * 1024);
        if let Some(head) = self.head.take() {
            buf.extend_from_slice(&head);
        }
        while buf.len() < LIST_CHUNK {
            let Some(pieces) = self.items.next() else {
                buf.extend_from_slice(b"]}\n");
                self.done = true;
                break;
            };
            if !std::mem::take(&mut self.first) {
                buf.extend_from_slice(b",");
            }
            for p in &pieces {
                buf.extend_from_slice(p);
            }
        }
        Some(buf.freeze())
    }
}

/// A list in the client's version, from decoded items (YAML and Table answers).
pub fn list(
    def: &'static ResourceDef,
    list: ObjectList,
    format: Format,
    include_object: IncludeObject,
) -> Response {
    let meta = list_meta_value(list.resource_version, list.continue_token.as_deref());
    let items: Vec<Value> = list
        .items
        .into_iter()
        .map(|o| Value::Object(convert::from_storage(def, o)))
        .collect();
    if format == Format::Table {
        let table_meta = ListMeta {
            resource_version: list.resource_version.to_string(),
            continue_token: list.continue_token.clone(),
            remaining_item_count: list.remaining,
        };
        let table = crate::table::table(
            def,
            &items,
            &table_meta,
            jiff::Timestamp::now(),
            include_object,
            true,
        );
        return encode(StatusCode::OK, Format::Json, &table, &[]);
    }
    let v = json!({
        "kind": format!("{}List", def.kind),
        "apiVersion": def.api_version(),
        "metadata": meta,
        "items": items,
    });
    encode(StatusCode::OK, format, &v, &[])
}
