//! The edge's tailer: follows an upstream's committed log into the local log and the
//! materializer, bootstraps from a snapshot when the upstream no longer has what it needs,
//! and fails over between upstreams.
//!
//! ```text
//!  upstream ──Subscribe(from = applied+1)──▶ Entries ─▶ check gap-free ─▶ local log (fsync)
//!                                                                          ─▶ apply (one publish per batch)
//!           ◀── silent past staleness / error ──▶ next upstream, same index, no snapshot
//!           ──SnapshotNeeded──▶ object store snapshot (else FetchSnapshot) ─▶ local snapshot
//!                                ─▶ cut the local log ─▶ swap state ─▶ subscribe again
//! ```

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use prost::Message;
use regatta_log::{EntryId, Log, LogIndex, NodeId, Record, RecordKind, Term};
use regatta_materializer::{Entry, Materializer, Revision, State, snapshot::SnapshotStore};
use regatta_proto::{
    event::Event,
    regatta::tail::v1::{
        FetchSnapshotRequest, SnapshotNeeded, SubscribeRequest, TailEntry, tail_client::TailClient,
        tail_message,
    },
};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use super::{
    local::{LocalSnapshots, Receiving},
    metrics::EdgeMetrics,
};
use crate::progress::{BYTES, Progress};

/// What the edge knows about its replication, shared with its role, status and readiness.
#[derive(Debug, Default)]
pub struct ReplicationState {
    /// Index in the upstream list of the upstream followed now.
    pub upstream: AtomicUsize,
    /// Woken whenever `upstream` changes (writes sent to the old one stop waiting).
    pub upstream_moved: tokio::sync::Notify,
    /// The upstream's commit index as last heard.
    pub upstream_commit: AtomicU64,
    /// Set once the edge has heard from an upstream since it started.
    pub connected: AtomicBool,
    /// Unix micros of the last message from the upstream.
    pub last_heard_micros: AtomicU64,
    /// Proposal time of the last applied event (Unix micros), for lag in seconds.
    pub last_event_micros: AtomicU64,
    /// Term of the last applied entry.
    pub term: AtomicU64,
    /// Bootstraps from a snapshot since start.
    pub bootstraps: AtomicU64,
    /// Why the tailer stopped for good, if it did.
    pub fatal: Mutex<Option<String>>,
    /// Set while appending to the local log waits for disk space.
    pub disk_full: AtomicBool,
}

