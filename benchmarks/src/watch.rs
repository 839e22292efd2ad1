//! `watch`: events delivered to watchers at an edge, and the time from a write's
//! acknowledgment to its event.
//!
//! Starts a 3-node core and one edge following it (real processes, loopback), then runs one
//! phase per watcher count of `--watchers` and write rate of `--rates`, on the same cluster:
//!
//! 1. `N` watchers are created at the edge from "now", spread round-robin over `--streams`
//!    Watch streams, each on its own connection. With `--prefixes 0` every watcher watches
//!    the whole table; with `K` the writes go round-robin to `K` prefixes and watcher `i`
//!    watches prefix `i mod K`. Keys are new in every phase (`w<phase>/…`), so a phase's
//!    watchers see only its own writes.
//! 2. `--writers` tasks put values to unique keys through the core leader, open loop at a
//!    rate (write `n` is due at `start + n / rate`), or back to back for `max`, for
//!    `--warm-up` then `--duration`. Each acknowledged write gives its revision and the
//!    instant `a` its answer arrived.
//! 3. Every event is stamped with the instant its message arrived. A write's event latency
//!    at a watcher is `arrival − a`; both instants come from this process's monotonic
//!    clock. Beside it, as `replication-lag` measures it, one more connection reads the
//!    edge's revision back to back: ack-to-visible is the first read showing the write's
//!    revision minus `a`. An event or read that came before the acknowledgment counts as 0
//!    (`*_before_ack`).
//! 4. Once the edge applied the last write and every watcher got its last event (bounded by
//!    `--visible-timeout`), the phase checks that every watcher got every acknowledged write
//!    of its keys exactly once, at the write's revision, in revision order, and was not
//!    cancelled. A failed check fails the run (after the report is printed).
//!
//! Events/s counts the events of the measured writes over all watchers, from the end of
//! the warm-up to the arrival of the last of them. The load generator decodes every event
//! on the same CPUs as the servers: at high rates it is part of what is measured.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed},
    },
    time::Duration,
};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures::StreamExt;
use regatta_proto::regatta::{
    v1::{PutRequest, RangeRequest, kv_client::KvClient},
    watch::v1::{
        CancelReason, CreateRequest, WatchRequest, watch_client::WatchClient, watch_request,
        watch_response,
    },
};
use serde_json::Value;
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::{
    cluster::{self, Cluster, ClusterArgs},
    edge_cluster::{self, Edge, round},
    report::Report,
};

mod check;

use check::{Phase, analyse};

/// Digits of the write number at the end of every key.
const NUMBER_DIGITS: usize = 12;

/// Settings of the scenario.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Watcher counts, one phase each (with every rate of `--rates`).
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    watchers: Vec<usize>,
    /// Write rates: writes/s paced open-loop, or `max` (every writer back to back).
    #[arg(long, value_delimiter = ',', default_value = "2000,max", value_parser = parse_rate)]
    rates: Vec<Rate>,
    /// Watch streams (one connection each) the watchers of a phase are spread over.
    #[arg(long, default_value_t = 4)]
    streams: usize,
    /// 0: every watcher watches the whole table. K: writes go to K prefixes in turn and
    /// watcher i watches prefix i mod K.
    #[arg(long, default_value_t = 0)]
    prefixes: usize,
    /// Concurrent writers (each with at most one Put in flight).
    #[arg(long, default_value_t = 64)]
    writers: usize,
    /// gRPC channels to the core leader, shared round-robin by the writers.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Size of every value, in bytes.
    #[arg(long, default_value_t = 128)]
    value_size: usize,
    /// How long each phase measures, after its warm-up (`5s`, `500ms`, `1m`).
    #[arg(long, default_value = "5s", value_parser = cluster::parse_duration)]
    duration: Duration,
    /// Writing before the measurement of each phase starts (not measured).
    #[arg(long = "warm-up", default_value = "1s", value_parser = cluster::parse_duration)]
    warm_up: Duration,
    /// Deadline of each write.
    #[arg(long, default_value = "10s", value_parser = cluster::parse_duration)]
    timeout: Duration,
    /// How long after the last acknowledgment the edge and every watcher may take to show
    /// it (else the phase fails).
    #[arg(long, default_value = "20s", value_parser = cluster::parse_duration)]
    visible_timeout: Duration,
}

