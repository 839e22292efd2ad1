//! `compare`: Regatta side by side with etcd, Redis and NATS JetStream KV, in one run on one
//! machine.
//!
//! Starts a 3-node Regatta core and one edge (real processes, see [`crate::edge_cluster`]), a
//! 3-member etcd cluster, one Redis server, a 3-node NATS cluster with an R3 KV bucket (see
//! [`crate::nats`]) and the no-op gRPC server of [`crate::noop`] (see [`crate::peers`]), all
//! on loopback ports. Loads the same dataset into each store (`--keys`
//! keys of 32 bytes with `--value-size` values) before measuring, then runs every workload at
//! every concurrency against every system, one cell after the other, each with a warm-up and
//! `--duration` of measurement. Systems alternate within one concurrency so that they see the
//! same machine weather.
//!
//! | workload | Regatta | etcd | Redis | NATS | no-op |
//! |---|---|---|---|---|---|
//! | `read` | Range at the edge (serializable) | serializable Range, members round-robin | GET | KV get (direct get), nodes round-robin | empty unary call |
//! | `mix95`, `mix99` | reads at the edge, Puts to the core leader | reads round-robin, Puts to the leader | GET / SET | gets round-robin, puts to the stream leader | — |
//! | `write` | Put to the core leader | Put to the leader | SET (`appendfsync always`) | KV put to the stream leader | — |
//!
//! Writes overwrite random preloaded keys with values of the same size, so every read still
//! finds its key and checks the value's size (a miss counts as an error). A write is
//! acknowledged by Regatta and etcd once it is fsync'd on a quorum; by NATS once a quorum of
//! its three replicas stored it, each fsync'ing every write (`sync_interval: always`); by
//! Redis once it is in its AOF, fsync'd, on its one node.
//!
//! The table gives operations per second and p50/p99/p999 latency per cell, the CPU the
//! system's servers spent per operation (all of its processes: Regatta's three core nodes and
//! its edge, etcd's and NATS's three members; see [`crate::cpu`]) and the load generator's
//! own, and every figure of Regatta as a ratio to each peer from the same run; the last line
//! is one JSON object with the cells and the ratios. Where every core is busy, throughput
//! follows CPU per operation — servers' and load generator's together, as they share the
//! machine. With `--plots DIR` the PNGs of [`crate::plot`] are written.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, atomic::Ordering::Relaxed},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use async_nats::jetstream::kv::Store as NatsStore;
use bytes::Bytes;
use regatta_proto::regatta::v1::{PutRequest, RangeRequest, kv_client::KvClient};
use serde_json::{Value, json};
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::{
    cluster::{self, Cluster, ClusterArgs, Counters, FastRng},
    cpu::{self, Usage},
    edge_cluster::{self, Edge, round},
    nats::{self, Nats},
    peers::{self, Etcd, NoopServer, Redis},
    wire::{
        etcd::{self as etcdpb, kv_client::KvClient as EtcdKvClient},
        noop::{Nothing, noop_client::NoopClient},
    },
};

/// A workload: which fraction of the operations are writes.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Workload {
    /// Point reads only.
    Read,
    /// 95% point reads, 5% writes.
    Mix95,
    /// 99% point reads, 1% writes.
    Mix99,
    /// Durable writes only.
    Write,
}

impl Workload {
    pub fn as_str(self) -> &'static str {
        match self {
            Workload::Read => "read",
            Workload::Mix95 => "mix95",
            Workload::Mix99 => "mix99",
            Workload::Write => "write",
        }
    }

    /// Writes per 10,000 operations.
    fn writes_per_10k(self) -> u64 {
        match self {
            Workload::Read => 0,
            Workload::Mix95 => 500,
            Workload::Mix99 => 100,
            Workload::Write => 10_000,
        }
    }
}

/// A system under test.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum System {
    Regatta,
    Etcd,
    Redis,
    /// NATS JetStream KV.
    Nats,
    /// The empty gRPC call (read workload only).
    Noop,
}

impl System {
    pub fn as_str(self) -> &'static str {
        match self {
            System::Regatta => "regatta",
            System::Etcd => "etcd",
            System::Redis => "redis",
            System::Nats => "nats",
            System::Noop => "noop",
        }
    }

    /// Whether the system takes part in `workload`.
    fn runs(self, workload: Workload) -> bool {
        self != System::Noop || workload == Workload::Read
    }
}

