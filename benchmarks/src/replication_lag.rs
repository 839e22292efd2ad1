//! `replication-lag`: commit-to-visible-at-edge time under a steady write rate.
//!
//! Starts a 3-node core and one edge following it (real processes, loopback). `--writers`
//! tasks put `--value-size` values to unique 32-byte keys through the core leader at a
//! steady `--rate` writes/s in total for `--duration` (open loop: write `n` is due at
//! `start + n / rate`, whoever is free sends it, so a slow answer does not slow the rate).
//! Each acknowledged write gives its revision `r` and the instant `a` its answer arrived.
//!
//! A watcher task on its own connection to the edge keeps one serializable Range of a tiny
//! key (absent; the answer is a header only) in flight, back to back. The answer's
//! `header.revision` is the revision of the edge's read view: everything up to it is
//! visible at the edge. Each time it grows, the watcher records `(revision, instant the answer
//! arrived)`. A write's visible time `v(r)` is the first record with revision ≥ `r`, and its
//! lag is `v(r) − a`. Both instants come from the same monotonic clock in this process, so
//! there is no clock skew; the resolution is one watcher round trip (reported as
//! `watch_poll_us`), and stamping the answer's arrival errs on the late side. A write the
//! edge showed before its acknowledgment reached the writer counts as lag 0
//! (`visible_before_ack`).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use regatta_proto::regatta::v1::{PutRequest, RangeRequest, kv_client::KvClient};
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::{
    cluster::{self, Cluster, ClusterArgs},
    edge_cluster::{self, Edge, round},
    report::Report,
};

/// Settings of the scenario.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Total writes per second, paced open-loop.
    #[arg(long, default_value_t = 5_000)]
    rate: u64,
    /// Concurrent writers (each with at most one Put in flight) that share the schedule.
    #[arg(long, default_value_t = 64)]
    writers: usize,
    /// gRPC channels to the core leader, shared round-robin by the writers.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Size of every value, in bytes.
    #[arg(long, default_value_t = 256)]
    value_size: usize,
    /// How long to measure, after the warm-up (`20s`, `500ms`, `1m`).
    #[arg(long, default_value = "20s", value_parser = cluster::parse_duration)]
    duration: Duration,
    /// Writing at the same rate before the measurement starts (not measured).
    #[arg(long = "warm-up", default_value = "2s", value_parser = cluster::parse_duration)]
    warm_up: Duration,
    /// Deadline of each write.
    #[arg(long, default_value = "10s", value_parser = cluster::parse_duration)]
    timeout: Duration,
    /// How long after the last acknowledgment the edge may take to show it (else an error).
    #[arg(long, default_value = "10s", value_parser = cluster::parse_duration)]
    visible_timeout: Duration,
}

/// One acknowledged write.
#[derive(Debug, Clone, Copy)]
struct Ack {
    revision: u64,
    /// When the answer arrived.
    at: Instant,
    /// When the write was due by the schedule.
    due: Instant,
    /// When it was sent.
    sent: Instant,
}

/// What the writers share.
struct Schedule {
    table: Bytes,
    value: Bytes,
    start: Instant,
    /// Nanoseconds between two due writes.
    interval_nanos: u64,
    total: u64,
    next: AtomicU64,
    measure_from: Instant,
    timeout: Duration,
    errors: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
}

impl Schedule {
    fn new(args: &Args, table: &'static str, start: Instant, total: u64) -> Self {
        Schedule {
            table: Bytes::from(table),
            value: Bytes::from(vec![b'v'; args.value_size]),
            start,
            interval_nanos: 1_000_000_000 / args.rate,
            total,
            next: AtomicU64::new(0),
            measure_from: start + args.warm_up,
            timeout: args.timeout,
            errors: AtomicU64::new(0),
            first_error: std::sync::Mutex::new(None),
        }
    }

