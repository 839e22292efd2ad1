//! The order of the log pointers, written down once in prose and once in code.
//!
//! ```text
//!   purged  ≤  snapshot  ≤  applied  ≤  committed  ≤  flushed  ≤  written
//!   └─ this crate ─┘                                  └──── this crate ────┘
//! ```
//!
//! * `written` — the last entry handed to the file (readable, maybe not yet durable);
//! * `flushed` — the last entry known durable (fsync'd); appends resolve only up to here;
//! * `committed` — replicated on a quorum (Raft's; persisted by the `raft` module as advice);
//! * `applied`, `snapshot` — the materializer's;
//! * `purged` — the last entry compaction removed; reads at or below it fail.
//!
//! This crate owns `purged`, `flushed` and `written`, and checks their order in debug builds
//! after every change (`check_log_pointers`). [`Pointers::is_ordered`] states the whole
//! chain; it is not asserted anywhere, because on one node the middle pointers may lawfully
//! run ahead of this log for a while: a follower learns a commit index that covers entries
//! it has written but not yet fsync'd, and after a torn tail is cut (or a data directory is
//! wiped) `committed` and `applied` stand beyond `written` until the leader sends the lost
//! entries again (openraft's `loosen-follower-log-revert`).

use crate::position::LogIndex;

/// The six pointers of a node's log, each `None` when nothing has reached it yet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pointers {
    pub purged: Option<LogIndex>,
    pub snapshot: Option<LogIndex>,
    pub applied: Option<LogIndex>,
    pub committed: Option<LogIndex>,
    pub flushed: Option<LogIndex>,
    pub written: Option<LogIndex>,
}

impl Pointers {
    /// Whether `purged ≤ snapshot ≤ applied ≤ committed ≤ flushed ≤ written` holds, reading
    /// `None` as "before the first entry" (smaller than any index).
    pub fn is_ordered(&self) -> bool {
        let chain = [
            self.purged,
            self.snapshot,
            self.applied,
            self.committed,
            self.flushed,
            self.written,
        ];
        chain.windows(2).all(|w| w[0] <= w[1])
    }
}

/// Checks the pointers this crate owns: `purged < flushed_next ≤ written_next` (as "next"
/// positions: one past the last purged/flushed/written entry).
pub(crate) fn check_log_pointers(
    purged: Option<LogIndex>,
    flushed_next: LogIndex,
    written_next: LogIndex,
) {
    debug_assert!(
        purged.is_none_or(|p| p < flushed_next) && flushed_next <= written_next,
        "log pointers out of order: purged {purged:?}, flushed_next {flushed_next}, \
         written_next {written_next}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order() {
        let mut p = Pointers {
            purged: Some(LogIndex(1)),
            snapshot: Some(LogIndex(2)),
            applied: Some(LogIndex(3)),
            committed: Some(LogIndex(3)),
            flushed: Some(LogIndex(5)),
            written: Some(LogIndex(6)),
        };
        assert!(p.is_ordered());
        p.flushed = Some(LogIndex(7));
        assert!(!p.is_ordered());
        assert!(Pointers::default().is_ordered());
    }
}
