//! Requests between nodes leave in as few writes as HTTP/2 allows: every Raft, forwarding
//! and replication client runs on a channel from `regatta_tls::Dialer`, whose connections
//! are [`DialedStream`]s that decline vectored writes. A unary request with a few hundred
//! bytes then takes two writes (its HEADERS; its DATA with the end of the stream) instead
//! of three, h2 sending such a DATA frame on its own on a stream with vectored writes.
//!
//! A real tonic server on loopback and real clients over TCP.

use std::{
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
};

use hyper_util::rt::TokioIo;
use regatta_proto::regatta::v1::{
    CreateTableRequest, CreateTableResponse, DeleteTableRequest, DeleteTableResponse,
    ListTablesRequest, ListTablesResponse,
    tables_client::TablesClient,
    tables_server::{Tables, TablesServer},
};
use regatta_tls::{DialedStream, Dialer};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
};
use tonic::{
    Request, Response, Status,
    transport::{Channel, Endpoint, Uri},
};

/// Answers every call at once.
struct Answering;

#[tonic::async_trait]
impl Tables for Answering {
    async fn create(
        &self,
        request: Request<CreateTableRequest>,
    ) -> Result<Response<CreateTableResponse>, Status> {
        Ok(Response::new(CreateTableResponse {
            id: request.into_inner().name.len().to_string(),
        }))
    }

    async fn delete(
        &self,
        _: Request<DeleteTableRequest>,
    ) -> Result<Response<DeleteTableResponse>, Status> {
        Ok(Response::new(DeleteTableResponse::default()))
    }

    async fn list(
        &self,
        _: Request<ListTablesRequest>,
    ) -> Result<Response<ListTablesResponse>, Status> {
        Ok(Response::new(ListTablesResponse::default()))
    }
}

/// A server on a loopback port.
async fn serve() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TablesServer::new(Answering))
            .serve_with_incoming(incoming),
    );
    addr
}

/// A client's stream that counts the writes HTTP/2 makes on it, and passes everything
/// through (whether it takes vectored writes included).
struct Counted<S> {
    inner: S,
    writes: Arc<AtomicUsize>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.writes.fetch_add(1, Ordering::Relaxed);
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.writes.fetch_add(1, Ordering::Relaxed);
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A channel to `addr` over one TCP connection, as `wrap` makes it, counting its writes.
async fn counted_channel<S>(
    addr: std::net::SocketAddr,
    wrap: fn(TcpStream) -> S,
) -> (Channel, Arc<AtomicUsize>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let writes = Arc::new(AtomicUsize::new(0));
    let counter = writes.clone();
    let connector = tower::service_fn(move |_: Uri| {
        let writes = counter.clone();
        async move {
            let tcp = TcpStream::connect(addr).await?;
            tcp.set_nodelay(true)?;
            Ok::<_, io::Error>(TokioIo::new(Counted {
                inner: wrap(tcp),
                writes,
            }))
        }
    });
    let endpoint = Endpoint::from_shared(format!("http://{addr}")).expect("endpoint");
    let channel = endpoint
        .connect_with_connector(connector)
        .await
        .expect("connect");
    (channel, writes)
}

const REQUESTS: usize = 20;

/// Sends [`REQUESTS`] creates with 300-byte names one after the other, after a first call
/// that carries the connection's preface and settings; the writes the creates took.
async fn writes_of_creates(channel: Channel, writes: &AtomicUsize) -> usize {
    let mut client = TablesClient::new(channel);
    client.list(ListTablesRequest {}).await.expect("list");
    let before = writes.load(Ordering::Relaxed);
    let name = "n".repeat(300);
    for _ in 0..REQUESTS {
        let answer = client
            .create(CreateTableRequest {
                name: name.clone(),
                config: None,
            })
            .await
            .expect("create");
        assert_eq!(
            answer.into_inner().id,
            "300",
            "the server saw the whole name"
        );
    }
    writes.load(Ordering::Relaxed) - before
}

#[tokio::test]
async fn a_request_of_a_few_hundred_bytes_takes_two_writes_on_a_dialed_stream() {
    let addr = serve().await;
    let (channel, writes) = counted_channel(addr, DialedStream::tcp).await;
    let dialed = writes_of_creates(channel, &writes).await;
    // For comparison, in the test's output: the same over a bare TCP stream.
    let (channel, writes) = counted_channel(addr, |tcp| tcp).await;
    let bare = writes_of_creates(channel, &writes).await;
    eprintln!("writes for {REQUESTS} requests: {dialed} on a dialed stream, {bare} on bare TCP");
    assert!(
        dialed <= 2 * REQUESTS,
        "{REQUESTS} requests took {dialed} writes on a dialed stream"
    );
}

/// A channel from the dialer carries requests and answers whole.
#[tokio::test]
async fn requests_round_trip_on_a_dialer_channel() {
    let addr = serve().await;
    let endpoint = Endpoint::from_shared(format!("http://{addr}")).expect("endpoint");
    for channel in [
        Dialer::plaintext()
            .connect(endpoint.clone())
            .await
            .expect("connect"),
        Dialer::plaintext()
            .connect_lazy(endpoint)
            .expect("lazy channel"),
    ] {
        let mut client = TablesClient::new(channel);
        for len in [0, 1, 300, 1_000, 100_000] {
            let answer = client
                .create(CreateTableRequest {
                    name: "n".repeat(len),
                    config: None,
                })
                .await
                .expect("create");
            assert_eq!(answer.into_inner().id, len.to_string());
        }
    }
}
