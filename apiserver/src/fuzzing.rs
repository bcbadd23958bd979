//! Entry points for fuzzing (`apiserver/fuzz`, `scripts/fuzz.sh`): the request decode and
//! validation path as pure functions, no IO. Any input must give an `Ok` or an `ApiError`;
//! a panic is the bug a fuzzer looks for.

use serde_json::Value;

use crate::error::ApiError;
use crate::http::request::{Target, check_object, decode_body};
use crate::object::Object;
use crate::registry::{Part, strategy};
use crate::resources::{self, RESOURCES, ResourceDef};
use crate::{convert, fieldcheck, patch, ssa, table};

/// Media types the write path accepts (the index of a fuzz input picks one).
pub const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/apply-patch+yaml",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/json-patch+json",
];

fn target(def: &'static ResourceDef) -> Target {
    Target {
        def,
        namespace: def.namespaced.then(|| "default".to_string()),
        name: None,
        subresource: None,
    }
}

fn kind_spec(def: &ResourceDef) -> String {
    let group = if def.group.is_empty() {
        "core"
    } else {
        def.group
    };
    format!("{group}/{}", def.kind)
}

/// What a create does to a body before it reaches the store, and what an update and each
/// patch engine do with the result: decode (JSON or YAML) → check against the URL → schema
/// field check → conversion to the storage version → defaulting and validation for create
/// and update → conversion back and encoding → JSON, merge and strategic merge patch and
/// server-side apply with the body as the patch → the table printer.
///
/// `resource_index` picks the resource (modulo the number served).
pub fn decode_and_validate(
    bytes: &[u8],
    content_type: &str,
    resource_index: usize,
) -> Result<Object, ApiError> {
    let def = &RESOURCES[resource_index % RESOURCES.len()];
    let value = decode_body(bytes, content_type)?;
    let patch_doc = value.clone();
    let mut obj = check_object(&target(def), value)?;
    let report = fieldcheck::check(def, &mut obj);
    if !report.invalid.is_empty() {
        return Err(ApiError::BadRequest(report.invalid.join(", ")));
    }
    let sdef = if def.needs_conversion() {
        def.storage_def()
    } else {
        def
    };
    let mut obj = convert::to_storage(def, obj);

    // create
    strategy::prepare_for_create(sdef, &mut obj);
    strategy::default(sdef, &mut obj);
    let causes = strategy::validate(sdef, &obj, None, Part::Main);
    // update (against itself, and the main part against the status part)
    let mut updated = obj.clone();
    strategy::prepare_for_update(sdef, &mut updated, &obj, Part::Main);
    strategy::default(sdef, &mut updated);
    let _ = strategy::validate(sdef, &updated, Some(&obj), Part::Main);
    let _ = strategy::spec_changed(&updated, &obj);
    let mut status = obj.clone();
    strategy::prepare_for_update(sdef, &mut status, &updated, Part::Status);
    let _ = strategy::validate(sdef, &status, Some(&updated), Part::Status);

    // back to the client's version, as a response would be encoded
    let served = Value::Object(convert::from_storage(def, obj.clone()));
    let _ = serde_json::to_vec(&served);
    let _ = table::object_table(
        def,
        &served,
        jiff::Timestamp::UNIX_EPOCH,
        table::IncludeObject::Object,
        true,
    );

    // patch engines with the body as the patch
    let spec = kind_spec(def);
    let _ = patch::json_patch(&served, &patch_doc);
    for original in [&served, &Value::Null] {
        if let Ok(v) = patch::merge_patch(original, &patch_doc) {
            let _ = check_object(&target(def), v);
        }
        if let Ok(v) = patch::strategic_merge(&spec, original, &patch_doc)
            && let Ok(mut o) = check_object(&target(def), v)
        {
            let _ = fieldcheck::check(def, &mut o);
            let o = convert::to_storage(def, o);
            let _ = strategy::validate(sdef, &o, Some(&obj), Part::Main);
        }
    }
    let now = "2024-01-01T00:00:00Z";
    let api_version = def.api_version();
    if let Ok(live) = ssa::apply(&spec, None, &patch_doc, "fuzz", &api_version, now, false) {
        let _ = ssa::apply(
            &spec,
            Some(&live),
            &served,
            "other",
            &api_version,
            now,
            false,
        );
        let _ = ssa::apply(
            &spec,
            Some(&live),
            &patch_doc,
            "fuzz",
            &api_version,
            now,
            true,
        );
    }

    if !causes.is_empty() {
        return Err(ApiError::invalid(sdef, "", causes));
    }
    Ok(obj)
}

