//! The Raft transport of a core node: its addresses, `--raft.address` (core, dev: where
//! peers reach the node, and where it listens unless `--raft.listen-address` is given), its
//! timing (`--raft.heartbeat-interval` and `--raft.election-timeout`, or Regatta's
//! `--raft.rtt` with `--raft.heartbeat-rtt` and `--raft.election-rtt`), and its TLS with
//! mutual authentication between core nodes, `--raft.cert-filename`,
//! `--raft.key-filename`, `--raft.ca-filename` (core). The other `--raft.*` options are a
//! core node's own, in `core/args.rs`.
//!
//! Every address takes a URL or Regatta's bare `host:port` / `:port`, which means
//! `https://` when the TLS flags are given and `http://` otherwise
//! ([`crate::address::with_scheme`]).

use std::{net::IpAddr, path::PathBuf, time::Duration};

use anyhow::{Result, bail};
use regatta_tls::{ClientAuth, ClientSettings, IdentityFiles, PemFile, ServerSettings};

use crate::address::with_scheme;

#[derive(clap::Args, Debug, Clone)]
pub struct RaftAddressArg {
    /// The address peers reach this node at (host:port or URL; host:port means https://
    /// with --raft.cert-filename, http:// otherwise): the node's address in the cluster's
    /// membership. It must name this node, never 0.0.0.0. The Raft port also listens here,
    /// unless --raft.listen-address is given.
    #[arg(
        long = "raft.address",
        env = "REGATTA_RAFT_ADDRESS",
        default_value = "127.0.0.1:5012"
    )]
    pub raft_address: String,
}

/// Where the Raft port binds when that is not `--raft.address`, and the flag that once
/// said where peers reach the node.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RaftListenArgs {
    /// The address the Raft port binds (host:port, :port for every interface, or a URL),
    /// when it is not --raft.address: e.g. 0.0.0.0:5012 in a container whose peers reach it
    /// by name (--raft.address=node-1.example:5012). Default: --raft.address.
    #[arg(long = "raft.listen-address", env = "REGATTA_RAFT_LISTEN_ADDRESS")]
    pub listen_address: Option<String>,
    /// Gone: refused with a message naming --raft.address and --raft.listen-address.
    #[arg(
        long = "raft.advertise-address",
        env = "REGATTA_RAFT_ADVERTISE_ADDRESS",
        hide = true
    )]
    pub advertise_address: Option<String>,
}

/// Why `--raft.advertise-address` is refused: its job moved to `--raft.address`.
pub const ADVERTISE_GONE: &str = "--raft.advertise-address is gone: use --raft.address (the \
     address peers reach this node at) and --raft.listen-address (the address it binds)";

/// The two addresses of the Raft port, as URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftAddresses {
    /// Where peers reach this node (`--raft.address`).
    pub advertise: String,
    /// Where the port binds: `--raft.listen-address`, else `--raft.address`.
    pub listen: String,
    /// The flag `listen` came from, for errors: `raft.listen-address` or `raft.address`.
    pub listen_flag: &'static str,
}

impl RaftListenArgs {
    /// Resolves `address` (`--raft.address`) and the listen address into URLs, bare forms
    /// taking `https://` when `tls` (the `--raft.*-filename` flags are given). Refuses
    /// `--raft.advertise-address`, and a `--raft.address` peers could not dial (0.0.0.0, ::).
    pub fn resolve(&self, address: &str, tls: bool) -> Result<RaftAddresses> {
        if self.advertise_address.is_some() {
            bail!(ADVERTISE_GONE);
        }
        let advertise = with_scheme("raft.address", address, tls)?;
        crate::address::ListenAddress::check_peer_url("raft.address", &advertise)?;
        if let Some(ip) = unspecified_host(&advertise) {
            bail!(
                "--raft.address {address:?}: {ip} is not an address peers can reach; give \
                 this node's host name or IP address, and bind every interface with \
                 --raft.listen-address (e.g. --raft.listen-address=0.0.0.0:{port})",
                port = advertise.rsplit_once(':').map_or("5012", |(_, p)| p)
            );
        }
        Ok(match &self.listen_address {
            Some(listen) => RaftAddresses {
                listen: with_scheme("raft.listen-address", listen, tls)?,
                advertise,
                listen_flag: "raft.listen-address",
            },
            None => RaftAddresses {
                listen: advertise.clone(),
                advertise,
                listen_flag: "raft.address",
            },
        })
    }
}

