//! A cluster of real `regatta` processes on loopback ports, for the end-to-end scenarios.
//!
//! [`run`] owns the whole life of a cluster: it starts the nodes in a temporary directory,
//! runs the scenario on a multi-thread tokio runtime, and stops every process it started —
//! SIGTERM, then SIGKILL after a grace period — whether the scenario succeeds, fails, or is
//! interrupted by SIGINT/SIGTERM. Each node writes its log to `node.log` in its data
//! directory; when a scenario fails, the last lines of every node's log are printed.
//!
//! Reused by every scenario that needs running servers (core now, edges later).

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};
use regatta_proto::regatta::v1::{
    CreateTableRequest, StatusRequest, cluster_client::ClusterClient, tables_client::TablesClient,
};
use tonic::transport::{Channel, Endpoint};

/// How long start-up may take: processes up, `/readyz` answering 200, a leader agreed on.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a node gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// A request made while setting up or checking the cluster (not a measured one).
pub(crate) const CONTROL_TIMEOUT: Duration = Duration::from_secs(5);

/// Options shared by every scenario that starts servers.
#[derive(clap::Args, Debug, Clone)]
pub struct ClusterArgs {
    /// The `regatta` server binary (default: `regatta` next to this executable).
    #[arg(long)]
    pub regatta_bin: Option<PathBuf>,
    /// Directory under which the cluster's temporary data directory is created, itself
    /// created when missing (default: the system temp dir). Put it on the disk you want to
    /// measure: fsync cost is the point.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Keep the data directories and node logs after the run (their path is printed).
    #[arg(long)]
    pub keep_data: bool,
    /// `RUST_LOG` of the server processes.
    #[arg(long, default_value = "warn")]
    pub server_log: String,
    /// Extra argument passed to every node, e.g. `--server-arg=--raft.heartbeat-interval=100ms`
    /// (repeatable).
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    pub server_args: Vec<String>,
    /// Extra argument passed to every edge process, e.g.
    /// `--edge-arg=--runtime.worker-threads=2` (repeatable).
    #[arg(long = "edge-arg", allow_hyphen_values = true)]
    pub edge_args: Vec<String>,
    /// Which core node the scenario's edge tails first: `leader` (runs 1–8 of RESULTS.md) or
    /// `follower` (the lowest-numbered follower; the leader is then listed last). The other
    /// nodes stay in its upstream list for failover either way.
    #[arg(long, value_enum, default_value_t = EdgeFollows::Leader)]
    pub edge_follows: EdgeFollows,
    /// Worker threads of the load generator's (multi-thread) tokio runtime (default: one per
    /// CPU). The servers run on the same CPUs.
    #[arg(long)]
    pub loader_threads: Option<usize>,
    /// Serve every node's public API (core and edge) over TLS, with a certificate made for
    /// the run, and speak TLS from the load generator: the cost of TLS beside a plaintext
    /// run.
    #[arg(long)]
    pub tls: bool,
}

/// Which core node an edge of a scenario tails first.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeFollows {
    Leader,
    Follower,
}

/// Which nodes the clients of a scenario send their requests to.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Only the leader.
    Leader,
    /// Only one follower (the lowest-numbered one).
    Follower,
    /// Every node, clients spread round-robin.
    All,
}

impl Target {
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Leader => "leader",
            Target::Follower => "follower",
            Target::All => "all",
        }
    }
}

/// The `regatta` binary to start: the flag's, else the one next to this executable.
pub fn server_binary(flag: Option<&Path>) -> Result<PathBuf> {
    let path = match flag {
        Some(path) => path.to_path_buf(),
        None => std::env::current_exe()
            .context("locating the regatta-bench executable")?
            .with_file_name("regatta"),
    };
    if !path.is_file() {
        bail!(
            "the server binary {} does not exist: build it with `cargo build --release -p regatta` \
             (it lands next to regatta-bench), or name one with --regatta-bin",
            path.display()
        );
    }
    Ok(path)
}

