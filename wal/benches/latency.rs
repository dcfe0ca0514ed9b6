//! One command that shows every WAL performance target, WAL against raw side by side.
//!
//! `CARGO_TARGET_DIR=/tmp/target-bench cargo bench -p strata-wal --bench latency`
//!
//! Every section alternates its variants round by round (the order rotates each round), so
//! that a noisy neighbour hits all sides alike, and quotes medians over rounds and ratios:
//! 1. One appender, 256-byte entries: every durable append's latency (`Wal::append` returning)
//!    against raw 256-byte `pwrite` + `fdatasync` into a preallocated zero-filled file;
//!    min/p50/p90/p99/p99.9/max per side, and the WAL/raw p50 and p99 ratios.
//! 2. 64 and 512 concurrent appenders (tokio tasks, index assigned and submitted under one
//!    mutex, durability awaited through a oneshot fired by the completion callback): entries/s
//!    against the raw one-fdatasync-per-append rate.
//! 3. 1 MiB of payload per durable append (one 1 MiB entry; 4096 × 256 B entries) against raw
//!    sequential 1 MiB `pwrite` + `fdatasync`: MB/s.
//! 4. `Wal::open` of the 1 GiB log the `wal` bench builds (built here if missing), warm and
//!    cold page cache, against raw sequential reads of the same files.
//!
//! Knobs (environment): `STRATA_BENCH_ROUNDS` (default 10) and `STRATA_BENCH_APPENDS` (2000)
//! for section 1; `STRATA_BENCH_TPUT_ROUNDS` (5) for sections 2-4; `STRATA_BENCH_ONLY` (a
//! comma-separated subset of `single,concurrent,batches,recovery`).
//!
//! Without `--bench` (as under `cargo test --benches`) it exits at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use strata_wal::BackendChoice;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

/// Runs `n` closures once each, in an order rotated by `round`.
fn rotated(round: usize, n: usize, mut f: impl FnMut(usize)) {
    for k in 0..n {
        f((k + round) % n);
    }
}

fn main() {
    if !bench_mode() {
        eprintln!(
            "latency: not a benchmark run (no --bench): skipping. \
             Run `cargo bench -p strata-wal --bench latency`."
        );
        return;
    }
    let backends = backends();
    eprintln!(
        "bench dir: {} (check `df -T` of it)",
        bench_root().display()
    );
    let only = std::env::var("STRATA_BENCH_ONLY").unwrap_or_default();
    let run = |s: &str| only.is_empty() || only.split(',').any(|o| o == s);
    if run("single") {
        single_appender(&backends);
    }
    if run("concurrent") {
        concurrent(&backends);
    }
    if run("batches") {
        batches_1mib(&backends);
    }
    if run("recovery") {
        recovery(&backends);
    }
}

