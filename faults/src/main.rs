//! `regatta-faults`: the fault suite. Builds a network of namespaces ([`net`]), starts a
//! real cluster in it ([`cluster`]: three cores, two edges in a chain), runs concurrent
//! clients that record what they see ([`client`]) while a seeded schedule of partitions,
//! pauses and crashes plays ([`fault`]), heals, checks convergence and the final state
//! ([`verify`]) and asks `regatta-checker` for its verdicts. Exits non-zero on any anomaly,
//! printing the seed that replays the schedule, and writes what failed in words
//! ([`report`]: `failure.txt`, next to `summary.json`). A [`scenario`] plays a fixed list
//! of faults instead of a seeded schedule, with a bound on the write outage.
//!
//! It owns the harness only; what counts as correct lives in `regatta-checker`.
//! See docs/faults.md.

mod client;
mod cluster;
mod disk;
mod fault;
mod net;
mod play;
mod report;
mod rng;
mod s3;
mod scenario;
mod verify;

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use regatta_checker::{Budget, durability, linearizable, sessions};
use regatta_cli::outln;
use regatta_proto::regatta::v1::{CreateTableRequest, tables_client::TablesClient};

use crate::{
    cluster::Cluster,
    verify::{Convergence, Snapshot},
};

#[derive(Parser, Debug)]
#[command(
    name = "regatta-faults",
    about = "Regatta's fault suite (needs root and ip netns)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run one seeded schedule against a fresh cluster and check what the clients saw.
    Run(RunArgs),
    /// Play a regression scenario: a fixed list of faults with fixed holds, checked like a
    /// run and against a bound on the longest time without an acknowledged write.
    Scenario(ScenarioArgs),
    /// Sum the figures (summary.json) of run directories, or of directories holding them.
    Report { dirs: Vec<PathBuf> },
    /// Judge a recorded history (a run's history.jsonl) again for linearizability, e.g.
    /// with a larger search budget after an inconclusive verdict.
    Check {
        history: PathBuf,
        /// Search steps per key.
        #[arg(long, default_value_t = regatta_checker::Budget::default().steps_per_key)]
        steps_per_key: u64,
    },
    /// Remove namespaces, links and node processes a run left behind.
    Cleanup,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// The schedule's seed (default: from the clock); printed, so a failure replays.
    #[arg(long)]
    seed: Option<u64>,
    /// Seconds of faults (the last step may run past them).
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Keep only these kinds of fault from the schedule (comma-separated): partition-leader,
    /// partition-leader-inbound, isolate-follower, partition-edge, partition-edge-inbound,
    /// pause, kill, objects-unreachable, disk-full, rolling-restart.
    #[arg(long, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(fault::KINDS))]
    only: Vec<String>,
    /// Prove the checker bites: core clients read serializably (a node's own, possibly
    /// stale, state) but record the reads as linearizable. A schedule that cuts a node off
    /// while writes go on must then FAIL.
    #[arg(long)]
    inject_stale_reads: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(clap::Args, Debug)]
struct ScenarioArgs {
    /// The scenario (omit to list them).
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(scenario::NAMES))]
    name: Option<String>,
    #[command(flatten)]
    common: Common,
}

/// The flags every run takes: the load, the binary, where the run's files go.
#[derive(clap::Args, Debug)]
struct Common {
    /// Concurrent core clients (default 6; a scenario's own load otherwise).
    #[arg(long)]
    clients: Option<usize>,
    /// Keys the clients share (default 4; a scenario's own otherwise).
    #[arg(long)]
    keys: Option<usize>,
    /// Sessions per edge.
    #[arg(long, default_value_t = 1)]
    edge_sessions: u32,
    /// Deadline of each operation, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    deadline_ms: u64,
    /// Mean pause between a client's operations, in milliseconds.
    #[arg(long, default_value_t = 10)]
    pace_ms: u64,
    /// The regatta binary.
    #[arg(long, default_value = "target/debug/regatta")]
    binary: PathBuf,
    /// Where data directories, logs, the recorded history, summary.json and (on failure)
    /// failure.txt go (default: regatta-faults-SEED or regatta-faults-NAME under the
    /// system's temporary directory).
    #[arg(long)]
    run_dir: Option<PathBuf>,
}

