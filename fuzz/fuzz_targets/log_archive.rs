//! A segment archive from object storage (`regatta_log::archive`, the header reader in
//! `regatta_log::reader`): unpacking never panics nor allocates what the header claims
//! without checking it, and an archive that unpacks packs back to an equal one.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use regatta_log::{archive, reader};

fuzz_target!(|data: &[u8]| {
    // As stored, and with the header's checksum (bytes 40..44) recomputed.
    let mut fixed = data.to_vec();
    regatta_fuzz::fixup::header(&mut fixed, 40);
    check(data);
    check(&fixed);
});

fn check(data: &[u8]) {
    let origin = Path::new("segments/fuzz.seg.zst");
    let span = reader::archive_span(origin, data);
    if let Ok(unpacked) = archive::unpack(origin, data) {
        let (id, last) = span.expect("an archive that unpacks has a readable header");
        assert_eq!((id, last), (unpacked.id, unpacked.last));
        let again = archive::pack(origin, unpacked.id, &unpacked.segment, 1)
            .expect("an unpacked segment packs again");
        let back = archive::unpack(origin, &again).expect("a packed segment unpacks");
        assert_eq!(back, unpacked);
    }
}
