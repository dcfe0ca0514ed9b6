//! A crash-simulating, fault-injecting page store (feature `testing`).
//!
//! It records every write, grow, truncation and sync in order. [`SimStore::crash_image`]
//! rebuilds the bytes a disk could hold after power is lost at any point in that history:
//! every write and truncation before the last completed sync is there; each later write may be
//! there, absent, or torn (a prefix of its sectors), and each later truncation there or not,
//! as a real disk with a volatile cache may reorder them.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::btree::store::{PageStore, PageView, check_range};
use crate::error::{EngineError, Result};

/// The smallest unit a simulated disk writes atomically.
pub const SECTOR: usize = 512;

/// One recorded operation.
#[derive(Clone, Debug)]
pub enum SimOp {
    /// Bytes written at an offset.
    Write {
        /// Byte offset.
        offset: u64,
        /// The bytes.
        data: Vec<u8>,
    },
    /// The file grown to a length.
    Grow(u64),
    /// The file truncated to a length.
    Shrink(u64),
    /// An fdatasync that completed.
    Sync,
}

/// What happens to one un-synced write in a crash image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Survival {
    /// All of it reached the disk.
    Whole,
    /// None of it did.
    Lost,
    /// Its first `n` sectors did.
    Torn(usize),
}

/// Operations a fault can be injected into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultOp {
    /// `write_at`.
    Write,
    /// `sync_data`.
    Sync,
}

#[derive(Default)]
struct Inner {
    base: Vec<u8>,
    image: Vec<u8>,
    ops: Vec<SimOp>,
    faults: Vec<(FaultOp, u64)>,
    writes: u64,
    syncs: u64,
}

/// The simulated store. Cheap to clone (clones share the same file).
#[derive(Clone, Default)]
pub struct SimStore {
    inner: Arc<Mutex<Inner>>,
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn apply(image: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let end = offset as usize + data.len();
    if image.len() < end {
        image.resize(end, 0);
    }
    image[offset as usize..end].copy_from_slice(data);
}

impl SimStore {
    /// An empty file.
    pub fn new() -> Self {
        SimStore::default()
    }

    /// A file holding `image` (as if synced).
    pub fn from_image(image: Vec<u8>) -> Self {
        let s = SimStore::default();
        {
            let mut i = lock(&s.inner);
            i.base = image.clone();
            i.image = image;
        }
        s
    }

    /// The file's current (volatile) bytes.
    pub fn image(&self) -> Vec<u8> {
        lock(&self.inner).image.clone()
    }

    /// Number of operations recorded so far.
    pub fn ops_len(&self) -> usize {
        lock(&self.inner).ops.len()
    }

    /// The recorded operations.
    pub fn ops(&self) -> Vec<SimOp> {
        lock(&self.inner).ops.clone()
    }

    /// The bytes on disk if power is lost after the first `n_ops` operations: writes before the
    /// last sync among them are whole; `survive(i)` decides the fate of each later write `i`.
    pub fn crash_image(&self, n_ops: usize, survive: &mut dyn FnMut(usize) -> Survival) -> Vec<u8> {
        let inner = lock(&self.inner);
        let ops = &inner.ops[..n_ops.min(inner.ops.len())];
        let last_sync = ops.iter().rposition(|o| matches!(o, SimOp::Sync));
        let mut image = inner.base.clone();
        for (i, op) in ops.iter().enumerate() {
            match op {
                SimOp::Write { offset, data } => {
                    let fate = if last_sync.is_some_and(|s| i < s) {
                        Survival::Whole
                    } else {
                        survive(i)
                    };
                    match fate {
                        Survival::Whole => apply(&mut image, *offset, data),
                        Survival::Lost => {}
                        Survival::Torn(n) => {
                            apply(&mut image, *offset, &data[..(n * SECTOR).min(data.len())])
                        }
                    }
                }
                SimOp::Grow(len) => {
                    if image.len() < *len as usize {
                        image.resize(*len as usize, 0);
                    }
                }
                SimOp::Shrink(len) => {
                    let fate = if last_sync.is_some_and(|s| i < s) {
                        Survival::Whole
                    } else {
                        survive(i)
                    };
                    if fate != Survival::Lost {
                        image.truncate(*len as usize);
                    }
                }
                SimOp::Sync => {}
            }
        }
        image
    }

    /// Makes the `n`-th next operation of kind `op` (1 = the very next) fail with EIO.
    pub fn fail_nth(&self, op: FaultOp, n: u64) {
        let mut i = lock(&self.inner);
        let at = match op {
            FaultOp::Write => i.writes,
            FaultOp::Sync => i.syncs,
        } + n;
        i.faults.push((op, at));
    }

    fn fault(i: &mut Inner, op: FaultOp) -> Result<()> {
        let count = match op {
            FaultOp::Write => {
                i.writes += 1;
                i.writes
            }
            FaultOp::Sync => {
                i.syncs += 1;
                i.syncs
            }
        };
        if let Some(pos) = i.faults.iter().position(|&(o, at)| o == op && at == count) {
            i.faults.remove(pos);
            let what = if op == FaultOp::Write {
                "write database file"
            } else {
                "fdatasync database file"
            };
            return Err(EngineError::io(what, std::io::Error::from_raw_os_error(5)));
        }
        Ok(())
    }
}

struct SimView {
    inner: Arc<Mutex<Inner>>,
    len: u64,
}

impl PageView for SimView {
    fn read(&self, offset: u64, len: usize) -> Result<Cow<'_, [u8]>> {
        check_range(offset, len, self.len)?;
        let i = lock(&self.inner);
        let start = offset as usize;
        let mut out = vec![0u8; len];
        if let Some(src) = i.image.get(start..(start + len).min(i.image.len())) {
            out[..src.len()].copy_from_slice(src);
        }
        Ok(Cow::Owned(out))
    }
}

impl PageStore for SimStore {
    fn view(&self) -> Result<Arc<dyn PageView>> {
        let len = lock(&self.inner).image.len() as u64;
        Ok(Arc::new(SimView {
            inner: self.inner.clone(),
            len,
        }))
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        let mut i = lock(&self.inner);
        SimStore::fault(&mut i, FaultOp::Write)?;
        apply(&mut i.image, offset, data);
        i.ops.push(SimOp::Write {
            offset,
            data: data.to_vec(),
        });
        Ok(())
    }

    fn sync_data(&self) -> Result<()> {
        let mut i = lock(&self.inner);
        SimStore::fault(&mut i, FaultOp::Sync)?;
        i.ops.push(SimOp::Sync);
        Ok(())
    }

    fn len(&self) -> Result<u64> {
        Ok(lock(&self.inner).image.len() as u64)
    }

    fn grow(&self, len: u64) -> Result<()> {
        let mut i = lock(&self.inner);
        if (i.image.len() as u64) < len {
            i.image.resize(len as usize, 0);
            i.ops.push(SimOp::Grow(len));
        }
        Ok(())
    }

    fn shrink(&self, len: u64) -> Result<()> {
        let mut i = lock(&self.inner);
        if (i.image.len() as u64) > len {
            i.image.truncate(len as usize);
            i.ops.push(SimOp::Shrink(len));
        }
        Ok(())
    }

    fn path(&self) -> &Path {
        static SIM: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
        SIM.get_or_init(|| PathBuf::from("<sim>"))
    }

    fn kind(&self) -> &'static str {
        "sim"
    }
}
