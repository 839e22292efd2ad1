//! Transactions: compare evaluation and op execution, as plain functions over a [`Table`].
//!
//! Semantics (API.md): `compare` is a conjunction (empty = true). Without `range_end` the
//! key is looked up: missing makes the compare false (even NOT_EQUAL); with a value the
//! stored value (left) is compared bytewise with it; without a value it is an existence
//! test. With `range_end`: false for an empty range, else every key must satisfy it. Then
//! the chosen branch runs in order on one table copy: later ops see earlier ones, and the
//! caller publishes the result atomically.
//!
//! Cost (see [`Budget`]): the whole answer of a transaction — its range ops' pairs and the
//! previous pairs its puts and deletes ask for — is at most
//! [`MAX_TXN_RESPONSE_BYTES`](crate::limits::MAX_TXN_RESPONSE_BYTES), counted while it is
//! built. A range op is cut where the budget ends (with `more`, as `Range` cuts at its
//! message size); one that cannot return its first pair, or a previous pair that does not
//! fit, fails the transaction with nothing of it applied. Compares and range ops step
//! through at most [`MAX_TXN_SCANNED_RECORDS`](crate::limits::MAX_TXN_SCANNED_RECORDS).

use std::cmp::Ordering;

use regatta_proto::mvcc::v1::{ResponseOp, response_op};
use regatta_proto::regatta::v1::TxnResponse;

use crate::budget::{Budget, response_limit};
use crate::changes::Recorder;
use crate::limits::KV_OVERHEAD_BYTES;
use crate::range::{FirstPair, chunk_of};
use crate::request::{Compare, CompareResult, DeleteOp, KeyRange, PutOp, Txn, TxnOp};
use crate::table::{Record, Table, WriteTime};
use crate::{Result, Revision};

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

/// Evaluates one compare against `table` at `now_ms` (an expired key is absent); a compare
/// over a range steps through its records on `budget`.
pub fn compare(table: &Table, c: &Compare, budget: &mut Budget<'_>, now_ms: u64) -> Result<bool> {
    match &c.range {
        KeyRange::Key(k) => Ok(table
            .get_at(k, now_ms)
            .is_some_and(|r| record_satisfies(c, r))),
        range @ KeyRange::Span { .. } => {
            let mut any = false;
            let mut all = true;
            for r in budget.metered(table.scan(range, None)) {
                if !r.live_at(now_ms) {
                    continue;
                }
                any = true;
                if !record_satisfies(c, r) {
                    all = false;
                    break;
                }
            }
            budget.check()?;
            Ok(any && all)
        }
    }
}

