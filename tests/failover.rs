//! End-to-end: writes forwarded to a leader that freezes (SIGSTOP) fail over once a new
//! leader is known, are never applied twice, and the connections between nodes survive the
//! streams their clients gave up on.

#![allow(clippy::unwrap_used)]

mod common;

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use common::*;
use regatta_proto::{
    mvcc::v1::{
        Compare, RequestOp, compare, request_op,
        response_op::{self, Response},
    },
    regatta::v1::{PutRequest, TxnRequest},
};

/// The deadline of every write in the failover test: long, so a write stuck on the frozen
/// leader would visibly wait it out.
const LONG_DEADLINE: Duration = Duration::from_secs(20);

/// What one write attempt got: its key, when it was sent and answered, and the answer.
#[derive(Debug, Clone)]
struct Attempt {
    key: String,
    sent: Instant,
    answered: Instant,
    /// `Ok(true)`: the compare held and the counter moved; `Ok(false)`: it did not.
    outcome: Result<bool, tonic::Code>,
}

fn put_op(key: &str, value: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(request_op::Put {
            key: key.as_bytes().to_vec().into(),
            value: value.as_bytes().to_vec().into(),
            prev_kv: false,
            ttl_millis: 0,
        })),
    }
}

/// One compare-and-set step of the counter: if `counter` holds `n`, set it to `n + 1`. The
/// attempt's own key is written in either branch ("won" or "lost"), so an attempt applied
/// twice shows as a key written twice (its mod revision past its create revision). The
/// failure branch reads the counter, so the writer learns where it stands.
fn cas(attempt: &str, n: u64) -> TxnRequest {
    TxnRequest {
        table: b"t".to_vec().into(),
        compare: vec![Compare {
            result: compare::CompareResult::Equal as i32,
            target: compare::CompareTarget::Value as i32,
            key: b"counter".to_vec().into(),
            range_end: Default::default(),
            target_union: Some(compare::TargetUnion::Value(
                n.to_string().into_bytes().into(),
            )),
        }],
        success: vec![
            put_op("counter", &(n + 1).to_string()),
            put_op(attempt, "won"),
        ],
        failure: vec![
            put_op(attempt, "lost"),
            RequestOp {
                request: Some(request_op::Request::RequestRange(request_op::Range {
                    key: b"counter".to_vec().into(),
                    ..Default::default()
                })),
            },
        ],
    }
}

/// The counter value a failed compare read back.
fn counter_in(responses: &[regatta_proto::mvcc::v1::ResponseOp]) -> Option<u64> {
    responses.iter().find_map(|r| match &r.response {
        Some(Response::ResponseRange(response_op::Range { kvs, .. })) => kvs
            .first()
            .and_then(|kv| std::str::from_utf8(&kv.value).ok()?.parse().ok()),
        _ => None,
    })
}

/// Writes compare-and-set steps through `node` one after the other until `stop`, recording
/// every attempt.
async fn cas_writer(node_api: String, stop: Arc<AtomicBool>, log: Arc<Mutex<Vec<Attempt>>>) {
    let channel = tonic::transport::Channel::from_shared(node_api)
        .unwrap()
        .connect_lazy();
    let mut kv = regatta_proto::regatta::v1::kv_client::KvClient::new(channel);
    let mut n = 0u64;
    let mut i = 0u64;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let key = format!("attempt/{i:06}");
        let mut request = tonic::Request::new(cas(&key, n));
        request.set_timeout(LONG_DEADLINE);
        let sent = Instant::now();
        let outcome = match kv.txn(request).await {
            Ok(r) => {
                let r = r.into_inner();
                if r.succeeded {
                    n += 1;
                } else if let Some(now) = counter_in(&r.responses) {
                    n = now;
                }
                Ok(r.succeeded)
            }
            Err(status) => Err(status.code()),
        };
        log.lock().unwrap().push(Attempt {
            key,
            sent,
            answered: Instant::now(),
            outcome,
        });
        if outcome_is_error(log.lock().unwrap().last()) {
            // Pace retries after an error a little; the next attempt carries a new key.
            tokio::time::sleep(Duration::from_millis(50)).await; // retry pacing
        }
    }
}

