//! Harness for end-to-end tests: real `regatta` processes on loopback ports, clients, and
//! waiting on state.
//!
//! Every test reads as phases (`phase("…")` prints one line each). Nodes write their logs to
//! files in their data directory; when a test fails, the last lines of every node's log are
//! printed by [`Cluster`]'s drop.

#![allow(dead_code, clippy::unwrap_used)]

pub mod regatta_flags;
pub mod small_disk;

use std::{
    fs::File,
    future::Future,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use regatta_proto::regatta::v1::{
    CreateTableRequest, PutRequest, RangeRequest, RangeResponse, cluster_client::ClusterClient,
    kv_client::KvClient, tables_client::TablesClient,
};
use tonic::transport::Channel;

/// How long any single wait in a test may take before the test fails. Generous: tests run
/// on loaded 2-core machines.
pub const WAIT: Duration = Duration::from_secs(60);

pub fn phase(what: &str) {
    eprintln!(
        "[{:>8.3}s] == {what}",
        START.get_or_init(Instant::now).elapsed().as_secs_f64()
    );
}

static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// A port nothing listens on right now, never the same twice in one test process.
///
/// Ports come from 15000..32000, below Linux's ephemeral range (32768..61000), so a port
/// handed out here is not also taken by an outgoing connection or by another process's
/// `bind(0)`; the start point is drawn from the process id and the clock, so test processes
/// running side by side pick different ports, and each candidate is checked by binding it.
pub fn free_port() -> u16 {
    use std::sync::Mutex;
    static GIVEN: Mutex<Option<(u64, std::collections::HashSet<u16>)>> = Mutex::new(None);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let (state, seen) = given.get_or_insert_with(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let seed = (u64::from(std::process::id()) << 32) ^ u64::from(nanos) | 1;
        (seed, std::collections::HashSet::new())
    });
    loop {
        // xorshift64: cheap, and good enough to spread processes over the range.
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        let port = 15000 + (*state % 17000) as u16;
        if !seen.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            seen.insert(port);
            return port;
        }
    }
}

/// Polls `check` until it returns true, failing the test with `reason` after [`WAIT`].
pub async fn wait_until<F, Fut>(reason: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    let mut pause = Duration::from_millis(5);
    loop {
        if check().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {WAIT:?} waiting until {reason}"
        );
        tokio::time::sleep(pause).await; // poll backoff
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// [`wait_until`] for tests without a runtime: polls `check` on this thread until it returns
/// true, failing the test with `reason` after [`WAIT`].
pub fn wait_until_blocking(reason: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    let mut pause = Duration::from_millis(5);
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {WAIT:?} waiting until {reason}"
        );
        std::thread::sleep(pause); // poll backoff
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// One core node process and everything needed to restart it as it was.
pub struct Node {
    pub id: u64,
    pub api: String,
    pub raft: String,
    pub rest: String,
    pub replication: String,
    pub data_dir: PathBuf,
    pub args: Vec<String>,
    /// A command the node runs under, e.g. `prlimit --as=N --` (empty: none).
    pub run_under: Vec<String>,
    child: Option<Child>,
}

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_regatta"))
}

