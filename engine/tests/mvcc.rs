//! The MVCC store against a model that keeps the whole state at every revision: puts,
//! deletes, ranges at any revision with limits, transactions with compares, compaction,
//! replayed log entries, clean reopens and power cuts (un-synced applies are lost; the applied
//! index says where raft must replay from). Revisions, versions, counts and errors must match
//! exactly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use strata_engine::btree::testing::{SimStore, Survival};
use strata_engine::btree::{Db, Options};
use strata_engine::mvcc::*;

type State = BTreeMap<Vec<u8>, KeyValue>;

#[derive(Clone, Default)]
struct Model {
    rev: i64,
    compacted: i64,
    states: BTreeMap<i64, State>,
}

impl Model {
    fn new() -> Self {
        // etcd's empty store is at revision 1 (the first write is revision 2).
        let mut m = Model {
            rev: 1,
            ..Model::default()
        };
        m.states.insert(1, State::new());
        m
    }
    fn cur(&self) -> State {
        self.states[&self.rev].clone()
    }
    fn commit(&mut self, s: State) {
        self.rev += 1;
        self.states.insert(self.rev, s);
    }
    fn range(&self, key: &[u8], end: &[u8], rev: i64) -> Result<Vec<KeyValue>, MvccError> {
        if rev > self.rev {
            return Err(MvccError::FutureRevision {
                requested: rev,
                current: self.rev,
            });
        }
        let at = if rev <= 0 { self.rev } else { rev };
        if at < self.compacted {
            return Err(MvccError::Compacted {
                requested: rev,
                compacted: self.compacted,
            });
        }
        Ok(self.states[&at]
            .values()
            .filter(|kv| in_range(&kv.key, key, end))
            .cloned()
            .collect())
    }
}

fn in_range(k: &[u8], key: &[u8], end: &[u8]) -> bool {
    if end.is_empty() {
        k == key
    } else if end == [0] {
        k >= key
    } else {
        k >= key && k < end
    }
}

#[derive(Clone, Debug)]
enum Op {
    Put {
        key: u8,
        value: u8,
        prev: bool,
        ignore_value: bool,
    },
    Delete {
        key: u8,
        span: u8,
        prev: bool,
    },
    Range {
        key: u8,
        span: u8,
        back: u8,
        limit: u8,
    },
    /// If key's mod_revision == the model's (when `hit`) then put, else range.
    Txn {
        key: u8,
        hit: bool,
        value: u8,
    },
    Compact {
        back: u8,
    },
    Replay,
    Sync,
    Reopen,
    PowerCut,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u8..8, any::<u8>(), any::<bool>(), prop::bool::weighted(0.1)).prop_map(|(key, value, prev, ignore_value)| Op::Put { key, value, prev, ignore_value }),
        3 => (0u8..8, 0u8..4, any::<bool>()).prop_map(|(key, span, prev)| Op::Delete { key, span, prev }),
        5 => (0u8..8, 0u8..5, 0u8..6, 0u8..4).prop_map(|(key, span, back, limit)| Op::Range { key, span, back, limit }),
        3 => (0u8..8, any::<bool>(), any::<u8>()).prop_map(|(key, hit, value)| Op::Txn { key, hit, value }),
        1 => (0u8..8).prop_map(|back| Op::Compact { back }),
        1 => Just(Op::Replay),
        1 => Just(Op::Sync),
        1 => Just(Op::Reopen),
        1 => Just(Op::PowerCut),
    ]
}

fn k(i: u8) -> Vec<u8> {
    vec![b'a' + i]
}

/// `span` 0: a single key; 4: every key from `key` on ("\0"); otherwise `[key, key + span)`.
fn end(key: u8, span: u8) -> Vec<u8> {
    match span {
        0 => Vec::new(),
        4 => vec![0],
        s => vec![b'a' + key + s],
    }
}

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

