//! Regatta's replication: everything that moves the committed log from one node to another.
//!
//! This crate owns both ends of `regatta.tail.v1`: the Tail server every node (core or edge)
//! serves on its replication port, and the edge's tailer that follows an upstream, keeps a
//! durable copy in its own log, applies it, bootstraps from a snapshot when it falls behind
//! the upstream's log, and fails over between upstreams. It also owns the rest of what
//! makes a node an edge: its [`Role`](role::EdgeRole) (writes forwarded up, read-your-writes),
//! its local snapshots, and its replication metrics.
//!
//! It deliberately does not own the log format (`regatta-log`), applying events or the
//! snapshot format and object-store layout (`regatta-materializer`), the public gRPC
//! services or the status mapping (`regatta-api`), nor the node's wiring, flags and listeners
//! (the `regatta` binary, which builds a [`Tailer`] and serves a [`TailService`] on the
//! node's replication port). See `OVERVIEW.md`.
//!
//! Modules:
//! - [`server`] — the Tail service a node serves on its replication port.
//! - [`tailer`] — the edge's tailer: subscribe and apply loop, bootstrap, upstream failover.
//! - [`role`] — the edge's [`regatta_api::node::Role`]: writes and read index go upstream.
//! - [`state`] — what the tailer shares with the role, status and readiness.
//! - [`local`] — the edge's local snapshot files.
//! - [`metrics`] — every metric this crate exports (`regatta_edge_*`).
//! - [`clock`] — Unix-microsecond time and the lag derived from it.
//! - [`error`] — the crate's error: follow another upstream, or stop replicating.
//! - `progress` — bootstrap progress as log lines.

pub mod clock;
pub mod error;
pub mod local;
pub mod metrics;
mod progress;
pub mod role;
pub mod server;
pub mod state;
pub mod tailer;

pub use clock::{Lag, now_micros};
pub use error::{Error, Result};
pub use local::LocalSnapshots;
pub use metrics::EdgeMetrics;
pub use role::EdgeRole;
pub use server::{ObjectSnapshotRevision, TailService, TailSettings};
pub use state::{ReplicationState, ResetRequest};
pub use tailer::{Tailer, TailerSettings, apply_records};