impl Common {
    /// The flags that change what runs, as a replay command line wants them.
    fn replay_flags(&self, clients: usize, keys: usize) -> String {
        format!("--clients {clients} --keys {keys}")
            + &[
                (self.edge_sessions != 1)
                    .then(|| format!(" --edge-sessions {}", self.edge_sessions)),
                (self.deadline_ms != 1000).then(|| format!(" --deadline-ms {}", self.deadline_ms)),
                (self.pace_ms != 10).then(|| format!(" --pace-ms {}", self.pace_ms)),
            ]
            .into_iter()
            .flatten()
            .collect::<String>()
    }
}

/// What one run plays and checks: a seeded schedule or a scenario.
#[derive(Debug)]
struct Plan<'a> {
    /// `seed 5`, `scenario stuck-leader`: how the run names itself.
    label: String,
    seed: u64,
    steps: Vec<fault::Step>,
    replay: String,
    /// A scenario's bound on the longest time without an acknowledged write.
    max_write_outage: Option<Duration>,
    inject_stale_reads: bool,
    default_dir: String,
    common: &'a Common,
    clients: usize,
    keys: usize,
}

/// How long a node may take to be ready, and an edge to catch up, after healing.
const RECOVERY: Duration = Duration::from_secs(60);

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let plan = match &cli.command {
        Command::Cleanup => {
            net::cleanup();
            return std::process::ExitCode::SUCCESS;
        }
        Command::Check {
            history,
            steps_per_key,
        } => {
            let started = Instant::now();
            let verdict = verify::read_history(history).map(|h| {
                linearizable::check(
                    &h,
                    Budget {
                        steps_per_key: *steps_per_key,
                    },
                )
            });
            return match verdict {
                Ok(v) => {
                    outln!(
                        "linearizable: {} ({:.1}s)",
                        verify::short(&v),
                        started.elapsed().as_secs_f64()
                    );
                    if let Some(anomaly) = verify::linearizability_anomaly(&v) {
                        outln!("ANOMALY: {anomaly}");
                    }
                    if v.is_linearizable() {
                        std::process::ExitCode::SUCCESS
                    } else {
                        std::process::ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    std::process::ExitCode::from(2)
                }
            };
        }
        Command::Report { dirs } => {
            return match report::aggregate(dirs) {
                Ok(text) => {
                    outln!("{}", text.strip_suffix('\n').unwrap_or(&text));
                    std::process::ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    std::process::ExitCode::FAILURE
                }
            };
        }
        Command::Scenario(args) => {
            let Some(s) = args.name.as_deref().and_then(scenario::named) else {
                outln!("scenarios (regatta-faults scenario NAME):");
                for s in scenario::NAMES.iter().filter_map(|n| scenario::named(n)) {
                    outln!(
                        "  {:14} {:3.0}s of faults and calm, write outage < {:?}: {}",
                        s.name,
                        s.length().as_secs_f64(),
                        s.max_write_outage,
                        s.about
                    );
                }
                return std::process::ExitCode::SUCCESS;
            };
            outln!("scenario {}: {}", s.name, s.about);
            let clients = args.common.clients.unwrap_or(s.clients);
            let keys = args.common.keys.unwrap_or(s.keys);
            Plan {
                label: format!("scenario {}", s.name),
                seed: s.seed,
                replay: format!(
                    "regatta-faults scenario {} {}",
                    s.name,
                    args.common.replay_flags(clients, keys)
                ),
                max_write_outage: Some(s.max_write_outage),
                inject_stale_reads: false,
                default_dir: format!("regatta-faults-{}", s.name),
                steps: s.steps,
                common: &args.common,
                clients,
                keys,
            }
        }
        Command::Run(args) => {
            let seed = args.seed.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64 % 1_000_000_000)
            });
            let clients = args.common.clients.unwrap_or(6);
            let keys = args.common.keys.unwrap_or(4);
            let mut replay = format!(
                "regatta-faults run --seed {seed} --duration {} {}",
                args.duration,
                args.common.replay_flags(clients, keys)
            );
            if !args.only.is_empty() {
                replay += &format!(" --only {}", args.only.join(","));
            }
            if args.inject_stale_reads {
                replay += " --inject-stale-reads";
            }
            Plan {
                label: format!("seed {seed}"),
                seed,
                steps: fault::schedule_of(seed, Duration::from_secs(args.duration), &args.only),
                replay,
                max_write_outage: None,
                inject_stale_reads: args.inject_stale_reads,
                default_dir: format!("regatta-faults-{seed}"),
                common: &args.common,
                clients,
                keys,
            }
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // Ctrl-C and SIGTERM end the run through the guards (nodes killed, network gone).
    let result = runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = run(&plan) => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
            _ = term.recv() => Err(anyhow::anyhow!("terminated")),
        }
    });
    // The network and the nodes are gone by now (their guards dropped).
    runtime.shutdown_timeout(Duration::from_secs(2));
    // `seed=N` for a schedule (what scripts and people grep for), the name for a scenario.
    let label = match plan.max_write_outage {
        Some(_) => plan.label.clone(),
        None => format!("seed={}", plan.seed),
    };
    let replay = &plan.replay;
    match result {
        Ok(0) => {
            outln!("PASS {label}");
            std::process::ExitCode::SUCCESS
        }
        Ok(n) => {
            outln!("FAIL {label}: {n} anomalies (replay: {replay})");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            outln!("ERROR {label}: {e:#} (replay: {replay})");
            std::process::ExitCode::FAILURE
        }
    }
}

