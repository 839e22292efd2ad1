//! The one codec between openraft's types and the `regatta.raft.v1` messages.
//!
//! Everything that encodes an openraft type goes through here: the Raft transport between
//! core nodes (`regatta-api`), the membership entries stored in the log (`regatta-log`),
//! the applied state kept in every snapshot (`regatta-materializer`) and the metadata of the
//! core's local Raft snapshot files. The conversions are generic over the type config, so
//! they do not depend on the state machine; an entry's event travels as its protobuf
//! encoding.
//!
//! - `*_to_pb` never fails. `*_from_pb` validates: a missing required field, an undecodable
//!   event or a membership entry without a voter set is an [`Error`], never a panic.
//! - `encode_*` / `decode_*` are the byte forms stored on disk: [`encode_membership`] (a
//!   membership log entry's payload), [`encode_snapshot_meta`] (a Raft snapshot file's
//!   metadata) and [`encode_applied`] (the applied state inside a snapshot).
//!
//! Stored bytes outlive the build that wrote them: field numbers and types of these
//! messages never change (proto/OVERVIEW.md, "Compatibility").

use std::collections::{BTreeMap, BTreeSet};

use openraft::{
    BasicNode, CommittedLeaderId, Entry, EntryPayload, LeaderId, LogId, Membership, RaftTypeConfig,
    SnapshotMeta, StoredMembership, Vote,
    raft::{
        AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest,
        InstallSnapshotResponse, VoteRequest, VoteResponse,
    },
};
use prost::Message;

use crate::regatta::raft::v1 as pb;
use crate::{Error, Result};

/// The type configs this codec serves: node ids are `u64`, nodes are addressed by a Raft
/// URL, entries are openraft's own and payloads are protobuf messages.
pub trait WireConfig:
    RaftTypeConfig<NodeId = u64, Node = BasicNode, Entry = Entry<Self>, D = Self::Payload>
{
    /// The log event type (`C::D`), a protobuf message.
    type Payload: Message + Default;
}

impl<C> WireConfig for C
where
    C: RaftTypeConfig<NodeId = u64, Node = BasicNode, Entry = Entry<C>>,
    C::D: Message + Default,
{
    type Payload = C::D;
}

/// openraft's membership as this codec handles it.
pub type RaftMembership = Membership<u64, BasicNode>;

fn required<T>(value: Option<T>, field: &'static str) -> Result<T> {
    value.ok_or(Error::Missing(field))
}

fn decode<M: Message + Default>(what: &'static str, bytes: &[u8]) -> Result<M> {
    M::decode(bytes).map_err(|source| Error::Decode { what, source })
}

// ---- positions and votes ----

pub fn leader_id_to_pb(id: &LeaderId<u64>) -> pb::LeaderId {
    pb::LeaderId {
        term: id.term,
        node_id: id.node_id,
    }
}

pub fn log_id_to_pb(id: &LogId<u64>) -> pb::LogId {
    pb::LogId {
        leader_id: Some(pb::LeaderId {
            term: id.leader_id.term,
            node_id: id.leader_id.node_id,
        }),
        index: id.index,
    }
}

pub fn log_id_from_pb(id: pb::LogId) -> Result<LogId<u64>> {
    let leader = required(id.leader_id, "log_id.leader_id")?;
    Ok(LogId::new(
        CommittedLeaderId::new(leader.term, leader.node_id),
        id.index,
    ))
}

/// An optional log id (absent: none yet).
pub fn opt_log_id_from_pb(id: Option<pb::LogId>) -> Result<Option<LogId<u64>>> {
    id.map(log_id_from_pb).transpose()
}

pub fn vote_to_pb(vote: &Vote<u64>) -> pb::Vote {
    pb::Vote {
        leader_id: Some(leader_id_to_pb(&vote.leader_id)),
        committed: vote.committed,
    }
}

pub fn vote_from_pb(vote: Option<pb::Vote>) -> Result<Vote<u64>> {
    let vote = required(vote, "vote")?;
    let leader = required(vote.leader_id, "vote.leader_id")?;
    let mut out = Vote::new(leader.term, leader.node_id);
    out.committed = vote.committed;
    Ok(out)
}

// ---- membership ----

pub fn membership_to_pb(m: &RaftMembership) -> pb::Membership {
    pb::Membership {
        configs: m
            .get_joint_config()
            .iter()
            .map(|set| pb::NodeSet {
                ids: set.iter().copied().collect(),
            })
            .collect(),
        nodes: m
            .nodes()
            .map(|(id, node)| (*id, node.addr.clone()))
            .collect(),
    }
}

/// Any membership, the empty one of a node not yet initialized included (a snapshot's or
/// a state's). A membership *entry* must have a voter set: see [`membership_entry_from_pb`].
pub fn membership_from_pb(m: pb::Membership) -> RaftMembership {
    let configs: Vec<BTreeSet<u64>> = m
        .configs
        .into_iter()
        .map(|set| set.ids.into_iter().collect())
        .collect();
    let nodes: BTreeMap<u64, BasicNode> = m
        .nodes
        .into_iter()
        .map(|(id, addr)| (id, BasicNode { addr }))
        .collect();
    Membership::new(configs, nodes)
}

