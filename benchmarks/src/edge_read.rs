//! `edge-read`: serializable point reads per second over gRPC at an edge node.
//!
//! Starts a 3-node core and one edge following it (real processes, loopback; see
//! [`crate::edge_cluster`]), creates a table and preloads `--keys` keys of 32 bytes with
//! `--value-size` values through the core leader in Txn batches of `--preload-batch` puts,
//! waits until the edge has applied the last preload revision, then `--in-flight` workers
//! each keep one Range on a single, uniformly random preloaded key in flight at the edge for
//! `--duration` after a `--warm-up`. Every answer is checked: a missing key or a value of the
//! wrong size counts as an error.

use std::{
    sync::{Arc, atomic::Ordering::Relaxed},
    time::Duration,
};

use anyhow::{Result, bail};
use bytes::Bytes;
use regatta_proto::regatta::v1::{RangeRequest, RangeResponse, kv_client::KvClient};
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::{
    cluster::{self, Cluster, ClusterArgs, Counters, FastRng},
    edge_cluster::{self, Edge, round},
    raw_grpc::{GrpcMethod, RawChannel},
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
    #[arg(long, default_value_t = 8)]
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
    /// gRPC client of the load: `raw` (lean, on h2 directly) or `tonic`.
    #[arg(long, value_enum, default_value_t = Client::Raw)]
    client: Client,
}

/// Which gRPC client drives the load.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// [`crate::raw_grpc`]: ~2× less loader CPU per read, so more CPU is left to the edge.
    Raw,
    /// tonic's generated client, as applications use it.
    Tonic,
}

impl Client {
    pub fn as_str(self) -> &'static str {
        match self {
            Client::Raw => "raw",
            Client::Tonic => "tonic",
        }
    }
}

/// The `i`th preloaded key: 32 bytes.
fn key(i: u64) -> Bytes {
    Bytes::from(format!("key-{i:028}"))
}

/// What every read worker shares.
struct Load {
    table: Bytes,
    keys: Vec<Bytes>,
    value_size: usize,
    measure_from: Instant,
    end: Instant,
    timeout: Duration,
    counters: Counters,
}

pub fn run(args: Args) -> Result<()> {
    if args.in_flight == 0 || args.keys == 0 || args.preload_batch == 0 {
        bail!("--in-flight, --keys and --preload-batch must be at least 1");
    }
    let report = edge_cluster::run_with_scratch(
        &args.cluster,
        |_| Vec::new(),
        async |cluster, scratch| {
            let edge = Edge::follow(&args.cluster, cluster, scratch)?;
            edge_cluster::with_edge_log(&edge, async || scenario(&args, cluster, &edge).await).await
        },
    )?;
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
    let load = Arc::new(Load {
        table: Bytes::from(table),
        keys: (0..args.keys).map(key).collect(),
        value_size: args.value_size,
        measure_from,
        end: measure_from + args.duration,
        timeout: args.timeout,
        counters: Counters::default(),
    });
    let mut workers = tokio::task::JoinSet::new();
    match args.client {
        Client::Tonic => {
            let pool = edge.connect_pool(connections).await?;
            for id in 0..args.in_flight {
                let channel = pool[id % pool.len()].clone();
                workers.spawn(reader(
                    id as u64,
                    Reader::Tonic(KvClient::new(channel)),
                    load.clone(),
                ));
            }
        }
        Client::Raw => {
            let mut pool = Vec::with_capacity(connections);
            for _ in 0..connections {
                pool.push(RawChannel::connect(&edge.api).await?);
            }
            let range = pool[0].method(RANGE)?;
            for id in 0..args.in_flight {
                let channel = pool[id % pool.len()].clone();
                workers.spawn(reader(
                    id as u64,
                    Reader::Raw(channel, range.clone()),
                    load.clone(),
                ));
            }
        }
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
        .set("client", args.client.as_str())
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

const RANGE: &str = "/regatta.v1.KV/Range";

/// The client one read worker calls through.
enum Reader {
    Tonic(KvClient<Channel>),
    Raw(RawChannel, GrpcMethod),
}

impl Reader {
    async fn range(
        &mut self,
        request: RangeRequest,
        timeout: Duration,
    ) -> Result<RangeResponse, String> {
        match self {
            Reader::Tonic(kv) => {
                let mut request = tonic::Request::new(request);
                request.set_timeout(timeout);
                kv.range(request)
                    .await
                    .map(tonic::Response::into_inner)
                    .map_err(|s| s.to_string())
            }
            Reader::Raw(channel, range) => channel
                .unary(range, &request, timeout)
                .await
                .map_err(|e| e.to_string()),
        }
    }
}

/// One read worker: Ranges on random preloaded keys, one at a time, until the load ends.
async fn reader(
    id: u64,
    mut client: Reader,
    load: Arc<Load>,
) -> Result<hdrhistogram::Histogram<u64>> {
    let mut histogram = cluster::latency_histogram()?;
    let mut rng = FastRng::new(id + 1);
    let keys = load.keys.len() as u64;
    loop {
        let started = Instant::now();
        if started >= load.end {
            break;
        }
        let key = load.keys[rng.below(keys) as usize].clone();
        let request = RangeRequest {
            table: load.table.clone(),
            key,
            ..Default::default()
        };
        match client.range(request, load.timeout).await {
            Ok(response) => {
                let found =
                    matches!(response.kvs.as_slice(), [kv] if kv.value.len() == load.value_size);
                if !found {
                    load.counters
                        .record_error(format!("a preloaded key was missing: {response:?}"));
                } else if started >= load.measure_from {
                    histogram.saturating_record(started.elapsed().as_micros() as u64);
                    load.counters.ok.fetch_add(1, Relaxed);
                } else {
                    load.counters.warmup.fetch_add(1, Relaxed);
                }
            }
            Err(status) => {
                load.counters.record_error(&status);
                // A failing edge must not be hammered in a tight loop.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    Ok(histogram)
}
