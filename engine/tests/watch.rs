//! Watches: every watcher gets exactly the events of its range from its start revision on, one
//! message per revision, in order, each once — whether it keeps up, starts in the past, or
//! falls behind its queue and catches up from the tree; compacted starts are refused as etcd
//! refuses them; progress notifications only report revisions already delivered.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use strata_engine::btree::testing::SimStore;
use strata_engine::btree::{Db, Options};
use strata_engine::mvcc::*;

fn store() -> Arc<MvccStore> {
    let db = Db::open_with_store(
        Arc::new(SimStore::new()),
        Options {
            page_size: 1024,
            ..Options::default()
        },
    )
    .unwrap();
    Arc::new(
        MvccStore::open(
            db,
            MvccOptions {
                compaction_batch: 5,
                ..MvccOptions::default()
            },
        )
        .unwrap(),
    )
}

fn put(key: &str, value: &str) -> WriteRequest {
    WriteRequest::Put(PutRequest {
        key: key.into(),
        value: value.into(),
        ..PutRequest::default()
    })
}

fn del(key: &str) -> WriteRequest {
    WriteRequest::DeleteRange(DeleteRangeRequest {
        key: key.into(),
        ..DeleteRangeRequest::default()
    })
}

/// Everything the watcher has now, waiting briefly for each message.
fn drain(w: &Watcher) -> Vec<WatchMessage> {
    let mut out = Vec::new();
    while let Some(m) = w.recv_timeout(Duration::from_millis(5)).unwrap() {
        out.push(m);
    }
    out
}

/// `(revision, key, value or None for a delete)` of each event.
fn flat(msgs: &[WatchMessage]) -> Vec<(i64, String, Option<String>)> {
    let mut out = Vec::new();
    for m in msgs {
        if let WatchMessage::Events { revision, events } = m {
            for e in events {
                assert_eq!(e.kv.mod_revision, *revision);
                let v = (e.kind == EventKind::Put)
                    .then(|| String::from_utf8(e.kv.value.clone()).unwrap());
                out.push((*revision, String::from_utf8(e.kv.key.clone()).unwrap(), v));
            }
        }
    }
    out
}

#[test]
fn live_events_with_prev_kv_and_filters() {
    let s = store();
    s.apply(&[(1, put("a", "0"))]).unwrap();
    let all = s
        .watch(WatchRequest {
            key: b"a".to_vec(),
            range_end: b"c".to_vec(),
            prev_kv: true,
            ..WatchRequest::default()
        })
        .unwrap();
    let no_put = s
        .watch(WatchRequest {
            key: b"a".to_vec(),
            range_end: vec![0],
            no_put: true,
            ..WatchRequest::default()
        })
        .unwrap();
    s.apply(&[
        (2, put("a", "1")),
        (3, put("b", "2")),
        (4, put("c", "3")),
        (5, del("a")),
    ])
    .unwrap();
    let msgs = drain(&all);
    assert_eq!(
        flat(&msgs),
        vec![
            (3, "a".into(), Some("1".into())),
            (4, "b".into(), Some("2".into())),
            (6, "a".into(), None)
        ]
    );
    let WatchMessage::Events { events, .. } = &msgs[0] else {
        panic!()
    };
    assert_eq!(events[0].prev_kv.as_ref().unwrap().value, b"0".to_vec());
    let WatchMessage::Events { events, .. } = &msgs[2] else {
        panic!()
    };
    assert_eq!(
        events[0].prev_kv.as_ref().unwrap().value,
        b"1".to_vec(),
        "a delete carries the deleted value"
    );
    assert_eq!(flat(&drain(&no_put)), vec![(6, "a".into(), None)]);
    all.request_progress().unwrap();
    assert_eq!(drain(&all), vec![WatchMessage::Progress { revision: 6 }]);
}

#[test]
fn a_transaction_is_one_message() {
    let s = store();
    let w = s
        .watch(WatchRequest {
            key: b"a".to_vec(),
            range_end: vec![0],
            ..WatchRequest::default()
        })
        .unwrap();
    let t = TxnRequest {
        success: vec![
            RequestOp::Put(PutRequest {
                key: b"x".to_vec(),
                value: b"1".to_vec(),
                ..PutRequest::default()
            }),
            RequestOp::Put(PutRequest {
                key: b"y".to_vec(),
                value: b"2".to_vec(),
                ..PutRequest::default()
            }),
        ],
        ..TxnRequest::default()
    };
    s.apply(&[(1, WriteRequest::Txn(t))]).unwrap();
    let msgs = drain(&w);
    assert_eq!(msgs.len(), 1);
    assert_eq!(
        flat(&msgs),
        vec![
            (2, "x".into(), Some("1".into())),
            (2, "y".into(), Some("2".into()))
        ]
    );
}

#[test]
fn compacted_start_is_refused_with_the_compact_revision() {
    let s = store();
    let reqs: Vec<_> = (1..=6u64).map(|i| (i, put("k", &i.to_string()))).collect();
    s.apply(&reqs).unwrap();
    s.apply(&[(7, WriteRequest::Compact { revision: 4 })])
        .unwrap();
    let w = s
        .watch(WatchRequest {
            key: b"k".to_vec(),
            start_revision: 2,
            ..WatchRequest::default()
        })
        .unwrap();
    assert_eq!(
        drain(&w),
        vec![WatchMessage::Compacted {
            compact_revision: 4
        }]
    );
    let w = s
        .watch(WatchRequest {
            key: b"k".to_vec(),
            start_revision: 4,
            ..WatchRequest::default()
        })
        .unwrap();
    assert_eq!(
        flat(&drain(&w)).iter().map(|e| e.0).collect::<Vec<_>>(),
        vec![4, 5, 6, 7],
        "puts made revisions 2..=7"
    );
}

