//! The faults: a schedule drawn from a seed ([`schedule`], a plain function, so a printed
//! seed replays it), and the thin layer that applies one step to the cluster and undoes it.
//!
//! A step names a fault by role ("the leader", "a follower"), not by node: which node is
//! the leader when the step runs depends on the run, and is printed when it is applied.
//! A step may carry a second fault that starts while the first holds ([`Overlap`]);
//! [`crate::play`] plays a step and undoes its faults in reverse order.

use std::{
    fmt,
    time::{Duration, Instant},
};

use anyhow::Result;

use crate::{
    cluster::{Cluster, DISK_NODE},
    net::{Cut, Host, Net},
    rng::Rng,
};

/// A node picked by its role when the step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Victim {
    Leader,
    /// A follower core: the `n`-th (modulo the followers there are).
    Follower(usize),
    Edge1,
    Edge2,
}

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// iptables DROP both ways between the leader and the other cores.
    PartitionLeader,
    /// Only what the leader receives from the other cores is dropped.
    PartitionLeaderInbound,
    /// A follower cut from every other node (clients still reach it).
    IsolateFollower(usize),
    /// edge1 cut from every core (edge2 still follows it).
    PartitionEdge1,
    /// Only what edge1 receives from the cores is dropped (its requests still go out).
    PartitionEdge1Inbound,
    /// SIGSTOP for the whole hold (longer than the election timeout), then SIGCONT.
    Pause(Victim),
    /// SIGKILL, and after the hold a restart with the same command line.
    Kill(Victim),
    /// The object store's namespace cut from every node, both ways (calls hang until their
    /// timeout, as with a store that is down or a network that drops).
    ObjectsUnreachable,
    /// [`DISK_NODE`]'s disk filled with a ballast file (nothing left free); deleting it
    /// heals. Should the node exit, it is restarted as Kubernetes would.
    DiskFull,
    /// Each core in turn (core3, core2, core1) stopped with SIGTERM, restarted and waited
    /// for (`/readyz`) before the next; lasts as long as that takes (bounded).
    RollingRestart,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PartitionLeader => write!(f, "partition the leader from the other cores"),
            Self::PartitionLeaderInbound => {
                write!(f, "drop what the leader receives from the other cores")
            }
            Self::IsolateFollower(n) => write!(f, "isolate follower #{n}"),
            Self::PartitionEdge1 => write!(f, "partition edge1 from the cores"),
            Self::PartitionEdge1Inbound => write!(f, "drop what edge1 receives from the cores"),
            Self::Pause(v) => write!(f, "SIGSTOP {v:?}"),
            Self::Kill(v) => write!(f, "SIGKILL and restart {v:?}"),
            Self::ObjectsUnreachable => write!(f, "cut the object store off from every node"),
            Self::DiskFull => write!(f, "fill the disk of {DISK_NODE}"),
            Self::RollingRestart => write!(f, "rolling restart of the core"),
        }
    }
}

impl Fault {
    /// A short name for counting faults by kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::PartitionLeader => "partition-leader",
            Self::PartitionLeaderInbound => "partition-leader-inbound",
            Self::IsolateFollower(_) => "isolate-follower",
            Self::PartitionEdge1 => "partition-edge",
            Self::PartitionEdge1Inbound => "partition-edge-inbound",
            Self::Pause(_) => "pause",
            Self::Kill(_) => "kill",
            Self::ObjectsUnreachable => "objects-unreachable",
            Self::DiskFull => "disk-full",
            Self::RollingRestart => "rolling-restart",
        }
    }
}

/// A second fault applied while a step's fault holds: `after` into the hold, held for
/// `hold`, and undone before the step's own fault (undo goes in reverse order of apply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overlap {
    pub fault: Fault,
    pub after: Duration,
    pub hold: Duration,
}

/// One step: the fault, how long it is held, the calm after it is healed, and maybe a
/// second fault during the hold. A rolling restart's hold is what it takes; `hold` is
/// only its share of the schedule's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub fault: Fault,
    pub hold: Duration,
    pub rest: Duration,
    pub overlap: Option<Overlap>,
}

