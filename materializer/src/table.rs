//! [`Table`]: one table's ordered map of key → [`Record`], and the primitive writes on it.
//!
//! The map is an `imbl::OrdMap`: an immutable B-tree with structural sharing. Cloning a
//! table is O(1); a write copies only the path to the changed leaf, and only the first time
//! after a publish (later writes in the same batch mutate in place). That is what lets
//! readers keep an old view while apply builds the next one.

use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use imbl::OrdMap;
use regatta_proto::mvcc::v1::KeyValue;

use crate::request::KeyRange;
use crate::{Revision, TableId};

/// A stored value with its history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub value: Bytes,
    /// Revision of the write that created the key (since its last deletion).
    pub create_revision: u64,
    /// Revision of the last write to the key.
    pub mod_revision: u64,
    /// Number of writes since creation (1 after the first put).
    pub version: u64,
}

impl Record {
    /// The wire pair for `key`; `keys_only` leaves the value out.
    pub fn to_kv(&self, key: &Bytes, keys_only: bool) -> KeyValue {
        KeyValue {
            key: key.clone(),
            create_revision: i64::try_from(self.create_revision).unwrap_or(i64::MAX),
            mod_revision: i64::try_from(self.mod_revision).unwrap_or(i64::MAX),
            value: if keys_only {
                Bytes::new()
            } else {
                self.value.clone()
            },
        }
    }
}

/// One table: its id, config and content.
#[derive(Debug, Clone)]
pub struct Table {
    id: TableId,
    config: Option<Arc<prost_types::Struct>>,
    data: OrdMap<Bytes, Record>,
}

impl Table {
    /// An empty table created by the event at log index `id`.
    pub fn new(id: TableId, config: Option<prost_types::Struct>) -> Self {
        Self {
            id,
            config: config.map(Arc::new),
            data: OrdMap::new(),
        }
    }

    /// A table with the given content (used when loading snapshots).
    pub(crate) fn with_data(
        id: TableId,
        config: Option<prost_types::Struct>,
        data: OrdMap<Bytes, Record>,
    ) -> Self {
        Self {
            id,
            config: config.map(Arc::new),
            data,
        }
    }

    pub fn id(&self) -> TableId {
        self.id
    }

    pub fn config(&self) -> Option<&prost_types::Struct> {
        self.config.as_deref()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Point read: O(log n), no lock.
    pub fn get(&self, key: &[u8]) -> Option<&Record> {
        self.data.get(key)
    }

    /// Point read as a wire pair.
    pub fn get_kv(&self, key: &[u8]) -> Option<KeyValue> {
        self.data.get_key_value(key).map(|(k, r)| r.to_kv(k, false))
    }

    /// Every pair in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &Record)> + '_ {
        self.data.iter()
    }

    /// Pairs of `range` in key order, starting strictly after `after` when given.
    /// O(log n) to position, then O(1) amortised per pair.
    pub fn scan<'a>(
        &'a self,
        range: &'a KeyRange,
        after: Option<&'a [u8]>,
    ) -> Box<dyn Iterator<Item = (&'a Bytes, &'a Record)> + 'a> {
        match range {
            KeyRange::Key(k) => {
                if after.is_some_and(|a| a >= k.as_ref()) {
                    return Box::new(std::iter::empty());
                }
                Box::new(self.data.get_key_value(k.as_ref()).into_iter())
            }
            KeyRange::Span { start, end } => {
                let lower: Bound<&[u8]> = match after {
                    Some(a) if a >= start.as_ref() => Bound::Excluded(a),
                    _ => Bound::Included(start.as_ref()),
                };
                let upper: Bound<&[u8]> = match end {
                    Some(e) => {
                        let lo = match lower {
                            Bound::Included(l) | Bound::Excluded(l) => l,
                            Bound::Unbounded => &[],
                        };
                        // An empty or inverted interval is simply empty.
                        if e.as_ref() <= lo {
                            return Box::new(std::iter::empty());
                        }
                        Bound::Excluded(e.as_ref())
                    }
                    None => Bound::Unbounded,
                };
                Box::new(self.data.range::<_, [u8]>((lower, upper)))
            }
        }
    }

    /// Upserts `key` at `rev`; returns the previous record.
    pub fn put(&mut self, key: Bytes, value: Bytes, rev: Revision) -> Option<Record> {
        let prev = self.data.get(key.as_ref()).cloned();
        let record = match &prev {
            Some(p) => Record {
                value,
                create_revision: p.create_revision,
                mod_revision: rev.0,
                version: p.version + 1,
            },
            None => Record {
                value,
                create_revision: rev.0,
                mod_revision: rev.0,
                version: 1,
            },
        };
        self.data.insert(key, record);
        prev
    }

    /// Deletes every key of `range`; returns the deleted pairs in key order.
    pub fn delete(&mut self, range: &KeyRange) -> Vec<(Bytes, Record)> {
        let doomed: Vec<Bytes> = self.scan(range, None).map(|(k, _)| k.clone()).collect();
        doomed
            .into_iter()
            .filter_map(|k| self.data.remove(k.as_ref()).map(|r| (k, r)))
            .collect()
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        self.data = OrdMap::new();
    }
}
