//! End-to-end: a node configured the way Kubernetes manifests written for Regatta configure
//! it, through environment variables named by the upper-cased option keys (`API.ADDRESS`,
//! `RAFT.NODE-ID`, `RAFT.INITIAL-MEMBERS`), started as a real process. The precedence
//! (`REGATTA_*` over those names, those names over the config file) is checked on the same
//! node; every combination is in the unit tests of `src/config.rs`.

mod common;

use std::process::{Child, Command, Stdio};

use common::*;

/// A `regatta` process started by this test, killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn listening(url: &str) -> bool {
    std::net::TcpStream::connect(url.trim_start_matches("http://")).is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_core_node_reads_regattas_environment_variable_names() {
    let root = tempfile::tempdir().expect("tempdir");
    let home = root.path().join("home");
    std::fs::create_dir_all(&home).expect("mkdir");
    let node = Node::core(1, root.path());
    let file_api = format!("http://127.0.0.1:{}", free_port());
    let file_rest = format!("http://127.0.0.1:{}", free_port());
    let shadowed_rest = format!("http://127.0.0.1:{}", free_port());
    let config = root.path().join("config.yaml");
    std::fs::write(
        &config,
        format!("api.address: {file_api}\nrest:\n  address: {file_rest}\nraft.node-id: 9\n"),
    )
    .expect("write config");

    phase("start `regatta core` with only a config file and Regatta-style variables");
    let log = std::fs::File::create(root.path().join("node.log")).expect("log file");
    let mut cmd = Command::new(binary());
    cmd.arg("core")
        .arg("--config")
        .arg(&config)
        .env("HOME", &home)
        .env("RUST_LOG", "info,openraft=warn")
        .env("RAFT.NODE-ID", "1")
        .env("RAFT.ADDRESS", &node.raft)
        .env("RAFT.INITIAL-MEMBERS", format!("1={}", node.raft))
        .env("API.ADDRESS", &node.api)
        .env("REPLICATION.ADDRESS", &node.replication)
        .env("DATA-DIR", &node.data_dir)
        // REGATTA_* wins over the Regatta-style name; an empty one counts as unset.
        .env("REGATTA_REST_ADDRESS", &node.rest)
        .env("REST.ADDRESS", &shadowed_rest)
        .env("LOG.LEVEL", "")
        .current_dir(root.path())
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log);
    let _process = Process(cmd.spawn().expect("start regatta"));
    wait_until(
        "the node is ready where REGATTA_REST_ADDRESS says",
        || async { node.http_status("/readyz").await == Some(200) },
    )
    .await;

    phase("the API answers where API.ADDRESS says, as node 1 (RAFT.NODE-ID, not the file's 9)");
    create_table(&node, "env").await;
    put(&node, "env", "k", "v").await.expect("put");
    let status = node
        .cluster()
        .await
        .status(regatta_proto::regatta::v1::StatusRequest { config: false })
        .await
        .expect("status")
        .into_inner();
    assert_eq!(status.id, "1", "{status:?}");
    assert!(!listening(&file_api), "not where the config file says");
    assert!(
        !listening(&shadowed_rest) && !listening(&file_rest),
        "REST.ADDRESS and the file's rest.address lose to REGATTA_REST_ADDRESS"
    );
    assert!(
        std::fs::read_dir(&node.data_dir).is_ok_and(|mut d| d.next().is_some()),
        "the data directory is DATA-DIR's"
    );
}
