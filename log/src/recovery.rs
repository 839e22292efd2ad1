//! Opening a log directory after a clean shutdown or a crash.
//!
//! 1. Lock the directory; delete leftover `*.tmp` files of interrupted atomic writes.
//! 2. Read the purged pointer and the truncation marker.
//! 3. Finish an interrupted truncation: delete segments at or after the marker (the cut of
//!    the segment holding the marker's index is done in step 5).
//! 4. Scan every sealed segment completely: header, every frame's checksum, index contiguity
//!    within and across segments, terms never decreasing. Any bad frame is corruption: the
//!    error names the file and offset and the log does not open.
//! 5. Scan the last segment the same way, but stop at the first torn-looking frame and cut
//!    the file there if nothing valid follows it (a crash mid-append leaves such a tail; it was
//!    never acknowledged). A bad frame followed by a valid one is damaged acknowledged data,
//!    and a frame with a good checksum and bad contents is corruption even here (`torn`).
//! 6. Finish an interrupted purge: delete segments wholly at or below the purged pointer.
//! 7. Make sure an open segment exists.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::fs::{cut_file, remove_if_exists};
use crate::log::{OpenView, Shared, Writer, create_segment};
use crate::policy;
use crate::position::{ByteOffset, EntryId, LogIndex, SegmentId, Term};
use crate::record;
use crate::segment::{self, HEADER_LEN, ScanStop, Sealed};
use crate::state_file::{self, StateFile};
use crate::torn::{self, TailVerdict};

/// Name of the lock file in a log directory.
pub const LOCK_FILE: &str = "LOCK";

pub(crate) struct Recovered {
    pub(crate) dir: PathBuf,
    pub(crate) lock: File,
    pub(crate) lock_path: PathBuf,
    pub(crate) shared: Shared,
    pub(crate) writer: Writer,
}

fn lock_dir(dir: &Path) -> Result<(File, PathBuf)> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok((file, path)),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked {
            path: dir.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
    }
}

/// Segment files in `dir`, in log order; deletes leftover temporary files on the way.
fn list_dir(dir: &Path) -> Result<Vec<SegmentId>> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(state_file::TMP_SUFFIX) {
            tracing::info!(file = %entry.path().display(), "deleting leftover temporary file");
            remove_if_exists(&entry.path())?;
        } else if let Some(id) = SegmentId::parse_file_name(name) {
            ids.push(id);
        }
    }
    ids.sort();
    Ok(ids)
}

/// The sealed segments by first index.
type SealedMap = BTreeMap<LogIndex, Arc<Sealed>>;

/// A scanned segment before it becomes sealed or open.
struct Scanned {
    id: SegmentId,
    path: PathBuf,
    data: Bytes,
    offsets: Vec<u64>,
    end: u64,
    last: Option<EntryId>,
}

impl Scanned {
    fn next(&self) -> LogIndex {
        LogIndex(self.id.first_index().0 + self.offsets.len() as u64)
    }
}

pub(crate) fn recover(dir: &Path) -> Result<Recovered> {
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let dir = dir.canonicalize().map_err(|e| Error::io(dir, e))?;
    let (lock, lock_path) = lock_dir(&dir)?;
    let mut ids = list_dir(&dir)?;
    let purged = read_purged(&dir)?;
    let truncating = read_truncating(&dir)?;

    if let Some(from) = truncating {
        delete_segments_from(&dir, &mut ids, from)?;
    }
    drop_torn_header(&dir, &mut ids)?;
    let mut scanned = scan_segments(&dir, ids)?;
    if let Some(from) = truncating {
        finish_truncation_cut(&mut scanned, from)?;
        state_file::remove(&dir, StateFile::TRUNCATING)?;
    }
    let mut create = match purged {
        Some(p) => finish_purge(&dir, &mut scanned, p)?,
        None => None,
    };
    if scanned.is_empty() && create.is_none() {
        create = Some(SegmentId(empty_log_start(purged, truncating)));
    }
    check_start(&scanned, purged)?;

    let (open_scan, open_file) = open_segment(&dir, &mut scanned, create)?;
    let (sealed, sealed_last) = seal(scanned)?;
    let (shared, writer) = assemble(&dir, sealed, sealed_last, open_scan, open_file, purged);
    Ok(Recovered {
        dir,
        lock,
        lock_path,
        shared,
        writer,
    })
}

