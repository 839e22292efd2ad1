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
pub mod tls;
pub mod watch;

use std::time::Duration;

use clap::Args;
use regatta_tls::{DialError, Dialer};
use tonic::{
    metadata::MetadataValue,
    transport::{Channel, Endpoint},
};

pub use crate::error::{CliResult, Failure};

/// Options every client command takes.
#[derive(Args, Debug, Clone)]
pub struct ClientOptions {
    /// Address of a node's public API (core or edge): http:// (plaintext, also a bare
    /// host:port) or https:// (TLS).
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
    /// CA certificate (PEM) to trust for an https:// --address, instead of the system's
    /// trusted roots.
    #[arg(long, global = true, env = "REGATTA_CA")]
    pub ca: Option<std::path::PathBuf>,
    /// Do not verify the server's certificate on an https:// --address (self-signed
    /// testing only: anyone on the path can read the requests and the token).
    #[arg(long, global = true, env = "REGATTA_INSECURE")]
    pub insecure: bool,
    /// Client certificate (PEM) presented to a node that requires one on an https://
    /// --address (mTLS); needs --key.
    #[arg(long = "cert", global = true, env = "REGATTA_CERT")]
    pub client_cert: Option<std::path::PathBuf>,
    /// Private key (PEM) of --cert; needs --cert.
    #[arg(long = "key", global = true, env = "REGATTA_KEY")]
    pub client_key: Option<std::path::PathBuf>,
}

/// The help of `--address` on `regatta backup` and `regatta restore`, where a bare
/// `host:port` means TLS ([`ClientOptions::tls_when_bare`]).
pub const BARE_IS_TLS_HELP: &str = "Address of a node's public API (core or edge): a URL \
    (http:// plaintext, https:// TLS) or a bare host:port, which is reached over TLS \
    (https://), as Regatta's backup and restore always dial TLS (--ca, or the system's \
    trusted roots)";

impl ClientOptions {
    /// These options with a bare `host:port` `--address` (no scheme) turned into
    /// `https://host:port`: `regatta backup` and `regatta restore` take one as Regatta's
    /// do, which always dial TLS. Every other command reaches a bare address in plaintext
    /// ([`check_address`]).
    pub fn tls_when_bare(&self) -> Self {
        Self {
            address: bare_as_tls(&self.address),
            ..self.clone()
        }
    }
}

/// `address` with `https://` in front when it has no scheme.
pub fn bare_as_tls(address: &str) -> String {
    if address.contains("://") {
        address.to_string()
    } else {
        format!("https://{address}")
    }
}

/// Whether `--address` asks for TLS (`https://`), refusing any scheme but `http` and
/// `https`. An address without a scheme is plaintext.
pub fn check_address(address: &str) -> CliResult<bool> {
    let Some((scheme, _)) = address.split_once("://") else {
        return Ok(false);
    };
    if scheme.eq_ignore_ascii_case("http") {
        Ok(false)
    } else if scheme.eq_ignore_ascii_case("https") {
        Ok(true)
    } else {
        Err(Failure::usage(format!(
            "--address {address:?} has scheme {scheme:?}; only http:// and https:// are supported"
        )))
    }
}

/// Connects to the node named by `--address`: plaintext for `http://`, TLS for `https://`
/// (`--ca`, `--insecure`, `--cert` and `--key`; they are not used on a plaintext address).
pub async fn connect(options: &ClientOptions) -> CliResult<Channel> {
    let tls = check_address(&options.address)?;
    // Checked on every address, so a half-given pair is reported even before it matters.
    tls::settings(options)?;
    let endpoint = Endpoint::from_shared(options.address.clone())
        .map_err(|e| Failure::usage(format!("invalid --address {:?}: {e}", options.address)))?
        .connect_timeout(options.timeout.min(Duration::from_secs(5)))
        .timeout(options.timeout);
    let dialer = if tls {
        tls::dialer(options)?
    } else {
        Dialer::plaintext()
    };
    dialer.connect(endpoint).await.map_err(|e| {
        let message = match &e {
            DialError::Transport(e) => format!("cannot connect: {}", regatta_tls::describe(e)),
            DialError::NoTls { .. } => e.to_string(),
        };
        Failure::new(
            crate::error::UNAVAILABLE,
            format!("{message} ({})", options.address),
        )
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
    fn https_asks_for_tls_and_unknown_schemes_are_refused() {
        assert!(!check_address("http://127.0.0.1:8443").expect("plaintext"));
        assert!(!check_address("HTTP://127.0.0.1:8443").expect("plaintext"));
        assert!(!check_address("127.0.0.1:8443").expect("plaintext"));
        assert!(check_address("https://127.0.0.1:8443").expect("TLS"));
        assert!(check_address("HTTPS://h:1").expect("TLS"));
        assert_eq!(check_address("grpc://h:1").expect_err("refused").code, 2);
    }

    #[test]
    fn backup_and_restore_take_a_bare_address_as_tls() {
        assert_eq!(bare_as_tls("127.0.0.1:8443"), "https://127.0.0.1:8443");
        assert_eq!(bare_as_tls("[::1]:8443"), "https://[::1]:8443");
        assert_eq!(bare_as_tls("regatta.svc:443"), "https://regatta.svc:443");
        assert_eq!(bare_as_tls("http://h:1"), "http://h:1", "a URL is kept");
        assert_eq!(bare_as_tls("https://h:1"), "https://h:1");
        assert_eq!(
            bare_as_tls("grpc://h:1"),
            "grpc://h:1",
            "refused later, as given"
        );
    }
}