/// Section 1.
fn single_appender(backends: &[(&'static str, BackendChoice)]) {
    let rounds = env_or("STRATA_BENCH_ROUNDS", 10);
    let per = env_or("STRATA_BENCH_APPENDS", 2000);
    let data = payload(SMALL, 1);
    let raw_buf = data.to_vec();
    let mut raw = RawFile::new(RAW_FILE_BYTES);
    let mut wals: Vec<WalAppender> = backends.iter().map(|(_, b)| WalAppender::new(*b)).collect();
    // Side 0 is raw, side i+1 is backends[i].
    let sides = 1 + wals.len();
    let mut all: Vec<Vec<Duration>> = vec![Vec::new(); sides];
    let mut p50_ratio: Vec<Vec<f64>> = vec![Vec::new(); sides];
    let mut p99_ratio: Vec<Vec<f64>> = vec![Vec::new(); sides];
    // Warm-up, not recorded.
    for _ in 0..200 {
        raw.write_sync(&raw_buf);
        for w in &mut wals {
            w.append_one(&data);
        }
    }
    for round in 0..rounds {
        let mut lat: Vec<Vec<Duration>> = vec![Vec::with_capacity(per); sides];
        rotated(round, sides, |side| {
            for _ in 0..per {
                let d = if side == 0 {
                    raw.write_sync(&raw_buf)
                } else {
                    wals[side - 1].append_one(&data)
                };
                lat[side].push(d);
            }
        });
        for l in &mut lat {
            l.sort();
        }
        let (r50, r99) = (quantile(&lat[0], 0.5), quantile(&lat[0], 0.99));
        let mut line = format!(
            "round {}/{rounds}: raw p50 {} p99 {} us",
            round + 1,
            us(r50),
            us(r99)
        );
        for s in 1..sides {
            let (w50, w99) = (quantile(&lat[s], 0.5), quantile(&lat[s], 0.99));
            p50_ratio[s].push(w50.as_secs_f64() / r50.as_secs_f64());
            p99_ratio[s].push(w99.as_secs_f64() / r99.as_secs_f64());
            line += &format!(
                "; wal_{} p50 {} p99 {} us",
                backends[s - 1].0,
                us(w50),
                us(w99)
            );
        }
        eprintln!("{line}");
        for (a, l) in all.iter_mut().zip(lat) {
            a.extend(l);
        }
    }
    println!();
    println!(
        "### 1 appender, 256 B entries: latency per durable append ({rounds} rounds x {per} \
         appends per side, alternating)"
    );
    println!();
    println!("| side | n | min us | p50 us | p90 us | p99 us | p99.9 us | max us |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (s, a) in all.iter_mut().enumerate() {
        a.sort();
        let name = if s == 0 {
            "raw pwrite+fdatasync".to_string()
        } else {
            format!("wal {}", backends[s - 1].0)
        };
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} |",
            a.len(),
            us(a[0]),
            us(quantile(a, 0.5)),
            us(quantile(a, 0.9)),
            us(quantile(a, 0.99)),
            us(quantile(a, 0.999)),
            us(a[a.len() - 1]),
        );
    }
    println!();
    println!(
        "| backend | p50 WAL/raw (median of rounds) | p99 WAL/raw (median of rounds) | \
         p50 ratio range | p99 ratio range | target <= 1.2x |"
    );
    println!("|---|---:|---:|---:|---:|---|");
    for s in 1..sides {
        let (m50, m99) = (median(&p50_ratio[s]), median(&p99_ratio[s]));
        let range = |v: &[f64]| {
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(0.0, f64::max);
            format!("{lo:.2}..{hi:.2}")
        };
        let met = match (m50 <= 1.2, m99 <= 1.2) {
            (true, true) => "met",
            (true, false) => "p50 met, p99 missed",
            (false, true) => "p50 missed, p99 met",
            (false, false) => "missed",
        };
        println!(
            "| {} | {m50:.3}x | {m99:.3}x | {} | {} | {met} |",
            backends[s - 1].0,
            range(&p50_ratio[s]),
            range(&p99_ratio[s]),
        );
    }
}

