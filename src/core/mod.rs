//! `regatta core`: one node of the core cluster.
//!
//! Assembly, in order: open the log (recovering a torn tail), build the materializer and
//! its state machine, start openraft, initialise the cluster on first start, then serve the
//! Raft transport, the public API and the HTTP port. With `--raft.cert-filename`,
//! `--raft.key-filename` and `--raft.ca-filename` the Raft port serves TLS requiring a
//! client certificate signed by the CA, and every channel to a peer (Raft, forwarded
//! writes, read index, node info) goes through one [`regatta_tls::Dialer`] presenting this
//! node's certificate. SIGTERM (or Ctrl-C) first hands leadership over (a leader stops
//! heartbeats and waits for a successor, see `regatta_core::handoff`), then stops accepting,
//! lets in-flight requests finish, shuts Raft down (its log is flushed on every append) and
//! exits 0.

pub mod args;
pub mod tables;

use regatta_core::{archiver, batcher, durable, role, uploader};

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use anyhow::{Context, Result, bail};
use futures::FutureExt;
use openraft::{BasicNode, Raft};
use regatta_api::{
    node::{HeaderState, NodeContext},
    raft_network::{MAX_RAFT_MESSAGE_BYTES, RaftNetworkFactoryImpl},
    raft_service::RaftService,
};
use regatta_core::{admin::AdminService, handoff::Handoff};
use regatta_materializer::{Materializer, raft::TypeConfig};
use regatta_proto::regatta::raft::v1::raft_transport_server::RaftTransportServer;
use regatta_replication::{TailService, TailSettings};
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

pub use args::CoreArgs;
use args::CoreSettings;
use role::{Advertised, CoreRole};

use crate::{
    node::{NodeServer, directory_bytes},
    rest,
};

/// Runs a core node until SIGTERM or Ctrl-C.
pub async fn run(args: CoreArgs) -> Result<()> {
    let settings = args.validate()?;
    regatta_api::inject::init_from_env()?;
    settings.storage.create_data_dir()?;
    let data_dir = &settings.storage.data_dir;
    tracing::info!(node_id = settings.node_id, data_dir = %data_dir.display(), "starting core node");
    // The curated view (no tokens or object-store keys).
    tracing::debug!(settings = ?settings.describe(), "effective settings");
    let mut node = NodeServer::new(&settings.api.connection_limits)?;
    // SIGTERM first hands leadership over (see `regatta_core::handoff`), then stops the
    // servers.
    let stop = crate::shutdown::defer(&mut node.shutdown);
    let raft_tls = RaftTransport::build(&settings, &node)?;
    let parts = open_node(&settings, &node.registry, raft_tls.dialer.clone()).await?;
    initialise_cluster(&settings, &parts.raft).await?;
    let tasks = start_tasks(&settings, &node, &parts, raft_tls.dialer.clone())?;
    let handoff = tasks.handoff.clone();
    stop.then(async move { handoff.step_down().await });
    let ctx = NodeContext {
        node_id: settings.node_id,
        materializer: parts.materializer.clone(),
        role: tasks.role.clone(),
        limits: settings.api.limits.clone(),
        tokens: settings.api.tokens.clone(),
        header: tasks.header.clone(),
    };

    let raft_service = RaftTransportServer::new(
        RaftService::new(parts.raft.clone(), tasks.role.clone())
            .answer_when_durable(parts.durability.clone())
            .with_stop(node.shutdown.clone()),
    )
    .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
    .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES);
    let raft_server = node.internal_server(
        &settings.raft_address,
        "raft",
        "raft transport server",
        Routes::new(raft_service),
        raft_tls.server,
    )?;
    let admin = AdminService::new(ctx.clone(), tasks.uploads.clone());
    let api_server = node.api_server(
        &settings.api.address,
        &ctx,
        settings.describe(),
        Some(admin),
        &settings.services,
        node.server_tls(settings.api.tls.as_ref(), "api")?,
    )?;

    // The log-tail service the edges follow, unless --replication.enabled=false.
    let tail_server = if settings.services.replication {
        let latest = parts.latest_snapshot.clone();
        Some(
            node.tail_server(
                &settings.replication.address,
                TailService::new(
                    parts.log.clone(),
                    parts.materializer.clone(),
                    tasks.role.clone(),
                    Arc::new(move || latest.load(std::sync::atomic::Ordering::Relaxed)),
                    TailSettings {
                        heartbeat: settings.replication.heartbeat,
                    },
                )
                .with_stop(node.shutdown.clone()),
                node.server_tls(settings.replication.server_tls.as_ref(), "replication")?,
            )?,
        )
    } else {
        tracing::info!("--replication.enabled=false: the log tail is not served");
        None
    };

    let rest_server = node.rest_server(
        &settings.rest_address,
        readiness(parts.raft.clone(), parts.materializer.clone()),
    )?;

    tracing::info!(
        api = %settings.api.advertise, raft = %settings.raft_advertise, rest = ?settings.rest_address.tcp(),
        "core node serving"
    );
    tokio::spawn(tables::run(
        settings.table_changes.clone(),
        tasks.role.clone(),
        parts.raft.clone(),
        node.shutdown.clone(),
    ));
    let servers = [
        Some(raft_server),
        Some(api_server),
        tail_server,
        Some(rest_server),
        Some(raft_stopped(parts.raft.clone(), node.shutdown.clone()).boxed()),
    ];
    let served = node.serve(servers.into_iter().flatten().collect()).await;
    tracing::info!("shutting down raft");
    if let Err(e) = tokio::time::timeout(Duration::from_secs(10), parts.raft.shutdown()).await {
        tracing::warn!(error = %e, "raft did not shut down in time");
    }
    served?;
    tracing::info!("core node stopped");
    Ok(())
}

