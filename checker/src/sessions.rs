//! What a client of one edge may count on, checked on the reads it made there:
//!
//! - **monotonic reads**: a session's reads never go back — neither the node's revision in
//!   the response header nor a key's modification revision decreases from one read to the
//!   next read invoked after it completed;
//! - **read your writes**: a read invoked after the session's own write (sent through that
//!   edge) was acknowledged sees that write's revision or a later one;
//! - **reads are the core's history**: every value an edge returns was written by some
//!   write of the history on that key, at the modification revision returned (acknowledged
//!   writes), and never above the header's revision.

use std::collections::BTreeMap;

use crate::history::{History, Nanos};

/// A serializable read at an edge, as a session recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeRead {
    pub session: u32,
    pub key: Vec<u8>,
    pub invoke: Nanos,
    pub complete: Nanos,
    pub value: Option<Vec<u8>>,
    pub mod_revision: u64,
    /// The revision in the response header: how far the edge had applied.
    pub header_revision: u64,
}

/// A session's own write through the edge, acknowledged at `revision`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionWrite {
    pub session: u32,
    pub key: Vec<u8>,
    pub complete: Nanos,
    pub revision: u64,
}

/// One line, like an operation's: `   1234.5 ms ..    1240.0 ms  session 1    read k0 ->
/// v3-c1@4 (header 7)`.
impl std::fmt::Display for EdgeRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |ns: Nanos| ns as f64 / 1e6;
        let value = match &self.value {
            Some(v) => format!("{}@{}", String::from_utf8_lossy(v), self.mod_revision),
            None => "absent".to_string(),
        };
        write!(
            f,
            "{:9.1} ms .. {:9.1} ms  session {:<4} read {} -> {value} (header {})",
            ms(self.invoke),
            ms(self.complete),
            self.session,
            String::from_utf8_lossy(&self.key),
            self.header_revision
        )
    }
}

/// One broken guarantee, in words a failing test can print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly(pub String);

/// Checks `reads` against the guarantees; `history` is the whole run's history of writes
/// (core and edges), used to check that returned values were written.
pub fn check(reads: &[EdgeRead], writes: &[SessionWrite], history: &History) -> Vec<Anomaly> {
    let mut anomalies = Vec::new();
    let mut by_session: BTreeMap<u32, Vec<&EdgeRead>> = BTreeMap::new();
    for read in reads {
        by_session.entry(read.session).or_default().push(read);
    }
    for (session, mut reads) in by_session {
        reads.sort_by_key(|r| r.invoke);
        let mut header = 0;
        let mut per_key: BTreeMap<&[u8], u64> = BTreeMap::new();
        for read in &reads {
            if read.header_revision < header {
                anomalies.push(Anomaly(format!(
                    "session {session}: read at {} saw header revision {} after {header}",
                    read.invoke, read.header_revision
                )));
            }
            header = header.max(read.header_revision);
            let seen = per_key.entry(&read.key).or_default();
            if read.mod_revision < *seen {
                anomalies.push(Anomaly(format!(
                    "session {session}: key {:?} went back from revision {} to {}",
                    String::from_utf8_lossy(&read.key),
                    *seen,
                    read.mod_revision
                )));
            }
            *seen = (*seen).max(read.mod_revision);
        }
        for write in writes.iter().filter(|w| w.session == session) {
            for read in reads.iter().filter(|r| r.invoke > write.complete) {
                let same_key_behind = read.key == write.key && read.mod_revision < write.revision;
                if read.header_revision < write.revision || same_key_behind {
                    anomalies.push(Anomaly(format!(
                        "session {session}: read at {} (header {}, key revision {}) does not \
                         see its own write at revision {}",
                        read.invoke, read.header_revision, read.mod_revision, write.revision
                    )));
                }
            }
        }
    }
    let keys = history.by_key();
    for read in reads {
        if read.mod_revision > read.header_revision {
            anomalies.push(Anomaly(format!(
                "read at {}: key revision {} above the header's {}",
                read.invoke, read.mod_revision, read.header_revision
            )));
        }
        let Some(value) = &read.value else { continue };
        let written = keys.get(read.key.as_slice()).is_some_and(|ops| {
            ops.iter().filter_map(|op| op.write()).any(|(wrote, at)| {
                wrote == value.as_slice() && at.is_none_or(|r| r == read.mod_revision)
            })
        });
        if !written {
            anomalies.push(Anomaly(format!(
                "read at {}: key {:?} = {:?} at revision {} was never written",
                read.invoke,
                String::from_utf8_lossy(&read.key),
                String::from_utf8_lossy(value),
                read.mod_revision
            )));
        }
    }
    anomalies
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Call, Op, Outcome, Return};

    fn read(session: u32, t: Nanos, value: Option<&str>, rev: u64, header: u64) -> EdgeRead {
        EdgeRead {
            session,
            key: b"k".to_vec(),
            invoke: t,
            complete: t + 1,
            value: value.map(|v| v.as_bytes().to_vec()),
            mod_revision: rev,
            header_revision: header,
        }
    }

    fn history() -> History {
        let put = |v: &str, revision| Op {
            client: 9,
            key: b"k".to_vec(),
            call: Call::Put {
                value: v.as_bytes().to_vec(),
            },
            invoke: 0,
            complete: 1,
            outcome: Outcome::Ok(Return::Put { revision }),
        };
        History {
            ops: vec![put("a", 1), put("b", 2)],
        }
    }

    #[test]
    fn a_session_reading_forward_passes() {
        let reads = [
            read(1, 0, None, 0, 0),
            read(1, 5, Some("a"), 1, 1),
            read(1, 9, Some("b"), 2, 4),
            read(2, 1, Some("b"), 2, 2),
        ];
        let writes = [SessionWrite {
            session: 1,
            key: b"k".to_vec(),
            complete: 8,
            revision: 2,
        }];
        assert_eq!(check(&reads, &writes, &history()), vec![]);
    }

    #[test]
    fn going_back_is_caught() {
        let reads = [read(1, 0, Some("b"), 2, 2), read(1, 5, Some("a"), 1, 1)];
        let found = check(&reads, &[], &history());
        assert_eq!(found.len(), 2, "header and key both went back: {found:?}");
    }

    #[test]
    fn missing_ones_own_write_is_caught() {
        let reads = [read(1, 10, Some("a"), 1, 1)];
        let writes = [SessionWrite {
            session: 1,
            key: b"k".to_vec(),
            complete: 8,
            revision: 2,
        }];
        let found = check(&reads, &writes, &history());
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].0.contains("own write"));
        // Another session's read owes nothing to that write.
        let reads = [read(2, 10, Some("a"), 1, 1)];
        assert!(check(&reads, &writes, &history()).is_empty());
    }

    #[test]
    fn values_nobody_wrote_are_caught() {
        let found = check(&[read(1, 0, Some("a"), 2, 2)], &[], &history());
        assert_eq!(found.len(), 1, "a at the wrong revision: {found:?}");
        let found = check(&[read(1, 0, Some("zzz"), 1, 1)], &[], &history());
        assert_eq!(found.len(), 1, "{found:?}");
        let found = check(&[read(1, 0, Some("a"), 1, 0)], &[], &history());
        assert_eq!(found.len(), 1, "above the header: {found:?}");
    }
}
