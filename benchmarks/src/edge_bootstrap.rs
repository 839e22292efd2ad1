//! `edge-bootstrap`: how long a fresh edge takes from process start to serving, when it has
//! to bootstrap from the newest snapshot in object storage.
//!
//! Starts a 3-node core uploading snapshots to a local-directory object store
//! (`--object-store=file:///<scratch>/objects`, every `--upload-entries` entries or
//! `--upload-interval`) and compacting its log often (`--raft.snapshot-entries`,
//! `--raft.keep-entries`), so that the log no longer holds index 1 and an edge cannot simply
//! replay it. Loads `--keys` keys of 16–32 bytes with `--value-size` pseudo-random printable
//! values through the leader in Txn batches of `--preload-batch` puts, waits until the core
//! reports (`regatta_snapshot_last_upload_revision` on `/metrics`) a snapshot at the last
//! revision, then starts a fresh edge on the same object store and measures from just before
//! its process is spawned until (1) its `/readyz` answers 200 and (2) a serializable Range of
//! the last key returns the right value. Reports whether the edge bootstrapped or replayed
//! the log (`regatta_edge_bootstraps_total`).

use std::{path::Path, time::Duration};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use regatta_proto::regatta::v1::{RangeRequest, kv_client::KvClient};
use tokio::time::Instant;

use crate::{
    cluster::{self, Cluster, ClusterArgs, FastRng},
    edge_cluster::{self, Edge, metric, round},
    report::Report,
};

/// Settings of the scenario.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Keys loaded before the edge starts.
    #[arg(long, default_value_t = 1_000_000)]
    keys: u64,
    /// Size of every value, in bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Puts per Txn while loading.
    #[arg(long, default_value_t = 500)]
    preload_batch: u64,
    /// Txns in flight while loading.
    #[arg(long, default_value_t = 4)]
    preload_concurrency: usize,
    /// The core's `--object-store.snapshot-entries`.
    #[arg(long, default_value_t = 1_000)]
    upload_entries: u64,
    /// The core's `--object-store.snapshot-interval`: makes the core upload a snapshot at the
    /// last revision soon after the load ends.
    #[arg(long, default_value = "3s")]
    upload_interval: String,
    /// The core's `--raft.snapshot-entries` (log compaction). Raft purges the log only in
    /// batches of this many entries, and concurrent preload writes share entries (group
    /// proposal: 1M keys make ~1,000 entries), so it must stay well below the entry count.
    #[arg(long, default_value_t = 200)]
    raft_snapshot_entries: u64,
    /// The core's `--raft.keep-entries`.
    #[arg(long, default_value_t = 50)]
    raft_keep_entries: u64,
    /// How long the core may take to upload the snapshot, and the edge to serve.
    #[arg(long, default_value = "300s", value_parser = cluster::parse_duration)]
    timeout: Duration,
}

/// The `i`th key: 16 to 32 bytes.
fn key(i: u64) -> Bytes {
    let pad = (i.wrapping_mul(7919) % 17) as usize;
    Bytes::from(format!("k{i:015}{}", "x".repeat(pad)))
}

/// The `i`th value: `size` pseudo-random printable bytes (they compress like text does).
fn value(i: u64, size: usize) -> Bytes {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut rng = FastRng::new(i + 1);
    (0..size)
        .map(|_| ALPHABET[rng.below(ALPHABET.len() as u64) as usize])
        .collect::<Vec<u8>>()
        .into()
}

pub fn run(args: Args) -> Result<()> {
    if args.keys == 0 || args.preload_batch == 0 {
        bail!("--keys and --preload-batch must be at least 1");
    }
    let report = edge_cluster::run_with_scratch(
        &args.cluster,
        |scratch| {
            vec![
                format!(
                    "--object-store=file://{}",
                    scratch.join("objects").display()
                ),
                format!("--object-store.snapshot-entries={}", args.upload_entries),
                format!("--object-store.snapshot-interval={}", args.upload_interval),
                format!("--raft.snapshot-entries={}", args.raft_snapshot_entries),
                format!("--raft.keep-entries={}", args.raft_keep_entries),
            ]
        },
        async |cluster, scratch| scenario(&args, cluster, scratch).await,
    )?;
    // Printed once every process has stopped, so that the JSON object is the last line.
    report.print();
    Ok(())
}

