//! `maintenance.v1.Maintenance`: a table as Regatta's backup stream, a table replaced from
//! one, and (on edges) re-bootstrapping.
//!
//! Backup streams one consistent view of the table. Restore reads the whole stream, checks
//! it (every frame and record), creates the table if it does not exist, then writes it
//! through the log in events of at most ~1 MiB: the first clears the table, the rest extend
//! it. Readers may see a restore half-way between those events; each event is atomic.

use std::{pin::Pin, sync::Arc};

use futures::Stream;
use regatta_materializer::{Command, backup};
use regatta_proto::{
    maintenance::v1::{
        BackupRequest, ResetRequest, ResetResponse, RestoreMessage, RestoreResponse,
        maintenance_server::Maintenance, restore_message,
    },
    replication::v1::SnapshotChunk,
};
use tonic::{Request, Response, Status, Streaming};

use crate::{Error, node::NodeContext};

/// Bytes per streamed backup chunk.
const CHUNK_BYTES: usize = 1 << 20;
/// Largest backup stream a restore accepts (it is held in memory while checked).
pub const MAX_RESTORE_BYTES: usize = 4 << 30;
/// Payload bytes per restore event.
const RESTORE_EVENT_BYTES: usize = 1 << 20;

pub struct MaintenanceService {
    ctx: NodeContext,
}

impl MaintenanceService {
    pub fn new(ctx: NodeContext) -> Self {
        Self { ctx }
    }
}

type ChunkStream = Pin<Box<dyn Stream<Item = Result<SnapshotChunk, Status>> + Send>>;

fn table_name(bytes: &[u8]) -> Result<String, Error> {
    regatta_materializer::request::table_name(bytes).map_err(Error::from)
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    type BackupStream = ChunkStream;

    async fn backup(
        &self,
        request: Request<BackupRequest>,
    ) -> Result<Response<ChunkStream>, Status> {
        self.ctx
            .check_token(&self.ctx.tokens.maintenance, request.metadata())?;
        let name = table_name(&request.get_ref().table)?;
        let view = self.ctx.materializer.view();
        let revision = view.revision().0;
        if view.table(&name).is_none() {
            return Err(
                Error::from(regatta_materializer::Error::TableNotFound { table: name }).into(),
            );
        }
        let encoded = tokio::task::spawn_blocking(move || {
            let table =
                view.table(&name)
                    .ok_or_else(|| regatta_materializer::Error::TableNotFound {
                        table: name.clone(),
                    })?;
            backup::write_backup(&name, table, Vec::new())
        })
        .await
        .map_err(|e| Error::Internal(format!("backup writer failed: {e}")))?
        .map_err(Error::from)?;
        let data = bytes::Bytes::from(encoded);
        let chunks: Vec<Result<SnapshotChunk, Status>> = (0..data.len())
            .step_by(CHUNK_BYTES)
            .map(|at| {
                let piece = data.slice(at..(at + CHUNK_BYTES).min(data.len()));
                Ok(SnapshotChunk {
                    len: piece.len() as u64,
                    data: piece,
                    index: revision,
                })
            })
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }

    async fn restore(
        &self,
        request: Request<Streaming<RestoreMessage>>,
    ) -> Result<Response<RestoreResponse>, Status> {
        self.ctx
            .check_token(&self.ctx.tokens.maintenance, request.metadata())?;
        let deadline = self
            .ctx
            .deadline(request.metadata())
            .max(std::time::Duration::from_secs(60));
        let mut stream = request.into_inner();
        let first = stream
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("restore stream is empty"))?;
        let name = match first.data {
            Some(restore_message::Data::Info(info)) => table_name(&info.table)?,
            _ => {
                return Err(Status::invalid_argument(
                    "the first restore message must be `info` naming the table",
                ));
            }
        };
        let mut data = Vec::new();
        while let Some(message) = stream.message().await? {
            match message.data {
                Some(restore_message::Data::Chunk(chunk)) => {
                    if data.len() + chunk.data.len() > MAX_RESTORE_BYTES {
                        return Err(Error::TooLarge {
                            size: data.len() + chunk.data.len(),
                            limit: MAX_RESTORE_BYTES,
                        }
                        .into());
                    }
                    data.extend_from_slice(&chunk.data);
                }
                _ => {
                    return Err(Status::invalid_argument(
                        "after `info`, a restore stream carries only chunks",
                    ));
                }
            }
        }
        let into = name.clone();
        let commands = tokio::task::spawn_blocking(move || {
            backup::restore_from_stream(data.as_slice(), &into, RESTORE_EVENT_BYTES)
        })
        .await
        .map_err(|e| Error::Internal(format!("restore reader failed: {e}")))?
        .map_err(|e| match e {
            // A damaged stream is the caller's input, not this node's fault.
            regatta_materializer::Error::Corrupted { .. } => {
                Status::invalid_argument(format!("restore stream rejected: {e}"))
            }
            other => Status::from(Error::from(other)),
        })?;
        let role = Arc::clone(&self.ctx.role);
        let work = async move {
            match role
                .write(Command::CreateTable {
                    name: name.clone(),
                    config: None,
                })
                .await
            {
                Ok(_) => {}
                Err(Error::Rejected(regatta_materializer::Rejection::TableExists { .. })) => {}
                Err(Error::Remote(s)) if s.code() == tonic::Code::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            let parts = commands.len();
            for (i, command) in commands.into_iter().enumerate() {
                let Command::RestoreTable { kvs, .. } = &command else {
                    return Err(Error::Internal(
                        "restore produced a command that is not a restore".into(),
                    ));
                };
                for pair in kvs {
                    regatta_materializer::request::check_value(&pair.value)?;
                }
                role.write(command).await?;
                tracing::info!(part = i + 1, parts, "restore part written");
            }
            Ok(())
        };
        tokio::time::timeout(deadline, work)
            .await
            .map_err(|_| Error::Timeout {
                what: "restoring the table",
            })??;
        Ok(Response::new(RestoreResponse {}))
    }

    async fn reset(
        &self,
        request: Request<ResetRequest>,
    ) -> Result<Response<ResetResponse>, Status> {
        self.ctx
            .check_token(&self.ctx.tokens.maintenance, request.metadata())?;
        let ResetRequest { table, reset_all } = request.into_inner();
        let table = if reset_all {
            None
        } else {
            Some(table_name(&table)?)
        };
        self.ctx.role.reset(table).await?;
        Ok(Response::new(ResetResponse {}))
    }
}
