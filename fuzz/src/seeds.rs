//! Small valid inputs for every target, made with the project's own encoders: the seed
//! corpus in `corpus/<target>/` is what `examples/gen_seeds.rs` writes from these.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

use bytes::Bytes;
use openraft::{
    BasicNode, CommittedLeaderId, Entry, EntryPayload, LogId, Membership, SnapshotMeta,
    StoredMembership, Vote,
    raft::{
        AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest,
        InstallSnapshotResponse, VoteRequest, VoteResponse,
    },
};
use prost::Message;
use regatta_log::position::{EntryId, LogIndex, NodeId, SegmentId, Term};
use regatta_log::record::{self, Record, RecordKind};
use regatta_log::state_file::{self, StateFile};
use regatta_log::{archive, segment};
use regatta_materializer::raft::TypeConfig;
use regatta_materializer::request::Put;
use regatta_materializer::{Command, Entry as Applied, Materializer, Revision, State, backup};
use regatta_proto::event::Event;
use regatta_proto::raft as codec;
use regatta_proto::regatta::tail::v1 as tail;

fn log_id(term: u64, node: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, node), index)
}

fn membership() -> Membership<u64, BasicNode> {
    let nodes: BTreeMap<u64, BasicNode> = [(1, "http://a:5012"), (2, "http://b:5012")]
        .into_iter()
        .map(|(id, addr)| (id, BasicNode { addr: addr.into() }))
        .collect();
    Membership::new(vec![BTreeSet::from([1, 2])], nodes)
}

/// A few log events: create a table, put keys, delete one.
pub fn events() -> Vec<Event> {
    let put_ttl = |k: &str, v: &str, ttl_millis: i64| {
        Command::Put(
            Put::new(
                b"t",
                &Bytes::from(k.to_owned()),
                &Bytes::from(v.to_owned()),
                false,
                ttl_millis,
            )
            .expect("valid put"),
        )
    };
    let put = |k: &str, v: &str| put_ttl(k, v, 0);
    let mut commands = vec![
        Command::CreateTable {
            name: "t".into(),
            config: None,
        },
        put("a", "1"),
        put("b", "22"),
        Command::Batch(vec![put("c", "333"), put("d", "")]),
        // A key with a time to live (a snapshot with an expiry: format version 3) and the
        // expiry of another.
        put_ttl("e", "4444", 60_000),
        Command::Expire {
            table: "t".into(),
            keys: vec![regatta_materializer::table::Expired {
                key: Bytes::from_static(b"a"),
                mod_revision: 1,
            }],
        },
    ];
    commands.push(Command::DeleteTable { name: "u".into() });
    commands.iter().map(|c| c.to_event(1_700_000_000)).collect()
}

/// A state at revision `events().len()` with table `t`.
pub fn state() -> State {
    let m = Materializer::new(State::new());
    let events = events();
    let entries = events.iter().enumerate().map(|(i, e)| Applied {
        index: Revision(i as u64 + 1),
        event: Some(e),
    });
    // The last event deletes a table that does not exist: a rejection, not a failure.
    m.apply_batch(entries).expect("seed events apply");
    State::clone(&m.view())
}

fn records(first: u64) -> Vec<Record> {
    let mut out = vec![Record::new(
        EntryId::new(LogIndex(first), Term(1), NodeId(1)),
        RecordKind::Membership,
        codec::encode_membership(&membership()),
    )];
    for (i, e) in events().iter().enumerate() {
        out.push(Record::new(
            EntryId::new(LogIndex(first + 1 + i as u64), Term(2), NodeId(1)),
            RecordKind::Normal,
            e.encode_to_vec(),
        ));
    }
    out
}

/// A whole segment file starting at `first`.
pub fn segment_file(first: u64) -> Vec<u8> {
    let mut bytes = segment::encode_header(SegmentId(LogIndex(first))).to_vec();
    for r in records(first) {
        record::encode_into(&r, &mut bytes);
    }
    bytes
}

