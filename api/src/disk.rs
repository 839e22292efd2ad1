//! The free-space guard: a node refuses writes while the filesystem of its data directory
//! has less free space than a reserve (`--min-free-disk`), so that what it already accepted
//! — Raft's appends, votes, snapshots, an edge's copy of the log — still finds room.
//!
//! Why a guard and not only error handling: openraft 0.9 takes a failed log append as fatal
//! (Raft stops for good), so the log storage waits for space instead of failing (see
//! `regatta_log::raft::store::retry_while_disk_full`); while it waits this node's Raft stands
//! still. The guard keeps that wait the rare race it should be: client writes stop at the
//! reserve with a clear status ([`crate::Error::DiskFull`], `RESOURCE_EXHAUSTED`),
//! reads go on, and writes are taken again as soon as a refresh sees room. The reasoning is
//! in `docs/operations.md`, "A full disk".
//!
//! Free space is read with `statvfs` (the space available to unprivileged users, as `df`
//! shows it) of every directory the node writes, the least of them counting, refreshed
//! every [`REFRESH`] by a background task: a write pays one atomic load.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use prometheus::{IntGauge, Registry};
use tokio_util::sync::CancellationToken;

/// How often free space is read.
pub const REFRESH: Duration = Duration::from_millis(250);

/// Whether the node takes writes, as far as its disk goes.
#[derive(Debug)]
pub struct DiskGuard {
    node_id: u64,
    dirs: Vec<PathBuf>,
    reserve: u64,
    free: AtomicU64,
    full: AtomicBool,
    free_gauge: IntGauge,
    full_gauge: IntGauge,
}

/// The decision, apart from the I/O: below the reserve is full; a reserve of 0 disables
/// the guard.
pub fn is_full(free: u64, reserve: u64) -> bool {
    reserve > 0 && free < reserve
}

impl DiskGuard {
    /// A guard over `dirs` (which must exist), reading their free space once now.
    pub fn new(
        node_id: u64,
        dirs: Vec<PathBuf>,
        reserve: u64,
        registry: &Registry,
    ) -> prometheus::Result<Arc<Self>> {
        let guard = Arc::new(Self {
            node_id,
            dirs,
            reserve,
            free: AtomicU64::new(u64::MAX),
            full: AtomicBool::new(false),
            free_gauge: crate::metrics::gauge(
                registry,
                "regatta_disk_free_bytes",
                "Free bytes on the filesystem of the data directory (the least of its directories)",
            )?,
            full_gauge: crate::metrics::gauge(
                registry,
                "regatta_disk_full",
                "1 while free space is below --min-free-disk and writes are refused",
            )?,
        });
        guard.refresh();
        Ok(guard)
    }

    /// Reads free space now and updates the decision, logging a change.
    pub fn refresh(&self) {
        let mut free = u64::MAX;
        for dir in &self.dirs {
            match rustix::fs::statvfs(dir) {
                Ok(st) => free = free.min(st.f_bavail.saturating_mul(st.f_frsize)),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot read free disk space")
                }
            }
        }
        if free == u64::MAX {
            return; // nothing readable: keep the last decision
        }
        self.free.store(free, Ordering::Relaxed);
        self.free_gauge.set(i64::try_from(free).unwrap_or(i64::MAX));
        let full = is_full(free, self.reserve);
        self.full_gauge.set(i64::from(full));
        let was = self.full.swap(full, Ordering::Relaxed);
        if full && !was {
            tracing::error!(
                free,
                reserve = self.reserve,
                "disk full: refusing writes until space is freed (reads go on)"
            );
        } else if was && !full {
            tracing::warn!(
                free,
                reserve = self.reserve,
                "disk has room again: taking writes"
            );
        }
    }

    /// Refreshes every [`REFRESH`] until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(REFRESH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.refresh(),
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// `Err(DiskFull)` while free space is below the reserve.
    pub fn check(&self) -> crate::Result<()> {
        if self.full.load(Ordering::Relaxed) {
            return Err(crate::Error::DiskFull {
                node_id: self.node_id,
                free: self.free.load(Ordering::Relaxed),
                reserve: self.reserve,
            });
        }
        Ok(())
    }

    /// Whether free space was below the reserve at the last refresh (what [`Self::check`]
    /// refuses on).
    pub fn is_full(&self) -> bool {
        self.full.load(Ordering::Relaxed)
    }

    /// A line for the node's status, while full.
    pub fn status_error(&self) -> Option<String> {
        self.check().err().map(|e| e.to_string())
    }
}

/// Whether an error, or any error in its chain of sources, is a full disk.
pub fn is_disk_full(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<std::io::Error>()
            .is_some_and(regatta_log::error::is_disk_full)
            || c.downcast_ref::<regatta_log::Error>()
                .is_some_and(regatta_log::Error::is_disk_full)
        {
            return true;
        }
        cause = c.source();
    }
    false
}

/// Runs the blocking `write` until it succeeds or fails for another reason than a full
/// disk, pausing between attempts (doubling from 100 ms to 5 s), logging once when it
/// starts waiting and once when it resumes. For writes that must happen but may wait:
/// snapshot files openraft would otherwise take as a fatal storage error. `full` tells a
/// full disk from other failures (e.g. [`is_disk_full`] on the error). `Err(None)` means the
/// writer task itself failed (panicked or was cancelled).
pub async fn retry_while_full<T, E>(
    what: &'static str,
    write: impl Fn() -> Result<T, E> + Send + Sync + 'static,
    full: impl Fn(&E) -> bool,
) -> Result<T, Option<E>>
where
    T: Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let write = Arc::new(write);
    let mut since: Option<std::time::Instant> = None;
    let mut pause = Duration::from_millis(100);
    loop {
        let attempt = write.clone();
        let outcome = match tokio::task::spawn_blocking(move || attempt()).await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::error!(what, error = %e, "writer task failed");
                return Err(None);
            }
        };
        match outcome {
            Err(e) if full(&e) => {
                if since.is_none() {
                    tracing::error!(what, error = %e, "disk full: waiting for free space to retry");
                    since = Some(std::time::Instant::now());
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(Some(e)),
            Ok(value) => {
                if let Some(since) = since {
                    tracing::warn!(what, waited = ?since.elapsed(), "disk has room again: written");
                }
                return Ok(value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_below_the_reserve_and_never_with_a_zero_reserve() {
        assert!(is_full(10, 11));
        assert!(!is_full(11, 11));
        assert!(!is_full(0, 0), "0 disables the guard");
    }

    #[test]
    fn a_guard_over_a_real_directory_reads_its_space() {
        let dir = tempfile::tempdir().expect("tempdir");
        let registry = Registry::new();
        let roomy = DiskGuard::new(7, vec![dir.path().to_path_buf()], 1, &registry).expect("guard");
        assert!(roomy.check().is_ok());
        let registry = Registry::new();
        let greedy =
            DiskGuard::new(7, vec![dir.path().to_path_buf()], u64::MAX, &registry).expect("guard");
        let status: tonic::Status = greedy.check().expect_err("full").into();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(
            status.message().contains("disk of node 7 is full"),
            "{}",
            status.message()
        );
    }
}
