//! The crate's one error type.
//!
//! Variants say what a caller can do: a bad URL or setting is the operator's to fix
//! ([`Error::Config`]); a store call that failed may work later ([`Error::is_retryable`]);
//! an object whose bytes are not what was written, or history that ends early, is a fault
//! in the store that no retry fixes.

use std::path::PathBuf;

/// `Result` with this crate's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An object store URL or setting that cannot work (the message names the flag).
    #[error("{0}")]
    Config(String),

    /// A call to the object store failed (`what` says which call, on which key).
    #[error("{what}: {source}")]
    Store {
        what: String,
        #[source]
        source: object_store::Error,
    },

    /// A local file or directory could not be read or written.
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// An object or record is not what was written: a header that contradicts its key, an
    /// archive that ends early, an undecodable event.
    #[error("{location}: {reason}")]
    Corrupted { location: String, reason: String },

    /// Reading or checking segments (local or unpacked from the archive) failed.
    #[error(transparent)]
    Log(#[from] regatta_log::Error),

    /// Applying history failed.
    #[error(transparent)]
    Materializer(#[from] regatta_materializer::Error),

    /// Listing or reading a snapshot in the object store failed.
    #[error("{location}: {source}")]
    Snapshot {
        location: String,
        #[source]
        source: regatta_materializer::Error,
    },

    /// The archive ends before the asked revision (an object shorter than its listing).
    #[error("the archive ends at revision {reached}, before {target}")]
    HistoryEnds { reached: u64, target: u64 },

    /// The store holds nothing to rebuild the asked revision from; `restorable` lists what
    /// it can rebuild.
    #[error("{}", not_restorable(*target, restorable))]
    NotRestorable {
        target: Option<u64>,
        restorable: Vec<(u64, u64)>,
    },

    /// A blocking task (unpacking a segment) panicked or was cancelled.
    #[error("{what} task failed: {source}")]
    Task {
        what: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
}

impl Error {
    pub(crate) fn store(what: impl Into<String>, source: object_store::Error) -> Self {
        Error::Store {
            what: what.into(),
            source,
        }
    }

    /// Whether the same call may succeed later: the object store failed or timed out.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Store { source, .. } => !matches!(
                source,
                object_store::Error::NotFound { .. }
                    | object_store::Error::InvalidPath { .. }
                    | object_store::Error::NotSupported { .. }
                    | object_store::Error::NotImplemented { .. }
            ),
            Error::Log(e) => e.is_retryable(),
            Error::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::Interrupted | std::io::ErrorKind::TimedOut
            ),
            Error::Snapshot { source, .. } => source.is_retryable(),
            Error::Config(_)
            | Error::Corrupted { .. }
            | Error::HistoryEnds { .. }
            | Error::Materializer(_)
            | Error::NotRestorable { .. }
            | Error::Task { .. } => false,
        }
    }
}

fn not_restorable(target: Option<u64>, restorable: &[(u64, u64)]) -> String {
    match target {
        None => "nothing to restore: the object store holds no snapshot and no archive from the start of the log".into(),
        Some(target) => {
            let shown: Vec<String> = restorable.iter().map(|(a, b)| format!("{a}..={b}")).collect();
            format!(
                "revision {target} cannot be restored from this store; restorable: {}",
                shown.join(", ")
            )
        }
    }
}
