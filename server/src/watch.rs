//! The Watch service: one task per gRPC stream multiplexes its watchers.
//!
//! Each watcher is an engine [`Watcher`] whose waker signals the stream's task; the task
//! drains every watcher's queue whenever it is woken (a watcher that fell behind catches up
//! from the tree as it drains), so events leave in revision order, exactly once, and a slow
//! client holds back only its own stream: the send to it waits, the engine's bounded queues
//! fill, and the watchers catch up from the tree later.
//!
//! Progress: a `WatchProgressRequest` asks every watcher of the stream; the answer (watch ID
//! -1, as etcd ≥ 3.5.13) is sent once each has delivered everything up to the revision it
//! reports, and carries the smallest such revision. Watchers created with `progress_notify`
//! get one per `--watch-progress-notify-interval` on the same terms.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use strata_engine::mvcc::{self as m, WatchMessage, Watcher};
use tokio::sync::{Notify, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::Ctx;
use crate::convert::kv;
use crate::errors::mvcc_status;
use crate::proto::etcdserverpb as pb;
use crate::proto::mvccpb;

/// The Watch service.
pub struct WatchSvc {
    pub(crate) ctx: Ctx,
}

type Out = Result<pb::WatchResponse, Status>;

/// etcd's error for a watch ID already used on the stream.
const DUPLICATE_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";

#[tonic::async_trait]
impl pb::watch_server::Watch for WatchSvc {
    async fn watch(
        &self,
        request: Request<Streaming<pb::WatchRequest>>,
    ) -> Result<Response<tonic::codegen::BoxStream<pb::WatchResponse>>, Status> {
        self.ctx.check_leader(&request)?;
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let stream = StreamState {
            ctx: self.ctx.clone(),
            tx,
            watchers: HashMap::new(),
            next_id: 0,
            wake: Arc::new(Notify::new()),
            progress: None,
        };
        tokio::spawn(stream.run(inbound));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

struct Entry {
    watcher: Watcher,
    progress_notify: bool,
    fragment: bool,
    /// A periodic progress notice was asked of the engine and has not come back.
    periodic_pending: bool,
}

/// A stream-wide progress request in flight: the watchers that still owe their notice.
struct PendingProgress {
    waiting: HashSet<i64>,
    revision: i64,
}

struct StreamState {
    ctx: Ctx,
    tx: mpsc::Sender<Out>,
    watchers: HashMap<i64, Entry>,
    next_id: i64,
    wake: Arc<Notify>,
    progress: Option<PendingProgress>,
}

/// The sender is gone: the client went away.
struct Closed;

impl StreamState {
    async fn run(mut self, mut inbound: Streaming<pb::WatchRequest>) {
        let interval = self.ctx.limits.progress_notify_interval;
        let mut tick = tokio::time::interval(interval.max(Duration::from_millis(100)));
        tick.tick().await;
        loop {
            let step = tokio::select! {
                msg = inbound.message() => match msg {
                    Ok(Some(req)) => self.handle(req).await,
                    // The client closed its side or the connection broke: stop.
                    Ok(None) | Err(_) => Err(Closed),
                },
                _ = self.wake.notified() => self.drain().await,
                _ = tick.tick() => self.periodic(),
            };
            if step.is_err() {
                break;
            }
        }
        // Dropping the watchers cancels them in the engine.
    }

    async fn send(&mut self, r: pb::WatchResponse) -> Result<(), Closed> {
        self.tx.send(Ok(r)).await.map_err(|_| Closed)
    }

    async fn handle(&mut self, req: pb::WatchRequest) -> Result<(), Closed> {
        use pb::watch_request::RequestUnion;
        match req.request_union {
            Some(RequestUnion::CreateRequest(c)) => self.create(c).await,
            Some(RequestUnion::CancelRequest(c)) => {
                if self.watchers.remove(&c.watch_id).is_some() {
                    if let Some(p) = &mut self.progress {
                        p.waiting.remove(&c.watch_id);
                    }
                    let header = self.ctx.header(self.revision());
                    self.send(pb::WatchResponse {
                        header: Some(header),
                        watch_id: c.watch_id,
                        canceled: true,
                        ..Default::default()
                    })
                    .await?;
                    self.finish_progress().await?;
                }
                Ok(())
            }
            Some(RequestUnion::ProgressRequest(_)) => self.request_progress().await,
            None => Ok(()),
        }
    }

    fn revision(&self) -> i64 {
        self.ctx.node.store().revision().unwrap_or(0)
    }

    async fn create(&mut self, c: pb::WatchCreateRequest) -> Result<(), Closed> {
        let id = if c.watch_id != 0 {
            c.watch_id
        } else {
            while self.watchers.contains_key(&self.next_id) {
                self.next_id += 1;
            }
            self.next_id
        };
        if self.watchers.contains_key(&id) || id < 0 {
            let header = self.ctx.header(self.revision());
            return self
                .send(pb::WatchResponse {
                    header: Some(header),
                    watch_id: -1,
                    created: true,
                    canceled: true,
                    cancel_reason: DUPLICATE_ID.into(),
                    ..Default::default()
                })
                .await;
        }
        if c.watch_id == 0 {
            self.next_id += 1;
        }
        use pb::watch_create_request::FilterType;
        let req = m::WatchRequest {
            key: c.key,
            range_end: c.range_end,
            start_revision: c.start_revision,
            prev_kv: c.prev_kv,
            no_put: c.filters.contains(&(FilterType::Noput as i32)),
            no_delete: c.filters.contains(&(FilterType::Nodelete as i32)),
        };
        let store = self.ctx.node.store();
        let wake = self.wake.clone();
        let waker: m::Waker = Arc::new(move || wake.notify_one());
        let created = tokio::task::block_in_place(|| {
            let rev = store.revision()?;
            store.watch_with_waker(req, Some(waker)).map(|w| (w, rev))
        });
        match created {
            Ok((watcher, rev)) => {
                self.watchers.insert(
                    id,
                    Entry {
                        watcher,
                        progress_notify: c.progress_notify,
                        fragment: c.fragment,
                        periodic_pending: false,
                    },
                );
                let header = self.ctx.header(rev);
                self.send(pb::WatchResponse {
                    header: Some(header),
                    watch_id: id,
                    created: true,
                    ..Default::default()
                })
                .await?;
                // History (or a compaction notice) may be queued already.
                self.drain().await
            }
            Err(e) => {
                let header = self.ctx.header(self.revision());
                self.send(pb::WatchResponse {
                    header: Some(header),
                    watch_id: -1,
                    created: true,
                    canceled: true,
                    cancel_reason: mvcc_status(&e).message().to_string(),
                    ..Default::default()
                })
                .await
            }
        }
    }

    async fn request_progress(&mut self) -> Result<(), Closed> {
        let mut waiting = HashSet::new();
        for (id, e) in &self.watchers {
            if e.watcher.request_progress().is_ok() {
                waiting.insert(*id);
            }
        }
        let revision = self.revision();
        match &mut self.progress {
            // A request while one is in flight joins it.
            Some(p) => p.waiting.extend(waiting),
            None => {
                self.progress = Some(PendingProgress {
                    waiting,
                    revision: i64::MAX,
                })
            }
        }
        if self.watchers.is_empty()
            && let Some(p) = &mut self.progress
        {
            p.revision = revision;
        }
        self.drain().await
    }

    /// Sends the stream-wide progress notice once no watcher owes one.
    async fn finish_progress(&mut self) -> Result<(), Closed> {
        let done = self.progress.as_ref().is_some_and(|p| p.waiting.is_empty());
        if !done {
            return Ok(());
        }
        let Some(p) = self.progress.take() else {
            return Ok(());
        };
        let revision = if p.revision == i64::MAX {
            self.revision()
        } else {
            p.revision
        };
        let header = self.ctx.header(revision);
        self.send(pb::WatchResponse {
            header: Some(header),
            watch_id: -1,
            ..Default::default()
        })
        .await
    }

    fn periodic(&mut self) -> Result<(), Closed> {
        for e in self.watchers.values_mut() {
            if e.progress_notify && !e.periodic_pending && e.watcher.request_progress().is_ok() {
                e.periodic_pending = true;
            }
        }
        self.wake.notify_one();
        Ok(())
    }

    /// Forwards everything the watchers have queued.
    async fn drain(&mut self) -> Result<(), Closed> {
        let ids: Vec<i64> = self.watchers.keys().copied().collect();
        for id in ids {
            while let Some(e) = self.watchers.get(&id) {
                // `block_in_place` hands this worker's other tasks to another thread (a
                // wake-up per call), so only a catch-up, which reads the tree, pays for it.
                let next = match e.watcher.try_recv_queued() {
                    Some(m) => Ok(Some(m)),
                    None if e.watcher.catching_up().unwrap_or(true) => {
                        tokio::task::block_in_place(|| e.watcher.try_recv())
                    }
                    None => e.watcher.try_recv(),
                };
                let msg = match next {
                    Ok(Some(m)) => m,
                    Ok(None) => break,
                    Err(e) => {
                        // The store failed under this watcher: cancel it with the reason.
                        self.watchers.remove(&id);
                        let header = self.ctx.header(self.revision());
                        self.send(pb::WatchResponse {
                            header: Some(header),
                            watch_id: id,
                            canceled: true,
                            cancel_reason: mvcc_status(&e).message().to_string(),
                            ..Default::default()
                        })
                        .await?;
                        break;
                    }
                };
                self.forward(id, msg).await?;
            }
        }
        self.finish_progress().await
    }

    async fn forward(&mut self, id: i64, msg: WatchMessage) -> Result<(), Closed> {
        match msg {
            WatchMessage::Events { revision, events } => {
                let fragment = self.watchers.get(&id).is_some_and(|e| e.fragment);
                let header = self.ctx.header(revision);
                let events: Vec<mvccpb::Event> = events.into_iter().map(event).collect();
                for r in split(
                    header,
                    id,
                    events,
                    fragment,
                    self.ctx.limits.max_request_bytes,
                ) {
                    self.send(r).await?;
                }
            }
            WatchMessage::Progress { revision } => {
                let mut periodic = false;
                if let Some(e) = self.watchers.get_mut(&id) {
                    periodic = e.periodic_pending;
                    e.periodic_pending = false;
                }
                let mut stream_wide = false;
                if let Some(p) = &mut self.progress
                    && p.waiting.remove(&id)
                {
                    p.revision = p.revision.min(revision);
                    stream_wide = true;
                }
                if periodic && !stream_wide {
                    let header = self.ctx.header(revision);
                    self.send(pb::WatchResponse {
                        header: Some(header),
                        watch_id: id,
                        ..Default::default()
                    })
                    .await?;
                }
            }
            WatchMessage::Compacted { compact_revision } => {
                self.watchers.remove(&id);
                if let Some(p) = &mut self.progress {
                    p.waiting.remove(&id);
                }
                // As etcd: the notice carries no revision of its own (header revision 0).
                let header = self.ctx.header(0);
                self.send(pb::WatchResponse {
                    header: Some(header),
                    watch_id: id,
                    canceled: true,
                    compact_revision,
                    ..Default::default()
                })
                .await?;
            }
        }
        Ok(())
    }
}

fn event(e: m::Event) -> mvccpb::Event {
    mvccpb::Event {
        r#type: match e.kind {
            m::EventKind::Put => mvccpb::event::EventType::Put as i32,
            m::EventKind::Delete => mvccpb::event::EventType::Delete as i32,
        },
        kv: Some(kv(e.kv)),
        prev_kv: e.prev_kv.map(kv),
    }
}

/// One revision's events as responses: one, or — when the watcher asked for fragments and the
/// response would exceed the request limit — several, all but the last marked `fragment`.
fn split(
    header: pb::ResponseHeader,
    id: i64,
    events: Vec<mvccpb::Event>,
    fragment: bool,
    limit: usize,
) -> Vec<pb::WatchResponse> {
    use prost::Message;
    let whole = pb::WatchResponse {
        header: Some(header),
        watch_id: id,
        events,
        ..Default::default()
    };
    if !fragment || whole.encoded_len() <= limit {
        return vec![whole];
    }
    let mut out: Vec<pb::WatchResponse> = Vec::new();
    let mut cur: Vec<mvccpb::Event> = Vec::new();
    let mut size = 0;
    for e in whole.events {
        let n = e.encoded_len() + 8;
        if !cur.is_empty() && size + n > limit {
            out.push(pb::WatchResponse {
                header: Some(header),
                watch_id: id,
                events: std::mem::take(&mut cur),
                fragment: true,
                ..Default::default()
            });
            size = 0;
        }
        size += n;
        cur.push(e);
    }
    out.push(pb::WatchResponse {
        header: Some(header),
        watch_id: id,
        events: cur,
        ..Default::default()
    });
    out
}
