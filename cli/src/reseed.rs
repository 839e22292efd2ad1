//! `regatta reseed`: move a node's damaged data directory aside, so that the node starts empty
//! and is filled again by others — a core node by the leader (log entries or a snapshot over
//! Raft), an edge by its upstream and the object store.
//!
//! It exists for a node that refuses to start on a corrupt log (see docs/operations.md). It
//! never deletes: the directory is renamed to `<data-dir>.damaged-<UTC time>` beside it, and
//! the command prints both paths. It refuses while a process holds the directory's log lock,
//! i.e. while the node still runs.
//!
//! For a core node it first asks a running member (`--address`) whether another node holds
//! the data: the cluster must have a leader other than this node and a member other than
//! this node, or the move is refused (`--force` skips the check and the steps below, e.g. for
//! a single-node cluster whose data will then come from a backup). It then removes the node
//! from the cluster: a Raft leader must never see a follower's log go backwards (openraft
//! stops the leader if it does), and a voter that forgot what it acknowledged or voted for
//! weakens every quorum it is part of. The fresh, empty data directory gets a
//! [`REJOIN_MARKER`], so the node, started as before, does not initialise a cluster from
//! `--raft.initial-members` but waits to be added back (`regatta cluster add-member`, as a
//! learner first and a voter once caught up).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use clap::Args;
use regatta_proto::regatta::{
    admin::v1::{RemoveMemberRequest, admin_client::AdminClient},
    v1::{MemberListRequest, StatusRequest, cluster_client::ClusterClient},
};
use serde_json::json;

use crate::client::{CliResult, ClientOptions, Failure, connect, output::print_json, request};

/// Options of `regatta reseed` (`--address` names a running member of the core cluster).
#[derive(Args, Debug, Clone)]
pub struct ReseedArgs {
    /// The node's data directory, as given to `regatta core|edge --data-dir`.
    #[arg(long = "data-dir")]
    pub data_dir: PathBuf,
    /// The core node's id: it must be a member of the cluster at --address, beside others.
    #[arg(long = "raft.node-id")]
    pub node_id: Option<u64>,
    /// The directory belongs to an edge: it re-bootstraps from upstream, no peer check.
    #[arg(long)]
    pub edge: bool,
    /// Move the directory even when no other member is known to hold the data.
    #[arg(long)]
    pub force: bool,
}

pub use regatta_core::REJOIN_MARKER;

/// Exit code of a refused re-seed (the same as a failed precondition of a client command).
const REFUSED: u8 = 5;

fn refused(message: impl Into<String>) -> Failure {
    Failure {
        code: REFUSED,
        message: format!("{}; nothing was moved", message.into()),
    }
}

/// A core node removed from its cluster, to be added back once started empty: its id and
/// its Raft address as the membership held it.
type Rejoin = Option<(u64, Option<String>)>;

pub async fn run(args: ReseedArgs, options: &ClientOptions) -> CliResult {
    let dir = &args.data_dir;
    check_data_dir(dir)?;
    let rejoin = match core_node_id(&args)? {
        None => None,
        Some(node_id) if args.force => {
            eprintln!(
                "warning: --force: not checking that another member holds node {node_id}'s data"
            );
            None
        }
        Some(node_id) => Some(remove_from_cluster(node_id, options).await?),
    };
    let (to, parent) = move_aside(dir, &rejoin)?;
    if rejoin.is_some() {
        write_rejoin_marker(dir, &to, &parent)?;
    }
    report(dir, &to, &rejoin, args.edge, options);
    Ok(())
}

/// The core node's id (`None` for an edge), checking the flags agree with `--edge`.
fn core_node_id(args: &ReseedArgs) -> CliResult<Option<u64>> {
    match (args.edge, args.node_id) {
        (true, Some(_)) => Err(Failure::usage(
            "--raft.node-id is for core nodes, not with --edge",
        )),
        (true, None) => Ok(None),
        (false, Some(id)) => Ok(Some(id)),
        (false, None) => Err(Failure::usage(
            "--raft.node-id is required for a core node (or pass --edge)",
        )),
    }
}

/// Checks through the member at `--address` that another node holds the data, then removes
/// `node_id` from the cluster. What is needed to add it back.
async fn remove_from_cluster(
    node_id: u64,
    options: &ClientOptions,
) -> CliResult<(u64, Option<String>)> {
    let view = cluster_view(options).await.map_err(|f| {
        refused(format!(
            "cannot confirm through {} that another member holds the data ({}); \
             pass the API address of a running member, or --force",
            options.address, f.message
        ))
    })?;
    safe_to_reseed(node_id, &view).map_err(refused)?;
    let channel = connect(options).await?;
    AdminClient::new(channel)
        .remove_member(request(options, RemoveMemberRequest { id: node_id })?)
        .await
        .map_err(|status| {
            let f = Failure::from(status);
            Failure {
                code: f.code,
                message: format!(
                    "removing node {node_id} from the cluster failed: {}; nothing was moved",
                    f.message
                ),
            }
        })?;
    eprintln!("removed node {node_id} from the cluster");
    Ok((node_id, view.raft_address_of(node_id)))
}

