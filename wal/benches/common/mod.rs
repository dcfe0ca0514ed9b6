//! Helpers shared by the `wal` (criterion) and `latency` benchmarks: bench directories, the
//! backend list, the raw pwrite+fdatasync baseline file, and the concurrent-appender driver.
//!
//! Every measured WAL append waits for durability (`Wal::append` returning, or the completion
//! callback of `Wal::submit` firing `Ok`); every raw baseline does a real `pwrite` + `fdatasync`
//! of the same number of bytes, on the same file system, into a preallocated zero-filled file
//! (the same state the WAL's prepared segments are in).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use strata_wal::{BackendChoice, Entry, FsStore, LogIndex, Wal, WalOptions, WriteOp};

/// Payload size of the small-entry benchmarks.
pub const SMALL: usize = 256;
/// Size of the raw baseline file: one default WAL segment.
pub const RAW_FILE_BYTES: u64 = 64 << 20;

/// Root of every bench directory: cargo's per-target scratch dir (on the repo's target file
/// system; `df -T` of it is recorded in docs/benchmarks.md).
pub fn bench_root() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("strata-wal-bench");
    std::fs::create_dir_all(&root).expect("create bench root");
    root
}

/// A fresh temporary directory under [`bench_root`].
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir_in(bench_root()).expect("tempdir")
}

/// The real backends this machine offers, labelled. io_uring is skipped (loudly) when
/// `FsStore::open(dir, BackendChoice::IoUring)` fails here.
pub fn backends() -> Vec<(&'static str, BackendChoice)> {
    let mut v = Vec::new();
    match FsStore::open(&bench_root(), BackendChoice::IoUring) {
        Ok(_) => v.push(("io_uring", BackendChoice::IoUring)),
        Err(e) => {
            eprintln!();
            eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
            eprintln!("!!! io_uring cannot be set up here ({e}):");
            eprintln!("!!! SKIPPING every io_uring variant; only the portable backend is measured");
            eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
            eprintln!();
        }
    }
    v.push(("portable", BackendChoice::Portable));
    v
}

/// Whether this run is a real benchmark run (`cargo bench` passes `--bench`; `cargo test
/// --benches` does not, and `cargo bench -- --test` asks for a quick test run).
pub fn bench_mode() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test")
}

/// A deterministic, incompressible-looking payload.
pub fn payload(len: usize, seed: u64) -> Bytes {
    let mut v = Vec::with_capacity(len + 8);
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    Bytes::from(v)
}

/// Opens a WAL with default (production) options on `backend`.
pub fn open_wal(dir: &Path, backend: BackendChoice) -> Wal {
    let wal = Wal::open(
        dir,
        WalOptions {
            backend,
            ..WalOptions::default()
        },
    )
    .expect("open wal");
    wal
}

/// A WAL plus the next index to append: one appender.
pub struct WalAppender {
    pub wal: Wal,
    pub next: u64,
    pub dir: tempfile::TempDir,
}

impl WalAppender {
    pub fn new(backend: BackendChoice) -> WalAppender {
        let dir = tempdir();
        let wal = open_wal(dir.path(), backend);
        WalAppender { wal, next: 1, dir }
    }

    /// One durable append of one entry; returns its latency (the call blocks until durable).
    pub fn append_one(&mut self, payload: &Bytes) -> Duration {
        let e = Entry::new(1, 1, self.next, payload.clone());
        self.next += 1;
        let t = Instant::now();
        self.wal.append(vec![e]).expect("durable append");
        t.elapsed()
    }

    /// One durable append of `entries` (indices assigned here); returns its latency.
    pub fn append_many(&mut self, payloads: &[Bytes]) -> Duration {
        let batch: Vec<Entry> = payloads
            .iter()
            .map(|p| {
                let e = Entry::new(1, 1, self.next, p.clone());
                self.next += 1;
                e
            })
            .collect();
        let t = Instant::now();
        self.wal.append(batch).expect("durable append");
        t.elapsed()
    }

    /// Purges everything appended so far (not timed by callers) so that full segments are
    /// recycled, as a raft layer's snapshot-driven purges do in steady state.
    pub fn purge_all(&mut self) {
        self.wal
            .purge_before(LogIndex(self.next))
            .expect("purge");
    }
}

/// The raw baseline: a preallocated, zero-filled file (written with zeros and fdatasynced,
/// like the WAL's prepared segments) written with `pwrite` + `fdatasync` at increasing offsets,
/// wrapping around at the end (overwriting already-written blocks costs the same).
pub struct RawFile {
    file: File,
    pos: u64,
    size: u64,
    _dir: tempfile::TempDir,
}

