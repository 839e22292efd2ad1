//! Archives every sealed log segment to object storage, holds local purges back to what is
//! archived, and applies the retention policy to snapshots and archived segments.
//!
//! **Every core node archives its own sealed segments**, not only the leader. A node may only
//! purge what is archived, and a node learns that most simply by archiving it itself: a
//! follower never depends on a leader that may be slow, partitioned or pointed at another
//! store (each node's default `file://<data-dir>/objects` is private). Nodes sharing one
//! store cooperate through the keys: uploads are create-only, so the first node to archive
//! index N writes `segments/N.seg.zst`, the others find it there, read its header (one range
//! read) and carry on after its last index. A node's segment that starts below what is
//! archived is re-based (re-framed to start at the first index not archived yet), so the
//! archive holds every index once, in objects that never overlap. The layout is documented
//! on [`crate::archive::SegmentArchive`].
//!
//! Off the write path: this task reads sealed (immutable) files and uploads them; a slow or
//! failing store delays only the archive and, through the purge gate, local log purges.
//! Failures are counted and retried with backoff.
//!
//! **Purge gate.** openraft asks the log to purge behind each snapshot. [`GatedLogStore`]
//! wraps the log storage and lets a purge through only up to the archived index and no
//! further than the newest snapshot known in the object store ([`purge_limit`],
//! [`purge_to`]), so that an edge bootstrapping from that snapshot can continue from this
//! node's log; until a node knows of a snapshot it purges nothing. What the gate held back
//! is remembered and purged here once the archive (or a newer snapshot, listed every
//! couple of seconds while a purge waits) allows. A purge to the end of the log or beyond
//! (a follower installing a snapshot from the leader) always goes through: the log must
//! continue after it, and those entries are in the snapshot (and archived by the node that
//! has them).
//!
//! **Missing objects** ([`crate::archive::plan_repair`]): every `--object-store.check-interval`
//! (30 s) the archiver
//! lists the store and compares it with the segments it knows are archived and the
//! snapshots it has seen. A segment gone from the store is uploaded again from this node's
//! log as far as the log still holds it; what the log no longer holds is a hole, logged
//! (warn), counted and recorded in the store (see [`crate::archive`]). A snapshot gone is
//! counted and logged, and forgotten as the newest known one, so purges wait and the
//! leader's uploader writes a new one. A purge about to drop entries first checks that the
//! objects holding them are still there ([`objects_holding`]). Both show on /metrics:
//! `regatta_archive_missing_objects_total`, `regatta_archive_holes`.
//!
//! **Retention** ([`retention_plan`]): with `--object-store.keep-snapshots K` (0 keeps
//! everything), once more than K snapshots exist the older ones are deleted, and with them
//! every archived segment wholly at or below the oldest kept snapshot. Until K snapshots
//! exist nothing is deleted, so a young cluster can be restored to any revision.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Debug,
    ops::{RangeBounds, RangeInclusive},
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context, Result};
use bytes::Bytes;
use object_store::ObjectStoreExt;
use openraft::{
    LogId, OptionalSend, StorageError, Vote,
    storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage},
};
use regatta_log::{
    EntryId, Log, LogIndex, SegmentId,
    raft::{RaftLogReaderHandle, RaftLogStore, codec},
    reader::SegmentRecords,
};
use regatta_materializer::{Revision, raft::TypeConfig, snapshot::SnapshotStore};
use tokio_util::sync::CancellationToken;

use crate::archive::{Put, SegmentArchive, describe, plan_repair};

/// zstd level for segment archives: fast, still about 3-5x on typical entries.
const ZSTD_LEVEL: i32 = 3;
/// How often the archiver looks for newly sealed segments.
const PASS_INTERVAL: Duration = Duration::from_millis(500);
/// Least time between two listings of the store's snapshots while a purge waits for one.
const SNAPSHOT_LIST_INTERVAL: Duration = Duration::from_secs(2);
/// How often retention runs (every this many passes).
const RETENTION_EVERY: u32 = 20;

/// How far a purge may go: `requested`, unless entries up to it are not archived yet; then
/// up to `archived` (or nothing). A purge reaching the log's last entry or beyond always goes
/// through (snapshot install: the log must continue after it). Pure.
pub fn purge_to(
    requested: LogIndex,
    archived: Option<LogIndex>,
    last_local: Option<LogIndex>,
) -> Option<LogIndex> {
    if last_local.is_none_or(|last| requested >= last) {
        return Some(requested);
    }
    archived.map(|a| a.min(requested))
}

