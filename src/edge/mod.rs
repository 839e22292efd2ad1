//! `regatta edge`: a read-only replica that follows the core's committed log.
//!
//! Start-up: open the local log, load the newest local snapshot, replay the local log after
//! it, then follow an upstream (see [`regatta_replication::tailer`]). Reads (Range,
//! IterateRange, read-only Txn, Tables.List) are answered locally; writes go up to the core
//! and are answered once applied here. The edge serves the log tail itself, so edges can follow edges.

pub mod args;

use std::{
    collections::BTreeMap,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use dashmap::DashMap;
use regatta_api::{
    activity::TrackRequests,
    cluster::ClusterService,
    kv::KvService,
    listen::Writes,
    maintenance::MaintenanceService,
    metrics::ApiMetrics,
    node::{HeaderState, NodeContext},
    tables::TablesService,
};
use regatta_log::{Log, LogIndex};
use regatta_materializer::{Materializer, State, snapshot::SnapshotStore};
use regatta_proto::maintenance::v1::maintenance_server::MaintenanceServer;
use regatta_proto::regatta::v1::{
    cluster_server::ClusterServer, kv_server::KvServer, tables_server::TablesServer,
};
use regatta_replication::{
    EdgeMetrics, EdgeRole, LocalSnapshots, ReplicationState, TailService, TailSettings, Tailer,
    TailerSettings,
};
use tonic::codec::CompressionEncoding;

pub use args::EdgeArgs;

use crate::{address::ListenAddress, rest, shutdown};

/// Runs an edge node until SIGTERM or Ctrl-C.
pub async fn run(args: EdgeArgs) -> Result<()> {
    let settings = args.validate()?;
    let args = &settings.args;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating the data directory {}", args.data_dir.display()))?;
    tracing::info!(upstreams = ?args.upstreams, data_dir = %args.data_dir.display(), "starting edge node");

    let registry = prometheus::Registry::new();
    crate::metrics::runtime_workers(&registry)?;
    let api_metrics = ApiMetrics::register(&registry)?;
    let limits = args.connection_limits.build(&registry)?;
    let edge_metrics = EdgeMetrics::register(&registry)?;

    let log = Log::open(
        args.data_dir.join("log"),
        regatta_log::Options {
            segment_bytes: args.segment_size,
            on_sync: Some(crate::metrics::fsync_observer(&registry)?),
            ..Default::default()
        },
    )
    .context("opening the local log")?;
    let local = LocalSnapshots::open(args.data_dir.join("snapshots"))?;
    let state = local.load_newest()?.unwrap_or_else(State::new);
    let snapshot_revision = state.revision().0;
    let materializer = Arc::new(Materializer::new(state));
    replay(&log, &materializer, snapshot_revision)?;
    tracing::info!(
        snapshot_revision,
        applied = materializer.applied().0,
        "local state restored"
    );
    edge_metrics.set_applied(materializer.applied().0);

    let objects = match &args.object_store {
        Some(url) => {
            let storage = crate::objects::open_with(url, &args.object_store_flags)?;
            Some(SnapshotStore::new(storage.store, &storage.prefix))
        }
        None => None,
    };
    let replication = Arc::new(ReplicationState::default());
    let shutdown = shutdown::token();
    let disk = regatta_api::disk::DiskGuard::new(
        args.node_id,
        vec![log.dir().to_path_buf(), args.data_dir.join("snapshots")],
        args.disk.min_free_disk,
        &registry,
    )?;
    tokio::spawn(disk.clone().run(shutdown.clone()));
    let (reset_tx, reset_rx) = tokio::sync::mpsc::channel(4);
    let tailer = Tailer {
        resets: reset_rx,
        settings: TailerSettings {
            name: args.node_name.clone(),
            upstreams: args.upstreams.clone(),
            staleness: args.staleness,
            snapshot_entries: args.snapshot_entries,
            keep_entries: args.keep_entries,
        },
        log: log.clone(),
        materializer: materializer.clone(),
        objects,
        local,
        state: replication.clone(),
        metrics: edge_metrics,
        last_local_snapshot: snapshot_revision,
        snapshot_not_before: None,
    };
    let tailer_task = tokio::spawn(tailer.run(shutdown.clone()));

    let log_bytes: Arc<dyn Fn() -> u64 + Send + Sync> = {
        let dir = log.dir().to_path_buf();
        Arc::new(move || crate::core::directory_bytes(&dir))
    };
    let role = Arc::new(EdgeRole {
        node_id: args.node_id,
        name: args.node_name.clone(),
        upstreams: args.upstreams.clone(),
        api_advertise: settings.api_advertise.clone(),
        replication_advertise: settings.replication_advertise.clone(),
        materializer: materializer.clone(),
        state: replication.clone(),
        log_bytes,
        clients: DashMap::new(),
        resets: reset_tx,
        disk,
    });
    let ctx = NodeContext {
        node_id: args.node_id,
        materializer: materializer.clone(),
        role: role.clone(),
        limits: settings.limits.clone(),
        tokens: settings.tokens.clone(),
        header: Arc::new(HeaderState::default()),
    };

    let api_server = {
        let max = settings.limits.max_request_bytes;
        let kv =
            KvServer::new(KvService::new(ctx.clone()).with_stream_limits(limits.streams.clone()))
                .max_decoding_message_size(max)
                .max_encoding_message_size(usize::MAX)
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Zstd);
        let tables = TablesServer::new(TablesService::new(ctx.clone()))
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd);
        let config = BTreeMap::from([
            (
                "replication.leader-address".to_string(),
                args.upstreams.join(","),
            ),
            ("data-dir".to_string(), args.data_dir.display().to_string()),
        ]);
        let cluster = ClusterServer::new(ClusterService::new(ctx.clone(), config));
        let maintenance = MaintenanceServer::new(MaintenanceService::new(ctx.clone()))
            .max_decoding_message_size(max)
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd);
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(regatta_proto::FILE_DESCRIPTOR_SET)
            .build_v1()
            .context("building the reflection service")?;
        let incoming = limits.incoming(&settings.api_address, Writes::Coalesced, "api")?;
        let token = shutdown.clone();
        limits
            .server()
            .layer(api_metrics.layer())
            .layer(TrackRequests)
            .add_service(kv)
            .add_service(tables)
            .add_service(cluster)
            .add_service(maintenance)
            .add_service(reflection)
            .serve_with_incoming_shutdown(incoming, async move { token.cancelled().await })
    };

    let tail_server = regatta_replication::serve(
        TailService::new(
            log.clone(),
            materializer.clone(),
            role.clone(),
            Arc::new(|| 0),
            TailSettings {
                heartbeat: args.tail_heartbeat,
            },
        ),
        limits.server(),
        &api_metrics,
        limits.incoming(
            &settings.replication_address,
            Writes::Immediate,
            "replication",
        )?,
        shutdown.clone(),
    );

    let rest_server = {
        let replication = replication.clone();
        let materializer = materializer.clone();
        let max_lag = args.max_lag;
        let readiness: rest::Readiness = Arc::new(move || {
            if let Some(fatal) = replication.fatal() {
                return Err(format!("replication stopped: {fatal}"));
            }
            if !replication.connected.load(Ordering::Relaxed) {
                return Err("not yet connected to an upstream".into());
            }
            let lag = replication.lag(materializer.applied().0).entries;
            if lag > max_lag {
                return Err(format!(
                    "{lag} entries behind the upstream (allowed {max_lag})"
                ));
            }
            Ok(())
        });
        rest::serve(
            tcp(&settings.rest_address)?,
            registry.clone(),
            readiness,
            shutdown.clone(),
        )
    };

    tracing::info!(api = %settings.api_advertise, replication = %settings.replication_advertise, "edge node serving");
    let served = crate::shutdown::serve_until_grace(&shutdown, async {
        tokio::try_join!(
            async { api_server.await.context("API server") },
            async { tail_server.await.context("log-tail server") },
            rest_server,
        )
        .map(drop)
    })
    .await;
    shutdown.cancel();
    if tokio::time::timeout(Duration::from_secs(10), tailer_task)
        .await
        .is_err()
    {
        tracing::warn!("the tailer did not stop in time");
    }
    log.sync().context("flushing the local log")?;
    served?;
    tracing::info!("edge node stopped");
    Ok(())
}

/// Applies what the local log holds after the local snapshot.
fn replay(log: &Log, materializer: &Materializer, snapshot_revision: u64) -> Result<()> {
    let Some(last) = log.last_index() else {
        return Ok(());
    };
    if last.get() <= snapshot_revision {
        return Ok(());
    }
    let first = log.first_index().map_or(snapshot_revision + 1, |f| f.get());
    if first > snapshot_revision + 1 {
        bail!(
            "the local log starts at {first} but the local snapshot ends at {snapshot_revision}: \
             entries are missing; move the data directory away and let the edge bootstrap again"
        );
    }
    let mut next = snapshot_revision + 1;
    while next <= last.get() {
        let end = (next + 4095).min(last.get());
        let records = log
            .read(LogIndex(next)..=LogIndex(end))
            .context("reading the local log")?;
        let Some(tail) = records.last() else { break };
        let after = tail.id.index.get() + 1;
        regatta_replication::apply_records(materializer, &records)
            .map_err(|e| anyhow::anyhow!("replaying the local log: {e}"))?;
        next = after;
    }
    Ok(())
}

fn tcp(addr: &ListenAddress) -> Result<std::net::SocketAddr> {
    crate::core::tcp(addr)
}
