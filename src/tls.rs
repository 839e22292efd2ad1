//! TLS settings of the public API: the certificate chain and private key named by
//! `--api.cert-filename` and `--api.key-filename`, loaded and checked once at start-up
//! (missing or unreadable file, not PEM, key not matching the certificate: start-up fails
//! naming the file and the problem).

use std::{path::Path, sync::Arc};

use anyhow::{Context, Result, anyhow, bail};
use rustls::{ServerConfig, crypto::ring};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

/// A server configuration (TLS 1.2 and 1.3, ALPN `h2`) serving the certificate chain in
/// `cert` with the private key in `key`; `flag` names the flag group in errors (`api`).
pub fn server_config(flag: &str, cert: &Path, key: &Path) -> Result<Arc<ServerConfig>> {
    let chain = certificates(flag, cert)?;
    let key_der = private_key(flag, key)?;
    let provider = Arc::new(ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| {
            anyhow!(
                "--{flag}.key-filename {} does not match the certificate in --{flag}.cert-filename {}: {e}",
                key.display(),
                cert.display()
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Largest certificate or key file read (a PEM chain is a few KiB).
const MAX_PEM_BYTES: u64 = 4 << 20;

fn read(flag: &str, what: &str, path: &Path) -> Result<Vec<u8>> {
    regatta_log::fs::read_capped(path, MAX_PEM_BYTES)
        .map_err(|e| anyhow!("--{flag}.{what} {}: cannot read: {e}", path.display()))
}

fn certificates(flag: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = read(flag, "cert-filename", path)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            anyhow!(
                "--{flag}.cert-filename {}: not a PEM certificate: {e}",
                path.display()
            )
        })?;
    if chain.is_empty() {
        bail!(
            "--{flag}.cert-filename {}: not a PEM certificate (no CERTIFICATE block)",
            path.display()
        );
    }
    Ok(chain)
}

fn private_key(flag: &str, path: &Path) -> Result<PrivateKeyDer<'static>> {
    let pem = read(flag, "key-filename", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        anyhow!(
            "--{flag}.key-filename {}: not a PEM private key: {e}",
            path.display()
        )
    })
}