/// The purged pointer, if a purge ever happened.
fn read_purged(dir: &Path) -> Result<Option<EntryId>> {
    match state_file::read(dir, StateFile::PURGED)? {
        Some(body) => Ok(Some(state_file::decode_entry_id(
            &StateFile::PURGED.path(dir),
            &body,
        )?)),
        None => Ok(None),
    }
}

/// The truncation marker: the index an interrupted truncation was deleting from.
fn read_truncating(dir: &Path) -> Result<Option<LogIndex>> {
    match state_file::read(dir, StateFile::TRUNCATING)? {
        Some(body) => {
            let path = StateFile::TRUNCATING.path(dir);
            Ok(Some(LogIndex(state_file::body_u64(&path, &body, 0)?)))
        }
        None => Ok(None),
    }
}

/// Step 3: an interrupted truncation deletes the segments starting at or after `from`,
/// newest first.
fn delete_segments_from(dir: &Path, ids: &mut Vec<SegmentId>, from: LogIndex) -> Result<()> {
    while let Some(id) = ids.last().copied().filter(|id| id.first_index() >= from) {
        tracing::info!(segment = %id, from = %from, "finishing interrupted truncation: deleting segment");
        remove_if_exists(&dir.join(id.file_name()))?;
        ids.pop();
    }
    Ok(())
}

/// A crash while creating a segment can leave a file holding at most a torn header: the
/// header is fsync'd before any frame is written, and the previous segment before that, so
/// nothing is lost. A bad header on a longer file is corruption (found by the scan).
fn drop_torn_header(dir: &Path, ids: &mut Vec<SegmentId>) -> Result<()> {
    if let Some(&id) = ids.last() {
        let path = dir.join(id.file_name());
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        if bytes.len() <= HEADER_LEN && segment::check_header(&path, &bytes, id).is_err() {
            tracing::warn!(file = %path.display(), len = bytes.len(), "deleting segment with a torn header");
            remove_if_exists(&path)?;
            ids.pop();
        }
    }
    Ok(())
}

/// Steps 4 and 5: scans every segment in order, checking contiguity across them; only the
/// last may lose a torn tail.
fn scan_segments(dir: &Path, ids: Vec<SegmentId>) -> Result<Vec<Scanned>> {
    let mut scanned: Vec<Scanned> = Vec::with_capacity(ids.len());
    let count = ids.len();
    for (i, id) in ids.into_iter().enumerate() {
        let is_last = i + 1 == count;
        let path = dir.join(id.file_name());
        let prev = scanned.last();
        if let Some(prev) = prev
            && prev.next() != id.first_index()
        {
            return Err(Error::corrupted(
                &path,
                ByteOffset(0),
                format!(
                    "segments are not contiguous: previous segment ends before {}, this one starts at {}",
                    prev.next(),
                    id.first_index()
                ),
            ));
        }
        let prev_term = prev.and_then(|p| p.last).map(|l| l.term);
        scanned.push(scan_segment(id, path, is_last, prev_term)?);
    }
    Ok(scanned)
}

