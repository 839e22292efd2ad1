//! The client side of the Raft transport: openraft's `RaftNetwork` over tonic.
//!
//! One lazily connected channel per peer, opened through the node's
//! [`regatta_tls::Dialer`]: TLS (with this node's client certificate) to `https://` peers,
//! plaintext to `http://` ones. Transport failures become openraft's `Unreachable` (back
//! off) and any other failure `Network` (retry); a snapshot travels as one client stream of
//! parts, so its transfer time is bounded by the stream, not by a per-chunk timeout.
//! A TLS handshake that fails (a peer refusing this node's certificate, or this node the
//! peer's) fails the call like any transport error; its cause is in the error openraft
//! logs (`received fatal alert: UnknownCA`, `invalid peer certificate: UnknownIssuer`).
//!
//! [`internal_server`] holds the HTTP/2 server settings of the ports only nodes use.

use std::{future::Future, io::SeekFrom, time::Duration};

use openraft::{
    BasicNode, Snapshot, Vote,
    error::{
        Fatal, InstallSnapshotError, NetworkError, RPCError, RaftError, ReplicationClosed,
        StreamingError, Unreachable,
    },
    network::{RPCOption, RaftNetwork, RaftNetworkFactory},
    raft::{
        AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest,
        InstallSnapshotResponse, SnapshotResponse, VoteRequest, VoteResponse,
    },
};
use regatta_log::raft::Durability;
use regatta_proto::regatta::raft::v1::{self as pb, raft_transport_client::RaftTransportClient};
use regatta_tls::Dialer;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tonic::transport::{Channel, Endpoint};

use regatta_proto::raft::{self as codec, WireConfig};

/// Bytes of snapshot data per streamed part.
const SNAPSHOT_PART_BYTES: usize = 1 << 20;
/// The longest a whole snapshot transfer may take.
const SNAPSHOT_TRANSFER_TIMEOUT: Duration = Duration::from_secs(600);
/// Largest Raft message accepted or sent (batches of log entries can be large).
pub const MAX_RAFT_MESSAGE_BYTES: usize = 64 << 20;

/// How often a peer's connection is probed with an HTTP/2 PING, busy or idle, and how long
/// the answer may take before the connection is dropped and dialed again.
///
/// A Raft call that times out leaves its connection as it was. After a one-way partition
/// heals, the TCP connection under it can stay wedged for many seconds (the sender's
/// retransmissions back off exponentially while the peer's acknowledgements were being
/// dropped): every AppendEntries on it times out, the leader cannot commit, and the
/// followers, which still receive some of its traffic, do not elect another. Probing every
/// second and giving up after one more bounds that to about two seconds, below a failover.
const PEER_PING_INTERVAL: Duration = Duration::from_secs(1);
const PEER_PING_TIMEOUT: Duration = Duration::from_secs(1);

/// `endpoint` with the settings of a connection between two nodes (Raft, forwarded
/// requests, replication): a bounded dial, no Nagle delay, and the liveness probe above.
pub fn peer_endpoint(endpoint: Endpoint) -> Endpoint {
    endpoint
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(PEER_PING_INTERVAL)
        .keep_alive_timeout(PEER_PING_TIMEOUT)
        .keep_alive_while_idle(true)
}

/// Streams a peer may open and reset before this node's HTTP/2 server has accepted them,
/// on the Raft and replication ports (h2's default is 20).
///
/// That default guards public servers against "rapid reset" floods; between our own nodes
/// it broke the connection at the worst moment: a node forwards every write to the leader
/// on one connection and resets a stream when the write's client gives up. While the
/// leader is frozen or cut off, those streams and their resets wait in its socket buffer;
/// once it reads them in one go more than 20 are reset before being accepted, h2 answers
/// GOAWAY `ENHANCE_YOUR_CALM`, and every call on that connection fails (Raft's own calls
/// and forwarded writes alike). The buffers bound how many can arrive at once (a few tens
/// of thousands of small requests); this limit sits above that.
pub const INTERNAL_MAX_PENDING_ACCEPT_RESETS: usize = 65_536;

