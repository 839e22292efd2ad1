//! Reading a log directory without opening it, for tools that run beside a live node
//! (audit replay, verification) and for archived segments.
//!
//! [`Log::open`](crate::Log::open) locks the directory, recovers it and may cut a torn tail:
//! none of that is allowed while a node owns the directory. A [`DirReader`] takes no lock and
//! writes nothing. It lists the segment files and reads the purged and committed pointers;
//! each segment is then read whole into memory ([`SegmentRecords`]) and checked frame by
//! frame. That is safe beside a running node because:
//!
//! * sealed segments are immutable; a truncation or purge replaces or deletes a file by
//!   name, and a file already opened (or read) keeps its old contents;
//! * the open (last) segment may end in a frame being written: a torn frame at the very end
//!   of the last segment is not an error here, it is simply where the readable log ends;
//! * entries past the committed pointer may still be truncated by Raft, so callers that
//!   want committed history stop at [`DirReader::committed`].
//!
//! A segment whose file vanished between listing and reading (purged meanwhile) reads as
//! [`Error::Io`] with kind `NotFound`: the caller looks for it elsewhere (the archive).

use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::position::{ByteOffset, EntryId, LogIndex, SegmentId};
use crate::record::Record;
use crate::segment::{self, ScanStop};
use crate::state_file::{self, StateFile};

/// A read-only view of a log directory's files at the moment it was opened.
#[derive(Clone, Debug)]
pub struct DirReader {
    dir: PathBuf,
    segments: Vec<SegmentId>,
    purged: Option<EntryId>,
    committed: Option<EntryId>,
}

