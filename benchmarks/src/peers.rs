//! The systems `compare` measures Regatta against, as real processes on loopback ports: a
//! 3-member etcd cluster, one Redis server, the no-op gRPC server of [`crate::noop`], and
//! (in [`crate::nats`], on the [`Process`] of this module) a 3-node NATS cluster.
//!
//! Every process is started in a directory of its own under the scratch directory of the
//! run, writes its output to a log file there, and is stopped by its PID — SIGTERM, then
//! SIGKILL after a grace period — when its owner is dropped: on success, on error, and when
//! `cluster::run` drops the scenario on SIGINT/SIGTERM. The peers come from Debian packages
//! and (nats-server) PyPI; `benchmarks/setup-peers` installs them.

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Mutex,
    time::Duration,
};

use anyhow::{Context, Result, anyhow, bail};
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::{
    cluster::{self, CONTROL_TIMEOUT, lock, loopback_url, wait_until_exit},
    wire::{
        etcd::{StatusRequest, maintenance_client::MaintenanceClient},
        noop::{Nothing, noop_client::NoopClient},
    },
};

/// How long a peer gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// How long a peer may take to start serving.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The peer binary named by `flag`, else `name` on `PATH`; a clear error if it is missing.
pub fn binary(flag: Option<&Path>, name: &str) -> Result<PathBuf> {
    if let Some(path) = flag {
        if path.is_file() {
            return Ok(path.to_path_buf());
        }
        bail!("{} does not exist", path.display());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            anyhow!(
                "`{name}` is not installed: run benchmarks/setup-peers (installs etcd 3.4, \
                 Redis 7 and nats-server 2.14), or name the binary with --{name}-bin"
            )
        })
}

/// One child process, stopped by PID when dropped.
pub struct Process {
    name: String,
    log: PathBuf,
    child: Mutex<Option<Child>>,
}

impl Process {
    /// Spawns `command` with its output in `log`.
    pub fn spawn(name: &str, mut command: Command, log: PathBuf) -> Result<Self> {
        let file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(
                file.try_clone()
                    .context("duplicating the log file handle")?,
            )
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {name} ({command:?})"))?;
        eprintln!("started {name} (pid {})", child.id());
        Ok(Self {
            name: name.to_string(),
            log,
            child: Mutex::new(Some(child)),
        })
    }

    /// The process id while the process is held (None once stopped).
    pub fn pid(&self) -> Option<u32> {
        cluster::child_pid(&self.child)
    }

    /// An error naming the process and showing its last output if it has exited.
    pub fn check_running(&self) -> Result<()> {
        if let Some(status) = cluster::exit_status(&self.child) {
            bail!(
                "{} exited with {status}; its log ({}) ends with:\n{}",
                self.name,
                self.log.display(),
                self.tail_log(20)
            );
        }
        Ok(())
    }

