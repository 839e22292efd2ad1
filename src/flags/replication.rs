//! The log-tail service a node serves (a core to edges, an edge to downstream edges):
//! `--replication.address`, `--replication.advertise-address`,
//! `--replication.heartbeat-interval`. What an edge follows (`--replication.leader-address`
//! and its staleness and lag) is the edge's own, in `edge/args.rs`.

use std::time::Duration;

use anyhow::{Result, bail};

use crate::address::ListenAddress;

#[derive(clap::Args, Debug, Clone)]
pub struct ReplicationAddressArg {
    /// Address the log-tail service listens on, for edges (of a core) or downstream edges
    /// (of an edge).
    #[arg(
        long = "replication.address",
        env = "REGATTA_REPLICATION_ADDRESS",
        default_value = "http://127.0.0.1:8444"
    )]
    pub replication_address: String,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ReplicationArgs {
    #[command(flatten)]
    pub address: ReplicationAddressArg,
    /// Replication address edges should use (default: --replication.address).
    #[arg(
        long = "replication.advertise-address",
        env = "REGATTA_REPLICATION_ADVERTISE_ADDRESS"
    )]
    pub replication_advertise: Option<String>,
    /// How often an idle log-tail stream carries a heartbeat to the edges following it.
    #[arg(long = "replication.heartbeat-interval", env = "REGATTA_REPLICATION_HEARTBEAT_INTERVAL", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub tail_heartbeat: Duration,
}

/// Checked log-tail settings.
#[derive(Debug, Clone)]
pub struct ReplicationSettings {
    pub address: ListenAddress,
    pub advertise: String,
    pub heartbeat: Duration,
}

impl ReplicationArgs {
    pub fn validate(&self) -> Result<ReplicationSettings> {
        if self.tail_heartbeat.is_zero() {
            bail!("--replication.heartbeat-interval must be positive");
        }
        let listen = &self.address.replication_address;
        Ok(ReplicationSettings {
            address: ListenAddress::parse("replication.address", listen)?,
            advertise: super::advertised(
                "replication.advertise-address",
                self.replication_advertise.as_ref(),
                listen,
            )?,
            heartbeat: self.tail_heartbeat,
        })
    }
}