/// A write rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    PerSecond(u64),
    Max,
}

impl Rate {
    fn label(self) -> String {
        match self {
            Rate::PerSecond(r) => r.to_string(),
            Rate::Max => "max".into(),
        }
    }
}

fn parse_rate(text: &str) -> Result<Rate, String> {
    match text.trim() {
        "max" => Ok(Rate::Max),
        t => match t.parse::<u64>() {
            Ok(0) | Err(_) => Err(format!(
                "`{text}` is not a rate: writes per second (at least 1) or `max`"
            )),
            Ok(r) => Ok(Rate::PerSecond(r)),
        },
    }
}

pub fn run(args: Args) -> Result<()> {
    if args.writers == 0 || args.connections == 0 || args.streams == 0 {
        bail!("--writers, --connections and --streams must be at least 1");
    }
    if args.watchers.is_empty() || args.watchers.contains(&0) {
        bail!("--watchers must list counts of at least 1, e.g. 1,16,64");
    }
    if args.rates.is_empty() {
        bail!("--rates must list at least one rate, e.g. 2000,max");
    }
    if args.prefixes > 999 {
        bail!("--prefixes must be at most 999");
    }
    if args.duration.is_zero() {
        bail!("--duration must be more than 0");
    }
    let outcome = edge_cluster::run_with_edge(&args.cluster, async |cluster, edge| {
        scenario(&args, cluster, edge).await
    })?;
    // Printed once every process has stopped, so that the JSON object is the last line.
    let (report, failures) = outcome;
    report.print();
    if !failures.is_empty() {
        bail!(
            "the watchers did not get what was written:\n{}",
            failures.join("\n")
        );
    }
    Ok(())
}

async fn scenario(args: &Args, cluster: &Cluster, edge: &Edge) -> Result<(Report, Vec<String>)> {
    let table = "bench";
    cluster.create_table(table).await?;
    edge.wait_ready(Duration::from_secs(60)).await?;
    let leader = cluster.node(cluster.leader())?;
    edge.wait_applied(leader.status().await?.applied, Duration::from_secs(60))
        .await?;
    let pool = cluster::connect_pool(&[leader], args.connections.min(args.writers)).await?;

    let mut phases = Vec::new();
    let mut failures = Vec::new();
    let mut number = 0;
    for &watchers in &args.watchers {
        for &rate in &args.rates {
            number += 1;
            eprintln!(
                "phase {number}: {watchers} watchers over {} streams at the edge, writes at {} \
                 by {} writers (node {} leads), warm-up {:?}, then {:?}",
                args.streams.min(watchers),
                match rate {
                    Rate::PerSecond(r) => format!("{r}/s"),
                    Rate::Max => "the highest rate".into(),
                },
                args.writers,
                leader.id,
                args.warm_up,
                args.duration
            );
            let outcome = phase(args, cluster, edge, &pool, number, watchers, rate).await?;
            outcome.print_summary();
            for failure in &outcome.failures {
                failures.push(format!("phase {number}: {failure}"));
            }
            phases.push(outcome.json);
        }
    }
    let mut report = Report::new("watch");
    report
        .set("core_nodes", cluster.nodes().len())
        .set("edges", 1)
        .set("streams", args.streams)
        .set("prefixes", args.prefixes)
        .set("writers", args.writers)
        .set("value_size", args.value_size)
        .set("phase_seconds", round(args.duration.as_secs_f64(), 2))
        .set("checks_failed", failures.len())
        .set("phases", Value::Array(phases));
    Ok((report, failures))
}

/// What one phase measured.
struct PhaseOutcome {
    json: Value,
    summary: String,
    failures: Vec<String>,
}

impl PhaseOutcome {
    fn print_summary(&self) {
        println!("{}", self.summary);
        for failure in &self.failures {
            println!("  CHECK FAILED: {failure}");
        }
    }
}

