//! End-to-end: the public API over TLS (`https://` with `--api.cert-filename` and
//! `--api.key-filename`), the CLI reaching it with `--ca` or `--insecure`; client
//! certificates (`--api.ca-filename`, `--api.allowed-cn`, `--api.allowed-hostname`, the
//! CLI's `--cert` and `--key`); certificates replaced on disk while the node runs; the REST
//! port over TLS; and the configurations start-up refuses. Certificates are made at test
//! time.

mod common;

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use common::*;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

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
    // `extra` may name its own --api.address or --rest.address instead of the defaults
    // (an https:// API, a plaintext REST port).
    let base = |extra: &[String]| {
        let node = Node::core(1, dir.path());
        let mut args = vec![
            "core".to_string(),
            "--raft.node-id=1".to_string(),
            format!("--raft.address={}", node.raft),
            format!("--raft.initial-members=1={}", node.raft),
            format!("--replication.address={}", node.replication),
            format!("--data-dir={}", node.data_dir.display()),
        ];
        if !extra.iter().any(|a| a.starts_with("--api.address=")) {
            args.push(format!("--api.address=https://127.0.0.1:{}", free_port()));
        }
        if !extra.iter().any(|a| a.starts_with("--rest.address=")) {
            args.push(format!("--rest.address={}", node.rest));
        }
        args.extend_from_slice(extra);
        args
    };
    let plain_api = format!("--api.address=http://127.0.0.1:{}", free_port());
    let https_rest = format!("--rest.address=https://127.0.0.1:{}", free_port());
    let ca = |p: &Path| format!("--api.ca-filename={}", p.display());
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
        (
            "a certificate and key with an http:// API address",
            vec![plain_api.clone(), cert(&certs.cert), key(&certs.key)],
            vec!["is not https://".into(), "--api.cert-filename".into()],
        ),
        (
            "a client CA with an http:// API address",
            vec![plain_api.clone(), ca(&certs.ca)],
            vec!["is not https://".into(), "--api.ca-filename".into()],
        ),
        (
            "--api.client-cert-auth without a CA",
            vec![
                cert(&certs.cert),
                key(&certs.key),
                "--api.client-cert-auth".into(),
            ],
            vec!["--api.client-cert-auth needs --api.ca-filename".into()],
        ),
        (
            "--api.allowed-cn without a CA",
            vec![
                cert(&certs.cert),
                key(&certs.key),
                "--api.allowed-cn=client".into(),
            ],
            vec!["need --api.ca-filename".into()],
        ),
        (
            "both --api.allowed-cn and --api.allowed-hostname",
            vec![
                cert(&certs.cert),
                key(&certs.key),
                ca(&certs.ca),
                "--api.allowed-cn=client".into(),
                "--api.allowed-hostname=client.example".into(),
            ],
            vec!["--api.allowed-cn and --api.allowed-hostname exclude each other".into()],
        ),
        (
            "a client CA file that is not PEM",
            vec![cert(&certs.cert), key(&certs.key), ca(&certs.not_pem)],
            vec![
                "--api.ca-filename".into(),
                certs.not_pem.display().to_string(),
            ],
        ),
        (
            "an https:// REST address without a certificate",
            vec![cert(&certs.cert), key(&certs.key), https_rest.clone()],
            vec!["--rest.cert-filename".into(), "--rest.key-filename".into()],
        ),
        (
            "a REST certificate with an http:// REST address",
            vec![
                cert(&certs.cert),
                key(&certs.key),
                format!("--rest.cert-filename={}", certs.cert.display()),
                format!("--rest.key-filename={}", certs.key.display()),
            ],
            vec!["--rest.address".into(), "is not https://".into()],
        ),
        (
            "a REST key that does not match its certificate",
            vec![
                cert(&certs.cert),
                key(&certs.key),
                https_rest.clone(),
                format!("--rest.cert-filename={}", certs.cert.display()),
                format!("--rest.key-filename={}", certs.other_key.display()),
            ],
            vec!["--rest.key-filename".into(), "does not match".into()],
        ),
    ];
    for (what, extra, expected) in cases {
        phase(what);
        let (code, text) = run_to_exit(&base(&extra), &[]);
        eprintln!("{what}: exit {code}: {}", text.trim_end());
        assert_ne!(code, 0, "{what}: start-up succeeded");
        for part in expected {
            assert!(text.contains(&part), "{what}: {part:?} not in: {text}");
        }
    }
}

/// A CA that signs certificates at test time.
struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

/// A certificate and its key, as written to disk and as served.
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

