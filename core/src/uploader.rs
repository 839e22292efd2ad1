//! Uploads snapshots of the core's state to object storage, off the write path.
//!
//! Only the leader uploads (every node could; one copy is enough). A snapshot is taken when
//! `entries` new entries were applied since the last upload, or `interval` passed with any
//! new entry. Failures are logged, counted and retried with backoff; writes never wait on
//! this task.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use openraft::Raft;
use regatta_materializer::{
    Materializer, State,
    raft::TypeConfig,
    snapshot::{SnapshotInfo, SnapshotStore},
};
use tokio_util::sync::CancellationToken;

use crate::metrics::UploadMetrics;

#[derive(Debug, Clone)]
pub struct UploadPolicy {
    pub entries: u64,
    pub interval: Duration,
}

/// Whether to upload now: a plain decision, tested without IO.
pub fn due(policy: &UploadPolicy, applied: u64, last_uploaded: u64, since_last: Duration) -> bool {
    applied > last_uploaded
        && (applied - last_uploaded >= policy.entries || since_last >= policy.interval)
}

/// Uploads of snapshots to the object store, whoever asks: the periodic [`Uploader`] and
/// `regatta backup create` (the Admin service). One upload runs at a time; each is counted
/// on /metrics.
pub struct SnapshotUploads {
    pub store: SnapshotStore,
    /// Revision of the newest snapshot known to be in the store (0: none).
    pub latest: Arc<AtomicU64>,
    pub metrics: UploadMetrics,
    /// Serialises uploads, so an upload on demand and a periodic one never race.
    running: tokio::sync::Mutex<()>,
}

/// What an upload on demand did.
#[derive(Debug)]
pub enum Uploaded {
    /// The snapshot was written.
    New(SnapshotInfo),
    /// The store already held the snapshot of this revision; nothing was written.
    Existing(SnapshotInfo),
}

impl SnapshotUploads {
    pub fn new(store: SnapshotStore, latest: Arc<AtomicU64>, metrics: UploadMetrics) -> Self {
        Self {
            store,
            latest,
            metrics,
            running: tokio::sync::Mutex::new(()),
        }
    }

    /// Streams `view` to the store and records the outcome. Run it in a task of its own
    /// when the caller may go away: a dropped upload leaves its multipart parts behind.
    pub async fn upload(&self, view: Arc<State>) -> regatta_materializer::Result<SnapshotInfo> {
        let _running = self.running.lock().await;
        match self.store.upload(view).await {
            Ok(info) => {
                self.latest.fetch_max(info.revision.0, Ordering::Relaxed);
                self.metrics.uploads.inc();
                self.metrics
                    .last_upload_revision
                    .set(i64::try_from(self.latest.load(Ordering::Relaxed)).unwrap_or(i64::MAX));
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
                self.metrics
                    .last_upload_time
                    .set(now.map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0)));
                Ok(info)
            }
            Err(e) => {
                self.metrics.failures.inc();
                Err(e)
            }
        }
    }

    /// [`SnapshotUploads::upload`], unless the store already holds the snapshot of the
    /// view's revision (no write since it was taken): a key names one revision, and its
    /// content is the same whoever writes it. A failure to look (other than "not there")
    /// leaves the decision to the upload, which reports the store's error itself.
    pub async fn upload_unless_stored(
        &self,
        view: Arc<State>,
    ) -> regatta_materializer::Result<Uploaded> {
        match self.store.find(view.revision()).await {
            Ok(Some(info)) => {
                self.latest.fetch_max(info.revision.0, Ordering::Relaxed);
                tracing::info!(
                    revision = info.revision.0,
                    location = %info.location,
                    "snapshot on demand: already in the store"
                );
                Ok(Uploaded::Existing(info))
            }
            Ok(None) | Err(_) => self.upload(view).await.map(Uploaded::New),
        }
    }
}

/// The periodic uploader: on the leader, every `policy.entries` entries or `policy.interval`.
pub struct Uploader {
    pub uploads: Arc<SnapshotUploads>,
    pub policy: UploadPolicy,
}

impl Uploader {
    pub async fn run(
        self,
        node_id: u64,
        raft: Raft<TypeConfig>,
        materializer: Arc<Materializer>,
        shutdown: CancellationToken,
    ) {
        let uploads = self.uploads;
        match uploads.store.latest().await {
            Ok(Some(rev)) => {
                uploads.latest.fetch_max(rev.0, Ordering::Relaxed);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "listing snapshots in object storage"),
        }
        let mut last_upload = tokio::time::Instant::now();
        let mut backoff = Duration::from_secs(1);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            let is_leader = raft.metrics().borrow().current_leader == Some(node_id);
            let applied = materializer.applied().0;
            if !is_leader
                || !due(
                    &self.policy,
                    applied,
                    uploads.latest.load(Ordering::Relaxed),
                    last_upload.elapsed(),
                )
            {
                continue;
            }
            let view = materializer.view();
            let outcome = uploads.upload(view).await;
            match outcome {
                Ok(_) => {
                    last_upload = tokio::time::Instant::now();
                    backoff = Duration::from_secs(1);
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "snapshot upload failed");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_are_due_on_entries_or_time_with_something_new() {
        let p = UploadPolicy {
            entries: 100,
            interval: Duration::from_secs(60),
        };
        assert!(!due(&p, 50, 0, Duration::from_secs(1)));
        assert!(due(&p, 100, 0, Duration::from_secs(1)));
        assert!(due(&p, 50, 0, Duration::from_secs(61)));
        assert!(
            !due(&p, 50, 50, Duration::from_secs(3600)),
            "nothing new, nothing to upload"
        );
    }
}
