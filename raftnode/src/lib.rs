//! # strata-raftnode: every write through raft
//!
//! openraft (`=0.9.25`, storage v2) glued to Strata's storage:
//! - the raft log is the WAL (`log_store.rs`): entries, the vote and purge marks go through the
//!   WAL's one ordered, group-committed write path, and openraft hears of an append only once
//!   it is durable;
//! - the state machine is the engine's MVCC store (`state_machine.rs`): each batch of committed
//!   entries is applied in one engine transaction that also records the last applied log id and
//!   the membership; the engine makes it durable on its own cadence, and a snapshot (the
//!   engine's consistent snapshot stream) is only taken after a durable engine commit, so the log
//!   is never purged past what the engine holds durably;
//! - [`RaftNode`] (`node.rs`) is what the server sees: [`RaftNode::write`] proposes and waits
//!   for the applied result, [`RaftNode::read_barrier`] is raft's ReadIndex with every read
//!   waiting at one moment sharing one round, leases expire on the leader's clock and are
//!   revoked through raft, and status, members and IDs (computed as etcd computes them,
//!   `identity.rs`) fill response headers.
//!
//! openraft's types stay inside this crate. A one-member cluster is bootstrapped on first start;
//! the peer network (`network.rs`) is a stub until members can be added.
//!
//! On-disk layout under `--data-dir`, like etcd's: `member/identity` (member and cluster ID),
//! `member/wal/` (WAL segments), `member/snap/db` (the engine's database), and
//! `member/snap/<term>-<index>.snap|.meta` (the newest raft snapshot).

// openraft's traits fix the error type (`StorageError`, ~224 bytes); boxing it is not ours to do.
#![allow(clippy::result_large_err)]

mod error;
mod identity;
mod log_store;
mod network;
mod node;
mod state_machine;
mod types;

pub use error::NodeError;
pub use identity::{Identity, cluster_id, member_id};
pub use node::{NodeOptions, NodeStatus, REQUEST_TIMEOUT, RaftNode};
pub use types::MemberInfo;
