//! Helpers shared by the integration tests.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::fs;
use std::path::{Path, PathBuf};

use regatta_log::{EntryId, Log, LogIndex, NodeId, Record, RecordKind, SegmentId, Term};

/// A record at `index` whose payload says where it belongs, so a wrong entry cannot pass.
pub fn rec(index: u64, term: u64, payload_len: usize) -> Record {
    let mut payload = format!("entry-{index}-term-{term}:").into_bytes();
    payload.resize(payload.len().max(payload_len), (index % 251) as u8);
    let kind = match index % 5 {
        0 => RecordKind::Blank,
        1 => RecordKind::Membership,
        _ => RecordKind::Normal,
    };
    Record::new(
        EntryId::new(LogIndex(index), Term(term), NodeId(term % 3)),
        kind,
        payload,
    )
}

/// Segment files of a directory, in log order.
pub fn segment_files(dir: &Path) -> Vec<(SegmentId, PathBuf)> {
    let mut out: Vec<(SegmentId, PathBuf)> = fs::read_dir(dir)
        .expect("list dir")
        .filter_map(|e| {
            let e = e.expect("dir entry");
            let name = e.file_name().into_string().ok()?;
            SegmentId::parse_file_name(&name).map(|id| (id, e.path()))
        })
        .collect();
    out.sort();
    out
}

/// Copies every regular file of `src` into `dst` (the state of the disk at that moment).
pub fn copy_dir(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).expect("create copy dir");
    for e in fs::read_dir(src).expect("list dir") {
        let e = e.expect("dir entry");
        if e.file_type().expect("file type").is_file() {
            fs::copy(e.path(), dst.join(e.file_name())).expect("copy file");
        }
    }
}

/// Every readable record of the log.
pub fn read_all(log: &Log) -> Vec<Record> {
    log.read(..).expect("read whole log")
}
