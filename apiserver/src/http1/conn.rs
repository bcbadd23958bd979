//! The connection loop: read a head, run the handler while feeding it the request body, write
//! the response (watching the read side while it streams), then the next request.

use std::future::{Future, poll_fn};
use std::io::IoSlice;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, ready};

use axum::body::Body;
use axum::http::header::{self, HeaderValue};
use axum::http::{Method, Request, Response, StatusCode, Version};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower_service::Service;

use super::body::{BodyMsg, Decoded, Decoder, RequestBody};
use super::head::{self, Framing, Head, Parsed, Refusal};
use super::stream_rt::{self, LongLived};
use super::upgrade::{OnUpgrade, Upgraded};
use super::{BoxError, Http1Error, Http1Options};

/// The read buffer's first size; it doubles as a head needs.
const INIT_BUFFER: usize = 1024;
/// How much a body read asks for at most.
const BODY_READ: usize = 64 * 1024;
/// Body frames and bytes gathered into one write at most.
const MAX_BATCH_FRAMES: usize = 64;
const MAX_BATCH_BYTES: usize = 256 * 1024;
/// After an error answer, or when closing with request bytes left unread, the connection
/// shuts its write side and reads (discarding) for up to this long before it closes, so the
/// client reads the answer instead of a reset (Go's `rstAvoidanceDelay`).
const LINGER: std::time::Duration = std::time::Duration::from_millis(500);
const LINGER_BYTES: usize = 4 << 20;
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
/// The answer when the service fails or answers `101` to a request that asked for no upgrade.
const INTERNAL_ERROR: &[u8] =
    b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

/// Serves HTTP/1.1 (and 1.0) requests on `io` with `service` until the client closes, a request
/// or response ends the connection, a timeout of `options` passes, or `shutdown` is cancelled
/// (at once when idle, else after the request in flight). Returns early, `Ok`, when a `101`
/// response hands the connection to the handler (see [`OnUpgrade`]).
///
/// Request extensions the caller wants (peer address, identity) are the service's to insert.
pub async fn serve_connection<I, S, B>(
    io: I,
    mut service: S,
    options: Http1Options,
    shutdown: CancellationToken,
) -> Result<(), Http1Error>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<Body>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut conn = Conn {
        io,
        buf: BytesMut::new(),
        options,
        shutdown,
        read_closed: false,
        started: Instant::now(),
    };
    let mut first = true;
    loop {
        let head = match conn.read_head(first).await? {
            HeadRead::Head(head) => head,
            HeadRead::Closed => return Ok(()),
            HeadRead::Refused(refusal) => {
                conn.refuse(refusal).await;
                return Ok(());
            }
        };
        first = false;
        // Boxed: the request's head, the handler's future and the response's parts live only
        // until the response is ready, not in the state a streaming response (an idle watch)
        // keeps for its whole life.
        let next = match Box::pin(conn.prepare(&mut service, head)).await? {
            Step::Done(next) => next,
            Step::Respond(reply) => match reply.long_lived.then(stream_rt::handle).flatten() {
                Some(rt) => {
                    // The connection moves to the stream runtime for the response and comes
                    // back after it; dropping this future (shutdown) aborts the response.
                    let task = AbortOnDrop(rt.spawn(async move {
                        let next = conn.respond(reply).await;
                        (conn, next)
                    }));
                    let (back, next) = task.await.map_err(|e| {
                        Http1Error::Io(std::io::Error::other(format!("response task: {e}")))
                    })?;
                    conn = back;
                    next?
                }
                None => conn.respond(reply).await?,
            },
        };
        match next {
            Next::KeepAlive => {}
            Next::Close { linger } => {
                conn.close(linger).await;
                return Ok(());
            }
            Next::Refused(refusal) => {
                conn.refuse(refusal).await;
                return Ok(());
            }
            Next::Upgrade(tx) => {
                let upgraded = Upgraded::new(conn.io, conn.buf.freeze());
                // The handler may have stopped waiting: then the connection just closes.
                let _ = tx.send(upgraded);
                return Ok(());
            }
        }
    }
}

