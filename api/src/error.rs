//! The crate's error type and the one place where errors become `tonic::Status`.
//!
//! Codes are chosen so a client can act on them: `InvalidArgument` (fix the request),
//! `NotFound` / `AlreadyExists` (tables: the honest codes, not Regatta's InvalidArgument),
//! `Unavailable` (retry, maybe elsewhere; a "not leader" carries the leader in the
//! `regatta-leader` metadata), `DeadlineExceeded`, `Unimplemented`, `Unauthenticated`,
//! `ResourceExhausted` (a node's disk is full: writes wait for an operator to free space),
//! `Internal` (this node has a problem and says so rather than answer wrongly).

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
    /// Another node answered this status; it is passed on unchanged.
    #[error("{}", .0.message())]
    Remote(Status),
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
            Self::Remote(s) => matches!(s.code(), Code::Unavailable | Code::DeadlineExceeded),
            Self::Rejected(_)
            | Self::TooLarge { .. }
            | Self::Unimplemented { .. }
            | Self::Unauthenticated
            | Self::Internal(_) => false,
        }
    }
}

fn materializer_code(e: &MatError) -> Code {
    match e {
        MatError::InvalidArgument { .. }
        | MatError::KeyTooLarge { .. }
        | MatError::ValueTooLarge { .. } => Code::InvalidArgument,
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
                if let Ok(v) = MetadataValue::try_from(leader_address.as_str()) {
                    status.metadata_mut().insert("regatta-leader", v);
                }
                if let Ok(v) = MetadataValue::try_from(leader_id.to_string()) {
                    status.metadata_mut().insert("regatta-leader-id", v);
                }
                status
            }
            Error::NoLeader { .. } | Error::Unavailable { .. } => Status::unavailable(message),
            Error::Timeout { .. } => Status::deadline_exceeded(message),
            Error::DiskFull { .. } => Status::resource_exhausted(message),
            Error::Remote(status) => status,
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
}
