//! NATS JetStream KV as a peer of `compare`: a 3-node NATS cluster with JetStream on loopback
//! ports and one key-value bucket replicated on all three nodes.
//!
//! Durability is the strongest NATS offers: every node fsyncs each write (`sync_interval:
//! always` in the JetStream block; on a follower that is two fsyncs per put, its raft log
//! and its stream store), and the bucket keeps three replicas (R3), so the stream leader
//! acknowledges a put once a quorum of two has it. Servers too old to know `sync_interval:
//! always` (Debian's 2.9) are refused before anything starts. The bucket keeps one revision
//! per key (history 1) and, as every bucket made by the client, allows direct gets: a read
//! is answered by whichever replica takes it (the one its client is connected to, since
//! every node holds one), not by the stream leader, and so may lag the leader as a read at
//! Regatta's edge may.
//!
//! NATS KV keys are subject tokens (`[-/_=.a-zA-Z0-9]`, not starting or ending with `.`);
//! the benchmark's keys (`key-` and 28 digits) are valid as they are and are used unchanged,
//! so the 32-byte keys are the same bytes in every system. A key outside that set is an
//! error, never silently rewritten.
//!
//! The nodes are [`Process`]es like the other peers: stopped by PID when dropped.

use std::{
    path::Path,
    process::Command,
    sync::{Arc, atomic::AtomicUsize, atomic::Ordering::Relaxed},
    time::Duration,
};

use anyhow::{Context, Result, anyhow, bail};
use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use tokio::time::Instant;

use crate::peers::{self, Process};

/// The bucket every system's dataset goes into (stream `KV_bench`).
pub const BUCKET: &str = "bench";
/// The durability of a write, as the report states it.
pub const DURABILITY: &str = "sync_interval always (every node fsyncs each write), R3: acked \
                              by the stream leader once a quorum (2 of 3) has it";
/// How reads are served, as the report states it.
pub const READS: &str = "direct get (allow_direct): any replica, the node of the connection";

/// The name of the cluster the nodes form.
const CLUSTER_NAME: &str = "regatta-bench";
/// The timeout of the requests that poll a starting cluster.
const POLL_TIMEOUT: Duration = Duration::from_secs(1);

/// One node's place in the cluster, from which its configuration file is written.
#[derive(Debug, Clone)]
struct NodeConfig<'a> {
    name: &'a str,
    client_port: u16,
    cluster_port: u16,
    /// The cluster ports of every node (its own included: a server skips a route to itself).
    routes: &'a [u16],
    store_dir: &'a Path,
}

/// The configuration file of one node: clients and routes on loopback, JetStream with its
/// store under `store_dir`, fsync of every write.
fn node_config(node: &NodeConfig<'_>) -> Result<String> {
    let store = node
        .store_dir
        .to_str()
        .filter(|s| !s.contains(['"', '\\']) && !s.chars().any(char::is_control))
        .ok_or_else(|| {
            anyhow!(
                "the NATS store directory {} cannot be written into a configuration file \
                 (it has a quote, backslash or control character, or is not UTF-8): \
                 choose another scratch directory",
                node.store_dir.display()
            )
        })?;
    let routes = node
        .routes
        .iter()
        .map(|port| format!("\"nats://127.0.0.1:{port}\""))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(format!(
        "server_name: \"{name}\"\n\
         host: \"127.0.0.1\"\n\
         port: {client}\n\
         jetstream {{\n  store_dir: \"{store}\"\n  sync_interval: always\n}}\n\
         cluster {{\n  name: \"{CLUSTER_NAME}\"\n  host: \"127.0.0.1\"\n  port: {cluster}\n  \
         no_advertise: true\n  routes: [{routes}]\n}}\n",
        name = node.name,
        client = node.client_port,
        cluster = node.cluster_port,
    ))
}

/// Whether `key` may be a NATS KV key: subject characters, not starting or ending with `.`.
fn is_valid_key(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with('.')
        && !key.ends_with('.')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-/_=.".contains(&b))
}

/// The NATS KV key of a benchmark key: the same bytes, or an error if NATS cannot take them.
pub fn kv_key(key: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(key)
        .ok()
        .filter(|k| is_valid_key(k))
        .ok_or_else(|| format!("{key:?} is not a valid NATS KV key"))
}

