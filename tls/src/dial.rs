//! Opening gRPC channels to other nodes (and, from the CLI, to a node): the address's
//! scheme decides — `http://` is plaintext, `https://` is TLS under the dialer's client
//! configuration, never falling back to plaintext. Every internal client (Raft peers,
//! forwarded writes, read index, an edge's upstream) and the CLI dial through a [`Dialer`].

use std::sync::Arc;

use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::Error;

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
        match self.tls_for(&endpoint)? {
            None => Ok(endpoint.connect_lazy()),
            Some(tls) => Ok(endpoint.connect_with_connector_lazy(connector(tls))),
        }
    }

    /// A channel connected now.
    pub async fn connect(&self, endpoint: Endpoint) -> Result<Channel, DialError> {
        let connected = match self.tls_for(&endpoint)? {
            None => endpoint.connect().await,
            Some(tls) => endpoint.connect_with_connector(connector(tls)).await,
        };
        connected.map_err(DialError::Transport)
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

/// A TCP connection (no Nagle) with a TLS session over it, handed over once the server
/// accepted the client (see `verdict`).
fn connector(
    tls: Tls,
) -> impl tower::Service<
    Uri,
    Response = TokioIo<crate::verdict::ReadAhead<tokio_rustls::client::TlsStream<TcpStream>>>,
    Error = std::io::Error,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(move |uri: Uri| {
        let tls = tls.clone();
        async move {
            let host = uri
                .host()
                .unwrap_or_default()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let port = uri.port_u16().unwrap_or(443);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let name = match tls.server_name {
                Some(name) => name,
                None => ServerName::try_from(host)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
            };
            let stream = tls.connector.connect(name, tcp).await?;
            Ok(TokioIo::new(crate::verdict::await_verdict(stream).await?))
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
