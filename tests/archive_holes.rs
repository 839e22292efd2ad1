//! End-to-end: objects that vanish from the object store under a running core. The archiver
//! notices, uploads again what the node's log still holds, records what it cannot as a hole
//! (a warning, `regatta_archive_holes`, a marker under `holes/`), and `regatta log verify`
//! and `regatta backup list` report the hole instead of "ok".

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn metric(node: &Node, name: &str) -> f64 {
    let Some(body) = node.http_body("/metrics").await else {
        return 0.0;
    };
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Names of the files in `dir` (none if it does not exist), sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// First index of each segment file in `dir` (`<20 digits>.seg` or `.seg.zst`).
fn firsts(dir: &Path) -> Vec<u64> {
    files(dir)
        .iter()
        .filter_map(|n| n.split('.').next()?.parse().ok())
        .collect()
}

/// The finished snapshots in `dir`: an upload in flight shows as a staging file beside them
/// until it is renamed into place.
fn snapshots(dir: &Path) -> Vec<String> {
    files(dir)
        .into_iter()
        .filter(|n| n.ends_with(".snap.zst"))
        .collect()
}

fn node_log(node: &Node) -> String {
    std::fs::read_to_string(node.log_path()).unwrap_or_default()
}

/// A single-node core that seals small segments and uploads a snapshot every 50 entries,
/// with `extra` settings; a table `t` and 200 writes, archived.
async fn archiving_core(extra: &[&str]) -> (Cluster, PathBuf) {
    let mut args = vec![
        "--log.segment-size=4096",
        "--object-store.snapshot-entries=50",
        "--object-store.snapshot-interval=1h",
        "--object-store.check-interval=1s",
    ];
    args.extend_from_slice(extra);
    let cluster = Cluster::start_with(1, &args);
    cluster.wait_for_leader().await;
    let node = &cluster.nodes[0];
    create_table(node, "t").await;
    let mut last = 0;
    for i in 0..200u32 {
        last = put(node, "t", &format!("key{:02}", i % 40), &format!("v{i}"))
            .await
            .expect("put");
    }
    let objects = node.data_dir.join("objects");
    wait_until("segments and a snapshot are archived", || {
        let objects = objects.clone();
        async move {
            // The uploader has finished a snapshot (and told the archiver of it).
            metric(node, "regatta_archive_last_index").await >= (last / 2) as f64
                && firsts(&objects.join("segments")).len() >= 3
                && metric(node, "regatta_snapshot_uploads_total").await >= 1.0
                && !snapshots(&objects.join("snapshots")).is_empty()
        }
    })
    .await;
    (cluster, objects)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_deleted_while_the_log_holds_them_are_uploaded_again() {
    phase("a core whose log is not purged, its segments and snapshots archived");
    let (cluster, objects) = archiving_core(&[]).await;
    let node = &cluster.nodes[0];
    let data = node.data_dir.display().to_string();
    let segments = objects.join("segments");
    let before = files(&segments);

    phase("delete one archived segment and every snapshot");
    let victim = before[1].clone();
    std::fs::remove_file(segments.join(&victim)).unwrap();
    for snapshot in snapshots(&objects.join("snapshots")) {
        std::fs::remove_file(objects.join("snapshots").join(snapshot)).unwrap();
    }

    phase("the archiver counts them missing, uploads the segment again, the leader a new snapshot");
    wait_until("the missing objects are noticed and replaced", || {
        let (segments, objects, victim) = (segments.clone(), objects.clone(), victim.clone());
        async move {
            metric(node, "regatta_archive_missing_objects_total").await >= 2.0
                && files(&segments).contains(&victim)
                && !snapshots(&objects.join("snapshots")).is_empty()
        }
    })
    .await;
    assert_eq!(metric(node, "regatta_archive_holes").await, 0.0);
    let log = node_log(node);
    assert!(
        log.contains("archived segments missing from the object store"),
        "{log}"
    );
    assert!(log.contains("missing segment uploaded again"), "{log}");
    assert!(
        log.contains("snapshots missing from the object store"),
        "{log}"
    );
    assert!(!log.contains("hole in the archive"), "{log}");

    phase("verify and backup list find the archive whole");
    let out = regatta(&["log", "verify", "--data-dir", &data]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let url = format!("file://{}", objects.display());
    let out = regatta(&["backup", "list", "--object-store", &url]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("holes in the archive: none"),
        "{}",
        text(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_store_leaves_a_hole_that_is_reported_and_the_rest_is_uploaded_again() {
    phase("a core that purges its log behind snapshots and the archive");
    let (cluster, objects) =
        archiving_core(&["--raft.snapshot-entries=60", "--raft.keep-entries=5"]).await;
    let node = &cluster.nodes[0];
    let data = node.data_dir.display().to_string();
    let log_dir = node.data_dir.join("log");
    wait_until(
        "the local log is purged past the first archived segments",
        || {
            let (log_dir, objects) = (log_dir.clone(), objects.clone());
            async move {
                let archived = firsts(&objects.join("segments"));
                archived.len() >= 3 && firsts(&log_dir).first().is_some_and(|f| *f > archived[1])
            }
        },
    )
    .await;
    let purged_below = firsts(&log_dir)[0];

    phase("verify is ok before the loss");
    let out = regatta(&["log", "verify", "--data-dir", &data]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );

    phase("delete the whole object-store directory");
    std::fs::remove_dir_all(&objects).unwrap();

    phase("the archiver reports a hole and uploads again what the log holds");
    wait_until(
        "a hole is recorded and the log's segments are archived again",
        || {
            let objects = objects.clone();
            async move {
                metric(node, "regatta_archive_holes").await >= 1.0
                    && metric(node, "regatta_archive_missing_objects_total").await >= 3.0
                    && !firsts(&objects.join("segments")).is_empty()
            }
        },
    )
    .await;
    let markers = files(&objects.join("holes"));
    assert_eq!(markers.len(), 1, "{markers:?}");
    let (first, last) = markers[0].split_once('-').unwrap();
    let (first, last): (u64, u64) = (first.parse().unwrap(), last.parse().unwrap());
    assert!(first <= 1, "the hole starts at the beginning: {markers:?}");
    assert!(
        last + 1 >= purged_below,
        "the hole covers what the log had purged: {markers:?}"
    );
    assert_eq!(
        firsts(&objects.join("segments"))[0],
        last + 1,
        "the archive continues right after the hole, from the log"
    );
    let log = node_log(node);
    assert!(log.contains("hole in the archive"), "{log}");
    assert!(
        log.contains(&format!("last={last}")),
        "the warning names the range: {log}"
    );

    phase("log verify fails naming the hole; backup list reports it");
    let hole = format!("{first}..={last}");
    let out = regatta(&["log", "verify", "--data-dir", &data]);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(text(&out.stderr).contains(&hole), "{}", text(&out.stderr));
    let url = format!("file://{}", objects.display());
    let out = regatta(&["backup", "list", "--object-store", &url]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&out.stdout);
    assert!(
        listed.contains(&format!("holes in the archive: indices {hole}")),
        "{listed}"
    );
    let out = regatta(&["backup", "list", "--object-store", &url, "--json"]);
    let json: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(json["holes"][0]["last"].as_u64(), Some(last), "{json}");
}
