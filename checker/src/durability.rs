//! No acknowledged write lost: after the faults heal and the cluster is quiet, the value of
//! every key read from the core must be the last write acknowledged on it, or a later one.
//! Checked against the final state, which tells what survived — the linearizability check
//! alone cannot: a history that ends before a lost write would have been read passes it.

use std::collections::BTreeMap;

use crate::history::History;

/// A key's value and modification revision, as read from the core at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Final {
    pub value: Option<Vec<u8>>,
    pub mod_revision: u64,
}

/// One acknowledged write missing from the final state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lost {
    pub key: Vec<u8>,
    /// The acknowledged write: its revision and value.
    pub revision: u64,
    pub value: Vec<u8>,
    /// What the key holds at the end.
    pub found: Final,
}

/// Every acknowledged write that the final state neither holds nor supersedes: for each
/// key, its last acknowledged write (highest revision) must be what the key holds, or the
/// key must hold a later revision that some write of the history (acknowledged or not)
/// wrote with that value. Writes proposed together in one log entry share its revision
/// (applied in the order queued), so at the last acknowledged revision the key may hold any
/// write acknowledged at that revision or left unanswered. A key absent from `finals` is
/// read as absent.
pub fn lost_writes(history: &History, finals: &BTreeMap<Vec<u8>, Final>) -> Vec<Lost> {
    let absent = Final {
        value: None,
        mod_revision: 0,
    };
    let mut lost = Vec::new();
    for (key, ops) in history.by_key() {
        let mut last_acked: Option<(u64, &[u8])> = None;
        // Every write that may have taken effect, with its revision when acknowledged.
        let mut written: Vec<(&[u8], Option<u64>)> = Vec::new();
        for (value, revision) in ops.iter().filter_map(|op| op.write()) {
            written.push((value, revision));
            if let Some(revision) = revision
                && last_acked.is_none_or(|(r, _)| revision > r)
            {
                last_acked = Some((revision, value));
            }
        }
        let Some((revision, value)) = last_acked else {
            continue;
        };
        let found = finals.get(key).unwrap_or(&absent);
        let wrote = |v: &[u8], at: Option<u64>| {
            written
                .iter()
                .any(|(w, r)| *w == v && (r.is_none() || at.is_none() || *r == at))
        };
        let holds_it = found.mod_revision == revision
            && found
                .value
                .as_deref()
                .is_some_and(|v| v == value || wrote(v, Some(revision)));
        let superseded =
            found.mod_revision > revision && found.value.as_deref().is_some_and(|v| wrote(v, None));
        if !holds_it && !superseded {
            lost.push(Lost {
                key: key.to_vec(),
                revision,
                value: value.to_vec(),
                found: found.clone(),
            });
        }
    }
    lost
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Call, Op, Outcome, Return};

    fn write(key: &str, value: &str, outcome: Outcome) -> Op {
        Op {
            client: 1,
            key: key.as_bytes().to_vec(),
            call: Call::Put {
                value: value.as_bytes().to_vec(),
            },
            invoke: 0,
            complete: 1,
            outcome,
        }
    }

    fn acked(revision: u64) -> Outcome {
        Outcome::Ok(Return::Put { revision })
    }

    fn finals(entries: &[(&str, &str, u64)]) -> BTreeMap<Vec<u8>, Final> {
        entries
            .iter()
            .map(|(k, v, r)| {
                (
                    k.as_bytes().to_vec(),
                    Final {
                        value: Some(v.as_bytes().to_vec()),
                        mod_revision: *r,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn the_last_acknowledged_write_or_a_later_one_must_remain() {
        let history = History {
            ops: vec![
                write("a", "1", acked(1)),
                write("a", "2", acked(2)),
                write("b", "x", acked(3)),
                write("b", "y", Outcome::Unknown),
                write("c", "never", Outcome::Failed),
            ],
        };
        assert!(lost_writes(&history, &finals(&[("a", "2", 2), ("b", "y", 7)])).is_empty());

        let lost = lost_writes(&history, &finals(&[("a", "1", 1), ("b", "x", 3)]));
        assert_eq!(lost.len(), 1);
        assert_eq!((lost[0].key.as_slice(), lost[0].revision), (&b"a"[..], 2));

        let lost = lost_writes(&history, &finals(&[("a", "2", 2)]));
        assert_eq!(lost.len(), 1, "b vanished: {lost:?}");
        assert_eq!(lost[0].found.value, None);

        // Two writes of one entry share its revision: the key holds either.
        let shared = History {
            ops: vec![
                write("a", "1", acked(4)),
                write("a", "2", acked(4)),
                write("a", "3", Outcome::Unknown),
                write("a", "old", acked(2)),
            ],
        };
        for held in ["1", "2", "3"] {
            assert!(lost_writes(&shared, &finals(&[("a", held, 4)])).is_empty());
        }
        assert_eq!(lost_writes(&shared, &finals(&[("a", "old", 4)])).len(), 1);

        // A later revision holding a value nobody wrote is not a supersession.
        let lost = lost_writes(&history, &finals(&[("a", "zzz", 9), ("b", "x", 3)]));
        assert_eq!(lost.len(), 1, "{lost:?}");
    }
}
