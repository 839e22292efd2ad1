//! Expiry of keys with a time to live, decided by the core leader.
//!
//! A put with a TTL stores its expiry (the leader's clock at proposal plus the TTL) with
//! the key. Readers skip a key once their own clock passes its expiry; the key itself is
//! removed by an ordinary log entry, [`Command::Expire`], which this task proposes on the
//! leader. So every replica, edge and watcher sees the same deletion at the same revision,
//! and replaying the log (audit, point-in-time restore) reproduces it exactly.
//!
//! Every `interval` the leader asks its applied state for the keys expired at its clock
//! ([`plan`], soonest first, at most `max_keys` per entry) and proposes them, entry after
//! entry, until none is left; each entry waits for the previous one to apply, so the same
//! key is not proposed twice. An entry names each key with the write that set its expiry,
//! and apply deletes it only if the key still holds that write and has expired at the
//! entry's time: a key written again meanwhile is left alone. A leader change loses
//! nothing (the next leader's state holds the same expiries) and a duplicate proposal from
//! an old leader deletes nothing twice.
//!
//! How late the delete can be (docs/api.md "TTL"): `interval` plus one commit, plus the
//! time to propose the keys expiring before it, `max_keys` per entry; longer while no
//! leader is elected. Reads are not affected by that delay: an expired key is not returned.

use std::sync::Arc;
use std::time::Duration;

use openraft::Raft;
use prometheus::{IntCounter, Registry};
use regatta_api::node::Role;
use regatta_materializer::{Command, Materializer, State, raft::TypeConfig, wall_clock_ms};
use tokio_util::sync::CancellationToken;

use crate::role::CoreRole;

/// The expiry task's settings (`--ttl.*` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpirySettings {
    /// How often the leader looks for expired keys.
    pub interval: Duration,
    /// The most keys one expiry entry deletes.
    pub max_keys: usize,
}

impl Default for ExpirySettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(100),
            max_keys: 1000,
        }
    }
}

/// The expiry entries to propose for `state` at `now_ms`: one per table with expired keys,
/// at most `max_keys` keys in all, soonest expiry first. Empty when nothing has expired.
pub fn plan(state: &State, now_ms: u64, max_keys: usize) -> Vec<Command> {
    state
        .expired(now_ms, max_keys)
        .into_iter()
        .map(|(table, keys)| Command::Expire { table, keys })
        .collect()
}

/// The expiry task's metrics.
#[derive(Clone)]
pub struct ExpiryMetrics {
    proposed: IntCounter,
    deleted: IntCounter,
    failed: IntCounter,
}

impl ExpiryMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        use regatta_api::metrics::counter;
        Ok(Self {
            proposed: counter(
                registry,
                "regatta_ttl_expire_entries_total",
                "Expiry entries this node proposed as the leader",
            )?,
            deleted: counter(
                registry,
                "regatta_ttl_expired_keys_total",
                "Keys deleted by expiry entries this node proposed as the leader",
            )?,
            failed: counter(
                registry,
                "regatta_ttl_expire_failures_total",
                "Expiry entries that failed to commit (retried at the next interval)",
            )?,
        })
    }
}

/// `true` while this node is the leader.
fn leading(raft: &Raft<TypeConfig>) -> bool {
    let metrics = raft.server_metrics();
    let m = metrics.borrow();
    m.state == openraft::ServerState::Leader && m.current_leader == Some(m.id)
}

/// Runs until `shutdown`: on the leader, proposes the expiry of every key whose time has
/// come (see the module docs); elsewhere it only ticks.
pub async fn run(
    settings: ExpirySettings,
    raft: Raft<TypeConfig>,
    role: Arc<CoreRole>,
    materializer: Arc<Materializer>,
    metrics: ExpiryMetrics,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(settings.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A failure is logged once until an expiry entry commits again (a full disk would
    // otherwise log every interval).
    let mut warned = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        // Drain what has expired, one entry after the other, while this node leads.
        while leading(&raft) && !shutdown.is_cancelled() {
            let commands = plan(&materializer.peek(), wall_clock_ms(), settings.max_keys);
            if commands.is_empty() {
                break;
            }
            let mut failed = false;
            for command in commands {
                let table = command.table().to_owned();
                metrics.proposed.inc();
                match role.write(command).await {
                    Ok((_, response)) => {
                        warned = false;
                        if let regatta_materializer::ApplyResponse::DeleteRange(r) = response {
                            metrics
                                .deleted
                                .inc_by(u64::try_from(r.deleted).unwrap_or(0));
                        }
                    }
                    Err(e) => {
                        // Lost leadership, a full disk, a stopping node: the next leader (or
                        // this one, at the next interval) proposes again.
                        metrics.failed.inc();
                        if !warned {
                            tracing::warn!(%table, error = %e, "proposing the expiry of keys failed; retrying every interval (logged again after a success)");
                            warned = true;
                        }
                        failed = true;
                        break;
                    }
                }
            }
            if failed {
                break;
            }
        }
    }
}
