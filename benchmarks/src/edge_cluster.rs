//! An edge node (`regatta edge`, a real process on loopback ports) beside the 3-node core of
//! [`crate::cluster`], for the edge scenarios: `edge-read`, `replication-lag` and
//! `edge-bootstrap`.
//!
//! [`with_edge_scratch`] wraps [`cluster::run`]: it makes a scratch directory (for the edge's
//! data and, when asked, a local-directory object store the core uploads to) that outlives the
//! cluster, and removes it afterwards. An [`Edge`] stops its process — SIGTERM, then SIGKILL
//! after a grace period — when it is dropped: on success, on error, and when the scenario
//! future is dropped because `cluster::run` caught SIGINT/SIGTERM. Its log is `node.log` in its
//! data directory; on error its last lines are printed.

use std::{
    collections::HashMap,
    fs::File,
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, atomic::AtomicU64, atomic::Ordering::Relaxed},
    time::Duration,
};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use regatta_proto::{
    mvcc::v1::{RequestOp, request_op},
    regatta::v1::{StatusRequest, TxnRequest, cluster_client::ClusterClient, kv_client::KvClient},
};
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::cluster::{
    self, CONTROL_TIMEOUT, Cluster, ClusterArgs, EdgeFollows, Node, lock, wait_until_exit,
};

/// How long a node gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A scratch directory beside the cluster's: the edge's data dir and the object store.
pub struct Scratch {
    dir: Option<tempfile::TempDir>,
    keep: bool,
}

impl Scratch {
    pub fn new(args: &ClusterArgs) -> Result<Self> {
        let dir = args.temp_dir("regatta-bench-edge-")?;
        Ok(Self {
            dir: Some(dir),
            keep: args.keep_data,
        })
    }

    /// Absolute path of the scratch directory.
    pub fn path(&self) -> Result<PathBuf> {
        let dir = self
            .dir
            .as_ref()
            .ok_or_else(|| anyhow!("scratch dir gone"))?;
        std::fs::canonicalize(dir.path()).context("resolving the scratch directory")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            if self.keep {
                eprintln!(
                    "edge data and object store kept in {}",
                    dir.keep().display()
                );
            } else if let Err(e) = dir.close() {
                eprintln!("could not remove the edge's scratch directory: {e}");
            }
        }
    }
}

/// Runs `scenario` on a 3-node core whose nodes get `extra_core_args` too, with a scratch
/// directory for the edge (and object store) that is removed after every process stopped.
pub fn run_with_scratch<T>(
    args: &ClusterArgs,
    extra_core_args: impl FnOnce(&Path) -> Vec<String>,
    scenario: impl AsyncFnOnce(&Cluster, &Path) -> Result<T>,
) -> Result<T> {
    let scratch = Scratch::new(args)?;
    let path = scratch.path()?;
    let mut core_args = args.clone();
    core_args.server_args.extend(extra_core_args(&path));
    let outcome = cluster::run(&core_args, 3, async |cluster| {
        scenario(cluster, &path).await
    });
    drop(scratch);
    outcome
}

/// Runs `scenario` on a 3-node core and one edge following it; the edge's last log lines
/// are printed if the scenario fails.
pub fn run_with_edge<T>(
    args: &ClusterArgs,
    scenario: impl AsyncFnOnce(&Cluster, &Edge) -> Result<T>,
) -> Result<T> {
    run_with_scratch(
        args,
        |_| Vec::new(),
        async |cluster, scratch| {
            let edge = Edge::follow(args, cluster, scratch)?;
            with_edge_log(&edge, async || scenario(cluster, &edge).await).await
        },
    )
}

/// Replication URLs of the core nodes (the edge's upstreams): the leader's first, or with
/// `EdgeFollows::Follower` last.
pub fn upstreams(cluster: &Cluster, follows: EdgeFollows) -> Vec<String> {
    let leader = cluster.leader();
    let mut nodes: Vec<&Node> = cluster.nodes().iter().collect();
    match follows {
        EdgeFollows::Leader => nodes.sort_by_key(|n| (n.id != leader, n.id)),
        EdgeFollows::Follower => nodes.sort_by_key(|n| (n.id == leader, n.id)),
    }
    nodes.iter().map(|n| n.replication.clone()).collect()
}

