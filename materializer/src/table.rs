//! [`Table`]: one table's ordered map of key → [`Record`], and the primitive writes on it.
//!
//! The map is a [`Tree`]: a copy-on-write B+tree with structural sharing. Cloning a table
//! is O(1); a write copies only the path to the changed leaf, and only the first time after
//! a publish (later writes in the same batch mutate in place). That is what lets readers
//! keep an old view while apply builds the next one.

use std::ops::Bound;
use std::sync::Arc;

use imbl::OrdSet;
use triomphe::ThinArc;

use bytes::Bytes;
use regatta_proto::mvcc::v1::KeyValue;

use crate::request::KeyRange;
use crate::tree::Tree;
use crate::{Revision, TableId};

/// A stored pair with its history, in one shared allocation: a header with the key's length
/// and the three revisions, then the key, then the value. Cloning is a reference count; a
/// response gets the value as zero-copy `Bytes`. The record is the table tree's
/// [`Entry`](crate::tree::Entry): its leaves keep only 8 bytes of each key.
///
/// The header is a length byte and LEB128 varints (key length, create, mod, version): 8 to
/// 11 bytes for short keys, revisions below 2^21 and versions below 128 instead of 32 as
/// fixed `u64`s, which is what brings a 24-byte key and a 100-byte value (with the
/// reference counts) to the allocator's 160-byte size class. A key with a time to live
/// has a fifth varint, its expiry (ms since the Unix epoch), flagged by the length byte's
/// high bit: a record without one spends nothing on it. In memory only: snapshots write
/// the revisions (and, in format 3, the expiry) as fixed fields. (Fields of 1, 2, 4 or 8
/// bytes named by a widths byte measured no faster to decode in range scans.)
#[derive(Clone)]
pub struct Record(ThinArc<(), u8>);

/// Longest header: the length byte and five varints of at most 10 bytes.
const MAX_HEADER: usize = 51;
/// Set in the length byte when the header holds a fifth varint, the expiry (the length
/// itself is at most 50).
const EXPIRES: u8 = 0x80;

/// The header of a record with this key length, these revisions and this expiry (0:
/// none, and no byte spent on it), and its length.
fn encode_header(
    key_len: usize,
    revisions: [u64; 3],
    expires_at: u64,
) -> ([u8; MAX_HEADER], usize) {
    let mut header = [0u8; MAX_HEADER];
    let mut at = 1;
    let expiry = (expires_at != 0).then_some(expires_at);
    for mut r in [key_len as u64].into_iter().chain(revisions).chain(expiry) {
        while r >= 0x80 {
            header[at] = (r as u8 & 0x7f) | 0x80;
            r >>= 7;
            at += 1;
        }
        header[at] = r as u8;
        at += 1;
    }
    // At most 50 varint bytes: fits the length byte beside its flag.
    header[0] = (at - 1) as u8 | if expiry.is_some() { EXPIRES } else { 0 };
    (header, at)
}

/// Decodes the LEB128 varint at the start of `bytes` (0 when there is none).
fn varint(bytes: &mut std::slice::Iter<'_, u8>) -> u64 {
    let mut r = 0u64;
    let mut shift = 0u32;
    for &b in bytes.by_ref() {
        r |= u64::from(b & 0x7f).wrapping_shl(shift);
        shift += 7;
        if b & 0x80 == 0 {
            break;
        }
    }
    r
}

/// A record's revisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revisions {
    /// Revision of the write that created the key (since its last deletion).
    pub create: u64,
    /// Revision of the last write to the key.
    pub modified: u64,
    /// Number of writes since creation (1 after the first put).
    pub version: u64,
}

/// A revision as the wire's `int64` (saturating; revisions are log indices).
pub fn wire_revision(revision: u64) -> i64 {
    i64::try_from(revision).unwrap_or(i64::MAX)
}

/// A record's bytes split after the header: its varints (key length, create, mod, version)
/// and its body (the key, then the value).
fn header_and_body(record: &[u8]) -> (&[u8], &[u8]) {
    let at = 1 + usize::from(record.first().copied().unwrap_or(0) & !EXPIRES);
    (
        record.get(1..at).unwrap_or_default(),
        record.get(at..).unwrap_or_default(),
    )
}

/// The key and the value of a record's bytes.
fn key_and_value(record: &[u8]) -> (&[u8], &[u8]) {
    let (header, body) = header_and_body(record);
    // The key's length is the first varint; one byte for keys under 128 bytes.
    let key_len = match header.first() {
        Some(&b) if b < 0x80 => usize::from(b),
        _ => varint(&mut header.iter()) as usize,
    };
    body.split_at_checked(key_len).unwrap_or((body, &[]))
}

