//! Criterion benchmarks of the MVCC store's hot paths (issue 4): applying 256-byte puts in
//! batches of 100 requests, and a 1,000-key range, on a store of 100,000 keys.
//!
//! ```text
//! cargo bench -p strata-engine --bench mvcc_ops
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use strata_engine::btree::{Db, Options};
use strata_engine::mvcc::{MvccOptions, MvccStore, PutRequest, RangeRequest, WriteRequest};

const KEYS: u64 = 100_000;

fn key(i: u64) -> Vec<u8> {
    format!("/registry/pods/ns{:03}/pod{:08}", i % 100, i).into_bytes()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let s = MvccStore::open(
        Db::open(dir.path().join("db"), Options::default()).unwrap(),
        MvccOptions::default(),
    )
    .unwrap();
    let value = vec![0x61u8; 256];
    let mut index = 0u64;
    let mut batch = |from: u64| -> Vec<(u64, WriteRequest)> {
        (0..100)
            .map(|j| {
                index += 1;
                (
                    index,
                    WriteRequest::Put(PutRequest {
                        key: key((from + j) % KEYS),
                        value: value.clone(),
                        ..PutRequest::default()
                    }),
                )
            })
            .collect()
    };
    let mut i = 0;
    while i < KEYS {
        s.apply(&batch(i)).unwrap();
        i += 100;
    }
    s.sync().unwrap();

    let mut g = c.benchmark_group("mvcc");
    g.throughput(Throughput::Elements(100));
    let mut next = 0u64;
    g.bench_function("apply_100_puts_256B", |b| {
        b.iter(|| {
            let reqs = batch(next);
            next = (next + 7919) % KEYS;
            s.apply(&reqs).unwrap();
            // The cadence's durable commit, as the raft node would call it.
            s.maybe_sync().unwrap();
        })
    });
    g.throughput(Throughput::Elements(1000));
    g.bench_function("range_1000_keys", |b| {
        b.iter(|| {
            // One namespace's worth of pods (every 100th key), limited to 1,000.
            let r = s
                .range(&RangeRequest {
                    key: b"/registry/pods/ns042/".to_vec(),
                    range_end: b"/registry/pods/ns0420".to_vec(),
                    limit: 1000,
                    ..RangeRequest::default()
                })
                .unwrap();
            assert_eq!(r.response.kvs.len(), 1000);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
