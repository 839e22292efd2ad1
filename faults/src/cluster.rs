//! The cluster under test: three core nodes and two edges (edge2 follows edge1, a chain),
//! each a `regatta` process started with `ip netns exec` in its own namespace, with its own
//! data directory under the run directory, and one shared S3 object store (a moto server in
//! a namespace of its own, [`crate::s3`]). [`DISK_NODE`]'s data directory is on a small
//! tmpfs ([`crate::disk`]) that the `disk-full` fault fills. Each node's stdout and stderr
//! go to `RUN/NAME.log` (appended across restarts).
//!
//! A node binds and advertises the same address, its namespace's own IP. Segments are
//! small and snapshots frequent, so that the archiver and the snapshot uploader work
//! during a run of a minute.

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use regatta_proto::regatta::v1::{StatusRequest, cluster_client::ClusterClient};
use tokio::{io::AsyncReadExt, io::AsyncWriteExt, net::TcpStream, time::timeout};
use tonic::transport::{Channel, Endpoint};

use crate::{
    disk::SmallDisk,
    net::{self, Host},
    s3::S3Server,
};

const API_PORT: u16 = 5001;
const RAFT_PORT: u16 = 5012;
const REPLICATION_PORT: u16 = 5013;
const REST_PORT: u16 = 8079;
/// The node whose data directory is on the small disk: a core, a follower most of the time.
pub const DISK_NODE: &str = "core3";
/// Upload and archive settings that make the object store busy within a minute's run.
const CORE_OBJECT_FLAGS: [&str; 3] = [
    "--object-store.snapshot-entries=500",
    "--object-store.snapshot-interval=5s",
    "--object-store.check-interval=5s",
];
/// Every node: an object store call gives up after 2 s (then the caller retries), segments
/// of 256 KiB roll, and so get archived, every few seconds.
const NODE_FLAGS: [&str; 2] = ["--object-store.timeout=2s", "--log.segment-size=262144"];

/// Whether a node is a core member (with its Raft id) or an edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Core { id: u64 },
    Edge,
}

/// One node process and the command line that (re)starts it.
#[derive(Debug)]
pub struct Node {
    pub name: String,
    pub kind: Kind,
    pub host: Host,
    pub command: Vec<String>,
    pub log: PathBuf,
    pub channel: Channel,
    child: Option<Child>,
    /// SIGSTOPped and not yet continued.
    pub paused: bool,
    /// The log's length when the process last started.
    log_start: u64,
}

/// What `Cluster.Status` says of a node: `leader=… term=… applied=… commit=…`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Status {
    pub leader: u64,
    pub term: u64,
    pub applied: u64,
    pub commit: u64,
}

