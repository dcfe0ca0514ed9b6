//! The Maintenance service (Status, Hash, HashKV, Defragment, Alarm, Snapshot, MoveLeader)
//! and the Cluster service (MemberList).

use crate::Ctx;
use crate::errors::{BAD_LEADER_TRANSFEREE, NO_LEADER, NOT_LEADER, mvcc_status, node_status};
use crate::proto::etcdserverpb as pb;
use crate::quota::alarm_string;
use strata_engine::mvcc::{AlarmAction, AlarmMember, AlarmType, WriteRequest, WriteResponse};
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

fn alarm_to_pb(a: &AlarmMember) -> pb::AlarmMember {
    pb::AlarmMember {
        member_id: a.member,
        alarm: a.alarm.code(),
    }
}

impl MaintenanceSvc {
    /// Alarm GET: every alarm (type NONE, 0) or those of one type, after a read barrier
    /// (etcd answers it through raft).
    async fn alarm_list(&self, alarm: i32) -> Result<Response<pb::AlarmResponse>, Status> {
        self.ctx
            .node
            .read_barrier()
            .await
            .map_err(|e| node_status(&e))?;
        let wanted = AlarmType::from_code(alarm);
        let alarms = self
            .ctx
            .node
            .store()
            .alarms()
            .map_err(|e| mvcc_status(&e))?
            .iter()
            .filter(|a| alarm == 0 || Some(a.alarm) == wanted)
            .map(alarm_to_pb)
            .collect();
        Ok(Response::new(pb::AlarmResponse {
            header: Some(self.ctx.current_header()?),
            alarms,
        }))
    }

    fn no_alarms(&self) -> Result<Response<pb::AlarmResponse>, Status> {
        Ok(Response::new(pb::AlarmResponse {
            header: Some(self.ctx.current_header()?),
            alarms: Vec::new(),
        }))
    }
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
        // As etcd: "no leader", then every raised alarm in its text form.
        let mut errors = Vec::new();
        if st.leader.is_none() {
            errors.push(NO_LEADER.message.to_string());
        }
        errors.extend(
            store
                .alarms()
                .map_err(|e| mvcc_status(&e))?
                .iter()
                .map(alarm_string),
        );
        Ok(Response::new(pb::StatusResponse {
            header: Some(self.ctx.header(revision)),
            version: ETCD_VERSION.into(),
            // etcd's size: the page high-water mark the quota is compared with (bbolt's
            // Tx.Size), not the file length, which runs ahead by a growth step.
            db_size: (db.page_count * db.page_size as u64) as i64,
            leader: st.leader.unwrap_or(0),
            raft_index: st.raft_index,
            raft_term: st.term,
            raft_applied_index: st.applied_index,
            errors,
            db_size_in_use: in_use as i64,
            is_learner: false,
            storage_version: String::new(),
            db_size_quota: self.ctx.limits.quota_backend_bytes as i64,
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
        let r = request.into_inner();
        let wanted = AlarmType::from_code(r.alarm);
        let action = match pb::alarm_request::AlarmAction::try_from(r.action) {
            Ok(pb::alarm_request::AlarmAction::Get) => return self.alarm_list(r.alarm).await,
            Ok(pb::alarm_request::AlarmAction::Activate) => AlarmAction::Activate,
            Ok(pb::alarm_request::AlarmAction::Deactivate) => AlarmAction::Deactivate,
            // etcd's applier has no case for it: an empty answer.
            Err(_) => return self.no_alarms(),
        };
        // Activating NONE (or an unknown type) does nothing in etcd.
        let Some(alarm) = wanted else {
            return self.no_alarms();
        };
        let alarm = AlarmMember {
            member: r.member_id,
            alarm,
        };
        let (resp, header) = self
            .ctx
            .write(WriteRequest::Alarm { action, alarm })
            .await?;
        let WriteResponse::Alarm(changed) = resp else {
            return Err(Status::internal("etcdserver: unexpected response to alarm"));
        };
        if !changed.is_empty() {
            tracing::warn!(?action, alarms = ?changed, "alarm changed");
        }
        Ok(Response::new(pb::AlarmResponse {
            header: Some(header),
            alarms: changed.iter().map(alarm_to_pb).collect(),
        }))
    }

    async fn hash(
        &self,
        request: Request<pb::HashRequest>,
    ) -> Result<Response<pb::HashResponse>, Status> {
        self.ctx.check_leader(&request)?;
        let store = self.ctx.node.store();
        let (hash, revision) = tokio::task::spawn_blocking(move || store.hash())
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| mvcc_status(&e))?;
        Ok(Response::new(pb::HashResponse {
            header: Some(self.ctx.header(revision)),
            hash,
        }))
    }

    async fn snapshot(
        &self,
        request: Request<pb::SnapshotRequest>,
    ) -> Result<Response<tonic::codegen::BoxStream<pb::SnapshotResponse>>, Status> {
        self.ctx.check_leader(&request)?;
        let stream = crate::snapshot::stream(self.ctx.node.store(), self.ctx.current_header()?)?;
        Ok(Response::new(stream))
    }

    async fn move_leader(
        &self,
        request: Request<pb::MoveLeaderRequest>,
    ) -> Result<Response<pb::MoveLeaderResponse>, Status> {
        self.ctx.check_leader(&request)?;
        let target = request.into_inner().target_id;
        // As etcd 3.5 (v3rpc MoveLeader, then EtcdServer.MoveLeader): only the leader
        // transfers; the transferee must be a voting member; transferring to the leader itself
        // is done at once (raft ignores it and the leader already is the target).
        let me = self.ctx.node.member_id();
        if self.ctx.node.leader() != Some(me) {
            return Err(NOT_LEADER.status());
        }
        if !self.ctx.node.members().iter().any(|(id, _)| *id == target) {
            return Err(BAD_LEADER_TRANSFEREE.status());
        }
        if target != me {
            // Members are added with the clustering issue; until then the only voter is the
            // leader itself and this is unreachable.
            return Err(BAD_LEADER_TRANSFEREE.status());
        }
        tracing::info!(target = %format!("{target:x}"), "leadership transfer: already the leader");
        Ok(Response::new(pb::MoveLeaderResponse {
            header: Some(self.ctx.current_header()?),
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
