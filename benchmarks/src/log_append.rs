//! `log-append`: durable appends to the segmented log from concurrent writers, fsync on.
//!
//! Each writer appends one entry at a time and waits until it is durable before the next, so
//! the figures show what group commit buys: with many writers each fsync carries many entries.
//! The raw cost of one small write + fdatasync on the same disk is measured first, so the
//! single-writer figure can be compared with "one fsync per entry".

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use regatta_log::{EntryId, Log, NodeId, Options, Record, RecordKind, Term};
use serde_json::json;

use crate::report::{Report, percentile};

/// Settings of the scenario.
#[derive(clap::Args)]
pub struct Args {
    /// Concurrent writers; repeat or separate with commas to run several (default 1,16,64).
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 16, 64])]
    writers: Vec<usize>,
    /// Entries each writer appends.
    #[arg(long, default_value_t = 2000)]
    entries: usize,
    /// Payload bytes per entry.
    #[arg(long, default_value_t = 256)]
    entry_bytes: usize,
    /// Directory to create the logs in (a temporary directory inside it is used and removed).
    /// It must be on the disk under test: not tmpfs.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Segment size in MiB.
    #[arg(long, default_value_t = 64)]
    segment_mib: u64,
    /// How writers wait for durability: `blocking` (OS threads in `append_next_blocking`,
    /// which run the fsync themselves when none is running), `callback` (OS threads waiting on
    /// a callback resolved by the log's syncer thread: the path openraft's `LogFlushed` takes)
    /// or `async` (tokio tasks on a 2-worker runtime awaiting `append_next`).
    #[arg(long, value_enum, default_value_t = Wait::Blocking)]
    wait: Wait,
    /// Number of write + fdatasync pairs timed to measure the raw fsync cost when no
    /// single-writer blocking run provides interleaved samples.
    #[arg(long, default_value_t = 300)]
    fsync_samples: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Wait {
    Blocking,
    Callback,
    Async,
}

impl Wait {
    fn name(self) -> &'static str {
        match self {
            Wait::Blocking => "blocking",
            Wait::Callback => "callback",
            Wait::Async => "async",
        }
    }
}

struct Outcome {
    writers: usize,
    entries: usize,
    secs: f64,
    p50_us: u64,
    p99_us: u64,
    mean_us: u64,
}

impl Outcome {
    /// The outcome of `writers` writers whose appends took `lat` µs each over `secs`.
    fn new(writers: usize, mut lat: Vec<u64>, secs: f64) -> Self {
        lat.sort_unstable();
        Outcome {
            writers,
            entries: lat.len(),
            secs,
            p50_us: percentile(&lat, 50.0),
            p99_us: percentile(&lat, 99.0),
            mean_us: mean(&lat),
        }
    }

    fn entries_per_sec(&self) -> f64 {
        self.entries as f64 / self.secs
    }
}

fn mean(lat: &[u64]) -> u64 {
    lat.iter().sum::<u64>() / lat.len().max(1) as u64
}

fn ratio(a: u64, b: u64) -> f64 {
    (a as f64 / b.max(1) as f64 * 100.0).round() / 100.0
}

/// A file to time raw small write + fdatasync pairs on, next to the logs.
struct FsyncProbe {
    file: std::fs::File,
    buf: Vec<u8>,
    lat: Vec<u64>,
}

impl FsyncProbe {
    fn new(dir: &Path, entry_bytes: usize) -> anyhow::Result<Self> {
        let file = std::fs::File::create(dir.join("fsync-probe")).context("create fsync probe")?;
        Ok(Self {
            file,
            buf: vec![7u8; entry_bytes],
            lat: Vec::new(),
        })
    }

    fn sample(&mut self, n: usize) -> anyhow::Result<()> {
        use std::io::Write;
        for _ in 0..n {
            let t = Instant::now();
            self.file.write_all(&self.buf)?;
            self.file.sync_data()?;
            self.lat.push(t.elapsed().as_micros() as u64);
        }
        Ok(())
    }

