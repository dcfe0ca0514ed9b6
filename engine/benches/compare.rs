//! The B+tree against redb and LMDB (heed) on one workload and one durability: 16-byte random
//! keys, 256-byte values, a durable commit every 1,000 writes.
//!
//! ```text
//! cargo bench -p strata-engine --features compare --bench compare
//! STRATA_BENCH_KEYS=200000 cargo bench ...   # a quicker, smaller run
//! ```
//!
//! Before the groups, each engine loads N keys (default 1,000,000) into an empty database; the
//! load time and file size are printed. Groups: `insert` (the next 10,000 random keys into the
//! loaded database, 10 durable commits), `get` (random point reads of
//! present keys), `scan100` (100 entries from a random start), `mixed_90_10` (9 reads to 1
//! write, writes committed durably per 1,000, with a concurrent reader thread). The file size
//! of each engine after the load is printed before the groups run.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
// heed's `EnvOpenOptions::open` is unsafe (LMDB's mapping rules); nothing else here is.
#![allow(unsafe_code)]

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use redb::ReadableDatabase;
use strata_engine::btree::{Db, Durability, Options};

const VALUE_BYTES: usize = 256;
const BATCH: usize = 1000;
const TABLE: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("t");

fn keys_n() -> usize {
    std::env::var("STRATA_BENCH_KEYS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000)
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn key(i: u64) -> [u8; 16] {
    // A bijective scramble of i: random-looking, yet key(i) can be recomputed for reads.
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5555_5555_5555_5555;
    x ^= x >> 29;
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&x.to_be_bytes());
    k[8..].copy_from_slice(&i.to_be_bytes());
    k
}

fn value(i: u64) -> [u8; VALUE_BYTES] {
    let mut v = [0u8; VALUE_BYTES];
    for (j, b) in v.iter_mut().enumerate() {
        *b = (i as usize + j) as u8;
    }
    v
}

trait Engine: Send + Sync {
    fn name(&self) -> &'static str;
    /// Inserts keys `ids`, committing durably every BATCH.
    fn load(&self, ids: &mut dyn Iterator<Item = u64>);
    fn get(&self, ids: &[u64]) -> usize;
    fn scan(&self, start: &[u8], n: usize) -> usize;
    /// `ids`: writes are ids with the top bit set, reads the others.
    fn mixed(&self, reads: &[u64], writes: &[u64]) -> usize;
    fn file(&self) -> PathBuf;
}

struct Strata(Db, PathBuf);
impl Engine for Strata {
    fn name(&self) -> &'static str {
        "strata"
    }
    fn load(&self, ids: &mut dyn Iterator<Item = u64>) {
        let mut ids = ids.peekable();
        while ids.peek().is_some() {
            let mut w = self.0.begin_write().unwrap();
            for i in ids.by_ref().take(BATCH) {
                w.put(b"t", &key(i), &value(i)).unwrap();
            }
            w.commit(Durability::Durable).unwrap();
        }
    }
    fn get(&self, ids: &[u64]) -> usize {
        let r = self.0.begin_read().unwrap();
        let t = r.tree(b"t").unwrap().unwrap();
        ids.iter()
            .filter(|&&i| t.get(&key(i)).unwrap().is_some())
            .count()
    }
    fn scan(&self, start: &[u8], n: usize) -> usize {
        let r = self.0.begin_read().unwrap();
        let t = r.tree(b"t").unwrap().unwrap();
        t.range(Bound::Included(start), Bound::Unbounded)
            .take(n)
            .map(|kv| kv.unwrap().1.len())
            .sum()
    }
    fn mixed(&self, reads: &[u64], writes: &[u64]) -> usize {
        let mut w = self.0.begin_write().unwrap();
        let mut found = 0;
        for (chunk, wr) in reads.chunks(9).zip(writes) {
            let r = self.0.begin_read().unwrap();
            let t = r.tree(b"t").unwrap().unwrap();
            found += chunk
                .iter()
                .filter(|&&i| t.get(&key(i)).unwrap().is_some())
                .count();
            w.put(b"t", &key(*wr), &value(*wr)).unwrap();
        }
        w.commit(Durability::Durable).unwrap();
        found
    }
    fn file(&self) -> PathBuf {
        self.1.clone()
    }
}

