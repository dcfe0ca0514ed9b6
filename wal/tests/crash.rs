//! Property test: random appends, truncations, purges and votes, some waited for and some in
//! flight, with simulated power loss at random moments. After every reopen the log must be
//! the state after some prefix of the submitted operations (a torn last append may keep a
//! prefix of its entries) that includes every acknowledged operation, with that prefix's vote.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use proptest::prelude::*;
use strata_wal::testing::{CrashMode, SimStore};
use strata_wal::{Entry, LogId, LogIndex, NodeId, Term, Vote, Wal, WalOptions, WriteOp};

#[derive(Debug, Clone)]
enum Step {
    Append { n: u64, len: usize, wait: bool },
    Truncate { back: u64 },
    Purge { forward: u64 },
    Vote { term: u64 },
    Crash { mode: u8, seed: u64 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (1u64..20, 0usize..3000, any::<bool>()).prop_map(|(n, len, wait)| Step::Append { n, len, wait }),
        1 => (0u64..10).prop_map(|back| Step::Truncate { back }),
        1 => (0u64..40).prop_map(|forward| Step::Purge { forward }),
        1 => (1u64..100).prop_map(|term| Step::Vote { term }),
        1 => (0u8..4, any::<u64>()).prop_map(|(mode, seed)| Step::Crash { mode, seed }),
    ]
}

/// The logical log as the caller sees it.
#[derive(Clone, PartialEq, Default)]
struct Model {
    first: u64,
    entries: Vec<Entry>,
    purged: Option<LogId>,
    vote: Option<Vote>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<(u64, u64, usize)> = self
            .entries
            .iter()
            .map(|e| (e.id.index.0, e.id.term.0, e.payload.len()))
            .collect();
        write!(
            f,
            "Model {{ first: {}, entries (index, term, len): {:?}, purged: {:?}, vote: {:?} }}",
            self.first, ids, self.purged, self.vote
        )
    }
}

impl Model {
    fn next(&self) -> u64 {
        self.first + self.entries.len() as u64
    }
}

fn observe(wal: &Wal) -> Model {
    let st = wal.log_state().unwrap();
    let vote = wal.vote().unwrap();
    match (st.first_index, st.last) {
        (Some(first), Some(last)) => Model {
            first: first.0,
            entries: wal.entries(first, LogIndex(last.index.0 + 1)).unwrap(),
            purged: st.last_purged,
            vote,
        },
        _ => Model {
            first: st.last_purged.map_or(1, |p| p.index.0 + 1),
            entries: Vec::new(),
            purged: st.last_purged,
            vote,
        },
    }
}

/// Every state the log may legally be in after a crash: after each prefix of the operations,
/// and inside an append, after each prefix of its entries.
fn candidates(start: &Model, ops: &[WriteOp]) -> Vec<Model> {
    let mut out = vec![start.clone()];
    let mut m = start.clone();
    for op in ops {
        match op {
            WriteOp::Append(es) => {
                for e in es {
                    if m.entries.is_empty() {
                        m.first = e.id.index.0;
                    }
                    m.entries.push(e.clone());
                    out.push(m.clone());
                }
                continue;
            }
            WriteOp::TruncateAfter(a) => {
                let keep = a.map_or(0, |a| (a.0 + 1).saturating_sub(m.first)) as usize;
                m.entries.truncate(keep.min(m.entries.len()));
            }
            WriteOp::PurgeThrough(id) => {
                let drop = (id.index.0 + 1)
                    .saturating_sub(m.first)
                    .min(m.entries.len() as u64);
                m.entries.drain(..drop as usize);
                if m.entries.is_empty() {
                    m.first = id.index.0 + 1;
                } else {
                    m.first += drop;
                }
                m.purged = Some(*id);
            }
            WriteOp::SaveVote(v) => m.vote = Some(*v),
        }
        out.push(m.clone());
    }
    out
}

/// Position in `candidates` reached once op `k` (0-based) is complete.
fn candidate_index_after(start_len: usize, ops: &[WriteOp], k: usize) -> usize {
    let _ = start_len;
    let mut idx = 0;
    for op in &ops[..k] {
        idx += match op {
            WriteOp::Append(es) => es.len(),
            _ => 1,
        };
    }
    idx
}

