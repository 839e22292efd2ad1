//! Metric names of the core node, once: Raft's view of the node ([`RaftGauges`]) and group
//! proposal ([`ProposalMetrics`]), the segment archive ([`ArchiverMetrics`]), snapshot uploads ([`UploadMetrics`]).

use openraft::{BasicNode, RaftMetrics};
use prometheus::{IntCounter, IntGauge, Registry};
use regatta_api::metrics::{counter, gauge, histogram};

/// Raft's view of the node, refreshed on every change of openraft's metrics.
pub struct RaftGauges {
    term: IntGauge,
    last_log_index: IntGauge,
    applied_index: IntGauge,
    snapshot_index: IntGauge,
    purged_index: IntGauge,
    log_first_index: IntGauge,
    apply_lag: IntGauge,
    is_leader: IntGauge,
    leader_changes: IntCounter,
    last_leader: std::sync::atomic::AtomicU64,
}

impl RaftGauges {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let gauge = |name: &str, help: &str| -> prometheus::Result<IntGauge> {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let leader_changes = IntCounter::new(
            "regatta_raft_leader_changes_total",
            "Times this node saw the leader change",
        )?;
        registry.register(Box::new(leader_changes.clone()))?;
        Ok(Self {
            term: gauge("regatta_raft_term", "Current Raft term")?,
            last_log_index: gauge(
                "regatta_raft_last_log_index",
                "Index of the last entry in the local log",
            )?,
            applied_index: gauge(
                "regatta_raft_applied_index",
                "Index of the last entry applied to the tables",
            )?,
            snapshot_index: gauge(
                "regatta_raft_snapshot_index",
                "Last index covered by the newest snapshot",
            )?,
            purged_index: gauge(
                "regatta_raft_purged_index",
                "Last index Raft has let go of (the local log keeps entries until they are archived: see regatta_log_first_index)",
            )?,
            log_first_index: gauge(
                "regatta_log_first_index",
                "First index still in the local log (0 when it is empty)",
            )?,
            apply_lag: gauge(
                "regatta_raft_apply_lag_entries",
                "Entries in the local log not yet applied",
            )?,
            is_leader: gauge("regatta_raft_is_leader", "1 when this node is the leader")?,
            leader_changes,
            last_leader: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The first index the local log really holds (purges wait for the segment archive, so
    /// it trails `regatta_raft_purged_index`).
    pub fn observe_log(&self, first_index: Option<u64>) {
        self.log_first_index
            .set(i64::try_from(first_index.unwrap_or(0)).unwrap_or(i64::MAX));
    }

    pub fn observe(&self, m: &RaftMetrics<u64, BasicNode>) {
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let last = m.last_log_index.unwrap_or(0);
        let applied = m.last_applied.map_or(0, |l| l.index);
        self.term.set(as_i64(m.current_term));
        self.last_log_index.set(as_i64(last));
        self.applied_index.set(as_i64(applied));
        self.snapshot_index
            .set(as_i64(m.snapshot.map_or(0, |l| l.index)));
        self.purged_index
            .set(as_i64(m.purged.map_or(0, |l| l.index)));
        self.apply_lag.set(as_i64(last.saturating_sub(applied)));
        self.is_leader
            .set(i64::from(m.current_leader == Some(m.id)));
        let leader = m.current_leader.unwrap_or(0);
        let previous = self
            .last_leader
            .swap(leader, std::sync::atomic::Ordering::Relaxed);
        if leader != 0 && leader != previous {
            self.leader_changes.inc();
        }
    }
}

/// What group proposal does on the leader: writes per proposed entry and how long each entry
/// took from proposal to applied (the round every write in it waited for).
pub struct ProposalMetrics {
    writes_per_entry: prometheus::Histogram,
    seconds: prometheus::Histogram,
}

impl ProposalMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let writes_per_entry = histogram(
            registry,
            "regatta_raft_proposal_writes",
            "Data writes (put, delete range, txn) carried by each log entry this node proposed",
            vec![
                1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
            ],
        )?;
        let seconds = histogram(
            registry,
            "regatta_raft_proposal_seconds",
            "Time from proposing an entry to its being committed and applied",
            vec![
                0.000_25, 0.000_5, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256,
                1.0, 5.0,
            ],
        )?;
        Ok(Self {
            writes_per_entry,
            seconds,
        })
    }

    /// One entry of `writes` writes was proposed and answered after `took`.
    pub fn observe(&self, writes: usize, took: std::time::Duration) {
        self.writes_per_entry.observe(writes as f64);
        self.seconds.observe(took.as_secs_f64());
    }
}

/// The archiver's counters, on /metrics.
#[derive(Debug, Clone)]
pub struct ArchiverMetrics {
    pub uploaded: prometheus::IntCounter,
    pub failures: prometheus::IntCounter,
    pub archived_index: prometheus::IntGauge,
    pub deleted: prometheus::IntCounter,
    pub missing: prometheus::IntCounter,
    pub holes: prometheus::IntGauge,
}

impl ArchiverMetrics {
    pub fn register(registry: &prometheus::Registry) -> prometheus::Result<Self> {
        Ok(Self {
            uploaded: counter(
                registry,
                "regatta_archive_segments_uploaded_total",
                "Sealed log segments uploaded to object storage",
            )?,
            failures: counter(
                registry,
                "regatta_archive_failures_total",
                "Segment archive or retention attempts that failed (retried with backoff)",
            )?,
            archived_index: gauge(
                registry,
                "regatta_archive_last_index",
                "Newest log index known to be archived in object storage",
            )?,
            deleted: counter(
                registry,
                "regatta_archive_retention_deleted_total",
                "Snapshots and archived segments deleted by retention",
            )?,
            missing: counter(
                registry,
                "regatta_archive_missing_objects_total",
                "Archived segments and snapshots found missing from object storage",
            )?,
            holes: gauge(
                registry,
                "regatta_archive_holes",
                "Ranges of log indices missing from the archive that no log here holds (recorded under holes/ in the store)",
            )?,
        })
    }
}

/// Snapshot uploads to the object store, on /metrics.
#[derive(Debug, Clone)]
pub struct UploadMetrics {
    pub failures: IntCounter,
    pub uploads: IntCounter,
    /// Unix time of the last successful upload (snapshot age = now − this).
    pub last_upload_time: IntGauge,
    /// Revision of the newest snapshot in the store.
    pub last_upload_revision: IntGauge,
}

impl UploadMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        Ok(Self {
            failures: counter(
                registry,
                "regatta_snapshot_upload_failures_total",
                "Snapshot uploads that failed",
            )?,
            uploads: counter(
                registry,
                "regatta_snapshot_uploads_total",
                "Snapshots uploaded to object storage",
            )?,
            last_upload_time: gauge(
                registry,
                "regatta_snapshot_last_upload_timestamp_seconds",
                "Unix time of the last snapshot uploaded to object storage",
            )?,
            last_upload_revision: gauge(
                registry,
                "regatta_snapshot_last_upload_revision",
                "Revision of the newest snapshot uploaded to object storage",
            )?,
        })
    }
}
