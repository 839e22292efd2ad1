//! `regatta core`: one node of the core cluster.
//!
//! Assembly, in order: open the log (recovering a torn tail), build the materializer and
//! its state machine, start openraft, initialise the cluster on first start, then serve the
//! Raft transport, the public API and the HTTP port. SIGTERM (or Ctrl-C) stops accepting,
//! lets in-flight requests finish, shuts Raft down (its log is flushed on every append) and
//! exits 0.

pub mod args;

pub use regatta_core::{archiver, batcher, durable, role, uploader};

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use anyhow::{Context, Result, bail};
use openraft::{BasicNode, Raft};
use regatta_api::{
    activity::TrackRequests,
    cluster::ClusterService,
    kv::KvService,
    listen::Writes,
    maintenance::MaintenanceService,
    metrics::ApiMetrics,
    node::{HeaderState, NodeContext},
    raft_network::{MAX_RAFT_MESSAGE_BYTES, RaftNetworkFactoryImpl},
    raft_service::RaftService,
    tables::TablesService,
    tail::{TailService, TailSettings},
};
use regatta_materializer::{Materializer, raft::TypeConfig};
use regatta_proto::maintenance::v1::maintenance_server::MaintenanceServer;
use regatta_proto::regatta::{
    admin::v1::admin_server::AdminServer,
    raft::v1::raft_transport_server::RaftTransportServer,
    tail::v1::tail_server::TailServer,
    v1::{cluster_server::ClusterServer, kv_server::KvServer, tables_server::TablesServer},
};
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;

pub use args::CoreArgs;
use role::{Advertised, CoreRole};

use crate::{address::ListenAddress, admin::AdminService, rest, shutdown};