/// The host of `url` when it is an unspecified IP address (`0.0.0.0`, `::`).
fn unspecified_host(url: &str) -> Option<IpAddr> {
    let (_, rest) = url.split_once("://")?;
    let (host, _) = rest.trim_end_matches('/').rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.parse::<IpAddr>().ok().filter(IpAddr::is_unspecified)
}

/// Heartbeats and elections: `--raft.heartbeat-interval` and `--raft.election-timeout`,
/// or Regatta's round-trip multiples (`--raft.rtt` with `--raft.heartbeat-rtt` and
/// `--raft.election-rtt`). The two ways exclude each other.
#[derive(clap::Args, Debug, Clone)]
pub struct RaftTimingArgs {
    /// How often the leader sends heartbeats.
    #[arg(long = "raft.heartbeat-interval", env = "REGATTA_RAFT_HEARTBEAT_INTERVAL", default_value = "150ms", value_parser = humantime::parse_duration)]
    pub heartbeat_interval: Duration,
    /// A follower starts an election after hearing nothing from the leader for between this
    /// and 1.2× this long (openraft's leader lease, 0.6×, then a random 0.4–0.6×); after
    /// losing a vote to a node with a longer log it waits 1.2× more.
    #[arg(long = "raft.election-timeout", env = "REGATTA_RAFT_ELECTION_TIMEOUT", default_value = "1s", value_parser = humantime::parse_duration)]
    pub election_timeout: Duration,
    /// Regatta's round-trip time between core nodes (default 50ms when --raft.heartbeat-rtt
    /// or --raft.election-rtt is given): the heartbeat interval is
    /// --raft.rtt × --raft.heartbeat-rtt, the election timeout --raft.rtt ×
    /// --raft.election-rtt. Instead of --raft.heartbeat-interval and --raft.election-timeout.
    #[arg(long = "raft.rtt", env = "REGATTA_RAFT_RTT", value_parser = humantime::parse_duration, conflicts_with_all = ["heartbeat_interval", "election_timeout"])]
    pub rtt: Option<Duration>,
    /// Heartbeat interval in round trips (--raft.rtt); default 1 when --raft.rtt or
    /// --raft.election-rtt is given.
    #[arg(
        long = "raft.heartbeat-rtt",
        env = "REGATTA_RAFT_HEARTBEAT_RTT",
        conflicts_with_all = ["heartbeat_interval", "election_timeout"]
    )]
    pub heartbeat_rtt: Option<u32>,
    /// Election timeout in round trips (--raft.rtt); default 20 when --raft.rtt or
    /// --raft.heartbeat-rtt is given. At least three times --raft.heartbeat-rtt.
    #[arg(
        long = "raft.election-rtt",
        env = "REGATTA_RAFT_ELECTION_RTT",
        conflicts_with_all = ["heartbeat_interval", "election_timeout"]
    )]
    pub election_rtt: Option<u32>,
}

/// Regatta's defaults of the round-trip flags.
pub const DEFAULT_RTT: Duration = Duration::from_millis(50);
pub const DEFAULT_HEARTBEAT_RTT: u32 = 1;
pub const DEFAULT_ELECTION_RTT: u32 = 20;

/// The heartbeat interval and election timeout Raft runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftTiming {
    pub heartbeat: Duration,
    pub election_timeout: Duration,
}

