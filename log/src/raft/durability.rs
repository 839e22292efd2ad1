//! The leader's own appends: replicated while they are being fsync'd, made visible only once
//! they are durable.
//!
//! openraft 0.9 waits for the leader's `LogFlushed` before it sends a new entry to the
//! followers, so every write pays the leader's fsync and then a follower's, one after the
//! other. [`Durability`] lets the log store tell openraft at once, when it appends entries
//! this node proposed as the leader of the current term, that they are flushed; the fsync
//! runs meanwhile and the followers receive and fsync the entries in parallel. openraft may
//! then count the leader in a quorum before its fsync ends, so nothing that depends on an
//! entry being committed may happen before the leader's copy is durable too:
//!
//! * the state machine applies an entry (and so answers its client, serves it to readers
//!   and to edges) only after [`Durability::wait`] for its index: leader + the followers
//!   openraft counted = a quorum of durable copies, as without this;
//! * the leader sends a commit index to followers only after [`Durability::wait`] for it
//!   (the Raft transport), so no follower applies, or serves to an edge, an entry whose
//!   leader copy is not yet durable;
//! * a committed pointer persisted beyond the durable log is ignored when the log is opened
//!   (see the store), so a crash between the two cannot make a restart apply a missing
//!   entry.
//!
//! An entry lost with the leader's page cache (a power cut before the fsync) was therefore
//! never answered nor read: it is as if it had never been committed. Appends that are not
//! this leader's own — every follower append, entries of an earlier term — take the ordinary
//! path: `LogFlushed` after their fsync.

use std::sync::atomic::{AtomicU64, Ordering};
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
    node_id: u64,
    /// The term this node leads, 0 while it leads none (terms start at 1 for a leader).
    leading_term: AtomicU64,
    /// Woken after every fsync round that covered an append of the store.
    durable: Notify,
    /// Why the log stopped, once an fsync failed.
    failed: Mutex<Option<String>>,
}

impl Durability {
    /// For the log of node `node_id`; it leads nothing until [`Durability::set_leading`].
    pub fn new(log: Log, node_id: u64) -> Self {
        Self {
            inner: Arc::new(Inner {
                log,
                node_id,
                leading_term: AtomicU64::new(0),
                durable: Notify::new(),
                failed: Mutex::new(None),
            }),
        }
    }

    /// Records which term this node leads now (`None`: it is not the leader). Called on
    /// every change of Raft's server metrics. Late news is safe both ways: before it
    /// arrives a new leader's appends take the ordinary path, and a node that stopped
    /// leading receives only entries of another leader's term, which never match.
    pub fn set_leading(&self, term: Option<u64>) {
        self.inner
            .leading_term
            .store(term.unwrap_or(0), Ordering::Release);
    }

    /// True when an append of entries with these leader ids (term, node) is this node's
    /// own as the leader of the current term, so openraft may be told at once.
    pub fn owns(&self, leaders: impl IntoIterator<Item = (u64, u64)>) -> bool {
        let term = self.inner.leading_term.load(Ordering::Acquire);
        owns(term, self.inner.node_id, leaders)
    }

    /// Completes once every entry up to `index` is durable in the log, or with why the log
    /// stopped.
    pub async fn wait(&self, index: u64) -> std::result::Result<(), String> {
        loop {
            let notified = self.inner.durable.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Durable is durable, whatever happened since: the common case takes no lock.
            if self.inner.log.durable_next().0 > index {
                return Ok(());
            }
            if let Some(reason) = self.failure() {
                return Err(reason);
            }
            notified.await;
        }
    }

    /// Called with the outcome of each fsync round covering an append of the store.
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

    fn failure(&self) -> Option<String> {
        self.inner
            .failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The decision of [`Durability::owns`]: a leader of `term` (0: none) that is `node_id`
/// appends only entries whose leader id is (`term`, `node_id`) — and at least one.
pub fn owns(term: u64, node_id: u64, leaders: impl IntoIterator<Item = (u64, u64)>) -> bool {
    if term == 0 {
        return false;
    }
    let mut any = false;
    for (entry_term, entry_node) in leaders {
        if entry_term != term || entry_node != node_id {
            return false;
        }
        any = true;
    }
    any
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_entries_of_the_term_this_node_leads_are_its_own() {
        // Leading term 5 as node 2.
        assert!(owns(5, 2, [(5, 2), (5, 2)]));
        // Not leading.
        assert!(!owns(0, 2, [(5, 2)]));
        // Another leader's entries (a follower append), or an earlier term of this node.
        assert!(!owns(5, 2, [(5, 3)]));
        assert!(!owns(5, 2, [(4, 2)]));
        // One foreign entry among own ones is enough to take the ordinary path.
        assert!(!owns(5, 2, [(5, 2), (4, 2)]));
        // Nothing appended: nothing to tell early.
        assert!(!owns(5, 2, []));
    }

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
        let durability = Durability::new(log.clone(), 1);
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
