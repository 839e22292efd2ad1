//! The segment archive in object storage: sealed log segments, zstd-packed, one object each.
//!
//! # Object layout (everything of one cluster lives under its prefix)
//!
//! ```text
//! <prefix>/segments/<first index, 20 digits>.seg.zst    one sealed segment (this type)
//! <prefix>/snapshots/<revision, 20 digits>.snap.zst     one snapshot (materializer's SnapshotStore)
//! e.g.    segments/00000000000000004097.seg.zst
//! ```
//!
//! An archive object is `regatta_log::archive`'s format: a 44-byte header (magic, version,
//! first and last index, length and CRC32C of the segment, header CRC32C) and one zstd frame
//! holding the segment file byte for byte, whose frames carry their own CRC32C. Keys are
//! zero-padded so a listing sorts in log order, and immutable: an object is written once,
//! with a create-only put where the store supports it, and never rewritten. The header alone
//! (one range read) tells which entries an object holds.
//!
//! Archives of different nodes may start at different indices (segment boundaries are a
//! node's own), so two objects may overlap; readers take every index once, from the first
//! object that holds it. A gap between objects is a fault [`SegmentArchive::coverage`]
//! reports. Objects under `segments/` whose names do not match the pattern are ignored.

use std::{ops::RangeInclusive, path::PathBuf, sync::Arc};

use anyhow::{Context, Result};
use bytes::Bytes;
use futures::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, path::Path};
use regatta_log::{
    LogIndex, SegmentId,
    archive::{Unpacked, archive_name, unpack},
    reader::{ARCHIVE_HEADER_LEN, SegmentRecords, archive_span},
};

const SUFFIX: &str = ".seg.zst";

/// One archived segment as listed: its key, first and last index, size in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedSegment {
    pub location: Path,
    pub id: SegmentId,
    pub last: LogIndex,
    pub size: u64,
}

/// How an upload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// This call wrote the object.
    Written,
    /// An object with this key was there already (another node archived it first); its
    /// header says it holds entries up to this index.
    Present { last: LogIndex },
}

/// The archived segments of one cluster under one prefix of an object store.
#[derive(Debug, Clone)]
pub struct SegmentArchive {
    store: Arc<dyn ObjectStore>,
    dir: Path,
}

impl SegmentArchive {
    /// Segments under `<prefix>/segments/`; an empty prefix means the bucket root.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> Self {
        let dir = if prefix.is_empty() {
            Path::from("segments")
        } else {
            Path::from(prefix).join("segments")
        };
        Self { store, dir }
    }

    /// The object store underneath.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// The key of the archive of the segment starting at `id`.
    pub fn location(&self, id: SegmentId) -> Path {
        self.dir.clone().join(archive_name(id))
    }

    fn parse(location: &Path) -> Option<SegmentId> {
        let digits = location.filename()?.strip_suffix(SUFFIX)?;
        (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse().ok().map(|n| SegmentId(LogIndex(n))))
            .flatten()
    }

    /// Keys and sizes of every archived segment, in log order (no header reads).
    pub async fn keys(&self) -> Result<Vec<(SegmentId, Path, u64)>> {
        let mut listing = self.store.list(Some(&self.dir));
        let mut out = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.with_context(|| format!("listing {}", self.dir))?;
            if let Some(id) = Self::parse(&meta.location) {
                out.push((id, meta.location, meta.size));
            }
        }
        out.sort_by_key(|(id, _, _)| *id);
        Ok(out)
    }

    /// What the object at `location` holds, from its header (one range read).
    pub async fn span_of(&self, location: &Path) -> Result<(SegmentId, LogIndex)> {
        let header = self
            .store
            .get_range(location, 0..ARCHIVE_HEADER_LEN as u64)
            .await
            .with_context(|| format!("reading the header of {location}"))?;
        Ok(archive_span(&PathBuf::from(location.to_string()), &header)?)
    }

    /// Every archived segment with the span its header claims, in log order.
    pub async fn list(&self) -> Result<Vec<ArchivedSegment>> {
        let mut out = Vec::new();
        for (id, location, size) in self.keys().await? {
            let (header_id, last) = self.span_of(&location).await?;
            if header_id != id {
                anyhow::bail!(
                    "{location}: the header says the segment starts at {}, the key says {}",
                    header_id.first_index(),
                    id.first_index()
                );
            }
            out.push(ArchivedSegment {
                location,
                id,
                last,
                size,
            });
        }
        Ok(out)
    }

    /// Uploads one packed segment under its key, never replacing an object already there.
    pub async fn put(&self, id: SegmentId, packed: Vec<u8>) -> Result<Put> {
        let location = self.location(id);
        let create = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        let payload = PutPayload::from(Bytes::from(packed));
        match self
            .store
            .put_opts(&location, payload.clone(), create)
            .await
        {
            Ok(_) => Ok(Put::Written),
            Err(object_store::Error::AlreadyExists { .. }) => {
                let (_, last) = self.span_of(&location).await?;
                Ok(Put::Present { last })
            }
            Err(object_store::Error::NotImplemented { .. }) => {
                // A store without create-only puts: look first (a race writes the same
                // entries under the same key, which is harmless).
                if self.store.head(&location).await.is_ok() {
                    let (_, last) = self.span_of(&location).await?;
                    return Ok(Put::Present { last });
                }
                self.store
                    .put(&location, payload)
                    .await
                    .with_context(|| format!("uploading {location}"))?;
                Ok(Put::Written)
            }
            Err(e) => Err(anyhow::Error::new(e).context(format!("uploading {location}"))),
        }
    }

    /// Downloads and checks one archived segment completely (every checksum, contiguity).
    pub async fn get(&self, location: &Path) -> Result<Unpacked> {
        let bytes = self
            .store
            .get(location)
            .await
            .with_context(|| format!("downloading {location}"))?
            .bytes()
            .await
            .with_context(|| format!("downloading {location}"))?;
        let origin = PathBuf::from(location.to_string());
        tokio::task::spawn_blocking(move || unpack(&origin, &bytes))
            .await
            .context("unpacking task")?
            .with_context(|| format!("checking {location}"))
    }

    /// Downloads one archived segment and indexes its records.
    pub async fn records(&self, segment: &ArchivedSegment) -> Result<SegmentRecords> {
        let unpacked = self.get(&segment.location).await?;
        let origin = PathBuf::from(segment.location.to_string());
        Ok(SegmentRecords::check(
            &origin,
            unpacked.id,
            Bytes::from(unpacked.segment),
            false,
        )?)
    }

    /// Deletes one archived segment (retention); a missing object is fine.
    pub async fn delete(&self, location: &Path) -> Result<()> {
        match self.store.delete(location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(anyhow::Error::new(e).context(format!("deleting {location}"))),
        }
    }
}

