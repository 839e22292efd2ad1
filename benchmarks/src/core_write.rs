//! `core-write`: acknowledged durable writes per second on a 3-node core of real processes.
//!
//! Starts the cluster (see [`crate::cluster`]), creates a table, then `--clients` concurrent
//! clients, each with one Put in flight, write `--value-size` values to unique 32-byte keys
//! for `--duration` (or until `--count` writes are acknowledged), after a `--warm-up` that
//! is not measured. A write is acknowledged once it is fsync'd on a quorum and applied —
//! the server has no way to turn fsync off. Clients share `--connections` gRPC channels
//! (one HTTP/2 connection each), aimed at the leader or spread over every node (followers
//! forward writes to the leader).

use std::{
    sync::{Arc, atomic::Ordering::Relaxed},
    time::Duration,
};

use anyhow::{Result, bail};
use bytes::Bytes;
use regatta_proto::regatta::v1::{PutRequest, kv_client::KvClient};
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::{
    cluster::{self, Cluster, ClusterArgs, Counters, Target},
    report::Report,
};

/// Settings of the scenario.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Concurrent clients, each with one Put in flight.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// gRPC channels (HTTP/2 connections) the clients share round-robin.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Where the clients send their writes.
    #[arg(long, value_enum, default_value_t = Target::Leader)]
    target: Target,
    /// Size of every value, in bytes.
    #[arg(long, default_value_t = 256)]
    value_size: usize,
    /// How long to measure, after the warm-up (`20s`, `500ms`, `1m`).
    #[arg(long, default_value = "20s", value_parser = cluster::parse_duration)]
    duration: Duration,
    /// Stop after this many measured writes instead (`--duration` then only limits the run).
    #[arg(long)]
    count: Option<u64>,
    /// Unmeasured writing before the measurement starts.
    #[arg(long = "warm-up", default_value = "2s", value_parser = cluster::parse_duration)]
    warm_up: Duration,
    /// Deadline of each write.
    #[arg(long, default_value = "10s", value_parser = cluster::parse_duration)]
    timeout: Duration,
}

/// What every client shares.
struct Load {
    table: Bytes,
    value: Bytes,
    measure_from: Instant,
    end: Instant,
    /// Measured writes claimed so far, when `--count` is set.
    claimed: std::sync::atomic::AtomicU64,
    count: Option<u64>,
    timeout: Duration,
    counters: Counters,
}

pub fn run(args: Args) -> Result<()> {
    if args.clients == 0 {
        bail!("--clients must be at least 1");
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
    let targets = cluster.targets(args.target)?;
    let pool = cluster::connect_pool(&targets, args.connections.min(args.clients)).await?;
    eprintln!(
        "{} clients over {} connections to {} (leader node {}), {} B values, warm-up {:?}, then {}",
        args.clients,
        pool.len(),
        describe(&targets),
        cluster.leader(),
        args.value_size,
        args.warm_up,
        match args.count {
            Some(n) => format!("{n} writes (at most {:?})", args.duration),
            None => format!("{:?}", args.duration),
        }
    );

    let start = Instant::now();
    let measure_from = start + args.warm_up;
    let load = Arc::new(Load {
        table: Bytes::from(table),
        value: Bytes::from(vec![b'v'; args.value_size]),
        measure_from,
        end: measure_from + args.duration,
        claimed: Default::default(),
        count: args.count,
        timeout: args.timeout,
        counters: Counters::default(),
    });
    let mut clients = tokio::task::JoinSet::new();
    for id in 0..args.clients {
        let (_, channel) = &pool[id % pool.len()];
        clients.spawn(client(id, KvClient::new(channel.clone()), load.clone()));
    }
    let histogram =
        cluster::drive(cluster, clients, &load.counters, "writes", measure_from).await?;
    let measured = Instant::now().saturating_duration_since(measure_from);

    let writes = load.counters.ok.load(Relaxed);
    let errors = load.counters.errors.load(Relaxed);
    if writes == 0 {
        bail!(
            "no write was acknowledged; first error: {}",
            load.counters.first_error().unwrap_or_else(|| "none".into())
        );
    }
    let mut report = Report::new("core-write");
    report
        .set("target", args.target.as_str())
        .set("nodes", cluster.nodes().len())
        .set("tls", args.cluster.tls)
        .set("clients", args.clients)
        .set("connections", pool.len())
        .set("value_size", args.value_size)
        .set("fsync", true)
        .set("seconds", (measured.as_secs_f64() * 100.0).round() / 100.0)
        .set("writes", writes)
        .set("errors", errors)
        .set(
            "writes_per_sec",
            (writes as f64 / measured.as_secs_f64()).round(),
        );
    cluster::report_latency(&mut report, &histogram);
    if let Some(error) = load.counters.first_error() {
        eprintln!("first error: {error}");
    }
    Ok(report)
}

/// One client: Puts to its own keys, one at a time, until the load ends.
async fn client(
    id: usize,
    mut kv: KvClient<Channel>,
    load: Arc<Load>,
) -> Result<hdrhistogram::Histogram<u64>> {
    let mut histogram = cluster::latency_histogram()?;
    let mut seq = 0u64;
    loop {
        let started = Instant::now();
        if started >= load.end {
            break;
        }
        let measured = started >= load.measure_from;
        if measured
            && let Some(count) = load.count
            && load.claimed.fetch_add(1, Relaxed) >= count
        {
            break;
        }
        // 32 bytes: "w" + client + "-" + sequence.
        let key = format!("w{id:04}-{seq:026}");
        seq += 1;
        let mut request = tonic::Request::new(PutRequest {
            table: load.table.clone(),
            key: Bytes::from(key),
            value: load.value.clone(),
            prev_kv: false,
            ttl_millis: 0,
        });
        request.set_timeout(load.timeout);
        match kv.put(request).await {
            Ok(_) => load
                .counters
                .record_ok(&mut histogram, started, load.measure_from),
            Err(status) => {
                load.counters.record_error(&status);
                if measured && load.count.is_some() {
                    // The claimed write did not happen: let another attempt take its place.
                    load.claimed.fetch_sub(1, Relaxed);
                }
                cluster::back_off().await;
            }
        }
    }
    Ok(histogram)
}

/// `node 2 (leader)` or `nodes 1, 2, 3`.
pub fn describe(targets: &[&cluster::Node]) -> String {
    match targets {
        [one] => format!("node {}", one.id),
        many => format!(
            "nodes {}",
            many.iter()
                .map(|n| n.id.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