impl TestCa {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("CA certificate");
        Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for `names` (DNS names or IP addresses) with subject CN `cn`, valid
    /// until the first of January of `until`; `client` marks it for client authentication.
    fn sign(&self, cn: &str, names: &[&str], until: i32, client: bool) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.not_after = rcgen::date_time_ymd(until, 1, 1);
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

/// Unix seconds of the first of January of `year`, UTC (a certificate's notAfter above).
fn new_year(year: i32) -> i64 {
    rcgen::date_time_ymd(year, 1, 1).unix_timestamp()
}

/// Writes `text` to `path` whole: a temporary file beside it renamed over it.
fn replace_file(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write temporary file");
    std::fs::rename(&tmp, path).expect("rename over");
}

/// Writes `leaf`'s certificate and key under `dir` as `name.pem` and `name.key`.
fn write_leaf(dir: &Path, name: &str, leaf: &Leaf) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    replace_file(&cert, &leaf.cert_pem);
    replace_file(&key, &leaf.key_pem);
    (cert, key)
}

fn write_pem(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    replace_file(&path, text);
    path
}

/// A TLS client configuration trusting the CA in `ca`, offering ALPN `alpn`.
fn client_config(ca: &Path, alpn: &[u8]) -> Arc<rustls::ClientConfig> {
    let settings = regatta_tls::ClientSettings {
        ca: Some(regatta_tls::PemFile::new("--ca", ca)),
        ..Default::default()
    };
    let config = regatta_tls::client_config(&settings, "test", None).expect("client config");
    let mut config = (*config).clone();
    config.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(config)
}

/// A TLS session with `address` (`https://host:port`) after a full handshake.
fn handshake(
    address: &str,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    let host_port = address.trim_start_matches("https://");
    let tcp = TcpStream::connect(host_port)?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("server name");
    let mut conn = rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    let mut tcp = tcp;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)?;
    }
    Ok(rustls::StreamOwned::new(conn, tcp))
}

/// The certificate `address` presents to a new connection (DER), or why none.
fn served_certificate(address: &str, ca: &Path) -> std::io::Result<Vec<u8>> {
    let session = handshake(address, client_config(ca, b"h2"))?;
    session
        .conn
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|cert| cert.as_ref().to_vec())
        .ok_or_else(|| std::io::Error::other("no server certificate"))
}

/// `GET path` over HTTPS (HTTP/1.1, ALPN `http/1.1`); the status code and body.
fn https_get(address: &str, ca: &Path, path: &str) -> std::io::Result<(u16, String)> {
    let mut session = handshake(address, client_config(ca, b"http/1.1"))?;
    let alpn = session.conn.alpn_protocol().map(<[u8]>::to_vec);
    if alpn.as_deref() != Some(b"http/1.1".as_slice()) {
        return Err(std::io::Error::other(format!("ALPN {alpn:?}")));
    }
    write!(
        session,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    match session.read_to_string(&mut text) {
        Ok(_) => {}
        // A server closing without close_notify after the response.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !text.is_empty() => {}
        Err(e) => return Err(e),
    }
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {text:?}")))?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok((code, body.to_string()))
}

/// The value of the first series of `name` in `metrics` whose labels contain every one of
/// `labels` (`port="api"`).
fn metric(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix('{')?;
        let (series, value) = rest.split_once("} ")?;
        labels
            .iter()
            .all(|l| series.split(',').any(|s| s == *l))
            .then(|| value.trim().parse().ok())?
    })
}

/// The node's `/metrics` over its plaintext REST port.
fn node_metrics(node: &Node) -> String {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(node.http_body("/metrics"))
        .unwrap_or_default()
}

/// Runs the CLI against `address` trusting `ca`, with `extra` arguments (client
/// certificate flags).
fn cli_at(address: &str, ca: &Path, extra: &[String], args: &[&str]) -> (i32, String, String) {
    let ca = format!("--ca={}", ca.display());
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--address", address, &ca, "--timeout=3s"]);
    all.extend(extra.iter().map(String::as_str));
    cli(&all)
}

fn client_flags(cert: &Path, key: &Path) -> Vec<String> {
    vec![
        format!("--cert={}", cert.display()),
        format!("--key={}", key.display()),
    ]
}

