//! The core node's [`Role`]: writes go through Raft on the leader and are forwarded to it
//! from followers; linearizable reads use the leader's read index.
//!
//! A forwarded write waits for the leader's answer only while that node is the leader as far
//! as this node knows: once this node learns of another leader (the old one froze, crashed
//! or was cut off), the write's client is answered at once, `Unavailable` with the new
//! leader and `regatta-outcome: unknown`, instead of waiting out its deadline. The write is
//! not sent to the new leader in its place: the old leader may have appended it and
//! replicated it before it stopped, in which case the new leader commits it, and a second
//! copy would apply twice (a `Txn` or a `DeleteRange` is not idempotent). Whether to retry,
//! and how to make a retry safe (a `Txn` comparing a value the write changes), is the
//! client's decision, as with etcd. What is re-sent here is only what is known not to have
//! been applied: a proposal openraft refused or truncated (`ForwardToLeader`), and read-index
//! requests, which change nothing.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::Duration,
};

use dashmap::DashMap;
use futures::future::BoxFuture;
use openraft::{
    BasicNode, ChangeMembers, Raft, RaftMetrics,
    error::{CheckIsLeaderError, ClientWriteError, RaftError},
};
use regatta_api::{
    Error, Result,
    error::PeerCall,
    forward::{self, MembershipChange, NodeWrite, NodeWritten},
    node::{NodeKind, NodeStatus, Role, Written, accepted},
    raft_service::ForwardHandler,
};
use regatta_materializer::{Command, Materializer, Revision, raft::TypeConfig};
use regatta_proto::regatta::{
    admin::v1::MembershipResponse,
    raft::v1::{
        ForwardRequest, NodeInfoRequest, NodeInfoResponse, ReadIndexRequest,
        raft_transport_client::RaftTransportClient,
    },
    v1::{Member, MemberListResponse},
};
use regatta_tls::Dialer;
use tonic::transport::{Channel, Endpoint};

use crate::batcher::Batcher;
use regatta_proto::now_micros;

/// A write or read-index request is forwarded at most this many times before the node
/// gives up (leadership moving faster than requests travel).
const MAX_HOPS: u32 = 3;

/// Where this node can be reached, as it tells peers and clients.
#[derive(Debug, Clone)]
pub struct Advertised {
    pub name: String,
    pub api_urls: Vec<String>,
    pub replication_urls: Vec<String>,
}

/// This node as a member of its cluster: its id, the cluster's name, and how it dials the
/// other members.
pub struct ClusterMember {
    pub node_id: u64,
    pub cluster_name: String,
    /// TLS to `https://` Raft addresses, with this node's client certificate.
    pub dialer: Dialer,
}

/// What the role knows of this node's disk.
pub struct LocalDisk {
    /// Bytes of the log's files.
    pub log_bytes: Arc<dyn Fn() -> u64 + Send + Sync>,
    /// Refuses writes while the disk is below its reserve.
    pub guard: Arc<regatta_api::disk::DiskGuard>,
}

pub struct CoreRole {
    node_id: u64,
    cluster_name: String,
    raft: Raft<TypeConfig>,
    materializer: Arc<Materializer>,
    advertised: Advertised,
    /// Opens the channels to peers (forwarded writes, read index, node info): TLS to
    /// `https://` Raft addresses, with this node's client certificate.
    dialer: Dialer,
    peers: DashMap<String, RaftTransportClient<Channel>>,
    peer_info: DashMap<u64, NodeInfoResponse>,
    log_bytes: Arc<dyn Fn() -> u64 + Send + Sync>,
    /// Refuses writes while this node's disk is below its reserve.
    disk: Arc<regatta_api::disk::DiskGuard>,
    /// Holds writes while this node hands leadership over.
    handoff: Arc<crate::handoff::Handoff>,
    batcher: Batcher,
}

impl CoreRole {
    pub fn new(
        member: ClusterMember,
        raft: Raft<TypeConfig>,
        materializer: Arc<Materializer>,
        advertised: Advertised,
        disk: LocalDisk,
        batcher: Batcher,
        handoff: Arc<crate::handoff::Handoff>,
    ) -> Self {
        let LocalDisk { log_bytes, guard } = disk;
        let ClusterMember {
            node_id,
            cluster_name,
            dialer,
        } = member;
        Self {
            disk: guard,
            handoff,
            node_id,
            cluster_name,
            batcher,
            raft,
            materializer,
            advertised,
            dialer,
            peers: DashMap::new(),
            peer_info: DashMap::new(),
            log_bytes,
        }
    }

