//! The openraft codec: round trips, golden bytes of formats already on disk, and truncated
//! or bit-flipped input (an error or another valid value, never a panic).

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

use std::collections::{BTreeMap, BTreeSet};

use openraft::{
    BasicNode, CommittedLeaderId, Entry, EntryPayload, LogId, Membership, SnapshotMeta,
    StoredMembership, Vote,
    raft::{AppendEntriesRequest, AppendEntriesResponse, VoteResponse},
};
use proptest::prelude::*;
use prost::Message;
use regatta_proto::Error;
use regatta_proto::raft::{self as codec, RaftMembership};
use regatta_proto::regatta::raft::v1 as pb;

openraft::declare_raft_types!(
    TestConfig: D = regatta_proto::event::Event, R = (), NodeId = u64, Node = BasicNode,
    Entry = Entry<TestConfig>, SnapshotData = std::io::Cursor<Vec<u8>>,
);

fn lid(term: u64, node: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, node), index)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A joint configuration with a learner, a voter without an address and a node 0.
fn joint() -> RaftMembership {
    let nodes: BTreeMap<u64, BasicNode> = [
        (0, BasicNode::new("")),
        (1, BasicNode::new("http://10.0.0.1:5012")),
        (2, BasicNode::new("http://10.0.0.2:5012")),
        (4, BasicNode::new("http://learner:5012")),
    ]
    .into();
    Membership::new(vec![[1, 2].into(), [2, 3].into()], nodes)
}

/// Bytes written into log segments by the hand-written `MembershipPb` encoder this codec
/// replaced (`regatta-log` before the codec moved here): they must decode, and encoding
/// must give them back, byte for byte.
const GOLDEN_MEMBERSHIP_JOINT: &str = "0a040a0201020a040a0202031200121808011214687474703a2f2f31302e302e302e313a35303132121808021214687474703a2f2f31302e302e302e323a3530313212020803121708041213687474703a2f2f6c6561726e65723a35303132";
const GOLDEN_MEMBERSHIP_SINGLE: &str =
    "0a030a0101121908011215687474703a2f2f3132372e302e302e313a35303132";

fn single() -> RaftMembership {
    Membership::new(
        vec![BTreeSet::from([1])],
        BTreeMap::from([(1, BasicNode::new("http://127.0.0.1:5012"))]),
    )
}

#[test]
fn membership_bytes_are_those_the_log_already_holds() {
    for (golden, m) in [
        (GOLDEN_MEMBERSHIP_JOINT, joint()),
        (GOLDEN_MEMBERSHIP_SINGLE, single()),
    ] {
        assert_eq!(hex(&codec::encode_membership(&m)), golden);
        assert_eq!(codec::decode_membership(&unhex(golden)).unwrap(), m);
    }
}

#[test]
fn a_membership_entry_without_a_voter_set_is_an_error() {
    let empty = codec::encode_membership(&Membership::default());
    assert!(matches!(
        codec::decode_membership(&empty),
        Err(Error::EmptyMembership)
    ));
    assert!(matches!(
        codec::decode_membership(&[0xff, 0xff]),
        Err(Error::Decode { .. })
    ));
}

#[test]
fn an_uninitialized_applied_state_round_trips() {
    let none = StoredMembership::default();
    let bytes = codec::encode_applied(None, &none);
    assert_eq!(codec::decode_applied(&bytes).unwrap(), (None, none));
}

#[test]
fn append_entries_round_trip() {
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
                payload: EntryPayload::Membership(joint()),
            },
        ],
        leader_commit: None,
    };
    let wire = codec::append_request_to_pb(&req);
    let back = codec::append_request_from_pb::<TestConfig>(
        pb::AppendEntriesRequest::decode(wire.encode_to_vec().as_slice()).unwrap(),
    )
    .unwrap();
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
        let back = codec::append_response_from_pb(codec::append_response_to_pb(&resp)).unwrap();
        assert_eq!(resp, back);
    }
    let vote = VoteResponse {
        vote: Vote::new(4, 2),
        vote_granted: true,
        last_log_id: Some(lid(3, 1, 8)),
    };
    assert_eq!(
        vote,
        codec::vote_response_from_pb(codec::vote_response_to_pb(&vote)).unwrap()
    );
}

