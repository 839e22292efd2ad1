//! What a run leaves for a person besides the raw record: `summary.json` (the run's
//! figures: operations checked by kind and outcome, faults injected by kind, run time,
//! verdict), `failure.txt` when it failed (the anomaly in words, the offending key's
//! operations around it one per line in time order, and the faults with their times so
//! the two line up), and the sum of many runs' summaries (`regatta-faults report DIR…`).
//!
//! Times are milliseconds from the run's origin, the clock of `history.jsonl` and of the
//! run's log (`[  12.34s]`).

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use regatta_checker::{
    Call, History, Op, Verdict, durability::Lost, history::Nanos, sessions::EdgeRead,
};
use regatta_cli::outln;
use serde_json::{Value, json};

/// A fault as it was played: when applied and healed, in ns from the run's origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultEvent {
    pub kind: &'static str,
    /// What was done, with the node it hit.
    pub what: String,
    pub applied: Nanos,
    pub healed: Nanos,
}

/// The figures of one run.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// `seed 5` or `scenario stuck-leader`.
    pub label: String,
    pub seed: u64,
    pub replay: String,
    /// Seconds the whole run took (cluster start to verdict).
    pub wall_s: f64,
    /// Operations of the checked history by (call, outcome).
    pub ops: BTreeMap<(&'static str, &'static str), u64>,
    pub edge_reads: usize,
    pub session_writes: usize,
    pub read_errors: BTreeMap<String, u64>,
    pub faults: BTreeMap<&'static str, u64>,
    /// Serializable edge reads' staleness ([`crate::verify::edge_staleness`]): the
    /// largest and the 99th percentile, ns.
    pub staleness: (Nanos, Nanos),
    /// The longest time without an acknowledged write: (from, length), ns.
    pub outage: (Nanos, Nanos),
    pub linearizable: String,
    pub anomalies: Vec<String>,
}

impl Summary {
    pub fn history_ops(&self) -> u64 {
        self.ops.values().sum()
    }

    pub fn print(&self) {
        outln!("---- summary ({}) ----", self.label);
        for ((call, outcome), n) in &self.ops {
            outln!("  {call:4} {outcome:8} {n}");
        }
        outln!(
            "  operations checked: {} in the history (linearizability, lost writes), {} \
             serializable edge reads (sessions); {} session writes",
            self.history_ops(),
            self.edge_reads,
            self.session_writes
        );
        outln!("  read errors (not judged): {:?}", self.read_errors);
        outln!(
            "  longest time without an acknowledged write: {:.1}s, from {:.1}s",
            self.outage.1 as f64 / 1e9,
            self.outage.0 as f64 / 1e9
        );
        outln!(
            "  serializable edge reads behind an acknowledged write by: at most {:.2}s, \
             p99 {:.2}s",
            self.staleness.0 as f64 / 1e9,
            self.staleness.1 as f64 / 1e9
        );
        let total: u64 = self.faults.values().sum();
        outln!("  faults injected: {total} {:?}", self.faults);
        outln!("  linearizable: {}", self.linearizable);
        outln!("  run time: {:.0}s", self.wall_s);
    }

    fn to_json(&self) -> Value {
        let ops: BTreeMap<String, u64> = self
            .ops
            .iter()
            .map(|((call, outcome), n)| (format!("{call} {outcome}"), *n))
            .collect();
        json!({
            "label": self.label, "seed": self.seed, "replay": self.replay,
            "wall_s": self.wall_s, "ops": ops, "edge_reads": self.edge_reads,
            "session_writes": self.session_writes, "read_errors": self.read_errors,
            "faults": self.faults, "outage_from_s": self.outage.0 as f64 / 1e9,
            "outage_s": self.outage.1 as f64 / 1e9,
            "staleness_max_s": self.staleness.0 as f64 / 1e9,
            "staleness_p99_s": self.staleness.1 as f64 / 1e9, "linearizable": self.linearizable,
            "anomalies": self.anomalies,
        })
    }

    /// Writes `summary.json` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join("summary.json");
        std::fs::write(&path, format!("{:#}\n", self.to_json()))
            .with_context(|| format!("writing {}", path.display()))
    }
}

