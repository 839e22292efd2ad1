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