    /// The first write error, if any.
    fn first_error(&self) -> Option<String> {
        self.first_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn due(&self, n: u64) -> Instant {
        self.start + Duration::from_nanos(n.saturating_mul(self.interval_nanos))
    }

    fn record_error(&self, error: impl std::fmt::Display) {
        self.errors.fetch_add(1, Relaxed);
        let mut first = self
            .first_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if first.is_none() {
            *first = Some(error.to_string());
        }
    }
}

pub fn run(args: Args) -> Result<()> {
    if args.rate == 0 || args.writers == 0 {
        bail!("--rate and --writers must be at least 1");
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
    // The edge has the table once it shows the core's current revision.
    let leader = cluster.node(cluster.leader())?;
    edge.wait_applied(leader.status().await?.applied, Duration::from_secs(60))
        .await?;

    let watch_channel = edge.connect().await?;
    let pool = cluster::connect_pool(&[leader], args.connections.min(args.writers)).await?;
    let total = (args.rate as f64 * (args.warm_up + args.duration).as_secs_f64()).ceil() as u64;
    eprintln!(
        "{} writes/s to the core leader (node {}) by {} writers over {} connections, warm-up {:?}, \
         then {:?}; one watcher reading the edge's revision back to back",
        args.rate,
        leader.id,
        args.writers,
        pool.len(),
        args.warm_up,
        args.duration
    );

    // The watcher runs until told to stop; it starts before the first write is due.
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn(watch(
        KvClient::new(watch_channel),
        Bytes::from(table),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(200)).await; // let the watcher's first reads land

    let start = Instant::now() + Duration::from_millis(10);
    let schedule = Arc::new(Schedule::new(args, table, start, total));
    let acks = write_all(args, &schedule, &pool, cluster, edge).await?;
    let writing_ended = Instant::now();
    let last_revision = acks.iter().map(|a| a.revision).max().unwrap_or(0);

    let seen = wait_visible(edge, last_revision, args.visible_timeout).await;
    tokio::time::sleep(Duration::from_millis(50)).await; // one more watcher round
    stop.store(true, Relaxed);
    let watched = watcher.await.context("the watcher panicked")??;
    edge.check_running()?;

    let errors = schedule.errors.load(Relaxed);
    let measured: Vec<Ack> = acks
        .iter()
        .copied()
        .filter(|a| a.due >= schedule.measure_from)
        .collect();
    if measured.is_empty() {
        bail!(
            "no measured write was acknowledged; first error: {}",
            schedule.first_error().unwrap_or_else(|| "none".into())
        );
    }
    let outcome = lags(&measured, &watched.seen)?;
    let first_due = measured.iter().map(|a| a.due).min().unwrap_or(start);
    let last_ack = measured.iter().map(|a| a.at).max().unwrap_or(writing_ended);
    let span = last_ack.saturating_duration_since(first_due).as_secs_f64();
    let report = build_report(args, cluster, &measured, errors, span, &watched, &outcome)?;
    if outcome.never_visible > 0 {
        eprintln!(
            "{} writes were not visible at the edge {:?} after the last acknowledgment \
             (edge applied {seen} of {last_revision})",
            outcome.never_visible, args.visible_timeout
        );
    }
    if let Some(error) = schedule.first_error() {
        eprintln!("first write error: {error}");
    }
    Ok(report)
}

/// Runs `args.writers` writers over `pool` until the schedule is done, printing progress
/// once a second; returns every acknowledged write.
async fn write_all(
    args: &Args,
    schedule: &Arc<Schedule>,
    pool: &[(u64, Channel)],
    cluster: &Cluster,
    edge: &Edge,
) -> Result<Vec<Ack>> {
    let total = schedule.total;
    let mut writers = tokio::task::JoinSet::new();
    for i in 0..args.writers {
        let channel = pool[i % pool.len()].1.clone();
        writers.spawn(writer(KvClient::new(channel), schedule.clone()));
    }
    let mut acks = Vec::with_capacity(total as usize);
    let mut tick = tokio::time::interval_at(
        Instant::now() + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    loop {
        tokio::select! {
            joined = writers.join_next() => match joined {
                Some(result) => acks.extend(result.context("a writer task panicked")??),
                None => break,
            },
            _ = tick.tick() => {
                let sent = schedule.next.load(Relaxed).min(total);
                // How far the writers trail the schedule (0 while they keep up).
                let behind = Instant::now().saturating_duration_since(schedule.due(sent));
                eprintln!(
                    "[{:>6.1}s] writes started {sent} of {total}, behind schedule {:.1} ms, errors {}",
                    schedule.start.elapsed().as_secs_f64(),
                    if sent >= total { 0.0 } else { behind.as_secs_f64() * 1000.0 },
                    schedule.errors.load(Relaxed),
                );
                cluster.check_running()?;
                edge.check_running()?;
            }
        }
    }
    Ok(acks)
}

/// Waits (bounded by `timeout`) until the edge has applied `last_revision`; returns what it
/// applied last.
async fn wait_visible(edge: &Edge, last_revision: u64, timeout: Duration) -> u64 {
    let deadline = Instant::now() + timeout;
    loop {
        let seen = edge.applied().await.unwrap_or(0);
        if seen >= last_revision || Instant::now() > deadline {
            break seen;
        }
        tokio::time::sleep(Duration::from_millis(10)).await; // poll interval
    }
}

/// The scenario's report over the measured writes and their lags.
fn build_report(
    args: &Args,
    cluster: &Cluster,
    measured: &[Ack],
    errors: u64,
    span: f64,
    watched: &Watched,
    outcome: &Lags,
) -> Result<Report> {
    let mut write_latency = cluster::latency_histogram()?;
    let mut schedule_latency = cluster::latency_histogram()?;
    for ack in measured {
        write_latency
            .saturating_record(ack.at.saturating_duration_since(ack.sent).as_micros() as u64);
        schedule_latency
            .saturating_record(ack.at.saturating_duration_since(ack.due).as_micros() as u64);
    }
    let lag = &outcome.histogram;
    let ms = |us: u64| round(us as f64 / 1000.0, 3);
    let mut report = Report::new("replication-lag");
    report
        .set("core_nodes", cluster.nodes().len())
        .set("edges", 1)
        .set("target_rate", args.rate)
        .set("writers", args.writers)
        .set("value_size", args.value_size)
        .set("seconds", round(span, 2))
        .set("writes", measured.len())
        .set("write_errors", errors)
        .set("writes_per_sec", (measured.len() as f64 / span).round())
        .set("write_p50_ms", ms(write_latency.value_at_quantile(0.5)))
        .set("write_p99_ms", ms(write_latency.value_at_quantile(0.99)))
        .set(
            "write_from_due_p99_ms",
            ms(schedule_latency.value_at_quantile(0.99)),
        )
        .set("watch_polls", watched.polls)
        .set(
            "watch_poll_us",
            round(
                watched.busy.as_micros() as f64 / watched.polls.max(1) as f64,
                1,
            ),
        )
        .set("visible_before_ack", outcome.before_ack)
        .set("never_visible", outcome.never_visible)
        .set("lag_p50_ms", ms(lag.value_at_quantile(0.50)))
        .set("lag_p99_ms", ms(lag.value_at_quantile(0.99)))
        .set("lag_p999_ms", ms(lag.value_at_quantile(0.999)))
        .set("lag_max_ms", ms(lag.max()))
        .set("lag_mean_ms", round(lag.mean() / 1000.0, 3));
    Ok(report)
}

/// One writer: takes the next due write, waits until it is due, puts it, records the answer.
async fn writer(mut kv: KvClient<Channel>, schedule: Arc<Schedule>) -> Result<Vec<Ack>> {
    let mut acks = Vec::new();
    loop {
        let n = schedule.next.fetch_add(1, Relaxed);
        if n >= schedule.total {
            return Ok(acks);
        }
        let due = schedule.due(n);
        tokio::time::sleep_until(due).await;
        let sent = Instant::now();
        let mut request = tonic::Request::new(PutRequest {
            table: schedule.table.clone(),
            key: Bytes::from(format!("lag-{n:028}")),
            value: schedule.value.clone(),
            prev_kv: false,
            ttl_millis: 0,
        });
        request.set_timeout(schedule.timeout);
        match kv.put(request).await {
            Ok(response) => {
                let at = Instant::now();
                match response.into_inner().header {
                    Some(header) if header.revision > 0 => acks.push(Ack {
                        revision: header.revision,
                        at,
                        due,
                        sent,
                    }),
                    other => {
                        schedule.record_error(format!("a Put answer without a revision: {other:?}"))
                    }
                }
            }
            Err(status) => schedule.record_error(status),
        }
    }
}

/// What the watcher saw.
struct Watched {
    /// `(revision, when first seen)`, revisions strictly increasing.
    seen: Vec<(u64, Instant)>,
    polls: u64,
    /// Time spent in polls (for the mean round trip).
    busy: Duration,
}

/// Reads the edge's read-view revision back to back until `stop`.
async fn watch(mut kv: KvClient<Channel>, table: Bytes, stop: Arc<AtomicBool>) -> Result<Watched> {
    let probe = Bytes::from_static(b"~lag-probe");
    let mut watched = Watched {
        seen: Vec::new(),
        polls: 0,
        busy: Duration::ZERO,
    };
    let mut failures = 0u32;
    let mut last = 0;
    while !stop.load(Relaxed) {
        let sent = Instant::now();
        let mut request = tonic::Request::new(RangeRequest {
            table: table.clone(),
            key: probe.clone(),
            ..Default::default()
        });
        request.set_timeout(Duration::from_secs(5));
        match kv.range(request).await {
            Ok(response) => {
                let at = Instant::now();
                watched.polls += 1;
                watched.busy += at - sent;
                let revision = response.into_inner().header.map_or(0, |h| h.revision);
                if revision > last {
                    last = revision;
                    watched.seen.push((revision, at));
                }
            }
            Err(status) => {
                failures += 1;
                if failures > 100 {
                    bail!("the watcher's reads at the edge keep failing: {status}");
                }
                tokio::time::sleep(Duration::from_millis(10)).await; // back off a failing edge
            }
        }
    }
    Ok(watched)
}

/// The lags of `acks` against the watcher's records.
struct Lags {
    histogram: hdrhistogram::Histogram<u64>,
    before_ack: u64,
    never_visible: u64,
}

/// For each ack, the first watcher record at or past its revision: lag = seen − acked.
fn lags(acks: &[Ack], seen: &[(u64, Instant)]) -> Result<Lags> {
    let mut histogram = cluster::latency_histogram()?;
    let (mut before_ack, mut never_visible) = (0, 0);
    for ack in acks {
        let i = seen.partition_point(|(revision, _)| *revision < ack.revision);
        match seen.get(i) {
            Some((_, visible)) => {
                if *visible < ack.at {
                    before_ack += 1;
                }
                let lag = visible.saturating_duration_since(ack.at);
                histogram.saturating_record(lag.as_micros() as u64);
            }
            None => never_visible += 1,
        }
    }
    Ok(Lags {
        histogram,
        before_ack,
        never_visible,
    })
}
