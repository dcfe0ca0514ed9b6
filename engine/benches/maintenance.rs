//! Stalls during physical compaction and defragmentation, with a writer and a reader running.
//!
//! ```text
//! cargo bench -p strata-engine --bench maintenance                 # 1,000,000 keys
//! STRATA_BENCH_KEYS=2500000 cargo bench -p strata-engine --bench maintenance   # ~1 GiB file
//! ```
//!
//! Loads N keys (24-byte keys, 256-byte values) through `apply`, deletes the first half
//! loaded, then
//! runs three phases while an open-loop writer (one put per `apply`, `STRATA_BENCH_WRITES`
//! per second, default 1,000) and an open-loop reader (one single-key range,
//! `STRATA_BENCH_READS` per second, default 2,000) run, with the durability cadence driven by
//! its own thread (`maybe_sync` every 10 ms, as the raft node would):
//! 1. baseline: 5 s of nothing else;
//! 2. compaction: a `Compact` at the current revision (removing the deleted half's puts and
//!    tombstones and every overwritten revision), until `wait_compacted` returns;
//! 3. defrag: `MvccStore::defrag()`.
//!
//! Every operation's latency is measured from the time it was due (so a stall also counts for
//! the operations queued behind it), and reported per phase: count, p50, p99, max. The
//! defrag report gives the longest time one defrag step held the writer lock.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use strata_engine::btree::{Db, Options};
use strata_engine::mvcc::{
    DeleteRangeRequest, MvccOptions, MvccStore, PutRequest, RangeRequest, WriteRequest,
};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn key(i: u64) -> Vec<u8> {
    format!(
        "/registry/k{:014}",
        i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % 100_000_000_000_000
    )
    .into_bytes()
}

fn status(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .map(|l| l[field.len()..].trim().to_string())
        .unwrap_or_default()
}

/// (due time since the start, latency) of every operation.
type Samples = Vec<(Duration, Duration)>;

/// Runs `op` at `rate` per second from `t0` until `stop`, recording latency from due time.
fn paced(t0: Instant, rate: u64, stop: &AtomicBool, mut op: impl FnMut(u64)) -> Samples {
    let period = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let mut out = Vec::new();
    let mut n = 0u64;
    let start = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let due = start + period * n as u32;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        op(n);
        out.push((due - t0, due.elapsed()));
        n += 1;
    }
    out
}

