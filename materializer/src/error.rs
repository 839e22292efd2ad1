//! The crate's one error type.
//!
//! Two families, kept apart: *request failures* (the caller's request is wrong or names
//! something that does not exist; the node carries on) and *node failures*
//! ([`Error::is_fatal`]: the node must stop applying rather than serve wrong data).

use crate::{Rejection, Revision};

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the materializer.
///
/// gRPC mapping (done by the API crate, one exhaustive match): `InvalidArgument`,
/// `KeyTooLarge`, `ValueTooLarge`, `LimitExceeded` → `InvalidArgument`; `Cancelled` →
/// `DeadlineExceeded`; `TableNotFound` → `NotFound`;
/// `TableExists` → `AlreadyExists`; `FailedPrecondition` → `FailedPrecondition`;
/// `Corrupted`, `UnknownEvent`, `OutOfOrder` → `Internal` (and the node stops);
/// `ObjectStore`, `Io` → `Unavailable`; `Closed` → `Unavailable`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed (empty table or key, negative limit, unknown enum value…).
    #[error("invalid argument: {reason}")]
    InvalidArgument { reason: String },
    /// A key or `range_end` is longer than the limit. Reported as InvalidArgument.
    #[error("key of {len} bytes exceeds the limit of {limit} bytes")]
    KeyTooLarge { len: usize, limit: usize },
    /// A value is longer than the limit. Reported as InvalidArgument.
    #[error("value of {len} bytes exceeds the limit of {limit} bytes")]
    ValueTooLarge { len: usize, limit: usize },
    /// Evaluating the request would pass one of the limits of [`crate::limits`]; nothing
    /// of it took effect. Reported as InvalidArgument (the request asks for too much; the
    /// message names the limit and what to do instead).
    #[error("{what} would exceed the limit of {limit} {unit}; {advice}")]
    LimitExceeded {
        what: &'static str,
        limit: u64,
        unit: &'static str,
        advice: &'static str,
    },
    /// Read-only work stopped because its caller's deadline passed or the caller went away.
    #[error("stopped: {reason}")]
    Cancelled { reason: &'static str },
    /// The named table does not exist.
    #[error("table {table:?} not found")]
    TableNotFound { table: String },
    /// A table with this name already exists.
    #[error("table {table:?} already exists")]
    TableExists { table: String },
    /// The request is well-formed but the state does not allow it (e.g. a restore stream that
    /// does not start with its header).
    #[error("failed precondition: {reason}")]
    FailedPrecondition { reason: String },
    /// A snapshot or backup is damaged: truncated, bit-flipped, wrong magic, bad checksum.
    #[error("corrupted {what}: {reason}")]
    Corrupted { what: &'static str, reason: String },
    /// A log entry this node cannot interpret (newer kind or version). Apply stops here.
    #[error("log entry {index}: unknown event ({reason}); apply stops, upgrade this node")]
    UnknownEvent { index: u64, reason: String },
    /// An entry was offered at or below the applied revision, or with a gap.
    #[error("log entry {index} offered out of order (applied {applied})")]
    OutOfOrder { index: u64, applied: Revision },
    /// The object store failed; retryable.
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    /// Local IO failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The materializer is shutting down.
    #[error("materializer closed")]
    Closed,
}

impl Error {
    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        Self::InvalidArgument {
            reason: reason.into(),
        }
    }

    pub(crate) fn corrupted(what: &'static str, reason: impl Into<String>) -> Self {
        Self::Corrupted {
            what,
            reason: reason.into(),
        }
    }

    /// `true` when the node must stop applying: continuing would serve wrong data.
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::UnknownEvent { .. } | Self::OutOfOrder { .. })
    }

    /// `true` when the same call may succeed later (object store or IO hiccups).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::ObjectStore(_) | Self::Io(_) | Self::Closed)
    }

    /// The deterministic rejection an apply records for this request error, if it is one.
    pub(crate) fn to_rejection(&self) -> Option<Rejection> {
        match self {
            Self::TableNotFound { table } => Some(Rejection::TableNotFound {
                table: table.clone(),
            }),
            Self::TableExists { table } => Some(Rejection::TableExists {
                table: table.clone(),
            }),
            Self::InvalidArgument { .. }
            | Self::LimitExceeded { .. }
            | Self::KeyTooLarge { .. }
            | Self::ValueTooLarge { .. } => Some(Rejection::InvalidArgument {
                reason: self.to_string(),
            }),
            _ => None,
        }
    }
}

impl From<Rejection> for Error {
    fn from(r: Rejection) -> Self {
        match r {
            Rejection::TableNotFound { table } => Self::TableNotFound { table },
            Rejection::TableExists { table } => Self::TableExists { table },
            Rejection::InvalidArgument { reason } => Self::InvalidArgument { reason },
        }
    }
}
