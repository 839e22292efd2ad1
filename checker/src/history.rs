//! What a client recorded of one operation, and a history of many.
//!
//! Each type renders itself for a person ([`std::fmt::Display`]): an operation is one line,
//! times in milliseconds from the run's origin, e.g.
//! `   4236.1 ms ..   4269.0 ms  client 7    get k0 -> v3-c1@4`.

use std::fmt;

/// Nanoseconds from the run's origin, on one clock shared by every client of the run.
pub type Nanos = u64;

/// What the client asked for, on one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// Set the key's value.
    Put { value: Vec<u8> },
    /// Read the key (a linearizable read).
    Get,
    /// Set the key's value if its modification revision is `expect` (0: the key is absent).
    Cas { expect: u64, value: Vec<u8> },
}

/// What the store answered to a call that succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Return {
    /// The revision the Put was written at.
    Put { revision: u64 },
    /// The value read (None: absent) and its modification revision (0 when absent).
    Get {
        value: Option<Vec<u8>>,
        mod_revision: u64,
    },
    /// Whether the compare held; when it did, the revision the write was written at.
    Cas { succeeded: bool, revision: u64 },
}

/// How the operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Answered: took effect once, between invocation and completion.
    Ok(Return),
    /// Refused before it could take effect: certainly no effect.
    Failed,
    /// No answer (timeout, connection lost): took effect at some time after its
    /// invocation, or never.
    Unknown,
}

/// One operation as a client recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// The client (a process or session) that issued it; a client has one call in flight.
    pub client: u32,
    pub key: Vec<u8>,
    pub call: Call,
    pub invoke: Nanos,
    /// When the answer arrived; ignored for `Unknown`.
    pub complete: Nanos,
    pub outcome: Outcome,
}

impl Op {
    /// What this operation may have written: the value, and the revision it was
    /// acknowledged at (`None`: unanswered, so it may or may not have taken effect). `None`
    /// for reads, refused operations and compare-and-sets whose compare did not hold.
    pub fn write(&self) -> Option<(&[u8], Option<u64>)> {
        let value = match &self.call {
            Call::Put { value } | Call::Cas { value, .. } => value.as_slice(),
            Call::Get => return None,
        };
        match &self.outcome {
            Outcome::Ok(Return::Put { revision })
            | Outcome::Ok(Return::Cas {
                succeeded: true,
                revision,
            }) => Some((value, Some(*revision))),
            Outcome::Unknown => Some((value, None)),
            Outcome::Ok(_) | Outcome::Failed => None,
        }
    }

    /// Whether the answer's kind matches the call's (a Put answered as a Get is a defect
    /// of the recording client, reported as such by [`History::validate`]).
    fn consistent(&self) -> bool {
        matches!(
            (&self.call, &self.outcome),
            (_, Outcome::Failed | Outcome::Unknown)
                | (Call::Put { .. }, Outcome::Ok(Return::Put { .. }))
                | (Call::Get, Outcome::Ok(Return::Get { .. }))
                | (Call::Cas { .. }, Outcome::Ok(Return::Cas { .. }))
        )
    }
}

/// The operations of one run, in any order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    pub ops: Vec<Op>,
}

impl History {
    pub fn push(&mut self, op: Op) {
        self.ops.push(op);
    }

    /// Checks that the history is one a correct recorder could produce: answers match
    /// calls, nothing completes before it was invoked, and no client has two calls in
    /// flight at once (an `Unknown` call keeps its client busy for the rest of the run).
    pub fn validate(&self) -> Result<(), String> {
        let mut by_client: std::collections::BTreeMap<u32, Vec<&Op>> = Default::default();
        for (i, op) in self.ops.iter().enumerate() {
            if !op.consistent() {
                return Err(format!(
                    "operation {i}: answer {:?} to {:?}",
                    op.outcome, op.call
                ));
            }
            if op.outcome != Outcome::Unknown && op.complete < op.invoke {
                return Err(format!("operation {i}: completes before it is invoked"));
            }
            by_client.entry(op.client).or_default().push(op);
        }
        for (client, mut ops) in by_client {
            ops.sort_by_key(|op| op.invoke);
            for pair in ops.windows(2) {
                let (first, next) = (pair[0], pair[1]);
                if first.outcome == Outcome::Unknown || first.complete > next.invoke {
                    return Err(format!(
                        "client {client} has two calls in flight (invoked at {} and {})",
                        first.invoke, next.invoke
                    ));
                }
            }
        }
        Ok(())
    }

