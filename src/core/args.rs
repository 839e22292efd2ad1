//! Options of `regatta core`, and their validation into [`CoreSettings`].

use std::{collections::BTreeMap, time::Duration};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::{
    address::ListenAddress,
    flags::{
        advertised, api::ApiSettings, raft::RaftTls, replication::ReplicationSettings,
        storage::StorageArgs,
    },
};

/// Options of a core node. Each can also be set with the environment variable shown, or in
/// the YAML file given with `--config` (same names, e.g. `raft.node-id: 1`).
#[derive(Args, Debug, Clone)]
pub struct CoreArgs {
    #[command(flatten)]
    pub config: crate::flags::ConfigFileArg,

    /// This node's id in the core cluster: a positive integer, unique and never reused.
    #[arg(long = "raft.node-id", env = "REGATTA_RAFT_NODE_ID")]
    pub node_id: Option<u64>,
    #[command(flatten)]
    pub raft_address: crate::flags::raft::RaftAddressArg,
    /// Raft address peers use to reach this node (default: --raft.address).
    #[arg(
        long = "raft.advertise-address",
        env = "REGATTA_RAFT_ADVERTISE_ADDRESS"
    )]
    pub raft_advertise: Option<String>,
    // Boxed: three paths, most often unset, kept out of the command's size.
    #[command(flatten)]
    pub raft_tls: Box<crate::flags::raft::RaftTlsArgs>,
    /// The cluster's first members as `id=raft-url` pairs, comma-separated
    /// (`1=http://10.0.0.1:5012,2=…`). Used once, on the first start of a new cluster; a node
    /// not listed waits to be added with `regatta cluster add-member`.
    #[arg(
        long = "raft.initial-members",
        env = "REGATTA_RAFT_INITIAL_MEMBERS",
        value_delimiter = ','
    )]
    pub initial_members: Vec<String>,
    /// Name of the cluster, reported by MemberList.
    #[arg(
        long = "raft.cluster-name",
        env = "REGATTA_RAFT_CLUSTER_NAME",
        default_value = "regatta"
    )]
    pub cluster_name: String,
    /// How often the leader sends heartbeats.
    #[arg(long = "raft.heartbeat-interval", env = "REGATTA_RAFT_HEARTBEAT_INTERVAL", default_value = "150ms", value_parser = humantime::parse_duration)]
    pub heartbeat_interval: Duration,
    /// A follower starts an election after hearing nothing from the leader for between this
    /// and twice this long.
    #[arg(long = "raft.election-timeout", env = "REGATTA_RAFT_ELECTION_TIMEOUT", default_value = "1s", value_parser = humantime::parse_duration)]
    pub election_timeout: Duration,
    /// Take a snapshot of the state after this many new log entries.
    #[arg(
        long = "raft.snapshot-entries",
        env = "REGATTA_RAFT_SNAPSHOT_ENTRIES",
        default_value_t = 100_000
    )]
    pub snapshot_entries: u64,
    /// Log entries kept on disk behind the newest snapshot, so lagging followers and edges
    /// catch up from the log instead of a snapshot.
    #[arg(
        long = "raft.keep-entries",
        env = "REGATTA_RAFT_KEEP_ENTRIES",
        default_value_t = 100_000
    )]
    pub keep_entries: u64,
    /// Most client writes proposed together as one log entry. Writes that arrive while
    /// entries are being committed wait and go into the next entry: one fsync and one
    /// replication round for all of them.
    #[arg(
        long = "raft.max-batch-writes",
        env = "REGATTA_RAFT_MAX_BATCH_WRITES",
        default_value_t = 1024
    )]
    pub max_batch_writes: usize,
    /// Log entries of client writes being proposed at the same time. More overlaps the
    /// rounds of consecutive entries; fewer makes each entry carry more writes (1 measured
    /// best with three nodes on one 2-CPU machine).
    #[arg(
        long = "raft.proposals-in-flight",
        env = "REGATTA_RAFT_PROPOSALS_IN_FLIGHT",
        default_value_t = 1
    )]
    pub proposals_in_flight: usize,
    #[command(flatten)]
    pub api: crate::flags::api::ApiArgs,
    #[command(flatten)]
    pub replication: crate::flags::replication::ReplicationArgs,
    #[command(flatten)]
    pub rest: crate::flags::rest::RestArgs,
    #[command(flatten)]
    pub storage: crate::flags::storage::StorageArgs,
    #[command(flatten)]
    pub object_store: crate::flags::object_store::ObjectStoreArgs,
    /// Upload a snapshot to object storage after this many new entries (leader only).
    #[arg(
        long = "object-store.snapshot-entries",
        env = "REGATTA_OBJECT_STORE_SNAPSHOT_ENTRIES",
        default_value_t = 100_000
    )]
    pub upload_entries: u64,
    /// Upload a snapshot at least this often while there are new entries.
    #[arg(long = "object-store.snapshot-interval", env = "REGATTA_OBJECT_STORE_SNAPSHOT_INTERVAL", default_value = "10m", value_parser = humantime::parse_duration)]
    pub upload_interval: Duration,
    /// Snapshots kept in object storage: once more exist, older ones are deleted, with every
    /// archived log segment wholly at or below the oldest kept snapshot. 0 keeps everything
    /// (a complete audit trail and point-in-time restore to any revision).
    #[arg(
        long = "object-store.keep-snapshots",
        env = "REGATTA_OBJECT_STORE_KEEP_SNAPSHOTS",
        default_value_t = 10
    )]
    pub keep_snapshots: usize,
    /// How often the archiver lists the object store to find archived segments and
    /// snapshots gone missing (it uploads again what its log holds and reports holes).
    /// Besides, a purge checks the objects of the entries it drops.
    #[arg(long = "object-store.check-interval", env = "REGATTA_OBJECT_STORE_CHECK_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration)]
    pub archive_check_interval: Duration,
    /// Name of this node in MemberList (default: `node-<id>`).
    #[arg(long = "node-name", env = "REGATTA_NODE_NAME")]
    pub node_name: Option<String>,
    #[command(flatten)]
    pub regatta: crate::flags::regatta::RegattaArgs,
}

