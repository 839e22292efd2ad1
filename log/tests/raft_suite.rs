//! openraft's own storage test suite against `RaftLogStore`, with a minimal in-memory state
//! machine that only has to satisfy the suite (apply, membership tracking, snapshots).

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

use std::io::Cursor;
use std::sync::{Arc, Mutex};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta,
    StorageError, StoredMembership,
};
use regatta_log::Options;
use regatta_log::raft::RaftLogStore;

openraft::declare_raft_types!(
    pub TestConfig:
        D = regatta_proto::event::Event,
        R = (),
);

type Stored = (SnapshotMeta<u64, BasicNode>, Vec<u8>);

#[derive(Default)]
struct MemStateMachine {
    applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    normal_entries: u64,
    snapshot: Arc<Mutex<Option<Stored>>>,
    snapshots_built: u64,
}

struct MemSnapshotBuilder {
    meta: SnapshotMeta<u64, BasicNode>,
    data: Vec<u8>,
    current: Arc<Mutex<Option<Stored>>>,
}

impl RaftSnapshotBuilder<TestConfig> for MemSnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TestConfig>, StorageError<u64>> {
        *self.current.lock().unwrap() = Some((self.meta.clone(), self.data.clone()));
        Ok(Snapshot {
            meta: self.meta.clone(),
            snapshot: Box::new(Cursor::new(self.data.clone())),
        })
    }
}

impl RaftStateMachine<TestConfig> for MemStateMachine {
    type SnapshotBuilder = MemSnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TestConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut replies = Vec::new();
        for entry in entries {
            self.applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(_) => self.normal_entries += 1,
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m);
                }
            }
            replies.push(());
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.snapshots_built += 1;
        MemSnapshotBuilder {
            meta: SnapshotMeta {
                last_log_id: self.applied,
                last_membership: self.membership.clone(),
                snapshot_id: format!("snapshot-{}", self.snapshots_built),
            },
            data: self.normal_entries.to_le_bytes().to_vec(),
            current: Arc::clone(&self.snapshot),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let data = snapshot.into_inner();
        self.normal_entries = data.get(..8).map_or(0, |b| {
            let mut n = [0u8; 8];
            n.copy_from_slice(b);
            u64::from_le_bytes(n)
        });
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        *self.snapshot.lock().unwrap() = Some((meta.clone(), data));
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TestConfig>>, StorageError<u64>> {
        Ok(self
            .snapshot
            .lock()
            .unwrap()
            .clone()
            .map(|(meta, data)| Snapshot {
                meta,
                snapshot: Box::new(Cursor::new(data)),
            }))
    }
}

struct Builder {
    segment_bytes: u64,
}

impl StoreBuilder<TestConfig, RaftLogStore<TestConfig>, MemStateMachine, tempfile::TempDir>
    for Builder
{
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, RaftLogStore<TestConfig>, MemStateMachine), StorageError<u64>>
    {
        let dir = tempfile::tempdir().unwrap();
        let opts = Options {
            segment_bytes: self.segment_bytes,
            ..Options::default()
        };
        let store = RaftLogStore::open(dir.path(), opts).unwrap();
        Ok((dir, store, MemStateMachine::default()))
    }
}

#[test]
fn openraft_suite_default_segments() {
    Suite::test_all(Builder {
        segment_bytes: Options::default().segment_bytes,
    })
    .unwrap();
}

/// Segments of ~3 entries each, so the suite's truncations and purges cross segment borders.
#[test]
fn openraft_suite_tiny_segments() {
    Suite::test_all(Builder { segment_bytes: 150 }).unwrap();
}

/// The store keeps everything across a restart: entries of every kind (normal payloads are
/// real `Event` protobufs), the vote, the committed pointer and the purged pointer.
#[test]
fn store_survives_restart() {
    use openraft::storage::{RaftLogReader, RaftLogStorage};
    use openraft::{CommittedLeaderId, Membership, Vote};

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log_id = |term, index| LogId::new(CommittedLeaderId::new(term, 1), index);
    let event = |n: u64| regatta_proto::event::Event {
        version: 1,
        proposed_at_micros: n,
        kind: None,
    };
    let nodes: std::collections::BTreeMap<u64, BasicNode> = [
        (
            1,
            BasicNode {
                addr: "10.0.0.1:5000".into(),
            },
        ),
        (
            2,
            BasicNode {
                addr: "10.0.0.2:5000".into(),
            },
        ),
    ]
    .into();
    let membership = Membership::new(vec![[1, 2].into()], nodes);
    let entries: Vec<Entry<TestConfig>> = vec![
        Entry {
            log_id: log_id(1, 1),
            payload: EntryPayload::Blank,
        },
        Entry {
            log_id: log_id(1, 2),
            payload: EntryPayload::Membership(membership.clone()),
        },
        Entry {
            log_id: log_id(2, 3),
            payload: EntryPayload::Normal(event(3)),
        },
        Entry {
            log_id: log_id(2, 4),
            payload: EntryPayload::Normal(event(4)),
        },
        Entry {
            log_id: log_id(2, 5),
            payload: EntryPayload::Normal(event(5)),
        },
    ];
    let mut vote = Vote::new(2, 1);
    vote.committed = true;

    rt.block_on(async {
        let mut store = RaftLogStore::<TestConfig>::open(dir.path(), Options::default()).unwrap();
        store.save_vote(&vote).await.unwrap();
        let log = store.log().clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        log.append_with(
            entries
                .iter()
                .map(regatta_log::raft::codec::to_record)
                .collect(),
            move |r| {
                let _ = tx.send(r);
            },
        )
        .unwrap();
        rx.await.unwrap().unwrap();
        store.save_committed(Some(log_id(2, 4))).await.unwrap();
        store.purge(log_id(1, 1)).await.unwrap();
        drop(log);
    });

    rt.block_on(async {
        let mut store = RaftLogStore::<TestConfig>::open(dir.path(), Options::default()).unwrap();
        assert_eq!(store.read_vote().await.unwrap(), Some(vote));
        assert_eq!(store.read_committed().await.unwrap(), Some(log_id(2, 4)));
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 1)));
        assert_eq!(state.last_log_id, Some(log_id(2, 5)));
        let mut reader = store.get_log_reader().await;
        let got = reader.try_get_log_entries(0..100).await.unwrap();
        assert_eq!(got.len(), 4);
        for (g, w) in got.iter().zip(&entries[1..]) {
            assert_eq!(g.log_id, w.log_id);
            assert_eq!(format!("{:?}", g.payload), format!("{:?}", w.payload));
        }
    });
}
