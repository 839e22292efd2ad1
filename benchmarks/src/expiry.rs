//! `expiry`: how fast keys with a time to live are deleted, and how late.
//!
//! Starts a 3-node core and one edge following it (real processes, loopback). `--writers`
//! tasks put `--keys` unique keys through the core leader, each with the TTL that makes it
//! expire at one common deadline (`--lead` after the writes start), so every key falls due
//! at once: the leader then deletes them in expiry entries of `--ttl.expiry-batch-keys`
//! keys (pass it with `--server-arg`). A watcher at the edge, started before the first put,
//! records each key's expiry from its PUT event (`expires_at_millis`) and the instant its
//! DELETE event arrived, on this machine's wall clock (the nodes' clock too: no skew).
//!
//! Reported: the expiry throughput (keys deleted per second, from the deadline to the last
//! delete seen at the edge), each key's lateness (its delete's arrival at the edge minus
//! its expiry: the leader's expiry interval, the commit, replication to the edge and the
//! watch stream, plus the queue of keys due before it) as p50/p99/max, and the expiry
//! entries the leader proposed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures::StreamExt;
use regatta_proto::regatta::v1::{PutRequest, kv_client::KvClient};
use regatta_proto::regatta::watch::v1::{
    CreateRequest, EventType, WatchRequest, watch_client::WatchClient, watch_request,
    watch_response,
};
use tonic::transport::Channel;

use crate::{
    cluster::{self, Cluster, ClusterArgs},
    edge_cluster::{self, Edge, round},
    report::{Report, percentile},
};

/// Settings of the scenario.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Keys put with a TTL (all expiring at the same deadline).
    #[arg(long, default_value_t = 20_000)]
    keys: u64,
    /// Concurrent writers, each with one Put in flight.
    #[arg(long, default_value_t = 64)]
    writers: usize,
    /// gRPC channels to the core leader, shared round-robin by the writers.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Size of every value, in bytes.
    #[arg(long, default_value_t = 64)]
    value_size: usize,
    /// The common deadline, this long after the writes start (must leave time for every
    /// put: a put that would arrive after it fails the run).
    #[arg(long, default_value = "10s", value_parser = cluster::parse_duration)]
    lead: Duration,
    /// How long after the deadline every delete must have reached the edge.
    #[arg(long, default_value = "120s", value_parser = cluster::parse_duration)]
    timeout: Duration,
}

fn now_ms() -> u64 {
    regatta_proto::now_micros() / 1000
}

pub fn run(args: Args) -> Result<()> {
    if args.keys == 0 || args.writers == 0 || args.connections == 0 {
        bail!("--keys, --writers and --connections must be at least 1");
    }
    let report = edge_cluster::run_with_edge(&args.cluster, async |cluster, edge| {
        scenario(&args, cluster, edge).await
    })?;
    report.print();
    Ok(())
}

/// What the edge's watcher saw: key → (expiry, ms the delete arrived).
#[derive(Default)]
struct Seen {
    expires: HashMap<Bytes, u64>,
    deleted: HashMap<Bytes, u64>,
}