struct Conn<I> {
    io: I,
    /// Bytes read and not yet used: the head being read, body bytes, pipelined requests. Empty
    /// (no allocation) while a response streams with nothing pending, and between requests.
    buf: BytesMut,
    options: Http1Options,
    shutdown: CancellationToken,
    /// The client sent EOF.
    read_closed: bool,
    started: Instant,
}

enum HeadRead {
    Head(Head),
    /// EOF, a timeout or shutdown before a whole head: close without an answer, as Go does.
    Closed,
    Refused(Refusal),
}

enum Next {
    KeepAlive,
    /// Close; `linger`: request bytes may be left unread.
    Close {
        linger: bool,
    },
    Refused(Refusal),
    Upgrade(oneshot::Sender<Upgraded>),
}

/// What [`Conn::prepare`] ends with.
enum Step<B> {
    Done(Next),
    Respond(Reply<B>),
}

/// A response ready to be written.
struct Reply<B> {
    head: Vec<u8>,
    body: B,
    out: Out,
    keep_alive: bool,
    /// The request body was not read to its end (`decoder` has the rest).
    body_left: bool,
    decoder: Decoder,
    /// The response is marked [`LongLived`]: written from the stream runtime.
    long_lived: bool,
}

/// A task aborted when its handle is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

/// How the response body is framed.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Out {
    None,
    Length(u64),
    Chunked,
    /// Until the connection closes (HTTP/1.0 with no known length).
    Close,
}

/// How writing a response ended.
#[derive(Debug, PartialEq)]
enum BodyEnd {
    Complete,
    /// EOF from the client while the response streamed.
    ClientGone,
}

/// The request body as the connection feeds it to the handler.
struct Feed {
    tx: Option<mpsc::Sender<BodyMsg>>,
    /// Fires when the handler first polls the body (only with `Expect: 100-continue`).
    want: Option<oneshot::Receiver<()>>,
    /// Bytes of `100 Continue` written; `None` when none is owed.
    continue_written: Option<usize>,
    decoder: Decoder,
    state: FeedState,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum FeedState {
    Active,
    /// The handler dropped the body (or never polled it after `Expect: 100-continue`).
    Abandoned,
    /// The body is malformed or the client went away in its middle.
    Failed,
    Complete,
}

impl Feed {
    fn none() -> Self {
        Feed {
            tx: None,
            want: None,
            continue_written: None,
            decoder: Decoder::Done,
            state: FeedState::Complete,
        }
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin + Send + 'static> Conn<I> {
    /// Waits for and reads the next request head.
    async fn read_head(&mut self, first: bool) -> Result<HeadRead, Http1Error> {
        let opts = self.options;
        if self.buf.is_empty() {
            // Go: the first request's header timeout runs from the connection's start; later
            // ones wait up to the idle timeout for a first byte. Nothing is held meanwhile.
            self.buf = BytesMut::new();
            let deadline = if first {
                self.started + opts.read_header_timeout
            } else {
                Instant::now() + opts.idle_timeout
            };
            tokio::select! {
                _ = self.shutdown.cancelled() => return Ok(HeadRead::Closed),
                _ = tokio::time::sleep_until(deadline) => return Ok(HeadRead::Closed),
                read = read_stack(&mut self.io, &mut self.buf) => {
                    if read? == 0 {
                        return Ok(HeadRead::Closed);
                    }
                }
            }
        }
        let deadline = if first { self.started } else { Instant::now() } + opts.read_header_timeout;
        loop {
            match head::parse(&self.buf) {
                Ok(Parsed::Complete(head, n)) => {
                    if n > opts.max_head_bytes {
                        return Ok(HeadRead::Refused(Refusal::TooLarge));
                    }
                    bytes::Buf::advance(&mut self.buf, n);
                    return Ok(HeadRead::Head(head));
                }
                Ok(Parsed::Partial) if self.buf.len() >= opts.max_head_bytes => {
                    return Ok(HeadRead::Refused(Refusal::TooLarge));
                }
                Ok(Parsed::Partial) => {}
                Err(refusal) => return Ok(HeadRead::Refused(refusal)),
            }
            if self.buf.capacity() == self.buf.len() {
                self.buf.reserve(self.buf.len().max(INIT_BUFFER));
            }
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return Ok(HeadRead::Closed),
                read = self.io.read_buf(&mut self.buf) => {
                    if read? == 0 {
                        return Ok(HeadRead::Closed);
                    }
                }
            }
        }
    }