/// Runs `regatta args…` (with `env` added) to its exit, as a start-up that must fail is
/// run: its exit code (-1 when killed by a signal) and its stdout and stderr together.
pub fn run_to_exit(args: &[String], env: &[(&str, &str)]) -> (i32, String) {
    let out = std::process::Command::new(binary())
        .args(args)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run regatta");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

impl Node {
    pub fn core(id: u64, root: &Path) -> Self {
        let data_dir = root.join(format!("node-{id}"));
        std::fs::create_dir_all(&data_dir).unwrap();
        Self {
            id,
            api: format!("http://127.0.0.1:{}", free_port()),
            raft: format!("http://127.0.0.1:{}", free_port()),
            rest: format!("http://127.0.0.1:{}", free_port()),
            replication: format!("http://127.0.0.1:{}", free_port()),
            data_dir,
            args: Vec::new(),
            run_under: Vec::new(),
            child: None,
        }
    }

    /// Starts (or restarts) the process with `extra` arguments after the node's own.
    pub fn start(&mut self, members: &str) {
        assert!(self.child.is_none(), "node {} already running", self.id);
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut cmd = match self.run_under.split_first() {
            Some((wrapper, wrapper_args)) => {
                let mut cmd = Command::new(wrapper);
                cmd.args(wrapper_args).arg(binary());
                cmd
            }
            None => Command::new(binary()),
        };
        cmd.arg("core")
            .arg(format!("--raft.node-id={}", self.id))
            .arg(format!("--raft.address={}", self.raft))
            .arg(format!("--raft.initial-members={members}"))
            .arg(format!("--api.address={}", self.api))
            .arg(format!("--rest.address={}", self.rest))
            .arg(format!("--replication.address={}", self.replication))
            .arg(format!("--data-dir={}", self.data_dir.display()))
            .args(&self.args)
            .env("RUST_LOG", "info,openraft=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.child = Some(cmd.spawn().expect("start regatta"));
    }

    pub fn log_path(&self) -> PathBuf {
        self.data_dir.join("node.log")
    }

    /// SIGSTOP: the process keeps its sockets open but runs nothing (a frozen node).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`Self::pause`].
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let child = self.child.as_ref().expect("the node is running");
        let status = Command::new("kill")
            .arg(sig)
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill {sig} node {}", self.id);
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL: the process gets no chance to flush anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM, then waits for a clean exit and returns its status code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                child.kill().unwrap();
                panic!("node {} did not exit within {WAIT:?} of SIGTERM", self.id);
            }
            std::thread::sleep(Duration::from_millis(20)); // poll interval
        }
    }

    /// Waits for the process to exit on its own (a node that refuses to start) and returns
    /// its exit code.
    pub async fn wait_for_exit(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "node {} still running {WAIT:?} after it was expected to exit",
                self.id
            );
            tokio::time::sleep(Duration::from_millis(50)).await; // poll interval
        }
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.api.clone())
            .unwrap()
            .connect_lazy()
    }

    pub async fn kv(&self) -> KvClient<Channel> {
        KvClient::new(self.channel().await)
    }

    pub async fn tables(&self) -> TablesClient<Channel> {
        TablesClient::new(self.channel().await)
    }

    pub async fn cluster(&self) -> ClusterClient<Channel> {
        ClusterClient::new(self.channel().await)
    }

    /// GET on the node's HTTP port; the status code, or None when it does not answer.
    pub async fn http_status(&self, path: &str) -> Option<u16> {
        let addr = self.rest.trim_start_matches("http://").to_string();
        let path = path.to_string();
        tokio::task::spawn_blocking(move || http_get(&addr, &path).map(|(code, _)| code))
            .await
            .unwrap()
    }

    pub async fn http_body(&self, path: &str) -> Option<String> {
        let addr = self.rest.trim_start_matches("http://").to_string();
        let path = path.to_string();
        tokio::task::spawn_blocking(move || http_get(&addr, &path).map(|(_, body)| body))
            .await
            .unwrap()
    }

    fn tail_log(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- last log lines of node {} ----\n{}",
                self.id,
                self.tail_log(40)
            );
        }
        self.kill();
    }
}

/// Reads an HTTP/1.0 response to its end: the status code and body.
fn read_response(mut stream: std::net::TcpStream) -> Option<(u16, String)> {
    use std::io::Read;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((code, body))
}

/// A minimal HTTP/1.0 GET, enough for the health and metrics endpoints.
fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    read_response(stream)
}

