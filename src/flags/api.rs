//! The public gRPC API: where it listens, its TLS (server certificate, and client
//! certificates required through a CA, optionally of one CN or host name: [`ApiTlsArgs`]),
//! what one request may cost, the tokens of the guarded services, and the connection and
//! stream limits of every gRPC listener.
//!
//! The names of `--api.max-concurrent-connections` and `--api.max-concurrent-streams` come
//! from Regatta (where 0 also means no limit); Regatta defaults both to no limit, which lets
//! one client hold every file descriptor or open unbounded streams, so here they default to
//! finite values (docs/operations.md, "Limits").

use std::{path::PathBuf, time::Duration};

use anyhow::{Result, bail};
use clap::Args;
use regatta_api::node::{Limits, Tokens};
use regatta_tls::{AllowedPeer, ClientAuth, IdentityFiles, PemFile, ServerSettings};

use crate::address::{ListenAddress, with_scheme};

#[derive(Args, Debug, Clone)]
pub struct ApiAddressArg {
    /// Address the public gRPC API listens on: a URL (http://, https://, unix://) or
    /// Regatta's bare host:port or :port (all interfaces), https:// when --api.cert-filename
    /// is given.
    #[arg(
        long = "api.address",
        env = "REGATTA_API_ADDRESS",
        default_value = "127.0.0.1:8443"
    )]
    pub api_address: String,
}

#[derive(Args, Debug, Clone)]
pub struct ApiArgs {
    #[command(flatten)]
    pub address: ApiAddressArg,
    /// API address clients should use to reach this node (default: --api.address); a bare
    /// host:port as --api.address.
    #[arg(long = "api.advertise-address", env = "REGATTA_API_ADVERTISE_ADDRESS")]
    pub api_advertise: Option<String>,
    /// Largest request message accepted, in bytes.
    #[arg(long = "api.max-request-size", env = "REGATTA_API_MAX_REQUEST_SIZE", default_value_t = 4 << 20)]
    pub max_request_size: usize,
    /// Most ops one Txn may list in each branch and in its compares (checked where the
    /// request enters a node; what evaluating a Txn may cost is bounded at apply anyway).
    #[arg(long = "api.max-txn-ops", env = "REGATTA_API_MAX_TXN_OPS", default_value_t = regatta_materializer::limits::DEFAULT_MAX_TXN_OPS)]
    pub max_txn_ops: usize,
    /// Deadline for requests that carry none.
    #[arg(long = "api.default-deadline", env = "REGATTA_API_DEFAULT_DEADLINE", default_value = "5s", value_parser = humantime::parse_duration)]
    pub default_deadline: Duration,
    /// Bearer token required by the Tables service (unset: open).
    #[arg(
        long = "tables.token",
        env = "REGATTA_TABLES_TOKEN",
        hide_env_values = true
    )]
    pub tables_token: Option<String>,
    /// Bearer token required by the Maintenance and Admin services (unset: open).
    #[arg(
        long = "maintenance.token",
        env = "REGATTA_MAINTENANCE_TOKEN",
        hide_env_values = true
    )]
    pub maintenance_token: Option<String>,
    #[command(flatten)]
    pub tls: ApiTlsArgs,
    #[command(flatten)]
    pub connection_limits: LimitArgs,
}

/// Checked API settings.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub address: ListenAddress,
    pub advertise: String,
    pub limits: Limits,
    pub tokens: Tokens,
    pub connection_limits: LimitArgs,
    /// The TLS settings when the address is `https://` (the node builds the server
    /// configuration from them, with its metrics).
    pub tls: Option<ServerSettings>,
}

impl ApiArgs {
    /// Checks every option and returns the settings, or an error naming the option.
    pub fn validate(&self) -> Result<ApiSettings> {
        if self.max_request_size < 1024 {
            bail!("--api.max-request-size must be at least 1024 bytes");
        }
        self.connection_limits.validate()?;
        // Regatta's bare host:port: https:// when the port has a certificate.
        let tls = self.tls.api_cert_filename.is_some();
        let listen = &with_scheme("api.address", &self.address.api_address, tls)?;
        let address = ListenAddress::parse("api.address", listen)?;
        let advertise = self
            .api_advertise
            .as_deref()
            .map(|a| with_scheme("api.advertise-address", a, tls))
            .transpose()?;
        Ok(ApiSettings {
            tls: self.tls.settings(listen, &address)?,
            address,
            advertise: super::advertised("api.advertise-address", advertise.as_ref(), listen)?,
            limits: Limits {
                max_request_bytes: self.max_request_size,
                max_txn_ops: self.max_txn_ops.max(1),
                default_deadline: self.default_deadline,
            },
            tokens: Tokens {
                tables: self.tables_token.clone(),
                maintenance: self.maintenance_token.clone(),
            },
            connection_limits: self.connection_limits.clone(),
        })
    }
}

