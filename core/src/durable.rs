//! Keeps the core's Raft snapshots on disk, so a node whose log was compacted behind a
//! snapshot restarts from that snapshot plus the rest of its log.
//!
//! Wraps the materializer's state machine: every snapshot it builds, and every snapshot a
//! leader installs here, is written to `<data-dir>/raft-snapshots/` before openraft learns of
//! it (and so before openraft may purge the log behind it). On start the newest intact file
//! is installed first.
//!
//! File `<last log index, 20 digits>.rsnap`:
//!
//! ```text
//! magic "RGTRSNP\0" | version u32 LE (1) | meta length u32 LE | meta (regatta.raft.v1.SnapshotMeta)
//! | data length u64 LE | data (the materializer's snapshot format) | CRC32C u32 LE of all before
//! ```
//!
//! Written to a temporary file, fsync'd, renamed, directory fsync'd. On a full disk the write
//! waits for space and retries (a failure here would stop openraft for good).

use std::{io::Cursor, path::PathBuf};

use openraft::{
    LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
    storage::{RaftStateMachine, Snapshot},
};
use regatta_log::SnapshotDir;
use regatta_materializer::{
    ApplyResponse,
    raft::{SnapshotBuilder, StateMachine, TypeConfig},
};
use regatta_proto::raft as raft_codec;

use crate::error::{Error, Result};

const MAGIC: &[u8; 8] = b"RGTRSNP\0";
const VERSION: u32 = 1;
const SUFFIX: &str = ".rsnap";
/// Snapshot files kept; older ones are deleted after a new one is written.
const KEEP: usize = 2;

type NodeId = u64;
type Node = openraft::BasicNode;
/// A snapshot's metadata and its data, as stored in one file.
type Loaded = (SnapshotMeta<NodeId, Node>, Vec<u8>);

/// Encodes a snapshot file.
pub fn encode(meta: &SnapshotMeta<NodeId, Node>, data: &[u8]) -> Vec<u8> {
    let meta = raft_codec::encode_snapshot_meta(meta);
    let mut out = Vec::with_capacity(8 + 4 + 4 + meta.len() + 8 + data.len() + 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&u32::try_from(meta.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&meta);
    out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    out.extend_from_slice(data);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes and verifies a snapshot file; [`Error::Corrupted`] names what is wrong.
pub fn decode(bytes: &[u8]) -> Result<Loaded> {
    let bad = |reason: String| Error::corrupted("raft snapshot file", reason);
    let Some((body, crc)) = bytes.split_last_chunk::<4>() else {
        return Err(bad("shorter than a checksum".into()));
    };
    if crc32c::crc32c(body) != u32::from_le_bytes(*crc) {
        return Err(bad("checksum mismatch".into()));
    }
    let mut at = 0usize;
    let mut take = |n: usize| -> Result<&[u8]> {
        let end = at
            .checked_add(n)
            .filter(|e| *e <= body.len())
            .ok_or_else(|| bad("truncated".into()))?;
        let slice = &body[at..end];
        at = end;
        Ok(slice)
    };
    if take(8)? != MAGIC {
        return Err(bad("not a raft snapshot file (bad magic)".into()));
    }
    let version = u32::from_le_bytes(fixed(take(4)?)?);
    if version != VERSION {
        return Err(bad(format!(
            "raft snapshot file version {version} is not supported (this build reads {VERSION})"
        )));
    }
    let meta_len = u32::from_le_bytes(fixed(take(4)?)?) as usize;
    let meta = raft_codec::decode_snapshot_meta(take(meta_len)?)
        .map_err(|e| bad(format!("invalid snapshot meta: {e}")))?;
    let data_len = usize::try_from(u64::from_le_bytes(fixed(take(8)?)?))
        .map_err(|_| bad("data length does not fit in memory".into()))?;
    let data = take(data_len)?.to_vec();
    if at != body.len() {
        return Err(bad(format!(
            "{} unexpected bytes after the data",
            body.len() - at
        )));
    }
    Ok((meta, data))
}

/// A slice of `N` bytes as an array (`take` returned exactly `N`).
fn fixed<const N: usize>(bytes: &[u8]) -> Result<[u8; N]> {
    bytes
        .try_into()
        .map_err(|_| Error::corrupted("raft snapshot file", "truncated field"))
}

/// The snapshot files of one node: `<last log index, 20 digits>.rsnap`, the newest few kept.
#[derive(Debug, Clone)]
pub struct SnapshotFiles {
    dir: SnapshotDir,
}

impl SnapshotFiles {
    pub fn open(dir: PathBuf) -> Result<Self> {
        Ok(Self {
            dir: SnapshotDir::open(dir, SUFFIX, KEEP)?,
        })
    }

    /// Writes one snapshot durably, then deletes all but the newest few.
    pub fn save(&self, meta: &SnapshotMeta<NodeId, Node>, data: &[u8]) -> Result<()> {
        let index = meta.last_log_id.map_or(0, |l| l.index);
        Ok(self.dir.save(index, &encode(meta, data))?)
    }

    /// The newest intact snapshot; damaged files are skipped with a warning.
    pub fn load_newest(&self) -> Result<Option<Loaded>> {
        let loaded = self.dir.load_newest(|path| {
            std::fs::read(path)
                .map_err(|source| Error::Io {
                    path: path.to_path_buf(),
                    source,
                })
                .and_then(|b| decode(&b))
        })?;
        Ok(loaded.map(|(_, found)| found))
    }
}

fn io_error(
    meta: Option<&SnapshotMeta<NodeId, Node>>,
    e: &dyn std::fmt::Display,
) -> StorageError<NodeId> {
    let e = std::io::Error::other(e.to_string());
    StorageIOError::write_snapshot(meta.map(|m| m.signature()), &e).into()
}

/// The materializer's state machine with its snapshots kept on disk.
#[derive(Clone)]
pub struct DurableStateMachine {
    inner: StateMachine,
    files: SnapshotFiles,
    /// Set when appends are told flushed before their fsync: an entry is
    /// applied only once it is durable in this node's log.
    durability: Option<regatta_log::raft::Durability>,
}

impl DurableStateMachine {
    /// Opens the snapshot files and installs the newest into `inner` before Raft starts.
    pub async fn open(mut inner: StateMachine, files: SnapshotFiles) -> Result<Self> {
        let loaded = {
            let files = files.clone();
            tokio::task::spawn_blocking(move || files.load_newest())
                .await
                .map_err(Error::task("reading the raft snapshot files"))??
        };
        if let Some((meta, data)) = loaded {
            tracing::info!(last_log_id = ?meta.last_log_id, bytes = data.len(), "restoring state from the raft snapshot on disk");
            inner
                .install_snapshot(&meta, Box::new(Cursor::new(data)))
                .await
                .map_err(|e| Error::Install(Box::new(e)))?;
        }
        Ok(Self {
            inner,
            files,
            durability: None,
        })
    }

    /// Applies an entry only once this node's log holds it durably (see
    /// [`regatta_log::raft::Durability`]).
    pub fn apply_when_durable(mut self, durability: regatta_log::raft::Durability) -> Self {
        self.durability = Some(durability);
        self
    }

    async fn persist(
        &self,
        meta: &SnapshotMeta<NodeId, Node>,
        data: Vec<u8>,
    ) -> Result<(), StorageError<NodeId>> {
        let files = self.files.clone();
        let owned = meta.clone();
        // openraft takes a failed snapshot write as fatal; a full disk only delays it (the
        // log behind the snapshot is not purged until it is written).
        regatta_api::disk::retry_while_full(
            "writing a raft snapshot",
            move || files.save(&owned, &data),
            |e: &Error| regatta_api::disk::is_disk_full(e),
        )
        .await
        .map_err(|e| match e {
            Some(e) => io_error(Some(meta), &e),
            None => io_error(Some(meta), &"the snapshot writer task failed"),
        })
    }
}

pub struct DurableSnapshotBuilder {
    inner: SnapshotBuilder,
    machine: DurableStateMachine,
}

impl RaftSnapshotBuilder<TypeConfig> for DurableSnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let snapshot = self.inner.build_snapshot().await?;
        self.machine
            .persist(&snapshot.meta, snapshot.snapshot.get_ref().clone())
            .await?;
        Ok(snapshot)
    }
}

