//! [`RaftLogStore`]: openraft's `RaftLogStorage` over a [`Log`] and the small state files.

use std::fmt::Debug;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{
    AnyError, BasicNode, Entry, LogId, OptionalSend, RaftTypeConfig, StorageError, StorageIOError,
    Vote,
};

use crate::error::{Error, Result};
use crate::log::{Log, Options, lock, rest_unless};
use crate::position::LogIndex;
use crate::raft::{Durability, codec};
use crate::state_file::{self, StateFile};

fn read_err(e: &Error) -> StorageError<u64> {
    StorageIOError::read_logs(AnyError::new(e)).into()
}

fn write_err(e: &Error) -> StorageError<u64> {
    StorageIOError::write_logs(AnyError::new(e)).into()
}

fn vote_err(e: &Error) -> StorageError<u64> {
    StorageIOError::write_vote(AnyError::new(e)).into()
}

/// Runs blocking log work off the async executor.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Stopped {
            reason: format!("log task failed: {e}"),
        })?
}

/// Longest pause between two attempts of a storage call while the disk is full.
const DISK_FULL_MAX_PAUSE: Duration = Duration::from_secs(1);

/// Runs `call` until it succeeds or fails for another reason than a full disk, pausing
/// between attempts (doubling from 50 ms up to [`DISK_FULL_MAX_PAUSE`]).
///
/// openraft 0.9 takes any error from the log storage as fatal: Raft stops, and the node
/// with it. A full disk is not that kind of error — the failed call changed nothing, and
/// it succeeds once space is freed — so the storage waits instead of failing. While it
/// waits, this node's Raft makes no progress (the leader carries on with the others; the
/// node keeps serving reads from what it applied); the free-space guard in front of the
/// write path (`--min-free-disk`) keeps this wait the exception.
pub async fn retry_while_disk_full<T, F, Fut>(what: &'static str, mut call: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut since: Option<Instant> = None;
    let mut pause = Duration::from_millis(50);
    loop {
        match call().await {
            Err(e) if e.is_disk_full() => {
                if since.is_none() {
                    tracing::error!(what, error = %e, "disk full: waiting for free space to retry");
                    since = Some(Instant::now());
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(DISK_FULL_MAX_PAUSE);
            }
            outcome => {
                if let Some(since) = since
                    && outcome.is_ok()
                {
                    tracing::warn!(what, waited = ?since.elapsed(), "disk has room again: resumed");
                }
                return outcome;
            }
        }
    }
}

/// openraft's log storage: the entries in a [`Log`], the vote and committed pointer in state
/// files next to it. Calls that find the disk full wait for space rather than fail (see
/// [`retry_while_disk_full`]).
pub struct RaftLogStore<C> {
    log: Log,
    vote: Option<Vote<u64>>,
    committed: Option<LogId<u64>>,
    committed_saver: Arc<CommittedSaver>,
    /// Set: appends are told flushed to openraft once written (see [`Durability`]).
    durability: Option<Durability>,
    _types: PhantomData<fn() -> C>,
}

impl<C> Debug for RaftLogStore<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftLogStore")
            .field("log", &self.log)
            .finish_non_exhaustive()
    }
}

/// A reader that works concurrently with appends to the same log.
pub struct RaftLogReaderHandle<C> {
    log: Log,
    _types: PhantomData<fn() -> C>,
}

impl<C> Debug for RaftLogReaderHandle<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftLogReaderHandle")
            .field("log", &self.log)
            .finish()
    }
}

impl<C> RaftLogStore<C> {
    /// Opens the log in `dir` (see [`Log::open`]) and the Raft state files beside it.
    pub fn open(dir: impl Into<PathBuf>, opts: Options) -> Result<Self> {
        Self::new(Log::open(dir.into(), opts)?)
    }

    /// Wraps an open log, reading the vote and committed pointer from its directory.
    pub fn new(log: Log) -> Result<Self> {
        let dir = log.dir().to_path_buf();
        let vote = match state_file::read(&dir, StateFile::VOTE)? {
            Some(body) => Some(codec::decode_vote(&StateFile::VOTE.path(&dir), &body)?),
            None => None,
        };
        let mut committed = match state_file::read(&dir, StateFile::COMMITTED)? {
            Some(body) => Some(state_file::decode_entry_id(
                &StateFile::COMMITTED.path(&dir),
                &body,
            )?),
            None => None,
        };
        // The pointer is advice written in the background; never claim more than the log holds.
        let held = log.last_index().max(log.purged().map(|p| p.index));
        if let Some(c) = committed
            && held.is_none_or(|h| c.index > h)
        {
            tracing::warn!(committed = %c.index, held = ?held.map(|h| h.0), "ignoring committed pointer beyond the log");
            committed = None;
        }
        let committed_saver = CommittedSaver::start(dir)?;
        Ok(Self {
            log,
            vote,
            committed: committed.map(codec::log_id),
            committed_saver,
            durability: None,
            _types: PhantomData,
        })
    }

