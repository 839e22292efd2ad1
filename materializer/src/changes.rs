//! Changes: what each applied revision did to which keys, recorded at apply for watchers.
//!
//! Apply is the only place that knows exactly what a write did: which keys a `DeleteRange`
//! removed, which branch of a `Txn` ran, whether a put created its key, and the pairs it
//! replaced. While recording is on (the node keeps a watch history), apply notes every key
//! it writes as a [`Change`] at its revision, in log order, and the materializer hands the
//! changes of one published batch to its [`History`](crate::history::History) before it
//! signals the new revision. A change holds the table's [`Record`]s themselves (a reference
//! count each), so recording copies no key and no value.
//!
//! A watcher turns changes into wire events with [`WatchFilter`]: the table and key range
//! it watches, and whether it wants the previous pairs.

use std::sync::Arc;

use bytes::Bytes;
use regatta_proto::mvcc::v1::KeyValue;
use regatta_proto::regatta::watch::v1 as wire;

use crate::request::{KeyRange, table_name};
use crate::table::{Record, wire_revision};
use crate::{Error, Result, Revision};

/// What one write did to one key (or to a whole table).
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A key was written: its new record (revisions included) and the one it replaced.
    Put {
        table: Arc<str>,
        record: Record,
        prev: Option<Record>,
    },
    /// A key was deleted: the record it held.
    Delete { table: Arc<str>, prev: Record },
    /// The table was deleted (`deleted`) or its content replaced by a restore: a watcher of
    /// it cannot be told key by key and ends.
    TableReset { table: Arc<str>, deleted: bool },
}

/// Memory a change is counted at in the history besides its keys and values.
const CHANGE_OVERHEAD_BYTES: usize = 64;

impl Change {
    /// The table it changed.
    pub fn table(&self) -> &str {
        match self {
            Self::Put { table, .. }
            | Self::Delete { table, .. }
            | Self::TableReset { table, .. } => table,
        }
    }

    /// The key it changed (`None` for a whole table).
    pub fn key(&self) -> Option<&[u8]> {
        match self {
            Self::Put { record, .. } => Some(record.key()),
            Self::Delete { prev, .. } => Some(prev.key()),
            Self::TableReset { .. } => None,
        }
    }

    /// Bytes this change keeps alive, as the history counts them.
    pub fn bytes(&self) -> usize {
        let record = |r: &Record| {
            let (k, v) = r.key_and_value();
            k.len() + v.len()
        };
        CHANGE_OVERHEAD_BYTES
            + match self {
                Self::Put {
                    record: r, prev, ..
                } => record(r) + prev.as_ref().map_or(0, record),
                Self::Delete { prev, .. } => record(prev),
                Self::TableReset { .. } => 0,
            }
    }
}

/// A change at its revision (the log index of the entry that made it).
#[derive(Debug, Clone, PartialEq)]
pub struct Revisioned {
    pub revision: Revision,
    pub change: Change,
}

/// Collects the changes of one apply batch, in log order; does nothing while off.
#[derive(Debug, Default)]
pub struct Recorder {
    on: bool,
    /// The table the next changes are in (set before a command runs on it).
    table: Option<Arc<str>>,
    changes: Vec<Revisioned>,
}

impl Recorder {
    /// A recorder that records.
    pub fn recording() -> Self {
        Self {
            on: true,
            ..Self::default()
        }
    }

    /// Whether it records.
    pub fn is_on(&self) -> bool {
        self.on
    }

    /// The table of the changes recorded next (its name shared by all of them).
    pub(crate) fn set_table(&mut self, name: &str) {
        if self.on && self.table.as_deref() != Some(name) {
            self.table = Some(Arc::from(name));
        }
    }

    fn current_table(&self) -> Arc<str> {
        self.table.clone().unwrap_or_else(|| Arc::from(""))
    }

    /// A put of `record` at `revision`, replacing `prev`.
    pub(crate) fn put(&mut self, revision: Revision, record: Record, prev: Option<Record>) {
        if self.on {
            let table = self.current_table();
            self.changes.push(Revisioned {
                revision,
                change: Change::Put {
                    table,
                    record,
                    prev,
                },
            });
        }
    }

