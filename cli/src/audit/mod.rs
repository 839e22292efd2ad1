//! Reading history: `regatta log replay|verify`, point-in-time `regatta restore --from`, and
//! `regatta backup list`.
//!
//! All of these read a node's data directory without opening its log (no lock, no writes:
//! safe beside a running node, see `regatta_log::reader`) and the object store the cluster
//! archives to (see `regatta_archive` for the layout). Faults are reported with the file
//! or object and the offset or index where they were found, and a non-zero exit.
//!
//! - `replay`: formatting and filtering changes;
//! - `verify`: checking every segment and snapshot;
//! - `restore`: restoring the state at a revision, and the backup listing.
//!
//! Reading history and rebuilding state are `regatta_archive`'s (`History`,
//! `restore::state_at`); this module parses, prints and maps errors to exit codes.

pub mod replay;
pub mod restore;
pub mod verify;

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use crate::client::{CliResult, Failure};
use crate::progress::Progress;
use regatta_archive::{SegmentArchive, objects::ObjectStorage};

/// Where to read history from.
#[derive(Args, Debug, Clone)]
pub struct Sources {
    /// Data directory of a core or an edge node (its log is read in place, read-only).
    #[arg(long = "data-dir", env = "REGATTA_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Object store holding the segment archive and snapshots (default:
    /// `file://<data-dir>/objects`, the core's default).
    #[arg(long = "object-store", env = "REGATTA_OBJECT_STORE")]
    pub object_store: Option<String>,
}

/// A node's log directory, to be read in place.
#[derive(Debug, Clone)]
pub struct LocalLog {
    pub dir: PathBuf,
    /// The data directory is an edge's: every entry in its log is committed (it appends
    /// only what its upstream committed) and it keeps no committed pointer.
    pub edge: bool,
}

impl LocalLog {
    /// Opens the directory read-only; committed history ends at the core's committed
    /// pointer or at an edge's last entry.
    pub fn reader(&self) -> CliResult<regatta_log::reader::DirReader> {
        let fault = |e: regatta_log::Error| Failure::fault(format!("fault: {e}"));
        let reader = regatta_log::reader::DirReader::open(&self.dir).map_err(fault)?;
        if self.edge {
            reader.with_every_entry_committed().map_err(fault)
        } else {
            Ok(reader)
        }
    }
}

/// Whether `data_dir` is an edge's: an edge keeps its local snapshots in `snapshots/`, a
/// core its Raft snapshots in `raft-snapshots/` (each node creates its own on first start).
fn is_edge_data_dir(data_dir: &std::path::Path) -> bool {
    data_dir.join("snapshots").is_dir() && !data_dir.join("raft-snapshots").is_dir()
}

impl Sources {
    /// The node's log (if a data dir was given) and the archive (if any).
    pub fn resolve(&self) -> CliResult<(Option<LocalLog>, Option<ObjectStorage>)> {
        let log_dir = match &self.data_dir {
            Some(dir) => {
                if !dir.is_dir() {
                    return Err(Failure::usage(format!(
                        "--data-dir {}: no such directory",
                        dir.display()
                    )));
                }
                let log = dir.join("log");
                if !log.is_dir() {
                    return Err(Failure::usage(format!(
                        "--data-dir {}: holds no log (expected {})",
                        dir.display(),
                        log.display()
                    )));
                }
                Some(LocalLog {
                    dir: log,
                    edge: is_edge_data_dir(dir),
                })
            }
            None => None,
        };
        let url = match (&self.object_store, &self.data_dir) {
            (Some(url), _) => Some(url.clone()),
            (None, Some(dir)) => {
                let objects = std::path::absolute(dir.join("objects"))
                    .map_err(|e| Failure::usage(format!("--data-dir: {e}")))?;
                objects
                    .is_dir()
                    .then(|| format!("file://{}", objects.display()))
            }
            (None, None) => {
                return Err(Failure::usage(
                    "give --data-dir (a core node's data directory) and/or --object-store URL",
                ));
            }
        };
        let objects = match url {
            Some(url) => Some(open_store(&url)?),
            None => None,
        };
        Ok((log_dir, objects))
    }
}

