//! Injected write and fdatasync failures: the commit fails, the handle is poisoned for good,
//! and the file reopens at the last acknowledged durable commit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{dump, open_sim};
use strata_engine::EngineError;
use strata_engine::btree::Durability;
use strata_engine::btree::testing::{FaultOp, SimStore};

fn fault_case(op: FaultOp, nth: u64) {
    fault_case_sized(op, nth, 0);
}

/// `pad` bytes are added to every value: with 1,500, each commit is several times the writer's
/// 256 KiB stream buffer and goes out in several batches.
fn fault_case_sized(op: FaultOp, nth: u64, pad: usize) {
    let store = SimStore::new();
    let db = open_sim(&store);
    let mut w = db.begin_write().unwrap();
    for i in 0..200u32 {
        let mut v = b"durable".to_vec();
        v.resize(7 + pad, b'.');
        w.put(b"b", format!("k{i:04}").as_bytes(), &v).unwrap();
    }
    w.commit(Durability::Durable).unwrap();
    let durable = dump(&db.begin_read().unwrap());

    store.fail_nth(op, nth);
    let mut failed = false;
    for round in 0..4 {
        let mut w = db.begin_write().unwrap();
        for i in 0..200u32 {
            let mut v = format!("round{round}").into_bytes();
            v.resize(6 + pad, b'.');
            w.put(b"b", format!("k{i:04}").as_bytes(), &v).unwrap();
        }
        if w.commit(Durability::Durable).is_err() {
            failed = true;
            break;
        }
    }
    assert!(failed, "{op:?} #{nth}: the injected fault was not reported");
    assert!(matches!(
        db.begin_write().err(),
        Some(EngineError::Poisoned { .. })
    ));
    drop(db);
    let db = open_sim(&store);
    db.check().unwrap();
    let got = dump(&db.begin_read().unwrap());
    let v = &got[b"b".as_slice()];
    // Each round commits durably, so the file holds the state of some complete round.
    let first = v.values().next().unwrap().clone();
    assert!(
        v.values().all(|x| *x == first),
        "{op:?} #{nth}: a torn mix of rounds"
    );
    assert!(got == durable || first.starts_with(b"round"));
}

#[test]
fn failed_writes_poison_and_reopen_at_a_durable_state() {
    for nth in 1..6 {
        fault_case(FaultOp::Write, nth);
    }
}

#[test]
fn failed_fdatasync_poisons_and_reopen_at_a_durable_state() {
    for nth in 1..5 {
        fault_case(FaultOp::Sync, nth);
    }
}

#[test]
fn failed_writes_in_a_streamed_commit_poison_and_reopen_at_a_durable_state() {
    for nth in 1..=12 {
        fault_case_sized(FaultOp::Write, nth, 1500);
    }
}
