//! KV semantics as a client sees them: tables, put, range, delete, txn, restore, errors.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use regatta_materializer::request::{TableRange, Txn};
use regatta_materializer::{ApplyResponse, Budget, Error, Rejection, Revision, TableId};
use regatta_proto::event::{self, Event, event::Kind};
use regatta_proto::mvcc::v1::{KeyValue, compare::CompareResult as CR, response_op};
use regatta_proto::regatta::v1 as wire;

fn with_abc() -> Harness {
    let mut h = Harness::new();
    h.apply(create("t"));
    for k in ["a", "b", "c", "d"] {
        h.apply(put("t", k, &format!("v{k}")));
    }
    h
}

#[test]
fn table_ids_are_create_indices_and_errors_are_per_entry() {
    let mut h = Harness::new();
    assert_eq!(
        h.apply(create("t")),
        ApplyResponse::TableCreated { id: TableId(1) }
    );
    assert_eq!(
        h.apply(create("t")),
        ApplyResponse::Rejected(Rejection::TableExists { table: "t".into() })
    );
    assert_eq!(
        h.apply(put("missing", "k", "v")),
        ApplyResponse::Rejected(Rejection::TableNotFound {
            table: "missing".into()
        })
    );
    assert_eq!(
        h.m.applied(),
        Revision(3),
        "a rejected entry still advances the revision"
    );
    assert_eq!(
        h.apply(create("s")),
        ApplyResponse::TableCreated { id: TableId(4) }
    );
    let list = h.m.view().list_tables();
    assert_eq!(
        list.iter()
            .map(|t| (t.name.as_str(), t.id.as_str()))
            .collect::<Vec<_>>(),
        [("s", "4"), ("t", "1")]
    );
    assert_eq!(
        h.apply(event(Kind::DeleteTable(event::DeleteTable {
            name: "nope".into()
        }))),
        ApplyResponse::Rejected(Rejection::TableNotFound {
            table: "nope".into()
        })
    );
    assert_eq!(
        h.apply(event(Kind::DeleteTable(event::DeleteTable {
            name: "t".into()
        }))),
        ApplyResponse::TableDeleted
    );
    assert!(matches!(
        h.m.view()
            .range(&TableRange::try_from(&range_req("t", "a", "")).unwrap(), 0),
        Err(Error::TableNotFound { .. })
    ));
}

#[test]
fn put_tracks_revisions_and_returns_prev_kv() {
    let mut h = Harness::new();
    h.apply(create("t"));
    let first = h.apply(put("t", "k", "1"));
    assert_eq!(first, ApplyResponse::Put { prev_kv: None });
    let second = h.apply(put("t", "k", "2"));
    let prev = KeyValue {
        key: b("k"),
        create_revision: 2,
        mod_revision: 2,
        value: b("1"),
        expires_at_millis: 0,
    };
    assert_eq!(
        second,
        ApplyResponse::Put {
            prev_kv: Some(Box::new(prev))
        }
    );
    let view = h.m.view();
    let record = view.table("t").unwrap().get(b"k").unwrap();
    assert_eq!(
        (
            record.create_revision(),
            record.mod_revision(),
            record.version()
        ),
        (2, 3, 2)
    );
    // Without prev_kv nothing comes back.
    let r = h.apply(put_req(wire::PutRequest {
        table: b("t"),
        key: b("k"),
        value: b("3"),
        prev_kv: false,
        ttl_millis: 0,
    }));
    assert_eq!(r, ApplyResponse::Put { prev_kv: None });
}

#[test]
fn range_shapes_single_span_prefix_from_key_whole_table() {
    let h = with_abc();
    assert_eq!(h.keys(range_req("t", "b", "")), ["b"]);
    assert!(
        h.range(range_req("t", "zz", "")).kvs.is_empty(),
        "missing key is an empty response"
    );
    assert_eq!(h.keys(range_req("t", "b", "d")), ["b", "c"]);
    assert_eq!(h.keys(range_req("t", "b", "\0")), ["b", "c", "d"]);
    assert_eq!(h.keys(range_req("t", "\0", "\0")), ["a", "b", "c", "d"]);
    assert!(
        h.keys(range_req("t", "c", "b")).is_empty(),
        "inverted range is empty"
    );
    let r = h.range(range_req("t", "a", ""));
    assert_eq!(
        r.kvs[0],
        KeyValue {
            key: b("a"),
            create_revision: 2,
            mod_revision: 2,
            value: b("va"),
            expires_at_millis: 0,
        }
    );
    assert_eq!(r.count, 1);
    assert!(!r.more);
}

