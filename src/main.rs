//! The `regatta` binary: core and edge nodes, the single-machine `dev` mode, and the
//! operator's tools (`regatta-cli`).

mod address;
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
mod rest;
mod runtime;
mod shutdown;
mod telemetry;
mod tls;

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
    /// Print the version of this build and the git revision it was built from.
    Version,
    /// The operator's tools: every subcommand that is not a node.
    #[command(flatten)]
    Tool(regatta_cli::Tool),
}

/// What `regatta version` prints: the version, and the git revision when the build knew it.
fn version_text() -> String {
    let mut text = format!("Regatta\nVersion: {}\n", env!("CARGO_PKG_VERSION"));
    if let Some(revision) = option_env!("REGATTA_GIT_REVISION") {
        text.push_str(&format!("Git revision: {revision}\n"));
    }
    text
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
    if let Command::Version = cli.command {
        print!("{}", version_text());
        return ExitCode::SUCCESS;
    }
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
            Command::Tool(tool) => tool.run(&matches).await,
            Command::Version => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {failure}");
            ExitCode::from(failure.code())
        }
    }
}

/// Runs a server command with logging set up; its error becomes exit code 1.
async fn server(
    logging: telemetry::LogArgs,
    run: impl std::future::Future<Output = anyhow::Result<()>>,
) -> regatta_cli::CliResult {
    use regatta_cli::{Failure, error};
    if let Err(e) = telemetry::init(&logging) {
        return Err(Failure::new(error::USAGE, format!("{e:#}")));
    }
    run.await.map_err(|e| {
        tracing::error!(error = format!("{e:#}"), "node stopped with an error");
        Failure::new(error::FAILED, format!("{e:#}"))
    })
}
