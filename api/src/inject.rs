//! Store-side bugs switched on by `REGATTA_INJECT_BUG`, so that the fault suite
//! (`docs/faults.md`) can show it catches bugs in the store, not only in its clients.
//!
//! Only debug builds carry the switch: the bug set, its parsing and every hook site are
//! `#[cfg(debug_assertions)]`, so a release binary has no code that could misbehave. A
//! release node started with the variable set logs that it ignores it.
//!
//! The variable is read once, when a node starts ([`init_from_env`]); its value is a
//! comma-separated list of [`Bug`] names. An unknown name stops the node before it serves.
//! Each hook site is one statement asking [`active`]:
//!
//! - `follower-local-read` (core/src/role.rs, read index): a core node that is not the
//!   leader answers a linearizable read at its own applied revision instead of the
//!   leader's read index, so it serves what it has, however far behind.
//! - `edge-ack-before-apply` (replication/src/role.rs, write): an edge answers a write it
//!   forwarded upstream as soon as the upstream answers, without waiting until it has
//!   applied that revision itself, so a client may not read its own write there.

/// The environment variable naming the bugs to inject.
pub const ENV: &str = "REGATTA_INJECT_BUG";

/// The value of [`ENV`] names a bug this build does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{ENV}={value:?}: unknown bug {unknown:?} (known: follower-local-read, edge-ack-before-apply)"
)]
pub struct UnknownBug {
    pub value: String,
    pub unknown: String,
}

#[cfg(debug_assertions)]
pub use switch::{Bug, Bugs, active, parse};

/// Reads [`ENV`] and arms the bugs it names (debug builds). Call once, at node start, after
/// logging is set up: logs one WARN line naming the bugs. An unknown name is an error the
/// node must stop on.
#[cfg(debug_assertions)]
pub fn init_from_env() -> Result<(), UnknownBug> {
    let Some(value) = std::env::var_os(ENV) else {
        return Ok(());
    };
    let value = value.to_string_lossy();
    let bugs = parse(&value)?;
    if !bugs.is_empty() {
        tracing::warn!(
            bugs = %bugs,
            "{ENV}: store-side bug injected, this node is deliberately incorrect"
        );
    }
    switch::arm(bugs);
    Ok(())
}

/// Release builds carry no injectable bug: a set [`ENV`] is logged as ignored.
#[cfg(not(debug_assertions))]
pub fn init_from_env() -> Result<(), UnknownBug> {
    if let Some(value) = std::env::var_os(ENV) {
        tracing::warn!(
            value = %value.to_string_lossy(),
            "{ENV} is ignored: release builds carry no injectable bugs"
        );
    }
    Ok(())
}

#[cfg(debug_assertions)]
mod switch {
    use std::{fmt, sync::OnceLock};

    use super::UnknownBug;

    /// A store-side bug the fault suite must catch.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Bug {
        /// A core follower answers a linearizable read from its own applied state.
        FollowerLocalRead,
        /// An edge answers a forwarded write before applying its revision.
        EdgeAckBeforeApply,
    }

    impl Bug {
        const ALL: [Bug; 2] = [Bug::FollowerLocalRead, Bug::EdgeAckBeforeApply];

        pub fn name(self) -> &'static str {
            match self {
                Bug::FollowerLocalRead => "follower-local-read",
                Bug::EdgeAckBeforeApply => "edge-ack-before-apply",
            }
        }

        fn bit(self) -> u8 {
            1 << self as u8
        }
    }

    /// A set of [`Bug`]s.
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
    pub struct Bugs(u8);

    impl Bugs {
        pub fn contains(self, bug: Bug) -> bool {
            self.0 & bug.bit() != 0
        }

        pub fn is_empty(self) -> bool {
            self.0 == 0
        }

        fn with(self, bug: Bug) -> Self {
            Self(self.0 | bug.bit())
        }
    }

    impl fmt::Display for Bugs {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let names: Vec<_> = Bug::ALL
                .into_iter()
                .filter(|b| self.contains(*b))
                .map(Bug::name)
                .collect();
            f.write_str(&names.join(","))
        }
    }

    /// The bugs a value of `REGATTA_INJECT_BUG` names: comma-separated names, blanks
    /// around them and empty items ignored.
    pub fn parse(value: &str) -> Result<Bugs, UnknownBug> {
        value
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .try_fold(Bugs::default(), |bugs, item| {
                Bug::ALL
                    .into_iter()
                    .find(|b| b.name() == item)
                    .map(|b| bugs.with(b))
                    .ok_or_else(|| UnknownBug {
                        value: value.to_string(),
                        unknown: item.to_string(),
                    })
            })
    }

    static ARMED: OnceLock<Bugs> = OnceLock::new();

    pub(super) fn arm(bugs: Bugs) {
        // Set once per process; a second node start in the same process keeps the first set.
        let _ = ARMED.set(bugs);
    }

    /// Whether `bug` is injected in this process.
    pub fn active(bug: Bug) -> bool {
        ARMED.get().is_some_and(|b| b.contains(bug))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn parses_names_lists_and_blanks() {
            assert!(parse("").expect("empty").is_empty());
            assert!(parse(" , ").expect("blanks").is_empty());
            let one = parse("follower-local-read").expect("one name");
            assert!(one.contains(Bug::FollowerLocalRead));
            assert!(!one.contains(Bug::EdgeAckBeforeApply));
            let both = parse(" edge-ack-before-apply , follower-local-read,").expect("two names");
            assert!(both.contains(Bug::FollowerLocalRead));
            assert!(both.contains(Bug::EdgeAckBeforeApply));
            assert_eq!(
                both.to_string(),
                "follower-local-read,edge-ack-before-apply"
            );
        }

        #[test]
        fn refuses_an_unknown_name() {
            let err = parse("follower-local-read,stale-everything").expect_err("unknown name");
            assert_eq!(err.unknown, "stale-everything");
            assert_eq!(err.value, "follower-local-read,stale-everything");
            let text = err.to_string();
            assert!(text.contains("REGATTA_INJECT_BUG"), "{text}");
            assert!(text.contains("stale-everything"), "{text}");
            // Names are exact: no case folding, no prefixes.
            assert!(parse("Follower-Local-Read").is_err());
            assert!(parse("follower").is_err());
        }

        #[test]
        fn nothing_is_active_unless_armed() {
            // Unit tests never arm: the process-wide set stays empty.
            assert!(!active(Bug::FollowerLocalRead));
            assert!(!active(Bug::EdgeAckBeforeApply));
        }
    }
}
