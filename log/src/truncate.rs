//! Removing entries: `truncate` (Raft conflict: delete from an index on) and `purge`
//! (compaction: forget everything up to an index). Both are crash-safe: a crash at any point
//! leaves a log that opens in the state before the call or the state after it.
//!
//! * truncate: wait until everything written is durable; write the marker
//!   `truncating.state` (atomically); delete later segments newest first; cut the segment
//!   holding the index (in place for the open segment; by writing a shortened copy and
//!   renaming it over the old name for a sealed one, so live memory maps stay valid); fsync;
//!   delete the marker. Recovery finds a marker and completes the same steps.
//! * purge: write `purged.state` (atomically) first — from then on the purge has happened
//!   and reads below it fail; then delete whole segments at or below it, oldest first.
//!   Recovery deletes any such segments it still finds.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::fs::{cut_file, remove_if_exists};
use crate::log::{Log, OpenView, Writer, create_segment, lock};
use crate::policy::{self, TruncateThen};
use crate::position::{ByteOffset, EntryId, LogIndex, SegmentId};
use crate::segment::{self, HEADER_LEN};
use crate::state_file::{self, StateFile, TMP_SUFFIX};

/// The segment that is open after a truncation, before it is installed.
struct NewOpen {
    id: SegmentId,
    path: PathBuf,
    file: Arc<File>,
    len: u64,
    offsets: Vec<u64>,
    last: Option<EntryId>,
}

impl Log {
    /// Deletes every entry at index `from` and after. Entries at or below the purged pointer
    /// cannot be truncated; truncating past the end does nothing. Waits for pending appends to
    /// become durable first.
    pub fn truncate(&self, from: LogIndex) -> Result<()> {
        let mut w = lock(&self.inner.writer);
        self.inner.core.check_running()?;
        if let Some(p) = self.purged()
            && from <= p.index
        {
            return Err(Error::TruncateBelowPurged {
                from,
                purged: p.index,
            });
        }
        if from >= w.next {
            return Ok(());
        }
        self.sync_locked(&w)?;
        let dir = self.inner.core.dir.clone();
        state_file::write(&dir, StateFile::TRUNCATING, &state_file::encode_index(from))?;
        let done = self
            .truncate_locked(&mut w, from)
            .and_then(|()| state_file::remove(&dir, StateFile::TRUNCATING));
        if let Err(e) = &done {
            // The files are somewhere between before and after; recovery knows how to finish.
            self.inner.core.stop(e);
        }
        tracing::info!(from = %from, "truncated log");
        done
    }

    fn truncate_locked(&self, w: &mut Writer, from: LogIndex) -> Result<()> {
        let dir = self.inner.core.dir.clone();
        let (spans, purged) = {
            let s = lock(&self.inner.core.shared);
            (s.spans(), s.purged)
        };
        let plan = policy::truncate_plan(&spans, from);
        for id in &plan.delete {
            remove_if_exists(&dir.join(id.file_name()))?;
        }
        let open = match plan.then {
            TruncateThen::Create { id } => {
                let (path, file) = create_segment(&dir, id)?;
                NewOpen {
                    id,
                    path,
                    file: Arc::new(file),
                    len: HEADER_LEN as u64,
                    offsets: Vec::new(),
                    last: None,
                }
            }
            TruncateThen::Cut { id, keep } if id == w.id => self.cut_open(w, id, keep as usize)?,
            TruncateThen::Cut { id, keep } => self.cut_sealed(&dir, id, keep as usize, from)?,
            TruncateThen::Reopen { id } => {
                let seg = self.sealed(id)?;
                let file = open_rw(&seg.path)?;
                NewOpen {
                    id,
                    path: seg.path.clone(),
                    file: Arc::new(file),
                    len: seg.data.len() as u64,
                    offsets: seg.offsets.clone(),
                    last: Some(seg.last),
                }
            }
        };
        state_file::sync_dir(&dir)?;
        self.install_truncated(w, &plan.delete, open, from, purged);
        Ok(())
    }

    /// Cuts the open segment in place after its first `keep` entries.
    fn cut_open(&self, w: &Writer, id: SegmentId, keep: usize) -> Result<NewOpen> {
        let (offsets, cut_at) = {
            let s = lock(&self.inner.core.shared);
            (s.open.offsets[..keep].to_vec(), s.open.offsets[keep])
        };
        cut_file(&w.path, cut_at)?;
        let last = match offsets.last() {
            Some(&at) => Some(self.read_frame_id(w, at)?),
            None => None,
        };
        Ok(NewOpen {
            id,
            path: w.path.clone(),
            file: Arc::clone(&w.file),
            len: cut_at,
            offsets,
            last,
        })
    }

