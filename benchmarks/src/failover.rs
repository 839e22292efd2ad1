//! `failover`: how long a three-node core acknowledges no write after its leader stops.
//!
//! Each round stops the current leader one way per `--faults` entry — `kill` (SIGKILL: a
//! crash), `stop` (SIGSTOP: frozen, its connections open), `term` (SIGTERM: a graceful stop,
//! which hands leadership over) — while a writer on each of the two other nodes puts without
//! pause (each Put with `--put-timeout`; followers forward to whichever node leads). The
//! figure is the longest time from the signal on without an acknowledged Put, until a Put
//! sent after the old leader is gone (frozen or killed at once; exited, after SIGTERM) is
//! acknowledged. (A leader told to stop may still commit for a moment after the signal, so
//! "the first acknowledgement after the signal" would not do.)
//! The node is then started again (or resumed) and the cluster left to settle — every node
//! names the same leader and a Put through each is acknowledged — before the next fault, so
//! that each one meets a leader in steady state whose followers have just heard from it.
//!
//! The figure depends on `--raft.election-timeout` (default 1 s; pass another with
//! `--server-arg`) and on the machine: it is a measurement, not a bound.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use regatta_proto::regatta::v1::{PutRequest, kv_client::KvClient};
use serde_json::json;
use tonic::transport::{Channel, Endpoint};

use crate::{
    cluster::{self, Cluster, ClusterArgs, Node},
    report::Report,
};

/// How the leader is stopped.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL, then started again.
    Kill,
    /// SIGSTOP, then SIGCONT.
    Stop,
    /// SIGTERM (graceful: leadership is handed over), then started again.
    Term,
}

impl Fault {
    fn as_str(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Stop => "stop",
            Fault::Term => "term",
        }
    }
}

/// Settings of the scenario.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Rounds; each round applies every fault of `--faults` once.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// How the leader is stopped, in this order within a round.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "kill,stop,term"
    )]
    faults: Vec<Fault>,
    /// Run an edge beside the core, following the first leader (and, when that one stops,
    /// failing over to another node by itself): a stopping node then may have a tail
    /// stream to end, as in a deployment.
    #[arg(long)]
    edge: bool,
    /// Deadline of each Put of the writers.
    #[arg(long = "put-timeout", default_value = "500ms", value_parser = cluster::parse_duration)]
    put_timeout: Duration,
}

/// The longest the cluster may take to settle, or a writer to see an acknowledgement.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
const TABLE: &str = "failover";

pub fn run(args: Args) -> Result<()> {
    if args.runs == 0 || args.faults.is_empty() {
        bail!("--runs and --faults must name at least one run and one fault");
    }
    if args.put_timeout.is_zero() {
        bail!("--put-timeout must be above zero");
    }
    let report = if args.edge {
        crate::edge_cluster::run_with_edge(&args.cluster, async |cluster, _edge| {
            scenario(&args, cluster).await
        })?
    } else {
        cluster::run(&args.cluster, 3, async |cluster| {
            scenario(&args, cluster).await
        })?
    };
    report.print();
    Ok(())
}

async fn scenario(args: &Args, cluster: &Cluster) -> Result<Report> {
    cluster.create_table(TABLE).await?;
    let clients: Vec<(u64, KvClient<Channel>)> = cluster
        .nodes()
        .iter()
        .map(|n| Ok((n.id, KvClient::new(lazy_channel(n)?))))
        .collect::<Result<_>>()?;
    let mut outages: Vec<(Fault, Vec<f64>)> = args.faults.iter().map(|f| (*f, vec![])).collect();
    for run in 0..args.runs {
        for (fault, figures) in &mut outages {
            let leader = settle(cluster, &clients, args.put_timeout).await?;
            let node = cluster.node(leader)?;
            let survivors: Vec<KvClient<Channel>> = clients
                .iter()
                .filter(|(id, _)| *id != leader)
                .map(|(_, c)| c.clone())
                .collect();
            let writers = Writers::start(&survivors, args.put_timeout);
            // Steady state: the writers' Puts flow before the fault.
            writers.acknowledged_after(Instant::now()).await?;
            let since = Instant::now();
            match fault {
                Fault::Kill => node.signal("KILL")?,
                Fault::Stop => node.signal("STOP")?,
                Fault::Term => node.signal("TERM")?,
            }
            // Until writes flow again with the old leader gone: a stopping leader may still
            // commit for a moment after the signal, so the figure is the longest gap.
            let gone = match fault {
                Fault::Term => wait_exited(node).await?,
                Fault::Kill | Fault::Stop => since,
            };
            let waited = writers.acknowledged_after(gone).await;
            let outage = writers.stop(since).await;
            waited?;
            eprintln!(
                "run {run}: {} of leader {leader}: no write acknowledged for {:.3}s",
                fault.as_str(),
                outage.as_secs_f64()
            );
            figures.push(outage.as_secs_f64());
            undo(cluster, node, *fault).await?;
        }
    }
    // The last node brought back is up and following before the cluster is stopped.
    settle(cluster, &clients, args.put_timeout).await?;
    let mut report = Report::new("failover");
    report.set("runs", args.runs);
    report.set("edge", args.edge);
    for (fault, figures) in &outages {
        let mut sorted = figures.clone();
        sorted.sort_by(f64::total_cmp);
        let mean = sorted.iter().sum::<f64>() / sorted.len() as f64;
        report.set(
            &format!("{}_s", fault.as_str()),
            json!({
                "mean": round_ms(mean),
                "min": round_ms(sorted[0]),
                "median": round_ms(sorted[sorted.len() / 2]),
                "max": round_ms(sorted[sorted.len() - 1]),
                "all": figures.iter().copied().map(round_ms).collect::<Vec<_>>(),
            }),
        );
    }
    Ok(report)
}

