//! End-to-end: a three-node core of real processes on loopback ports.

mod common;

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_every_node_converge_and_linearizable_reads_see_them() {
    phase("start a three-node core");
    let cluster = Cluster::start(3);
    let leader = cluster.wait_for_leader().await;
    phase(&format!(
        "node {leader} leads; create a table through a follower"
    ));
    let follower = cluster
        .nodes
        .iter()
        .find(|n| n.id != leader)
        .expect("a follower");
    create_table(follower, "config").await;

    phase("write through every node");
    for node in &cluster.nodes {
        for i in 0..20 {
            let key = format!("n{}-k{i:02}", node.id);
            let revision = put(node, "config", &key, &format!("v{i}"))
                .await
                .expect("put");
            assert!(revision > 0, "a write reports its revision");
            phase_detail(node.id, &key, revision);
        }
    }

    phase("every node converges to the same 60 keys, with the same revisions");
    let mut dumps = Vec::new();
    for node in &cluster.nodes {
        wait_until(&format!("node {} has 60 keys", node.id), || async {
            dump(node, "config")
                .await
                .map(|d| d.len() == 60)
                .unwrap_or(false)
        })
        .await;
        dumps.push(dump(node, "config").await.expect("dump"));
    }
    assert_eq!(dumps[0], dumps[1]);
    assert_eq!(dumps[0], dumps[2]);

    phase("a linearizable read right after an acknowledged write sees it, on every node");
    for (round, writer) in cluster.nodes.iter().enumerate() {
        let value = format!("round-{round}");
        put(writer, "config", "fresh", &value).await.expect("put");
        for reader in &cluster.nodes {
            let got = get(reader, "config", "fresh", true)
                .await
                .expect("linearizable get");
            assert_eq!(
                got.as_deref(),
                Some(value.as_str()),
                "node {} read a stale value",
                reader.id
            );
        }
    }

    phase("a write at a follower is readable at that follower right after (read your writes)");
    let revision = put(follower, "config", "ryw", "mine").await.expect("put");
    assert_eq!(
        get(follower, "config", "ryw", false)
            .await
            .expect("get")
            .as_deref(),
        Some("mine")
    );
    assert!(revision > 0);
}

