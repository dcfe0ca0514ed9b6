//! Regressions found by the server's differential test against etcd 3.4.23
//! (`server/tests/differential.rs`): each test names what Strata did and what etcd does, so
//! the rule holds without an etcd binary at hand.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use strata_engine::btree::testing::SimStore;
use strata_engine::btree::{Db, Options};
use strata_engine::mvcc::*;

fn open() -> Arc<MvccStore> {
    let db = Db::open_with_store(
        Arc::new(SimStore::new()),
        Options {
            page_size: 1024,
            ..Options::default()
        },
    )
    .unwrap();
    Arc::new(MvccStore::open(db, MvccOptions::default()).unwrap())
}

fn put(key: &str, value: &str) -> RequestOp {
    RequestOp::Put(PutRequest {
        key: key.into(),
        value: value.into(),
        ..PutRequest::default()
    })
}

fn del(key: &str, range_end: &[u8]) -> RequestOp {
    RequestOp::DeleteRange(DeleteRangeRequest {
        key: key.into(),
        range_end: range_end.to_vec(),
        prev_kv: false,
    })
}

fn nested(success: Vec<RequestOp>, failure: Vec<RequestOp>) -> RequestOp {
    RequestOp::Txn(TxnRequest {
        compare: Vec::new(),
        success,
        failure,
    })
}

/// Applies a transaction whose success branch is `ops`; whether it was accepted.
fn accepted(s: &MvccStore, index: u64, ops: Vec<RequestOp>) -> bool {
    let t = TxnRequest {
        success: ops,
        ..TxnRequest::default()
    };
    match s.apply(&[(index, WriteRequest::Txn(t))]).unwrap().remove(0) {
        Ok(_) => true,
        Err(MvccError::DuplicateKey) => false,
        Err(e) => panic!("unexpected error {e:?}"),
    }
}

/// Strata refused a nested transaction putting a key in one branch and deleting it in the
/// other, and a from-key delete beside a put; etcd's `checkIntervals` accepts both (only one
/// branch runs; its interval for a from-key delete, `[key, "\0")`, holds no key), and accepts
/// a nested put followed by a later sibling's delete of the same key.
#[test]
fn duplicate_key_rule_is_etcds_check_intervals() {
    let s = open();
    let mut i = 0;
    let mut check = |ops: Vec<RequestOp>| {
        i += 1;
        accepted(&s, i, ops)
    };
    assert!(check(vec![nested(
        vec![put("a", "1")],
        vec![del("a", b"")]
    )]));
    assert!(check(vec![put("a", "1"), del("\0", b"\0")]));
    assert!(check(vec![
        nested(vec![put("a", "1")], vec![]),
        nested(vec![del("a", b"")], vec![])
    ]));
    assert!(check(vec![
        nested(vec![put("a", "1")], vec![put("a", "2")]),
        put("b", "1")
    ]));
    // Still duplicates, as in etcd.
    assert!(!check(vec![put("a", "1"), put("a", "2")]));
    assert!(!check(vec![put("b", "1"), del("a", b"c")]));
    assert!(!check(vec![
        nested(vec![del("a", b"")], vec![]),
        nested(vec![put("a", "1")], vec![])
    ]));
    assert!(!check(vec![
        nested(vec![put("a", "1")], vec![]),
        put("a", "2")
    ]));
    assert!(!check(vec![
        nested(vec![put("x", "1")], vec![]),
        nested(vec![], vec![put("x", "2")])
    ]));
}

fn range(s: &MvccStore, f: impl FnOnce(&mut RangeRequest)) -> Vec<String> {
    let mut r = RangeRequest {
        key: vec![0],
        range_end: vec![0],
        ..RangeRequest::default()
    };
    f(&mut r);
    s.range(&r)
        .unwrap()
        .response
        .kvs
        .into_iter()
        .map(|kv| String::from_utf8(kv.key).unwrap())
        .collect()
}

/// Strata reversed a sorted range for descending order, so ties came back in descending key
/// order; etcd (Go's stable insertion sort for up to 12 entries, reversed comparator) keeps
/// ties in key order. And with a sort target but no sort order, etcd reads only limit + 1
/// keys in key order before sorting them, where Strata sorted the whole range.
#[test]
fn sorted_ranges_order_ties_and_limits_as_etcd() {
    let s = open();
    let w: Vec<(u64, WriteRequest)> = [("a", "v1"), ("b", "v2"), ("c", "v0"), ("d", "v1")]
        .iter()
        .enumerate()
        .map(|(i, (k, v))| {
            (
                i as u64 + 1,
                WriteRequest::Put(PutRequest {
                    key: (*k).into(),
                    value: (*v).into(),
                    ..PutRequest::default()
                }),
            )
        })
        .collect();
    s.apply(&w).unwrap();
    let by_value = |order| {
        range(&s, |r| {
            r.sort_target = SortTarget::Value;
            r.sort_order = order;
        })
    };
    assert_eq!(by_value(SortOrder::Descend), ["b", "a", "d", "c"]);
    assert_eq!(by_value(SortOrder::Ascend), ["c", "a", "d", "b"]);
    // No order, target value, limit 1: etcd reads a, b (limit + 1) and sorts those by value,
    // so c (the smallest value of the range) is not the answer.
    let limited = range(&s, |r| {
        r.sort_target = SortTarget::Value;
        r.limit = 1;
    });
    assert_eq!(limited, ["a"]);
    let limited = range(&s, |r| {
        r.sort_target = SortTarget::Create;
        r.sort_order = SortOrder::Descend;
        r.limit = 2;
    });
    assert_eq!(
        limited,
        ["d", "c"],
        "an explicit order sorts the whole range"
    );
}

