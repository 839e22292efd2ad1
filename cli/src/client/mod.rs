//! The client command line (`regatta table|kv|cluster|backup --dir|restore --dir`), as
//! etcdctl is to etcd: connection options, requests with deadline and token, and the
//! commands that speak to a node's public API.
//!
//! Output is human-readable by default and one JSON document with `--json`; exit codes are
//! the crate's (see the crate docs and [`crate::error`]).

pub mod backup;
pub mod cluster;
pub mod kv;
pub mod output;
pub mod table;

use std::time::Duration;

use clap::Args;
use tonic::{
    metadata::MetadataValue,
    transport::{Channel, Endpoint},
};

pub use crate::error::{CliResult, Failure};

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
