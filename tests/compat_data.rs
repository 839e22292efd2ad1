//! End-to-end: the data a previous build wrote stays readable by this one.
//!
//! `tests/fixtures/v0-cluster/` holds the data directories of a single-node core and of an
//! edge that tailed it, and the core's local-directory object store (archived segments and
//! uploaded snapshots), made by `tests/fixtures/make-v0-cluster.sh` with the build its README
//! names, and the content both served (`expected.json`). This test starts the current
//! build's core and edge on copies of them and checks that they serve exactly that content
//! (values and revisions), take a new write that reaches the edge, and that the audit
//! commands and a point-in-time restore read the old log, snapshots and archive.
//!
//! Every on-disk format is covered: log segments and their state files, Raft snapshot files
//! (`.rsnap`), the materializer's snapshot format (local and in the object store), the
//! edge's local log and snapshots, the archive layout. A change that breaks one of them
//! must bring a reader of the old format, not a new fixture.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

/// Per table, in key order: key, value, create revision, mod revision.
type Content = BTreeMap<String, Vec<(Vec<u8>, Vec<u8>, i64, i64)>>;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v0-cluster")
}

/// Unpacks the fixture into `root`: `core/`, `edge/` and `objects/`.
fn unpack(root: &Path) {
    let archive = fixture_dir().join("v0-cluster.tar.gz");
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(&archive)
        .arg("-C")
        .arg(root)
        .status()
        .expect("run tar");
    assert!(status.success(), "unpacking {}", archive.display());
}

/// `expected.json`'s content at its top level (`final`) and at the restore target.
struct Expected {
    revision: u64,
    tables: Content,
    restore_revision: u64,
    restore_tables: Content,
}

fn content(tables: &serde_json::Value) -> Content {
    tables
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, rows)| {
            let rows = rows
                .as_array()
                .unwrap()
                .iter()
                .map(|row| {
                    let text = |i: usize| row[i].as_str().unwrap().as_bytes().to_vec();
                    let rev = |i: usize| row[i].as_i64().unwrap();
                    (text(0), text(1), rev(2), rev(3))
                })
                .collect();
            (name.clone(), rows)
        })
        .collect()
}

