//! Options of `regatta edge`.

use std::{path::PathBuf, time::Duration};

use anyhow::{Result, bail};
use clap::Args;
use regatta_api::node::{Limits, Tokens};

use crate::address::ListenAddress;

/// Options of an edge node. Each can also be set with the environment variable shown, or in
/// the YAML file given with `--config`.
#[derive(Args, Debug, Clone)]
pub struct EdgeArgs {
    /// YAML file with any of these options (flags and environment variables take precedence).
    #[arg(long = "config", id = "config_file", env = "REGATTA_CONFIG")]
    pub config: Option<String>,
    /// Upstreams to follow, in order of preference: replication URLs of core nodes or of
    /// other edges, comma-separated.
    #[arg(
        long = "replication.leader-address",
        env = "REGATTA_REPLICATION_LEADER_ADDRESS",
        value_delimiter = ',',
        required = true
    )]
    pub upstreams: Vec<String>,
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
    /// Address this edge serves the log tail on, for other edges.
    #[arg(
        long = "replication.address",
        env = "REGATTA_REPLICATION_ADDRESS",
        default_value = "http://127.0.0.1:8444"
    )]
    pub replication_address: String,
    /// Replication address other edges should use (default: --replication.address).
    #[arg(
        long = "replication.advertise-address",
        env = "REGATTA_REPLICATION_ADVERTISE_ADDRESS"
    )]
    pub replication_advertise: Option<String>,
    /// How often an idle log-tail stream carries a heartbeat to downstream edges.
    #[arg(long = "replication.heartbeat-interval", env = "REGATTA_REPLICATION_HEARTBEAT_INTERVAL", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub tail_heartbeat: Duration,
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
    /// Size at which the local log rolls to a new segment file, in bytes.
    #[arg(long = "log.segment-size", env = "REGATTA_LOG_SEGMENT_SIZE", default_value_t = 64 << 20)]
    pub segment_size: u64,
    /// Address the public gRPC API listens on.
    #[arg(
        long = "api.address",
        env = "REGATTA_API_ADDRESS",
        default_value = "http://127.0.0.1:8443"
    )]
    pub api_address: String,
    /// API address clients should use (default: --api.address).
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
    /// Bearer token required by the Maintenance service (unset: open).
    #[arg(
        long = "maintenance.token",
        env = "REGATTA_MAINTENANCE_TOKEN",
        hide_env_values = true
    )]
    pub maintenance_token: Option<String>,
    /// Address of the HTTP port: /healthz, /readyz, /metrics.
    #[arg(
        long = "rest.address",
        env = "REGATTA_REST_ADDRESS",
        default_value = "http://127.0.0.1:8079"
    )]
    pub rest_address: String,
    /// Directory for the local log and snapshots.
    #[arg(
        long = "data-dir",
        env = "REGATTA_DATA_DIR",
        default_value = "./regatta-edge-data"
    )]
    pub data_dir: PathBuf,
    /// Object storage to bootstrap from (`file:///dir`, `s3://bucket/prefix`, `gs://…`,
    /// `az://…`, as on the core); unset: snapshots come from the upstream itself.
    #[arg(long = "object-store", env = "REGATTA_OBJECT_STORE")]
    pub object_store: Option<String>,
    #[command(flatten)]
    pub object_store_flags: crate::objects::ObjectStoreFlags,
    #[command(flatten)]
    pub disk: crate::disk::DiskArgs,
    /// Replica id reported in response headers.
    #[arg(long = "node-id", env = "REGATTA_NODE_ID", default_value_t = 0)]
    pub node_id: u64,
    /// Name of this edge in logs and MemberList (default: `edge`).
    #[arg(long = "node-name", env = "REGATTA_NODE_NAME", default_value = "edge")]
    pub node_name: String,
    #[command(flatten)]
    pub connection_limits: crate::limits::LimitArgs,
}

/// Validated edge settings.
#[derive(Debug, Clone)]
pub struct EdgeSettings {
    pub args: EdgeArgs,
    pub api_address: ListenAddress,
    pub api_advertise: String,
    pub replication_address: ListenAddress,
    pub replication_advertise: String,
    pub rest_address: ListenAddress,
    pub limits: Limits,
    pub tokens: Tokens,
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
        if self.tail_heartbeat.is_zero() {
            bail!("--replication.heartbeat-interval must be positive");
        }
        if self.snapshot_entries == 0 {
            bail!("--edge.snapshot-entries must be positive");
        }
        self.connection_limits.validate()?;
        let advertise = |flag: &str, given: &Option<String>, listen: &str| -> Result<String> {
            let url = given.clone().unwrap_or_else(|| listen.to_string());
            ListenAddress::check_peer_url(flag, &url)?;
            Ok(url)
        };
        Ok(EdgeSettings {
            api_address: ListenAddress::parse("api.address", &self.api_address)?,
            api_advertise: advertise(
                "api.advertise-address",
                &self.api_advertise,
                &self.api_address,
            )?,
            replication_address: ListenAddress::parse(
                "replication.address",
                &self.replication_address,
            )?,
            replication_advertise: advertise(
                "replication.advertise-address",
                &self.replication_advertise,
                &self.replication_address,
            )?,
            rest_address: ListenAddress::parse("rest.address", &self.rest_address)?,
            limits: Limits {
                max_request_bytes: self.max_request_size,
                max_txn_ops: self.max_txn_ops.max(1),
                default_deadline: self.default_deadline,
            },
            tokens: Tokens {
                tables: self.tables_token.clone(),
                maintenance: self.maintenance_token.clone(),
            },
            args: self.clone(),
        })
    }
}