/// A table's backup stream.
pub fn backup_stream() -> Vec<u8> {
    let state = state();
    let table = state.table("t").expect("seed table");
    backup::write_backup("t", table, Vec::new()).expect("backup in memory")
}

/// The snapshot stream (uncompressed) of [`state`].
pub fn snapshot_stream() -> Vec<u8> {
    zstd::decode_all(snapshot_object().as_slice()).expect("seed snapshot decompresses")
}

/// The snapshot object (compressed) of [`state`].
pub fn snapshot_object() -> Vec<u8> {
    regatta_materializer::snapshot::encode(&state()).expect("seed snapshot")
}

fn chunked(parts: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let parts: Vec<(u8, &[u8])> = parts.iter().map(|(t, b)| (*t, b.as_slice())).collect();
    crate::encode_chunks(&parts)
}

/// Seeds per target: `(target, seed name, bytes)`.
pub fn all() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let mut out = Vec::new();
    let seg = segment_file(1);

    let mut frame = Vec::new();
    for r in records(7).into_iter().take(3) {
        let mut one = Vec::new();
        record::encode_into(&r, &mut one);
        frame.push(one);
    }
    out.push(("log_frame", "membership", frame[0].clone()));
    out.push(("log_frame", "normal", frame[1].clone()));

    out.push(("log_segment", "segment", seg.clone()));
    let mut torn = seg.clone();
    torn.truncate(seg.len() - 5);
    out.push(("log_segment", "torn-tail", torn));

    let p = Path::new("00000000000000000001.seg");
    let packed = archive::pack(p, SegmentId(LogIndex(1)), &seg, 1).expect("seed archive");
    out.push(("log_archive", "archive", packed));

    let entry_id = state_file::encode_entry_id(EntryId::new(LogIndex(3), Term(2), NodeId(1)));
    let vote = regatta_log::raft::codec::encode_vote(&Vote::new(2, 1));
    let purged = state_file::encode(StateFile::PURGED, &entry_id);
    let committed = state_file::encode(StateFile::COMMITTED, &entry_id);
    let truncating = state_file::encode(
        StateFile::TRUNCATING,
        &state_file::encode_index(LogIndex(4)),
    );
    let vote_file = state_file::encode(StateFile::VOTE, &vote);
    out.push(("log_state_file", "purged", purged.clone()));
    out.push(("log_state_file", "truncating", truncating.clone()));
    out.push(("log_state_file", "vote", vote_file.clone()));
    out.push(("log_state_file", "vote-body", vote));

    let seg2 = segment_file(1 + records(1).len() as u64);
    out.push(("log_recovery", "one-segment", chunked(&[(0, seg.clone())])));
    out.push((
        "log_recovery",
        "one-segment-checksums-fixed",
        chunked(&[(0x80, seg.clone())]),
    ));
    let mut torn = seg2.clone();
    torn.truncate(seg2.len() - 3);
    out.push((
        "log_recovery",
        "two-segments-torn-vote-committed",
        chunked(&[(0, seg.clone()), (0, torn), (4, vote_file), (5, committed)]),
    ));
    out.push((
        "log_recovery",
        "purged-truncating",
        chunked(&[(0, seg.clone()), (0, seg2), (2, purged), (3, truncating)]),
    ));

    let meta = SnapshotMeta {
        last_log_id: Some(log_id(2, 1, 6)),
        last_membership: StoredMembership::new(Some(log_id(1, 1, 1)), membership()),
        snapshot_id: "6-1".into(),
    };
    out.push((
        "rsnap",
        "snapshot",
        regatta_core::durable::encode(&meta, &snapshot_object()),
    ));

    out.push(("snapshot", "snapshot", snapshot_object()));
    out.push(("snapshot_stream", "snapshot", snapshot_stream()));
    out.push((
        "snapshot_stream",
        "empty",
        zstd::decode_all(
            regatta_materializer::snapshot::encode(&State::new())
                .expect("empty snapshot")
                .as_slice(),
        )
        .expect("decompresses"),
    ));
    out.push(("snapshot_object", "snapshot", snapshot_stream()));

    let stream = backup_stream();
    let mut raw = vec![0];
    raw.extend_from_slice(&stream);
    out.push(("backup_stream", "framed", raw));
    let mut inner = vec![1];
    inner.extend(snap::read::FrameDecoder::new(stream.as_slice()).bytes_all());
    out.push(("backup_stream", "records", inner));

    let tmp = tempfile::tempdir().expect("tempdir");
    let manifest =
        backup::write_backup_dir(tmp.path(), &state(), &["t"], "2026-01-01T00:00:00Z", || {
            "2026-01-01T00:00:01Z".into()
        })
        .expect("seed backup directory");
    out.push((
        "backup_manifest",
        "manifest",
        manifest.to_json().expect("manifest json"),
    ));
    out.push((
        "backup_manifest",
        "table-name",
        "a/b ümlaut".as_bytes().to_vec(),
    ));

    let entries = events()
        .iter()
        .enumerate()
        .map(|(i, e)| tail::TailEntry {
            index: i as u64 + 1,
            term: 2,
            leader_id: 1,
            kind: RecordKind::Normal as u32,
            payload: e.encode_to_vec().into(),
        })
        .collect();
    let message = tail::TailMessage {
        message: Some(tail::tail_message::Message::Entries(tail::Entries {
            entries,
            commit_index: 5,
        })),
    };
    let beat = tail::TailMessage {
        message: Some(tail::tail_message::Message::Heartbeat(tail::Heartbeat {
            commit_index: 5,
            now_micros: 1,
        })),
    };
    let object = snapshot_object();
    let (a, b) = object.split_at(object.len() / 2);
    let chunk = |data: &[u8]| tail::SnapshotChunk {
        data: Bytes::copy_from_slice(data),
        revision: 5,
        total_bytes: object.len() as u64,
    };
    out.push((
        "tail_message",
        "entries-heartbeat",
        chunked(&[(0, message.encode_to_vec()), (0, beat.encode_to_vec())]),
    ));
    out.push((
        "tail_message",
        "snapshot-chunks",
        chunked(&[(1, chunk(a).encode_to_vec()), (1, chunk(b).encode_to_vec())]),
    ));

    let entry = |index: u64, payload| Entry::<TypeConfig> {
        log_id: log_id(2, 1, index),
        payload,
    };
    let append = AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(2, 1),
        prev_log_id: Some(log_id(1, 1, 1)),
        entries: vec![
            entry(2, EntryPayload::Blank),
            entry(3, EntryPayload::Normal(events()[1].clone())),
            entry(4, EntryPayload::Membership(membership())),
        ],
        leader_commit: Some(log_id(1, 1, 1)),
    };
    let rpc = |pick: u8, bytes: Vec<u8>| {
        let mut v = vec![pick];
        v.extend(bytes);
        v
    };
    out.push((
        "raft_codec",
        "append",
        rpc(0, codec::append_request_to_pb(&append).encode_to_vec()),
    ));
    out.push((
        "raft_codec",
        "append-response",
        rpc(
            1,
            codec::append_response_to_pb(&AppendEntriesResponse::PartialSuccess(Some(log_id(
                1, 1, 1,
            ))))
            .encode_to_vec(),
        ),
    ));
    let vote_req = VoteRequest::new(Vote::new(3, 2), Some(log_id(2, 1, 4)));
    out.push((
        "raft_codec",
        "vote",
        rpc(2, codec::vote_request_to_pb(&vote_req).encode_to_vec()),
    ));
    let vote_resp = VoteResponse::new(Vote::new(3, 2), Some(log_id(2, 1, 4)), true);
    out.push((
        "raft_codec",
        "vote-response",
        rpc(3, codec::vote_response_to_pb(&vote_resp).encode_to_vec()),
    ));
    let install = InstallSnapshotRequest::<TypeConfig> {
        vote: Vote::new_committed(2, 1),
        meta: meta.clone(),
        offset: 0,
        data: b"snapshot bytes".to_vec(),
        done: true,
    };
    out.push((
        "raft_codec",
        "install",
        rpc(4, codec::install_request_to_pb(&install).encode_to_vec()),
    ));
    out.push((
        "raft_codec",
        "install-response",
        rpc(
            5,
            codec::install_response_to_pb(&InstallSnapshotResponse {
                vote: Vote::new(2, 1),
            })
            .encode_to_vec(),
        ),
    ));
    out.push((
        "raft_codec",
        "entry",
        rpc(6, codec::entry_to_pb(&append.entries[2]).encode_to_vec()),
    ));
    out.push((
        "raft_codec",
        "membership",
        rpc(7, codec::encode_membership(&membership())),
    ));
    out.push((
        "raft_codec",
        "snapshot-meta",
        rpc(8, codec::encode_snapshot_meta(&meta)),
    ));
    let applied = regatta_materializer::raft_meta::RaftMeta {
        last_applied: Some(log_id(2, 1, 6)),
        membership: StoredMembership::new(Some(log_id(1, 1, 1)), membership()),
    };
    out.push(("raft_codec", "applied", rpc(9, applied.encode())));
    out.push(("raft_codec", "applied-v1", rpc(10, applied_v1())));

    out.push((
        "config_file",
        "nested",
        b"\0raft:\n  node-id: 3\n  initial-members: [\"1=http://a:5012\", \"2=http://b:5012\"]\napi:\n  address: http://0.0.0.0:8443\n  client-cert-auth: true\n".to_vec(),
    ));
    out.push((
        "config_file",
        "dotted",
        b"\0log.segment-size: 65536\ntables.mode: strict\nraft.initial-members: 1=a,2=b\n".to_vec(),
    ));
    out.push((
        "config_file",
        "json",
        b"\x01{\"raft\": {\"node-id\": 3, \"initial-members\": [\"1=a\", \"2=b\"]}, \"api.client-cert-auth\": true}\n".to_vec(),
    ));
    out.push((
        "config_file",
        "toml",
        b"\x02[raft]\nnode-id = 3\ninitial-members = [\"1=a\", \"2=b\"]\n[log]\nsegment-size = 65536\n".to_vec(),
    ));
    out
}

