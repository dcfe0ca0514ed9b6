//! `kube`: a kube-apiserver-like workload (see ETCD-FACTS.md §5).
//!
//! Clients mix: gets (`Range`, limit 1), paginated lists of the pod prefix (limit per page,
//! later pages at the first page's revision, continuing from the last key + `"\0"`),
//! count-only and keys-only ranges, creates (`Txn If mod_revision == 0 Then Put`), updates
//! (`Txn If mod_revision == rev Then Put Else Range`, retried with the returned revision on
//! conflict), deletes (the same guard with `DeleteRange`), and event writes attached to a
//! lease that is reused for 60 s or 1,000 keys. Alongside: watchers of the pod prefix from a
//! revision with prev_kv and progress_notify that request progress every second, and a
//! compactor that every interval runs the `compact_rev_key` Txn and, when it wins, compacts to
//! the revision it saw one interval earlier — as the apiserver does.
//!
//! Every operation is linearizable, as the apiserver's are.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex, mpsc, watch};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::client::{Pool, Rng, prefix_end};
use crate::error::{BenchError, Result};
use crate::kv::{mod_equals, mod_revision_of_else_range, optimistic_put};
use crate::load::{self, LoadSpec, Outcome, Stop, Worker};
use crate::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::proto::etcdserverpb::kv_client::KvClient;
use crate::proto::etcdserverpb::lease_client::LeaseClient;
use crate::proto::etcdserverpb::request_op::Request;
use crate::proto::etcdserverpb::watch_request::RequestUnion;
use crate::proto::etcdserverpb::{
    CompactionRequest, Compare, DeleteRangeRequest, LeaseGrantRequest, PutRequest, RangeRequest,
    RequestOp, TxnRequest, WatchCreateRequest, WatchProgressRequest, WatchRequest,
};
use crate::stats::{Recorder, Summary};

const PODS: &str = "/registry/pods/bench/";
const EVENTS: &str = "/registry/events/bench/";
const COMPACT_KEY: &[u8] = b"compact_rev_key";
/// Conflict retries of one update or delete before it counts as failed.
const RETRIES_MAX: usize = 5;

/// Shape of a kube run.
#[derive(Debug, Clone)]
pub struct KubeConfig {
    /// Server endpoints.
    pub endpoints: Vec<String>,
    /// gRPC connections.
    pub conns: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Run length.
    pub duration: Duration,
    /// Pods created before the run (untimed); gets and updates pick among them.
    pub objects: u64,
    /// Object size in bytes.
    pub val_size: usize,
    /// List page size (the apiserver's default chunk is 500).
    pub page_size: i64,
    /// Watchers of the pod prefix.
    pub watchers: usize,
    /// Compaction interval (the apiserver's default is 5 minutes; shorter here so a short
    /// run compacts).
    pub compaction_interval: Duration,
    /// Event lease TTL, seconds (events live 1 h by default).
    pub lease_ttl_s: i64,
    /// Server PID, for CPU seconds and peak RSS.
    pub pid: Option<u32>,
}

impl KubeConfig {
    /// Defaults for `clients` clients running for `duration`.
    pub fn new(endpoints: Vec<String>, clients: usize, duration: Duration) -> Self {
        Self {
            endpoints,
            conns: clients.div_ceil(10).clamp(1, 100),
            clients,
            duration,
            objects: 1000,
            val_size: 1024,
            page_size: 500,
            watchers: 4,
            compaction_interval: Duration::from_secs(5),
            lease_ttl_s: 3600,
            pid: None,
        }
    }
}

/// Operation weights per 100 client requests.
const MIX: [(&str, u64); 8] = [
    ("get", 25),
    ("list", 4),
    ("count", 2),
    ("keys", 1),
    ("create", 10),
    ("update", 40),
    ("delete", 6),
    ("event", 12),
];

fn pod(i: u64) -> Vec<u8> {
    format!("{PODS}pod-{i:06}").into_bytes()
}

/// The lease event writes share, replaced after 60 s or 1,000 keys.
#[derive(Debug, Default)]
struct LeaseCache {
    id: i64,
    granted: Option<Instant>,
    attached: u64,
}

struct Shared {
    cfg: KubeConfig,
    /// Latest revision any client saw of each seed pod: the apiserver's watch cache, which
    /// updates read and retry from, so conflicts come only from real races.
    cache: Vec<AtomicI64>,
    next_name: AtomicU64,
    lease: Mutex<LeaseCache>,
    /// Revisions of every acknowledged write to the pod prefix (create, update, delete): the
    /// events each watcher must have received, up to the newest revision it saw.
    pod_writes: std::sync::Mutex<Vec<i64>>,
}

