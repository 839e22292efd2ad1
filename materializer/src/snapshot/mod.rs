//! Snapshots: one versioned, checksummed, zstd-compressed, key-ordered format, used for Raft
//! snapshot transfer, edge bootstrap, recovery and backups alike.
//!
//! - [`format`](mod@format): the byte format, encoded and decoded as a stream (plain sync functions).
//! - [`store`]: writing and reading snapshots in any `object_store::ObjectStore`.

pub mod format;
pub mod store;

pub use format::{SNAPSHOT_MAGIC, SNAPSHOT_VERSION, decode, encode, read_snapshot, write_snapshot};
pub use store::{SnapshotInfo, SnapshotStore};
