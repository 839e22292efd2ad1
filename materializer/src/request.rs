//! Strict domain types for reads and writes, converted once from the wire with `TryFrom`.
//!
//! The API layer calls these conversions once, where a request enters the node; apply
//! builds the same types from a log event's fields (`Put::new`, `DeleteRange::new`,
//! `txn_from_parts`) with the same checks, so an invalid event in the log is rejected
//! identically on every replica.
//! Validation order follows API.md: `limit < 0` and `keys_only && count_only` first, then
//! empty table or key, then sizes. Too-large keys and values are InvalidArgument.

use bytes::Bytes;
use regatta_proto::mvcc::v1::{Compare as WireCompare, RequestOp, compare, request_op};
use regatta_proto::regatta::v1 as wire;

use crate::limits::{MAX_KEY_BYTES, MAX_TTL_MILLIS, MAX_VALUE_BYTES};
use crate::{Error, Result};

/// Which keys a request addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRange {
    /// Exactly one key (`range_end` empty).
    Key(Bytes),
    /// Keys in `[start, end)`; `end == None` means every key ≥ `start` (`range_end = "\0"`).
    /// The whole table is `start = "\0"`, `end = None`.
    Span { start: Bytes, end: Option<Bytes> },
}

impl KeyRange {
    /// Builds a range from the wire's `key` / `range_end` pair, validating both.
    pub fn from_wire(key: &Bytes, range_end: &Bytes) -> Result<Self> {
        check_key(key)?;
        if range_end.is_empty() {
            return Ok(Self::Key(key.clone()));
        }
        if range_end.len() > MAX_KEY_BYTES {
            return Err(Error::KeyTooLarge {
                len: range_end.len(),
                limit: MAX_KEY_BYTES,
            });
        }
        let end = (range_end.as_ref() != b"\0").then(|| range_end.clone());
        Ok(Self::Span {
            start: key.clone(),
            end,
        })
    }

    /// Back to the wire's `(key, range_end)` pair.
    pub fn to_wire(&self) -> (Bytes, Bytes) {
        match self {
            Self::Key(k) => (k.clone(), Bytes::new()),
            Self::Span { start, end } => (
                start.clone(),
                end.clone().unwrap_or_else(|| Bytes::from_static(b"\0")),
            ),
        }
    }

    /// `true` when `key` lies in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        match self {
            Self::Key(k) => k.as_ref() == key,
            Self::Span { start, end } => {
                key >= start.as_ref() && end.as_ref().is_none_or(|e| key < e.as_ref())
            }
        }
    }
}

/// Checks a key: non-empty and at most [`MAX_KEY_BYTES`].
pub fn check_key(key: &[u8]) -> Result<()> {
    if key.is_empty() {
        return Err(Error::invalid("key must not be empty"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::KeyTooLarge {
            len: key.len(),
            limit: MAX_KEY_BYTES,
        });
    }
    Ok(())
}

/// Checks a value: at most [`MAX_VALUE_BYTES`].
pub fn check_value(value: &[u8]) -> Result<()> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(Error::ValueTooLarge {
            len: value.len(),
            limit: MAX_VALUE_BYTES,
        });
    }
    Ok(())
}

/// Checks a put's time to live from the wire (`ttl_millis`): 0 (none) up to
/// [`MAX_TTL_MILLIS`].
pub fn check_ttl(ttl_millis: i64) -> Result<u64> {
    match u64::try_from(ttl_millis) {
        Err(_) => Err(Error::invalid("ttl_millis must not be negative")),
        Ok(ttl) if ttl > MAX_TTL_MILLIS => Err(Error::invalid(format!(
            "ttl_millis is {ttl}, more than the {MAX_TTL_MILLIS} (ten years) allowed"
        ))),
        Ok(ttl) => Ok(ttl),
    }
}

/// Converts a wire table name (bytes) to a table name: non-empty UTF-8.
pub fn table_name(table: &[u8]) -> Result<String> {
    table_str(table).map(str::to_owned)
}

/// [`table_name`] without the copy.
pub fn table_str(table: &[u8]) -> Result<&str> {
    if table.is_empty() {
        return Err(Error::invalid("table must not be empty"));
    }
    std::str::from_utf8(table).map_err(|_| Error::invalid("table name must be UTF-8"))
}