impl Shared {
    fn pod_written(&self, revision: i64) {
        if let Ok(mut w) = self.pod_writes.lock() {
            w.push(revision);
        }
    }
}

struct KubeWorker {
    kv: KvClient<Channel>,
    lease: LeaseClient<Channel>,
    shared: Arc<Shared>,
    rng: Rng,
    value: Vec<u8>,
    /// Pods this client created and has not deleted, with their revisions.
    created: Vec<(Vec<u8>, i64)>,
}

impl KubeWorker {
    async fn update(&mut self, rec: &mut Recorder) -> std::result::Result<(), tonic::Status> {
        let i = self.rng.below(self.shared.cfg.objects.max(1));
        let key = pod(i);
        let cached = self.shared.cache.get(i as usize);
        let mut rev = cached.map_or(0, |c| c.load(Ordering::Relaxed));
        for _ in 0..=RETRIES_MAX {
            let resp = self
                .kv
                .txn(optimistic_put(key.clone(), self.value.clone(), rev, 0))
                .await?
                .into_inner();
            if resp.succeeded {
                let revision = resp.header.map_or(0, |h| h.revision);
                self.shared.pod_written(revision);
                if let Some(c) = cached {
                    c.fetch_max(revision, Ordering::Relaxed);
                }
                return Ok(());
            }
            rec.count("update conflicts", 1);
            rev = mod_revision_of_else_range(&resp.responses);
            if let Some(c) = cached {
                c.fetch_max(rev, Ordering::Relaxed);
            }
        }
        Err(tonic::Status::aborted("update: too many conflicts"))
    }

    async fn create(&mut self) -> std::result::Result<(), tonic::Status> {
        let n = self.shared.next_name.fetch_add(1, Ordering::Relaxed);
        let key = format!("{PODS}new-{n:08}").into_bytes();
        let resp = self
            .kv
            .txn(optimistic_put(key.clone(), self.value.clone(), 0, 0))
            .await?
            .into_inner();
        if !resp.succeeded {
            return Err(tonic::Status::already_exists("create: key exists"));
        }
        let revision = resp.header.map_or(0, |h| h.revision);
        self.shared.pod_written(revision);
        self.created.push((key, revision));
        Ok(())
    }

    async fn delete(&mut self, rec: &mut Recorder) -> std::result::Result<(), tonic::Status> {
        let Some((key, mut rev)) = self.created.pop() else {
            return self.create().await;
        };
        for _ in 0..=RETRIES_MAX {
            let txn = TxnRequest {
                compare: vec![mod_equals(key.clone(), rev)],
                success: vec![RequestOp {
                    request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
                        key: key.clone(),
                        ..Default::default()
                    })),
                }],
                failure: vec![RequestOp {
                    request: Some(Request::RequestRange(RangeRequest {
                        key: key.clone(),
                        ..Default::default()
                    })),
                }],
            };
            let resp = self.kv.txn(txn).await?.into_inner();
            if resp.succeeded {
                self.shared
                    .pod_written(resp.header.map_or(0, |h| h.revision));
                return Ok(());
            }
            rec.count("delete conflicts", 1);
            rev = mod_revision_of_else_range(&resp.responses);
            if rev == 0 {
                return Ok(()); // Already gone.
            }
        }
        Err(tonic::Status::aborted("delete: too many conflicts"))
    }

    /// A paginated list of the pod prefix at one revision.
    async fn list(&mut self, rec: &mut Recorder) -> std::result::Result<(), tonic::Status> {
        let end = prefix_end(PODS.as_bytes());
        let mut key = PODS.as_bytes().to_vec();
        let mut revision = 0;
        loop {
            let resp = self
                .kv
                .range(RangeRequest {
                    key: key.clone(),
                    range_end: end.clone(),
                    limit: self.shared.cfg.page_size,
                    revision,
                    ..Default::default()
                })
                .await?
                .into_inner();
            rec.count("list pages", 1);
            if revision == 0 {
                revision = resp.header.map_or(0, |h| h.revision);
            }
            match (resp.more, resp.kvs.last()) {
                (true, Some(last)) => {
                    key = last.key.clone();
                    key.push(0);
                }
                _ => return Ok(()),
            }
        }
    }

    async fn event(&mut self, rec: &mut Recorder) -> std::result::Result<(), tonic::Status> {
        let lease = {
            let mut cache = self.shared.lease.lock().await;
            let fresh = cache
                .granted
                .is_some_and(|t| t.elapsed() < Duration::from_secs(60) && cache.attached < 1000);
            if !fresh {
                let ttl = self.shared.cfg.lease_ttl_s;
                let granted = self
                    .lease
                    .lease_grant(LeaseGrantRequest { ttl, id: 0 })
                    .await?
                    .into_inner();
                rec.count("leases granted", 1);
                *cache = LeaseCache {
                    id: granted.id,
                    granted: Some(Instant::now()),
                    attached: 0,
                };
            }
            cache.attached += 1;
            cache.id
        };
        let n = self.shared.next_name.fetch_add(1, Ordering::Relaxed);
        self.kv
            .put(PutRequest {
                key: format!("{EVENTS}event-{n:08}").into_bytes(),
                value: self.value[..self.value.len().min(256)].to_vec(),
                lease,
                ..Default::default()
            })
            .await?;
        Ok(())
    }

    async fn range(
        &mut self,
        count_only: bool,
        keys_only: bool,
    ) -> std::result::Result<(), tonic::Status> {
        let req = if count_only || keys_only {
            RangeRequest {
                key: PODS.as_bytes().to_vec(),
                range_end: prefix_end(PODS.as_bytes()),
                count_only,
                keys_only,
                ..Default::default()
            }
        } else {
            let i = self.rng.below(self.shared.cfg.objects.max(1));
            RangeRequest {
                key: pod(i),
                limit: 1,
                ..Default::default()
            }
        };
        self.kv.range(req).await.map(drop)
    }
}

