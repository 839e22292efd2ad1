//! Every flag of Regatta's (jamf/regatta v0.3–v0.5) `leader` and `follower` commands, which
//! this build accepts under the same names (`leader` = `core`, `follower` = `edge`). What
//! each does here is the flag table of docs/migration.md; `tests/docs_migration.rs` checks
//! that the table has a row for every entry, with the same commands.
//!
//! Not listed: `--kafka.*` (Regatta's early Kafka ingestion), which is an unknown-flag error
//! here.

/// One Regatta flag: its name with the dashes, the Regatta commands that have it, and a
/// value Regatta would accept for it (`None` for a boolean, given as `--flag` alone).
pub type RegattaFlag = (&'static str, &'static [&'static str], Option<&'static str>);

const BOTH: &[&str] = &["leader", "follower"];
const LEADER: &[&str] = &["leader"];
const FOLLOWER: &[&str] = &["follower"];

pub const REGATTA_FLAGS: &[RegattaFlag] = &[
    // Root
    ("--config", BOTH, Some("config.yaml")),
    ("--dev-mode", BOTH, None),
    ("--log-level", BOTH, Some("DEBUG")),
    // API
    ("--api.address", BOTH, Some(":8443")),
    (
        "--api.advertise-address",
        BOTH,
        Some("regatta-0.regatta:8443"),
    ),
    ("--api.cert-filename", BOTH, Some("/tls/api/tls.crt")),
    ("--api.key-filename", BOTH, Some("/tls/api/tls.key")),
    ("--api.ca-filename", BOTH, Some("/tls/api/ca.crt")),
    ("--api.client-cert-auth", BOTH, None),
    ("--api.allowed-cn", BOTH, Some("client")),
    ("--api.allowed-hostname", BOTH, Some("client.example.com")),
    ("--api.max-concurrent-connections", BOTH, Some("1000")),
    ("--api.max-concurrent-streams", BOTH, Some("100")),
    ("--api.reflection-api", BOTH, None),
    ("--api.stream-workers", BOTH, Some("8")),
    // REST
    ("--rest.address", BOTH, Some(":8079")),
    ("--rest.read-timeout", BOTH, Some("5s")),
    // Raft (a follower cluster was a Raft cluster of its own)
    ("--raft.address", BOTH, Some("regatta-0.regatta:5012")),
    ("--raft.listen-address", BOTH, Some("0.0.0.0:5012")),
    ("--raft.node-id", BOTH, Some("1")),
    (
        "--raft.initial-members",
        BOTH,
        Some("1=regatta-0.regatta:5012,2=regatta-1.regatta:5012,3=regatta-2.regatta:5012"),
    ),
    ("--raft.rtt", BOTH, Some("50ms")),
    ("--raft.heartbeat-rtt", BOTH, Some("1")),
    ("--raft.election-rtt", BOTH, Some("20")),
    ("--raft.snapshot-entries", BOTH, Some("10000")),
    ("--raft.compaction-overhead", BOTH, Some("5000")),
    ("--raft.node-host-dir", BOTH, Some("/data/raft")),
    ("--raft.wal-dir", BOTH, Some("/data/wal")),
    (
        "--raft.state-machine-dir",
        BOTH,
        Some("/data/state-machine"),
    ),
    (
        "--raft.state-machine-wal-dir",
        BOTH,
        Some("/data/state-machine-wal"),
    ),
    ("--raft.logdb", BOTH, Some("tan")),
    ("--experimental.tanlogdb", BOTH, None),
    ("--raft.max-in-mem-log-size", BOTH, Some("6291456")),
    ("--raft.max-recv-queue-size", BOTH, Some("0")),
    ("--raft.max-send-queue-size", BOTH, Some("0")),
    ("--raft.max-snapshot-recv-bytes-per-second", BOTH, Some("0")),
    ("--raft.max-snapshot-send-bytes-per-second", BOTH, Some("0")),
    ("--raft.snapshot-recovery-type", BOTH, Some("checkpoint")),
    // Memberlist
    ("--memberlist.address", BOTH, Some("0.0.0.0:7432")),
    (
        "--memberlist.advertise-address",
        BOTH,
        Some("regatta-0.regatta:7432"),
    ),
    (
        "--memberlist.members",
        BOTH,
        Some("regatta-1.regatta:7432,regatta-2.regatta:7432"),
    ),
    ("--memberlist.cluster-name", BOTH, Some("default")),
    ("--memberlist.node-name", BOTH, Some("regatta-0")),
    // Storage
    ("--storage.block-cache-size", BOTH, Some("16777216")),
    ("--storage.table-cache-size", BOTH, Some("1024")),
    // Maintenance
    ("--maintenance.enabled", BOTH, None),
    ("--maintenance.token", BOTH, Some("maintenance-secret")),
    ("--maintenance.address", LEADER, Some(":8445")),
    (
        "--maintenance.cert-filename",
        LEADER,
        Some("/tls/api/tls.crt"),
    ),
    (
        "--maintenance.key-filename",
        LEADER,
        Some("/tls/api/tls.key"),
    ),
    // Tables
    ("--tables.enabled", BOTH, None),
    ("--tables.token", BOTH, Some("tables-secret")),
    ("--tables.names", LEADER, Some("users,sessions")),
    ("--tables.delete", LEADER, Some("old-table")),
    // Replication, leader side
    ("--replication.enabled", LEADER, None),
    ("--replication.address", LEADER, Some(":8444")),
    (
        "--replication.cert-filename",
        BOTH,
        Some("/tls/replication/tls.crt"),
    ),
    (
        "--replication.key-filename",
        BOTH,
        Some("/tls/replication/tls.key"),
    ),
    (
        "--replication.ca-filename",
        BOTH,
        Some("/tls/replication/ca.crt"),
    ),
    ("--replication.client-cert-auth", LEADER, None),
    ("--replication.log-cache-size", LEADER, Some("0")),
    (
        "--replication.max-send-message-size-bytes",
        LEADER,
        Some("4194304"),
    ),
    // Replication, follower side
    (
        "--replication.leader-address",
        FOLLOWER,
        Some("leader.regatta.example.com:8444"),
    ),
    ("--replication.insecure-skip-verify", FOLLOWER, None),
    (
        "--replication.server-name",
        FOLLOWER,
        Some("leader.regatta.example.com"),
    ),
    ("--replication.keepalive-time", FOLLOWER, Some("1m")),
    ("--replication.keepalive-timeout", FOLLOWER, Some("10s")),
    (
        "--replication.max-recv-message-size-bytes",
        FOLLOWER,
        Some("8388608"),
    ),
    ("--replication.poll-interval", FOLLOWER, Some("1s")),
    ("--replication.reconcile-interval", FOLLOWER, Some("30s")),
    ("--replication.lease-interval", FOLLOWER, Some("15s")),
    ("--replication.log-rpc-timeout", FOLLOWER, Some("1m")),
    ("--replication.snapshot-rpc-timeout", FOLLOWER, Some("1h")),
    ("--replication.max-recovery-in-flight", FOLLOWER, Some("1")),
    (
        "--replication.max-snapshot-recv-bytes-per-second",
        FOLLOWER,
        Some("0"),
    ),
];