impl Step {
    /// The kinds this step applies.
    pub fn kinds(&self) -> impl Iterator<Item = &'static str> {
        [Some(self.fault), self.overlap.map(|o| o.fault)]
            .into_iter()
            .flatten()
            .map(|f| f.kind())
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.fault == Fault::RollingRestart {
            write!(f, "{} (as long as it takes)", self.fault)?;
        } else {
            write!(f, "{} for {:?}", self.fault, self.hold)?;
        }
        if let Some(o) = &self.overlap {
            write!(
                f,
                ", and from {:?} on {} for {:?}",
                o.after, o.fault, o.hold
            )?;
        }
        write!(f, ", then {:?} calm", self.rest)
    }
}

/// The schedule's estimate of a rolling restart (three stops, starts and waits for ready).
const ROLLING_RESTART: Duration = Duration::from_secs(15);

/// The steps of a schedule of about `total` (the last step may end past it).
pub fn schedule(seed: u64, total: Duration) -> Vec<Step> {
    let mut rng = Rng::new(seed);
    let mut steps = Vec::new();
    let mut time = Duration::ZERO;
    while time < total {
        let follower = rng.below(2);
        let fault = match rng.below(13) {
            0 => Fault::PartitionLeader,
            1 => Fault::PartitionLeaderInbound,
            2 => Fault::IsolateFollower(follower),
            3 => Fault::PartitionEdge1,
            4 => Fault::PartitionEdge1Inbound,
            5 => Fault::Pause(Victim::Leader),
            6 => Fault::Pause(Victim::Follower(follower)),
            7 => Fault::Kill(Victim::Leader),
            8 => Fault::Kill(Victim::Follower(follower)),
            9 => Fault::Kill(edge(&mut rng)),
            10 => Fault::ObjectsUnreachable,
            11 => Fault::DiskFull,
            _ => Fault::RollingRestart,
        };
        let hold = Duration::from_millis(hold_ms(fault, &mut rng));
        let rest = Duration::from_millis(rng.between(1_000, 3_000));
        let overlap = if fault != Fault::RollingRestart && rng.below(3) == 0 {
            overlap(fault, hold, &mut rng)
        } else {
            None
        };
        let step = Step {
            fault,
            hold,
            rest,
            overlap,
        };
        time += step.hold + step.rest;
        steps.push(step);
    }
    steps
}

fn edge(rng: &mut Rng) -> Victim {
    if rng.below(2) == 0 {
        Victim::Edge1
    } else {
        Victim::Edge2
    }
}

/// How long a fault holds, in ms.
fn hold_ms(fault: Fault, rng: &mut Rng) -> u64 {
    match fault {
        // A pause outlasts the time followers take to replace a silent leader: openraft
        // waits its leader lease (the election timeout's maximum, 2 s) plus a random
        // election timeout (1-2 s) after the last heartbeat, so 3-4 s.
        Fault::Pause(_) => rng.between(5_000, 8_000),
        // Several object store timeouts (2 s) and retries.
        Fault::ObjectsUnreachable => rng.between(6_000, 12_000),
        Fault::DiskFull => rng.between(5_000, 10_000),
        Fault::RollingRestart => ROLLING_RESTART.as_millis() as u64,
        _ => rng.between(2_000, 6_000),
    }
}

/// A second fault for a step of `first` held `hold`: one that hits an edge, a follower, the
/// object store or the small disk (not the leader, which the first fault may have
/// replaced). None when it would be the same kind as the first.
fn overlap(first: Fault, hold: Duration, rng: &mut Rng) -> Option<Overlap> {
    let follower = rng.below(2);
    let fault = match rng.below(8) {
        0 => Fault::PartitionEdge1,
        1 => Fault::PartitionEdge1Inbound,
        2 => Fault::Pause(Victim::Follower(follower)),
        3 => Fault::Kill(Victim::Follower(follower)),
        4 => Fault::Kill(edge(rng)),
        5 => Fault::IsolateFollower(follower),
        6 => Fault::ObjectsUnreachable,
        _ => Fault::DiskFull,
    };
    let hold_ms = hold.as_millis() as u64;
    let after = rng.between(500, (hold_ms / 2).max(500));
    // Undone at least 300 ms before the first fault.
    let room = hold_ms.saturating_sub(after + 300).max(500);
    let held = rng.between(room.min(1_000), room);
    (fault.kind() != first.kind()).then_some(Overlap {
        fault,
        after: Duration::from_millis(after),
        hold: Duration::from_millis(held),
    })
}

