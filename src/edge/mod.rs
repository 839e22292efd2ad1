//! `regatta edge`: a read-only replica that follows the core's committed log.
//!
//! Start-up: open the local log, load the newest local snapshot, replay the local log after
//! it, then follow an upstream (see [`regatta_replication::tailer`]). Reads (Range,
//! IterateRange, read-only Txn, Tables.List) are answered locally; writes go up to the core
//! and are answered once applied here. The edge serves the log tail itself, so edges can
//! follow edges.
//!
//! TLS: `https://` upstreams are dialed over TLS (the tail, writes and read index alike)
//! with `--replication.ca-filename` and the `--replication.cert-filename` pair, which also
//! serve an `https://` `--replication.address` to downstream edges (`flags/replication.rs`).

pub mod args;

use std::{
    collections::BTreeMap,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use anyhow::{Context, Result, bail};
use dashmap::DashMap;
use regatta_api::node::{HeaderState, NodeContext};
use regatta_log::{Log, LogIndex};
use regatta_materializer::{Materializer, State, snapshot::SnapshotStore};
use regatta_replication::{
    EdgeMetrics, EdgeRole, LocalSnapshots, ReplicationState, TailService, TailSettings, Tailer,
    TailerSettings,
};
use regatta_tls::Dialer;

pub use args::EdgeArgs;

use crate::{
    node::{NodeServer, directory_bytes},
    rest,
};

/// Runs an edge node until SIGTERM or Ctrl-C.
pub async fn run(args: EdgeArgs) -> Result<()> {
    let settings = args.validate()?;
    regatta_api::inject::init_from_env()?;
    let args = &settings.args;
    args.storage.create_data_dir()?;
    tracing::info!(upstreams = ?args.upstreams, data_dir = %args.storage.data_dir.display(), "starting edge node");
    let node = NodeServer::new(&settings.api.connection_limits)?;
    let edge_metrics = EdgeMetrics::register(&node.registry)?;
    let local = open_local_state(args, &node.registry, &edge_metrics)?;
    let replication = Arc::new(ReplicationState::default());
    let disk = regatta_api::disk::DiskGuard::new(
        args.node_id,
        vec![
            local.log.dir().to_path_buf(),
            args.storage.data_dir.join("snapshots"),
        ],
        args.storage.min_free_disk,
        &node.registry,
    )?;
    tokio::spawn(disk.clone().run(node.shutdown.clone()));
    let (reset_tx, reset_rx) = tokio::sync::mpsc::channel(4);
    let log = local.log.clone();
    let materializer = local.materializer.clone();
    let dialer = upstream_dialer(&node, &settings)?;
    let tailer = start_tailer(
        args,
        local,
        replication.clone(),
        edge_metrics,
        reset_rx,
        dialer.clone(),
    )?;
    let tailer_task = tokio::spawn(tailer.run(node.shutdown.clone()));

    let log_bytes: Arc<dyn Fn() -> u64 + Send + Sync> = {
        let dir = log.dir().to_path_buf();
        Arc::new(move || directory_bytes(&dir))
    };
    let role = Arc::new(EdgeRole {
        node_id: args.node_id,
        name: args.node_name.clone(),
        upstreams: args.upstreams.clone(),
        api_advertise: settings.api.advertise.clone(),
        replication_advertise: settings.replication.advertise.clone(),
        materializer: materializer.clone(),
        state: replication.clone(),
        log_bytes,
        clients: DashMap::new(),
        dialer,
        resets: reset_tx,
        disk,
    });
    let ctx = NodeContext {
        node_id: args.node_id,
        materializer: materializer.clone(),
        role: role.clone(),
        limits: settings.api.limits.clone(),
        tokens: settings.api.tokens.clone(),
        header: Arc::new(HeaderState::default()),
    };

    let config = BTreeMap::from([
        (
            "replication.leader-address".to_string(),
            args.upstreams.join(","),
        ),
        (
            "data-dir".to_string(),
            args.storage.data_dir.display().to_string(),
        ),
    ]);
    let api_server = node.api_server(
        &settings.api.address,
        &ctx,
        config,
        None,
        &args.services,
        node.server_tls(settings.api.tls.as_ref(), "api")?,
    )?;

    // The log-tail service downstream edges follow, unless --replication.enabled=false.
    let tail_server = if args.services.replication {
        Some(
            node.tail_server(
                &settings.replication.address,
                TailService::new(
                    log.clone(),
                    materializer.clone(),
                    role.clone(),
                    Arc::new(|| 0),
                    TailSettings {
                        heartbeat: settings.replication.heartbeat,
                    },
                )
                .with_knows_state({
                    let replication = replication.clone();
                    Arc::new(move || replication.caught_up())
                })
                .with_stop(node.shutdown.clone()),
                node.server_tls(settings.replication.server_tls.as_ref(), "replication")?,
            )?,
        )
    } else {
        tracing::info!("--replication.enabled=false: the log tail is not served to other edges");
        None
    };

    let rest_server = node.rest_server(
        &settings.rest_address,
        readiness(replication, materializer, args.max_lag),
    )?;

    tracing::info!(api = %settings.api.advertise, replication = %settings.replication.advertise, "edge node serving");
    // Named fields only: the settings also hold tokens and object-store keys.
    tracing::debug!(
        node_id = settings.args.node_id,
        upstreams = ?settings.args.upstreams,
        upstream_tls = settings.upstream_tls.is_some(),
        max_lag = settings.args.max_lag,
        "effective settings"
    );
    let servers = [Some(api_server), tail_server, Some(rest_server)];
    let served = node.serve(servers.into_iter().flatten().collect()).await;
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

/// The edge's local state at start: its log, its snapshots, and the tables rebuilt from
/// them.
struct LocalState {
    log: Log,
    snapshots: LocalSnapshots,
    materializer: Arc<Materializer>,
    snapshot_revision: u64,
}

/// Opens the local log, loads the newest local snapshot and replays the log after it.
fn open_local_state(
    args: &EdgeArgs,
    registry: &prometheus::Registry,
    edge_metrics: &EdgeMetrics,
) -> Result<LocalState> {
    let data_dir = &args.storage.data_dir;
    let log = Log::open(
        data_dir.join("log"),
        regatta_log::Options {
            segment_bytes: args.storage.segment_size,
            on_sync: Some(crate::metrics::fsync_observer(registry)?),
            sync_pause: args.log_sync_interval,
            ..Default::default()
        },
    )
    .context("opening the local log")?;
    let snapshots = LocalSnapshots::open(data_dir.join("snapshots"))?;
    let state = snapshots.load_newest()?.unwrap_or_else(State::new);
    let snapshot_revision = state.revision().0;
    let materializer = Arc::new(Materializer::new(state));
    replay(&log, &materializer, snapshot_revision)?;
    tracing::info!(
        snapshot_revision,
        applied = materializer.applied().0,
        "local state restored"
    );
    edge_metrics.set_applied(materializer.applied().0);
    Ok(LocalState {
        log,
        snapshots,
        materializer,
        snapshot_revision,
    })
}

/// How the edge reaches its upstreams (the tailer and the writes and read-index requests it
/// sends up): TLS for `https://` upstreams, trusting `--replication.ca-filename` (else the
/// system's roots) and presenting `--replication.cert-filename` when asked. Every file is
/// read and checked now.
fn upstream_dialer(node: &NodeServer, settings: &args::EdgeSettings) -> Result<Dialer> {
    let Some(tls) = &settings.upstream_tls else {
        let args = &settings.args;
        if args.replication_insecure_skip_verify || args.replication_server_name.is_some() {
            tracing::warn!(
                "--replication.insecure-skip-verify and --replication.server-name apply to \
                 https:// upstreams only; every --replication.leader-address is plaintext"
            );
        }
        return Ok(Dialer::plaintext());
    };
    let config = node.client_tls(&tls.client, "replication")?;
    Ok(Dialer::tls(config, tls.server_name.as_deref())?)
}

/// The tailer that follows the upstreams into `local`, bootstrapping from the object store
/// when one is given.
fn start_tailer(
    args: &EdgeArgs,
    local: LocalState,
    replication: Arc<ReplicationState>,
    edge_metrics: EdgeMetrics,
    resets: tokio::sync::mpsc::Receiver<regatta_replication::ResetRequest>,
    dialer: Dialer,
) -> Result<Tailer> {
    let objects = match &args.object_store.object_store {
        Some(url) => {
            let storage = crate::objects::open_with(url, &args.object_store.connection)?;
            Some(SnapshotStore::new(storage.store, &storage.prefix))
        }
        None => None,
    };
    Ok(Tailer {
        resets,
        settings: TailerSettings {
            name: args.node_name.clone(),
            upstreams: args.upstreams.clone(),
            staleness: args.staleness,
            snapshot_entries: args.snapshot_entries,
            keep_entries: args.keep_entries,
            dialer,
        },
        log: local.log,
        materializer: local.materializer,
        objects,
        local: local.snapshots,
        state: replication,
        metrics: edge_metrics,
        last_local_snapshot: local.snapshot_revision,
        snapshot_not_before: None,
    })
}

/// Ready once caught up with an upstream since start (until then a table missing here may
/// exist upstream), while connected and at most `max_lag` entries behind it.
fn readiness(
    replication: Arc<ReplicationState>,
    materializer: Arc<Materializer>,
    max_lag: u64,
) -> rest::Readiness {
    Arc::new(move || {
        if let Some(fatal) = replication.fatal() {
            return Err(format!("replication stopped: {fatal}"));
        }
        if !replication.connected.load(Ordering::Relaxed) {
            return Err(match replication.upstream_error() {
                Some(why) => format!("not yet connected to an upstream: {why}"),
                None => "not yet connected to an upstream".into(),
            });
        }
        let applied = materializer.applied().0;
        if let Some(why) = replication.unknown_state(applied) {
            return Err(why);
        }
        let lag = replication.lag(applied).entries;
        if lag > max_lag {
            return Err(format!(
                "{lag} entries behind the upstream (allowed {max_lag})"
            ));
        }
        Ok(())
    })
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
