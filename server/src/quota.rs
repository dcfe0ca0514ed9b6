//! The backend quota and the NOSPACE alarm, as etcd 3.5 (`etcdserver/quota.go`,
//! `api/v3rpc/quota.go`, the capped applier).
//!
//! Before a request that adds data (a put, a transaction with a put in a branch, a lease
//! grant) is proposed, its estimated cost is added to the database's size (the pages of its
//! last commit, free or in use, as bbolt's `Tx.Size` that etcd compares); if the sum
//! reaches the quota, the NOSPACE alarm is raised for this member *through raft* (so it is
//! in the store, survives restarts and every member sees it) and the request is refused with
//! "etcdserver: mvcc: database space exceeded". While the alarm is raised the engine refuses
//! such requests at apply time too; reads, deletes, compaction, defrag and lease revokes go on,
//! so an operator can make room and then disarm the alarm.

use strata_engine::mvcc::{AlarmAction, AlarmMember, AlarmType, WriteRequest};
use tonic::Status;

use crate::Ctx;
use crate::errors::NO_SPACE;
use crate::proto::etcdserverpb as pb;

/// etcd's default backend quota: 2 GiB.
pub const DEFAULT_QUOTA_BYTES: u64 = 2 << 30;
/// Above this quota etcd warns at startup (8 GiB, its recommended maximum).
pub const MAX_QUOTA_BYTES: u64 = 8 << 30;
/// etcd's estimate of a key's metadata in the backend.
const KV_OVERHEAD: usize = 256;
/// etcd's estimate of a lease in the backend.
const LEASE_OVERHEAD: usize = 64;

/// The quota `--quota-backend-bytes` asks for (0: the default), and whether etcd would warn
/// that it is above the recommended maximum.
pub fn effective_quota(flag: u64) -> (u64, bool) {
    if flag == 0 {
        (DEFAULT_QUOTA_BYTES, false)
    } else {
        (flag, flag > MAX_QUOTA_BYTES)
    }
}

/// A put's cost: etcd's `costPut` (the key may already exist; it counts it anyway).
pub fn cost_put(r: &pb::PutRequest) -> usize {
    KV_OVERHEAD + r.key.len() + r.value.len()
}

/// A transaction's cost: the larger of its branches' puts (nested transactions are not
/// counted, as etcd's `costTxn`).
pub fn cost_txn(t: &pb::TxnRequest) -> usize {
    let branch = |ops: &[pb::RequestOp]| -> usize {
        ops.iter()
            .map(|op| match &op.request {
                Some(pb::request_op::Request::RequestPut(p)) => cost_put(p),
                _ => 0,
            })
            .sum()
    };
    branch(&t.success).max(branch(&t.failure))
}

/// A lease grant's cost.
pub fn cost_lease_grant() -> usize {
    LEASE_OVERHEAD
}

/// etcd's alarm string (`AlarmMember.String()`, protobuf's compact text), as `Status.errors`
/// carries it.
pub fn alarm_string(a: &AlarmMember) -> String {
    format!("memberID:{} alarm:{} ", a.member, a.alarm.name())
}

impl Ctx {
    /// etcd's quota check: a request of `cost` bytes (0: adds nothing) passes while the
    /// database size plus the cost stays below the quota; otherwise NOSPACE is raised for this
    /// member through raft and the request is refused.
    pub(crate) async fn check_quota(&self, cost: usize) -> Result<(), Status> {
        if cost == 0 {
            return Ok(());
        }
        let size = self
            .node
            .store()
            .db()
            .size_bytes()
            .map_err(|e| Status::internal(format!("etcdserver: storage failed: {e}")))?;
        if size.saturating_add(cost as u64) < self.limits.quota_backend_bytes {
            return Ok(());
        }
        let alarm = AlarmMember {
            member: self.node.member_id(),
            alarm: AlarmType::Nospace,
        };
        // etcd proposes the alarm again for every refused request; once it is raised that
        // changes nothing but adds a log entry per refusal, which a member out of space can do
        // without.
        let raised = self.node.store().alarms().is_ok_and(|a| a.contains(&alarm));
        if raised {
            return Err(NO_SPACE.status());
        }
        // As etcd: the request is refused whether or not raising the alarm worked.
        match self
            .node
            .write(WriteRequest::Alarm {
                action: AlarmAction::Activate,
                alarm,
            })
            .await
        {
            Ok(_) => tracing::warn!(
                db_size = size,
                quota = self.limits.quota_backend_bytes,
                "database space exceeded: NOSPACE alarm raised"
            ),
            Err(e) => tracing::error!(error = %e, "raising the NOSPACE alarm"),
        }
        Err(NO_SPACE.status())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_are_etcds() {
        let put = pb::PutRequest {
            key: b"k".to_vec(),
            value: vec![0; 10],
            ..Default::default()
        };
        assert_eq!(cost_put(&put), 256 + 1 + 10);
        let op = |p: &pb::PutRequest| pb::RequestOp {
            request: Some(pb::request_op::Request::RequestPut(p.clone())),
        };
        let txn = pb::TxnRequest {
            success: vec![op(&put)],
            failure: vec![op(&put), op(&put)],
            ..Default::default()
        };
        assert_eq!(cost_txn(&txn), 2 * (256 + 11));
        assert_eq!(cost_txn(&pb::TxnRequest::default()), 0);
        assert_eq!(effective_quota(0), (2 << 30, false));
        assert_eq!(effective_quota(9 << 30), (9 << 30, true));
        let a = AlarmMember {
            member: 7,
            alarm: AlarmType::Nospace,
        };
        assert_eq!(alarm_string(&a), "memberID:7 alarm:NOSPACE ");
    }
}
