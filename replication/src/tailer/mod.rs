//! The edge's tailer: follows an upstream's committed log into the local log and the
//! materializer, bootstraps from a snapshot when the upstream no longer has what it needs,
//! and fails over between upstreams.
//!
//! ```text
//!  upstream ──Subscribe(from = applied+1)──▶ Entries ─▶ check gap-free ─▶ local log (write)
//!                                                     ─▶ apply (one publish per batch), fsync in the background
//!           ◀── silent past staleness / error ──▶ next upstream, same index, no snapshot
//!           ──SnapshotNeeded──▶ object store snapshot (else FetchSnapshot) ─▶ local snapshot
//!                                ─▶ cut the local log ─▶ swap state ─▶ subscribe again
//! ```
//!
//! This file holds the upstream loop (which upstream, when to leave it) and the stream of
//! one subscription; `ingest` writes entries to the local log and applies them, `bootstrap`
//! replaces the state with a snapshot.

mod bootstrap;
mod ingest;

use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use regatta_log::Log;
use regatta_materializer::{Materializer, snapshot::SnapshotStore};
use regatta_proto::regatta::tail::v1::{SubscribeRequest, tail_client::TailClient, tail_message};
use regatta_tls::Dialer;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

pub use bootstrap::{SnapshotSource, check_snapshot_length, choose_source};
pub use ingest::{apply_records, check_gap_free, snapshot_due, to_records};

use crate::{
    EdgeMetrics, Error, LocalSnapshots, ReplicationState, clock::now_micros, state::ResetRequest,
};

#[derive(Debug, Clone)]
pub struct TailerSettings {
    /// This node's name, sent to the upstream with each subscription.
    pub name: String,
    pub upstreams: Vec<String>,
    /// Move to another upstream after hearing nothing for this long.
    pub staleness: Duration,
    /// Write a local snapshot (and cut the local log behind it) every this many entries.
    pub snapshot_entries: u64,
    /// Entries kept in the local log behind the local snapshot, for downstream edges.
    pub keep_entries: u64,
    /// How upstreams are dialed: plaintext for `http://`, TLS for `https://`.
    pub dialer: Dialer,
}

/// Why following one upstream ended.
#[derive(Debug)]
enum Stop {
    /// Subscribe again to the same upstream (after a bootstrap).
    Resubscribe,
    /// The node was asked to stop.
    Shutdown,
    /// Retryable: try the next upstream. Otherwise continuing would serve wrong data: stop
    /// tailing, keep serving what is applied.
    Failed(Error),
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Self::Failed(e)
    }
}

pub struct Tailer {
    pub settings: TailerSettings,
    /// Maintenance.Reset requests from the edge's role.
    pub resets: tokio::sync::mpsc::Receiver<ResetRequest>,
    pub log: Log,
    pub materializer: Arc<Materializer>,
    /// The object store's snapshots, to bootstrap from when one is recent enough.
    pub objects: Option<SnapshotStore>,
    pub local: LocalSnapshots,
    pub state: Arc<ReplicationState>,
    pub metrics: EdgeMetrics,
    /// Revision of the newest local snapshot.
    pub last_local_snapshot: u64,
    /// No local snapshot is attempted before this (set after one found the disk full).
    pub snapshot_not_before: Option<Instant>,
}

impl Tailer {
    /// Follows upstreams until shutdown or an error that must stop replication (recorded
    /// in [`ReplicationState::fatal`]).
    pub async fn run(mut self, shutdown: CancellationToken) {
        let count = self.settings.upstreams.len();
        let mut current = 0;
        let mut failures_in_a_row = 0u32;
        loop {
            if self.state.upstream.swap(current, Ordering::Relaxed) != current {
                self.state.upstream_moved.notify_waiters();
            }
            self.metrics
                .upstream
                .set(i64::try_from(current).unwrap_or(0));
            let upstream = self.settings.upstreams[current].clone();
            let stop = tokio::select! {
                stop = self.follow(&upstream) => stop,
                () = shutdown.cancelled() => Stop::Shutdown,
            };
            match stop {
                Stop::Shutdown => return,
                Stop::Resubscribe => failures_in_a_row = 0,
                Stop::Failed(e) if e.must_stop() => {
                    tracing::error!(error = %e, "edge stops replicating: continuing would serve wrong data");
                    if let Ok(mut fatal) = self.state.fatal.lock() {
                        *fatal = Some(e.to_string());
                    }
                    return;
                }
                Stop::Failed(e) => {
                    failures_in_a_row += 1;
                    let next = (current + 1) % count;
                    tracing::warn!(%upstream, kind = e.kind(), reason = %e, next = %self.settings.upstreams[next], "leaving upstream");
                    self.metrics.failovers.inc();
                    self.metrics
                        .upstream_errors
                        .with_label_values(&[e.kind()])
                        .inc();
                    self.state
                        .set_upstream_error(Some(format!("{upstream}: {e}")));
                    current = next;
                    if failures_in_a_row as usize >= count {
                        // Every upstream failed in turn: back off before the next round.
                        let pause =
                            Duration::from_millis(200 * u64::from(failures_in_a_row.min(10)));
                        tokio::select! {
                            () = tokio::time::sleep(pause) => {}
                            () = shutdown.cancelled() => return,
                        }
                    }
                }
            }
        }
    }

