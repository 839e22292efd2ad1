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

    /// Point read of one key as a wire pair at `now_ms` (the reader's clock, e.g.
    /// [`crate::wall_clock_ms`]): an expired key is absent.
    pub fn get(&self, table: &str, key: &[u8], now_ms: u64) -> Result<Option<KeyValue>> {
        let t = self.existing(table)?;
        Ok(t.get_kv(key, now_ms))
    }

    /// The `Range` RPC against this view at `now_ms` (header left `None`).
    pub fn range(&self, req: &TableRange, now_ms: u64) -> Result<RangeResponse> {
        Ok(range(self.existing(&req.table)?, &req.query, now_ms))
    }

    /// `IterateRange`: every chunk, all from this view, at `now_ms`.
    pub fn iterate(self: &Arc<Self>, req: &TableRange, now_ms: u64) -> Result<RangeIter> {
        RangeIter::new(Arc::clone(self), &req.table, req.query.clone(), now_ms)
    }

    /// A read-only `Txn` against this view at `now_ms`, within `budget`. `Ok(None)` when
    /// the txn writes and must be proposed to the log instead.
    pub fn read_txn(
        &self,
        t: &Txn,
        budget: &mut Budget<'_>,
        now_ms: u64,
    ) -> Result<Option<TxnResponse>> {
        txn::read_only(self.existing(&t.table)?, t, budget, now_ms)
    }

    /// Up to `max` keys expired at `now_ms`, per table (tables without any left out), for
    /// the core leader's expiry task. Costs O(tables + keys returned).
    pub fn expired(&self, now_ms: u64, max: usize) -> Vec<(String, Vec<crate::table::Expired>)> {
        let mut left = max;
        let mut out = Vec::new();
        for (name, table) in self.tables.iter() {
            if left == 0 {
                break;
            }
            if table.expiring_len() == 0 {
                continue;
            }
            let keys = table.expired(now_ms, left);
            if !keys.is_empty() {
                left -= keys.len();
                out.push((name.clone(), keys));
            }
        }
        out
    }
}
