//! The log handle: open, append with group commit, and the pointers.
//!
//! Two locks, always taken in this order:
//!
//! * `writer` serialises everything that changes files: appends (pwrite into the open
//!   segment), rolls, truncations and purges. It is held for microseconds per append.
//! * `core.shared` holds what readers and the syncer look at: the segment list, the pointers
//!   and the waiters. Held only for bookkeeping, never across IO except the short dir work of
//!   a roll.
//!
//! Appends (`append.rs`) write under `writer`, publish the new `written` pointer in `shared`
//! and park a waiter for the syncer (`sync.rs`), which fdatasyncs once for everything written
//! so far and resolves every waiter it covered: many appends, one write each, one fsync.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use crate::error::{Error, Result};
use crate::pointers::check_log_pointers;
use crate::position::{EntryId, LogIndex, SegmentId, Term};
use crate::record;
use crate::segment::{self, HEADER_LEN, Sealed};
use crate::{policy, recovery, sync};

/// Settings of a log.
#[derive(Clone, Debug)]
pub struct Options {
    /// Roll to a new segment once the open one would grow past this many bytes.
    pub segment_bytes: u64,
    /// Largest record payload accepted.
    pub max_record_bytes: u64,
    /// Told how long every data fsync of the log took (for latency metrics).
    pub on_sync: Option<SyncObserver>,
    /// Least time the syncer thread rests after one of its fsyncs before it starts the next
    /// (default zero: at once). What is appended meanwhile is readable at once and waits
    /// for the next round, so a log whose entries are durable elsewhere (an edge's) trades
    /// how much a power loss can take for fewer fsyncs. Calls that block for durability
    /// (`sync`, `append_blocking`, `truncate`, `purge`) run a round of their own, undelayed.
    pub sync_pause: std::time::Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            segment_bytes: 64 << 20,
            max_record_bytes: 64 << 20,
            on_sync: None,
            sync_pause: std::time::Duration::ZERO,
        }
    }
}

/// Longest [`Options::sync_pause`]: a log left unsynced longer than this is no longer a log.
pub const MAX_SYNC_PAUSE: std::time::Duration = std::time::Duration::from_secs(10);

/// A callback told the duration of each fsync of appended data. It runs on the thread that
/// synced, right after the fsync and before waiters are resolved, so it must be quick (a
/// histogram observation, say) and must not block.
#[derive(Clone)]
pub struct SyncObserver(pub Arc<dyn Fn(std::time::Duration) + Send + Sync>);

impl std::fmt::Debug for SyncObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SyncObserver")
    }
}

impl Options {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.segment_bytes < (HEADER_LEN as u64) * 2 || self.segment_bytes > 1 << 40 {
            return Err(Error::InvalidOptions {
                name: "segment_bytes",
                reason: format!("{} is outside 64 B ..= 1 TiB", self.segment_bytes),
            });
        }
        if self.max_record_bytes > (record::MAX_BODY - record::BODY_FIXED) as u64 {
            return Err(Error::InvalidOptions {
                name: "max_record_bytes",
                reason: format!("{} exceeds the frame format's limit", self.max_record_bytes),
            });
        }
        if self.sync_pause > MAX_SYNC_PAUSE {
            return Err(Error::InvalidOptions {
                name: "sync_pause",
                reason: format!("{:?} is longer than {MAX_SYNC_PAUSE:?}", self.sync_pause),
            });
        }
        Ok(())
    }
}

/// A sealed segment as listed by [`Log::sealed_segments`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedSegment {
    pub id: SegmentId,
    pub path: PathBuf,
    /// The last entry it holds.
    pub last: EntryId,
}

/// A durable, segmented, append-only log in one directory. Cheap to clone; all clones share
/// the same files, writer and syncer. See the crate docs for the guarantees.
#[derive(Clone)]
pub struct Log {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.inner.core.dir)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) opts: Options,
    pub(crate) writer: Mutex<Writer>,
    pub(crate) core: Arc<Core>,
    syncer: Mutex<Option<JoinHandle<()>>>,
    /// Holds the directory lock for the life of the log.
    _lock: File,
}

impl Drop for Inner {
    fn drop(&mut self) {
        lock(&self.core.shared).shutdown = true;
        self.core.work.notify_all();
        if let Some(handle) = lock(&self.syncer).take()
            && handle.join().is_err()
        {
            tracing::error!(dir = %self.core.dir.display(), "log syncer thread panicked");
        }
    }
}

/// Everything written to a log up to one moment: see [`Log::written_mark`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WrittenMark {
    next: LogIndex,
    epoch: u64,
}