#[test]
fn api_client_certificates_are_required_and_checked() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let d = dir.path();
    let server_ca = TestCa::new("regatta server CA");
    let client_ca = TestCa::new("regatta client CA");
    let other_ca = TestCa::new("someone else's CA");
    let ca = write_pem(d, "server-ca.pem", &server_ca.pem);
    let clients_ca = write_pem(d, "client-ca.pem", &client_ca.pem);
    let (server_cert, server_key) = write_leaf(
        d,
        "server",
        &server_ca.sign("server", &["127.0.0.1", "localhost"], 2040, false),
    );
    let (a_cert, a_key) = write_leaf(
        d,
        "client-a",
        &client_ca.sign("client-a", &["client-a.example"], 2040, true),
    );
    let (b_cert, b_key) = write_leaf(
        d,
        "client-b",
        &client_ca.sign("client-b", &["client-b.example"], 2040, true),
    );
    let (x_cert, x_key) = write_leaf(
        d,
        "stranger",
        &other_ca.sign("client-a", &["client-a.example"], 2040, true),
    );
    let a = client_flags(&a_cert, &a_key);
    let b = client_flags(&b_cert, &b_key);
    let stranger = client_flags(&x_cert, &x_key);
    let server_args = |extra: &[String]| {
        let mut args = vec![
            format!("--api.cert-filename={}", server_cert.display()),
            format!("--api.key-filename={}", server_key.display()),
            format!("--api.ca-filename={}", clients_ca.display()),
        ];
        args.extend_from_slice(extra);
        args
    };

    phase("a core whose API requires client certificates (--api.ca-filename alone)");
    let mut core = Node::core(1, d);
    core.api = format!("https://127.0.0.1:{}", free_port());
    core.args = server_args(&[]);
    let members = initial_members(std::slice::from_ref(&core));
    core.start(&members);
    let address = core.api.clone();
    wait_until_blocking("the API serves client a", || {
        cli_at(&address, &ca, &a, &["table", "list"]).0 == 0
    });

    phase("the right client certificate works");
    let (code, _, err) = cli_at(&address, &ca, &a, &["table", "create", "t"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = cli_at(&address, &ca, &a, &["kv", "put", "t", "k", "mtls"]);
    assert_eq!(code, 0, "{err}");

    phase("no client certificate is refused");
    let (code, _, err) = cli_at(&address, &ca, &[], &["kv", "get", "t", "k"]);
    eprintln!("no client certificate: exit {code}: {err}");
    assert_eq!(code, 3, "a client without a certificate: {err}");

    phase("a client certificate signed by another CA is refused");
    let (code, _, err) = cli_at(&address, &ca, &stranger, &["kv", "get", "t", "k"]);
    eprintln!("another CA: exit {code}: {err}");
    assert_eq!(code, 3, "a certificate of another CA: {err}");

    phase("the CLI refuses half a pair and unusable files as usage errors");
    let only_cert = vec![format!("--cert={}", a_cert.display())];
    let (code, _, err) = cli_at(&address, &ca, &only_cert, &["kv", "get", "t", "k"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--key"), "{err}");
    let not_pem = write_pem(d, "not-a-cert.pem", "not PEM\n");
    let bad = client_flags(&not_pem, &a_key);
    let (code, _, err) = cli_at(&address, &ca, &bad, &["kv", "get", "t", "k"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--cert") && err.contains("not-a-cert.pem"),
        "{err}"
    );
    let mismatched = client_flags(&a_cert, &b_key);
    let (code, _, err) = cli_at(&address, &ca, &mismatched, &["kv", "get", "t", "k"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("does not match"), "{err}");

    phase("--api.allowed-cn admits only that common name");
    core.kill();
    core.args = server_args(&[
        "--api.client-cert-auth".to_string(),
        "--api.allowed-cn=client-a".to_string(),
    ]);
    core.start(&members);
    wait_until_blocking("the API serves client a again", || {
        cli_at(&address, &ca, &a, &["kv", "get", "t", "k"]).0 == 0
    });
    let (code, _, err) = cli_at(&address, &ca, &b, &["kv", "get", "t", "k"]);
    eprintln!("client b under allowed-cn=client-a: exit {code}: {err}");
    assert_ne!(code, 0, "a certificate of another CN was accepted");
    // The CN matches, but the CA does not: the CA is checked first.
    let (code, _, _) = cli_at(&address, &ca, &stranger, &["kv", "get", "t", "k"]);
    assert_ne!(code, 0, "the right CN from another CA was accepted");

    phase("--api.allowed-hostname admits only certificates valid for that name");
    core.kill();
    core.args = server_args(&["--api.allowed-hostname=client-b.example".to_string()]);
    core.start(&members);
    wait_until_blocking("the API serves client b", || {
        cli_at(&address, &ca, &b, &["kv", "get", "t", "k"]).0 == 0
    });
    let (code, out, err) = cli_at(&address, &ca, &b, &["kv", "get", "t", "k"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("mtls"), "{out}");
    let (code, _, err) = cli_at(&address, &ca, &a, &["kv", "get", "t", "k"]);
    eprintln!("client a under allowed-hostname=client-b.example: exit {code}: {err}");
    assert_ne!(code, 0, "a certificate for another host name was accepted");
}

#[test]
fn the_api_certificate_is_reloaded_from_disk_without_a_restart() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let d = dir.path();
    let server_ca = TestCa::new("regatta server CA");
    let first = server_ca.sign("first", &["127.0.0.1"], 2040, false);
    let second = server_ca.sign("second", &["127.0.0.1"], 2041, false);
    let broken = server_ca.sign("broken", &["127.0.0.1"], 2042, false);
    let unrelated = server_ca.sign("unrelated", &["127.0.0.1"], 2043, false);
    let ca = write_pem(d, "ca.pem", &server_ca.pem);
    let (cert, key) = write_leaf(d, "server", &first);

    phase("a core serving the first certificate");
    let mut core = Node::core(1, d);
    core.api = format!("https://127.0.0.1:{}", free_port());
    core.args = vec![
        format!("--api.cert-filename={}", cert.display()),
        format!("--api.key-filename={}", key.display()),
    ];
    let members = initial_members(std::slice::from_ref(&core));
    core.start(&members);
    let address = core.api.clone();
    wait_until_blocking("the API serves TLS", || {
        served_certificate(&address, &ca).is_ok()
    });
    assert_eq!(
        served_certificate(&address, &ca).expect("handshake"),
        first.der
    );
    let expiry = |core: &Node| {
        metric(
            &node_metrics(core),
            "regatta_tls_certificate_expiry_timestamp_seconds",
            &["port=\"api\""],
        )
    };
    let reloads = |core: &Node, result: &str| {
        let label = format!("result=\"{result}\"");
        metric(
            &node_metrics(core),
            "regatta_tls_certificate_reloads_total",
            &["port=\"api\"", &label],
        )
        .unwrap_or(0.0)
    };
    wait_until_blocking("the REST port answers", || expiry(&core).is_some());
    assert_eq!(expiry(&core), Some(new_year(2040) as f64), "first notAfter");

    phase("a new pair written over the files is served to new connections");
    write_leaf(d, "server", &second);
    wait_until_blocking("a new connection sees the second certificate", || {
        served_certificate(&address, &ca).is_ok_and(|der| der == second.der)
    });
    assert_eq!(
        expiry(&core),
        Some(new_year(2041) as f64),
        "second notAfter"
    );
    assert!(reloads(&core, "ok") >= 1.0);
    let (code, _, err) = cli_at(&address, &ca, &[], &["table", "list"]);
    assert_eq!(code, 0, "{err}");

    phase("a broken pair (a key of another certificate) keeps the second one in use");
    replace_file(&cert, &broken.cert_pem);
    replace_file(&key, &unrelated.key_pem);
    wait_until_blocking("the failed reload is counted", || {
        // Each handshake lets the node look at the files again.
        let _ = served_certificate(&address, &ca);
        reloads(&core, "failed") >= 1.0
    });
    assert_eq!(
        served_certificate(&address, &ca).expect("handshake"),
        second.der
    );
    assert_eq!(
        expiry(&core),
        Some(new_year(2041) as f64),
        "still the second"
    );
    let (code, _, err) = cli_at(&address, &ca, &[], &["table", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        core.is_running(),
        "the node stopped over a broken certificate"
    );

    phase("fixing the files takes without a restart");
    write_leaf(d, "server", &unrelated);
    wait_until_blocking("a new connection sees the fixed certificate", || {
        served_certificate(&address, &ca).is_ok_and(|der| der == unrelated.der)
    });
}

#[test]
fn the_rest_port_serves_https() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let d = dir.path();
    let server_ca = TestCa::new("regatta server CA");
    let ca = write_pem(d, "ca.pem", &server_ca.pem);
    let (cert, key) = write_leaf(
        d,
        "rest",
        &server_ca.sign("rest", &["127.0.0.1"], 2039, false),
    );

    phase("a core with an https:// REST address");
    let mut core = Node::core(1, d);
    core.rest = format!("https://127.0.0.1:{}", free_port());
    core.args = vec![
        format!("--rest.cert-filename={}", cert.display()),
        format!("--rest.key-filename={}", key.display()),
    ];
    let members = initial_members(std::slice::from_ref(&core));
    core.start(&members);
    let rest = core.rest.clone();
    wait_until_blocking("/healthz answers over HTTPS", || {
        https_get(&rest, &ca, "/healthz").is_ok_and(|(code, _)| code == 200)
    });

    phase("/readyz and /metrics over HTTPS");
    wait_until_blocking("/readyz says ready", || {
        https_get(&rest, &ca, "/readyz").is_ok_and(|(code, _)| code == 200)
    });
    let (code, body) = https_get(&rest, &ca, "/metrics").expect("GET /metrics");
    assert_eq!(code, 200);
    assert_eq!(
        metric(
            &body,
            "regatta_tls_certificate_expiry_timestamp_seconds",
            &["port=\"rest\""]
        ),
        Some(new_year(2039) as f64),
        "{body}"
    );

    phase("a plaintext request to the HTTPS port gets no answer");
    let mut tcp = TcpStream::connect(rest.trim_start_matches("https://")).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut text = String::new();
    let _ = tcp.read_to_string(&mut text);
    assert!(!text.contains("200 OK"), "plaintext served: {text}");
}
