//! openraft glue: the project's concrete [`TypeConfig`] and the state machine on top of the
//! materializer.
//!
//! `SnapshotData` is an in-memory `Cursor<Vec<u8>>`: openraft 0.9 streams snapshots to
//! followers in chunks from this buffer, and the encoded snapshot (zstd-compressed) is
//! small compared with the in-memory tables it describes, so one buffer per transfer is
//! acceptable; the object store path streams instead (see `snapshot` module).

use crate::ApplyResponse;

openraft::declare_raft_types!(
    /// Regatta's Raft types: log entries carry [`regatta_proto::event::Event`]s, applying one
    /// answers an [`ApplyResponse`].
    pub TypeConfig:
        D = regatta_proto::event::Event,
        R = ApplyResponse,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

use std::io::Cursor;
use std::sync::{Arc, Mutex};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};

use crate::changes::Revisioned;
use crate::raft_meta::RaftMeta;
use crate::{Error, Materializer, Revision, State, apply, snapshot};

type NodeId = u64;
type Node = openraft::BasicNode;

/// The last snapshot built or installed, kept in memory for `get_current_snapshot`.
#[derive(Debug, Clone)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, Node>,
    data: Arc<Vec<u8>>,
}

/// openraft's state machine on top of a [`Materializer`].
///
/// - `apply`: one published state per call (the whole batch, atomically); Blank and
///   Membership entries advance the applied pointer, Membership is recorded; Normal entries
///   apply their event. The last applied log id and membership live inside the published
///   [`State`], so they move atomically with the data.
/// - A fatal apply error (unknown event, out of order) is returned as a `StorageError`:
///   openraft stops the node, as it must.
/// - Snapshots are the crate's snapshot format, built from an immutable view on a blocking
///   thread (readers and apply carry on) and held in memory for transfer.
#[derive(Debug, Clone)]
pub struct StateMachine {
    materializer: Arc<Materializer>,
    current: Arc<Mutex<Option<StoredSnapshot>>>,
}

impl StateMachine {
    /// A state machine applying into `materializer` (which the read path shares).
    pub fn new(materializer: Arc<Materializer>) -> Self {
        Self {
            materializer,
            current: Arc::new(Mutex::new(None)),
        }
    }

    /// The materializer this state machine applies into.
    pub fn materializer(&self) -> &Arc<Materializer> {
        &self.materializer
    }

    fn current(&self) -> Option<StoredSnapshot> {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set_current(&self, s: StoredSnapshot) {
        *self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(s);
    }
}

/// What applying a batch of entries answers: one response per entry, and the changes when
/// recorded.
pub type Applied = (Vec<ApplyResponse>, Option<Vec<Revisioned>>);

/// Applies openraft entries to `state` (pure: the caller publishes).
// The error type is openraft's, fixed by the trait this feeds.
#[allow(clippy::result_large_err)]
/// With `record`, also returns what the entries changed (for the watch history).
pub fn apply_entries(
    state: &mut State,
    entries: impl IntoIterator<Item = openraft::Entry<TypeConfig>>,
    record: bool,
) -> Result<Applied, StorageError<NodeId>> {
    let mut last_applied = state.raft.last_applied;
    let first_at_zero = last_applied.is_none();
    // Held for the whole batch: queued puts borrow their bytes from the entries.
    let entries: Vec<_> = entries.into_iter().collect();
    let mut batch = apply::BatchApply::with_capacity(state, entries.len());
    if record {
        batch.record_changes();
    }
    for entry in &entries {
        let log_id = entry.log_id;
        let index = Revision(log_id.index);
        // openraft writes the initial membership at index 0, which is also the revision of
        // the empty state: accept it once.
        let at_zero = first_at_zero && log_id.index == 0;
        let result = match &entry.payload {
            EntryPayload::Normal(event) => batch.event(index, event),
            EntryPayload::Blank if at_zero => batch.zero(),
            EntryPayload::Blank => batch.advance(index),
            EntryPayload::Membership(m) => {
                let advanced = if at_zero {
                    batch.zero()
                } else {
                    batch.advance(index)
                };
                advanced.map(|()| {
                    batch.state_mut().raft.membership =
                        StoredMembership::new(Some(log_id), m.clone());
                })
            }
        };
        result.map_err(|e| StorageError::from(StorageIOError::apply(log_id, &e)))?;
        last_applied = Some(log_id);
    }
    let (responses, changes) = batch.finish_with_changes();
    state.raft.last_applied = last_applied;
    Ok((responses, changes))
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, Node>), StorageError<NodeId>> {
        let view = self.materializer.view();
        Ok((view.raft.last_applied, view.raft.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ApplyResponse>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let record = self.materializer.recording();
        #[allow(clippy::result_large_err)]
        self.materializer
            .update_with_changes(|state| apply_entries(state, entries, record))
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            view: self.materializer.view(),
            machine: self.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Node>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = Arc::new(snapshot.into_inner());
        let bytes = Arc::clone(&data);
        let signature = Some(meta.signature());
        let mut state = tokio::task::spawn_blocking(move || snapshot::decode(&bytes))
            .await
            .map_err(|e| StorageIOError::read_snapshot(signature.clone(), &e))?
            .map_err(|e| StorageIOError::read_snapshot(signature.clone(), &e))?;
        let expected = Revision(meta.last_log_id.map_or(0, |l| l.index));
        if state.revision() != expected {
            let e = Error::corrupted(
                "snapshot",
                format!("holds revision {}, meta says {expected}", state.revision()),
            );
            return Err(StorageIOError::read_snapshot(signature, &e).into());
        }
        state.raft = RaftMeta {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        self.materializer.replace(state);
        self.set_current(StoredSnapshot {
            meta: meta.clone(),
            data,
        });
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        Ok(self.current().map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data.to_vec())),
        }))
    }
}

/// Builds a snapshot of the view captured when openraft asked for the builder.
#[derive(Debug)]
pub struct SnapshotBuilder {
    view: Arc<State>,
    machine: StateMachine,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let view = Arc::clone(&self.view);
        let data = tokio::task::spawn_blocking(move || snapshot::encode(&view))
            .await
            .map_err(|e| StorageIOError::write_snapshot(None, &e))?
            .map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        let raft = &self.view.raft;
        let meta = SnapshotMeta {
            last_log_id: raft.last_applied,
            last_membership: raft.membership.clone(),
            snapshot_id: format!(
                "{:020}-{:08x}",
                self.view.revision().0,
                crc32c::crc32c(&data)
            ),
        };
        let data = Arc::new(data);
        self.machine.set_current(StoredSnapshot {
            meta: meta.clone(),
            data: Arc::clone(&data),
        });
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data.to_vec())),
        })
    }
}
