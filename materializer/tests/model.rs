//! Model test: random operation sequences against a `BTreeMap` model, and batch-split
//! determinism (one batch or many gives the same state and the same responses).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::*;
use proptest::prelude::*;
use regatta_materializer::{ApplyResponse, Entry, Materializer, Rejection, Revision, State};
use regatta_proto::event::Event;
use regatta_proto::event::event::Kind;
use regatta_proto::mvcc::v1::compare::CompareResult as CR;
use regatta_proto::regatta::v1 as wire;

#[derive(Debug, Clone)]
enum Op {
    /// Key, value, and whether the put asks for the previous pair.
    Put(u8, u8, bool),
    Delete(u8, Option<u8>),
    /// If key == value then put else delete.
    Txn(u8, u8, u8),
    PutMissingTable(u8),
    /// A put event no request could make (an empty key, or a table name that is not
    /// UTF-8): rejected at apply, also in the middle of a run of puts.
    PutInvalid(bool),
}

fn key(k: u8) -> String {
    format!("k{k:02}")
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..20, 0u8..5, any::<bool>()).prop_map(|(k, v, p)| Op::Put(k, v, p)),
        2 => (0u8..20, proptest::option::of(0u8..21)).prop_map(|(k, e)| Op::Delete(k, e)),
        2 => (0u8..20, 0u8..5, 0u8..20).prop_map(|(k, v, o)| Op::Txn(k, v, o)),
        1 => (0u8..20).prop_map(Op::PutMissingTable),
        1 => any::<bool>().prop_map(Op::PutInvalid),
    ]
}

#[derive(Debug, Clone, PartialEq)]
struct Rec {
    value: Bytes,
    create: u64,
    modr: u64,
    version: u64,
}

fn to_event(op: &Op) -> Event {
    match op {
        Op::Put(k, v, prev_kv) => put_req(wire::PutRequest {
            table: b("t"),
            key: b(&key(*k)),
            value: b(&v.to_string()),
            prev_kv: *prev_kv,
            ttl_millis: 0,
        }),
        Op::Delete(k, e) => delete("t", &key(*k), &e.map(key).unwrap_or_default()),
        Op::Txn(k, v, o) => txn(wire::TxnRequest {
            table: b("t"),
            compare: vec![cmp(&key(*k), "", CR::Equal, Some(&v.to_string()))],
            success: vec![op_put(&key(*o), "s")],
            failure: vec![op_delete(&key(*o), "")],
        }),
        Op::PutMissingTable(k) => put("nope", &key(*k), "v"),
        Op::PutInvalid(empty_key) => Event {
            version: regatta_proto::EVENT_VERSION,
            proposed_at_micros: 0,
            kind: Some(Kind::Put(regatta_proto::event::Put {
                table: if *empty_key {
                    b("t")
                } else {
                    Bytes::from_static(b"t\xff")
                },
                key: if *empty_key { Bytes::new() } else { b("k00") },
                value: b("v"),
                prev_kv: true,
                ttl_millis: 0,
            })),
        },
    }
}

/// Applies `op` at `rev` to the model; returns a summary comparable with the response.
fn model_apply(m: &mut BTreeMap<Bytes, Rec>, op: &Op, rev: u64) -> String {
    fn mput(m: &mut BTreeMap<Bytes, Rec>, k: Bytes, v: Bytes, rev: u64) -> Option<Bytes> {
        let prev = m.get(&k).cloned();
        let rec = match &prev {
            Some(p) => Rec {
                value: v,
                create: p.create,
                modr: rev,
                version: p.version + 1,
            },
            None => Rec {
                value: v,
                create: rev,
                modr: rev,
                version: 1,
            },
        };
        m.insert(k, rec);
        prev.map(|p| p.value)
    }
    fn mdel(m: &mut BTreeMap<Bytes, Rec>, k: Bytes, end: Option<Bytes>) -> usize {
        let doomed: Vec<Bytes> = match end {
            None => m.contains_key(&k).then_some(k).into_iter().collect(),
            Some(e) => m.keys().filter(|x| **x >= k && **x < e).cloned().collect(),
        };
        doomed.iter().filter(|d| m.remove(*d).is_some()).count()
    }
    match op {
        Op::Put(k, v, prev_kv) => {
            let prev = mput(m, b(&key(*k)), b(&v.to_string()), rev);
            format!("put {:?}", prev.filter(|_| *prev_kv))
        }
        Op::Delete(k, e) => format!("del {}", mdel(m, b(&key(*k)), e.map(|e| b(&key(e))))),
        Op::Txn(k, v, o) => {
            let ok = m
                .get(&b(&key(*k)))
                .is_some_and(|r| r.value == b(&v.to_string()));
            if ok {
                format!("txn true put {:?}", mput(m, b(&key(*o)), b("s"), rev))
            } else {
                format!("txn false del {}", mdel(m, b(&key(*o)), None))
            }
        }
        Op::PutMissingTable(_) => "missing".into(),
        Op::PutInvalid(_) => "invalid".into(),
    }
}

fn summarize(r: &ApplyResponse) -> String {
    use regatta_proto::mvcc::v1::response_op::Response as R;
    match r {
        ApplyResponse::Put { prev_kv } => {
            format!("put {:?}", prev_kv.as_ref().map(|kv| kv.value.clone()))
        }
        ApplyResponse::DeleteRange(d) => format!("del {}", d.deleted),
        ApplyResponse::Txn(t) => match &t.responses[0].response {
            Some(R::ResponsePut(p)) => format!(
                "txn true put {:?}",
                p.prev_kv.as_ref().map(|kv| kv.value.clone())
            ),
            Some(R::ResponseDeleteRange(d)) => format!("txn false del {}", d.deleted),
            other => format!("unexpected {other:?}"),
        },
        ApplyResponse::Rejected(Rejection::TableNotFound { .. }) => "missing".into(),
        ApplyResponse::Rejected(Rejection::InvalidArgument { .. }) => "invalid".into(),
        other => format!("unexpected {other:?}"),
    }
}

