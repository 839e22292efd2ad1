//! What every node serves the same way, assembled once for `regatta core` and
//! `regatta edge`: the metrics registry and the connection limits of its listeners, the
//! public gRPC API (KV, Tables, Cluster, Maintenance, Admin on a core, and server
//! reflection) with its request limits, the internal gRPC ports (Raft, log tail), the HTTP
//! port (health, readiness, metrics), and the stop: on SIGTERM or Ctrl-C every server stops
//! accepting, in-flight calls get [`shutdown::SERVER_GRACE`] to finish, and the node's `run`
//! shuts the rest down in order.

use std::{collections::BTreeMap, sync::Arc};

use anyhow::{Context, Result};
use futures::{FutureExt, future::BoxFuture};
use regatta_api::{
    activity::TrackRequests, cluster::ClusterService, kv::KvService, listen::Writes,
    maintenance::MaintenanceService, metrics::ApiMetrics, node::NodeContext,
    raft_network::MAX_RAFT_MESSAGE_BYTES, tables::TablesService, watch::WatchService,
};
use regatta_core::admin::AdminService;
use regatta_proto::{
    maintenance::v1::maintenance_server::MaintenanceServer,
    regatta::{
        admin::v1::admin_server::AdminServer,
        tail::v1::tail_server::TailServer,
        v1::{cluster_server::ClusterServer, kv_server::KvServer, tables_server::TablesServer},
        watch::v1::watch_server::WatchServer,
    },
};
use regatta_replication::TailService;
use regatta_tls::TlsMetrics;
use tokio_util::sync::CancellationToken;
use tonic::{codec::CompressionEncoding, service::Routes};

use crate::{
    address::ListenAddress,
    flags::{api::LimitArgs, services::ServiceArgs},
    limits::Limits,
    rest, shutdown,
};

/// A server (or anything else the node runs until it stops), bound and ready to be run.
pub type Served = BoxFuture<'static, Result<()>>;

/// The parts every node's servers share.
pub struct NodeServer {
    /// Every metric of the node, served at `/metrics`.
    pub registry: prometheus::Registry,
    /// Cancelled on the stop signal.
    pub shutdown: CancellationToken,
    api_metrics: ApiMetrics,
    tls_metrics: TlsMetrics,
    limits: Limits,
}

impl NodeServer {
    /// Registers the metrics every node has and sets the connection limits of its
    /// listeners.
    pub fn new(connection_limits: &LimitArgs) -> Result<Self> {
        let registry = prometheus::Registry::new();
        crate::metrics::runtime_workers(&registry)?;
        crate::metrics::process(&registry)?;
        let api_metrics = ApiMetrics::register(&registry)?;
        let tls_metrics = TlsMetrics::register(&registry)?;
        let limits = connection_limits.build(&registry)?;
        Ok(Self {
            registry,
            shutdown: shutdown::token(),
            api_metrics,
            tls_metrics,
            limits,
        })
    }