#[test]
fn prefix_scan_uses_incremented_prefix() {
    let mut h = Harness::new();
    h.apply(create("t"));
    for k in ["app/1", "app/2", "apq", "ap", "b"] {
        h.apply(put("t", k, "v"));
    }
    assert_eq!(h.keys(range_req("t", "app/", "app0")), ["app/1", "app/2"]);
}

#[test]
fn limit_count_only_keys_only_and_more() {
    let h = with_abc();
    let mut req = range_req("t", "\0", "\0");
    req.limit = 2;
    let r = h.range(req.clone());
    assert_eq!((r.kvs.len(), r.count, r.more), (2, 2, true));
    req.limit = 4;
    let r = h.range(req.clone());
    assert_eq!(
        (r.kvs.len(), r.count, r.more),
        (4, 4, false),
        "no key beyond the limit"
    );
    req.limit = 3;
    req.count_only = true;
    let r = h.range(req.clone());
    assert_eq!(
        (r.kvs.len(), r.count, r.more),
        (0, 3, true),
        "count_only counts up to limit"
    );
    req.limit = 0;
    let r = h.range(req.clone());
    assert_eq!((r.count, r.more), (4, false));
    req.count_only = false;
    req.keys_only = true;
    let r = h.range(req);
    assert!(
        r.kvs
            .iter()
            .all(|kv| kv.value.is_empty() && kv.mod_revision > 0)
    );
}

#[test]
fn revision_filters_select_by_mod_and_create() {
    let mut h = with_abc(); // a@2 b@3 c@4 d@5
    h.apply(put("t", "a", "again")); // a: create 2, mod 6
    let mut req = range_req("t", "\0", "\0");
    req.min_mod_revision = 4;
    assert_eq!(h.keys(req.clone()), ["a", "c", "d"]);
    req.max_mod_revision = 5;
    assert_eq!(h.keys(req.clone()), ["c", "d"]);
    let mut req = range_req("t", "\0", "\0");
    req.max_create_revision = 3;
    assert_eq!(h.keys(req.clone()), ["a", "b"]);
    req.min_create_revision = 3;
    assert_eq!(h.keys(req), ["b"]);
}

#[test]
fn large_ranges_are_cut_into_chunks_and_iterate_sees_one_view() {
    let mut h = Harness::new();
    h.apply(create("t"));
    let big = "x".repeat(1024 * 1024); // 1 MiB values: 4 MiB cut after 3 pairs
    for i in 0..10 {
        h.apply(put("t", &format!("k{i:02}"), &big));
    }
    let first = h.range(range_req("t", "\0", "\0"));
    assert!(
        first.more && first.kvs.len() == 3,
        "got {} pairs",
        first.kvs.len()
    );
    let q = TableRange::try_from(&range_req("t", "\0", "\0")).unwrap();
    let view = h.m.view();
    let iter = view.iterate(&q, 0).unwrap();
    // Writes after the iterator started are not seen.
    h.apply(put("t", "k99", "late"));
    let chunks: Vec<_> = iter.collect();
    let total: usize = chunks.iter().map(|c| c.kvs.len()).sum();
    assert_eq!(total, 10);
    assert!(chunks[..chunks.len() - 1].iter().all(|c| c.more));
    assert!(!chunks.last().unwrap().more);
    let keys: Vec<_> = chunks
        .iter()
        .flat_map(|c| c.kvs.iter().map(|kv| kv.key.clone()))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(keys, sorted, "each key exactly once, in order");
}

