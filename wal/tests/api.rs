//! The public API against real files, on every backend this machine has.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use strata_wal::{
    BackendChoice, Entry, LogId, LogIndex, NodeId, Term, Vote, Wal, WalError, WalOptions, WriteOp,
};

fn each_backend(f: impl Fn(BackendChoice)) {
    for b in backends() {
        eprintln!("backend {b:?}");
        f(b);
    }
}

#[test]
fn append_read_reopen() {
    each_backend(|b| {
        let dir = tempfile::tempdir().unwrap();
        {
            let wal = open_fs(dir.path(), b, SMALL_SEGMENT);
            assert_eq!(wal.log_state().unwrap().last, None);
            wal.append(entries(1, 100, 1, 300)).unwrap();
            wal.append(entries(101, 101, 2, 5000)).unwrap();
            let got = wal.entries(LogIndex(1), LogIndex(102)).unwrap();
            assert_eq!(
                got,
                [entries(1, 100, 1, 300), entries(101, 101, 2, 5000)].concat()
            );
            wal.close().unwrap();
        }
        let wal = open_fs(dir.path(), b, SMALL_SEGMENT);
        assert!(wal.recovery_report().torn_tail.is_none());
        assert_eq!(wal.first_index().unwrap(), Some(LogIndex(1)));
        assert_eq!(wal.last_index().unwrap(), Some(LogIndex(101)));
        let got = wal.entries(LogIndex(1), LogIndex(102)).unwrap();
        assert_eq!(
            got,
            [entries(1, 100, 1, 300), entries(101, 101, 2, 5000)].concat()
        );
        // Continue after reopen.
        wal.append(entries(102, 110, 2, 10)).unwrap();
        assert_eq!(
            wal.entries(LogIndex(105), LogIndex(107)).unwrap(),
            entries(105, 106, 2, 10)
        );
    });
}

#[test]
fn rotation_purge_and_recycling() {
    each_backend(|b| {
        let dir = tempfile::tempdir().unwrap();
        let wal = open_fs(dir.path(), b, SMALL_SEGMENT);
        // ~1 KiB entries, 64 KiB segments: many rotations.
        for i in 0..20 {
            wal.append(entries(i * 50 + 1, i * 50 + 50, 1, 1000))
                .unwrap();
        }
        let segs = |d: &std::path::Path| {
            std::fs::read_dir(d)
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .ends_with(".wal")
                })
                .count()
        };
        assert!(segs(dir.path()) > 10, "expected rotations");
        wal.purge_before(LogIndex(900)).unwrap();
        let st = wal.log_state().unwrap();
        assert_eq!(st.first_index, Some(LogIndex(900)));
        assert_eq!(st.last_purged.unwrap().index, LogIndex(899));
        assert!(
            segs(dir.path()) <= 4,
            "purged segments recycled: {}",
            segs(dir.path())
        );
        assert!(matches!(
            wal.entries(LogIndex(5), LogIndex(6)),
            Err(WalError::Purged { .. })
        ));
        // Keep writing: recycled files get reused.
        wal.append(entries(1001, 1400, 1, 1000)).unwrap();
        wal.close().unwrap();
        let wal = open_fs(dir.path(), b, SMALL_SEGMENT);
        let st = wal.log_state().unwrap();
        assert_eq!(st.first_index, Some(LogIndex(900)));
        assert_eq!(st.last.unwrap().index, LogIndex(1400));
        let got = wal.entries(LogIndex(900), LogIndex(1401)).unwrap();
        assert_eq!(got.len(), 501);
        assert_eq!(got[0], entry(900, 1, 1000));
        assert_eq!(got[500], entry(1400, 1, 1000));
    });
}

