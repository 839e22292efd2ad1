//! `regatta.watch.v1.Watch`: change streams of this node's tables, on core and edge alike.
//!
//! One bidirectional stream per client multiplexes its watchers; one task serves it. The
//! task never blocks apply: apply records changes into the materializer's history
//! ([`regatta_materializer::history`]) and signals the new revision; the task, woken by
//! the signal, reads the history from each watcher's next revision, filters it
//! ([`WatchFilter`]) into per-watcher queues of whole revisions, and sends from the queues
//! as fast as the client reads.
//!
//! ```text
//!  apply ──▶ history.push ──▶ applied signal ──▶ stream task: pull(w) for each watcher
//!                                                  queue[w] += events of revisions ≥ next[w]
//!                                                  over --watch.buffer-events ─▶ FELL_BEHIND
//!  client ◀── one message at a time, round robin over the watchers with something queued
//! ```
//!
//! Bounds: watchers per stream and per node, events queued per watcher (a watcher whose
//! client reads too slowly is cancelled with the revision to resume from; the others, and
//! apply, go on), messages of about 1 MiB. Every watcher that asked gets a `Progress`
//! after `--watch.progress-interval` without events, and every watcher of the stream
//! gets one when the client asks.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{Stream, StreamExt};
use regatta_materializer::changes::{Seen, WatchFilter, event_bytes};
use regatta_materializer::history::{ChangeBatch, Gone, History};
use regatta_proto::regatta::watch::v1::{
    CancelReason, Canceled, CreateRequest, Created, Event, Events, Progress, WatchRequest,
    WatchResponse, watch_request, watch_response, watch_server,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request, Response, Status, Streaming};

use crate::metrics::watch::{Cancelled, WatchMetrics};
use crate::node::NodeContext;

/// Bytes of events a message carries at most (one revision larger than this is split into
/// fragments).
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// Bounds and timing of the Watch service (`--watch.*` flags).
#[derive(Debug, Clone)]
pub struct WatchSettings {
    /// Watchers on this node at most, over all streams.
    pub max_watchers: usize,
    /// Watchers on one stream at most.
    pub max_watchers_per_stream: usize,
    /// Events queued for one watcher at most before it is cancelled as fallen behind.
    pub buffer_events: usize,
    /// Progress to a watcher that asked for it, after this long without an event.
    pub progress_interval: Duration,
}

impl Default for WatchSettings {
    fn default() -> Self {
        Self {
            max_watchers: 10_000,
            max_watchers_per_stream: 1_000,
            buffer_events: 10_000,
            progress_interval: Duration::from_secs(5),
        }
    }
}

/// The Watch service of one node.
pub struct WatchService {
    ctx: NodeContext,
    settings: WatchSettings,
    watchers: Arc<AtomicUsize>,
    stop: CancellationToken,
    metrics: WatchMetrics,
}

impl WatchService {
    pub fn new(ctx: NodeContext, settings: WatchSettings) -> Self {
        Self {
            ctx,
            settings,
            watchers: Arc::new(AtomicUsize::new(0)),
            stop: CancellationToken::new(),
            metrics: WatchMetrics::unregistered(),
        }
    }

