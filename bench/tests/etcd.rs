//! The workloads against a real etcd process (Debian's etcd-server), started on free ports
//! with a temporary data directory and killed by PID at the end. Skipped loudly when etcd is
//! not installed, unless STRATA_REQUIRE_ETCDCTL=1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use strata_bench::proto::etcdserverpb::RangeRequest;
use strata_bench::proto::etcdserverpb::kv_client::KvClient;
use strata_bench::{KeyArgs, KvOp, WatchConfig, connect, run_kv, run_watch};

async fn revision(endpoint: &str) -> i64 {
    let mut kv = KvClient::new(connect(endpoint).await.unwrap());
    let r = kv
        .range(RangeRequest {
            key: b"x".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    r.header.unwrap().revision
}

fn keys(prefix: &str) -> KeyArgs {
    KeyArgs {
        key_size: 8,
        val_size: 64,
        key_space_size: 50,
        sequential_keys: false,
        prefix: prefix.into(),
        prefill: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_counts_reads_and_optimistic_updates() {
    let Some(etcd) = common::etcd("etcd_counts_reads_and_optimistic_updates").await else {
        return;
    };
    let ep = etcd.endpoint.clone();
    // Every put is one revision on the server: the revision advances by exactly the puts
    // counted (prefill included).
    let before = revision(&ep).await;
    let mut c = common::common(&ep, 8);
    c.total = Some(400);
    c.pid = Some(etcd.pid);
    let s = run_kv("put", &c, &keys("/p/"), vec![(KvOp::Put, 1)])
        .await
        .unwrap();
    assert_eq!((s.requests, s.errors), (400, 0));
    assert_eq!(revision(&ep).await - before, 400 + 50);
    let usage = s.server.unwrap();
    assert!(usage.peak_rss_bytes > 0);

    for op in [KvOp::RangeLinearizable, KvOp::RangeSerializable] {
        let s = run_kv(op.name(), &c, &keys("/r/"), vec![(op, 1)])
            .await
            .unwrap();
        assert_eq!((s.requests, s.errors), (400, 0), "{op:?}");
    }

    // Optimistic updates on few keys conflict; conflicts are answered requests too, and only
    // the successful ones advance the revision.
    let mut k = keys("/t/");
    k.key_space_size = 4;
    let before = revision(&ep).await;
    let s = run_kv("txn-put", &c, &k, vec![(KvOp::TxnPut, 1)])
        .await
        .unwrap();
    assert_eq!((s.requests, s.errors), (400, 0));
    let won = s.per_op["txn-put"].count;
    let conflicts = s.per_op.get("txn-put conflict").map_or(0, |o| o.count);
    assert_eq!(won + conflicts, 400);
    assert_eq!(
        s.counters.get("txn-put conflicts").copied().unwrap_or(0),
        conflicts
    );
    assert_eq!(
        revision(&ep).await - before,
        i64::try_from(won).unwrap() + 4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_delivers_every_watch_event_once_in_order() {
    let Some(etcd) = common::etcd("etcd_delivers_every_watch_event_once_in_order").await else {
        return;
    };
    let cfg = WatchConfig {
        endpoints: vec![etcd.endpoint.clone()],
        conns: 2,
        streams: 4,
        watchers_per_stream: 5,
        put_rate: 500.0,
        put_total: 300,
        val_size: 64,
        prev_kv: true,
        prefix: b"/watch-test/".to_vec(),
        settle: Duration::from_secs(5),
    };
    let r = run_watch(&cfg).await.unwrap();
    assert_eq!(r.verdicts.len(), 20);
    assert!(r.verdicts.iter().all(|v| v.is_ok()), "{:?}", r.verdicts);
    assert_eq!(r.summary.counters["watch events"], 20 * 300);
    assert_eq!(r.summary.errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_serves_the_kube_workload() {
    let Some(etcd) = common::etcd("etcd_serves_the_kube_workload").await else {
        return;
    };
    let mut cfg =
        strata_bench::KubeConfig::new(vec![etcd.endpoint.clone()], 8, Duration::from_secs(3));
    cfg.objects = 200;
    cfg.page_size = 50;
    cfg.watchers = 2;
    cfg.compaction_interval = Duration::from_millis(700);
    cfg.pid = Some(etcd.pid);
    let s = strata_bench::run_kube(&cfg).await.unwrap();
    assert!(s.requests > 0);
    assert_eq!(s.errors, 0, "{:?}", s.errors_by_kind);
    for op in ["get", "list", "create", "update", "event"] {
        assert!(
            s.per_op.get(op).is_some_and(|o| o.count > 0),
            "no {op}: {:?}",
            s.per_op.keys()
        );
    }
    // Pages of 50 over at least 200 pods: several pages per list.
    assert!(s.counters["list pages"] >= 4 * s.per_op["list"].count);
    assert!(s.counters["compactions"] >= 1, "{:?}", s.counters);
    assert!(s.counters["watch events"] > 0);
    assert!(
        s.counters
            .get("watch progress notifications")
            .copied()
            .unwrap_or(0)
            > 0
    );
}
