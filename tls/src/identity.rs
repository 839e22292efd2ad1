//! A certificate and key that are re-read when their files change, so an operator (or
//! cert-manager) can replace them without restarting the node: each handshake asks for the
//! current pair, and at most once every [`RECHECK`] that asks whether either file's size or
//! modification time changed. A changed pair is loaded and checked whole (the key must match
//! the certificate); if that fails — a half-written file, a key from another pair — the old
//! pair stays in use, the reason is logged, and the next check tries again.

use std::{
    fs::Metadata,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use arc_swap::ArcSwap;
use rustls::{
    SignatureScheme,
    client::ResolvesClientCert,
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};

use crate::{Error, IdentityFiles, TlsMetrics, metrics::CertificateGauge};

/// How often the files are looked at, at most.
pub const RECHECK: Duration = Duration::from_secs(1);

/// What a file looked like when last loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
}

impl Stamp {
    fn of(metadata: &Metadata) -> Self {
        Self {
            len: metadata.len(),
            modified: metadata.modified().ok(),
        }
    }
}

struct Checked {
    at: Instant,
    stamps: Option<(Stamp, Stamp)>,
}

/// A certificate and key served (or presented, as a client) from files, reloaded when they
/// change. See the module docs.
pub struct Identity {
    files: IdentityFiles,
    current: ArcSwap<CertifiedKey>,
    checked: Mutex<Checked>,
    gauge: Option<CertificateGauge>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Loads and checks the pair now: a missing or unreadable file, one that is not PEM, or
    /// a key that does not match the certificate is an error naming the flag and file.
    /// `port` (`api`, `raft`, …) labels the certificate's expiry in `metrics`.
    pub fn load(
        files: IdentityFiles,
        port: &str,
        metrics: Option<&TlsMetrics>,
    ) -> Result<Arc<Self>, Error> {
        let stamps = stamps(&files);
        let key = load_pair(&files)?;
        let gauge = metrics.map(|m| m.certificate(port, &files.cert.path));
        if let Some(gauge) = &gauge {
            gauge.loaded(&key);
        }
        Ok(Arc::new(Self {
            files,
            current: ArcSwap::from_pointee(key),
            checked: Mutex::new(Checked {
                at: Instant::now(),
                stamps,
            }),
            gauge,
        }))
    }

    /// The pair to use now, after reloading it if the files changed (looked at no more than
    /// once every [`RECHECK`]).
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.maybe_reload(false);
        self.current.load_full()
    }

    /// Looks at the files now, whatever the time since the last look, and reloads them if
    /// they changed. Returns whether a new pair is in use.
    pub fn reload_if_changed(&self) -> bool {
        self.maybe_reload(true)
    }

    fn maybe_reload(&self, now: bool) -> bool {
        let Ok(mut checked) = self.checked.try_lock() else {
            // Another handshake is looking; this one uses the pair in place.
            return false;
        };
        if !now && checked.at.elapsed() < RECHECK {
            return false;
        }
        checked.at = Instant::now();
        let stamps = stamps(&self.files);
        if stamps.is_none() || stamps == checked.stamps {
            return false;
        }
        match load_pair(&self.files) {
            Ok(key) => {
                checked.stamps = stamps;
                if let Some(gauge) = &self.gauge {
                    gauge.loaded(&key);
                    gauge.reloaded(true);
                }
                self.current.store(Arc::new(key));
                tracing::info!(
                    cert = %self.files.cert.path.display(),
                    key = %self.files.key.path.display(),
                    "TLS certificate reloaded"
                );
                true
            }
            Err(e) => {
                // Keep the stamps of the pair in use, so the next look tries again.
                if let Some(gauge) = &self.gauge {
                    gauge.reloaded(false);
                }
                tracing::warn!(error = %e, "TLS certificate files changed but cannot be used; keeping the previous certificate");
                false
            }
        }
    }
}

fn stamps(files: &IdentityFiles) -> Option<(Stamp, Stamp)> {
    let cert = std::fs::metadata(files.cert.path()).ok()?;
    let key = std::fs::metadata(files.key.path()).ok()?;
    Some((Stamp::of(&cert), Stamp::of(&key)))
}

/// Reads the pair and checks that the key matches the certificate.
fn load_pair(files: &IdentityFiles) -> Result<CertifiedKey, Error> {
    let chain = files.cert.certificates()?;
    let key = files.key.private_key()?;
    let mismatch = |reason: String| Error::KeyMismatch {
        cert_flag: files.cert.flag.clone(),
        cert: files.cert.path.clone(),
        key_flag: files.key.flag.clone(),
        key: files.key.path.clone(),
        reason,
    };
    let provider = crate::provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| mismatch(format!("unusable key: {e}")))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| mismatch(e.to_string()))?;
    Ok(certified)
}

impl ResolvesServerCert for Identity {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl ResolvesClientCert for Identity {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
