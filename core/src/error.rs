//! The crate's one error type.
//!
//! A failed archive pass, upload or purge check is retried by its task with backoff
//! ([`Error::is_retryable`] says whether waiting can help); a damaged `.rsnap` file is
//! skipped in favour of an older one; a failure to install the snapshot on disk at start
//! stops the node.

/// `Result` with this crate's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The local log (reading segments, purging) or a snapshot directory failed.
    #[error(transparent)]
    Log(#[from] regatta_log::Error),

    /// The object store or the archive layout in it failed.
    #[error(transparent)]
    Archive(#[from] regatta_archive::Error),

    /// The snapshot store or the tables failed.
    #[error(transparent)]
    Materializer(#[from] regatta_materializer::Error),

    /// A call to the object store failed (`what` says which call, on which key).
    #[error("{what}: {source}")]
    Store {
        what: String,
        #[source]
        source: object_store::Error,
    },

    /// A local `.rsnap` file (or a segment file read for the archive) is not what was
    /// written: wrong magic or version, a checksum mismatch, a truncated field.
    #[error("{what}: {reason}")]
    Corrupted { what: String, reason: String },

    /// A local file could not be read.
    #[error("reading {}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Installing the snapshot found on disk into the state machine failed.
    #[error("installing the raft snapshot on disk: {0}")]
    Install(#[source] Box<openraft::StorageError<u64>>),

    /// A blocking task (packing a segment, purging, reading snapshot files) panicked or was
    /// cancelled.
    #[error("{what} task failed: {source}")]
    Task {
        what: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },

    /// Registering a metric failed (a name registered twice).
    #[error("registering metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

impl Error {
    pub(crate) fn corrupted(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Corrupted {
            what: what.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn task(what: &'static str) -> impl FnOnce(tokio::task::JoinError) -> Self {
        move |source| Error::Task { what, source }
    }

    /// Whether the same call may succeed later (a failing store, transient I/O).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Log(e) => e.is_retryable(),
            Error::Archive(e) => e.is_retryable(),
            Error::Materializer(e) => e.is_retryable(),
            Error::Store { .. } => true,
            Error::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::Interrupted | std::io::ErrorKind::TimedOut
            ),
            Error::Corrupted { .. }
            | Error::Install(_)
            | Error::Task { .. }
            | Error::Metrics(_) => false,
        }
    }
}
