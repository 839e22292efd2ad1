//! `regatta.admin.v1.Admin`: run-time membership changes of the core, forwarded to the
//! leader like any write. Protected by the Maintenance token when one is set.

use regatta_api::{
    Error,
    node::{NodeContext, NodeKind, WriteRequest, WriteResponse},
};
use regatta_proto::regatta::admin::v1::{
    AddMemberRequest, MembershipResponse, RemoveMemberRequest, admin_server::Admin,
};
use tonic::{Request, Response, Status};

pub struct AdminService {
    ctx: NodeContext,
}

impl AdminService {
    pub fn new(ctx: NodeContext) -> Self {
        Self { ctx }
    }

    async fn change(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        request: WriteRequest,
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
        match tokio::time::timeout(deadline, self.ctx.role.write(request)).await {
            Ok(Ok(WriteResponse::Membership(m))) => Ok(m),
            Ok(Ok(other)) => Err(Error::Internal(format!(
                "membership change answered with {other:?}"
            ))),
            Ok(Err(e)) => Err(e),
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
            self.change(&metadata, WriteRequest::AddMember(message))
                .await?,
        ))
    }

    async fn remove_member(
        &self,
        request: Request<RemoveMemberRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let (metadata, _, message) = request.into_parts();
        Ok(Response::new(
            self.change(&metadata, WriteRequest::RemoveMember(message))
                .await?,
        ))
    }
}