/// Reads and scans one segment (mapped if sealed, read whole if last); a bad frame is
/// corruption unless it begins a torn tail of the last segment, which is cut off.
fn scan_segment(
    id: SegmentId,
    path: PathBuf,
    is_last: bool,
    prev_term: Option<Term>,
) -> Result<Scanned> {
    let data = if is_last {
        Bytes::from(std::fs::read(&path).map_err(|e| Error::io(&path, e))?)
    } else {
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        segment::map_file(&path, &file)?
    };
    segment::check_header(&path, &data, id)?;
    let scan = segment::scan(&data, id.first_index(), prev_term);
    let mut end = scan.end;
    if let Some((offset, stop)) = scan.stop {
        if !is_last || !stop.is_torn() {
            return Err(Error::corrupted(
                &path,
                ByteOffset(offset),
                stop.to_string(),
            ));
        }
        let expected = LogIndex(id.first_index().0 + scan.offsets.len() as u64);
        let term_floor = scan.last.map(|l| l.term).or(prev_term);
        cut_torn_tail(
            &path,
            &data,
            offset,
            &stop,
            expected,
            term_floor,
            scan.offsets.len(),
        )?;
        end = offset;
    } else if !is_last && scan.offsets.is_empty() {
        return Err(Error::corrupted(
            &path,
            ByteOffset(HEADER_LEN as u64),
            "sealed segment holds no entries",
        ));
    }
    Ok(Scanned {
        id,
        path,
        data,
        offsets: scan.offsets,
        end,
        last: scan.last,
    })
}

/// The last segment stops at a torn-looking frame at `offset`: `torn` judges whether a valid
/// frame follows (damaged acknowledged data: an error) or not (a crash mid-append: cut).
fn cut_torn_tail(
    path: &Path,
    data: &[u8],
    offset: u64,
    stop: &ScanStop,
    expected: LogIndex,
    term_floor: Option<Term>,
    kept_entries: usize,
) -> Result<()> {
    if let TailVerdict::Corrupt { next_frame, index } =
        torn::judge_tail(data, offset, expected, term_floor)
    {
        return Err(Error::corrupted(
            path,
            ByteOffset(offset),
            format!(
                "{stop}, and a valid frame (index {index}) follows at byte {next_frame}: \
                 acknowledged data is damaged, not a torn write"
            ),
        ));
    }
    let cut = data.len() as u64 - offset;
    tracing::warn!(
        file = %path.display(),
        offset,
        cut_bytes = cut,
        kept_entries,
        reason = %stop,
        "cutting torn tail of the last segment"
    );
    cut_file(path, offset)
}

/// The cut of an interrupted truncation: the segment holding `from` is the last one now.
fn finish_truncation_cut(scanned: &mut [Scanned], from: LogIndex) -> Result<()> {
    if let Some(last) = scanned.last_mut()
        && last.next() > from
    {
        let keep = (from.0 - last.id.first_index().0) as usize;
        let offset = last.offsets[keep];
        tracing::info!(segment = %last.id, from = %from, offset, "finishing interrupted truncation: cutting segment");
        cut_file(&last.path, offset)?;
        last.offsets.truncate(keep);
        last.end = offset;
        last.last = match keep.checked_sub(1) {
            Some(k) => Some(frame_id(&last.path, &last.data, last.offsets[k])?),
            None => None,
        };
    }
    Ok(())
}

/// Step 6, an interrupted purge: segments wholly at or below the purged pointer go. Returns
/// the segment to create when nothing is left above the pointer.
fn finish_purge(
    dir: &Path,
    scanned: &mut Vec<Scanned>,
    purged: EntryId,
) -> Result<Option<SegmentId>> {
    let spans: Vec<policy::Span> = scanned
        .iter()
        .map(|s| policy::Span {
            id: s.id,
            next: s.next(),
        })
        .collect();
    let plan = policy::purge_plan(&spans, purged.index);
    for id in &plan.delete {
        tracing::info!(segment = %id, purged = %purged.index, "finishing interrupted purge: deleting segment");
        remove_if_exists(&dir.join(id.file_name()))?;
    }
    scanned.drain(..plan.delete.len());
    Ok(plan.create)
}

/// An empty log continues after the purged pointer, or where a truncation left it.
fn empty_log_start(purged: Option<EntryId>, truncating: Option<LogIndex>) -> LogIndex {
    match (purged, truncating) {
        (Some(p), Some(from)) => p.index.next().max(from),
        (Some(p), None) => p.index.next(),
        (None, Some(from)) => from,
        (None, None) => LogIndex(0),
    }
}