/// `server` (a builder with the node's connection and stream limits) with the HTTP/2
/// settings of the ports only nodes talk to (Raft, replication).
pub fn internal_server(server: tonic::transport::Server) -> tonic::transport::Server {
    server.http2_max_pending_accept_reset_streams(Some(INTERNAL_MAX_PENDING_ACCEPT_RESETS))
}

/// How long a peer that answered `AppendStream` with UNIMPLEMENTED (an older build) is sent
/// unary AppendEntries before it is asked again: it may have been upgraded since, and the
/// leader's connection to it can outlive the upgrade.
pub const APPEND_STREAM_REPROBE: Duration = Duration::from_secs(60);

/// Creates a [`RaftPeer`] per target node, dialing through one [`Dialer`].
#[derive(Clone)]
pub struct RaftNetworkFactoryImpl {
    dialer: Dialer,
    durability: Option<Durability>,
    stream_reprobe: Duration,
}

impl Default for RaftNetworkFactoryImpl {
    fn default() -> Self {
        Self::new(Dialer::default())
    }
}

impl RaftNetworkFactoryImpl {
    /// Peers are dialed through `dialer`: TLS to `https://` addresses.
    pub fn new(dialer: Dialer) -> Self {
        Self {
            dialer,
            durability: None,
            stream_reprobe: APPEND_STREAM_REPROBE,
        }
    }

    /// Asks a peer that does not serve `AppendStream` again after `after` instead of
    /// [`APPEND_STREAM_REPROBE`].
    pub fn stream_reprobe_after(mut self, after: Duration) -> Self {
        self.stream_reprobe = after;
        self
    }

    /// A commit index is sent to followers only once this node's log holds it durably (see
    /// [`Durability`]): no follower applies an entry before the leader's copy is on disk.
    pub fn commit_when_durable(mut self, durability: Durability) -> Self {
        self.durability = Some(durability);
        self
    }
}

impl<C: WireConfig> RaftNetworkFactory<C> for RaftNetworkFactoryImpl {
    type Network = RaftPeer;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> Self::Network {
        RaftPeer::new(target, &node.addr, self)
    }
}

/// The connection to one peer. Its channel reconnects by itself.
pub struct RaftPeer {
    target: u64,
    client: Result<RaftTransportClient<Channel>, String>,
    durability: Option<Durability>,
    /// The open `AppendStream` to the peer, if any: taken for each call and put back only
    /// after its answer was read, so a call that failed or timed out leaves none behind
    /// (its answer could still arrive) and the next call opens a new one.
    stream: Option<AppendStream>,
    /// The peer answered UNIMPLEMENTED to `AppendStream` (an older build): unary calls
    /// until then, when it is asked again.
    unary_until: Option<std::time::Instant>,
    stream_reprobe: Duration,
}

/// What sending on the `AppendStream` came to.
enum Sent {
    Answered(pb::AppendEntriesResponse),
    /// The peer does not serve `AppendStream`: the message, for the unary call.
    Unsupported(pb::AppendEntriesRequest),
}

/// One open `AppendStream`: the sending half of its request stream and its answers.
struct AppendStream {
    requests: tokio::sync::mpsc::Sender<pb::AppendEntriesRequest>,
    answers: tonic::Streaming<pb::AppendEntriesResponse>,
}

impl RaftPeer {
    fn new(target: u64, addr: &str, factory: &RaftNetworkFactoryImpl) -> Self {
        let client = Endpoint::from_shared(addr.to_string())
            .map_err(|e| format!("invalid raft address {addr:?} of node {target}: {e}"))
            .and_then(|endpoint| {
                factory
                    .dialer
                    .connect_lazy(peer_endpoint(endpoint))
                    .map_err(|e| format!("raft address {addr:?} of node {target}: {e}"))
            })
            .map(|channel| {
                RaftTransportClient::new(channel)
                    .max_decoding_message_size(MAX_RAFT_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_RAFT_MESSAGE_BYTES)
            });
        Self {
            target,
            client,
            durability: factory.durability.clone(),
            stream: None,
            unary_until: None,
            stream_reprobe: factory.stream_reprobe,
        }
    }