/// The fault kinds ([`Fault::kind`]) there are.
pub const KINDS: [&str; 10] = [
    "partition-leader",
    "partition-leader-inbound",
    "isolate-follower",
    "partition-edge",
    "partition-edge-inbound",
    "pause",
    "kill",
    "objects-unreachable",
    "disk-full",
    "rolling-restart",
];

/// A schedule of about `total` with only the faults of `kinds` (all of them when `kinds`
/// is empty): to study one kind of fault, e.g. `--only partition-leader`. A step keeps
/// its overlapping fault only when that one's kind is chosen too.
pub fn schedule_of(seed: u64, total: Duration, kinds: &[String]) -> Vec<Step> {
    if kinds.is_empty() {
        return schedule(seed, total);
    }
    let chosen = |f: Fault| kinds.iter().any(|k| k == f.kind());
    let mut time = Duration::ZERO;
    schedule(seed, total * 100)
        .into_iter()
        .filter(|s| chosen(s.fault))
        .map(|mut s| {
            s.overlap = s.overlap.filter(|o| chosen(o.fault));
            s
        })
        .take_while(|s| {
            let before = time;
            time += s.hold + s.rest;
            before < total
        })
        .collect()
}

/// What must be done to end an applied fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undo {
    /// Delete the fault's iptables rules.
    Uncut(Cut),
    Resume(String),
    Restart(String),
    /// Delete the ballast; start [`DISK_NODE`] again if it is not running.
    FreeDisk,
    /// Nothing left to undo (a rolling restart).
    Nothing,
}

/// The node a victim names now: the leader as the cores report it (waiting a little for
/// one), a follower, an edge.
async fn resolve(cluster: &Cluster, victim: Victim) -> String {
    let leader = match victim {
        Victim::Edge1 => return "edge1".into(),
        Victim::Edge2 => return "edge2".into(),
        _ => leader_or_first(cluster).await,
    };
    match victim {
        Victim::Follower(n) => {
            let followers: Vec<&str> = cluster
                .cores()
                .map(|c| c.name.as_str())
                .filter(|c| *c != leader)
                .collect();
            followers[n % followers.len()].to_string()
        }
        _ => leader,
    }
}

async fn leader_or_first(cluster: &Cluster) -> String {
    for _ in 0..25 {
        if let Some(leader) = cluster.leader().await {
            return leader;
        }
        tokio::time::sleep(Duration::from_millis(200)).await; // poll interval
    }
    "core1".into()
}

fn host_of(cluster: &Cluster, name: &str) -> Host {
    cluster
        .nodes
        .iter()
        .find(|n| n.name == name)
        .map(|n| n.host.clone())
        .unwrap_or_else(|| cluster.nodes[0].host.clone())
}

