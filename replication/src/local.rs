//! The edge's local snapshots: what it restarts from, together with its local log.
//!
//! Files in `<data-dir>/snapshots/`, named `<revision, 20 digits>.snap.zst`, in the
//! materializer's snapshot format (versioned, checksummed). Written to a temporary file,
//! fsync'd, renamed, and the directory fsync'd; a file that fails its checksum is skipped
//! (with a warning) in favour of an older one.

use std::{
    fs::File,
    io::{BufReader, BufWriter, Write},
    path::{Path, PathBuf},
};

use bytes::Bytes;
use regatta_materializer::{Revision, State, snapshot};

use crate::{Error, Result};

const SUFFIX: &str = ".snap.zst";
/// Local snapshots kept; older ones are deleted after a new one is written.
const KEEP: usize = 2;

/// An IO error on `path` while doing `what`.
fn io(path: &Path, what: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::LocalSnapshot { path, what, source }
}

fn format(path: &Path) -> impl FnOnce(regatta_materializer::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::LocalSnapshotFormat { path, source }
}

#[derive(Debug, Clone)]
pub struct LocalSnapshots {
    dir: PathBuf,
}

impl LocalSnapshots {
    pub fn open(dir: PathBuf) -> Result<Self> {
        std::fs::create_dir_all(&dir).map_err(io(&dir, "creating"))?;
        Ok(Self { dir })
    }

    fn path(&self, revision: Revision) -> PathBuf {
        self.dir.join(format!("{:020}{SUFFIX}", revision.0))
    }

    /// Revisions present, newest first.
    pub fn list(&self) -> Result<Vec<Revision>> {
        let mut out: Vec<Revision> = std::fs::read_dir(&self.dir)
            .map_err(io(&self.dir, "listing"))?
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                let digits = name.strip_suffix(SUFFIX)?;
                (digits.len() == 20)
                    .then(|| digits.parse().ok().map(Revision))
                    .flatten()
            })
            .collect();
        out.sort_unstable_by(|a, b| b.cmp(a));
        Ok(out)
    }

    /// The newest snapshot that reads back intact, if any.
    pub fn load_newest(&self) -> Result<Option<State>> {
        for revision in self.list()? {
            let path = self.path(revision);
            match read(&path) {
                Ok(state) => return Ok(Some(state)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "skipping a damaged local snapshot");
                }
            }
        }
        Ok(None)
    }

    /// Writes `state` durably and deletes all but the newest few.
    pub fn save(&self, state: &State) -> Result<()> {
        let path = self.path(state.revision());
        let tmp = path.with_extension("tmp");
        let saved = (|| {
            let file = File::create(&tmp).map_err(io(&tmp, "creating"))?;
            let mut writer =
                snapshot::write_snapshot(state, BufWriter::new(file)).map_err(format(&tmp))?;
            writer.flush().map_err(io(&tmp, "writing"))?;
            let file = writer
                .into_inner()
                .map_err(|e| io(&tmp, "writing")(e.into_error()))?;
            self.publish(file, &tmp, state.revision())
        })();
        if saved.is_err() {
            // A full disk, say: the older snapshots stay; no partial file is left behind.
            let _ = std::fs::remove_file(&tmp);
        }
        saved
    }

    /// Starts keeping a copy of a snapshot object as it is downloaded: its bytes are already
    /// in the local format, so keeping them costs a file write instead of encoding the state
    /// again. The chunks go to a writer thread, so the download never waits for the disk.
    pub fn receive(&self) -> Result<Receiving> {
        let tmp = self.dir.join(format!("incoming{SUFFIX}.tmp"));
        let file = File::create(&tmp).map_err(io(&tmp, "creating"))?;
        let (chunks, rx) = std::sync::mpsc::channel::<Bytes>();
        let path = tmp.clone();
        let writer = std::thread::Builder::new()
            .name("snapshot-copy".into())
            .spawn(move || -> Result<File> {
                let mut out = BufWriter::with_capacity(1 << 20, file);
                for chunk in rx {
                    out.write_all(&chunk).map_err(io(&path, "writing"))?;
                }
                out.into_inner()
                    .map_err(|e| io(&path, "writing")(e.into_error()))
            })
            .map_err(io(&tmp, "starting the copy thread for"))?;
        Ok(Receiving {
            local: self.clone(),
            tmp,
            chunks: Some(chunks),
            writer: Some(writer),
        })
    }

    /// Makes a complete temporary file the snapshot of `revision`: fsync'd, renamed, the
    /// directory fsync'd, older snapshots beyond the newest few deleted.
    fn publish(&self, file: File, tmp: &Path, revision: Revision) -> Result<()> {
        file.sync_all().map_err(io(tmp, "syncing"))?;
        let path = self.path(revision);
        std::fs::rename(tmp, &path).map_err(io(tmp, "renaming"))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir, "syncing"))?;
        for old in self.list()?.into_iter().skip(KEEP) {
            let _ = std::fs::remove_file(self.path(old));
        }
        Ok(())
    }
}

/// A snapshot object being copied to the local snapshots as it downloads
/// ([`LocalSnapshots::receive`]). Dropped without [`Receiving::keep`], the partial copy is
/// deleted.
pub struct Receiving {
    local: LocalSnapshots,
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
                .and_then(|file| self.local.publish(file, &self.tmp, revision)),
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
    let file = File::open(path).map_err(io(path, "opening"))?;
    snapshot::read_snapshot(BufReader::new(file)).map_err(format(path))
}
