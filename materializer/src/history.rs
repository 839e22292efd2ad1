//! [`History`]: the recent changes of a node, bounded in memory, read by watchers.
//!
//! ```text
//!   apply batch ──▶ publish state ──▶ History::push(changes, through = revision) ──▶ applied signal
//!   watcher (woken by the signal) ──▶ History::read(next, generation)
//!        next < start            ──▶ Gone::Compacted { oldest: start }
//!        generation changed      ──▶ Gone::Replaced { oldest }   (snapshot installed)
//!        otherwise               ──▶ the batches holding revisions ≥ next, and `through`
//! ```
//!
//! Invariants: every change of a revision in `start ..= through` is held, in log order;
//! `start ≤ through + 1`; `through` is the published revision once the applied signal fires.
//! Whole batches leave from the front once the history holds more than its budget (the
//! newest batch always stays, so a live watcher can take it). Replacing the whole state
//! starts a new generation: nothing before it can be told as changes.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::changes::Revisioned;

/// The default memory budget of a node's watch history, in bytes of keys and values.
pub const DEFAULT_HISTORY_BYTES: usize = 64 << 20;

/// The changes one published batch made, in log order.
#[derive(Debug)]
pub struct ChangeBatch {
    /// Every change of revisions up to this one is in this batch or before it.
    pub through: u64,
    pub changes: Vec<Revisioned>,
    bytes: usize,
}

/// Why a watcher cannot read on from a revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gone {
    /// The revision is older than what the history holds; `oldest` is the first it does.
    Compacted { oldest: u64 },
    /// The state was replaced (a snapshot installed) since the watcher started; changes
    /// are held from `oldest` on.
    Replaced { oldest: u64 },
}

/// What a read of the history returns.
#[derive(Debug)]
pub struct Read {
    /// Batches that may hold revisions ≥ the revision asked for (filter by revision).
    pub batches: Vec<Arc<ChangeBatch>>,
    /// Every change up to this revision is in `batches` or before the revision asked for.
    pub through: u64,
}

#[derive(Debug)]
struct Inner {
    budget: usize,
    start: u64,
    through: u64,
    generation: u64,
    bytes: usize,
    batches: VecDeque<Arc<ChangeBatch>>,
}

/// The recent changes of a node (see the module docs).
#[derive(Debug)]
pub struct History {
    inner: Mutex<Inner>,
}