    /// The deletion of `prev` at `revision`.
    pub(crate) fn delete(&mut self, revision: Revision, prev: Record) {
        if self.on {
            let table = self.current_table();
            self.changes.push(Revisioned {
                revision,
                change: Change::Delete { table, prev },
            });
        }
    }

    /// Table `name` deleted or replaced at `revision`.
    pub(crate) fn reset(&mut self, revision: Revision, name: &str, deleted: bool) {
        if self.on {
            self.changes.push(Revisioned {
                revision,
                change: Change::TableReset {
                    table: Arc::from(name),
                    deleted,
                },
            });
        }
    }

    /// How many changes are recorded: a mark to [`Recorder::rollback`] to.
    pub(crate) fn mark(&self) -> usize {
        self.changes.len()
    }

    /// Forgets the changes after `mark` (a transaction that failed applied nothing).
    pub(crate) fn rollback(&mut self, mark: usize) {
        self.changes.truncate(mark);
    }

    /// The recorded changes, in log order.
    pub fn into_changes(self) -> Vec<Revisioned> {
        self.changes
    }
}

/// What one watcher watches: a table, its keys, and whether events carry the previous pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchFilter {
    pub table: String,
    pub range: KeyRange,
    pub prev_kv: bool,
}

impl WatchFilter {
    /// Validates a watch request's table and keys (the range as `Range` reads it; a range
    /// that ends at or before its start is an error here, as it could never match).
    pub fn new(table: &[u8], key: &Bytes, range_end: &Bytes, prev_kv: bool) -> Result<Self> {
        let table = table_name(table)?;
        let range = KeyRange::from_wire(key, range_end)?;
        if let KeyRange::Span {
            start,
            end: Some(end),
        } = &range
            && end <= start
        {
            return Err(Error::invalid(
                "range_end must be empty (one key), \"\\0\" (every key from key on) or greater than key",
            ));
        }
        Ok(Self {
            table,
            range,
            prev_kv,
        })
    }

    /// What `change` means to this watcher.
    pub fn classify(&self, change: &Change) -> Seen {
        if change.table() != self.table {
            return Seen::Nothing;
        }
        match change {
            Change::TableReset { deleted, .. } => Seen::TableReset { deleted: *deleted },
            _ => match change.key() {
                Some(key) if self.range.contains(key) => Seen::Event,
                _ => Seen::Nothing,
            },
        }
    }

    /// The wire event of a change this watcher sees ([`Seen::Event`]).
    pub fn event(&self, revision: Revision, change: &Change) -> Option<wire::Event> {
        let prev_of = |r: &Record| self.prev_kv.then(|| r.kv(false));
        match change {
            Change::Put { record, prev, .. } => Some(wire::Event {
                r#type: wire::EventType::Put as i32,
                kv: Some(record.kv(false)),
                prev_kv: prev.as_ref().and_then(prev_of),
            }),
            Change::Delete { prev, .. } => Some(wire::Event {
                r#type: wire::EventType::Delete as i32,
                kv: Some(KeyValue {
                    key: Bytes::copy_from_slice(prev.key()),
                    create_revision: 0,
                    mod_revision: wire_revision(revision.0),
                    value: Bytes::new(),
                    expires_at_millis: 0,
                }),
                prev_kv: prev_of(prev),
            }),
            Change::TableReset { .. } => None,
        }
    }
}

/// What a change means to one watcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Not its table or not its keys.
    Nothing,
    /// One of its keys changed: an event.
    Event,
    /// Its table was deleted or replaced: the watcher ends.
    TableReset { deleted: bool },
}