/// What retention deletes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RetentionPlan {
    pub snapshots: Vec<Revision>,
    /// Indices into the segment listing.
    pub segments: Vec<usize>,
}

/// Plans retention. `snapshots` ascending; `segments` the first index of each archived
/// segment, ascending, non-overlapping (a segment's last index is below the next one's
/// first; the newest is never deleted). Pure.
pub fn retention_plan(keep: usize, snapshots: &[Revision], segments: &[u64]) -> RetentionPlan {
    if keep == 0 || snapshots.len() <= keep {
        return RetentionPlan::default();
    }
    let cut = snapshots.len() - keep;
    let oldest_kept = snapshots[cut].0;
    let segments = segments
        .windows(2)
        .enumerate()
        .take_while(|(_, w)| w[1].saturating_sub(1) <= oldest_kept)
        .map(|(i, _)| i)
        .collect();
    RetentionPlan {
        snapshots: snapshots[..cut].to_vec(),
        segments,
    }
}

/// Where a purge may reach: up to what is archived, and no further than the newest snapshot
/// known to be in the object store, so that an edge bootstrapping from that snapshot finds
/// the entries after it in this node's log (instead of needing a snapshot streamed from the
/// core). A node that knows of no snapshot purges nothing: a follower learns of the
/// leader's uploads only by listing the store, and a purge up to the archive alone could
/// pass a snapshot uploaded meanwhile. A snapshot known late only keeps more log: it is
/// never newer than the store's newest. `None`: nothing may be purged yet. Pure.
pub fn purge_limit(archived: Option<LogIndex>, newest_snapshot: u64) -> Option<LogIndex> {
    match newest_snapshot {
        0 => None,
        s => archived.map(|a| a.min(LogIndex(s))),
    }
}

/// The first indices of the archive objects in `known` (first → last index) holding
/// entries in `from..=to`: what must still be in the store before the log lets those
/// entries go. Pure.
pub fn objects_holding(known: &BTreeMap<u64, u64>, from: u64, to: u64) -> Vec<u64> {
    known
        .range(..=to)
        .filter(|(_, last)| **last >= from)
        .map(|(first, _)| *first)
        .collect()
}

/// What the purge gate and the archiver share.
#[derive(Debug, Default)]
pub struct PurgeGate {
    /// Highest index known to be in the archive, plus one (0: nothing yet).
    archived_next: AtomicU64,
    /// Revision of the newest snapshot known to be in the object store (0: none), shared
    /// with the uploader and the log-tail service.
    newest_snapshot: Arc<AtomicU64>,
    /// The furthest purge openraft asked for that was held back.
    held: Mutex<Option<EntryId>>,
}

impl PurgeGate {
    pub fn new(newest_snapshot: Arc<AtomicU64>) -> Self {
        Self {
            newest_snapshot,
            ..Self::default()
        }
    }

    pub fn archived(&self) -> Option<LogIndex> {
        match self.archived_next.load(Ordering::Acquire) {
            0 => None,
            n => Some(LogIndex(n - 1)),
        }
    }

    fn note_snapshot(&self, revision: u64) {
        self.newest_snapshot.fetch_max(revision, Ordering::AcqRel);
    }

    /// Forgets snapshots newer than `revision` (they are gone from the store): purges wait
    /// for a new one, and the uploader, which shares this figure, writes one.
    fn forget_snapshots_after(&self, revision: u64) {
        self.newest_snapshot.fetch_min(revision, Ordering::AcqRel);
    }

    fn set_archived(&self, index: LogIndex) {
        self.archived_next
            .fetch_max(index.0.saturating_add(1), Ordering::AcqRel);
    }

