//! End-to-end: requests compressed with snappy, as Regatta's Go clients send them with
//! `grpc.UseCompressor("snappy")` — `grpc-encoding: snappy`, each message flagged compressed
//! and in the snappy framed format — over a raw HTTP/2 connection to a real node. Unary
//! calls and a client stream (Maintenance.Restore) cut at odd places across DATA frames are
//! answered as if uncompressed; a corrupt message and one decompressing past the node's
//! request size get clear statuses.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;

use bytes::Bytes;
use common::*;
use http::{Method, Request, Uri};
use prost::Message;
use regatta_proto::{
    maintenance::v1::{
        BackupRequest, RestoreInfo, RestoreMessage, maintenance_client::MaintenanceClient,
        restore_message,
    },
    regatta::v1::{CreateTableRequest, PutRequest, RangeRequest, RangeResponse},
    replication::v1::SnapshotChunk,
};

/// The node's largest request (`--api.max-request-size`), small so that a message
/// decompressing past it is cheap to build.
const MAX_REQUEST: usize = 64 * 1024;

/// What a call got back.
#[derive(Debug)]
struct Answer {
    /// `grpc-status`, from the trailers or a trailers-only answer.
    code: u32,
    message: String,
    /// `grpc-encoding` of the answer, if any.
    encoding: Option<String>,
    /// The response body: gRPC-framed messages.
    body: Vec<u8>,
}

impl Answer {
    /// The one message of an OK unary answer, decoded; it must be uncompressed.
    fn decode<M: Message + Default>(&self) -> M {
        assert_eq!(self.code, 0, "status {}: {}", self.code, self.message);
        assert!(self.body.len() >= 5, "no message in {:?}", self.body);
        assert_eq!(self.body[0], 0, "the answer is not compressed");
        let len = u32::from_be_bytes(self.body[1..5].try_into().unwrap()) as usize;
        assert_eq!(len, self.body.len() - 5, "one message");
        M::decode(&self.body[5..]).expect("decodable answer")
    }
}

fn compress(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = snap::write::FrameEncoder::new(Vec::new());
    encoder.write_all(bytes).unwrap();
    encoder.into_inner().unwrap()
}

