//! After the schedule: the final state read from the core, the edges' convergence to it,
//! and the record of the run written for a person (JSON lines).
//!
//! Convergence is decided by [`compare`], a plain function: an edge has converged when it
//! serves the core's state at the core's revision; at the same revision, any other content
//! is a divergence (an anomaly at once); behind it, the edge has not caught up yet.

use std::{collections::BTreeMap, io::Write, path::Path, time::Duration};

use anyhow::{Context, Result, bail};
use regatta_checker::{
    Call, History, Outcome, Return, Verdict, durability::Final, sessions::EdgeRead,
};
use regatta_proto::regatta::v1::{RangeRequest, kv_client::KvClient};
use serde_json::json;
use tonic::transport::Channel;

use crate::client::TABLE;

/// A whole table as one node served it: key → (value, modification revision).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub revision: u64,
    pub kvs: BTreeMap<Vec<u8>, (Vec<u8>, u64)>,
}

/// How an edge's snapshot stands against the core's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Convergence {
    Converged,
    Behind,
    /// The edge is past the core's revision (the core read is stale: read it again).
    Ahead,
    Diverged(String),
}

pub fn compare(core: &Snapshot, edge: &Snapshot) -> Convergence {
    if edge.revision < core.revision {
        return Convergence::Behind;
    }
    if edge.revision > core.revision {
        return Convergence::Ahead;
    }
    if edge.kvs == core.kvs {
        return Convergence::Converged;
    }
    let keys: std::collections::BTreeSet<&Vec<u8>> =
        core.kvs.keys().chain(edge.kvs.keys()).collect();
    let differences: Vec<String> = keys
        .into_iter()
        .filter(|k| core.kvs.get(*k) != edge.kvs.get(*k))
        .map(|k| {
            let show = |v: Option<&(Vec<u8>, u64)>| match v {
                Some((value, rev)) => format!("{}@{rev}", String::from_utf8_lossy(value)),
                None => "absent".to_string(),
            };
            format!(
                "{}: core {} edge {}",
                String::from_utf8_lossy(k),
                show(core.kvs.get(k)),
                show(edge.kvs.get(k))
            )
        })
        .collect();
    Convergence::Diverged(format!(
        "at revision {}: {}",
        core.revision,
        differences.join("; ")
    ))
}

/// The whole table from `channel`.
pub async fn read_table(channel: &Channel, linearizable: bool) -> Result<Snapshot> {
    let mut kv = KvClient::new(channel.clone());
    let mut request = tonic::Request::new(RangeRequest {
        table: TABLE.as_bytes().to_vec().into(),
        key: vec![0].into(),
        range_end: vec![0].into(),
        linearizable,
        ..Default::default()
    });
    request.set_timeout(Duration::from_secs(2));
    let response = tokio::time::timeout(Duration::from_secs(3), kv.range(request))
        .await
        .context("no answer to a Range of the whole table")??
        .into_inner();
    if response.more {
        bail!("the table did not fit one Range answer");
    }
    Ok(Snapshot {
        revision: response.header.map_or(0, |h| h.revision),
        kvs: response
            .kvs
            .into_iter()
            .map(|kv| {
                let rev = u64::try_from(kv.mod_revision).unwrap_or(0);
                (kv.key.to_vec(), (kv.value.to_vec(), rev))
            })
            .collect(),
    })
}

/// The final state as the durability check wants it.
pub fn finals(core: &Snapshot) -> BTreeMap<Vec<u8>, Final> {
    core.kvs
        .iter()
        .map(|(k, (v, rev))| {
            let last = Final {
                value: Some(v.clone()),
                mod_revision: *rev,
            };
            (k.clone(), last)
        })
        .collect()
}

/// Counts of the history's operations: (call kind, outcome) → count.
pub fn counts(history: &History) -> BTreeMap<(&'static str, &'static str), u64> {
    let mut counts = BTreeMap::new();
    for op in &history.ops {
        let call = match op.call {
            Call::Put { .. } => "put",
            Call::Get => "get",
            Call::Cas { .. } => "cas",
        };
        let outcome = match op.outcome {
            Outcome::Ok(_) => "ok",
            Outcome::Failed => "failed",
            Outcome::Unknown => "unknown",
        };
        *counts.entry((call, outcome)).or_default() += 1;
    }
    counts
}

