//! The clients: concurrent tasks that issue operations on a few keys and record what they
//! saw, on one clock (nanoseconds from the run's origin).
//!
//! - Core clients pick a core node per operation (a follower forwards writes): Put of a
//!   unique value, linearizable Range of one key, compare-and-set as a Txn. The store's
//!   compares test values only, so a compare-and-set compares the value the client last
//!   read; values are unique, so "the value is still V" is "the key's modification revision
//!   is still the one read with V", which is what the history records (`Cas { expect }`).
//! - Edge sessions are bound to one edge: serializable Range (an [`EdgeRead`] with the
//!   header's revision), now and then a linearizable Range (into the history, judged with
//!   the core's operations) and a Put through the edge (into the history, and a
//!   [`SessionWrite`] when acknowledged).
//!
//! Every operation has a deadline. What an answer means is decided once, in [`classify`]:
//! only a refusal that certainly did nothing is `Failed`; a timeout, a lost connection or
//! an unavailable node is `Unknown`, after which the client continues under a new id (the
//! unanswered call stays in flight for the rest of the run).

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use regatta_checker::{
    Call, History, Op, Outcome, Return,
    sessions::{EdgeRead, SessionWrite},
};
use regatta_proto::{
    mvcc::v1::{Compare, RequestOp, compare, request_op},
    regatta::v1::{PutRequest, RangeRequest, TxnRequest, kv_client::KvClient},
};
use tonic::{Code, transport::Channel};

use crate::rng::Rng;

pub const TABLE: &str = "faults";

/// What a write's error status says about its effect: `Failed` only for what the store's
/// contract (docs/api.md) says was not taken; anything else may have been applied.
///
/// Not taken: a refusal before anything is proposed (a bad request, a missing table), a
/// write refused by a full disk (`ResourceExhausted` with `regatta-disk-full`), and an
/// `Unavailable` the node answered itself without `regatta-outcome: unknown` (no leader
/// known, the node starting or stopping). An `Unavailable` that tonic made from a transport
/// failure (it keeps the transport error as its source) may have reached the node. Recording
/// these as `Failed` holds the store to its contract: a write so refused that takes effect
/// anyway cannot be explained by the checker.
pub fn classify(status: &tonic::Status) -> Outcome {
    let answered = std::error::Error::source(status).is_none();
    let has = |key: &str| status.metadata().contains_key(key);
    match status.code() {
        Code::InvalidArgument
        | Code::FailedPrecondition
        | Code::NotFound
        | Code::AlreadyExists
        | Code::PermissionDenied
        | Code::Unauthenticated
        | Code::Unimplemented
        | Code::OutOfRange => Outcome::Failed,
        Code::ResourceExhausted if answered && has("regatta-disk-full") => Outcome::Failed,
        Code::Unavailable if answered && !has("regatta-outcome") => Outcome::Failed,
        Code::Ok
        | Code::Cancelled
        | Code::Unknown
        | Code::DeadlineExceeded
        | Code::ResourceExhausted
        | Code::Aborted
        | Code::Internal
        | Code::Unavailable
        | Code::DataLoss => Outcome::Unknown,
    }
}

/// Everything the clients recorded.
#[derive(Debug, Default)]
pub struct Record {
    pub history: History,
    pub edge_reads: Vec<EdgeRead>,
    pub session_writes: Vec<SessionWrite>,
    /// Errors of reads, by code (a failed read has no effect and is not judged).
    pub read_errors: BTreeMap<String, u64>,
}

/// What the client tasks share.
#[derive(Debug)]
pub struct Shared {
    pub origin: Instant,
    pub stop: AtomicBool,
    pub record: Mutex<Record>,
    next_client: AtomicU32,
    next_value: AtomicU64,
    pub deadline: Duration,
    pub pace: Duration,
    pub keys: Vec<Vec<u8>>,
    /// A deliberate client bug, to prove the checker bites: the core clients' reads are
    /// serializable (a node's own state, stale on a cut-off node) but recorded as
    /// linearizable.
    pub stale_core_reads: bool,
}

impl Shared {
    /// `origin`: time zero of the history (the run's log uses the same).
    pub fn new(
        origin: Instant,
        keys: usize,
        deadline: Duration,
        pace: Duration,
        stale: bool,
    ) -> Arc<Self> {
        Arc::new(Self {
            origin,
            stop: AtomicBool::new(false),
            record: Mutex::new(Record::default()),
            next_client: AtomicU32::new(1),
            next_value: AtomicU64::new(1),
            deadline,
            pace,
            keys: (0..keys).map(|i| format!("k{i}").into_bytes()).collect(),
            stale_core_reads: stale,
        })
    }

    pub fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn client_id(&self) -> u32 {
        self.next_client.fetch_add(1, Ordering::Relaxed)
    }

