//! Damage to a core node's log on disk (issue 16): a flipped byte in the middle of the newest
//! segment is corruption — the node refuses to start, names the file and the offset, and cuts
//! nothing — and `regatta reseed` moves the data aside so that the node rejoins empty and is
//! filled by the leader. A real torn write (the newest segment cut mid-frame) is still cut.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

mod common;

use std::path::{Path, PathBuf};

use common::*;
use regatta_log::{LogIndex, SegmentId};

/// The highest-numbered segment of a node's log, and its first index.
fn newest_segment(data_dir: &Path) -> (SegmentId, PathBuf) {
    let log = data_dir.join("log");
    std::fs::read_dir(&log)
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let id = SegmentId::parse_file_name(e.file_name().to_str()?)?;
            Some((id, e.path()))
        })
        .max()
        .expect("a segment file")
}

/// Offsets of every frame of a segment image (it must scan clean).
fn frame_offsets(bytes: &[u8], first: LogIndex) -> Vec<usize> {
    let scan = regatta_log::segment::scan(bytes, first, None);
    assert!(scan.stop.is_none(), "segment does not scan clean: {scan:?}");
    scan.offsets.iter().map(|&o| o as usize).collect()
}

/// A one-node core whose table `t` holds `keys` keys, and an edge that has them all.
async fn core_and_edge(keys: usize) -> (Cluster, Edge) {
    let cluster = Cluster::start(1);
    cluster.wait_for_leader().await;
    create_table(&cluster.nodes[0], "t").await;
    for i in 0..keys {
        put(&cluster.nodes[0], "t", &format!("k{i:03}"), "v")
            .await
            .expect("put");
    }
    let core_replication = cluster.nodes[0].replication.clone();
    let mut edge = Edge::new("edge", cluster.dir.path(), vec![core_replication]);
    edge.start();
    wait_converged(&cluster.nodes[0], &edge.node, "the edge has every key").await;
    (cluster, edge)
}