async fn scenario(args: &Args, cluster: &Cluster, edge: &Edge) -> Result<Report> {
    let table = "bench";
    cluster.create_table(table).await?;
    edge.wait_ready(Duration::from_secs(60)).await?;
    let leader = cluster.node(cluster.leader())?;
    edge.wait_applied(leader.status().await?.applied, Duration::from_secs(60))
        .await?;

    // The watcher at the edge, from "now": every put and delete of the table.
    let (requests, rx) = futures::channel::mpsc::unbounded();
    requests
        .unbounded_send(WatchRequest {
            request: Some(watch_request::Request::Create(CreateRequest {
                table: Bytes::from(table),
                key: Bytes::from_static(b"\0"),
                range_end: Bytes::from_static(b"\0"),
                ..Default::default()
            })),
        })
        .context("opening the watch")?;
    let mut responses = WatchClient::new(edge.connect().await?)
        .max_decoding_message_size(64 << 20)
        .watch(rx)
        .await
        .context("watching the edge")?
        .into_inner();
    match responses.next().await {
        Some(Ok(r)) if matches!(r.kind, Some(watch_response::Kind::Created(_))) => {}
        other => bail!("the edge did not create the watcher: {other:?}"),
    }
    let total = args.keys;
    let watcher = tokio::spawn(async move {
        let mut seen = Seen::default();
        while (seen.deleted.len() as u64) < total {
            let Some(message) = responses.next().await else {
                bail!("the watch stream ended");
            };
            let arrived = now_ms();
            match message.context("the watch stream failed")?.kind {
                Some(watch_response::Kind::Events(e)) => {
                    for event in e.events {
                        let Some(kv) = event.kv else { continue };
                        if event.r#type == EventType::Delete as i32 {
                            seen.deleted.insert(kv.key, arrived);
                        } else {
                            let at = u64::try_from(kv.expires_at_millis).unwrap_or(0);
                            seen.expires.insert(kv.key, at);
                        }
                    }
                }
                Some(watch_response::Kind::Canceled(c)) => {
                    bail!("the watcher was cancelled: {c:?}")
                }
                _ => {}
            }
        }
        drop(requests);
        Ok(seen)
    });

    // The writers: every key expires at `deadline`.
    let started = now_ms();
    let deadline = started + u64::try_from(args.lead.as_millis()).unwrap_or(u64::MAX);
    eprintln!(
        "{} keys put through the core leader (node {}) by {} writers, all expiring {:?} after the start",
        args.keys, leader.id, args.writers, args.lead
    );
    let pool = cluster::connect_pool(&[leader], args.connections.min(args.writers)).await?;
    let next = Arc::new(AtomicU64::new(0));
    let value = Bytes::from(vec![b'v'; args.value_size]);
    let mut writers = tokio::task::JoinSet::new();
    for i in 0..args.writers {
        writers.spawn(writer(
            KvClient::new(pool[i % pool.len()].1.clone()),
            next.clone(),
            total,
            deadline,
            value.clone(),
        ));
    }
    while let Some(done) = writers.join_next().await {
        done.context("a writer panicked")??;
    }
    let written = now_ms();
    if written >= deadline {
        bail!(
            "the puts took {} ms, past the deadline: raise --lead",
            written - started
        );
    }
    eprintln!(
        "puts done in {} ms ({:.0}/s); waiting for the deadline and the deletes",
        written - started,
        total as f64 * 1000.0 / (written - started).max(1) as f64
    );
    let wait = args.lead + args.timeout;
    let seen = tokio::time::timeout(wait, watcher)
        .await
        .with_context(|| format!("not every delete reached the edge within {wait:?}"))?
        .context("the watcher panicked")??;
    edge.check_running()?;
    cluster.check_running()?;

    // Lateness of each key: its delete's arrival at the edge minus its expiry.
    let mut late = Vec::with_capacity(seen.deleted.len());
    for (key, arrived) in &seen.deleted {
        let Some(expires) = seen.expires.get(key) else {
            bail!("a delete of {key:?} came without its put");
        };
        if *expires == 0 {
            bail!("{key:?} was put without an expiry");
        }
        late.push(arrived.saturating_sub(*expires));
    }
    late.sort_unstable();
    let last = seen.deleted.values().max().copied().unwrap_or(deadline);
    let span_ms = last.saturating_sub(deadline).max(1);
    let metrics = leader_metrics(cluster).await;
    let mut report = Report::new("expiry");
    report
        .set("core_nodes", cluster.nodes().len())
        .set("keys", total)
        .set("writers", args.writers)
        .set("value_size", args.value_size)
        .set("puts_ms", written - started)
        .set("expiry_span_ms", span_ms)
        .set(
            "expired_keys_per_sec",
            round(total as f64 * 1000.0 / span_ms as f64, 0),
        )
        .set("late_p50_ms", percentile(&late, 50.0))
        .set("late_p99_ms", percentile(&late, 99.0))
        .set("late_max_ms", late.last().copied().unwrap_or(0))
        .set(
            "expire_entries",
            metric(&metrics, "regatta_ttl_expire_entries_total"),
        )
        .set(
            "expired_keys_leader",
            metric(&metrics, "regatta_ttl_expired_keys_total"),
        );
    Ok(report)
}

/// Puts keys `next..total` with the TTL that makes each expire at `deadline`.
async fn writer(
    mut kv: KvClient<Channel>,
    next: Arc<AtomicU64>,
    total: u64,
    deadline: u64,
    value: Bytes,
) -> Result<()> {
    loop {
        let n = next.fetch_add(1, Relaxed);
        if n >= total {
            return Ok(());
        }
        let ttl = deadline.saturating_sub(now_ms());
        if ttl == 0 {
            bail!("key {n} is due after the deadline: raise --lead");
        }
        kv.put(PutRequest {
            table: Bytes::from_static(b"bench"),
            key: Bytes::from(format!("expiring/{n:010}")),
            value: value.clone(),
            prev_kv: false,
            ttl_millis: i64::try_from(ttl).unwrap_or(i64::MAX),
        })
        .await
        .with_context(|| format!("put of key {n}"))?;
    }
}

/// The leader's `/metrics` text (empty if it cannot be read).
async fn leader_metrics(cluster: &Cluster) -> String {
    match cluster.node(cluster.leader()) {
        Ok(node) => edge_cluster::metrics_text(&node.rest)
            .await
            .unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// The value of an unlabelled series in a `/metrics` text (0 when absent).
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(' ')?;
            rest.trim().parse::<f64>().ok()
        })
        .map_or(0, |v| v as u64)
}
