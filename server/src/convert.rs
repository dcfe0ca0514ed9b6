//! Between etcd's wire messages and the engine's requests and responses. Sort options outside
//! etcd's ranges are refused here (as etcd 3.5 does), before anything reaches raft; compare
//! enums outside them are evaluated as etcd evaluates them.

use strata_engine::mvcc as m;
use tonic::Status;

use crate::proto::etcdserverpb as pb;
use crate::proto::mvccpb;

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

/// A compare whose outcome does not depend on the compared field (see [`compare`]).
#[derive(Clone, Copy)]
enum Fixed {
    /// Holds for any key, present or missing.
    Always,
    /// Holds for no key.
    Never,
    /// Holds if the key (every key of the range, and at least one) exists.
    Exists,
}

/// `f` as an engine compare on `key`: versions are never -1, and a key exists exactly when
/// its version is above 0 (a missing key compares as version 0).
fn fixed(f: Fixed, key: Vec<u8>, range_end: Vec<u8>) -> m::Compare {
    let (result, version) = match f {
        Fixed::Always => (m::CompareResult::NotEqual, -1),
        Fixed::Never => (m::CompareResult::Equal, -1),
        Fixed::Exists => (m::CompareResult::Greater, 0),
    };
    m::Compare {
        result,
        target: m::CompareTarget::Version(version),
        key,
        range_end,
    }
}

