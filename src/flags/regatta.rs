//! Regatta's flags that have no meaning in this build, accepted so that a Regatta command
//! line, environment or config file starts a node here: [`RegattaArgs`] (core and edge)
//! and [`FollowerArgs`] (the `--raft.*` and polling flags of Regatta's follower, edge only).
//!
//! Each flag given (a value, or a boolean `true` or `false`) yields one [`Warning`]: the
//! flag, its value, and what this build does instead; `main` logs them once at start, after
//! logging is set up. Three map onto this build's own options instead of being ignored:
//!
//! | Regatta | here |
//! |---|---|
//! | `--memberlist.node-name` | `--node-name` (both given: an error) |
//! | `--raft.node-host-dir` | `--data-dir` when that is not given ([`node_host_dir_as_data_dir`]); else ignored |
//! | `--raft.node-id` of a follower | the edge's `--node-id` (both given: an error) |
//!
//! The types are Regatta's (durations, integer sizes, pflag booleans: `--x`, `--x=true`,
//! `--x=false`), so a value Regatta accepts parses here.

use std::{
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};

use clap::{builder::BoolishValueParser, parser::ValueSource};

/// The `--help` section of these flags.
const HEADING: &str = "Regatta compatibility";

/// One Regatta flag given that this build does not honour as Regatta does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The flag, `--` included.
    pub flag: &'static str,
    /// Its value as given.
    pub value: String,
    /// What this build does instead.
    pub instead: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}: {}", self.flag, self.value, self.instead)
    }
}

const NO_GOSSIP: &str = "ignored: no gossip here; core membership is Raft's (Admin API), \
    edges find the core through --replication.leader-address";
const NO_CACHE: &str = "ignored: tables are held in memory, no block or table cache";
const ONE_LOG: &str = "ignored: one log format here, the segment log under --data-dir";
const ON_API_PORT: &str =
    "ignored: the Maintenance service is served on the API port (--api.address and its TLS)";
const UNDER_DATA_DIR: &str = "ignored: the log and state live under --data-dir";
const NO_QUEUES: &str = "ignored: no Raft message queues to size; each peer is replicated \
    to over one gRPC stream, proposals are bounded by --raft.max-batch-writes and \
    --raft.proposals-in-flight";
const NO_SNAPSHOT_RATE: &str = "ignored: snapshots stream as one call, without a rate limit";
const NOT_A_MEMBER: &str =
    "ignored: an edge is not a Raft member; it follows --replication.leader-address";
const PUSHED: &str = "ignored: the core pushes the log on one stream; no polling, leases \
    or per-table workers";

