//! What a connection's watchdog needs to know about its traffic: whether the HTTP/2
//! handshake has arrived ([`Handshake`]), and whether any request is in flight or has
//! started lately ([`Activity`], kept current by [`TrackRequests`]).
//!
//! The connection (see [`crate::listen`]) cannot see HTTP/2 streams: they live inside hyper.
//! So each connection hands tonic a [`ConnInfo`] carrying its [`Activity`]; tonic puts it in
//! every request's extensions, and the [`TrackRequests`] layer counts a request as started
//! when it arrives and as finished when its response body is dropped (after its last byte
//! or on a reset). A connection with no request in flight and none started during a whole
//! idle period is idle.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
};

use tonic::transport::server::TcpConnectInfo;

/// Requests started and finished on one connection.
#[derive(Debug, Default)]
pub struct Activity {
    started: AtomicU64,
    finished: AtomicU64,
}

impl Activity {
    /// Counts a request as started; it finishes when the guard is dropped.
    pub fn start(self: &Arc<Self>) -> RequestGuard {
        self.started.fetch_add(1, Ordering::Relaxed);
        RequestGuard {
            activity: self.clone(),
        }
    }

    /// Requests started so far, and whether every one of them has finished.
    pub fn snapshot(&self) -> (u64, bool) {
        // `finished` first: a request finishing between the loads then reads as in flight,
        // never the other way round.
        let finished = self.finished.load(Ordering::Relaxed);
        let started = self.started.load(Ordering::Relaxed);
        (started, started == finished)
    }
}

/// One request in flight; see [`Activity::start`].
#[derive(Debug)]
pub struct RequestGuard {
    activity: Arc<Activity>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.activity.finished.fetch_add(1, Ordering::Relaxed);
    }
}

/// Whether a connection has been idle for a whole period: nothing in flight now and no
/// request started since the previous check (`seen` requests had started then). Returns
/// the new count to remember when it is not idle.
pub fn idle_since(seen: u64, now: (u64, bool)) -> Result<(), u64> {
    let (started, all_finished) = now;
    if all_finished && started == seen {
        Ok(())
    } else {
        Err(started)
    }
}

/// What tonic puts in every request's extensions for a connection from [`crate::listen`].
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub tcp: TcpConnectInfo,
    pub activity: Arc<Activity>,
}

/// The client's HTTP/2 handshake as it arrives: the 24-byte connection preface, then a
/// SETTINGS frame (9-byte header, then its payload). Hyper checks the contents; this only
/// tells when the bytes are all there.
#[derive(Debug, Default)]
pub struct Handshake {
    seen: usize,
    header: [u8; FRAME_HEADER],
    need: Option<usize>,
}

const PREFACE: usize = 24;
const FRAME_HEADER: usize = 9;

impl Handshake {
    /// Takes the next bytes read from the peer; true once the whole handshake has arrived.
    pub fn feed(&mut self, bytes: &[u8]) -> bool {
        for (i, b) in bytes.iter().enumerate() {
            let at = self.seen + i;
            if (PREFACE..PREFACE + FRAME_HEADER).contains(&at) {
                self.header[at - PREFACE] = *b;
            } else if at >= PREFACE + FRAME_HEADER {
                break;
            }
        }
        self.seen = self.seen.saturating_add(bytes.len());
        if self.need.is_none() && self.seen >= PREFACE + FRAME_HEADER {
            let len = u32::from_be_bytes([0, self.header[0], self.header[1], self.header[2]]);
            self.need = Some(PREFACE + FRAME_HEADER + len as usize);
        }
        self.need.is_some_and(|need| self.seen >= need)
    }
}

/// A tower layer keeping each connection's [`Activity`] current; add it to every gRPC
/// server whose connections come from [`crate::listen::bind`].
#[derive(Debug, Clone, Copy, Default)]
pub struct TrackRequests;

impl<S> tower::Layer<S> for TrackRequests {
    type Service = TrackedService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TrackedService { inner }
    }
}

/// A service counting its requests; see [`TrackRequests`].
#[derive(Debug, Clone)]
pub struct TrackedService<S> {
    inner: S,
}

/// A response body holding its request's [`RequestGuard`] until it is dropped.
#[derive(Debug)]
pub struct TrackedBody<B> {
    inner: B,
    _guard: Option<RequestGuard>,
}

impl<S, B, R> tower::Service<http::Request<B>> for TrackedService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
{
    type Response = http::Response<TrackedBody<R>>;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let guard = request
            .extensions()
            .get::<ConnInfo>()
            .map(|info| info.activity.start());
        TrackedFuture {
            inner: self.inner.call(request),
            guard,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of a [`TrackedService`]: hands its request's guard to the body.
    pub struct TrackedFuture<F> {
        #[pin]
        inner: F,
        guard: Option<RequestGuard>,
    }
}

impl<F, R, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<http::Response<R>, E>>,
{
    type Output = Result<http::Response<TrackedBody<R>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.inner.poll(cx))?;
        let guard = this.guard.take();
        Poll::Ready(Ok(response.map(|inner| TrackedBody {
            inner,
            _guard: guard,
        })))
    }
}

impl<B: http_body::Body + Unpin> http_body::Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handshake_is_complete_once_preface_and_settings_have_arrived_in_any_pieces() {
        let mut wire = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        // A SETTINGS frame with two settings (12 bytes of payload), then a HEADERS frame.
        wire.extend_from_slice(&[0, 0, 12, 4, 0, 0, 0, 0, 0]);
        wire.extend_from_slice(&[0; 12]);
        let complete = wire.len();
        wire.extend_from_slice(&[0, 0, 3, 1, 4, 0, 0, 0, 1, 1, 2, 3]);
        for piece in [1, 2, 5, 9, 24, 33, 100] {
            let mut handshake = Handshake::default();
            let mut fed = 0;
            let mut done_at = None;
            for bytes in wire.chunks(piece) {
                fed += bytes.len();
                if handshake.feed(bytes) && done_at.is_none() {
                    done_at = Some(fed);
                }
            }
            let done_at = done_at.expect("complete");
            assert!(
                done_at >= complete && done_at < complete + piece,
                "pieces of {piece}: complete after {done_at} bytes"
            );
        }
        let mut partial = Handshake::default();
        assert!(!partial.feed(&wire[..complete - 1]), "one byte short");
    }

    #[test]
    fn a_connection_is_idle_only_with_nothing_in_flight_and_nothing_new() {
        let activity = Arc::new(Activity::default());
        assert_eq!(idle_since(0, activity.snapshot()), Ok(()));
        let guard = activity.start();
        assert_eq!(idle_since(0, activity.snapshot()), Err(1), "in flight");
        assert_eq!(
            idle_since(1, activity.snapshot()),
            Err(1),
            "still in flight"
        );
        drop(guard);
        assert_eq!(idle_since(0, activity.snapshot()), Err(1), "started lately");
        assert_eq!(idle_since(1, activity.snapshot()), Ok(()));
    }
}