    fn hold(&self, requested: EntryId) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.is_none_or(|h| h.index < requested.index) {
            *held = Some(requested);
        }
    }

    fn held(&self) -> Option<EntryId> {
        *self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Purges `log` as far as `requested` allows now (blocking IO).
    fn purge(&self, log: &Log, requested: EntryId) -> regatta_log::Result<()> {
        let limit = purge_limit(
            self.archived(),
            self.newest_snapshot.load(Ordering::Acquire),
        );
        let Some(to) = purge_to(requested.index, limit, log.last_index()) else {
            self.hold(requested);
            return Ok(());
        };
        if to < requested.index {
            self.hold(requested);
        }
        if log.purged().is_some_and(|p| p.index >= to) {
            return Ok(());
        }
        let id = if to == requested.index {
            requested
        } else {
            match log.read(to..=to)?.first() {
                Some(r) => r.id,
                None => return Ok(()),
            }
        };
        if to < requested.index {
            tracing::debug!(requested = %requested.index, to = %to, "purge held back to the archived index or the newest object-store snapshot");
        }
        log.purge(id)
    }
}

/// openraft's log storage with purges held back to the archived index (see the module docs).
pub struct GatedLogStore {
    inner: RaftLogStore<TypeConfig>,
    gate: Arc<PurgeGate>,
}

impl GatedLogStore {
    pub fn new(inner: RaftLogStore<TypeConfig>, gate: Arc<PurgeGate>) -> Self {
        Self { inner, gate }
    }
}

impl RaftLogReader<TypeConfig> for GatedLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<openraft::Entry<TypeConfig>>, StorageError<u64>> {
        self.inner.try_get_log_entries(range).await
    }
}

impl RaftLogStorage<TypeConfig> for GatedLogStore {
    type LogReader = RaftLogReaderHandle<TypeConfig>;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<u64>> {
        self.inner.get_log_state().await
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.inner.get_log_reader().await
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        self.inner.save_vote(vote).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        self.inner.read_vote().await
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<u64>>,
    ) -> Result<(), StorageError<u64>> {
        self.inner.save_committed(committed).await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        self.inner.read_committed().await
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        self.inner.append(entries, callback).await
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        self.inner.truncate(log_id).await
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        let log = self.inner.log().clone();
        let gate = self.gate.clone();
        let requested = codec::entry_id(&log_id);
        if log.last_index().is_some_and(|last| requested.index < last) {
            // An ordinary purge behind a snapshot: left to the archiver, which first asks the
            // object store for its newest snapshot (only the leader uploads them, so this
            // node's own figure may be behind).
            gate.hold(requested);
            return Ok(());
        }
        tokio::task::spawn_blocking(move || gate.purge(&log, requested))
            .await
            .map_err(|e| {
                StorageError::from(openraft::StorageIOError::write_logs(
                    openraft::AnyError::new(&std::io::Error::other(e.to_string())),
                ))
            })?
            .map_err(|e| {
                StorageError::from(openraft::StorageIOError::write_logs(
                    openraft::AnyError::new(&e),
                ))
            })
    }
}

/// The archiver's counters, on /metrics.
#[derive(Debug, Clone)]
pub struct ArchiverMetrics {
    pub uploaded: prometheus::IntCounter,
    pub failures: prometheus::IntCounter,
    pub archived_index: prometheus::IntGauge,
    pub deleted: prometheus::IntCounter,
    pub missing: prometheus::IntCounter,
    pub holes: prometheus::IntGauge,
}

impl ArchiverMetrics {
    pub fn register(registry: &prometheus::Registry) -> Result<Self> {
        use crate::metrics::{counter, gauge};
        Ok(Self {
            uploaded: counter(
                registry,
                "regatta_archive_segments_uploaded_total",
                "Sealed log segments uploaded to object storage",
            )?,
            failures: counter(
                registry,
                "regatta_archive_failures_total",
                "Segment archive or retention attempts that failed (retried with backoff)",
            )?,
            archived_index: gauge(
                registry,
                "regatta_archive_last_index",
                "Newest log index known to be archived in object storage",
            )?,
            deleted: counter(
                registry,
                "regatta_archive_retention_deleted_total",
                "Snapshots and archived segments deleted by retention",
            )?,
            missing: counter(
                registry,
                "regatta_archive_missing_objects_total",
                "Archived segments and snapshots found missing from object storage",
            )?,
            holes: gauge(
                registry,
                "regatta_archive_holes",
                "Ranges of log indices missing from the archive that no log here holds (recorded under holes/ in the store)",
            )?,
        })
    }
}