    fn metrics(&self) -> RaftMetrics<u64, BasicNode> {
        self.raft.metrics().borrow().clone()
    }

    fn peer(&self, addr: &str) -> Result<RaftTransportClient<Channel>> {
        if let Some(client) = self.peers.get(addr) {
            return Ok(client.clone());
        }
        let endpoint = Endpoint::from_shared(addr.to_string())
            .map_err(|e| Error::Internal(format!("peer address {addr:?} is invalid: {e}")))?;
        let channel = self
            .dialer
            .connect_lazy(regatta_api::raft_network::peer_endpoint(endpoint))
            .map_err(|e| Error::Internal(format!("peer address {addr:?}: {e}")))?;
        let client = RaftTransportClient::new(channel)
            .max_decoding_message_size(regatta_api::raft_network::MAX_RAFT_MESSAGE_BYTES)
            .max_encoding_message_size(regatta_api::raft_network::MAX_RAFT_MESSAGE_BYTES);
        self.peers.insert(addr.to_string(), client.clone());
        Ok(client)
    }

    /// Refuses a member to add whose Raft address is not of a valid shape, or does not fit
    /// this cluster's transport (`https://` when the nodes speak TLS to each other):
    /// `InvalidArgument`, checked where the change enters and again on the leader.
    fn check_new_member(&self, change: &MembershipChange) -> Result<()> {
        let MembershipChange::Add(add) = change else {
            return Ok(());
        };
        crate::peer_url::check("raft-address", &add.raft_address)
            .and_then(|()| {
                crate::peer_url::check_transport(
                    "raft-address",
                    &add.raft_address,
                    self.dialer.has_tls(),
                )
            })
            .map_err(|reason| {
                Error::Materializer(regatta_materializer::Error::InvalidArgument { reason })
            })
    }

