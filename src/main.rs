//! The `regatta` binary: core and edge nodes, the single-machine `dev` mode, and the client
//! command line.

mod address;
mod admin;
mod audit;
mod client;
mod config;
mod core;
mod dev;
mod disk;
mod edge;
mod flags;
mod limits;
mod metrics;
mod node;
mod objects;
mod progress;
mod reseed;
mod rest;
mod runtime;
mod shutdown;
mod telemetry;

use std::process::ExitCode;

// The allocator: jemalloc. Under glibc malloc, `_int_malloc` alone was a tenth of the core
// leader's CPU during durable writes; jemalloc's per-thread caches serve the request path's
// many small allocations (HTTP/2 frames, headers, protobuf messages) without it. With
// `thp:always` it backs its arenas with transparent huge pages, which this kind of machine
// only grants on request (`madvise`), cutting the TLB misses of random lookups in the tables.
// Measured in benchmarks/README.md.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's compiled-in options (`_RJEM_MALLOC_CONF` in the environment overrides them).
/// Exporting the symbol jemalloc reads at start is the one unsafe item of this binary: a
/// NUL-terminated static string, never written.
#[allow(unsafe_code)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static MALLOC_CONF: &[u8; 31] = b"thp:always,metadata_thp:always\0";

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "regatta",
    version,
    about = "Regatta: a log-centric, hub-and-spoke key-value store"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a node of the core cluster (Raft): takes every write into the replicated log.
    #[command(visible_alias = "leader")]
    Core {
        #[command(flatten)]
        args: core::CoreArgs,
        #[command(flatten)]
        logging: telemetry::LogArgs,
        #[command(flatten)]
        runtime: runtime::RuntimeArgs,
    },
    /// Run an edge node: a read-only replica that follows the core's log.
    #[command(visible_alias = "follower")]
    Edge {
        #[command(flatten)]
        args: edge::EdgeArgs,
        #[command(flatten)]
        logging: telemetry::LogArgs,
        #[command(flatten)]
        runtime: runtime::RuntimeArgs,
    },
    /// Run the whole store on this machine: a single-node core with a local object store.
    Dev {
        #[command(flatten)]
        args: dev::DevArgs,
        #[command(flatten)]
        logging: telemetry::LogArgs,
        #[command(flatten)]
        runtime: runtime::RuntimeArgs,
    },
    /// Manage tables.
    Table {
        #[command(flatten)]
        options: client::ClientOptions,
        #[command(subcommand)]
        command: client::table::TableCommand,
    },
    /// Read and write keys.
    Kv {
        #[command(flatten)]
        options: client::ClientOptions,
        #[command(subcommand)]
        command: client::kv::KvCommand,
    },
    /// Back up tables into a directory in Regatta's backup format (`--dir`, through the
    /// API), or list what the object store can restore (`backup list`).
    #[command(args_conflicts_with_subcommands = true)]
    Backup {
        #[command(flatten)]
        options: client::ClientOptions,
        #[command(flatten)]
        args: audit::restore::BackupCli,
    },
    /// Restore tables from a backup directory in Regatta's format (`--dir`, checks every MD5
    /// first), or restore to a point in time from object storage (`--from URL [--revision
    /// R]`) into the running cluster at `--address` or into a fresh data directory
    /// (`--data-dir D`).
    Restore {
        #[command(flatten)]
        options: client::ClientOptions,
        #[command(flatten)]
        args: audit::restore::RestoreCli,
    },
    /// Audit the log: replay committed changes, verify segments and snapshots.
    Log {
        #[command(subcommand)]
        command: audit::LogCommand,
    },
    /// Move a node's damaged data directory aside (never deleting it) so that the node starts
    /// empty and is re-seeded: a core node from the leader, an edge from its upstream. For a
    /// core node, refused unless the member at `--address` shows another node holding the data.
    Reseed {
        #[command(flatten)]
        options: client::ClientOptions,
        #[command(flatten)]
        args: reseed::ReseedArgs,
    },
    /// Inspect and change the cluster.
    Cluster {
        #[command(flatten)]
        options: client::ClientOptions,
        #[command(subcommand)]
        command: client::cluster::ClusterCommand,
    },
}

fn main() -> ExitCode {
    let matches =
        match config::parse_with_config_file(Cli::command(), std::env::args_os().collect()) {
            Ok(m) => m,
            Err(e) => e.exit(),
        };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // Server commands may size the runtime; client commands take the default.
    let runtime = match &cli.command {
        Command::Core { runtime, .. }
        | Command::Edge { runtime, .. }
        | Command::Dev { runtime, .. } => runtime.build(),
        _ => runtime::RuntimeArgs::default().build(),
    };
    let runtime = match runtime {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Core { args, logging, .. } => server(logging, core::run(args)).await,
            Command::Edge { args, logging, .. } => server(logging, edge::run(args)).await,
            Command::Dev { args, logging, .. } => server(logging, dev::run(args)).await,
            Command::Table { options, command } => client::table::run(command, &options).await,
            Command::Kv { options, command } => client::kv::run(command, &options).await,
            Command::Backup { options, args } => audit::restore::backup(args, &options).await,
            Command::Restore { options, args } => {
                // `--address` typed on the command line conflicts with `--data-dir`.
                let address_given = matches
                    .subcommand_matches("restore")
                    .and_then(|m| m.value_source("address"))
                    == Some(clap::parser::ValueSource::CommandLine);
                audit::restore::restore(args, &options, address_given).await
            }
            Command::Log { command } => audit::run(command).await,
            Command::Cluster { options, command } => client::cluster::run(command, &options).await,
            Command::Reseed { options, args } => reseed::run(args, &options).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

/// Runs a server command with logging set up; its error becomes exit code 1.
async fn server(
    logging: telemetry::LogArgs,
    run: impl std::future::Future<Output = anyhow::Result<()>>,
) -> client::CliResult {
    if let Err(e) = telemetry::init(&logging) {
        return Err(client::Failure {
            code: 2,
            message: format!("{e:#}"),
        });
    }
    run.await.map_err(|e| {
        tracing::error!(error = format!("{e:#}"), "node stopped with an error");
        client::Failure {
            code: 1,
            message: format!("{e:#}"),
        }
    })
}
