//! End-to-end: every bad input of the API contract gets its status code, and the node keeps
//! serving.

mod common;

use std::io::{Read, Write};

use common::*;
use regatta_proto::{
    mvcc::v1::{RequestOp, request_op},
    regatta::v1::{CreateTableRequest, DeleteTableRequest, PutRequest, RangeRequest, TxnRequest},
};
use tonic::Code;

fn put_req(table: &str, key: Vec<u8>, value: Vec<u8>) -> PutRequest {
    PutRequest {
        table: table.as_bytes().to_vec().into(),
        key: key.into(),
        value: value.into(),
        prev_kv: false,
    }
}

/// The status code of a call's outcome; an error must come with a message.
fn code<T>(r: Result<tonic::Response<T>, tonic::Status>) -> Code {
    match r {
        Ok(_) => Code::Ok,
        Err(s) => {
            assert!(
                !s.message().is_empty(),
                "status {:?} comes with a message",
                s.code()
            );
            s.code()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_their_status_codes_and_the_node_keeps_serving() {
    phase("start a single-node core with a table");
    let cluster = Cluster::start_with(1, &["--tables.token=s3cret"]);
    cluster.wait_for_leader().await;
    let node = &cluster.nodes[0];
    let mut tables = node.tables().await;
    let mut create = tonic::Request::new(CreateTableRequest {
        name: "t".into(),
        config: None,
    });
    create
        .metadata_mut()
        .insert("authorization", "Bearer s3cret".parse().expect("header"));
    tables.create(create).await.expect("create with the token");
    let mut kv = node.kv().await;
    kv.put(put_req("t", b"ok".to_vec(), b"1".to_vec()))
        .await
        .expect("a good put");

    phase("sizes: key over 1 KiB, value over 2 MiB, also inside a txn");
    assert_eq!(
        code(kv.put(put_req("t", vec![b'k'; 1025], b"v".to_vec())).await),
        Code::InvalidArgument
    );
    assert_eq!(
        code(kv.put(put_req("t", vec![b'k'; 1024], b"v".to_vec())).await),
        Code::Ok
    );
    assert_eq!(
        code(
            kv.put(put_req("t", b"k".to_vec(), vec![0; (2 << 20) + 1]))
                .await
        ),
        Code::InvalidArgument
    );
    let txn = TxnRequest {
        table: b"t".to_vec().into(),
        compare: vec![],
        success: vec![RequestOp {
            request: Some(request_op::Request::RequestPut(request_op::Put {
                key: vec![b'x'; 2000].into(),
                value: b"v".to_vec().into(),
                prev_kv: false,
            })),
        }],
        failure: vec![],
    };
    assert_eq!(code(kv.txn(txn).await), Code::InvalidArgument);

    phase("empty table or key, negative limit, keys_only with count_only");
    assert_eq!(
        code(kv.put(put_req("", b"k".to_vec(), b"v".to_vec())).await),
        Code::InvalidArgument
    );
    assert_eq!(
        code(kv.put(put_req("t", Vec::new(), b"v".to_vec())).await),
        Code::InvalidArgument
    );
    let range =
        |limit: i64, keys_only: bool, count_only: bool, table: &str, key: &[u8]| RangeRequest {
            table: table.as_bytes().to_vec().into(),
            key: key.to_vec().into(),
            limit,
            keys_only,
            count_only,
            ..Default::default()
        };
    assert_eq!(
        code(kv.range(range(-1, false, false, "t", b"k")).await),
        Code::InvalidArgument
    );
    assert_eq!(
        code(kv.range(range(0, true, true, "t", b"k")).await),
        Code::InvalidArgument
    );
    assert_eq!(
        code(kv.range(range(0, false, false, "", b"k")).await),
        Code::InvalidArgument
    );
    assert_eq!(
        code(kv.range(range(0, false, false, "t", b"")).await),
        Code::InvalidArgument
    );

    phase("unknown table");
    assert_eq!(
        code(kv.range(range(0, false, false, "nope", b"k")).await),
        Code::NotFound
    );
    assert_eq!(
        code(kv.put(put_req("nope", b"k".to_vec(), b"v".to_vec())).await),
        Code::NotFound
    );

    phase("tables: duplicate create, missing delete, missing token");
    let mut dup = tonic::Request::new(CreateTableRequest {
        name: "t".into(),
        config: None,
    });
    dup.metadata_mut()
        .insert("authorization", "Bearer s3cret".parse().expect("header"));
    assert_eq!(code(tables.create(dup).await), Code::AlreadyExists);
    let mut missing = tonic::Request::new(DeleteTableRequest {
        name: "nope".into(),
    });
    missing
        .metadata_mut()
        .insert("authorization", "Bearer s3cret".parse().expect("header"));
    assert_eq!(code(tables.delete(missing).await), Code::NotFound);
    assert_eq!(
        code(
            tables
                .create(CreateTableRequest {
                    name: "u".into(),
                    config: None
                })
                .await
        ),
        Code::Unauthenticated
    );

    phase("a 5 MB message is refused");
    let status = kv
        .put(put_req("t", b"big".to_vec(), vec![0; 5_000_000]))
        .await
        .expect_err("5 MB refused");
    assert!(
        matches!(
            status.code(),
            Code::ResourceExhausted | Code::OutOfRange | Code::InvalidArgument
        ),
        "5 MB message answered {status:?}"
    );

    phase("garbage bytes on the gRPC port");
    let addr = node.api.trim_start_matches("http://").to_string();
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .expect("timeout");
        let junk: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        let _ = stream.write_all(&junk);
        let mut buf = [0u8; 1024];
        let _ = stream.read(&mut buf);
    })
    .await
    .expect("garbage sender");

    phase("gzip and zstd compressed requests are accepted; reflection is served");
    for encoding in [
        tonic::codec::CompressionEncoding::Gzip,
        tonic::codec::CompressionEncoding::Zstd,
    ] {
        let mut compressed = node.kv().await.send_compressed(encoding);
        compressed
            .put(put_req("t", b"zipped".to_vec(), vec![b'z'; 10_000]))
            .await
            .expect("compressed put");
    }
    let mut reflection =
        tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(
            node.channel().await,
        );
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            ),
        ),
    };
    let mut answers = reflection
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let answer = answers
        .message()
        .await
        .expect("answer")
        .expect("one answer");
    let listed = format!("{:?}", answer.message_response);
    for service in [
        "regatta.v1.KV",
        "regatta.v1.Tables",
        "regatta.v1.Cluster",
        "maintenance.v1.Maintenance",
    ] {
        assert!(
            listed.contains(service),
            "reflection lists {service}: {listed}"
        );
    }

    phase("the node still serves reads and writes");
    let mut kv = node.kv().await;
    kv.put(put_req("t", b"after".to_vec(), b"2".to_vec()))
        .await
        .expect("put after bad input");
    assert_eq!(
        get(node, "t", "after", false)
            .await
            .expect("get")
            .as_deref(),
        Some("2")
    );
    assert_eq!(node.http_status("/healthz").await, Some(200));
    assert_eq!(node.http_status("/readyz").await, Some(200));
    let metrics = node.http_body("/metrics").await.expect("metrics");
    assert!(
        metrics.contains(
            "regatta_grpc_requests_total{code=\"InvalidArgument\",method=\"/regatta.v1.KV/Put\"}"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("regatta_raft_term"),
        "raft metrics exported"
    );
    let fsyncs: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("regatta_log_fsync_seconds_count "))
        .and_then(|v| v.trim().parse().ok())
        .expect("fsync latency histogram exported");
    assert!(fsyncs > 0, "acknowledged writes were fsync'd: {metrics}");
}