    /// Waits until some leader is known, for at most an election's worth of time.
    async fn await_leader(&self) -> Result<()> {
        let mut rx = self.raft.server_metrics();
        let wait = rx.wait_for(|m| m.current_leader.is_some());
        match tokio::time::timeout(Duration::from_secs(3), wait).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(Error::Unavailable {
                reason: "raft has stopped".into(),
            }),
            Err(_) => Err(Error::NoLeader {
                reason: "no leader elected yet".into(),
            }),
        }
    }

    /// Commits `write` here (leader) or at the leader, answering as the leader answered.
    ///
    /// A follower that knows its leader forwards at once: the batcher and openraft take only
    /// what this node may propose. Refused first while this node's disk is full: on the
    /// leader, the entry could not be appended; on a follower, it could not be applied here
    /// before the answer (the client reads its own write where it wrote). A forwarded write
    /// meets the leader's own check.
    async fn write_with_hops(&self, write: NodeWrite, hops: u32) -> Result<NodeWritten> {
        self.disk.check()?;
        self.await_handoff().await;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let outcome = match (self.leader_elsewhere(), &write) {
                (Some((leader_id, address)), _) => Err(Redirect::To { leader_id, address }),
                (None, NodeWrite::Membership(change)) => self.change_membership(change).await,
                (None, NodeWrite::Data(command)) => {
                    self.propose(command.clone()).await.map(NodeWritten::Data)
                }
            };
            match outcome {
                Ok(written) => return Ok(written),
                Err(Redirect::To { leader_id, address }) => {
                    if hops >= MAX_HOPS {
                        return Err(Error::NotLeader {
                            leader_id,
                            leader_address: address,
                        });
                    }
                    return self.forward(leader_id, &address, &write, hops + 1).await;
                }
                Err(Redirect::Unknown) if attempts < 3 => self.await_leader().await?,
                Err(Redirect::Unknown) => {
                    return Err(Error::NoLeader {
                        reason: "leadership keeps changing".into(),
                    });
                }
                Err(Redirect::Failed(e)) => return Err(e),
            }
        }
    }

    /// While this node hands leadership over and knows no other leader, waits (bounded)
    /// for the next one: a proposal or a read index served here would renew the followers'
    /// lease (openraft sends them an append), and the request goes to the new leader instead.
    async fn await_handoff(&self) {
        if self.handoff.hands_over() && self.leader_elsewhere().is_none() {
            let next = self.leader_other_than(self.node_id);
            let _ = tokio::time::timeout(self.handoff.bound(), next).await;
        }
    }

    /// The leader and its Raft URL when this node knows it is another node.
    fn leader_elsewhere(&self) -> Option<(u64, String)> {
        let metrics = self.raft.server_metrics();
        let metrics = metrics.borrow();
        let leader = metrics.current_leader.filter(|l| *l != self.node_id)?;
        let node = metrics.membership_config.membership().get_node(&leader)?;
        Some((leader, node.addr.clone()))
    }

    /// Sends `write` to `leader_id` at `address` and answers as it answered, or with
    /// [`Error::Indeterminate`] as soon as this node learns of another leader.
    async fn forward(
        &self,
        leader_id: u64,
        address: &str,
        write: &NodeWrite,
        hops: u32,
    ) -> Result<NodeWritten> {
        let mut client = self.peer(address)?;
        let call = client.forward(ForwardRequest {
            hops,
            request: Some(forward::to_wire(write)?),
        });
        let answer = tokio::select! {
            answer = call => answer,
            leader = self.leader_other_than(leader_id) => {
                return Err(Error::Indeterminate {
                    reason: format!(
                        "node {leader_id}, to which this write was forwarded, is no longer the leader"
                    ),
                    leader,
                });
            }
        };
        let response = answer
            .map_err(|status| Error::from_peer(status, PeerCall::Write))?
            .into_inner()
            .response
            .ok_or_else(|| {
                Error::Internal("the leader answered a forwarded write with nothing".into())
            })?;
        let written = forward::answer_from_wire(response)?;
        // Answer once this node has applied the write too, so the client reads it here.
        let revision = match &written {
            NodeWritten::Data((revision, _)) => *revision,
            NodeWritten::Membership(m) => Revision(m.revision),
        };
        if revision > Revision(0) {
            self.materializer
                .wait_applied(revision)
                .await
                .map_err(|e| Error::Indeterminate {
                    reason: format!(
                        "the write was committed at revision {revision} but this node cannot apply it: {e}"
                    ),
                    leader: None,
                })?;
        }
        Ok(written)
    }

    /// Completes once this node knows a leader other than `old`: its id and Raft URL (`None`
    /// when Raft has stopped). Never completes while `old` is, or may still be, the leader.
    async fn leader_other_than(&self, old: u64) -> Option<(u64, String)> {
        // Raft's server metrics change only with the vote, the role, the leader or the
        // membership; the full metrics change several times per write, and every forwarded
        // write waits here.
        let mut rx = self.raft.server_metrics();
        let metrics = rx
            .wait_for(|m| m.current_leader.is_some_and(|l| l != old))
            .await
            .ok()?;
        let leader = metrics.current_leader?;
        let address = metrics
            .membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.addr.clone())
            .unwrap_or_default();
        Some((leader, address))
    }

    /// Proposes `command` here: batchable writes through the batcher, the rest as entries of
    /// their own.
    async fn propose(&self, command: Command) -> Result<Written, Redirect> {
        let (log_id, data) = if command.batchable() {
            let bytes = command.size_hint();
            self.batcher
                .propose(command, bytes)
                .await
                .map_err(redirect_from_write)?
        } else {
            let written = self
                .raft
                .client_write(command.to_event(now_micros()))
                .await
                .map_err(redirect_from_write)?;
            (written.log_id, written.data)
        };
        accepted((Revision(log_id.index), data)).map_err(Redirect::Failed)
    }

    async fn change_membership(&self, change: &MembershipChange) -> Result<NodeWritten, Redirect> {
        let written = match change {
            MembershipChange::Add(add) => {
                if add.id == 0 {
                    return Err(Redirect::Failed(Error::Materializer(
                        regatta_materializer::Error::InvalidArgument {
                            reason: "node id must not be 0".into(),
                        },
                    )));
                }
                let node = BasicNode {
                    addr: add.raft_address.clone(),
                };
                self.check_new_member(change).map_err(Redirect::Failed)?;
                let learner = self
                    .raft
                    .add_learner(add.id, node, true)
                    .await
                    .map_err(redirect_from_write)?;
                if add.learner_only {
                    learner
                } else {
                    self.raft
                        .change_membership(
                            ChangeMembers::AddVoterIds(BTreeSet::from([add.id])),
                            false,
                        )
                        .await
                        .map_err(redirect_from_write)?
                }
            }
            MembershipChange::Remove(remove) => {
                let metrics = self.metrics();
                let membership = metrics.membership_config.membership();
                let is_voter = membership.voter_ids().any(|id| id == remove.id);
                let is_node = membership.nodes().any(|(id, _)| *id == remove.id);
                if !is_node {
                    return Err(Redirect::Failed(Error::Materializer(
                        regatta_materializer::Error::InvalidArgument {
                            reason: format!("node {} is not a member", remove.id),
                        },
                    )));
                }
                let change = if is_voter {
                    ChangeMembers::RemoveVoters(BTreeSet::from([remove.id]))
                } else {
                    ChangeMembers::RemoveNodes(BTreeSet::from([remove.id]))
                };
                self.raft
                    .change_membership(change, false)
                    .await
                    .map_err(redirect_from_write)?
            }
        };
        let membership = written
            .membership
            .unwrap_or_else(|| self.metrics().membership_config.membership().clone());
        Ok(NodeWritten::Membership(MembershipResponse {
            revision: written.log_id.index,
            voters: membership.voter_ids().collect(),
            nodes: membership
                .nodes()
                .map(|(id, n)| (*id, n.addr.clone()))
                .collect(),
        }))
    }

    async fn read_index_with_hops(&self, hops: u32) -> Result<u64> {
        self.await_handoff().await;
        for _ in 0..3 {
            match self.raft.get_read_log_id().await {
                Ok((read_log_id, _applied)) => return Ok(read_log_id.map_or(0, |l| l.index)),
                #[cfg(debug_assertions)]
                Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_)))
                    if regatta_api::inject::active(regatta_api::inject::Bug::FollowerLocalRead) =>
                {
                    return Ok(self.materializer.applied().0);
                }
                Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f))) => {
                    match f.leader_node {
                        Some(node) if hops < MAX_HOPS => {
                            let mut client = self.peer(&node.addr)?;
                            let call = client.read_index(ReadIndexRequest { hops: hops + 1 });
                            let old = f.leader_id.unwrap_or_default();
                            // A read index changes nothing: when the leader changes under it,
                            // ask the new one.
                            tokio::select! {
                                answer = call => {
                                    let response = answer
                                        .map_err(|s| Error::from_peer(s, PeerCall::Read))?;
                                    return Ok(response.into_inner().index);
                                }
                                _ = self.leader_other_than(old) => {}
                            }
                        }
                        Some(node) => {
                            return Err(Error::NotLeader {
                                leader_id: f.leader_id.unwrap_or_default(),
                                leader_address: node.addr,
                            });
                        }
                        None => self.await_leader().await?,
                    }
                }
                Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e))) => {
                    return Err(Error::NoLeader {
                        reason: e.to_string(),
                    });
                }
                Err(RaftError::Fatal(e)) => {
                    return Err(Error::Unavailable {
                        reason: e.to_string(),
                    });
                }
            }
        }
        Err(Error::NoLeader {
            reason: "leadership keeps changing".into(),
        })
    }

    async fn info_of(&self, id: u64, raft_addr: &str) -> Option<NodeInfoResponse> {
        if id == self.node_id {
            return Some(self.node_info());
        }
        if let Some(info) = self.peer_info.get(&id) {
            return Some(info.clone());
        }
        let mut client = self.peer(raft_addr).ok()?;
        let mut request = tonic::Request::new(NodeInfoRequest {});
        request.set_timeout(Duration::from_secs(1));
        let info = client.node_info(request).await.ok()?.into_inner();
        self.peer_info.insert(id, info.clone());
        Some(info)
    }
}

