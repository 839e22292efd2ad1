//! A directory of local snapshot files, one per log position: what a node restarts from,
//! together with the rest of its log.
//!
//! Layout: `<dir>/<number, 20 digits><suffix>`, where the number is the position the snapshot
//! covers (a Raft log index on the core, `00000000000000001234.rsnap`; a revision on the edge,
//! `00000000000000001234.snap.zst`). Zero padding makes a listing sort by position. Files are
//! written through [`crate::fs`] (temporary file, fsync, rename, directory fsync), so a file
//! with the right name is a whole file; only the newest `keep` are kept.
//!
//! The directory knows nothing of a snapshot's format: [`SnapshotDir::load_newest`] takes the
//! caller's check (decode and verify) and falls back past files that fail it, with a warning,
//! to the newest one that passes.

use std::fmt::Display;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fs::TMP_SUFFIX;

/// Digits of the number in a file name.
const DIGITS: usize = 20;

/// A directory of snapshot files named by position.
#[derive(Debug, Clone)]
pub struct SnapshotDir {
    dir: PathBuf,
    suffix: &'static str,
    keep: usize,
}

impl SnapshotDir {
    /// Opens (creating it if needed) a directory of `<20 digits><suffix>` files that keeps the
    /// newest `keep` (at least one). Temporary files left by a crash are deleted.
    pub fn open(dir: PathBuf, suffix: &'static str, keep: usize) -> Result<Self> {
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let this = Self {
            dir,
            suffix,
            keep: keep.max(1),
        };
        for entry in fs::read_dir(&this.dir).map_err(|e| Error::io(&this.dir, e))? {
            let entry = entry.map_err(|e| Error::io(&this.dir, e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(TMP_SUFFIX) && name.contains(this.suffix) {
                tracing::info!(path = %entry.path().display(), "deleting an unfinished snapshot file");
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(this)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of the snapshot at `number`.
    pub fn path(&self, number: u64) -> PathBuf {
        self.dir.join(format!("{number:0DIGITS$}{}", self.suffix))
    }

    /// A temporary file in the directory for a snapshot being received under `name`;
    /// [`SnapshotDir::publish`] makes it a snapshot. Deleted by the next `open` if left behind.
    pub fn incoming_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}{}{TMP_SUFFIX}", self.suffix))
    }

    /// Numbers of the snapshots present, newest first. Other files are ignored.
    pub fn list(&self) -> Result<Vec<u64>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))? {
            let entry = entry.map_err(|e| Error::io(&self.dir, e))?;
            if let Some(number) = entry.file_name().to_str().and_then(|n| self.parse(n)) {
                out.push(number);
            }
        }
        out.sort_unstable_by(|a, b| b.cmp(a));
        Ok(out)
    }

    /// The number in a snapshot file's name; `None` for any other file. Pure.
    fn parse(&self, name: &str) -> Option<u64> {
        let digits = name.strip_suffix(self.suffix)?;
        if digits.len() != DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        digits.parse().ok()
    }

    /// Writes the snapshot at `number` atomically and durably, then deletes all but the
    /// newest `keep`.
    pub fn save(&self, number: u64, bytes: &[u8]) -> Result<()> {
        crate::fs::write_atomic(&self.path(number), bytes)?;
        self.prune()
    }

    /// Like [`SnapshotDir::save`], for a snapshot streamed into the file by `write`.
    pub fn save_with(
        &self,
        number: u64,
        write: impl FnOnce(&mut File) -> io::Result<()>,
    ) -> Result<()> {
        crate::fs::write_atomic_with(&self.path(number), write)?;
        self.prune()
    }

    /// Makes a completely written temporary file (from [`SnapshotDir::incoming_path`]) the
    /// snapshot at `number`, durably, then deletes all but the newest `keep`.
    pub fn publish(&self, file: File, tmp: &Path, number: u64) -> Result<()> {
        crate::fs::publish(file, tmp, &self.path(number))?;
        self.prune()
    }