#[test]
fn missing_fields_are_errors_not_panics() {
    assert!(matches!(
        codec::vote_from_pb(None),
        Err(Error::Missing("vote"))
    ));
    let entry = pb::Entry {
        log_id: None,
        payload: None,
    };
    assert!(codec::entry_from_pb::<TestConfig>(entry).is_err());
    let bad = pb::Entry {
        log_id: Some(codec::log_id_to_pb(&lid(1, 1, 5))),
        payload: Some(pb::entry::Payload::Normal(bytes::Bytes::from_static(&[
            0xff, 0xff,
        ]))),
    };
    assert!(matches!(
        codec::entry_from_pb::<TestConfig>(bad),
        Err(Error::Event { index: 5, .. })
    ));
    assert!(matches!(
        codec::snapshot_meta_from_pb(Some(pb::SnapshotMeta::default())),
        Err(Error::Missing(_))
    ));
    assert!(codec::decode_applied(&pb::AppliedState::default().encode_to_vec()).is_err());
}

fn arb_log_id() -> impl Strategy<Value = LogId<u64>> {
    (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(t, n, i)| lid(t, n, i))
}

fn arb_membership() -> impl Strategy<Value = RaftMembership> {
    let set = prop::collection::btree_set(0u64..16, 1..5);
    (
        prop::collection::vec(set, 1..3),
        prop::collection::btree_map(0u64..16, "[a-z0-9:/.]{0,20}", 0..6),
    )
        .prop_map(|(configs, nodes)| {
            let nodes: BTreeMap<u64, BasicNode> = nodes
                .into_iter()
                .map(|(id, addr)| (id, BasicNode { addr }))
                .collect();
            Membership::new(configs, nodes)
        })
}

fn arb_stored() -> impl Strategy<Value = StoredMembership<u64, BasicNode>> {
    (prop::option::of(arb_log_id()), arb_membership())
        .prop_map(|(id, m)| StoredMembership::new(id, m))
}

fn arb_meta() -> impl Strategy<Value = SnapshotMeta<u64, BasicNode>> {
    (
        prop::option::of(arb_log_id()),
        arb_stored(),
        "[0-9a-f-]{0,30}",
    )
        .prop_map(|(last_log_id, last_membership, snapshot_id)| SnapshotMeta {
            last_log_id,
            last_membership,
            snapshot_id,
        })
}

/// `decode` of damaged bytes: an error, or a value that encodes to valid bytes again.
fn damaged<T, E: std::fmt::Debug>(
    bytes: &[u8],
    decode: impl Fn(&[u8]) -> Result<T, E>,
    encode: impl Fn(&T) -> Vec<u8>,
) {
    if let Ok(value) = decode(bytes) {
        let again = encode(&value);
        decode(&again).unwrap();
    }
}

proptest! {
    #[test]
    fn membership_round_trips(m in arb_membership()) {
        let bytes = codec::encode_membership(&m);
        prop_assert_eq!(codec::decode_membership(&bytes).unwrap(), m);
    }

    #[test]
    fn snapshot_meta_round_trips(meta in arb_meta()) {
        let bytes = codec::encode_snapshot_meta(&meta);
        prop_assert_eq!(codec::decode_snapshot_meta(&bytes).unwrap(), meta);
    }

    #[test]
    fn applied_state_round_trips(last in prop::option::of(arb_log_id()), m in arb_stored()) {
        let bytes = codec::encode_applied(last.as_ref(), &m);
        prop_assert_eq!(codec::decode_applied(&bytes).unwrap(), (last, m));
    }

    #[test]
    fn vote_round_trips(term in any::<u64>(), node in any::<u64>(), committed in any::<bool>()) {
        let mut vote = Vote::new(term, node);
        vote.committed = committed;
        let wire = pb::Vote::decode(codec::vote_to_pb(&vote).encode_to_vec().as_slice()).unwrap();
        prop_assert_eq!(codec::vote_from_pb(Some(wire)).unwrap(), vote);
    }

    #[test]
    fn truncated_or_flipped_bytes_never_panic(
        m in arb_membership(),
        meta in arb_meta(),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let encodings = [
            codec::encode_membership(&m),
            codec::encode_snapshot_meta(&meta),
            codec::encode_applied(meta.last_log_id.as_ref(), &meta.last_membership),
        ];
        for bytes in encodings {
            let mut variants = vec![bytes[..cut.index(bytes.len() + 1)].to_vec()];
            if !bytes.is_empty() {
                let mut flipped = bytes.clone();
                flipped[flip.index(bytes.len())] ^= 1 << bit;
                variants.push(flipped);
            }
            for v in &variants {
                damaged(v, codec::decode_membership, codec::encode_membership);
                damaged(v, codec::decode_snapshot_meta, codec::encode_snapshot_meta);
                damaged(v, codec::decode_applied, |(l, m)| codec::encode_applied(l.as_ref(), m));
            }
        }
    }
}
