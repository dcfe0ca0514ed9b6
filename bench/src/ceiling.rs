//! An in-process gRPC server that answers `Put` and `Range` without storing anything: the
//! protocol stack's ceiling on this machine. It also serves `Watch` (every put becomes an
//! event), optionally with an injected fault, so the watch verifier can be tested against a
//! server that drops, duplicates or reorders events.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::BoxStream;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};

use crate::error::{BenchError, Result};
use crate::proto::etcdserverpb::kv_server::{Kv, KvServer};
use crate::proto::etcdserverpb::watch_request::RequestUnion;
use crate::proto::etcdserverpb::watch_server::{Watch, WatchServer};
use crate::proto::etcdserverpb::{
    PutRequest, PutResponse, RangeRequest, RangeResponse, ResponseHeader, WatchCreateRequest,
    WatchRequest, WatchResponse,
};
use crate::proto::mvccpb::{Event, KeyValue};

/// A fault the server injects into every watcher's event stream, counting that watcher's
/// events from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WatchFault {
    /// Deliver every event once, in order.
    #[default]
    None,
    /// Never deliver event `n`.
    Drop(u64),
    /// Deliver event `n` twice.
    Duplicate(u64),
    /// Deliver event `n + 1` before event `n`.
    Reorder(u64),
}

/// Requests the server has answered, by method.
#[derive(Debug, Default)]
pub struct Counts {
    /// Put requests.
    pub put: AtomicU64,
    /// Range requests.
    pub range: AtomicU64,
    /// Watch streams opened.
    pub watch_streams: AtomicU64,
}

#[derive(Debug)]
struct State {
    revision: AtomicI64,
    /// Held from a put's revision to its event's publication while anyone watches, so events
    /// go out in revision order as a real server's do (concurrent puts could otherwise
    /// publish out of order, which the watch verifier rightly reports).
    publish: std::sync::Mutex<()>,
    counts: Arc<Counts>,
    events: broadcast::Sender<Event>,
    fault: WatchFault,
}

impl State {
    fn header(&self, revision: i64) -> Option<ResponseHeader> {
        Some(ResponseHeader {
            cluster_id: 1,
            member_id: 1,
            revision,
            raft_term: 1,
        })
    }
}

#[derive(Debug, Clone)]
struct Service(Arc<State>);

#[tonic::async_trait]
impl Kv for Service {
    async fn range(&self, _req: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        self.0.counts.range.fetch_add(1, Ordering::Relaxed);
        let rev = self.0.revision.load(Ordering::Acquire);
        Ok(Response::new(RangeResponse {
            header: self.0.header(rev),
            ..Default::default()
        }))
    }

    async fn put(&self, req: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        self.0.counts.put.fetch_add(1, Ordering::Relaxed);
        if self.0.events.receiver_count() == 0 {
            let rev = self.0.revision.fetch_add(1, Ordering::AcqRel) + 1;
            return Ok(Response::new(PutResponse {
                header: self.0.header(rev),
                prev_kv: None,
            }));
        }
        let rev = {
            let _order = self
                .0
                .publish
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let rev = self.0.revision.fetch_add(1, Ordering::AcqRel) + 1;
            let req = req.into_inner();
            let event = Event {
                r#type: 0,
                kv: Some(KeyValue {
                    key: req.key,
                    value: req.value,
                    create_revision: rev,
                    mod_revision: rev,
                    version: 1,
                    lease: req.lease,
                }),
                prev_kv: None,
            };
            // No receiver between the check and the send is harmless: nobody was watching.
            let _ = self.0.events.send(event);
            rev
        };
        Ok(Response::new(PutResponse {
            header: self.0.header(rev),
            prev_kv: None,
        }))
    }
}

fn in_range(w: &WatchCreateRequest, key: &[u8]) -> bool {
    if w.range_end.is_empty() {
        key == w.key.as_slice()
    } else if w.range_end == [0] {
        key >= w.key.as_slice()
    } else {
        key >= w.key.as_slice() && key < w.range_end.as_slice()
    }
}

