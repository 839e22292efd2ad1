//! Helpers for tests of this crate and the crates above it.

use std::sync::{Arc, Condvar, Mutex, PoisonError};

use crate::SyncObserver;

/// Holds every fsync round of a log at its end — after the fsync, before the durable pointer
/// moves — while closed, so "written but not durable" lasts as long as a test wants. Pass
/// [`RoundGate::observer`] as the log's `Options::on_sync`. Starts open.
#[derive(Clone, Debug)]
pub struct RoundGate(Arc<(Mutex<bool>, Condvar)>);

impl Default for RoundGate {
    fn default() -> Self {
        Self(Arc::new((Mutex::new(true), Condvar::new())))
    }
}

impl RoundGate {
    /// Closes (rounds that reach the gate wait) or opens it (they go on).
    pub fn set_open(&self, open: bool) {
        *self.0.0.lock().unwrap_or_else(PoisonError::into_inner) = open;
        self.0.1.notify_all();
    }

    /// The sync observer that waits at the gate.
    pub fn observer(&self) -> SyncObserver {
        let gate = self.clone();
        SyncObserver(Arc::new(move |_| {
            let (open, changed) = &*gate.0;
            let mut open = open.lock().unwrap_or_else(PoisonError::into_inner);
            while !*open {
                open = changed.wait(open).unwrap_or_else(PoisonError::into_inner);
            }
        }))
    }
}
