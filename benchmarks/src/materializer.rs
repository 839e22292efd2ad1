//! `regatta-bench materializer`: the in-memory read path and apply, in process.
//!
//! Loads `--keys` pairs (keys of 16–32 bytes, `--value-bytes` values) through the real
//! apply path (events → validation → tables, `--batch` puts per publish), then measures:
//! point reads (uniformly random keys, and a hot set of 1,000 keys), 1,000-key range scans,
//! apply throughput (on memory new to the process, and again on memory the allocator
//! kept), snapshot write and load through a local-directory object store,
//! resident bytes per key against raw key+value bytes, and a torn-read check (one writer of
//! counter txns, `--readers` readers, `--torn-secs` seconds). Beside the point reads it
//! reports two floors under them: the machine's cost of one dependent random memory access
//! (`memory_access_ns`), and a read through a plain array of the table's record pointers
//! with no search at all (`index_floor_p50_ns`), what any index that keeps a pointer per
//! key apart from its record pays at least.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use regatta_materializer::request::TableRange;
use regatta_materializer::snapshot::SnapshotStore;
use regatta_materializer::{Command, Materializer, Revision};
use regatta_proto::event::Event;
use regatta_proto::mvcc::v1::{RequestOp, request_op};
use regatta_proto::regatta::v1 as wire;

use crate::report::{Report, percentile};

/// Settings of the scenario.
#[derive(clap::Args)]
pub struct Args {
    /// Number of keys loaded.
    #[arg(long, default_value_t = 1_000_000)]
    keys: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    value_bytes: usize,
    /// Puts per applied (published) batch.
    #[arg(long, default_value_t = 100_000)]
    batch: usize,
    /// Point reads sampled.
    #[arg(long, default_value_t = 500_000)]
    reads: usize,
    /// Range scans of `scan_len` keys sampled.
    #[arg(long, default_value_t = 1_000)]
    scans: usize,
    /// Keys per range scan.
    #[arg(long, default_value_t = 1_000)]
    scan_len: i64,
    /// Duration of the torn-read check in seconds (0 skips it).
    #[arg(long, default_value_t = 60)]
    torn_secs: u64,
    /// Reader threads in the torn-read check.
    #[arg(long, default_value_t = 8)]
    readers: usize,
    /// Keys written by every counter txn in the torn-read check.
    #[arg(long, default_value_t = 16)]
    torn_keys: usize,
}

const TABLE: &str = "bench";

fn key(i: usize, rng: &mut StdRng) -> Bytes {
    // 16–32 bytes, unique by the zero-padded index, spread by a hashed prefix.
    let len = rng.random_range(16..=32);
    let mut k = format!(
        "{:04x}/{i:010}/",
        (i as u32).wrapping_mul(2_654_435_761) >> 16
    )
    .into_bytes();
    while k.len() < len {
        k.push(b'a' + rng.random_range(0..26u8));
    }
    k.truncate(len);
    Bytes::from(k)
}

