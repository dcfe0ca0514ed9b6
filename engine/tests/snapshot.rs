//! Snapshot streams: one read transaction's state, written while a writer goes on, restores
//! to an identical database (and MVCC store, by HashKV); damaged or truncated streams are
//! refused and leave nothing behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{dump, value};
use strata_engine::btree::{Db, Durability, Options};
use strata_engine::mvcc::{MvccOptions, MvccStore, PutRequest, WriteRequest};

#[test]
fn a_snapshot_restores_the_state_it_was_taken_at() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("db"), Options::default()).unwrap();
    let mut w = db.begin_write().unwrap();
    for i in 0..3000u32 {
        let k = format!("k{i:05}");
        w.put(
            b"a",
            k.as_bytes(),
            &value(k.as_bytes(), 1, if i % 100 == 0 { 5000 } else { 40 }),
        )
        .unwrap();
        w.put(b"b", k.as_bytes(), b"x").unwrap();
    }
    w.create_bucket(b"empty").unwrap();
    w.commit(Durability::Durable).unwrap();
    let snap = db.begin_read().unwrap();
    let expected = dump(&snap);
    // The writer goes on while the snapshot is written.
    let writer = {
        let db = db.clone();
        std::thread::spawn(move || {
            for r in 0..20u32 {
                let mut w = db.begin_write().unwrap();
                w.put(b"a", format!("k{r:05}").as_bytes(), b"changed")
                    .unwrap();
                w.delete(b"b", format!("k{r:05}").as_bytes()).unwrap();
                w.commit(Durability::Fast).unwrap();
            }
        })
    };
    let mut stream = Vec::new();
    let n = snap.write_snapshot(&mut stream).unwrap();
    assert_eq!(n as usize, stream.len());
    writer.join().unwrap();
    drop(snap);
    let restored = Db::restore_snapshot(
        dir.path().join("restored"),
        stream.as_slice(),
        Options::default(),
    )
    .unwrap();
    restored.check().unwrap();
    assert_eq!(dump(&restored.begin_read().unwrap()), expected);
    drop(restored);
    // It is durable: reopening gives the same.
    let reopened = Db::open(dir.path().join("restored"), Options::default()).unwrap();
    assert_eq!(dump(&reopened.begin_read().unwrap()), expected);
}

#[test]
fn damaged_or_truncated_streams_are_refused_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("db"), Options::default()).unwrap();
    let mut w = db.begin_write().unwrap();
    for i in 0..200u32 {
        w.put(b"a", format!("k{i}").as_bytes(), b"value").unwrap();
    }
    w.commit(Durability::Durable).unwrap();
    let mut stream = Vec::new();
    db.begin_read()
        .unwrap()
        .write_snapshot(&mut stream)
        .unwrap();
    let target = dir.path().join("restored");
    for cut in [0, 7, 20, stream.len() / 2, stream.len() - 1] {
        assert!(
            Db::restore_snapshot(&target, &stream[..cut], Options::default()).is_err(),
            "cut at {cut}"
        );
        assert!(!target.exists());
    }
    for at in [3, 17, stream.len() / 3, stream.len() - 5, stream.len() - 2] {
        let mut bad = stream.clone();
        bad[at] ^= 0x20;
        assert!(
            Db::restore_snapshot(&target, bad.as_slice(), Options::default()).is_err(),
            "flip at {at}"
        );
        assert!(!target.exists());
    }
    assert!(
        Db::restore_snapshot(dir.path().join("db"), stream.as_slice(), Options::default()).is_err(),
        "never over an existing file"
    );
}

#[test]
fn a_restored_mvcc_store_hashes_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("db"), Options::default()).unwrap();
    let s = Arc::new(MvccStore::open(db, MvccOptions::default()).unwrap());
    let reqs: Vec<_> = (1..=300u64)
        .map(|i| {
            (
                i,
                WriteRequest::Put(PutRequest {
                    key: format!("k{}", i % 37).into_bytes(),
                    value: i.to_string().into_bytes(),
                    ..PutRequest::default()
                }),
            )
        })
        .collect();
    s.apply(&reqs).unwrap();
    let mut stream = Vec::new();
    s.db()
        .begin_read()
        .unwrap()
        .write_snapshot(&mut stream)
        .unwrap();
    let restored = MvccStore::open(
        Db::restore_snapshot(dir.path().join("r"), stream.as_slice(), Options::default()).unwrap(),
        MvccOptions::default(),
    )
    .unwrap();
    assert_eq!(restored.hash_kv(0).unwrap(), s.hash_kv(0).unwrap());
    assert_eq!(
        restored.revision().unwrap(),
        301,
        "300 puts after the empty store's revision 1"
    );
    assert_eq!(restored.applied_index().unwrap(), 300);
}
