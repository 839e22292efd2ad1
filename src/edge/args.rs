//! Options of `regatta edge`, and their validation into [`EdgeSettings`].

use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;

use crate::{
    address::{ListenAddress, with_scheme},
    flags::{
        api::{ApiArgs, ApiSettings},
        object_store::ObjectStoreArgs,
        replication::{ReplicationArgs, ReplicationSettings, Serving},
        rest::RestArgs,
        storage::{DATA_DIR_ID, StorageArgs},
    },
};

/// Options of an edge node. Each can also be set with the environment variable shown, or in
/// the YAML file given with `--config`.
#[derive(Args, Debug, Clone)]
#[command(mut_arg(DATA_DIR_ID, |a| a
    .default_value("./regatta-edge-data")
    .help("Directory for the local log and snapshots")))]
pub struct EdgeArgs {
    #[command(flatten)]
    pub config: crate::flags::ConfigFileArg,
    /// Upstreams to follow, in order of preference: replication URLs of core nodes or of
    /// other edges, comma-separated. A bare host:port (Regatta's form) is https:// when
    /// --replication.ca-filename or --replication.cert-filename is given, else http://.
    #[arg(
        long = "replication.leader-address",
        env = "REGATTA_REPLICATION_LEADER_ADDRESS",
        value_delimiter = ',',
        required = true
    )]
    pub upstreams: Vec<String>,
    /// Accept whatever certificate an https:// upstream presents, whoever signed it and
    /// whatever name it is for (self-signed testing only: the connection is encrypted, but
    /// anyone on the path can pose as the upstream). Refused together with
    /// --replication.ca-filename.
    #[arg(
        long = "replication.insecure-skip-verify",
        env = "REGATTA_REPLICATION_INSECURE_SKIP_VERIFY",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        default_value = "false",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub replication_insecure_skip_verify: bool,
    /// Name (DNS name or IP address) an https:// upstream's certificate must be valid for,
    /// instead of the host in --replication.leader-address (an upstream reached by another
    /// name: a proxy, a load balancer, an IP address).
    #[arg(
        long = "replication.server-name",
        env = "REGATTA_REPLICATION_SERVER_NAME"
    )]
    pub replication_server_name: Option<String>,
    /// Move to the next upstream after hearing nothing from the current one for this long.
    #[arg(long = "replication.staleness", env = "REGATTA_REPLICATION_STALENESS", default_value = "3s", value_parser = humantime::parse_duration)]
    pub staleness: Duration,
    /// Ready (/readyz) only while at most this many entries behind the upstream.
    #[arg(
        long = "replication.max-lag",
        env = "REGATTA_REPLICATION_MAX_LAG",
        default_value_t = 10_000
    )]
    pub max_lag: u64,
    /// Write a local snapshot every this many applied entries.
    #[arg(
        long = "edge.snapshot-entries",
        env = "REGATTA_EDGE_SNAPSHOT_ENTRIES",
        default_value_t = 100_000
    )]
    pub snapshot_entries: u64,
    /// Entries kept in the local log behind the local snapshot, for downstream edges.
    #[arg(
        long = "edge.keep-entries",
        env = "REGATTA_EDGE_KEEP_ENTRIES",
        default_value_t = 100_000
    )]
    pub keep_entries: u64,
    /// Least time between two fsyncs of the local log (at most 10s; 0s: after every write
    /// round). Entries are applied and served as soon as they are written: the local log
    /// is a restart cache of what the upstream committed, so a power loss can take at most
    /// this much of its end, which the restarted edge fetches again before it is ready.
    #[arg(
        long = "edge.log-sync-interval",
        env = "REGATTA_EDGE_LOG_SYNC_INTERVAL",
        default_value = "25ms",
        value_parser = humantime::parse_duration
    )]
    pub log_sync_interval: Duration,
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub replication: ReplicationArgs,
    #[command(flatten)]
    pub rest: RestArgs,
    #[command(flatten)]
    pub storage: StorageArgs,
    #[command(flatten)]
    pub object_store: ObjectStoreArgs,
    #[command(flatten)]
    pub services: crate::flags::services::ServiceArgs,
    /// Replica id reported in response headers.
    #[arg(long = "node-id", env = "REGATTA_NODE_ID", default_value_t = 0)]
    pub node_id: u64,
    /// Name of this edge in logs and MemberList (default: `edge`).
    #[arg(long = "node-name", env = "REGATTA_NODE_NAME", default_value = "edge")]
    pub node_name: String,
    #[command(flatten)]
    pub regatta: crate::flags::regatta::RegattaArgs,
    #[command(flatten)]
    pub follower: crate::flags::regatta::FollowerArgs,
}

