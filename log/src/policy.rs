//! Decisions, apart from IO: when to roll a segment, and which segments a truncation or a
//! purge deletes, cuts or creates. These functions take a description of the segments and
//! return a plan; `truncate.rs` and `recovery.rs` carry plans out.

use crate::position::{LogIndex, SegmentId};

/// What the planner needs to know about one segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub id: SegmentId,
    /// One past the last entry; equals the first index for an empty segment.
    pub next: LogIndex,
}

impl Span {
    pub fn first(&self) -> LogIndex {
        self.id.first_index()
    }

    pub fn is_empty(&self) -> bool {
        self.next <= self.first()
    }
}

/// Whether the open segment must be sealed before a frame of `frame_len` bytes is added.
/// A segment always takes at least one entry, so an oversized record still finds a home.
pub fn should_roll(segment_len: u64, entries: usize, frame_len: u64, limit: u64) -> bool {
    entries > 0 && segment_len.saturating_add(frame_len) > limit
}

/// How to delete the entries from some index on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TruncatePlan {
    /// Segments to delete, newest first (so a crash never leaves a hole).
    pub delete: Vec<SegmentId>,
    /// What becomes the open segment afterwards.
    pub then: TruncateThen,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TruncateThen {
    /// Cut this segment so it keeps `keep` entries, and append to it.
    Cut { id: SegmentId, keep: u64 },
    /// This segment ends exactly before the truncation point: append to it as is.
    Reopen { id: SegmentId },
    /// No segment is left: create an empty one.
    Create { id: SegmentId },
}

/// Plans deleting entries `from..`. `spans` are all segments, in order, gap-free.
pub fn truncate_plan(spans: &[Span], from: LogIndex) -> TruncatePlan {
    let delete: Vec<SegmentId> = spans
        .iter()
        .rev()
        .take_while(|s| s.first() >= from)
        .map(|s| s.id)
        .collect();
    let kept = &spans[..spans.len() - delete.len()];
    let then = match kept.last() {
        None => TruncateThen::Create {
            id: SegmentId(from),
        },
        Some(s) if s.next > from => TruncateThen::Cut {
            id: s.id,
            keep: from.0 - s.first().0,
        },
        Some(s) => TruncateThen::Reopen { id: s.id },
    };
    TruncatePlan { delete, then }
}

/// How to drop the entries up to some index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PurgePlan {
    /// Segments wholly at or below the purge point, oldest first.
    pub delete: Vec<SegmentId>,
    /// Set when every segment goes: the empty open segment to create.
    pub create: Option<SegmentId>,
}

/// Plans purging entries `..=up_to`. Only whole segments are deleted; a segment that straddles
/// the point stays (the purged pointer hides its head). `spans` are all segments, in order.
pub fn purge_plan(spans: &[Span], up_to: LogIndex) -> PurgePlan {
    let after = up_to.next();
    let whole = |s: &Span| {
        if s.is_empty() {
            s.first() < after
        } else {
            s.next <= after
        }
    };
    let delete: Vec<SegmentId> = spans
        .iter()
        .take_while(|s| whole(s))
        .map(|s| s.id)
        .collect();
    let create = (delete.len() == spans.len()).then_some(SegmentId(after));
    PurgePlan { delete, create }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(first: u64, next: u64) -> Span {
        Span {
            id: SegmentId(LogIndex(first)),
            next: LogIndex(next),
        }
    }

    fn id(first: u64) -> SegmentId {
        SegmentId(LogIndex(first))
    }

    #[test]
    fn roll_only_nonempty_segments_past_the_limit() {
        assert!(!should_roll(32, 0, 1 << 30, 100));
        assert!(!should_roll(50, 3, 50, 100));
        assert!(should_roll(50, 3, 51, 100));
    }

    #[test]
    fn truncate_plans() {
        let spans = [span(0, 10), span(10, 20), span(20, 25)];
        assert_eq!(
            truncate_plan(&spans, LogIndex(22)),
            TruncatePlan {
                delete: vec![],
                then: TruncateThen::Cut {
                    id: id(20),
                    keep: 2
                }
            }
        );
        assert_eq!(
            truncate_plan(&spans, LogIndex(20)),
            TruncatePlan {
                delete: vec![id(20)],
                then: TruncateThen::Reopen { id: id(10) }
            }
        );
        assert_eq!(
            truncate_plan(&spans, LogIndex(15)),
            TruncatePlan {
                delete: vec![id(20)],
                then: TruncateThen::Cut {
                    id: id(10),
                    keep: 5
                }
            }
        );
        assert_eq!(
            truncate_plan(&spans, LogIndex(0)),
            TruncatePlan {
                delete: vec![id(20), id(10), id(0)],
                then: TruncateThen::Create { id: id(0) }
            }
        );
        // An empty open segment at the truncation point is deleted and its predecessor reopened.
        let spans = [span(0, 10), span(10, 10)];
        assert_eq!(
            truncate_plan(&spans, LogIndex(10)),
            TruncatePlan {
                delete: vec![id(10)],
                then: TruncateThen::Reopen { id: id(0) }
            }
        );
    }

    #[test]
    fn purge_plans() {
        let spans = [span(0, 10), span(10, 20), span(20, 25)];
        assert_eq!(
            purge_plan(&spans, LogIndex(5)),
            PurgePlan {
                delete: vec![],
                create: None
            }
        );
        assert_eq!(
            purge_plan(&spans, LogIndex(9)),
            PurgePlan {
                delete: vec![id(0)],
                create: None
            }
        );
        assert_eq!(
            purge_plan(&spans, LogIndex(24)),
            PurgePlan {
                delete: vec![id(0), id(10), id(20)],
                create: Some(id(25))
            }
        );
        assert_eq!(
            purge_plan(&spans, LogIndex(100)),
            PurgePlan {
                delete: vec![id(0), id(10), id(20)],
                create: Some(id(101))
            }
        );
        // An empty open segment right after the purge point stays.
        let spans = [span(0, 10), span(10, 10)];
        assert_eq!(
            purge_plan(&spans, LogIndex(9)),
            PurgePlan {
                delete: vec![id(0)],
                create: None
            }
        );
        assert_eq!(
            purge_plan(&spans, LogIndex(10)),
            PurgePlan {
                delete: vec![id(0), id(10)],
                create: Some(id(11))
            }
        );
    }
}
