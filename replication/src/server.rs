//! `regatta.tail.v1.Tail`: serves this node's committed log to edges, and [`serve`], the
//! replication port of a node (core or edge) built in one place.
//!
//! Every core node and every edge serves it. What is served is what this node has applied
//! (applied ≤ committed, so nothing uncommitted ever leaves), read from the node's own log.
//! The stream pushes new entries the moment apply publishes them — a lone write reaches every
//! subscriber at once — and heartbeats while idle. A request for entries this node no longer
//! keeps is answered with `SnapshotNeeded`.

use std::{pin::Pin, sync::Arc, time::Duration};

use futures::Stream;
use regatta_api::node::Role;
use regatta_log::{Log, LogIndex};
use regatta_materializer::Materializer;
use regatta_proto::regatta::{
    raft::v1::{ForwardRequest, ForwardResponse, ReadIndexRequest, ReadIndexResponse},
    tail::v1::{
        Entries, FetchSnapshotRequest, Heartbeat, SnapshotChunk, SnapshotNeeded, SubscribeRequest,
        TailEntry, TailMessage, tail_message, tail_server::Tail,
    },
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::clock::now_micros;

/// Entries per message at most; a subscriber far behind gets many messages.
const MAX_ENTRIES_PER_MESSAGE: u64 = 1024;
/// Payload bytes per message: a message closes once it holds this much (one entry always
/// goes, whatever its size, so the stream never stalls on a large entry).
const MAX_PAYLOAD_BYTES_PER_MESSAGE: usize = 4 << 20;
/// Bytes of snapshot per chunk.
const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;

/// The leading records of `records` that one message carries: at least one, then as long as
/// their payloads stay within `budget` bytes.
fn within_budget(mut records: Vec<regatta_log::Record>, budget: usize) -> Vec<regatta_log::Record> {
    let mut total = 0;
    let keep = records
        .iter()
        .position(|r| {
            total += r.payload.len();
            total > budget
        })
        .unwrap_or(records.len())
        .max(1);
    records.truncate(keep);
    records
}

/// Settings of the tail service.
#[derive(Debug, Clone)]
pub struct TailSettings {
    /// How often an idle stream carries a heartbeat.
    pub heartbeat: Duration,
}

impl Default for TailSettings {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_millis(500),
        }
    }
}

