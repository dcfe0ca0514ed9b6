//! The mmap backend: readers borrow page bytes from a read-only shared mapping; the writer
//! never writes through the mapping (it uses pwrite, which the kernel keeps coherent with
//! the mapping through the shared page cache).
//!
//! ## Rules that make the `unsafe` here sound
//! 1. No byte at or beyond the file's length is ever touched: a mapping may reserve address
//!    space past the end of the file (so growth rarely needs a new mapping), but a view only
//!    reads below the length the file had when the view was made, and below the file's
//!    current length, both checked on every read. The file is truncated (defrag,
//!    `btree/defrag.rs`) only under the writer lock, only below the page count of every live
//!    snapshot (it waits until every reader of a snapshot with a larger page count has
//!    ended), and every read goes through a snapshot and is bounded by its page count
//!    (`cursor::load_page`); the current-length bound is lowered before the truncation. So no
//!    access can fault with SIGBUS. The database file is locked exclusively so another Strata
//!    process cannot truncate it; other programs writing the file are outside what any engine
//!    can defend against.
//! 2. A slice borrowed from a mapping is only of a page reachable from a published snapshot
//!    that its reader pins, and the tree never writes a page that a pinned snapshot can reach
//!    (copy-on-write plus reclamation: see `free.rs`). So no byte is written while a `&[u8]`
//!    to it is alive. Meta pages are read through a view only while opening, before any write.
//! 3. Growth never moves a mapping under a reader: growth within the reservation only makes a
//!    new view with a larger readable length over the same mapping; beyond it, a larger
//!    mapping is created beside the old one, which lives until the last view holding it is
//!    dropped.
//! 4. `release_mapped` (MADV_DONTNEED) is called only while no slice of any mapping is
//!    borrowed: the caller holds the writer lock and the reader table's lock with no reader
//!    registered. Afterwards the pages fault back in from the file, unchanged.
#![allow(unsafe_code)]

use std::borrow::Cow;
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use memmap2::{Mmap, MmapOptions};

use crate::btree::store::{FileCore, PageStore, PageView, check_range};
use crate::error::{EngineError, Result};

struct Region {
    map: Option<Arc<Mmap>>,
    /// Bytes of the mapping reserved (may exceed the file).
    cap: u64,
    /// Bytes readable through this view: the file's length when the view was made.
    len: u64,
    /// The file's current length (rule 1): lowered before any truncation.
    file_len: Arc<AtomicU64>,
}

impl PageView for Region {
    fn read(&self, offset: u64, len: usize) -> Result<Cow<'_, [u8]>> {
        check_range(offset, len, self.len)?;
        check_range(offset, len, self.file_len.load(Ordering::Acquire))?;
        let Some(map) = &self.map else {
            return check_range(offset, len, 0).map(|()| Cow::Borrowed(&[][..]));
        };
        let start = offset as usize;
        map.get(start..start + len)
            .map(Cow::Borrowed)
            .ok_or_else(|| {
                EngineError::io(
                    "read mapping",
                    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "range outside mapping"),
                )
            })
    }
}

/// Tells the kernel the file is read at random (`POSIX_FADV_RANDOM`): no read-ahead, so the
/// page cache holds single pages and rewriting one 4 KiB page never dirties a larger folio.
/// Advice only: failure is logged and ignored.
pub(crate) fn advise_random(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: posix_fadvise reads no memory; it takes a descriptor we own for the whole call.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_RANDOM) };
    if rc != 0 {
        tracing::debug!(rc, "posix_fadvise(RANDOM) failed; continuing");
    }
}

/// Starts writeback of the dirty pages in `offset..offset + len` without waiting for it
/// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`). Advice only: failure is ignored, and the
/// fdatasync that follows reports any write error.
pub(crate) fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: sync_file_range reads no memory of ours; it takes a descriptor the caller owns
    // for the whole call.
    let rc = unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
    };
    if rc != 0 {
        tracing::debug!(rc, "sync_file_range(WRITE) failed; continuing");
    }
}

/// The mmap backend.
pub struct MmapStore {
    reserve_min: u64,
    core: FileCore,
    region: Mutex<Arc<Region>>,
}

impl MmapStore {
    /// Opens or creates the file at `path`, reserving at least `reserve_min_bytes` of address
    /// space for the mapping.
    pub fn open(path: &Path, reserve_min_bytes: u64) -> Result<Self> {
        let core = FileCore::open(path)?;
        let region = map(&core.file, &core.len, reserve_min_bytes)?;
        Ok(MmapStore {
            reserve_min: reserve_min_bytes,
            core,
            region: Mutex::new(region),
        })
    }
}

