//! The edge's local snapshots: what it restarts from, together with its local log.
//!
//! Files in `<data-dir>/snapshots/`, named `<revision, 20 digits>.snap.zst`, in the
//! materializer's snapshot format (versioned, checksummed), kept in a
//! [`regatta_log::SnapshotDir`]: written to a temporary file, fsync'd, renamed, the directory
//! fsync'd; the newest two kept; a file that fails its checksum is skipped (with a warning)
//! in favour of an older one.

use std::{
    fs::File,
    io::{self, BufReader, BufWriter, Write},
    path::{Path, PathBuf},
};

use bytes::Bytes;
use regatta_log::SnapshotDir;
use regatta_materializer::{Revision, State, snapshot};

use crate::{Error, Result};

const SUFFIX: &str = ".snap.zst";
/// Local snapshots kept; older ones are deleted after a new one is written.
const KEEP: usize = 2;

#[derive(Debug, Clone)]
pub struct LocalSnapshots {
    dir: SnapshotDir,
}

impl LocalSnapshots {
    pub fn open(dir: PathBuf) -> Result<Self> {
        Ok(Self {
            dir: SnapshotDir::open(dir, SUFFIX, KEEP).map_err(Error::SnapshotDir)?,
        })
    }

    /// Revisions present, newest first.
    pub fn list(&self) -> Result<Vec<Revision>> {
        let numbers = self.dir.list().map_err(Error::SnapshotDir)?;
        Ok(numbers.into_iter().map(Revision).collect())
    }

    /// The newest snapshot that reads back intact, if any.
    pub fn load_newest(&self) -> Result<Option<State>> {
        let newest = self.dir.load_newest(read).map_err(Error::SnapshotDir)?;
        Ok(newest.map(|(_, state)| state))
    }

    /// Writes `state` durably and deletes all but the newest few. On failure (a full disk,
    /// say) the older snapshots stay and no partial file is left behind.
    pub fn save(&self, state: &State) -> Result<()> {
        self.dir
            .save_with(state.revision().0, |file| {
                let mut writer =
                    snapshot::write_snapshot(state, BufWriter::new(file)).map_err(|e| match e {
                        regatta_materializer::Error::Io(e) => e,
                        other => io::Error::other(other),
                    })?;
                writer.flush()
            })
            .map_err(Error::SnapshotDir)
    }

    /// Starts keeping a copy of a snapshot object as it is downloaded: its bytes are already
    /// in the local format, so keeping them costs a file write instead of encoding the state
    /// again. The chunks go to a writer thread, so the download never waits for the disk.
    pub fn receive(&self) -> Result<Receiving> {
        let tmp = self.dir.incoming_path("incoming");
        let io = |what| {
            let path = tmp.clone();
            move |source| Error::LocalSnapshot { path, what, source }
        };
        let file = File::create(&tmp).map_err(io("creating"))?;
        let (chunks, rx) = std::sync::mpsc::channel::<Bytes>();
        let written = io("writing");
        let writer = std::thread::Builder::new()
            .name("snapshot-copy".into())
            .spawn(move || -> Result<File> {
                let copy = || -> io::Result<File> {
                    let mut out = BufWriter::with_capacity(1 << 20, file);
                    for chunk in rx {
                        out.write_all(&chunk)?;
                    }
                    out.into_inner().map_err(io::IntoInnerError::into_error)
                };
                copy().map_err(written)
            })
            .map_err(io("starting the copy thread for"))?;
        Ok(Receiving {
            dir: self.dir.clone(),
            tmp,
            chunks: Some(chunks),
            writer: Some(writer),
        })
    }
}

/// A snapshot object being copied to the local snapshots as it downloads
/// ([`LocalSnapshots::receive`]). Dropped without [`Receiving::keep`], the partial copy is
/// deleted.
pub struct Receiving {
    dir: SnapshotDir,
    tmp: PathBuf,
    chunks: Option<std::sync::mpsc::Sender<Bytes>>,
    writer: Option<std::thread::JoinHandle<Result<File>>>,
}

impl Receiving {
    /// Queues the next chunk of the object.
    pub fn push(&self, chunk: &Bytes) {
        if let Some(chunks) = &self.chunks {
            // A writer that stopped on an error reports it from `keep`.
            let _ = chunks.send(chunk.clone());
        }
    }

    /// Once the download decoded (so the bytes are a whole, valid snapshot of `revision`):
    /// waits for the copy and makes it the local snapshot of `revision`. Blocking.
    pub fn keep(mut self, revision: Revision) -> Result<()> {
        self.chunks = None;
        let kept = match self.writer.take() {
            Some(writer) => writer
                .join()
                .map_err(|_| Error::task("the snapshot copy thread", "panicked"))
                .and_then(|written| written)
                .and_then(|file| {
                    self.dir
                        .publish(file, &self.tmp, revision.0)
                        .map_err(Error::SnapshotDir)
                }),
            None => Err(Error::task("the snapshot copy", "already taken")),
        };
        if kept.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        kept
    }
}

impl Drop for Receiving {
    fn drop(&mut self) {
        self.chunks = None;
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

fn read(path: &Path) -> Result<State> {
    let file = File::open(path).map_err(|source| Error::LocalSnapshot {
        path: path.to_path_buf(),
        what: "opening",
        source,
    })?;
    snapshot::read_snapshot(BufReader::new(file)).map_err(|source| Error::LocalSnapshotFormat {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "test code: a panic is the failure report"
    )]

    use super::*;

    #[test]
    fn a_snapshot_written_as_before_opens_and_a_new_one_is_named_the_same_way() {
        let tmp = tempfile::tempdir().unwrap();
        // As the edge has always written them: the snapshot format, a 20-digit name; an
        // old-style temporary beside it is not a snapshot.
        let bytes = snapshot::encode(&State::new()).unwrap();
        std::fs::write(tmp.path().join("00000000000000000000.snap.zst"), bytes).unwrap();
        std::fs::write(tmp.path().join("00000000000000000009.snap.tmp"), b"partial").unwrap();
        let local = LocalSnapshots::open(tmp.path().to_path_buf()).unwrap();
        assert_eq!(local.list().unwrap(), vec![Revision(0)]);
        let loaded = local.load_newest().unwrap().map(|s| s.revision());
        assert_eq!(loaded, Some(Revision(0)));

        let fresh = tempfile::tempdir().unwrap();
        let local = LocalSnapshots::open(fresh.path().to_path_buf()).unwrap();
        assert_eq!(local.load_newest().unwrap().map(|s| s.revision()), None);
        local.save(&State::new()).unwrap();
        assert!(fresh.path().join("00000000000000000000.snap.zst").exists());
    }
}
