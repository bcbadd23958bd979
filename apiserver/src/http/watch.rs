//! WATCH over HTTP: one JSON event per line on a chunked response, from a resourceVersion
//! (events strictly after it) or, when it is unset or "0", from a synthetic ADDED for every
//! current object. Ends at `timeoutSeconds`; an expired resourceVersion is a 200 with one
//! ERROR event (410 Expired), as upstream sends it; bookmarks when asked.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde_json::{Value, json};

use super::handlers::Ctx;
use super::response::Format;
use crate::convert;
use crate::error::ApiError;
use crate::registry::{EventType, ObjectEvent, ObjectWatch};
use crate::resources::ResourceDef;
use crate::table::IncludeObject;

/// How often a bookmark is sent to clients that allow them.
const BOOKMARK_EVERY: Duration = Duration::from_secs(30);
/// Upstream closes watches without a timeout after 30-60 minutes; so do we.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// One watch line in upstream's field order (`metav1.WatchEvent`: type, then object).
fn encode_line(kind: EventType, object: Value) -> Bytes {
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(kind.as_str().as_bytes());
    out.extend_from_slice(b"\",\"object\":");
    // Infallible: a `Value` has string keys only, and writing to a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut out, &object);
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

/// Encodes events for one watch: JSON objects, or Table rows (headers only in the first).
struct Encoder {
    def: &'static ResourceDef,
    table: bool,
    include_object: IncludeObject,
    sent_headers: bool,
}

impl Encoder {
    fn line(&mut self, kind: EventType, object: Value) -> Bytes {
        let object = if self.table
            && matches!(
                kind,
                EventType::Added | EventType::Modified | EventType::Deleted
            ) {
            let t = crate::table::object_table(
                self.def,
                &object,
                jiff::Timestamp::now(),
                self.include_object,
                !self.sent_headers,
            );
            self.sent_headers = true;
            t
        } else {
            object
        };
        encode_line(kind, object)
    }

    fn event(&mut self, ev: ObjectEvent) -> Bytes {
        if !self.table
            && let Some(shared) = &ev.shared
        {
            // Encoded once per event for every JSON watcher of this version.
            let def = self.def;
            return shared.line(def, ev.kind, || {
                let obj = convert::from_storage(def, (*ev.object).clone());
                encode_line(ev.kind, Value::Object(obj))
            });
        }
        let obj = convert::from_storage(self.def, Arc::unwrap_or_clone(ev.object));
        self.line(ev.kind, Value::Object(obj))
    }

    fn bookmark(&mut self, rv: i64) -> Bytes {
        let obj = json!({
            "kind": self.def.kind,
            "apiVersion": self.def.api_version(),
            "metadata": {"resourceVersion": rv.to_string()},
        });
        self.line(EventType::Bookmark, obj)
    }

    fn error(&mut self, e: &ApiError) -> Bytes {
        self.line(EventType::Error, e.to_status().to_value())
    }
}

pub async fn watch(ctx: &Ctx<'_>) -> Result<Response, ApiError> {
    ctx.verb_allowed("watch")?;
    let def = ctx.target.def;
    let params = ctx.list_params()?;
    let registry = ctx.state.registry.clone();
    let ns = ctx.ns().map(str::to_string);
    let timeout = ctx
        .query
        .int("timeoutSeconds")?
        .filter(|t| *t > 0)
        .map_or(DEFAULT_TIMEOUT, |t| Duration::from_secs(t as u64));
    let bookmarks = ctx.query.bool("allowWatchBookmarks")?;
    let mut enc = Encoder {
        def,
        table: ctx.format() == Format::Table,
        include_object: ctx.include_object()?,
        sent_headers: false,
    };
    let rv = params.resource_version.clone().unwrap_or_default();
    let send_initial = ctx.query.bool("sendInitialEvents")?;

    // Initial state: for RV unset/"0" (or sendInitialEvents), list now and send ADDED events.
    let mut initial: Vec<Bytes> = Vec::new();
    let start = if rv.is_empty() || rv == "0" || send_initial {
        let list_params = crate::registry::ListParams {
            limit: None,
            continue_token: None,
            resource_version: None,
            resource_version_match: None,
            ..params.clone()
        };
        let list = registry.list(def, ns.as_deref(), &list_params).await?;
        for obj in list.items {
            initial.push(enc.event(ObjectEvent {
                kind: EventType::Added,
                object: Arc::new(obj),
                revision: list.resource_version,
                shared: None,
            }));
        }
        if send_initial && bookmarks {
            // The end of the initial events, marked as upstream's watch-list protocol does.
            let obj = json!({
                "kind": def.kind,
                "apiVersion": def.api_version(),
                "metadata": {"resourceVersion": list.resource_version.to_string(),
                             "annotations": {"k8s.io/initial-events-end": "true"}},
            });
            initial.push(enc.line(EventType::Bookmark, obj));
        }
        list.resource_version
    } else {
        crate::registry::parse_rv(&rv)?
    };

    let events: ObjectWatch = match registry.watch(def, ns.as_deref(), start, &params).await {
        Ok(w) => w,
        // Too old: 200 and one ERROR event, so reflectors relist.
        Err(e @ ApiError::Expired(_)) => {
            let line = enc.error(&e);
            return Ok(stream_response(futures::stream::iter([line]).boxed()));
        }
        Err(e) => return Err(e),
    };

    let live = WatchLoop::new(
        events,
        enc,
        start,
        timeout,
        bookmarks.then_some(BOOKMARK_EVERY),
    );
    let all = futures::stream::iter(initial).chain(live).boxed();
    Ok(stream_response(all))
}

/// Lines of one watch after its initial events: store events, bookmarks, and the end at the
/// deadline. The timers live as long as the watch instead of being re-armed per event; they
/// are made at the first poll, so they belong to the runtime that writes the watch (the
/// HTTP/1.1 loop's stream runtime, `crate::http1::LongLived`), not to the one whose handler
/// made the watch. Each event is its own frame, the `Bytes` shared with every watcher of the
/// event: the HTTP/1.1 loop (`crate::http1`) gathers the frames that are ready at once into
/// one vectored write, without copying them.
struct WatchLoop {
    events: ObjectWatch,
    enc: Encoder,
    last_rv: i64,
    timers: Timers,
    done: bool,
}

enum Timers {
    /// Before the first poll: when the watch started, how long it runs, how often a bookmark
    /// is due (`Some` for clients that allow them).
    Unarmed {
        started: tokio::time::Instant,
        timeout: Duration,
        bookmark_every: Option<Duration>,
    },
    Armed {
        deadline: Pin<Box<tokio::time::Sleep>>,
        /// How often, and when the next bookmark is due.
        bookmark: Option<(Duration, Pin<Box<tokio::time::Sleep>>)>,
    },
}

impl Timers {
    /// Makes the deadline and the bookmark timer (on the calling runtime) if not yet made.
    fn arm(&mut self) {
        if let Timers::Unarmed {
            started,
            timeout,
            bookmark_every,
        } = *self
        {
            *self = Timers::Armed {
                deadline: Box::pin(tokio::time::sleep_until(started + timeout)),
                bookmark: bookmark_every
                    .map(|every| (every, Box::pin(tokio::time::sleep_until(started + every)))),
            };
        }
    }
}

impl WatchLoop {
    /// `bookmark_every`: `Some` for clients that allow bookmarks.
    fn new(
        events: ObjectWatch,
        enc: Encoder,
        start: i64,
        timeout: Duration,
        bookmark_every: Option<Duration>,
    ) -> Self {
        WatchLoop {
            events,
            enc,
            last_rv: start,
            timers: Timers::Unarmed {
                started: tokio::time::Instant::now(),
                timeout,
                bookmark_every,
            },
            done: false,
        }
    }
}

impl Stream for WatchLoop {
    type Item = Bytes;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        this.timers.arm();
        let Timers::Armed { deadline, bookmark } = &mut this.timers else {
            // `arm` just made them.
            this.done = true;
            return Poll::Ready(None);
        };
        if deadline.as_mut().poll(cx).is_ready() {
            this.done = true;
            return Poll::Ready(None);
        }
        // Checked before the events, so a busy watch still gets its bookmarks.
        if let Some((every, b)) = bookmark
            && b.as_mut().poll(cx).is_ready()
        {
            b.as_mut().reset(tokio::time::Instant::now() + *every);
            return Poll::Ready(Some(this.enc.bookmark(this.last_rv)));
        }
        match this.events.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(ev))) => {
                this.last_rv = ev.revision;
                Poll::Ready(Some(this.enc.event(ev)))
            }
            Poll::Ready(Some(Err(e))) => {
                // The error is the last line of the watch.
                this.done = true;
                Poll::Ready(Some(this.enc.error(&e)))
            }
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