#[test]
fn iterate_respects_limit_across_chunks() {
    let mut h = Harness::new();
    h.apply(create("t"));
    for i in 0..20 {
        h.apply(put("t", &format!("k{i:02}"), "vvvvvvvvvv"));
    }
    let mut req = range_req("t", "\0", "\0");
    req.limit = 7;
    let q = TableRange::try_from(&req).unwrap();
    let chunks: Vec<_> =
        h.m.view()
            .iterate(&q, 0)
            .unwrap()
            .with_max_bytes(100)
            .collect();
    assert!(chunks.len() > 1);
    assert_eq!(chunks.iter().map(|c| c.kvs.len()).sum::<usize>(), 7);
    assert!(
        chunks.last().unwrap().more,
        "last chunk says another key exists beyond the limit"
    );
}

#[test]
fn delete_range_counts_and_returns_prev_kvs() {
    let mut h = with_abc();
    let r = h.apply(delete("t", "b", "d"));
    let ApplyResponse::DeleteRange(r) = r else {
        panic!("{r:?}")
    };
    assert_eq!(r.deleted, 2);
    assert_eq!(
        r.prev_kvs
            .iter()
            .map(|kv| kv.key.clone())
            .collect::<Vec<_>>(),
        [b("b"), b("c")]
    );
    let r = h.apply(Command_delete_no_flags());
    let ApplyResponse::DeleteRange(r) = r else {
        panic!("{r:?}")
    };
    assert_eq!(r.deleted, 1, "deleted always counts, even without `count`");
    assert!(r.prev_kvs.is_empty());
    assert_eq!(h.keys(range_req("t", "\0", "\0")), ["d"]);
    // Re-creating a deleted key starts a new history.
    let idx = h.next;
    h.apply(put("t", "a", "new"));
    let view = h.m.view();
    let rec = view.table("t").unwrap().get(b"a").unwrap();
    assert_eq!((rec.create_revision(), rec.version()), (idx, 1));
}

#[allow(non_snake_case)]
fn Command_delete_no_flags() -> Event {
    regatta_materializer::Command::try_from(&wire::DeleteRangeRequest {
        table: b("t"),
        key: b("a"),
        range_end: b(""),
        prev_kv: false,
        count: false,
    })
    .unwrap()
    .to_event(0)
}

fn run_txn(h: &mut Harness, compare: Vec<regatta_proto::mvcc::v1::Compare>) -> bool {
    let r = h.apply(txn(wire::TxnRequest {
        table: b("t"),
        compare,
        success: vec![],
        failure: vec![],
    }));
    let ApplyResponse::Txn(r) = r else {
        panic!("{r:?}")
    };
    r.succeeded
}

#[test]
fn txn_compare_semantics() {
    let mut h = with_abc(); // values va vb vc vd
    assert!(run_txn(&mut h, vec![]), "empty compare is true");
    assert!(
        !run_txn(&mut h, vec![cmp("zz", "", CR::NotEqual, Some("x"))]),
        "missing key is false even NOT_EQUAL"
    );
    assert!(
        !run_txn(&mut h, vec![cmp("zz", "", CR::Equal, None)]),
        "existence test on a missing key"
    );
    assert!(
        run_txn(&mut h, vec![cmp("a", "", CR::Equal, None)]),
        "existence test"
    );
    assert!(run_txn(&mut h, vec![cmp("a", "", CR::Equal, Some("va"))]));
    assert!(
        run_txn(&mut h, vec![cmp("a", "", CR::Greater, Some("v"))]),
        "stored value is the left side"
    );
    assert!(run_txn(&mut h, vec![cmp("a", "", CR::Less, Some("vb"))]));
    assert!(run_txn(
        &mut h,
        vec![cmp("a", "", CR::NotEqual, Some("vb"))]
    ));
    assert!(!run_txn(&mut h, vec![cmp("a", "", CR::Equal, Some("vb"))]));
    assert!(
        run_txn(&mut h, vec![cmp("a", "c", CR::Greater, Some("v"))]),
        "every key in range"
    );
    assert!(
        !run_txn(&mut h, vec![cmp("a", "c", CR::Equal, Some("va"))]),
        "one key fails"
    );
    assert!(
        !run_txn(&mut h, vec![cmp("x", "z", CR::Equal, None)]),
        "empty range is false"
    );
    assert!(
        !run_txn(
            &mut h,
            vec![
                cmp("a", "", CR::Equal, None),
                cmp("zz", "", CR::Equal, None)
            ]
        ),
        "conjunction"
    );
}

