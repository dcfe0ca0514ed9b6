//! Every request the driver sends is counted exactly once, in closed and open loop, against
//! the in-process fake server, which counts what it received.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use strata_bench::{KeyArgs, KvOp, WatchFault, parse_mix, run_kv};

fn keys() -> KeyArgs {
    KeyArgs {
        key_size: 8,
        val_size: 16,
        key_space_size: 100,
        sequential_keys: true,
        prefix: String::new(),
        prefill: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_total_sends_exactly_total() {
    let server = common::fake(WatchFault::None).await;
    let mut c = common::common(&server.endpoint(), 8);
    c.total = Some(1000);
    let s = run_kv("put", &c, &keys(), vec![(KvOp::Put, 1)])
        .await
        .unwrap();
    assert_eq!(s.requests, 1000);
    assert_eq!(s.errors, 0);
    assert_eq!(server.counts.put.load(Ordering::Relaxed), 1000);
    assert_eq!(s.per_op["put"].count, 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_total_sends_exactly_total() {
    let server = common::fake(WatchFault::None).await;
    let mut c = common::common(&server.endpoint(), 4);
    c.total = Some(300);
    c.rate = 1000.0;
    let s = run_kv("range-s", &c, &keys(), vec![(KvOp::RangeSerializable, 1)])
        .await
        .unwrap();
    assert_eq!(s.requests, 300);
    assert_eq!(server.counts.range.load(Ordering::Relaxed), 300);
    assert_eq!(s.rate, Some(1000.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duration_run_counts_match_the_server() {
    let server = common::fake(WatchFault::None).await;
    let mut c = common::common(&server.endpoint(), 4);
    c.duration = Some(Duration::from_millis(300));
    let s = run_kv("put", &c, &keys(), vec![(KvOp::Put, 1)])
        .await
        .unwrap();
    assert!(s.requests > 0);
    assert_eq!(
        server.counts.put.load(Ordering::Relaxed),
        s.requests + s.errors
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_counts_add_up_per_operation() {
    let server = common::fake(WatchFault::None).await;
    let mut c = common::common(&server.endpoint(), 4);
    c.total = Some(600);
    let mix = parse_mix("put=1,range-l=1,range-s=1").unwrap();
    let s = run_kv("mixed", &c, &keys(), mix).await.unwrap();
    assert_eq!(s.requests, 600);
    let puts = s.per_op.get("put").map_or(0, |o| o.count);
    let ranges = s.per_op.get("range-l").map_or(0, |o| o.count)
        + s.per_op.get("range-s").map_or(0, |o| o.count);
    assert_eq!(puts + ranges, 600);
    assert_eq!(server.counts.put.load(Ordering::Relaxed), puts);
    assert_eq!(server.counts.range.load(Ordering::Relaxed), ranges);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unserved_requests_are_counted_as_errors_by_kind() {
    // The fake answers Txn with Unimplemented, as a server that lacks it would.
    let server = common::fake(WatchFault::None).await;
    let mut c = common::common(&server.endpoint(), 2);
    c.total = Some(50);
    let s = run_kv("txn-put", &c, &keys(), vec![(KvOp::TxnPut, 1)])
        .await
        .unwrap();
    assert_eq!(s.requests, 0);
    assert_eq!(s.errors, 50);
    assert_eq!(s.errors_by_kind["txn-put: Unimplemented"].count, 50);
}

#[test]
fn mix_parsing_rejects_nonsense() {
    assert!(parse_mix("put=1,range-s=3").is_ok());
    assert!(parse_mix("put").is_err());
    assert!(parse_mix("bogus=1").is_err());
    assert!(parse_mix("put=0").is_err());
}
