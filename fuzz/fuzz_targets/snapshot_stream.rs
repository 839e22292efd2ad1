//! The snapshot stream inside the zstd frame (`regatta_materializer::snapshot`): the input
//! is the uncompressed stream, compressed here so that mutations reach the fields (magic,
//! version, Raft metadata of format 1 and 2, tables, records, end marker, checksum).
#![no_main]

use libfuzzer_sys::fuzz_target;
use regatta_fuzz::same_state;
use regatta_materializer::snapshot;

fuzz_target!(|data: &[u8]| {
    // The stream as written, and the same with its checksum recomputed (the last 4 bytes),
    // so that mutated fields are judged by the parser and not only by the checksum.
    let mut fixed = data.to_vec();
    if fixed.len() >= 4 {
        let at = fixed.len() - 4;
        let crc = crc32c::crc32c(&fixed[..at]);
        fixed[at..].copy_from_slice(&crc.to_le_bytes());
    }
    for stream in [data, &fixed[..]] {
        let object = zstd::bulk::compress(stream, 1).expect("zstd compresses");
        if let Ok(state) = snapshot::decode(&object) {
            let again = snapshot::encode(&state).expect("a loaded state encodes");
            same_state(
                &state,
                &snapshot::decode(&again).expect("an encoded state loads"),
            );
        }
    }
});
