//! `abuse`: a well-behaved client's read latency, and the node's memory, while other
//! clients misbehave.
//!
//! Starts one core node (its limits as configured: defaults, or `--server-arg`), preloads
//! `--keys` keys of `--value-size` bytes, then runs phases of `--phase` each: a baseline, and
//! one per attack. Throughout, `--in-flight` workers on their own connection keep one point
//! Range in flight each; per phase the report gives their p50/p99 and reads/s, the
//! attack's own outcome, and the node's peak resident memory (VmRSS, sampled every 200 ms).
//!
//! Attacks:
//! - `stalled`: `--stalled` IterateRange streams over the whole table, over 8 connections,
//!   never read (their HTTP/2 windows fill and stay full).
//! - `idle`: `--idle` connections that send the HTTP/2 preface and SETTINGS, then nothing
//!   (and never answer a PING).
//! - `slowloris`: `--slowloris` connections trickling the preface one byte a second.
//! - `streams`: one connection opening `--streams` Range calls whose request body never
//!   comes (HEADERS without END_STREAM), as many as the server lets it.
//! - `txn`: `--txn-attackers` clients sending, one after another, the requests whose
//!   evaluation is bounded by the Txn budgets: a Txn of one put and 1,000 range ops over
//!   the whole table (an answer of ~100 GB unbounded), a read-only Txn of 1,000 `count_only`
//!   ranges over it (10^8 records stepped through), and a `DeleteRange` with `prev_kv` over
//!   it (100 MB of previous pairs). Each is refused; the outcome counts them and their mean
//!   time to be refused.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use regatta_proto::{
    mvcc::v1::{RequestOp, request_op},
    regatta::v1::{RangeRequest, TxnRequest, kv_client::KvClient},
};
use tokio::{io::AsyncWriteExt, net::TcpStream, task::JoinSet, time::Instant};

use crate::{
    cluster::{self, Cluster, ClusterArgs, FastRng},
    report::Report,
};

/// Settings of the scenario.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Keys preloaded.
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// Size of every value, in bytes.
    #[arg(long, default_value_t = 1024)]
    value_size: usize,
    /// The well-behaved client's reads in flight.
    #[arg(long, default_value_t = 8)]
    in_flight: usize,
    /// Length of each phase.
    #[arg(long, default_value = "10s", value_parser = cluster::parse_duration)]
    phase: Duration,
    /// Stalled IterateRange streams.
    #[arg(long, default_value_t = 1000)]
    stalled: usize,
    /// Idle connections.
    #[arg(long, default_value_t = 5000)]
    idle: usize,
    /// Slowloris connections.
    #[arg(long, default_value_t = 500)]
    slowloris: usize,
    /// Streams opened on one connection.
    #[arg(long, default_value_t = 10_000)]
    streams: usize,
    /// Clients sending over-budget Txns and deletes.
    #[arg(long, default_value_t = 2)]
    txn_attackers: usize,
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];

fn key(i: u64) -> Bytes {
    Bytes::from(format!("key-{i:028}"))
}

pub fn run(args: Args) -> Result<()> {
    if args.in_flight == 0 || args.keys == 0 {
        bail!("--in-flight and --keys must be at least 1");
    }
    let report = cluster::run(&args.cluster, 1, async |cluster| {
        scenario(&args, cluster).await
    })?;
    report.print();
    Ok(())
}

async fn preload(args: &Args, cluster: &Cluster) -> Result<()> {
    let mut kv = KvClient::new(cluster.nodes()[0].connect().await?);
    let value = Bytes::from(vec![b'v'; args.value_size]);
    let batch = (1 << 20) / (args.value_size as u64 + 64).max(1);
    let mut next = 0;
    while next < args.keys {
        let end = (next + batch.max(1)).min(args.keys);
        let success = (next..end)
            .map(|i| RequestOp {
                request: Some(request_op::Request::RequestPut(request_op::Put {
                    key: key(i),
                    value: value.clone(),
                    prev_kv: false,
                    ttl_millis: 0,
                })),
            })
            .collect();
        kv.txn(TxnRequest {
            table: Bytes::from_static(b"bench"),
            compare: vec![],
            success,
            failure: vec![],
        })
        .await
        .context("preloading")?;
        next = end;
    }
    Ok(())
}

