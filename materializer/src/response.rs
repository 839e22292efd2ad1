//! What applying one log entry answers: the per-entry response carried back to the proposer.

use regatta_proto::regatta::v1::{DeleteRangeResponse, PutResponse, TxnResponse};

use crate::TableId;

/// The response of applying one log entry.
///
/// Deterministic: every replica applying the same entry computes the same value. Headers of
/// the embedded wire responses are left `None`; the API layer fills them in.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum ApplyResponse {
    /// A Blank or Membership entry: nothing to answer.
    #[default]
    Empty,
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    /// A table was created with this id (the log index of its create event).
    TableCreated {
        id: TableId,
    },
    TableDeleted,
    /// A restore event stored this many pairs.
    TableRestored {
        stored: u64,
    },
    /// The entry was rejected, identically on every replica: the request failed, the node
    /// carries on.
    Rejected(Rejection),
    /// One response per command of a batch entry, in order.
    Batch(Vec<ApplyResponse>),
}

/// Why an entry was rejected at apply time. A request failure, never a node failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("table {table:?} not found")]
    TableNotFound { table: String },
    #[error("table {table:?} already exists")]
    TableExists { table: String },
    #[error("invalid argument: {reason}")]
    InvalidArgument { reason: String },
}