/// Validated edge settings.
#[derive(Debug, Clone)]
pub struct EdgeSettings {
    pub args: EdgeArgs,
    pub api: ApiSettings,
    pub replication: ReplicationSettings,
    pub rest_address: crate::flags::rest::RestSettings,
    /// How https:// upstreams are reached; `None` when every upstream is http://.
    pub upstream_tls: Option<UpstreamTls>,
}

/// What an edge trusts of and presents to its https:// upstreams.
#[derive(Debug, Clone)]
pub struct UpstreamTls {
    pub client: regatta_tls::ClientSettings,
    /// The name the upstreams' certificates must be valid for, instead of their hosts.
    pub server_name: Option<String>,
}

impl EdgeArgs {
    /// Checks every option and returns the settings, with Regatta's forms resolved in
    /// `args`: bare host:port upstreams as URLs, `--raft.node-id` as `--node-id`,
    /// `--memberlist.node-name` as `--node-name`.
    pub fn validate(&self) -> Result<EdgeSettings> {
        let mut args = self.clone();
        args.upstreams = self.upstream_urls()?;
        if let Some(id) = self.follower.raft_node_id {
            args.node_id = id;
        }
        if let Some(name) = &self.regatta.memberlist_node_name {
            args.node_name = name.clone();
        }
        args.checked()
    }

    /// The upstreams as URLs: a bare host:port is `https://` when the edge has TLS files
    /// for its upstream (a CA to verify it, or a certificate to present).
    fn upstream_urls(&self) -> Result<Vec<String>> {
        if self.upstreams.is_empty() {
            bail!("--replication.leader-address needs at least one upstream URL");
        }
        let tls = self.replication.tls.replication_ca_filename.is_some()
            || self.replication.tls.replication_cert_filename.is_some();
        self.upstreams
            .iter()
            .map(|upstream| {
                let url = with_scheme("replication.leader-address", upstream, tls)?;
                ListenAddress::check_peer_url("replication.leader-address", &url)?;
                Ok(url)
            })
            .collect()
    }

    fn checked(self) -> Result<EdgeSettings> {
        if self.staleness < Duration::from_millis(100) {
            bail!("--replication.staleness must be at least 100ms");
        }
        if self.snapshot_entries == 0 {
            bail!("--edge.snapshot-entries must be positive");
        }
        if self.log_sync_interval > regatta_log::MAX_SYNC_PAUSE {
            bail!(
                "--edge.log-sync-interval must be at most {}",
                humantime::format_duration(regatta_log::MAX_SYNC_PAUSE)
            );
        }
        self.storage.validate()?;
        let replication = self.replication.validate_for(Serving::Edge)?;
        Ok(EdgeSettings {
            api: self.api.validate()?,
            upstream_tls: self.upstream_tls(&replication)?,
            replication,
            rest_address: self.rest.address()?,
            args: self,
        })
    }