    /// Sends one AppendEntries on the peer's `AppendStream`, opening one if none is open,
    /// and reads its answer.
    async fn append_on_stream(
        &mut self,
        message: pb::AppendEntriesRequest,
    ) -> Result<Sent, TransportFailure> {
        let message = match self.stream.take() {
            Some(stream) => match stream.requests.send(message).await {
                Ok(()) => return self.answer_of(stream).await.map(Sent::Answered),
                // The stream ended since the last call (the peer restarted, or answered an
                // error): the message was not sent; open another.
                Err(unsent) => unsent.0,
            },
            None => message,
        };
        let (requests, receiver) = tokio::sync::mpsc::channel(1);
        // Queued before the stream opens, so it goes with the request's headers; kept for
        // the unary call if the peer does not know the method.
        let _ = requests.try_send(message.clone());
        let mut client = self.client()?;
        let opened = client
            .append_stream(tokio_stream::wrappers::ReceiverStream::new(receiver))
            .await;
        let answers = match opened {
            Ok(response) => response.into_inner(),
            Err(status) if status.code() == tonic::Code::Unimplemented => {
                tracing::info!(
                    target_node = self.target,
                    "peer does not serve AppendStream (an older build): sending unary AppendEntries"
                );
                self.unary_until = Some(std::time::Instant::now() + self.stream_reprobe);
                return Ok(Sent::Unsupported(message));
            }
            Err(status) => return Err(status.into()),
        };
        self.answer_of(AppendStream { requests, answers })
            .await
            .map(Sent::Answered)
    }

    /// Reads the answer to the request just sent on `stream`, and keeps the stream if one
    /// came.
    async fn answer_of(
        &mut self,
        mut stream: AppendStream,
    ) -> Result<pb::AppendEntriesResponse, TransportFailure> {
        match stream.answers.message().await? {
            Some(answer) => {
                self.stream = Some(stream);
                Ok(answer)
            }
            None => Err(TransportFailure::Unreachable(tonic::Status::unavailable(
                "the peer ended the append stream without answering",
            ))),
        }
    }

    fn client(&self) -> Result<RaftTransportClient<Channel>, TransportFailure> {
        self.client.clone().map_err(TransportFailure::BadAddress)
    }
}

/// Why a call to a peer did not return an answer.
#[derive(Debug, thiserror::Error)]
enum TransportFailure {
    #[error("{0}")]
    BadAddress(String),
    #[error("peer unreachable: {0}")]
    Unreachable(tonic::Status),
    #[error("peer answered {0}")]
    Status(tonic::Status),
    #[error("peer sent an invalid message: {0}")]
    Codec(#[from] regatta_proto::Error),
    #[error("reading the local snapshot: {0}")]
    Io(#[from] std::io::Error),
    #[error("the local log stopped before the commit index was durable: {0}")]
    LogStopped(String),
}

impl From<tonic::Status> for TransportFailure {
    fn from(status: tonic::Status) -> Self {
        match status.code() {
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
                Self::Unreachable(status)
            }
            _ => Self::Status(status),
        }
    }
}

impl TransportFailure {
    fn into_rpc<E: std::error::Error>(self) -> RPCError<u64, BasicNode, E> {
        match self {
            Self::Unreachable(_) | Self::BadAddress(_) => {
                RPCError::Unreachable(Unreachable::new(&self))
            }
            _ => RPCError::Network(NetworkError::new(&self)),
        }
    }
}

fn request<T>(message: T, option: &RPCOption) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(option.hard_ttl());
    request
}