/// TLS of the public API (Regatta's flag names). An `https://` `--api.address` needs the
/// certificate and key; a CA file makes every client present a certificate signed by it
/// (mTLS), optionally of one common name or host name.
#[derive(Args, Debug, Clone, Default)]
pub struct ApiTlsArgs {
    /// Path to the API server certificate (PEM, the chain from the server's certificate
    /// up). Required when --api.address is https://. Re-read when the file changes.
    #[arg(long = "api.cert-filename", env = "REGATTA_API_CERT_FILENAME")]
    pub api_cert_filename: Option<PathBuf>,
    /// Path to the API server private key file (PEM). Required when --api.address is
    /// https://. Re-read when the file changes.
    #[arg(long = "api.key-filename", env = "REGATTA_API_KEY_FILENAME")]
    pub api_key_filename: Option<PathBuf>,
    /// Path to the CA certificate (PEM) that signs API clients' certificates. Given, every
    /// client must present a certificate signed by it (as with --api.client-cert-auth).
    #[arg(long = "api.ca-filename", env = "REGATTA_API_CA_FILENAME")]
    pub api_ca_filename: Option<PathBuf>,
    /// Require API clients to present a certificate signed by the CA in --api.ca-filename,
    /// which must then be given too.
    #[arg(
        long = "api.client-cert-auth",
        env = "REGATTA_API_CLIENT_CERT_AUTH",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value = "false",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub api_client_cert_auth: bool,
    /// Admit only client certificates whose subject common name is exactly this (needs
    /// --api.ca-filename; excludes --api.allowed-hostname).
    #[arg(long = "api.allowed-cn", env = "REGATTA_API_ALLOWED_CN")]
    pub api_allowed_cn: Option<String>,
    /// Admit only client certificates valid for this DNS name or IP address (needs
    /// --api.ca-filename; excludes --api.allowed-cn).
    #[arg(long = "api.allowed-hostname", env = "REGATTA_API_ALLOWED_HOSTNAME")]
    pub api_allowed_hostname: Option<String>,
}

impl ApiTlsArgs {
    /// The TLS settings for `address` (`listen` as given): `None` for a plaintext address.
    /// Files are not read here: the node reads and checks them when it builds the server
    /// configuration, before serving.
    pub fn settings(
        &self,
        listen: &str,
        address: &ListenAddress,
    ) -> Result<Option<ServerSettings>> {
        let tls = matches!(address, ListenAddress::Tcp { tls: true, .. });
        if !tls {
            let given: Vec<&str> = [
                (self.api_cert_filename.is_some(), "--api.cert-filename"),
                (self.api_key_filename.is_some(), "--api.key-filename"),
                (self.api_ca_filename.is_some(), "--api.ca-filename"),
                (self.api_client_cert_auth, "--api.client-cert-auth"),
                (self.api_allowed_cn.is_some(), "--api.allowed-cn"),
                (
                    self.api_allowed_hostname.is_some(),
                    "--api.allowed-hostname",
                ),
            ]
            .into_iter()
            .filter_map(|(set, flag)| set.then_some(flag))
            .collect();
            if !given.is_empty() {
                bail!(
                    "--api.address {listen:?} is not https://, so {} would be unused: serve TLS with an https:// address, or drop them",
                    given.join(", ")
                );
            }
            return Ok(None);
        }
        let (Some(cert), Some(key)) = (&self.api_cert_filename, &self.api_key_filename) else {
            bail!(
                "--api.address {listen:?} is https:// and needs --api.cert-filename and --api.key-filename"
            );
        };
        let allowed = AllowedPeer::from_flags(
            self.api_allowed_cn.as_deref(),
            self.api_allowed_hostname.as_deref(),
            ("--api.allowed-cn", "--api.allowed-hostname"),
        )?;
        let client_auth = match (
            &self.api_ca_filename,
            self.api_client_cert_auth,
            allowed.is_some(),
        ) {
            (Some(ca), _, _) => Some(ClientAuth {
                ca: PemFile::new("--api.ca-filename", ca),
                allowed,
            }),
            (None, true, _) => {
                bail!(
                    "--api.client-cert-auth needs --api.ca-filename, the CA that signs the clients' certificates"
                )
            }
            (None, false, true) => bail!(
                "--api.allowed-cn and --api.allowed-hostname check client certificates and need --api.ca-filename"
            ),
            (None, false, false) => None,
        };
        Ok(Some(ServerSettings {
            identity: IdentityFiles {
                cert: PemFile::new("--api.cert-filename", cert),
                key: PemFile::new("--api.key-filename", key),
            },
            client_auth,
        }))
    }
}