/// Settings of the scenario.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Workloads to run, in this order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "read,mix95,mix99,write"
    )]
    workloads: Vec<Workload>,
    /// Operations in flight (one client task each), for every workload.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64,256")]
    concurrency: Vec<usize>,
    /// Systems to measure (Regatta always runs: every ratio is Regatta's).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "regatta,etcd,redis,nats,noop"
    )]
    systems: Vec<System>,
    /// Keys preloaded into every store (and read).
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// Size of every value, in bytes.
    #[arg(long, default_value_t = 256)]
    value_size: usize,
    /// gRPC channels (HTTP/2 connections) per system and direction, shared round-robin by the
    /// clients; also the number of multiplexed Redis connections and of NATS connections per
    /// direction (reads over the nodes, writes to the stream leader).
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Times every cell is measured: each round measures every workload, concurrency and
    /// system once, the systems in reverse order every other round (so that no system is
    /// always first after a change of load). Ratios are the medians of the rounds' ratios:
    /// on a noisy machine, several rounds of one run compare better than several runs.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    /// Measured time per cell (workload × system × concurrency), after the warm-up.
    #[arg(long, default_value = "3s", value_parser = cluster::parse_duration)]
    duration: Duration,
    /// Unmeasured load before each cell's measurement.
    #[arg(long = "warm-up", default_value = "1s", value_parser = cluster::parse_duration)]
    warm_up: Duration,
    /// Deadline of each request.
    #[arg(long, default_value = "10s", value_parser = cluster::parse_duration)]
    timeout: Duration,
    /// The etcd binary (default: `etcd` on PATH).
    #[arg(long)]
    etcd_bin: Option<PathBuf>,
    /// The Redis server binary (default: `redis-server` on PATH).
    #[arg(long = "redis-server-bin")]
    redis_bin: Option<PathBuf>,
    /// The NATS server binary (default: `nats-server` on PATH); it must accept
    /// `sync_interval: always` (2.14 from `setup-peers` does; Debian's 2.9 does not).
    #[arg(long = "nats-bin", alias = "nats-server-bin")]
    nats_bin: Option<PathBuf>,
    /// Write PNG plots of the results into this directory (e.g. `benchmarks/results`).
    #[arg(long)]
    plots: Option<PathBuf>,
}

/// The `i`th preloaded key: 32 bytes.
fn key(i: u64) -> Bytes {
    Bytes::from(format!("key-{i:028}"))
}

/// The measured figures of one cell.
#[derive(Debug, Clone)]
pub struct Cell {
    /// The round it was measured in, from 0 (see `--rounds`).
    pub round: u32,
    pub workload: Workload,
    pub system: System,
    pub concurrency: usize,
    pub ops_per_sec: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub errors: u64,
    /// The CPU the system's servers and the load generator used while measuring (None
    /// where `/proc` could not be read).
    pub cpu: Option<Usage>,
}

impl Cell {
    /// CPU µs the system's servers spent per operation.
    pub fn server_us_per_op(&self) -> Option<f64> {
        self.cpu.map(|c| per_op(c.servers, self.ops_per_sec))
    }

    /// CPU µs the load generator spent per operation.
    pub fn loader_us_per_op(&self) -> Option<f64> {
        self.cpu.map(|c| per_op(c.loader, self.ops_per_sec))
    }

    fn to_json(&self) -> Value {
        json!({
            "round": self.round,
            "workload": self.workload.as_str(),
            "system": self.system.as_str(),
            "concurrency": self.concurrency,
            "ops_per_sec": self.ops_per_sec.round(),
            "p50_us": self.p50_us,
            "p99_us": self.p99_us,
            "p999_us": self.p999_us,
            "errors": self.errors,
            "server_cpu_cores": self.cpu.map(|c| round(c.servers, 3)),
            "loader_cpu_cores": self.cpu.map(|c| round(c.loader, 3)),
            "server_cpu_us_per_op": self.server_us_per_op().map(|v| round(v, 1)),
            "loader_cpu_us_per_op": self.loader_us_per_op().map(|v| round(v, 1)),
        })
    }
}

/// CPU µs per operation from CPU seconds per second and operations per second.
fn per_op(cores: f64, ops_per_sec: f64) -> f64 {
    if ops_per_sec > 0.0 {
        cores * 1e6 / ops_per_sec
    } else {
        f64::NAN
    }
}

/// Everything the run measured, printed after every process has stopped.
pub struct Outcome {
    pub cells: Vec<Cell>,
    pub settings: Value,
}

pub fn run(args: Args) -> Result<()> {
    if args.concurrency.contains(&0) || args.keys == 0 || args.connections == 0 {
        bail!("--concurrency values, --keys and --connections must be at least 1");
    }
    if args.plots.is_some() && args.rounds > 1 {
        bail!("--plots draws one round's cells: give --rounds 1 with it");
    }
    let want = |s: System| args.systems.contains(&s);
    // Missing peers are reported before anything starts.
    let etcd_bin = want(System::Etcd)
        .then(|| peers::binary(args.etcd_bin.as_deref(), "etcd"))
        .transpose()?;
    let redis_bin = want(System::Redis)
        .then(|| peers::binary(args.redis_bin.as_deref(), "redis-server"))
        .transpose()?;
    let nats_bin = want(System::Nats)
        .then(|| {
            let bin = peers::binary(args.nats_bin.as_deref(), "nats-server")?;
            Nats::check_binary(&bin)?;
            anyhow::Ok(bin)
        })
        .transpose()?;
    let outcome = edge_cluster::run_with_scratch(
        &args.cluster,
        |_| Vec::new(),
        async |cluster, scratch| {
            let edge = Edge::follow(&args.cluster, cluster, scratch)?;
            let mut etcd = etcd_bin
                .as_deref()
                .map(|bin| Etcd::start(bin, scratch, 3))
                .transpose()?;
            let redis = redis_bin
                .as_deref()
                .map(|bin| Redis::start(bin, scratch))
                .transpose()?;
            let mut nats = nats_bin
                .as_deref()
                .map(|bin| Nats::start(bin, scratch, 3))
                .transpose()?;
            let noop = want(System::Noop)
                .then(|| NoopServer::start(scratch))
                .transpose()?;
            if let Some(etcd) = etcd.as_mut() {
                etcd.wait_ready().await?;
            }
            if let Some(redis) = &redis {
                redis.wait_ready().await?;
            }
            if let Some(nats) = nats.as_mut() {
                nats.wait_ready(Duration::from_secs(60)).await?;
                nats.create_bucket(Duration::from_secs(60)).await?;
            }
            if let Some(noop) = &noop {
                noop.wait_ready().await?;
            }
            let systems = Systems {
                cluster,
                edge: &edge,
                etcd: etcd.as_ref(),
                redis: redis.as_ref(),
                nats: nats.as_ref(),
                noop: noop.as_ref(),
            };
            edge_cluster::with_edge_log(&edge, async || scenario(&args, &systems).await).await
            // `etcd`, `redis`, `nats` and `noop` are dropped (stopped) here, before the core.
        },
    )?;
    let mut settings = outcome.settings;
    settings["etcd_version"] = json!(etcd_bin.as_deref().map(Etcd::version));
    settings["redis_version"] = json!(redis_bin.as_deref().map(Redis::version));
    settings["nats_version"] = json!(nats_bin.as_deref().map(Nats::version));
    if nats_bin.is_some() {
        settings["nats_durability"] = json!(nats::DURABILITY);
        settings["nats_reads"] = json!(nats::READS);
    }
    print_table(&outcome.cells);
    if let Some(dir) = &args.plots {
        crate::plot::write_all(dir, &outcome.cells)?;
        eprintln!("plots written to {}", dir.display());
    }
    // The JSON object is the last line.
    let json = json!({
        "scenario": "compare",
        "settings": settings,
        "ratios": ratios_json(&outcome.cells),
        "cells": outcome.cells.iter().map(Cell::to_json).collect::<Vec<_>>(),
    });
    println!("{json}");
    Ok(())
}

