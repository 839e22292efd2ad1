//! Waiting for the server's verdict on a TLS 1.3 connection before handing it over.
//!
//! In TLS 1.3 the client's handshake ends before the server has looked at the client's
//! certificate: a server that refuses it (none given, or signed by a CA it does not trust)
//! says so with an alert right after. Read by the HTTP/2 connection, that alert is turned
//! into a bare "connection closed" or a string, and the caller learns only that its call
//! failed. So the dialer reads the server's first bytes itself (a gRPC server speaks first:
//! its HTTP/2 SETTINGS): a refusal fails the connect with the TLS error (`received fatal
//! alert: CertificateRequired`), and the bytes of an accepted connection are replayed to
//! the HTTP/2 client.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// How long the server may take to speak first before the connection is handed over
/// without its verdict (a server that waits for the client: its refusal then surfaces on
/// the first call).
const SERVER_SPEAKS_FIRST: Duration = Duration::from_secs(5);

/// A stream whose first bytes were read ahead, replayed before the rest.
pub(crate) struct ReadAhead<S> {
    head: Vec<u8>,
    at: usize,
    inner: S,
}

/// Waits for the server's first bytes on `stream` when its handshake was TLS 1.3 (in TLS
/// 1.2 the client certificate is judged inside the handshake); a TLS alert or a closed
/// connection is the error.
pub(crate) async fn await_verdict<S>(
    mut stream: tokio_rustls::client::TlsStream<S>,
) -> io::Result<ReadAhead<tokio_rustls::client::TlsStream<S>>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let tls13 = stream.get_ref().1.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3);
    let mut head = Vec::new();
    if tls13 {
        let mut buf = vec![0; 16 * 1024];
        match tokio::time::timeout(SERVER_SPEAKS_FIRST, stream.read(&mut buf)).await {
            Err(_) => {}
            Ok(Ok(0)) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection right after the TLS handshake",
                ));
            }
            Ok(Ok(n)) => {
                buf.truncate(n);
                head = buf;
            }
            Ok(Err(e)) => return Err(e),
        }
    }
    Ok(ReadAhead {
        head,
        at: 0,
        inner: stream,
    })
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadAhead<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.head.len() {
            let n = (this.head.len() - this.at).min(buf.remaining());
            buf.put_slice(&this.head[this.at..this.at + n]);
            this.at += n;
            if this.at == this.head.len() {
                this.head = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadAhead<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn bytes_read_ahead_are_replayed_before_the_rest() {
        let (mut server, client) = tokio::io::duplex(64);
        server.write_all(b"world").await.expect("write");
        let mut ahead = ReadAhead {
            head: b"hello ".to_vec(),
            at: 0,
            inner: client,
        };
        drop(server);
        let mut all = String::new();
        ahead.read_to_string(&mut all).await.expect("read");
        assert_eq!(all, "hello world");
    }
}
