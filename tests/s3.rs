//! End-to-end: the core and edges on S3-compatible object storage (a moto server started
//! by the test on loopback), real processes.
//!
//! Needs `scripts/install-test-deps` (the moto server in `.cache/moto-venv`).

#![allow(clippy::unwrap_used)]

mod common;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use common::*;
use futures::stream::BoxStream;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult, UploadPart,
    path::Path as ObjectPath,
};
use regatta_materializer::{Revision, snapshot::SnapshotStore};

type Rows = Vec<(Vec<u8>, Vec<u8>, i64, i64)>;

/// Small thresholds so that snapshots come quickly: every 100 entries or every second.
const FAST_UPLOADS: [&str; 3] = [
    "--object-store.snapshot-entries=100",
    "--object-store.snapshot-interval=1s",
    "--object-store.timeout=1s",
];

fn core_args(s3: &S3Server, prefix: &str, extra: &[&str]) -> Vec<String> {
    let mut args = s3.node_args(prefix);
    args.extend(FAST_UPLOADS.iter().map(|s| s.to_string()));
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// The revisions of the snapshots under `<prefix>/snapshots/`, listed through the S3 API.
async fn snapshot_revisions(s3: &S3Server, prefix: &str) -> Vec<u64> {
    s3.keys(&format!("{prefix}/snapshots"))
        .await
        .iter()
        .filter_map(|k| {
            k.rsplit('/')
                .next()?
                .strip_suffix(".snap.zst")?
                .parse()
                .ok()
        })
        .collect()
}

/// A counter or gauge from a node's /metrics (0 when absent).
async fn metric(node: &Node, name: &str) -> f64 {
    let body = node.http_body("/metrics").await.unwrap_or_default();
    body.lines()
        .find_map(|l| {
            let (n, v) = l.split_once(' ')?;
            (n == name).then(|| v.trim().parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}

/// The rows of `table` in the snapshot at `revision`, read back through the S3 API, in the
/// same form as [`dump`].
async fn snapshot_rows(s3: &S3Server, prefix: &str, revision: u64, table: &str) -> Rows {
    let snaps = SnapshotStore::new(Arc::new(s3.client()), prefix);
    let state = snaps.download(Revision(revision)).await.expect("download");
    state
        .table(table)
        .expect("table in the snapshot")
        .iter()
        .map(|r| {
            (
                r.key().to_vec(),
                r.value().to_vec(),
                i64::try_from(r.create_revision()).unwrap(),
                i64::try_from(r.mod_revision()).unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_land_under_the_prefix_and_a_new_edge_bootstraps_from_them() {
    phase("an S3 server and a core that snapshots and compacts its log often");
    let s3 = S3Server::start("regatta");
    let prefix = "clusters/a";
    let args = core_args(
        &s3,
        prefix,
        &[
            "--raft.snapshot-entries=50",
            "--raft.keep-entries=5",
            "--log.segment-size=4096",
        ],
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let cluster = Cluster::start_with(1, &args);
    cluster.wait_for_leader().await;
    let core = &cluster.nodes[0];
    create_table(core, "t").await;

    phase("300 writes: snapshots are uploaded under the prefix, nothing outside it");
    let mut last = 0;
    for i in 0..300 {
        last = put(core, "t", &format!("k{i:04}"), &format!("v{i}"))
            .await
            .expect("put");
    }
    wait_until(
        "a snapshot at the last write's revision is in the bucket",
        || async { snapshot_revisions(&s3, prefix).await.last() >= Some(&last) },
    )
    .await;
    let all = s3.keys("").await;
    assert!(
        all.iter().all(|k| k.starts_with("clusters/a/")),
        "every key under the prefix: {all:?}"
    );
    let newest = *snapshot_revisions(&s3, prefix).await.last().unwrap();
    assert_eq!(
        snapshot_rows(&s3, prefix, newest, "t").await,
        dump(core, "t").await.expect("dump"),
        "the newest snapshot holds the core's table"
    );

    // A core purges its log only once it is archived and a snapshot covers it, after the
    // upload: wait for that, or a fast edge could still follow the log from its start.
    wait_until(
        "the core's log no longer starts at its first entry",
        || async {
            core.http_body("/metrics").await.is_some_and(|body| {
                body.lines()
                    .find_map(|l| {
                        l.strip_prefix("regatta_log_first_index ")?
                            .trim()
                            .parse::<u64>()
                            .ok()
                    })
                    .is_some_and(|first| first > 1)
            })
        },
    )
    .await;

    phase("a new edge on the same object store bootstraps from it and ends with the core's state");
    let mut edge = Edge::new("edge", cluster.dir.path(), vec![core.replication.clone()]);
    edge.node.args = s3.node_args(prefix);
    edge.start();
    wait_converged(core, &edge.node, "the edge bootstrapped and caught up").await;
    assert_eq!(
        dump_all(&edge.node).await.expect("edge dump"),
        dump_all(core).await.expect("core dump")
    );
    assert_eq!(
        edge.metric("regatta_edge_bootstraps_total").await,
        Some(1.0)
    );
    let log = std::fs::read_to_string(edge.node.log_path()).unwrap_or_default();
    assert!(
        log.contains("ObjectStore(") && !log.contains("object store snapshot unusable"),
        "the edge bootstrapped from the object store, not from its upstream"
    );
    let progress = log
        .lines()
        .find(|l| l.contains("bootstrap: downloading snapshot"))
        .unwrap_or_else(|| panic!("no download progress line in the edge's log:\n{log}"));
    assert!(
        progress.contains("done=") && progress.contains("total=") && progress.contains("rate="),
        "bytes done out of the object's size, and the rate: {progress}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_go_on_while_s3_is_down_and_uploads_catch_up() {
    phase("an S3 server and a core uploading every 100 entries; 200 writes, 8 at a time");
    let s3 = S3Server::start("regatta");
    let prefix = "outage";
    let args = core_args(&s3, prefix, &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let cluster = Cluster::start_with(1, &args);
    cluster.wait_for_leader().await;
    let core = &cluster.nodes[0];
    create_table(core, "t").await;
    let mut baseline = Vec::new();
    for round in 0..25 {
        baseline.extend(write_round(core, "before", round).await.0);
    }
    wait_until("a first snapshot is uploaded", || async {
        metric(core, "regatta_snapshot_uploads_total").await >= 1.0
    })
    .await;
    let failures_before = metric(core, "regatta_snapshot_upload_failures_total").await;

    phase("S3 stops answering; writes go on at their usual latency until uploads are seen failing");
    s3.pause();
    let mut during = Vec::new();
    let mut last = 0;
    let deadline = Instant::now() + WAIT;
    let mut round = 0;
    while during.len() < 2_000
        || metric(core, "regatta_snapshot_upload_failures_total").await <= failures_before
    {
        assert!(
            Instant::now() < deadline,
            "no upload failure on /metrics within {WAIT:?} of the outage"
        );
        let (latencies, revision) = write_round(core, "during", round).await;
        during.extend(latencies);
        last = last.max(revision);
        round += 1;
    }
    let log = std::fs::read_to_string(core.log_path()).unwrap_or_default();
    if let Some(line) = log.lines().find(|l| l.contains("snapshot upload failed")) {
        eprintln!("first upload failure seen: {line}");
    }
    let (base_p50, base_max) = summary(&mut baseline);
    let (p50, max) = summary(&mut during);
    eprintln!(
        "write latency before the outage: p50 {base_p50:?} max {base_max:?}; during: p50 {p50:?} max {max:?} over {} writes",
        during.len()
    );
    assert!(
        max < Duration::from_secs(2),
        "a write took {max:?} during the outage (an upload request times out after 1s)"
    );
    assert!(
        p50 <= base_p50 * 5 + Duration::from_millis(20),
        "writes slowed down during the outage: p50 {p50:?}, before {base_p50:?}"
    );

    phase("S3 answers again: a snapshot at or past the last write lands, with every write in it");
    s3.resume();
    wait_until(
        "a snapshot at or past the last write's revision is in the bucket",
        || async { snapshot_revisions(&s3, prefix).await.last() >= Some(&last) },
    )
    .await;
    let newest = *snapshot_revisions(&s3, prefix).await.last().unwrap();
    let rows = snapshot_rows(&s3, prefix, newest, "t").await;
    assert_eq!(rows.len(), baseline.len() + during.len(), "nothing lost");
    assert_eq!(rows, dump(core, "t").await.expect("dump"));
}

/// Eight puts at once (distinct keys `<prefix>-<round>-<i>`); their latencies and the
/// highest revision acknowledged.
async fn write_round(core: &Node, prefix: &str, round: usize) -> (Vec<Duration>, u64) {
    let puts = (0..8).map(|i| async move {
        let started = Instant::now();
        let revision = put(core, "t", &format!("{prefix}-{round:05}-{i}"), "v")
            .await
            .expect("put");
        (started.elapsed(), revision)
    });
    let done = futures::future::join_all(puts).await;
    let last = done.iter().map(|(_, r)| *r).max().unwrap_or(0);
    (done.into_iter().map(|(d, _)| d).collect(), last)
}

/// Median and maximum of `samples` (sorted in place).
fn summary(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort_unstable();
    (samples[samples.len() / 2], samples[samples.len() - 1])
}

/// Runs `regatta <role> … --object-store=<url>` and returns its exit code and output; the
/// process must exit by itself.
fn run_with_object_store(role: &str, url: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let port = |name: &str| format!("--{name}=http://127.0.0.1:{}", free_port());
    let mut cmd = std::process::Command::new(binary());
    cmd.arg(role);
    if role == "core" {
        cmd.arg("--raft.node-id=1").arg(port("raft.address"));
    } else {
        cmd.arg(port("replication.leader-address"));
    }
    let mut child = cmd
        .arg(port("api.address"))
        .arg(port("rest.address"))
        .arg(port("replication.address"))
        .arg(format!("--data-dir={}", dir.path().display()))
        .arg(format!("--object-store={url}"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start regatta");
    let deadline = Instant::now() + WAIT;
    loop {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return (out.status.code(), text);
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("regatta {role} --object-store={url} kept running");
        }
        std::thread::sleep(Duration::from_millis(20)); // poll interval
    }
}

#[test]
fn bad_object_store_urls_stop_startup_with_a_clear_error() {
    phase("core and edge refuse malformed object store URLs");
    let cases = [
        ("s3://", "no bucket"),
        ("s3:///prefix", "no bucket"),
        ("gs://", "no bucket"),
        ("az:///x", "no bucket"),
        ("ftp://host/dir", "unsupported scheme"),
        ("file://relative/dir", "absolute path"),
        ("/plain/path", "not a URL"),
    ];
    for role in ["core", "edge"] {
        for (url, expected) in cases {
            let (code, output) = run_with_object_store(role, url);
            assert!(
                code.is_some_and(|c| c != 0),
                "regatta {role} --object-store={url}: exit {code:?}\n{output}"
            );
            assert!(
                output.contains(expected) && output.contains(url),
                "regatta {role} --object-store={url}: expected {expected:?} in\n{output}"
            );
        }
    }
}

/// The bucket of an S3 server whose multipart uploads fail at part `fail_at` (from 0):
/// everything else, abort included, goes to the server.
#[derive(Debug)]
struct FailingParts {
    inner: Arc<dyn ObjectStore>,
    fail_at: usize,
}

impl std::fmt::Display for FailingParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FailingParts({})", self.inner)
    }
}

#[tonic::async_trait]
impl ObjectStore for FailingParts {
    async fn put_opts(
        &self,
        location: &ObjectPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &ObjectPath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(FailingUpload {
            inner,
            parts: 0,
            fail_at: self.fail_at,
        }))
    }

    async fn get_opts(
        &self,
        location: &ObjectPath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[derive(Debug)]
struct FailingUpload {
    inner: Box<dyn MultipartUpload>,
    parts: usize,
    fail_at: usize,
}

#[tonic::async_trait]
impl MultipartUpload for FailingUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.parts += 1;
        if self.parts > self.fail_at {
            return Box::pin(async {
                Err(object_store::Error::Generic {
                    store: "FailingParts",
                    source: "injected part failure".into(),
                })
            });
        }
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        self.inner.complete().await
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.inner.abort().await
    }
}

/// A state whose snapshot is about `mib` MiB (values that do not compress).
fn incompressible_state(mib: usize) -> Arc<regatta_materializer::State> {
    use regatta_proto::event::{CreateTable, Event, Put, event::Kind};
    let event = |kind| Event {
        version: 1,
        proposed_at_micros: 0,
        kind: Some(kind),
    };
    let mut events = vec![event(Kind::CreateTable(CreateTable {
        name: "t".into(),
        config: None,
    }))];
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for i in 0..mib * 16 {
        let value: Vec<u8> = (0..64 * 1024)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        events.push(event(Kind::Put(Put {
            table: b"t".to_vec().into(),
            key: format!("key{i:05}").into_bytes().into(),
            value: value.into(),
            prev_kv: false,
            ttl_millis: 0,
        })));
    }
    let m = regatta_materializer::Materializer::default();
    m.apply_events(
        events
            .iter()
            .enumerate()
            .map(|(i, e)| (Revision(i as u64 + 1), e)),
    )
    .expect("apply");
    m.view()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_snapshot_upload_leaves_no_multipart_upload_behind() {
    phase("an S3 server; a ~20 MiB state: three 8 MiB parts");
    let s3 = S3Server::start("regatta");
    let state = incompressible_state(20);
    let real: Arc<dyn ObjectStore> = Arc::new(s3.client());

    phase("the probe sees an upload begun and not finished");
    let mut open = real
        .put_multipart(&ObjectPath::from("probe/open"))
        .await
        .expect("begin");
    open.put_part(PutPayload::from_static(b"part"))
        .await
        .expect("part");
    assert_eq!(s3.incomplete_uploads(), ["probe/open"]);
    open.abort().await.expect("abort");
    assert_eq!(s3.incomplete_uploads(), Vec::<String>::new());

    for fail_at in [0, 1, 2] {
        phase(&format!(
            "part {fail_at} fails: the upload fails and is aborted"
        ));
        let failing = SnapshotStore::new(
            Arc::new(FailingParts {
                inner: real.clone(),
                fail_at,
            }),
            "aborts",
        );
        let error = failing
            .upload(state.clone())
            .await
            .expect_err("a part failed");
        assert!(
            format!("{error}").contains("injected part failure"),
            "the part's error: {error}"
        );
        assert_eq!(
            s3.incomplete_uploads(),
            Vec::<String>::new(),
            "no multipart upload left behind"
        );
        assert!(s3.keys("aborts").await.is_empty(), "no snapshot visible");
    }

    phase("the same state uploads whole through the real store, and nothing is left over");
    let store = SnapshotStore::new(real, "aborts");
    let info = store.upload(state.clone()).await.expect("upload");
    assert!(info.size > 16 * 1024 * 1024, "three parts: {info:?}");
    assert_eq!(s3.incomplete_uploads(), Vec::<String>::new());
    assert_eq!(store.latest().await.expect("list"), Some(state.revision()));
}