/// Address space reserved for a file of `len` bytes: twice the file (at least `min`), a power
/// of two, so a growing file is remapped only at each doubling.
fn reservation(len: u64, min: u64) -> u64 {
    (len * 2).max(min).next_power_of_two()
}

fn map(file: &File, file_len: &Arc<AtomicU64>, reserve_min: u64) -> Result<Arc<Region>> {
    let len = file_len.load(Ordering::Acquire);
    if len == 0 {
        return Ok(Arc::new(Region {
            map: None,
            cap: 0,
            len: 0,
            file_len: file_len.clone(),
        }));
    }
    // Reserve generously; if the address space is refused, map just the file.
    for cap in [reservation(len, reserve_min), len] {
        let Ok(map_len) = usize::try_from(cap) else {
            continue;
        };
        // SAFETY: rule 1 in the module doc: the file is locked, truncated only below every live
        // snapshot's pages, and only bytes below its length are ever read. The mapping is read-only; aliasing
        // follows rule 2.
        let mapped = unsafe { MmapOptions::new().len(map_len).map(file) };
        match mapped {
            Ok(map) => {
                // Lookups touch pages at random: read-ahead would only evict useful pages
                // (and, with large page-cache folios, make a later 4 KiB rewrite dirty a
                // whole folio).
                if let Err(e) = map.advise(memmap2::Advice::Random) {
                    tracing::debug!(error = %e, "madvise(MADV_RANDOM) failed; continuing");
                }
                return Ok(Arc::new(Region {
                    map: Some(Arc::new(map)),
                    cap,
                    len,
                    file_len: file_len.clone(),
                }));
            }
            Err(e) if cap == len => return Err(EngineError::io("mmap database file", e)),
            Err(e) => {
                tracing::debug!(error = %e, cap, "large mapping refused; mapping the file only")
            }
        }
    }
    Err(EngineError::InvalidOption(format!(
        "file of {len} bytes cannot be mapped here"
    )))
}

impl PageStore for MmapStore {
    fn view(&self) -> Result<Arc<dyn PageView>> {
        let len = self.core.len();
        let mut region = self.region.lock().map_err(|_| EngineError::Poisoned {
            cause: "mapping lock poisoned".into(),
        })?;
        if region.len < len {
            // Rule 3: views already handed out keep their mapping and readable length.
            *region = if len <= region.cap {
                Arc::new(Region {
                    map: region.map.clone(),
                    cap: region.cap,
                    len,
                    file_len: self.core.len.clone(),
                })
            } else {
                map(&self.core.file, &self.core.len, self.reserve_min)?
            };
        }
        Ok(region.clone())
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.core.write_at(offset, data)
    }

    fn sync_data(&self) -> Result<()> {
        self.core.sync_data()
    }

    fn start_writeback(&self, offset: u64, len: u64) {
        self.core.start_writeback(offset, len)
    }

    fn write_durable(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.core.write_durable(offset, data)
    }

    fn len(&self) -> Result<u64> {
        Ok(self.core.len())
    }

    fn grow(&self, len: u64) -> Result<()> {
        self.core.grow(len)
    }

    fn shrink(&self, len: u64) -> Result<()> {
        let mut region = self.region.lock().map_err(|_| EngineError::Poisoned {
            cause: "mapping lock poisoned".into(),
        })?;
        // Rule 1: the caller has ruled out every reader that could reach past `len`; the
        // current-length bound drops before the file does, and new views read below `len`.
        // The mapping itself stays (its address space past the end is never touched).
        self.core.shrink(len)?;
        if region.len > len {
            *region = Arc::new(Region {
                map: region.map.clone(),
                cap: region.cap,
                len,
                file_len: self.core.len.clone(),
            });
        }
        Ok(())
    }

    fn path(&self) -> &Path {
        &self.core.path
    }

    fn kind(&self) -> &'static str {
        "mmap"
    }

    fn release_mapped(&self) -> Result<()> {
        let region = self.region.lock().map_err(|_| EngineError::Poisoned {
            cause: "mapping lock poisoned".into(),
        })?;
        if let Some(map) = &region.map {
            // SAFETY: rule 4 in the module doc: nothing borrows from any mapping now, and the
            // mapping is shared and file-backed, so its contents come back from the file.
            unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) }
                .map_err(|e| EngineError::io("madvise(MADV_DONTNEED)", e))?;
        }
        Ok(())
    }
}