async fn scenario(args: &Args, cluster: &Cluster, scratch: &Path) -> Result<Report> {
    let table = "bench";
    let objects = scratch.join("objects");
    cluster.create_table(table).await?;
    let load_started = Instant::now();
    let value_size = args.value_size;
    let revision = edge_cluster::preload(
        cluster.node(cluster.leader())?,
        table,
        args.keys,
        args.preload_batch,
        args.preload_concurrency,
        key,
        move |i| value(i, value_size),
        Duration::from_secs(60),
    )
    .await?;
    let load_seconds = load_started.elapsed().as_secs_f64();
    eprintln!(
        "loaded {} keys in {load_seconds:.1}s ({:.0} keys/s), last revision {revision}",
        args.keys,
        args.keys as f64 / load_seconds
    );

    let uploaded = wait_uploaded(cluster, revision, args.timeout).await?;
    let (snapshot_name, snapshot_bytes) = newest_snapshot(&objects.join("snapshots"))?;
    eprintln!(
        "snapshot at revision {uploaded} in the object store ({snapshot_name}, {:.1} MiB)",
        snapshot_bytes as f64 / (1 << 20) as f64
    );

    // A core node purges its log only up to what it has archived to the object store; wait
    // for every node's first archive so the log no longer starts at index 1.
    wait_archived(cluster, args.timeout).await?;

    let last = args.keys - 1;
    let (last_key, last_value) = (key(last), value(last, args.value_size));
    eprintln!("starting a fresh edge on the same object store");
    let started = Instant::now();
    let edge = Edge::start(
        &args.cluster,
        scratch.join("edge"),
        &edge_cluster::upstreams(cluster, args.cluster.edge_follows),
        Some(&objects),
    )?;
    let measured = edge_cluster::with_edge_log(&edge, async || {
        until_serving(&edge, table, &last_key, &last_value, started, args.timeout).await
    })
    .await?;
    let metrics = edge.metrics().await?;
    let bootstraps = metric(&metrics, "regatta_edge_bootstraps_total").unwrap_or(0.0) as u64;
    let bootstrap_seconds = metric(&metrics, "regatta_edge_last_bootstrap_seconds");
    let applied = edge.applied().await?;
    let how = if bootstraps > 0 {
        "bootstrapped from a snapshot"
    } else {
        "replayed the core's log (no bootstrap)"
    };
    eprintln!(
        "edge ready after {:.3}s, serving the last key after {:.3}s; {how}",
        measured.ready, measured.serving
    );

    let mut report = Report::new("edge-bootstrap");
    report
        .set("keys", args.keys)
        .set("value_size", args.value_size)
        .set("preload_batch", args.preload_batch)
        .set("load_seconds", round(load_seconds, 2))
        .set("last_revision", revision)
        .set("snapshot_revision", uploaded)
        .set("snapshot_bytes", snapshot_bytes)
        .set("raft_snapshot_entries", args.raft_snapshot_entries)
        .set("raft_keep_entries", args.raft_keep_entries)
        .set("edge_bootstraps", bootstraps)
        .set("edge_how", how)
        .set(
            "edge_bootstrap_metric_seconds",
            bootstrap_seconds.map_or(serde_json::Value::Null, |s| round(s, 3).into()),
        )
        .set("edge_applied", applied)
        .set("ready_seconds", round(measured.ready, 3))
        .set("serving_seconds", round(measured.serving, 3))
        .set("seconds", round(measured.ready.max(measured.serving), 3));
    Ok(report)
}

/// Every core node's value of the gauge `name` (0 where it is missing or unreachable).
async fn node_metric(cluster: &Cluster, name: &str) -> Vec<u64> {
    let mut values = Vec::new();
    for node in cluster.nodes() {
        let value = match edge_cluster::metrics_text(&node.rest).await {
            Ok(text) => metric(&text, name).unwrap_or(0.0) as u64,
            Err(_) => 0,
        };
        values.push(value);
    }
    values
}

