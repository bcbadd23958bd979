//! OpenAPI documents generated from [`crate::resources`] and k8s-openapi's `schemars` schemas:
//!
//! * `/openapi/v3` — the index: every served group-version with a `serverRelativeURL` carrying
//!   a content hash (`?hash=<uppercase hex>`), as upstream;
//! * `/openapi/v3/api/v1`, `/openapi/v3/apis/{group}/{version}` — OpenAPI 3.0 documents with
//!   upstream-style paths (PATCH operations with `x-kubernetes-group-version-kind` and a
//!   `fieldValidation` parameter, which `kubectl create/apply -f` require) and full
//!   `components.schemas` (what `kubectl explain` walks);
//! * `/openapi/v2` — the same, converted to Swagger 2.0: JSON, or gnostic's protobuf
//!   `Document` when the client asks for `application/com.github.proto-openapi.spec.v2…`
//!   (kubectl ≤ 1.28 reads only that, for `create/apply -f` validation, client-side apply's
//!   strategic merge metadata and `explain`); see [`v2_response`].
//!
//! Documents are built (and the protobuf encoded) once, on first use, and handed out as cheap
//! [`Rendered`] clones.
//! Older versions served by conversion (apps/v1beta1, apps/v1beta2, extensions/v1beta1
//! Deployments) reuse the apps/v1 schema under their own GVK, see [`schemas::build`].

mod gnostic;
mod params;
mod paths;
mod schemas;
mod v2;
mod v2proto;

use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::discovery::{GIT_VERSION, JSON, Rendered};
use crate::error::ApiError;
use crate::resources;

use schemas::Catalogue;

static CATALOGUE: LazyLock<Catalogue> = LazyLock::new(schemas::build);

struct V3 {
    index: Rendered,
    /// The index's entity tag (quoted hash of its bytes).
    index_etag: String,
    /// `api/v1`, `apis/apps/v1` → (document, hash).
    docs: BTreeMap<String, (Rendered, String)>,
}

static V3_DOCS: LazyLock<V3> = LazyLock::new(|| build_v3(&CATALOGUE));

/// `/openapi/v2` as JSON, and its entity tag (a hash of the JSON, shared by both encodings as
/// upstream does).
struct V2 {
    json: Rendered,
    etag: String,
}

static V2_JSON: LazyLock<V2> = LazyLock::new(|| {
    let json = Rendered::json(JSON, &v2::build(&CATALOGUE, &v3_values(&CATALOGUE)));
    let etag = format!("\"{}\"", hash_hex(&json.body));
    V2 { json, etag }
});

/// `/openapi/v2` as gnostic's protobuf `Document`, encoded from the JSON on first use.
static V2_PROTO: LazyLock<Rendered> = LazyLock::new(|| Rendered {
    content_type: V2_PROTOBUF,
    body: Bytes::from(v2proto::encode(&V2_JSON.json.to_value())),
});

/// The protobuf media type upstream answers with (and accepts).
pub const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";
/// The older spelling kubectl and client-go ask for; accepted, answered as [`V2_PROTOBUF`].
const V2_PROTOBUF_DEPRECATED_SUBTYPE: &str = "com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// `GET /openapi/v3`.
pub fn v3_index() -> Rendered {
    V3_DOCS.index.clone()
}

/// `GET /openapi/v3/{gv_path}` where `gv_path` is `api/v1` or `apis/{group}/{version}` (a
/// leading `/` is ignored, the `?hash=` query is not part of it). `None` for unserved paths.
pub fn v3_document(gv_path: &str) -> Option<Rendered> {
    let key = gv_path.trim_start_matches('/');
    V3_DOCS.docs.get(key).map(|(doc, _)| doc.clone())
}

/// The hash in the index for `gv_path`: when a request's `?hash=` equals it the response may
/// be cached forever (upstream sends `Cache-Control: public, immutable`).
pub fn v3_hash(gv_path: &str) -> Option<&'static str> {
    let key = gv_path.trim_start_matches('/');
    V3_DOCS.docs.get(key).map(|(_, hash)| hash.as_str())
}

/// `GET /openapi/v2` as Swagger 2.0 JSON.
pub fn v2() -> Rendered {
    V2_JSON.json.clone()
}

/// `GET /openapi/v2` as gnostic's OpenAPI v2 protobuf `Document`.
pub fn v2_protobuf() -> Rendered {
    V2_PROTO.clone()
}

/// The two encodings of `/openapi/v2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum V2Format {
    Json,
    Protobuf,
}

