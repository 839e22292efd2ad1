//! The materializer: turns committed log events into the in-memory tables every read is
//! served from, on core and edge nodes alike.
//!
//! It owns: the domain types of reads and writes (validated once from the wire with
//! `TryFrom`), applying events to tables deterministically, KV semantics (range, put,
//! delete, txn), the published read view and the "applied ≥ R" signal, the snapshot format
//! and its IO to any `object_store`, Regatta's backup format, and openraft's state machine.
//!
//! It deliberately does not own: gRPC serving and status mapping (`regatta-api`), the log's
//! on-disk format and openraft's log storage (`regatta-log`), nor node assembly. It never
//! touches the network except through an `ObjectStore` it is handed.
//!
//! # How to use it
//!
//! A node makes one [`Materializer`] (empty, or from a [`State`] read with
//! [`snapshot::read_snapshot`] or downloaded by a [`snapshot::SnapshotStore`]). Whoever
//! owns the committed log (openraft through [`raft`] on a core node, the tailer on an edge)
//! hands it entries in index order with [`Materializer::apply_batch`] and gets one
//! [`ApplyResponse`] per entry back. A write enters the node as a wire request, is
//! validated once into a [`Command`] (`TryFrom`), and reaches the log as the `Event`
//! `Command::to_event` encodes. Readers call [`Materializer::view`] (or `peek`) and ask the
//! returned [`State`] (`get`, `range`, `iterate`, `read_txn`); a reader that must see
//! revision R first awaits [`Materializer::wait_applied`]. Bootstrap and restore build a
//! whole `State` and install it with [`Materializer::replace`]. Backups in Regatta's
//! format are written and read with [`backup`].
//!
//! `OVERVIEW.md` has the invariants and why the table structure is our own B+tree; the
//! measurements behind it are in `benchmarks/README.md` ("Materializer: the history of
//! the read path").
//!
//! # Modules
//!
//! - [`ids`]: [`Revision`], [`TableId`] newtypes.
//! - [`error`]: [`Error`], [`Result`]; request failures vs fatal node failures.
//! - [`limits`]: key, value and response size limits, and what evaluating one request may
//!   cost; [`budget`] charges those costs while the work is done.
//! - [`request`]: strict domain types of reads and writes, `TryFrom` the wire.
//! - [`command`]: [`Command`], a validated write, to and from a log `Event`.
//! - [`key`]: [`key::Key`], short keys stored inline (separators, sorted put runs).
//! - [`table`]: one table's ordered map and primitive writes.
//! - [`tree`]: [`tree::Tree`], the copy-on-write B+tree inside every table.
//! - [`state`]: [`State`], an immutable view of every table at one revision.
//! - [`range`]: range evaluation, chunking, [`RangeIter`].
//! - [`txn`]: compares and transaction ops.
//! - [`apply`]: the pure apply function.
//! - [`changes`]: what apply changed, key by key, and a watcher's filter over it.
//! - [`history`]: the recent changes a node keeps for watchers, bounded in memory.
//! - [`materializer`]: [`Materializer`], the published state, apply batches, wait for R.
//! - [`response`]: [`ApplyResponse`], what applying an entry answers.
//! - [`raft_meta`]: openraft bookkeeping carried inside every state.
//! - [`snapshot`]: the snapshot format and its object store IO.
//! - [`backup`]: Regatta's backup stream and directory format.
//! - [`raft`]: openraft [`raft::TypeConfig`] and state machine.

pub mod apply;
pub mod backup;
pub mod budget;
pub mod changes;
pub mod command;
pub mod error;
pub mod history;
pub mod ids;
pub mod key;
pub mod limits;
pub mod materializer;
pub mod raft;
pub mod raft_meta;
pub mod range;
pub mod request;
pub mod response;
pub mod snapshot;
pub mod state;
pub mod table;
pub mod tree;
pub mod txn;

pub use budget::Budget;
pub use command::Command;
pub use error::{Error, Result};
pub use ids::{Revision, TableId};
pub use materializer::{Entry, Materializer};
pub use range::RangeIter;
pub use response::{ApplyResponse, Rejection};
pub use state::State;

/// This node's wall clock in milliseconds since the Unix epoch: the time a reader judges
/// expiry at (0 if the clock is before 1970).
pub fn wall_clock_ms() -> u64 {
    regatta_proto::now_micros() / 1000
}