    /// Deletes all but the newest `keep` snapshots. A file that cannot be deleted stays.
    pub fn prune(&self) -> Result<()> {
        for old in self.list()?.into_iter().skip(self.keep) {
            let path = self.path(old);
            if let Err(e) = fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), error = %e, "could not delete an old snapshot");
            }
        }
        Ok(())
    }

    /// The newest snapshot that `check` accepts, with its number; `check` reads and verifies
    /// the file at the path it is given. A file it rejects is skipped with a warning (an
    /// older one may be intact). `None` if no file passes.
    pub fn load_newest<T, E: Display>(
        &self,
        mut check: impl FnMut(&Path) -> Result<T, E>,
    ) -> Result<Option<(u64, T)>> {
        for number in self.list()? {
            let path = self.path(number);
            match check(&path) {
                Ok(loaded) => return Ok(Some((number, loaded))),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "skipping a damaged snapshot file");
                }
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "test code: a panic is the failure report"
    )]

    use std::io::Write;

    use super::*;

    fn check(path: &Path) -> std::result::Result<Vec<u8>, String> {
        let bytes = fs::read(path).map_err(|e| e.to_string())?;
        if bytes.starts_with(b"ok:") {
            Ok(bytes)
        } else {
            Err("bad contents".into())
        }
    }

    #[test]
    fn names_sort_and_only_the_newest_are_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = SnapshotDir::open(tmp.path().join("snaps"), ".rsnap", 2).unwrap();
        assert_eq!(dir.list().unwrap(), Vec::<u64>::new());
        assert_eq!(dir.load_newest(check).unwrap(), None);
        for n in [9, 10, 100] {
            dir.save(n, format!("ok:{n}").as_bytes()).unwrap();
        }
        assert_eq!(dir.list().unwrap(), vec![100, 10]);
        assert_eq!(
            dir.path(100),
            tmp.path().join("snaps/00000000000000000100.rsnap")
        );
        // Other files are not snapshots.
        fs::write(dir.dir().join("7.rsnap"), b"ok:short name").unwrap();
        fs::write(dir.dir().join("00000000000000000200.other"), b"ok:").unwrap();
        assert_eq!(dir.list().unwrap(), vec![100, 10]);
    }

    #[test]
    fn a_damaged_newest_file_falls_back_to_an_older_one() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = SnapshotDir::open(tmp.path().to_path_buf(), ".snap.zst", 3).unwrap();
        dir.save(1, b"ok:one").unwrap();
        dir.save(2, b"ok:two").unwrap();
        dir.save(3, b"damaged").unwrap();
        let (number, bytes) = dir.load_newest(check).unwrap().unwrap();
        assert_eq!((number, bytes.as_slice()), (2, &b"ok:two"[..]));
        dir.save(4, b"also damaged").unwrap();
        dir.save(5, b"damaged too").unwrap();
        assert_eq!(dir.load_newest(check).unwrap(), None, "none intact is None");
    }

    #[test]
    fn streamed_and_received_files_and_crash_leftovers() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = SnapshotDir::open(tmp.path().to_path_buf(), ".snap.zst", 2).unwrap();
        dir.save_with(5, |f| f.write_all(b"ok:streamed")).unwrap();
        let failed = dir.save_with(6, |_| Err(io::Error::other("disk full")));
        assert!(failed.is_err());
        assert_eq!(dir.list().unwrap(), vec![5]);

        let incoming = dir.incoming_path("incoming");
        let mut file = File::create(&incoming).unwrap();
        file.write_all(b"ok:received").unwrap();
        dir.publish(file, &incoming, 7).unwrap();
        assert!(!incoming.exists());
        assert_eq!(fs::read(dir.path(7)).unwrap(), b"ok:received");

        // A crash leaves temporaries; the next open deletes them.
        fs::write(dir.incoming_path("incoming"), b"partial").unwrap();
        fs::write(crate::fs::tmp_path(&dir.path(8)), b"partial").unwrap();
        let dir = SnapshotDir::open(tmp.path().to_path_buf(), ".snap.zst", 2).unwrap();
        let left: Vec<_> = fs::read_dir(dir.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert_eq!(dir.list().unwrap(), vec![7, 5]);
    }
}