impl Record {
    /// A record of `key` and `value` created at `create_revision`, last written at
    /// `mod_revision`, written `version` times since creation.
    pub fn new(
        key: &[u8],
        value: &[u8],
        create_revision: u64,
        mod_revision: u64,
        version: u64,
    ) -> Self {
        Self::expiring(key, value, [create_revision, mod_revision, version], 0)
    }

    /// [`Record::new`] with the revisions `[create, mod, version]` and an expiry in
    /// milliseconds since the Unix epoch (0: never).
    pub fn expiring(key: &[u8], value: &[u8], revisions: [u64; 3], expires_at: u64) -> Self {
        let (header, len) = encode_header(key.len(), revisions, expires_at);
        // Assemble on the stack when small, so the record costs exactly one allocation.
        let mut small = [0u8; 512];
        let total = len + key.len() + value.len();
        if total <= small.len() {
            small[..len].copy_from_slice(&header[..len]);
            small[len..len + key.len()].copy_from_slice(key);
            small[len + key.len()..total].copy_from_slice(value);
            return Self(ThinArc::from_header_and_slice((), &small[..total]));
        }
        let mut buf = Vec::with_capacity(total);
        buf.extend_from_slice(&header[..len]);
        buf.extend_from_slice(key);
        buf.extend_from_slice(value);
        Self(ThinArc::from_header_and_slice((), &buf))
    }

    /// The header, the key and the value.
    fn bytes(&self) -> &[u8] {
        &self.0.slice
    }

    /// The key.
    pub fn key(&self) -> &[u8] {
        key_and_value(self.bytes()).0
    }

    /// The key and the value, from one pass over the header: for a caller needing both.
    pub fn key_and_value(&self) -> (&[u8], &[u8]) {
        key_and_value(self.bytes())
    }

    /// The three revisions, decoded together (one pass over the header): what a caller
    /// needing more than one of them should use.
    pub fn revisions(&self) -> Revisions {
        let mut bytes = header_and_body(self.bytes()).0.iter();
        // The key's length first.
        varint(&mut bytes);
        Revisions {
            create: varint(&mut bytes),
            modified: varint(&mut bytes),
            version: varint(&mut bytes),
        }
    }

    /// When the key expires, in milliseconds since the Unix epoch; 0 when it never does.
    pub fn expires_at(&self) -> u64 {
        if self.bytes().first().is_none_or(|b| b & EXPIRES == 0) {
            return 0;
        }
        let mut bytes = header_and_body(self.bytes()).0.iter();
        for _ in 0..4 {
            varint(&mut bytes);
        }
        varint(&mut bytes)
    }

    /// `false` once the key has expired at `now_ms` (milliseconds since the Unix epoch): it
    /// then counts as absent, to readers and to writes alike, until its delete is applied.
    pub fn live_at(&self, now_ms: u64) -> bool {
        let expires_at = self.expires_at();
        expires_at == 0 || expires_at > now_ms
    }

    /// Revision of the write that created the key (since its last deletion).
    pub fn create_revision(&self) -> u64 {
        self.revisions().create
    }

    /// Revision of the last write to the key.
    pub fn mod_revision(&self) -> u64 {
        self.revisions().modified
    }

    /// Number of writes since creation (1 after the first put).
    pub fn version(&self) -> u64 {
        self.revisions().version
    }

    /// The value.
    pub fn value(&self) -> &[u8] {
        key_and_value(self.bytes()).1
    }

    /// The value as `Bytes`, sharing this record's allocation.
    pub fn value_bytes(&self) -> Bytes {
        Bytes::from_owner(ValueOwner(self.clone()))
    }

    /// The wire pair, its key copied; `keys_only` leaves the value out.
    pub fn kv(&self, keys_only: bool) -> KeyValue {
        self.to_kv(Bytes::copy_from_slice(self.key()), keys_only)
    }

    /// The wire pair with `key` (this record's key, held by the caller as `Bytes`);
    /// `keys_only` leaves the value out.
    pub fn to_kv(&self, key: Bytes, keys_only: bool) -> KeyValue {
        let revisions = self.revisions();
        KeyValue {
            key,
            create_revision: wire_revision(revisions.create),
            mod_revision: wire_revision(revisions.modified),
            value: if keys_only {
                Bytes::new()
            } else {
                self.value_bytes()
            },
            expires_at_millis: wire_revision(self.expires_at()),
        }
    }
}