/// The membership of a membership entry: at least one voter set.
pub fn membership_entry_from_pb(m: pb::Membership) -> Result<RaftMembership> {
    if m.configs.is_empty() {
        return Err(Error::EmptyMembership);
    }
    Ok(membership_from_pb(m))
}

/// A membership entry's payload as the log stores it (`regatta.raft.v1.Membership`).
pub fn encode_membership(m: &RaftMembership) -> Vec<u8> {
    membership_to_pb(m).encode_to_vec()
}

/// Decodes [`encode_membership`]'s bytes; a membership without a voter set is an error.
pub fn decode_membership(bytes: &[u8]) -> Result<RaftMembership> {
    membership_entry_from_pb(decode("membership", bytes)?)
}

pub fn stored_membership_to_pb(
    m: &StoredMembership<u64, BasicNode>,
) -> (Option<pb::LogId>, pb::Membership) {
    (
        m.log_id().as_ref().map(log_id_to_pb),
        membership_to_pb(m.membership()),
    )
}

// ---- entries ----

pub fn entry_to_pb<C: WireConfig>(entry: &Entry<C>) -> pb::Entry {
    let payload = match &entry.payload {
        EntryPayload::Blank => pb::entry::Payload::Blank(pb::Blank {}),
        EntryPayload::Normal(event) => pb::entry::Payload::Normal(event.encode_to_vec().into()),
        EntryPayload::Membership(m) => pb::entry::Payload::Membership(membership_to_pb(m)),
    };
    pb::Entry {
        log_id: Some(log_id_to_pb(&entry.log_id)),
        payload: Some(payload),
    }
}

pub fn entry_from_pb<C: WireConfig>(entry: pb::Entry) -> Result<Entry<C>> {
    let log_id = log_id_from_pb(required(entry.log_id, "entry.log_id")?)?;
    let payload = match required(entry.payload, "entry.payload")? {
        pb::entry::Payload::Blank(_) => EntryPayload::Blank,
        pb::entry::Payload::Normal(bytes) => {
            EntryPayload::Normal(C::Payload::decode(bytes).map_err(|source| Error::Event {
                index: log_id.index,
                source,
            })?)
        }
        pb::entry::Payload::Membership(m) => EntryPayload::Membership(membership_entry_from_pb(m)?),
    };
    Ok(Entry { log_id, payload })
}

// ---- snapshot metadata and the applied state ----

pub fn snapshot_meta_to_pb(meta: &SnapshotMeta<u64, BasicNode>) -> pb::SnapshotMeta {
    let (last_membership_log_id, last_membership) = stored_membership_to_pb(&meta.last_membership);
    pb::SnapshotMeta {
        last_log_id: meta.last_log_id.as_ref().map(log_id_to_pb),
        last_membership_log_id,
        last_membership: Some(last_membership),
        snapshot_id: meta.snapshot_id.clone(),
    }
}

pub fn snapshot_meta_from_pb(
    meta: Option<pb::SnapshotMeta>,
) -> Result<SnapshotMeta<u64, BasicNode>> {
    let meta = required(meta, "snapshot meta")?;
    let membership = required(meta.last_membership, "snapshot meta.last_membership")?;
    Ok(SnapshotMeta {
        last_log_id: opt_log_id_from_pb(meta.last_log_id)?,
        last_membership: StoredMembership::new(
            opt_log_id_from_pb(meta.last_membership_log_id)?,
            membership_from_pb(membership),
        ),
        snapshot_id: meta.snapshot_id,
    })
}

/// A snapshot's metadata as a Raft snapshot file stores it (`regatta.raft.v1.SnapshotMeta`).
pub fn encode_snapshot_meta(meta: &SnapshotMeta<u64, BasicNode>) -> Vec<u8> {
    snapshot_meta_to_pb(meta).encode_to_vec()
}

pub fn decode_snapshot_meta(bytes: &[u8]) -> Result<SnapshotMeta<u64, BasicNode>> {
    snapshot_meta_from_pb(Some(decode("snapshot meta", bytes)?))
}

/// What a state machine has applied: openraft's `applied_state()`.
pub type Applied = (Option<LogId<u64>>, StoredMembership<u64, BasicNode>);

/// The applied state as a snapshot stores it (`regatta.raft.v1.AppliedState`).
pub fn encode_applied(
    last_applied: Option<&LogId<u64>>,
    membership: &StoredMembership<u64, BasicNode>,
) -> Vec<u8> {
    let (membership_log_id, membership) = stored_membership_to_pb(membership);
    pb::AppliedState {
        last_applied: last_applied.map(log_id_to_pb),
        membership_log_id,
        membership: Some(membership),
    }
    .encode_to_vec()
}

pub fn decode_applied(bytes: &[u8]) -> Result<Applied> {
    let pb: pb::AppliedState = decode("applied state", bytes)?;
    let membership = required(pb.membership, "applied state.membership")?;
    Ok((
        opt_log_id_from_pb(pb.last_applied)?,
        StoredMembership::new(
            opt_log_id_from_pb(pb.membership_log_id)?,
            membership_from_pb(membership),
        ),
    ))
}

