//! A server's TLS configuration: its identity (reloading, [`Identity`]) and, with
//! [`ClientAuth`], the client certificates it requires — signed by the CA in a file and, when
//! [`AllowedPeer`] says so, of one common name or valid for one host name (Regatta's
//! `--api.allowed-cn` and `--api.allowed-hostname`).

use std::sync::Arc;

use rustls::{
    DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme,
    client::danger::HandshakeSignatureValid,
    server::{
        WebPkiClientVerifier,
        danger::{ClientCertVerified, ClientCertVerifier},
    },
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::{ALPN_H2, Error, Identity, IdentityFiles, PemFile, TlsMetrics, ca_roots};

/// What a TLS server presents and whom it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    pub identity: IdentityFiles,
    /// `None`: any client may connect (it authenticates with tokens, if at all).
    pub client_auth: Option<ClientAuth>,
}

/// Clients must present a certificate signed by the CA in `ca`, and match `allowed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAuth {
    pub ca: PemFile,
    pub allowed: Option<AllowedPeer>,
}

/// Which verified client certificates are let in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedPeer {
    /// Those whose subject common name is exactly this.
    CommonName(String),
    /// Those valid for this DNS name or IP address (subject alternative names).
    Hostname(String),
}

impl AllowedPeer {
    /// Regatta's pair of flags: at most one may be set.
    pub fn from_flags(
        allowed_cn: Option<&str>,
        allowed_hostname: Option<&str>,
        flags: (&str, &str),
    ) -> Result<Option<Self>, Error> {
        let non_empty = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_string);
        match (non_empty(allowed_cn), non_empty(allowed_hostname)) {
            (Some(_), Some(_)) => Err(Error::Settings(format!(
                "{} and {} exclude each other: set one",
                flags.0, flags.1
            ))),
            (Some(cn), None) => Ok(Some(Self::CommonName(cn))),
            (None, Some(host)) => {
                ServerName::try_from(host.as_str()).map_err(|e| {
                    Error::Settings(format!("{} {host:?}: not a host name: {e}", flags.1))
                })?;
                Ok(Some(Self::Hostname(host)))
            }
            (None, None) => Ok(None),
        }
    }

    fn admits(&self, cert: &CertificateDer<'_>) -> bool {
        match self {
            Self::CommonName(cn) => common_name(cert).as_deref() == Some(cn.as_str()),
            Self::Hostname(host) => {
                let (Ok(name), Ok(cert)) = (
                    ServerName::try_from(host.as_str()),
                    webpki::EndEntityCert::try_from(cert),
                ) else {
                    return false;
                };
                cert.verify_is_valid_for_subject_name(&name).is_ok()
            }
        }
    }
}

/// The first common name of the certificate's subject.
fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = parsed.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

/// A server configuration for `settings`; `port` labels the certificate in `metrics`.
/// Every file is read and checked now.
pub fn server_config(
    settings: &ServerSettings,
    port: &str,
    metrics: Option<&TlsMetrics>,
) -> Result<Arc<ServerConfig>, Error> {
    let identity = Identity::load(settings.identity.clone(), port, metrics)?;
    let builder = ServerConfig::builder_with_provider(crate::provider())
        .with_safe_default_protocol_versions()?;
    let builder = match &settings.client_auth {
        None => builder.with_no_client_auth(),
        Some(auth) => builder.with_client_cert_verifier(client_verifier(auth, port)?),
    };
    let mut config = builder.with_cert_resolver(identity);
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}

fn client_verifier(auth: &ClientAuth, port: &str) -> Result<Arc<dyn ClientCertVerifier>, Error> {
    let roots = Arc::new(ca_roots(&auth.ca)?);
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, crate::provider())
        .build()
        .map_err(|e| Error::BadCa {
            flag: auth.ca.flag.clone(),
            path: auth.ca.path.clone(),
            reason: e.to_string(),
        })?;
    Ok(match &auth.allowed {
        None => verifier,
        Some(allowed) => Arc::new(AllowedPeerVerifier {
            inner: verifier,
            allowed: allowed.clone(),
            port: port.to_string(),
        }),
    })
}

/// The CA's verification, then the [`AllowedPeer`] check on the verified certificate.
#[derive(Debug)]
struct AllowedPeerVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: AllowedPeer,
    port: String,
}

impl ClientCertVerifier for AllowedPeerVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if self.allowed.admits(end_entity) {
            return Ok(verified);
        }
        tracing::warn!(
            port = %self.port,
            allowed = ?self.allowed,
            common_name = ?common_name(end_entity),
            "client certificate refused: signed by the CA but not the allowed peer"
        );
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::ApplicationVerificationFailure,
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
