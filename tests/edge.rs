//! End-to-end: edges following a three-node core, real processes on loopback ports.

mod common;

use common::*;

async fn write_many(node: &Node, table: &str, prefix: &str, n: usize) {
    for i in 0..n {
        put(node, table, &format!("{prefix}{i:05}"), &format!("v{i}"))
            .await
            .expect("put");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edges_follow_the_core_and_read_their_own_writes() {
    phase("three core nodes, two edges following different core nodes");
    let cluster = Cluster::start(3);
    cluster.wait_for_leader().await;
    create_table(&cluster.nodes[0], "flags").await;
    write_many(&cluster.nodes[0], "flags", "k", 50).await;
    let mut edges: Vec<Edge> = (0..2)
        .map(|i| {
            Edge::new(
                &format!("edge-{i}"),
                cluster.dir.path(),
                vec![cluster.nodes[i + 1].replication.clone()],
            )
        })
        .collect();
    for e in &mut edges {
        e.start();
    }
    for e in &edges {
        wait_converged(&cluster.nodes[0], &e.node, "an edge serves the core's data").await;
    }

    phase("one lone write reaches both edges with no later write behind it");
    let revision = put(&cluster.nodes[0], "flags", "lone", "write")
        .await
        .expect("put");
    for e in &edges {
        wait_until("the lone write is visible at the edge", || async {
            get(&e.node, "flags", "lone", false)
                .await
                .ok()
                .flatten()
                .as_deref()
                == Some("write")
        })
        .await;
    }
    assert!(revision > 0);

    phase("a write at an edge is readable at that edge right after it is acknowledged");
    for i in 0..10 {
        let value = format!("edge-write-{i}");
        put(&edges[0].node, "flags", "mine", &value)
            .await
            .expect("put at the edge");
        assert_eq!(
            get(&edges[0].node, "flags", "mine", false)
                .await
                .expect("get")
                .as_deref(),
            Some(value.as_str())
        );
    }

    phase("tables created and deleted on the core appear and vanish at the edges");
    create_table(&cluster.nodes[1], "extra").await;
    put(&cluster.nodes[1], "extra", "a", "b")
        .await
        .expect("put");
    let mut tables = cluster.nodes[0].tables().await;
    tables
        .delete(regatta_proto::regatta::v1::DeleteTableRequest {
            name: "flags".into(),
        })
        .await
        .expect("delete table");
    for e in &edges {
        wait_converged(&cluster.nodes[0], &e.node, "edges follow table changes").await;
        let names: Vec<String> = dump_all(&e.node).await.expect("dump").into_keys().collect();
        assert_eq!(names, ["extra"]);
    }

    phase("an edge refuses table changes and serves readiness");
    let mut edge_tables = edges[0].node.tables().await;
    let status = edge_tables
        .create(regatta_proto::regatta::v1::CreateTableRequest {
            name: "nope".into(),
            config: None,
        })
        .await
        .expect_err("edges do not create tables");
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    assert_eq!(edges[0].node.http_status("/readyz").await, Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_edge_catches_up_from_the_log_not_a_snapshot() {
    phase("core and one edge");
    let cluster = Cluster::start(3);
    cluster.wait_for_leader().await;
    create_table(&cluster.nodes[0], "t").await;
    let mut edge = Edge::new(
        "edge",
        cluster.dir.path(),
        vec![cluster.nodes[0].replication.clone()],
    );
    edge.start();
    write_many(&cluster.nodes[0], "t", "a", 20).await;
    wait_converged(&cluster.nodes[0], &edge.node, "the edge caught up").await;

    phase("SIGKILL the edge, write 10,000 more");
    edge.node.kill();
    write_batches(&cluster.nodes[0], "t", 10_000).await;

    phase("restart it: it catches up from the core's log");
    restart_without_bootstrap(&mut edge, &cluster.nodes[0], "no snapshot was needed").await;
}

/// Writes `n` keys in transactions of 100 puts, so large counts stay quick.
async fn write_batches(node: &Node, table: &str, n: usize) {
    use regatta_proto::{
        mvcc::v1::{RequestOp, request_op},
        regatta::v1::TxnRequest,
    };
    let mut kv = node.kv().await;
    for batch in 0..n.div_ceil(100) {
        let success = (0..100.min(n - batch * 100))
            .map(|i| RequestOp {
                request: Some(request_op::Request::RequestPut(request_op::Put {
                    key: format!("b{:06}", batch * 100 + i).into_bytes().into(),
                    value: vec![b'x'; 64].into(),
                    prev_kv: false,
                    ttl_millis: 0,
                })),
            })
            .collect();
        kv.txn(TxnRequest {
            table: table.as_bytes().to_vec().into(),
            compare: vec![],
            success,
            failure: vec![],
        })
        .await
        .expect("txn of puts");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_behind_the_compacted_log_bootstraps_from_object_storage() {
    phase("core that snapshots and compacts often, sharing one object store directory");
    let root = tempfile::tempdir().expect("tempdir");
    let objects = root.path().join("objects");
    let object_store = format!("--object-store=file://{}", objects.display());
    let cluster = Cluster::start_with(
        3,
        &[
            "--raft.snapshot-entries=50",
            "--raft.keep-entries=5",
            "--object-store.snapshot-entries=50",
            // Purges wait for the segment archive, which takes sealed segments only: small
            // segments seal (and so compact) within the test's few hundred writes.
            "--log.segment-size=4096",
            &object_store,
        ],
    );
    cluster.wait_for_leader().await;
    create_table(&cluster.nodes[0], "t").await;
    let mut edge = Edge::new(
        "edge",
        cluster.dir.path(),
        vec![cluster.nodes[0].replication.clone()],
    );
    edge.node.args.push(object_store.clone());
    edge.start();
    write_many(&cluster.nodes[0], "t", "a", 10).await;
    wait_converged(&cluster.nodes[0], &edge.node, "the edge caught up").await;

    phase("stop the edge; write and compact the core far past its index");
    assert_eq!(edge.node.terminate(), Some(0));
    write_many(&cluster.nodes[0], "t", "b", 300).await;
    wait_until(
        "a snapshot past the edge's index is in object storage",
        || async {
            std::fs::read_dir(objects.join("snapshots"))
                .map(|d| d.count() > 0)
                .unwrap_or(false)
        },
    )
    .await;

    wait_until(
        "the core's log starts after what it purged, and only after it was archived",
        || async {
            let Some(body) = cluster.nodes[0].http_body("/metrics").await else {
                return false;
            };
            let figure = |name: &str| {
                body.lines()
                    .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
            };
            match (
                figure("regatta_log_first_index "),
                figure("regatta_raft_purged_index "),
                figure("regatta_archive_last_index "),
            ) {
                (Some(first), Some(purged), Some(archived)) => {
                    first > 1 && first <= purged + 1 && first <= archived + 1
                }
                _ => false,
            }
        },
    )
    .await;

    phase("restart the edge: it bootstraps from the object store and ends with the core's state");
    edge.start();
    wait_converged(
        &cluster.nodes[0],
        &edge.node,
        "the edge bootstrapped and caught up",
    )
    .await;
    // At least once. The core may still be compacting when the edge comes back (a purge
    // that waited for its segments' archive lands a moment later), and an edge that finds
    // the log moved past the snapshot it just loaded bootstraps again from a newer one.
    let bootstraps = edge.metric("regatta_edge_bootstraps_total").await;
    assert!(
        bootstraps.is_some_and(|n| n >= 1.0),
        "bootstrapped from the object store: {bootstraps:?}"
    );
    let log = std::fs::read_to_string(edge.node.log_path()).unwrap_or_default();
    assert!(
        log.lines().any(
            |l| l.contains("bootstrapping from a snapshot") && l.contains("source=ObjectStore")
        ),
        "the core kept its log from the newest object-store snapshot on, so the edge loaded \
         that snapshot rather than one streamed by the core:\n{log}"
    );
    let progress = log
        .lines()
        .find(|l| l.contains("regatta::progress: bootstrap: "))
        .unwrap_or_else(|| panic!("no bootstrap progress line in the edge's log:\n{log}"));
    assert!(
        progress.contains("rate=") && progress.contains("done="),
        "the progress line gives bytes done and rate: {progress}"
    );

    phase(
        "SIGKILL the edge and restart it: it resumes from the snapshot it kept, not a new bootstrap",
    );
    edge.node.kill();
    write_many(&cluster.nodes[0], "t", "c", 5).await;
    restart_without_bootstrap(
        &mut edge,
        &cluster.nodes[0],
        "the kept copy of the downloaded snapshot was loaded",
    )
    .await;
    let log = std::fs::read_to_string(edge.node.log_path()).unwrap_or_default();
    assert!(
        !log.contains("skipping a damaged"),
        "the kept snapshot reads back intact:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_fails_over_when_its_core_node_dies_and_chains_converge() {
    phase("core, edge A following node 1 then node 2, edge B following edge A");
    let mut cluster = Cluster::start(3);
    cluster.wait_for_leader().await;
    create_table(&cluster.nodes[0], "t").await;
    let upstreams = vec![
        cluster.nodes[0].replication.clone(),
        cluster.nodes[1].replication.clone(),
    ];
    let mut a = Edge::new("edge-a", cluster.dir.path(), upstreams);
    a.node.args.push("--replication.staleness=1s".into());
    a.start();
    let mut b = Edge::new(
        "edge-b",
        cluster.dir.path(),
        vec![a.node.replication.clone()],
    );
    // Edge B runs on one runtime worker: everything an edge does fits on one thread.
    b.node.args.push("--runtime.worker-threads=1".into());
    b.start();
    write_many(&cluster.nodes[1], "t", "a", 30).await;
    wait_converged(&cluster.nodes[1], &a.node, "edge A caught up").await;
    wait_converged(
        &cluster.nodes[1],
        &b.node,
        "edge B (behind edge A) caught up",
    )
    .await;
    assert_eq!(
        b.metric("regatta_runtime_worker_threads").await,
        Some(1.0),
        "--runtime.worker-threads=1 gives one worker"
    );

    phase("SIGKILL core node 1, which edge A follows; keep writing");
    cluster.node(1).kill();
    cluster.wait_for_leader_other_than(1).await;
    let writer = cluster
        .nodes
        .iter()
        .find(|n| n.is_running())
        .expect("a running core node");
    write_many(writer, "t", "b", 30).await;
    wait_converged(writer, &a.node, "edge A failed over and lost nothing").await;
    wait_converged(writer, &b.node, "edge B follows through edge A").await;
    assert!(
        a.metric("regatta_edge_upstream_changes_total")
            .await
            .unwrap_or(0.0)
            >= 1.0
    );
    assert_eq!(
        a.metric("regatta_edge_bootstraps_total").await,
        Some(0.0),
        "failover needs no snapshot"
    );

    phase("a write at the end of the chain reads back there");
    put(&b.node, "t", "from-b", "ok")
        .await
        .expect("write through two edges");
    assert_eq!(
        get(&b.node, "t", "from-b", false)
            .await
            .expect("get")
            .as_deref(),
        Some("ok")
    );
}

/// Starts a stopped `edge` again and waits until it has caught up with `core`, asserting
/// that it did so without a bootstrap (`why` says what that shows).
async fn restart_without_bootstrap(edge: &mut Edge, core: &Node, why: &str) {
    edge.start();
    wait_converged(core, &edge.node, "the restarted edge caught up").await;
    assert_eq!(
        edge.metric("regatta_edge_bootstraps_total").await,
        Some(0.0),
        "{why}"
    );
}
