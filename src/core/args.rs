//! Options of `regatta core`, and their validation into [`CoreSettings`].

use std::{collections::BTreeMap, time::Duration};

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::{
    address::ListenAddress,
    address::with_scheme,
    flags::{
        api::ApiSettings,
        raft::{RaftAddresses, RaftTls},
        replication::ReplicationSettings,
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
    #[arg(
        long = "raft.node-id",
        env = "REGATTA_RAFT_NODE_ID",
        default_value_t = 1
    )]
    pub node_id: u64,
    #[command(flatten)]
    pub raft_address: crate::flags::raft::RaftAddressArg,
    // Boxed, as the other groups most often unset: kept out of the command's size.
    #[command(flatten)]
    pub raft_listen: Box<crate::flags::raft::RaftListenArgs>,
    // Boxed: three paths, most often unset, kept out of the command's size.
    #[command(flatten)]
    pub raft_tls: Box<crate::flags::raft::RaftTlsArgs>,
    /// The cluster's first members as `id=address` pairs, comma-separated or repeated; an
    /// address is host:port (Regatta's form, `1=10.0.0.1:5012,2=10.0.0.2:5012`; https://
    /// with --raft.cert-filename) or a URL (`1=http://10.0.0.1:5012`). Used once, on the
    /// first start of a new cluster; a node not listed waits to be added with
    /// `regatta cluster add-member`.
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
    #[command(flatten)]
    pub timing: Box<crate::flags::raft::RaftTimingArgs>,
    /// Take a snapshot of the state after this many new log entries; the log behind a
    /// snapshot, less its last --raft.keep-entries, is then dropped. 0: no automatic
    /// snapshots, as in Regatta: the log is never compacted, grows without bound, and a
    /// restart replays all of it (uploads to the object store,
    /// --object-store.snapshot-entries, go on: they do not depend on it).
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
    /// Regatta's name of --raft.keep-entries (one or the other).
    #[arg(
        long = "raft.compaction-overhead",
        env = "REGATTA_RAFT_COMPACTION_OVERHEAD",
        conflicts_with = "keep_entries"
    )]
    pub compaction_overhead: Option<u64>,
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
    /// Tables to create once the cluster has a leader, comma-separated; one that exists
    /// already is left as it is (logged). Every node given the list tries; the first wins.
    #[arg(
        long = "tables.names",
        env = "REGATTA_TABLES_NAMES",
        value_delimiter = ','
    )]
    pub tables_names: Vec<String>,
    /// Tables to delete once the cluster has a leader (after creating --tables.names),
    /// comma-separated; one that does not exist is logged.
    #[arg(
        long = "tables.delete",
        env = "REGATTA_TABLES_DELETE",
        value_delimiter = ','
    )]
    pub tables_delete: Vec<String>,
    #[command(flatten)]
    pub services: crate::flags::services::ServiceArgs,
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
    /// How often the leader looks for keys whose time to live has passed and proposes
    /// their deletion (the delete is at most about this late, plus one commit; reads never
    /// return an expired key).
    #[arg(long = "ttl.expiry-interval", env = "REGATTA_TTL_EXPIRY_INTERVAL", default_value = "100ms", value_parser = humantime::parse_duration)]
    pub ttl_expiry_interval: Duration,
    /// The most expired keys one expiry entry of the log deletes (the leader proposes
    /// entry after entry until none is left). One entry is one revision of that many
    /// DELETE events for watchers: keep it well below their `--watch.buffer-events`.
    #[arg(
        long = "ttl.expiry-batch-keys",
        env = "REGATTA_TTL_EXPIRY_BATCH_KEYS",
        default_value_t = 1000
    )]
    pub ttl_expiry_batch_keys: usize,
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
    /// Where the Raft port binds (`--raft.listen-address`, else `--raft.address`).
    pub raft_address: ListenAddress,
    /// Where peers reach this node (`--raft.address`).
    pub raft_advertise: String,
    /// TLS with mutual authentication on the Raft port and to peers; `None`: plaintext.
    pub raft_tls: Option<RaftTls>,
    pub initial_members: BTreeMap<u64, String>,
    pub heartbeat_interval: Duration,
    pub election_timeout: Duration,
    /// 0: no automatic snapshots.
    pub snapshot_entries: u64,
    pub keep_entries: u64,
    /// `--tables.names`, then `--tables.delete`: made once the cluster has a leader.
    pub table_changes: Vec<super::tables::TableChange>,
    pub services: crate::flags::services::ServiceArgs,
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
    pub expiry: regatta_core::expiry::ExpirySettings,
}

