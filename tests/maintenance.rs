//! End-to-end: Maintenance over gRPC — backup and restore in Regatta's stream format, and
//! resetting an edge.

mod common;

use common::*;
use regatta_proto::maintenance::v1::{
    BackupRequest, ResetRequest, RestoreInfo, RestoreMessage,
    maintenance_client::MaintenanceClient, restore_message,
};
use regatta_proto::replication::v1::SnapshotChunk;

async fn backup(node: &Node, table: &str) -> Result<Vec<u8>, tonic::Status> {
    let mut client = MaintenanceClient::new(node.channel().await);
    let mut stream = client
        .backup(BackupRequest {
            table: table.as_bytes().to_vec().into(),
        })
        .await?
        .into_inner();
    let mut out = Vec::new();
    while let Some(chunk) = stream.message().await? {
        assert_eq!(chunk.len, chunk.data.len() as u64);
        out.extend_from_slice(&chunk.data);
    }
    Ok(out)
}

async fn restore(node: &Node, table: &str, data: Vec<u8>) -> Result<(), tonic::Status> {
    let mut client = MaintenanceClient::new(node.channel().await);
    let mut messages = vec![RestoreMessage {
        data: Some(restore_message::Data::Info(RestoreInfo {
            table: table.as_bytes().to_vec().into(),
        })),
    }];
    for piece in data.chunks(1000) {
        messages.push(RestoreMessage {
            data: Some(restore_message::Data::Chunk(SnapshotChunk {
                data: piece.to_vec().into(),
                len: piece.len() as u64,
                index: 0,
            })),
        });
    }
    client
        .restore(futures::stream::iter(messages))
        .await
        .map(|_| ())
}

fn pairs(dump: Vec<(Vec<u8>, Vec<u8>, i64, i64)>) -> Vec<(Vec<u8>, Vec<u8>)> {
    dump.into_iter().map(|(k, v, _, _)| (k, v)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restores_into_another_table_and_a_damaged_one_is_refused() {
    phase("a core with a table of 300 keys");
    let cluster = Cluster::start(1);
    cluster.wait_for_leader().await;
    let node = &cluster.nodes[0];
    create_table(node, "src").await;
    for i in 0..300 {
        put(node, "src", &format!("key-{i:04}"), &"v".repeat(i % 50 + 1))
            .await
            .expect("put");
    }

    phase("back it up over gRPC, restore it as another table");
    let data = backup(node, "src").await.expect("backup");
    assert!(!data.is_empty());
    restore(node, "copy", data.clone()).await.expect("restore");
    let original = pairs(dump(node, "src").await.expect("dump src"));
    assert_eq!(
        pairs(dump(node, "copy").await.expect("dump copy")),
        original
    );
    restore(node, "src", data.clone())
        .await
        .expect("restore onto the source table");
    let again = backup(node, "src").await.expect("backup after restore");
    assert!(
        again == data,
        "backup → restore → backup is bit-exact ({} vs {} bytes)",
        again.len(),
        data.len()
    );

    phase("restoring over an existing table replaces its content");
    put(node, "copy", "extra", "gone after restore")
        .await
        .expect("put");
    restore(node, "copy", data.clone())
        .await
        .expect("restore again");
    assert_eq!(pairs(dump(node, "copy").await.expect("dump")), original);

    phase("a damaged stream is refused and changes nothing");
    let mut damaged = data.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x40;
    let status = restore(node, "copy", damaged)
        .await
        .expect_err("damaged stream refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert_eq!(pairs(dump(node, "copy").await.expect("dump")), original);
    let status = backup(node, "missing").await.expect_err("no such table");
    assert_eq!(status.code(), tonic::Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_rebootstraps_an_edge_and_is_refused_by_the_core() {
    phase("a core and an edge");
    let cluster = Cluster::start(1);
    cluster.wait_for_leader().await;
    let core = &cluster.nodes[0];
    create_table(core, "t").await;
    for i in 0..50 {
        put(core, "t", &format!("k{i}"), "v").await.expect("put");
    }
    let mut edge = Edge::new("edge", cluster.dir.path(), vec![core.replication.clone()]);
    edge.start();
    wait_converged(core, &edge.node, "the edge caught up").await;

    phase("Reset on the edge bootstraps it again; it still serves the core's state");
    let mut client = MaintenanceClient::new(edge.node.channel().await);
    client
        .reset(ResetRequest {
            table: b"t".to_vec().into(),
            reset_all: false,
        })
        .await
        .expect("reset one table");
    client
        .reset(ResetRequest {
            table: Default::default(),
            reset_all: true,
        })
        .await
        .expect("reset all");
    assert_eq!(
        edge.metric("regatta_edge_bootstraps_total").await,
        Some(2.0)
    );
    let log = std::fs::read_to_string(edge.node.log_path()).unwrap_or_default();
    let progress = log
        .lines()
        .find(|l| l.contains("bootstrap: fetching the upstream's snapshot"))
        .unwrap_or_else(|| panic!("no progress line for the upstream's snapshot:\n{log}"));
    assert!(
        progress.contains("total=") && progress.contains("done="),
        "the upstream announces the snapshot's size, so progress has a total: {progress}"
    );
    put(core, "t", "after-reset", "v").await.expect("put");
    wait_converged(core, &edge.node, "the edge follows after the reset").await;

    phase("the core refuses Reset");
    let mut client = MaintenanceClient::new(core.channel().await);
    let status = client
        .reset(ResetRequest {
            table: Default::default(),
            reset_all: true,
        })
        .await
        .expect_err("core");
    assert_eq!(status.code(), tonic::Code::Unimplemented);
}
