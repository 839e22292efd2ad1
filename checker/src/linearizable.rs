//! Whether each key's operations are linearizable: is there one order of them, consistent
//! with real time (an operation answered before another was invoked comes first) and with
//! [`crate::model`], that explains every answer?
//!
//! The search is the Wing–Gong backtracking search with two well-known improvements: it
//! only considers an operation for the next place in the order when every operation that
//! finished before its invocation is already placed (walking a list of invocation and
//! answer events in time order, "just-in-time" linearization), and it remembers every
//! (set of placed operations, state) pair already explored, so it never explores one
//! twice. Keys are independent (the model is per key), so each is searched alone; a
//! history of many keys stays cheap.
//!
//! Events at the same instant are ordered invocations first, so operations that touch in
//! time count as concurrent: a coarse clock can only make the check more lenient.

use std::collections::HashSet;

use crate::{
    history::{History, Op, Outcome},
    model::{KeyState, step},
};

/// How much work one key may take before the check gives up on it.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Search steps per key.
    pub steps_per_key: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            steps_per_key: 5_000_000,
        }
    }
}

/// The judgement of a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every key's operations have a linearization.
    Linearizable { keys: usize, ops: usize },
    /// One key's operations have none. `ops` are that key's operations (failed ones and
    /// unanswered reads left out); `longest` is the longest order of them the search could
    /// explain, as indices into `ops` — the operation after it is where things went wrong.
    Violation {
        key: Vec<u8>,
        ops: Vec<Op>,
        longest: Vec<usize>,
    },
    /// The search ran out of budget on this key: neither proven nor refuted.
    Inconclusive { key: Vec<u8>, ops: usize },
}

impl Verdict {
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Self::Linearizable { .. })
    }
}

/// Checks every key of `history`. The first key with a violation decides (keys are
/// searched in order); a key out of budget is reported only when no key is violated.
pub fn check(history: &History, budget: Budget) -> Verdict {
    let mut inconclusive = None;
    let mut ops_total = 0;
    let keys = history.by_key();
    let key_count = keys.len();
    for (key, ops) in keys {
        // Failed operations took no effect, and an unanswered read tells nothing.
        let ops: Vec<Op> = ops
            .into_iter()
            .filter(|op| match op.outcome {
                Outcome::Failed => false,
                Outcome::Unknown => op.call != crate::history::Call::Get,
                Outcome::Ok(_) => true,
            })
            .cloned()
            .collect();
        ops_total += ops.len();
        if found_by_widening(&ops, budget.steps_per_key) {
            continue;
        }
        match search(&ops, budget.steps_per_key) {
            Search::Found => {}
            Search::Impossible { longest } => {
                return Verdict::Violation {
                    key: key.to_vec(),
                    ops,
                    longest,
                };
            }
            Search::OutOfBudget => {
                inconclusive.get_or_insert(Verdict::Inconclusive {
                    key: key.to_vec(),
                    ops: ops.len(),
                });
            }
        }
    }
    inconclusive.unwrap_or(Verdict::Linearizable {
        keys: key_count,
        ops: ops_total,
    })
}

/// The first window of time before a point the search got stuck at whose left-out writes
/// are brought back; it doubles each time that is not enough.
const FIRST_WINDOW_NS: u64 = 2_000_000_000;

