//! The one way a small file is replaced on disk: write `<name>.tmp`, fsync it, rename it over
//! `<name>`, fsync the directory. A reader sees the old file or the new one, never a mix, and
//! once the call returns the new file survives a crash.
//!
//! A failed write (a full disk, say) leaves the current file as it was and no temporary file
//! behind. Every writer of state files, local snapshots and reseed markers goes through here.
//!
//! Also the two plain file operations segments need: deleting one and cutting one short.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Suffix of files being written; a leftover from a crash is garbage its owner may delete.
pub const TMP_SUFFIX: &str = ".tmp";

/// Reads a whole small file (a certificate, a key, a CA bundle named by a flag), refusing
/// one larger than `limit` bytes before holding more than that in memory: a flag pointing
/// at a device or a huge file fails instead of filling memory.
pub fn read_capped(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    File::open(path)?
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {limit} bytes"),
        ));
    }
    Ok(bytes)
}

/// The temporary file [`write_atomic`] writes `path` through: `<path>.tmp`.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(TMP_SUFFIX);
    path.with_file_name(name)
}

/// Replaces `path` with `bytes`, atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |file| file.write_all(bytes))
}

/// Replaces `path` with what `write` writes into a fresh temporary file, atomically and
/// durably: for contents streamed out rather than held in memory. `write` need not flush
/// or sync; an error from it is reported against the temporary file.
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<()> {
    let tmp = tmp_path(path);
    let written = File::create(&tmp)
        .map_err(|e| Error::io(&tmp, e))
        .and_then(|mut file| {
            write(&mut file).map_err(|e| Error::io(&tmp, e))?;
            Ok(file)
        });
    match written {
        Ok(file) => publish(file, &tmp, path),
        Err(e) => {
            // The current file is untouched; leave no partial temporary beside it.
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Makes a completely written temporary file `path`: fsyncs `file` (open on `tmp`), renames
/// `tmp` over `path`, fsyncs the directory. On failure the temporary is deleted. For writers
/// that produce the temporary themselves (a download copied as it arrives).
pub fn publish(file: File, tmp: &Path, path: &Path) -> Result<()> {
    let published = file
        .sync_all()
        .map_err(|source| Error::SyncFailed {
            path: tmp.to_path_buf(),
            source,
        })
        .and_then(|()| {
            drop(file);
            fs::rename(tmp, path).map_err(|e| Error::io(path, e))
        });
    if let Err(e) = published {
        let _ = fs::remove_file(tmp);
        return Err(e);
    }
    sync_dir(parent(path))
}

/// Deletes `path` durably; deleting a missing file is fine.
pub fn remove(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(parent(path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Deletes `path` if it exists, without syncing its directory: for segment files, whose
/// deletions the caller makes durable (or finishes again on the next open).
pub fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Shortens a file to `len` bytes, durably.
pub fn cut_file(path: &Path, len: u64) -> Result<()> {
    let file = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    file.set_len(len).map_err(|e| Error::io(path, e))?;
    file.sync_all().map_err(|source| Error::SyncFailed {
        path: path.to_path_buf(),
        source,
    })
}

/// fsyncs a directory, making creations, renames and deletions in it durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let d = File::open(dir).map_err(|e| Error::io(dir, e))?;
    d.sync_all().map_err(|source| Error::SyncFailed {
        path: dir.to_path_buf(),
        source,
    })
}

/// The directory holding `path` (`.` for a bare file name).
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "test code: a panic is the failure report"
    )]

    use super::*;

    #[test]
    fn a_capped_read_takes_a_file_up_to_the_limit_and_refuses_more() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cert.pem");
        fs::write(&path, b"0123456789").unwrap();
        assert_eq!(read_capped(&path, 10).unwrap(), b"0123456789");
        let err = read_capped(&path, 9).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("larger than 9 bytes"), "{err}");
        // A device never ends: the cap is what stops the read.
        assert!(read_capped(Path::new("/dev/zero"), 1 << 16).is_err());
    }

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert!(!tmp_path(&path).exists());
        assert_eq!(tmp_path(&path), dir.path().join("state.tmp"));
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_removes_the_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        write_atomic(&path, b"old").unwrap();
        let failed = write_atomic_with(&path, |file| {
            file.write_all(b"half")?;
            Err(io::Error::other("disk full"))
        });
        assert!(matches!(failed, Err(Error::Io { .. })), "{failed:?}");
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert!(!tmp_path(&path).exists());
    }

    #[test]
    fn remove_is_durable_and_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        write_atomic(&path, b"x").unwrap();
        remove(&path).unwrap();
        remove(&path).unwrap();
        assert!(!path.exists());
    }
}