/// Regatta's flags, core and edge, that this build accepts and warns about (see the
/// module docs).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RegattaArgs {
    /// Regatta's gossip address. Ignored: no gossip here; core membership is Raft's (Admin
    /// API), edges find the core through --replication.leader-address.
    #[arg(
        long = "memberlist.address", help_heading = HEADING,
        value_name = "ADDRESS",
        env = "REGATTA_MEMBERLIST_ADDRESS"
    )]
    pub memberlist_address: Option<String>,
    /// Regatta's gossip advertise address. Ignored, as --memberlist.address.
    #[arg(
        long = "memberlist.advertise-address", help_heading = HEADING,
        value_name = "ADDRESS",
        env = "REGATTA_MEMBERLIST_ADVERTISE_ADDRESS"
    )]
    pub memberlist_advertise_address: Option<String>,
    /// Regatta's gossip seeds, comma-separated. Ignored, as --memberlist.address.
    #[arg(
        long = "memberlist.members", help_heading = HEADING,
        value_name = "LIST",
        env = "REGATTA_MEMBERLIST_MEMBERS",
        value_delimiter = ','
    )]
    pub memberlist_members: Vec<String>,
    /// Regatta's gossip cluster name. Ignored, as --memberlist.address (the name MemberList
    /// reports is --raft.cluster-name).
    #[arg(
        long = "memberlist.cluster-name", help_heading = HEADING,
        value_name = "VALUE",
        env = "REGATTA_MEMBERLIST_CLUSTER_NAME"
    )]
    pub memberlist_cluster_name: Option<String>,
    /// Regatta's name of the node in gossip: here the same as --node-name (give one of the
    /// two).
    #[arg(
        long = "memberlist.node-name", help_heading = HEADING,
        value_name = "NAME",
        env = "REGATTA_MEMBERLIST_NODE_NAME",
        conflicts_with = "node_name"
    )]
    pub memberlist_node_name: Option<String>,
    /// Regatta's Pebble block cache, bytes. Ignored: tables are held in memory, no block or
    /// table cache.
    #[arg(
        long = "storage.block-cache-size", help_heading = HEADING,
        value_name = "BYTES",
        env = "REGATTA_STORAGE_BLOCK_CACHE_SIZE"
    )]
    pub storage_block_cache_size: Option<u64>,
    /// Regatta's Pebble table cache, entries. Ignored, as --storage.block-cache-size.
    #[arg(
        long = "storage.table-cache-size", help_heading = HEADING,
        value_name = "N",
        env = "REGATTA_STORAGE_TABLE_CACHE_SIZE"
    )]
    pub storage_table_cache_size: Option<u64>,
    /// Regatta's experimental Raft log database. Ignored (true or false): one log format
    /// here, the segment log under --data-dir.
    #[arg(
        long = "experimental.tanlogdb", help_heading = HEADING, value_name = "BOOL",
        env = "REGATTA_EXPERIMENTAL_TANLOGDB",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = BoolishValueParser::new()
    )]
    pub experimental_tanlogdb: Option<bool>,
    /// Regatta's separate Maintenance port. Ignored: the Maintenance service is served on
    /// the API port (--api.address and its TLS).
    #[arg(
        long = "maintenance.address", help_heading = HEADING,
        value_name = "ADDRESS",
        env = "REGATTA_MAINTENANCE_ADDRESS"
    )]
    pub maintenance_address: Option<String>,
    /// Certificate of Regatta's Maintenance port. Ignored, as --maintenance.address.
    #[arg(
        long = "maintenance.cert-filename", help_heading = HEADING,
        value_name = "FILE",
        env = "REGATTA_MAINTENANCE_CERT_FILENAME"
    )]
    pub maintenance_cert_filename: Option<PathBuf>,
    /// Key of Regatta's Maintenance port. Ignored, as --maintenance.address.
    #[arg(
        long = "maintenance.key-filename", help_heading = HEADING,
        value_name = "FILE",
        env = "REGATTA_MAINTENANCE_KEY_FILENAME"
    )]
    pub maintenance_key_filename: Option<PathBuf>,
    /// Regatta's switch for gRPC reflection. Ignored (true or false): reflection v1 and
    /// v1alpha are always served.
    #[arg(
        long = "api.reflection-api", help_heading = HEADING, value_name = "BOOL",
        env = "REGATTA_API_REFLECTION_API",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = BoolishValueParser::new()
    )]
    pub api_reflection_api: Option<bool>,
    /// Regatta's gRPC stream workers. Ignored: requests run on the async runtime; size it
    /// with --runtime.worker-threads.
    #[arg(
        long = "api.stream-workers", help_heading = HEADING,
        value_name = "N",
        env = "REGATTA_API_STREAM_WORKERS"
    )]
    pub api_stream_workers: Option<u64>,
    /// Regatta's HTTP read timeout. Ignored: the HTTP port bounds TLS handshakes (10s), not
    /// the reading of request headers.
    #[arg(long = "rest.read-timeout", help_heading = HEADING, value_name = "DURATION", env = "REGATTA_REST_READ_TIMEOUT", value_parser = humantime::parse_duration)]
    pub rest_read_timeout: Option<Duration>,
    /// Regatta's cache of log entries for followers. Ignored: the tail reads the mmapped log
    /// segments, no separate cache.
    #[arg(
        long = "replication.log-cache-size", help_heading = HEADING,
        value_name = "BYTES",
        env = "REGATTA_REPLICATION_LOG_CACHE_SIZE"
    )]
    pub replication_log_cache_size: Option<u64>,
    /// Regatta's largest replication message sent. Ignored: the tail caps each message at
    /// 4 MiB of entries (or 1024 entries); edges accept messages up to 64 MiB.
    #[arg(
        long = "replication.max-send-message-size-bytes", help_heading = HEADING,
        value_name = "BYTES",
        env = "REGATTA_REPLICATION_MAX_SEND_MESSAGE_SIZE_BYTES"
    )]
    pub replication_max_send_message_size_bytes: Option<u64>,
    /// Regatta's Raft directory. Without --data-dir (flag, environment or config file) it
    /// is the data directory; with it, ignored.
    #[arg(
        long = "raft.node-host-dir", help_heading = HEADING,
        value_name = "DIR",
        env = "REGATTA_RAFT_NODE_HOST_DIR"
    )]
    pub raft_node_host_dir: Option<PathBuf>,
    /// Regatta's Raft WAL directory. Ignored: the log and state live under --data-dir.
    #[arg(
        long = "raft.wal-dir", help_heading = HEADING,
        value_name = "DIR",
        env = "REGATTA_RAFT_WAL_DIR"
    )]
    pub raft_wal_dir: Option<PathBuf>,
    /// Regatta's state machine directory. Ignored, as --raft.wal-dir.
    #[arg(
        long = "raft.state-machine-dir", help_heading = HEADING,
        value_name = "DIR",
        env = "REGATTA_RAFT_STATE_MACHINE_DIR"
    )]
    pub raft_state_machine_dir: Option<PathBuf>,
    /// Regatta's state machine WAL directory. Ignored, as --raft.wal-dir.
    #[arg(
        long = "raft.state-machine-wal-dir", help_heading = HEADING,
        value_name = "DIR",
        env = "REGATTA_RAFT_STATE_MACHINE_WAL_DIR"
    )]
    pub raft_state_machine_wal_dir: Option<PathBuf>,
    /// Regatta's Raft log database. Ignored: one log format here, the segment log under
    /// --data-dir.
    #[arg(long = "raft.logdb", help_heading = HEADING, value_name = "VALUE", env = "REGATTA_RAFT_LOGDB")]
    pub raft_logdb: Option<String>,
    /// Regatta's bound on the in-memory Raft log, bytes. Ignored: the Raft log lives in
    /// segment files under --data-dir (--log.segment-size), not in an in-memory log.
    #[arg(
        long = "raft.max-in-mem-log-size", help_heading = HEADING,
        value_name = "BYTES",
        env = "REGATTA_RAFT_MAX_IN_MEM_LOG_SIZE"
    )]
    pub raft_max_in_mem_log_size: Option<u64>,
    /// Regatta's Raft receive queue, bytes. Ignored: no message queues; proposals are
    /// bounded by --raft.max-batch-writes and --raft.proposals-in-flight.
    #[arg(
        long = "raft.max-recv-queue-size", help_heading = HEADING,
        value_name = "BYTES",
        env = "REGATTA_RAFT_MAX_RECV_QUEUE_SIZE"
    )]
    pub raft_max_recv_queue_size: Option<u64>,
    /// Regatta's Raft send queue, bytes. Ignored, as --raft.max-recv-queue-size.
    #[arg(
        long = "raft.max-send-queue-size", help_heading = HEADING,
        value_name = "BYTES",
        env = "REGATTA_RAFT_MAX_SEND_QUEUE_SIZE"
    )]
    pub raft_max_send_queue_size: Option<u64>,
    /// Regatta's snapshot receive rate limit. Ignored: snapshots stream as one call, without
    /// a rate limit.
    #[arg(
        long = "raft.max-snapshot-recv-bytes-per-second", help_heading = HEADING,
        value_name = "BYTES",
        env = "REGATTA_RAFT_MAX_SNAPSHOT_RECV_BYTES_PER_SECOND"
    )]
    pub raft_max_snapshot_recv_bytes_per_second: Option<u64>,
    /// Regatta's snapshot send rate limit. Ignored, as
    /// --raft.max-snapshot-recv-bytes-per-second.
    #[arg(
        long = "raft.max-snapshot-send-bytes-per-second", help_heading = HEADING,
        value_name = "BYTES",
        env = "REGATTA_RAFT_MAX_SNAPSHOT_SEND_BYTES_PER_SECOND"
    )]
    pub raft_max_snapshot_send_bytes_per_second: Option<u64>,
    /// Regatta's snapshot recovery type (`snapshot` or `checkpoint`). Ignored: one way here,
    /// a snapshot streamed from the leader (or read from the object store) replaces the
    /// state.
    #[arg(
        long = "raft.snapshot-recovery-type", help_heading = HEADING,
        value_name = "VALUE",
        env = "REGATTA_RAFT_SNAPSHOT_RECOVERY_TYPE"
    )]
    pub raft_snapshot_recovery_type: Option<String>,
    /// Set by `main` when `--raft.node-host-dir` became the data directory.
    #[arg(skip)]
    pub node_host_dir_is_data_dir: bool,
}