impl ReplicationState {
    pub fn fatal(&self) -> Option<String> {
        self.fatal
            .lock()
            .map(|f| f.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }
}

#[derive(Debug, Clone)]
pub struct TailerSettings {
    pub name: String,
    pub upstreams: Vec<String>,
    /// Move to another upstream after hearing nothing for this long.
    pub staleness: Duration,
    /// Write a local snapshot (and cut the local log behind it) every this many entries.
    pub snapshot_entries: u64,
    /// Entries kept in the local log behind the local snapshot, for downstream edges.
    pub keep_entries: u64,
}

/// Why following one upstream ended.
#[derive(Debug)]
enum Stop {
    /// Try the next upstream.
    Upstream(String),
    /// Subscribe again to the same upstream (after a bootstrap).
    Resubscribe,
    /// The node was asked to stop.
    Shutdown,
    /// Continuing would serve wrong data: stop tailing, keep serving what is applied.
    Fatal(String),
}

/// Checks that `entries` continue exactly after `applied`, one index at a time.
pub fn check_gap_free(applied: u64, entries: &[TailEntry]) -> Result<(), String> {
    for (expected, e) in (applied + 1..).zip(entries) {
        if e.index != expected {
            return Err(format!(
                "upstream sent index {} where {expected} was due",
                e.index
            ));
        }
    }
    Ok(())
}

/// Whether a local snapshot is due.
pub fn snapshot_due(applied: u64, last_snapshot: u64, every: u64) -> bool {
    applied >= last_snapshot + every
}

/// Checks a snapshot stream of `received` bytes so far against the size the upstream
/// announced (`announced`, 0 when it did not say), while it runs and once it has `ended`:
/// never more bytes than announced, and at the end exactly as many.
pub fn check_snapshot_length(received: u64, announced: u64, ended: bool) -> Result<(), String> {
    if announced == 0 {
        return Ok(());
    }
    if received > announced {
        return Err(format!(
            "snapshot stream longer than announced: {received} bytes of {announced}"
        ));
    }
    if ended && received < announced {
        return Err(format!(
            "snapshot stream ended early: {received} bytes of {announced}"
        ));
    }
    Ok(())
}

/// Which snapshot to bootstrap from: the object store's newest when it is recent enough for
/// the upstream's log to continue after it, else one streamed by the upstream.
pub fn choose_source(needed: &SnapshotNeeded, have_object_store: bool) -> SnapshotSource {
    let continues = needed.object_snapshot_revision + 1 >= needed.first_available;
    if have_object_store && needed.object_snapshot_revision > 0 && continues {
        SnapshotSource::ObjectStore(needed.object_snapshot_revision)
    } else {
        SnapshotSource::Upstream
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotSource {
    ObjectStore(u64),
    Upstream,
}

/// A Maintenance.Reset waiting for the tailer: answered once the new state is in place.
pub type ResetRequest = tokio::sync::oneshot::Sender<Result<(), String>>;

pub struct Tailer {
    pub settings: TailerSettings,
    pub resets: tokio::sync::mpsc::Receiver<ResetRequest>,
    pub log: Log,
    pub materializer: Arc<Materializer>,
    pub objects: Option<SnapshotStore>,
    pub local: LocalSnapshots,
    pub state: Arc<ReplicationState>,
    pub metrics: EdgeMetrics,
    pub last_local_snapshot: u64,
    /// No local snapshot is attempted before this (set after one found the disk full).
    pub snapshot_not_before: Option<Instant>,
}

/// Longest pause between two attempts to append to a full disk.
const DISK_FULL_MAX_PAUSE: Duration = Duration::from_secs(1);
/// Pause after a local snapshot found the disk full.
const SNAPSHOT_DISK_FULL_PAUSE: Duration = Duration::from_secs(10);

fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

impl Tailer {
    /// Follows upstreams until shutdown or a fatal error.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let count = self.settings.upstreams.len();
        let mut current = 0;
        let mut failures_in_a_row = 0u32;
        loop {
            if self.state.upstream.swap(current, Ordering::Relaxed) != current {
                self.state.upstream_moved.notify_waiters();
            }
            self.metrics
                .upstream
                .set(i64::try_from(current).unwrap_or(0));
            let upstream = self.settings.upstreams[current].clone();
            let stop = tokio::select! {
                stop = self.follow(&upstream) => stop,
                () = shutdown.cancelled() => Stop::Shutdown,
            };
            match stop {
                Stop::Shutdown => return,
                Stop::Resubscribe => failures_in_a_row = 0,
                Stop::Fatal(reason) => {
                    tracing::error!(%reason, "edge stops replicating: continuing would serve wrong data");
                    if let Ok(mut fatal) = self.state.fatal.lock() {
                        *fatal = Some(reason);
                    }
                    return;
                }
                Stop::Upstream(reason) => {
                    failures_in_a_row += 1;
                    let next = (current + 1) % count;
                    tracing::warn!(%upstream, %reason, next = %self.settings.upstreams[next], "leaving upstream");
                    self.metrics.failovers.inc();
                    current = next;
                    if failures_in_a_row as usize >= count {
                        // Every upstream failed in turn: back off before the next round.
                        let pause =
                            Duration::from_millis(200 * u64::from(failures_in_a_row.min(10)));
                        tokio::select! {
                            () = tokio::time::sleep(pause) => {}
                            () = shutdown.cancelled() => return,
                        }
                    }
                }
            }
        }
    }

    async fn follow(&mut self, upstream: &str) -> Stop {
        let mut client = match connect(upstream, self.settings.staleness).await {
            Ok(c) => c,
            Err(e) => return Stop::Upstream(e),
        };
        let from = self.materializer.applied().0 + 1;
        let request = SubscribeRequest {
            from_index: from,
            subscriber: self.settings.name.clone(),
        };
        let mut stream =
            match tokio::time::timeout(self.settings.staleness, client.subscribe(request)).await {
                Ok(Ok(response)) => response.into_inner(),
                Ok(Err(status)) => return Stop::Upstream(format!("subscribe refused: {status}")),
                Err(_) => return Stop::Upstream("subscribe timed out".into()),
            };
        tracing::info!(%upstream, from, "following upstream");
        loop {
            let next = tokio::select! {
                next = tokio::time::timeout(self.settings.staleness, stream.message()) => next,
                Some(reset) = self.resets.recv() => {
                    tracing::info!("reset requested: bootstrapping from the upstream's snapshot");
                    let outcome = match self.fetch_from_upstream(&mut client).await {
                        Ok((state, copy)) => self.install(state, copy).await,
                        Err(stop) => Err(stop),
                    };
                    let answer = outcome.as_ref().map(|_| ()).map_err(|stop| format!("{stop:?}"));
                    let _ = reset.send(answer);
                    return match outcome {
                        Ok(()) => {
                            self.metrics.bootstraps.inc();
                            self.state.bootstraps.fetch_add(1, Ordering::Relaxed);
                            Stop::Resubscribe
                        }
                        Err(stop) => stop,
                    };
                }
            };
            let message = match next {
                Err(_) => {
                    return Stop::Upstream(format!("silent for {:?}", self.settings.staleness));
                }
                Ok(Err(status)) => return Stop::Upstream(format!("stream failed: {status}")),
                Ok(Ok(None)) => return Stop::Upstream("stream ended".into()),
                Ok(Ok(Some(m))) => m,
            };
            self.state.connected.store(true, Ordering::Relaxed);
            self.state
                .last_heard_micros
                .store(now_micros(), Ordering::Relaxed);
            match message.message {
                Some(tail_message::Message::Entries(batch)) => {
                    self.note_commit(batch.commit_index);
                    if let Err(stop) = self.ingest(batch.entries).await {
                        return stop;
                    }
                }
                Some(tail_message::Message::Heartbeat(beat)) => self.note_commit(beat.commit_index),
                Some(tail_message::Message::SnapshotNeeded(needed)) => {
                    return match self.bootstrap(&mut client, &needed).await {
                        Ok(()) => Stop::Resubscribe,
                        Err(stop) => stop,
                    };
                }
                None => return Stop::Upstream("upstream sent a message of an unknown kind".into()),
            }
        }
    }

    fn note_commit(&self, commit: u64) {
        self.state
            .upstream_commit
            .fetch_max(commit, Ordering::Relaxed);
        let applied = self.materializer.applied().0;
        let commit = self.state.upstream_commit.load(Ordering::Relaxed);
        self.metrics
            .upstream_commit
            .set(i64::try_from(commit).unwrap_or(i64::MAX));
        self.metrics
            .lag_entries
            .set(i64::try_from(commit.saturating_sub(applied)).unwrap_or(i64::MAX));
        let event = self.state.last_event_micros.load(Ordering::Relaxed);
        let lag = if commit <= applied || event == 0 {
            0.0
        } else {
            now_micros().saturating_sub(event) as f64 / 1e6
        };
        self.metrics.lag_seconds.set(lag);
    }

    /// Makes a batch durable in the local log, then applies it with one publish.
    async fn ingest(&mut self, entries: Vec<TailEntry>) -> Result<(), Stop> {
        if entries.is_empty() {
            return Ok(());
        }
        let applied = self.materializer.applied().0;
        check_gap_free(applied, &entries).map_err(Stop::Upstream)?;
        let mut records = Vec::with_capacity(entries.len());
        for e in entries {
            let kind = u8::try_from(e.kind)
                .ok()
                .and_then(RecordKind::from_byte)
                .ok_or_else(|| {
                    Stop::Fatal(format!(
                        "entry {} has kind {} this build does not know",
                        e.index, e.kind
                    ))
                })?;
            self.state.term.store(e.term, Ordering::Relaxed);
            records.push(Record::new(
                EntryId {
                    index: LogIndex(e.index),
                    term: Term(e.term),
                    leader: NodeId(e.leader_id),
                },
                kind,
                e.payload,
            ));
        }
        self.append_locally(&records).await?;
        if let Some(at) = apply_records(&self.materializer, &records).map_err(Stop::Fatal)? {
            self.state.last_event_micros.store(at, Ordering::Relaxed);
        }
        let applied = self.materializer.applied().0;
        self.metrics
            .applied
            .set(i64::try_from(applied).unwrap_or(i64::MAX));
        self.note_commit(0);
        if snapshot_due(
            applied,
            self.last_local_snapshot,
            self.settings.snapshot_entries,
        ) && self.snapshot_not_before.is_none_or(|t| Instant::now() >= t)
        {
            self.snapshot_locally().await?;
        }
        Ok(())
    }

    /// Makes `records` durable in the local log. While the disk is full it pauses and
    /// retries (the stream is not read meanwhile; the edge keeps serving what it applied),
    /// flagging it in `regatta_edge_append_paused`, the status and the log; any other
    /// failure stops replication.
    async fn append_locally(&mut self, records: &[Record]) -> Result<(), Stop> {
        let mut pending = records.to_vec();
        let mut since: Option<Instant> = None;
        let mut pause = Duration::from_millis(100);
        loop {
            // A failed attempt may have written a prefix (up to a segment roll).
            let next = self.log.next_index();
            pending.retain(|r| r.id.index >= next);
            match self.log.append(pending.clone()).await {
                Ok(()) => break,
                Err(e) if e.is_disk_full() => {
                    if since.is_none() {
                        tracing::error!(error = %e, at = next.get(), "local log: disk full, replication paused until space is freed (reads go on)");
                        self.metrics.append_paused.set(1);
                        self.state.disk_full.store(true, Ordering::Relaxed);
                        since = Some(Instant::now());
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(DISK_FULL_MAX_PAUSE);
                }
                Err(e) => return Err(Stop::Fatal(format!("local log: {e}"))),
            }
        }
        if let Some(since) = since {
            tracing::warn!(paused = ?since.elapsed(), "local log: disk has room again, replication resumed");
            self.metrics.append_paused.set(0);
            self.state.disk_full.store(false, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Writes a local snapshot of the current view and cuts the local log behind it.
    async fn snapshot_locally(&mut self) -> Result<(), Stop> {
        let view = self.materializer.view();
        let revision = view.revision().0;
        let local = self.local.clone();
        let saved = tokio::task::spawn_blocking(move || local.save(&view))
            .await
            .map_err(|e| Stop::Fatal(format!("local snapshot writer: {e}")))?;
        match saved {
            Ok(()) => self.snapshot_not_before = None,
            Err(e) if regatta_api::disk::is_disk_full(e.as_ref()) => {
                // The log still holds everything since the last one: try again later.
                tracing::error!(
                    revision,
                    error = format!("{e:#}"),
                    "local snapshot: disk full, retrying later"
                );
                self.snapshot_not_before = Some(Instant::now() + SNAPSHOT_DISK_FULL_PAUSE);
                return Ok(());
            }
            Err(e) => return Err(Stop::Fatal(format!("local snapshot: {e:#}"))),
        }
        self.last_local_snapshot = revision;
        let cut = revision.saturating_sub(self.settings.keep_entries);
        if cut > 0 {
            self.log
                .purge(EntryId {
                    index: LogIndex(cut),
                    term: Term(0),
                    leader: NodeId(0),
                })
                .map_err(|e| Stop::Fatal(format!("purging the local log: {e}")))?;
        }
        tracing::info!(revision, "local snapshot written");
        Ok(())
    }

    async fn bootstrap(
        &mut self,
        client: &mut TailClient<Channel>,
        needed: &SnapshotNeeded,
    ) -> Result<(), Stop> {
        let started = Instant::now();
        let source = choose_source(needed, self.objects.is_some());
        tracing::info!(
            ?source,
            first_available = needed.first_available,
            "bootstrapping from a snapshot"
        );
        let (state, copy) = match (source, &self.objects) {
            (SnapshotSource::ObjectStore(revision), Some(store)) => {
                let mut progress = Progress::logged(
                    format!("bootstrap: downloading snapshot {revision}"),
                    BYTES,
                    None,
                );
                // The object is already a snapshot in the local format: keep its bytes as
                // they arrive rather than encode the state again after loading it.
                let copy = match self.local.receive() {
                    Ok(copy) => Some(copy),
                    Err(e) => {
                        tracing::warn!(
                            error = format!("{e:#}"),
                            "cannot copy the snapshot while downloading; it will be written after loading"
                        );
                        None
                    }
                };
                let downloaded = store
                    .download_observed(Revision(revision), |chunk, done, total| {
                        if let Some(copy) = &copy {
                            copy.push(chunk);
                        }
                        progress.set_total(Some(total));
                        progress.set(done);
                    })
                    .await;
                progress.finish();
                match downloaded {
                    Ok(state) => (state, copy),
                    Err(e) => {
                        drop(copy);
                        tracing::warn!(revision, error = %e, "object store snapshot unusable; fetching one from the upstream");
                        self.fetch_from_upstream(client).await?
                    }
                }
            }
            _ => self.fetch_from_upstream(client).await?,
        };
        self.install(state, copy).await?;
        self.metrics.bootstraps.inc();
        self.state.bootstraps.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .bootstrap_seconds
            .set(started.elapsed().as_secs_f64());
        tracing::info!(revision = self.materializer.applied().0, took = ?started.elapsed(), "bootstrap done");
        Ok(())
    }

    /// The upstream's snapshot, decoded, with a copy of its bytes on the way to becoming the
    /// local snapshot (when the copy could be started).
    async fn fetch_from_upstream(
        &self,
        client: &mut TailClient<Channel>,
    ) -> Result<(State, Option<Receiving>), Stop> {
        let mut stream = client
            .fetch_snapshot(FetchSnapshotRequest {})
            .await
            .map_err(|s| Stop::Upstream(format!("snapshot refused: {s}")))?
            .into_inner();
        let copy = self
            .local
            .receive()
            .inspect_err(|e| {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "cannot copy the snapshot while fetching; it will be written after loading"
                )
            })
            .ok();
        let mut data = Vec::new();
        let mut announced = 0;
        let mut progress =
            Progress::logged("bootstrap: fetching the upstream's snapshot", BYTES, None);
        while let Some(chunk) = stream
            .message()
            .await
            .map_err(|s| Stop::Upstream(format!("snapshot stream: {s}")))?
        {
            if announced == 0 && chunk.total_bytes > 0 {
                announced = chunk.total_bytes;
                progress.set_total(Some(announced));
            }
            data.extend_from_slice(&chunk.data);
            check_snapshot_length(data.len() as u64, announced, false).map_err(Stop::Upstream)?;
            if let Some(copy) = &copy {
                copy.push(&chunk.data);
            }
            progress.set(data.len() as u64);
        }
        progress.finish();
        check_snapshot_length(data.len() as u64, announced, true).map_err(Stop::Upstream)?;
        let state =
            tokio::task::spawn_blocking(move || regatta_materializer::snapshot::decode(&data))
                .await
                .map_err(|e| Stop::Fatal(format!("snapshot decoder: {e}")))?
                .map_err(|e| Stop::Upstream(format!("upstream snapshot rejected: {e}")))?;
        Ok((state, copy))
    }

    /// Makes `state` this edge's state: saved locally first (so a crash right after finds
    /// it), the local log cut to continue after it, then swapped in atomically.
    async fn install(&mut self, state: State, copy: Option<Receiving>) -> Result<(), Stop> {
        let revision = state.revision().0;
        let state = Arc::new(state);
        let local = self.local.clone();
        let to_save = state.clone();
        tokio::task::spawn_blocking(move || match copy {
            Some(copy) => copy.keep(to_save.revision()),
            None => local.save(&to_save),
        })
        .await
        .map_err(|e| Stop::Fatal(format!("local snapshot writer: {e}")))?
        .map_err(|e| {
            if regatta_api::disk::is_disk_full(e.as_ref()) {
                // Nothing changed yet: the edge serves its old state and tries again.
                Stop::Upstream(format!("local snapshot: disk full: {e:#}"))
            } else {
                Stop::Fatal(format!("local snapshot: {e:#}"))
            }
        })?;
        if self
            .log
            .last_index()
            .is_some_and(|last| last.get() > revision)
        {
            self.log
                .truncate(LogIndex(revision + 1))
                .map_err(|e| Stop::Fatal(format!("cutting the local log: {e}")))?;
        }
        self.log
            .purge(EntryId {
                index: LogIndex(revision),
                term: Term(0),
                leader: NodeId(0),
            })
            .map_err(|e| Stop::Fatal(format!("cutting the local log: {e}")))?;
        self.materializer.replace(Arc::unwrap_or_clone(state));
        self.last_local_snapshot = revision;
        self.metrics
            .applied
            .set(i64::try_from(revision).unwrap_or(i64::MAX));
        Ok(())
    }
}

/// Applies log records (already durable) with one publish. Returns the proposal time of the
/// last event, if the batch had one. An error means this node must stop applying.
pub fn apply_records(
    materializer: &Materializer,
    records: &[Record],
) -> Result<Option<u64>, String> {
    let mut events = Vec::with_capacity(records.len());
    for r in records {
        let event =
            match r.kind {
                RecordKind::Normal => Some(Event::decode(r.payload.clone()).map_err(|e| {
                    format!("entry {} carries an undecodable event: {e}", r.id.index)
                })?),
                RecordKind::Blank | RecordKind::Membership => None,
            };
        events.push((r.id.index.get(), event));
    }
    let batch = events.iter().map(|(index, event)| Entry {
        index: Revision(*index),
        event: event.as_ref(),
    });
    materializer
        .apply_batch(batch)
        .map_err(|e| format!("apply: {e}"))?;
    Ok(events
        .iter()
        .rev()
        .find_map(|(_, e)| e.as_ref().map(|e| e.proposed_at_micros)))
}

/// Opens a channel to an upstream's replication port.
pub async fn connect(upstream: &str, timeout: Duration) -> Result<TailClient<Channel>, String> {
    let endpoint = Channel::from_shared(upstream.to_string())
        .map_err(|e| format!("invalid upstream URL {upstream:?}: {e}"))?;
    let channel = endpoint
        .connect_timeout(timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    Ok(TailClient::new(channel)
        .max_decoding_message_size(regatta_api::raft_network::MAX_RAFT_MESSAGE_BYTES)
        .max_encoding_message_size(regatta_api::raft_network::MAX_RAFT_MESSAGE_BYTES))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64) -> TailEntry {
        TailEntry {
            index,
            term: 1,
            leader_id: 1,
            kind: 2,
            payload: Default::default(),
        }
    }

    #[test]
    fn entries_must_continue_the_applied_index() {
        assert!(check_gap_free(4, &[entry(5), entry(6)]).is_ok());
        assert!(check_gap_free(4, &[entry(6)]).is_err(), "a gap");
        assert!(check_gap_free(4, &[entry(4)]).is_err(), "a repeat");
        assert!(
            check_gap_free(4, &[entry(5), entry(7)]).is_err(),
            "a hole inside the batch"
        );
    }

    #[test]
    fn a_snapshot_stream_must_match_its_announced_size() {
        assert!(
            check_snapshot_length(10, 0, true).is_ok(),
            "size not announced"
        );
        assert!(check_snapshot_length(4, 10, false).is_ok(), "still running");
        assert!(check_snapshot_length(10, 10, true).is_ok());
        let over = check_snapshot_length(11, 10, false).expect_err("longer");
        assert!(over.contains("11 bytes of 10"), "{over}");
        let short = check_snapshot_length(4, 10, true).expect_err("cut");
        assert!(short.contains("ended early: 4 bytes of 10"), "{short}");
    }

    #[test]
    fn bootstrap_prefers_a_recent_enough_object_snapshot() {
        let needed = |rev, first| SnapshotNeeded {
            object_snapshot_revision: rev,
            first_available: first,
        };
        assert_eq!(
            choose_source(&needed(100, 90), true),
            SnapshotSource::ObjectStore(100)
        );
        assert_eq!(
            choose_source(&needed(100, 101), true),
            SnapshotSource::ObjectStore(100)
        );
        assert_eq!(
            choose_source(&needed(100, 150), true),
            SnapshotSource::Upstream,
            "too old to continue"
        );
        assert_eq!(
            choose_source(&needed(0, 10), true),
            SnapshotSource::Upstream,
            "none in the store"
        );
        assert_eq!(
            choose_source(&needed(100, 90), false),
            SnapshotSource::Upstream,
            "no store configured"
        );
    }

    #[test]
    fn local_snapshots_come_every_n_entries() {
        assert!(!snapshot_due(99, 0, 100));
        assert!(snapshot_due(100, 0, 100));
        assert!(!snapshot_due(150, 100, 100));
    }
}
