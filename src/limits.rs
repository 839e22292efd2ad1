//! Limits on the connections and streams of every gRPC listener of a node (API, Raft,
//! replication): one flag group, shared by `regatta core` and `regatta edge`.
//!
//! The names of the first two come from Regatta (`--api.max-concurrent-connections`,
//! `--api.max-concurrent-streams`, where 0 also means no limit); Regatta defaults both to
//! no limit, which lets one client hold every file descriptor or open unbounded streams,
//! so here they default to finite values (docs/operations.md, "Limits").

use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;
use regatta_api::{
    listen::{ListenLimits, Writes},
    metrics::{ConnectionMetrics, StreamMetrics},
    range_stream::StreamLimits,
};

use crate::address::ListenAddress;

/// Connection and stream limits of the gRPC listeners.
#[derive(Args, Debug, Clone)]
pub struct LimitArgs {
    /// Most connections each gRPC listener (API, Raft, replication) holds at once; one more
    /// is closed as soon as it is accepted. 0: no limit. Keep it under the process's file
    /// descriptor limit (`ulimit -n`).
    #[arg(
        long = "api.max-concurrent-connections",
        env = "REGATTA_API_MAX_CONCURRENT_CONNECTIONS",
        default_value_t = 10_000
    )]
    pub max_connections: usize,
    /// Most HTTP/2 streams (calls) open at once on one connection, advertised to clients
    /// in the server's SETTINGS (MAX_CONCURRENT_STREAMS); clients queue the calls beyond it.
    /// 0: no limit.
    #[arg(
        long = "api.max-concurrent-streams",
        env = "REGATTA_API_MAX_CONCURRENT_STREAMS",
        default_value_t = 1024
    )]
    pub max_streams: u32,
    /// How long a new connection has to send the HTTP/2 preface and first SETTINGS frame
    /// before it is closed (slow or silent peers). 0: no limit.
    #[arg(long = "api.handshake-timeout", env = "REGATTA_API_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub handshake_timeout: Duration,
    /// A connection with no call in flight and none started for this long is closed
    /// (after between one and two such periods). 0: never.
    #[arg(long = "api.idle-timeout", env = "REGATTA_API_IDLE_TIMEOUT", default_value = "5m", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// A connection the server has received nothing from for this long is sent an HTTP/2
    /// PING. 0: no pings.
    #[arg(long = "api.keepalive-interval", env = "REGATTA_API_KEEPALIVE_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub keepalive_interval: Duration,
    /// A peer that does not answer a PING within this long is disconnected.
    #[arg(long = "api.keepalive-timeout", env = "REGATTA_API_KEEPALIVE_TIMEOUT", default_value = "20s", value_parser = humantime::parse_duration)]
    pub keepalive_timeout: Duration,
    /// Most IterateRange streams open at once on the node; one more is refused with
    /// ResourceExhausted. 0: no limit.
    #[arg(
        long = "api.max-iterate-streams",
        env = "REGATTA_API_MAX_ITERATE_STREAMS",
        default_value_t = 512
    )]
    pub max_iterate_streams: usize,
    /// An IterateRange stream whose client takes nothing for this long is cancelled
    /// (DeadlineExceeded), releasing the read view it holds.
    #[arg(long = "api.stream-stall-timeout", env = "REGATTA_API_STREAM_STALL_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub stream_stall_timeout: Duration,
}

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
    /// Checks the values (the stall timeout must be positive, a keepalive timeout too when
    /// pings are sent).
    pub fn validate(&self) -> Result<()> {
        if self.stream_stall_timeout.is_zero() {
            bail!("--api.stream-stall-timeout must be positive");
        }
        if !self.keepalive_interval.is_zero() && self.keepalive_timeout.is_zero() {
            bail!("--api.keepalive-timeout must be positive when --api.keepalive-interval is set");
        }
        Ok(())
    }

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
    ) -> Result<impl futures::Stream<Item = std::io::Result<regatta_api::listen::Connection>>> {
        let addr = crate::core::tcp(addr)?;
        regatta_api::listen::bind(
            addr,
            writes,
            self.args.listen(),
            self.metrics.listener(name),
        )
        .map_err(|e| anyhow::anyhow!("listening on {addr}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

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
