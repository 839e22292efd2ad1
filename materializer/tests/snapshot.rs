//! Snapshot codec and object store IO: round trips, truncation and bit flips, key layout,
//! half-written objects, and snapshots taken while apply goes on.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::*;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use proptest::prelude::*;
use regatta_materializer::snapshot::{self, SnapshotStore};
use regatta_materializer::{Error, Materializer, Revision, State};
use regatta_proto::event::{self, event::Kind};

type Dump = (
    Revision,
    Vec<(String, String, Vec<(Bytes, Bytes, u64, u64, u64)>)>,
);

fn dump(s: &State) -> Dump {
    let tables = s
        .tables()
        .map(|(name, t)| {
            let rows = t
                .iter()
                .map(|r| {
                    (
                        Bytes::copy_from_slice(r.key()),
                        r.value_bytes(),
                        r.create_revision(),
                        r.mod_revision(),
                        r.version(),
                    )
                })
                .collect();
            (name.clone(), format!("{}:{:?}", t.id(), t.config()), rows)
        })
        .collect();
    (s.revision(), tables)
}

fn sample(keys: usize) -> Materializer {
    let m = Materializer::default();
    let config = prost_types::Struct {
        fields: [(
            "replicas".to_string(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::NumberValue(3.0)),
            },
        )]
        .into_iter()
        .collect(),
    };
    let with_config = event(Kind::CreateTable(event::CreateTable {
        name: "conf".into(),
        config: Some(config),
    }));
    m.apply_events([(Revision(1), &create("t")), (Revision(2), &with_config)])
        .unwrap();
    let events: Vec<_> = (0..keys)
        .map(|i| put("t", &format!("key-{i:06}"), &format!("value-{i}")))
        .collect();
    apply_from(&m, 3, &events);
    m
}

#[test]
fn snapshot_round_trips_every_table_record_and_revision() {
    let m = sample(500);
    let view = m.view();
    let bytes = snapshot::encode(&view).unwrap();
    let back = snapshot::decode(&bytes).unwrap();
    assert_eq!(dump(&back), dump(&view));
    assert_eq!(back.raft_meta(), view.raft_meta());
    // Encoding is deterministic.
    assert_eq!(snapshot::encode(&back).unwrap(), bytes);
}

#[test]
fn a_large_table_is_loaded_by_two_threads_with_the_same_checks() {
    // Over the size at which the reader hands records to a second thread to build the tree.
    let m = sample(40_000);
    let view = m.view();
    let bytes = snapshot::encode(&view).unwrap();
    assert_eq!(dump(&snapshot::decode(&bytes).unwrap()), dump(&view));
    for len in [bytes.len() / 3, bytes.len() - 5] {
        let result = snapshot::decode(&bytes[..len]);
        assert!(
            matches!(result, Err(Error::Corrupted { .. })),
            "cut at {len}"
        );
    }
    let mut raw = zstd::decode_all(bytes.as_slice()).unwrap();
    let at = raw.len() * 2 / 3;
    raw[at] ^= 0x01;
    let err = snapshot::decode(&zstd::encode_all(raw.as_slice(), 1).unwrap()).unwrap_err();
    assert!(matches!(err, Error::Corrupted { .. }), "{err}");
}

#[test]
fn wrong_magic_and_version_are_rejected_loudly() {
    let err = snapshot::decode(&zstd::encode_all(&b"NOTASNAPxxxxxxxxxxxxxxxx"[..], 1).unwrap())
        .unwrap_err();
    assert!(
        matches!(err, Error::Corrupted { .. }) && err.to_string().contains("magic"),
        "{err}"
    );
    let mut raw = zstd::decode_all(snapshot::encode(&State::new()).unwrap().as_slice()).unwrap();
    raw[8] = 9; // version
    let err = snapshot::decode(&zstd::encode_all(raw.as_slice(), 1).unwrap()).unwrap_err();
    assert!(err.to_string().contains("version 9"), "{err}");
    assert!(matches!(
        snapshot::decode(b"garbage"),
        Err(Error::Corrupted { .. })
    ));
}

