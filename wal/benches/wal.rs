//! Criterion benchmarks of the WAL against raw `pwrite` + `fdatasync` baselines.
//!
//! Groups (every WAL variant runs on io_uring, when this machine can set it up, and portable):
//! - `append_1x256B`: one appender, one 256-byte entry per durable append, time per append.
//! - `append_concurrent_256B`: 64 and 512 tokio tasks each appending one 256-byte entry at a
//!   time (index assigned and submitted under one mutex, durability awaited through a oneshot
//!   fired by the completion callback); entries/s. The raw baseline is one fdatasync per entry.
//! - `append_1MiB_batches`: 1 MiB of payload per durable append (one 1 MiB entry, or
//!   4096 × 256 B entries), bytes/s, against raw sequential 1 MiB pwrite + fdatasync.
//! - `recovery`: `Wal::open` of a 1 GiB log (16 × 64 MiB segments, 256 B..4 KiB entries),
//!   built once and kept under `CARGO_TARGET_TMPDIR`, with a warm and a cold page cache,
//!   against raw sequential reads of the same files.
//!
//! Run: `CARGO_TARGET_DIR=/tmp/target-bench cargo bench -p strata-wal --bench wal`.
//! `cargo test --benches` runs every routine once, with a small log for `recovery`.
//! Results and the machine they were taken on: `docs/benchmarks.md`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::cell::OnceCell;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};

/// The raw baseline: one `pwrite` + `fdatasync` of `data` per iteration, into a zero-filled
/// file created on first use.
fn bench_raw_256b(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    data: &[u8],
) {
    let mut raw: Option<RawFile> = None;
    let buf = data.to_vec();
    g.bench_function(name, move |b| {
        let raw = raw.get_or_insert_with(|| RawFile::new(RAW_FILE_BYTES));
        b.iter_custom(|iters| (0..iters).map(|_| raw.write_sync(&buf)).sum())
    });
}

fn append_1x256b(c: &mut Criterion) {
    let mut g = c.benchmark_group("append_1x256B");
    g.throughput(Throughput::Elements(1))
        .sample_size(50)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(6));
    let data = payload(SMALL, 1);

    bench_raw_256b(&mut g, "raw_pwrite_fdatasync", &data);
    for (label, backend) in backends() {
        let mut st: Option<WalAppender> = None;
        let data = data.clone();
        g.bench_function(format!("wal_{label}"), move |b| {
            let st = st.get_or_insert_with(|| WalAppender::new(backend));
            b.iter_custom(|iters| (0..iters).map(|_| st.append_one(&data)).sum())
        });
    }
    g.finish();
}

fn append_concurrent_256b(c: &mut Criterion) {
    let mut g = c.benchmark_group("append_concurrent_256B");
    g.throughput(Throughput::Elements(1))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(6));
    let data = payload(SMALL, 2);

    // The rate a single thread gets with one fdatasync per append.
    bench_raw_256b(&mut g, "raw_pwrite_fdatasync_1thread", &data);
    let rt = runtime();
    for (label, backend) in backends() {
        for tasks in [64usize, 512] {
            let mut st: Option<SharedWal> = None;
            let data = data.clone();
            let rt = &rt;
            g.bench_function(BenchmarkId::new(format!("wal_{label}"), tasks), move |b| {
                let st = st.get_or_insert_with(|| SharedWal::new(backend));
                b.iter_custom(|iters| {
                    let d = st.run_count(rt, tasks, iters, &data);
                    // Untimed: let full segments be recycled, as snapshot purges do.
                    st.purge_all();
                    d
                })
            });
        }
    }
    g.finish();
}

fn append_1mib_batches(c: &mut Criterion) {
    let mut g = c.benchmark_group("append_1MiB_batches");
    g.throughput(Throughput::Bytes(MIB))
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5));

    let mut raw: Option<RawFile> = None;
    let buf = payload(MIB as usize, 3).to_vec();
    g.bench_function("raw_pwrite_fdatasync_1MiB", move |b| {
        let raw = raw.get_or_insert_with(|| RawFile::new(RAW_FILE_BYTES));
        b.iter_custom(|iters| (0..iters).map(|_| raw.write_sync(&buf)).sum())
    });

    let big = vec![payload(MIB as usize, 4)];
    // 4096 distinct 256-byte slices of one buffer (cheap clones, different contents).
    let pool = payload(MIB as usize, 5);
    let small: Vec<Bytes> = (0..4096)
        .map(|i| pool.slice(i * SMALL..(i + 1) * SMALL))
        .collect();
    for (label, backend) in backends() {
        for (shape, payloads) in [("1x1MiB", &big), ("4096x256B", &small)] {
            let mut st: Option<WalAppender> = None;
            g.bench_function(BenchmarkId::new(format!("wal_{label}"), shape), move |b| {
                let st = st.get_or_insert_with(|| WalAppender::new(backend));
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for i in 0..iters {
                        total += st.append_many(payloads);
                        if i % 32 == 31 {
                            // Untimed: recycle full segments every 32 MiB, so the measurement
                            // is of the steady state with snapshot purges.
                            st.purge_all();
                        }
                    }
                    st.purge_all();
                    total
                })
            });
        }
    }
    g.finish();
}

fn recovery(c: &mut Criterion) {
    let mut g = c.benchmark_group("recovery");
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    let full = bench_mode();
    let log_cell: OnceCell<RecoveryLog> = OnceCell::new();
    let log = || {
        log_cell.get_or_init(|| {
            if full {
                recovery_log(&bench_root().join("recovery-1GiB"), 64 * MIB, 1 << 30)
            } else {
                // `cargo test --benches`: exercise the code on a small log.
                recovery_log(&bench_root().join("recovery-test-8MiB"), MIB, 8 * MIB)
            }
        })
    };
    // Every variant reads the same bytes; the size is known once the log exists.
    let bytes = if full { 1 << 30 } else { 8 * MIB };
    g.throughput(Throughput::Bytes(bytes));

    for cold in [false, true] {
        let cache = if cold { "cold" } else { "warm" };
        g.bench_function(BenchmarkId::new("raw_pread", cache), |b| {
            let log = log();
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        if cold {
                            log.evict();
                        }
                        log.raw_read(false).0
                    })
                    .sum()
            })
        });
        if !cold {
            g.bench_function(BenchmarkId::new("raw_pread_crc32c", cache), |b| {
                let log = log();
                b.iter_custom(|iters| (0..iters).map(|_| log.raw_read(true).0).sum())
            });
        }
        for (label, backend) in backends() {
            g.bench_function(BenchmarkId::new(format!("wal_open_{label}"), cache), |b| {
                let log = log();
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| {
                            if cold {
                                log.evict();
                            }
                            log.open_timed(backend)
                        })
                        .sum()
                })
            });
        }
    }
    g.finish();
}

/// The criterion group (in a private module: the macro's `pub fn` needs no docs there).
mod group {
    use super::*;
    criterion_group! {
        name = benches;
        config = Criterion::default().without_plots();
        targets = append_1x256b, append_concurrent_256b, append_1mib_batches, recovery
    }
}
criterion_main!(group::benches);
