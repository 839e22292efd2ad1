//! Group commit: one fsync for everything written so far, run by whoever needs it first.
//!
//! Each log has a syncer thread. It sleeps until something is written, then takes the
//! `written` pointer, fdatasyncs the open segment once, moves `flushed` to what it took and
//! resolves every waiter at or below it. Appends that arrive during an fsync are covered by the
//! next one, so under load each fsync carries everything queued behind it: throughput grows
//! with concurrency while fsync latency stays fixed. (Segment files and their directory entries
//! are made durable when they are created, so one fdatasync of the open segment suffices.)
//!
//! A thread that blocks for durability anyway (`append_blocking`, `truncate`, `purge`, `sync`)
//! does not hand off to the syncer: if no fsync is running it claims the round and runs it
//! itself, saving two thread wake-ups — which, for a lone writer, is most of the difference
//! between one append and one bare fsync. If a round is running, it parks in the waiter queue
//! like a callback and is woken alone when covered (no thundering herd). Only one round runs
//! at a time (`Shared::syncing`).
//!
//! A log may rest its syncer between rounds ([`Options::sync_pause`](crate::Options::sync_pause)):
//! fewer fsyncs, each covering more, for a log whose entries are durable elsewhere.
//!
//! An fsync error is fatal: after a failed fsync the kernel may have dropped the dirty pages,
//! so retrying would report durability that is not there. The log stops, every waiter fails,
//! and the node must restart and recover from what is really on disk.

use std::fs::File;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError};

use crate::error::{Error, Result};
use crate::log::{Core, Shared, Waiter, lock, rest_unless};
use crate::position::LogIndex;

/// A sync round someone has claimed.
struct Round {
    file: Arc<File>,
    path: PathBuf,
    target: LogIndex,
    epoch: u64,
}

/// Claims a round if nobody is syncing and something written is not yet durable.
fn claim(s: &mut Shared) -> Option<Round> {
    if s.syncing || s.written_next <= s.durable_next {
        return None;
    }
    s.syncing = true;
    Some(Round {
        file: Arc::clone(&s.open.file),
        path: s.open.path.clone(),
        target: s.written_next,
        epoch: s.epoch,
    })
}

/// Runs a claimed round and publishes it; returns the waiters it made durable, to be called
/// outside the lock.
fn complete(core: &Core, round: Round) -> Result<Vec<Waiter>> {
    let started = std::time::Instant::now();
    let synced = round.file.sync_data();
    if let Some(observe) = &core.on_sync {
        (observe.0)(started.elapsed());
    }
    let mut s = lock(&core.shared);
    s.syncing = false;
    if let Err(source) = synced {
        drop(s);
        let e = Error::SyncFailed {
            path: round.path,
            source,
        };
        core.stop(&e);
        return Err(e);
    }
    // A truncation or purge in between moved the pointers itself; leave them.
    if s.epoch == round.epoch && round.target > s.durable_next {
        s.durable_next = round.target;
    }
    s.check();
    let mut ready = Vec::new();
    while s.waiters.front().is_some_and(|(t, _)| *t <= s.durable_next) {
        if let Some((_, w)) = s.waiters.pop_front() {
            ready.push(w);
        }
    }
    drop(s);
    core.work.notify_one();
    Ok(ready)
}

/// The syncer thread; returns on shutdown (after syncing what was written) or after a failure.
pub(crate) fn run(core: &Core) {
    loop {
        let round = {
            let mut s = lock(&core.shared);
            loop {
                if s.stopped.is_some() {
                    return;
                }
                if let Some(round) = claim(&mut s) {
                    break round;
                }
                if s.shutdown && !s.syncing && s.written_next <= s.durable_next {
                    return;
                }
                s = core.work.wait(s).unwrap_or_else(PoisonError::into_inner);
            }
        };
        match complete(core, round) {
            Ok(ready) => ready.into_iter().for_each(|w| w(Ok(()))),
            Err(_) => return,
        }
        rest(core);
    }
}

/// The syncer's pause between two of its rounds ([`Options::sync_pause`]); cut short by
/// shutdown or a failure. Appends meanwhile do not wake it; a blocking caller runs its own
/// round.
///
/// [`Options::sync_pause`]: crate::Options::sync_pause
fn rest(core: &Core) {
    if !core.sync_pause.is_zero() {
        rest_unless(&core.shared, &core.work, core.sync_pause, |s| {
            s.shutdown || s.stopped.is_some()
        });
    }
}

impl Core {
    /// Blocks until every entry before `target` is durable. If no fsync is running, runs the
    /// round on this thread; otherwise parks in the waiter queue, to be woken (alone, not with
    /// every other blocked thread) by the round that covers `target`. `epoch` is the epoch
    /// `target` was taken in: a truncation or purge since then made everything written before
    /// it durable first (and may have moved the pointers back), so a changed epoch means done.
    pub(crate) fn wait_durable(&self, target: LogIndex, epoch: u64) -> Result<()> {
        loop {
            let parked = {
                let mut s = lock(&self.shared);
                if let Some(reason) = &s.stopped {
                    return Err(Error::Stopped {
                        reason: reason.clone(),
                    });
                }
                if s.durable_next >= target || s.epoch != epoch {
                    return Ok(());
                }
                match claim(&mut s) {
                    Some(round) => Err(round),
                    None => {
                        let (tx, rx) = std::sync::mpsc::sync_channel(1);
                        let waiter: Waiter = Box::new(move |r| {
                            let _ = tx.send(r);
                        });
                        // The queue is ordered by target; appends after ours may be queued.
                        let at = s.waiters.partition_point(|(t, _)| *t <= target);
                        // No notify: parking means a round is running, and its end wakes the
                        // syncer for the next one.
                        s.waiters.insert(at, (target, waiter));
                        Ok(rx)
                    }
                }
            };
            match parked {
                Ok(rx) => {
                    return rx.recv().unwrap_or_else(|_| {
                        Err(Error::Stopped {
                            reason: "log closed while waiting for an fsync".into(),
                        })
                    });
                }
                Err(round) => {
                    let ready = complete(self, round)?;
                    ready.into_iter().for_each(|w| w(Ok(())));
                }
            }
        }
    }
}
