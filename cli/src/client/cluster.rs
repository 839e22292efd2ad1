//! `regatta cluster members|status|add-member|remove-member`.

use clap::Subcommand;
use regatta_proto::regatta::{
    admin::v1::{
        AddMemberRequest, MembershipResponse, RemoveMemberRequest, admin_client::AdminClient,
    },
    v1::{MemberListRequest, StatusRequest, cluster_client::ClusterClient},
};
use serde_json::{Value, json};

use super::{CliResult, ClientOptions, connect, output::print_json, request};

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// List the members of the cluster the node belongs to.
    Members,
    /// Show the node's status: its tables, applied index, term and leader.
    Status,
    /// Add a core node (a learner first, then a voter once it has caught up).
    AddMember {
        /// The new node's id.
        id: u64,
        /// The new node's Raft address, e.g. http://10.0.0.4:5012.
        raft_address: String,
        /// Keep it a learner: it replicates but does not vote.
        #[arg(long)]
        learner_only: bool,
    },
    /// Remove a core node.
    RemoveMember { id: u64 },
}

pub async fn run(command: ClusterCommand, options: &ClientOptions) -> CliResult {
    let channel = connect(options).await?;
    match command {
        ClusterCommand::Members => {
            let resp = ClusterClient::new(channel)
                .member_list(request(options, MemberListRequest {})?)
                .await?;
            let resp = resp.into_inner();
            if options.json {
                let members: Vec<Value> = resp
                    .members
                    .iter()
                    .map(|m| json!({"id": m.id, "name": m.name, "peer_urls": m.peer_ur_ls, "client_urls": m.client_ur_ls}))
                    .collect();
                print_json(&json!({"cluster": resp.cluster, "members": members}));
            } else {
                for m in resp.members {
                    crate::outln!(
                        "{}\t{}\tpeers={}\tclients={}",
                        m.id,
                        m.name,
                        m.peer_ur_ls.join(","),
                        m.client_ur_ls.join(",")
                    );
                }
            }
        }
        ClusterCommand::Status => {
            let resp = ClusterClient::new(channel)
                .status(request(options, StatusRequest { config: false })?)
                .await?;
            let resp = resp.into_inner();
            let mut tables: Vec<_> = resp.tables.iter().collect();
            tables.sort_by(|a, b| a.0.cmp(b.0));
            if options.json {
                let tables: serde_json::Map<String, Value> = tables
                    .iter()
                    .map(|(name, t)| {
                        ((*name).clone(), json!({"leader": t.leader, "raft_index": t.raft_index, "raft_term": t.raft_term,
                            "raft_applied_index": t.raft_applied_index, "log_size": t.log_size, "db_size": t.db_size}))
                    })
                    .collect();
                print_json(
                    &json!({"id": resp.id, "version": resp.version, "info": resp.info, "tables": tables, "errors": resp.errors}),
                );
            } else {
                crate::outln!("node {} version {} {}", resp.id, resp.version, resp.info);
                for (name, t) in tables {
                    crate::outln!(
                        "{name}\tleader={}\tindex={}\tapplied={}\tterm={}\tlog={}B\tdb={}B",
                        t.leader,
                        t.raft_index,
                        t.raft_applied_index,
                        t.raft_term,
                        t.log_size,
                        t.db_size
                    );
                }
                for e in resp.errors {
                    crate::outln!("error: {e}");
                }
            }
        }
        ClusterCommand::AddMember {
            id,
            raft_address,
            learner_only,
        } => {
            let req = AddMemberRequest {
                id,
                raft_address,
                learner_only,
            };
            let resp = AdminClient::new(channel)
                .add_member(request(options, req)?)
                .await?;
            print_membership(&resp.into_inner(), options.json);
        }
        ClusterCommand::RemoveMember { id } => {
            let resp = AdminClient::new(channel)
                .remove_member(request(options, RemoveMemberRequest { id })?)
                .await?;
            print_membership(&resp.into_inner(), options.json);
        }
    }
    Ok(())
}

fn print_membership(resp: &MembershipResponse, json_output: bool) {
    let mut nodes: Vec<_> = resp.nodes.iter().collect();
    nodes.sort();
    if json_output {
        let nodes: Vec<Value> = nodes
            .iter()
            .map(|(id, addr)| json!({"id": id, "raft_address": addr, "voter": resp.voters.contains(id)}))
            .collect();
        print_json(&json!({"revision": resp.revision, "nodes": nodes}));
    } else {
        crate::outln!("membership changed at revision {}", resp.revision);
        for (id, addr) in nodes {
            let role = if resp.voters.contains(id) {
                "voter"
            } else {
                "learner"
            };
            crate::outln!("{id}\t{addr}\t{role}");
        }
    }
}