/// Looks for a linearization of `ops` with as few as possible of the unanswered writes no
/// read returned (see [`unread_unanswered_writes`]): first with none of them, then,
/// each time the search gets stuck, with those invoked in a window before the point it got
/// stuck at (the earliest answer it could not reach), the window doubling until it covers
/// the history. Each such write doubles the orders a search may have to consider, and a run
/// with faults leaves hundreds; a compare-and-set that did not hold usually needs one or
/// two of them, near it. Only a shortcut to "linearizable": false means "not shown", and
/// the caller then searches all of `ops`.
fn found_by_widening(ops: &[Op], max_steps: u64) -> bool {
    let unread = unread_unanswered_writes(ops);
    if !unread.iter().any(|&u| u) {
        return false;
    }
    let mut included: Vec<bool> = unread.iter().map(|&u| !u).collect();
    let mut window = FIRST_WINDOW_NS;
    loop {
        let index: Vec<usize> = (0..ops.len()).filter(|&i| included[i]).collect();
        let subset: Vec<Op> = index.iter().map(|&i| ops[i].clone()).collect();
        let longest = match search(&subset, max_steps) {
            Search::Found => return true,
            Search::OutOfBudget => return false,
            Search::Impossible { longest } => longest,
        };
        let placed: HashSet<usize> = longest.into_iter().collect();
        let deadlines = effect_deadlines(&subset);
        let stuck = (0..subset.len())
            .filter(|i| !placed.contains(i))
            .map(|i| deadlines[i])
            .min()
            .unwrap_or(u64::MAX);
        let mut added = false;
        while !added {
            let from = stuck.saturating_sub(window);
            for i in 0..ops.len() {
                if !included[i] && ops[i].invoke >= from && ops[i].invoke <= stuck {
                    included[i] = true;
                    added = true;
                }
            }
            if !added && from == 0 {
                return false;
            }
            window = window.saturating_mul(2);
        }
    }
}

/// Which of `ops` are unanswered writes whose value no read returned. A linearization of
/// the others is one of `ops` too: such a write can take effect after every other
/// operation (or, a compare-and-set, not hold), where it explains nothing and contradicts
/// nothing. Leaving them out is so a shortcut to "linearizable" only: they may be what
/// explains a compare-and-set that did not hold.
fn unread_unanswered_writes(ops: &[Op]) -> Vec<bool> {
    let read: HashSet<&[u8]> = ops
        .iter()
        .filter_map(|op| match &op.outcome {
            Outcome::Ok(crate::history::Return::Get {
                value: Some(value), ..
            }) => Some(value.as_slice()),
            _ => None,
        })
        .collect();
    ops.iter()
        .map(|op| match (&op.outcome, &op.call) {
            (
                Outcome::Unknown,
                crate::history::Call::Put { value } | crate::history::Call::Cas { value, .. },
            ) => !read.contains(value.as_slice()),
            _ => false,
        })
        .collect()
}

enum Search {
    Found,
    Impossible { longest: Vec<usize> },
    OutOfBudget,
}

/// An invocation or an answer, in the time-ordered event list.
#[derive(Debug, Clone, Copy)]
struct Event {
    op: usize,
    is_call: bool,
}

/// The events still to be placed, as a doubly linked list over indices; index 0 is the
/// head sentinel, event `i` of `events` lives at `i + 1`.
struct Events {
    events: Vec<Event>,
    prev: Vec<usize>,
    next: Vec<usize>,
    /// For each operation, the list index of its answer.
    answer_at: Vec<usize>,
}

const END: usize = usize::MAX;

/// When each operation must have taken effect by: its answer, or for an unanswered write
/// the answer of the first read that returned its value (values are unique, so the write
/// came before that read, which came before its own answer); never, for an unanswered
/// write no read returned. Bounding those writes keeps them from staying open to the end
/// of the history, where each one multiplies the orders the search must consider; it
/// excludes no valid linearization.
fn effect_deadlines(ops: &[Op]) -> Vec<u64> {
    let mut first_read: std::collections::HashMap<&[u8], u64> = std::collections::HashMap::new();
    for op in ops {
        if let Outcome::Ok(crate::history::Return::Get {
            value: Some(value), ..
        }) = &op.outcome
        {
            let at = first_read.entry(value.as_slice()).or_insert(op.complete);
            *at = (*at).min(op.complete);
        }
    }
    ops.iter()
        .map(|op| match (&op.outcome, &op.call) {
            (
                Outcome::Unknown,
                crate::history::Call::Put { value } | crate::history::Call::Cas { value, .. },
            ) => first_read
                .get(value.as_slice())
                .copied()
                .unwrap_or(u64::MAX),
            (Outcome::Unknown, _) => u64::MAX,
            _ => op.complete,
        })
        .collect()
}

