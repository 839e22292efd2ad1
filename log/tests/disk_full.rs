//! A full disk: appends fail with `is_disk_full`, the log stays open and consistent (no
//! partial record visible, no headless segment), continues once space is freed, and a
//! reopen finds exactly what was written.
//!
//! Needs a small filesystem: a tmpfs mounted for the test (root and mount rights); without
//! them the test says so and passes without checking anything.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{read_all, rec, segment_files};
use regatta_log::{Log, LogIndex, Options};

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, kib: u64) -> Option<Self> {
        fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Self(dir.to_path_buf())),
            Ok(o) => {
                eprintln!(
                    "SKIPPED: cannot mount a small tmpfs (needs root): {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run mount: {e}");
                None
            }
        }
    }

    /// Fills the disk with a file, then gives back `leave` bytes of it.
    fn fill_leaving(&self, leave: u64) -> PathBuf {
        let path = self.0.join("filler");
        let mut file = fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 4096];
        while file.write_all(&chunk).is_ok() {}
        let len = file.metadata().unwrap().len();
        file.set_len(len.saturating_sub(leave)).unwrap();
        file.sync_all().unwrap();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn appends_on_a_full_disk_fail_cleanly_and_resume_when_space_is_freed() {
    let root = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(&root.path().join("disk"), 2048) else {
        return;
    };
    let dir = disk.0.join("log");
    let opts = || Options {
        segment_bytes: 16 << 10,
        ..Options::default()
    };
    let log = Log::open(&dir, opts()).unwrap();
    let filler = disk.fill_leaving(96 << 10);

    // One record at a time until the disk is full: each failure is a full disk, and the
    // log stays open.
    let mut written = Vec::new();
    let mut next = 1;
    let error = loop {
        let r = rec(next, 1, 3000);
        match log.append_blocking(vec![r.clone()]) {
            Ok(()) => {
                written.push(r);
                next += 1;
            }
            Err(e) => break e,
        }
        assert!(next < 1000, "the disk never filled");
    };
    assert!(error.is_disk_full(), "{error}");
    assert!(!error.must_stop());
    assert_eq!(
        log.next_index(),
        LogIndex(next),
        "a failed single append wrote nothing"
    );
    // A batch spanning segment rolls: it may write a prefix, never a partial record.
    let batch: Vec<_> = (next..next + 40).map(|i| rec(i, 1, 3000)).collect();
    let error = log.append_blocking(batch.clone()).expect_err("still full");
    assert!(error.is_disk_full(), "{error}");
    let advanced = log.next_index().0 - next;
    written.extend(batch[..advanced as usize].iter().cloned());
    assert_eq!(
        read_all(&log),
        written,
        "exactly what was written is readable"
    );

    // Space freed: the log continues where it stands.
    fs::remove_file(filler).unwrap();
    let from = log.next_index().0;
    let more: Vec<_> = (from..from + 40).map(|i| rec(i, 1, 3000)).collect();
    log.append_blocking(more.clone()).unwrap();
    written.extend(more);
    assert_eq!(read_all(&log), written);
    drop(log);

    // A reopen finds it all, and every segment file is whole.
    let log = Log::open(&dir, opts()).unwrap();
    assert_eq!(read_all(&log), written, "reopened");
    assert!(segment_files(&dir).len() > 1, "segments rolled");
    drop(log);
    drop(disk);
}
