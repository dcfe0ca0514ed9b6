#![no_main]
#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Crash and damage recovery against a model: the input is a plan (encoding in
//! `strata_fuzz::structured_input`) of operations run on a real `Wal` over a fresh `SimStore`
//! with 64 KiB segments, optional injected I/O faults, a crash image, and damage to the
//! image's segment files. A model (`strata_fuzz::model::State`) follows every operation.
//!
//! Checks:
//! - The log accepts exactly the operations the model accepts, and while running (before the
//!   crash) reads back exactly the model's entries, purge mark and vote.
//! - A clean close and reopen (op 5) gives back exactly the model's log.
//! - After the crash, with no damage, recovery succeeds and gives back a state the log went
//!   through: the state after every acknowledged operation, or a later one (an operation that
//!   failed or was never acknowledged may or may not be there, and an append may be there in
//!   part). Without faults that is exactly the model's final state, vote included.
//! - With damage, recovery may refuse; if it opens, every entry it returns is exactly one that
//!   was appended at that index (id and payload bytes), and the whole log (entries, purge mark,
//!   vote) is a state the log went through: damage can only cut the log short, never invent or
//!   mix. Entries that were later truncated away may come back this way, since the damage may
//!   have cut the log before the truncation. (When the cut falls before a purge that recycled
//!   segments, the entries those segments held are gone: an empty log with that state's purge
//!   mark and vote is accepted too.)
//! - After any successful recovery, appends continue the recovered log, and a further reopen
//!   gives back exactly the recovered log plus those appends.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};

use libfuzzer_sys::fuzz_target;
use strata_fuzz::layout;
use strata_fuzz::model::{EntryKey, LogOp, State, entry_size};
use strata_fuzz::structured_input::{self, Crash, Mutation, Op, Plan};
use strata_wal::testing::{CrashMode, FaultOp, SimStore};
use strata_wal::{
    Entry, LogId, LogIndex, LogState, NodeId, RecoveryMode, SegmentStore, Term, Vote, Wal,
    WalError, WalOptions,
};

/// Small segments, so that a few hundred KiB of entries rotate and recycle segments.
const SEGMENT_BYTES: u64 = 64 << 10;
/// Most payload bytes one input appends (keeps an execution to a few milliseconds).
const PAYLOAD_BUDGET: u64 = 384 << 10;
/// `EIO`.
const EIO: i32 = 5;
/// The generation of the entries appended after recovery (appends in the plan count up from 0).
const CONTINUATION_GENERATION: u32 = u32::MAX;

fuzz_target!(|data: &[u8]| run(&structured_input::decode(data)));

fn run(plan: &Plan) {
    let cfg = plan.config();
    let opts = WalOptions {
        segment_bytes: SEGMENT_BYTES,
        compress_min_bytes: cfg.compress.then_some(64),
        hot_tail_bytes_max: cfg.hot_tail_bytes,
        prepared_segments: cfg.prepared_segments,
        ..WalOptions::default()
    };
    let store = SimStore::new();
    let wal = open(&store, &opts).expect("a fresh log opens");
    let mut h = Harness {
        store,
        opts,
        wal: Some(wal),
        model: State::default(),
        history: Vec::new(),
        acked: 0,
        pending: Vec::new(),
        failed: false,
        stopped: false,
        faulted: false,
        term: 1,
        generation: 0,
        budget: PAYLOAD_BUDGET,
    };
    for op in &plan.ops {
        if h.stopped {
            break;
        }
        h.run_op(op);
    }
    h.drain();
    if !h.stopped {
        // Every operation was acknowledged: the live log is exactly the model.
        let wal = h.wal.as_ref().expect("open");
        let seen = observe(wal).unwrap_or_else(|e| panic!("reading the live log failed: {e}"));
        let keys = identify(&seen.entries, &h.history, &[]);
        assert!(
            h.model.same_as(&keys, seen.state.last_purged, seen.vote),
            "live log differs from the model:\n log {seen:?}\n model {:?}",
            h.model
        );
    }
    // Close first so that the background threads are idle and the image is deterministic. A
    // poisoned log reports its poison here; that is expected after a failed operation.
    if let Some(wal) = h.wal.take() {
        let _ = wal.close();
    }
    let image = h.store.crash_image(crash_mode(&plan.crash));
    let damaged = mutate(&image, &plan.mutations);
    let opts = WalOptions {
        recovery: if plan.crash.repair {
            RecoveryMode::Repair
        } else {
            RecoveryMode::Strict
        },
        ..h.opts.clone()
    };
    let wal = match open(&image, &opts) {
        Ok(wal) => wal,
        // Refusing damaged segments is allowed.
        Err(_) if damaged => return,
        Err(e) => panic!(
            "recovery refused an undamaged crash image ({} of {} ops acknowledged): {e}",
            h.acked,
            h.history.len()
        ),
    };
    let seen = observe(&wal).unwrap_or_else(|e| panic!("reading the recovered log failed: {e}"));
    let keys = identify(&seen.entries, &h.history, &[]);
    // Without damage everything acknowledged must be there; with damage any earlier state is
    // possible.
    let lowest = if damaged { 0 } else { h.acked };
    let nexts = matching_states(
        &h.history,
        lowest,
        damaged,
        &keys,
        seen.state.last_purged,
        seen.vote,
    );
    assert!(
        !nexts.is_empty(),
        "recovered log is not a state the log went through (damaged: {damaged}, {} of {} ops \
         acknowledged):\n recovered {seen:?}\n final model {:?}",
        h.acked,
        h.history.len(),
        h.model
    );
    continue_after_recovery(&image, wal, &h.history, keys, &seen, &nexts);
}

