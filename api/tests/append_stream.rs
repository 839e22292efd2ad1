//! The Raft transport's client sends AppendEntries on one long-lived `AppendStream` per
//! peer: many calls share one stream; a peer of an older build (which answers
//! `AppendStream` with UNIMPLEMENTED) is sent unary `AppendEntries` instead; a call that
//! times out leaves no stream behind, so its late answer is never read as the next call's.
//!
//! The client is the real `RaftPeer` (as openraft uses it) over a real loopback HTTP/2
//! connection. The server is a stand-in whose answers the test decides: an older build's
//! UNIMPLEMENTED, or an answer held past the caller's deadline, cannot be had from this
//! build's service. Every answer echoes the request it answers (`PartialSuccess` up to the
//! request's last entry), so a mixed-up answer shows.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::{Stream, StreamExt};
use openraft::error::RPCError;
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse};
use openraft::{BasicNode, CommittedLeaderId, Entry, EntryPayload, LogId, Vote};
use regatta_api::raft_network::RaftNetworkFactoryImpl;
use regatta_materializer::raft::TypeConfig;
use regatta_proto::raft as codec;
use regatta_proto::regatta::raft::v1::{
    self as pb,
    raft_transport_server::{RaftTransport, RaftTransportServer},
};
use tonic::{Request, Response, Status, Streaming};

/// What the stand-in peer saw, and how it answers.
#[derive(Default)]
struct Peer {
    /// Serve `AppendStream` (a peer of this build) or answer UNIMPLEMENTED (an older one).
    streams_served: AtomicBool,
    /// Hold the answer to the next streamed request until `release` (past the caller's
    /// deadline).
    hold_next: AtomicBool,
    release: tokio::sync::Notify,
    streams_opened: AtomicUsize,
    streamed: AtomicUsize,
    unary: AtomicUsize,
}

/// `PartialSuccess` up to the request's last entry: the answer names its request.
fn echo(request: pb::AppendEntriesRequest) -> Result<pb::AppendEntriesResponse, Status> {
    let rpc = codec::append_request_from_pb::<TypeConfig>(request)
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    let last = rpc.entries.last().map(|e| e.log_id);
    Ok(codec::append_response_to_pb(
        &AppendEntriesResponse::<u64>::PartialSuccess(last),
    ))
}

struct Server(Arc<Peer>);

type Answers = Pin<Box<dyn Stream<Item = Result<pb::AppendEntriesResponse, Status>> + Send>>;

#[tonic::async_trait]
impl RaftTransport for Server {
    async fn append_entries(
        &self,
        request: Request<pb::AppendEntriesRequest>,
    ) -> Result<Response<pb::AppendEntriesResponse>, Status> {
        self.0.unary.fetch_add(1, Ordering::SeqCst);
        echo(request.into_inner()).map(Response::new)
    }

    type AppendStreamStream = Answers;

    async fn append_stream(
        &self,
        request: Request<Streaming<pb::AppendEntriesRequest>>,
    ) -> Result<Response<Answers>, Status> {
        if !self.0.streams_served.load(Ordering::SeqCst) {
            return Err(Status::unimplemented("unknown method AppendStream"));
        }
        self.0.streams_opened.fetch_add(1, Ordering::SeqCst);
        let peer = Arc::clone(&self.0);
        let answers = request.into_inner().then(move |request| {
            let peer = Arc::clone(&peer);
            async move {
                peer.streamed.fetch_add(1, Ordering::SeqCst);
                if peer.hold_next.swap(false, Ordering::SeqCst) {
                    peer.release.notified().await;
                }
                echo(request?)
            }
        });
        Ok(Response::new(Box::pin(answers)))
    }

    async fn vote(
        &self,
        _: Request<pb::VoteRequest>,
    ) -> Result<Response<pb::VoteResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn install_snapshot(
        &self,
        _: Request<pb::InstallSnapshotRequest>,
    ) -> Result<Response<pb::InstallSnapshotResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn stream_snapshot(
        &self,
        _: Request<Streaming<pb::SnapshotPart>>,
    ) -> Result<Response<pb::InstallSnapshotResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn forward(
        &self,
        _: Request<pb::ForwardRequest>,
    ) -> Result<Response<pb::ForwardResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn node_info(
        &self,
        _: Request<pb::NodeInfoRequest>,
    ) -> Result<Response<pb::NodeInfoResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn read_index(
        &self,
        _: Request<pb::ReadIndexRequest>,
    ) -> Result<Response<pb::ReadIndexResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
}

/// Serves `peer` on a loopback port; returns its address.
async fn serve(peer: Arc<Peer>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(RaftTransportServer::new(Server(peer)))
            .serve_with_incoming(incoming),
    );
    format!("http://{addr}")
}

