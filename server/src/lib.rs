//! # strata-server: the etcd v3 API
//!
//! A tonic server speaking etcd's wire protocol (`proto/`, compiled with protox: no system
//! `protoc`) over a [`RaftNode`]: every write goes through raft, linearizable reads through a
//! shared ReadIndex round, and the answers — headers, revisions, errors — are etcd's.
//!
//! - `kv.rs`: Range, Put, DeleteRange, Txn, Compact; `check.rs`: etcd's request checks;
//!   `convert.rs`: wire ↔ engine types;
//! - `watch.rs`: the Watch stream (many watchers per stream, progress, fragments);
//! - `lease.rs`: Grant, Revoke, KeepAlive, TimeToLive, Leases;
//! - `maintenance.rs`: Status, Hash, HashKV, Defragment, Alarm, MoveLeader and
//!   Cluster.MemberList; `snapshot.rs`: Maintenance.Snapshot (and the file format
//!   `stratautl` restores); `quota.rs`: the backend quota and the NOSPACE alarm;
//!   `compactor.rs`: auto-compaction;
//! - `errors.rs`: etcd's gRPC codes and messages, in one place; `grpc_limit.rs`: grpc-go's
//!   answer to a message over the receive limit;
//! - `transport.rs`: listeners, TLS (rustls), plain and TLS on one port; `service.rs`: each
//!   request to gRPC or to the HTTP endpoints (`http.rs`: /health, /livez, /readyz,
//!   /version, /metrics); `metrics.rs`: Prometheus metrics with etcd's names;
//! - `config/`: etcd's flags, config file and `ETCD_*` variables (`config/table.rs` says what
//!   Strata does with each flag); `main.rs`: the `strata` binary.

pub mod check;
pub mod compactor;
pub mod config;
pub mod convert;
pub mod errors;
mod grpc_limit;
mod http;
mod kv;
mod lease;
mod maintenance;
pub mod metrics;
pub mod proto;
pub mod quota;
pub mod restore;
mod service;
pub mod snapshot;
pub mod transport;
mod watch;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use strata_raftnode::RaftNode;
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::Routes;
use tonic::transport::Server;

pub use maintenance::ETCD_VERSION;
pub use metrics::MetricsInfo;
pub use transport::{Listener, Role, TlsFiles};

use crate::proto::etcdserverpb as pb;

/// Request limits, etcd's defaults.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest request (etcd's `--max-request-bytes`, 1.5 MiB).
    pub max_request_bytes: usize,
    /// Most operations per transaction branch (etcd's `--max-txn-ops`, 128).
    pub max_txn_ops: usize,
    /// Interval of progress notifications to watchers that asked for them (etcd's
    /// `--watch-progress-notify-interval`, 10 minutes).
    pub progress_notify_interval: Duration,
    /// The backend quota in bytes (etcd's `--quota-backend-bytes`; its default, 2 GiB, when
    /// the flag is 0): past it the NOSPACE alarm is raised (see `quota.rs`).
    pub quota_backend_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_bytes: 1536 * 1024,
            max_txn_ops: 128,
            progress_notify_interval: Duration::from_secs(600),
            quota_backend_bytes: quota::DEFAULT_QUOTA_BYTES,
        }
    }
}

/// What every service shares: the node and the limits.
#[derive(Clone)]
pub struct Ctx {
    node: Arc<RaftNode>,
    limits: Arc<Limits>,
}

impl Ctx {
    /// The response header etcd fills: cluster and member ID, revision, raft term.
    pub(crate) fn header(&self, revision: i64) -> pb::ResponseHeader {
        pb::ResponseHeader {
            cluster_id: self.node.cluster_id(),
            member_id: self.node.member_id(),
            revision,
            raft_term: self.node.term(),
        }
    }

    /// The response header at the store's current revision.
    pub(crate) fn current_header(&self) -> Result<pb::ResponseHeader, tonic::Status> {
        let revision = self
            .node
            .store()
            .revision()
            .map_err(|e| errors::mvcc_status(&e))?;
        Ok(self.header(revision))
    }

    /// Honours gRPC metadata `hasleader=true`: such requests fail fast without a leader.
    pub(crate) fn check_leader<T>(&self, req: &tonic::Request<T>) -> Result<(), tonic::Status> {
        let wants = req
            .metadata()
            .get("hasleader")
            .is_some_and(|v| v.as_bytes() == b"true");
        if wants && self.node.leader().is_none() {
            return Err(errors::NO_LEADER.status());
        }
        Ok(())
    }
}

/// Serves the etcd API (client listeners: gRPC and the HTTP endpoints; metrics listeners:
/// the HTTP endpoints) until `shutdown` completes; then stops accepting, lets in-flight
/// requests finish, and returns.
pub async fn serve(
    node: Arc<RaftNode>,
    listeners: Vec<Listener>,
    limits: Limits,
    info: MetricsInfo,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let ctx = Ctx {
        node: node.clone(),
        limits: Arc::new(limits),
    };
    let routes = grpc_routes(&ctx);
    let http = Arc::new(http::HttpCtx { node, info });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let mut servers = Vec::new();
    for listener in listeners {
        let mut stop = stop_rx.clone();
        let dispatch = service::Dispatch {
            grpc: (listener.role == Role::Client).then(|| routes.clone()),
            http: http.clone(),
        };
        let (tx, rx) = tokio::sync::mpsc::channel(128);
        tokio::spawn(transport::accept_loop(listener, tx, stop_rx.clone()));
        // HTTP/1.1 as well as HTTP/2 on every connection, so /health and /metrics answer
        // plain GETs on the gRPC port as they do on etcd's.
        servers.push(tokio::spawn(
            Server::builder()
                .accept_http1(true)
                .layer(tower::util::MapResponseLayer::new(
                    grpc_limit::rewrite::<service::ResponseBody>,
                ))
                .serve_with_incoming_shutdown(dispatch, ReceiverStream::new(rx), async move {
                    let _ = stop.wait_for(|s| *s).await;
                }),
        ));
    }
    for s in servers {
        match s.await {
            Ok(r) => r?,
            Err(e) => tracing::error!(error = %e, "a listener's server task failed"),
        }
    }
    Ok(())
}

/// The gRPC services with etcd's message size limits.
fn grpc_routes(ctx: &Ctx) -> Routes {
    // etcd's gRPC receive limit is the request limit plus 512 KiB of overhead.
    let recv = ctx.limits.max_request_bytes + 512 * 1024;
    Routes::new(
        pb::kv_server::KvServer::new(kv::Kv { ctx: ctx.clone() })
            .max_decoding_message_size(recv)
            .max_encoding_message_size(usize::MAX),
    )
    .add_service(
        pb::watch_server::WatchServer::new(watch::WatchSvc { ctx: ctx.clone() })
            .max_decoding_message_size(recv)
            .max_encoding_message_size(usize::MAX),
    )
    .add_service(
        pb::lease_server::LeaseServer::new(lease::LeaseSvc { ctx: ctx.clone() })
            .max_decoding_message_size(recv),
    )
    .add_service(
        pb::maintenance_server::MaintenanceServer::new(maintenance::MaintenanceSvc {
            ctx: ctx.clone(),
        })
        .max_decoding_message_size(recv)
        .max_encoding_message_size(usize::MAX),
    )
    .add_service(pb::cluster_server::ClusterServer::new(
        maintenance::ClusterSvc { ctx: ctx.clone() },
    ))
    .prepare()
}
