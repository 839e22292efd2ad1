//! The async runtime of a server command: `--runtime.worker-threads` (built by
//! [`crate::runtime`]).

use clap::Args;

/// Threads of the node's async runtime.
#[derive(Args, Debug, Clone, Default)]
pub struct RuntimeArgs {
    /// Worker threads of the node's async runtime: they serve every request, replicate and
    /// apply. Default: one per CPU this process may use (a cgroup CPU quota counts). Fewer
    /// than the CPUs leave the rest to other processes on the machine: on a machine whose
    /// CPUs a co-located client also uses, one worker serves reads at lower latency than two
    /// (benchmarks/README.md, edge-read).
    #[arg(
        long = "runtime.worker-threads",
        env = "REGATTA_RUNTIME_WORKER_THREADS",
        value_name = "N",
        value_parser = clap::value_parser!(u16).range(1..=1024)
    )]
    pub worker_threads: Option<u16>,
}
