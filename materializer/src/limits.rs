//! Size limits of keys, values and responses (API.md, "Limits and errors").

/// Longest key (and `range_end`), in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// Longest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 2 * 1024 * 1024;
/// A range response is cut before its key and value bytes would reach this size.
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;
/// Per-pair framing overhead counted against [`MAX_RESPONSE_BYTES`] (protobuf tags, lengths
/// and the two revisions), so the encoded response stays below the gRPC message limit.
pub const KV_OVERHEAD_BYTES: usize = 32;

/// What one write may answer, in bytes counted as for a range response: the pairs of a
/// Txn's range ops, the previous pairs its puts and deletes ask for, and a `DeleteRange`'s
/// `prev_kv` pairs. A write over it is rejected at apply, with no effect.
///
/// Like every limit applied while a log entry is evaluated, this is a constant of the
/// log's semantics, not a flag: every replica, edge and replay must reach the same verdict
/// on the same entry. Raising it is a format change (entries evaluated differently by old
/// and new builds); lowering it too.
pub const MAX_TXN_RESPONSE_BYTES: usize = MAX_RESPONSE_BYTES;

/// Records one transaction may step through while evaluating its compares and range ops
/// (a `count_only` range or a revision filter visits records it does not return). Over it,
/// the transaction fails with no effect: at apply, deterministically, as for
/// [`MAX_TXN_RESPONSE_BYTES`]. Deletes are not counted: their work is their effect.
pub const MAX_TXN_SCANNED_RECORDS: u64 = 8 << 20;

/// Default for `--api.max-txn-ops`: the most ops one branch of a Txn (or its compares) may
/// list. Checked where a request enters a node, never at apply (older entries may hold
/// more; the budgets above bound what evaluating them costs).
pub const DEFAULT_MAX_TXN_OPS: usize = 1024;

/// Longest time to live a put may set: ten years, in milliseconds. Checked where a request
/// enters and at apply alike (a constant of the log's semantics, as the budgets above).
pub const MAX_TTL_MILLIS: u64 = 10 * 365 * 24 * 3600 * 1000;
