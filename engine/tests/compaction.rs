//! Compaction in the background: the applier returns as soon as the compaction is scheduled,
//! applies and reads go on while physical removal is under way (here held between batches
//! by a long pause), reads below the compaction are refused from the start, HashKV does not
//! depend on how far removal got, a newer compaction supersedes a running one, and a store
//! closed mid-compaction finishes it after reopening. Also defrag concurrent with applies,
//! compaction and a watcher.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use strata_engine::btree::testing::SimStore;
use strata_engine::btree::{Db, DefragOptions, Options};
use strata_engine::mvcc::*;

fn open(store: &SimStore, pause: Duration) -> MvccStore {
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
            compaction_batch: 10,
            compaction_pause: pause,
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

fn all_at(s: &MvccStore, rev: i64) -> Result<RangeResponse, MvccError> {
    s.range(&RangeRequest {
        key: vec![0],
        range_end: vec![0],
        revision: rev,
        ..RangeRequest::default()
    })
    .map(|a| a.response)
}

/// 300 puts over 7 keys, then a compaction at 200.
fn history() -> Vec<(u64, WriteRequest)> {
    (1..=300u64)
        .map(|i| (i, put(&format!("k{}", i % 7), &format!("v{i}"))))
        .collect()
}

#[test]
fn applies_and_reads_go_on_while_physical_compaction_is_under_way() {
    const HOUR: Duration = Duration::from_secs(3600);
    // A reference store that finishes its compaction before anything is compared.
    let reference = open(&SimStore::new(), Duration::ZERO);
    reference.apply(&history()).unwrap();
    reference
        .apply(&[(301, WriteRequest::Compact { revision: 200 })])
        .unwrap();
    reference.wait_compacted(200).unwrap();

    let disk = SimStore::new();
    // The compactor pauses an hour after its first batch: physical removal is under way for
    // the whole test, however the threads are scheduled.
    let s = open(&disk, HOUR);
    s.apply(&history()).unwrap();
    let at250 = all_at(&s, 250).unwrap();
    let out = s
        .apply(&[(301, WriteRequest::Compact { revision: 200 })])
        .unwrap();
    assert_eq!(out[0].as_ref().unwrap().response, WriteResponse::Compact);
    assert!(!s.wait_compacted_timeout(200, Duration::ZERO).unwrap());
    assert!(s.compacted_physically().unwrap() < 200);
    // Reads below the compaction are refused at once; at and above it they are whole.
    assert_eq!(
        all_at(&s, 199),
        Err(MvccError::Compacted {
            requested: 199,
            compacted: 200
        })
    );
    assert_eq!(all_at(&s, 250).unwrap(), at250);
    assert_eq!(all_at(&s, 200).unwrap(), all_at(&reference, 200).unwrap());
    // HashKV leaves out what compaction removes, finished or not.
    assert_eq!(s.hash_kv(0).unwrap(), reference.hash_kv(0).unwrap());
    // Applies go on.
    let more: Vec<(u64, WriteRequest)> = (302..=320u64)
        .map(|i| (i, put(&format!("k{}", i % 7), "later")))
        .collect();
    s.apply(&more).unwrap();
    reference.apply(&more).unwrap();
    assert_eq!(all_at(&s, 0).unwrap(), all_at(&reference, 0).unwrap());
    assert!(s.compacted_physically().unwrap() < 200);
    s.db().check().unwrap();
    // Closing stops the compactor between batches (the pause wakes for it).
    s.sync().unwrap();
    drop(s);
    // Reopened, the compaction resumes and finishes.
    let s = open(&disk, Duration::ZERO);
    assert_eq!(s.compacted().unwrap(), 200);
    s.wait_compacted(200).unwrap();
    assert_eq!(s.compacted_physically().unwrap(), 200);
    assert_eq!(s.hash_kv(0).unwrap(), reference.hash_kv(0).unwrap());
    let db = s.db().check().unwrap();
    let rdb = reference.db().check().unwrap();
    assert_eq!(
        db.buckets.get(b"key".as_slice()),
        rdb.buckets.get(b"key".as_slice())
    );
}

#[test]
fn a_newer_compaction_supersedes_a_running_one() {
    let s = open(&SimStore::new(), Duration::from_secs(3600));
    s.apply(&history()).unwrap();
    s.apply(&[(301, WriteRequest::Compact { revision: 100 })])
        .unwrap();
    s.apply(&[(302, WriteRequest::Compact { revision: 250 })])
        .unwrap();
    // The newer compaction is under way (its first batch, then the hour-long pause).
    assert!(
        !s.wait_compacted_timeout(250, Duration::from_millis(20))
            .unwrap()
    );
    drop(s);

    let disk = SimStore::new();
    let s = open(&disk, Duration::ZERO);
    s.apply(&history()).unwrap();
    s.apply(&[(301, WriteRequest::Compact { revision: 100 })])
        .unwrap();
    s.apply(&[(302, WriteRequest::Compact { revision: 250 })])
        .unwrap();
    s.wait_compacted(250).unwrap();
    // Waiting for the older one is satisfied by the newer.
    s.wait_compacted(100).unwrap();
    assert_eq!(s.compacted_physically().unwrap(), 250);
    // Exactly the newest revision of each of the 7 keys at 250 and everything after it
    // (the 300 puts made revisions 2..=301) is left in the tree.
    let report = s.db().check().unwrap();
    assert_eq!(report.buckets[b"key".as_slice()], 7 + 51);
}

/// Defrag with a writer applying, a compaction running and a watcher reading: every event
/// arrives in order, and the store ends where the history says.
#[test]
fn defrag_runs_beside_applies_compaction_and_a_watcher() {
    let disk = SimStore::new();
    let s = Arc::new(open(&disk, Duration::from_millis(1)));
    let big = "x".repeat(300);
    let first: Vec<(u64, WriteRequest)> = (1..=2000u64)
        .map(|i| (i, put(&format!("k{:04}", i % 400), &big)))
        .collect();
    for chunk in first.chunks(100) {
        s.apply(chunk).unwrap();
    }
    let watcher = s
        .watch(WatchRequest {
            key: b"k".to_vec(),
            range_end: vec![0],
            start_revision: 1900,
            ..WatchRequest::default()
        })
        .unwrap();
    s.apply(&[(2001, WriteRequest::Compact { revision: 1800 })])
        .unwrap();
    // The watcher is read on its own thread while the defrag runs (catching up from the tree
    // when it falls behind).
    let reader = std::thread::spawn(move || {
        let mut next = 1900;
        while next <= 2399 {
            match watcher.recv_timeout(Duration::from_secs(30)).unwrap() {
                Some(WatchMessage::Events { revision, events }) => {
                    assert_eq!(revision, next, "events out of order or missing");
                    assert_eq!(events.len(), 1);
                    next += 1;
                }
                Some(WatchMessage::Progress { .. }) => {}
                other => panic!("unexpected {other:?} at revision {next}"),
            }
        }
    });
    let writer = {
        let s = s.clone();
        std::thread::spawn(move || {
            for i in 2002..=2400u64 {
                s.apply(&[(i, put(&format!("k{:04}", i % 400), "after"))])
                    .unwrap();
            }
        })
    };
    let report = s
        .defrag_with(&DefragOptions {
            step_keys: 16,
            truncate_step_bytes: 16 << 10,
            ..DefragOptions::default()
        })
        .unwrap();
    writer.join().unwrap();
    reader.join().unwrap();
    s.wait_compacted(1800).unwrap();
    s.db().check().unwrap();
    assert!(report.steps > 0, "{report:?}");
    // 400 keys, all but one (`k0001`, whose turn was the compaction's log index) rewritten
    // by the writer.
    let now = all_at(&s, 0).unwrap();
    assert_eq!(now.count, 400);
    let rewritten = now.kvs.iter().filter(|kv| kv.value == b"after").count();
    assert_eq!(rewritten, 399);
    let again = Arc::try_unwrap(s).ok().unwrap();
    again.sync().unwrap();
    drop(again);
    let s = open(&disk, Duration::ZERO);
    s.db().check().unwrap();
    assert_eq!(all_at(&s, 0).unwrap(), now);
}