    fn value(&self, client: u32) -> Vec<u8> {
        let n = self.next_value.fetch_add(1, Ordering::Relaxed);
        format!("v{n}-c{client}").into_bytes()
    }

    fn with_record<T>(&self, f: impl FnOnce(&mut Record) -> T) -> T {
        let mut record = self.record.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut record)
    }

    /// Counts a read's error by where it happened (`core`, `edge`) and its code.
    fn read_error(&self, at: &str, code: Code) {
        self.with_record(|r| *r.read_errors.entry(format!("{at}:{code:?}")).or_default() += 1);
    }
}

fn request<T>(message: T, deadline: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(deadline);
    request
}

/// Runs `call` under the deadline (plus a margin for the transport): the status, or
/// `DeadlineExceeded` when nothing came back in time.
async fn bounded<T>(
    deadline: Duration,
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, tonic::Status> {
    match tokio::time::timeout(deadline + Duration::from_millis(250), call).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(status),
        Err(_) => Err(tonic::Status::deadline_exceeded(
            "no answer within the deadline",
        )),
    }
}

async fn put(kv: &mut KvClient<Channel>, d: Duration, key: &[u8], value: &[u8]) -> Outcome {
    let message = PutRequest {
        table: TABLE.as_bytes().to_vec().into(),
        key: key.to_vec().into(),
        value: value.to_vec().into(),
        prev_kv: false,
        ttl_millis: 0,
    };
    match bounded(d, kv.put(request(message, d))).await {
        Ok(r) => Outcome::Ok(Return::Put {
            revision: r.header.map_or(0, |h| h.revision),
        }),
        Err(status) => classify(&status),
    }
}

/// A Range of one key: (value, modification revision, header revision).
async fn get(
    kv: &mut KvClient<Channel>,
    d: Duration,
    key: &[u8],
    linearizable: bool,
) -> Result<(Option<Vec<u8>>, u64, u64), Code> {
    let message = RangeRequest {
        table: TABLE.as_bytes().to_vec().into(),
        key: key.to_vec().into(),
        linearizable,
        ..Default::default()
    };
    let r = bounded(d, kv.range(request(message, d)))
        .await
        .map_err(|s| s.code())?;
    let header = r.header.map_or(0, |h| h.revision);
    Ok(match r.kvs.first() {
        Some(kv) => (
            Some(kv.value.to_vec()),
            u64::try_from(kv.mod_revision).unwrap_or(0),
            header,
        ),
        None => (None, 0, header),
    })
}

async fn cas(
    kv: &mut KvClient<Channel>,
    d: Duration,
    key: &[u8],
    expect_value: &[u8],
    value: &[u8],
) -> Outcome {
    let message = TxnRequest {
        table: TABLE.as_bytes().to_vec().into(),
        compare: vec![Compare {
            result: compare::CompareResult::Equal as i32,
            target: compare::CompareTarget::Value as i32,
            key: key.to_vec().into(),
            target_union: Some(compare::TargetUnion::Value(expect_value.to_vec().into())),
            range_end: Default::default(),
        }],
        success: vec![RequestOp {
            request: Some(request_op::Request::RequestPut(request_op::Put {
                key: key.to_vec().into(),
                value: value.to_vec().into(),
                prev_kv: false,
                ttl_millis: 0,
            })),
        }],
        failure: vec![],
    };
    match bounded(d, kv.txn(request(message, d))).await {
        Ok(r) => Outcome::Ok(Return::Cas {
            succeeded: r.succeeded,
            revision: r.header.map_or(0, |h| h.revision),
        }),
        Err(status) => classify(&status),
    }
}

/// A core client: `channels` are the core nodes' API channels.
pub async fn core_client(shared: Arc<Shared>, channels: Vec<Channel>, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut client = shared.client_id();
    // The last value and revision this task read of each key, for compare-and-set.
    let mut seen: BTreeMap<Vec<u8>, (Vec<u8>, u64)> = BTreeMap::new();
    let d = shared.deadline;
    while !shared.stop.load(Ordering::Relaxed) {
        let key = shared.keys[rng.below(shared.keys.len())].clone();
        let mut kv = KvClient::new(channels[rng.below(channels.len())].clone());
        let roll = rng.below(100);
        let invoke = shared.now();
        let (call, outcome) = match seen.get(&key) {
            Some((old, revision)) if roll >= 70 => {
                let value = shared.value(client);
                let outcome = cas(&mut kv, d, &key, old, &value).await;
                let call = Call::Cas {
                    expect: *revision,
                    value,
                };
                (call, outcome)
            }
            _ if roll < 40 => {
                let value = shared.value(client);
                let outcome = put(&mut kv, d, &key, &value).await;
                (Call::Put { value }, outcome)
            }
            _ => match get(&mut kv, d, &key, !shared.stale_core_reads).await {
                Ok((value, mod_revision, _)) => {
                    match &value {
                        Some(v) => seen.insert(key.clone(), (v.clone(), mod_revision)),
                        None => seen.remove(&key),
                    };
                    (
                        Call::Get,
                        Outcome::Ok(Return::Get {
                            value,
                            mod_revision,
                        }),
                    )
                }
                Err(code) => {
                    shared.read_error("core", code);
                    (Call::Get, Outcome::Failed)
                }
            },
        };
        let complete = shared.now();
        let unknown = outcome == Outcome::Unknown;
        shared.with_record(|r| {
            r.history.push(Op {
                client,
                key,
                call,
                invoke,
                complete,
                outcome,
            })
        });
        if unknown {
            client = shared.client_id();
        }
        tokio::time::sleep(shared.pace.mul_f64(0.5 + rng.unit())).await; // load pacing
    }
}