impl Worker for KubeWorker {
    async fn call(&mut self, _seq: u64, rec: &mut Recorder) -> Outcome {
        let total: u64 = MIX.iter().map(|(_, w)| w).sum();
        let mut r = self.rng.below(total);
        let mut op = "get";
        for (name, w) in MIX {
            if r < w {
                op = name;
                break;
            }
            r -= w;
        }
        let result = match op {
            "list" => self.list(rec).await,
            "count" => self.range(true, false).await,
            "keys" => self.range(false, true).await,
            "create" => self.create().await,
            "update" => self.update(rec).await,
            "delete" => self.delete(rec).await,
            "event" => self.event(rec).await,
            _ => self.range(false, false).await,
        };
        match result {
            Ok(()) => Outcome::Ok(op),
            Err(s) => Outcome::Err(op, s),
        }
    }
}

/// Creates the seed pods; returns the revision of each and the store revision afterwards.
async fn seed(pool: &Pool, cfg: &KubeConfig) -> Result<(Vec<AtomicI64>, i64)> {
    let cache: Arc<Vec<AtomicI64>> =
        Arc::new((0..cfg.objects).map(|_| AtomicI64::new(0)).collect());
    let mut tasks = Vec::new();
    let parallel = 16u64;
    for w in 0..parallel {
        let mut kv = pool.kv(w as usize);
        let objects = cfg.objects;
        let value = vec![b'p'; cfg.val_size];
        let cache = cache.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while i < objects {
                let r = kv
                    .put(PutRequest {
                        key: pod(i),
                        value: value.clone(),
                        ..Default::default()
                    })
                    .await
                    .map_err(|s| BenchError::rpc("kube seed put", s))?;
                if let Some(c) = cache.get(i as usize) {
                    c.store(
                        r.into_inner().header.map_or(0, |h| h.revision),
                        Ordering::Relaxed,
                    );
                }
                i += parallel;
            }
            Ok::<(), BenchError>(())
        }));
    }
    for t in tasks {
        t.await
            .map_err(|e| BenchError::Invalid(format!("seed task: {e}")))??;
    }
    let mut kv = pool.kv(0);
    let r = kv
        .range(RangeRequest {
            key: b"/registry/health".to_vec(),
            ..Default::default()
        })
        .await
        .map_err(|s| BenchError::rpc("kube health range", s))?;
    let revision = r.into_inner().header.map_or(0, |h| h.revision);
    let cache = Arc::try_unwrap(cache).unwrap_or_else(|shared| {
        shared
            .iter()
            .map(|c| AtomicI64::new(c.load(Ordering::Relaxed)))
            .collect()
    });
    Ok((cache, revision))
}

