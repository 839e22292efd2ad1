//! `regatta dev`: the whole store on one machine, for trying it out and for development.
//!
//! One single-node core and one edge following it, with their data, logs and a
//! local-directory object store under one folder. Addresses are printed on start; Ctrl-C
//! stops both cleanly and a second start picks up where the first stopped.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser};

use crate::{
    core::{self, CoreArgs},
    edge::{self, EdgeArgs},
    flags::{
        api::ApiAddressArg, raft::RaftAddressArg, replication::ReplicationAddressArg,
        rest::RestAddressArg,
    },
};

#[derive(Args, Debug, Clone)]
#[command(mut_arg("raft_address", |a| a
    .help("Address of the core's Raft transport (host:port or URL): where it listens, and \
           the address of its only member")))]
pub struct DevArgs {
    /// Folder for everything the store keeps (created if missing).
    #[arg(long, env = "REGATTA_DEV_DIR", default_value = "./regatta-dev")]
    pub dir: PathBuf,
    // The core's public gRPC API.
    #[command(flatten)]
    pub api: ApiAddressArg,
    // The core's HTTP port.
    #[command(flatten)]
    pub rest: RestAddressArg,
    // The core's Raft transport.
    #[command(flatten)]
    pub raft: RaftAddressArg,
    // The core's log-tail service.
    #[command(flatten)]
    pub replication: ReplicationAddressArg,
    /// Address of the edge's public gRPC API.
    #[arg(
        long = "edge.api-address",
        env = "REGATTA_EDGE_API_ADDRESS",
        default_value = "http://127.0.0.1:9443"
    )]
    pub edge_api_address: String,
    /// Address of the edge's HTTP port.
    #[arg(
        long = "edge.rest-address",
        env = "REGATTA_EDGE_REST_ADDRESS",
        default_value = "http://127.0.0.1:9079"
    )]
    pub edge_rest_address: String,
    /// Address of the edge's log-tail service.
    #[arg(
        long = "edge.replication-address",
        env = "REGATTA_EDGE_REPLICATION_ADDRESS",
        default_value = "http://127.0.0.1:9444"
    )]
    pub edge_replication_address: String,
    /// Start only the core, no edge.
    #[arg(long)]
    pub no_edge: bool,
}

/// Parses core options exactly as `regatta core` would, so defaults stay in one place.
#[derive(Parser)]
struct CoreOptions {
    #[command(flatten)]
    args: CoreArgs,
}

/// Parses edge options exactly as `regatta edge` would.
#[derive(Parser)]
struct EdgeOptions {
    #[command(flatten)]
    args: EdgeArgs,
}

pub async fn run(dev: DevArgs) -> Result<()> {
    let api_address = &dev.api.api_address;
    let rest_address = &dev.rest.rest_address;
    let raft_address = &dev.raft.raft_address;
    let replication_address = &dev.replication.replication_address;
    std::fs::create_dir_all(&dev.dir).with_context(|| format!("creating {}", dev.dir.display()))?;
    let dir = std::path::absolute(&dev.dir).context("resolving --dir")?;
    let objects = dir.join("objects");
    let core = CoreOptions::try_parse_from([
        "regatta-dev".to_string(),
        "--raft.node-id=1".into(),
        format!("--raft.address={}", raft_address),
        format!("--raft.initial-members=1={}", raft_address),
        format!("--api.address={}", api_address),
        format!("--rest.address={}", rest_address),
        format!("--replication.address={}", replication_address),
        format!("--data-dir={}", dir.join("core").display()),
        format!("--object-store=file://{}", objects.display()),
    ])
    .context("assembling the core's options")?
    .args;
    println!("Regatta dev: data under {}", dir.display());
    println!("  core API (gRPC)   {}", api_address);
    println!(
        "  core HTTP         {} (/healthz /readyz /metrics)",
        rest_address
    );
    println!("  core Raft         {}", raft_address);
    println!("  core log tail     {}", replication_address);
    println!("  object store      file://{}", objects.display());
    let try_it =
        "regatta table create demo && regatta kv put demo hello world && regatta kv get demo hello";
    if dev.no_edge {
        println!("Try: {try_it}");
        println!("Ctrl-C stops it.");
        return core::run(core).await;
    }
    let edge = EdgeOptions::try_parse_from([
        "regatta-dev".to_string(),
        format!("--replication.leader-address={}", replication_address),
        format!("--api.address={}", dev.edge_api_address),
        format!("--rest.address={}", dev.edge_rest_address),
        format!("--replication.address={}", dev.edge_replication_address),
        format!("--data-dir={}", dir.join("edge").display()),
        format!("--object-store=file://{}", objects.display()),
    ])
    .context("assembling the edge's options")?
    .args;
    println!("  edge API (gRPC)   {}", dev.edge_api_address);
    println!("  edge HTTP         {}", dev.edge_rest_address);
    println!("Try: {try_it} --address {}", dev.edge_api_address);
    println!("Ctrl-C stops both.");
    tokio::try_join!(core::run(core), edge::run(edge))?;
    Ok(())
}