/// Evaluates the conjunction of compares at `now_ms`.
pub fn compares_hold(
    table: &Table,
    compares: &[Compare],
    budget: &mut Budget<'_>,
    now_ms: u64,
) -> Result<bool> {
    for c in compares {
        if !compare(table, c, budget, now_ms)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Bytes a pair counts against a response limit (as a range chunk counts it).
fn pair_bytes(record: &Record) -> usize {
    let (key, value) = record.key_and_value();
    key.len() + value.len() + KV_OVERHEAD_BYTES
}

/// Applies a put at `rev`, from an event of time `now_ms`; the response carries the
/// previous (live) pair when asked. `changes` records the write when on.
pub fn put(
    table: &mut Table,
    op: &PutOp,
    rev: Revision,
    changes: &mut Recorder,
    now_ms: u64,
) -> response_op::Put {
    let time = WriteTime {
        now_ms,
        expires_at: op.expires_at(now_ms),
    };
    let prev = if changes.is_on() {
        let (written, prev) = table.put_returning(&op.key, &op.value, rev, time);
        changes.put(rev, written, prev.clone());
        prev
    } else {
        table.put(&op.key, &op.value, rev, time)
    };
    response_op::Put {
        prev_kv: prev
            .filter(|_| op.prev_kv)
            .map(|r| r.to_kv(op.key.clone(), false)),
    }
}

/// Applies a delete, from an event of time `now_ms`; `deleted` always carries the number of
/// deleted keys. Keys expired at `now_ms` are removed too (and told to watchers) but not
/// counted nor answered: they were already absent. With `prev_kv` the deleted pairs are
/// charged to `budget` first: a delete whose answer would not fit fails before it deletes
/// anything.
pub fn delete(
    table: &mut Table,
    op: &DeleteOp,
    rev: Revision,
    budget: &mut Budget<'_>,
    changes: &mut Recorder,
    now_ms: u64,
) -> Result<response_op::DeleteRange> {
    if !op.prev_kv {
        let doomed = table.delete(&op.range);
        let deleted = doomed.iter().filter(|r| r.live_at(now_ms)).count() as i64;
        for r in doomed {
            changes.delete(rev, r);
        }
        return Ok(response_op::DeleteRange {
            deleted,
            prev_kvs: Vec::new(),
        });
    }
    // One scan both sizes the answer and collects what is deleted; nothing is removed
    // unless the whole answer fits.
    let left = budget.response_left();
    let mut bytes = 0usize;
    let mut doomed = Vec::new();
    for r in table.scan(&op.range, None) {
        if r.live_at(now_ms) {
            bytes += pair_bytes(r);
            if bytes > left {
                return Err(response_limit());
            }
        }
        doomed.push(r.clone());
    }
    budget.respond(bytes)?;
    table.remove_scanned(&doomed);
    let live = || doomed.iter().filter(|r| r.live_at(now_ms));
    let deleted = live().count() as i64;
    let prev_kvs = live().map(|r| r.kv(false)).collect();
    for r in doomed {
        changes.delete(rev, r);
    }
    Ok(response_op::DeleteRange { deleted, prev_kvs })
}

/// A range op of a transaction: cut (with `more`) where the transaction's response budget
/// ends, as `Range` cuts at its message size; a range that cannot return even its first
/// pair fails the transaction.
fn range_op(
    table: &Table,
    q: &crate::request::RangeQuery,
    budget: &mut Budget<'_>,
    now_ms: u64,
) -> Result<response_op::Range> {
    let left = budget.response_left();
    let chunk = chunk_of(
        budget
            .metered(table.scan(&q.range, None))
            .filter(|r| r.live_at(now_ms)),
        q,
        q.limit,
        left,
        FirstPair::WithinLimit,
    );
    budget.check()?;
    if chunk.response.more && chunk.response.kvs.is_empty() && !q.count_only {
        return Err(response_limit());
    }
    budget.respond(chunk.bytes)?;
    let r = chunk.response;
    Ok(response_op::Range {
        kvs: r.kvs,
        more: r.more,
        count: r.count,
    })
}

/// Runs `ops` in order on `table`: later ops see earlier ones.
fn run_ops(
    table: &mut Table,
    ops: &[TxnOp],
    rev: Revision,
    budget: &mut Budget<'_>,
    changes: &mut Recorder,
    now_ms: u64,
) -> Result<Vec<ResponseOp>> {
    ops.iter()
        .map(|op| {
            let response = match op {
                TxnOp::Range(q) => {
                    response_op::Response::ResponseRange(range_op(table, q, budget, now_ms)?)
                }
                TxnOp::Put(p) => {
                    if p.prev_kv
                        && let Some(prev) = table.get_at(&p.key, now_ms)
                    {
                        budget.respond(pair_bytes(prev))?;
                    }
                    response_op::Response::ResponsePut(put(table, p, rev, changes, now_ms))
                }
                TxnOp::Delete(d) => response_op::Response::ResponseDeleteRange(delete(
                    table, d, rev, budget, changes, now_ms,
                )?),
            };
            Ok(ResponseOp {
                response: Some(response),
            })
        })
        .collect()
}

/// `true` when an op that can fail on its budget (a range, or a put or delete answering
/// previous pairs) comes after an op that writes: the branch then runs on a copy, so that
/// a failure leaves no partial effect.
fn may_fail_after_a_write(ops: &[TxnOp]) -> bool {
    let mut written = false;
    for op in ops {
        let (writes, may_fail) = match op {
            TxnOp::Range(_) => (false, true),
            TxnOp::Put(p) => (true, p.prev_kv),
            TxnOp::Delete(d) => (true, d.prev_kv),
        };
        if written && may_fail {
            return true;
        }
        written |= writes;
    }
    false
}

/// Runs a transaction on `table` at revision `rev`, from an event of time `now_ms` (writes
/// mutate `table`), within the limits of [`Budget::for_apply`]. On an error nothing of it
/// took effect (and nothing of it is left in `changes`).
pub fn run(
    table: &mut Table,
    txn: &Txn,
    rev: Revision,
    changes: &mut Recorder,
    now_ms: u64,
) -> Result<TxnResponse> {
    let mark = changes.mark();
    let result = run_branch(table, txn, rev, changes, now_ms);
    if result.is_err() {
        changes.rollback(mark);
    }
    result
}

fn run_branch(
    table: &mut Table,
    txn: &Txn,
    rev: Revision,
    changes: &mut Recorder,
    now_ms: u64,
) -> Result<TxnResponse> {
    let mut budget = Budget::for_apply();
    let succeeded = compares_hold(table, &txn.compare, &mut budget, now_ms)?;
    let ops = if succeeded {
        &txn.success
    } else {
        &txn.failure
    };
    let responses = if may_fail_after_a_write(ops) {
        // A structural copy: the branch's writes copy the paths they touch, and the copy
        // replaces the table only once every op succeeded.
        let mut scratch = table.clone();
        let responses = run_ops(&mut scratch, ops, rev, &mut budget, changes, now_ms)?;
        *table = scratch;
        responses
    } else {
        run_ops(table, ops, rev, &mut budget, changes, now_ms)?
    };
    Ok(TxnResponse {
        header: None,
        succeeded,
        responses,
    })
}

/// Evaluates a read-only transaction against a view at `now_ms` (the reader's clock),
/// without an event, within `budget`. Returns `Ok(None)` if the transaction writes (it must
/// go through the log).
pub fn read_only(
    table: &Table,
    txn: &Txn,
    budget: &mut Budget<'_>,
    now_ms: u64,
) -> Result<Option<TxnResponse>> {
    if !txn.is_read_only() {
        return Ok(None);
    }
    let succeeded = compares_hold(table, &txn.compare, budget, now_ms)?;
    let ops = if succeeded {
        &txn.success
    } else {
        &txn.failure
    };
    let responses = ops
        .iter()
        .filter_map(|op| match op {
            TxnOp::Range(q) => Some(range_op(table, q, budget, now_ms).map(|r| ResponseOp {
                response: Some(response_op::Response::ResponseRange(r)),
            })),
            _ => None,
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(TxnResponse {
        header: None,
        succeeded,
        responses,
    }))
}
