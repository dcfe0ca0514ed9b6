//! The MVCC store against a model that keeps the whole state at every revision: puts (with
//! and without leases), deletes, ranges at any revision with limits, transactions with
//! compares, lease grants and revokes, compaction (physical removal in the background, waited
//! for at random points), defragmentation, replayed log entries, clean reopens, power cuts
//! (un-synced applies are lost; the applied index says where raft must replay from) and power
//! cuts at any operation of a defrag. Revisions, versions, leases, counts and errors must
//! match exactly, and the checker passes after every defrag and at the end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use proptest::prelude::*;
use strata_engine::btree::testing::{SimStore, Survival};
use strata_engine::btree::{Db, DefragOptions, Options};
use strata_engine::mvcc::*;

type State = BTreeMap<Vec<u8>, KeyValue>;

#[derive(Clone, Default)]
struct Model {
    rev: i64,
    compacted: i64,
    states: BTreeMap<i64, State>,
    leases: std::collections::BTreeSet<i64>,
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
        /// 0: no lease; otherwise the lease ID.
        lease: u8,
    },
    LeaseGrant {
        id: u8,
    },
    LeaseRevoke {
        id: u8,
    },
    Defrag,
    /// Power cut at an operation of a defrag (`at` modulo its operations).
    DefragCut {
        at: u16,
    },
    WaitCompacted,
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
        8 => (0u8..8, any::<u8>(), any::<bool>(), prop::bool::weighted(0.1), prop_oneof![3 => Just(0u8), 1 => 1u8..4]).prop_map(|(key, value, prev, ignore_value, lease)| Op::Put { key, value, prev, ignore_value, lease: if ignore_value { 0 } else { lease } }),
        1 => (1u8..4).prop_map(|id| Op::LeaseGrant { id }),
        1 => (1u8..4).prop_map(|id| Op::LeaseRevoke { id }),
        1 => Just(Op::Defrag),
        1 => any::<u16>().prop_map(|at| Op::DefragCut { at }),
        1 => Just(Op::WaitCompacted),
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

/// A value of 1 to 400 bytes (so a few keys fill pages and compaction and deletes free them;
/// the longest are overflow runs at 1 KiB pages).
fn val(v: u8) -> Vec<u8> {
    vec![v; 1 + usize::from(v) * 400 / 256]
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
            compaction_pause: std::time::Duration::ZERO,
            // Only the test's syncs (and defrag's durable commits) make applies durable: the
            // compactor's cadence check must not sync at a time the model cannot know.
            sync_interval: std::time::Duration::from_secs(3600),
            ..MvccOptions::default()
        },
    )
    .unwrap()
}

fn defrag_opts() -> DefragOptions {
    DefragOptions {
        step_keys: 4,
        sync_every_steps: 2,
        slack_pages_min: 4,
        truncate_step_bytes: 4096,
        step_pause: std::time::Duration::ZERO,
        check_each_step: true,
        ..DefragOptions::default()
    }
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
                lease,
            } => {
                let req = PutRequest {
                    key: k(key),
                    value: if ignore_value { vec![] } else { val(value) },
                    prev_kv: prev,
                    ignore_value,
                    lease: i64::from(lease),
                    ..PutRequest::default()
                };
                let got = apply(&s, WriteRequest::Put(req));
                let mut st = m.cur();
                let old = st.get(&k(key)).cloned();
                if ignore_value && old.is_none() {
                    assert_eq!(got, Err(MvccError::KeyNotFound));
                    continue;
                }
                if lease != 0 && !m.leases.contains(&i64::from(lease)) {
                    assert_eq!(got, Err(MvccError::LeaseNotFound));
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
                        val(value)
                    },
                    lease: i64::from(lease),
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
                            value: val(value),
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
                            value: val(value),
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
            Op::LeaseGrant { id } => {
                let id = i64::from(id);
                let got = apply(&s, WriteRequest::LeaseGrant { id, ttl: 10 });
                if m.leases.insert(id) {
                    assert_eq!(
                        got,
                        Ok(Applied {
                            response: WriteResponse::LeaseGrant { id, ttl: 10 },
                            revision: m.rev
                        })
                    );
                } else {
                    assert_eq!(got, Err(MvccError::LeaseExists));
                }
            }
            Op::LeaseRevoke { id } => {
                let id = i64::from(id);
                let got = apply(&s, WriteRequest::LeaseRevoke { id });
                if !m.leases.remove(&id) {
                    assert_eq!(got, Err(MvccError::LeaseNotFound));
                } else {
                    let mut st = m.cur();
                    let before = st.len();
                    st.retain(|_, kv| kv.lease != id);
                    if st.len() != before {
                        m.commit(st);
                    }
                    assert_eq!(
                        got,
                        Ok(Applied {
                            response: WriteResponse::LeaseRevoke,
                            revision: m.rev
                        })
                    );
                }
            }
            Op::Defrag => {
                s.defrag_with(&defrag_opts()).unwrap();
                s.db().check().unwrap();
                // Everything applied before the defrag is durable after it.
                durable = (m.clone(), index);
            }
            Op::DefragCut { at } => {
                s.sync().unwrap();
                durable = (m.clone(), index);
                let start = disk.ops_len();
                s.defrag_with(&defrag_opts()).unwrap();
                drop(s);
                let end = disk.ops_len();
                let n = start + usize::from(at) % (end - start + 1);
                let mut lose = |_| Survival::Lost;
                disk = SimStore::from_image(disk.crash_image(n, &mut lose));
                s = open(&disk);
                s.db().check().unwrap();
                m = durable.0.clone();
                index = durable.1;
                last_entry = None;
            }
            Op::WaitCompacted => {
                s.wait_compacted(m.compacted).unwrap();
                assert!(s.compacted_physically().unwrap() >= m.compacted);
                s.db().check().unwrap();
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
        assert_eq!(
            s.leases().unwrap(),
            m.leases.iter().copied().collect::<Vec<_>>(),
            "after {op:?}"
        );
    }
    let now = std::time::Instant::now();
    for &id in &m.leases {
        let info = s.lease_time_to_live(id, now).unwrap().unwrap();
        let want: Vec<Vec<u8>> = m
            .cur()
            .values()
            .filter(|kv| kv.lease == id)
            .map(|kv| kv.key.clone())
            .collect();
        assert_eq!(info.keys, want, "keys attached to lease {id}");
    }
    s.wait_compacted(m.compacted).unwrap();
    s.db().check().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_the_model(ops in prop::collection::vec(op(), 1..120)) {
        run(&ops);
    }
}
