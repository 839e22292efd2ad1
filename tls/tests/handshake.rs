//! Real TLS handshakes over loopback between configurations built by this crate: client
//! certificates required and checked, certificates reloaded from disk while serving, the
//! expiry metric, and start-up errors naming the flag and the file.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SerialNumber,
};
use regatta_tls::{
    ClientAuth, ClientSettings, Dialer, Error, IdentityFiles, PemFile, ServerSettings, TlsMetrics,
    client_config, server_config,
};
use rustls_pki_types::ServerName;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// A CA that signs leaf certificates into files in a directory.
struct Ca {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    pem: PathBuf,
}

impl Ca {
    fn new(dir: &Path, name: &str) -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("CA certificate");
        let pem = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&pem, cert.pem()).expect("write CA");
        Self {
            dir: dir.to_path_buf(),
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    fn ca_file(&self, flag: &str) -> PemFile {
        PemFile::new(flag, &self.pem)
    }

    /// A certificate for `localhost` with common name `cn` and `serial`, written as
    /// `<file>.pem` and `<file>.key`.
    fn leaf(&self, file: &str, cn: &str, serial: u64) -> IdentityFiles {
        let key = KeyPair::generate().expect("leaf key");
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.serial_number = Some(SerialNumber::from(serial));
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        let cert_path = self.dir.join(format!("{file}.pem"));
        let key_path = self.dir.join(format!("{file}.key"));
        std::fs::write(&cert_path, cert.pem()).expect("write cert");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        IdentityFiles {
            cert: PemFile::new("--test.cert-filename", cert_path),
            key: PemFile::new("--test.key-filename", key_path),
        }
    }
}

/// A server answering each connection's one byte with the serial of its own certificate's
/// last byte after a handshake under `config`; returns its address.
async fn serve(config: Arc<rustls::ServerConfig>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let mut byte = [0u8; 1];
                    if tls.read_exact(&mut byte).await.is_ok() {
                        let _ = tls.write_all(&byte).await;
                        let _ = tls.shutdown().await;
                    }
                }
            });
        }
    });
    addr
}

/// Connects under `config`, sends a byte and reads it back; the serial of the server's
/// certificate on success, the error otherwise.
async fn exchange(
    addr: std::net::SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> Result<Vec<u8>, std::io::Error> {
    let tcp = TcpStream::connect(addr).await?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let name = ServerName::try_from("localhost").expect("name");
    let mut tls = connector.connect(name, tcp).await?;
    tls.write_all(b"x").await?;
    let mut byte = [0u8; 1];
    // A server refusing the client's certificate says so when the client first reads
    // (TLS 1.3 finishes the client's side of the handshake before the server checks).
    tls.read_exact(&mut byte).await?;
    let (_, session) = tls.get_ref();
    let cert = session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .expect("server certificate")
        .clone();
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).expect("x509");
    Ok(parsed.raw_serial().to_vec())
}

fn client(ca: &Ca, identity: Option<IdentityFiles>) -> Arc<rustls::ClientConfig> {
    client_config(
        &ClientSettings {
            ca: Some(ca.ca_file("--test.ca-filename")),
            identity,
            insecure_skip_verify: false,
        },
        "test",
        None,
    )
    .expect("client config")
}

