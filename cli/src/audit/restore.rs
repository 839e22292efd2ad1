//! Point-in-time restore (`regatta restore --from URL [--revision R] [--table T]`, into a
//! fresh data directory with `--data-dir D`, or into the running cluster at `--address`)
//! and `regatta backup list`.
//!
//! The state at revision R is the newest snapshot at or below R with the archived entries
//! after it, up to and including R, applied by the same apply function the nodes run
//! ([`state_at`]); both targets start from it.
//!
//! Into a cluster, each chosen table is encoded in Regatta's backup stream format and sent
//! through `Maintenance.Restore`, exactly as `restore --dir` sends a `<table>.bak`: the table
//! is created if missing and its contents replaced by the pairs it held at R (with new
//! revisions; tables not chosen are left alone). A missing table that had a configuration is
//! first created with it through `Tables.Create` (a Restore would create it without); an
//! existing one keeps its own, and a difference is said on stderr.
//!
//! Into a data directory, it is written as the Raft snapshot a core node starts from
//! (`raft-snapshots/<R>.rsnap`, see [`regatta_core::durable`]), whose membership is one
//! voter: the node id and Raft address given here. `regatta core --data-dir D` with that id
//! and address then starts a single-node cluster serving exactly the state at R, with its
//! log continuing at R+1; add members with `regatta cluster add-member` as usual. With
//! `--table`, only the named tables are kept.
//!
//! The restorable revisions are those reachable from a snapshot (or from an archive that
//! starts at the beginning of the log) through archived segments without a gap.

use std::{collections::BTreeSet, path::PathBuf, sync::Arc};

use clap::{Args, Subcommand};
use openraft::{BasicNode, CommittedLeaderId, LogId, Membership, SnapshotMeta, StoredMembership};
use regatta_materializer::{Command, State, apply, snapshot};
use serde_json::json;

use crate::client::{CliResult, ClientOptions, Failure, output::print_json};
use crate::progress::{BYTES, Progress};
use regatta_archive::{
    coverage,
    restore::{Phase, restorable},
};

use super::{archive_of, snapshots_of};

/// `regatta restore`: from a backup directory through the API (`--dir`), or to a point in
/// time from object storage (`--from`) into the running cluster at `--address` or, with
/// `--data-dir`, into a fresh data directory.
#[derive(Args, Debug)]
pub struct RestoreCli {
    /// Backup directory in Regatta's format (manifest.json + <table>.bak) to restore
    /// through the Maintenance API of the node at --address. Default (without --from, or
    /// given empty): the current directory, as in Regatta.
    #[arg(long, conflicts_with = "from", value_parser = path_or_empty())]
    pub dir: Option<PathBuf>,
    /// Object store URL to restore from (point in time): builds the state at --revision and
    /// restores its tables into the cluster at --address (each table is created if missing,
    /// with the configuration it had, and its contents replaced, as with --dir), or, with
    /// --data-dir, writes it into a fresh data directory for a single-node core.
    #[arg(long)]
    pub from: Option<String>,
    /// Revision to restore (with --from; default: the newest restorable).
    #[arg(long, requires = "from")]
    pub revision: Option<u64>,
    /// Fresh data directory for a single-node core (with --from): must not exist or be
    /// empty. Without it, --from restores into the cluster at --address; giving both
    /// --data-dir and --address is an error.
    #[arg(long = "data-dir", requires = "from")]
    pub data_dir: Option<PathBuf>,
    /// Node id the restored node will run with (with --data-dir).
    #[arg(long = "raft.node-id", default_value_t = 1, requires = "data_dir")]
    pub node_id: u64,
    /// Raft address the restored node will listen on (with --data-dir).
    #[arg(
        long = "raft.address",
        default_value = "http://127.0.0.1:5012",
        requires = "data_dir"
    )]
    pub raft_address: String,
    /// Tables to restore (repeatable); default: every table.
    #[arg(long = "table")]
    pub tables: Vec<String>,
}

/// `regatta backup`: `--dir DIR` (default: the current directory) writes a backup
/// directory through the API; the subcommands work with the object store.
#[derive(Args, Debug)]
pub struct BackupCli {
    /// Directory to write a backup into, in Regatta's format, through the API. Default
    /// (without a subcommand, or given empty): the current directory, as in Regatta.
    #[arg(long, value_parser = path_or_empty())]
    pub dir: Option<PathBuf>,
    /// Tables to back up (repeatable); default: every table.
    #[arg(long = "table")]
    pub tables: Vec<String>,
    #[command(subcommand)]
    pub command: Option<BackupCommand>,
}

