//! Injected EIO and ENOSPC on write and on fdatasync: the error is returned, the handle is
//! poisoned for good, nothing in or after the failed batch is acknowledged, and a reopen finds
//! every acknowledged entry.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use strata_wal::testing::{CrashMode, FaultOp, SimStore};
use strata_wal::{Entry, LogIndex, NodeId, Term, Vote, WalError, WriteOp};

fn check_fault(op: FaultOp, errno: i32, skip: u64) {
    let store = SimStore::new();
    let wal = open_sim(&store, opts(SMALL_SEGMENT)).unwrap();
    wal.append(entries(1, 10, 1, 500)).unwrap();
    store.inject_commit(op, skip, errno, false);
    // Submit many appends without waiting; record which were acknowledged.
    let acked: Arc<Mutex<Vec<(u64, bool)>>> = Arc::new(Mutex::new(Vec::new()));
    let mut next = 11u64;
    while next < 2000 {
        let i = next;
        let acked = acked.clone();
        let r = wal.submit(
            WriteOp::Append(vec![entry(i, 1, 500)]),
            Box::new(move |r| acked.lock().unwrap().push((i, r.is_ok()))),
        );
        if let Err(e) = r {
            assert!(matches!(e, WalError::Poisoned { .. }), "{e}");
            break;
        }
        next += 1;
        // Wait now and then so that the flusher does many batches.
        if i.is_multiple_of(7) && wal.append(vec![entry(next, 1, 500)]).is_err() {
            next += 1;
            break;
        }
        if i.is_multiple_of(7) {
            next += 1;
        }
    }
    assert!(next < 2000, "the fault never fired");
    // The failure is reported to a waiting caller too, and every later call fails.
    let err = wal.append(vec![entry(next, 1, 500)]).unwrap_err();
    assert!(matches!(err, WalError::Poisoned { .. }), "{err}");
    let cause = err.to_string();
    let expect = std::io::Error::from_raw_os_error(errno).to_string();
    assert!(
        cause.contains(&expect),
        "cause {cause:?} should name {expect:?}"
    );
    assert!(
        wal.save_vote(Vote {
            term: Term(1),
            voted_for: Some(NodeId(1)),
            committed: false
        })
        .is_err()
    );
    assert!(wal.entries(LogIndex(1), LogIndex(2)).is_err());
    assert!(wal.log_state().is_err());
    drop(wal);
    let acked = acked.lock().unwrap().clone();
    // Completions arrive in order and successes are a prefix: nothing after a failure is
    // acknowledged.
    let first_fail = acked
        .iter()
        .position(|(_, ok)| !ok)
        .expect("some append must fail");
    assert!(acked[first_fail..].iter().all(|(_, ok)| !ok));
    assert!(acked.windows(2).all(|w| w[0].0 < w[1].0));
    let last_acked = acked[..first_fail].last().map_or(10, |(i, _)| *i);
    assert!(last_acked < next);
    // Power loss after the failure: every acknowledged entry is there, in order, and the log
    // is a prefix of what was submitted.
    for mode in [CrashMode::DropUnsynced, CrashMode::KeepUnsynced] {
        let image = store.crash_image(mode);
        image.clear_faults();
        let wal = open_sim(&image, opts(SMALL_SEGMENT)).unwrap();
        let last = wal.last_index().unwrap().unwrap().0;
        assert!(
            last >= last_acked,
            "{mode:?}: acknowledged {last_acked}, recovered {last}"
        );
        let got: Vec<Entry> = wal.entries(LogIndex(1), LogIndex(last + 1)).unwrap();
        let want: Vec<Entry> = (1..=last).map(|i| entry(i, 1, 500)).collect();
        assert!(
            got == want,
            "{mode:?}: recovered entries differ from what was submitted"
        );
    }
}

#[test]
fn eio_on_write() {
    for skip in [0, 3, 9] {
        check_fault(FaultOp::Write, libc::EIO, skip);
    }
}

#[test]
fn enospc_on_write() {
    for skip in [0, 5] {
        check_fault(FaultOp::Write, libc::ENOSPC, skip);
    }
}

#[test]
fn eio_on_fdatasync() {
    for skip in [0, 2, 9] {
        check_fault(FaultOp::Sync, libc::EIO, skip);
    }
}

#[test]
fn enospc_on_fdatasync() {
    check_fault(FaultOp::Sync, libc::ENOSPC, 4);
}

#[test]
fn failed_vote_is_not_acknowledged() {
    let store = SimStore::new();
    let wal = open_sim(&store, opts(SMALL_SEGMENT)).unwrap();
    let v1 = Vote {
        term: Term(1),
        voted_for: Some(NodeId(1)),
        committed: false,
    };
    wal.save_vote(v1).unwrap();
    store.inject_commit(FaultOp::Sync, 0, libc::EIO, true);
    let v2 = Vote {
        term: Term(2),
        voted_for: Some(NodeId(2)),
        committed: false,
    };
    assert!(wal.save_vote(v2).is_err());
    drop(wal);
    let image = store.crash_image(CrashMode::DropUnsynced);
    image.clear_faults();
    let wal = open_sim(&image, opts(SMALL_SEGMENT)).unwrap();
    assert_eq!(wal.vote().unwrap(), Some(v1));
}

#[test]
fn failed_segment_preparation_poisons_only_when_the_log_needs_the_segment() {
    let store = SimStore::new();
    let wal = open_sim(&store, opts(SMALL_SEGMENT)).unwrap();
    wal.append(entries(1, 5, 1, 100)).unwrap();
    // Every zero-fill fails from now on: the next rotation cannot get a segment.
    store.inject(FaultOp::Write, 0, libc::ENOSPC, true);
    let mut i = 6;
    let err = loop {
        match wal.append(entries(i, i, 1, 4000)) {
            Ok(()) => i += 1,
            Err(e) => break e,
        }
        assert!(i < 100, "rotation never needed a new segment");
    };
    assert!(matches!(err, WalError::Poisoned { .. }), "{err}");
    drop(wal);
    let image = store.crash_image(CrashMode::DropUnsynced);
    image.clear_faults();
    let wal = open_sim(&image, opts(SMALL_SEGMENT)).unwrap();
    assert_eq!(wal.last_index().unwrap(), Some(LogIndex(i - 1)));
}