/// The sum of the summaries found in `dirs` (each a run directory, or a directory of run
/// directories), in words.
pub fn aggregate(dirs: &[PathBuf]) -> Result<String> {
    let mut files = Vec::new();
    for dir in dirs {
        if dir.join("summary.json").is_file() {
            files.push(dir.join("summary.json"));
            continue;
        }
        let entries = std::fs::read_dir(dir).with_context(|| format!("{}", dir.display()))?;
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("summary.json"))
            .filter(|p| p.is_file())
            .collect();
        found.sort();
        files.extend(found);
    }
    let mut runs = 0;
    let mut failed = Vec::new();
    let mut wall = 0.0;
    let mut ops: BTreeMap<String, u64> = BTreeMap::new();
    let mut faults: BTreeMap<String, u64> = BTreeMap::new();
    let (mut edge_reads, mut longest) = (0, (0.0, String::new()));
    let mut stalest = (0.0, String::new());
    for file in &files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let s: Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
        runs += 1;
        wall += s["wall_s"].as_f64().unwrap_or(0.0);
        edge_reads += s["edge_reads"].as_u64().unwrap_or(0);
        let label = s["label"].as_str().unwrap_or("?").to_string();
        if s["anomalies"].as_array().is_some_and(|a| !a.is_empty()) {
            failed.push(label.clone());
        }
        let outage = s["outage_s"].as_f64().unwrap_or(0.0);
        if outage > longest.0 {
            longest = (outage, label.clone());
        }
        let stale = s["staleness_max_s"].as_f64().unwrap_or(0.0);
        if stale > stalest.0 {
            stalest = (stale, label);
        }
        for (map, field) in [(&mut ops, "ops"), (&mut faults, "faults")] {
            for (k, v) in s[field].as_object().into_iter().flatten() {
                *map.entry(k.clone()).or_default() += v.as_u64().unwrap_or(0);
            }
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "runs: {runs} ({} passed, {} failed{}), run time {:.1} min",
        runs - failed.len(),
        failed.len(),
        if failed.is_empty() {
            String::new()
        } else {
            format!(": {}", failed.join(", "))
        },
        wall / 60.0
    );
    let history: u64 = ops.values().sum();
    let _ = writeln!(
        out,
        "operations checked: {} ({history} in histories, {edge_reads} serializable edge reads)",
        history + edge_reads
    );
    for (k, n) in &ops {
        let _ = writeln!(out, "  {k:16} {n}");
    }
    let _ = writeln!(out, "faults injected: {}", faults.values().sum::<u64>());
    for (k, n) in &faults {
        let _ = writeln!(out, "  {k:26} {n}");
    }
    let _ = writeln!(
        out,
        "longest time without an acknowledged write: {:.1}s ({})",
        longest.0, longest.1
    );
    let _ = writeln!(
        out,
        "stalest serializable edge read: {:.2}s behind an acknowledged write ({})",
        stalest.0, stalest.1
    );
    Ok(out)
}

/// What a failing run hands to `failure.txt`.
pub struct Failure<'a> {
    pub summary: &'a Summary,
    pub run_dir: &'a Path,
    pub history: &'a History,
    pub edge_reads: &'a [EdgeRead],
    pub faults: &'a [FaultEvent],
    pub verdict: &'a Verdict,
    pub lost: &'a [Lost],
    /// A bound on the write outage that was broken: the bound, ns.
    pub outage_bound: Option<Nanos>,
}

/// How much of a key's history a listing shows around an anomaly, ns.
const BEFORE: Nanos = 1_500_000_000;
const AFTER: Nanos = 500_000_000;
/// At most this many lines per listing (the first ones are dropped).
const MAX_LINES: usize = 400;

