//! The command line: clap's own consistency checks, and etcd-benchmark flag names.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use clap::{CommandFactory, Parser};
use strata_bench::{Cli, Command, Stop};

#[test]
fn flags_are_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn put_takes_etcd_benchmark_flags() {
    let cli = Cli::try_parse_from([
        "strata-bench",
        "put",
        "--endpoints",
        "127.0.0.1:2379,127.0.0.1:22379",
        "--conns",
        "100",
        "--clients",
        "1000",
        "--total",
        "100000",
        "--key-size",
        "8",
        "--val-size",
        "256",
        "--key-space-size",
        "100000",
        "--sequential-keys",
        "--rate",
        "5000",
    ])
    .unwrap();
    let Command::Put(a) = cli.command else {
        panic!("not put")
    };
    assert_eq!(a.common.endpoints.len(), 2);
    let spec = a.common.spec();
    assert_eq!(spec.clients, 1000);
    assert_eq!(spec.stop, Stop::Total(100_000));
    assert_eq!(spec.rate, Some(5000.0));
    assert!(a.keys.sequential_keys);
    assert_eq!(a.keys.keys().key(42), b"00000042".to_vec());
}

#[test]
fn total_and_duration_exclude_each_other() {
    let both = ["strata-bench", "put", "--total", "10", "--duration", "1s"];
    assert!(Cli::try_parse_from(both).is_err());
    let d = Cli::try_parse_from(["strata-bench", "range", "--duration", "500ms"]).unwrap();
    let Command::Range(a) = d.command else {
        panic!("not range")
    };
    assert_eq!(
        a.common.spec().stop,
        Stop::Duration(Duration::from_millis(500))
    );
}
