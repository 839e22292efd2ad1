//! The listening side of every gRPC server a node runs: accepted TCP connections, handed to
//! tonic through [`bind`].
//!
//! Why not tonic's own listener: HTTP/2 (the `h2` crate) sends a DATA frame larger than a
//! small threshold — 256 bytes when the socket says it supports vectored writes, as a TCP
//! socket does — as a separate buffer in a `writev`, and accepts no further frame until that
//! write is done. A unary response carrying a value of a few hundred bytes then goes out as
//! two system calls: headers and data, then the trailers (`grpc-status`) in a 10-byte write
//! of their own, and no other response can share either write. Measured on an edge serving
//! 256-byte values: about half of its writes were those 10-byte trailers. A connection that
//! reports no vectored writes raises the threshold to 1 KiB, so such responses are copied
//! into the connection's buffer whole — trailers and responses of other streams included —
//! and leave in one `write`. Larger values are still sent without a copy.

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::{Connected, TcpConnectInfo, TcpIncoming};

/// Binds `addr` now (so a port in use is reported at start-up) and yields its accepted
/// connections with `TCP_NODELAY` set, as tonic's default listener does.
pub fn bind(addr: SocketAddr) -> io::Result<impl Stream<Item = io::Result<Connection>>> {
    let incoming = TcpIncoming::bind(addr)?.with_nodelay(Some(true));
    Ok(incoming.map(|accepted| accepted.map(Connection)))
}

/// One accepted connection; see the module docs for why it declines vectored writes.
#[derive(Debug)]
pub struct Connection(TcpStream);

impl Connected for Connection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.0.connect_info()
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }
}
