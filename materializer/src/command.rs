//! [`Command`]: a validated write, the domain form of a log [`Event`].
//!
//! A request is validated into a `Command` once, where it enters the node
//! (`Command::try_from(&PutRequest)` …); the node's write path carries the `Command` and
//! proposes it as the event [`Command::to_event`] makes. A node forwarding a write to
//! another turns it back into its request (`wire::PutRequest::from(&put)` …). Apply decodes
//! each event once with [`Command::from_event`] (valid puts are read in place by
//! `crate::apply`); an event of a version or kind this build does not know is a
//! node-stopping [`Error::UnknownEvent`], never skipped.

use bytes::Bytes;
use regatta_proto::event::{self, Event, event::Kind};
use regatta_proto::mvcc::v1::{KeyValue, RequestOp, request_op};
use regatta_proto::regatta::v1 as wire;

use crate::request::{
    DeleteOp, DeleteRange, Put, PutOp, Txn, TxnOp, check_key, check_put, check_value, table_name,
    txn_from_parts,
};
use crate::{Error, Result};

/// A validated write: what one log event asks the materializer to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Put(Put),
    DeleteRange(DeleteRange),
    Txn(Txn),
    CreateTable {
        name: String,
        config: Option<prost_types::Struct>,
    },
    DeleteTable {
        name: String,
    },
    /// Replace (`clear`) or extend a table's content with these pairs (Maintenance.Restore).
    RestoreTable {
        name: String,
        clear: bool,
        kvs: Vec<Pair>,
    },
    /// Data writes (put, delete range, txn) of several clients in one entry: applied in
    /// order at the entry's revision, each with its own response.
    Batch(Vec<Command>),
    /// Keys of one table whose time to live has passed (the core leader's expiry task):
    /// each is deleted if it still holds the write named and has expired at the event's
    /// time.
    Expire {
        table: String,
        keys: Vec<crate::table::Expired>,
    },
}

/// A pair to restore: key, value and expiry (milliseconds since the Unix epoch, 0: none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub key: Bytes,
    pub value: Bytes,
    pub expires_at: u64,
}

impl From<(Bytes, Bytes)> for Pair {
    /// A pair that never expires.
    fn from((key, value): (Bytes, Bytes)) -> Self {
        Self {
            key,
            value,
            expires_at: 0,
        }
    }
}

impl PartialEq<(Bytes, Bytes)> for Pair {
    fn eq(&self, (key, value): &(Bytes, Bytes)) -> bool {
        self.expires_at == 0 && self.key == key && self.value == value
    }
}

/// The longest table name `Tables.Create` accepts, in bytes of UTF-8.
pub const MAX_TABLE_NAME_BYTES: usize = 255;

/// The check every table event passes at apply: a name is not empty. Only this, so that
/// an entry written under an older, looser rule replays as it applied then.
fn check_table_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid("table name must not be empty"));
    }
    Ok(())
}

/// The rule for the name of a table being created (checked when the request enters, never
/// at apply): 1 to [`MAX_TABLE_NAME_BYTES`] bytes of UTF-8 with no control character
/// (U+0000–U+001F, U+007F–U+009F). Any other character is allowed, `/` and `.` included, as
/// Regatta allows them; `regatta backup --dir` encodes a name into a safe file name.
pub fn check_new_table_name(name: &str) -> Result<()> {
    check_table_name(name)?;
    if name.len() > MAX_TABLE_NAME_BYTES {
        return Err(Error::invalid(format!(
            "table name is {} bytes, more than the {MAX_TABLE_NAME_BYTES} allowed",
            name.len()
        )));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(Error::invalid(format!(
            "table name must not contain control characters (found U+{:04X})",
            c as u32
        )));
    }
    Ok(())
}

impl Command {
    /// The table and the put of `event` when it is a valid put: exactly the events
    /// [`Command::from_event`] turns into [`Command::Put`], read in place without copying
    /// a byte (apply's fast path for runs of puts).
    pub(crate) fn valid_put(event: &Event) -> Option<(&str, &event::Put)> {
        if event.version != regatta_proto::EVENT_VERSION {
            return None;
        }
        let Some(Kind::Put(p)) = &event.kind else {
            return None;
        };
        let table = check_put(&p.table, &p.key, &p.value).ok()?;
        crate::request::check_ttl(p.ttl_millis).ok()?;
        Some((table, p))
    }