/// Connection and stream limits of the gRPC listeners.
#[derive(Args, Debug, Clone)]
pub struct LimitArgs {
    /// Most connections each gRPC listener (API, Raft, replication) holds at once; one more
    /// is closed as soon as it is accepted. 0: no limit, as Regatta. Keep it under the
    /// process's file descriptor limit (`ulimit -n`).
    #[arg(
        long = "api.max-concurrent-connections",
        env = "REGATTA_API_MAX_CONCURRENT_CONNECTIONS",
        default_value_t = 10_000
    )]
    pub max_connections: usize,
    /// Most HTTP/2 streams (calls) open at once on one connection, advertised to clients
    /// in the server's SETTINGS (MAX_CONCURRENT_STREAMS); clients queue the calls beyond it.
    /// 0: no limit, as Regatta (none advertised).
    #[arg(
        long = "api.max-concurrent-streams",
        env = "REGATTA_API_MAX_CONCURRENT_STREAMS",
        default_value_t = 1024
    )]
    pub max_streams: u32,
    /// How long a new connection has to send the HTTP/2 preface and first SETTINGS frame
    /// before it is closed (slow or silent peers). 0: no limit.
    #[arg(long = "api.handshake-timeout", env = "REGATTA_API_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub handshake_timeout: Duration,
    /// A connection with no call in flight and none started for this long is closed
    /// (after between one and two such periods). 0: never.
    #[arg(long = "api.idle-timeout", env = "REGATTA_API_IDLE_TIMEOUT", default_value = "5m", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// A connection the server has received nothing from for this long is sent an HTTP/2
    /// PING. 0: no pings.
    #[arg(long = "api.keepalive-interval", env = "REGATTA_API_KEEPALIVE_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub keepalive_interval: Duration,
    /// A peer that does not answer a PING within this long is disconnected.
    #[arg(long = "api.keepalive-timeout", env = "REGATTA_API_KEEPALIVE_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    pub keepalive_timeout: Duration,
    /// Most IterateRange streams open at once on the node; one more is refused with
    /// ResourceExhausted. 0: no limit.
    #[arg(
        long = "api.max-iterate-streams",
        env = "REGATTA_API_MAX_ITERATE_STREAMS",
        default_value_t = 512
    )]
    pub max_iterate_streams: usize,
    /// An IterateRange stream whose client takes nothing for this long is cancelled
    /// (DeadlineExceeded), releasing the read view it holds.
    #[arg(long = "api.stream-stall-timeout", env = "REGATTA_API_STREAM_STALL_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub stream_stall_timeout: Duration,
}

