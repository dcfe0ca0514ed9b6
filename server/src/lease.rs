//! The Lease service. Grant and revoke go through raft; keep-alives renew on the leader's
//! clock; expiry is the raft node's (it revokes through raft).

use strata_engine::mvcc::{MvccError, WriteRequest, WriteResponse};
use strata_raftnode::NodeError;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::Ctx;
use crate::errors::{mvcc_status, node_status};
use crate::proto::etcdserverpb as pb;

/// The Lease service.
pub struct LeaseSvc {
    pub(crate) ctx: Ctx,
}

#[tonic::async_trait]
impl pb::lease_server::Lease for LeaseSvc {
    async fn lease_grant(
        &self,
        request: Request<pb::LeaseGrantRequest>,
    ) -> Result<Response<pb::LeaseGrantResponse>, Status> {
        self.ctx.check_leader(&request)?;
        let r = request.into_inner();
        self.ctx
            .check_quota(crate::quota::cost_lease_grant())
            .await?;
        let (resp, header) = self
            .ctx
            .write(WriteRequest::LeaseGrant {
                id: r.id,
                ttl: r.ttl,
            })
            .await?;
        match resp {
            WriteResponse::LeaseGrant { id, ttl } => Ok(Response::new(pb::LeaseGrantResponse {
                header: Some(header),
                id,
                ttl,
                error: String::new(),
            })),
            _ => Err(Status::internal(
                "etcdserver: unexpected response to lease grant",
            )),
        }
    }

    async fn lease_revoke(
        &self,
        request: Request<pb::LeaseRevokeRequest>,
    ) -> Result<Response<pb::LeaseRevokeResponse>, Status> {
        self.ctx.check_leader(&request)?;
        let r = request.into_inner();
        let (_, header) = self
            .ctx
            .write(WriteRequest::LeaseRevoke { id: r.id })
            .await?;
        Ok(Response::new(pb::LeaseRevokeResponse {
            header: Some(header),
        }))
    }

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<Response<tonic::codegen::BoxStream<pb::LeaseKeepAliveResponse>>, Status> {
        self.ctx.check_leader(&request)?;
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let ctx = self.ctx.clone();
        tokio::spawn(async move {
            while let Ok(Some(req)) = inbound.message().await {
                let ttl = match ctx.node.keep_alive(req.id) {
                    Ok(ttl) => Ok(ttl),
                    // As etcd: an unknown lease answers TTL 0, not an error.
                    Err(NodeError::Mvcc(MvccError::LeaseNotFound)) => Ok(0),
                    Err(e) => Err(node_status(&e)),
                };
                let out = ttl.and_then(|ttl| {
                    Ok(pb::LeaseKeepAliveResponse {
                        header: Some(ctx.current_header()?),
                        id: req.id,
                        ttl,
                    })
                });
                let failed = out.is_err();
                if tx.send(out).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<pb::LeaseTimeToLiveRequest>,
    ) -> Result<Response<pb::LeaseTimeToLiveResponse>, Status> {
        self.ctx.check_leader(&request)?;
        let r = request.into_inner();
        self.ctx
            .node
            .read_barrier()
            .await
            .map_err(|e| node_status(&e))?;
        let info = self
            .ctx
            .node
            .lease_time_to_live(r.id)
            .map_err(|e| node_status(&e))?;
        let header = Some(self.ctx.current_header()?);
        Ok(Response::new(match info {
            // As etcd: an unknown (or expired) lease answers TTL -1.
            None => pb::LeaseTimeToLiveResponse {
                header,
                id: r.id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            },
            Some(l) => pb::LeaseTimeToLiveResponse {
                header,
                id: r.id,
                ttl: l.remaining,
                granted_ttl: l.granted,
                keys: if r.keys { l.keys } else { Vec::new() },
            },
        }))
    }

    async fn lease_leases(
        &self,
        request: Request<pb::LeaseLeasesRequest>,
    ) -> Result<Response<pb::LeaseLeasesResponse>, Status> {
        self.ctx.check_leader(&request)?;
        self.ctx
            .node
            .read_barrier()
            .await
            .map_err(|e| node_status(&e))?;
        let ids = self
            .ctx
            .node
            .store()
            .leases()
            .map_err(|e| mvcc_status(&e))?;
        Ok(Response::new(pb::LeaseLeasesResponse {
            header: Some(self.ctx.current_header()?),
            leases: ids.into_iter().map(|id| pb::LeaseStatus { id }).collect(),
        }))
    }
}
