//! A snapshot object as stored (`regatta_materializer::snapshot`, one zstd frame around the
//! snapshot stream): decoding never panics, and a state that loads encodes to a snapshot
//! that loads to the same revision and tables.
#![no_main]

use libfuzzer_sys::fuzz_target;
use regatta_fuzz::same_state;
use regatta_materializer::snapshot;

fuzz_target!(|data: &[u8]| {
    if let Ok(state) = snapshot::decode(data) {
        let again = snapshot::encode(&state).expect("a loaded state encodes");
        let back = snapshot::decode(&again).expect("an encoded state loads");
        same_state(&state, &back);
    }
});