/// One `regatta edge` process.
pub struct Edge {
    pub api: String,
    pub rest: String,
    pub replication: String,
    pub data_dir: PathBuf,
    child: Mutex<Option<Child>>,
}

impl Edge {
    /// Spawns an edge following every node of `cluster` (in `--edge-follows` order), with its
    /// data in `scratch/edge` and no object store: the edge of the read and lag scenarios.
    pub fn follow(args: &ClusterArgs, cluster: &Cluster, scratch: &Path) -> Result<Self> {
        Self::start(
            args,
            scratch.join("edge"),
            &upstreams(cluster, args.edge_follows),
            None,
        )
    }

    /// Spawns an edge following `upstreams` with its data in `data_dir` (created; should be
    /// empty). Does not wait for it (see [`Edge::wait_ready`]).
    pub fn start(
        args: &ClusterArgs,
        data_dir: PathBuf,
        upstreams: &[String],
        object_store: Option<&Path>,
    ) -> Result<Self> {
        let binary = cluster::server_binary(args.regatta_bin.as_deref())?;
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let edge = Self {
            api: loopback_url()?.replacen("http", crate::tls::api_scheme(args.tls), 1),
            rest: loopback_url()?,
            replication: loopback_url()?,
            data_dir,
            child: Mutex::new(None),
        };
        let log = File::create(edge.log_path())
            .with_context(|| format!("creating {}", edge.log_path().display()))?;
        let mut command = Command::new(&binary);
        command
            .arg("edge")
            .arg(format!(
                "--replication.leader-address={}",
                upstreams.join(",")
            ))
            .arg(format!("--api.address={}", edge.api))
            .arg(format!("--rest.address={}", edge.rest))
            .arg(format!("--replication.address={}", edge.replication))
            .arg(format!("--data-dir={}", edge.data_dir.display()))
            .args(crate::tls::api_args(args.tls, &edge.data_dir)?);
        if let Some(dir) = object_store {
            command.arg(format!("--object-store=file://{}", dir.display()));
        }
        command.args(&args.edge_args);
        let child = command
            .env("RUST_LOG", &args.server_log)
            .env("REGATTA_LOG_LEVEL", &args.server_log)
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("duplicating the log file handle")?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting the edge ({})", binary.display()))?;
        eprintln!(
            "started edge (pid {}) following {}, data in {}",
            child.id(),
            upstreams.join(","),
            edge.data_dir.display()
        );
        *lock(&edge.child) = Some(child);
        Ok(edge)
    }

    fn log_path(&self) -> PathBuf {
        self.data_dir.join("node.log")
    }

    /// A new gRPC channel (one HTTP/2 connection) to the edge's public API.
    pub async fn connect(&self) -> Result<Channel> {
        cluster::channel(&self.api)
            .await
            .with_context(|| format!("connecting to the edge at {}", self.api))
    }

    /// `count` channels to the edge.
    pub async fn connect_pool(&self, count: usize) -> Result<Vec<Channel>> {
        let mut pool = Vec::with_capacity(count);
        for _ in 0..count.max(1) {
            pool.push(self.connect().await?);
        }
        Ok(pool)
    }

    /// Cluster.Status `info` of the edge as `name → value`.
    pub async fn status(&self) -> Result<HashMap<String, String>> {
        let mut client = ClusterClient::new(self.connect().await?);
        let mut request = tonic::Request::new(StatusRequest { config: false });
        request.set_timeout(CONTROL_TIMEOUT);
        let info = client.status(request).await?.into_inner().info;
        Ok(parse_info(&info))
    }