    /// The client side of TLS when an upstream is `https://`. Skipping verification and
    /// naming a CA to verify with contradict each other: refused rather than one silently
    /// winning.
    fn upstream_tls(&self, replication: &ReplicationSettings) -> Result<Option<UpstreamTls>> {
        if self.replication_insecure_skip_verify && replication.tls.ca.is_some() {
            bail!(
                "--replication.insecure-skip-verify and --replication.ca-filename exclude each \
                 other: verify the upstream with the CA, or (testing only) skip verification"
            );
        }
        let server_name = self
            .replication_server_name
            .clone()
            .filter(|n| !n.is_empty());
        if let Some(name) = &server_name {
            rustls_pki_types::ServerName::try_from(name.as_str()).map_err(|e| {
                anyhow::anyhow!(
                    "--replication.server-name {name:?}: not a DNS name or IP address: {e}"
                )
            })?;
        }
        let any_https = self.upstreams.iter().any(|u| {
            u.get(..8)
                .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
        });
        if !any_https {
            return Ok(None);
        }
        Ok(Some(UpstreamTls {
            client: replication
                .tls
                .client(self.replication_insecure_skip_verify),
            server_name,
        }))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        edge: EdgeArgs,
    }

    fn settings(args: &[&str]) -> Result<EdgeSettings> {
        let mut argv = vec!["test"];
        argv.extend_from_slice(args);
        Command::try_parse_from(argv)?.edge.validate()
    }

    #[test]
    fn bare_upstreams_are_https_with_the_upstream_tls_files() {
        let plain = settings(&["--replication.leader-address=127.0.0.1:8444,:8445"])
            .expect("bare upstreams");
        assert_eq!(
            plain.args.upstreams,
            ["http://127.0.0.1:8444", "http://0.0.0.0:8445"]
        );
        assert!(plain.upstream_tls.is_none());
        let tls = settings(&[
            "--replication.leader-address=core:8444",
            "--replication.ca-filename=ca.pem",
        ])
        .expect("bare with a CA");
        assert_eq!(tls.args.upstreams, ["https://core:8444"]);
        assert!(tls.upstream_tls.is_some());
        let tls = settings(&[
            "--replication.leader-address=core:8444",
            "--replication.cert-filename=c.pem",
            "--replication.key-filename=k.pem",
        ])
        .expect("bare with a certificate");
        assert_eq!(tls.args.upstreams, ["https://core:8444"]);
        let err = settings(&["--replication.leader-address=core"])
            .expect_err("no port")
            .to_string();
        assert!(err.contains("--replication.leader-address"), "{err}");
    }

    #[test]
    fn regatta_follower_names_stand_for_the_edges_own() {
        let edge = settings(&[
            "--replication.leader-address=http://core:8444",
            "--raft.node-id=3",
            "--memberlist.node-name=follower-3",
            "--raft.address=127.0.0.1:5012",
            "--replication.poll-interval=1s",
        ])
        .expect("Regatta follower flags");
        assert_eq!(edge.args.node_id, 3);
        assert_eq!(edge.args.node_name, "follower-3");
        assert_eq!(edge.args.follower.warnings().len(), 2);
        let defaults =
            settings(&["--replication.leader-address=http://core:8444"]).expect("defaults");
        assert_eq!(defaults.args.node_id, 0);
        assert_eq!(defaults.args.node_name, "edge");
        let err = settings(&[
            "--replication.leader-address=http://core:8444",
            "--raft.node-id=3",
            "--node-id=4",
        ])
        .expect_err("both ids")
        .to_string();
        assert!(
            err.contains("--raft.node-id") && err.contains("--node-id"),
            "{err}"
        );
    }

    #[test]
    fn the_log_sync_interval_defaults_to_25ms_and_is_bounded() {
        let up = "--replication.leader-address=http://core:8444";
        let defaults = settings(&[up]).expect("defaults");
        assert_eq!(defaults.args.log_sync_interval, Duration::from_millis(25));
        let every_round = settings(&[up, "--edge.log-sync-interval=0s"]).expect("0s");
        assert_eq!(every_round.args.log_sync_interval, Duration::ZERO);
        let err = settings(&[up, "--edge.log-sync-interval=11s"])
            .expect_err("past the bound")
            .to_string();
        assert!(
            err.contains("--edge.log-sync-interval") && err.contains("10s"),
            "{err}"
        );
        let err = settings(&[up, "--edge.log-sync-interval=soon"])
            .expect_err("not a duration")
            .to_string();
        assert!(err.contains("--edge.log-sync-interval"), "{err}");
    }
}