/// Runs the `regatta` binary; returns its exit code and standard output and error.
fn regatta(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(binary())
        .args(args)
        .output()
        .expect("run regatta");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

async fn has_exactly(node: &Node, expected: &[(Vec<u8>, Vec<u8>, i64, i64)]) -> bool {
    dump(node, "t")
        .await
        .map(|d| d == expected)
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_newest_segment_is_refused_and_the_node_is_reseeded_from_its_peers() {
    phase("three nodes; write 300 keys");
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_for_leader().await;
    create_table(&cluster.nodes[0], "t").await;
    for i in 0..300 {
        put(
            &cluster.nodes[0],
            "t",
            &format!("k{i:03}"),
            &format!("v{i}"),
        )
        .await
        .expect("put");
    }
    let expected = dump(cluster.node(leader), "t").await.expect("dump");
    assert_eq!(expected.len(), 300);
    let followers: Vec<u64> = [1, 2, 3].into_iter().filter(|&id| id != leader).collect();
    let (victim, torn) = (followers[0], followers[1]);
    for &id in &followers {
        let node = cluster.node(id);
        wait_until(&format!("node {id} has every key"), || {
            has_exactly(node, &expected)
        })
        .await;
    }

    // An interrupted append leaves a partial frame after the acknowledged ones (cutting into
    // an acknowledged frame is not a torn write: the leader refuses a follower whose log went
    // backwards).
    phase(&format!(
        "node {torn}: a real torn write, half a frame after the newest segment's end"
    ));
    assert_eq!(cluster.node(torn).terminate(), Some(0));
    let (first, path) = newest_segment(&cluster.node(torn).data_dir);
    let bytes = std::fs::read(&path).unwrap();
    let offsets = frame_offsets(&bytes, first.first_index());
    let last = *offsets.last().unwrap();
    let mut torn_image = bytes.clone();
    torn_image.extend_from_slice(&bytes[last..last + (bytes.len() - last) / 2]);
    std::fs::write(&path, &torn_image).unwrap();
    cluster.restart(torn);
    let node = cluster.node(torn);
    wait_until(&format!("node {torn} recovered and has every key"), || {
        has_exactly(node, &expected)
    })
    .await;
    let log = std::fs::read_to_string(node.log_path()).unwrap();
    assert!(
        log.contains("cutting torn tail"),
        "node {torn} cut its torn tail"
    );
    assert_eq!(
        std::fs::read(&path).unwrap()[..bytes.len()],
        bytes[..],
        "only the torn bytes were cut"
    );

    phase(&format!(
        "node {victim}: reseed is refused while the node runs"
    ));
    let dir = cluster.node(victim).data_dir.clone();
    let leader_api = cluster.node(leader).api.clone();
    let id = victim.to_string();
    let dir_arg = dir.display().to_string();
    // `regatta reseed` of the victim's directory, asking the member at `address`.
    let reseed = |address: &str, more: &[&str]| {
        let mut args = vec![
            "reseed",
            "--data-dir",
            &dir_arg,
            "--raft.node-id",
            &id,
            "--address",
            address,
        ];
        args.extend_from_slice(more);
        regatta(&args)
    };
    let (code, out) = reseed(&leader_api, &[]);
    assert_eq!(code, 5, "refused while running: {out}");
    assert!(out.contains("stop it first"), "{out}");

    phase(&format!(
        "stop node {victim}; flip a byte in the middle of its newest segment"
    ));
    assert_eq!(cluster.node(victim).terminate(), Some(0));
    let (first, path) = newest_segment(&dir);
    let mut bytes = std::fs::read(&path).unwrap();
    let offsets = frame_offsets(&bytes, first.first_index());
    let middle = bytes.len() / 2;
    let frame = offsets.iter().rposition(|&o| o <= middle).unwrap();
    assert!(
        frame + 1 < offsets.len(),
        "the middle is not in the last frame"
    );
    bytes[middle] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let name = path.file_name().unwrap().to_str().unwrap().to_string();

    phase("restart it: it refuses to start, naming file and offset, and cuts nothing");
    cluster.restart(victim);
    let code = cluster.node(victim).wait_for_exit().await;
    assert_eq!(code, Some(1), "a node with a corrupt log must not start");
    let log = std::fs::read_to_string(cluster.node(victim).log_path()).unwrap();
    let refusal = log
        .lines()
        .find(|l| l.contains("corrupted log data"))
        .unwrap_or_else(|| panic!("no corruption error in the node's log:\n{log}"));
    assert!(refusal.contains(&name), "names the file: {refusal}");
    assert!(
        refusal.contains(&format!("at byte {}", offsets[frame])),
        "names the bad frame's offset {}: {refusal}",
        offsets[frame]
    );
    assert!(!log.contains("cutting torn tail"), "nothing was cut");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "the segment is untouched"
    );

    phase("reseed is refused when no running member confirms another copy");
    let own_api = cluster.node(victim).api.clone();
    let (code, out) = reseed(&own_api, &["--timeout", "2s"]);
    assert_eq!(code, 5, "refused without a member to ask: {out}");
    assert!(out.contains("nothing was moved"), "{out}");
    assert!(path.exists(), "the data directory stays");

    phase("reseed through the leader: the directory is moved aside, not deleted");
    let (code, out) = reseed(&leader_api, &["--json"]);
    assert_eq!(code, 0, "reseed failed: {out}");
    let json = out
        .lines()
        .find(|l| l.starts_with('{'))
        .expect("a JSON line");
    let answer: serde_json::Value = serde_json::from_str(json).expect("JSON output");
    assert!(out.contains(&format!("removed node {victim}")), "{out}");
    let aside = PathBuf::from(answer["moved_to"].as_str().expect("moved_to"));
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        ["REJOIN"],
        "a fresh directory holding only the rejoin marker"
    );
    assert_eq!(
        std::fs::read(aside.join("log").join(&name)).unwrap(),
        bytes,
        "the damaged segment is kept, as it was"
    );

    let members = dump_members(&leader_api);
    assert!(
        !members.contains(&victim),
        "reseed removed node {victim}: {members:?}"
    );

    phase("restart it and add it back: it starts empty and serves every acknowledged key");
    cluster.restart(victim);
    let node = cluster.node(victim);
    wait_until(&format!("node {victim} waits to be added back"), || async {
        std::fs::read_to_string(node.log_path())
            .unwrap_or_default()
            .contains("waiting to be added back")
    })
    .await;
    let raft = node.raft.clone();
    let (code, out) = regatta(&[
        "cluster",
        "add-member",
        &id,
        &raft,
        "--address",
        &leader_api,
        "--timeout",
        "60s",
    ]);
    assert_eq!(code, 0, "add-member failed: {out}");
    wait_until(&format!("node {victim} has every key again"), || {
        has_exactly(node, &expected)
    })
    .await;
    let revision = put(cluster.node(leader), "t", "after-reseed", "v")
        .await
        .expect("write after reseed");
    assert!(revision > 0);
    let node = cluster.node(victim);
    wait_until(&format!("node {victim} applies new writes"), || async {
        get(node, "t", "after-reseed", false)
            .await
            .ok()
            .flatten()
            .is_some()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_with_a_damaged_log_refuses_to_start_and_is_reseeded_from_upstream() {
    phase("a one-node core with 200 keys and an edge that follows it");
    let (cluster, mut edge) = core_and_edge(200).await;

    phase("stop the edge; flip a byte in the middle of its newest segment");
    assert_eq!(edge.node.terminate(), Some(0));
    let dir = edge.node.data_dir.clone();
    let (first, path) = newest_segment(&dir);
    let mut bytes = std::fs::read(&path).unwrap();
    let offsets = frame_offsets(&bytes, first.first_index());
    let middle = offsets[0] + (bytes.len() - offsets[0]) / 2;
    let frame = offsets.iter().rposition(|&o| o <= middle).unwrap();
    assert!(
        frame + 1 < offsets.len(),
        "the middle is not in the last frame"
    );
    bytes[middle] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();

    phase("start it: it refuses, naming file and offset, and cuts nothing");
    edge.start();
    assert_eq!(edge.node.wait_for_exit().await, Some(1));
    let log = std::fs::read_to_string(edge.node.log_path()).unwrap();
    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(
        log.lines().any(|l| l.contains("corrupted log data")
            && l.contains(name)
            && l.contains(&format!("at byte {}", offsets[frame]))),
        "the refusal names the file and offset {}:\n{log}",
        offsets[frame]
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "the segment is untouched"
    );

    phase("reseed --edge, start it: it bootstraps from upstream and has every key");
    let (code, out) = regatta(&["reseed", "--edge", "--data-dir", &dir.display().to_string()]);
    assert_eq!(code, 0, "reseed failed: {out}");
    // The harness keeps the edge's output in its data directory.
    std::fs::create_dir_all(&dir).unwrap();
    edge.start();
    wait_converged(
        &cluster.nodes[0],
        &edge.node,
        "the re-seeded edge has every key",
    )
    .await;
}

/// The edge applies an entry before its fsync ends (replication/OVERVIEW.md, invariant 3): a
/// power loss can take the end of its log. Simulated by cutting the newest segment at a frame
/// boundary after a SIGKILL: the edge restarts at what is left, behind what it served, and
/// fetches the rest from its upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_that_lost_the_end_of_its_log_restarts_behind_and_catches_up() {
    phase("a one-node core with 120 keys and an edge that follows it");
    let (cluster, mut edge) = core_and_edge(120).await;
    let applied = edge
        .metric("regatta_edge_applied_index")
        .await
        .expect("the edge's applied index");

    phase("SIGKILL the edge; drop the last third of its newest segment's frames");
    edge.node.kill();
    let dir = edge.node.data_dir.clone();
    let (first, path) = newest_segment(&dir);
    let mut bytes = std::fs::read(&path).unwrap();
    let offsets = frame_offsets(&bytes, first.first_index());
    assert!(offsets.len() >= 3, "too few frames to cut: {offsets:?}");
    bytes.truncate(offsets[offsets.len() * 2 / 3]);
    std::fs::write(&path, &bytes).unwrap();
    let last_left = regatta_log::segment::scan(&bytes, first.first_index(), None)
        .last
        .expect("frames left")
        .index
        .get();

    phase("restart it: it starts behind what it served and catches up from its upstream");
    edge.start();
    let restored = format!("applied={last_left}");
    wait_until("the edge restored its local state", || async {
        std::fs::read_to_string(edge.node.log_path())
            .unwrap_or_default()
            .lines()
            .any(|l| {
                l.contains("local state restored") && l.split_whitespace().any(|w| w == restored)
            })
    })
    .await;
    assert!(
        (last_left as f64) < applied,
        "the cut left the edge behind what it had applied ({applied})"
    );
    wait_converged(
        &cluster.nodes[0],
        &edge.node,
        "the restarted edge has every key again",
    )
    .await;
    put(&cluster.nodes[0], "t", "after", "v")
        .await
        .expect("put after the restart");
    wait_converged(&cluster.nodes[0], &edge.node, "the edge follows new writes").await;
}

/// Member ids of the cluster, through the CLI.
fn dump_members(address: &str) -> Vec<u64> {
    let (code, out) = regatta(&["cluster", "members", "--address", address, "--json"]);
    assert_eq!(code, 0, "cluster members failed: {out}");
    let json = out
        .lines()
        .find(|l| l.starts_with('{'))
        .expect("a JSON line");
    let v: serde_json::Value = serde_json::from_str(json).expect("JSON output");
    v["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| {
            m["id"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("member id")
        })
        .collect()
}

#[test]
fn an_edge_directory_is_reseeded_without_a_peer_check_and_a_stray_one_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("edge-data");
    std::fs::create_dir_all(dir.join("log")).unwrap();
    std::fs::write(dir.join("log").join("marker"), b"kept").unwrap();
    let dir_arg = dir.display().to_string();

    phase("a directory without log/ is not a data directory");
    let stray = root.path().join("home");
    std::fs::create_dir_all(&stray).unwrap();
    let (code, out) = regatta(&[
        "reseed",
        "--edge",
        "--data-dir",
        &stray.display().to_string(),
    ]);
    assert_eq!(code, 5, "{out}");
    assert!(stray.exists());

    phase("a core directory needs the node id");
    let (code, out) = regatta(&["reseed", "--data-dir", &dir_arg]);
    assert_eq!(code, 2, "{out}");
    assert!(dir.exists());

    phase("an edge directory is moved aside");
    let (code, out) = regatta(&["reseed", "--edge", "--data-dir", &dir_arg]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("moved damaged data directory aside"), "{out}");
    assert!(!dir.exists());
    let moved: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("edge-data.damaged-"))
        })
        .collect();
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(
        std::fs::read(moved[0].join("log").join("marker")).unwrap(),
        b"kept"
    );
}
