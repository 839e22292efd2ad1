//! The tail protocol as an edge receives it (`regatta.tail.v1`, `regatta_replication`): the
//! input is a sequence of `TailMessage`s and `SnapshotChunk`s in chunks
//! (`regatta_fuzz::chunks`: tag even a message, odd a chunk). Entries go through the
//! tailer's own checks and conversion and are applied to a materializer, as an edge does;
//! snapshot chunks are checked against their announced length and the result decoded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use regatta_materializer::{Materializer, State};
use regatta_proto::regatta::tail::v1::{SnapshotChunk, TailMessage, tail_message};
use regatta_replication::tailer::{
    apply_records, check_gap_free, check_snapshot_length, to_records,
};

fuzz_target!(|data: &[u8]| {
    let materializer = Materializer::new(State::new());
    let mut snapshot = Vec::new();
    let mut announced = 0u64;
    let mut snapshot_ok = true;
    for (tag, bytes) in regatta_fuzz::chunks(data) {
        if tag % 2 == 0 {
            let Ok(message) = TailMessage::decode(bytes) else {
                continue;
            };
            let Some(tail_message::Message::Entries(batch)) = message.message else {
                continue;
            };
            let applied = materializer.applied().0;
            if batch.entries.is_empty() || check_gap_free(applied, &batch.entries).is_err() {
                continue;
            }
            let Ok(records) = to_records(batch.entries) else {
                continue;
            };
            // A failure here stops the edge (an error, never a panic); a fresh one goes on.
            if apply_records(&materializer, &records).is_err() {
                return;
            }
        } else if snapshot_ok {
            let Ok(chunk) = SnapshotChunk::decode(bytes) else {
                continue;
            };
            if announced == 0 {
                announced = chunk.total_bytes;
            }
            snapshot.extend_from_slice(&chunk.data);
            snapshot_ok = check_snapshot_length(snapshot.len() as u64, announced, false).is_ok();
        }
    }
    if snapshot_ok
        && !snapshot.is_empty()
        && check_snapshot_length(snapshot.len() as u64, announced, true).is_ok()
    {
        let _ = regatta_materializer::snapshot::decode(&snapshot);
    }
});
