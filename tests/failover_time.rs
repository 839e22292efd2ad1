//! Measurement (ignored by default): how long a three-node core acknowledges no write after
//! its leader is SIGKILLed or SIGSTOPped, against `--raft.election-timeout`.
//!
//! ```sh
//! FAILOVER_RUNS=5 cargo test -p regatta --test failover_time -- --ignored --nocapture
//! ```
//!
//! Each run: writers put to both other nodes without pause (each put with a 500 ms
//! deadline); the leader is killed (or frozen); the figure is the time from the signal to
//! the first acknowledged put sent after it. The node is then restarted (or resumed) and the
//! cluster left to settle (every node agrees on a leader, a put succeeds) before the next
//! run. The last line is JSON with every figure; `benchmarks/README.md` keeps the results.

#![allow(clippy::unwrap_used)]

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use common::*;
use regatta_proto::regatta::v1::PutRequest;

/// Puts to the node at `api` in a loop until `stop`; returns when the first put sent at or
/// after `since` is acknowledged (its acknowledgement time), or `None` once stopped.
async fn first_ack_after(api: String, since: Instant, stop: Arc<AtomicBool>) -> Option<Instant> {
    let channel = tonic::transport::Channel::from_shared(api)
        .unwrap()
        .connect_lazy();
    let mut kv = regatta_proto::regatta::v1::kv_client::KvClient::new(channel);
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let sent = Instant::now();
        let mut request = tonic::Request::new(PutRequest {
            table: b"t".to_vec().into(),
            key: format!("k{}", n % 16).into_bytes().into(),
            value: b"v".to_vec().into(),
            prev_kv: false,
            ttl_millis: 0,
        });
        request.set_timeout(Duration::from_millis(500));
        let answer = tokio::time::timeout(Duration::from_millis(700), kv.put(request)).await;
        let acknowledged = matches!(answer, Ok(Ok(_)));
        if acknowledged && sent >= since {
            return Some(Instant::now());
        }
        if !acknowledged {
            // Refused at once (no leader yet): do not spin.
            let left = Duration::from_millis(20).saturating_sub(sent.elapsed());
            tokio::time::sleep(left).await; // retry pacing
        }
    }
    None
}

/// The time from `since` until either survivor acknowledges a put sent after it.
async fn outage(survivors: &[&Node], since: Instant) -> Duration {
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = survivors
        .iter()
        .map(|node| tokio::spawn(first_ack_after(node.api.clone(), since, stop.clone())))
        .collect();
    let (first, _, rest) = futures::future::select_all(tasks).await;
    stop.store(true, Ordering::Relaxed);
    for t in rest {
        let _ = t.await;
    }
    first.unwrap().expect("a put was acknowledged") - since
}

async fn settle(cluster: &Cluster) -> u64 {
    let leader = cluster.wait_for_leader().await;
    wait_until("a put succeeds", || async {
        put(&cluster.nodes[0], "t", "settle", "v").await.is_ok()
            && put(&cluster.nodes[1], "t", "settle", "v").await.is_ok()
            && put(&cluster.nodes[2], "t", "settle", "v").await.is_ok()
    })
    .await;
    leader
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn failover_time_after_the_leader_is_killed_or_frozen() {
    let runs: usize = std::env::var("FAILOVER_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    phase("three core nodes (defaults: heartbeat 150ms, election timeout 1s)");
    let mut cluster = Cluster::start(3);
    cluster.wait_for_leader().await;
    create_table(&cluster.nodes[0], "t").await;
    let mut killed = Vec::new();
    let mut frozen = Vec::new();
    for run in 0..runs {
        // settle's puts through both followers just replicated: their lease is fresh, as in
        // steady state.
        let leader = settle(&cluster).await;
        let since = Instant::now();
        cluster.node(leader).kill();
        let survivors: Vec<&Node> = cluster.nodes.iter().filter(|n| n.id != leader).collect();
        let took = outage(&survivors, since).await;
        phase(&format!(
            "run {run}: SIGKILL leader {leader}: no ack for {took:?}"
        ));
        killed.push(took.as_secs_f64());
        cluster.restart(leader);

        let leader = settle(&cluster).await;
        let since = Instant::now();
        cluster.node(leader).pause();
        let survivors: Vec<&Node> = cluster.nodes.iter().filter(|n| n.id != leader).collect();
        let took = outage(&survivors, since).await;
        phase(&format!(
            "run {run}: SIGSTOP leader {leader}: no ack for {took:?}"
        ));
        frozen.push(took.as_secs_f64());
        cluster.node(leader).resume();
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let min = |v: &[f64]| v.iter().copied().fold(f64::MAX, f64::min);
    phase(&format!(
        "SIGKILL: mean {:.2}s min {:.2}s max {:.2}s; SIGSTOP: mean {:.2}s min {:.2}s max {:.2}s",
        mean(&killed),
        min(&killed),
        max(&killed),
        mean(&frozen),
        min(&frozen),
        max(&frozen)
    ));
    println!(
        "{}",
        serde_json::json!({"scenario": "failover", "killed_s": killed, "frozen_s": frozen})
    );
}