struct Harness {
    store: SimStore,
    opts: WalOptions,
    wal: Option<Wal>,
    /// The log after every operation the log accepted.
    model: State,
    /// The accepted operations, in order.
    history: Vec<LogOp>,
    /// How many of `history` completed with `Ok` (always a prefix: the first failure poisons).
    acked: usize,
    /// Completions not yet received: one per operation at the end of `history`, in order.
    pending: Vec<Receiver<strata_wal::Result<()>>>,
    /// An operation completed with an error: every later completion must be an error too.
    failed: bool,
    /// An operation failed or was refused as poisoned: the plan stops here.
    stopped: bool,
    /// A fault was injected (a clean reopen no longer makes sense).
    faulted: bool,
    term: u64,
    generation: u32,
    budget: u64,
}

impl Harness {
    fn wal(&self) -> &Wal {
        self.wal.as_ref().expect("open")
    }

    fn run_op(&mut self, op: &Op) {
        match *op {
            Op::Append {
                count,
                size,
                compressible,
                new_term,
                wait,
            } => {
                if new_term {
                    self.term += 1;
                }
                let start = self.model.expected_next().unwrap_or(1);
                let keys = (0..1 + u64::from(count % 16))
                    .map(|i| self.key(start + i, size, compressible))
                    .collect();
                self.generation += 1;
                self.submit(LogOp::Append(keys), wait);
            }
            Op::Truncate {
                back,
                all,
                past_end,
                wait,
            } => {
                let after = (!all).then(|| {
                    let reference = self.model.last_index();
                    let reference = reference.or(self.model.purged.map(|p| p.index.0));
                    let reference = reference.unwrap_or(0);
                    if past_end {
                        reference + u64::from(back)
                    } else {
                        reference.saturating_sub(u64::from(back))
                    }
                });
                self.submit(LogOp::Truncate(after), wait);
            }
            Op::Purge {
                delta,
                from_last,
                wait,
            } => {
                let reference = if from_last {
                    let last = self.model.last_index();
                    last.or(self.model.purged.map(|p| p.index.0)).unwrap_or(0)
                } else {
                    let first = self.model.first_index();
                    first.or(self.model.expected_next()).unwrap_or(1)
                };
                let index = reference + u64::from(delta);
                // Purge with the entry's real id when it is in the log, as raft does.
                let id = self.model.get(index).map_or(
                    LogId {
                        term: Term(self.term),
                        leader: NodeId(1),
                        index: LogIndex(index),
                    },
                    EntryKey::id,
                );
                self.submit(LogOp::Purge(id), wait);
            }
            Op::Vote {
                term,
                voted_for,
                committed,
                wait,
            } => {
                let vote = Vote {
                    term: Term(u64::from(term)),
                    voted_for: voted_for.map(|n| NodeId(u64::from(n))),
                    committed,
                };
                self.submit(LogOp::Vote(vote), wait);
            }
            Op::BadAppend { gap } => {
                // Only meaningful when the log constrains the next index; the model then says
                // the append must be refused, and `submit` checks that it is.
                if let Some(next) = self.model.expected_next() {
                    let key = self.key(next + 1 + u64::from(gap), 8, false);
                    self.generation += 1;
                    self.submit(LogOp::Append(vec![key]), true);
                }
            }
            Op::Reopen => {
                if self.faulted {
                    return;
                }
                self.drain();
                if self.stopped {
                    return;
                }
                let wal = self.wal.take().expect("open");
                wal.close()
                    .unwrap_or_else(|e| panic!("clean close failed: {e}"));
                let wal = open(&self.store, &self.opts)
                    .unwrap_or_else(|e| panic!("clean reopen failed: {e}"));
                let report = wal.recovery_report();
                assert!(
                    report.torn_tail.is_none() && report.repaired.is_none(),
                    "clean reopen found damage: {report:?}"
                );
                let seen =
                    observe(&wal).unwrap_or_else(|e| panic!("reading a reopened log failed: {e}"));
                let keys = identify(&seen.entries, &self.history, &[]);
                assert!(
                    self.model.same_as(&keys, seen.state.last_purged, seen.vote),
                    "clean reopen differs from the model:\n log {seen:?}\n model {:?}",
                    self.model
                );
                self.wal = Some(wal);
            }
            Op::Fault {
                skip,
                sync,
                sticky,
                any_io,
            } => {
                let op = if sync { FaultOp::Sync } else { FaultOp::Write };
                if any_io {
                    // Preparation of the next segment runs on its own thread, so which call
                    // fails depends on timing; the checks allow for either.
                    self.store.inject(op, u64::from(skip), EIO, sticky);
                } else {
                    self.store.inject_commit(op, u64::from(skip), EIO, sticky);
                }
                self.faulted = true;
            }
        }
    }