fn node(cluster: &Cluster, id: u64) -> &Node {
    cluster.nodes.iter().find(|n| n.id == id).unwrap()
}

fn outcome_is_error(a: Option<&Attempt>) -> bool {
    a.is_some_and(|a| a.outcome.is_err())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_a_follower_resume_soon_after_a_frozen_leader_is_replaced() {
    phase("start a three-node core; a writer runs compare-and-set steps through a follower");
    let cluster = Cluster::start(3);
    let old = cluster.wait_for_leader().await;
    let follower = cluster.nodes.iter().find(|n| n.id != old).unwrap();
    create_table(follower, "t").await;
    put(follower, "t", "counter", "0").await.expect("counter");
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Vec::new()));
    let writer = tokio::spawn(cas_writer(follower.api.clone(), stop.clone(), log.clone()));
    let successes_after = |t: Instant| {
        log.lock()
            .unwrap()
            .iter()
            .filter(|a| a.sent > t && a.outcome.is_ok())
            .map(|a| a.answered)
            .min()
    };
    let succeeded_since = |t: Instant| {
        log.lock()
            .unwrap()
            .iter()
            .filter(|a| a.sent > t && a.outcome.is_ok())
            .count()
    };
    let started = Instant::now();
    wait_until("the writer has succeeded 20 times", || async {
        succeeded_since(started) >= 20
    })
    .await;

    phase(&format!("freeze the leader (node {old}) with SIGSTOP"));
    let frozen = Instant::now();
    node(&cluster, old).pause();

    phase("wait until the follower reports a new leader");
    wait_until("the follower knows a new leader", || async {
        leader_of(follower)
            .await
            .is_some_and(|l| l != 0 && l != old)
    })
    .await;
    let new_leader_known = Instant::now();

    phase("wait until a write sent after the freeze succeeds");
    let limit = frozen + LONG_DEADLINE * 2;
    let resumed_writes = loop {
        if let Some(t) = successes_after(frozen) {
            break t;
        }
        assert!(
            Instant::now() < limit,
            "no write succeeded within {:?} of the freeze",
            LONG_DEADLINE * 2
        );
        tokio::time::sleep(Duration::from_millis(20)).await; // poll interval
    };
    let gap = resumed_writes.saturating_duration_since(new_leader_known);
    eprintln!(
        "new leader known {:.2}s after the freeze; writes succeed again {:.2}s after that",
        (new_leader_known - frozen).as_secs_f64(),
        gap.as_secs_f64()
    );
    assert!(
        gap < LONG_DEADLINE / 2,
        "writes resumed {gap:?} after the follower knew the new leader: forwarded writes waited \
         on the frozen one (deadline {LONG_DEADLINE:?})"
    );

    phase("resume the old leader; keep writing until it has caught up");
    node(&cluster, old).resume();
    let resumed = Instant::now();
    wait_until("20 writes succeed after the old leader resumed", || async {
        succeeded_since(resumed) >= 20
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let attempts = log.lock().unwrap().clone();
    check_applied_at_most_once(&cluster, follower, &attempts).await;
}

/// Checks, once every node has applied everything, that no attempt was applied twice, that
/// the counter moved once per winning attempt, and that every answer told the truth and was
/// one docs/api.md lists.
async fn check_applied_at_most_once(cluster: &Cluster, follower: &Node, attempts: &[Attempt]) {
    let final_rev = put(follower, "t", "done", "yes").await.expect("put");
    for node in &cluster.nodes {
        wait_until(&format!("node {} applied every write", node.id), || async {
            get(node, "t", "done", false).await.ok().flatten().is_some()
        })
        .await;
    }
    assert!(final_rev > 0);

    phase("no attempt was applied twice; the counter counts exactly the winning attempts");
    let dumps: Vec<_> = {
        let mut v = Vec::new();
        for node in &cluster.nodes {
            v.push(dump(node, "t").await.expect("dump"));
        }
        v
    };
    assert_eq!(dumps[0], dumps[1], "nodes disagree");
    assert_eq!(dumps[0], dumps[2], "nodes disagree");
    let stored: BTreeMap<String, (String, i64, i64)> = dumps[0]
        .iter()
        .map(|(k, v, create, modified)| {
            (
                String::from_utf8_lossy(k).into_owned(),
                (String::from_utf8_lossy(v).into_owned(), *create, *modified),
            )
        })
        .collect();
    for (key, (value, create, modified)) in &stored {
        if key.starts_with("attempt/") {
            assert_eq!(
                create, modified,
                "{key} ({value}) was written twice: an attempt was applied twice"
            );
        }
    }
    let won = stored
        .iter()
        .filter(|(k, (v, _, _))| k.starts_with("attempt/") && v == "won")
        .count();
    let counter: usize = stored["counter"].0.parse().unwrap();
    assert_eq!(counter, won, "the counter moved once per winning attempt");
    let mut codes = BTreeMap::<String, usize>::new();
    for a in attempts {
        match a.outcome {
            Ok(true) => assert_eq!(
                stored.get(&a.key).map(|s| s.0.as_str()),
                Some("won"),
                "{} was acknowledged as won",
                a.key
            ),
            Ok(false) => assert_eq!(
                stored.get(&a.key).map(|s| s.0.as_str()),
                Some("lost"),
                "{} was acknowledged as lost",
                a.key
            ),
            Err(code) => {
                assert!(
                    matches!(
                        code,
                        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
                    ),
                    "{} failed with {code:?}, which docs/api.md does not list",
                    a.key
                );
                *codes.entry(format!("{code:?}")).or_default() += 1;
            }
        }
    }
    eprintln!(
        "{} attempts, counter {counter}, failures {codes:?}",
        attempts.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_an_edge_resume_soon_after_its_upstream_freezes() {
    phase("start a three-node core and an edge that follows the leader first");
    let cluster = Cluster::start(3);
    let old = cluster.wait_for_leader().await;
    let follower = cluster.nodes.iter().find(|n| n.id != old).unwrap();
    create_table(follower, "t").await;
    put(follower, "t", "counter", "0").await.expect("counter");
    let mut edge = Edge::new(
        "edge",
        cluster.dir.path(),
        vec![
            node(&cluster, old).replication.clone(),
            follower.replication.clone(),
        ],
    );
    edge.start();
    wait_until("the edge serves the counter", || async {
        get(&edge.node, "t", "counter", false).await.ok().flatten() == Some("0".into())
    })
    .await;

    phase("a writer runs compare-and-set steps through the edge");
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Vec::new()));
    let writer = tokio::spawn(cas_writer(edge.node.api.clone(), stop.clone(), log.clone()));
    let succeeded_since = |t: Instant| {
        log.lock()
            .unwrap()
            .iter()
            .filter(|a| a.sent > t && a.outcome.is_ok())
            .count()
    };
    let started = Instant::now();
    wait_until("the writer has succeeded 20 times", || async {
        succeeded_since(started) >= 20
    })
    .await;

    phase(&format!(
        "freeze the leader (node {old}), the edge's upstream"
    ));
    let frozen = Instant::now();
    node(&cluster, old).pause();
    let limit = frozen + LONG_DEADLINE * 2;
    while succeeded_since(frozen) == 0 {
        assert!(
            Instant::now() < limit,
            "no write through the edge succeeded within {:?} of the freeze",
            LONG_DEADLINE * 2
        );
        tokio::time::sleep(Duration::from_millis(20)).await; // poll interval
    }
    let gap = frozen.elapsed();
    eprintln!(
        "writes through the edge succeed again {:.2}s after the freeze",
        gap.as_secs_f64()
    );
    assert!(
        gap < LONG_DEADLINE / 2,
        "writes through the edge resumed {gap:?} after the freeze: a write waited on the frozen \
         upstream (deadline {LONG_DEADLINE:?})"
    );

    phase("resume the old leader; keep writing, then check every attempt");
    node(&cluster, old).resume();
    let resumed = Instant::now();
    wait_until("20 writes succeed after the old leader resumed", || async {
        succeeded_since(resumed) >= 20
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let attempts = log.lock().unwrap().clone();
    check_applied_at_most_once(&cluster, follower, &attempts).await;
}

/// Every status a client saw, by code; statuses its own client library made when its
/// deadline passed (tonic's "Timeout expired") are counted apart.
#[derive(Default, Debug)]
struct Seen {
    codes: BTreeMap<String, usize>,
    gave_up_locally: usize,
}

impl Seen {
    /// Writes whose client gave up: each one's forward to the leader was cancelled.
    fn given_up(&self) -> usize {
        self.gave_up_locally + self.codes.get("DeadlineExceeded").copied().unwrap_or(0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_giving_up_on_a_frozen_leader_never_break_the_followers_connection() {
    phase("start a three-node core whose leader survives a short freeze");
    // A long election timeout keeps the leader in place while it is frozen, so the streams
    // the follower cancels meanwhile all land on the same connection when it resumes.
    let cluster = Cluster::start_with(3, &["--raft.election-timeout=8s"]);
    let leader = cluster.wait_for_leader().await;
    let follower = cluster.nodes.iter().find(|n| n.id != leader).unwrap();
    create_table(follower, "t").await;
    put(follower, "t", "warm", "up").await.expect("put");

    phase("40 clients write through the follower with 300 ms deadlines");
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut clients = Vec::new();
    for c in 0..40 {
        let (stop, seen, api) = (stop.clone(), seen.clone(), follower.api.clone());
        clients.push(tokio::spawn(async move {
            let channel = tonic::transport::Channel::from_shared(api)
                .unwrap()
                .connect_lazy();
            let mut kv = regatta_proto::regatta::v1::kv_client::KvClient::new(channel);
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let mut request = tonic::Request::new(PutRequest {
                    table: b"t".to_vec().into(),
                    key: format!("c{c}/{i}").into_bytes().into(),
                    value: b"v".to_vec().into(),
                    prev_kv: false,
                    ttl_millis: 0,
                });
                request.set_timeout(Duration::from_millis(300));
                let answer = kv.put(request).await;
                let mut seen = seen.lock().unwrap();
                match answer {
                    Ok(_) => *seen.codes.entry("Ok".into()).or_default() += 1,
                    // Made by this client library (its own timer), not sent by the node.
                    Err(s) if std::error::Error::source(&s).is_some() => {
                        seen.gave_up_locally += 1;
                    }
                    Err(s) => *seen.codes.entry(format!("{:?}", s.code())).or_default() += 1,
                }
            }
        }));
    }
    wait_until("the clients' writes succeed", || async {
        seen.lock().unwrap().codes.get("Ok").copied().unwrap_or(0) > 20
    })
    .await;

    phase(&format!(
        "freeze the leader (node {leader}) until its clients gave up on 30 writes"
    ));
    node(&cluster, leader).pause();
    let before = seen.lock().unwrap().given_up();
    wait_until(
        "more than 30 writes were given up during the freeze",
        || async { seen.lock().unwrap().given_up() - before > 30 },
    )
    .await;
    let cancelled = seen.lock().unwrap().given_up() - before;
    node(&cluster, leader).resume();
    phase(&format!(
        "resumed; {cancelled} writes were given up meanwhile; keep writing for a while"
    ));
    let oks = seen.lock().unwrap().codes.get("Ok").copied().unwrap_or(0);
    wait_until("writes through the follower succeed again", || async {
        seen.lock().unwrap().codes.get("Ok").copied().unwrap_or(0) > oks + 200
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }

    phase("every status was one docs/api.md lists, and the follower still writes");
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    eprintln!("statuses seen: {seen:?}");
    assert!(
        cancelled > 20,
        "the test needs more than h2's default of 20 streams reset during the freeze"
    );
    for code in seen.codes.keys() {
        assert!(
            ["Ok", "Unavailable", "DeadlineExceeded"].contains(&code.as_str()),
            "a client saw {code}: {seen:?}"
        );
    }
    put(follower, "t", "after", "yes")
        .await
        .expect("a write through the follower after the freeze");
    let log = std::fs::read_to_string(node(&cluster, leader).log_path()).unwrap();
    assert!(
        !log.contains("reached limit"),
        "the leader dropped a connection for too many reset streams"
    );
}