pub fn archive_of(objects: &ObjectStorage) -> SegmentArchive {
    objects.segments()
}

pub fn snapshots_of(objects: &ObjectStorage) -> regatta_materializer::snapshot::SnapshotStore {
    objects.snapshots()
}

/// Opens the store a `--object-store` URL names, with settings from the environment only;
/// a URL that cannot be opened is bad usage.
pub fn open_store(url: &str) -> CliResult<ObjectStorage> {
    regatta_archive::objects::open(url).map_err(|e| Failure::usage(crate::error::chain(&e)))
}

#[derive(Subcommand, Debug)]
pub enum LogCommand {
    /// Print every committed change in a range of revisions, with its term and commit time,
    /// from the local log and the segment archive together.
    Replay(ReplayArgs),
    /// Check every segment (local and archived) and every snapshot; exit non-zero on the
    /// first fault, naming the file or object and where in it.
    Verify(VerifyArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum, Default)]
pub enum Format {
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// First revision to show (default: the oldest available).
    #[arg(long)]
    pub from: Option<u64>,
    /// Last revision to show (default: the newest committed).
    #[arg(long)]
    pub to: Option<u64>,
    /// Only changes to this table.
    #[arg(long)]
    pub table: Option<String>,
    /// Only changes to keys starting with this prefix.
    #[arg(long)]
    pub prefix: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    #[command(flatten)]
    pub sources: Sources,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub sources: Sources,
}

pub async fn run(command: LogCommand) -> CliResult {
    match command {
        LogCommand::Replay(args) => replay(args).await,
        LogCommand::Verify(args) => verify::run(&args.sources).await,
    }
}

async fn replay(args: ReplayArgs) -> CliResult {
    if let (Some(from), Some(to)) = (args.from, args.to)
        && from > to
    {
        return Err(Failure::usage(format!("--from {from} is after --to {to}")));
    }
    let (local, objects) = args.sources.resolve()?;
    let local = local.as_ref().map(LocalLog::reader).transpose()?;
    let history = regatta_archive::History::open(local, objects.as_ref().map(archive_of)).await?;
    let Some((first, last)) = history.bounds() else {
        return Err(Failure::not_found("no committed history found"));
    };
    let from = args.from.unwrap_or(first);
    if let Some(to) = args.to
        && to > last
    {
        return Err(Failure::not_found(format!(
            "revision {to} is not committed as far as this data directory and archive show (newest: {last})"
        )));
    }
    let to = args.to.unwrap_or(last);
    if from < first {
        return Err(Failure::not_found(format!(
            "revision {from} is no longer available: history starts at {first}"
        )));
    }
    if from > last {
        return Err(Failure::not_found(format!(
            "revision {from} is beyond the newest committed revision {last}"
        )));
    }
    let filter = replay::Filter {
        table: args.table.map(String::into_bytes),
        prefix: args.prefix.map(String::into_bytes),
    };
    let mut progress = Progress::new("replay", "entries", Some(to - from + 1));
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let format = args.format;
    let walked = history
        .walk(from, to, |record| {
            use std::io::Write;
            progress.inc(1);
            for change in replay::decode(record)? {
                let Some(kind) = &change.event.kind else {
                    return Err(Failure::fault(format!(
                        "entry {} carries an event of unknown kind",
                        change.revision
                    )));
                };
                if !filter.keeps(kind) {
                    continue;
                }
                match format {
                    Format::Text => writeln!(out, "{}", replay::to_text(&change)),
                    Format::Json => writeln!(out, "{}", replay::to_json(&change)),
                }
                .map_err(|e| Failure::fault(crate::stdout::closed_pipe_ends(e)))?;
            }
            Ok(())
        })
        .await?;
    use std::io::Write;
    out.flush()
        .map_err(|e| Failure::fault(crate::stdout::closed_pipe_ends(e)))?;
    progress.finish();
    match walked {
        Some(l) if l >= to => Ok(()),
        reached => Err(Failure::fault(format!(
            "history has a gap: replay stopped after revision {} of {from}..={to} (the rest is neither in the local log nor in the archive)",
            reached.map_or("none".into(), |r| r.to_string())
        ))),
    }
}
