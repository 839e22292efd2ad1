//! Concurrent appenders: every entry present, in order, gap-free; readers running alongside
//! always see at least every durable entry.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use regatta_log::{EntryId, Log, LogIndex, NodeId, Options, Record, RecordKind, Term};

fn tagged(index: LogIndex, writer: u64, seq: u64) -> Record {
    let payload = Bytes::from(format!("{writer}:{seq}"));
    Record::new(
        EntryId::new(index, Term(1), NodeId(writer)),
        RecordKind::Normal,
        payload,
    )
}

/// Checks the whole log: indices 0.. gap-free, each writer's entries exactly once, in order.
fn check_log(log: &Log, writers: u64, per_writer: u64) {
    let all = log.read(..).unwrap();
    assert_eq!(all.len() as u64, writers * per_writer);
    let mut seen: HashMap<u64, u64> = HashMap::new();
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r.id.index, LogIndex(i as u64), "gap-free and in order");
        let text = std::str::from_utf8(&r.payload).unwrap();
        let (w, s) = text.split_once(':').unwrap();
        let (w, s): (u64, u64) = (w.parse().unwrap(), s.parse().unwrap());
        let expected = seen.entry(w).or_insert(0);
        assert_eq!(s, *expected, "writer {w}'s entries in its order");
        *expected += 1;
    }
    assert!(seen.values().all(|&n| n == per_writer));
}

#[test]
fn concurrent_threads_with_a_reader() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(
        dir.path(),
        Options {
            segment_bytes: 4096,
            ..Options::default()
        },
    )
    .unwrap();
    let (writers, per_writer) = (8u64, 150u64);
    let stop = Arc::new(AtomicBool::new(false));

    let reader = {
        let log = log.clone();
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::Acquire) {
                let durable = log.durable_next();
                let got = log.read(..durable).unwrap();
                assert!(
                    got.len() as u64 >= durable.0,
                    "every durable entry is readable"
                );
                for (i, r) in got.iter().enumerate() {
                    assert_eq!(r.id.index, LogIndex(i as u64));
                }
                reads += 1;
            }
            reads
        })
    };

    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let log = log.clone();
            std::thread::spawn(move || {
                for s in 0..per_writer {
                    let (tx, rx) = std::sync::mpsc::sync_channel(1);
                    log.append_next_with(
                        |index| vec![tagged(index, w, s)],
                        move |r| {
                            let _ = tx.send(r);
                        },
                    )
                    .unwrap();
                    rx.recv_timeout(Duration::from_secs(60))
                        .expect("append resolves")
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    stop.store(true, Ordering::Release);
    assert!(reader.join().unwrap() > 0);
    assert_eq!(log.durable_next(), LogIndex(writers * per_writer));
    check_log(&log, writers, per_writer);
    assert!(log.segments().len() > 1, "the run crossed segment rolls");

    drop(log);
    let reopened = Log::open(dir.path(), Options::default()).unwrap();
    check_log(&reopened, writers, per_writer);
}

/// Blocking appenders run fsync rounds themselves when nobody else is: still one round at a
/// time, still every entry durable and in place.
#[test]
fn concurrent_blocking_threads() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(
        dir.path(),
        Options {
            segment_bytes: 2048,
            ..Options::default()
        },
    )
    .unwrap();
    let (writers, per_writer) = (8u64, 100u64);
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let log = log.clone();
            std::thread::spawn(move || {
                for s in 0..per_writer {
                    log.append_next_blocking(|index| vec![tagged(index, w, s)])
                        .unwrap();
                    assert!(log.durable_next().0 > 0);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(log.durable_next(), LogIndex(writers * per_writer));
    check_log(&log, writers, per_writer);
}

#[test]
fn concurrent_async_tasks() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), Options::default()).unwrap();
    let (writers, per_writer) = (32u64, 40u64);
    rt.block_on(async {
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let log = log.clone();
                tokio::spawn(async move {
                    for s in 0..per_writer {
                        log.append_next(|index| vec![tagged(index, w, s)])
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(120);
        for t in tasks {
            tokio::time::timeout_at(deadline.into(), t)
                .await
                .expect("writers finish")
                .unwrap();
        }
    });
    check_log(&log, writers, per_writer);
}

#[test]
fn appends_out_of_order_are_refused_and_do_not_disturb_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), Options::default()).unwrap();
    log.append_blocking(vec![tagged(LogIndex(0), 0, 0)])
        .unwrap();
    let err = log
        .append_blocking(vec![tagged(LogIndex(5), 0, 1)])
        .unwrap_err();
    assert!(
        matches!(err, regatta_log::Error::OutOfOrder { .. }),
        "{err}"
    );
    assert!(!err.must_stop() && !err.is_retryable());
    let mut older = tagged(LogIndex(1), 0, 1);
    log.append_blocking(vec![older.clone()]).unwrap();
    older.id = EntryId::new(LogIndex(2), Term(0), NodeId(0));
    let err = log.append_blocking(vec![older]).unwrap_err();
    assert!(
        matches!(err, regatta_log::Error::TermRegressed { .. }),
        "{err}"
    );
    assert_eq!(log.last_index(), Some(LogIndex(1)));
}

#[test]
fn a_directory_is_opened_once() {
    let dir = tempfile::tempdir().unwrap();
    let _log = Log::open(dir.path(), Options::default()).unwrap();
    let err = Log::open(dir.path(), Options::default()).unwrap_err();
    assert!(matches!(err, regatta_log::Error::Locked { .. }), "{err}");
}

#[test]
fn sealed_segments_archive_and_come_back_identical() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(
        dir.path(),
        Options {
            segment_bytes: 1024,
            ..Options::default()
        },
    )
    .unwrap();
    for i in 0..100u64 {
        log.append_blocking(vec![tagged(LogIndex(i), 0, i)])
            .unwrap();
    }
    let sealed = log.sealed_segments();
    assert!(sealed.len() >= 3);
    for s in &sealed {
        let archive = regatta_log::archive::pack_file(&s.path, 3).unwrap();
        let back = regatta_log::archive::unpack(&s.path, &archive).unwrap();
        assert_eq!(back.id, s.id);
        assert_eq!(back.last, s.last.index);
        assert_eq!(back.segment, std::fs::read(&s.path).unwrap());
    }
}

