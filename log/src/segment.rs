//! Segment files: naming, the header, scanning frames, and sealed (memory-mapped) segments.
//!
//! A segment is a file named by the index of its first entry (see [`SegmentId::file_name`]),
//! holding a 32-byte header and then back-to-back frames (see [`crate::record`]):
//!
//! ```text
//! offset  size  field
//!      0     8  magic  b"RGTASEG\n"
//!      8     4  format version (u32 LE), currently 1; readers reject any other
//!     12     4  header length (u32 LE), 32
//!     16     8  first index (u64 LE); must equal the index in the file name
//!     24     4  flags (u32 LE), 0; readers reject unknown flags
//!     28     4  CRC32C of bytes 0..28 (u32 LE)
//! ```
//!
//! Only the last segment of a log is written to (the *open* segment). Every other segment is
//! *sealed*: complete, fsync'd before its successor was created, immutable, and read through a
//! memory map so that payloads are handed out without copying.

use std::fs::File;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::position::{ByteOffset, EntryId, LogIndex, SegmentId, Term};
use crate::record::{self, FrameError, Record};

pub const MAGIC: [u8; 8] = *b"RGTASEG\n";
pub const VERSION: u32 = 1;
pub const HEADER_LEN: usize = 32;

/// The encoded header of a segment starting at `id`.
pub fn encode_header(id: SegmentId) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
    h[16..24].copy_from_slice(&id.first_index().0.to_le_bytes());
    let crc = crc32c::crc32c(&h[0..28]);
    h[28..32].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Checks the header at the start of `bytes` against the segment id from the file name.
pub fn check_header(path: &Path, bytes: &[u8], id: SegmentId) -> Result<()> {
    if bytes.len() < HEADER_LEN {
        return Err(Error::corrupted(
            path,
            ByteOffset(0),
            "segment shorter than its header",
        ));
    }
    if bytes[0..8] != MAGIC {
        return Err(Error::UnsupportedFormat {
            path: path.to_path_buf(),
            what: format!("bad segment magic {:?}", &bytes[0..8]),
        });
    }
    let field = |at: usize| {
        let mut b = [0u8; 4];
        b.copy_from_slice(&bytes[at..at + 4]);
        u32::from_le_bytes(b)
    };
    let stored = field(28);
    let computed = crc32c::crc32c(&bytes[0..28]);
    if stored != computed {
        return Err(Error::corrupted(
            path,
            ByteOffset(28),
            "segment header checksum mismatch",
        ));
    }
    let version = field(8);
    if version != VERSION {
        return Err(Error::UnsupportedFormat {
            path: path.to_path_buf(),
            what: format!("segment format version {version}, this build reads {VERSION}"),
        });
    }
    let header_len = field(12);
    let flags = field(24);
    if header_len as usize != HEADER_LEN || flags != 0 {
        return Err(Error::UnsupportedFormat {
            path: path.to_path_buf(),
            what: format!("segment header length {header_len}, flags {flags:#x}"),
        });
    }
    let mut first = [0u8; 8];
    first.copy_from_slice(&bytes[16..24]);
    let first = LogIndex(u64::from_le_bytes(first));
    if first != id.first_index() {
        return Err(Error::corrupted(
            path,
            ByteOffset(16),
            format!(
                "header says first index {first}, file name says {}",
                id.first_index()
            ),
        ));
    }
    Ok(())
}

/// Why a scan stopped before the end of the bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanStop {
    /// The frame could not be decoded.
    Frame(FrameError),
    /// A well-formed frame carries the wrong index.
    Index { expected: LogIndex, found: LogIndex },
    /// A well-formed frame's term is lower than its predecessor's.
    TermRegressed {
        index: LogIndex,
        term: Term,
        previous: Term,
    },
    /// A frame carries the largest index there is (`u64::MAX`): the log never writes it, and
    /// no entry could follow it.
    IndexSpaceEnd,
}

impl ScanStop {
    /// Whether an interrupted write explains this stop (only then may recovery cut it away).
    pub fn is_torn(&self) -> bool {
        match self {
            ScanStop::Frame(e) => e.is_torn(),
            ScanStop::Index { .. } | ScanStop::TermRegressed { .. } | ScanStop::IndexSpaceEnd => {
                false
            }
        }
    }
}

impl std::fmt::Display for ScanStop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScanStop::Frame(e) => e.fmt(f),
            ScanStop::IndexSpaceEnd => {
                write!(
                    f,
                    "frame carries index {}, past the last one the log writes",
                    u64::MAX
                )
            }
            ScanStop::Index { expected, found } => {
                write!(f, "frame carries index {found}, expected {expected}")
            }
            ScanStop::TermRegressed {
                index,
                term,
                previous,
            } => {
                write!(
                    f,
                    "term regressed at index {index}: {term} after {previous}"
                )
            }
        }
    }
}

/// What scanning a segment's frames found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scan {
    /// Offset of every good frame, in order; entry `first + i` starts at `offsets[i]`.
    pub offsets: Vec<u64>,
    /// End of the last good frame: where a torn tail gets cut.
    pub end: u64,
    /// Id of the last good frame.
    pub last: Option<EntryId>,
    /// Why the scan stopped early, if it did, and at which offset.
    pub stop: Option<(u64, ScanStop)>,
}

