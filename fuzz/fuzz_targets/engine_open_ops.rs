#![no_main]
#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The B+tree against a model, with crashes and damaged files. The input is a byte-coded list
//! of operations (see `Op` below) run on a database with 1 KiB pages over a `SimStore`:
//! puts (small and overflow-sized values), deletes, bucket deletes, fast and durable commits,
//! defrags, reopens, power cuts (un-synced writes kept, lost or torn at random), and damage (bytes of
//! the file overwritten, then reopened).
//!
//! Checks:
//! - Until the first damage: after every commit the database reads back exactly the model and
//!   passes `check`; a reopen or a power cut gives back exactly the last durable state.
//! - After damage: opening, reading and checking may fail (that is the point: the damage must
//!   be reported, never panic). If the damaged file opens, reads in full and passes `check`,
//!   what it holds becomes the model, and every later operation must keep matching it and keep
//!   passing `check`: writing to a damaged-but-consistent file never corrupts it further.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use strata_engine::btree::testing::{SimStore, Survival};
use strata_engine::btree::{Db, DefragOptions, Durability, Options};

type Model = BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>>;

/// Most operations one input runs (keeps an execution to milliseconds).
const OPS_MAX: usize = 96;

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from(self.u8()?) | (u16::from(self.u8()?) << 8))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from(self.u16()?) | (u32::from(self.u16()?) << 16))
    }
}

enum Mutation {
    Put(Vec<u8>, Vec<u8>, Vec<u8>),
    Delete(Vec<u8>, Vec<u8>),
    DeleteBucket(Vec<u8>),
}

fn opts() -> Options {
    Options { page_size: 1024, ..Options::default() }
}

fn open(store: &SimStore) -> Option<Db> {
    Db::open_with_store(Arc::new(store.clone()), opts()).ok()
}

/// Everything the database holds, or `None` if a read fails.
fn dump(db: &Db) -> Option<Model> {
    let txn = db.begin_read().ok()?;
    let mut m = Model::new();
    for name in txn.bucket_names().ok()? {
        let mut b = BTreeMap::new();
        for kv in txn.range(&name, Bound::Unbounded, Bound::Unbounded).ok()? {
            let (k, v) = kv.ok()?;
            b.insert(k.into_owned(), v.into_owned());
        }
        m.insert(name, b);
    }
    Some(m)
}

fn bucket(b: u8) -> Vec<u8> {
    vec![b'b', b'0' + b % 3]
}

fn value(len_code: u8, tag: u32) -> Vec<u8> {
    // Mostly small values; a quarter are large enough for overflow runs (> 256 bytes).
    let len = if len_code & 3 == 0 { 200 + usize::from(len_code) * 12 } else { usize::from(len_code >> 2) };
    (0..len).map(|i| (tag as usize).wrapping_add(i) as u8).collect()
}

fn commit(db: &Db, muts: &[Mutation], durable: bool, model: &mut Model) {
    let mut w = db.begin_write().unwrap();
    for m in muts {
        match m {
            Mutation::Put(b, k, v) => {
                w.put(b, k, v).unwrap();
                model.entry(b.clone()).or_default().insert(k.clone(), v.clone());
            }
            Mutation::Delete(b, k) => {
                let had = model.get_mut(b).and_then(|t| t.remove(k)).is_some();
                assert_eq!(w.delete(b, k).unwrap(), had);
            }
            Mutation::DeleteBucket(b) => {
                assert_eq!(w.delete_bucket(b).unwrap(), model.remove(b).is_some());
            }
        }
    }
    w.commit(if durable { Durability::Durable } else { Durability::Fast }).unwrap();
}

