//! A write on its way between nodes: a core follower forwards to its leader, an edge to its
//! upstream, as a `regatta.raft.v1.ForwardRequest`.
//!
//! ```text
//!  client ─PutRequest─▶ kv: Command::try_from (validated once) ─▶ Role::write(Command)
//!                         leader here: batcher ─▶ openraft ─▶ apply ─▶ (Revision, ApplyResponse)
//!                         elsewhere:   to_wire ─ForwardRequest─▶ receiving node:
//!                                      NodeWrite::try_from (validated once, where it enters)
//!                                      ─▶ its own write path ─▶ answer_to_wire ─▶ answer_from_wire
//! ```
//!
//! The forwarding node converts the command to its wire form in [`to_wire`]; the receiving
//! node converts it back once, with [`NodeWrite::try_from`], which validates it as any
//! request entering a node is validated. The answer travels back as the wire response
//! ([`answer_to_wire`]) and becomes `(Revision, ApplyResponse)` again ([`answer_from_wire`]);
//! the api answering the client builds its own response from that.

use regatta_materializer::{
    ApplyResponse, Command, Revision, TableId,
    command::restore_to_wire,
    request::{DeleteRange, Put, Txn},
};
use regatta_proto::maintenance::v1::RestoreResponse;
use regatta_proto::regatta::{
    admin::v1::{AddMemberRequest, MembershipResponse, RemoveMemberRequest},
    raft::v1::{ForwardRequest, ForwardResponse, forward_request, forward_response},
    v1::{
        CreateTableRequest, CreateTableResponse, DeleteTableRequest, DeleteTableResponse,
        PutResponse, ResponseHeader,
    },
};

use crate::{
    Error, Result,
    node::{Role, Written},
};

/// A change of the core's membership (Cluster admin), forwarded as it arrived: the leader
/// validates it, as only it knows the membership it changes.
#[derive(Debug, Clone, PartialEq)]
pub enum MembershipChange {
    Add(AddMemberRequest),
    Remove(RemoveMemberRequest),
}

/// What a forwarded request asks of the node receiving it.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeWrite {
    Data(Command),
    Membership(MembershipChange),
}

/// What the node that took a [`NodeWrite`] answers.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeWritten {
    Data(Written),
    Membership(MembershipResponse),
}

impl TryFrom<forward_request::Request> for NodeWrite {
    type Error = Error;

    /// Validates a forwarded request where it enters this node, as the API validates a
    /// client's request (a table being created meets the rules for new names).
    fn try_from(request: forward_request::Request) -> Result<Self> {
        use forward_request::Request as R;
        let command = match request {
            R::Put(r) => Command::try_from(&r),
            R::DeleteRange(r) => Command::try_from(&r),
            R::Txn(r) => Command::try_from(&r),
            R::CreateTable(r) => Command::try_from(&r),
            R::DeleteTable(r) => Command::try_from(&r),
            R::RestoreTable(r) => Command::try_from(&r),
            R::AddMember(r) => return Ok(Self::Membership(MembershipChange::Add(r))),
            R::RemoveMember(r) => return Ok(Self::Membership(MembershipChange::Remove(r))),
        };
        Ok(Self::Data(command?))
    }
}

/// The wire form of `write`, to forward it. A batch is never forwarded (it is made on the
/// leader, from writes that arrived there).
pub fn to_wire(write: &NodeWrite) -> Result<forward_request::Request> {
    use forward_request::Request as R;
    Ok(match write {
        NodeWrite::Data(command) => match command {
            Command::Put(p) => R::Put(<&Put>::into(p)),
            Command::DeleteRange(d) => R::DeleteRange(<&DeleteRange>::into(d)),
            Command::Txn(t) => R::Txn(<&Txn>::into(t)),
            Command::CreateTable { name, config } => R::CreateTable(CreateTableRequest {
                name: name.clone(),
                config: config.clone(),
            }),
            Command::DeleteTable { name } => {
                R::DeleteTable(DeleteTableRequest { name: name.clone() })
            }
            Command::RestoreTable { name, clear, kvs } => {
                R::RestoreTable(restore_to_wire(name, *clear, kvs))
            }
            Command::Batch(_) => {
                return Err(Error::Internal(
                    "a batch of writes cannot be forwarded".into(),
                ));
            }
            Command::Expire { .. } => {
                return Err(Error::Internal(
                    "an expiry is proposed by the leader and never forwarded".into(),
                ));
            }
        },
        NodeWrite::Membership(MembershipChange::Add(r)) => R::AddMember(r.clone()),
        NodeWrite::Membership(MembershipChange::Remove(r)) => R::RemoveMember(*r),
    })
}

/// The wire answer to a forwarded write. The header carries `shard_id` (the written table's
/// id at this node) and the revision, which the forwarding node waits for.
pub fn answer_to_wire(answer: NodeWritten, shard_id: u64) -> Result<forward_response::Response> {
    use forward_response::Response as R;
    let (revision, response) = match answer {
        NodeWritten::Membership(m) => return Ok(R::Membership(m)),
        NodeWritten::Data(written) => written,
    };
    let header = Some(ResponseHeader {
        shard_id,
        revision: revision.0,
        ..Default::default()
    });
    Ok(match response {
        ApplyResponse::Put { prev_kv } => R::Put(PutResponse {
            header,
            prev_kv: prev_kv.map(|kv| *kv),
        }),
        ApplyResponse::DeleteRange(mut r) => {
            r.header = header;
            R::DeleteRange(*r)
        }
        ApplyResponse::Txn(mut r) => {
            r.header = header;
            R::Txn(*r)
        }
        ApplyResponse::TableCreated { id } => {
            R::CreateTable(CreateTableResponse { id: id.to_string() })
        }
        ApplyResponse::TableDeleted => R::DeleteTable(DeleteTableResponse {}),
        ApplyResponse::TableRestored { .. } => R::RestoreTable(RestoreResponse {}),
        ApplyResponse::Rejected(rejection) => return Err(rejection.into()),
        other @ (ApplyResponse::Empty | ApplyResponse::Batch(_)) => {
            return Err(Error::Internal(format!(
                "a write was answered with {other:?}"
            )));
        }
    })
}

