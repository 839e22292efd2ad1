//! The openraft state machine, tested directly: apply, applied state, snapshot build,
//! install into a fresh node, current snapshot, and fatal entries.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use common::*;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, CommittedLeaderId, Entry, EntryPayload, LogId, Membership, RaftSnapshotBuilder,
};
use regatta_materializer::raft::{StateMachine, TypeConfig};
use regatta_materializer::{ApplyResponse, Materializer, Revision, TableId};
use regatta_proto::event::Event;

fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn normal(index: u64, e: Event) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(1, index),
        payload: EntryPayload::Normal(e),
    }
}

fn membership() -> Membership<u64, BasicNode> {
    let nodes: BTreeMap<u64, BasicNode> = (1..=3)
        .map(|i| {
            (
                i,
                BasicNode {
                    addr: format!("10.0.0.{i}:8444"),
                },
            )
        })
        .collect();
    Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes)
}

fn machine() -> StateMachine {
    StateMachine::new(Arc::new(Materializer::default()))
}

#[tokio::test]
async fn apply_advances_on_every_entry_kind_and_records_membership() {
    let mut sm = machine();
    let (last, mem) = sm.applied_state().await.unwrap();
    assert_eq!(last, None);
    assert_eq!(mem.log_id(), &None);
    let entries = vec![
        Entry {
            log_id: log_id(0, 0),
            payload: EntryPayload::Membership(membership()),
        },
        Entry {
            log_id: log_id(1, 1),
            payload: EntryPayload::Blank,
        },
        normal(2, create("t")),
        normal(3, put("t", "k", "v")),
        normal(4, put("missing", "k", "v")),
    ];
    let responses = sm.apply(entries).await.unwrap();
    assert_eq!(responses.len(), 5);
    assert_eq!(responses[0], ApplyResponse::Empty);
    assert_eq!(responses[2], ApplyResponse::TableCreated { id: TableId(2) });
    assert!(
        matches!(responses[4], ApplyResponse::Rejected(_)),
        "a per-entry error, not a node failure"
    );
    let (last, mem) = sm.applied_state().await.unwrap();
    assert_eq!(last, Some(log_id(1, 4)));
    assert_eq!(mem.log_id(), &Some(log_id(0, 0)));
    assert_eq!(mem.voter_ids().collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(sm.materializer().applied(), Revision(4));
    // A later membership change is recorded with its log id.
    sm.apply([Entry {
        log_id: log_id(2, 5),
        payload: EntryPayload::Membership(membership()),
    }])
    .await
    .unwrap();
    assert_eq!(
        sm.applied_state().await.unwrap().1.log_id(),
        &Some(log_id(2, 5))
    );
}

#[tokio::test]
async fn snapshot_build_and_install_round_trip() {
    let mut leader = machine();
    let mut entries = vec![
        Entry {
            log_id: log_id(0, 0),
            payload: EntryPayload::Membership(membership()),
        },
        normal(1, create("t")),
    ];
    entries.extend((0..100).map(|i| normal(i + 2, put("t", &format!("k{i:03}"), "v"))));
    leader.apply(entries).await.unwrap();
    assert!(leader.get_current_snapshot().await.unwrap().is_none());
    let mut builder = leader.get_snapshot_builder().await;
    // Apply goes on after the builder captured its view.
    leader
        .apply([normal(102, put("t", "after", "v"))])
        .await
        .unwrap();
    let snap = builder.build_snapshot().await.unwrap();
    assert_eq!(snap.meta.last_log_id, Some(log_id(1, 101)));
    assert_eq!(snap.meta.last_membership.log_id(), &Some(log_id(0, 0)));
    let current = leader.get_current_snapshot().await.unwrap().expect("kept");
    assert_eq!(current.meta, snap.meta);

    let mut follower = machine();
    let mut receiving = follower.begin_receiving_snapshot().await.unwrap();
    receiving
        .get_mut()
        .extend_from_slice(snap.snapshot.get_ref());
    follower
        .install_snapshot(&snap.meta, receiving)
        .await
        .unwrap();
    let (last, mem) = follower.applied_state().await.unwrap();
    assert_eq!(last, Some(log_id(1, 101)));
    assert_eq!(mem, snap.meta.last_membership);
    let view = follower.materializer().view();
    assert_eq!(view.table("t").unwrap().len(), 100);
    assert!(view.table("t").unwrap().get(b"after").is_none());
    let Snapshot { meta, .. } = follower
        .get_current_snapshot()
        .await
        .unwrap()
        .expect("installed snapshot kept");
    assert_eq!(meta, snap.meta);
    // The follower continues applying from there.
    follower
        .apply([normal(102, put("t", "after", "v"))])
        .await
        .unwrap();
    assert!(
        follower
            .materializer()
            .view()
            .table("t")
            .unwrap()
            .get(b"after")
            .is_some()
    );
}

#[tokio::test]
async fn corrupt_snapshot_is_refused() {
    let mut leader = machine();
    leader.apply([normal(1, create("t"))]).await.unwrap();
    let snap = leader
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    let mut bytes = snap.snapshot.into_inner();
    bytes.truncate(bytes.len() - 3);
    let mut follower = machine();
    assert!(
        follower
            .install_snapshot(&snap.meta, Box::new(std::io::Cursor::new(bytes)))
            .await
            .is_err()
    );
    assert_eq!(
        follower.materializer().applied(),
        Revision(0),
        "nothing swapped in"
    );
}

#[tokio::test]
async fn unknown_event_is_a_storage_error() {
    let mut sm = machine();
    sm.apply([normal(1, create("t"))]).await.unwrap();
    let unknown = Event {
        version: regatta_proto::EVENT_VERSION,
        proposed_at_micros: 0,
        kind: None,
    };
    let err = sm
        .apply([normal(2, put("t", "a", "1")), normal(3, unknown)])
        .await
        .unwrap_err();
    assert!(err.to_string().contains('3'), "{err}");
    assert_eq!(
        sm.materializer().applied(),
        Revision(1),
        "nothing of the failed batch published"
    );
}
