//! openraft 0.9's log storage (`RaftLogStorage` + `RaftLogReader`, storage-v2) over a [`Log`].
//!
//! * [`codec`] — openraft entries ⇄ log records: normal payloads with prost (`C::D` is a prost
//!   message), membership through the workspace's openraft codec (`regatta_proto::raft`,
//!   message `regatta.raft.v1.Membership`), blank as an empty payload; vote and log-id
//!   encodings for the state files.
//! * [`store`] — [`RaftLogStore`] and its concurrent reader [`RaftLogReaderHandle`].
//! * [`durability`] — [`Durability`]: appends are replicated and answered while they are
//!   being fsync'd, and become visible, or acknowledged to the leader, only once durable.
//!
//! How the contract is honoured:
//!
//! * no holes: the log refuses appends that do not continue it;
//! * I/O in submission order: appends are written under one lock and made durable in order;
//!   `save_vote`, `truncate` and `purge` first wait for every earlier append to be durable;
//! * `LogFlushed` is called from the syncer thread only after the fdatasync covering the
//!   entries — except when a [`Durability`] is set, where it is called once they are
//!   written and durability is enforced where entries become visible or are acknowledged
//!   instead (see [`durability`]); entries are readable as soon as `append` returns;
//! * `save_vote` returns after the vote file is renamed into place and the directory synced;
//! * `save_committed` records the value at once (for `read_committed`) and persists it in the
//!   background, coalesced to at most one atomic write per 100 ms (and on drop): the committed
//!   pointer is advice for a faster restart, a stale value is always safe (a value beyond the
//!   log after a crash is ignored on open), and fsyncing twice per commit on the Raft core's
//!   path would cost more than it saves;
//! * `get_log_reader` hands out a clone of the log handle, usable concurrently with appends;
//! * a full disk is not an error openraft sees (it would stop Raft for good): `append`,
//!   `save_vote`, `truncate` and `purge` wait for space and retry
//!   ([`store::retry_while_disk_full`]); the failed attempt left the log as it was.
//!
//! [`Log`]: crate::Log

pub mod codec;
pub mod durability;
pub mod store;

pub use durability::Durability;
pub use store::{RaftLogReaderHandle, RaftLogStore};