/// What the syncer and readers share.
pub(crate) struct Core {
    pub(crate) dir: PathBuf,
    pub(crate) shared: Mutex<Shared>,
    /// Wakes the syncer: something was written.
    pub(crate) work: Condvar,
    pub(crate) on_sync: Option<SyncObserver>,
    /// [`Options::sync_pause`].
    pub(crate) sync_pause: std::time::Duration,
}

/// Called once, after the entries of an append are durable (or the log failed).
pub(crate) type Waiter = Box<dyn FnOnce(Result<()>) + Send>;

/// The open segment as readers see it.
pub(crate) struct OpenView {
    pub(crate) id: SegmentId,
    pub(crate) path: PathBuf,
    pub(crate) file: Arc<File>,
    pub(crate) offsets: Vec<u64>,
    /// End of the last written frame.
    pub(crate) end: u64,
}

impl OpenView {
    /// A segment just created: its header and no frames.
    pub(crate) fn empty(id: SegmentId, path: PathBuf, file: Arc<File>) -> Self {
        OpenView {
            id,
            path,
            file,
            offsets: Vec::new(),
            end: HEADER_LEN as u64,
        }
    }
}

pub(crate) struct Shared {
    pub(crate) sealed: BTreeMap<LogIndex, Arc<Sealed>>,
    pub(crate) open: OpenView,
    pub(crate) purged: Option<EntryId>,
    /// Last readable entry (`None` when everything is purged or nothing was written).
    pub(crate) last: Option<EntryId>,
    pub(crate) written_next: LogIndex,
    pub(crate) durable_next: LogIndex,
    /// Bumped by truncate and purge, so a sync started before them does not move pointers.
    pub(crate) epoch: u64,
    pub(crate) waiters: VecDeque<(LogIndex, Waiter)>,
    pub(crate) stopped: Option<String>,
    pub(crate) shutdown: bool,
    /// Some thread (the syncer or a blocked appender) is running an fsync.
    pub(crate) syncing: bool,
}

impl Shared {
    /// All segments as the planner sees them.
    pub(crate) fn spans(&self) -> Vec<policy::Span> {
        let mut spans: Vec<policy::Span> = self
            .sealed
            .values()
            .map(|s| policy::Span {
                id: s.id,
                next: s.next_index(),
            })
            .collect();
        let open_next = LogIndex(self.open.id.first_index().0 + self.open.offsets.len() as u64);
        spans.push(policy::Span {
            id: self.open.id,
            next: open_next,
        });
        spans
    }

    pub(crate) fn check(&self) {
        check_log_pointers(
            self.purged.map(|p| p.index),
            self.durable_next,
            self.written_next,
        );
    }
}

/// The writer's side of the open segment.
pub(crate) struct Writer {
    pub(crate) id: SegmentId,
    pub(crate) path: PathBuf,
    pub(crate) file: Arc<File>,
    /// Bytes in the open segment file.
    pub(crate) len: u64,
    /// Entries in the open segment.
    pub(crate) entries: usize,
    pub(crate) next: LogIndex,
    /// Term of the last entry written or purged: appends may not go below it.
    pub(crate) term_floor: Option<Term>,
    /// The last entry in the files (maybe purged already), if any.
    pub(crate) last: Option<EntryId>,
    pub(crate) buf: Vec<u8>,
}

/// Locks a mutex, shrugging off poisoning: every critical section leaves the data consistent
/// or marks the log stopped before it can panic.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A background thread's rest: waits on `wake` for `pause`, cut short as soon as `stop`
/// holds for the state (checked on every wake-up). Other wake-ups do not end it.
pub(crate) fn rest_unless<T>(
    m: &Mutex<T>,
    wake: &std::sync::Condvar,
    pause: std::time::Duration,
    stop: impl Fn(&T) -> bool,
) {
    let until = std::time::Instant::now() + pause;
    let mut s = lock(m);
    while !stop(&s) {
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return;
        }
        s = wake
            .wait_timeout(s, left)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}

