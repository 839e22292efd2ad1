//! Regression scenarios: fixed lists of faults with fixed holds, one per anomaly the
//! random schedules found, played instead of a seeded schedule (`regatta-faults scenario
//! NAME`). A scenario is checked like any run (linearizability, lost writes, edge
//! sessions, convergence) and, in addition, against a bound on availability: the longest
//! time without an acknowledged write must stay under [`Scenario::max_write_outage`].
//!
//! A scenario is plain data, so it replays exactly (only the clients' choices of keys and
//! nodes come from [`Scenario::seed`]). Adding one: name the finding it guards, copy the
//! faults and holds from the failing run's schedule, measure the outage on a build that
//! has the fix, and pick a bound with room for a loaded machine but well under what the
//! bug produced.

use std::time::Duration;

use crate::fault::{Fault, Step, Victim};

/// A fixed list of faults and what it must show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    pub name: &'static str,
    /// The finding it guards, in a sentence (printed with the run).
    pub about: &'static str,
    pub steps: Vec<Step>,
    /// The longest time without an acknowledged write allowed over the whole run.
    pub max_write_outage: Duration,
    /// Seeds the clients (which key, which node, which call).
    pub seed: u64,
    /// The load it was found with: core clients and keys.
    pub clients: usize,
    pub keys: usize,
}

impl Scenario {
    /// How long the faults and the calm after them take.
    pub fn length(&self) -> Duration {
        self.steps.iter().map(|s| s.hold + s.rest).sum()
    }
}

fn step(fault: Fault, hold_ms: u64, rest_ms: u64) -> Step {
    Step {
        fault,
        hold: Duration::from_millis(hold_ms),
        rest: Duration::from_millis(rest_ms),
        overlap: None,
    }
}

/// The scenarios there are, by name.
pub const NAMES: [&str; 2] = ["stuck-leader", "leader-changes"];

/// The scenario called `name`.
pub fn named(name: &str) -> Option<Scenario> {
    use Fault::*;
    use Victim::*;
    match name {
        // Seed 424242's schedule up to its step 18 (`regatta-faults run --seed 424242
        // --duration 150 --clients 8 --keys 3`, docs/faults.md, Findings), written out so
        // that new kinds of fault in the random schedule do not change it. Steps 17 and 18
        // cut the leader from the other cores for 3.7 s, then drop only what it receives
        // from them for 3.3 s; before HTTP/2 keepalive on the Raft channels, no write was
        // acknowledged for ~15 s from step 17 on (the same leader, core3, hit by both and
        // never replaced). The earlier steps matter: the same two steps played alone
        // spared the leader, the followers elected another between them. 20 s of calm at
        // the end, longer than the bound, so a cluster that never recovers fails too.
        "stuck-leader" => Some(Scenario {
            name: "stuck-leader",
            about: "seed 424242 up to a leader cut from the other cores (3.7 s), then only \
                    from what they send it (3.3 s): writes must resume soon after the heal",
            steps: vec![
                step(Kill(Follower(1)), 4_922, 1_182),
                step(Kill(Edge2), 2_047, 1_747),
                step(IsolateFollower(0), 4_211, 1_630),
                step(Pause(Follower(1)), 6_288, 2_441),
                step(Pause(Follower(1)), 5_421, 2_453),
                step(Kill(Edge2), 2_940, 1_177),
                step(IsolateFollower(1), 4_013, 1_450),
                step(Pause(Leader), 6_214, 2_268),
                step(PartitionLeader, 4_493, 2_682),
                step(IsolateFollower(1), 4_008, 2_012),
                step(Kill(Edge1), 3_801, 2_041),
                step(PartitionEdge1, 3_825, 1_210),
                step(Kill(Leader), 5_763, 2_545),
                step(IsolateFollower(1), 4_807, 1_980),
                step(Kill(Edge2), 4_658, 2_728),
                step(PartitionLeaderInbound, 4_566, 2_715),
                step(Kill(Edge2), 4_056, 2_527),
                step(PartitionLeader, 3_725, 1_850),
                step(PartitionLeaderInbound, 3_262, 20_000),
            ],
            max_write_outage: Duration::from_secs(10),
            seed: 424_242,
            // Found with 8 clients on 3 keys; 5 keys keep the linearizability search of
            // 140 s of load within its budget (on 3 it ran out once).
            clients: 8,
            keys: 5,
        }),
        // The leader SIGKILLed, frozen and stopped gracefully (a rolling restart of the
        // core), each time while writes go on. Guards two findings (docs/faults.md): a
        // failover took 4–7 s without an acknowledged write while openraft's leader lease
        // was twice the election timeout (now 1.0–1.2 × the 1 s flag: about 1.5 s); and a
        // leader stopped by SIGTERM held its office until its 10 s connection grace ran
        // out (10.4 and 10.8 s), where it now hands it over first. Both bugs exceed the
        // bound; the fixed store stays well under it on a loaded 2-core machine.
        "leader-changes" => Some(Scenario {
            name: "leader-changes",
            about: "the leader killed, frozen, killed, frozen, then a rolling restart of the \
                    core: each change of leader must cost well under the old 4-10 s",
            steps: vec![
                step(Kill(Leader), 3_000, 3_000),
                step(Pause(Leader), 4_000, 3_000),
                step(Kill(Leader), 3_000, 3_000),
                step(Pause(Leader), 4_000, 3_000),
                step(RollingRestart, 0, 8_000),
            ],
            max_write_outage: Duration::from_secs(4),
            seed: 4_004,
            clients: 6,
            keys: 4,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_a_scenario_that_outlasts_its_bound() {
        for name in NAMES {
            let s = named(name).expect(name);
            assert_eq!(s.name, name);
            assert!(!s.steps.is_empty());
            // The calm after the last fault must be longer than the bound, or a node that
            // stays stuck past the end of the run would not be caught.
            let last = s.steps.last().expect("a step");
            assert!(last.rest > s.max_write_outage, "{name}");
        }
        assert_eq!(named("no-such-scenario"), None);
    }
}
