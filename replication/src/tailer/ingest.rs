//! The steady state: a batch of entries from the upstream is checked to continue the
//! applied index, written to the local log, applied with one publish while the log's syncer
//! makes it durable, and now and then a local snapshot is written (once the log is durable
//! up to it) and the local log cut behind it.
//!
//! Applying does not wait for the fsync: the entries are committed upstream, so the local
//! log is a restart cache, not the record. A crashed edge process loses nothing (written
//! pages belong to the kernel); a power loss can take the last fsync round, which the edge
//! fetches again from its upstream after restarting, reporting not ready until it has
//! caught up. Waiting would add one fsync to every entry's way to the edge's readers.

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use prost::Message;
use regatta_log::{EntryId, LogIndex, NodeId, Record, RecordKind, Term};
use regatta_materializer::{Entry, Materializer, Revision};
use regatta_proto::{event::Event, regatta::tail::v1::TailEntry};

use super::Tailer;
use crate::{Error, Result};

/// Longest pause between two attempts to append to a full disk.
const DISK_FULL_MAX_PAUSE: Duration = Duration::from_secs(1);
/// Pause after a local snapshot found the disk full.
const SNAPSHOT_DISK_FULL_PAUSE: Duration = Duration::from_secs(10);

/// Checks that `entries` continue exactly after `applied`, one index at a time.
pub fn check_gap_free(applied: u64, entries: &[TailEntry]) -> Result<()> {
    for (expected, e) in (applied + 1..).zip(entries) {
        if e.index != expected {
            return Err(Error::Gap {
                expected,
                got: e.index,
            });
        }
    }
    Ok(())
}

/// Whether a local snapshot is due.
pub fn snapshot_due(applied: u64, last_snapshot: u64, every: u64) -> bool {
    applied >= last_snapshot + every
}

/// Wire entries as log records; a kind this build does not know stops replication.
pub fn to_records(entries: Vec<TailEntry>) -> Result<Vec<Record>> {
    entries
        .into_iter()
        .map(|e| {
            let kind = u8::try_from(e.kind)
                .ok()
                .and_then(RecordKind::from_byte)
                .ok_or(Error::UnknownEntryKind {
                    index: e.index,
                    kind: e.kind,
                })?;
            let id = EntryId {
                index: LogIndex(e.index),
                term: Term(e.term),
                leader: NodeId(e.leader_id),
            };
            Ok(Record::new(id, kind, e.payload))
        })
        .collect()
}

impl Tailer {
    /// Writes a batch to the local log and applies it with one publish; the log's syncer
    /// makes it durable meanwhile.
    pub(super) async fn ingest(&mut self, entries: Vec<TailEntry>) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        check_gap_free(self.materializer.applied().0, &entries)?;
        let records = to_records(entries)?;
        if let Some(last) = records.last() {
            self.state.term.store(last.id.term.get(), Ordering::Relaxed);
        }
        self.append_locally(&records).await?;
        if let Some(at) = apply_records(&self.materializer, &records)? {
            self.state.last_event_micros.store(at, Ordering::Relaxed);
        }
        let applied = self.materializer.applied().0;
        self.metrics.set_applied(applied);
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

    /// Writes `records` to the local log and hands them to its syncer, without waiting for
    /// the fsync. While the disk is full it pauses and retries (the stream is not read
    /// meanwhile; the edge keeps serving what it applied), flagging it in
    /// `regatta_edge_append_paused`, the status and the log; any other failure stops
    /// replication. A failed fsync stops the log (it logs why): the next append fails and
    /// stops replication.
    async fn append_locally(&mut self, records: &[Record]) -> Result<()> {
        let mut since: Option<Instant> = None;
        let mut pause = Duration::from_millis(100);
        loop {
            // A failed attempt may have written a prefix (up to a segment roll). One copy of
            // the list per attempt (the payloads are shared, not copied).
            let next = self.log.next_index();
            let pending: Vec<Record> = records
                .iter()
                .filter(|r| r.id.index >= next)
                .cloned()
                .collect();
            match self.log.append_with(pending, |_| {}) {
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
                Err(source) => {
                    return Err(Error::LocalLog {
                        what: "appending",
                        source,
                    });
                }
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
    ///
    /// The log is made durable up to the view first: a snapshot ahead of the durable log
    /// would, after a power loss, restart the edge at a revision its log does not continue.
    async fn snapshot_locally(&mut self) -> Result<()> {
        let view = self.materializer.view();
        let revision = view.revision().0;
        let local = self.local.clone();
        let log = self.log.clone();
        let saved = tokio::task::spawn_blocking(move || {
            log.sync().map_err(|source| Error::LocalLog {
                what: "syncing before a local snapshot",
                source,
            })?;
            local.save(&view)
        })
        .await
        .map_err(|e| Error::task("local snapshot writer", e))?;
        match saved {
            Ok(()) => self.snapshot_not_before = None,
            Err(e) if e.is_disk_full() => {
                // The log still holds everything since the last one: try again later.
                tracing::error!(revision, error = %e, "local snapshot: disk full, retrying later");
                self.snapshot_not_before = Some(Instant::now() + SNAPSHOT_DISK_FULL_PAUSE);
                return Ok(());
            }
            Err(e) => return Err(e),
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
                .map_err(|source| Error::LocalLog {
                    what: "purging behind the local snapshot",
                    source,
                })?;
        }
        tracing::info!(revision, "local snapshot written");
        Ok(())
    }
}

/// Applies log records (written to the local log) with one publish. Returns the proposal time of the
/// last event, if the batch had one. An error means this node must stop applying.
pub fn apply_records(materializer: &Materializer, records: &[Record]) -> Result<Option<u64>> {
    let mut events = Vec::with_capacity(records.len());
    for r in records {
        let event = match r.kind {
            RecordKind::Normal => Some(Event::decode(r.payload.clone()).map_err(|source| {
                Error::UndecodableEvent {
                    index: r.id.index.get(),
                    source,
                }
            })?),
            RecordKind::Blank | RecordKind::Membership => None,
        };
        events.push((r.id.index.get(), event));
    }
    let batch = events.iter().map(|(index, event)| Entry {
        index: Revision(*index),
        event: event.as_ref(),
    });
    materializer.apply_batch(batch).map_err(Error::Apply)?;
    Ok(events
        .iter()
        .rev()
        .find_map(|(_, e)| e.as_ref().map(|e| e.proposed_at_micros)))
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
    fn local_snapshots_come_every_n_entries() {
        assert!(!snapshot_due(99, 0, 100));
        assert!(snapshot_due(100, 0, 100));
        assert!(!snapshot_due(150, 100, 100));
    }
}