    /// An entry key within the payload budget (entries past it get empty payloads).
    fn key(&mut self, index: u64, size: u8, compressible: bool) -> EntryKey {
        let mut len = entry_size(size);
        if u64::from(len) > self.budget {
            len = 0;
        }
        self.budget -= u64::from(len);
        EntryKey {
            index,
            term: self.term,
            leader: 1 + self.term % 3,
            generation: self.generation,
            len,
            compressible,
        }
    }

    /// Submits `op`; the log must accept it exactly when the model does.
    fn submit(&mut self, op: LogOp, wait: bool) {
        let expected = self.model.check(&op);
        let (tx, rx) = sync_channel(1);
        let result = self.wal().submit(
            op.write_op(),
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        match result {
            Ok(()) => {
                if let Err(why) = expected {
                    panic!("the log accepted {op:?}, which it must refuse: {why}");
                }
                self.model.apply(&op);
                self.history.push(op);
                self.pending.push(rx);
                if wait {
                    self.drain();
                }
            }
            // Poisoned by an earlier operation still in flight; its completion says which.
            Err(WalError::Poisoned { .. } | WalError::Closed) => self.stopped = true,
            Err(e) => {
                assert!(
                    expected.is_err(),
                    "the log refused {op:?}, which the model accepts: {e}"
                );
            }
        }
    }

    /// Waits for every submitted operation. Operations complete in order and the first
    /// failure fails everything after it.
    fn drain(&mut self) {
        for rx in self.pending.drain(..) {
            match rx.recv() {
                Ok(Ok(())) => {
                    assert!(
                        !self.failed,
                        "an operation succeeded after an earlier one failed"
                    );
                    self.acked += 1;
                }
                Ok(Err(_)) | Err(_) => {
                    self.failed = true;
                    self.stopped = true;
                }
            }
        }
    }
}

fn open(store: &SimStore, opts: &WalOptions) -> strata_wal::Result<Wal> {
    Wal::open_with_store(Arc::new(store.clone()), opts.clone())
}

fn crash_mode(c: &Crash) -> CrashMode {
    match c.mode & 3 {
        0 => CrashMode::KeepUnsynced,
        1 => CrashMode::DropUnsynced,
        2 => CrashMode::Prefix(u64::from(c.param) * 8),
        _ => CrashMode::TornSectors(u64::from(c.param)),
    }
}

/// Damages the image's segment files; returns whether any byte or name changed.
fn mutate(image: &SimStore, mutations: &[Mutation]) -> bool {
    let mut changed = false;
    for m in mutations {
        let names: Vec<String> = image
            .names()
            .into_iter()
            .filter(|n| n.ends_with(".wal"))
            .collect();
        let file = match *m {
            Mutation::Truncate { file, .. }
            | Mutation::Zero { file, .. }
            | Mutation::Flip { file, .. }
            | Mutation::Overwrite { file, .. }
            | Mutation::Copy { file, .. }
            | Mutation::Remove { file } => file,
        };
        let Some(name) = names.get(usize::from(file) % names.len().max(1)) else {
            break;
        };
        if let Mutation::Remove { .. } = m {
            image.remove(name).expect("remove a listed file");
            changed = true;
            continue;
        }
        let Some(before) = image.file_bytes(name) else {
            continue;
        };
        let mut bytes = before.clone();
        // Offsets fall in the records (plus a little of the zero tail), not across the whole
        // mostly-empty segment.
        let span = (layout::used_len(&bytes) + 64).min(bytes.len()).max(1);
        let at = |o: u16| usize::from(o) % span;
        let len = bytes.len();
        match *m {
            Mutation::Truncate { offset, .. } => bytes.truncate(at(offset)),
            Mutation::Zero { offset, len: n, .. } => {
                let s = at(offset).min(len);
                let e = (s + usize::from(n) * 8 + 1).min(len);
                bytes[s..e].fill(0);
            }
            Mutation::Flip { offset, bit, .. } => {
                if let Some(b) = bytes.get_mut(at(offset)) {
                    *b ^= 1 << (bit % 8);
                }
            }
            Mutation::Overwrite {
                offset, bytes: b, ..
            } => {
                let s = at(offset);
                for (i, v) in b.iter().enumerate() {
                    if let Some(x) = bytes.get_mut(s + i) {
                        *x = *v;
                    }
                }
            }
            Mutation::Copy {
                offset,
                len: n,
                from,
                ..
            } => {
                let (to, from) = (at(offset).min(len), at(from).min(len));
                let n = (usize::from(n) * 8 + 8).min(len - to).min(len - from);
                bytes.copy_within(from..from + n, to);
            }
            Mutation::Remove { .. } => {}
        }
        if bytes != before {
            image.put_file(name, bytes);
            changed = true;
        }
    }
    changed
}

/// What a log shows through its API.
struct Seen {
    state: LogState,
    vote: Option<Vote>,
    entries: Vec<Entry>,
}

impl std::fmt::Debug for Seen {
    /// Ids and payload lengths only: payloads are large and deterministic.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let entries: Vec<(u64, u64, usize)> = self
            .entries
            .iter()
            .map(|e| (e.id.index.0, e.id.term.0, e.payload.len()))
            .collect();
        write!(
            f,
            "{{ state: {:?}, vote: {:?}, entries (index, term, len): {entries:?} }}",
            self.state, self.vote
        )
    }
}

