//! The option groups of the server commands, each declared once and flattened
//! (`#[command(flatten)]`) into every command that takes it:
//!
//! | group | flags | taken by |
//! |---|---|---|
//! | [`api`] | `--api.*` (addresses, request and connection limits), `--tables.token`, `--maintenance.token` | core, edge; dev: the address |
//! | [`rest`] | `--rest.address` | core, edge, dev |
//! | [`replication`] | `--replication.address`, `.advertise-address`, `.heartbeat-interval`, TLS (`.cert-filename`, `.key-filename`, `.ca-filename`, `.client-cert-auth`) | core, edge; dev: the address |
//! | [`raft`] | `--raft.address`; `--raft.listen-address`, heartbeat and election timing, `--raft.cert-filename`, `.key-filename`, `.ca-filename` (mutual TLS) | core, dev; all but the address: core |
//! | [`services`] | `--tables.enabled`, `--maintenance.enabled`, `--replication.enabled`; [`watch`]: `--watch.*` | core, edge |
//! | [`storage`] | `--data-dir`, `--min-free-disk`, `--log.segment-size` | core, edge |
//! | [`object_store`] | `--object-store` and its connection settings | core, edge |
//! | [`log`] | `--log.level`, `--log.format`; Regatta's `--log-level`, `--dev-mode` | core, edge, dev |
//! | [`runtime`] | `--runtime.worker-threads` | core, edge, dev |
//! | [`regatta`] | Regatta's flags without a meaning here, accepted with a warning (`--memberlist.*`, `--storage.*-cache-size`, `--raft.wal-dir`…); `--memberlist.node-name` (= `--node-name`), `--raft.node-host-dir` (the data directory without `--data-dir`); on an edge also Regatta's follower flags (`--raft.*`, `--replication.poll-interval`…), `--raft.node-id` = `--node-id` | core, edge; the follower's: edge |
//!
//! Options only one command has (`--raft.*` of a core, `--edge.*` and the upstream of an
//! edge) stay with that command's arguments (`core/args.rs`, `edge/args.rs`). Every option
//! can be set by its flag, its `REGATTA_*` environment variable, or its long name in the
//! config file (`config.rs`); `contract.rs` holds that contract fixed.

pub mod api;
pub mod log;
pub mod object_store;
pub mod raft;
pub mod regatta;
pub mod replication;
pub mod rest;
pub mod runtime;
pub mod services;
pub mod storage;
pub mod watch;

#[cfg(test)]
mod contract;

use anyhow::Result;

use crate::address::ListenAddress;

/// `--config`: the file the other options can also come from.
#[derive(clap::Args, Debug, Clone)]
pub struct ConfigFileArg {
    /// Config file with any of these options, YAML, JSON or TOML by its extension (flags and
    /// environment variables take precedence). Without it, the first of config.json,
    /// config.toml, config.yaml, config.yml in /etc/regatta, /config, $HOME/.regatta, . is
    /// read.
    #[arg(long = "config", id = "config_file", env = "REGATTA_CONFIG")]
    pub config: Option<String>,
}

/// The URL peers or clients reach a listener at: `given`, else the listen address itself;
/// `flag` names the option in errors.
pub fn advertised(flag: &str, given: Option<&String>, listen: &str) -> Result<String> {
    let url = given.map_or_else(|| listen.to_string(), Clone::clone);
    ListenAddress::check_peer_url(flag, &url)?;
    Ok(url)
}
