//! The MVCC store with a process view: apply throughput, restart time and resident memory.
//!
//! ```text
//! cargo bench -p strata-engine --bench mvcc              # 1,000,000 keys
//! STRATA_BENCH_KEYS=100000 cargo bench -p strata-engine --bench mvcc
//! ```
//!
//! Loads N keys (16-byte keys, 256-byte values) through `apply` in batches of 100 requests
//! (one raft entry each), with a durable sync every 10,000 entries, and reports the apply
//! rate; then ranges 1,000 keys; then drops the store, starts a fresh child process that opens
//! it (rebuilding the key index) and reports the open time and the child's resident memory
//! (VmRSS, VmHWM) after opening and after a full range scan.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::time::Instant;

use strata_engine::btree::{Db, Options};
use strata_engine::mvcc::{MvccOptions, MvccStore, PutRequest, RangeRequest, WriteRequest};

fn keys_n() -> u64 {
    std::env::var("STRATA_BENCH_KEYS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000)
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

fn open(path: &Path) -> MvccStore {
    MvccStore::open(
        Db::open(path, Options::default()).unwrap(),
        MvccOptions::default(),
    )
    .unwrap()
}

/// The child: open, report, scan, report.
fn child(path: &Path) {
    let t = Instant::now();
    let s = open(path);
    let opened = t.elapsed();
    let (rss, hwm) = (status("VmRSS:"), status("VmHWM:"));
    let (anon, file) = (status("RssAnon:"), status("RssFile:"));
    let t = Instant::now();
    let r = s
        .range(&RangeRequest {
            key: vec![0],
            range_end: vec![0],
            count_only: true,
            ..RangeRequest::default()
        })
        .unwrap();
    let counted = t.elapsed();
    println!(
        "| open (rebuild the key index) | {:.2} s | RSS {rss} (anonymous {anon}, file {file}), peak {hwm} |",
        opened.as_secs_f64()
    );
    println!(
        "| count all {} keys | {:.3} s | RSS {} |",
        r.response.count,
        counted.as_secs_f64(),
        status("VmRSS:")
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(p) = args.iter().position(|a| a == "--child") {
        child(Path::new(&args[p + 1]));
        return;
    }
    if !args.iter().any(|a| a == "--bench") {
        return;
    }
    let n = keys_n();
    let base = std::env::var_os("STRATA_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(base).unwrap();
    // STRATA_BENCH_DB=path keeps the loaded database there (to profile `--child path` on it).
    let path = std::env::var_os("STRATA_BENCH_DB")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.path().join("mvcc.db"));
    let s = open(&path);
    let value = vec![0x61u8; 256];
    let t = Instant::now();
    let mut index = 0u64;
    let mut i = 0u64;
    while i < n {
        index += 1;
        let batch: Vec<(u64, WriteRequest)> = (0..100.min(n - i))
            .map(|j| {
                (
                    index * 1000 + j,
                    WriteRequest::Put(PutRequest {
                        key: key(i + j),
                        value: value.clone(),
                        ..PutRequest::default()
                    }),
                )
            })
            .collect();
        i += batch.len() as u64;
        s.apply(&batch).unwrap();
        if index.is_multiple_of(100) {
            s.sync().unwrap();
        }
    }
    s.sync().unwrap();
    let load = t.elapsed();
    println!("| step | time | memory |");
    println!("|---|---|---|");
    println!(
        "| apply {n} puts of 256 B, 100 per batch, durable every 10,000 | {:.1} s ({:.0} puts/s) | RSS {}, peak {} |",
        load.as_secs_f64(),
        n as f64 / load.as_secs_f64(),
        status("VmRSS:"),
        status("VmHWM:")
    );
    let t = Instant::now();
    let r = s
        .range(&RangeRequest {
            key: b"/registry/".to_vec(),
            range_end: b"/registry0".to_vec(),
            limit: 1000,
            ..RangeRequest::default()
        })
        .unwrap();
    println!(
        "| range 1,000 keys (limit 1000 of {}) | {:.2} ms | |",
        r.response.count,
        t.elapsed().as_secs_f64() * 1000.0
    );
    drop(s);
    let me = std::env::current_exe().unwrap();
    let out = std::process::Command::new(me)
        .arg("--child")
        .arg(&path)
        .output()
        .unwrap();
    print!("{}", String::from_utf8_lossy(&out.stdout));
    let size = std::fs::metadata(&path).unwrap().len();
    println!("| file | | {:.0} MiB |", size as f64 / 1048576.0);
}