/// Renames the directory to its aside path and syncs the parent. The new path and the
/// parent directory.
fn move_aside(dir: &Path, rejoin: &Rejoin) -> CliResult<(PathBuf, PathBuf)> {
    let to = aside_path(dir, SystemTime::now())?;
    std::fs::rename(dir, &to).map_err(|e| Failure {
        code: 1,
        message: match rejoin {
            Some((id, _)) => format!(
                "moving {} to {} failed: {e}; node {id} was already removed from the cluster: \
                 move the directory aside by hand, create an empty one holding a file named \
                 {REJOIN_MARKER}, start the node and add it back",
                dir.display(),
                to.display()
            ),
            None => format!(
                "moving {} to {} failed: {e}; nothing was moved",
                dir.display(),
                to.display()
            ),
        },
    })?;
    let parent = match to.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    regatta_log::fs::sync_dir(&parent).map_err(|e| Failure {
        code: 1,
        message: format!(
            "moved {} to {}, but syncing {} failed: {e}",
            dir.display(),
            to.display(),
            parent.display()
        ),
    })?;
    Ok((to, parent))
}

/// A fresh `dir` holding the [`REJOIN_MARKER`], durable before the node may start: without
/// the marker it initialises a new cluster.
fn write_rejoin_marker(dir: &Path, to: &Path, parent: &Path) -> CliResult {
    std::fs::create_dir(dir)
        .map_err(|e| e.to_string())
        .and_then(|()| {
            regatta_log::fs::write_atomic(
                &dir.join(REJOIN_MARKER),
                format!("damaged data moved to {}\n", to.display()).as_bytes(),
            )
            .and_then(|()| regatta_log::fs::sync_dir(parent))
            .map_err(|e| e.to_string())
        })
        .map_err(|e| Failure {
            code: 1,
            message: format!(
                "moved {} to {}, but writing {} in a fresh {} failed: {e}; create it \
                 before starting the node, or it initialises a new cluster",
                dir.display(),
                to.display(),
                REJOIN_MARKER,
                dir.display()
            ),
        })
}

/// Prints both paths and what to do next.
fn report(dir: &Path, to: &Path, rejoin: &Rejoin, edge: bool, options: &ClientOptions) {
    let next = match (rejoin, edge) {
        (_, true) => {
            "start the edge as before: it starts empty and bootstraps from its upstream".to_string()
        }
        (Some((id, raft)), false) => format!(
            "start the node as before: it starts empty and waits; then add it back with \
             `regatta cluster add-member {id} {} --address {}` and it catches up from the leader",
            raft.as_deref().unwrap_or("<its raft url>"),
            options.address
        ),
        (None, false) => "start the node: it starts empty (--force: no member was removed; \
                          with --raft.initial-members it initialises a new cluster)"
            .to_string(),
    };
    if options.json {
        print_json(&json!({"moved_from": dir, "moved_to": to, "next": next}));
    } else {
        crate::outln!(
            "moved damaged data directory aside: {} -> {}",
            dir.display(),
            to.display()
        );
        crate::outln!("{next}; delete the moved directory once it is no longer needed");
    }
}

/// The directory must exist, look like a Regatta data directory, and not be in use.
fn check_data_dir(dir: &Path) -> CliResult {
    let meta = std::fs::metadata(dir)
        .map_err(|e| refused(format!("cannot use --data-dir {}: {e}", dir.display())))?;
    if !meta.is_dir() {
        return Err(refused(format!("{} is not a directory", dir.display())));
    }
    let log = dir.join("log");
    if !log.is_dir() {
        return Err(refused(format!(
            "{} does not look like a Regatta data directory (no log/ inside)",
            dir.display()
        )));
    }
    let lock = log.join(regatta_log::LOCK_FILE);
    if lock.exists() {
        let file = File::options()
            .write(true)
            .open(&lock)
            .map_err(|e| refused(format!("cannot open {}: {e}", lock.display())))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(refused(format!(
                    "{} is locked: a node is running on {}; stop it first",
                    lock.display(),
                    dir.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(refused(format!("cannot lock {}: {e}", lock.display())));
            }
        }
    }
    Ok(())
}

/// What a running member says about its cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterView {
    /// Ids of every member (voters and learners).
    pub members: Vec<u64>,
    /// The leader it knows, if any.
    pub leader: Option<u64>,
    /// Raft address of every member, as the membership holds it.
    pub raft_addresses: Vec<(u64, String)>,
}

