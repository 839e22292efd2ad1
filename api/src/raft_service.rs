//! The server side of the Raft transport: hands peers' messages to the local openraft
//! instance, receives streamed snapshots, and answers forwarded writes through a
//! [`ForwardHandler`] supplied by the node.

use std::{io::SeekFrom, sync::Arc};

use futures::future::BoxFuture;
use openraft::raft::AppendEntriesResponse;
use openraft::{Raft, Snapshot, error::RaftError};
use regatta_log::raft::Durability;
use regatta_proto::regatta::raft::v1::{self as pb, raft_transport_server::RaftTransport};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use regatta_proto::Error as CodecError;
use regatta_proto::raft::{self as codec, WireConfig};

/// What the node does with requests peers send it beyond Raft itself: forwarded writes,
/// read-index requests, and questions about who it is.
pub trait ForwardHandler: Send + Sync + 'static {
    fn forward(
        &self,
        request: pb::ForwardRequest,
    ) -> BoxFuture<'_, Result<pb::ForwardResponse, Status>>;
    fn read_index(&self, hops: u32) -> BoxFuture<'_, Result<u64, Status>>;
    fn node_info(&self) -> pb::NodeInfoResponse;
}

/// The `regatta.raft.v1.RaftTransport` service of one core node.
pub struct RaftService<C: WireConfig> {
    raft: Raft<C>,
    handler: Arc<dyn ForwardHandler>,
    /// Set when the log store tells openraft appends are flushed before their fsync: an
    /// AppendEntries is answered with success only once what it wrote is durable.
    durability: Option<Durability>,
    /// Cancelled when the node stops: every `AppendStream` ends then, so that a peer's
    /// stream does not hold the server's grace period.
    stop: tokio_util::sync::CancellationToken,
}

impl<C: WireConfig> RaftService<C> {
    pub fn new(raft: Raft<C>, handler: Arc<dyn ForwardHandler>) -> Self {
        Self {
            raft,
            handler,
            durability: None,
            stop: tokio_util::sync::CancellationToken::new(),
        }
    }

    /// Ends every `AppendStream` (`UNAVAILABLE`, between two messages) once `stop` is
    /// cancelled: the node is stopping, and the leader's stream to it would otherwise keep
    /// the Raft server open for its whole grace period.
    pub fn with_stop(mut self, stop: tokio_util::sync::CancellationToken) -> Self {
        self.stop = stop;
        self
    }

    /// Answers AppendEntries with success only once this node's log holds durably what
    /// the answer claims (see [`regatta_log::raft::Durability`]).
    pub fn answer_when_durable(mut self, durability: Durability) -> Self {
        self.durability = Some(durability);
        self
    }
}

fn codec_status(e: CodecError) -> Status {
    Status::invalid_argument(e.to_string())
}

fn raft_status<E: std::error::Error>(e: RaftError<u64, E>) -> Status {
    match e {
        RaftError::APIError(e) => Status::failed_precondition(e.to_string()),
        RaftError::Fatal(e) => Status::unavailable(format!("raft on this node has stopped: {e}")),
    }
}

/// One AppendEntries, as the unary call and the stream answer it.
async fn append<C: WireConfig>(
    raft: &Raft<C>,
    durability: Option<&Durability>,
    request: pb::AppendEntriesRequest,
) -> Result<pb::AppendEntriesResponse, Status> {
    let req = codec::append_request_from_pb::<C>(request).map_err(codec_status)?;
    let resp = raft.append_entries(req).await.map_err(raft_status)?;
    // openraft heard "flushed" when the entries were written; the leader counts this node as
    // holding them once it reads a success, so that waits for the fsync.
    let claims_entries = matches!(
        resp,
        AppendEntriesResponse::Success | AppendEntriesResponse::PartialSuccess(_)
    );
    if claims_entries && let Some(durability) = durability {
        durability.wait_written().await.map_err(|reason| {
            Status::unavailable(format!(
                "raft on this node has stopped: its log failed before the entries were durable: {reason}"
            ))
        })?;
    }
    Ok(codec::append_response_to_pb(&resp))
}

/// One `AppendStream` being served.
struct AppendStreamState<C: WireConfig> {
    requests: Streaming<pb::AppendEntriesRequest>,
    raft: Raft<C>,
    durability: Option<Durability>,
    stop: tokio_util::sync::CancellationToken,
    /// An error was the last answer.
    ended: bool,
}

/// The answers of an `AppendStream`, one per request, in order.
type AppendAnswers = std::pin::Pin<
    Box<dyn futures::Stream<Item = Result<pb::AppendEntriesResponse, Status>> + Send>,
>;

