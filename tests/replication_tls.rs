//! End-to-end: TLS on the replication port. A core serving the log tail over TLS with
//! client-certificate authentication and the edges following it (and each other) with their
//! certificates; the edges it refuses, or that refuse it, and what they report; a
//! self-signed core followed by name (`--replication.server-name`) or without verification
//! (`--replication.insecure-skip-verify`); the configurations start-up refuses.
//! Certificates are made at test time.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// A certificate and its key, written to files.
struct Pair {
    cert: PathBuf,
    key: PathBuf,
}

impl Pair {
    /// The replication port's flags for this pair.
    fn args(&self) -> Vec<String> {
        vec![
            format!("--replication.cert-filename={}", self.cert.display()),
            format!("--replication.key-filename={}", self.key.display()),
        ]
    }
}

/// A CA that signs certificates into `dir`.
struct Ca {
    dir: PathBuf,
    name: String,
    issuer: Issuer<'static, KeyPair>,
    /// The CA's certificate file.
    file: PathBuf,
}

impl Ca {
    fn new(dir: &Path, name: &str) -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("CA certificate");
        let file = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&file, cert.pem()).expect("write CA");
        Self {
            dir: dir.to_path_buf(),
            name: name.to_string(),
            issuer: Issuer::new(params, key),
            file,
        }
    }

    /// A certificate for `who`, valid for 127.0.0.1 and localhost (usable as a server's and
    /// as a client's).
    fn sign(&self, who: &str) -> Pair {
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("params");
        params.distinguished_name.push(DnType::CommonName, who);
        let cert = params.signed_by(&key, &self.issuer).expect("certificate");
        write_pair(
            &self.dir,
            &format!("{}-{who}", self.name),
            &cert.pem(),
            &key,
        )
    }

    fn ca_arg(&self) -> String {
        format!("--replication.ca-filename={}", self.file.display())
    }
}

fn write_pair(dir: &Path, name: &str, cert: &str, key: &KeyPair) -> Pair {
    let pair = Pair {
        cert: dir.join(format!("{name}.pem")),
        key: dir.join(format!("{name}.key")),
    };
    std::fs::write(&pair.cert, cert).expect("write certificate");
    std::fs::write(&pair.key, key.serialize_pem()).expect("write key");
    pair
}

fn https_port() -> String {
    format!("https://127.0.0.1:{}", free_port())
}

/// A single-node core whose replication port serves TLS with `args`, with a table `t`.
async fn start_core(root: &Path, args: Vec<String>) -> Node {
    let mut core = Node::core(1, root);
    core.replication = https_port();
    core.args = args;
    let members = initial_members(std::slice::from_ref(&core));
    core.start(&members);
    create_table(&core, "t").await;
    core
}

/// An edge following `upstream` with `args`.
fn start_edge(name: &str, root: &Path, upstream: &str, args: Vec<String>) -> Edge {
    let mut edge = Edge::new(name, root, vec![upstream.to_string()]);
    edge.node.args = args;
    edge.start();
    edge
}

/// Waits until `edge` serves `value` under `key` in table `t`.
async fn wait_value(edge: &Node, key: &str, value: &str) {
    wait_until(&format!("the edge serves {key}={value}"), || async {
        get(edge, "t", key, false).await.ok().flatten().as_deref() == Some(value)
    })
    .await;
}

