//! The listening side of every gRPC server a node runs: accepted TCP connections, handed to
//! tonic through [`bind`], or through [`bind_tls`] after a TLS handshake (the public API on
//! an `https://` address). TLS sits under [`Connection`], so the handshake and idle timers
//! and the write coalescing below see the HTTP/2 bytes, not the encrypted ones.
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
//! and leave in one `write`. Larger values are still sent without a copy. The channels a
//! node opens to others get the same from `regatta_tls::Dialer` (its `DialedStream`).
//!
//! Even so, under load the public API sent one `sendto` per answer: each stream's handler
//! runs as its own task and wakes the connection when its answer is ready, and the
//! connection writes and flushes what it has right away. On the edge, `sendto` (with the
//! loopback receive it runs inline) was 23% of the CPU at ~46k reads/s. A
//! [`Writes::Coalesced`] connection keeps what HTTP/2 writes until it flushes, and a
//! flush first goes to the back of the runtime's queue once, so the handlers already
//! scheduled finish and their answers leave in the same write. With `yield_now` as that
//! step, ~0.45 `sendto` per answer and edge-read 52.8–60.7k reads/s instead of 45.3–47.8k;
//! with the connection waking itself (see `poll_flush`), ~0.13 `sendto` per answer, and on
//! an edge with one runtime worker 130–133k reads/s at p99 0.79–0.89 ms instead of
//! 100–104k at p99 0.81–1.09 ms. Raft and replication listeners write at once
//! ([`Writes::Immediate`]): their traffic is few streams, where waiting buys nothing.
//!
//! Limits ([`ListenLimits`]): a listener holds at most `max_connections` connections; one
//! more is closed as soon as it is accepted (and counted), so a flood of connections costs
//! an accept and a close each, never a queue. A new connection has `handshake_timeout` to
//! send the HTTP/2 preface and its first SETTINGS frame, so a peer trickling bytes (or
//! sending none) is closed; after that, hyper's keepalive pings drop a peer that stops
//! answering. A connection with no request in flight and none started during a whole
//! `idle_timeout` is closed (after between one and two idle periods): see
//! [`crate::activity`] for how it learns of requests. Both timers cost a connection nothing
//! while it has bytes to read: the one timer is polled only when a read would wait.

use std::{
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    sync::{OwnedSemaphorePermit, Semaphore},
    time::{Instant, Sleep},
};
pub use tokio_rustls::server::TlsStream;
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::{Connected, TcpIncoming};

use crate::{
    activity::{self, Activity, ConnInfo, Handshake},
    metrics::ListenerMetrics,
};

/// How a connection writes what HTTP/2 hands it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writes {
    /// At once: the least latency, for raft and replication traffic.
    Immediate,
    /// Kept until HTTP/2 flushes, and the first flush of a batch lets the tasks already
    /// scheduled run once before writing, so the answers of several streams leave in one
    /// system call: the public API (see the module docs).
    Coalesced,
}

/// What a listener's connections are held to; see the module docs. `None` turns a limit
/// off.
#[derive(Debug, Clone, Default)]
pub struct ListenLimits {
    /// Most connections open at once.
    pub max_connections: Option<usize>,
    /// Time a new connection has to send the HTTP/2 preface and its first SETTINGS frame.
    pub handshake_timeout: Option<Duration>,
    /// A connection with nothing in flight and nothing started for this long is closed.
    pub idle_timeout: Option<Duration>,
}

/// Binds `addr` now (so a port in use is reported at start-up) and yields its accepted
/// connections with `TCP_NODELAY` set, as tonic's default listener does, each held to
/// `limits`. A connection over `limits.max_connections` is closed at once and counted in
/// `metrics.refused`. Servers on these connections add [`activity::TrackRequests`] as a
/// layer, or the idle timeout sees every connection as idle.
pub fn bind(
    addr: SocketAddr,
    writes: Writes,
    limits: ListenLimits,
    metrics: ListenerMetrics,
) -> io::Result<impl Stream<Item = io::Result<Connection>>> {
    let incoming = TcpIncoming::bind(addr)?.with_nodelay(Some(true));
    let slots = limits.max_connections.map(|n| Arc::new(Semaphore::new(n)));
    Ok(incoming.filter_map(move |accepted| {
        let stream = match accepted {
            Ok(stream) => stream,
            Err(e) => return Some(Err(e)),
        };
        let slot = admit(&slots, &metrics, &stream)?;
        let watch = Watch::new(&limits, metrics.clone());
        Some(Ok(Connection::new(stream, writes).held(
            slot,
            watch,
            metrics.open.clone(),
        )))
    }))
}

