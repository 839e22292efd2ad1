//! `regatta backup --dir` and `regatta restore --dir`: Regatta's backup directory format
//! through the Maintenance API, so backups move both ways between this store and an existing
//! Regatta deployment. And `regatta backup create`: a snapshot to the object store now,
//! through the Admin API.
//!
//! The directory format (`<table>.bak` streams and `manifest.json`) is
//! `regatta_materializer::backup`'s: this module moves the streams between the node and
//! that codec, shows progress and prints the outcome. A restore reads and checks every
//! file against the manifest before sending anything.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use clap::Args;
use futures::StreamExt;
use regatta_materializer::backup;
use regatta_proto::{
    maintenance::v1::{
        BackupRequest, RestoreInfo, RestoreMessage, maintenance_client::MaintenanceClient,
        restore_message,
    },
    regatta::admin::v1::{CreateSnapshotRequest, admin_client::AdminClient},
    regatta::v1::{
        CreateTableRequest, ListTablesRequest, StatusRequest, cluster_client::ClusterClient,
        tables_client::TablesClient,
    },
    replication::v1::SnapshotChunk,
};
use serde_json::json;
use tonic::transport::Channel;

use super::{CliResult, ClientOptions, Failure, connect, output::print_json, request};
use crate::progress::{BYTES, Progress, size};

/// Bytes per restore message.
const CHUNK_BYTES: usize = 1 << 20;

/// The least deadline of operations that move a whole table or state (a backup, a restore,
/// a snapshot upload): `--timeout` (default 5s) is meant for single requests.
const LONG_OPERATION: Duration = Duration::from_secs(600);

/// `options` with a deadline of at least [`LONG_OPERATION`].
fn long_operation(options: &ClientOptions) -> ClientOptions {
    ClientOptions {
        timeout: options.timeout.max(LONG_OPERATION),
        ..options.clone()
    }
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Directory to write the backup into (created if missing; must not hold a manifest).
    #[arg(long)]
    pub dir: PathBuf,
    /// Tables to back up (repeatable); default: every table.
    #[arg(long = "table")]
    pub tables: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// Backup directory to restore from (with its manifest.json).
    #[arg(long)]
    pub dir: PathBuf,
    /// Tables to restore (repeatable); default: every table in the manifest.
    #[arg(long = "table")]
    pub tables: Vec<String>,
}

fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// A failure to write the backup directory `dir`.
fn write_failure(dir: &Path, e: regatta_materializer::Error) -> Failure {
    Failure {
        code: 1,
        message: format!("{}: {e}", dir.display()),
    }
}

pub async fn backup(args: BackupArgs, options: &ClientOptions) -> CliResult {
    super::check_address(&options.address)?;
    if backup::holds_backup(&args.dir) {
        return Err(Failure::usage(format!(
            "{} already holds a backup ({})",
            args.dir.display(),
            backup::MANIFEST_FILE
        )));
    }
    // Reach the node first: a refused connection leaves no directory behind.
    let options = &long_operation(options);
    let channel = connect(options).await?;
    let mut dir =
        backup::BackupDir::create(&args.dir, now()).map_err(|e| write_failure(&args.dir, e))?;
    let tables = if args.tables.is_empty() {
        let listed = TablesClient::new(channel.clone())
            .list(request(options, ListTablesRequest {})?)
            .await?;
        listed
            .into_inner()
            .tables
            .into_iter()
            .map(|t| t.name)
            .collect()
    } else {
        args.tables.clone()
    };
    // The size of each table's keys and values: an estimate of its backup stream's size
    // (records add a little framing, Snappy takes some off), for the ETA.
    let estimates = match ClusterClient::new(channel.clone())
        .status(request(options, StatusRequest { config: false })?)
        .await
    {
        Ok(status) => status.into_inner().tables,
        Err(_) => Default::default(),
    };
    let mut client = MaintenanceClient::new(channel);
    for name in &tables {
        let clock = Instant::now();
        let mut stream = client
            .backup(request(
                options,
                BackupRequest {
                    table: name.clone().into_bytes().into(),
                },
            )?)
            .await?
            .into_inner();
        let estimate = estimates
            .get(name)
            .and_then(|t| u64::try_from(t.db_size).ok())
            .filter(|b| *b > 0);
        let mut progress = Progress::new(format!("backup {name}"), BYTES, estimate);
        let mut data = Vec::new();
        while let Some(chunk) = stream.message().await? {
            data.extend_from_slice(&chunk.data);
            if estimate.is_some_and(|e| data.len() as u64 > e) {
                progress.set_total(None);
            }
            progress.set(data.len() as u64);
        }
        progress.finish();
        dir.write_stream(name, &data)
            .map_err(|e| write_failure(&args.dir, e))?;
        eprintln!(
            "backed up {name}: {} in {:.1?}",
            size(data.len() as u64),
            clock.elapsed()
        );
    }
    dir.finish(now()).map_err(|e| write_failure(&args.dir, e))?;
    if options.json {
        print_json(&json!({"dir": args.dir.display().to_string(), "tables": tables}));
    } else {
        crate::outln!(
            "backup of {} table(s) written to {}",
            tables.len(),
            args.dir.display()
        );
    }
    Ok(())
}