/// The running systems.
struct Systems<'a> {
    cluster: &'a Cluster,
    edge: &'a Edge,
    etcd: Option<&'a Etcd>,
    redis: Option<&'a Redis>,
    nats: Option<&'a Nats>,
    noop: Option<&'a NoopServer>,
}

impl Systems<'_> {
    fn check_running(&self) -> Result<()> {
        self.cluster.check_running()?;
        self.edge.check_running()?;
        if let Some(etcd) = self.etcd {
            etcd.check_running()?;
        }
        if let Some(redis) = self.redis {
            redis.check_running()?;
        }
        if let Some(nats) = self.nats {
            nats.check_running()?;
        }
        if let Some(noop) = self.noop {
            noop.check_running()?;
        }
        Ok(())
    }

    /// The process ids of `system`'s servers: for Regatta the core nodes and the edge
    /// (every write is applied at both).
    fn server_pids(&self, system: System) -> Vec<u32> {
        match system {
            System::Regatta => self
                .cluster
                .nodes()
                .iter()
                .filter_map(|n| n.pid())
                .chain(self.edge.pid())
                .collect(),
            System::Etcd => self.etcd.map(Etcd::pids).unwrap_or_default(),
            System::Redis => self.redis.map(Redis::pids).unwrap_or_default(),
            System::Nats => self.nats.map(Nats::pids).unwrap_or_default(),
            System::Noop => self.noop.map(NoopServer::pids).unwrap_or_default(),
        }
    }
}

async fn scenario(args: &Args, systems: &Systems<'_>) -> Result<Outcome> {
    let value = Bytes::from(vec![b'v'; args.value_size]);
    let write_value = Bytes::from(vec![b'w'; args.value_size]);
    let keys: Arc<Vec<Bytes>> = Arc::new((0..args.keys).map(key).collect());

    // Load the same dataset everywhere.
    let table = "bench";
    systems.cluster.create_table(table).await?;
    systems.edge.wait_ready(Duration::from_secs(60)).await?;
    let started = Instant::now();
    let revision = edge_cluster::preload(
        systems.cluster.node(systems.cluster.leader())?,
        table,
        args.keys,
        500,
        8,
        key,
        {
            let value = value.clone();
            move |_| value.clone()
        },
        args.timeout,
    )
    .await?;
    systems
        .edge
        .wait_applied(revision, Duration::from_secs(120))
        .await?;
    eprintln!(
        "regatta: {} keys loaded and applied at the edge in {:.1}s",
        args.keys,
        started.elapsed().as_secs_f64()
    );
    if let Some(etcd) = systems.etcd {
        let started = Instant::now();
        preload_etcd(etcd, &keys, &value, args.timeout).await?;
        eprintln!(
            "etcd: {} keys loaded in {:.1}s",
            args.keys,
            started.elapsed().as_secs_f64()
        );
    }
    if let Some(redis) = systems.redis {
        let started = Instant::now();
        preload_redis(redis, &keys, &value).await?;
        eprintln!(
            "redis: {} keys loaded in {:.1}s",
            args.keys,
            started.elapsed().as_secs_f64()
        );
    }
    if let Some(nats) = systems.nats {
        let started = Instant::now();
        nats.preload(&keys, &value, args.timeout).await?;
        eprintln!(
            "nats: {} keys loaded in {:.1}s",
            args.keys,
            started.elapsed().as_secs_f64()
        );
    }

    // One client pool per system, reused by every cell.
    let pools = Pools::connect(args, systems, table).await?;
    let mut cells = Vec::new();
    let mut order: Vec<System> = args.systems.clone();
    order.sort();
    order.dedup();
    if !order.contains(&System::Regatta) {
        order.insert(0, System::Regatta);
    }
    for round in 0..args.rounds {
        let systems_in_turn: Vec<System> = if round % 2 == 0 {
            order.clone()
        } else {
            order.iter().rev().copied().collect()
        };
        for &workload in &args.workloads {
            for &concurrency in &args.concurrency {
                for &system in systems_in_turn.iter().filter(|s| s.runs(workload)) {
                    let clients = pools.clients(system, concurrency)?;
                    let load = Arc::new(Load {
                        keys: keys.clone(),
                        value_size: args.value_size,
                        write_value: write_value.clone(),
                        writes_per_10k: workload.writes_per_10k(),
                        timeout: args.timeout,
                        measure_from: Instant::now() + args.warm_up,
                        end: Instant::now() + args.warm_up + args.duration,
                        counters: Counters::default(),
                    });
                    let pids = systems.server_pids(system);
                    let cell = measure(round, workload, system, clients, load, pids).await?;
                    eprintln!(
                        "{}{:<6} {:<8} {:>4} in flight: {:>9.0} ops/s  p50 {:>6} µs  p99 {:>7} µs  p999 {:>7} µs{}{}",
                        if args.rounds > 1 {
                            format!("round {round}: ")
                        } else {
                            String::new()
                        },
                        workload.as_str(),
                        system.as_str(),
                        concurrency,
                        cell.ops_per_sec,
                        cell.p50_us,
                        cell.p99_us,
                        cell.p999_us,
                        cell.cpu.map_or_else(String::new, |c| format!(
                            "  CPU: servers {:.2} cores ({:.0} µs/op), loader {:.2} ({:.0} µs/op)",
                            c.servers,
                            per_op(c.servers, cell.ops_per_sec),
                            c.loader,
                            per_op(c.loader, cell.ops_per_sec),
                        )),
                        if cell.errors > 0 {
                            format!("  errors {}", cell.errors)
                        } else {
                            String::new()
                        }
                    );
                    cells.push(cell);
                    systems.check_running()?;
                }
            }
        }
    }
    let settings = json!({
        "rounds": args.rounds,
        "keys": args.keys,
        "key_size": 32,
        "value_size": args.value_size,
        "connections": args.connections,
        "duration_s": args.duration.as_secs_f64(),
        "warm_up_s": args.warm_up.as_secs_f64(),
        "regatta_core_nodes": systems.cluster.nodes().len(),
        "regatta_edges": 1,
        "etcd_members": systems.etcd.map_or(0, |e| e.members.len()),
        "nats_nodes": systems.nats.map_or(0, |n| n.nodes.len()),
        "nproc": std::thread::available_parallelism().map_or(0, |n| n.get()),
    });
    Ok(Outcome { cells, settings })
}

