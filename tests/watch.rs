//! Watch end to end: real core and edge processes, watchers over gRPC and `regatta kv
//! watch`. A watcher sees every change of its keys in revision order, whole revisions
//! together (batches, txns, range deletes), at a core and at an edge, across an edge
//! restart (resumed from the last revision seen) and a core leader change; a start
//! revision the node no longer holds is refused naming the oldest it holds; a watcher
//! whose client does not read is cancelled with where to resume, while another keeps up;
//! the node's watch metrics count what happened.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures::StreamExt;
use regatta_proto::mvcc::v1::{RequestOp, request_op};
use regatta_proto::regatta::v1::{DeleteRangeRequest, RangeRequest, TxnRequest};
use regatta_proto::regatta::watch::v1::{
    CancelReason, Canceled, CreateRequest, Event, EventType, ProgressRequest, WatchRequest,
    WatchResponse, watch_client::WatchClient, watch_request, watch_response,
};
use tonic::Streaming;

/// One Watch stream: requests go in through `requests`, answers come out of `responses`.
struct WatchStream {
    requests: futures::channel::mpsc::UnboundedSender<WatchRequest>,
    responses: Streaming<WatchResponse>,
}

/// One event as the tests compare them: revision, type, key, value, create revision.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    revision: u64,
    put: bool,
    key: Vec<u8>,
    value: Vec<u8>,
    create_revision: i64,
}

fn seen(e: &Event) -> Seen {
    let kv = e.kv.clone().unwrap_or_default();
    Seen {
        revision: kv.mod_revision as u64,
        put: e.r#type == EventType::Put as i32,
        key: kv.key.to_vec(),
        value: kv.value.to_vec(),
        create_revision: kv.create_revision,
    }
}

fn create(table: &str, key: &[u8], range_end: &[u8], start_revision: u64) -> WatchRequest {
    WatchRequest {
        request: Some(watch_request::Request::Create(CreateRequest {
            table: Bytes::copy_from_slice(table.as_bytes()),
            key: Bytes::copy_from_slice(key),
            range_end: Bytes::copy_from_slice(range_end),
            start_revision,
            prev_kv: true,
            progress_notify: false,
            watch_id: 0,
        })),
    }
}

impl WatchStream {
    async fn open(node: &Node) -> Result<Self, tonic::Status> {
        let (requests, rx) = futures::channel::mpsc::unbounded();
        let mut client = WatchClient::new(node.channel().await);
        let responses = client.watch(rx).await?.into_inner();
        Ok(Self {
            requests,
            responses,
        })
    }

    fn send(&self, request: WatchRequest) {
        self.requests.unbounded_send(request).unwrap();
    }

    /// The next answer, within [`WAIT`].
    async fn next(&mut self) -> Result<WatchResponse, tonic::Status> {
        match tokio::time::timeout(WAIT, self.responses.next()).await {
            Ok(Some(r)) => r,
            Ok(None) => Err(tonic::Status::unavailable("the stream ended")),
            Err(_) => panic!("no watch answer within {WAIT:?}"),
        }
    }

    /// Creates a watcher and returns its id and start revision, or its cancellation.
    async fn create(&mut self, request: WatchRequest) -> Result<(i64, u64), Canceled> {
        self.send(request);
        let r = self.next().await.unwrap();
        match r.kind {
            Some(watch_response::Kind::Created(c)) => Ok((r.watch_id, c.start_revision)),
            Some(watch_response::Kind::Canceled(c)) => Err(c),
            other => panic!("expected the create's answer, got {other:?}"),
        }
    }

    /// Reads events until one at `revision` or later arrived; every message's revisions.
    async fn events_through(&mut self, revision: u64, out: &mut Vec<Seen>) -> Vec<Vec<u64>> {
        let mut messages = Vec::new();
        while out.last().is_none_or(|s| s.revision < revision) {
            match self.next().await.unwrap().kind {
                Some(watch_response::Kind::Events(e)) => {
                    assert!(!e.fragment, "no revision here is that large");
                    let batch: Vec<Seen> = e.events.iter().map(seen).collect();
                    messages.push(batch.iter().map(|s| s.revision).collect());
                    out.extend(batch);
                }
                Some(watch_response::Kind::Progress(_)) => {}
                other => panic!("expected events, got {other:?}"),
            }
        }
        messages
    }
}

