//! `regatta log replay`: every committed change in a range of revisions, one per line.
//!
//! A change is a normal log entry (a `regatta.event.v1.Event`); Raft's own entries (blank,
//! membership) change no data and are not shown. A transaction is shown as proposed: its
//! compares and both branches (which branch ran depends on the state it met; the revision
//! and the ops are what the audit needs, and `regatta restore --revision` recreates the
//! state at any point to see the outcome).
//!
//! Filters: `--table` keeps events of that table; `--prefix` keeps puts and deletes whose key
//! starts with the prefix, transactions with any op or compare on such a key and table
//! restores holding such a key (table creation and deletion carry no key and are left out).

use prost::Message;
use regatta_log::{Record, RecordKind};
use regatta_proto::event::{Event, event::Kind};
use regatta_proto::mvcc::v1::{Compare, RequestOp, request_op::Request};
use serde_json::{Map, Value, json};

use crate::client::output::{put_bytes, text};
use crate::error::{CliResult, Failure};

/// What to show.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub table: Option<Vec<u8>>,
    pub prefix: Option<Vec<u8>>,
}

/// The table an event belongs to and the keys it touches.
fn table_and_keys(kind: &Kind) -> (Vec<u8>, Option<Vec<&[u8]>>) {
    match kind {
        Kind::Put(p) => (p.table.to_vec(), Some(vec![&p.key[..]])),
        Kind::DeleteRange(d) => (d.table.to_vec(), Some(vec![&d.key[..]])),
        Kind::Txn(t) => {
            let mut keys: Vec<&[u8]> = t.compare.iter().map(|c| &c.key[..]).collect();
            keys.extend(t.success.iter().chain(&t.failure).filter_map(op_key));
            (t.table.to_vec(), Some(keys))
        }
        Kind::CreateTable(c) => (c.name.clone().into_bytes(), None),
        Kind::DeleteTable(d) => (d.name.clone().into_bytes(), None),
        Kind::RestoreTable(r) => (
            r.name.clone().into_bytes(),
            Some(r.kvs.iter().map(|kv| &kv.key[..]).collect()),
        ),
        // [`decode`] splits batches into their writes; a batch itself names no table.
        Kind::Batch(_) => (Vec::new(), None),
        Kind::Expire(x) => (
            x.table.to_vec(),
            Some(x.keys.iter().map(|k| &k.key[..]).collect()),
        ),
    }
}

fn op_key(op: &RequestOp) -> Option<&[u8]> {
    match op.request.as_ref()? {
        Request::RequestRange(r) => Some(&r.key),
        Request::RequestPut(p) => Some(&p.key),
        Request::RequestDeleteRange(d) => Some(&d.key),
    }
}

impl Filter {
    pub fn keeps(&self, kind: &Kind) -> bool {
        let (table, keys) = table_and_keys(kind);
        if self.table.as_ref().is_some_and(|t| *t != table) {
            return false;
        }
        match &self.prefix {
            None => true,
            Some(p) => keys.is_some_and(|keys| keys.iter().any(|k| k.starts_with(p))),
        }
    }
}

/// A decoded change, ready to print.
pub struct Change {
    pub revision: u64,
    pub term: u64,
    pub leader: u64,
    pub event: Event,
}

/// Decodes a record into its changes: none for Raft's own entries, one per write of a
/// batch entry (all at the entry's revision, in the order they were applied), else one.
pub fn decode(record: &Record) -> CliResult<Vec<Change>> {
    if record.kind != RecordKind::Normal {
        return Ok(Vec::new());
    }
    let event = Event::decode(record.payload.as_ref()).map_err(|e| {
        Failure::fault(format!(
            "entry {} carries an undecodable event: {e}",
            record.id.index
        ))
    })?;
    let events = match event.kind {
        Some(Kind::Batch(batch)) => batch.events,
        _ => vec![event],
    };
    Ok(events
        .into_iter()
        .map(|event| Change {
            revision: record.id.index.0,
            term: record.id.term.0,
            leader: record.id.leader.0,
            event,
        })
        .collect())
}

