//! The one openraft ⇄ protobuf codec (`regatta_proto::raft`): every Raft RPC a core node
//! receives, the membership payload of log entries, a Raft snapshot file's metadata, the
//! applied state inside a snapshot, and the format-1 layout of that state
//! (`RaftMeta::decode_v1`). The first input byte picks the message. Whatever converts from
//! protobuf converts back to bytes that convert to the same bytes again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use regatta_materializer::raft::TypeConfig;
use regatta_materializer::raft_meta::RaftMeta;
use regatta_proto::raft as codec;
use regatta_proto::regatta::raft::v1 as pb;

/// Decodes `bytes` as `M`, converts with `from`, and checks that converting back with `to`
/// is stable: the second round gives the bytes of the first.
fn stable<M, T>(bytes: &[u8], from: impl Fn(M) -> Option<T>, to: impl Fn(&T) -> M)
where
    M: Message + Default,
{
    let Some(value) = M::decode(bytes).ok().and_then(&from) else {
        return;
    };
    let first = to(&value).encode_to_vec();
    let again = from(M::decode(first.as_slice()).expect("re-decodes"))
        .expect("what converted once converts again");
    assert_eq!(to(&again).encode_to_vec(), first, "the codec is not stable");
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    match pick % 11 {
        0 => stable(
            bytes,
            |m: pb::AppendEntriesRequest| codec::append_request_from_pb::<TypeConfig>(m).ok(),
            codec::append_request_to_pb,
        ),
        1 => stable(
            bytes,
            |m: pb::AppendEntriesResponse| codec::append_response_from_pb(m).ok(),
            codec::append_response_to_pb,
        ),
        2 => stable(
            bytes,
            |m: pb::VoteRequest| codec::vote_request_from_pb(m).ok(),
            codec::vote_request_to_pb,
        ),
        3 => stable(
            bytes,
            |m: pb::VoteResponse| codec::vote_response_from_pb(m).ok(),
            codec::vote_response_to_pb,
        ),
        4 => stable(
            bytes,
            |m: pb::InstallSnapshotRequest| codec::install_request_from_pb::<TypeConfig>(m).ok(),
            codec::install_request_to_pb,
        ),
        5 => stable(
            bytes,
            |m: pb::InstallSnapshotResponse| codec::install_response_from_pb(m).ok(),
            codec::install_response_to_pb,
        ),
        6 => stable(
            bytes,
            |m: pb::Entry| codec::entry_from_pb::<TypeConfig>(m).ok(),
            codec::entry_to_pb,
        ),
        7 => {
            if let Ok(m) = codec::decode_membership(bytes) {
                let again = codec::encode_membership(&m);
                let back = codec::decode_membership(&again).expect("membership re-decodes");
                assert_eq!(codec::encode_membership(&back), again);
            }
        }
        8 => {
            if let Ok(meta) = codec::decode_snapshot_meta(bytes) {
                let again = codec::encode_snapshot_meta(&meta);
                let back = codec::decode_snapshot_meta(&again).expect("meta re-decodes");
                assert_eq!(back, meta);
            }
        }
        9 => {
            if let Ok(meta) = RaftMeta::decode(bytes) {
                let back = RaftMeta::decode(&meta.encode()).expect("applied state re-decodes");
                assert_eq!(back.encode(), meta.encode());
            }
        }
        _ => {
            if let Ok(meta) = RaftMeta::decode_v1(bytes) {
                let back = RaftMeta::decode(&meta.encode()).expect("format 1 converts to 2");
                assert_eq!(back.encode(), meta.encode());
            }
        }
    }
});