fn log(origin: Instant, what: &str) {
    outln!("[{:7.2}s] {what}", origin.elapsed().as_secs_f64());
}

/// Runs one schedule or scenario; the number of anomalies found.
async fn run(plan: &Plan<'_>) -> Result<usize> {
    net::available().map_err(|e| anyhow::anyhow!("needs root and ip netns: {e}"))?;
    let origin = Instant::now();
    let (seed, steps, args) = (plan.seed, &plan.steps, plan.common);
    outln!(
        "{}: {} steps (replay: {})",
        plan.label,
        steps.len(),
        plan.replay
    );
    for (i, s) in steps.iter().enumerate() {
        outln!("  step {i}: {s}");
    }
    let run_dir = match &args.run_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(&plan.default_dir),
    };
    if run_dir.exists() {
        std::fs::remove_dir_all(&run_dir)
            .with_context(|| format!("clearing the run directory {}", run_dir.display()))?;
    }
    std::fs::create_dir_all(&run_dir)
        .with_context(|| format!("creating the run directory {}", run_dir.display()))?;
    let binary = std::fs::canonicalize(&args.binary)
        .with_context(|| format!("--binary {}: not found", args.binary.display()))?;
    outln!("run directory {}", run_dir.display());

    log(origin, "network: bridge and namespaces");
    let net = net::Net::create()?;
    let mut cluster = Cluster::new(&binary, &run_dir, &net.hosts)?;
    cluster.start_all()?;
    log(origin, "cluster: waiting for the cores to be ready");
    for core in cluster.cores() {
        Cluster::wait(&format!("{} to be ready", core.name), RECOVERY, || {
            core.ready()
        })
        .await?;
    }
    let mut tables = TablesClient::new(cluster.nodes[0].channel.clone());
    Cluster::wait("the table to be created", RECOVERY, || {
        let mut tables = tables.clone();
        async move {
            let create = CreateTableRequest {
                name: client::TABLE.into(),
                config: None,
            };
            match tables.create(create).await {
                Ok(_) => true,
                Err(s) => s.code() == tonic::Code::AlreadyExists,
            }
        }
    })
    .await?;
    let _ = &mut tables;
    cluster.wait_ready(RECOVERY).await?;
    // An edge may be ready (caught up within its allowed lag) before the table's creation
    // reached it; the clients start once every edge serves the table, so a read's NotFound
    // is never the start-up's.
    for edge in cluster.edges() {
        Cluster::wait(
            &format!("{} to serve the table", edge.name),
            RECOVERY,
            || async { verify::read_table(&edge.channel, false).await.is_ok() },
        )
        .await?;
    }
    log(origin, "cluster ready: clients start");

    let shared = client::Shared::new(
        origin,
        plan.keys,
        Duration::from_millis(args.deadline_ms),
        Duration::from_millis(args.pace_ms),
        plan.inject_stale_reads,
    );
    let core_channels: Vec<_> = cluster.cores().map(|n| n.channel.clone()).collect();
    let mut tasks = Vec::new();
    for i in 0..plan.clients {
        let task = client::core_client(shared.clone(), core_channels.clone(), seed ^ i as u64);
        tasks.push(tokio::spawn(task));
    }
    let mut session = 0;
    for edge in cluster.edges() {
        for _ in 0..args.edge_sessions {
            session += 1;
            let seed = seed.rotate_left(17) ^ u64::from(session);
            let task = client::edge_session(shared.clone(), edge.channel.clone(), session, seed);
            tasks.push(tokio::spawn(task));
        }
    }

    let mut anomalies: Vec<String> = Vec::new();
    let mut applied: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut events: Vec<report::FaultEvent> = Vec::new();
    tokio::time::sleep(Duration::from_secs(1)).await; // let the clients run unfaulted first
    for step in steps {
        let at = shared.now();
        let played = play::play(step, &mut cluster, &net, &|what| log(origin, what)).await?;
        for kind in step.kinds() {
            *applied.entry(kind).or_default() += 1;
        }
        anomalies.extend(played.anomalies);
        events.push(report::FaultEvent {
            kind: step.fault.kind(),
            what: step.to_string(),
            applied: at,
            healed: shared.now(),
        });
        tokio::time::sleep(step.rest).await; // the calm between faults: part of the schedule
        for (name, status) in cluster.unexpected_exits() {
            anomalies.push(format!("{name} exited unexpectedly: {status}"));
            log(origin, &format!("ANOMALY: {name} exited: {status}"));
        }
    }

    log(origin, "schedule done: clients stop, everything heals");
    shared.stop.store(true, Ordering::Relaxed);
    let end = shared.now();
    for task in tasks {
        task.await.context("a client task panicked")?;
    }
    fault::heal_all(&mut cluster, &net)?;
    if let Err(e) = cluster.wait_ready(RECOVERY).await {
        anomalies.push(format!("after healing: {e:#}"));
    }
    let core = final_core_state(&cluster).await;
    let core = match core {
        Ok(core) => core,
        Err(e) => {
            anomalies.push(format!("no final read from the core: {e:#}"));
            Snapshot {
                revision: 0,
                kvs: BTreeMap::new(),
            }
        }
    };
    log(
        origin,
        &format!("final core state at revision {}", core.revision),
    );
    for edge in cluster.edges() {
        match converge(&cluster, edge, core.clone()).await {
            Ok(()) => log(origin, &format!("{} converged", edge.name)),
            Err(e) => anomalies.push(format!("{}: {e}", edge.name)),
        }
    }
    for (name, status) in cluster.unexpected_exits() {
        anomalies.push(format!("{name} exited unexpectedly: {status}"));
    }
    cluster.kill_all();
    drop(cluster);
    drop(net);

    let record = std::mem::take(&mut *shared.record.lock().unwrap_or_else(|e| e.into_inner()));
    verify::write_record(&run_dir, &record.history, &record.edge_reads)?;
    log(origin, "checking the history");
    if let Err(e) = record.history.validate() {
        anomalies.push(format!("the recorded history is malformed: {e}"));
    }
    let verdict = linearizable::check(&record.history, Budget::default());
    if let Some(anomaly) = verify::linearizability_anomaly(&verdict) {
        anomalies.push(anomaly);
    }
    let lost = durability::lost_writes(&record.history, &verify::finals(&core));
    for l in &lost {
        anomalies.push(format!("lost write: {l:?}"));
    }
    let session_anomalies =
        sessions::check(&record.edge_reads, &record.session_writes, &record.history);
    for a in &session_anomalies {
        anomalies.push(format!("edge session: {}", a.0));
    }

    let outage = verify::longest_write_outage(&record.history, end);
    let bound = plan.max_write_outage.map(|b| b.as_nanos() as u64);
    if let Some(bound) = bound
        && outage.1 >= bound
    {
        anomalies.push(format!(
            "no write acknowledged for {:.1}s from {:.1}s (bound {:.1}s)",
            outage.1 as f64 / 1e9,
            outage.0 as f64 / 1e9,
            bound as f64 / 1e9
        ));
    }
    let mut staleness = verify::edge_staleness(&record.history, &record.edge_reads);
    staleness.sort_unstable();
    let p99 = staleness
        .get(staleness.len().saturating_sub(1) * 99 / 100)
        .copied()
        .unwrap_or(0);
    let summary = report::Summary {
        label: plan.label.clone(),
        seed,
        replay: plan.replay.clone(),
        wall_s: origin.elapsed().as_secs_f64(),
        ops: verify::counts(&record.history),
        edge_reads: record.edge_reads.len(),
        session_writes: record.session_writes.len(),
        read_errors: record.read_errors.clone(),
        faults: applied,
        staleness: (staleness.last().copied().unwrap_or(0), p99),
        outage,
        linearizable: verify::short(&verdict),
        anomalies: anomalies.clone(),
    };
    summary.print();
    outln!("  lost writes: {}", lost.len());
    outln!("  edge session anomalies: {}", session_anomalies.len());
    summary.write(&run_dir)?;
    for a in &anomalies {
        outln!("ANOMALY: {a}");
    }
    outln!("history: {}", run_dir.join("history.jsonl").display());
    if !anomalies.is_empty() {
        let failure = report::Failure {
            summary: &summary,
            run_dir: &run_dir,
            history: &record.history,
            edge_reads: &record.edge_reads,
            faults: &events,
            verdict: &verdict,
            lost: &lost,
            outage_bound: bound.filter(|b| outage.1 >= *b),
        };
        outln!("failure: {}", report::write_failure(&failure)?.display());
    }
    Ok(anomalies.len())
}

