//! The client side of TLS: an `https://` `--address` is reached over TLS (ALPN `h2`),
//! trusting the CA in `--ca`, or the system's trusted roots without it; `--insecure`
//! skips verifying the server's certificate (self-signed testing only).

use std::{path::Path, sync::Arc};

use hyper_util::rt::TokioIo;
use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{CryptoProvider, ring},
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint, Uri};

use super::{ClientOptions, Failure};

/// The TLS client configuration `options` ask for.
pub fn client_config(options: &ClientOptions) -> Result<ClientConfig, Failure> {
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Failure::fault(format!("TLS protocol versions: {e}")))?;
    let mut config = if options.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth()
    } else {
        let roots = match &options.ca {
            Some(path) => ca_roots(path)?,
            None => system_roots(),
        };
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Largest `--ca` file read (a system CA bundle is a few hundred KiB).
const MAX_CA_BYTES: u64 = 4 << 20;

fn ca_roots(path: &Path) -> Result<RootCertStore, Failure> {
    let pem = regatta_log::fs::read_capped(path, MAX_CA_BYTES)
        .map_err(|e| Failure::usage(format!("--ca {}: cannot read: {e}", path.display())))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| {
            Failure::usage(format!(
                "--ca {}: not a PEM certificate: {e}",
                path.display()
            ))
        })?;
        roots.add(cert).map_err(|e| {
            Failure::usage(format!(
                "--ca {}: not a CA certificate: {e}",
                path.display()
            ))
        })?;
    }
    if roots.is_empty() {
        return Err(Failure::usage(format!(
            "--ca {}: no PEM CERTIFICATE in the file",
            path.display()
        )));
    }
    Ok(roots)
}

/// The system's trusted roots (those it cannot read are skipped).
fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(found.certs);
    roots
}

/// Connects `endpoint` (an `https://` address) over TLS under `config`.
pub async fn connect(endpoint: Endpoint, config: ClientConfig) -> Result<Channel, Failure> {
    let connector = TlsConnector::from(Arc::new(config));
    let connect = tower::service_fn(move |uri: Uri| {
        let connector = connector.clone();
        async move {
            let host = uri.host().unwrap_or_default().to_string();
            let port = uri.port_u16().unwrap_or(443);
            let name = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let tcp = TcpStream::connect((name.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let server = ServerName::try_from(name)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            let tls = connector.connect(server, tcp).await?;
            Ok::<_, std::io::Error>(TokioIo::new(tls))
        }
    });
    endpoint.connect_with_connector(connect).await.map_err(|e| {
        Failure::new(
            crate::error::UNAVAILABLE,
            format!("cannot connect: {}", causes(&e)),
        )
    })
}

/// `e` and its sources, `outer: inner: …`, each told once (rustls's errors repeat their
/// source in their own text).
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let told = cause.to_string();
        if !text.contains(&told) {
            text.push_str(": ");
            text.push_str(&told);
        }
        source = cause.source();
    }
    text
}

/// Accepts any server certificate (`--insecure`), still checking the handshake's
/// signatures.
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