impl Events {
    fn new(ops: &[Op]) -> Self {
        let deadlines = effect_deadlines(ops);
        let mut timed: Vec<(u64, bool, Event)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            let answered = deadlines[i];
            timed.push((
                op.invoke,
                false,
                Event {
                    op: i,
                    is_call: true,
                },
            ));
            timed.push((
                answered,
                true,
                Event {
                    op: i,
                    is_call: false,
                },
            ));
        }
        // At equal times invocations (false) sort before answers (true).
        timed.sort_by_key(|(t, is_answer, e)| (*t, *is_answer, e.op));
        let events: Vec<Event> = timed.into_iter().map(|(_, _, e)| e).collect();
        let n = events.len();
        let mut answer_at = vec![0; ops.len()];
        for (i, e) in events.iter().enumerate() {
            if !e.is_call {
                answer_at[e.op] = i + 1;
            }
        }
        Self {
            prev: (0..=n).map(|i| i.wrapping_sub(1)).collect(),
            next: (0..=n).map(|i| if i == n { END } else { i + 1 }).collect(),
            events,
            answer_at,
        }
    }

    fn first(&self) -> usize {
        self.next[0]
    }

    fn event(&self, at: usize) -> Event {
        self.events[at - 1]
    }

    fn unlink(&mut self, at: usize) {
        let (p, n) = (self.prev[at], self.next[at]);
        self.next[p] = n;
        if n != END {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, at: usize) {
        let (p, n) = (self.prev[at], self.next[at]);
        self.next[p] = at;
        if n != END {
            self.prev[n] = at;
        }
    }

    /// Takes an operation's invocation (at `call`) and its answer out of the list.
    fn lift(&mut self, call: usize) {
        let answer = self.answer_at[self.event(call).op];
        self.unlink(call);
        self.unlink(answer);
    }

    /// Puts them back, in the reverse order of [`Self::lift`].
    fn unlift(&mut self, call: usize) {
        let answer = self.answer_at[self.event(call).op];
        self.relink(answer);
        self.relink(call);
    }
}

/// Which operations are placed in the order so far.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Placed(Vec<u64>);

impl Placed {
    fn new(n: usize) -> Self {
        Self(vec![0; n.div_ceil(64)])
    }
    fn with(&self, op: usize) -> Self {
        let mut more = self.clone();
        more.0[op / 64] |= 1 << (op % 64);
        more
    }
    fn without(&mut self, op: usize) {
        self.0[op / 64] &= !(1 << (op % 64));
    }
}

/// One placed operation: where its invocation was in the list, the state before it, and
/// the next of its possible outcomes to try on backtracking.
struct Frame {
    call: usize,
    before: KeyState,
    next_branch: usize,
}