/// Puts every key into etcd through its leader, 128 in flight.
async fn preload_etcd(
    etcd: &Etcd,
    keys: &Arc<Vec<Bytes>>,
    value: &Bytes,
    timeout: Duration,
) -> Result<()> {
    let mut channels = Vec::new();
    for _ in 0..4 {
        channels.push(peers::connect(&etcd.leader().client_url).await?);
    }
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut loaders = tokio::task::JoinSet::new();
    for i in 0..128 {
        let mut kv = EtcdKvClient::new(channels[i % channels.len()].clone());
        let (keys, value, next) = (keys.clone(), value.clone(), next.clone());
        loaders.spawn(async move {
            loop {
                let i = next.fetch_add(1, Relaxed);
                let Some(key) = keys.get(i) else {
                    return anyhow::Ok(());
                };
                let mut request = tonic::Request::new(etcdpb::PutRequest {
                    key: key.clone(),
                    value: value.clone(),
                    ..Default::default()
                });
                request.set_timeout(timeout);
                kv.put(request).await.context("preloading etcd")?;
            }
        });
    }
    while let Some(result) = loaders.join_next().await {
        result.context("an etcd preload task panicked")??;
    }
    Ok(())
}

/// Sets every key in Redis with MSETs of 1,000 keys.
async fn preload_redis(redis: &Redis, keys: &[Bytes], value: &Bytes) -> Result<()> {
    let mut conn = redis.connect().await?;
    for chunk in keys.chunks(1000) {
        let mut command = redis::cmd("MSET");
        for key in chunk {
            command.arg(key.as_ref()).arg(value.as_ref());
        }
        command
            .query_async::<()>(&mut conn)
            .await
            .context("preloading redis")?;
    }
    Ok(())
}

/// Connections to every system, shared round-robin by the clients of a cell.
struct Pools {
    table: Bytes,
    /// Regatta: reads go to the edge, writes to the core leader.
    regatta_reads: Vec<Channel>,
    regatta_writes: Vec<Channel>,
    /// etcd: serializable reads round-robin over the members, writes to the leader.
    etcd_reads: Vec<Channel>,
    etcd_writes: Vec<Channel>,
    redis: Vec<redis::aio::MultiplexedConnection>,
    /// NATS: gets round-robin over the nodes, puts to the stream leader.
    nats_reads: Vec<Arc<NatsStore>>,
    nats_writes: Vec<Arc<NatsStore>>,
    noop: Vec<Channel>,
}