pub async fn restore(args: RestoreArgs, options: &ClientOptions) -> CliResult {
    // A backup that cannot be read is the caller's to fix (a usage error).
    let refused =
        |e: regatta_materializer::Error| Failure::usage(format!("{}: {e}", args.dir.display()));
    if !backup::holds_backup(&args.dir) {
        return Err(Failure::usage(format!(
            "{} holds no backup (no {}): give --dir with the directory `regatta backup` wrote{}",
            args.dir.display(),
            backup::MANIFEST_FILE,
            if args.dir == Path::new(".") {
                " (without --dir, the current directory is read)"
            } else {
                ""
            }
        )));
    }
    let manifest = backup::read_manifest(&args.dir).map_err(refused)?;
    for wanted in &args.tables {
        if !manifest.tables.iter().any(|t| &t.name == wanted) {
            return Err(Failure::not_found(format!(
                "table {wanted} is not in the backup"
            )));
        }
    }
    // Check every file before changing anything.
    let mut files = Vec::new();
    for entry in &manifest.tables {
        if args.tables.is_empty() || args.tables.contains(&entry.name) {
            let data = backup::read_table_file(&args.dir, entry).map_err(refused)?;
            files.push((entry.name.clone(), data));
        }
    }
    let mut client = maintenance(options).await?;
    restore_tables(&mut client, &files, options).await?;
    if options.json {
        let names: Vec<&String> = files.iter().map(|(n, _)| n).collect();
        print_json(&json!({"restored": names}));
    } else {
        crate::outln!(
            "restored {} table(s) from {}",
            files.len(),
            args.dir.display()
        );
    }
    Ok(())
}

/// A Maintenance client for the node at `--address`, for whole-table operations; fails
/// here if the node cannot be reached.
pub async fn maintenance(options: &ClientOptions) -> CliResult<MaintenanceClient<Channel>> {
    Ok(MaintenanceClient::new(
        connect(&long_operation(options)).await?,
    ))
}

/// What restoring tables with configurations asks of a node that has `existing` tables
/// (name, configuration): the tables to create first with their configuration (a Restore
/// creates a missing table without one), and the existing ones whose configuration
/// differs from the restored one (they keep theirs: the API cannot change a table's
/// configuration). Pure.
pub fn plan_table_configs<'a>(
    existing: &std::collections::BTreeMap<String, Option<prost_types::Struct>>,
    wanted: &'a [(String, prost_types::Struct)],
) -> (Vec<&'a (String, prost_types::Struct)>, Vec<&'a str>) {
    let mut create = Vec::new();
    let mut differ = Vec::new();
    for table in wanted {
        match existing.get(&table.0) {
            None => create.push(table),
            Some(current) if current.as_ref() != Some(&table.1) => differ.push(table.0.as_str()),
            Some(_) => {}
        }
    }
    (create, differ)
}

/// Creates, before their contents are restored, the tables of `configs` (name,
/// configuration) that the node at `--address` does not have, with their configuration;
/// says on stderr which existing ones keep a configuration other than the restored one.
pub async fn create_configured_tables(
    options: &ClientOptions,
    configs: &[(String, prost_types::Struct)],
) -> CliResult {
    if configs.is_empty() {
        return Ok(());
    }
    let mut client = TablesClient::new(connect(options).await?);
    let existing = client
        .list(request(options, ListTablesRequest {})?)
        .await?
        .into_inner()
        .tables
        .into_iter()
        .map(|t| (t.name, t.config))
        .collect();
    let (create, differ) = plan_table_configs(&existing, configs);
    for (name, config) in create {
        let created = client
            .create(request(
                options,
                CreateTableRequest {
                    name: name.clone(),
                    config: Some(config.clone()),
                },
            )?)
            .await;
        match created {
            // Created meanwhile by someone else: it keeps the configuration it was given.
            Err(status) if status.code() == tonic::Code::AlreadyExists => {}
            other => {
                other?;
            }
        }
    }
    for name in differ {
        eprintln!(
            "restore: table {name} exists with another configuration and keeps it (the API cannot change a table's configuration); its contents are restored"
        );
    }
    Ok(())
}