/// Regatta's follower flags that an edge accepts and warns about, and `--raft.node-id`,
/// the edge's `--node-id`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct FollowerArgs {
    /// Regatta follower's Raft address. Ignored: an edge is not a Raft member; it follows
    /// --replication.leader-address.
    #[arg(
        long = "raft.address", help_heading = HEADING,
        value_name = "ADDRESS",
        id = "follower_raft_address",
        env = "REGATTA_RAFT_ADDRESS"
    )]
    pub raft_address: Option<String>,
    /// Regatta follower's Raft listen address. Ignored, as --raft.address.
    #[arg(
        long = "raft.listen-address", help_heading = HEADING,
        value_name = "ADDRESS",
        id = "follower_raft_listen_address",
        env = "REGATTA_RAFT_LISTEN_ADDRESS"
    )]
    pub raft_listen_address: Option<String>,
    /// Regatta follower's Raft members. Ignored, as --raft.address.
    #[arg(
        long = "raft.initial-members", help_heading = HEADING,
        value_name = "LIST",
        id = "follower_raft_initial_members",
        env = "REGATTA_RAFT_INITIAL_MEMBERS",
        value_delimiter = ','
    )]
    pub raft_initial_members: Vec<String>,
    /// Regatta follower's Raft round trip time. Ignored, as --raft.address.
    #[arg(long = "raft.rtt", help_heading = HEADING, value_name = "DURATION", id = "follower_raft_rtt", env = "REGATTA_RAFT_RTT", value_parser = humantime::parse_duration)]
    pub raft_rtt: Option<Duration>,
    /// Regatta follower's heartbeat, in round trips. Ignored, as --raft.address.
    #[arg(
        long = "raft.heartbeat-rtt", help_heading = HEADING,
        value_name = "N",
        id = "follower_raft_heartbeat_rtt",
        env = "REGATTA_RAFT_HEARTBEAT_RTT"
    )]
    pub raft_heartbeat_rtt: Option<u64>,
    /// Regatta follower's election timeout, in round trips. Ignored, as --raft.address.
    #[arg(
        long = "raft.election-rtt", help_heading = HEADING,
        value_name = "N",
        id = "follower_raft_election_rtt",
        env = "REGATTA_RAFT_ELECTION_RTT"
    )]
    pub raft_election_rtt: Option<u64>,
    /// Regatta follower's snapshot interval, entries. Ignored, as --raft.address (an edge's
    /// local snapshots: --edge.snapshot-entries).
    #[arg(
        long = "raft.snapshot-entries", help_heading = HEADING,
        value_name = "N",
        id = "follower_raft_snapshot_entries",
        env = "REGATTA_RAFT_SNAPSHOT_ENTRIES"
    )]
    pub raft_snapshot_entries: Option<u64>,
    /// Regatta follower's entries kept behind a snapshot. Ignored, as --raft.address (an
    /// edge's: --edge.keep-entries).
    #[arg(
        long = "raft.compaction-overhead", help_heading = HEADING,
        value_name = "N",
        id = "follower_raft_compaction_overhead",
        env = "REGATTA_RAFT_COMPACTION_OVERHEAD"
    )]
    pub raft_compaction_overhead: Option<u64>,
    /// Regatta follower's node id: here the same as --node-id (give one of the two).
    #[arg(
        long = "raft.node-id", help_heading = HEADING,
        value_name = "ID",
        id = "follower_raft_node_id",
        env = "REGATTA_RAFT_NODE_ID",
        conflicts_with = "node_id"
    )]
    pub raft_node_id: Option<u64>,
    /// Regatta follower's keepalive to the leader. Ignored: the upstream channel sends an
    /// HTTP/2 ping every 5s, and an upstream heard nothing from for --replication.staleness
    /// is left for the next.
    #[arg(long = "replication.keepalive-time", help_heading = HEADING, value_name = "DURATION", id = "follower_replication_keepalive_time", env = "REGATTA_REPLICATION_KEEPALIVE_TIME", value_parser = humantime::parse_duration)]
    pub keepalive_time: Option<Duration>,
    /// Regatta follower's keepalive timeout. Ignored, as --replication.keepalive-time.
    #[arg(long = "replication.keepalive-timeout", help_heading = HEADING, value_name = "DURATION", id = "follower_replication_keepalive_timeout", env = "REGATTA_REPLICATION_KEEPALIVE_TIMEOUT", value_parser = humantime::parse_duration)]
    pub keepalive_timeout: Option<Duration>,
    /// Regatta follower's largest message from the leader. Ignored: an edge accepts
    /// upstream messages up to 64 MiB (the core sends at most 4 MiB of entries in one).
    #[arg(
        long = "replication.max-recv-message-size-bytes", help_heading = HEADING,
        value_name = "BYTES",
        id = "follower_replication_max_recv_message_size_bytes",
        env = "REGATTA_REPLICATION_MAX_RECV_MESSAGE_SIZE_BYTES"
    )]
    pub max_recv_message_size_bytes: Option<u64>,
    /// Regatta follower's log polling interval. Ignored: the core pushes the log on one
    /// stream; no polling, leases or per-table workers.
    #[arg(long = "replication.poll-interval", help_heading = HEADING, value_name = "DURATION", id = "follower_replication_poll_interval", env = "REGATTA_REPLICATION_POLL_INTERVAL", value_parser = humantime::parse_duration)]
    pub poll_interval: Option<Duration>,
    /// Regatta follower's table reconciliation interval. Ignored, as
    /// --replication.poll-interval.
    #[arg(long = "replication.reconcile-interval", help_heading = HEADING, value_name = "DURATION", id = "follower_replication_reconcile_interval", env = "REGATTA_REPLICATION_RECONCILE_INTERVAL", value_parser = humantime::parse_duration)]
    pub reconcile_interval: Option<Duration>,
    /// Regatta follower's worker lease interval. Ignored, as --replication.poll-interval.
    #[arg(long = "replication.lease-interval", help_heading = HEADING, value_name = "DURATION", id = "follower_replication_lease_interval", env = "REGATTA_REPLICATION_LEASE_INTERVAL", value_parser = humantime::parse_duration)]
    pub lease_interval: Option<Duration>,
    /// Regatta follower's log RPC timeout. Ignored, as --replication.poll-interval.
    #[arg(long = "replication.log-rpc-timeout", help_heading = HEADING, value_name = "DURATION", id = "follower_replication_log_rpc_timeout", env = "REGATTA_REPLICATION_LOG_RPC_TIMEOUT", value_parser = humantime::parse_duration)]
    pub log_rpc_timeout: Option<Duration>,
    /// Regatta follower's snapshot RPC timeout. Ignored, as --replication.poll-interval.
    #[arg(long = "replication.snapshot-rpc-timeout", help_heading = HEADING, value_name = "DURATION", id = "follower_replication_snapshot_rpc_timeout", env = "REGATTA_REPLICATION_SNAPSHOT_RPC_TIMEOUT", value_parser = humantime::parse_duration)]
    pub snapshot_rpc_timeout: Option<Duration>,
    /// Regatta follower's concurrent table recoveries. Ignored, as
    /// --replication.poll-interval.
    #[arg(
        long = "replication.max-recovery-in-flight", help_heading = HEADING,
        value_name = "N",
        id = "follower_replication_max_recovery_in_flight",
        env = "REGATTA_REPLICATION_MAX_RECOVERY_IN_FLIGHT"
    )]
    pub max_recovery_in_flight: Option<u64>,
    /// Regatta follower's snapshot receive rate limit. Ignored, as
    /// --replication.poll-interval.
    #[arg(
        long = "replication.max-snapshot-recv-bytes-per-second", help_heading = HEADING,
        value_name = "BYTES",
        id = "follower_replication_max_snapshot_recv_bytes_per_second",
        env = "REGATTA_REPLICATION_MAX_SNAPSHOT_RECV_BYTES_PER_SECOND"
    )]
    pub max_snapshot_recv_bytes_per_second: Option<u64>,
}

