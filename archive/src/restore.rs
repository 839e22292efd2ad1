//! Point-in-time reconstruction: the tables as they were at a revision, rebuilt from the
//! object store alone (the newest snapshot at or below it, then the archived segments after
//! it, applied in order).
//!
//! [`restorable`] says which revisions a store can rebuild (pure); [`state_at`] rebuilds one.
//! Writing the result somewhere (a data directory, a running cluster) is the caller's.

use prost::Message;
use regatta_materializer::{Materializer, Revision, State};
use regatta_proto::event::Event;

use crate::error::{Error, Result};
use crate::history::History;
use crate::objects::ObjectStorage;
use crate::segments::{ArchivedSegment, coverage};

/// Entries applied in one batch while replaying history.
const BATCH: usize = 1024;

/// A step of [`state_at`] that a person waits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Downloading the snapshot at `revision` (progress in bytes).
    LoadingSnapshot { revision: u64 },
    /// Applying `entries` archived entries on top of it (progress in entries).
    Applying { entries: u64 },
}

/// How a long reconstruction reports progress (the binary draws a bar). `()` ignores it.
pub trait Progress: Send {
    /// A phase begins.
    fn start(&mut self, phase: Phase);
    /// `done` units of the current phase are done, out of `total` when known.
    fn advance(&mut self, done: u64, total: Option<u64>);
    /// The current phase ended.
    fn finish(&mut self);
}

impl Progress for () {
    fn start(&mut self, _: Phase) {}
    fn advance(&mut self, _: u64, _: Option<u64>) {}
    fn finish(&mut self) {}
}

/// Ranges of revisions that can be restored, ascending: from each snapshot (and from 0
/// when the archive starts at the beginning of the log) up to where the archive after it
/// stops without a gap. Pure.
pub fn restorable(snapshots: &[Revision], segments: &[ArchivedSegment]) -> Vec<(u64, u64)> {
    let covered = coverage(segments);
    let mut out: Vec<(u64, u64)> = Vec::new();
    let mut push = |from: u64, to: u64| match out.last_mut() {
        Some(last) if from <= last.1.saturating_add(1) => last.1 = last.1.max(to),
        _ => out.push((from, to)),
    };
    let mut bases: Vec<u64> = snapshots.iter().map(|r| r.0).collect();
    if covered.first().is_some_and(|r| *r.start() <= 1) {
        bases.push(0);
    }
    bases.sort_unstable();
    for base in bases {
        let end = covered
            .iter()
            .find(|r| *r.start() <= base + 1 && base < *r.end())
            .map_or(base, |r| *r.end());
        push(base, end);
    }
    out
}

/// Builds the state at `revision` (default: the newest restorable) from the object store.
/// [`Error::NotRestorable`] when the store cannot rebuild it.
pub async fn state_at(
    objects: &ObjectStorage,
    revision: Option<u64>,
    progress: &mut dyn Progress,
) -> Result<State> {
    let snapshots = objects.snapshots();
    let revisions = snapshots.list().await.map_err(|source| Error::Snapshot {
        location: "snapshots/".into(),
        source,
    })?;
    let archive = objects.segments();
    let segments = archive.list().await?;
    let ranges = restorable(&revisions, &segments);
    let Some(newest) = ranges.last().map(|r| r.1) else {
        return Err(Error::NotRestorable {
            target: None,
            restorable: ranges,
        });
    };
    let target = revision.unwrap_or(newest);
    if !ranges.iter().any(|(a, b)| *a <= target && target <= *b) {
        return Err(Error::NotRestorable {
            target: Some(target),
            restorable: ranges,
        });
    }
    let base = revisions.iter().rev().find(|r| r.0 <= target).copied();
    let state = match base {
        Some(rev) => {
            progress.start(Phase::LoadingSnapshot { revision: rev.0 });
            let state = snapshots
                .download_with_progress(rev, |done, total| progress.advance(done, Some(total)))
                .await
                .map_err(|source| Error::Snapshot {
                    location: snapshots.location(rev).to_string(),
                    source,
                })?;
            progress.finish();
            state
        }
        None => State::new(),
    };
    let start = state.revision().0;
    let materializer = Materializer::new(state);
    // Nobody watches a restore: apply records no changes.
    materializer.history().set_budget(0);
    if target > start {
        progress.start(Phase::Applying {
            entries: target - start,
        });
        let history = History::archived(archive, segments);
        replay(&history, &materializer, start, target, progress).await?;
        progress.finish();
    }
    let view = materializer.view();
    if view.revision().0 != target {
        return Err(Error::HistoryEnds {
            reached: view.revision().0,
            target,
        });
    }
    Ok(State::clone(&view))
}

/// Applies the archived entries after `start` up to `target` in batches.
async fn replay(
    history: &History,
    materializer: &Materializer,
    start: u64,
    target: u64,
    progress: &mut dyn Progress,
) -> Result<()> {
    let mut batch: Vec<(Revision, Option<Event>)> = Vec::new();
    let flush = |batch: &mut Vec<(Revision, Option<Event>)>| -> Result<()> {
        materializer.apply_batch(batch.iter().map(|(index, event)| {
            regatta_materializer::Entry {
                index: *index,
                event: event.as_ref(),
            }
        }))?;
        batch.clear();
        Ok(())
    };
    let first = if start == 0 { 0 } else { start + 1 };
    let mut done = 0u64;
    let total = Some(target - start);
    history
        .walk(first, target, |record| -> Result<()> {
            done += 1;
            progress.advance(done, total);
            let index = record.id.index.0;
            if index == 0 {
                return Ok(()); // openraft's initial membership: the empty state's revision
            }
            let event = match record.kind {
                regatta_log::RecordKind::Normal => Some(
                    Event::decode(record.payload.as_ref()).map_err(|e| Error::Corrupted {
                        location: format!("entry {index}"),
                        reason: format!("carries an undecodable event: {e}"),
                    })?,
                ),
                _ => None,
            };
            batch.push((Revision(index), event));
            if batch.len() >= BATCH {
                flush(&mut batch)?;
            }
            Ok(())
        })
        .await?;
    flush(&mut batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segments::tests::seg;

    #[test]
    fn restorable_ranges_start_at_snapshots_and_follow_the_archive() {
        let revs = |r: &[u64]| r.iter().map(|&x| Revision(x)).collect::<Vec<_>>();
        // From the start of the log, with a snapshot inside.
        assert_eq!(
            restorable(&revs(&[50]), &[seg(0, 99), seg(100, 199)]),
            vec![(0, 199)]
        );
        // Archive begins later (retention): only from the snapshot on.
        assert_eq!(
            restorable(&revs(&[150]), &[seg(100, 199), seg(200, 220)]),
            vec![(150, 220)]
        );
        // A gap: the snapshot after it starts a new range; a snapshot alone is restorable.
        assert_eq!(
            restorable(&revs(&[10, 300]), &[seg(0, 99), seg(200, 250)]),
            vec![(0, 99), (300, 300)]
        );
        assert!(restorable(&[], &[seg(5, 10)]).is_empty());
    }
}