/// After a purge the log starts at or before purged+1 (else files are missing).
fn check_start(scanned: &[Scanned], purged: Option<EntryId>) -> Result<()> {
    if let Some(first) = scanned.first() {
        let start_ok = purged.is_none_or(|p| first.id.first_index() <= p.index.next());
        if !start_ok {
            return Err(Error::corrupted(
                &first.path,
                ByteOffset(0),
                format!(
                    "log starts at {} but the purged pointer is {:?}: segment files are missing",
                    first.id.first_index(),
                    purged.map(|p| p.index)
                ),
            ));
        }
    }
    Ok(())
}

/// Step 7: the open segment is a new one (`create`) or the last scanned one, opened for
/// writing.
fn open_segment(
    dir: &Path,
    scanned: &mut Vec<Scanned>,
    create: Option<SegmentId>,
) -> Result<(Scanned, File)> {
    match create {
        Some(id) => {
            let (path, file) = create_segment(dir, id)?;
            let data = Bytes::new();
            let s = Scanned {
                id,
                path,
                data,
                offsets: Vec::new(),
                end: HEADER_LEN as u64,
                last: None,
            };
            Ok((s, file))
        }
        None => {
            let Some(s) = scanned.pop() else {
                return Err(Error::corrupted(dir, ByteOffset(0), "no segment to open"));
            };
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&s.path)
                .map_err(|e| Error::io(&s.path, e))?;
            Ok((s, file))
        }
    }
}

/// The segments before the open one become sealed; returns them by first index and the
/// last entry among them.
fn seal(scanned: Vec<Scanned>) -> Result<(SealedMap, Option<EntryId>)> {
    let mut sealed = BTreeMap::new();
    let mut physical_last = None;
    for s in scanned {
        let Some(last) = s.last else {
            return Err(Error::corrupted(
                &s.path,
                ByteOffset(HEADER_LEN as u64),
                "sealed segment holds no entries",
            ));
        };
        physical_last = Some(last);
        sealed.insert(
            s.id.first_index(),
            Arc::new(Sealed {
                id: s.id,
                path: s.path,
                data: s.data,
                offsets: s.offsets,
                last,
            }),
        );
    }
    Ok((sealed, physical_last))
}

/// The log's shared state and writer over the recovered segments.
fn assemble(
    dir: &Path,
    sealed: SealedMap,
    sealed_last: Option<EntryId>,
    open_scan: Scanned,
    open_file: File,
    purged: Option<EntryId>,
) -> (Shared, Writer) {
    let physical_last = open_scan.last.or(sealed_last);
    let next = open_scan.next();
    let logical_last = physical_last.filter(|l| purged.is_none_or(|p| l.index > p.index));
    let term_floor = physical_last.map(|l| l.term).max(purged.map(|p| p.term));
    let file = Arc::new(open_file);
    tracing::info!(
        dir = %dir.display(),
        segments = sealed.len() + 1,
        purged = ?purged.map(|p| p.index.0),
        last = ?logical_last.map(|l| l.index.0),
        "log opened"
    );
    let shared = Shared {
        sealed,
        open: OpenView {
            id: open_scan.id,
            path: open_scan.path.clone(),
            file: Arc::clone(&file),
            offsets: open_scan.offsets,
            end: open_scan.end,
        },
        purged,
        last: logical_last,
        written_next: next,
        durable_next: next,
        epoch: 0,
        waiters: VecDeque::new(),
        stopped: None,
        shutdown: false,
        syncing: false,
    };
    let writer = Writer {
        id: open_scan.id,
        path: open_scan.path,
        file,
        len: open_scan.end,
        entries: shared.open.offsets.len(),
        next,
        term_floor,
        last: physical_last,
        buf: Vec::new(),
    };
    (shared, writer)
}

/// The id of the frame at `offset` (already validated by a scan).
fn frame_id(path: &Path, data: &[u8], offset: u64) -> Result<EntryId> {
    let at = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(data.len());
    record::decode(&data[at..])
        .map(|f| f.id)
        .map_err(|e| Error::corrupted(path, ByteOffset(offset), e.to_string()))
}
