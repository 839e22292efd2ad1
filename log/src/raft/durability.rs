//! Appends are replicated and answered while they are being fsync'd; what they carry becomes
//! visible only once durable.
//!
//! openraft 0.9 runs a log append to its end — written and fsync'd — before its Raft core does
//! anything else: the leader sends a new entry to the followers only after its own fsync, so
//! a write paid the leader's fsync and then a follower's, one after the other; and a
//! follower's Raft core sat idle during each fsync, its answer to the leader handed from the
//! log's syncer thread to the Raft core and on to the RPC handler. With a [`Durability`] set,
//! the log store tells openraft that an append is flushed as soon as it is written; the fsync
//! runs meanwhile. openraft may then count an entry as held by a node before that node's
//! fsync ends, so everything that depends on an entry being held durably waits here instead:
//!
//! * the state machine applies an entry (and so answers its client, serves it to readers and
//!   to edges) only after [`Durability::wait`] for its index;
//! * the leader sends a commit index to followers only after [`Durability::wait`] for it
//!   (the Raft transport), so no follower applies, or serves to an edge, an entry whose
//!   leader copy is not yet durable;
//! * a follower answers an AppendEntries with success only after
//!   [`Durability::wait_written`] (the Raft transport's server): everything it wrote before
//!   the answer, the entries the answer claims included, is durable — so the leader counts
//!   a follower in a quorum only for entries on its disk, as without this;
//! * a committed pointer persisted beyond the durable log is ignored when the log is opened
//!   (see the store), so a crash between the two cannot make a restart apply a missing
//!   entry.
//!
//! So a quorum of durable copies stands behind every entry anyone sees, as before. An entry
//! lost with a node's page cache (a power cut before the fsync) was never answered nor read
//! by anyone counting on that copy. Votes are safe too: `save_vote` makes every earlier append
//! durable before the vote file is written.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

use crate::error::Result;
use crate::log::Log;

/// Shared between the log store, the state machine and the Raft transport of one node.
#[derive(Clone, Debug)]
pub struct Durability {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    log: Log,
    /// Woken after every fsync round that covered an append of the store, and after every
    /// truncation and purge.
    durable: Notify,
    /// Why the log stopped, once an fsync failed.
    failed: Mutex<Option<String>>,
}

impl Durability {
    /// For the appends of the store over `log`.
    pub fn new(log: Log) -> Self {
        Self {
            inner: Arc::new(Inner {
                log,
                durable: Notify::new(),
                failed: Mutex::new(None),
            }),
        }
    }

    /// Completes once every entry up to `index` is durable in the log, or with why the log
    /// stopped.
    pub async fn wait(&self, index: u64) -> std::result::Result<(), String> {
        let log = &self.inner.log;
        // Durable is durable, whatever happened since: the common case takes one lock.
        self.wait_until(|| Ok(log.durable_next().0 > index)).await
    }

    /// Completes once everything written to the log before this call is durable (or was
    /// made durable by a truncation or purge since), or with why the log stopped.
    pub async fn wait_written(&self) -> std::result::Result<(), String> {
        let log = &self.inner.log;
        let mark = log.written_mark();
        self.wait_until(|| log.is_durable(mark)).await
    }

    async fn wait_until(
        &self,
        mut done: impl FnMut() -> Result<bool>,
    ) -> std::result::Result<(), String> {
        loop {
            let notified = self.inner.durable.notified();
            tokio::pin!(notified);
            // Enabled before the check, so a round that ends in between still wakes us.
            notified.as_mut().enable();
            match done() {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => return Err(e.to_string()),
            }
            if let Some(reason) = self.failure() {
                return Err(reason);
            }
            notified.await;
        }
    }

    /// Called with the outcome of each fsync round covering an append of the store, and
    /// after each truncation and purge (which move the log's epoch).
    pub(crate) fn flushed(&self, outcome: &Result<()>) {
        if let Err(e) = outcome {
            let mut failed = self
                .inner
                .failed
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            failed.get_or_insert_with(|| e.to_string());
        }
        self.inner.durable.notify_waiters();
    }

    /// Wakes every waiter to look again (after a truncation or purge moved the log's epoch).
    pub(crate) fn wake(&self) {
        self.inner.durable.notify_waiters();
    }

    fn failure(&self) -> Option<String> {
        self.inner
            .failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(index: u64) -> crate::Record {
        use crate::position::{EntryId, LogIndex, NodeId, Term};
        crate::Record::new(
            EntryId::new(LogIndex(index), Term(1), NodeId(1)),
            crate::record::RecordKind::Normal,
            format!("value {index}").into_bytes(),
        )
    }

    #[tokio::test]
    async fn waiting_for_an_index_completes_once_the_log_holds_it_durably() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = Log::open(dir.path(), crate::Options::default()).expect("open");
        let durability = Durability::new(log.clone());
        log.append_blocking(vec![record(1)]).expect("append");
        // Already durable: at once.
        durability.wait(1).await.expect("durable");

        // Not written yet: waits, and is woken by the fsync round that covers it.
        let waiting = tokio::spawn({
            let durability = durability.clone();
            let log = log.clone();
            // What the log holds durably at the moment the wait ends.
            async move { durability.wait(3).await.map(|()| log.durable_next()) }
        });
        let flushed = durability.clone();
        log.append_with(vec![record(2)], move |r| flushed.flushed(&r))
            .expect("append");
        let flushed = durability.clone();
        log.append_with(vec![record(3)], move |r| flushed.flushed(&r))
            .expect("append");
        let durable_next = waiting.await.expect("task").expect("durable");
        assert!(durable_next.0 > 3, "the wait ended at {durable_next:?}");
    }
}