/// The TLS of the Raft transport, built once at start: the Raft port's configuration and
/// the dialer every channel to a peer opens through.
struct RaftTransport {
    /// `None`: the Raft port is plaintext.
    server: Option<Arc<rustls::ServerConfig>>,
    dialer: regatta_tls::Dialer,
}

impl RaftTransport {
    /// Reads and checks the `--raft.*-filename` files (an error names the flag and the
    /// file); their expiry is exported with the node's TLS metrics (`port="raft"`). Peers'
    /// certificates must be valid for the host of the address they are dialed at.
    fn build(settings: &CoreSettings, node: &NodeServer) -> Result<Self> {
        let Some(tls) = &settings.raft_tls else {
            return Ok(Self {
                server: None,
                dialer: regatta_tls::Dialer::plaintext(),
            });
        };
        let server = node.server_tls(Some(&tls.server), "raft")?;
        let client = node.client_tls(&tls.client, "raft")?;
        let dialer = regatta_tls::Dialer::tls(client, None)?;
        tracing::info!(
            cert = %tls.server.identity.cert.path.display(),
            "raft transport: mutual TLS between core nodes"
        );
        Ok(Self { server, dialer })
    }
}

/// What a core node opens at start: its log, state machine and Raft.
struct NodeParts {
    raft: Raft<TypeConfig>,
    log: regatta_log::Log,
    materializer: Arc<Materializer>,
    objects: crate::objects::ObjectStorage,
    /// Revision of the newest snapshot in the object store: the uploader raises it, the
    /// archiver learns it from the store, the log-tail service tells edges, and purges
    /// stop at it.
    latest_snapshot: Arc<std::sync::atomic::AtomicU64>,
    /// Purges wait for the segment archive and the newest snapshot: see `archiver`.
    purge_gate: Arc<regatta_core::PurgeGate>,
    log_bytes: Arc<dyn Fn() -> u64 + Send + Sync>,
    /// Appends are replicated and answered while being fsync'd: this gates the Raft
    /// transport's answers to AppendEntries (see `regatta_log::raft::Durability`).
    durability: regatta_log::raft::Durability,
}

