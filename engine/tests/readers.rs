//! Readers running beside the writer on real files keep their snapshot exactly, across fast
//! and durable commits, page reuse and file growth (remapping); the oldest reader is reported.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Model, dump, value};
use strata_engine::btree::{Db, Durability, Options, StoreKind, TxnId};

fn readers_keep_their_snapshot(store: StoreKind) {
    let dir = tempfile::tempdir().unwrap();
    // No address-space reservation: every growth step makes a new mapping under the readers.
    let db = Db::open(
        dir.path().join("db"),
        Options {
            page_size: 1024,
            store,
            map_reserve_min_bytes: 0,
            ..Options::default()
        },
    )
    .unwrap();
    let models: Arc<Mutex<HashMap<TxnId, Model>>> = Arc::new(Mutex::new(HashMap::new()));
    models
        .lock()
        .unwrap()
        .insert(db.begin_read().unwrap().txn_id(), Model::new());
    let done = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for r in 0..3u64 {
        let (db, models, done) = (db.clone(), models.clone(), done.clone());
        readers.push(std::thread::spawn(move || {
            let mut checked = 0;
            while !done.load(Ordering::Acquire) || checked == 0 {
                let txn = db.begin_read().unwrap();
                let expected = models
                    .lock()
                    .unwrap()
                    .get(&txn.txn_id())
                    .cloned()
                    .expect("model recorded before publish");
                // Hold the snapshot while the writer moves on, then read all of it.
                std::thread::sleep(Duration::from_millis(1 + r));
                assert_eq!(
                    dump(&txn),
                    expected,
                    "reader {r} at txn {:?} saw a changed snapshot",
                    txn.txn_id()
                );
                checked += 1;
            }
            checked
        }));
    }
    let mut model = Model::new();
    let mut x = 12345u64;
    for t in 0..150u32 {
        let mut w = db.begin_write().unwrap();
        for _ in 0..40 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let k = format!("k{:04}", (x >> 33) % 800).into_bytes();
            if (x >> 20).is_multiple_of(4) {
                w.delete(b"b", &k).unwrap();
                model.entry(b"b".to_vec()).or_default().remove(&k);
            } else {
                let len = if (x >> 12).is_multiple_of(10) {
                    3000
                } else {
                    60
                };
                let v = value(&k, t, len);
                w.put(b"b", &k, &v).unwrap();
                model.entry(b"b".to_vec()).or_default().insert(k, v);
            }
        }
        models.lock().unwrap().insert(w.txn_id(), model.clone());
        w.commit(if t % 5 == 0 {
            Durability::Durable
        } else {
            Durability::Fast
        })
        .unwrap();
    }
    done.store(true, Ordering::Release);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    db.sync().unwrap();
    db.check().unwrap();
    assert_eq!(dump(&db.begin_read().unwrap()), model);
}

#[test]
fn readers_keep_their_snapshot_mmap() {
    readers_keep_their_snapshot(StoreKind::Mmap);
}

#[test]
fn readers_keep_their_snapshot_pread() {
    readers_keep_their_snapshot(StoreKind::Pread);
}

#[test]
fn a_long_reader_delays_reuse_but_not_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path().join("db"),
        Options {
            page_size: 1024,
            ..Options::default()
        },
    )
    .unwrap();
    let mut w = db.begin_write().unwrap();
    for i in 0..500u32 {
        w.put(b"b", format!("k{i:04}").as_bytes(), &[1u8; 50])
            .unwrap();
    }
    w.commit(Durability::Durable).unwrap();
    let old = db.begin_read().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    for round in 0..20u8 {
        let mut w = db.begin_write().unwrap();
        for i in 0..500u32 {
            w.put(b"b", format!("k{i:04}").as_bytes(), &[round; 50])
                .unwrap();
        }
        w.commit(Durability::Durable).unwrap();
    }
    let stats = db.stats().unwrap();
    assert_eq!(stats.readers, 1);
    assert!(stats.oldest_reader_age.unwrap() >= Duration::from_millis(20));
    assert!(
        stats.pending_pages > 0,
        "pages the old reader can see must wait: {stats:?}"
    );
    assert_eq!(
        old.get(b"b", b"k0042").unwrap().unwrap().as_ref(),
        &[1u8; 50]
    );
    let grown = stats.page_count;
    drop(old);
    // With the reader gone the next transactions reuse pages instead of growing the file.
    for round in 0..20u8 {
        let mut w = db.begin_write().unwrap();
        for i in 0..500u32 {
            w.put(b"b", format!("k{i:04}").as_bytes(), &[round; 50])
                .unwrap();
        }
        w.commit(Durability::Durable).unwrap();
    }
    let after = db.stats().unwrap();
    assert_eq!(after.readers, 0);
    assert!(after.oldest_reader_age.is_none());
    assert!(after.page_count <= grown, "{grown} -> {}", after.page_count);
    db.check().unwrap();
}

#[test]
fn releasing_mapped_pages_waits_for_no_reader_and_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("db"), Options::default()).unwrap();
    let mut w = db.begin_write().unwrap();
    for i in 0..2000u32 {
        w.put(b"b", format!("k{i:05}").as_bytes(), &value(b"k", i, 100))
            .unwrap();
    }
    w.commit(Durability::Durable).unwrap();
    let before = dump(&db.begin_read().unwrap());
    let r = db.begin_read().unwrap();
    assert!(
        !db.release_mapped_pages().unwrap(),
        "a live reader may hold borrowed pages"
    );
    drop(r);
    assert!(db.release_mapped_pages().unwrap());
    // The pages come back from the file, unchanged.
    assert_eq!(dump(&db.begin_read().unwrap()), before);
    db.check().unwrap();
}
