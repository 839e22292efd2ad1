//! Snapshots in an object store: streamed up with a multipart upload, streamed down in
//! chunks; the encoder and decoder run on blocking threads, the IO stays async.
//!
//! # Object key layout
//!
//! ```text
//! <prefix>/snapshots/<revision, 20 digits zero-padded>.snap.zst
//! e.g.    snapshots/00000000000001234567.snap.zst
//! ```
//!
//! Keys are immutable (one revision is written once; rewriting yields the same content) and
//! sort by revision when listed. A snapshot becomes visible only when its multipart upload
//! completes (object stores never list an unfinished upload; the local file system store
//! stages to a temporary file and renames); in addition every object is verified end to
//! end (zstd checksum, end marker, CRC32C trailer) before it is used, so a half-written
//! object is never taken for a snapshot. Objects under the prefix whose names do not
//! match the pattern are ignored.

use std::io::{self, Read, Write};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetResultPayload, ObjectStore, ObjectStoreExt, WriteMultipart};
use tokio::sync::mpsc;

use crate::snapshot::format::{read_snapshot, write_snapshot};
use crate::{Error, Result, Revision, State};

/// Size of the chunks handed from the encoder to the upload (and the multipart part size).
const CHUNK_BYTES: usize = 8 * 1024 * 1024;
const UPLOAD_CONCURRENCY: usize = 4;
const SUFFIX: &str = ".snap.zst";

/// Where and how big a written snapshot is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub revision: Revision,
    pub location: Path,
    pub size: u64,
}

/// Snapshots of one cluster under one prefix of an object store. See the module docs for
/// the key layout.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    store: Arc<dyn ObjectStore>,
    dir: Path,
}

