//! End-to-end: connection and stream limits of a real node's gRPC listeners
//! (docs/operations.md, "Limits"). Timeouts are set short by flags; the tests wait on the
//! node's metrics and on sockets closing, never on bare sleeps.

#![allow(clippy::unwrap_used)]

mod common;

use std::{
    io::{ErrorKind, Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use common::*;
use regatta_proto::{
    mvcc::v1::{RequestOp, request_op},
    regatta::v1::{RangeRequest, TxnRequest},
};
use tonic::transport::Channel;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame.
const SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];

/// A single-node core started with `args`, its leader elected and table `t` created.
async fn node_with(args: &[&str]) -> Cluster {
    let cluster = Cluster::start_with(1, args);
    cluster.wait_for_leader().await;
    create_table(&cluster.nodes[0], "t").await;
    cluster
}

/// The value of metric series `series` (name and labels, as `/metrics` prints them).
async fn metric(node: &Node, series: &str) -> f64 {
    let body = node.http_body("/metrics").await.unwrap_or_default();
    body.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|v| v.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

fn addr(url: &str) -> String {
    url.trim_start_matches("http://").to_string()
}

/// A connection that gets answers: one channel, connected now.
async fn client(node: &Node) -> Channel {
    Channel::from_shared(node.api.clone())
        .unwrap()
        .connect()
        .await
        .expect("connect")
}

async fn get_ok(channel: &Channel, key: &str) {
    let mut kv = regatta_proto::regatta::v1::kv_client::KvClient::new(channel.clone());
    kv.range(RangeRequest {
        table: b"t".to_vec().into(),
        key: key.as_bytes().to_vec().into(),
        ..Default::default()
    })
    .await
    .expect("a well-behaved client gets its answer");
}

/// Whether the server has closed `stream` (end of file or reset); waits at most `wait`.
fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // frames from the server: not closed yet
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// Waits until the server closes `stream`; fails after [`WAIT`].
async fn wait_closed(mut stream: TcpStream, what: &str) {
    let what = what.to_string();
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + WAIT;
        while !closed_within(&mut stream, Duration::from_millis(200)) {
            assert!(
                Instant::now() < deadline,
                "{what}: still open after {WAIT:?}"
            );
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_closed_at_once_and_counted() {
    phase("a node holding at most 4 API connections, one well-behaved client connected");
    let cluster = node_with(&["--api.max-concurrent-connections=4"]).await;
    let node = &cluster.nodes[0];
    let good = client(node).await;
    get_ok(&good, "k").await;
    wait_until("only the well-behaved client is connected", || async {
        metric(node, "regatta_grpc_connections_open{listener=\"api\"}").await == 1.0
    })
    .await;

    phase("10 more connections: 3 fit, 7 are closed on arrival");
    let mut held: Vec<TcpStream> = (0..10)
        .map(|_| TcpStream::connect(addr(&node.api)).expect("tcp connect"))
        .collect();
    wait_until("7 refusals counted", || async {
        metric(
            node,
            "regatta_grpc_connections_refused_total{listener=\"api\"}",
        )
        .await
            >= 7.0
    })
    .await;
    let (closed, open): (Vec<_>, Vec<_>) = held
        .drain(..)
        .map(|mut s| (closed_within(&mut s, Duration::from_millis(300)), s))
        .partition(|(c, _)| *c);
    assert_eq!(
        closed.len(),
        7,
        "the connections over the limit were closed"
    );
    assert_eq!(open.len(), 3, "the connections under the limit stay");
    assert_eq!(
        metric(
            node,
            "regatta_grpc_connections_refused_total{listener=\"api\"}"
        )
        .await,
        7.0
    );

    phase("the client inside the limit is still answered; freed places take new clients");
    get_ok(&good, "k").await;
    drop(open);
    wait_until("the freed places are back", || async {
        metric(node, "regatta_grpc_connections_open{listener=\"api\"}").await == 1.0
    })
    .await;
    get_ok(&client(node).await, "k").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_trickling_connections_are_closed_after_the_handshake_timeout() {
    phase("a node with a 2s handshake timeout and a well-behaved client");
    let cluster = node_with(&["--api.handshake-timeout=2s"]).await;
    let node = &cluster.nodes[0];
    let good = client(node).await;
    get_ok(&good, "k").await;

    phase("one connection sends nothing, another trickles the preface a byte at a time");
    let started = Instant::now();
    let silent = TcpStream::connect(addr(&node.api)).unwrap();
    let mut trickle = TcpStream::connect(addr(&node.api)).unwrap();
    let trickler = trickle.try_clone().unwrap();
    let trickling = tokio::task::spawn_blocking(move || {
        for b in PREFACE.iter().chain(SETTINGS) {
            // A byte, then a quarter of a second of watching for the server's close: the
            // attack's pace.
            if trickle.write_all(&[*b]).is_err()
                || closed_within(&mut trickle, Duration::from_millis(250))
            {
                return true; // closed by the server
            }
        }
        false
    });
    wait_closed(silent, "the silent connection").await;
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "closed before its handshake timeout"
    );
    wait_closed(trickler, "the trickling connection").await;
    assert!(
        trickling.await.unwrap(),
        "the trickler could not finish its handshake"
    );
    assert!(
        metric(
            node,
            "regatta_grpc_connections_timed_out_total{listener=\"api\",reason=\"handshake\"}"
        )
        .await
            >= 2.0
    );

    phase("the well-behaved connection, older than the timeout, is still served");
    get_ok(&good, "k").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_advertises_its_stream_limit_and_drops_peers_that_do_not_answer_pings() {
    phase("a node with 16 streams per connection and 1s keepalive pings");
    let cluster = node_with(&[
        "--api.max-concurrent-streams=16",
        "--api.keepalive-interval=1s",
        "--api.keepalive-timeout=1s",
        "--api.idle-timeout=0s",
    ])
    .await;
    let node = &cluster.nodes[0];

    phase("a raw HTTP/2 handshake: the server's SETTINGS carry MAX_CONCURRENT_STREAMS=16");
    let mut raw = TcpStream::connect(addr(&node.api)).unwrap();
    raw.write_all(PREFACE).unwrap();
    raw.write_all(SETTINGS).unwrap();
    let frames = tokio::task::spawn_blocking(move || {
        raw.set_read_timeout(Some(WAIT)).unwrap();
        let mut frames = Vec::new();
        let mut head = [0u8; 9];
        // Read frames, never answering a PING, until the server hangs up.
        while raw.read_exact(&mut head).is_ok() {
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let mut payload = vec![0u8; len];
            if raw.read_exact(&mut payload).is_err() {
                break;
            }
            frames.push((head[3], head[4], payload));
        }
        frames
    })
    .await
    .unwrap();
    let (kind, _, settings) = frames.first().expect("the server's first frame");
    assert_eq!(*kind, 4, "the first frame is SETTINGS");
    let limit = settings.chunks(6).find_map(|s| {
        (u16::from_be_bytes([s[0], s[1]]) == 3)
            .then(|| u32::from_be_bytes([s[2], s[3], s[4], s[5]]))
    });
    assert_eq!(limit, Some(16), "MAX_CONCURRENT_STREAMS in {settings:?}");

    phase("the peer that never answered a PING was dropped");
    assert!(
        frames
            .iter()
            .any(|(kind, flags, _)| *kind == 6 && flags & 1 == 0),
        "the server pinged: {:?}",
        frames.iter().map(|f| f.0).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_and_busy_ones_are_not() {
    phase("a node with a 1s idle timeout; a client makes one call");
    let cluster = node_with(&["--api.idle-timeout=1s"]).await;
    let node = &cluster.nodes[0];
    let idle = client(node).await;
    get_ok(&idle, "k").await;

    phase("a second client keeps calling; the first goes quiet and is closed");
    let busy = client(node).await;
    wait_until(
        "the quiet connection is closed while the busy one calls",
        || async {
            get_ok(&busy, "k").await;
            metric(
                node,
                "regatta_grpc_connections_timed_out_total{listener=\"api\",reason=\"idle\"}",
            )
            .await
                >= 1.0
        },
    )
    .await;
    assert_eq!(
        metric(node, "regatta_grpc_connections_open{listener=\"api\"}").await,
        1.0,
        "the busy client's connection stays open"
    );
    phase("a closed client connects again on its next call");
    get_ok(&idle, "k").await;
}

/// A range over every key of table `t`.
fn whole_table() -> RangeRequest {
    RangeRequest {
        table: b"t".to_vec().into(),
        key: vec![0].into(),
        range_end: vec![0].into(),
        ..Default::default()
    }
}

/// Writes `n` keys of `value` bytes in transactions of 200 puts.
async fn load(node: &Node, n: usize, value: usize) {
    let mut kv = node.kv().await;
    for batch in 0..n.div_ceil(200) {
        let success = (batch * 200..n.min(batch * 200 + 200))
            .map(|i| RequestOp {
                request: Some(request_op::Request::RequestPut(request_op::Put {
                    key: format!("key-{i:08}").into_bytes().into(),
                    value: vec![b'v'; value].into(),
                    prev_kv: false,
                    ttl_millis: 0,
                })),
            })
            .collect();
        kv.txn(TxnRequest {
            table: b"t".to_vec().into(),
            compare: vec![],
            success,
            failure: vec![],
        })
        .await
        .expect("txn of puts");
    }
}

/// Resident memory of the process serving `node`, in bytes (from /proc).
fn rss(node: &Node) -> u64 {
    let needle = format!("--data-dir={}", node.data_dir.display());
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let matches = cmdline
            .split(|b| *b == 0)
            .any(|arg| arg == needle.as_bytes());
        if !matches {
            continue;
        }
        let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
        if let Some(kb) = status.lines().find_map(|l| {
            l.strip_prefix("VmRSS:")
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        }) {
            return kb * 1024;
        }
    }
    panic!("no process serves {}", node.data_dir.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iterate_range_streams_nobody_reads_stay_small_are_cancelled_and_are_limited() {
    const STREAMS: usize = 48;
    phase("a node holding 20,000 keys of 1 KiB, at most 48 IterateRange streams, 3s stall timeout");
    let cluster = node_with(&[
        "--api.max-iterate-streams=48",
        "--api.stream-stall-timeout=3s",
    ])
    .await;
    let node = &cluster.nodes[0];
    load(node, 20_000, 1024).await;
    let good = client(node).await;
    get_ok(&good, "key-00000001").await;
    let before = rss(node);

    phase("48 IterateRange streams over 9 connections, none of them read");
    let mut stalled = Vec::new();
    for i in 0..STREAMS {
        // The first stream has a connection of its own: it is read later, and streams
        // sharing a connection also share its flow-control window, which the others fill.
        let channel = if i <= 1 || i % 6 == 1 {
            client(node).await
        } else {
            stalled
                .last()
                .map(|(c, _): &(Channel, _)| c.clone())
                .unwrap()
        };
        let mut kv = regatta_proto::regatta::v1::kv_client::KvClient::new(channel.clone());
        let stream = kv
            .iterate_range(whole_table())
            .await
            .expect("a stream within the limit");
        stalled.push((channel, stream));
    }

    phase("one more is refused, naming the limit");
    let mut kv = regatta_proto::regatta::v1::kv_client::KvClient::new(good.clone());
    let refused = kv
        .iterate_range(whole_table())
        .await
        .expect_err("over the limit");
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    assert!(refused.message().contains("48"), "{refused:?}");

    phase("every stalled stream is cancelled after the stall timeout; memory stays small");
    wait_until("48 streams cancelled", || async {
        metric(node, "regatta_iterate_range_streams_stalled_total").await >= STREAMS as f64
    })
    .await;
    let grown = rss(node).saturating_sub(before);
    eprintln!(
        "RSS grew by {} KiB with {STREAMS} stalled streams",
        grown / 1024
    );
    // 4 MiB chunks pinned ~4.2 MiB per stream (~200 MiB here); 256 KiB chunks, a few each.
    assert!(grown < 64 << 20, "RSS grew by {grown} bytes");
    get_ok(&good, "key-00000002").await;

    phase("a stalled stream, read at last, ends with DeadlineExceeded naming the timeout");
    let (_, mut stream) = stalled.remove(0);
    let mut keys = 0;
    let status = loop {
        match stream.get_mut().message().await {
            Ok(Some(chunk)) => keys += chunk.kvs.len(),
            Ok(None) => panic!("the stream ended without its error after {keys} keys"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
    assert!(status.message().contains("stall-timeout"), "{status:?}");
    assert!(keys < 20_000, "the stream was cut");

    phase("once the stalled clients go, a reader gets every key");
    drop(stalled);
    drop(stream);
    wait_until("the stream places are free", || async {
        metric(node, "regatta_iterate_range_streams_open").await == 0.0
    })
    .await;
    let mut stream = kv
        .iterate_range(whole_table())
        .await
        .expect("a stream")
        .into_inner();
    let mut keys = 0;
    while let Some(chunk) = stream.message().await.expect("chunk") {
        keys += chunk.kvs.len();
    }
    assert_eq!(keys, 20_000);
}

/// A client that stopped reading keeps its connection open for as long as it likes; a node
/// told to stop waits for such connections only for its grace period, then exits cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_node_does_not_wait_for_a_client_that_stopped_reading() {
    phase("a node holding 20,000 keys of 1 KiB, and an IterateRange stream nobody reads");
    let mut cluster = node_with(&[]).await;
    load(&cluster.nodes[0], 20_000, 1024).await;
    let channel = client(&cluster.nodes[0]).await;
    let mut kv = regatta_proto::regatta::v1::kv_client::KvClient::new(channel.clone());
    let stalled = kv.iterate_range(whole_table()).await.expect("a stream");

    phase("SIGTERM: the node exits cleanly within its grace period and Raft's shutdown");
    let node = cluster.node(1);
    let asked = std::time::Instant::now();
    assert_eq!(node.terminate(), Some(0), "a clean exit");
    eprintln!("exited {:?} after SIGTERM", asked.elapsed());
    let log = std::fs::read_to_string(node.log_path()).unwrap();
    assert!(
        log.contains("connections still open after the grace period"),
        "the node says why it stopped waiting"
    );
    drop(stalled);
}
