//! A follower's log store tells openraft an append is flushed once it is written (so its
//! Raft core does not sit out the fsync), and the Raft transport's server answers an
//! AppendEntries with success only once what it wrote is durable: the leader must never
//! count a node for an entry that is not on its disk.
//!
//! A real openraft instance on the real log store; its log's fsync rounds are held at their
//! end (after the fsync, before the durable pointer moves) by the log's sync observer, so
//! "written but not durable" lasts as long as the test wants.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use openraft::raft::AppendEntriesRequest;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Raft, Vote};
use regatta_api::raft_network::RaftNetworkFactoryImpl;
use regatta_api::raft_service::{ForwardHandler, RaftService};
use regatta_log::testing::RoundGate;
use regatta_log::{Log, LogIndex, Options};
use regatta_materializer::Materializer;
use regatta_materializer::raft::{StateMachine, TypeConfig};
use regatta_proto::raft as codec;
use regatta_proto::regatta::raft::v1::{self as pb, raft_transport_server::RaftTransport};
use tonic::{Request, Status};

/// The node's other RPCs are not used here.
struct NoForwarding;

impl ForwardHandler for NoForwarding {
    fn forward(&self, _: pb::ForwardRequest) -> BoxFuture<'_, Result<pb::ForwardResponse, Status>> {
        Box::pin(async { Err(Status::unimplemented("not in this test")) })
    }

    fn read_index(&self, _: u32) -> BoxFuture<'_, Result<u64, Status>> {
        Box::pin(async { Err(Status::unimplemented("not in this test")) })
    }

    fn node_info(&self) -> pb::NodeInfoResponse {
        pb::NodeInfoResponse::default()
    }
}

/// Leader 2 of term 1 sends entries `from..to` (blank ones), continuing its earlier ones;
/// `from == to` is a heartbeat.
fn append(from: u64, to: u64) -> pb::AppendEntriesRequest {
    let leader = CommittedLeaderId::new(1, 2);
    let rpc = AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(1, 2),
        prev_log_id: from.checked_sub(1).map(|i| LogId::new(leader, i)),
        entries: (from..to)
            .map(|i| Entry {
                log_id: LogId::new(leader, i),
                payload: EntryPayload::Blank,
            })
            .collect(),
        leader_commit: None,
    };
    codec::append_request_to_pb(&rpc)
}

/// `service`'s answer to `request` (an error status fails the test).
async fn answer_of(
    service: &RaftService<TypeConfig>,
    request: pb::AppendEntriesRequest,
) -> pb::AppendEntriesResponse {
    service
        .append_entries(Request::new(request))
        .await
        .unwrap()
        .into_inner()
}

fn is_success(resp: &pb::AppendEntriesResponse) -> bool {
    matches!(
        codec::append_response_from_pb(*resp),
        Ok(openraft::raft::AppendEntriesResponse::Success)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_answers_append_entries_only_once_they_are_durable() {
    let dir = tempfile::tempdir().unwrap();
    let gate = RoundGate::default();
    let log = Log::open(
        dir.path(),
        Options {
            on_sync: Some(gate.observer()),
            ..Options::default()
        },
    )
    .unwrap();
    let mut store = regatta_log::raft::RaftLogStore::<TypeConfig>::new(log.clone()).unwrap();
    let durability = store.replicate_while_syncing();
    let config = openraft::Config {
        heartbeat_interval: 50,
        election_timeout_min: 60_000,
        election_timeout_max: 90_000,
        ..Default::default()
    };
    let raft = Raft::<TypeConfig>::new(
        1,
        Arc::new(config.validate().unwrap()),
        RaftNetworkFactoryImpl::new(regatta_tls::Dialer::plaintext()),
        store,
        StateMachine::new(Arc::new(Materializer::default())),
    )
    .await
    .unwrap();
    let handler: Arc<dyn ForwardHandler> = Arc::new(NoForwarding);
    let gated = RaftService::new(raft.clone(), handler.clone()).answer_when_durable(durability);
    let ungated = RaftService::new(raft.clone(), handler);

    // The store really tells openraft early: without the gate, the answer comes while the
    // entries' fsync round is held.
    gate.set_open(false);
    let resp = answer_of(&ungated, append(0, 2)).await;
    assert!(is_success(&resp), "{resp:?}");
    assert_eq!(log.next_index(), LogIndex(2));
    assert!(
        log.durable_next() < LogIndex(2),
        "answered after the fsync: the store did not tell openraft early"
    );

    // With the gate, the answer waits for the round that covers the entries: none can end
    // while the gate is closed, so it must not come however long that lasts.
    let mut answer = Box::pin(gated.append_entries(Request::new(append(2, 5))));
    // Its first poll hands the request to Raft's core (or answers, if it is wrong).
    assert!(
        futures::poll!(answer.as_mut()).is_pending(),
        "answered while the entries were not durable"
    );
    // Raft's core handles one request after the other: once a heartbeat that claims the
    // entries succeeds, it has written them and told the gated call its answer.
    let resp = answer_of(&ungated, append(5, 5)).await;
    assert!(is_success(&resp), "{resp:?}");
    assert_eq!(log.next_index(), LogIndex(5));
    assert!(
        tokio::time::timeout(Duration::from_millis(200), answer.as_mut())
            .await
            .is_err(),
        "answered while the entries were not durable"
    );
    gate.set_open(true);
    let resp = answer.await.unwrap().into_inner();
    let durable_next = log.durable_next();
    assert!(is_success(&resp), "{resp:?}");
    assert!(
        durable_next >= LogIndex(5),
        "answered with the log durable only below {durable_next:?}"
    );

    // A heartbeat claims what the log already holds durably: answered at once.
    let resp = answer_of(&gated, append(5, 5)).await;
    assert!(is_success(&resp), "{resp:?}");
    raft.shutdown().await.unwrap();
}
