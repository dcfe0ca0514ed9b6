//! The MVCC store's behaviour beyond the model test (`mvcc_model.rs`): etcd's errors, range
//! options, leases, HashKV across members, a power cut anywhere in a compaction, nested
//! transactions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use strata_engine::btree::testing::SimStore;
use strata_engine::btree::{Db, Options};
use strata_engine::mvcc::*;

fn open(store: &SimStore) -> MvccStore {
    let db = Db::open_with_store(
        Arc::new(store.clone()),
        Options {
            page_size: 1024,
            ..Options::default()
        },
    )
    .unwrap();
    MvccStore::open(
        db,
        MvccOptions {
            compaction_batch: 3,
            ..MvccOptions::default()
        },
    )
    .unwrap()
}

fn put(key: &str, value: &str) -> WriteRequest {
    WriteRequest::Put(PutRequest {
        key: key.into(),
        value: value.into(),
        ..PutRequest::default()
    })
}

#[test]
fn errors_are_etcds() {
    let s = open(&SimStore::new());
    let out = s
        .apply(&[
            (1, put("a", "1")),
            (2, put("a", "2")),
            (3, WriteRequest::Compact { revision: 2 }),
        ])
        .unwrap();
    assert!(out.iter().all(Result::is_ok));
    let e = s
        .range(&RangeRequest {
            key: b"a".to_vec(),
            revision: 0,
            ..RangeRequest::default()
        })
        .unwrap();
    assert_eq!(e.revision, 3);
    let old = s.range(&RangeRequest {
        key: b"a".to_vec(),
        revision: 2,
        ..RangeRequest::default()
    });
    assert_eq!(
        old.unwrap().response.kvs[0].value,
        b"1".to_vec(),
        "the compaction revision itself stays readable"
    );
    let e = s
        .apply(&[(4, WriteRequest::Compact { revision: 2 })])
        .unwrap()
        .remove(0)
        .unwrap_err();
    assert_eq!(e.to_string(), "mvcc: required revision has been compacted");
    let e = s
        .range(&RangeRequest {
            key: b"a".to_vec(),
            revision: 9,
            ..RangeRequest::default()
        })
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "mvcc: required revision is a future revision"
    );
    let e = s
        .apply(&[(5, put("", "x"))])
        .unwrap()
        .remove(0)
        .unwrap_err();
    assert_eq!(e.to_string(), "etcdserver: key is not provided");
    let dup = TxnRequest {
        success: vec![
            RequestOp::Put(PutRequest {
                key: b"k".to_vec(),
                ..PutRequest::default()
            }),
            RequestOp::DeleteRange(DeleteRangeRequest {
                key: b"a".to_vec(),
                range_end: b"z".to_vec(),
                prev_kv: false,
            }),
        ],
        ..TxnRequest::default()
    };
    let e = s
        .apply(&[(6, WriteRequest::Txn(dup))])
        .unwrap()
        .remove(0)
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "etcdserver: duplicate key given in txn request"
    );
    assert_eq!(s.revision().unwrap(), 3, "refused requests change nothing");
}