fn stream_response(s: futures::stream::BoxStream<'static, Bytes>) -> Response {
    let body = super::response::stream_body(s.map(Ok::<_, Infallible>));
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache, private"),
        ],
        // Events go out as they happen; upstream never compresses a watch.
        axum::Extension(super::Uncompressed),
        // Written from the stream runtime, away from request handling.
        axum::Extension(crate::http1::LongLived),
        body,
    )
        .into_response()
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use futures::channel::mpsc;
    use serde_json::Value;

    use super::*;

    fn line(b: &Bytes) -> Value {
        assert!(
            b.ends_with(b"\n") && !b[..b.len() - 1].contains(&b'\n'),
            "{b:?}"
        );
        serde_json::from_slice(b).expect("one JSON object")
    }

    #[test]
    fn lines_put_the_type_first_as_upstream() {
        let b = encode_line(EventType::Added, json!({"kind": "Pod", "apiVersion": "v1"}));
        assert_eq!(
            &b[..],
            b"{\"type\":\"ADDED\",\"object\":{\"apiVersion\":\"v1\",\"kind\":\"Pod\"}}\n"
        );
    }

    /// A watch made on one runtime (the handler's) and written from another (the stream
    /// runtime) keeps working when the first is gone: its timers belong to the runtime that
    /// polls it. (A tokio timer polled after its runtime shut down panics.)
    #[test]
    fn timers_belong_to_the_runtime_that_polls_the_watch() {
        let def = crate::resources::lookup("", "v1", "configmaps").expect("configmaps");
        let (tx, rx) = mpsc::unbounded::<Result<ObjectEvent, ApiError>>();
        let handler_rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let mut w = handler_rt.block_on(async {
            let enc = Encoder {
                def,
                table: false,
                include_object: IncludeObject::default(),
                sent_headers: false,
            };
            WatchLoop::new(
                Box::pin(rx),
                enc,
                10,
                Duration::from_millis(300),
                Some(Duration::from_millis(100)),
            )
        });
        drop(handler_rt);
        let stream_rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let lines = stream_rt.block_on(async {
            let mut n = 0;
            while let Some(b) = w.next().await {
                let v = line(&b);
                assert_eq!(v["type"], "BOOKMARK", "{v}");
                n += 1;
            }
            n
        });
        assert!(
            (1..=3).contains(&lines),
            "{lines} bookmarks before the deadline"
        );
        drop(tx);
    }

    /// Events one line each; bookmarks with the last revision sent, due ones first even while
    /// events are ready; the end at the deadline although the event stream is still open.
    #[tokio::test]
    async fn events_bookmarks_and_the_deadline() {
        let def = crate::resources::lookup("", "v1", "configmaps").expect("configmaps");
        let (tx, rx) = mpsc::unbounded::<Result<ObjectEvent, ApiError>>();
        let enc = Encoder {
            def,
            table: false,
            include_object: IncludeObject::default(),
            sent_headers: false,
        };
        let every = Duration::from_millis(600);
        let timeout = Duration::from_millis(2000);
        let start = tokio::time::Instant::now();
        let mut w = WatchLoop::new(Box::pin(rx), enc, 10, timeout, Some(every));
        let event = |rv: i64| {
            let obj = serde_json::json!({"metadata": {"name": format!("c{rv}"), "resourceVersion": rv.to_string()}});
            Ok(ObjectEvent {
                kind: EventType::Added,
                object: Arc::new(obj.as_object().cloned().unwrap_or_default()),
                revision: rv,
                shared: None,
            })
        };
        let kind_rv = |v: &Value| {
            (
                v["type"].as_str().unwrap_or("").to_string(),
                v["object"]["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        };
        let pair = |k: &str, rv: &str| (k.to_string(), rv.to_string());
        for rv in [11, 12] {
            tx.unbounded_send(event(rv)).expect("send");
        }
        for rv in ["11", "12"] {
            let v = line(&w.next().await.expect("event"));
            assert_eq!(kind_rv(&v), pair("ADDED", rv));
        }
        // Idle: a bookmark when due, with the last revision sent.
        let v = line(&w.next().await.expect("bookmark"));
        assert_eq!(kind_rv(&v), pair("BOOKMARK", "12"));
        assert!(start.elapsed() >= every);
        // An event ready when the next bookmark is overdue: the bookmark first.
        tokio::time::sleep_until(start + every * 2 + Duration::from_millis(100)).await;
        tx.unbounded_send(event(13)).expect("send");
        let v = line(&w.next().await.expect("bookmark"));
        assert_eq!(kind_rv(&v), pair("BOOKMARK", "12"));
        let v = line(&w.next().await.expect("event"));
        assert_eq!(kind_rv(&v), pair("ADDED", "13"));
        // Then at most bookmarks (of 13) until the deadline ends the watch.
        while let Some(b) = w.next().await {
            assert_eq!(kind_rv(&line(&b)), pair("BOOKMARK", "13"));
        }
        assert!(start.elapsed() >= timeout);
        assert!(w.next().await.is_none());
        drop(tx);
    }
}
