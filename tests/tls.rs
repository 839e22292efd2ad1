//! End-to-end: the public API over TLS (`https://` with `--api.cert-filename` and
//! `--api.key-filename`), the CLI reaching it with `--ca` or `--insecure`, and the
//! configurations start-up refuses. Certificates are made at test time.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// A CA, a server certificate it signed for 127.0.0.1 and localhost, and the files the
/// bad-configuration cases need.
struct Certs {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    other_key: PathBuf,
    not_pem: PathBuf,
}

fn make_certs(dir: &Path) -> Certs {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "regatta test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "regatta test server");
    let server_cert = params
        .signed_by(&server_key, &issuer)
        .expect("server certificate");
    let other_key = KeyPair::generate().expect("other key");
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write PEM");
        path
    };
    Certs {
        ca: write("ca.pem", &ca_cert.pem()),
        cert: write("server.pem", &server_cert.pem()),
        key: write("server.key", &server_key.serialize_pem()),
        other_key: write("other.key", &other_key.serialize_pem()),
        not_pem: write("not-pem.txt", "this is not a PEM file\n"),
    }
}

fn tls_args(certs: &Certs) -> Vec<String> {
    vec![
        format!("--api.cert-filename={}", certs.cert.display()),
        format!("--api.key-filename={}", certs.key.display()),
    ]
}

/// Runs the CLI with `args`; exit code, stdout, stderr.
fn cli(args: &[&str]) -> (i32, String, String) {
    let out = regatta(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits until `regatta table list` succeeds over TLS at `address`.
fn wait_serving(address: &str, ca: &Path) {
    let ca = format!("--ca={}", ca.display());
    wait_until_blocking(&format!("{address} serves over TLS"), || {
        cli(&["table", "list", "--address", address, &ca]).0 == 0
    });
}

/// Starts `regatta args…` and waits for it to exit; its exit code and output.
fn start_fails(args: &[String]) -> (i32, String) {
    let mut cmd = std::process::Command::new(binary());
    cmd.args(args);
    let child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start regatta");
    let out = child.wait_with_output().expect("wait");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn the_api_serves_tls_and_the_cli_reaches_it() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let certs = make_certs(dir.path());

    phase("a single-node core with an https:// API");
    let mut core = Node::core(1, dir.path());
    core.api = format!("https://127.0.0.1:{}", free_port());
    core.args = tls_args(&certs);
    let members = initial_members(std::slice::from_ref(&core));
    core.start(&members);
    let address = core.api.clone();
    wait_serving(&address, &certs.ca);

    phase("the CLI trusting the CA writes and reads");
    let ca = format!("--ca={}", certs.ca.display());
    let with_ca = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--address", &address, &ca]);
        cli(&all)
    };
    let (code, _, err) = with_ca(&["table", "create", "t"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = with_ca(&["kv", "put", "t", "k", "over-tls"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = with_ca(&["kv", "get", "t", "k"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("over-tls"), "{out}");

    phase("without --ca the server's certificate is not trusted");
    let (code, _, err) = cli(&["kv", "get", "t", "k", "--address", &address]);
    eprintln!("without --ca: exit {code}: {err}");
    assert_ne!(code, 0);
    assert!(
        err.to_lowercase().contains("certificate"),
        "no certificate error: {err}"
    );

    phase("--insecure skips verification");
    let (code, out, err) = cli(&["kv", "get", "t", "k", "--address", &address, "--insecure"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("over-tls"), "{out}");

    phase("a plaintext client to the TLS port fails");
    let plain = address.replacen("https://", "http://", 1);
    let (code, _, err) = cli(&["kv", "get", "t", "k", "--address", &plain, "--timeout=2s"]);
    eprintln!("plaintext to TLS: exit {code}: {err}");
    assert_ne!(code, 0, "plaintext request succeeded against a TLS port");
    assert!(!err.is_empty());

    phase("an edge with an https:// API follows the core");
    let mut edge = Edge::new("edge", dir.path(), vec![core.replication.clone()]);
    edge.node.api = format!("https://127.0.0.1:{}", free_port());
    edge.node.args = tls_args(&certs);
    edge.start();
    let edge_address = edge.node.api.clone();
    wait_until_blocking("the edge serves the value over TLS", || {
        let (code, out, _) = cli(&["kv", "get", "t", "k", "--address", &edge_address, &ca]);
        code == 0 && out.contains("over-tls")
    });
}

#[test]
fn bad_tls_configuration_fails_start_up_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let certs = make_certs(dir.path());
    let base = |extra: &[String]| {
        let node = Node::core(1, dir.path());
        let mut args = vec![
            "core".to_string(),
            "--raft.node-id=1".to_string(),
            format!("--raft.address={}", node.raft),
            format!("--raft.initial-members=1={}", node.raft),
            format!("--api.address=https://127.0.0.1:{}", free_port()),
            format!("--rest.address={}", node.rest),
            format!("--replication.address={}", node.replication),
            format!("--data-dir={}", node.data_dir.display()),
        ];
        args.extend_from_slice(extra);
        args
    };
    let cert = |p: &Path| format!("--api.cert-filename={}", p.display());
    let key = |p: &Path| format!("--api.key-filename={}", p.display());
    let missing = dir.path().join("missing.pem");
    let cases: Vec<(&str, Vec<String>, Vec<String>)> = vec![
        (
            "https:// without a certificate",
            vec![],
            vec!["--api.cert-filename".into(), "--api.key-filename".into()],
        ),
        (
            "https:// without a key",
            vec![cert(&certs.cert)],
            vec!["--api.key-filename".into()],
        ),
        (
            "a missing certificate file",
            vec![cert(&missing), key(&certs.key)],
            vec![missing.display().to_string(), "cannot read".into()],
        ),
        (
            "a missing key file",
            vec![cert(&certs.cert), key(&missing)],
            vec![missing.display().to_string(), "cannot read".into()],
        ),
        (
            "a certificate that is not PEM",
            vec![cert(&certs.not_pem), key(&certs.key)],
            vec![
                certs.not_pem.display().to_string(),
                "not a PEM certificate".into(),
            ],
        ),
        (
            "a key that is not PEM",
            vec![cert(&certs.cert), key(&certs.not_pem)],
            vec![
                certs.not_pem.display().to_string(),
                "not a PEM private key".into(),
            ],
        ),
        (
            "a key that does not match the certificate",
            vec![cert(&certs.cert), key(&certs.other_key)],
            vec![
                certs.other_key.display().to_string(),
                "does not match".into(),
            ],
        ),
    ];
    for (what, extra, expected) in cases {
        phase(what);
        let (code, text) = start_fails(&base(&extra));
        eprintln!("{what}: exit {code}: {}", text.trim_end());
        assert_ne!(code, 0, "{what}: start-up succeeded");
        for part in expected {
            assert!(text.contains(&part), "{what}: {part:?} not in: {text}");
        }
    }
}