/// Resident memory of the node, in bytes.
fn rss(cluster: &Cluster) -> u64 {
    let needle = format!("--data-dir={}", cluster.nodes()[0].data_dir.display());
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    for entry in dir.flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if !cmdline.split(|b| *b == 0).any(|a| a == needle.as_bytes()) {
            continue;
        }
        let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
        if let Some(kb) = status.lines().find_map(|l| {
            l.strip_prefix("VmRSS:")
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        }) {
            return kb * 1024;
        }
    }
    0
}

/// What an attack left standing, told at the end of its phase.
type Outcome = String;

async fn scenario(args: &Args, cluster: &Cluster) -> Result<Report> {
    cluster.create_table("bench").await?;
    let started = Instant::now();
    preload(args, cluster).await?;
    eprintln!(
        "preloaded {} keys of {} bytes in {:.1}s",
        args.keys,
        args.value_size,
        started.elapsed().as_secs_f64()
    );
    let mut report = Report::new("abuse");
    report
        .set("keys", args.keys)
        .set("value_size", args.value_size)
        .set("in_flight", args.in_flight)
        .set("phase_s", args.phase.as_secs_f64())
        .set("server_args", args.cluster.server_args.join(" "));
    for attack in ["baseline", "stalled", "idle", "slowloris", "streams", "txn"] {
        let (p50, p99, rate, errors, peak, outcome) = phase(args, cluster, attack).await?;
        eprintln!(
            "{attack:>9}: p50 {p50} us  p99 {p99} us  {rate:.0} reads/s  errors {errors}  peak RSS {} MiB  {outcome}",
            peak >> 20
        );
        report
            .set(&format!("{attack}_p50_us"), p50)
            .set(&format!("{attack}_p99_us"), p99)
            .set(&format!("{attack}_reads_per_s"), rate.round())
            .set(&format!("{attack}_errors"), errors)
            .set(&format!("{attack}_peak_rss_mib"), peak >> 20)
            .set(&format!("{attack}_outcome"), outcome);
        cluster.check_running()?;
    }
    Ok(report)
}

/// Runs one phase: the reader and `attack` together; returns the reader's p50 and p99 (µs),
/// reads/s, errors, the node's peak RSS and what the attack saw.
async fn phase(
    args: &Args,
    cluster: &Cluster,
    attack: &str,
) -> Result<(u64, u64, f64, u64, u64, Outcome)> {
    let stop = Arc::new(AtomicBool::new(false));
    let node = &cluster.nodes()[0];
    let attacker = {
        let stop = stop.clone();
        let api = node.api.clone();
        let attack = attack.to_string();
        let (stalled, idle, slowloris, streams, txn_attackers) = (
            args.stalled,
            args.idle,
            args.slowloris,
            args.streams,
            args.txn_attackers,
        );
        tokio::spawn(async move {
            match attack.as_str() {
                "stalled" => stalled_streams(&api, stalled, &stop).await,
                "idle" => idle_connections(&api, idle, &stop).await,
                "slowloris" => slowloris_connections(&api, slowloris, &stop).await,
                "streams" => many_streams(&api, streams, &stop).await,
                "txn" => over_budget_requests(&api, txn_attackers, &stop).await,
                _ => {
                    wait(&stop).await;
                    Ok(String::new())
                }
            }
        })
    };
    // Let the attack build up before measuring.
    tokio::time::sleep(Duration::from_secs(1)).await; // the attack's ramp-up
    let channel = node.connect().await?;
    let errors = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + args.phase;
    let mut readers = JoinSet::new();
    for id in 0..args.in_flight {
        let mut kv = KvClient::new(channel.clone());
        let keys = args.keys;
        let errors = errors.clone();
        readers.spawn(async move {
            let mut rng = FastRng::new(id as u64 + 1);
            let mut latencies = cluster::latency_histogram()?;
            while Instant::now() < until {
                let started = Instant::now();
                let mut request = tonic::Request::new(RangeRequest {
                    table: Bytes::from_static(b"bench"),
                    key: key(rng.below(keys)),
                    ..Default::default()
                });
                request.set_timeout(Duration::from_secs(10));
                match kv.range(request).await {
                    Ok(_) => latencies.saturating_record(started.elapsed().as_micros() as u64),
                    Err(_) => {
                        errors.fetch_add(1, Relaxed);
                        cluster::back_off().await;
                    }
                }
            }
            anyhow::Ok(latencies)
        });
    }
    let mut peak = 0;
    let mut merged = cluster::latency_histogram()?;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            joined = readers.join_next() => match joined {
                Some(result) => merged.add(&result.context("reader panicked")??)?,
                None => break,
            },
            _ = tick.tick() => peak = peak.max(rss(cluster)),
        }
    }
    stop.store(true, Relaxed);
    let outcome = attacker.await.context("attacker panicked")??;
    let rate = merged.len() as f64 / args.phase.as_secs_f64();
    Ok((
        merged.value_at_quantile(0.5),
        merged.value_at_quantile(0.99),
        rate,
        errors.load(Relaxed),
        peak,
        outcome,
    ))
}

