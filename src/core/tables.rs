//! `--tables.names` and `--tables.delete`: tables a core node creates, then deletes, once
//! its cluster has a leader, as Regatta's leader does at start.
//!
//! The changes are ordinary table writes through the node's role, the path of
//! `Tables.Create` and `Tables.Delete` (a follower forwards them to the leader), so they
//! work with the Tables service switched off too. Every node given the flags tries: the
//! first change applied wins, and the others find the table there (or gone), which is
//! logged at info, not an error. The task runs beside the servers and never holds up
//! start-up; it retries what may succeed later (no leader yet, a forwarded write lost)
//! until [`GIVE_UP_AFTER`], and stops on shutdown.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use openraft::Raft;
use regatta_api::node::Role;
use regatta_core::role::CoreRole;
use regatta_materializer::{Command, Rejection, raft::TypeConfig};
use regatta_proto::regatta::v1::{CreateTableRequest, DeleteTableRequest};
use tokio_util::sync::CancellationToken;
use tonic::Code;

/// How long the task keeps trying, from the node's start: a cluster without a leader for
/// this long has bigger problems, reported elsewhere.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(600);

/// How long one change may take before it is tried again.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// One table change the flags ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableChange {
    Create(String),
    Delete(String),
}

/// What one attempt at a change came to.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// Applied now.
    Done,
    /// Nothing to do: created already, or not there to delete.
    AlreadySo,
    /// May succeed if tried again (no leader, a lost forwarded write, a full disk).
    Retry(String),
    /// Will not succeed.
    Failed(String),
}

impl TableChange {
    /// The changes of `--tables.names` (created first) and `--tables.delete`, each name
    /// checked as `Tables.Create` and `Tables.Delete` check it; empty entries are skipped.
    pub fn from_flags(names: &[String], delete: &[String]) -> Result<Vec<Self>> {
        let mut changes = Vec::new();
        for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
            let change = Self::Create(name.to_string());
            if let Err(e) = change.command() {
                bail!("--tables.names: {name:?}: {e}");
            }
            changes.push(change);
        }
        for name in delete.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
            let change = Self::Delete(name.to_string());
            if let Err(e) = change.command() {
                bail!("--tables.delete: {name:?}: {e}");
            }
            changes.push(change);
        }
        Ok(changes)
    }

    /// The write, built as the Tables service builds it from a request.
    fn command(&self) -> regatta_materializer::Result<Command> {
        match self {
            Self::Create(name) => Command::try_from(&CreateTableRequest {
                name: name.clone(),
                config: None,
            }),
            Self::Delete(name) => Command::try_from(&DeleteTableRequest { name: name.clone() }),
        }
    }

    /// What the answer to this change's write means, whether this node applied it or the
    /// leader it was forwarded to answered.
    fn outcome(&self, answer: regatta_api::Result<()>) -> Outcome {
        use regatta_api::Error;
        use regatta_materializer::Error as MatError;
        let Err(error) = answer else {
            return Outcome::Done;
        };
        let already = match (self, &error) {
            (
                Self::Create(_),
                Error::Rejected(Rejection::TableExists { .. })
                | Error::Materializer(MatError::TableExists { .. }),
            )
            | (
                Self::Delete(_),
                Error::Rejected(Rejection::TableNotFound { .. })
                | Error::Materializer(MatError::TableNotFound { .. }),
            ) => true,
            (Self::Create(_), Error::Remote(status)) => status.code() == Code::AlreadyExists,
            (Self::Delete(_), Error::Remote(status)) => status.code() == Code::NotFound,
            _ => false,
        };
        if already {
            Outcome::AlreadySo
        } else if error.is_retryable() {
            Outcome::Retry(error.to_string())
        } else {
            Outcome::Failed(error.to_string())
        }
    }
}

