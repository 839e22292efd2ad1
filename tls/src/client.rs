//! A client's TLS configuration: whom it trusts (a CA file, or the system's roots), the
//! certificate it presents when the server asks (reloading, [`Identity`]), and the
//! `--insecure` escape hatch for self-signed testing.

use std::sync::Arc;

use rustls::{
    ClientConfig, DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::CryptoProvider,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::{ALPN_H2, Error, Identity, IdentityFiles, PemFile, TlsMetrics, ca_roots, files};

/// What a TLS client trusts and presents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientSettings {
    /// The CA that signs the servers' certificates; `None`: the system's trusted roots.
    pub ca: Option<PemFile>,
    /// The certificate presented to servers that ask for one (mTLS).
    pub identity: Option<IdentityFiles>,
    /// Accept any server certificate (self-signed testing only); the handshake's signatures
    /// are still checked.
    pub insecure_skip_verify: bool,
}

/// A client configuration for `settings`; `port` labels the client certificate in
/// `metrics`. Every file is read and checked now.
pub fn client_config(
    settings: &ClientSettings,
    port: &str,
    metrics: Option<&TlsMetrics>,
) -> Result<Arc<ClientConfig>, Error> {
    let provider = crate::provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = if settings.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
    } else {
        let roots = match &settings.ca {
            Some(ca) => ca_roots(ca)?,
            None => files::system_roots(),
        };
        builder.with_root_certificates(roots)
    };
    let mut config = match &settings.identity {
        Some(files) => {
            builder.with_client_cert_resolver(Identity::load(files.clone(), port, metrics)?)
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}

/// Accepts any server certificate, still checking the handshake's signatures.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