    pub fn tail_log(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGTERM, then SIGKILL after the grace period. Idempotent.
    pub fn stop(&self) {
        let Some(mut child) = lock(&self.child).take() else {
            return;
        };
        cluster::sigterm(&child);
        match wait_until_exit(&mut child, std::time::Instant::now() + STOP_GRACE) {
            Some(_) => {}
            None => {
                eprintln!(
                    "{} still runs {STOP_GRACE:?} after SIGTERM: killing it",
                    self.name
                );
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `127.0.0.1:<port>` of an `http://` URL.
fn host_port(url: &str) -> &str {
    url.trim_start_matches("http://")
}

/// A loopback port nothing listens on right now.
pub fn loopback_port() -> Result<u16> {
    let url = loopback_url()?;
    host_port(&url)
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .ok_or_else(|| anyhow!("no port in {url}"))
}

/// A gRPC channel to `url` (one HTTP/2 connection).
pub async fn connect(url: &str) -> Result<Channel> {
    cluster::channel(url)
        .await
        .with_context(|| format!("connecting to {url}"))
}

/// One etcd member.
pub struct EtcdMember {
    pub name: String,
    pub client_url: String,
    process: Process,
}

/// A 3-member (or n-member) etcd cluster on loopback ports.
pub struct Etcd {
    pub members: Vec<EtcdMember>,
    leader: usize,
}

impl Etcd {
    /// Spawns `n` members with their data under `dir`. Does not wait (see `wait_ready`).
    pub fn start(binary: &Path, dir: &Path, n: usize) -> Result<Self> {
        let peers: Vec<(String, String, String)> = (1..=n)
            .map(|i| Ok((format!("etcd-{i}"), loopback_url()?, loopback_url()?)))
            .collect::<Result<_>>()?;
        let initial_cluster = peers
            .iter()
            .map(|(name, peer, _)| format!("{name}={peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut members = Vec::new();
        for (name, peer, client) in peers {
            let data = dir.join(&name);
            std::fs::create_dir_all(&data)
                .with_context(|| format!("creating {}", data.display()))?;
            let mut command = Command::new(binary);
            command
                .arg(format!("--name={name}"))
                .arg(format!("--data-dir={}", data.join("data").display()))
                .arg(format!("--listen-peer-urls={peer}"))
                .arg(format!("--initial-advertise-peer-urls={peer}"))
                .arg(format!("--listen-client-urls={client}"))
                .arg(format!("--advertise-client-urls={client}"))
                .arg(format!("--initial-cluster={initial_cluster}"))
                .arg("--initial-cluster-state=new")
                .arg("--initial-cluster-token=regatta-bench")
                .arg("--logger=zap")
                .arg("--log-level=warn");
            let process = Process::spawn(&name, command, data.join("etcd.log"))?;
            members.push(EtcdMember {
                name,
                client_url: client,
                process,
            });
        }
        Ok(Self { members, leader: 0 })
    }

    /// Waits until every member answers Maintenance.Status and all name one leader.
    pub async fn wait_ready(&mut self) -> Result<()> {
        let started = Instant::now();
        let mut last = String::from("nothing checked yet");
        while started.elapsed() < START_TIMEOUT {
            self.check_running()?;
            match self.agreed_leader().await {
                Ok(leader) => {
                    self.leader = leader;
                    eprintln!(
                        "etcd ready after {:.1}s, leader {}",
                        started.elapsed().as_secs_f64(),
                        self.members[leader].name
                    );
                    return Ok(());
                }
                Err(why) => last = format!("{why:#}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await; // poll while members start
        }
        bail!("etcd was not ready within {START_TIMEOUT:?}: {last}")
    }

    /// Index in `members` of the leader all members agree on.
    async fn agreed_leader(&self) -> Result<usize> {
        let mut ids = Vec::new();
        let mut leader = None;
        for member in &self.members {
            let mut client = MaintenanceClient::new(connect(&member.client_url).await?);
            let mut request = tonic::Request::new(StatusRequest {});
            request.set_timeout(CONTROL_TIMEOUT);
            let status = client.status(request).await?.into_inner();
            let id = status.header.map_or(0, |h| h.member_id);
            if status.leader == 0 || leader.is_some_and(|l| l != status.leader) {
                bail!("{} reports leader {:x}", member.name, status.leader);
            }
            leader = Some(status.leader);
            ids.push(id);
        }
        let leader = leader.ok_or_else(|| anyhow!("etcd has no members"))?;
        ids.iter()
            .position(|&id| id == leader)
            .ok_or_else(|| anyhow!("the leader {leader:x} is none of the members"))
    }

    pub fn leader(&self) -> &EtcdMember {
        &self.members[self.leader]
    }

    pub fn check_running(&self) -> Result<()> {
        self.members
            .iter()
            .try_for_each(|m| m.process.check_running())
    }

    /// The members' process ids (for CPU accounting).
    pub fn pids(&self) -> Vec<u32> {
        self.members
            .iter()
            .filter_map(|m| m.process.pid())
            .collect()
    }

    /// The etcd version, from the binary (`etcd --version`).
    pub fn version(binary: &Path) -> String {
        command_version(binary, "--version")
    }
}

/// One Redis server, durable in the strongest way Redis offers: every write is appended to
/// the AOF and fsync'd before the reply (`appendfsync always`); no RDB snapshots.
pub struct Redis {
    pub url: String,
    process: Process,
}

impl Redis {
    pub fn start(binary: &Path, dir: &Path) -> Result<Self> {
        let dir = dir.join("redis");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let port = loopback_port()?.to_string();
        let mut command = Command::new(binary);
        command
            .args(["--bind", "127.0.0.1", "--port", &port])
            .arg("--dir")
            .arg(&dir)
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .args(["--save", ""])
            .args(["--daemonize", "no", "--protected-mode", "no"])
            .args(["--maxclients", "10000"]);
        let process = Process::spawn("redis", command, dir.join("redis.log"))?;
        Ok(Self {
            url: format!("redis://127.0.0.1:{port}/"),
            process,
        })
    }

    /// The server's process id (for CPU accounting).
    pub fn pids(&self) -> Vec<u32> {
        self.process.pid().into_iter().collect()
    }

    /// A multiplexed connection (requests of every clone pipelined on one TCP connection).
    pub async fn connect(&self) -> Result<redis::aio::MultiplexedConnection> {
        let client = redis::Client::open(self.url.as_str()).context("redis address")?;
        client
            .get_multiplexed_async_connection()
            .await
            .with_context(|| format!("connecting to {}", self.url))
    }

    /// Waits until the server answers PING.
    pub async fn wait_ready(&self) -> Result<()> {
        let started = Instant::now();
        loop {
            self.process.check_running()?;
            if let Ok(mut conn) = self.connect().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                eprintln!("redis ready after {:.1}s", started.elapsed().as_secs_f64());
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                bail!("redis did not answer PING within {START_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await; // poll while it starts
        }
    }

    pub fn check_running(&self) -> Result<()> {
        self.process.check_running()
    }

    pub fn version(binary: &Path) -> String {
        command_version(binary, "--version")
    }
}

/// The no-op gRPC server (`regatta-bench noop-server`), a separate process like the others.
pub struct NoopServer {
    pub url: String,
    process: Process,
}

impl NoopServer {
    pub fn start(dir: &Path) -> Result<Self> {
        let url = loopback_url()?;
        let exe = std::env::current_exe().context("locating the regatta-bench executable")?;
        let mut command = Command::new(exe);
        command
            .arg("noop-server")
            .arg(format!("--address={}", host_port(&url)));
        let process = Process::spawn("noop-server", command, dir.join("noop-server.log"))?;
        Ok(Self { url, process })
    }

    /// The server's process id (for CPU accounting).
    pub fn pids(&self) -> Vec<u32> {
        self.process.pid().into_iter().collect()
    }

    /// Waits until one no-op call succeeds.
    pub async fn wait_ready(&self) -> Result<()> {
        let started = Instant::now();
        loop {
            self.process.check_running()?;
            if let Ok(channel) = connect(&self.url).await
                && NoopClient::new(channel).call(Nothing {}).await.is_ok()
            {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                bail!("the no-op server did not answer within {START_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await; // poll while it starts
        }
    }

    pub fn check_running(&self) -> Result<()> {
        self.process.check_running()
    }
}

/// The first line `binary flag` prints, or why there is none.
pub fn command_version(binary: &Path, flag: &str) -> String {
    match Command::new(binary).arg(flag).output() {
        Ok(output) => String::from_utf8_lossy(&output.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string(),
        Err(e) => format!("unknown ({e})"),
    }
}