#[test]
fn a_written_mark_is_durable_after_its_fsync_or_after_a_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let gate = regatta_log::testing::RoundGate::default();
    let log = Log::open(
        dir.path(),
        Options {
            on_sync: Some(gate.observer()),
            ..Options::default()
        },
    )
    .unwrap();
    for i in 0..5 {
        log.append_blocking(vec![tagged(LogIndex(i), 0, i)])
            .unwrap();
    }
    assert!(log.is_durable(log.written_mark()).unwrap());

    // Written, its fsync round held: not durable.
    gate.set_open(false);
    let (covered, durable) = std::sync::mpsc::channel();
    log.append_with(vec![tagged(LogIndex(5), 0, 5)], move |r| {
        let _ = covered.send(r);
    })
    .unwrap();
    let mark = log.written_mark();
    assert!(!log.is_durable(mark).unwrap());
    gate.set_open(true);
    // The append's callback runs once the round that covers it has moved the pointer.
    durable
        .recv_timeout(Duration::from_secs(30))
        .expect("the fsync round never ended")
        .unwrap();
    assert!(log.is_durable(mark).unwrap());
    assert!(log.durable_next() >= LogIndex(6));

    // Written, then cut off by a truncation (which makes it durable first): the mark is
    // reached although the durable pointer is now below it.
    gate.set_open(false);
    log.append_with((6..10).map(|i| tagged(LogIndex(i), 0, i)).collect(), |_| {})
        .unwrap();
    let mark = log.written_mark();
    assert!(!log.is_durable(mark).unwrap());
    gate.set_open(true);
    log.truncate(LogIndex(7)).unwrap();
    assert_eq!(log.durable_next(), LogIndex(7));
    assert!(log.is_durable(mark).unwrap());
}

/// `Options::sync_pause`: after one of its rounds the syncer rests; appends meanwhile are
/// readable at once and made durable together by the next round, and a caller that blocks
/// for durability runs that round itself instead of waiting for the rest to end.
#[test]
fn a_resting_syncer_covers_the_appends_meanwhile_with_one_round_a_blocking_sync_runs_at_once() {
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc;
    let pause = regatta_log::MAX_SYNC_PAUSE;
    let dir = tempfile::tempdir().unwrap();
    let rounds = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&rounds);
    let log = Log::open(
        dir.path(),
        Options {
            sync_pause: pause,
            on_sync: Some(regatta_log::SyncObserver(Arc::new(move |_| {
                counted.fetch_add(1, Ordering::SeqCst);
            }))),
            ..Options::default()
        },
    )
    .unwrap();

    // The first append finds the syncer idle: one round makes it durable, then it rests.
    let (tx, rx) = mpsc::channel();
    let first = tx.clone();
    log.append_with(vec![tagged(LogIndex(0), 0, 0)], move |r| {
        first.send((0u64, r.is_ok())).unwrap()
    })
    .unwrap();
    assert_eq!(rx.recv().unwrap(), (0, true));
    assert_eq!(rounds.load(Ordering::SeqCst), 1);

    // Appends while it rests: readable at once; none durable yet.
    for seq in 1..=50u64 {
        let tx = tx.clone();
        log.append_with(vec![tagged(LogIndex(seq), 0, seq)], move |r| {
            tx.send((seq, r.is_ok())).unwrap()
        })
        .unwrap();
    }
    assert_eq!(log.read(..).unwrap().len(), 51, "written is readable");
    assert!(
        rx.try_recv().is_err(),
        "nothing is made durable while the syncer rests"
    );

    // A blocking sync runs the next round itself: all fifty durable, one more round.
    let started = Instant::now();
    log.sync().unwrap();
    let done: Vec<_> = rx.try_iter().collect();
    assert_eq!(done, (1..=50).map(|s| (s, true)).collect::<Vec<_>>());
    assert_eq!(
        rounds.load(Ordering::SeqCst),
        2,
        "one round for all of them"
    );

    // Closing the log ends the rest at once (and syncs what is left).
    log.append_with(vec![tagged(LogIndex(51), 0, 51)], move |r| {
        tx.send((51, r.is_ok())).unwrap()
    })
    .unwrap();
    drop(log);
    assert_eq!(rx.recv().unwrap(), (51, true), "made durable on close");
    assert!(
        started.elapsed() < pause,
        "neither the blocking sync nor the close waited out the rest"
    );
}