#[test]
fn truncate_then_overwrite_survives_reopen() {
    each_backend(|b| {
        let dir = tempfile::tempdir().unwrap();
        let wal = open_fs(dir.path(), b, SMALL_SEGMENT);
        wal.append(entries(1, 200, 1, 500)).unwrap();
        wal.truncate_after(Some(LogIndex(120))).unwrap();
        assert_eq!(wal.last_index().unwrap(), Some(LogIndex(120)));
        assert!(matches!(
            wal.append(entries(122, 122, 2, 5)),
            Err(WalError::NonContiguous { .. })
        ));
        wal.append(entries(121, 130, 2, 700)).unwrap();
        wal.close().unwrap();
        let wal = open_fs(dir.path(), b, SMALL_SEGMENT);
        let got = wal.entries(LogIndex(1), LogIndex(131)).unwrap();
        assert_eq!(
            got,
            [entries(1, 120, 1, 500), entries(121, 130, 2, 700)].concat()
        );
        // Truncate everything.
        wal.truncate_after(None).unwrap();
        assert_eq!(wal.last_index().unwrap(), None);
        wal.append(entries(1, 3, 3, 10)).unwrap();
        wal.close().unwrap();
        let wal = open_fs(dir.path(), b, SMALL_SEGMENT);
        assert_eq!(
            wal.entries(LogIndex(1), LogIndex(4)).unwrap(),
            entries(1, 3, 3, 10)
        );
    });
}

#[test]
fn vote_is_durable_and_survives_segment_recycling() {
    each_backend(|b| {
        let dir = tempfile::tempdir().unwrap();
        let v1 = Vote {
            term: Term(3),
            voted_for: Some(NodeId(2)),
            committed: false,
        };
        {
            let wal = open_fs(dir.path(), b, SMALL_SEGMENT);
            assert_eq!(wal.vote().unwrap(), None);
            wal.save_vote(v1).unwrap();
            for i in 0..10 {
                wal.append(entries(i * 100 + 1, i * 100 + 100, 3, 600))
                    .unwrap();
            }
            wal.purge_before(LogIndex(950)).unwrap();
        }
        let wal = open_fs(dir.path(), b, SMALL_SEGMENT);
        assert_eq!(wal.vote().unwrap(), Some(v1));
        let v2 = Vote {
            term: Term(4),
            voted_for: None,
            committed: true,
        };
        wal.save_vote(v2).unwrap();
        drop(wal);
        let wal = open_fs(dir.path(), b, SMALL_SEGMENT);
        assert_eq!(wal.vote().unwrap(), Some(v2));
        assert_eq!(wal.first_index().unwrap(), Some(LogIndex(950)));
    });
}

#[test]
fn truncating_below_the_first_entry_continues_at_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open_fs(dir.path(), BackendChoice::Portable, SMALL_SEGMENT);
    wal.append(entries(5, 7, 1, 10)).unwrap();
    wal.truncate_after(Some(LogIndex(2))).unwrap();
    assert_eq!(wal.last_index().unwrap(), None);
    assert!(matches!(
        wal.append(entries(9, 9, 2, 10)),
        Err(WalError::NonContiguous {
            expected: LogIndex(3),
            ..
        })
    ));
    wal.append(entries(3, 4, 2, 10)).unwrap();
    drop(wal);
    let wal = open_fs(dir.path(), BackendChoice::Portable, SMALL_SEGMENT);
    assert_eq!(
        wal.entries(LogIndex(3), LogIndex(5)).unwrap(),
        entries(3, 4, 2, 10)
    );
}

#[test]
fn purge_past_the_end_then_continue() {
    each_backend(|b| {
        let dir = tempfile::tempdir().unwrap();
        let wal = open_fs(dir.path(), b, SMALL_SEGMENT);
        wal.append(entries(1, 10, 1, 100)).unwrap();
        let snap = LogId {
            term: Term(5),
            leader: NodeId(3),
            index: LogIndex(500),
        };
        wal.purge_through(snap).unwrap();
        let st = wal.log_state().unwrap();
        assert_eq!(st.first_index, None);
        assert_eq!(st.last, Some(snap));
        assert!(matches!(
            wal.append(entries(11, 11, 1, 1)),
            Err(WalError::NonContiguous { .. })
        ));
        wal.append(entries(501, 505, 5, 100)).unwrap();
        drop(wal);
        let wal = open_fs(dir.path(), b, SMALL_SEGMENT);
        let st = wal.log_state().unwrap();
        assert_eq!(st.last_purged, Some(snap));
        assert_eq!(
            wal.entries(LogIndex(501), LogIndex(506)).unwrap(),
            entries(501, 505, 5, 100)
        );
    });
}

