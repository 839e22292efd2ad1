//! Judges what concurrent clients saw of the store. The fault suite's clients record every
//! operation they issue — when it was invoked, when (if ever) it completed, and what came
//! back — and this crate decides, after the run, whether those observations could have
//! come from a correct store.
//!
//! It owns the judgement only: no clients, no clusters, no clock. Histories are plain data
//! (times are nanoseconds from any common origin), so every check is a pure function that a
//! test can feed hand-made histories, including ones that must fail.
//!
//! - [`history`]: the record of one operation (call, outcome, times) and a whole history.
//! - [`model`]: the sequential specification of one key — a register with a modification
//!   revision, written by Put and compare-and-set and read by Get.
//! - [`linearizable`]: the search for a linearization of each key's operations.
//! - [`durability`]: no acknowledged write missing from the final state.
//! - [`sessions`]: what a client of one edge may count on (monotonic reads, read your
//!   writes, values that were really written).
//!
//! OVERVIEW.md has the map and the invariants.
//!
//! What an outcome means is fixed here once: `Ok` took effect exactly once, between its
//! invocation and completion; `Failed` certainly took no effect (the store refused it
//! before doing anything); `Unknown` (a timeout, a dropped connection) may have taken
//! effect at any time after its invocation, or never. A timeout is never `Failed`.

pub mod durability;
pub mod history;
pub mod linearizable;
pub mod model;
pub mod sessions;

pub use history::{Call, History, Op, Outcome, Return};
pub use linearizable::{Budget, Verdict, check};
