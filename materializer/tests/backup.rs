//! Regatta's backup stream and directory format: wire layout, bit-exact round trips,
//! truncation, bit flips and MD5 checks.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read;

use bytes::Bytes;
use common::*;
use proptest::prelude::*;
use regatta_materializer::backup::{self, BackupReader};
use regatta_materializer::{Error, Materializer, Revision};

fn table_with(pairs: &[(Bytes, Bytes)]) -> Materializer {
    let m = Materializer::default();
    m.apply_events([(Revision(1), &create("t"))]).unwrap();
    let events: Vec<_> = pairs
        .iter()
        .map(|(k, v)| {
            put_req(regatta_proto::regatta::v1::PutRequest {
                table: b("t"),
                key: k.clone(),
                value: v.clone(),
                prev_kv: false,
                ttl_millis: 0,
            })
        })
        .collect();
    apply_from(&m, 2, &events);
    m
}

fn export(m: &Materializer) -> Vec<u8> {
    backup::write_backup("t", m.view().table("t").unwrap(), Vec::new()).unwrap()
}

#[test]
fn stream_layout_is_snappy_framed_length_prefixed_put_commands() {
    let m = table_with(&[(b("k"), b("v"))]);
    let bytes = export(&m);
    assert_eq!(
        &bytes[..10],
        b"\xff\x06\x00\x00sNaPpY",
        "snappy framing stream identifier"
    );
    let mut raw = Vec::new();
    snap::read::FrameDecoder::new(bytes.as_slice())
        .read_to_end(&mut raw)
        .unwrap();
    // Command { table: "t" (1), type: PUT = 0 (default, omitted), kv (3): { key (1), value (4) } }
    let command: &[u8] = &[0x0a, 1, b't', 0x1a, 6, 0x0a, 1, b'k', 0x22, 1, b'v'];
    let mut want = (command.len() as u64).to_le_bytes().to_vec();
    want.extend_from_slice(command);
    assert_eq!(raw, want);
}

#[test]
fn export_restore_export_is_bit_exact() {
    let pairs: Vec<_> = (0..3000)
        .map(|i| (b(&format!("key/{i:05}")), Bytes::from(vec![i as u8; 150])))
        .collect();
    let m = table_with(&pairs);
    let first = export(&m);
    let commands = backup::restore_from_stream(first.as_slice(), "t", 64 * 1024).unwrap();
    assert!(commands.len() > 1, "split into several events");
    let restored = Materializer::default();
    restored
        .apply_events([
            (Revision(1), &create("t")),
            (Revision(2), &put("t", "stale", "x")),
        ])
        .unwrap();
    let events: Vec<_> = commands.iter().map(|c| c.to_event(0)).collect();
    apply_from(&restored, 3, &events);
    assert!(
        restored.view().table("t").unwrap().get(b"stale").is_none(),
        "restore replaces"
    );
    assert_eq!(export(&restored), first);
}

#[test]
fn directory_manifest_and_md5() {
    let dir = tempfile::tempdir().unwrap();
    let m = table_with(&[(b("a"), b("1")), (b("b"), b("2"))]);
    m.apply_events([(Revision(10), &create("empty"))]).unwrap();
    let manifest = backup::write_backup_dir(
        dir.path(),
        &m.view(),
        &["t", "empty"],
        "2026-01-01T00:00:00Z",
        || "2026-01-01T00:00:01Z".into(),
    )
    .unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).unwrap()).unwrap();
    assert_eq!(json["started"], "2026-01-01T00:00:00Z");
    assert_eq!(json["tables"][0]["name"], "t");
    assert_eq!(json["tables"][0]["file_name"], "t.bak");
    let bytes = std::fs::read(dir.path().join("t.bak")).unwrap();
    let md5: String = md5::Md5::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(json["tables"][0]["md5"], md5);
    assert_eq!(backup::read_manifest(dir.path()).unwrap(), manifest);
    let pairs = backup::read_table_backup(dir.path(), &manifest.tables[0]).unwrap();
    assert_eq!(pairs, [(b("a"), b("1")), (b("b"), b("2"))]);
    assert!(
        backup::read_table_backup(dir.path(), &manifest.tables[1])
            .unwrap()
            .is_empty()
    );
    // Any change to the file: md5 mismatch.
    let mut bad = bytes.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x40;
    std::fs::write(dir.path().join("t.bak"), &bad).unwrap();
    let err = backup::read_table_backup(dir.path(), &manifest.tables[0]).unwrap_err();
    assert!(
        matches!(err, Error::Corrupted { .. }) && err.to_string().contains("md5"),
        "{err}"
    );
}

use md5::Digest;

#[test]
fn broken_frame_and_wrong_record_type_are_errors() {
    let noise: Vec<u8> = (0..1000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let m = table_with(&[(b("a"), Bytes::from(noise))]);
    let mut bytes = export(&m);
    let at = bytes.len() - 20; // inside the chunk's data: its CRC fails
    bytes[at] ^= 0xff;
    let result: Result<Vec<_>, _> = BackupReader::new(bytes.as_slice()).collect();
    assert!(matches!(result, Err(Error::Corrupted { .. })), "{result:?}");
    // A DELETE command where PUTs are expected.
    let mut raw = Vec::new();
    let command: &[u8] = &[0x0a, 1, b't', 0x10, 1];
    raw.extend_from_slice(&(command.len() as u64).to_le_bytes());
    raw.extend_from_slice(command);
    let mut framed = snap::write::FrameEncoder::new(Vec::new());
    std::io::Write::write_all(&mut framed, &raw).unwrap();
    let framed = framed.into_inner().unwrap();
    let err = BackupReader::new(framed.as_slice())
        .next()
        .unwrap()
        .unwrap_err();
    assert!(err.to_string().contains("not PUT"), "{err}");
}

fn pairs() -> impl Strategy<Value = Vec<(Bytes, Bytes)>> {
    proptest::collection::btree_map(
        proptest::collection::vec(any::<u8>(), 1..20),
        proptest::collection::vec(any::<u8>(), 0..200),
        0..30,
    )
    .prop_map(|m| {
        m.into_iter()
            .map(|(k, v)| (Bytes::from(k), Bytes::from(v)))
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn stream_round_trips(pairs in pairs()) {
        let bytes = export(&table_with(&pairs));
        let back: Vec<_> = BackupReader::new(bytes.as_slice()).collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(back, pairs);
    }

    /// The framing format has no end marker, so a cut exactly between chunks reads as a
    /// shorter stream (the manifest's MD5 catches that); any other cut is an error, and a
    /// cut never yields a pair that was not written.
    #[test]
    fn truncation_is_an_error_or_a_clean_prefix(pairs in pairs(), cut in any::<prop::sample::Index>()) {
        let bytes = export(&table_with(&pairs));
        let len = cut.index(bytes.len() + 1);
        let result: Result<Vec<_>, _> = BackupReader::new(&bytes[..len]).collect();
        if let Ok(got) = result {
            prop_assert!(got.len() <= pairs.len() && got[..] == pairs[..got.len()]);
        }
    }

    #[test]
    fn a_bit_flip_never_yields_invented_pairs(pairs in pairs(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut bytes = export(&table_with(&pairs));
        prop_assume!(!bytes.is_empty(), "an empty table exports an empty stream");
        let i = at.index(bytes.len());
        bytes[i] ^= 1 << bit;
        let result: Result<Vec<_>, _> = BackupReader::new(bytes.as_slice()).collect();
        if let Ok(got) = result {
            prop_assert!(got.iter().all(|p| pairs.iter().any(|q| p == q)), "flip at {} produced new data", i);
        }
    }
}