    /// The edge's applied index, from Cluster.Status.
    pub async fn applied(&self) -> Result<u64> {
        let status = self.status().await?;
        status
            .get("applied")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow!("edge status without applied=: {status:?}"))
    }

    /// HTTP status of the edge's `/readyz` (None: no answer).
    pub async fn readyz(&self) -> Option<u16> {
        let rest = self.rest.clone();
        tokio::task::spawn_blocking(move || http_get(&rest, "/readyz").map(|(code, _)| code))
            .await
            .ok()
            .flatten()
    }

    /// The edge's `/metrics` text.
    pub async fn metrics(&self) -> Result<String> {
        metrics_text(&self.rest).await
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let started = Instant::now();
        loop {
            self.check_running()?;
            if self.readyz().await == Some(200) {
                eprintln!("edge ready after {:.1}s", started.elapsed().as_secs_f64());
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the edge was not ready within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await; // poll interval while starting
        }
    }

    /// Waits until the edge has applied at least `index`, printing progress.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut last_print = Instant::now();
        loop {
            self.check_running()?;
            let applied = self.applied().await.unwrap_or(0);
            if applied >= index {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the edge applied only {applied} of {index} within {timeout:?}");
            }
            if last_print.elapsed() >= Duration::from_secs(2) {
                eprintln!("edge applied {applied} of {index}");
                last_print = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(20)).await; // poll interval
        }
    }

    /// The edge's process id while it runs (for CPU accounting).
    pub fn pid(&self) -> Option<u32> {
        cluster::child_pid(&self.child)
    }

    /// An error if the edge process has exited.
    pub fn check_running(&self) -> Result<()> {
        if let Some(status) = cluster::exit_status(&self.child) {
            bail!(
                "the edge exited with {status}; its log ({}) ends with:\n{}",
                self.log_path().display(),
                self.tail_log(20)
            );
        }
        Ok(())
    }

    pub fn tail_log(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGTERM, then SIGKILL after the grace period. Idempotent.
    pub fn stop(&self) {
        let Some(mut child) = lock(&self.child).take() else {
            return;
        };
        eprintln!("stopping the edge");
        cluster::sigterm(&child);
        match wait_until_exit(&mut child, std::time::Instant::now() + STOP_GRACE) {
            Some(status) if !status.success() => eprintln!("the edge exited with {status}"),
            Some(_) => {}
            None => {
                eprintln!("the edge still runs {STOP_GRACE:?} after SIGTERM: killing it");
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `body` with `edge`; on error prints the edge's last log lines. The edge is stopped
/// when the caller drops it.
pub async fn with_edge_log<T>(edge: &Edge, body: impl AsyncFnOnce() -> Result<T>) -> Result<T> {
    let outcome = body().await;
    if outcome.is_err() {
        eprintln!(
            "---- last log lines of the edge ({}) ----\n{}",
            edge.log_path().display(),
            edge.tail_log(20)
        );
    }
    outcome
}

/// Parses `kind=edge leader=0 applied=12 …` into a map.
fn parse_info(info: &str) -> HashMap<String, String> {
    info.split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `/metrics` of the HTTP port at `rest`.
pub async fn metrics_text(rest: &str) -> Result<String> {
    let rest = rest.to_string();
    let url = rest.clone();
    match tokio::task::spawn_blocking(move || http_get(&url, "/metrics"))
        .await
        .context("metrics task")?
    {
        Some((200, body)) => Ok(body),
        other => bail!(
            "GET {rest}/metrics answered {:?}",
            other.map(|(code, _)| code)
        ),
    }
}

/// The value of an unlabelled (or first labelled) sample `name` in Prometheus text.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let mut parts = line.split_whitespace();
            let series = parts.next()?;
            let matches = series == name
                || series
                    .strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{'));
            if matches {
                parts.next()?.parse().ok()
            } else {
                None
            }
        })
}

/// Writes keys `0..count` (`key(i)` → `value(i)`) through `node` in Txn batches of `batch`
/// puts with `concurrency` Txns in flight; returns the highest revision acknowledged.
#[allow(clippy::too_many_arguments)]
pub async fn preload(
    node: &Node,
    table: &str,
    count: u64,
    batch: u64,
    concurrency: usize,
    key: fn(u64) -> Bytes,
    value: impl Fn(u64) -> Bytes + Send + Sync + 'static,
    timeout: Duration,
) -> Result<u64> {
    if batch == 0 {
        bail!("the preload batch must hold at least one put");
    }
    let concurrency = concurrency.max(1);
    let pool = cluster::connect_pool(&[node], concurrency.min(8)).await?;
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let value = Arc::new(value);
    let mut loaders = tokio::task::JoinSet::new();
    for i in 0..concurrency {
        let mut kv = KvClient::new(pool[i % pool.len()].1.clone());
        let (next, done, value) = (next.clone(), done.clone(), value.clone());
        let table = Bytes::from(table.to_string());
        loaders.spawn(async move {
            let mut revision = 0;
            loop {
                let first = next.fetch_add(batch, Relaxed);
                if first >= count {
                    return anyhow::Ok(revision);
                }
                let last = (first + batch).min(count);
                let success = (first..last)
                    .map(|i| RequestOp {
                        request: Some(request_op::Request::RequestPut(request_op::Put {
                            key: key(i),
                            value: value(i),
                            prev_kv: false,
                            ttl_millis: 0,
                        })),
                    })
                    .collect();
                let mut request = tonic::Request::new(TxnRequest {
                    table: table.clone(),
                    compare: Vec::new(),
                    success,
                    failure: Vec::new(),
                });
                request.set_timeout(timeout);
                let response = kv
                    .txn(request)
                    .await
                    .with_context(|| format!("preloading keys {first}..{last}"))?
                    .into_inner();
                if !response.succeeded {
                    bail!("a preload Txn without compares did not succeed");
                }
                revision = revision.max(response.header.map_or(0, |h| h.revision));
                done.fetch_add(last - first, Relaxed);
            }
        });
    }
    let started = Instant::now();
    let mut tick =
        tokio::time::interval_at(started + Duration::from_secs(2), Duration::from_secs(2));
    let mut revision = 0;
    loop {
        tokio::select! {
            joined = loaders.join_next() => match joined {
                Some(result) => revision = revision.max(result.context("a preload task panicked")??),
                None => break,
            },
            _ = tick.tick() => {
                let done = done.load(Relaxed);
                eprintln!(
                    "[{:>6.1}s] preloaded {done} of {count} keys ({:.0} keys/s)",
                    started.elapsed().as_secs_f64(),
                    done as f64 / started.elapsed().as_secs_f64()
                );
            }
        }
    }
    Ok(revision)
}

/// Rounds to `digits` decimals, for the report.
pub fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

/// GET `path` on an HTTP port (`http://host:port`) with HTTP/1.0: status code and body.
fn http_get(url: &str, path: &str) -> Option<(u16, String)> {
    let addr: SocketAddr = url.trim_start_matches("http://").parse().ok()?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = Vec::new();
    // The server closes the connection after an HTTP/1.0 answer.
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response);
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    Some((code, body))
}

/// `http://127.0.0.1:<port>` with a port nothing listens on right now.
fn loopback_url() -> Result<String> {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("finding a free loopback port")?
        .port();
    Ok(format!("http://127.0.0.1:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_reads_plain_and_labelled_samples() {
        let text = "# HELP x\nregatta_edge_applied_index 42\nregatta_edge_upstream{u=\"a\"} 1\n\
                    regatta_edge_applied_index_total 7\n";
        assert_eq!(metric(text, "regatta_edge_applied_index"), Some(42.0));
        assert_eq!(metric(text, "regatta_edge_upstream"), Some(1.0));
        assert_eq!(metric(text, "regatta_missing"), None);
    }

    #[test]
    fn parse_info_splits_fields() {
        let info = parse_info("kind=edge leader=0 applied=12 upstream=http://x:1");
        assert_eq!(info.get("applied").map(String::as_str), Some("12"));
        assert_eq!(info.get("upstream").map(String::as_str), Some("http://x:1"));
    }
}