/// One NATS server of the cluster.
pub struct NatsNode {
    pub name: String,
    pub url: String,
    process: Process,
}

/// A cluster of NATS servers with JetStream on loopback ports.
pub struct Nats {
    pub nodes: Vec<NatsNode>,
    /// Index in `nodes` of the bucket's stream leader, which orders every put.
    leader: usize,
}

impl Nats {
    /// An error unless `binary` accepts `sync_interval: always` (checked with
    /// `nats-server -t`, which parses a configuration and exits).
    pub fn check_binary(binary: &Path) -> Result<()> {
        let dir = tempfile::tempdir().context("creating a directory for a test configuration")?;
        let config = dir.path().join("check.conf");
        let routes = [peers::loopback_port()?];
        let text = node_config(&NodeConfig {
            name: "check",
            client_port: peers::loopback_port()?,
            cluster_port: routes[0],
            routes: &routes,
            store_dir: &dir.path().join("store"),
        })?;
        std::fs::write(&config, text).with_context(|| format!("writing {}", config.display()))?;
        let output = Command::new(binary)
            .arg("-t")
            .arg("-c")
            .arg(&config)
            .output()
            .with_context(|| format!("running {} -t", binary.display()))?;
        if !output.status.success() {
            bail!(
                "{} ({}) does not take the configuration compare needs (JetStream with \
                 `sync_interval: always`, fsync per write; Debian's 2.9.10 lacks it): \
                 run benchmarks/setup-peers (installs nats-server 2.14) or name a newer \
                 binary with --nats-bin. It said: {}",
                binary.display(),
                Self::version(binary),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }

    /// Spawns `n` nodes with their stores under `dir`. Does not wait (see `wait_ready`).
    pub fn start(binary: &Path, dir: &Path, n: usize) -> Result<Self> {
        let ports: Vec<(u16, u16)> = (0..n)
            .map(|_| Ok((peers::loopback_port()?, peers::loopback_port()?)))
            .collect::<Result<_>>()?;
        let routes: Vec<u16> = ports.iter().map(|&(_, cluster)| cluster).collect();
        let mut nodes = Vec::new();
        for (i, &(client_port, cluster_port)) in ports.iter().enumerate() {
            let name = format!("nats-{}", i + 1);
            let home = dir.join(&name);
            std::fs::create_dir_all(&home)
                .with_context(|| format!("creating {}", home.display()))?;
            let config = home.join("nats.conf");
            let text = node_config(&NodeConfig {
                name: &name,
                client_port,
                cluster_port,
                routes: &routes,
                store_dir: &home.join("store"),
            })?;
            std::fs::write(&config, text)
                .with_context(|| format!("writing {}", config.display()))?;
            let mut command = Command::new(binary);
            command.arg("-c").arg(&config);
            let process = Process::spawn(&name, command, home.join("nats.log"))?;
            nodes.push(NatsNode {
                name,
                url: format!("nats://127.0.0.1:{client_port}"),
                process,
            });
        }
        Ok(Self { nodes, leader: 0 })
    }

    /// Waits until every node is routed to a JetStream meta leader: in a cluster only the
    /// meta leader answers the account-info request, so an answer through each node's
    /// connection shows both.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        let mut last = String::from("nothing checked yet");
        while started.elapsed() < timeout {
            self.check_running()?;
            match self.meta_leader_everywhere().await {
                Ok(()) => {
                    eprintln!(
                        "nats ready after {:.1}s (JetStream meta leader elected)",
                        started.elapsed().as_secs_f64()
                    );
                    return Ok(());
                }
                Err(why) => last = format!("{why:#}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await; // poll while the nodes start
        }
        bail!("nats had no JetStream meta leader within {timeout:?}: {last}")
    }

    async fn meta_leader_everywhere(&self) -> Result<()> {
        for node in &self.nodes {
            let js = jetstream_context(connect(&node.url, POLL_TIMEOUT).await?, POLL_TIMEOUT);
            js.query_account()
                .await
                .with_context(|| format!("{}: JetStream account info", node.name))?;
        }
        Ok(())
    }

    /// Creates the bucket (replicas on every node, history 1) and waits until its stream
    /// has a leader and every replica is current.
    pub async fn create_bucket(&mut self, timeout: Duration) -> Result<()> {
        let started = Instant::now();
        let js = jetstream_context(connect(&self.nodes[0].url, timeout).await?, timeout);
        // The meta leader can be elected before every server has joined it; until then the
        // creation is refused ("no suitable peers for placement"): asked again until
        // `timeout`, the last refusal reported.
        let store = loop {
            self.check_running()?;
            let created = js
                .create_key_value(kv::Config {
                    bucket: BUCKET.to_string(),
                    history: 1,
                    num_replicas: self.nodes.len(),
                    storage: jetstream::stream::StorageType::File,
                    ..Default::default()
                })
                .await;
            match created {
                Ok(store) => break store,
                Err(_) if started.elapsed() < timeout => {
                    tokio::time::sleep(Duration::from_millis(100)).await; // poll backoff
                }
                Err(e) => return Err(e).context("creating the NATS KV bucket"),
            }
        };
        let mut stream = js
            .get_stream(&store.stream_name)
            .await
            .context("looking up the bucket's stream")?;
        loop {
            self.check_running()?;
            let info = stream.info().await.context("the bucket's stream info")?;
            if !info.config.allow_direct {
                bail!("the NATS KV bucket does not allow direct gets");
            }
            if let Some(leader) = settled_leader(info.cluster.as_ref(), self.nodes.len()) {
                self.leader = self
                    .nodes
                    .iter()
                    .position(|n| n.name == leader)
                    .ok_or_else(|| anyhow!("the stream leader {leader} is none of the nodes"))?;
                eprintln!(
                    "nats bucket {BUCKET} ready after {:.1}s: R{}, leader {leader}",
                    started.elapsed().as_secs_f64(),
                    self.nodes.len()
                );
                return Ok(());
            }
            if started.elapsed() > timeout {
                bail!(
                    "the NATS KV bucket's replicas were not all current within {timeout:?}: \
                     {:?}",
                    info.cluster
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await; // poll while replicas catch up
        }
    }

    /// The bucket through a new connection to node `node`, requests bounded by `timeout`.
    pub async fn store(&self, node: usize, timeout: Duration) -> Result<kv::Store> {
        let node = &self.nodes[node % self.nodes.len()];
        jetstream_context(connect(&node.url, timeout).await?, timeout)
            .get_key_value(BUCKET)
            .await
            .with_context(|| format!("opening bucket {BUCKET} at {}", node.name))
    }

    /// The servers' process ids (for CPU accounting).
    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().filter_map(|n| n.process.pid()).collect()
    }

    /// The node leading the bucket's stream.
    pub fn leader(&self) -> usize {
        self.leader
    }

    /// Puts every key through connections to the stream leader, 128 in flight.
    pub async fn preload(
        &self,
        keys: &Arc<Vec<Bytes>>,
        value: &Bytes,
        timeout: Duration,
    ) -> Result<()> {
        let mut stores = Vec::new();
        for _ in 0..4 {
            stores.push(self.store(self.leader, timeout).await?);
        }
        let next = Arc::new(AtomicUsize::new(0));
        let mut loaders = tokio::task::JoinSet::new();
        for i in 0..128 {
            let store = stores[i % stores.len()].clone();
            let (keys, value, next) = (keys.clone(), value.clone(), next.clone());
            loaders.spawn(async move {
                loop {
                    let Some(key) = keys.get(next.fetch_add(1, Relaxed)) else {
                        return anyhow::Ok(());
                    };
                    let key = kv_key(key).map_err(|e| anyhow!(e))?;
                    store
                        .put(key, value.clone())
                        .await
                        .context("preloading nats")?;
                }
            });
        }
        while let Some(result) = loaders.join_next().await {
            result.context("a nats preload task panicked")??;
        }
        Ok(())
    }

    pub fn check_running(&self) -> Result<()> {
        self.nodes
            .iter()
            .try_for_each(|n| n.process.check_running())
    }

    /// The server version, from the binary (`nats-server --version`).
    pub fn version(binary: &Path) -> String {
        peers::command_version(binary, "--version")
    }
}

/// The leader's name once the stream has one and every one of its `replicas` is current.
fn settled_leader(
    cluster: Option<&jetstream::stream::ClusterInfo>,
    replicas: usize,
) -> Option<&str> {
    let cluster = cluster?;
    let leader = cluster.leader.as_deref()?;
    let followers = &cluster.replicas;
    (followers.len() + 1 == replicas && followers.iter().all(|p| p.current && !p.offline))
        .then_some(leader)
}

/// One client connection to `url`.
async fn connect(url: &str, timeout: Duration) -> Result<async_nats::Client> {
    async_nats::ConnectOptions::new()
        .name("regatta-bench")
        .connection_timeout(timeout)
        .request_timeout(Some(timeout))
        .connect(url)
        .await
        .with_context(|| format!("connecting to {url}"))
}

/// A JetStream context over `client` whose API requests and acks wait at most `timeout`.
fn jetstream_context(client: async_nats::Client, timeout: Duration) -> jetstream::Context {
    let mut js = jetstream::new(client);
    js.set_timeout(timeout);
    js
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_fsyncs_every_write_and_routes_to_every_node() {
        let routes = [6001, 6002, 6003];
        let text = node_config(&NodeConfig {
            name: "nats-2",
            client_port: 4002,
            cluster_port: 6002,
            routes: &routes,
            store_dir: Path::new("/scratch/nats-2/store"),
        })
        .expect("a plain path");
        assert!(text.contains("sync_interval: always"), "{text}");
        assert!(
            text.contains("store_dir: \"/scratch/nats-2/store\""),
            "{text}"
        );
        assert!(text.contains("port: 4002"), "{text}");
        assert!(text.contains("port: 6002"), "{text}");
        assert!(
            text.contains(
                "routes: [\"nats://127.0.0.1:6001\", \"nats://127.0.0.1:6002\", \
                 \"nats://127.0.0.1:6003\"]"
            ),
            "{text}"
        );
    }

    #[test]
    fn config_refuses_a_path_it_cannot_quote() {
        let config = |path: &str| {
            node_config(&NodeConfig {
                name: "nats-1",
                client_port: 1,
                cluster_port: 2,
                routes: &[2],
                store_dir: Path::new(path),
            })
        };
        assert!(config("/tmp/a\"b").is_err());
        assert!(config("/tmp/a\\b").is_err());
        assert!(config("/tmp/a\nb").is_err());
        assert!(config("/tmp/a b").is_ok());
    }

    #[test]
    fn benchmark_keys_are_nats_keys_unchanged() {
        let key = format!("key-{:028}", 99_999);
        assert_eq!(kv_key(key.as_bytes()), Ok(key.as_str()));
        assert!(kv_key(b"").is_err());
        assert!(kv_key(b".key").is_err());
        assert!(kv_key(b"key.").is_err());
        assert!(kv_key(b"a key").is_err());
        assert!(kv_key(b"key*").is_err());
        assert!(kv_key(&[0xff, 0x61]).is_err());
        assert_eq!(kv_key(b"a/b_c=d.e-F9"), Ok("a/b_c=d.e-F9"));
    }

    #[test]
    fn a_stream_settles_once_every_replica_is_current() {
        let peer = |name: &str, current: bool| jetstream::stream::PeerInfo {
            name: name.to_string(),
            current,
            active: Duration::ZERO,
            offline: false,
            lag: None,
        };
        let cluster = |leader: Option<&str>, replicas| jetstream::stream::ClusterInfo {
            leader: leader.map(str::to_string),
            replicas,
            ..Default::default()
        };
        assert_eq!(settled_leader(None, 3), None);
        let none = cluster(None, vec![peer("b", true), peer("c", true)]);
        assert_eq!(settled_leader(Some(&none), 3), None);
        let behind = cluster(Some("a"), vec![peer("b", true), peer("c", false)]);
        assert_eq!(settled_leader(Some(&behind), 3), None);
        let short = cluster(Some("a"), vec![peer("b", true)]);
        assert_eq!(settled_leader(Some(&short), 3), None);
        let settled = cluster(Some("a"), vec![peer("b", true), peer("c", true)]);
        assert_eq!(settled_leader(Some(&settled), 3), Some("a"));
    }
}
