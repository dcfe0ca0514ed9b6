//! The I/O seam: one narrow page-store trait with real backends (mmap, pread) and, behind the
//! `testing` feature, a crash-simulating and fault-injecting one.
//!
//! The tree only ever (a) reads byte ranges through a [`PageView`] taken at commit time,
//! (b) writes whole page runs with [`PageStore::write_at`], (c) makes them durable with
//! [`PageStore::sync_data`], (d) grows the file, and (e) shrinks it, only when defrag has
//! proved that no live snapshot can reach a page past the new end (see `btree/defrag.rs`).

use std::borrow::Cow;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{EngineError, Result};

/// A read-only view of the database file as of the moment it was taken: every byte below the
/// file length at that moment can be read through it for as long as the view lives.
pub trait PageView: Send + Sync {
    /// Reads `len` bytes at `offset`. Borrowed when the backend can lend its memory (mmap).
    fn read(&self, offset: u64, len: usize) -> Result<Cow<'_, [u8]>>;
}

/// Where the database's pages live.
#[allow(clippy::len_without_is_empty)]
pub trait PageStore: Send + Sync + 'static {
    /// A view covering at least every byte written so far.
    fn view(&self) -> Result<Arc<dyn PageView>>;
    /// Writes `data` at `offset` (not durable until [`PageStore::sync_data`]).
    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()>;
    /// Makes every completed write durable (fdatasync).
    fn sync_data(&self) -> Result<()>;
    /// Writes `data` at `offset` and returns once those bytes are durable. The default is
    /// [`PageStore::write_at`] then [`PageStore::sync_data`]; the file backends write through a
    /// second descriptor opened `O_DSYNC` instead (one synchronous write, no second fdatasync).
    fn write_durable(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.write_at(offset, data)?;
        self.sync_data()
    }
    /// Asks for the written bytes at `offset..offset + len` to start going to disk now, ahead
    /// of the [`PageStore::sync_data`] that will wait for them, so that the device works while
    /// the writer goes on. Advice only: nothing is promised until `sync_data` returns.
    fn start_writeback(&self, offset: u64, len: u64) {
        let _ = (offset, len);
    }
    /// The file's current length in bytes.
    fn len(&self) -> Result<u64>;
    /// Grows the file to at least `len` bytes; never shrinks it.
    fn grow(&self, len: u64) -> Result<()>;
    /// Truncates the file to `len` bytes (not durable until [`PageStore::sync_data`]). The
    /// caller holds the writer lock and guarantees that no live snapshot's page count reaches
    /// past `len`, so no view reads a byte at or beyond it again (`btree/defrag.rs`).
    fn shrink(&self, len: u64) -> Result<()>;
    /// The file's path, for error messages.
    fn path(&self) -> &Path;
    /// Lets go of cached pages this process holds mapped (they stay in the page cache). Called
    /// only while nothing borrows from the store (see [`crate::btree::Db::release_mapped_pages`]).
    fn release_mapped(&self) -> Result<()> {
        Ok(())
    }
    /// The backend's name, for logs and reports.
    fn kind(&self) -> &'static str;
}

/// Which real backend [`crate::btree::Db::open`] uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StoreKind {
    /// Readers borrow pages from a read-only shared mapping; writes go through pwrite.
    #[default]
    Mmap,
    /// Readers copy pages out with pread. Slower; needs no mapping.
    Pread,
}

/// A second descriptor of the database file whose writes are durable when they return
/// (`O_DSYNC`), for the meta page.
pub(crate) fn open_dsync(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DSYNC)
        .open(path)
        .map_err(|e| EngineError::io("open database file (O_DSYNC)", e))
}

/// Opens (creating if absent) the database file and takes an exclusive advisory lock on it, so
/// that two processes never write one file (a second opener gets an error, not corruption).
pub(crate) fn open_file(path: &Path) -> Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| EngineError::io("open database file", e))?;
    lock_exclusive(&file)?;
    Ok(file)
}

fn lock_exclusive(file: &File) -> Result<()> {
    file.try_lock().map_err(|e| {
        let e = match e {
            std::fs::TryLockError::Error(e) => e,
            std::fs::TryLockError::WouldBlock => std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                "another process holds the database lock",
            ),
        };
        EngineError::io("lock database file", e)
    })
}

/// The most one write system call puts into the file.
///
/// A buffered write into pages that are not cached yet makes page-cache folios as large as the
/// write (ext4 on Linux 6.x has large folios). Every later write into such a folio, however
/// small, walks all of its blocks: preparing the write (`ext4_block_write_begin`) and again at
/// writeback (`mpage_process_page_bufs`). Pages freed by one commit are reused one at a time
/// by later ones, so a file grown with 1 MiB writes made each later 4 KiB rewrite cost several
/// times what it costs in a single-page folio: measured here (Linux 6.18, ext4), 1,400 random
/// 4 KiB rewrites and an fdatasync took 32–36 ms in a file written with 1 MiB writes and
/// 17–21 ms in one written with 4 KiB writes; with 16 KiB writes, 20–22 ms. Reads never make
/// large folios either: the file is advised random (`POSIX_FADV_RANDOM`, `MADV_RANDOM`).
pub(crate) const WRITE_PIECE_BYTES: usize = 16 << 10;

