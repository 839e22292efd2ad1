//! End-to-end: the store-side bug switch `REGATTA_INJECT_BUG` (api/src/inject.rs), which
//! only debug builds carry. An unknown bug name stops a core or an edge node at start,
//! naming the value; a core armed with `follower-local-read` says so in its log, and a
//! follower of it answers a linearizable read from its own state: the old value, after a
//! newer one was acknowledged, while the leader cannot be asked. The fault suite shows
//! that it catches these bugs (docs/faults.md); this only shows that the switch works.
#![cfg(debug_assertions)]

mod common;

use std::time::Duration;

use common::*;

fn core_args(node: &Node) -> Vec<String> {
    vec![
        "core".into(),
        format!("--raft.node-id={}", node.id),
        format!("--raft.address={}", node.raft),
        format!(
            "--raft.initial-members={}",
            initial_members(std::slice::from_ref(node))
        ),
        format!("--api.address={}", node.api),
        format!("--rest.address={}", node.rest),
        format!("--replication.address={}", node.replication),
        format!("--data-dir={}", node.data_dir.display()),
    ]
}

fn edge_args(node: &Node) -> Vec<String> {
    vec![
        "edge".into(),
        "--replication.leader-address=http://127.0.0.1:1".into(),
        format!("--api.address={}", node.api),
        format!("--rest.address={}", node.rest),
        format!("--replication.address={}", node.replication),
        format!("--data-dir={}", node.data_dir.display()),
    ]
}

#[test]
fn an_unknown_bug_name_stops_a_node_at_start() {
    let root = tempfile::tempdir().expect("tempdir");
    let core = Node::core(1, root.path());
    let edge = Edge::new("edge", root.path(), Vec::new()).node;
    for (what, args) in [("core", core_args(&core)), ("edge", edge_args(&edge))] {
        phase(&format!(
            "{what}: REGATTA_INJECT_BUG=follower-local-read,no-such-bug"
        ));
        let (code, text) = run_to_exit(
            &args,
            &[("REGATTA_INJECT_BUG", "follower-local-read,no-such-bug")],
        );
        eprintln!("{what}: exit {code}: {}", text.trim_end());
        assert_ne!(code, 0, "{what}: start-up succeeded");
        for part in ["REGATTA_INJECT_BUG", "no-such-bug", "unknown bug"] {
            assert!(text.contains(part), "{what}: {part:?} not in: {text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_with_follower_local_read_answers_a_stale_linearizable_read() {
    phase("three core nodes with REGATTA_INJECT_BUG=follower-local-read");
    let armed = [
        "env".into(),
        "REGATTA_INJECT_BUG=follower-local-read".into(),
    ];
    let mut cluster = Cluster::start_under(3, &[], &armed);
    let leader = cluster.wait_for_leader().await;
    let followers: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    let (stale, other) = (followers[0], followers[1]);
    for node in &cluster.nodes {
        let log = std::fs::read_to_string(node.log_path()).unwrap_or_default();
        assert!(
            log.lines()
                .any(|l| l.contains("WARN") && l.contains("follower-local-read")),
            "node {}: no WARN naming the bug in its log:\n{log}",
            node.id
        );
    }

    phase("v1 written and applied everywhere");
    create_table(cluster.node(leader), "t").await;
    put(cluster.node(leader), "t", "k", "v1")
        .await
        .expect("put v1");
    for id in 1..=3 {
        let node = cluster.node(id);
        wait_until(&format!("node {id} applied v1"), || async {
            get(node, "t", "k", false).await.ok().flatten().as_deref() == Some("v1")
        })
        .await;
    }

    phase(&format!(
        "follower {stale} frozen; v2 acknowledged by the leader and node {other}"
    ));
    cluster.node(stale).pause();
    put(cluster.node(leader), "t", "k", "v2")
        .await
        .expect("put v2");

    phase("leader and other follower frozen; the stale follower thawed and asked");
    cluster.node(leader).pause();
    cluster.node(other).pause();
    cluster.node(stale).resume();
    // Without the bug the follower asks the frozen leader for its read index and the read
    // cannot be answered; with it, the follower answers from its own state at once.
    let read = tokio::time::timeout(
        Duration::from_secs(20),
        get(cluster.node(stale), "t", "k", true),
    )
    .await
    .expect("the armed follower answers without the leader");
    assert_eq!(
        read.expect("linearizable read").as_deref(),
        Some("v1"),
        "the armed follower serves its own (stale) state"
    );
    cluster.node(leader).resume();
    cluster.node(other).resume();
}