/// Validated settings of a core node.
#[derive(Debug, Clone)]
pub struct CoreSettings {
    pub node_id: u64,
    pub name: String,
    pub cluster_name: String,
    pub raft_address: ListenAddress,
    pub raft_advertise: String,
    /// TLS with mutual authentication on the Raft port and to peers; `None`: plaintext.
    pub raft_tls: Option<RaftTls>,
    pub initial_members: BTreeMap<u64, String>,
    pub heartbeat_interval: Duration,
    pub election_timeout: Duration,
    pub snapshot_entries: u64,
    pub keep_entries: u64,
    pub batch_limits: regatta_core::batcher::BatchLimits,
    pub api: ApiSettings,
    pub replication: ReplicationSettings,
    pub rest_address: crate::flags::rest::RestSettings,
    pub storage: StorageArgs,
    pub object_store: String,
    pub object_store_flags: crate::objects::ObjectStoreFlags,
    pub upload: regatta_core::uploader::UploadPolicy,
    pub keep_snapshots: usize,
    pub archive_check_interval: Duration,
}

impl CoreArgs {
    /// Checks every option and returns the settings, or an error naming the option.
    pub fn validate(&self) -> Result<CoreSettings> {
        let Some(node_id) = self.node_id else {
            bail!("--raft.node-id is required")
        };
        if node_id == 0 {
            bail!("--raft.node-id must be a positive integer");
        }
        let initial_members = parse_members(&self.initial_members)?;
        if self.heartbeat_interval.is_zero() || self.election_timeout < self.heartbeat_interval * 3
        {
            bail!(
                "--raft.election-timeout ({:?}) must be at least three --raft.heartbeat-interval ({:?})",
                self.election_timeout,
                self.heartbeat_interval
            );
        }
        if self.snapshot_entries == 0 {
            bail!("--raft.snapshot-entries must be positive");
        }
        if !(1..=65_536).contains(&self.max_batch_writes) {
            bail!("--raft.max-batch-writes must be between 1 and 65536");
        }
        if !(1..=64).contains(&self.proposals_in_flight) {
            bail!("--raft.proposals-in-flight must be between 1 and 64");
        }
        self.storage.validate()?;
        let api = self.api.validate()?;
        let raft_listen = &self.raft_address.raft_address;
        let raft_address = ListenAddress::parse("raft.address", raft_listen)?;
        let replication = self.replication.validate()?;
        let rest_address = self.rest.address()?;
        let object_store = match &self.object_store.object_store {
            Some(url) => url.clone(),
            None => {
                let dir =
                    std::path::absolute(&self.storage.data_dir).context("resolving --data-dir")?;
                format!("file://{}", dir.join("objects").display())
            }
        };
        let raft_tls = self.raft_tls.validate()?;
        let raft_advertise = advertised(
            "raft.advertise-address",
            self.raft_advertise.as_ref(),
            raft_listen,
        )?;
        check_raft_transport(
            raft_tls.is_some(),
            raft_listen,
            &raft_advertise,
            &initial_members,
        )?;
        Ok(CoreSettings {
            node_id,
            name: self
                .node_name
                .clone()
                .unwrap_or_else(|| format!("node-{node_id}")),
            cluster_name: self.cluster_name.clone(),
            raft_advertise,
            raft_address,
            raft_tls,
            initial_members,
            heartbeat_interval: self.heartbeat_interval,
            election_timeout: self.election_timeout,
            snapshot_entries: self.snapshot_entries,
            keep_entries: self.keep_entries,
            batch_limits: regatta_core::batcher::BatchLimits {
                max_writes: self.max_batch_writes,
                in_flight: self.proposals_in_flight,
                ..Default::default()
            },
            api,
            replication,
            rest_address,
            storage: self.storage.clone(),
            object_store,
            object_store_flags: self.object_store.connection.clone(),
            upload: regatta_core::uploader::UploadPolicy {
                entries: self.upload_entries.max(1),
                interval: self.upload_interval,
            },
            keep_snapshots: self.keep_snapshots,
            archive_check_interval: self.archive_check_interval,
        })
    }
}

