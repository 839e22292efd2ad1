//! A core node's local Raft snapshot file (`<index>.rsnap`, `regatta_core::durable`): the
//! frame, the Raft snapshot meta inside it and, for a file that passes, the materializer
//! snapshot it carries. What decodes encodes to a file that decodes to the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use regatta_core::durable;

fuzz_target!(|data: &[u8]| {
    // The file as read from disk (its checksum keeps mutations out of the fields)...
    check(data);
    // ...and the same bytes with a correct checksum, so the fields behind it are reached.
    let mut fixed = data.to_vec();
    fixed.extend_from_slice(&crc32c::crc32c(data).to_le_bytes());
    check(&fixed);
});

fn check(bytes: &[u8]) {
    if let Ok((meta, data)) = durable::decode(bytes) {
        let again = durable::decode(&durable::encode(&meta, &data)).expect("re-encoded file");
        assert_eq!(again, (meta, data.clone()));
        let _ = regatta_materializer::snapshot::decode(&data);
    }
}
