//! etcd's request checks (`api/v3rpc/key.go`), run before a request reaches raft: a refused
//! request gets etcd's error and changes nothing.

use tonic::Status;

use crate::errors::*;
use crate::proto::etcdserverpb as pb;

/// A range: a key is required.
pub fn range(r: &pb::RangeRequest) -> Result<(), Status> {
    if r.key.is_empty() {
        return Err(EMPTY_KEY.status());
    }
    if pb::range_request::SortOrder::try_from(r.sort_order).is_err()
        || pb::range_request::SortTarget::try_from(r.sort_target).is_err()
    {
        return Err(INVALID_SORT_OPTION.status());
    }
    Ok(())
}

/// A put: a key; no value with `ignore_value`; no lease with `ignore_lease`.
pub fn put(r: &pb::PutRequest) -> Result<(), Status> {
    if r.key.is_empty() {
        return Err(EMPTY_KEY.status());
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(VALUE_PROVIDED.status());
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(LEASE_PROVIDED.status());
    }
    Ok(())
}

/// A delete: a key is required.
pub fn delete(r: &pb::DeleteRangeRequest) -> Result<(), Status> {
    if r.key.is_empty() {
        return Err(EMPTY_KEY.status());
    }
    Ok(())
}

/// A transaction: at most `max_ops` compares and operations per branch (a nested transaction
/// gets what its parent left), keys everywhere, and no empty operation.
pub fn txn(t: &pb::TxnRequest, max_ops: usize) -> Result<(), Status> {
    let opc = t.compare.len().max(t.success.len()).max(t.failure.len());
    if opc > max_ops {
        return Err(TOO_MANY_OPS.status());
    }
    if t.compare.iter().any(|c| c.key.is_empty()) {
        return Err(EMPTY_KEY.status());
    }
    for op in t.success.iter().chain(&t.failure) {
        request_op(op, max_ops - opc)?;
    }
    Ok(())
}

fn request_op(op: &pb::RequestOp, max_ops: usize) -> Result<(), Status> {
    use pb::request_op::Request;
    match &op.request {
        Some(Request::RequestRange(r)) => range(r),
        Some(Request::RequestPut(r)) => put(r),
        Some(Request::RequestDeleteRange(r)) => delete(r),
        Some(Request::RequestTxn(t)) => txn(t, max_ops),
        None => Err(KEY_NOT_FOUND.status()),
    }
}
