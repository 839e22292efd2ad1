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
//!
//! # Holes
//!
//! An object can vanish from under a running cluster (a deleted directory or bucket, a
//! lifecycle rule). Each core's archiver lists the store now and then and compares it with
//! the objects it knows are there ([`plan_repair`]): what its log still holds it uploads
//! again; what nobody here holds any more is a **hole**, recorded as a marker object
//!
//! ```text
//! <prefix>/holes/<first index, 20 digits>-<last index, 20 digits>   e.g. holes/00000000000000000001-00000000000000000340
//! ```
//!
//! so that `regatta log verify` and `regatta backup list` report it ([`store_holes`]) even
//! after the gap itself has become invisible (a new snapshot above it). An operator who has
//! accepted the loss deletes the marker.

use std::{ops::RangeInclusive, path::PathBuf, sync::Arc};

use crate::error::{Error, Result};
use bytes::Bytes;
use futures::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, path::Path};
use regatta_log::{
    LogIndex, SegmentId,
    archive::{Unpacked, archive_name, unpack},
    reader::{ARCHIVE_HEADER_LEN, SegmentRecords, archive_span},
};

const SUFFIX: &str = ".seg.zst";
const HOLES: &str = "holes";

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
    holes: Path,
}

impl SegmentArchive {
    /// Segments under `<prefix>/segments/`; an empty prefix means the bucket root.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> Self {
        let (dir, holes) = if prefix.is_empty() {
            (Path::from("segments"), Path::from(HOLES))
        } else {
            (
                Path::from(prefix).join("segments"),
                Path::from(prefix).join(HOLES),
            )
        };
        Self { store, dir, holes }
    }

    /// Records that `indices` are missing from the archive for good (a marker object; see
    /// the module docs). Writing the same marker twice is harmless.
    pub async fn record_hole(&self, indices: &RangeInclusive<u64>, note: &str) -> Result<()> {
        let location =
            self.holes
                .clone()
                .join(format!("{:020}-{:020}", indices.start(), indices.end()));
        self.store
            .put(&location, PutPayload::from(note.as_bytes().to_vec()))
            .await
            .map_err(|e| Error::store(format!("writing {location}"), e))?;
        Ok(())
    }

    /// The holes recorded in the store, ascending. Objects under `holes/` whose names do
    /// not match the pattern are ignored.
    pub async fn holes(&self) -> Result<Vec<RangeInclusive<u64>>> {
        let mut listing = self.store.list(Some(&self.holes));
        let mut out = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| Error::store(format!("listing {}", self.holes), e))?;
            let parsed = meta.location.filename().and_then(|name| {
                let (a, b) = name.split_once('-')?;
                let digits = |d: &str| d.len() == 20 && d.bytes().all(|b| b.is_ascii_digit());
                (digits(a) && digits(b)).then_some(())?;
                let (a, b) = (a.parse::<u64>().ok()?, b.parse::<u64>().ok()?);
                (a <= b).then_some(a..=b)
            });
            out.extend(parsed);
        }
        out.sort_by_key(|r| (*r.start(), *r.end()));
        Ok(out)
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
            let meta = meta.map_err(|e| Error::store(format!("listing {}", self.dir), e))?;
            if let Some(id) = Self::parse(&meta.location) {
                out.push((id, meta.location, meta.size));
            }
        }
        out.sort_by_key(|(id, _, _)| *id);
        Ok(out)
    }

    /// Whether the archive object of the segment starting at `id` is in the store.
    pub async fn exists(&self, id: SegmentId) -> Result<bool> {
        let location = self.location(id);
        match self.store.head(&location).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(Error::store(format!("looking for {location}"), e)),
        }
    }

    /// What the object at `location` holds, from its header (one range read).
    pub async fn span_of(&self, location: &Path) -> Result<(SegmentId, LogIndex)> {
        let header = self
            .store
            .get_range(location, 0..ARCHIVE_HEADER_LEN as u64)
            .await
            .map_err(|e| Error::store(format!("reading the header of {location}"), e))?;
        Ok(archive_span(&PathBuf::from(location.to_string()), &header)?)
    }

    /// Every archived segment with the span its header claims, in log order.
    pub async fn list(&self) -> Result<Vec<ArchivedSegment>> {
        let mut out = Vec::new();
        for (id, location, size) in self.keys().await? {
            let (header_id, last) = self.span_of(&location).await?;
            if header_id != id {
                return Err(Error::Corrupted {
                    location: location.to_string(),
                    reason: format!(
                        "the header says the segment starts at {}, the key says {}",
                        header_id.first_index(),
                        id.first_index()
                    ),
                });
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
                    .map_err(|e| Error::store(format!("uploading {location}"), e))?;
                Ok(Put::Written)
            }
            Err(e) => Err(Error::store(format!("uploading {location}"), e)),
        }
    }

    /// Downloads and checks one archived segment completely (every checksum, contiguity).
    pub async fn get(&self, location: &Path) -> Result<Unpacked> {
        let bytes = self
            .store
            .get(location)
            .await
            .map_err(|e| Error::store(format!("downloading {location}"), e))?
            .bytes()
            .await
            .map_err(|e| Error::store(format!("downloading {location}"), e))?;
        let origin = PathBuf::from(location.to_string());
        Ok(tokio::task::spawn_blocking(move || unpack(&origin, &bytes))
            .await
            .map_err(|source| Error::Task {
                what: "unpacking a segment",
                source,
            })??)
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
            Err(e) => Err(Error::store(format!("deleting {location}"), e)),
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

/// `ranges` sorted and with overlapping or adjacent ranges merged.
fn merged(mut ranges: Vec<RangeInclusive<u64>>) -> Vec<RangeInclusive<u64>> {
    ranges.sort_by_key(|r| (*r.start(), *r.end()));
    let mut out: Vec<RangeInclusive<u64>> = Vec::new();
    for r in ranges {
        match out.last_mut() {
            Some(last) if *r.start() <= last.end().saturating_add(1) => {
                if r.end() > last.end() {
                    *last = *last.start()..=*r.end();
                }
            }
            _ => out.push(r),
        }
    }
    out
}

/// The parts of `range` outside `cover` (`cover` sorted, non-overlapping).
fn minus(range: &RangeInclusive<u64>, cover: &[RangeInclusive<u64>]) -> Vec<RangeInclusive<u64>> {
    let mut out = Vec::new();
    let mut next = *range.start();
    for c in cover {
        if *c.end() < next {
            continue;
        }
        if *c.start() > *range.end() {
            break;
        }
        if *c.start() > next {
            out.push(next..=c.start() - 1);
        }
        next = c.end().saturating_add(1);
        if next > *range.end() || *c.end() == u64::MAX {
            return out;
        }
    }
    if next <= *range.end() {
        out.push(next..=*range.end());
    }
    out
}

/// What an archiver does about objects gone from the store: see [`plan_repair`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Repair {
    /// How many known objects are gone.
    pub missing_objects: usize,
    /// Indices this node's log still holds: upload them again.
    pub reupload: Vec<RangeInclusive<u64>>,
    /// Indices nobody here holds any more: holes in the archive.
    pub lost: Vec<RangeInclusive<u64>>,
}