/// Writes `failure.txt` into the run directory; its path.
pub fn write_failure(f: &Failure<'_>) -> Result<PathBuf> {
    let mut out = String::new();
    let s = f.summary;
    let _ = writeln!(out, "FAIL {} (clients seeded with {})", s.label, s.seed);
    let _ = writeln!(out, "replay: {}", s.replay);
    let _ = writeln!(out, "run directory: {}", f.run_dir.display());
    let _ = writeln!(
        out,
        "times: ms from the run's origin (the clock of history.jsonl and of the run's log)"
    );
    let _ = writeln!(
        out,
        "an operation: invoked .. answered (blank: no answer)  client  call -> outcome"
    );
    let _ = writeln!(out, "\n== anomalies ({})", s.anomalies.len());
    for a in &s.anomalies {
        let _ = writeln!(out, "- {a}");
    }
    let _ = writeln!(out, "\n== faults");
    for e in f.faults {
        let _ = writeln!(
            out,
            "{:9.1} ms .. {:9.1} ms  {}",
            e.applied as f64 / 1e6,
            e.healed as f64 / 1e6,
            e.what
        );
    }

    if let Verdict::Violation { key, ops, longest } = f.verdict {
        let mut unexplained: Vec<&Op> = (0..ops.len())
            .filter(|i| !longest.contains(i))
            .map(|i| &ops[i])
            .collect();
        unexplained.sort_by_key(|op| op.invoke);
        unexplained.truncate(4);
        let anchor = unexplained.first().map_or(0, |op| op.invoke);
        // The writes of the values the unexplained reads returned, wherever they are.
        let read_values: BTreeSet<&[u8]> = unexplained
            .iter()
            .filter_map(|op| match &op.outcome {
                regatta_checker::Outcome::Ok(regatta_checker::Return::Get {
                    value: Some(v),
                    ..
                }) => Some(v.as_slice()),
                _ => None,
            })
            .collect();
        let _ = writeln!(
            out,
            "\n== key {}: not linearizable. `>>` the first operations no order explains, \
             `w ` the writes of the values they read; {:.1} s before to {:.1} s after",
            String::from_utf8_lossy(key),
            BEFORE as f64 / 1e9,
            AFTER as f64 / 1e9
        );
        let key_ops: Vec<&Op> = f.history.ops.iter().filter(|op| op.key == *key).collect();
        let listing = listing(
            &key_ops,
            f.faults,
            |op| {
                if unexplained.contains(&op) {
                    Some(">>")
                } else if op.write().is_some_and(|(v, _)| read_values.contains(v)) {
                    Some("w ")
                } else {
                    None
                }
            },
            anchor.saturating_sub(BEFORE),
            anchor + AFTER,
        );
        out.push_str(&listing);
    }

    for lost in f.lost {
        let acked = f
            .history
            .ops
            .iter()
            .filter(|op| op.key == lost.key)
            .find(|op| op.write().is_some_and(|(v, _)| v == lost.value.as_slice()));
        let anchor = acked.map_or(0, |op| op.complete);
        let _ = writeln!(
            out,
            "\n== key {}: acknowledged write {}@{} lost (the key holds {:?}@{} at the end); \
             `>>` the write",
            String::from_utf8_lossy(&lost.key),
            String::from_utf8_lossy(&lost.value),
            lost.revision,
            lost.found.value.as_deref().map(String::from_utf8_lossy),
            lost.found.mod_revision
        );
        let key_ops: Vec<&Op> = f
            .history
            .ops
            .iter()
            .filter(|op| op.key == lost.key)
            .collect();
        let mark = |op: &Op| acked.filter(|a| *a == op).map(|_| ">>");
        out.push_str(&listing(
            &key_ops,
            f.faults,
            mark,
            anchor.saturating_sub(BEFORE),
            anchor + AFTER,
        ));
    }

    if let Some(bound) = f.outage_bound {
        let (from, length) = s.outage;
        let _ = writeln!(
            out,
            "\n== no write acknowledged for {:.1} s from {:.1} ms (bound {:.1} s): the writes \
             of every key from 0.3 s before to 0.3 s after",
            length as f64 / 1e9,
            from as f64 / 1e6,
            bound as f64 / 1e9
        );
        let writes: Vec<&Op> = f
            .history
            .ops
            .iter()
            .filter(|op| op.call != Call::Get)
            .collect();
        out.push_str(&listing(
            &writes,
            f.faults,
            |_| None,
            from.saturating_sub(300_000_000),
            from + length + 300_000_000,
        ));
    }

    if s.anomalies.iter().any(|a| a.starts_with("edge session")) {
        let _ = writeln!(
            out,
            "\n== edge sessions: every serializable edge read is in edge-reads.jsonl; the \
             first of each session:"
        );
        let mut sessions = BTreeSet::new();
        for r in f.edge_reads {
            if sessions.insert(r.session) {
                let _ = writeln!(out, "   {r}");
            }
        }
    }
    let _ = writeln!(
        out,
        "\nnode logs: {}/<node>.log; the whole history: history.jsonl",
        f.run_dir.display()
    );
    let path = f.run_dir.join("failure.txt");
    std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// `ops` invoked in `from..=to` and the fault events in that span, one a line in time
/// order; `mark` flags lines (two characters).
fn listing<'a>(
    ops: &[&'a Op],
    faults: &[FaultEvent],
    mark: impl Fn(&'a Op) -> Option<&'static str>,
    from: Nanos,
    to: Nanos,
) -> String {
    // (time, order at equal times, line)
    let mut lines: Vec<(Nanos, u8, String)> = Vec::new();
    for op in ops {
        let marked = mark(op);
        if (from..=to).contains(&op.invoke) || marked.is_some() {
            lines.push((op.invoke, 1, format!("{} {op}", marked.unwrap_or("  "))));
        }
    }
    for e in faults {
        for (at, what) in [(e.applied, "fault applied"), (e.healed, "healed")] {
            if (from..=to).contains(&at) {
                let line = format!("-- {:9.1} ms  {what}: {}", at as f64 / 1e6, e.what);
                lines.push((at, 0, line));
            }
        }
    }
    lines.sort_by_key(|(at, order, _)| (*at, *order));
    let skipped = lines.len().saturating_sub(MAX_LINES);
    let mut out = String::new();
    if skipped > 0 {
        let _ = writeln!(out, "   ({skipped} earlier lines left out)");
    }
    for (_, _, line) in lines.into_iter().skip(skipped) {
        let _ = writeln!(out, "{line}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use regatta_checker::{Outcome, Return};

    fn put(client: u32, invoke: Nanos, value: &str) -> Op {
        Op {
            client,
            key: b"k0".to_vec(),
            call: Call::Put {
                value: value.as_bytes().to_vec(),
            },
            invoke,
            complete: invoke + 2_000_000,
            outcome: Outcome::Ok(Return::Put { revision: 3 }),
        }
    }

    #[test]
    fn a_failure_names_the_stale_read_and_the_write_it_missed() {
        let read = |client, invoke, value: &str, mod_revision| Op {
            client,
            key: b"k0".to_vec(),
            call: Call::Get,
            invoke,
            complete: invoke + 1_000_000,
            outcome: Outcome::Ok(Return::Get {
                value: Some(value.as_bytes().to_vec()),
                mod_revision,
            }),
        };
        let mut old = put(1, 1_000_000_000, "v1-c1");
        old.outcome = Outcome::Ok(Return::Put { revision: 2 });
        let mut new = put(2, 2_000_000_000, "v2-c2");
        new.outcome = Outcome::Ok(Return::Put { revision: 5 });
        let history = History {
            ops: vec![
                old,
                new,
                read(3, 2_100_000_000, "v2-c2", 5),
                read(4, 2_200_000_000, "v1-c1", 2),
            ],
        };
        let verdict = regatta_checker::check(&history, regatta_checker::Budget::default());
        assert!(!verdict.is_linearizable());
        let dir =
            std::env::temp_dir().join(format!("regatta-faults-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let summary = Summary {
            label: "seed 7".into(),
            replay: "regatta-faults run --seed 7".into(),
            anomalies: vec!["not linearizable on key k0".into()],
            ..Summary::default()
        };
        let faults = [FaultEvent {
            kind: "isolate-follower",
            what: "isolate follower #0: core2".into(),
            applied: 1_500_000_000,
            healed: 4_000_000_000,
        }];
        let path = write_failure(&Failure {
            summary: &summary,
            run_dir: &dir,
            history: &history,
            edge_reads: &[],
            faults: &faults,
            verdict: &verdict,
            lost: &[],
            outage_bound: None,
        })
        .expect("failure.txt written");
        let text = std::fs::read_to_string(&path).expect("failure.txt");
        std::fs::remove_dir_all(&dir).expect("cleaned up");
        assert!(
            text.contains("replay: regatta-faults run --seed 7"),
            "{text}"
        );
        let lines: Vec<&str> = text.lines().collect();
        // The first line that starts with `prefix` (a mark) and holds `needle`.
        let at = |prefix: &str, needle: &str| {
            lines
                .iter()
                .position(|l| l.starts_with(prefix) && l.contains(needle))
                .unwrap_or_else(|| panic!("{prefix}…{needle} missing from\n{text}"))
        };
        // In time order: the old write (whose value the stale read returned), the fault,
        // the new write, the fresh read, the stale read.
        let order = [
            at("w  ", "put k0=v1-c1 -> ok@2"),
            at("-- ", "fault applied: isolate follower #0: core2"),
            at("   ", "put k0=v2-c2"),
            at("   ", "get k0 -> v2-c2@5"),
            at(">> ", "client 4    get k0 -> v1-c1@2"),
        ];
        assert!(order.windows(2).all(|p| p[0] < p[1]), "{order:?}\n{text}");
    }

    #[test]
    fn a_listing_interleaves_operations_and_faults_in_time_order() {
        let a = put(1, 10_000_000, "a");
        let b = put(2, 30_000_000, "b");
        let far = put(3, 9_000_000_000, "far");
        let fault = FaultEvent {
            kind: "pause",
            what: "SIGSTOP Leader: core2".into(),
            applied: 20_000_000,
            healed: 5_000_000_000,
        };
        let text = listing(
            &[&b, &far, &a],
            &[fault],
            |op| (op.client == 2).then_some(">>"),
            0,
            100_000_000,
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].contains("put k0=a"), "{text}");
        assert!(lines[1].starts_with("--") && lines[1].contains("core2"));
        assert!(lines[2].starts_with(">>") && lines[2].contains("put k0=b -> ok@3"));
    }
}
