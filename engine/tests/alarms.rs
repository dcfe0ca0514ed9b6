//! Alarms (etcd's capped applier under NOSPACE), the lease-ID floor across a snapshot
//! restore, and the whole-backend hash.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use strata_engine::btree::testing::SimStore;
use strata_engine::btree::{Db, Options};
use strata_engine::mvcc::*;

fn db(store: &SimStore) -> Db {
    Db::open_with_store(
        Arc::new(store.clone()),
        Options {
            page_size: 1024,
            ..Options::default()
        },
    )
    .unwrap()
}

fn open(store: &SimStore) -> MvccStore {
    MvccStore::open(db(store), MvccOptions::default()).unwrap()
}

fn put(key: &str, value: &str) -> WriteRequest {
    WriteRequest::Put(PutRequest {
        key: key.into(),
        value: value.into(),
        ..PutRequest::default()
    })
}

const NOSPACE: AlarmMember = AlarmMember {
    member: 42,
    alarm: AlarmType::Nospace,
};

fn alarm(action: AlarmAction) -> WriteRequest {
    WriteRequest::Alarm {
        action,
        alarm: NOSPACE,
    }
}

fn one(s: &MvccStore, index: u64, req: WriteRequest) -> Result<Applied<WriteResponse>, MvccError> {
    s.apply(&[(index, req)]).unwrap().remove(0)
}

#[test]
fn nospace_refuses_what_adds_data_until_disarmed_and_survives_reopen() {
    let sim = SimStore::new();
    let s = open(&sim);
    one(&s, 1, put("a", "1")).unwrap();
    one(&s, 2, WriteRequest::LeaseGrant { id: 7, ttl: 60 }).unwrap();
    let raised = one(&s, 3, alarm(AlarmAction::Activate)).unwrap();
    assert_eq!(raised.response, WriteResponse::Alarm(vec![NOSPACE]));
    // Raising it again changes nothing and answers no alarm.
    let again = one(&s, 4, alarm(AlarmAction::Activate)).unwrap();
    assert_eq!(again.response, WriteResponse::Alarm(Vec::new()));
    assert_eq!(s.alarms().unwrap(), vec![NOSPACE]);
    let rev = s.revision().unwrap();
    let txn_put = WriteRequest::Txn(TxnRequest {
        compare: Vec::new(),
        success: Vec::new(),
        failure: vec![RequestOp::Put(PutRequest {
            key: b"b".to_vec(),
            ..PutRequest::default()
        })],
    });
    for (i, refused) in [
        put("b", "2"),
        txn_put,
        WriteRequest::LeaseGrant { id: 0, ttl: 60 },
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(one(&s, 5 + i as u64, refused), Err(MvccError::NoSpace));
    }
    assert_eq!(
        s.revision().unwrap(),
        rev,
        "refused requests changed nothing"
    );
    // A read-only transaction, a delete, a revoke and a compaction still apply.
    let txn_read = WriteRequest::Txn(TxnRequest {
        compare: Vec::new(),
        success: vec![RequestOp::Range(RangeRequest {
            key: b"a".to_vec(),
            ..RangeRequest::default()
        })],
        failure: Vec::new(),
    });
    one(&s, 10, txn_read).unwrap();
    one(&s, 11, WriteRequest::LeaseRevoke { id: 7 }).unwrap();
    one(
        &s,
        12,
        WriteRequest::DeleteRange(DeleteRangeRequest {
            key: b"a".to_vec(),
            ..DeleteRangeRequest::default()
        }),
    )
    .unwrap();
    let rev = s.revision().unwrap();
    one(&s, 13, WriteRequest::Compact { revision: rev }).unwrap();
    s.sync().unwrap();
    drop(s);

    let s = open(&sim);
    assert_eq!(
        s.alarms().unwrap(),
        vec![NOSPACE],
        "the alarm survives a reopen"
    );
    assert_eq!(one(&s, 14, put("c", "3")), Err(MvccError::NoSpace));
    let cleared = one(&s, 15, alarm(AlarmAction::Deactivate)).unwrap();
    assert_eq!(cleared.response, WriteResponse::Alarm(vec![NOSPACE]));
    assert!(s.alarms().unwrap().is_empty());
    one(&s, 16, put("c", "3")).unwrap();
    let none = one(&s, 17, alarm(AlarmAction::Deactivate)).unwrap();
    assert_eq!(none.response, WriteResponse::Alarm(Vec::new()));
}