/// The engine's compare, as etcd's `compareKV` evaluates the wire one: an unknown result
/// holds; an unknown target compares as equal whatever the key holds; a target whose union
/// carries another field compares against zero (an empty value). Before all that, a value
/// compare on a missing key fails. (All checked against etcd 3.4 by the differential test.)
fn compare(c: pb::Compare) -> Result<m::Compare, Status> {
    use pb::compare::{CompareResult, CompareTarget, TargetUnion};
    let target = CompareTarget::try_from(c.target).ok();
    let forced_equal = target.is_none();
    let holds = if target == Some(CompareTarget::Value) {
        Fixed::Exists
    } else {
        Fixed::Always
    };
    let result = match CompareResult::try_from(c.result) {
        Err(_) => return Ok(fixed(holds, c.key, c.range_end)),
        Ok(r) if forced_equal => {
            let f = if r == CompareResult::Equal {
                holds
            } else {
                Fixed::Never
            };
            return Ok(fixed(f, c.key, c.range_end));
        }
        Ok(CompareResult::Equal) => m::CompareResult::Equal,
        Ok(CompareResult::Greater) => m::CompareResult::Greater,
        Ok(CompareResult::Less) => m::CompareResult::Less,
        Ok(CompareResult::NotEqual) => m::CompareResult::NotEqual,
    };
    let target = match target {
        Some(CompareTarget::Version) => m::CompareTarget::Version(match c.target_union {
            Some(TargetUnion::Version(v)) => v,
            _ => 0,
        }),
        Some(CompareTarget::Create) => m::CompareTarget::Create(match c.target_union {
            Some(TargetUnion::CreateRevision(v)) => v,
            _ => 0,
        }),
        Some(CompareTarget::Mod) => m::CompareTarget::Mod(match c.target_union {
            Some(TargetUnion::ModRevision(v)) => v,
            _ => 0,
        }),
        Some(CompareTarget::Value) => m::CompareTarget::Value(match c.target_union {
            Some(TargetUnion::Value(v)) => v,
            _ => Vec::new(),
        }),
        Some(CompareTarget::Lease) => m::CompareTarget::Lease(match c.target_union {
            Some(TargetUnion::Lease(v)) => v,
            _ => 0,
        }),
        None => return Ok(fixed(holds, c.key, c.range_end)),
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

/// A wire transaction response (without the header); `revision` is the transaction's header
/// revision.
///
/// Each operation's response carries a header with only a revision, the one etcd 3.4's apply
/// gives it: with `begin` the revision before the transaction, a put says `begin + 1`; a
/// range says `begin`, or `begin + 1` once an earlier operation changed something; a delete
/// likewise, counting itself; a nested transaction's own header says 0 (etcd never fills it).
pub fn txn_response(t: m::TxnResponse, revision: i64) -> pb::TxnResponse {
    let begin = if changes(&t) { revision - 1 } else { revision };
    let mut changed = false;
    txn_responses(t, begin, &mut changed)
}

/// Whether a transaction's executed operations changed anything.
fn changes(t: &m::TxnResponse) -> bool {
    t.responses.iter().any(|r| match r {
        m::ResponseOp::Range(_) => false,
        m::ResponseOp::Put(_) => true,
        m::ResponseOp::DeleteRange(d) => d.deleted > 0,
        m::ResponseOp::Txn(t) => changes(t),
    })
}

fn txn_responses(t: m::TxnResponse, begin: i64, changed: &mut bool) -> pb::TxnResponse {
    use pb::response_op::Response;
    let header = |revision| {
        Some(pb::ResponseHeader {
            revision,
            ..Default::default()
        })
    };
    let mut responses = Vec::with_capacity(t.responses.len());
    for r in t.responses {
        let response = match r {
            m::ResponseOp::Range(r) => Response::ResponseRange(pb::RangeResponse {
                header: header(begin + i64::from(*changed)),
                ..range_response(r)
            }),
            m::ResponseOp::Put(r) => {
                *changed = true;
                Response::ResponsePut(pb::PutResponse {
                    header: header(begin + 1),
                    ..put_response(r)
                })
            }
            m::ResponseOp::DeleteRange(r) => {
                *changed |= r.deleted > 0;
                Response::ResponseDeleteRange(pb::DeleteRangeResponse {
                    header: header(begin + i64::from(*changed)),
                    ..delete_response(r)
                })
            }
            m::ResponseOp::Txn(t) => Response::ResponseTxn(pb::TxnResponse {
                header: header(0),
                ..txn_responses(t, begin, changed)
            }),
        };
        responses.push(pb::ResponseOp {
            response: Some(response),
        });
    }
    pb::TxnResponse {
        header: None,
        succeeded: t.succeeded,
        responses,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revisions(t: &pb::TxnResponse) -> Vec<i64> {
        use pb::response_op::Response;
        let mut out = Vec::new();
        for r in &t.responses {
            match &r.response {
                Some(Response::ResponseRange(x)) => out.extend(x.header.map(|h| h.revision)),
                Some(Response::ResponsePut(x)) => out.extend(x.header.map(|h| h.revision)),
                Some(Response::ResponseDeleteRange(x)) => out.extend(x.header.map(|h| h.revision)),
                Some(Response::ResponseTxn(x)) => {
                    out.extend(x.header.map(|h| h.revision));
                    out.extend(revisions(x));
                }
                None => {}
            }
        }
        out
    }

    /// Strata refused compares with an unknown result or target (InvalidArgument); etcd
    /// evaluates them: an unknown result holds (a value compare still needs the key), an
    /// unknown target compares as equal (found by the differential test).
    #[test]
    fn unknown_compare_enums_evaluate_as_etcds() {
        let c = |result, target| {
            compare(pb::Compare {
                result,
                target,
                key: b"k".to_vec(),
                range_end: Vec::new(),
                target_union: None,
            })
            .unwrap()
        };
        let version = |c: m::Compare| match c.target {
            m::CompareTarget::Version(v) => (c.result, v),
            other => panic!("not a version compare: {other:?}"),
        };
        // Holds always: version != -1; holds if the key exists: version > 0; never: == -1.
        assert_eq!(version(c(9, 0)), (m::CompareResult::NotEqual, -1));
        assert_eq!(version(c(9, 3)), (m::CompareResult::Greater, 0));
        assert_eq!(version(c(0, 9)), (m::CompareResult::NotEqual, -1));
        assert_eq!(version(c(1, 9)), (m::CompareResult::Equal, -1));
        // A known target with no union compares against zero, as before.
        assert_eq!(c(0, 3).target, m::CompareTarget::Value(Vec::new()));
    }

    /// Strata gave every operation of a transaction the transaction's revision; etcd 3.4
    /// gives a range or a delete before any change the revision before the transaction, and a
    /// nested transaction's own header 0 (found by the differential test).
    #[test]
    fn txn_operation_headers_carry_etcds_revisions() {
        let range = || m::ResponseOp::Range(m::RangeResponse::default());
        let del = |deleted| {
            m::ResponseOp::DeleteRange(m::DeleteRangeResponse {
                deleted,
                prev_kvs: Vec::new(),
            })
        };
        let put = || m::ResponseOp::Put(m::PutResponse { prev_kv: None });
        let t = m::TxnResponse {
            succeeded: true,
            responses: vec![
                range(),
                del(0),
                m::ResponseOp::Txn(m::TxnResponse {
                    succeeded: false,
                    responses: vec![range(), put(), range()],
                }),
                del(0),
                range(),
            ],
        };
        // Before the put: 9 (the revision before); the nested header: 0; after: 10.
        assert_eq!(
            revisions(&txn_response(t, 10)),
            vec![9, 9, 0, 9, 10, 10, 10, 10]
        );
        // Read-only (nothing changed): everything at the current revision.
        let t = m::TxnResponse {
            succeeded: true,
            responses: vec![range(), del(0)],
        };
        assert_eq!(revisions(&txn_response(t, 7)), vec![7, 7]);
    }
}
