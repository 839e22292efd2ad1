//! What applying one log entry answers: the per-entry response carried back to the proposer.

use regatta_proto::mvcc::v1::KeyValue;
use regatta_proto::regatta::v1::{DeleteRangeResponse, TxnResponse};

use crate::TableId;

/// The response of applying one log entry.
///
/// Deterministic: every replica applying the same entry computes the same value. Headers of
/// the embedded wire responses are left `None`; the API layer fills them in.
///
/// Small (40 bytes): a batch of puts answers one per put, so a put's answer holds only its
/// optional previous pair, and the larger answers are boxed.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum ApplyResponse {
    /// A Blank or Membership entry: nothing to answer.
    #[default]
    Empty,
    /// A put, with the previous pair when the put asked for it and the key existed.
    Put {
        prev_kv: Option<Box<KeyValue>>,
    },
    DeleteRange(Box<DeleteRangeResponse>),
    Txn(Box<TxnResponse>),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch answers one response per put: the enum stays small (no inline wire message).
    #[test]
    fn an_apply_response_is_small() {
        assert!(std::mem::size_of::<ApplyResponse>() <= 40);
    }
}
