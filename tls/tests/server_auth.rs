//! Client-certificate checks of `server_config` (the CA first, then `AllowedPeer`) and the
//! reload of a server's identity, through real rustls handshakes between a client and a
//! server connection in memory: no sockets, no clocks.

use std::{path::Path, sync::Arc};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use regatta_tls::{
    AllowedPeer, ClientAuth, ClientSettings, Identity, IdentityFiles, PemFile, ServerSettings,
    TlsMetrics, client_config, server_config,
};
use rustls::{ClientConnection, ServerConnection};
use rustls_pki_types::ServerName;

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("CA certificate");
        Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Writes a certificate for `names` with CN `cn` and its key as `dir/file.pem`,
    /// `dir/file.key`.
    fn leaf(
        &self,
        dir: &Path,
        file: &str,
        cn: &str,
        names: &[&str],
        client: bool,
    ) -> IdentityFiles {
        let key = KeyPair::generate().expect("key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let cert = params.signed_by(&key, &self.issuer).expect("certificate");
        let files = IdentityFiles {
            cert: PemFile::new("--cert", dir.join(format!("{file}.pem"))),
            key: PemFile::new("--key", dir.join(format!("{file}.key"))),
        };
        replace(&files.cert.path, &cert.pem());
        replace(&files.key.path, &key.serialize_pem());
        files
    }

    fn file(&self, dir: &Path, name: &str) -> PemFile {
        let path = dir.join(name);
        replace(&path, &self.pem);
        PemFile::new("--ca", path)
    }
}

fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// Runs a handshake between `client` and `server` in memory; the certificate the server
/// presented (DER), or the first error either side hit.
fn handshake(
    client: Arc<rustls::ClientConfig>,
    server: Arc<rustls::ServerConfig>,
) -> Result<Vec<u8>, rustls::Error> {
    let name = ServerName::try_from("localhost").expect("name");
    let mut client = ClientConnection::new(client, name)?;
    let mut server = ServerConnection::new(server)?;
    for _ in 0..20 {
        let mut buf = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut buf).expect("client write");
        }
        let mut read = &buf[..];
        while !read.is_empty() {
            server.read_tls(&mut read).expect("server read");
            server.process_new_packets()?;
        }
        let mut buf = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut buf).expect("server write");
        }
        let mut read = &buf[..];
        while !read.is_empty() {
            client.read_tls(&mut read).expect("client read");
            client.process_new_packets()?;
        }
        if !client.is_handshaking() && !server.is_handshaking() {
            // The server's refusal of a client certificate can come after the client
            // considers the handshake done (TLS 1.3): one more round to see it.
            if server.wants_write() {
                continue;
            }
            let chain = client.peer_certificates().expect("server chain");
            return Ok(chain[0].as_ref().to_vec());
        }
    }
    panic!("handshake did not finish");
}

struct Setup {
    dir: tempfile::TempDir,
    server_ca: PemFile,
    client_ca: PemFile,
    server: IdentityFiles,
    a: IdentityFiles,
    b: IdentityFiles,
    stranger: IdentityFiles,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let other_ca = Ca::new("other CA");
    Setup {
        server_ca: server_ca.file(d, "server-ca.pem"),
        client_ca: client_ca.file(d, "client-ca.pem"),
        server: server_ca.leaf(d, "server", "server", &["localhost"], false),
        a: client_ca.leaf(d, "a", "client-a", &["a.example"], true),
        b: client_ca.leaf(d, "b", "client-b", &["b.example", "10.0.0.7"], true),
        stranger: other_ca.leaf(d, "x", "client-a", &["a.example"], true),
        dir,
    }
}

impl Setup {
    fn server(&self, allowed: Option<AllowedPeer>) -> Arc<rustls::ServerConfig> {
        let settings = ServerSettings {
            identity: self.server.clone(),
            client_auth: Some(ClientAuth {
                ca: self.client_ca.clone(),
                allowed,
            }),
        };
        server_config(&settings, "api", None).expect("server config")
    }

    fn client(&self, identity: Option<&IdentityFiles>) -> Arc<rustls::ClientConfig> {
        let settings = ClientSettings {
            ca: Some(self.server_ca.clone()),
            identity: identity.cloned(),
            insecure_skip_verify: false,
        };
        client_config(&settings, "client", None).expect("client config")
    }
}

#[test]
fn the_ca_decides_first() {
    let s = setup();
    let server = s.server(None);
    assert!(handshake(s.client(Some(&s.a)), server.clone()).is_ok());
    assert!(handshake(s.client(Some(&s.b)), server.clone()).is_ok());
    assert!(
        handshake(s.client(None), server.clone()).is_err(),
        "no certificate"
    );
    assert!(
        handshake(s.client(Some(&s.stranger)), server).is_err(),
        "another CA"
    );
}

