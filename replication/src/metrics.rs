//! Every metric this crate exports, in one place: the edge's replication. Label-free but
//! for `regatta_edge_upstream_errors_total{reason}`, whose reasons are the closed set of
//! [`Error::kind`](crate::Error::kind).

use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use regatta_api::metrics::{counter, gauge};

/// The tailer's metrics (`regatta_edge_*`).
#[derive(Clone)]
pub struct EdgeMetrics {
    pub applied: IntGauge,
    pub upstream_commit: IntGauge,
    pub lag_entries: IntGauge,
    pub lag_seconds: Gauge,
    pub bootstraps: IntCounter,
    pub bootstrap_seconds: Gauge,
    pub upstream: IntGauge,
    pub failovers: IntCounter,
    /// Failures to follow an upstream, by [`Error::kind`](crate::Error::kind).
    pub upstream_errors: IntCounterVec,
    pub append_paused: IntGauge,
}

impl EdgeMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let int = |name: &str, help: &str| gauge(registry, name, help);
        let float = |name: &str, help: &str| -> prometheus::Result<Gauge> {
            let g = Gauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let upstream_errors = IntCounterVec::new(
            Opts::new(
                "regatta_edge_upstream_errors_total",
                "Failures to follow an upstream, by reason (tls, connect, refused, silent, stream, protocol, snapshot, local)",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(upstream_errors.clone()))?;
        Ok(Self {
            upstream_errors,
            applied: int(
                "regatta_edge_applied_index",
                "Last log index applied at this edge",
            )?,
            upstream_commit: int(
                "regatta_edge_upstream_commit_index",
                "Upstream's commit index as last heard",
            )?,
            lag_entries: int(
                "regatta_edge_lag_entries",
                "Entries committed upstream and not yet applied here",
            )?,
            lag_seconds: float(
                "regatta_edge_lag_seconds",
                "Age of the newest applied write while behind (0 when caught up)",
            )?,
            bootstraps: counter(
                registry,
                "regatta_edge_bootstraps_total",
                "Snapshot bootstraps",
            )?,
            bootstrap_seconds: float(
                "regatta_edge_last_bootstrap_seconds",
                "Duration of the last bootstrap",
            )?,
            upstream: int(
                "regatta_edge_upstream",
                "Position in --replication.leader-address of the upstream followed",
            )?,
            failovers: counter(
                registry,
                "regatta_edge_upstream_changes_total",
                "Times the edge left an upstream",
            )?,
            append_paused: int(
                "regatta_edge_append_paused",
                "1 while the local log's disk is full and replication waits for space",
            )?,
        })
    }

    /// Sets the applied index.
    pub fn set_applied(&self, applied: u64) {
        self.applied.set(i64::try_from(applied).unwrap_or(i64::MAX));
    }
}
