//! Keys with a time to live, end to end: three real core processes and an edge. Puts with a
//! TTL through a follower (forwarded) and through the edge; each key carries its expiry; a
//! read made after the expiry (the same machine's clock) never returns the key, at any
//! core or at the edge; the leader that took the puts is killed before they expire and the
//! next one deletes them with expiry entries, which `regatta log replay` shows in its log
//! and a watcher at the edge sees as deletes at the same revisions. A key overwritten
//! without a TTL stays.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use common::*;
use futures::StreamExt;
use regatta_proto::regatta::v1::{PutRequest, RangeRequest};
use regatta_proto::regatta::watch::v1::{
    CreateRequest, EventType, WatchRequest, watch_client::WatchClient, watch_request,
    watch_response,
};

const TTL_MS: i64 = 4_000;

fn now_ms() -> i64 {
    i64::try_from(regatta_proto::now_micros() / 1000).unwrap()
}

/// Puts `key` with `ttl_millis` at `node`; the revision and the instants (ms) the request
/// was sent and its answer arrived.
async fn put_ttl(
    node: &Node,
    key: &str,
    ttl_millis: i64,
) -> Result<(u64, i64, i64), tonic::Status> {
    let mut kv = node.kv().await;
    let sent = now_ms();
    let resp = kv
        .put(PutRequest {
            table: b"t".to_vec().into(),
            key: key.as_bytes().to_vec().into(),
            value: format!("value of {key}").into_bytes().into(),
            prev_kv: false,
            ttl_millis,
        })
        .await?;
    let acked = now_ms();
    Ok((
        resp.into_inner().header.map_or(0, |h| h.revision),
        sent,
        acked,
    ))
}

/// The keys a serializable range of the whole table returns at `node`, with their expiry,
/// and the instant (ms) just before the read was sent.
async fn keys_at(node: &Node) -> Option<(i64, BTreeMap<String, i64>)> {
    let mut kv = node.kv().await;
    let before = now_ms();
    let resp = kv
        .range(RangeRequest {
            table: b"t".to_vec().into(),
            key: vec![0].into(),
            range_end: vec![0].into(),
            ..Default::default()
        })
        .await
        .ok()?;
    Some((
        before,
        resp.into_inner()
            .kvs
            .iter()
            .map(|kv| {
                (
                    String::from_utf8_lossy(&kv.key).into_owned(),
                    kv.expires_at_millis,
                )
            })
            .collect(),
    ))
}

/// The expiry entries of the log under `data_dir` (`regatta log replay --format json`):
/// revision → keys deleted; `None` while the log shows no committed history yet (a node
/// saves its commit index lazily).
fn expiries_in_log(data_dir: &std::path::Path) -> Option<BTreeMap<u64, Vec<String>>> {
    let out = regatta(&[
        "log",
        "replay",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--format",
        "json",
    ]);
    if !out.status.success() {
        let error = String::from_utf8_lossy(&out.stderr);
        assert!(
            error.contains("no committed history"),
            "log replay: {error}"
        );
        return None;
    }
    let mut expiries = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["op"] == "expire" {
            let keys = v["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["key"].as_str().unwrap().to_owned())
                .collect();
            expiries.insert(v["revision"].as_u64().unwrap(), keys);
        }
    }
    Some(expiries)
}