fn phase_detail(node: u64, key: &str, revision: u64) {
    if key.ends_with("19") {
        phase(&format!(
            "node {node}: 20 writes acknowledged, last at revision {revision}"
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_under_load_loses_no_acknowledged_write() {
    phase("start a three-node core and a table");
    let mut cluster = Cluster::start(3);
    let first_leader = cluster.wait_for_leader().await;
    create_table(&cluster.nodes[0], "t").await;

    phase("8 clients write unique keys through every node");
    let acked: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let mut writers = Vec::new();
    let addresses: Vec<String> = cluster.nodes.iter().map(|n| n.api.clone()).collect();
    for client in 0..8 {
        let acked = acked.clone();
        let stop = stop.clone();
        let addresses = addresses.clone();
        writers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.is_cancelled() {
                let addr = &addresses[(client + n as usize) % addresses.len()];
                let key = format!("c{client}-{n:06}");
                let value = format!("value-{client}-{n}");
                if put_at(addr, "t", &key, &value).await.is_ok() {
                    acked.lock().expect("lock").insert(key, value);
                }
                n += 1;
            }
        }));
    }
    wait_until("200 writes are acknowledged", || async {
        acked.lock().expect("lock").len() >= 200
    })
    .await;

    phase(&format!("SIGKILL the leader, node {first_leader}"));
    cluster.node(first_leader).kill();
    let before_kill = acked.lock().expect("lock").len();
    let new_leader = cluster.wait_for_leader_other_than(first_leader).await;
    phase(&format!("node {new_leader} leads; writes go on"));
    wait_until(
        "200 more writes are acknowledged under the new leader",
        || async { acked.lock().expect("lock").len() >= before_kill + 200 },
    )
    .await;
    stop.cancel();
    for w in writers {
        w.await.expect("writer task");
    }

    phase("restart the killed node");
    cluster.restart(first_leader);
    let acked = acked.lock().expect("lock").clone();
    phase(&format!(
        "{} writes were acknowledged; check every node has each exactly once",
        acked.len()
    ));
    for node in &cluster.nodes {
        wait_until(
            &format!("node {} has every acknowledged write", node.id),
            || async {
                match dump(node, "t").await {
                    Ok(d) => {
                        let present: BTreeMap<String, String> = d
                            .into_iter()
                            .map(|(k, v, _, _)| {
                                (
                                    String::from_utf8_lossy(&k).into(),
                                    String::from_utf8_lossy(&v).into(),
                                )
                            })
                            .collect();
                        acked.iter().all(|(k, v)| present.get(k) == Some(v))
                    }
                    Err(_) => false,
                }
            },
        )
        .await;
        for (key, _, create, modified) in dump(node, "t").await.expect("dump") {
            assert_eq!(
                create,
                modified,
                "key {} was written more than once",
                String::from_utf8_lossy(&key)
            );
        }
    }
}

async fn put_at(addr: &str, table: &str, key: &str, value: &str) -> Result<u64, tonic::Status> {
    use regatta_proto::regatta::v1::{PutRequest, kv_client::KvClient};
    let channel = tonic::transport::Channel::from_shared(addr.to_string())
        .expect("address")
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut request = tonic::Request::new(PutRequest {
        table: table.as_bytes().to_vec().into(),
        key: key.as_bytes().to_vec().into(),
        value: value.as_bytes().to_vec().into(),
        prev_kv: false,
        ttl_millis: 0,
    });
    request.set_timeout(std::time::Duration::from_secs(5));
    let response = KvClient::new(channel).put(request).await?;
    Ok(response.into_inner().header.map_or(0, |h| h.revision))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_and_starting_every_node_keeps_all_data_and_revisions() {
    restart_keeps_everything(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_after_snapshots_and_log_compaction_keeps_all_data() {
    restart_keeps_everything(&["--raft.snapshot-entries=20", "--raft.keep-entries=3"]).await;
}

async fn restart_keeps_everything(flags: &[&str]) {
    phase(&format!(
        "start a three-node core with {flags:?}, write 100 keys"
    ));
    let mut cluster = Cluster::start_with(3, flags);
    cluster.wait_for_leader().await;
    create_table(&cluster.nodes[0], "t").await;
    for i in 0..100 {
        put(
            &cluster.nodes[i % 3],
            "t",
            &format!("k{i:03}"),
            &format!("v{i}"),
        )
        .await
        .expect("put");
    }
    let before = dump(&cluster.nodes[0], "t").await.expect("dump");
    for node in &cluster.nodes {
        wait_until(&format!("node {} caught up", node.id), || async {
            dump(node, "t").await.map(|d| d == before).unwrap_or(false)
        })
        .await;
    }

    phase("SIGTERM all three: each exits 0");
    for node in &mut cluster.nodes {
        assert_eq!(node.terminate(), Some(0), "node {} exit code", node.id);
    }
    phase("start them again");
    for id in 1..=3 {
        cluster.restart(id);
    }
    cluster.wait_for_leader().await;
    for node in &cluster.nodes {
        wait_until(
            &format!("node {} serves the same data, same revisions", node.id),
            || async { dump(node, "t").await.map(|d| d == before).unwrap_or(false) },
        )
        .await;
    }
    phase("and it takes new writes");
    let revision = put(&cluster.nodes[1], "t", "after", "restart")
        .await
        .expect("put after restart");
    assert!(
        revision
            > before
                .iter()
                .map(|(_, _, _, m)| *m as u64)
                .max()
                .unwrap_or(0)
    );
}

/// Runs the `regatta` client CLI; returns its exit code and standard output.
fn cli(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(binary())
        .args(args)
        .output()
        .expect("run regatta");
    if !out.status.success() {
        eprintln!("regatta {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_added_and_removed_at_run_time() {
    phase("start a three-node core with data");
    let mut cluster = Cluster::start(3);
    cluster.wait_for_leader().await;
    create_table(&cluster.nodes[0], "t").await;
    for i in 0..20 {
        put(&cluster.nodes[0], "t", &format!("k{i}"), "v")
            .await
            .expect("put");
    }

    phase("start a fourth node outside the cluster and add it with the CLI");
    let mut fourth = Node::core(4, cluster.dir.path());
    fourth.start("");
    let address = cluster.nodes[1].api.clone();
    let (code, out) = cli(&[
        "cluster",
        "add-member",
        "4",
        &fourth.raft,
        "--address",
        &address,
        "--json",
        "--timeout",
        "60s",
    ]);
    assert_eq!(code, 0, "add-member failed: {out}");
    let answer: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON output");
    assert_eq!(
        answer["nodes"].as_array().map(Vec::len),
        Some(4),
        "{answer}"
    );
    cluster.nodes.push(fourth);
    wait_until("the fourth node has the data", || async {
        dump(&cluster.nodes[3], "t")
            .await
            .map(|d| d.len() == 20)
            .unwrap_or(false)
    })
    .await;
    let (code, out) = cli(&["cluster", "members", "--address", &address, "--json"]);
    assert_eq!(code, 0);
    let members: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON output");
    assert_eq!(
        members["members"].as_array().map(Vec::len),
        Some(4),
        "{members}"
    );

    phase("remove the current leader");
    let leader = cluster.wait_for_leader().await;
    let (code, out) = cli(&[
        "cluster",
        "remove-member",
        &leader.to_string(),
        "--address",
        &address,
        "--json",
        "--timeout",
        "60s",
    ]);
    assert_eq!(code, 0, "remove-member failed: {out}");
    cluster.node(leader).kill();
    let new_leader = cluster.wait_for_leader_other_than(leader).await;
    phase(&format!(
        "node {new_leader} leads the three that remain; writes go on"
    ));
    let survivor = cluster
        .nodes
        .iter()
        .find(|n| n.is_running())
        .expect("a running node");
    let revision = put(survivor, "t", "after-removal", "v")
        .await
        .expect("write after removal");
    for node in cluster.nodes.iter().filter(|n| n.is_running()) {
        wait_until(&format!("node {} applied the write", node.id), || async {
            get(node, "t", "after-removal", false)
                .await
                .ok()
                .flatten()
                .is_some()
        })
        .await;
    }
    assert!(revision > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_the_compacted_log_catches_up_by_snapshot() {
    phase("three nodes that snapshot and compact every 20 entries");
    let mut cluster =
        Cluster::start_with(3, &["--raft.snapshot-entries=20", "--raft.keep-entries=3"]);
    let leader = cluster.wait_for_leader().await;
    create_table(&cluster.nodes[0], "t").await;
    let follower = cluster
        .nodes
        .iter()
        .map(|n| n.id)
        .find(|id| *id != leader)
        .expect("a follower");

    phase(&format!(
        "SIGKILL follower {follower}; write 200 keys, far past what the leader keeps"
    ));
    cluster.node(follower).kill();
    let writer_id = cluster
        .nodes
        .iter()
        .find(|n| n.is_running())
        .expect("running")
        .id;
    for i in 0..200 {
        let node = cluster
            .nodes
            .iter()
            .find(|n| n.id == writer_id)
            .expect("writer");
        put(node, "t", &format!("k{i:03}"), "v").await.expect("put");
    }
    let expected = dump(
        cluster
            .nodes
            .iter()
            .find(|n| n.id == writer_id)
            .expect("writer"),
        "t",
    )
    .await
    .expect("dump");

    phase("restart it: the leader sends a snapshot, the follower ends with the same state");
    cluster.restart(follower);
    let node = cluster
        .nodes
        .iter()
        .find(|n| n.id == follower)
        .expect("follower");
    wait_until("the restarted follower has every key", || async {
        dump(node, "t")
            .await
            .map(|d| d == expected)
            .unwrap_or(false)
    })
    .await;
    // The gauges follow Raft within their refresh period (200 ms).
    wait_until(
        "the follower holds a snapshot it received or built",
        || async {
            let metrics = node.http_body("/metrics").await.unwrap_or_default();
            metrics
                .lines()
                .find_map(|l| l.strip_prefix("regatta_raft_snapshot_index "))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .is_some_and(|index| index > 0)
        },
    )
    .await;
    let log = std::fs::read_to_string(node.log_path()).expect("node log");
    assert!(
        log.contains("installing snapshot received from the leader"),
        "the catch-up went through a snapshot"
    );
}

/// Concurrent writes are proposed together (group proposal): every one is answered with
/// its own result, and writes to one key inside a batch apply in a single order that the
/// answers' `prev_kv` and the final version agree on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_batched_into_entries_each_get_their_own_answer() {
    use regatta_proto::regatta::v1::PutRequest;
    phase("a three-node core");
    let cluster = Cluster::start(3);
    let leader = cluster.wait_for_leader().await;
    let node = &cluster.nodes[leader as usize - 1];
    create_table(node, "t").await;

    phase("64 concurrent puts to one key, with prev_kv");
    const N: usize = 64;
    let kv = node.kv().await;
    let mut tasks = Vec::new();
    for i in 0..N {
        let mut kv = kv.clone();
        tasks.push(tokio::spawn(async move {
            let r = kv
                .put(PutRequest {
                    table: "t".into(),
                    key: "k".into(),
                    value: format!("{i}").into_bytes().into(),
                    prev_kv: true,
                    ttl_millis: 0,
                })
                .await
                .expect("put")
                .into_inner();
            let prev = r
                .prev_kv
                .map(|kv| String::from_utf8_lossy(&kv.value).into_owned());
            let revision = r.header.expect("header").revision;
            (format!("{i}"), prev, revision)
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.expect("task"));
    }

    phase("the prev_kv answers chain through every write exactly once");
    let next: std::collections::HashMap<Option<String>, String> = answers
        .iter()
        .map(|(value, prev, _)| (prev.clone(), value.clone()))
        .collect();
    assert_eq!(
        next.len(),
        N,
        "two writes saw the same previous value: {answers:?}"
    );
    let mut at = None;
    let mut order = Vec::new();
    while let Some(v) = next.get(&at) {
        order.push(v.clone());
        at = Some(v.clone());
    }
    assert_eq!(order.len(), N, "the chain of prev_kv breaks: {answers:?}");
    let revisions: std::collections::BTreeSet<u64> = answers.iter().map(|a| a.2).collect();
    assert!(
        revisions.len() < N,
        "64 concurrent writes were never proposed together: {revisions:?}"
    );
    let last = order.last().cloned();
    assert_eq!(get(node, "t", "k", true).await.expect("get"), last);

    phase("the leader's proposal metrics count every write and fewer entries than writes");
    let metrics = node.http_body("/metrics").await.expect("metrics");
    let figure = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} exported:\n{metrics}"))
    };
    let entries = figure("regatta_raft_proposal_writes_count ");
    let writes = figure("regatta_raft_proposal_writes_sum ");
    // Table creation is proposed on its own, outside group proposal.
    assert_eq!(writes, N as f64, "every write was counted once");
    assert!(
        entries < writes,
        "batches carried several writes: {entries} entries"
    );
    assert_eq!(figure("regatta_raft_proposal_seconds_count "), entries);
}

/// Regatta's address forms: each node advertises a bare `127.0.0.1:P` (`--raft.address`),
/// binds every interface (`--raft.listen-address=0.0.0.0:P`), and the members are listed
/// as `1=127.0.0.1:P1,2=…`; with Regatta's timing flags and no automatic snapshots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_given_bare_host_port_addresses_elects_and_replicates() {
    phase("three nodes: --raft.address=127.0.0.1:P --raft.listen-address=0.0.0.0:P");
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut nodes: Vec<Node> = (1..=3).map(|id| Node::core(id, dir.path())).collect();
    for node in &mut nodes {
        let port = node.raft.rsplit(':').next().expect("a port").to_string();
        node.raft = format!("127.0.0.1:{port}");
        node.args = vec![
            format!("--raft.listen-address=0.0.0.0:{port}"),
            "--raft.rtt=50ms".into(),
            "--raft.election-rtt=30".into(),
            "--raft.snapshot-entries=0".into(),
        ];
    }
    let members = initial_members(&nodes);
    assert!(members.starts_with("1=127.0.0.1:"), "{members}");
    for node in &mut nodes {
        node.start(&members);
    }
    let cluster = Cluster {
        nodes,
        members,
        dir,
    };
    let leader = cluster.wait_for_leader().await;

    phase(&format!(
        "node {leader} leads; a write through a follower reaches every node"
    ));
    let follower = cluster
        .nodes
        .iter()
        .find(|n| n.id != leader)
        .expect("a follower");
    create_table(follower, "t").await;
    for i in 0..50 {
        put(follower, "t", &format!("k{i}"), "v")
            .await
            .expect("put");
    }
    put(follower, "t", "k", "v").await.expect("put");
    for node in &cluster.nodes {
        wait_until(&format!("node {} has the write", node.id), || async {
            get(node, "t", "k", false)
                .await
                .is_ok_and(|v| v.as_deref() == Some("v"))
        })
        .await;
    }
}