struct Redb(redb::Database, PathBuf);
impl Engine for Redb {
    fn name(&self) -> &'static str {
        "redb"
    }
    fn load(&self, ids: &mut dyn Iterator<Item = u64>) {
        let mut ids = ids.peekable();
        while ids.peek().is_some() {
            let w = self.0.begin_write().unwrap();
            {
                let mut t = w.open_table(TABLE).unwrap();
                for i in ids.by_ref().take(BATCH) {
                    t.insert(key(i).as_slice(), value(i).as_slice()).unwrap();
                }
            }
            w.commit().unwrap();
        }
    }
    fn get(&self, ids: &[u64]) -> usize {
        let r = self.0.begin_read().unwrap();
        let t = r.open_table(TABLE).unwrap();
        ids.iter()
            .filter(|&&i| t.get(key(i).as_slice()).unwrap().is_some())
            .count()
    }
    fn scan(&self, start: &[u8], n: usize) -> usize {
        let r = self.0.begin_read().unwrap();
        let t = r.open_table(TABLE).unwrap();
        t.range(start..)
            .unwrap()
            .take(n)
            .map(|kv| kv.unwrap().1.value().len())
            .sum()
    }
    fn mixed(&self, reads: &[u64], writes: &[u64]) -> usize {
        let w = self.0.begin_write().unwrap();
        let mut found = 0;
        {
            let mut t = w.open_table(TABLE).unwrap();
            for (chunk, wr) in reads.chunks(9).zip(writes) {
                let r = self.0.begin_read().unwrap();
                let rt = r.open_table(TABLE).unwrap();
                found += chunk
                    .iter()
                    .filter(|&&i| rt.get(key(i).as_slice()).unwrap().is_some())
                    .count();
                t.insert(key(*wr).as_slice(), value(*wr).as_slice())
                    .unwrap();
            }
        }
        w.commit().unwrap();
        found
    }
    fn file(&self) -> PathBuf {
        self.1.clone()
    }
}

type LmdbTable = heed::Database<'static, heed::types::Bytes, heed::types::Bytes>;
struct Lmdb(&'static heed::Env, LmdbTable, PathBuf);
impl Engine for Lmdb {
    fn name(&self) -> &'static str {
        "lmdb"
    }
    fn load(&self, ids: &mut dyn Iterator<Item = u64>) {
        let mut ids = ids.peekable();
        while ids.peek().is_some() {
            let mut w = self.0.write_txn().unwrap();
            for i in ids.by_ref().take(BATCH) {
                self.1.put(&mut w, &key(i), &value(i)).unwrap();
            }
            w.commit().unwrap();
        }
    }
    fn get(&self, ids: &[u64]) -> usize {
        let r = self.0.read_txn().unwrap();
        ids.iter()
            .filter(|&&i| self.1.get(&r, &key(i)).unwrap().is_some())
            .count()
    }
    fn scan(&self, start: &[u8], n: usize) -> usize {
        let r = self.0.read_txn().unwrap();
        let range = (Bound::Included(start), Bound::Unbounded);
        self.1
            .range(&r, &range)
            .unwrap()
            .take(n)
            .map(|kv| kv.unwrap().1.len())
            .sum()
    }
    fn mixed(&self, reads: &[u64], writes: &[u64]) -> usize {
        let mut w = self.0.write_txn().unwrap();
        let mut found = 0;
        for (chunk, wr) in reads.chunks(9).zip(writes) {
            // LMDB allows one transaction per thread: read inside the write transaction.
            found += chunk
                .iter()
                .filter(|&&i| self.1.get(&w, &key(i)).unwrap().is_some())
                .count();
            self.1.put(&mut w, &key(*wr), &value(*wr)).unwrap();
        }
        w.commit().unwrap();
        found
    }
    fn file(&self) -> PathBuf {
        self.2.join("data.mdb")
    }
}

fn open(name: &str, dir: &Path) -> Arc<dyn Engine> {
    match name {
        "strata" => {
            let p = dir.join("strata.db");
            // STRATA_BENCH_STORE=pread measures the fallback backend instead of mmap.
            let store = match std::env::var("STRATA_BENCH_STORE").as_deref() {
                Ok("pread") => strata_engine::btree::StoreKind::Pread,
                _ => strata_engine::btree::StoreKind::Mmap,
            };
            Arc::new(Strata(
                Db::open(
                    &p,
                    Options {
                        store,
                        ..Options::default()
                    },
                )
                .unwrap(),
                p,
            ))
        }
        "redb" => {
            let p = dir.join("redb.db");
            Arc::new(Redb(redb::Database::create(&p).unwrap(), p))
        }
        _ => {
            let p = dir.join("lmdb");
            std::fs::create_dir_all(&p).unwrap();
            // SAFETY: this process opens the environment once and nothing else maps it.
            let env = unsafe { heed::EnvOpenOptions::new().map_size(16 << 30).open(&p) }.unwrap();
            // Databases borrow their environment; a benchmark can leak one per run.
            let env: &'static heed::Env = Box::leak(Box::new(env));
            let w = env.write_txn().unwrap();
            let db = env
                .create_databases_and_commit(w, |wdo, wtxn| -> Result<_, heed::Error> {
                    let db =
                        wdo.create_database::<heed::types::Bytes, heed::types::Bytes>(wtxn, None)?;
                    Ok(heed::CommitOrAbort::<_, ()>::Commit(db))
                })
                .unwrap()
                .unwrap_commit();
            Arc::new(Lmdb(env, db, p))
        }
    }
}