    /// The operations on each key, in a stable order of keys.
    pub fn by_key(&self) -> std::collections::BTreeMap<&[u8], Vec<&Op>> {
        let mut keys: std::collections::BTreeMap<&[u8], Vec<&Op>> = Default::default();
        for op in &self.ops {
            keys.entry(op.key.as_slice()).or_default().push(op);
        }
        keys
    }
}

fn text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// `put v3-c1`, `get`, `cas @4 := v5-c2` (the key is the operation's).
impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Put { value } => write!(f, "put {}", text(value)),
            Self::Get => write!(f, "get"),
            Self::Cas { expect, value } => write!(f, "cas @{expect} := {}", text(value)),
        }
    }
}

/// `ok@4` (a write's revision), `v3-c1@4` or `absent` (a read), `held@7`, `not held@7`.
impl fmt::Display for Return {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Put { revision } => write!(f, "ok@{revision}"),
            Self::Get {
                value: Some(value),
                mod_revision,
            } => write!(f, "{}@{mod_revision}", text(value)),
            Self::Get { value: None, .. } => write!(f, "absent"),
            Self::Cas {
                succeeded,
                revision,
            } => {
                let held = if *succeeded { "held" } else { "not held" };
                write!(f, "{held}@{revision}")
            }
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ok(ret) => write!(f, "{ret}"),
            Self::Failed => write!(f, "failed (refused, no effect)"),
            Self::Unknown => write!(f, "unknown (no answer)"),
        }
    }
}

/// Milliseconds with one decimal, right-aligned so that lines of a listing line up.
fn ms(ns: Nanos) -> String {
    format!("{:9.1} ms", ns as f64 / 1e6)
}

/// One line: invocation and completion (blank for an unanswered call) in ms from the
/// run's origin, the client, the key, the call and its outcome.
impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let complete = match self.outcome {
            Outcome::Unknown => format!("{:>12}", ""),
            _ => ms(self.complete),
        };
        let call = match &self.call {
            Call::Get => format!("get {}", text(&self.key)),
            Call::Put { value } => format!("put {}={}", text(&self.key), text(value)),
            Call::Cas { expect, value } => {
                format!("cas {}@{expect}:={}", text(&self.key), text(value))
            }
        };
        write!(
            f,
            "{} .. {}  client {:<4} {call} -> {}",
            ms(self.invoke),
            complete,
            self.client,
            self.outcome
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: u32, invoke: Nanos, complete: Nanos, outcome: Outcome) -> Op {
        Op {
            client,
            key: b"k".to_vec(),
            call: Call::Get,
            invoke,
            complete,
            outcome,
        }
    }

    fn read() -> Outcome {
        Outcome::Ok(Return::Get {
            value: None,
            mod_revision: 0,
        })
    }

    #[test]
    fn an_operation_reads_as_one_line() {
        let mut o = op(7, 4_236_100_000, 4_269_000_000, read());
        o.outcome = Outcome::Ok(Return::Get {
            value: Some(b"v3-c1".to_vec()),
            mod_revision: 4,
        });
        assert_eq!(
            o.to_string(),
            "   4236.1 ms ..    4269.0 ms  client 7    get k -> v3-c1@4"
        );
        o.call = Call::Cas {
            expect: 4,
            value: b"v5".to_vec(),
        };
        o.outcome = Outcome::Unknown;
        assert_eq!(
            o.to_string(),
            "   4236.1 ms ..               client 7    cas k@4:=v5 -> unknown (no answer)"
        );
    }

    #[test]
    fn a_recorder_defect_is_named() {
        let mut h = History::default();
        h.push(op(1, 0, 1, Outcome::Ok(Return::Put { revision: 1 })));
        assert!(h.validate().expect_err("mismatch").contains("answer"));

        let h = History {
            ops: vec![op(1, 5, 4, read())],
        };
        assert!(h.validate().expect_err("backwards").contains("before"));

        let h = History {
            ops: vec![op(1, 0, 10, read()), op(1, 5, 12, read())],
        };
        assert!(h.validate().expect_err("overlap").contains("two calls"));

        let h = History {
            ops: vec![op(1, 0, 0, Outcome::Unknown), op(1, 5, 12, read())],
        };
        assert!(
            h.validate()
                .expect_err("after unknown")
                .contains("two calls")
        );

        let h = History {
            ops: vec![
                op(1, 0, 3, read()),
                op(1, 3, 12, read()),
                op(2, 1, 2, read()),
            ],
        };
        h.validate().expect("a well-formed history");
    }
}
