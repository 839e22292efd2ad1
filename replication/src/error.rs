//! The crate's one error type.
//!
//! Every variant answers one question for the tailer's caller: **follow another upstream**
//! ([`Error::is_retryable`]: that upstream could not be reached, went quiet, or sent
//! something this node will not take; nothing on this node is wrong and nothing was changed)
//! or **stop replicating** ([`Error::must_stop`]: the local log or snapshots failed, or an
//! entry cannot be applied; continuing would serve wrong data or drop what was acknowledged,
//! so the edge keeps serving what it applied and reports why it stopped).

use std::{io, path::PathBuf, time::Duration};

use tonic::codegen::http::uri::InvalidUri;

/// `Result` with this crate's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // ---- The upstream: follow another one.
    /// The upstream's address is not a URL.
    #[error("invalid upstream URL {upstream:?}: {source}")]
    InvalidUpstream {
        upstream: String,
        source: InvalidUri,
    },
    /// No connection could be made (refused, unreachable, or a TLS handshake that failed:
    /// the upstream's certificate not trusted, not valid for its name, or this edge's own
    /// certificate refused).
    #[error("cannot connect to {upstream}: {source}")]
    Connect {
        upstream: String,
        source: regatta_tls::DialError,
    },
    /// A call to the upstream failed or its stream broke.
    #[error("{call}: {status}")]
    Upstream {
        call: &'static str,
        status: tonic::Status,
    },
    /// The upstream said nothing (not even a heartbeat) for this long.
    #[error("{call}: silent for {after:?}")]
    Silent { call: &'static str, after: Duration },
    /// The upstream closed the stream.
    #[error("the upstream ended the stream")]
    StreamEnded,
    /// A message of a kind this build does not know.
    #[error("the upstream sent a message of an unknown kind")]
    UnknownMessage,
    /// Entries that do not continue the applied index one by one.
    #[error("upstream sent index {got} where {expected} was due")]
    Gap { expected: u64, got: u64 },
    /// A snapshot stream carried more bytes than it announced.
    #[error("snapshot stream longer than announced: {received} bytes of {announced}")]
    SnapshotTooLong { received: u64, announced: u64 },
    /// A snapshot stream ended before the bytes it announced.
    #[error("snapshot stream ended early: {received} bytes of {announced}")]
    SnapshotCut { received: u64, announced: u64 },
    /// The upstream's snapshot does not decode (damaged, or a format this build refuses).
    #[error("upstream snapshot rejected: {0}")]
    SnapshotRejected(#[source] regatta_materializer::Error),

    // ---- This node: stop replicating (a full disk while saving a snapshot excepted).
    /// An entry of a kind this build does not know: upgrade this node.
    #[error("entry {index} has kind {kind} this build does not know")]
    UnknownEntryKind { index: u64, kind: u32 },
    /// An entry whose payload is not an event.
    #[error("entry {index} carries an undecodable event: {source}")]
    UndecodableEvent {
        index: u64,
        source: prost::DecodeError,
    },
    /// The materializer refused a committed entry.
    #[error("apply: {0}")]
    Apply(#[source] regatta_materializer::Error),
    /// The local log failed (`what` says at what).
    #[error("local log: {what}: {source}")]
    LocalLog {
        what: &'static str,
        source: regatta_log::Error,
    },
    /// Saving, publishing or listing local snapshots failed. A full disk here is retryable:
    /// a snapshot is published whole or not at all, so nothing changed.
    #[error("local snapshots: {0}")]
    SnapshotDir(#[source] regatta_log::Error),
    /// Opening a local snapshot file or copying a download into one failed (a full disk:
    /// as above).
    #[error("local snapshot {}: {what}: {source}", path.display())]
    LocalSnapshot {
        path: PathBuf,
        what: &'static str,
        source: io::Error,
    },
    /// A local snapshot file does not decode.
    #[error("local snapshot {}: {source}", path.display())]
    LocalSnapshotFormat {
        path: PathBuf,
        source: regatta_materializer::Error,
    },
    /// A blocking task or thread (snapshot writer, decoder, copy) died.
    #[error("{task} failed: {reason}")]
    Task { task: &'static str, reason: String },
}

impl Error {
    /// The upstream is at fault, or the local disk is full while nothing changed: follow
    /// another upstream (or this one again later).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::InvalidUpstream { .. }
            | Self::Connect { .. }
            | Self::Upstream { .. }
            | Self::Silent { .. }
            | Self::StreamEnded
            | Self::UnknownMessage
            | Self::Gap { .. }
            | Self::SnapshotTooLong { .. }
            | Self::SnapshotCut { .. }
            | Self::SnapshotRejected(_) => true,
            Self::SnapshotDir(_)
            | Self::LocalSnapshot { .. }
            | Self::LocalSnapshotFormat { .. } => self.is_disk_full(),
            Self::UnknownEntryKind { .. }
            | Self::UndecodableEvent { .. }
            | Self::Apply(_)
            | Self::LocalLog { .. }
            | Self::Task { .. } => false,
        }
    }

    /// Continuing would serve wrong data or lose what was acknowledged: stop replicating.
    pub fn must_stop(&self) -> bool {
        !self.is_retryable()
    }

    /// The disk is full (`ENOSPC`, `EDQUOT`) somewhere down the source chain.
    pub fn is_disk_full(&self) -> bool {
        regatta_api::disk::is_disk_full(self)
    }

    /// Why following an upstream failed, in one word from a closed set (the `reason` label
    /// of `regatta_edge_upstream_errors_total`): `tls` when a TLS handshake failed or a TLS
    /// alert ended the connection, `connect`, `refused` (a call answered with an error),
    /// `silent`, `stream` (ended or broke), `protocol` (an unknown message, a gap),
    /// `snapshot`, `local` (this node).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Connect { source, .. } if tls_failure(source) => "tls",
            Self::Upstream { status, .. } if tls_failure(status) => "tls",
            Self::InvalidUpstream { .. } | Self::Connect { .. } => "connect",
            Self::Upstream { call, .. } if *call == "stream failed" => "stream",
            Self::Upstream { .. } => "refused",
            Self::Silent { .. } => "silent",
            Self::StreamEnded => "stream",
            Self::UnknownMessage | Self::Gap { .. } => "protocol",
            Self::SnapshotTooLong { .. } | Self::SnapshotCut { .. } | Self::SnapshotRejected(_) => {
                "snapshot"
            }
            Self::UnknownEntryKind { .. }
            | Self::UndecodableEvent { .. }
            | Self::Apply(_)
            | Self::LocalLog { .. }
            | Self::SnapshotDir(_)
            | Self::LocalSnapshot { .. }
            | Self::LocalSnapshotFormat { .. }
            | Self::Task { .. } => "local",
        }
    }

    pub(crate) fn task(task: &'static str, e: impl std::fmt::Display) -> Self {
        Self::Task {
            task,
            reason: e.to_string(),
        }
    }
}

