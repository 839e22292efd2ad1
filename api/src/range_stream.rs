//! Server streams with bounded memory: `IterateRange` answers through a [`RangeStream`].
//!
//! When a client stops reading, its HTTP/2 window closes and hyper stops polling the
//! response body, so nothing inside the body can notice the stall. So a producer task
//! makes the chunks and hands them over one at a time through a one-item slot; the body
//! holds only the slot's receiving end:
//!
//! ```text
//!  producer task              slot (≤ 1 chunk)           body (polled by hyper)
//!  chunks.next() ──put──▶  [ chunk | error | — ] ──take──▶ HTTP/2 (≤ 1 chunk buffered)
//!      ▲  waits ≤ stall_timeout for the slot to empty
//! ```
//!
//! A stream thus holds at most three chunks (one being made, one in the slot, one in
//! HTTP/2's send buffer). If the slot is not emptied within `stall_timeout`, the producer
//! replaces the chunk waiting there with a `DeadlineExceeded` status and ends, dropping the
//! iterator and the view it pins: what is left is the chunk already in HTTP/2's buffer. At
//! most `max_open` streams are open at once; one more is refused with `ResourceExhausted`.

use std::{
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
    time::Duration,
};

use futures::{Stream, task::AtomicWaker};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tonic::Status;

use crate::metrics::StreamMetrics;

/// Chunk size of `IterateRange` streams: small, so that a stalled stream pins little, and
/// large enough that a chunk costs far more than its hand-over.
pub const STREAM_CHUNK_BYTES: usize = 256 * 1024;

/// Limits of the server streams of one node.
#[derive(Clone)]
pub struct StreamLimits {
    /// Most streams open at once (`None`: no limit).
    max_open: Option<usize>,
    open: Option<Arc<Semaphore>>,
    /// A stream whose client takes nothing for this long is cancelled.
    pub stall_timeout: Duration,
    pub metrics: StreamMetrics,
}

impl std::fmt::Debug for StreamLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamLimits")
            .field("max_open", &self.max_open)
            .field("stall_timeout", &self.stall_timeout)
            .finish()
    }
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self::new(
            Some(512),
            Duration::from_secs(30),
            StreamMetrics::unregistered(),
        )
    }
}

impl StreamLimits {
    pub fn new(max_open: Option<usize>, stall_timeout: Duration, metrics: StreamMetrics) -> Self {
        Self {
            max_open,
            open: max_open.map(|n| Arc::new(Semaphore::new(n))),
            stall_timeout,
            metrics,
        }
    }

    /// A place for one more stream, or `ResourceExhausted` naming the limit.
    pub fn admit(&self) -> Result<Admitted, Status> {
        let slot = match (&self.open, self.max_open) {
            (Some(open), Some(max)) => match open.clone().try_acquire_owned() {
                Ok(slot) => Some(slot),
                Err(_) => {
                    self.metrics.refused.inc();
                    return Err(Status::resource_exhausted(format!(
                        "too many IterateRange streams open on this node (limit {max}, \
                         --api.max-iterate-streams); retry later"
                    )));
                }
            },
            _ => None,
        };
        self.metrics.open.inc();
        Ok(Admitted {
            _slot: slot,
            open: self.metrics.open.clone(),
        })
    }

    /// Streams `chunks` to the client through a producer task (see the module docs),
    /// holding `admitted` until the stream is dropped.
    pub fn stream<T, I>(&self, chunks: I, admitted: Admitted) -> RangeStream<T>
    where
        T: Send + 'static,
        I: Iterator<Item = T> + Send + 'static,
    {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                item: None,
                done: false,
                closed: false,
            }),
            consumer: AtomicWaker::new(),
            producer: Notify::new(),
        });
        tokio::spawn(produce(
            shared.clone(),
            chunks,
            self.stall_timeout,
            self.metrics.stalled.clone(),
        ));
        RangeStream {
            shared,
            _admitted: admitted,
        }
    }
}

/// One stream's place under [`StreamLimits`]' limit, released when dropped.
#[derive(Debug)]
pub struct Admitted {
    _slot: Option<OwnedSemaphorePermit>,
    open: prometheus::IntGauge,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.open.dec();
    }
}

struct Shared<T> {
    state: Mutex<State<T>>,
    /// Wakes the body when the slot fills or the producer ends.
    consumer: AtomicWaker,
    /// Wakes the producer when the slot empties or the body is dropped.
    producer: Notify,
}

struct State<T> {
    /// The slot: a chunk, or the error that ends the stream.
    item: Option<Result<T, Status>>,
    /// The producer has put its last item.
    done: bool,
    /// The body was dropped (the client went away or the stream was reset).
    closed: bool,
}

impl<T> Shared<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        // A poisoned lock means a panic while holding it, which the code inside cannot do;
        // the state is plain data either way.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether the producer may put its next item now.
enum Room {
    Free,
    Taken,
    Gone,
}

fn room<T>(state: &State<T>) -> Room {
    if state.closed {
        Room::Gone
    } else if state.item.is_some() {
        Room::Taken
    } else {
        Room::Free
    }
}

