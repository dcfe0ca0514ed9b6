//! What file growth (and the remapping it causes) costs readers and the writer.
//!
//! ```text
//! cargo bench -p strata-engine --bench growth
//! ```
//!
//! A writer commits (fast) transactions of 64 KiB values until the file reaches 256 MiB, while
//! a reader thread does random point lookups in a loop and times each one. Pass 1 grows the
//! file from empty (every step is an `ftruncate` and, for the mmap backend, a new mapping);
//! pass 2 deletes everything and writes the same again into the pages pass 1 freed, so it
//! never grows. The difference between the passes is what growth costs.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use strata_engine::btree::{Db, Durability, Options, StoreKind};

const VALUE_BYTES: usize = 64 << 10;
const TARGET_BYTES: u64 = 256 << 20;
const PER_TXN: usize = 16;

fn pct(v: &mut [Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort_unstable();
    v[((v.len() - 1) as f64 * p) as usize]
}

struct Pass {
    commits: Vec<Duration>,
    growth_commits: Vec<Duration>,
    reads: Vec<Duration>,
}

fn pass(db: &Db, keys: u64) -> Pass {
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut reads = Vec::new();
            let mut x = 88172645463325252u64;
            while !stop.load(Ordering::Relaxed) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let t = Instant::now();
                let r = db.begin_read().unwrap();
                let _ = r.get(b"small", &(x % 1000).to_be_bytes()).unwrap();
                drop(r);
                reads.push(t.elapsed());
            }
            reads
        })
    };
    let mut commits = Vec::new();
    let mut growth_commits = Vec::new();
    let value = vec![0x5au8; VALUE_BYTES];
    let mut k = 0u64;
    while k < keys {
        let before = db.stats().unwrap().file_bytes;
        let t = Instant::now();
        let mut w = db.begin_write().unwrap();
        for _ in 0..PER_TXN {
            w.put(b"big", &k.to_be_bytes(), &value).unwrap();
            k += 1;
        }
        w.commit(Durability::Fast).unwrap();
        let took = t.elapsed();
        if db.stats().unwrap().file_bytes != before {
            growth_commits.push(took);
        } else {
            commits.push(took);
        }
    }
    stop.store(true, Ordering::Relaxed);
    Pass {
        commits,
        growth_commits,
        reads: reader.join().unwrap(),
    }
}

fn report(name: &str, mut p: Pass) {
    println!(
        "| {name} | {} | {:?} | {} | {:?} / {:?} | {} | {:?} | {:?} | {:?} |",
        p.commits.len(),
        pct(&mut p.commits, 0.5),
        p.growth_commits.len(),
        pct(&mut p.growth_commits, 0.5),
        p.growth_commits.iter().max().copied().unwrap_or_default(),
        p.reads.len(),
        pct(&mut p.reads, 0.5),
        pct(&mut p.reads, 0.999),
        p.reads.iter().max().copied().unwrap_or_default(),
    );
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    println!(
        "| pass | commits | median | growth commits | median / max | reads | read p50 | read p99.9 | read max |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for store in [StoreKind::Mmap, StoreKind::Pread] {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(
            dir.path().join("db"),
            Options {
                store,
                ..Options::default()
            },
        )
        .unwrap();
        let mut w = db.begin_write().unwrap();
        for i in 0..1000u64 {
            w.put(b"small", &i.to_be_bytes(), b"value").unwrap();
        }
        w.commit(Durability::Durable).unwrap();
        let keys = TARGET_BYTES / VALUE_BYTES as u64;
        report(&format!("{store:?}, pass 1 (grows)"), pass(&db, keys));
        db.sync().unwrap();
        let mut w = db.begin_write().unwrap();
        assert!(w.delete_bucket(b"big").unwrap());
        w.commit(Durability::Durable).unwrap();
        db.sync().unwrap();
        report(&format!("{store:?}, pass 2 (reuses)"), pass(&db, keys));
        let s = db.stats().unwrap();
        eprintln!(
            "{store:?}: file {} MiB, {} pages",
            s.file_bytes >> 20,
            s.page_count
        );
    }
}