/// Whether a TLS error (a failed handshake, a certificate refused, an alert from the peer) is
/// somewhere in `e`'s source chain, including inside I/O errors, which do not list what they
/// wrap as their source.
fn tls_failure(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(error) = next {
        if error.is::<rustls::Error>() {
            return true;
        }
        if let Some(io) = error.downcast_ref::<io::Error>()
            && io.get_ref().is_some_and(|inner| tls_failure(inner))
        {
            return true;
        }
        next = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_while_saving_a_snapshot_is_retried_any_other_local_failure_stops() {
        let full = Error::LocalSnapshot {
            path: "s".into(),
            what: "writing",
            source: io::Error::from_raw_os_error(28), // ENOSPC
        };
        assert!(full.is_disk_full() && full.is_retryable());
        let denied = Error::LocalSnapshot {
            path: "s".into(),
            what: "writing",
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        };
        assert!(denied.must_stop());
        let dir = tempfile::tempdir().expect("a temporary directory");
        let refused = regatta_log::fs::write_atomic_with(&dir.path().join("s"), |_| {
            Err(io::Error::from_raw_os_error(28))
        })
        .expect_err("the write fails");
        assert!(
            Error::SnapshotDir(refused).is_retryable(),
            "seen through the source chain"
        );
        assert!(
            Error::Gap {
                expected: 5,
                got: 7
            }
            .is_retryable()
        );
        assert!(Error::UnknownEntryKind { index: 5, kind: 9 }.must_stop());
    }

    #[test]
    fn a_tls_failure_is_told_apart_from_other_upstream_failures() {
        let alert = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired),
        );
        let tls = Error::Upstream {
            call: "stream failed",
            status: tonic::Status::from_error(Box::new(alert)),
        };
        assert_eq!(tls.kind(), "tls");
        assert!(tls.is_retryable());
        let reset = Error::Upstream {
            call: "stream failed",
            status: tonic::Status::from_error(Box::new(io::Error::from(
                io::ErrorKind::ConnectionReset,
            ))),
        };
        assert_eq!(reset.kind(), "stream");
        assert_eq!(
            Error::Silent {
                call: "subscribe",
                after: Duration::from_secs(1)
            }
            .kind(),
            "silent"
        );
    }
}