/// Collects one [`Warning`] per flag given.
#[derive(Default)]
struct Warnings(Vec<Warning>);

impl Warnings {
    fn one(&mut self, flag: &'static str, value: Option<String>, instead: &str) {
        if let Some(value) = value {
            self.0.push(Warning {
                flag,
                value,
                instead: instead.to_string(),
            });
        }
    }

    fn text(&mut self, flag: &'static str, value: &Option<String>, instead: &str) {
        self.one(flag, value.clone(), instead);
    }

    fn path(&mut self, flag: &'static str, value: &Option<PathBuf>, instead: &str) {
        self.one(
            flag,
            value.as_ref().map(|p| p.display().to_string()),
            instead,
        );
    }

    fn number(&mut self, flag: &'static str, value: Option<u64>, instead: &str) {
        self.one(flag, value.map(|v| v.to_string()), instead);
    }

    fn boolean(&mut self, flag: &'static str, value: Option<bool>, instead: &str) {
        self.one(flag, value.map(|v| v.to_string()), instead);
    }

    fn duration(&mut self, flag: &'static str, value: Option<Duration>, instead: &str) {
        self.one(
            flag,
            value.map(|d| humantime::format_duration(d).to_string()),
            instead,
        );
    }

    fn list(&mut self, flag: &'static str, value: &[String], instead: &str) {
        self.one(flag, (!value.is_empty()).then(|| value.join(",")), instead);
    }
}

