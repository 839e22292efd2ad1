//! The materializer: turns committed log events into the in-memory tables every read is
//! served from, on core and edge nodes alike.
//!
//! It owns: the domain types of reads and writes (validated once from the wire with
//! `TryFrom`), applying events to tables deterministically, KV semantics (range, put,
//! delete, txn), the published read view and the "applied ≥ R" signal, the snapshot format
//! and its IO to any `object_store`, Regatta's backup format, and openraft's state machine.
//!
//! It deliberately does not own: gRPC serving and status mapping (`regatta-api`), the log's
//! on-disk format and openraft's log storage (`regatta-log`), nor node assembly. It never
//! touches the network except through an `ObjectStore` it is handed.
//!
//! See `OVERVIEW.md` for the invariants. Modules:
//! - [`ids`]: [`Revision`], [`TableId`] newtypes.
//! - [`error`]: [`Error`], [`Result`]; request failures vs fatal node failures.
//! - [`limits`]: key, value and response size limits.
//! - [`request`]: strict domain types of reads and writes, `TryFrom` the wire.
//! - [`command`]: [`Command`], a validated write, to and from a log `Event`.
//! - [`key`]: [`key::Key`], short keys stored inline in the map's nodes.
//! - [`table`]: one table's ordered map and primitive writes.
//! - [`tree`]: [`tree::Tree`], the copy-on-write B+tree inside every table.
//! - [`state`]: [`State`], an immutable view of every table at one revision.
//! - [`range`]: range evaluation, chunking, [`RangeIter`].
//! - [`txn`]: compares and transaction ops.
//! - [`apply`]: the pure apply function.
//! - [`materializer`]: [`Materializer`], the published state, apply batches, wait for R.
//! - [`response`]: [`ApplyResponse`], what applying an entry answers.
//! - [`raft_meta`]: openraft bookkeeping carried inside every state.
//! - [`snapshot`]: the snapshot format and its object store IO.
//! - [`backup`]: Regatta's backup stream and directory format.
//! - [`raft`]: openraft [`raft::TypeConfig`] and state machine.

