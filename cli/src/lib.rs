//! The operator's tools: every `regatta` subcommand that is not a node. Commands that talk
//! to a running node through its public API (`kv`, `table`, `cluster`, `backup`,
//! `restore`, the checks of `reseed`) and commands that read a node's data directory or
//! the object store it archives to (`log replay|verify`, point-in-time `restore --from`,
//! `backup list`, `reseed`'s move), with their arguments, their output (text or `--json`),
//! progress on a terminal, and one error type whose exit codes scripts rely on.
//!
//! It does not run a node, parse configuration files or set up logging: the `regatta`
//! binary parses the command line (its top-level command enum flattens [`Tool`]) and calls
//! [`Tool::run`]. It owns no format and no layout: reading history and rebuilding state are
//! `regatta_archive`'s, backup streams and snapshots `regatta_materializer`'s, the durable
//! Raft snapshot file `regatta_core`'s; this crate parses, prints and maps errors to exit
//! codes.
//!
//! Modules:
//! - [`client`]: connection options (`--address`, `--timeout`, `--token`, `--json`),
//!   requests, and `kv`, `table`, `cluster`, `backup --dir` / `restore --dir` over the API
//!   (`backup` and `restore` take a bare `host:port` `--address` as TLS, as Regatta's do;
//!   the other commands as plaintext);
//! - [`audit`]: `log replay`, `log verify`, point-in-time `restore --from`, `backup list`;
//! - [`reseed`]: moving a damaged data directory aside so that the node is filled again;
//! - [`progress`]: progress of long operations on stderr;
//! - [`error`]: [`Failure`] (message and exit code) and the exit codes;
//! - [`stdout`]: the output, where a reader that went away ends the process quietly.

/// `println!` for the tools' output: a closed pipe ends the process quietly (see [`stdout`]).
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::stdout::line(format_args!($($arg)*))
    };
}

pub mod audit;
pub mod client;
pub mod error;
pub mod progress;
pub mod reseed;
pub mod stdout;

pub use error::{CliResult, Failure};

use clap::{ArgMatches, Subcommand};
use client::ClientOptions;

/// Every subcommand of `regatta` that is not a node; the binary's command enum flattens it.
#[derive(Subcommand, Debug)]
pub enum Tool {
    /// Manage tables.
    Table {
        #[command(flatten)]
        options: ClientOptions,
        #[command(subcommand)]
        command: client::table::TableCommand,
    },
    /// Read and write keys.
    Kv {
        #[command(flatten)]
        options: ClientOptions,
        #[command(subcommand)]
        command: client::kv::KvCommand,
    },
    /// Back up tables into a directory in Regatta's backup format (`--dir`, default the
    /// current directory, through the API), or list what the object store can restore
    /// (`backup list`).
    #[command(
        args_conflicts_with_subcommands = true,
        mut_arg("address", |a| a.help(client::BARE_IS_TLS_HELP))
    )]
    Backup {
        #[command(flatten)]
        options: ClientOptions,
        #[command(flatten)]
        args: audit::restore::BackupCli,
    },
    /// Restore tables from a backup directory in Regatta's format (`--dir`, default the
    /// current directory; checks every MD5 first), or restore to a point in time from object
    /// storage (`--from URL [--revision R]`) into the running cluster at `--address` or into
    /// a fresh data directory (`--data-dir D`).
    #[command(mut_arg("address", |a| a.help(client::BARE_IS_TLS_HELP)))]
    Restore {
        #[command(flatten)]
        options: ClientOptions,
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
        options: ClientOptions,
        #[command(flatten)]
        args: reseed::ReseedArgs,
    },
    /// Inspect and change the cluster.
    Cluster {
        #[command(flatten)]
        options: ClientOptions,
        #[command(subcommand)]
        command: client::cluster::ClusterCommand,
    },
}

impl Tool {
    /// Runs the command. `matches` are the whole command line's, parsed: `restore` needs to
    /// know whether `--address` was typed (it conflicts with `--data-dir`; an address from
    /// `REGATTA_ADDRESS` or the default does not).
    pub async fn run(self, matches: &ArgMatches) -> CliResult {
        match self {
            Self::Table { options, command } => client::table::run(command, &options).await,
            Self::Kv { options, command } => client::kv::run(command, &options).await,
            // Regatta's backup and restore always dial TLS: a bare host:port means https://.
            Self::Backup { options, args } => {
                audit::restore::backup(args, &options.tls_when_bare()).await
            }
            Self::Restore { options, args } => {
                let address_given = matches
                    .subcommand_matches("restore")
                    .and_then(|m| m.value_source("address"))
                    == Some(clap::parser::ValueSource::CommandLine);
                audit::restore::restore(args, &options.tls_when_bare(), address_given).await
            }
            Self::Log { command } => audit::run(command).await,
            Self::Cluster { options, command } => client::cluster::run(command, &options).await,
            Self::Reseed { options, args } => reseed::run(args, &options).await,
        }
    }
}
