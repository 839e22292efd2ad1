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
