//! openraft entries ⇄ log records, and the small encodings of the Raft state files.
//!
//! A membership entry's payload is a `regatta.raft.v1.Membership`, encoded and decoded by the
//! workspace's one openraft codec ([`regatta_proto::raft`]): the joint configuration (one
//! voter set per config) and every node with its address. The bytes are those this log has
//! always stored (a golden test in regatta-proto keeps them so).

use std::path::Path;

use bytes::Bytes;
use openraft::{BasicNode, CommittedLeaderId, Entry, EntryPayload, LogId, RaftTypeConfig, Vote};
use prost::Message;
use regatta_proto::raft as raft_codec;

use crate::error::{Error, Result};
use crate::position::{EntryId, LogIndex, NodeId, Term};
use crate::record::{Record, RecordKind};
use crate::state_file;

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

/// An openraft entry → a log record.
pub fn to_record<C>(entry: &Entry<C>) -> Record
where
    C: RaftTypeConfig<NodeId = u64, Node = BasicNode>,
    C::D: Message,
{
    let (kind, payload) = match &entry.payload {
        EntryPayload::Blank => (RecordKind::Blank, Bytes::new()),
        EntryPayload::Normal(d) => (RecordKind::Normal, Bytes::from(d.encode_to_vec())),
        EntryPayload::Membership(m) => (
            RecordKind::Membership,
            Bytes::from(raft_codec::encode_membership(m)),
        ),
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
        RecordKind::Membership => EntryPayload::Membership(
            raft_codec::decode_membership(&record.payload).map_err(|e| Error::InvalidPayload {
                index,
                reason: e.to_string(),
            })?,
        ),
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

    openraft::declare_raft_types!(
        TestConfig: D = regatta_proto::event::Event, R = (), NodeId = u64, Node = BasicNode,
        Entry = Entry<TestConfig>, SnapshotData = std::io::Cursor<Vec<u8>>,
    );

    #[test]
    fn membership_record_round_trip() {
        let nodes: std::collections::BTreeMap<u64, BasicNode> = [
            (1, BasicNode { addr: "a:1".into() }),
            (4, BasicNode { addr: "d:4".into() }),
        ]
        .into();
        let m = openraft::Membership::new(vec![[1, 2].into(), [2, 3].into()], nodes);
        let entry = Entry::<TestConfig> {
            log_id: log_id(EntryId::new(LogIndex(7), Term(2), NodeId(1))),
            payload: EntryPayload::Membership(m),
        };
        let record = to_record(&entry);
        assert_eq!(record.kind, RecordKind::Membership);
        let back: Entry<TestConfig> = from_record(&record).unwrap();
        assert_eq!(format!("{back:?}"), format!("{entry:?}"));
        let bad = Record {
            payload: Bytes::from_static(&[0xff, 0xff]),
            ..record
        };
        assert!(matches!(
            from_record::<TestConfig>(&bad),
            Err(Error::InvalidPayload {
                index: LogIndex(7),
                ..
            })
        ));
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