    /// One subscription: entries and heartbeats until the upstream fails, asks for a
    /// bootstrap, or a reset is requested.
    async fn follow(&mut self, upstream: &str) -> Stop {
        let staleness = self.settings.staleness;
        let mut client = match connect(&self.settings.dialer, upstream, staleness).await {
            Ok(c) => c,
            Err(e) => return e.into(),
        };
        let from = self.materializer.applied().0 + 1;
        let request = SubscribeRequest {
            from_index: from,
            subscriber: self.settings.name.clone(),
        };
        let mut stream = match tokio::time::timeout(staleness, client.subscribe(request)).await {
            Ok(Ok(response)) => response.into_inner(),
            Ok(Err(status)) => {
                return Error::Upstream {
                    call: "subscribe refused",
                    status,
                }
                .into();
            }
            Err(_) => {
                return Error::Silent {
                    call: "subscribe",
                    after: staleness,
                }
                .into();
            }
        };
        self.state.set_upstream_error(None);
        tracing::info!(%upstream, from, "following upstream");
        loop {
            let next = tokio::select! {
                next = tokio::time::timeout(staleness, stream.message()) => next,
                Some(reset) = self.resets.recv() => return self.reset(&mut client, reset).await,
            };
            let message = match next {
                Err(_) => {
                    return Error::Silent {
                        call: "tail stream",
                        after: staleness,
                    }
                    .into();
                }
                Ok(Err(status)) => {
                    return Error::Upstream {
                        call: "stream failed",
                        status,
                    }
                    .into();
                }
                Ok(Ok(None)) => return Error::StreamEnded.into(),
                Ok(Ok(Some(m))) => m,
            };
            self.state.connected.store(true, Ordering::Relaxed);
            self.state
                .last_heard_micros
                .store(now_micros(), Ordering::Relaxed);
            match message.message {
                Some(tail_message::Message::Entries(batch)) => {
                    self.note_commit(batch.commit_index);
                    if let Err(e) = self.ingest(batch.entries).await {
                        return e.into();
                    }
                    self.note_caught_up(upstream, batch.commit_index);
                }
                Some(tail_message::Message::Heartbeat(beat)) => {
                    self.note_commit(beat.commit_index);
                    self.note_caught_up(upstream, beat.commit_index);
                }
                Some(tail_message::Message::SnapshotNeeded(needed)) => {
                    return match self.bootstrap(&mut client, &needed).await {
                        Ok(()) => Stop::Resubscribe,
                        Err(e) => e.into(),
                    };
                }
                None => return Error::UnknownMessage.into(),
            }
        }
    }

    /// Maintenance.Reset: takes the upstream's current snapshot, then answers `reset`.
    async fn reset(&mut self, client: &mut TailClient<Channel>, reset: ResetRequest) -> Stop {
        tracing::info!("reset requested: bootstrapping from the upstream's snapshot");
        let outcome = match self.fetch_from_upstream(client).await {
            Ok((state, copy)) => self.install(state, copy).await,
            Err(e) => Err(e),
        };
        let _ = reset.send(outcome.as_ref().map(|_| ()).map_err(Error::to_string));
        match outcome {
            Ok(()) => {
                self.metrics.bootstraps.inc();
                self.state.bootstraps.fetch_add(1, Ordering::Relaxed);
                Stop::Resubscribe
            }
            Err(e) => e.into(),
        }
    }

    /// Marks the edge caught up once it has applied `commit`, the index the upstream
    /// reported (0 while the upstream, an edge itself, does not know its own state yet).
    fn note_caught_up(&self, upstream: &str, commit: u64) {
        let applied = self.materializer.applied().0;
        if self.state.note_upstream_commit(commit, applied) {
            tracing::info!(%upstream, applied, commit, "caught up with the upstream since start");
        }
    }

    /// Records the upstream's commit index (0: no news) and refreshes the lag metrics.
    fn note_commit(&self, commit: u64) {
        self.state
            .upstream_commit
            .fetch_max(commit, Ordering::Relaxed);
        let commit = self.state.upstream_commit.load(Ordering::Relaxed);
        let lag = self.state.lag(self.materializer.applied().0);
        self.metrics
            .upstream_commit
            .set(i64::try_from(commit).unwrap_or(i64::MAX));
        self.metrics
            .lag_entries
            .set(i64::try_from(lag.entries).unwrap_or(i64::MAX));
        self.metrics.lag_seconds.set(lag.seconds);
    }
}

/// Opens a channel to an upstream's replication port through `dialer` (TLS for an
/// `https://` upstream).
pub async fn connect(
    dialer: &Dialer,
    upstream: &str,
    timeout: Duration,
) -> Result<TailClient<Channel>, Error> {
    let endpoint =
        Channel::from_shared(upstream.to_string()).map_err(|source| Error::InvalidUpstream {
            upstream: upstream.to_string(),
            source,
        })?;
    let endpoint = regatta_api::raft_network::peer_endpoint(endpoint).connect_timeout(timeout);
    let channel = dialer
        .connect(endpoint)
        .await
        .map_err(|source| Error::Connect {
            upstream: upstream.to_string(),
            source,
        })?;
    Ok(TailClient::new(channel)
        .max_decoding_message_size(regatta_api::raft_network::MAX_RAFT_MESSAGE_BYTES)
        .max_encoding_message_size(regatta_api::raft_network::MAX_RAFT_MESSAGE_BYTES))
}
