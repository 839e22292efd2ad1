//! The cluster under test: three core nodes and two edges (edge2 follows edge1, a chain),
//! each a `regatta` process started with `ip netns exec` in its own namespace, with its own
//! data directory under the run directory and one shared `file://` object store. Each
//! node's stdout and stderr go to `RUN/NAME.log` (appended across restarts).
//!
//! A node binds and advertises the same address, its namespace's own IP.

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

use crate::net::{self, Host};

const API_PORT: u16 = 5001;
const RAFT_PORT: u16 = 5012;
const REPLICATION_PORT: u16 = 5013;
const REST_PORT: u16 = 8079;

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
        let get = async {
            let mut stream = TcpStream::connect((self.host.ip.as_str(), REST_PORT)).await?;
            stream
                .write_all(b"GET /readyz HTTP/1.0\r\nHost: node\r\n\r\n")
                .await?;
            let mut response = Vec::new();
            stream.read_to_end(&mut response).await?;
            std::io::Result::Ok(
                response.starts_with(b"HTTP/1.1 200") || response.starts_with(b"HTTP/1.0 200"),
            )
        };
        matches!(timeout(Duration::from_secs(1), get).await, Ok(Ok(true)))
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
}

impl Cluster {
    /// Builds the command lines (nothing starts yet).
    pub fn new(binary: &Path, run: &Path, hosts: &[Host]) -> Result<Self> {
        let objects = format!("--object-store=file://{}", run.join("objects").display());
        std::fs::create_dir_all(run.join("objects"))?;
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
            let data_dir = run.join(&name);
            std::fs::create_dir_all(&data_dir)?;
            let common = vec![
                format!("--api.address={}", url(host, API_PORT)),
                format!("--rest.address={}", url(host, REST_PORT)),
                format!("--replication.address={}", url(host, REPLICATION_PORT)),
                format!("--data-dir={}", data_dir.display()),
                objects.clone(),
            ];
            let (kind, mut command) = if let Some(i) = cores.iter().position(|c| *c == host) {
                let id = i as u64 + 1;
                let command = vec![
                    "core".to_string(),
                    format!("--raft.node-id={id}"),
                    format!("--raft.address={}", url(host, RAFT_PORT)),
                    format!("--raft.initial-members={members}"),
                ];
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
        })
    }

    pub fn start_all(&mut self) -> Result<()> {
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