/// A thread that starts writeback of ranges the writer has finished writing
/// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`), so the device writes them while the writer is
/// still encoding and writing the rest of its commit, and the commit's fdatasync mostly waits
/// for writes already under way.
///
/// It uses its own descriptor: write errors are reported once per open file description, and
/// `SYNC_FILE_RANGE_WRITE` neither waits nor consumes them, so the writer's fdatasync still
/// reports every error. If the thread or descriptor cannot be had, nothing is started early.
struct Writeback {
    tx: Option<std::sync::mpsc::Sender<(u64, u64)>>,
}

impl Writeback {
    fn start(path: &Path) -> Writeback {
        let Ok(file) = File::open(path) else {
            return Writeback { tx: None };
        };
        let (tx, rx) = std::sync::mpsc::channel::<(u64, u64)>();
        let spawned = std::thread::Builder::new()
            .name("engine-writeback".into())
            .spawn(move || {
                while let Ok((offset, len)) = rx.recv() {
                    crate::btree::mmap::start_writeback(&file, offset, len);
                }
            });
        Writeback {
            tx: spawned.ok().map(|_| tx),
        }
    }

    fn start_range(&self, offset: u64, len: u64) {
        if let Some(tx) = &self.tx {
            let _ = tx.send((offset, len));
        }
    }
}

/// An open, locked database file: what both file backends write and sync through.
pub(crate) struct FileCore {
    pub file: Arc<File>,
    /// A second descriptor opened `O_DSYNC`, for the meta page.
    dsync: File,
    writeback: Writeback,
    pub path: PathBuf,
    /// The file's length as this process has made it (lowered before a truncation, raised
    /// after growth), shared with the mmap backend's views as a second bound on every read.
    pub len: Arc<AtomicU64>,
}

impl FileCore {
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let file = open_file(path)?;
        crate::btree::mmap::advise_random(&file);
        let len = file
            .metadata()
            .map_err(|e| EngineError::io("stat database file", e))?
            .len();
        Ok(FileCore {
            dsync: open_dsync(path)?,
            writeback: Writeback::start(path),
            file: Arc::new(file),
            path: path.to_path_buf(),
            len: Arc::new(AtomicU64::new(len)),
        })
    }

    pub(crate) fn len(&self) -> u64 {
        self.len.load(Ordering::Acquire)
    }

    pub(crate) fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        let mut at = offset;
        for piece in data.chunks(WRITE_PIECE_BYTES) {
            self.file
                .write_all_at(piece, at)
                .map_err(|e| EngineError::io("write database file", e))?;
            at += piece.len() as u64;
        }
        self.len
            .fetch_max(offset + data.len() as u64, Ordering::AcqRel);
        Ok(())
    }

    pub(crate) fn start_writeback(&self, offset: u64, len: u64) {
        self.writeback.start_range(offset, len);
    }

    pub(crate) fn sync_data(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| EngineError::io("fdatasync database file", e))
    }

    pub(crate) fn write_durable(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.dsync
            .write_all_at(data, offset)
            .map_err(|e| EngineError::io("write database file (O_DSYNC)", e))?;
        self.len
            .fetch_max(offset + data.len() as u64, Ordering::AcqRel);
        Ok(())
    }

    pub(crate) fn shrink(&self, len: u64) -> Result<()> {
        if len < self.len() {
            // Lowered first: from here on no view reads at or past `len`.
            self.len.store(len, Ordering::Release);
            self.file
                .set_len(len)
                .map_err(|e| EngineError::io("truncate database file", e))?;
        }
        Ok(())
    }

    pub(crate) fn grow(&self, len: u64) -> Result<()> {
        if len > self.len() {
            self.file
                .set_len(len)
                .map_err(|e| EngineError::io("grow database file", e))?;
            self.len.fetch_max(len, Ordering::AcqRel);
        }
        Ok(())
    }
}

/// The pread/pwrite backend.
pub struct FileStore {
    core: FileCore,
}

impl FileStore {
    /// Opens or creates the file at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        Ok(FileStore {
            core: FileCore::open(path)?,
        })
    }
}

struct PreadView {
    file: Arc<File>,
    len: u64,
}

impl PageView for PreadView {
    fn read(&self, offset: u64, len: usize) -> Result<Cow<'_, [u8]>> {
        check_range(offset, len, self.len)?;
        let mut buf = vec![0u8; len];
        self.file
            .read_exact_at(&mut buf, offset)
            .map_err(|e| EngineError::io("read database file", e))?;
        Ok(Cow::Owned(buf))
    }
}

pub(crate) fn check_range(offset: u64, len: usize, file_len: u64) -> Result<()> {
    match offset.checked_add(len as u64) {
        Some(end) if end <= file_len => Ok(()),
        _ => Err(EngineError::io(
            "read database file",
            std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("range {offset}+{len} beyond the end of the file ({file_len} bytes)"),
            ),
        )),
    }
}

impl PageStore for FileStore {
    fn view(&self) -> Result<Arc<dyn PageView>> {
        Ok(Arc::new(PreadView {
            file: self.core.file.clone(),
            len: self.core.len(),
        }))
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
        self.core.shrink(len)
    }

    fn path(&self) -> &Path {
        &self.core.path
    }

    fn kind(&self) -> &'static str {
        "pread"
    }
}
