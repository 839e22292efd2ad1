//! The HTTP port: `--rest.address`.

use anyhow::Result;

use crate::address::ListenAddress;

#[derive(clap::Args, Debug, Clone)]
pub struct RestArgs {
    /// Address of the HTTP port: /healthz, /readyz, /metrics.
    #[arg(
        long = "rest.address",
        env = "REGATTA_REST_ADDRESS",
        default_value = "http://127.0.0.1:8079"
    )]
    pub rest_address: String,
}

impl RestArgs {
    pub fn address(&self) -> Result<ListenAddress> {
        ListenAddress::parse("rest.address", &self.rest_address)
    }
}