    /// Serves one request whose head has been read, up to its response's head and body.
    async fn prepare<S, B>(&mut self, service: &mut S, head: Head) -> Result<Step<B>, Http1Error>
    where
        S: Service<Request<Body>, Response = Response<B>>,
        S::Error: Into<BoxError>,
        B: http_body::Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let framing = match head::request_framing(&head) {
            Ok(f) => f,
            Err(refusal) => return Ok(Step::Done(Next::Refused(refusal))),
        };
        let version = head.version;
        let http11 = version == Version::HTTP_11;
        let is_head = head.method == Method::HEAD;
        let mut keep_alive = if http11 {
            !head::has_token(&head.headers, &header::CONNECTION, "close")
        } else {
            head::has_token(&head.headers, &header::CONNECTION, "keep-alive")
        };
        let wants_upgrade = http11
            && head::has_token(&head.headers, &header::CONNECTION, "upgrade")
            && head.headers.contains_key(header::UPGRADE);
        let decoder = match framing {
            Framing::Length(n) => Decoder::length(n),
            Framing::Chunked => Decoder::chunked(),
        };
        // As Go: `100-continue` is honoured on HTTP/1.1 with a body; any other expectation
        // gets 417.
        let expect_continue = match head.headers.get(header::EXPECT) {
            None => false,
            Some(v) if v.as_bytes().eq_ignore_ascii_case(b"100-continue") => {
                http11 && !decoder.is_done()
            }
            Some(_) => return Ok(Step::Done(Next::Refused(Refusal::ExpectationFailed))),
        };

        let (body, mut feed) = if decoder.is_done() {
            (Body::empty(), Feed::none())
        } else {
            let (tx, rx) = mpsc::channel(1);
            let (want_tx, want_rx) = if expect_continue {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some(rx))
            } else {
                (None, None)
            };
            let body = RequestBody::new(rx, want_tx, decoder.remaining());
            let feed = Feed {
                tx: Some(tx),
                want: want_rx,
                continue_written: None,
                decoder,
                state: FeedState::Active,
            };
            (Body::new(body), feed)
        };
        let mut request = Request::new(body);
        *request.method_mut() = head.method;
        *request.uri_mut() = head.uri;
        *request.version_mut() = version;
        *request.headers_mut() = head.headers;
        let upgrade = if wants_upgrade {
            let (on_upgrade, tx) = OnUpgrade::new();
            request.extensions_mut().insert(on_upgrade);
            Some(tx)
        } else {
            None
        };

