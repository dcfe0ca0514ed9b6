//! The one error type of the crate.

use crate::types::LogIndex;

/// Everything that can go wrong in the WAL.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// An I/O call failed.
    #[error("wal: {op} {file}: {source}")]
    Io {
        /// What was being done (`write+fdatasync`, `read`, `rename`, ...).
        op: &'static str,
        /// The file (or directory) it was done to.
        file: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A segment holds bytes that cannot be part of a log this crate wrote: a bad record followed
    /// by valid ones, a broken segment header, or a gap between segments.
    #[error("wal: corrupted segment {file} at offset {offset}: {reason}")]
    Corrupted {
        /// The segment file.
        file: String,
        /// Byte offset of the first bad byte range.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// An earlier write or fdatasync failed; the handle accepts nothing more.
    #[error("wal: poisoned by an earlier failure: {cause}")]
    Poisoned {
        /// The failure that poisoned the handle.
        cause: String,
    },
    /// The handle is shut down.
    #[error("wal: closed")]
    Closed,
    /// An append did not continue the log.
    #[error("wal: entry {got} does not follow the log (expected index {expected})")]
    NonContiguous {
        /// The index the log needs next.
        expected: LogIndex,
        /// The index that was offered.
        got: LogIndex,
    },
    /// An entry does not fit in one segment.
    #[error("wal: entry of {size} bytes exceeds the maximum of {max} bytes")]
    EntryTooLarge {
        /// Encoded size of the entry.
        size: u64,
        /// Largest encoded entry a segment takes.
        max: u64,
    },
    /// A read asked for entries that were purged.
    #[error("wal: entry {index} was purged (first index is {first})")]
    Purged {
        /// The index asked for.
        index: LogIndex,
        /// The first index still held.
        first: LogIndex,
    },
    /// A read asked for entries past the end of the log.
    #[error("wal: entry {index} is past the end of the log")]
    OutOfRange {
        /// The index asked for.
        index: LogIndex,
    },
    /// An operation's arguments make no sense for the log's state.
    #[error("wal: invalid argument: {0}")]
    InvalidArgument(String),
}

/// The crate's result type.
pub type Result<T, E = WalError> = std::result::Result<T, E>;

impl WalError {
    pub(crate) fn io(op: &'static str, file: impl Into<String>, source: std::io::Error) -> Self {
        WalError::Io {
            op,
            file: file.into(),
            source,
        }
    }

    pub(crate) fn corrupted(file: &str, offset: u64, reason: impl Into<String>) -> Self {
        WalError::Corrupted {
            file: file.to_string(),
            offset,
            reason: reason.into(),
        }
    }
}