/// Inclusive bounds on mod and create revisions; `0` on the wire means "no bound".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RevisionFilter {
    pub min_mod: Option<u64>,
    pub max_mod: Option<u64>,
    pub min_create: Option<u64>,
    pub max_create: Option<u64>,
}

impl RevisionFilter {
    /// `true` when no bound is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// `true` when a pair with these revisions passes the filter.
    pub fn accepts(&self, create: u64, modr: u64) -> bool {
        self.min_mod.is_none_or(|m| modr >= m)
            && self.max_mod.is_none_or(|m| modr <= m)
            && self.min_create.is_none_or(|m| create >= m)
            && self.max_create.is_none_or(|m| create <= m)
    }
}

fn bound(name: &str, v: i64) -> Result<Option<u64>> {
    match v {
        0 => Ok(None),
        v if v < 0 => Err(Error::invalid(format!("{name} must not be negative"))),
        v => Ok(Some(v.unsigned_abs())),
    }
}

fn limit(v: i64) -> Result<Option<u64>> {
    match v {
        0 => Ok(None),
        v if v < 0 => Err(Error::invalid("limit must not be negative")),
        v => Ok(Some(v.unsigned_abs())),
    }
}

/// A validated range read (the `Range` RPC, `IterateRange`, or a Txn range op).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeQuery {
    pub range: KeyRange,
    /// Stop after this many matching pairs; `None` = no limit.
    pub limit: Option<u64>,
    pub keys_only: bool,
    pub count_only: bool,
    pub filter: RevisionFilter,
}

/// A validated `RangeRequest`: the table and the query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRange {
    pub table: String,
    pub query: RangeQuery,
    pub linearizable: bool,
}

impl TryFrom<&wire::RangeRequest> for TableRange {
    type Error = Error;
    fn try_from(r: &wire::RangeRequest) -> Result<Self> {
        let limit = limit(r.limit)?;
        if r.keys_only && r.count_only {
            return Err(Error::invalid("keys_only and count_only are exclusive"));
        }
        let filter = RevisionFilter {
            min_mod: bound("min_mod_revision", r.min_mod_revision)?,
            max_mod: bound("max_mod_revision", r.max_mod_revision)?,
            min_create: bound("min_create_revision", r.min_create_revision)?,
            max_create: bound("max_create_revision", r.max_create_revision)?,
        };
        let table = table_name(&r.table)?;
        let range = KeyRange::from_wire(&r.key, &r.range_end)?;
        let query = RangeQuery {
            range,
            limit,
            keys_only: r.keys_only,
            count_only: r.count_only,
            filter,
        };
        Ok(Self {
            table,
            query,
            linearizable: r.linearizable,
        })
    }
}

impl TryFrom<&request_op::Range> for RangeQuery {
    type Error = Error;
    fn try_from(r: &request_op::Range) -> Result<Self> {
        let limit = limit(r.limit)?;
        if r.keys_only && r.count_only {
            return Err(Error::invalid("keys_only and count_only are exclusive"));
        }
        let range = KeyRange::from_wire(&r.key, &r.range_end)?;
        let filter = RevisionFilter::default();
        Ok(Self {
            range,
            limit,
            keys_only: r.keys_only,
            count_only: r.count_only,
            filter,
        })
    }
}

/// A validated put of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOp {
    pub key: Bytes,
    pub value: Bytes,
    pub prev_kv: bool,
    /// Time to live in milliseconds from the event's time; 0: the key never expires.
    pub ttl_ms: u64,
}

impl PutOp {
    fn new(key: &Bytes, value: &Bytes, prev_kv: bool, ttl_millis: i64) -> Result<Self> {
        check_key(key)?;
        check_value(value)?;
        Ok(Self {
            key: key.clone(),
            value: value.clone(),
            prev_kv,
            ttl_ms: check_ttl(ttl_millis)?,
        })
    }

    /// The expiry this put sets when its event's time is `now_ms` (0: none).
    pub fn expires_at(&self, now_ms: u64) -> u64 {
        expiry(now_ms, self.ttl_ms)
    }
}

