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
//! on [`regatta_archive::SegmentArchive`].
//!
//! Off the write path: this task reads sealed (immutable) files and uploads them; a slow or
//! failing store delays only the archive and, through the purge gate, local log purges.
//! Failures are counted and retried with backoff.
//!
//! **Purge gate** ([`crate::purge_gate`]). openraft asks the log to purge behind each
//! snapshot. [`crate::GatedLogStore`] wraps the log storage and lets a purge through only up
//! to the archived index and no further than the newest snapshot known in the object store
//! ([`purge_limit`], [`purge_to`]), so that an edge bootstrapping from that snapshot can continue from this
//! node's log; until a node knows of a snapshot it purges nothing. What the gate held back
//! is remembered and purged here once the archive (or a newer snapshot, listed every
//! couple of seconds while a purge waits) allows. A purge to the end of the log or beyond
//! (a follower installing a snapshot from the leader) always goes through: the log must
//! continue after it, and those entries are in the snapshot (and archived by the node that
//! has them).
//!
//! **Missing objects** ([`regatta_archive::plan_repair`]): every `--object-store.check-interval`
//! (30 s) the archiver
//! lists the store and compares it with the segments it knows are archived and the
//! snapshots it has seen. A segment gone from the store is uploaded again from this node's
//! log as far as the log still holds it; what the log no longer holds is a hole, logged
//! (warn), counted and recorded in the store (see [`regatta_archive::segments`]). A snapshot gone is
//! counted and logged, and forgotten as the newest known one, so purges wait and the
//! leader's uploader writes a new one. A purge about to drop entries first checks that the
//! objects holding them are still there ([`objects_holding`]). Both show on /metrics:
//! `regatta_archive_missing_objects_total`, `regatta_archive_holes`.
//!
//! **Retention** ([`regatta_archive::retention`]): with `--object-store.keep-snapshots K` (0 keeps
//! everything), once more than K snapshots exist the older ones are deleted, and with them
//! every archived segment wholly at or below the oldest kept snapshot. Until K snapshots
//! exist nothing is deleted, so a young cluster can be restored to any revision.

use std::{
    collections::{BTreeMap, BTreeSet},
    ops::RangeInclusive,
    path::PathBuf,
    sync::{Arc, Mutex, atomic::Ordering},
    time::Duration,
};

use bytes::Bytes;
use object_store::ObjectStoreExt;
use regatta_archive::{Put, SegmentArchive, describe, plan_repair, retention::retention_plan};
use regatta_log::{Log, LogIndex, SegmentId, reader::SegmentRecords};
use regatta_materializer::snapshot::SnapshotStore;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::purge_gate::{PurgeGate, objects_holding, purge_limit, purge_to};

/// zstd level for segment archives: fast, still about 3-5x on typical entries.
const ZSTD_LEVEL: i32 = 3;
/// How often the archiver looks for newly sealed segments.
const PASS_INTERVAL: Duration = Duration::from_millis(500);
/// Least time between two listings of the store's snapshots while a purge waits for one.
const SNAPSHOT_LIST_INTERVAL: Duration = Duration::from_secs(2);
/// How often retention runs (every this many passes).
const RETENTION_EVERY: u32 = 20;

pub use crate::metrics::ArchiverMetrics;

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
                Ok::<(), Error>(())
            }
            .await;
            let pause = match result {
                Ok(()) => {
                    backoff = Duration::from_secs(1);
                    PASS_INTERVAL
                }
                Err(e) => {
                    self.metrics.failures.inc();
                    tracing::warn!(error = %e, retry_in = ?backoff, "segment archive failed");
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
                .map_err(Error::task("packing a segment"))??;
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
                    .map_err(Error::task("packing a segment"))??;
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
                            return Err(Error::corrupted(
                                format!("archive object at {start}"),
                                format!("ends at {last}, before the archived index"),
                            ));
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
            .map_err(Error::task("purging the log"))?
            .map_err(Error::from)
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
                Err(source) => {
                    return Err(Error::Store {
                        what: format!("deleting {location}"),
                        source,
                    });
                }
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
    // Mapped, not read: a sealed segment was written moments ago and sits in the page cache;
    // reading it would copy it into fresh memory (tens of MiB zeroed by the kernel first).
    let Some(bytes) = regatta_log::segment::map_sealed(path)? else {
        return Ok(None);
    };
    let id = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(SegmentId::parse_file_name)
        .ok_or_else(|| Error::corrupted(path.display().to_string(), "not a segment file"))?;
    let bytes = if start > id.first_index() {
        let records = SegmentRecords::check(path, id, bytes, false)?;
        Bytes::from(records.rebased(start).ok_or_else(|| {
            Error::corrupted(
                path.display().to_string(),
                format!("holds no entry {start}"),
            )
        })?)
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