/// An edge session bound to `channel` (one edge's API).
pub async fn edge_session(shared: Arc<Shared>, channel: Channel, session: u32, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut client = shared.client_id();
    let d = shared.deadline;
    let mut kv = KvClient::new(channel);
    while !shared.stop.load(Ordering::Relaxed) {
        let key = shared.keys[rng.below(shared.keys.len())].clone();
        let invoke = shared.now();
        let roll = rng.below(100);
        if (10..20).contains(&roll) {
            // A linearizable read at the edge (the core's read index): judged with the core's.
            let outcome = match get(&mut kv, d, &key, true).await {
                Ok((value, mod_revision, _)) => Outcome::Ok(Return::Get {
                    value,
                    mod_revision,
                }),
                Err(code) => {
                    shared.read_error("edge", code);
                    Outcome::Failed
                }
            };
            let complete = shared.now();
            shared.with_record(|r| {
                r.history.push(Op {
                    client,
                    key,
                    call: Call::Get,
                    invoke,
                    complete,
                    outcome,
                })
            });
        } else if roll < 10 {
            let value = shared.value(client);
            let outcome = put(&mut kv, d, &key, &value).await;
            let complete = shared.now();
            let unknown = outcome == Outcome::Unknown;
            shared.with_record(|r| {
                if let Outcome::Ok(Return::Put { revision }) = &outcome {
                    r.session_writes.push(SessionWrite {
                        session,
                        key: key.clone(),
                        complete,
                        revision: *revision,
                    });
                }
                r.history.push(Op {
                    client,
                    key,
                    call: Call::Put { value },
                    invoke,
                    complete,
                    outcome,
                });
            });
            if unknown {
                client = shared.client_id();
            }
        } else {
            match get(&mut kv, d, &key, false).await {
                Ok((value, mod_revision, header_revision)) => {
                    let complete = shared.now();
                    shared.with_record(|r| {
                        r.edge_reads.push(EdgeRead {
                            session,
                            key,
                            invoke,
                            complete,
                            value,
                            mod_revision,
                            header_revision,
                        })
                    });
                }
                Err(code) => shared.read_error("edge", code),
            }
        }
        tokio::time::sleep(shared.pace.mul_f64(0.5 + rng.unit())).await; // load pacing
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::{Status, metadata::MetadataValue};

    #[test]
    fn only_what_was_not_taken_is_failed() {
        for code in [
            Code::InvalidArgument,
            Code::FailedPrecondition,
            Code::NotFound,
            Code::Unimplemented,
        ] {
            assert_eq!(
                classify(&Status::new(code, "")),
                Outcome::Failed,
                "{code:?}"
            );
        }
        for code in [
            Code::DeadlineExceeded,
            Code::Cancelled,
            Code::Unknown,
            Code::Internal,
            Code::ResourceExhausted,
        ] {
            assert_eq!(
                classify(&Status::new(code, "")),
                Outcome::Unknown,
                "{code:?}"
            );
        }
        // The node's own refusals.
        let mut full = Status::resource_exhausted("the disk of node 3 is full");
        full.metadata_mut()
            .insert("regatta-disk-full", MetadataValue::from_static("3"));
        assert_eq!(classify(&full), Outcome::Failed);
        assert_eq!(classify(&Status::unavailable("no leader")), Outcome::Failed);
        // A write that may have been applied: the node says so, or the call itself failed.
        let mut maybe = Status::unavailable("leader changed");
        maybe
            .metadata_mut()
            .insert("regatta-outcome", MetadataValue::from_static("unknown"));
        assert_eq!(classify(&maybe), Outcome::Unknown);
        let mut reset = Status::unavailable("connection reset");
        reset.set_source(std::sync::Arc::new(std::io::Error::other(
            "connection reset",
        )));
        assert_eq!(classify(&reset), Outcome::Unknown);
    }
}
