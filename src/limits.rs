//! Limits on the connections and streams of every gRPC listener of a node (API, Raft,
//! replication), set by the flag group [`LimitArgs`] (in `flags/api.rs`).
//!
//! The names of the first two come from Regatta (`--api.max-concurrent-connections`,
//! `--api.max-concurrent-streams`, where 0 also means no limit); Regatta defaults both to
//! no limit, which lets one client hold every file descriptor or open unbounded streams,
//! so here they default to finite values (docs/operations.md, "Limits").

use anyhow::Result;
use regatta_api::{
    listen::{ListenLimits, Writes},
    metrics::{ConnectionMetrics, StreamMetrics},
    range_stream::StreamLimits,
};

use crate::address::ListenAddress;
pub use crate::flags::api::LimitArgs;

/// Validated limits, and the metrics they report to.
#[derive(Clone)]
pub struct Limits {
    pub args: LimitArgs,
    pub metrics: ConnectionMetrics,
    pub streams: StreamLimits,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits").field("args", &self.args).finish()
    }
}

fn nonzero<T: PartialEq + Default>(v: T) -> Option<T> {
    (v != T::default()).then_some(v)
}

impl LimitArgs {
    /// The limits, registering their metrics in `registry`.
    pub fn build(&self, registry: &prometheus::Registry) -> Result<Limits> {
        self.validate()?;
        Ok(Limits {
            args: self.clone(),
            metrics: ConnectionMetrics::register(registry)?,
            streams: StreamLimits::new(
                nonzero(self.max_iterate_streams),
                self.stream_stall_timeout,
                StreamMetrics::register(registry)?,
            ),
        })
    }

    fn listen(&self) -> ListenLimits {
        ListenLimits {
            max_connections: nonzero(self.max_connections),
            handshake_timeout: nonzero(self.handshake_timeout),
            idle_timeout: nonzero(self.idle_timeout),
        }
    }
}

impl Limits {
    /// A tonic server builder with the HTTP/2 limits set: stream limit and keepalive.
    pub fn server(&self) -> tonic::transport::Server {
        let a = &self.args;
        tonic::transport::Server::builder()
            .max_concurrent_streams(nonzero(a.max_streams))
            .http2_keepalive_interval(nonzero(a.keepalive_interval))
            .http2_keepalive_timeout(Some(a.keepalive_timeout))
    }

    /// Binds a gRPC server's listen address now, so a port in use fails start-up; its
    /// connections are held to these limits and reported as listener `name` (`api`,
    /// `raft` or `replication`).
    pub fn incoming(
        &self,
        addr: &ListenAddress,
        writes: Writes,
        name: &'static str,
    ) -> Result<impl futures::Stream<Item = std::io::Result<regatta_api::listen::Connection>> + use<>>
    {
        let addr = addr.tcp_only(name)?;
        regatta_api::listen::bind(
            addr,
            writes,
            self.args.listen(),
            self.metrics.listener(name),
        )
        .map_err(|e| anyhow::anyhow!("listening on {addr}: {e}"))
    }

    /// As [`Self::incoming`] for an `https://` address, serving TLS under `tls`.
    pub fn incoming_tls(
        &self,
        addr: std::net::SocketAddr,
        writes: Writes,
        name: &'static str,
        tls: std::sync::Arc<rustls::ServerConfig>,
    ) -> Result<
        impl futures::Stream<
            Item = std::io::Result<
                regatta_api::listen::Connection<
                    regatta_api::listen::TlsStream<tokio::net::TcpStream>,
                >,
            >,
        > + use<>,
    > {
        regatta_api::listen::bind_tls(
            addr,
            writes,
            self.args.listen(),
            self.metrics.listener(name),
            tls,
        )
        .map_err(|e| anyhow::anyhow!("listening on {addr}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::time::Duration;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        limits: LimitArgs,
    }

    #[test]
    fn zero_turns_a_limit_off_and_nonsense_is_refused() {
        let cli = Cli::parse_from([
            "x",
            "--api.max-concurrent-connections=0",
            "--api.idle-timeout=0s",
        ]);
        let listen = cli.limits.listen();
        assert_eq!(listen.max_connections, None);
        assert_eq!(listen.idle_timeout, None);
        assert_eq!(listen.handshake_timeout, Some(Duration::from_secs(10)));
        assert!(
            Cli::parse_from(["x", "--api.stream-stall-timeout=0s"])
                .limits
                .validate()
                .is_err()
        );
        assert!(Cli::try_parse_from(["x", "--api.max-concurrent-streams=-1"]).is_err());
    }
}