const ENGINES: [&str; 3] = ["strata", "redb", "lmdb"];

fn file_bytes(p: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(p).unwrap();
    (m.len(), m.blocks() * 512)
}

fn bench(c: &mut Criterion) {
    let n = keys_n();
    let base = std::env::var_os("STRATA_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    // Loaded databases for the read groups, built once; their sizes are the size result.
    // STRATA_BENCH_ENGINES=strata,lmdb runs a subset.
    let only = std::env::var("STRATA_BENCH_ENGINES").unwrap_or_default();
    let loaded: Vec<(Arc<dyn Engine>, tempfile::TempDir)> = ENGINES
        .iter()
        .filter(|name| only.is_empty() || only.split(',').any(|o| o == **name))
        .map(|name| {
            let dir = tempfile::tempdir_in(&base).unwrap();
            let e = open(name, dir.path());
            let t = Instant::now();
            e.load(&mut (0..n as u64));
            let (len, alloc) = file_bytes(&e.file());
            eprintln!(
                "loaded {name}: {n} keys in {:.1} s; file {:.1} MiB, allocated {:.1} MiB",
                t.elapsed().as_secs_f64(),
                len as f64 / 1048576.0,
                alloc as f64 / 1048576.0
            );
            (e, dir)
        })
        .collect();

    // Steady-state random inserts into the loaded databases: each iteration inserts the next
    // 10,000 new keys (10 durable commits of 1,000).
    let mut g = c.benchmark_group("insert");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Elements(10_000));
    let mut next = vec![n as u64; loaded.len()];
    for (i, (e, _)) in loaded.iter().enumerate() {
        g.bench_function(BenchmarkId::from_parameter(e.name()), |b| {
            b.iter(|| {
                let start = next[i];
                next[i] += 10_000;
                e.load(&mut (start..start + 10_000));
            })
        });
    }
    g.finish();
    for (e, _) in &loaded {
        let (len, alloc) = file_bytes(&e.file());
        eprintln!(
            "after inserts {}: file {:.1} MiB, allocated {:.1} MiB",
            e.name(),
            len as f64 / 1048576.0,
            alloc as f64 / 1048576.0
        );
    }

    let mut g = c.benchmark_group("get");
    g.throughput(Throughput::Elements(1000));
    for (e, _) in &loaded {
        let mut rng = Rng(7);
        g.bench_function(BenchmarkId::from_parameter(e.name()), |b| {
            b.iter(|| {
                let ids: Vec<u64> = (0..1000).map(|_| rng.next() % n as u64).collect();
                assert_eq!(e.get(&ids), 1000);
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("scan100");
    g.throughput(Throughput::Elements(100));
    for (e, _) in &loaded {
        let mut rng = Rng(11);
        g.bench_function(BenchmarkId::from_parameter(e.name()), |b| {
            b.iter(|| {
                let start = key(rng.next() % n as u64);
                e.scan(&start, 100)
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("mixed_90_10");
    g.sample_size(10).throughput(Throughput::Elements(10_000));
    for (e, _) in &loaded {
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (e, stop) = (e.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut rng = Rng(13);
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let ids: Vec<u64> = (0..100).map(|_| rng.next() % n as u64).collect();
                    reads += e.get(&ids) as u64;
                }
                reads
            })
        };
        let mut rng = Rng(17);
        let mut next_write = n as u64;
        g.bench_function(BenchmarkId::from_parameter(e.name()), |b| {
            b.iter(|| {
                let reads: Vec<u64> = (0..9000).map(|_| rng.next() % n as u64).collect();
                let writes: Vec<u64> = (0..1000).map(|j| next_write + j).collect();
                next_write += 1000;
                e.mixed(&reads, &writes)
            })
        });
        stop.store(true, Ordering::Relaxed);
        let concurrent = reader.join().unwrap();
        eprintln!("{}: concurrent reader did {concurrent} reads", e.name());
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
