//! Model test: random transactions against a `BTreeMap` model on the crash-simulating store,
//! with durable and fast commits, aborts, syncs and reopens; the checker runs after every
//! commit. Then power is cut at many points of the recorded I/O history (each un-synced write
//! kept, lost or torn at random) and every crash image must open, pass the checker, and hold
//! exactly the last acknowledged durable state or the one being committed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::{Model, dump, open_sim, value};
use proptest::prelude::*;
use strata_engine::btree::testing::{SimStore, Survival};
use strata_engine::btree::{Db, Durability};

#[derive(Clone, Debug)]
enum Mutation {
    Put { bucket: u8, key: u16, len: usize },
    Delete { bucket: u8, key: u16 },
    DeleteRange { bucket: u8, from: u16, n: u16 },
    DeleteBucket { bucket: u8 },
}

#[derive(Clone, Debug)]
enum Step {
    Txn { muts: Vec<Mutation>, end: End },
    Sync,
    Reopen,
}

#[derive(Clone, Copy, Debug)]
enum End {
    Durable,
    Fast,
    Abort,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let len = prop_oneof![8 => 0usize..80, 2 => 200usize..3000];
    prop_oneof![
        12 => (0u8..3, 0u16..600, len).prop_map(|(bucket, key, len)| Mutation::Put { bucket, key, len }),
        5 => (0u8..3, 0u16..600).prop_map(|(bucket, key)| Mutation::Delete { bucket, key }),
        1 => (0u8..3, 0u16..600, 1u16..200).prop_map(|(bucket, from, n)| Mutation::DeleteRange { bucket, from, n }),
        1 => (0u8..3).prop_map(|bucket| Mutation::DeleteBucket { bucket }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let end = prop_oneof![3 => Just(End::Durable), 5 => Just(End::Fast), 1 => Just(End::Abort)];
    prop_oneof![
        10 => (prop::collection::vec(mutation(), 1..120), end).prop_map(|(muts, end)| Step::Txn { muts, end }),
        1 => Just(Step::Sync),
        1 => Just(Step::Reopen),
    ]
}

fn bucket_name(b: u8) -> Vec<u8> {
    format!("bucket{b}").into_bytes()
}

fn key(k: u16) -> Vec<u8> {
    format!("key{k:05}").into_bytes()
}

/// Applies one mutation to the database transaction and the model.
fn apply(w: &mut strata_engine::btree::WriteTxn<'_>, m: &mut Model, mu: &Mutation, version: u32) {
    match *mu {
        Mutation::Put {
            bucket,
            key: k,
            len,
        } => {
            let (b, k) = (bucket_name(bucket), key(k));
            let v = value(&k, version, len);
            w.put(&b, &k, &v).unwrap();
            m.entry(b).or_default().insert(k, v);
        }
        Mutation::Delete { bucket, key: k } => {
            let (b, k) = (bucket_name(bucket), key(k));
            let existed = m.get_mut(&b).and_then(|t| t.remove(&k)).is_some();
            assert_eq!(w.delete(&b, &k).unwrap(), existed);
        }
        Mutation::DeleteRange { bucket, from, n } => {
            let b = bucket_name(bucket);
            for k in from..from.saturating_add(n) {
                let k = key(k);
                let existed = m.get_mut(&b).and_then(|t| t.remove(&k)).is_some();
                assert_eq!(w.delete(&b, &k).unwrap(), existed);
            }
        }
        Mutation::DeleteBucket { bucket } => {
            let b = bucket_name(bucket);
            assert_eq!(w.delete_bucket(&b).unwrap(), m.remove(&b).is_some());
        }
    }
}

/// A durable state and the span of store operations during which it was being committed.
struct DurablePoint {
    start_ops: usize,
    end_ops: usize,
    state: Model,
}

fn run(steps: &[Step], seed: u64) {
    let store = SimStore::new();
    let mut db = open_sim(&store);
    let mut committed = Model::new();
    let mut points = vec![DurablePoint {
        start_ops: 0,
        end_ops: store.ops_len(),
        state: Model::new(),
    }];
    let mut version = 0u32;
    for s in steps {
        match s {
            Step::Txn { muts, end } => {
                let mut next = committed.clone();
                let mut w = db.begin_write().unwrap();
                for mu in muts {
                    version += 1;
                    apply(&mut w, &mut next, mu, version);
                }
                let start = store.ops_len();
                match end {
                    End::Abort => w.abort(),
                    End::Fast => {
                        w.commit(Durability::Fast).unwrap();
                        committed = next;
                    }
                    End::Durable => {
                        w.commit(Durability::Durable).unwrap();
                        committed = next;
                        points.push(DurablePoint {
                            start_ops: start,
                            end_ops: store.ops_len(),
                            state: committed.clone(),
                        });
                    }
                }
                db.check().unwrap();
                assert_eq!(dump(&db.begin_read().unwrap()), committed, "after {end:?}");
            }
            Step::Sync => {
                let start = store.ops_len();
                db.sync().unwrap();
                points.push(DurablePoint {
                    start_ops: start,
                    end_ops: store.ops_len(),
                    state: committed.clone(),
                });
            }
            Step::Reopen => {
                drop(db);
                db = open_sim(&store);
                committed = points.last().unwrap().state.clone();
                db.check().unwrap();
                assert_eq!(dump(&db.begin_read().unwrap()), committed, "after reopen");
            }
        }
    }
    drop(db);
    crash_everywhere(&store, &points, seed);
}

/// Cuts power after every operation of a short history; for a long one, at every sync boundary
/// and its neighbours plus 40 random points.
fn crash_everywhere(store: &SimStore, points: &[DurablePoint], seed: u64) {
    let total = store.ops_len();
    let first = points[0].end_ops;
    let mut at: Vec<usize> = Vec::new();
    for p in points {
        for n in [
            p.start_ops,
            p.start_ops + 1,
            p.end_ops.saturating_sub(2),
            p.end_ops.saturating_sub(1),
            p.end_ops,
        ] {
            at.push(n);
        }
    }
    let mut x = seed | 1;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    if total - first <= 400 {
        // Short histories: a cut after every single operation.
        at.extend(first..=total);
    } else {
        for _ in 0..40 {
            at.push(first + (rnd() as usize) % (total - first + 1));
        }
    }
    at.retain(|&n| n >= first && n <= total);
    at.sort_unstable();
    at.dedup();
    for n in at {
        let mut survive = |_: usize| match rnd() % 4 {
            0 => Survival::Lost,
            1 => Survival::Torn((rnd() % 4) as usize),
            _ => Survival::Whole,
        };
        let image = store.crash_image(n, &mut survive);
        let acked = points
            .iter()
            .rev()
            .find(|p| p.end_ops <= n)
            .expect("init point");
        let inflight = points.iter().find(|p| p.start_ops < n && n < p.end_ops);
        let crashed = SimStore::from_image(image);
        let db = open_sim(&crashed);
        db.check()
            .unwrap_or_else(|e| panic!("crash after op {n}: check failed: {e}"));
        let got = dump(&db.begin_read().unwrap());
        let ok = got == acked.state || inflight.is_some_and(|p| got == p.state);
        assert!(
            ok,
            "crash after op {n} of {total}: state is neither the acknowledged durable one nor the in-flight one"
        );
        // The recovered database keeps working.
        let mut w = db.begin_write().unwrap();
        w.put(b"after-crash", b"k", b"v").unwrap();
        w.commit(Durability::Durable).unwrap();
        db.check().unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn model_with_crashes(steps in prop::collection::vec(step(), 1..25), seed in any::<u64>()) {
        run(&steps, seed);
    }
}

#[test]
fn append_heavy_revision_keys_fill_pages() {
    // The MVCC layer appends revision keys in order; those splits must leave full pages.
    let store = SimStore::new();
    let db = open_sim(&store);
    let mut w = db.begin_write().unwrap();
    for rev in 0..5000u64 {
        w.put(b"key", &rev.to_be_bytes(), &[7u8; 40]).unwrap();
    }
    w.commit(Durability::Durable).unwrap();
    let report = db.check().unwrap();
    // 5000 entries of 16 + 8 + 40 bytes is 320,000 bytes: about 330 full 1 KiB pages.
    assert!(report.reachable_pages < 360, "{report:?}");
    let mut model = BTreeMap::new();
    for rev in 0..5000u64 {
        model.insert(rev.to_be_bytes().to_vec(), vec![7u8; 40]);
    }
    assert_eq!(dump(&db.begin_read().unwrap())[b"key".as_slice()], model);
}

#[test]
fn reopen_after_drop_keeps_only_durable_state() {
    let store = SimStore::new();
    {
        let db = open_sim(&store);
        let mut w = db.begin_write().unwrap();
        w.put(b"b", b"durable", b"1").unwrap();
        w.commit(Durability::Durable).unwrap();
        let mut w = db.begin_write().unwrap();
        w.put(b"b", b"fast", b"2").unwrap();
        w.commit(Durability::Fast).unwrap();
        assert!(
            db.begin_read()
                .unwrap()
                .get(b"b", b"fast")
                .unwrap()
                .is_some()
        );
    }
    let db: Db = open_sim(&store);
    let r = db.begin_read().unwrap();
    assert!(r.get(b"b", b"durable").unwrap().is_some());
    assert!(
        r.get(b"b", b"fast").unwrap().is_none(),
        "a fast commit is not durable without a later sync"
    );
}

#[test]
fn commits_written_in_several_batches_survive_a_crash_anywhere() {
    // Commits far larger than the writer's stream buffer (256 KiB) go out in several batches
    // while the rest is still being encoded, and a durable one starts writeback early; a crash
    // between any two of those writes must still leave the acknowledged state or the new one.
    let big = |round: usize| Step::Txn {
        muts: (0..600u16)
            .map(|key| Mutation::Put {
                bucket: (key % 3) as u8,
                key,
                len: 40 + (key as usize * 7 + round * 13) % 2500,
            })
            .collect(),
        end: End::Durable,
    };
    let steps = vec![
        big(0),
        big(1),
        Step::Txn {
            muts: vec![Mutation::DeleteRange {
                bucket: 1,
                from: 0,
                n: 150,
            }],
            end: End::Fast,
        },
        big(2),
        Step::Reopen,
        big(3),
    ];
    for seed in [1, 2, 3] {
        run(&steps, seed);
    }
}
