//! The crate's error type and the one place where errors become `tonic::Status`.
//!
//! Codes are chosen so a client can act on them: `InvalidArgument` (fix the request),
//! `NotFound` / `AlreadyExists` (tables: the honest codes, not Regatta's InvalidArgument),
//! `Unavailable` (retry, maybe elsewhere; a "not leader" carries the leader in the
//! `regatta-leader` metadata), `DeadlineExceeded`, `Unimplemented`, `Unauthenticated`,
//! `ResourceExhausted` (a node's disk is full: writes wait for an operator to free space),
//! `Internal` (this node has a problem and says so rather than answer wrongly).
//!
//! Calls to other nodes (a forwarded write, a read index, an edge's write to its upstream)
//! fail in two ways that must not be confused: the other node *answered* a status, which is
//! passed on when it is one of the codes above; or the *call* failed (connection reset, an
//! h2 GOAWAY, a stream the peer dropped), which tonic reports with codes such as
//! `ResourceExhausted`, `Internal`, `Cancelled` or `Unknown` that mean nothing to a client.
//! [`Error::from_peer`] tells the two apart and turns every failure of the call into
//! `Unavailable`; the mapping to `Status` checks a passed-on status once more, so no other
//! code can leak. A write whose call failed after it was sent may or may not have been
//! applied: it becomes [`Error::Indeterminate`], which nobody re-sends on the client's
//! behalf.

use regatta_materializer::{Error as MatError, Rejection};
use tonic::{Code, Status, metadata::MetadataValue};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Materializer(#[from] MatError),
    /// The log accepted the write but applying it rejected it, identically everywhere.
    #[error("{0}")]
    Rejected(Rejection),
    /// This node cannot take the request and knows who can.
    #[error("not the leader; the leader is node {leader_id} at {leader_address}")]
    NotLeader {
        leader_id: u64,
        leader_address: String,
    },
    /// No leader is known right now (election in progress, or no quorum).
    #[error("no leader is known right now: {reason}")]
    NoLeader { reason: String },
    /// The client's deadline (or the server's default of 5 s) passed.
    #[error("deadline exceeded while {what}")]
    Timeout { what: &'static str },
    /// The node is starting, stopping, or its consensus module has stopped.
    #[error("node unavailable: {reason}")]
    Unavailable { reason: String },
    /// The filesystem of this node's data directory has less free space than its reserve
    /// (`--min-free-disk`): writes are refused until space is freed; reads go on.
    #[error(
        "the disk of node {node_id} is full: {free} bytes free, below the reserve of {reserve} bytes; writes resume once space is freed"
    )]
    DiskFull {
        node_id: u64,
        free: u64,
        reserve: u64,
    },
    /// Another node answered this status; it is passed on unchanged (if its code is one
    /// this API documents: see [`Error::from_peer`]).
    #[error("{}", .0.message())]
    Remote(Status),
    /// A write left this node for another one (the leader, or an edge's upstream) and its
    /// answer was lost: the call failed, or the node it went to is no longer the leader. It
    /// may or may not have been applied. This node does not send it again (a second copy
    /// could be applied twice); the client may retry, knowing that (`Unavailable` with
    /// `regatta-outcome: unknown`, and the new leader when one is known).
    #[error("the write's outcome is unknown (it may or may not have been applied): {reason}")]
    Indeterminate {
        reason: String,
        /// The leader this node knows now, if any: id and Raft URL.
        leader: Option<(u64, String)>,
    },
    /// The request is larger than the configured limit.
    #[error("request of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    /// This kind of node does not serve this call (e.g. table changes at an edge).
    #[error("{what} is not served by this node: {why}")]
    Unimplemented {
        what: &'static str,
        why: &'static str,
    },
    #[error("missing or wrong bearer token")]
    Unauthenticated,
    /// A bug or a broken invariant on this node.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// True when the same request may succeed if sent again later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::NotLeader { .. }
            | Self::NoLeader { .. }
            | Self::Timeout { .. }
            | Self::Unavailable { .. }
            | Self::DiskFull { .. } => true,
            Self::Materializer(e) => e.is_retryable(),
            Self::Indeterminate { .. } => true,
            // A failed call is answered as Unavailable.
            Self::Remote(s) => {
                call_failed(s) || matches!(s.code(), Code::Unavailable | Code::DeadlineExceeded)
            }
            Self::Rejected(_)
            | Self::TooLarge { .. }
            | Self::Unimplemented { .. }
            | Self::Unauthenticated
            | Self::Internal(_) => false,
        }
    }
}