impl DirReader {
    /// Lists the segments of `dir` and reads its pointers. Takes no lock, writes nothing.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let mut segments = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let entry = entry.map_err(|e| Error::io(&dir, e))?;
            if let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(SegmentId::parse_file_name)
            {
                segments.push(id);
            }
        }
        segments.sort();
        let pointer = |file: StateFile| -> Result<Option<EntryId>> {
            match state_file::read(&dir, file)? {
                Some(body) => Ok(Some(state_file::decode_entry_id(&file.path(&dir), &body)?)),
                None => Ok(None),
            }
        };
        let purged = pointer(StateFile::PURGED)?;
        let committed = pointer(StateFile::COMMITTED)?;
        Ok(Self {
            dir,
            segments,
            purged,
            committed,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Segment files present when the reader was opened, in log order.
    pub fn segments(&self) -> &[SegmentId] {
        &self.segments
    }

    /// The purged pointer: entries up to it are covered by a snapshot (though a segment
    /// straddling it still holds some of them, intact).
    pub fn purged(&self) -> Option<EntryId> {
        self.purged
    }

    /// The committed pointer as last persisted (it may lag the live node a little).
    pub fn committed(&self) -> Option<EntryId> {
        self.committed
    }

    /// For a log whose every entry is committed, as an edge's is (it appends only what its
    /// upstream committed, and keeps no committed pointer): the committed pointer becomes
    /// the last entry readable now. A segment purged meanwhile is skipped; one that cannot
    /// be read otherwise is an error.
    pub fn with_every_entry_committed(mut self) -> Result<Self> {
        let mut last = None;
        for id in self.segments.iter().rev() {
            match self.read_segment(*id) {
                Ok(seg) if seg.last.is_some() => {
                    last = seg.last;
                    break;
                }
                Ok(_) => {}
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        self.committed = last;
        Ok(self)
    }

    /// Reads and checks one segment. Only the last segment may end in a torn frame.
    pub fn read_segment(&self, id: SegmentId) -> Result<SegmentRecords> {
        let path = self.dir.join(id.file_name());
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let is_last = self.segments.last() == Some(&id);
        SegmentRecords::check(&path, id, Bytes::from(bytes), is_last)
    }
}

/// One segment's bytes with every frame checked: header, checksums, index contiguity and
/// terms that never decrease.
#[derive(Clone, Debug)]
pub struct SegmentRecords {
    pub id: SegmentId,
    /// The file or object the bytes came from (named in errors).
    pub origin: PathBuf,
    data: Bytes,
    offsets: Vec<u64>,
    /// The last good entry, if any.
    pub last: Option<EntryId>,
    /// Offset of a torn frame at the end (only accepted for the open segment).
    pub torn_at: Option<u64>,
}

impl SegmentRecords {
    /// Checks a whole segment file held in `data`. With `tolerate_torn_tail`, a frame that an
    /// interrupted (or in-flight) write explains ends the segment instead of failing it.
    pub fn check(
        origin: &Path,
        id: SegmentId,
        data: Bytes,
        tolerate_torn_tail: bool,
    ) -> Result<Self> {
        if tolerate_torn_tail && data.len() < segment::HEADER_LEN {
            // A segment being created: nothing readable yet.
            return Ok(Self {
                id,
                origin: origin.to_path_buf(),
                data,
                offsets: Vec::new(),
                last: None,
                torn_at: Some(0),
            });
        }
        segment::check_header(origin, &data, id)?;
        let scan = segment::scan(&data, id.first_index(), None);
        let mut torn_at = None;
        if let Some((offset, stop)) = scan.stop {
            let torn = tolerate_torn_tail && matches!(&stop, ScanStop::Frame(e) if e.is_torn());
            if !torn {
                return Err(Error::corrupted(
                    origin,
                    ByteOffset(offset),
                    stop.to_string(),
                ));
            }
            torn_at = Some(offset);
        }
        Ok(Self {
            id,
            origin: origin.to_path_buf(),
            data,
            offsets: scan.offsets,
            last: scan.last,
            torn_at,
        })
    }

    pub fn first_index(&self) -> LogIndex {
        self.id.first_index()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Bytes of the segment.
    pub fn size(&self) -> usize {
        self.data.len()
    }

    /// The same entries from `from` on, as a segment file of their own starting at `from`
    /// (a new header, the frames copied as they are). `None` if `from` is not in here.
    pub fn rebased(&self, from: LogIndex) -> Option<Vec<u8>> {
        let slot = usize::try_from(from.0.checked_sub(self.first_index().0)?).ok()?;
        let start = usize::try_from(*self.offsets.get(slot)?).ok()?;
        let end = self
            .torn_at
            .and_then(|t| usize::try_from(t).ok())
            .unwrap_or(self.data.len());
        let mut out = segment::encode_header(SegmentId(from)).to_vec();
        out.extend_from_slice(&self.data[start..end]);
        Some(out)
    }

    /// The record at `index`, if this segment holds it.
    pub fn record(&self, index: LogIndex) -> Option<Result<Record>> {
        let slot = usize::try_from(index.0.checked_sub(self.first_index().0)?).ok()?;
        let offset = *self.offsets.get(slot)?;
        Some(segment::decode_at(&self.origin, &self.data, offset, index))
    }

    /// Records `from..=to` that this segment holds, in order.
    pub fn records(
        &self,
        from: LogIndex,
        to: LogIndex,
    ) -> impl Iterator<Item = Result<Record>> + '_ {
        let first = from.0.max(self.first_index().0);
        let last = self.last.map_or(0, |l| l.index.0).min(to.0);
        (first..=last)
            .filter(move |_| self.last.is_some())
            .filter_map(move |i| self.record(LogIndex(i)))
    }
}

/// The first index and last index an archive (see [`crate::archive`]) claims to hold, read
/// from its header alone (the first 44 bytes) and checked by the header's checksum, so a
/// listing can learn what an archive covers without downloading it.
pub fn archive_span(origin: &Path, header: &[u8]) -> Result<(SegmentId, LogIndex)> {
    let bad = |offset: u64, reason: &str| Error::corrupted(origin, ByteOffset(offset), reason);
    if header.len() < ARCHIVE_HEADER_LEN {
        return Err(bad(0, "archive shorter than its header"));
    }
    if header[0..8] != crate::archive::MAGIC {
        return Err(Error::UnsupportedFormat {
            path: origin.to_path_buf(),
            what: "not a segment archive (bad magic)".into(),
        });
    }
    let u64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&header[at..at + 8]);
        u64::from_le_bytes(b)
    };
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&header[40..44]);
    if u32::from_le_bytes(crc) != crc32c::crc32c(&header[..40]) {
        return Err(bad(40, "archive header checksum mismatch"));
    }
    let first = u64_at(12);
    let last = u64_at(20);
    if last < first {
        return Err(bad(20, "archive's last index is below its first"));
    }
    Ok((SegmentId(LogIndex(first)), LogIndex(last)))
}

