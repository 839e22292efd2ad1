//! `regatta-log`: the segmented, durable, append-only log that Regatta stands on, and
//! openraft's log storage on top of it.
//!
//! This crate owns bytes on disk and their order: records framed with length and CRC32C in
//! segment files named by their first index; recovery after a crash (a torn tail is cut, any
//! other damage is an error that stops the node); group-committed appends (one fsync for
//! everything queued); truncation and purging that are crash-safe; the small state files for
//! the purged pointer, the Raft vote and the committed pointer; zstd archives of sealed
//! segments (the bytes; uploading them is the caller's); and the adapter that makes all
//! of this openraft 0.9's `RaftLogStorage`. It deliberately knows nothing of keys, values or
//! tables: a record's payload is opaque bytes (a protobuf event, encoded and decoded by the
//! caller), and applying entries belongs to `regatta-materializer`. Edge nodes use the raw
//! [`Log`] directly, without openraft, to keep their copy of the committed log.
//!
//! Modules, bottom up:
//!
//! * [`position`] — newtypes for indices, terms, node ids, segment ids and byte offsets;
//! * [`error`] — the one [`Error`] type, [`Error::is_retryable`] and [`Error::must_stop`];
//! * [`record`] — a record and its frame codec (pure);
//! * [`segment`] — segment header, frame scanning, sealed memory-mapped segments;
//! * [`policy`] — decisions without IO: when to roll, what a truncate or purge touches;
//! * [`pointers`] — the order `purged ≤ … ≤ flushed ≤ written`, checked in debug builds;
//! * [`fs`] — the one atomic replace of a file (temporary, fsync, rename, directory fsync);
//! * [`state_file`] — small files written atomically, versioned and checksummed;
//! * [`snapshot_dir`] — a directory of local snapshot files named by position, the newest
//!   few kept, the newest intact one loaded (the snapshot format is the caller's);
//! * [`torn`] — telling a torn tail of the last segment from corruption (pure);
//! * `recovery` — opening a directory: scan, cut torn tails, finish interrupted operations;
//! * `log` — [`Log`]: open, the locks and pointers; `append` — the write path and segment
//!   rolls; `sync` — group commit (the syncer thread and blocked appenders);
//! * `read` — ranges of records ([`ReadIter`]); `truncate` — truncate and purge;
//! * [`archive`] — zstd archives of sealed segments, for object storage;
//! * [`reader`] — reading a directory read-only beside a live node, and archived segments;
//! * [`raft`] — [`raft::RaftLogStore`], openraft's log storage over a [`Log`].
//!
//! `OVERVIEW.md` next to `Cargo.toml` draws the invariants.

mod append;
pub mod archive;
pub mod error;
pub mod fs;
mod log;
pub mod pointers;
pub mod policy;
pub mod position;
pub mod raft;
mod read;
pub mod reader;
pub mod record;
mod recovery;
pub mod segment;
pub mod snapshot_dir;
pub mod state_file;
mod sync;
pub mod testing;
pub mod torn;
mod truncate;

pub use error::{Error, Result};
pub use log::{Log, MAX_SYNC_PAUSE, Options, SealedSegment, SyncObserver, WrittenMark};
pub use pointers::Pointers;
pub use position::{ByteOffset, EntryId, LogIndex, NodeId, SegmentId, Term};
pub use read::ReadIter;
pub use record::{Record, RecordKind};
pub use recovery::LOCK_FILE;
pub use snapshot_dir::SnapshotDir;