/// Compares the objects this node knows are archived (`known`: the span of each) with the
/// first indices of the objects `listed` now. A known object not listed is missing, unless
/// it lies wholly at or below `retained_below` (the oldest snapshot in the store, 0 if
/// none), where retention deletes segments on purpose. Of the missing indices, those in
/// `local` (what this node's sealed, applied segments hold) are to be uploaded again; the
/// rest are lost. Pure.
pub fn plan_repair(
    known: &[RangeInclusive<u64>],
    listed: &[u64],
    retained_below: u64,
    local: Option<RangeInclusive<u64>>,
) -> Repair {
    let missing: Vec<RangeInclusive<u64>> = known
        .iter()
        .filter(|k| *k.end() > retained_below && listed.binary_search(k.start()).is_err())
        .cloned()
        .collect();
    let missing_objects = missing.len();
    let missing = merged(missing);
    let local: Vec<RangeInclusive<u64>> = local.into_iter().collect();
    let lost = missing.iter().flat_map(|m| minus(m, &local)).collect();
    let reupload = missing
        .iter()
        .flat_map(|m| {
            local.iter().filter_map(move |l| {
                let (a, b) = ((*m.start()).max(*l.start()), (*m.end()).min(*l.end()));
                (a <= b).then_some(a..=b)
            })
        })
        .collect();
    Repair {
        missing_objects,
        reupload,
        lost,
    }
}

/// The holes of an archive as the store alone shows them, ascending and merged: the holes
/// recorded by archivers (`markers`), gaps between the `segments`' coverage, and a missing
/// beginning: with no snapshot the archive must start at index 1 (or 0), with snapshots
/// just after the oldest one (retention deletes what lies below it). An archive with no
/// segment yet has no hole of its own. Pure.
pub fn store_holes(
    oldest_snapshot: Option<u64>,
    segments: &[ArchivedSegment],
    markers: &[RangeInclusive<u64>],
) -> Vec<RangeInclusive<u64>> {
    let covered = coverage(segments);
    let mut holes: Vec<RangeInclusive<u64>> = markers.to_vec();
    if let Some(first) = covered.first() {
        let must_start = oldest_snapshot.map_or(1, |s| s.saturating_add(1));
        if *first.start() > must_start.max(1) {
            holes.push(must_start..=first.start() - 1);
        }
    }
    for pair in covered.windows(2) {
        holes.push(pair[0].end() + 1..=pair[1].start() - 1);
    }
    merged(holes)
}

