//! End-to-end: Regatta's quickstart command line runs here as written, with Regatta's
//! defaults (node id 1, the API on 127.0.0.1:8443, the data directory under the working
//! directory), and the `regatta` client at its default address works against it.
//!
//! It binds the fixed default ports (API 8443, replication 8444, HTTP 8079, Raft 5012): this
//! file holds the only test that does, and nextest runs one end-to-end test of this package
//! at a time (.config/nextest.toml).

mod common;

use std::{
    fs::File,
    net::TcpListener,
    process::{Child, Command, Stdio},
};

use common::*;

const DEFAULT_PORTS: [u16; 4] = [8443, 8444, 8079, 5012];

/// Regatta's quickstart, word for word.
const QUICKSTART: &str = "regatta leader --dev-mode --raft.address=127.0.0.1:5012 --raft.initial-members='1=127.0.0.1:5012'";

/// Regatta's quickstart and user guide: create a table with grpcurl (reflection v1alpha).
const GRPCURL_CREATE: &str = r#"grpcurl -plaintext -d "{\"name\": \"regatta-test\"}" 127.0.0.1:8443 regatta.v1.Tables/Create"#;

/// The node's process, killed when the test ends; its log printed when the test fails.
struct Leader {
    child: Child,
    log: std::path::PathBuf,
}

impl Drop for Leader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!(
                "---- last log lines of the leader ----\n{}",
                lines[lines.len().saturating_sub(40)..].join("\n")
            );
        }
    }
}

/// `regatta args…` at the client's default address: exit code and stdout.
fn client(args: &[&str]) -> (i32, String) {
    let out = regatta(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn regattas_quickstart_line_runs_as_written() {
    for port in DEFAULT_PORTS {
        assert!(
            TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} is taken: this test needs Regatta's default ports free"
        );
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let log = dir.path().join("leader.log");
    let out = File::create(&log).expect("log file");

    phase(QUICKSTART);
    // Through the shell, so the quoting is the one Regatta's docs print; `exec` makes the
    // node the child this test kills.
    let bin_dir = binary().parent().expect("binary directory").to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let child = Command::new("sh")
        .current_dir(dir.path())
        .arg("-c")
        .arg(format!("exec {QUICKSTART}"))
        .env("PATH", &path)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("log file"))
        .stderr(out)
        .spawn()
        .expect("start regatta leader");
    let mut leader = Leader { child, log };

    phase("the quickstart's grpcurl line creates the table once the node serves");
    let grpcurl_dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/grpcurl-venv/bin");
    assert!(
        grpcurl_dir.join("grpcurl").is_file(),
        "grpcurl is not installed: run scripts/install-test-deps"
    );
    let grpcurl_path = format!("{}:{path}", grpcurl_dir.display());
    wait_until_blocking("the quickstart's grpcurl Tables/Create succeeds", || {
        assert!(
            leader.child.try_wait().expect("wait").is_none(),
            "the leader exited"
        );
        let out = Command::new("sh")
            .arg("-c")
            .arg(GRPCURL_CREATE)
            .env("PATH", &grpcurl_path)
            .stdin(Stdio::null())
            .output()
            .expect("run grpcurl");
        // AlreadyExists: an earlier try was applied after all.
        out.status.success() || String::from_utf8_lossy(&out.stderr).contains("AlreadyExists")
    });
    let (code, tables) = client(&["table", "list"]);
    assert!(code == 0 && tables.contains("regatta-test"), "{tables}");

    phase("regatta kv put and kv get");
    let (code, _) = client(&["kv", "put", "regatta-test", "hello", "world"]);
    assert_eq!(code, 0, "kv put");
    let (code, value) = client(&["kv", "get", "regatta-test", "hello"]);
    assert_eq!((code, value.trim()), (0, "world"), "kv get");

    phase("--dev-mode: human-readable debug lines in the log");
    let text = std::fs::read_to_string(&leader.log).expect("log");
    assert!(
        text.lines()
            .any(|l| l.contains("DEBUG") && l.contains("regatta")),
        "no debug line from the node's crates"
    );
    assert!(
        !text.trim_start().starts_with('{'),
        "the log is JSON, not text"
    );

    phase("the data directory is Regatta's default, under the working directory");
    assert!(
        dir.path().join("regatta-data").join("log").is_dir(),
        "no ./regatta-data/log"
    );
    drop(leader);
}
