//! End-to-end: a node whose disk fills up keeps running and serving reads, refuses writes
//! with `RESOURCE_EXHAUSTED` (or, with the guard off, lets them wait), and takes writes
//! again once space is freed; nothing acknowledged is lost.
//!
//! The small disk is a tmpfs mounted for the test (root and mount rights needed; without
//! them each test says so and passes without checking anything). The node's log and
//! snapshot directories are symlinks into it; its own log file stays outside, so the node
//! can still say what happened. A filler file beside the data takes the space, and deleting
//! it frees it.

#![allow(clippy::unwrap_used)]

mod common;

use common::{small_disk::SmallDisk, *};

fn value(i: usize, size: usize) -> String {
    format!("{i:08}-{}", "x".repeat(size))
}

async fn metric(node: &Node, name: &str) -> Option<f64> {
    let body = node.http_body("/metrics").await?;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Every acknowledged key reads back with its value at `node`.
async fn check_acked(node: &Node, table: &str, acked: &[(String, String)]) {
    for (key, want) in acked {
        let got = get(node, table, key, false).await.expect("read");
        assert_eq!(
            got.as_deref(),
            Some(want.as_str()),
            "acknowledged {key} lost"
        );
    }
}

/// Writes keys `k00000`..`k00019` of 100 bytes to table `t` on `node`; returns them.
async fn write_some(node: &Node) -> Vec<(String, String)> {
    let mut acked = Vec::new();
    for i in 0..20 {
        let (k, v) = (format!("k{i:05}"), value(i, 100));
        put(node, "t", &k, &v).await.expect("put");
        acked.push((k, v));
    }
    acked
}

/// Writes keys from `k00020` on, of `size` bytes, to table `t` on `node` until one fails
/// (at most 1,980); pushes each acknowledged one to `acked` and returns the failure.
async fn write_until_refused(
    node: &Node,
    size: usize,
    acked: &mut Vec<(String, String)>,
) -> Option<tonic::Status> {
    for i in 20..2000 {
        let (k, v) = (format!("k{i:05}"), value(i, size));
        match put(node, "t", &k, &v).await {
            Ok(_) => acked.push((k, v)),
            Err(status) => return Some(status),
        }
    }
    None
}

/// Stops `node` cleanly, starts it again and checks every acknowledged write of table `t`
/// once it serves the last of them.
async fn restart_and_check(node: &mut Node, members: &str, acked: &[(String, String)]) {
    assert_eq!(node.terminate(), Some(0), "clean exit");
    node.start(members);
    let (last, _) = acked.last().expect("something was acknowledged");
    wait_until("the restarted node serves", || async {
        get(node, "t", last, false).await.ok().flatten().is_some()
    })
    .await;
    check_acked(node, "t", acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_keeps_reads_and_recovers() {
    let root = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(&root.path().join("disk"), 24) else {
        return;
    };
    phase("a core node with its log and snapshots on a 24 MiB disk, reserve 4 MiB");
    let mut node = Node::core(1, root.path());
    disk.host(&node.data_dir, &["log", "raft-snapshots"]);
    node.args = vec!["--min-free-disk=4MiB".into()];
    let members = format!("1={}", node.raft);
    node.start(&members);
    create_table(&node, "t").await;
    let mut acked = write_some(&node).await;

    phase("fill the disk to just above the reserve, then write until refused");
    disk.fill(5 << 20);
    let refused = write_until_refused(&node, 16 << 10, &mut acked).await;
    let status = refused.expect("writes were never refused on a full disk");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status}");
    assert!(
        status.message().contains("disk of node 1 is full"),
        "{}",
        status.message()
    );
    assert_eq!(metric(&node, "regatta_disk_full").await, Some(1.0));

    phase("the node still runs and serves reads, serializable and linearizable");
    assert_eq!(node.http_status("/healthz").await, Some(200));
    check_acked(&node, "t", &acked).await;
    let (k, v) = acked.last().unwrap();
    assert_eq!(
        get(&node, "t", k, true)
            .await
            .expect("linearizable read")
            .as_deref(),
        Some(v.as_str())
    );
    let again = put(&node, "t", "refused", "still")
        .await
        .expect_err("still full");
    assert_eq!(again.code(), tonic::Code::ResourceExhausted);

    phase("free the space: writes are taken again");
    disk.free_up();
    wait_until("writes are taken after space is freed", || async {
        put(&node, "t", "after", "freed").await.is_ok()
    })
    .await;
    acked.push(("after".into(), "freed".into()));
    for i in 0..10 {
        let (k, v) = (format!("z{i:05}"), value(i, 1000));
        put(&node, "t", &k, &v).await.expect("put after freeing");
        acked.push((k, v));
    }
    assert_eq!(metric(&node, "regatta_disk_full").await, Some(0.0));

    phase("restart: every acknowledged write is still there");
    restart_and_check(&mut node, &members, &acked).await;
    drop(node);
    drop(disk);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_guard_off_an_append_that_hits_enospc_waits_instead_of_stopping_raft() {
    let root = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(&root.path().join("disk"), 16) else {
        return;
    };
    phase("a core node on a 16 MiB disk with no reserve (--min-free-disk=0)");
    let mut node = Node::core(1, root.path());
    disk.host(&node.data_dir, &["log", "raft-snapshots"]);
    // Raft snapshots fall due while the disk is full too.
    node.args = vec![
        "--min-free-disk=0".into(),
        "--raft.snapshot-entries=30".into(),
    ];
    let members = format!("1={}", node.raft);
    node.start(&members);
    create_table(&node, "t").await;
    let mut acked = write_some(&node).await;

    phase("fill the disk, then write until a write cannot complete");
    disk.fill(256 << 10);
    let failed = write_until_refused(&node, 32 << 10, &mut acked).await;
    let status = failed.expect("writes kept succeeding on a full disk");
    assert_eq!(
        status.code(),
        tonic::Code::DeadlineExceeded,
        "the write waits for space: {status}"
    );

    phase("raft did not stop: the node runs and serves reads");
    assert_eq!(node.http_status("/healthz").await, Some(200));
    check_acked(&node, "t", &acked).await;
    let log = std::fs::read_to_string(node.log_path()).unwrap();
    assert!(
        log.contains("disk full: waiting for free space to retry"),
        "the wait is logged"
    );
    assert!(!log.contains("raft stopped"), "raft must not stop");

    phase("free the space: the waiting append completes and writes are taken again");
    disk.free_up();
    wait_until("writes complete after space is freed", || async {
        put(&node, "t", "after", "freed").await.is_ok()
    })
    .await;
    acked.push(("after".into(), "freed".into()));

    phase("restart: every acknowledged write is still there");
    restart_and_check(&mut node, &members, &acked).await;
    drop(node);
    drop(disk);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_with_a_full_disk_pauses_serves_reads_and_catches_up() {
    let root = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(&root.path().join("disk"), 16) else {
        return;
    };
    phase("a core node (roomy disk) and an edge with its log on a 16 MiB disk");
    let mut core = Node::core(1, root.path());
    core.start(&format!("1={}", core.raft));
    create_table(&core, "t").await;
    let mut acked = write_some(&core).await;
    let mut edge = Edge::new("edge", root.path(), vec![core.replication.clone()]);
    disk.host(&edge.node.data_dir, &["log", "snapshots"]);
    // Local snapshots fall due while the disk is full too.
    edge.node.args = vec![
        "--min-free-disk=1MiB".into(),
        "--edge.snapshot-entries=30".into(),
    ];
    edge.start();
    wait_converged(&core, &edge.node, "the edge serves the core's data").await;

    phase("fill the edge's disk; the core keeps writing until the edge pauses");
    disk.fill(256 << 10);
    let mut paused = false;
    for i in 20..2000 {
        let (k, v) = (format!("k{i:05}"), value(i, 16 << 10));
        put(&core, "t", &k, &v).await.expect("the core has room");
        acked.push((k, v));
        if i % 10 == 0 && metric(&edge.node, "regatta_edge_append_paused").await == Some(1.0) {
            paused = true;
            break;
        }
    }
    assert!(paused, "the edge never reported a paused append");

    wait_until("the edge's guard sees its disk full", || async {
        metric(&edge.node, "regatta_disk_full").await == Some(1.0)
    })
    .await;

    phase("the paused edge runs, serves reads and refuses writes with the documented status");
    assert_eq!(edge.node.http_status("/healthz").await, Some(200));
    let (k, v) = &acked[5];
    assert_eq!(
        get(&edge.node, "t", k, false)
            .await
            .expect("edge read")
            .as_deref(),
        Some(v.as_str())
    );
    let refused = put(&edge.node, "t", "at-edge", "x")
        .await
        .expect_err("edge disk full");
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted, "{refused}");
    assert!(
        refused.message().contains("is full"),
        "{}",
        refused.message()
    );

    phase("free the space: the edge resumes and catches up");
    disk.free_up();
    wait_until("the edge resumes", || async {
        metric(&edge.node, "regatta_edge_append_paused").await == Some(0.0)
    })
    .await;
    wait_converged(&core, &edge.node, "the edge caught up").await;
    wait_until("the edge takes writes again", || async {
        put(&edge.node, "t", "at-edge", "ok").await.is_ok()
    })
    .await;
    acked.push(("at-edge".into(), "ok".into()));

    phase("restart the edge: it still serves everything");
    assert_eq!(edge.node.terminate(), Some(0), "clean exit");
    edge.start();
    wait_converged(
        &core,
        &edge.node,
        "the restarted edge serves the core's data",
    )
    .await;
    check_acked(&edge.node, "t", &acked).await;
    drop(edge);
    drop(core);
    drop(disk);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_with_a_full_disk_stays_up_while_the_others_carry_on() {
    let root = tempfile::tempdir().unwrap();
    phase("three core nodes, each with its log and snapshots on its own 24 MiB disk");
    let mut disks = Vec::new();
    let mut nodes: Vec<Node> = (1..=3).map(|id| Node::core(id, root.path())).collect();
    for node in &nodes {
        let Some(disk) = SmallDisk::mount(&root.path().join(format!("disk-{}", node.id)), 24)
        else {
            return;
        };
        disk.host(&node.data_dir, &["log", "raft-snapshots"]);
        disks.push(disk);
    }
    let members = initial_members(&nodes);
    for node in &mut nodes {
        node.args = vec![
            "--min-free-disk=4MiB".into(),
            "--raft.snapshot-entries=30".into(),
        ];
        node.start(&members);
    }
    let leader_id = wait_for_agreed_leader(&nodes).await;
    let leader = nodes.iter().position(|n| n.id == leader_id).unwrap();
    let follower = (leader + 1) % 3;
    create_table(&nodes[leader], "t").await;
    let mut acked = write_some(&nodes[leader]).await;
    wait_converged(
        &nodes[leader],
        &nodes[follower],
        "the follower has the data",
    )
    .await;

    phase("fill one follower's disk; the leader keeps taking writes");
    disks[follower].fill(256 << 10);
    for i in 20..120 {
        let (k, v) = (format!("k{i:05}"), value(i, 16 << 10));
        put(&nodes[leader], "t", &k, &v)
            .await
            .expect("the other two form the quorum");
        acked.push((k, v));
    }
    wait_until("the full follower waits for space", || async {
        std::fs::read_to_string(nodes[follower].log_path())
            .unwrap_or_default()
            .contains("disk full: waiting for free space to retry")
    })
    .await;

    wait_until("the follower's guard sees its disk full", || async {
        metric(&nodes[follower], "regatta_disk_full").await == Some(1.0)
    })
    .await;

    phase("the full follower runs, serves reads and refuses writes sent to it");
    assert_eq!(nodes[follower].http_status("/healthz").await, Some(200));
    let (k, v) = &acked[3];
    assert_eq!(
        get(&nodes[follower], "t", k, false)
            .await
            .expect("follower read")
            .as_deref(),
        Some(v.as_str())
    );
    let refused = put(&nodes[follower], "t", "via-follower", "x")
        .await
        .expect_err("the follower's disk is full");
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted, "{refused}");
    let log = std::fs::read_to_string(nodes[follower].log_path()).unwrap();
    assert!(!log.contains("raft stopped"), "raft must not stop");

    phase("free the space: the follower catches up");
    disks[follower].free_up();
    wait_converged(&nodes[leader], &nodes[follower], "the follower caught up").await;

    phase("restart the follower: every acknowledged write is there");
    assert_eq!(nodes[follower].terminate(), Some(0), "clean exit");
    nodes[follower].start(&members);
    wait_converged(
        &nodes[leader],
        &nodes[follower],
        "the restarted follower caught up",
    )
    .await;
    check_acked(&nodes[follower], "t", &acked).await;
    drop(nodes);
    drop(disks);
}

/// A leader every node agrees on.
async fn wait_for_agreed_leader(nodes: &[Node]) -> u64 {
    let agreed = &std::sync::atomic::AtomicU64::new(0);
    wait_until("the nodes agree on a leader", || async move {
        let mut seen = Vec::new();
        for n in nodes {
            seen.push(leader_of(n).await);
        }
        match seen.first().copied().flatten() {
            Some(l) if l != 0 && seen.iter().all(|s| *s == Some(l)) => {
                agreed.store(l, std::sync::atomic::Ordering::Relaxed);
                true
            }
            _ => false,
        }
    })
    .await;
    agreed.load(std::sync::atomic::Ordering::Relaxed)
}

/// A value that zstd cannot shrink much, so snapshots are as large as the data.
fn noise(seed: usize, size: usize) -> String {
    let mut x = (seed as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'!' + (x % 90) as u8)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raft_snapshot_that_finds_the_disk_full_waits_instead_of_stopping_raft() {
    let root = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(&root.path().join("disk"), 16) else {
        return;
    };
    phase("a core node on a 16 MiB disk, a snapshot every 40 entries, a small reserve");
    let mut node = Node::core(1, root.path());
    disk.host(&node.data_dir, &["log", "raft-snapshots"]);
    node.args = vec![
        "--min-free-disk=64KiB".into(),
        "--raft.snapshot-entries=40".into(),
    ];
    let members = format!("1={}", node.raft);
    node.start(&members);
    create_table(&node, "t").await;
    let mut acked = Vec::new();
    for i in 0..30 {
        let (k, v) = (format!("big{i:03}"), noise(i, 32 << 10));
        put(&node, "t", &k, &v).await.expect("put");
        acked.push((k, v));
    }

    phase("leave room for small writes but not for a snapshot, and write until one is due");
    disk.fill(400 << 10);
    for i in 0..30 {
        let (k, v) = (format!("small{i:03}"), format!("v{i}"));
        wait_until("a small write is taken", || async {
            put(&node, "t", &k, &v).await.is_ok()
        })
        .await;
        acked.push((k, v));
    }
    wait_until("the snapshot waits for space", || async {
        std::fs::read_to_string(node.log_path())
            .unwrap_or_default()
            .contains("what=\"writing a raft snapshot\"")
    })
    .await;

    phase("raft did not stop: the node runs and serves reads");
    assert_eq!(node.http_status("/healthz").await, Some(200));
    check_acked(&node, "t", &acked).await;
    let log = std::fs::read_to_string(node.log_path()).unwrap();
    assert!(!log.contains("raft stopped"), "raft must not stop");

    phase("free the space: the snapshot is written and writes go on");
    disk.free_up();
    wait_until("the snapshot is written", || async {
        std::fs::read_to_string(node.log_path())
            .unwrap_or_default()
            .contains("disk has room again: written")
    })
    .await;
    put(&node, "t", "after", "freed").await.expect("put");
    acked.push(("after".into(), "freed".into()));

    phase("restart: every acknowledged write is still there");
    restart_and_check(&mut node, &members, &acked).await;
    drop(node);
    drop(disk);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_whose_local_snapshot_finds_the_disk_full_keeps_replicating() {
    let root = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(&root.path().join("disk"), 16) else {
        return;
    };
    phase("a core node and an edge on a 16 MiB disk, a local snapshot every 40 entries");
    let mut core = Node::core(1, root.path());
    core.start(&format!("1={}", core.raft));
    create_table(&core, "t").await;
    let mut edge = Edge::new("edge", root.path(), vec![core.replication.clone()]);
    disk.host(&edge.node.data_dir, &["log", "snapshots"]);
    edge.node.args = vec![
        "--min-free-disk=64KiB".into(),
        "--edge.snapshot-entries=40".into(),
    ];
    edge.start();
    for i in 0..30 {
        put(&core, "t", &format!("big{i:03}"), &noise(i, 32 << 10))
            .await
            .expect("put");
    }
    wait_converged(&core, &edge.node, "the edge has the data").await;

    phase("leave room for the log but not for a snapshot; write until one is due");
    disk.fill(400 << 10);
    for i in 0..30 {
        put(&core, "t", &format!("small{i:03}"), "v")
            .await
            .expect("put");
    }
    wait_until("the edge's snapshot found the disk full", || async {
        let log = std::fs::read_to_string(edge.node.log_path()).unwrap_or_default();
        log.contains("local snapshot: disk full") || log.contains("edge stops replicating")
    })
    .await;
    let log = std::fs::read_to_string(edge.node.log_path()).unwrap();
    assert!(
        !log.contains("edge stops replicating"),
        "a full disk stopped replication"
    );
    assert!(log.contains("local snapshot: disk full, retrying later"));

    phase("the edge keeps replicating and serving");
    put(&core, "t", "later", "v").await.expect("put");
    wait_converged(&core, &edge.node, "the edge follows on").await;
    assert_eq!(edge.node.http_status("/readyz").await, Some(200));

    phase("free the space: the snapshot is written on a later try");
    disk.free_up();
    for i in 0..20 {
        put(&core, "t", &format!("more{i:03}"), "v")
            .await
            .expect("put");
    }
    wait_until("a local snapshot is written", || async {
        put(&core, "t", "tick", "v").await.expect("put");
        std::fs::read_to_string(edge.node.log_path())
            .unwrap_or_default()
            .contains("local snapshot written")
    })
    .await;
    wait_converged(&core, &edge.node, "the edge serves everything").await;
    drop(edge);
    drop(core);
    drop(disk);
}
