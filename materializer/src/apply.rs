//! Apply: a pure function of (state, entry) → (state', response).
//!
//! [`apply`] mutates an owned [`State`] (a cheap structural clone of the published view),
//! which is the same as returning a new one: nothing else can observe it until the caller
//! publishes it. Same state + same entries ⇒ same state and responses on every replica.
//!
//! Two outcomes are distinguished:
//! - a *rejection* (unknown table, table exists, invalid event): deterministic, recorded as
//!   [`ApplyResponse::Rejected`], the revision still advances;
//! - a *fatal error* ([`Error::UnknownEvent`], [`Error::OutOfOrder`]): the state is left
//!   untouched and the node must stop applying.

use regatta_proto::event::{self, Event, event::Kind};
use regatta_proto::regatta::v1::DeleteRangeResponse;

use crate::budget::Budget;
use crate::changes::{Recorder, Revisioned};
use crate::command::{Command, check_batched};
use crate::key::Key;
use crate::table::{Table, WriteTime};
use crate::tree::Prefix;
use crate::{ApplyResponse, Error, Rejection, Result, Revision, State, TableId, txn};

/// Applies the event at log `index` to `state`: the path of [`BatchApply`], for one entry.
pub fn apply(state: &mut State, index: Revision, event: &Event) -> Result<ApplyResponse> {
    let mut batch = BatchApply::with_capacity(state, 1);
    let applied = batch.event(index, event);
    let mut responses = batch.finish();
    applied?;
    responses.pop().ok_or_else(|| Error::UnknownEvent {
        index: index.0,
        reason: "applying the entry gave no response".into(),
    })
}

/// Advances the revision without a command (openraft Blank and Membership entries).
pub fn advance(state: &mut State, index: Revision) -> Result<()> {
    check_order(state, index)?;
    state.revision = index;
    Ok(())
}

fn check_order(state: &State, index: Revision) -> Result<()> {
    if index <= state.revision {
        return Err(Error::OutOfOrder {
            index: index.0,
            applied: state.revision,
        });
    }
    Ok(())
}

/// Applies an already validated command at `index` (the revision of every write in it),
/// from an event of time `now_ms` (its `proposed_at_micros` in milliseconds: the clock TTLs
/// count from and expiry is judged at).
pub fn apply_command(
    state: &mut State,
    index: Revision,
    command: &Command,
    now_ms: u64,
) -> ApplyResponse {
    apply_recorded(state, index, command, &mut Recorder::default(), now_ms)
}

