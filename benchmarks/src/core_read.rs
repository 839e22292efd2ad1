//! `core-read`: point reads per second over gRPC on a 3-node core of real processes.
//!
//! Starts the cluster (see [`crate::cluster`]), creates a table and preloads `--keys` keys of
//! 32 bytes with `--value-size` values in Txn batches of `--preload-batch` puts, waits until
//! every node has applied them, then `--in-flight` workers each keep one Range on a single,
//! uniformly random preloaded key in flight for `--duration` after a `--warm-up`. Reads are
//! serializable (served from the node's own applied state) unless `--linearizable`. Every
//! answer is checked: a missing key or a value of the wrong size counts as an error.

use std::{
    sync::{Arc, atomic::Ordering::Relaxed},
    time::Duration,
};

use anyhow::{Result, bail};
use bytes::Bytes;
use tokio::time::Instant;

use crate::{
    cluster::{self, Cluster, ClusterArgs, Counters, Target},
    core_write::describe,
    edge_cluster,
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
    #[arg(long, default_value_t = 100)]
    preload_batch: u64,
    /// Txns in flight while preloading.
    #[arg(long, default_value_t = 16)]
    preload_concurrency: usize,
    /// Reads in flight (one worker each).
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
    /// gRPC channels (HTTP/2 connections) the workers share round-robin. Few connections
    /// let HTTP/2 coalesce many responses per syscall: on 2 cores 4 beat 1, 16 and 64.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Where the reads go: the leader, one follower, or spread over every node.
    #[arg(long, value_enum, default_value_t = Target::Leader)]
    target: Target,
    /// Linearizable reads (read index through the leader) instead of serializable ones.
    #[arg(long)]
    linearizable: bool,
    /// How long to measure, after the warm-up (`20s`, `500ms`, `1m`).
    #[arg(long, default_value = "20s", value_parser = cluster::parse_duration)]
    duration: Duration,
    /// Unmeasured reading before the measurement starts.
    #[arg(long = "warm-up", default_value = "2s", value_parser = cluster::parse_duration)]
    warm_up: Duration,
    /// Deadline of each request.
    #[arg(long, default_value = "10s", value_parser = cluster::parse_duration)]
    timeout: Duration,
    /// gRPC client of the load: `raw` (lean, on h2 directly) or `tonic`.
    #[arg(long, value_enum, default_value_t = ClientKind::Raw)]
    client: ClientKind,
}

/// The `i`th preloaded key: 32 bytes.
fn key(i: u64) -> Bytes {
    Bytes::from(format!("key-{i:028}"))
}

pub fn run(args: Args) -> Result<()> {
    if args.in_flight == 0 || args.keys == 0 || args.preload_batch == 0 {
        bail!("--in-flight, --keys and --preload-batch must be at least 1");
    }
    let report = cluster::run(&args.cluster, 3, async |cluster| {
        scenario(&args, cluster).await
    })?;
    // Printed once every process has stopped, so that the JSON object is the last line.
    report.print();
    Ok(())
}

async fn scenario(args: &Args, cluster: &Cluster) -> Result<Report> {
    let table = "bench";
    cluster.create_table(table).await?;
    let preload_started = Instant::now();
    let revision = preload(args, cluster, table).await?;
    cluster
        .wait_applied(revision, Duration::from_secs(120))
        .await?;
    let preload_seconds = preload_started.elapsed().as_secs_f64();
    eprintln!(
        "preloaded {} keys in {preload_seconds:.1}s ({:.0} keys/s), applied on every node at revision {revision}",
        args.keys,
        args.keys as f64 / preload_seconds
    );

    let targets = cluster.targets(args.target)?;
    let addresses: Vec<&str> = targets.iter().map(|node| node.api.as_str()).collect();
    let pool = RangeClient::pool(
        args.client,
        &addresses,
        args.connections.min(args.in_flight),
    )
    .await?;
    eprintln!(
        "{} reads in flight over {} connections to {} (leader node {}), {}, warm-up {:?}, then {:?}",
        args.in_flight,
        pool.len(),
        describe(&targets),
        cluster.leader(),
        if args.linearizable {
            "linearizable"
        } else {
            "serializable"
        },
        args.warm_up,
        args.duration
    );
    let start = Instant::now();
    let measure_from = start + args.warm_up;
    let load = Arc::new(ReadLoad {
        table: Bytes::from(table),
        keys: (0..args.keys).map(key).collect(),
        value_size: args.value_size,
        linearizable: args.linearizable,
        measure_from,
        end: measure_from + args.duration,
        timeout: args.timeout,
        counters: Counters::default(),
    });
    let mut workers = tokio::task::JoinSet::new();
    for id in 0..args.in_flight {
        let client = pool[id % pool.len()].clone();
        workers.spawn(reads::worker(id as u64, client, load.clone()));
    }
    let histogram = cluster::drive(cluster, workers, &load.counters, "reads", measure_from).await?;
    let measured = Instant::now().saturating_duration_since(measure_from);

    let reads = load.counters.ok.load(Relaxed);
    let errors = load.counters.errors.load(Relaxed);
    if reads == 0 {
        bail!(
            "no read succeeded; first error: {}",
            load.counters.first_error().unwrap_or_else(|| "none".into())
        );
    }
    let mut report = Report::new("core-read");
    report
        .set("target", args.target.as_str())
        .set("nodes", cluster.nodes().len())
        .set(
            "consistency",
            if args.linearizable {
                "linearizable"
            } else {
                "serializable"
            },
        )
        .set("keys", args.keys)
        .set("value_size", args.value_size)
        .set("in_flight", args.in_flight)
        .set("connections", pool.len())
        .set("client", args.client.as_str())
        .set("preload_seconds", (preload_seconds * 100.0).round() / 100.0)
        .set("seconds", (measured.as_secs_f64() * 100.0).round() / 100.0)
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

/// Writes every key through the leader in Txn batches; returns the highest revision.
async fn preload(args: &Args, cluster: &Cluster, table: &str) -> Result<u64> {
    let value = Bytes::from(vec![b'v'; args.value_size]);
    edge_cluster::preload(
        cluster.node(cluster.leader())?,
        table,
        args.keys,
        args.preload_batch,
        args.preload_concurrency,
        key,
        move |_| value.clone(),
        args.timeout,
    )
    .await
}
