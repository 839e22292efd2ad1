//! Options of `regatta edge`, and their validation into [`EdgeSettings`].

use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;

use crate::{
    address::ListenAddress,
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
    /// other edges, comma-separated.
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
    pub fn validate(&self) -> Result<EdgeSettings> {
        if self.upstreams.is_empty() {
            bail!("--replication.leader-address needs at least one upstream URL");
        }
        for upstream in &self.upstreams {
            ListenAddress::check_peer_url("replication.leader-address", upstream)?;
        }
        if self.staleness < Duration::from_millis(100) {
            bail!("--replication.staleness must be at least 100ms");
        }
        if self.snapshot_entries == 0 {
            bail!("--edge.snapshot-entries must be positive");
        }
        self.storage.validate()?;
        let replication = self.replication.validate_for(Serving::Edge)?;
        Ok(EdgeSettings {
            api: self.api.validate()?,
            upstream_tls: self.upstream_tls(&replication)?,
            replication,
            rest_address: self.rest.address()?,
            args: self.clone(),
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