impl Pools {
    async fn connect(args: &Args, systems: &Systems<'_>, table: &str) -> Result<Self> {
        let n = args.connections;
        let leader = systems.cluster.node(systems.cluster.leader())?;
        let mut pools = Self {
            table: Bytes::from(table.to_string()),
            regatta_reads: systems.edge.connect_pool(n).await?,
            regatta_writes: cluster::connect_pool(&[leader], n)
                .await?
                .into_iter()
                .map(|(_, c)| c)
                .collect(),
            etcd_reads: Vec::new(),
            etcd_writes: Vec::new(),
            redis: Vec::new(),
            nats_reads: Vec::new(),
            nats_writes: Vec::new(),
            noop: Vec::new(),
        };
        if let Some(etcd) = systems.etcd {
            for i in 0..n.max(etcd.members.len()) {
                let member = &etcd.members[i % etcd.members.len()];
                pools
                    .etcd_reads
                    .push(peers::connect(&member.client_url).await?);
            }
            for _ in 0..n {
                pools
                    .etcd_writes
                    .push(peers::connect(&etcd.leader().client_url).await?);
            }
        }
        if let Some(redis) = systems.redis {
            for _ in 0..n {
                pools.redis.push(redis.connect().await?);
            }
        }
        if let Some(nats) = systems.nats {
            for i in 0..n.max(nats.nodes.len()) {
                pools
                    .nats_reads
                    .push(Arc::new(nats.store(i, args.timeout).await?));
            }
            for _ in 0..n {
                pools
                    .nats_writes
                    .push(Arc::new(nats.store(nats.leader(), args.timeout).await?));
            }
        }
        if let Some(noop) = systems.noop {
            for _ in 0..n {
                pools.noop.push(peers::connect(&noop.url).await?);
            }
        }
        Ok(pools)
    }

    /// `count` clients of `system`, spread over its connections.
    fn clients(&self, system: System, count: usize) -> Result<Vec<Client>> {
        let pick = |pool: &Vec<Channel>, i: usize| pool[i % pool.len()].clone();
        let empty = match system {
            System::Regatta => self.regatta_reads.is_empty(),
            System::Etcd => self.etcd_reads.is_empty(),
            System::Redis => self.redis.is_empty(),
            System::Nats => self.nats_reads.is_empty(),
            System::Noop => self.noop.is_empty(),
        };
        if empty {
            bail!("{} was not started", system.as_str());
        }
        Ok((0..count)
            .map(|i| match system {
                System::Regatta => Client::Regatta {
                    reads: KvClient::new(pick(&self.regatta_reads, i)),
                    writes: KvClient::new(pick(&self.regatta_writes, i)),
                    table: self.table.clone(),
                },
                System::Etcd => Client::Etcd {
                    reads: EtcdKvClient::new(pick(&self.etcd_reads, i)),
                    writes: EtcdKvClient::new(pick(&self.etcd_writes, i)),
                },
                System::Redis => Client::Redis(self.redis[i % self.redis.len()].clone()),
                System::Nats => Client::Nats {
                    reads: self.nats_reads[i % self.nats_reads.len()].clone(),
                    writes: self.nats_writes[i % self.nats_writes.len()].clone(),
                },
                System::Noop => Client::Noop(NoopClient::new(pick(&self.noop, i))),
            })
            .collect())
    }
}

/// One client of one system: reads and writes one key at a time.
enum Client {
    Regatta {
        reads: KvClient<Channel>,
        writes: KvClient<Channel>,
        table: Bytes,
    },
    Etcd {
        reads: EtcdKvClient<Channel>,
        writes: EtcdKvClient<Channel>,
    },
    Redis(redis::aio::MultiplexedConnection),
    Nats {
        reads: Arc<NatsStore>,
        writes: Arc<NatsStore>,
    },
    Noop(NoopClient<Channel>),
}

impl Client {
    /// Reads `key`; an error unless its value has `value_size` bytes.
    async fn read(
        &mut self,
        key: &Bytes,
        value_size: usize,
        timeout: Duration,
    ) -> Result<(), String> {
        let found = match self {
            Client::Regatta { reads, table, .. } => {
                let mut request = tonic::Request::new(RangeRequest {
                    table: table.clone(),
                    key: key.clone(),
                    ..Default::default()
                });
                request.set_timeout(timeout);
                let response = reads.range(request).await.map_err(|s| s.to_string())?;
                response.into_inner().kvs.first().map(|kv| kv.value.len())
            }
            Client::Etcd { reads, .. } => {
                let mut request = tonic::Request::new(etcdpb::RangeRequest {
                    key: key.clone(),
                    serializable: true,
                    ..Default::default()
                });
                request.set_timeout(timeout);
                let response = reads.range(request).await.map_err(|s| s.to_string())?;
                response.into_inner().kvs.first().map(|kv| kv.value.len())
            }
            Client::Redis(conn) => {
                let value: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(key.as_ref())
                    .query_async(conn)
                    .await
                    .map_err(|e| e.to_string())?;
                value.map(|v| v.len())
            }
            Client::Nats { reads, .. } => {
                // The connection and its JetStream context bound the request by `--timeout`.
                let value = reads
                    .get(nats::kv_key(key)?)
                    .await
                    .map_err(|e| e.to_string())?;
                value.map(|v| v.len())
            }
            Client::Noop(noop) => {
                let mut request = tonic::Request::new(Nothing {});
                request.set_timeout(timeout);
                noop.call(request).await.map_err(|s| s.to_string())?;
                return Ok(());
            }
        };
        match found {
            Some(len) if len == value_size => Ok(()),
            other => Err(format!("a preloaded key read back {other:?} bytes")),
        }
    }

