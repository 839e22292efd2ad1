//! The stream under every channel a [`crate::Dialer`] opens: TCP, or TLS over TCP, that
//! tells HTTP/2 it takes no vectored writes.
//!
//! Why: HTTP/2 (the `h2` crate) sends a DATA frame larger than 256 bytes as a buffer of its
//! own in a `writev` when the stream says it supports vectored writes (TCP and rustls
//! streams do), and encodes no further frame until that write is done. A unary request
//! carrying a few hundred bytes (a forwarded write of a 256-byte value, an AppendEntries
//! with one such entry) then leaves in three writes — its HEADERS, its DATA, and the empty
//! frame that ends the stream — and requests in flight together cannot share one. On a
//! stream without vectored writes h2 copies frames of up to 1 KiB into its buffer: the
//! DATA leaves with the end of the stream, and with the frames of other requests queued
//! behind it; larger frames are still written without a copy. (The HEADERS still leave on
//! their own: hyper sends them before the request's body is ready.) The listening side does
//! the same for its answers (`regatta_api::listen`).
//!
//! TLS sits under this stream, not over it: h2 asks the stream it writes to, and a rustls
//! stream always says yes.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};
use tokio_rustls::client::TlsStream;

use crate::verdict::ReadAhead;

/// A connection to a peer, plaintext or TLS; see the module docs.
pub struct DialedStream(Inner);

enum Inner {
    Tcp(TcpStream),
    Tls(Box<ReadAhead<TlsStream<TcpStream>>>),
}

impl DialedStream {
    /// A plaintext connection over `stream`, a TCP connection dialed elsewhere.
    pub fn tcp(stream: TcpStream) -> Self {
        Self(Inner::Tcp(stream))
    }

    pub(crate) fn tls(stream: ReadAhead<TlsStream<TcpStream>>) -> Self {
        Self(Inner::Tls(Box::new(stream)))
    }

    /// Whether the connection speaks TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self.0, Inner::Tls(_))
    }
}

impl std::fmt::Debug for DialedStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DialedStream")
            .field("tls", &self.is_tls())
            .finish()
    }
}

impl AsyncRead for DialedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Inner::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for DialedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().0 {
            Inner::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Inner::Tcp(s) => Pin::new(s).poll_flush(cx),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().0 {
            Inner::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Inner::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        false
    }
}