/// Upstream's content negotiation for `/openapi/v2`: the Accept clauses, best first (by `q`,
/// then concrete types before wildcards), are tried in turn against JSON and the two protobuf
/// spellings; the first match wins. No Accept header means `*/*` (JSON). `None`: nothing
/// acceptable (406). Clauses with `q=0` are refusals and skipped.
pub fn v2_negotiate(accept: &str) -> Option<V2Format> {
    negotiate(
        accept,
        &[
            ("json", V2Format::Json),
            (V2_PROTOBUF_DEPRECATED_SUBTYPE, V2Format::Protobuf),
            (&V2_PROTOBUF["application/".len()..], V2Format::Protobuf),
        ],
    )
}

/// The first of `offered` (`application/<subtype>`, in server preference order) that the best
/// acceptable Accept clause allows; see [`v2_negotiate`].
fn negotiate<T: Copy>(accept: &str, offered: &[(&str, T)]) -> Option<T> {
    let accept = if accept.trim().is_empty() {
        "*/*"
    } else {
        accept
    };
    let mut clauses: Vec<(f32, String, String)> = Vec::new();
    for clause in accept.split(',') {
        let mut parts = clause.split(';');
        let range = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let (ty, sub) = match range.split_once('/') {
            Some((t, s)) if !s.contains('/') => (t.trim().to_string(), s.trim().to_string()),
            None if range == "*" => ("*".to_string(), "*".to_string()),
            _ => continue,
        };
        let q = parts
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim() == "q")
            .map_or(1.0, |(_, v)| v.trim().parse::<f32>().unwrap_or(0.0));
        if q > 0.0 {
            clauses.push((q, ty, sub));
        }
    }
    clauses.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then((a.1 == "*").cmp(&(b.1 == "*")))
            .then((a.2 == "*").cmp(&(b.2 == "*")))
    });
    clauses.iter().find_map(|(_, ty, sub)| {
        if ty != "application" && ty != "*" {
            return None;
        }
        offered
            .iter()
            .find(|(s, _)| sub == "*" || sub == s)
            .map(|(_, f)| *f)
    })
}

/// Whether an `If-None-Match` header value names `etag` (weak comparison, or `*`).
fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

/// Whether the request's `If-None-Match` names `etag`.
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| etag_matches(v, etag))
}

fn etag_value(etag: &str) -> HeaderValue {
    HeaderValue::from_str(etag).unwrap_or(HeaderValue::from_static("\"\""))
}

/// The answer to `GET /openapi/v3`: the index with an `ETag` (a hash of its bytes), 304 when
/// `If-None-Match` names it, as upstream's discovery handler.
pub fn v3_index_response(headers: &HeaderMap) -> Response {
    let etag = &V3_DOCS.index_etag;
    if not_modified(headers, etag) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag_value(etag))]).into_response();
    }
    let index = v3_index();
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(index.content_type),
            ),
            (header::ETAG, etag_value(etag)),
        ],
        index.body,
    )
        .into_response()
}

/// The answer to `GET /openapi/v3/{gv_path}` (`hash` is the `?hash=` query value, if any), as
/// upstream: JSON (we do not offer the v3 protobuf encoding: an Accept naming only that is
/// 406), `Vary: Accept`, `ETag` = the document's hash; a `hash` that is not the current one
/// is answered `301 Moved Permanently` to the current URL, the current one makes the answer
/// cacheable forever (`Cache-Control: public, immutable` and `Expires` a year ahead); 304 when
/// `If-None-Match` names the hash. `None`: no such group-version.
pub fn v3_response(gv_path: &str, hash: Option<&str>, headers: &HeaderMap) -> Option<Response> {
    let key = gv_path.trim_start_matches('/');
    let (doc, current) = V3_DOCS.docs.get(key)?;
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let vary = (header::VARY, HeaderValue::from_static("Accept"));
    if negotiate(accept, &[("json", ())]).is_none() {
        let mut response = ApiError::NotAcceptable(format!(
            "only the following media types are accepted: {JSON}"
        ))
        .into_response();
        response.headers_mut().insert(vary.0, vary.1);
        return Some(response);
    }
    let etag = format!("\"{current}\"");
    let mut out = HeaderMap::new();
    out.insert(vary.0, vary.1);
    out.insert(header::ETAG, etag_value(&etag));
    match hash.filter(|h| !h.is_empty()) {
        Some(asked) if asked != current => {
            let location = format!("/openapi/v3/{key}?hash={current}");
            let body = format!("<a href=\"{location}\">Moved Permanently</a>.\n\n");
            if let Ok(location) = HeaderValue::from_str(&location) {
                out.insert(header::LOCATION, location);
            }
            out.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            return Some((StatusCode::MOVED_PERMANENTLY, out, body).into_response());
        }
        Some(_) => {
            out.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, immutable"),
            );
            let year_ahead = jiff::Timestamp::now()
                .checked_add(jiff::SignedDuration::from_hours(365 * 24))
                .unwrap_or(jiff::Timestamp::MAX);
            let expires = jiff::fmt::rfc2822::DateTimePrinter::new()
                .timestamp_to_rfc9110_string(&year_ahead)
                .ok()
                .and_then(|s| HeaderValue::from_str(&s).ok());
            if let Some(expires) = expires {
                out.insert(header::EXPIRES, expires);
            }
        }
        None => {}
    }
    if not_modified(headers, &etag) {
        return Some((StatusCode::NOT_MODIFIED, out).into_response());
    }
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(doc.content_type),
    );
    Some((StatusCode::OK, out, doc.body.clone()).into_response())
}