/// The longest time without an acknowledged write (Put or compare-and-set that held),
/// from the first invocation to `end` (when the clients stopped): (where it starts, how
/// long), in ns. Counting up to `end` catches a store that never acknowledges a write
/// again. A figure of availability; a scenario bounds it.
pub fn longest_write_outage(history: &History, end: u64) -> (u64, u64) {
    let mut acked: Vec<u64> = history
        .ops
        .iter()
        .filter(|op| {
            matches!(
                op.outcome,
                Outcome::Ok(Return::Put { .. } | Return::Cas { .. })
            )
        })
        .map(|op| op.complete)
        .collect();
    let Some(start) = history.ops.iter().map(|op| op.invoke).min() else {
        return (0, 0);
    };
    acked.push(start);
    acked.push(end.max(start));
    acked.sort_unstable();
    let mut longest = (start, 0);
    for pair in acked.windows(2) {
        if pair[1] - pair[0] > longest.1 {
            longest = (pair[0], pair[1] - pair[0]);
        }
    }
    longest
}

/// How stale each serializable edge read was, ns: how long before its invocation the core
/// had acknowledged a write past the revision the edge answered at (its header revision);
/// 0 when no such write was acknowledged yet. A lower bound of the edge's lag, measured
/// only from what the clients saw.
pub fn edge_staleness(history: &History, reads: &[EdgeRead]) -> Vec<u64> {
    // (revision, completion) of acknowledged writes; then, by revision, the earliest
    // completion of a write at that revision or above.
    let mut acked: Vec<(u64, u64)> = history
        .ops
        .iter()
        .filter_map(|op| match op.outcome {
            Outcome::Ok(Return::Put { revision })
            | Outcome::Ok(Return::Cas {
                succeeded: true,
                revision,
            }) => Some((revision, op.complete)),
            _ => None,
        })
        .collect();
    acked.sort_unstable();
    let mut earliest = vec![u64::MAX; acked.len() + 1];
    for i in (0..acked.len()).rev() {
        earliest[i] = earliest[i + 1].min(acked[i].1);
    }
    reads
        .iter()
        .map(|r| {
            let first_above = acked.partition_point(|(rev, _)| *rev <= r.header_revision);
            r.invoke.saturating_sub(earliest[first_above])
        })
        .collect()
}

/// One operation in words (the checker's rendering: times in ms, client, call, outcome).
pub fn describe(op: &regatta_checker::Op) -> String {
    op.to_string()
}

/// The linearizability verdict as an anomaly to print (None when linearizable): the last
/// operations the search could explain and the first it could not.
pub fn linearizability_anomaly(verdict: &Verdict) -> Option<String> {
    match verdict {
        Verdict::Linearizable { .. } => None,
        Verdict::Violation { key, ops, longest } => {
            let tail: Vec<String> = longest[longest.len().saturating_sub(3)..]
                .iter()
                .map(|i| format!("\n    explained: {}", describe(&ops[*i])))
                .collect();
            let mut next: Vec<&regatta_checker::Op> = (0..ops.len())
                .filter(|i| !longest.contains(i))
                .map(|i| &ops[i])
                .collect();
            next.sort_by_key(|op| op.invoke);
            let next: Vec<String> = next
                .iter()
                .take(4)
                .map(|op| format!("\n    not explained: {}", describe(op)))
                .collect();
            Some(format!(
                "not linearizable on key {}: {} ops, the longest explainable order has {}{}{}",
                String::from_utf8_lossy(key),
                ops.len(),
                longest.len(),
                tail.concat(),
                next.concat()
            ))
        }
        Verdict::Inconclusive { key, ops } => Some(format!(
            "linearizability inconclusive on key {} ({ops} ops): out of budget",
            String::from_utf8_lossy(key)
        )),
    }
}