/// [`apply_command`], noting what it changed in `changes` (when on).
fn apply_recorded(
    state: &mut State,
    index: Revision,
    command: &Command,
    changes: &mut Recorder,
    now_ms: u64,
) -> ApplyResponse {
    state.revision = index;
    match command {
        Command::CreateTable { name, config } => {
            if state.tables.contains_key(name) {
                return ApplyResponse::Rejected(Rejection::TableExists {
                    table: name.clone(),
                });
            }
            let id = TableId(index.0);
            state
                .tables
                .insert(name.clone(), Table::new(id, config.clone()));
            ApplyResponse::TableCreated { id }
        }
        Command::DeleteTable { name } => match state.tables.remove(name) {
            Some(_) => {
                changes.reset(index, name, true);
                ApplyResponse::TableDeleted
            }
            None => ApplyResponse::Rejected(Rejection::TableNotFound {
                table: name.clone(),
            }),
        },
        Command::Put(p) => with_table(state, &p.table, changes, |t, changes| {
            let r = txn::put(t, &p.op, index, changes, now_ms);
            ApplyResponse::Put {
                prev_kv: r.prev_kv.map(Box::new),
            }
        }),
        Command::DeleteRange(d) => with_table(state, &d.table, changes, |t, changes| {
            match txn::delete(t, &d.op, index, &mut Budget::for_apply(), changes, now_ms) {
                Ok(r) => ApplyResponse::DeleteRange(Box::new(DeleteRangeResponse {
                    header: None,
                    deleted: r.deleted,
                    prev_kvs: r.prev_kvs,
                })),
                Err(e) => rejected(&e),
            }
        }),
        Command::Txn(x) => with_table(state, &x.table, changes, |t, changes| {
            match txn::run(t, x, index, changes, now_ms) {
                Ok(r) => ApplyResponse::Txn(Box::new(r)),
                Err(e) => rejected(&e),
            }
        }),
        Command::Batch(commands) => ApplyResponse::Batch(
            commands
                .iter()
                .map(|c| apply_recorded(state, index, c, changes, now_ms))
                .collect(),
        ),
        Command::Expire { table, keys } => with_table(state, table, changes, |t, changes| {
            let mut deleted = 0;
            for k in keys {
                if let Some(r) = t.expire(&k.key, k.mod_revision, now_ms) {
                    deleted += 1;
                    changes.delete(index, r);
                }
            }
            ApplyResponse::DeleteRange(Box::new(DeleteRangeResponse {
                header: None,
                deleted,
                prev_kvs: Vec::new(),
            }))
        }),
        Command::RestoreTable { name, clear, kvs } => {
            with_table(state, name, changes, |t, changes| {
                if *clear {
                    t.clear();
                }
                for p in kvs {
                    let time = WriteTime {
                        now_ms: 0,
                        expires_at: p.expires_at,
                    };
                    t.put(&p.key, &p.value, index, time);
                }
                changes.reset(index, name, false);
                ApplyResponse::TableRestored {
                    stored: kvs.len() as u64,
                }
            })
        }
    }
}

/// The deterministic rejection of a request error met while evaluating a command (a limit
/// of [`crate::limits`]): the same on every replica, nothing of the command applied.
fn rejected(e: &Error) -> ApplyResponse {
    ApplyResponse::Rejected(
        e.to_rejection()
            .unwrap_or_else(|| Rejection::InvalidArgument {
                reason: e.to_string(),
            }),
    )
}

fn with_table(
    state: &mut State,
    name: &str,
    changes: &mut Recorder,
    f: impl FnOnce(&mut Table, &mut Recorder) -> ApplyResponse,
) -> ApplyResponse {
    match state.tables.get_mut(name) {
        Some(t) => {
            changes.set_table(name);
            f(t, changes)
        }
        None => ApplyResponse::Rejected(Rejection::TableNotFound { table: name.into() }),
    }
}

/// Runs of at least this many puts are applied in key order.
const SORT_RUN_MIN: usize = 32;

/// A put waiting in a run: its key already in stored form (copied while the run is read in
/// log order), its value still in the event.
#[derive(Debug)]
struct QueuedPut<'e> {
    index: Revision,
    key: Key,
    value: &'e [u8],
    prev_kv: bool,
    /// Its event's time in milliseconds (a key expired by then is created anew).
    now_ms: u64,
    /// The expiry it sets (0: none).
    expires_at: u64,
    /// Its place among the responses.
    slot: Slot,
}

/// Where a write's response goes: an entry's own response, or one of a batch entry's.
/// Ordered as the log is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Slot {
    entry: usize,
    /// The write's place in its batch entry; [`Slot::WHOLE`] for an entry of one write.
    inner: u32,
}

impl Slot {
    const WHOLE: u32 = u32::MAX;
}

/// One write of an entry, decoded once: a valid put read in place, or any other command.
#[derive(Debug)]
enum Write<'e> {
    Put { table: &'e str, put: &'e event::Put },
    Command(Command),
}

impl<'e> Write<'e> {
    /// Decodes and validates one data event (on its own or in a batch) at log `index`.
    fn decode(index: Revision, event: &'e Event) -> Result<Self> {
        if let Some((table, put)) = Command::valid_put(event) {
            return Ok(Self::Put { table, put });
        }
        Command::from_event(index.0, event).map(Self::Command)
    }
}