/// Reads the words of `Cluster.Status.info`; missing words read as 0.
pub fn parse_status(info: &str) -> Status {
    let word = |name: &str| {
        info.split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Status {
        leader: word("leader"),
        term: word("term"),
        applied: word("applied"),
        commit: word("commit"),
    }
}

fn url(host: &Host, port: u16) -> String {
    format!("http://{}:{port}", host.ip)
}

impl Node {
    fn new(name: &str, kind: Kind, host: Host, command: Vec<String>, run: &Path) -> Result<Self> {
        let channel = Endpoint::from_shared(url(&host, API_PORT))?
            .connect_timeout(Duration::from_millis(500))
            .http2_keep_alive_interval(Duration::from_millis(500))
            .keep_alive_timeout(Duration::from_millis(500))
            .connect_lazy();
        Ok(Self {
            name: name.to_string(),
            kind,
            host,
            command,
            log: run.join(format!("{name}.log")),
            channel,
            child: None,
            paused: false,
            log_start: 0,
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts the process with its command line.
    pub fn start(&mut self, binary: &Path) -> Result<()> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        self.log_start = log.metadata().map_or(0, |m| m.len());
        let child = Command::new("ip")
            .args(["netns", "exec", &self.host.ns])
            .arg(binary)
            .args(&self.command)
            .env("RUST_LOG", "info,openraft=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {} in {}", binary.display(), self.host.ns))?;
        self.child = Some(child);
        self.paused = false;
        Ok(())
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }

    /// SIGTERM (a graceful stop, as Kubernetes does), and waits up to `limit` for the
    /// process to end; after that, SIGKILL. The exit status, or `None` when it had to be
    /// killed (or was not running).
    pub async fn terminate(&mut self, limit: Duration) -> Option<String> {
        let pid = self.pid()?;
        if self.paused {
            let _ = net::run("kill", &["-CONT", &pid.to_string()]);
        }
        let _ = net::run("kill", &["-TERM", &pid.to_string()]);
        let deadline = tokio::time::Instant::now() + limit;
        while tokio::time::Instant::now() < deadline {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(100)).await; // poll interval
        }
        self.kill();
        None
    }

    /// Lines of the node's log since its last start that contain one of `words`, the last
    /// `max` of them.
    pub fn log_lines(&self, words: &[&str], max: usize) -> Vec<String> {
        self.log_lines_from(self.log_start, words, max)
    }

    /// The log's length now, for [`Node::log_lines_from`].
    pub fn log_len(&self) -> u64 {
        std::fs::metadata(&self.log).map_or(0, |m| m.len())
    }

    /// Like [`Node::log_lines`], from byte `from` of the log on.
    pub fn log_lines_from(&self, from: u64, words: &[&str], max: usize) -> Vec<String> {
        let text = std::fs::read(&self.log).unwrap_or_default();
        let start = (from as usize).min(text.len());
        let text = String::from_utf8_lossy(&text[start..]);
        let lines: Vec<String> = text
            .lines()
            .filter(|l| words.iter().any(|w| l.contains(w)))
            .map(|l| l.chars().take(400).collect())
            .collect();
        lines[lines.len().saturating_sub(max)..].to_vec()
    }

    pub fn signal(&mut self, stop: bool) -> Result<()> {
        let Some(pid) = self.pid() else {
            bail!("{} is not running", self.name);
        };
        let sig = if stop { "-STOP" } else { "-CONT" };
        net::run("kill", &[sig, &pid.to_string()])?;
        self.paused = stop;
        Ok(())
    }

    /// The exit status when the process ended on its own (it was not killed by the suite);
    /// the node then counts as stopped (a later heal starts it again).
    pub fn exited(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        let status = match child.try_wait() {
            Ok(Some(status)) => status.to_string(),
            Ok(None) => return None,
            Err(e) => format!("cannot wait: {e}"),
        };
        self.child = None;
        self.paused = false;
        Some(status)
    }

    /// `GET /readyz` answers 200 within a second.
    pub async fn ready(&self) -> bool {
        matches!(self.http_get("/readyz").await, Some((200, _)))
    }

    /// `GET path` on the REST port, within a second: the status code and the body.
    pub async fn http_get(&self, path: &str) -> Option<(u16, String)> {
        let get = async {
            let mut stream = TcpStream::connect((self.host.ip.as_str(), REST_PORT)).await?;
            let request = format!("GET {path} HTTP/1.0\r\nHost: node\r\n\r\n");
            stream.write_all(request.as_bytes()).await?;
            let mut response = Vec::new();
            stream.read_to_end(&mut response).await?;
            std::io::Result::Ok(response)
        };
        let response = timeout(Duration::from_secs(1), get).await.ok()?.ok()?;
        let response = String::from_utf8_lossy(&response);
        let (head, body) = response.split_once("\r\n\r\n")?;
        let code = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((code, body.to_string()))
    }

    /// A counter or gauge of the node's `/metrics`, summed over its label sets.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = self.http_get("/metrics").await?;
        let values = body.lines().filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let metric = series.split('{').next()?;
            (metric == name).then(|| value.parse::<f64>().ok())?
        });
        Some(values.sum())
    }

    /// `Cluster.Status`, within a second.
    pub async fn status(&self) -> Option<Status> {
        let mut client = ClusterClient::new(self.channel.clone());
        let mut request = tonic::Request::new(StatusRequest { config: false });
        request.set_timeout(Duration::from_secs(1));
        let call = timeout(Duration::from_millis(1500), client.status(request)).await;
        let info = call.ok()?.ok()?.into_inner().info;
        Some(parse_status(&info))
    }
}

/// The five nodes, in the order of [`net::hosts`]: core1..3, edge1, edge2.
#[derive(Debug)]
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub binary: PathBuf,
    /// The object store's host; its server runs once [`Cluster::start_all`] started it.
    pub s3_host: Host,
    s3: Option<S3Server>,
    run_dir: PathBuf,
    /// [`DISK_NODE`]'s small disk.
    pub disk: SmallDisk,
}

