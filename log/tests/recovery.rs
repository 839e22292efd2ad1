//! Recovery: torn tails, bit flips, crash images, interrupted truncations and purges.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

mod common;

use std::fs;
use std::path::Path;

use common::{copy_dir, read_all, rec, segment_files};
use rand::{Rng, SeedableRng};
use regatta_log::state_file::{self, StateFile};
use regatta_log::{EntryId, Error, Log, LogIndex, NodeId, Options, Record, Term};

fn small(segment_bytes: u64) -> Options {
    Options {
        segment_bytes,
        ..Options::default()
    }
}

/// Opens `dir` and checks the outcome: a valid prefix of `written`, or a corruption error.
/// Returns the number of entries recovered (None for an error).
fn open_and_check(dir: &Path, written: &[Record]) -> Option<usize> {
    match Log::open(dir, Options::default()) {
        Ok(log) => {
            let got = read_all(&log);
            assert!(
                got.len() <= written.len(),
                "recovered more entries than were written"
            );
            assert_eq!(
                got[..],
                written[..got.len()],
                "recovered entries must be a prefix"
            );
            Some(got.len())
        }
        Err(e) => {
            assert!(
                matches!(e, Error::Corrupted { .. } | Error::UnsupportedFormat { .. }),
                "unexpected error kind: {e}"
            );
            assert!(e.must_stop());
            None
        }
    }
}

fn write_variant(dir: &Path, name: &std::ffi::OsStr, bytes: &[u8]) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

