//! Basic operations on real files through both backends: put, get, delete, cursors, buckets,
//! large values, reopen.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::ops::Bound;

use common::{dump, value};
use strata_engine::btree::{Db, Durability, Options, StoreKind};

fn backends() -> [Options; 2] {
    [
        Options {
            store: StoreKind::Mmap,
            ..Options::default()
        },
        Options {
            store: StoreKind::Pread,
            ..Options::default()
        },
    ]
}

#[test]
fn put_get_delete_across_reopen() {
    for opts in backends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            let db = Db::open(&path, opts.clone()).unwrap();
            let mut w = db.begin_write().unwrap();
            for i in 0..5000u32 {
                let k = format!("key{i:06}");
                w.put(b"b", k.as_bytes(), &value(k.as_bytes(), 1, 100))
                    .unwrap();
            }
            w.commit(Durability::Durable).unwrap();
            db.check().unwrap();
            let mut w = db.begin_write().unwrap();
            for i in (0..5000u32).step_by(3) {
                assert!(w.delete(b"b", format!("key{i:06}").as_bytes()).unwrap());
            }
            assert!(!w.delete(b"b", b"absent").unwrap());
            w.commit(Durability::Durable).unwrap();
            let report = db.check().unwrap();
            assert_eq!(report.buckets[&b"b".to_vec()], 5000 - 1667);
        }
        let db = Db::open(&path, opts).unwrap();
        db.check().unwrap();
        let r = db.begin_read().unwrap();
        for i in 0..5000u32 {
            let k = format!("key{i:06}");
            let got = r.get(b"b", k.as_bytes()).unwrap();
            if i % 3 == 0 {
                assert!(got.is_none(), "{k} should be deleted");
            } else {
                assert_eq!(
                    got.unwrap().as_ref(),
                    value(k.as_bytes(), 1, 100).as_slice()
                );
            }
        }
        assert_eq!(r.bucket_len(b"b").unwrap(), Some(3333));
    }
}

#[test]
fn cursors_scan_between_bounds_both_ways() {
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
    for i in (0..1000u32).map(|i| i * 2) {
        w.put(b"b", format!("{i:05}").as_bytes(), b"v").unwrap();
    }
    w.commit(Durability::Fast).unwrap();
    let r = db.begin_read().unwrap();
    let keys = |it: strata_engine::btree::Range<'_>| -> Vec<String> {
        it.map(|kv| String::from_utf8(kv.unwrap().0.into_owned()).unwrap())
            .collect()
    };
    let fwd = keys(
        r.range(b"b", Bound::Included(b"00101"), Bound::Excluded(b"00110"))
            .unwrap(),
    );
    assert_eq!(fwd, ["00102", "00104", "00106", "00108"]);
    let rev = keys(
        r.range_rev(b"b", Bound::Excluded(b"00100"), Bound::Included(b"00108"))
            .unwrap(),
    );
    assert_eq!(rev, ["00108", "00106", "00104", "00102"]);
    assert_eq!(
        keys(r.range(b"b", Bound::Unbounded, Bound::Unbounded).unwrap()).len(),
        1000
    );
    assert_eq!(
        keys(
            r.range_rev(b"b", Bound::Unbounded, Bound::Unbounded)
                .unwrap()
        )
        .len(),
        1000
    );
    assert_eq!(
        keys(
            r.range(b"b", Bound::Excluded(b"01998"), Bound::Unbounded)
                .unwrap()
        )
        .len(),
        0
    );
    assert!(
        keys(
            r.range(b"missing", Bound::Unbounded, Bound::Unbounded)
                .unwrap()
        )
        .is_empty()
    );

    let mut c = r.cursor(b"b").unwrap();
    assert!(c.first().unwrap());
    assert_eq!(c.current().unwrap().unwrap().0.as_ref(), b"00000");
    assert!(c.last().unwrap());
    assert_eq!(c.current().unwrap().unwrap().0.as_ref(), b"01998");
    assert!(c.seek(b"00999").unwrap());
    assert_eq!(c.current().unwrap().unwrap().0.as_ref(), b"01000");
    assert!(c.prev().unwrap());
    assert_eq!(c.current().unwrap().unwrap().0.as_ref(), b"00998");
    assert!(!c.seek(b"02000").unwrap());
    // Walk the whole tree backwards with prev.
    assert!(c.last().unwrap());
    let mut n = 1;
    while c.prev().unwrap() {
        n += 1;
    }
    assert_eq!(n, 1000);
}

