//! Giving leadership up: a core node that should not lead — it is stopping (SIGTERM) or its
//! disk is below the reserve ([`regatta_api::disk::DiskGuard`]) — stops campaigning and,
//! when it leads, stops sending heartbeats, so a follower's election timer runs out and a
//! healthy node takes over.
//!
//! openraft 0.9 has no leadership transfer; its runtime switches do the job:
//! `elect(false)` keeps the node from starting elections (it still votes) and
//! `heartbeat(false)` silences a leader. A follower that stops hearing from its leader
//! campaigns after the leader lease plus its election timeout (1–1.2× the
//! `--raft.election-timeout`, see `election_timeouts` in the binary), wins the other
//! follower's vote, and its first append makes the old leader a follower. While a stopping
//! leader hands over, writes that reach it wait for the next leader and are forwarded there
//! ([`Handoff::hands_over`], used by [`crate::CoreRole`]): a proposal replicated meanwhile
//! would renew the followers' lease and keep the old leader in place. A leader with a full
//! disk refuses writes already.
//!
//! ```text
//!   observed (disk full?, stopping?, who leads)  ──decide──▶  elect/heartbeat on or off,
//!                                                             handoff started / done / dropped
//! ```
//!
//! [`decide`] is the whole policy, a plain function; [`Handoff::run`] applies it whenever
//! Raft's metrics change and on every disk-guard refresh, and [`Handoff::step_down`] is the
//! first step of a node's stop. A node that takes part again (space returned) turns both
//! switches back on; a node whose disk is full never becomes leader, because only a
//! campaigning node can.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use openraft::Raft;
use regatta_api::disk::DiskGuard;
use regatta_materializer::raft::TypeConfig;
use tokio_util::sync::CancellationToken;

/// What the node knows when it decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    pub node_id: u64,
    /// The leader as Raft's metrics tell it.
    pub leader: Option<u64>,
    /// The disk guard says the disk is below its reserve.
    pub disk_full: bool,
    /// The node is stopping.
    pub stopping: bool,
    /// A handoff started earlier and is not over.
    pub handing_over: bool,
    /// This node is the cluster's only voter: nobody could take over.
    pub sole_voter: bool,
}

/// What the node does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Campaign when the leader goes quiet, and, when leading, send heartbeats.
    pub take_part: bool,
    pub event: Option<Event>,
}

/// A change in the handoff, for the log and the handoff's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// This node leads and should not: heartbeats stop from now.
    Started,
    /// Another node leads.
    Done { new_leader: u64 },
    /// The node may lead again (space returned) before anyone took over: it goes on leading.
    Dropped,
}

/// The policy: a node takes part in leadership unless its disk is full or it is stopping;
/// a leader that may not take part starts a handoff, which is over once another node leads.
pub fn decide(o: Observed) -> Decision {
    let take_part = !o.disk_full && !o.stopping;
    let leads = o.leader == Some(o.node_id);
    let other = o.leader.filter(|l| *l != o.node_id);
    let event = match (o.handing_over, other) {
        (true, Some(new_leader)) => Some(Event::Done { new_leader }),
        (true, None) if take_part => Some(Event::Dropped),
        (true, None) => None,
        (false, _) if leads && !take_part && !o.sole_voter => Some(Event::Started),
        (false, _) => None,
    };
    Decision { take_part, event }
}

/// The handoff of one core node: shared by the task that watches, the stop, and the role.
pub struct Handoff {
    node_id: u64,
    raft: Raft<TypeConfig>,
    guard: Arc<DiskGuard>,
    stopping: AtomicBool,
    /// When the running handoff started.
    since: Mutex<Option<Instant>>,
    /// How long a stopping leader waits for another to take over.
    bound: Duration,
}

