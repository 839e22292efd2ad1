//! The sequential specification of one key: a register that remembers the revision of its
//! last write. Put writes at a new revision greater than every earlier one; compare-and-set
//! writes only when the key's modification revision equals the one expected; Get returns
//! the value and its modification revision.
//!
//! Writes the core proposed together as one log entry share that entry's index as their
//! revision (docs/api.md, operations.md "group proposal"), applied in the order queued: so
//! a Put may carry the same revision as the key's previous write, never a lower one. (A
//! compare-and-set that holds cannot share the revision it expected: the read that saw that
//! revision saw its entry applied.)
//!
//! An unanswered write leaves the revision unknown but bounded below ([`Revision::After`]);
//! a later read that sees the write pins it. The model is deliberately generous where the
//! history does not say: it may accept a wrong history it cannot tell apart from a right
//! one, never reject a right one.

use crate::history::{Call, Return};

/// The key's modification revision as far as the history tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Revision {
    /// Known: 0 while the key was never written.
    Exactly(u64),
    /// Written by an operation that was never answered: some revision at least this (equal
    /// when it shared an entry with the key's previous write).
    After(u64),
}

impl Revision {
    /// The revision no later write may be below.
    fn floor(self) -> u64 {
        match self {
            Self::Exactly(r) | Self::After(r) => r,
        }
    }

    /// Whether the key's revision can be `r`.
    fn may_be(self, r: u64) -> bool {
        match self {
            Self::Exactly(known) => known == r,
            Self::After(floor) => r >= floor,
        }
    }
}

/// The state of one key between operations.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyState {
    pub value: Option<Vec<u8>>,
    pub revision: Revision,
}

impl KeyState {
    /// A key never written.
    pub fn absent() -> Self {
        Self {
            value: None,
            revision: Revision::Exactly(0),
        }
    }
}

/// The states the key can be in after `call` took effect in `state` and answered `ret`
/// (`None`: the answer is unknown). Empty: the answer is impossible in this state. More
/// than one: an unanswered compare-and-set may or may not have held.
pub fn step(state: &KeyState, call: &Call, ret: Option<&Return>) -> Vec<KeyState> {
    let written = |value: &[u8], revision| KeyState {
        value: Some(value.to_vec()),
        revision,
    };
    match (call, ret) {
        (Call::Put { value }, Some(Return::Put { revision })) => {
            if *revision > 0 && *revision >= state.revision.floor() {
                vec![written(value, Revision::Exactly(*revision))]
            } else {
                vec![]
            }
        }
        (Call::Put { value }, None) => {
            vec![written(value, Revision::After(state.revision.floor()))]
        }
        (
            Call::Get,
            Some(Return::Get {
                value,
                mod_revision,
            }),
        ) => {
            let same_value = *value == state.value;
            let absent_at_zero = value.is_some() == (*mod_revision > 0);
            if same_value && absent_at_zero && state.revision.may_be(*mod_revision) {
                vec![KeyState {
                    value: value.clone(),
                    revision: Revision::Exactly(*mod_revision),
                }]
            } else {
                vec![]
            }
        }
        (Call::Get, None) => vec![state.clone()],
        (
            Call::Cas { expect, value },
            Some(Return::Cas {
                succeeded: true,
                revision,
            }),
        ) => {
            if state.revision.may_be(*expect) && revision > expect {
                vec![written(value, Revision::Exactly(*revision))]
            } else {
                vec![]
            }
        }
        (
            Call::Cas { expect, .. },
            Some(Return::Cas {
                succeeded: false, ..
            }),
        ) => {
            if state.revision == Revision::Exactly(*expect) {
                vec![]
            } else {
                vec![state.clone()]
            }
        }
        (Call::Cas { expect, value }, None) => {
            let mut states = vec![state.clone()];
            if state.revision.may_be(*expect) {
                states.push(written(value, Revision::After(*expect + 1)));
            }
            states
        }
        // An answer of another kind: never possible (History::validate names it).
        (_, Some(_)) => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(v: &[u8]) -> Call {
        Call::Put { value: v.to_vec() }
    }
    fn got(v: Option<&[u8]>, r: u64) -> Return {
        Return::Get {
            value: v.map(<[u8]>::to_vec),
            mod_revision: r,
        }
    }

    #[test]
    fn puts_advance_the_revision_and_reads_see_the_last() {
        let s = KeyState::absent();
        assert_eq!(step(&s, &Call::Get, Some(&got(None, 0))).len(), 1);
        assert!(step(&s, &Call::Get, Some(&got(None, 3))).is_empty());
        let s = step(&s, &put(b"a"), Some(&Return::Put { revision: 5 })).remove(0);
        assert!(step(&s, &put(b"b"), Some(&Return::Put { revision: 4 })).is_empty());
        assert_eq!(step(&s, &Call::Get, Some(&got(Some(b"a"), 5))).len(), 1);
        assert!(step(&s, &Call::Get, Some(&got(Some(b"a"), 6))).is_empty());
        assert!(step(&s, &Call::Get, Some(&got(None, 0))).is_empty());
    }

    #[test]
    fn puts_of_one_entry_share_its_revision_and_reads_see_the_last() {
        let s = step(
            &KeyState::absent(),
            &put(b"a"),
            Some(&Return::Put { revision: 5 }),
        );
        let s = step(&s[0], &put(b"b"), Some(&Return::Put { revision: 5 })).remove(0);
        assert_eq!(step(&s, &Call::Get, Some(&got(Some(b"b"), 5))).len(), 1);
        assert!(step(&s, &Call::Get, Some(&got(Some(b"a"), 5))).is_empty());
        let unanswered = step(&s, &put(b"c"), None).remove(0);
        assert_eq!(
            step(&unanswered, &Call::Get, Some(&got(Some(b"c"), 5))).len(),
            1,
            "an unanswered put may share the entry too"
        );
        assert!(step(&unanswered, &Call::Get, Some(&got(Some(b"c"), 4))).is_empty());
    }

    #[test]
    fn an_unanswered_put_is_pinned_by_a_read() {
        let s = step(&KeyState::absent(), &put(b"a"), None).remove(0);
        assert_eq!(s.revision, Revision::After(0));
        let pinned = step(&s, &Call::Get, Some(&got(Some(b"a"), 9))).remove(0);
        assert_eq!(pinned.revision, Revision::Exactly(9));
        assert!(step(&pinned, &Call::Get, Some(&got(Some(b"a"), 10))).is_empty());
    }

    #[test]
    fn compare_and_set_holds_only_at_the_expected_revision() {
        let s = step(
            &KeyState::absent(),
            &put(b"a"),
            Some(&Return::Put { revision: 4 }),
        )
        .remove(0);
        let cas = |expect| Call::Cas {
            expect,
            value: b"c".to_vec(),
        };
        let ok = Return::Cas {
            succeeded: true,
            revision: 7,
        };
        let no = Return::Cas {
            succeeded: false,
            revision: 7,
        };
        assert_eq!(step(&s, &cas(4), Some(&ok)).len(), 1);
        assert!(step(&s, &cas(3), Some(&ok)).is_empty());
        assert!(step(&s, &cas(4), Some(&no)).is_empty());
        assert_eq!(step(&s, &cas(3), Some(&no)), vec![s.clone()]);
        assert_eq!(step(&s, &cas(4), None).len(), 2, "held or not");
        assert_eq!(step(&s, &cas(3), None), vec![s.clone()], "cannot hold");
    }
}