    /// Overwrites `key` with `value`, durably.
    async fn write(&mut self, key: &Bytes, value: &Bytes, timeout: Duration) -> Result<(), String> {
        match self {
            Client::Regatta { writes, table, .. } => {
                let mut request = tonic::Request::new(PutRequest {
                    table: table.clone(),
                    key: key.clone(),
                    value: value.clone(),
                    prev_kv: false,
                    ttl_millis: 0,
                });
                request.set_timeout(timeout);
                writes.put(request).await.map_err(|s| s.to_string())?;
            }
            Client::Etcd { writes, .. } => {
                let mut request = tonic::Request::new(etcdpb::PutRequest {
                    key: key.clone(),
                    value: value.clone(),
                    ..Default::default()
                });
                request.set_timeout(timeout);
                writes.put(request).await.map_err(|s| s.to_string())?;
            }
            Client::Redis(conn) => {
                redis::cmd("SET")
                    .arg(key.as_ref())
                    .arg(value.as_ref())
                    .query_async::<()>(conn)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Client::Nats { writes, .. } => {
                // The JetStream context bounds the wait for the ack by `--timeout`.
                writes
                    .put(nats::kv_key(key)?, value.clone())
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Client::Noop(_) => return Err("the no-op server takes no writes".into()),
        }
        Ok(())
    }
}

/// What the clients of one cell share.
struct Load {
    keys: Arc<Vec<Bytes>>,
    value_size: usize,
    write_value: Bytes,
    writes_per_10k: u64,
    timeout: Duration,
    measure_from: Instant,
    end: Instant,
    counters: Counters,
}

/// Runs one cell: every client keeps one operation in flight until the load ends.
async fn measure(
    round: u32,
    workload: Workload,
    system: System,
    clients: Vec<Client>,
    load: Arc<Load>,
    server_pids: Vec<u32>,
) -> Result<Cell> {
    let concurrency = clients.len();
    let mut tasks = tokio::task::JoinSet::new();
    for (id, client) in clients.into_iter().enumerate() {
        tasks.spawn(client_loop(id as u64, client, load.clone()));
    }
    // The CPU used over the measured interval (after the warm-up, until the load ends).
    let cpu = tokio::spawn({
        let (from, end) = (load.measure_from, load.end);
        async move {
            tokio::time::sleep_until(from).await;
            let mark = cpu::Mark::now(&server_pids)?;
            tokio::time::sleep_until(end).await;
            mark.usage(&server_pids)
        }
    });
    let mut merged = cluster::latency_histogram()?;
    while let Some(joined) = tasks.join_next().await {
        let histogram = joined.context("a client task panicked")??;
        merged.add(&histogram).context("merging histograms")?;
    }
    let measured = Instant::now().saturating_duration_since(load.measure_from);
    let cpu = match cpu.await.context("the CPU sampler panicked")? {
        Ok(usage) => Some(usage),
        Err(e) => {
            eprintln!(
                "{} {}: no CPU figures: {e:#}",
                workload.as_str(),
                system.as_str()
            );
            None
        }
    };
    let ok = load.counters.ok.load(Relaxed);
    if ok == 0 {
        bail!(
            "{} {}: no operation succeeded; first error: {}",
            workload.as_str(),
            system.as_str(),
            load.counters.first_error().unwrap_or_else(|| "none".into())
        );
    }
    if let Some(error) = load.counters.first_error() {
        eprintln!(
            "{} {}: first error: {error}",
            workload.as_str(),
            system.as_str()
        );
    }
    Ok(Cell {
        round,
        workload,
        system,
        concurrency,
        ops_per_sec: ok as f64 / measured.as_secs_f64(),
        p50_us: merged.value_at_quantile(0.50),
        p99_us: merged.value_at_quantile(0.99),
        p999_us: merged.value_at_quantile(0.999),
        errors: load.counters.errors.load(Relaxed),
        cpu,
    })
}

/// One client: operations on uniformly random preloaded keys, one at a time.
async fn client_loop(
    id: u64,
    mut client: Client,
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
        let key = &load.keys[rng.below(keys) as usize];
        let write = load.writes_per_10k > 0 && rng.below(10_000) < load.writes_per_10k;
        let outcome = if write {
            client.write(key, &load.write_value, load.timeout).await
        } else {
            client.read(key, load.value_size, load.timeout).await
        };
        match outcome {
            Ok(()) => load
                .counters
                .record_ok(&mut histogram, started, load.measure_from),
            Err(error) => {
                load.counters.record_error(error);
                cluster::back_off().await;
            }
        }
    }
    Ok(histogram)
}

/// The cell of `system` beside `cell` (same workload and concurrency).
/// `system`'s cell of the same round, workload and concurrency as `cell`.
fn peer_cell<'a>(cells: &'a [Cell], cell: &Cell, system: System) -> Option<&'a Cell> {
    cells.iter().find(|c| {
        c.system == system
            && c.round == cell.round
            && c.workload == cell.workload
            && c.concurrency == cell.concurrency
    })
}

/// The median of `values` (the mean of the middle two for an even count); NaN when empty.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => values[n / 2],
        _ => round((values[n / 2 - 1] + values[n / 2]) / 2.0, 3),
    }
}

/// Regatta's ratios over `peer` for one workload and concurrency, one per round that
/// measured both, in round order.
fn round_ratios(
    cells: &[Cell],
    workload: Workload,
    concurrency: usize,
    peer: System,
) -> Vec<[f64; RATIOS]> {
    cells
        .iter()
        .filter(|c| {
            c.system == System::Regatta && c.workload == workload && c.concurrency == concurrency
        })
        .filter_map(|regatta| peer_cell(cells, regatta, peer).map(|other| ratios(regatta, other)))
        .collect()
}