#[derive(Subcommand, Debug)]
pub enum BackupCommand {
    /// Ask the core node at --address to upload a snapshot of its state to its object store
    /// now; waits until the upload is complete and prints the snapshot's key and revision.
    Create,
    /// List snapshots and archived segment ranges in an object store: which revisions can
    /// be restored.
    List {
        /// Object store URL.
        #[arg(long = "object-store", env = "REGATTA_OBJECT_STORE")]
        object_store: String,
    },
}

pub async fn backup(cli: BackupCli, options: &ClientOptions) -> CliResult {
    match (cli.command, cli.dir) {
        (Some(BackupCommand::List { object_store }), _) => list(&object_store, options).await,
        (Some(BackupCommand::Create), _) => crate::client::backup::create(options).await,
        (None, dir) => {
            crate::client::backup::backup(
                crate::client::backup::BackupArgs {
                    dir: dir_or_current(dir),
                    tables: cli.tables,
                },
                options,
            )
            .await
        }
    }
}

/// The parser of a `--dir` that may be given empty (`--dir ""`, the current directory as in
/// Regatta), which clap's path parser refuses.
fn path_or_empty() -> impl clap::builder::TypedValueParser<Value = PathBuf> {
    use clap::builder::TypedValueParser as _;
    clap::builder::OsStringValueParser::new().map(PathBuf::from)
}

