//! Keys with a time to live: expiry computed from the event's time, expired keys absent to
//! readers and to later writes, deleted by `Expire` entries only while they still hold the
//! write that set the expiry, and kept by snapshots.
#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::{b, cmp, create, op_put, range_req};
use regatta_materializer::apply::apply;
use regatta_materializer::request::TableRange;
use regatta_materializer::table::Expired;
use regatta_materializer::{ApplyResponse, Command, Revision, State, snapshot};
use regatta_proto::event::Event;
use regatta_proto::mvcc::v1::{RequestOp, compare::CompareResult, request_op};
use regatta_proto::regatta::v1 as wire;

/// The time (ms since the epoch) events of these tests are proposed at, by default.
const T: u64 = 1_800_000_000_000;

fn at(command: &Command, now_ms: u64) -> Event {
    command.to_event(now_ms * 1000)
}

fn put(k: &str, v: &str, ttl_millis: i64) -> Command {
    Command::try_from(&wire::PutRequest {
        table: b("t"),
        key: b(k),
        value: b(v),
        prev_kv: true,
        ttl_millis,
    })
    .unwrap()
}

fn expire(keys: &[(&str, u64)]) -> Command {
    Command::Expire {
        table: "t".into(),
        keys: keys
            .iter()
            .map(|(k, r)| Expired {
                key: b(k),
                mod_revision: *r,
            })
            .collect(),
    }
}

/// A state with table `t` at revision 1, ready for `step`.
struct Log {
    state: State,
    next: u64,
}

impl Log {
    fn new() -> Self {
        let mut state = State::default();
        apply(&mut state, Revision(1), &create("t")).unwrap();
        Self { state, next: 2 }
    }

    /// Applies `command` proposed at `now_ms`; returns its revision and response.
    fn step(&mut self, command: &Command, now_ms: u64) -> (u64, ApplyResponse) {
        let rev = self.next;
        self.next += 1;
        let r = apply(&mut self.state, Revision(rev), &at(command, now_ms)).unwrap();
        (rev, r)
    }

    fn get(&self, k: &str, now_ms: u64) -> Option<regatta_proto::mvcc::v1::KeyValue> {
        self.state.get("t", k.as_bytes(), now_ms).unwrap()
    }

    fn keys(&self, now_ms: u64) -> Vec<String> {
        let q = TableRange::try_from(&range_req("t", "\0", "\0")).unwrap();
        self.state
            .range(&q, now_ms)
            .unwrap()
            .kvs
            .iter()
            .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
            .collect()
    }

    fn count(&self, now_ms: u64) -> i64 {
        let mut r = range_req("t", "\0", "\0");
        r.count_only = true;
        let q = TableRange::try_from(&r).unwrap();
        self.state.range(&q, now_ms).unwrap().count
    }
}

#[test]
fn a_key_expires_its_ttl_after_the_puts_event_time_and_is_absent_from_then_on() {
    let mut log = Log::new();
    let (rev, _) = log.step(&put("a", "1", 5_000), T);
    log.step(&put("b", "2", 0), T);
    let kv = log.get("a", T + 4_999).unwrap();
    assert_eq!(kv.expires_at_millis, i64::try_from(T + 5_000).unwrap());
    assert_eq!(kv.mod_revision, i64::try_from(rev).unwrap());
    assert_eq!(log.get("b", T).unwrap().expires_at_millis, 0);
    assert_eq!(log.keys(T + 4_999), ["a", "b"]);
    assert_eq!(log.count(T + 4_999), 2);
    // At its expiry and after: gone for point reads, ranges and counts alike, though its
    // delete is not applied yet.
    assert!(log.get("a", T + 5_000).is_none());
    assert_eq!(log.keys(T + 5_000), ["b"]);
    assert_eq!(log.count(T + 5_000), 1);
    assert_eq!(log.state.table("t").unwrap().len(), 2);
    // The leader's expiry task finds it, soonest first, and its entry deletes it.
    assert!(log.state.expired(T + 4_999, 10).is_empty());
    let due = log.state.expired(T + 5_000, 10);
    assert_eq!(due.len(), 1);
    assert_eq!(
        due[0].1,
        [Expired {
            key: b("a"),
            mod_revision: rev
        }]
    );
    let (_, r) = log.step(&expire(&[("a", rev)]), T + 5_010);
    let ApplyResponse::DeleteRange(d) = r else {
        panic!("{r:?}")
    };
    assert_eq!(d.deleted, 1);
    assert_eq!(log.state.table("t").unwrap().len(), 1);
    assert!(log.state.expired(u64::MAX, 10).is_empty());
}