impl RegattaArgs {
    /// One warning per flag given, in the order of `--help`. `--memberlist.node-name` is
    /// honoured (as --node-name) and yields none.
    pub fn warnings(&self) -> Vec<Warning> {
        let mut w = Warnings::default();
        w.text("--memberlist.address", &self.memberlist_address, NO_GOSSIP);
        w.text(
            "--memberlist.advertise-address",
            &self.memberlist_advertise_address,
            NO_GOSSIP,
        );
        w.list("--memberlist.members", &self.memberlist_members, NO_GOSSIP);
        w.text(
            "--memberlist.cluster-name",
            &self.memberlist_cluster_name,
            NO_GOSSIP,
        );
        w.number(
            "--storage.block-cache-size",
            self.storage_block_cache_size,
            NO_CACHE,
        );
        w.number(
            "--storage.table-cache-size",
            self.storage_table_cache_size,
            NO_CACHE,
        );
        w.boolean(
            "--experimental.tanlogdb",
            self.experimental_tanlogdb,
            ONE_LOG,
        );
        w.text(
            "--maintenance.address",
            &self.maintenance_address,
            ON_API_PORT,
        );
        w.path(
            "--maintenance.cert-filename",
            &self.maintenance_cert_filename,
            ON_API_PORT,
        );
        w.path(
            "--maintenance.key-filename",
            &self.maintenance_key_filename,
            ON_API_PORT,
        );
        w.boolean(
            "--api.reflection-api",
            self.api_reflection_api,
            "ignored: gRPC reflection (v1 and v1alpha) is always served",
        );
        w.number(
            "--api.stream-workers",
            self.api_stream_workers,
            "ignored: requests run on the async runtime; size it with --runtime.worker-threads",
        );
        w.duration(
            "--rest.read-timeout",
            self.rest_read_timeout,
            "ignored: the HTTP port bounds TLS handshakes (10s), not the reading of request headers",
        );
        w.number(
            "--replication.log-cache-size",
            self.replication_log_cache_size,
            "ignored: the tail reads the mmapped log segments, no separate cache",
        );
        w.number(
            "--replication.max-send-message-size-bytes",
            self.replication_max_send_message_size_bytes,
            "ignored: the tail caps each message at 4 MiB of entries (or 1024 entries); edges \
             accept messages up to 64 MiB",
        );
        w.path(
            "--raft.node-host-dir",
            &self.raft_node_host_dir,
            if self.node_host_dir_is_data_dir {
                "used as the data directory (--data-dir is not given): the log and state live there"
            } else {
                "ignored: --data-dir is given, and the log and state live under it"
            },
        );
        w.path("--raft.wal-dir", &self.raft_wal_dir, UNDER_DATA_DIR);
        w.path(
            "--raft.state-machine-dir",
            &self.raft_state_machine_dir,
            UNDER_DATA_DIR,
        );
        w.path(
            "--raft.state-machine-wal-dir",
            &self.raft_state_machine_wal_dir,
            UNDER_DATA_DIR,
        );
        w.text("--raft.logdb", &self.raft_logdb, ONE_LOG);
        w.number(
            "--raft.max-in-mem-log-size",
            self.raft_max_in_mem_log_size,
            "ignored: the Raft log lives in segment files under --data-dir \
             (--log.segment-size), not in an in-memory log",
        );
        w.number(
            "--raft.max-recv-queue-size",
            self.raft_max_recv_queue_size,
            NO_QUEUES,
        );
        w.number(
            "--raft.max-send-queue-size",
            self.raft_max_send_queue_size,
            NO_QUEUES,
        );
        w.number(
            "--raft.max-snapshot-recv-bytes-per-second",
            self.raft_max_snapshot_recv_bytes_per_second,
            NO_SNAPSHOT_RATE,
        );
        w.number(
            "--raft.max-snapshot-send-bytes-per-second",
            self.raft_max_snapshot_send_bytes_per_second,
            NO_SNAPSHOT_RATE,
        );
        w.text(
            "--raft.snapshot-recovery-type",
            &self.raft_snapshot_recovery_type,
            "ignored: one way here, a snapshot streamed from the leader (or read from the \
             object store) replaces the state",
        );
        w.0
    }
}