fn dump(state: &State) -> Vec<(Bytes, Rec)> {
    state
        .table("t")
        .unwrap()
        .iter()
        .map(|r| {
            (
                Bytes::copy_from_slice(r.key()),
                Rec {
                    value: r.value_bytes(),
                    create: r.create_revision(),
                    modr: r.mod_revision(),
                    version: r.version(),
                },
            )
        })
        .collect()
}

fn apply_in_batches(
    events: &[Event],
    cuts: &[usize],
) -> (Vec<(Bytes, Rec)>, Vec<ApplyResponse>, Revision) {
    let m = Materializer::default();
    let create_event = create("t");
    m.apply_events([(Revision(1), &create_event)]).unwrap();
    let mut responses = Vec::new();
    let mut start = 0;
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (events.len() + 1)).collect();
    bounds.push(events.len());
    bounds.sort_unstable();
    for end in bounds {
        let batch = events[start..end].iter().enumerate().map(|(i, e)| Entry {
            index: Revision((start + i) as u64 + 2),
            event: Some(e),
        });
        responses.extend(m.apply_batch(batch).unwrap());
        start = end;
    }
    let view = m.view();
    (dump(&view), responses, view.revision())
}

fn put_heavy() -> impl Strategy<Value = Op> {
    prop_oneof![
        20 => (0u8..20, 0u8..5, any::<bool>()).prop_map(|(k, v, p)| Op::Put(k, v, p)),
        1 => (0u8..20, proptest::option::of(0u8..21)).prop_map(|(k, e)| Op::Delete(k, e)),
        1 => (0u8..20, 0u8..5, 0u8..20).prop_map(|(k, v, o)| Op::Txn(k, v, o)),
        1 => (0u8..20).prop_map(Op::PutMissingTable),
        1 => any::<bool>().prop_map(Op::PutInvalid),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Long runs of puts are applied in key order inside a batch; the result must equal
    /// applying every entry on its own.
    #[test]
    fn sorted_put_runs_equal_one_by_one(ops in proptest::collection::vec(put_heavy(), 32..200)) {
        let events: Vec<Event> = ops.iter().map(to_event).collect();
        let one_batch = apply_in_batches(&events, &[]);
        let every_entry: Vec<usize> = (0..events.len()).collect();
        let one_by_one = apply_in_batches(&events, &every_entry);
        prop_assert_eq!(one_batch, one_by_one);
    }

    #[test]
    fn materializer_matches_btreemap_model(
        ops in proptest::collection::vec(op(), 1..80),
        ranges in proptest::collection::vec((0u8..21, 0u8..22, 0i64..6, any::<bool>()), 1..8),
    ) {
        let mut h = Harness::new();
        h.apply(create("t"));
        let mut model = BTreeMap::new();
        for op in &ops {
            let rev = h.next;
            let got = summarize(&h.apply(to_event(op)));
            let want = model_apply(&mut model, op, rev);
            prop_assert_eq!(got, want, "op {:?}", op);
        }
        let view = h.m.view();
        let want: Vec<_> = model.into_iter().collect();
        let want_bytes: usize = want.iter().map(|(k, r)| k.len() + r.value.len()).sum();
        prop_assert_eq!(view.table("t").unwrap().data_bytes(), want_bytes as u64);
        prop_assert_eq!(dump(&view), want.clone());
        prop_assert_eq!(view.revision(), Revision(h.next - 1));
        // Ranges (end 21 = "\0", i.e. from-key) with limits and count_only.
        for (start, end, limit, count_only) in ranges {
            let end_key = if end == 21 { "\0".to_string() } else { key(end) };
            let mut req = range_req("t", &key(start), &end_key);
            req.limit = limit;
            req.count_only = count_only;
            let got = h.range(req);
            let (lo, hi) = (b(&key(start)), b(&end_key));
            let all: Vec<_> = want
                .iter()
                .filter(|(k, _)| *k >= lo && (end == 21 || *k < hi))
                .collect();
            let n = if limit == 0 { all.len() } else { all.len().min(limit as usize) };
            let more = limit > 0 && all.len() > limit as usize;
            if count_only {
                prop_assert!(got.kvs.is_empty());
                prop_assert_eq!(got.count, n as i64);
            } else {
                let pairs: Vec<_> = got.kvs.iter().map(|kv| (kv.key.clone(), kv.value.clone(), kv.mod_revision)).collect();
                let model: Vec<_> = all[..n].iter().map(|(k, r)| (k.clone(), r.value.clone(), r.modr as i64)).collect();
                prop_assert_eq!(pairs, model);
                prop_assert_eq!(got.count, n as i64);
            }
            prop_assert_eq!(got.more, more);
        }
    }

    #[test]
    fn one_batch_or_many_gives_the_same_result(
        ops in proptest::collection::vec(op(), 1..60),
        cuts in proptest::collection::vec(0usize..100, 0..6),
    ) {
        let events: Vec<Event> = ops.iter().map(to_event).collect();
        let one = apply_in_batches(&events, &[]);
        let many = apply_in_batches(&events, &cuts);
        prop_assert_eq!(one, many);
    }
}
