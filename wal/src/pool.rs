//! Prepared segment files: zero-filled new ones and recycled purged ones, made ready by a
//! background thread so that starting a segment never waits for preallocation.
//!
//! Why zero-fill rather than fallocate: on ext4 an fdatasync after writing into a fallocated
//! (unwritten) extent also commits the extent conversion, roughly doubling its cost; blocks that
//! were already written with zeros cost only the data. Recycled segments are already written,
//! and their stale records can never validate (new salt and sequence number).

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;

use crate::error::{Result, WalError};
use crate::format;
use crate::pipeline::{Monitor, StdMonitor};
use crate::store::{SegmentFile, SegmentStore};

/// Zero-fill chunk size.
const ZERO_CHUNK: usize = 1 << 20;

/// A prepared file: its name and open handle.
pub(crate) type Prepared = (String, Arc<dyn SegmentFile>);

struct PoolState {
    ready: VecDeque<Prepared>,
    next_n: u64,
    target: usize,
    preparing: bool,
    closed: bool,
    /// Set when background preparation failed; cleared by the next `take`.
    failed: bool,
}

pub(crate) struct Pool {
    store: Arc<dyn SegmentStore>,
    segment_bytes: u64,
    mon: StdMonitor<PoolState>,
}

impl Pool {
    pub fn new(
        store: Arc<dyn SegmentStore>,
        segment_bytes: u64,
        target: usize,
        ready: Vec<Prepared>,
        next_n: u64,
    ) -> Pool {
        Pool {
            store,
            segment_bytes,
            mon: StdMonitor::new(PoolState {
                ready: ready.into(),
                next_n,
                target,
                preparing: false,
                closed: false,
                failed: false,
            }),
        }
    }

    /// A prepared file for a new segment. Waits for one being prepared in the background, and
    /// prepares one on the spot only if none is under way.
    pub fn take(&self) -> Result<Prepared> {
        let got = self.mon.wait_for(|s| {
            if let Some(f) = s.ready.pop_front() {
                return Some(Ok(f));
            }
            if s.preparing {
                return None;
            }
            s.failed = false;
            let n = s.next_n;
            s.next_n += 1;
            Some(Err(n))
        });
        self.mon.notify_all();
        match got {
            Ok(f) => Ok(f),
            Err(n) => {
                tracing::warn!("no prepared wal segment ready; preparing one on the write path");
                self.prepare(n)
            }
        }
    }

    /// Turns a purged segment into a prepared file (or removes it if enough are prepared).
    pub fn recycle(&self, name: &str, file: Arc<dyn SegmentFile>) -> Result<()> {
        let keep = file.len().is_ok_and(|l| l == self.segment_bytes)
            && self.mon.with(|s| s.ready.len() <= s.target);
        let io_err = |op, e| WalError::io(op, self.store.describe(name), e);
        if !keep {
            self.store.remove(name).map_err(|e| io_err("remove", e))?;
            return self.store.sync_dir().map_err(|e| io_err("fsync dir", e));
        }
        let n = self.mon.with(|s| {
            s.next_n += 1;
            s.next_n - 1
        });
        let pool_name = format::pool_name(n);
        self.store
            .rename(name, &pool_name)
            .map_err(|e| io_err("rename", e))?;
        self.store.sync_dir().map_err(|e| io_err("fsync dir", e))?;
        self.mon.with(|s| s.ready.push_back((pool_name, file)));
        self.mon.notify_all();
        Ok(())
    }

    /// The preparer thread: keeps `target` files ready until closed.
    pub fn run_preparer(&self) {
        loop {
            let n = self.mon.wait_for(|s| {
                if s.closed {
                    return Some(None);
                }
                if !s.failed && !s.preparing && s.ready.len() < s.target {
                    s.preparing = true;
                    s.next_n += 1;
                    return Some(Some(s.next_n - 1));
                }
                None
            });
            let Some(n) = n else { return };
            let result = self.prepare(n);
            self.mon.with(|s| {
                s.preparing = false;
                match result {
                    Ok(f) => s.ready.push_back(f),
                    Err(e) => {
                        tracing::warn!(error = %e, "preparing a wal segment failed");
                        s.failed = true;
                    }
                }
            });
            self.mon.notify_all();
        }
    }

    pub fn close(&self) {
        self.mon.with(|s| s.closed = true);
        self.mon.notify_all();
    }

    /// Creates `pool-n.tmp` filled with zeros and makes it and its name durable.
    fn prepare(&self, n: u64) -> Result<Prepared> {
        let name = format::pool_name(n);
        let io_err = |op, e: io::Error| WalError::io(op, self.store.describe(&name), e);
        let file = self.store.create(&name).map_err(|e| io_err("create", e))?;
        let zeros = vec![0u8; ZERO_CHUNK];
        let mut at = 0u64;
        while at < self.segment_bytes {
            let n = (self.segment_bytes - at).min(ZERO_CHUNK as u64) as usize;
            file.write_all_at(&zeros[..n], at)
                .map_err(|e| io_err("zero-fill", e))?;
            at += n as u64;
        }
        file.sync_data().map_err(|e| io_err("fdatasync", e))?;
        self.store.sync_dir().map_err(|e| io_err("fsync dir", e))?;
        Ok((name, file))
    }
}
