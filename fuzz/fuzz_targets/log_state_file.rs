//! The log's small state files (`regatta_log::state_file`) and the bodies read from them:
//! the purged and committed pointers, the truncation marker and the Raft vote.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use regatta_log::raft::codec;
use regatta_log::state_file::{self, StateFile};

fuzz_target!(|data: &[u8]| {
    let mut fixed = data.to_vec();
    regatta_fuzz::fixup::trailing(&mut fixed);
    check(data);
    check(&fixed);
});

fn check(data: &[u8]) {
    let path = Path::new("fuzz.state");
    for file in [
        StateFile::PURGED,
        StateFile::TRUNCATING,
        StateFile::VOTE,
        StateFile::COMMITTED,
    ] {
        if let Ok(body) = state_file::decode(file, path, data) {
            assert_eq!(state_file::encode(file, &body), data);
            let _ = state_file::decode_entry_id(path, &body);
            let _ = state_file::body_u64(path, &body, 0);
            let _ = codec::decode_vote(path, &body);
        }
    }
    // Bodies on their own too: the checksum hides them from mutation otherwise.
    let _ = state_file::decode_entry_id(path, data);
    if let Ok(vote) = codec::decode_vote(path, data) {
        assert_eq!(codec::encode_vote(&vote), &data[..17]);
    }
}
