//! Metrics of the process as a whole (the process collector, the runtime, the local log's
//! fsyncs). The API crate exports request metrics, `regatta-core` the core node's
//! (`regatta_core::metrics`). docs/metrics.md lists them all, with the Regatta series each
//! one stands for.

use prometheus::Registry;
use regatta_api::metrics::{gauge, histogram};

/// Registers the standard process collector: `process_cpu_seconds_total`,
/// `process_resident_memory_bytes`, `process_virtual_memory_bytes`, `process_open_fds`,
/// `process_max_fds`, `process_start_time_seconds` and `process_threads`, read from `/proc`
/// at every scrape. Linux only: elsewhere there is no such collector and nothing is
/// registered.
pub fn process(registry: &Registry) -> prometheus::Result<()> {
    #[cfg(target_os = "linux")]
    registry.register(Box::new(
        prometheus::process_collector::ProcessCollector::for_self(),
    ))?;
    #[cfg(not(target_os = "linux"))]
    let _ = registry;
    Ok(())
}

/// Registers `regatta_runtime_worker_threads`, set once to the worker threads of the runtime
/// this is called on (`--runtime.worker-threads`, or one per CPU).
pub fn runtime_workers(registry: &Registry) -> prometheus::Result<()> {
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    gauge(
        registry,
        "regatta_runtime_worker_threads",
        "Worker threads of the node's async runtime (--runtime.worker-threads)",
    )?
    .set(i64::try_from(workers).unwrap_or(i64::MAX));
    Ok(())
}

/// Registers `regatta_log_fsync_seconds`, a histogram of the local log's data fsyncs, and
/// returns the observer the log calls after each one.
pub fn fsync_observer(registry: &Registry) -> prometheus::Result<regatta_log::SyncObserver> {
    let histogram = histogram(
        registry,
        "regatta_log_fsync_seconds",
        "Duration of each fsync of the local log (one fsync covers a whole group commit)",
        vec![
            0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128,
            0.256, 1.0,
        ],
    )?;
    Ok(regatta_log::SyncObserver(std::sync::Arc::new(
        move |took: std::time::Duration| histogram.observe(took.as_secs_f64()),
    )))
}

/// Regatta's own per-table series, from this node's state at every scrape, for the
/// dashboards and alerts written for Regatta:
///
/// - `regatta_applied_index{table,shard_id}`: the index this node has applied, for every
///   table (`shard_id` is the table's id, as in response headers);
/// - `regatta_replication_index{role,table}`: on a core node `role="leader"`, the index it
///   has applied (what edges replicate from); on an edge `role="leader"`, the upstream's
///   commit index as last seen, and `role="follower"`, the index the edge has applied.
///
/// All tables live in one log here, so every table shows the same index, an index of that
/// log (Regatta counts each table's own Raft log). Differences such as
/// `leader - follower` (replication lag in entries) keep their meaning. The `table` label
/// takes the names of the tables the operator created, as in Regatta: a set that changes
/// only through table creation and deletion, never through keys or requests.
pub fn regatta_table_series(
    registry: &Registry,
    materializer: std::sync::Arc<regatta_materializer::Materializer>,
    role: std::sync::Arc<dyn regatta_api::node::Role>,
) -> prometheus::Result<()> {
    let applied = prometheus::GaugeVec::new(
        prometheus::Opts::new("regatta_applied_index", "Regatta table applied index"),
        &["table", "shard_id"],
    )?;
    let replication = prometheus::GaugeVec::new(
        prometheus::Opts::new("regatta_replication_index", "Regatta replication index"),
        &["role", "table"],
    )?;
    registry.register(Box::new(TableSeries {
        materializer,
        role,
        applied,
        replication,
        collecting: std::sync::Mutex::new(()),
    }))
}

/// See [`regatta_table_series`].
struct TableSeries {
    materializer: std::sync::Arc<regatta_materializer::Materializer>,
    role: std::sync::Arc<dyn regatta_api::node::Role>,
    applied: prometheus::GaugeVec,
    replication: prometheus::GaugeVec,
    /// One scrape at a time: each one rebuilds the series from the current tables.
    collecting: std::sync::Mutex<()>,
}

impl prometheus::core::Collector for TableSeries {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        let mut descs = self.applied.desc();
        descs.extend(self.replication.desc());
        descs
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        use regatta_api::node::NodeKind;
        let _one_at_a_time = self
            .collecting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let applied = self.materializer.applied().0 as f64;
        let kind = self.role.kind();
        let upstream = match kind {
            NodeKind::Core => applied,
            NodeKind::Edge => self.role.status().commit_index as f64,
        };
        // Rebuilt from scratch: a deleted table's series go away.
        self.applied.reset();
        self.replication.reset();
        let view = self.materializer.view();
        for (name, table) in view.tables() {
            let shard = table.id().0.to_string();
            self.applied
                .with_label_values(&[name.as_str(), &shard])
                .set(applied);
            self.replication
                .with_label_values(&["leader", name.as_str()])
                .set(upstream);
            if kind == NodeKind::Edge {
                self.replication
                    .with_label_values(&["follower", name.as_str()])
                    .set(applied);
            }
        }
        let mut families = self.applied.collect();
        families.extend(self.replication.collect());
        families
    }
}