/// A watcher of the pod prefix: counts events, checks their revisions only increase, and
/// times progress requests (sent every second) until `stop` turns true. Returns the revisions
/// of the events it received, for the gap check.
async fn watcher(
    pool: Pool,
    w: usize,
    from_rev: i64,
    mut stop: watch::Receiver<bool>,
) -> (Recorder, Vec<i64>) {
    let mut rec = Recorder::default();
    let mut received = Vec::new();
    let (tx, rx) = mpsc::channel(8);
    let create = WatchCreateRequest {
        key: PODS.as_bytes().to_vec(),
        range_end: prefix_end(PODS.as_bytes()),
        start_revision: from_rev + 1,
        prev_kv: true,
        progress_notify: true,
        ..Default::default()
    };
    if tx
        .send(WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(create)),
        })
        .await
        .is_err()
    {
        return (rec, received);
    }
    let mut responses = match pool.watch(w).watch(ReceiverStream::new(rx)).await {
        Ok(r) => r.into_inner(),
        Err(s) => {
            rec.error("watch", &s);
            return (rec, received);
        }
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut asked: Option<Instant> = None;
    let mut highest = 0i64;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick() => {
                if asked.is_none() {
                    let req = WatchRequest {
                        request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
                    };
                    if tx.send(req).await.is_err() {
                        break;
                    }
                    asked = Some(Instant::now());
                }
            }
            m = responses.message() => match m {
                Ok(Some(resp)) => {
                    if resp.canceled {
                        rec.error_kind("watch: canceled".into(), resp.cancel_reason.clone());
                        break;
                    }
                    if resp.events.is_empty() && !resp.created {
                        // A progress notification: requested or periodic.
                        rec.count("watch progress notifications", 1);
                        if let Some(t) = asked.take() {
                            rec.ok_side("watch-progress", t.elapsed());
                        }
                    }
                    for e in &resp.events {
                        let rev = e.kv.as_ref().map_or(0, |kv| kv.mod_revision);
                        if rev < highest {
                            rec.error_kind("watch: revision went back".into(), format!("{rev} after {highest}"));
                        }
                        highest = highest.max(rev);
                        received.push(rev);
                        rec.count("watch events", 1);
                    }
                }
                Ok(None) => break,
                Err(s) => {
                    rec.error("watch", &s);
                    break;
                }
            },
        }
    }
    (rec, received)
}

/// Acknowledged pod writes a watcher did not receive although it received a later revision:
/// a gap in its stream (writes after its newest event may still be in flight at the stop).
fn watch_gaps(pod_writes: &[i64], from_rev: i64, received: &[i64]) -> Vec<i64> {
    let Some(&newest) = received.iter().max() else {
        return Vec::new();
    };
    let seen: std::collections::HashSet<i64> = received.iter().copied().collect();
    pod_writes
        .iter()
        .copied()
        .filter(|&r| r > from_rev && r <= newest && !seen.contains(&r))
        .collect()
}

/// `Txn(If version(compact_rev_key) == local_version Then Put(compact_rev_key) Else
/// Range(compact_rev_key))`: at most one apiserver wins each interval.
fn compact_rev_txn(local_version: i64) -> TxnRequest {
    TxnRequest {
        compare: vec![Compare {
            result: CompareResult::Equal as i32,
            target: CompareTarget::Version as i32,
            key: COMPACT_KEY.to_vec(),
            target_union: Some(TargetUnion::Version(local_version)),
            ..Default::default()
        }],
        success: vec![RequestOp {
            request: Some(Request::RequestPut(PutRequest {
                key: COMPACT_KEY.to_vec(),
                value: b"rev".to_vec(),
                ..Default::default()
            })),
        }],
        failure: vec![RequestOp {
            request: Some(Request::RequestRange(RangeRequest {
                key: COMPACT_KEY.to_vec(),
                ..Default::default()
            })),
        }],
    }
}

/// The apiserver's compactor: every interval, `Txn(If version(compact_rev_key) == local Then
/// Put(compact_rev_key, rev) Else Range(compact_rev_key))`; the winner compacts to the
/// revision it saw one interval earlier.
async fn compactor(pool: Pool, interval: Duration, mut stop: watch::Receiver<bool>) -> Recorder {
    let mut rec = Recorder::default();
    let mut kv = pool.kv(0);
    let mut local_version = 0i64;
    let mut previous_rev: Option<i64> = None;
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            _ = tick.tick() => {}
        }
        let txn = compact_rev_txn(local_version);
        let t = Instant::now();
        let resp = match kv.txn(txn).await {
            Ok(r) => r.into_inner(),
            Err(s) => {
                rec.error("compact-txn", &s);
                continue;
            }
        };
        rec.ok_side("compact-txn", t.elapsed());
        let rev = resp.header.map_or(0, |h| h.revision);
        if !resp.succeeded {
            // Another compactor won; learn its version, as the apiserver does.
            local_version = resp
                .responses
                .iter()
                .find_map(|r| match &r.response {
                    Some(crate::proto::etcdserverpb::response_op::Response::ResponseRange(rr)) => {
                        rr.kvs.first().map(|kv| kv.version)
                    }
                    _ => None,
                })
                .unwrap_or(local_version);
            continue;
        }
        local_version += 1;
        if let Some(target) = previous_rev {
            let t = Instant::now();
            match kv
                .compact(CompactionRequest {
                    revision: target,
                    physical: false,
                })
                .await
            {
                Ok(_) => {
                    rec.ok_side("compact", t.elapsed());
                    rec.count("compactions", 1);
                }
                Err(s) => rec.error("compact", &s),
            }
        }
        previous_rev = Some(rev);
    }
    rec
}

