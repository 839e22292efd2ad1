//! Side by side in one process: `imbl::OrdMap<Key, Record>` against [`Tree<Record>`],
//! keys of 16–32 bytes shaped like `regatta-bench materializer`'s, 100-byte values, puts in
//! ten sorted batches with a clone (a publish) after each. Lookups alternate between the
//! two maps in blocks, so load from other work on the machine hits both alike.
//!
//! `cargo run --release -p regatta-materializer --example tree_ab -- [KEYS] [MODE] [noreads]`
//! with MODE `both` (default), `imbl`, `tree` (one map per process, for resident bytes),
//! `none` (neither: the baseline for callgrind instruction counts) or `snapload` (time
//! decoding a snapshot of one table of KEYS keys).

use std::time::Instant;

use regatta_materializer::key::Key;
use regatta_materializer::table::Record;
use regatta_materializer::tree::Tree;

mod common;

use common::{Rng, key, rss};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn percentile(v: &mut [u64], p: f64) -> u64 {
    v.sort_unstable();
    v[((v.len() as f64 - 1.0) * p / 100.0) as usize]
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let which = std::env::args().nth(2).unwrap_or_else(|| "both".into());
    let mut rng = Rng(42);
    let keys: Vec<Vec<u8>> = (0..n).map(|i| key(i, &mut rng)).collect();
    let value = vec![7u8; 100];
    let raw: u64 = keys.iter().map(|k| (k.len() + 100) as u64).sum();
    let batch = (n / 10).max(1);
    if which == "snapload" {
        snapshot_load(&keys);
        return;
    }
    let reads = std::env::args().nth(3).is_none_or(|a| a != "noreads");

    let mut imbl_map: imbl::OrdMap<Key, Record> = imbl::OrdMap::new();
    let mut tree: Tree<Record> = Tree::new();
    let mut published_i = imbl_map.clone();
    let mut published_t = tree.clone();
    if which == "imbl" || which == "both" {
        let before = rss();
        let t = Instant::now();
        for chunk in keys.chunks(batch) {
            let mut sorted: Vec<Key> = chunk.iter().map(|k| Key::from_slice(k)).collect();
            sorted.sort_unstable();
            for k in sorted {
                if let Some(slot) = imbl_map.get_mut(&k) {
                    *slot = Record::new(k.as_slice(), &value, 1, 1, 2);
                } else {
                    let record = Record::new(k.as_slice(), &value, 1, 1, 1);
                    imbl_map.insert(k, record);
                }
            }
            published_i = imbl_map.clone();
        }
        let dt = t.elapsed();
        println!(
            "imbl apply {:.0} puts/s resident/raw {:.2}",
            n as f64 / dt.as_secs_f64(),
            (rss() - before) as f64 / raw as f64
        );
    }
    if which == "tree" || which == "both" {
        let before = rss();
        let t = Instant::now();
        for chunk in keys.chunks(batch) {
            let mut sorted: Vec<Key> = chunk.iter().map(|k| Key::from_slice(k)).collect();
            sorted.sort_unstable();
            for k in sorted {
                tree.upsert(k.as_slice(), |p| {
                    let version = p.map_or(1, |p| p.version() + 1);
                    Record::new(k.as_slice(), &value, 1, 1, version)
                });
            }
            published_t = tree.clone();
        }
        let dt = t.elapsed();
        println!(
            "tree apply {:.0} puts/s resident/raw {:.2}",
            n as f64 / dt.as_secs_f64(),
            (rss() - before) as f64 / raw as f64
        );
    }
    drop(published_i);
    drop(published_t);

    if !reads {
        return;
    }
    // Lookups: alternate blocks of 10k between the two maps.
    let mut lat_i = Vec::new();
    let mut lat_t = Vec::new();
    for round in 0..40 {
        for _ in 0..10_000 {
            let k = &keys[(rng.next() % n as u64) as usize];
            let t = Instant::now();
            let found = if round % 2 == 0 {
                if which == "tree" {
                    continue;
                }
                let r = if k.len() <= 38 {
                    imbl_map.get(&Key::from_slice(k))
                } else {
                    imbl_map.get(&k[..])
                };
                r.map(|r| r.value().len())
            } else {
                if which == "imbl" {
                    continue;
                }
                tree.get(&k[..]).map(|r| r.value().len())
            };
            std::hint::black_box(found);
            let ns = t.elapsed().as_nanos() as u64;
            if round % 2 == 0 {
                lat_i.push(ns)
            } else {
                lat_t.push(ns)
            }
        }
    }
    if !lat_i.is_empty() {
        println!(
            "imbl read p50 {} p99 {}",
            percentile(&mut lat_i, 50.0),
            percentile(&mut lat_i, 99.0)
        );
    }
    if !lat_t.is_empty() {
        println!(
            "tree read p50 {} p99 {}",
            percentile(&mut lat_t, 50.0),
            percentile(&mut lat_t, 99.0)
        );
    }
}

/// Encodes a snapshot of one table of `keys` and times decoding it (zstd, parsing and the
/// tree build), best and median of 7.
fn snapshot_load(keys: &[Vec<u8>]) {
    use regatta_materializer::apply::apply_command;
    use regatta_materializer::{Command, Revision, State};
    let mut state = State::new();
    let create = Command::CreateTable {
        name: "t".into(),
        config: None,
    };
    apply_command(&mut state, Revision(1), &create, 0);
    // Random values, as in the bench: they do not compress.
    let mut rng = Rng(7);
    let kvs = keys
        .iter()
        .map(|k| {
            let value: Vec<u8> = (0..100).map(|_| rng.next() as u8).collect();
            (bytes::Bytes::copy_from_slice(k), bytes::Bytes::from(value)).into()
        })
        .collect();
    let restore = Command::RestoreTable {
        name: "t".into(),
        clear: false,
        kvs,
    };
    apply_command(&mut state, Revision(2), &restore, 0);
    let encoded = regatta_materializer::snapshot::encode(&state).expect("encode");
    drop(state);
    let mut times: Vec<u128> = (0..7)
        .map(|_| {
            let t = Instant::now();
            let loaded = regatta_materializer::snapshot::decode(&encoded).expect("decode");
            let dt = t.elapsed().as_millis();
            drop(loaded);
            dt
        })
        .collect();
    times.sort_unstable();
    println!("snapshot decode ms: best {} median {}", times[0], times[3]);
}
