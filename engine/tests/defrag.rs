//! Defragmentation: the file shrinks to what is in use, every entry stays, readers keep their
//! snapshots, writers and readers go on meanwhile, and a power cut after any write, sync or
//! truncation of a defrag leaves a file that opens, passes the checker and holds exactly the
//! state before the defrag.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Model, dump, open_sim, value};
use strata_engine::btree::testing::{SimOp, SimStore, Survival};
use strata_engine::btree::{Db, DefragOptions, Durability, Options, StoreKind};

fn key(i: u32) -> Vec<u8> {
    format!("key{i:06}").into_bytes()
}

/// Fills `db` with `n` keys (every 16th value an overflow run), then deletes all but every
/// fourth key, so three quarters of the pages are free and spread over the file.
fn fragment(db: &Db, n: u32, value_len: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let mut w = db.begin_write().unwrap();
        for &i in chunk {
            let len = if i % 16 == 0 { 3000 } else { value_len };
            w.put(b"b", &key(i), &value(&key(i), 1, len)).unwrap();
            if i % 7 == 0 {
                w.put(b"other", &key(i), b"x").unwrap();
            }
        }
        w.commit(Durability::Durable).unwrap();
    }
    for chunk in (0..n).collect::<Vec<_>>().chunks(700) {
        let mut w = db.begin_write().unwrap();
        for &i in chunk {
            if i % 4 != 0 {
                w.delete(b"b", &key(i)).unwrap();
            }
        }
        w.commit(Durability::Durable).unwrap();
    }
    db.check().unwrap();
}

fn small_steps() -> DefragOptions {
    DefragOptions {
        step_keys: 8,
        sync_every_steps: 4,
        reader_wait: Duration::from_millis(200),
        truncate_step_bytes: 64 << 10,
        check_each_step: true,
        ..DefragOptions::default()
    }
}

fn defrag_real_file(kind: StoreKind) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let opts = Options {
        store: kind,
        ..Options::default()
    };
    let db = Db::open(&path, opts.clone()).unwrap();
    fragment(&db, 6000, 200);
    let before = dump(&db.begin_read().unwrap());
    let report = db
        .defrag(&DefragOptions {
            check_each_step: true,
            ..DefragOptions::default()
        })
        .unwrap();
    db.check().unwrap();
    assert!(report.truncated, "{kind:?}: {report:?}");
    // What is left free is about the slack defrag leaves for concurrent writers (64 pages).
    assert!(
        report.free_pages_after <= 80 && report.free_pages_before > 200,
        "{kind:?}: {report:?}"
    );
    assert!(
        report.page_count_after + 150 < report.page_count_before,
        "{kind:?}: {report:?}"
    );
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        report.file_bytes_after
    );
    assert_eq!(report.file_bytes_after, report.page_count_after * 4096);
    assert_eq!(dump(&db.begin_read().unwrap()), before);
    // The shrunk file takes writes again (it grows back) and reopens with the same contents.
    let mut w = db.begin_write().unwrap();
    for i in 0..2000 {
        w.put(b"new", &key(i), &value(&key(i), 2, 300)).unwrap();
    }
    w.commit(Durability::Durable).unwrap();
    db.check().unwrap();
    let after = dump(&db.begin_read().unwrap());
    drop(db);
    let db = Db::open(&path, opts).unwrap();
    db.check().unwrap();
    assert_eq!(dump(&db.begin_read().unwrap()), after);
}

#[test]
fn defrag_gives_free_space_back_on_the_mmap_backend() {
    defrag_real_file(StoreKind::Mmap);
}

#[test]
fn defrag_gives_free_space_back_on_the_pread_backend() {
    defrag_real_file(StoreKind::Pread);
}

#[test]
fn a_reader_keeps_its_snapshot_and_holds_back_the_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Db::open(&path, Options::default()).unwrap();
    fragment(&db, 4000, 200);
    let reader = db.begin_read().unwrap();
    let seen = dump(&reader);
    let len_before = std::fs::metadata(&path).unwrap().len();
    let report = db.defrag(&small_steps()).unwrap();
    db.check().unwrap();
    // The reader's snapshot may reach pages the defrag would cut: the file keeps them.
    assert!(!report.truncated, "{report:?}");
    assert!(std::fs::metadata(&path).unwrap().len() >= len_before);
    assert_eq!(
        dump(&reader),
        seen,
        "the reader's snapshot changed under it"
    );
    drop(reader);
    let report = db.defrag(&small_steps()).unwrap();
    db.check().unwrap();
    assert!(report.truncated, "{report:?}");
    assert!(std::fs::metadata(&path).unwrap().len() < len_before);
    assert_eq!(dump(&db.begin_read().unwrap()), seen);
}