        let response = self.call(service, request, &mut feed).await?;
        // The handler is done with the body as far as this connection goes.
        feed.tx = None;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                let e: BoxError = e.into();
                tracing::debug!(error = %e, "service failed");
                self.write_all(INTERNAL_ERROR).await?;
                return Ok(Step::Done(Next::Close { linger: true }));
            }
        };

        let body_left = !feed.decoder.is_done();
        if body_left
            && (feed.state == FeedState::Failed
                || (expect_continue && feed.continue_written.is_none())
                || feed
                    .decoder
                    .remaining()
                    .is_some_and(|r| r > self.options.max_drain_bytes))
        {
            keep_alive = false;
        }
        if self.shutdown.is_cancelled() || self.read_closed {
            keep_alive = false;
        }

        let (mut parts, body) = response.into_parts();
        let status = parts.status;
        let headers = &mut parts.headers;
        if !headers.contains_key(header::DATE) {
            headers.insert(header::DATE, head::date());
        }
        if status == StatusCode::SWITCHING_PROTOCOLS {
            let Some(tx) = upgrade else {
                tracing::debug!("a 101 response to a request that asked for no upgrade");
                self.write_all(INTERNAL_ERROR).await?;
                return Ok(Step::Done(Next::Close { linger: true }));
            };
            let head = head::encode_response_head(Version::HTTP_11, status, headers);
            drop(parts);
            self.write_all(&head).await?;
            return Ok(Step::Done(Next::Upgrade(tx)));
        }
        if head::has_token(headers, &header::CONNECTION, "close") {
            keep_alive = false;
        }
        headers.remove(header::TRANSFER_ENCODING);
        let no_body = is_head
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        let out = if no_body {
            // A HEAD answer keeps the length a GET would have; 1xx, 204 and 304 carry none
            // (axum fills in `content-length: 0` from their empty bodies).
            if !is_head || status.is_informational() {
                headers.remove(header::CONTENT_LENGTH);
            }
            Out::None
        } else if let Some(n) = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| head::parse_length(v.as_bytes()))
        {
            Out::Length(n)
        } else {
            headers.remove(header::CONTENT_LENGTH);
            match http_body::Body::size_hint(&body).exact() {
                Some(n) => {
                    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
                    Out::Length(n)
                }
                None if http11 => {
                    headers.insert(
                        header::TRANSFER_ENCODING,
                        HeaderValue::from_static("chunked"),
                    );
                    Out::Chunked
                }
                None => {
                    keep_alive = false;
                    Out::Close
                }
            }
        };
        headers.remove(header::CONNECTION);
        if !keep_alive {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        } else if !http11 {
            headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        }
        let head = head::encode_response_head(version, status, headers);
        let long_lived = parts.extensions.get::<LongLived>().is_some();
        drop(parts);
        Ok(Step::Respond(Reply {
            long_lived,
            head,
            body,
            out,
            keep_alive,
            body_left,
            decoder: feed.decoder,
        }))
    }

    /// Writes a prepared response, then drains what the handler left of the request body.
    async fn respond<B>(&mut self, reply: Reply<B>) -> Result<Next, Http1Error>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let Reply {
            head,
            body,
            out,
            keep_alive,
            body_left,
            mut decoder,
            long_lived: _,
        } = reply;
        match self.write_body(head, body, out).await? {
            BodyEnd::Complete => {}
            BodyEnd::ClientGone => return Ok(Next::Close { linger: false }),
        }
        if !keep_alive {
            return Ok(Next::Close { linger: body_left });
        }
        if body_left {
            let budget = self.options.max_drain_bytes;
            let drained =
                tokio::time::timeout(self.options.idle_timeout, self.drain(&mut decoder, budget))
                    .await;
            if !matches!(drained, Ok(Ok(true))) {
                return Ok(Next::Close { linger: true });
            }
        }
        if self.buf.is_empty() {
            self.buf = BytesMut::new();
        }
        Ok(Next::KeepAlive)
    }

    /// Runs the handler while the body is fed to it (and, once it is, the read side is
    /// watched for EOF and pipelined bytes).
    async fn call<S, B>(
        &mut self,
        service: &mut S,
        request: Request<Body>,
        feed: &mut Feed,
    ) -> Result<Result<Response<B>, S::Error>, Http1Error>
    where
        S: Service<Request<Body>, Response = Response<B>>,
        S::Error: Into<BoxError>,
    {
        poll_fn(|cx| service.poll_ready(cx))
            .await
            .map_err(|e| Http1Error::Service(e.into()))?;
        let mut call = pin!(service.call(request));
        loop {
            tokio::select! {
                response = &mut call => return Ok(response),
                step = self.pump(feed) => step?,
            }
        }
    }

    /// One step of feeding the request body to the handler or, once that is over, of watching
    /// the read side.
    async fn pump(&mut self, feed: &mut Feed) -> Result<(), Http1Error> {
        if feed.state != FeedState::Active {
            return watch_read(
                &mut self.io,
                &mut self.buf,
                &mut self.read_closed,
                self.options.max_pipelined_bytes,
            )
            .await;
        }
        if let Some(want) = &mut feed.want {
            let wanted = want.await.is_ok();
            feed.want = None;
            if !wanted {
                // The body was dropped unpolled: the client may not send it at all.
                feed.state = FeedState::Abandoned;
                feed.tx = None;
                return Ok(());
            }
            feed.continue_written = Some(0);
        }
        if let Some(done) = feed.continue_written
            && done < CONTINUE.len()
        {
            // `write` is cancel-safe: progress is kept across steps.
            let n = self.io.write(&CONTINUE[done..]).await?;
            if n == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into());
            }
            feed.continue_written = Some(done + n);
            if done + n == CONTINUE.len() {
                self.io.flush().await?;
            }
            return Ok(());
        }
        let Some(tx) = &feed.tx else {
            feed.state = FeedState::Abandoned;
            return Ok(());
        };
        let Ok(permit) = tx.reserve().await else {
            feed.state = FeedState::Abandoned;
            feed.tx = None;
            return Ok(());
        };
        loop {
            match feed.decoder.decode(&mut self.buf) {
                Ok(Decoded::Data(data)) => {
                    let last = feed.decoder.is_done();
                    permit.send(Ok((data, last)));
                    if last {
                        feed.state = FeedState::Complete;
                    }
                    return Ok(());
                }
                Ok(Decoded::Done) => {
                    permit.send(Ok((Bytes::new(), true)));
                    feed.state = FeedState::Complete;
                    return Ok(());
                }
                Ok(Decoded::NeedMore) => {
                    let want = feed
                        .decoder
                        .remaining()
                        .map_or(BODY_READ, |r| usize::try_from(r).unwrap_or(BODY_READ))
                        .clamp(INIT_BUFFER, BODY_READ);
                    if self.buf.capacity() - self.buf.len() < want {
                        self.buf.reserve(want);
                    }
                    match self.io.read_buf(&mut self.buf).await {
                        Ok(0) => {
                            self.read_closed = true;
                            permit.send(Err(Http1Error::BodyEof));
                            feed.state = FeedState::Failed;
                            return Ok(());
                        }
                        Ok(_) => {}
                        Err(e) => {
                            permit.send(Err(Http1Error::Io(std::io::Error::new(
                                e.kind(),
                                e.to_string(),
                            ))));
                            feed.state = FeedState::Failed;
                            return Err(e.into());
                        }
                    }
                }
                Err(e) => {
                    permit.send(Err(e));
                    feed.state = FeedState::Failed;
                    return Ok(());
                }
            }
        }
    }

    /// Writes the head and the body; while waiting for the body, watches the read side.
    async fn write_body<B>(
        &mut self,
        head: Vec<u8>,
        body: B,
        out: Out,
    ) -> Result<BodyEnd, Http1Error>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        if out == Out::None {
            self.write_all(&head).await?;
            return Ok(BodyEnd::Complete);
        }
        let mut body = pin!(body);
        let mut head = Some(head);
        let mut written: u64 = 0;
        // One batch for the whole response: its frame list keeps its allocation.
        let mut batch = Batch::default();
        loop {
            batch.frames.clear();
            batch.bytes = 0;
            if head.is_some() {
                // Whatever is ready now goes with the head (a small answer: one write).
                poll_fn(|cx| {
                    let _ = batch.collect(body.as_mut(), cx);
                    Poll::Ready(())
                })
                .await;
            } else {
                if self.buf.is_empty() && self.buf.capacity() > 0 {
                    self.buf = BytesMut::new();
                }
                tokio::select! {
                    () = poll_fn(|cx| batch.collect(body.as_mut(), cx)) => {}
                    read = watch_read(
                        &mut self.io,
                        &mut self.buf,
                        &mut self.read_closed,
                        self.options.max_pipelined_bytes,
                    ) => {
                        read?;
                        if self.read_closed {
                            return Ok(BodyEnd::ClientGone);
                        }
                        continue;
                    }
                }
            }
            written += batch.bytes as u64;
            if let Out::Length(declared) = out
                && (written > declared || (batch.end && written != declared))
            {
                return Err(Http1Error::ResponseLength { declared });
            }
            let head = head.take();
            self.write_batch(head.as_deref(), &batch, out).await?;
            if let Some(e) = batch.error.take() {
                return Err(Http1Error::ResponseBody(e));
            }
            if batch.end {
                return Ok(BodyEnd::Complete);
            }
        }
    }

    /// One vectored write of the head (if any) and the batch's frames, framed as `out` says.
    async fn write_batch(
        &mut self,
        head: Option<&[u8]>,
        batch: &Batch,
        out: Out,
    ) -> Result<(), Http1Error> {
        let chunked = out == Out::Chunked;
        // The common case of a streaming response (one watch event): one chunk, written from
        // the stack, no allocation. Whatever the socket did not take goes the general way.
        let mut skip = 0;
        if let (None, true, [frame]) = (head, chunked, batch.frames.as_slice()) {
            let last: &[u8] = if batch.ends_body() {
                b"\r\n0\r\n\r\n"
            } else {
                b"\r\n"
            };
            let io = &mut self.io;
            let attempt = poll_fn(|cx| {
                let mut size = [0u8; 18];
                let n = hex_line(&mut size, frame.len());
                let slices = [
                    IoSlice::new(size.get(..n).unwrap_or_default()),
                    IoSlice::new(frame),
                    IoSlice::new(last),
                ];
                let total = n + frame.len() + last.len();
                match Pin::new(&mut *io).poll_write_vectored(cx, &slices) {
                    Poll::Ready(Ok(w)) => Poll::Ready(Ok((w, total))),
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                    // The socket is full: the general path waits for it.
                    Poll::Pending => Poll::Ready(Ok((0, total))),
                }
            })
            .await?;
            if attempt.0 == attempt.1 {
                self.io.flush().await?;
                return Ok(());
            }
            skip = attempt.0;
        }
        // Chunked: before each frame its size line (after the previous frame's CRLF), after
        // the last the CRLF, and the last chunk when the body ends.
        let mut framing = Vec::new();
        let mut marks = Vec::new();
        if chunked {
            for (i, frame) in batch.frames.iter().enumerate() {
                if i > 0 {
                    framing.extend_from_slice(b"\r\n");
                }
                push_hex(&mut framing, frame.len());
                framing.extend_from_slice(b"\r\n");
                marks.push(framing.len());
            }
            if !batch.frames.is_empty() {
                framing.extend_from_slice(b"\r\n");
            }
            if batch.ends_body() {
                framing.extend_from_slice(b"0\r\n\r\n");
            }
            marks.push(framing.len());
        }
        let mut slices = Vec::with_capacity(2 * batch.frames.len() + 2);
        if let Some(head) = head {
            slices.push(IoSlice::new(head));
        }
        let mut from = 0;
        for (i, frame) in batch.frames.iter().enumerate() {
            if chunked {
                let to = marks.get(i).copied().unwrap_or(framing.len());
                slices.push(IoSlice::new(framing.get(from..to).unwrap_or_default()));
                from = to;
            }
            slices.push(IoSlice::new(frame));
        }
        if chunked {
            slices.push(IoSlice::new(framing.get(from..).unwrap_or_default()));
        }
        slices.retain(|s| !s.is_empty());
        let mut slices = slices.as_mut_slice();
        IoSlice::advance_slices(&mut slices, skip);
        write_all_vectored(&mut self.io, slices).await?;
        self.io.flush().await?;
        Ok(())
    }

    /// Reads and discards the rest of a request body the handler left, up to `budget` bytes.
    /// True when it ended within that.
    async fn drain(&mut self, decoder: &mut Decoder, mut budget: u64) -> Result<bool, Http1Error> {
        loop {
            match decoder.decode(&mut self.buf)? {
                Decoded::Done => return Ok(true),
                Decoded::Data(data) => {
                    let n = data.len() as u64;
                    if n > budget {
                        return Ok(false);
                    }
                    budget -= n;
                }
                Decoded::NeedMore => {
                    if self.buf.capacity() - self.buf.len() < INIT_BUFFER {
                        self.buf
                            .reserve(INIT_BUFFER.max(self.buf.len()).min(BODY_READ));
                    }
                    if self.io.read_buf(&mut self.buf).await? == 0 {
                        self.read_closed = true;
                        return Ok(false);
                    }
                }
            }
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> Result<(), Http1Error> {
        self.io.write_all(bytes).await?;
        self.io.flush().await?;
        Ok(())
    }

    /// Answers a refused head in plain text, then closes.
    async fn refuse(&mut self, refusal: Refusal) {
        tracing::debug!(?refusal, "refusing a request head");
        if self.write_all(&refusal.response()).await.is_ok() {
            self.close(true).await;
        }
    }

    /// Ends the connection: shuts the write side and, with `linger`, reads what the client
    /// still sends for a little while, so the last answer is read rather than reset.
    async fn close(&mut self, linger: bool) {
        let _ = self.io.shutdown().await;
        if !linger || self.read_closed {
            return;
        }
        self.buf = BytesMut::new();
        let _ = tokio::time::timeout(LINGER, async {
            let mut discarded = 0;
            while discarded < LINGER_BYTES {
                match read_stack(&mut self.io, &mut self.buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => discarded += n,
                }
                self.buf.clear();
            }
        })
        .await;
    }
}

/// Body frames ready at once.
#[derive(Default)]
struct Batch {
    frames: Vec<Bytes>,
    bytes: usize,
    end: bool,
    error: Option<BoxError>,
}

impl Batch {
    /// The body ended without an error: the last chunk follows the frames.
    fn ends_body(&self) -> bool {
        self.end && self.error.is_none()
    }

    /// Polls the body for frames until it has none ready, ends, fails, or the batch is full.
    /// Pending only when nothing at all was gathered.
    fn collect<B>(&mut self, mut body: Pin<&mut B>, cx: &mut Context<'_>) -> Poll<()>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        loop {
            if self.frames.len() >= MAX_BATCH_FRAMES || self.bytes >= MAX_BATCH_BYTES {
                return Poll::Ready(());
            }
            match body.as_mut().poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    // Trailers are not sent (the client did not ask for them).
                    if let Ok(data) = frame.into_data()
                        && !data.is_empty()
                    {
                        self.bytes += data.len();
                        self.frames.push(data);
                    }
                    if body.is_end_stream() {
                        self.end = true;
                        return Poll::Ready(());
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    self.error = Some(e.into());
                    self.end = true;
                    return Poll::Ready(());
                }
                Poll::Ready(None) => {
                    self.end = true;
                    return Poll::Ready(());
                }
                Poll::Pending if self.frames.is_empty() => return Poll::Pending,
                Poll::Pending => return Poll::Ready(()),
            }
        }
    }
}

