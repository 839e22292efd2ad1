//! End-to-end: the client command line against a real node — output, JSON and exit codes.

mod common;

use common::*;

/// Runs `regatta` with `args` against `address`; exit code, stdout, stderr.
fn run(address: &str, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    use std::io::Write;
    let mut cmd = std::process::Command::new(binary());
    cmd.args(args).arg("--address").arg(address);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("run regatta");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reads_writes_and_reports_errors_with_stable_exit_codes() {
    phase("a single-node core");
    let cluster = Cluster::start(1);
    cluster.wait_for_leader().await;
    let addr = cluster.nodes[0].api.clone();
    let ok = |args: &[&str]| {
        let (code, out, err) = run(&addr, args, None);
        assert_eq!(code, 0, "regatta {args:?} failed: {err}");
        out
    };

    phase("tables");
    assert!(
        ok(&["table", "create", "cfg", "--config", r#"{"owner":"ops"}"#])
            .contains("created table cfg")
    );
    let listed: serde_json::Value =
        serde_json::from_str(ok(&["table", "list", "--json"]).trim()).expect("JSON");
    assert_eq!(listed[0]["name"], "cfg");

    phase("put, get, range, prefix, delete");
    ok(&["kv", "put", "cfg", "app/a", "1"]);
    ok(&["kv", "put", "cfg", "app/b", "2"]);
    ok(&["kv", "put", "cfg", "other", "3"]);
    let put: serde_json::Value = serde_json::from_str(
        ok(&["kv", "put", "cfg", "app/a", "10", "--prev-kv", "--json"]).trim(),
    )
    .expect("JSON");
    assert_eq!(put["prev_kv"]["value"], "1");
    assert_eq!(ok(&["kv", "get", "cfg", "app/a"]).trim(), "10");
    assert_eq!(
        ok(&["kv", "range", "cfg", "app/", "--prefix", "--keys-only"]),
        "app/a\napp/b\n"
    );
    assert_eq!(ok(&["kv", "range", "cfg", "--count-only"]).trim(), "3");
    let all: serde_json::Value =
        serde_json::from_str(ok(&["kv", "range", "cfg", "--json"]).trim()).expect("JSON");
    assert_eq!(all["count"], 3);
    assert!(ok(&["kv", "delete", "cfg", "app/", "--prefix"]).contains("deleted 2"));

    phase("a transaction from standard input");
    let txn = r#"{"compare":[{"key":"other","result":"equal","value":"3"}],
                 "success":[{"put":{"key":"other","value":"4"}},{"range":{"key":"other"}}],
                 "failure":[]}"#;
    let (code, out, err) = run(&addr, &["kv", "txn", "cfg", "-", "--json"], Some(txn));
    assert_eq!(code, 0, "{err}");
    let answer: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
    assert_eq!(answer["succeeded"], true);
    assert_eq!(answer["responses"][1]["range"]["kvs"][0]["value"], "4");

    phase("status reports the table's size in bytes of keys and values");
    let status: serde_json::Value =
        serde_json::from_str(ok(&["cluster", "status", "--json"]).trim()).expect("JSON");
    assert_eq!(
        status["tables"]["cfg"]["db_size"], 6,
        "one key \"other\" = \"4\": {status}"
    );

    phase("exit codes: 4 not found, 2 bad input, 5 exists, 3 unreachable");
    assert_eq!(run(&addr, &["kv", "get", "cfg", "missing"], None).0, 4);
    assert_eq!(run(&addr, &["kv", "get", "nope", "k"], None).0, 4);
    assert_eq!(run(&addr, &["kv", "put", "cfg", "", "v"], None).0, 2);
    assert_eq!(run(&addr, &["kv", "put", "cfg", "hex:zz", "v"], None).0, 2);
    assert_eq!(
        run(&addr, &["kv", "txn", "cfg", "-"], Some("{not json")).0,
        2
    );
    assert_eq!(run(&addr, &["table", "create", "cfg"], None).0, 5);
    let (code, _, err) = run("http://127.0.0.1:1", &["table", "list"], None);
    assert_eq!(code, 3);
    assert!(err.contains("cannot connect"), "{err}");
}

/// Not on a terminal, progress is plain lines on stderr: no redrawing, a size, a rate, the
/// time elapsed.
fn assert_plain_progress(stderr: &str, label: &str) {
    assert!(!stderr.contains('\r'), "no redrawn line: {stderr:?}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no progress line {label:?} in {stderr:?}"));
    assert!(
        line.contains(" B") && line.contains("/s") && line.contains("s elapsed"),
        "a size, a rate and the time: {line:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_directory_restores_and_a_damaged_bak_file_is_refused() {
    phase("a single-node core with a table");
    let cluster = Cluster::start(1);
    cluster.wait_for_leader().await;
    let node = &cluster.nodes[0];
    let addr = node.api.clone();
    create_table(node, "cfg").await;
    for i in 0..50 {
        put(node, "cfg", &format!("key-{i:02}"), &format!("value-{i}"))
            .await
            .expect("put");
    }
    let before = dump(node, "cfg").await.expect("dump");

    phase("regatta backup --dir writes manifest.json and cfg.bak with its md5");
    let dir = cluster.dir.path().join("backup");
    let dir_arg = dir.display().to_string();
    let (code, _, err) = run(&addr, &["backup", "--dir", &dir_arg], None);
    assert_eq!(code, 0, "backup failed: {err}");
    assert_plain_progress(&err, "backup cfg: ");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).expect("manifest"))
            .expect("manifest is JSON");
    assert_eq!(manifest["tables"][0]["name"], "cfg");
    assert_eq!(manifest["tables"][0]["file_name"], "cfg.bak");
    assert!(dir.join("cfg.bak").is_file());
    let (code, _, err) = run(&addr, &["backup", "--dir", &dir_arg], None);
    assert_eq!(
        code, 2,
        "a second backup into the same directory is refused: {err}"
    );

    phase("changes after the backup are undone by regatta restore --dir");
    put(node, "cfg", "key-00", "changed").await.expect("put");
    put(node, "cfg", "new-key", "x").await.expect("put");
    let (code, _, err) = run(&addr, &["restore", "--dir", &dir_arg], None);
    assert_eq!(code, 0, "restore failed: {err}");
    assert_plain_progress(&err, "restore: ");
    let pairs = |d: Vec<(Vec<u8>, Vec<u8>, i64, i64)>| -> Vec<(Vec<u8>, Vec<u8>)> {
        d.into_iter().map(|(k, v, _, _)| (k, v)).collect()
    };
    assert_eq!(
        pairs(dump(node, "cfg").await.expect("dump")),
        pairs(before.clone())
    );

    phase("one flipped byte in cfg.bak: the md5 check refuses it before anything changes");
    put(node, "cfg", "after", "stays").await.expect("put");
    let mut bak = std::fs::read(dir.join("cfg.bak")).expect("read bak");
    let middle = bak.len() / 2;
    bak[middle] ^= 0x01;
    std::fs::write(dir.join("cfg.bak"), bak).expect("write bak");
    let (code, _, err) = run(&addr, &["restore", "--dir", &dir_arg], None);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("md5"),
        "the message names the md5 mismatch: {err}"
    );
    assert_eq!(
        get(node, "cfg", "after", false)
            .await
            .expect("get")
            .as_deref(),
        Some("stays"),
        "nothing was restored"
    );
}

