//! Group commit: the syncer thread.
//!
//! One thread per log. It sleeps until something is written, then takes the `written`
//! pointer, fdatasyncs the open segment once (segment files and their directory entries are
//! made durable when they are created),
//! moves `flushed` to what it took and resolves every waiter at or below it. Appends that
//! arrive during an fsync are covered by the next one, so under load each fsync carries
//! everything queued behind it: throughput grows with concurrency while fsync latency stays
//! fixed.
//!
//! An fsync error is fatal: after a failed fsync the kernel may have dropped the dirty pages,
//! so retrying would report durability that is not there. The log stops, every waiter fails,
//! and the node must restart and recover from what is really on disk.

use std::sync::PoisonError;

use crate::error::Error;
use crate::log::{Core, Waiter, lock};

/// The syncer loop; returns on shutdown (after syncing what was written) or after a failure.
pub(crate) fn run(core: &Core) {
    loop {
        let (file, path, target, epoch) = {
            let mut s = lock(&core.shared);
            loop {
                if s.stopped.is_some() {
                    return;
                }
                if s.written_next > s.durable_next {
                    break;
                }
                if s.shutdown {
                    return;
                }
                s = core.work.wait(s).unwrap_or_else(PoisonError::into_inner);
            }
            (
                s.open.file.clone(),
                s.open.path.clone(),
                s.written_next,
                s.epoch,
            )
        };

        if let Err(source) = file.sync_data() {
            let e = Error::SyncFailed { path, source };
            core.stop(&e);
            return;
        }

        let ready: Vec<Waiter> = {
            let mut s = lock(&core.shared);
            if s.epoch == epoch && target > s.durable_next {
                s.durable_next = target;
            }
            s.check();
            let mut ready = Vec::new();
            while let Some((t, _)) = s.waiters.front() {
                if *t > s.durable_next {
                    break;
                }
                if let Some((_, w)) = s.waiters.pop_front() {
                    ready.push(w);
                }
            }
            ready
        };
        core.done.notify_all();
        for w in ready {
            w(Ok(()));
        }
    }
}