async fn wait(stop: &AtomicBool) {
    while !stop.load(Relaxed) {
        tokio::time::sleep(Duration::from_millis(50)).await; // polling the stop flag
    }
}

fn addr(api: &str) -> String {
    api.trim_start_matches("http://").to_string()
}

async fn stalled_streams(api: &str, n: usize, stop: &AtomicBool) -> Result<Outcome> {
    let mut channels = Vec::new();
    for _ in 0..8 {
        channels.push(
            tonic::transport::Endpoint::from_shared(api.to_string())?
                .connect()
                .await?,
        );
    }
    let mut open = Vec::new();
    let mut refused = 0;
    for i in 0..n {
        let mut kv = KvClient::new(channels[i % channels.len()].clone());
        match kv
            .iterate_range(RangeRequest {
                table: Bytes::from_static(b"bench"),
                key: Bytes::from_static(&[0]),
                range_end: Bytes::from_static(&[0]),
                ..Default::default()
            })
            .await
        {
            Ok(stream) => open.push(stream),
            Err(_) => refused += 1,
        }
    }
    wait(stop).await;
    Ok(format!("{} streams open, {refused} refused", open.len()))
}

async fn idle_connections(api: &str, n: usize, stop: &AtomicBool) -> Result<Outcome> {
    let mut held = Vec::new();
    let mut failed = 0;
    for _ in 0..n {
        match TcpStream::connect(addr(api)).await {
            Ok(mut s) => {
                if s.write_all(PREFACE).await.is_ok() && s.write_all(SETTINGS).await.is_ok() {
                    held.push(s);
                } else {
                    failed += 1;
                }
            }
            Err(_) => failed += 1,
        }
    }
    wait(stop).await;
    let closed = count_closed(&held);
    Ok(format!(
        "{} connected ({failed} failed), {closed} closed by the server",
        held.len()
    ))
}

/// How many of `conns` the server has closed: they read end-of-file (or fail) after the
/// frames they were sent.
fn count_closed(conns: &[TcpStream]) -> usize {
    let mut closed = 0;
    let mut buf = [0u8; 4096];
    for s in conns {
        loop {
            match s.try_read(&mut buf) {
                Ok(0) => {
                    closed += 1;
                    break;
                }
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    closed += 1;
                    break;
                }
            }
        }
    }
    closed
}

async fn slowloris_connections(api: &str, n: usize, stop: &AtomicBool) -> Result<Outcome> {
    let mut conns = Vec::new();
    for _ in 0..n {
        if let Ok(s) = TcpStream::connect(addr(api)).await {
            conns.push(s);
        }
    }
    let connected = conns.len();
    let mut sent = 0;
    while !stop.load(Relaxed) {
        for s in conns.iter_mut() {
            // A write to a connection the server closed may still succeed: closes are
            // counted by reading, at the end.
            let _ = s.write_all(&PREFACE[sent % PREFACE.len()..][..1]).await;
        }
        sent += 1;
        tokio::time::sleep(Duration::from_secs(1)).await; // one byte a second
    }
    let closed = count_closed(&conns);
    Ok(format!(
        "{connected} connected, {closed} closed by the server"
    ))
}