#[test]
fn checksum_catches_corruption_inside_a_valid_zstd_frame() {
    let m = sample(50);
    let mut raw = zstd::decode_all(snapshot::encode(&m.view()).unwrap().as_slice()).unwrap();
    let at = raw.len() / 2;
    raw[at] ^= 0x01; // a value byte, most likely: only the CRC can tell
    let err = snapshot::decode(&zstd::encode_all(raw.as_slice(), 1).unwrap()).unwrap_err();
    assert!(matches!(err, Error::Corrupted { .. }), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_truncation_is_rejected(keys in 0usize..40, cut in any::<prop::sample::Index>()) {
        let bytes = snapshot::encode(&sample(keys).view()).unwrap();
        let len = cut.index(bytes.len());
        let result = snapshot::decode(&bytes[..len]);
        prop_assert!(matches!(result, Err(Error::Corrupted { .. })), "cut at {}", len);
    }

    #[test]
    fn a_bit_flip_is_rejected_or_harmless(keys in 0usize..40, at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let m = sample(keys);
        let mut bytes = snapshot::encode(&m.view()).unwrap();
        let i = at.index(bytes.len());
        bytes[i] ^= 1 << bit;
        match snapshot::decode(&bytes) {
            Err(e) => {
                let corrupted = matches!(e, Error::Corrupted { .. });
                prop_assert!(corrupted, "{}", e);
            }
            // A flip in a zstd header field that does not change the content (window size).
            Ok(s) => prop_assert_eq!(dump(&s), dump(&m.view())),
        }
    }
}

async fn store_suite(store: Arc<dyn ObjectStore>) {
    let snaps = SnapshotStore::new(Arc::clone(&store), "cluster-a");
    assert_eq!(snaps.latest().await.unwrap(), None);
    let m = sample(2_000);
    let first = snaps.upload(m.view()).await.unwrap();
    assert_eq!(
        first.location.as_ref(),
        "cluster-a/snapshots/00000000000000002002.snap.zst"
    );
    let more: Vec<_> = (0..10)
        .map(|i| put("t", &format!("late-{i}"), "x"))
        .collect();
    m.apply_events(
        more.iter()
            .enumerate()
            .map(|(i, e)| (Revision(2003 + i as u64), e)),
    )
    .unwrap();
    let second = snaps.upload(m.view()).await.unwrap();
    // Unrelated objects and a half-written snapshot (no valid trailer) under the prefix.
    store
        .put(
            &Path::from("cluster-a/snapshots/README.txt"),
            PutPayload::from_static(b"hi"),
        )
        .await
        .unwrap();
    let full = snapshot::encode(&m.view()).unwrap();
    let torn = snaps.location(Revision(9_999_999));
    store
        .put(&torn, PutPayload::from(full[..full.len() / 2].to_vec()))
        .await
        .unwrap();
    assert_eq!(
        snaps.list().await.unwrap(),
        [first.revision, second.revision, Revision(9_999_999)]
    );
    let err = snaps.download(Revision(9_999_999)).await.unwrap_err();
    assert!(
        matches!(err, Error::Corrupted { .. }),
        "a half-written object is never a snapshot: {err}"
    );
    store.delete(&torn).await.unwrap();
    let latest = snaps.download_latest().await.unwrap().expect("a snapshot");
    assert_eq!(dump(&latest), dump(&m.view()));
    let older = snaps.download(first.revision).await.unwrap();
    assert_eq!(older.revision(), Revision(2002));
    assert!(older.table("t").unwrap().get(b"late-0").is_none());
    // Loading swaps the whole state in at once.
    let fresh = Materializer::default();
    fresh.replace(older);
    assert_eq!(fresh.applied(), Revision(2002));
}

#[tokio::test]
async fn object_store_in_memory() {
    store_suite(Arc::new(object_store::memory::InMemory::new())).await;
}

#[tokio::test]
async fn object_store_local_directory() {
    let dir = tempfile::tempdir().unwrap();
    store_suite(Arc::new(
        object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap(),
    ))
    .await;
}

/// A local-directory snapshot larger than one download piece (1 MiB) loads whole, and one
/// cut short in a later piece is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_snapshot_of_many_pieces_loads_and_a_cut_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ObjectStore> =
        Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    let snaps = SnapshotStore::new(Arc::clone(&store), "");
    let m = Materializer::default();
    m.apply_events([(Revision(1), &create("t"))]).unwrap();
    // Values that do not compress, so the object spans several pieces.
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let events: Vec<_> = (0..20_000)
        .map(|i| {
            let value: String = (0..200)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    char::from(b'!' + (seed % 90) as u8)
                })
                .collect();
            put("t", &format!("key-{i:06}"), &value)
        })
        .collect();
    m.apply_events(
        events
            .iter()
            .enumerate()
            .map(|(i, e)| (Revision(2 + i as u64), e)),
    )
    .unwrap();
    let info = snaps.upload(m.view()).await.unwrap();
    assert!(info.size > 3 << 20, "several pieces: {} bytes", info.size);
    let loaded = snaps.download(info.revision).await.unwrap();
    assert_eq!(dump(&loaded), dump(&m.view()));

    let file = dir.path().join(info.location.as_ref());
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() * 3 / 4]).unwrap();
    let err = snaps.download(info.revision).await.unwrap_err();
    assert!(matches!(err, Error::Corrupted { .. }), "{err}");
}

/// A snapshot of a consistent revision is written while apply and reads go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_does_not_hold_up_apply_or_readers() {
    let m = Arc::new(sample(20_000));
    let view = m.view();
    let snaps = SnapshotStore::new(Arc::new(object_store::memory::InMemory::new()), "");
    let upload = tokio::spawn({
        let snaps = snaps.clone();
        let view = Arc::clone(&view);
        async move { snaps.upload(view).await }
    });
    // Apply and read while the upload runs; none of this waits for it.
    let base = m.applied().0;
    for i in 0..200u64 {
        let e = put("t", &format!("during-{i}"), "x");
        m.apply_events([(Revision(base + 1 + i), &e)]).unwrap();
        assert!(
            m.view()
                .table("t")
                .unwrap()
                .get(format!("during-{i}").as_bytes())
                .is_some()
        );
    }
    let info = upload.await.unwrap().unwrap();
    assert_eq!(info.revision, view.revision());
    let back = snaps.download(info.revision).await.unwrap();
    assert_eq!(
        dump(&back),
        dump(&view),
        "the snapshot is exactly the view it started from"
    );
}