impl Handoff {
    /// `election_timeout` is `--raft.election-timeout`: a stopping leader waits at most three
    /// of them for a successor.
    pub fn new(
        node_id: u64,
        raft: Raft<TypeConfig>,
        guard: Arc<DiskGuard>,
        election_timeout: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            node_id,
            raft,
            guard,
            stopping: AtomicBool::new(false),
            since: Mutex::new(None),
            bound: election_timeout * 3,
        })
    }

    /// True while this node is stopping or handing leadership over: a write or read index
    /// reaching it waits (at most [`Self::bound`]) for another leader and is forwarded
    /// there (a linearizable read served here would send the followers appends that renew
    /// the lease).
    pub fn hands_over(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
            || self
                .since
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some()
    }

    /// How long a stopping leader waits for a successor.
    pub fn bound(&self) -> Duration {
        self.bound
    }

    /// Decides on what Raft and the disk guard say now and applies it.
    fn apply(&self) {
        // The server metrics, which wake `run`: the full metrics are sent after them.
        let metrics = self.raft.server_metrics();
        let (leader, sole_voter) = {
            let m = metrics.borrow();
            let mut voters = m.membership_config.membership().voter_ids();
            let sole = voters.next() == Some(self.node_id) && voters.next().is_none();
            (m.current_leader, sole)
        };
        let mut since = self.since.lock().unwrap_or_else(|e| e.into_inner());
        let decision = decide(Observed {
            node_id: self.node_id,
            leader,
            disk_full: self.guard.is_full(),
            stopping: self.stopping.load(Ordering::Relaxed),
            handing_over: since.is_some(),
            sole_voter,
        });
        let config = self.raft.runtime_config();
        config.elect(decision.take_part);
        config.heartbeat(decision.take_part);
        match decision.event {
            Some(Event::Started) => {
                tracing::info!(
                    disk_full = self.guard.is_full(),
                    stopping = self.stopping.load(Ordering::Relaxed),
                    "handing leadership over: heartbeats stopped, not campaigning"
                );
                *since = Some(Instant::now());
            }
            Some(Event::Done { new_leader }) => {
                let took = since.take().map(|s| s.elapsed()).unwrap_or_default();
                tracing::info!(new_leader, ?took, "leadership handed over");
            }
            Some(Event::Dropped) => {
                tracing::info!("disk has room again before another node took over: leading on");
                *since = None;
            }
            None => {}
        }
    }

    /// Applies [`decide`] on every change of Raft's server metrics (vote, role, leader,
    /// membership: what [`decide`] looks at) and every disk-guard refresh, until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut rx = self.raft.server_metrics();
        let mut tick = tokio::time::interval(regatta_api::disk::REFRESH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.apply();
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return },
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// The first step of stopping: stop campaigning and, when leading a cluster of more
    /// than one voter, hand leadership over and wait (at most [`Self::bound`]) until another
    /// node leads. Returns without waiting on a follower.
    pub async fn step_down(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        self.apply();
        let mut rx = self.raft.server_metrics();
        let nothing_to_hand_over = {
            let m = rx.borrow();
            m.current_leader != Some(self.node_id)
                || m.membership_config.membership().voter_ids().count() < 2
        };
        if nothing_to_hand_over {
            return;
        }
        let node_id = self.node_id;
        let other = rx.wait_for(|m| m.current_leader.is_some_and(|l| l != node_id));
        // The metrics' read guard is dropped before `apply` reads them again.
        let outcome = tokio::time::timeout(self.bound, other)
            .await
            .map(|seen| seen.map(drop));
        match outcome {
            Ok(Ok(())) => self.apply(),
            Ok(Err(_)) => tracing::warn!("raft stopped while handing leadership over"),
            Err(_) => tracing::warn!(
                waited = ?self.bound,
                "no other node took leadership over in time: stopping as leader"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(leader: Option<u64>) -> Observed {
        Observed {
            node_id: 1,
            leader,
            disk_full: false,
            stopping: false,
            handing_over: false,
            sole_voter: false,
        }
    }

    #[test]
    fn a_healthy_node_takes_part_and_hands_nothing_over() {
        for leader in [None, Some(1), Some(2)] {
            let d = decide(observed(leader));
            assert!(d.take_part);
            assert_eq!(d.event, None);
        }
    }

    #[test]
    fn a_leader_with_a_full_disk_or_stopping_starts_a_handoff() {
        for (disk_full, stopping) in [(true, false), (false, true), (true, true)] {
            let d = decide(Observed {
                disk_full,
                stopping,
                ..observed(Some(1))
            });
            assert!(!d.take_part);
            assert_eq!(d.event, Some(Event::Started));
        }
    }

    #[test]
    fn a_sole_voter_has_nobody_to_hand_over_to() {
        let d = decide(Observed {
            disk_full: true,
            sole_voter: true,
            ..observed(Some(1))
        });
        assert_eq!(d.event, None);
    }

    #[test]
    fn a_follower_with_a_full_disk_does_not_campaign() {
        for leader in [None, Some(2)] {
            let d = decide(Observed {
                disk_full: true,
                ..observed(leader)
            });
            assert!(!d.take_part, "never campaigns, so never leads");
            assert_eq!(d.event, None, "has nothing to hand over");
        }
    }

    #[test]
    fn a_handoff_is_over_when_another_node_leads() {
        let handing = Observed {
            disk_full: true,
            handing_over: true,
            ..observed(Some(1))
        };
        assert_eq!(decide(handing).event, None, "still leading: waits");
        assert_eq!(
            decide(Observed {
                leader: None,
                ..handing
            })
            .event,
            None,
            "an election is under way: waits"
        );
        let d = decide(Observed {
            leader: Some(3),
            ..handing
        });
        assert_eq!(d.event, Some(Event::Done { new_leader: 3 }));
        assert!(!d.take_part, "the disk is still full");
    }

    #[test]
    fn space_returning_mid_handoff_drops_it_and_the_node_takes_part_again() {
        let d = decide(Observed {
            handing_over: true,
            ..observed(Some(1))
        });
        assert!(d.take_part);
        assert_eq!(d.event, Some(Event::Dropped));
        let after = decide(observed(Some(2)));
        assert!(after.take_part, "a follower again: campaigns when needed");
    }

    #[test]
    fn a_stopping_node_never_takes_part_again() {
        let d = decide(Observed {
            stopping: true,
            handing_over: true,
            ..observed(None)
        });
        assert!(!d.take_part);
        assert_eq!(d.event, None);
    }
}
