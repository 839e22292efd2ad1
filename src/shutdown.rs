//! One cancellation token per process, cancelled on SIGTERM or Ctrl-C (SIGINT). Every
//! long-lived task of a node watches it and stops; the node's `run` then shuts things down in
//! order.

use tokio_util::sync::CancellationToken;

/// A token cancelled on the first SIGTERM or SIGINT.
pub fn token() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("stop signal received: finishing in-flight requests and shutting down");
        cancel.cancel();
    });
    token
}

/// A node's stop with a first step before its servers stop: see [`defer`].
pub struct Deferred {
    signal: CancellationToken,
    shutdown: CancellationToken,
}

/// Puts a first step before the stop: `shutdown` (the token a node's servers and tasks
/// watch, cancelled on the stop signal) is replaced by one that [`Deferred::then`] cancels
/// once its step is done. Call it before anything clones `shutdown`. A core leader hands
/// leadership over this way while it still serves everything.
pub fn defer(shutdown: &mut CancellationToken) -> Deferred {
    let signal = std::mem::replace(shutdown, CancellationToken::new());
    Deferred {
        signal,
        shutdown: shutdown.clone(),
    }
}

impl Deferred {
    /// On the stop signal runs `first`, then cancels the node's shutdown token. A signal
    /// that came before this call counts.
    pub fn then<F>(self, first: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let Self { signal, shutdown } = self;
        tokio::spawn(async move {
            tokio::select! {
                () = signal.cancelled() => {}
                // Stopped for another reason (a server failed): nothing to do first.
                () = shutdown.cancelled() => return,
            }
            first.await;
            shutdown.cancel();
        });
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the node");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// How long a stopping node waits for its servers' open connections and in-flight calls to
/// finish once the stop signal came (a client that stopped reading would hold its
/// connection open for ever).
pub const SERVER_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs `servers` (a node's servers, joined) to completion, or until [`SERVER_GRACE`] after
/// `token` is cancelled: then the connections still open are dropped with the runtime, and
/// the node goes on shutting down.
pub async fn serve_until_grace<F>(token: &CancellationToken, servers: F) -> anyhow::Result<()>
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    tokio::pin!(servers);
    tokio::select! {
        served = &mut servers => served,
        () = async {
            token.cancelled().await;
            tokio::time::sleep(SERVER_GRACE).await;
        } => {
            tracing::warn!(
                grace = ?SERVER_GRACE,
                "connections still open after the grace period; closing them"
            );
            Ok(())
        }
    }
}