impl LimitArgs {
    /// Checks the values (the stall timeout must be positive, a keepalive timeout too when
    /// pings are sent).
    pub fn validate(&self) -> Result<()> {
        if self.stream_stall_timeout.is_zero() {
            bail!("--api.stream-stall-timeout must be positive");
        }
        if !self.keepalive_interval.is_zero() && self.keepalive_timeout.is_zero() {
            bail!("--api.keepalive-timeout must be positive when --api.keepalive-interval is set");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tls_tests {
    use super::*;

    fn args(extra: &[&str]) -> ApiTlsArgs {
        #[derive(clap::Parser)]
        struct Parse {
            #[command(flatten)]
            tls: ApiTlsArgs,
        }
        let mut argv = vec!["test"];
        argv.extend_from_slice(extra);
        <Parse as clap::Parser>::try_parse_from(argv)
            .expect("parses")
            .tls
    }

    fn settings(address: &str, extra: &[&str]) -> Result<Option<ServerSettings>> {
        let parsed = ListenAddress::parse("api.address", address).expect("address");
        args(extra).settings(address, &parsed)
    }

    const PAIR: [&str; 2] = ["--api.cert-filename=c.pem", "--api.key-filename=k.pem"];

    #[test]
    fn a_ca_alone_requires_client_certificates() {
        let tls = settings(
            "https://127.0.0.1:1",
            &[PAIR[0], PAIR[1], "--api.ca-filename=ca.pem"],
        )
        .expect("valid")
        .expect("TLS");
        let auth = tls.client_auth.expect("client auth");
        assert_eq!(auth.ca.path, PathBuf::from("ca.pem"));
        assert_eq!(auth.allowed, None);
        let plain = settings("https://127.0.0.1:1", &PAIR)
            .expect("valid")
            .expect("TLS");
        assert_eq!(plain.client_auth, None);
    }

    #[test]
    fn allowed_peers_need_the_ca_and_exclude_each_other() {
        let tls = settings(
            "https://127.0.0.1:1",
            &[
                PAIR[0],
                PAIR[1],
                "--api.ca-filename=ca.pem",
                "--api.client-cert-auth",
                "--api.allowed-cn=a",
            ],
        )
        .expect("valid")
        .expect("TLS");
        assert_eq!(
            tls.client_auth.expect("auth").allowed,
            Some(AllowedPeer::CommonName("a".into()))
        );
        let err = |extra: &[&str]| {
            let mut all = PAIR.to_vec();
            all.extend_from_slice(extra);
            settings("https://127.0.0.1:1", &all)
                .expect_err("refused")
                .to_string()
        };
        assert!(err(&["--api.client-cert-auth"]).contains("needs --api.ca-filename"));
        assert!(err(&["--api.allowed-hostname=h.example"]).contains("need --api.ca-filename"));
        assert!(
            err(&[
                "--api.ca-filename=ca.pem",
                "--api.allowed-cn=a",
                "--api.allowed-hostname=h"
            ])
            .contains("exclude each other")
        );
    }

    #[test]
    fn the_scheme_and_the_files_go_together() {
        let missing = settings("https://127.0.0.1:1", &[PAIR[0]]).expect_err("no key");
        assert!(
            missing.to_string().contains("--api.key-filename"),
            "{missing}"
        );
        let unused = settings("http://127.0.0.1:1", &PAIR).expect_err("unused");
        assert!(unused.to_string().contains("is not https://"), "{unused}");
        let unused = settings("unix:///tmp/s", &["--api.client-cert-auth"]).expect_err("unused");
        assert!(
            unused.to_string().contains("--api.client-cert-auth"),
            "{unused}"
        );
        assert_eq!(
            settings("http://127.0.0.1:1", &[]).expect("plaintext"),
            None
        );
    }
}

#[cfg(test)]
mod address_tests {
    use super::*;

    fn validate(extra: &[&str]) -> Result<ApiSettings> {
        #[derive(clap::Parser)]
        struct Parse {
            #[command(flatten)]
            api: ApiArgs,
        }
        let mut argv = vec!["test"];
        argv.extend_from_slice(extra);
        <Parse as clap::Parser>::try_parse_from(argv)?
            .api
            .validate()
    }

    #[test]
    fn bare_host_port_is_http_or_https_by_the_certificate() {
        let plain = validate(&["--api.address=:18443"]).expect("port only");
        assert_eq!(
            plain.address,
            ListenAddress::parse("api.address", "http://0.0.0.0:18443").expect("url")
        );
        assert_eq!(plain.advertise, "http://0.0.0.0:18443");
        let tls = validate(&[
            "--api.address=127.0.0.1:18443",
            "--api.advertise-address=node-1.example:443",
            "--api.cert-filename=c.pem",
            "--api.key-filename=k.pem",
        ])
        .expect("bare with TLS");
        assert!(matches!(tls.address, ListenAddress::Tcp { tls: true, .. }));
        assert!(tls.tls.is_some());
        assert_eq!(tls.advertise, "https://node-1.example:443");
        // The default address follows the certificate too, as Regatta's did.
        let default = validate(&["--api.cert-filename=c.pem", "--api.key-filename=k.pem"])
            .expect("default address with TLS");
        assert_eq!(default.advertise, "https://127.0.0.1:8443");
        assert_eq!(
            validate(&[]).expect("default").advertise,
            "http://127.0.0.1:8443"
        );
        let err = validate(&["--api.advertise-address=nohost"])
            .expect_err("neither")
            .to_string();
        assert!(err.contains("--api.advertise-address"), "{err}");
    }

    #[test]
    fn zero_connection_and_stream_limits_mean_none() {
        let settings = validate(&[
            "--api.max-concurrent-connections=0",
            "--api.max-concurrent-streams=0",
        ])
        .expect("zero is no limit");
        assert_eq!(settings.connection_limits.max_connections, 0);
        assert_eq!(settings.connection_limits.max_streams, 0);
    }
}
