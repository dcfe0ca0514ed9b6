//! `compare` end to end on the fake server (attached) and the ceiling binary (started):
//! alternating rounds, medians, a missing system and an unserved workload reported as such,
//! and the report files with their plots.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use strata_bench::{
    CompareConfig, KeyArgs, Source, SystemSpec, WatchFault, Workload, median, run_compare,
};

#[test]
fn median_of_odd_even_and_empty() {
    assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    assert_eq!(median(&[]), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_reports_results_ratios_and_what_did_not_run() {
    let fake = common::fake(WatchFault::None).await;
    let out = tempfile::tempdir().unwrap();
    let cfg = CompareConfig {
        systems: vec![
            SystemSpec {
                name: "etcd".into(),
                source: Source::Attach {
                    endpoints: vec![fake.endpoint()],
                    pid: None,
                },
            },
            SystemSpec {
                name: "strata".into(),
                source: Source::Unavailable("no binary in this test".into()),
            },
            SystemSpec {
                name: "ceiling".into(),
                source: Source::Ceiling(PathBuf::from(env!("CARGO_BIN_EXE_strata-bench"))),
            },
        ],
        workloads: vec![Workload::Put, Workload::TxnPut],
        clients: vec![1, 4],
        conns: 0,
        duration: Duration::from_millis(200),
        rounds: 2,
        keys: KeyArgs {
            key_size: 8,
            val_size: 32,
            key_space_size: 100,
            sequential_keys: false,
            prefix: "/c/".into(),
            prefill: false,
        },
        watch_put_rate: 100.0,
        out_dir: out.path().to_path_buf(),
    };
    let r = run_compare(&cfg).await.unwrap();
    assert_eq!(r.not_run["strata"], "no binary in this test");
    for clients in [1, 4] {
        for sys in ["etcd", "ceiling"] {
            let put = &r.results["put"][&clients][sys];
            assert!(put.not_run.is_none(), "{sys}: {:?}", put.not_run);
            assert_eq!(put.rounds.len(), 2);
            assert!(put.median.throughput > 0.0);
            // The fake and the ceiling both answer Put but not Txn.
            let txn = &r.results["txn-put"][&clients][sys];
            assert!(
                txn.not_run
                    .as_deref()
                    .unwrap()
                    .starts_with("not served: txn-put: Unimplemented")
            );
        }
    }
    let md = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(md.contains("strata: not run: no binary in this test"));
    assert!(md.contains("etcd/ceiling req/s"));
    assert!(md.contains("not served"));
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert!(html.contains("<svg"));
    for f in ["report.json", "put-throughput.svg", "put-cdf.svg"] {
        assert!(out.path().join(f).exists(), "{f}");
    }
}