/// Walks the frames of a whole segment file (header included in `bytes`), checking checksums,
/// index contiguity from `first` and term monotonicity from `prev_term`. Pure: no IO.
pub fn scan(bytes: &[u8], first: LogIndex, prev_term: Option<Term>) -> Scan {
    let mut offsets = Vec::new();
    let mut at = HEADER_LEN.min(bytes.len());
    let mut expected = first;
    let mut last: Option<EntryId> = None;
    let mut prev_term = prev_term;
    let stop = loop {
        if at == bytes.len() {
            break None;
        }
        let frame = match record::decode(&bytes[at..]) {
            Ok(frame) => frame,
            Err(e) => break Some((at as u64, ScanStop::Frame(e))),
        };
        if frame.id.index != expected {
            break Some((
                at as u64,
                ScanStop::Index {
                    expected,
                    found: frame.id.index,
                },
            ));
        }
        if frame.id.index == LogIndex(u64::MAX) {
            break Some((at as u64, ScanStop::IndexSpaceEnd));
        }
        if let Some(previous) = prev_term
            && frame.id.term < previous
        {
            let stop = ScanStop::TermRegressed {
                index: frame.id.index,
                term: frame.id.term,
                previous,
            };
            break Some((at as u64, stop));
        }
        offsets.push(at as u64);
        prev_term = Some(frame.id.term);
        last = Some(frame.id);
        expected = expected.next();
        at += frame.len;
    };
    Scan {
        offsets,
        end: at as u64,
        last,
        stop,
    }
}

/// Maps a whole segment file read-only.
#[allow(unsafe_code)]
pub fn map_file(path: &Path, file: &File) -> Result<Bytes> {
    // SAFETY: the map is read-only and the file is a sealed segment: this crate never writes
    // to or shrinks a sealed segment's file in place (a truncation into a sealed segment
    // writes a new file and renames it over the old name, so existing maps keep the old inode).
    // Another process modifying the file would break this, which the directory lock excludes.
    let map = unsafe { memmap2::Mmap::map(file) }.map_err(|e| Error::io(path, e))?;
    Ok(Bytes::from_owner(map))
}

/// Maps the sealed segment at `path` read-only (see [`map_file`]): its bytes without a copy,
/// straight from the page cache. `None` when the file is gone (purged meanwhile).
pub fn map_sealed(path: &Path) -> Result<Option<Bytes>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    map_file(path, &file).map(Some)
}

/// A complete, immutable segment, mapped into memory.
#[derive(Debug)]
pub struct Sealed {
    pub id: SegmentId,
    pub path: PathBuf,
    /// The whole file.
    pub data: Bytes,
    /// Offset of every entry's frame.
    pub offsets: Vec<u64>,
    /// Id of the last entry; sealed segments are never empty.
    pub last: EntryId,
}

impl Sealed {
    pub fn first_index(&self) -> LogIndex {
        self.id.first_index()
    }

    /// One past the last index.
    pub fn next_index(&self) -> LogIndex {
        self.last.index.next()
    }

    /// The record at `index`, checksum verified, payload borrowed from the map.
    pub fn record(&self, index: LogIndex) -> Result<Record> {
        let slot = index
            .0
            .checked_sub(self.first_index().0)
            .map(|s| s as usize);
        let Some(&offset) = slot.and_then(|s| self.offsets.get(s)) else {
            return Err(Error::corrupted(
                &self.path,
                ByteOffset(0),
                format!("index {index} is not in this segment"),
            ));
        };
        decode_at(&self.path, &self.data, offset, index)
    }
}

/// Decodes the frame at `offset` of `data`, which must carry `index`.
pub fn decode_at(path: &Path, data: &Bytes, offset: u64, index: LogIndex) -> Result<Record> {
    let start = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(data.len());
    let (record, _) = record::decode_record(&data.slice(start..))
        .map_err(|e| Error::corrupted(path, ByteOffset(offset), e.to_string()))?;
    if record.id.index != index {
        return Err(Error::corrupted(
            path,
            ByteOffset(offset),
            format!("frame carries index {}, expected {index}", record.id.index),
        ));
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "test code: a panic is the failure report"
    )]

    use super::*;
    use crate::position::NodeId;
    use crate::record::RecordKind;

    /// Found with the fuzz target `log_segment` (`fuzz/`): a segment named by the last index
    /// there is, holding a valid frame at that index, overflowed the index the scan expects
    /// next (a panic in builds with overflow checks, a wrap to 0 without).
    #[test]
    fn a_frame_at_the_last_index_there_is_stops_the_scan() {
        let first = LogIndex(u64::MAX);
        let mut bytes = encode_header(SegmentId(first)).to_vec();
        let id = EntryId::new(first, Term(1), NodeId(1));
        record::encode_into(&Record::new(id, RecordKind::Blank, vec![]), &mut bytes);
        let scan = scan(&bytes, first, None);
        assert_eq!(
            scan.stop,
            Some((HEADER_LEN as u64, ScanStop::IndexSpaceEnd))
        );
        assert!(scan.offsets.is_empty() && scan.last.is_none());
        assert!(
            !ScanStop::IndexSpaceEnd.is_torn(),
            "corruption, not a torn write"
        );
    }
}
