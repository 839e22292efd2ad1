//! [`RaftMeta`]: openraft's bookkeeping kept inside every [`crate::State`], so the last
//! applied log id and membership travel atomically with the data (and in snapshots).

use std::collections::{BTreeMap, BTreeSet};

use openraft::{BasicNode, LogId, Membership, StoredMembership};

use crate::{Error, Result};

/// Last applied log id and last applied membership of a state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaftMeta {
    pub last_applied: Option<LogId<u64>>,
    pub membership: StoredMembership<u64, BasicNode>,
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_log_id(out: &mut Vec<u8>, id: &Option<LogId<u64>>) {
    match id {
        None => out.push(0),
        Some(id) => {
            out.push(1);
            put_u64(out, id.leader_id.term);
            put_u64(out, id.leader_id.node_id);
            put_u64(out, id.index);
        }
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.0.len() < n {
            return Err(Error::corrupted("raft metadata", "truncated"));
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
            t => Err(Error::corrupted(
                "raft metadata",
                format!("bad log id tag {t}"),
            )),
        }
    }
}

impl RaftMeta {
    /// Compact binary encoding (little-endian), embedded in snapshots.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_log_id(&mut out, &self.last_applied);
        put_log_id(&mut out, self.membership.log_id());
        let m = self.membership.membership();
        let configs = m.get_joint_config();
        put_u64(&mut out, configs.len() as u64);
        for c in configs {
            put_u64(&mut out, c.len() as u64);
            for id in c {
                put_u64(&mut out, *id);
            }
        }
        let nodes: Vec<_> = m.nodes().collect();
        put_u64(&mut out, nodes.len() as u64);
        for (id, node) in nodes {
            put_u64(&mut out, *id);
            put_u64(&mut out, node.addr.len() as u64);
            out.extend_from_slice(node.addr.as_bytes());
        }
        out
    }

    /// Decodes [`RaftMeta::encode`]'s output, rejecting anything malformed.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
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
            let len = usize::try_from(r.u64()?)
                .map_err(|_| Error::corrupted("raft metadata", "length"))?;
            let addr = String::from_utf8(r.take(len)?.to_vec())
                .map_err(|_| Error::corrupted("raft metadata", "node address not UTF-8"))?;
            nodes.insert(id, BasicNode { addr });
        }
        if !r.0.is_empty() {
            return Err(Error::corrupted("raft metadata", "trailing bytes"));
        }
        let membership = Membership::new(configs, nodes);
        Ok(Self {
            last_applied,
            membership: StoredMembership::new(membership_log_id, membership),
        })
    }
}