/// The value of one series, its name and labels exactly as exported, in `node`'s
/// `/metrics` (None: not there, or no answer).
async fn metric(node: &Node, series: &str) -> Option<f64> {
    let body = node.http_body("/metrics").await?;
    body.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Waits until `series` at `node` is `want`.
async fn wait_metric(node: &Node, series: &str, want: f64) {
    wait_until(&format!("{series} is {want}"), || async {
        metric(node, series).await == Some(want)
    })
    .await;
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn op_put(key: &str, value: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(request_op::Put {
            key: b(key),
            value: b(value),
            prev_kv: false,
            ttl_millis: 0,
        })),
    }
}

fn op_delete(key: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(
            request_op::DeleteRange {
                key: b(key),
                ..Default::default()
            },
        )),
    }
}

/// Replays events into a map: key → (value, create revision, mod revision).
fn replay(events: &[Seen]) -> BTreeMap<Vec<u8>, (Vec<u8>, i64, i64)> {
    let mut model = BTreeMap::new();
    for e in events {
        if e.put {
            model.insert(
                e.key.clone(),
                (e.value.clone(), e.create_revision, e.revision as i64),
            );
        } else {
            model.remove(&e.key);
        }
    }
    model
}

async fn table_state(node: &Node, table: &str) -> BTreeMap<Vec<u8>, (Vec<u8>, i64, i64)> {
    dump(node, table)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, v, c, m)| (k, (v, c, m)))
        .collect()
}

