//! Apply: a pure function of (state, entry) → (state', response).
//!
//! [`apply`] mutates an owned [`State`] (a cheap structural clone of the published view),
//! which is the same as returning a new one: nothing else can observe it until the caller
//! publishes it. Same state + same entries ⇒ same state and responses on every replica.
//!
//! Two outcomes are distinguished:
//! - a *rejection* (unknown table, table exists, invalid event): deterministic, recorded as
//!   [`ApplyResponse::Rejected`], the revision still advances;
//! - a *fatal error* ([`Error::UnknownEvent`], [`Error::OutOfOrder`]): the state is left
//!   untouched and the node must stop applying.

use regatta_proto::event::Event;
use regatta_proto::regatta::v1::{DeleteRangeResponse, PutResponse};

use crate::command::Command;
use crate::table::Table;
use crate::{ApplyResponse, Error, Rejection, Result, Revision, State, TableId, txn};

/// Applies the event at log `index` to `state`.
pub fn apply(state: &mut State, index: Revision, event: &Event) -> Result<ApplyResponse> {
    check_order(state, index)?;
    let command = match Command::from_event(index.0, event) {
        Ok(c) => c,
        Err(e) if e.is_fatal() => return Err(e),
        Err(e) => {
            state.revision = index;
            let rejection = e
                .to_rejection()
                .unwrap_or_else(|| Rejection::InvalidArgument {
                    reason: e.to_string(),
                });
            return Ok(ApplyResponse::Rejected(rejection));
        }
    };
    Ok(apply_command(state, index, &command))
}

/// Advances the revision without a command (openraft Blank and Membership entries).
pub fn advance(state: &mut State, index: Revision) -> Result<()> {
    check_order(state, index)?;
    state.revision = index;
    Ok(())
}

fn check_order(state: &State, index: Revision) -> Result<()> {
    if index <= state.revision {
        return Err(Error::OutOfOrder {
            index: index.0,
            applied: state.revision,
        });
    }
    Ok(())
}

/// Applies an already validated command at `index` (the revision of every write in it).
pub fn apply_command(state: &mut State, index: Revision, command: &Command) -> ApplyResponse {
    state.revision = index;
    match command {
        Command::CreateTable { name, config } => {
            if state.tables.contains_key(name) {
                return ApplyResponse::Rejected(Rejection::TableExists {
                    table: name.clone(),
                });
            }
            let id = TableId(index.0);
            state
                .tables
                .insert(name.clone(), Table::new(id, config.clone()));
            ApplyResponse::TableCreated { id }
        }
        Command::DeleteTable { name } => match state.tables.remove(name) {
            Some(_) => ApplyResponse::TableDeleted,
            None => ApplyResponse::Rejected(Rejection::TableNotFound {
                table: name.clone(),
            }),
        },
        Command::Put(p) => with_table(state, &p.table, |t| {
            let r = txn::put(t, &p.op, index);
            ApplyResponse::Put(PutResponse {
                header: None,
                prev_kv: r.prev_kv,
            })
        }),
        Command::DeleteRange(d) => with_table(state, &d.table, |t| {
            let r = txn::delete(t, &d.op);
            ApplyResponse::DeleteRange(DeleteRangeResponse {
                header: None,
                deleted: r.deleted,
                prev_kvs: r.prev_kvs,
            })
        }),
        Command::Txn(x) => with_table(state, &x.table, |t| {
            ApplyResponse::Txn(txn::run(t, x, index))
        }),
        Command::RestoreTable { name, clear, kvs } => with_table(state, name, |t| {
            if *clear {
                t.clear();
            }
            for (k, v) in kvs {
                t.put(k, v, index);
            }
            ApplyResponse::TableRestored {
                stored: kvs.len() as u64,
            }
        }),
    }
}

fn with_table(
    state: &mut State,
    name: &str,
    f: impl FnOnce(&mut Table) -> ApplyResponse,
) -> ApplyResponse {
    match state.tables.get_mut(name) {
        Some(t) => f(t),
        None => ApplyResponse::Rejected(Rejection::TableNotFound { table: name.into() }),
    }
}
