//! The HTTP port: `--rest.address`, and its TLS (`--rest.cert-filename`,
//! `--rest.key-filename`) when the address is `https://`.

use std::path::PathBuf;

use anyhow::{Result, bail};
use regatta_tls::{IdentityFiles, PemFile, ServerSettings};

use crate::address::{ListenAddress, with_scheme};

#[derive(clap::Args, Debug, Clone)]
pub struct RestAddressArg {
    /// Address of the HTTP port: /healthz, /readyz, /metrics. https:// serves them over
    /// TLS (--rest.cert-filename, --rest.key-filename); a bare host:port or :port
    /// (Regatta's form) is https:// when --rest.cert-filename is given.
    #[arg(
        long = "rest.address",
        env = "REGATTA_REST_ADDRESS",
        default_value = "127.0.0.1:8079"
    )]
    pub rest_address: String,
}

#[derive(clap::Args, Debug, Clone)]
pub struct RestArgs {
    #[command(flatten)]
    pub address: RestAddressArg,
    /// Path to the HTTP port's certificate (PEM, the chain from the server's certificate
    /// up). Required when --rest.address is https://. Re-read when the file changes.
    #[arg(long = "rest.cert-filename", env = "REGATTA_REST_CERT_FILENAME")]
    pub rest_cert_filename: Option<PathBuf>,
    /// Path to the HTTP port's private key (PEM). Required when --rest.address is
    /// https://. Re-read when the file changes.
    #[arg(long = "rest.key-filename", env = "REGATTA_REST_KEY_FILENAME")]
    pub rest_key_filename: Option<PathBuf>,
}

/// Where the HTTP port listens, and its TLS settings when the address is `https://`.
#[derive(Debug, Clone)]
pub struct RestSettings {
    pub address: ListenAddress,
    pub tls: Option<ServerSettings>,
}

impl RestSettings {
    /// The TCP address, when the port listens on one.
    pub fn tcp(&self) -> Option<std::net::SocketAddr> {
        self.address.tcp()
    }
}

impl RestArgs {
    /// Checks the address and its TLS flags: an `https://` address needs both files, and
    /// the files with a plaintext address are refused (they would be unused).
    pub fn address(&self) -> Result<RestSettings> {
        // Regatta's bare host:port: https:// when the port has a certificate.
        let tls = self.rest_cert_filename.is_some();
        let listen = &with_scheme("rest.address", &self.address.rest_address, tls)?;
        let address = ListenAddress::parse("rest.address", listen)?;
        let https = matches!(address, ListenAddress::Tcp { tls: true, .. });
        let tls = match (&self.rest_cert_filename, &self.rest_key_filename) {
            (Some(cert), Some(key)) if https => Some(ServerSettings {
                identity: IdentityFiles {
                    cert: PemFile::new("--rest.cert-filename", cert),
                    key: PemFile::new("--rest.key-filename", key),
                },
                client_auth: None,
            }),
            (None, None) if !https => None,
            _ if https => bail!(
                "--rest.address {listen:?} is https:// and needs --rest.cert-filename and --rest.key-filename"
            ),
            _ => bail!(
                "--rest.address {listen:?} is not https://, so --rest.cert-filename and --rest.key-filename would be unused: serve TLS with an https:// address, or drop them"
            ),
        };
        Ok(RestSettings { address, tls })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(extra: &[&str]) -> Result<RestSettings> {
        #[derive(clap::Parser)]
        struct Parse {
            #[command(flatten)]
            rest: RestArgs,
        }
        let mut argv = vec!["test"];
        argv.extend_from_slice(extra);
        <Parse as clap::Parser>::try_parse_from(argv)?
            .rest
            .address()
    }

    #[test]
    fn bare_host_port_is_http_or_https_by_the_certificate() {
        let plain = settings(&["--rest.address=:18079"]).expect("port only");
        assert_eq!(
            plain.address,
            ListenAddress::parse("rest.address", "http://0.0.0.0:18079").expect("url")
        );
        assert!(plain.tls.is_none());
        let tls = settings(&[
            "--rest.address=127.0.0.1:18079",
            "--rest.cert-filename=c.pem",
            "--rest.key-filename=k.pem",
        ])
        .expect("bare with TLS");
        assert!(matches!(tls.address, ListenAddress::Tcp { tls: true, .. }));
        assert!(tls.tls.is_some());
        let err = settings(&["--rest.address=8079"])
            .expect_err("no colon")
            .to_string();
        assert!(err.contains("--rest.address"), "{err}");
    }
}