/// A server flag out of range is refused before anything starts, naming the flag, whether it
/// comes from the command line, the environment or a config file.
#[test]
fn a_runtime_thread_count_out_of_range_is_refused_with_the_flag_named() {
    const UPSTREAM: &str = "--replication.leader-address=http://127.0.0.1:1";
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = dir.path().join("edge.yaml");
    std::fs::write(&config, "runtime:\n  worker-threads: 0\n").expect("write the config file");
    let config_arg = format!("--config={}", config.display());
    let cases: [(&[&str], Option<&str>); 3] = [
        (&["edge", UPSTREAM, "--runtime.worker-threads=0"], None),
        (&["core", "--raft.node-id=1"], Some("lots")),
        (&["edge", UPSTREAM, config_arg.as_str()], None),
    ];
    for (args, env) in cases {
        let mut cmd = std::process::Command::new(binary());
        cmd.args(args)
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .stdin(std::process::Stdio::null());
        if let Some(value) = env {
            cmd.env("REGATTA_RUNTIME_WORKER_THREADS", value);
        }
        let out = cmd.output().expect("run regatta");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("runtime.worker-threads"),
            "{args:?}: the flag is named: {err}"
        );
        assert!(
            !dir.path().join("data").exists(),
            "{args:?}: nothing started"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_names_follow_the_rule_and_any_allowed_name_survives_a_backup_directory() {
    phase("a single-node core");
    let cluster = Cluster::start(1);
    cluster.wait_for_leader().await;
    let node = &cluster.nodes[0];
    let addr = node.api.clone();

    phase("Tables.Create refuses names that break the rule, naming it");
    for (name, rule) in [
        ("a\0b", "control"),
        ("a\nb", "control"),
        (&*"x".repeat(100_000), "255"),
        ("", "empty"),
    ] {
        let status = node
            .tables()
            .await
            .create(regatta_proto::regatta::v1::CreateTableRequest {
                name: name.into(),
                config: None,
            })
            .await
            .expect_err("a bad name is refused");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains(rule), "{status:?}");
    }

    phase("names with '/' and '..' are allowed (as in Regatta) and back up to safe files");
    for name in ["a/b", "../x"] {
        create_table(node, name).await;
        put(node, name, "k", name).await.expect("put");
    }
    let dir = cluster.dir.path().join("backup");
    let dir_arg = dir.display().to_string();
    let (code, _, err) = run(&addr, &["backup", "--dir", &dir_arg], None);
    assert_eq!(code, 0, "backup failed: {err}");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("backup dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    files.sort();
    assert_eq!(files, ["%2E.%2Fx.bak", "a%2Fb.bak", "manifest.json"]);
    assert!(
        !cluster.dir.path().join("x.bak").exists() && !dir.join("a").exists(),
        "nothing was written outside the backup directory"
    );

    phase("restore brings both tables back under their names");
    for name in ["a/b", "../x"] {
        put(node, name, "k", "changed").await.expect("put");
    }
    let (code, _, err) = run(&addr, &["restore", "--dir", &dir_arg], None);
    assert_eq!(code, 0, "restore failed: {err}");
    for name in ["a/b", "../x"] {
        let (code, out, err) = run(&addr, &["kv", "get", name, "k"], None);
        assert_eq!(code, 0, "get {name}: {err}");
        assert!(out.contains(name), "{name}: {out}");
    }
}

#[test]
fn an_unknown_scheme_is_refused_and_https_is_never_spoken_to_in_plaintext() {
    // Nothing listens there: the refusal comes before any connection.
    let (code, _, err) = run(
        "grpc://127.0.0.1:1",
        &["kv", "get", "t", "k", "--token", "secret"],
        None,
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("scheme"), "{err}");
    let dir = tempfile::tempdir().expect("tempdir");
    let backup_dir = dir.path().join("b").display().to_string();
    for args in [&["table", "list"][..], &["backup", "--dir", &backup_dir]] {
        let (code, _, err) = run("grpc://127.0.0.1:1", args, None);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("scheme"), "{args:?}: {err}");
    }
    assert!(
        !dir.path().join("b").exists(),
        "the refused backup created nothing"
    );
    // An https:// address is reached over TLS (tests/tls.rs); against a plaintext server
    // the handshake fails and nothing is sent in clear.
    let plain = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = format!("https://{}", plain.local_addr().expect("addr"));
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut conn, _) = plain.accept().expect("accept");
        let mut first = [0u8; 5];
        conn.read_exact(&mut first).expect("read");
        let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        first
    });
    let (code, _, err) = run(&addr, &["kv", "get", "t", "k", "--token", "secret"], None);
    assert_eq!(code, 3, "{err}");
    let first = server.join().expect("server");
    assert_eq!(
        first[0], 0x16,
        "the client's first bytes are not a TLS handshake"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_case_insensitive() {
    phase("a core whose Tables service needs a token");
    let cluster = Cluster::start_with(1, &["--tables.token=s3cret"]);
    cluster.wait_for_leader().await;
    let node = &cluster.nodes[0];
    let list = |authorization: &'static str| async move {
        let mut request = tonic::Request::new(regatta_proto::regatta::v1::ListTablesRequest {});
        request
            .metadata_mut()
            .insert("authorization", authorization.parse().expect("header"));
        node.tables().await.list(request).await
    };
    for accepted in ["Bearer s3cret", "bearer s3cret", "BEARER s3cret"] {
        wait_until("the node answers", || async {
            list(accepted).await.is_ok()
        })
        .await;
    }
    for refused in ["bearer wrong", "Basic s3cret", "bearers3cret"] {
        let status = list(refused).await.expect_err(refused);
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{refused}");
    }
}