/// Applies a sequence of entries: the one apply path of every entry, a batch entry's writes
/// and an entry of a single write alike (one write is a batch of one).
///
/// Each entry is decoded once into its writes (a batch entry is checked whole first: one
/// invalid write rejects the entry, and nothing of it applies). Consecutive valid puts to one
/// table, across entries and within batches, form a *run*, read in place from the events
/// (no copy of the event, no table name per put). The run is applied in key order (puts of
/// the same key keep their log order), so the tree is walked once from left to right instead
/// of at random, and the records of neighbouring keys are allocated together (a later scan
/// reads them from neighbouring memory). Every put still carries its entry's index as
/// revision and gets its own response, in log order; puts to different keys commute and puts
/// to the same key keep their order, so state and responses are exactly those of applying
/// each command in order with [`apply_command`] (the model and batch-split property tests
/// check this). Any other write ends the run and is applied by [`apply_command`].
#[derive(Debug)]
pub struct BatchApply<'s, 'e> {
    state: &'s mut State,
    /// The table of the queued run (kept between runs for its allocation).
    run_table: String,
    run: Vec<QueuedPut<'e>>,
    responses: Vec<ApplyResponse>,
    /// What the applied writes changed, when recording ([`BatchApply::record_changes`]).
    changes: Recorder,
}

impl<'s, 'e> BatchApply<'s, 'e> {
    /// Starts applying onto `state`.
    pub fn new(state: &'s mut State) -> Self {
        Self::with_capacity(state, 0)
    }

    /// Starts applying about `entries` entries onto `state`: the responses and the run of
    /// puts are sized once, instead of growing by doubling through a large batch (which
    /// touches about twice their final memory, and the allocator keeps what it freed).
    pub fn with_capacity(state: &'s mut State, entries: usize) -> Self {
        Self {
            state,
            run_table: String::new(),
            run: Vec::with_capacity(entries),
            responses: Vec::with_capacity(entries),
            changes: Recorder::default(),
        }
    }

    /// Records what every write of this batch changes, for the watch history
    /// ([`BatchApply::finish_with_changes`]).
    pub fn record_changes(&mut self) {
        self.changes = Recorder::recording();
    }

    fn last_index(&self) -> Revision {
        self.run.last().map_or(self.state.revision, |q| q.index)
    }

    fn check(&self, index: Revision) -> Result<()> {
        let applied = self.last_index();
        if index <= applied {
            return Err(Error::OutOfOrder {
                index: index.0,
                applied,
            });
        }
        Ok(())
    }

