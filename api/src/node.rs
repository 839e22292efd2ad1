//! What the services need from the node they run on: the materializer to read from, and a
//! [`Role`] — the core or edge behaviour behind writes, linearizable reads and cluster
//! questions.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use regatta_materializer::{ApplyResponse, Command, Materializer, Revision};
use regatta_proto::regatta::{
    admin::v1::MembershipResponse,
    v1::{MemberListResponse, ResponseHeader},
};
use tonic::metadata::MetadataMap;

use crate::{Error, Result, forward::MembershipChange};

/// A committed write: the revision of its log entry and what applying it answered (never
/// [`ApplyResponse::Rejected`]: a rejection is returned as [`Error::Rejected`]).
pub type Written = (Revision, ApplyResponse);

/// `written`, or the error of its rejection.
pub fn accepted(written: Written) -> Result<Written> {
    match written {
        (_, ApplyResponse::Rejected(rejection)) => Err(rejection.into()),
        written => Ok(written),
    }
}

/// Which kind of node this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Core,
    Edge,
}

impl NodeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Core => "core",
            Self::Edge => "edge",
        }
    }
}

/// Figures for Cluster.Status, read at the time of the call.
#[derive(Debug, Clone, Default)]
pub struct NodeStatus {
    pub leader_id: u64,
    pub leader_address: String,
    pub term: u64,
    /// Highest log index known committed (the core's, as far as this node knows).
    pub commit_index: u64,
    /// Bytes of log kept on local disk.
    pub log_bytes: u64,
    pub errors: Vec<String>,
    /// More `name=value` words for Cluster.Status `info` (values without spaces).
    pub details: Vec<(&'static str, String)>,
}

/// The core- or edge-specific half of a node.
#[tonic::async_trait]
pub trait Role: Send + Sync + 'static {
    fn kind(&self) -> NodeKind;

    /// Commits a validated write (here or wherever writes go) and answers once this node has
    /// applied it, so the caller reads its own write here. Never called with a
    /// [`Command::Batch`] (batches are made by the core's leader).
    async fn write(&self, command: Command) -> Result<Written>;

    /// Changes the core's membership (core only).
    async fn change_membership(&self, change: MembershipChange) -> Result<MembershipResponse>;

    /// The revision this node must have applied before it may serve a linearizable read.
    async fn read_index(&self) -> Result<u64>;

    async fn member_list(&self) -> Result<MemberListResponse>;

    fn status(&self) -> NodeStatus;

    /// Maintenance.Reset: throw away local state and bootstrap again (edges). `None` resets
    /// every table.
    async fn reset(&self, table: Option<String>) -> Result<()>;

    /// Why a table missing from this node's state may still exist (an edge that has not
    /// caught up with its upstream since it started), or `None` when a missing table is
    /// truly missing. While `Some`, a read of a missing table is answered `Unavailable`
    /// with this reason rather than `NotFound` ([`NodeContext::missing_table`]).
    fn unknown_state(&self) -> Option<String> {
        None
    }
}

/// Request limits, checked before anything else.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request message accepted, in bytes (API.md: 4 MiB by default).
    pub max_request_bytes: usize,
    /// Most ops in each branch of a Txn and in its compares (`--api.max-txn-ops`).
    pub max_txn_ops: usize,
    /// Deadline applied when the client sends none.
    pub default_deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_bytes: 4 << 20,
            max_txn_ops: regatta_materializer::limits::DEFAULT_MAX_TXN_OPS,
            default_deadline: Duration::from_secs(5),
        }
    }
}

/// Bearer tokens protecting the Tables and Maintenance services; `None` leaves them open.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    pub tables: Option<String>,
    pub maintenance: Option<String>,
}

/// Term and leader as the response header reports them, kept current by the node.
#[derive(Debug, Default)]
pub struct HeaderState {
    pub term: AtomicU64,
    pub leader_id: AtomicU64,
}

/// Everything a service handler reaches.
#[derive(Clone)]
pub struct NodeContext {
    pub node_id: u64,
    pub materializer: Arc<Materializer>,
    pub role: Arc<dyn Role>,
    pub limits: Limits,
    pub tokens: Tokens,
    pub header: Arc<HeaderState>,
}

