//! The purge gate: openraft asks the log to purge behind each snapshot; [`GatedLogStore`]
//! wraps the log storage and lets a purge through only up to the archived index and no
//! further than the newest snapshot known in the object store ([`purge_limit`],
//! [`purge_to`]), so that an edge bootstrapping from that snapshot can continue from this
//! node's log; until a node knows of a snapshot it purges nothing. What the gate held back
//! is remembered in the [`PurgeGate`] and purged by the archiver (`crate::archiver`) once
//! the archive (or a newer snapshot) allows. A purge to the end of the log or beyond (a
//! follower installing a snapshot from the leader) always goes through: the log must
//! continue after it, and those entries are in the snapshot (and archived by the node that
//! has them).

use std::{
    collections::BTreeMap,
    fmt::Debug,
    ops::RangeBounds,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use openraft::{
    LogId, OptionalSend, StorageError, Vote,
    storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage},
};
use regatta_log::{
    EntryId, Log, LogIndex,
    raft::{RaftLogReaderHandle, RaftLogStore, codec},
};
use regatta_materializer::raft::TypeConfig;

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
    pub(crate) newest_snapshot: Arc<AtomicU64>,
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

    pub(crate) fn note_snapshot(&self, revision: u64) {
        self.newest_snapshot.fetch_max(revision, Ordering::AcqRel);
    }

    /// Forgets snapshots newer than `revision` (they are gone from the store): purges wait
    /// for a new one, and the uploader, which shares this figure, writes one.
    pub(crate) fn forget_snapshots_after(&self, revision: u64) {
        self.newest_snapshot.fetch_min(revision, Ordering::AcqRel);
    }

    pub(crate) fn set_archived(&self, index: LogIndex) {
        self.archived_next
            .fetch_max(index.0.saturating_add(1), Ordering::AcqRel);
    }

    pub(crate) fn hold(&self, requested: EntryId) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.is_none_or(|h| h.index < requested.index) {
            *held = Some(requested);
        }
    }

    pub(crate) fn held(&self) -> Option<EntryId> {
        *self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Purges `log` as far as `requested` allows now (blocking IO).
    pub(crate) fn purge(&self, log: &Log, requested: EntryId) -> regatta_log::Result<()> {
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
}
