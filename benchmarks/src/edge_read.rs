//! `edge-read`: serializable point reads per second over gRPC at an edge node.
//!
//! Starts a 3-node core and one edge following it (real processes, loopback; see
//! [`crate::edge_cluster`]), creates a table and preloads `--keys` keys of 32 bytes with
//! `--value-size` values through the core leader in Txn batches of `--preload-batch` puts,
//! waits until the edge has applied the last preload revision, then `--in-flight` workers
//! each keep one Range on a single, uniformly random preloaded key in flight at the edge for
//! `--duration` after a `--warm-up`. Every answer is checked: a missing key or a value of the
//! wrong size counts as an error.
//!
//! The load comes from [`crate::raw_grpc`] on one loader thread over one connection by
//! default, so that the loader, which shares the machine's CPUs with the edge, takes as
//! little of them as it can, and the edge runs on one runtime worker, so that the two busy
//! threads fit the two CPUs; `--client tonic`, `--loader-threads`, `--connections` and
//! `--edge-threads` change that.

use std::{
    sync::{Arc, atomic::Ordering::Relaxed},
    time::Duration,
};

use anyhow::{Result, bail};
use bytes::Bytes;
use tokio::time::Instant;

use crate::{
    cluster::{self, Cluster, ClusterArgs, Counters},
    edge_cluster::{self, Edge, round},
    reads::{self, ClientKind, RangeClient, ReadLoad},
    report::Report,
};

/// Settings of the scenario.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Keys preloaded (and read).
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// Size of every value, in bytes.
    #[arg(long, default_value_t = 256)]
    value_size: usize,
    /// Puts per Txn while preloading.
    #[arg(long, default_value_t = 500)]
    preload_batch: u64,
    /// Txns in flight while preloading.
    #[arg(long, default_value_t = 8)]
    preload_concurrency: usize,
    /// Reads in flight at the edge (one worker each).
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
    /// gRPC channels (HTTP/2 connections) to the edge, shared round-robin by the workers.
    /// Few connections carrying many streams each let one system call carry several
    /// requests or answers: 2 connections gave ~45% more reads/s than 8, and with the edge
    /// on one worker 1 connection a lower p99 than 2 (0.81–0.96 against 1.0–1.1 ms).
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// How long to measure, after the warm-up (`20s`, `500ms`, `1m`).
    #[arg(long, default_value = "20s", value_parser = cluster::parse_duration)]
    duration: Duration,
    /// Unmeasured reading before the measurement starts.
    #[arg(long = "warm-up", default_value = "2s", value_parser = cluster::parse_duration)]
    warm_up: Duration,
    /// Deadline of each request.
    #[arg(long, default_value = "10s", value_parser = cluster::parse_duration)]
    timeout: Duration,
    /// Worker threads of the edge's runtime (`--runtime.worker-threads`); 0 leaves the
    /// edge's default (one per CPU). The loader uses the other CPU of a 2-CPU machine.
    #[arg(long, default_value_t = 1)]
    edge_threads: u16,
    /// gRPC client of the load: `raw` (lean, on h2 directly) or `tonic`.
    #[arg(long, value_enum, default_value_t = ClientKind::Raw)]
    client: ClientKind,
}

/// The `i`th preloaded key: 32 bytes.
fn key(i: u64) -> Bytes {
    Bytes::from(format!("key-{i:028}"))
}

pub fn run(mut args: Args) -> Result<()> {
    if args.in_flight == 0 || args.keys == 0 || args.preload_batch == 0 {
        bail!("--in-flight, --keys and --preload-batch must be at least 1");
    }
    // One loader thread unless told otherwise: the edge needs the other CPU, and a loader on
    // one thread spends no CPU on waking its other threads.
    args.cluster.loader_threads.get_or_insert(1);
    // The edge gets the other CPU: one runtime worker unless told otherwise (0 = the edge's
    // default, one per CPU). Two workers beside the loader are three busy threads on two
    // CPUs, and a request held by a descheduled thread waits out its time slice.
    if args.edge_threads > 0 {
        args.cluster
            .edge_args
            .push(format!("--runtime.worker-threads={}", args.edge_threads));
    }
    let report = edge_cluster::run_with_edge(&args.cluster, async |cluster, edge| {
        scenario(&args, cluster, edge).await
    })?;
    // Printed once every process has stopped, so that the JSON object is the last line.
    report.print();
    Ok(())
}

async fn scenario(args: &Args, cluster: &Cluster, edge: &Edge) -> Result<Report> {
    let table = "bench";
    cluster.create_table(table).await?;
    edge.wait_ready(Duration::from_secs(60)).await?;
    let preload_started = Instant::now();
    let value = Bytes::from(vec![b'v'; args.value_size]);
    let revision = edge_cluster::preload(
        cluster.node(cluster.leader())?,
        table,
        args.keys,
        args.preload_batch,
        args.preload_concurrency,
        key,
        move |_| value.clone(),
        args.timeout,
    )
    .await?;
    edge.wait_applied(revision, Duration::from_secs(120))
        .await?;
    let preload_seconds = preload_started.elapsed().as_secs_f64();
    eprintln!(
        "preloaded {} keys in {preload_seconds:.1}s, applied at the edge at revision {revision}",
        args.keys
    );

    let connections = args.connections.min(args.in_flight).max(1);
    eprintln!(
        "{} serializable reads in flight over {} connections to the edge, warm-up {:?}, then {:?}",
        args.in_flight, connections, args.warm_up, args.duration
    );
    let start = Instant::now();
    let measure_from = start + args.warm_up;
    let load = Arc::new(ReadLoad {
        table: Bytes::from(table),
        keys: (0..args.keys).map(key).collect(),
        value_size: args.value_size,
        linearizable: false,
        measure_from,
        end: measure_from + args.duration,
        timeout: args.timeout,
        counters: Counters::default(),
    });
    let pool = RangeClient::pool(args.client, &[edge.api.as_str()], connections).await?;
    let mut workers = tokio::task::JoinSet::new();
    for id in 0..args.in_flight {
        let client = pool[id % pool.len()].clone();
        workers.spawn(reads::worker(id as u64, client, load.clone()));
    }
    let histogram = cluster::drive(cluster, workers, &load.counters, "reads", measure_from).await?;
    let measured = Instant::now().saturating_duration_since(measure_from);
    edge.check_running()?;

    let reads = load.counters.ok.load(Relaxed);
    let errors = load.counters.errors.load(Relaxed);
    if reads == 0 {
        bail!(
            "no read succeeded; first error: {}",
            load.counters.first_error().unwrap_or_else(|| "none".into())
        );
    }
    let mut report = Report::new("edge-read");
    report
        .set("core_nodes", cluster.nodes().len())
        .set("edges", 1)
        .set("consistency", "serializable")
        .set("keys", args.keys)
        .set("value_size", args.value_size)
        .set("in_flight", args.in_flight)
        .set("connections", connections)
        .set("edge_threads", args.edge_threads)
        .set("client", args.client.as_str())
        .set("tls", args.cluster.tls)
        .set("preload_seconds", round(preload_seconds, 2))
        .set("seconds", round(measured.as_secs_f64(), 2))
        .set("reads", reads)
        .set("errors", errors)
        .set(
            "reads_per_sec",
            (reads as f64 / measured.as_secs_f64()).round(),
        );
    cluster::report_latency(&mut report, &histogram);
    if let Some(error) = load.counters.first_error() {
        eprintln!("first error: {error}");
    }
    Ok(report)
}
