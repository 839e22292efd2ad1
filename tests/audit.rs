//! End-to-end: the segment archive in a file:// object store, `regatta log replay` and
//! `regatta log verify` over archived and local segments, `regatta backup create` and
//! `regatta backup list`, and point-in-time restore into a fresh data directory that a core
//! then starts from, and into running clusters.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use common::*;
use regatta_proto::regatta::v1::{CreateTableRequest, ListTablesRequest};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Segment files of a log directory, by first index.
fn local_segments(log: &Path) -> Vec<u64> {
    let mut out: Vec<u64> = std::fs::read_dir(log)
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".seg")?.parse().ok()
        })
        .collect();
    out.sort_unstable();
    out
}

/// `regatta backup list --json` of the store at `objects_url`, parsed (it must succeed).
fn backup_list(objects_url: &str) -> serde_json::Value {
    let out = regatta(&["backup", "list", "--object-store", objects_url, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(stdout(&out).trim()).unwrap()
}

/// The revisions of the snapshots a `backup list --json` names.
fn snapshot_revisions(listed: &serde_json::Value) -> Vec<u64> {
    listed["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["revision"].as_u64().unwrap())
        .collect()
}

/// Settings of a core that seals small segments (so they are archived within a test's few
/// hundred writes) and uploads a snapshot every 50 entries.
const ARCHIVING_CORE: &[&str] = &[
    "--log.segment-size=4096",
    "--raft.snapshot-entries=60",
    "--raft.keep-entries=5",
    "--object-store.snapshot-entries=50",
    "--object-store.snapshot-interval=1h",
];

/// `regatta restore --from URL --revision R` into the data directory of a fresh single-node
/// core under `root`: the node (not started) and the command's output.
fn restore_to_fresh_core(objects_url: &str, revision: u64, root: &Path) -> (Node, Output) {
    let restored = Node::core(1, root);
    let out = regatta(&[
        "restore",
        "--from",
        objects_url,
        "--revision",
        &revision.to_string(),
        "--data-dir",
        &restored.data_dir.display().to_string(),
        "--raft.address",
        &restored.raft,
    ]);
    (restored, out)
}

/// Starts a restored single-node core and waits until it leads.
async fn start_restored(restored: &mut Node) {
    let members = format!("1={}", restored.raft);
    restored.start(&members);
    wait_until("the restored node leads", || async {
        leader_of(restored).await == Some(1)
    })
    .await;
}

async fn metric(node: &Node, name: &str) -> Option<f64> {
    let body = node.http_body("/metrics").await?;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// One write the test made: table, key, value, revision.
type Write = (String, String, String, u64);

/// The state the writes up to `revision` leave: per table, key → (value, create, mod).
fn expected_at(
    writes: &[Write],
    revision: u64,
) -> BTreeMap<String, BTreeMap<String, (String, u64, u64)>> {
    let mut out: BTreeMap<String, BTreeMap<String, (String, u64, u64)>> = BTreeMap::new();
    for (table, key, value, rev) in writes.iter().filter(|w| w.3 <= revision) {
        let t = out.entry(table.clone()).or_default();
        let create = t.get(key).map_or(*rev, |e| e.1);
        t.insert(key.clone(), (value.clone(), create, *rev));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_replay_verify_and_point_in_time_restore() {
    phase("a core with small segments and frequent snapshots");
    let cluster = Cluster::start_with(1, ARCHIVING_CORE);
    cluster.wait_for_leader().await;
    let node = &cluster.nodes[0];
    let data_dir = node.data_dir.clone();
    let data = data_dir.display().to_string();
    let objects_url = format!("file://{}/objects", data);
    create_table(node, "t").await;
    create_table(node, "u").await;

    phase("writes: keys overwritten, two tables");
    let mut writes: Vec<Write> = Vec::new();
    for i in 0..240u32 {
        let table = if i % 3 == 0 { "u" } else { "t" };
        let key = format!("key{:02}", i % 70);
        let value = format!("v{i}");
        let rev = put(node, table, &key, &value).await.expect("put");
        writes.push((table.into(), key, value, rev));
    }
    let last = writes.last().unwrap().3;

    phase("segments land in the object store and the local log is purged behind them");
    let log_dir = data_dir.join("log");
    wait_until(
        "the archive passed the middle of the writes and the log was purged",
        || {
            let log_dir = log_dir.clone();
            let mid = writes[120].3;
            async move {
                let archived = metric(node, "regatta_archive_last_index")
                    .await
                    .unwrap_or(0.0);
                archived >= mid as f64 && local_segments(&log_dir).first().is_some_and(|f| *f > mid)
            }
        },
    )
    .await;
    assert!(
        metric(node, "regatta_archive_segments_uploaded_total")
            .await
            .unwrap()
            >= 2.0
    );
    let listed = backup_list(&objects_url);
    let segments = listed["segments"].as_array().unwrap();
    assert!(segments.len() >= 2, "{listed}");
    assert!(
        !listed["snapshots"].as_array().unwrap().is_empty(),
        "{listed}"
    );
    assert!(
        segments[0]["key"]
            .as_str()
            .unwrap()
            .starts_with("segments/0000")
    );

    phase("replay over archived and local segments: every change once, in order");
    let first_local = local_segments(&log_dir)[0];
    let from = writes[0].3;
    assert!(
        from < first_local && first_local < last,
        "range spans archive and local log"
    );
    let from_s = from.to_string();
    let last_s = last.to_string();
    // The committed pointer on disk trails the node by up to a moment.
    wait_until("the last write is committed on disk", || async {
        regatta(&[
            "log",
            "replay",
            "--data-dir",
            &data,
            "--from",
            &last_s,
            "--to",
            &last_s,
        ])
        .status
        .success()
    })
    .await;
    let out = regatta(&[
        "log",
        "replay",
        "--data-dir",
        &data,
        "--from",
        &from_s,
        "--to",
        &last_s,
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let seen: Vec<(String, String, String, u64)> = stdout(&out)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("one JSON object per line");
            assert_eq!(v["op"], "put");
            assert!(v["term"].as_u64().unwrap() >= 1);
            assert!(v["proposed_at_micros"].as_u64().unwrap() > 0);
            (
                v["table"].as_str().unwrap().to_string(),
                v["key"].as_str().unwrap().to_string(),
                v["value"].as_str().unwrap().to_string(),
                v["revision"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(seen, writes, "replay shows exactly the writes made");

    let text = regatta(&[
        "log",
        "replay",
        "--data-dir",
        &data,
        "--from",
        &from_s,
        "--to",
        &last_s,
    ]);
    assert!(text.status.success());
    assert_eq!(stdout(&text).lines().count(), writes.len());

    phase("replay filters: table and prefix");
    let out = regatta(&[
        "log",
        "replay",
        "--data-dir",
        &data,
        "--table",
        "u",
        "--prefix",
        "key1",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let filtered: Vec<u64> = stdout(&out)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["revision"]
                .as_u64()
                .unwrap()
        })
        .collect();
    let want: Vec<u64> = writes
        .iter()
        .filter(|w| w.0 == "u" && w.1.starts_with("key1"))
        .map(|w| w.3)
        .collect();
    assert!(!want.is_empty());
    assert_eq!(filtered, want);

    phase("point-in-time restore to a revision inside an archived segment");
    let target = writes[100].3;
    assert!(target < first_local, "the target is only in the archive");
    let root = tempfile::tempdir().unwrap();
    let (mut restored, out) = restore_to_fresh_core(&objects_url, target, root.path());
    assert!(out.status.success(), "{}", stderr(&out));
    start_restored(&mut restored).await;
    let expected = expected_at(&writes, target);
    for table in ["t", "u"] {
        let got: BTreeMap<String, (String, u64, u64)> = dump(&restored, table)
            .await
            .expect("dump")
            .into_iter()
            .map(|(k, v, c, m)| {
                (
                    String::from_utf8(k).unwrap(),
                    (String::from_utf8(v).unwrap(), c as u64, m as u64),
                )
            })
            .collect();
        assert_eq!(&got, &expected[table], "table {table} at revision {target}");
    }
    let rev = put(&restored, "t", "after", "restore")
        .await
        .expect("restored node takes writes");
    assert!(rev > target);
    restored.terminate();

    phase("verify passes on a healthy store");
    let ok = regatta(&["log", "verify", "--data-dir", &data]);
    assert!(ok.status.success(), "{}{}", stdout(&ok), stderr(&ok));
    assert!(stdout(&ok).starts_with("ok:"), "{}", stdout(&ok));

    phase("verify names an archived segment with one flipped byte");
    let objects = data_dir.join("objects").join("segments");
    let mut names: Vec<String> = std::fs::read_dir(&objects)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let victim = &names[1];
    let path = objects.join(victim);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() / 2 + 10;
    bytes[at] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
    let bad = regatta(&["log", "verify", "--data-dir", &data]);
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains(&format!("segments/{victim}")),
        "the fault names the object: {}",
        stderr(&bad)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_create_uploads_a_snapshot_now_that_lists_and_restores() {
    phase("three core nodes sharing a file:// object store, periodic snapshots off");
    let objects = tempfile::tempdir().unwrap();
    let objects_url = format!("file://{}", objects.path().display());
    let store_arg = format!("--object-store={objects_url}");
    let cluster = Cluster::start_with(
        3,
        &[
            &store_arg,
            "--object-store.snapshot-entries=1000000",
            "--object-store.snapshot-interval=1h",
        ],
    );
    let leader_id = cluster.wait_for_leader().await;
    let leader = cluster.nodes.iter().find(|n| n.id == leader_id).unwrap();
    let follower = cluster.nodes.iter().find(|n| n.id != leader_id).unwrap();
    create_table(leader, "t").await;
    let mut last = 0;
    for i in 0..40 {
        last = put(leader, "t", &format!("key{i:02}"), &format!("value{i}"))
            .await
            .expect("put");
    }
    let listed = backup_list(&objects_url);
    assert!(
        listed["snapshots"].as_array().unwrap().is_empty(),
        "no snapshot before backup create: {listed}"
    );

    phase("backup create on a follower: a snapshot at or after the last acknowledged write");
    let out = regatta(&["backup", "create", "--address", &follower.api, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let created: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let revision = created["revision"].as_u64().unwrap();
    assert!(revision >= last, "snapshot {revision} before write {last}");
    let key = created["key"].as_str().unwrap();
    assert_eq!(
        key,
        format!("snapshots/{revision:020}.snap.zst"),
        "{created}"
    );
    assert!(created["size"].as_u64().unwrap() > 0, "{created}");
    assert!(objects.path().join(key).is_file());

    phase("backup list shows it; the human output names key and revision");
    let listed = backup_list(&objects_url);
    let revisions = snapshot_revisions(&listed);
    assert!(revisions.contains(&revision), "{listed}");
    let out = regatta(&["backup", "create", "--address", &leader.api]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!(
            "snapshot at revision {revision} already in the object store (no write since): {key}"
        )),
        "no write since: the same revision and key, not uploaded again: {}",
        stdout(&out)
    );
    let out = regatta(&["backup", "create", "--address", &leader.api, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let again: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(again["existing"], true, "{again}");
    assert_eq!(again["size"], created["size"], "{again}");
    assert_eq!(created["existing"], false, "{created}");

    phase("restore --from the snapshot gives the cluster's data");
    let root = tempfile::tempdir().unwrap();
    let (mut restored, out) = restore_to_fresh_core(&objects_url, revision, root.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).lines().any(|l| l
            .starts_with(&format!("restore: loading snapshot {revision}: "))
            && l.contains("/s")),
        "a plain progress line for the download: {}",
        stderr(&out)
    );
    start_restored(&mut restored).await;
    assert_eq!(
        dump(&restored, "t").await.expect("restored dump"),
        dump(leader, "t").await.expect("cluster dump")
    );
    restored.terminate();

    phase("a write since: backup create uploads a newer snapshot");
    let newer = put(leader, "t", "key40", "value40").await.expect("put");
    let out = regatta(&["backup", "create", "--address", &leader.api, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let fresh: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert!(fresh["revision"].as_u64().unwrap() >= newer, "{fresh}");
    assert_eq!(fresh["existing"], false, "{fresh}");
    let fresh_key = fresh["key"].as_str().unwrap();
    assert!(objects.path().join(fresh_key).is_file(), "{fresh}");

    phase("a failing upload and an unreachable node: clear errors, non-zero exits");
    std::fs::remove_dir_all(objects.path().join("snapshots")).unwrap();
    std::fs::write(objects.path().join("snapshots"), b"not a directory").unwrap();
    let out = regatta(&["backup", "create", "--address", &leader.api]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("uploading the snapshot"),
        "{}",
        stderr(&out)
    );
    let out = regatta(&["backup", "create", "--address", "http://127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot connect"), "{}", stderr(&out));
}

/// Runs the CLI with `args` and asserts it exits with `code` and says each of `says` on
/// stderr.
fn refused(args: &[&str], code: i32, says: &[&str]) {
    let out = regatta(args);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
    for text in says {
        assert!(stderr(&out).contains(text), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn bad_input_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing").display().to_string();
    let here = dir.path().display().to_string();
    refused(
        &["log", "replay", "--data-dir", &missing],
        2,
        &["no such directory"],
    );
    refused(
        &[
            "log",
            "replay",
            "--data-dir",
            &here,
            "--from",
            "9",
            "--to",
            "3",
        ],
        2,
        &["--from 9 is after --to 3"],
    );
    let nowhere = ["restore", "--from", "file:///nowhere"];
    refused(
        &[
            &nowhere[..],
            &["--data-dir", &missing, "--address", "http://127.0.0.1:1"],
        ]
        .concat(),
        2,
        &["--data-dir and --address http://127.0.0.1:1 exclude each other"],
    );
    // An unreachable node is named.
    refused(
        &[&nowhere[..], &["--address", "http://127.0.0.1:1"]].concat(),
        3,
        &["cannot connect", "http://127.0.0.1:1"],
    );
    // --raft.node-id needs --data-dir.
    refused(&[&nowhere[..], &["--raft.node-id", "2"]].concat(), 2, &[]);
    refused(
        &["backup", "--address", "grpc://127.0.0.1:1"],
        2,
        &["scheme"],
    );
    refused(&["log", "verify"], 2, &[]);
}

/// Keys and values of a table, in key order.
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// A table's [`Pairs`] (a restore writes new revisions, so they are left out).
async fn pairs(node: &Node, table: &str) -> Pairs {
    dump(node, table)
        .await
        .expect("dump")
        .into_iter()
        .map(|(k, v, _, _)| (k, v))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn point_in_time_restore_into_running_clusters() {
    phase("a core archiving small segments and frequent snapshots to file://");
    let cluster = Cluster::start_with(1, ARCHIVING_CORE);
    cluster.wait_for_leader().await;
    let node = &cluster.nodes[0];
    let objects_url = format!("file://{}/objects", node.data_dir.display());
    create_table(node, "t").await;
    // u has a configuration, which a restore into a cluster must carry over.
    let u_config = prost_types::Struct {
        fields: [(
            "retention".to_string(),
            prost_types::Value {
                kind: Some(prost_types::value::Kind::StringValue("7d".into())),
            },
        )]
        .into(),
    };
    node.tables()
        .await
        .create(CreateTableRequest {
            name: "u".into(),
            config: Some(u_config.clone()),
        })
        .await
        .expect("create u with a configuration");

    phase("writes, with full dumps of both tables at a few revisions in the middle");
    let mut at: BTreeMap<u64, BTreeMap<&str, Pairs>> = BTreeMap::new();
    let mut last = 0;
    for i in 0..240u32 {
        let table = if i % 3 == 0 { "u" } else { "t" };
        last = put(node, table, &format!("key{:02}", i % 70), &format!("v{i}"))
            .await
            .expect("put");
        if i == 100 {
            // Candidates must come after a snapshot, so that restoring one replays archived
            // entries on top of it: wait for the first upload (its timing is the uploader's).
            let snapshots = node.data_dir.join("objects").join("snapshots");
            wait_until("a first snapshot is uploaded", || async {
                std::fs::read_dir(&snapshots).is_ok_and(|d| {
                    d.flatten()
                        .any(|e| e.file_name().to_string_lossy().ends_with(".snap.zst"))
                })
            })
            .await;
        }
        if (100..106).contains(&i) {
            let mut dumps = BTreeMap::new();
            for t in ["t", "u"] {
                dumps.insert(t, pairs(node, t).await);
            }
            at.insert(last, dumps);
        }
    }
    phase("more writes: keys that did not exist at those revisions");
    for i in 0..10 {
        last = put(node, "t", &format!("late{i}"), "x").await.expect("put");
    }

    phase("the candidates are archived; pick one inside a segment and on no snapshot");
    let newest = *at.keys().last().unwrap();
    wait_until("the archive passed the candidates", || async {
        metric(node, "regatta_archive_last_index")
            .await
            .is_some_and(|archived| archived > newest as f64)
    })
    .await;
    let listed = backup_list(&objects_url);
    let snapshots = snapshot_revisions(&listed);
    let inside = |r: u64| {
        listed["segments"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["first"].as_u64().unwrap() < r && r < s["last"].as_u64().unwrap())
    };
    let target = *at
        .keys()
        .find(|r| inside(**r) && !snapshots.contains(r))
        .unwrap_or_else(|| panic!("no candidate inside an archived segment: {listed}"));
    assert!(
        snapshots.iter().any(|s| *s < target),
        "a snapshot below the target, so the restore replays archived entries after it: {listed}"
    );
    let expected = &at[&target];
    assert_ne!(pairs(node, "t").await, expected["t"], "t moved on since");
    let target_s = target.to_string();

    phase("restore --table t at the target into the same running core: t replaced, u untouched");
    let u_now = pairs(node, "u").await;
    let out = regatta(&[
        "restore",
        "--from",
        &objects_url,
        "--revision",
        &target_s,
        "--table",
        "t",
        "--address",
        &node.api,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).lines().any(|l| l.starts_with("restored t: ")),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out)
            .lines()
            .any(|l| l.starts_with("restore: ") && l.contains("/s")),
        "a plain progress line: {}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains(&format!("restored 1 table(s) at revision {target}")),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        pairs(node, "t").await,
        expected["t"],
        "t at revision {target}"
    );
    assert_eq!(pairs(node, "u").await, u_now, "u was not chosen");
    let rev = put(node, "t", "after", "restore").await.expect("put");
    assert!(rev > last, "the restore wrote new revisions");

    phase("restore every table at the target into a second, fresh core: both created");
    let fresh = Cluster::start(1);
    fresh.wait_for_leader().await;
    let out = regatta(&[
        "restore",
        "--from",
        &objects_url,
        "--revision",
        &target_s,
        "--address",
        &fresh.nodes[0].api,
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let answer: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(answer["revision"].as_u64(), Some(target), "{answer}");
    assert_eq!(
        answer["restored"],
        serde_json::json!(["t", "u"]),
        "{answer}"
    );
    for t in ["t", "u"] {
        assert_eq!(
            pairs(&fresh.nodes[0], t).await,
            expected[t],
            "{t} at revision {target}"
        );
    }
    let listed = fresh.nodes[0]
        .tables()
        .await
        .list(ListTablesRequest {})
        .await
        .expect("list tables")
        .into_inner()
        .tables;
    let config_of = |name: &str| {
        listed
            .iter()
            .find(|t| t.name == name)
            .and_then(|t| t.config.clone())
    };
    assert_eq!(config_of("u"), Some(u_config.clone()), "{listed:?}");
    assert_eq!(config_of("t"), None, "{listed:?}");

    phase("through an edge of the fresh core: the edge forwards the restore to its core");
    let mut edge = Edge::new(
        "edge",
        fresh.dir.path(),
        vec![fresh.nodes[0].replication.clone()],
    );
    edge.start();
    wait_converged(&fresh.nodes[0], &edge.node, "the edge caught up").await;
    put(&fresh.nodes[0], "u", "late", "x").await.expect("put");
    let out = regatta(&[
        "restore",
        "--from",
        &objects_url,
        "--revision",
        &target_s,
        "--table",
        "u",
        "--address",
        &edge.node.api,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(pairs(&fresh.nodes[0], "u").await, expected["u"]);
    wait_converged(&fresh.nodes[0], &edge.node, "the edge applied the restore").await;
    assert_eq!(pairs(&edge.node, "u").await, expected["u"]);

    phase("a revision beyond the archive and an unknown table: clear errors, nothing written");
    let beyond = (last + 1_000_000).to_string();
    let out = regatta(&[
        "restore",
        "--from",
        &objects_url,
        "--revision",
        &beyond,
        "--address",
        &fresh.nodes[0].api,
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("revision {beyond} cannot be restored")),
        "{}",
        stderr(&out)
    );
    let out = regatta(&[
        "restore",
        "--from",
        &objects_url,
        "--revision",
        &target_s,
        "--table",
        "nope",
        "--address",
        &fresh.nodes[0].api,
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("table nope does not exist at revision {target}")),
        "{}",
        stderr(&out)
    );
    assert_eq!(pairs(&fresh.nodes[0], "t").await, expected["t"]);
}

/// Runs `regatta ARGS` with its output read by a reader that takes the first line and goes
/// away, as `| head -1` does: the exit status and what the tool printed on stderr.
fn first_line_then_leave(args: &[&str]) -> (Option<i32>, String) {
    use std::io::{BufRead, BufReader, Read};
    use std::process::{Command, Stdio};
    let mut child = Command::new(binary())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run regatta");
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .expect("read the first line");
    assert!(!first.is_empty(), "regatta {args:?} printed nothing");
    // The pipe's read end is closed here; the tool still has more to print than a pipe holds.
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (child.wait().expect("wait for regatta").code(), err)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edges_log_replays_as_the_cores_and_a_reader_that_leaves_ends_the_tools_quietly() {
    phase("a core and an edge following it; 100 writes of 1 KiB values");
    let cluster = Cluster::start_with(1, &[]);
    cluster.wait_for_leader().await;
    let node = &cluster.nodes[0];
    let mut edge = Edge::new("edge", cluster.dir.path(), vec![node.replication.clone()]);
    edge.start();
    create_table(node, "t").await;
    let value = "v".repeat(1024);
    let mut revisions = Vec::new();
    for i in 0..100 {
        revisions.push(
            put(node, "t", &format!("key{i:03}"), &value)
                .await
                .expect("put"),
        );
    }
    let (first, last) = (revisions[0].to_string(), revisions[99].to_string());
    wait_until("the edge serves the last write", || async {
        get(&edge.node, "t", "key099", false)
            .await
            .is_ok_and(|v| v.is_some())
    })
    .await;

    phase("log replay of the edge's data directory shows what the core's shows");
    let replay = |node: &Node| {
        regatta(&[
            "log",
            "replay",
            "--data-dir",
            &node.data_dir.display().to_string(),
            "--from",
            &first,
            "--to",
            &last,
        ])
    };
    // The core's committed pointer on disk trails the node by up to a moment.
    wait_until("the last write is committed on the core's disk", || async {
        replay(node).status.success()
    })
    .await;
    let at_core = replay(node);
    let at_edge = replay(&edge.node);
    assert!(at_edge.status.success(), "{}", stderr(&at_edge));
    assert_eq!(stdout(&at_core).lines().count(), 100);
    assert_eq!(
        stdout(&at_edge),
        stdout(&at_core),
        "the edge's log holds the core's history"
    );
    let beyond = (revisions[99] + 1000).to_string();
    let out = regatta(&[
        "log",
        "replay",
        "--data-dir",
        &edge.node.data_dir.display().to_string(),
        "--to",
        &beyond,
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not committed"),
        "past the edge's log: {}",
        stderr(&out)
    );
    let out = regatta(&[
        "log",
        "verify",
        "--data-dir",
        &edge.node.data_dir.display().to_string(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));

    phase("a reader that leaves after one line: status 141 as after SIGPIPE, nothing on stderr");
    let core_data = node.data_dir.display().to_string();
    for args in [
        vec!["kv", "range", "t", "--address", node.api.as_str()],
        vec!["log", "replay", "--data-dir", core_data.as_str()],
    ] {
        let (code, err) = first_line_then_leave(&args);
        assert_eq!(code, Some(141), "regatta {args:?}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("error"),
            "regatta {args:?} printed: {err}"
        );
    }
}