#[test]
fn cold_reads_come_from_disk_and_verify() {
    each_backend(|b| {
        let dir = tempfile::tempdir().unwrap();
        let wal = Wal::open(
            dir.path(),
            WalOptions {
                backend: b,
                hot_tail_bytes_max: 10_000,
                ..opts(SMALL_SEGMENT)
            },
        )
        .unwrap();
        wal.append(entries(1, 400, 1, 700)).unwrap();
        // Most of these are no longer in memory.
        let got = wal.entries(LogIndex(1), LogIndex(401)).unwrap();
        assert_eq!(got, entries(1, 400, 1, 700));
    });
}

#[test]
fn compression_round_trips() {
    each_backend(|b| {
        let dir = tempfile::tempdir().unwrap();
        let o = WalOptions {
            backend: b,
            compress_min_bytes: Some(256),
            hot_tail_bytes_max: 0,
            ..opts(SMALL_SEGMENT)
        };
        let big = Entry::new(1, 1, 1, vec![b'a'; 20_000]);
        let small = Entry::new(1, 1, 2, vec![b'b'; 10]);
        let random = entry(3, 1, 5000);
        {
            let wal = Wal::open(dir.path(), o.clone()).unwrap();
            wal.append(vec![big.clone(), small.clone(), random.clone()])
                .unwrap();
            assert_eq!(
                wal.entries(LogIndex(1), LogIndex(4)).unwrap(),
                vec![big.clone(), small.clone(), random.clone()]
            );
        }
        // The compressible entry took far less than its size on disk.
        let wal = Wal::open(dir.path(), o).unwrap();
        assert_eq!(
            wal.entries(LogIndex(1), LogIndex(4)).unwrap(),
            vec![big, small, random]
        );
    });
}

#[test]
fn bad_requests_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open_fs(dir.path(), BackendChoice::Portable, SMALL_SEGMENT);
    wal.append(entries(5, 9, 1, 10)).unwrap();
    assert!(matches!(
        wal.append(entries(11, 12, 1, 10)),
        Err(WalError::NonContiguous {
            expected: LogIndex(10),
            got: LogIndex(11)
        })
    ));
    let mut gap = entries(10, 11, 1, 10);
    gap[1].id.index = LogIndex(13);
    assert!(wal.append(gap).is_err());
    let too_big = Entry::new(1, 1, 10, vec![0u8; SMALL_SEGMENT as usize]);
    assert!(matches!(
        wal.append(vec![too_big]),
        Err(WalError::EntryTooLarge { .. })
    ));
    assert_eq!(wal.last_index().unwrap(), Some(LogIndex(9)));
    assert!(matches!(
        wal.entries(LogIndex(9), LogIndex(11)),
        Err(WalError::OutOfRange { .. })
    ));
    wal.purge_before(LogIndex(7)).unwrap();
    assert!(matches!(
        wal.truncate_after(Some(LogIndex(3))),
        Err(WalError::InvalidArgument(_))
    ));
    assert_eq!(wal.log_state().unwrap().first_index, Some(LogIndex(7)));
    assert!(
        Wal::open(
            dir.path().join("x"),
            WalOptions {
                segment_bytes: 1000,
                ..WalOptions::default()
            }
        )
        .is_err()
    );
}