impl<C: WireConfig> RaftNetwork<C> for RaftPeer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        if let (Some(durability), Some(commit)) = (&self.durability, &rpc.leader_commit) {
            durability
                .wait(commit.index)
                .await
                .map_err(|reason| TransportFailure::LogStopped(reason).into_rpc())?;
        }
        let call = async {
            let message = codec::append_request_to_pb(&rpc);
            let unary = self
                .unary_until
                .is_some_and(|until| std::time::Instant::now() < until);
            let sent = if unary {
                Sent::Unsupported(message)
            } else {
                self.append_on_stream(message).await?
            };
            let answer = match sent {
                Sent::Answered(answer) => answer,
                Sent::Unsupported(message) => {
                    let mut client = self.client()?;
                    client
                        .append_entries(request(message, &option))
                        .await?
                        .into_inner()
                }
            };
            Ok::<_, TransportFailure>(codec::append_response_from_pb(answer)?)
        };
        // The stream has no deadline of its own (it outlives calls): bound each exchange
        // here, as the unary call's deadline bounds it (waiting for this node's own fsync
        // above is not part of it, as before).
        match tokio::time::timeout(option.hard_ttl(), call).await {
            Ok(result) => result.map_err(TransportFailure::into_rpc),
            Err(_) => Err(
                TransportFailure::Unreachable(tonic::Status::deadline_exceeded(format!(
                    "no answer to AppendEntries within {:?}",
                    option.hard_ttl()
                )))
                .into_rpc(),
            ),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let call = async {
            let mut client = self.client()?;
            let resp = client
                .vote(request(codec::vote_request_to_pb(&rpc), &option))
                .await?;
            Ok::<_, TransportFailure>(codec::vote_response_from_pb(resp.into_inner())?)
        };
        call.await.map_err(TransportFailure::into_rpc)
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<C>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        let call = async {
            let mut client = self.client()?;
            let resp = client
                .install_snapshot(request(codec::install_request_to_pb(&rpc), &option))
                .await?;
            Ok::<_, TransportFailure>(codec::install_response_from_pb(resp.into_inner())?)
        };
        call.await.map_err(TransportFailure::into_rpc)
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote<u64>,
        snapshot: Snapshot<C>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<u64>, StreamingError<C, Fatal<u64>>> {
        let target = self.target;
        let send = async {
            let mut client = self.client()?;
            let Snapshot {
                meta,
                snapshot: mut data,
            } = snapshot;
            data.seek(SeekFrom::Start(0)).await?;
            // Read the whole snapshot in parts ahead of the stream; the data is local.
            let mut parts = Vec::new();
            let mut first = Some((codec::vote_to_pb(&vote), codec::snapshot_meta_to_pb(&meta)));
            loop {
                let mut buf = vec![0u8; SNAPSHOT_PART_BYTES];
                let mut filled = 0;
                while filled < buf.len() {
                    let n = data.read(&mut buf[filled..]).await?;
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                buf.truncate(filled);
                let (vote, meta) = first
                    .take()
                    .map_or((None, None), |(v, m)| (Some(v), Some(m)));
                let last = filled == 0 || filled < SNAPSHOT_PART_BYTES;
                if filled > 0 || vote.is_some() {
                    parts.push(pb::SnapshotPart {
                        vote,
                        meta,
                        data: buf.into(),
                    });
                }
                if last {
                    break;
                }
            }
            tracing::info!(
                target_node = target,
                parts = parts.len(),
                "streaming snapshot to peer"
            );
            let mut req = tonic::Request::new(futures::stream::iter(parts));
            req.set_timeout(SNAPSHOT_TRANSFER_TIMEOUT);
            let resp = client.stream_snapshot(req).await?;
            let vote = codec::vote_from_pb(resp.into_inner().vote)?;
            Ok::<_, TransportFailure>(SnapshotResponse { vote })
        };
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            result = send => result.map_err(|failure| match failure {
                TransportFailure::Unreachable(_) | TransportFailure::BadAddress(_) => {
                    StreamingError::Unreachable(Unreachable::new(&failure))
                }
                _ => StreamingError::Network(NetworkError::new(&failure)),
            }),
        }
    }
}
