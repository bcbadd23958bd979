//! The HTTPS serving loop: accept, TLS handshake (bounded), client certificate → [`Identity`],
//! HTTP/2 when ALPN chose `h2`, else HTTP/1.1, graceful shutdown.
//!
//! The protocol comes from ALPN, as Go's `net/http` server does over TLS, not from hyper-util's
//! auto builder: that one sniffs a 24-byte prefix for the HTTP/2 preface first, after which
//! hyper doubles each HTTP/1.1 connection's read buffer to 16 KiB (the largest part of an idle
//! watch's memory). HTTP/1.1 connections do not take protocol upgrades: nothing serves one yet,
//! and hyper-util's graceful-shutdown watcher does not accept an upgradeable connection. When
//! exec/attach/port-forward arrive, HTTP/1.1 needs `with_upgrades()` and its own
//! graceful-shutdown wrapper.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower_service::Service;

use super::Identity;
use super::certs::subject_identity;

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
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1.timer(TokioTimer::new());
    let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    http2
        .timer(TokioTimer::new())
        .max_concurrent_streams(options.http2_max_concurrent_streams);
    let builders = Arc::new(Builders { http1, http2 });
    let graceful = GracefulShutdown::new();
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
            builders: builders.clone(),
            watcher: graceful.watcher(),
            shutdown: shutdown.clone(),
            force_close: force_close.clone(),
            handshake_timeout: options.handshake_timeout,
        };
        tokio::spawn(conn.run(tcp, remote));
    }
    drop(listener);

    let open = graceful.count();
    if open > 0 {
        tracing::info!(connections = open, grace = ?options.grace_period, "draining connections");
    }
    if tokio::time::timeout(options.grace_period, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("grace period over; closing the remaining connections");
        force_close.cancel();
    }
}

/// The HTTP/1.1 and HTTP/2 connection settings.
struct Builders {
    http1: hyper::server::conn::http1::Builder,
    http2: hyper::server::conn::http2::Builder<TokioExecutor>,
}

/// One accepted connection and what it needs.
struct Conn {
    acceptor: TlsAcceptor,
    app: Router,
    builders: Arc<Builders>,
    watcher: Watcher,
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

        let app = self.app;
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
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
        let io = TokioIo::new(stream);
        if h2 {
            let conn = self.builders.http2.serve_connection(io, service);
            drive(self.watcher.watch(conn), &self.force_close, remote).await;
        } else {
            let conn = self.builders.http1.serve_connection(io, service);
            drive(self.watcher.watch(conn), &self.force_close, remote).await;
        }
    }
}

/// Run a connection to its end, or until the grace period is over.
async fn drive<F, E>(conn: F, force_close: &CancellationToken, remote: SocketAddr)
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