/// The expiry a put with a TTL of `ttl_ms` (0: none) sets at event time `now_ms`; 0: none.
pub(crate) fn expiry(now_ms: u64, ttl_ms: u64) -> u64 {
    if ttl_ms == 0 {
        return 0;
    }
    now_ms.saturating_add(ttl_ms)
}

/// A validated delete of a key or range.
///
/// `deleted` semantics: the response's `deleted` **always** carries the number of deleted
/// keys, whether or not `count` is set (Regatta may answer 0 without `count`; counting is
/// free here and never surprising).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteOp {
    pub range: KeyRange,
    pub prev_kv: bool,
    pub count: bool,
}

/// How a [`Compare`] relates the stored value (left) to the given one (right).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareResult {
    Equal,
    Greater,
    Less,
    NotEqual,
}

/// One condition of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare {
    pub range: KeyRange,
    pub result: CompareResult,
    /// `None`: an existence test; `Some(v)`: compare the stored value bytewise with `v`.
    pub value: Option<Bytes>,
}

impl TryFrom<&WireCompare> for Compare {
    type Error = Error;
    fn try_from(c: &WireCompare) -> Result<Self> {
        let result = match compare::CompareResult::try_from(c.result) {
            Ok(compare::CompareResult::Equal) => CompareResult::Equal,
            Ok(compare::CompareResult::Greater) => CompareResult::Greater,
            Ok(compare::CompareResult::Less) => CompareResult::Less,
            Ok(compare::CompareResult::NotEqual) => CompareResult::NotEqual,
            Err(_) => {
                return Err(Error::invalid(format!(
                    "unknown compare result {}",
                    c.result
                )));
            }
        };
        if compare::CompareTarget::try_from(c.target).is_err() {
            return Err(Error::invalid(format!(
                "unknown compare target {}",
                c.target
            )));
        }
        let range = KeyRange::from_wire(&c.key, &c.range_end)?;
        let value = match &c.target_union {
            Some(compare::TargetUnion::Value(v)) => {
                check_value(v)?;
                Some(v.clone())
            }
            None => None,
        };
        Ok(Self {
            range,
            result,
            value,
        })
    }
}

/// One operation of a transaction branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOp {
    Range(RangeQuery),
    Put(PutOp),
    Delete(DeleteOp),
}

impl TryFrom<&RequestOp> for TxnOp {
    type Error = Error;
    fn try_from(op: &RequestOp) -> Result<Self> {
        match &op.request {
            Some(request_op::Request::RequestRange(r)) => Ok(Self::Range(RangeQuery::try_from(r)?)),
            Some(request_op::Request::RequestPut(p)) => Ok(Self::Put(PutOp::new(
                &p.key,
                &p.value,
                p.prev_kv,
                p.ttl_millis,
            )?)),
            Some(request_op::Request::RequestDeleteRange(d)) => Ok(Self::Delete(DeleteOp {
                range: KeyRange::from_wire(&d.key, &d.range_end)?,
                prev_kv: d.prev_kv,
                count: d.count,
            })),
            None => Err(Error::invalid("transaction op without a request")),
        }
    }
}

/// A validated transaction on one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txn {
    pub table: String,
    pub compare: Vec<Compare>,
    pub success: Vec<TxnOp>,
    pub failure: Vec<TxnOp>,
}

impl Txn {
    /// `true` when every op of both branches is a range: served from a read view, never
    /// logged.
    pub fn is_read_only(&self) -> bool {
        self.success
            .iter()
            .chain(&self.failure)
            .all(|op| matches!(op, TxnOp::Range(_)))
    }
}

impl Txn {
    /// `true` when a compare or a range op spans a range of keys: evaluating it steps
    /// through records, where point ops cost one lookup each.
    pub fn scans(&self) -> bool {
        let span = |r: &KeyRange| matches!(r, KeyRange::Span { .. });
        self.compare.iter().any(|c| span(&c.range))
            || self
                .success
                .iter()
                .chain(&self.failure)
                .any(|op| matches!(op, TxnOp::Range(q) if span(&q.range)))
    }