/// A snapshot in format version 1 (Raft metadata in a little-endian layout), as the build
/// before format 2 uploaded it: `objects/snapshots/00000000000000000051.snap.zst` of
/// `tests/fixtures/v0-cluster` (a single-node core; tables `users` and `config`, then
/// `users` keys `user/0000`… at revisions 4…).
const V1_SNAPSHOT_51: &str = concat!(
    "28b52ffd04485d0d0076134635204b271d000c000c000c00261680300b8fae35d2371080216e6448315fdb7b",
    "efbde596126c90eaafbffefaebafbf2561bff81f71a73500360039006f68f080412cc282ff8ad77f44957476",
    "8bb5d5569b8fb7ad25613673f0caddddddddddddfbeecefdaff0feef0eb80c2470bd0a2008ee8e3b78c1ecde",
    "786379b13ca056019406981380948c181f205c742bde4b303b8765c1202888fd57ecee6e8cef11b209301985",
    "ff8957dbdb2050ad9f0fa51ecf9c9d8e941c4e8c9b0d841a4d7726f31e06c37cb9ecdb67b1d45aa9504aa1cc",
    "3999482991c41889400881743f1eef05182e58c840a07bcef7a4648e7117c26debd6b4f7582ce6d56ae14295",
    "aad6548a52146aced3494a9329c652094212a97b347a4f24620e850280ada8917078518dc2b01bd04b5a0311",
    "7848c5b4402490502892240f7e0e884228444114a2202af01b300aa210055108852888421444057e03464114",
    "a2200aa11005518882a8c06fc028884214442114a2200aabe13c7f8558b4b529b4b6de73d5d1a45938c7e828",
    "69269c333a94340bcb191d25998573468e4e4289ac1fc92224fa3534a8ebc02f6457d20ac7e93affeb243515",
);

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn a_version_1_snapshot_is_still_read_and_rewritten_as_version_2() {
    // Version 2 is what a state without any key with a TTL is written as (version 3 adds
    // expiries; see `a_key_with_a_ttl_makes_the_snapshot_version_3_and_keeps_its_expiry`).
    let bytes = unhex(V1_SNAPSHOT_51);
    let raw = zstd::decode_all(bytes.as_slice()).unwrap();
    assert_eq!(
        raw[8..12],
        1u32.to_le_bytes(),
        "the golden bytes are version 1"
    );
    let state = snapshot::decode(&bytes).unwrap();
    assert_eq!(state.revision(), Revision(51));
    let (_, tables) = dump(&state);
    let names: Vec<&str> = tables.iter().map(|t| t.0.as_str()).collect();
    assert_eq!(names, ["config", "users"]);
    assert!(tables[0].2.is_empty());
    let users: Vec<_> = (0..48u64)
        .map(|i| {
            (
                Bytes::from(format!("user/{i:04}")),
                Bytes::from(format!("name-{i}")),
                4 + i,
                4 + i,
                1,
            )
        })
        .collect();
    assert_eq!(tables[1].2, users);
    let meta = state.raft_meta();
    assert_eq!(meta.last_applied.map(|l| l.index), Some(51));
    let membership = meta.membership.membership();
    assert_eq!(membership.get_joint_config(), &vec![[1u64].into()]);
    assert!(
        membership
            .get_node(&1)
            .is_some_and(|n| n.addr.starts_with("http://127.0.0.1:")),
        "{membership:?}"
    );

    let again = snapshot::encode(&state).unwrap();
    let raw = zstd::decode_all(again.as_slice()).unwrap();
    assert_eq!(raw[8..12], 2u32.to_le_bytes());
    assert_eq!(snapshot::SNAPSHOT_VERSION, 3);
    let back = snapshot::decode(&again).unwrap();
    assert_eq!(dump(&back), dump(&state));
    assert_eq!(back.raft_meta(), state.raft_meta());
}

#[test]
fn version_1_raft_metadata_is_checked_as_before() {
    use regatta_materializer::raft_meta::RaftMeta;
    let raw = zstd::decode_all(unhex(V1_SNAPSHOT_51).as_slice()).unwrap();
    // magic, version, revision, then the metadata's length and bytes.
    let len = u32::from_le_bytes(raw[20..24].try_into().unwrap()) as usize;
    let meta = &raw[24..24 + len];
    let decoded = RaftMeta::decode_v1(meta).unwrap();
    for cut in 0..meta.len() {
        assert!(RaftMeta::decode_v1(&meta[..cut]).is_err(), "cut at {cut}");
    }
    let mut trailing = meta.to_vec();
    trailing.push(0);
    assert!(RaftMeta::decode_v1(&trailing).is_err());
    // The same metadata in format 2's encoding.
    assert_eq!(RaftMeta::decode(&decoded.encode()).unwrap(), decoded);
}