fn statm_resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Anonymous memory of this process backed by transparent huge pages, in MiB: whether the
/// allocator actually got huge pages (they make a random access ~2× cheaper on the VM).
fn anon_huge_mib() -> u64 {
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
    rollup
        .lines()
        .find_map(|l| l.strip_prefix("AnonHugePages:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        / 1024
}

fn put_event(key: Bytes, value: Bytes) -> anyhow::Result<Event> {
    let put = wire::PutRequest {
        table: Bytes::from_static(TABLE.as_bytes()),
        key,
        value,
        prev_kv: false,
        ttl_millis: 0,
    };
    Ok(Command::try_from(&put)?.to_event(0))
}

fn event_of(command: Command) -> Event {
    command.to_event(0)
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut report = Report::new("materializer");
    report
        .set("keys", args.keys as u64)
        .set("value_bytes", args.value_bytes as u64);
    let mut rng = StdRng::seed_from_u64(42);
    let m = Arc::new(Materializer::default());
    let create = event_of(Command::CreateTable {
        name: TABLE.into(),
        config: None,
    });
    m.apply_events([(Revision(1), &create)])?;
    let mut next = 2u64;

    // Keys are kept for sampling reads; their bytes are counted as raw bytes.
    let keys: Vec<Bytes> = (0..args.keys).map(|i| key(i, &mut rng)).collect();
    let raw_bytes: u64 = keys
        .iter()
        .map(|k| (k.len() + args.value_bytes) as u64)
        .sum();

    // All events are built before measuring, so neither their building nor their memory
    // counts: the table copies keys and values out of the events it applies. The vector is
    // sized up front: growing it would free ~100 MB of smaller copies, which apply would
    // reuse or not depending on when the allocator returns them to the system, and the
    // resident figure would swing by 0.4x raw between runs.
    let mut events = Vec::with_capacity(keys.len());
    for k in &keys {
        let mut value = vec![0u8; args.value_bytes];
        rng.fill(&mut value[..]);
        events.push(put_event(k.clone(), Bytes::from(value))?);
    }
    let before = statm_resident_bytes();

    // Apply: batches of puts, one publish per batch.
    let apply_time = apply_all(&m, &events, next, args.batch)?;
    next += events.len() as u64;
    let after = statm_resident_bytes();
    let resident = after.saturating_sub(before);
    report
        .set(
            "apply_puts_per_sec",
            (args.keys as f64 / apply_time.as_secs_f64()).round(),
        )
        .set("apply_batch", args.batch as u64)
        .set("anon_huge_pages_mib", anon_huge_mib())
        .set("resident_bytes_per_key", resident / args.keys.max(1) as u64)
        .set("raw_bytes_per_key", raw_bytes / args.keys.max(1) as u64)
        .set(
            "resident_over_raw",
            ((resident as f64 / raw_bytes as f64) * 100.0).round() / 100.0,
        );

    point_reads(&m, &keys, &args, &mut rng, &mut report);
    memory_access(&mut rng, &mut report);
    range_scans(&m, &keys, &args, &mut rng, &mut report)?;
    snapshots(&m, args.keys as u64, raw_bytes, &mut report)?;
    if args.torn_secs > 0 {
        torn_reads(&m, &args, next, &mut report)?;
    }

    // Apply again into an empty materializer once the first is gone: the first apply
    // touches memory the process never had (on a VM each new page also faults in the
    // host, ~0.3-0.7 s per million keys here); this one reuses what the allocator kept, as
    // a long-running node does.
    drop(m);
    let warm = Materializer::default();
    warm.apply_events([(Revision(1), &create)])?;
    let warm_time = apply_all(&warm, &events, 2, args.batch)?;
    report.set(
        "apply_warm_puts_per_sec",
        (args.keys as f64 / warm_time.as_secs_f64()).round(),
    );
    report.print();
    Ok(())
}

/// Applies `events` from index `first` in batches of `batch`, one publish each; the time it
/// took.
fn apply_all(
    m: &Materializer,
    events: &[Event],
    first: u64,
    batch: usize,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut next = first;
    for chunk in events.chunks(batch.max(1)) {
        m.apply_events(
            chunk
                .iter()
                .enumerate()
                .map(|(i, e)| (Revision(next + i as u64), e)),
        )?;
        next += chunk.len() as u64;
    }
    Ok(started.elapsed())
}

fn point_reads(
    m: &Materializer,
    keys: &[Bytes],
    args: &Args,
    rng: &mut StdRng,
    report: &mut Report,
) {
    let clock = {
        let started = Instant::now();
        for _ in 0..10_000 {
            std::hint::black_box(Instant::now());
        }
        started.elapsed().as_nanos() as u64 / 10_000
    };
    let sample = |pick: &mut dyn FnMut() -> usize| {
        let mut lat = Vec::with_capacity(args.reads);
        // The query key is copied into one reused buffer before the clock starts: a server
        // looks up a key it has just decoded from a request, in cache, not one behind a
        // pointer into 1M others (which cost this figure one more cache miss until 6 Dec).
        let mut k = Vec::with_capacity(64);
        for _ in 0..args.reads {
            k.clear();
            k.extend_from_slice(&keys[pick()]);
            let k = std::hint::black_box(&k[..]);
            let started = Instant::now();
            let view = m.peek();
            // A read answers with the value: its bytes are read (first and last), as a
            // response would, so the record's memory is part of the measured cost.
            let found = view.table(TABLE).and_then(|t| t.get(k)).map(|r| {
                let v = r.value();
                (v.first().copied(), v.last().copied(), r.mod_revision())
            });
            std::hint::black_box(found);
            lat.push(started.elapsed().as_nanos() as u64);
        }
        lat.sort_unstable();
        lat
    };
    let uniform = sample(&mut || rng.random_range(0..keys.len()));
    let hot: Vec<usize> = (0..1000.min(keys.len()))
        .map(|i| i * (keys.len() / 1000).max(1))
        .collect();
    let mut h = 0usize;
    let hot_lat = sample(&mut || {
        h = (h + 7) % hot.len();
        hot[h]
    });
    let floor = index_floor(m, keys, args.reads, rng);
    if !floor.is_empty() {
        report
            .set("index_floor_p50_ns", percentile(&floor, 50.0))
            .set("index_floor_p99_ns", percentile(&floor, 99.0));
    }
    report
        .set("point_read_p50_ns", percentile(&uniform, 50.0))
        .set("point_read_p99_ns", percentile(&uniform, 99.0))
        .set("point_read_hot_p50_ns", percentile(&hot_lat, 50.0))
        .set("point_read_hot_p99_ns", percentile(&hot_lat, 99.0))
        .set("clock_overhead_ns", clock);
}

/// The floor under a uniformly random point read for any index that keeps one pointer per
/// key apart from the record it points to: the table's records in a plain array, read by
/// position, with no search at all. A read loads the pointer from the array (8 bytes per
/// key, 8 MB for 1M keys, more than stays cached beside the records) and then the record,
/// and answers as the point reads do (the value's first and last bytes, the mod revision).
/// The latencies, sorted; none without the table's records.
fn index_floor(m: &Materializer, keys: &[Bytes], reads: usize, rng: &mut StdRng) -> Vec<u64> {
    let view = m.view();
    let Some(table) = view.table(TABLE) else {
        return Vec::new();
    };
    // Pointers in the order of `keys` (records were allocated in key order within each
    // applied batch), so a random position is a random record, as for the point reads.
    let records: Vec<_> = keys.iter().filter_map(|k| table.get(k).cloned()).collect();
    if records.is_empty() {
        return Vec::new();
    }
    let mut lat = Vec::with_capacity(reads);
    for _ in 0..reads {
        let i = std::hint::black_box(rng.random_range(0..records.len()));
        let started = Instant::now();
        let r = &records[i];
        let v = r.value();
        std::hint::black_box((v.first().copied(), v.last().copied(), r.mod_revision()));
        lat.push(started.elapsed().as_nanos() as u64);
    }
    lat.sort_unstable();
    lat
}

/// Bytes the memory-access probe walks: about what the tables of 1M keys take.
const PROBE_BYTES: usize = 256 << 20;

/// The floor under a uniformly random point read on this machine, measured right after the
/// reads (a VM's memory latency moves within the hour): the mean time of one dependent
/// load from a random cache line of [`PROBE_BYTES`], a pointer chase over one random cycle
/// through all its lines. A point read that misses on its leaf and on its record pays
/// about two of these.
fn memory_access(rng: &mut StdRng, report: &mut Report) {
    const LINE_WORDS: usize = 64 / std::mem::size_of::<usize>();
    let lines = PROBE_BYTES / 64;
    // One cycle through every line (Sattolo's shuffle); each line's first word holds the
    // index of the next line's first word.
    let mut order: Vec<usize> = (0..lines).collect();
    for i in (1..lines).rev() {
        order.swap(i, rng.random_range(0..i));
    }
    let mut next = vec![0usize; lines * LINE_WORDS];
    for (from, to) in order.iter().zip(order.iter().cycle().skip(1)) {
        next[from * LINE_WORDS] = to * LINE_WORDS;
    }
    let steps = 2_000_000;
    let mut at = 0usize;
    let started = Instant::now();
    for _ in 0..steps {
        at = next[at];
    }
    let elapsed = started.elapsed();
    std::hint::black_box(at);
    report.set(
        "memory_access_ns",
        (elapsed.as_nanos() as f64 / steps as f64).round(),
    );
}

fn range_scans(
    m: &Materializer,
    keys: &[Bytes],
    args: &Args,
    rng: &mut StdRng,
    report: &mut Report,
) -> anyhow::Result<()> {
    let mut lat = Vec::with_capacity(args.scans);
    let mut returned = 0usize;
    for _ in 0..args.scans {
        let start = &keys[rng.random_range(0..keys.len())];
        let req = wire::RangeRequest {
            table: Bytes::from_static(TABLE.as_bytes()),
            key: start.clone(),
            range_end: Bytes::from_static(b"\0"),
            limit: args.scan_len,
            ..Default::default()
        };
        let q = TableRange::try_from(&req)?;
        let started = Instant::now();
        let r = m.view().range(&q, regatta_materializer::wall_clock_ms())?;
        lat.push(started.elapsed().as_nanos() as u64);
        returned += r.kvs.len();
    }
    lat.sort_unstable();
    report
        .set("range_scan_keys", args.scan_len)
        .set("range_scan_p50_us", percentile(&lat, 50.0) as f64 / 1000.0)
        .set("range_scan_p99_us", percentile(&lat, 99.0) as f64 / 1000.0)
        .set(
            "range_scan_avg_keys",
            returned as u64 / args.scans.max(1) as u64,
        );
    Ok(())
}

fn snapshots(
    m: &Materializer,
    keys: u64,
    raw_bytes: u64,
    report: &mut Report,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(object_store::local::LocalFileSystem::new_with_prefix(
        dir.path(),
    )?);
    let snaps = SnapshotStore::new(store, "bench");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let view = m.view();
    let started = Instant::now();
    let info = rt.block_on(snaps.upload(Arc::clone(&view)))?;
    let write = started.elapsed();
    let before = statm_resident_bytes();
    let started = Instant::now();
    let state = rt.block_on(snaps.download(info.revision))?;
    let fresh = Materializer::default();
    fresh.replace(state);
    let load = started.elapsed();
    let loaded = statm_resident_bytes().saturating_sub(before);
    anyhow::ensure!(
        fresh.view().table(TABLE).map(|t| t.len()) == view.table(TABLE).map(|t| t.len()),
        "snapshot lost keys"
    );
    report
        .set("snapshot_bytes", info.size)
        .set("snapshot_write_ms", write.as_millis() as u64)
        .set("snapshot_load_ms", load.as_millis() as u64)
        .set("loaded_resident_bytes_per_key", loaded / keys.max(1))
        .set(
            "loaded_resident_over_raw",
            ((loaded as f64 / raw_bytes.max(1) as f64) * 100.0).round() / 100.0,
        );
    Ok(())
}

fn torn_reads(
    m: &Arc<Materializer>,
    args: &Args,
    mut next: u64,
    report: &mut Report,
) -> anyhow::Result<()> {
    let names: Vec<Bytes> = (0..args.torn_keys)
        .map(|i| Bytes::from(format!("torn/{i:04}")))
        .collect();
    let txn = |value: u64| -> anyhow::Result<Event> {
        let success = names
            .iter()
            .map(|k| RequestOp {
                request: Some(request_op::Request::RequestPut(request_op::Put {
                    key: k.clone(),
                    value: Bytes::from(value.to_string()),
                    prev_kv: false,
                    ttl_millis: 0,
                })),
            })
            .collect();
        let req = wire::TxnRequest {
            table: Bytes::from_static(TABLE.as_bytes()),
            compare: vec![],
            success,
            failure: vec![],
        };
        Ok(Command::try_from(&req)?.to_event(0))
    };
    m.apply_events([(Revision(next), &txn(0)?)])?;
    next += 1;
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let torn = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..args.readers)
        .map(|_| {
            let (m, stop, reads, torn, names) = (
                Arc::clone(m),
                Arc::clone(&stop),
                Arc::clone(&reads),
                Arc::clone(&torn),
                names.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let view = m.view();
                    let Some(table) = view.table(TABLE) else {
                        continue;
                    };
                    let first = table.get(&names[0]).map(|r| r.value_bytes());
                    if names
                        .iter()
                        .any(|k| table.get(k).map(|r| r.value_bytes()) != first)
                    {
                        torn.fetch_add(1, Ordering::Relaxed);
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let started = Instant::now();
    let mut txns = 0u64;
    while started.elapsed() < Duration::from_secs(args.torn_secs) {
        txns += 1;
        m.apply_events([(Revision(next), &txn(txns)?)])?;
        next += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().ok().context("reader panicked")?;
    }
    let secs = started.elapsed().as_secs_f64();
    report
        .set("torn_check_secs", args.torn_secs)
        .set("torn_check_txns", txns)
        .set("torn_check_view_reads", reads.load(Ordering::Relaxed))
        .set("torn_reads", torn.load(Ordering::Relaxed))
        .set("torn_check_txns_per_sec", (txns as f64 / secs).round());
    anyhow::ensure!(torn.load(Ordering::Relaxed) == 0, "readers saw a torn txn");
    Ok(())
}