/// A `--dir` of `backup` or `restore`: not given, or given empty, is the current directory,
/// as in Regatta.
fn dir_or_current(dir: Option<PathBuf>) -> PathBuf {
    dir.filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `address_given`: `--address` was on the command line (it conflicts with `--data-dir`; an
/// address from `REGATTA_ADDRESS` or the default does not).
pub async fn restore(cli: RestoreCli, options: &ClientOptions, address_given: bool) -> CliResult {
    match (cli.dir, cli.from) {
        (dir, None) => {
            crate::client::backup::restore(
                crate::client::backup::RestoreArgs {
                    dir: dir_or_current(dir),
                    tables: cli.tables,
                },
                options,
            )
            .await
        }
        (None, Some(from)) => {
            let Some(data_dir) = cli.data_dir else {
                return into_cluster(
                    IntoCluster {
                        from,
                        revision: cli.revision,
                        tables: cli.tables,
                    },
                    options,
                )
                .await;
            };
            if address_given {
                return Err(Failure::usage(format!(
                    "--data-dir and --address {} exclude each other: --from restores either into a fresh data directory or into the cluster at --address",
                    options.address
                )));
            }
            point_in_time(PointInTime {
                from,
                revision: cli.revision,
                data_dir,
                node_id: cli.node_id,
                raft_address: cli.raft_address,
                tables: cli.tables,
                json: options.json,
            })
            .await
        }
        (Some(_), Some(_)) => Err(Failure::usage(
            "--dir and --from exclude each other: restore from a backup directory or from an object store",
        )),
    }
}

async fn list(url: &str, options: &ClientOptions) -> CliResult {
    let objects = super::open_store(url)?;
    let snapshots = snapshots_of(&objects);
    let revisions = snapshots
        .list()
        .await
        .map_err(|e| Failure::fault(format!("{e:#}")))?;
    let segments = archive_of(&objects)
        .list()
        .await
        .map_err(|e| Failure::fault(format!("{e:#}")))?;
    let covered = coverage(&segments);
    let ranges = restorable(&revisions, &segments);
    let markers = archive_of(&objects)
        .holes()
        .await
        .map_err(|e| Failure::fault(format!("{e:#}")))?;
    let holes = regatta_archive::store_holes(revisions.first().map(|r| r.0), &segments, &markers);
    if options.json {
        print_json(&json!({
            "snapshots": revisions.iter().map(|r| json!({"revision": r.0, "key": snapshots.location(*r).to_string()})).collect::<Vec<_>>(),
            "segments": segments.iter().map(|s| json!({"first": s.id.first_index().0, "last": s.last.0, "size": s.size, "key": s.location.to_string()})).collect::<Vec<_>>(),
            "archived": covered.iter().map(|r| json!({"first": r.start(), "last": r.end()})).collect::<Vec<_>>(),
            "restorable": ranges.iter().map(|(a, b)| json!({"from": a, "to": b})).collect::<Vec<_>>(),
            "holes": holes.iter().map(|r| json!({"first": r.start(), "last": r.end()})).collect::<Vec<_>>(),
        }));
        return Ok(());
    }
    crate::outln!("snapshots: {}", revisions.len());
    for r in &revisions {
        crate::outln!("  revision {:>12}  {}", r.0, snapshots.location(*r));
    }
    let bytes: u64 = segments.iter().map(|s| s.size).sum();
    crate::outln!("archived segments: {} ({bytes} bytes)", segments.len());
    for r in &covered {
        crate::outln!("  indices {}..={}", r.start(), r.end());
    }
    if holes.is_empty() {
        crate::outln!("holes in the archive: none");
    } else {
        crate::outln!(
            "holes in the archive: indices {} are missing (history there is lost; see `regatta log verify`)",
            regatta_archive::describe(&holes)
        );
    }
    crate::outln!("restorable revisions:");
    if ranges.is_empty() {
        crate::outln!("  none");
    }
    for (a, b) in &ranges {
        crate::outln!("  {a}..={b}");
    }
    Ok(())
}

struct PointInTime {
    from: String,
    revision: Option<u64>,
    data_dir: PathBuf,
    node_id: u64,
    raft_address: String,
    tables: Vec<String>,
    json: bool,
}

/// Draws [`regatta_archive::restore::state_at`]'s progress as bars on stderr.
#[derive(Default)]
struct Bars(Option<Progress>);

impl regatta_archive::restore::Progress for Bars {
    fn start(&mut self, phase: Phase) {
        self.0 = Some(match phase {
            Phase::LoadingSnapshot { revision } => {
                Progress::new(format!("restore: loading snapshot {revision}"), BYTES, None)
            }
            Phase::Applying { entries } => {
                Progress::new("restore: applying", "entries", Some(entries))
            }
        });
    }

    fn advance(&mut self, done: u64, total: Option<u64>) {
        if let Some(bar) = &mut self.0 {
            if total.is_some() {
                bar.set_total(total);
            }
            bar.set(done);
        }
    }

    fn finish(&mut self) {
        if let Some(mut bar) = self.0.take() {
            bar.finish();
        }
    }
}

/// Builds the state at a revision from the object store (pure of the target directory).
pub async fn state_at(
    objects: &regatta_archive::objects::ObjectStorage,
    revision: Option<u64>,
) -> Result<State, Failure> {
    regatta_archive::restore::state_at(objects, revision, &mut Bars::default())
        .await
        .map_err(|e| match e {
            regatta_archive::Error::NotRestorable { .. } => Failure::not_found(e.to_string()),
            e => Failure::fault(e.to_string()),
        })
}

/// The state at `revision` (default: the newest restorable) from the object store at `url`,
/// keeping only `tables` (all when empty). Both restore targets start from this.
async fn restored_state(
    url: &str,
    revision: Option<u64>,
    tables: &[String],
) -> Result<State, Failure> {
    let objects = super::open_store(url)?;
    let state = state_at(&objects, revision).await?;
    keep_tables(state, tables)
}

/// Keeps only `tables` (all when empty); the revision stays.
fn keep_tables(state: State, tables: &[String]) -> Result<State, Failure> {
    if tables.is_empty() {
        return Ok(state);
    }
    let present: BTreeSet<String> = state.tables().map(|(n, _)| n.clone()).collect();
    for t in tables {
        if !present.contains(t) {
            return Err(Failure::not_found(format!(
                "table {t} does not exist at revision {}",
                state.revision()
            )));
        }
    }
    let revision = state.revision();
    let mut state = state;
    for name in present.iter().filter(|n| !tables.contains(n)) {
        apply::apply_command(
            &mut state,
            revision,
            &Command::DeleteTable { name: name.clone() },
            0,
        );
    }
    Ok(state)
}

async fn point_in_time(p: PointInTime) -> CliResult {
    if p.data_dir.exists()
        && std::fs::read_dir(&p.data_dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(Failure::usage(format!(
            "--data-dir {} is not empty: restore writes a fresh data directory",
            p.data_dir.display()
        )));
    }
    if p.node_id == 0 {
        return Err(Failure::usage("--raft.node-id must be positive"));
    }
    regatta_core::peer_url::check("raft.address", &p.raft_address).map_err(Failure::usage)?;
    let state = restored_state(&p.from, p.revision, &p.tables).await?;
    let revision = state.revision().0;
    let state = Arc::new(state);
    let data = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || snapshot::encode(&state))
            .await
            .map_err(Failure::fault)?
            .map_err(|e| Failure::fault(format!("encoding the snapshot: {e}")))?
    };
    // The log of the restored node starts after `revision`; term 0 lets its first election
    // (term 1) append above it.
    let log_id = LogId::new(CommittedLeaderId::new(0, p.node_id), revision);
    let membership = Membership::new(
        vec![BTreeSet::from([p.node_id])],
        std::collections::BTreeMap::from([(
            p.node_id,
            BasicNode {
                addr: p.raft_address.clone(),
            },
        )]),
    );
    let meta = SnapshotMeta {
        last_log_id: Some(log_id),
        last_membership: StoredMembership::new(Some(log_id), membership),
        snapshot_id: format!("restore-{revision:020}"),
    };
    let files = regatta_core::durable::SnapshotFiles::open(p.data_dir.join("raft-snapshots"))
        .map_err(|e| Failure::fault(format!("{e:#}")))?;
    files
        .save(&meta, &data)
        .map_err(|e| Failure::fault(format!("{e:#}")))?;
    let tables: Vec<&String> = state.tables().map(|(n, _)| n).collect();
    if p.json {
        print_json(
            &json!({"revision": revision, "data_dir": p.data_dir.display().to_string(), "tables": tables}),
        );
    } else {
        crate::outln!(
            "restored revision {revision} ({} table(s)) into {}: start it with `regatta core --data-dir {} --raft.node-id {} --raft.address {}`",
            tables.len(),
            p.data_dir.display(),
            p.data_dir.display(),
            p.node_id,
            p.raft_address
        );
    }
    Ok(())
}

