//! One segment file as recovery reads it (`regatta_log::segment`, `regatta_log::torn`):
//! header check, frame scan, and the torn-tail judgement of a damaged last segment.
//! Every offset the scan reports must decode to its frame.
#![no_main]

use std::path::Path;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use regatta_log::position::{LogIndex, SegmentId, Term};
use regatta_log::{segment, torn};

fuzz_target!(|data: &[u8]| {
    let mut fixed = data.to_vec();
    regatta_fuzz::fixup::segment(&mut fixed);
    check(data);
    check(&fixed);
});

fn check(data: &[u8]) {
    // The file is named by the first index its header claims, so a header can pass.
    let first = data
        .get(16..24)
        .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or_default()));
    let id = SegmentId(LogIndex(first));
    let path = Path::new("fuzz.seg");
    let _ = segment::check_header(path, data, id);
    let prev_term = data.first().map(|b| Term(u64::from(*b)));
    for prev in [None, prev_term] {
        let scan = segment::scan(data, id.first_index(), prev);
        assert!(scan.end as usize <= data.len());
        let bytes = Bytes::copy_from_slice(data);
        for (i, &offset) in scan.offsets.iter().enumerate() {
            let index = LogIndex(first + i as u64);
            segment::decode_at(path, &bytes, offset, index).expect("scanned frame decodes");
        }
        if let Some((bad, stop)) = scan.stop {
            let _ = stop.to_string();
            assert_eq!(bad, scan.end);
            let expected = LogIndex(first.wrapping_add(scan.offsets.len() as u64));
            let floor = scan.last.map(|l| l.term).or(prev);
            if let torn::TailVerdict::Corrupt { next_frame, .. } =
                torn::judge_tail(data, bad, expected, floor)
            {
                assert!(next_frame > bad && (next_frame as usize) < data.len());
            }
        }
    }
}