/// The keys of one phase.
#[derive(Debug, Clone)]
struct Keys {
    phase: String,
    prefixes: usize,
}

impl Keys {
    fn key(&self, n: u64) -> Bytes {
        let digits = NUMBER_DIGITS;
        match self.prefixes {
            0 => Bytes::from(format!("{}{n:0digits$}", self.phase)),
            k => Bytes::from(format!("{}p{:03}/{n:0digits$}", self.phase, n % k as u64)),
        }
    }

    /// Which watchers see write `n`: all (None), or those of prefix `Some(k)`.
    fn prefix_of(&self, n: u64) -> Option<usize> {
        (self.prefixes > 0).then(|| (n % self.prefixes as u64) as usize)
    }

    /// The create request of watcher `i` (its watch id is `i + 1`).
    fn create(&self, table: &Bytes, i: usize) -> WatchRequest {
        let (key, range_end) = match self.prefixes {
            0 => (Bytes::from_static(b"\0"), Bytes::from_static(b"\0")),
            k => {
                // The prefix ends in '/'; its successor ends in '0'.
                let prefix = format!("{}p{:03}/", self.phase, i % k);
                let end = format!("{}p{:03}0", self.phase, i % k);
                (Bytes::from(prefix), Bytes::from(end))
            }
        };
        WatchRequest {
            request: Some(watch_request::Request::Create(CreateRequest {
                table: table.clone(),
                key,
                range_end,
                start_revision: 0,
                prev_kv: false,
                progress_notify: false,
                watch_id: i as i64 + 1,
            })),
        }
    }
}