/// The format-1 layout of the applied state (`RaftMeta::decode_v1`).
fn applied_v1() -> Vec<u8> {
    let mut b = Vec::new();
    let log_id = |b: &mut Vec<u8>, t: u64, n: u64, i: u64| {
        b.push(1);
        for v in [t, n, i] {
            b.extend_from_slice(&v.to_le_bytes());
        }
    };
    log_id(&mut b, 2, 1, 6);
    log_id(&mut b, 1, 1, 1);
    for v in [1u64, 2, 1, 2] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(&1u64.to_le_bytes());
    b.extend_from_slice(&1u64.to_le_bytes());
    let addr = b"http://a:5012";
    b.extend_from_slice(&(addr.len() as u64).to_le_bytes());
    b.extend_from_slice(addr);
    b
}

/// Reads a whole `Read` into bytes (seed helper).
trait BytesAll {
    fn bytes_all(self) -> Vec<u8>;
}

impl<R: std::io::Read> BytesAll for R {
    fn bytes_all(mut self) -> Vec<u8> {
        let mut v = Vec::new();
        self.read_to_end(&mut v).expect("read seed");
        v
    }
}

/// Writes every seed into `corpus/<target>/seed-<name>` under `root`.
pub fn write_all(root: &Path) -> std::io::Result<()> {
    for (target, name, bytes) in all() {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        let mut f = std::fs::File::create(dir.join(format!("seed-{name}")))?;
        f.write_all(&bytes)?;
    }
    Ok(())
}
