//! `regatta-bench backup`: snapshot upload and restore throughput against a local
//! S3-compatible server (moto) and a local directory (`file://`), in process.
//!
//! Loads `--keys` pairs (keys of 16–32 bytes, `--value-bytes` random values) through the
//! real apply path, then, `--runs` times per store: uploads the state as a snapshot
//! (`SnapshotStore::upload`: encode + zstd + multipart upload, as the core's uploader does),
//! downloads the object's bytes alone, and restores it (`SnapshotStore::download`: the
//! download, its checks and the decode into a state, as restore and edge bootstrap do).
//! Encode and decode from memory are measured too, so the store's share of each figure
//! shows.
//!
//! Throughput is reported in MiB/s of the snapshot object (compressed bytes moved) and in
//! keys per second. The moto server comes from `.cache/moto-venv` (created by
//! `scripts/install-test-deps`) or `--moto-server`; the bench starts it on a free loopback
//! port and stops it by its own process id when done.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use object_store::{ObjectStore, ObjectStoreExt};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use regatta_materializer::snapshot::{self, SnapshotStore};
use regatta_materializer::{Materializer, Revision, State};
use regatta_proto::event::{CreateTable, Event, Put, event::Kind};
use serde_json::{Value, json};

use crate::report::Report;

/// Settings of the scenario.
#[derive(clap::Args)]
pub struct Args {
    /// Number of keys in the state.
    #[arg(long, default_value_t = 1_000_000)]
    keys: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    value_bytes: usize,
    /// Uploads and restores per store; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Stores to measure, comma-separated: `s3` (moto) and `file`.
    #[arg(long, value_delimiter = ',', default_value = "s3,file")]
    stores: Vec<String>,
    /// Directory of the `file://` store and of moto's log (the disk under test; default the
    /// system temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The moto server executable (default: `.cache/moto-venv/bin/moto_server` in the
    /// workspace, created by `scripts/install-test-deps`).
    #[arg(long)]
    moto_server: Option<PathBuf>,
}

const TABLE: &str = "bench";
const APPLY_BATCH: usize = 50_000;
const MIB: f64 = 1024.0 * 1024.0;

