//! A crash-simulating, fault-injecting in-memory store (feature `testing`).
//!
//! It keeps what was written apart from what was made durable: file bytes become durable on
//! `sync_data`/`write_sync`, names on `sync_dir`. [`SimStore::crash_image`] returns the store a
//! machine would find after power loss at this instant: the durable namespace, each file's
//! durable bytes, plus (depending on [`CrashMode`]) some of the unsynced writes.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::store::{SegmentFile, SegmentStore};
use crate::types::BackendKind;

/// Sector size used to tear writes.
pub const SECTOR: usize = 512;

/// What survives of unsynced writes in a crash image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Only durable bytes.
    DropUnsynced,
    /// Every write made it to the media.
    KeepUnsynced,
    /// Of the unsynced writes, in order, exactly the first `n` bytes made it.
    Prefix(u64),
    /// Each 512-byte sector of each unsynced write made it or not, chosen by a seeded generator.
    TornSectors(u64),
}

/// Which call an injected fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOp {
    /// `write_all_at`, and the write half of `write_sync`.
    Write,
    /// `sync_data`, and the fdatasync half of `write_sync`.
    Sync,
}

#[derive(Debug, Clone)]
struct Fault {
    op: FaultOp,
    /// Calls of that kind to let through first.
    skip: u64,
    errno: i32,
    /// Keep failing after the first hit.
    sticky: bool,
    /// Only the commit step (`write_sync`) counts and fails, not segment preparation.
    commit_only: bool,
}

#[derive(Default)]
struct SimFile {
    data: Vec<u8>,
    durable: Vec<u8>,
    /// (offset, len) of writes since the last sync, in order.
    unsynced: Vec<(u64, usize)>,
}

#[derive(Default)]
struct State {
    files: HashMap<u64, SimFile>,
    names: BTreeMap<String, u64>,
    durable_names: BTreeMap<String, u64>,
    next_id: u64,
    fault: Option<Fault>,
    writes: u64,
    syncs: u64,
}

/// The simulated store. Cloning shares the same state.
#[derive(Clone, Default)]
pub struct SimStore {
    state: Arc<Mutex<State>>,
}

impl SimStore {
    /// An empty store.
    pub fn new() -> SimStore {
        SimStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes the `skip + 1`-th call of `op` from now fail with `errno` (e.g. `libc::EIO`,
    /// `libc::ENOSPC`); with `sticky` every later call of that kind fails too.
    pub fn inject(&self, op: FaultOp, skip: u64, errno: i32, sticky: bool) {
        self.lock().fault = Some(Fault {
            op,
            skip,
            errno,
            sticky,
            commit_only: false,
        });
    }

    /// Like [`inject`](Self::inject), but only calls of the commit step (`write_sync`: the
    /// log's batch writes) count and fail; background segment preparation is untouched.
    pub fn inject_commit(&self, op: FaultOp, skip: u64, errno: i32, sticky: bool) {
        self.lock().fault = Some(Fault {
            op,
            skip,
            errno,
            sticky,
            commit_only: true,
        });
    }

    /// Removes any pending fault.
    pub fn clear_faults(&self) {
        self.lock().fault = None;
    }

    /// Counts of write and sync calls so far.
    pub fn io_counts(&self) -> (u64, u64) {
        let s = self.lock();
        (s.writes, s.syncs)
    }

    /// The store as it would be found after power loss now.
    pub fn crash_image(&self, mode: CrashMode) -> SimStore {
        let s = self.lock();
        let mut out = State {
            next_id: s.next_id,
            ..State::default()
        };
        let mut rng = match mode {
            CrashMode::TornSectors(seed) => seed | 1,
            _ => 1,
        };
        let mut budget = match mode {
            CrashMode::Prefix(n) => n,
            _ => 0,
        };
        for (name, id) in &s.durable_names {
            let Some(f) = s.files.get(id) else { continue };
            let mut bytes = f.durable.clone();
            for &(off, len) in &f.unsynced {
                let off = off as usize;
                match mode {
                    CrashMode::DropUnsynced => {}
                    CrashMode::KeepUnsynced => copy_range(&mut bytes, &f.data, off, len),
                    CrashMode::Prefix(_) => {
                        let n = (budget.min(len as u64)) as usize;
                        copy_range(&mut bytes, &f.data, off, n);
                        budget -= n as u64;
                    }
                    CrashMode::TornSectors(_) => {
                        let mut at = off;
                        while at < off + len {
                            let end = ((at / SECTOR) + 1) * SECTOR;
                            let end = end.min(off + len);
                            rng ^= rng << 13;
                            rng ^= rng >> 7;
                            rng ^= rng << 17;
                            if rng & 1 == 1 {
                                copy_range(&mut bytes, &f.data, at, end - at);
                            }
                            at = end;
                        }
                    }
                }
            }
            out.files.insert(
                *id,
                SimFile {
                    data: bytes.clone(),
                    durable: bytes,
                    unsynced: Vec::new(),
                },
            );
            out.names.insert(name.clone(), *id);
            out.durable_names.insert(name.clone(), *id);
        }
        SimStore {
            state: Arc::new(Mutex::new(out)),
        }
    }

    /// The current (not necessarily durable) bytes of a file.
    pub fn file_bytes(&self, name: &str) -> Option<Vec<u8>> {
        let s = self.lock();
        let id = s.names.get(name)?;
        s.files.get(id).map(|f| f.data.clone())
    }

    /// Replaces a file's bytes, durably (creating it if needed). For fuzzing and corruption tests.
    pub fn put_file(&self, name: &str, bytes: Vec<u8>) {
        let mut s = self.lock();
        let id = match s.names.get(name) {
            Some(id) => *id,
            None => {
                s.next_id += 1;
                let id = s.next_id;
                s.names.insert(name.to_string(), id);
                s.durable_names.insert(name.to_string(), id);
                id
            }
        };
        s.files.insert(
            id,
            SimFile {
                data: bytes.clone(),
                durable: bytes,
                unsynced: Vec::new(),
            },
        );
    }

    /// Current file names.
    pub fn names(&self) -> Vec<String> {
        self.lock().names.keys().cloned().collect()
    }

    fn file(&self, id: u64) -> Arc<dyn SegmentFile> {
        Arc::new(SimHandle {
            store: self.clone(),
            id,
        })
    }
}

fn copy_range(dst: &mut Vec<u8>, src: &[u8], off: usize, len: usize) {
    let end = (off + len).min(src.len());
    if off >= end {
        return;
    }
    if dst.len() < end {
        dst.resize(end, 0);
    }
    dst[off..end].copy_from_slice(&src[off..end]);
}

fn not_found(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("no file {name}"))
}

/// Counts a call and returns the injected error, if this call is the one to fail.
fn check_fault(s: &mut State, op: FaultOp, commit: bool) -> io::Result<()> {
    match op {
        FaultOp::Write => s.writes += 1,
        FaultOp::Sync => s.syncs += 1,
    }
    if let Some(f) = s.fault.as_mut()
        && f.op == op
        && (commit || !f.commit_only)
    {
        if f.skip > 0 {
            f.skip -= 1;
        } else {
            let errno = f.errno;
            if !f.sticky {
                s.fault = None;
            }
            return Err(io::Error::from_raw_os_error(errno));
        }
    }
    Ok(())
}

impl SegmentStore for SimStore {
    fn backend(&self) -> BackendKind {
        BackendKind::Simulated
    }

    fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.names())
    }

    fn open(&self, name: &str) -> io::Result<Arc<dyn SegmentFile>> {
        let id = *self.lock().names.get(name).ok_or_else(|| not_found(name))?;
        Ok(self.file(id))
    }

    fn create(&self, name: &str) -> io::Result<Arc<dyn SegmentFile>> {
        let mut s = self.lock();
        if s.names.contains_key(name) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                name.to_string(),
            ));
        }
        s.next_id += 1;
        let id = s.next_id;
        s.files.insert(id, SimFile::default());
        s.names.insert(name.to_string(), id);
        drop(s);
        Ok(self.file(id))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut s = self.lock();
        let id = s.names.remove(from).ok_or_else(|| not_found(from))?;
        s.names.insert(to.to_string(), id);
        Ok(())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        let mut s = self.lock();
        s.names.remove(name).ok_or_else(|| not_found(name))?;
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        let mut s = self.lock();
        s.durable_names = s.names.clone();
        Ok(())
    }
}

struct SimHandle {
    store: SimStore,
    id: u64,
}

impl SimHandle {
    fn write(&self, s: &mut State, buf: &[u8], offset: u64, commit: bool) -> io::Result<()> {
        check_fault(s, FaultOp::Write, commit)?;
        let f = s
            .files
            .get_mut(&self.id)
            .ok_or_else(|| not_found("(handle)"))?;
        let off = offset as usize;
        if f.data.len() < off + buf.len() {
            f.data.resize(off + buf.len(), 0);
        }
        f.data[off..off + buf.len()].copy_from_slice(buf);
        f.unsynced.push((offset, buf.len()));
        Ok(())
    }

    fn sync(&self, s: &mut State, commit: bool) -> io::Result<()> {
        check_fault(s, FaultOp::Sync, commit)?;
        let f = s
            .files
            .get_mut(&self.id)
            .ok_or_else(|| not_found("(handle)"))?;
        f.durable = f.data.clone();
        f.unsynced.clear();
        Ok(())
    }
}

impl SegmentFile for SimHandle {
    fn len(&self) -> io::Result<u64> {
        let s = self.store.lock();
        let f = s.files.get(&self.id).ok_or_else(|| not_found("(handle)"))?;
        Ok(f.data.len() as u64)
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let s = self.store.lock();
        let f = s.files.get(&self.id).ok_or_else(|| not_found("(handle)"))?;
        let off = offset as usize;
        let src = f
            .data
            .get(off..off.saturating_add(buf.len()))
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past end"))?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut s = self.store.lock();
        self.write(&mut s, buf, offset, false)
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut s = self.store.lock();
        self.sync(&mut s, false)
    }

    fn write_sync(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        // The two halves are separate steps, so a crash image taken by another thread can land
        // between them, as power can.
        {
            let mut s = self.store.lock();
            self.write(&mut s, buf, offset, true)?;
        }
        let mut s = self.store.lock();
        self.sync(&mut s, true)
    }
}
