//! Group commit: the syncer thread.
//!
//! One thread per log. It sleeps until something is written, then takes the `written`
//! pointer, fdatasyncs the open segment once (and the directory, if a segment was created),
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
use crate::state_file;

/// The syncer loop; returns on shutdown (after syncing what was written) or after a failure.
pub(crate) fn run(core: &Core) {
    loop {
        let (file, path, target, dir_dirty, epoch) = {
            let mut s = lock(&core.shared);
            loop {
                if s.stopped.is_some() {
                    return;
                }
                if s.written_next > s.durable_next || s.dir_dirty {
                    break;
                }
                if s.shutdown {
                    return;
                }
                s = core.work.wait(s).unwrap_or_else(PoisonError::into_inner);
            }
            let dir_dirty = std::mem::take(&mut s.dir_dirty);
            (
                s.open.file.clone(),
                s.open.path.clone(),
                s.written_next,
                dir_dirty,
                s.epoch,
            )
        };

        let synced = file
            .sync_data()
            .map_err(|source| Error::SyncFailed { path, source })
            .and_then(|()| {
                if dir_dirty {
                    state_file::sync_dir(&core.dir)
                } else {
                    Ok(())
                }
            });
        if let Err(e) = synced {
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
