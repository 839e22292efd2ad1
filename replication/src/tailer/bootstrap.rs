//! Replacing the edge's state with a snapshot: when the upstream no longer keeps the entries
//! the edge needs (`SnapshotNeeded`), or on Maintenance.Reset.
//!
//! The snapshot comes from the object store when the newest one there is recent enough for
//! the upstream's log to continue after it, else from the upstream (`FetchSnapshot`). It is
//! saved as the local snapshot first (so a crash right after finds it), the local log is cut
//! to continue after it, and only then is it swapped in; the tailer then subscribes again
//! from the snapshot's revision + 1.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Instant,
};

use regatta_log::{EntryId, LogIndex, NodeId, Term};
use regatta_materializer::{Revision, State};
use regatta_proto::regatta::tail::v1::{
    FetchSnapshotRequest, SnapshotNeeded, tail_client::TailClient,
};
use tonic::transport::Channel;

use super::Tailer;
use crate::{Error, Result, local::Receiving, progress::Progress};

/// Checks a snapshot stream of `received` bytes so far against the size the upstream
/// announced (`announced`, 0 when it did not say), while it runs and once it has `ended`:
/// never more bytes than announced, and at the end exactly as many.
pub fn check_snapshot_length(received: u64, announced: u64, ended: bool) -> Result<()> {
    if announced == 0 {
        return Ok(());
    }
    if received > announced {
        return Err(Error::SnapshotTooLong {
            received,
            announced,
        });
    }
    if ended && received < announced {
        return Err(Error::SnapshotCut {
            received,
            announced,
        });
    }
    Ok(())
}

