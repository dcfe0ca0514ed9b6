//! Open loop measures from each request's scheduled send time, so a stall is charged to every
//! request it delayed; closed loop charges it to the stalled request only. Runs on tokio's
//! paused clock, so the times are exact and nothing depends on this machine's speed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use strata_bench::{LoadSpec, Outcome, Recorder, Stop, Worker, run};

/// Answers at once, except request 0, which takes 100 ms (a server stall).
struct Stalls;

impl Worker for Stalls {
    async fn call(&mut self, seq: u64, _rec: &mut Recorder) -> Outcome {
        if seq == 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Outcome::Ok("op")
    }
}

fn spec(rate: Option<f64>) -> LoadSpec {
    LoadSpec {
        clients: 1,
        stop: Stop::Total(100),
        rate,
        progress: false,
    }
}

#[tokio::test(start_paused = true)]
async fn open_loop_charges_a_stall_to_every_request_it_delayed() {
    // 1,000/s: request i is due at i ms; the stall holds the only client until 100 ms, so
    // request i (1..=99) waits 100 - i ms.
    let m = run(vec![Stalls], spec(Some(1000.0))).await;
    let s = m.recorder.summary("open", m.elapsed);
    assert_eq!(s.requests, 100);
    assert!(s.latency.max_ms >= 100.0, "{:?}", s.latency);
    assert!(s.latency.p50_ms >= 49.0, "{:?}", s.latency);
    assert!(s.latency.p90_ms >= 9.0, "{:?}", s.latency);
}

#[tokio::test(start_paused = true)]
async fn closed_loop_charges_the_stall_to_one_request() {
    let m = run(vec![Stalls], spec(None)).await;
    let s = m.recorder.summary("closed", m.elapsed);
    assert_eq!(s.requests, 100);
    assert!(s.latency.max_ms >= 100.0, "{:?}", s.latency);
    assert!(s.latency.p99_ms < 1.0, "{:?}", s.latency);
}
