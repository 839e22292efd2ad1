//! The edge's [`Role`]: writes and read-index requests go up to an upstream (which passes
//! them on to the core); everything else is answered from the edge's own state.
//!
//! A write goes to the next upstream only when the previous one certainly did not take it:
//! the connection could not be made, or the upstream answered `Unavailable` without a
//! leader and without `regatta-outcome: unknown` (no leader known there, nothing proposed).
//! A write whose call failed after it was sent, or whose upstream the tailer left while it
//! waited (the upstream froze or was cut off), is answered [`Error::Indeterminate`] at once
//! and not sent again: it may have been applied (see the core node's role). Read-index
//! requests change nothing and go to the next upstream on any failure.

use std::sync::{Arc, atomic::Ordering};

use dashmap::DashMap;
use regatta_api::{
    Error, Result,
    error::{OUTCOME_METADATA, PeerCall, call_failed, never_sent},
    forward::{self, MembershipChange, NodeWrite, NodeWritten},
    node::{NodeKind, NodeStatus, Role, Written},
};
use regatta_materializer::{Command, Materializer, Revision};
use regatta_proto::regatta::{
    admin::v1::MembershipResponse,
    raft::v1::{ForwardRequest, ReadIndexRequest},
    tail::v1::tail_client::TailClient,
    v1::{Member, MemberListResponse},
};
use regatta_tls::Dialer;
use tonic::transport::Channel;

use crate::state::{ReplicationState, ResetRequest};

pub struct EdgeRole {
    pub node_id: u64,
    pub name: String,
    pub upstreams: Vec<String>,
    pub api_advertise: String,
    pub replication_advertise: String,
    pub materializer: Arc<Materializer>,
    pub state: Arc<ReplicationState>,
    pub log_bytes: Arc<dyn Fn() -> u64 + Send + Sync>,
    pub clients: DashMap<String, TailClient<Channel>>,
    /// How upstreams are dialed (TLS for `https://` ones), as the tailer does.
    pub dialer: Dialer,
    pub resets: tokio::sync::mpsc::Sender<ResetRequest>,
    /// Refuses writes while this edge's disk is below its reserve: it could not keep the
    /// write in its local log to answer it.
    pub disk: Arc<regatta_api::disk::DiskGuard>,
}

impl EdgeRole {
    fn client(&self, upstream: &str) -> Result<TailClient<Channel>> {
        if let Some(c) = self.clients.get(upstream) {
            return Ok(c.clone());
        }
        let endpoint = Channel::from_shared(upstream.to_string())
            .map_err(|e| Error::Internal(format!("invalid upstream {upstream:?}: {e}")))?;
        let endpoint = regatta_api::raft_network::peer_endpoint(endpoint);
        let channel = self
            .dialer
            .connect_lazy(endpoint)
            .map_err(|e| Error::Unavailable {
                reason: format!("upstream {upstream}: {e}"),
            })?;
        let client = TailClient::new(channel);
        self.clients.insert(upstream.to_string(), client.clone());
        Ok(client)
    }

    /// Upstreams in the order to try them, with their index in the list: the one followed
    /// now first.
    fn upstream_order(&self) -> Vec<(usize, String)> {
        let first = self.followed();
        self.upstreams
            .iter()
            .cloned()
            .enumerate()
            .cycle()
            .skip(first)
            .take(self.upstreams.len())
            .collect()
    }
}

/// True when a write that failed with `status` certainly did not reach the core, so the
/// next upstream may have it.
fn write_not_taken(status: &tonic::Status) -> bool {
    if call_failed(status) {
        return never_sent(status);
    }
    status.code() == tonic::Code::Unavailable
        && !status.metadata().contains_key("regatta-leader")
        && !status.metadata().contains_key(OUTCOME_METADATA)
}

/// True when a read-index request that failed with `status` may be asked elsewhere.
fn read_not_answered(status: &tonic::Status) -> bool {
    (call_failed(status) || status.code() == tonic::Code::Unavailable)
        && !status.metadata().contains_key("regatta-leader")
}

impl EdgeRole {
    /// Completes when the tailer leaves the upstream at `index` (it froze, or was cut off).
    async fn upstream_left(&self, index: usize) {
        loop {
            let moved = self.state.upstream_moved.notified();
            tokio::pin!(moved);
            moved.as_mut().enable();
            if self.followed() != index {
                return;
            }
            moved.await;
        }
    }

    fn followed(&self) -> usize {
        self.state.upstream.load(Ordering::Relaxed) % self.upstreams.len().max(1)
    }
}

#[tonic::async_trait]
impl Role for EdgeRole {
    fn kind(&self) -> NodeKind {
        NodeKind::Edge
    }

    async fn write(&self, command: Command) -> Result<Written> {
        self.disk.check()?;
        let request = forward::to_wire(&NodeWrite::Data(command))?;
        let mut last = None;
        for (index, upstream) in self.upstream_order() {
            let mut client = self.client(&upstream)?;
            let followed = self.followed() == index;
            let call = client.write(ForwardRequest {
                hops: 0,
                request: Some(request.clone()),
            });
            let answer = tokio::select! {
                answer = call => answer,
                () = self.upstream_left(index), if followed => {
                    return Err(Error::Indeterminate {
                        reason: format!(
                            "the edge left its upstream {upstream}, which had this write"
                        ),
                        leader: None,
                    });
                }
            };
            match answer {
                Ok(response) => {
                    let response = response.into_inner().response.ok_or_else(|| {
                        Error::Internal("the core answered a write with nothing".into())
                    })?;
                    let NodeWritten::Data(written) = forward::answer_from_wire(response)? else {
                        return Err(Error::Internal(
                            "the core answered a write as a membership change".into(),
                        ));
                    };
                    // Read your writes: answer once this edge has applied it too.
                    #[cfg(debug_assertions)]
                    if regatta_api::inject::active(regatta_api::inject::Bug::EdgeAckBeforeApply) {
                        return Ok(written);
                    }
                    if written.0 > Revision(0) {
                        self.materializer.wait_applied(written.0).await?;
                    }
                    return Ok(written);
                }
                Err(status) if write_not_taken(&status) => last = Some(status),
                Err(status) => return Err(Error::from_peer(status, PeerCall::Write)),
            }
        }
        Err(last.map_or_else(
            || Error::Unavailable {
                reason: "no upstream configured".into(),
            },
            |status| Error::from_peer(status, PeerCall::Write),
        ))
    }

