//! The write path: appending records (group-committed), rolling segments.
//!
//! An append takes the writer lock, checks the records continue the log, encodes them into
//! one buffer and writes it with one `pwrite` at the end of the open segment — rolling to a
//! new segment first whenever the next frame would push the open one past the size limit —
//! then publishes the new `written` pointer and offsets so readers see the entries at once.
//! Durability is `sync.rs`'s business.

use std::os::unix::fs::FileExt;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::log::{Log, OpenView, Waiter, Writer, create_segment, lock};
use crate::policy;
use crate::position::{ByteOffset, EntryId, LogIndex, SegmentId, Term};
use crate::record::{self, Record};
use crate::segment::{self, HEADER_LEN, Sealed};

/// Checks an append against the log's end: contiguous indices, terms never going down,
/// sizes within the limit. Pure.
pub(crate) fn validate_append(
    next: LogIndex,
    term_floor: Option<Term>,
    records: &[Record],
    max_record_bytes: u64,
) -> Result<()> {
    let mut expected = next;
    let mut floor = term_floor;
    for r in records {
        if r.id.index != expected {
            return Err(Error::OutOfOrder {
                expected,
                got: r.id.index,
            });
        }
        if let Some(previous) = floor
            && r.id.term < previous
        {
            return Err(Error::TermRegressed {
                index: r.id.index,
                term: r.id.term,
                previous,
            });
        }
        if r.payload.len() as u64 > max_record_bytes {
            return Err(Error::TooLarge {
                size: r.payload.len() as u64,
                limit: max_record_bytes,
            });
        }
        floor = Some(r.id.term);
        expected = expected.next();
    }
    Ok(())
}

impl Log {
    /// Writes `records` (which must continue the log: first index = [`Log::next_index`],
    /// terms not decreasing) and returns once they are readable. When the disk is full
    /// ([`Error::is_disk_full`]) the log stays open and a prefix of the records (those before
    /// a segment roll that found no room) may have been written: [`Log::next_index`] says
    /// where a retry continues. `on_durable` is called
    /// exactly once after they are fsync'd — or with the error that stopped the log — from
    /// whichever thread completed that fsync (usually the log's syncer thread; inline if they
    /// already are durable), so it must be quick and must not block. Appends become durable
    /// in the order they were made; a log that never held an entry (and purged nothing)
    /// starts at the index of its first append.
    pub fn append_with(
        &self,
        records: Vec<Record>,
        on_durable: impl FnOnce(Result<()>) + Send + 'static,
    ) -> Result<()> {
        self.append_inner(|_| records, Some(Box::new(on_durable)))
            .map(|_| ())
    }

    /// Like [`Log::append_with`], for producers that do not number entries themselves:
    /// `build` is called under the writer lock with the index the records must start at.
    /// Concurrent callers get consecutive, gap-free ranges.
    pub fn append_next_with(
        &self,
        build: impl FnOnce(LogIndex) -> Vec<Record>,
        on_durable: impl FnOnce(Result<()>) + Send + 'static,
    ) -> Result<()> {
        self.append_inner(build, Some(Box::new(on_durable)))
            .map(|_| ())
    }

