//! [`Materializer`]: the published state and the thin layer that applies batches to it.
//!
//! ```text
//!   apply_batch(entries) ──▶ next = clone(current)   (O(1), structural sharing)
//!                            apply each entry to next (pure, see `apply`)
//!                            store(next)              (one atomic pointer swap)
//!                            applied.send(revision)   (wakes `wait_applied`)
//!   readers ──▶ view() = load()                       (no lock; never half a batch)
//! ```
//!
//! One writer at a time (a mutex serialises apply, replace and restore; readers never take
//! it). Replacing the whole state (bootstrap, snapshot install) is the same single swap.
//!
//! While the watch history is on (its budget not 0, [`Materializer::history`]), every batch
//! records what it changed and hands it to the history after the swap and before the
//! applied signal, so a watcher woken by the signal finds every change up to it.

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use regatta_proto::event::Event;
use tokio::sync::watch;

use crate::changes::Revisioned;
use crate::history::{DEFAULT_HISTORY_BYTES, History};
use crate::{ApplyResponse, Error, Result, Revision, State, apply};

/// The live, published state of one node plus its applied-revision signal.
#[derive(Debug)]
pub struct Materializer {
    current: ArcSwap<State>,
    writer: Mutex<()>,
    applied: watch::Sender<Revision>,
    history: History,
}

impl Default for Materializer {
    fn default() -> Self {
        Self::new(State::new())
    }
}

/// One entry to apply: its log index and, for a normal entry, its event. `None` advances
/// the revision only (openraft Blank/Membership entries).
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub index: Revision,
    pub event: Option<&'a Event>,
}

impl Materializer {
    /// A materializer serving `state`.
    pub fn new(state: State) -> Self {
        let (applied, _) = watch::channel(state.revision());
        Self {
            history: History::new(state.revision().0, DEFAULT_HISTORY_BYTES),
            current: ArcSwap::from_pointee(state),
            writer: Mutex::new(()),
            applied,
        }
    }

    /// The recent changes watchers read (on by default with
    /// [`DEFAULT_HISTORY_BYTES`]; `history().set_budget(0)` switches recording off).
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Whether apply records changes now: what a caller applying through
    /// [`Materializer::update_with_changes`] should do.
    pub fn recording(&self) -> bool {
        self.history.recording()
    }

    /// The current consistent view. Cheap (an atomic load and a reference count); hold it
    /// as long as needed: apply goes on, the view does not change.
    pub fn view(&self) -> Arc<State> {
        self.current.load_full()
    }

    /// A cheaper, short-lived view for one point read (no reference count on the fast path).
    /// Do not hold it across awaits or long loops; use [`Materializer::view`] for that.
    pub fn peek(&self) -> arc_swap::Guard<Arc<State>> {
        self.current.load()
    }

    /// The revision of the published state.
    pub fn applied(&self) -> Revision {
        *self.applied.borrow()
    }

    /// A receiver of the applied revision, updated after every publish.
    pub fn subscribe(&self) -> watch::Receiver<Revision> {
        self.applied.subscribe()
    }

    /// Waits until this node has applied at least `revision`. Callers put their own
    /// deadline around it (`tokio::time::timeout`).
    pub async fn wait_applied(&self, revision: Revision) -> Result<Revision> {
        let mut rx = self.applied.subscribe();
        let seen = rx
            .wait_for(|r| *r >= revision)
            .await
            .map_err(|_| Error::Closed)?;
        Ok(*seen)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        // A panic in another writer leaves no half-applied state behind (it never published),
        // so the lock is safe to take over.
        self.writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Applies a batch of entries and publishes the result once: readers see all of it or
    /// none of it.
    ///
    /// On a fatal error the entries before the failing one are published (a consistent
    /// prefix), and the error names the failing index; the node must stop.
    pub fn apply_batch<'a>(
        &self,
        entries: impl IntoIterator<Item = Entry<'a>>,
    ) -> Result<Vec<ApplyResponse>> {
        let _writer = self.lock();
        let mut next = State::clone(&self.current.load());
        let entries = entries.into_iter();
        let mut batch = apply::BatchApply::with_capacity(&mut next, entries.size_hint().0);
        if self.history.recording() {
            batch.record_changes();
        }
        let mut failure = None;
        for entry in entries {
            let result = match entry.event {
                Some(event) => batch.event(entry.index, event),
                None => batch.advance(entry.index),
            };
            if let Err(e) = result {
                failure = Some(e);
                break;
            }
        }
        let (responses, changes) = batch.finish_with_changes();
        self.publish(next, changes);
        match failure {
            Some(e) => Err(e),
            None => Ok(responses),
        }
    }

    /// Applies events at consecutive-or-gapped indices (edge tailer): a convenience over
    /// [`Materializer::apply_batch`].
    pub fn apply_events<'a>(
        &self,
        events: impl IntoIterator<Item = (Revision, &'a Event)>,
    ) -> Result<Vec<ApplyResponse>> {
        self.apply_batch(events.into_iter().map(|(index, event)| Entry {
            index,
            event: Some(event),
        }))
    }

    /// Runs `f` on a private copy of the current state and publishes the result in one swap;
    /// publishes nothing if `f` fails. For changes that are not writes to keys (watchers
    /// are told none); writes go through [`Materializer::update_with_changes`].
    pub fn update<T, E>(&self, f: impl FnOnce(&mut State) -> Result<T, E>) -> Result<T, E> {
        let _writer = self.lock();
        let mut next = State::clone(&self.current.load());
        let out = f(&mut next)?;
        self.publish(next, Some(Vec::new()));
        Ok(out)
    }

    /// [`Materializer::update`] for `f` applying writes (the raft state machine, which
    /// records the applied log id and membership with the same atomicity): `f` returns
    /// what they changed (`None` when it did not record, see [`Materializer::recording`]).
    pub fn update_with_changes<T, E>(
        &self,
        f: impl FnOnce(&mut State) -> Result<(T, Option<Vec<Revisioned>>), E>,
    ) -> Result<T, E> {
        let _writer = self.lock();
        let mut next = State::clone(&self.current.load());
        let (out, changes) = f(&mut next)?;
        self.publish(next, changes);
        Ok(out)
    }

    /// Replaces the whole state (bootstrap, snapshot install, restore): one atomic swap.
    /// The applied revision may go backwards only here, when a caller deliberately resets.
    /// Watchers cannot be told this as changes: the history starts a new generation.
    pub fn replace(&self, state: State) {
        let _writer = self.lock();
        let revision = state.revision();
        self.current.store(Arc::new(state));
        self.history.reset(revision.0);
        self.applied.send_replace(revision);
    }

    fn publish(&self, next: State, changes: Option<Vec<Revisioned>>) {
        let revision = next.revision();
        self.current.store(Arc::new(next));
        self.history.push(revision.0, changes);
        self.applied.send_replace(revision);
    }
}
