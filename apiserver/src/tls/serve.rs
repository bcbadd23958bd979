//! The HTTPS serving loop: accept, TLS handshake (bounded), client certificate → [`Identity`],
//! HTTP/2 when ALPN chose `h2`, else HTTP/1.1, graceful shutdown.
//!
//! The protocol comes from ALPN, as Go's `net/http` server does over TLS. HTTP/2 is hyper's;
//! HTTP/1.1 is our own connection loop ([`crate::http1`]): it holds no buffer for an idle watch
//! (hyper's keeps 8 KiB to read and 8 KiB to write per connection) and takes protocol upgrades
//! (`101`, [`crate::http1::OnUpgrade`]) for exec/attach/port-forward.
//!
//! Shutdown: the listener closes; HTTP/1.1 connections close when idle or after the request in
//! flight, HTTP/2 connections get a GOAWAY and finish their streams; connections still open
//! when the grace period ends are closed. Upgraded connections belong to their handlers and
//! are not waited for (as Go's hijacked connections).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;

use super::Identity;
use super::certs::subject_identity;
use crate::http1::{self, Http1Options};

/// Limits of [`serve_tls_with`].
#[derive(Clone, Debug)]
pub struct ServeTlsOptions {
    /// A TLS handshake slower than this is dropped (default 10 s).
    pub handshake_timeout: Duration,
    /// After shutdown is asked, connections get this long to finish in-flight requests before
    /// they are closed (default 30 s). Watch streams end only when the app ends them (e.g. on the
    /// same token) or at this deadline.
    pub grace_period: Duration,
    /// HTTP/2 streams per connection (default 1000, upstream's `--http2-max-streams-per-connection`).
    pub http2_max_concurrent_streams: u32,
}

impl Default for ServeTlsOptions {
    fn default() -> Self {
        ServeTlsOptions {
            handshake_timeout: Duration::from_secs(10),
            grace_period: Duration::from_secs(30),
            http2_max_concurrent_streams: 1000,
        }
    }
}

/// [`serve_tls_with`] with [`ServeTlsOptions::default`].
pub async fn serve_tls(
    listener: TcpListener,
    app: Router,
    tls: Arc<ServerConfig>,
    shutdown: CancellationToken,
) {
    serve_tls_with(listener, app, tls, shutdown, ServeTlsOptions::default()).await
}

/// Serves `app` over TLS on `listener` until `shutdown` is cancelled, then stops accepting,
/// lets open connections finish their requests for up to the grace period, closes the rest and
/// returns.
///
/// Each request carries, in its extensions, `ConnectInfo<SocketAddr>` (the peer) and, when the
/// client presented a certificate the config's verifier accepted, an [`Identity`] (subject CN as
/// user; subject O values plus `system:authenticated` as groups). A failed or slow handshake
/// drops that connection only.
pub async fn serve_tls_with(
    listener: TcpListener,
    app: Router,
    tls: Arc<ServerConfig>,
    shutdown: CancellationToken,
    options: ServeTlsOptions,
) {
    let acceptor = TlsAcceptor::from(tls);
    let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    http2
        .timer(TokioTimer::new())
        .max_concurrent_streams(options.http2_max_concurrent_streams);
    let http2 = Arc::new(http2);
    let connections = TaskTracker::new();
    // Cancelled when the grace period is over: closes whatever is still open.
    let force_close = CancellationToken::new();

    loop {
        let (tcp, remote) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Per-connection errors (reset before accept) and resource limits (EMFILE)
                    // alike: log, back off a little, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let conn = Conn {
            acceptor: acceptor.clone(),
            app: app.clone(),
            http2: http2.clone(),
            http1: Http1Options::default(),
            shutdown: shutdown.clone(),
            force_close: force_close.clone(),
            handshake_timeout: options.handshake_timeout,
        };
        connections.spawn(conn.run(tcp, remote));
    }
    drop(listener);
    connections.close();

    let open = connections.len();
    if open > 0 {
        tracing::info!(connections = open, grace = ?options.grace_period, "draining connections");
    }
    if tokio::time::timeout(options.grace_period, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("grace period over; closing the remaining connections");
        force_close.cancel();
    }
}

/// One accepted connection and what it needs.
struct Conn {
    acceptor: TlsAcceptor,
    app: Router,
    http2: Arc<hyper::server::conn::http2::Builder<TokioExecutor>>,
    http1: Http1Options,
    shutdown: CancellationToken,
    force_close: CancellationToken,
    handshake_timeout: Duration,
}

impl Conn {
    async fn run(self, tcp: TcpStream, remote: SocketAddr) {
        let _ = tcp.set_nodelay(true);
        let handshake = tokio::time::timeout(self.handshake_timeout, self.acceptor.accept(tcp));
        let stream = tokio::select! {
            _ = self.shutdown.cancelled() => return,
            result = handshake => match result {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(%remote, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%remote, "TLS handshake timed out");
                    return;
                }
            },
        };
        let identity = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|leaf| identity_from_cert(leaf.as_ref()));

        let mut app = self.app;
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
        if !h2 {
            let service = http1::service_fn(move |mut req: axum::extract::Request| {
                let extensions = req.extensions_mut();
                extensions.insert(ConnectInfo(remote));
                if let Some(identity) = &identity {
                    extensions.insert(identity.clone());
                }
                app.call(req)
            });
            // Boxed: the TLS stream is large, and a value moved into a future takes its room
            // in every future it passes through; the idle watch's task stays small.
            let conn =
                http1::serve_connection(Box::new(stream), service, self.http1, self.shutdown);
            drive(pin!(conn), &self.force_close, remote).await;
            return;
        }
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            let extensions = req.extensions_mut();
            extensions.insert(ConnectInfo(remote));
            if let Some(identity) = &identity {
                extensions.insert(identity.clone());
            }
            let mut app = app.clone();
            async move {
                let response: Result<_, Infallible> = app.call(req).await;
                response
            }
        });
        let conn = self.http2.serve_connection(TokioIo::new(stream), service);
        let mut conn = pin!(conn);
        // Shutdown: a GOAWAY, then the streams in flight finish.
        let graceful = async {
            tokio::select! {
                result = conn.as_mut() => return result,
                _ = self.shutdown.cancelled() => {}
            }
            conn.as_mut().graceful_shutdown();
            conn.as_mut().await
        };
        drive(pin!(graceful), &self.force_close, remote).await;
    }
}

/// Run a connection to its end, or until the grace period is over. (Pinned by the caller, so
/// the connection's future is not moved into this one's.)
async fn drive<F, E>(conn: Pin<&mut F>, force_close: &CancellationToken, remote: SocketAddr)
where
    F: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    tokio::select! {
        result = conn => {
            if let Err(e) = result {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
            }
        }
        _ = force_close.cancelled() => {}
    }
}

/// The identity in a verified client certificate; `None` without a CN.
fn identity_from_cert(der: &[u8]) -> Option<Identity> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let (user, groups) = subject_identity(&cert);
    let user = user.filter(|u| !u.is_empty())?;
    Some(Identity::new(user, groups))
}
