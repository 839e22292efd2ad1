//! openraft entries ⇄ log records, and the small encodings of the Raft state files.
//!
//! A membership entry's payload is a [`MembershipPb`]: the joint configuration (one voter set
//! per config) and every node with its address. Field numbers are part of the log format:
//! never reuse one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use bytes::Bytes;
use openraft::{
    BasicNode, CommittedLeaderId, Entry, EntryPayload, LogId, Membership, RaftTypeConfig, Vote,
};
use prost::Message;

use crate::error::{Error, Result};
use crate::position::{EntryId, LogIndex, NodeId, Term};
use crate::record::{Record, RecordKind};
use crate::state_file;

/// A membership configuration as stored in a membership record.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MembershipPb {
    /// The joint configuration: one voter set per config (two while changing membership).
    #[prost(message, repeated, tag = "1")]
    pub configs: Vec<VoterSetPb>,
    /// Every node (voters and learners) with its address.
    #[prost(message, repeated, tag = "2")]
    pub nodes: Vec<NodePb>,
}

/// One voter set of a joint configuration.
#[derive(Clone, PartialEq, prost::Message)]
pub struct VoterSetPb {
    #[prost(uint64, repeated, tag = "1")]
    pub voters: Vec<u64>,
}

/// A node and its address.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NodePb {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(string, tag = "2")]
    pub addr: String,
}

/// openraft's log id → the log's entry id.
pub fn entry_id(log_id: &LogId<u64>) -> EntryId {
    EntryId::new(
        LogIndex(log_id.index),
        Term(log_id.leader_id.term),
        NodeId(log_id.leader_id.node_id),
    )
}

/// The log's entry id → openraft's log id.
pub fn log_id(id: EntryId) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(id.term.0, id.leader.0), id.index.0)
}

pub fn encode_membership(m: &Membership<u64, BasicNode>) -> Vec<u8> {
    MembershipPb {
        configs: m
            .get_joint_config()
            .iter()
            .map(|set| VoterSetPb {
                voters: set.iter().copied().collect(),
            })
            .collect(),
        nodes: m
            .nodes()
            .map(|(id, n)| NodePb {
                id: *id,
                addr: n.addr.clone(),
            })
            .collect(),
    }
    .encode_to_vec()
}

pub fn decode_membership(index: LogIndex, payload: &[u8]) -> Result<Membership<u64, BasicNode>> {
    let pb = MembershipPb::decode(payload).map_err(|e| Error::InvalidPayload {
        index,
        reason: format!("membership: {e}"),
    })?;
    if pb.configs.is_empty() {
        return Err(Error::InvalidPayload {
            index,
            reason: "membership without a config".into(),
        });
    }
    let configs: Vec<BTreeSet<u64>> = pb
        .configs
        .into_iter()
        .map(|c| c.voters.into_iter().collect())
        .collect();
    let nodes: BTreeMap<u64, BasicNode> = pb
        .nodes
        .into_iter()
        .map(|n| (n.id, BasicNode { addr: n.addr }))
        .collect();
    Ok(Membership::new(configs, nodes))
}

/// An openraft entry → a log record.
pub fn to_record<C>(entry: &Entry<C>) -> Record
where
    C: RaftTypeConfig<NodeId = u64, Node = BasicNode>,
    C::D: Message,
{
    let (kind, payload) = match &entry.payload {
        EntryPayload::Blank => (RecordKind::Blank, Bytes::new()),
        EntryPayload::Normal(d) => (RecordKind::Normal, Bytes::from(d.encode_to_vec())),
        EntryPayload::Membership(m) => (RecordKind::Membership, Bytes::from(encode_membership(m))),
    };
    Record {
        id: entry_id(&entry.log_id),
        kind,
        payload,
    }
}

/// A log record → an openraft entry. A payload that does not decode is an error, never skipped.
pub fn from_record<C>(record: &Record) -> Result<Entry<C>>
where
    C: RaftTypeConfig<NodeId = u64, Node = BasicNode>,
    C::D: Message + Default,
{
    let index = record.id.index;
    let payload = match record.kind {
        RecordKind::Blank => EntryPayload::Blank,
        RecordKind::Normal => {
            EntryPayload::Normal(C::D::decode(record.payload.as_ref()).map_err(|e| {
                Error::InvalidPayload {
                    index,
                    reason: e.to_string(),
                }
            })?)
        }
        RecordKind::Membership => {
            EntryPayload::Membership(decode_membership(index, &record.payload)?)
        }
    };
    Ok(Entry {
        log_id: log_id(record.id),
        payload,
    })
}

/// Body of the vote state file: term, node id, committed flag.
pub fn encode_vote(vote: &Vote<u64>) -> Vec<u8> {
    let mut b = Vec::with_capacity(17);
    b.extend_from_slice(&vote.leader_id.term.to_le_bytes());
    b.extend_from_slice(&vote.leader_id.node_id.to_le_bytes());
    b.push(u8::from(vote.committed));
    b
}

pub fn decode_vote(path: &Path, body: &[u8]) -> Result<Vote<u64>> {
    let term = state_file::body_u64(path, body, 0)?;
    let node_id = state_file::body_u64(path, body, 8)?;
    let committed = match body.get(16) {
        Some(0) => false,
        Some(1) => true,
        _ => {
            return Err(Error::corrupted(
                path,
                crate::ByteOffset(16),
                "bad committed flag in vote",
            ));
        }
    };
    let mut vote = Vote::new(term, node_id);
    vote.committed = committed;
    Ok(vote)
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "test code: a panic is the failure report"
    )]

    use super::*;

    #[test]
    fn membership_round_trip() {
        let nodes: BTreeMap<u64, BasicNode> = [
            (1, BasicNode { addr: "a:1".into() }),
            (4, BasicNode { addr: "d:4".into() }),
        ]
        .into();
        let m = Membership::new(vec![[1, 2].into(), [2, 3].into()], nodes);
        let back = decode_membership(LogIndex(7), &encode_membership(&m)).unwrap();
        assert_eq!(back, m);
        assert!(decode_membership(LogIndex(7), &[0xff, 0xff]).is_err());
    }

    #[test]
    fn vote_round_trip() {
        let mut v = Vote::new(5, 3);
        v.committed = true;
        assert_eq!(decode_vote(Path::new("v"), &encode_vote(&v)).unwrap(), v);
        let mut bad = encode_vote(&v);
        bad[16] = 7;
        assert!(decode_vote(Path::new("v"), &bad).is_err());
    }
}