    /// Replaces a sealed segment by a copy of its first `keep` entries (renamed over it, so
    /// live maps of the old file stay valid) and opens that copy for appending.
    fn cut_sealed(
        &self,
        dir: &Path,
        id: SegmentId,
        keep: usize,
        from: LogIndex,
    ) -> Result<NewOpen> {
        let seg = self.sealed(id)?;
        let cut_at = seg.offsets[keep];
        let tmp = dir.join(format!("{}{TMP_SUFFIX}", id.file_name()));
        {
            let f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&tmp)
                .map_err(|e| Error::io(&tmp, e))?;
            f.write_all_at(&seg.data[..cut_at as usize], 0)
                .map_err(|e| Error::io(&tmp, e))?;
            f.sync_all().map_err(|source| Error::SyncFailed {
                path: tmp.clone(),
                source,
            })?;
        }
        fs::rename(&tmp, &seg.path).map_err(|e| Error::io(&seg.path, e))?;
        let file = open_rw(&seg.path)?;
        let last = seg.record(from.0.checked_sub(1).map_or(from, LogIndex))?.id;
        Ok(NewOpen {
            id,
            path: seg.path.clone(),
            file: Arc::new(file),
            len: cut_at,
            offsets: seg.offsets[..keep].to_vec(),
            last: Some(last),
        })
    }

    /// Makes `open` the open segment in the shared view and the writer, with the log ending
    /// before `from`.
    fn install_truncated(
        &self,
        w: &mut Writer,
        deleted: &[SegmentId],
        open: NewOpen,
        from: LogIndex,
        purged: Option<EntryId>,
    ) {
        let NewOpen {
            id,
            path,
            file,
            len,
            offsets,
            last,
        } = open;
        // Before the cut point, the previous segment's last entry is the log's last one.
        let physical_last = match last {
            Some(l) => Some(l),
            None => {
                let s = lock(&self.inner.core.shared);
                s.sealed
                    .range(..id.first_index())
                    .next_back()
                    .map(|(_, seg)| seg.last)
            }
        };
        let mut s = lock(&self.inner.core.shared);
        for d in deleted {
            s.sealed.remove(&d.first_index());
        }
        s.sealed.remove(&id.first_index());
        s.open = OpenView {
            id,
            path: path.clone(),
            file: Arc::clone(&file),
            offsets,
            end: len,
        };
        s.last = physical_last.filter(|l| purged.is_none_or(|p| l.index > p.index));
        s.written_next = from;
        s.durable_next = from;
        s.epoch += 1;
        s.check();
        w.entries = s.open.offsets.len();
        drop(s);
        w.id = id;
        w.path = path;
        w.file = file;
        w.len = len;
        w.next = from;
        w.last = physical_last;
        w.term_floor = physical_last.map(|l| l.term).max(purged.map(|p| p.term));
    }

    fn sealed(&self, id: SegmentId) -> Result<Arc<segment::Sealed>> {
        let s = lock(&self.inner.core.shared);
        s.sealed.get(&id.first_index()).cloned().ok_or_else(|| {
            Error::corrupted(
                self.inner.core.dir.join(id.file_name()),
                ByteOffset(0),
                "segment missing from the log's list",
            )
        })
    }

    /// The id of the frame at `offset` of the open segment.
    fn read_frame_id(&self, w: &Writer, offset: u64) -> Result<EntryId> {
        let mut head = [0u8; crate::record::FRAME_PREFIX + crate::record::BODY_FIXED];
        w.file
            .read_exact_at(&mut head, offset)
            .map_err(|e| Error::io(&w.path, e))?;
        let field = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&head[at..at + 8]);
            u64::from_le_bytes(b)
        };
        Ok(EntryId::new(
            LogIndex(field(8)),
            crate::position::Term(field(16)),
            crate::position::NodeId(field(24)),
        ))
    }

    /// Forgets every entry up to and including `up_to` (which may lie beyond the last entry:
    /// the log then continues at `up_to + 1`, as after installing a snapshot). Durable before
    /// it returns; reads at or below `up_to` fail with [`Error::Purged`] from then on. Whole
    /// segments at or below it are deleted; a segment straddling it stays until later.
    pub fn purge(&self, up_to: EntryId) -> Result<()> {
        let mut w = lock(&self.inner.writer);
        self.inner.core.check_running()?;
        if let Some(p) = self.purged()
            && up_to.index <= p.index
        {
            return Ok(());
        }
        self.sync_locked(&w)?;
        let dir = self.inner.core.dir.clone();
        state_file::write(&dir, StateFile::PURGED, &state_file::encode_entry_id(up_to))?;
        let done = self.purge_locked(&mut w, up_to);
        if let Err(e) = &done {
            self.inner.core.stop(e);
        }
        tracing::info!(up_to = %up_to.index, "purged log");
        done
    }

    fn purge_locked(&self, w: &mut Writer, up_to: EntryId) -> Result<()> {
        let dir = self.inner.core.dir.clone();
        let plan = {
            let mut s = lock(&self.inner.core.shared);
            s.purged = Some(up_to);
            if s.last.is_some_and(|l| l.index <= up_to.index) {
                s.last = None;
            }
            if up_to.index.next() > s.written_next {
                // Purging past the end: the log continues after `up_to`.
                s.written_next = up_to.index.next();
                s.durable_next = up_to.index.next();
                s.epoch += 1;
            }
            policy::purge_plan(&s.spans(), up_to.index)
        };
        // Delete before creating: a crash in between leaves no segment at all, which recovery
        // turns into an empty one at `up_to + 1`; the other order could leave a gap.
        for id in &plan.delete {
            remove_if_exists(&dir.join(id.file_name()))?;
        }
        let mut new_open = None;
        if let Some(id) = plan.create {
            let (path, file) = create_segment(&dir, id)?;
            new_open = Some((id, path, Arc::new(file)));
        }
        {
            let mut s = lock(&self.inner.core.shared);
            for id in &plan.delete {
                s.sealed.remove(&id.first_index());
            }
            if let Some((id, path, file)) = &new_open {
                s.open = OpenView::empty(*id, path.clone(), Arc::clone(file));
            }
            s.check();
        }
        if let Some((id, path, file)) = new_open {
            w.id = id;
            w.path = path;
            w.file = file;
            w.len = HEADER_LEN as u64;
            w.entries = 0;
            w.next = id.first_index();
            w.last = None;
        }
        w.term_floor = w.term_floor.max(Some(up_to.term));
        state_file::sync_dir(&dir)
    }
}

fn open_rw(path: &Path) -> Result<std::fs::File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))
}
