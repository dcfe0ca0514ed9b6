//! Helpers shared by the `wal` (criterion) and `latency` benchmarks: bench directories, the
//! backend list, the raw pwrite+fdatasync baseline file, and the concurrent-appender driver.
//!
//! Every measured WAL append waits for durability (`Wal::append` returning, or the completion
//! callback of `Wal::submit` firing `Ok`); every raw baseline does a real `pwrite` + `fdatasync`
//! of the same number of bytes, on the same file system, into a preallocated zero-filled file
//! (the same state the WAL's prepared segments are in).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use strata_wal::{BackendChoice, Entry, FsStore, LogIndex, Wal, WalOptions, WriteOp};

/// One MiB.
pub const MIB: u64 = 1 << 20;

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
    Wal::open(
        dir,
        WalOptions {
            backend,
            ..WalOptions::default()
        },
    )
    .expect("open wal")
}

/// Waits until the WAL in `dir` has a prepared segment that is fully zero-filled and on disk
/// (fdatasynced here too), so that measurements do not overlap the preparer thread's initial
/// 64 MiB zero-fill. Call after the first append (which takes the first prepared segment and
/// makes the preparer start on the next).
pub fn settle(dir: &Path) {
    let segment_bytes = WalOptions::default().segment_bytes;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        for e in std::fs::read_dir(dir).expect("list wal dir") {
            let e = e.expect("dir entry");
            let name = e.file_name().to_string_lossy().into_owned();
            let full = e.metadata().is_ok_and(|m| m.len() == segment_bytes);
            if name.starts_with("pool-") && name.ends_with(".tmp") && full {
                // fdatasync waits for the preparer's writeback of the file to finish.
                if let Ok(f) = File::open(e.path()) {
                    let _ = f.sync_data();
                }
                std::thread::sleep(Duration::from_millis(20));
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    eprintln!("settle: no prepared segment appeared in {}", dir.display());
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
        let mut w = WalAppender { wal, next: 1, dir };
        w.append_one(&payload(SMALL, 0));
        settle(w.dir.path());
        w
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
        self.wal.purge_before(LogIndex(self.next)).expect("purge");
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
        File::open(dir.path())
            .expect("open dir")
            .sync_all()
            .expect("fsync dir");
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
        let wal = open_wal(dir.path(), backend);
        wal.append(vec![Entry::new(1, 1, 1, payload(SMALL, 0))])
            .expect("first append");
        settle(dir.path());
        SharedWal {
            wal: Arc::new(wal),
            next: Arc::new(Mutex::new(2)),
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

/// A log built once for the recovery benchmark.
pub struct RecoveryLog {
    pub dir: PathBuf,
    pub segment_bytes: u64,
    /// Bytes `Wal::open` reads (the segment files).
    pub bytes: u64,
    pub segments: usize,
    pub entries: u64,
}

impl RecoveryLog {
    pub fn opts(&self, backend: BackendChoice) -> WalOptions {
        WalOptions {
            backend,
            segment_bytes: self.segment_bytes,
            ..WalOptions::default()
        }
    }

    pub fn segment_files(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "wal"))
            .collect();
        v.sort();
        v
    }

    /// Drops the segment files' pages from the page cache (they are clean: fdatasynced).
    #[allow(unsafe_code)]
    pub fn evict(&self) {
        for p in self.segment_files() {
            let f = File::open(&p).unwrap();
            // SAFETY: posix_fadvise only takes a file descriptor that stays open for the call
            // and integer arguments; it touches no memory of ours.
            let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
            assert_eq!(rc, 0, "posix_fadvise({})", p.display());
        }
    }

    /// Opens the log and checks it recovered whole; returns the open time.
    pub fn open_timed(&self, backend: BackendChoice) -> Duration {
        let t = Instant::now();
        let wal = Wal::open(&self.dir, self.opts(backend)).expect("open");
        let d = t.elapsed();
        let r = wal.recovery_report();
        assert_eq!((r.entries, r.bytes_scanned), (self.entries, self.bytes));
        drop(wal);
        d
    }

    /// Reads every segment file sequentially, as recovery does; optionally checksums it.
    pub fn raw_read(&self, crc: bool) -> (Duration, u32) {
        let mut buf = vec![0u8; self.segment_bytes as usize];
        let mut sum = 0u32;
        let files: Vec<File> = self
            .segment_files()
            .iter()
            .map(|p| File::open(p).unwrap())
            .collect();
        let t = Instant::now();
        for f in &files {
            let len = f.metadata().unwrap().len() as usize;
            f.read_exact_at(&mut buf[..len], 0).unwrap();
            if crc {
                sum ^= crc32c::crc32c(&buf[..len]);
            }
        }
        (t.elapsed(), std::hint::black_box(sum))
    }
}

/// Builds (once; reused by later runs while its marker file exists) a log of `target` bytes of
/// segment files with 256 B..4 KiB entries.
pub fn recovery_log(dir: &Path, segment_bytes: u64, target: u64) -> RecoveryLog {
    let marker = dir.with_extension("built");
    let mut log = RecoveryLog {
        dir: dir.to_path_buf(),
        segment_bytes,
        bytes: 0,
        segments: 0,
        entries: 0,
    };
    if let Ok(s) = std::fs::read_to_string(&marker) {
        let v: Vec<u64> = s
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if let [bytes, segments, entries] = v[..] {
            // Reuse it only if it still opens whole (the format may have changed since).
            let whole = dir.is_dir()
                && Wal::open(dir, log.opts(BackendChoice::Portable)).is_ok_and(|w| {
                    let r = w.recovery_report();
                    (r.bytes_scanned, r.segments as u64, r.entries) == (bytes, segments, entries)
                });
            if whole {
                log.bytes = bytes;
                log.segments = segments as usize;
                log.entries = entries;
                eprintln!(
                    "recovery: reusing {} ({} segments, {} entries, {} MiB)",
                    dir.display(),
                    segments,
                    entries,
                    bytes >> 20
                );
                return log;
            }
            eprintln!(
                "recovery: {} does not open whole: rebuilding",
                dir.display()
            );
        }
    }
    let _ = std::fs::remove_file(&marker);
    let _ = std::fs::remove_dir_all(dir);
    eprintln!(
        "recovery: building a {} MiB log in {} (once)...",
        target >> 20,
        dir.display()
    );
    let t = Instant::now();
    let data = payload(8192, 6);
    {
        let wal = Wal::open(dir, log.opts(BackendChoice::Portable)).expect("open");
        // Fill all segments but the last, and the last one half: `target` bytes of files.
        let want = target - segment_bytes / 2;
        let mut written = 0u64;
        let mut index = 1u64;
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        while written < want {
            let mut batch = Vec::new();
            let mut batch_bytes = 0;
            while batch_bytes < (4 << 20).min(segment_bytes / 4) && written < want {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let len = 256 + (x % (4096 - 256 + 1)) as usize;
                let off = (x >> 32) as usize % (8192 - len);
                batch.push(Entry::new(1, 1, index, data.slice(off..off + len)));
                index += 1;
                // Record header (40) + entry prefix (24) + payload, 8-byte aligned.
                let rec = (64 + len as u64).next_multiple_of(8);
                batch_bytes += rec;
                written += rec;
            }
            wal.append(batch).expect("append");
        }
        wal.close().expect("close");
    }
    let wal = Wal::open(dir, log.opts(BackendChoice::Portable)).expect("reopen");
    let r = wal.recovery_report().clone();
    drop(wal);
    log.bytes = r.bytes_scanned;
    log.segments = r.segments;
    log.entries = r.entries;
    assert_eq!(log.bytes, target, "log size: {r:?}");
    std::fs::write(
        &marker,
        format!("{} {} {}\n", log.bytes, log.segments, log.entries),
    )
    .unwrap();
    eprintln!(
        "recovery: built {} segments, {} entries, {} MiB in {:.1?}",
        log.segments,
        log.entries,
        log.bytes >> 20,
        t.elapsed()
    );
    log
}