impl RaftTimingArgs {
    /// The timing: from the round-trip flags when any is given (the missing ones at
    /// Regatta's defaults), else from the interval flags. An election timeout under three
    /// heartbeats, or a heartbeat under a millisecond, is an error naming the flags used.
    pub fn validate(&self) -> Result<RaftTiming> {
        if self.rtt.is_none() && self.heartbeat_rtt.is_none() && self.election_rtt.is_none() {
            if self.heartbeat_interval < Duration::from_millis(1)
                || self.election_timeout < self.heartbeat_interval * 3
            {
                bail!(
                    "--raft.election-timeout ({:?}) must be at least three \
                     --raft.heartbeat-interval ({:?}), which must be at least 1ms",
                    self.election_timeout,
                    self.heartbeat_interval
                );
            }
            return Ok(RaftTiming {
                heartbeat: self.heartbeat_interval,
                election_timeout: self.election_timeout,
            });
        }
        let rtt = self.rtt.unwrap_or(DEFAULT_RTT);
        let heartbeat_rtt = self.heartbeat_rtt.unwrap_or(DEFAULT_HEARTBEAT_RTT);
        let election_rtt = self.election_rtt.unwrap_or(DEFAULT_ELECTION_RTT);
        if heartbeat_rtt == 0 || u64::from(election_rtt) < 3 * u64::from(heartbeat_rtt) {
            bail!(
                "--raft.election-rtt ({election_rtt}) must be at least three times \
                 --raft.heartbeat-rtt ({heartbeat_rtt}), which must be positive"
            );
        }
        let times = |n: u32, flag: &str| {
            rtt.checked_mul(n).ok_or_else(|| {
                anyhow::anyhow!("--raft.rtt ({rtt:?}) × --raft.{flag} ({n}) is too long")
            })
        };
        let heartbeat = times(heartbeat_rtt, "heartbeat-rtt")?;
        if heartbeat < Duration::from_millis(1) {
            bail!(
                "--raft.rtt ({rtt:?}) × --raft.heartbeat-rtt ({heartbeat_rtt}) must be at \
                 least 1ms"
            );
        }
        Ok(RaftTiming {
            heartbeat,
            election_timeout: times(election_rtt, "election-rtt")?,
        })
    }
}