impl Core {
    pub(crate) fn check_running(&self) -> Result<()> {
        match &lock(&self.shared).stopped {
            Some(reason) => Err(Error::Stopped {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Marks the log stopped after a fatal error and fails every waiter.
    pub(crate) fn stop(&self, error: &Error) {
        tracing::error!(dir = %self.dir.display(), error = %error, "log stopped");
        let waiters: Vec<Waiter> = {
            let mut s = lock(&self.shared);
            if s.stopped.is_none() {
                s.stopped = Some(error.to_string());
            }
            s.waiters.drain(..).map(|(_, w)| w).collect()
        };
        self.work.notify_all();
        for w in waiters {
            w(Err(error.duplicate()));
        }
    }
}

/// Creates an empty segment file (header only), durably — file and directory entry — and
/// returns it opened for reading and writing. Because the header is on disk before any frame
/// is written, a last segment whose header is bad is either a torn creation (at most a
/// header's worth of bytes, holding no entries) or corruption.
pub(crate) fn create_segment(dir: &Path, id: SegmentId) -> Result<(PathBuf, File)> {
    let path = dir.join(id.file_name());
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    if let Err(e) = file.write_all_at(&segment::encode_header(id), 0) {
        // No room for the header: leave no headless segment behind for recovery to trip on.
        drop(file);
        let _ = std::fs::remove_file(&path);
        return Err(Error::io(&path, e));
    }
    file.sync_all().map_err(|source| Error::SyncFailed {
        path: path.clone(),
        source,
    })?;
    crate::state_file::sync_dir(dir)?;
    Ok((path, file))
}

impl Log {
    /// Opens (creating if needed) the log in `dir`, recovering from a crash: a torn tail of
    /// the last segment is cut (and logged); a bad frame anywhere else, a gap between
    /// segments or an unknown format is an error, and the log does not open.
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<Log> {
        opts.validate()?;
        let recovered = recovery::recover(dir.as_ref())?;
        let core = Arc::new(Core {
            dir: recovered.dir,
            shared: Mutex::new(recovered.shared),
            work: Condvar::new(),
            on_sync: opts.on_sync.clone(),
            sync_pause: opts.sync_pause,
        });
        lock(&core.shared).check();
        let syncer = {
            let core = Arc::clone(&core);
            std::thread::Builder::new()
                .name("log-sync".into())
                .spawn(move || sync::run(&core))
                .map_err(|e| Error::io(&recovered.lock_path, e))?
        };
        Ok(Log {
            inner: Arc::new(Inner {
                opts,
                writer: Mutex::new(recovered.writer),
                core,
                syncer: Mutex::new(Some(syncer)),
                _lock: recovered.lock,
            }),
        })
    }

    /// The first readable index, or `None` if the log holds no entries.
    pub fn first_index(&self) -> Option<LogIndex> {
        let s = lock(&self.inner.core.shared);
        s.last?;
        let physical = s
            .sealed
            .keys()
            .next()
            .copied()
            .unwrap_or(s.open.id.first_index());
        Some(match s.purged {
            Some(p) => physical.max(p.index.next()),
            None => physical,
        })
    }

    /// The last written (readable) index, or `None` if the log holds no entries.
    pub fn last_index(&self) -> Option<LogIndex> {
        lock(&self.inner.core.shared).last.map(|l| l.index)
    }

    /// Id of the last written entry, or `None` if the log holds no entries.
    pub fn last_entry(&self) -> Option<EntryId> {
        lock(&self.inner.core.shared).last
    }

    /// Id of the last purged entry, if anything was purged. Durable.
    pub fn purged(&self) -> Option<EntryId> {
        lock(&self.inner.core.shared).purged
    }

    /// The index the next append must start at.
    pub fn next_index(&self) -> LogIndex {
        lock(&self.inner.core.shared).written_next
    }

    /// One past the last durable entry: everything below it survives a crash.
    pub fn durable_next(&self) -> LogIndex {
        lock(&self.inner.core.shared).durable_next
    }

    /// Marks everything written so far, for [`Log::is_durable`].
    pub fn written_mark(&self) -> WrittenMark {
        let s = lock(&self.inner.core.shared);
        WrittenMark {
            next: s.written_next,
            epoch: s.epoch,
        }
    }

    /// True once everything written before `mark` was taken is durable. A truncation or
    /// purge since then made all of it durable before it ran (and may have moved the
    /// pointers back), so a changed epoch also means true. An error once the log stopped.
    pub fn is_durable(&self, mark: WrittenMark) -> Result<bool> {
        let s = lock(&self.inner.core.shared);
        if let Some(reason) = &s.stopped {
            return Err(Error::Stopped {
                reason: reason.clone(),
            });
        }
        Ok(s.durable_next >= mark.next || s.epoch != mark.epoch)
    }

    /// The directory of the log.
    pub fn dir(&self) -> &Path {
        &self.inner.core.dir
    }

    /// The sealed segments (complete, immutable: safe to archive), in order.
    pub fn sealed_segments(&self) -> Vec<SealedSegment> {
        lock(&self.inner.core.shared)
            .sealed
            .values()
            .map(|s| SealedSegment {
                id: s.id,
                path: s.path.clone(),
                last: s.last,
            })
            .collect()
    }

    /// Ids of the segment files currently making up the log, in order.
    pub fn segments(&self) -> Vec<SegmentId> {
        lock(&self.inner.core.shared)
            .spans()
            .iter()
            .map(|s| s.id)
            .collect()
    }
}
