//! What evaluating one request may cost: a Txn's whole answer, a DeleteRange's previous
//! pairs and the records a Txn steps through are bounded while the work is done; a write
//! over a limit is rejected at apply with nothing of it applied, the same on every replica.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use common::*;
use regatta_materializer::limits::{MAX_TXN_RESPONSE_BYTES, MAX_TXN_SCANNED_RECORDS};
use regatta_materializer::request::Txn;
use regatta_materializer::{ApplyResponse, Budget, Command, Error, Rejection};
use regatta_proto::mvcc::v1::{RequestOp, request_op, response_op};
use regatta_proto::regatta::v1 as wire;

/// `n` keys `k000000`.. with `value_len`-byte values in table `t`, one put entry each.
fn table_of(n: usize, value_len: usize) -> Harness {
    let mut h = Harness::new();
    h.apply(create("t"));
    let value = bytes::Bytes::from("v".repeat(value_len));
    let kvs = (0..n).map(|i| (bytes::Bytes::from(format!("k{i:06}")), value.clone()));
    for restore in regatta_materializer::command::restore_events("t", kvs, 64 << 20) {
        h.apply(restore.to_event(0));
    }
    assert_eq!(h.m.view().table("t").unwrap().len(), n);
    h
}

fn assert_rejected_for_limit(r: &ApplyResponse, unit: &str) {
    let ApplyResponse::Rejected(Rejection::InvalidArgument { reason }) = r else {
        panic!("expected a rejection naming a limit, got {r:?}")
    };
    assert!(
        reason.contains("limit") && reason.contains(unit),
        "the reason names the limit: {reason}"
    );
}

/// The probe's request: one put, then thousands of range ops over the same keys. Before,
/// every replica built the whole answer (gigabytes) while applying it.
#[test]
fn a_txn_whose_answer_would_pass_the_limit_is_rejected_with_nothing_applied() {
    let mut h = table_of(2_000, 100);
    let before = h.m.view();
    let mut success = vec![op_put("bomb", "applied")];
    success.extend(std::iter::repeat_n(op_range("k", "l"), 5_000));
    let r = h.apply(txn(wire::TxnRequest {
        table: b("t"),
        compare: vec![],
        success,
        failure: vec![],
    }));
    assert_rejected_for_limit(&r, "bytes");
    assert!(
        h.keys(range_req("t", "bomb", "")).is_empty(),
        "the put did not take effect"
    );
    let after = h.m.view();
    assert_eq!(
        after.table("t").unwrap().len(),
        before.table("t").unwrap().len()
    );
    // The revision still advances: the entry was applied, as a rejection.
    assert_eq!(after.revision().0, before.revision().0 + 1);
}

/// Range ops share the budget: each is cut where it ends (with `more`), as Range cuts at
/// its message size, and the transaction succeeds while every range returns something.
#[test]
fn range_ops_are_cut_where_the_budget_ends() {
    // 40 keys of 100 KiB: 4 MB in all, just under the 4 MiB budget for one op.
    let mut h = table_of(40, 100 * 1024);
    let r = h.apply(txn(wire::TxnRequest {
        table: b("t"),
        compare: vec![],
        success: vec![op_range("k", "l"), op_range("k", "l")],
        failure: vec![],
    }));
    assert_rejected_for_limit(&r, "bytes");
    let r = h.apply(txn(wire::TxnRequest {
        table: b("t"),
        compare: vec![],
        success: vec![op_range("k000000", "k000010"), op_range("k", "l")],
        failure: vec![],
    }));
    let ApplyResponse::Txn(r) = r else {
        panic!("{r:?}")
    };
    let ranges: Vec<&response_op::Range> = r
        .responses
        .iter()
        .map(|op| match &op.response {
            Some(response_op::Response::ResponseRange(r)) => r,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ranges[0].kvs.len(), 10);
    assert!(!ranges[0].more);
    assert!(ranges[1].more, "the second range is cut");
    assert!(!ranges[1].kvs.is_empty());
    let total: usize = ranges
        .iter()
        .flat_map(|r| &r.kvs)
        .map(|kv| kv.key.len() + kv.value.len())
        .sum();
    assert!(total <= MAX_TXN_RESPONSE_BYTES, "{total} bytes answered");
}

/// Previous pairs count too, and a failure after a write leaves the write undone.
#[test]
fn a_previous_pair_that_does_not_fit_undoes_the_writes_before_it() {
    let big = "x".repeat(2 * 1024 * 1024 - 64);
    let mut h = Harness::new();
    h.apply(create("t"));
    for k in ["a", "b", "c"] {
        h.apply(put("t", k, &big));
    }
    // Three 2 MiB previous pairs: the third does not fit.
    let r = h.apply(txn(wire::TxnRequest {
        table: b("t"),
        compare: vec![],
        success: vec![
            op_put("new", "1"),
            op_put("a", "small"),
            op_put("b", "small"),
            op_put("c", "small"),
        ],
        failure: vec![],
    }));
    assert_rejected_for_limit(&r, "bytes");
    assert!(h.keys(range_req("t", "new", "")).is_empty());
    let view = h.m.view();
    let t = view.table("t").unwrap();
    assert_eq!(t.get(b"a").unwrap().value().len(), big.len(), "a unchanged");
    assert_eq!(t.get(b"b").unwrap().value().len(), big.len(), "b unchanged");
}

/// A DeleteRange asking for its previous pairs over more than the limit deletes nothing;
/// without `prev_kv` the same delete goes through.
#[test]
fn a_delete_whose_previous_pairs_would_pass_the_limit_deletes_nothing() {
    let mut h = table_of(100, 64 * 1024);
    let delete_all = |prev_kv| {
        Command::try_from(&wire::DeleteRangeRequest {
            table: b("t"),
            key: b("k"),
            range_end: b("l"),
            prev_kv,
            count: false,
        })
        .unwrap()
        .to_event(0)
    };
    let r = h.apply(delete_all(true));
    assert_rejected_for_limit(&r, "bytes");
    assert_eq!(h.m.view().table("t").unwrap().len(), 100);
    let r = h.apply(delete_all(false));
    let ApplyResponse::DeleteRange(d) = r else {
        panic!("{r:?}")
    };
    assert_eq!(d.deleted, 100);
    assert_eq!(h.m.view().table("t").unwrap().len(), 0);
}

fn count_only(k: &str, end: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(request_op::Range {
            key: b(k),
            range_end: b(end),
            count_only: true,
            ..Default::default()
        })),
    }
}

