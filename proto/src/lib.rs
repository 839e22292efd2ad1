//! The protobuf contract of Regatta, and nothing else.
//!
//! This crate owns the `.proto` files and the code generated from them:
//!
//! - the public API, wire-compatible with existing Regatta clients: packages `mvcc.v1`,
//!   `regatta.v1`, `maintenance.v1` and `replication.v1` (see `docs/api.md`);
//! - the log event format, package `regatta.event.v1`: the payload of every log entry;
//! - change streams, package `regatta.watch.v1` (the Watch service, ours, beside the API);
//! - the one codec between openraft's types and `regatta.raft.v1` ([`raft`]), used by the
//!   Raft transport, the log's membership entries, the applied state in snapshots and the
//!   core's Raft snapshot files.
//!
//! Besides that codec it holds no behaviour: validation and conversion of the other messages
//! into domain types happen in the crates that own those types (`regatta-materializer` for
//! events and KV requests).
//!
//! Modules:
//! - generated code, re-exported under the package paths, e.g. [`regatta::v1`],
//!   [`mvcc::v1`], [`event`] for `regatta.event.v1`, `regatta::raft::v1`;
//! - [`raft`]: openraft types ⇄ `regatta.raft.v1` messages and their stored bytes;
//! - [`error`]: the crate's [`Error`].

#[allow(clippy::all, missing_docs, rust_2018_idioms)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/generated.rs"));
}
pub use generated::*;

pub mod error;
pub mod raft;

pub use error::{Error, Result};

/// The log event format (`regatta.event.v1`).
pub use regatta::event::v1 as event;

/// Encoded `FileDescriptorSet` of every file in this crate, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));

/// The current version of [`event::Event`]; readers reject any other.
pub const EVENT_VERSION: u32 = 1;

/// Now, in the unit every timestamp of these protocols is in: microseconds since the Unix
/// epoch (an event's `proposed_at_micros`, a tail heartbeat's `now_micros`); 0 if the clock
/// is before the epoch.
pub fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}
