//! The log-tail service a node serves (a core to edges, an edge to downstream edges):
//! `--replication.address`, `--replication.advertise-address`,
//! `--replication.heartbeat-interval`, and its TLS: `--replication.cert-filename`,
//! `--replication.key-filename`, `--replication.ca-filename`,
//! `--replication.client-cert-auth`. What an edge follows (`--replication.leader-address`
//! and its staleness and lag, `--replication.insecure-skip-verify`,
//! `--replication.server-name`) is the edge's own, in `edge/args.rs`.
//!
//! The TLS files mean one thing on a core and two on an edge:
//!
//! | flag | core | edge |
//! |---|---|---|
//! | cert and key | served on an `https://` `--replication.address` | the same, and presented to an upstream that asks for a client certificate |
//! | CA | edges must present a certificate it signed | verifies the upstream's certificate (unset: the system's roots); with `--replication.client-cert-auth`, downstream edges' certificates too |
//! | client-cert-auth | edges must present a certificate the CA signed | downstream edges must |
//!
//! On a core a CA alone asks edges for certificates, as Regatta's leader does; on an edge the
//! CA is first of all what it trusts upstream, so only `--replication.client-cert-auth` asks
//! its downstream edges for certificates.

use std::{path::PathBuf, time::Duration};

use anyhow::{Result, bail};
use clap::builder::BoolishValueParser;
use regatta_tls::{ClientAuth, ClientSettings, IdentityFiles, PemFile, ServerSettings};

use crate::address::{ListenAddress, with_scheme};

#[derive(clap::Args, Debug, Clone)]
pub struct ReplicationAddressArg {
    /// Address the log-tail service listens on, for edges (of a core) or downstream edges
    /// (of an edge). A bare host:port or :port (Regatta's form) is https:// when
    /// --replication.cert-filename is given.
    #[arg(
        long = "replication.address",
        env = "REGATTA_REPLICATION_ADDRESS",
        default_value = "127.0.0.1:8444"
    )]
    pub replication_address: String,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ReplicationArgs {
    #[command(flatten)]
    pub address: ReplicationAddressArg,
    /// Replication address edges should use (default: --replication.address); a bare
    /// host:port as --replication.address.
    #[arg(
        long = "replication.advertise-address",
        env = "REGATTA_REPLICATION_ADVERTISE_ADDRESS"
    )]
    pub replication_advertise: Option<String>,
    /// How often an idle log-tail stream carries a heartbeat to the edges following it.
    #[arg(long = "replication.heartbeat-interval", env = "REGATTA_REPLICATION_HEARTBEAT_INTERVAL", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub tail_heartbeat: Duration,
    #[command(flatten)]
    pub tls: ReplicationTlsArgs,
}

/// The replication port's certificate, key and CA (see the module docs for what each means
/// on a core and on an edge).
#[derive(clap::Args, Debug, Clone)]
pub struct ReplicationTlsArgs {
    /// Certificate (PEM, the chain from the node's certificate up) the replication port
    /// serves when --replication.address is https://. On an edge it is also the client
    /// certificate presented to an upstream that asks for one.
    #[arg(
        long = "replication.cert-filename",
        env = "REGATTA_REPLICATION_CERT_FILENAME"
    )]
    pub replication_cert_filename: Option<PathBuf>,
    /// Private key (PEM) of --replication.cert-filename.
    #[arg(
        long = "replication.key-filename",
        env = "REGATTA_REPLICATION_KEY_FILENAME"
    )]
    pub replication_key_filename: Option<PathBuf>,
    /// CA certificates (PEM). On a core: edges must present a certificate one of them
    /// signed. On an edge: the upstream's certificate must be signed by one of them (unset:
    /// by a root the system trusts) and, with --replication.client-cert-auth, so must the
    /// certificates of downstream edges.
    #[arg(
        long = "replication.ca-filename",
        env = "REGATTA_REPLICATION_CA_FILENAME"
    )]
    pub replication_ca_filename: Option<PathBuf>,
    /// Edges following this node must present a certificate signed by
    /// --replication.ca-filename (needs an https:// --replication.address).
    #[arg(
        long = "replication.client-cert-auth",
        env = "REGATTA_REPLICATION_CLIENT_CERT_AUTH",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value = "false",
        value_parser = BoolishValueParser::new()
    )]
    pub replication_client_cert_auth: bool,
}