/// Starts a `nodes`-node core cluster, waits until it is ready, runs `scenario` on it and
/// stops every process, whatever happens. Stops early with an error on SIGINT or SIGTERM.
pub fn run<T>(
    args: &ClusterArgs,
    nodes: u64,
    scenario: impl AsyncFnOnce(&Cluster) -> Result<T>,
) -> Result<T> {
    let binary = server_binary(args.regatta_bin.as_deref())?;
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.loader_threads {
        builder.worker_threads(threads.max(1));
    }
    let runtime = builder
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    let mut cluster = Cluster::start(&binary, nodes, args)?;
    let outcome = runtime.block_on(async {
        let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .context("listening for SIGINT")?;
        let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("listening for SIGTERM")?;
        tokio::select! {
            result = async {
                cluster.wait_ready().await?;
                scenario(&cluster).await
            } => result,
            _ = sigint.recv() => Err(Interrupted("SIGINT").into()),
            _ = sigterm.recv() => Err(Interrupted("SIGTERM").into()),
        }
    });
    // Clients still running on the runtime must not outlive it talking to stopped nodes.
    runtime.shutdown_timeout(Duration::from_secs(1));
    if let Err(e) = &outcome
        && e.downcast_ref::<Interrupted>().is_none()
    {
        cluster.print_log_tails(20);
    }
    eprintln!("stopping the cluster");
    cluster.stop();
    outcome
}

/// The run was stopped by a signal (named).
#[derive(Debug)]
struct Interrupted(&'static str);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "interrupted by {}", self.0)
    }
}

impl std::error::Error for Interrupted {}

/// One `regatta core` process.
pub struct Node {
    pub id: u64,
    pub api: String,
    pub raft: String,
    pub rest: String,
    pub replication: String,
    pub data_dir: PathBuf,
    child: Mutex<Option<Child>>,
}

impl Node {
    fn log_path(&self) -> PathBuf {
        self.data_dir.join("node.log")
    }

    /// A new gRPC channel (one HTTP/2 connection) to this node's public API.
    pub async fn connect(&self) -> Result<Channel> {
        channel(&self.api)
            .await
            .with_context(|| format!("connecting to node {} at {}", self.id, self.api))
    }

    /// Cluster.Status of this node, parsed.
    pub async fn status(&self) -> Result<NodeStatus> {
        let mut client = ClusterClient::new(self.connect().await?);
        let mut request = tonic::Request::new(StatusRequest { config: false });
        request.set_timeout(CONTROL_TIMEOUT);
        let info = client.status(request).await?.into_inner().info;
        Ok(NodeStatus::parse(&info))
    }

    /// The node's process id while it runs (for CPU accounting).
    pub fn pid(&self) -> Option<u32> {
        child_pid(&self.child)
    }

    /// Sends `signal` (`KILL`, `STOP`, `CONT`, `TERM`, …) to the node's process.
    pub fn signal(&self, signal: &str) -> Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| anyhow!("node {} has no process", self.id))?;
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .stderr(Stdio::null())
            .status()
            .context("running kill")?;
        if !status.success() {
            bail!(
                "kill -{signal} of node {} (pid {pid}) failed: {status}",
                self.id
            );
        }
        Ok(())
    }

    /// Blocks up to `timeout` for the node's process to exit; its exit status, or None while
    /// it runs.
    pub fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        let mut child = lock(&self.child);
        wait_until_exit(child.as_mut()?, Instant::now() + timeout)
    }

    fn tail_log(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// The fields of Cluster.Status's `info` a scenario needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeStatus {
    pub leader: u64,
    pub applied: u64,
}