impl FollowerArgs {
    /// One warning per flag given. `--raft.node-id` is honoured (as --node-id) and yields
    /// none.
    pub fn warnings(&self) -> Vec<Warning> {
        let mut w = Warnings::default();
        w.text("--raft.address", &self.raft_address, NOT_A_MEMBER);
        w.text(
            "--raft.listen-address",
            &self.raft_listen_address,
            NOT_A_MEMBER,
        );
        w.list(
            "--raft.initial-members",
            &self.raft_initial_members,
            NOT_A_MEMBER,
        );
        w.duration("--raft.rtt", self.raft_rtt, NOT_A_MEMBER);
        w.number(
            "--raft.heartbeat-rtt",
            self.raft_heartbeat_rtt,
            NOT_A_MEMBER,
        );
        w.number("--raft.election-rtt", self.raft_election_rtt, NOT_A_MEMBER);
        w.number(
            "--raft.snapshot-entries",
            self.raft_snapshot_entries,
            &format!("{NOT_A_MEMBER} (its local snapshots: --edge.snapshot-entries)"),
        );
        w.number(
            "--raft.compaction-overhead",
            self.raft_compaction_overhead,
            &format!("{NOT_A_MEMBER} (entries it keeps: --edge.keep-entries)"),
        );
        let keepalive = "ignored: the upstream channel sends an HTTP/2 ping every 5s, and an \
            upstream heard nothing from for --replication.staleness is left for the next";
        w.duration(
            "--replication.keepalive-time",
            self.keepalive_time,
            keepalive,
        );
        w.duration(
            "--replication.keepalive-timeout",
            self.keepalive_timeout,
            keepalive,
        );
        w.number(
            "--replication.max-recv-message-size-bytes",
            self.max_recv_message_size_bytes,
            "ignored: an edge accepts upstream messages up to 64 MiB (the core sends at most \
             4 MiB of entries in one)",
        );
        w.duration("--replication.poll-interval", self.poll_interval, PUSHED);
        w.duration(
            "--replication.reconcile-interval",
            self.reconcile_interval,
            PUSHED,
        );
        w.duration("--replication.lease-interval", self.lease_interval, PUSHED);
        w.duration(
            "--replication.log-rpc-timeout",
            self.log_rpc_timeout,
            PUSHED,
        );
        w.duration(
            "--replication.snapshot-rpc-timeout",
            self.snapshot_rpc_timeout,
            PUSHED,
        );
        w.number(
            "--replication.max-recovery-in-flight",
            self.max_recovery_in_flight,
            PUSHED,
        );
        w.number(
            "--replication.max-snapshot-recv-bytes-per-second",
            self.max_snapshot_recv_bytes_per_second,
            PUSHED,
        );
        w.0
    }
}