/// Regatta's figures over a peer's: throughput (higher is better for Regatta), latencies
/// and the servers' CPU per operation (lower is better for Regatta; NaN without CPU figures).
fn ratios(regatta: &Cell, peer: &Cell) -> [f64; RATIOS] {
    let div = |a: f64, b: f64| if b > 0.0 { round(a / b, 3) } else { f64::NAN };
    [
        div(regatta.ops_per_sec, peer.ops_per_sec),
        div(regatta.p50_us as f64, peer.p50_us as f64),
        div(regatta.p99_us as f64, peer.p99_us as f64),
        div(regatta.p999_us as f64, peer.p999_us as f64),
        match (regatta.server_us_per_op(), peer.server_us_per_op()) {
            (Some(a), Some(b)) => div(a, b),
            _ => f64::NAN,
        },
    ]
}

/// How many ratios [`ratios`] gives: throughput, p50, p99, p999, servers' CPU per operation.
const RATIOS: usize = 5;

/// Regatta against one peer at one workload and concurrency, over every round.
struct Summary {
    workload: Workload,
    concurrency: usize,
    peer: System,
    /// Each round's `[throughput, p50, p99, p999, server CPU per op]` ratios, in round order.
    per_round: Vec<[f64; RATIOS]>,
}

impl Summary {
    /// The median of ratio `i` over the rounds that have it.
    fn median(&self, i: usize) -> f64 {
        median(
            self.per_round
                .iter()
                .map(|r| r[i])
                .filter(|v| !v.is_nan())
                .collect(),
        )
    }

    /// The lowest and highest of ratio `i` over the rounds.
    fn range(&self, i: usize) -> (f64, f64) {
        self.per_round
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), r| {
                (lo.min(r[i]), hi.max(r[i]))
            })
    }
}

/// One summary per workload, concurrency and peer that Regatta was measured against, in the
/// order of the first round.
fn summaries(cells: &[Cell]) -> Vec<Summary> {
    let mut out = Vec::new();
    for regatta in cells
        .iter()
        .filter(|c| c.system == System::Regatta && c.round == 0)
    {
        for peer in [System::Etcd, System::Redis, System::Nats, System::Noop] {
            let per_round = round_ratios(cells, regatta.workload, regatta.concurrency, peer);
            if !per_round.is_empty() {
                out.push(Summary {
                    workload: regatta.workload,
                    concurrency: regatta.concurrency,
                    peer,
                    per_round,
                });
            }
        }
    }
    out
}

/// `{workload: {concurrency: {peer: {throughput, p50, p99, p999, cpu_per_op, rounds}}}}`,
/// Regatta over peer: the medians over the rounds, and every round's `[throughput, p50, p99,
/// p999, cpu_per_op]` (`cpu_per_op`: the servers' CPU per operation, null without figures).
fn ratios_json(cells: &[Cell]) -> Value {
    let mut out: BTreeMap<&str, BTreeMap<String, BTreeMap<&str, Value>>> = BTreeMap::new();
    for s in summaries(cells) {
        out.entry(s.workload.as_str())
            .or_default()
            .entry(s.concurrency.to_string())
            .or_default()
            .insert(
                s.peer.as_str(),
                json!({
                    "throughput": s.median(0), "p50": s.median(1), "p99": s.median(2),
                    "p999": s.median(3), "cpu_per_op": s.median(4), "rounds": s.per_round,
                }),
            );
    }
    json!(out)
}