impl NodeStatus {
    /// Parses `kind=core leader=2 term=3 applied=120 commit=120`; missing fields are 0.
    fn parse(info: &str) -> Self {
        let field = |name: &str| {
            info.split_whitespace()
                .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Self {
            leader: field("leader"),
            applied: field("applied"),
        }
    }
}

/// Running core nodes in a temporary directory.
pub struct Cluster {
    nodes: Vec<Node>,
    dir: Option<tempfile::TempDir>,
    keep_data: bool,
    leader: std::sync::atomic::AtomicU64,
    /// How a node is started (again): the binary, `--raft.initial-members`, the settings.
    binary: PathBuf,
    members: String,
    args: ClusterArgs,
}

impl ClusterArgs {
    /// A fresh directory named `prefix…` under `--work-dir` (created first when missing) or
    /// the system's temporary directory.
    pub fn temp_dir(&self, prefix: &str) -> Result<tempfile::TempDir> {
        let mut builder = tempfile::Builder::new();
        builder.prefix(prefix);
        match &self.work_dir {
            Some(parent) => {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("--work-dir {}", parent.display()))?;
                builder.tempdir_in(parent).with_context(|| {
                    format!("creating {prefix}… in --work-dir {}", parent.display())
                })
            }
            None => builder
                .tempdir()
                .with_context(|| format!("creating {prefix}… in the temporary directory")),
        }
    }
}

impl Cluster {
    /// Spawns `n` nodes that form one cluster. Does not wait for them (see `wait_ready`).
    fn start(binary: &Path, n: u64, args: &ClusterArgs) -> Result<Self> {
        let dir = args.temp_dir("regatta-bench-")?;
        let mut nodes = Vec::new();
        for id in 1..=n {
            let data_dir = dir.path().join(format!("node-{id}"));
            std::fs::create_dir_all(&data_dir)
                .with_context(|| format!("creating {}", data_dir.display()))?;
            nodes.push(Node {
                id,
                api: loopback_url()?.replacen("http", crate::tls::api_scheme(args.tls), 1),
                raft: loopback_url()?,
                rest: loopback_url()?,
                replication: loopback_url()?,
                data_dir,
                child: Mutex::new(None),
            });
        }
        let members = nodes
            .iter()
            .map(|n| format!("{}={}", n.id, n.raft))
            .collect::<Vec<_>>()
            .join(",");
        eprintln!(
            "starting {n} core nodes of {} in {}",
            binary.display(),
            dir.path().display()
        );
        let cluster = Self {
            nodes,
            dir: Some(dir),
            keep_data: args.keep_data,
            leader: std::sync::atomic::AtomicU64::new(0),
            binary: binary.to_path_buf(),
            members,
            args: args.clone(),
        };
        for node in &cluster.nodes {
            // On error, `cluster` is dropped and stops the nodes already started.
            cluster.spawn(node, false)?;
        }
        Ok(cluster)
    }

