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

/// Serves `router` on `threads` event loops of their own (one single-threaded tokio runtime
/// per OS thread), each taking every `threads`-th connection `incoming` accepts, until
/// `shutdown` is cancelled; then each loop drains its connections as tonic does. With
/// `threads == 0` the router is served on the caller's runtime.
///
/// Why: on the multi-thread runtime, hyper runs every HTTP/2 stream as a task of its own,
/// which the work-stealing scheduler may run on another thread than the connection's task,
/// so each request costs cross-thread wake-ups (futex calls, context switches, cache
/// lines moving between cores). A connection whose tasks all stay on one thread does
/// without; measured on an edge serving point reads: ~15% less CPU per read (see
/// benchmarks/README.md). Requests are still served in parallel, one loop per thread.
pub async fn serve_on_threads<L, ResBody>(
    router: tonic::transport::server::Router<L>,
    incoming: impl Stream<Item = io::Result<Connection>>,
    threads: usize,
    name: &str,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<(), ServeError>
where
    L: tower::Layer<tonic::service::Routes> + Clone + Send + 'static,
    L::Service: tower::Service<http::Request<tonic::body::Body>, Response = http::Response<ResBody>>
        + Clone
        + Send
        + 'static,
    <L::Service as tower::Service<http::Request<tonic::body::Body>>>::Future: Send,
    <L::Service as tower::Service<http::Request<tonic::body::Body>>>::Error:
        Into<Box<dyn std::error::Error + Send + Sync>> + Send,
    ResBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    ResBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if threads == 0 {
        let token = shutdown.clone();
        return router
            .serve_with_incoming_shutdown(incoming, async move { token.cancelled().await })
            .await
            .map_err(|e| ServeError(e.to_string()));
    }
    let mut loops = Vec::with_capacity(threads);
    for i in 0..threads {
        let (hand, taken) = tokio::sync::mpsc::unbounded_channel::<std::net::TcpStream>();
        let (done, finished) = tokio::sync::oneshot::channel();
        let router = router.clone();
        let token = shutdown.clone();
        std::thread::Builder::new()
            .name(format!("{name}-{i}"))
            .spawn(move || {
                let _ = done.send(serve_loop(router, taken, token));
            })
            .map_err(|e| ServeError(format!("starting a {name} thread: {e}")))?;
        loops.push((hand, finished));
    }
    let mut incoming = std::pin::pin!(incoming);
    let mut next = 0usize;
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = incoming.next() => accepted,
        };
        let stream = match accepted {
            None => break,
            Some(Ok(Connection(stream))) => stream,
            Some(Err(e)) => {
                // Out of descriptors and the like: the listener itself is fine, so the
                // server goes on after a pause rather than spinning on the error.
                tracing::warn!(error = %e, server = name, "accepting a connection failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        match stream.into_std() {
            Ok(stream) => {
                // A loop that has stopped reports why below; its connections are refused.
                let _ = loops[next % threads].0.send(stream);
                next = next.wrapping_add(1);
            }
            Err(e) => tracing::warn!(error = %e, server = name, "handing a connection over failed"),
        }
    }
    let mut first_error = None;
    for (hand, finished) in loops {
        drop(hand);
        let outcome = finished
            .await
            .unwrap_or_else(|_| Err(ServeError(format!("a {name} thread panicked"))));
        if let Err(e) = outcome {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// One event loop of [`serve_on_threads`]: runs on its own thread until its connections are
/// drained after shutdown.
fn serve_loop<L, ResBody>(
    router: tonic::transport::server::Router<L>,
    taken: tokio::sync::mpsc::UnboundedReceiver<std::net::TcpStream>,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<(), ServeError>
where
    L: tower::Layer<tonic::service::Routes> + Clone + Send + 'static,
    L::Service: tower::Service<http::Request<tonic::body::Body>, Response = http::Response<ResBody>>
        + Clone
        + Send
        + 'static,
    <L::Service as tower::Service<http::Request<tonic::body::Body>>>::Future: Send,
    <L::Service as tower::Service<http::Request<tonic::body::Body>>>::Error:
        Into<Box<dyn std::error::Error + Send + Sync>> + Send,
    ResBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    ResBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ServeError(format!("starting an event loop: {e}")))?;
    runtime.block_on(async move {
        let incoming = tokio_stream::wrappers::UnboundedReceiverStream::new(taken)
            .map(|stream| TcpStream::from_std(stream).map(Connection));
        router
            .serve_with_incoming_shutdown(incoming, async move { shutdown.cancelled().await })
            .await
            .map_err(|e| ServeError(e.to_string()))
    })
}

/// A gRPC server that could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ServeError(String);