/// The newest snapshot revision in object storage (0: none), as the node knows it.
pub type ObjectSnapshotRevision = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Whether this node knows its own state (a core always does; an edge once it has caught
/// up with its upstream since it started). Until it does, the commit index it tells its
/// subscribers is 0 ("no news"), so that an edge following it does not take itself for
/// caught up with a state that may lack tables.
pub type KnowsState = Arc<dyn Fn() -> bool + Send + Sync>;

/// The Tail service of one node: its log, what it applied, its role (for forwarded writes
/// and read-index requests) and the newest snapshot in object storage.
pub struct TailService {
    log: Log,
    materializer: Arc<Materializer>,
    role: Arc<dyn Role>,
    object_snapshot: ObjectSnapshotRevision,
    knows_state: KnowsState,
    settings: TailSettings,
    stop: CancellationToken,
}

impl TailService {
    pub fn new(
        log: Log,
        materializer: Arc<Materializer>,
        role: Arc<dyn Role>,
        object_snapshot: ObjectSnapshotRevision,
        settings: TailSettings,
    ) -> Self {
        Self {
            log,
            materializer,
            role,
            object_snapshot,
            knows_state: Arc::new(|| true),
            settings,
            stop: CancellationToken::new(),
        }
    }

    /// Ends every subscriber's stream (`UNAVAILABLE`) once `stop` is cancelled: a stopping
    /// node's streams never end by themselves, would hold its servers' grace period, and
    /// their subscribers are better off following another node at once.
    pub fn with_stop(mut self, stop: CancellationToken) -> Self {
        self.stop = stop;
        self
    }

    /// Tells subscribers a commit index only while `knows_state` holds (an edge: once it
    /// has caught up since it started).
    pub fn with_knows_state(mut self, knows_state: KnowsState) -> Self {
        self.knows_state = knows_state;
        self
    }
}

/// The commit index told to a subscriber: what this node applied, or 0 ("no news") while
/// it does not know its own state.
fn told_commit(applied: u64, knows_state: bool) -> u64 {
    if knows_state { applied } else { 0 }
}

/// Converts log records to wire entries, checking they are exactly `next..` in order.
fn to_entries(records: Vec<regatta_log::Record>, next: u64) -> Result<Vec<TailEntry>, String> {
    let mut expected = next;
    records
        .into_iter()
        .map(|r| {
            if r.id.index.get() != expected {
                return Err(format!(
                    "log read returned index {} where {expected} was due",
                    r.id.index
                ));
            }
            expected += 1;
            Ok(TailEntry {
                index: r.id.index.get(),
                term: r.id.term.get(),
                leader_id: r.id.leader.get(),
                kind: r.kind as u32,
                payload: r.payload,
            })
        })
        .collect()
}

/// What the streaming loop of one subscriber reads from: the node's log, what it applied,
/// what it tells about the object store and its own state.
struct Source {
    log: Log,
    materializer: Arc<Materializer>,
    object_snapshot: ObjectSnapshotRevision,
    knows_state: KnowsState,
    stop: CancellationToken,
}

/// The streaming loop of one subscriber. Ends when the subscriber goes away or the node
/// stops.
async fn pump(
    source: Source,
    heartbeat: Duration,
    mut next: u64,
    subscriber: String,
    tx: mpsc::Sender<Result<TailMessage, Status>>,
) {
    let Source {
        log,
        materializer,
        object_snapshot,
        knows_state,
        stop,
    } = source;
    let mut applied_rx = materializer.subscribe();
    let stopping = || Err(Status::unavailable("the node is stopping: follow another"));
    loop {
        if stop.is_cancelled() {
            let _ = tx.send(stopping()).await;
            return;
        }
        let applied = materializer.applied().0;
        if next <= applied {
            let end = applied.min(next + MAX_ENTRIES_PER_MESSAGE - 1);
            let message = match log.read(LogIndex(next)..=LogIndex(end)) {
                Ok(records) if records.first().is_some_and(|r| r.id.index.get() == next) => {
                    match to_entries(within_budget(records, MAX_PAYLOAD_BYTES_PER_MESSAGE), next) {
                        Ok(entries) => {
                            next = entries.last().map_or(next, |e| e.index + 1);
                            tail_message::Message::Entries(Entries {
                                entries,
                                commit_index: told_commit(applied, knows_state()),
                            })
                        }
                        Err(reason) => {
                            let _ = tx.send(Err(Status::internal(reason))).await;
                            return;
                        }
                    }
                }
                Ok(_) | Err(regatta_log::Error::Purged { .. }) => {
                    // Not (or no longer) in this node's log: the subscriber needs a snapshot.
                    let first_available = log.first_index().map_or(applied + 1, |i| i.get());
                    tracing::info!(%subscriber, next, first_available, "tail subscriber is behind the log; needs a snapshot");
                    let needed = SnapshotNeeded {
                        first_available,
                        object_snapshot_revision: object_snapshot(),
                    };
                    let _ = tx
                        .send(Ok(TailMessage {
                            message: Some(tail_message::Message::SnapshotNeeded(needed)),
                        }))
                        .await;
                    return;
                }
                Err(e) => {
                    tracing::error!(%subscriber, error = %e, "reading the log for a tail subscriber");
                    let _ = tx
                        .send(Err(Status::unavailable(format!("reading the log: {e}"))))
                        .await;
                    return;
                }
            };
            if tx
                .send(Ok(TailMessage {
                    message: Some(message),
                }))
                .await
                .is_err()
            {
                return;
            }
            continue;
        }
        tokio::select! {
            changed = applied_rx.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(heartbeat) => {
                let commit_index = told_commit(materializer.applied().0, knows_state());
                let beat = Heartbeat { commit_index, now_micros: now_micros() };
                if tx.send(Ok(TailMessage { message: Some(tail_message::Message::Heartbeat(beat)) })).await.is_err() {
                    return;
                }
            }
            () = tx.closed() => return,
            () = stop.cancelled() => {
                let _ = tx.send(stopping()).await;
                return;
            }
        }
    }
}

type Stream_<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl Tail for TailService {
    type SubscribeStream = Stream_<TailMessage>;

    async fn subscribe(
        &self,
        request: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let SubscribeRequest {
            from_index,
            subscriber,
        } = request.into_inner();
        if from_index == 0 {
            return Err(Status::invalid_argument("from_index starts at 1"));
        }
        tracing::info!(%subscriber, from_index, "tail subscriber connected");
        let (tx, rx) = mpsc::channel(16);
        let source = Source {
            log: self.log.clone(),
            materializer: self.materializer.clone(),
            object_snapshot: self.object_snapshot.clone(),
            knows_state: self.knows_state.clone(),
            stop: self.stop.clone(),
        };
        tokio::spawn(pump(
            source,
            self.settings.heartbeat,
            from_index,
            subscriber,
            tx,
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type FetchSnapshotStream = Stream_<SnapshotChunk>;

    async fn fetch_snapshot(
        &self,
        _: Request<FetchSnapshotRequest>,
    ) -> Result<Response<Self::FetchSnapshotStream>, Status> {
        let view = self.materializer.view();
        let revision = view.revision().0;
        let encoded =
            tokio::task::spawn_blocking(move || regatta_materializer::snapshot::encode(&view))
                .await
                .map_err(|e| Status::internal(format!("snapshot encoder failed: {e}")))?
                .map_err(regatta_api::Error::from)?;
        tracing::info!(
            revision,
            bytes = encoded.len(),
            "streaming a snapshot to a tail subscriber"
        );
        let data = bytes::Bytes::from(encoded);
        let total_bytes = data.len() as u64;
        let chunks: Vec<Result<SnapshotChunk, Status>> = (0..data.len())
            .step_by(SNAPSHOT_CHUNK_BYTES)
            .map(|at| {
                Ok(SnapshotChunk {
                    data: data.slice(at..(at + SNAPSHOT_CHUNK_BYTES).min(data.len())),
                    revision,
                    total_bytes,
                })
            })
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }

    async fn write(
        &self,
        request: Request<ForwardRequest>,
    ) -> Result<Response<ForwardResponse>, Status> {
        let forwarded = request.into_inner();
        let answer =
            regatta_api::forward::take_forwarded(&*self.role, &self.materializer, forwarded)
                .await?;
        Ok(Response::new(answer))
    }

    async fn read_index(
        &self,
        _: Request<ReadIndexRequest>,
    ) -> Result<Response<ReadIndexResponse>, Status> {
        Ok(Response::new(ReadIndexResponse {
            index: self.role.read_index().await?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regatta_log::{EntryId, LogIndex, NodeId, Record, RecordKind, Term};

    fn records(sizes: &[usize]) -> Vec<Record> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let id = EntryId {
                    index: LogIndex(i as u64 + 1),
                    term: Term(1),
                    leader: NodeId(1),
                };
                Record::new(id, RecordKind::Normal, vec![0u8; n])
            })
            .collect()
    }

    #[test]
    fn a_node_that_does_not_know_its_state_tells_no_commit_index() {
        assert_eq!(told_commit(42, true), 42);
        assert_eq!(told_commit(42, false), 0, "0 is no news to the subscriber");
    }

    #[test]
    fn a_message_holds_entries_up_to_the_byte_budget_and_always_one() {
        assert_eq!(within_budget(records(&[10, 10, 10]), 25).len(), 2);
        assert_eq!(within_budget(records(&[10, 10, 10]), 30).len(), 3);
        assert_eq!(
            within_budget(records(&[100, 1]), 25).len(),
            1,
            "one big entry goes alone"
        );
        assert!(within_budget(Vec::new(), 25).is_empty());
    }
}