fn summary(samples: &Samples, from: Duration, to: Duration) -> String {
    let mut v: Vec<Duration> = samples
        .iter()
        .filter(|(at, _)| *at >= from && *at < to)
        .map(|(_, l)| *l)
        .collect();
    if v.is_empty() {
        return "— | — | — | —".into();
    }
    v.sort_unstable();
    let pct = |p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "{} | {:.2} | {:.2} | {:.1}",
        v.len(),
        ms(pct(0.5)),
        ms(pct(0.99)),
        ms(v[v.len() - 1])
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        return;
    }
    let n = env_u64("STRATA_BENCH_KEYS", 1_000_000);
    let write_rate = env_u64("STRATA_BENCH_WRITES", 1000);
    let read_rate = env_u64("STRATA_BENCH_READS", 2000);
    let base = std::env::var_os("STRATA_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(base).unwrap();
    let path = dir.path().join("maintenance.db");
    let s = Arc::new(
        MvccStore::open(
            Db::open(&path, Options::default()).unwrap(),
            MvccOptions::default(),
        )
        .unwrap(),
    );
    let value = vec![0x61u8; 256];
    let mut index = 0u64;
    let t = Instant::now();
    let mut i = 0u64;
    while i < n {
        let batch: Vec<(u64, WriteRequest)> = (0..100.min(n - i))
            .map(|j| {
                index += 1;
                let req = WriteRequest::Put(PutRequest {
                    key: key(i + j),
                    value: value.clone(),
                    ..PutRequest::default()
                });
                (index, req)
            })
            .collect();
        i += batch.len() as u64;
        s.apply(&batch).unwrap();
        s.maybe_sync().unwrap();
    }
    // Delete the first half loaded (as expiring events would be): compaction then frees
    // whole pages of the revision-ordered `key` bucket, so about half the file is free.
    let mut i = 0u64;
    while i < n / 2 {
        let batch: Vec<(u64, WriteRequest)> = (i..(i + 100).min(n / 2))
            .map(|j| {
                index += 1;
                let req = WriteRequest::DeleteRange(DeleteRangeRequest {
                    key: key(j),
                    ..DeleteRangeRequest::default()
                });
                (index, req)
            })
            .collect();
        i += 100;
        s.apply(&batch).unwrap();
        s.maybe_sync().unwrap();
    }
    s.sync().unwrap();
    let st = s.db().stats().unwrap();
    println!(
        "loaded {n} keys and deleted half in {:.1} s: file {:.0} MiB, {} pages, {} free",
        t.elapsed().as_secs_f64(),
        st.file_bytes as f64 / 1048576.0,
        st.page_count,
        st.free_pages
    );

    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let log_index = Arc::new(std::sync::atomic::AtomicU64::new(index));
    let writer = {
        let (s, stop, log_index) = (s.clone(), stop.clone(), log_index.clone());
        std::thread::spawn(move || {
            let value = vec![0x62u8; 256];
            paced(t0, write_rate, &stop, |k| {
                let i = log_index.fetch_add(1, Ordering::Relaxed) + 1;
                let req = WriteRequest::Put(PutRequest {
                    key: key((k * 7919) % n),
                    value: value.clone(),
                    ..PutRequest::default()
                });
                s.apply(&[(i, req)]).unwrap();
            })
        })
    };
    let reader = {
        let (s, stop) = (s.clone(), stop.clone());
        std::thread::spawn(move || {
            paced(t0, read_rate, &stop, |k| {
                let r = s
                    .range(&RangeRequest {
                        key: key((k * 104_729) % n),
                        ..RangeRequest::default()
                    })
                    .unwrap();
                std::hint::black_box(r);
            })
        })
    };
    let syncer = {
        let (s, stop) = (s.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(10));
                s.maybe_sync().unwrap();
            }
        })
    };

    std::thread::sleep(Duration::from_secs(5));
    let base_end = t0.elapsed();

    let compact_start = t0.elapsed();
    let rev = s.revision().unwrap();
    let i = log_index.fetch_add(1, Ordering::Relaxed) + 1;
    let t = Instant::now();
    s.apply(&[(i, WriteRequest::Compact { revision: rev })])
        .unwrap();
    let compact_apply = t.elapsed();
    s.wait_compacted(rev).unwrap();
    let compact_end = t0.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let st = s.db().stats().unwrap();
    println!(
        "after compaction: file {:.0} MiB, {} pages, {} free",
        st.file_bytes as f64 / 1048576.0,
        st.page_count,
        st.free_pages
    );

    let defrag_start = t0.elapsed();
    let report = s.defrag().unwrap();
    let defrag_end = t0.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let writes = writer.join().unwrap();
    let reads = reader.join().unwrap();
    syncer.join().unwrap();
    s.db().check().unwrap();

    println!();
    println!(
        "writes at {write_rate}/s (one put per apply), reads at {read_rate}/s (one key); latency from due time, ms"
    );
    println!();
    println!(
        "| phase | duration s | writes | write p50 | write p99 | write max | reads | read p50 | read p99 | read max |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, from, to) in [
        ("baseline", Duration::ZERO, base_end),
        ("physical compaction", compact_start, compact_end),
        ("defrag", defrag_start, defrag_end),
    ] {
        println!(
            "| {name} | {:.1} | {} | {} |",
            (to - from).as_secs_f64(),
            summary(&writes, from, to),
            summary(&reads, from, to)
        );
    }
    println!();
    println!(
        "compaction: the Compact apply took {:.2} ms; defrag: {:.0} MiB -> {:.0} MiB, pages {} -> {}, {} steps, {} keys moved, longest step (writer lock held) {:.2} ms, {:.1} s",
        compact_apply.as_secs_f64() * 1000.0,
        report.file_bytes_before as f64 / 1048576.0,
        report.file_bytes_after as f64 / 1048576.0,
        report.page_count_before,
        report.page_count_after,
        report.steps,
        report.keys_moved,
        report.longest_step.as_secs_f64() * 1000.0,
        report.elapsed.as_secs_f64()
    );
    println!(
        "process: RSS {} (anonymous {}, file {}), peak {}",
        status("VmRSS:"),
        status("RssAnon:"),
        status("RssFile:"),
        status("VmHWM:")
    );
}