fn round_ms(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

/// A channel to `node`'s API that dials on first use and again after the node restarts.
fn lazy_channel(node: &Node) -> Result<Channel> {
    let endpoint = Endpoint::from_shared(node.api.clone())
        .context("address")?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(1));
    Ok(crate::tls::dialer(&node.api)?.connect_lazy(endpoint)?)
}

async fn put(client: &mut KvClient<Channel>, key: u64, timeout: Duration) -> bool {
    let mut request = tonic::Request::new(PutRequest {
        table: Bytes::from_static(TABLE.as_bytes()),
        key: Bytes::from(format!("key-{}", key % 64)),
        value: Bytes::from_static(b"value"),
        prev_kv: false,
        ttl_millis: 0,
    });
    request.set_timeout(timeout);
    // The client's own deadline too: a frozen peer may never answer at all.
    matches!(
        tokio::time::timeout(timeout + Duration::from_millis(200), client.put(request)).await,
        Ok(Ok(_))
    )
}

/// Waits until every node is ready and names the same leader, and a Put through each is
/// acknowledged; the leader.
async fn settle(
    cluster: &Cluster,
    clients: &[(u64, KvClient<Channel>)],
    timeout: Duration,
) -> Result<u64> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut last = String::from("nothing checked yet");
    while Instant::now() < deadline {
        match cluster.readiness().await {
            Ok(leader) => {
                let mut all = true;
                for (n, (id, client)) in clients.iter().enumerate() {
                    if !put(&mut client.clone(), n as u64, timeout).await {
                        last = format!("a put through node {id} was not acknowledged");
                        all = false;
                        break;
                    }
                }
                if all {
                    return Ok(leader);
                }
            }
            Err(e) => last = format!("{e:#}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await; // poll interval while settling
    }
    bail!("the cluster did not settle within {SETTLE_TIMEOUT:?}: {last}")
}

/// Writers putting without pause through the given nodes, recording when each
/// acknowledged Put was sent and acknowledged.
struct Writers {
    acks: Arc<std::sync::Mutex<Vec<(Instant, Instant)>>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Writers {
    fn start(clients: &[KvClient<Channel>], timeout: Duration) -> Self {
        let acks = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = clients
            .iter()
            .enumerate()
            .map(|(w, client)| {
                let (mut client, stop, acks) = (client.clone(), stop.clone(), acks.clone());
                tokio::spawn(async move {
                    let mut n = (w as u64) << 32;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let sent = Instant::now();
                        if put(&mut client, n, timeout).await {
                            cluster::lock(&acks).push((sent, Instant::now()));
                        } else {
                            // Refused at once (no leader yet): do not spin.
                            let pause = Duration::from_millis(10).saturating_sub(sent.elapsed());
                            tokio::time::sleep(pause).await; // retry pacing
                        }
                    }
                })
            })
            .collect();
        Self { acks, stop, tasks }
    }

    /// Waits until a Put sent at or after `since` is acknowledged.
    async fn acknowledged_after(&self, since: Instant) -> Result<()> {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        while !cluster::lock(&self.acks)
            .iter()
            .any(|(sent, _)| *sent >= since)
        {
            if Instant::now() > deadline {
                bail!("no write sent after the fault was acknowledged within {SETTLE_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await; // poll interval
        }
        Ok(())
    }

    /// Stops the writers; the longest time from `since` on without an acknowledgement.
    async fn stop(self, since: Instant) -> Duration {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            let _ = task.await;
        }
        let mut times: Vec<Instant> = cluster::lock(&self.acks)
            .iter()
            .map(|(_, acked)| *acked)
            .filter(|t| *t >= since)
            .collect();
        times.sort();
        let mut last = since;
        let mut longest = Duration::ZERO;
        for t in times {
            longest = longest.max(t - last);
            last = t;
        }
        longest
    }
}

/// Brings the stopped leader back: started again after a kill or a graceful stop (which
/// must exit 0), resumed after a freeze.
async fn undo(cluster: &Cluster, node: &Node, fault: Fault) -> Result<()> {
    match fault {
        Fault::Stop => node.signal("CONT"),
        Fault::Kill | Fault::Term => cluster.restart(node.id),
    }
}

/// Waits for a node sent SIGTERM to exit, which it must do cleanly; when it did.
async fn wait_exited(node: &Node) -> Result<Instant> {
    let status = tokio::task::block_in_place(|| node.wait_exit(SETTLE_TIMEOUT));
    match status {
        Some(s) if s.success() => Ok(Instant::now()),
        Some(s) => bail!("node {} exited with {s} after SIGTERM", node.id),
        None => bail!(
            "node {} still running {SETTLE_TIMEOUT:?} after SIGTERM",
            node.id
        ),
    }
}