/// Counting returns a few bytes but steps through every record: the records stepped
/// through are bounded too.
#[test]
fn the_records_a_txn_steps_through_are_bounded() {
    let n = 300_000usize;
    let mut h = table_of(n, 1);
    let ops = (MAX_TXN_SCANNED_RECORDS as usize).div_ceil(n) + 1;
    let r = h.apply(txn(wire::TxnRequest {
        table: b("t"),
        compare: vec![],
        success: std::iter::repeat_n(count_only("k", "l"), ops).collect(),
        failure: vec![],
    }));
    assert_rejected_for_limit(&r, "records");
    // Within the limit, counting works.
    let r = h.apply(txn(wire::TxnRequest {
        table: b("t"),
        compare: vec![],
        success: vec![count_only("k", "l")],
        failure: vec![],
    }));
    let ApplyResponse::Txn(r) = r else {
        panic!("{r:?}")
    };
    let Some(response_op::Response::ResponseRange(c)) = &r.responses[0].response else {
        panic!()
    };
    assert_eq!(c.count, n as i64);
}

/// A read-only Txn stops once its caller is gone or its deadline passed.
#[test]
fn a_read_only_txn_stops_when_its_caller_gives_up() {
    let h = table_of(20_000, 1);
    let t = Txn::try_from(&wire::TxnRequest {
        table: b("t"),
        compare: vec![],
        success: std::iter::repeat_n(count_only("k", "l"), 100).collect(),
        failure: vec![],
    })
    .unwrap();
    let view = h.m.view();
    let calm = AtomicBool::new(false);
    let far = Instant::now() + Duration::from_secs(3600);
    let answer = view
        .read_txn(&t, &mut Budget::for_read(far, &calm), 0)
        .unwrap()
        .expect("read-only");
    assert_eq!(answer.responses.len(), 100);
    let gone = AtomicBool::new(true);
    let e = view
        .read_txn(&t, &mut Budget::for_read(far, &gone), 0)
        .expect_err("the caller is gone");
    assert!(matches!(e, Error::Cancelled { .. }), "{e}");
    let e = view
        .read_txn(&t, &mut Budget::for_read(Instant::now(), &calm), 0)
        .expect_err("the deadline passed");
    assert!(e.to_string().contains("deadline"), "{e}");
}

/// The ops limit is the API's: a request over it is refused before it is proposed, with a
/// message naming the flag.
#[test]
fn too_many_ops_are_refused_naming_the_flag() {
    let t = Txn::try_from(&wire::TxnRequest {
        table: b("t"),
        compare: vec![],
        success: std::iter::repeat_n(op_put("a", "1"), 11).collect(),
        failure: vec![],
    })
    .unwrap();
    t.check_ops(11).expect("at the limit");
    let e = t.check_ops(10).expect_err("over");
    assert!(e.to_string().contains("--api.max-txn-ops"), "{e}");
}
