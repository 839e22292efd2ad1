//! `regatta.admin.v1.Admin`: run-time membership changes of the core, forwarded to the
//! leader like any write, and snapshots to object storage on demand (`regatta backup
//! create`), taken by the node asked. Protected by the Maintenance token when one is set.

use std::sync::Arc;

use regatta_api::{
    Error,
    forward::MembershipChange,
    node::{NodeContext, NodeKind},
};
use regatta_materializer::Revision;
use regatta_proto::regatta::admin::v1::{
    AddMemberRequest, CreateSnapshotRequest, CreateSnapshotResponse, MembershipResponse,
    RemoveMemberRequest, admin_server::Admin,
};

use crate::uploader::{SnapshotUploads, Uploaded};
use tonic::{Request, Response, Status};

pub struct AdminService {
    ctx: NodeContext,
    snapshots: Arc<SnapshotUploads>,
}

impl AdminService {
    pub fn new(ctx: NodeContext, snapshots: Arc<SnapshotUploads>) -> Self {
        Self { ctx, snapshots }
    }

    /// Any core node: catch up to the leader's read index (so every write acknowledged
    /// before the call is in), then upload this node's state as of then. The upload runs in
    /// a task of its own, so a client that gives up does not cut it half-way: it completes
    /// and shows in the store anyway.
    async fn snapshot(
        &self,
        metadata: &tonic::metadata::MetadataMap,
    ) -> Result<CreateSnapshotResponse, Error> {
        self.ctx
            .check_token(&self.ctx.tokens.maintenance, metadata)?;
        if self.ctx.role.kind() != NodeKind::Core {
            return Err(Error::Unimplemented {
                what: "snapshots to object storage",
                why: "edges do not upload snapshots; ask a core node",
            });
        }
        let deadline = self.ctx.deadline(metadata);
        let started = tokio::time::Instant::now();
        let read_index = match tokio::time::timeout(deadline, self.ctx.role.read_index()).await {
            Ok(index) => index?,
            Err(_) => {
                return Err(Error::Timeout {
                    what: "asking the leader for the committed index",
                });
            }
        };
        self.ctx
            .wait_applied(
                Revision(read_index),
                deadline.saturating_sub(started.elapsed()),
            )
            .await?;
        let view = self.ctx.materializer.view();
        let revision = view.revision();
        tracing::info!(revision = revision.0, "snapshot on demand");
        let uploads = self.snapshots.clone();
        let upload = tokio::spawn(async move { uploads.upload_unless_stored(view).await });
        let info =
            match tokio::time::timeout(deadline.saturating_sub(started.elapsed()), upload).await {
                Ok(Ok(Ok(info))) => info,
                Ok(Ok(Err(e))) => {
                    tracing::warn!(revision = revision.0, error = %e, "snapshot on demand failed");
                    return Err(match e {
                        regatta_materializer::Error::ObjectStore(_)
                        | regatta_materializer::Error::Io(_) => Error::Unavailable {
                            reason: format!("uploading the snapshot at revision {revision}: {e}"),
                        },
                        other => Error::Internal(format!(
                            "uploading the snapshot at revision {revision}: {other}"
                        )),
                    });
                }
                Ok(Err(e)) => return Err(Error::Internal(format!("the upload task failed: {e}"))),
                Err(_) => {
                    return Err(Error::Timeout {
                        what: "uploading the snapshot (it goes on in the background)",
                    });
                }
            };
        let (info, existing) = match info {
            Uploaded::New(info) => (info, false),
            Uploaded::Existing(info) => (info, true),
        };
        Ok(CreateSnapshotResponse {
            revision: info.revision.0,
            key: info.location.to_string(),
            size: info.size,
            existing,
        })
    }

    async fn change(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        request: MembershipChange,
    ) -> Result<MembershipResponse, Error> {
        self.ctx
            .check_token(&self.ctx.tokens.maintenance, metadata)?;
        if self.ctx.role.kind() != NodeKind::Core {
            return Err(Error::Unimplemented {
                what: "membership changes",
                why: "edges have no membership",
            });
        }
        // Adding a member waits for it to catch up as a learner: allow far more than a write.
        let deadline = self
            .ctx
            .deadline(metadata)
            .max(std::time::Duration::from_secs(60));
        match tokio::time::timeout(deadline, self.ctx.role.change_membership(request)).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout {
                what: "changing the membership",
            }),
        }
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn add_member(
        &self,
        request: Request<AddMemberRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let (metadata, _, message) = request.into_parts();
        Ok(Response::new(
            self.change(&metadata, MembershipChange::Add(message))
                .await?,
        ))
    }

    async fn remove_member(
        &self,
        request: Request<RemoveMemberRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let (metadata, _, message) = request.into_parts();
        Ok(Response::new(
            self.change(&metadata, MembershipChange::Remove(message))
                .await?,
        ))
    }

    async fn create_snapshot(
        &self,
        request: Request<CreateSnapshotRequest>,
    ) -> Result<Response<CreateSnapshotResponse>, Status> {
        let (metadata, _, CreateSnapshotRequest {}) = request.into_parts();
        Ok(Response::new(self.snapshot(&metadata).await?))
    }
}
