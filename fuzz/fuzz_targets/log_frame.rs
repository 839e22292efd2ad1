//! One log frame (`regatta_log::record`): decoding never panics, and what decodes encodes
//! back to the same bytes.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use regatta_log::record;

fuzz_target!(|data: &[u8]| {
    let mut fixed = data.to_vec();
    regatta_fuzz::fixup::frames(&mut fixed, 0);
    check(data);
    check(&fixed);
});

fn check(data: &[u8]) {
    let bytes = Bytes::copy_from_slice(data);
    match record::decode_record(&bytes) {
        Ok((rec, len)) => {
            assert!(len <= data.len());
            let mut again = Vec::new();
            record::encode_into(&rec, &mut again);
            assert_eq!(
                again,
                &data[..len],
                "a decoded frame encodes to other bytes"
            );
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}