/// Reads the whole log and checks that the API's views of it agree with each other.
fn observe(wal: &Wal) -> strata_wal::Result<Seen> {
    let state = wal.log_state()?;
    let vote = wal.vote()?;
    let entries = match (state.first_index, wal.last_index()?) {
        (Some(first), Some(last)) => wal.entries(first, LogIndex(last.0 + 1))?,
        (None, None) => Vec::new(),
        other => panic!("log_state and last_index disagree: {other:?}"),
    };
    for (i, e) in entries.iter().enumerate() {
        let first = state.first_index.map_or(0, |f| f.0);
        assert_eq!(e.id.index.0, first + i as u64, "entries() out of order");
    }
    assert_eq!(
        state.last,
        entries.last().map(|e| e.id).or(state.last_purged),
        "log_state().last disagrees with the entries"
    );
    Ok(Seen {
        state,
        vote,
        entries,
    })
}

/// The key of every entry: each must be exactly (id and payload) an entry appended at that
/// index by some operation of `history` or in `extra`. A miss is a wrong entry.
fn identify(entries: &[Entry], history: &[LogOp], extra: &[EntryKey]) -> Vec<EntryKey> {
    let mut written: HashMap<u64, Vec<EntryKey>> = HashMap::new();
    let appended = history.iter().flat_map(|op| match op {
        LogOp::Append(keys) => keys.as_slice(),
        _ => &[],
    });
    for k in appended.chain(extra) {
        written.entry(k.index).or_default().push(*k);
    }
    entries
        .iter()
        .map(|e| {
            let candidates = written.get(&e.id.index.0).map_or(&[][..], Vec::as_slice);
            *candidates.iter().find(|k| k.matches(e)).unwrap_or_else(|| {
                panic!(
                    "wrong entry at index {}: id {:?} with {} payload bytes was never appended \
                     there (appended there: {candidates:?})",
                    e.id.index,
                    e.id,
                    e.payload.len()
                )
            })
        })
        .collect()
}