/// One fuzz input: the body's own `apiVersion`/`kind` pick the resource when they name a
/// served one (so manifests make good seeds); otherwise the input's bytes do. The content
/// type comes from the input's length.
pub fn fuzz_one(data: &[u8]) {
    let content_type = CONTENT_TYPES[data.len() % CONTENT_TYPES.len()];
    let named = decode_body(data, "application/yaml").ok().and_then(|v| {
        let (group, version) = match v.get("apiVersion")?.as_str()?.split_once('/') {
            Some((g, ver)) => (g.to_string(), ver.to_string()),
            None => (String::new(), v.get("apiVersion")?.as_str()?.to_string()),
        };
        let def = resources::lookup_kind(&group, &version, v.get("kind")?.as_str()?)?;
        RESOURCES.iter().position(|d| std::ptr::eq(d, def))
    });
    let index = named.unwrap_or_else(|| {
        data.iter()
            .take(64)
            .fold(0usize, |a, b| a.wrapping_mul(31).wrapping_add(*b as usize))
    });
    let _ = decode_and_validate(data, content_type, index);
    let _ = decode_and_validate(data, "application/json", index);
}

/// One HTTP/1.1 connection (`crate::http1`) whose client sends `data` (in pieces whose size
/// the first byte picks, so heads and chunked bodies are split at every point) and then
/// closes its side, while reading everything the server answers. The handler behind it reads
/// the body (`/` and anything else), streams a finite chunked answer (`/stream`) or upgrades
/// and echoes (`/upgrade`). Must never panic, and the connection must end once the client has
/// closed (it sees EOF at once; the header and idle timeouts are cut to 200 ms in case it
/// does not): one still open after 30 s is a hang, reported as a panic.
pub fn fuzz_http1(data: &[u8]) {
    thread_local! {
        static RUNTIME: Option<tokio::runtime::Runtime> = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok();
    }
    RUNTIME.with(|rt| {
        if let Some(rt) = rt {
            rt.block_on(http1_session(data));
        }
    });
}

async fn http1_session(data: &[u8]) {
    use axum::body::Body;
    use axum::http::{Request, Response};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use crate::http1::{self, Http1Options, OnUpgrade};

    let service = http1::service_fn(|req: Request<Body>| async move {
        let upgrade = req.extensions().get::<OnUpgrade>().cloned();
        let response = match (req.uri().path(), upgrade) {
            ("/upgrade", Some(on)) => Ok(http1::echo_upgrade(on)),
            ("/stream", _) => {
                let parts = futures::stream::iter(
                    ["one\n", "two\n", "three\n"]
                        .map(|p| Ok::<_, std::io::Error>(bytes::Bytes::from_static(p.as_bytes()))),
                );
                Response::builder().body(Body::from_stream(parts))
            }
            _ => {
                let n = axum::body::to_bytes(req.into_body(), 1 << 20)
                    .await
                    .map_or(-1, |b| b.len() as i64);
                Response::builder().body(Body::from(format!("{n}\n")))
            }
        };
        Ok::<_, std::convert::Infallible>(response.unwrap_or_default())
    });
    let (client, server) = tokio::io::duplex(4096);
    let options = Http1Options {
        max_head_bytes: 16 * 1024,
        read_header_timeout: std::time::Duration::from_millis(200),
        idle_timeout: std::time::Duration::from_millis(200),
        ..Http1Options::default()
    };
    let conn = tokio::spawn(http1::serve_connection(
        server,
        service,
        options,
        tokio_util::sync::CancellationToken::new(),
    ));
    let step = usize::from(data.first().copied().unwrap_or(0) % 64) + 1;
    let (mut rd, mut wr) = tokio::io::split(client);
    let write = async move {
        for piece in data.chunks(step) {
            if wr.write_all(piece).await.is_err() {
                break;
            }
            tokio::task::yield_now().await;
        }
        let _ = wr.shutdown().await;
    };
    let read = async move {
        let mut sink = [0u8; 4096];
        while let Ok(n) = rd.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    };
    let session = async {
        tokio::join!(write, read);
        let _ = conn.await;
    };
    if tokio::time::timeout(std::time::Duration::from_secs(30), session)
        .await
        .is_err()
    {
        panic!("an HTTP/1.1 connection did not end after its client closed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http1_sessions_end() {
        fuzz_http1(b"");
        fuzz_http1(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        fuzz_http1(b"\x05POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /stream HTTP/1.1\r\n\r\n");
        fuzz_http1(b"GET /upgrade HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nhello");
        fuzz_http1(b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\nshort");
        fuzz_http1(b"GET / HTTP/1.1\r\nX: \xff\x00\r\n\r\n");
        fuzz_http1(&[b'a'; 20_000]);
    }

    #[test]
    fn valid_pod_passes_and_garbage_fails() {
        let pod = br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},
            "spec":{"containers":[{"name":"c","image":"busybox"}]}}"#;
        let idx = RESOURCES
            .iter()
            .position(|d| d.kind == "Pod" && d.group.is_empty())
            .unwrap_or(0);
        assert!(decode_and_validate(pod, "application/json", idx).is_ok());
        assert!(decode_and_validate(b"{", "application/json", idx).is_err());
        assert!(decode_and_validate(b"- a\n- b", "application/yaml", idx).is_err());
        for i in 0..RESOURCES.len() {
            fuzz_one(pod);
            let _ = decode_and_validate(b"{\"spec\":{\"replicas\":-1}}", "application/json", i);
            let _ = decode_and_validate(b"metadata: [1]\n", "application/yaml", i);
        }
    }
}
