//! Regatta's gRPC layer.
//!
//! This crate owns every tonic service a node serves and the translation between the wire
//! and the domain: the public API (`regatta.v1` KV, Cluster and Tables, `maintenance.v1`),
//! the Raft transport between core nodes (`regatta.raft.v1`), request limits and the mapping
//! of every domain error to a `tonic::Status`. It deliberately holds no storage and no
//! key-value semantics: those live in `regatta-log` and `regatta-materializer`; what differs
//! between a core and an edge node sits behind [`node::Role`], implemented by the node crates.
//! The log-tail service (`regatta.tail.v1`) lives in `regatta-replication`.
//!
//! Modules:
//! - [`error`] — the crate's error and its one mapping to gRPC status codes.
//! - [`node`] — what the services need from the node (materializer, role, limits, tokens).
//! - [`forward`] — a write on its way to the leader or upstream, and its answer.
//! - [`kv`] — `regatta.v1.KV`.
//! - [`maintenance`] — `maintenance.v1.Maintenance` (backup, restore, reset).
//! - [`tables`] — `regatta.v1.Tables`.
//! - [`cluster`] — `regatta.v1.Cluster`.
//! - [`disk`] — the free-space guard: writes refused while the data directory's disk is full.
//! - [`inject`] — store-side bugs for the fault suite (`REGATTA_INJECT_BUG`, debug builds only).
//! - [`metrics`] — request counts and latency of every gRPC method, also under the names
//!   Regatta exports (`grpc_server_*`).
//! - [`listen`] — the accepted connections every gRPC server is handed, and their limits.
//! - [`activity`] — what a connection's watchdog knows of its handshake and requests.
//! - [`raft_network`] — the client side of the Raft transport (openraft's `RaftNetwork`).
//! - [`raft_service`] — the server side of the Raft transport.
//! - [`range_stream`] — server streams with bounded memory and a limit (`IterateRange`).
//! - [`watch`] — `regatta.watch.v1.Watch`: change streams, from the materializer's history.
//! - [`snappy`] — requests compressed with snappy (`grpc-encoding: snappy`), as Regatta
//!   accepts them, made readable by tonic.

pub mod activity;
pub mod cluster;
pub mod disk;
pub mod error;
pub mod forward;
pub mod inject;
pub mod kv;
pub mod listen;
pub mod maintenance;
pub mod metrics;
pub mod node;
pub mod raft_network;
pub mod raft_service;
pub mod range_stream;
pub mod snappy;
pub mod tables;
pub mod watch;

pub use error::{Error, Result};