/// `ranges` as `a..=b, c..=d` for messages.
pub fn describe(ranges: &[RangeInclusive<u64>]) -> String {
    ranges
        .iter()
        .map(|r| format!("{}..={}", r.start(), r.end()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;
    use object_store::memory::InMemory;
    use regatta_log::{EntryId, Log, NodeId, Options, Record, RecordKind, Term};

    /// An archived segment of entries `first..=last` (location and size do not matter).
    pub(crate) fn seg(first: u64, last: u64) -> ArchivedSegment {
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

    #[test]
    fn nothing_missing_nothing_to_repair() {
        let known = [1..=10, 11..=20, 21..=30];
        assert_eq!(
            plan_repair(&known, &[1, 11, 21], 0, Some(5..=40)),
            Repair::default()
        );
    }

    #[test]
    fn missing_objects_the_log_holds_are_uploaded_again_the_rest_are_holes() {
        let known = [1..=10, 11..=20, 21..=30, 31..=40];
        // The whole store gone; the log holds 15..=45 (purged below 15).
        assert_eq!(
            plan_repair(&known, &[], 0, Some(15..=45)),
            Repair {
                missing_objects: 4,
                reupload: vec![15..=40],
                lost: vec![1..=14],
            }
        );
        // One object in the middle gone, still in the log.
        assert_eq!(
            plan_repair(&known, &[1, 21, 31], 0, Some(5..=45)),
            Repair {
                missing_objects: 1,
                reupload: vec![11..=20],
                lost: vec![],
            }
        );
        // Two objects gone, the log holds neither.
        assert_eq!(
            plan_repair(&known, &[1, 31], 0, Some(35..=45)),
            Repair {
                missing_objects: 2,
                reupload: vec![],
                lost: vec![11..=30],
            }
        );
        // No local log at all.
        assert_eq!(
            plan_repair(&known, &[1, 11, 31], 0, None).lost,
            vec![21..=30]
        );
    }

    #[test]
    fn objects_retention_may_delete_are_not_missing() {
        let known = [1..=10, 11..=20, 21..=30];
        // Oldest snapshot 20: the first two objects may be gone, the third may not.
        assert_eq!(plan_repair(&known, &[21], 20, None), Repair::default());
        assert_eq!(plan_repair(&known, &[], 20, None).lost, vec![21..=30]);
        // A snapshot inside an object does not excuse it.
        assert_eq!(plan_repair(&known, &[21], 15, None).lost, vec![11..=20]);
    }

    #[test]
    fn store_holes_show_a_missing_start_gaps_and_markers() {
        // Complete from the first index.
        assert!(store_holes(None, &[seg(1, 10), seg(11, 20)], &[]).is_empty());
        assert!(store_holes(None, &[seg(0, 10)], &[]).is_empty());
        // The beginning gone, no snapshot to start from.
        assert_eq!(store_holes(None, &[seg(41, 60)], &[]), vec![1..=40]);
        // Retention: the archive starts at the segment holding the oldest snapshot + 1.
        assert!(store_holes(Some(45), &[seg(41, 60)], &[]).is_empty());
        assert!(store_holes(Some(40), &[seg(41, 60)], &[]).is_empty());
        assert_eq!(store_holes(Some(30), &[seg(41, 60)], &[]), vec![31..=40]);
        // A gap, and a recorded hole next to it.
        assert_eq!(
            store_holes(None, &[seg(1, 10), seg(21, 30)], &[5..=10, 30..=35]),
            vec![5..=20, 30..=35]
        );
        // Nothing archived yet.
        assert!(store_holes(Some(9), &[], &[]).is_empty());
        assert_eq!(store_holes(None, &[], &[3..=4]), vec![3..=4]);
    }

    #[test]
    fn minus_cuts_ranges() {
        assert_eq!(minus(&(1..=10), &[]), vec![1..=10]);
        assert_eq!(minus(&(1..=10), &[3..=4, 8..=20]), vec![1..=2, 5..=7]);
        assert!(minus(&(1..=10), &[0..=10]).is_empty());
        assert_eq!(minus(&(5..=10), &[0..=2]), vec![5..=10]);
    }

    #[tokio::test]
    async fn hole_markers_round_trip() {
        let archive = SegmentArchive::new(Arc::new(InMemory::new()), "c");
        assert!(archive.holes().await.unwrap().is_empty());
        archive.record_hole(&(41..=60), "lost").await.unwrap();
        archive.record_hole(&(1..=20), "lost").await.unwrap();
        archive.record_hole(&(1..=20), "lost again").await.unwrap();
        assert_eq!(archive.holes().await.unwrap(), vec![1..=20, 41..=60]);
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
