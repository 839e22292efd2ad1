//! [`RaftMeta`]: openraft's bookkeeping kept inside every [`crate::State`], so the last
//! applied log id and membership travel atomically with the data (and in snapshots).
//!
//! Encoded by the workspace's one openraft codec ([`regatta_proto::raft::encode_applied`],
//! message `regatta.raft.v1.AppliedState`) from snapshot format version 2 on;
//! [`RaftMeta::decode_v1`] reads the little-endian layout that version 1 snapshots hold.

use std::collections::{BTreeMap, BTreeSet};

use openraft::{BasicNode, LogId, Membership, StoredMembership};
use regatta_proto::raft as codec;

use crate::{Error, Result};

const WHAT: &str = "raft metadata";

/// Last applied log id and last applied membership of a state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaftMeta {
    pub last_applied: Option<LogId<u64>>,
    pub membership: StoredMembership<u64, BasicNode>,
}

impl RaftMeta {
    /// The protobuf encoding embedded in snapshots (format version 2).
    pub fn encode(&self) -> Vec<u8> {
        codec::encode_applied(self.last_applied.as_ref(), &self.membership)
    }

    /// Decodes [`RaftMeta::encode`]'s output, rejecting anything malformed.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let (last_applied, membership) =
            codec::decode_applied(bytes).map_err(|e| Error::corrupted(WHAT, e.to_string()))?;
        Ok(Self {
            last_applied,
            membership,
        })
    }

    /// Decodes the layout of snapshot format version 1 (read only, never written):
    ///
    /// ```text
    /// log id   := u8 0 (none) | u8 1, term u64, node u64, index u64
    /// meta     := last applied log id, membership log id,
    ///             configs u64, per config: count u64, ids u64…,
    ///             nodes u64, per node: id u64, address length u64, UTF-8 bytes
    /// ```
    ///
    /// all integers little-endian, nothing after the last node.
    pub fn decode_v1(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader(bytes);
        let last_applied = r.log_id()?;
        let membership_log_id = r.log_id()?;
        let n_configs = r.u64()?;
        let mut configs = Vec::new();
        for _ in 0..n_configs {
            let n = r.u64()?;
            let mut set = BTreeSet::new();
            for _ in 0..n {
                set.insert(r.u64()?);
            }
            configs.push(set);
        }
        let n_nodes = r.u64()?;
        let mut nodes = BTreeMap::new();
        for _ in 0..n_nodes {
            let id = r.u64()?;
            let len = usize::try_from(r.u64()?).map_err(|_| Error::corrupted(WHAT, "length"))?;
            let addr = String::from_utf8(r.take(len)?.to_vec())
                .map_err(|_| Error::corrupted(WHAT, "node address not UTF-8"))?;
            nodes.insert(id, BasicNode { addr });
        }
        if !r.0.is_empty() {
            return Err(Error::corrupted(WHAT, "trailing bytes"));
        }
        let membership = Membership::new(configs, nodes);
        Ok(Self {
            last_applied,
            membership: StoredMembership::new(membership_log_id, membership),
        })
    }
}

/// The version 1 reader: bounds-checked little-endian fields.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.0.len() < n {
            return Err(Error::corrupted(WHAT, "truncated"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> Result<u64> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }
    fn log_id(&mut self) -> Result<Option<LogId<u64>>> {
        match self.u8()? {
            0 => Ok(None),
            1 => {
                let term = self.u64()?;
                let node = self.u64()?;
                let index = self.u64()?;
                Ok(Some(LogId::new(
                    openraft::CommittedLeaderId::new(term, node),
                    index,
                )))
            }
            t => Err(Error::corrupted(WHAT, format!("bad log id tag {t}"))),
        }
    }
}