#[test]
fn an_expire_entry_deletes_only_keys_that_still_hold_the_expiring_write_and_have_expired() {
    let mut log = Log::new();
    let (ra, _) = log.step(&put("a", "1", 1_000), T);
    let (rb, _) = log.step(&put("b", "1", 1_000), T);
    let (rc, _) = log.step(&put("c", "1", 60_000), T);
    // `a` is written again (no TTL) before its expiry entry applies; `c` has not expired.
    log.step(&put("a", "2", 0), T + 500);
    let (_, r) = log.step(&expire(&[("a", ra), ("b", rb), ("c", rc)]), T + 1_000);
    let ApplyResponse::DeleteRange(d) = r else {
        panic!("{r:?}")
    };
    assert_eq!(d.deleted, 1, "only b");
    assert_eq!(log.get("a", u64::MAX).unwrap().value, b("2"));
    assert!(log.state.get("t", b"b", 0).unwrap().is_none());
    assert!(log.get("c", T + 1_000).is_some());
    // A duplicate (an old leader's) deletes nothing more.
    let (_, r) = log.step(&expire(&[("b", rb)]), T + 2_000);
    assert!(matches!(r, ApplyResponse::DeleteRange(d) if d.deleted == 0));
    // What is left to expire: only c.
    let due = log.state.expired(u64::MAX, 10);
    assert_eq!(due[0].1.len(), 1);
    assert_eq!(due[0].1[0].key, b("c"));
}

#[test]
fn a_put_without_ttl_clears_one_and_a_put_on_an_expired_key_creates_it_anew() {
    let mut log = Log::new();
    let (r1, _) = log.step(&put("a", "1", 1_000), T);
    let (r2, resp) = log.step(&put("a", "2", 0), T + 10);
    assert!(matches!(resp, ApplyResponse::Put { prev_kv: Some(_) }));
    let kv = log.get("a", u64::MAX).unwrap();
    assert_eq!(
        (kv.expires_at_millis, kv.create_revision, kv.mod_revision),
        (0, i64::try_from(r1).unwrap(), i64::try_from(r2).unwrap())
    );
    assert!(log.state.expired(u64::MAX, 10).is_empty());

    // Expired but not yet deleted: a put at a later event time starts a new life.
    let (r3, _) = log.step(&put("b", "1", 1_000), T);
    log.step(&put("b", "1b", 0), T + 100);
    let (r4, resp) = log.step(&put("b", "2", 1_000), T + 200);
    assert!(matches!(resp, ApplyResponse::Put { prev_kv: Some(_) }));
    let (r5, resp) = log.step(&put("b", "3", 0), T + 1_300);
    assert!(
        matches!(resp, ApplyResponse::Put { prev_kv: None }),
        "the expired pair is not a previous pair: {resp:?}"
    );
    let kv = log.get("b", u64::MAX).unwrap();
    assert_eq!(kv.create_revision, i64::try_from(r5).unwrap());
    assert!(r3 < r4 && r4 < r5);
    assert!(log.state.expired(u64::MAX, 10).is_empty());
}

#[test]
fn transactions_judge_expiry_at_their_event_time_and_may_set_ttls() {
    let mut log = Log::new();
    log.step(&put("lock", "owner-1", 1_000), T);
    let take = |owner: &str| {
        Command::try_from(&wire::TxnRequest {
            table: b("t"),
            // Does anybody hold the lock (an existence test)? If not, take it.
            compare: vec![cmp("lock", "", CompareResult::Equal, None)],
            success: vec![],
            failure: vec![RequestOp {
                request: Some(request_op::Request::RequestPut(request_op::Put {
                    key: b("lock"),
                    value: Bytes::from(owner.to_owned()),
                    prev_kv: false,
                    ttl_millis: 2_000,
                })),
            }],
        })
        .unwrap()
    };
    // While held, the compares (the key exists) hold: success branch, nothing written.
    let (_, r) = log.step(&take("owner-2"), T + 500);
    assert!(matches!(&r, ApplyResponse::Txn(t) if t.succeeded), "{r:?}");
    assert_eq!(log.get("lock", T + 500).unwrap().value, b("owner-1"));
    // Expired at the event's time: absent, so the failure branch takes it with a new TTL.
    let (rev, r) = log.step(&take("owner-2"), T + 1_000);
    assert!(matches!(&r, ApplyResponse::Txn(t) if !t.succeeded), "{r:?}");
    let kv = log.get("lock", T + 1_000).unwrap();
    assert_eq!(kv.value, b("owner-2"));
    assert_eq!(kv.expires_at_millis, i64::try_from(T + 3_000).unwrap());
    assert_eq!(kv.create_revision, i64::try_from(rev).unwrap());
    // A txn put with a TTL from a plain op helper works too (ttl 0: none).
    let plain = Command::try_from(&wire::TxnRequest {
        table: b("t"),
        compare: vec![],
        success: vec![op_put("x", "1")],
        failure: vec![],
    })
    .unwrap();
    log.step(&plain, T);
    assert_eq!(log.get("x", u64::MAX).unwrap().expires_at_millis, 0);
}