/// A writer that commits pairs of keys with the same counter and readers that check each
/// snapshot holds equal pairs (and that it does not change while they read it) run through
/// a whole defrag on a real mapped file.
#[test]
fn writers_and_readers_go_on_during_defrag() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Db::open(&path, Options::default()).unwrap();
    fragment(&db, 6000, 200);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let mut w = db.begin_write().unwrap();
                let v = n.to_be_bytes();
                w.put(b"pair", b"a", &v).unwrap();
                w.put(b"pair", b"b", &v).unwrap();
                let i = (n % 6000) as u32;
                if n.is_multiple_of(3) {
                    w.delete(b"b", &key(i)).unwrap();
                } else {
                    w.put(b"b", &key(i), &value(&key(i), n as u32, 150))
                        .unwrap();
                }
                let d = if n.is_multiple_of(10) {
                    Durability::Durable
                } else {
                    Durability::Fast
                };
                w.commit(d).unwrap();
            }
            n
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (db, stop) = (db.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut checked = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let r = db.begin_read().unwrap();
                    let a = r.get(b"pair", b"a").unwrap().map(|v| v.into_owned());
                    let first = dump(&r);
                    assert_eq!(a, r.get(b"pair", b"b").unwrap().map(|v| v.into_owned()));
                    std::thread::sleep(Duration::from_millis(1));
                    assert_eq!(dump(&r), first, "a snapshot changed while read");
                    checked += 1;
                }
                checked
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    let report = db.defrag(&small_steps()).unwrap();
    stop.store(true, Ordering::Relaxed);
    let writes = writer.join().unwrap();
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(writes > 0 && reads > 0);
    assert!(report.steps > 1, "{report:?}");
    db.check().unwrap();
    db.sync().unwrap();
    let want = dump(&db.begin_read().unwrap());
    drop(db);
    let db = Db::open(&path, Options::default()).unwrap();
    db.check().unwrap();
    assert_eq!(dump(&db.begin_read().unwrap()), want);
}

/// Power cut after every operation of a defrag (each un-synced write and truncation lost, or
/// each kept or torn by a fixed pseudo-random choice): the file opens, passes the checker and
/// holds exactly the state before the defrag.
#[test]
fn power_cut_anywhere_in_a_defrag_keeps_the_state() {
    let disk = SimStore::new();
    let db = open_sim(&disk);
    fragment(&db, 1500, 60);
    let want: Model = dump(&db.begin_read().unwrap());
    let start = disk.ops_len();
    let report = db.defrag(&small_steps()).unwrap();
    db.check().unwrap();
    assert!(report.truncated, "{report:?}");
    assert!(report.file_bytes_after < report.file_bytes_before);
    let end = disk.ops_len();
    drop(db);
    let ops = disk.ops();
    let shrinks = ops[start..end]
        .iter()
        .filter(|o| matches!(o, SimOp::Shrink(_)))
        .count();
    assert!(shrinks > 1, "the defrag truncated in {shrinks} chunks");
    let mut images = 0;
    for n in start..=end {
        for mode in 0..2u64 {
            let mut fate = |i: usize| match mode {
                0 => Survival::Lost,
                _ => match (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 62 {
                    0 => Survival::Lost,
                    1 => Survival::Torn(1),
                    _ => Survival::Whole,
                },
            };
            let crashed = SimStore::from_image(disk.crash_image(n, &mut fate));
            let db = open_sim(&crashed);
            db.check()
                .unwrap_or_else(|e| panic!("after op {n} (mode {mode}): {e}"));
            assert_eq!(
                dump(&db.begin_read().unwrap()),
                want,
                "after op {n} (mode {mode})"
            );
            images += 1;
        }
    }
    assert!(images > 20);
}