pub fn run(args: Args) -> Result<()> {
    if args.keys == 0 || args.runs == 0 {
        bail!("--keys and --runs must be positive");
    }
    for store in &args.stores {
        if store != "s3" && store != "file" {
            bail!("--stores takes s3 and file, not {store:?}");
        }
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(scenario(&args))?
        .print();
    Ok(())
}

fn key(i: usize, rng: &mut StdRng) -> Bytes {
    // 16–32 bytes: a spreading prefix, the index (unique), then random letters.
    let len = rng.random_range(16..=32);
    let mut k = format!("{:08x}{i:08}", (i as u64).wrapping_mul(0x9e37_79b9) as u32).into_bytes();
    while k.len() < len {
        k.push(b'a' + rng.random_range(0..26u8));
    }
    k.truncate(len);
    Bytes::from(k)
}

/// The state: one table of `keys` random pairs, applied in batches as a core would.
fn load(args: &Args) -> Result<(Arc<State>, u64)> {
    let materializer = Materializer::default();
    let mut rng = StdRng::seed_from_u64(6);
    let create = Event {
        version: 1,
        proposed_at_micros: 0,
        kind: Some(Kind::CreateTable(CreateTable {
            name: TABLE.into(),
            config: None,
        })),
    };
    materializer.apply_events([(Revision(1), &create)])?;
    let mut revision = 1u64;
    let mut raw = 0u64;
    let mut done = 0;
    while done < args.keys {
        let n = APPLY_BATCH.min(args.keys - done);
        let events: Vec<Event> = (done..done + n)
            .map(|i| {
                let key = key(i, &mut rng);
                let mut value = vec![0u8; args.value_bytes];
                rng.fill_bytes(&mut value);
                raw += (key.len() + value.len()) as u64;
                Event {
                    version: 1,
                    proposed_at_micros: 0,
                    kind: Some(Kind::Put(Put {
                        table: TABLE.as_bytes().to_vec().into(),
                        key,
                        value: value.into(),
                        prev_kv: false,
                        ttl_millis: 0,
                    })),
                }
            })
            .collect();
        materializer.apply_events(events.iter().map(|e| {
            revision += 1;
            (Revision(revision), e)
        }))?;
        done += n;
    }
    Ok((materializer.view(), raw))
}

/// The moto server, stopped (by its own pid) on drop.
struct Moto {
    child: Child,
    endpoint: String,
    log: PathBuf,
}

impl Moto {
    fn start(executable: &Path, scratch: &Path, bucket: &str) -> Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log = scratch.join("moto.log");
        let out = std::fs::File::create(&log)?;
        let child = Command::new(executable)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {}", executable.display()))?;
        let mut moto = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
        };
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while http(&addr, "GET", "/").is_none() {
            if let Some(status) = moto.child.try_wait()? {
                bail!("moto exited ({status}); see {}", moto.log.display());
            }
            if Instant::now() > deadline {
                bail!("moto did not answer within 30s; see {}", moto.log.display());
            }
            std::thread::sleep(Duration::from_millis(50)); // poll interval
        }
        match http(&addr, "PUT", &format!("/{bucket}")) {
            Some(200) => Ok(moto),
            other => bail!("creating bucket {bucket} on moto: HTTP {other:?}"),
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bodiless HTTP/1.0 request; its status code.
fn http(addr: &str, method: &str, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

fn moto_executable(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/moto-venv/bin/moto_server")
    })
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn rate(bytes: u64, secs: f64) -> f64 {
    round(bytes as f64 / MIB / secs.max(1e-9))
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Upload, raw download and restore of `state`, `runs` times, through `store`.
async fn measure(
    name: &str,
    store: Arc<dyn ObjectStore>,
    state: &Arc<State>,
    keys: usize,
    runs: usize,
) -> Result<Value> {
    let snapshots = SnapshotStore::new(store.clone(), "bench");
    let (mut upload, mut download, mut restore) = (Vec::new(), Vec::new(), Vec::new());
    let mut size = 0;
    for run in 1..=runs {
        let clock = Instant::now();
        let info = snapshots
            .upload(state.clone())
            .await
            .with_context(|| format!("{name}: upload"))?;
        upload.push(clock.elapsed().as_secs_f64());
        size = info.size;

        let clock = Instant::now();
        let got = store.get(&info.location).await?.bytes().await?.len() as u64;
        download.push(clock.elapsed().as_secs_f64());
        if got != size {
            bail!("{name}: downloaded {got} bytes of a {size}-byte object");
        }

        let clock = Instant::now();
        let restored = snapshots
            .download(info.revision)
            .await
            .with_context(|| format!("{name}: restore"))?;
        restore.push(clock.elapsed().as_secs_f64());
        if restored.revision() != state.revision() {
            bail!("{name}: restored revision {}", restored.revision());
        }
        drop(restored);
        eprintln!(
            "{name} run {run}/{runs}: upload {:.2}s, download {:.2}s, restore {:.2}s ({:.1} MiB)",
            upload[run - 1],
            download[run - 1],
            restore[run - 1],
            size as f64 / MIB
        );
    }
    let (up, down, rest) = (median(upload), median(download), median(restore));
    Ok(json!({
        "upload_mib_per_sec": rate(size, up),
        "upload_keys_per_sec": (keys as f64 / up).round() as u64,
        "upload_secs": round3(up),
        "download_mib_per_sec": rate(size, down),
        "restore_mib_per_sec": rate(size, rest),
        "restore_keys_per_sec": (keys as f64 / rest).round() as u64,
        "restore_secs": round3(rest),
    }))
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

async fn scenario(args: &Args) -> Result<Report> {
    let scratch = match &args.dir {
        Some(dir) => tempfile::tempdir_in(dir)?,
        None => tempfile::tempdir()?,
    };
    let moto = moto_executable(args.moto_server.as_deref());
    if args.stores.iter().any(|s| s == "s3") && !moto.is_file() {
        bail!(
            "the moto S3 server is not installed ({} is missing): run scripts/install-test-deps \
             (it creates .cache/moto-venv), or give --moto-server, or --stores file",
            moto.display()
        );
    }
    let clock = Instant::now();
    let (state, raw) = load(args)?;
    eprintln!(
        "loaded {} keys ({:.1} MiB of keys and values) in {:.1?}",
        args.keys,
        raw as f64 / MIB,
        clock.elapsed()
    );

    let mut report = Report::new("backup");
    report
        .set("keys", args.keys)
        .set("value_bytes", args.value_bytes)
        .set("runs", args.runs)
        .set("raw_mib", round(raw as f64 / MIB));

    // Encode and decode alone, in memory: the CPU's share of upload and restore.
    let (mut encode, mut decode, mut object) = (Vec::new(), Vec::new(), 0);
    for _ in 0..args.runs {
        let view = state.clone();
        let clock = Instant::now();
        let bytes = tokio::task::spawn_blocking(move || snapshot::encode(&view)).await??;
        encode.push(clock.elapsed().as_secs_f64());
        object = bytes.len() as u64;
        let clock = Instant::now();
        let decoded = tokio::task::spawn_blocking(move || snapshot::decode(&bytes)).await??;
        decode.push(clock.elapsed().as_secs_f64());
        drop(decoded);
    }
    report
        .set("object_mib", round(object as f64 / MIB))
        .set("encode_mib_per_sec", rate(object, median(encode)))
        .set("decode_mib_per_sec", rate(object, median(decode)));

    for name in &args.stores {
        let figures = if name == "s3" {
            let bucket = "regatta-bench";
            let moto = Moto::start(&moto, scratch.path(), bucket)?;
            let s3 = object_store::aws::AmazonS3Builder::new()
                .with_endpoint(&moto.endpoint)
                .with_allow_http(true)
                .with_region("us-east-1")
                .with_bucket_name(bucket)
                .with_access_key_id("bench")
                .with_secret_access_key("bench")
                .build()?;
            let figures = measure("s3", Arc::new(s3), &state, args.keys, args.runs).await;
            drop(moto);
            figures?
        } else {
            let dir = scratch.path().join("objects");
            std::fs::create_dir_all(&dir)?;
            let local = object_store::local::LocalFileSystem::new_with_prefix(&dir)?;
            measure("file", Arc::new(local), &state, args.keys, args.runs).await?
        };
        report.set(name, figures);
    }
    Ok(report)
}