/// Runs a core node until SIGTERM or Ctrl-C.
pub async fn run(args: CoreArgs) -> Result<()> {
    let settings = args.validate()?;
    std::fs::create_dir_all(&settings.data_dir).with_context(|| {
        format!(
            "creating the data directory {}",
            settings.data_dir.display()
        )
    })?;
    tracing::info!(node_id = settings.node_id, data_dir = %settings.data_dir.display(), "starting core node");

    let registry = prometheus::Registry::new();
    crate::metrics::runtime_workers(&registry)?;
    let api_metrics = ApiMetrics::register(&registry)?;
    let limits = settings.connection_limits.build(&registry)?;

    let log_store = regatta_log::raft::RaftLogStore::<TypeConfig>::open(
        settings.data_dir.join("log"),
        regatta_log::Options {
            on_sync: Some(crate::metrics::fsync_observer(&registry)?),
            ..settings.log_options()
        },
    )
    .with_context(|| "opening the log")?;
    let log = log_store.log().clone();
    let objects = crate::objects::open_with(&settings.object_store, &settings.object_store_flags)?;
    let log_bytes: Arc<dyn Fn() -> u64 + Send + Sync> = {
        let dir = log_store.log().dir().to_path_buf();
        Arc::new(move || directory_bytes(&dir))
    };
    // Revision of the newest snapshot in the object store: the uploader raises it, the
    // archiver learns it from the store, the log-tail service tells edges, and purges stop
    // at it.
    let latest_snapshot = Arc::new(std::sync::atomic::AtomicU64::new(0));
    // Purges wait for the segment archive and the newest snapshot: see `archiver`.
    let purge_gate = Arc::new(regatta_core::PurgeGate::new(latest_snapshot.clone()));
    let log_store = regatta_core::GatedLogStore::new(log_store, purge_gate.clone());
    let materializer = Arc::new(Materializer::default());
    let state_machine = durable::DurableStateMachine::open(
        regatta_materializer::raft::StateMachine::new(materializer.clone()),
        durable::SnapshotFiles::open(settings.data_dir.join("raft-snapshots"))?,
    )
    .await?;

    let raft_config = Arc::new(settings.raft_config().validate().context("raft settings")?);
    let raft = Raft::new(
        settings.node_id,
        raft_config,
        RaftNetworkFactoryImpl,
        log_store,
        state_machine,
    )
    .await
    .context("starting raft")?;

    // A node re-seeded by `regatta reseed` was removed from its cluster: it waits to be
    // added back rather than initialise one from --raft.initial-members.
    let rejoin_marker = settings.data_dir.join(crate::reseed::REJOIN_MARKER);
    let initialized = raft.is_initialized().await.context("reading raft state")?;
    if rejoin_marker.exists() {
        if initialized {
            tracing::info!(marker = %rejoin_marker.display(), "re-seeded node has joined: removing its marker");
            std::fs::remove_file(&rejoin_marker)
                .with_context(|| format!("removing {}", rejoin_marker.display()))?;
        } else {
            tracing::warn!(
                node_id = settings.node_id,
                "re-seeded data directory: waiting to be added back with `regatta cluster add-member`"
            );
        }
    } else if !settings.initial_members.is_empty() && !initialized {
        let members: BTreeMap<u64, BasicNode> = settings
            .initial_members
            .iter()
            .map(|(id, addr)| (*id, BasicNode { addr: addr.clone() }))
            .collect();
        if members.contains_key(&settings.node_id) {
            tracing::info!(?members, "initialising a new cluster");
            if let Err(e) = raft.initialize(members).await {
                // Another member initialised first and already replicated to us: fine.
                tracing::info!(error = %e, "cluster initialisation skipped");
            }
        } else {
            tracing::info!("not among the initial members: waiting to be added to the cluster");
        }
    }

    let header = Arc::new(HeaderState::default());
    let shutdown = shutdown::token();
    let disk = regatta_api::disk::DiskGuard::new(
        settings.node_id,
        vec![
            log.dir().to_path_buf(),
            settings.data_dir.join("raft-snapshots"),
        ],
        settings.min_free_disk,
        &registry,
    )?;
    tokio::spawn(disk.clone().run(shutdown.clone()));
    tokio::spawn(track_raft_metrics(
        raft.clone(),
        log.clone(),
        header.clone(),
        registry.clone(),
        shutdown.clone(),
    ));

    let role = Arc::new(CoreRole::new(
        settings.node_id,
        settings.cluster_name.clone(),
        raft.clone(),
        materializer.clone(),
        Advertised {
            name: settings.name.clone(),
            api_urls: vec![settings.api_advertise.clone()],
            replication_urls: vec![settings.replication_advertise.clone()],
        },
        role::LocalDisk {
            log_bytes,
            guard: disk,
        },
        batcher::Batcher::start(
            raft.clone(),
            settings.batch_limits,
            Arc::new(
                regatta_core::metrics::ProposalMetrics::register(&registry)
                    .context("registering the proposal metrics")?,
            ),
        ),
    ));
    let snapshot_uploads = Arc::new(uploader::SnapshotUploads::new(
        objects.snapshots(),
        latest_snapshot.clone(),
        regatta_core::metrics::UploadMetrics::register(&registry)?,
    ));
    let uploader = uploader::Uploader {
        uploads: snapshot_uploads.clone(),
        policy: settings.upload.clone(),
    };
    tokio::spawn(uploader.run(
        settings.node_id,
        raft.clone(),
        materializer.clone(),
        shutdown.clone(),
    ));

    tokio::spawn(
        archiver::Archiver {
            log: log.clone(),
            archive: objects.segments(),
            snapshots: objects.snapshots(),
            gate: purge_gate,
            applied: {
                let materializer = materializer.clone();
                Arc::new(move || materializer.applied().0)
            },
            keep_snapshots: settings.keep_snapshots,
            check_interval: settings.archive_check_interval,
            metrics: archiver::ArchiverMetrics::register(&registry)?,
            last_snapshot_list: std::sync::Mutex::new(None),
            known: Default::default(),
        }
        .run(shutdown.clone()),
    );

    let ctx = NodeContext {
        node_id: settings.node_id,
        materializer: materializer.clone(),
        role: role.clone(),
        limits: settings.limits.clone(),
        tokens: settings.tokens.clone(),
        header,
    };

    let raft_server = {
        let service = RaftTransportServer::new(RaftService::new(raft.clone(), role.clone()))
            .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES);
        let incoming = limits.incoming(&settings.raft_address, Writes::Immediate, "raft")?;
        let token = shutdown.clone();
        regatta_api::raft_network::internal_server(limits.server())
            .layer(api_metrics.layer())
            .layer(TrackRequests)
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, async move { token.cancelled().await })
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
            .max_decoding_message_size(max)
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd);
        let cluster = ClusterServer::new(ClusterService::new(ctx.clone(), settings.describe()))
            .accept_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Zstd);
        let admin = AdminServer::new(AdminService::new(ctx.clone(), snapshot_uploads.clone()));
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
            .add_service(admin)
            .add_service(maintenance)
            .add_service(reflection)
            .serve_with_incoming_shutdown(incoming, async move { token.cancelled().await })
    };

    let tail_server = {
        let latest = latest_snapshot.clone();
        let service = TailService::new(
            log,
            materializer.clone(),
            role.clone(),
            Arc::new(move || latest.load(std::sync::atomic::Ordering::Relaxed)),
            TailSettings {
                heartbeat: settings.tail_heartbeat,
            },
        );
        let incoming = limits.incoming(
            &settings.replication_address,
            Writes::Immediate,
            "replication",
        )?;
        let token = shutdown.clone();
        regatta_api::raft_network::internal_server(limits.server())
            .layer(api_metrics.layer())
            .layer(TrackRequests)
            .add_service(
                TailServer::new(service)
                    .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES),
            )
            .serve_with_incoming_shutdown(incoming, async move { token.cancelled().await })
    };

    let rest_server = {
        let raft = raft.clone();
        let materializer = materializer.clone();
        let started_commit = Arc::new(std::sync::OnceLock::new());
        let readiness: rest::Readiness =
            Arc::new(move || readiness(&raft, &materializer, &started_commit));
        rest::serve(
            tcp(&settings.rest_address)?,
            registry.clone(),
            readiness,
            shutdown.clone(),
        )
    };

    tracing::info!(
        api = %settings.api_advertise, raft = %settings.raft_advertise, rest = ?settings.rest_address.tcp(),
        "core node serving"
    );
    let served = shutdown::serve_until_grace(&shutdown, async {
        tokio::try_join!(
            async { raft_server.await.context("raft transport server") },
            async { api_server.await.context("API server") },
            async { tail_server.await.context("log-tail server") },
            rest_server,
            raft_stopped(raft.clone(), shutdown.clone()),
        )
        .map(drop)
    })
    .await;
    shutdown.cancel();
    tracing::info!("shutting down raft");
    if let Err(e) = tokio::time::timeout(Duration::from_secs(10), raft.shutdown()).await {
        tracing::warn!(error = %e, "raft did not shut down in time");
    }
    served?;
    tracing::info!("core node stopped");
    Ok(())
}