    /// Decodes and validates the event at log `index`.
    ///
    /// Errors: [`Error::UnknownEvent`] (fatal) for an unknown version or kind; a request
    /// error (InvalidArgument, KeyTooLarge…) for an event that is understood but invalid,
    /// which apply records as a deterministic rejection.
    pub fn from_event(index: u64, event: &Event) -> Result<Self> {
        if event.version != regatta_proto::EVENT_VERSION {
            return Err(Error::UnknownEvent {
                index,
                reason: format!(
                    "event version {} (this build reads {})",
                    event.version,
                    regatta_proto::EVENT_VERSION
                ),
            });
        }
        let Some(kind) = &event.kind else {
            return Err(Error::UnknownEvent {
                index,
                reason: "event kind unknown to this build".into(),
            });
        };
        match kind {
            Kind::Put(p) => Ok(Self::Put(Put::new(
                &p.table,
                &p.key,
                &p.value,
                p.prev_kv,
                p.ttl_millis,
            )?)),
            Kind::DeleteRange(d) => Ok(Self::DeleteRange(DeleteRange::new(
                &d.table,
                &d.key,
                &d.range_end,
                d.prev_kv,
                d.count,
            )?)),
            Kind::Txn(t) => Ok(Self::Txn(txn_from_parts(
                &t.table, &t.compare, &t.success, &t.failure,
            )?)),
            Kind::CreateTable(c) => {
                check_table_name(&c.name)?;
                Ok(Self::CreateTable {
                    name: c.name.clone(),
                    config: c.config.clone(),
                })
            }
            Kind::DeleteTable(d) => {
                check_table_name(&d.name)?;
                Ok(Self::DeleteTable {
                    name: d.name.clone(),
                })
            }
            Kind::Batch(b) => {
                let commands = b
                    .events
                    .iter()
                    .map(|e| {
                        check_batched(index, e)?;
                        Self::from_event(index, e)
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(Self::Batch(commands))
            }
            Kind::RestoreTable(r) => Self::try_from(r),
            Kind::Expire(x) => Ok(Self::Expire {
                table: table_name(&x.table)?,
                keys: x
                    .keys
                    .iter()
                    .map(|k| {
                        check_key(&k.key)?;
                        Ok(crate::table::Expired {
                            key: k.key.clone(),
                            mod_revision: k.mod_revision,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?,
            }),
        }
    }

    /// About how many bytes this command takes in a log entry (keys, values and table
    /// names; the batcher's size limit, not an exact encoded length).
    pub fn size_hint(&self) -> usize {
        const OP: usize = 16;
        let range = |r: &crate::request::KeyRange| match r {
            crate::request::KeyRange::Key(k) => k.len(),
            crate::request::KeyRange::Span { start, end } => {
                start.len() + end.as_ref().map_or(1, Bytes::len)
            }
        };
        let op = |op: &TxnOp| {
            OP + match op {
                TxnOp::Range(q) => range(&q.range),
                TxnOp::Put(p) => p.key.len() + p.value.len(),
                TxnOp::Delete(d) => range(&d.range),
            }
        };
        match self {
            Self::Put(p) => OP + p.table.len() + p.op.key.len() + p.op.value.len(),
            Self::DeleteRange(d) => OP + d.table.len() + range(&d.op.range),
            Self::Txn(t) => {
                OP + t.table.len()
                    + t.compare
                        .iter()
                        .map(|c| OP + range(&c.range) + c.value.as_ref().map_or(0, Bytes::len))
                        .sum::<usize>()
                    + t.success.iter().chain(&t.failure).map(op).sum::<usize>()
            }
            Self::CreateTable { name, .. } | Self::DeleteTable { name } => OP + name.len(),
            Self::RestoreTable { name, kvs, .. } => {
                OP + name.len()
                    + kvs
                        .iter()
                        .map(|p| p.key.len() + p.value.len() + crate::limits::KV_OVERHEAD_BYTES)
                        .sum::<usize>()
            }
            Self::Batch(commands) => commands.iter().map(Command::size_hint).sum(),
            Self::Expire { table, keys } => {
                OP + table.len() + keys.iter().map(|k| OP + k.key.len()).sum::<usize>()
            }
        }
    }

    /// The name of the table this command writes (a batch: its first command's).
    pub fn table(&self) -> &str {
        match self {
            Self::Put(p) => &p.table,
            Self::DeleteRange(d) => &d.table,
            Self::Txn(t) => &t.table,
            Self::CreateTable { name, .. }
            | Self::DeleteTable { name }
            | Self::RestoreTable { name, .. } => name,
            Self::Expire { table, .. } => table,
            Self::Batch(commands) => commands.first().map_or("", Command::table),
        }
    }

    /// Whether this command may go into a [`Command::Batch`] with others.
    pub fn batchable(&self) -> bool {
        matches!(self, Self::Put(_) | Self::DeleteRange(_) | Self::Txn(_))
    }

    /// The log event proposing this command at `proposed_at_micros` (the leader's clock:
    /// the time a put's TTL counts from, and the time expiry is judged at).
    pub fn to_event(&self, proposed_at_micros: u64) -> Event {
        let kind = match self {
            Self::Put(p) => Kind::Put(event::Put {
                table: Bytes::from(p.table.clone()),
                key: p.op.key.clone(),
                value: p.op.value.clone(),
                prev_kv: p.op.prev_kv,
                ttl_millis: wire_ttl(p.op.ttl_ms),
            }),
            Self::DeleteRange(d) => {
                let (key, range_end) = d.op.range.to_wire();
                Kind::DeleteRange(event::DeleteRange {
                    table: Bytes::from(d.table.clone()),
                    key,
                    range_end,
                    prev_kv: d.op.prev_kv,
                    count: d.op.count,
                })
            }
            Self::Txn(t) => Kind::Txn(event::Txn {
                table: Bytes::from(t.table.clone()),
                compare: t.compare.iter().map(compare_to_wire).collect(),
                success: t.success.iter().map(op_to_wire).collect(),
                failure: t.failure.iter().map(op_to_wire).collect(),
            }),
            Self::CreateTable { name, config } => Kind::CreateTable(event::CreateTable {
                name: name.clone(),
                config: config.clone(),
            }),
            Self::DeleteTable { name } => {
                Kind::DeleteTable(event::DeleteTable { name: name.clone() })
            }
            Self::RestoreTable { name, clear, kvs } => {
                Kind::RestoreTable(restore_to_wire(name, *clear, kvs))
            }
            Self::Batch(commands) => Kind::Batch(event::Batch {
                events: commands
                    .iter()
                    .map(|c| c.to_event(proposed_at_micros))
                    .collect(),
            }),
            Self::Expire { table, keys } => Kind::Expire(event::Expire {
                table: Bytes::from(table.clone()),
                keys: keys
                    .iter()
                    .map(|k| event::ExpiredKey {
                        key: k.key.clone(),
                        mod_revision: k.mod_revision,
                    })
                    .collect(),
            }),
        };
        Event {
            version: regatta_proto::EVENT_VERSION,
            proposed_at_micros,
            kind: Some(kind),
        }
    }
}

/// Fails (fatal) unless `event`, found inside a batch entry at log `index`, is a kind a
/// batch may hold: put, delete range or txn.
pub(crate) fn check_batched(index: u64, event: &Event) -> Result<()> {
    match &event.kind {
        Some(Kind::Put(_) | Kind::DeleteRange(_) | Kind::Txn(_)) => Ok(()),
        _ => Err(Error::UnknownEvent {
            index,
            reason: "a batch may hold only put, delete_range and txn events".into(),
        }),
    }
}

fn compare_to_wire(c: &crate::request::Compare) -> regatta_proto::mvcc::v1::Compare {
    use crate::request::CompareResult as R;
    use regatta_proto::mvcc::v1::compare;
    let (key, range_end) = c.range.to_wire();
    let result = match c.result {
        R::Equal => compare::CompareResult::Equal,
        R::Greater => compare::CompareResult::Greater,
        R::Less => compare::CompareResult::Less,
        R::NotEqual => compare::CompareResult::NotEqual,
    };
    regatta_proto::mvcc::v1::Compare {
        result: result as i32,
        target: compare::CompareTarget::Value as i32,
        key,
        range_end,
        target_union: c.value.clone().map(compare::TargetUnion::Value),
    }
}

fn op_to_wire(op: &TxnOp) -> RequestOp {
    let request = match op {
        TxnOp::Range(q) => {
            let (key, range_end) = q.range.to_wire();
            request_op::Request::RequestRange(request_op::Range {
                key,
                range_end,
                limit: q.limit.map_or(0, |l| i64::try_from(l).unwrap_or(i64::MAX)),
                keys_only: q.keys_only,
                count_only: q.count_only,
            })
        }
        TxnOp::Put(PutOp {
            key,
            value,
            prev_kv,
            ttl_ms,
        }) => request_op::Request::RequestPut(request_op::Put {
            key: key.clone(),
            value: value.clone(),
            prev_kv: *prev_kv,
            ttl_millis: wire_ttl(*ttl_ms),
        }),
        TxnOp::Delete(DeleteOp {
            range,
            prev_kv,
            count,
        }) => {
            let (key, range_end) = range.to_wire();
            request_op::Request::RequestDeleteRange(request_op::DeleteRange {
                key,
                range_end,
                prev_kv: *prev_kv,
                count: *count,
            })
        }
    };
    RequestOp {
        request: Some(request),
    }
}

impl TryFrom<&wire::PutRequest> for Command {
    type Error = Error;
    fn try_from(r: &wire::PutRequest) -> Result<Self> {
        Ok(Self::Put(Put::try_from(r)?))
    }
}

impl TryFrom<&wire::DeleteRangeRequest> for Command {
    type Error = Error;
    fn try_from(r: &wire::DeleteRangeRequest) -> Result<Self> {
        Ok(Self::DeleteRange(DeleteRange::try_from(r)?))
    }
}

impl TryFrom<&wire::TxnRequest> for Command {
    type Error = Error;
    fn try_from(r: &wire::TxnRequest) -> Result<Self> {
        Ok(Self::Txn(Txn::try_from(r)?))
    }
}

impl TryFrom<&wire::CreateTableRequest> for Command {
    type Error = Error;
    fn try_from(r: &wire::CreateTableRequest) -> Result<Self> {
        check_new_table_name(&r.name)?;
        Ok(Self::CreateTable {
            name: r.name.clone(),
            config: r.config.clone(),
        })
    }
}

impl TryFrom<&wire::DeleteTableRequest> for Command {
    type Error = Error;
    fn try_from(r: &wire::DeleteTableRequest) -> Result<Self> {
        check_table_name(&r.name)?;
        Ok(Self::DeleteTable {
            name: r.name.clone(),
        })
    }
}

impl TryFrom<&event::RestoreTable> for Command {
    type Error = Error;
    fn try_from(r: &event::RestoreTable) -> Result<Self> {
        check_table_name(&r.name)?;
        let kvs = r
            .kvs
            .iter()
            .map(|kv| {
                check_key(&kv.key)?;
                check_value(&kv.value)?;
                Ok(Pair {
                    key: kv.key.clone(),
                    value: kv.value.clone(),
                    // Negative is no expiry, as 0.
                    expires_at: u64::try_from(kv.expires_at_millis).unwrap_or(0),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self::RestoreTable {
            name: r.name.clone(),
            clear: r.clear,
            kvs,
        })
    }
}

/// A validated TTL or an expiry back on the wire (saturating).
fn wire_ttl(ttl_ms: u64) -> i64 {
    i64::try_from(ttl_ms).unwrap_or(i64::MAX)
}

impl From<&Put> for wire::PutRequest {
    fn from(p: &Put) -> Self {
        Self {
            table: Bytes::from(p.table.clone()),
            key: p.op.key.clone(),
            value: p.op.value.clone(),
            prev_kv: p.op.prev_kv,
            ttl_millis: wire_ttl(p.op.ttl_ms),
        }
    }
}

impl From<&DeleteRange> for wire::DeleteRangeRequest {
    fn from(d: &DeleteRange) -> Self {
        let (key, range_end) = d.op.range.to_wire();
        Self {
            table: Bytes::from(d.table.clone()),
            key,
            range_end,
            prev_kv: d.op.prev_kv,
            count: d.op.count,
        }
    }
}

impl From<&Txn> for wire::TxnRequest {
    fn from(t: &Txn) -> Self {
        Self {
            table: Bytes::from(t.table.clone()),
            compare: t.compare.iter().map(compare_to_wire).collect(),
            success: t.success.iter().map(op_to_wire).collect(),
            failure: t.failure.iter().map(op_to_wire).collect(),
        }
    }
}

/// The restore event of a [`Command::RestoreTable`]'s parts.
pub fn restore_to_wire(name: &str, clear: bool, kvs: &[Pair]) -> event::RestoreTable {
    event::RestoreTable {
        name: name.to_owned(),
        clear,
        kvs: kvs
            .iter()
            .map(|p| KeyValue {
                key: p.key.clone(),
                value: p.value.clone(),
                expires_at_millis: wire_ttl(p.expires_at),
                ..Default::default()
            })
            .collect(),
    }
}

/// Splits `kvs` into restore events of at most about `max_event_bytes` each: the first
/// clears the table, the rest append. An empty input still yields one clearing event.
pub fn restore_events(
    table: &str,
    kvs: impl IntoIterator<Item = impl Into<Pair>>,
    max_event_bytes: usize,
) -> Vec<Command> {
    let mut out = Vec::new();
    let mut batch = Vec::new();
    let mut size = 0usize;
    for pair in kvs {
        let pair = pair.into();
        let len = pair.key.len() + pair.value.len() + crate::limits::KV_OVERHEAD_BYTES;
        if !batch.is_empty() && size + len > max_event_bytes {
            let clear = out.is_empty();
            out.push(Command::RestoreTable {
                name: table.into(),
                clear,
                kvs: std::mem::take(&mut batch),
            });
            size = 0;
        }
        size += len;
        batch.push(pair);
    }
    if !batch.is_empty() || out.is_empty() {
        let clear = out.is_empty();
        out.push(Command::RestoreTable {
            name: table.into(),
            clear,
            kvs: batch,
        });
    }
    out
}

#[cfg(test)]
mod table_name_tests {
    use super::*;

    fn create(name: &str) -> Result<Command> {
        Command::try_from(&wire::CreateTableRequest {
            name: name.into(),
            config: None,
        })
    }

    fn create_event(name: &str) -> Event {
        Event {
            version: regatta_proto::EVENT_VERSION,
            proposed_at_micros: 0,
            kind: Some(Kind::CreateTable(event::CreateTable {
                name: name.into(),
                config: None,
            })),
        }
    }

    #[test]
    fn create_accepts_the_names_regatta_accepts() {
        for name in [
            "t",
            "regatta-test",
            "a/b",
            "../x",
            ".",
            "..",
            "ümlaut 表",
            "a b%c",
        ] {
            assert!(create(name).is_ok(), "{name:?}");
        }
        assert!(create(&"x".repeat(MAX_TABLE_NAME_BYTES)).is_ok());
    }

    #[test]
    fn create_refuses_empty_long_and_control_names() {
        let reason = |name: &str| match create(name) {
            Err(Error::InvalidArgument { reason }) => reason,
            other => panic!("{name:?}: {other:?}"),
        };
        assert!(reason("").contains("empty"));
        assert!(reason(&"x".repeat(MAX_TABLE_NAME_BYTES + 1)).contains("255"));
        assert!(reason(&"x".repeat(100_000)).contains("255"));
        assert!(reason("a\0b").contains("U+0000"));
        assert!(reason("a\nb").contains("U+000A"));
        assert!(reason("a\u{7f}").contains("U+007F"));
    }

    #[test]
    fn a_logged_create_with_a_name_now_refused_still_applies() {
        for name in ["a\0b", &"x".repeat(100_000)] {
            assert!(create(name).is_err());
            assert!(matches!(
                Command::from_event(7, &create_event(name)),
                Ok(Command::CreateTable { .. })
            ));
        }
    }
}