/// Leader 2 of term 1 sends the blank entry `index`.
fn one_entry(index: u64) -> AppendEntriesRequest<TypeConfig> {
    let leader = CommittedLeaderId::new(1, 2);
    AppendEntriesRequest {
        vote: Vote::new_committed(1, 2),
        prev_log_id: index.checked_sub(1).map(|i| LogId::new(leader, i)),
        entries: vec![Entry {
            log_id: LogId::new(leader, index),
            payload: EntryPayload::Blank,
        }],
        leader_commit: None,
    }
}

fn answered_up_to(answer: Result<AppendEntriesResponse<u64>, impl std::fmt::Debug>) -> Option<u64> {
    match answer {
        Ok(AppendEntriesResponse::PartialSuccess(Some(log_id))) => Some(log_id.index),
        other => panic!("unexpected answer {other:?}"),
    }
}

async fn peer_client(addr: &str) -> impl RaftNetwork<TypeConfig> {
    peer_client_with(addr, RaftNetworkFactoryImpl::default()).await
}

async fn peer_client_with(
    addr: &str,
    mut factory: RaftNetworkFactoryImpl,
) -> impl RaftNetwork<TypeConfig> {
    RaftNetworkFactory::<TypeConfig>::new_client(&mut factory, 1, &BasicNode::new(addr)).await
}

const TTL: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_share_one_stream_and_a_timed_out_call_leaves_none_behind() {
    let peer = Arc::new(Peer {
        streams_served: AtomicBool::new(true),
        ..Peer::default()
    });
    let mut client = peer_client(&serve(Arc::clone(&peer)).await).await;

    for index in 1..=5 {
        let answer = client
            .append_entries(one_entry(index), RPCOption::new(TTL))
            .await;
        assert_eq!(answered_up_to(answer), Some(index));
    }
    assert_eq!(peer.streams_opened.load(Ordering::SeqCst), 1, "one stream");
    assert_eq!(peer.streamed.load(Ordering::SeqCst), 5);
    assert_eq!(peer.unary.load(Ordering::SeqCst), 0, "no unary call");

    // The peer holds the next answer past the deadline: the call fails as unreachable
    // (openraft backs off), and the next call gets its own answer on a new stream.
    peer.hold_next.store(true, Ordering::SeqCst);
    let late = client
        .append_entries(one_entry(6), RPCOption::new(TTL))
        .await;
    assert!(
        matches!(late, Err(RPCError::Unreachable(_))),
        "a call past its deadline: {late:?}"
    );
    // Its answer now goes out on the stream the client gave up.
    peer.release.notify_one();
    let answer = client
        .append_entries(one_entry(7), RPCOption::new(TTL))
        .await;
    assert_eq!(
        answered_up_to(answer),
        Some(7),
        "the answer to its own request"
    );
    assert_eq!(
        peer.streams_opened.load(Ordering::SeqCst),
        2,
        "a new stream"
    );
    assert_eq!(peer.unary.load(Ordering::SeqCst), 0, "no unary call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_without_append_stream_is_sent_unary_calls() {
    let peer = Arc::new(Peer::default());
    let mut client = peer_client(&serve(Arc::clone(&peer)).await).await;

    for index in 1..=3 {
        let answer = client
            .append_entries(one_entry(index), RPCOption::new(TTL))
            .await;
        assert_eq!(answered_up_to(answer), Some(index));
    }
    assert_eq!(
        peer.unary.load(Ordering::SeqCst),
        3,
        "every append went as a unary call"
    );
    assert_eq!(peer.streams_opened.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_upgraded_since_is_asked_again_after_the_reprobe_interval() {
    const REPROBE: Duration = Duration::from_secs(2);
    let peer = Arc::new(Peer::default());
    let factory = RaftNetworkFactoryImpl::default().stream_reprobe_after(REPROBE);
    let mut client = peer_client_with(&serve(Arc::clone(&peer)).await, factory).await;

    let answer = client
        .append_entries(one_entry(1), RPCOption::new(TTL))
        .await;
    assert_eq!(answered_up_to(answer), Some(1));
    // It is asked again once REPROBE has passed since its answer: by `asked + REPROBE`.
    let asked = std::time::Instant::now();

    // Upgraded: it serves AppendStream now, but is not asked again before the interval.
    peer.streams_served.store(true, Ordering::SeqCst);
    let answer = client
        .append_entries(one_entry(2), RPCOption::new(TTL))
        .await;
    assert_eq!(answered_up_to(answer), Some(2));
    assert!(
        asked.elapsed() < REPROBE,
        "the machine took over {REPROBE:?} for one call: nothing is checked"
    );
    assert_eq!(peer.unary.load(Ordering::SeqCst), 2);
    assert_eq!(peer.streams_opened.load(Ordering::SeqCst), 0);

    // The interval is a duration by design: wait it out, then the peer is asked again.
    tokio::time::sleep_until((asked + REPROBE).into()).await;
    let answer = client
        .append_entries(one_entry(3), RPCOption::new(TTL))
        .await;
    assert_eq!(answered_up_to(answer), Some(3));
    assert_eq!(peer.streams_opened.load(Ordering::SeqCst), 1, "asked again");
    assert_eq!(peer.unary.load(Ordering::SeqCst), 2);
}