    /// From now on, appends are told flushed to openraft as soon as they are written; the
    /// returned [`Durability`] must gate everything that makes an entry visible or counts
    /// it as held by this node: the state machine's apply, the commit index the leader
    /// sends, a follower's answer to AppendEntries (see its module).
    pub fn replicate_while_syncing(&mut self) -> Durability {
        let durability = Durability::new(self.log.clone());
        self.durability = Some(durability.clone());
        durability
    }

    /// A truncation or purge made everything written before it durable (or failed, and the
    /// log stopped): waiters for earlier writes look again.
    fn epoch_moved(&self) {
        if let Some(durability) = &self.durability {
            durability.wake();
        }
    }

    /// The raw log underneath (for the tail service, metrics, tests).
    pub fn log(&self) -> &Log {
        &self.log
    }
}

fn read_range<C>(log: &Log, range: impl RangeBounds<u64>) -> Result<Vec<Entry<C>>>
where
    C: RaftTypeConfig<NodeId = u64, Node = BasicNode, Entry = Entry<C>>,
    C::D: prost::Message + Default,
{
    let start = match range.start_bound() {
        Bound::Included(&i) => i,
        Bound::Excluded(&i) => i.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&i) => i.saturating_add(1),
        Bound::Excluded(&i) => i,
        Bound::Unbounded => u64::MAX,
    };
    // openraft asks for ranges that may reach below the purged pointer; it gets what exists.
    let start = match log.purged() {
        Some(p) => start.max(p.index.0 + 1),
        None => start,
    };
    if start >= end {
        return Ok(Vec::new());
    }
    log.iter(LogIndex(start)..LogIndex(end))?
        .map(|r| r.and_then(|r| codec::from_record::<C>(&r)))
        .collect()
}

impl<C> RaftLogReader<C> for RaftLogReaderHandle<C>
where
    C: RaftTypeConfig<NodeId = u64, Node = BasicNode, Entry = Entry<C>>,
    C::D: prost::Message + Default,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError<u64>> {
        read_range::<C>(&self.log, range).map_err(|e| read_err(&e))
    }
}

impl<C> RaftLogReader<C> for RaftLogStore<C>
where
    C: RaftTypeConfig<NodeId = u64, Node = BasicNode, Entry = Entry<C>>,
    C::D: prost::Message + Default,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError<u64>> {
        read_range::<C>(&self.log, range).map_err(|e| read_err(&e))
    }
}