/// The archiver task of one core node.
pub struct Archiver {
    pub log: Log,
    pub archive: SegmentArchive,
    pub snapshots: SnapshotStore,
    pub gate: Arc<PurgeGate>,
    /// The applied (so committed) index: only segments wholly at or below it are archived,
    /// since a sealed segment may still hold entries a new leader truncates.
    pub applied: Arc<dyn Fn() -> u64 + Send + Sync>,
    /// Snapshots to keep (0: keep everything).
    pub keep_snapshots: usize,
    /// How often the store is listed for missing objects.
    pub check_interval: Duration,
    pub metrics: ArchiverMetrics,
    /// When the snapshots were last listed for a waiting purge.
    pub last_snapshot_list: Mutex<Option<std::time::Instant>>,
    /// What this node knows is in the store, to notice what goes missing.
    pub known: Mutex<Known>,
}

/// The archived segments (first index → last index) and the snapshots (revisions) an
/// archiver knows are in the object store.
#[derive(Debug, Default)]
pub struct Known {
    segments: BTreeMap<u64, u64>,
    snapshots: BTreeSet<u64>,
}

impl Archiver {
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Duration::from_secs(1);
        let mut started = false;
        let mut passes = 0u32;
        let mut last_audit = tokio::time::Instant::now();
        loop {
            let result = async {
                if !started {
                    self.find_archived_tip().await?;
                    started = true;
                }
                self.archive_sealed(&shutdown).await?;
                passes = passes.wrapping_add(1);
                if passes % RETENTION_EVERY == 1 {
                    self.apply_retention().await?;
                }
                if last_audit.elapsed() >= self.check_interval {
                    last_audit = tokio::time::Instant::now();
                    self.audit().await?;
                }
                self.release_held_purge().await?;
                anyhow::Ok(())
            }
            .await;
            let pause = match result {
                Ok(()) => {
                    backoff = Duration::from_secs(1);
                    PASS_INTERVAL
                }
                Err(e) => {
                    self.metrics.failures.inc();
                    tracing::warn!(error = format!("{e:#}"), retry_in = ?backoff, "segment archive failed");
                    let pause = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                    pause
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    fn note_archived(&self, index: LogIndex) {
        self.gate.set_archived(index);
        if let Some(a) = self.gate.archived() {
            self.metrics
                .archived_index
                .set(i64::try_from(a.0).unwrap_or(i64::MAX));
        }
    }

    fn known(&self) -> std::sync::MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The newest archived index, from the newest object's header; and what is archived
    /// (each object up to the next one's first index, the last to its header's last).
    async fn find_archived_tip(&self) -> Result<()> {
        let keys = self.archive.keys().await?;
        if let Some((_, location, _)) = keys.last() {
            let (_, last) = self.archive.span_of(location).await?;
            self.note_archived(last);
            let mut known = self.known();
            for (i, (id, _, _)) in keys.iter().enumerate() {
                let end = keys.get(i + 1).map_or(last.0, |(next, _, _)| {
                    next.first_index().0.saturating_sub(1)
                });
                known.segments.insert(id.first_index().0, end);
            }
        }
        let snapshots = self.snapshots.list().await?;
        self.known().snapshots.extend(snapshots.iter().map(|r| r.0));
        self.metrics
            .holes
            .set(i64::try_from(self.archive.holes().await?.len()).unwrap_or(i64::MAX));
        Ok(())
    }

    /// The indices this node's log can archive: its sealed segments up to the applied index.
    fn local_range(&self) -> Option<RangeInclusive<u64>> {
        let applied = (self.applied)();
        let sealed = self.log.sealed_segments();
        let first = sealed.first()?.id.first_index().0;
        let last = sealed
            .iter()
            .take_while(|s| s.last.index.0 <= applied)
            .last()?
            .last
            .index
            .0;
        Some(first..=last)
    }

    /// Lists the store and repairs what is missing from it (see the module docs).
    async fn audit(&self) -> Result<()> {
        let listed_snapshots: Vec<u64> = self.snapshots.list().await?.iter().map(|r| r.0).collect();
        let oldest_snapshot = listed_snapshots.first().copied().unwrap_or(0);
        let missing_snapshots: Vec<u64> = {
            let mut known = self.known();
            // The newest snapshot this node uploaded or learned of since the last listing.
            match self.gate.newest_snapshot.load(Ordering::Acquire) {
                0 => {}
                newest => {
                    known.snapshots.insert(newest);
                }
            }
            let missing = known
                .snapshots
                .iter()
                .filter(|r| **r >= oldest_snapshot && listed_snapshots.binary_search(r).is_err())
                .copied()
                .collect();
            known.snapshots = listed_snapshots.iter().copied().collect();
            missing
        };
        if !missing_snapshots.is_empty() {
            self.metrics.missing.inc_by(missing_snapshots.len() as u64);
            let newest = listed_snapshots.last().copied().unwrap_or(0);
            tracing::warn!(revisions = ?missing_snapshots, newest_left = newest, "snapshots missing from the object store; a new one will be uploaded");
            self.gate.forget_snapshots_after(newest);
        }

        let listed: Vec<u64> = self
            .archive
            .keys()
            .await?
            .iter()
            .map(|(id, _, _)| id.first_index().0)
            .collect();
        let known: Vec<RangeInclusive<u64>> =
            self.known().segments.iter().map(|(a, b)| *a..=*b).collect();
        let plan = plan_repair(&known, &listed, oldest_snapshot, self.local_range());
        if plan.missing_objects > 0 {
            self.metrics.missing.inc_by(plan.missing_objects as u64);
            tracing::warn!(
                missing = plan.missing_objects,
                upload_again = describe(&plan.reupload),
                lost = describe(&plan.lost),
                "archived segments missing from the object store"
            );
            self.known()
                .segments
                .retain(|first, _| listed.binary_search(first).is_ok());
            let mut lost = plan.lost;
            for range in plan.reupload {
                lost.extend(self.upload_again(range).await?);
            }
            for range in &lost {
                tracing::warn!(
                    first = range.start(),
                    last = range.end(),
                    "hole in the archive: these indices are gone from the object store and this node's log no longer holds them"
                );
                let note = format!(
                    "indices {}..={} went missing from the archive and could not be uploaded again; found at {}\n",
                    range.start(),
                    range.end(),
                    humantime::format_rfc3339_seconds(std::time::SystemTime::now())
                );
                self.archive.record_hole(range, &note).await?;
            }
        }
        self.metrics
            .holes
            .set(i64::try_from(self.archive.holes().await?.len()).unwrap_or(i64::MAX));
        Ok(())
    }

    /// Uploads `range` again from the local log; returns what the log no longer held.
    async fn upload_again(&self, range: RangeInclusive<u64>) -> Result<Vec<RangeInclusive<u64>>> {
        let mut lost = Vec::new();
        let mut next = *range.start();
        for sealed in self.log.sealed_segments() {
            let (first, last) = (sealed.id.first_index().0, sealed.last.index.0);
            if next > *range.end() || first > *range.end() {
                break;
            }
            if last < next {
                continue;
            }
            if first > next {
                lost.push(next..=first - 1);
            }
            let start = LogIndex(next.max(first));
            let path = sealed.path.clone();
            let packed = tokio::task::spawn_blocking(move || pack_from(&path, start))
                .await
                .context("packing task")??;
            let Some(packed) = packed else {
                lost.push(start.0..=last.min(*range.end()));
                next = last + 1;
                continue;
            };
            let last = match self.archive.put(SegmentId(start), packed).await? {
                Put::Written => {
                    self.metrics.uploaded.inc();
                    tracing::info!(first = %start, last, "missing segment uploaded again");
                    last
                }
                Put::Present { last } => last.0,
            };
            self.known().segments.insert(start.0, last);
            next = last + 1;
        }
        if next <= *range.end() {
            lost.push(next..=*range.end());
        }
        Ok(lost)
    }

    /// Uploads every sealed segment holding entries past the archived index.
    async fn archive_sealed(&self, shutdown: &CancellationToken) -> Result<()> {
        for sealed in self.log.sealed_segments() {
            if sealed.last.index.0 > (self.applied)() {
                break;
            }
            loop {
                if shutdown.is_cancelled() {
                    return Ok(());
                }
                let archived = self.gate.archived();
                if archived.is_some_and(|a| a >= sealed.last.index) {
                    break;
                }
                let start = match archived {
                    Some(a) if a.next() > sealed.id.first_index() => a.next(),
                    Some(a) if a.next() < sealed.id.first_index() => {
                        tracing::warn!(archived = %a, segment = %sealed.id, "entries between the archive and this node's log are not here to archive (purged after a snapshot install)");
                        sealed.id.first_index()
                    }
                    _ => sealed.id.first_index(),
                };
                let path = sealed.path.clone();
                let packed = tokio::task::spawn_blocking(move || pack_from(&path, start))
                    .await
                    .context("packing task")??;
                let Some(packed) = packed else {
                    break; // purged meanwhile (a snapshot install): nothing to archive
                };
                match self.archive.put(SegmentId(start), packed).await? {
                    Put::Written => {
                        self.metrics.uploaded.inc();
                        tracing::info!(first = %start, last = %sealed.last.index, "segment archived");
                        self.known().segments.insert(start.0, sealed.last.index.0);
                        self.note_archived(sealed.last.index);
                    }
                    Put::Present { last } => {
                        tracing::debug!(first = %start, last = %last, "segment already archived");
                        if archived.is_some_and(|a| last <= a) {
                            anyhow::bail!(
                                "archive object at {start} ends at {last}, before the archived index"
                            );
                        }
                        self.known().segments.insert(start.0, last.0);
                        self.note_archived(last);
                    }
                }
            }
        }
        Ok(())
    }

    /// Carries out a purge openraft asked for and the gate held back, as far as allowed now.
    async fn release_held_purge(&self) -> Result<()> {
        let Some(held) = self.gate.held() else {
            return Ok(());
        };
        if self.log.purged().is_some_and(|p| p.index >= held.index) {
            return Ok(());
        }
        // Asks the store at most every SNAPSHOT_LIST_INTERVAL while a purge waits.
        let due = {
            let mut last = self
                .last_snapshot_list
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let due = last.is_none_or(|t| t.elapsed() >= SNAPSHOT_LIST_INTERVAL);
            if due {
                *last = Some(std::time::Instant::now());
            }
            due
        };
        if due && let Some(newest) = self.snapshots.list().await?.last() {
            self.gate.note_snapshot(newest.0);
        }
        // Before the log lets entries go, their archive objects must still be there: one
        // gone since the last audit is uploaded again now, while the log still holds it.
        let limit = purge_limit(
            self.gate.archived(),
            self.gate.newest_snapshot.load(Ordering::Acquire),
        );
        if let Some(to) = purge_to(held.index, limit, self.log.last_index()) {
            let from = self.log.purged().map_or(0, |p| p.index.0.saturating_add(1));
            let firsts = objects_holding(&self.known().segments, from, to.0);
            for first in firsts {
                if !self.archive.exists(SegmentId(LogIndex(first))).await? {
                    tracing::warn!(
                        first,
                        "an archived segment the log is about to purge is gone from the object store; checking the archive first"
                    );
                    self.audit().await?;
                    break;
                }
            }
        }
        let log = self.log.clone();
        let gate = self.gate.clone();
        tokio::task::spawn_blocking(move || gate.purge(&log, held))
            .await
            .context("purge task")?
            .context("purging the log")
    }

    async fn apply_retention(&self) -> Result<()> {
        let snapshots = self.snapshots.list().await?;
        // Learns of snapshots other nodes uploaded (only the leader uploads).
        if let Some(newest) = snapshots.last() {
            self.gate.note_snapshot(newest.0);
        }
        if self.keep_snapshots == 0 {
            return Ok(());
        }
        let keys = self.archive.keys().await?;
        let firsts: Vec<u64> = keys.iter().map(|(id, _, _)| id.first_index().0).collect();
        let plan = retention_plan(self.keep_snapshots, &snapshots, &firsts);
        for rev in &plan.snapshots {
            let location = self.snapshots.location(*rev);
            match self.snapshots_store().delete(&location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(anyhow::Error::new(e).context(format!("deleting {location}"))),
            }
            self.known().snapshots.remove(&rev.0);
            self.metrics.deleted.inc();
            tracing::info!(revision = rev.0, "retention: snapshot deleted");
        }
        for i in plan.segments {
            let (id, location, _) = &keys[i];
            self.archive.delete(location).await?;
            self.known().segments.remove(&id.first_index().0);
            self.metrics.deleted.inc();
            tracing::info!(first = %id, "retention: archived segment deleted");
        }
        Ok(())
    }

    fn snapshots_store(&self) -> Arc<dyn object_store::ObjectStore> {
        self.archive.store()
    }
}

/// Reads a sealed segment and packs the part from `start` on (the whole file when `start` is
/// its first index). `None` if the file is gone (purged).
fn pack_from(path: &std::path::Path, start: LogIndex) -> Result<Option<Vec<u8>>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("reading {}", path.display()))),
    };
    let id = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(SegmentId::parse_file_name)
        .with_context(|| format!("{} is not a segment file", path.display()))?;
    let bytes = if start > id.first_index() {
        let records = SegmentRecords::check(path, id, Bytes::from(bytes), false)?;
        records
            .rebased(start)
            .with_context(|| format!("{} holds no entry {start}", path.display()))?
    } else {
        bytes
    };
    let origin = PathBuf::from(path);
    Ok(Some(regatta_log::archive::pack(
        &origin,
        SegmentId(start),
        &bytes,
        ZSTD_LEVEL,
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purges_wait_for_the_archive() {
        let i = LogIndex;
        // Nothing archived: nothing purged, unless the purge reaches the end of the log.
        assert_eq!(purge_to(i(100), None, Some(i(500))), None);
        assert_eq!(purge_to(i(500), None, Some(i(500))), Some(i(500)));
        assert_eq!(purge_to(i(900), None, Some(i(500))), Some(i(900)));
        assert_eq!(purge_to(i(900), None, None), Some(i(900)));
        // Archived behind the request: up to the archive.
        assert_eq!(purge_to(i(100), Some(i(60)), Some(i(500))), Some(i(60)));
        // Archived ahead: the request.
        assert_eq!(purge_to(i(100), Some(i(300)), Some(i(500))), Some(i(100)));
    }

    #[test]
    fn a_purge_confirms_the_objects_holding_what_it_lets_go() {
        let known: BTreeMap<u64, u64> = [(0, 66), (67, 132), (133, 197)].into();
        assert_eq!(objects_holding(&known, 0, 66), vec![0]);
        assert_eq!(objects_holding(&known, 60, 140), vec![0, 67, 133]);
        assert_eq!(objects_holding(&known, 67, 132), vec![67]);
        assert!(objects_holding(&known, 198, 300).is_empty());
        assert!(objects_holding(&BTreeMap::new(), 0, 10).is_empty());
    }

    #[test]
    fn purges_stop_at_the_newest_object_store_snapshot() {
        let i = LogIndex;
        // No snapshot known (none yet, or one this node has not listed): nothing purged.
        assert_eq!(purge_limit(Some(i(500)), 0), None);
        assert_eq!(purge_limit(None, 0), None);
        // A snapshot older than the archive tip holds purges back to it.
        assert_eq!(purge_limit(Some(i(500)), 300), Some(i(300)));
        // A snapshot newer than the archive tip: the archive decides.
        assert_eq!(purge_limit(Some(i(500)), 900), Some(i(500)));
        // Nothing archived: nothing purged, whatever the snapshots.
        assert_eq!(purge_limit(None, 300), None);
    }

    #[test]
    fn retention_keeps_the_newest_snapshots_and_the_segments_they_need() {
        let revs = |r: &[u64]| r.iter().map(|&x| Revision(x)).collect::<Vec<_>>();
        let segments = [0, 100, 200, 300, 400];
        // Window not full, or keep everything: nothing goes.
        assert_eq!(
            retention_plan(3, &revs(&[150, 250, 350]), &segments),
            RetentionPlan::default()
        );
        assert_eq!(
            retention_plan(0, &revs(&[50, 150, 250, 350]), &segments),
            RetentionPlan::default()
        );
        // Keep two of four: the oldest kept is 250; segments [0,99] and [100,199] go, the one
        // holding 200..=299 (needed to replay from 250) stays.
        assert_eq!(
            retention_plan(2, &revs(&[50, 150, 250, 350]), &segments),
            RetentionPlan {
                snapshots: revs(&[50, 150]),
                segments: vec![0, 1]
            }
        );
        // A snapshot exactly at a segment's last index frees that segment too.
        assert_eq!(
            retention_plan(1, &revs(&[50, 299]), &segments).segments,
            vec![0, 1, 2]
        );
        // The newest segment is never deleted.
        assert_eq!(
            retention_plan(1, &revs(&[50, 10_000]), &segments).segments,
            vec![0, 1, 2, 3]
        );
    }
}
