//! The engine's one error type.

use std::path::PathBuf;

use crate::btree::PageId;

/// Everything the engine can fail with.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// An I/O call failed.
    #[error("{op} failed: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Bytes read from the database file are not a valid page, meta page or freelist.
    #[error("database {file} is corrupted at page {page}: {reason}")]
    Corrupted {
        /// The database file (or `<memory>` for a simulated store).
        file: PathBuf,
        /// The page where the damage was found.
        page: PageId,
        /// What is wrong with it.
        reason: String,
    },
    /// Neither meta page is valid: the file is not a Strata database or both copies are damaged.
    #[error("database {file} has no valid meta page: {reason}")]
    NoValidMeta {
        /// The database file.
        file: PathBuf,
        /// Why each copy was rejected.
        reason: String,
    },
    /// A page's checksum does not match its contents.
    #[error(
        "database {file}: page {page} checksum mismatch (stored {expected:#010x}, computed {actual:#010x})"
    )]
    ChecksumMismatch {
        /// The database file.
        file: PathBuf,
        /// The damaged page.
        page: PageId,
        /// The checksum stored in the page.
        expected: u32,
        /// The checksum of the bytes read.
        actual: u32,
    },
    /// An earlier write or fdatasync failed; the handle refuses all further writes.
    #[error("database handle is poisoned by an earlier failure: {cause}")]
    Poisoned {
        /// The failure that poisoned the handle.
        cause: String,
    },
    /// A key is empty or longer than the page size allows.
    #[error("key length {len} is out of range (1..={max} bytes)")]
    KeyTooLarge {
        /// The key's length.
        len: usize,
        /// The largest key this page size allows.
        max: usize,
    },
    /// A value is larger than the engine stores.
    #[error("value length {len} exceeds the maximum of {max} bytes")]
    ValueTooLarge {
        /// The value's length.
        len: usize,
        /// The largest value stored.
        max: usize,
    },
    /// The named bucket does not exist.
    #[error("bucket {name:?} does not exist")]
    BucketNotFound {
        /// The bucket's name, lossily decoded.
        name: String,
    },
    /// A bucket name is empty or too long.
    #[error("bucket name length {len} is out of range (1..={max} bytes)")]
    InvalidBucketName {
        /// The name's length.
        len: usize,
        /// The longest name allowed.
        max: usize,
    },
    /// An option is out of range.
    #[error("invalid option: {0}")]
    InvalidOption(String),
}

/// The engine's result type.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

impl EngineError {
    pub(crate) fn io(op: &'static str, source: std::io::Error) -> Self {
        EngineError::Io { op, source }
    }
}