/// Polls every core node's gauge `name` until `done` accepts the values; returns them.
/// Prints what it waits for every 2 s and fails after `timeout`.
async fn wait_metric(
    cluster: &Cluster,
    name: &str,
    what: &str,
    timeout: Duration,
    done: impl Fn(&[u64]) -> bool,
) -> Result<Vec<u64>> {
    let started = Instant::now();
    let mut last_print = Instant::now();
    loop {
        cluster.check_running()?;
        let values = node_metric(cluster, name).await;
        if done(&values) {
            eprintln!(
                "{what}: {name} {values:?} after {:.1}s",
                started.elapsed().as_secs_f64()
            );
            return Ok(values);
        }
        if started.elapsed() > timeout {
            bail!("not within {timeout:?}: {what} ({name} {values:?})");
        }
        if last_print.elapsed() >= Duration::from_secs(2) {
            eprintln!("waiting: {what} ({name} {values:?})");
            last_print = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await; // poll interval
    }
}

/// Waits until a core node reports a snapshot upload at `revision` or later; returns it.
async fn wait_uploaded(cluster: &Cluster, revision: u64, timeout: Duration) -> Result<u64> {
    let values = wait_metric(
        cluster,
        "regatta_snapshot_last_upload_revision",
        &format!("a snapshot upload at revision {revision}"),
        timeout,
        |v| v.iter().any(|&r| r >= revision),
    )
    .await?;
    Ok(values.into_iter().max().unwrap_or(0))
}

/// Waits until every core node reports archived log segments
/// (`regatta_archive_last_index` > 0), after which its log purge may pass index 1.
async fn wait_archived(cluster: &Cluster, timeout: Duration) -> Result<()> {
    wait_metric(
        cluster,
        "regatta_archive_last_index",
        "every core node archived segments",
        timeout,
        |v| v.iter().all(|&i| i > 0),
    )
    .await
    .map(|_| ())
}

/// The newest file in the object store's `snapshots/` directory and its size.
fn newest_snapshot(dir: &Path) -> Result<(String, u64)> {
    let mut newest: Option<(String, u64)> = None;
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let bytes = entry.metadata()?.len();
        if newest.as_ref().is_none_or(|(n, _)| name > *n) {
            newest = Some((name, bytes));
        }
    }
    newest.with_context(|| format!("no snapshot in {}", dir.display()))
}

/// Seconds from `started` until the edge was ready and until it served the last key.
struct Serving {
    ready: f64,
    serving: f64,
}

async fn until_serving(
    edge: &Edge,
    table: &str,
    last_key: &Bytes,
    last_value: &Bytes,
    started: Instant,
    timeout: Duration,
) -> Result<Serving> {
    let deadline = started + timeout;
    let (mut ready, mut serving) = (None, None);
    let mut kv = None;
    let mut last_answer = String::from("nothing yet");
    while ready.is_none() || serving.is_none() {
        edge.check_running()?;
        if Instant::now() > deadline {
            bail!("the edge was not serving within {timeout:?}: {last_answer}");
        }
        if ready.is_none() && edge.readyz().await == Some(200) {
            ready = Some(started.elapsed().as_secs_f64());
        }
        if serving.is_none() {
            if kv.is_none() {
                kv = edge.connect().await.ok().map(KvClient::new);
            }
            if let Some(client) = kv.as_mut() {
                let mut request = tonic::Request::new(RangeRequest {
                    table: Bytes::from(table.to_string()),
                    key: last_key.clone(),
                    ..Default::default()
                });
                request.set_timeout(Duration::from_secs(2));
                match client.range(request).await {
                    Ok(response) => {
                        let response = response.into_inner();
                        if matches!(response.kvs.as_slice(), [kv] if kv.value == *last_value) {
                            serving = Some(started.elapsed().as_secs_f64());
                        } else {
                            last_answer = format!(
                                "the last key read back {} kvs at revision {}",
                                response.kvs.len(),
                                response.header.map_or(0, |h| h.revision)
                            );
                        }
                    }
                    Err(status) => last_answer = format!("reading the last key: {status}"),
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await; // poll interval while starting
    }
    Ok(Serving {
        ready: ready.unwrap_or_default(),
        serving: serving.unwrap_or_default(),
    })
}