/// Opens the log (recovering a torn tail), the object store and the durable state
/// machine, and starts Raft on them.
async fn open_node(
    settings: &CoreSettings,
    registry: &prometheus::Registry,
    dialer: regatta_tls::Dialer,
) -> Result<NodeParts> {
    let data_dir = &settings.storage.data_dir;
    let mut log_store = regatta_log::raft::RaftLogStore::<TypeConfig>::open(
        data_dir.join("log"),
        regatta_log::Options {
            on_sync: Some(crate::metrics::fsync_observer(registry)?),
            ..settings.log_options()
        },
    )
    .with_context(|| "opening the log")?;
    // A write pays the leader's fsync and a follower's at the same time, not one after the
    // other, and a follower's Raft core does not wait for its fsync; entries become visible,
    // and are acknowledged to the leader, only once durable here (see `Durability`).
    let durability = log_store.replicate_while_syncing();
    let log = log_store.log().clone();
    let objects = crate::objects::open_with(&settings.object_store, &settings.object_store_flags)?;
    let log_bytes: Arc<dyn Fn() -> u64 + Send + Sync> = {
        let dir = log_store.log().dir().to_path_buf();
        Arc::new(move || directory_bytes(&dir))
    };
    let latest_snapshot = Arc::new(std::sync::atomic::AtomicU64::new(0));
    // Purges wait for the segment archive and the newest snapshot: see `regatta_core::purge_gate`.
    let purge_gate = Arc::new(regatta_core::PurgeGate::new(latest_snapshot.clone()));
    let log_store = regatta_core::GatedLogStore::new(log_store, purge_gate.clone());
    let materializer = Arc::new(Materializer::default());
    let state_machine = durable::DurableStateMachine::open(
        regatta_materializer::raft::StateMachine::new(materializer.clone()),
        durable::SnapshotFiles::open(data_dir.join("raft-snapshots"))?,
    )
    .await?
    .apply_when_durable(durability.clone());

    let raft_config = Arc::new(settings.raft_config().validate().context("raft settings")?);
    let raft = Raft::new(
        settings.node_id,
        raft_config,
        RaftNetworkFactoryImpl::new(dialer).commit_when_durable(durability.clone()),
        log_store,
        state_machine,
    )
    .await
    .context("starting raft")?;
    Ok(NodeParts {
        raft,
        log,
        materializer,
        objects,
        latest_snapshot,
        purge_gate,
        log_bytes,
        durability,
    })
}

/// Initialises a new cluster from `--raft.initial-members` on its first start. A node
/// re-seeded by `regatta reseed` was removed from its cluster: it waits to be added back
/// instead.
async fn initialise_cluster(settings: &CoreSettings, raft: &Raft<TypeConfig>) -> Result<()> {
    let rejoin_marker = settings.storage.data_dir.join(regatta_core::REJOIN_MARKER);
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
    Ok(())
}

/// The core's role and the tasks that run beside its servers.
struct NodeTasks {
    role: Arc<CoreRole>,
    header: Arc<HeaderState>,
    uploads: Arc<uploader::SnapshotUploads>,
    handoff: Arc<Handoff>,
}

/// Starts the free-space guard, the leadership handoff (see `regatta_core::handoff`), the
/// Raft metrics, the role with its batcher (dialing peers
/// through `dialer`), the snapshot uploader and the archiver; each stops with
/// `node.shutdown`.
fn start_tasks(
    settings: &CoreSettings,
    node: &NodeServer,
    parts: &NodeParts,
    dialer: regatta_tls::Dialer,
) -> Result<NodeTasks> {
    let registry = &node.registry;
    let shutdown = &node.shutdown;
    let raft = &parts.raft;
    let header = Arc::new(HeaderState::default());
    let disk = regatta_api::disk::DiskGuard::new(
        settings.node_id,
        vec![
            parts.log.dir().to_path_buf(),
            settings.storage.data_dir.join("raft-snapshots"),
        ],
        settings.storage.min_free_disk,
        registry,
    )?;
    tokio::spawn(disk.clone().run(shutdown.clone()));
    let handoff = Handoff::new(
        settings.node_id,
        raft.clone(),
        disk.clone(),
        settings.election_timeout,
    );
    tokio::spawn(handoff.clone().run(shutdown.clone()));
    tokio::spawn(track_raft_metrics(
        raft.clone(),
        parts.log.clone(),
        header.clone(),
        registry.clone(),
        shutdown.clone(),
    ));

    let role = Arc::new(CoreRole::new(
        role::ClusterMember {
            node_id: settings.node_id,
            cluster_name: settings.cluster_name.clone(),
            dialer,
        },
        raft.clone(),
        parts.materializer.clone(),
        Advertised {
            name: settings.name.clone(),
            api_urls: vec![settings.api.advertise.clone()],
            // No log tail served (--replication.enabled=false): none to show in MemberList.
            replication_urls: if settings.services.replication {
                vec![settings.replication.advertise.clone()]
            } else {
                Vec::new()
            },
        },
        role::LocalDisk {
            log_bytes: parts.log_bytes.clone(),
            guard: disk,
        },
        batcher::Batcher::start(
            raft.clone(),
            settings.batch_limits,
            Arc::new(
                regatta_core::metrics::ProposalMetrics::register(registry)
                    .context("registering the proposal metrics")?,
            ),
        ),
        handoff.clone(),
    ));
    tokio::spawn(regatta_core::expiry::run(
        settings.expiry,
        raft.clone(),
        role.clone(),
        parts.materializer.clone(),
        regatta_core::expiry::ExpiryMetrics::register(registry)
            .context("registering the expiry metrics")?,
        shutdown.clone(),
    ));
    let uploads = start_uploads(settings, node, parts)?;
    start_archiver(settings, node, parts)?;
    Ok(NodeTasks {
        role,
        header,
        uploads,
        handoff,
    })
}

