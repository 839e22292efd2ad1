//! `regatta.v1.KV`: reads from this node's materialized view, writes through the node's
//! [`Role`](crate::node::Role).
//!
//! Every request is validated into its domain type first (`TryFrom`), so a bad request is
//! refused with `InvalidArgument` before it costs anything; a write goes on as that
//! [`Command`], and its response is built here from what applying it answered. Reads take one view and answer
//! entirely from it; the header's revision is that view's.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Semaphore;

use futures::Stream;
use regatta_materializer::{ApplyResponse, Budget, Command, request::TableRange, request::Txn};
use regatta_proto::regatta::v1::{
    DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse,
    ResponseHeader, TxnRequest, TxnResponse, kv_server::Kv,
};
use tonic::{Request, Response, Status};

use crate::{
    Error, Result,
    node::NodeContext,
    range_stream::{STREAM_CHUNK_BYTES, StreamLimits},
};

/// The KV service of one node.
pub struct KvService {
    ctx: NodeContext,
    streams: StreamLimits,
    /// Read-only Txns that step through ranges run one per permit, on blocking threads:
    /// half the CPUs (at least one), so that such work never takes every CPU from the
    /// requests that cost a lookup.
    scans: Arc<Semaphore>,
}

impl KvService {
    pub fn new(ctx: NodeContext) -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            ctx,
            streams: StreamLimits::default(),
            scans: Arc::new(Semaphore::new((cpus / 2).max(1))),
        }
    }

    /// Holds `IterateRange` streams to `streams` (default: [`StreamLimits::default`]).
    pub fn with_stream_limits(mut self, streams: StreamLimits) -> Self {
        self.streams = streams;
        self
    }

    /// Before a linearizable read: wait until this node has applied the leader's commit index.
    async fn linearize(&self, deadline: std::time::Duration) -> Result<()> {
        let started = tokio::time::Instant::now();
        let index = tokio::time::timeout(deadline, self.ctx.role.read_index())
            .await
            .map_err(|_| Error::Timeout {
                what: "confirming leadership for a linearizable read",
            })??;
        let left = deadline.saturating_sub(started.elapsed());
        self.ctx
            .wait_applied(regatta_materializer::Revision(index), left)
            .await
    }

    /// Commits `command` (validated where the request entered) within `deadline`: the
    /// response header for its table and what applying it answered.
    async fn write(
        &self,
        command: Command,
        deadline: std::time::Duration,
    ) -> Result<(ResponseHeader, ApplyResponse)> {
        let table = command.table().to_owned();
        let (revision, response) = tokio::time::timeout(deadline, self.ctx.role.write(command))
            .await
            .map_err(|_| Error::Timeout {
                what: "committing the write",
            })??;
        Ok((self.ctx.write_header(&table, revision), response))
    }

    /// A read-only Txn from the current view, within the transaction budget and the
    /// request's deadline. One that steps through ranges runs on a blocking thread and
    /// stops when the client goes away (this future is dropped) or its deadline passes;
    /// point lookups are answered in place.
    async fn read_txn(&self, txn: Txn, deadline: std::time::Duration) -> Result<TxnResponse> {
        let txn_scans = txn.scans();
        let view = self.ctx.materializer.view();
        let until = std::time::Instant::now() + deadline;
        let shard = view.table(&txn.table).map_or(0, |t| t.id().0);
        let header = self.ctx.header(shard, view.revision());
        let now_ms = regatta_materializer::wall_clock_ms();
        let evaluate = move |cancelled: &AtomicBool| -> Result<TxnResponse> {
            let mut budget = Budget::for_read(until, cancelled);
            let mut response = view.read_txn(&txn, &mut budget, now_ms)?.ok_or_else(|| {
                Error::Internal("a read-only transaction was taken for a write".into())
            })?;
            response.header = Some(header);
            Ok(response)
        };
        if !txn_scans {
            return evaluate(&AtomicBool::new(false));
        }
        let permit = tokio::time::timeout_at(until.into(), Arc::clone(&self.scans).acquire_owned())
            .await
            .map_err(|_| Error::Timeout {
                what: "waiting for a turn to evaluate a transaction that scans ranges",
            })?
            .map_err(|_| Error::Internal("the scan permits were closed".into()))?;
        // Set when this future is dropped: the client reset the stream or went away.
        let cancelled = Arc::new(AtomicBool::new(false));
        let _cancel_on_drop = CancelOnDrop(Arc::clone(&cancelled));
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            evaluate(&cancelled)
        })
        .await
        .map_err(|e| Error::Internal(format!("a read-only transaction failed: {e}")))?
    }

    fn range_now(&self, range: &TableRange) -> Result<RangeResponse> {
        let view = self.ctx.materializer.peek();
        let mut response = view
            .range(range, regatta_materializer::wall_clock_ms())
            .map_err(|e| self.ctx.missing_table(e.into()))?;
        let shard = view.table(&range.table).map_or(0, |t| t.id().0);
        response.header = Some(self.ctx.header(shard, view.revision()));
        Ok(response)
    }
}