/// As [`bind`], with every accepted connection speaking TLS under `tls` (a server
/// configuration announcing ALPN `h2`). The TLS handshake runs in a task of its own, so a
/// slow peer holds up no other; it must end within `limits.handshake_timeout`, which then
/// still covers the HTTP/2 preface after it. A failed handshake closes the connection and
/// is logged at debug level.
pub fn bind_tls(
    addr: SocketAddr,
    writes: Writes,
    limits: ListenLimits,
    metrics: ListenerMetrics,
    tls: Arc<tokio_rustls::rustls::ServerConfig>,
) -> io::Result<impl Stream<Item = io::Result<Connection<TlsStream<TcpStream>>>>> {
    let mut incoming = TcpIncoming::bind(addr)?.with_nodelay(Some(true));
    let slots = limits.max_connections.map(|n| Arc::new(Semaphore::new(n)));
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = incoming.next() => accepted,
                () = tx.closed() => return,
            };
            let stream = match accepted {
                None => return,
                Some(Ok(stream)) => stream,
                Some(Err(e)) => {
                    if tx.send(Err(e)).await.is_err() {
                        return;
                    }
                    continue;
                }
            };
            let Some(slot) = admit(&slots, &metrics, &stream) else {
                continue;
            };
            let watch = Watch::new(&limits, metrics.clone());
            let (acceptor, tx, metrics) = (acceptor.clone(), tx.clone(), metrics.clone());
            let deadline = limits.handshake_timeout;
            tokio::spawn(async move {
                let peer = stream.peer_addr().ok();
                let handshake = acceptor.accept(stream);
                let tls = match deadline {
                    Some(d) => tokio::time::timeout(d, handshake)
                        .await
                        .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into())),
                    None => handshake.await,
                };
                match tls {
                    Ok(tls) => {
                        let conn = Connection::new(tls, writes).held(slot, watch, metrics.open);
                        let _ = tx.send(Ok(conn)).await;
                    }
                    Err(e) => tracing::debug!(?peer, "TLS handshake failed: {e}"),
                }
            });
        }
    });
    Ok(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// A place under the connection limit for `stream`: `Some(None)` without a limit, `None`
/// (counted as refused) when the listener is full.
fn admit(
    slots: &Option<Arc<Semaphore>>,
    metrics: &ListenerMetrics,
    stream: &TcpStream,
) -> Option<Option<OwnedSemaphorePermit>> {
    match slots {
        None => Some(None),
        Some(slots) => match slots.clone().try_acquire_owned() {
            Ok(slot) => Some(Some(slot)),
            Err(_) => {
                metrics.refused.inc();
                tracing::debug!(peer = ?stream.peer_addr().ok(), "connection refused: listener full");
                None
            }
        },
    }
}

/// A connection's one timer: the handshake deadline, then the idle checks.
struct Watch {
    timer: Pin<Box<Sleep>>,
    /// The timer has been polled since it was last set, so it holds this connection's
    /// waker and will wake it: until it has elapsed, a read need not poll it again.
    armed: bool,
    /// `Some` until the handshake has arrived.
    handshake: Option<Handshake>,
    idle: Option<Duration>,
    /// Requests started at the previous idle check.
    seen: u64,
    metrics: ListenerMetrics,
}

impl Watch {
    fn new(limits: &ListenLimits, metrics: ListenerMetrics) -> Option<Self> {
        let (first, handshake) = match (limits.handshake_timeout, limits.idle_timeout) {
            (Some(t), _) => (t, Some(Handshake::default())),
            (None, Some(idle)) => (idle, None),
            (None, None) => return None,
        };
        Some(Self {
            timer: Box::pin(tokio::time::sleep(first)),
            armed: false,
            handshake,
            idle: limits.idle_timeout,
            seen: 0,
            metrics,
        })
    }

    /// The peer sent `bytes`; ends the handshake phase once it has all arrived.
    fn read(&mut self, bytes: &[u8]) {
        let Some(handshake) = &mut self.handshake else {
            return;
        };
        if handshake.feed(bytes) {
            self.handshake = None;
            self.armed = false;
            if let Some(idle) = self.idle {
                self.timer.as_mut().reset(Instant::now() + idle);
            } else {
                // No idle checks: the timer is never due.
                self.timer
                    .as_mut()
                    .reset(Instant::now() + Duration::from_secs(86_400 * 365));
            }
        }
    }

    /// Polls the timer; `Some` when the connection must close now (an error for a missed
    /// handshake, end-of-file for an idle connection).
    fn poll_expired(
        &mut self,
        cx: &mut Context<'_>,
        activity: &Activity,
    ) -> Option<io::Result<()>> {
        // Polling the timer on every read that waits cost edge-read ~4% of its reads/s;
        // checking whether it has elapsed costs an atomic load. (The connection's task,
        // hence its waker, never changes.)
        if self.armed && !self.timer.is_elapsed() {
            return None;
        }
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                self.armed = true;
                return None;
            }
            self.armed = false;
            if self.handshake.is_some() {
                self.metrics.handshake_timeouts.inc();
                return Some(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no HTTP/2 handshake within --api.handshake-timeout",
                )));
            }
            let Some(idle) = self.idle else {
                self.timer
                    .as_mut()
                    .reset(Instant::now() + Duration::from_secs(86_400 * 365));
                continue;
            };
            match activity::idle_since(self.seen, activity.snapshot()) {
                Ok(()) => {
                    self.metrics.idle_closed.inc();
                    return Some(Ok(()));
                }
                Err(started) => {
                    self.seen = started;
                    self.timer.as_mut().reset(Instant::now() + idle);
                }
            }
        }
    }
}