fn run(ops: &[Op]) {
    let mut disk = SimStore::new();
    let mut s = open(&disk);
    let mut m = Model::new();
    let mut durable = (m.clone(), 0u64);
    let mut index = 0u64;
    let mut last_entry: Option<(u64, WriteRequest)> = None;
    for op in ops {
        let mut apply = |s: &MvccStore, req: WriteRequest| {
            index += 1;
            last_entry = Some((index, req.clone()));
            let mut out = s.apply(&[(index, req)]).unwrap();
            assert_eq!(out.len(), 1);
            out.remove(0)
        };
        match *op {
            Op::Put {
                key,
                value,
                prev,
                ignore_value,
            } => {
                let req = PutRequest {
                    key: k(key),
                    value: if ignore_value { vec![] } else { vec![value] },
                    prev_kv: prev,
                    ignore_value,
                    ..PutRequest::default()
                };
                let got = apply(&s, WriteRequest::Put(req));
                let mut st = m.cur();
                let old = st.get(&k(key)).cloned();
                if ignore_value && old.is_none() {
                    assert_eq!(got, Err(MvccError::KeyNotFound));
                    continue;
                }
                let rev = m.rev + 1;
                let kv = KeyValue {
                    key: k(key),
                    create_revision: old.as_ref().map_or(rev, |o| o.create_revision),
                    mod_revision: rev,
                    version: old.as_ref().map_or(1, |o| o.version + 1),
                    value: if ignore_value {
                        old.as_ref().map(|o| o.value.clone()).unwrap_or_default()
                    } else {
                        vec![value]
                    },
                    lease: 0,
                };
                st.insert(k(key), kv);
                m.commit(st);
                let want = Applied {
                    response: WriteResponse::Put(PutResponse {
                        prev_kv: if prev { old } else { None },
                    }),
                    revision: m.rev,
                };
                assert_eq!(got, Ok(want));
            }
            Op::Delete { key, span, prev } => {
                let (key_b, end_b) = (k(key), end(key, span));
                let got = apply(
                    &s,
                    WriteRequest::DeleteRange(DeleteRangeRequest {
                        key: key_b.clone(),
                        range_end: end_b.clone(),
                        prev_kv: prev,
                    }),
                );
                let victims = m.range(&key_b, &end_b, 0).unwrap();
                if !victims.is_empty() {
                    let mut st = m.cur();
                    for v in &victims {
                        st.remove(&v.key);
                    }
                    m.commit(st);
                }
                let want = DeleteRangeResponse {
                    deleted: victims.len() as i64,
                    prev_kvs: if prev { victims } else { vec![] },
                };
                assert_eq!(
                    got,
                    Ok(Applied {
                        response: WriteResponse::DeleteRange(want),
                        revision: m.rev
                    })
                );
            }
            Op::Range {
                key,
                span,
                back,
                limit,
            } => {
                let rev = if back == 0 {
                    0
                } else {
                    m.rev - i64::from(back) + 1
                };
                let req = RangeRequest {
                    key: k(key),
                    range_end: end(key, span),
                    revision: rev,
                    limit: i64::from(limit),
                    ..RangeRequest::default()
                };
                let got = s.range(&req).map(|a| a.response);
                let want = m.range(&req.key, &req.range_end, rev).map(|kvs| {
                    let count = kvs.len() as i64;
                    let more = limit > 0 && kvs.len() > limit as usize;
                    let kvs = if limit > 0 {
                        kvs.into_iter().take(limit as usize).collect()
                    } else {
                        kvs
                    };
                    RangeResponse { kvs, more, count }
                });
                assert_eq!(got, want, "range {req:?} at model revision {}", m.rev);
            }
            Op::Txn { key, hit, value } => {
                let cur = m.cur();
                let mod_rev = cur.get(&k(key)).map_or(0, |kv| kv.mod_revision);
                let target = if hit { mod_rev } else { mod_rev + 1 };
                let t = TxnRequest {
                    compare: vec![Compare {
                        result: CompareResult::Equal,
                        target: CompareTarget::Mod(target),
                        key: k(key),
                        range_end: vec![],
                    }],
                    success: vec![
                        RequestOp::Put(PutRequest {
                            key: k(key),
                            value: vec![value],
                            ..PutRequest::default()
                        }),
                        RequestOp::Range(RangeRequest {
                            key: k(key),
                            ..RangeRequest::default()
                        }),
                    ],
                    failure: vec![RequestOp::Range(RangeRequest {
                        key: k(key),
                        ..RangeRequest::default()
                    })],
                };
                let got = apply(&s, WriteRequest::Txn(t)).unwrap();
                let WriteResponse::Txn(tr) = got.response else {
                    panic!("not a txn response")
                };
                assert_eq!(tr.succeeded, hit);
                if hit {
                    let mut st = cur.clone();
                    let old = st.get(&k(key)).cloned();
                    let rev = m.rev + 1;
                    st.insert(
                        k(key),
                        KeyValue {
                            key: k(key),
                            create_revision: old.as_ref().map_or(rev, |o| o.create_revision),
                            mod_revision: rev,
                            version: old.as_ref().map_or(1, |o| o.version + 1),
                            value: vec![value],
                            lease: 0,
                        },
                    );
                    m.commit(st);
                }
                assert_eq!(got.revision, m.rev);
                // The range in the branch sees the state after the branch's own put.
                let ResponseOp::Range(rr) = &tr.responses[tr.responses.len() - 1] else {
                    panic!("not a range")
                };
                assert_eq!(
                    rr.kvs,
                    m.cur()
                        .get(&k(key))
                        .cloned()
                        .into_iter()
                        .collect::<Vec<_>>()
                );
            }
            Op::Compact { back } => {
                let rev = m.rev - i64::from(back);
                let got = apply(&s, WriteRequest::Compact { revision: rev });
                if rev <= m.compacted {
                    assert_eq!(
                        got,
                        Err(MvccError::Compacted {
                            requested: rev,
                            compacted: m.compacted
                        })
                    );
                } else {
                    assert_eq!(
                        got,
                        Ok(Applied {
                            response: WriteResponse::Compact,
                            revision: m.rev
                        })
                    );
                    m.compacted = rev;
                }
            }
            Op::Replay => {
                // Raft may hand an applied entry again: it must be skipped.
                if let Some(e) = last_entry.clone() {
                    assert!(s.apply(&[e]).unwrap().is_empty());
                    assert_eq!(s.revision().unwrap(), m.rev);
                }
            }
            Op::Sync => {
                s.sync().unwrap();
                durable = (m.clone(), index);
            }
            Op::Reopen => {
                s.sync().unwrap();
                durable = (m.clone(), index);
                drop(s);
                s = open(&disk);
            }
            Op::PowerCut => {
                drop(s);
                let mut lose = |_| Survival::Lost;
                disk = SimStore::from_image(disk.crash_image(disk.ops_len(), &mut lose));
                s = open(&disk);
                m = durable.0.clone();
                index = durable.1;
                last_entry = None;
            }
        }
        assert_eq!(s.revision().unwrap(), m.rev, "after {op:?}");
        assert_eq!(s.applied_index().unwrap(), index, "after {op:?}");
        assert_eq!(s.compacted().unwrap(), m.compacted, "after {op:?}");
    }
    s.db().check().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_the_model(ops in prop::collection::vec(op(), 1..80)) {
        run(&ops);
    }
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