impl CoreArgs {
    /// Checks every option and returns the settings, or an error naming the option.
    pub fn validate(&self) -> Result<CoreSettings> {
        let node_id = self.node_id;
        if node_id == 0 {
            bail!("--raft.node-id must be a positive integer");
        }
        let raft_tls = self.raft_tls.validate()?;
        let raft = self
            .raft_listen
            .resolve(&self.raft_address.raft_address, raft_tls.is_some())?;
        let initial_members = parse_members(&self.initial_members, raft_tls.is_some())?;
        let timing = self.timing.validate()?;
        if !(1..=65_536).contains(&self.max_batch_writes) {
            bail!("--raft.max-batch-writes must be between 1 and 65536");
        }
        if !(1..=64).contains(&self.proposals_in_flight) {
            bail!("--raft.proposals-in-flight must be between 1 and 64");
        }
        if self.ttl_expiry_interval < Duration::from_millis(1)
            || self.ttl_expiry_interval > Duration::from_secs(3600)
        {
            bail!("--ttl.expiry-interval must be between 1ms and 1h");
        }
        if !(1..=10_000).contains(&self.ttl_expiry_batch_keys) {
            bail!(
                "--ttl.expiry-batch-keys must be between 1 and 10000 (an entry of 10000 keys of 1 KiB is 10 MiB)"
            );
        }
        self.storage.validate()?;
        let api = self.api.validate()?;
        let raft_address = ListenAddress::parse(raft.listen_flag, &raft.listen)?;
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
        check_raft_transport(raft_tls.is_some(), &raft, &initial_members)?;
        let table_changes =
            super::tables::TableChange::from_flags(&self.tables_names, &self.tables_delete)?;
        Ok(CoreSettings {
            node_id,
            name: self
                .node_name
                .clone()
                .unwrap_or_else(|| format!("node-{node_id}")),
            cluster_name: self.cluster_name.clone(),
            raft_advertise: raft.advertise,
            raft_address,
            raft_tls,
            initial_members,
            heartbeat_interval: timing.heartbeat,
            election_timeout: timing.election_timeout,
            snapshot_entries: self.snapshot_entries,
            keep_entries: self.compaction_overhead.unwrap_or(self.keep_entries),
            table_changes,
            services: self.services,
            expiry: regatta_core::expiry::ExpirySettings {
                interval: self.ttl_expiry_interval,
                max_keys: self.ttl_expiry_batch_keys,
            },
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

/// Parses `--raft.initial-members`: `id=address` pairs, the address a URL or Regatta's
/// bare `host:port` (`https://` when `tls`, the `--raft.*-filename` flags, are given,
/// `http://` otherwise). Ids must be positive and unique, addresses valid.
pub fn parse_members(pairs: &[String], tls: bool) -> Result<BTreeMap<u64, String>> {
    const FLAG: &str = "raft.initial-members";
    let mut members = BTreeMap::new();
    for pair in pairs.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        let Some((id, address)) = pair.split_once('=') else {
            bail!("--{FLAG}: {pair:?} is not id=address (1=127.0.0.1:5012)");
        };
        let id: u64 = id
            .trim()
            .parse()
            .with_context(|| format!("--{FLAG}: {id:?} is not a node id"))?;
        if id == 0 {
            bail!("--{FLAG}: node ids must be positive");
        }
        let url = with_scheme(FLAG, address, tls)?;
        ListenAddress::check_peer_url(FLAG, &url)?;
        if members.insert(id, url).is_some() {
            bail!("--{FLAG}: node {id} is listed twice");
        }
    }
    Ok(members)
}

/// Every Raft URL of the node's flags fits its transport: `https://` with the
/// `--raft.*-filename` flags, not `https://` without them (an error naming the flag, the
/// URL and the flags).
fn check_raft_transport(
    tls: bool,
    raft: &RaftAddresses,
    members: &BTreeMap<u64, String>,
) -> Result<()> {
    let check = |flag: &str, url: &str| {
        regatta_core::peer_url::check_transport(flag, url, tls).map_err(anyhow::Error::msg)
    };
    check(raft.listen_flag, &raft.listen)?;
    check("raft.address", &raft.advertise)?;
    for (id, url) in members {
        check(&format!("raft.initial-members (node {id})"), url)?;
    }
    Ok(())
}

/// When Raft snapshots the state: every `entries` new entries; never for 0 (Regatta's "no
/// automatic snapshots"), so the log is never compacted.
pub fn snapshot_policy(entries: u64) -> openraft::SnapshotPolicy {
    match entries {
        0 => openraft::SnapshotPolicy::Never,
        n => openraft::SnapshotPolicy::LogsSinceLast(n),
    }
}

/// openraft's `(election_timeout_min, election_timeout_max)` in milliseconds for an election
/// timeout of `timeout` (`--raft.election-timeout`): 0.4× and 0.6× of it.
///
/// openraft 0.9 does not start an election when the range says: a follower that heard from
/// a leader waits out the leader lease (`election_timeout_max`) and then its own random
/// timeout (drawn once from the range), and refuses to vote for anyone within the lease.
/// With the range at 0.4–0.6× a follower campaigns 1.0–1.2× `timeout` after the last
/// heartbeat, as the flag promises; with the range at 1–2× it took 3–4×, plus 4× more after
/// a vote it lost to a node with a longer log (`2 × election_timeout_max`, now 1.2×).
/// Safety does not depend on it: linearizable reads confirm leadership with a quorum round
/// (`get_read_log_id`), never with the lease. The minimum stays above `heartbeat` (at
/// most a third of `timeout`, checked with the flags), as openraft requires.
pub fn election_timeouts(heartbeat: Duration, timeout: Duration) -> (u64, u64) {
    let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 4);
    let (heartbeat, timeout) = (millis(heartbeat), millis(timeout));
    let min = (timeout * 2 / 5).max(heartbeat + 1);
    let max = (timeout * 3 / 5).max(min + 1);
    (min, max)
}

impl CoreSettings {
    pub fn raft_config(&self) -> openraft::Config {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let (election_timeout_min, election_timeout_max) =
            election_timeouts(self.heartbeat_interval, self.election_timeout);
        openraft::Config {
            cluster_name: self.cluster_name.clone(),
            heartbeat_interval: millis(self.heartbeat_interval),
            election_timeout_min,
            election_timeout_max,
            // Snapshots stream as one call (see regatta-api's raft_network); the per-chunk
            // timeout only matters for the chunked fallback.
            install_snapshot_timeout: 60_000,
            max_payload_entries: 1024,
            snapshot_policy: snapshot_policy(self.snapshot_entries),
            max_in_snapshot_log_to_keep: self.keep_entries,
            purge_batch_size: match self.snapshot_entries {
                0 => 1024,
                n => n.min(1024),
            },
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
            ("raft.address".into(), self.raft_advertise.clone()),
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
    use clap::Parser;

    use super::*;

    fn members(values: &[&str], tls: bool) -> Result<BTreeMap<u64, String>> {
        parse_members(
            &values.iter().map(|v| v.to_string()).collect::<Vec<_>>(),
            tls,
        )
    }

    #[test]
    fn members_parse_and_reject_nonsense() {
        let m = members(&["1=http://a:1", " 2=http://b:2 "], false).expect("valid");
        assert_eq!(m.len(), 2);
        assert_eq!(m[&2], "http://b:2");
        for bad in [
            "x=http://a:1",
            "0=http://a:1",
            "1",
            "1=ftp://a:1",
            "1=a",
            "1=",
        ] {
            let err = members(&[bad], false).expect_err(bad).to_string();
            assert!(err.contains("--raft.initial-members"), "{bad}: {err}");
        }
        assert!(members(&["1=http://a:1", "1=b:1"], false).is_err());
    }

    #[test]
    fn bare_members_take_the_scheme_of_the_raft_transport() {
        let m = members(&["1=127.0.0.1:5012", "2=http://127.0.0.1:5013"], false).expect("mixed");
        assert_eq!(m[&1], "http://127.0.0.1:5012");
        assert_eq!(m[&2], "http://127.0.0.1:5013");
        let m = members(&["1=node-1:5012"], true).expect("TLS");
        assert_eq!(m[&1], "https://node-1:5012");
    }

    /// The forms Regatta's command lines give the flag in (the environment's comma list:
    /// tests/core_validation.rs).
    #[test]
    fn members_come_as_a_comma_list_or_repeated_flags() {
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            core: CoreArgs,
        }
        let parse = |args: &[&str]| {
            let cli = Cli::try_parse_from([&["regatta"], args].concat()).expect("parses");
            parse_members(&cli.core.initial_members, false).expect("valid")
        };
        let expected = BTreeMap::from([
            (1, "http://127.0.0.1:5012".to_string()),
            (2, "http://127.0.0.1:5013".to_string()),
        ]);
        assert_eq!(
            parse(&["--raft.initial-members=1=127.0.0.1:5012,2=127.0.0.1:5013"]),
            expected
        );
        assert_eq!(
            parse(&[
                "--raft.initial-members",
                "1=127.0.0.1:5012",
                "--raft.initial-members=2=http://127.0.0.1:5013"
            ]),
            expected
        );
    }

    fn addresses(listen: &str, advertise: &str) -> RaftAddresses {
        RaftAddresses {
            advertise: advertise.into(),
            listen: listen.into(),
            listen_flag: "raft.listen-address",
        }
    }

    #[test]
    fn raft_urls_fit_the_transport() {
        let members = members(&["1=https://a:1", "2=http://b:2"], false).expect("valid");
        let err = check_raft_transport(true, &addresses("https://a:1", "https://a:1"), &members)
            .expect_err("an http:// member with TLS");
        let text = err.to_string();
        assert!(
            text.contains("--raft.initial-members (node 2)") && text.contains("http://b:2"),
            "{text}"
        );
        let none = BTreeMap::new();
        let err = check_raft_transport(true, &addresses("http://a:1", "https://a:1"), &none)
            .expect_err("an http:// listen address with TLS");
        assert!(err.to_string().contains("--raft.listen-address"), "{err}");
        let err = check_raft_transport(true, &addresses("https://a:1", "http://a:1"), &none)
            .expect_err("an http:// advertised address with TLS");
        assert!(err.to_string().contains("--raft.address"), "{err}");
        let err = check_raft_transport(false, &addresses("https://a:1", "https://a:1"), &none)
            .expect_err("https:// without TLS");
        assert!(err.to_string().contains("--raft.cert-filename"), "{err}");
        check_raft_transport(false, &addresses("http://a:1", "http://a:1"), &none)
            .expect("plaintext");
    }

    fn core(args: &[&str]) -> Result<CoreSettings> {
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            core: CoreArgs,
        }
        let cli = Cli::try_parse_from([&["regatta"], args].concat())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        cli.core.validate()
    }

    #[test]
    fn regattas_quickstart_line_validates() {
        let settings = core(&[
            "--raft.address=127.0.0.1:5012",
            "--raft.initial-members=1=127.0.0.1:5012",
        ])
        .expect("valid");
        assert_eq!(settings.node_id, 1, "Regatta's default node id");
        assert_eq!(settings.raft_advertise, "http://127.0.0.1:5012");
        assert_eq!(
            settings.raft_address.tcp(),
            Some("127.0.0.1:5012".parse().expect("addr"))
        );
        assert_eq!(settings.initial_members[&1], "http://127.0.0.1:5012");
    }

    #[test]
    fn a_listen_address_binds_apart_from_the_advertised_one() {
        let settings = core(&[
            "--raft.address=127.0.0.1:5013",
            "--raft.listen-address=0.0.0.0:5013",
        ])
        .expect("valid");
        assert_eq!(settings.raft_advertise, "http://127.0.0.1:5013");
        assert_eq!(
            settings.raft_address.tcp(),
            Some("0.0.0.0:5013".parse().expect("addr"))
        );
        let err = core(&["--raft.advertise-address=http://a:1"])
            .expect_err("gone")
            .to_string();
        assert!(err.contains("--raft.listen-address"), "{err}");
    }

    #[test]
    fn compaction_overhead_is_keep_entries_and_not_both() {
        assert_eq!(core(&[]).expect("defaults").keep_entries, 100_000);
        assert_eq!(
            core(&["--raft.compaction-overhead=500"])
                .expect("Regatta's name")
                .keep_entries,
            500
        );
        let err = core(&["--raft.compaction-overhead=5", "--raft.keep-entries=6"])
            .expect_err("both")
            .to_string();
        assert!(
            err.contains("--raft.compaction-overhead") && err.contains("--raft.keep-entries"),
            "{err}"
        );
    }

    #[test]
    fn zero_snapshot_entries_means_no_automatic_snapshots() {
        let settings = core(&["--raft.snapshot-entries=0"]).expect("0 is accepted");
        let config = settings.raft_config();
        assert_eq!(config.snapshot_policy, openraft::SnapshotPolicy::Never);
        assert!(config.purge_batch_size > 0);
        config.validate().expect("openraft accepts it");
        assert_eq!(
            core(&[]).expect("defaults").raft_config().snapshot_policy,
            openraft::SnapshotPolicy::LogsSinceLast(100_000)
        );
    }

    #[test]
    fn followers_campaign_within_one_to_one_point_two_election_timeouts() {
        for timeout in [10, 450, 1000, 60_000] {
            let (min, max) = election_timeouts(
                Duration::from_millis(timeout / 3),
                Duration::from_millis(timeout),
            );
            assert!(min < max, "{timeout}: {min}..{max}");
            // openraft: lease (max) + a timeout drawn from min..max.
            let (first, last) = (max + min, max + max);
            assert!(
                first + 1 >= timeout && last <= timeout * 6 / 5 + 2,
                "{timeout}: {first}..{last}"
            );
        }
        let config = core(&[
            "--raft.heartbeat-interval=300ms",
            "--raft.election-timeout=900ms",
        ])
        .expect("three heartbeats")
        .raft_config();
        assert!(config.election_timeout_min > config.heartbeat_interval);
        config
            .validate()
            .expect("openraft accepts the shortest timeout allowed");
        let tiny = core(&[
            "--raft.heartbeat-interval=1ms",
            "--raft.election-timeout=3ms",
        ])
        .expect("three heartbeats")
        .raft_config();
        tiny.validate().expect("above the heartbeat however short");
    }

    #[test]
    fn round_trip_flags_set_raft_timing() {
        let config = core(&["--raft.rtt=100ms"]).expect("rtt").raft_config();
        assert_eq!(
            (
                config.heartbeat_interval,
                config.election_timeout_min,
                config.election_timeout_max
            ),
            (100, 800, 1200),
            "an election 2 s (lease 1.2 s + 0.8..1.2 s) after the last heartbeat"
        );
        config.validate().expect("openraft accepts it");
        let err = core(&["--raft.election-rtt=10", "--raft.heartbeat-interval=1s"])
            .expect_err("both ways")
            .to_string();
        assert!(
            err.contains("--raft.election-rtt") && err.contains("--raft.heartbeat-interval"),
            "{err}"
        );
    }
}