#[tokio::test]
async fn client_certificates_are_required_and_checked_against_the_ca() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = Ca::new(dir.path(), "trusted");
    let other = Ca::new(dir.path(), "other");
    let server = server_config(
        &ServerSettings {
            identity: ca.leaf("server", "server", 1),
            client_auth: Some(ClientAuth {
                ca: ca.ca_file("--test.ca-filename"),
                allowed: None,
            }),
        },
        "test",
        None,
    )
    .expect("server config");
    let addr = serve(server).await;

    let signed = client(&ca, Some(ca.leaf("client", "client", 2)));
    assert!(
        exchange(addr, signed).await.is_ok(),
        "a client the CA signed is let in"
    );

    let none = client(&ca, None);
    let err = exchange(addr, none)
        .await
        .expect_err("no client certificate");
    assert!(
        err.to_string().contains("CertificateRequired") || err.to_string().contains("alert"),
        "{err}"
    );

    let stranger = client(&ca, Some(other.leaf("stranger", "client", 3)));
    let err = exchange(addr, stranger)
        .await
        .expect_err("another CA's certificate");
    assert!(
        err.to_string().to_lowercase().contains("unknown") || err.to_string().contains("alert"),
        "{err}"
    );

    // And the client side checks the server: one trusting only the other CA refuses it.
    let distrustful = client(&other, None);
    let err = exchange(addr, distrustful)
        .await
        .expect_err("server not trusted");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn allowed_common_name_and_host_name_narrow_whom_the_ca_signed() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = Ca::new(dir.path(), "trusted");
    let identity = ca.leaf("server", "server", 1);
    let with = |allowed| {
        server_config(
            &ServerSettings {
                identity: identity.clone(),
                client_auth: Some(ClientAuth {
                    ca: ca.ca_file("--test.ca-filename"),
                    allowed: Some(allowed),
                }),
            },
            "test",
            None,
        )
        .expect("server config")
    };
    let by_cn = serve(with(regatta_tls::AllowedPeer::CommonName("edge-1".into()))).await;
    let edge1 = client(&ca, Some(ca.leaf("edge1", "edge-1", 2)));
    let edge2 = client(&ca, Some(ca.leaf("edge2", "edge-2", 3)));
    assert!(exchange(by_cn, edge1.clone()).await.is_ok());
    assert!(
        exchange(by_cn, edge2.clone()).await.is_err(),
        "another CN is refused"
    );

    // Every leaf here is valid for `localhost` only.
    let by_host = serve(with(regatta_tls::AllowedPeer::Hostname("localhost".into()))).await;
    assert!(exchange(by_host, edge2).await.is_ok());
    let by_other_host = serve(with(regatta_tls::AllowedPeer::Hostname(
        "db.example".into(),
    )))
    .await;
    assert!(
        exchange(by_other_host, edge1).await.is_err(),
        "a certificate for another host is refused"
    );

    let both = regatta_tls::AllowedPeer::from_flags(
        Some("a"),
        Some("b"),
        ("--x.allowed-cn", "--x.allowed-hostname"),
    )
    .expect_err("exclusive")
    .to_string();
    assert!(
        both.contains("--x.allowed-cn") && both.contains("--x.allowed-hostname"),
        "{both}"
    );
}

#[tokio::test]
async fn a_replaced_certificate_is_served_to_new_connections_and_a_broken_one_is_not() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = Ca::new(dir.path(), "trusted");
    let registry = prometheus::Registry::new();
    let metrics = TlsMetrics::register(&registry).expect("metrics");
    let identity = ca.leaf("server", "server", 0x11);
    let server = server_config(
        &ServerSettings {
            identity: identity.clone(),
            client_auth: None,
        },
        "api",
        Some(&metrics),
    )
    .expect("server config");
    let addr = serve(server).await;
    // A fresh client configuration for each connection: one reused would resume its TLS
    // session, and a resumed session presents no certificate (the first one is reported).
    let fresh_client = || client(&ca, None);
    assert_eq!(
        exchange(addr, fresh_client()).await.expect("first"),
        vec![0x11]
    );
    let first_expiry = gauge(
        &registry,
        "regatta_tls_certificate_expiry_timestamp_seconds",
    );
    assert!(
        first_expiry > 0,
        "the expiry of the certificate in use is exported"
    );

    // A new pair written over the files (another serial): new handshakes present it once
    // the files are looked at again (at most a second later).
    let fresh = ca.leaf("fresh", "server", 0x22);
    std::fs::copy(&fresh.cert.path, &identity.cert.path).expect("replace cert");
    std::fs::copy(&fresh.key.path, &identity.key.path).expect("replace key");
    let serial = wait_for_serial(addr, &fresh_client, 0x22).await;
    assert_eq!(serial, vec![0x22]);
    assert_eq!(counter(&registry, "ok"), 1);

    // A certificate whose key does not match: the previous pair stays in use.
    let other = ca.leaf("other", "server", 0x33);
    std::fs::copy(&other.cert.path, &identity.cert.path).expect("replace cert only");
    wait_until(
        || counter(&registry, "failed") >= 1,
        || {
            let client = fresh_client();
            async move {
                let _ = exchange(addr, client).await;
            }
        },
    )
    .await;
    assert_eq!(
        exchange(addr, fresh_client()).await.expect("still served"),
        vec![0x22]
    );
}

