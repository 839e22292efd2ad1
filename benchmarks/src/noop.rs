//! `regatta-bench noop-server`: a gRPC server whose one unary method does nothing.
//!
//! `compare` starts it as a separate process on a loopback port — like every server it
//! measures, so client and server pay the same process boundary, syscalls and scheduling —
//! and drives it exactly like a Regatta read. Its rate is the ceiling of the transport
//! (tonic over HTTP/2 on loopback TCP) on this machine: how close a read path comes to it
//! says how much the store itself costs.

use std::net::SocketAddr;

use anyhow::{Context, Result};

use crate::wire::noop::{
    Nothing,
    noop_server::{Noop, NoopServer},
};

/// Settings of the no-op server.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:50099")]
    address: SocketAddr,
}

/// Answers every call at once with an empty message.
struct Empty;

#[tonic::async_trait]
impl Noop for Empty {
    async fn call(
        &self,
        _request: tonic::Request<Nothing>,
    ) -> Result<tonic::Response<Nothing>, tonic::Status> {
        Ok(tonic::Response::new(Nothing {}))
    }
}

/// Serves until SIGINT or SIGTERM.
pub fn run(args: Args) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("building the tokio runtime")?;
    runtime.block_on(async {
        let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("listening for SIGTERM")?;
        let shutdown = async move {
            tokio::select! {
                _ = sigterm.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        };
        tonic::transport::Server::builder()
            .add_service(NoopServer::new(Empty))
            .serve_with_shutdown(args.address, shutdown)
            .await
            .with_context(|| format!("serving on {}", args.address))
    })
}
