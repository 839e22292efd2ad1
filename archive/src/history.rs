//! The committed log as one sequence, read from a node's local segments and the segment
//! archive together: the archive for what is purged locally, the local log for the rest.
//! One segment is in memory at a time, so memory stays flat however long the range.

use regatta_log::{LogIndex, Record, reader::DirReader};

use crate::error::{Error, Result};
use crate::segments::{ArchivedSegment, SegmentArchive};

/// Where history is read from.
pub struct History {
    local: Option<DirReader>,
    archive: Option<(SegmentArchive, Vec<ArchivedSegment>)>,
}

impl History {
    /// `local` (a node's log directory, opened read-only) and `archive` are each optional;
    /// at least one must be given.
    pub async fn open(local: Option<DirReader>, archive: Option<SegmentArchive>) -> Result<Self> {
        let archive = match archive {
            Some(a) => {
                let listed = a.list().await?;
                Some((a, listed))
            }
            None => None,
        };
        Ok(Self { local, archive })
    }

    /// Archive only (restore).
    pub fn archived(archive: SegmentArchive, listed: Vec<ArchivedSegment>) -> Self {
        Self {
            local: None,
            archive: Some((archive, listed)),
        }
    }

    /// The first and last committed index available, if any.
    pub fn bounds(&self) -> Option<(u64, u64)> {
        let mut first = None::<u64>;
        let mut last = None::<u64>;
        if let Some((_, listed)) = &self.archive
            && let (Some(f), Some(l)) = (listed.first(), listed.iter().map(|s| s.last.0).max())
        {
            first = Some(f.id.first_index().0);
            last = Some(l);
        }
        if let Some(local) = &self.local
            && let Some(f) = local.segments().first()
        {
            first = Some(first.map_or(f.first_index().0, |x| x.min(f.first_index().0)));
            if let Some(c) = local.committed() {
                last = Some(last.map_or(c.index.0, |x| x.max(c.index.0)));
            }
        }
        Some((first?, last?))
    }

    /// The local segment that would hold `index` (by file names), if any.
    fn local_segment_for(&self, index: u64) -> Option<regatta_log::SegmentId> {
        let local = self.local.as_ref()?;
        let committed = local.committed()?.index.0;
        if index > committed {
            return None;
        }
        let segments = local.segments();
        let pos = segments.partition_point(|s| s.first_index().0 <= index);
        (pos > 0).then(|| segments[pos - 1])
    }

    /// Calls `each` for every committed record `from..=to`, in order, each index once.
    /// Stops early (without error) where history ends; returns the last index delivered.
    /// An error from `each` stops the walk and is returned as it is.
    pub async fn walk<E: From<Error>>(
        &self,
        from: u64,
        to: u64,
        mut each: impl FnMut(&Record) -> Result<(), E>,
    ) -> Result<Option<u64>, E> {
        let mut next = from;
        let mut delivered = None;
        let mut local_failed_below = 0u64;
        while next <= to {
            if next >= local_failed_below
                && let Some(id) = self.local_segment_for(next)
                && let Some(local) = &self.local
            {
                let committed = local.committed().map_or(0, |c| c.index.0);
                match local.read_segment(id) {
                    Ok(seg) => {
                        let before = next;
                        for record in seg.records(LogIndex(next), LogIndex(to.min(committed))) {
                            let record = record.map_err(Error::from)?;
                            each(&record)?;
                            next = record.id.index.0 + 1;
                            delivered = Some(record.id.index.0);
                        }
                        if next == before {
                            // The local log has nothing at `next` (a segment emptied by a
                            // purge, or the end of the log): try the archive.
                            local_failed_below = next + 1;
                        }
                        continue;
                    }
                    Err(regatta_log::Error::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::NotFound =>
                    {
                        // Purged since the listing: the archive has it.
                        local_failed_below = next + 1;
                        continue;
                    }
                    Err(e) => return Err(Error::from(e).into()),
                }
            }
            let Some((archive, listed)) = &self.archive else {
                break;
            };
            let pos = listed.partition_point(|s| s.id.first_index().0 <= next);
            let Some(segment) = pos.checked_sub(1).map(|p| &listed[p]) else {
                break;
            };
            if segment.last.0 < next {
                break;
            }
            let seg = archive.records(segment).await?;
            for record in seg.records(LogIndex(next), LogIndex(to)) {
                let record = record.map_err(Error::from)?;
                each(&record)?;
                next = record.id.index.0 + 1;
                delivered = Some(record.id.index.0);
            }
            if next <= segment.last.0.min(to) {
                return Err(Error::Corrupted {
                    location: segment.location.to_string(),
                    reason: format!(
                        "ends before index {next} although its header says {}",
                        segment.last
                    ),
                }
                .into());
            }
        }
        Ok(delivered)
    }
}