impl Cluster {
    /// Builds the command lines and mounts the small disk (no process starts yet).
    pub fn new(binary: &Path, run: &Path, hosts: &[Host]) -> Result<Self> {
        let s3_host = net::s3_host();
        let objects = S3Server::node_args(&s3_host);
        let disk = SmallDisk::mount(run, DISK_NODE)?;
        let cores: Vec<&Host> = hosts.iter().filter(|h| h.ns.contains("core")).collect();
        let members = cores
            .iter()
            .enumerate()
            .map(|(i, h)| format!("{}={}", i + 1, url(h, RAFT_PORT)))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes = Vec::new();
        for host in hosts {
            let name = host.ns.trim_start_matches("rgf-").to_string();
            let data_dir = if name == DISK_NODE {
                disk.data_dir()
            } else {
                run.join(&name)
            };
            std::fs::create_dir_all(&data_dir)?;
            let mut common = vec![
                format!("--api.address={}", url(host, API_PORT)),
                format!("--rest.address={}", url(host, REST_PORT)),
                format!("--replication.address={}", url(host, REPLICATION_PORT)),
                format!("--data-dir={}", data_dir.display()),
            ];
            common.extend(objects.iter().cloned());
            common.extend(NODE_FLAGS.iter().map(|f| f.to_string()));
            let (kind, mut command) = if let Some(i) = cores.iter().position(|c| *c == host) {
                let id = i as u64 + 1;
                let mut command = vec![
                    "core".to_string(),
                    format!("--raft.node-id={id}"),
                    format!("--raft.address={}", url(host, RAFT_PORT)),
                    format!("--raft.initial-members={members}"),
                ];
                command.extend(CORE_OBJECT_FLAGS.iter().map(|f| f.to_string()));
                (Kind::Core { id }, command)
            } else {
                // edge1 follows the cores (any of them); edge2 follows edge1.
                let upstreams = if name == "edge1" {
                    cores
                        .iter()
                        .map(|c| url(c, REPLICATION_PORT))
                        .collect::<Vec<_>>()
                } else {
                    let edge1 = hosts
                        .iter()
                        .find(|h| h.ns == "rgf-edge1")
                        .context("no edge1 host")?;
                    vec![url(edge1, REPLICATION_PORT)]
                };
                let command = vec![
                    "edge".to_string(),
                    format!("--replication.leader-address={}", upstreams.join(",")),
                ];
                (Kind::Edge, command)
            };
            command.extend(common);
            nodes.push(Node::new(&name, kind, host.clone(), command, run)?);
        }
        Ok(Self {
            nodes,
            binary: binary.to_path_buf(),
            s3_host,
            s3: None,
            run_dir: run.to_path_buf(),
            disk,
        })
    }

    /// Starts the object store (waiting until its bucket exists), then every node.
    pub fn start_all(&mut self) -> Result<()> {
        if self.s3.is_none() {
            self.s3 = Some(S3Server::start(&self.s3_host, &self.run_dir)?);
        }
        for node in &mut self.nodes {
            node.start(&self.binary)?;
        }
        Ok(())
    }

    pub fn cores(&self) -> impl Iterator<Item = &Node> {
        self.nodes
            .iter()
            .filter(|n| matches!(n.kind, Kind::Core { .. }))
    }

    pub fn edges(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.kind == Kind::Edge)
    }

    pub fn node_mut(&mut self, name: &str) -> Result<&mut Node> {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .with_context(|| format!("no node named {name}"))
    }

    /// The leader as the cores report it: the one named in the highest term seen.
    pub async fn leader(&self) -> Option<String> {
        let mut best: Option<Status> = None;
        for node in self.cores().filter(|n| !n.paused) {
            if let Some(s) = node.status().await
                && s.leader != 0
                && best.is_none_or(|b| s.term > b.term)
            {
                best = Some(s);
            }
        }
        let leader = best?.leader;
        self.cores()
            .find(|n| n.kind == Kind::Core { id: leader })
            .map(|n| n.name.clone())
    }

    /// Each core's view, for the run's log: `core1 L3 T10 A120` (leader 3, term 10,
    /// applied 120), `-` when it does not answer.
    pub async fn status_line(&self) -> String {
        let mut words = Vec::new();
        for node in self.cores() {
            let view = match node.status().await {
                Some(s) => format!("{} L{} T{} A{}", node.name, s.leader, s.term, s.applied),
                None => format!("{} -", node.name),
            };
            words.push(view);
        }
        words.join(", ")
    }

    /// Waits up to `limit` for `check` to hold, polling every 200 ms.
    pub async fn wait<F, Fut>(what: &str, limit: Duration, mut check: F) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if check().await {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("timed out after {limit:?} waiting for {what}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await; // poll interval
        }
    }

    /// Waits until every node answers `/readyz` with 200.
    pub async fn wait_ready(&self, limit: Duration) -> Result<()> {
        for node in &self.nodes {
            Self::wait(&format!("{} to be ready", node.name), limit, || {
                node.ready()
            })
            .await?;
        }
        Ok(())
    }

    /// Nodes whose process ended without the suite killing it: (name, exit status).
    pub fn unexpected_exits(&mut self) -> Vec<(String, String)> {
        self.nodes
            .iter_mut()
            .filter_map(|n| n.exited().map(|s| (n.name.clone(), s)))
            .collect()
    }

    pub fn kill_all(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        self.s3 = None;
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_words_are_read_by_name() {
        let s = parse_status("kind=core leader=2 term=3 applied=120 commit=121 x=y");
        assert_eq!(
            s,
            Status {
                leader: 2,
                term: 3,
                applied: 120,
                commit: 121
            }
        );
        assert_eq!(parse_status("kind=edge"), Status::default());
    }
}
