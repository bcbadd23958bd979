//! HTTP/1.1 serving: our own connection loop, used for plain HTTP (`server::serve_plain`) and for
//! TLS connections where ALPN did not pick `h2` (`tls::serve`). HTTP/2 stays on hyper.
//!
//! Why not hyper's HTTP/1 server: it keeps, per connection, an 8 KiB read buffer (held while it
//! polls for EOF during a streaming response) and an 8 KiB write buffer, neither configurable
//! smaller, which made up most of an idle watch's memory. This loop holds, per idle watch, no
//! buffer at all: the read buffer starts at 1 KiB, grows as a head needs, and is released once a
//! response streams with nothing pipelined behind it (the read side is then watched through a
//! transient stack buffer); body frames are written as they are (`write_vectored` of the chunk
//! size line, the frame's `Bytes`, shared between watchers, and CRLF), with no copy.
//!
//! Behaviour follows Go's `net/http` server as kube-apiserver configures it:
//!
//! - heads up to [`Http1Options::max_head_bytes`] (1 MiB, `MaxHeaderBytes`), else `431`; a
//!   malformed head gets Go's plain-text `400 Bad Request` (`501` for a transfer coding other
//!   than `chunked`), `Connection: close`, then the connection closes;
//! - request bodies by `Content-Length` or `chunked` (extensions and trailers tolerated), streamed
//!   to the handler ([`RequestBody`]); `Expect: 100-continue` is answered when the handler first
//!   polls the body; a body the handler left unread is drained up to 256 KiB after the response
//!   (Go's `maxPostHandlerReadBytes`), else the connection closes;
//! - responses framed by `content-length` when the body's size is known, else `chunked` (HTTP/1.1)
//!   or by closing (HTTP/1.0); no body for `HEAD`, 1xx, 204, 304; a cached `date` header;
//! - keep-alive by HTTP/1.1 / HTTP/1.0 rules and `Connection: close`;
//! - while a response streams, the read side is watched: EOF or an error ends the response (the
//!   body is dropped, which ends a watch); pipelined bytes are kept, up to
//!   [`Http1Options::max_pipelined_bytes`], for the next request;
//! - timeouts: [`Http1Options::read_header_timeout`] and [`Http1Options::idle_timeout`];
//! - graceful shutdown: when the token is cancelled an idle connection closes; a request in
//!   flight is answered with `connection: close`, then the connection closes;
//! - protocol upgrades: a request asking for one carries an [`OnUpgrade`]; a `101` response hands
//!   the connection (and any bytes read past the head) over as an [`Upgraded`];
//! - a response marked [`LongLived`] (a watch) is written from a runtime of its own, so the
//!   fan-out of an event to many watchers does not queue in front of request handling (see
//!   `stream_rt`).

mod body;
mod conn;
mod head;
mod stream_rt;
mod upgrade;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::task::{Context, Poll};
use std::time::Duration;

pub use body::RequestBody;
pub use conn::serve_connection;
pub use stream_rt::LongLived;
pub use upgrade::{OnUpgrade, Upgraded, echo_upgrade};

/// A boxed error, as `http_body` and `tower` pass them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Limits of one HTTP/1.1 connection. The defaults are kube-apiserver's: its `http.Server` in
/// `k8s.io/apiserver/pkg/server/secure_serving.go` (`SecureServingInfo.Serve`) sets
/// `MaxHeaderBytes: 1 << 20`, `IdleTimeout: 90 * time.Second` ("matches
/// http.DefaultTransport keep-alive timeout") and `ReadHeaderTimeout: 32 * time.Second` ("just
/// shy of requestTimeoutUpperBound"), and no read or write timeout.
#[derive(Clone, Copy, Debug)]
pub struct Http1Options {
    /// Largest request head (request line and headers); a larger one gets `431`.
    pub max_head_bytes: usize,
    /// A request head must be complete this long after its first byte (for the first request
    /// of a connection: after the connection started, as Go does), else the connection closes.
    pub read_header_timeout: Duration,
    /// Between requests, the next one must start within this long, else the connection closes.
    pub idle_timeout: Duration,
    /// Bytes read ahead (pipelined requests) kept while a response is in progress; past this
    /// the connection stops reading until the response ends.
    pub max_pipelined_bytes: usize,
    /// A request body the handler did not read is drained up to this many bytes after the
    /// response so the connection can be reused; a longer one closes the connection.
    pub max_drain_bytes: u64,
}

impl Default for Http1Options {
    fn default() -> Self {
        Http1Options {
            max_head_bytes: 1 << 20,
            read_header_timeout: Duration::from_secs(32),
            idle_timeout: Duration::from_secs(90),
            max_pipelined_bytes: 64 * 1024,
            max_drain_bytes: 256 * 1024,
        }
    }
}

/// What ends an HTTP/1.1 connection, or a request body, with an error.
#[derive(Debug, thiserror::Error)]
pub enum Http1Error {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("invalid chunked body: {0}")]
    Chunked(&'static str),
    #[error("the client closed the connection in the middle of the request body")]
    BodyEof,
    #[error("the request body was abandoned (the connection stopped reading it)")]
    BodyAbandoned,
    #[error("response body: {0}")]
    ResponseBody(#[source] BoxError),
    #[error("the response body's length differs from its content-length ({declared})")]
    ResponseLength { declared: u64 },
    #[error("service: {0}")]
    Service(#[source] BoxError),
    #[error("the connection was not upgraded")]
    NotUpgraded,
}

/// A `tower_service::Service` from a closure (the callers insert per-connection extensions
/// such as `ConnectInfo` before handing the request to the router).
pub fn service_fn<F>(f: F) -> ServiceFn<F> {
    ServiceFn(f)
}

/// See [`service_fn`].
#[derive(Clone, Debug)]
pub struct ServiceFn<F>(F);

impl<F, Fut, Req, Res, E> tower_service::Service<Req> for ServiceFn<F>
where
    F: FnMut(Req) -> Fut,
    Fut: Future<Output = Result<Res, E>>,
{
    type Response = Res;
    type Error = E;
    type Future = Fut;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Req) -> Fut {
        (self.0)(req)
    }
}