    /// Starts `node`'s process, its output into the node's log (appended to when `again`).
    fn spawn(&self, node: &Node, again: bool) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(again)
            .truncate(!again)
            .open(node.log_path())
            .with_context(|| format!("opening {}", node.log_path().display()))?;
        let child = Command::new(&self.binary)
            .arg("core")
            .arg(format!("--raft.node-id={}", node.id))
            .arg(format!("--raft.address={}", node.raft))
            .arg(format!("--raft.initial-members={}", self.members))
            .arg(format!("--api.address={}", node.api))
            .arg(format!("--rest.address={}", node.rest))
            .arg(format!("--replication.address={}", node.replication))
            .arg(format!("--data-dir={}", node.data_dir.display()))
            .args(crate::tls::api_args(self.args.tls, &node.data_dir)?)
            .args(&self.args.server_args)
            .env("RUST_LOG", &self.args.server_log)
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("duplicating the log file handle")?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting node {} ({})", node.id, self.binary.display()))?;
        *lock(&node.child) = Some(child);
        Ok(())
    }

    /// Starts node `id` again once its process has exited (after a kill or a stop); waits up
    /// to the stop grace for it to exit first.
    pub fn restart(&self, id: u64) -> Result<()> {
        let node = self.node(id)?;
        if let Some(mut child) = lock(&node.child).take()
            && wait_until_exit(&mut child, Instant::now() + STOP_GRACE).is_none()
        {
            bail!("node {id} is still running {STOP_GRACE:?} after it was stopped");
        }
        self.spawn(node, true)
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn node(&self, id: u64) -> Result<&Node> {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .ok_or_else(|| anyhow!("no node {id}"))
    }

    /// The leader agreed on when the cluster became ready.
    pub fn leader(&self) -> u64 {
        self.leader.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The nodes that `target` selects, leader known.
    pub fn targets(&self, target: Target) -> Result<Vec<&Node>> {
        let leader = self.leader();
        let nodes: Vec<&Node> = match target {
            Target::Leader => vec![self.node(leader)?],
            Target::Follower => self
                .nodes
                .iter()
                .filter(|n| n.id != leader)
                .take(1)
                .collect(),
            Target::All => self.nodes.iter().collect(),
        };
        if nodes.is_empty() {
            bail!("no node matches target {}", target.as_str());
        }
        Ok(nodes)
    }

    /// Waits until every node answers `/readyz` with 200 and all agree on one leader.
    async fn wait_ready(&self) -> Result<()> {
        let started = Instant::now();
        let deadline = started + START_TIMEOUT;
        let mut pause = Duration::from_millis(20);
        let mut last = String::from("nothing checked yet");
        while Instant::now() < deadline {
            self.check_running()?;
            match self.readiness().await {
                Ok(leader) => {
                    self.leader
                        .store(leader, std::sync::atomic::Ordering::Relaxed);
                    eprintln!(
                        "cluster ready after {:.1}s, leader node {leader}",
                        started.elapsed().as_secs_f64()
                    );
                    return Ok(());
                }
                Err(why) => last = format!("{why:#}"),
            }
            tokio::time::sleep(pause).await; // poll backoff while nodes start
            pause = (pause * 2).min(Duration::from_millis(250));
        }
        bail!("the cluster was not ready within {START_TIMEOUT:?}: {last}")
    }

    /// The agreed leader if every node is ready, else why not.
    pub(crate) async fn readiness(&self) -> Result<u64> {
        let mut leader = None;
        for node in &self.nodes {
            let rest = node.rest.clone();
            let code = tokio::task::spawn_blocking(move || http_status(&rest, "/readyz"))
                .await
                .context("readiness probe task")?;
            if code != Some(200) {
                bail!("node {} /readyz answered {code:?}", node.id);
            }
            let status = node.status().await?;
            if status.leader == 0 || leader.is_some_and(|l| l != status.leader) {
                bail!("node {} reports leader {}", node.id, status.leader);
            }
            leader = Some(status.leader);
        }
        leader.ok_or_else(|| anyhow!("the cluster has no nodes"))
    }

    /// An error naming the node if any process has exited.
    pub fn check_running(&self) -> Result<()> {
        for node in &self.nodes {
            if let Some(status) = exit_status(&node.child) {
                bail!(
                    "node {} exited with {status}; its log ({}) ends with:\n{}",
                    node.id,
                    node.log_path().display(),
                    node.tail_log(20)
                );
            }
        }
        Ok(())
    }

    /// Creates `name` through any node, retrying while the cluster is not ready for it.
    pub async fn create_table(&self, name: &str) -> Result<()> {
        let node = self.node(self.leader())?;
        let mut tables = TablesClient::new(node.connect().await?);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let mut request = tonic::Request::new(CreateTableRequest {
                name: name.to_string(),
                config: None,
            });
            request.set_timeout(CONTROL_TIMEOUT);
            match tables.create(request).await {
                Ok(_) => return Ok(()),
                Err(s) if s.code() == tonic::Code::AlreadyExists => return Ok(()),
                Err(s) if s.code() == tonic::Code::Unavailable && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await; // retry backoff
                }
                Err(s) => return Err(anyhow!(s).context(format!("creating table {name}"))),
            }
        }
    }

    /// Waits until every node has applied at least `index`.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        for node in &self.nodes {
            loop {
                let status = node.status().await?;
                if status.applied >= index {
                    break;
                }
                if Instant::now() > deadline {
                    bail!(
                        "node {} applied only {} of {index} within {timeout:?}",
                        node.id,
                        status.applied
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await; // poll interval
            }
        }
        Ok(())
    }

    fn print_log_tails(&self, lines: usize) {
        for node in &self.nodes {
            eprintln!(
                "---- last log lines of node {} ({}) ----\n{}",
                node.id,
                node.log_path().display(),
                node.tail_log(lines)
            );
        }
    }

    /// SIGTERM to every running node, then SIGKILL to those still running after the grace
    /// period. Idempotent.
    pub fn stop(&mut self) {
        for node in &self.nodes {
            if let Some(child) = lock(&node.child).as_ref() {
                sigterm(child);
            }
        }
        let deadline = Instant::now() + STOP_GRACE;
        for node in &self.nodes {
            let Some(mut child) = lock(&node.child).take() else {
                continue;
            };
            let status = wait_until_exit(&mut child, deadline);
            match status {
                Some(status) if !status.success() => {
                    eprintln!("node {} exited with {status}", node.id);
                }
                Some(_) => {}
                None => {
                    eprintln!(
                        "node {} still running {STOP_GRACE:?} after SIGTERM: killing it",
                        node.id
                    );
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
        if let Some(dir) = self.dir.take() {
            if self.keep_data {
                eprintln!("data and node logs kept in {}", dir.keep().display());
            } else if let Err(e) = dir.close() {
                eprintln!("could not remove the cluster's directory: {e}");
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits for `child` to exit until `deadline`; its status, or None if it is still running.
pub(crate) fn wait_until_exit(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20)); // poll interval
            }
            Ok(None) | Err(_) => return None,
        }
    }
}

/// The id of the process in `child` while it is held (`None` before it starts or once
/// stopped): for CPU accounting and signals.
pub(crate) fn child_pid(child: &Mutex<Option<Child>>) -> Option<u32> {
    lock(child).as_ref().map(Child::id)
}

/// How the process in `child` ended, if it has (`None` while it runs or before it starts).
pub(crate) fn exit_status(child: &Mutex<Option<Child>>) -> Option<String> {
    match lock(child).as_mut().map(Child::try_wait) {
        Some(Ok(Some(status))) => Some(status.to_string()),
        Some(Err(e)) => Some(format!("an unknown status ({e})")),
        Some(Ok(None)) | None => None,
    }
}

/// A new gRPC channel (one HTTP/2 connection) to `url`; callers add what they connect to.
pub(crate) async fn channel(url: &str) -> Result<Channel> {
    let endpoint = Endpoint::from_shared(url.to_string())
        .context("address")?
        .tcp_nodelay(true)
        .connect_timeout(CONTROL_TIMEOUT);
    Ok(crate::tls::dialer(url)?.connect(endpoint).await?)
}

/// Asks `child` to stop (SIGTERM); it may take its time.
pub(crate) fn sigterm(child: &Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .stderr(Stdio::null())
        .status();
}

/// The guarded value even if a thread panicked while holding the lock.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// GET `path` on an HTTP port (`http://host:port`): the status code, if it answers.
fn http_status(url: &str, path: &str) -> Option<u16> {
    let addr: SocketAddr = url.trim_start_matches("http://").parse().ok()?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head).ok()?;
    std::str::from_utf8(&head[..n])
        .ok()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// `http://127.0.0.1:<port>` with a port nothing listens on right now.
pub(crate) fn loopback_url() -> Result<String> {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("finding a free loopback port")?
        .port();
    Ok(format!("http://127.0.0.1:{port}"))
}

// ---- Client side: what every load scenario against a cluster shares. ----

/// Parses `20s`, `500ms`, `2m` or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 20s, 500ms or 2m"))?;
    let seconds = match unit {
        "ms" => number / 1000.0,
        "s" => number,
        "m" => number * 60.0,
        _ => return Err(format!("`{text}`: unknown unit `{unit}` (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{text}`: {e}"))
}

/// `connections` gRPC channels (one HTTP/2 connection each), spread round-robin over
/// `nodes`, each with the id of the node it reaches.
pub async fn connect_pool(nodes: &[&Node], connections: usize) -> Result<Vec<(u64, Channel)>> {
    if connections == 0 {
        bail!("--connections must be at least 1");
    }
    let mut pool = Vec::with_capacity(connections);
    for i in 0..connections {
        let node = nodes[i % nodes.len()];
        pool.push((node.id, node.connect().await?));
    }
    Ok(pool)
}

/// A latency histogram in microseconds, from 1 µs to 60 s, 3 significant digits.
pub fn latency_histogram() -> Result<hdrhistogram::Histogram<u64>> {
    hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 3).context("creating a histogram")
}

