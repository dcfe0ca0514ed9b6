//! A consistent snapshot of a whole database as one byte stream (for raft snapshots and
//! `etcdctl snapshot save`), and restoring a database from it.
//!
//! ```text
//! header   "STRATASN" | version u32 = 1 | zero u32
//! bucket   'B' | name length u32 | name
//! entry    'E' | key length u32 | value length u32 | key | value     (of the last bucket)
//! trailer  'Z' | entries u64 | CRC32C u32 of every byte before the checksum
//! ```
//!
//! Integers are little-endian. The stream is written from one read transaction, so it is the
//! database at one commit, while writers go on. Restore checks every length against the
//! engine's limits and the checksum before it makes the new database durable; a truncated or
//! damaged stream is an error and leaves no database behind.

use std::io::{Read, Write};
use std::ops::Bound;
use std::path::Path;

use crate::btree::{Db, Durability, Options, ReadTxn};
use crate::error::{EngineError, Result};

const MAGIC: &[u8; 8] = b"STRATASN";
const VERSION: u32 = 1;
/// Entries per write transaction while restoring.
const RESTORE_BATCH: usize = 10_000;

struct Summing<W> {
    inner: W,
    crc: u32,
    bytes: u64,
}

impl<W: Write> Summing<W> {
    fn put(&mut self, b: &[u8]) -> Result<()> {
        self.crc = crc32c::crc32c_append(self.crc, b);
        self.bytes += b.len() as u64;
        self.inner
            .write_all(b)
            .map_err(|e| EngineError::io("write snapshot", e))
    }
}

fn bad(reason: impl Into<String>) -> EngineError {
    EngineError::io(
        "read snapshot",
        std::io::Error::new(std::io::ErrorKind::InvalidData, reason.into()),
    )
}

impl ReadTxn {
    /// Writes this snapshot of the whole database to `out`; returns the bytes written.
    pub fn write_snapshot(&self, out: impl Write) -> Result<u64> {
        let mut w = Summing {
            inner: out,
            crc: 0,
            bytes: 0,
        };
        w.put(MAGIC)?;
        w.put(&VERSION.to_le_bytes())?;
        w.put(&0u32.to_le_bytes())?;
        let mut entries = 0u64;
        for name in self.bucket_names()? {
            w.put(b"B")?;
            w.put(&(name.len() as u32).to_le_bytes())?;
            w.put(&name)?;
            for item in self.range(&name, Bound::Unbounded, Bound::Unbounded)? {
                let (k, v) = item?;
                w.put(b"E")?;
                w.put(&(k.len() as u32).to_le_bytes())?;
                w.put(&(v.len() as u32).to_le_bytes())?;
                w.put(&k)?;
                w.put(&v)?;
                entries += 1;
            }
        }
        w.put(b"Z")?;
        w.put(&entries.to_le_bytes())?;
        let crc = w.crc;
        w.put(&crc.to_le_bytes())?;
        w.inner
            .flush()
            .map_err(|e| EngineError::io("write snapshot", e))?;
        Ok(w.bytes)
    }
}

struct Reading<R> {
    inner: R,
    crc: u32,
}

impl<R: Read> Reading<R> {
    fn take(&mut self, n: usize) -> Result<Vec<u8>> {
        let mut b = vec![0u8; n];
        self.inner
            .read_exact(&mut b)
            .map_err(|e| bad(format!("truncated snapshot: {e}")))?;
        self.crc = crc32c::crc32c_append(self.crc, &b);
        Ok(b)
    }
    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

impl Db {
    /// Creates a database at `path` (which must not exist) from a snapshot stream. The new
    /// database is made durable only after the whole stream checked out; on any error the
    /// file is removed.
    pub fn restore_snapshot(path: impl AsRef<Path>, input: impl Read, opts: Options) -> Result<Db> {
        let path = path.as_ref();
        if path.exists() {
            return Err(EngineError::InvalidOption(format!(
                "restore target {} already exists",
                path.display()
            )));
        }
        let db = Db::open(path, opts)?;
        match restore_into(&db, input) {
            Ok(()) => Ok(db),
            Err(e) => {
                drop(db);
                let _ = std::fs::remove_file(path);
                Err(e)
            }
        }
    }
}

fn restore_into(db: &Db, input: impl Read) -> Result<()> {
    let mut r = Reading {
        inner: input,
        crc: 0,
    };
    if r.take(8)? != MAGIC {
        return Err(bad("not a Strata snapshot (bad magic)"));
    }
    let version = r.u32()?;
    if version != VERSION {
        return Err(bad(format!("unsupported snapshot version {version}")));
    }
    r.u32()?;
    let max_key = crate::btree::max_key_bytes(db.stats()?.page_size);
    let mut bucket: Option<Vec<u8>> = None;
    let mut entries = 0u64;
    let mut w = db.begin_write()?;
    let mut in_batch = 0;
    loop {
        match r.take(1)?[0] {
            b'B' => {
                let n = r.u32()? as usize;
                if n == 0 || n > crate::btree::MAX_BUCKET_NAME_BYTES {
                    return Err(bad(format!("bucket name of {n} bytes")));
                }
                let name = r.take(n)?;
                w.create_bucket(&name)?;
                bucket = Some(name);
            }
            b'E' => {
                let (kl, vl) = (r.u32()? as usize, r.u32()? as usize);
                if kl == 0 || kl > max_key || vl > crate::btree::MAX_VALUE_BYTES {
                    return Err(bad(format!("entry of key {kl} and value {vl} bytes")));
                }
                let Some(b) = &bucket else {
                    return Err(bad("entry before any bucket"));
                };
                let (k, v) = (r.take(kl)?, r.take(vl)?);
                w.put(b, &k, &v)?;
                entries += 1;
                in_batch += 1;
                if in_batch == RESTORE_BATCH {
                    w.commit(Durability::Fast)?;
                    w = db.begin_write()?;
                    in_batch = 0;
                }
            }
            b'Z' => {
                let n = r.take(8)?;
                let count = u64::from_le_bytes([n[0], n[1], n[2], n[3], n[4], n[5], n[6], n[7]]);
                let expected = r.crc;
                let stored = r.u32()?;
                if stored != expected || count != entries {
                    return Err(bad(format!(
                        "snapshot checksum or count mismatch (crc stored {stored:#010x}, computed {expected:#010x}; {count} entries announced, {entries} read)"
                    )));
                }
                w.commit(Durability::Durable)?;
                return Ok(());
            }
            t => return Err(bad(format!("unknown record tag {t:#04x}"))),
        }
    }
}