/// Starts the snapshot uploader (leader only; see `uploader`).
fn start_uploads(
    settings: &CoreSettings,
    node: &NodeServer,
    parts: &NodeParts,
) -> Result<Arc<uploader::SnapshotUploads>> {
    let snapshot_uploads = Arc::new(uploader::SnapshotUploads::new(
        parts.objects.snapshots(),
        parts.latest_snapshot.clone(),
        regatta_core::metrics::UploadMetrics::register(&node.registry)?,
    ));
    let uploader = uploader::Uploader {
        uploads: snapshot_uploads.clone(),
        policy: settings.upload.clone(),
    };
    tokio::spawn(uploader.run(
        settings.node_id,
        parts.raft.clone(),
        parts.materializer.clone(),
        node.shutdown.clone(),
    ));
    Ok(snapshot_uploads)
}

/// Starts the archiver: sealed segments to the object store, retention, the purge gate.
fn start_archiver(settings: &CoreSettings, node: &NodeServer, parts: &NodeParts) -> Result<()> {
    let objects = &parts.objects;
    tokio::spawn(
        archiver::Archiver {
            log: parts.log.clone(),
            archive: objects.segments(),
            snapshots: objects.snapshots(),
            gate: parts.purge_gate.clone(),
            applied: {
                let materializer = parts.materializer.clone();
                Arc::new(move || materializer.applied().0)
            },
            keep_snapshots: settings.keep_snapshots,
            check_interval: settings.archive_check_interval,
            metrics: archiver::ArchiverMetrics::register(&node.registry)?,
            last_snapshot_list: std::sync::Mutex::new(None),
            known: Default::default(),
        }
        .run(node.shutdown.clone()),
    );
    Ok(())
}

/// Completes with an error when Raft stops by itself (a panic or a storage failure), so the
/// node exits non-zero and its supervisor restarts it, instead of answering Unavailable
/// forever; completes with Ok on shutdown.
///
/// Watches Raft's server metrics, which change only with the vote, role, leader or
/// membership, and end (the sender dropped) when Raft's core task ends: the full metrics are
/// sent several times per write, and this future runs on the main thread, where each wake-up
/// is a thread switch.
async fn raft_stopped(raft: Raft<TypeConfig>, shutdown: CancellationToken) -> Result<()> {
    let mut rx = raft.server_metrics();
    loop {
        if let Err(e) = &raft.metrics().borrow().running_state {
            bail!("raft stopped: {e}");
        }
        tokio::select! {
            changed = rx.changed() => if changed.is_err() {
                match &raft.metrics().borrow().running_state {
                    Err(e) => bail!("raft stopped: {e}"),
                    Ok(()) => bail!("raft stopped"),
                }
            },
            () = shutdown.cancelled() => return Ok(()),
        }
    }
}

/// Ready once a leader is known and this node has applied what was committed when it first
/// saw one.
fn readiness(raft: Raft<TypeConfig>, materializer: Arc<Materializer>) -> rest::Readiness {
    let target = std::sync::OnceLock::new();
    Arc::new(move || {
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
    })
}

/// How stale the log and apply gauges (`regatta_raft_last_log_index`, …) may be.
const GAUGE_REFRESH: std::time::Duration = std::time::Duration::from_millis(200);

/// Keeps the response-header state and the raft gauges current: at once when the vote, role,
/// leader or membership change (Raft's server metrics), the log and apply gauges within
/// [`GAUGE_REFRESH`]. Not on every change of the full metrics: they are sent several times
/// per write, and a wake-up per send costs a write tens of microseconds.
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
    let mut rx = raft.server_metrics();
    let full = raft.metrics();
    let mut tick = tokio::time::interval(GAUGE_REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        gauges.observe_log(log.first_index().map(|i| i.get()));
        {
            // The server metrics are sent before the full ones: the header takes the newest.
            let server = rx.borrow_and_update();
            header.term.store(
                server.vote.leader_id().get_term(),
                std::sync::atomic::Ordering::Relaxed,
            );
            header.leader_id.store(
                server.current_leader.unwrap_or(0),
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        gauges.observe(&full.borrow());
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
    }
}
