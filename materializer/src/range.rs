//! Range evaluation: limit, keys_only, count_only, revision filters and ~4 MiB chunking,
//! as plain functions over a [`Table`]; [`RangeIter`] yields every chunk of one view.
//!
//! `count` semantics (API.md): the number of pairs in this response; with `count_only`, the
//! number of matching pairs in the range, up to `limit`. `more` is true when a matching pair
//! exists beyond what was returned (because of `limit` or because the chunk was cut).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use regatta_proto::mvcc::v1::KeyValue;

use crate::key::Key;
use regatta_proto::regatta::v1::RangeResponse;

use crate::limits::{KV_OVERHEAD_BYTES, MAX_RESPONSE_BYTES};
use crate::request::RangeQuery;
use crate::state::State;
use crate::table::{Record, Table, wire_revision};
use crate::{Error, Result};

/// One response's worth of a range.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RangeChunk {
    pub response: RangeResponse,
    /// The last key included, to continue after it.
    pub last_key: Option<Key>,
    /// What the chunk's pairs count against a byte limit (keys, values unless `keys_only`,
    /// and [`KV_OVERHEAD_BYTES`] per pair).
    pub bytes: usize,
}

/// Evaluates `q` on `table`, continuing after `after`, with `limit` replaced by
/// `remaining` (the part of the limit not used by earlier chunks). Cuts the response before
/// its pairs reach `max_bytes` (at least one pair is always returned).
pub fn range_chunk(
    table: &Table,
    q: &RangeQuery,
    after: Option<&[u8]>,
    remaining: Option<u64>,
    max_bytes: usize,
    now_ms: u64,
) -> RangeChunk {
    chunk_of(
        table.scan_at(&q.range, after, now_ms),
        q,
        remaining,
        max_bytes,
        FirstPair::Always,
    )
}

/// Whether a chunk takes its first pair even when it alone is over the byte limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FirstPair {
    /// Yes: a `Range` or `IterateRange` chunk always makes progress (a pair is at most a
    /// key and a value, both bounded).
    Always,
    /// No: the chunk may come back empty with `more` set (a range op of a transaction whose
    /// response budget is spent; the transaction then fails, see [`crate::txn`]).
    WithinLimit,
}

/// Evaluates `q` over `records` (the range's records in key order, from any scan): the
/// filters, `limit` (`remaining`), `keys_only`, `count_only`, and the cut at `max_bytes`.
pub(crate) fn chunk_of<'t>(
    records: impl Iterator<Item = &'t Record>,
    q: &RangeQuery,
    remaining: Option<u64>,
    max_bytes: usize,
    first: FirstPair,
) -> RangeChunk {
    let mut matching = records.filter(|r| {
        q.filter.is_empty() || {
            let revisions = r.revisions();
            q.filter.accepts(revisions.create, revisions.modified)
        }
    });
    let mut out = RangeChunk::default();
    if q.count_only {
        let mut count = 0u64;
        for _ in matching.by_ref() {
            count += 1;
            if remaining.is_some_and(|l| count >= l) {
                break;
            }
        }
        out.response.count = i64::try_from(count).unwrap_or(i64::MAX);
        out.response.more = remaining.is_some_and(|l| count >= l) && matching.next().is_some();
        out.bytes = KV_OVERHEAD_BYTES;
        return out;
    }
    let mut size = 0usize;
    let mut picked: Vec<Picked<'_>> = Vec::new();
    for record in matching.by_ref() {
        if remaining.is_some_and(|l| picked.len() as u64 >= l) {
            out.response.more = true;
            break;
        }
        let (key, value) = record.key_and_value();
        let len = key.len() + if q.keys_only { 0 } else { value.len() } + KV_OVERHEAD_BYTES;
        let may_overflow = picked.is_empty() && first == FirstPair::Always;
        if !may_overflow && size + len > max_bytes {
            out.response.more = true;
            break;
        }
        size += len;
        picked.push(Picked { key, value, record });
    }
    out.bytes = size;
    out.last_key = picked.last().map(|p| Key::from_slice(p.key));
    out.response.kvs = to_kvs(&picked, q.keys_only);
    out.response.count = out.response.kvs.len() as i64;
    out
}