/// A gRPC message: the flag, the payload's length, the payload.
fn framed(flag: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![flag];
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// `message` as a Go client with the snappy compressor sends it.
fn snappy(message: &impl Message) -> Vec<u8> {
    framed(1, &compress(&message.encode_to_vec()))
}

async fn connect(node: &Node) -> h2::client::SendRequest<Bytes> {
    let address = node.api.trim_start_matches("http://");
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let (send, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    send
}

/// Calls `path` with a snappy request whose body is sent as `pieces`, one DATA frame each.
async fn call(
    send: &h2::client::SendRequest<Bytes>,
    node: &Node,
    path: &str,
    pieces: Vec<Vec<u8>>,
) -> Answer {
    tokio::time::timeout(WAIT, call_inner(send, node, path, pieces))
        .await
        .unwrap_or_else(|_| panic!("{path} did not answer within {WAIT:?}"))
}

async fn call_inner(
    send: &h2::client::SendRequest<Bytes>,
    node: &Node,
    path: &str,
    pieces: Vec<Vec<u8>>,
) -> Answer {
    let uri: Uri = format!("{}{path}", node.api).parse().unwrap();
    let head = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("grpc-encoding", "snappy")
        .header("grpc-accept-encoding", "snappy")
        .body(())
        .unwrap();
    let mut send = send.clone().ready().await.unwrap();
    let (response, mut stream) = send.send_request(head, false).unwrap();
    let last = pieces.len().saturating_sub(1);
    for (i, piece) in pieces.into_iter().enumerate() {
        stream.send_data(piece.into(), i == last).unwrap();
    }
    let (parts, mut body) = response.await.unwrap().into_parts();
    assert_eq!(parts.status, http::StatusCode::OK);
    let header = |map: &http::HeaderMap, name: &str| {
        map.get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let encoding = header(&parts.headers, "grpc-encoding");
    let (code, message, bytes) = if let Some(code) = header(&parts.headers, "grpc-status") {
        // Trailers-only.
        (code, header(&parts.headers, "grpc-message"), Vec::new())
    } else {
        let mut bytes = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.unwrap();
            let _ = body.flow_control().release_capacity(chunk.len());
            bytes.extend_from_slice(&chunk);
        }
        let trailers = body.trailers().await.unwrap().expect("trailers");
        (
            header(&trailers, "grpc-status").expect("grpc-status"),
            header(&trailers, "grpc-message"),
            bytes,
        )
    };
    Answer {
        code: code.parse().unwrap(),
        message: percent_decoded(&message.unwrap_or_default()),
        encoding,
        body: bytes,
    }
}

/// `grpc-message` as sent: percent-encoded.
fn percent_decoded(message: &str) -> String {
    let bytes = message.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn range(table: &str, key: &str) -> RangeRequest {
    RangeRequest {
        table: table.as_bytes().to_vec().into(),
        key: key.as_bytes().to_vec().into(),
        ..Default::default()
    }
}

fn value_of(answer: &Answer) -> Vec<u8> {
    let response: RangeResponse = answer.decode();
    assert_eq!(response.kvs.len(), 1, "one key: {response:?}");
    response.kvs[0].value.to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snappy_requests_are_answered_as_regatta_does() {
    phase("a single core node");
    let max = MAX_REQUEST.to_string();
    let cluster = Cluster::start_with(1, &["--api.max-request-size", &max]);
    cluster.wait_for_leader().await;
    let node = &cluster.nodes[0];
    let send = connect(node).await;

    phase("Tables.Create, snappy-compressed");
    let create = snappy(&CreateTableRequest {
        name: "t".into(),
        config: None,
    });
    wait_until("the snappy Tables.Create is answered OK", || async {
        let answer = call(
            &send,
            node,
            "/regatta.v1.Tables/Create",
            vec![create.clone()],
        )
        .await;
        // 14: the table group is still starting.
        assert!(
            matches!(answer.code, 0 | 14),
            "Create: status {}: {}",
            answer.code,
            answer.message
        );
        answer.code == 0
    })
    .await;

    phase("KV.Put and KV.Range, snappy-compressed; the answers are uncompressed");
    let value = "a value worth compressing ".repeat(40);
    let put_request = snappy(&PutRequest {
        table: b"t".to_vec().into(),
        key: b"k".to_vec().into(),
        value: value.as_bytes().to_vec().into(),
        prev_kv: false,
        ttl_millis: 0,
    });
    // The message cut inside its prefix and inside its payload, over three DATA frames.
    let pieces = vec![
        put_request[..3].to_vec(),
        put_request[3..20].to_vec(),
        put_request[20..].to_vec(),
    ];
    let answer = call(&send, node, "/regatta.v1.KV/Put", pieces).await;
    assert_eq!(answer.code, 0, "Put: {}", answer.message);
    assert_eq!(answer.encoding, None, "answers are sent uncompressed");
    let answer = call(
        &send,
        node,
        "/regatta.v1.KV/Range",
        vec![snappy(&range("t", "k"))],
    )
    .await;
    assert_eq!(answer.encoding, None);
    assert_eq!(value_of(&answer), value.as_bytes());

    phase("an uncompressed message under grpc-encoding: snappy (flag 0) passes as it is");
    let plain = framed(0, &range("t", "k").encode_to_vec());
    let answer = call(&send, node, "/regatta.v1.KV/Range", vec![plain]).await;
    assert_eq!(value_of(&answer), value.as_bytes());

    phase("a client stream: Maintenance.Restore, every message compressed, cut at odd places");
    for i in 0..30 {
        put(node, "t", &format!("more-{i:02}"), &"m".repeat(i + 1))
            .await
            .expect("put");
    }
    let mut maintenance = MaintenanceClient::new(node.channel().await);
    let mut backup = maintenance
        .backup(BackupRequest {
            table: b"t".to_vec().into(),
        })
        .await
        .expect("backup")
        .into_inner();
    let mut data = Vec::new();
    while let Some(chunk) = backup.message().await.expect("backup chunk") {
        data.extend_from_slice(&chunk.data);
    }
    assert!(!data.is_empty());
    let mut body = snappy(&RestoreMessage {
        data: Some(restore_message::Data::Info(RestoreInfo {
            table: b"copy".to_vec().into(),
        })),
    });
    for piece in data.chunks(100) {
        body.extend(snappy(&RestoreMessage {
            data: Some(restore_message::Data::Chunk(SnapshotChunk {
                data: piece.to_vec().into(),
                len: piece.len() as u64,
                index: 0,
            })),
        }));
    }
    // DATA frames of 1, 7, 13, 19… bytes: messages split and several in one frame.
    let mut pieces = Vec::new();
    let mut rest = body.as_slice();
    let mut size = 1;
    while !rest.is_empty() {
        let (piece, tail) = rest.split_at(size.min(rest.len()));
        pieces.push(piece.to_vec());
        rest = tail;
        size += 6;
    }
    eprintln!(
        "restore: {} messages' worth of {} bytes in {} DATA frames",
        data.chunks(100).len() + 1,
        body.len(),
        pieces.len()
    );
    let answer = call(&send, node, "/maintenance.v1.Maintenance/Restore", pieces).await;
    assert_eq!(answer.code, 0, "Restore: {}", answer.message);
    let answer = call(
        &send,
        node,
        "/regatta.v1.KV/Range",
        vec![snappy(&range("copy", "k"))],
    )
    .await;
    assert_eq!(
        value_of(&answer),
        value.as_bytes(),
        "the restored table holds the value"
    );

    phase("a corrupt snappy message: Internal, naming the decompression");
    let corrupt = framed(1, b"this is not a snappy stream");
    let answer = call(&send, node, "/regatta.v1.KV/Range", vec![corrupt]).await;
    assert_eq!(answer.code, 13, "Internal: {answer:?}");
    assert!(
        answer.message.contains("failed to decompress"),
        "{}",
        answer.message
    );

    phase("a message decompressing past --api.max-request-size: ResourceExhausted");
    let big = snappy(&PutRequest {
        table: b"t".to_vec().into(),
        key: b"big".to_vec().into(),
        value: vec![0; MAX_REQUEST + 1].into(),
        prev_kv: false,
        ttl_millis: 0,
    });
    assert!(big.len() < MAX_REQUEST / 4, "compressed it is small");
    let answer = call(&send, node, "/regatta.v1.KV/Put", vec![big]).await;
    assert_eq!(answer.code, 8, "ResourceExhausted: {answer:?}");
    assert!(
        answer
            .message
            .contains("after decompression larger than max"),
        "{}",
        answer.message
    );

    phase("the node still answers on the same connection");
    let answer = call(
        &send,
        node,
        "/regatta.v1.KV/Range",
        vec![snappy(&range("t", "k"))],
    )
    .await;
    assert_eq!(value_of(&answer), value.as_bytes());
}