#[test]
fn large_values_use_overflow_runs_and_are_freed() {
    for opts in backends() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path().join("db"), opts).unwrap();
        let big = value(b"big", 1, 2 << 20);
        let mut w = db.begin_write().unwrap();
        w.put(b"b", b"big", &big).unwrap();
        w.put(b"b", b"mid", &value(b"mid", 1, 5000)).unwrap();
        w.commit(Durability::Durable).unwrap();
        db.check().unwrap();
        assert_eq!(
            db.begin_read()
                .unwrap()
                .get(b"b", b"big")
                .unwrap()
                .unwrap()
                .as_ref(),
            big.as_slice()
        );
        let pages_before = db.stats().unwrap().page_count;
        // Rewriting the value many times reuses the freed runs instead of growing the file.
        for v in 2..6 {
            let mut w = db.begin_write().unwrap();
            w.put(b"b", b"big", &value(b"big", v, 2 << 20)).unwrap();
            w.commit(Durability::Durable).unwrap();
            db.check().unwrap();
        }
        let pages_after = db.stats().unwrap().page_count;
        assert!(
            pages_after <= pages_before * 3,
            "{pages_before} -> {pages_after}"
        );
        let mut w = db.begin_write().unwrap();
        assert!(w.delete(b"b", b"big").unwrap());
        w.commit(Durability::Durable).unwrap();
        let report = db.check().unwrap();
        assert!(report.free_pages > 512, "{report:?}");
    }
}

#[test]
fn buckets_are_separate_and_can_be_deleted() {
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
    for b in [b"a".as_slice(), b"b", b"c"] {
        for i in 0..300u32 {
            w.put(b, format!("k{i}").as_bytes(), b).unwrap();
        }
    }
    w.create_bucket(b"empty").unwrap();
    w.commit(Durability::Durable).unwrap();
    db.check().unwrap();
    let mut w = db.begin_write().unwrap();
    assert!(w.delete_bucket(b"b").unwrap());
    assert!(!w.delete_bucket(b"zzz").unwrap());
    w.commit(Durability::Durable).unwrap();
    let report = db.check().unwrap();
    assert_eq!(
        report.buckets.keys().cloned().collect::<Vec<_>>(),
        vec![b"a".to_vec(), b"c".to_vec(), b"empty".to_vec()]
    );
    let r = db.begin_read().unwrap();
    assert_eq!(dump(&r)[b"a".as_slice()].len(), 300);
    assert_eq!(r.get(b"c", b"k7").unwrap().unwrap().as_ref(), b"c");
    assert!(r.get(b"b", b"k7").unwrap().is_none());
}

#[test]
fn bad_arguments_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path().join("db"), Options::default()).unwrap();
    let mut w = db.begin_write().unwrap();
    assert!(w.put(b"b", b"", b"v").is_err());
    assert!(w.put(b"b", &vec![b'k'; 5000], b"v").is_err());
    assert!(w.put(b"", b"k", b"v").is_err());
    w.commit(Durability::Durable).unwrap();
    assert!(db.begin_read().unwrap().bucket_names().unwrap().is_empty());
    assert!(
        Db::open(
            dir.path().join("db2"),
            Options {
                page_size: 3000,
                ..Options::default()
            }
        )
        .is_err()
    );
}