fn search(ops: &[Op], max_steps: u64) -> Search {
    let mut events = Events::new(ops);
    let mut placed = Placed::new(ops.len());
    let mut seen: HashSet<(Placed, KeyState)> = HashSet::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut longest: Vec<usize> = Vec::new();
    let mut state = KeyState::absent();
    let mut at = events.first();
    let mut branch = 0;
    let mut steps = 0u64;
    loop {
        if at == END {
            // Only reachable with the list empty: every operation placed.
            return Search::Found;
        }
        steps += 1;
        if steps > max_steps {
            return Search::OutOfBudget;
        }
        let event = events.event(at);
        if event.is_call {
            let op = &ops[event.op];
            let answer = match &op.outcome {
                Outcome::Ok(ret) => Some(ret),
                _ => None,
            };
            let outcomes = step(&state, &op.call, answer);
            let mut moved = false;
            for (b, after) in outcomes.into_iter().enumerate().skip(branch) {
                let more = placed.with(event.op);
                if seen.insert((more.clone(), after.clone())) {
                    stack.push(Frame {
                        call: at,
                        before: std::mem::replace(&mut state, after),
                        next_branch: b + 1,
                    });
                    placed = more;
                    events.lift(at);
                    if stack.len() > longest.len() {
                        longest = stack.iter().map(|f| events.event(f.call).op).collect();
                    }
                    at = events.first();
                    moved = true;
                    break;
                }
            }
            branch = 0;
            if !moved {
                at = events.next[at];
            }
        } else {
            // An answer reached before its operation was placed: undo the last placement.
            let Some(frame) = stack.pop() else {
                return Search::Impossible { longest };
            };
            events.unlift(frame.call);
            placed.without(events.event(frame.call).op);
            state = frame.before;
            at = frame.call;
            branch = frame.next_branch;
        }
        if events.first() == END {
            return Search::Found;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Call, Return};

    struct Builder {
        history: History,
    }

    impl Builder {
        fn new() -> Self {
            Self {
                history: History::default(),
            }
        }
        fn op(mut self, client: u32, call: Call, t: (u64, u64), outcome: Outcome) -> Self {
            self.history.push(Op {
                client,
                key: b"k".to_vec(),
                call,
                invoke: t.0,
                complete: t.1,
                outcome,
            });
            self
        }
        fn put(self, c: u32, v: &str, t: (u64, u64), rev: u64) -> Self {
            let call = Call::Put {
                value: v.as_bytes().to_vec(),
            };
            self.op(c, call, t, Outcome::Ok(Return::Put { revision: rev }))
        }
        fn put_unknown(self, c: u32, v: &str, at: u64) -> Self {
            let call = Call::Put {
                value: v.as_bytes().to_vec(),
            };
            self.op(c, call, (at, 0), Outcome::Unknown)
        }
        fn get(self, c: u32, v: Option<&str>, rev: u64, t: (u64, u64)) -> Self {
            let ret = Return::Get {
                value: v.map(|v| v.as_bytes().to_vec()),
                mod_revision: rev,
            };
            self.op(c, Call::Get, t, Outcome::Ok(ret))
        }
        fn cas(self, c: u32, expect: u64, v: &str, t: (u64, u64), ok: bool, rev: u64) -> Self {
            let call = Call::Cas {
                expect,
                value: v.as_bytes().to_vec(),
            };
            let ret = Return::Cas {
                succeeded: ok,
                revision: rev,
            };
            self.op(c, call, t, Outcome::Ok(ret))
        }
        fn verdict(self) -> Verdict {
            self.history.validate().expect("a well-formed history");
            check(&self.history, Budget::default())
        }
    }

    #[test]
    fn a_sequential_history_is_linearizable() {
        let v = Builder::new()
            .get(1, None, 0, (0, 1))
            .put(1, "a", (2, 3), 1)
            .get(2, Some("a"), 1, (4, 5))
            .put(2, "b", (6, 7), 2)
            .get(1, Some("b"), 2, (8, 9))
            .verdict();
        assert_eq!(v, Verdict::Linearizable { keys: 1, ops: 5 });
    }

    #[test]
    fn a_stale_read_after_a_newer_write_is_caught() {
        let v = Builder::new()
            .put(1, "a", (0, 1), 1)
            .put(1, "b", (2, 3), 2)
            .get(2, Some("a"), 1, (4, 5))
            .verdict();
        let Verdict::Violation { longest, ops, .. } = v else {
            panic!("a stale read passed: {v:?}")
        };
        assert_eq!(ops.len(), 3);
        assert_eq!(longest, vec![0, 1], "explained up to the stale read");
    }

    #[test]
    fn concurrent_operations_may_take_effect_in_either_order() {
        // The read overlaps the write: old or new value are both right.
        for seen in [None, Some("a")] {
            let rev = if seen.is_some() { 1 } else { 0 };
            let v = Builder::new()
                .put(1, "a", (0, 10), 1)
                .get(2, seen, rev, (1, 2))
                .verdict();
            assert!(v.is_linearizable(), "{seen:?}: {v:?}");
        }
        // But two reads in sequence cannot see the new value and then the old one.
        let v = Builder::new()
            .put(1, "a", (0, 10), 1)
            .get(2, Some("a"), 1, (1, 2))
            .get(2, None, 0, (3, 4))
            .verdict();
        assert!(!v.is_linearizable(), "{v:?}");
    }

    #[test]
    fn an_unanswered_write_may_land_late_or_never() {
        let never = Builder::new()
            .put_unknown(1, "a", 0)
            .get(2, None, 0, (5, 6))
            .get(2, None, 0, (7, 8))
            .verdict();
        assert!(never.is_linearizable(), "{never:?}");
        let late = Builder::new()
            .put_unknown(1, "a", 0)
            .get(2, None, 0, (5, 6))
            .get(2, Some("a"), 4, (7, 8))
            .verdict();
        assert!(late.is_linearizable(), "{late:?}");
        let undone = Builder::new()
            .put_unknown(1, "a", 0)
            .get(2, Some("a"), 4, (5, 6))
            .get(2, None, 0, (7, 8))
            .verdict();
        assert!(
            !undone.is_linearizable(),
            "a write seen and then lost: {undone:?}"
        );
    }

    #[test]
    fn many_unanswered_writes_nobody_read_cost_little() {
        // 40 writes in flight forever, none read: 2^40 subsets for a plain search.
        let mut b = Builder::new().put(1, "a", (0, 1), 1);
        for c in 0..40 {
            b = b.put_unknown(10 + c, &format!("lost{c}"), 2 + u64::from(c));
        }
        let h = b
            .get(2, Some("a"), 1, (50, 51))
            .put(2, "b", (52, 53), 60)
            .get(2, Some("b"), 60, (54, 55))
            .history;
        let v = check(
            &h,
            Budget {
                steps_per_key: 10_000,
            },
        );
        assert!(v.is_linearizable(), "{v:?}");
        // A wrong read is still caught (with few unanswered writes, so that the whole
        // search, which a violation needs, ends quickly).
        let mut wrong = h.clone();
        wrong.ops.retain(|op| match &op.call {
            Call::Put { value } => value.len() == 5 || !value.starts_with(b"lost"),
            _ => true,
        });
        wrong.push(Op {
            client: 3,
            key: b"k".to_vec(),
            call: Call::Get,
            invoke: 56,
            complete: 57,
            outcome: Outcome::Ok(Return::Get {
                value: Some(b"a".to_vec()),
                mod_revision: 1,
            }),
        });
        assert!(wrong.ops.len() < 20, "{}", wrong.ops.len());
        let v = check(&wrong, Budget::default());
        assert!(matches!(v, Verdict::Violation { .. }), "{v:?}");
    }

    #[test]
    fn many_unanswered_writes_that_were_read_cost_little() {
        // 40 unanswered writes, each read once soon after it was sent and then overwritten:
        // open to the end of the history they make a search of 2^40 orders; bounded by
        // their reads, a few steps each.
        let mut b = Builder::new();
        for c in 0..40u64 {
            let t = c * 100;
            let client = u32::try_from(c).expect("small");
            b = b.put_unknown(100 + client, &format!("u{c}"), t).get(
                1,
                Some(&format!("u{c}")),
                t + 1,
                (t + 10, t + 11),
            );
        }
        let h = b.history;
        let v = check(
            &h,
            Budget {
                steps_per_key: 20_000,
            },
        );
        assert!(v.is_linearizable(), "{v:?}");
        // Reading the first value again after the last one was read is still caught.
        let mut wrong = h.clone();
        wrong.push(Op {
            client: 2,
            key: b"k".to_vec(),
            call: Call::Get,
            invoke: 5_000,
            complete: 5_001,
            outcome: Outcome::Ok(Return::Get {
                value: Some(b"u0".to_vec()),
                mod_revision: 1,
            }),
        });
        let v = check(
            &wrong,
            Budget {
                steps_per_key: 1_000_000,
            },
        );
        assert!(matches!(v, Verdict::Violation { .. }), "{v:?}");
    }

    #[test]
    fn a_failed_write_must_not_be_seen() {
        let mut b = Builder::new().op(
            1,
            Call::Put {
                value: b"a".to_vec(),
            },
            (0, 1),
            Outcome::Failed,
        );
        b = b.get(2, Some("a"), 1, (2, 3));
        assert!(!b.verdict().is_linearizable());
    }

    #[test]
    fn two_compare_and_sets_from_one_revision_cannot_both_hold() {
        let v = Builder::new()
            .put(1, "a", (0, 1), 1)
            .cas(1, 1, "b", (2, 10), true, 2)
            .cas(2, 1, "c", (2, 10), true, 3)
            .verdict();
        assert!(!v.is_linearizable(), "{v:?}");
        let v = Builder::new()
            .put(1, "a", (0, 1), 1)
            .cas(1, 1, "b", (2, 10), true, 2)
            .cas(2, 1, "c", (2, 10), false, 2)
            .get(3, Some("b"), 2, (11, 12))
            .verdict();
        assert!(v.is_linearizable(), "{v:?}");
    }

    #[test]
    fn revisions_must_grow_in_real_time_order() {
        let v = Builder::new()
            .put(1, "a", (0, 1), 5)
            .put(2, "b", (2, 3), 3)
            .verdict();
        assert!(!v.is_linearizable(), "{v:?}");
    }

    #[test]
    fn keys_are_judged_apart() {
        let mut h = Builder::new().put(1, "a", (0, 1), 1).history;
        h.push(Op {
            client: 2,
            key: b"other".to_vec(),
            call: Call::Get,
            invoke: 2,
            complete: 3,
            outcome: Outcome::Ok(Return::Get {
                value: None,
                mod_revision: 0,
            }),
        });
        assert_eq!(
            check(&h, Budget::default()),
            Verdict::Linearizable { keys: 2, ops: 2 }
        );
    }

    /// A register run by a simulated correct store with many overlapping clients: the
    /// history passes, and changing one read's answer makes it fail.
    #[test]
    fn a_large_correct_history_passes_and_one_wrong_read_fails() {
        // Each client issues operations back to back; every operation takes effect at a
        // point inside its interval, in a global sequence.
        let clients = 8u32;
        let per_client = 60u64;
        let mut effects: Vec<(u64, u32, u64)> = Vec::new(); // (effect time, client, seq)
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut intervals = Vec::new();
        for c in 0..clients {
            let mut t = rand() % 50;
            for s in 0..per_client {
                let len = 10 + rand() % 200;
                let effect = t + 1 + rand() % (len - 1);
                intervals.push((c, s, t, t + len));
                effects.push((effect, c, s));
                t += len + 1 + rand() % 20;
            }
        }
        effects.sort();
        let mut value: Option<Vec<u8>> = None;
        let mut revision = 0;
        let mut history = History::default();
        let mut reads = Vec::new();
        for (_, c, s) in &effects {
            let (_, _, invoke, complete) = intervals
                .iter()
                .find(|(ic, is, _, _)| ic == c && is == s)
                .copied()
                .expect("interval");
            let (call, ret) = if (c + *s as u32).is_multiple_of(3) {
                revision += 1;
                value = Some(format!("{c}-{s}").into_bytes());
                let call = Call::Put {
                    value: value.clone().expect("set"),
                };
                (call, Return::Put { revision })
            } else {
                reads.push(history.ops.len());
                let ret = Return::Get {
                    value: value.clone(),
                    mod_revision: revision,
                };
                (Call::Get, ret)
            };
            history.push(Op {
                client: *c,
                key: b"k".to_vec(),
                call,
                invoke,
                complete,
                outcome: Outcome::Ok(ret),
            });
        }
        history.validate().expect("well formed");
        let verdict = check(&history, Budget::default());
        assert!(verdict.is_linearizable(), "{verdict:?}");

        // The last read answers with the first write, long overwritten by writes that
        // completed before that read was invoked.
        let victim = *reads.last().expect("reads");
        let stale = 1;
        let stale_value = history
            .ops
            .iter()
            .find_map(|op| match (&op.call, &op.outcome) {
                (Call::Put { value }, Outcome::Ok(Return::Put { revision }))
                    if *revision == stale =>
                {
                    Some(value.clone())
                }
                _ => None,
            });
        history.ops[victim].outcome = Outcome::Ok(Return::Get {
            value: stale_value,
            mod_revision: stale,
        });
        let verdict = check(&history, Budget::default());
        assert!(
            matches!(verdict, Verdict::Violation { .. }),
            "a stale read passed: {verdict:?}"
        );
    }
}