impl ClusterView {
    fn raft_address_of(&self, id: u64) -> Option<String> {
        self.raft_addresses
            .iter()
            .find(|(m, _)| *m == id)
            .map(|(_, a)| a.clone())
    }
}

async fn cluster_view(options: &ClientOptions) -> CliResult<ClusterView> {
    let channel = connect(options).await?;
    let mut client = ClusterClient::new(channel);
    let list = client
        .member_list(request(options, MemberListRequest {})?)
        .await?
        .into_inner();
    let status = client
        .status(request(options, StatusRequest { config: false })?)
        .await?
        .into_inner();
    let mut members = Vec::new();
    let mut raft_addresses = Vec::new();
    for m in list.members {
        let id = m.id.parse().map_err(|_| Failure {
            code: 1,
            message: format!("member id {:?} is not a number", m.id),
        })?;
        members.push(id);
        if let Some(url) = m.peer_ur_ls.first() {
            raft_addresses.push((id, url.clone()));
        }
    }
    let leader = status
        .info
        .split_whitespace()
        .find_map(|w| w.strip_prefix("leader="))
        .and_then(|l| l.parse::<u64>().ok())
        .filter(|&l| l != 0);
    Ok(ClusterView {
        members,
        leader,
        raft_addresses,
    })
}

/// Whether moving node `node_id`'s data aside leaves a copy elsewhere: the cluster knows the
/// node, has another member, and is led by another node (so the data lives on and the node
/// can be caught up). The reason otherwise.
pub fn safe_to_reseed(node_id: u64, view: &ClusterView) -> Result<(), String> {
    if !view.members.contains(&node_id) {
        return Err(format!(
            "node {node_id} is not a member of this cluster (members {:?}): wrong --raft.node-id \
             or --address?",
            view.members
        ));
    }
    if view.members.iter().all(|&m| m == node_id) {
        return Err(format!(
            "node {node_id} is the only member: its data directory is the only copy \
             (re-seeding would start an empty cluster); pass --force to move it anyway"
        ));
    }
    match view.leader {
        None => Err(
            "the cluster has no leader right now, so no other member is known to hold the data"
                .to_string(),
        ),
        Some(l) if l == node_id => Err(format!(
            "the cluster reports node {node_id} itself as leader: is it still running?"
        )),
        Some(_) => Ok(()),
    }
}

/// `<data-dir>.damaged-<YYYYMMDDTHHMMSSZ>` beside the directory (plus `-N` if taken).
fn aside_path(dir: &Path, now: SystemTime) -> CliResult<PathBuf> {
    let name = dir.file_name().ok_or_else(|| {
        refused(format!(
            "--data-dir {} has no directory name",
            dir.display()
        ))
    })?;
    let stamp: String = humantime::format_rfc3339_seconds(now)
        .to_string()
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    let base = format!("{}.damaged-{stamp}", name.to_string_lossy());
    for n in 0..1000 {
        let candidate = if n == 0 {
            dir.with_file_name(&base)
        } else {
            dir.with_file_name(format!("{base}-{n}"))
        };
        if !candidate.exists() {
            return Ok(candidate);
        }
    }
    Err(refused(format!(
        "too many {base}* directories beside {}",
        dir.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(members: &[u64], leader: Option<u64>) -> ClusterView {
        ClusterView {
            members: members.to_vec(),
            leader,
            raft_addresses: Vec::new(),
        }
    }

    #[test]
    fn a_member_of_a_led_cluster_may_be_reseeded() {
        assert_eq!(safe_to_reseed(3, &view(&[1, 2, 3], Some(1))), Ok(()));
        assert_eq!(safe_to_reseed(2, &view(&[1, 2], Some(1))), Ok(()));
    }

    #[test]
    fn the_only_copy_is_never_moved_without_force() {
        let single = safe_to_reseed(1, &view(&[1], Some(1))).expect_err("single node");
        assert!(single.contains("only member"), "{single}");
        assert!(safe_to_reseed(3, &view(&[1, 2, 3], None)).is_err());
        assert!(safe_to_reseed(3, &view(&[1, 2, 3], Some(3))).is_err());
        assert!(safe_to_reseed(4, &view(&[1, 2, 3], Some(1))).is_err());
    }

    #[test]
    fn the_aside_name_is_dated_and_never_taken() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("node-3");
        let t = humantime::parse_rfc3339("2026-12-06T17:31:11Z").expect("time");
        let first = aside_path(&dir, t).expect("path");
        assert_eq!(first, root.path().join("node-3.damaged-20261206T173111Z"));
        std::fs::create_dir(&first).expect("mkdir");
        let second = aside_path(&dir, t).expect("path");
        assert_eq!(
            second,
            root.path().join("node-3.damaged-20261206T173111Z-1")
        );
    }
}