/// Counters the clients of a scenario share, read once a second for progress.
#[derive(Debug, Default)]
pub struct Counters {
    /// Requests answered successfully inside the measured window.
    pub ok: std::sync::atomic::AtomicU64,
    /// Requests answered successfully during the warm-up.
    pub warmup: std::sync::atomic::AtomicU64,
    pub errors: std::sync::atomic::AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Counters {
    pub fn record_error(&self, error: impl std::fmt::Display) {
        self.errors
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut first = lock(&self.first_error);
        if first.is_none() {
            *first = Some(error.to_string());
        }
    }

    pub fn first_error(&self) -> Option<String> {
        lock(&self.first_error).clone()
    }

    /// Counts one operation begun at `started` that succeeded: its latency into `histogram`
    /// and `ok` inside the measured window (from `measure_from`), `warmup` before it.
    pub fn record_ok(
        &self,
        histogram: &mut hdrhistogram::Histogram<u64>,
        started: tokio::time::Instant,
        measure_from: tokio::time::Instant,
    ) {
        if started >= measure_from {
            histogram.saturating_record(started.elapsed().as_micros() as u64);
            self.ok.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        } else {
            self.warmup
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// The pause of a client after a failed request: a failing server must not be hammered in a
/// tight loop.
pub async fn back_off() {
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// Waits for every client task, printing a progress line per second to stderr (`what`
/// names the operation, e.g. "writes") and checking that every node is still running.
/// Returns the clients' histograms merged.
pub async fn drive(
    cluster: &Cluster,
    mut clients: tokio::task::JoinSet<Result<hdrhistogram::Histogram<u64>>>,
    counters: &Counters,
    what: &str,
    measure_from: tokio::time::Instant,
) -> Result<hdrhistogram::Histogram<u64>> {
    use std::sync::atomic::Ordering::Relaxed;
    let started = tokio::time::Instant::now();
    let mut merged = latency_histogram()?;
    let mut tick =
        tokio::time::interval_at(started + Duration::from_secs(1), Duration::from_secs(1));
    let mut last = (started, 0u64);
    loop {
        tokio::select! {
            joined = clients.join_next() => match joined {
                Some(result) => {
                    let histogram = result.context("a client task panicked")??;
                    merged.add(&histogram).context("merging histograms")?;
                }
                None => return Ok(merged),
            },
            now = tick.tick() => {
                let done = counters.ok.load(Relaxed) + counters.warmup.load(Relaxed);
                let rate = (done - last.1) as f64 / (now - last.0).as_secs_f64();
                last = (now, done);
                let phase = if now < measure_from { " (warm-up)" } else { "" };
                eprintln!(
                    "[{:>6.1}s] {rate:>9.0} {what}/s  measured {:>9}  errors {}{phase}",
                    (now - started).as_secs_f64(),
                    counters.ok.load(Relaxed),
                    counters.errors.load(Relaxed),
                );
                cluster.check_running()?;
            }
        }
    }
}

/// Adds the latency percentiles (µs) of `histogram` to `report`.
pub fn report_latency(
    report: &mut crate::report::Report,
    histogram: &hdrhistogram::Histogram<u64>,
) {
    report
        .set("p50_us", histogram.value_at_quantile(0.50))
        .set("p99_us", histogram.value_at_quantile(0.99))
        .set("p999_us", histogram.value_at_quantile(0.999))
        .set("max_us", histogram.max())
        .set("mean_us", (histogram.mean() * 10.0).round() / 10.0);
}

/// A small, fast pseudo-random generator (xorshift64*) for picking keys; not for secrets.
#[derive(Debug, Clone)]
pub struct FastRng(u64);

impl FastRng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Uniform-enough value in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % bound
    }
}
