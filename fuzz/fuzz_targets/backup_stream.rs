//! A Regatta backup stream (`<table>.bak`, `Maintenance.Restore`'s input;
//! `regatta_materializer::backup`): Snappy framing around length-prefixed `mvcc.v1.Command`s.
//! The first input byte chooses whether the rest is the stream as stored (0) or the records
//! inside it, framed here so that mutations reach them (anything else). A stream that reads
//! back restores, and applies to an empty table.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use regatta_materializer::backup::{self, BackupReader};
use regatta_materializer::{Command, Entry, Materializer, Revision, State};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let stream = if mode == 0 {
        rest.to_vec()
    } else {
        let mut w = snap::write::FrameEncoder::new(Vec::new());
        w.write_all(rest).expect("frame in memory");
        w.into_inner().expect("frame in memory")
    };
    let pairs: Vec<_> = BackupReader::new(stream.as_slice()).collect();
    let all_ok = pairs.iter().all(Result::is_ok);
    let restored = backup::restore_from_stream(stream.as_slice(), "t", 64 * 1024);
    assert_eq!(all_ok, restored.is_ok(), "reader and restore disagree");
    if let Ok(commands) = restored {
        let m = Materializer::new(State::new());
        let mut events = vec![
            Command::CreateTable {
                name: "t".into(),
                config: None,
            }
            .to_event(0),
        ];
        events.extend(commands.iter().map(|c| c.to_event(0)));
        let entries = events.iter().enumerate().map(|(i, e)| Entry {
            index: Revision(i as u64 + 1),
            event: Some(e),
        });
        m.apply_batch(entries)
            .expect("a restore that decoded applies");
    }
});