/// The states the log went through whose observable parts are (entries, purge mark, vote):
/// the log after operation `k` of `history` for some `k >= lowest`, or after operation `k` plus
/// a non-empty prefix of the entries of append `k + 1` (a batch cut short by the crash or by
/// damage). Returns the next index each of them expects (see `State::next`); empty if none.
///
/// With `damaged`, an empty log with the purge mark and vote of such a state also matches:
/// when damage cuts the log before its latest purge mark, the entries of that state that lived
/// in segments the later purge recycled are gone, and recovery rightly refuses to show a log
/// with a hole, so it shows none of them (the next index is then the one after the purge mark).
fn matching_states(
    history: &[LogOp],
    lowest: usize,
    damaged: bool,
    keys: &[EntryKey],
    purged: Option<LogId>,
    vote: Option<Vote>,
) -> Vec<Option<u64>> {
    let mut found = Vec::new();
    let mut s = State::default();
    for k in 0..=history.len() {
        if k >= lowest && s.same_as(keys, purged, vote) {
            found.push(s.next);
        }
        if damaged && keys.is_empty() && s.purged == purged && s.vote == vote {
            found.push(purged.map(|p| p.index.0 + 1));
        }
        let Some(op) = history.get(k) else {
            break;
        };
        if let (true, LogOp::Append(new)) = (k >= lowest, op) {
            let held = s.entries.len();
            let partial = keys.len().saturating_sub(held);
            if partial > 0
                && partial < new.len()
                && s.purged == purged
                && s.vote == vote
                && s.entries.iter().zip(keys).all(|(a, b)| a.same_entry(b))
                && keys[held..].iter().zip(new).all(|(a, b)| a.same_entry(b))
            {
                found.push(Some(new[partial - 1].index + 1));
            }
        }
        s.apply(op);
    }
    found
}

/// Appends after recovery, then reopens: the log must be exactly the recovered one plus the
/// appended entries. The first index the recovered log takes must be the one a state it
/// matched expects (`nexts`).
fn continue_after_recovery(
    image: &SimStore,
    wal: Wal,
    history: &[LogOp],
    keys: Vec<EntryKey>,
    seen: &Seen,
    nexts: &[Option<u64>],
) {
    let purged = seen.state.last_purged;
    let term = keys.last().map_or(1, |k| k.term);
    let added = |start: u64| -> Vec<EntryKey> {
        (0..3u32)
            .map(|i| EntryKey {
                index: start + u64::from(i),
                term,
                leader: 1,
                generation: CONTINUATION_GENERATION,
                len: 40 + 700 * i,
                compressible: i == 1,
            })
            .collect()
    };
    let entries = |keys: &[EntryKey]| keys.iter().map(EntryKey::entry).collect::<Vec<_>>();
    // Most states expect the index after the last entry (or after the purge mark); a
    // truncation may have set another, which the refusal names.
    let guess = keys
        .last()
        .map(|k| k.index + 1)
        .or(purged.map(|p| p.index.0 + 1))
        .unwrap_or(1);
    let mut start = guess;
    let mut new = added(start);
    match wal.append(entries(&new)) {
        Ok(()) => assert!(
            nexts.iter().any(|n| n.is_none_or(|n| n == guess)),
            "the recovered log took an append at {guess}; its states expect {nexts:?}"
        ),
        Err(WalError::NonContiguous { expected, .. }) => {
            assert!(
                nexts.contains(&Some(expected.0)),
                "the recovered log expects index {expected} next; its states expect {nexts:?}"
            );
            start = expected.0;
            new = added(start);
            wal.append(entries(&new))
                .unwrap_or_else(|e| panic!("append at {start} after recovery failed: {e}"));
        }
        Err(e) => panic!("append after recovery failed: {e}"),
    }
    let mut expected = State {
        base: keys.first().map_or(start, |k| k.index),
        entries: keys.into(),
        purged,
        vote: seen.vote,
        next: Some(start),
    };
    expected.apply(&LogOp::Append(new.clone()));
    wal.close()
        .unwrap_or_else(|e| panic!("close after recovery failed: {e}"));
    let opts = WalOptions {
        segment_bytes: SEGMENT_BYTES,
        ..WalOptions::default()
    };
    let wal = open(image, &opts)
        .unwrap_or_else(|e| panic!("reopen after recovery and append failed: {e}"));
    let again = observe(&wal).unwrap_or_else(|e| panic!("reading the reopened log failed: {e}"));
    let keys = identify(&again.entries, history, &new);
    assert!(
        expected.same_as(&keys, again.state.last_purged, again.vote),
        "reopen after recovery and append differs:\n log {again:?}\n expected {expected:?}"
    );
}