/// Revisions never go back, and no revision's events are split over two messages.
fn check_order(messages: &[Vec<u64>]) {
    let mut last = 0;
    let mut closed = std::collections::HashSet::new();
    for m in messages {
        for &r in m {
            assert!(r >= last, "revision {r} after {last}");
            assert!(!closed.contains(&r), "revision {r} split over two messages");
            last = r;
        }
        if let Some(&end) = m.last() {
            closed.extend(m.iter().copied().filter(|&r| r != end));
            closed.insert(end);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_at_a_core_sees_every_change_in_order_whole_revisions_together() {
    phase("start one core and a table");
    let cluster = Cluster::start(1);
    cluster.wait_for_leader().await;
    let core = &cluster.nodes[0];
    create_table(core, "t").await;

    phase("requests are validated");
    let mut stream = WatchStream::open(core).await.unwrap();
    let missing = stream
        .create(create("nope", b"a", b"", 0))
        .await
        .unwrap_err();
    assert_eq!(missing.reason, CancelReason::TableNotFound as i32);
    assert_eq!(missing.code, tonic::Code::NotFound as i32);
    let inverted = stream.create(create("t", b"b", b"a", 0)).await.unwrap_err();
    assert_eq!(inverted.reason, CancelReason::Rejected as i32);
    assert_eq!(inverted.code, tonic::Code::InvalidArgument as i32);

    phase("a whole-table watcher from revision 1 and a prefix watcher from now");
    let (all, start) = stream.create(create("t", b"\0", b"\0", 1)).await.unwrap();
    assert_eq!(start, 1);
    let mut prefixed = WatchStream::open(core).await.unwrap();
    prefixed.create(create("t", b"p/", b"p0", 0)).await.unwrap();

    phase("puts, concurrent puts (batched), a txn and a range delete");
    for i in 0..20 {
        put(core, "t", &format!("k{i:02}"), &format!("v{i}"))
            .await
            .unwrap();
    }
    let concurrent: Vec<_> = (0..40)
        .map(|i| {
            let api = core.api.clone();
            tokio::spawn(async move {
                let mut kv = regatta_proto::regatta::v1::kv_client::KvClient::connect(api)
                    .await
                    .unwrap();
                kv.put(regatta_proto::regatta::v1::PutRequest {
                    table: b("t"),
                    key: b(&format!("p/{i:02}")),
                    value: b("c"),
                    prev_kv: false,
                    ttl_millis: 0,
                })
                .await
                .unwrap()
                .into_inner()
                .header
                .unwrap()
                .revision
            })
        })
        .collect();
    for task in concurrent {
        task.await.unwrap();
    }
    let mut kv = core.kv().await;
    let txn = kv
        .txn(TxnRequest {
            table: b("t"),
            compare: Vec::new(),
            success: vec![
                op_put("k00", "txn"),
                op_put("p/new", "txn"),
                op_delete("k01"),
            ],
            failure: Vec::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let txn_revision = txn.header.unwrap().revision;
    let deleted = kv
        .delete_range(DeleteRangeRequest {
            table: b("t"),
            key: b("k10"),
            range_end: b("k15"),
            prev_kv: false,
            count: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.deleted, 5);
    let last = deleted.header.unwrap().revision;

    phase("the whole-table watcher saw every change, in order, each revision in one message");
    let mut events = Vec::new();
    let messages = stream.events_through(last, &mut events).await;
    check_order(&messages);
    assert!(events.iter().all(|e| e.revision > 1));
    let txn_events: Vec<&Seen> = events
        .iter()
        .filter(|e| e.revision == txn_revision)
        .collect();
    assert_eq!(
        txn_events.len(),
        3,
        "the txn's three writes: {txn_events:?}"
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e.revision == last && !e.put)
            .count(),
        5,
        "the range delete's five keys"
    );
    assert_eq!(replay(&events), table_state(core, "t").await);
    assert!(
        messages.iter().any(|m| m.len() > 1),
        "some concurrent puts shared a message"
    );

    phase("the prefix watcher saw only its keys");
    let mut prefix_events = Vec::new();
    prefixed
        .events_through(txn_revision, &mut prefix_events)
        .await;
    assert!(prefix_events.iter().all(|e| e.key.starts_with(b"p/")));
    assert_eq!(prefix_events.len(), 41);

    phase("progress on request, then a cancel");
    stream.send(WatchRequest {
        request: Some(watch_request::Request::Progress(ProgressRequest {})),
    });
    match stream.next().await.unwrap().kind {
        Some(watch_response::Kind::Progress(p)) => assert!(p.revision >= last),
        other => panic!("expected progress, got {other:?}"),
    }
    stream.send(WatchRequest {
        request: Some(watch_request::Request::Cancel(
            regatta_proto::regatta::watch::v1::CancelRequest { watch_id: all },
        )),
    });
    match stream.next().await.unwrap().kind {
        Some(watch_response::Kind::Canceled(c)) => {
            assert_eq!(c.reason, CancelReason::Requested as i32);
            assert_eq!(c.resume_revision, last + 1);
        }
        other => panic!("expected the cancel, got {other:?}"),
    }
}

/// Follows `table` at `node` from revision 1 into `seen`, resuming from the revision after
/// the last one seen whenever the stream breaks (the node restarting).
fn follow(
    node: String,
    table: &'static str,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut breaks = 0;
        loop {
            let from = seen.lock().unwrap().last().map_or(1, |s| s.revision + 1);
            let channel = tonic::transport::Channel::from_shared(node.clone())
                .unwrap()
                .connect_lazy();
            let (requests, rx) = futures::channel::mpsc::unbounded();
            requests
                .unbounded_send(create(table, b"\0", b"\0", from))
                .unwrap();
            let opened = WatchClient::new(channel).watch(rx).await;
            if let Ok(response) = opened {
                let mut responses = response.into_inner();
                while let Some(Ok(r)) = responses.next().await {
                    match r.kind {
                        Some(watch_response::Kind::Events(e)) => {
                            seen.lock().unwrap().extend(e.events.iter().map(seen_of));
                        }
                        Some(watch_response::Kind::Canceled(c)) => {
                            // A node still starting may not know the table yet.
                            assert_ne!(c.reason, CancelReason::Compacted as i32, "{c:?}");
                            break;
                        }
                        _ => {}
                    }
                }
            }
            breaks += 1;
            assert!(breaks < 2000, "the watcher could not resume");
            tokio::time::sleep(Duration::from_millis(50)).await; // reconnect backoff
        }
    })
}

fn seen_of(e: &Event) -> Seen {
    seen(e)
}

/// Puts `key` through the first of `nodes` that takes it; the revision.
async fn put_somewhere(nodes: &[&Node], key: &str, value: &str) -> u64 {
    let revision = std::sync::atomic::AtomicU64::new(0);
    wait_until(&format!("{key} is written"), || async {
        for node in nodes {
            if let Ok(r) = put(node, "t", key, value).await {
                revision.store(r, std::sync::atomic::Ordering::Relaxed);
                return true;
            }
        }
        false
    })
    .await;
    revision.load(std::sync::atomic::Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_at_an_edge_sees_every_change_across_an_edge_restart_and_a_leader_change() {
    phase("start three cores, a table and an edge");
    let mut cluster = Cluster::start(3);
    let leader = cluster.wait_for_leader().await;
    create_table(&cluster.nodes[0], "t").await;
    let mut edge = Edge::new(
        "edge",
        cluster.dir.path(),
        cluster
            .nodes
            .iter()
            .map(|n| n.replication.clone())
            .collect(),
    );
    edge.start();
    wait_until("the edge has the table", || async {
        get(&edge.node, "t", "x", false).await.is_ok()
    })
    .await;

    phase("a watcher at the edge follows the table from revision 1");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let follower = follow(edge.node.api.clone(), "t", seen.clone());
    let mut acked = Vec::new();
    let reached = |revision: u64| {
        let seen = seen.clone();
        move || {
            let seen = seen.clone();
            async move {
                seen.lock()
                    .unwrap()
                    .last()
                    .is_some_and(|s| s.revision >= revision)
            }
        }
    };
    let followers: Vec<&Node> = cluster.nodes.iter().filter(|n| n.id != leader).collect();
    for i in 0..40 {
        let key = format!("k{:02}", i % 25);
        acked.push((
            key.clone(),
            put_somewhere(&followers, &key, &format!("a{i}")).await,
        ));
    }
    wait_until(
        "the watcher saw the first writes",
        reached(acked.last().unwrap().1),
    )
    .await;

    phase("the edge restarts while writes go on; the watcher resumes");
    edge.node.kill();
    for i in 0..40 {
        let key = format!("k{:02}", i % 30);
        acked.push((
            key.clone(),
            put_somewhere(&followers, &key, &format!("b{i}")).await,
        ));
    }
    edge.start();
    wait_until(
        "the watcher resumed and saw the writes made meanwhile",
        reached(acked.last().unwrap().1),
    )
    .await;

    phase("the core leader is killed; writes go on through the others");
    cluster.node(leader).kill();
    let new_leader = cluster.wait_for_leader_other_than(leader).await;
    let alive: Vec<&Node> = cluster.nodes.iter().filter(|n| n.is_running()).collect();
    for i in 0..40 {
        let key = format!("k{:02}", i % 35);
        acked.push((
            key.clone(),
            put_somewhere(&alive, &key, &format!("c{i}")).await,
        ));
    }
    wait_until(
        "the watcher saw the writes after the leader change",
        reached(acked.last().unwrap().1),
    )
    .await;
    follower.abort();

    phase("the edge's metrics counted the watcher's events; its stream is gone");
    assert!(
        metric(&edge.node, "regatta_watch_events_sent_total")
            .await
            .is_some_and(|sent| sent > 0.0),
        "the edge counts the events it sent"
    );
    wait_metric(&edge.node, "regatta_watch_streams", 0.0).await;
    wait_metric(&edge.node, "regatta_watch_watchers", 0.0).await;

    phase("in order, every acknowledged write seen at its revision, the same state as the core");
    let events = seen.lock().unwrap().clone();
    let mut last = 0;
    for e in &events {
        assert!(e.revision >= last, "revision {} after {last}", e.revision);
        last = e.revision;
    }
    for (key, revision) in &acked {
        assert!(
            events
                .iter()
                .any(|e| e.revision == *revision && e.key == key.as_bytes()),
            "the put of {key} at {revision} was seen"
        );
    }
    let core = cluster.nodes.iter().find(|n| n.id == new_leader).unwrap();
    wait_converged(core, &edge.node, "the edge caught up").await;
    assert_eq!(replay(&events), table_state(core, "t").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_a_revision_no_longer_held_names_the_oldest_and_a_read_then_watch_works() {
    phase("one core that snapshots and purges its log often");
    let mut cluster =
        Cluster::start_with(1, &["--raft.snapshot-entries=20", "--raft.keep-entries=3"]);
    cluster.wait_for_leader().await;
    create_table(&cluster.nodes[0], "t").await;
    for i in 0..60 {
        put(
            &cluster.nodes[0],
            "t",
            &format!("k{}", i % 7),
            &i.to_string(),
        )
        .await
        .unwrap();
    }

    phase("restarted, it holds changes from its snapshot on only");
    cluster.node(1).kill();
    cluster.restart(1);
    cluster.wait_for_leader().await;
    let core = &cluster.nodes[0];
    let mut stream = WatchStream::open(core).await.unwrap();
    let gone = stream
        .create(create("t", b"\0", b"\0", 1))
        .await
        .unwrap_err();
    assert_eq!(gone.reason, CancelReason::Compacted as i32, "{gone:?}");
    assert_eq!(gone.code, tonic::Code::OutOfRange as i32);
    assert!(gone.oldest_revision > 1, "{gone:?}");
    assert!(
        gone.message.contains(&gone.oldest_revision.to_string()),
        "{}",
        gone.message
    );

    phase("read the table, then watch from its revision + 1: nothing is missed");
    let read = core
        .kv()
        .await
        .range(RangeRequest {
            table: b("t"),
            key: vec![0].into(),
            range_end: vec![0].into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let revision = read.header.unwrap().revision;
    let (_, start) = stream
        .create(create("t", b"\0", b"\0", revision + 1))
        .await
        .unwrap();
    assert_eq!(start, revision + 1);
    let written = put(core, "t", "after", "read").await.unwrap();
    let mut events = Vec::new();
    stream.events_through(written, &mut events).await;
    assert_eq!(events.last().unwrap().key, b"after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_does_not_read_is_cancelled_while_another_keeps_up() {
    phase("one core with small watcher buffers");
    let cluster = Cluster::start_with(1, &["--watch.buffer-events=1000"]);
    cluster.wait_for_leader().await;
    let core = &cluster.nodes[0];
    create_table(core, "t").await;
    let first = put(core, "t", "start", "x").await.unwrap();

    phase("a slow watcher (never read) and a fast one, read all along");
    let mut slow = WatchStream::open(core).await.unwrap();
    slow.create(create("t", b"\0", b"\0", first + 1))
        .await
        .unwrap();
    let mut fast = WatchStream::open(core).await.unwrap();
    fast.create(create("t", b"\0", b"\0", first + 1))
        .await
        .unwrap();
    let (last_tx, last_rx) = tokio::sync::oneshot::channel::<u64>();
    let fast_reader = tokio::spawn(async move {
        // The whole stream moves here (not only the field read below), so that it closes,
        // both ways, when the reader is done.
        let mut fast = fast;
        // Reads as the writes go, then on until the last revision written.
        let mut events = Vec::new();
        let mut messages = Vec::new();
        let mut last_rx = last_rx;
        let mut last = u64::MAX;
        while events.last().is_none_or(|s: &Seen| s.revision < last) {
            tokio::select! {
                r = fast.responses.next() => match r.unwrap().unwrap().kind {
                    Some(watch_response::Kind::Events(e)) => {
                        let batch: Vec<Seen> = e.events.iter().map(seen).collect();
                        messages.push(batch.iter().map(|s| s.revision).collect::<Vec<_>>());
                        events.extend(batch);
                    }
                    other => panic!("the fast watcher got {other:?}"),
                },
                l = &mut last_rx, if last == u64::MAX => last = l.unwrap(),
            }
        }
        (events, messages)
    });

    phase("many large txns: more than the slow client's windows and buffer");
    let value = "v".repeat(4096);
    let mut kv = core.kv().await;
    let mut last = 0;
    for round in 0..100 {
        let ops = (0..100)
            .map(|i| op_put(&format!("r{round:03}/{i:03}"), &value))
            .collect();
        let r = kv
            .txn(TxnRequest {
                table: b("t"),
                compare: Vec::new(),
                success: ops,
                failure: Vec::new(),
            })
            .await
            .unwrap()
            .into_inner();
        last = r.header.unwrap().revision;
    }
    last_tx.send(last).unwrap();

    phase("the fast watcher saw every event");
    let (events, messages) = tokio::time::timeout(WAIT, fast_reader)
        .await
        .unwrap()
        .unwrap();
    check_order(&messages);
    assert_eq!(events.len(), 10_000);

    phase("the slow one reads what was sent, then its cancel: resume from the revision named");
    let mut slow_events = Vec::new();
    let canceled = loop {
        match slow.next().await.unwrap().kind {
            Some(watch_response::Kind::Events(e)) => slow_events.extend(e.events.iter().map(seen)),
            Some(watch_response::Kind::Canceled(c)) => break c,
            _ => {}
        }
    };
    assert_eq!(
        canceled.reason,
        CancelReason::FellBehind as i32,
        "{canceled:?}"
    );
    let resume = canceled.resume_revision;
    assert!(resume > first && resume <= last, "{canceled:?}");
    assert!(slow_events.iter().all(|e| e.revision < resume));
    let mut again = WatchStream::open(core).await.unwrap();
    again
        .create(create("t", b"\0", b"\0", resume))
        .await
        .unwrap();
    let mut rest = Vec::new();
    again.events_through(last, &mut rest).await;
    slow_events.extend(rest);
    assert_eq!(
        slow_events, events,
        "what was sent and the resumed watch make up the whole"
    );

    phase("the metrics count the watchers, the events and the cancel");
    // Two streams are open (the slow one and the resumed one; the fast one ended with its
    // reader), one watcher watches; every event of the 10,000 went out twice (to the fast
    // watcher, and to the slow one before its cancel plus the resumed one after it).
    wait_metric(core, "regatta_watch_streams", 2.0).await;
    wait_metric(core, "regatta_watch_watchers", 1.0).await;
    let count = |series: &'static str| metric(core, series);
    assert_eq!(
        count("regatta_watch_watchers_created_total").await,
        Some(3.0)
    );
    assert_eq!(
        count("regatta_watch_events_sent_total").await,
        Some(20_000.0)
    );
    assert!(
        count("regatta_watch_event_bytes_sent_total").await >= Some(20_000.0 * 4096.0),
        "event bytes count keys and values"
    );
    let cancelled = |reason: &str| {
        let series = format!("regatta_watch_watchers_cancelled_total{{reason=\"{reason}\"}}");
        async move { metric(core, &series).await }
    };
    assert_eq!(cancelled("fell_behind").await, Some(1.0));
    assert_eq!(
        cancelled("stream_ended").await,
        Some(1.0),
        "the fast watcher, whose stream ended under it"
    );
    assert_eq!(
        cancelled("compacted").await,
        Some(0.0),
        "every reason is listed"
    );
    let through = count("regatta_watch_history_revision").await.unwrap();
    assert!(
        through >= last as f64,
        "history through {through}, last write {last}"
    );
    let oldest = count("regatta_watch_history_oldest_revision")
        .await
        .unwrap();
    assert!((1.0..=through + 1.0).contains(&oldest), "oldest {oldest}");

    phase("the streams close: nothing open, the live watcher counted as its stream ended");
    drop(again);
    drop(slow);
    wait_metric(core, "regatta_watch_streams", 0.0).await;
    wait_metric(core, "regatta_watch_watchers", 0.0).await;
    assert_eq!(cancelled("stream_ended").await, Some(2.0));
    assert_eq!(cancelled("fell_behind").await, Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regatta_kv_watch_prints_changes_and_says_why_it_stopped() {
    phase("one core, a table, three writes under a prefix and one beside it");
    let cluster = Cluster::start(1);
    cluster.wait_for_leader().await;
    let core = &cluster.nodes[0];
    create_table(core, "t").await;
    let first = put(core, "t", "app/a", "1").await.unwrap();
    put(core, "t", "other", "x").await.unwrap();
    put(core, "t", "app/b", "2").await.unwrap();
    put(core, "t", "app/a", "3").await.unwrap();

    phase("kv watch --prefix --from-revision prints them in order");
    let from = first.to_string();
    let out = regatta(&[
        "kv",
        "watch",
        "t",
        "app/",
        "--prefix",
        "--from-revision",
        &from,
        "--count",
        "3",
        "--address",
        &core.api,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("PUT app/a = 1 (revision"), "{text}");
    assert!(lines[1].starts_with("PUT app/b = 2"), "{text}");
    assert!(lines[2].starts_with("PUT app/a = 3"), "{text}");

    phase("--json prints one document a line");
    let out = regatta(&[
        "kv",
        "watch",
        "t",
        "app/b",
        "--from-revision",
        "1",
        "--count",
        "1",
        "--json",
        "--address",
        &core.api,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.contains("\"type\":\"PUT\"") && l.contains("\"key\":\"app/b\"")),
        "{text}"
    );

    phase("a missing table exits 4");
    let out = regatta(&["kv", "watch", "missing", "--address", &core.api]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
