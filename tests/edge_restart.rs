//! End-to-end: an edge restarted (SIGKILL, then the same command line) serves the tables it
//! restored at once, but until it has caught up with an upstream it cannot tell that a table
//! it lacks does not exist: a read of one is answered `Unavailable` (retryable, with the
//! reason), never `NotFound`, and `/readyz` says not ready. An edge following it (a chain)
//! does not take itself for caught up with what the restarted edge restored. Real processes
//! on loopback ports; the core is stopped while the edges restart, so that they stay behind
//! for as long as the test looks.

mod common;

use common::*;
use regatta_proto::regatta::v1::{RangeRequest, TxnRequest};

/// The code and message of a serializable Range of `key` in `table` at `node` (`Ok` when it
/// answered at all).
async fn range_code(node: &Node, table: &str) -> (tonic::Code, String) {
    match get(node, table, "k", false).await {
        Ok(_) => (tonic::Code::Ok, String::new()),
        Err(status) => (status.code(), status.message().to_string()),
    }
}

/// Asserts that every read of `table` at `node` (Range, IterateRange, a read-only Txn) is
/// answered `Unavailable` with the reason, not `NotFound`.
async fn assert_reads_unavailable(node: &Node, table: &str, who: &str) {
    let (code, message) = range_code(node, table).await;
    assert_eq!(
        code,
        tonic::Code::Unavailable,
        "{who}: Range of a table it has not caught up to: {message}"
    );
    assert!(
        message.contains("not caught up"),
        "{who}: the reason is given: {message}"
    );
    let mut kv = node.kv().await;
    let iterate = kv
        .iterate_range(RangeRequest {
            table: table.as_bytes().to_vec().into(),
            key: vec![0].into(),
            range_end: vec![0].into(),
            ..Default::default()
        })
        .await
        .expect_err("IterateRange of a table not caught up to");
    assert_eq!(iterate.code(), tonic::Code::Unavailable, "{who}: {iterate}");
    let txn = kv
        .txn(TxnRequest {
            table: table.as_bytes().to_vec().into(),
            ..Default::default()
        })
        .await
        .expect_err("read-only Txn on a table not caught up to");
    assert_eq!(txn.code(), tonic::Code::Unavailable, "{who}: {txn}");
}

/// Waits until `edge` has heard from its upstream since it started (its `/readyz` no longer
/// says it is not connected) and returns what `/readyz` says then.
async fn wait_connected(edge: &Node, what: &str) -> (Option<u16>, String) {
    wait_until(what, || async {
        edge.http_body("/readyz")
            .await
            .is_some_and(|body| !body.contains("not yet connected"))
    })
    .await;
    (
        edge.http_status("/readyz").await,
        edge.http_body("/readyz").await.unwrap_or_default(),
    )
}

async fn wait_read(node: &Node, table: &str, value: &str, what: &str) {
    wait_until(what, || async {
        get(node, table, "k", false).await.ok().flatten().as_deref() == Some(value)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_edge_answers_unavailable_for_tables_it_has_not_caught_up_to() {
    phase("one core node; edge1 follows it, edge2 follows edge1; table old everywhere");
    let mut cluster = Cluster::start(1);
    cluster.wait_for_leader().await;
    create_table(&cluster.nodes[0], "old").await;
    put(&cluster.nodes[0], "old", "k", "v-old")
        .await
        .expect("put");
    let mut edge1 = Edge::new(
        "edge1",
        cluster.dir.path(),
        vec![cluster.nodes[0].replication.clone()],
    );
    edge1.start();
    let mut edge2 = Edge::new(
        "edge2",
        cluster.dir.path(),
        vec![edge1.node.replication.clone()],
    );
    edge2.start();
    for edge in [&edge1, &edge2] {
        wait_converged(&cluster.nodes[0], &edge.node, "the edge serves table old").await;
        wait_until("the edge is ready", || async {
            edge.node.http_status("/readyz").await == Some(200)
        })
        .await;
    }

    phase("SIGKILL both edges; table new is created while they are down; the core stops");
    edge2.node.kill();
    edge1.node.kill();
    create_table(&cluster.nodes[0], "new").await;
    put(&cluster.nodes[0], "new", "k", "v-new")
        .await
        .expect("put");
    cluster.node(1).kill();

    phase("edge1 restarts without its upstream: old is served, new is Unavailable");
    edge1.start();
    wait_read(&edge1.node, "old", "v-old", "edge1 serves what it restored").await;
    assert_reads_unavailable(&edge1.node, "new", "edge1").await;
    let body = edge1.node.http_body("/readyz").await.unwrap_or_default();
    assert_eq!(edge1.node.http_status("/readyz").await, Some(503), "{body}");

    phase("edge2 restarts and hears from edge1, which has not caught up: still Unavailable");
    edge2.start();
    let (ready, body) = wait_connected(&edge2.node, "edge2 hears from edge1").await;
    assert_eq!(ready, Some(503), "edge2 is not ready: {body}");
    assert!(body.contains("not caught up"), "{body}");
    wait_read(&edge2.node, "old", "v-old", "edge2 serves what it restored").await;
    assert_reads_unavailable(&edge2.node, "new", "edge2").await;

    phase("the core comes back: both edges catch up, serve new and are ready");
    cluster.restart(1);
    cluster.wait_for_leader().await;
    for (edge, name) in [(&edge1, "edge1"), (&edge2, "edge2")] {
        wait_read(
            &edge.node,
            "new",
            "v-new",
            &format!("{name} serves table new"),
        )
        .await;
        wait_until(&format!("{name} is ready"), || async {
            edge.node.http_status("/readyz").await == Some(200)
        })
        .await;
    }

    phase("once caught up, a table that does not exist is NotFound again");
    for edge in [&edge1, &edge2] {
        let (code, message) = range_code(&edge.node, "never").await;
        assert_eq!(code, tonic::Code::NotFound, "{message}");
    }
}