/// `n` in hex and CRLF, a chunk's size line, into `out`; returns its length.
fn hex_line(out: &mut [u8; 18], n: usize) -> usize {
    let mut tmp = [0u8; 16];
    let digits = hex_digits(&mut tmp, n);
    let len = digits.len();
    out[..len].copy_from_slice(digits);
    out[len] = b'\r';
    out[len + 1] = b'\n';
    len + 2
}

/// `n`'s lowercase hex digits, written at the end of `tmp`.
fn hex_digits(tmp: &mut [u8; 16], n: usize) -> &[u8] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut i = tmp.len();
    let mut n = n;
    loop {
        i -= 1;
        tmp[i] = DIGITS[n & 0xf];
        n >>= 4;
        if n == 0 || i == 0 {
            break;
        }
    }
    &tmp[i..]
}

fn push_hex(out: &mut Vec<u8>, n: usize) {
    let mut tmp = [0u8; 16];
    out.extend_from_slice(hex_digits(&mut tmp, n));
}

/// Reads into a transient stack buffer and appends what came to `buf`: a connection waiting
/// for bytes holds no buffer of its own.
async fn read_stack<I: AsyncRead + Unpin>(
    io: &mut I,
    buf: &mut BytesMut,
) -> std::io::Result<usize> {
    poll_fn(|cx| {
        let mut tmp = [0u8; INIT_BUFFER];
        let mut read = ReadBuf::new(&mut tmp);
        ready!(Pin::new(&mut *io).poll_read(cx, &mut read))?;
        buf.extend_from_slice(read.filled());
        Poll::Ready(Ok(read.filled().len()))
    })
    .await
}

/// Watches the read side while a request is handled or a response streams: bytes are kept for
/// the next request (up to `max`, then reading pauses), EOF sets `read_closed` (after which this
/// waits forever).
async fn watch_read<I: AsyncRead + Unpin>(
    io: &mut I,
    buf: &mut BytesMut,
    read_closed: &mut bool,
    max: usize,
) -> Result<(), Http1Error> {
    if *read_closed || buf.len() >= max {
        return std::future::pending().await;
    }
    if read_stack(io, buf).await? == 0 {
        *read_closed = true;
    }
    Ok(())
}

/// `write_all` over several slices, each written vectored as far as the IO takes them.
async fn write_all_vectored<I: AsyncWrite + Unpin>(
    io: &mut I,
    slices: &mut [IoSlice<'_>],
) -> std::io::Result<()> {
    let mut slices = slices;
    while !slices.is_empty() {
        let n = io.write_vectored(slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, n);
    }
    Ok(())
}
