//! Reading ranges of entries.
//!
//! A read takes a short look at the segment list under the shared lock and leaves with a plan:
//! for sealed segments an `Arc` of the memory map (payloads are handed out as slices of it,
//! without copying), for the open segment the file and the offsets of the wanted frames (read
//! with one `pread` when the iterator reaches them). Every frame's checksum and index are
//! verified as it is returned; a mismatch is an error naming the file and offset.

use std::collections::VecDeque;
use std::fs::File;
use std::ops::{Bound, RangeBounds};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::log::{Log, lock};
use crate::position::{ByteOffset, LogIndex};
use crate::record::Record;
use crate::segment::{self, Sealed};

enum Chunk {
    /// Entries `next..end` of a sealed segment.
    Mapped {
        seg: Arc<Sealed>,
        next: LogIndex,
        end: LogIndex,
    },
    /// Frames of the open segment, not read yet: `offsets[i]` holds entry `first + i`, the last
    /// frame ends at `end`.
    Unread {
        path: PathBuf,
        file: Arc<File>,
        first: LogIndex,
        offsets: Vec<u64>,
        end: u64,
    },
    /// Frames of the open segment, read into `data` (which starts at file offset `base`).
    Buffered {
        path: PathBuf,
        data: Bytes,
        base: u64,
        first: LogIndex,
        offsets: Vec<u64>,
        at: usize,
    },
}

/// An iterator over a range of records. It holds the segments it reads alive, so purges and
/// truncations running meanwhile do not pull memory out from under it.
pub struct ReadIter {
    chunks: VecDeque<Chunk>,
    failed: bool,
}

impl std::fmt::Debug for ReadIter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadIter")
            .field("chunks", &self.chunks.len())
            .finish()
    }
}

fn bounds(range: &impl RangeBounds<LogIndex>) -> (Option<LogIndex>, Option<LogIndex>) {
    let start = match range.start_bound() {
        Bound::Included(i) => Some(*i),
        Bound::Excluded(i) => Some(i.next()),
        Bound::Unbounded => None,
    };
    let end = match range.end_bound() {
        Bound::Included(i) => Some(i.next()),
        Bound::Excluded(i) => Some(*i),
        Bound::Unbounded => None,
    };
    (start, end)
}

impl Log {
    /// Records in `range`, in order. The end is clipped to the last written entry; a start at
    /// or below the purged pointer is [`Error::Purged`]. Unbounded start means "first".
    pub fn read(&self, range: impl RangeBounds<LogIndex>) -> Result<Vec<Record>> {
        self.iter(range)?.collect()
    }

    /// Like [`Log::read`], lazily.
    pub fn iter(&self, range: impl RangeBounds<LogIndex>) -> Result<ReadIter> {
        let (start, end) = bounds(&range);
        let s = lock(&self.inner.core.shared);
        let purged_next = s.purged.map(|p| p.index.next());
        let physical_first = s
            .sealed
            .keys()
            .next()
            .copied()
            .unwrap_or(s.open.id.first_index());
        let first = purged_next.map_or(physical_first, |p| p.max(physical_first));
        let start = start.unwrap_or(first);
        if let Some(p) = s.purged
            && start <= p.index
        {
            return Err(Error::Purged {
                requested: start,
                purged: p.index,
            });
        }
        let start = start.max(first);
        let end = end.map_or(s.written_next, |e| e.min(s.written_next));
        let mut chunks = VecDeque::new();
        if start >= end {
            return Ok(ReadIter {
                chunks,
                failed: false,
            });
        }
        let from_key = s
            .sealed
            .range(..=start)
            .next_back()
            .map_or(start, |(k, _)| *k);
        for seg in s.sealed.range(from_key..end).map(|(_, seg)| seg) {
            let next = start.max(seg.first_index());
            let stop = end.min(seg.next_index());
            if next < stop {
                chunks.push_back(Chunk::Mapped {
                    seg: Arc::clone(seg),
                    next,
                    end: stop,
                });
            }
        }
        let open = &s.open;
        let open_first = open.id.first_index();
        let next = start.max(open_first);
        if next < end {
            let lo = (next.0 - open_first.0) as usize;
            let hi = (end.0 - open_first.0) as usize;
            let end_offset = open.offsets.get(hi).copied().unwrap_or(open.end);
            chunks.push_back(Chunk::Unread {
                path: open.path.clone(),
                file: Arc::clone(&open.file),
                first: next,
                offsets: open.offsets[lo..hi].to_vec(),
                end: end_offset,
            });
        }
        Ok(ReadIter {
            chunks,
            failed: false,
        })
    }
}

impl ReadIter {
    fn step(&mut self) -> Option<Result<Record>> {
        loop {
            let chunk = self.chunks.front_mut()?;
            match chunk {
                Chunk::Mapped { seg, next, end } => {
                    if *next >= *end {
                        self.chunks.pop_front();
                        continue;
                    }
                    let index = *next;
                    *next = next.next();
                    return Some(seg.record(index));
                }
                Chunk::Unread {
                    path,
                    file,
                    first,
                    offsets,
                    end,
                } => {
                    let base = offsets.first().copied().unwrap_or(*end);
                    let len = usize::try_from(*end - base).unwrap_or(usize::MAX);
                    let mut data = vec![0u8; len];
                    if let Err(e) = file.read_exact_at(&mut data, base) {
                        let path = path.clone();
                        return Some(Err(if e.kind() == std::io::ErrorKind::UnexpectedEof {
                            Error::corrupted(
                                path,
                                ByteOffset(base),
                                "entries vanished while being read (concurrent truncation)",
                            )
                        } else {
                            Error::io(path, e)
                        }));
                    }
                    *chunk = Chunk::Buffered {
                        path: path.clone(),
                        data: Bytes::from(data),
                        base,
                        first: *first,
                        offsets: std::mem::take(offsets),
                        at: 0,
                    };
                }
                Chunk::Buffered {
                    path,
                    data,
                    base,
                    first,
                    offsets,
                    at,
                } => {
                    let Some(&offset) = offsets.get(*at) else {
                        self.chunks.pop_front();
                        continue;
                    };
                    let index = LogIndex(first.0 + *at as u64);
                    *at += 1;
                    let record = segment::decode_at(path, data, offset - *base, index).map_err(
                        |e| match e {
                            Error::Corrupted { path, reason, .. } => Error::Corrupted {
                                path,
                                offset: ByteOffset(offset),
                                reason,
                            },
                            other => other,
                        },
                    );
                    return Some(record);
                }
            }
        }
    }
}

impl Iterator for ReadIter {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let item = self.step();
        if matches!(item, Some(Err(_))) {
            self.failed = true;
        }
        item
    }
}
