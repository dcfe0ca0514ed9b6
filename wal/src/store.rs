//! The one I/O seam: a directory of segment files. Two real backends (io_uring and portable
//! pwrite+fdatasync) and, behind the `testing` feature, a crash-simulating store.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::types::BackendKind;
use crate::uring;

/// A directory of files. Names are plain file names, never paths.
pub trait SegmentStore: Send + Sync + 'static {
    /// The backend doing the writes.
    fn backend(&self) -> BackendKind;
    /// Names of the files in the directory.
    fn list(&self) -> io::Result<Vec<String>>;
    /// Opens an existing file for reading and writing.
    fn open(&self, name: &str) -> io::Result<Arc<dyn SegmentFile>>;
    /// Creates a new, empty file; fails if it exists.
    fn create(&self, name: &str) -> io::Result<Arc<dyn SegmentFile>>;
    /// Renames a file, replacing any file named `to`.
    fn rename(&self, from: &str, to: &str) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Makes creations, renames and removals durable (fsync of the directory).
    fn sync_dir(&self) -> io::Result<()>;
    /// A displayable location for error messages.
    fn describe(&self, name: &str) -> String {
        name.to_string()
    }
}

/// One open file.
pub trait SegmentFile: Send + Sync {
    /// Current length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Fills `buf` from `offset`; a short file is an `UnexpectedEof` error.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset` without syncing.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes written data durable (fdatasync).
    fn sync_data(&self) -> io::Result<()>;
    /// The commit step: writes all of `buf` at `offset` and makes it durable, as one write
    /// submission and one fdatasync. Returns only after both completed.
    fn write_sync(&self, buf: &[u8], offset: u64) -> io::Result<()>;
}

/// Which backend [`FsStore::open`] should use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// io_uring if it can be set up here, else portable.
    #[default]
    Auto,
    /// io_uring or fail.
    IoUring,
    /// pwrite + fdatasync.
    Portable,
}

impl BackendChoice {
    /// Reads `STRATA_WAL_BACKEND` (`io_uring`, `portable` or `auto`); `None` if unset.
    pub fn from_env() -> Option<BackendChoice> {
        match std::env::var("STRATA_WAL_BACKEND").ok()?.as_str() {
            "io_uring" | "uring" => Some(BackendChoice::IoUring),
            "portable" => Some(BackendChoice::Portable),
            _ => Some(BackendChoice::Auto),
        }
    }
}

/// A real directory on a file system.
pub struct FsStore {
    dir: PathBuf,
    dir_handle: File,
    kind: BackendKind,
}

impl FsStore {
    /// Opens (creating if needed) `dir` and picks the backend.
    pub fn open(dir: &Path, choice: BackendChoice) -> io::Result<FsStore> {
        std::fs::create_dir_all(dir)?;
        let dir_handle = File::open(dir)?;
        let kind = match choice {
            BackendChoice::Portable => BackendKind::Portable,
            BackendChoice::IoUring => {
                uring::probe()?;
                BackendKind::IoUring
            }
            BackendChoice::Auto => match uring::probe() {
                Ok(()) => BackendKind::IoUring,
                Err(e) => {
                    tracing::warn!(error = %e, "io_uring unavailable; using the portable pwrite+fdatasync backend");
                    BackendKind::Portable
                }
            },
        };
        tracing::info!(backend = %kind, dir = %dir.display(), "wal store opened");
        Ok(FsStore {
            dir: dir.to_path_buf(),
            dir_handle,
            kind,
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn wrap(&self, file: File) -> Arc<dyn SegmentFile> {
        Arc::new(FsFile {
            file,
            uring: self.kind == BackendKind::IoUring,
        })
    }
}

impl SegmentStore for FsStore {
    fn backend(&self) -> BackendKind {
        self.kind
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            if let Ok(name) = entry.file_name().into_string() {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    fn open(&self, name: &str) -> io::Result<Arc<dyn SegmentFile>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.path(name))?;
        Ok(self.wrap(f))
    }

    fn create(&self, name: &str) -> io::Result<Arc<dyn SegmentFile>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(self.path(name))?;
        Ok(self.wrap(f))
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        std::fs::rename(self.path(from), self.path(to))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        std::fs::remove_file(self.path(name))
    }

    fn sync_dir(&self) -> io::Result<()> {
        self.dir_handle.sync_all()
    }

    fn describe(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

struct FsFile {
    file: File,
    uring: bool,
}

impl SegmentFile for FsFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(&self.file, buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(&self.file, buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn write_sync(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if self.uring {
            uring::write_sync(&self.file, buf, offset)
        } else {
            FileExt::write_all_at(&self.file, buf, offset)?;
            self.file.sync_data()
        }
    }
}
