//! Opening gRPC channels to other nodes (and, from the CLI, to a node): the address's
//! scheme decides — `http://` is plaintext, `https://` is TLS under the dialer's client
//! configuration, never falling back to plaintext. Every internal client (Raft peers,
//! forwarded writes, read index, an edge's upstream) and the CLI dial through a [`Dialer`].
//!
//! The dialer opens the TCP connection itself, with the endpoint's TCP settings (no Nagle
//! delay, keepalive, connect timeout) as tonic's own connector would, and hands HTTP/2 a
//! [`DialedStream`] over it (TLS included): one that declines vectored writes, so the DATA
//! frame of a request of a few hundred bytes leaves in the same write as what follows it
//! (see `stream.rs`). An endpoint's local address is not used (tonic does not expose it to
//! a connector; no caller sets it).

use std::sync::Arc;

use hyper_util::{client::legacy::connect::HttpConnector, rt::TokioIo};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint, Uri};
use tower::ServiceExt;

use crate::{Error, stream::DialedStream};

/// How channels are opened; cheap to clone. See the module docs.
#[derive(Clone, Default)]
pub struct Dialer {
    tls: Option<Tls>,
}

#[derive(Clone)]
struct Tls {
    connector: TlsConnector,
    /// The name the server's certificate must carry, instead of the address's host.
    server_name: Option<ServerName<'static>>,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer")
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// Why a channel could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// An `https://` address, and no TLS client settings to reach it with.
    #[error("{uri} is an https:// address, and no TLS client settings are given to reach it")]
    NoTls { uri: String },
    #[error("{}", describe(.0))]
    Transport(#[source] tonic::transport::Error),
}

impl Dialer {
    /// Plaintext only: an `https://` address is refused ([`DialError::NoTls`]).
    pub fn plaintext() -> Self {
        Self::default()
    }

    /// TLS under `config` for `https://` addresses; the server's certificate must be valid
    /// for `server_name` when given, for the address's host otherwise.
    pub fn tls(config: Arc<ClientConfig>, server_name: Option<&str>) -> Result<Self, Error> {
        let server_name = server_name
            .filter(|name| !name.is_empty())
            .map(|name| {
                ServerName::try_from(name.to_string())
                    .map_err(|e| Error::Settings(format!("server name {name:?}: {e}")))
            })
            .transpose()?;
        Ok(Self {
            tls: Some(Tls {
                connector: TlsConnector::from(config),
                server_name,
            }),
        })
    }

    /// Whether `https://` addresses can be dialed.
    pub fn has_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// A channel that connects on first use and reconnects by itself.
    pub fn connect_lazy(&self, endpoint: Endpoint) -> Result<Channel, DialError> {
        let tls = self.tls_for(&endpoint)?;
        Ok(endpoint.connect_with_connector_lazy(connector(&endpoint, tls)))
    }

    /// A channel connected now.
    pub async fn connect(&self, endpoint: Endpoint) -> Result<Channel, DialError> {
        let tls = self.tls_for(&endpoint)?;
        endpoint
            .connect_with_connector(connector(&endpoint, tls))
            .await
            .map_err(DialError::Transport)
    }

    fn tls_for(&self, endpoint: &Endpoint) -> Result<Option<Tls>, DialError> {
        let uri = endpoint.uri();
        if !uri
            .scheme_str()
            .is_some_and(|s| s.eq_ignore_ascii_case("https"))
        {
            return Ok(None);
        }
        match &self.tls {
            Some(tls) => Ok(Some(tls.clone())),
            None => Err(DialError::NoTls {
                uri: uri.to_string(),
            }),
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A TCP connection under `endpoint`'s TCP settings, with a TLS session over it when `tls`
/// is given (handed over once the server accepted the client, see `verdict`). The connect
/// timeout is left to tonic, which applies it to the whole connector.
fn connector(
    endpoint: &Endpoint,
    tls: Option<Tls>,
) -> impl tower::Service<Uri, Response = TokioIo<DialedStream>, Error = BoxError, Future = impl Send>
+ Clone
+ Send
+ 'static {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(endpoint.get_tcp_nodelay());
    http.set_keepalive(endpoint.get_tcp_keepalive());
    http.set_keepalive_interval(endpoint.get_tcp_keepalive_interval());
    http.set_keepalive_retries(endpoint.get_tcp_keepalive_retries());
    tower::service_fn(move |uri: Uri| {
        let (http, tls) = (http.clone(), tls.clone());
        async move {
            let tcp: tokio::net::TcpStream = http.oneshot(uri.clone()).await?.into_inner();
            let Some(tls) = tls else {
                return Ok::<_, BoxError>(TokioIo::new(DialedStream::tcp(tcp)));
            };
            let name = match tls.server_name {
                Some(name) => name,
                None => {
                    let host = uri
                        .host()
                        .unwrap_or_default()
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_string();
                    ServerName::try_from(host)
                        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?
                }
            };
            let stream = tls.connector.connect(name, tcp).await?;
            let stream = crate::verdict::await_verdict(stream).await?;
            Ok(TokioIo::new(DialedStream::tls(stream)))
        }
    })
}

/// `e` and its sources, `outer: inner: …`, each told once (rustls's errors repeat their
/// source in their own text).
pub fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let told = cause.to_string();
        if !text.contains(&told) {
            text.push_str(": ");
            text.push_str(&told);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// The connector dials a real TCP connection whose stream declines vectored writes, and
    /// bytes cross it both ways.
    #[tokio::test]
    async fn a_dialed_stream_declines_vectored_writes_and_carries_bytes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let echo = tokio::spawn(async move {
            let (mut peer, _) = listener.accept().await.expect("accept");
            let mut got = [0; 5];
            peer.read_exact(&mut got).await.expect("read");
            peer.write_all(&got).await.expect("write");
        });
        let endpoint = Endpoint::from_shared(format!("http://{addr}")).expect("endpoint");
        let io = connector(&endpoint, None)
            .oneshot(endpoint.uri().clone())
            .await
            .expect("dial");
        let mut stream = io.into_inner();
        assert!(!stream.is_tls());
        assert!(!tokio::io::AsyncWrite::is_write_vectored(&stream));
        stream.write_all(b"hello").await.expect("write");
        let mut back = [0; 5];
        stream.read_exact(&mut back).await.expect("read");
        assert_eq!(&back, b"hello");
        echo.await.expect("echo");
    }
}
