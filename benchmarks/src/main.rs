//! `regatta-bench`: the load generator and benchmark scenarios of Regatta.
//!
//! Every scenario prints a human-readable table and then, as its last line, one JSON object
//! with the figures, so scripts can pick results up with `tail -n 1`. Settings and figures
//! measured on the project's machines are recorded in `benchmarks/README.md`.

mod abuse;
mod backup;
mod cluster;
mod compare;
mod core_read;
mod core_write;
mod cpu;
mod edge_bootstrap;
mod edge_cluster;
mod edge_read;
mod expiry;
mod failover;
mod log_append;
mod log_read;
mod materializer;
mod nats;
mod noop;
mod peers;
mod plot;
mod raw_grpc;
mod reads;
mod replication_lag;
mod report;
mod tls;
mod watch;
mod wire;

use clap::{Parser, Subcommand};

// The allocator. On the project's VM a TLB miss under nested paging dominates a random
// memory access, and transparent huge pages are `madvise` only, so the allocator must ask
// for them. mimalloc does by default; jemalloc does with `thp:always`; glibc malloc does
// not. Measured side by side in benchmarks/README.md (materializer): with huge pages point
// reads and scans are faster, and mimalloc also left the fewest resident bytes per key.
#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's compiled-in options (`_RJEM_MALLOC_CONF` in the environment overrides them).
/// Exporting the symbol jemalloc reads at start is the one unsafe item here: a
/// NUL-terminated static string, never written.
#[cfg(all(feature = "jemalloc", not(feature = "mimalloc")))]
#[allow(unsafe_code)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static MALLOC_CONF: &[u8; 31] = b"thp:always,metadata_thp:always\0";

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "regatta-bench",
    version,
    about = "Benchmark scenarios for Regatta"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// A well-behaved client's read latency and the node's memory while other clients
    /// misbehave (stalled streams, idle and slowloris connections, many streams).
    Abuse(abuse::Args),
    /// Durable appends to the segmented log from concurrent writers (fsync on).
    LogAppend(log_append::Args),
    /// Sequential read of sealed log segments.
    LogRead(log_read::Args),
    /// The in-memory materializer: point reads, range scans, apply, snapshots, memory.
    Materializer(materializer::Args),
    /// Acknowledged durable writes per second on a 3-node core of real `regatta` processes.
    CoreWrite(core_write::Args),
    /// Serializable point reads per second over gRPC on a 3-node core of real processes.
    CoreRead(core_read::Args),
    /// Serializable point reads per second over gRPC at an edge following a 3-node core.
    EdgeRead(edge_read::Args),
    /// Time from a write's acknowledgment by the core until an edge serves its revision.
    ReplicationLag(replication_lag::Args),
    /// Keys with a TTL all expiring at once: deletes per second and how late each delete
    /// reaches an edge's watcher.
    Expiry(expiry::Args),
    /// Events per second to watchers at an edge, and write-acknowledgment-to-event latency.
    Watch(watch::Args),
    /// How long a 3-node core acknowledges no write after its leader is killed, frozen or
    /// stopped gracefully.
    Failover(failover::Args),
    /// Time from process start to serving for a fresh edge bootstrapping from object storage.
    EdgeBootstrap(edge_bootstrap::Args),
    /// Snapshot upload and restore throughput against S3 (a local moto server) and file://.
    Backup(backup::Args),
    /// Regatta side by side with etcd and Redis: reads, read/write mixes, durable writes.
    Compare(compare::Args),
    /// A gRPC server whose one method does nothing (started by `compare`).
    #[command(hide = true)]
    NoopServer(noop::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.scenario {
        Scenario::Abuse(args) => abuse::run(args),
        Scenario::LogAppend(args) => log_append::run(args),
        Scenario::LogRead(args) => log_read::run(args),
        Scenario::Materializer(args) => materializer::run(args),
        Scenario::CoreWrite(args) => core_write::run(args),
        Scenario::CoreRead(args) => core_read::run(args),
        Scenario::EdgeRead(args) => edge_read::run(args),
        Scenario::ReplicationLag(args) => replication_lag::run(args),
        Scenario::Watch(args) => watch::run(args),
        Scenario::EdgeBootstrap(args) => edge_bootstrap::run(args),
        Scenario::Expiry(args) => expiry::run(args),
        Scenario::Failover(args) => failover::run(args),
        Scenario::Backup(args) => backup::run(args),
        Scenario::Compare(args) => compare::run(args),
        Scenario::NoopServer(args) => noop::run(args),
    }
}