impl crate::tree::Entry for Record {
    fn key(&self) -> &[u8] {
        Record::key(self)
    }

    fn warm(&self) -> usize {
        ThinArc::strong_count(&self.0)
    }
}

struct ValueOwner(Record);

impl AsRef<[u8]> for ValueOwner {
    fn as_ref(&self) -> &[u8] {
        self.0.value()
    }
}

impl PartialEq for Record {
    fn eq(&self, other: &Self) -> bool {
        self.bytes() == other.bytes()
    }
}

impl Eq for Record {}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let revisions = self.revisions();
        f.debug_struct("Record")
            .field("key", &Bytes::copy_from_slice(self.key()))
            .field("value", &Bytes::copy_from_slice(self.value()))
            .field("create_revision", &revisions.create)
            .field("mod_revision", &revisions.modified)
            .field("version", &revisions.version)
            .field("expires_at", &self.expires_at())
            .finish()
    }
}

/// How a write meets time: the clock of the event it comes from and the expiry a put sets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteTime {
    /// The event's time, in milliseconds since the Unix epoch: a key expired at or before
    /// it counts as absent (a put then creates the key anew).
    pub now_ms: u64,
    /// The expiry the put sets, in milliseconds since the Unix epoch; 0: none.
    pub expires_at: u64,
}

/// One table: its id, config and content.
#[derive(Debug, Clone)]
pub struct Table {
    id: TableId,
    config: Option<Arc<prost_types::Struct>>,
    data: Tree<Record>,
    /// Bytes of every key and value held (what Cluster.Status reports as the table's size).
    bytes: u64,
    /// The keys that have an expiry, by expiry then key: what the core leader's expiry task
    /// reads. Shared structurally between copies like the tree; empty (and free) in a table
    /// without TTLs.
    expiring: OrdSet<(u64, Bytes)>,
}

fn record_bytes(r: &Record) -> u64 {
    (r.key().len() + r.value().len()) as u64
}

/// A key whose expiry has passed, as the expiry task proposes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    pub key: Bytes,
    /// The write that set the expiry: the key is deleted only if it still holds it.
    pub mod_revision: u64,
}

impl Table {
    /// An empty table created by the event at log index `id`.
    pub fn new(id: TableId, config: Option<prost_types::Struct>) -> Self {
        Self {
            id,
            config: config.map(Arc::new),
            data: Tree::new(),
            bytes: 0,
            expiring: OrdSet::new(),
        }
    }

    /// A table with the given content (used when loading snapshots).
    pub(crate) fn with_data(
        id: TableId,
        config: Option<prost_types::Struct>,
        data: Tree<Record>,
    ) -> Self {
        let mut bytes = 0;
        let mut expiring = OrdSet::new();
        for r in data.iter() {
            bytes += record_bytes(r);
            let expires_at = r.expires_at();
            if expires_at != 0 {
                expiring.insert((expires_at, Bytes::copy_from_slice(r.key())));
            }
        }
        Self {
            id,
            config: config.map(Arc::new),
            data,
            bytes,
            expiring,
        }
    }

    pub fn id(&self) -> TableId {
        self.id
    }

    pub fn config(&self) -> Option<&prost_types::Struct> {
        self.config.as_deref()
    }

