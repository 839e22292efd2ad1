//! Archives of sealed segments: zstd-compressed, self-describing, checked on the way back.
//!
//! A sealed segment is immutable, so it can be shipped to object storage once, for audit
//! replay and point-in-time restore. The archive is the segment file compressed with zstd,
//! behind a small header so a reader can check it before trusting it:
//!
//! ```text
//! offset  size  field
//!      0     8  magic b"RGTAARC\n"
//!      8     4  format version (u32 LE), 1
//!     12     8  segment id: index of its first entry (u64 LE)
//!     20     8  index of its last entry (u64 LE)
//!     28     8  length of the segment file (u64 LE)
//!     36     4  CRC32C of the segment file (u32 LE)
//!     40     4  CRC32C of bytes 0..40 (u32 LE)
//!     44     …  one zstd frame holding the segment file
//! ```
//!
//! Object keys are the segment file name plus `.zst` ([`archive_name`]): zero-padded, so a
//! listing sorts in log order. Writing to an object store is the caller's business.

use std::path::Path;

use crate::error::{Error, Result};
use crate::position::{ByteOffset, LogIndex, SegmentId};
use crate::segment;

pub const MAGIC: [u8; 8] = *b"RGTAARC\n";
pub const VERSION: u32 = 1;
const HEADER_LEN: usize = 44;

/// The name of a segment's archive: `00000000000000000001.seg.zst`.
pub fn archive_name(id: SegmentId) -> String {
    format!("{}.zst", id.file_name())
}

/// A decoded archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unpacked {
    pub id: SegmentId,
    pub last: LogIndex,
    /// The segment file, byte for byte.
    pub segment: Vec<u8>,
}

/// Compresses a whole segment file held in memory. Checks it is a complete segment first
/// (header, every frame, contiguous indices): an archive is never made of a torn file.
pub fn pack(path: &Path, id: SegmentId, segment_bytes: &[u8], level: i32) -> Result<Vec<u8>> {
    segment::check_header(path, segment_bytes, id)?;
    let scan = segment::scan(segment_bytes, id.first_index(), None);
    if let Some((offset, stop)) = scan.stop {
        return Err(Error::corrupted(path, ByteOffset(offset), stop.to_string()));
    }
    let Some(last) = scan.last else {
        return Err(Error::corrupted(
            path,
            ByteOffset(0),
            "an empty segment is not archived",
        ));
    };
    let mut out = Vec::with_capacity(HEADER_LEN + segment_bytes.len() / 2);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&id.first_index().0.to_le_bytes());
    out.extend_from_slice(&last.index.0.to_le_bytes());
    out.extend_from_slice(&(segment_bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(segment_bytes).to_le_bytes());
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    let compressed = zstd::bulk::compress(segment_bytes, level).map_err(|e| Error::io(path, e))?;
    out.extend_from_slice(&compressed);
    Ok(out)
}

/// Reads and compresses the segment file at `path` (named by its id).
pub fn pack_file(path: &Path, level: i32) -> Result<Vec<u8>> {
    let id = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(SegmentId::parse_file_name)
        .ok_or_else(|| Error::InvalidOptions {
            name: "path",
            reason: format!("{} is not a segment file name", path.display()),
        })?;
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    pack(path, id, &bytes, level)
}

/// Decompresses and checks an archive: header checksum, version, length and checksum of the
/// segment, and the segment itself (header, frames, contiguity, last index). `origin` names
/// the archive in errors (an object key or a path).
pub fn unpack(origin: &Path, archive: &[u8]) -> Result<Unpacked> {
    let bad =
        |offset: usize, reason: &str| Error::corrupted(origin, ByteOffset(offset as u64), reason);
    if archive.len() < HEADER_LEN {
        return Err(bad(0, "archive shorter than its header"));
    }
    if archive[0..8] != MAGIC {
        return Err(Error::UnsupportedFormat {
            path: origin.to_path_buf(),
            what: "not a segment archive (bad magic)".into(),
        });
    }
    let u32_at = |at: usize| {
        u32::from_le_bytes([
            archive[at],
            archive[at + 1],
            archive[at + 2],
            archive[at + 3],
        ])
    };
    let u64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&archive[at..at + 8]);
        u64::from_le_bytes(b)
    };
    if u32_at(40) != crc32c::crc32c(&archive[..40]) {
        return Err(bad(40, "archive header checksum mismatch"));
    }
    let version = u32_at(8);
    if version != VERSION {
        return Err(Error::UnsupportedFormat {
            path: origin.to_path_buf(),
            what: format!("segment archive version {version}, this build reads {VERSION}"),
        });
    }
    let id = SegmentId(LogIndex(u64_at(12)));
    let last = LogIndex(u64_at(20));
    let len = u64_at(28);
    let crc = u32_at(36);
    let len_usize =
        usize::try_from(len).map_err(|_| bad(28, "segment length does not fit in memory"))?;
    let segment = decompress(&archive[HEADER_LEN..], len_usize)
        .map_err(|e| bad(HEADER_LEN, &format!("zstd: {e}")))?;
    if segment.len() as u64 != len || crc32c::crc32c(&segment) != crc {
        return Err(bad(
            HEADER_LEN,
            "decompressed segment does not match its length or checksum",
        ));
    }
    segment::check_header(origin, &segment, id)?;
    let scan = segment::scan(&segment, id.first_index(), None);
    if let Some((offset, stop)) = scan.stop {
        return Err(Error::corrupted(
            origin,
            ByteOffset(offset),
            stop.to_string(),
        ));
    }
    if scan.last.map(|l| l.index) != Some(last) {
        return Err(bad(20, "archive's last index does not match its segment"));
    }
    Ok(Unpacked { id, last, segment })
}