impl SnapshotStore {
    /// Snapshots under `<prefix>/snapshots/`; an empty prefix means the bucket root.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> Self {
        let dir = if prefix.is_empty() {
            Path::from("snapshots")
        } else {
            Path::from(prefix).join("snapshots")
        };
        Self { store, dir }
    }

    /// The object key of the snapshot at `revision`.
    pub fn location(&self, revision: Revision) -> Path {
        self.dir.clone().join(format!("{:020}{SUFFIX}", revision.0))
    }

    fn parse(&self, location: &Path) -> Option<Revision> {
        let name = location.filename()?;
        let digits = name.strip_suffix(SUFFIX)?;
        (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse().ok().map(Revision))
            .flatten()
    }

    /// Revisions of every snapshot present, ascending.
    pub async fn list(&self) -> Result<Vec<Revision>> {
        let mut listing = self.store.list(Some(&self.dir));
        let mut out = Vec::new();
        while let Some(meta) = listing.next().await {
            if let Some(rev) = self.parse(&meta?.location) {
                out.push(rev);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// The newest snapshot's revision, if any.
    pub async fn latest(&self) -> Result<Option<Revision>> {
        Ok(self.list().await?.pop())
    }

    /// The snapshot at `revision`, if the store holds one (its size from the object's
    /// metadata).
    pub async fn find(&self, revision: Revision) -> Result<Option<SnapshotInfo>> {
        let location = self.location(revision);
        match self.store.head(&location).await {
            Ok(meta) => Ok(Some(SnapshotInfo {
                revision,
                location,
                size: meta.size,
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Streams `view` into the store. The view is immutable: readers and apply carry on;
    /// memory holds at most a few chunks of the encoded stream.
    pub async fn upload(&self, view: Arc<State>) -> Result<SnapshotInfo> {
        let revision = view.revision();
        let location = self.location(revision);
        let upload = self.store.put_multipart(&location).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, CHUNK_BYTES);
        let (tx, mut rx) = mpsc::channel::<Bytes>(2);
        let encoder = tokio::task::spawn_blocking(move || {
            let sink = ChunkSender {
                tx,
                buf: Vec::with_capacity(CHUNK_BYTES),
            };
            let mut sink = write_snapshot(&view, sink)?;
            sink.flush()?;
            Ok::<_, Error>(())
        });
        let mut size = 0u64;
        let mut failed = None;
        while let Some(chunk) = rx.recv().await {
            size += chunk.len() as u64;
            if let Err(e) = writer.wait_for_capacity(UPLOAD_CONCURRENCY).await {
                failed = Some(Error::from(e));
                break;
            }
            writer.put(chunk);
        }
        drop(rx); // stops the encoder if the upload failed
        let encoded = match encoder.await {
            Ok(encoded) => encoded,
            Err(e) => Err(Error::Io(io::Error::other(e))),
        };
        if let Some(e) = failed.or(encoded.err()) {
            // Leave no parts behind: an unfinished multipart upload is invisible but stored
            // (and billed) until aborted.
            if let Err(abort) = writer.abort().await {
                tracing::warn!(
                    location = %location, error = %abort,
                    "aborting the failed snapshot upload failed: its parts stay until the bucket's lifecycle rule removes them"
                );
            }
            return Err(e);
        }
        // `finish` aborts the upload itself when a part or the completion fails.
        writer.finish().await?;
        tracing::info!(revision = revision.0, size, location = %location, "snapshot uploaded");
        Ok(SnapshotInfo {
            revision,
            location,
            size,
        })
    }

    /// Streams the snapshot at `revision` down and decodes it into a new state (to be
    /// swapped in with [`crate::Materializer::replace`]).
    pub async fn download(&self, revision: Revision) -> Result<State> {
        self.download_with_progress(revision, |_, _| {}).await
    }

    /// [`Self::download`], calling `progress(bytes received, size of the object)` as the
    /// chunks arrive (for a progress bar or log line).
    pub async fn download_with_progress(
        &self,
        revision: Revision,
        mut progress: impl FnMut(u64, u64) + Send,
    ) -> Result<State> {
        self.download_observed(revision, |_, received, total| progress(received, total))
            .await
    }

    /// [`Self::download`], handing every chunk to `observe(chunk, bytes received, size of the
    /// object)` as it arrives, before it is decoded: a caller can keep a copy of the object
    /// (an edge keeps it as its local snapshot) without encoding the state again. What was
    /// observed is only a valid snapshot if this returns `Ok`.
    pub async fn download_observed(
        &self,
        revision: Revision,
        mut observe: impl FnMut(&Bytes, u64, u64) + Send,
    ) -> Result<State> {
        let location = self.location(revision);
        let object = self.store.get(&location).await?;
        let total = object.meta.size;
        // A local file is read here in large pieces: object_store streams it in 8 KiB reads,
        // each a blocking task of its own, which made a file:// restore slower than S3.
        let mut stream: futures::stream::BoxStream<'static, io::Result<Bytes>> =
            match object.payload {
                GetResultPayload::File(file, _) => file_pieces(file).boxed(),
                GetResultPayload::Stream(stream) => stream.map_err(io::Error::other).boxed(),
            };
        let mut received = 0u64;
        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
        let decoder = tokio::task::spawn_blocking(move || {
            read_snapshot(ChunkReader {
                rx,
                current: Bytes::new(),
            })
        });
        while let Some(chunk) = stream.next().await {
            if let Ok(bytes) = &chunk {
                received += bytes.len() as u64;
                observe(bytes, received, total);
            }
            let failed = chunk.is_err();
            // The decoder may have stopped early on corrupt data: then stop sending.
            if tx.send(chunk).await.is_err() || failed {
                break;
            }
        }
        drop(tx);
        let state = decoder
            .await
            .map_err(|e| Error::Io(io::Error::other(e)))??;
        if state.revision() != revision {
            return Err(Error::corrupted(
                "snapshot",
                format!("object {location} holds revision {}", state.revision()),
            ));
        }
        Ok(state)
    }

    /// Downloads the newest snapshot that loads, if any. A newest object that is damaged
    /// (fails its checksums) or gone since the listing is skipped for the one before it, with
    /// a warning; any other failure (the store is unreachable) is returned as it is.
    pub async fn download_latest(&self) -> Result<Option<State>> {
        let mut revisions = self.list().await?;
        while let Some(revision) = revisions.pop() {
            match self.download(revision).await {
                Ok(state) => return Ok(Some(state)),
                Err(e) if skippable(&e) && !revisions.is_empty() => {
                    tracing::warn!(
                        revision = revision.0,
                        error = %e,
                        "snapshot unusable; falling back to the previous one"
                    );
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }
}

/// Size of the pieces a local snapshot file is read in.
const DOWNLOAD_PIECE: usize = 1 << 20;

/// The contents of a local file as a stream of DOWNLOAD_PIECE-byte pieces, read on a blocking
/// thread a few pieces ahead of the consumer.
fn file_pieces(
    mut file: std::fs::File,
) -> impl futures::Stream<Item = io::Result<Bytes>> + Send + 'static {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        loop {
            let mut piece = BytesMut::zeroed(DOWNLOAD_PIECE);
            let mut filled = 0;
            let read = loop {
                match file.read(&mut piece[filled..]) {
                    Ok(0) => break Ok(()),
                    Ok(n) => {
                        filled += n;
                        if filled == piece.len() {
                            break Ok(());
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            piece.truncate(filled);
            let last = filled < DOWNLOAD_PIECE;
            let item = match read {
                Ok(()) if filled == 0 => return,
                Ok(()) => Ok(piece.freeze()),
                Err(e) => Err(e),
            };
            let failed = item.is_err();
            if tx.blocking_send(item).is_err() || failed || last {
                return;
            }
        }
    });
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

/// Whether a failed download means "this object is not a usable snapshot" (so an older one
/// may serve), as opposed to "the store cannot be read now".
fn skippable(e: &Error) -> bool {
    matches!(
        e,
        Error::Corrupted { .. } | Error::ObjectStore(object_store::Error::NotFound { .. })
    )
}

/// A `Write` that hands fixed-size chunks to the async uploader.
struct ChunkSender {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

impl ChunkSender {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(CHUNK_BYTES),
        ));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| io::Error::other("snapshot upload stopped"))
    }
}

impl Write for ChunkSender {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = CHUNK_BYTES - self.buf.len();
        let n = room.min(buf.len());
        self.buf.extend_from_slice(&buf[..n]);
        if self.buf.len() == CHUNK_BYTES {
            self.send()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// A `Read` over chunks arriving from the async download.
struct ChunkReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk?,
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len());
        out[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::PutPayload;
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn a_damaged_newest_snapshot_falls_back_to_the_previous_one() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let snaps = SnapshotStore::new(store.clone(), "c");
        let good = snaps.upload(Arc::new(State::new())).await.expect("upload");
        store
            .put(
                &snaps.location(Revision(7)),
                PutPayload::from_static(b"half an object"),
            )
            .await
            .expect("put");
        assert_eq!(snaps.latest().await.expect("list"), Some(Revision(7)));
        let loaded = snaps
            .download_latest()
            .await
            .expect("falls back")
            .expect("a snapshot");
        assert_eq!(loaded.revision(), good.revision);

        let only_damaged = SnapshotStore::new(store.clone(), "d");
        store
            .put(
                &only_damaged.location(Revision(3)),
                PutPayload::from_static(b"junk"),
            )
            .await
            .expect("put");
        assert!(
            only_damaged.download_latest().await.is_err(),
            "nothing usable is an error, not an empty store"
        );
    }
}