    /// Number of keys (expired ones not yet deleted included).
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Bytes of every key and value in the table (records' revisions and the tree's own
    /// overhead not counted).
    pub fn data_bytes(&self) -> u64 {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Number of keys that have an expiry.
    pub fn expiring_len(&self) -> usize {
        self.expiring.len()
    }

    /// Up to `max` keys expired at `now_ms` (expiry at or before it), soonest first.
    pub fn expired(&self, now_ms: u64, max: usize) -> Vec<Expired> {
        self.expiring
            .iter()
            .take_while(|(at, _)| *at <= now_ms)
            .filter_map(|(_, key)| {
                let record = self.data.get(key)?;
                Some(Expired {
                    key: key.clone(),
                    mod_revision: record.mod_revision(),
                })
            })
            .take(max)
            .collect()
    }

    /// Leaves and inner nodes of the table's tree ([`Tree::node_counts`]).
    pub fn node_counts(&self) -> (usize, usize) {
        self.data.node_counts()
    }

    /// Point read of what is stored, expired or not: O(log n), no lock.
    pub fn get(&self, key: &[u8]) -> Option<&Record> {
        self.data.get(key)
    }

    /// Point read at `now_ms`: an expired key is absent.
    pub fn get_at(&self, key: &[u8], now_ms: u64) -> Option<&Record> {
        self.data.get(key).filter(|r| r.live_at(now_ms))
    }

    /// Point read at `now_ms` as a wire pair.
    pub fn get_kv(&self, key: &[u8], now_ms: u64) -> Option<KeyValue> {
        self.get_at(key, now_ms).map(|r| r.kv(false))
    }

    /// Every record in key order, expired or not.
    pub fn iter(&self) -> impl Iterator<Item = &Record> + '_ {
        self.data.iter()
    }

    /// Records of `range` in key order, starting strictly after `after` when given, expired
    /// ones included. O(log n) to position, then O(1) amortised per record.
    pub fn scan<'a>(
        &'a self,
        range: &'a KeyRange,
        after: Option<&'a [u8]>,
    ) -> Box<dyn Iterator<Item = &'a Record> + 'a> {
        match range {
            KeyRange::Key(k) => {
                if after.is_some_and(|a| a >= k.as_ref()) {
                    return Box::new(std::iter::empty());
                }
                Box::new(self.data.get(k.as_ref()).into_iter())
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
                Box::new(self.data.range((lower, upper)))
            }
        }
    }

