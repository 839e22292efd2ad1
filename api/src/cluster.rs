//! `regatta.v1.Cluster`: members and status of this node.
//!
//! `StatusResponse.info` is a line of `name=value` words for people and scripts, e.g.
//! `kind=core leader=2 term=3 applied=120 commit=120`.

use std::collections::BTreeMap;

use prost_types::{Struct, Value, value::Kind};
use regatta_proto::regatta::v1::{
    MemberListRequest, MemberListResponse, StatusRequest, StatusResponse, TableStatus,
    cluster_server::Cluster,
};
use tonic::{Request, Response, Status};

use crate::node::NodeContext;

pub struct ClusterService {
    ctx: NodeContext,
    /// The node's effective configuration, shown when a status request asks for it.
    config: BTreeMap<String, String>,
}

impl ClusterService {
    pub fn new(ctx: NodeContext, config: BTreeMap<String, String>) -> Self {
        Self { ctx, config }
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_list(
        &self,
        _: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        Ok(Response::new(self.ctx.role.member_list().await?))
    }

    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let status = self.ctx.role.status();
        let view = self.ctx.materializer.view();
        let applied = view.revision().0;
        let tables = view
            .tables()
            .map(|(name, table)| {
                (
                    name.clone(),
                    TableStatus {
                        log_size: i64::try_from(status.log_bytes).unwrap_or(i64::MAX),
                        db_size: i64::try_from(table.data_bytes()).unwrap_or(i64::MAX),
                        leader: status.leader_address.clone(),
                        raft_index: status.commit_index,
                        raft_term: status.term,
                        raft_applied_index: applied,
                    },
                )
            })
            .collect();
        let config = request.get_ref().config.then(|| Struct {
            fields: self
                .config
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        Value {
                            kind: Some(Kind::StringValue(v.clone())),
                        },
                    )
                })
                .collect(),
        });
        Ok(Response::new(StatusResponse {
            id: self.ctx.node_id.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            info: std::iter::once(format!(
                "kind={} leader={} term={} applied={applied} commit={}",
                self.ctx.role.kind().as_str(),
                status.leader_id,
                status.term,
                status.commit_index
            ))
            .chain(
                status
                    .details
                    .iter()
                    .map(|(name, value)| format!("{name}={value}")),
            )
            .collect::<Vec<_>>()
            .join(" "),
            tables,
            config,
            errors: status.errors,
        }))
    }
}