/// Most bytes a coalescing connection keeps before writing them out.
const COALESCE_MAX: usize = 64 * 1024;

/// One accepted connection; see the module docs for why it declines vectored writes and
/// coalesces writes.
pub struct Connection<S = TcpStream> {
    stream: S,
    writes: Writes,
    /// Bytes accepted from HTTP/2, not yet written to the socket.
    pending: Vec<u8>,
    /// Whether this batch's flush has yielded once (it may then only wait on the socket).
    yielded: bool,
    /// Requests on this connection, as its server's [`activity::TrackRequests`] counts them.
    activity: Arc<Activity>,
    /// Handshake and idle timers, when the listener has them.
    watch: Option<Watch>,
    /// Counted in the open-connections gauge until dropped.
    open: Option<prometheus::IntGauge>,
    /// This connection's place under the listener's connection limit.
    _slot: Option<OwnedSemaphorePermit>,
}

impl<S: AsyncWrite + Unpin> Connection<S> {
    fn new(stream: S, writes: Writes) -> Self {
        Self {
            stream,
            writes,
            pending: Vec::new(),
            yielded: false,
            activity: Arc::default(),
            watch: None,
            open: None,
            _slot: None,
        }
    }

    /// Holds this connection to `watch`'s timers and `slot` of its listener, counted in
    /// `open` while it lives.
    fn held(
        mut self,
        slot: Option<OwnedSemaphorePermit>,
        watch: Option<Watch>,
        open: prometheus::IntGauge,
    ) -> Self {
        open.inc();
        self.open = Some(open);
        self.watch = watch;
        self._slot = slot;
        self
    }

    /// Writes out every pending byte.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            let n = ready!(Pin::new(&mut self.stream).poll_write(cx, &self.pending))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending.drain(..n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for Connection<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("stream", &self.stream)
            .field("writes", &self.writes)
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl<S> Drop for Connection<S> {
    fn drop(&mut self) {
        if let Some(open) = &self.open {
            open.dec();
        }
    }
}

impl Connected for Connection {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        ConnInfo {
            tcp: self.stream.connect_info(),
            activity: self.activity.clone(),
        }
    }
}