/// Runs the kube workload.
pub async fn run_kube(cfg: &KubeConfig) -> Result<Summary> {
    let pool = Pool::connect(&cfg.endpoints, cfg.conns.max(1)).await?;
    let (cache, start_rev) = seed(&pool, cfg).await?;
    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        cache,
        next_name: AtomicU64::new(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64 % 1_000_000_000)
                * 1000,
        ),
        lease: Mutex::new(LeaseCache::default()),
        pod_writes: std::sync::Mutex::new(Vec::new()),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut background = Vec::new();
    let mut watchers = Vec::new();
    for w in 0..cfg.watchers {
        watchers.push(tokio::spawn(watcher(
            pool.clone(),
            w,
            start_rev,
            stop_rx.clone(),
        )));
    }
    background.push(tokio::spawn(compactor(
        pool.clone(),
        cfg.compaction_interval,
        stop_rx.clone(),
    )));
    let workers: Vec<KubeWorker> = (0..cfg.clients.max(1))
        .map(|c| KubeWorker {
            kv: pool.kv(c),
            lease: pool.lease(c),
            shared: shared.clone(),
            rng: Rng::new(c as u64 + 7),
            value: vec![b'o'; cfg.val_size],
            created: Vec::new(),
        })
        .collect();
    let before = cfg.pid.map(crate::procstat::sample).transpose()?;
    let spec = LoadSpec {
        clients: cfg.clients.max(1),
        stop: Stop::Duration(cfg.duration),
        rate: None,
        progress: false,
    };
    let mut measured = load::run(workers, spec).await;
    let _ = stop_tx.send(true);
    let pod_writes = shared
        .pod_writes
        .lock()
        .map(|w| w.clone())
        .unwrap_or_default();
    let mut gaps = 0u64;
    for (w, b) in watchers.into_iter().enumerate() {
        match b.await {
            Ok((r, received)) => {
                measured.recorder.merge(&r);
                let missing = watch_gaps(&pod_writes, start_rev, &received);
                if let Some(first) = missing.first() {
                    measured.recorder.error_kind(
                        "watch: gap".into(),
                        format!(
                            "watcher {w} missed {} events, first revision {first}",
                            missing.len()
                        ),
                    );
                }
                gaps += missing.len() as u64;
            }
            Err(e) => measured
                .recorder
                .error_kind("kube watcher task".into(), e.to_string()),
        }
    }
    measured.recorder.count("watch gaps", gaps);
    for b in background {
        match b.await {
            Ok(r) => measured.recorder.merge(&r),
            Err(e) => measured
                .recorder
                .error_kind("kube background task".into(), e.to_string()),
        }
    }
    let mut summary = measured.recorder.summary("kube", measured.elapsed);
    if let Some(b) = before {
        summary.server = Some(b.usage_since(summary.requests)?);
    }
    summary.endpoints = cfg.endpoints.clone();
    summary.conns = cfg.conns.max(1);
    summary.clients = cfg.clients.max(1);
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::watch_gaps;

    #[test]
    fn a_gap_is_a_missed_write_before_the_newest_event() {
        // Writes at 5..=9 after the start revision 4; the watcher saw 5, 6, 8.
        let writes = [5, 6, 7, 8, 9];
        assert_eq!(watch_gaps(&writes, 4, &[5, 6, 8]), vec![7]);
        // 9 is after the newest event: possibly in flight at the stop, not a gap.
        assert_eq!(watch_gaps(&writes, 4, &[5, 6, 7, 8]), Vec::<i64>::new());
        assert_eq!(watch_gaps(&writes, 4, &[]), Vec::<i64>::new());
        // Writes at or before the start revision are not expected.
        assert_eq!(watch_gaps(&[3, 4, 5], 4, &[5]), Vec::<i64>::new());
    }
}
