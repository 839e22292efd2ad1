//! End-to-end: requests that would cost more than a node has are refused while they are
//! evaluated, every core node stays up, and a log that already holds such a request
//! replays within the limits.
//!
//! The nodes run under an address-space limit (`prlimit --as`) that a node serving these
//! requests needs several times over without the limits: before them, one Txn of a put and
//! 5,000 range ops over 10,000 keys made every core node build a multi-gigabyte answer
//! while applying it, and the log kept them dead at every restart.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use regatta_proto::{
    mvcc::v1::{RequestOp, request_op},
    regatta::v1::{DeleteRangeRequest, RangeRequest, TxnRequest},
};
use tonic::Code;

/// The address space each node may use. A node holding 10 MB of data needs about 0.5 GiB
/// (mostly reserved, not resident); the Txn below asks for ~50 GB of answer.
const ADDRESS_SPACE: u64 = 2 << 30;

/// `prlimit --as=… --`, or `None` (and the reason printed) where it cannot be used.
fn memory_limited() -> Option<Vec<String>> {
    match Command::new("prlimit").arg("--version").output() {
        Ok(out) if out.status.success() => Some(vec![
            "prlimit".into(),
            format!("--as={ADDRESS_SPACE}"),
            "--".into(),
        ]),
        _ => {
            eprintln!("SKIPPED: prlimit (util-linux) is not available to limit the nodes' memory");
            None
        }
    }
}

fn put_op(key: String, value: &[u8]) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(request_op::Put {
            key: key.into_bytes().into(),
            value: value.to_vec().into(),
            prev_kv: false,
            ttl_millis: 0,
        })),
    }
}

fn range_op(key: &str, end: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(request_op::Range {
            key: key.as_bytes().to_vec().into(),
            range_end: end.as_bytes().to_vec().into(),
            ..Default::default()
        })),
    }
}

fn txn(table: &str, success: Vec<RequestOp>) -> TxnRequest {
    TxnRequest {
        table: table.as_bytes().to_vec().into(),
        compare: vec![],
        success,
        failure: vec![],
    }
}

/// The number of keys of `table` in `[key, end)` on `node`, from its own view.
async fn count(node: &Node, table: &str, key: &str, end: &str) -> i64 {
    let mut kv = node.kv().await;
    kv.range(RangeRequest {
        table: table.as_bytes().to_vec().into(),
        key: key.as_bytes().to_vec().into(),
        range_end: end.as_bytes().to_vec().into(),
        count_only: true,
        ..Default::default()
    })
    .await
    .expect("count")
    .into_inner()
    .count
}

/// A status that names the limit it hit.
fn assert_limit(status: &tonic::Status, what: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("limit") && status.message().contains(what),
        "the message names the limit: {}",
        status.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_the_limits_are_refused_and_every_core_node_stays_up() {
    let Some(run_under) = memory_limited() else {
        return;
    };
    phase("start three core nodes, each limited to 2 GiB of address space");
    let cluster = Cluster::start_under(3, &["--runtime.worker-threads=2"], &run_under);
    let leader = cluster.wait_for_leader().await;
    let entry = &cluster.nodes[(leader as usize) % 3];
    create_table(entry, "t").await;

    phase("write 10,000 keys of 1 KiB (10 MB)");
    let value = [b'v'; 1024];
    let mut kv = entry.kv().await;
    for batch in 0..10 {
        let puts = (0..1000)
            .map(|i| put_op(format!("k{:05}", batch * 1000 + i), &value))
            .collect();
        kv.txn(txn("t", puts)).await.expect("a txn of 1,000 puts");
    }

    phase(
        "a Txn of one put and 1,000 ranges over every key (10 GB of answer): refused at apply, nothing applied; 5,000 ops are refused on entry",
    );
    let mut bomb = vec![put_op("bomb".into(), b"applied")];
    bomb.extend(std::iter::repeat_n(range_op("k", "l"), 1000));
    let status = kv.txn(txn("t", bomb)).await.expect_err("over the limit");
    assert_limit(&status, "bytes");
    let mut bomb = vec![put_op("bomb".into(), b"applied")];
    bomb.extend(std::iter::repeat_n(range_op("k", "l"), 5000));
    let status = kv.txn(txn("t", bomb)).await.expect_err("too many ops");
    assert_limit(&status, "--api.max-txn-ops");

    phase("the same as a read: refused while it is evaluated");
    let reads = std::iter::repeat_n(range_op("k", "l"), 1000).collect();
    let status = kv.txn(txn("t", reads)).await.expect_err("over the limit");
    assert_limit(&status, "bytes");

    phase("DeleteRange with prev_kv over 5 MB: refused, nothing deleted; without: deleted");
    let delete = |prev_kv| DeleteRangeRequest {
        table: b"t".to_vec().into(),
        key: b"k".to_vec().into(),
        range_end: b"k05".to_vec().into(),
        prev_kv,
        count: false,
    };
    let status = kv.delete_range(delete(true)).await.expect_err("over");
    assert_limit(&status, "bytes");
    assert_eq!(count(entry, "t", "k", "l").await, 10_000);

    phase("every node is up, agrees, and takes writes");
    for node in &cluster.nodes {
        assert!(node.is_running(), "node {} is still running", node.id);
    }
    let revision = put(entry, "t", "after", "ok").await.expect("a write after");
    for node in &cluster.nodes {
        wait_until(
            &format!("node {} applied the write after", node.id),
            || async {
                get(node, "t", "after", false)
                    .await
                    .ok()
                    .flatten()
                    .as_deref()
                    == Some("ok")
            },
        )
        .await;
        assert_eq!(count(node, "t", "bomb", "").await, 0, "node {}", node.id);
        assert_eq!(count(node, "t", "k", "l").await, 10_000, "node {}", node.id);
    }
    assert!(revision > 0);
    let deleted = kv
        .delete_range(delete(false))
        .await
        .expect("a delete without prev_kv")
        .into_inner();
    assert_eq!(deleted.deleted, 5_000);
}

/// Copies the log fixture (written by the build before these limits: a table `bomb` of
/// 1,000 keys, a Txn of one put `bomb-put` and 5,000 range ops over all of them, then a put
/// of `after`) into `data_dir`.
fn install_fixture(data_dir: &Path) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/txn-bomb-log");
    let log = data_dir.join("log");
    std::fs::create_dir_all(&log).unwrap();
    for file in std::fs::read_dir(&fixture).unwrap() {
        let file = file.unwrap();
        std::fs::copy(file.path(), log.join(file.file_name())).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_that_holds_such_a_txn_replays_within_the_limits() {
    let Some(run_under) = memory_limited() else {
        return;
    };
    phase("a node starts on a log holding a Txn that answers 5,000 ranges");
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::core(1, dir.path());
    install_fixture(&node.data_dir);
    node.run_under = run_under;
    node.args = vec!["--runtime.worker-threads=2".into()];
    let members = format!("1={}", node.raft);
    node.start(&members);
    wait_until("the node replayed its log", || async {
        get(&node, "bomb", "after", false)
            .await
            .ok()
            .flatten()
            .is_some()
    })
    .await;

    phase("the Txn was rejected on replay: its put is absent, everything around it is there");
    assert!(node.is_running());
    assert_eq!(count(&node, "bomb", "bomb-put", "").await, 0);
    assert_eq!(count(&node, "bomb", "k", "l").await, 1000);
    assert_eq!(
        get(&node, "bomb", "after", false).await.unwrap().as_deref(),
        Some("the-bomb")
    );
}