/// The write number at the end of a key.
fn number_of(key: &[u8]) -> Option<u64> {
    let digits = key.get(key.len().checked_sub(NUMBER_DIGITS)?..)?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// One acknowledged write.
#[derive(Debug, Clone, Copy)]
struct Ack {
    n: u64,
    revision: u64,
    at: Instant,
    /// When it was due by the schedule (when it was sent, at `max`).
    due: Instant,
    sent: Instant,
}

/// What the writers of a phase share.
struct Schedule {
    table: Bytes,
    value: Bytes,
    keys: Keys,
    start: Instant,
    /// `None`: back to back until `end`.
    interval_nanos: Option<u64>,
    end: Instant,
    total: u64,
    next: AtomicU64,
    /// One past the highest write number sent.
    sent_through: AtomicU64,
    timeout: Duration,
    errors: AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
}

impl Schedule {
    fn due(&self, n: u64) -> Option<Instant> {
        self.interval_nanos
            .map(|i| self.start + Duration::from_nanos(n.saturating_mul(i)))
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

    fn first_error(&self) -> Option<String> {
        self.first_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Events one watcher received: `(write number, revision, arrival)` in arrival order.
type Received = Vec<(u64, u64, Instant)>;

/// What the stream tasks of a phase share.
struct Shared {
    created: AtomicUsize,
    /// Highest revision each watcher received, by watcher index.
    last_revision: Vec<AtomicU64>,
}

#[allow(clippy::too_many_arguments)]
async fn phase(
    args: &Args,
    cluster: &Cluster,
    edge: &Edge,
    pool: &[(u64, Channel)],
    number: usize,
    watchers: usize,
    rate: Rate,
) -> Result<PhaseOutcome> {
    let table = Bytes::from_static(b"bench");
    let keys = Keys {
        phase: format!("w{number:03}/"),
        prefixes: args.prefixes,
    };

    // The watchers, created before the first write.
    let shared = Arc::new(Shared {
        created: AtomicUsize::new(0),
        last_revision: (0..watchers).map(|_| AtomicU64::new(0)).collect(),
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let streams = args.streams.min(watchers);
    let mut stream_tasks = tokio::task::JoinSet::new();
    for s in 0..streams {
        let channel = edge.connect().await?;
        let (requests, rx) = futures::channel::mpsc::unbounded();
        let mine: Vec<usize> = (s..watchers).step_by(streams).collect();
        for &i in &mine {
            requests
                .unbounded_send(keys.create(&table, i))
                .context("queueing a create request")?;
        }
        let responses = WatchClient::new(channel)
            .watch(rx)
            .await
            .context("opening a Watch stream at the edge")?
            .into_inner();
        stream_tasks.spawn(read_stream(
            responses,
            requests,
            mine,
            watchers,
            keys.phase.clone(),
            shared.clone(),
            stop_rx.clone(),
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while shared.created.load(Relaxed) < watchers {
        if Instant::now() > deadline {
            bail!(
                "only {} of {watchers} watchers were created within 30s",
                shared.created.load(Relaxed)
            );
        }
        if let Some(joined) = stream_tasks.try_join_next() {
            joined.context("a stream task panicked")??;
            bail!("a Watch stream ended while its watchers were being created");
        }
        tokio::time::sleep(Duration::from_millis(5)).await; // poll interval while creating
    }

    // The edge's revision, read back to back on its own connection.
    let poll_stop = Arc::new(AtomicBool::new(false));
    let poller = tokio::spawn(poll_revision(
        KvClient::new(edge.connect().await?),
        table.clone(),
        poll_stop.clone(),
    ));

    let start = Instant::now() + Duration::from_millis(10);
    let end = start + args.warm_up + args.duration;
    let (interval_nanos, total) = match rate {
        Rate::PerSecond(r) => (
            Some(1_000_000_000 / r),
            (r as f64 * (args.warm_up + args.duration).as_secs_f64()).ceil() as u64,
        ),
        Rate::Max => (None, u64::MAX),
    };
    let schedule = Arc::new(Schedule {
        table: table.clone(),
        value: Bytes::from(vec![b'v'; args.value_size]),
        keys: keys.clone(),
        start,
        interval_nanos,
        end,
        total,
        next: AtomicU64::new(0),
        sent_through: AtomicU64::new(0),
        timeout: args.timeout,
        errors: AtomicU64::new(0),
        first_error: std::sync::Mutex::new(None),
    });
    let acks = write_all(args, &schedule, pool, cluster, edge, &shared).await?;
    let attempted = schedule.sent_through.load(Relaxed);

    // Every watcher's last revision: the highest acknowledged write among its keys.
    let mut targets = vec![0u64; watchers];
    let mut last_revision = 0;
    for ack in &acks {
        last_revision = last_revision.max(ack.revision);
        match keys.prefix_of(ack.n) {
            None => targets.iter_mut().for_each(|t| *t = (*t).max(ack.revision)),
            Some(k) => {
                for t in targets.iter_mut().skip(k).step_by(args.prefixes) {
                    *t = (*t).max(ack.revision);
                }
            }
        }
    }
    let deadline = Instant::now() + args.visible_timeout;
    let mut caught_up = false;
    while Instant::now() <= deadline {
        let edge_applied = edge.applied().await.unwrap_or(0);
        let watchers_done = shared
            .last_revision
            .iter()
            .zip(&targets)
            .all(|(seen, target)| seen.load(Relaxed) >= *target);
        if edge_applied >= last_revision && watchers_done {
            caught_up = true;
            break;
        }
        if let Some(joined) = stream_tasks.try_join_next() {
            // A stream ended early: its error says why.
            joined.context("a stream task panicked")??;
        }
        tokio::time::sleep(Duration::from_millis(10)).await; // poll interval
    }
    tokio::time::sleep(Duration::from_millis(20)).await; // one more revision read
    poll_stop.store(true, Relaxed);
    let _ = stop_tx.send(true);
    let visible = poller.await.context("the revision reader panicked")??;
    let mut received: Vec<Received> = vec![Vec::new(); watchers];
    let mut cancelled = Vec::new();
    while let Some(joined) = stream_tasks.join_next().await {
        let outcome = joined.context("a stream task panicked")??;
        for (i, events) in outcome.received {
            received[i] = events;
        }
        cancelled.extend(outcome.cancelled);
    }
    edge.check_running()?;
    cluster.check_running()?;

    let measure_from = start + args.warm_up;
    Ok(analyse(
        &Phase {
            args,
            number,
            watchers,
            rate,
            keys: &keys,
            measure_from,
            attempted,
            caught_up,
            cancelled,
        },
        &schedule,
        &acks,
        &received,
        &visible,
    ))
}

/// Runs the writers until the schedule is done, printing progress once a second; returns
/// every acknowledged write.
async fn write_all(
    args: &Args,
    schedule: &Arc<Schedule>,
    pool: &[(u64, Channel)],
    cluster: &Cluster,
    edge: &Edge,
    shared: &Shared,
) -> Result<Vec<Ack>> {
    let mut writers = tokio::task::JoinSet::new();
    for i in 0..args.writers {
        let channel = pool[i % pool.len()].1.clone();
        writers.spawn(writer(KvClient::new(channel), schedule.clone()));
    }
    let mut acks = Vec::new();
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
                let slowest = shared.last_revision.iter().map(|r| r.load(Relaxed)).min().unwrap_or(0);
                eprintln!(
                    "[{:>5.1}s] writes started {}, errors {}, slowest watcher at revision {slowest}",
                    schedule.start.elapsed().as_secs_f64(),
                    schedule.sent_through.load(Relaxed),
                    schedule.errors.load(Relaxed),
                );
                cluster.check_running()?;
                edge.check_running()?;
            }
        }
    }
    acks.sort_by_key(|a| a.n);
    Ok(acks)
}

/// One writer: takes the next write, waits until it is due (at a set rate), puts it.
async fn writer(mut kv: KvClient<Channel>, schedule: Arc<Schedule>) -> Result<Vec<Ack>> {
    let mut acks = Vec::new();
    loop {
        let n = schedule.next.fetch_add(1, Relaxed);
        if n >= schedule.total {
            return Ok(acks);
        }
        let due = match schedule.due(n) {
            Some(due) => {
                tokio::time::sleep_until(due).await;
                due
            }
            None => {
                let now = Instant::now();
                if now >= schedule.end {
                    return Ok(acks);
                }
                if now < schedule.start {
                    tokio::time::sleep_until(schedule.start).await;
                }
                Instant::now()
            }
        };
        schedule.sent_through.fetch_max(n + 1, Relaxed);
        let sent = Instant::now();
        let mut request = tonic::Request::new(PutRequest {
            table: schedule.table.clone(),
            key: schedule.keys.key(n),
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
                        n,
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

/// Reads one Watch stream until `stop`: counts its watchers' `Created` answers, stamps
/// every event with its message's arrival; returns each watcher's events by index. A
/// cancelled watcher or a failed stream is an error.
async fn read_stream(
    mut responses: tonic::Streaming<regatta_proto::regatta::watch::v1::WatchResponse>,
    // Kept open while reading: a closed request side is fine for the node, but this keeps
    // the stream's lifetime in one place.
    _requests: futures::channel::mpsc::UnboundedSender<WatchRequest>,
    mine: Vec<usize>,
    watchers: usize,
    phase_prefix: String,
    shared: Arc<Shared>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<StreamOutcome> {
    let mut received: Vec<Received> = vec![Vec::new(); mine.len()];
    let mut cancelled = Vec::new();
    // Watch id (index + 1) → position in `mine`.
    let mut slots = vec![None; watchers];
    for (s, &i) in mine.iter().enumerate() {
        slots[i] = Some(s);
    }
    let slot = |id: i64| -> Option<usize> {
        let i = usize::try_from(id.checked_sub(1)?).ok()?;
        slots.get(i).copied().flatten()
    };
    loop {
        let message = tokio::select! {
            message = responses.next() => message,
            _ = stop.wait_for(|stop| *stop) => break,
        };
        let at = Instant::now();
        let response = match message {
            Some(Ok(response)) => response,
            Some(Err(status)) => bail!("a Watch stream at the edge failed: {status}"),
            None => bail!("a Watch stream at the edge ended"),
        };
        let Some(s) = slot(response.watch_id) else {
            bail!(
                "an answer for watch id {} not of this stream",
                response.watch_id
            );
        };
        match response.kind {
            Some(watch_response::Kind::Created(_)) => {
                shared.created.fetch_add(1, Relaxed);
            }
            Some(watch_response::Kind::Events(events)) => {
                let mut last = 0;
                for event in &events.events {
                    let kv = event.kv.as_ref().context("an event without its key")?;
                    // A key of another phase (a write of an earlier phase applied late)
                    // gets a number no write of this phase has.
                    let n = if kv.key.starts_with(phase_prefix.as_bytes()) {
                        number_of(&kv.key).unwrap_or(u64::MAX)
                    } else {
                        u64::MAX
                    };
                    let revision = u64::try_from(kv.mod_revision).unwrap_or(0);
                    last = revision;
                    received[s].push((n, revision, at));
                }
                shared.last_revision[mine[s]].fetch_max(last, Relaxed);
            }
            Some(watch_response::Kind::Progress(_)) | None => {}
            Some(watch_response::Kind::Canceled(c)) => {
                cancelled.push(format!(
                    "watcher {} was cancelled ({:?}): {}",
                    mine[s],
                    CancelReason::try_from(c.reason).unwrap_or(CancelReason::Unspecified),
                    c.message
                ));
                // Nothing more will come: the phase does not wait for it.
                shared.last_revision[mine[s]].store(u64::MAX, Relaxed);
            }
        }
    }
    Ok(StreamOutcome {
        received: mine.into_iter().zip(received).collect(),
        cancelled,
    })
}

/// What one Watch stream received.
struct StreamOutcome {
    /// Each watcher's events, by watcher index.
    received: Vec<(usize, Received)>,
    /// Why a watcher was cancelled, for each one that was.
    cancelled: Vec<String>,
}

/// `(revision, first instant seen)` of the edge's read view, revisions increasing.
type Visible = Vec<(u64, Instant)>;

/// Reads the edge's revision back to back (a Range of an absent key: a header only).
async fn poll_revision(
    mut kv: KvClient<Channel>,
    table: Bytes,
    stop: Arc<AtomicBool>,
) -> Result<Visible> {
    let mut visible = Vec::new();
    let mut failures = 0u32;
    while !stop.load(Relaxed) {
        let mut request = tonic::Request::new(RangeRequest {
            table: table.clone(),
            key: Bytes::from_static(b"~watch-probe"),
            ..Default::default()
        });
        request.set_timeout(Duration::from_secs(5));
        match kv.range(request).await {
            Ok(response) => {
                let at = Instant::now();
                let revision = response.into_inner().header.map_or(0, |h| h.revision);
                if visible.last().is_none_or(|(last, _)| revision > *last) {
                    visible.push((revision, at));
                }
            }
            Err(status) => {
                failures += 1;
                if failures > 100 {
                    bail!("reading the edge's revision keeps failing: {status}");
                }
                tokio::time::sleep(Duration::from_millis(10)).await; // back off a failing edge
            }
        }
    }
    Ok(visible)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_their_write_and_prefix_watchers_see_their_share() {
        let keys = Keys {
            phase: "w001/".into(),
            prefixes: 3,
        };
        let key = keys.key(7);
        assert_eq!(&key[..], b"w001/p001/000000000007");
        assert_eq!(number_of(&key), Some(7));
        assert_eq!(keys.prefix_of(7), Some(1));
        match keys.create(&Bytes::from_static(b"t"), 4).request {
            Some(watch_request::Request::Create(c)) => {
                assert_eq!(&c.key[..], b"w001/p001/");
                assert_eq!(&c.range_end[..], b"w001/p0010");
                assert!(c.key <= key && key < c.range_end);
                assert_eq!(c.watch_id, 5);
            }
            other => panic!("expected a create, got {other:?}"),
        }
        let whole = Keys {
            phase: "w002/".into(),
            prefixes: 0,
        };
        assert_eq!(whole.prefix_of(7), None);
        assert_eq!(number_of(b"short"), None);
    }

    #[test]
    fn rates_are_per_second_or_max() {
        assert_eq!(parse_rate("2000"), Ok(Rate::PerSecond(2000)));
        assert_eq!(parse_rate("max"), Ok(Rate::Max));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("fast").is_err());
    }
}
