//! Options of `regatta edge`, and their validation into [`EdgeSettings`].

use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;

use crate::{
    address::ListenAddress,
    flags::{
        api::{ApiArgs, ApiSettings},
        object_store::ObjectStoreArgs,
        replication::{ReplicationArgs, ReplicationSettings},
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
        Ok(EdgeSettings {
            api: self.api.validate()?,
            replication: self.replication.validate()?,
            rest_address: self.rest.address()?,
            args: self.clone(),
        })
    }
}