/// A transaction put a key in a nested transaction and deleted it in a later sibling: Strata
/// gave the delete event the put as its previous value; etcd reads a watcher's previous value
/// at the revision before the event's, so it is the value from before the transaction.
#[test]
fn watch_prev_kv_of_a_key_written_twice_in_one_txn_is_from_before_the_txn() {
    let s = open();
    s.apply(&[(
        1,
        WriteRequest::Put(PutRequest {
            key: "k".into(),
            value: "old".into(),
            ..PutRequest::default()
        }),
    )])
    .unwrap();
    let w = s
        .watch(WatchRequest {
            key: b"k".to_vec(),
            prev_kv: true,
            ..WatchRequest::default()
        })
        .unwrap();
    let t = TxnRequest {
        success: vec![
            nested(vec![put("k", "new")], vec![]),
            nested(vec![del("k", b"")], vec![]),
        ],
        ..TxnRequest::default()
    };
    s.apply(&[(2, WriteRequest::Txn(t))])
        .unwrap()
        .remove(0)
        .unwrap();
    let m = w.recv_timeout(Duration::from_secs(5)).unwrap();
    let Some(WatchMessage::Events { revision, events }) = m else {
        panic!("no events: {m:?}");
    };
    assert_eq!(revision, 3);
    let prev: Vec<Option<Vec<u8>>> = events
        .iter()
        .map(|e| e.prev_kv.as_ref().map(|p| p.value.clone()))
        .collect();
    assert_eq!(prev, [Some(b"old".to_vec()), Some(b"old".to_vec())]);
}

/// A put with `ignore_value` on a missing key and an unknown lease: Strata said "key not
/// found"; etcd's applier looks the lease up first for a put on its own ("requested lease not
/// found"), while inside a transaction `checkRequestPut` checks the key first.
#[test]
fn put_on_a_missing_key_with_an_unknown_lease_fails_as_etcd() {
    let s = open();
    let p = PutRequest {
        key: "missing".into(),
        lease: 99,
        ignore_value: true,
        ..PutRequest::default()
    };
    let e = s
        .apply(&[(1, WriteRequest::Put(p.clone()))])
        .unwrap()
        .remove(0)
        .unwrap_err();
    assert_eq!(e, MvccError::LeaseNotFound);
    let t = TxnRequest {
        success: vec![RequestOp::Put(p)],
        ..TxnRequest::default()
    };
    let e = s
        .apply(&[(2, WriteRequest::Txn(t))])
        .unwrap()
        .remove(0)
        .unwrap_err();
    assert_eq!(e, MvccError::KeyNotFound);
}

/// A transaction with a range at a future revision and then a put with an unknown lease:
/// Strata checked in operation order ("future revision"); etcd checks every put on the path
/// before any range ("requested lease not found").
#[test]
fn txn_checks_puts_before_ranges_as_etcd() {
    let s = open();
    let t = TxnRequest {
        success: vec![
            RequestOp::Range(RangeRequest {
                key: "a".into(),
                revision: 50,
                ..RangeRequest::default()
            }),
            nested(
                vec![RequestOp::Put(PutRequest {
                    key: "b".into(),
                    lease: 99,
                    ..PutRequest::default()
                })],
                vec![],
            ),
        ],
        ..TxnRequest::default()
    };
    let e = s
        .apply(&[(1, WriteRequest::Txn(t))])
        .unwrap()
        .remove(0)
        .unwrap_err();
    assert_eq!(e, MvccError::LeaseNotFound);
}

/// HashKV at a negative revision: Strata hashed the current revision; etcd's HashByRev takes
/// only 0 as "current", so a negative revision hashes no revision (just the bucket name).
#[test]
fn hash_kv_at_a_negative_revision_hashes_nothing_as_etcd() {
    let s = open();
    s.apply(&[(
        1,
        WriteRequest::Put(PutRequest {
            key: "a".into(),
            value: "1".into(),
            ..PutRequest::default()
        }),
    )])
    .unwrap();
    assert_eq!(s.hash_kv(-1).unwrap(), (crc32c::crc32c(b"key"), 0, -1));
    assert_ne!(s.hash_kv(0).unwrap().0, crc32c::crc32c(b"key"));
}