/// Which snapshot to bootstrap from: the object store's newest when it is recent enough for
/// the upstream's log to continue after it, else one streamed by the upstream.
pub fn choose_source(needed: &SnapshotNeeded, have_object_store: bool) -> SnapshotSource {
    let continues = needed.object_snapshot_revision + 1 >= needed.first_available;
    if have_object_store && needed.object_snapshot_revision > 0 && continues {
        SnapshotSource::ObjectStore(needed.object_snapshot_revision)
    } else {
        SnapshotSource::Upstream
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotSource {
    ObjectStore(u64),
    Upstream,
}

impl Tailer {
    pub(super) async fn bootstrap(
        &mut self,
        client: &mut TailClient<Channel>,
        needed: &SnapshotNeeded,
    ) -> Result<()> {
        let started = Instant::now();
        let source = choose_source(needed, self.objects.is_some());
        tracing::info!(
            ?source,
            first_available = needed.first_available,
            "bootstrapping from a snapshot"
        );
        let downloaded = match source {
            SnapshotSource::ObjectStore(revision) => self.download(revision).await,
            SnapshotSource::Upstream => None,
        };
        let (state, copy) = match downloaded {
            Some(got) => got,
            None => self.fetch_from_upstream(client).await?,
        };
        self.install(state, copy).await?;
        self.metrics.bootstraps.inc();
        self.state.bootstraps.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .bootstrap_seconds
            .set(started.elapsed().as_secs_f64());
        tracing::info!(revision = self.materializer.applied().0, took = ?started.elapsed(), "bootstrap done");
        Ok(())
    }

    /// The object store's snapshot of `revision`, decoded, with a copy of its bytes on the
    /// way to becoming the local snapshot; `None` when there is no store or the snapshot is
    /// unusable (the caller fetches one from the upstream instead).
    async fn download(&self, revision: u64) -> Option<(State, Option<Receiving>)> {
        let store = self.objects.as_ref()?;
        let mut progress = Progress::start(format!("bootstrap: downloading snapshot {revision}"));
        // The object is already a snapshot in the local format: keep its bytes as they
        // arrive rather than encode the state again after loading it.
        let copy = self.start_copy("downloading");
        let downloaded = store
            .download_observed(Revision(revision), |chunk, done, total| {
                if let Some(copy) = &copy {
                    copy.push(chunk);
                }
                progress.set_total(Some(total));
                progress.set(done);
            })
            .await;
        progress.finish();
        match downloaded {
            Ok(state) => Some((state, copy)),
            Err(e) => {
                drop(copy);
                tracing::warn!(revision, error = %e, "object store snapshot unusable; fetching one from the upstream");
                None
            }
        }
    }

    /// Starts the copy of a snapshot arriving (`while_` names how) into the local snapshot;
    /// `None` (logged) if it cannot start: the state is then written after loading.
    fn start_copy(&self, while_: &str) -> Option<Receiving> {
        self.local
            .receive()
            .inspect_err(|e| {
                tracing::warn!(
                    error = %e,
                    "cannot copy the snapshot while {while_}; it will be written after loading"
                );
            })
            .ok()
    }

    /// The upstream's snapshot, decoded, with a copy of its bytes on the way to becoming the
    /// local snapshot (when the copy could be started).
    pub(super) async fn fetch_from_upstream(
        &self,
        client: &mut TailClient<Channel>,
    ) -> Result<(State, Option<Receiving>)> {
        let mut stream = client
            .fetch_snapshot(FetchSnapshotRequest {})
            .await
            .map_err(|status| Error::Upstream {
                call: "snapshot refused",
                status,
            })?
            .into_inner();
        let copy = self.start_copy("fetching");
        let mut data = Vec::new();
        let mut announced = 0;
        let mut progress = Progress::start("bootstrap: fetching the upstream's snapshot");
        while let Some(chunk) = stream.message().await.map_err(|status| Error::Upstream {
            call: "snapshot stream",
            status,
        })? {
            if announced == 0 && chunk.total_bytes > 0 {
                announced = chunk.total_bytes;
                progress.set_total(Some(announced));
            }
            data.extend_from_slice(&chunk.data);
            check_snapshot_length(data.len() as u64, announced, false)?;
            if let Some(copy) = &copy {
                copy.push(&chunk.data);
            }
            progress.set(data.len() as u64);
        }
        progress.finish();
        check_snapshot_length(data.len() as u64, announced, true)?;
        let state =
            tokio::task::spawn_blocking(move || regatta_materializer::snapshot::decode(&data))
                .await
                .map_err(|e| Error::task("snapshot decoder", e))?
                .map_err(Error::SnapshotRejected)?;
        Ok((state, copy))
    }

    /// Makes `state` this edge's state: saved locally first (so a crash right after finds
    /// it), the local log cut to continue after it, then swapped in atomically. A full disk
    /// while saving changes nothing (the error is retryable: the edge serves its old state
    /// and tries again).
    pub(super) async fn install(&mut self, state: State, copy: Option<Receiving>) -> Result<()> {
        let revision = state.revision().0;
        let state = Arc::new(state);
        let local = self.local.clone();
        let to_save = state.clone();
        tokio::task::spawn_blocking(move || match copy {
            Some(copy) => copy.keep(to_save.revision()),
            None => local.save(&to_save),
        })
        .await
        .map_err(|e| Error::task("local snapshot writer", e))??;
        let cut = |source| Error::LocalLog {
            what: "cutting the local log",
            source,
        };
        if self
            .log
            .last_index()
            .is_some_and(|last| last.get() > revision)
        {
            self.log.truncate(LogIndex(revision + 1)).map_err(cut)?;
        }
        self.log
            .purge(EntryId {
                index: LogIndex(revision),
                term: Term(0),
                leader: NodeId(0),
            })
            .map_err(cut)?;
        self.materializer.replace(Arc::unwrap_or_clone(state));
        self.last_local_snapshot = revision;
        self.metrics.set_applied(revision);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_stream_must_match_its_announced_size() {
        assert!(
            check_snapshot_length(10, 0, true).is_ok(),
            "size not announced"
        );
        assert!(check_snapshot_length(4, 10, false).is_ok(), "still running");
        assert!(check_snapshot_length(10, 10, true).is_ok());
        let over = check_snapshot_length(11, 10, false)
            .expect_err("longer")
            .to_string();
        assert!(over.contains("11 bytes of 10"), "{over}");
        let short = check_snapshot_length(4, 10, true)
            .expect_err("cut")
            .to_string();
        assert!(short.contains("ended early: 4 bytes of 10"), "{short}");
    }

    #[test]
    fn bootstrap_prefers_a_recent_enough_object_snapshot() {
        let needed = |rev, first| SnapshotNeeded {
            object_snapshot_revision: rev,
            first_available: first,
        };
        assert_eq!(
            choose_source(&needed(100, 90), true),
            SnapshotSource::ObjectStore(100)
        );
        assert_eq!(
            choose_source(&needed(100, 101), true),
            SnapshotSource::ObjectStore(100)
        );
        assert_eq!(
            choose_source(&needed(100, 150), true),
            SnapshotSource::Upstream,
            "too old to continue"
        );
        assert_eq!(
            choose_source(&needed(0, 10), true),
            SnapshotSource::Upstream,
            "none in the store"
        );
        assert_eq!(
            choose_source(&needed(100, 90), false),
            SnapshotSource::Upstream,
            "no store configured"
        );
    }
}