impl<C> RaftLogStorage<C> for RaftLogStore<C>
where
    C: RaftTypeConfig<NodeId = u64, Node = BasicNode, Entry = Entry<C>>,
    C::D: prost::Message + Default,
{
    type LogReader = RaftLogReaderHandle<C>;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<u64>> {
        let purged = self.log.purged();
        let last = self.log.last_entry().or(purged);
        Ok(LogState {
            last_purged_log_id: purged.map(codec::log_id),
            last_log_id: last.map(codec::log_id),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        RaftLogReaderHandle {
            log: self.log.clone(),
            _types: PhantomData,
        }
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        let body = codec::encode_vote(vote);
        retry_while_disk_full("saving the vote", || {
            let log = self.log.clone();
            let body = body.clone();
            blocking(move || {
                // I/O in submission order: earlier appends are durable before the vote is.
                log.sync()?;
                state_file::write(log.dir(), StateFile::VOTE, &body)
            })
        })
        .await
        .map_err(|e| vote_err(&e))?;
        self.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        Ok(self.vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<u64>>,
    ) -> Result<(), StorageError<u64>> {
        self.committed = committed;
        if let Some(c) = committed {
            self.committed_saver
                .offer(state_file::encode_entry_id(codec::entry_id(&c)));
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        Ok(self.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<C>,
    ) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // Entries at or below the purged pointer are already covered by a snapshot: appending
        // them is appending and purging at once, so they are dropped. (openraft's suite does
        // this after `get_initial_state` purges up to the state machine's applied id.)
        let purged = self.log.purged().map(|p| p.index.0);
        let entries: Vec<_> = entries
            .into_iter()
            .filter(|e| purged.is_none_or(|p| e.log_id.index > p))
            .collect();
        // openraft hears "flushed" once the entries are written, so the leader replicates
        // them and a follower answers while the fsync runs (see `Durability`).
        let told_early = self.durability.is_some();
        let mut records: Vec<_> = entries.iter().map(codec::to_record).collect();
        // The callback survives a failed attempt (the log drops the closure unrun), and a
        // retry writes only what the failed attempt did not.
        let callback = Arc::new(Mutex::new(Some(callback)));
        retry_while_disk_full("appending to the log", || {
            let next = self.log.next_index();
            records.retain(|r| r.id.index >= next);
            let callback = callback.clone();
            let durability = self.durability.clone();
            let outcome = self.log.append_with(records.clone(), move |result| {
                if let Some(durability) = &durability {
                    durability.flushed(&result);
                }
                if told_early {
                    return;
                }
                if let Some(callback) = lock(&callback).take() {
                    callback.log_io_completed(result.map_err(std::io::Error::other));
                }
            });
            std::future::ready(outcome)
        })
        .await
        .map_err(|e| write_err(&e))?;
        if told_early && let Some(callback) = lock(&callback).take() {
            callback.log_io_completed(Ok(()));
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        let outcome = retry_while_disk_full("truncating the log", || {
            let log = self.log.clone();
            blocking(move || log.truncate(LogIndex(log_id.index)))
        })
        .await;
        self.epoch_moved();
        outcome.map_err(|e| write_err(&e))
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        let outcome = retry_while_disk_full("purging the log", || {
            let log = self.log.clone();
            blocking(move || log.purge(codec::entry_id(&log_id)))
        })
        .await;
        self.epoch_moved();
        outcome.map_err(|e| write_err(&e))
    }
}

/// Least time between two writes of the committed pointer.
const COMMITTED_SAVE_INTERVAL: Duration = Duration::from_millis(100);

/// Persists the latest committed pointer in the background, skipping values overtaken while a
/// write was in flight.
struct CommittedSaver {
    dir: PathBuf,
    state: Mutex<SaverState>,
    wake: Condvar,
    thread: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct SaverState {
    pending: Option<Vec<u8>>,
    shutdown: bool,
    /// The last write failed (warned once per streak: a full disk fails every one).
    failing: bool,
    /// The thread waits for a value (not pausing between two writes): only then does an
    /// offer wake it. Waking it on every offer during its pause cost a thread switch per
    /// committed entry.
    idle: bool,
}

impl CommittedSaver {
    fn start(dir: PathBuf) -> Result<Arc<Self>> {
        let saver = Arc::new(CommittedSaver {
            dir: dir.clone(),
            state: Mutex::new(SaverState::default()),
            wake: Condvar::new(),
            thread: Mutex::new(None),
        });
        let weak = Arc::downgrade(&saver);
        let handle = std::thread::Builder::new()
            .name("log-committed".into())
            .spawn(move || {
                while let Some(saver) = weak.upgrade() {
                    if !saver.save_one() {
                        break;
                    }
                }
            })
            .map_err(|e| Error::io(&dir, e))?;
        *lock(&saver.thread) = Some(handle);
        Ok(saver)
    }

    fn offer(&self, body: Vec<u8>) {
        let mut s = lock(&self.state);
        s.pending = Some(body);
        if s.idle {
            drop(s);
            self.wake.notify_one();
        }
    }

    /// Waits for a value and writes it; false once shut down with nothing pending.
    fn save_one(&self) -> bool {
        let body = {
            let mut s = lock(&self.state);
            loop {
                if let Some(body) = s.pending.take() {
                    break body;
                }
                if s.shutdown {
                    return false;
                }
                s.idle = true;
                s = self.wake.wait(s).unwrap_or_else(PoisonError::into_inner);
                s.idle = false;
            }
        };
        let outcome = state_file::write(&self.dir, StateFile::COMMITTED, &body);
        {
            let mut s = lock(&self.state);
            match &outcome {
                Err(e) if !s.failing => {
                    tracing::warn!(error = %e, "could not persist the committed pointer (a stale one is safe; retried with the next)");
                }
                Ok(()) if s.failing => tracing::info!("committed pointer persisted again"),
                _ => {}
            }
            s.failing = outcome.is_err();
        }
        // At most one write per interval: each costs two fsyncs on the log's disk, and a
        // pointer a little stale is as good as a fresh one. Shutdown cuts the wait short.
        rest_unless(&self.state, &self.wake, COMMITTED_SAVE_INTERVAL, |s| {
            s.shutdown
        });
        true
    }
}

impl<C> Drop for RaftLogStore<C> {
    fn drop(&mut self) {
        lock(&self.committed_saver.state).shutdown = true;
        self.committed_saver.wake.notify_all();
        if let Some(handle) = lock(&self.committed_saver.thread).take() {
            let _ = handle.join();
        }
    }
}
