//! Percentiles, merging and counts of the HDR-histogram recorder; duration parsing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use strata_bench::{Recorder, parse_duration};

fn close(actual: f64, expected: f64) -> bool {
    // Three significant digits: at most 0.1 % relative error (plus bucket rounding).
    (actual - expected).abs() <= expected * 0.002
}

#[test]
fn percentiles_of_a_uniform_distribution() {
    let mut r = Recorder::default();
    for ms in 1..=1000u64 {
        r.ok("put", Duration::from_millis(ms));
    }
    let s = r.summary("put", Duration::from_secs(2));
    assert_eq!(s.requests, 1000);
    assert!(close(s.throughput, 500.0), "{}", s.throughput);
    let l = s.latency;
    assert!(close(l.min_ms, 1.0), "{l:?}");
    assert!(close(l.p50_ms, 500.0), "{l:?}");
    assert!(close(l.p90_ms, 900.0), "{l:?}");
    assert!(close(l.p99_ms, 990.0), "{l:?}");
    assert!(close(l.p999_ms, 999.0), "{l:?}");
    assert!(close(l.max_ms, 1000.0), "{l:?}");
    assert!(close(l.mean_ms, 500.5), "{l:?}");
    assert_eq!(s.per_op["put"].latency, l);
    // The CDF ends at the maximum and never decreases.
    assert!(s.cdf.windows(2).all(|w| w[0][1] <= w[1][1]));
    assert_eq!(s.cdf.last().unwrap()[0], 1.0);
}

#[test]
fn a_tail_shows_in_the_high_percentiles_only() {
    let mut r = Recorder::default();
    for _ in 0..990 {
        r.ok("range", Duration::from_micros(200));
    }
    for _ in 0..10 {
        r.ok("range", Duration::from_millis(50));
    }
    let l = r.summary("range", Duration::from_secs(1)).latency;
    assert!(close(l.p50_ms, 0.2), "{l:?}");
    assert!(close(l.p90_ms, 0.2), "{l:?}");
    assert!(close(l.p99_ms, 0.2), "{l:?}");
    assert!(close(l.p999_ms, 50.0), "{l:?}");
}

#[test]
fn merge_adds_counts_errors_and_counters() {
    let mut a = Recorder::default();
    let mut b = Recorder::default();
    a.ok("put", Duration::from_millis(1));
    b.ok("put", Duration::from_millis(3));
    b.ok("range", Duration::from_millis(2));
    a.error("put", &tonic::Status::unavailable("down"));
    b.error("put", &tonic::Status::unavailable("still down"));
    b.error("range", &tonic::Status::deadline_exceeded("slow"));
    a.count("conflicts", 2);
    b.count("conflicts", 3);
    a.merge(&b);
    let s = a.summary("mixed", Duration::from_secs(1));
    assert_eq!(s.requests, 3);
    assert_eq!(s.errors, 3);
    assert_eq!(s.errors_by_kind["put: Unavailable"].count, 2);
    assert_eq!(s.errors_by_kind["put: Unavailable"].sample, "down");
    assert_eq!(s.errors_by_kind["range: DeadlineExceeded"].count, 1);
    assert_eq!(s.counters["conflicts"], 5);
    assert_eq!(s.per_op["put"].count, 2);
    assert!(close(s.latency.max_ms, 3.0));
}

#[test]
fn side_requests_stay_out_of_the_headline() {
    let mut r = Recorder::default();
    r.ok("watch-event", Duration::from_millis(2));
    r.ok_side("put", Duration::from_millis(100));
    let s = r.summary("watch-latency", Duration::from_secs(1));
    assert_eq!(s.requests, 1);
    assert!(close(s.latency.max_ms, 2.0));
    assert_eq!(s.per_op["put"].count, 1);
}

#[test]
fn durations_parse_like_etcd_flags() {
    assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
    assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
    assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
    assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
    assert!(parse_duration("3x").is_err());
    assert!(parse_duration("").is_err());
}