#[test]
fn txn_ops_run_in_order_and_see_earlier_ops() {
    let mut h = with_abc();
    let rev = h.next;
    let r = h.apply(txn(wire::TxnRequest {
        table: b("t"),
        compare: vec![cmp("a", "", CR::Equal, Some("va"))],
        success: vec![
            op_put("n", "1"),
            op_range("n", ""),
            op_delete("a", "c"),
            op_range("\0", "\0"),
        ],
        failure: vec![op_put("f", "1")],
    }));
    let ApplyResponse::Txn(r) = r else {
        panic!("{r:?}")
    };
    assert!(r.succeeded);
    assert_eq!(r.responses.len(), 4);
    let Some(response_op::Response::ResponseRange(seen)) = &r.responses[1].response else {
        panic!()
    };
    assert_eq!(seen.kvs[0].value, b("1"));
    assert_eq!(
        seen.kvs[0].mod_revision, rev as i64,
        "every write of a txn has the txn's revision"
    );
    let Some(response_op::Response::ResponseDeleteRange(d)) = &r.responses[2].response else {
        panic!()
    };
    assert_eq!(d.deleted, 2);
    let Some(response_op::Response::ResponseRange(all)) = &r.responses[3].response else {
        panic!()
    };
    assert_eq!(
        all.kvs.iter().map(|kv| kv.key.clone()).collect::<Vec<_>>(),
        [b("c"), b("d"), b("n")]
    );
    // Failure branch.
    let r = h.apply(txn(wire::TxnRequest {
        table: b("t"),
        compare: vec![cmp("a", "", CR::Equal, None)],
        success: vec![],
        failure: vec![op_put("f", "1")],
    }));
    let ApplyResponse::Txn(r) = r else {
        panic!("{r:?}")
    };
    assert!(!r.succeeded);
    assert_eq!(h.keys(range_req("t", "f", "")), ["f"]);
}

#[test]
fn read_only_txn_is_served_from_a_view() {
    let h = with_abc();
    let req = wire::TxnRequest {
        table: b("t"),
        compare: vec![cmp("a", "", CR::Equal, Some("va"))],
        success: vec![op_range("a", "c")],
        failure: vec![],
    };
    let t = Txn::try_from(&req).unwrap();
    assert!(t.is_read_only());
    let before = h.m.applied();
    let r =
        h.m.view()
            .read_txn(&t, &mut Budget::for_apply(), 0)
            .unwrap()
            .expect("read-only");
    assert!(r.succeeded);
    assert_eq!(r.responses.len(), 1);
    assert_eq!(h.m.applied(), before, "no event");
    let writing = Txn::try_from(&wire::TxnRequest {
        success: vec![op_put("x", "y")],
        ..req
    })
    .unwrap();
    assert!(
        h.m.view()
            .read_txn(&writing, &mut Budget::for_apply(), 0)
            .unwrap()
            .is_none()
    );
}

#[test]
fn restore_event_replaces_then_appends() {
    let mut h = with_abc();
    let kv = |k: &str| KeyValue {
        key: b(k),
        value: b("r"),
        ..Default::default()
    };
    let r = h.apply(event(Kind::RestoreTable(event::RestoreTable {
        name: "t".into(),
        clear: true,
        kvs: vec![kv("x")],
    })));
    assert_eq!(r, ApplyResponse::TableRestored { stored: 1 });
    h.apply(event(Kind::RestoreTable(event::RestoreTable {
        name: "t".into(),
        clear: false,
        kvs: vec![kv("y")],
    })));
    assert_eq!(h.keys(range_req("t", "\0", "\0")), ["x", "y"]);
}