    async fn change_membership(&self, _: MembershipChange) -> Result<MembershipResponse> {
        Err(Error::Unimplemented {
            what: "membership changes",
            why: "edges have no membership",
        })
    }

    async fn read_index(&self) -> Result<u64> {
        let mut last = None;
        for (_, upstream) in self.upstream_order() {
            let mut client = self.client(&upstream)?;
            match client.read_index(ReadIndexRequest { hops: 0 }).await {
                Ok(r) => return Ok(r.into_inner().index),
                Err(status) if read_not_answered(&status) => last = Some(status),
                Err(status) => return Err(Error::from_peer(status, PeerCall::Read)),
            }
        }
        Err(last.map_or_else(
            || Error::Unavailable {
                reason: "no upstream configured".into(),
            },
            |status| Error::from_peer(status, PeerCall::Read),
        ))
    }

    async fn member_list(&self) -> Result<MemberListResponse> {
        Ok(MemberListResponse {
            cluster: "edge".into(),
            members: vec![Member {
                id: self.node_id.to_string(),
                name: self.name.clone(),
                peer_ur_ls: vec![self.replication_advertise.clone()],
                client_ur_ls: vec![self.api_advertise.clone()],
            }],
        })
    }

    async fn reset(&self, table: Option<String>) -> Result<()> {
        // The state is one consistent view of every table: resetting one table takes the
        // upstream's whole current state, which includes it.
        tracing::info!(
            table = table.as_deref().unwrap_or("(all)"),
            "reset requested"
        );
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.resets.send(tx).await.map_err(|_| Error::Unavailable {
            reason: "replication has stopped".into(),
        })?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(Error::Unavailable {
                reason: format!("reset failed: {reason}"),
            }),
            Err(_) => Err(Error::Unavailable {
                reason: "replication stopped during the reset".into(),
            }),
        }
    }

    fn unknown_state(&self) -> Option<String> {
        self.state.unknown_state(self.materializer.applied().0)
    }

    fn status(&self) -> NodeStatus {
        let upstream = self
            .upstream_order()
            .into_iter()
            .next()
            .map(|(_, u)| u)
            .unwrap_or_default();
        let upstream_now = upstream.clone();
        let lag = self.state.lag(self.materializer.applied().0);
        NodeStatus {
            leader_id: 0,
            leader_address: upstream,
            term: self.state.term.load(Ordering::Relaxed),
            commit_index: self.state.upstream_commit.load(Ordering::Relaxed),
            log_bytes: (self.log_bytes)(),
            errors: self
                .state
                .fatal()
                .into_iter()
                .chain(self.disk.status_error())
                .chain(
                    self.state
                        .upstream_error()
                        .map(|e| format!("cannot follow the upstream: {e}")),
                )
                .chain(
                    self.state
                        .disk_full
                        .load(Ordering::Relaxed)
                        .then(|| "replication paused: the local log's disk is full".to_string()),
                )
                .collect(),
            details: vec![
                ("upstream", upstream_now),
                ("lag_entries", lag.entries.to_string()),
                ("lag_seconds", format!("{:.3}", lag.seconds)),
                (
                    "bootstraps",
                    self.state.bootstraps.load(Ordering::Relaxed).to_string(),
                ),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::{Code, Status, metadata::MetadataValue};

    #[test]
    fn a_write_goes_elsewhere_only_when_it_certainly_was_not_taken() {
        // No leader known there: nothing was proposed.
        assert!(write_not_taken(&Status::unavailable("no leader")));
        // The connection could not be made: nothing was sent.
        let refused = Status::from_error(Box::new(tonic::ConnectError(Box::new(
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        ))));
        assert!(write_not_taken(&refused));
        // Sent, then the connection broke: it may have been applied.
        let reset = Status::from_error(Box::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )));
        assert!(!write_not_taken(&reset));
        // The core said the outcome is unknown, or named the leader.
        let mut unknown = Status::unavailable("leader changed");
        unknown
            .metadata_mut()
            .insert(OUTCOME_METADATA, MetadataValue::from_static("unknown"));
        assert!(!write_not_taken(&unknown));
        let mut leader = Status::unavailable("not the leader");
        leader
            .metadata_mut()
            .insert("regatta-leader", MetadataValue::from_static("http://a:1"));
        assert!(!write_not_taken(&leader));
        // Answers about the request itself are final.
        assert!(!write_not_taken(&Status::new(Code::NotFound, "table")));
        assert!(!write_not_taken(&Status::deadline_exceeded("late")));
    }

    #[test]
    fn a_read_index_is_asked_elsewhere_after_any_failed_call() {
        let reset = Status::from_error(Box::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )));
        assert!(read_not_answered(&reset));
        assert!(read_not_answered(&Status::unavailable("no leader")));
        assert!(!read_not_answered(&Status::deadline_exceeded("late")));
    }
}