/// Which call to another node failed, for [`Error::from_peer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerCall {
    /// The call carried a write: if it was sent, it may have been applied.
    Write,
    /// The call changes nothing (read index, node info): it may be sent again.
    Read,
}

/// Metadata key of an `Unavailable` answer whose write may or may not have been applied.
pub const OUTCOME_METADATA: &str = "regatta-outcome";

impl Error {
    /// The error for a call to another node that ended in `status`.
    ///
    /// A status the peer answered itself keeps its code when the code is one this API
    /// documents (the peer ran the same mapping); any other code, and every failure of the
    /// call itself (tonic then builds the status from a transport error and keeps that error
    /// as its source), becomes `Unavailable`: [`Error::Indeterminate`] for a write that may
    /// have reached the peer, [`Error::Unavailable`] otherwise.
    pub fn from_peer(status: Status, call: PeerCall) -> Self {
        if !call_failed(&status) {
            return Self::Remote(status);
        }
        let reason = format!(
            "the call to another node failed ({:?}: {})",
            status.code(),
            status.message()
        );
        match call {
            PeerCall::Write if !never_sent(&status) => Self::Indeterminate {
                reason,
                leader: None,
            },
            PeerCall::Write | PeerCall::Read => Self::Unavailable { reason },
        }
    }
}

/// True when `status` reports a failure of the call rather than the peer's answer, or a code
/// this API does not document.
pub fn call_failed(status: &Status) -> bool {
    // tonic keeps the transport error as the source of a status it built from one; a status
    // decoded from the peer's trailers has none.
    std::error::Error::source(status).is_some()
        || !(documented(status.code()) || is_disk_full(status))
}

/// Metadata naming the node whose full disk refused a write ([`Error::DiskFull`]): the one
/// `ResourceExhausted` a node answers, told apart from what tonic reports for a failed call.
const DISK_FULL_METADATA: &str = "regatta-disk-full";

fn is_disk_full(status: &Status) -> bool {
    status.code() == Code::ResourceExhausted && status.metadata().contains_key(DISK_FULL_METADATA)
}

/// True when the call never left this node: the connection to the peer could not be made.
/// Only then may a write be sent elsewhere without risk of applying it twice.
pub fn never_sent(status: &Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        if e.downcast_ref::<tonic::ConnectError>().is_some() {
            return true;
        }
        source = e.source();
    }
    false
}

/// The codes this API answers with (docs/api.md); a peer's status with another code is not
/// passed on as it is.
fn documented(code: Code) -> bool {
    match code {
        Code::Ok
        | Code::InvalidArgument
        | Code::NotFound
        | Code::AlreadyExists
        | Code::FailedPrecondition
        | Code::Unavailable
        | Code::DeadlineExceeded
        | Code::Unimplemented
        | Code::Unauthenticated
        | Code::Internal => true,
        Code::Cancelled
        | Code::Unknown
        | Code::PermissionDenied
        | Code::ResourceExhausted
        | Code::Aborted
        | Code::OutOfRange
        | Code::DataLoss => false,
    }
}

/// A peer's status as this node passes it on: unchanged when the peer answered it with a
/// documented code, else `Unavailable` (the call failed, or the code means nothing here).
fn passed_on(status: Status) -> Status {
    if call_failed(&status) {
        Status::unavailable(format!(
            "the call to another node failed ({:?}: {})",
            status.code(),
            status.message()
        ))
    } else {
        status
    }
}

fn insert_leader(status: &mut Status, leader_id: u64, leader_address: &str) {
    if let Ok(v) = MetadataValue::try_from(leader_address) {
        status.metadata_mut().insert("regatta-leader", v);
    }
    if let Ok(v) = MetadataValue::try_from(leader_id.to_string()) {
        status.metadata_mut().insert("regatta-leader-id", v);
    }
}