/// Applies `fault`; returns what was done, in words, and how to undo it. A rolling restart
/// runs whole here, logging each node through `log` and adding what went wrong to
/// `anomalies`.
pub async fn apply(
    fault: Fault,
    cluster: &mut Cluster,
    net: &Net,
    log: &dyn Fn(&str),
    anomalies: &mut Vec<String>,
) -> Result<(String, Undo)> {
    let core_hosts: Vec<Host> = cluster.cores().map(|n| n.host.clone()).collect();
    match fault {
        Fault::PartitionLeader | Fault::PartitionLeaderInbound => {
            let leader = leader_or_first(cluster).await;
            let host = host_of(cluster, &leader);
            let peers: Vec<&Host> = core_hosts.iter().filter(|h| **h != host).collect();
            let cut = net.cut(&host, &peers, fault == Fault::PartitionLeaderInbound)?;
            Ok((format!("{fault}: {leader}"), Undo::Uncut(cut)))
        }
        Fault::IsolateFollower(n) => {
            let name = resolve(cluster, Victim::Follower(n)).await;
            let host = host_of(cluster, &name);
            let others: Vec<Host> = cluster
                .nodes
                .iter()
                .map(|n| n.host.clone())
                .filter(|h| *h != host)
                .collect();
            let cut = net.cut(&host, &others.iter().collect::<Vec<_>>(), false)?;
            Ok((format!("{fault}: {name}"), Undo::Uncut(cut)))
        }
        Fault::PartitionEdge1 | Fault::PartitionEdge1Inbound => {
            let host = host_of(cluster, "edge1");
            let cores: Vec<&Host> = core_hosts.iter().collect();
            let cut = net.cut(&host, &cores, fault == Fault::PartitionEdge1Inbound)?;
            Ok((fault.to_string(), Undo::Uncut(cut)))
        }
        Fault::Pause(victim) => {
            let name = resolve(cluster, victim).await;
            let node = cluster.node_mut(&name)?;
            if node.paused || node.pid().is_none() {
                return Ok((format!("{fault}: {name} (already down)"), Undo::Nothing));
            }
            node.signal(true)?;
            Ok((format!("{fault}: {name}"), Undo::Resume(name)))
        }
        Fault::Kill(victim) => {
            let name = resolve(cluster, victim).await;
            cluster.node_mut(&name)?.kill();
            Ok((format!("{fault}: {name}"), Undo::Restart(name)))
        }
        Fault::ObjectsUnreachable => {
            let hosts: Vec<&Host> = net.hosts.iter().collect();
            let cut = net.cut(&net.s3, &hosts, false)?;
            Ok((fault.to_string(), Undo::Uncut(cut)))
        }
        Fault::DiskFull => {
            let ballast = cluster.disk.fill()?;
            let what = format!(
                "{fault}: a ballast of {} MiB, {} bytes left",
                ballast >> 20,
                cluster.disk.free()
            );
            Ok((what, Undo::FreeDisk))
        }
        Fault::RollingRestart => {
            rolling_restart(cluster, log, anomalies).await?;
            Ok((fault.to_string(), Undo::Nothing))
        }
    }
}

/// How long a core may take to stop on SIGTERM, and to be ready after its restart.
const STOP_LIMIT: Duration = Duration::from_secs(30);
const READY_LIMIT: Duration = Duration::from_secs(60);

/// Stops (SIGTERM) and restarts core3, core2, core1 in turn, each ready before the next.
async fn rolling_restart(
    cluster: &mut Cluster,
    log: &dyn Fn(&str),
    anomalies: &mut Vec<String>,
) -> Result<()> {
    let mut names: Vec<String> = cluster.cores().map(|n| n.name.clone()).collect();
    names.reverse();
    let binary = cluster.binary.clone();
    for name in names {
        let was = if cluster.leader().await.as_deref() == Some(name.as_str()) {
            " (the leader)"
        } else {
            ""
        };
        log(&format!("  rolling restart: SIGTERM {name}{was}"));
        let began = Instant::now();
        let node = cluster.node_mut(&name)?;
        match node.terminate(STOP_LIMIT).await {
            Some(status) if status == "exit status: 0" => {}
            Some(status) => {
                let lines = node.log_lines(&["ERROR", "panicked"], 3);
                anomalies.push(format!("{name} ended with {status} on SIGTERM: {lines:?}"));
            }
            None => anomalies.push(format!(
                "{name} did not stop within {STOP_LIMIT:?} of SIGTERM (killed)"
            )),
        }
        let stopped = began.elapsed();
        node.start(&binary)?;
        let node = cluster.node_mut(&name)?;
        let ready =
            Cluster::wait(&format!("{name} to be ready"), READY_LIMIT, || node.ready()).await;
        match ready {
            Ok(()) => log(&format!(
                "  rolling restart: {name} stopped in {:.1}s, ready {:.1}s after SIGTERM",
                stopped.as_secs_f64(),
                began.elapsed().as_secs_f64()
            )),
            Err(e) => anomalies.push(format!("rolling restart: {e:#}")),
        }
    }
    Ok(())
}