/// The data directory `--raft.node-host-dir` stands for: the directory given, when
/// `--data-dir` was given neither as a flag, nor in the environment (`REGATTA_DATA_DIR`),
/// nor in the config file (`data_dir` is where its value came from: `None` or the default).
pub fn node_host_dir_as_data_dir(
    node_host_dir: Option<&Path>,
    data_dir: Option<ValueSource>,
) -> Option<PathBuf> {
    let given = !matches!(data_dir, None | Some(ValueSource::DefaultValue));
    node_host_dir.filter(|_| !given).map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// The two groups as a command with the ids they conflict with.
    #[derive(Parser, Debug)]
    struct Command {
        #[command(flatten)]
        regatta: RegattaArgs,
        #[command(flatten)]
        follower: FollowerArgs,
        #[arg(long = "node-name")]
        node_name: Option<String>,
        #[arg(long = "node-id")]
        node_id: Option<u64>,
    }

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        let mut argv = vec!["test"];
        argv.extend_from_slice(args);
        Command::try_parse_from(argv)
    }

    fn flags(warnings: &[Warning]) -> Vec<&'static str> {
        warnings.iter().map(|w| w.flag).collect()
    }

    #[test]
    fn nothing_given_warns_of_nothing() {
        let c = parse(&[]).expect("no flags");
        assert!(c.regatta.warnings().is_empty());
        assert!(c.follower.warnings().is_empty());
    }

    #[test]
    fn one_warning_per_flag_given_with_its_value() {
        let c = parse(&[
            "--memberlist.members=a:1,b:2",
            "--storage.block-cache-size=1",
            "--raft.wal-dir=/x",
            "--api.reflection-api",
            "--experimental.tanlogdb=false",
            "--rest.read-timeout=1m30s",
            "--memberlist.node-name=n1",
        ])
        .expect("Regatta flags");
        let warnings = c.regatta.warnings();
        assert_eq!(
            flags(&warnings),
            [
                "--memberlist.members",
                "--storage.block-cache-size",
                "--experimental.tanlogdb",
                "--api.reflection-api",
                "--rest.read-timeout",
                "--raft.wal-dir",
            ]
        );
        let line = |flag: &str| {
            warnings
                .iter()
                .find(|w| w.flag == flag)
                .expect(flag)
                .to_string()
        };
        assert!(line("--memberlist.members").starts_with("--memberlist.members=a:1,b:2: ignored"));
        assert!(line("--experimental.tanlogdb").starts_with("--experimental.tanlogdb=false: "));
        assert!(line("--api.reflection-api").contains("=true: ignored: gRPC reflection"));
        assert!(line("--rest.read-timeout").starts_with("--rest.read-timeout=1m 30s: "));
        assert!(line("--raft.wal-dir").contains("--data-dir"));
        assert_eq!(c.regatta.memberlist_node_name.as_deref(), Some("n1"));
    }

    #[test]
    fn every_flag_warns_once() {
        let c = parse(&[
            "--memberlist.address=0.0.0.0:7432",
            "--memberlist.advertise-address=a:7432",
            "--memberlist.members=a:1",
            "--memberlist.cluster-name=c",
            "--storage.block-cache-size=1",
            "--storage.table-cache-size=2",
            "--experimental.tanlogdb=true",
            "--maintenance.address=:8445",
            "--maintenance.cert-filename=c.pem",
            "--maintenance.key-filename=k.pem",
            "--api.reflection-api=false",
            "--api.stream-workers=8",
            "--rest.read-timeout=5s",
            "--replication.log-cache-size=10",
            "--replication.max-send-message-size-bytes=10",
            "--raft.node-host-dir=/n",
            "--raft.wal-dir=/w",
            "--raft.state-machine-dir=/s",
            "--raft.state-machine-wal-dir=/sw",
            "--raft.logdb=tan",
            "--raft.max-in-mem-log-size=1",
            "--raft.max-recv-queue-size=1",
            "--raft.max-send-queue-size=1",
            "--raft.max-snapshot-recv-bytes-per-second=1",
            "--raft.max-snapshot-send-bytes-per-second=1",
            "--raft.snapshot-recovery-type=checkpoint",
            "--raft.address=127.0.0.1:5012",
            "--raft.listen-address=:5012",
            "--raft.initial-members=1=a:1,2=b:2",
            "--raft.rtt=50ms",
            "--raft.heartbeat-rtt=1",
            "--raft.election-rtt=20",
            "--raft.snapshot-entries=0",
            "--raft.compaction-overhead=5",
            "--raft.node-id=3",
            "--replication.keepalive-time=1m",
            "--replication.keepalive-timeout=10s",
            "--replication.max-recv-message-size-bytes=8",
            "--replication.poll-interval=1s",
            "--replication.reconcile-interval=30s",
            "--replication.lease-interval=15s",
            "--replication.log-rpc-timeout=1m",
            "--replication.snapshot-rpc-timeout=1h",
            "--replication.max-recovery-in-flight=2",
            "--replication.max-snapshot-recv-bytes-per-second=1",
        ])
        .expect("every flag");
        let regatta = c.regatta.warnings();
        assert_eq!(regatta.len(), 26, "{regatta:#?}");
        let follower = c.follower.warnings();
        // Every follower flag but --raft.node-id, which is honoured.
        assert_eq!(follower.len(), 18, "{follower:#?}");
        assert_eq!(c.follower.raft_node_id, Some(3));
        for w in &follower[..8] {
            assert!(w.instead.contains("not a Raft member"), "{w}");
        }
        let mut all = flags(&regatta);
        all.extend(flags(&follower));
        let count = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), count, "a flag warned twice");
    }

    #[test]
    fn pflag_booleans_take_no_value_true_or_false() {
        for (args, expected) in [
            (&["--api.reflection-api"][..], Some(true)),
            (&["--api.reflection-api=true"], Some(true)),
            (&["--api.reflection-api=false"], Some(false)),
            (&[], None),
        ] {
            assert_eq!(
                parse(args).expect("boolean").regatta.api_reflection_api,
                expected,
                "{args:?}"
            );
        }
        assert!(parse(&["--api.reflection-api=maybe"]).is_err());
    }

    #[test]
    fn aliases_exclude_the_options_they_stand_for() {
        let err = parse(&["--memberlist.node-name=a", "--node-name=b"])
            .expect_err("both names")
            .to_string();
        assert!(
            err.contains("--memberlist.node-name") && err.contains("--node-name"),
            "{err}"
        );
        let err = parse(&["--raft.node-id=1", "--node-id=2"])
            .expect_err("both ids")
            .to_string();
        assert!(
            err.contains("--raft.node-id") && err.contains("--node-id"),
            "{err}"
        );
    }

    #[test]
    fn node_host_dir_is_the_data_dir_only_when_that_is_not_given() {
        let dir = Path::new("/var/lib/regatta");
        assert_eq!(
            node_host_dir_as_data_dir(Some(dir), Some(ValueSource::DefaultValue)),
            Some(dir.to_path_buf())
        );
        assert_eq!(
            node_host_dir_as_data_dir(Some(dir), None),
            Some(dir.to_path_buf())
        );
        for given in [ValueSource::CommandLine, ValueSource::EnvVariable] {
            assert_eq!(node_host_dir_as_data_dir(Some(dir), Some(given)), None);
        }
        assert_eq!(
            node_host_dir_as_data_dir(None, Some(ValueSource::DefaultValue)),
            None
        );
        let mut args = RegattaArgs {
            raft_node_host_dir: Some(dir.to_path_buf()),
            ..Default::default()
        };
        assert!(args.warnings()[0].instead.starts_with("ignored"));
        args.node_host_dir_is_data_dir = true;
        assert!(
            args.warnings()[0]
                .instead
                .starts_with("used as the data directory")
        );
    }
}
