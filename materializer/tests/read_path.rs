//! The read path's properties: no torn txns or batches, lock-free views held across apply,
//! atomic whole-state replacement, and waiting for an applied revision.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use regatta_materializer::{Entry, Materializer, Revision, State};
use regatta_proto::regatta::v1 as wire;

const KEYS: usize = 16;

fn counter_txn(value: u64) -> regatta_proto::event::Event {
    txn(wire::TxnRequest {
        table: b("t"),
        compare: vec![],
        success: (0..KEYS)
            .map(|k| op_put(&format!("k{k:02}"), &value.to_string()))
            .collect(),
        failure: vec![],
    })
}

/// One writer applies txns (and multi-entry batches) that set every key to the same counter;
/// 8 readers read all keys from one view and must always see them equal.
#[test]
fn readers_never_see_half_a_txn_or_a_batch() {
    let m = Arc::new(Materializer::default());
    m.apply_events([(Revision(1), &create("t")), (Revision(2), &counter_txn(0))])
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let (m, stop, reads) = (Arc::clone(&m), Arc::clone(&stop), Arc::clone(&reads));
            std::thread::spawn(move || {
                let mut last = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let view = m.view();
                    let table = view.table("t").expect("table");
                    let values: Vec<_> = (0..KEYS)
                        .map(|k| {
                            table
                                .get(format!("k{k:02}").as_bytes())
                                .expect("key")
                                .value_bytes()
                        })
                        .collect();
                    assert!(
                        values.iter().all(|v| *v == values[0]),
                        "torn read at {}: {values:?}",
                        view.revision()
                    );
                    let now: u64 = std::str::from_utf8(&values[0]).unwrap().parse().unwrap();
                    assert!(now >= last, "a later view went backwards");
                    last = now;
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let started = Instant::now();
    let mut index = 3u64;
    let mut counter = 1u64;
    while started.elapsed() < Duration::from_secs(2) {
        // A batch of single-key puts is also published as one: build one per round.
        let puts: Vec<_> = (0..KEYS)
            .map(|k| put("t", &format!("k{k:02}"), &(counter + 1).to_string()))
            .collect();
        let txn = counter_txn(counter);
        m.apply_events([(Revision(index), &txn)]).unwrap();
        index += 1;
        let batch = puts.iter().enumerate().map(|(i, e)| Entry {
            index: Revision(index + i as u64),
            event: Some(e),
        });
        m.apply_batch(batch).unwrap();
        index += KEYS as u64;
        counter += 2;
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().expect("reader saw a consistent state");
    }
    assert!(reads.load(Ordering::Relaxed) > 0);
}

#[test]
fn a_held_view_is_unaffected_by_later_applies() {
    let mut h = Harness::new();
    h.apply(create("t"));
    h.apply(put("t", "k", "old"));
    let view = h.m.view();
    for i in 0..100 {
        h.apply(put("t", "k", &format!("new{i}")));
    }
    assert_eq!(
        view.table("t").unwrap().get(b"k").unwrap().value(),
        b("old")
    );
    assert_eq!(
        h.m.view().table("t").unwrap().get(b"k").unwrap().value(),
        b("new99")
    );
}

#[test]
fn replacing_the_whole_state_is_one_swap() {
    let a = Materializer::default();
    a.apply_events([
        (Revision(1), &create("a")),
        (Revision(2), &put("a", "k", "1")),
    ])
    .unwrap();
    let b_ = Materializer::default();
    b_.apply_events([
        (Revision(1), &create("b")),
        (Revision(2), &put("b", "k", "2")),
        (Revision(3), &put("b", "j", "3")),
    ])
    .unwrap();
    let replacement: State = State::clone(&b_.view());
    let before = a.view();
    a.replace(replacement);
    let after = a.view();
    assert!(before.table("a").is_some() && before.table("b").is_none());
    assert!(after.table("a").is_none() && after.table("b").is_some());
    assert_eq!(a.applied(), Revision(3));
}

#[tokio::test]
async fn wait_applied_wakes_when_revision_reached() {
    let m = Arc::new(Materializer::default());
    let waiter = {
        let m = Arc::clone(&m);
        tokio::spawn(async move { m.wait_applied(Revision(3)).await })
    };
    m.apply_events([
        (Revision(1), &create("t")),
        (Revision(2), &put("t", "a", "1")),
    ])
    .unwrap();
    assert!(
        !waiter.is_finished() || waiter.await.is_err(),
        "not yet at 3"
    );
    let m2 = Arc::clone(&m);
    let waiter = tokio::spawn(async move { m2.wait_applied(Revision(3)).await });
    m.apply_events([(Revision(3), &put("t", "b", "1"))])
        .unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(30), waiter)
        .await
        .expect("woken")
        .expect("join")
        .expect("ok");
    assert!(seen >= Revision(3));
    // Already applied: returns at once.
    assert_eq!(m.wait_applied(Revision(1)).await.unwrap(), Revision(3));
}

/// Point reads take no lock: a reader completes while a writer holds the apply lock.
#[test]
fn reads_proceed_while_a_writer_holds_the_apply_lock() {
    let m = Arc::new(Materializer::default());
    m.apply_events([
        (Revision(1), &create("t")),
        (Revision(2), &put("t", "k", "v")),
    ])
    .unwrap();
    let read_inside = m
        .update(|_next| {
            // The writer lock is held here; a reader on another thread must still finish.
            let reader = {
                let m = Arc::clone(&m);
                std::thread::spawn(move || {
                    m.peek()
                        .table("t")
                        .and_then(|t| t.get(b"k"))
                        .map(|r| r.value_bytes())
                })
            };
            Ok::<_, regatta_materializer::Error>(reader.join().expect("reader"))
        })
        .unwrap();
    assert_eq!(read_inside, Some(b("v")));
}

/// Range and prefix scans position once and then walk only the range: scanning k keys of
/// an n-key table yields exactly those k pairs, in order, however large n is.
#[test]
fn scans_walk_only_the_range() {
    let m = Materializer::default();
    m.apply_events([(Revision(1), &create("t"))]).unwrap();
    let events: Vec<_> = (0..50_000)
        .map(|i| put("t", &format!("k{i:06}"), "v"))
        .collect();
    apply_from(&m, 2, &events);
    let view = m.view();
    let table = view.table("t").unwrap();
    let range =
        regatta_materializer::request::KeyRange::from_wire(&b("k020000"), &b("k020010")).unwrap();
    let visited: Vec<_> = table
        .scan(&range, None)
        .map(|r| bytes::Bytes::copy_from_slice(r.key()))
        .collect();
    assert_eq!(visited.len(), 10);
    assert_eq!(visited.first(), Some(&b("k020000")));
    let after = table.scan(&range, Some(b"k020004")).count();
    assert_eq!(after, 5, "continuing after a key starts right after it");
}