/// The human table: one line per cell, Regatta's ratios on the peers' lines.
fn print_table(cells: &[Cell]) {
    println!(
        "{:<6} {:>5} {:<8} {:>10} {:>8} {:>8} {:>8} {:>9} {:>9}   {:>9} {:>8} {:>8} {:>8} {:>8}",
        "work",
        "in-fl",
        "system",
        "ops/s",
        "p50 µs",
        "p99 µs",
        "p999 µs",
        "srv µs/op",
        "ldr µs/op",
        "R/x ops",
        "R/x p50",
        "R/x p99",
        "R/x p999",
        "R/x cpu"
    );
    let cpu = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.0}"));
    for cell in cells {
        let ratio = match cell.system {
            System::Regatta => None,
            _ => peer_cell(cells, cell, System::Regatta).map(|regatta| ratios(regatta, cell)),
        };
        let ratio = ratio.map_or_else(String::new, |[t, a, b, c, u]| {
            format!("{t:>9.2} {a:>8.2} {b:>8.2} {c:>8.2} {u:>8.2}")
        });
        println!(
            "{:<6} {:>5} {:<8} {:>10.0} {:>8} {:>8} {:>8} {:>9} {:>9}   {ratio}",
            cell.workload.as_str(),
            cell.concurrency,
            cell.system.as_str(),
            cell.ops_per_sec,
            cell.p50_us,
            cell.p99_us,
            cell.p999_us,
            cpu(cell.server_us_per_op()),
            cpu(cell.loader_us_per_op()),
        );
    }
    let rounds = cells.iter().map(|c| c.round + 1).max().unwrap_or(0);
    if rounds < 2 {
        return;
    }
    println!("medians of the {rounds} rounds' ratios (Regatta over the peer):");
    for s in summaries(cells) {
        let with_range = |i: usize| {
            let (lo, hi) = s.range(i);
            format!("{:.2} ({lo:.2}–{hi:.2})", s.median(i))
        };
        println!(
            "{:<6} {:>5} {:<8} ops {}  p50 {}  p99 {}  p999 {:.2}  cpu/op {}",
            s.workload.as_str(),
            s.concurrency,
            s.peer.as_str(),
            with_range(0),
            with_range(1),
            with_range(2),
            s.median(3),
            with_range(4),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(system: System, ops_per_sec: f64, p50_us: u64) -> Cell {
        Cell {
            round: 0,
            workload: Workload::Read,
            system,
            concurrency: 64,
            ops_per_sec,
            p50_us,
            p99_us: p50_us * 2,
            p999_us: p50_us * 4,
            errors: 0,
            cpu: None,
        }
    }

    fn with_cpu(cell: Cell, servers: f64, loader: f64) -> Cell {
        Cell {
            cpu: Some(Usage { servers, loader }),
            ..cell
        }
    }

    #[test]
    fn keys_are_32_bytes() {
        assert_eq!(key(0).len(), 32);
        assert_eq!(key(99_999).len(), 32);
        assert_ne!(key(1), key(10));
        // NATS stores the same keys, unchanged.
        assert_eq!(
            nats::kv_key(&key(42)),
            Ok("key-0000000000000000000000000042")
        );
    }

    #[test]
    fn workloads_write_their_share() {
        assert_eq!(Workload::Read.writes_per_10k(), 0);
        assert_eq!(Workload::Mix95.writes_per_10k(), 500);
        assert_eq!(Workload::Mix99.writes_per_10k(), 100);
        assert_eq!(Workload::Write.writes_per_10k(), 10_000);
        assert!(System::Noop.runs(Workload::Read));
        assert!(!System::Noop.runs(Workload::Write));
        assert!(System::Nats.runs(Workload::Read));
        assert!(System::Nats.runs(Workload::Write));
    }

    #[test]
    fn ratios_are_regatta_over_peer() {
        let regatta = cell(System::Regatta, 20_000.0, 500);
        let etcd = cell(System::Etcd, 10_000.0, 1_000);
        let [t, p50, p99, p999, cpu] = ratios(&regatta, &etcd);
        assert_eq!([t, p50, p99, p999], [2.0, 0.5, 0.5, 0.5]);
        assert!(cpu.is_nan(), "no CPU figures, no CPU ratio: {cpu}");
        let nats = cell(System::Nats, 40_000.0, 250);
        let json = ratios_json(&[regatta, etcd, nats]);
        assert_eq!(json["read"]["64"]["etcd"]["throughput"], json!(2.0));
        assert_eq!(json["read"]["64"]["nats"]["throughput"], json!(0.5));
        assert_eq!(json["read"]["64"]["nats"]["p50"], json!(2.0));
        assert!(json["read"]["64"].get("redis").is_none());
    }

    #[test]
    fn ratios_pair_cells_of_one_round_and_take_the_medians() {
        let of_round = |round, system, ops, p50| Cell {
            round,
            ..cell(system, ops, p50)
        };
        let cells = [
            of_round(0, System::Regatta, 20_000.0, 500),
            of_round(0, System::Etcd, 10_000.0, 1_000),
            // Round 1: the peer first, then Regatta; a slow moment for both.
            of_round(1, System::Etcd, 5_000.0, 2_000),
            of_round(1, System::Regatta, 15_000.0, 1_000),
            of_round(2, System::Regatta, 18_000.0, 600),
            of_round(2, System::Etcd, 12_000.0, 900),
        ];
        // Each round's ratio from its own cells: 2.0, 3.0 and 1.5; the median is 2.0.
        let per_round = round_ratios(&cells, Workload::Read, 64, System::Etcd);
        assert_eq!(
            per_round.iter().map(|r| r[0]).collect::<Vec<_>>(),
            [2.0, 3.0, 1.5]
        );
        let json = ratios_json(&cells);
        assert_eq!(json["read"]["64"]["etcd"]["throughput"], json!(2.0));
        assert_eq!(json["read"]["64"]["etcd"]["p50"], json!(0.5));
        assert_eq!(
            json["read"]["64"]["etcd"]["rounds"]
                .as_array()
                .map(Vec::len),
            Some(3)
        );
        assert_eq!(median(vec![1.0, 4.0]), 2.5);
        assert!(median(Vec::new()).is_nan());
    }

    #[test]
    fn cpu_per_operation_comes_from_cores_busy_and_throughput() {
        // 20,000 ops/s on 1.0 core of servers: 50 µs each; the loader's 0.4 core: 20 µs.
        let regatta = with_cpu(cell(System::Regatta, 20_000.0, 500), 1.0, 0.4);
        assert_eq!(regatta.server_us_per_op(), Some(50.0));
        assert_eq!(regatta.loader_us_per_op(), Some(20.0));
        // 10,000 ops/s on 1.5 cores: 150 µs each; Regatta spends a third of that.
        let etcd = with_cpu(cell(System::Etcd, 10_000.0, 1_000), 1.5, 0.2);
        assert_eq!(ratios(&regatta, &etcd)[4], 0.333);
        let json = etcd.to_json();
        assert_eq!(json["server_cpu_us_per_op"], json!(150.0));
        assert_eq!(json["loader_cpu_cores"], json!(0.2));
        // A round without CPU figures leaves the others' median standing.
        let of_round = |round, cell: Cell| Cell { round, ..cell };
        let cells = [
            of_round(0, regatta.clone()),
            of_round(0, etcd.clone()),
            of_round(1, cell(System::Regatta, 20_000.0, 500)),
            of_round(1, cell(System::Etcd, 10_000.0, 1_000)),
        ];
        let json = ratios_json(&cells);
        assert_eq!(json["read"]["64"]["etcd"]["cpu_per_op"], json!(0.333));
        assert_eq!(json["read"]["64"]["etcd"]["rounds"][1][4], Value::Null);
    }
}
