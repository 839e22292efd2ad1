//! `log-read`: sequential read of sealed log segments through their memory maps.
//!
//! Writes about `--size-mib` of entries (large batches, so setup is quick), reopens the log
//! (which scans and checksums every segment: reported as `open_secs`), then reads every entry
//! of the sealed segments in order, verifying each frame's checksum and index as a reader
//! always does. Payloads are handed out without copying. The page cache is warm (the data was
//! just written); that is the case for an edge or follower catching up from a recent log.

use std::path::PathBuf;
use std::time::Instant;

use bytes::Bytes;
use regatta_log::{EntryId, Log, LogIndex, NodeId, Options, Record, RecordKind, Term};

use crate::report::Report;

/// Settings of the scenario.
#[derive(clap::Args)]
pub struct Args {
    /// Approximate size of the log to read, in MiB.
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    /// Payload bytes per entry.
    #[arg(long, default_value_t = 1024)]
    entry_bytes: usize,
    /// Segment size in MiB.
    #[arg(long, default_value_t = 64)]
    segment_mib: u64,
    /// Directory to create the log in (a temporary directory inside it is used and removed).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Read passes; the best and the first are reported.
    #[arg(long, default_value_t = 3)]
    passes: usize,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&parent)?;
    let root = tempfile::Builder::new()
        .prefix("regatta-log-read-")
        .tempdir_in(&parent)?;
    let opts = Options {
        segment_bytes: args.segment_mib << 20,
        ..Options::default()
    };
    let frame = regatta_log::record::frame_len(args.entry_bytes) as u64;
    let total = (args.size_mib << 20) / frame;

    let t = Instant::now();
    {
        let log = Log::open(root.path(), opts.clone())?;
        let payload = Bytes::from(vec![0xa5u8; args.entry_bytes]);
        let batch = 4096u64;
        let mut next = 0u64;
        while next < total {
            let n = batch.min(total - next);
            let records = (next..next + n)
                .map(|i| {
                    let id = EntryId::new(LogIndex(i), Term(1), NodeId(1));
                    Record::new(id, RecordKind::Normal, payload.clone())
                })
                .collect();
            log.append_blocking(records)?;
            next += n;
        }
    }
    let write_secs = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let log = Log::open(root.path(), opts)?;
    let open_secs = t.elapsed().as_secs_f64();
    let segments = log.segments();
    let Some(open_first) = segments.last().map(|s| s.first_index()) else {
        anyhow::bail!("the log has no segments");
    };
    let sealed_segments = segments.len() - 1;

    let mut secs = Vec::new();
    let mut bytes_read = 0u64;
    let mut entries = 0u64;
    for _ in 0..args.passes.max(1) {
        let t = Instant::now();
        let (mut b, mut n, mut check) = (0u64, 0u64, 0u64);
        for r in log.iter(..open_first)? {
            let r = r?;
            b += frame_len(&r);
            n += 1;
            check ^= u64::from(r.payload.first().copied().unwrap_or(0));
        }
        secs.push(t.elapsed().as_secs_f64());
        std::hint::black_box(check);
        bytes_read = b;
        entries = n;
    }
    anyhow::ensure!(
        entries == open_first.0,
        "read {entries} entries, expected {}",
        open_first.0
    );
    let best = secs.iter().copied().fold(f64::INFINITY, f64::min);
    let gbps = |s: f64| bytes_read as f64 / s / 1e9;

    println!(
        "log-read: {} sealed segments of {} MiB, {} B entries, {} entries, {:.2} GB",
        sealed_segments,
        args.segment_mib,
        args.entry_bytes,
        entries,
        bytes_read as f64 / 1e9
    );
    let mut report = Report::new("log-read");
    report
        .set("entry_bytes", args.entry_bytes)
        .set("segment_mib", args.segment_mib)
        .set("sealed_segments", sealed_segments)
        .set("entries", entries)
        .set("bytes", bytes_read)
        .set("write_secs", round3(write_secs))
        .set("open_secs", round3(open_secs))
        .set("first_pass_gb_per_sec", round3(gbps(secs[0])))
        .set("gb_per_sec", round3(gbps(best)))
        .set("entries_per_sec", (entries as f64 / best).round());
    report.print();
    Ok(())
}

fn frame_len(r: &Record) -> u64 {
    r.frame_len() as u64
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