#[test]
fn every_cut_and_every_bit_flip_of_a_segment_recovers_a_prefix_or_reports_corruption() {
    let src = tempfile::tempdir().unwrap();
    let written: Vec<Record> = (0..3).map(|i| rec(i, 1, 4)).collect();
    {
        let log = Log::open(src.path(), Options::default()).unwrap();
        log.append_blocking(written.clone()).unwrap();
    }
    let segs = segment_files(src.path());
    assert_eq!(segs.len(), 1);
    let name = segs[0].1.file_name().unwrap().to_owned();
    let bytes = fs::read(&segs[0].1).unwrap();

    let scratch = tempfile::tempdir().unwrap();
    for cut in 0..=bytes.len() {
        let dir = scratch.path().join(format!("cut-{cut}"));
        write_variant(&dir, &name, &bytes[..cut]);
        let n = open_and_check(&dir, &written);
        assert!(
            n.is_some(),
            "a cut is a torn tail, never corruption (cut {cut})"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
    let mut errors = 0;
    for bit in 0..bytes.len() * 8 {
        let dir = scratch.path().join(format!("bit-{bit}"));
        let mut bad = bytes.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        write_variant(&dir, &name, &bad);
        if open_and_check(&dir, &written).is_none() {
            errors += 1;
        }
        fs::remove_dir_all(&dir).unwrap();
    }
    // Flips in the header are refused loudly; flips in frames before the last are corruption
    // (see the test below), flips in the last frame look like a torn tail.
    assert!(
        errors >= 32 * 8 - 8,
        "header flips must be errors, got {errors}"
    );
}

#[test]
fn any_bit_flip_in_a_sealed_segment_is_corruption_naming_file_and_offset() {
    let src = tempfile::tempdir().unwrap();
    let written: Vec<Record> = (0..6).map(|i| rec(i, 1, 4)).collect();
    {
        let log = Log::open(src.path(), small(150)).unwrap();
        for r in &written {
            log.append_blocking(vec![r.clone()]).unwrap();
        }
    }
    let segs = segment_files(src.path());
    assert!(segs.len() >= 2, "want a sealed segment, got {segs:?}");
    let (_, sealed_path) = &segs[0];
    let bytes = fs::read(sealed_path).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    for bit in 0..bytes.len() * 8 {
        let dir = scratch.path().join(format!("bit-{bit}"));
        copy_dir(src.path(), &dir);
        let target = dir.join(sealed_path.file_name().unwrap());
        let mut bad = bytes.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        fs::write(&target, &bad).unwrap();
        match Log::open(&dir, Options::default()) {
            Ok(_) => panic!("bit {bit} flipped in a sealed segment and the log opened"),
            Err(Error::Corrupted { path, offset, .. }) => {
                assert_eq!(path.file_name(), target.file_name(), "bit {bit}");
                assert!(offset.0 <= bytes.len() as u64);
            }
            Err(Error::UnsupportedFormat { path, .. }) => {
                assert_eq!(path.file_name(), target.file_name(), "bit {bit}");
            }
            Err(e) => panic!("bit {bit}: unexpected error {e}"),
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}

/// The probe of issue 16: a flipped byte in any frame of the newest segment but its last one
/// used to be "cut as a torn tail", silently dropping every acknowledged entry after it. It is
/// corruption naming the file and the bad frame's offset, and the file is left untouched.
#[test]
fn a_flip_in_the_newest_segment_with_frames_after_it_is_refused_and_cuts_nothing() {
    let src = tempfile::tempdir().unwrap();
    let written: Vec<Record> = (0..8).map(|i| rec(i, 1 + i / 3, 6 + i as usize)).collect();
    {
        let log = Log::open(src.path(), Options::default()).unwrap();
        for r in &written {
            log.append_blocking(vec![r.clone()]).unwrap();
        }
    }
    let segs = segment_files(src.path());
    assert_eq!(segs.len(), 1);
    let path = &segs[0].1;
    let name = path.file_name().unwrap().to_owned();
    let bytes = fs::read(path).unwrap();
    let offsets = frame_offsets(&bytes);
    assert_eq!(offsets.len(), written.len());
    let last = *offsets.last().unwrap();

    let scratch = tempfile::tempdir().unwrap();
    for at in offsets[0]..last {
        let frame = offsets.iter().rposition(|&o| o <= at).unwrap();
        let dir = scratch.path().join(format!("flip-{at}"));
        let mut bad = bytes.clone();
        bad[at] ^= 0x10;
        write_variant(&dir, &name, &bad);
        match Log::open(&dir, Options::default()) {
            Ok(log) => panic!(
                "byte {at} flipped (frame {frame}) and the log opened with {} entries",
                read_all(&log).len()
            ),
            Err(Error::Corrupted { path, offset, .. }) => {
                assert_eq!(path.file_name(), Some(name.as_os_str()), "byte {at}");
                assert_eq!(offset.0 as usize, offsets[frame], "byte {at}");
            }
            Err(e) => panic!("byte {at}: unexpected error {e}"),
        }
        assert_eq!(
            fs::read(dir.join(&name)).unwrap(),
            bad,
            "byte {at}: file changed"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
    // The same flip in the last frame is indistinguishable from a torn write: cut, and the
    // log reopens with every entry before it.
    for at in last..bytes.len() {
        let dir = scratch.path().join(format!("last-{at}"));
        let mut bad = bytes.clone();
        bad[at] ^= 0x10;
        write_variant(&dir, &name, &bad);
        assert_eq!(
            open_and_check(&dir, &written),
            Some(written.len() - 1),
            "byte {at}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
    // A real torn write: the file cut mid-frame, then zeros (extended, never written).
    for cut in [last + 1, last + 9, bytes.len() - 1] {
        let dir = scratch.path().join(format!("torn-{cut}"));
        let mut img = bytes[..cut].to_vec();
        img.resize(cut + 4096, 0);
        write_variant(&dir, &name, &img);
        assert_eq!(
            open_and_check(&dir, &written),
            Some(written.len() - 1),
            "cut {cut}"
        );
        assert_eq!(
            fs::metadata(dir.join(&name)).unwrap().len(),
            last as u64,
            "cut {cut}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}

fn frame_offsets(bytes: &[u8]) -> Vec<usize> {
    let scan = regatta_log::segment::scan(bytes, LogIndex(0), None);
    assert!(scan.stop.is_none());
    scan.offsets.iter().map(|&o| o as usize).collect()
}

#[test]
fn a_missing_middle_segment_is_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Log::open(dir.path(), small(150)).unwrap();
        for i in 0..12 {
            log.append_blocking(vec![rec(i, 1, 8)]).unwrap();
        }
    }
    let segs = segment_files(dir.path());
    assert!(segs.len() >= 3);
    fs::remove_file(&segs[1].1).unwrap();
    let err = Log::open(dir.path(), Options::default()).unwrap_err();
    assert!(matches!(err, Error::Corrupted { .. }), "{err}");
}

#[test]
fn an_unknown_segment_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Log::open(dir.path(), Options::default()).unwrap();
        log.append_blocking(vec![rec(0, 1, 8)]).unwrap();
    }
    let (_, path) = &segment_files(dir.path())[0];
    let mut bytes = fs::read(path).unwrap();
    bytes[8] = 2;
    let crc = crc32c_of(&bytes[..28]);
    bytes[28..32].copy_from_slice(&crc.to_le_bytes());
    fs::write(path, &bytes).unwrap();
    let err = Log::open(dir.path(), Options::default()).unwrap_err();
    assert!(matches!(err, Error::UnsupportedFormat { .. }), "{err}");
}

fn crc32c_of(bytes: &[u8]) -> u32 {
    // The header checksum is CRC32C; recompute it the way a newer writer would.
    regatta_log::segment::encode_header(regatta_log::SegmentId(LogIndex(0)));
    crc32c::crc32c(bytes)
}

/// After acknowledged appends, a crash keeps the sealed segments whole and leaves the last one
/// cut anywhere at or beyond what was acknowledged (plus, sometimes, garbage). Every
/// acknowledged entry must come back intact; anything more must be what was written.
#[test]
fn crash_images_keep_every_acknowledged_entry() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    for round in 0..12 {
        let src = tempfile::tempdir().unwrap();
        let log = Log::open(src.path(), small(600)).unwrap();
        let mut written = Vec::new();
        let acked = rng.random_range(1..40u64);
        let mut i = 0;
        while i < acked {
            let n = rng.random_range(1..=4).min(acked - i);
            let batch: Vec<Record> = (i..i + n)
                .map(|j| rec(j, 1 + j / 10, rng.random_range(0..120)))
                .collect();
            written.extend(batch.clone());
            log.append_blocking(batch).unwrap();
            i += n;
        }
        let segs_at_ack = segment_files(src.path());
        let (last_id, last_path) = segs_at_ack.last().unwrap().clone();
        let acked_len = fs::metadata(&last_path).unwrap().len();

        // Written, not acknowledged (the callbacks are ignored).
        for j in acked..acked + rng.random_range(0..30u64) {
            let r = rec(j, 1 + j / 10, rng.random_range(0..120));
            written.push(r.clone());
            log.append_with(vec![r], |_| {}).unwrap();
        }

        for image in 0..4 {
            let dir = tempfile::tempdir().unwrap();
            copy_dir(src.path(), dir.path());
            let segs = segment_files(dir.path());
            let (id, path) = segs.last().unwrap();
            let len = fs::metadata(path).unwrap().len();
            // The header of a newer segment was fsync'd before any frame went in; sealed
            // segments were fsync'd whole before their successor was created.
            let header = regatta_log::segment::HEADER_LEN as u64;
            let floor = if *id == last_id { acked_len } else { header };
            let f = fs::OpenOptions::new().write(true).open(path).unwrap();
            let mut junk: Vec<u8> = (0..rng.random_range(1..64)).map(|_| rng.random()).collect();
            if *id != last_id && rng.random_bool(0.2) {
                // The newest segment's directory entry never reached the disk.
                fs::remove_file(path).unwrap();
            } else if *id != last_id && rng.random_bool(0.2) {
                // Torn while being created: at most a header's worth of bytes.
                let cut = rng.random_range(0..=header);
                f.set_len(cut).unwrap();
                junk.truncate((header - cut) as usize);
                use std::os::unix::fs::FileExt;
                f.write_all_at(&junk, cut).unwrap();
            } else {
                let cut = rng.random_range(floor..=len);
                f.set_len(cut).unwrap();
                if rng.random_bool(0.3) {
                    use std::os::unix::fs::FileExt;
                    f.write_all_at(&junk, cut).unwrap();
                }
            }
            let reopened = Log::open(dir.path(), Options::default())
                .unwrap_or_else(|e| panic!("round {round} image {image}: {e}"));
            let got = read_all(&reopened);
            assert!(
                got.len() as u64 >= acked,
                "round {round} image {image}: lost acknowledged entries"
            );
            assert_eq!(got[..], written[..got.len()], "round {round} image {image}");
            // The recovered log takes appends where it ends.
            let next = got.len() as u64;
            reopened.append_blocking(vec![rec(next, 100, 3)]).unwrap();
            assert_eq!(reopened.last_index(), Some(LogIndex(next)));
        }
    }
}

fn build_segmented(dir: &Path, n: u64) -> Vec<Record> {
    let log = Log::open(dir, small(200)).unwrap();
    let written: Vec<Record> = (0..n).map(|i| rec(i, 1 + i / 7, 10)).collect();
    for r in &written {
        log.append_blocking(vec![r.clone()]).unwrap();
    }
    written
}

/// A crash anywhere inside a truncation opens in the state after it: the marker is written
/// first, then later segments are deleted newest first, then the cut is made.
#[test]
fn interrupted_truncation_completes_on_open() {
    let src = tempfile::tempdir().unwrap();
    let written = build_segmented(src.path(), 40);
    let segs = segment_files(src.path());
    assert!(segs.len() >= 4, "{segs:?}");
    // Cut inside a sealed segment, at a segment border, and inside the last segment.
    let borders: Vec<u64> = segs.iter().map(|(id, _)| id.first_index().0).collect();
    for from in [borders[1] + 1, borders[2], 38, 1, 0] {
        let later: Vec<_> = segs
            .iter()
            .filter(|(id, _)| id.first_index().0 >= from)
            .collect();
        for deleted in 0..=later.len() {
            let dir = tempfile::tempdir().unwrap();
            copy_dir(src.path(), dir.path());
            state_file::write(
                dir.path(),
                StateFile::TRUNCATING,
                &state_file::encode_index(LogIndex(from)),
            )
            .unwrap();
            for (_, p) in later.iter().rev().take(deleted) {
                fs::remove_file(dir.path().join(p.file_name().unwrap())).unwrap();
            }
            let log = Log::open(dir.path(), Options::default()).unwrap();
            assert_eq!(
                read_all(&log)[..],
                written[..from as usize],
                "from {from}, deleted {deleted}"
            );
            assert!(!StateFile::TRUNCATING.path(dir.path()).exists());
            log.append_blocking(vec![rec(from, 50, 5)]).unwrap();
        }
    }
}

/// A crash anywhere inside a purge opens in the state after it: the purged pointer is written
/// first, then whole segments are deleted oldest first.
#[test]
fn interrupted_purge_completes_on_open() {
    let src = tempfile::tempdir().unwrap();
    let written = build_segmented(src.path(), 40);
    let segs = segment_files(src.path());
    for up_to in [0u64, 10, 25, 39, 45] {
        let id = EntryId::new(LogIndex(up_to), Term(1 + up_to / 7), NodeId(0));
        let whole: Vec<_> = segs
            .iter()
            .enumerate()
            .filter(|(k, _)| {
                segs.get(k + 1)
                    .is_some_and(|(next, _)| next.first_index().0 <= up_to + 1)
            })
            .map(|(_, s)| s.clone())
            .collect();
        for deleted in 0..=whole.len() {
            let dir = tempfile::tempdir().unwrap();
            copy_dir(src.path(), dir.path());
            state_file::write(
                dir.path(),
                StateFile::PURGED,
                &state_file::encode_entry_id(id),
            )
            .unwrap();
            for (_, p) in whole.iter().take(deleted) {
                fs::remove_file(dir.path().join(p.file_name().unwrap())).unwrap();
            }
            let log = Log::open(dir.path(), Options::default()).unwrap();
            let expect = if up_to >= 40 {
                &[][..]
            } else {
                &written[up_to as usize + 1..]
            };
            assert_eq!(
                read_all(&log)[..],
                expect[..],
                "up_to {up_to}, deleted {deleted}"
            );
            assert_eq!(log.purged(), Some(id));
            assert!(matches!(
                log.read(LogIndex(up_to)..),
                Err(Error::Purged { .. })
            ));
            assert_eq!(log.next_index(), LogIndex(40.max(up_to + 1)));
        }
    }
}
