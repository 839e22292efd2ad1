//! The Raft transport: its listen address, `--raft.address` (core, dev), and its TLS with
//! mutual authentication between core nodes, `--raft.cert-filename`,
//! `--raft.key-filename`, `--raft.ca-filename` (core). The other `--raft.*` options are a
//! core node's own, in `core/args.rs`.

use std::path::PathBuf;

use anyhow::{Result, bail};
use regatta_tls::{ClientAuth, ClientSettings, IdentityFiles, PemFile, ServerSettings};

#[derive(clap::Args, Debug, Clone)]
pub struct RaftAddressArg {
    /// Address the Raft transport listens on.
    #[arg(
        long = "raft.address",
        env = "REGATTA_RAFT_ADDRESS",
        default_value = "http://127.0.0.1:5012"
    )]
    pub raft_address: String,
}

/// TLS between core nodes: all three files or none.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RaftTlsArgs {
    /// This node's certificate (PEM, the chain from the node's certificate up) on the Raft
    /// port: served to peers that dial it, and presented as the client certificate when it
    /// dials them. Valid for the host of its Raft advertise address. With
    /// --raft.key-filename and --raft.ca-filename: every Raft address must be https://.
    #[arg(long = "raft.cert-filename", env = "REGATTA_RAFT_CERT_FILENAME")]
    pub raft_cert_filename: Option<PathBuf>,
    /// The private key of --raft.cert-filename (PEM).
    #[arg(long = "raft.key-filename", env = "REGATTA_RAFT_KEY_FILENAME")]
    pub raft_key_filename: Option<PathBuf>,
    /// The CA that signs every core node's Raft certificate (PEM): a peer's certificate,
    /// as a server or as a client, is accepted only when this CA signed it.
    #[arg(long = "raft.ca-filename", env = "REGATTA_RAFT_CA_FILENAME")]
    pub raft_ca_filename: Option<PathBuf>,
}

/// The two sides of mutual TLS on the Raft port, from [`RaftTlsArgs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftTls {
    /// The Raft port: this node's certificate, client certificates signed by the CA required.
    pub server: ServerSettings,
    /// Dialing peers: the CA to verify them, this node's certificate presented.
    pub client: ClientSettings,
}

impl RaftTlsArgs {
    /// The settings when all three flags are set, `None` when none is; an error naming
    /// what is missing otherwise. The files are read when the node builds its
    /// configurations.
    pub fn validate(&self) -> Result<Option<RaftTls>> {
        let flags = [
            ("--raft.cert-filename", &self.raft_cert_filename),
            ("--raft.key-filename", &self.raft_key_filename),
            ("--raft.ca-filename", &self.raft_ca_filename),
        ];
        let file = |flag: &str, path: &Option<PathBuf>| {
            path.as_ref()
                .filter(|p| !p.as_os_str().is_empty())
                .map(|p| PemFile::new(flag, p))
        };
        let [cert, key, ca] = flags.map(|(flag, path)| file(flag, path));
        match (cert, key, ca) {
            (None, None, None) => Ok(None),
            (Some(cert), Some(key), Some(ca)) => {
                let identity = IdentityFiles { cert, key };
                Ok(Some(RaftTls {
                    server: ServerSettings {
                        identity: identity.clone(),
                        client_auth: Some(ClientAuth {
                            ca: ca.clone(),
                            allowed: None,
                        }),
                    },
                    client: ClientSettings {
                        ca: Some(ca),
                        identity: Some(identity),
                        insecure_skip_verify: false,
                    },
                }))
            }
            (cert, key, ca) => {
                let (set, missing): (Vec<_>, Vec<_>) =
                    [cert.is_some(), key.is_some(), ca.is_some()]
                        .into_iter()
                        .zip(flags.map(|(flag, _)| flag))
                        .partition(|(given, _)| *given);
                let names = |v: Vec<(bool, &str)>| {
                    v.into_iter().map(|(_, f)| f).collect::<Vec<_>>().join(", ")
                };
                bail!(
                    "TLS between core nodes needs --raft.cert-filename, --raft.key-filename and \
                     --raft.ca-filename together: {} given, {} missing",
                    names(set),
                    names(missing)
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(cert: bool, key: bool, ca: bool) -> RaftTlsArgs {
        let path = |on: bool, name: &str| on.then(|| PathBuf::from(name));
        RaftTlsArgs {
            raft_cert_filename: path(cert, "node.pem"),
            raft_key_filename: path(key, "node.key"),
            raft_ca_filename: path(ca, "ca.pem"),
        }
    }

    #[test]
    fn all_three_or_none() {
        assert_eq!(args(false, false, false).validate().expect("none"), None);
        let tls = args(true, true, true)
            .validate()
            .expect("all three")
            .expect("TLS");
        assert_eq!(tls.client.identity.as_ref(), Some(&tls.server.identity));
        let auth = tls
            .server
            .client_auth
            .expect("client certificates required");
        assert_eq!(auth.ca.flag, "--raft.ca-filename");
        assert_eq!(tls.client.ca, Some(auth.ca));
        assert!(!tls.client.insecure_skip_verify);
    }

    #[test]
    fn a_partial_set_names_what_is_missing() {
        let err = args(true, false, false)
            .validate()
            .expect_err("half")
            .to_string();
        assert!(
            err.contains("--raft.cert-filename given")
                && err.contains("--raft.key-filename, --raft.ca-filename missing"),
            "{err}"
        );
        let err = args(true, true, false)
            .validate()
            .expect_err("no CA")
            .to_string();
        assert!(err.contains("--raft.ca-filename missing"), "{err}");
    }
}