/// Length of an archive's header (see [`crate::archive`]).
pub const ARCHIVE_HEADER_LEN: usize = 44;

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "test code: a panic is the failure report"
    )]

    use super::*;
    use crate::position::{NodeId, Term};
    use crate::record::{self, RecordKind};
    use crate::{Log, Options};

    fn rec(i: u64) -> Record {
        Record::new(
            EntryId::new(LogIndex(i), Term(1), NodeId(1)),
            RecordKind::Normal,
            format!("value {i}").into_bytes(),
        )
    }

    /// A log in `dir` with entries 1..=30 over several 300-byte segments.
    fn small_log_of_30(dir: &std::path::Path) -> Log {
        let log = Log::open(
            dir,
            Options {
                segment_bytes: 300,
                ..Default::default()
            },
        )
        .unwrap();
        for i in 1..=30 {
            log.append_blocking(vec![rec(i)]).unwrap();
        }
        log
    }

    #[test]
    fn reads_a_live_directory_and_tolerates_only_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let _live = small_log_of_30(dir.path());
        // The log stays open: the reader must work beside it.
        let reader = DirReader::open(dir.path()).unwrap();
        assert!(reader.segments().len() > 2);
        let mut seen = Vec::new();
        for id in reader.segments() {
            let seg = reader.read_segment(*id).unwrap();
            for r in seg.records(LogIndex(1), LogIndex(100)) {
                seen.push(r.unwrap().id.index.0);
            }
        }
        assert_eq!(seen, (1..=30).collect::<Vec<_>>());

        // A torn frame at the end of the last segment ends it; anywhere else it is corruption.
        let last = *reader.segments().last().unwrap();
        let path = dir.path().join(last.file_name());
        let mut bytes = std::fs::read(&path).unwrap();
        let mut frame = Vec::new();
        record::encode_into(&rec(31), &mut frame);
        bytes.extend_from_slice(&frame[..frame.len() - 3]);
        let seg = SegmentRecords::check(&path, last, Bytes::from(bytes.clone()), true).unwrap();
        assert!(seg.torn_at.is_some());
        assert!(SegmentRecords::check(&path, last, Bytes::from(bytes), false).is_err());

        let first = reader.segments()[0];
        let path = dir.path().join(first.file_name());
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.len() - 2;
        bytes[at] ^= 1;
        let err = SegmentRecords::check(&path, first, Bytes::from(bytes), false).unwrap_err();
        assert!(matches!(err, Error::Corrupted { .. }), "{err}");
    }

    #[test]
    fn a_log_read_as_all_committed_ends_at_its_last_entry() {
        let dir = tempfile::tempdir().unwrap();
        let _live = small_log_of_30(dir.path());
        let reader = DirReader::open(dir.path()).unwrap();
        assert_eq!(reader.committed(), None, "no committed pointer was saved");
        let reader = reader.with_every_entry_committed().unwrap();
        assert_eq!(reader.committed().map(|c| c.index.0), Some(30));

        let empty = tempfile::tempdir().unwrap();
        let reader = DirReader::open(empty.path())
            .unwrap()
            .with_every_entry_committed()
            .unwrap();
        assert_eq!(
            reader.committed(),
            None,
            "an empty log has nothing committed"
        );
    }

    #[test]
    fn archive_headers_name_their_span() {
        let dir = tempfile::tempdir().unwrap();
        let log = small_log_of_30(dir.path());
        let sealed = &log.sealed_segments()[0];
        let archive = crate::archive::pack_file(&sealed.path, 1).unwrap();
        let (id, last) = archive_span(&sealed.path, &archive[..ARCHIVE_HEADER_LEN]).unwrap();
        assert_eq!(id, sealed.id);
        assert_eq!(last, sealed.last.index);
        let bytes = Bytes::from(std::fs::read(&sealed.path).unwrap());
        let records = SegmentRecords::check(&sealed.path, sealed.id, bytes, false).unwrap();
        let from = LogIndex(sealed.id.first_index().0 + 1);
        let rebased = records.rebased(from).unwrap();
        let again =
            SegmentRecords::check(&sealed.path, SegmentId(from), Bytes::from(rebased), false)
                .unwrap();
        assert_eq!(again.last, records.last);
        assert_eq!(again.len(), records.len() - 1);
        let mut bad = archive[..ARCHIVE_HEADER_LEN].to_vec();
        bad[21] ^= 1;
        assert!(archive_span(&sealed.path, &bad).is_err());
    }
}