/// Values up to this size are copied into the chunk's one shared buffer; larger ones are
/// handed out zero-copy from their records.
const COPY_VALUES_UP_TO: usize = 4096;

/// A record taken into a chunk, with its key and value decoded once.
struct Picked<'a> {
    key: &'a [u8],
    value: &'a [u8],
    record: &'a Record,
}

/// Builds the wire pairs of a chunk with one allocation for all keys and small values
/// (each pair's `Bytes` are slices of it), instead of one or two allocations per pair.
fn to_kvs(picked: &[Picked<'_>], keys_only: bool) -> Vec<KeyValue> {
    let copied = |p: &Picked<'_>| !keys_only && p.value.len() <= COPY_VALUES_UP_TO;
    let total: usize = picked
        .iter()
        .map(|p| p.key.len() + if copied(p) { p.value.len() } else { 0 })
        .sum();
    let mut buf = BytesMut::with_capacity(total);
    for p in picked {
        buf.extend_from_slice(p.key);
        if copied(p) {
            buf.extend_from_slice(p.value);
        }
    }
    let buf = buf.freeze();
    let mut at = 0;
    let mut take = |len: usize| {
        let b = buf.slice(at..at + len);
        at += len;
        b
    };
    picked
        .iter()
        .map(|p| {
            let key = take(p.key.len());
            let value = if keys_only {
                Bytes::new()
            } else if copied(p) {
                take(p.value.len())
            } else {
                p.record.value_bytes()
            };
            let revisions = p.record.revisions();
            KeyValue {
                key,
                create_revision: wire_revision(revisions.create),
                mod_revision: wire_revision(revisions.modified),
                value,
                expires_at_millis: wire_revision(p.record.expires_at()),
            }
        })
        .collect()
}

/// The `Range` RPC: the first chunk of `q` on `table`.
pub fn range(table: &Table, q: &RangeQuery, now_ms: u64) -> RangeResponse {
    range_chunk(table, q, None, q.limit, MAX_RESPONSE_BYTES, now_ms).response
}

/// Every chunk of a range, all from one consistent view (`IterateRange`). `more` is set on
/// all chunks but the last. Holding the iterator holds the view, never a lock.
#[derive(Debug)]
pub struct RangeIter {
    view: Arc<State>,
    table: String,
    query: RangeQuery,
    after: Option<Key>,
    returned: u64,
    max_bytes: usize,
    done: bool,
    /// The reader's clock: keys expired at it are skipped (the same instant for every
    /// chunk, as the view is).
    now_ms: u64,
}

impl RangeIter {
    /// Iterates `query` over `table` in `view` at `now_ms` (the reader's clock). Fails with
    /// `TableNotFound` up front.
    pub fn new(view: Arc<State>, table: &str, query: RangeQuery, now_ms: u64) -> Result<Self> {
        if view.table(table).is_none() {
            return Err(Error::TableNotFound {
                table: table.into(),
            });
        }
        Ok(Self {
            view,
            table: table.into(),
            query,
            after: None,
            returned: 0,
            max_bytes: MAX_RESPONSE_BYTES,
            done: false,
            now_ms,
        })
    }

    /// Overrides the chunk size (tests, or a smaller configured message limit).
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// The view every chunk is read from.
    pub fn view(&self) -> &Arc<State> {
        &self.view
    }
}

impl Iterator for RangeIter {
    type Item = RangeResponse;

    fn next(&mut self) -> Option<RangeResponse> {
        if self.done {
            return None;
        }
        let table = self.view.table(&self.table)?;
        let remaining = self.query.limit.map(|l| l.saturating_sub(self.returned));
        let chunk = range_chunk(
            table,
            &self.query,
            self.after.as_ref().map(Key::as_slice),
            remaining,
            self.max_bytes,
            self.now_ms,
        );
        self.returned += chunk.response.kvs.len() as u64;
        // Only a size cut continues; a limit reached ends the iteration (its `more` tells
        // the client another key exists, as in `Range`).
        let cut_by_size = chunk.response.more
            && !self.query.count_only
            && remaining.is_none_or(|l| (chunk.response.kvs.len() as u64) < l);
        if cut_by_size {
            self.after = chunk.last_key;
        } else {
            self.done = true;
        }
        Some(chunk.response)
    }
}