/// Watches table `t` at `node` from revision 1 until `count` deletes arrived: key →
/// revision of its delete.
async fn edge_deletes(node: &Node, count: usize) -> BTreeMap<String, u64> {
    let (requests, rx) = futures::channel::mpsc::unbounded();
    requests
        .unbounded_send(WatchRequest {
            request: Some(watch_request::Request::Create(CreateRequest {
                table: Bytes::from_static(b"t"),
                key: Bytes::from_static(b"\0"),
                range_end: Bytes::from_static(b"\0"),
                start_revision: 1,
                ..Default::default()
            })),
        })
        .unwrap();
    let mut responses = WatchClient::new(node.channel().await)
        .watch(rx)
        .await
        .unwrap()
        .into_inner();
    let mut deletes = BTreeMap::new();
    while deletes.len() < count {
        let next = tokio::time::timeout(std::time::Duration::from_secs(60), responses.next())
            .await
            .expect("a watch answer within 60 s")
            .expect("the watch stream goes on")
            .unwrap();
        if let Some(watch_response::Kind::Events(e)) = next.kind {
            for event in e.events {
                if event.r#type == EventType::Delete as i32 {
                    let kv = event.kv.unwrap();
                    deletes.insert(
                        String::from_utf8_lossy(&kv.key).into_owned(),
                        u64::try_from(kv.mod_revision).unwrap(),
                    );
                }
            }
        }
    }
    drop(requests);
    deletes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_expire_at_every_core_and_edge_and_the_next_leader_deletes_them() {
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

    phase("puts with a TTL through a follower and through the edge; plain puts beside");
    let follower = cluster.nodes.iter().find(|n| n.id != leader).unwrap();
    // key → (earliest, latest) expiry the put may have been given (leader's clock = ours).
    let mut expiring: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for i in 0..20 {
        let key = format!("f{i:02}");
        let (_, sent, acked) = put_ttl(follower, &key, TTL_MS).await.unwrap();
        expiring.insert(key, (sent + TTL_MS, acked + TTL_MS));
    }
    for i in 0..5 {
        let key = format!("e{i}");
        let (_, sent, acked) = put_ttl(&edge.node, &key, TTL_MS).await.unwrap();
        expiring.insert(key, (sent + TTL_MS, acked + TTL_MS));
    }
    let mut last = 0;
    for i in 0..5 {
        last = put(follower, "t", &format!("p{i}"), "plain").await.unwrap();
    }
    // A TTL cleared by a later put without one.
    put_ttl(follower, "renewed", TTL_MS).await.unwrap();
    last = last.max(put(follower, "t", "renewed", "kept").await.unwrap());
    let stays: BTreeSet<String> = (0..5)
        .map(|i| format!("p{i}"))
        .chain(["renewed".to_owned()])
        .collect();

    phase("every key is readable with its expiry, at the edge too");
    for node in cluster.nodes.iter().chain([&edge.node]) {
        wait_until("the node has applied every put", || async {
            keys_at(node).await.is_some_and(|(_, keys)| {
                keys.len() == expiring.len() + stays.len() && keys.get("renewed") == Some(&0)
            })
        })
        .await;
        let (_, keys) = keys_at(node).await.unwrap();
        for (key, (earliest, latest)) in &expiring {
            let at = keys[key];
            assert!(
                (*earliest..=*latest).contains(&at),
                "{key} expires at {at}, outside [{earliest}, {latest}]"
            );
        }
        for key in &stays {
            assert_eq!(keys[key], 0, "{key} has no expiry");
        }
    }
    let last_expiry = expiring.values().map(|(_, l)| *l).max().unwrap();
    assert!(
        now_ms() < last_expiry - 1_000,
        "the puts took too long to test the leader change before the expiry"
    );

    phase("the leader is killed before the keys expire");
    cluster.node(leader).kill();
    let new_leader = cluster.wait_for_leader_other_than(leader).await;

    phase("after its expiry a key is never read, anywhere; then the new leader deletes them");
    let alive: Vec<&Node> = cluster
        .nodes
        .iter()
        .filter(|n| n.is_running())
        .chain([&edge.node])
        .collect();
    wait_until("every node shows only the keys without a TTL", || async {
        let mut all_gone = true;
        for node in &alive {
            let Some((before, keys)) = keys_at(node).await else {
                all_gone = false;
                continue;
            };
            for (key, (_, latest)) in &expiring {
                // Sent after the latest possible expiry: the key must not be there.
                assert!(
                    before < *latest || !keys.contains_key(key),
                    "{key} (expired at the latest {latest}) was read at {before} from node {}",
                    node.id
                );
            }
            all_gone &= keys.keys().cloned().collect::<BTreeSet<_>>() == stays;
        }
        all_gone
    })
    .await;

    phase("the deletes are expiry entries in the log, the same at the cores and the edge");
    let core_dir = cluster
        .nodes
        .iter()
        .find(|n| n.id == new_leader)
        .unwrap()
        .data_dir
        .clone();
    let deleted = |expiries: &BTreeMap<u64, Vec<String>>| -> BTreeSet<String> {
        expiries.values().flatten().cloned().collect()
    };
    let wanted: BTreeSet<String> = expiring.keys().cloned().collect();
    wait_until("the leader's log holds an expiry of every key", || async {
        expiries_in_log(&core_dir).is_some_and(|e| deleted(&e) == wanted)
    })
    .await;
    let at_core = expiries_in_log(&core_dir).unwrap();
    assert!(
        at_core.keys().all(|r| *r > last),
        "expiry entries come after the puts: {at_core:?}"
    );
    let from_edge = edge_deletes(&edge.node, wanted.len()).await;
    let at_core_by_key: BTreeMap<String, u64> = at_core
        .iter()
        .flat_map(|(r, keys)| keys.iter().map(move |k| (k.clone(), *r)))
        .collect();
    assert_eq!(
        from_edge, at_core_by_key,
        "a watcher at the edge sees each expiry as a delete at the revision of its entry"
    );
    let expired_metric = cluster
        .nodes
        .iter()
        .find(|n| n.id == new_leader)
        .unwrap()
        .http_body("/metrics")
        .await
        .unwrap_or_default();
    assert!(
        expired_metric
            .lines()
            .any(|l| l.starts_with("regatta_ttl_expired_keys_total ")
                && l.split(' ').nth(1).and_then(|v| v.parse::<f64>().ok()) >= Some(25.0)),
        "the new leader counted the expired keys"
    );
}