#[test]
fn range_options_sort_filter_and_count_like_etcd() {
    let s = open(&SimStore::new());
    let reqs: Vec<(u64, WriteRequest)> = ["c", "a", "b", "a", "d"]
        .iter()
        .enumerate()
        .map(|(i, key)| (i as u64 + 1, put(key, &format!("v{i}"))))
        .collect();
    s.apply(&reqs).unwrap();
    let all = |f: fn(&mut RangeRequest)| {
        let mut r = RangeRequest {
            key: b"a".to_vec(),
            range_end: vec![0],
            ..RangeRequest::default()
        };
        f(&mut r);
        s.range(&r).unwrap().response
    };
    let keys = |r: &RangeResponse| {
        r.kvs
            .iter()
            .map(|kv| String::from_utf8(kv.key.clone()).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(&all(|_| {})), ["a", "b", "c", "d"]);
    let r = all(|r| r.limit = 2);
    assert_eq!(
        (keys(&r), r.more, r.count),
        (vec!["a".to_string(), "b".to_string()], true, 4)
    );
    let r = all(|r| {
        r.sort_target = SortTarget::Mod;
        r.sort_order = SortOrder::Descend;
    });
    assert_eq!(keys(&r), ["d", "a", "b", "c"]);
    let r = all(|r| r.sort_target = SortTarget::Create);
    assert_eq!(
        keys(&r),
        ["c", "a", "b", "d"],
        "a target other than the key sorts ascending"
    );
    let r = all(|r| r.min_mod_revision = 5);
    assert_eq!(
        (keys(&r), r.count),
        (vec!["a".to_string(), "d".to_string()], 4),
        "count is before filters, as etcd"
    );
    let r = all(|r| r.count_only = true);
    assert_eq!((r.kvs.len(), r.count), (0, 4));
    let r = all(|r| r.keys_only = true);
    assert!(r.kvs.iter().all(|kv| kv.value.is_empty()));
    assert_eq!(r.kvs[0].version, 2);
}

#[test]
fn leases_attach_keys_expire_by_the_callers_clock_and_revoke_in_one_revision() {
    use std::time::{Duration, Instant};
    let disk = SimStore::new();
    let s = open(&disk);
    let grant = |id, ttl| WriteRequest::LeaseGrant { id, ttl };
    let out = s
        .apply(&[
            (1, grant(0, 1)),
            (2, grant(77, 30)),
            (3, grant(77, 30)),
            (4, grant(5, 9_000_000_001)),
        ])
        .unwrap();
    assert_eq!(
        out[0].as_ref().unwrap().response,
        WriteResponse::LeaseGrant { id: 1, ttl: 2 },
        "the log index names it; the minimum TTL applies"
    );
    assert_eq!(
        out[1].as_ref().unwrap().response,
        WriteResponse::LeaseGrant { id: 77, ttl: 30 }
    );
    assert_eq!(
        out[2].as_ref().unwrap_err().to_string(),
        "etcdserver: lease already exists"
    );
    assert_eq!(
        out[3].as_ref().unwrap_err().to_string(),
        "etcdserver: too large lease TTL"
    );
    assert_eq!(
        s.revision().unwrap(),
        1,
        "granting leases does not change the key space"
    );
    let leased = |key: &str, lease| {
        WriteRequest::Put(PutRequest {
            key: key.into(),
            value: b"v".to_vec(),
            lease,
            ..PutRequest::default()
        })
    };
    let out = s
        .apply(&[
            (5, leased("a", 77)),
            (6, leased("b", 77)),
            (7, leased("c", 1)),
            (8, leased("d", 999)),
        ])
        .unwrap();
    assert_eq!(
        out[3].as_ref().unwrap_err().to_string(),
        "etcdserver: requested lease not found"
    );
    // Re-putting "b" without a lease detaches it.
    s.apply(&[(9, put("b", "plain"))]).unwrap();
    let now = Instant::now();
    let info = s.lease_time_to_live(77, now).unwrap().unwrap();
    assert_eq!((info.granted, info.keys.clone()), (30, vec![b"a".to_vec()]));
    assert!(info.remaining > 0 && info.remaining <= 30);
    assert_eq!(s.leases().unwrap(), vec![1, 77]);
    assert!(s.expired(now).unwrap().is_empty());
    assert_eq!(s.expired(now + Duration::from_secs(3)).unwrap(), vec![1]);
    s.renew(1, now + Duration::from_secs(2)).unwrap();
    assert!(
        s.expired(now + Duration::from_secs(3)).unwrap().is_empty(),
        "a keep-alive moves the deadline"
    );
    // Restart: leases and attachments come back from the file.
    s.sync().unwrap();
    drop(s);
    let s = open(&disk);
    assert_eq!(
        s.lease_time_to_live(77, Instant::now())
            .unwrap()
            .unwrap()
            .keys,
        vec![b"a".to_vec()]
    );
    let rev = s.revision().unwrap();
    let out = s
        .apply(&[
            (10, WriteRequest::LeaseRevoke { id: 1 }),
            (11, WriteRequest::LeaseRevoke { id: 1 }),
        ])
        .unwrap();
    assert_eq!(
        out[0].as_ref().unwrap().revision,
        rev + 1,
        "the attached key goes in one revision"
    );
    assert_eq!(
        out[1].as_ref().unwrap_err().to_string(),
        "etcdserver: requested lease not found"
    );
    let r = s
        .range(&RangeRequest {
            key: b"a".to_vec(),
            range_end: vec![0],
            ..RangeRequest::default()
        })
        .unwrap();
    let keys: Vec<_> = r.response.kvs.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(
        keys,
        vec![b"a".to_vec(), b"b".to_vec()],
        "c was attached to lease 1"
    );
    assert_eq!(s.leases().unwrap(), vec![77]);
    assert_eq!(s.lease_time_to_live(1, Instant::now()).unwrap(), None);
    s.db().check().unwrap();
}

#[test]
fn hash_kv_is_the_same_on_members_with_the_same_history() {
    let a = open(&SimStore::new());
    let b = open(&SimStore::new());
    let history: Vec<(u64, WriteRequest)> = (1..=20u64)
        .map(|i| {
            let key = format!("k{}", i % 4);
            let req = if i % 7 == 0 {
                WriteRequest::DeleteRange(DeleteRangeRequest {
                    key: key.into_bytes(),
                    ..DeleteRangeRequest::default()
                })
            } else {
                put(&key, &format!("v{i}"))
            };
            (i, req)
        })
        .collect();
    a.apply(&history).unwrap();
    b.apply(&history).unwrap();
    let (h1, c1, r1) = a.hash_kv(0).unwrap();
    assert_eq!(b.hash_kv(0).unwrap(), (h1, c1, r1));
    let at10 = a.hash_kv(10).unwrap();
    assert_ne!(at10.0, h1, "a different revision hashes differently");
    // Members compacting at the same revision still agree.
    a.apply(&[(21, WriteRequest::Compact { revision: 12 })])
        .unwrap();
    let (h2, c2, _) = a.hash_kv(0).unwrap();
    assert_eq!(c2, 12);
    b.apply(&[(21, WriteRequest::Compact { revision: 12 })])
        .unwrap();
    assert_eq!(b.hash_kv(0).unwrap().0, h2);
    assert_eq!(
        a.hash_kv(5).unwrap_err().to_string(),
        "mvcc: required revision has been compacted"
    );
    assert_eq!(
        a.hash_kv(99).unwrap_err().to_string(),
        "mvcc: required revision is a future revision"
    );
}

/// Compaction whose batches become durable on the cadence as it goes,
/// and power cut after every operation of the store's history: every crash image opens,
/// finishes an interrupted compaction, and answers reads as the store did before the cut (at
/// any revision the durable state retains).
#[test]
fn power_cut_anywhere_in_a_compaction_resumes_it() {
    let disk = SimStore::new();
    // Small batches, and a cadence that makes every couple of them durable.
    let db = Db::open_with_store(
        Arc::new(disk.clone()),
        Options {
            page_size: 1024,
            ..Options::default()
        },
    )
    .unwrap();
    let opts = MvccOptions {
        compaction_batch: 3,
        sync_entries: 6,
        sync_interval: std::time::Duration::from_secs(3600),
        ..MvccOptions::default()
    };
    let s = MvccStore::open(db, opts).unwrap();
    let reqs: Vec<(u64, WriteRequest)> = (1..=120u64)
        .map(|i| (i, put(&format!("k{}", i % 9), &i.to_string())))
        .collect();
    s.apply(&reqs).unwrap();
    s.sync().unwrap();
    let before: Vec<RangeResponse> = (1..=120)
        .map(|rev| {
            s.range(&RangeRequest {
                key: b"k".to_vec(),
                range_end: vec![0],
                revision: rev,
                ..RangeRequest::default()
            })
            .unwrap()
            .response
        })
        .collect();
    let start_ops = disk.ops_len();
    s.apply(&[(121, WriteRequest::Compact { revision: 60 })])
        .unwrap();
    // Physical removal runs on the compactor thread; wait for it as etcd's physical
    // compaction does.
    s.wait_compacted(60).unwrap();
    assert_eq!(s.compacted_physically().unwrap(), 60);
    s.sync().unwrap();
    let end_ops = disk.ops_len();
    let (hash_after, _, _) = s.hash_kv(0).unwrap();
    drop(s);
    let syncs_during = disk.ops()[start_ops..end_ops]
        .iter()
        .filter(|o| matches!(o, strata_engine::btree::testing::SimOp::Sync))
        .count();
    let mut compacted_points = 0;
    for n in start_ops..=end_ops {
        let mut lose = |_| strata_engine::btree::testing::Survival::Lost;
        let crashed = SimStore::from_image(disk.crash_image(n, &mut lose));
        let s = open(&crashed);
        s.db().check().unwrap();
        let compacted = s.compacted().unwrap();
        assert!(
            compacted == 0 || compacted == 60,
            "after op {n}: compacted at {compacted}"
        );
        // Every revision reads as before the cut, or (below the compaction) is refused: a
        // half-finished compaction must never show partial history.
        for (i, want) in before.iter().enumerate() {
            let rev = 1 + i as i64;
            let got = s.range(&RangeRequest {
                key: b"k".to_vec(),
                range_end: vec![0],
                revision: rev,
                ..RangeRequest::default()
            });
            match got {
                Ok(a) => assert_eq!(&a.response, want, "after op {n}: revision {rev}"),
                Err(e) => assert!(
                    rev < 60
                        && e == MvccError::Compacted {
                            requested: rev,
                            compacted: 60
                        },
                    "after op {n}: revision {rev}: {e:?}"
                ),
            }
        }
        if compacted == 60 {
            assert_eq!(
                s.hash_kv(0).unwrap().0,
                hash_after,
                "after op {n}: a resumed compaction ends where the uninterrupted one did"
            );
            compacted_points += 1;
            // The compactor finishes what the crash interrupted, in the background.
            s.wait_compacted(60).unwrap();
            s.db().check().unwrap();
            assert_eq!(s.hash_kv(0).unwrap().0, hash_after, "after op {n}");
        }
    }
    // The cut points must include ones after a sync that landed mid-compaction.
    assert!(
        syncs_during >= 2,
        "{syncs_during} syncs during the compaction"
    );
    assert!(compacted_points > 0 && compacted_points < end_ops - start_ops + 1);
}

#[test]
fn nested_transactions_compare_before_anything_is_written() {
    let s = open(&SimStore::new());
    let p = |k: &str, v: &str| {
        RequestOp::Put(PutRequest {
            key: k.into(),
            value: v.into(),
            ..PutRequest::default()
        })
    };
    let nested = TxnRequest {
        compare: vec![Compare {
            result: CompareResult::Equal,
            target: CompareTarget::Version(0),
            key: b"k".to_vec(),
            range_end: vec![],
        }],
        success: vec![p("j", "saw the state before the outer put")],
        failure: vec![p("j", "saw the outer put")],
    };
    let outer = TxnRequest {
        compare: vec![],
        success: vec![p("k", "1"), RequestOp::Txn(nested)],
        failure: vec![],
    };
    let out = s
        .apply(&[(1, WriteRequest::Txn(outer))])
        .unwrap()
        .remove(0)
        .unwrap();
    assert_eq!(out.revision, 2, "one transaction, one revision");
    let r = s
        .range(&RangeRequest {
            key: b"j".to_vec(),
            ..RangeRequest::default()
        })
        .unwrap();
    assert_eq!(
        r.response.kvs[0].value,
        b"saw the state before the outer put".to_vec()
    );
    assert_eq!(
        (
            r.response.kvs[0].mod_revision,
            r.response.kvs[0].create_revision
        ),
        (2, 2)
    );
    // A put in the nested branch that the outer branch also puts is a duplicate, in either
    // nested branch.
    let dup = TxnRequest {
        success: vec![
            p("x", "1"),
            RequestOp::Txn(TxnRequest {
                compare: vec![],
                success: vec![],
                failure: vec![p("x", "2")],
            }),
        ],
        ..TxnRequest::default()
    };
    let e = s
        .apply(&[(2, WriteRequest::Txn(dup))])
        .unwrap()
        .remove(0)
        .unwrap_err();
    assert_eq!(e, MvccError::DuplicateKey);
    // Puts of the same key in the two nested branches are fine: only one runs.
    let ok = TxnRequest {
        success: vec![RequestOp::Txn(TxnRequest {
            compare: vec![],
            success: vec![p("y", "s")],
            failure: vec![p("y", "f")],
        })],
        ..TxnRequest::default()
    };
    assert!(
        s.apply(&[(3, WriteRequest::Txn(ok))])
            .unwrap()
            .remove(0)
            .is_ok()
    );
    // A compare over a range holds only if every key in it satisfies it; a missing key's value
    // never matches.
    let all_v1 = |end: &str| TxnRequest {
        compare: vec![Compare {
            result: CompareResult::Equal,
            target: CompareTarget::Version(1),
            key: b"a".to_vec(),
            range_end: end.into(),
        }],
        ..TxnRequest::default()
    };
    let succeeded = |t: TxnRequest, i| match s
        .apply(&[(i, WriteRequest::Txn(t))])
        .unwrap()
        .remove(0)
        .unwrap()
        .response
    {
        WriteResponse::Txn(r) => r.succeeded,
        other => panic!("{other:?}"),
    };
    assert!(succeeded(all_v1("z"), 4), "j, k, y all have version 1");
    let missing_value = TxnRequest {
        compare: vec![Compare {
            result: CompareResult::NotEqual,
            target: CompareTarget::Value(b"x".to_vec()),
            key: b"nope".to_vec(),
            range_end: vec![],
        }],
        ..TxnRequest::default()
    };
    assert!(!succeeded(missing_value, 5));
}