/// The verdict in a few words.
pub fn short(v: &Verdict) -> String {
    match v {
        Verdict::Linearizable { keys, ops } => format!("yes ({keys} keys, {ops} ops)"),
        Verdict::Violation { key, .. } => format!("NO (key {})", String::from_utf8_lossy(key)),
        Verdict::Inconclusive { key, .. } => {
            format!("inconclusive (key {})", String::from_utf8_lossy(key))
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The largest history file `read_history` reads (a 135 s run writes under 2 MiB).
const MAX_HISTORY_BYTES: u64 = 1 << 30;

/// Reads a `history.jsonl` [`write_record`] wrote, to judge it again (`regatta-faults
/// check`). A line that is not an operation of that shape is an error naming the line.
pub fn read_history(path: &Path) -> Result<History> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if size > MAX_HISTORY_BYTES {
        bail!(
            "{} is {size} bytes, more than the {MAX_HISTORY_BYTES} a history is read up to",
            path.display()
        );
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut history = History::default();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let op = parse_op(line).with_context(|| format!("{}:{}", path.display(), n + 1))?;
        history.push(op);
    }
    Ok(history)
}

fn parse_op(line: &str) -> Result<regatta_checker::Op> {
    let v: serde_json::Value = serde_json::from_str(line).context("not JSON")?;
    let str_of = |v: &serde_json::Value, what: &str| {
        v.as_str()
            .map(|s| s.as_bytes().to_vec())
            .with_context(|| format!("{what} is not a string"))
    };
    let u64_of = |v: &serde_json::Value, what: &str| {
        v.as_u64()
            .with_context(|| format!("{what} is not a number"))
    };
    let call = &v["call"];
    let call = match call["op"].as_str() {
        Some("put") => Call::Put {
            value: str_of(&call["value"], "call.value")?,
        },
        Some("get") => Call::Get,
        Some("cas") => Call::Cas {
            expect: u64_of(&call["expect"], "call.expect")?,
            value: str_of(&call["value"], "call.value")?,
        },
        other => anyhow::bail!("unknown call {other:?}"),
    };
    let outcome = match &v["outcome"] {
        serde_json::Value::String(s) if s == "failed" => Outcome::Failed,
        serde_json::Value::String(s) if s == "unknown" => Outcome::Unknown,
        serde_json::Value::Object(o) => {
            let ok = o.get("ok").context("an outcome object without ok")?;
            match &call {
                Call::Put { .. } => Outcome::Ok(Return::Put {
                    revision: u64_of(&ok["revision"], "ok.revision")?,
                }),
                Call::Get => Outcome::Ok(Return::Get {
                    value: match &ok["value"] {
                        serde_json::Value::Null => None,
                        value => Some(str_of(value, "ok.value")?),
                    },
                    mod_revision: u64_of(&ok["mod_revision"], "ok.mod_revision")?,
                }),
                Call::Cas { .. } => Outcome::Ok(Return::Cas {
                    succeeded: ok["succeeded"].as_bool().context("ok.succeeded")?,
                    revision: u64_of(&ok["revision"], "ok.revision")?,
                }),
            }
        }
        other => anyhow::bail!("unknown outcome {other}"),
    };
    Ok(regatta_checker::Op {
        client: u32::try_from(u64_of(&v["client"], "client")?).context("client")?,
        key: str_of(&v["key"], "key")?,
        call,
        invoke: u64_of(&v["invoke"], "invoke")?,
        complete: u64_of(&v["complete"], "complete")?,
        outcome,
    })
}

/// Writes the history (`history.jsonl`) and the edge reads (`edge-reads.jsonl`) into `dir`,
/// one operation per line in invocation order.
pub fn write_record(dir: &Path, history: &History, reads: &[EdgeRead]) -> Result<()> {
    let mut ops: Vec<_> = history.ops.iter().collect();
    ops.sort_by_key(|op| op.invoke);
    let path = dir.join("history.jsonl");
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?,
    );
    for op in ops {
        let call = match &op.call {
            Call::Put { value } => json!({"op": "put", "value": text(value)}),
            Call::Get => json!({"op": "get"}),
            Call::Cas { expect, value } => {
                json!({"op": "cas", "expect": expect, "value": text(value)})
            }
        };
        let outcome = match &op.outcome {
            Outcome::Ok(Return::Put { revision }) => json!({"ok": {"revision": revision}}),
            Outcome::Ok(Return::Get {
                value,
                mod_revision,
            }) => {
                json!({"ok": {"value": value.as_deref().map(text), "mod_revision": mod_revision}})
            }
            Outcome::Ok(Return::Cas {
                succeeded,
                revision,
            }) => json!({"ok": {"succeeded": succeeded, "revision": revision}}),
            Outcome::Failed => json!("failed"),
            Outcome::Unknown => json!("unknown"),
        };
        let line = json!({
            "client": op.client, "key": text(&op.key), "call": call,
            "invoke": op.invoke, "complete": op.complete, "outcome": outcome,
        });
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    let path = dir.join("edge-reads.jsonl");
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?,
    );
    for r in reads {
        let line = json!({
            "session": r.session, "key": text(&r.key), "invoke": r.invoke,
            "complete": r.complete, "value": r.value.as_deref().map(text),
            "mod_revision": r.mod_revision, "header_revision": r.header_revision,
        });
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(revision: u64, kvs: &[(&str, &str, u64)]) -> Snapshot {
        Snapshot {
            revision,
            kvs: kvs
                .iter()
                .map(|(k, v, r)| (k.as_bytes().to_vec(), (v.as_bytes().to_vec(), *r)))
                .collect(),
        }
    }

    #[test]
    fn the_longest_outage_is_between_acknowledged_writes() {
        let op = |invoke, complete, outcome| regatta_checker::Op {
            client: 1,
            key: b"k".to_vec(),
            call: Call::Put { value: vec![] },
            invoke,
            complete,
            outcome,
        };
        let ok = || Outcome::Ok(Return::Put { revision: 1 });
        let history = History {
            ops: vec![
                op(0, 10, ok()),
                op(10, 0, Outcome::Unknown),
                op(12, 20, ok()),
                op(20, 90, ok()),
                op(90, 100, ok()),
            ],
        };
        assert_eq!(longest_write_outage(&history, 100), (20, 70));
        assert_eq!(
            longest_write_outage(&history, 300),
            (100, 200),
            "none at the end"
        );
        assert_eq!(longest_write_outage(&History::default(), 50), (0, 0));
    }

    #[test]
    fn staleness_is_how_long_a_newer_write_was_acknowledged_before_the_read() {
        let put = |revision, complete| regatta_checker::Op {
            client: 1,
            key: b"k".to_vec(),
            call: Call::Put { value: vec![] },
            invoke: 0,
            complete,
            outcome: Outcome::Ok(Return::Put { revision }),
        };
        let history = History {
            ops: vec![put(5, 100), put(6, 300), put(7, 200)],
        };
        let read = |invoke, header_revision| EdgeRead {
            session: 1,
            key: b"k".to_vec(),
            invoke,
            complete: invoke + 1,
            value: None,
            mod_revision: 0,
            header_revision,
        };
        let reads = [read(1_000, 7), read(1_000, 5), read(250, 4), read(50, 4)];
        assert_eq!(edge_staleness(&history, &reads), vec![0, 800, 150, 0]);
    }

    #[test]
    fn an_edge_converges_only_to_the_cores_state_at_its_revision() {
        let core = snap(10, &[("a", "x", 4), ("b", "y", 10)]);
        assert_eq!(compare(&core, &core.clone()), Convergence::Converged);
        assert_eq!(
            compare(&core, &snap(9, &[("a", "x", 4)])),
            Convergence::Behind
        );
        assert_eq!(compare(&core, &snap(11, &[])), Convergence::Ahead);
        let Convergence::Diverged(why) = compare(&core, &snap(10, &[("a", "x", 4)])) else {
            panic!("a missing key at the same revision is a divergence");
        };
        assert!(why.contains("b: core y@10 edge absent"), "{why}");
    }
}
