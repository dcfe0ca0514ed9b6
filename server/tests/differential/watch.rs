//! Watch streams whose responses are collected in the background and compared at the end:
//! per watcher, its control responses (created, canceled, compacted) exactly, and its events
//! one by one. How events are grouped into responses is not compared: etcd batches the
//! revisions a catching-up watcher reads in one go, and that depends on timing.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strata_server::proto::etcdserverpb as pb;
use strata_server::proto::etcdserverpb::watch_client::WatchClient;
use strata_server::proto::mvccpb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

/// One watch stream and everything it received.
pub struct Stream {
    tx: mpsc::Sender<pb::WatchRequest>,
    log: Arc<Mutex<Vec<pb::WatchResponse>>>,
}

impl Stream {
    pub fn open(ch: Channel) -> Stream {
        let (tx, rx) = mpsc::channel(16);
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        // A gRPC server may hold the response headers back until its first message, which
        // comes only after a create request: open the call in the background.
        tokio::spawn(async move {
            let mut client = WatchClient::new(ch);
            let mut inbound = client
                .watch(ReceiverStream::new(rx))
                .await
                .expect("open watch stream")
                .into_inner();
            while let Ok(Some(r)) = inbound.message().await {
                sink.lock().unwrap().push(r);
            }
        });
        Stream { tx, log }
    }

    fn created(&self) -> Vec<i64> {
        let log = self.log.lock().unwrap();
        log.iter()
            .filter(|r| r.created)
            .map(|r| r.watch_id)
            .collect()
    }

    /// Creates a watcher and waits for its `created` response; returns its watch ID.
    pub async fn create(&self, req: pb::WatchCreateRequest) -> i64 {
        use pb::watch_request::RequestUnion;
        let before = self.created().len();
        self.tx
            .send(pb::WatchRequest {
                request_union: Some(RequestUnion::CreateRequest(req)),
            })
            .await
            .expect("send create");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let created = self.created();
            if created.len() > before {
                return created[before];
            }
            assert!(Instant::now() < deadline, "no created response");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn send(&self, request_union: pb::watch_request::RequestUnion) {
        self.tx
            .send(pb::WatchRequest {
                request_union: Some(request_union),
            })
            .await
            .expect("send a watch request");
    }

    /// Cancels watcher `id` (its answer is compared with the control responses).
    pub async fn cancel(&self, watch_id: i64) {
        use pb::watch_request::RequestUnion;
        self.send(RequestUnion::CancelRequest(pb::WatchCancelRequest {
            watch_id,
        }))
        .await;
    }

    /// Asks for a progress notification and waits for it (watch ID -1, no events); returns
    /// its header revision.
    pub async fn progress(&self) -> i64 {
        use pb::watch_request::RequestUnion;
        let notices = || -> Vec<i64> {
            let log = self.log.lock().unwrap();
            log.iter()
                .filter(|r| r.watch_id == -1 && !r.created && r.events.is_empty())
                .map(|r| r.header.map_or(0, |h| h.revision))
                .collect()
        };
        let before = notices().len();
        self.send(RequestUnion::ProgressRequest(pb::WatchProgressRequest {}))
            .await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let n = notices();
            if n.len() > before {
                return n[before];
            }
            assert!(Instant::now() < deadline, "no progress notification");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The events delivered to watcher `id`, in order.
    pub fn events(&self, id: i64) -> Vec<mvccpb::Event> {
        let log = self.log.lock().unwrap();
        log.iter()
            .filter(|r| r.watch_id == id)
            .flat_map(|r| r.events.iter().cloned())
            .collect()
    }

    /// Watcher `id`'s responses that carry no events, headers normalised.
    pub fn control(&self, id: i64) -> Vec<pb::WatchResponse> {
        let log = self.log.lock().unwrap();
        log.iter()
            .filter(|r| r.watch_id == id && r.events.is_empty())
            .map(|r| pb::WatchResponse {
                header: super::norm::header(r.header),
                ..r.clone()
            })
            .collect()
    }

    /// How many responses arrived so far (to see when a stream has gone quiet).
    pub fn len(&self) -> usize {
        self.log.lock().unwrap().len()
    }
}