#[tonic::async_trait]
impl<C: WireConfig> RaftTransport for RaftService<C> {
    async fn append_entries(
        &self,
        request: Request<pb::AppendEntriesRequest>,
    ) -> Result<Response<pb::AppendEntriesResponse>, Status> {
        append(&self.raft, self.durability.as_ref(), request.into_inner())
            .await
            .map(Response::new)
    }

    type AppendStreamStream = AppendAnswers;

    /// Answers each request before reading the next (the leader sends one at a time), on
    /// the task of this HTTP/2 stream; the first error is the stream's last message. Ends
    /// with `UNAVAILABLE` between two messages once the node is stopping.
    async fn append_stream(
        &self,
        request: Request<Streaming<pb::AppendEntriesRequest>>,
    ) -> Result<Response<Self::AppendStreamStream>, Status> {
        let stream = AppendStreamState {
            requests: request.into_inner(),
            raft: self.raft.clone(),
            durability: self.durability.clone(),
            stop: self.stop.clone(),
            ended: false,
        };
        let answers = futures::stream::unfold(stream, |mut s| async move {
            if s.ended {
                return None;
            }
            let next = tokio::select! {
                next = s.requests.next() => next?,
                () = s.stop.cancelled() => Err(Status::unavailable("the node is stopping")),
            };
            let answer = match next {
                Ok(request) => append(&s.raft, s.durability.as_ref(), request).await,
                Err(status) => Err(status),
            };
            s.ended = answer.is_err();
            Some((answer, s))
        });
        Ok(Response::new(Box::pin(answers)))
    }

    async fn vote(
        &self,
        request: Request<pb::VoteRequest>,
    ) -> Result<Response<pb::VoteResponse>, Status> {
        let req = codec::vote_request_from_pb(request.into_inner()).map_err(codec_status)?;
        let resp = self.raft.vote(req).await.map_err(raft_status)?;
        Ok(Response::new(codec::vote_response_to_pb(&resp)))
    }

    async fn install_snapshot(
        &self,
        request: Request<pb::InstallSnapshotRequest>,
    ) -> Result<Response<pb::InstallSnapshotResponse>, Status> {
        let req =
            codec::install_request_from_pb::<C>(request.into_inner()).map_err(codec_status)?;
        let resp = self.raft.install_snapshot(req).await.map_err(raft_status)?;
        Ok(Response::new(pb::InstallSnapshotResponse {
            vote: Some(codec::vote_to_pb(&resp.vote)),
        }))
    }

    async fn stream_snapshot(
        &self,
        request: Request<Streaming<pb::SnapshotPart>>,
    ) -> Result<Response<pb::InstallSnapshotResponse>, Status> {
        let mut parts = request.into_inner();
        let first = parts
            .next()
            .await
            .ok_or_else(|| Status::invalid_argument("snapshot stream is empty"))??;
        let vote = codec::vote_from_pb(first.vote).map_err(codec_status)?;
        let meta = codec::snapshot_meta_from_pb(first.meta).map_err(codec_status)?;
        let mut data = self
            .raft
            .begin_receiving_snapshot()
            .await
            .map_err(raft_status)?;
        let io =
            |e: std::io::Error| Status::internal(format!("buffering the received snapshot: {e}"));
        data.write_all(&first.data).await.map_err(io)?;
        while let Some(part) = parts.next().await {
            data.write_all(&part?.data).await.map_err(io)?;
        }
        data.flush().await.map_err(io)?;
        data.seek(SeekFrom::Start(0)).await.map_err(io)?;
        tracing::info!(snapshot_id = %meta.snapshot_id, "installing snapshot received from the leader");
        let resp = self
            .raft
            .install_full_snapshot(
                vote,
                Snapshot {
                    meta,
                    snapshot: data,
                },
            )
            .await
            .map_err(|e| Status::unavailable(format!("raft on this node has stopped: {e}")))?;
        Ok(Response::new(pb::InstallSnapshotResponse {
            vote: Some(codec::vote_to_pb(&resp.vote)),
        }))
    }

    async fn forward(
        &self,
        request: Request<pb::ForwardRequest>,
    ) -> Result<Response<pb::ForwardResponse>, Status> {
        self.handler
            .forward(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn read_index(
        &self,
        request: Request<pb::ReadIndexRequest>,
    ) -> Result<Response<pb::ReadIndexResponse>, Status> {
        let index = self.handler.read_index(request.into_inner().hops).await?;
        Ok(Response::new(pb::ReadIndexResponse { index }))
    }

    async fn node_info(
        &self,
        _: Request<pb::NodeInfoRequest>,
    ) -> Result<Response<pb::NodeInfoResponse>, Status> {
        Ok(Response::new(self.handler.node_info()))
    }
}