// ---- Raft RPCs ----

pub fn append_request_to_pb<C: WireConfig>(
    req: &AppendEntriesRequest<C>,
) -> pb::AppendEntriesRequest {
    pb::AppendEntriesRequest {
        vote: Some(vote_to_pb(&req.vote)),
        prev_log_id: req.prev_log_id.as_ref().map(log_id_to_pb),
        entries: req.entries.iter().map(entry_to_pb).collect(),
        leader_commit: req.leader_commit.as_ref().map(log_id_to_pb),
    }
}

pub fn append_request_from_pb<C: WireConfig>(
    req: pb::AppendEntriesRequest,
) -> Result<AppendEntriesRequest<C>> {
    Ok(AppendEntriesRequest {
        vote: vote_from_pb(req.vote)?,
        prev_log_id: opt_log_id_from_pb(req.prev_log_id)?,
        entries: req
            .entries
            .into_iter()
            .map(entry_from_pb)
            .collect::<Result<_>>()?,
        leader_commit: opt_log_id_from_pb(req.leader_commit)?,
    })
}

pub fn append_response_to_pb(resp: &AppendEntriesResponse<u64>) -> pb::AppendEntriesResponse {
    use pb::append_entries_response::Result as R;
    let result = match resp {
        AppendEntriesResponse::Success => R::Success(pb::Blank {}),
        AppendEntriesResponse::PartialSuccess(matching) => R::PartialSuccess(pb::PartialSuccess {
            matching: matching.as_ref().map(log_id_to_pb),
        }),
        AppendEntriesResponse::Conflict => R::Conflict(pb::Blank {}),
        AppendEntriesResponse::HigherVote(vote) => R::HigherVote(vote_to_pb(vote)),
    };
    pb::AppendEntriesResponse {
        result: Some(result),
    }
}

pub fn append_response_from_pb(
    resp: pb::AppendEntriesResponse,
) -> Result<AppendEntriesResponse<u64>> {
    use pb::append_entries_response::Result as R;
    Ok(
        match required(resp.result, "append_entries_response.result")? {
            R::Success(_) => AppendEntriesResponse::Success,
            R::PartialSuccess(p) => {
                AppendEntriesResponse::PartialSuccess(opt_log_id_from_pb(p.matching)?)
            }
            R::Conflict(_) => AppendEntriesResponse::Conflict,
            R::HigherVote(vote) => AppendEntriesResponse::HigherVote(vote_from_pb(Some(vote))?),
        },
    )
}

pub fn vote_request_to_pb(req: &VoteRequest<u64>) -> pb::VoteRequest {
    pb::VoteRequest {
        vote: Some(vote_to_pb(&req.vote)),
        last_log_id: req.last_log_id.as_ref().map(log_id_to_pb),
    }
}

pub fn vote_request_from_pb(req: pb::VoteRequest) -> Result<VoteRequest<u64>> {
    Ok(VoteRequest {
        vote: vote_from_pb(req.vote)?,
        last_log_id: opt_log_id_from_pb(req.last_log_id)?,
    })
}

pub fn vote_response_to_pb(resp: &VoteResponse<u64>) -> pb::VoteResponse {
    pb::VoteResponse {
        vote: Some(vote_to_pb(&resp.vote)),
        vote_granted: resp.vote_granted,
        last_log_id: resp.last_log_id.as_ref().map(log_id_to_pb),
    }
}

pub fn vote_response_from_pb(resp: pb::VoteResponse) -> Result<VoteResponse<u64>> {
    Ok(VoteResponse {
        vote: vote_from_pb(resp.vote)?,
        vote_granted: resp.vote_granted,
        last_log_id: opt_log_id_from_pb(resp.last_log_id)?,
    })
}

pub fn install_request_to_pb<C: WireConfig>(
    req: &InstallSnapshotRequest<C>,
) -> pb::InstallSnapshotRequest {
    pb::InstallSnapshotRequest {
        vote: Some(vote_to_pb(&req.vote)),
        meta: Some(snapshot_meta_to_pb(&req.meta)),
        offset: req.offset,
        data: req.data.clone().into(),
        done: req.done,
    }
}

pub fn install_request_from_pb<C: WireConfig>(
    req: pb::InstallSnapshotRequest,
) -> Result<InstallSnapshotRequest<C>> {
    Ok(InstallSnapshotRequest {
        vote: vote_from_pb(req.vote)?,
        meta: snapshot_meta_from_pb(req.meta)?,
        offset: req.offset,
        data: req.data.to_vec(),
        done: req.done,
    })
}

pub fn install_response_to_pb(resp: &InstallSnapshotResponse<u64>) -> pb::InstallSnapshotResponse {
    pb::InstallSnapshotResponse {
        vote: Some(vote_to_pb(&resp.vote)),
    }
}

pub fn install_response_from_pb(
    resp: pb::InstallSnapshotResponse,
) -> Result<InstallSnapshotResponse<u64>> {
    Ok(InstallSnapshotResponse {
        vote: vote_from_pb(resp.vote)?,
    })
}
