//! `regatta.v1.Tables`: create and delete are writes (core only, or forwarded by the core's
//! role); listing reads this node's view.

use regatta_materializer::Command;
use regatta_proto::regatta::v1::{
    CreateTableRequest, CreateTableResponse, DeleteTableRequest, DeleteTableResponse,
    ListTablesRequest, ListTablesResponse, tables_server::Tables,
};
use tonic::{Request, Response, Status};

use crate::{
    Error,
    node::{NodeContext, NodeKind, WriteRequest, WriteResponse},
};

pub struct TablesService {
    ctx: NodeContext,
}

impl TablesService {
    pub fn new(ctx: NodeContext) -> Self {
        Self { ctx }
    }

    fn core_only(&self, what: &'static str) -> Result<(), Error> {
        match self.ctx.role.kind() {
            NodeKind::Core => Ok(()),
            NodeKind::Edge => Err(Error::Unimplemented {
                what,
                why: "tables are created and deleted on the core",
            }),
        }
    }

    async fn write(
        &self,
        request: WriteRequest,
        deadline: std::time::Duration,
    ) -> Result<WriteResponse, Error> {
        tokio::time::timeout(deadline, self.ctx.role.write(request))
            .await
            .map_err(|_| Error::Timeout {
                what: "committing the table change",
            })?
    }
}

#[tonic::async_trait]
impl Tables for TablesService {
    async fn create(
        &self,
        request: Request<CreateTableRequest>,
    ) -> Result<Response<CreateTableResponse>, Status> {
        self.ctx
            .check_token(&self.ctx.tokens.tables, request.metadata())?;
        self.core_only("Tables.Create")?;
        let deadline = self.ctx.deadline(request.metadata());
        let request = request.into_inner();
        Command::try_from(&request).map_err(Error::from)?;
        match self
            .write(WriteRequest::CreateTable(request), deadline)
            .await?
        {
            WriteResponse::CreateTable(response) => Ok(Response::new(response)),
            other => Err(Error::Internal(format!("table create answered with {other:?}")).into()),
        }
    }

    async fn delete(
        &self,
        request: Request<DeleteTableRequest>,
    ) -> Result<Response<DeleteTableResponse>, Status> {
        self.ctx
            .check_token(&self.ctx.tokens.tables, request.metadata())?;
        self.core_only("Tables.Delete")?;
        let deadline = self.ctx.deadline(request.metadata());
        let request = request.into_inner();
        Command::try_from(&request).map_err(Error::from)?;
        match self
            .write(WriteRequest::DeleteTable(request), deadline)
            .await?
        {
            WriteResponse::DeleteTable(response) => Ok(Response::new(response)),
            other => Err(Error::Internal(format!("table delete answered with {other:?}")).into()),
        }
    }

    async fn list(
        &self,
        request: Request<ListTablesRequest>,
    ) -> Result<Response<ListTablesResponse>, Status> {
        self.ctx
            .check_token(&self.ctx.tokens.tables, request.metadata())?;
        let tables = self.ctx.materializer.view().list_tables();
        Ok(Response::new(ListTablesResponse { tables }))
    }
}
