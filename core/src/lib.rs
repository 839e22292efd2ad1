//! `regatta-core`: the core node's subsystems, the ones the `regatta core` command wires
//! together.
//!
//! This crate owns what a core node does beyond serving requests: the node's [`Role`]
//! behind the public API (proposing writes through openraft, forwarding to the leader,
//! read-index, membership changes); group proposal ([`batcher`]: many writes in one log
//! entry); the node's Raft snapshots on local disk ([`durable`], the `.rsnap` format), so a
//! compacted log restarts from its snapshot; archiving sealed segments to object storage
//! and the purge gate that holds local purges back to what is archived ([`archiver`],
//! [`purge_gate`]); snapshot uploads ([`uploader`]); and the core's metric names
//! ([`metrics`]). It deliberately does not parse flags, open listeners or assemble the
//! node (the binary's `core::run` does), does not own the log ([`regatta_log`]), the tables
//! and snapshot format ([`regatta_materializer`]), the gRPC services ([`regatta_api`]) or
//! the object-store layout ([`regatta_archive`]).
//!
//! Modules:
//!
//! * [`admin`] — `regatta.admin.v1.Admin`: membership changes and snapshots on demand;
//! * [`error`] — the one [`Error`] type and [`Error::is_retryable`];
//! * [`role`] — [`CoreRole`]: the API's [`regatta_api::node::Role`] over openraft;
//! * [`handoff`] — [`handoff::Handoff`]: giving leadership up when stopping or out of disk;
//! * [`batcher`] — [`batcher::Batcher`]: group proposal on the leader;
//! * [`durable`] — [`DurableStateMachine`]: the state machine with `.rsnap` files on disk;
//! * [`purge_gate`] — [`GatedLogStore`] and the pure purge decisions;
//! * [`archiver`] — [`archiver::Archiver`]: segment archive, repair of missing objects,
//!   retention;
//! * [`uploader`] — snapshot uploads, periodic and on demand;
//! * [`peer_url`] — the shape of a peer's Raft address (pure);
//! * [`metrics`] — metric names of the core node.
//!
//! `OVERVIEW.md` next to `Cargo.toml` lists the invariants and who calls what.

pub mod admin;
pub mod archiver;
pub mod batcher;
pub mod durable;
pub mod error;
pub mod expiry;
pub mod handoff;
pub mod metrics;
pub mod peer_url;
pub mod purge_gate;
pub mod role;
pub mod uploader;

pub use durable::DurableStateMachine;
pub use error::{Error, Result};
pub use purge_gate::{GatedLogStore, PurgeGate};
pub use role::CoreRole;

/// File in a re-seeded core node's fresh data directory (`regatta reseed`): start without
/// initialising a cluster, and wait to be added back. Removed once the node has joined.
pub const REJOIN_MARKER: &str = "REJOIN";
