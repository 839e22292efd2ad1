//! The protobuf contract of Regatta, and nothing else.
//!
//! This crate owns the `.proto` files and the code generated from them:
//!
//! - the public API, wire-compatible with existing Regatta clients: packages `mvcc.v1`,
//!   `regatta.v1`, `maintenance.v1` and `replication.v1` (see `docs/api.md`);
//! - the log event format, package `regatta.event.v1`: the payload of every log entry.
//!
//! It deliberately holds no behaviour: validation and conversion into domain types happen in
//! the crates that own those types (`regatta-materializer` for events and KV requests).
//!
//! Generated modules are re-exported under their package paths, e.g. [`regatta::v1`],
//! [`mvcc::v1`], [`event`] for `regatta.event.v1`.

#![allow(clippy::all, missing_docs, rust_2018_idioms)]

include!(concat!(env!("OUT_DIR"), "/generated.rs"));

/// The log event format (`regatta.event.v1`).
pub use regatta::event::v1 as event;

/// Encoded `FileDescriptorSet` of every file in this crate, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));

/// The current version of [`event::Event`]; readers reject any other.
pub const EVENT_VERSION: u32 = 1;
