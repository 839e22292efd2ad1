//! `regatta.v1.Tables`: create and delete are writes (core only, or forwarded by the core's
//! role); listing reads this node's view.

use regatta_materializer::{ApplyResponse, Command};
use regatta_proto::regatta::v1::{
    CreateTableRequest, CreateTableResponse, DeleteTableRequest, DeleteTableResponse,
    ListTablesRequest, ListTablesResponse, tables_server::Tables,
};
use tonic::{Request, Response, Status};

use crate::{
    Error,
    node::{NodeContext, NodeKind},
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
        command: Command,
        deadline: std::time::Duration,
    ) -> Result<ApplyResponse, Error> {
        let (_, response) = tokio::time::timeout(deadline, self.ctx.role.write(command))
            .await
            .map_err(|_| Error::Timeout {
                what: "committing the table change",
            })??;
        Ok(response)
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
        let command = Command::try_from(request.get_ref()).map_err(Error::from)?;
        match self.write(command, deadline).await? {
            ApplyResponse::TableCreated { id } => {
                Ok(Response::new(CreateTableResponse { id: id.to_string() }))
            }
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
        let command = Command::try_from(request.get_ref()).map_err(Error::from)?;
        match self.write(command, deadline).await? {
            ApplyResponse::TableDeleted => Ok(Response::new(DeleteTableResponse {})),
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
