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
