//! The KV service: Range, Put, DeleteRange, Txn, Compact.
//!
//! Writes go through raft ([`RaftNode::write`](strata_raftnode::RaftNode::write)); a range
//! is linearizable unless `serializable` is set: it waits for a ReadIndex round shared with
//! every other read waiting at that moment, then reads the local store.

use prost::Message;
use strata_engine::mvcc::{WriteRequest, WriteResponse};
use tonic::{Request, Response, Status};

use crate::convert;
use crate::errors::{REQUEST_TOO_LARGE, mvcc_status, node_status};
use crate::metrics::METRICS;
use crate::proto::etcdserverpb as pb;
use crate::{Ctx, check};

/// The KV service.
pub struct Kv {
    pub(crate) ctx: Ctx,
}

impl Ctx {
    /// Refuses requests larger than `--max-request-bytes`, as etcd does before proposing.
    pub(crate) fn check_size(&self, req: &impl Message) -> Result<(), Status> {
        if req.encoded_len() > self.limits.max_request_bytes {
            return Err(REQUEST_TOO_LARGE.status());
        }
        Ok(())
    }

    /// Proposes a write and waits for its result.
    pub(crate) async fn write(
        &self,
        req: WriteRequest,
    ) -> Result<(WriteResponse, pb::ResponseHeader), Status> {
        let _pending = METRICS.proposal();
        let a = self.node.write(req).await.map_err(|e| {
            METRICS.proposal_failed();
            node_status(&e)
        })?;
        Ok((a.response, self.header(a.revision)))
    }
}

/// The ranges, puts and deletes a txn ran (its executed branch, nested txns included), as
/// etcd's mvcc metrics count them.
fn txn_ops(responses: &[pb::ResponseOp]) -> (u64, u64, u64) {
    use pb::response_op::Response as R;
    responses
        .iter()
        .fold((0, 0, 0), |(r, p, d), op| match &op.response {
            Some(R::ResponseRange(_)) => (r + 1, p, d),
            Some(R::ResponsePut(_)) => (r, p + 1, d),
            Some(R::ResponseDeleteRange(_)) => (r, p, d + 1),
            Some(R::ResponseTxn(t)) => {
                let (a, b, c) = txn_ops(&t.responses);
                (r + a, p + b, d + c)
            }
            None => (r, p, d),
        })
}

fn unexpected(what: &str) -> Status {
    Status::internal(format!("etcdserver: unexpected response to {what}"))
}

#[tonic::async_trait]
impl pb::kv_server::Kv for Kv {
    async fn range(
        &self,
        request: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        self.ctx.check_leader(&request)?;
        let r = request.into_inner();
        check::range(&r)?;
        let req = convert::range_request(&r)?;
        if !r.serializable {
            self.ctx
                .node
                .read_barrier()
                .await
                .map_err(|e| node_status(&e))?;
        }
        let store = self.ctx.node.store();
        // One key is an index lookup and a page read, cheaper than `block_in_place`, which
        // hands this worker's other tasks to another thread (a wake-up per call); a range
        // may read many pages, and gets that hand-off.
        let a = if req.range_end.is_empty() {
            store.range(&req)
        } else {
            tokio::task::block_in_place(|| store.range(&req))
        }
        .map_err(|e| mvcc_status(&e))?;
        METRICS.ops(1, 0, 0);
        Ok(Response::new(pb::RangeResponse {
            header: Some(self.ctx.header(a.revision)),
            ..convert::range_response(a.response)
        }))
    }

    async fn put(
        &self,
        request: Request<pb::PutRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        self.ctx.check_leader(&request)?;
        let r = request.into_inner();
        // As etcd's quota KV server: the quota before the request's own checks.
        self.ctx.check_quota(crate::quota::cost_put(&r)).await?;
        check::put(&r)?;
        self.ctx.check_size(&r)?;
        match self
            .ctx
            .write(WriteRequest::Put(convert::put_request(r)))
            .await?
        {
            (WriteResponse::Put(p), header) => {
                METRICS.ops(0, 1, 0);
                Ok(Response::new(pb::PutResponse {
                    header: Some(header),
                    ..convert::put_response(p)
                }))
            }
            _ => Err(unexpected("put")),
        }
    }

    async fn delete_range(
        &self,
        request: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        self.ctx.check_leader(&request)?;
        let r = request.into_inner();
        check::delete(&r)?;
        self.ctx.check_size(&r)?;
        match self
            .ctx
            .write(WriteRequest::DeleteRange(convert::delete_request(r)))
            .await?
        {
            (WriteResponse::DeleteRange(d), header) => {
                METRICS.ops(0, 0, 1);
                Ok(Response::new(pb::DeleteRangeResponse {
                    header: Some(header),
                    ..convert::delete_response(d)
                }))
            }
            _ => Err(unexpected("delete")),
        }
    }

    async fn txn(
        &self,
        request: Request<pb::TxnRequest>,
    ) -> Result<Response<pb::TxnResponse>, Status> {
        self.ctx.check_leader(&request)?;
        let r = request.into_inner();
        self.ctx.check_quota(crate::quota::cost_txn(&r)).await?;
        check::txn(&r, self.ctx.limits.max_txn_ops)?;
        self.ctx.check_size(&r)?;
        let t = convert::txn_request(r)?;
        match self.ctx.write(WriteRequest::Txn(t)).await? {
            (WriteResponse::Txn(t), header) => {
                let resp = convert::txn_response(t, header.revision);
                let (r, p, d) = txn_ops(&resp.responses);
                METRICS.ops(r, p, d);
                Ok(Response::new(pb::TxnResponse {
                    header: Some(header),
                    ..resp
                }))
            }
            _ => Err(unexpected("txn")),
        }
    }

    async fn compact(
        &self,
        request: Request<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        self.ctx.check_leader(&request)?;
        let r = request.into_inner();
        let (resp, header) = self
            .ctx
            .write(WriteRequest::Compact {
                revision: r.revision,
            })
            .await?;
        if !matches!(resp, WriteResponse::Compact) {
            return Err(unexpected("compact"));
        }
        METRICS.compaction();
        if r.physical {
            // As etcd: a physical compaction answers once the compacted revisions are gone
            // from the database (the store's compactor removes them in the background).
            let store = self.ctx.node.store();
            let rev = r.revision;
            tokio::task::spawn_blocking(move || store.wait_compacted(rev))
                .await
                .map_err(|e| Status::internal(e.to_string()))?
                .map_err(|e| mvcc_status(&e))?;
        }
        Ok(Response::new(pb::CompactionResponse {
            header: Some(header),
        }))
    }
}
