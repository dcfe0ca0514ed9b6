//! Between etcd's wire messages and the engine's requests and responses. Enum values outside
//! etcd's ranges are refused here with InvalidArgument, before anything reaches raft.

use strata_engine::mvcc as m;
use tonic::Status;

use crate::proto::etcdserverpb as pb;
use crate::proto::mvccpb;

fn invalid(what: &str, v: i32) -> Status {
    Status::invalid_argument(format!("etcdserver: invalid {what} {v}"))
}

/// A wire key-value.
pub fn kv(kv: m::KeyValue) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: kv.key,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value,
        lease: kv.lease,
    }
}

/// The engine's range request.
pub fn range_request(r: &pb::RangeRequest) -> Result<m::RangeRequest, Status> {
    use pb::range_request::{SortOrder, SortTarget};
    let sort_order = match SortOrder::try_from(r.sort_order) {
        Ok(SortOrder::None) => m::SortOrder::None,
        Ok(SortOrder::Ascend) => m::SortOrder::Ascend,
        Ok(SortOrder::Descend) => m::SortOrder::Descend,
        Err(_) => return Err(crate::errors::INVALID_SORT_OPTION.status()),
    };
    let sort_target = match SortTarget::try_from(r.sort_target) {
        Ok(SortTarget::Key) => m::SortTarget::Key,
        Ok(SortTarget::Version) => m::SortTarget::Version,
        Ok(SortTarget::Create) => m::SortTarget::Create,
        Ok(SortTarget::Mod) => m::SortTarget::Mod,
        Ok(SortTarget::Value) => m::SortTarget::Value,
        Err(_) => return Err(crate::errors::INVALID_SORT_OPTION.status()),
    };
    Ok(m::RangeRequest {
        key: r.key.clone(),
        range_end: r.range_end.clone(),
        limit: r.limit,
        revision: r.revision,
        sort_order,
        sort_target,
        keys_only: r.keys_only,
        count_only: r.count_only,
        min_mod_revision: r.min_mod_revision,
        max_mod_revision: r.max_mod_revision,
        min_create_revision: r.min_create_revision,
        max_create_revision: r.max_create_revision,
    })
}

/// A wire range response (without the header).
pub fn range_response(r: m::RangeResponse) -> pb::RangeResponse {
    pb::RangeResponse {
        header: None,
        kvs: r.kvs.into_iter().map(kv).collect(),
        more: r.more,
        count: r.count,
    }
}

/// The engine's put.
pub fn put_request(r: pb::PutRequest) -> m::PutRequest {
    m::PutRequest {
        key: r.key,
        value: r.value,
        lease: r.lease,
        prev_kv: r.prev_kv,
        ignore_value: r.ignore_value,
        ignore_lease: r.ignore_lease,
    }
}

/// A wire put response (without the header).
pub fn put_response(r: m::PutResponse) -> pb::PutResponse {
    pb::PutResponse {
        header: None,
        prev_kv: r.prev_kv.map(kv),
    }
}

/// The engine's delete.
pub fn delete_request(r: pb::DeleteRangeRequest) -> m::DeleteRangeRequest {
    m::DeleteRangeRequest {
        key: r.key,
        range_end: r.range_end,
        prev_kv: r.prev_kv,
    }
}

/// A wire delete response (without the header).
pub fn delete_response(r: m::DeleteRangeResponse) -> pb::DeleteRangeResponse {
    pb::DeleteRangeResponse {
        header: None,
        deleted: r.deleted,
        prev_kvs: r.prev_kvs.into_iter().map(kv).collect(),
    }
}