//! # Read path: the data structure, chosen by measurement
//!
//! Each table is a [`tree::Tree<Key, Record>`] (a persistent B+tree of our own, nodes
//! shared between versions; it replaced `imbl::OrdMap`, see the last section); the whole
//! [`State`] is published through `arc-swap` once per applied
//! batch. That meets the five read-path properties by construction: point reads and
//! O(log n + k) scans without a lock ([`State`] is immutable), whole batches or nothing (one
//! pointer swap), whole-state replacement as the same swap, and snapshots written from a
//! held view while apply goes on.
//!
//! Measured on the project machine (2 vCPU AMD EPYC VM, shared; one dependent random
//! memory access costs ~210 ns there with 4 KiB pages on a quiet machine), 1M keys of
//! 16–32 bytes, 100-byte values, uniformly random point lookups (p50), glibc malloc, first
//! round:
//!
//! | structure | lookup p50 | resident / raw | consistent views, ordered scans |
//! |---|---|---|---|
//! | `imbl::OrdMap<Bytes, _>` | 2.5 µs | 2.33× | yes |
//! | `imbl::OrdMap<Key (inline), Arc record>` (chosen) | 1.6–1.9 µs | 2.06× | yes |
//! | `std::collections::BTreeMap` | 1.3 µs | 2.09× | no (needs a lock or a copy) |
//! | `imbl::HashMap` (HAMT) | 1.5 µs | 4.35× | views yes, scans no |
//! | `std::collections::HashMap` / `dashmap` | 1.1 µs | 2.73× | no |
//!
//! Even a plain hash map does not reach 300 ns here for keys spread over 1M entries: every
//! structure pays two to eight dependent cache misses. A hash index beside the tree would
//! buy ~0.5 µs per read for twice the write work and memory, and `dashmap` on the read path
//! would need per-key versions and epoch reclamation to give consistent views; neither pays
//! for itself at these numbers. Short keys inline (`key`) cut lookups by ~30% and memory by
//! ~10%; one allocation per record (revisions and value together) saves another. Figures of
//! the real apply and read path are in `benchmarks/README.md` (`regatta-bench materializer`).
//!
//! ## Memory pages and the allocator (second round of measurements)
//!
//! The floor, measured with a pointer chase over a random cyclic permutation of cache lines
//! (load average 3.4 from other work on the 2 vCPUs): one dependent load over 512 MiB costs
//! 604 ns with 4 KiB pages and 336 ns with transparent huge pages; over 16–64 MiB, ~250 ns
//! with huge pages. So a uniformly random point read over 1M keys cannot come in at 300 ns
//! on this VM whatever the structure: that is one uncached access, and an ordered tree
//! pays several. Transparent huge pages are `madvise`-only here, so only an allocator that
//! asks for them gets them. `regatta-bench materializer` with the code of this crate as it
//! is now, 2–6 runs each, back to back, load average 3–4.5 from other work on the same
//! 2 vCPUs (`anon_huge_pages_mib` in the bench output confirms the pages):
//!
//! | allocator | huge pages | read p50 | read p99 | hot-key p50 | 1k-key scan p50 | resident / raw after apply · after snapshot load |
//! |---|---|---|---|---|---|---|
//! | glibc malloc | none | 1.90–2.70 µs | 3.4–4.9 µs | 0.38–2.9 µs | 117–159 µs | 3.03× · 1.84× |
//! | jemalloc, no THP | none | 2.38–2.47 µs | 4.2–4.8 µs | 500–690 ns | 78–80 µs | 2.93–2.96× · 1.86–1.90× |
//! | jemalloc `thp:always,metadata_thp:always` | ~700 MiB | 1.67–1.90 µs | 2.8–3.8 µs | 270–440 ns | 67–91 µs | 2.93× · 1.82–1.89× |
//! | mimalloc, default options (asks for THP itself) | ~700 MiB | 1.75–1.99 µs | 2.8–3.3 µs | 270–440 ns | 72–98 µs | 2.80–3.21× · 1.78–1.85× |
//!
//! Huge pages, not the allocator as such, buy the read figures (~20% off p50, ~35% off
//! p99); jemalloc's and mimalloc's size classes and locality halve range scans against
//! glibc. Apply and snapshot-load rates swung by 2× between runs of the same binary on the
//! loaded machine and tell the allocators apart no better than that. jemalloc with THP and
//! mimalloc are equivalent within this noise; mimalloc is the bench default and the
//! recommendation for binaries that hold tables, because it gets huge pages with no
//! configuration and most often left the fewest resident bytes after apply.
//!
//! What else was measured on the write and load paths (callgrind instruction counts, which
//! a loaded machine does not distort, next to wall-clock figures):
//! - **Snapshot load**: zstd decompression ~45% and tree inserts ~38% of the instructions.
//!   The reader parses fields straight out of one buffer and folds the CRC over whole spans
//!   (−25% instructions); a large table is read by two threads, one parsing, one building
//!   the tree; and the tree is built by inserting every other record first and the rest in
//!   between, because the B-tree splits full leaves in the middle and a sorted load
//!   otherwise leaves every leaf half empty (−60 resident bytes per key, 2.4× → 1.8×,
//!   which is what full leaves predict: a 160-byte record allocation plus 1/16 of a
//!   1 KiB leaf per key, ~230 bytes against 124 raw).
//! - **Apply**: ~6,000 instructions per put, half of them the two tree traversals of an
//!   upsert (`get_mut` to find a previous record, `insert` for a new key) with their
//!   copy-on-write of the path, a quarter key comparisons. Runs of puts are sorted by their
//!   stored (inline) keys rather than by indices into the events' bytes (+30–40% puts/s
//!   wall-clock, though more instructions: the sort no longer chases a pointer per
//!   comparison). Per publish, the copy-on-write copies most leaves a batch touches, and
//!   freed copies fragment the heap: resident bytes after apply (~2.8×) stay above those of
//!   the same data loaded from a snapshot (~1.8×).
//!
pub mod apply;
pub mod backup;
pub mod command;
pub mod error;
pub mod ids;
pub mod key;
pub mod limits;
pub mod materializer;
pub mod raft;
pub mod raft_meta;
pub mod range;
pub mod request;
pub mod response;
pub mod snapshot;
pub mod state;
pub mod table;
pub mod tree;
pub mod txn;

pub use command::Command;
pub use error::{Error, Result};
pub use ids::{Revision, TableId};
pub use materializer::{Entry, Materializer};
pub use range::RangeIter;
pub use response::{ApplyResponse, Rejection};
pub use state::State;
