//! What an edge knows about its replication: written by the tailer, read by the edge's
//! role (status, write forwarding), its readiness probe and its metrics.

use std::sync::{
    Mutex,
    atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
};

use crate::clock::{Lag, lag, now_micros};

/// Shared between the tailer and everything that reports on it.
#[derive(Debug, Default)]
pub struct ReplicationState {
    /// Index in the upstream list of the upstream followed now.
    pub upstream: AtomicUsize,
    /// Woken whenever `upstream` changes (writes sent to the old one stop waiting).
    pub upstream_moved: tokio::sync::Notify,
    /// The upstream's commit index as last heard.
    pub upstream_commit: AtomicU64,
    /// Set once the edge has heard from an upstream since it started.
    pub connected: AtomicBool,
    /// Set once the edge has caught up with an upstream since it started (see
    /// [`ReplicationState::caught_up`]); never cleared while it runs.
    pub caught_up: AtomicBool,
    /// Unix micros of the last message from the upstream.
    pub last_heard_micros: AtomicU64,
    /// Proposal time of the last applied event (Unix micros), for lag in seconds.
    pub last_event_micros: AtomicU64,
    /// Term of the last applied entry.
    pub term: AtomicU64,
    /// Bootstraps from a snapshot since start.
    pub bootstraps: AtomicU64,
    /// Why the tailer stopped for good, if it did.
    pub fatal: Mutex<Option<String>>,
    /// Set while appending to the local log waits for disk space.
    pub disk_full: AtomicBool,
    /// Why the last attempt to follow an upstream failed (a refused connection, a TLS
    /// handshake that failed); cleared when an upstream is heard from.
    pub upstream_error: Mutex<Option<String>>,
}

impl ReplicationState {
    pub fn fatal(&self) -> Option<String> {
        self.fatal
            .lock()
            .map(|f| f.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Why following the upstream failed last, unless one was heard from since.
    pub fn upstream_error(&self) -> Option<String> {
        self.upstream_error
            .lock()
            .map(|e| e.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Records (`Some`) or clears (`None`) why following the upstream failed.
    pub fn set_upstream_error(&self, error: Option<String>) {
        match self.upstream_error.lock() {
            Ok(mut e) => *e = error,
            Err(p) => *p.into_inner() = error,
        }
    }

    /// Whether this edge knows its state: since it started, it has applied at least the
    /// commit index an upstream that knew its own state reported. Until then the tables it
    /// restored (or bootstrapped, or has none of yet) may lack some the core has, so a table
    /// missing here is no proof that it does not exist: reads of one are answered
    /// `Unavailable` ([`ReplicationState::unknown_state`]) and `/readyz` is not ready.
    pub fn caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Relaxed)
    }

    /// Notes that the upstream, which knows its own state, reported `commit` (0: it did not
    /// say) while this edge has applied `applied`. Returns true when this made the edge
    /// caught up.
    pub fn note_upstream_commit(&self, commit: u64, applied: u64) -> bool {
        commit > 0 && applied >= commit && !self.caught_up.swap(true, Ordering::Relaxed)
    }

    /// Why this edge cannot yet tell whether a table exists, or `None` once it is caught
    /// up: the reason `/readyz` and a client whose read names a table missing here are given.
    pub fn unknown_state(&self, applied: u64) -> Option<String> {
        if self.caught_up() {
            return None;
        }
        let commit = self.upstream_commit.load(Ordering::Relaxed);
        let heard = if commit > 0 {
            format!("the upstream is at {commit}")
        } else {
            match self.upstream_error() {
                Some(why) => format!("no upstream reached yet: {why}"),
                None => "no upstream reached yet".into(),
            }
        };
        Some(format!(
            "this edge has not caught up with its upstream since it started (applied {applied}; \
             {heard})"
        ))
    }

    /// How far behind the upstream this node is, now that it has applied `applied`.
    pub fn lag(&self, applied: u64) -> Lag {
        lag(
            self.upstream_commit.load(Ordering::Relaxed),
            applied,
            self.last_event_micros.load(Ordering::Relaxed),
            now_micros(),
        )
    }
}

/// A Maintenance.Reset waiting for the tailer: answered once the upstream's state is in
/// place, or with why it is not (for the client).
pub type ResetRequest = tokio::sync::oneshot::Sender<Result<(), String>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edge_is_caught_up_once_it_applied_what_a_knowing_upstream_reported() {
        let state = ReplicationState::default();
        assert!(
            state.unknown_state(5).is_some(),
            "not before hearing anything"
        );
        assert!(
            !state.note_upstream_commit(0, 5),
            "0: the upstream does not know yet"
        );
        state.upstream_commit.store(9, Ordering::Relaxed);
        assert!(!state.note_upstream_commit(9, 5), "behind");
        let why = state.unknown_state(5).expect("still catching up");
        assert!(why.contains("applied 5") && why.contains("at 9"), "{why}");
        assert!(state.note_upstream_commit(9, 9), "caught up now");
        assert!(!state.note_upstream_commit(12, 9), "reported once");
        assert!(
            state.caught_up() && state.unknown_state(9).is_none(),
            "and it stays"
        );
    }
}
