//! The crate's error: a failed command, with the message printed on stderr and the exit code
//! the process ends with. The codes are a contract scripts rely on (see the crate docs).

use tonic::{Code, Status};

/// Exit code: any other failure (internal error, unexpected answer, a fault in the data).
pub const FAILED: u8 = 1;
/// Exit code: bad usage or invalid argument (the request can never succeed as written).
pub const USAGE: u8 = 2;
/// Exit code: unavailable or timed out; retrying later may succeed.
pub const UNAVAILABLE: u8 = 3;
/// Exit code: not found (a table, a key of `kv get`, a revision no longer held).
pub const NOT_FOUND: u8 = 4;
/// Exit code: already exists, or a precondition failed (also a refused `reseed`).
pub const PRECONDITION: u8 = 5;
/// Exit code: unauthenticated or permission denied.
pub const DENIED: u8 = 6;

/// A failed command: its message and its exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

/// What every command returns.
pub type CliResult<T = ()> = Result<T, Failure>;

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(USAGE, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(NOT_FOUND, message)
    }

    /// A fault in the data or a failure to read it: exit code 1.
    pub fn fault(message: impl std::fmt::Display) -> Self {
        Self::new(FAILED, message.to_string())
    }

    /// The exit code the process ends with.
    pub fn code(&self) -> u8 {
        self.code
    }
}

/// An error and its sources, `outer: inner: …`.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

/// Reading history or the object store failed: a fault (exit code 1).
impl From<regatta_archive::Error> for Failure {
    fn from(e: regatta_archive::Error) -> Self {
        Self::fault(chain(&e))
    }
}

impl From<Status> for Failure {
    fn from(status: Status) -> Self {
        // tonic reports a connection that failed under a call (closed by the server, a TLS
        // alert such as a refused client certificate) as Unknown with the transport error as
        // its source: that is the server being unreachable, not a fault of the request.
        let transport = std::error::Error::source(&status)
            .is_some_and(|s| s.downcast_ref::<tonic::transport::Error>().is_some());
        let code = match status.code() {
            Code::Ok => 0,
            Code::Unknown if transport => UNAVAILABLE,
            Code::InvalidArgument | Code::OutOfRange | Code::Unimplemented => USAGE,
            Code::Unavailable | Code::DeadlineExceeded | Code::Aborted | Code::Cancelled => {
                UNAVAILABLE
            }
            Code::NotFound => NOT_FOUND,
            Code::AlreadyExists | Code::FailedPrecondition => PRECONDITION,
            Code::Unauthenticated | Code::PermissionDenied => DENIED,
            Code::Unknown | Code::ResourceExhausted | Code::Internal | Code::DataLoss => FAILED,
        };
        let mut message = format!("{:?}: {}", status.code(), status.message());
        // A transport failure (a connection the server closed, a TLS alert) carries its
        // cause as the status's source.
        if let Some(cause) = std::error::Error::source(&status) {
            let cause = chain(cause);
            if !message.contains(&cause) {
                message.push_str(": ");
                message.push_str(&cause);
            }
        }
        if let Some(leader) = status
            .metadata()
            .get("regatta-leader")
            .and_then(|v| v.to_str().ok())
        {
            message.push_str(&format!(" (leader: {leader})"));
        }
        Self { code, message }
    }
}

impl From<tonic::transport::Error> for Failure {
    fn from(e: tonic::transport::Error) -> Self {
        Self::new(UNAVAILABLE, format!("cannot connect: {e}"))
    }
}
