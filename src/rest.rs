//! The node's HTTP port (`--rest.address`): liveness, readiness and Prometheus metrics.
//!
//! - `GET /healthz`: 200 while the process serves at all.
//! - `GET /readyz`: 200 once the node can serve reads that reflect the cluster (see the
//!   node's [`Readiness`]), 503 with the reason otherwise.
//! - `GET /metrics`: every registered metric in the Prometheus text format.
//!
//! On an `https://` address the same endpoints are served over TLS (HTTP/1.1, ALPN
//! `http/1.1`): each accepted connection's handshake runs in a task of its own, bounded by
//! [`HANDSHAKE_TIMEOUT`], so a slow or silent peer holds up no other.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::{Context, Result};
use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use prometheus::{Encoder, Registry, TextEncoder};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_util::sync::CancellationToken;

/// Answers whether the node is ready, or why not.
pub type Readiness = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

#[derive(Clone)]
struct RestState {
    registry: Registry,
    readiness: Readiness,
}

/// How long a TLS client has to finish its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the HTTP endpoints until `shutdown` is cancelled; over TLS under `tls` when
/// given (its ALPN is set to `http/1.1` here).
pub async fn serve(
    addr: SocketAddr,
    registry: Registry,
    readiness: Readiness,
    shutdown: CancellationToken,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(RestState {
            registry,
            readiness,
        });
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the HTTP port {addr}"))?;
    let stop = shutdown.clone();
    let stop = async move { stop.cancelled().await };
    match tls {
        None => axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
            .context("serving HTTP"),
        Some(tls) => axum::serve(TlsListener::start(listener, tls, shutdown), app)
            .with_graceful_shutdown(stop)
            .await
            .context("serving HTTPS"),
    }
}

/// Connections whose TLS handshake has finished, accepted and shaken hands with by a task
/// that runs until the shutdown token is cancelled.
struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    fn start(
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        stop: CancellationToken,
    ) -> Self {
        let mut config = (*tls).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let local = listener
            .local_addr()
            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
        let (send, ready) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = stop.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: wait a little, as a
                        // plaintext listener does.
                        tracing::warn!(error = %e, "HTTPS port: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let send = send.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = send.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "HTTPS port: TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "HTTPS port: TLS handshake timed out"),
                    }
                });
            }
        });
        Self { ready, local }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(ready) => ready,
            // The accepting task stopped (shutdown): nothing more comes.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

async fn readyz(State(state): State<RestState>) -> impl IntoResponse {
    match (state.readiness)() {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

async fn metrics(State(state): State<RestState>) -> impl IntoResponse {
    let mut buf = Vec::new();
    match TextEncoder::new().encode(&state.registry.gather(), &mut buf) {
        Ok(()) => (
            StatusCode::OK,
            [("content-type", "text/plain; version=0.0.4")],
            buf,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("content-type", "text/plain")],
            e.to_string().into_bytes(),
        ),
    }
}