/// Makes `changes` in order once the cluster has a leader; see the module's doc. Gives up
/// at `started + GIVE_UP_AFTER`, and on `shutdown`.
pub async fn run(
    changes: Vec<TableChange>,
    role: Arc<CoreRole>,
    raft: Raft<TypeConfig>,
    shutdown: CancellationToken,
) {
    if changes.is_empty() {
        return;
    }
    let deadline = tokio::time::Instant::from_std(Instant::now() + GIVE_UP_AFTER);
    let mut metrics = raft.server_metrics();
    while metrics.borrow_and_update().current_leader.is_none() {
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() { return },
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep_until(deadline) => {
                tracing::warn!(after = ?GIVE_UP_AFTER, ?changes, "no leader: the tables of --tables.names and --tables.delete were not changed");
                return;
            }
        }
    }
    for change in changes {
        let (table, verb) = match &change {
            TableChange::Create(name) => (name.as_str(), "create"),
            TableChange::Delete(name) => (name.as_str(), "delete"),
        };
        let mut pause = Duration::from_millis(100);
        loop {
            let outcome = match change.command() {
                Err(e) => Outcome::Failed(e.to_string()),
                Ok(command) => {
                    match tokio::time::timeout(ATTEMPT_TIMEOUT, role.write(command)).await {
                        Ok(answer) => change.outcome(answer.map(drop)),
                        Err(_) => Outcome::Retry(format!("no answer within {ATTEMPT_TIMEOUT:?}")),
                    }
                }
            };
            match outcome {
                Outcome::Done => tracing::info!(table, "table {verb}d at start-up"),
                Outcome::AlreadySo => match change {
                    TableChange::Create(_) => {
                        tracing::info!(table, "table of --tables.names exists already")
                    }
                    TableChange::Delete(_) => {
                        tracing::info!(table, "table of --tables.delete does not exist")
                    }
                },
                Outcome::Retry(reason) if tokio::time::Instant::now() + pause < deadline => {
                    tracing::debug!(table, %reason, "table {verb} at start-up: trying again");
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = shutdown.cancelled() => return,
                    }
                    pause = (pause * 2).min(Duration::from_secs(5));
                    continue;
                }
                Outcome::Retry(reason) | Outcome::Failed(reason) => {
                    tracing::error!(table, %reason, "could not {verb} the table at start-up");
                }
            }
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use regatta_api::Error;
    use tonic::Status;

    use super::*;

    #[test]
    fn names_are_checked_and_creates_come_before_deletes() {
        let list = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let changes =
            TableChange::from_flags(&list(&["a", " b ", ""]), &list(&["c"])).expect("valid");
        assert_eq!(
            changes,
            [
                TableChange::Create("a".into()),
                TableChange::Create("b".into()),
                TableChange::Delete("c".into()),
            ]
        );
        let long = "x".repeat(10_000);
        let err = TableChange::from_flags(&list(&[&long]), &[])
            .expect_err("too long")
            .to_string();
        assert!(err.contains("--tables.names"), "{err}");
        let err = TableChange::from_flags(&[], &list(&["bad\u{1}"]));
        assert!(err.is_ok(), "deletes check only that a name is given");
    }

    #[test]
    fn exists_and_missing_are_fine_failures_retried_or_reported() {
        let create = TableChange::Create("t".into());
        let delete = TableChange::Delete("t".into());
        let exists = || Error::Rejected(Rejection::TableExists { table: "t".into() });
        let missing = || Error::Rejected(Rejection::TableNotFound { table: "t".into() });
        assert_eq!(create.outcome(Ok(())), Outcome::Done);
        assert_eq!(create.outcome(Err(exists())), Outcome::AlreadySo);
        assert_eq!(delete.outcome(Err(missing())), Outcome::AlreadySo);
        assert!(matches!(create.outcome(Err(missing())), Outcome::Failed(_)));
        // Forwarded to the leader, the answer comes back as its status.
        let remote = |status: Status| Err(Error::Remote(status));
        assert_eq!(
            create.outcome(remote(Status::already_exists("t"))),
            Outcome::AlreadySo
        );
        assert_eq!(
            delete.outcome(remote(Status::not_found("t"))),
            Outcome::AlreadySo
        );
        assert!(matches!(
            delete.outcome(remote(Status::already_exists("t"))),
            Outcome::Failed(_)
        ));
        for retryable in [
            Error::NoLeader {
                reason: "election".into(),
            },
            Error::Indeterminate {
                reason: "lost".into(),
                leader: None,
            },
        ] {
            assert!(matches!(create.outcome(Err(retryable)), Outcome::Retry(_)));
        }
        assert!(matches!(
            create.outcome(Err(Error::Internal("bug".into()))),
            Outcome::Failed(_)
        ));
    }
}
