//! The object store the nodes share: a moto server (S3-compatible, installed by
//! `scripts/install-test-deps` into `.cache/moto-venv`) in its own namespace (`rgf-s3`),
//! so that the `objects-unreachable` fault can cut it off from every node. One bucket,
//! [`BUCKET`]; the nodes use the prefix [`PREFIX`]. Its output goes to `RUN/s3.log`;
//! killed on drop.

use std::{
    fs::File,
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};

use crate::net::Host;

pub const BUCKET: &str = "regatta";
pub const PREFIX: &str = "cluster";
const PORT: u16 = 9000;
/// How long the server may take to answer after it starts.
const START: Duration = Duration::from_secs(30);

/// Where the server is: `REGATTA_FAULTS_MOTO`, else `.cache/moto-venv` of the working
/// directory or of the repository the suite was built from.
fn server_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("REGATTA_FAULTS_MOTO") {
        return Ok(PathBuf::from(path));
    }
    let venv = Path::new(".cache/moto-venv/bin/moto_server");
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(venv);
    for candidate in [venv.to_path_buf(), built] {
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    bail!(
        "the S3 server is not installed ({} is missing): run scripts/install-test-deps",
        venv.display()
    )
}

/// The running server.
#[derive(Debug)]
pub struct S3Server {
    pub host: Host,
    child: Child,
}

impl S3Server {
    /// Starts the server in `host`'s namespace, waits until it answers and creates the
    /// bucket.
    pub fn start(host: &Host, run_dir: &Path) -> Result<Self> {
        let binary = server_binary()?;
        let log = File::create(run_dir.join("s3.log"))?;
        let child = Command::new("ip")
            .args(["netns", "exec", &host.ns])
            .arg(&binary)
            .args(["-H", &host.ip, "-p", &PORT.to_string()])
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {} in {}", binary.display(), host.ns))?;
        let mut server = Self {
            host: host.clone(),
            child,
        };
        let deadline = Instant::now() + START;
        while server.request("GET", "/").is_err() {
            if let Some(status) = server.child.try_wait()? {
                bail!("the S3 server exited ({status}): see s3.log in the run directory");
            }
            if Instant::now() > deadline {
                bail!("the S3 server did not answer within {START:?}");
            }
            std::thread::sleep(Duration::from_millis(100)); // poll interval
        }
        let status = server.request("PUT", &format!("/{BUCKET}"))?;
        if status != 200 {
            bail!("creating bucket {BUCKET}: HTTP {status}");
        }
        Ok(server)
    }

    /// The flags that point a node at the bucket of the server on `host`.
    pub fn node_args(host: &Host) -> Vec<String> {
        vec![
            format!("--object-store=s3://{BUCKET}/{PREFIX}"),
            format!("--object-store.endpoint=http://{}:{PORT}", host.ip),
            "--object-store.region=us-east-1".into(),
            "--object-store.access-key-id=test".into(),
            "--object-store.secret-access-key=test".into(),
        ]
    }

    /// One unsigned HTTP/1.0 request (moto does not check signatures); the status code.
    fn request(&self, method: &str, path: &str) -> Result<u16> {
        let addr: SocketAddr = format!("{}:{PORT}", self.host.ip).parse()?;
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            stream,
            "{method} {path} HTTP/1.0\r\nHost: {}\r\nContent-Length: 0\r\n\r\n",
            self.host.ip
        )?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response)?;
        let code = String::from_utf8_lossy(&response)
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .context("no HTTP status")?;
        Ok(code)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
