//! The materializer: turns committed log events into the in-memory tables every read is
//! served from, on core and edge nodes alike.
//!
//! Modules:
//! - [`raft`]: openraft type config and state machine.
//! - [`response`]: what applying an entry answers.

pub mod raft;
pub mod response;

pub use response::{ApplyResponse, Rejection};

/// A table's id: the log index of its create event. Shown to clients as a decimal string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableId(pub u64);

impl std::fmt::Display for TableId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}