/// Checked log-tail settings.
#[derive(Debug, Clone)]
pub struct ReplicationSettings {
    pub address: ListenAddress,
    pub advertise: String,
    pub heartbeat: Duration,
    /// The files, for an edge's client side ([`ReplicationTls::client`]).
    pub tls: ReplicationTls,
    /// What the replication port serves when `address` is `https://`; `None` for `http://`.
    pub server_tls: Option<ServerSettings>,
}

/// Which node serves the replication port: what a CA given alone means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serving {
    /// A core: a CA asks every edge for a certificate it signed.
    Core,
    /// An edge: a CA verifies its upstream; only `--replication.client-cert-auth` asks
    /// downstream edges for certificates.
    Edge,
}

/// The replication port's TLS files, the pair complete or absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplicationTls {
    pub identity: Option<IdentityFiles>,
    pub ca: Option<PemFile>,
    pub client_cert_auth: bool,
}

const CERT_FLAG: &str = "--replication.cert-filename";
const KEY_FLAG: &str = "--replication.key-filename";
const CA_FLAG: &str = "--replication.ca-filename";

impl ReplicationArgs {
    /// The settings of a core's replication port.
    pub fn validate(&self) -> Result<ReplicationSettings> {
        self.validate_for(Serving::Core)
    }

    /// The settings of the replication port of a core or an edge.
    pub fn validate_for(&self, serving: Serving) -> Result<ReplicationSettings> {
        if self.tail_heartbeat.is_zero() {
            bail!("--replication.heartbeat-interval must be positive");
        }
        // Regatta's bare host:port: https:// when the port has a certificate.
        let https = self.tls.replication_cert_filename.is_some();
        let listen = &with_scheme(
            "replication.address",
            &self.address.replication_address,
            https,
        )?;
        let address = ListenAddress::parse("replication.address", listen)?;
        let advertise = self
            .replication_advertise
            .as_deref()
            .map(|a| with_scheme("replication.advertise-address", a, https))
            .transpose()?;
        let tls = self.tls.validate()?;
        Ok(ReplicationSettings {
            server_tls: tls.server(&address, listen, serving)?,
            address,
            advertise: super::advertised(
                "replication.advertise-address",
                advertise.as_ref(),
                listen,
            )?,
            heartbeat: self.tail_heartbeat,
            tls,
        })
    }
}

impl ReplicationTlsArgs {
    fn validate(&self) -> Result<ReplicationTls> {
        let identity = match (
            &self.replication_cert_filename,
            &self.replication_key_filename,
        ) {
            (Some(cert), Some(key)) => Some(IdentityFiles {
                cert: PemFile::new(CERT_FLAG, cert),
                key: PemFile::new(KEY_FLAG, key),
            }),
            (Some(_), None) => bail!("{CERT_FLAG} is given without {KEY_FLAG}: give both"),
            (None, Some(_)) => bail!("{KEY_FLAG} is given without {CERT_FLAG}: give both"),
            (None, None) => None,
        };
        Ok(ReplicationTls {
            identity,
            ca: self
                .replication_ca_filename
                .as_ref()
                .map(|ca| PemFile::new(CA_FLAG, ca)),
            client_cert_auth: self.replication_client_cert_auth,
        })
    }
}

impl ReplicationTls {
    /// What a replication port on `address` (given as `listen`) serves: `None` for
    /// `http://`; for `https://` the certificate and key, and the CA edges' certificates
    /// must be signed by when `serving` asks for them.
    pub fn server(
        &self,
        address: &ListenAddress,
        listen: &str,
        serving: Serving,
    ) -> Result<Option<ServerSettings>> {
        if !matches!(address, ListenAddress::Tcp { tls: true, .. }) {
            if self.client_cert_auth {
                bail!(
                    "--replication.client-cert-auth needs an https:// --replication.address \
                     (client certificates are presented in the TLS handshake); it is {listen:?}"
                );
            }
            return Ok(None);
        }
        let Some(identity) = self.identity.clone() else {
            bail!(
                "--replication.address {listen:?} is https:// and needs {CERT_FLAG} and {KEY_FLAG}"
            );
        };
        let asks_clients = match serving {
            Serving::Core => self.client_cert_auth || self.ca.is_some(),
            Serving::Edge => self.client_cert_auth,
        };
        let client_auth = match (asks_clients, &self.ca) {
            (false, _) => None,
            (true, Some(ca)) => Some(ClientAuth {
                ca: ca.clone(),
                allowed: None,
            }),
            (true, None) => bail!(
                "--replication.client-cert-auth needs {CA_FLAG}, the CA that signs the \
                 certificates of the edges following this node"
            ),
        };
        Ok(Some(ServerSettings {
            identity,
            client_auth,
        }))
    }