impl NodeContext {
    /// A response header for a read or write at `revision` of table `shard_id`.
    pub fn header(&self, shard_id: u64, revision: Revision) -> ResponseHeader {
        ResponseHeader {
            shard_id,
            replica_id: self.node_id,
            revision: revision.0,
            raft_term: self.header.term.load(Ordering::Relaxed),
            raft_leader_id: self.header.leader_id.load(Ordering::Relaxed),
        }
    }

    /// The response header of a write to `table` at `revision`, once this node applied it.
    pub fn write_header(&self, table: &str, revision: Revision) -> ResponseHeader {
        let shard = crate::forward::shard_of(&self.materializer, table);
        self.header(shard, revision)
    }

    /// The deadline of a request: the client's `grpc-timeout`, or the default.
    ///
    /// A client's deadline is shortened by a tenth (at most 50 ms): tonic's server runs its
    /// own timer on `grpc-timeout`, started a little earlier than ours, and answers
    /// `Cancelled "Timeout expired"` when it fires first; ours must fire first so that the
    /// client gets the documented `DeadlineExceeded`.
    pub fn deadline(&self, metadata: &MetadataMap) -> Duration {
        metadata
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout)
            .map_or(self.limits.default_deadline, |d| {
                d.saturating_sub((d / 10).min(Duration::from_millis(50)))
            })
    }

    /// Fails with `Unauthenticated` unless the request carries `token` (when one is set).
    pub fn check_token(&self, token: &Option<String>, metadata: &MetadataMap) -> Result<()> {
        let Some(expected) = token else { return Ok(()) };
        let given = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_credentials);
        match given {
            Some(given) if constant_time_eq(given.as_bytes(), expected.as_bytes()) => Ok(()),
            _ => Err(Error::Unauthenticated),
        }
    }

    /// `error`, unless it says a table is missing while this node cannot yet know that
    /// (see [`Role::unknown_state`]): then `Unavailable` with the reason, for the client to
    /// retry.
    pub fn missing_table(&self, error: Error) -> Error {
        match error {
            Error::Materializer(regatta_materializer::Error::TableNotFound { table }) => {
                match self.role.unknown_state() {
                    Some(reason) => Error::Unavailable {
                        reason: format!(
                            "table {table:?} is not known here yet and may exist upstream \
                             (retry): {reason}"
                        ),
                    },
                    None => regatta_materializer::Error::TableNotFound { table }.into(),
                }
            }
            other => other,
        }
    }

    /// Waits (within `deadline`) until this node has applied `revision`.
    pub async fn wait_applied(&self, revision: Revision, deadline: Duration) -> Result<()> {
        match tokio::time::timeout(deadline, self.materializer.wait_applied(revision)).await {
            Ok(result) => result.map(|_| ()).map_err(Error::from),
            Err(_) => Err(Error::Timeout {
                what: "waiting for this node to apply the write",
            }),
        }
    }
}

/// The credentials of an `Authorization` header using the bearer scheme. The scheme name
/// is case-insensitive (RFC 7235 section 2.1), as in Regatta: `Bearer x`, `bearer x` and
/// `BEARER x` all carry `x`.
fn bearer_credentials(header: &str) -> Option<&str> {
    let (scheme, credentials) = header.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credentials.trim_start_matches(' '))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Parses gRPC's `grpc-timeout` header: up to 8 digits and a unit (H, M, S, m, u, n).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_credentials("Bearer abc"), Some("abc"));
        assert_eq!(bearer_credentials("bearer abc"), Some("abc"));
        assert_eq!(bearer_credentials("BEARER abc"), Some("abc"));
        assert_eq!(bearer_credentials("Bearer  abc"), Some("abc"));
        assert_eq!(bearer_credentials("Basic abc"), None);
        assert_eq!(bearer_credentials("Bearerabc"), None);
        assert_eq!(bearer_credentials("abc"), None);
    }

    #[test]
    fn grpc_timeouts_parse() {
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_grpc_timeout("5"), None);
        assert_eq!(parse_grpc_timeout("123456789S"), None);
        assert_eq!(parse_grpc_timeout("-1S"), None);
        assert_eq!(parse_grpc_timeout("1x"), None);
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