    /// p50 and mean in µs.
    fn stats(&self) -> (u64, u64) {
        let mut lat = self.lat.clone();
        lat.sort_unstable();
        (percentile(&lat, 50.0), mean(&lat))
    }
}

fn run_one(
    root: &Path,
    args: &Args,
    writers: usize,
    probe: Option<&mut FsyncProbe>,
) -> anyhow::Result<Outcome> {
    let dir = root.join(format!("log-{writers}"));
    let log = Log::open(
        &dir,
        Options {
            segment_bytes: args.segment_mib << 20,
            ..Options::default()
        },
    )?;
    let payload = Bytes::from(vec![0x5au8; args.entry_bytes]);
    if let Some(probe) = probe {
        // One writer, interleaved with raw fsyncs in chunks of 50 so both see the same disk
        // weather (fsync latency on a shared machine drifts by 10x within a minute).
        let mut lat = Vec::with_capacity(args.entries);
        // Throughput counts only the time spent appending, not the interleaved probes.
        let mut busy = Duration::ZERO;
        while lat.len() < args.entries {
            let chunk = 50.min(args.entries - lat.len());
            let c0 = Instant::now();
            for _ in 0..chunk {
                let t = Instant::now();
                log.append_next_blocking(|index| {
                    let id = EntryId::new(index, Term(1), NodeId(0));
                    vec![Record::new(id, RecordKind::Normal, payload.clone())]
                })?;
                lat.push(t.elapsed().as_micros() as u64);
            }
            busy += c0.elapsed();
            probe.sample(chunk)?;
        }
        drop(log);
        std::fs::remove_dir_all(&dir).ok();
        return Ok(Outcome::new(writers, lat, busy.as_secs_f64()));
    }
    if args.wait == Wait::Async {
        return run_async(log, dir, args, writers, payload);
    }
    let start = Arc::new(std::sync::Barrier::new(writers + 1));
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let log = log.clone();
            let payload = payload.clone();
            let start = Arc::clone(&start);
            let n = args.entries;
            let callback = args.wait == Wait::Callback;
            std::thread::spawn(move || -> anyhow::Result<Vec<u64>> {
                let mut lat = Vec::with_capacity(n);
                start.wait();
                for _ in 0..n {
                    let t = Instant::now();
                    let build = |index| {
                        let id = EntryId::new(index, Term(1), NodeId(w as u64));
                        vec![Record::new(id, RecordKind::Normal, payload.clone())]
                    };
                    if callback {
                        let (tx, rx) = sync_channel(1);
                        log.append_next_with(build, move |r| {
                            let _ = tx.send(r);
                        })?;
                        rx.recv_timeout(Duration::from_secs(120))
                            .context("append never resolved")??;
                    } else {
                        log.append_next_blocking(build)?;
                    }
                    lat.push(t.elapsed().as_micros() as u64);
                }
                Ok(lat)
            })
        })
        .collect();
    start.wait();
    let t0 = Instant::now();
    let mut lat = Vec::with_capacity(writers * args.entries);
    for h in handles {
        let part = h
            .join()
            .map_err(|_| anyhow::anyhow!("writer thread panicked"))??;
        lat.extend(part);
    }
    let secs = t0.elapsed().as_secs_f64();
    anyhow::ensure!(
        log.durable_next().0 == (writers * args.entries) as u64,
        "log holds {} durable entries, expected {}",
        log.durable_next(),
        writers * args.entries
    );
    drop(log);
    std::fs::remove_dir_all(&dir).ok();
    Ok(Outcome::new(writers, lat, secs))
}

