//! Opening a damaged log directory (`regatta_log` recovery, its read-only `DirReader`, and the
//! Raft state files openraft's log store reads). The input is a set of files in chunks
//! (`regatta_fuzz::chunks`): tag 0 a segment named by the first index its header claims,
//! tag 1 a segment named by the chunk's first 8 bytes (the rest is the file), 2 `purged.state`,
//! 3 `truncating.state`, 4 `vote.state`, 5 `committed.state` (tag modulo 6; with the high
//! bit set, the file's checksums are recomputed first). Opening either fails with an
//! error or yields a log whose every record reads back and decodes as an openraft entry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use regatta_log::position::{LogIndex, SegmentId};
use regatta_log::raft::codec;
use regatta_log::reader::DirReader;
use regatta_log::state_file::{self, StateFile};
use regatta_log::{Log, Options};
use regatta_materializer::raft::TypeConfig;

fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
}

fuzz_target!(|data: &[u8]| {
    let dir = regatta_fuzz::fresh_dir("log");
    for (tag, bytes) in regatta_fuzz::chunks(data).into_iter().take(8) {
        let kind = (tag & 0x7f) % 6;
        let (name, contents) = match kind {
            0 => (SegmentId(LogIndex(u64_at(bytes, 16))).file_name(), bytes),
            1 => (
                SegmentId(LogIndex(u64_at(bytes, 0))).file_name(),
                bytes.get(8..).unwrap_or_default(),
            ),
            2 => (StateFile::PURGED.name.to_string(), bytes),
            3 => (StateFile::TRUNCATING.name.to_string(), bytes),
            4 => (StateFile::VOTE.name.to_string(), bytes),
            _ => (StateFile::COMMITTED.name.to_string(), bytes),
        };
        // A tag with the high bit set has its checksums recomputed (regatta_fuzz::fixup).
        let mut contents = contents.to_vec();
        if tag & 0x80 != 0 {
            match kind {
                0 | 1 => regatta_fuzz::fixup::segment(&mut contents),
                _ => regatta_fuzz::fixup::trailing(&mut contents),
            }
        }
        std::fs::write(dir.join(name), contents).expect("write scratch file");
    }

    // What `regatta log verify` and the audit tools read, beside a live node.
    if let Ok(reader) = DirReader::open(&dir) {
        let _ = (reader.purged(), reader.committed());
        for &id in reader.segments() {
            if let Ok(segment) = reader.read_segment(id) {
                for record in segment.records(LogIndex(0), LogIndex(u64::MAX)) {
                    let _ = record.map(|r| codec::from_record::<TypeConfig>(&r));
                }
            }
        }
    }

    // Recovery proper: cuts a torn tail, finishes a truncation or a purge, or refuses.
    if let Ok(log) = Log::open(&dir, Options::default()) {
        if let (Some(first), Some(last)) = (log.first_index(), log.last_index()) {
            let records = log.read(first..=last).expect("a recovered log reads back");
            assert_eq!(records.len() as u64, last.0 - first.0 + 1);
            for r in &records {
                let _ = codec::from_record::<TypeConfig>(r);
            }
        }
    }
    // The Raft store's own state files, as `RaftLogStore::new` reads them.
    if let Ok(Some(body)) = state_file::read(&dir, StateFile::VOTE) {
        let _ = codec::decode_vote(&StateFile::VOTE.path(&dir), &body);
    }
    if let Ok(Some(body)) = state_file::read(&dir, StateFile::COMMITTED) {
        let _ = state_file::decode_entry_id(&StateFile::COMMITTED.path(&dir), &body);
    }
});
