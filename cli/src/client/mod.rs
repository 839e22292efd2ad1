//! The client command line (`regatta table|kv|cluster …`), as etcdctl is to etcd.
//!
//! Output is human-readable by default and one JSON document with `--json`. Exit codes
//! are stable so scripts can rely on them:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | any other failure (internal error, unexpected answer) |
//! | 2 | bad usage or invalid argument (the request can never succeed as written) |
//! | 3 | unavailable or timed out: retrying later may succeed |
//! | 4 | not found (table, or the key of `kv get`) |
//! | 5 | already exists, or a precondition failed |
//! | 6 | unauthenticated or permission denied |

pub mod backup;
pub mod cluster;
pub mod kv;
pub mod output;
pub mod table;

use std::time::Duration;

use clap::Args;
use tonic::{
    Code, Status,
    metadata::MetadataValue,
    transport::{Channel, Endpoint},
};

/// Options every client command takes.
#[derive(Args, Debug, Clone)]
pub struct ClientOptions {
    /// Address of a node's public API (core or edge).
    #[arg(
        long,
        global = true,
        env = "REGATTA_ADDRESS",
        default_value = "http://127.0.0.1:8443"
    )]
    pub address: String,
    /// Print one JSON document instead of human-readable text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Deadline of each request.
    #[arg(long, global = true, env = "REGATTA_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Bearer token sent with Tables and Maintenance requests.
    #[arg(long, global = true, env = "REGATTA_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// A failed client command: its message and its exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            code: 2,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            code: 4,
            message: message.into(),
        }
    }
}

impl From<Status> for Failure {
    fn from(status: Status) -> Self {
        let code = match status.code() {
            Code::Ok => 0,
            Code::InvalidArgument | Code::OutOfRange | Code::Unimplemented => 2,
            Code::Unavailable | Code::DeadlineExceeded | Code::Aborted | Code::Cancelled => 3,
            Code::NotFound => 4,
            Code::AlreadyExists | Code::FailedPrecondition => 5,
            Code::Unauthenticated | Code::PermissionDenied => 6,
            Code::Unknown | Code::ResourceExhausted | Code::Internal | Code::DataLoss => 1,
        };
        let mut message = format!("{:?}: {}", status.code(), status.message());
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
        Self {
            code: 3,
            message: format!("cannot connect: {e}"),
        }
    }
}

pub type CliResult<T = ()> = Result<T, Failure>;

/// Refuses an `--address` this client would not speak securely to. The client has no TLS
/// yet, so an `https://` address is refused rather than sent plaintext (with the bearer
/// token in it); so is any scheme other than `http`.
pub fn check_address(address: &str) -> CliResult<()> {
    let Some((scheme, _)) = address.split_once("://") else {
        return Ok(());
    };
    if scheme.eq_ignore_ascii_case("http") {
        Ok(())
    } else if scheme.eq_ignore_ascii_case("https") {
        Err(Failure::usage(format!(
            "--address {address:?} asks for TLS, which this client does not support yet; \
             refusing to send requests (and any token) in plaintext: use an http:// address"
        )))
    } else {
        Err(Failure::usage(format!(
            "--address {address:?} has scheme {scheme:?}; only http:// is supported"
        )))
    }
}

/// Connects to the node named by `--address`.
pub async fn connect(options: &ClientOptions) -> CliResult<Channel> {
    check_address(&options.address)?;
    let endpoint = Endpoint::from_shared(options.address.clone())
        .map_err(|e| Failure::usage(format!("invalid --address {:?}: {e}", options.address)))?
        .connect_timeout(options.timeout.min(Duration::from_secs(5)))
        .timeout(options.timeout);
    endpoint.connect().await.map_err(|e| {
        let mut failure = Failure::from(e);
        failure.message = format!("{} ({})", failure.message, options.address);
        failure
    })
}

/// Wraps a message in a request carrying the deadline and, when given, the bearer token.
pub fn request<T>(options: &ClientOptions, message: T) -> CliResult<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(options.timeout);
    if let Some(token) = &options.token {
        let value = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| Failure::usage("--token contains characters not allowed in a header"))?;
        request.metadata_mut().insert("authorization", value);
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_and_unknown_schemes_are_refused() {
        assert!(check_address("http://127.0.0.1:8443").is_ok());
        assert!(check_address("HTTP://127.0.0.1:8443").is_ok());
        assert!(check_address("127.0.0.1:8443").is_ok());
        let failure = check_address("https://127.0.0.1:8443").expect_err("refused");
        assert_eq!(failure.code, 2);
        assert!(failure.message.contains("TLS"), "{}", failure.message);
        assert_eq!(check_address("HTTPS://h:1").expect_err("refused").code, 2);
        assert_eq!(check_address("grpc://h:1").expect_err("refused").code, 2);
    }
}