fn time(micros: u64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_micros(micros);
    humantime::format_rfc3339_micros(at).to_string()
}

fn op_text(op: &RequestOp) -> String {
    match &op.request {
        Some(Request::RequestRange(r)) => format!(
            "range(key={:?} range_end={:?})",
            text(&r.key),
            text(&r.range_end)
        ),
        Some(Request::RequestPut(p)) => {
            format!("put(key={:?} value={:?})", text(&p.key), text(&p.value))
        }
        Some(Request::RequestDeleteRange(d)) => format!(
            "delete(key={:?} range_end={:?})",
            text(&d.key),
            text(&d.range_end)
        ),
        None => "empty".into(),
    }
}

fn compare_text(c: &Compare) -> String {
    format!("{:?}", c)
}

/// One line of text: `revision term time op details`.
pub fn to_text(c: &Change) -> String {
    let head = format!(
        "{} term={} time={}",
        c.revision,
        c.term,
        time(c.event.proposed_at_micros)
    );
    let body = match &c.event.kind {
        Some(Kind::Put(p)) if p.ttl_millis != 0 => format!(
            "put table={} key={:?} value={:?} ttl_millis={}",
            text(&p.table),
            text(&p.key),
            text(&p.value),
            p.ttl_millis
        ),
        Some(Kind::Put(p)) => format!(
            "put table={} key={:?} value={:?}",
            text(&p.table),
            text(&p.key),
            text(&p.value)
        ),
        Some(Kind::Expire(x)) => format!(
            "expire table={} keys=[{}]",
            text(&x.table),
            x.keys
                .iter()
                .map(|k| format!("{:?}@{}", text(&k.key), k.mod_revision))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Some(Kind::DeleteRange(d)) => format!(
            "delete table={} key={:?} range_end={:?}",
            text(&d.table),
            text(&d.key),
            text(&d.range_end)
        ),
        Some(Kind::Txn(t)) => format!(
            "txn table={} compare=[{}] success=[{}] failure=[{}]",
            text(&t.table),
            t.compare
                .iter()
                .map(compare_text)
                .collect::<Vec<_>>()
                .join(", "),
            t.success.iter().map(op_text).collect::<Vec<_>>().join(", "),
            t.failure.iter().map(op_text).collect::<Vec<_>>().join(", ")
        ),
        Some(Kind::CreateTable(t)) => format!("create-table table={}", t.name),
        Some(Kind::DeleteTable(t)) => format!("delete-table table={}", t.name),
        Some(Kind::RestoreTable(r)) => format!(
            "restore-table table={} clear={} keys={}",
            r.name,
            r.clear,
            r.kvs.len()
        ),
        Some(Kind::Batch(b)) => format!("batch writes={}", b.events.len()),
        None => "unknown-event".into(),
    };
    format!("{head} {body}")
}

fn op_json(op: &RequestOp) -> Value {
    let mut o = Map::new();
    match &op.request {
        Some(Request::RequestRange(r)) => {
            o.insert("op".into(), json!("range"));
            put_bytes(&mut o, "key", &r.key);
            put_bytes(&mut o, "range_end", &r.range_end);
        }
        Some(Request::RequestPut(p)) => {
            o.insert("op".into(), json!("put"));
            put_bytes(&mut o, "key", &p.key);
            put_bytes(&mut o, "value", &p.value);
            if p.ttl_millis != 0 {
                o.insert("ttl_millis".into(), json!(p.ttl_millis));
            }
        }
        Some(Request::RequestDeleteRange(d)) => {
            o.insert("op".into(), json!("delete"));
            put_bytes(&mut o, "key", &d.key);
            put_bytes(&mut o, "range_end", &d.range_end);
        }
        None => {
            o.insert("op".into(), json!("empty"));
        }
    }
    Value::Object(o)
}

/// One JSON object (printed as one line).
pub fn to_json(c: &Change) -> Value {
    let mut o = Map::new();
    o.insert("revision".into(), json!(c.revision));
    o.insert("term".into(), json!(c.term));
    o.insert("leader".into(), json!(c.leader));
    o.insert(
        "proposed_at_micros".into(),
        json!(c.event.proposed_at_micros),
    );
    o.insert("time".into(), json!(time(c.event.proposed_at_micros)));
    match &c.event.kind {
        Some(Kind::Put(p)) => {
            o.insert("op".into(), json!("put"));
            put_bytes(&mut o, "table", &p.table);
            put_bytes(&mut o, "key", &p.key);
            put_bytes(&mut o, "value", &p.value);
            if p.ttl_millis != 0 {
                o.insert("ttl_millis".into(), json!(p.ttl_millis));
            }
        }
        Some(Kind::Expire(x)) => {
            o.insert("op".into(), json!("expire"));
            put_bytes(&mut o, "table", &x.table);
            let keys = x
                .keys
                .iter()
                .map(|k| {
                    let mut key = Map::new();
                    put_bytes(&mut key, "key", &k.key);
                    key.insert("mod_revision".into(), json!(k.mod_revision));
                    Value::Object(key)
                })
                .collect();
            o.insert("keys".into(), Value::Array(keys));
        }
        Some(Kind::DeleteRange(d)) => {
            o.insert("op".into(), json!("delete"));
            put_bytes(&mut o, "table", &d.table);
            put_bytes(&mut o, "key", &d.key);
            put_bytes(&mut o, "range_end", &d.range_end);
        }
        Some(Kind::Txn(t)) => {
            o.insert("op".into(), json!("txn"));
            put_bytes(&mut o, "table", &t.table);
            o.insert(
                "compare".into(),
                Value::Array(t.compare.iter().map(|c| json!(compare_text(c))).collect()),
            );
            o.insert(
                "success".into(),
                Value::Array(t.success.iter().map(op_json).collect()),
            );
            o.insert(
                "failure".into(),
                Value::Array(t.failure.iter().map(op_json).collect()),
            );
        }
        Some(Kind::CreateTable(t)) => {
            o.insert("op".into(), json!("create-table"));
            o.insert("table".into(), json!(t.name));
        }
        Some(Kind::DeleteTable(t)) => {
            o.insert("op".into(), json!("delete-table"));
            o.insert("table".into(), json!(t.name));
        }
        Some(Kind::RestoreTable(r)) => {
            o.insert("op".into(), json!("restore-table"));
            o.insert("table".into(), json!(r.name));
            o.insert("clear".into(), json!(r.clear));
            o.insert("keys".into(), json!(r.kvs.len()));
        }
        Some(Kind::Batch(b)) => {
            o.insert("op".into(), json!("batch"));
            o.insert("writes".into(), json!(b.events.len()));
        }
        None => {
            o.insert("op".into(), json!("unknown"));
        }
    }
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use regatta_proto::event::Put;

    fn put(table: &str, key: &str) -> Kind {
        Kind::Put(Put {
            table: table.as_bytes().to_vec().into(),
            key: key.as_bytes().to_vec().into(),
            value: b"v".to_vec().into(),
            prev_kv: false,
            ttl_millis: 0,
        })
    }

    #[test]
    fn filters_by_table_and_prefix() {
        let f = Filter {
            table: Some(b"a".to_vec()),
            prefix: Some(b"user/".to_vec()),
        };
        assert!(f.keeps(&put("a", "user/1")));
        assert!(!f.keeps(&put("b", "user/1")));
        assert!(!f.keeps(&put("a", "item/1")));
        assert!(Filter::default().keeps(&put("b", "x")));
    }

    #[test]
    fn json_lines_carry_revision_term_and_time() {
        let c = Change {
            revision: 7,
            term: 2,
            leader: 1,
            event: Event {
                version: 1,
                proposed_at_micros: 1_000_000,
                kind: Some(put("t", "k")),
            },
        };
        let v = to_json(&c);
        assert_eq!(v["revision"], 7);
        assert_eq!(v["op"], "put");
        assert_eq!(v["key"], "k");
        assert_eq!(v["time"], "1970-01-01T00:00:01.000000Z");
        assert!(to_text(&c).starts_with("7 term=2 time=1970-01-01T00:00:01.000000Z put table=t"));
    }
}
