//! `regatta_tls_certificate_expiry_timestamp_seconds{port,file}`: when each certificate in
//! use stops being valid (its `notAfter`, Unix seconds), set at load and at every reload, so
//! an alert can fire days before it happens; `regatta_tls_certificate_reloads_total
//! {port,result}` counts reloads that took (`ok`) and changed files that could not be used
//! (`failed`).

use std::path::Path;

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use rustls::sign::CertifiedKey;

/// The TLS metrics of a node.
#[derive(Clone)]
pub struct TlsMetrics {
    expiry: IntGaugeVec,
    reloads: IntCounterVec,
}

impl TlsMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let expiry = IntGaugeVec::new(
            Opts::new(
                "regatta_tls_certificate_expiry_timestamp_seconds",
                "When the certificate in use stops being valid (notAfter), in Unix seconds",
            ),
            &["port", "file"],
        )?;
        let reloads = IntCounterVec::new(
            Opts::new(
                "regatta_tls_certificate_reloads_total",
                "Certificate files that changed on disk: reloaded (ok) or kept the previous pair (failed)",
            ),
            &["port", "result"],
        )?;
        registry.register(Box::new(expiry.clone()))?;
        registry.register(Box::new(reloads.clone()))?;
        Ok(Self { expiry, reloads })
    }

    pub(crate) fn certificate(&self, port: &str, file: &Path) -> CertificateGauge {
        CertificateGauge {
            metrics: self.clone(),
            port: port.to_string(),
            file: file.display().to_string(),
        }
    }
}

/// The series of one certificate.
pub(crate) struct CertificateGauge {
    metrics: TlsMetrics,
    port: String,
    file: String,
}

impl CertificateGauge {
    pub(crate) fn loaded(&self, key: &CertifiedKey) {
        if let Some(not_after) = key.end_entity_cert().ok().and_then(not_after) {
            self.metrics
                .expiry
                .with_label_values(&[self.port.as_str(), self.file.as_str()])
                .set(not_after);
        }
    }

    pub(crate) fn reloaded(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.metrics
            .reloads
            .with_label_values(&[self.port.as_str(), result])
            .inc();
    }
}

/// The certificate's `notAfter`, Unix seconds.
pub(crate) fn not_after(cert: &rustls_pki_types::CertificateDer<'_>) -> Option<i64> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    Some(parsed.validity().not_after.timestamp())
}
