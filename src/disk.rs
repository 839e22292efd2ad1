//! The free-space guard: a node refuses writes while the filesystem of its data directory
//! has less free space than a reserve (`--min-free-disk`), so that what it already accepted
//! — Raft's appends, votes, snapshots, an edge's copy of the log — still finds room.
//!
//! Why a guard and not only error handling: openraft 0.9 takes a failed log append as fatal
//! (Raft stops for good), so the log storage waits for space instead of failing (see
//! `regatta_log::raft::store::retry_while_disk_full`); while it waits this node's Raft stands
//! still. The guard keeps that wait the rare race it should be: client writes stop at the
//! reserve with a clear status ([`regatta_api::Error::DiskFull`], `RESOURCE_EXHAUSTED`),
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

/// The flag of every node that writes to a data directory.
#[derive(clap::Args, Debug, Clone)]
pub struct DiskArgs {
    /// Free space the data directory's filesystem must keep: below it, writes are refused
    /// with RESOURCE_EXHAUSTED (reads go on) until space is freed. Bytes, or with a
    /// KiB/MiB/GiB suffix; 0 disables the guard.
    #[arg(
        long = "min-free-disk",
        env = "REGATTA_MIN_FREE_DISK",
        default_value = "64MiB",
        value_parser = parse_bytes
    )]
    pub min_free_disk: u64,
}

/// Parses `123`, `64KiB`, `64MiB`, `1GiB` (also `K`, `M`, `G`, binary multiples).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 67108864 or 64MiB)"))?;
    let shift = match unit.trim() {
        "" | "B" => 0,
        "K" | "KiB" => 10,
        "M" | "MiB" => 20,
        "G" | "GiB" => 30,
        other => return Err(format!("unknown size unit {other:?} (use KiB, MiB or GiB)")),
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

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
    pub fn check(&self) -> regatta_api::Result<()> {
        if self.full.load(Ordering::Relaxed) {
            return Err(regatta_api::Error::DiskFull {
                node_id: self.node_id,
                free: self.free.load(Ordering::Relaxed),
                reserve: self.reserve,
            });
        }
        Ok(())
    }

    /// A line for the node's status, while full.
    pub fn status_error(&self) -> Option<String> {
        self.check().err().map(|e| e.to_string())
    }
}

/// Whether an error (anywhere in its chain) is a full disk.
pub fn is_disk_full(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(regatta_log::error::is_disk_full)
            || cause
                .downcast_ref::<regatta_log::Error>()
                .is_some_and(regatta_log::Error::is_disk_full)
    })
}

/// Runs the blocking `write` until it succeeds or fails for another reason than a full
/// disk, pausing between attempts (doubling from 100 ms to 5 s), logging once when it
/// starts waiting and once when it resumes. For writes that must happen but may wait:
/// snapshot files openraft would otherwise take as a fatal storage error.
pub async fn retry_while_full<T: Send + 'static>(
    what: &'static str,
    write: impl Fn() -> anyhow::Result<T> + Send + Sync + 'static,
) -> anyhow::Result<T> {
    let write = Arc::new(write);
    let mut since: Option<std::time::Instant> = None;
    let mut pause = Duration::from_millis(100);
    loop {
        let attempt = write.clone();
        let outcome = tokio::task::spawn_blocking(move || attempt())
            .await
            .map_err(|e| anyhow::anyhow!("{what}: writer task failed: {e}"))?;
        match outcome {
            Err(e) if is_disk_full(&e) => {
                if since.is_none() {
                    tracing::error!(
                        what,
                        error = format!("{e:#}"),
                        "disk full: waiting for free space to retry"
                    );
                    since = Some(std::time::Instant::now());
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            outcome => {
                if let Some(since) = since
                    && outcome.is_ok()
                {
                    tracing::warn!(what, waited = ?since.elapsed(), "disk has room again: written");
                }
                return outcome;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units_and_reject_the_rest() {
        assert_eq!(parse_bytes("0"), Ok(0));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("2G"), Ok(2 << 30));
        assert_eq!(parse_bytes("8KiB"), Ok(8 << 10));
        assert!(parse_bytes("").is_err());
        assert!(parse_bytes("MiB").is_err());
        assert!(parse_bytes("5 TB").is_err());
        assert!(parse_bytes("99999999999999999999GiB").is_err());
    }

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