    /// Applies (or queues in the current run) the event at `index`. On a fatal error the
    /// entries before it are fully applied and the state is at the previous index.
    pub fn event(&mut self, index: Revision, event: &'e Event) -> Result<()> {
        if let Err(e) = self.check(index) {
            self.flush();
            return Err(e);
        }
        let entry = self.responses.len();
        // The entry's clock, for the writes of a batch as for a single one.
        let now_ms = event.proposed_at_micros / 1000;
        let decoded = match &event.kind {
            Some(Kind::Batch(b)) if event.version == regatta_proto::EVENT_VERSION => b
                .events
                .iter()
                .map(|e| {
                    check_batched(index.0, e)?;
                    Write::decode(index, e)
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            _ => Write::decode(index, event).map(|write| {
                self.responses.push(ApplyResponse::Empty);
                self.write(
                    index,
                    write,
                    Slot {
                        entry,
                        inner: Slot::WHOLE,
                    },
                    now_ms,
                );
                None
            }),
        };
        match decoded {
            Ok(None) => {}
            Ok(Some(writes)) => {
                self.responses.push(ApplyResponse::Batch(vec![
                    ApplyResponse::Empty;
                    writes.len()
                ]));
                if writes.is_empty() {
                    self.flush();
                    self.state.revision = index;
                }
                for (inner, write) in (0u32..).zip(writes) {
                    self.write(index, write, Slot { entry, inner }, now_ms);
                }
            }
            Err(e) if e.is_fatal() => {
                self.flush();
                return Err(e);
            }
            Err(e) => {
                self.flush();
                self.state.revision = index;
                self.responses.push(rejected(&e));
            }
        }
        Ok(())
    }

    /// Applies (or queues) one decoded write of the entry at `index`, answering at `slot`;
    /// `now_ms` is the entry's time.
    fn write(&mut self, index: Revision, write: Write<'e>, slot: Slot, now_ms: u64) {
        match write {
            Write::Put { table, put } => {
                if self.run_table != table {
                    self.flush();
                    table.clone_into(&mut self.run_table);
                }
                self.run.push(QueuedPut {
                    index,
                    key: Key::from_slice(&put.key),
                    value: &put.value,
                    prev_kv: put.prev_kv,
                    now_ms,
                    // `valid_put` checked the TTL.
                    expires_at: crate::request::expiry(
                        now_ms,
                        u64::try_from(put.ttl_millis).unwrap_or(0),
                    ),
                    slot,
                });
                // The answer of a put that wants no previous pair, written now, in log
                // order: the run is applied in key order, and writing each answer then
                // would land at random over the responses (a cache miss per put in a large
                // batch).
                *self.answer(slot) = ApplyResponse::Put { prev_kv: None };
            }
            Write::Command(command) => {
                // Anything else ends the run and is applied on its own.
                self.flush();
                *self.answer(slot) =
                    apply_recorded(self.state, index, &command, &mut self.changes, now_ms);
            }
        }
    }

    fn answer(&mut self, slot: Slot) -> &mut ApplyResponse {
        answer(&mut self.responses, slot)
    }

    /// Advances to `index` without a command (openraft Blank and Membership entries).
    pub fn advance(&mut self, index: Revision) -> Result<()> {
        self.check(index)?;
        self.flush();
        self.state.revision = index;
        self.responses.push(ApplyResponse::Empty);
        Ok(())
    }

    /// Answers an entry at index 0 on the empty state (openraft's initial membership)
    /// without advancing.
    pub fn zero(&mut self) -> Result<()> {
        if self.last_index() != Revision(0) {
            return Err(Error::OutOfOrder {
                index: 0,
                applied: self.last_index(),
            });
        }
        self.responses.push(ApplyResponse::Empty);
        Ok(())
    }

    /// The state, with every queued put applied.
    pub fn state_mut(&mut self) -> &mut State {
        self.flush();
        self.state
    }

    /// Applies what is queued and returns one response per entry, in log order.
    pub fn finish(mut self) -> Vec<ApplyResponse> {
        self.flush();
        self.responses
    }

    /// [`BatchApply::finish`], with the changes recorded (in log order), or `None` when
    /// this batch did not record.
    pub fn finish_with_changes(mut self) -> (Vec<ApplyResponse>, Option<Vec<Revisioned>>) {
        self.flush();
        let changes = self
            .changes
            .is_on()
            .then(|| std::mem::take(&mut self.changes).into_changes());
        (self.responses, changes)
    }

    fn flush(&mut self) {
        let Some(last) = self.run.last().map(|q| q.index) else {
            return;
        };
        let mut run = std::mem::take(&mut self.run);
        match self.state.tables.get_mut(&self.run_table) {
            None => {
                let rejection = Rejection::TableNotFound {
                    table: self.run_table.clone(),
                };
                for q in run.drain(..) {
                    *self.answer(q.slot) = ApplyResponse::Rejected(rejection.clone());
                }
            }
            Some(t) => {
                // Sorted by the keys' first 16 bytes (read from the inline keys, no pointer
                // chased), then by log position (the slots grow with it): puts of one key
                // keep their log order, and keys equal in those bytes end up side by side,
                // which is all the locality the sort is for (puts to different keys
                // commute). The order is total, so an in-place unstable sort gives it
                // without the scratch buffer of a stable one.
                let sorted = run.len() >= SORT_RUN_MIN;
                if sorted {
                    run.sort_unstable_by_key(|q| (q.key.word_at(0), q.key.word_at(8), q.slot));
                }
                let recording = self.changes.is_on();
                let mut written = Vec::new();
                if recording {
                    self.changes.set_table(&self.run_table);
                    written.reserve(run.len());
                }
                for q in run.drain(..) {
                    let time = WriteTime {
                        now_ms: q.now_ms,
                        expires_at: q.expires_at,
                    };
                    let prev = if recording {
                        let (record, prev) =
                            t.put_returning(q.key.as_slice(), q.value, q.index, time);
                        written.push((q.slot, q.index, record, prev.clone()));
                        prev
                    } else {
                        t.put(q.key.as_slice(), q.value, q.index, time)
                    };
                    if let Some(prev) = prev.filter(|_| q.prev_kv) {
                        *answer(&mut self.responses, q.slot) = ApplyResponse::Put {
                            prev_kv: Some(Box::new(prev.kv(false))),
                        };
                    }
                }
                // Changes are told in log order, whatever order the run was applied in.
                if sorted {
                    written.sort_unstable_by_key(|w| w.0);
                }
                for (_, index, record, prev) in written {
                    self.changes.put(index, record, prev);
                }
            }
        }
        // Keep the run's allocation for the next run.
        self.run = run;
        self.state.revision = last;
    }
}

/// The response at `slot` (placed by [`BatchApply::event`] before the write is applied).
fn answer(responses: &mut [ApplyResponse], slot: Slot) -> &mut ApplyResponse {
    let whole = &mut responses[slot.entry];
    if slot.inner == Slot::WHOLE {
        return whole;
    }
    match whole {
        ApplyResponse::Batch(inner) => &mut inner[slot.inner as usize],
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use regatta_proto::regatta::v1 as wire;

    use super::*;

    /// A run sorted by its keys' first 16 bytes applies puts of one key in log order, also
    /// among keys equal in those bytes, and answers every put as sequential apply would.
    #[test]
    fn sorted_runs_order_keys_sharing_their_first_16_bytes() {
        let shared = b"sixteen-bytes-ab";
        let suffixes: [&[u8]; 6] = [b"", b"\0", b"\0\0", b"a", b"a\0", b"b"];
        let mut events = Vec::new();
        for round in 0..8u8 {
            for (i, suffix) in suffixes.iter().enumerate() {
                let key = [&shared[..], suffix].concat();
                // Short keys too: a prefix of the shared bytes, padded with zeros.
                let short = &shared[..1 + (i + round as usize) % 15];
                for k in [key.as_slice(), short] {
                    let put = wire::PutRequest {
                        table: Bytes::from_static(b"t"),
                        key: Bytes::copy_from_slice(k),
                        value: Bytes::from(vec![round, i as u8]),
                        prev_kv: true,
                        ttl_millis: 0,
                    };
                    let command = Command::try_from(&put).expect("valid put");
                    events.push(command.to_event(0));
                }
            }
        }
        assert!(events.len() >= SORT_RUN_MIN);
        let create = Command::CreateTable {
            name: "t".into(),
            config: None,
        };
        let mut batched = State::new();
        apply_command(&mut batched, Revision(1), &create, 0);
        let mut one_by_one = batched.clone();
        let mut batch = BatchApply::new(&mut batched);
        for (i, e) in events.iter().enumerate() {
            batch.event(Revision(i as u64 + 2), e).expect("applies");
        }
        let batch_responses = batch.finish();
        let single_responses: Vec<ApplyResponse> = events
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let index = Revision(i as u64 + 2);
                let command = Command::from_event(index.0, e).expect("valid event");
                apply_command(&mut one_by_one, index, &command, 0)
            })
            .collect();
        assert_eq!(batch_responses, single_responses);
        // Records compare by key, revisions and value.
        let dump = |s: &State| -> Vec<crate::table::Record> {
            let table = s.table("t").expect("table");
            table.iter().cloned().collect()
        };
        assert_eq!(dump(&batched), dump(&one_by_one));
    }

    fn put(table: &str, key: &[u8], value: &[u8]) -> Command {
        Command::try_from(&wire::PutRequest {
            table: Bytes::copy_from_slice(table.as_bytes()),
            key: Bytes::copy_from_slice(key),
            value: Bytes::copy_from_slice(value),
            prev_kv: true,
            ttl_millis: 0,
        })
        .expect("valid put")
    }

    /// A batch entry applies as its commands one after the other at the entry's index,
    /// answered one by one, its puts joining the runs of single puts around it.
    #[test]
    fn a_batch_entry_applies_as_its_commands_in_order() {
        let create = |name: &str| Command::CreateTable {
            name: name.into(),
            config: None,
        };
        let delete = Command::try_from(&wire::DeleteRangeRequest {
            table: Bytes::from_static(b"t"),
            key: Bytes::from_static(b"a"),
            range_end: Bytes::from_static(b"c"),
            prev_kv: true,
            count: true,
        })
        .expect("valid delete");
        let batch_of = |n: u8| {
            let mut commands: Vec<Command> = (0..40u8)
                .map(|k| put("t", &[b'a' + k % 5, k], &[n, k]))
                .collect();
            commands.insert(7, delete.clone());
            commands.push(put("missing", b"k", b"v"));
            commands.push(put("t", b"a", &[n]));
            Command::Batch(commands)
        };
        let commands = [
            create("t"),
            put("t", b"b", b"single"),
            batch_of(1),
            put("t", b"a", b"single"),
            batch_of(2),
            Command::Batch(Vec::new()),
            put("t", b"z", b"last"),
        ];
        let events: Vec<Event> = commands.iter().map(|c| c.to_event(0)).collect();
        let mut batched = State::new();
        let mut reference = State::new();
        let mut batch = BatchApply::new(&mut batched);
        for (i, e) in events.iter().enumerate() {
            batch.event(Revision(i as u64 + 1), e).expect("applies");
        }
        let responses = batch.finish();
        let expected: Vec<ApplyResponse> = commands
            .iter()
            .enumerate()
            .map(|(i, c)| apply_command(&mut reference, Revision(i as u64 + 1), c, 0))
            .collect();
        assert_eq!(responses, expected);
        assert!(matches!(&responses[2], ApplyResponse::Batch(r) if r.len() == 43));
        assert_eq!(batched.revision(), reference.revision());
        let dump = |s: &State| -> Vec<crate::table::Record> {
            s.table("t").expect("table").iter().cloned().collect()
        };
        assert_eq!(dump(&batched), dump(&reference));
    }

    /// One invalid write rejects its whole batch entry: nothing of it applies, the revision
    /// advances.
    #[test]
    fn an_invalid_write_rejects_its_whole_batch() {
        let mut state = State::new();
        let create = Command::CreateTable {
            name: "t".into(),
            config: None,
        };
        apply_command(&mut state, Revision(1), &create, 0);
        let mut event =
            Command::Batch(vec![put("t", b"a", b"1"), put("t", b"b", b"2")]).to_event(0);
        if let Some(Kind::Batch(b)) = &mut event.kind
            && let Some(Kind::Put(p)) = &mut b.events[1].kind
        {
            p.key = Bytes::new();
        }
        let response = apply(&mut state, Revision(2), &event).expect("not fatal");
        assert!(matches!(
            response,
            ApplyResponse::Rejected(Rejection::InvalidArgument { .. })
        ));
        assert_eq!(state.revision(), Revision(2));
        assert_eq!(state.table("t").expect("table").iter().count(), 0);
    }
}
