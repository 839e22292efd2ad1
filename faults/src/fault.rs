//! The faults: a schedule drawn from a seed ([`schedule`], a plain function, so a printed
//! seed replays it), and the thin layer that applies one step to the cluster and undoes it.
//!
//! A step names a fault by role ("the leader", "a follower"), not by node: which node is
//! the leader when the step runs depends on the run, and is printed when it is applied.

use std::{fmt, time::Duration};

use anyhow::Result;

use crate::{
    cluster::Cluster,
    net::{Host, Net},
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
    /// SIGSTOP for the whole hold (longer than the election timeout), then SIGCONT.
    Pause(Victim),
    /// SIGKILL, and after the hold a restart with the same command line.
    Kill(Victim),
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
            Self::Pause(v) => write!(f, "SIGSTOP {v:?}"),
            Self::Kill(v) => write!(f, "SIGKILL and restart {v:?}"),
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
            Self::Pause(_) => "pause",
            Self::Kill(_) => "kill",
        }
    }
}

/// One step: the fault, how long it is held, and the calm after it is healed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub fault: Fault,
    pub hold: Duration,
    pub rest: Duration,
}

/// The steps of a schedule of about `total` (the last step may end past it).
pub fn schedule(seed: u64, total: Duration) -> Vec<Step> {
    let mut rng = Rng::new(seed);
    let mut steps = Vec::new();
    let mut time = Duration::ZERO;
    while time < total {
        let follower = rng.below(2);
        let fault = match rng.below(9) {
            0 => Fault::PartitionLeader,
            1 => Fault::PartitionLeaderInbound,
            2 => Fault::IsolateFollower(follower),
            3 => Fault::PartitionEdge1,
            4 => Fault::Pause(Victim::Leader),
            5 => Fault::Pause(Victim::Follower(follower)),
            6 => Fault::Kill(Victim::Leader),
            7 => Fault::Kill(Victim::Follower(follower)),
            _ => Fault::Kill(if rng.below(2) == 0 {
                Victim::Edge1
            } else {
                Victim::Edge2
            }),
        };
        // A pause outlasts the time followers take to replace a silent leader: openraft
        // waits its leader lease (the election timeout's maximum, 2 s) plus a random
        // election timeout (1-2 s) after the last heartbeat, so 3-4 s.
        let hold_ms = match fault {
            Fault::Pause(_) => rng.between(5_000, 8_000),
            _ => rng.between(2_000, 6_000),
        };
        let step = Step {
            fault,
            hold: Duration::from_millis(hold_ms),
            rest: Duration::from_millis(rng.between(1_000, 3_000)),
        };
        time += step.hold + step.rest;
        steps.push(step);
    }
    steps
}

/// The fault kinds ([`Fault::kind`]) there are.
pub const KINDS: [&str; 6] = [
    "partition-leader",
    "partition-leader-inbound",
    "isolate-follower",
    "partition-edge",
    "pause",
    "kill",
];

/// A schedule of about `total` with only the faults of `kinds` (all of them when `kinds`
/// is empty): to study one kind of fault, e.g. `--only partition-leader`.
pub fn schedule_of(seed: u64, total: Duration, kinds: &[String]) -> Vec<Step> {
    if kinds.is_empty() {
        return schedule(seed, total);
    }
    let mut time = Duration::ZERO;
    schedule(seed, total * 100)
        .into_iter()
        .filter(|s| kinds.iter().any(|k| k == s.fault.kind()))
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
    Heal,
    Resume(String),
    Restart(String),
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

/// Applies `fault`; returns what was done, in words, and how to undo it.
pub async fn apply(fault: Fault, cluster: &mut Cluster, net: &Net) -> Result<(String, Undo)> {
    let core_hosts: Vec<Host> = cluster.cores().map(|n| n.host.clone()).collect();
    match fault {
        Fault::PartitionLeader | Fault::PartitionLeaderInbound => {
            let leader = leader_or_first(cluster).await;
            let host = host_of(cluster, &leader);
            let peers: Vec<&Host> = core_hosts.iter().filter(|h| **h != host).collect();
            net.cut(&host, &peers, fault == Fault::PartitionLeaderInbound)?;
            Ok((format!("{fault}: {leader}"), Undo::Heal))
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
            net.cut(&host, &others.iter().collect::<Vec<_>>(), false)?;
            Ok((format!("{fault}: {name}"), Undo::Heal))
        }
        Fault::PartitionEdge1 => {
            let host = host_of(cluster, "edge1");
            net.cut(&host, &core_hosts.iter().collect::<Vec<_>>(), false)?;
            Ok((fault.to_string(), Undo::Heal))
        }
        Fault::Pause(victim) => {
            let name = resolve(cluster, victim).await;
            cluster.node_mut(&name)?.signal(true)?;
            Ok((format!("{fault}: {name}"), Undo::Resume(name)))
        }
        Fault::Kill(victim) => {
            let name = resolve(cluster, victim).await;
            cluster.node_mut(&name)?.kill();
            Ok((format!("{fault}: {name}"), Undo::Restart(name)))
        }
    }
}

/// Ends an applied fault.
pub fn undo(undo: &Undo, cluster: &mut Cluster, net: &Net) -> Result<()> {
    match undo {
        Undo::Heal => net.heal(),
        Undo::Resume(name) => cluster.node_mut(name)?.signal(false),
        Undo::Restart(name) => {
            let binary = cluster.binary.clone();
            cluster.node_mut(name)?.start(&binary)
        }
    }
}

/// Heals everything: rules flushed, paused nodes continued, stopped nodes restarted.
pub fn heal_all(cluster: &mut Cluster, net: &Net) -> Result<()> {
    net.heal()?;
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
}
