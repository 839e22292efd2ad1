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
    /// Wait for durability through a callback resolved by the log's syncer thread (the path
    /// openraft's `LogFlushed` takes) instead of blocking in `append_next_blocking` (which runs
    /// the fsync on the waiting thread when no other is running).
    #[arg(long)]
    callback: bool,
    /// Number of write + fdatasync pairs timed to measure the raw fsync cost.
    #[arg(long, default_value_t = 300)]
    fsync_samples: usize,
}

struct Outcome {
    writers: usize,
    entries: usize,
    secs: f64,
    p50_us: u64,
    p99_us: u64,
}

impl Outcome {
    fn entries_per_sec(&self) -> f64 {
        self.entries as f64 / self.secs
    }
}

/// p50 and mean (µs) of appending `entry_bytes` to a file and fdatasyncing it.
fn raw_fsync(dir: &Path, entry_bytes: usize, samples: usize) -> anyhow::Result<(u64, u64)> {
    use std::io::Write;
    let path = dir.join("fsync-probe");
    let mut f = std::fs::File::create(&path).context("create fsync probe")?;
    let buf = vec![7u8; entry_bytes];
    let mut lat = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t = Instant::now();
        f.write_all(&buf)?;
        f.sync_data()?;
        lat.push(t.elapsed().as_micros() as u64);
    }
    std::fs::remove_file(&path)?;
    let mean = lat.iter().sum::<u64>() / lat.len().max(1) as u64;
    lat.sort_unstable();
    Ok((percentile(&lat, 50.0), mean))
}

fn run_one(root: &Path, args: &Args, writers: usize) -> anyhow::Result<Outcome> {
    let dir = root.join(format!("log-{writers}"));
    let log = Log::open(
        &dir,
        Options {
            segment_bytes: args.segment_mib << 20,
            ..Options::default()
        },
    )?;
    let payload = Bytes::from(vec![0x5au8; args.entry_bytes]);
    let start = Arc::new(std::sync::Barrier::new(writers + 1));
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let log = log.clone();
            let payload = payload.clone();
            let start = Arc::clone(&start);
            let n = args.entries;
            let callback = args.callback;
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
    lat.sort_unstable();
    Ok(Outcome {
        writers,
        entries: lat.len(),
        secs,
        p50_us: percentile(&lat, 50.0),
        p99_us: percentile(&lat, 99.0),
    })
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&parent)?;
    let root = tempfile::Builder::new()
        .prefix("regatta-log-append-")
        .tempdir_in(&parent)?;
    let (fsync_p50, fsync_mean) = raw_fsync(root.path(), args.entry_bytes, args.fsync_samples)?;

    println!(
        "log-append: {} B entries, {} per writer, {} MiB segments, {} waits, in {}",
        args.entry_bytes,
        args.entries,
        args.segment_mib,
        if args.callback {
            "callback"
        } else {
            "blocking"
        },
        root.path().display()
    );
    println!("raw write+fdatasync: p50 {fsync_p50} us, mean {fsync_mean} us");
    println!(
        "{:>8} {:>10} {:>14} {:>9} {:>9} {:>16}",
        "writers", "entries", "entries/s", "p50 us", "p99 us", "p50 / fsync p50"
    );
    let mut results = Vec::new();
    for &w in &args.writers {
        let o = run_one(root.path(), &args, w)?;
        println!(
            "{:>8} {:>10} {:>14.0} {:>9} {:>9} {:>16.2}",
            o.writers,
            o.entries,
            o.entries_per_sec(),
            o.p50_us,
            o.p99_us,
            o.p50_us as f64 / fsync_p50.max(1) as f64
        );
        results.push(o);
    }

    let mut report = Report::new("log-append");
    report
        .set("entry_bytes", args.entry_bytes)
        .set("entries_per_writer", args.entries)
        .set("segment_mib", args.segment_mib)
        .set(
            "wait",
            if args.callback {
                "callback"
            } else {
                "blocking"
            },
        )
        .set("fsync_p50_us", fsync_p50)
        .set("fsync_mean_us", fsync_mean);
    if let [o] = results.as_slice() {
        report
            .set("writers", o.writers)
            .set("entries_per_sec", o.entries_per_sec().round())
            .set("p50_us", o.p50_us)
            .set("p99_us", o.p99_us);
    } else {
        let all: Vec<_> = results
            .iter()
            .map(|o| {
                json!({
                    "writers": o.writers,
                    "entries_per_sec": o.entries_per_sec().round(),
                    "p50_us": o.p50_us,
                    "p99_us": o.p99_us,
                })
            })
            .collect();
        report.set("results", all);
    }
    report.print();
    Ok(())
}