async fn many_streams(api: &str, n: usize, stop: &AtomicBool) -> Result<Outcome> {
    let tcp = TcpStream::connect(addr(api)).await?;
    let (client, connection) = h2::client::handshake(tcp).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut bodies = Vec::new();
    let opened = Arc::new(AtomicU64::new(0));
    let mut client = client;
    let deadline = Instant::now() + Duration::from_secs(5);
    for _ in 0..n {
        // The server's MAX_CONCURRENT_STREAMS holds the client back here.
        match tokio::time::timeout_at(deadline, client.clone().ready()).await {
            Ok(Ok(ready)) => client = ready,
            _ => break,
        }
        let request = http::Request::builder()
            .method("POST")
            .uri(format!("{api}/regatta.v1.KV/Range"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())?;
        match client.send_request(request, false) {
            Ok((response, body)) => {
                bodies.push((response, body));
                opened.fetch_add(1, Relaxed);
            }
            Err(_) => break,
        }
    }
    wait(stop).await;
    // h2 queues the calls beyond the server's MAX_CONCURRENT_STREAMS on the client side.
    Ok(format!(
        "{} of {n} calls sent on one connection; the server allows {} open at once",
        opened.load(Relaxed),
        client.current_max_send_streams()
    ))
}

/// The three over-budget requests of the `txn` attack, by name.
fn over_budget_request(which: usize) -> (&'static str, TxnRequest) {
    let whole = |count_only| RequestOp {
        request: Some(request_op::Request::RequestRange(request_op::Range {
            key: Bytes::from_static(&[0]),
            range_end: Bytes::from_static(&[0]),
            count_only,
            ..Default::default()
        })),
    };
    let txn = |success| TxnRequest {
        table: Bytes::from_static(b"bench"),
        compare: vec![],
        success,
        failure: vec![],
    };
    match which % 3 {
        0 => {
            let mut ops = vec![RequestOp {
                request: Some(request_op::Request::RequestPut(request_op::Put {
                    key: Bytes::from_static(b"bomb"),
                    value: Bytes::from_static(b"applied"),
                    prev_kv: false,
                    ttl_millis: 0,
                })),
            }];
            ops.extend(std::iter::repeat_n(whole(false), 1000));
            ("write", txn(ops))
        }
        1 => (
            "count",
            txn(std::iter::repeat_n(whole(true), 1000).collect()),
        ),
        _ => ("delete", txn(vec![])),
    }
}

async fn over_budget_requests(api: &str, attackers: usize, stop: &AtomicBool) -> Result<Outcome> {
    let channel = tonic::transport::Endpoint::from_shared(api.to_string())?
        .connect()
        .await?;
    let refused = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let refusing_us = Arc::new(AtomicU64::new(0));
    let mut attacks = Vec::new();
    for id in 0..attackers.max(1) {
        let mut kv = KvClient::new(channel.clone());
        let (refused, accepted, refusing_us) =
            (refused.clone(), accepted.clone(), refusing_us.clone());
        attacks.push(async move {
            let mut which = id;
            while !stop.load(Relaxed) {
                let (kind, request) = over_budget_request(which);
                which += 1;
                let started = Instant::now();
                let answer = if kind == "delete" {
                    kv.delete_range(regatta_proto::regatta::v1::DeleteRangeRequest {
                        table: Bytes::from_static(b"bench"),
                        key: Bytes::from_static(&[0]),
                        range_end: Bytes::from_static(&[0]),
                        prev_kv: true,
                        count: false,
                    })
                    .await
                    .map(drop)
                } else {
                    kv.txn(request).await.map(drop)
                };
                match answer {
                    Err(s) if s.code() == tonic::Code::InvalidArgument => {
                        refused.fetch_add(1, Relaxed);
                        refusing_us.fetch_add(started.elapsed().as_micros() as u64, Relaxed);
                    }
                    _ => {
                        accepted.fetch_add(1, Relaxed);
                    }
                }
            }
        });
    }
    futures::future::join_all(attacks).await;
    let refused = refused.load(Relaxed);
    Ok(format!(
        "{refused} refused (InvalidArgument, mean {} ms to refuse), {} answered otherwise",
        refusing_us.load(Relaxed) / refused.max(1) / 1000,
        accepted.load(Relaxed)
    ))
}
