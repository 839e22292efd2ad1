//! TLS for every port of a node and for the CLI: the certificate, key and CA files an
//! operator names in flags, checked at start-up and re-read when they change
//! ([`Identity`]); server configurations that may require client certificates signed by a
//! CA, optionally of one common name or host name ([`server_config`]); client
//! configurations trusting a CA or the system's roots, presenting a client certificate
//! ([`client_config`]); and the [`Dialer`] every internal client and the CLI open gRPC
//! channels through, plaintext for `http://` addresses and TLS for `https://` ones.
//!
//! Everything here uses rustls with the `ring` provider; TLS 1.2 and 1.3; ALPN `h2`.
//! See `OVERVIEW.md` for the invariants.

mod client;
mod dial;
mod files;
mod identity;
mod metrics;
mod server;
mod stream;
mod verdict;

use std::path::PathBuf;

pub use client::{ClientSettings, client_config};
pub use dial::{DialError, Dialer, describe};
pub use files::{IdentityFiles, PemFile, ca_roots};
pub use identity::Identity;
pub use metrics::TlsMetrics;
pub use server::{AllowedPeer, ClientAuth, ServerSettings, server_config};
pub use stream::DialedStream;

/// Why TLS settings could not be used. Each names the flag and the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{flag} {path}: cannot read: {source}")]
    Read {
        flag: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{flag} {path}: not a PEM certificate: {reason}")]
    NotCertificate {
        flag: String,
        path: PathBuf,
        reason: String,
    },
    #[error("{flag} {path}: not a PEM private key: {reason}")]
    NotKey {
        flag: String,
        path: PathBuf,
        reason: String,
    },
    #[error("{key_flag} {key} does not match the certificate in {cert_flag} {cert}: {reason}")]
    KeyMismatch {
        cert_flag: String,
        cert: PathBuf,
        key_flag: String,
        key: PathBuf,
        reason: String,
    },
    #[error("{flag} {path}: not a usable CA certificate: {reason}")]
    BadCa {
        flag: String,
        path: PathBuf,
        reason: String,
    },
    /// Settings that contradict each other, or a value that is not valid (a server name).
    #[error("{0}")]
    Settings(String),
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The crypto provider every configuration here is built on.
fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}

/// The ALPN protocol gRPC speaks.
const ALPN_H2: &[u8] = b"h2";
