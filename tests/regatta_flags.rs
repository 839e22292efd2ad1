//! End-to-end: Regatta's command lines start nodes here. Flags without a meaning in this
//! build are accepted with one warning line each; Regatta's follower flags start an edge;
//! `--raft.node-host-dir` without `--data-dir` holds the node's data.

mod common;

use std::{
    path::Path,
    process::{Child, Command, Stdio},
};

use common::*;

/// The warning lines of `log` about `flag`: tracing's text format writes the field as
/// `flag="--name"`.
fn warnings_about(log: &str, flag: &str) -> usize {
    let field = format!("flag={flag:?}");
    log.lines()
        .filter(|l| l.contains("WARN") && l.contains("Regatta flag") && l.contains(&field))
        .count()
}

fn read_log(node: &Node) -> String {
    std::fs::read_to_string(node.log_path()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_core_with_regattas_ignored_flags_starts_and_warns_once_per_flag() {
    phase("a core started with Regatta flags this build ignores");
    let flags = [
        ("--memberlist.members", "--memberlist.members=a:1,b:2"),
        ("--storage.block-cache-size", "--storage.block-cache-size=1"),
        ("--raft.wal-dir", "--raft.wal-dir=/x"),
        ("--api.reflection-api", "--api.reflection-api"),
        // A boolean given as false is given: it warns too (a Regatta operator who set it
        // learns it means nothing here).
        ("--experimental.tanlogdb", "--experimental.tanlogdb=false"),
    ];
    let args: Vec<&str> = flags.iter().map(|(_, arg)| *arg).collect();
    let cluster = Cluster::start_with(1, &args);
    cluster.wait_for_leader().await;

    phase("it serves a write");
    let core = &cluster.nodes[0];
    create_table(core, "regatta").await;
    put(core, "regatta", "k", "v").await.expect("put");
    assert_eq!(
        get(core, "regatta", "k", false)
            .await
            .expect("get")
            .as_deref(),
        Some("v")
    );

    phase("its log has exactly one warning per flag given, and no other Regatta warning");
    let log = read_log(core);
    for (flag, _) in flags {
        assert_eq!(warnings_about(&log, flag), 1, "{flag} in:\n{log}");
    }
    let all = log.lines().filter(|l| l.contains("Regatta flag")).count();
    assert_eq!(all, flags.len(), "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains("flag=\"--experimental.tanlogdb\"") && l.contains("value=false")),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_started_with_regatta_follower_flags_follows_the_core() {
    phase("a core, and a write on it");
    let cluster = Cluster::start(1);
    cluster.wait_for_leader().await;
    let core = &cluster.nodes[0];
    create_table(core, "follower").await;
    put(core, "follower", "k", "v").await.expect("put");

    phase("an edge given Regatta's follower command line: a bare leader address");
    let bare = core
        .replication
        .strip_prefix("http://")
        .expect("an http:// URL")
        .to_string();
    let mut edge = Edge::new("edge", cluster.dir.path(), vec![bare]);
    edge.node.args = [
        "--raft.address=127.0.0.1:5012",
        "--raft.node-id=3",
        "--replication.poll-interval=1s",
        "--memberlist.address=0.0.0.0:7432",
    ]
    .map(String::from)
    .to_vec();
    edge.start();

    phase("it serves the core's write");
    wait_until("the edge serves the core's write", || async {
        get(&edge.node, "follower", "k", false)
            .await
            .ok()
            .flatten()
            .as_deref()
            == Some("v")
    })
    .await;
    let log = read_log(&edge.node);
    for flag in [
        "--raft.address",
        "--replication.poll-interval",
        "--memberlist.address",
    ] {
        assert_eq!(warnings_about(&log, flag), 1, "{flag} in:\n{log}");
    }
    assert_eq!(warnings_about(&log, "--raft.node-id"), 0, "{log}");
    assert!(
        log.contains("not a Raft member"),
        "the --raft.address warning says why: {log}"
    );
}

/// A child process killed when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_host_dir_without_data_dir_holds_the_nodes_data() {
    phase("a core given --raft.node-host-dir and no --data-dir");
    let root = tempfile::tempdir().expect("a temporary directory");
    let host_dir = root.path().join("node-host");
    let cwd = root.path().join("cwd");
    std::fs::create_dir_all(&cwd).expect("the working directory");
    // The harness's node: its addresses and clients; the process is started here.
    let node = Node::core(1, root.path());
    let log = std::fs::File::create(root.path().join("node.log")).expect("the log file");
    let child = Command::new(binary())
        .arg("core")
        .arg("--raft.node-id=1")
        .arg(format!("--raft.address={}", node.raft))
        .arg(format!("--raft.initial-members=1={}", node.raft))
        .arg(format!("--api.address={}", node.api))
        .arg(format!("--rest.address={}", node.rest))
        .arg(format!("--replication.address={}", node.replication))
        .arg(format!("--raft.node-host-dir={}", host_dir.display()))
        .current_dir(&cwd)
        .env_remove("REGATTA_DATA_DIR")
        .env("RUST_LOG", "info,openraft=warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("the log file"))
        .stderr(log)
        .spawn()
        .expect("start regatta");
    let _running = Running(child);

    phase("it serves a write");
    wait_until("the node leads", || async {
        leader_of(&node).await == Some(1)
    })
    .await;
    create_table(&node, "dirs").await;
    put(&node, "dirs", "k", "v").await.expect("put");

    phase("its data is in the node-host dir, not in the default ./regatta-data");
    let files = count_files(&host_dir);
    assert!(files > 0, "no files under {}", host_dir.display());
    assert!(
        !cwd.join("regatta-data").exists(),
        "the default data directory was used"
    );
    let text = std::fs::read_to_string(root.path().join("node.log")).expect("the log");
    assert_eq!(warnings_about(&text, "--raft.node-host-dir"), 1, "{text}");
    assert!(text.contains("used as the data directory"), "{text}");
}

fn count_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() { count_files(&path) } else { 1 }
        })
        .sum()
}