/// Sets its flag when dropped: tells blocking work that its caller is gone.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn unexpected(what: &str, got: &ApplyResponse) -> Error {
    Error::Internal(format!("a {what} was answered with {got:?}"))
}

type RangeStream = Pin<Box<dyn Stream<Item = Result<RangeResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(
        &self,
        request: Request<RangeRequest>,
    ) -> Result<Response<RangeResponse>, Status> {
        let deadline = self.ctx.deadline(request.metadata());
        let range = TableRange::try_from(request.get_ref()).map_err(Error::from)?;
        if range.linearizable {
            self.linearize(deadline).await?;
        }
        Ok(Response::new(self.range_now(&range)?))
    }

    type IterateRangeStream = RangeStream;

    async fn iterate_range(
        &self,
        request: Request<RangeRequest>,
    ) -> Result<Response<RangeStream>, Status> {
        let deadline = self.ctx.deadline(request.metadata());
        let range = TableRange::try_from(request.get_ref()).map_err(Error::from)?;
        if range.linearizable {
            self.linearize(deadline).await?;
        }
        let admitted = self.streams.admit()?;
        let view = self.ctx.materializer.view();
        let chunks = view
            .iterate(&range, regatta_materializer::wall_clock_ms())
            .map_err(|e| self.ctx.missing_table(e.into()))?
            .with_max_bytes(STREAM_CHUNK_BYTES);
        let header = self.ctx.header(
            view.table(&range.table).map_or(0, |t| t.id().0),
            view.revision(),
        );
        drop(view);
        // Chunks are made by a task and handed over one at a time: a client that stops
        // reading pins at most a few chunks, and its view only until the stall timeout.
        let chunks = chunks.map(move |mut chunk| {
            chunk.header = Some(header);
            chunk
        });
        Ok(Response::new(Box::pin(
            self.streams.stream(chunks, admitted),
        )))
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let deadline = self.ctx.deadline(request.metadata());
        let command = Command::try_from(request.get_ref()).map_err(Error::from)?;
        match self.write(command, deadline).await? {
            (header, ApplyResponse::Put { prev_kv }) => Ok(Response::new(PutResponse {
                header: Some(header),
                prev_kv: prev_kv.map(|kv| *kv),
            })),
            (_, other) => Err(unexpected("put", &other).into()),
        }
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let deadline = self.ctx.deadline(request.metadata());
        let command = Command::try_from(request.get_ref()).map_err(Error::from)?;
        match self.write(command, deadline).await? {
            (header, ApplyResponse::DeleteRange(mut response)) => {
                response.header = Some(header);
                Ok(Response::new(*response))
            }
            (_, other) => Err(unexpected("delete", &other).into()),
        }
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let deadline = self.ctx.deadline(request.metadata());
        let txn = Txn::try_from(request.get_ref()).map_err(Error::from)?;
        txn.check_ops(self.ctx.limits.max_txn_ops)
            .map_err(Error::from)?;
        if txn.is_read_only() {
            let read = self.read_txn(txn, deadline).await;
            return Ok(Response::new(read.map_err(|e| self.ctx.missing_table(e))?));
        }
        match self.write(Command::Txn(txn), deadline).await? {
            (header, ApplyResponse::Txn(mut response)) => {
                response.header = Some(header);
                Ok(Response::new(*response))
            }
            (_, other) => Err(unexpected("txn", &other).into()),
        }
    }
}
