//! `regatta log verify`: every local segment, every archived segment and every snapshot,
//! checked end to end; the first fault ends the run with its location.
//!
//! - local segments: header, every frame's CRC32C, index contiguity inside and across
//!   files, terms never decreasing; a torn frame is accepted only at the very end of the
//!   last (open) segment, where a live node may be writing;
//! - archived segments: the header's checksum and span, the decompressed segment's length
//!   and CRC32C, every frame as above, the key matching the first index, and no gap
//!   between consecutive objects;
//! - holes: indices missing from the archive, recorded by an archiver that found objects
//!   gone (`holes/` in the store) or visible as a missing beginning (an archive that starts
//!   after index 1 with no snapshot at or below its start): a fault naming the indices;
//! - snapshots in the object store: decoded completely (zstd checksum, CRC32C trailer,
//!   revision matching the key); Raft snapshot files in `raft-snapshots/`: CRC32C and
//!   format.

use std::path::Path;

use regatta_archive::{SegmentArchive, objects::ObjectStorage};
use regatta_materializer::Revision;

use crate::client::{CliResult, Failure};
use crate::progress::Progress;

use super::{LocalLog, Sources, archive_of, snapshots_of};

pub async fn run(sources: &Sources) -> CliResult {
    let (local, objects) = sources.resolve()?;
    if local.is_none() && objects.is_none() {
        return Err(Failure::usage("nothing to verify"));
    }
    let mut summary = Vec::new();
    if let Some(local) = &local {
        summary.push(local_segments(local)?);
        let snap_dir = local.dir.parent().map(|d| d.join("raft-snapshots"));
        if let Some(snap_dir) = snap_dir.filter(|d| d.is_dir()) {
            summary.push(raft_snapshot_files(&snap_dir)?);
        }
    }
    if let Some(objects) = &objects {
        let archive = archive_of(objects);
        let (spans, archived) = archived_segments(&archive).await?;
        summary.push(archived);
        let (revisions, snapshots) = object_snapshots(objects).await?;
        summary.push(snapshots);
        let markers = archive
            .holes()
            .await
            .map_err(|e| Failure::fault(format!("{e:#}")))?;
        let holes = regatta_archive::store_holes(revisions.first().map(|r| r.0), &spans, &markers);
        if !holes.is_empty() {
            return Err(Failure::fault(format!(
                "fault: the archive has holes: indices {} are missing from it (they cannot be replayed, and no restore reaches past them without a later snapshot)",
                regatta_archive::describe(&holes)
            )));
        }
    }
    crate::outln!("ok: {}", summary.join(", "));
    Ok(())
}

/// `", indices f..=l"` when a first and a last index are known.
fn indices(first: Option<u64>, last: Option<u64>) -> String {
    match (first, last) {
        (Some(f), Some(l)) => format!(", indices {f}..={l}"),
        _ => String::new(),
    }
}

/// Every local segment: frames, contiguity inside and across files, terms. The summary.
fn local_segments(local: &LocalLog) -> CliResult<String> {
    let dir = &local.dir;
    let reader = local.reader()?;
    let mut progress = Progress::new(
        "verify local segments",
        "segments",
        Some(reader.segments().len() as u64),
    );
    let mut prev: Option<(regatta_log::SegmentId, u64)> = None;
    let mut first = None;
    for id in reader.segments() {
        let seg = reader
            .read_segment(*id)
            .map_err(|e| Failure::fault(format!("fault: {e}")))?;
        if let (Some((prev_id, prev_last)), Some(_)) = (prev, seg.last)
            && id.first_index().0 != prev_last + 1
        {
            return Err(Failure::fault(format!(
                "fault: {}: starts at index {}, but {} ends at {prev_last}",
                dir.join(id.file_name()).display(),
                id.first_index(),
                prev_id.file_name()
            )));
        }
        if let Some(last) = seg.last {
            first.get_or_insert(id.first_index().0);
            prev = Some((*id, last.index.0));
        }
        progress.inc(1);
    }
    progress.finish();
    Ok(format!(
        "{} local segment(s){}",
        reader.segments().len(),
        indices(first, prev.map(|p| p.1))
    ))
}

/// Every `.rsnap` file in `raft-snapshots/`, decoded completely. The summary.
fn raft_snapshot_files(snap_dir: &Path) -> CliResult<String> {
    let mut entries: Vec<_> = std::fs::read_dir(snap_dir)
        .map_err(|e| Failure::fault(format!("{}: {e}", snap_dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rsnap"))
        .collect();
    entries.sort();
    for path in &entries {
        let bytes =
            std::fs::read(path).map_err(|e| Failure::fault(format!("{}: {e}", path.display())))?;
        regatta_core::durable::decode(&bytes)
            .map_err(|e| Failure::fault(format!("fault: {}: {e:#}", path.display())))?;
    }
    Ok(format!("{} local raft snapshot file(s)", entries.len()))
}

/// Every archived segment, unpacked and checked against its key and its predecessor. The
/// spans found (for the hole check) and the summary.
async fn archived_segments(
    archive: &SegmentArchive,
) -> CliResult<(Vec<regatta_archive::ArchivedSegment>, String)> {
    let keys = archive
        .keys()
        .await
        .map_err(|e| Failure::fault(format!("{e:#}")))?;
    let mut progress = Progress::new(
        "verify archived segments",
        "segments",
        Some(keys.len() as u64),
    );
    let mut prev: Option<(String, u64)> = None;
    let mut first = None;
    let mut spans = Vec::new();
    for (id, location, size) in &keys {
        let unpacked = archive
            .get(location)
            .await
            .map_err(|e| Failure::fault(format!("fault: {location}: {e:#}")))?;
        if unpacked.id != *id {
            return Err(Failure::fault(format!(
                "fault: {location}: holds a segment starting at {}, the key says {}",
                unpacked.id.first_index(),
                id.first_index()
            )));
        }
        if let Some((prev_location, prev_last)) = &prev
            && id.first_index().0 > prev_last + 1
        {
            return Err(Failure::fault(format!(
                "fault: {location}: starts at index {}, but {prev_location} ends at {prev_last}: indices {}..={} are missing from the archive",
                id.first_index(),
                prev_last + 1,
                id.first_index().0 - 1
            )));
        }
        first.get_or_insert(id.first_index().0);
        spans.push(regatta_archive::ArchivedSegment {
            location: location.clone(),
            id: *id,
            last: unpacked.last,
            size: *size,
        });
        let last = prev.as_ref().map_or(0, |p| p.1).max(unpacked.last.0);
        prev = Some((location.to_string(), last));
        progress.inc(1);
    }
    progress.finish();
    let summary = format!(
        "{} archived segment(s){}",
        keys.len(),
        indices(first, prev.map(|p| p.1))
    );
    Ok((spans, summary))
}

/// Every snapshot in the object store, downloaded and decoded. Their revisions, oldest
/// first, and the summary.
async fn object_snapshots(objects: &ObjectStorage) -> CliResult<(Vec<Revision>, String)> {
    let snapshots = snapshots_of(objects);
    let revisions = snapshots
        .list()
        .await
        .map_err(|e| Failure::fault(format!("{e:#}")))?;
    let mut progress = Progress::new(
        "verify snapshots",
        "snapshots",
        Some(revisions.len() as u64),
    );
    for rev in &revisions {
        snapshots
            .download(*rev)
            .await
            .map_err(|e| Failure::fault(format!("fault: {}: {e:#}", snapshots.location(*rev))))?;
        progress.inc(1);
    }
    progress.finish();
    let summary = format!("{} snapshot(s)", revisions.len());
    Ok((revisions, summary))
}
