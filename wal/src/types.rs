//! The identifiers and values that cross the crate boundary.

use bytes::Bytes;

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub u64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_newtype!(
    /// The position of an entry in the raft log.
    LogIndex
);
id_newtype!(
    /// A raft term.
    Term
);
id_newtype!(
    /// A raft member's id.
    NodeId
);
id_newtype!(
    /// The sequence number of a segment file: strictly increasing over the life of a log.
    SegmentId
);

/// Identifies one log entry the way openraft 0.9 does: the leader that proposed it (its term and
/// node id) and its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LogId {
    /// Term of the leader that proposed the entry.
    pub term: Term,
    /// Node id of that leader.
    pub leader: NodeId,
    /// Position in the log.
    pub index: LogIndex,
}

/// One log entry: its id and an opaque payload (the raft layer's serialized entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The entry's id.
    pub id: LogId,
    /// The payload, stored as given (zstd-compressed on disk above the configured size).
    pub payload: Bytes,
}

impl Entry {
    /// Builds an entry.
    pub fn new(term: u64, leader: u64, index: u64, payload: impl Into<Bytes>) -> Self {
        Entry {
            id: LogId {
                term: Term(term),
                leader: NodeId(leader),
                index: LogIndex(index),
            },
            payload: payload.into(),
        }
    }
}

/// A raft vote, shaped like openraft 0.9's `Vote`: the term, whom this node voted for in it, and
/// whether that vote has been committed by a quorum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vote {
    /// The term of the vote.
    pub term: Term,
    /// The candidate voted for, if any.
    pub voted_for: Option<NodeId>,
    /// Whether a quorum granted the vote.
    pub committed: bool,
}

/// What `RaftLogStorage::get_log_state` needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogState {
    /// The last purged entry's id, if any purge happened.
    pub last_purged: Option<LogId>,
    /// The last entry's id; falls back to `last_purged` when the log is empty.
    pub last: Option<LogId>,
    /// The first index held, if the log holds any entry.
    pub first_index: Option<LogIndex>,
}

/// Which I/O backend a store uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// The `io-uring` crate: write and fdatasync linked in one submission.
    IoUring,
    /// `pwrite` then `fdatasync`.
    Portable,
    /// The in-memory crash-simulating store used by tests.
    Simulated,
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackendKind::IoUring => "io_uring",
            BackendKind::Portable => "portable",
            BackendKind::Simulated => "simulated",
        })
    }
}