/// Section 2.
fn concurrent(backends: &[(&'static str, BackendChoice)]) {
    let rounds = env_or("STRATA_BENCH_TPUT_ROUNDS", 5);
    let raw_secs = Duration::from_secs(1);
    let wal_secs = Duration::from_secs(2);
    let data = payload(SMALL, 2);
    let raw_buf = data.to_vec();
    let rt = runtime();
    let mut raw = RawFile::new(RAW_FILE_BYTES);
    let mut variants: Vec<(&str, usize, SharedWal)> = Vec::new();
    for (label, b) in backends {
        for tasks in [64usize, 512] {
            variants.push((label, tasks, SharedWal::new(*b)));
        }
    }
    // Warm-up, not recorded.
    for (_, tasks, w) in &variants {
        w.run_for(&rt, *tasks, Duration::from_millis(300), &data);
        w.purge_all();
    }
    let sides = 1 + variants.len();
    let mut rate: Vec<Vec<f64>> = vec![Vec::new(); sides];
    let mut ratio: Vec<Vec<f64>> = vec![Vec::new(); sides];
    for round in 0..rounds {
        let mut this = vec![0.0; sides];
        rotated(round, sides, |side| {
            if side == 0 {
                let start = Instant::now();
                let mut n = 0u64;
                while start.elapsed() < raw_secs {
                    raw.write_sync(&raw_buf);
                    n += 1;
                }
                this[0] = n as f64 / start.elapsed().as_secs_f64();
            } else {
                let (_, tasks, w) = &variants[side - 1];
                let (n, d) = w.run_for(&rt, *tasks, wal_secs, &data);
                this[side] = n as f64 / d.as_secs_f64();
                w.purge_all();
            }
        });
        let mut line = format!("round {}/{rounds}: raw {:.0}/s", round + 1, this[0]);
        for s in 1..sides {
            ratio[s].push(this[s] / this[0]);
            line += &format!(
                "; {} x{} {:.0}/s",
                variants[s - 1].0,
                variants[s - 1].1,
                this[s]
            );
        }
        eprintln!("{line}");
        for (r, t) in rate.iter_mut().zip(this) {
            r.push(t);
        }
    }
    println!();
    println!(
        "### Concurrent appenders, 256 B entries: durable entries/s ({rounds} rounds, \
         alternating; raw = one pwrite+fdatasync per append, 1 thread; median raw {:.0}/s)",
        median(&rate[0])
    );
    println!();
    println!(
        "| backend | appenders | WAL entries/s (median) | min..max | raw fsync/s (median) | \
         WAL/raw (median of rounds) | >= 20x raw | >= 200,000/s |"
    );
    println!("|---|---:|---:|---:|---:|---:|---|---|");
    for s in 1..sides {
        let (label, tasks, _) = &variants[s - 1];
        let m = median(&rate[s]);
        let lo = rate[s].iter().copied().fold(f64::INFINITY, f64::min);
        let hi = rate[s].iter().copied().fold(0.0, f64::max);
        let r = median(&ratio[s]);
        println!(
            "| {label} | {tasks} | {m:.0} | {lo:.0}..{hi:.0} | {:.0} | {r:.2}x | {} | {} |",
            median(&rate[0]),
            if r >= 20.0 { "met" } else { "missed" },
            if m >= 200_000.0 { "met" } else { "missed" },
        );
    }
}

/// Section 3.
fn batches_1mib(backends: &[(&'static str, BackendChoice)]) {
    let rounds = env_or("STRATA_BENCH_TPUT_ROUNDS", 5);
    let per = 64; // appends per side per round: 64 MiB, one segment's worth
    let raw_buf = payload(MIB as usize, 3).to_vec();
    let big = vec![payload(MIB as usize, 4)];
    let pool = payload(MIB as usize, 5);
    let small: Vec<Bytes> = (0..4096)
        .map(|i| pool.slice(i * SMALL..(i + 1) * SMALL))
        .collect();
    let mut raw = RawFile::new(RAW_FILE_BYTES);
    let mut variants: Vec<(&str, &str, &[Bytes], WalAppender)> = Vec::new();
    for (label, b) in backends {
        variants.push((label, "1x1MiB", &big, WalAppender::new(*b)));
        variants.push((label, "4096x256B", &small, WalAppender::new(*b)));
    }
    // Warm-up, untimed: three segments' worth each, purging as in the rounds, so that the
    // pool of prepared segments is in its steady state (recycled files, no zero-filling).
    for _ in 0..64 {
        raw.write_sync(&raw_buf);
    }
    for (_, _, p, w) in &mut variants {
        for i in 0..192 {
            w.append_many(p);
            if i % 32 == 31 {
                w.purge_all();
            }
        }
    }
    let sides = 1 + variants.len();
    let mut mbs: Vec<Vec<f64>> = vec![Vec::new(); sides];
    let mut ratio: Vec<Vec<f64>> = vec![Vec::new(); sides];
    for round in 0..rounds {
        let mut this = vec![0.0; sides];
        rotated(round, sides, |side| {
            let mut t = Duration::ZERO;
            for i in 0..per {
                if side == 0 {
                    t += raw.write_sync(&raw_buf);
                } else {
                    let (_, _, p, w) = &mut variants[side - 1];
                    t += w.append_many(p);
                    if i % 32 == 31 {
                        // Untimed: recycle full segments (steady state with purges).
                        w.purge_all();
                    }
                }
            }
            this[side] = (per as f64 * MIB as f64) / 1e6 / t.as_secs_f64();
        });
        let mut line = format!("round {}/{rounds}: raw {:.0} MB/s", round + 1, this[0]);
        for s in 1..sides {
            ratio[s].push(this[s] / this[0]);
            line += &format!(
                "; {} {} {:.0} MB/s",
                variants[s - 1].0,
                variants[s - 1].1,
                this[s]
            );
        }
        eprintln!("{line}");
        for (r, t) in mbs.iter_mut().zip(this) {
            r.push(t);
        }
    }
    println!();
    println!(
        "### 1 MiB of payload per durable append: MB/s of payload ({rounds} rounds x {per} \
         appends per side, alternating; raw = sequential 1 MiB pwrite+fdatasync, median {:.0} MB/s)",
        median(&mbs[0])
    );
    println!();
    println!(
        "| backend | shape | WAL MB/s (median) | min..max | raw MB/s (median) | WAL/raw (median of rounds) | >= 80% |"
    );
    println!("|---|---|---:|---:|---:|---:|---|");
    for s in 1..sides {
        let (label, shape, _, _) = &variants[s - 1];
        let m = median(&mbs[s]);
        let lo = mbs[s].iter().copied().fold(f64::INFINITY, f64::min);
        let hi = mbs[s].iter().copied().fold(0.0, f64::max);
        let r = median(&ratio[s]);
        println!(
            "| {label} | {shape} | {m:.0} | {lo:.0}..{hi:.0} | {:.0} | {:.1}% | {} |",
            median(&mbs[0]),
            r * 100.0,
            if r >= 0.8 { "met" } else { "missed" },
        );
    }
}

/// Section 4.
fn recovery(backends: &[(&'static str, BackendChoice)]) {
    let rounds = env_or("STRATA_BENCH_TPUT_ROUNDS", 5);
    let log = recovery_log(&bench_root().join("recovery-1GiB"), 64 * MIB, 1 << 30);
    // (name, cold, backend: None = raw read)
    let mut variants: Vec<(String, bool, Option<BackendChoice>)> = Vec::new();
    for cold in [false, true] {
        let cache = if cold { "cold" } else { "warm" };
        variants.push((format!("raw pread, {cache}"), cold, None));
        for (label, b) in backends {
            variants.push((format!("Wal::open {label}, {cache}"), cold, Some(*b)));
        }
    }
    // Warm-up: one open (also leaves a prepared segment in place, as after any open).
    log.open_timed(BackendChoice::Portable);
    let mut secs: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for round in 0..rounds {
        let mut line = format!("round {}/{rounds}:", round + 1);
        rotated(round, variants.len(), |v| {
            let (name, cold, backend) = &variants[v];
            if *cold {
                log.evict();
            }
            let d = match backend {
                None => log.raw_read(false).0,
                Some(b) => log.open_timed(*b),
            };
            secs[v].push(d.as_secs_f64());
            line += &format!(" {name} {:.0} ms;", d.as_secs_f64() * 1e3);
        });
        eprintln!("{line}");
    }
    println!();
    println!(
        "### Recovery: open a {} MiB log ({} segments, {} entries of 256 B..4 KiB), {rounds} rounds",
        log.bytes >> 20,
        log.segments,
        log.entries
    );
    println!();
    println!("| variant | time ms (median) | min..max ms | MB/s (median) | time / raw read |");
    println!("|---|---:|---:|---:|---:|");
    for (v, (name, cold, _)) in variants.iter().enumerate() {
        let m = median(&secs[v]);
        let lo = secs[v].iter().copied().fold(f64::INFINITY, f64::min);
        let hi = secs[v].iter().copied().fold(0.0, f64::max);
        let raw_idx = variants
            .iter()
            .position(|(_, c, b)| c == cold && b.is_none())
            .unwrap_or(0);
        println!(
            "| {name} | {:.0} | {:.0}..{:.0} | {:.0} | {:.2}x |",
            m * 1e3,
            lo * 1e3,
            hi * 1e3,
            log.bytes as f64 / 1e6 / m,
            m / median(&secs[raw_idx]),
        );
    }
}