/// Half of the appenders leave their writes to the flusher thread (`submit`), the other half
/// flush on their own threads when no batch is in progress (`submit_here`); the segments are
/// small, so both kinds of flusher start new segments. Every append is acknowledged, in index
/// order, and all of them are there after a reopen.
#[test]
fn concurrent_appenders_are_all_acknowledged_in_order() {
    each_backend(|b| {
        let dir = tempfile::tempdir().unwrap();
        let wal = Arc::new(open_fs(dir.path(), b, 1 << 20));
        let next = Arc::new(std::sync::Mutex::new(1u64));
        let acked = Arc::new(std::sync::Mutex::new(Vec::new()));
        let threads: Vec<_> = (0..16)
            .map(|t| {
                let (wal, next, acked) = (wal.clone(), next.clone(), acked.clone());
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let (tx, rx) = std::sync::mpsc::channel();
                        let acked = acked.clone();
                        // Index assignment and submission in one critical section, as a raft
                        // log does (raft core, too, flushes from inside it).
                        let mut n = next.lock().unwrap();
                        let i = *n;
                        *n += 1;
                        let op = WriteOp::Append(vec![entry(i, 1, 256)]);
                        let done: strata_wal::Callback = Box::new(move |r| {
                            r.unwrap();
                            acked.lock().unwrap().push(i);
                            tx.send(()).unwrap();
                        });
                        if t % 2 == 0 {
                            wal.submit(op, done).unwrap();
                        } else {
                            wal.submit_here(op, done).unwrap();
                        }
                        drop(n);
                        rx.recv().unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let acked = acked.lock().unwrap().clone();
        assert_eq!(acked, (1..=3200).collect::<Vec<u64>>());
        drop(Arc::try_unwrap(wal).ok().unwrap());
        let wal = open_fs(dir.path(), b, 1 << 20);
        assert_eq!(
            wal.entries(LogIndex(1), LogIndex(3201)).unwrap(),
            entries(1, 3200, 1, 256)
        );
    });
}

#[test]
fn completions_fire_in_submission_order() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open_fs(dir.path(), BackendChoice::Auto, SMALL_SEGMENT);
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    for i in 1..=300u64 {
        let order = order.clone();
        let op = if i % 7 == 0 {
            WriteOp::SaveVote(Vote {
                term: Term(i),
                voted_for: None,
                committed: false,
            })
        } else {
            WriteOp::Append(vec![entry(i, 1, 100)])
        };
        let op = match op {
            WriteOp::Append(_) if i % 7 != 0 => WriteOp::Append(vec![entry(i - i / 7, 1, 100)]),
            o => o,
        };
        wal.submit(
            op,
            Box::new(move |r| {
                r.unwrap();
                order.lock().unwrap().push(i);
            }),
        )
        .unwrap();
    }
    wal.close().unwrap();
    let order = order.lock().unwrap().clone();
    assert_eq!(order, (1..=300).collect::<Vec<_>>());
}

/// Regression (found by the structured fuzz target): truncating past the end used to move the
/// next index forward, so the next append was stored at the wrong position.
#[test]
fn truncate_past_the_end_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open_fs(dir.path(), BackendChoice::Portable, SMALL_SEGMENT);
    wal.append(entries(1, 5, 1, 10)).unwrap();
    wal.truncate_after(Some(LogIndex(10))).unwrap();
    assert!(matches!(
        wal.append(entries(11, 11, 2, 10)),
        Err(WalError::NonContiguous {
            expected: LogIndex(6),
            ..
        })
    ));
    wal.append(entries(6, 6, 2, 10)).unwrap();
    assert_eq!(
        wal.entries(LogIndex(6), LogIndex(7)).unwrap(),
        entries(6, 6, 2, 10)
    );
    drop(wal);
    let wal = open_fs(dir.path(), BackendChoice::Portable, SMALL_SEGMENT);
    assert_eq!(
        wal.entries(LogIndex(1), LogIndex(7)).unwrap(),
        [entries(1, 5, 1, 10), entries(6, 6, 2, 10)].concat()
    );
}

/// Regression: a huge read range was allocated for before it was checked.
#[test]
fn huge_ranges_and_indices_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let wal = open_fs(dir.path(), BackendChoice::Portable, SMALL_SEGMENT);
    wal.append(entries(1, 5, 1, 10)).unwrap();
    assert!(matches!(
        wal.entries(LogIndex(5), LogIndex(u64::MAX)),
        Err(WalError::OutOfRange { .. })
    ));
    assert!(matches!(
        wal.append(vec![Entry::new(1, 1, u64::MAX, vec![])]),
        Err(WalError::InvalidArgument(_) | WalError::NonContiguous { .. })
    ));
    let id = LogId {
        term: Term(1),
        leader: NodeId(1),
        index: LogIndex(u64::MAX),
    };
    assert!(matches!(
        wal.purge_through(id),
        Err(WalError::InvalidArgument(_))
    ));
    assert!(matches!(
        wal.truncate_after(Some(LogIndex(u64::MAX))),
        Err(WalError::InvalidArgument(_))
    ));
    assert_eq!(wal.last_index().unwrap(), Some(LogIndex(5)));
}