/// Writers as tokio tasks on two worker threads (as many as the machine has cores).
fn run_async(
    log: Log,
    dir: PathBuf,
    args: &Args,
    writers: usize,
    payload: Bytes,
) -> anyhow::Result<Outcome> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let n = args.entries;
    let (secs, lat) = rt.block_on(async {
        let t0 = Instant::now();
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let log = log.clone();
                let payload = payload.clone();
                tokio::spawn(async move {
                    let mut lat = Vec::with_capacity(n);
                    for _ in 0..n {
                        let t = Instant::now();
                        log.append_next(|index| {
                            let id = EntryId::new(index, Term(1), NodeId(w as u64));
                            vec![Record::new(id, RecordKind::Normal, payload.clone())]
                        })
                        .await?;
                        lat.push(t.elapsed().as_micros() as u64);
                    }
                    anyhow::Ok(lat)
                })
            })
            .collect();
        let mut lat = Vec::with_capacity(writers * n);
        for t in tasks {
            lat.extend(t.await??);
        }
        anyhow::Ok((t0.elapsed().as_secs_f64(), lat))
    })?;
    anyhow::ensure!(
        log.durable_next().0 == (writers * n) as u64,
        "not every entry is durable"
    );
    drop(log);
    std::fs::remove_dir_all(&dir).ok();
    Ok(Outcome::new(writers, lat, secs))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&parent)?;
    let root = tempfile::Builder::new()
        .prefix("regatta-log-append-")
        .tempdir_in(&parent)?;
    let mut probe = FsyncProbe::new(root.path(), args.entry_bytes)?;
    // Outcomes of all runs, then the fsync figures (which the single-writer run adds to).
    let mut results = Vec::new();
    for &w in &args.writers {
        let interleave = (w == 1 && args.wait == Wait::Blocking).then_some(&mut probe);
        results.push(run_one(root.path(), &args, w, interleave)?);
    }
    if probe.lat.is_empty() {
        probe.sample(args.fsync_samples)?;
    }
    let (fsync_p50, fsync_mean) = probe.stats();

    println!(
        "log-append: {} B entries, {} per writer, {} MiB segments, {} waits, in {}",
        args.entry_bytes,
        args.entries,
        args.segment_mib,
        args.wait.name(),
        root.path().display()
    );
    println!(
        "raw write+fdatasync: p50 {fsync_p50} us, mean {fsync_mean} us ({} samples{})",
        probe.lat.len(),
        if args.writers.contains(&1) && args.wait == Wait::Blocking {
            ", interleaved with the single-writer run"
        } else {
            ""
        }
    );
    println!(
        "{:>8} {:>10} {:>12} {:>8} {:>8} {:>8} {:>12} {:>13}",
        "writers", "entries", "entries/s", "p50 us", "p99 us", "mean us", "p50/fsync", "mean/fsync"
    );
    for o in &results {
        println!(
            "{:>8} {:>10} {:>12.0} {:>8} {:>8} {:>8} {:>12.2} {:>13.2}",
            o.writers,
            o.entries,
            o.entries_per_sec(),
            o.p50_us,
            o.p99_us,
            o.mean_us,
            ratio(o.p50_us, fsync_p50),
            ratio(o.mean_us, fsync_mean),
        );
    }

    let mut report = Report::new("log-append");
    report
        .set("entry_bytes", args.entry_bytes)
        .set("entries_per_writer", args.entries)
        .set("segment_mib", args.segment_mib)
        .set("wait", args.wait.name())
        .set("fsync_p50_us", fsync_p50)
        .set("fsync_mean_us", fsync_mean);
    let figures = |o: &Outcome| {
        json!({
            "writers": o.writers,
            "entries_per_sec": o.entries_per_sec().round(),
            "p50_us": o.p50_us,
            "p99_us": o.p99_us,
            "mean_us": o.mean_us,
            "p50_over_fsync_p50": ratio(o.p50_us, fsync_p50),
            "mean_over_fsync_mean": ratio(o.mean_us, fsync_mean),
        })
    };
    if let [o] = results.as_slice() {
        if let serde_json::Value::Object(fields) = figures(o) {
            for (name, value) in fields {
                report.set(&name, value);
            }
        }
    } else {
        report.set("results", results.iter().map(figures).collect::<Vec<_>>());
    }
    report.print();
    Ok(())
}