impl RaftStateMachine<TypeConfig> for DurableStateMachine {
    type SnapshotBuilder = DurableSnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, Node>), StorageError<NodeId>> {
        self.inner.applied_state().await
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ApplyResponse>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let Some(durability) = &self.durability else {
            return self.inner.apply(entries).await;
        };
        let entries: Vec<_> = entries.into_iter().collect();
        if let Some(last) = entries.last() {
            let index = last.log_id.index;
            durability.wait(index).await.map_err(|reason| {
                StorageError::from(openraft::StorageIOError::write_logs(
                    openraft::AnyError::error(format!(
                        "entry {index} committed but the log stopped before it was durable here: {reason}"
                    )),
                ))
            })?;
        }
        self.inner.apply(entries).await
    }

    async fn get_snapshot_builder(&mut self) -> DurableSnapshotBuilder {
        DurableSnapshotBuilder {
            inner: self.inner.get_snapshot_builder().await,
            machine: self.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        self.inner.begin_receiving_snapshot().await
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Node>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        self.persist(meta, snapshot.get_ref().clone()).await?;
        self.inner.install_snapshot(meta, snapshot).await
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        self.inner.get_current_snapshot().await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use openraft::{CommittedLeaderId, Membership};

    use super::*;

    fn meta(index: u64) -> SnapshotMeta<NodeId, Node> {
        let membership = Membership::new(
            vec![BTreeSet::from([1, 2])],
            BTreeMap::from([(1, Node::new("http://a:1")), (2, Node::new("http://b:1"))]),
        );
        SnapshotMeta {
            last_log_id: Some(LogId::new(CommittedLeaderId::new(3, 1), index)),
            last_membership: StoredMembership::new(
                Some(LogId::new(CommittedLeaderId::new(1, 1), 1)),
                membership,
            ),
            snapshot_id: format!("{index}-x"),
        }
    }

    #[test]
    fn files_round_trip_and_every_damage_is_caught() {
        let bytes = encode(&meta(42), b"state bytes");
        let (m, data) = decode(&bytes).expect("decodes");
        assert_eq!(m, meta(42));
        assert_eq!(data, b"state bytes");
        for cut in 0..bytes.len() {
            assert!(
                decode(&bytes[..cut]).is_err(),
                "truncated to {cut} accepted"
            );
        }
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(decode(&flipped).is_err(), "bit {bit} flipped accepted");
        }
    }

    #[test]
    fn the_newest_intact_file_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = SnapshotFiles::open(dir.path().to_path_buf()).expect("open");
        files.save(&meta(10), b"ten").expect("save");
        files.save(&meta(20), b"twenty").expect("save");
        files.save(&meta(30), b"thirty").expect("save");
        assert_eq!(
            files.dir.list().expect("list").len(),
            KEEP,
            "older files are deleted"
        );
        let newest = dir.path().join(format!("{:020}{SUFFIX}", 30));
        let mut bytes = std::fs::read(&newest).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&newest, bytes).expect("damage");
        let (m, data) = files.load_newest().expect("load").expect("one is intact");
        assert_eq!(m.last_log_id.map(|l| l.index), Some(20));
        assert_eq!(data, b"twenty");
    }
}