    /// [`Log::append_next_with`], waiting until the records are durable.
    pub async fn append_next(&self, build: impl FnOnce(LogIndex) -> Vec<Record>) -> Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.append_next_with(build, move |r| {
            let _ = tx.send(r);
        })?;
        rx.await.map_err(|_| Error::Stopped {
            reason: "log closed during append".into(),
        })?
    }

    /// Writes the records `build` returns; parks `on_durable` (if any) for the syncer. Returns
    /// the durability target and its epoch for callers that wait themselves.
    fn append_inner(
        &self,
        build: impl FnOnce(LogIndex) -> Vec<Record>,
        on_durable: Option<Waiter>,
    ) -> Result<(LogIndex, u64)> {
        let mut w = lock(&self.inner.writer);
        self.inner.core.check_running()?;
        let records = build(w.next);
        if let Some(first) = records.first()
            && first.id.index != w.next
            && w.last.is_none()
            && self.purged().is_none()
        {
            // A log that never held an entry starts wherever its first append does.
            self.rebase(&mut w, first.id.index)?;
        }
        validate_append(
            w.next,
            w.term_floor,
            &records,
            self.inner.opts.max_record_bytes,
        )?;
        if let Err(e) = self.write_locked(&mut w, &records) {
            // A full disk is no reason to distrust the log: the failed write left nothing
            // visible (see `publish` and `roll`), so the log stays open for a retry.
            if !e.is_disk_full() {
                self.inner.core.stop(&e);
            }
            return Err(e);
        }
        let mut s = lock(&self.inner.core.shared);
        let ticket = (w.next, s.epoch);
        let Some(on_durable) = on_durable else {
            return Ok(ticket);
        };
        let ready = if let Some(reason) = &s.stopped {
            Err(Error::Stopped {
                reason: reason.clone(),
            })
        } else if s.durable_next >= w.next {
            Ok(())
        } else {
            // Parked while still holding the writer lock, so waiters queue in append order.
            s.waiters.push_back((w.next, on_durable));
            // A running round wakes the syncer when it ends; waking it now would be wasted.
            if !s.syncing {
                self.inner.core.work.notify_one();
            }
            return Ok(ticket);
        };
        drop(s);
        drop(w);
        on_durable(ready);
        Ok(ticket)
    }

    /// Appends `records` and waits until they are durable.
    pub async fn append(&self, records: Vec<Record>) -> Result<()> {
        self.append_next(|_| records).await
    }

    /// Appends `records` and blocks the thread until they are durable. Not for async contexts.
    /// If no fsync is running, this thread runs one itself (saving two thread hand-offs);
    /// otherwise it waits for the running one and, if needed, the next.
    pub fn append_blocking(&self, records: Vec<Record>) -> Result<()> {
        let (target, epoch) = self.append_inner(|_| records, None)?;
        self.inner.core.wait_durable(target, epoch)
    }

    /// [`Log::append_next_with`], blocking the thread until the records are durable, like
    /// [`Log::append_blocking`].
    pub fn append_next_blocking(&self, build: impl FnOnce(LogIndex) -> Vec<Record>) -> Result<()> {
        let (target, epoch) = self.append_inner(build, None)?;
        self.inner.core.wait_durable(target, epoch)
    }

    /// Blocks until everything written so far is durable; for callers holding the writer lock.
    pub(crate) fn sync_locked(&self, w: &Writer) -> Result<()> {
        let epoch = lock(&self.inner.core.shared).epoch;
        self.inner.core.wait_durable(w.next, epoch)
    }

    /// Blocks until everything written so far is durable.
    pub fn sync(&self) -> Result<()> {
        let (target, epoch) = {
            let s = lock(&self.inner.core.shared);
            (s.written_next, s.epoch)
        };
        self.inner.core.wait_durable(target, epoch)
    }

    /// Encodes and writes records to the open segment, rolling when it is full.
    fn write_locked(&self, w: &mut Writer, records: &[Record]) -> Result<()> {
        let limit = self.inner.opts.segment_bytes;
        let mut buf = std::mem::take(&mut w.buf);
        let result = (|| {
            buf.clear();
            let mut offsets = Vec::new();
            let mut batch_last = None;
            for r in records {
                let pending_len = w.len + buf.len() as u64;
                let entries = w.entries + offsets.len();
                if policy::should_roll(pending_len, entries, r.frame_len() as u64, limit) {
                    self.publish(w, &buf, &offsets, batch_last)?;
                    self.roll(w)?;
                    buf.clear();
                    offsets.clear();
                }
                offsets.push(w.len + buf.len() as u64);
                record::encode_into(r, &mut buf);
                batch_last = Some(r.id);
            }
            self.publish(w, &buf, &offsets, batch_last)
        })();
        buf.clear();
        if buf.capacity() > 4 << 20 {
            buf.shrink_to(4 << 20);
        }
        w.buf = buf;
        result
    }

    /// Writes an encoded batch at the end of the open segment and makes it readable.
    fn publish(
        &self,
        w: &mut Writer,
        buf: &[u8],
        offsets: &[u64],
        last: Option<EntryId>,
    ) -> Result<()> {
        let Some(last) = last.filter(|_| !offsets.is_empty()) else {
            return Ok(());
        };
        if let Err(e) = w.file.write_all_at(buf, w.len) {
            if crate::error::is_disk_full(&e) {
                // Drop the part that did fit (shrinking needs no space), so the file ends
                // where the log does; should this fail, recovery cuts it as a torn tail.
                let _ = w.file.set_len(w.len);
            }
            return Err(Error::io(&w.path, e));
        }
        w.len += buf.len() as u64;
        w.entries += offsets.len();
        w.next = last.index.next();
        w.term_floor = Some(last.term);
        w.last = Some(last);
        let mut s = lock(&self.inner.core.shared);
        s.open.offsets.extend_from_slice(offsets);
        s.open.end = w.len;
        s.last = Some(last);
        s.written_next = w.next;
        s.check();
        Ok(())
    }

    /// Replaces the empty open segment of a log that never held an entry by one starting at
    /// `start`. The old file goes first: a crash in between leaves no segment, which opens as
    /// an empty log again.
    fn rebase(&self, w: &mut Writer, start: LogIndex) -> Result<()> {
        std::fs::remove_file(&w.path).map_err(|e| Error::io(&w.path, e))?;
        let id = SegmentId(start);
        let (path, file) = create_segment(&self.inner.core.dir, id)?;
        let file = Arc::new(file);
        let mut s = lock(&self.inner.core.shared);
        s.open = OpenView::empty(id, path.clone(), Arc::clone(&file));
        s.written_next = start;
        s.durable_next = start;
        s.epoch += 1;
        w.id = id;
        w.path = path;
        w.file = file;
        w.len = HEADER_LEN as u64;
        w.entries = 0;
        w.next = start;
        Ok(())
    }

    /// Seals the open segment (fsync'd first, so a sealed segment on disk is always whole)
    /// and starts a new one at `w.next`.
    fn roll(&self, w: &mut Writer) -> Result<()> {
        let Some(last) = w.last.filter(|_| w.entries > 0) else {
            return Err(Error::corrupted(
                &w.path,
                ByteOffset(w.len),
                "asked to seal an empty segment",
            ));
        };
        w.file.sync_data().map_err(|source| Error::SyncFailed {
            path: w.path.clone(),
            source,
        })?;
        let data = segment::map_file(&w.path, &w.file)?;
        let id = SegmentId(w.next);
        let (path, file) = create_segment(&self.inner.core.dir, id)?;
        let file = Arc::new(file);
        {
            let mut s = lock(&self.inner.core.shared);
            let offsets = std::mem::take(&mut s.open.offsets);
            let sealed = Sealed {
                id: w.id,
                path: w.path.clone(),
                data,
                offsets,
                last,
            };
            s.sealed.insert(w.id.first_index(), Arc::new(sealed));
            s.open = OpenView::empty(id, path.clone(), Arc::clone(&file));
        }
        tracing::debug!(sealed = %w.id, opened = %id, "rolled segment");
        w.id = id;
        w.path = path;
        w.file = file;
        w.len = HEADER_LEN as u64;
        w.entries = 0;
        Ok(())
    }
}
