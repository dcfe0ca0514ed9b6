//! The mmap backend: readers borrow page bytes from a read-only shared mapping; the writer
//! never writes through the mapping (it uses pwrite, which the kernel keeps coherent with
//! the mapping through the shared page cache).
//!
//! ## Rules that make the `unsafe` here sound
//! 1. The file is only ever grown while mapped, never truncated: every mapping covers bytes
//!    that exist, so no access can fault with SIGBUS. The database file is locked exclusively
//!    (flock) so another Strata process cannot truncate it; other programs writing the file
//!    are outside what any storage engine can defend against.
//! 2. A slice borrowed from a mapping is only of a page reachable from a published snapshot
//!    that its reader pins, and the tree never writes a page that a pinned snapshot can reach
//!    (copy-on-write plus reclamation: see `free.rs`). So no byte is written while a `&[u8]`
//!    to it is alive. Meta pages are read through a view only while opening, before any write.
//! 3. Growth never moves a mapping under a reader: a larger mapping is created beside the old
//!    one, and the old one lives until the last view holding it is dropped.
#![allow(unsafe_code)]

use std::borrow::Cow;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use memmap2::{Mmap, MmapOptions};

use crate::btree::store::{PageStore, PageView, check_range, open_file};
use crate::error::{EngineError, Result};

struct Region {
    map: Option<Mmap>,
    len: u64,
}

impl PageView for Region {
    fn read(&self, offset: u64, len: usize) -> Result<Cow<'_, [u8]>> {
        check_range(offset, len, self.len)?;
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

/// The mmap backend.
pub struct MmapStore {
    file: Arc<File>,
    path: PathBuf,
    len: AtomicU64,
    region: Mutex<Arc<Region>>,
}

impl MmapStore {
    /// Opens or creates the file at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let file = open_file(path)?;
        let len = file
            .metadata()
            .map_err(|e| EngineError::io("stat database file", e))?
            .len();
        let file = Arc::new(file);
        let region = map(&file, len)?;
        Ok(MmapStore {
            file,
            path: path.to_path_buf(),
            len: AtomicU64::new(len),
            region: Mutex::new(region),
        })
    }
}

fn map(file: &File, len: u64) -> Result<Arc<Region>> {
    if len == 0 {
        return Ok(Arc::new(Region { map: None, len: 0 }));
    }
    let map_len = usize::try_from(len).map_err(|_| {
        EngineError::InvalidOption(format!("file of {len} bytes cannot be mapped here"))
    })?;
    // SAFETY: rule 1 in the module doc: the file is locked, never truncated while mapped, and
    // `len` bytes exist now. The mapping is read-only; aliasing follows rule 2.
    let map = unsafe { MmapOptions::new().len(map_len).map(file) }
        .map_err(|e| EngineError::io("mmap database file", e))?;
    Ok(Arc::new(Region {
        map: Some(map),
        len,
    }))
}

impl PageStore for MmapStore {
    fn view(&self) -> Result<Arc<dyn PageView>> {
        let len = self.len.load(Ordering::Acquire);
        let mut region = self.region.lock().map_err(|_| EngineError::Poisoned {
            cause: "mapping lock poisoned".into(),
        })?;
        if region.len < len {
            // Rule 3: the old region stays alive in the views that hold it.
            *region = map(&self.file, len)?;
        }
        Ok(region.clone())
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.file
            .write_all_at(data, offset)
            .map_err(|e| EngineError::io("write database file", e))?;
        self.len
            .fetch_max(offset + data.len() as u64, Ordering::AcqRel);
        Ok(())
    }

    fn sync_data(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| EngineError::io("fdatasync database file", e))
    }

    fn len(&self) -> Result<u64> {
        Ok(self.len.load(Ordering::Acquire))
    }

    fn grow(&self, len: u64) -> Result<()> {
        if len > self.len.load(Ordering::Acquire) {
            self.file
                .set_len(len)
                .map_err(|e| EngineError::io("grow database file", e))?;
            self.len.fetch_max(len, Ordering::AcqRel);
        }
        Ok(())
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn kind(&self) -> &'static str {
        "mmap"
    }
}