pub fn tcp(addr: &ListenAddress) -> Result<std::net::SocketAddr> {
    match addr {
        ListenAddress::Tcp { addr, tls: false } => Ok(*addr),
        ListenAddress::Tcp { tls: true, .. } => {
            bail!("https:// listen addresses need TLS settings, which this build does not take yet")
        }
        ListenAddress::Unix(path) => bail!(
            "unix:// listen addresses ({}) are not supported for this port yet",
            path.display()
        ),
    }
}

/// Completes with an error when Raft stops by itself (a panic or a storage failure), so the
/// node exits non-zero and its supervisor restarts it, instead of answering Unavailable
/// forever; completes with Ok on shutdown.
async fn raft_stopped(raft: Raft<TypeConfig>, shutdown: CancellationToken) -> Result<()> {
    let mut rx = raft.metrics();
    loop {
        if let Err(e) = &rx.borrow_and_update().running_state {
            bail!("raft stopped: {e}");
        }
        tokio::select! {
            changed = rx.changed() => if changed.is_err() {
                bail!("raft stopped");
            },
            () = shutdown.cancelled() => return Ok(()),
        }
    }
}

/// Ready once a leader is known and this node has applied what was committed when it first
/// saw one.
fn readiness(
    raft: &Raft<TypeConfig>,
    materializer: &Materializer,
    target: &std::sync::OnceLock<u64>,
) -> Result<(), String> {
    let metrics = raft.metrics().borrow().clone();
    if let Err(e) = &metrics.running_state {
        return Err(format!("raft stopped: {e}"));
    }
    if metrics.current_leader.is_none() {
        return Err("no leader known".into());
    }
    let target = *target.get_or_init(|| metrics.last_log_index.unwrap_or(0));
    let applied = materializer.applied().0;
    if applied < target {
        return Err(format!("catching up: applied {applied} of {target}"));
    }
    Ok(())
}

/// Keeps the response-header state and the raft gauges current.
async fn track_raft_metrics(
    raft: Raft<TypeConfig>,
    log: regatta_log::Log,
    header: Arc<HeaderState>,
    registry: prometheus::Registry,
    shutdown: CancellationToken,
) {
    let gauges = match regatta_core::metrics::RaftGauges::register(&registry) {
        Ok(g) => g,
        Err(e) => {
            tracing::error!(error = %e, "cannot register raft metrics");
            return;
        }
    };
    let mut rx = raft.metrics();
    // Purges held back for the archive happen without a change of Raft's metrics.
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        gauges.observe_log(log.first_index().map(|i| i.get()));
        {
            let m = rx.borrow_and_update();
            header
                .term
                .store(m.current_term, std::sync::atomic::Ordering::Relaxed);
            header.leader_id.store(
                m.current_leader.unwrap_or(0),
                std::sync::atomic::Ordering::Relaxed,
            );
            gauges.observe(&m);
        }
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Bytes of the files directly inside `dir` (the log's segments and state files).
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