/// TLS between core nodes: all three files or none.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RaftTlsArgs {
    /// This node's certificate (PEM, the chain from the node's certificate up) on the Raft
    /// port: served to peers that dial it, and presented as the client certificate when it
    /// dials them. Valid for the host of its --raft.address. With --raft.key-filename and
    /// --raft.ca-filename: every Raft address must be https:// (a bare host:port means it).
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

    fn listen(listen: Option<&str>) -> RaftListenArgs {
        RaftListenArgs {
            listen_address: listen.map(str::to_string),
            advertise_address: None,
        }
    }

    #[test]
    fn the_raft_address_is_advertised_and_bound_unless_a_listen_address_is_given() {
        let same = listen(None).resolve("127.0.0.1:5012", false).expect("bare");
        assert_eq!(same.advertise, "http://127.0.0.1:5012");
        assert_eq!(same.listen, "http://127.0.0.1:5012");
        assert_eq!(same.listen_flag, "raft.address");
        let apart = listen(Some(":5012"))
            .resolve("node-1.example:5012", true)
            .expect("bare with TLS");
        assert_eq!(apart.advertise, "https://node-1.example:5012");
        assert_eq!(apart.listen, "https://0.0.0.0:5012");
        assert_eq!(apart.listen_flag, "raft.listen-address");
        let urls = listen(Some("http://0.0.0.0:7000"))
            .resolve("http://10.0.0.1:7000", false)
            .expect("URLs");
        assert_eq!(urls.advertise, "http://10.0.0.1:7000");
        assert_eq!(urls.listen, "http://0.0.0.0:7000");
    }

    #[test]
    fn peers_cannot_reach_an_unspecified_address() {
        for address in ["0.0.0.0:5012", ":5012", "http://0.0.0.0:5012", "[::]:5012"] {
            let err = listen(Some("0.0.0.0:5012"))
                .resolve(address, false)
                .expect_err(address)
                .to_string();
            assert!(
                err.contains("--raft.address") && err.contains("--raft.listen-address"),
                "{err}"
            );
        }
        let err = listen(None)
            .resolve("no port", false)
            .expect_err("not host:port")
            .to_string();
        assert!(err.contains("--raft.address"), "{err}");
        let err = listen(Some("nonsense"))
            .resolve("127.0.0.1:5012", false)
            .expect_err("bad listen address")
            .to_string();
        assert!(err.contains("--raft.listen-address"), "{err}");
    }

    #[test]
    fn the_advertise_address_is_refused_with_where_its_job_went() {
        let args = RaftListenArgs {
            listen_address: None,
            advertise_address: Some("http://node-1:5012".into()),
        };
        let err = args
            .resolve("http://0.0.0.0:5012", false)
            .expect_err("gone")
            .to_string();
        assert_eq!(err, ADVERTISE_GONE);
    }

    fn timing(
        rtt: Option<u64>,
        heartbeat_rtt: Option<u32>,
        election_rtt: Option<u32>,
    ) -> RaftTimingArgs {
        RaftTimingArgs {
            heartbeat_interval: Duration::from_millis(150),
            election_timeout: Duration::from_secs(1),
            rtt: rtt.map(Duration::from_millis),
            heartbeat_rtt,
            election_rtt,
        }
    }

    #[test]
    fn round_trips_set_the_timing_with_regattas_defaults_for_the_missing_ones() {
        let ms = Duration::from_millis;
        let interval = timing(None, None, None).validate().expect("intervals");
        assert_eq!(
            (interval.heartbeat, interval.election_timeout),
            (ms(150), ms(1000))
        );
        let cases = [
            ((Some(50), None, None), (50, 1000)),
            ((Some(100), None, None), (100, 2000)),
            ((None, Some(2), None), (100, 1000)),
            ((None, None, Some(40)), (50, 2000)),
            ((Some(10), Some(5), Some(50)), (50, 500)),
        ];
        for ((rtt, hb, el), (heartbeat, election)) in cases {
            let t = timing(rtt, hb, el).validate().expect("round trips");
            assert_eq!(
                (t.heartbeat, t.election_timeout),
                (ms(heartbeat), ms(election)),
                "{rtt:?} {hb:?} {el:?}"
            );
        }
    }

    #[test]
    fn too_short_elections_name_the_flags_used() {
        let err = timing(None, Some(10), Some(20))
            .validate()
            .expect_err("20 < 3 × 10")
            .to_string();
        assert!(
            err.contains("--raft.election-rtt (20)") && err.contains("--raft.heartbeat-rtt (10)"),
            "{err}"
        );
        let err = timing(None, Some(0), None)
            .validate()
            .expect_err("zero")
            .to_string();
        assert!(err.contains("--raft.heartbeat-rtt"), "{err}");
        let err = timing(Some(0), None, None)
            .validate()
            .expect_err("zero rtt")
            .to_string();
        assert!(err.contains("--raft.rtt"), "{err}");
        let mut args = timing(None, None, None);
        args.election_timeout = Duration::from_millis(400);
        let err = args.validate().expect_err("400ms < 3 × 150ms").to_string();
        assert!(
            err.contains("--raft.election-timeout") && err.contains("--raft.heartbeat-interval"),
            "{err}"
        );
    }

    #[test]
    fn round_trips_and_intervals_exclude_each_other() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            timing: RaftTimingArgs,
        }
        use clap::Parser;
        let parse = |args: &[&str]| Cli::try_parse_from([&["t"], args].concat());
        for (a, b) in [
            ("--raft.rtt=10ms", "--raft.heartbeat-interval=20ms"),
            ("--raft.election-rtt=30", "--raft.election-timeout=2s"),
            ("--raft.heartbeat-rtt=2", "--raft.election-timeout=2s"),
        ] {
            let err = parse(&[a, b]).err().expect("refused").to_string();
            let name = |f: &str| f.split('=').next().unwrap_or(f).to_string();
            assert!(
                err.contains(&name(a)) && err.contains(&name(b)),
                "{a} {b}: {err}"
            );
        }
        let cli = parse(&["--raft.rtt=10ms"]).expect("defaults do not count as given");
        assert_eq!(
            cli.timing.validate().expect("valid").heartbeat,
            Duration::from_millis(10)
        );
    }
}
