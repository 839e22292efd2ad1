//! The watch history against the state: replaying the recorded changes into a map gives
//! exactly the table apply built, each change's previous pair is what the key held, and
//! revisions never go back — however the entries are cut into batches, with runs of puts
//! applied in key order, batch entries, deletes of ranges and transactions of either branch.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::*;
use proptest::prelude::*;
use regatta_materializer::changes::Change;
use regatta_materializer::{Command, Entry, Materializer, Revision};
use regatta_proto::event::Event;
use regatta_proto::mvcc::v1::compare::CompareResult as CR;
use regatta_proto::regatta::v1 as wire;

#[derive(Debug, Clone)]
enum Op {
    Put(u8, u8),
    /// Many puts in one batch entry (a run long enough to be applied in key order).
    Batch(Vec<(u8, u8)>),
    Delete(u8, Option<u8>),
    /// If key == value then put else delete the other key.
    Txn(u8, u8, u8),
    DeleteTable,
}

fn key(k: u8) -> String {
    format!("k{k:02}")
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..30, 0u8..5).prop_map(|(k, v)| Op::Put(k, v)),
        1 => proptest::collection::vec((0u8..30, 0u8..5), 1..60).prop_map(Op::Batch),
        2 => (0u8..30, proptest::option::of(0u8..31)).prop_map(|(k, e)| Op::Delete(k, e)),
        2 => (0u8..30, 0u8..5, 0u8..30).prop_map(|(k, v, o)| Op::Txn(k, v, o)),
    ]
}

fn to_event(op: &Op) -> Event {
    match op {
        Op::Put(k, v) => put("t", &key(*k), &v.to_string()),
        Op::Batch(puts) => Command::Batch(
            puts.iter()
                .map(|(k, v)| {
                    Command::try_from(&wire::PutRequest {
                        table: b("t"),
                        key: b(&key(*k)),
                        value: b(&v.to_string()),
                        prev_kv: false,
                        ttl_millis: 0,
                    })
                    .unwrap()
                })
                .collect(),
        )
        .to_event(0),
        Op::Delete(k, e) => delete("t", &key(*k), &e.map(key).unwrap_or_default()),
        Op::Txn(k, v, o) => txn(wire::TxnRequest {
            table: b("t"),
            compare: vec![cmp(&key(*k), "", CR::Equal, Some(&v.to_string()))],
            success: vec![op_put(&key(*o), "s"), op_put(&key(*k), "t")],
            failure: vec![op_delete(&key(*o), "")],
        }),
        Op::DeleteTable => event(regatta_proto::event::event::Kind::DeleteTable(
            regatta_proto::event::DeleteTable { name: "t".into() },
        )),
    }
}

type Model = BTreeMap<Bytes, (Bytes, u64, u64, u64)>;

fn record_of(r: &regatta_materializer::table::Record) -> (Bytes, u64, u64, u64) {
    let rev = r.revisions();
    (r.value_bytes(), rev.create, rev.modified, rev.version)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn replayed_changes_build_the_state(ops in proptest::collection::vec(op(), 1..60), cuts in proptest::collection::vec(0usize..60, 0..6)) {
        let events: Vec<Event> = ops.iter().map(to_event).collect();
        let m = Materializer::default();
        m.apply_events([(Revision(1), &create("t"))]).unwrap();
        let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (events.len() + 1)).collect();
        bounds.push(events.len());
        bounds.sort_unstable();
        let mut start = 0;
        for end in bounds {
            let batch = events[start..end].iter().enumerate().map(|(i, e)| Entry {
                index: Revision((start + i) as u64 + 2),
                event: Some(e),
            });
            m.apply_batch(batch).unwrap();
            start = end;
        }
        let read = m.history().read(1, 0).unwrap();
        let mut model = Model::new();
        let mut last = 0;
        for c in read.batches.iter().flat_map(|b| b.changes.iter()) {
            prop_assert!(c.revision.0 >= last, "revisions never go back");
            last = c.revision.0;
            match &c.change {
                Change::Put { record, prev, .. } => {
                    let key = Bytes::copy_from_slice(record.key());
                    prop_assert_eq!(model.get(&key).cloned(), prev.as_ref().map(record_of));
                    prop_assert_eq!(record.mod_revision(), c.revision.0);
                    model.insert(key, record_of(record));
                }
                Change::Delete { prev, .. } => {
                    let key = Bytes::copy_from_slice(prev.key());
                    prop_assert_eq!(model.remove(&key), Some(record_of(prev)));
                }
                Change::TableReset { .. } => model.clear(),
            }
        }
        let view = m.view();
        let state: Model = view
            .table("t")
            .unwrap()
            .iter()
            .map(|r| (Bytes::copy_from_slice(r.key()), record_of(r)))
            .collect();
        prop_assert_eq!(model, state);
        prop_assert_eq!(read.through, view.revision().0);
    }
}

#[test]
fn a_deleted_table_and_a_replaced_state_are_told() {
    let m = Materializer::default();
    m.apply_events([
        (Revision(1), &create("t")),
        (Revision(2), &put("t", "a", "1")),
        (Revision(3), &to_event(&Op::DeleteTable)),
    ])
    .unwrap();
    let read = m.history().read(2, 0).unwrap();
    let changes: Vec<_> = read.batches.iter().flat_map(|b| b.changes.iter()).collect();
    assert_eq!(changes.len(), 2);
    assert!(matches!(
        changes[1].change,
        Change::TableReset { deleted: true, .. }
    ));
    m.replace(regatta_materializer::State::new());
    assert!(m.history().read(2, 0).is_err());
    m.history().set_budget(0);
    assert!(!m.recording());
    m.apply_events([(Revision(1), &create("u"))]).unwrap();
    assert_eq!(m.history().position().1, 2, "nothing recorded while off");
}
