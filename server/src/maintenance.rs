//! The Maintenance service (Status, HashKV, Defragment, Alarm) and the Cluster service
//! (MemberList).

use crate::Ctx;
use crate::errors::mvcc_status;
use crate::proto::etcdserverpb as pb;
use tonic::{Request, Response, Status};

/// The etcd version Strata reports. kube-apiserver enables watch progress requests only for
/// etcd ≥ 3.5.13 (or ≥ 3.4.31): Strata answers them as those versions do.
pub const ETCD_VERSION: &str = "3.5.17";

/// The Maintenance service.
pub struct MaintenanceSvc {
    pub(crate) ctx: Ctx,
}

/// The Cluster service.
pub struct ClusterSvc {
    pub(crate) ctx: Ctx,
}

#[tonic::async_trait]
impl pb::maintenance_server::Maintenance for MaintenanceSvc {
    async fn status(
        &self,
        request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        self.ctx.check_leader(&request)?;
        let store = self.ctx.node.store();
        let st = self.ctx.node.status();
        let db = store
            .db()
            .stats()
            .map_err(|e| Status::internal(e.to_string()))?;
        let revision = store.revision().map_err(|e| mvcc_status(&e))?;
        // `free_pages` already counts the pages pending reuse.
        let in_use = db.page_count.saturating_sub(db.free_pages) * db.page_size as u64;
        Ok(Response::new(pb::StatusResponse {
            header: Some(self.ctx.header(revision)),
            version: ETCD_VERSION.into(),
            db_size: db.file_bytes as i64,
            leader: st.leader.unwrap_or(0),
            raft_index: st.raft_index,
            raft_term: st.term,
            raft_applied_index: st.applied_index,
            errors: Vec::new(),
            db_size_in_use: in_use as i64,
            is_learner: false,
            storage_version: String::new(),
            db_size_quota: 0,
            downgrade_info: None,
        }))
    }

    async fn hash_kv(
        &self,
        request: Request<pb::HashKvRequest>,
    ) -> Result<Response<pb::HashKvResponse>, Status> {
        self.ctx.check_leader(&request)?;
        let r = request.into_inner();
        let store = self.ctx.node.store();
        let (hash, compact_revision, hash_revision) =
            tokio::task::block_in_place(|| store.hash_kv(r.revision))
                .map_err(|e| mvcc_status(&e))?;
        let current = store.revision().map_err(|e| mvcc_status(&e))?;
        Ok(Response::new(pb::HashKvResponse {
            header: Some(self.ctx.header(current)),
            hash,
            // etcd's compaction revision starts at -1 and HashKV reports it so until the first
            // compaction; the engine counts "never compacted" as 0 (and refuses compacting at
            // 0, which etcd would accept once).
            compact_revision: if compact_revision == 0 {
                -1
            } else {
                compact_revision
            },
            hash_revision,
        }))
    }

    async fn defragment(
        &self,
        request: Request<pb::DefragmentRequest>,
    ) -> Result<Response<pb::DefragmentResponse>, Status> {
        self.ctx.check_leader(&request)?;
        // Non-blocking: reads and writes go on while pages move and the file shrinks.
        let store = self.ctx.node.store();
        let started = std::time::Instant::now();
        let report = tokio::task::spawn_blocking(move || store.defrag())
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| mvcc_status(&e))?;
        crate::metrics::METRICS.defrag(started.elapsed());
        tracing::info!(?report, "defragmented");
        Ok(Response::new(pb::DefragmentResponse {
            header: Some(self.ctx.current_header()?),
        }))
    }

    async fn alarm(
        &self,
        request: Request<pb::AlarmRequest>,
    ) -> Result<Response<pb::AlarmResponse>, Status> {
        self.ctx.check_leader(&request)?;
        // No alarm is ever raised yet (quota comes with the production issue): the list is
        // empty and disarming is a no-op, as on an etcd member without alarms.
        Ok(Response::new(pb::AlarmResponse {
            header: Some(self.ctx.current_header()?),
            alarms: Vec::new(),
        }))
    }
}

#[tonic::async_trait]
impl pb::cluster_server::Cluster for ClusterSvc {
    async fn member_list(
        &self,
        request: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        self.ctx.check_leader(&request)?;
        let members = self
            .ctx
            .node
            .members()
            .into_iter()
            .map(|(id, m)| pb::Member {
                id,
                name: m.name,
                peer_ur_ls: m.peer_urls,
                client_ur_ls: m.client_urls,
                is_learner: false,
            })
            .collect();
        // As etcd's cluster server: the header has no revision.
        Ok(Response::new(pb::MemberListResponse {
            header: Some(self.ctx.header(0)),
            members,
        }))
    }
}