/// The answer to `GET /openapi/v2`: the negotiated encoding with `ETag` and `Vary: Accept`,
/// 304 Not Modified when `If-None-Match` names the current entity tag (client-go's HTTP cache
/// revalidates this way), 406 with a `Status` when no offered type is acceptable.
pub fn v2_response(headers: &HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(format) = v2_negotiate(accept) else {
        return ApiError::NotAcceptable(format!(
            "only the following media types are accepted: {JSON}, {V2_PROTOBUF}"
        ))
        .into_response();
    };
    let etag = V2_JSON.etag.as_str();
    let vary = (header::VARY, HeaderValue::from_static("accept"));
    let etag_header = (header::ETAG, etag_value(etag));
    if not_modified(headers, etag) {
        return (StatusCode::NOT_MODIFIED, [vary, etag_header]).into_response();
    }
    let doc = match format {
        V2Format::Json => v2(),
        V2Format::Protobuf => v2_protobuf(),
    };
    (
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(doc.content_type),
            ),
            vary,
            etag_header,
        ],
        doc.body,
    )
        .into_response()
}

/// A stable content hash, uppercase hex (upstream uses SHA-512; clients treat it as opaque).
pub(crate) fn hash_hex(bytes: &[u8]) -> String {
    format!("{:032X}", crate::discovery::fnv1a_128(bytes))
}

/// `api/v1` or `apis/{group}/{version}`.
fn gv_key(group: &str, version: &str) -> String {
    paths::url_prefix(group, version)
        .trim_start_matches('/')
        .to_string()
}

fn security_schemes() -> Value {
    json!({
        "BearerToken": {
            "type": "apiKey",
            "description": "Bearer Token authentication",
            "name": "authorization",
            "in": "header",
        }
    })
}

/// The v3 document of one group-version, as a JSON value.
fn gv_document(cat: &Catalogue, group: &str, version: &str) -> Value {
    let paths = paths::gv_paths(cat, group, version);
    let mut roots = Vec::new();
    for p in paths.values() {
        schemas::collect_refs(p, &mut roots);
    }
    for r in resources::in_group_version(group, version) {
        if let Some(n) = cat.name_of(r.group, r.version, r.kind) {
            roots.push(n.to_string());
            roots.push(format!("{n}List"));
        }
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": paths,
        "components": {
            "schemas": cat.closure(roots),
            "securitySchemes": security_schemes(),
        },
        "security": [{"BearerToken": []}],
    })
}

/// Every served group-version's document, keyed like the index.
fn v3_values(cat: &Catalogue) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (group, versions) in resources::groups() {
        for version in versions {
            out.push((gv_key(group, version), gv_document(cat, group, version)));
        }
    }
    out
}

fn build_v3(cat: &Catalogue) -> V3 {
    let mut docs = BTreeMap::new();
    let mut index = Map::new();
    for (key, value) in v3_values(cat) {
        let rendered = Rendered::json(JSON, &value);
        let hash = hash_hex(&rendered.body);
        index.insert(
            key.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={hash}")}),
        );
        docs.insert(key, (rendered, hash));
    }
    let index = Rendered::json(JSON, &json!({"paths": index}));
    let index_etag = format!("\"{}\"", hash_hex(&index.body));
    V3 {
        index,
        index_etag,
        docs,
    }
}

#[cfg(test)]
mod tests;

/// The schema of a served kind (for server-side field validation); `$ref`s inside it resolve
/// with [`schema_by_ref`].
pub fn kind_schema(group: &str, version: &str, kind: &str) -> Option<&'static Value> {
    let catalogue: &'static Catalogue = &CATALOGUE;
    let name = catalogue.name_of(group, version, kind)?;
    catalogue.defs.get(name)
}

/// The schema a `#/components/schemas/<name>` (or `#/definitions/<name>`) reference names.
pub fn schema_by_ref(reference: &str) -> Option<&'static Value> {
    let catalogue: &'static Catalogue = &CATALOGUE;
    let name = reference
        .strip_prefix(schemas::REF_PREFIX)
        .or_else(|| reference.strip_prefix("#/definitions/"))
        .unwrap_or(reference);
    catalogue.defs.get(name)
}