/// Forwards the events of one watcher, applying the fault.
async fn forward(
    state: Arc<State>,
    create: WatchCreateRequest,
    watch_id: i64,
    mut events: broadcast::Receiver<Event>,
    out: mpsc::Sender<Result<WatchResponse, Status>>,
) {
    let mut n: u64 = 0;
    let mut held: Option<Event> = None;
    let send = |event: Event| {
        let rev = event.kv.as_ref().map_or(0, |kv| kv.mod_revision);
        Ok(WatchResponse {
            header: state.header(rev),
            watch_id,
            events: vec![event],
            ..Default::default()
        })
    };
    while let Ok(event) = events.recv().await {
        let key = event
            .kv
            .as_ref()
            .map(|kv| kv.key.as_slice())
            .unwrap_or_default();
        if !in_range(&create, key) {
            continue;
        }
        let index = n;
        n += 1;
        let mut batch = Vec::new();
        match state.fault {
            WatchFault::Drop(k) if k == index => {}
            WatchFault::Duplicate(k) if k == index => {
                batch.push(event.clone());
                batch.push(event);
            }
            WatchFault::Reorder(k) if k == index => held = Some(event),
            WatchFault::Reorder(k) if k + 1 == index => {
                batch.push(event);
                batch.extend(held.take());
            }
            _ => batch.push(event),
        }
        for e in batch {
            if out.send(send(e)).await.is_err() {
                return;
            }
        }
    }
}

#[tonic::async_trait]
impl Watch for Service {
    async fn watch(
        &self,
        req: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<BoxStream<WatchResponse>>, Status> {
        self.0.counts.watch_streams.fetch_add(1, Ordering::Relaxed);
        let mut incoming = req.into_inner();
        let (tx, rx) = mpsc::channel(1024);
        let state = self.0.clone();
        tokio::spawn(async move {
            let mut next_id: i64 = 0;
            while let Ok(Some(msg)) = incoming.message().await {
                match msg.request_union {
                    Some(RequestUnion::CreateRequest(create)) => {
                        let id = if create.watch_id != 0 {
                            create.watch_id
                        } else {
                            next_id
                        };
                        next_id = next_id.max(id) + 1;
                        // Subscribe before answering "created", so every later put is seen.
                        let events = state.events.subscribe();
                        let created = WatchResponse {
                            header: state.header(state.revision.load(Ordering::Acquire)),
                            watch_id: id,
                            created: true,
                            ..Default::default()
                        };
                        if tx.send(Ok(created)).await.is_err() {
                            return;
                        }
                        tokio::spawn(forward(state.clone(), create, id, events, tx.clone()));
                    }
                    Some(RequestUnion::ProgressRequest(_)) => {
                        let progress = WatchResponse {
                            header: state.header(state.revision.load(Ordering::Acquire)),
                            watch_id: -1,
                            ..Default::default()
                        };
                        if tx.send(Ok(progress)).await.is_err() {
                            return;
                        }
                    }
                    Some(RequestUnion::CancelRequest(c)) => {
                        let canceled = WatchResponse {
                            watch_id: c.watch_id,
                            canceled: true,
                            ..Default::default()
                        };
                        if tx.send(Ok(canceled)).await.is_err() {
                            return;
                        }
                    }
                    None => {}
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// A running ceiling server; dropping it stops it.
#[derive(Debug)]
pub struct CeilingServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it has answered.
    pub counts: Arc<Counts>,
    stop: Option<oneshot::Sender<()>>,
}

impl CeilingServer {
    /// Starts a server on `listen` (port 0 picks a free port) in the current tokio runtime.
    pub async fn start(listen: SocketAddr, fault: WatchFault) -> Result<Self> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| BenchError::io("bind", listen.to_string(), e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| BenchError::io("local_addr", listen.to_string(), e))?;
        let counts = Arc::new(Counts::default());
        let (events, _) = broadcast::channel(1 << 16);
        let service = Service(Arc::new(State {
            revision: AtomicI64::new(1),
            publish: std::sync::Mutex::new(()),
            counts: counts.clone(),
            events,
            fault,
        }));
        let (stop, stopped) = oneshot::channel::<()>();
        // The builder's own nodelay setting applies only to listeners it binds itself.
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .add_service(KvServer::new(service.clone()))
                .add_service(WatchServer::new(service))
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = served {
                eprintln!("strata-bench ceiling server: {e}");
            }
        });
        Ok(Self {
            addr,
            counts,
            stop: Some(stop),
        })
    }

    /// The endpoint clients connect to.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for CeilingServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
