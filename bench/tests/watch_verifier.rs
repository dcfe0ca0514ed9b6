//! The watch verifier catches a dropped, a duplicated and a reordered event: first on
//! hand-made logs, then end to end against the fake server told to inject each fault.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use strata_bench::{WatchConfig, WatchFault, run_watch, verify};

#[test]
fn a_perfect_log_passes() {
    let v = verify(&[5, 6, 7, 8], &[5, 6, 7, 8]);
    assert!(v.is_ok(), "{v:?}");
    assert_eq!(v.received, 4);
}

#[test]
fn a_dropped_event_is_missing() {
    let v = verify(&[5, 6, 7, 8], &[5, 7, 8]);
    assert!(!v.is_ok());
    assert_eq!(v.missing, vec![6]);
    assert!(v.duplicated.is_empty() && v.reordered.is_empty());
}

#[test]
fn a_duplicated_event_is_caught() {
    let v = verify(&[5, 6, 7], &[5, 6, 6, 7]);
    assert_eq!(v.duplicated, vec![6]);
    assert!(v.missing.is_empty() && v.reordered.is_empty());
}

#[test]
fn a_reordered_event_is_caught() {
    let v = verify(&[5, 6, 7, 8], &[5, 7, 6, 8]);
    assert_eq!(v.reordered, vec![6]);
    assert!(v.missing.is_empty() && v.duplicated.is_empty());
}

#[test]
fn an_event_nobody_wrote_is_caught() {
    let v = verify(&[5, 6], &[5, 6, 9]);
    assert_eq!(v.unexpected, vec![9]);
}

fn config(endpoint: String) -> WatchConfig {
    WatchConfig {
        endpoints: vec![endpoint],
        conns: 1,
        streams: 2,
        watchers_per_stream: 3,
        put_rate: 2000.0,
        put_total: 100,
        val_size: 32,
        prev_kv: false,
        prefix: b"/verifier/".to_vec(),
        // How long to wait for events after the writer is done. A healthy run ends as soon as
        // every watcher has the last revision; only the fault tests wait this out, and it must
        // be long enough that a loaded machine (CI) never makes a healthy run look lossy.
        settle: Duration::from_secs(3),
    }
}

async fn run_with(fault: WatchFault) -> strata_bench::WatchReport {
    let server = common::fake(fault).await;
    run_watch(&config(server.endpoint())).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_server_without_faults_passes() {
    let r = run_with(WatchFault::None).await;
    assert_eq!(r.verdicts.len(), 6);
    assert!(r.verdicts.iter().all(|v| v.is_ok()), "{:?}", r.verdicts);
    assert_eq!(r.summary.counters["watch events"], 600);
    assert_eq!(r.summary.requests, 600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_server_dropping_an_event_is_caught() {
    let r = run_with(WatchFault::Drop(10)).await;
    for v in &r.verdicts {
        assert_eq!(v.missing.len(), 1, "{v:?}");
        assert!(v.duplicated.is_empty() && v.reordered.is_empty(), "{v:?}");
    }
    assert_eq!(r.summary.counters["events missing"], 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_server_duplicating_an_event_is_caught() {
    let r = run_with(WatchFault::Duplicate(10)).await;
    for v in &r.verdicts {
        assert_eq!(v.duplicated.len(), 1, "{v:?}");
        assert!(v.missing.is_empty() && v.reordered.is_empty(), "{v:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_server_reordering_events_is_caught() {
    let r = run_with(WatchFault::Reorder(10)).await;
    for v in &r.verdicts {
        assert_eq!(v.reordered.len(), 1, "{v:?}");
        assert!(v.missing.is_empty() && v.duplicated.is_empty(), "{v:?}");
    }
}