impl Connected for Connection<TlsStream<TcpStream>> {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        ConnInfo {
            tcp: self.stream.get_ref().0.connect_info(),
            activity: self.activity.clone(),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Connection<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if let Some(watch) = &mut this.watch {
                    watch.read(&buf.filled()[before..]);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match &mut this.watch {
                Some(watch) => match watch.poll_expired(cx, &this.activity) {
                    Some(closed) => Poll::Ready(closed),
                    None => Poll::Pending,
                },
                None => Poll::Pending,
            },
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Connection<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.writes == Writes::Immediate {
            return Pin::new(&mut this.stream).poll_write(cx, buf);
        }
        if this.pending.len() + buf.len() > COALESCE_MAX {
            ready!(this.poll_drain(cx))?;
            if buf.len() > COALESCE_MAX {
                return Pin::new(&mut this.stream).poll_write(cx, buf);
            }
        }
        this.pending.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pending.is_empty() {
            this.yielded = false;
            return Poll::Ready(Ok(()));
        }
        // Once per batch, let the tasks already scheduled run first: the handlers of other
        // streams of this connection finish their answers, and they leave in this write. A
        // task that wakes itself goes to the back of its worker's queue, behind them; their
        // own wakes of this task change nothing while it waits there. (`yield_now` did not
        // do this: the first handler to finish woke the connection into the worker's
        // next-task slot, ahead of the others, and the yield then ended: 2 answers a write.)
        if !this.yielded {
            this.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        // The socket may be full: this flush then waits on it, not on another yield.
        ready!(this.poll_drain(cx))?;
        this.yielded = false;
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// Whatever HTTP/2 writes reaches the peer whole and in order in both modes: small
    /// writes kept for a flush, a write larger than what a connection keeps, and bytes
    /// still pending at shutdown.
    #[tokio::test]
    async fn every_byte_arrives_in_order_and_shutdown_writes_what_is_pending() {
        for writes in [Writes::Immediate, Writes::Coalesced] {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("address");
            let client = tokio::spawn(async move {
                let mut peer = TcpStream::connect(addr).await.expect("connect");
                let mut got = Vec::new();
                peer.read_to_end(&mut got).await.expect("read");
                got
            });
            let (stream, _) = listener.accept().await.expect("accept");
            let mut conn = Connection::new(stream, writes);
            let mut sent = Vec::new();
            for chunk in [&b"headers"[..], b"data", b"trailers"] {
                conn.write_all(chunk).await.expect("write");
                sent.extend_from_slice(chunk);
            }
            conn.flush().await.expect("flush");
            let big: Vec<u8> = (0..3 * COALESCE_MAX).map(|i| i as u8).collect();
            conn.write_all(&big).await.expect("write big");
            sent.extend_from_slice(&big);
            conn.write_all(b"last words").await.expect("write");
            sent.extend_from_slice(b"last words");
            conn.shutdown().await.expect("shutdown");
            let got = client.await.expect("client");
            assert_eq!(got.len(), sent.len(), "{writes:?}");
            assert!(got == sent, "{writes:?}: bytes out of order");
        }
    }

    /// A peer that reads late fills the socket: flushes then wait on the socket, and the
    /// bytes still arrive whole and in order.
    #[tokio::test]
    async fn a_slow_reader_gets_every_byte_of_many_flushes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let client = tokio::spawn(async move {
            let mut peer = TcpStream::connect(addr).await.expect("connect");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let mut got = Vec::new();
            peer.read_to_end(&mut got).await.expect("read");
            got
        });
        let (stream, _) = listener.accept().await.expect("accept");
        let mut conn = Connection::new(stream, Writes::Coalesced);
        let mut sent = Vec::new();
        for i in 0..16_384u32 {
            let chunk = [i.to_le_bytes(); 256].concat();
            conn.write_all(&chunk).await.expect("write");
            sent.extend_from_slice(&chunk);
            if i % 7 == 0 {
                conn.flush().await.expect("flush");
            }
        }
        conn.shutdown().await.expect("shutdown");
        let got = client.await.expect("client");
        assert_eq!(got.len(), sent.len());
        assert!(got == sent, "bytes out of order");
    }

    /// A stream that counts the writes that reach it.
    struct Counting {
        inner: tokio::io::DuplexStream,
        writes: Arc<AtomicUsize>,
    }

    impl AsyncWrite for Counting {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, buf))?;
            self.writes.fetch_add(1, Ordering::Relaxed);
            Poll::Ready(Ok(n))
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }
        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    /// Answers of handlers scheduled together leave in one or two writes, not one each, on
    /// the scheduler the servers run on (a worker with a next-task slot: the first handler
    /// to finish wakes the connection into it, ahead of the others). The connection task
    /// here does what HTTP/2's does: on every poll it takes every answer ready, writes
    /// them, and flushes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn answers_of_handlers_scheduled_together_leave_in_one_or_two_writes() {
        const HANDLERS: u8 = 32;
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let writes = Arc::new(AtomicUsize::new(0));
        let mut conn = Connection::new(
            Counting {
                inner: near,
                writes: writes.clone(),
            },
            Writes::Coalesced,
        );
        // Everything is spawned from a task on the worker, so the tasks queue there.
        tokio::spawn(async move {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
            let connection = tokio::spawn(std::future::poll_fn(move |cx| {
                let mut closed = false;
                while let Poll::Ready(answer) = rx.poll_recv(cx) {
                    let Some(answer) = answer else {
                        closed = true;
                        break;
                    };
                    let n = ready!(Pin::new(&mut conn).poll_write(cx, &answer))?;
                    assert_eq!(n, answer.len(), "a coalescing write takes it all");
                }
                ready!(Pin::new(&mut conn).poll_flush(cx))?;
                if closed {
                    return Pin::new(&mut conn).poll_shutdown(cx);
                }
                Poll::<io::Result<()>>::Pending
            }));
            for i in 0..HANDLERS {
                let tx = tx.clone();
                tokio::spawn(async move {
                    tx.send(vec![i; 100]).expect("the connection is open");
                });
            }
            drop(tx);
            connection.await.expect("connection task")
        })
        .await
        .expect("driver")
        .expect("connection io");
        let mut got = Vec::new();
        far.read_to_end(&mut got).await.expect("read");
        let mut answers: Vec<u8> = got.chunks(100).map(|c| c[0]).collect();
        assert!(got.len() == 100 * usize::from(HANDLERS));
        answers.sort_unstable();
        assert_eq!(answers, (0..HANDLERS).collect::<Vec<_>>(), "every answer");
        let writes = writes.load(Ordering::Relaxed);
        assert!(writes <= 2, "{HANDLERS} answers took {writes} writes");
    }
}