    /// Reports to `metrics` (the node's registered series) instead of unregistered ones.
    pub fn with_metrics(mut self, metrics: WatchMetrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Ends every stream (`UNAVAILABLE`: watch again elsewhere, or here after the restart)
    /// once `stop` is cancelled.
    pub fn with_stop(mut self, stop: CancellationToken) -> Self {
        self.stop = stop;
        self
    }
}

type Stream_<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl watch_server::Watch for WatchService {
    type WatchStream = Stream_<WatchResponse>;

    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        if !self.ctx.materializer.recording() {
            return Err(Status::failed_precondition(
                "watch is switched off on this node (--watch.history-bytes=0)",
            ));
        }
        // Two messages in flight at most (each up to about 1 MiB): what a client does not
        // read waits in its watchers' bounded queues.
        let (tx, rx) = mpsc::channel(2);
        self.metrics.streams.inc();
        let task = StreamTask {
            ctx: self.ctx.clone(),
            settings: self.settings.clone(),
            node_watchers: NodeCount {
                count: self.watchers.clone(),
                metrics: self.metrics.clone(),
            },
            watchers: Vec::new(),
            turn: 0,
            next_id: 1,
        };
        tokio::spawn(task.run(request.into_inner(), tx, self.stop.clone()));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// The node's count of watchers (and its gauge); a stream's share goes back when the
/// stream ends. Also the stream's way to the node's other watch series.
struct NodeCount {
    count: Arc<AtomicUsize>,
    metrics: WatchMetrics,
}

impl NodeCount {
    /// One more watcher; the count before it.
    fn add(&self) -> usize {
        self.metrics.watchers.inc();
        self.count.fetch_add(1, Ordering::Relaxed)
    }

    fn remove(&self, n: usize) {
        self.metrics
            .watchers
            .sub(i64::try_from(n).unwrap_or(i64::MAX));
        self.count.fetch_sub(n, Ordering::Relaxed);
    }
}

/// One item of a watcher's queue.
#[derive(Debug, Clone, PartialEq)]
enum Pending {
    Created(u64),
    /// The events of one revision (the rest of it, after a fragment went out).
    Events {
        revision: u64,
        events: Vec<Event>,
    },
    Progress(u64),
    Canceled(Canceled),
}

/// One watcher of a stream.
#[derive(Debug)]
struct Watcher {
    id: i64,
    filter: WatchFilter,
    /// First revision not yet read from the history.
    next: u64,
    /// The history generation it started in.
    generation: u64,
    progress_notify: bool,
    queue: VecDeque<Pending>,
    queued_events: usize,
    /// When it was last sent anything (for periodic progress).
    last_sent: Instant,
    /// Cancelled: it reads no more, and goes once its queue is sent.
    ending: bool,
    /// Caught up once with what the node applied. Until then it reads the history at the
    /// pace its client reads (at most a buffer ahead); from then on every new revision is
    /// queued as it comes, and a buffer overflowing means the client fell behind.
    live: bool,
}

fn canceled(reason: CancelReason, code: Code, message: String) -> Canceled {
    Canceled {
        reason: reason as i32,
        code: code as i32,
        message,
        resume_revision: 0,
        oldest_revision: 0,
    }
}

/// What a watcher reads from `batches` from revision `next` on: whole revisions of events
/// in order, stopping before a revision once `limit` events are gathered; the revision it
/// stopped before, if it did; and, when its table was deleted or replaced, the revision and
/// kind of that (nothing after it is read).
fn collect(
    filter: &WatchFilter,
    batches: &[Arc<ChangeBatch>],
    next: u64,
    limit: usize,
) -> Collected {
    let mut out = Collected::default();
    let mut gathered = 0;
    for batch in batches {
        for c in batch.changes.iter().filter(|c| c.revision.0 >= next) {
            match filter.classify(&c.change) {
                Seen::Nothing => {}
                Seen::TableReset { deleted } => {
                    out.reset = Some((c.revision.0, deleted));
                    return out;
                }
                Seen::Event => {
                    let Some(event) = filter.event(c.revision, &c.change) else {
                        continue;
                    };
                    match out.groups.last_mut() {
                        Some((r, events)) if *r == c.revision.0 => events.push(event),
                        _ if gathered >= limit => {
                            out.stopped_before = Some(c.revision.0);
                            return out;
                        }
                        _ => out.groups.push((c.revision.0, vec![event])),
                    }
                    gathered += 1;
                }
            }
        }
    }
    out
}

/// What [`collect`] read for one watcher.
#[derive(Debug, Default)]
struct Collected {
    groups: Vec<(u64, Vec<Event>)>,
    stopped_before: Option<u64>,
    reset: Option<(u64, bool)>,
}

/// The first revision of `queue` still to be sent (events, or the revision a progress
/// speaks for + 1), or `after` when none is queued.
fn first_unsent(queue: &VecDeque<Pending>, after: u64) -> u64 {
    queue
        .iter()
        .find_map(|p| match p {
            Pending::Events { revision, .. } => Some(*revision),
            _ => None,
        })
        .unwrap_or(after)
}

impl Watcher {
    /// Ends the watcher after what is queued, with `why`.
    fn cancel(&mut self, why: Canceled) {
        self.ending = true;
        self.queue.push_back(Pending::Canceled(why));
    }

    /// Reads what the history holds for this watcher into its queue (bounded by `buffer`).
    fn pull(&mut self, history: &History, buffer: usize) {
        if self.ending {
            return;
        }
        let read = match history.read(self.next, self.generation) {
            Ok(read) => read,
            Err(Gone::Compacted { oldest }) => {
                let mut why = canceled(
                    CancelReason::FellBehind,
                    Code::ResourceExhausted,
                    format!(
                        "the watcher fell behind: revision {} left this node's history before it \
                         was read; watch again from revision {} (or, if that is no longer held, \
                         read the table and watch from its revision + 1)",
                        self.next, self.next
                    ),
                );
                why.resume_revision = self.next;
                why.oldest_revision = oldest;
                self.cancel(why);
                return;
            }
            Err(Gone::Replaced { oldest }) => {
                let mut why = canceled(
                    CancelReason::StateReplaced,
                    Code::OutOfRange,
                    format!(
                        "this node replaced its state with a snapshot at revision {}: read the \
                         table and watch from its revision + 1",
                        oldest.saturating_sub(1)
                    ),
                );
                why.oldest_revision = oldest;
                self.cancel(why);
                return;
            }
        };
        let limit = if self.live {
            usize::MAX
        } else {
            buffer.saturating_sub(self.queued_events)
        };
        if limit == 0 {
            return;
        }
        let Collected {
            groups,
            stopped_before,
            reset,
        } = collect(&self.filter, &read.batches, self.next, limit);
        for (revision, events) in groups {
            if self.live && self.queued_events > 0 && self.queued_events + events.len() > buffer {
                let mut why = canceled(
                    CancelReason::FellBehind,
                    Code::ResourceExhausted,
                    format!(
                        "the watcher fell behind by more than {buffer} events (--watch.buffer-events): \
                         the client reads too slowly; watch again from revision {revision}"
                    ),
                );
                // What is queued still goes out first, so the client resumes after it.
                why.resume_revision = revision;
                self.cancel(why);
                return;
            }
            self.queued_events += events.len();
            self.queue.push_back(Pending::Events { revision, events });
        }
        if let Some(revision) = stopped_before {
            // Catching up: the rest once the client has read some.
            self.next = revision;
            return;
        }
        if let Some((revision, deleted)) = reset {
            let mut why = if deleted {
                canceled(
                    CancelReason::TableNotFound,
                    Code::NotFound,
                    format!(
                        "table {:?} was deleted at revision {revision}",
                        self.filter.table
                    ),
                )
            } else {
                canceled(
                    CancelReason::StateReplaced,
                    Code::OutOfRange,
                    format!(
                        "table {:?} was restored at revision {revision}: read it and watch from \
                         revision {}",
                        self.filter.table,
                        revision + 1
                    ),
                )
            };
            why.oldest_revision = revision + 1;
            self.cancel(why);
            return;
        }
        // A watcher asked to start past what is applied waits there.
        self.next = self.next.max(read.through + 1);
        self.live = true;
    }

    /// The next message of this watcher: events of whole revisions up to
    /// [`MAX_MESSAGE_BYTES`] (a larger revision in fragments), or its next answer.
    fn message(&mut self) -> Option<watch_response::Kind> {
        let front = self.queue.pop_front()?;
        let kind = match front {
            Pending::Created(start_revision) => {
                watch_response::Kind::Created(Created { start_revision })
            }
            Pending::Progress(revision) => watch_response::Kind::Progress(Progress { revision }),
            Pending::Canceled(why) => watch_response::Kind::Canceled(why),
            Pending::Events { revision, events } => {
                let mut out = Vec::new();
                let mut bytes = 0;
                let mut rest = events.into_iter();
                let mut fragment = false;
                for e in rest.by_ref() {
                    bytes += event_bytes(&e);
                    out.push(e);
                    if bytes >= MAX_MESSAGE_BYTES {
                        break;
                    }
                }
                let left: Vec<Event> = rest.collect();
                if !left.is_empty() {
                    fragment = true;
                    self.queue.push_front(Pending::Events {
                        revision,
                        events: left,
                    });
                } else {
                    // Whole revisions that follow, while the message has room.
                    while bytes < MAX_MESSAGE_BYTES {
                        let fits = match self.queue.front() {
                            Some(Pending::Events { events, .. }) => {
                                let more: usize = events.iter().map(event_bytes).sum();
                                (bytes + more <= MAX_MESSAGE_BYTES).then_some(more)
                            }
                            _ => None,
                        };
                        let Some(more) = fits else { break };
                        if let Some(Pending::Events { events, .. }) = self.queue.pop_front() {
                            bytes += more;
                            out.extend(events);
                        }
                    }
                }
                self.queued_events = self.queued_events.saturating_sub(out.len());
                watch_response::Kind::Events(Events {
                    events: out,
                    fragment,
                })
            }
        };
        self.last_sent = Instant::now();
        Some(kind)
    }
}

/// The task serving one stream.
struct StreamTask {
    ctx: NodeContext,
    settings: WatchSettings,
    node_watchers: NodeCount,
    watchers: Vec<Watcher>,
    turn: usize,
    next_id: i64,
}

impl Drop for StreamTask {
    fn drop(&mut self) {
        let metrics = &self.node_watchers.metrics;
        for _ in self.watchers.iter().filter(|w| !w.ending) {
            metrics.cancelled(Cancelled::StreamEnded);
        }
        // A cancelled watcher whose cancel was not sent yet counts for its reason.
        for w in &self.watchers {
            for p in &w.queue {
                if let Pending::Canceled(why) = p {
                    metrics.cancelled(Cancelled::of(why.reason));
                }
            }
        }
        metrics.streams.dec();
        self.node_watchers.remove(self.watchers.len());
    }
}

impl StreamTask {
    async fn run(
        mut self,
        mut requests: Streaming<WatchRequest>,
        tx: mpsc::Sender<Result<WatchResponse, Status>>,
        stop: CancellationToken,
    ) {
        let materializer = self.ctx.materializer.clone();
        let mut applied = materializer.subscribe();
        let mut reading = true;
        let mut tick = tokio::time::interval(
            self.settings
                .progress_interval
                .max(Duration::from_millis(10)),
        );
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            for w in &mut self.watchers {
                w.pull(materializer.history(), self.settings.buffer_events);
            }
            let has_pending = self.watchers.iter().any(|w| !w.queue.is_empty());
            tokio::select! {
                permit = tx.reserve(), if has_pending => {
                    let Ok(permit) = permit else { return };
                    if let Some(message) = self.next_message() {
                        permit.send(Ok(message));
                    }
                }
                request = requests.next(), if reading => match request {
                    Some(Ok(request)) => self.handle(request),
                    Some(Err(_)) => return,
                    None => reading = false,
                },
                changed = applied.changed() => if changed.is_err() { return },
                _ = tick.tick() => self.periodic_progress(),
                () = tx.closed() => return,
                () = stop.cancelled() => {
                    let _ = tx.send(Err(Status::unavailable(
                        "the node is stopping: watch again (from the revision after the last one seen) elsewhere or after its restart",
                    ))).await;
                    return;
                }
            }
        }
    }

    /// The next message, round robin over the watchers with something queued; a cancelled
    /// watcher whose queue is sent leaves.
    fn next_message(&mut self) -> Option<WatchResponse> {
        let n = self.watchers.len();
        for step in 0..n {
            let at = (self.turn + step) % n;
            let w = &mut self.watchers[at];
            let Some(kind) = w.message() else { continue };
            let id = w.id;
            let metrics = &self.node_watchers.metrics;
            match &kind {
                watch_response::Kind::Events(e) => {
                    metrics.events_sent.inc_by(e.events.len() as u64);
                    metrics
                        .event_bytes_sent
                        .inc_by(e.events.iter().map(event_bytes).sum::<usize>() as u64);
                }
                watch_response::Kind::Canceled(why) => {
                    metrics.cancelled(Cancelled::of(why.reason));
                }
                _ => {}
            }
            if w.ending && w.queue.is_empty() {
                self.watchers.remove(at);
                self.node_watchers.remove(1);
                self.turn = at;
            } else {
                self.turn = at + 1;
            }
            return Some(WatchResponse {
                watch_id: id,
                kind: Some(kind),
            });
        }
        None
    }

    fn periodic_progress(&mut self) {
        let every = self.settings.progress_interval;
        for w in &mut self.watchers {
            if w.progress_notify
                && !w.ending
                && w.queue.is_empty()
                && w.last_sent.elapsed() >= every
            {
                w.queue.push_back(Pending::Progress(w.next - 1));
                // Counted as sent when queued, so one progress per interval.
                w.last_sent = Instant::now();
            }
        }
    }

    fn handle(&mut self, request: WatchRequest) {
        match request.request {
            Some(watch_request::Request::Create(create)) => self.create(create),
            Some(watch_request::Request::Cancel(cancel)) => {
                if let Some(w) = self
                    .watchers
                    .iter_mut()
                    .find(|w| w.id == cancel.watch_id && !w.ending)
                {
                    let resume = first_unsent(&w.queue, w.next);
                    w.queue.clear();
                    w.queued_events = 0;
                    let mut why = canceled(
                        CancelReason::Requested,
                        Code::Ok,
                        "canceled by the client".into(),
                    );
                    why.resume_revision = resume;
                    w.cancel(why);
                }
            }
            Some(watch_request::Request::Progress(_)) => {
                let history = self.ctx.materializer.history();
                for w in &mut self.watchers {
                    w.pull(history, self.settings.buffer_events);
                    if !w.ending {
                        w.queue.push_back(Pending::Progress(w.next - 1));
                    }
                }
            }
            None => {}
        }
    }

    /// Answers a create request: the watcher starts, or a `Canceled` says why not.
    fn create(&mut self, create: CreateRequest) {
        let id = if create.watch_id != 0 {
            create.watch_id
        } else {
            while self.watchers.iter().any(|w| w.id == self.next_id) {
                self.next_id += 1;
            }
            self.next_id
        };
        let refuse = |this: &mut Self, reason, code, message: String, oldest: u64| {
            let mut why = canceled(reason, code, message);
            why.oldest_revision = oldest;
            // A refused watcher has nothing else queued: it leaves once this is sent.
            this.watchers.push(Watcher {
                id,
                filter: WatchFilter {
                    table: String::new(),
                    range: regatta_materializer::request::KeyRange::Key(bytes::Bytes::new()),
                    prev_kv: false,
                },
                next: 0,
                generation: 0,
                progress_notify: false,
                queue: VecDeque::from([Pending::Canceled(why)]),
                queued_events: 0,
                last_sent: Instant::now(),
                ending: true,
                live: false,
            });
            this.node_watchers.add();
        };
        match self.start(&create, id) {
            Ok(watcher) => {
                self.node_watchers.metrics.created.inc();
                self.watchers.push(watcher);
                self.next_id = self.next_id.max(id.saturating_add(1));
            }
            Err((reason, code, message, oldest)) => refuse(self, reason, code, message, oldest),
        }
    }

    /// A new watcher for `create`, or why it cannot be.
    fn start(
        &mut self,
        create: &CreateRequest,
        id: i64,
    ) -> Result<Watcher, (CancelReason, Code, String, u64)> {
        let rejected = |code, message: String| (CancelReason::Rejected, code, message, 0);
        if self.watchers.iter().any(|w| w.id == id) {
            return Err(rejected(
                Code::InvalidArgument,
                format!("watch id {id} is already in use on this stream"),
            ));
        }
        let filter = WatchFilter::new(
            &create.table,
            &create.key,
            &create.range_end,
            create.prev_kv,
        )
        .map_err(|e| rejected(Code::InvalidArgument, e.to_string()))?;
        if self.watchers.iter().filter(|w| !w.ending).count()
            >= self.settings.max_watchers_per_stream
        {
            return Err(rejected(
                Code::ResourceExhausted,
                format!(
                    "this stream already has {} watchers (--watch.max-watchers-per-stream)",
                    self.settings.max_watchers_per_stream
                ),
            ));
        }
        let view = self.ctx.materializer.view();
        if view.table(&filter.table).is_none() {
            let error = self.ctx.missing_table(crate::Error::Materializer(
                regatta_materializer::Error::TableNotFound {
                    table: filter.table.clone(),
                },
            ));
            let status = Status::from(error);
            let reason = if status.code() == Code::NotFound {
                CancelReason::TableNotFound
            } else {
                CancelReason::Rejected
            };
            return Err((reason, status.code(), status.message().to_owned(), 0));
        }
        let (generation, oldest, through) = self.ctx.materializer.history().position();
        let next = match create.start_revision {
            0 => through + 1,
            r => r,
        };
        if next < oldest {
            return Err((
                CancelReason::Compacted,
                Code::OutOfRange,
                format!(
                    "revision {next} is older than this node holds: the oldest revision it can \
                     watch from is {oldest}; read the table (its header revision R) and watch \
                     from R + 1"
                ),
                oldest,
            ));
        }
        let count = self.node_watchers.add();
        if count >= self.settings.max_watchers {
            self.node_watchers.remove(1);
            return Err(rejected(
                Code::ResourceExhausted,
                format!(
                    "this node already serves {} watchers (--watch.max-watchers)",
                    self.settings.max_watchers
                ),
            ));
        }
        Ok(Watcher {
            id,
            filter,
            next,
            generation,
            progress_notify: create.progress_notify,
            queue: VecDeque::from([Pending::Created(next)]),
            queued_events: 0,
            last_sent: Instant::now(),
            ending: false,
            live: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use regatta_materializer::Revision;
    use regatta_materializer::changes::{Change, Revisioned};
    use regatta_materializer::table::Record;

    use super::*;

    fn put(revision: u64, table: &str, key: &str) -> Revisioned {
        Revisioned {
            revision: Revision(revision),
            change: Change::Put {
                table: Arc::from(table),
                record: Record::new(key.as_bytes(), b"v", revision, revision, 1),
                prev: None,
            },
        }
    }

    fn watcher(key: &str, range_end: &str) -> Watcher {
        Watcher {
            id: 1,
            filter: WatchFilter::new(
                b"t",
                &Bytes::copy_from_slice(key.as_bytes()),
                &Bytes::copy_from_slice(range_end.as_bytes()),
                false,
            )
            .expect("valid"),
            next: 1,
            generation: 0,
            progress_notify: false,
            queue: VecDeque::new(),
            queued_events: 0,
            last_sent: Instant::now(),
            ending: false,
            live: true,
        }
    }

    fn keys(kind: &watch_response::Kind) -> Vec<(i64, String)> {
        match kind {
            watch_response::Kind::Events(e) => e
                .events
                .iter()
                .map(|e| {
                    let kv = e.kv.as_ref().expect("kv");
                    (
                        kv.mod_revision,
                        String::from_utf8_lossy(&kv.key).into_owned(),
                    )
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_watcher_reads_its_keys_in_revision_order_whole_revisions_together() {
        let history = History::new(0, 1 << 20);
        history.push(
            3,
            Some(vec![
                put(1, "t", "a"),
                put(2, "t", "b"),
                put(2, "u", "a"),
                put(2, "t", "a"),
                put(3, "t", "z"),
            ]),
        );
        let mut w = watcher("a", "c");
        w.pull(&history, 100);
        assert_eq!(w.next, 4);
        let message = w.message().expect("a message");
        assert_eq!(
            keys(&message),
            [(1, "a".into()), (2, "b".into()), (2, "a".into())]
        );
        assert!(w.message().is_none());
        assert_eq!(w.queued_events, 0);
    }

    #[tokio::test]
    async fn a_watcher_over_its_buffer_is_cancelled_with_where_to_resume() {
        let history = History::new(0, 1 << 20);
        history.push(4, Some((1..=4).map(|r| put(r, "t", "k")).collect()));
        let mut w = watcher("k", "");
        w.pull(&history, 2);
        assert!(w.ending);
        let kinds: Vec<_> = std::iter::from_fn(|| w.message()).collect();
        assert_eq!(keys(&kinds[0]), [(1, "k".into()), (2, "k".into())]);
        match &kinds[1] {
            watch_response::Kind::Canceled(c) => {
                assert_eq!(c.reason, CancelReason::FellBehind as i32);
                assert_eq!(c.resume_revision, 3);
            }
            other => panic!("expected a cancel, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_watcher_catching_up_reads_the_history_at_its_clients_pace() {
        let history = History::new(0, 1 << 20);
        history.push(4, Some((1..=4).map(|r| put(r, "t", "k")).collect()));
        let mut w = watcher("k", "");
        w.live = false;
        w.pull(&history, 2);
        assert!(!w.ending && !w.live);
        assert_eq!((w.queued_events, w.next), (2, 3));
        w.pull(&history, 2);
        assert_eq!(w.queued_events, 2, "nothing more while the buffer is full");
        assert_eq!(
            keys(&w.message().expect("events")),
            [(1, "k".into()), (2, "k".into())]
        );
        w.pull(&history, 2);
        assert!(w.live, "caught up");
        assert_eq!(w.next, 5);
        assert_eq!(
            keys(&w.message().expect("events")),
            [(3, "k".into()), (4, "k".into())]
        );
    }

    #[tokio::test]
    async fn a_watcher_whose_revision_left_the_history_or_whose_table_went_ends() {
        let history = History::new(0, 1);
        history.push(1, Some(vec![put(1, "t", "k")]));
        history.push(2, Some(vec![put(2, "t", "k")]));
        let mut w = watcher("k", "");
        w.pull(&history, 100);
        match w.message() {
            Some(watch_response::Kind::Canceled(c)) => {
                assert_eq!(c.reason, CancelReason::FellBehind as i32);
                assert_eq!((c.resume_revision, c.oldest_revision), (1, 2));
            }
            other => panic!("expected a cancel, got {other:?}"),
        }
        let history = History::new(0, 1 << 20);
        history.push(
            2,
            Some(vec![
                put(1, "t", "k"),
                Revisioned {
                    revision: Revision(2),
                    change: Change::TableReset {
                        table: Arc::from("t"),
                        deleted: true,
                    },
                },
            ]),
        );
        let mut w = watcher("k", "");
        w.pull(&history, 100);
        assert_eq!(keys(&w.message().expect("events")), [(1, "k".into())]);
        match w.message() {
            Some(watch_response::Kind::Canceled(c)) => {
                assert_eq!(c.reason, CancelReason::TableNotFound as i32);
                assert_eq!(c.code, Code::NotFound as i32);
            }
            other => panic!("expected a cancel, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_revision_larger_than_a_message_goes_in_fragments() {
        let history = History::new(0, 1 << 30);
        let big = "x".repeat(300 << 10);
        let changes = (0..5)
            .map(|i| Revisioned {
                revision: Revision(1),
                change: Change::Put {
                    table: Arc::from("t"),
                    record: Record::new(format!("k{i}").as_bytes(), big.as_bytes(), 1, 1, 1),
                    prev: None,
                },
            })
            .collect();
        history.push(1, Some(changes));
        let mut w = watcher("\0", "\0");
        w.pull(&history, 100);
        let mut parts = Vec::new();
        while let Some(watch_response::Kind::Events(e)) = w.message() {
            parts.push((e.events.len(), e.fragment));
        }
        assert_eq!(parts, [(4, true), (1, false)]);
    }
}