fn compare(c: pb::Compare) -> Result<m::Compare, Status> {
    use pb::compare::{CompareResult, CompareTarget, TargetUnion};
    let result = match CompareResult::try_from(c.result) {
        Ok(CompareResult::Equal) => m::CompareResult::Equal,
        Ok(CompareResult::Greater) => m::CompareResult::Greater,
        Ok(CompareResult::Less) => m::CompareResult::Less,
        Ok(CompareResult::NotEqual) => m::CompareResult::NotEqual,
        Err(_) => return Err(invalid("compare result", c.result)),
    };
    // As etcd: the target names the field; the union carries its value (absent: zero).
    let target = match CompareTarget::try_from(c.target) {
        Ok(CompareTarget::Version) => m::CompareTarget::Version(match c.target_union {
            Some(TargetUnion::Version(v)) => v,
            _ => 0,
        }),
        Ok(CompareTarget::Create) => m::CompareTarget::Create(match c.target_union {
            Some(TargetUnion::CreateRevision(v)) => v,
            _ => 0,
        }),
        Ok(CompareTarget::Mod) => m::CompareTarget::Mod(match c.target_union {
            Some(TargetUnion::ModRevision(v)) => v,
            _ => 0,
        }),
        Ok(CompareTarget::Value) => m::CompareTarget::Value(match c.target_union {
            Some(TargetUnion::Value(v)) => v,
            _ => Vec::new(),
        }),
        Ok(CompareTarget::Lease) => m::CompareTarget::Lease(match c.target_union {
            Some(TargetUnion::Lease(v)) => v,
            _ => 0,
        }),
        Err(_) => return Err(invalid("compare target", c.target)),
    };
    Ok(m::Compare {
        result,
        target,
        key: c.key,
        range_end: c.range_end,
    })
}

fn request_op(op: pb::RequestOp) -> Result<m::RequestOp, Status> {
    use pb::request_op::Request;
    match op.request {
        Some(Request::RequestRange(r)) => Ok(m::RequestOp::Range(range_request(&r)?)),
        Some(Request::RequestPut(r)) => Ok(m::RequestOp::Put(put_request(r))),
        Some(Request::RequestDeleteRange(r)) => Ok(m::RequestOp::DeleteRange(delete_request(r))),
        Some(Request::RequestTxn(t)) => Ok(m::RequestOp::Txn(txn_request(t)?)),
        // An empty operation: `check::txn` refuses it first, as etcd does.
        None => Err(crate::errors::KEY_NOT_FOUND.status()),
    }
}

/// The engine's transaction.
pub fn txn_request(t: pb::TxnRequest) -> Result<m::TxnRequest, Status> {
    Ok(m::TxnRequest {
        compare: t
            .compare
            .into_iter()
            .map(compare)
            .collect::<Result<_, _>>()?,
        success: t
            .success
            .into_iter()
            .map(request_op)
            .collect::<Result<_, _>>()?,
        failure: t
            .failure
            .into_iter()
            .map(request_op)
            .collect::<Result<_, _>>()?,
    })
}

/// A wire transaction response (without the header). Each operation's response carries a
/// header with only the revision, as etcd fills them.
pub fn txn_response(t: m::TxnResponse, revision: i64) -> pb::TxnResponse {
    use pb::response_op::Response;
    let header = &pb::ResponseHeader {
        revision,
        ..Default::default()
    };
    pb::TxnResponse {
        header: None,
        succeeded: t.succeeded,
        responses: t
            .responses
            .into_iter()
            .map(|r| pb::ResponseOp {
                response: Some(match r {
                    m::ResponseOp::Range(r) => Response::ResponseRange(pb::RangeResponse {
                        header: Some(*header),
                        ..range_response(r)
                    }),
                    m::ResponseOp::Put(r) => Response::ResponsePut(pb::PutResponse {
                        header: Some(*header),
                        ..put_response(r)
                    }),
                    m::ResponseOp::DeleteRange(r) => {
                        Response::ResponseDeleteRange(pb::DeleteRangeResponse {
                            header: Some(*header),
                            ..delete_response(r)
                        })
                    }
                    m::ResponseOp::Txn(t) => Response::ResponseTxn(pb::TxnResponse {
                        header: Some(*header),
                        ..txn_response(t, revision)
                    }),
                }),
            })
            .collect(),
    }
}