#[derive(Clone, Debug)]
enum Op {
    Put(u8),
    Delete(u8),
    Watch { key: u8, span: u8, back: u8 },
    Read(u8),
    Compact(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (0u8..6).prop_map(Op::Put),
        3 => (0u8..6).prop_map(Op::Delete),
        2 => (0u8..6, 0u8..4, 0u8..20).prop_map(|(key, span, back)| Op::Watch { key, span, back }),
        3 => any::<u8>().prop_map(Op::Read),
        1 => (0u8..30).prop_map(Op::Compact),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Watchers that read rarely (so their queues overflow and they catch up from the tree),
    /// start in the past or the future, and live through compactions, still get exactly their
    /// events in order.
    #[test]
    fn every_watcher_gets_exactly_its_events(ops in prop::collection::vec(op(), 1..250)) {
        let s = store();
        let mut log: Vec<(i64, String, Option<String>)> = Vec::new();
        let mut watchers: Vec<(Watcher, String, String, i64, Vec<WatchMessage>)> = Vec::new();
        let mut index = 0u64;
        let mut live = std::collections::BTreeSet::new();
        let mut compacted = 0i64;
        for (n, op) in ops.iter().enumerate() {
            match *op {
                Op::Put(k) => {
                    index += 1;
                    let key = format!("k{k}");
                    let out = s.apply(&[(index, put(&key, &n.to_string()))]).unwrap();
                    log.push((out[0].as_ref().unwrap().revision, key.clone(), Some(n.to_string())));
                    live.insert(key);
                }
                Op::Delete(k) => {
                    index += 1;
                    let key = format!("k{k}");
                    let out = s.apply(&[(index, del(&key))]).unwrap();
                    if live.remove(&key) {
                        log.push((out[0].as_ref().unwrap().revision, key, None));
                    }
                }
                Op::Watch { key, span, back } => {
                    let start = (s.revision().unwrap() - i64::from(back) + 3).max(1);
                    let lo = format!("k{key}");
                    let hi = if span == 0 { String::new() } else { format!("k{}", key + span) };
                    let w = s.watch(WatchRequest { key: lo.clone().into_bytes(), range_end: hi.clone().into_bytes(), start_revision: start, ..WatchRequest::default() }).unwrap();
                    watchers.push((w, lo, hi, start, Vec::new()));
                }
                Op::Read(which) => {
                    if !watchers.is_empty() {
                        let i = which as usize % watchers.len();
                        let got = drain(&watchers[i].0);
                        watchers[i].4.extend(got);
                    }
                }
                Op::Compact(back) => {
                    let rev = s.revision().unwrap() - i64::from(back);
                    if rev > compacted {
                        index += 1;
                        s.apply(&[(index, WriteRequest::Compact { revision: rev })]).unwrap();
                        compacted = rev;
                    }
                }
            }
        }
        for (w, lo, hi, start, mut got) in watchers {
            got.extend(drain(&w));
            if let Some(WatchMessage::Compacted { compact_revision }) = got.last() {
                // Refused: its start was compacted before it caught up to it.
                prop_assert!(start < *compact_revision);
                continue;
            }
            let want: Vec<_> = log
                .iter()
                .filter(|(rev, key, _)| *rev >= start && if hi.is_empty() { *key == lo } else { key >= &lo && key < &hi })
                .cloned()
                .collect();
            prop_assert_eq!(flat(&got), want);
        }
    }
}

#[test]
fn a_watcher_that_falls_behind_its_queue_catches_up_from_the_tree() {
    let s = store();
    let w = s
        .watch(WatchRequest {
            key: b"k".to_vec(),
            prev_kv: true,
            ..WatchRequest::default()
        })
        .unwrap();
    let n = WATCH_QUEUE_MESSAGES as u64 * 3;
    for i in 1..=n {
        s.apply(&[(i, put("k", &i.to_string()))]).unwrap();
    }
    // Progress asked while behind arrives only after everything up to it.
    w.request_progress().unwrap();
    let msgs = drain(&w);
    let revs: Vec<i64> = flat(&msgs).iter().map(|e| e.0).collect();
    assert_eq!(revs, (2..=n as i64 + 1).collect::<Vec<_>>());
    assert_eq!(
        msgs.last(),
        Some(&WatchMessage::Progress {
            revision: n as i64 + 1
        })
    );
    // prev_kv from history matches the live one.
    let WatchMessage::Events { events, .. } = &msgs[100] else {
        panic!()
    };
    assert_eq!(events[0].prev_kv.as_ref().unwrap().value, b"100".to_vec());
    // Synced again: live events flow.
    s.apply(&[(n + 1, put("k", "last"))]).unwrap();
    assert_eq!(
        flat(&drain(&w)),
        vec![(n as i64 + 2, "k".into(), Some("last".into()))]
    );
}
