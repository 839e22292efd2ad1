//! The crate's one error type.
//!
//! Variants say what a caller can do about them. Two questions sort them:
//! [`Error::is_retryable`] (the same call may succeed later: transient I/O) and
//! [`Error::must_stop`] (the node can no longer trust its log — corruption, an unknown format,
//! a failed fsync — and must refuse to serve rather than serve wrong data). Everything else is
//! "this request was wrong" (out of order, purged, too large) and is neither. A third,
//! [`Error::is_disk_full`], names the one I/O failure callers wait out: the log stays open
//! and the same call succeeds once space is freed.

use std::io;
use std::path::PathBuf;

use crate::position::{ByteOffset, LogIndex, Term};

/// `Result` with this crate's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O call failed. Retryable only for transient kinds (interrupted, timed out, ...).
    #[error("I/O error on {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },

    /// fsync/fdatasync failed: the kernel may have dropped dirty pages, so nothing written
    /// since the last good sync can be trusted. The log stops; the node must restart and recover.
    #[error("fsync of {} failed, durability is lost: {source}", path.display())]
    SyncFailed { path: PathBuf, source: io::Error },

    /// Bytes on disk are not what was written: a bad frame inside a sealed segment, a gap between
    /// segments, a checksum mismatch in a state file. The node must not serve from this log.
    #[error("corrupted log data in {} at byte {offset}: {reason}", path.display())]
    Corrupted {
        path: PathBuf,
        offset: ByteOffset,
        reason: String,
    },

    /// A file with a magic or version this build does not know. Refuse loudly, never guess.
    #[error("unsupported format in {}: {what}", path.display())]
    UnsupportedFormat { path: PathBuf, what: String },

    /// Another process (or another `Log` in this process) holds the directory.
    #[error("log directory {} is locked by another user", path.display())]
    Locked { path: PathBuf },

    /// An append did not continue the log: the caller's view of the log is stale or wrong.
    #[error("append out of order: expected index {expected}, got {got}")]
    OutOfOrder { expected: LogIndex, got: LogIndex },

    /// An append would make terms go backwards, which no Raft log allows.
    #[error("term regressed at index {index}: {term} after {previous}")]
    TermRegressed {
        index: LogIndex,
        term: Term,
        previous: Term,
    },

    /// A read asked for entries that compaction already removed; read a snapshot instead.
    #[error("index {requested} is purged; the log holds entries after {purged}")]
    Purged {
        requested: LogIndex,
        purged: LogIndex,
    },

    /// `truncate` asked to remove entries at or below the purged pointer (they are committed).
    #[error("cannot truncate from {from}: entries up to {purged} are purged")]
    TruncateBelowPurged { from: LogIndex, purged: LogIndex },

    /// A record larger than the configured limit.
    #[error("record of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: u64, limit: u64 },

    /// A decoded entry's payload is not a valid message of the expected type.
    #[error("entry {index} carries an invalid payload: {reason}")]
    InvalidPayload { index: LogIndex, reason: String },

    /// Options that cannot work.
    #[error("invalid option {name}: {reason}")]
    InvalidOptions { name: &'static str, reason: String },

    /// The log stopped after an earlier fatal error (see that error in the logs); every later
    /// call fails with this until the node restarts.
    #[error("the log is stopped after an earlier failure: {reason}")]
    Stopped { reason: String },
}

/// Whether an I/O error says the filesystem is out of space or over a quota.
pub fn is_disk_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corrupted(
        path: impl Into<PathBuf>,
        offset: ByteOffset,
        reason: impl Into<String>,
    ) -> Self {
        Error::Corrupted {
            path: path.into(),
            offset,
            reason: reason.into(),
        }
    }

    /// The same call may succeed if repeated later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Io { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::Interrupted
                    | io::ErrorKind::WouldBlock
                    | io::ErrorKind::TimedOut
                    | io::ErrorKind::OutOfMemory
            ),
            Error::SyncFailed { .. }
            | Error::Corrupted { .. }
            | Error::UnsupportedFormat { .. }
            | Error::Locked { .. }
            | Error::OutOfOrder { .. }
            | Error::TermRegressed { .. }
            | Error::Purged { .. }
            | Error::TruncateBelowPurged { .. }
            | Error::TooLarge { .. }
            | Error::InvalidPayload { .. }
            | Error::InvalidOptions { .. }
            | Error::Stopped { .. } => false,
        }
    }

    /// The filesystem had no room (`ENOSPC`, or a quota: `EDQUOT`). Neither retryable at once
    /// nor fatal: nothing was made durable or visible by the failed call beyond what
    /// [`crate::Log::next_index`] reports, and the same call succeeds once space is freed, so
    /// callers wait and retry (see `docs/operations.md`, "A full disk").
    pub fn is_disk_full(&self) -> bool {
        match self {
            Error::Io { source, .. } => is_disk_full(source),
            _ => false,
        }
    }

    /// The node can no longer trust (or no longer durably extend) its log and must stop serving.
    pub fn must_stop(&self) -> bool {
        match self {
            Error::SyncFailed { .. }
            | Error::Corrupted { .. }
            | Error::UnsupportedFormat { .. }
            | Error::Locked { .. }
            | Error::InvalidPayload { .. }
            | Error::Stopped { .. } => true,
            Error::Io { .. }
            | Error::OutOfOrder { .. }
            | Error::TermRegressed { .. }
            | Error::Purged { .. }
            | Error::TruncateBelowPurged { .. }
            | Error::TooLarge { .. }
            | Error::InvalidOptions { .. } => false,
        }
    }

    /// A copy good enough to hand to every waiter of a failed group commit (`io::Error` is not
    /// `Clone`; the kind and message survive).
    pub(crate) fn duplicate(&self) -> Error {
        fn dup(e: &io::Error) -> io::Error {
            io::Error::new(e.kind(), e.to_string())
        }
        match self {
            Error::Io { path, source } => Error::Io {
                path: path.clone(),
                source: dup(source),
            },
            Error::SyncFailed { path, source } => Error::SyncFailed {
                path: path.clone(),
                source: dup(source),
            },
            Error::Corrupted {
                path,
                offset,
                reason,
            } => Error::Corrupted {
                path: path.clone(),
                offset: *offset,
                reason: reason.clone(),
            },
            Error::UnsupportedFormat { path, what } => Error::UnsupportedFormat {
                path: path.clone(),
                what: what.clone(),
            },
            Error::Locked { path } => Error::Locked { path: path.clone() },
            Error::OutOfOrder { expected, got } => Error::OutOfOrder {
                expected: *expected,
                got: *got,
            },
            Error::TermRegressed {
                index,
                term,
                previous,
            } => Error::TermRegressed {
                index: *index,
                term: *term,
                previous: *previous,
            },
            Error::Purged { requested, purged } => Error::Purged {
                requested: *requested,
                purged: *purged,
            },
            Error::TruncateBelowPurged { from, purged } => Error::TruncateBelowPurged {
                from: *from,
                purged: *purged,
            },
            Error::TooLarge { size, limit } => Error::TooLarge {
                size: *size,
                limit: *limit,
            },
            Error::InvalidPayload { index, reason } => Error::InvalidPayload {
                index: *index,
                reason: reason.clone(),
            },
            Error::InvalidOptions { name, reason } => Error::InvalidOptions {
                name,
                reason: reason.clone(),
            },
            Error::Stopped { reason } => Error::Stopped {
                reason: reason.clone(),
            },
        }
    }
}