/// Parses `id=url` pairs; ids must be positive and unique, urls valid.
pub fn parse_members(pairs: &[String]) -> Result<BTreeMap<u64, String>> {
    let mut members = BTreeMap::new();
    for pair in pairs.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        let Some((id, url)) = pair.split_once('=') else {
            bail!("--raft.initial-members: {pair:?} is not id=url");
        };
        let id: u64 = id
            .trim()
            .parse()
            .with_context(|| format!("--raft.initial-members: {id:?} is not a node id"))?;
        if id == 0 {
            bail!("--raft.initial-members: node ids must be positive");
        }
        ListenAddress::check_peer_url("raft.initial-members", url.trim())?;
        if members.insert(id, url.trim().to_string()).is_some() {
            bail!("--raft.initial-members: node {id} is listed twice");
        }
    }
    Ok(members)
}

/// Every Raft URL of the node's flags fits its transport: `https://` with the
/// `--raft.*-filename` flags, not `https://` without them (an error naming the flag, the
/// URL and the flags).
fn check_raft_transport(
    tls: bool,
    listen: &str,
    advertise: &str,
    members: &BTreeMap<u64, String>,
) -> Result<()> {
    let check = |flag: &str, url: &str| {
        regatta_core::peer_url::check_transport(flag, url, tls).map_err(anyhow::Error::msg)
    };
    check("raft.address", listen)?;
    check("raft.advertise-address", advertise)?;
    for (id, url) in members {
        check(&format!("raft.initial-members (node {id})"), url)?;
    }
    Ok(())
}

impl CoreSettings {
    pub fn raft_config(&self) -> openraft::Config {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        openraft::Config {
            cluster_name: self.cluster_name.clone(),
            heartbeat_interval: millis(self.heartbeat_interval),
            election_timeout_min: millis(self.election_timeout),
            election_timeout_max: millis(self.election_timeout) * 2,
            // Snapshots stream as one call (see regatta-api's raft_network); the per-chunk
            // timeout only matters for the chunked fallback.
            install_snapshot_timeout: 60_000,
            max_payload_entries: 1024,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_entries),
            max_in_snapshot_log_to_keep: self.keep_entries,
            purge_batch_size: self.snapshot_entries.clamp(1, 1024),
            ..Default::default()
        }
    }

    pub fn log_options(&self) -> regatta_log::Options {
        regatta_log::Options {
            segment_bytes: self.storage.segment_size,
            ..Default::default()
        }
    }

    /// The effective configuration, as Cluster.Status shows it when asked.
    pub fn describe(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("raft.node-id".into(), self.node_id.to_string()),
            ("raft.cluster-name".into(), self.cluster_name.clone()),
            ("raft.advertise-address".into(), self.raft_advertise.clone()),
            ("api.advertise-address".into(), self.api.advertise.clone()),
            (
                "replication.advertise-address".into(),
                self.replication.advertise.clone(),
            ),
            (
                "data-dir".into(),
                self.storage.data_dir.display().to_string(),
            ),
            ("object-store".into(), self.object_store.clone()),
            (
                "raft.snapshot-entries".into(),
                self.snapshot_entries.to_string(),
            ),
            ("raft.keep-entries".into(), self.keep_entries.to_string()),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_parse_and_reject_nonsense() {
        let m = parse_members(&["1=http://a:1".into(), " 2=http://b:2 ".into()]).expect("valid");
        assert_eq!(m.len(), 2);
        assert_eq!(m[&2], "http://b:2");
        for bad in ["x=http://a:1", "0=http://a:1", "1", "1=ftp://a:1"] {
            assert!(parse_members(&[bad.into()]).is_err(), "{bad} accepted");
        }
        assert!(parse_members(&["1=http://a:1".into(), "1=http://b:1".into()]).is_err());
    }

    #[test]
    fn raft_urls_fit_the_transport() {
        let members =
            parse_members(&["1=https://a:1".into(), "2=http://b:2".into()]).expect("valid");
        let err = check_raft_transport(true, "https://a:1", "https://a:1", &members)
            .expect_err("an http:// member with TLS");
        let text = err.to_string();
        assert!(
            text.contains("--raft.initial-members (node 2)") && text.contains("http://b:2"),
            "{text}"
        );
        let err = check_raft_transport(true, "http://a:1", "https://a:1", &BTreeMap::new())
            .expect_err("an http:// listen address with TLS");
        assert!(err.to_string().contains("--raft.address"), "{err}");
        let err = check_raft_transport(true, "https://a:1", "http://a:1", &BTreeMap::new())
            .expect_err("an http:// advertise address with TLS");
        assert!(
            err.to_string().contains("--raft.advertise-address"),
            "{err}"
        );
        let err = check_raft_transport(false, "https://a:1", "https://a:1", &BTreeMap::new())
            .expect_err("https:// without TLS");
        assert!(err.to_string().contains("--raft.cert-filename"), "{err}");
        check_raft_transport(false, "http://a:1", "http://a:1", &BTreeMap::new())
            .expect("plaintext");
    }
}