fn run(steps: Vec<Step>) {
    let mut store = SimStore::new();
    let o = WalOptions {
        hot_tail_bytes_max: 20_000,
        ..opts(SMALL_SEGMENT)
    };
    let mut wal = open_sim(&store, o.clone()).unwrap();
    let mut model = Model {
        first: 1,
        ..Model::default()
    };
    // Operations submitted since the last crash, and how many of them are acknowledged.
    let mut since: Vec<WriteOp> = Vec::new();
    let mut start = observe(&wal);
    let acked = Arc::new(Mutex::new(0usize));
    let mut term = 1;
    for s in steps {
        let op = match s {
            Step::Append { n, len, wait } => {
                let from = model.next();
                let es: Vec<Entry> = (from..from + n)
                    .map(|i| Entry::new(term, 1, i, payload(i, term, len)))
                    .collect();
                Some((WriteOp::Append(es), wait))
            }
            Step::Truncate { back } => {
                let last = model.next().checked_sub(1);
                let floor = model.purged.map(|p| p.index.0);
                match last {
                    Some(last) if last >= model.first => {
                        let to = last.saturating_sub(back).max(model.first.saturating_sub(1));
                        let to = floor.map_or(to, |f| to.max(f));
                        term += 1;
                        Some((WriteOp::TruncateAfter(Some(LogIndex(to))), true))
                    }
                    _ => None,
                }
            }
            Step::Purge { forward } => {
                let through = model.first + forward;
                let id = match model.entries.get(forward as usize) {
                    Some(e) => e.id,
                    None => LogId {
                        term: Term(term),
                        leader: NodeId(1),
                        index: LogIndex(through),
                    },
                };
                Some((WriteOp::PurgeThrough(id), forward % 2 == 0))
            }
            Step::Vote { term: t } => Some((
                WriteOp::SaveVote(Vote {
                    term: Term(t),
                    voted_for: Some(NodeId(t % 3)),
                    committed: t % 2 == 0,
                }),
                false,
            )),
            Step::Crash { mode, seed } => {
                let mode = match mode {
                    0 => CrashMode::DropUnsynced,
                    1 => CrashMode::KeepUnsynced,
                    2 => CrashMode::TornSectors(seed),
                    _ => CrashMode::Prefix(seed % 5000),
                };
                // Acknowledged before the image is taken: their data is in it.
                let acked_now = *acked.lock().unwrap();
                let image = store.crash_image(mode);
                drop(wal);
                store = image;
                wal = open_sim(&store, o.clone()).expect("recovery after a crash must succeed");
                let got = observe(&wal);
                let cands = candidates(&start, &since);
                let min = candidate_index_after(0, &since, acked_now);
                let pos = cands.iter().rposition(|c| *c == got);
                assert!(
                    pos.is_some_and(|p| p >= min),
                    "after {mode:?}: recovered state is not a legal prefix containing the {acked_now} acknowledged ops\n got {got:?}\n at {pos:?}, need >= {min}"
                );
                model = got.clone();
                start = got;
                since.clear();
                *acked.lock().unwrap() = 0;
                None
            }
        };
        let Some((op, wait)) = op else { continue };
        // Apply to the model exactly as the log will.
        let c = candidates(&model, std::slice::from_ref(&op));
        model = c.last().unwrap().clone();
        since.push(op.clone());
        if wait {
            wal.submit_wait(op).unwrap();
            *acked.lock().unwrap() = since.len();
        } else {
            let acked = acked.clone();
            let me = since.len();
            wal.submit(
                op,
                Box::new(move |r| {
                    r.unwrap();
                    let mut a = acked.lock().unwrap();
                    // Completions come in order.
                    assert_eq!(*a + 1, me);
                    *a = me;
                }),
            )
            .unwrap();
        }
    }
    // A clean shutdown keeps everything.
    drop(wal);
    let wal = open_sim(&store, o).unwrap();
    assert_eq!(observe(&wal), model);
}

#[test]
fn regression_purge_past_end_then_rotate() {
    run(vec![
        Step::Purge { forward: 10 },
        Step::Append {
            n: 19,
            len: 2719,
            wait: true,
        },
        Step::Truncate { back: 5 },
        Step::Vote { term: 93 },
        Step::Append {
            n: 9,
            len: 2609,
            wait: false,
        },
        Step::Crash { mode: 1, seed: 1 },
    ]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn crash_recovery_yields_an_acknowledged_prefix(steps in prop::collection::vec(step(), 1..60)) {
        run(steps);
    }
}