struct IntoCluster {
    from: String,
    revision: Option<u64>,
    tables: Vec<String>,
}

/// Restores the state at a revision into the running cluster at `--address`: each table as
/// a backup stream through `Maintenance.Restore`, the way `restore --dir` sends a backup.
async fn into_cluster(p: IntoCluster, options: &ClientOptions) -> CliResult {
    // Check the URL and reach the node before the (possibly long) download and replay.
    super::open_store(&p.from)?;
    let mut client = crate::client::backup::maintenance(options).await?;
    let state = restored_state(&p.from, p.revision, &p.tables).await?;
    let revision = state.revision().0;
    // A Restore creates a missing table without configuration: those that have one are
    // created first, with it.
    let configs: Vec<(String, prost_types::Struct)> = state
        .tables()
        .filter_map(|(name, table)| Some((name.clone(), table.config()?.clone())))
        .collect();
    let streams = tokio::task::spawn_blocking(move || {
        state
            .tables()
            .map(|(name, table)| {
                regatta_materializer::backup::write_backup(name, table, Vec::new())
                    .map(|data| (name.clone(), data))
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(Failure::fault)?
    .map_err(|e| Failure::fault(format!("encoding the backup stream: {e}")))?;
    crate::client::backup::create_configured_tables(options, &configs).await?;
    crate::client::backup::restore_tables(&mut client, &streams, options).await?;
    let tables: Vec<&String> = streams.iter().map(|(n, _)| n).collect();
    if options.json {
        print_json(&json!({"revision": revision, "address": options.address, "restored": tables}));
    } else {
        crate::outln!(
            "restored {} table(s) at revision {revision} into {}",
            tables.len(),
            options.address
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use regatta_materializer::{Materializer, Revision};
    use regatta_proto::event::Event;

    use super::*;

    #[test]
    fn keeping_tables_drops_the_others_at_the_same_revision() {
        use regatta_proto::event::{CreateTable, event::Kind};
        let create = |name: &str| Event {
            version: 1,
            proposed_at_micros: 0,
            kind: Some(Kind::CreateTable(CreateTable {
                name: name.into(),
                config: None,
            })),
        };
        let (a, b) = (create("a"), create("b"));
        let m = Materializer::default();
        m.apply_events([(Revision(1), &a), (Revision(2), &b)])
            .expect("apply");
        let state = State::clone(&m.view());
        let kept = keep_tables(state.clone(), &["b".into()]).expect("b exists");
        let names: Vec<&String> = kept.tables().map(|(n, _)| n).collect();
        assert_eq!(names, ["b"]);
        assert_eq!(kept.revision(), Revision(2));
        assert!(keep_tables(state, &["missing".into()]).is_err());
    }
}