fn expected() -> Expected {
    let text = std::fs::read_to_string(fixture_dir().join("expected.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    Expected {
        revision: json["revision"].as_u64().unwrap(),
        tables: content(&json["tables"]),
        restore_revision: json["restore"]["revision"].as_u64().unwrap(),
        restore_tables: content(&json["restore"]["tables"]),
    }
}

/// Runs the `regatta` CLI and returns its output.
fn succeeded(out: &Output) -> bool {
    if !out.status.success() {
        eprintln!(
            "stdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out.status.success()
}

/// What `node` serves, every table.
async fn served(node: &Node) -> Content {
    dump_all(node).await.expect("dump every table")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_written_by_an_earlier_build_is_served_audited_and_restored() {
    let expected = expected();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    unpack(root);
    let objects_url = format!("file://{}", root.join("objects").display());
    let store = format!("--object-store={objects_url}");

    let mut core = Node::core(1, root);
    core.data_dir = root.join("core");
    core.args = vec![
        store.clone(),
        "--log.segment-size=4096".into(),
        "--raft.snapshot-entries=60".into(),
        "--raft.keep-entries=5".into(),
        "--object-store.snapshot-entries=50".into(),
        "--object-store.snapshot-interval=1h".into(),
    ];
    let members = format!("1={}", core.raft);

    phase("the current build's edge starts on the old edge data directory, its core down");
    let mut edge = Edge::new("edge", root, vec![core.replication.clone()]);
    edge.node.args = vec![
        store.clone(),
        "--log.segment-size=4096".into(),
        "--edge.snapshot-entries=60".into(),
        "--edge.keep-entries=5".into(),
    ];
    edge.start();
    wait_until(
        "the edge serves the old content from its own data",
        || async {
            dump_all(&edge.node)
                .await
                .is_ok_and(|c| c == expected.tables)
        },
    )
    .await;

    phase("the current build's core starts on the old data directory and object store");
    core.start(&members);
    wait_until("the core leads", || async {
        leader_of(&core).await == Some(1)
    })
    .await;
    assert_eq!(
        served(&core).await,
        expected.tables,
        "the core serves the old content"
    );

    phase("new writes reach the edge, and new snapshots are written beside the old ones");
    let mut rev = 0;
    for i in 0..80 {
        rev = put(&core, "users", &format!("after/{i:02}"), "new")
            .await
            .expect("put");
    }
    assert!(rev > expected.revision, "new revisions follow the old ones");
    wait_until("the edge has the new writes", || async {
        get(&edge.node, "users", "after/79", false)
            .await
            .is_ok_and(|v| v.as_deref() == Some("new"))
    })
    .await;
    wait_converged(&core, &edge.node, "the edge serves what the core serves").await;
    let newer = |dir: PathBuf| {
        let after = expected.revision;
        move || {
            let dir = dir.clone();
            async move {
                std::fs::read_dir(&dir).is_ok_and(|d| {
                    d.flatten().any(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        name.split('.')
                            .next()
                            .and_then(|n| n.parse::<u64>().ok())
                            .is_some_and(|n| n > after)
                    })
                })
            }
        }
    };
    wait_until(
        "a new Raft snapshot file",
        newer(core.data_dir.join("raft-snapshots")),
    )
    .await;
    wait_until(
        "a new snapshot in the object store",
        newer(root.join("objects/snapshots")),
    )
    .await;
    let before_restart = served(&core).await;

    phase("log verify reads the old and new local log, Raft snapshots and archive");
    let data = core.data_dir.display().to_string();
    let out = regatta(&[
        "log",
        "verify",
        "--data-dir",
        &data,
        "--object-store",
        &objects_url,
    ]);
    assert!(succeeded(&out), "log verify");

    phase("log replay reads the old history, the transactions included");
    let replay = || {
        let out = regatta(&[
            "log",
            "replay",
            "--data-dir",
            &data,
            "--object-store",
            &objects_url,
            "--format",
            "json",
        ]);
        assert!(succeeded(&out), "log replay");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(replay().contains("txn/new"), "the old txn is replayed");
    // Beside a live node, replay ends at the committed pointer as last persisted, which
    // follows the node's by up to 100 ms (log/src/raft/mod.rs): the newest writes show once
    // it has caught up.
    wait_until("the new writes are replayed", || async {
        replay().contains("after/79")
    })
    .await;

    phase("both nodes stop cleanly and serve the same after a restart");
    assert_eq!(edge.node.terminate(), Some(0), "edge exits cleanly");
    assert_eq!(core.terminate(), Some(0), "core exits cleanly");
    core.start(&members);
    wait_until("the core leads again", || async {
        leader_of(&core).await == Some(1)
    })
    .await;
    assert_eq!(
        served(&core).await,
        before_restart,
        "the core after a restart"
    );
    edge.start();
    wait_converged(
        &core,
        &edge.node,
        "the restarted edge serves what the core serves",
    )
    .await;

    phase("point-in-time restore from the old object store into a fresh data directory");
    let restored_root = tempfile::tempdir().unwrap();
    let mut restored = Node::core(1, restored_root.path());
    let target = expected.restore_revision.to_string();
    let out = regatta(&[
        "restore",
        "--from",
        &objects_url,
        "--revision",
        &target,
        "--data-dir",
        &restored.data_dir.display().to_string(),
        "--raft.address",
        &restored.raft,
    ]);
    assert!(succeeded(&out), "restore --from the old object store");
    restored.args = vec![format!(
        "--object-store=file://{}",
        restored_root.path().join("objects").display()
    )];
    restored.start(&format!("1={}", restored.raft));
    wait_until("the restored core leads", || async {
        leader_of(&restored).await == Some(1)
    })
    .await;
    assert_eq!(
        served(&restored).await,
        expected.restore_tables,
        "the restored core serves the content at revision {target}"
    );
}