async fn produce<T, I: Iterator<Item = T>>(
    shared: Arc<Shared<T>>,
    chunks: I,
    stall_timeout: Duration,
    stalled: prometheus::IntCounter,
) {
    for chunk in chunks {
        let deadline = tokio::time::Instant::now() + stall_timeout;
        loop {
            let emptied = shared.producer.notified();
            match room(&shared.lock()) {
                Room::Free => break,
                Room::Gone => return,
                Room::Taken => {}
            }
            if tokio::time::timeout_at(deadline, emptied).await.is_err() {
                let mut state = shared.lock();
                if state.item.is_some() {
                    state.item = Some(Err(Status::deadline_exceeded(format!(
                        "IterateRange cancelled: the client read nothing for {stall_timeout:?} \
                         (--api.stream-stall-timeout)"
                    ))));
                    state.done = true;
                    drop(state);
                    stalled.inc();
                    tracing::debug!(?stall_timeout, "IterateRange stream stalled: cancelled");
                    shared.consumer.wake();
                    return;
                }
            }
        }
        shared.lock().item = Some(Ok(chunk));
        shared.consumer.wake();
    }
    shared.lock().done = true;
    shared.consumer.wake();
}

/// The body side of a stream made by [`StreamLimits::stream`].
pub struct RangeStream<T> {
    shared: Arc<Shared<T>>,
    _admitted: Admitted,
}

impl<T> Stream for RangeStream<T> {
    type Item = Result<T, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut state = self.shared.lock();
        if let Some(item) = state.item.take() {
            drop(state);
            self.shared.producer.notify_one();
            return Poll::Ready(Some(item));
        }
        if state.done {
            return Poll::Ready(None);
        }
        // Registered under the lock: the producer fills the slot under it and wakes after.
        self.shared.consumer.register(cx.waker());
        Poll::Pending
    }
}

impl<T> Drop for RangeStream<T> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.closed = true;
        state.item = None;
        drop(state);
        self.shared.producer.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio_stream::StreamExt;

    /// Counts the items alive: made and not yet dropped.
    struct Tracked(Arc<AtomicUsize>);
    impl Drop for Tracked {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    fn items(
        n: usize,
        alive: Arc<AtomicUsize>,
        made: Arc<AtomicUsize>,
    ) -> impl Iterator<Item = Tracked> + Send {
        (0..n).map(move |_| {
            alive.fetch_add(1, Ordering::SeqCst);
            made.fetch_add(1, Ordering::SeqCst);
            Tracked(alive.clone())
        })
    }

    async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn a_reader_gets_every_item_in_order_then_the_end() {
        let limits = StreamLimits::default();
        let stream = limits.stream(0..1000u32, limits.admit().expect("admitted"));
        let got: Vec<u32> = stream.map(|r| r.expect("item")).collect().await;
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
        assert_eq!(limits.metrics.open.get(), 0, "the place is released");
    }

    #[tokio::test]
    async fn a_stream_nobody_reads_holds_one_item_then_fails_and_lets_go() {
        let limits = StreamLimits::new(
            Some(4),
            Duration::from_millis(200),
            StreamMetrics::unregistered(),
        );
        let alive = Arc::new(AtomicUsize::new(0));
        let made = Arc::new(AtomicUsize::new(0));
        let mut stream = limits.stream(
            items(1000, alive.clone(), made.clone()),
            limits.admit().expect("admitted"),
        );
        // Nobody reads: the producer makes two items (one in the slot, one in hand), then
        // gives up, dropping the one in hand and replacing the one in the slot.
        wait_for("the producer gave up", || limits.metrics.stalled.get() == 1).await;
        assert_eq!(made.load(Ordering::SeqCst), 2, "made before the stall");
        wait_for("every item dropped", || alive.load(Ordering::SeqCst) == 0).await;
        let status = match stream.next().await {
            Some(Err(status)) => status,
            _ => panic!("expected the stall error"),
        };
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
        assert!(
            status.message().contains("--api.stream-stall-timeout"),
            "{status:?}"
        );
        assert!(
            stream.next().await.is_none(),
            "the stream ends after its error"
        );
    }

    #[tokio::test]
    async fn streams_over_the_limit_are_refused_until_one_ends() {
        let limits = StreamLimits::new(
            Some(2),
            Duration::from_secs(30),
            StreamMetrics::unregistered(),
        );
        let a = limits.stream(0..10u8, limits.admit().expect("first"));
        let _b = limits.stream(0..10u8, limits.admit().expect("second"));
        let refused = limits.admit().expect_err("third");
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert!(refused.message().contains("limit 2"), "{refused:?}");
        assert_eq!(limits.metrics.refused.get(), 1);
        drop(a);
        limits.admit().expect("a place was freed");
    }

    #[tokio::test]
    async fn dropping_the_stream_stops_the_producer() {
        let limits = StreamLimits::default();
        let alive = Arc::new(AtomicUsize::new(0));
        let made = Arc::new(AtomicUsize::new(0));
        let mut stream = limits.stream(
            items(1_000_000, alive.clone(), made.clone()),
            limits.admit().expect("admitted"),
        );
        stream.next().await.expect("one").expect("item");
        drop(stream);
        wait_for("every item dropped", || alive.load(Ordering::SeqCst) == 0).await;
        assert!(made.load(Ordering::SeqCst) < 10, "the producer stopped");
    }
}
