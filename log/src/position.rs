//! Positions in the log, as newtypes that do not type-check in each other's places.
//!
//! A [`LogIndex`] counts entries, a [`Term`] counts elections, a [`NodeId`] names the leader
//! that wrote an entry, a [`SegmentId`] names a segment file by the index of its first entry,
//! and a [`ByteOffset`] is a position inside one segment file. Mixing them up is a compile
//! error, not a silent off-by-a-universe bug.

use std::fmt;

macro_rules! position {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub u64);

        impl $name {
            /// The raw number, for encoding and display.
            pub const fn get(self) -> u64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

position!(
    /// The position of an entry in the log; also the revision of the write it carries.
    LogIndex
);
position!(
    /// A Raft term.
    Term
);
position!(
    /// The id of the node that led the term in which an entry was written.
    NodeId
);
position!(
    /// A byte position inside one segment file, counted from the start of the file.
    ByteOffset
);

impl LogIndex {
    /// The index after this one.
    pub const fn next(self) -> LogIndex {
        LogIndex(self.0 + 1)
    }
}

/// A segment's identity: the index of the first entry it holds (or will hold, when empty).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentId(pub LogIndex);

impl SegmentId {
    /// Length of the zero-padded number in a segment file name.
    pub const NAME_DIGITS: usize = 20;
    /// Extension of segment files.
    pub const EXTENSION: &'static str = "seg";

    /// The index of the first entry of the segment.
    pub const fn first_index(self) -> LogIndex {
        self.0
    }

    /// File name, zero-padded so that listing a directory sorts segments in log order:
    /// `00000000000000000001.seg`.
    pub fn file_name(self) -> String {
        format!("{:020}.{}", self.0.0, Self::EXTENSION)
    }

    /// Parses a file name written by [`SegmentId::file_name`]; `None` for anything else.
    pub fn parse_file_name(name: &str) -> Option<SegmentId> {
        let digits = name.strip_suffix(".seg")?;
        if digits.len() != Self::NAME_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok().map(|n| SegmentId(LogIndex(n)))
    }
}

impl fmt::Display for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "segment@{}", self.0)
    }
}

/// Identity of one entry: its index and the leader (term and node) that wrote it. Two logs that
/// hold entries with equal ids at an index agree on everything up to that index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EntryId {
    pub index: LogIndex,
    pub term: Term,
    pub leader: NodeId,
}

impl EntryId {
    pub const fn new(index: LogIndex, term: Term, leader: NodeId) -> Self {
        Self {
            index,
            term,
            leader,
        }
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.term, self.leader, self.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip_and_sort() {
        let a = SegmentId(LogIndex(1));
        let b = SegmentId(LogIndex(10));
        assert_eq!(a.file_name(), "00000000000000000001.seg");
        assert!(a.file_name() < b.file_name());
        assert_eq!(SegmentId::parse_file_name(&b.file_name()), Some(b));
        assert_eq!(SegmentId::parse_file_name("1.seg"), None);
        assert_eq!(SegmentId::parse_file_name("0000000000000000000x.seg"), None);
        assert_eq!(
            SegmentId::parse_file_name(&SegmentId(LogIndex(u64::MAX)).file_name()),
            Some(SegmentId(LogIndex(u64::MAX)))
        );
    }
}
