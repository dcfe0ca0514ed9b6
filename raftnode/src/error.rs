//! What the node answers besides a request's own result.

use strata_engine::mvcc::MvccError;

/// Errors of [`RaftNode`](crate::RaftNode) calls. The messages are etcd's where etcd has one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// The request's own error (etcd's message).
    #[error(transparent)]
    Mvcc(#[from] MvccError),
    /// This member is not the leader (and cannot forward yet).
    #[error("etcdserver: not leader")]
    NotLeader,
    /// Raft did not commit or confirm in time.
    #[error("etcdserver: request timed out")]
    Timeout,
    /// The node is shutting down or stopped.
    #[error("etcdserver: server stopped")]
    Stopped,
    /// Storage failed (WAL, engine, snapshot files); the node cannot go on.
    #[error("etcdserver: storage failed: {0}")]
    Storage(String),
    /// The options do not make a valid configuration.
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl NodeError {
    pub(crate) fn storage(e: impl std::fmt::Display) -> NodeError {
        NodeError::Storage(e.to_string())
    }

    pub(crate) fn io(e: std::io::Error) -> NodeError {
        NodeError::Storage(e.to_string())
    }

    pub(crate) fn fatal(e: openraft::error::Fatal<u64>) -> NodeError {
        match e {
            openraft::error::Fatal::Stopped => NodeError::Stopped,
            other => NodeError::Storage(other.to_string()),
        }
    }
}