fn run(data: &[u8]) {
    let mut input = Input(data);
    let mut store = SimStore::new();
    let mut db = open(&store).expect("a new database opens");
    let mut model = Model::new();
    let mut durable = Model::new();
    // Durable states of this store: (first op of the commit, op after its last sync, state).
    let mut points: Vec<(usize, usize, Model)> = vec![(0, store.ops_len(), Model::new())];
    let mut pending: Vec<Mutation> = Vec::new();
    let mut tag = 0u32;
    for _ in 0..OPS_MAX {
        let Some(op) = input.u8() else { break };
        tag += 1;
        match op % 10 {
            0..=3 => {
                let (Some(b), Some(k), Some(l)) = (input.u8(), input.u16(), input.u8()) else { break };
                let key = format!("k{:04}", k % 400).into_bytes();
                pending.push(Mutation::Put(bucket(b), key, value(l, tag)));
            }
            4 => {
                let (Some(b), Some(k)) = (input.u8(), input.u16()) else { break };
                pending.push(Mutation::Delete(bucket(b), format!("k{:04}", k % 400).into_bytes()));
            }
            5 => {
                let Some(b) = input.u8() else { break };
                pending.push(Mutation::DeleteBucket(bucket(b)));
            }
            6 => {
                let durable_commit = op & 0x10 != 0;
                let start = store.ops_len();
                commit(&db, &pending, durable_commit, &mut model);
                pending.clear();
                if durable_commit {
                    durable = model.clone();
                    points.push((start, store.ops_len(), durable.clone()));
                }
                db.check().unwrap();
                assert!(dump(&db).as_ref() == Some(&model), "read back differs from the model");
                if op & 0x40 != 0 {
                    // Defrag: moves pages, cuts the free tail, truncates; changes no entry and
                    // leaves everything durable. A cut inside it gives the state before (if it
                    // was durable) or the model.
                    let start = store.ops_len();
                    let opts = DefragOptions {
                        step_keys: 4,
                        sync_every_steps: 2,
                        slack_pages_min: 2,
                        truncate_step_bytes: 4096,
                        step_pause: std::time::Duration::ZERO,
                        ..DefragOptions::default()
                    };
                    db.defrag(&opts).unwrap();
                    durable = model.clone();
                    points.push((start, store.ops_len(), durable.clone()));
                    db.check().unwrap();
                    assert!(dump(&db).as_ref() == Some(&model), "defrag changed the contents");
                }
            }
            7 => {
                // Abort what is pending, then reopen: only the durable state survives.
                pending.clear();
                drop(db);
                db = open(&store).expect("reopen of an undamaged file");
                model = durable.clone();
                verify_reopened(&db, &model);
            }
            8 => {
                // Power cut after any operation of this store's history: writes before the
                // last sync are on disk, later ones kept, lost or torn at random.
                let Some(seed) = input.u32() else { break };
                pending.clear();
                drop(db);
                let cut = seed as usize % (store.ops_len() + 1);
                let mut x = u64::from(seed) | 1;
                let mut fate = |_: usize| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    match x % 4 {
                        0 => Survival::Lost,
                        1 => Survival::Torn((x >> 8) as usize % 3),
                        _ => Survival::Whole,
                    }
                };
                let image = store.crash_image(cut, &mut fate);
                // The last durable state acknowledged before the cut, or the one in flight.
                let acked = points.iter().rev().find(|p| p.1 <= cut).map(|p| p.2.clone());
                let inflight = points.iter().find(|p| p.0 < cut && cut < p.1).map(|p| p.2.clone());
                store = SimStore::from_image(image);
                let Some(acked) = acked else {
                    // Cut while the file itself was being created: it may not open.
                    return;
                };
                db = open(&store).expect("reopen after a power cut");
                db.check().unwrap();
                let got = dump(&db).expect("read after a power cut");
                assert!(got == acked || inflight.as_ref() == Some(&got), "power cut gave a state that was never durable");
                model = got.clone();
                durable = got.clone();
                points = vec![(0, 0, got)];
            }
            _ => {
                // Damage: overwrite a few bytes anywhere in the file and reopen.
                let (Some(at), Some(n)) = (input.u32(), input.u8()) else { break };
                let mut image = store.image();
                if image.is_empty() {
                    continue;
                }
                let start = at as usize % image.len();
                for i in 0..usize::from(n % 16) {
                    let Some(b) = input.u8() else { break };
                    if let Some(slot) = image.get_mut(start + i) {
                        *slot = b;
                    }
                }
                pending.clear();
                drop(db);
                store = SimStore::from_image(image);
                // Damage may be refused at open, on read or by the checker: all fine.
                let Some(d) = open(&store) else { return };
                let Some(seen) = dump(&d) else { return };
                if d.check().is_err() {
                    return;
                }
                db = d;
                model = seen.clone();
                durable = seen.clone();
                points = vec![(0, 0, seen)];
            }
        }
    }
}

/// After damage, the state a damaged file opened with was adopted as durable only once it
/// passed the checker, so the same expectations hold either way.
fn verify_reopened(db: &Db, model: &Model) {
    db.check().unwrap();
    assert!(dump(db).as_ref() == Some(model), "reopened state differs from the last durable one");
}

fuzz_target!(|data: &[u8]| run(data));