impl History {
    /// An empty history after `revision`, holding at most about `budget` bytes (0: off).
    pub fn new(revision: u64, budget: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                budget,
                start: revision + 1,
                through: revision,
                generation: 0,
                bytes: 0,
                batches: VecDeque::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether apply should record changes (the budget is not 0).
    pub fn recording(&self) -> bool {
        self.lock().budget > 0
    }

    /// Sets the budget (0 switches recording off and forgets everything held).
    pub fn set_budget(&self, budget: usize) {
        let mut inner = self.lock();
        inner.budget = budget;
        inner.trim();
    }

    /// The budget in bytes.
    pub fn budget(&self) -> usize {
        self.lock().budget
    }

    /// Adds the changes of a batch published at `through`. `None`: the batch was applied
    /// without recording, so nothing before `through + 1` can be told.
    pub fn push(&self, through: u64, changes: Option<Vec<Revisioned>>) {
        let mut inner = self.lock();
        if through < inner.through {
            // Only a replace goes backwards; it comes through `reset`.
            return;
        }
        inner.through = through;
        match changes {
            None => {
                inner.batches.clear();
                inner.bytes = 0;
                inner.start = through + 1;
            }
            Some(changes) if changes.is_empty() => {}
            Some(changes) => {
                let bytes = changes.iter().map(|c| c.change.bytes()).sum();
                inner.bytes += bytes;
                inner.batches.push_back(Arc::new(ChangeBatch {
                    through,
                    changes,
                    bytes,
                }));
                inner.trim();
            }
        }
    }

    /// The whole state was replaced by one at `revision`: a new generation starts after it.
    pub fn reset(&self, revision: u64) {
        let mut inner = self.lock();
        inner.batches.clear();
        inner.bytes = 0;
        inner.start = revision + 1;
        inner.through = revision;
        inner.generation += 1;
    }

    /// The current generation and the oldest revision held (what a new watcher may start
    /// from), and the revision the history is complete through.
    pub fn position(&self) -> (u64, u64, u64) {
        let inner = self.lock();
        (inner.generation, inner.start, inner.through)
    }

    /// The changes from revision `next` on, for a watcher started in `generation`.
    pub fn read(&self, next: u64, generation: u64) -> Result<Read, Gone> {
        let inner = self.lock();
        if generation != inner.generation {
            return Err(Gone::Replaced {
                oldest: inner.start,
            });
        }
        if next < inner.start {
            return Err(Gone::Compacted {
                oldest: inner.start,
            });
        }
        let first = inner.batches.partition_point(|b| b.through < next);
        Ok(Read {
            batches: inner.batches.range(first..).cloned().collect(),
            through: inner.through,
        })
    }
}

impl Inner {
    fn trim(&mut self) {
        if self.budget == 0 {
            self.batches.clear();
            self.bytes = 0;
            self.start = self.through + 1;
            return;
        }
        while self.bytes > self.budget && self.batches.len() > 1 {
            if let Some(gone) = self.batches.pop_front() {
                self.bytes -= gone.bytes;
                self.start = gone.through + 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc as StdArc;

    use super::*;
    use crate::Revision;
    use crate::changes::Change;
    use crate::table::Record;

    fn changes(revisions: &[u64]) -> Vec<Revisioned> {
        revisions
            .iter()
            .map(|&r| Revisioned {
                revision: Revision(r),
                change: Change::Put {
                    table: StdArc::from("t"),
                    record: Record::new(b"k", &[0; 36], r, r, 1),
                    prev: None,
                },
            })
            .collect()
    }

    fn revisions(read: &Read, from: u64) -> Vec<u64> {
        read.batches
            .iter()
            .flat_map(|b| b.changes.iter())
            .map(|c| c.revision.0)
            .filter(|&r| r >= from)
            .collect()
    }

    #[test]
    fn a_reader_gets_every_change_from_its_revision() {
        let h = History::new(0, 1 << 20);
        h.push(2, Some(changes(&[1, 2])));
        h.push(3, Some(Vec::new()));
        h.push(5, Some(changes(&[5])));
        let read = h.read(2, 0).expect("held");
        assert_eq!(revisions(&read, 2), [2, 5]);
        assert_eq!(read.through, 5);
        let read = h.read(6, 0).expect("held");
        assert!(revisions(&read, 6).is_empty());
        assert_eq!(read.through, 5);
    }

    #[test]
    fn the_budget_trims_whole_batches_from_the_front_and_keeps_the_newest() {
        // 100 bytes a change (64 overhead, 1-byte key, 36-byte value... about).
        let h = History::new(0, 250);
        h.push(1, Some(changes(&[1])));
        h.push(2, Some(changes(&[2])));
        h.push(3, Some(changes(&[3])));
        assert_eq!(
            h.read(1, 0).expect_err("gone"),
            Gone::Compacted { oldest: 2 }
        );
        assert_eq!(revisions(&h.read(2, 0).expect("held"), 2), [2, 3]);
        h.push(4, Some(changes(&[4, 4, 4, 4])));
        assert_eq!(
            h.position().1,
            4,
            "the newest batch stays, whatever its size"
        );
        h.set_budget(0);
        assert!(!h.recording());
        assert_eq!(
            h.read(4, 0).expect_err("gone"),
            Gone::Compacted { oldest: 5 }
        );
    }

    #[test]
    fn an_unrecorded_batch_or_a_replace_ends_what_can_be_told() {
        let h = History::new(10, 1 << 20);
        assert_eq!(
            h.read(10, 0).expect_err("gone"),
            Gone::Compacted { oldest: 11 }
        );
        h.push(11, Some(changes(&[11])));
        h.push(12, None);
        assert_eq!(
            h.read(11, 0).expect_err("gone"),
            Gone::Compacted { oldest: 13 }
        );
        h.reset(40);
        assert_eq!(
            h.read(13, 0).expect_err("gone"),
            Gone::Replaced { oldest: 41 }
        );
        assert_eq!(h.position(), (1, 41, 40));
        assert!(h.read(41, 1).is_ok());
    }
}