    /// Fails when a branch or the compares list more than `max` entries.
    pub fn check_ops(&self, max: usize) -> Result<()> {
        let most = self
            .compare
            .len()
            .max(self.success.len())
            .max(self.failure.len());
        if most > max {
            return Err(Error::LimitExceeded {
                what: "the ops of one branch (or the compares) of this transaction",
                limit: max as u64,
                unit: "ops (--api.max-txn-ops)",
                advice: "split it into several transactions",
            });
        }
        Ok(())
    }
}

pub(crate) fn txn_from_parts(
    table: &[u8],
    compare: &[WireCompare],
    success: &[RequestOp],
    failure: &[RequestOp],
) -> Result<Txn> {
    // Op-level checks (limit, keys_only/count_only) come before table/key checks (API.md).
    let success = success
        .iter()
        .map(TxnOp::try_from)
        .collect::<Result<Vec<_>>>()?;
    let failure = failure
        .iter()
        .map(TxnOp::try_from)
        .collect::<Result<Vec<_>>>()?;
    let compare = compare
        .iter()
        .map(Compare::try_from)
        .collect::<Result<Vec<_>>>()?;
    let table = table_name(table)?;
    Ok(Txn {
        table,
        compare,
        success,
        failure,
    })
}

impl TryFrom<&wire::TxnRequest> for Txn {
    type Error = Error;
    fn try_from(r: &wire::TxnRequest) -> Result<Self> {
        txn_from_parts(&r.table, &r.compare, &r.success, &r.failure)
    }
}

/// A validated `PutRequest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Put {
    pub table: String,
    pub op: PutOp,
}

impl Put {
    /// Validates a put from its parts (a request's or a log event's fields).
    pub fn new(
        table: &[u8],
        key: &Bytes,
        value: &Bytes,
        prev_kv: bool,
        ttl_millis: i64,
    ) -> Result<Self> {
        let table = check_put(table, key, value)?.to_owned();
        Ok(Self {
            table,
            op: PutOp {
                key: key.clone(),
                value: value.clone(),
                prev_kv,
                ttl_ms: check_ttl(ttl_millis)?,
            },
        })
    }
}

impl TryFrom<&wire::PutRequest> for Put {
    type Error = Error;
    fn try_from(r: &wire::PutRequest) -> Result<Self> {
        Self::new(&r.table, &r.key, &r.value, r.prev_kv, r.ttl_millis)
    }
}

/// Every check of a put, in order (table name, key, value), without copying: the one
/// definition of a valid put, for requests and for apply's fast path alike.
pub fn check_put<'t>(table: &'t [u8], key: &[u8], value: &[u8]) -> Result<&'t str> {
    let table = table_str(table)?;
    check_key(key)?;
    check_value(value)?;
    Ok(table)
}

/// A validated `DeleteRangeRequest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteRange {
    pub table: String,
    pub op: DeleteOp,
}

impl DeleteRange {
    /// Validates a delete from its parts (a request's or a log event's fields).
    pub fn new(
        table: &[u8],
        key: &Bytes,
        range_end: &Bytes,
        prev_kv: bool,
        count: bool,
    ) -> Result<Self> {
        let table = table_name(table)?;
        let range = KeyRange::from_wire(key, range_end)?;
        Ok(Self {
            table,
            op: DeleteOp {
                range,
                prev_kv,
                count,
            },
        })
    }
}

impl TryFrom<&wire::DeleteRangeRequest> for DeleteRange {
    type Error = Error;
    fn try_from(r: &wire::DeleteRangeRequest) -> Result<Self> {
        Self::new(&r.table, &r.key, &r.range_end, r.prev_kv, r.count)
    }
}

/// Validates a `PutRequest` without keeping the domain value.
pub fn validate_put(r: &wire::PutRequest) -> Result<()> {
    Put::try_from(r).map(drop)
}

/// Validates a `DeleteRangeRequest` without keeping the domain value.
pub fn validate_delete_range(r: &wire::DeleteRangeRequest) -> Result<()> {
    DeleteRange::try_from(r).map(drop)
}

/// Validates a `TxnRequest` without keeping the domain value.
pub fn validate_txn(r: &wire::TxnRequest) -> Result<()> {
    Txn::try_from(r).map(drop)
}

/// Validates a `RangeRequest` without keeping the domain value.
pub fn validate_range(r: &wire::RangeRequest) -> Result<()> {
    TableRange::try_from(r).map(drop)
}