async fn wait_for_serial(
    addr: std::net::SocketAddr,
    client: &impl Fn() -> Arc<rustls::ClientConfig>,
    serial: u8,
) -> Vec<u8> {
    let wait = async {
        loop {
            let got = exchange(addr, client()).await.expect("served");
            if got == vec![serial] {
                return got;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), wait)
        .await
        .expect("the replaced certificate was never served")
}

/// Runs `poke` until `done` holds (each handshake is what makes the server look at its
/// files), for at most 10 s.
async fn wait_until<F, Fut>(done: impl Fn() -> bool, poke: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let wait = async {
        while !done() {
            poke().await;
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), wait)
        .await
        .expect("condition never held");
}

fn gauge(registry: &prometheus::Registry, name: &str) -> i64 {
    registry
        .gather()
        .iter()
        .find(|f| f.name() == name)
        .and_then(|f| {
            f.get_metric()
                .first()
                .map(|m| m.get_gauge().get_value() as i64)
        })
        .unwrap_or(0)
}

fn counter(registry: &prometheus::Registry, result: &str) -> u64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == "regatta_tls_certificate_reloads_total")
        .flat_map(|f| f.get_metric().iter())
        .filter(|m| {
            m.get_label()
                .iter()
                .any(|l| l.name() == "result" && l.value() == result)
        })
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}

#[test]
fn bad_files_are_errors_naming_the_flag_and_the_file() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = Ca::new(dir.path(), "trusted");
    let good = ca.leaf("server", "server", 1);
    let other = ca.leaf("other", "server", 2);
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello\n").expect("write");
    let settings = |identity: IdentityFiles| ServerSettings {
        identity,
        client_auth: None,
    };
    let err = |identity| {
        server_config(&settings(identity), "test", None)
            .expect_err("refused")
            .to_string()
    };

    let missing = IdentityFiles {
        cert: PemFile::new("--api.cert-filename", dir.path().join("nope.pem")),
        key: good.key.clone(),
    };
    let text = err(missing);
    assert!(
        text.contains("--api.cert-filename")
            && text.contains("nope.pem")
            && text.contains("cannot read"),
        "{text}"
    );

    let garbage = IdentityFiles {
        cert: PemFile::new("--api.cert-filename", &not_pem),
        key: good.key.clone(),
    };
    assert!(err(garbage).contains("not a PEM certificate"));

    let garbage_key = IdentityFiles {
        cert: good.cert.clone(),
        key: PemFile::new("--api.key-filename", &not_pem),
    };
    assert!(err(garbage_key).contains("--api.key-filename"));

    let mismatched = IdentityFiles {
        cert: good.cert.clone(),
        key: other.key.clone(),
    };
    let text = err(mismatched);
    assert!(text.contains("does not match the certificate"), "{text}");

    let bad_ca = ClientSettings {
        ca: Some(PemFile::new("--replication.ca-filename", &not_pem)),
        ..ClientSettings::default()
    };
    let text = client_config(&bad_ca, "test", None)
        .expect_err("bad CA")
        .to_string();
    assert!(
        text.contains("--replication.ca-filename") && text.contains("no PEM CERTIFICATE"),
        "{text}"
    );
    assert!(matches!(
        client_config(&bad_ca, "test", None),
        Err(Error::BadCa { .. })
    ));
}

#[tokio::test]
async fn an_https_address_without_tls_settings_is_refused_not_dialed_in_plaintext() {
    let endpoint = tonic::transport::Endpoint::from_static("https://127.0.0.1:1");
    let err = Dialer::plaintext()
        .connect_lazy(endpoint)
        .expect_err("no TLS settings");
    assert!(matches!(err, regatta_tls::DialError::NoTls { .. }), "{err}");
    assert!(err.to_string().contains("https://127.0.0.1:1"), "{err}");
}
