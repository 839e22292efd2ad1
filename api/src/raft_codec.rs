//! Conversions between openraft's message types and the `regatta.raft.v1` wire messages.
//!
//! Every function from the wire validates: a missing required field or an undecodable event
//! is a [`CodecError`] naming the field, never a panic. The conversions are generic over the
//! type config so that they do not depend on the state machine; the event payload travels
//! as its protobuf encoding.

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
use regatta_proto::regatta::raft::v1 as pb;

/// A Raft message from the wire that cannot be understood.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("raft message field `{0}` is missing")]
    Missing(&'static str),
    #[error("raft entry {index} carries an undecodable event: {source}")]
    Event {
        index: u64,
        #[source]
        source: prost::DecodeError,
    },
}

type Result<T, E = CodecError> = std::result::Result<T, E>;

/// The type configs these conversions serve: node ids are `u64`, nodes are addressed by a
/// Raft URL, entries are openraft's own and payloads are protobuf messages.
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

fn required<T>(value: Option<T>, field: &'static str) -> Result<T> {
    value.ok_or(CodecError::Missing(field))
}

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

fn opt_log_id_from_pb(id: Option<pb::LogId>) -> Result<Option<LogId<u64>>> {
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

pub fn membership_to_pb(m: &Membership<u64, BasicNode>) -> pb::Membership {
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

pub fn membership_from_pb(m: pb::Membership) -> Membership<u64, BasicNode> {
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
        pb::entry::Payload::Normal(bytes) => EntryPayload::Normal(
            C::Payload::decode(bytes).map_err(|source| CodecError::Event {
                index: log_id.index,
                source,
            })?,
        ),
        pb::entry::Payload::Membership(m) => EntryPayload::Membership(membership_from_pb(m)),
    };
    Ok(Entry { log_id, payload })
}

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

pub fn snapshot_meta_to_pb(meta: &SnapshotMeta<u64, BasicNode>) -> pb::SnapshotMeta {
    pb::SnapshotMeta {
        last_log_id: meta.last_log_id.as_ref().map(log_id_to_pb),
        last_membership_log_id: meta.last_membership.log_id().as_ref().map(log_id_to_pb),
        last_membership: Some(membership_to_pb(meta.last_membership.membership())),
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

pub fn install_response_from_pb(
    resp: pb::InstallSnapshotResponse,
) -> Result<InstallSnapshotResponse<u64>> {
    Ok(InstallSnapshotResponse {
        vote: vote_from_pb(resp.vote)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    openraft::declare_raft_types!(
        TestConfig: D = regatta_proto::event::Event, R = (), NodeId = u64, Node = BasicNode,
        Entry = Entry<TestConfig>, SnapshotData = std::io::Cursor<Vec<u8>>,
    );

    fn lid(term: u64, node: u64, index: u64) -> LogId<u64> {
        LogId::new(CommittedLeaderId::new(term, node), index)
    }

    #[test]
    fn append_entries_round_trip() {
        let membership = Membership::new(
            vec![BTreeSet::from([1, 2, 3])],
            BTreeMap::from([
                (1, BasicNode::new("http://a:1")),
                (2, BasicNode::new("http://b:1")),
                (3, BasicNode::new("http://c:1")),
                (4, BasicNode::new("http://d:1")),
            ]),
        );
        let event = regatta_proto::event::Event {
            version: 1,
            proposed_at_micros: 7,
            kind: None,
        };
        let req = AppendEntriesRequest::<TestConfig> {
            vote: Vote::new_committed(3, 1),
            prev_log_id: Some(lid(2, 2, 10)),
            entries: vec![
                Entry {
                    log_id: lid(3, 1, 11),
                    payload: EntryPayload::Blank,
                },
                Entry {
                    log_id: lid(3, 1, 12),
                    payload: EntryPayload::Normal(event),
                },
                Entry {
                    log_id: lid(3, 1, 13),
                    payload: EntryPayload::Membership(membership),
                },
            ],
            leader_commit: None,
        };
        let wire = append_request_to_pb(&req);
        let back = append_request_from_pb::<TestConfig>(
            pb::AppendEntriesRequest::decode(wire.encode_to_vec().as_slice()).expect("decodes"),
        )
        .expect("converts");
        assert_eq!(format!("{req:?}"), format!("{back:?}"));
    }

    #[test]
    fn responses_round_trip() {
        for resp in [
            AppendEntriesResponse::Success,
            AppendEntriesResponse::PartialSuccess(None),
            AppendEntriesResponse::PartialSuccess(Some(lid(1, 2, 3))),
            AppendEntriesResponse::Conflict,
            AppendEntriesResponse::HigherVote(Vote::new(9, 3)),
        ] {
            let back = append_response_from_pb(append_response_to_pb(&resp)).expect("converts");
            assert_eq!(resp, back);
        }
        let vote = VoteResponse {
            vote: Vote::new(4, 2),
            vote_granted: true,
            last_log_id: Some(lid(3, 1, 8)),
        };
        assert_eq!(
            vote,
            vote_response_from_pb(vote_response_to_pb(&vote)).expect("converts")
        );
    }

    #[test]
    fn missing_fields_are_errors_not_panics() {
        assert!(matches!(
            vote_from_pb(None),
            Err(CodecError::Missing("vote"))
        ));
        let entry = pb::Entry {
            log_id: None,
            payload: None,
        };
        assert!(entry_from_pb::<TestConfig>(entry).is_err());
        let bad = pb::Entry {
            log_id: Some(log_id_to_pb(&lid(1, 1, 5))),
            payload: Some(pb::entry::Payload::Normal(bytes::Bytes::from_static(&[
                0xff, 0xff,
            ]))),
        };
        assert!(matches!(
            entry_from_pb::<TestConfig>(bad),
            Err(CodecError::Event { index: 5, .. })
        ));
    }
}