    /// [`Table::scan`] at `now_ms`: expired keys are skipped.
    pub fn scan_at<'a>(
        &'a self,
        range: &'a KeyRange,
        after: Option<&'a [u8]>,
        now_ms: u64,
    ) -> impl Iterator<Item = &'a Record> + 'a {
        self.scan(range, after).filter(move |r| r.live_at(now_ms))
    }

    /// Upserts `key` at `rev`; returns the previous record if it was live at `time.now_ms`
    /// (an expired one is replaced as if absent: the key is created anew). One walk down
    /// the tree for an update and an insert alike (in place when this table copy owns the
    /// path).
    pub fn put(
        &mut self,
        key: &[u8],
        value: &[u8],
        rev: Revision,
        time: WriteTime,
    ) -> Option<Record> {
        self.upsert(key, value, rev, time, |_| {})
    }

    /// [`Table::put`] that also returns the record written (for the watch history).
    pub fn put_returning(
        &mut self,
        key: &[u8],
        value: &[u8],
        rev: Revision,
        time: WriteTime,
    ) -> (Record, Option<Record>) {
        let mut written = None;
        let prev = self.upsert(key, value, rev, time, |record| {
            written = Some(record.clone());
        });
        let written = written
            .unwrap_or_else(|| Record::expiring(key, value, [rev.0, rev.0, 1], time.expires_at));
        (written, prev)
    }

    /// The one upsert of [`Table::put`] and [`Table::put_returning`]; `written` sees the
    /// new record (cloned, a reference count, only when the history keeps it).
    fn upsert(
        &mut self,
        key: &[u8],
        value: &[u8],
        rev: Revision,
        time: WriteTime,
        written: impl FnOnce(&Record),
    ) -> Option<Record> {
        let prev = self.data.upsert(key, |prev| {
            let revisions = match prev.filter(|p| p.live_at(time.now_ms)) {
                Some(p) => {
                    let before = p.revisions();
                    [before.create, rev.0, before.version + 1]
                }
                None => [rev.0, rev.0, 1],
            };
            let record = Record::expiring(key, value, revisions, time.expires_at);
            written(&record);
            record
        });
        match &prev {
            Some(p) => {
                self.bytes = self.bytes - p.value().len() as u64 + value.len() as u64;
                self.forget_expiry(p);
            }
            None => self.bytes += (key.len() + value.len()) as u64,
        }
        if time.expires_at != 0 {
            self.expiring
                .insert((time.expires_at, Bytes::copy_from_slice(key)));
        }
        prev.filter(|p| p.live_at(time.now_ms))
    }

    fn forget_expiry(&mut self, record: &Record) {
        let expires_at = record.expires_at();
        if expires_at != 0 {
            self.expiring
                .remove(&(expires_at, Bytes::copy_from_slice(record.key())));
        }
    }

    /// Deletes every key of `range`, expired ones included; returns the deleted records in
    /// key order.
    pub fn delete(&mut self, range: &KeyRange) -> Vec<Record> {
        let doomed: Vec<Record> = self.scan(range, None).cloned().collect();
        self.remove_scanned(&doomed);
        doomed
    }

    /// Removes `doomed`, records a scan of this table just returned (so each is present).
    pub(crate) fn remove_scanned(&mut self, doomed: &[Record]) {
        for r in doomed {
            self.data.remove_present(r.key());
            self.bytes -= record_bytes(r);
            self.forget_expiry(r);
        }
    }

    /// Deletes `key` if it still holds the write at `mod_revision` and has expired at
    /// `now_ms`; returns the deleted record.
    pub fn expire(&mut self, key: &[u8], mod_revision: u64, now_ms: u64) -> Option<Record> {
        let record = self
            .data
            .get(key)
            .filter(|r| r.mod_revision() == mod_revision && !r.live_at(now_ms))?
            .clone();
        self.remove_scanned(std::slice::from_ref(&record));
        Some(record)
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        self.data = Tree::new();
        self.bytes = 0;
        self.expiring = OrdSet::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_record_keeps_its_key_revisions_and_value(
            create in any::<u64>(),
            modified in any::<u64>(),
            version in any::<u64>(),
            key in proptest::collection::vec(any::<u8>(), 0..300),
            value in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            let r = Record::new(&key, &value, create, modified, version);
            prop_assert_eq!(
                (r.create_revision(), r.mod_revision(), r.version()),
                (create, modified, version)
            );
            prop_assert_eq!(r.key(), &key[..]);
            prop_assert_eq!(r.value(), &value[..]);
            prop_assert_eq!(&r.value_bytes()[..], &value[..]);
            let kv = r.kv(false);
            prop_assert_eq!(&kv.key[..], &key[..]);
            prop_assert_eq!(&kv.value[..], &value[..]);
            prop_assert_eq!(kv.create_revision, i64::try_from(create).unwrap_or(i64::MAX));
            prop_assert_eq!(kv.mod_revision, i64::try_from(modified).unwrap_or(i64::MAX));
            prop_assert!(r.kv(true).value.is_empty());
            prop_assert_eq!(r.expires_at(), 0);
            prop_assert!(r.live_at(u64::MAX));
        }

        #[test]
        fn an_expiring_record_keeps_its_expiry_and_everything_else(
            revisions in any::<[u64; 3]>(),
            expires_at in 1u64..,
            key in proptest::collection::vec(any::<u8>(), 0..300),
            value in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            let r = Record::expiring(&key, &value, revisions, expires_at);
            let got = r.revisions();
            prop_assert_eq!([got.create, got.modified, got.version], revisions);
            prop_assert_eq!(r.expires_at(), expires_at);
            prop_assert_eq!(r.key(), &key[..]);
            prop_assert_eq!(r.value(), &value[..]);
            prop_assert!(r.live_at(expires_at - 1));
            prop_assert!(!r.live_at(expires_at));
            prop_assert_eq!(
                r.kv(false).expires_at_millis,
                i64::try_from(expires_at).unwrap_or(i64::MAX)
            );
        }
    }

    /// A 24-byte key and a 100-byte value at revisions below 2^21 take 133 bytes, 149 with
    /// the reference count and length: the allocator's 160-byte class.
    #[test]
    fn a_small_records_header_is_compact() {
        let r = Record::new(&[1; 24], &[7; 100], 1_000_000, 2_000_000, 3);
        assert_eq!(r.bytes().len(), 1 + 1 + 3 + 3 + 1 + 24 + 100);
        // Varint widths: 7 bits per byte, the key's length included.
        assert_eq!(
            Record::new(&[0; 200], b"v", 127, 128, 16_384).bytes().len(),
            1 + 2 + 1 + 2 + 3 + 200 + 1
        );
        // A thin pointer: a leaf pair is a search word and 8 bytes.
        assert_eq!(std::mem::size_of::<Record>(), 8);
        let widest = Record::new(b"", b"", u64::MAX, u64::MAX, u64::MAX);
        assert_eq!(widest.bytes().len(), MAX_HEADER - 19);
        assert_eq!(widest.version(), u64::MAX);
        assert_eq!(widest.expires_at(), 0);
        // An expiry takes a fifth varint, and only then.
        let expiring = Record::expiring(b"", b"", [u64::MAX; 3], u64::MAX);
        assert_eq!(expiring.bytes().len(), MAX_HEADER - 9);
        assert_eq!(
            (expiring.version(), expiring.expires_at()),
            (u64::MAX, u64::MAX)
        );
        assert_eq!((widest.key(), widest.value()), (&b""[..], &b""[..]));
    }
}