#[test]
fn lease_ids_are_not_handed_out_again_after_a_restore() {
    let s = open(&SimStore::new());
    let granted = one(&s, 40, WriteRequest::LeaseGrant { id: 0, ttl: 60 }).unwrap();
    let WriteResponse::LeaseGrant { id, .. } = granted.response else {
        panic!("{granted:?}");
    };
    assert_eq!(id, 40, "IDs come from the log index");
    one(&s, 41, WriteRequest::LeaseRevoke { id }).unwrap();
    one(&s, 50, put("k", "v")).unwrap();
    s.sync().unwrap();
    let mut image = Vec::new();
    s.write_snapshot(&mut image).unwrap();
    drop(s);

    // Restored, the store starts a new raft log at index 1.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let restored = Db::restore_snapshot(&path, &image[..], Options::default()).unwrap();
    let digest = prepare_restored(&restored).unwrap();
    assert!(digest.revision >= 2);
    let s = MvccStore::open(restored, MvccOptions::default()).unwrap();
    assert_eq!(
        s.applied_index().unwrap(),
        0,
        "the old log's position is gone"
    );
    let granted = one(&s, 1, WriteRequest::LeaseGrant { id: 0, ttl: 60 }).unwrap();
    let WriteResponse::LeaseGrant { id: new_id, .. } = granted.response else {
        panic!("{granted:?}");
    };
    assert!(
        new_id > 50,
        "lease {new_id} may collide with one granted before the snapshot"
    );
    let got = s
        .range(&RangeRequest {
            key: b"k".to_vec(),
            ..RangeRequest::default()
        })
        .unwrap();
    assert_eq!(got.response.kvs[0].value, b"v");
}

#[test]
fn hash_ignores_the_raft_position_but_not_the_data() {
    let a = open(&SimStore::new());
    let b = open(&SimStore::new());
    a.apply(&[(1, put("x", "1")), (2, put("y", "2"))]).unwrap();
    // Same requests, at other log indices (as after a restore onto a new log).
    b.apply(&[(7, put("x", "1")), (9, put("y", "2"))]).unwrap();
    let (ha, ra) = a.hash().unwrap();
    let (hb, rb) = b.hash().unwrap();
    assert_eq!((ha, ra), (hb, rb));
    a.apply(&[(3, put("z", "3"))]).unwrap();
    assert_ne!(a.hash().unwrap().0, ha);
}

#[test]
fn corrupt_refuses_every_write_until_cleared() {
    let s = open(&SimStore::new());
    one(&s, 1, put("a", "1")).unwrap();
    let corrupt = AlarmMember {
        member: 9,
        alarm: AlarmType::Corrupt,
    };
    one(
        &s,
        2,
        WriteRequest::Alarm {
            action: AlarmAction::Activate,
            alarm: corrupt,
        },
    )
    .unwrap();
    let rev = s.revision().unwrap();
    for (i, req) in [
        put("b", "2"),
        WriteRequest::DeleteRange(DeleteRangeRequest {
            key: b"a".to_vec(),
            ..DeleteRangeRequest::default()
        }),
        WriteRequest::Compact { revision: rev },
        WriteRequest::LeaseGrant { id: 0, ttl: 60 },
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(one(&s, 3 + i as u64, req), Err(MvccError::Corrupt));
    }
    assert_eq!(s.revision().unwrap(), rev);
    one(
        &s,
        10,
        WriteRequest::Alarm {
            action: AlarmAction::Deactivate,
            alarm: corrupt,
        },
    )
    .unwrap();
    one(&s, 11, put("b", "2")).unwrap();
}