impl RawFile {
    pub fn new(size: u64) -> RawFile {
        let dir = tempdir();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.path().join("raw.dat"))
            .expect("create raw file");
        let zeros = vec![0u8; 1 << 20];
        let mut at = 0;
        while at < size {
            let n = (size - at).min(zeros.len() as u64) as usize;
            file.write_all_at(&zeros[..n], at).expect("zero-fill");
            at += n as u64;
        }
        file.sync_data().expect("fdatasync");
        File::open(dir.path()).expect("open dir").sync_all().expect("fsync dir");
        RawFile {
            file,
            pos: 0,
            size,
            _dir: dir,
        }
    }

    /// One `pwrite` of `buf` at the next offset plus one `fdatasync`; returns its latency.
    pub fn write_sync(&mut self, buf: &[u8]) -> Duration {
        if self.pos + buf.len() as u64 > self.size {
            self.pos = 0;
        }
        let t = Instant::now();
        self.file.write_all_at(buf, self.pos).expect("pwrite");
        self.file.sync_data().expect("fdatasync");
        let d = t.elapsed();
        self.pos += buf.len() as u64;
        d
    }
}

/// A WAL shared by many appenders; indices are assigned and submitted under one mutex, as the
/// raft layer will do.
pub struct SharedWal {
    pub wal: Arc<Wal>,
    pub next: Arc<Mutex<u64>>,
    pub dir: tempfile::TempDir,
}

impl SharedWal {
    pub fn new(backend: BackendChoice) -> SharedWal {
        let dir = tempdir();
        let wal = Arc::new(open_wal(dir.path(), backend));
        SharedWal {
            wal,
            next: Arc::new(Mutex::new(1)),
            dir,
        }
    }

    /// `tasks` tokio tasks append `total` 256-byte entries between them, one at a time each,
    /// every one waiting (through a oneshot fired by the completion callback) until its entry
    /// is durable. Returns the wall time from the first submission to the last completion.
    pub fn run_count(
        &self,
        rt: &tokio::runtime::Runtime,
        tasks: usize,
        total: u64,
        payload: &Bytes,
    ) -> Duration {
        let per = total / tasks as u64;
        let extra = total % tasks as u64;
        rt.block_on(async {
            let start = Instant::now();
            let mut handles = Vec::with_capacity(tasks);
            for t in 0..tasks as u64 {
                let n = per + u64::from(t < extra);
                if n == 0 {
                    continue;
                }
                let wal = self.wal.clone();
                let next = self.next.clone();
                let payload = payload.clone();
                handles.push(tokio::spawn(async move {
                    for _ in 0..n {
                        append_one_async(&wal, &next, &payload).await;
                    }
                }));
            }
            for h in handles {
                h.await.expect("appender task");
            }
            start.elapsed()
        })
    }

    /// Like [`run_count`](Self::run_count) but every task keeps appending until `dur` has
    /// passed; returns (entries made durable, wall time until the last completion).
    pub fn run_for(
        &self,
        rt: &tokio::runtime::Runtime,
        tasks: usize,
        dur: Duration,
        payload: &Bytes,
    ) -> (u64, Duration) {
        rt.block_on(async {
            let start = Instant::now();
            let deadline = start + dur;
            let mut handles = Vec::with_capacity(tasks);
            for _ in 0..tasks {
                let wal = self.wal.clone();
                let next = self.next.clone();
                let payload = payload.clone();
                handles.push(tokio::spawn(async move {
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        append_one_async(&wal, &next, &payload).await;
                        n += 1;
                    }
                    n
                }));
            }
            let mut total = 0;
            for h in handles {
                total += h.await.expect("appender task");
            }
            (total, start.elapsed())
        })
    }

    /// Purges everything appended so far so that full segments get recycled (untimed).
    pub fn purge_all(&self) {
        let next = *self.next.lock().unwrap();
        self.wal.purge_before(LogIndex(next)).expect("purge");
    }
}

/// Assigns the next index and submits one entry under the index mutex, then waits for the
/// completion callback.
async fn append_one_async(wal: &Wal, next: &Mutex<u64>, payload: &Bytes) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    {
        let mut g = next.lock().unwrap();
        let e = Entry::new(1, 1, *g, payload.clone());
        wal.submit(
            WriteOp::Append(vec![e]),
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        )
        .expect("submit");
        *g += 1;
    }
    rx.await
        .expect("completion callback dropped")
        .expect("durable append");
}

/// A multi-thread tokio runtime with one worker per core (2 on the reference machine).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .build()
        .expect("tokio runtime")
}

/// Value at quantile `q` (0..=1) of sorted `v` (nearest rank).
pub fn quantile(v: &[Duration], q: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// Median of `v` (sorted copy; mean of the two middle values for even lengths).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}
