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
    let mut cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let node_matches = matches.subcommand().map(|(_, sub)| sub);
    let start = Start::of(&mut cli.command, node_matches);
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
            Command::Core { args, logging, .. } => server(logging, start, core::run(args)).await,
            Command::Edge { args, logging, .. } => server(logging, start, edge::run(args)).await,
            Command::Dev { args, logging, .. } => server(logging, start, dev::run(args)).await,
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

/// What a server command learns from where its options came from, before it runs.
#[derive(Debug, Default)]
struct Start {
    /// `--log.level` was given (flag, environment or config file), not its default.
    log_level_given: bool,
    /// One line per Regatta flag given that this build ignores or maps.
    warnings: Vec<flags::regatta::Warning>,
}

impl Start {
    /// Resolves Regatta's options that stand for this build's own (`--raft.node-host-dir`
    /// as the data directory, `--memberlist.node-name` as a core's `--node-name`; an edge
    /// resolves its own when it validates) and collects the warnings of `command`, whose
    /// matches are `matches`.
    fn of(command: &mut Command, matches: Option<&clap::ArgMatches>) -> Self {
        // Only ids the command has: asking for another is a bug clap panics on.
        let source = |id: &str| matches.and_then(|m| m.value_source(id));
        let log_level_given = match command {
            Command::Core { .. } | Command::Edge { .. } | Command::Dev { .. } => !matches!(
                source(flags::log::LOG_LEVEL_ID),
                None | Some(clap::parser::ValueSource::DefaultValue)
            ),
            _ => false,
        };
        let warnings = match command {
            Command::Core { args, .. } => {
                let data_dir = source(flags::storage::DATA_DIR_ID);
                use_node_host_dir(&mut args.regatta, &mut args.storage, data_dir);
                if let Some(name) = &args.regatta.memberlist_node_name {
                    args.node_name = Some(name.clone());
                }
                args.regatta.warnings()
            }
            Command::Edge { args, .. } => {
                let data_dir = source(flags::storage::DATA_DIR_ID);
                use_node_host_dir(&mut args.regatta, &mut args.storage, data_dir);
                let mut warnings = args.regatta.warnings();
                warnings.extend(args.follower.warnings());
                warnings
            }
            _ => Vec::new(),
        };
        Self {
            log_level_given,
            warnings,
        }
    }
}

/// `--raft.node-host-dir` as the data directory when `--data-dir` was not given (`data_dir`:
/// where its value came from).
fn use_node_host_dir(
    regatta: &mut flags::regatta::RegattaArgs,
    storage: &mut flags::storage::StorageArgs,
    data_dir: Option<clap::parser::ValueSource>,
) {
    if let Some(dir) =
        flags::regatta::node_host_dir_as_data_dir(regatta.raft_node_host_dir.as_deref(), data_dir)
    {
        storage.data_dir = dir;
        regatta.node_host_dir_is_data_dir = true;
    }
}

/// Runs a server command with logging set up and Regatta's flags warned about; its error
/// becomes exit code 1.
async fn server(
    logging: telemetry::LogArgs,
    start: Start,
    run: impl std::future::Future<Output = anyhow::Result<()>>,
) -> regatta_cli::CliResult {
    use regatta_cli::{Failure, error};
    if let Err(e) = telemetry::init(&logging, start.log_level_given) {
        return Err(Failure::new(error::USAGE, format!("{e:#}")));
    }
    for warning in &start.warnings {
        tracing::warn!(
            flag = warning.flag,
            value = %warning.value,
            "Regatta flag {}",
            warning.instead
        );
    }
    run.await.map_err(|e| {
        tracing::error!(error = format!("{e:#}"), "node stopped with an error");
        Failure::new(error::FAILED, format!("{e:#}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The command `argv` parses to, and what starting it resolves.
    fn start(argv: &[&str]) -> (Command, Start) {
        let matches = Cli::command().try_get_matches_from(argv).expect("parses");
        let mut cli = Cli::from_arg_matches(&matches).expect("arguments");
        let start = Start::of(&mut cli.command, matches.subcommand().map(|(_, m)| m));
        (cli.command, start)
    }

    fn data_dir(command: &Command) -> &std::path::Path {
        match command {
            Command::Core { args, .. } => &args.storage.data_dir,
            Command::Edge { args, .. } => &args.storage.data_dir,
            _ => panic!("not a node"),
        }
    }

    #[test]
    fn node_host_dir_is_the_data_dir_unless_data_dir_is_given() {
        let (core, s) = start(&["regatta", "leader", "--raft.node-host-dir=/srv/raft"]);
        assert_eq!(data_dir(&core), std::path::Path::new("/srv/raft"));
        assert_eq!(s.warnings.len(), 1);
        assert!(
            s.warnings[0]
                .instead
                .starts_with("used as the data directory")
        );
        let (core, s) = start(&[
            "regatta",
            "core",
            "--raft.node-host-dir=/srv/raft",
            "--data-dir=/srv/data",
        ]);
        assert_eq!(data_dir(&core), std::path::Path::new("/srv/data"));
        assert!(s.warnings[0].instead.starts_with("ignored"));
        let (edge, _) = start(&[
            "regatta",
            "follower",
            "--replication.leader-address=core:8444",
            "--raft.node-host-dir=/srv/edge",
        ]);
        assert_eq!(data_dir(&edge), std::path::Path::new("/srv/edge"));
    }

    #[test]
    fn memberlist_node_name_names_a_core_and_warnings_cover_both_groups() {
        let (core, s) = start(&["regatta", "core", "--memberlist.node-name=n1"]);
        let Command::Core { args, .. } = core else {
            panic!("core")
        };
        assert_eq!(args.node_name.as_deref(), Some("n1"));
        assert!(s.warnings.is_empty());
        let (_, s) = start(&[
            "regatta",
            "edge",
            "--replication.leader-address=core:8444",
            "--memberlist.address=0.0.0.0:7432",
            "--replication.poll-interval=1s",
            "--log.level=debug",
        ]);
        assert_eq!(s.warnings.len(), 2);
        assert!(s.log_level_given);
        let (_, s) = start(&["regatta", "dev"]);
        assert!(!s.log_level_given && s.warnings.is_empty());
        let (_, s) = start(&["regatta", "version"]);
        assert!(!s.log_level_given && s.warnings.is_empty());
    }
}
