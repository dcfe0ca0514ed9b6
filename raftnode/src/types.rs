//! The openraft type configuration, and conversions between openraft's ids and the WAL's.

use std::fmt;

use openraft::{CommittedLeaderId, LogId, Vote};
use serde::{Deserialize, Serialize};
use strata_engine::mvcc::{Applied, MvccError, WriteRequest, WriteResponse};

/// One member as the cluster knows it (openraft's `Node`): etcd's `Member` fields.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// The member's name (`--name`).
    pub name: String,
    /// Its peer URLs (`--initial-advertise-peer-urls`).
    pub peer_urls: Vec<String>,
    /// Its client URLs (`--advertise-client-urls`).
    pub client_urls: Vec<String>,
}

impl fmt::Display for MemberInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name, self.peer_urls.join(","))
    }
}

/// One log entry's requests: every write waiting when the proposer took them (see
/// `node.rs`), applied together in one engine transaction.
pub type Batch = Vec<WriteRequest>;

/// What applying one log entry produced: one result per request of its batch (empty for a
/// blank or membership entry, or an entry skipped as already applied).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Response(pub Vec<Result<Applied<WriteResponse>, MvccError>>);

openraft::declare_raft_types!(
    /// Strata's raft types: the log carries the MVCC store's write requests.
    pub TypeConfig:
        D = Batch,
        R = Response,
        NodeId = u64,
        Node = MemberInfo,
        SnapshotData = tokio::fs::File,
);

pub(crate) type Entry = openraft::Entry<TypeConfig>;
pub(crate) type StorageError = openraft::StorageError<u64>;

pub(crate) fn to_wal_id(id: &LogId<u64>) -> strata_wal::LogId {
    strata_wal::LogId {
        term: strata_wal::Term(id.leader_id.term),
        leader: strata_wal::NodeId(id.leader_id.node_id),
        index: strata_wal::LogIndex(id.index),
    }
}

pub(crate) fn from_wal_id(id: &strata_wal::LogId) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(id.term.0, id.leader.0), id.index.0)
}

pub(crate) fn to_wal_vote(v: &Vote<u64>) -> strata_wal::Vote {
    strata_wal::Vote {
        term: strata_wal::Term(v.leader_id.term),
        voted_for: Some(strata_wal::NodeId(v.leader_id.node_id)),
        committed: v.committed,
    }
}

pub(crate) fn from_wal_vote(v: &strata_wal::Vote) -> Vote<u64> {
    let node = v.voted_for.map_or(0, |n| n.0);
    if v.committed {
        Vote::new_committed(v.term.0, node)
    } else {
        Vote::new(v.term.0, node)
    }
}