    /// The public API on `address`: KV (with the stream limits), Watch (its history sized
    /// by `--watch.history-bytes`), Tables and Maintenance
    /// (unless `services` switches them off: then calls to them answer UNIMPLEMENTED),
    /// Cluster (showing `config`), `admin` when given, and server reflection. Requests are
    /// held to `ctx.limits`. Registers Regatta's per-table series of the node's state.
    pub fn api_server(
        &self,
        address: &ListenAddress,
        ctx: &NodeContext,
        config: BTreeMap<String, String>,
        admin: Option<AdminService>,
        services: &ServiceArgs,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Result<Served> {
        crate::metrics::regatta_table_series(
            &self.registry,
            ctx.materializer.clone(),
            ctx.role.clone(),
        )?;
        let max = ctx.limits.max_request_bytes;
        let kv = KvServer::new(
            KvService::new(ctx.clone()).with_stream_limits(self.limits.streams.clone()),
        )
        .max_decoding_message_size(max)
        .max_encoding_message_size(usize::MAX)
        .accept_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Zstd);
        let tables = TablesServer::new(TablesService::new(ctx.clone()))
            .max_decoding_message_size(max)
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd);
        let cluster = ClusterServer::new(ClusterService::new(ctx.clone(), config))
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd);
        let maintenance = MaintenanceServer::new(MaintenanceService::new(ctx.clone()))
            .max_decoding_message_size(max)
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd);
        // Reflection in both versions: v1, and v1alpha for the clients that speak only it
        // (grpcurl before 1.9, Python's grpcio-reflection, many GUI clients).
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(regatta_proto::FILE_DESCRIPTOR_SET)
            .build_v1()
            .context("building the reflection service")?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(regatta_proto::FILE_DESCRIPTOR_SET)
            .build_v1alpha()
            .context("building the reflection service (v1alpha)")?;
        ctx.materializer
            .history()
            .set_budget(services.watch.history_bytes);
        let watch = WatchServer::new(
            WatchService::new(ctx.clone(), services.watch.settings())
                .with_stop(self.shutdown.clone())
                .with_metrics(regatta_api::metrics::WatchMetrics::register(
                    &self.registry,
                    ctx.materializer.clone(),
                )?),
        )
        .max_decoding_message_size(max)
        .max_encoding_message_size(usize::MAX)
        .accept_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Zstd);
        let mut routes = Routes::new(kv).add_service(cluster).add_service(watch);
        if services.tables {
            routes = routes.add_service(tables);
        } else {
            tracing::info!("--tables.enabled=false: the Tables service is not served");
        }
        if let Some(admin) = admin {
            routes = routes.add_service(AdminServer::new(admin));
        }
        if services.maintenance {
            routes = routes.add_service(maintenance);
        } else {
            tracing::info!("--maintenance.enabled=false: the Maintenance service is not served");
        }
        let routes = routes
            .add_service(reflection)
            .add_service(reflection_v1alpha);
        let token = self.shutdown.clone();
        let stop = async move { token.cancelled().await };
        let router = self
            .limits
            .server()
            .layer(self.api_metrics.layer())
            .layer(TrackRequests)
            .layer(regatta_api::snappy::SnappyLayer::new(max))
            .add_routes(routes);
        let server = match serves_tls(address, "api", tls)? {
            Some((addr, tls)) => {
                let incoming = self
                    .limits
                    .incoming_tls(addr, Writes::Coalesced, "api", tls)?;
                router.serve_with_incoming_shutdown(incoming, stop).boxed()
            }
            None => {
                let incoming = self.limits.incoming(address, Writes::Coalesced, "api")?;
                router.serve_with_incoming_shutdown(incoming, stop).boxed()
            }
        };
        Ok(async move { server.await.context("API server") }.boxed())
    }

    /// A port only nodes talk to (`name`: `raft` or `replication`), serving `routes`;
    /// `what` names it in errors.
    /// `what` names it in errors. An `https://` address serves TLS under `tls`.
    pub fn internal_server(
        &self,
        address: &ListenAddress,
        name: &'static str,
        what: &'static str,
        routes: Routes,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Result<Served> {
        let token = self.shutdown.clone();
        let stop = async move { token.cancelled().await };
        let router = regatta_api::raft_network::internal_server(self.limits.server())
            .layer(self.api_metrics.layer())
            .layer(TrackRequests)
            .add_routes(routes);
        let server = match serves_tls(address, name, tls)? {
            Some((addr, tls)) => {
                let incoming = self
                    .limits
                    .incoming_tls(addr, Writes::Immediate, name, tls)?;
                router.serve_with_incoming_shutdown(incoming, stop).boxed()
            }
            None => {
                let incoming = self.limits.incoming(address, Writes::Immediate, name)?;
                router.serve_with_incoming_shutdown(incoming, stop).boxed()
            }
        };
        Ok(async move { server.await.context(what) }.boxed())
    }

    /// The log-tail service on `address`, for the edges that follow this node; TLS under
    /// `tls` when the address is `https://`.
    pub fn tail_server(
        &self,
        address: &ListenAddress,
        service: TailService,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Result<Served> {
        let tail = TailServer::new(service)
            .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES);
        self.internal_server(
            address,
            "replication",
            "log-tail server",
            Routes::new(tail),
            tls,
        )
    }

    /// The TLS configuration of the `port` (`api`, `raft`, `replication`, `rest`) from its
    /// flag group's `settings`, its certificate's expiry exported; every file is read and
    /// checked now, so bad files fail start-up naming the flag and the file.
    pub fn server_tls(
        &self,
        settings: Option<&regatta_tls::ServerSettings>,
        port: &str,
    ) -> Result<Option<Arc<rustls::ServerConfig>>> {
        settings
            .map(|s| regatta_tls::server_config(s, port, Some(&self.tls_metrics)))
            .transpose()
            .map_err(anyhow::Error::from)
    }

    /// The TLS client configuration the node dials `port` with (Raft peers, an edge's
    /// upstream), its client certificate's expiry exported.
    pub fn client_tls(
        &self,
        settings: &regatta_tls::ClientSettings,
        port: &str,
    ) -> Result<Arc<rustls::ClientConfig>> {
        Ok(regatta_tls::client_config(
            settings,
            port,
            Some(&self.tls_metrics),
        )?)
    }

    /// The HTTP port: `/healthz`, `/readyz` (answered by `readiness`), `/metrics`; over TLS
    /// on an `https://` address (its certificate's expiry exported like the gRPC ports').
    pub fn rest_server(
        &self,
        settings: &crate::flags::rest::RestSettings,
        readiness: rest::Readiness,
    ) -> Result<Served> {
        let tls = serves_tls(
            &settings.address,
            "rest",
            self.server_tls(settings.tls.as_ref(), "rest")?,
        )?
        .map(|(_, tls)| tls);
        Ok(rest::serve(
            settings.address.tcp_only("rest")?,
            self.registry.clone(),
            readiness,
            self.shutdown.clone(),
            tls,
        )
        .boxed())
    }

    /// Runs `servers` until one fails, all stop, or the grace period after the stop signal
    /// ends; then cancels the shutdown token, so the node's other tasks stop too.
    pub async fn serve(&self, servers: Vec<Served>) -> Result<()> {
        let served = shutdown::serve_until_grace(
            &self.shutdown,
            futures::future::try_join_all(servers).map(|r| r.map(drop)),
        )
        .await;
        self.shutdown.cancel();
        served
    }
}

/// Where a server on `address` serves TLS: an `https://` address, with `tls` the
/// configuration its flag group built (`--{port}.cert-filename` and `--{port}.key-filename`).
/// `None`: plaintext.
fn serves_tls(
    address: &ListenAddress,
    port: &str,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<Option<(std::net::SocketAddr, Arc<rustls::ServerConfig>)>> {
    match (address, tls) {
        (ListenAddress::Tcp { addr, tls: true }, Some(tls)) => Ok(Some((*addr, tls))),
        (ListenAddress::Tcp { tls: true, .. }, None) => anyhow::bail!(
            "an https:// address for the {port} port needs --{port}.cert-filename and --{port}.key-filename"
        ),
        _ => Ok(None),
    }
}

/// Bytes of the files directly inside `dir` (a log's segments and state files).
pub fn directory_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}