/// Most memory reserved up front for a decompressed segment; beyond it the buffer grows
/// with the bytes the frame really holds.
const INITIAL_CAPACITY: usize = 64 << 20;

/// Decompresses `frame`, which must be exactly one zstd frame, into at most `len + 1` bytes
/// (one more than the header claims, so that a longer segment is seen). Memory follows what
/// the frame holds, never the header's `len` alone: a header claiming a huge segment over a
/// small frame is a mismatch, not an allocation of that size.
fn decompress(frame: &[u8], len: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let size = zstd::zstd_safe::find_frame_compressed_size(frame)
        .map_err(|code| std::io::Error::other(zstd::zstd_safe::get_error_name(code)))?;
    if size != frame.len() {
        return Err(std::io::Error::other(format!(
            "{} bytes after the zstd frame",
            frame.len() - size
        )));
    }
    let declared = zstd::zstd_safe::get_frame_content_size(frame)
        .ok()
        .flatten()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(len);
    let mut out = Vec::with_capacity(len.min(declared).min(INITIAL_CAPACITY));
    zstd::stream::read::Decoder::with_buffer(frame)?
        .single_frame()
        .take((len as u64).saturating_add(1))
        .read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "test code: a panic is the failure report"
    )]

    use super::*;
    use crate::position::{EntryId, NodeId, Term};
    use crate::record::{self, Record, RecordKind};

    fn segment(first: u64, n: u64) -> Vec<u8> {
        let id = SegmentId(LogIndex(first));
        let mut bytes = segment::encode_header(id).to_vec();
        for i in first..first + n {
            let r = Record::new(
                EntryId::new(LogIndex(i), Term(1), NodeId(1)),
                RecordKind::Normal,
                format!("value {i}").into_bytes(),
            );
            record::encode_into(&r, &mut bytes);
        }
        bytes
    }

    #[test]
    fn round_trip_and_damage() {
        let p = Path::new("00000000000000000007.seg");
        let seg = segment(7, 20);
        let archive = pack(p, SegmentId(LogIndex(7)), &seg, 3).unwrap();
        let back = unpack(p, &archive).unwrap();
        assert_eq!(
            back,
            Unpacked {
                id: SegmentId(LogIndex(7)),
                last: LogIndex(26),
                segment: seg.clone()
            }
        );
        assert_eq!(archive_name(back.id), "00000000000000000007.seg.zst");
        for at in [0, 9, 13, 21, 29, 37, 41, HEADER_LEN + 2, archive.len() - 1] {
            let mut bad = archive.clone();
            bad[at] ^= 0x10;
            assert!(unpack(p, &bad).is_err(), "flip at {at}");
        }
        assert!(unpack(p, &archive[..archive.len() - 3]).is_err());
        // A torn segment is never archived.
        assert!(pack(p, SegmentId(LogIndex(7)), &seg[..seg.len() - 1], 3).is_err());
    }

    /// Found with the fuzz target `log_archive` (`fuzz/`): the segment length in the header
    /// was handed to zstd as the capacity to reserve, so an archive claiming a segment of
    /// 2^50 bytes over a small frame aborted the process on a failed allocation, and one
    /// claiming `u64::MAX` bytes panicked (capacity overflow; then, in a first fix, an
    /// overflow adding one to it).
    #[test]
    fn a_header_claiming_a_huge_segment_is_an_error_not_an_allocation() {
        let p = Path::new("00000000000000000007.seg");
        let seg = segment(7, 3);
        for len in [1u64 << 50, u64::MAX, u64::MAX >> 1, seg.len() as u64 + 1, 0] {
            let mut archive = pack(p, SegmentId(LogIndex(7)), &seg, 3).unwrap();
            archive[28..36].copy_from_slice(&len.to_le_bytes());
            let crc = crc32c::crc32c(&archive[..40]);
            archive[40..44].copy_from_slice(&crc.to_le_bytes());
            let err = unpack(p, &archive).unwrap_err();
            assert!(err.to_string().contains("length"), "{len}: {err}");
        }
    }

    #[test]
    fn bytes_after_the_zstd_frame_are_refused() {
        let p = Path::new("00000000000000000007.seg");
        let mut archive = pack(p, SegmentId(LogIndex(7)), &segment(7, 3), 3).unwrap();
        archive.push(0);
        let err = unpack(p, &archive).unwrap_err();
        assert!(err.to_string().contains("after the zstd frame"), "{err}");
    }
}