/// Why a proposal did not happen here.
enum Redirect {
    To { leader_id: u64, address: String },
    Unknown,
    Failed(Error),
}

fn redirect_from_write(e: RaftError<u64, ClientWriteError<u64, BasicNode>>) -> Redirect {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
            match (f.leader_id, f.leader_node) {
                (Some(leader_id), Some(node)) => Redirect::To {
                    leader_id,
                    address: node.addr,
                },
                _ => Redirect::Unknown,
            }
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => Redirect::Failed(
            Error::Materializer(regatta_materializer::Error::FailedPrecondition {
                reason: e.to_string(),
            }),
        ),
        // The proposal may have been appended (and replicated) before Raft stopped.
        RaftError::Fatal(e) => Redirect::Failed(Error::Indeterminate {
            reason: format!("raft has stopped: {e}"),
            leader: None,
        }),
    }
}

#[tonic::async_trait]
impl Role for CoreRole {
    fn kind(&self) -> NodeKind {
        NodeKind::Core
    }

    async fn write(&self, command: Command) -> Result<Written> {
        match self.write_with_hops(NodeWrite::Data(command), 0).await? {
            NodeWritten::Data(written) => Ok(written),
            other => Err(Error::Internal(format!(
                "a write was answered with {other:?}"
            ))),
        }
    }

