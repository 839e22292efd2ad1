//! Group proposal: data writes that arrive while earlier entries are being committed are
//! proposed together, as one [`Command::Batch`] log entry.
//!
//! openraft 0.9 submits the leader's log appends one entry at a time and waits for each
//! entry's flush before it submits the next, so without this every write would cost the
//! leader one fsync of its own. A batch costs one entry, one fsync on each node and one
//! replication round, however many writes it holds; the writes in it share the entry's
//! revision and are applied in the order they were queued, each answered on its own.
//!
//! At most `in_flight` entries are being proposed at a time; a write that arrives meanwhile
//! waits in the queue and joins the next batch. Under light load a batch is a single write,
//! proposed as a plain entry, so a lone write never waits for company.
//!
//! A write that finds a free slot and nobody queued proposes itself, on its caller's task,
//! instead of handing itself to the proposing task: a lone write then skips three task
//! wake-ups (caller → proposing task → commit task → caller), tens of microseconds each on
//! a busy 2-CPU machine. Only a queued write ever waits for the proposing task, and the
//! proposing task takes a slot only once it holds a write, so a free slot never sits idle
//! behind it.

use std::sync::Arc;

use openraft::{
    BasicNode, LogId, Raft,
    error::{ClientWriteError, RaftError},
};
use regatta_materializer::{ApplyResponse, Command, Rejection, raft::TypeConfig};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::metrics::ProposalMetrics;

/// How a proposal ended: the entry's log id and this write's own response, or why it was not
/// committed (to be redirected or reported as for a single write).
pub type Outcome =
    Result<(LogId<u64>, ApplyResponse), RaftError<u64, ClientWriteError<u64, BasicNode>>>;

/// Limits of group proposal.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Most writes in one entry.
    pub max_writes: usize,
    /// A batch stops taking writes once their sizes add up to this many bytes.
    pub max_bytes: usize,
    /// Entries being proposed at the same time.
    pub in_flight: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self {
            max_writes: 1024,
            max_bytes: 1 << 20,
            in_flight: 1,
        }
    }
}

struct Pending {
    command: Command,
    bytes: usize,
    reply: oneshot::Sender<Outcome>,
}

/// The queue in front of Raft for batchable writes (put, delete range, txn).
#[derive(Clone)]
pub struct Batcher {
    queue: mpsc::Sender<Pending>,
    /// One permit per entry that may be in proposal at a time.
    slots: Arc<Semaphore>,
    raft: Raft<TypeConfig>,
    metrics: Arc<ProposalMetrics>,
}

impl Batcher {
    /// Starts the proposing task; it ends when every `Batcher` clone is dropped.
    pub fn start(
        raft: Raft<TypeConfig>,
        limits: BatchLimits,
        metrics: Arc<ProposalMetrics>,
    ) -> Self {
        let (queue, rx) = mpsc::channel(limits.max_writes.max(1) * 4);
        let slots = Arc::new(Semaphore::new(limits.in_flight.max(1)));
        tokio::spawn(run(
            raft.clone(),
            rx,
            Arc::clone(&slots),
            limits,
            Arc::clone(&metrics),
        ));
        Self {
            queue,
            slots,
            raft,
            metrics,
        }
    }

    /// Proposes `command` (about `bytes` bytes: [`Command::size_hint`]) in the next batch and
    /// waits for its outcome.
    pub async fn propose(&self, command: Command, bytes: usize) -> Outcome {
        if self.queue.capacity() == self.queue.max_capacity()
            && let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned()
        {
            let started = std::time::Instant::now();
            let outcome = propose_one(&self.raft, command).await;
            drop(slot);
            self.metrics.observe(1, started.elapsed());
            return outcome;
        }
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            command,
            bytes,
            reply,
        };
        if self.queue.send(pending).await.is_err() {
            return Err(RaftError::Fatal(openraft::error::Fatal::Stopped));
        }
        answer
            .await
            .unwrap_or(Err(RaftError::Fatal(openraft::error::Fatal::Stopped)))
    }
}

async fn run(
    raft: Raft<TypeConfig>,
    mut rx: mpsc::Receiver<Pending>,
    slots: Arc<Semaphore>,
    limits: BatchLimits,
    metrics: Arc<ProposalMetrics>,
) {
    loop {
        // A write first, then a slot: writes that propose themselves take free slots while
        // the queue is empty, and whatever queues while the slots are taken joins the batch.
        let Some(first) = rx.recv().await else {
            return;
        };
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let mut bytes = first.bytes;
        let mut batch = vec![first];
        while batch.len() < limits.max_writes && bytes < limits.max_bytes {
            match rx.try_recv() {
                Ok(next) => {
                    bytes += next.bytes;
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let raft = raft.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let writes = batch.len();
            commit(&raft, batch).await;
            drop(slot);
            metrics.observe(writes, started.elapsed());
        });
    }
}

/// Proposes one write as a plain entry.
async fn propose_one(raft: &Raft<TypeConfig>, command: Command) -> Outcome {
    raft.client_write(command.to_event(regatta_proto::now_micros()))
        .await
        .map(|w| (w.log_id, w.data))
}

async fn commit(raft: &Raft<TypeConfig>, mut batch: Vec<Pending>) {
    if batch.len() == 1 {
        let Some(one) = batch.pop() else { return };
        let outcome = propose_one(raft, one.command).await;
        // The client may have given up (deadline); its write stands all the same.
        let _ = one.reply.send(outcome);
        return;
    }
    let now = regatta_proto::now_micros();
    let (commands, replies): (Vec<Command>, Vec<oneshot::Sender<Outcome>>) =
        batch.into_iter().map(|p| (p.command, p.reply)).unzip();
    let count = commands.len();
    match raft
        .client_write(Command::Batch(commands).to_event(now))
        .await
    {
        Ok(written) => {
            for (reply, response) in replies.into_iter().zip(split(written.data, count)) {
                let _ = reply.send(Ok((written.log_id, response)));
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

/// The response of each of a batch entry's `count` writes, in order. A batch rejected as a
/// whole (it cannot be, as its writes were validated before they were queued, but apply
/// decides) gives every write that rejection.
pub fn split(response: ApplyResponse, count: usize) -> Vec<ApplyResponse> {
    match response {
        ApplyResponse::Batch(responses) if responses.len() == count => responses,
        ApplyResponse::Rejected(rejection) => vec![ApplyResponse::Rejected(rejection); count],
        other => vec![
            ApplyResponse::Rejected(Rejection::InvalidArgument {
                reason: format!("a batch of {count} writes was answered with {other:?}"),
            });
            count
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_response_is_split_in_order_and_a_rejection_reaches_every_write() {
        let put = |n: u8| ApplyResponse::Put {
            prev_kv: Some(Box::new(regatta_proto::mvcc::v1::KeyValue {
                key: vec![n].into(),
                ..Default::default()
            })),
        };
        let split_puts = split(ApplyResponse::Batch(vec![put(1), put(2)]), 2);
        assert_eq!(split_puts, vec![put(1), put(2)]);

        let rejected = ApplyResponse::Rejected(Rejection::TableNotFound { table: "t".into() });
        assert_eq!(split(rejected.clone(), 3), vec![rejected; 3]);

        // A response that does not match the batch never hands one write another's answer.
        let wrong = split(ApplyResponse::Batch(vec![put(1)]), 2);
        assert_eq!(wrong.len(), 2);
        assert!(
            wrong
                .iter()
                .all(|r| matches!(r, ApplyResponse::Rejected(_)))
        );
    }
}
