//! Reading PEM files named by flags: bounded in size, every failure naming the flag and the
//! file.

use std::path::{Path, PathBuf};

use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

use crate::Error;

/// Largest certificate, key or CA file read (a PEM chain is a few KiB, a system CA bundle a
/// few hundred).
const MAX_PEM_BYTES: u64 = 4 << 20;

/// A file named by a flag: `flag` (`--api.cert-filename`) names it in errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PemFile {
    pub flag: String,
    pub path: PathBuf,
}

impl PemFile {
    pub fn new(flag: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        Self {
            flag: flag.into(),
            path: path.into(),
        }
    }

    pub(crate) fn read(&self) -> Result<Vec<u8>, Error> {
        regatta_log::fs::read_capped(&self.path, MAX_PEM_BYTES).map_err(|source| Error::Read {
            flag: self.flag.clone(),
            path: self.path.clone(),
            source,
        })
    }

    /// The certificate chain in the file, leaf first.
    pub(crate) fn certificates(&self) -> Result<Vec<CertificateDer<'static>>, Error> {
        let pem = self.read()?;
        let chain = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.not_certificate(e.to_string()))?;
        if chain.is_empty() {
            return Err(self.not_certificate("no CERTIFICATE block".into()));
        }
        Ok(chain)
    }

    /// The private key in the file.
    pub(crate) fn private_key(&self) -> Result<PrivateKeyDer<'static>, Error> {
        let pem = self.read()?;
        PrivateKeyDer::from_pem_slice(&pem).map_err(|e| Error::NotKey {
            flag: self.flag.clone(),
            path: self.path.clone(),
            reason: e.to_string(),
        })
    }

    fn not_certificate(&self, reason: String) -> Error {
        Error::NotCertificate {
            flag: self.flag.clone(),
            path: self.path.clone(),
            reason,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// A certificate and its private key, as a server's identity or a client's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityFiles {
    pub cert: PemFile,
    pub key: PemFile,
}

/// The CA certificates in `file` (one or more PEM blocks).
pub fn ca_roots(file: &PemFile) -> Result<RootCertStore, Error> {
    let bad = |reason: String| Error::BadCa {
        flag: file.flag.clone(),
        path: file.path.clone(),
        reason,
    };
    let pem = file.read()?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| bad(format!("not PEM: {e}")))?;
        roots.add(cert).map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no PEM CERTIFICATE in the file".into()));
    }
    Ok(roots)
}

/// The system's trusted roots (those it cannot read are skipped).
pub(crate) fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(found.certs);
    roots
}