/// The table read linearizably from the first core that answers, within the bound.
async fn final_core_state(cluster: &Cluster) -> Result<Snapshot> {
    let deadline = Instant::now() + RECOVERY;
    loop {
        let mut last = None;
        for core in cluster.cores() {
            match verify::read_table(&core.channel, true).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        if Instant::now() > deadline {
            return Err(last.unwrap_or_else(|| anyhow::anyhow!("no core")));
        }
        tokio::time::sleep(Duration::from_millis(200)).await; // poll interval
    }
}

/// Waits until `edge` serves the core's state at the core's revision.
async fn converge(
    cluster: &Cluster,
    edge: &cluster::Node,
    mut core: Snapshot,
) -> Result<(), String> {
    let deadline = Instant::now() + RECOVERY;
    let mut last = String::from("no answer");
    while Instant::now() < deadline {
        match verify::read_table(&edge.channel, false).await {
            Ok(at_edge) => match verify::compare(&core, &at_edge) {
                Convergence::Converged => return Ok(()),
                Convergence::Diverged(why) => return Err(format!("diverged from the core {why}")),
                Convergence::Behind => {
                    last = format!(
                        "at revision {}, core at {}",
                        at_edge.revision, core.revision
                    )
                }
                Convergence::Ahead => {
                    last = format!(
                        "ahead of the core read ({} > {})",
                        at_edge.revision, core.revision
                    );
                    if let Ok(fresh) = final_core_state(cluster).await {
                        core = fresh;
                    }
                }
            },
            Err(e) => last = format!("{e:#}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await; // poll interval
    }
    Err(format!("did not converge within {RECOVERY:?}: {last}"))
}