/// Bytes an event takes on the wire, about (to cut messages).
pub fn event_bytes(event: &wire::Event) -> usize {
    let kv = |kv: &Option<KeyValue>| {
        kv.as_ref()
            .map_or(0, |kv| kv.key.len() + kv.value.len() + 24)
    };
    8 + kv(&event.kv) + kv(&event.prev_kv)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, value: &str, create: u64, modified: u64) -> Record {
        Record::new(key.as_bytes(), value.as_bytes(), create, modified, 1)
    }

    fn filter(key: &str, range_end: &str, prev_kv: bool) -> WatchFilter {
        WatchFilter::new(
            b"t",
            &Bytes::copy_from_slice(key.as_bytes()),
            &Bytes::copy_from_slice(range_end.as_bytes()),
            prev_kv,
        )
        .expect("valid")
    }

    fn put(table: &str, key: &str) -> Change {
        Change::Put {
            table: Arc::from(table),
            record: record(key, "new", 3, 7),
            prev: Some(record(key, "old", 3, 5)),
        }
    }

    #[test]
    fn a_filter_sees_its_table_and_keys_only() {
        let one = filter("b", "", false);
        assert_eq!(one.classify(&put("t", "b")), Seen::Event);
        assert_eq!(one.classify(&put("t", "bb")), Seen::Nothing);
        assert_eq!(one.classify(&put("u", "b")), Seen::Nothing);
        let prefix = filter("b", "c", false);
        assert_eq!(prefix.classify(&put("t", "b")), Seen::Event);
        assert_eq!(prefix.classify(&put("t", "bzz")), Seen::Event);
        assert_eq!(prefix.classify(&put("t", "c")), Seen::Nothing);
        assert_eq!(prefix.classify(&put("t", "a")), Seen::Nothing);
        let from = filter("m", "\0", false);
        assert_eq!(from.classify(&put("t", "zzz")), Seen::Event);
        assert_eq!(from.classify(&put("t", "l")), Seen::Nothing);
        let all = filter("\0", "\0", false);
        assert_eq!(all.classify(&put("t", "\0")), Seen::Event);
        let reset = Change::TableReset {
            table: Arc::from("t"),
            deleted: true,
        };
        assert_eq!(one.classify(&reset), Seen::TableReset { deleted: true });
    }

    #[test]
    fn a_filter_rejects_bad_requests() {
        let b = |s: &str| Bytes::copy_from_slice(s.as_bytes());
        assert!(
            WatchFilter::new(b"", &b("a"), &b(""), false).is_err(),
            "no table"
        );
        assert!(
            WatchFilter::new(b"t", &b(""), &b(""), false).is_err(),
            "no key"
        );
        assert!(
            WatchFilter::new(b"t", &b("b"), &b("a"), false).is_err(),
            "inverted"
        );
        assert!(
            WatchFilter::new(b"t", &b("b"), &b("b"), false).is_err(),
            "empty"
        );
        assert!(
            WatchFilter::new(&[0xff], &b("a"), &b(""), false).is_err(),
            "not UTF-8"
        );
    }

    #[test]
    fn events_carry_the_pair_and_the_previous_one_when_asked() {
        let change = put("t", "b");
        let plain = filter("b", "", false)
            .event(Revision(7), &change)
            .expect("event");
        assert_eq!(plain.r#type, wire::EventType::Put as i32);
        let kv = plain.kv.expect("kv");
        assert_eq!((&kv.key[..], &kv.value[..]), (&b"b"[..], &b"new"[..]));
        assert_eq!((kv.create_revision, kv.mod_revision), (3, 7));
        assert!(plain.prev_kv.is_none());
        let with_prev = filter("b", "", true)
            .event(Revision(7), &change)
            .expect("event");
        assert_eq!(&with_prev.prev_kv.expect("prev").value[..], b"old");

        let deleted = Change::Delete {
            table: Arc::from("t"),
            prev: record("b", "old", 3, 5),
        };
        let event = filter("b", "", true)
            .event(Revision(9), &deleted)
            .expect("event");
        assert_eq!(event.r#type, wire::EventType::Delete as i32);
        let kv = event.kv.expect("kv");
        assert_eq!(
            (&kv.key[..], kv.mod_revision, kv.value.len()),
            (&b"b"[..], 9, 0)
        );
        assert_eq!(event.prev_kv.expect("prev").mod_revision, 5);
    }

    #[test]
    fn a_recorder_that_is_off_keeps_nothing_and_rollback_forgets() {
        let mut off = Recorder::default();
        off.set_table("t");
        off.put(Revision(1), record("a", "v", 1, 1), None);
        assert!(off.into_changes().is_empty());
        let mut on = Recorder::recording();
        on.set_table("t");
        on.put(Revision(1), record("a", "v", 1, 1), None);
        let mark = on.mark();
        on.delete(Revision(2), record("a", "v", 1, 1));
        on.rollback(mark);
        let changes = on.into_changes();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].change.table(), "t");
    }
}