/// The answer a forwarded write got, as this node's own write path would have answered.
///
/// The revision is the header's; a created table's is its id (the index of its create
/// entry). A table delete or a restore part is answered without one: their revision is
/// `Revision(0)`, and the forwarding node does not wait to apply them.
pub fn answer_from_wire(response: forward_response::Response) -> Result<NodeWritten> {
    use forward_response::Response as R;
    let revision = |header: Option<&ResponseHeader>| Revision(header.map_or(0, |h| h.revision));
    let written = match response {
        R::Membership(m) => return Ok(NodeWritten::Membership(m)),
        R::Put(r) => (
            revision(r.header.as_ref()),
            ApplyResponse::Put {
                prev_kv: r.prev_kv.map(Box::new),
            },
        ),
        R::DeleteRange(mut r) => {
            let at = revision(r.header.take().as_ref());
            (at, ApplyResponse::DeleteRange(Box::new(r)))
        }
        R::Txn(mut r) => {
            let at = revision(r.header.take().as_ref());
            (at, ApplyResponse::Txn(Box::new(r)))
        }
        R::CreateTable(r) => {
            let id = r.id.parse::<u64>().map_err(|_| {
                Error::Internal(format!("the leader answered a table id {:?}", r.id))
            })?;
            (
                Revision(id),
                ApplyResponse::TableCreated { id: TableId(id) },
            )
        }
        R::DeleteTable(DeleteTableResponse {}) => (Revision(0), ApplyResponse::TableDeleted),
        R::RestoreTable(RestoreResponse {}) => {
            (Revision(0), ApplyResponse::TableRestored { stored: 0 })
        }
    };
    Ok(NodeWritten::Data(written))
}

/// Takes a write forwarded to this node (an edge's, at the core or at another edge): converts
/// it once, writes it through `role`, and answers it in wire form.
pub async fn take_forwarded(
    role: &dyn Role,
    materializer: &regatta_materializer::Materializer,
    request: ForwardRequest,
) -> Result<ForwardResponse> {
    let request = request.request.ok_or_else(|| {
        Error::Materializer(regatta_materializer::Error::InvalidArgument {
            reason: "forwarded write is empty".into(),
        })
    })?;
    let answer = match NodeWrite::try_from(request)? {
        NodeWrite::Data(command) => {
            let table = command.table().to_owned();
            let written = role.write(command).await?;
            let shard = shard_of(materializer, &table);
            answer_to_wire(NodeWritten::Data(written), shard)?
        }
        NodeWrite::Membership(change) => answer_to_wire(
            NodeWritten::Membership(role.change_membership(change).await?),
            0,
        )?,
    };
    Ok(ForwardResponse {
        response: Some(answer),
    })
}

/// The id of `table` at this node (0: none).
pub fn shard_of(materializer: &regatta_materializer::Materializer, table: &str) -> u64 {
    materializer.peek().table(table).map_or(0, |t| t.id().0)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use regatta_proto::regatta::v1 as wire;

    use super::*;

    fn round_trip(command: Command) {
        let write = NodeWrite::Data(command);
        let wire = to_wire(&write).expect("forwardable");
        assert_eq!(NodeWrite::try_from(wire).expect("valid"), write);
    }

    #[test]
    fn a_command_forwarded_arrives_as_it_left() {
        round_trip(
            Command::try_from(&wire::PutRequest {
                table: Bytes::from_static(b"t"),
                key: Bytes::from_static(b"k"),
                value: Bytes::from_static(b"v"),
                prev_kv: true,
                ttl_millis: 0,
            })
            .expect("valid"),
        );
        round_trip(
            Command::try_from(&wire::DeleteRangeRequest {
                table: Bytes::from_static(b"t"),
                key: Bytes::from_static(b"a"),
                range_end: Bytes::from_static(b"\0"),
                prev_kv: false,
                count: true,
            })
            .expect("valid"),
        );
        round_trip(Command::CreateTable {
            name: "t".into(),
            config: None,
        });
        round_trip(Command::DeleteTable { name: "t".into() });
        round_trip(Command::RestoreTable {
            name: "t".into(),
            clear: true,
            kvs: vec![(Bytes::from_static(b"k"), Bytes::from_static(b"v")).into()],
        });
        assert!(to_wire(&NodeWrite::Data(Command::Batch(Vec::new()))).is_err());
    }

    #[test]
    fn an_answer_forwarded_arrives_as_it_left() {
        let put = NodeWritten::Data((
            Revision(9),
            ApplyResponse::Put {
                prev_kv: Some(Box::default()),
            },
        ));
        let wire = answer_to_wire(put.clone(), 3).expect("answer");
        assert_eq!(answer_from_wire(wire).expect("answer"), put);
        let created =
            NodeWritten::Data((Revision(4), ApplyResponse::TableCreated { id: TableId(4) }));
        let wire = answer_to_wire(created.clone(), 0).expect("answer");
        assert_eq!(answer_from_wire(wire).expect("answer"), created);
    }
}
