//! Transactions: compare evaluation and op execution, as plain functions over a [`Table`].
//!
//! Semantics (API.md): `compare` is a conjunction (empty = true). Without `range_end` the
//! key is looked up: missing makes the compare false (even NOT_EQUAL); with a value the
//! stored value (left) is compared bytewise with it; without a value it is an existence
//! test. With `range_end`: false for an empty range, else every key must satisfy it. Then
//! the chosen branch runs in order on one table copy: later ops see earlier ones, and the
//! caller publishes the result atomically.

use std::cmp::Ordering;

use regatta_proto::mvcc::v1::{ResponseOp, response_op};
use regatta_proto::regatta::v1::TxnResponse;

use crate::Revision;
use crate::range::range;
use crate::request::{Compare, CompareResult, DeleteOp, KeyRange, PutOp, Txn, TxnOp};
use crate::table::{Record, Table};

/// `true` when one record satisfies the compare.
fn record_satisfies(c: &Compare, record: &Record) -> bool {
    let Some(value) = &c.value else {
        return true; // existence test
    };
    let ord = record.value().cmp(value.as_ref());
    match c.result {
        CompareResult::Equal => ord == Ordering::Equal,
        CompareResult::Greater => ord == Ordering::Greater,
        CompareResult::Less => ord == Ordering::Less,
        CompareResult::NotEqual => ord != Ordering::Equal,
    }
}

/// Evaluates one compare against `table`.
pub fn compare(table: &Table, c: &Compare) -> bool {
    match &c.range {
        KeyRange::Key(k) => table.get(k).is_some_and(|r| record_satisfies(c, r)),
        range @ KeyRange::Span { .. } => {
            let mut any = false;
            for r in table.scan(range, None) {
                any = true;
                if !record_satisfies(c, r) {
                    return false;
                }
            }
            any
        }
    }
}

/// Evaluates the conjunction of compares.
pub fn compares_hold(table: &Table, compares: &[Compare]) -> bool {
    compares.iter().all(|c| compare(table, c))
}

/// Applies a put at `rev`; the response carries the previous pair when asked.
pub fn put(table: &mut Table, op: &PutOp, rev: Revision) -> response_op::Put {
    let prev = table.put(&op.key, &op.value, rev);
    response_op::Put {
        prev_kv: prev
            .filter(|_| op.prev_kv)
            .map(|r| r.to_kv(op.key.clone(), false)),
    }
}

/// Applies a delete; `deleted` always carries the number of deleted keys.
pub fn delete(table: &mut Table, op: &DeleteOp) -> response_op::DeleteRange {
    let gone = table.delete(&op.range);
    let deleted = gone.len() as i64;
    let prev_kvs = if op.prev_kv {
        gone.iter().map(|r| r.kv(false)).collect()
    } else {
        Vec::new()
    };
    response_op::DeleteRange { deleted, prev_kvs }
}

fn range_op(table: &Table, q: &crate::request::RangeQuery) -> response_op::Range {
    let r = range(table, q);
    response_op::Range {
        kvs: r.kvs,
        more: r.more,
        count: r.count,
    }
}

/// Runs a transaction on `table` at revision `rev` (writes mutate `table`).
pub fn run(table: &mut Table, txn: &Txn, rev: Revision) -> TxnResponse {
    let succeeded = compares_hold(table, &txn.compare);
    let ops = if succeeded {
        &txn.success
    } else {
        &txn.failure
    };
    let responses = ops
        .iter()
        .map(|op| {
            let response = match op {
                TxnOp::Range(q) => response_op::Response::ResponseRange(range_op(table, q)),
                TxnOp::Put(p) => response_op::Response::ResponsePut(put(table, p, rev)),
                TxnOp::Delete(d) => response_op::Response::ResponseDeleteRange(delete(table, d)),
            };
            ResponseOp {
                response: Some(response),
            }
        })
        .collect();
    TxnResponse {
        header: None,
        succeeded,
        responses,
    }
}

/// Evaluates a read-only transaction against a view, without an event. Returns `None` if
/// the transaction writes (it must go through the log).
pub fn read_only(table: &Table, txn: &Txn) -> Option<TxnResponse> {
    if !txn.is_read_only() {
        return None;
    }
    let succeeded = compares_hold(table, &txn.compare);
    let ops = if succeeded {
        &txn.success
    } else {
        &txn.failure
    };
    let responses = ops
        .iter()
        .filter_map(|op| match op {
            TxnOp::Range(q) => Some(ResponseOp {
                response: Some(response_op::Response::ResponseRange(range_op(table, q))),
            }),
            _ => None,
        })
        .collect();
    Some(TxnResponse {
        header: None,
        succeeded,
        responses,
    })
}