    /// What an edge presents to and trusts of its upstream: the CA (else the system's
    /// roots) and the certificate and key, if given.
    pub fn client(&self, insecure_skip_verify: bool) -> ClientSettings {
        ClientSettings {
            ca: self.ca.clone(),
            identity: self.identity.clone(),
            insecure_skip_verify,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(clap::Parser)]
    struct Command {
        #[command(flatten)]
        replication: ReplicationArgs,
    }

    fn settings(args: &[&str], serving: Serving) -> Result<ReplicationSettings> {
        let mut argv = vec!["test"];
        argv.extend_from_slice(args);
        Command::try_parse_from(argv)
            .map_err(anyhow::Error::from)?
            .replication
            .validate_for(serving)
    }

    const HTTPS: &str = "--replication.address=https://127.0.0.1:8444";
    const PAIR: [&str; 2] = [
        "--replication.cert-filename=c.pem",
        "--replication.key-filename=k.pem",
    ];

    #[test]
    fn plaintext_needs_no_files_and_https_needs_the_pair() {
        let plain = settings(&[], Serving::Core).expect("defaults");
        assert!(plain.server_tls.is_none());
        let err = settings(&[HTTPS], Serving::Core)
            .expect_err("no pair")
            .to_string();
        assert!(err.contains(CERT_FLAG) && err.contains(KEY_FLAG), "{err}");
        let served = settings(&[HTTPS, PAIR[0], PAIR[1]], Serving::Core)
            .expect("pair")
            .server_tls
            .expect("TLS");
        assert!(served.client_auth.is_none());
    }

    #[test]
    fn bare_host_port_is_http_or_https_by_the_certificate() {
        let plain = settings(
            &[
                "--replication.address=:18444",
                "--replication.advertise-address=core-1:8444",
            ],
            Serving::Core,
        )
        .expect("bare");
        assert_eq!(
            plain.address,
            ListenAddress::parse("replication.address", "http://0.0.0.0:18444").expect("url")
        );
        assert_eq!(plain.advertise, "http://core-1:8444");
        let tls = settings(
            &["--replication.address=127.0.0.1:18444", PAIR[0], PAIR[1]],
            Serving::Core,
        )
        .expect("bare with TLS");
        assert!(tls.server_tls.is_some());
        assert_eq!(tls.advertise, "https://127.0.0.1:18444");
    }

    #[test]
    fn every_command_taking_these_flags_builds() {
        // Argument ids are unique per command: these flags share commands with the API's.
        use clap::CommandFactory;
        crate::Cli::command().debug_assert();
    }

    #[test]
    fn half_a_pair_is_refused_naming_the_missing_flag() {
        let err = settings(&[PAIR[0]], Serving::Edge)
            .expect_err("cert alone")
            .to_string();
        assert!(err.contains("without --replication.key-filename"), "{err}");
        let err = settings(&[PAIR[1]], Serving::Core)
            .expect_err("key alone")
            .to_string();
        assert!(err.contains("without --replication.cert-filename"), "{err}");
    }

    #[test]
    fn a_ca_asks_edges_for_certificates_on_a_core_and_only_with_client_cert_auth_on_an_edge() {
        let ca = "--replication.ca-filename=ca.pem";
        let core = settings(&[HTTPS, PAIR[0], PAIR[1], ca], Serving::Core).expect("core");
        assert!(core.server_tls.expect("TLS").client_auth.is_some());
        let edge = settings(&[HTTPS, PAIR[0], PAIR[1], ca], Serving::Edge).expect("edge");
        assert!(edge.server_tls.expect("TLS").client_auth.is_none());
        let auth = "--replication.client-cert-auth";
        let edge = settings(&[HTTPS, PAIR[0], PAIR[1], ca, auth], Serving::Edge).expect("mTLS");
        assert!(edge.server_tls.expect("TLS").client_auth.is_some());
        let err = settings(&[HTTPS, PAIR[0], PAIR[1], auth], Serving::Core)
            .expect_err("no CA")
            .to_string();
        assert!(err.contains(CA_FLAG), "{err}");
        let err = settings(&[auth, ca], Serving::Core)
            .expect_err("plaintext")
            .to_string();
        assert!(err.contains("https://"), "{err}");
        let off = settings(
            &[
                HTTPS,
                PAIR[0],
                PAIR[1],
                ca,
                "--replication.client-cert-auth=false",
            ],
            Serving::Edge,
        )
        .expect("explicitly off");
        assert!(off.server_tls.expect("TLS").client_auth.is_none());
    }
}