/// A core cluster of real processes in a temporary directory.
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub members: String,
    pub dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` core nodes that form one cluster.
    pub fn start(n: u64) -> Self {
        Self::start_with(n, &[])
    }

    pub fn start_with(n: u64, args: &[&str]) -> Self {
        Self::start_under(n, args, &[])
    }

    /// Starts `n` core nodes with `args`, each run under `run_under` (see [`Node::run_under`]).
    pub fn start_under(n: u64, args: &[&str], run_under: &[String]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut nodes: Vec<Node> = (1..=n).map(|id| Node::core(id, dir.path())).collect();
        let members = initial_members(&nodes);
        for node in &mut nodes {
            node.args = args.iter().map(|s| s.to_string()).collect();
            node.run_under = run_under.to_vec();
            node.start(&members);
        }
        Self {
            nodes,
            members,
            dir,
        }
    }

    pub fn node(&mut self, id: u64) -> &mut Node {
        self.nodes.iter_mut().find(|n| n.id == id).unwrap()
    }

    pub fn restart(&mut self, id: u64) {
        let members = self.members.clone();
        self.node(id).start(&members);
    }

    /// Waits until some running node reports a leader that all running nodes agree on.
    pub async fn wait_for_leader(&self) -> u64 {
        self.wait_for_leader_other_than(0).await
    }

    /// Waits until the running nodes agree on a leader that is not `old` (a killed leader).
    pub async fn wait_for_leader_other_than(&self, old: u64) -> u64 {
        let leader = std::sync::atomic::AtomicU64::new(0);
        wait_until("the running nodes agree on a (new) leader", || async {
            let mut seen = None;
            for node in self.nodes.iter().filter(|n| n.is_running()) {
                let Some(l) = leader_of(node).await else {
                    return false;
                };
                if l == 0 || l == old || seen.is_some_and(|s| s != l) {
                    return false;
                }
                seen = Some(l);
            }
            leader.store(seen.unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
            seen.is_some()
        })
        .await;
        leader.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The leader id a node reports in Cluster.Status, if it answers and knows one.
pub async fn leader_of(node: &Node) -> Option<u64> {
    let mut client = node.cluster().await;
    let status = client
        .status(regatta_proto::regatta::v1::StatusRequest { config: false })
        .await
        .ok()?;
    let info = status.into_inner().info;
    info.split_whitespace()
        .find_map(|w| w.strip_prefix("leader="))
        .and_then(|l| l.parse().ok())
}

pub async fn create_table(node: &Node, name: &str) {
    let mut tables = node.tables().await;
    wait_until(&format!("table {name} is created"), || {
        let mut tables = tables.clone();
        let name = name.to_string();
        async move {
            match tables
                .create(CreateTableRequest { name, config: None })
                .await
            {
                Ok(_) => true,
                Err(s) if s.code() == tonic::Code::AlreadyExists => true,
                Err(s) if s.code() == tonic::Code::Unavailable => false,
                Err(s) => panic!("creating a table failed: {s}"),
            }
        }
    })
    .await;
    let _ = &mut tables;
}

pub async fn put(node: &Node, table: &str, key: &str, value: &str) -> Result<u64, tonic::Status> {
    let mut kv = node.kv().await;
    let resp = kv
        .put(PutRequest {
            table: table.as_bytes().to_vec().into(),
            key: key.as_bytes().to_vec().into(),
            value: value.as_bytes().to_vec().into(),
            prev_kv: false,
            ttl_millis: 0,
        })
        .await?;
    Ok(resp.into_inner().header.map_or(0, |h| h.revision))
}

pub async fn get(
    node: &Node,
    table: &str,
    key: &str,
    linearizable: bool,
) -> Result<Option<String>, tonic::Status> {
    let mut kv = node.kv().await;
    let resp = kv
        .range(RangeRequest {
            table: table.as_bytes().to_vec().into(),
            key: key.as_bytes().to_vec().into(),
            linearizable,
            ..Default::default()
        })
        .await?;
    Ok(resp
        .into_inner()
        .kvs
        .first()
        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned()))
}

/// Every pair of a table, in key order, with revisions, through IterateRange.
pub async fn dump(
    node: &Node,
    table: &str,
) -> Result<Vec<(Vec<u8>, Vec<u8>, i64, i64)>, tonic::Status> {
    let mut kv = node.kv().await;
    let mut stream = kv
        .iterate_range(RangeRequest {
            table: table.as_bytes().to_vec().into(),
            key: vec![0].into(),
            range_end: vec![0].into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut out = Vec::new();
    while let Some(RangeResponse { kvs, .. }) = stream.message().await? {
        out.extend(kvs.into_iter().map(|kv| {
            (
                kv.key.to_vec(),
                kv.value.to_vec(),
                kv.create_revision,
                kv.mod_revision,
            )
        }));
    }
    Ok(out)
}

/// One edge process.
pub struct Edge {
    pub node: Node,
    pub upstreams: Vec<String>,
}

impl Edge {
    /// An edge following `upstreams` (replication URLs), not yet started.
    pub fn new(name: &str, root: &Path, upstreams: Vec<String>) -> Self {
        let mut node = Node::core(0, root);
        node.data_dir = root.join(name);
        std::fs::create_dir_all(&node.data_dir).unwrap();
        Self { node, upstreams }
    }

    pub fn start(&mut self) {
        assert!(self.node.child.is_none(), "edge already running");
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.node.log_path())
            .unwrap();
        let mut cmd = Command::new(binary());
        cmd.arg("edge")
            .arg(format!(
                "--replication.leader-address={}",
                self.upstreams.join(",")
            ))
            .arg(format!("--api.address={}", self.node.api))
            .arg(format!("--rest.address={}", self.node.rest))
            .arg(format!("--replication.address={}", self.node.replication))
            .arg(format!("--data-dir={}", self.node.data_dir.display()))
            .args(&self.node.args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.node.child = Some(cmd.spawn().expect("start regatta edge"));
    }

    /// The edge's applied index, from its metrics.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let body = self.node.http_body("/metrics").await?;
        body.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
    }
}

/// Every table's full content, by name.
pub async fn dump_all(
    node: &Node,
) -> Result<std::collections::BTreeMap<String, Vec<(Vec<u8>, Vec<u8>, i64, i64)>>, tonic::Status> {
    let mut tables = node.tables().await;
    let list = tables
        .list(regatta_proto::regatta::v1::ListTablesRequest {})
        .await?
        .into_inner()
        .tables;
    let mut out = std::collections::BTreeMap::new();
    for t in list {
        out.insert(t.name.clone(), dump(node, &t.name).await?);
    }
    Ok(out)
}

/// Waits until `edge` serves exactly what `core` serves, every table.
pub async fn wait_converged(core: &Node, edge: &Node, what: &str) {
    wait_until(what, || async {
        match (dump_all(core).await, dump_all(edge).await) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    })
    .await;
}

// ---- S3-compatible server (moto) for the object-store tests ----

/// A moto S3 server on a loopback port, its own process, with one bucket. Killed by its PID
/// on drop. Installed by `scripts/install-test-deps` into `.cache/moto-venv`.
pub struct S3Server {
    pub endpoint: String,
    pub bucket: String,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl S3Server {
    /// Starts the server, waits until it answers and creates `bucket`. Fails the test with
    /// instructions when moto is not installed.
    pub fn start(bucket: &str) -> Self {
        let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/moto-venv");
        let server = venv.join("bin/moto_server");
        assert!(
            server.is_file(),
            "the S3 test server is not installed ({} is missing): run scripts/install-test-deps",
            server.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("moto.log");
        let port = free_port();
        let out = File::create(&log).unwrap();
        let child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start moto_server");
        let mut s3 = Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            bucket: bucket.to_string(),
            child,
            log,
            _dir: dir,
        };
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + WAIT;
        while http_get(&addr, "/").is_none() {
            if let Some(status) = s3.child.try_wait().unwrap() {
                panic!("moto_server exited ({status}):\n{}", s3.tail_log());
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer within {WAIT:?}:\n{}",
                s3.tail_log()
            );
            std::thread::sleep(Duration::from_millis(50)); // poll interval
        }
        let code = http_request(&addr, "PUT", &format!("/{bucket}")).map(|(c, _)| c);
        assert_eq!(
            code,
            Some(200),
            "creating bucket {bucket}:\n{}",
            s3.tail_log()
        );
        s3
    }

    /// The flags that point a node at `s3://<bucket>/<prefix>` on this server.
    pub fn node_args(&self, prefix: &str) -> Vec<String> {
        vec![
            format!("--object-store=s3://{}/{prefix}", self.bucket),
            format!("--object-store.endpoint={}", self.endpoint),
            "--object-store.region=us-east-1".into(),
            "--object-store.access-key-id=test".into(),
            "--object-store.secret-access-key=test".into(),
        ]
    }

    /// A client of the bucket through the S3 API (no prefix applied).
    pub fn client(&self) -> object_store::aws::AmazonS3 {
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_bucket_name(&self.bucket)
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .build()
            .unwrap()
    }

    /// Every key in the bucket under `prefix`, sorted.
    pub async fn keys(&self, prefix: &str) -> Vec<String> {
        use futures::TryStreamExt;
        use object_store::ObjectStore;
        let client = self.client();
        let prefix = object_store::path::Path::from(prefix);
        let mut keys: Vec<String> = client
            .list(Some(&prefix))
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .unwrap();
        keys.sort();
        keys
    }

    /// Keys of the multipart uploads begun and neither completed nor aborted (S3
    /// `ListMultipartUploads`), sorted.
    pub fn incomplete_uploads(&self) -> Vec<String> {
        let addr = self.endpoint.trim_start_matches("http://");
        let (code, body) = http_request(addr, "GET", &format!("/{}?uploads", self.bucket))
            .expect("ListMultipartUploads answered");
        assert_eq!(code, 200, "ListMultipartUploads: {body}");
        let mut keys: Vec<String> = body
            .split("<Upload>")
            .skip(1)
            .filter_map(|upload| {
                let key = upload.split_once("<Key>")?.1;
                Some(key.split_once("</Key>")?.0.to_string())
            })
            .collect();
        keys.sort();
        keys
    }

    /// SIGSTOP: the server keeps its data and its port but answers nothing (an outage).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`Self::pause`].
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(sig)
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill {sig} moto_server");
    }

    fn tail_log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        // A stopped process dies on SIGKILL as well; the CONT is for good measure.
        let _ = Command::new("kill")
            .arg("-CONT")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.0 request without a body; the status code and body.
fn http_request(addr: &str, method: &str, path: &str) -> Option<(u16, String)> {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n"
    )
    .ok()?;
    read_response(stream)
}

/// The initial members of a cluster of `nodes`: `id=raft-address,…`.
pub fn initial_members(nodes: &[Node]) -> String {
    nodes
        .iter()
        .map(|n| format!("{}={}", n.id, n.raft))
        .collect::<Vec<_>>()
        .join(",")
}

/// Runs the `regatta` binary with `args` to completion.
pub fn regatta(args: &[&str]) -> std::process::Output {
    std::process::Command::new(binary())
        .args(args)
        .output()
        .expect("run regatta")
}
