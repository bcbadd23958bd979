//! Protocol upgrades (`101 Switching Protocols`): the request extension a handler takes the
//! connection from, and the connection it gets.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;

use super::Http1Error;

/// In the extensions of a request that asks for a protocol upgrade (`Connection: upgrade` and an
/// `Upgrade` header). Once the handler's response, with status `101`, has been written,
/// [`OnUpgrade::upgraded`] gives the connection. With any other response it fails.
#[derive(Clone, Debug)]
pub struct OnUpgrade(Arc<Mutex<Option<oneshot::Receiver<Upgraded>>>>);

impl OnUpgrade {
    pub(crate) fn new() -> (Self, oneshot::Sender<Upgraded>) {
        let (tx, rx) = oneshot::channel();
        (OnUpgrade(Arc::new(Mutex::new(Some(rx)))), tx)
    }

    /// The upgraded connection, once the `101` response is out. Only one clone gets it.
    pub async fn upgraded(self) -> Result<Upgraded, Http1Error> {
        let rx = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        match rx {
            Some(rx) => rx.await.map_err(|_| Http1Error::NotUpgraded),
            None => Err(Http1Error::NotUpgraded),
        }
    }
}

/// The IO of a connection, whatever its type (TCP, TLS).
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// An upgraded connection: first the bytes the server had already read past the request head,
/// then the connection itself.
pub struct Upgraded {
    io: Box<dyn Io>,
    read_ahead: Bytes,
}

impl std::fmt::Debug for Upgraded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upgraded")
            .field("read_ahead", &self.read_ahead.len())
            .finish_non_exhaustive()
    }
}

impl Upgraded {
    pub(crate) fn new<I>(io: I, read_ahead: Bytes) -> Self
    where
        I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        Upgraded {
            io: Box::new(io),
            read_ahead,
        }
    }
}

impl AsyncRead for Upgraded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.read_ahead.is_empty() {
            let n = this.read_ahead.len().min(buf.remaining());
            buf.put_slice(&this.read_ahead[..n]);
            this.read_ahead.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Upgraded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// A `101` to an `Upgrade: echo` request whose connection, once handed over, echoes what the
/// client sends until it closes: the upgrade path as the tests and the fuzz target drive it.
pub fn echo_upgrade(on: OnUpgrade) -> axum::http::Response<axum::body::Body> {
    tokio::spawn(async move {
        if let Ok(io) = on.upgraded().await {
            let (mut r, mut w) = tokio::io::split(io);
            let _ = tokio::io::copy(&mut r, &mut w).await;
        }
    });
    let mut response = axum::http::Response::new(axum::body::Body::empty());
    *response.status_mut() = axum::http::StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("upgrade"),
    );
    headers.insert(
        axum::http::header::UPGRADE,
        axum::http::HeaderValue::from_static("echo"),
    );
    response
}
