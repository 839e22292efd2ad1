//! `regatta-archive`: what a Regatta cluster keeps in object storage, and reading it back.
//!
//! This crate owns the object store as a place: opening one from a URL (local directory, S3,
//! GCS, Azure, memory) rooted at the cluster's prefix; the layout of the segment archive
//! (one zstd-packed sealed segment per immutable, zero-padded key) and of hole markers;
//! the pure decisions over that layout (coverage, what to re-upload or record as lost,
//! which holes a store shows); the committed log read as one sequence from a node's local
//! segments and the archive together; and point-in-time reconstruction of the tables from
//! a snapshot plus archived history. It does not decide when to archive or purge (that is
//! the core node's archiver in `regatta-core`), does not own the snapshot format or the
//! snapshot keys (`regatta-materializer`'s `SnapshotStore`, reached through
//! [`objects::ObjectStorage::snapshots`]), and prints nothing: long operations report
//! through [`restore::Progress`], and command-line parsing and output stay in the binary.
//!
//! Modules:
//!
//! * [`error`] — the one [`Error`] type and [`Error::is_retryable`];
//! * [`objects`] — [`ObjectStorage`]: a store opened from its URL and [`objects::Settings`];
//! * [`segments`] — [`SegmentArchive`]: the segment archive's layout, uploads, listings and
//!   holes; [`plan_repair`], [`store_holes`], [`coverage`], [`describe`] (pure);
//! * [`history`] — [`History`]: local and archived segments as one committed sequence;
//! * [`retention`] — [`retention::retention_plan`]: which snapshots and segments to delete (pure);
//! * [`restore`] — [`restore::restorable`] and [`restore::state_at`]: the tables at a revision.
//!
//! `OVERVIEW.md` next to `Cargo.toml` lists the invariants and who calls what.

pub mod error;
pub mod history;
pub mod objects;
pub mod restore;
pub mod retention;
pub mod segments;

pub use error::{Error, Result};
pub use history::History;
pub use objects::ObjectStorage;
pub use segments::{
    ArchivedSegment, Put, Repair, SegmentArchive, coverage, describe, plan_repair, store_holes,
};