#[test]
fn unknown_events_stop_apply_naming_the_index() {
    let h = with_abc();
    let applied = h.m.applied();
    let unknown = Event {
        version: regatta_proto::EVENT_VERSION,
        proposed_at_micros: 0,
        kind: None,
    };
    let good = put("t", "z", "1");
    let idx = applied.0 + 2;
    let err =
        h.m.apply_events([(Revision(applied.0 + 1), &good), (Revision(idx), &unknown)])
            .expect_err("must stop");
    assert!(err.is_fatal());
    assert!(
        matches!(err, Error::UnknownEvent { index, .. } if index == idx),
        "{err}"
    );
    assert!(err.to_string().contains(&idx.to_string()));
    assert_eq!(
        h.m.applied(),
        Revision(applied.0 + 1),
        "the prefix before the bad entry is published"
    );
    let newer = Event {
        version: regatta_proto::EVENT_VERSION + 1,
        ..put("t", "z", "2")
    };
    let err =
        h.m.apply_events([(Revision(idx), &newer)])
            .expect_err("must stop");
    assert!(matches!(err, Error::UnknownEvent { index, .. } if index == idx));
    let err =
        h.m.apply_events([(Revision(1), &good)])
            .expect_err("replay");
    assert!(matches!(err, Error::OutOfOrder { .. }));
}

#[test]
fn invalid_event_in_log_is_a_deterministic_rejection() {
    let mut h = with_abc();
    let bad = event(Kind::Put(event::Put {
        table: b("t"),
        key: b(""),
        value: b("v"),
        prev_kv: false,
        ttl_millis: 0,
    }));
    let r = h.apply(bad);
    assert!(
        matches!(
            r,
            ApplyResponse::Rejected(Rejection::InvalidArgument { .. })
        ),
        "{r:?}"
    );
}

fn batch(events: Vec<Event>) -> Event {
    event(Kind::Batch(event::Batch { events }))
}

#[test]
fn a_batch_applies_its_writes_in_order_at_one_revision_each_answered() {
    let mut h = Harness::new();
    h.apply(create("t"));
    let response = h.apply(batch(vec![
        put("t", "a", "1"),
        put("t", "a", "2"),
        delete("t", "a", ""),
        put("t", "b", "3"),
        put("missing", "k", "v"),
    ]));
    let ApplyResponse::Batch(responses) = response else {
        panic!("a batch is answered per write: {response:?}");
    };
    assert_eq!(responses.len(), 5);
    let prev = |r: &ApplyResponse| match r {
        ApplyResponse::Put { prev_kv } => prev_kv.as_ref().map(|kv| kv.value.clone()),
        other => panic!("expected a put response, got {other:?}"),
    };
    assert_eq!(prev(&responses[0]), None);
    assert_eq!(prev(&responses[1]), Some(b("1")), "writes apply in order");
    match &responses[2] {
        ApplyResponse::DeleteRange(d) => assert_eq!(d.deleted, 1),
        other => panic!("expected a delete response, got {other:?}"),
    }
    assert_eq!(
        responses[4],
        ApplyResponse::Rejected(Rejection::TableNotFound {
            table: "missing".into()
        }),
        "one write's failure is its own"
    );
    let got = h.range(range_req("t", "\0", "\0"));
    assert_eq!(got.kvs.len(), 1);
    assert_eq!(got.kvs[0].key, b("b"));
    assert_eq!(
        got.kvs[0].mod_revision, 2,
        "every write of the batch has its revision"
    );
    assert_eq!(h.m.applied(), Revision(2));
}

#[test]
fn a_batch_holding_anything_but_data_writes_stops_apply() {
    let mut h = Harness::new();
    h.apply(create("t"));
    let bad = batch(vec![put("t", "a", "1"), create("u")]);
    let error = h.m.apply_events([(Revision(2), &bad)]);
    assert!(
        matches!(error, Err(Error::UnknownEvent { index: 2, .. })),
        "{error:?}"
    );
    assert_eq!(h.m.applied(), Revision(1), "nothing of the entry applied");
}
