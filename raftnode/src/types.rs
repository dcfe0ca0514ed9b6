//! The openraft type configuration, and conversions between openraft's ids and the WAL's.

use std::fmt;

use openraft::{CommittedLeaderId, LogId, Vote};
use serde::{Deserialize, Serialize};
use strata_engine::mvcc::{Applied, MvccError, WriteRequest, WriteResponse};

use crate::error::NodeError;

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
///
/// On the leader a fresh batch also carries its callers' waiters until openraft takes them
/// out (see [`WaiterResponder`]); they are never serialized, so the bytes in the log are those
/// of the bare request list.
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
pub struct Batch {
    /// The requests, in proposal order.
    pub requests: Vec<WriteRequest>,
    #[serde(skip)]
    waiters: Option<Waiters>,
}

impl Batch {
    /// A batch whose results go to `waiters`, one per request, in order.
    pub(crate) fn proposed(requests: Vec<WriteRequest>, waiters: Waiters) -> Self {
        Batch {
            requests,
            waiters: Some(waiters),
        }
    }
}

impl Clone for Batch {
    /// A copy has the requests only: results go to the waiters once, through the responder.
    fn clone(&self) -> Self {
        Batch {
            requests: self.requests.clone(),
            waiters: None,
        }
    }
}

/// Where a batch's results go: one channel per request, and the proposer's in-flight slot,
/// released when the batch is answered (or dropped).
pub(crate) struct Waiters {
    pub(crate) senders: Vec<WriteWaiter>,
    pub(crate) _slot: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// A caller waiting for the result of its write.
pub(crate) type WriteWaiter =
    tokio::sync::oneshot::Sender<Result<Applied<WriteResponse>, NodeError>>;

/// openraft's [`Responder`](openraft::raft::responder::Responder) for Strata: raft core hands
/// each applied entry's results straight to the callers' channels. openraft's default
/// (a oneshot back to a task that then answers the callers) costs one more task wake-up per
/// write, which a lone client pays in full on every request.
pub struct WaiterResponder(Option<Waiters>);

impl openraft::raft::responder::Responder<TypeConfig> for WaiterResponder {
    type Receiver = ();

    fn from_app_data(mut app_data: Batch) -> (Batch, Self, ())
    where
        Self: Sized,
    {
        let waiters = app_data.waiters.take();
        (app_data, WaiterResponder(waiters), ())
    }

    fn send(self, result: openraft::raft::ClientWriteResult<TypeConfig>) {
        let Some(waiters) = self.0 else {
            return;
        };
        let n = waiters.senders.len();
        match result {
            Ok(r) if r.data.0.len() == n => {
                for (w, res) in waiters.senders.into_iter().zip(r.data.0) {
                    let _ = w.send(res.map_err(NodeError::Mvcc));
                }
            }
            Ok(r) => {
                let e = NodeError::Storage(format!(
                    "an entry of {n} requests was applied with {} results",
                    r.data.0.len()
                ));
                for w in waiters.senders {
                    let _ = w.send(Err(e.clone()));
                }
            }
            Err(e) => {
                let e = match e {
                    openraft::error::ClientWriteError::ForwardToLeader(_) => NodeError::NotLeader,
                    e => NodeError::Storage(e.to_string()),
                };
                for w in waiters.senders {
                    let _ = w.send(Err(e.clone()));
                }
            }
        }
    }
}

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
        Responder = WaiterResponder,
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
