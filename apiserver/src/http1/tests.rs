#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::body::{Decoded, Decoder};
use super::*;

/// What the test routes share with the tests.
#[derive(Clone, Default)]
struct Shared {
    /// `/stream`: the sender of its frames.
    stream: Arc<Mutex<Option<mpsc::Sender<Bytes>>>>,
    stream_ready: Arc<Notify>,
    /// The name of the thread of each poll of a `/stream` (or `/long`) body.
    polled_on: Arc<Mutex<Vec<String>>>,
    /// `/slow` answers once notified.
    release: Arc<Notify>,
    slow_started: Arc<Notify>,
}

/// Fires its sender when dropped.
struct DropSignal(Option<oneshot::Sender<()>>);
impl Drop for DropSignal {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

fn router(shared: Shared) -> Router {
    Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route(
            "/echo",
            post(|body: Body| async move {
                match axum::body::to_bytes(body, 8 << 20).await {
                    Ok(b) => (StatusCode::OK, b).into_response(),
                    Err(e) => (StatusCode::BAD_REQUEST, format!("body: {e}")).into_response(),
                }
            }),
        )
        .route("/ignore", post(|| async { "ignored" }))
        .route("/nocontent", get(|| async { StatusCode::NO_CONTENT }))
        .route("/notmodified", get(|| async { StatusCode::NOT_MODIFIED }))
        .route(
            "/stream",
            get(|State(s): State<Shared>| async move { channel_body(&s, DropSignal(None)) }),
        )
        .route(
            "/slow",
            get(|State(s): State<Shared>| async move {
                s.slow_started.notify_one();
                s.release.notified().await;
                "slow"
            }),
        )
        .route(
            "/upgrade",
            get(|req: Request| async move {
                let Some(on) = req.extensions().get::<OnUpgrade>().cloned() else {
                    return (StatusCode::BAD_REQUEST, "no upgrade").into_response();
                };
                super::echo_upgrade(on)
            }),
        )
        .with_state(shared)
}

/// The body of the streaming routes: frames from a channel whose sender is handed to the test
/// through `shared.stream`; `guard` lives as long as the body; each poll records its thread.
fn channel_body(s: &Shared, guard: DropSignal) -> Body {
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    *s.stream.lock().unwrap() = Some(tx);
    s.stream_ready.notify_one();
    let polled_on = s.polled_on.clone();
    let stream = futures::stream::unfold((rx, guard), move |(mut rx, guard)| {
        let name = std::thread::current().name().unwrap_or("").to_string();
        polled_on.lock().unwrap().push(name);
        async move {
            let b = rx.recv().await?;
            Some((Ok::<_, std::convert::Infallible>(b), (rx, guard)))
        }
    });
    Body::from_stream(stream)
}

/// The `/stream` route with a drop signal the test can await (the body holds its sender), and
/// `/long`, the same marked [`LongLived`], and `/hello`.
fn stream_router(shared: Shared, dropped: Arc<Mutex<Option<oneshot::Sender<()>>>>) -> Router {
    let guard = move || DropSignal(dropped.lock().unwrap().take());
    let long_guard = guard.clone();
    Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route(
            "/stream",
            get(move |State(s): State<Shared>| async move { channel_body(&s, guard()) }),
        )
        .route(
            "/long",
            get(move |State(s): State<Shared>| async move {
                (axum::Extension(LongLived), channel_body(&s, long_guard()))
            }),
        )
        .with_state(shared)
}

/// Sends `request` (to a streaming route) and returns the sender of the response's frames.
async fn open_stream<W: AsyncWrite + Unpin>(
    client: &mut W,
    shared: &Shared,
    request: &[u8],
) -> mpsc::Sender<Bytes> {
    send(client, request).await;
    shared.stream_ready.notified().await;
    shared.stream.lock().unwrap().take().unwrap()
}

/// The whole answer to `request` on a new connection, read to its close.
async fn answer_to(shared: &Shared, request: &[u8]) -> String {
    let mut s = start(shared);
    send(&mut s.client, request).await;
    String::from_utf8(read_to_end(&mut s.client).await).unwrap()
}

struct Server {
    client: DuplexStream,
    shutdown: CancellationToken,
    done: tokio::task::JoinHandle<Result<(), Http1Error>>,
}

fn start_with(app: Router, options: Http1Options) -> Server {
    let (client, server) = tokio::io::duplex(1 << 16);
    let shutdown = CancellationToken::new();
    let done = tokio::spawn(serve_connection(server, app, options, shutdown.clone()));
    Server {
        client,
        shutdown,
        done,
    }
}

fn start(shared: &Shared) -> Server {
    start_with(router(shared.clone()), Http1Options::default())
}

/// Reads one response: head, then the body by content-length, chunked, or to EOF.
async fn read_response<R: AsyncRead + Unpin>(r: &mut R, buf: &mut BytesMut) -> (String, Vec<u8>) {
    let head_end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        assert!(read_more(r, buf).await > 0, "EOF in a head: {buf:?}");
    };
    let head = String::from_utf8(buf.split_to(head_end).to_vec()).unwrap();
    let lower = head.to_ascii_lowercase();
    let no_body = head.starts_with("HTTP/1.1 204")
        || head.starts_with("HTTP/1.1 304")
        || head.starts_with("HTTP/1.1 1");
    if no_body {
        return (head, Vec::new());
    }
    if let Some(len) = header_value(&lower, "content-length") {
        let len: usize = len.parse().unwrap();
        while buf.len() < len {
            assert!(read_more(r, buf).await > 0, "EOF in a body");
        }
        return (head, buf.split_to(len).to_vec());
    }
    if header_value(&lower, "transfer-encoding").as_deref() == Some("chunked") {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = find(buf, b"\r\n") {
                    break i;
                }
                assert!(read_more(r, buf).await > 0, "EOF in a chunk size");
            };
            let size =
                usize::from_str_radix(std::str::from_utf8(&buf[..line_end]).unwrap(), 16).unwrap();
            let _ = buf.split_to(line_end + 2);
            while buf.len() < size + 2 {
                assert!(read_more(r, buf).await > 0, "EOF in a chunk");
            }
            body.extend_from_slice(&buf.split_to(size));
            assert_eq!(&buf.split_to(2)[..], b"\r\n");
            if size == 0 {
                return (head, body);
            }
        }
    }
    while read_more(r, buf).await > 0 {}
    (head, buf.split().to_vec())
}

