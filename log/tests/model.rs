//! Random sequences of append / truncate / purge / reopen against an in-memory model.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

mod common;

use common::{read_all, rec};
use proptest::prelude::*;
use regatta_log::{EntryId, Error, Log, LogIndex, NodeId, Options, Record, Term};

#[derive(Clone, Debug)]
enum Op {
    /// Append this many entries (payload size given), as one batch.
    Append(Vec<usize>),
    /// Truncate from (first readable + n % len).
    Truncate(u64),
    /// Purge up to (first readable + n), possibly past the end.
    Purge(u64),
    Reopen,
    /// Read a sub-range and compare.
    Read(u64, u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => proptest::collection::vec(0usize..90, 1..6).prop_map(Op::Append),
        1 => any::<u64>().prop_map(Op::Truncate),
        1 => (0u64..12).prop_map(Op::Purge),
        1 => Just(Op::Reopen),
        1 => (any::<u64>(), 0u64..10).prop_map(|(a, b)| Op::Read(a, b)),
    ]
}

/// The model: every readable entry, the purged id, the next index, the current term.
#[derive(Default)]
struct Model {
    entries: Vec<Record>,
    purged: Option<EntryId>,
    next: u64,
    term: u64,
}

impl Model {
    fn first(&self) -> u64 {
        self.purged.map_or(0, |p| p.index.0 + 1)
    }
}

fn check(log: &Log, m: &Model) {
    assert_eq!(read_all(log), m.entries);
    assert_eq!(log.next_index(), LogIndex(m.next));
    assert_eq!(log.purged(), m.purged);
    assert_eq!(log.last_index(), m.entries.last().map(|r| r.id.index));
    assert_eq!(log.first_index(), m.entries.first().map(|r| r.id.index));
    if let Some(p) = m.purged {
        assert!(matches!(log.read(p.index..), Err(Error::Purged { .. })));
    }
}

fn run(ops: Vec<Op>, segment_bytes: u64) {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        segment_bytes,
        ..Options::default()
    };
    let mut log = Some(Log::open(dir.path(), opts.clone()).unwrap());
    let mut m = Model {
        term: 1,
        ..Model::default()
    };
    for op in ops {
        let l = log.as_ref().unwrap();
        match op {
            Op::Append(sizes) => {
                m.term += u64::from(sizes.len() % 2 == 0);
                let batch: Vec<Record> = sizes
                    .iter()
                    .enumerate()
                    .map(|(k, &size)| rec(m.next + k as u64, m.term, size))
                    .collect();
                l.append_blocking(batch.clone()).unwrap();
                m.next += batch.len() as u64;
                m.entries.extend(batch);
            }
            Op::Truncate(n) => {
                if m.entries.is_empty() {
                    continue;
                }
                let k = (n % m.entries.len() as u64) as usize;
                let from = m.entries[k].id.index;
                l.truncate(from).unwrap();
                m.entries.truncate(k);
                m.next = from.0;
            }
            Op::Purge(n) => {
                let up_to = m.first() + n;
                let id = match m.entries.iter().find(|r| r.id.index.0 == up_to) {
                    Some(r) => r.id,
                    None => EntryId::new(LogIndex(up_to), Term(m.term), NodeId(7)),
                };
                l.purge(id).unwrap();
                m.entries.retain(|r| r.id.index.0 > up_to);
                m.purged = Some(id);
                m.next = m.next.max(up_to + 1);
            }
            Op::Reopen => {
                drop(log.take());
                log = Some(Log::open(dir.path(), opts.clone()).unwrap());
            }
            Op::Read(a, len) => {
                if m.entries.is_empty() {
                    continue;
                }
                let k = (a % m.entries.len() as u64) as usize;
                let start = m.entries[k].id.index;
                let got = l.read(start..LogIndex(start.0 + len)).unwrap();
                let want: Vec<Record> = m.entries[k..].iter().take(len as usize).cloned().collect();
                assert_eq!(got, want);
            }
        }
        check(log.as_ref().unwrap(), &m);
    }
    // Whatever happened, a reopen sees the same log.
    drop(log.take());
    check(&Log::open(dir.path(), opts).unwrap(), &m);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model_small_segments(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops, 256);
    }

    #[test]
    fn log_matches_model_large_segments(ops in proptest::collection::vec(op(), 1..25)) {
        run(ops, 1 << 20);
    }
}