#[test]
fn allowed_common_name() {
    let s = setup();
    let server = s.server(Some(AllowedPeer::CommonName("client-a".into())));
    assert!(handshake(s.client(Some(&s.a)), server.clone()).is_ok());
    assert!(
        handshake(s.client(Some(&s.b)), server.clone()).is_err(),
        "other CN"
    );
    // Same CN, another CA: refused before the CN is looked at.
    assert!(handshake(s.client(Some(&s.stranger)), server.clone()).is_err());
    assert!(handshake(s.client(None), server).is_err());
}

#[test]
fn allowed_hostname_matches_dns_names_and_ip_addresses() {
    let s = setup();
    let by_name = s.server(Some(AllowedPeer::Hostname("b.example".into())));
    assert!(handshake(s.client(Some(&s.b)), by_name.clone()).is_ok());
    assert!(
        handshake(s.client(Some(&s.a)), by_name).is_err(),
        "other name"
    );
    let by_ip = s.server(Some(AllowedPeer::Hostname("10.0.0.7".into())));
    assert!(handshake(s.client(Some(&s.b)), by_ip.clone()).is_ok());
    assert!(handshake(s.client(Some(&s.a)), by_ip).is_err());
    // A CN is not a host name.
    let cn_as_host = s.server(Some(AllowedPeer::Hostname("client-b".into())));
    assert!(handshake(s.client(Some(&s.b)), cn_as_host).is_err());
}

#[test]
fn allowed_peer_flags() {
    let flags = ("--api.allowed-cn", "--api.allowed-hostname");
    assert_eq!(
        AllowedPeer::from_flags(None, None, flags).expect("none"),
        None
    );
    assert_eq!(
        AllowedPeer::from_flags(Some(""), Some(""), flags).expect("empty is unset"),
        None
    );
    assert_eq!(
        AllowedPeer::from_flags(Some("a"), None, flags).expect("cn"),
        Some(AllowedPeer::CommonName("a".into()))
    );
    assert_eq!(
        AllowedPeer::from_flags(None, Some("h.example"), flags).expect("host"),
        Some(AllowedPeer::Hostname("h.example".into()))
    );
    let both = AllowedPeer::from_flags(Some("a"), Some("h.example"), flags)
        .expect_err("both")
        .to_string();
    assert!(
        both.contains("--api.allowed-cn") && both.contains("--api.allowed-hostname"),
        "{both}"
    );
    let bad = AllowedPeer::from_flags(None, Some("not a host!"), flags)
        .expect_err("bad host")
        .to_string();
    assert!(bad.contains("--api.allowed-hostname"), "{bad}");
}

#[test]
fn a_changed_pair_is_served_and_a_broken_one_keeps_the_old() {
    let s = setup();
    let d = s.dir.path();
    let ca = Ca::new("reload CA");
    let files = ca.leaf(d, "served", "first", &["localhost"], false);
    let registry = prometheus::Registry::new();
    let metrics = TlsMetrics::register(&registry).expect("metrics");
    let identity = Identity::load(files.clone(), "api", Some(&metrics)).expect("load");
    let first = identity.current().cert[0].clone();

    // Untouched files: nothing reloads.
    assert!(!identity.reload_if_changed());

    // A new pair in place of the old.
    let second = ca.leaf(d, "second", "second", &["localhost"], false);
    std::fs::copy(&second.cert.path, &files.cert.path).expect("copy cert");
    std::fs::copy(&second.key.path, &files.key.path).expect("copy key");
    assert!(identity.reload_if_changed());
    let now = identity.current().cert[0].clone();
    assert_ne!(now, first);

    // A certificate with a key of another pair: kept the second, counted as failed.
    let third = ca.leaf(d, "third", "third", &["localhost"], false);
    std::fs::copy(&third.cert.path, &files.cert.path).expect("copy cert");
    assert!(!identity.reload_if_changed());
    assert_eq!(identity.current().cert[0], now);
    let failed = registry
        .gather()
        .iter()
        .find(|f| f.name() == "regatta_tls_certificate_reloads_total")
        .map(|f| {
            f.get_metric()
                .iter()
                .filter(|m| m.get_label().iter().any(|l| l.value() == "failed"))
                .map(|m| m.get_counter().get_value())
                .sum::<f64>()
        })
        .unwrap_or(0.0);
    assert_eq!(failed, 1.0);

    // Not PEM at all: the same.
    replace(&files.key.path, "garbage\n");
    assert!(!identity.reload_if_changed());
    assert_eq!(identity.current().cert[0], now);
}