    async fn change_membership(&self, change: MembershipChange) -> Result<MembershipResponse> {
        self.check_new_member(&change)?;
        match self
            .write_with_hops(NodeWrite::Membership(change), 0)
            .await?
        {
            NodeWritten::Membership(response) => Ok(response),
            other => Err(Error::Internal(format!(
                "a membership change was answered with {other:?}"
            ))),
        }
    }

    async fn read_index(&self) -> Result<u64> {
        self.read_index_with_hops(0).await
    }

    async fn member_list(&self) -> Result<MemberListResponse> {
        let metrics = self.metrics();
        let nodes: BTreeMap<u64, String> = metrics
            .membership_config
            .membership()
            .nodes()
            .map(|(id, n)| (*id, n.addr.clone()))
            .collect();
        let mut members = Vec::new();
        for (id, raft_addr) in nodes {
            let info = self.info_of(id, &raft_addr).await;
            members.push(Member {
                id: id.to_string(),
                name: info
                    .as_ref()
                    .map_or_else(|| format!("node-{id}"), |i| i.name.clone()),
                peer_ur_ls: vec![raft_addr],
                client_ur_ls: info.map(|i| i.api_urls).unwrap_or_default(),
            });
        }
        Ok(MemberListResponse {
            cluster: self.cluster_name.clone(),
            members,
        })
    }

    async fn reset(&self, _table: Option<String>) -> Result<()> {
        Err(Error::Unimplemented {
            what: "Maintenance.Reset",
            why: "only edges re-bootstrap; the core is the source",
        })
    }

    fn status(&self) -> NodeStatus {
        let metrics = self.metrics();
        let leader_id = metrics.current_leader.unwrap_or(0);
        let leader_address = metrics
            .current_leader
            .and_then(|l| {
                metrics
                    .membership_config
                    .membership()
                    .get_node(&l)
                    .map(|n| n.addr.clone())
            })
            .unwrap_or_default();
        let mut errors = Vec::new();
        if let Err(e) = &metrics.running_state {
            errors.push(format!("raft stopped: {e}"));
        }
        errors.extend(self.disk.status_error());
        NodeStatus {
            leader_id,
            leader_address,
            term: metrics.current_term,
            commit_index: metrics.last_applied.map_or(0, |l| l.index),
            log_bytes: (self.log_bytes)(),
            errors,
            details: vec![(
                "snapshot",
                metrics.snapshot.map_or(0, |l| l.index).to_string(),
            )],
        }
    }
}

impl ForwardHandler for CoreRole {
    fn forward(
        &self,
        request: ForwardRequest,
    ) -> BoxFuture<'_, Result<regatta_proto::regatta::raft::v1::ForwardResponse, tonic::Status>>
    {
        Box::pin(async move {
            let hops = request.hops;
            let inner = request
                .request
                .ok_or_else(|| tonic::Status::invalid_argument("forwarded request is empty"))?;
            // A new entry into this node: validated here, once.
            let write = NodeWrite::try_from(inner)?;
            let shard = match &write {
                NodeWrite::Data(command) => Some(command.table().to_owned()),
                NodeWrite::Membership(_) => None,
            };
            let written = self.write_with_hops(write, hops).await?;
            let shard = shard.map_or(0, |t| forward::shard_of(&self.materializer, &t));
            Ok(regatta_proto::regatta::raft::v1::ForwardResponse {
                response: Some(forward::answer_to_wire(written, shard)?),
            })
        })
    }

    fn read_index(&self, hops: u32) -> BoxFuture<'_, Result<u64, tonic::Status>> {
        Box::pin(async move { Ok(self.read_index_with_hops(hops).await?) })
    }

    fn node_info(&self) -> NodeInfoResponse {
        NodeInfoResponse {
            node_id: self.node_id,
            name: self.advertised.name.clone(),
            api_urls: self.advertised.api_urls.clone(),
            replication_urls: self.advertised.replication_urls.clone(),
        }
    }
}