/// Ends an applied fault (a no-op for what is already undone: a node running again).
pub fn undo(undo: &Undo, cluster: &mut Cluster, net: &Net) -> Result<()> {
    let binary = cluster.binary.clone();
    match undo {
        Undo::Uncut(cut) => net.uncut(cut),
        Undo::Resume(name) => {
            let node = cluster.node_mut(name)?;
            if node.paused && node.pid().is_some() {
                node.signal(false)?;
            }
            Ok(())
        }
        Undo::Restart(name) => {
            let node = cluster.node_mut(name)?;
            if node.pid().is_none() {
                node.start(&binary)?;
            }
            Ok(())
        }
        Undo::FreeDisk => {
            cluster.disk.free_up()?;
            let node = cluster.node_mut(DISK_NODE)?;
            if node.pid().is_none() {
                node.start(&binary)?;
            }
            Ok(())
        }
        Undo::Nothing => Ok(()),
    }
}

/// Heals everything: rules flushed, the ballast deleted, paused nodes continued, stopped
/// nodes restarted.
pub fn heal_all(cluster: &mut Cluster, net: &Net) -> Result<()> {
    net.heal()?;
    cluster.disk.free_up()?;
    let binary = cluster.binary.clone();
    for node in &mut cluster.nodes {
        if node.paused {
            node.signal(false)?;
        }
        if node.pid().is_none() {
            node.start(&binary)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_its_schedule() {
        let total = Duration::from_secs(120);
        assert_eq!(schedule(7, total), schedule(7, total));
        assert_ne!(schedule(7, total), schedule(8, total));
    }

    #[test]
    fn a_schedule_covers_its_time_and_pauses_outlast_a_failover() {
        let total = Duration::from_secs(60);
        let steps = schedule(42, total);
        let time: Duration = steps.iter().map(|s| s.hold + s.rest).sum();
        assert!(time >= total);
        let last = steps.last().expect("a step");
        assert!(
            time - (last.hold + last.rest) < total,
            "no step past the end"
        );
        for step in &steps {
            if let Fault::Pause(_) = step.fault {
                assert!(step.hold >= Duration::from_secs(5));
            }
        }
    }

    #[test]
    fn every_kind_of_fault_comes_up() {
        let steps = schedule(1, Duration::from_secs(3_600));
        for kind in KINDS {
            assert!(steps.iter().any(|s| s.fault.kind() == kind), "{kind}");
            let total = Duration::from_secs(60);
            let one = schedule_of(1, total, &[kind.to_string()]);
            assert!(one.iter().all(|s| s.fault.kind() == kind));
            assert!(one.iter().map(|s| s.hold + s.rest).sum::<Duration>() >= total);
        }
        let all = Duration::from_secs(3_600);
        assert_eq!(schedule_of(1, all, &[]), steps);
    }

    #[test]
    fn overlaps_start_within_the_hold_and_end_before_it() {
        let steps = schedule(3, Duration::from_secs(3_600));
        let overlaps: Vec<_> = steps.iter().filter(|s| s.overlap.is_some()).collect();
        assert!(
            overlaps.len() > steps.len() / 6,
            "{} overlaps",
            overlaps.len()
        );
        for step in overlaps {
            let o = step.overlap.expect("an overlap");
            assert_ne!(step.fault, Fault::RollingRestart);
            assert_ne!(o.fault.kind(), step.fault.kind());
            assert!(o.after < step.hold, "{step}");
            assert!(o.after + o.hold <= step.hold, "{step}");
        }
        let kinds = ["objects-unreachable".to_string(), "kill".to_string()];
        let chosen = schedule_of(3, Duration::from_secs(600), &kinds);
        assert!(chosen.iter().any(|s| s.overlap.is_some()));
        for s in &chosen {
            assert!(s.kinds().all(|k| kinds.iter().any(|c| c == k)), "{s}");
        }
    }
}