/// The ranges of indices the listed segments cover without a gap, in order: where one
/// range ends and the next begins there is a hole in the archive.
pub fn coverage(segments: &[ArchivedSegment]) -> Vec<RangeInclusive<u64>> {
    let mut out: Vec<RangeInclusive<u64>> = Vec::new();
    for s in segments {
        let (first, last) = (s.id.first_index().0, s.last.0);
        match out.last_mut() {
            Some(r) if first <= r.end().saturating_add(1) => {
                if last > *r.end() {
                    *r = *r.start()..=last;
                }
            }
            _ => out.push(first..=last),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;
    use object_store::memory::InMemory;
    use regatta_log::{EntryId, Log, NodeId, Options, Record, RecordKind, Term};

    fn seg(first: u64, last: u64) -> ArchivedSegment {
        ArchivedSegment {
            location: Path::from("x"),
            id: SegmentId(LogIndex(first)),
            last: LogIndex(last),
            size: 0,
        }
    }

    #[test]
    fn coverage_merges_overlaps_and_shows_gaps() {
        assert_eq!(
            coverage(&[seg(1, 10), seg(11, 20), seg(15, 30), seg(40, 50)]),
            vec![1..=30, 40..=50]
        );
        assert!(coverage(&[]).is_empty());
    }

    #[tokio::test]
    async fn segments_round_trip_and_are_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(
            dir.path(),
            Options {
                segment_bytes: 300,
                ..Default::default()
            },
        )
        .unwrap();
        for i in 1..=30u64 {
            let r = Record::new(
                EntryId::new(LogIndex(i), Term(1), NodeId(1)),
                RecordKind::Normal,
                vec![7u8; 20],
            );
            log.append_blocking(vec![r]).unwrap();
        }
        let archive = SegmentArchive::new(Arc::new(InMemory::new()), "cluster");
        for s in log.sealed_segments() {
            let packed = regatta_log::archive::pack_file(&s.path, 1).unwrap();
            assert_eq!(
                archive.put(s.id, packed.clone()).await.unwrap(),
                Put::Written
            );
            assert_eq!(
                archive.put(s.id, packed).await.unwrap(),
                Put::Present { last: s.last.index }
            );
        }
        let listed = archive.list().await.unwrap();
        assert_eq!(listed.len(), log.sealed_segments().len());
        assert!(
            listed[0]
                .location
                .to_string()
                .starts_with("cluster/segments/0000")
        );
        let records = archive.records(&listed[1]).await.unwrap();
        assert_eq!(records.first_index(), listed[1].id.first_index());
        assert_eq!(coverage(&listed).len(), 1);
    }
}