#[test]
fn a_delete_range_removes_expired_keys_without_counting_them() {
    let mut log = Log::new();
    log.step(&put("a", "1", 1_000), T);
    log.step(&put("b", "1", 0), T);
    let delete = Command::try_from(&wire::DeleteRangeRequest {
        table: b("t"),
        key: b("\0"),
        range_end: b("\0"),
        prev_kv: true,
        count: true,
    })
    .unwrap();
    let (_, r) = log.step(&delete, T + 1_000);
    let ApplyResponse::DeleteRange(d) = r else {
        panic!("{r:?}")
    };
    assert_eq!(d.deleted, 1);
    assert_eq!(d.prev_kvs.len(), 1);
    assert_eq!(d.prev_kvs[0].key, b("b"));
    assert!(log.state.table("t").unwrap().is_empty());
    assert!(log.state.expired(u64::MAX, 10).is_empty());
}

#[test]
fn ttls_out_of_range_are_refused() {
    let bad = |ttl| {
        Command::try_from(&wire::PutRequest {
            table: b("t"),
            key: b("k"),
            value: b("v"),
            prev_kv: false,
            ttl_millis: ttl,
        })
        .unwrap_err()
        .to_string()
    };
    assert!(bad(-1).contains("negative"), "{}", bad(-1));
    assert!(bad(i64::MAX).contains("ten years"), "{}", bad(i64::MAX));
}

#[test]
fn a_key_with_a_ttl_makes_the_snapshot_version_3_and_keeps_its_expiry() {
    let mut log = Log::new();
    log.step(&put("a", "1", 5_000), T);
    log.step(&put("b", "2", 0), T);
    let bytes = snapshot::encode(&log.state).unwrap();
    let raw = zstd::decode_all(bytes.as_slice()).unwrap();
    assert_eq!(raw[8..12], 3u32.to_le_bytes());
    let back = snapshot::decode(&bytes).unwrap();
    let kv = back.get("t", b"a", T).unwrap().unwrap();
    assert_eq!(kv.expires_at_millis, i64::try_from(T + 5_000).unwrap());
    assert!(back.get("t", b"a", T + 5_000).unwrap().is_none());
    // The expiry index is rebuilt on load: the next leader finds the key.
    assert_eq!(
        back.expired(T + 5_000, 10),
        log.state.expired(T + 5_000, 10)
    );
    assert_eq!(back.expired(T + 5_000, 10).len(), 1);

    // Without any expiring key the snapshot stays version 2.
    log.step(&put("a", "1", 0), T + 1);
    let raw = zstd::decode_all(snapshot::encode(&log.state).unwrap().as_slice()).unwrap();
    assert_eq!(raw[8..12], 2u32.to_le_bytes());
}

#[test]
fn a_backup_keeps_expiries_and_a_restore_puts_them_back() {
    use regatta_materializer::backup;
    let mut log = Log::new();
    log.step(&put("a", "1", 5_000), T);
    log.step(&put("b", "2", 0), T);
    let bytes = backup::write_backup("t", log.state.table("t").unwrap(), Vec::new()).unwrap();
    let pairs: Vec<_> = backup::BackupReader::new(bytes.as_slice())
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        pairs.iter().map(|p| p.expires_at).collect::<Vec<_>>(),
        [T + 5_000, 0]
    );
    // Restored into a fresh table through the restore entries of the log.
    let mut restored = Log::new();
    for command in backup::restore_from_stream(bytes.as_slice(), "t", 1 << 20).unwrap() {
        restored.step(&command, T + 10);
    }
    assert_eq!(
        restored.get("a", T).unwrap().expires_at_millis,
        i64::try_from(T + 5_000).unwrap()
    );
    assert!(restored.get("a", T + 5_000).is_none());
    assert_eq!(restored.get("b", u64::MAX).unwrap().expires_at_millis, 0);
    assert_eq!(restored.state.expired(T + 5_000, 10).len(), 1);
}

#[test]
fn puts_with_ttls_in_a_batch_entry_each_get_their_expiry() {
    // A batch of more than 32 puts is applied as a run in key order (apply's fast path).
    let mut log = Log::new();
    let puts: Vec<Command> = (0..40)
        .map(|i| {
            put(
                &format!("k{:02}", 39 - i),
                "v",
                if i % 2 == 0 { 1_000 + i } else { 0 },
            )
        })
        .collect();
    log.step(&Command::Batch(puts), T);
    for i in 0..40i64 {
        let kv = log.get(&format!("k{:02}", 39 - i), T).unwrap();
        let want = if i % 2 == 0 { T as i64 + 1_000 + i } else { 0 };
        assert_eq!(kv.expires_at_millis, want, "key {}", 39 - i);
    }
    assert_eq!(log.state.expired(u64::MAX, 100)[0].1.len(), 20);
    assert_eq!(log.keys(T + 2_000).len(), 20);
}
