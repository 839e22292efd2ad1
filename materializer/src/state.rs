//! [`State`]: one immutable, consistent view of every table at one revision.
//!
//! Readers hold an `Arc<State>`; nothing in it changes while they hold it. Apply builds the
//! next `State` from a cheap clone (structural sharing) and publishes it whole.

use std::sync::Arc;

use imbl::OrdMap;
use regatta_proto::mvcc::v1::KeyValue;
use regatta_proto::regatta::v1::{RangeResponse, TableInfo, TxnResponse};

use crate::budget::Budget;
use crate::raft_meta::RaftMeta;
use crate::range::{RangeIter, range};
use crate::request::{TableRange, Txn};
use crate::table::Table;
use crate::{Error, Result, Revision, txn};

/// Every table at one revision.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub(crate) revision: Revision,
    pub(crate) tables: OrdMap<String, Table>,
    pub(crate) raft: RaftMeta,
}

impl State {
    /// The empty state before the first log entry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The revision (log index) of the last entry applied into this view.
    pub fn revision(&self) -> Revision {
        self.revision
    }

    /// openraft bookkeeping (last applied log id, membership) of this view.
    pub fn raft_meta(&self) -> &RaftMeta {
        &self.raft
    }

    /// The named table, if it exists.
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.get(name)
    }

    fn existing(&self, name: &str) -> Result<&Table> {
        self.table(name)
            .ok_or_else(|| Error::TableNotFound { table: name.into() })
    }

    /// Tables in name order.
    pub fn tables(&self) -> impl Iterator<Item = (&String, &Table)> + '_ {
        self.tables.iter()
    }

    /// `Tables.List`: every table, sorted by name, id as a decimal string.
    pub fn list_tables(&self) -> Vec<TableInfo> {
        self.tables
            .iter()
            .map(|(name, t)| TableInfo {
                name: name.clone(),
                id: t.id().to_string(),
                config: t.config().cloned(),
            })
            .collect()
    }

    /// Point read of one key as a wire pair.
    pub fn get(&self, table: &str, key: &[u8]) -> Result<Option<KeyValue>> {
        let t = self.existing(table)?;
        Ok(t.get_kv(key))
    }

    /// The `Range` RPC against this view (header left `None`).
    pub fn range(&self, req: &TableRange) -> Result<RangeResponse> {
        Ok(range(self.existing(&req.table)?, &req.query))
    }

    /// `IterateRange`: every chunk, all from this view.
    pub fn iterate(self: &Arc<Self>, req: &TableRange) -> Result<RangeIter> {
        RangeIter::new(Arc::clone(self), &req.table, req.query.clone())
    }

    /// A read-only `Txn` against this view, within `budget`. `Ok(None)` when the txn writes
    /// and must be proposed to the log instead.
    pub fn read_txn(&self, t: &Txn, budget: &mut Budget<'_>) -> Result<Option<TxnResponse>> {
        txn::read_only(self.existing(&t.table)?, t, budget)
    }
}
