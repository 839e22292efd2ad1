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
        ttl_millis: 0,
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
                ttl_millis: 0,
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

/// Whether something accepts connections at `url` (`http://host:port`).
fn listening(url: &str) -> bool {
    std::net::TcpStream::connect(url.trim_start_matches("http://")).is_ok()
}

/// The tables a node lists.
async fn listed_tables(node: &Node) -> Result<Vec<String>, tonic::Status> {
    Ok(node
        .tables()
        .await
        .list(regatta_proto::regatta::v1::ListTablesRequest {})
        .await?
        .into_inner()
        .tables
        .into_iter()
        .map(|t| t.name)
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_of_the_flags_are_created_and_deleted_once_the_node_leads() {
    phase("a single-node core with --tables.names=t1,t2 --tables.delete=gone");
    let mut cluster = Cluster::start_with(1, &["--tables.names=t1,t2", "--tables.delete=gone"]);
    cluster.wait_for_leader().await;
    let node = &cluster.nodes[0];
    wait_until("t1 and t2 are listed", || async {
        listed_tables(node)
            .await
            .is_ok_and(|t| t.contains(&"t1".to_string()) && t.contains(&"t2".to_string()))
    })
    .await;
    put(node, "t1", "k", "v").await.expect("a write to t1");
    let log = node.log_path();
    wait_until_blocking("the missing table to delete is logged", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("does not exist"))
    });

    phase("restarted with the same flags: the tables exist already, their data stays");
    assert_eq!(cluster.node(1).terminate(), Some(0));
    cluster.restart(1);
    wait_until_blocking("the existing tables are logged", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("exists already"))
    });
    let node = &cluster.nodes[0];
    wait_until("t1 keeps its data", || async {
        get(node, "t1", "k", false)
            .await
            .is_ok_and(|v| v.as_deref() == Some("v"))
    })
    .await;

    phase("an edge with --tables.enabled=false and --replication.enabled=false follows it");
    let mut edge = Edge::new("edge", cluster.dir.path(), vec![node.replication.clone()]);
    edge.node.args = vec![
        "--tables.enabled=false".into(),
        "--replication.enabled=false".into(),
    ];
    edge.start();
    wait_until("the edge serves t1", || async {
        get(&edge.node, "t1", "k", false)
            .await
            .is_ok_and(|v| v.as_deref() == Some("v"))
    })
    .await;
    let status = listed_tables(&edge.node)
        .await
        .expect_err("Tables is switched off on the edge");
    assert_eq!(status.code(), Code::Unimplemented, "{status}");
    assert!(
        !listening(&edge.node.replication),
        "the edge serves a log tail"
    );
    assert_eq!(edge.node.http_status("/readyz").await, Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_switched_off_are_not_served() {
    phase("a core with Tables, Maintenance and the log tail switched off, --tables.names=t");
    let cluster = Cluster::start_with(
        1,
        &[
            "--tables.enabled=false",
            "--maintenance.enabled=false",
            "--replication.enabled=false",
            "--tables.names=t",
        ],
    );
    cluster.wait_for_leader().await;
    let node = &cluster.nodes[0];

    phase("KV works on the table the flags created");
    wait_until("a put into t succeeds", || async {
        put(node, "t", "k", "v").await.is_ok()
    })
    .await;
    assert_eq!(
        get(node, "t", "k", false).await.expect("get").as_deref(),
        Some("v")
    );

    phase("Tables and Maintenance answer UNIMPLEMENTED; no log tail; ready");
    let status = listed_tables(node)
        .await
        .expect_err("Tables is switched off");
    assert_eq!(status.code(), Code::Unimplemented, "{status}");
    let mut maintenance =
        regatta_proto::maintenance::v1::maintenance_client::MaintenanceClient::new(
            node.channel().await,
        );
    let status = maintenance
        .reset(regatta_proto::maintenance::v1::ResetRequest {
            table: b"t".to_vec().into(),
            reset_all: false,
        })
        .await
        .expect_err("Maintenance is switched off");
    assert_eq!(status.code(), Code::Unimplemented, "{status}");
    assert!(!listening(&node.replication), "the core serves a log tail");
    assert_eq!(node.http_status("/readyz").await, Some(200));
}

#[test]
fn raft_flags_of_earlier_builds_and_unreachable_addresses_fail_start_up() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let node = Node::core(1, dir.path());
    let raft = node.raft.trim_start_matches("http://").to_string();
    let port = raft.rsplit(':').next().expect("port").to_string();
    let args = |extra: &[String]| {
        let mut args = vec![
            "core".to_string(),
            format!("--api.address={}", node.api),
            format!("--rest.address={}", node.rest),
            format!("--replication.address={}", node.replication),
            format!("--data-dir={}", node.data_dir.display()),
        ];
        args.extend_from_slice(extra);
        args
    };
    let twice = format!("1={raft},1=127.0.0.1:1");
    type Case<'a> = (&'a str, Vec<String>, Vec<(&'a str, &'a str)>, Vec<&'a str>);
    let cases: Vec<Case<'_>> = vec![
        (
            "--raft.advertise-address is gone",
            args(&[
                format!("--raft.address=http://0.0.0.0:{port}"),
                format!("--raft.advertise-address=http://{raft}"),
            ]),
            vec![],
            vec![
                "--raft.advertise-address is gone: use --raft.address (the address peers \
                 reach this node at) and --raft.listen-address (the address it binds)",
            ],
        ),
        (
            "a --raft.address peers cannot reach",
            args(&[format!("--raft.address=0.0.0.0:{port}")]),
            vec![],
            vec!["--raft.address", "0.0.0.0", "--raft.listen-address"],
        ),
        (
            "the environment's comma list of members, one id twice",
            args(&[format!("--raft.address={raft}")]),
            vec![("REGATTA_RAFT_INITIAL_MEMBERS", twice.as_str())],
            vec!["--raft.initial-members: node 1 is listed twice"],
        ),
        (
            "round trips and intervals together",
            args(&[
                "--raft.rtt=10ms".into(),
                "--raft.election-timeout=1s".into(),
            ]),
            vec![],
            vec!["--raft.rtt", "--raft.election-timeout"],
        ),
    ];
    for (what, args, env, expected) in cases {
        phase(what);
        let (code, text) = run_to_exit(&args, &env);
        eprintln!("{what}: exit {code}: {}", text.trim_end());
        assert_ne!(code, 0, "{what}: start-up succeeded");
        for part in expected {
            assert!(text.contains(part), "{what}: {part:?} not in: {text}");
        }
    }
}