async fn read_more<R: AsyncRead + Unpin>(r: &mut R, buf: &mut BytesMut) -> usize {
    buf.reserve(4096);
    tokio::time::timeout(Duration::from_secs(10), r.read_buf(buf))
        .await
        .expect("read timed out")
        .expect("read")
}

async fn read_to_end<R: AsyncRead + Unpin>(r: &mut R) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), r.read_to_end(&mut out))
        .await
        .expect("EOF timed out")
        .expect("read");
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn header_value(lower_head: &str, name: &str) -> Option<String> {
    lower_head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        (n.trim() == name).then(|| v.trim().to_string())
    })
}

async fn send<W: AsyncWrite + Unpin>(w: &mut W, bytes: &[u8]) {
    w.write_all(bytes).await.unwrap();
}

#[tokio::test]
async fn keep_alive_serves_several_requests() {
    let shared = Shared::default();
    let mut s = start(&shared);
    let mut buf = BytesMut::new();
    for _ in 0..3 {
        send(&mut s.client, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let (head, body) = read_response(&mut s.client, &mut buf).await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("content-length: 5\r\n"), "{head}");
        assert!(head.contains("date: "), "{head}");
        assert!(!head.contains("connection"), "{head}");
        assert_eq!(body, b"hello");
    }
    send(
        &mut s.client,
        b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let (head, _) = read_response(&mut s.client, &mut buf).await;
    assert!(head.contains("connection: close\r\n"), "{head}");
    assert!(read_to_end(&mut s.client).await.is_empty());
    s.done.await.unwrap().unwrap();
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let shared = Shared::default();
    let mut s = start(&shared);
    send(
        &mut s.client,
        b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\nPOST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /nocontent HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    let mut buf = BytesMut::new();
    let (h1, b1) = read_response(&mut s.client, &mut buf).await;
    let (h2, b2) = read_response(&mut s.client, &mut buf).await;
    let (h3, b3) = read_response(&mut s.client, &mut buf).await;
    assert!(h1.starts_with("HTTP/1.1 200") && b1 == b"hello", "{h1}");
    assert!(h2.starts_with("HTTP/1.1 200") && b2 == b"abc", "{h2}");
    assert!(h3.starts_with("HTTP/1.1 204") && b3.is_empty(), "{h3}");
}

#[tokio::test]
async fn chunked_request_body_with_extensions_and_trailers() {
    let shared = Shared::default();
    let mut s = start(&shared);
    send(
        &mut s.client,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
          5;name=value\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: yes\r\n\r\n",
    )
    .await;
    let mut buf = BytesMut::new();
    let (head, body) = read_response(&mut s.client, &mut buf).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, b"hello, world");
    // The connection is still usable.
    send(&mut s.client, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let (_, body) = read_response(&mut s.client, &mut buf).await;
    assert_eq!(body, b"hello");
}

#[tokio::test]
async fn content_length_body_across_several_writes() {
    let shared = Shared::default();
    let mut s = start(&shared);
    let payload = vec![b'x'; 200_000];
    send(
        &mut s.client,
        format!(
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            payload.len()
        )
        .as_bytes(),
    )
    .await;
    let (mut r, mut w) = tokio::io::split(s.client);
    let writer = tokio::spawn(async move {
        for part in payload.chunks(7000) {
            w.write_all(part).await.unwrap();
        }
        w
    });
    let mut buf = BytesMut::new();
    let (head, body) = read_response(&mut r, &mut buf).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body.len(), 200_000);
    assert!(body.iter().all(|&b| b == b'x'));
    writer.await.unwrap();
}

#[tokio::test]
async fn bad_request_bodies() {
    let shared = Shared::default();
    // A chunk size that overflows: the handler's body fails, and the connection closes.
    let mut s = start(&shared);
    send(
        &mut s.client,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n",
    )
    .await;
    let mut buf = BytesMut::new();
    let (head, body) = read_response(&mut s.client, &mut buf).await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert!(
        String::from_utf8_lossy(&body).contains("overflow"),
        "{body:?}"
    );

    for bad in [
        &b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc"[..],
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: -3\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
    ] {
        let text = answer_to(&shared, bad).await;
        assert!(text.starts_with("HTTP/1.1 400 Bad Request"), "{text}");
        assert!(text.contains("Connection: close\r\n"), "{text}");
    }
    let text = answer_to(
        &shared,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 501 Not Implemented"), "{text}");
}

#[tokio::test]
async fn expect_100_continue() {
    let shared = Shared::default();
    let mut s = start(&shared);
    send(
        &mut s.client,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .await;
    let mut buf = BytesMut::new();
    let (head, _) = read_response(&mut s.client, &mut buf).await;
    assert_eq!(head, "HTTP/1.1 100 Continue\r\n\r\n");
    send(&mut s.client, b"hello").await;
    let (head, body) = read_response(&mut s.client, &mut buf).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, b"hello");

    // A handler that never reads the body: no 100, and the connection closes after the answer
    // (the client may never send the body).
    send(
        &mut s.client,
        b"POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .await;
    let (head, body) = read_response(&mut s.client, &mut buf).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert_eq!(body, b"ignored");
    assert!(read_to_end(&mut s.client).await.is_empty());

    // Any other expectation: 417.
    let text = answer_to(
        &shared,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: something\r\n\r\n",
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 417"), "{text}");
}

#[tokio::test]
async fn unread_small_body_is_drained_and_the_connection_kept() {
    let shared = Shared::default();
    let mut s = start(&shared);
    send(
        &mut s.client,
        b"POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789GET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    let mut buf = BytesMut::new();
    let (h1, b1) = read_response(&mut s.client, &mut buf).await;
    assert!(!h1.contains("connection: close"), "{h1}");
    assert_eq!(b1, b"ignored");
    let (_, b2) = read_response(&mut s.client, &mut buf).await;
    assert_eq!(b2, b"hello");
}

#[tokio::test]
async fn head_and_bodiless_statuses_send_no_body() {
    let shared = Shared::default();
    let mut s = start(&shared);
    let mut buf = BytesMut::new();
    send(&mut s.client, b"HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n").await;
    // Read exactly the head: a body would show up as garbage before the next response.
    let (head, _) = {
        loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break (String::from_utf8(buf.split_to(i + 4).to_vec()).unwrap(), ());
            }
            read_more(&mut s.client, &mut buf).await;
        }
    };
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("content-length: 5"), "{head}");
    for path in ["/nocontent", "/notmodified", "/hello"] {
        send(
            &mut s.client,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        )
        .await;
        let (head, body) = read_response(&mut s.client, &mut buf).await;
        assert!(!head.contains("transfer-encoding"), "{head}");
        if path == "/hello" {
            assert_eq!(body, b"hello");
        } else {
            assert!(!head.contains("content-length"), "{head}");
        }
    }
    assert!(buf.is_empty(), "{buf:?}");
}

#[tokio::test]
async fn http10_clients() {
    let shared = Shared::default();
    // Known length, keep-alive asked: kept.
    let mut s = start(&shared);
    let mut buf = BytesMut::new();
    send(
        &mut s.client,
        b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    )
    .await;
    let (head, body) = read_response(&mut s.client, &mut buf).await;
    assert!(head.starts_with("HTTP/1.0 200 OK\r\n"), "{head}");
    assert!(head.contains("connection: keep-alive"), "{head}");
    assert_eq!(body, b"hello");
    // Not asked: closed after the answer.
    send(&mut s.client, b"GET /hello HTTP/1.0\r\n\r\n").await;
    let (head, _) = read_response(&mut s.client, &mut buf).await;
    assert!(head.contains("connection: close"), "{head}");
    assert!(read_to_end(&mut s.client).await.is_empty());

    // Unknown length: delimited by closing, not chunked.
    let mut s = start(&shared);
    let tx = open_stream(
        &mut s.client,
        &shared,
        b"GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    )
    .await;
    tx.send(Bytes::from_static(b"one ")).await.unwrap();
    tx.send(Bytes::from_static(b"two")).await.unwrap();
    drop(tx);
    let out = String::from_utf8(read_to_end(&mut s.client).await).unwrap();
    assert!(out.starts_with("HTTP/1.0 200 OK\r\n"), "{out}");
    assert!(out.contains("connection: close"), "{out}");
    assert!(!out.contains("transfer-encoding"), "{out}");
    assert!(out.ends_with("\r\n\r\none two"), "{out}");
}

#[tokio::test]
async fn malformed_and_oversized_heads() {
    let shared = Shared::default();
    let mut s = start(&shared);
    send(&mut s.client, b"GET / HTTP/1.1\r\nBad Header\r\n\r\n").await;
    let out = String::from_utf8(read_to_end(&mut s.client).await).unwrap();
    assert_eq!(
        out,
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request"
    );
    s.done.await.unwrap().unwrap();

    let out = answer_to(&shared, b"GET /hello HTTP/1.1\r\n\r\n").await;
    assert!(
        out.ends_with("\r\n\r\n400 Bad Request: missing required Host header"),
        "{out}"
    );

    // Larger than the limit: 431, even while the client is still sending.
    let options = Http1Options {
        max_head_bytes: 8 * 1024,
        ..Http1Options::default()
    };
    let s = start_with(router(shared.clone()), options);
    let (mut r, mut w) = tokio::io::split(s.client);
    let writer = tokio::spawn(async move {
        let _ = w.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\n").await;
        for _ in 0..1000 {
            if w.write_all(b"X-Filler: 0123456789012345678901234567890123456789\r\n")
                .await
                .is_err()
            {
                break;
            }
        }
    });
    let out = String::from_utf8(read_to_end(&mut r).await).unwrap();
    assert!(
        out.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{out}"
    );
    writer.await.unwrap();

    // The default limit, 1 MiB: a head just under it is served.
    let mut s = start(&shared);
    let mut req = b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    req.extend(std::iter::repeat_n(b'a', (1 << 20) - 200));
    req.extend_from_slice(b"\r\n\r\n");
    let (mut r, mut w) = tokio::io::split(s.client);
    let writer = tokio::spawn(async move { w.write_all(&req).await.map(|_| w) });
    let mut buf = BytesMut::new();
    let (head, body) = read_response(&mut r, &mut buf).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, b"hello");
    s.client = r.unsplit(writer.await.unwrap().unwrap());
    drop(s.client);
}

#[tokio::test]
async fn client_eof_mid_stream_drops_the_body() {
    let shared = Shared::default();
    let dropped = Arc::new(Mutex::new(None));
    let (dropped_tx, dropped_rx) = oneshot::channel();
    *dropped.lock().unwrap() = Some(dropped_tx);
    let mut s = start_with(
        stream_router(shared.clone(), dropped.clone()),
        Http1Options::default(),
    );
    let tx = open_stream(
        &mut s.client,
        &shared,
        b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    tx.send(Bytes::from_static(b"first\n")).await.unwrap();
    let mut buf = BytesMut::new();
    while find(&buf, b"first\n").is_none() {
        read_more(&mut s.client, &mut buf).await;
    }
    let text = String::from_utf8_lossy(&buf).to_string();
    assert!(text.contains("transfer-encoding: chunked"), "{text}");
    assert!(text.ends_with("\r\n6\r\nfirst\n\r\n"), "{text}");
    // The client goes away; the handler's stream is dropped although it never ended.
    drop(s.client);
    tokio::time::timeout(Duration::from_secs(5), dropped_rx)
        .await
        .expect("the body was not dropped")
        .unwrap();
    s.done.await.unwrap().unwrap();
    assert!(tx.is_closed());
}

#[tokio::test]
async fn stream_frames_ready_together_share_one_response_and_end_properly() {
    let shared = Shared::default();
    let mut s = start(&shared);
    let tx = open_stream(
        &mut s.client,
        &shared,
        b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    for part in ["a", "bb", "", "ccc"] {
        tx.send(Bytes::from(part)).await.unwrap();
    }
    drop(tx);
    let mut buf = BytesMut::new();
    let (head, body) = read_response(&mut s.client, &mut buf).await;
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert_eq!(body, b"abbccc");
    // Still usable afterwards.
    send(&mut s.client, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let (_, body) = read_response(&mut s.client, &mut buf).await;
    assert_eq!(body, b"hello");
}

/// A response marked `LongLived` is written from the stream runtime (its body is polled on
/// that runtime's threads only), then the connection comes back and serves the next request.
#[tokio::test]
async fn long_lived_responses_stream_from_their_runtime_and_the_connection_goes_on() {
    let shared = Shared::default();
    let mut s = start_with(
        stream_router(shared.clone(), Arc::default()),
        Http1Options::default(),
    );
    let tx = open_stream(
        &mut s.client,
        &shared,
        b"GET /long HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    let mut buf = BytesMut::new();
    for part in ["one\n", "two\n"] {
        tx.send(Bytes::from(part)).await.unwrap();
        while find(&buf, part.as_bytes()).is_none() {
            read_more(&mut s.client, &mut buf).await;
        }
    }
    drop(tx);
    let (head, body) = read_response(&mut s.client, &mut buf).await;
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert_eq!(body, b"one\ntwo\n");
    let seen = shared.polled_on.lock().unwrap().clone();
    assert!(seen.len() >= 3, "{seen:?}");
    assert!(seen.iter().all(|t| t == "capstan-streams"), "{seen:?}");
    // Back on its own task: the next request on the same connection.
    send(&mut s.client, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let (_, body) = read_response(&mut s.client, &mut buf).await;
    assert_eq!(body, b"hello");
    drop(s.client);
    s.done.await.unwrap().unwrap();
}

/// Client EOF ends a long-lived response as any other; dropping the connection's future (a
/// server's forced close) aborts the response on the stream runtime and closes the connection.
#[tokio::test]
async fn long_lived_responses_end_with_the_client_or_the_connection_task() {
    for abort in [false, true] {
        let shared = Shared::default();
        let (dropped_tx, dropped_rx) = oneshot::channel();
        let dropped = Arc::new(Mutex::new(Some(dropped_tx)));
        let mut s = start_with(
            stream_router(shared.clone(), dropped),
            Http1Options::default(),
        );
        let tx = open_stream(
            &mut s.client,
            &shared,
            b"GET /long HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        .await;
        tx.send(Bytes::from_static(b"first\n")).await.unwrap();
        let mut buf = BytesMut::new();
        while find(&buf, b"first\n").is_none() {
            read_more(&mut s.client, &mut buf).await;
        }
        let Server {
            mut client, done, ..
        } = s;
        let ended = async {
            tokio::time::timeout(Duration::from_secs(5), dropped_rx)
                .await
                .expect("the body was not dropped")
                .unwrap();
            assert!(tx.is_closed());
        };
        if abort {
            done.abort();
            ended.await;
            let rest = tokio::time::timeout(Duration::from_secs(5), read_to_end(&mut client))
                .await
                .expect("the connection was not closed");
            assert!(!rest.windows(6).any(|w| w == b"first\n"), "{rest:?}");
        } else {
            drop(client);
            ended.await;
            done.await.unwrap().unwrap();
        }
    }
}

/// A chunk the socket takes only in part (a 64-byte pipe, 1000-byte frames) still goes out
/// whole and in order: what the first write left is written after it.
#[tokio::test]
async fn frames_larger_than_the_socket_takes_at_once() {
    let shared = Shared::default();
    let (mut client, server) = tokio::io::duplex(64);
    let done = tokio::spawn(serve_connection(
        server,
        router(shared.clone()),
        Http1Options::default(),
        CancellationToken::new(),
    ));
    let tx = open_stream(
        &mut client,
        &shared,
        b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    let frames: Vec<Bytes> = (0..5u8)
        .map(|i| Bytes::from(vec![b'a' + i; 1000]))
        .collect();
    let feed = {
        let frames = frames.clone();
        tokio::spawn(async move {
            for f in frames {
                tx.send(f).await.unwrap();
            }
        })
    };
    let mut buf = BytesMut::new();
    let (head, body) = read_response(&mut client, &mut buf).await;
    feed.await.unwrap();
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert_eq!(body, frames.concat());
    drop(client);
    done.await.unwrap().unwrap();
}

#[tokio::test]
async fn graceful_shutdown_closes_idle_connections_at_once() {
    let shared = Shared::default();
    let mut s = start(&shared);
    send(&mut s.client, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut buf = BytesMut::new();
    read_response(&mut s.client, &mut buf).await;
    s.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), s.done)
        .await
        .expect("idle connection not closed")
        .unwrap()
        .unwrap();
    assert!(read_to_end(&mut s.client).await.is_empty());

    // Before any request, too.
    let s = start(&shared);
    s.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), s.done)
        .await
        .expect("new connection not closed")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn graceful_shutdown_finishes_the_request_in_flight() {
    let shared = Shared::default();
    let mut s = start(&shared);
    send(&mut s.client, b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n").await;
    shared.slow_started.notified().await;
    s.shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!s.done.is_finished());
    shared.release.notify_one();
    let mut buf = BytesMut::new();
    let (head, body) = read_response(&mut s.client, &mut buf).await;
    assert!(head.contains("connection: close"), "{head}");
    assert_eq!(body, b"slow");
    assert!(read_to_end(&mut s.client).await.is_empty());
    s.done.await.unwrap().unwrap();
}

#[tokio::test]
async fn upgrade_hands_over_the_connection() {
    let shared = Shared::default();
    let mut s = start(&shared);
    // Bytes right after the head belong to the new protocol.
    send(
        &mut s.client,
        b"GET /upgrade HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nearly ",
    )
    .await;
    let mut buf = BytesMut::new();
    let (head, _) = read_response(&mut s.client, &mut buf).await;
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{head}"
    );
    assert!(head.contains("upgrade: echo"), "{head}");
    send(&mut s.client, b"late").await;
    while buf.len() < 10 {
        read_more(&mut s.client, &mut buf).await;
    }
    assert_eq!(&buf[..], b"early late");
    s.done.await.unwrap().unwrap();

    // Without the upgrade headers the route sees no OnUpgrade.
    let mut s = start(&shared);
    send(&mut s.client, b"GET /upgrade HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let (head, body) = read_response(&mut s.client, &mut BytesMut::new()).await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert_eq!(body, b"no upgrade");
}

#[tokio::test]
async fn header_timeouts_close_the_connection() {
    let shared = Shared::default();
    let options = Http1Options {
        read_header_timeout: Duration::from_millis(200),
        idle_timeout: Duration::from_millis(300),
        ..Http1Options::default()
    };
    // A head that never completes.
    let mut s = start_with(router(shared.clone()), options);
    send(&mut s.client, b"GET /hello HTTP/1.1\r\nHost:").await;
    let started = std::time::Instant::now();
    assert!(read_to_end(&mut s.client).await.is_empty());
    assert!(started.elapsed() < Duration::from_secs(5));
    s.done.await.unwrap().unwrap();

    // Idle after a request.
    let mut s = start_with(router(shared.clone()), options);
    send(&mut s.client, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut buf = BytesMut::new();
    read_response(&mut s.client, &mut buf).await;
    assert!(read_to_end(&mut s.client).await.is_empty());
    s.done.await.unwrap().unwrap();
}

#[tokio::test]
async fn over_tcp_pipelined_and_streaming() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shared = Shared::default();
    let app = router(shared.clone());
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        tcp.set_nodelay(true).unwrap();
        serve_connection(tcp, app, Http1Options::default(), token).await
    });
    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    send(
        &mut client,
        b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /stream HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    let mut buf = BytesMut::new();
    let (_, body) = read_response(&mut client, &mut buf).await;
    assert_eq!(body, b"hello");
    shared.stream_ready.notified().await;
    let tx = shared.stream.lock().unwrap().take().unwrap();
    tx.send(Bytes::from_static(b"event\n")).await.unwrap();
    drop(tx);
    let (_, body) = read_response(&mut client, &mut buf).await;
    assert_eq!(body, b"event\n");
    let (_, body) = read_response(&mut client, &mut buf).await;
    assert_eq!(body, b"hello");
    drop(client);
    server.await.unwrap().unwrap();
    shutdown.cancel();
}

#[test]
fn decoder_length_and_chunked() {
    let mut d = Decoder::length(5);
    let mut buf = BytesMut::from(&b"helloGET"[..]);
    assert_eq!(
        d.decode(&mut buf).unwrap(),
        Decoded::Data(Bytes::from_static(b"hello"))
    );
    assert!(d.is_done());
    assert_eq!(&buf[..], b"GET");

    // Chunked, fed one byte at a time.
    let input = b"3;a=b\r\nabc\r\nA\r\n0123456789\r\n0\r\nT: v\r\n\r\nNEXT";
    let mut d = Decoder::chunked();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for &b in input.iter() {
        buf.extend_from_slice(&[b]);
        while let Decoded::Data(data) = d.decode(&mut buf).unwrap() {
            out.extend_from_slice(&data);
        }
        if d.is_done() {
            break;
        }
    }
    assert!(d.is_done());
    assert_eq!(out, b"abc0123456789");

    for bad in [
        &b"\r\n"[..],
        b"g\r\n",
        b"10000000000000000\r\n",
        b"3\nabc",
        b"3\r\nabcX",
        b"0\r\n\n",
    ] {
        let mut d = Decoder::chunked();
        let mut buf = BytesMut::from(bad);
        let mut failed = false;
        for _ in 0..10 {
            match d.decode(&mut buf) {
                Err(_) => {
                    failed = true;
                    break;
                }
                Ok(Decoded::NeedMore) | Ok(Decoded::Done) => break,
                Ok(Decoded::Data(_)) => {}
            }
        }
        assert!(failed, "{bad:?}");
    }
}

/// What an idle watch costs in the connection's own state: the task holds this future, whose
/// size is that of its largest await point. The request phase is boxed (it was 1.9 KB inline);
/// what is left is the connection, the read-head and the response-writing states (~1.1 KB).
#[tokio::test]
async fn connection_state_is_small() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (tcp, _) = listener.accept().await.unwrap();
    let fut = serve_connection(
        tcp,
        router(Shared::default()),
        Http1Options::default(),
        CancellationToken::new(),
    );
    let size = std::mem::size_of_val(&fut);
    println!("connection future: {size} bytes");
    assert!(size <= 1400, "{size} bytes");
    drop(client);
}