/// Waits until the edge has failed to follow its upstream `times` times for TLS reasons,
/// then checks what a user would look at: the edge still runs, `/readyz` says it is not
/// connected and why, the log says why it left the upstream, nothing was applied.
async fn assert_refused(edge: &mut Edge, what: &str, reason: &[&str]) {
    let metric = "regatta_edge_upstream_errors_total{reason=\"tls\"}";
    wait_until(
        &format!("{what}: the edge retried after TLS failures"),
        || async { edge.metric(metric).await.unwrap_or(0.0) >= 2.0 },
    )
    .await;
    assert!(edge.node.is_running(), "{what}: the edge exited");
    assert_eq!(edge.metric("regatta_edge_applied_index").await, Some(0.0));
    assert_eq!(edge.node.http_status("/readyz").await, Some(503), "{what}");
    let body = edge.node.http_body("/readyz").await.unwrap_or_default();
    eprintln!("{what}: /readyz: {}", body.trim_end());
    assert!(
        body.contains("not yet connected to an upstream"),
        "{what}: {body}"
    );
    let log = std::fs::read_to_string(edge.node.log_path()).expect("edge log");
    let line = log
        .lines()
        .find(|l| l.contains("leaving upstream") && l.contains("kind=\"tls\""))
        .unwrap_or_else(|| panic!("{what}: no TLS failure in the log:\n{log}"));
    eprintln!("{what}: log: {line}");
    for part in reason {
        assert!(
            body.contains(part) && line.contains(part),
            "{what}: {part:?} is not in /readyz ({body}) and the log line ({line})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edges_follow_a_core_over_mutual_tls_in_a_chain_and_send_writes_up() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let ca = Ca::new(dir.path(), "cluster");
    let (core_pair, edge1_pair, edge2_pair) =
        (ca.sign("core"), ca.sign("edge-1"), ca.sign("edge-2"));

    phase("a core serving the tail over TLS, edges' certificates required");
    let mut core_args = core_pair.args();
    core_args.extend([ca.ca_arg(), "--replication.client-cert-auth".into()]);
    let core = start_core(dir.path(), core_args).await;
    put(&core, "t", "k", "written-at-the-core")
        .await
        .expect("put at the core");

    phase("edge-1 follows it with its certificate and serves its own tail over mTLS");
    let mut edge1_args = edge1_pair.args();
    edge1_args.extend([ca.ca_arg(), "--replication.client-cert-auth".into()]);
    let mut edge1 = Edge::new("edge-1", dir.path(), vec![core.replication.clone()]);
    edge1.node.replication = https_port();
    edge1.node.args = edge1_args;
    edge1.start();
    wait_value(&edge1.node, "k", "written-at-the-core").await;

    phase("edge-2 follows edge-1 over mTLS");
    let mut edge2_args = edge2_pair.args();
    edge2_args.push(ca.ca_arg());
    let edge2 = start_edge("edge-2", dir.path(), &edge1.node.replication, edge2_args);
    wait_value(&edge2.node, "k", "written-at-the-core").await;

    phase("a write at the core reaches the end of the chain");
    put(&core, "t", "k2", "second").await.expect("put");
    wait_value(&edge2.node, "k2", "second").await;

    phase("writes sent to the edges go up over TLS and are read back");
    put(&edge1.node, "t", "from-edge-1", "a")
        .await
        .expect("a write at edge-1");
    put(&edge2.node, "t", "from-edge-2", "b")
        .await
        .expect("a write at edge-2, through edge-1");
    assert_eq!(
        get(&core, "t", "from-edge-2", true).await.expect("get"),
        Some("b".into())
    );
    assert_eq!(
        get(&edge2.node, "t", "from-edge-1", true)
            .await
            .expect("a linearizable read at edge-2 asks the core over TLS"),
        Some("a".into())
    );
    wait_converged(&core, &edge2.node, "edge-2 serves what the core serves").await;
    assert_eq!(edge2.node.http_status("/readyz").await, Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edges_the_core_refuses_or_that_refuse_the_core_get_nothing_and_say_why() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let ca = Ca::new(dir.path(), "cluster");
    let other = Ca::new(dir.path(), "other");

    phase("a core requiring edges' certificates signed by its CA");
    let mut core_args = ca.sign("core").args();
    core_args.extend([ca.ca_arg(), "--replication.client-cert-auth".into()]);
    let core = start_core(dir.path(), core_args).await;
    put(&core, "t", "k", "secret").await.expect("put");

    phase("edges: without a certificate, with another CA's, trusting another CA");
    let mut no_cert = start_edge("no-cert", dir.path(), &core.replication, vec![ca.ca_arg()]);
    let mut stranger_args = other.sign("stranger").args();
    stranger_args.push(ca.ca_arg());
    let mut stranger = start_edge("stranger", dir.path(), &core.replication, stranger_args);
    let mut wrong_ca_args = ca.sign("edge").args();
    wrong_ca_args.push(other.ca_arg());
    let mut wrong_ca = start_edge("wrong-ca", dir.path(), &core.replication, wrong_ca_args);

    phase("the edge without a certificate is refused");
    assert_refused(
        &mut no_cert,
        "no client certificate",
        &["CertificateRequired"],
    )
    .await;
    phase("the edge with another CA's certificate is refused");
    assert_refused(&mut stranger, "another CA's certificate", &["UnknownCA"]).await;
    phase("the edge trusting another CA refuses the core's certificate");
    assert_refused(&mut wrong_ca, "the wrong CA", &["UnknownIssuer"]).await;

    phase("the core still serves an edge it trusts");
    let mut good_args = ca.sign("good").args();
    good_args.push(ca.ca_arg());
    let good = start_edge("good", dir.path(), &core.replication, good_args);
    wait_value(&good.node, "k", "secret").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_core_is_followed_by_its_name_or_without_verification() {
    let dir = tempfile::tempdir().expect("temporary directory");

    phase("a core with a self-signed certificate for core.regatta.test only");
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec!["core.regatta.test".to_string()]).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "core.regatta.test");
    let cert = params.self_signed(&key).expect("self-signed certificate");
    let pair = write_pair(dir.path(), "self-signed", &cert.pem(), &key);
    let core = start_core(dir.path(), pair.args()).await;
    put(&core, "t", "k", "v").await.expect("put");
    let trust = format!("--replication.ca-filename={}", pair.cert.display());

    phase("edges: by the certificate's name, by the address's host, skipping verification");
    let named = start_edge(
        "named",
        dir.path(),
        &core.replication,
        vec![
            trust.clone(),
            "--replication.server-name=core.regatta.test".into(),
        ],
    );
    let mut by_address = start_edge("by-address", dir.path(), &core.replication, vec![trust]);
    let insecure = start_edge(
        "insecure",
        dir.path(),
        &core.replication,
        vec!["--replication.insecure-skip-verify".into()],
    );

    phase("--replication.server-name verifies the certificate for its name");
    wait_value(&named.node, "k", "v").await;
    phase("--replication.insecure-skip-verify follows without verifying");
    wait_value(&insecure.node, "k", "v").await;
    phase("without either, the certificate is not valid for 127.0.0.1");
    assert_refused(
        &mut by_address,
        "the address's host",
        &["not valid for name"],
    )
    .await;
}

#[test]
fn bad_replication_tls_configuration_fails_start_up_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let ca = Ca::new(dir.path(), "cluster");
    let pair = ca.sign("node");
    let cert = format!("--replication.cert-filename={}", pair.cert.display());
    let key = format!("--replication.key-filename={}", pair.key.display());
    let core = |extra: &[&str]| {
        let node = Node::core(1, dir.path());
        let mut args = vec![
            "core".to_string(),
            "--raft.node-id=1".to_string(),
            format!("--raft.address={}", node.raft),
            format!("--raft.initial-members=1={}", node.raft),
            format!("--api.address={}", node.api),
            format!("--rest.address={}", node.rest),
            format!("--data-dir={}", node.data_dir.display()),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let edge = |extra: &[&str]| {
        let node = Node::core(0, dir.path());
        let mut args = vec![
            "edge".to_string(),
            format!("--api.address={}", node.api),
            format!("--rest.address={}", node.rest),
            format!("--data-dir={}", dir.path().join("edge").display()),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let https = format!("--replication.address={}", https_port());
    let upstream = "--replication.leader-address=https://127.0.0.1:1";
    let ca_arg = ca.ca_arg();
    let cases: Vec<(&str, Vec<String>, Vec<&str>)> = vec![
        (
            "a core's https:// replication address without a certificate",
            core(&[&https]),
            vec!["--replication.cert-filename", "--replication.key-filename"],
        ),
        (
            "an edge's https:// replication address without a certificate",
            edge(&[upstream, &https]),
            vec!["--replication.cert-filename", "--replication.key-filename"],
        ),
        (
            "a certificate without its key",
            edge(&[upstream, &cert]),
            vec!["--replication.cert-filename is given without --replication.key-filename"],
        ),
        (
            "client-cert-auth without a CA",
            core(&[&https, &cert, &key, "--replication.client-cert-auth"]),
            vec!["--replication.client-cert-auth needs --replication.ca-filename"],
        ),
        (
            "client-cert-auth on an http:// address",
            core(&["--replication.client-cert-auth", &ca_arg]),
            vec!["needs an https:// --replication.address"],
        ),
        (
            "insecure-skip-verify with a CA",
            edge(&[upstream, "--replication.insecure-skip-verify", &ca_arg]),
            vec!["exclude each other"],
        ),
        (
            "a server name that is no name",
            edge(&[upstream, "--replication.server-name=not a name"]),
            vec!["--replication.server-name"],
        ),
        (
            "a CA file that is not PEM",
            edge(&[
                upstream,
                &format!("--replication.ca-filename={}", pair.key.display()),
            ]),
            vec!["--replication.ca-filename", "not a usable CA certificate"],
        ),
    ];
    for (what, args, expected) in cases {
        phase(what);
        let (code, text) = run_to_exit(&args, &[]);
        eprintln!("{what}: exit {code}: {}", text.trim_end());
        assert_ne!(code, 0, "{what}: start-up succeeded");
        for part in expected {
            assert!(text.contains(part), "{what}: {part:?} not in: {text}");
        }
    }
}