/// A CA and a server certificate it signed for 127.0.0.1: (CA, certificate, key) files.
fn server_certificate(dir: &std::path::Path) -> [std::path::PathBuf; 3] {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "regatta test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("server key");
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .expect("server params")
        .signed_by(&key, &issuer)
        .expect("server certificate");
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write PEM");
        path
    };
    [
        write("ca.pem", ca.pem()),
        write("server.pem", cert.pem()),
        write("server.key", key.serialize_pem()),
    ]
}

/// Runs `regatta args…` in the working directory `cwd`; exit code, stdout, stderr.
fn run_in(cwd: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(binary())
        .args(args)
        .current_dir(cwd)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run regatta");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn backup_and_restore_reach_a_bare_address_over_tls_and_default_to_the_current_directory() {
    let root = tempfile::tempdir().expect("tempdir");
    let [ca, cert, key] = server_certificate(root.path());
    let ca = ca.display().to_string();

    phase("a single-node core serving its API over TLS only");
    let mut core = Node::core(1, root.path());
    core.api = format!("https://127.0.0.1:{}", free_port());
    core.args = vec![
        format!("--api.cert-filename={}", cert.display()),
        format!("--api.key-filename={}", key.display()),
    ];
    let members = initial_members(std::slice::from_ref(&core));
    core.start(&members);
    let url = core.api.clone();
    let bare = url.trim_start_matches("https://").to_string();
    let here = root.path();
    let at_url = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--address", &url, "--ca", &ca]);
        run_in(here, &all)
    };
    wait_until_blocking("the node serves over TLS", || {
        at_url(&["table", "list"]).0 == 0
    });
    assert_eq!(at_url(&["table", "create", "t"]).0, 0);
    assert_eq!(at_url(&["kv", "put", "t", "k", "backed-up"]).0, 0);

    phase("regatta backup --address host:port --ca CA --dir D --json: TLS, as in Regatta");
    let dir = root.path().join("backup");
    let dir_arg = dir.display().to_string();
    let (code, out, err) = run_in(
        here,
        &[
            "backup",
            "--address",
            &bare,
            "--ca",
            &ca,
            "--dir",
            &dir_arg,
            "--json",
        ],
    );
    assert_eq!(code, 0, "backup over TLS at a bare address: {err}");
    serde_json::from_str::<serde_json::Value>(&out).expect("--json prints JSON");
    assert!(dir.join("manifest.json").is_file() && dir.join("t.bak").is_file());

    phase("regatta restore --address host:port --ca CA --dir D undoes later changes");
    assert_eq!(at_url(&["kv", "put", "t", "k", "changed"]).0, 0);
    assert_eq!(at_url(&["kv", "put", "t", "later", "x"]).0, 0);
    let (code, _, err) = run_in(
        here,
        &[
            "restore",
            "--address",
            &bare,
            "--ca",
            &ca,
            "--dir",
            &dir_arg,
            "--json",
        ],
    );
    assert_eq!(code, 0, "restore over TLS at a bare address: {err}");
    let (code, out, err) = at_url(&["kv", "get", "t", "k"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("backed-up"), "restored: {out}");
    assert_eq!(at_url(&["kv", "get", "t", "later"]).0, 4, "gone again");

    phase("without --dir, backup writes into the working directory and restore reads it");
    let cwd = tempfile::tempdir().expect("tempdir");
    let (code, _, err) = run_in(cwd.path(), &["backup", "--address", &bare, "--ca", &ca]);
    assert_eq!(code, 0, "backup into the working directory: {err}");
    assert!(
        cwd.path().join("manifest.json").is_file() && cwd.path().join("t.bak").is_file(),
        "the backup is in the working directory"
    );
    assert_eq!(at_url(&["kv", "put", "t", "k", "changed-again"]).0, 0);
    let (code, _, err) = run_in(cwd.path(), &["restore", "--address", &bare, "--ca", &ca]);
    assert_eq!(code, 0, "restore from the working directory: {err}");
    let (_, out, _) = at_url(&["kv", "get", "t", "k"]);
    assert!(out.contains("backed-up"), "restored: {out}");

    phase("every other command still takes a bare address as plaintext");
    let (code, _, err) = run_in(
        here,
        &[
            "table",
            "list",
            "--address",
            &bare,
            "--ca",
            &ca,
            "--timeout=2s",
        ],
    );
    assert_ne!(code, 0, "plaintext to the TLS port: {err}");
}