/// Sends each `(table, backup stream)` through `Maintenance.Restore`, in order, with one
/// progress over all bytes. The node checks the whole stream, creates the table if it does
/// not exist and replaces its contents (see `regatta_api::maintenance`).
pub async fn restore_tables(
    client: &mut MaintenanceClient<Channel>,
    files: &[(String, Vec<u8>)],
    options: &ClientOptions,
) -> CliResult {
    let options = &long_operation(options);
    let total: u64 = files.iter().map(|(_, data)| data.len() as u64).sum();
    let progress = std::sync::Arc::new(std::sync::Mutex::new(Progress::new(
        "restore",
        BYTES,
        Some(total),
    )));
    for (name, data) in files {
        let clock = Instant::now();
        let mut messages = vec![RestoreMessage {
            data: Some(restore_message::Data::Info(RestoreInfo {
                table: name.clone().into_bytes().into(),
            })),
        }];
        messages.extend(data.chunks(CHUNK_BYTES).map(|piece| RestoreMessage {
            data: Some(restore_message::Data::Chunk(SnapshotChunk {
                data: piece.to_vec().into(),
                len: piece.len() as u64,
                index: 0,
            })),
        }));
        // Counted as the transport takes each message.
        let counted = progress.clone();
        let messages = futures::stream::iter(messages).inspect(move |m| {
            if let Some(restore_message::Data::Chunk(chunk)) = &m.data
                && let Ok(mut p) = counted.lock()
            {
                p.inc(chunk.data.len() as u64);
            }
        });
        client
            .restore(request(options, messages)?)
            .await
            .map_err(|status| {
                let unimplemented = status.code() == tonic::Code::Unimplemented;
                let mut failure = Failure::from(status);
                failure.message = format!("restoring table {name}: {}", failure.message);
                if unimplemented {
                    failure.message.push_str(&format!(
                        " ({} does not take restores: give a core node's address)",
                        options.address
                    ));
                }
                failure
            })?;
        if let Ok(mut p) = progress.lock() {
            p.finish();
        }
        eprintln!(
            "restored {name}: {} in {:.1?}",
            size(data.len() as u64),
            clock.elapsed()
        );
    }
    Ok(())
}

/// `regatta backup create`: the node at `--address` uploads a snapshot now.
pub async fn create(options: &ClientOptions) -> CliResult {
    let options = long_operation(options);
    let answer = AdminClient::new(connect(&options).await?)
        .create_snapshot(request(&options, CreateSnapshotRequest {})?)
        .await
        .map_err(|status| {
            let unimplemented = status.code() == tonic::Code::Unimplemented;
            let mut failure = Failure::from(status);
            if unimplemented {
                failure.message.push_str(&format!(
                    " ({} is not a core node: ask a core node for a snapshot)",
                    options.address
                ));
            }
            failure
        })?
        .into_inner();
    if options.json {
        print_json(&json!({
            "revision": answer.revision,
            "key": answer.key,
            "size": answer.size,
            "existing": answer.existing,
        }));
    } else if answer.existing {
        crate::outln!(
            "snapshot at revision {} already in the object store (no write since): {} ({} bytes)",
            answer.revision,
            answer.key,
            answer.size
        );
    } else {
        crate::outln!(
            "snapshot at revision {} uploaded: {} ({} bytes)",
            answer.revision,
            answer.key,
            answer.size
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use prost_types::{Struct, Value, value::Kind};

    use super::plan_table_configs;

    fn config(retention: &str) -> Struct {
        Struct {
            fields: [(
                "retention".to_string(),
                Value {
                    kind: Some(Kind::StringValue(retention.into())),
                },
            )]
            .into(),
        }
    }

    #[test]
    fn missing_tables_are_created_with_their_configuration_and_differing_ones_named() {
        let existing: BTreeMap<String, Option<Struct>> = [
            ("same".to_string(), Some(config("7d"))),
            ("other".to_string(), Some(config("1d"))),
            ("bare".to_string(), None),
        ]
        .into();
        let wanted = vec![
            ("same".to_string(), config("7d")),
            ("other".to_string(), config("7d")),
            ("bare".to_string(), config("7d")),
            ("new".to_string(), config("7d")),
        ];
        let (create, differ) = plan_table_configs(&existing, &wanted);
        let created: Vec<&str> = create.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(created, ["new"]);
        assert_eq!(create[0].1, config("7d"));
        assert_eq!(differ, ["other", "bare"]);
    }
}
