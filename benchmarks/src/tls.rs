//! `--tls`: every node's public API (core and edge) served over TLS, and the load
//! generator's clients speaking it, to measure what TLS costs beside a plaintext run. One CA
//! and one server certificate (for `127.0.0.1` and `localhost`) are made per run with rcgen
//! and written next to each node's data; clients trust that CA.

use std::{
    path::Path,
    sync::{Arc, OnceLock},
};

use anyhow::{Context, Result};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls_pki_types::pem::PemObject;

/// The run's CA and server certificate, PEM.
struct Pems {
    ca: String,
    cert: String,
    key: String,
}

static PEMS: OnceLock<Pems> = OnceLock::new();
static CLIENT: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();

fn pems() -> Result<&'static Pems> {
    if let Some(pems) = PEMS.get() {
        return Ok(pems);
    }
    let ca_key = KeyPair::generate().context("CA key")?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).context("CA params")?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca_params.self_signed(&ca_key).context("CA certificate")?;
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().context("server key")?;
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .context("server params")?
        .signed_by(&key, &issuer)
        .context("server certificate")?;
    Ok(PEMS.get_or_init(|| Pems {
        ca: ca.pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
    }))
}

/// The scheme of a node's API address: `https` with `--tls`.
pub fn api_scheme(tls: bool) -> &'static str {
    if tls { "https" } else { "http" }
}

/// The arguments that make a node whose data is in `dir` serve its API over TLS (its
/// `--api.address` must be `https://`); none without `--tls`.
pub fn api_args(tls: bool, dir: &Path) -> Result<Vec<String>> {
    if !tls {
        return Ok(Vec::new());
    }
    let pems = pems()?;
    let cert = dir.join("api.pem");
    let key = dir.join("api.key");
    std::fs::write(&cert, &pems.cert).with_context(|| format!("writing {}", cert.display()))?;
    std::fs::write(&key, &pems.key).with_context(|| format!("writing {}", key.display()))?;
    Ok(vec![
        format!("--api.cert-filename={}", cert.display()),
        format!("--api.key-filename={}", key.display()),
    ])
}

/// The client configuration trusting the run's CA.
pub fn client_config() -> Result<Arc<rustls::ClientConfig>> {
    if let Some(config) = CLIENT.get() {
        return Ok(config.clone());
    }
    let pems = pems()?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(pems.ca.as_bytes()) {
        roots
            .add(cert.context("CA PEM")?)
            .context("CA certificate")?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(CLIENT.get_or_init(|| Arc::new(config)).clone())
}

/// How the load generator dials `url`: TLS under [`client_config`] for `https://`.
pub fn dialer(url: &str) -> Result<regatta_tls::Dialer> {
    if url.starts_with("https://") {
        Ok(regatta_tls::Dialer::tls(client_config()?, None)?)
    } else {
        Ok(regatta_tls::Dialer::plaintext())
    }
}