fn materializer_code(e: &MatError) -> Code {
    match e {
        MatError::InvalidArgument { .. }
        | MatError::KeyTooLarge { .. }
        | MatError::ValueTooLarge { .. }
        | MatError::LimitExceeded { .. } => Code::InvalidArgument,
        MatError::Cancelled { .. } => Code::DeadlineExceeded,
        MatError::TableNotFound { .. } => Code::NotFound,
        MatError::TableExists { .. } => Code::AlreadyExists,
        MatError::FailedPrecondition { .. } => Code::FailedPrecondition,
        MatError::Corrupted { .. }
        | MatError::UnknownEvent { .. }
        | MatError::OutOfOrder { .. } => Code::Internal,
        MatError::ObjectStore(_) | MatError::Io(_) | MatError::Closed => Code::Unavailable,
    }
}

fn rejection_code(r: &Rejection) -> Code {
    match r {
        Rejection::TableNotFound { .. } => Code::NotFound,
        Rejection::TableExists { .. } => Code::AlreadyExists,
        Rejection::InvalidArgument { .. } => Code::InvalidArgument,
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Self {
        let message = e.to_string();
        match e {
            Error::Materializer(inner) => Status::new(materializer_code(&inner), message),
            Error::Rejected(r) => Status::new(rejection_code(&r), message),
            Error::NotLeader {
                leader_id,
                leader_address,
            } => {
                let mut status = Status::unavailable(message);
                insert_leader(&mut status, leader_id, &leader_address);
                status
            }
            Error::Indeterminate { leader, .. } => {
                let mut status = Status::unavailable(message);
                status
                    .metadata_mut()
                    .insert(OUTCOME_METADATA, MetadataValue::from_static("unknown"));
                if let Some((id, address)) = leader {
                    insert_leader(&mut status, id, &address);
                }
                status
            }
            Error::NoLeader { .. } | Error::Unavailable { .. } => Status::unavailable(message),
            Error::Timeout { .. } => Status::deadline_exceeded(message),
            Error::DiskFull { node_id, .. } => {
                let mut status = Status::resource_exhausted(message);
                if let Ok(v) = MetadataValue::try_from(node_id.to_string()) {
                    status.metadata_mut().insert(DISK_FULL_METADATA, v);
                }
                status
            }
            Error::Remote(status) => passed_on(status),
            Error::TooLarge { .. } => Status::invalid_argument(message),
            Error::Unimplemented { .. } => Status::unimplemented(message),
            Error::Unauthenticated => Status::unauthenticated(message),
            Error::Internal(_) => Status::internal(message),
        }
    }
}

impl From<Rejection> for Error {
    fn from(r: Rejection) -> Self {
        Self::Rejected(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_tell_the_client_what_to_do() {
        let status: Status = Error::Rejected(Rejection::TableExists { table: "t".into() }).into();
        assert_eq!(status.code(), Code::AlreadyExists);
        let status: Status = Error::Materializer(MatError::KeyTooLarge {
            len: 2000,
            limit: 1024,
        })
        .into();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("2000"));
        let status: Status = Error::NotLeader {
            leader_id: 2,
            leader_address: "http://b:1".into(),
        }
        .into();
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(
            status
                .metadata()
                .get("regatta-leader")
                .and_then(|v| v.to_str().ok()),
            Some("http://b:1")
        );
        let remote = Status::not_found("table x");
        let status: Status = Error::Remote(remote).into();
        assert_eq!(status.code(), Code::NotFound);
    }

    /// A status as tonic builds it from a failed call: `err` kept as its source.
    fn failed_call(err: impl std::error::Error + Send + Sync + 'static) -> Status {
        Status::from_error(Box::new(err))
    }

    fn outcome(status: &Status) -> Option<&str> {
        status
            .metadata()
            .get(OUTCOME_METADATA)
            .and_then(|v| v.to_str().ok())
    }

    #[test]
    fn a_peers_answer_with_a_documented_code_passes_unchanged() {
        let mut answer = Status::unavailable("no leader");
        answer
            .metadata_mut()
            .insert("regatta-leader", MetadataValue::from_static("http://b:1"));
        let error = Error::from_peer(answer, PeerCall::Write);
        assert!(matches!(error, Error::Remote(_)));
        let status: Status = error.into();
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status.message(), "no leader");
        assert!(status.metadata().contains_key("regatta-leader"));
        let status: Status =
            Error::from_peer(Status::deadline_exceeded("late"), PeerCall::Read).into();
        assert_eq!(status.code(), Code::DeadlineExceeded);
    }

    #[test]
    fn a_failed_call_carrying_a_write_is_unavailable_with_an_unknown_outcome() {
        let reset = failed_call(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(call_failed(&reset));
        assert!(!never_sent(&reset));
        let error = Error::from_peer(reset, PeerCall::Write);
        assert!(matches!(error, Error::Indeterminate { .. }), "{error:?}");
        assert!(error.is_retryable());
        let status: Status = error.into();
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(outcome(&status), Some("unknown"));
    }

    #[test]
    fn a_failed_read_or_an_unsent_write_is_plainly_unavailable() {
        let pipe = failed_call(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        let status: Status = Error::from_peer(pipe, PeerCall::Read).into();
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(outcome(&status), None);

        let refused = failed_call(tonic::ConnectError(Box::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        ))));
        assert!(never_sent(&refused), "a connect error: nothing was sent");
        let status: Status = Error::from_peer(refused, PeerCall::Write).into();
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(outcome(&status), None, "a write never sent has no doubt");
    }

    #[test]
    fn a_peers_full_disk_is_passed_on_as_it_is() {
        let full: Status = Error::DiskFull {
            node_id: 2,
            free: 10,
            reserve: 64,
        }
        .into();
        assert_eq!(full.code(), Code::ResourceExhausted);
        // As the forwarding node decodes it from the leader's trailers.
        let decoded = Status::with_metadata(
            full.code(),
            full.message().to_owned(),
            full.metadata().clone(),
        );
        let status: Status = Error::from_peer(decoded, PeerCall::Write).into();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(status.message().contains("disk of node 2 is full"));
    }

    #[test]
    fn a_transport_code_never_reaches_a_client() {
        // What tonic reports for an h2 GOAWAY ENHANCE_YOUR_CALM ("h2 protocol error"), with or
        // without the h2 error as its source, whether it is classified first or passed on.
        let calm = Status::resource_exhausted("h2 protocol error: http2 error");
        let status: Status = Error::Remote(calm).into();
        assert_eq!(status.code(), Code::Unavailable);
        assert!(status.message().contains("h2 protocol error"));
        let calm = failed_call(Status::resource_exhausted("h2 protocol error: http2 error"));
        let status: Status = Error::from_peer(calm, PeerCall::Write).into();
        assert_eq!(status.code(), Code::Unavailable);
        // A status built from a transport error keeps that error as its source, even with a
        // code a node may answer itself (h2 PROTOCOL_ERROR is reported as Internal).
        let internal = Status::from_error(Box::new(std::io::Error::other("protocol error")));
        let status: Status = Error::Remote(internal).into();
        assert_eq!(status.code(), Code::Unavailable);
    }

    #[test]
    fn every_code_a_peer_can_report_becomes_a_documented_one() {
        let documented_codes = [
            Code::Ok,
            Code::InvalidArgument,
            Code::NotFound,
            Code::AlreadyExists,
            Code::FailedPrecondition,
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::Unimplemented,
            Code::Unauthenticated,
            Code::Internal,
        ];
        for code in (0..=16).map(Code::from) {
            for call in [PeerCall::Write, PeerCall::Read] {
                let status: Status = Error::from_peer(Status::new(code, "x"), call).into();
                assert!(
                    documented_codes.contains(&status.code()),
                    "{code:?} passed on as {:?}",
                    status.code()
                );
                let unchanged = documented_codes.contains(&code);
                assert_eq!(status.code() == code, unchanged, "{code:?}");
            }
        }
    }
}
