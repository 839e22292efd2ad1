//! `regatta dev`: the whole store on one machine, for trying it out and for development.
//!
//! One single-node core with its data, its log and a local-directory object store under one
//! folder. Addresses are printed on start; Ctrl-C stops it cleanly and a second start picks
//! up where the first stopped.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser};

use crate::core::{self, CoreArgs};

#[derive(Args, Debug, Clone)]
pub struct DevArgs {
    /// Folder for everything the store keeps (created if missing).
    #[arg(long, env = "REGATTA_DEV_DIR", default_value = "./regatta-dev")]
    pub dir: PathBuf,
    /// Address of the public gRPC API.
    #[arg(
        long = "api.address",
        env = "REGATTA_API_ADDRESS",
        default_value = "http://127.0.0.1:8443"
    )]
    pub api_address: String,
    /// Address of the HTTP port (/healthz, /readyz, /metrics).
    #[arg(
        long = "rest.address",
        env = "REGATTA_REST_ADDRESS",
        default_value = "http://127.0.0.1:8079"
    )]
    pub rest_address: String,
    /// Address of the core's Raft transport.
    #[arg(
        long = "raft.address",
        env = "REGATTA_RAFT_ADDRESS",
        default_value = "http://127.0.0.1:5012"
    )]
    pub raft_address: String,
    /// Address of the log-tail service.
    #[arg(
        long = "replication.address",
        env = "REGATTA_REPLICATION_ADDRESS",
        default_value = "http://127.0.0.1:8444"
    )]
    pub replication_address: String,
}

/// Parses core options exactly as `regatta core` would, so defaults stay in one place.
#[derive(Parser)]
struct CoreOptions {
    #[command(flatten)]
    args: CoreArgs,
}

pub async fn run(dev: DevArgs) -> Result<()> {
    std::fs::create_dir_all(&dev.dir).with_context(|| format!("creating {}", dev.dir.display()))?;
    let dir = std::path::absolute(&dev.dir).context("resolving --dir")?;
    let core_dir = dir.join("core");
    let objects = dir.join("objects");
    let args = CoreOptions::try_parse_from([
        "regatta-dev".to_string(),
        "--raft.node-id=1".into(),
        format!("--raft.address={}", dev.raft_address),
        format!("--raft.initial-members=1={}", dev.raft_address),
        format!("--api.address={}", dev.api_address),
        format!("--rest.address={}", dev.rest_address),
        format!("--replication.address={}", dev.replication_address),
        format!("--data-dir={}", core_dir.display()),
        format!("--object-store=file://{}", objects.display()),
    ])
    .context("assembling the core's options")?
    .args;
    println!("Regatta dev: one core node, data under {}", dir.display());
    println!("  API (gRPC)      {}", dev.api_address);
    println!(
        "  HTTP            {} (/healthz /readyz /metrics)",
        dev.rest_address
    );
    println!("  Raft            {}", dev.raft_address);
    println!("  Object store    file://{}", objects.display());
    println!(
        "Try: regatta table create demo && regatta kv put demo hello world && regatta kv get demo hello"
    );
    println!("Ctrl-C stops it.");
    core::run(args).await
}
