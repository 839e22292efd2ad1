//! The point-read load of `core-read` and `edge-read`: workers that each keep one Range on a
//! uniformly random preloaded key in flight, through either gRPC client, and check every
//! answer (a missing key or a value of the wrong size counts as an error).

use std::{sync::Arc, time::Duration};

use anyhow::Result;
use bytes::Bytes;
use regatta_proto::regatta::v1::{RangeRequest, RangeResponse, kv_client::KvClient};
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

use crate::{
    cluster::{self, Counters, FastRng},
    raw_grpc::{GrpcMethod, RawChannel},
};

/// Which gRPC client drives the load.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    /// [`crate::raw_grpc`]: about half the loader CPU per read of tonic's client, which
    /// leaves that CPU to the server measured on the same machine.
    Raw,
    /// tonic's generated client, as applications use it.
    Tonic,
}

impl ClientKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientKind::Raw => "raw",
            ClientKind::Tonic => "tonic",
        }
    }
}

const RANGE: &str = "/regatta.v1.KV/Range";

/// One connection's Range client; clones share the connection.
#[derive(Clone)]
pub enum RangeClient {
    Tonic(KvClient<Channel>),
    Raw(RawChannel, GrpcMethod),
}

impl RangeClient {
    /// `connections` clients (one HTTP/2 connection each) spread round-robin over
    /// `addresses` (`http://ip:port`).
    pub async fn pool(
        kind: ClientKind,
        addresses: &[&str],
        connections: usize,
    ) -> Result<Vec<RangeClient>> {
        anyhow::ensure!(connections > 0, "--connections must be at least 1");
        anyhow::ensure!(!addresses.is_empty(), "no address to read from");
        let mut pool = Vec::with_capacity(connections);
        for i in 0..connections {
            let address = addresses[i % addresses.len()];
            pool.push(match kind {
                ClientKind::Tonic => {
                    let endpoint = Endpoint::from_shared(address.to_string())?
                        .tcp_nodelay(true)
                        .connect_timeout(Duration::from_secs(10));
                    let channel = crate::tls::dialer(address)?.connect(endpoint).await?;
                    RangeClient::Tonic(KvClient::new(channel))
                }
                ClientKind::Raw => {
                    let channel = RawChannel::connect(address).await?;
                    let range = channel.method(RANGE)?;
                    RangeClient::Raw(channel, range)
                }
            });
        }
        Ok(pool)
    }

    async fn range(
        &mut self,
        request: RangeRequest,
        timeout: Duration,
    ) -> Result<RangeResponse, String> {
        match self {
            RangeClient::Tonic(kv) => {
                let mut request = tonic::Request::new(request);
                request.set_timeout(timeout);
                kv.range(request)
                    .await
                    .map(tonic::Response::into_inner)
                    .map_err(|s| s.to_string())
            }
            RangeClient::Raw(channel, range) => channel
                .unary(range, &request, timeout)
                .await
                .map_err(|e| e.to_string()),
        }
    }
}

/// What every read worker shares.
pub struct ReadLoad {
    pub table: Bytes,
    pub keys: Vec<Bytes>,
    pub value_size: usize,
    pub linearizable: bool,
    pub measure_from: Instant,
    pub end: Instant,
    pub timeout: Duration,
    pub counters: Counters,
}

/// One read worker: Ranges on random preloaded keys, one at a time, until the load ends.
pub async fn worker(
    id: u64,
    mut client: RangeClient,
    load: Arc<ReadLoad>,
) -> Result<hdrhistogram::Histogram<u64>> {
    let mut histogram = cluster::latency_histogram()?;
    let mut rng = FastRng::new(id + 1);
    let keys = load.keys.len() as u64;
    loop {
        let started = Instant::now();
        if started >= load.end {
            break;
        }
        let request = RangeRequest {
            table: load.table.clone(),
            key: load.keys[rng.below(keys) as usize].clone(),
            linearizable: load.linearizable,
            ..Default::default()
        };
        match client.range(request, load.timeout).await {
            Ok(response) => {
                let found =
                    matches!(response.kvs.as_slice(), [kv] if kv.value.len() == load.value_size);
                if found {
                    load.counters
                        .record_ok(&mut histogram, started, load.measure_from);
                } else {
                    load.counters
                        .record_error(format!("a preloaded key was missing: {response:?}"));
                }
            }
            Err(status) => {
                load.counters.record_error(&status);
                cluster::back_off().await;
            }
        }
    }
    Ok(histogram)
}
