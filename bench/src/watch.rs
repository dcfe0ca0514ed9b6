//! The watch latency workload and the verifier that every watcher got every event exactly
//! once and in revision order.
//!
//! W watchers (S streams × watchers per stream) watch one prefix; one writer puts keys under
//! it at a fixed rate. The value of put `i` carries `i`, so a watcher that receives the event
//! looks up when put `i` was sent: put→event latency. The writer keeps the revision of every
//! acknowledged put; each watcher's received revisions are checked against that list.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;

use crate::client::{Pool, prefix_end};
use crate::error::{BenchError, Result};
use crate::proto::etcdserverpb::watch_request::RequestUnion;
use crate::proto::etcdserverpb::{PutRequest, WatchCreateRequest, WatchRequest};
use crate::stats::{Recorder, Summary};

/// What one watcher's received revisions say, compared with the acknowledged puts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Events received.
    pub received: u64,
    /// Acknowledged revisions never received.
    pub missing: Vec<i64>,
    /// Revisions received more than once.
    pub duplicated: Vec<i64>,
    /// Revisions received after a higher revision.
    pub reordered: Vec<i64>,
    /// Revisions received that no acknowledged put produced.
    pub unexpected: Vec<i64>,
}

impl Verdict {
    /// True when every expected event arrived exactly once and in order.
    pub fn is_ok(&self) -> bool {
        self.missing.is_empty()
            && self.duplicated.is_empty()
            && self.reordered.is_empty()
            && self.unexpected.is_empty()
    }
}

/// Checks `received` (revisions in arrival order) against `expected` (the revisions of the
/// acknowledged puts): each expected revision exactly once, in increasing order, nothing else.
pub fn verify(expected: &[i64], received: &[i64]) -> Verdict {
    let expected_set: BTreeSet<i64> = expected.iter().copied().collect();
    let mut seen = HashSet::with_capacity(received.len());
    let mut highest = i64::MIN;
    let mut v = Verdict {
        received: received.len() as u64,
        ..Verdict::default()
    };
    for &rev in received {
        if !seen.insert(rev) {
            v.duplicated.push(rev);
            continue;
        }
        if rev < highest {
            v.reordered.push(rev);
        }
        highest = highest.max(rev);
        if !expected_set.contains(&rev) {
            v.unexpected.push(rev);
        }
    }
    v.missing = expected_set
        .into_iter()
        .filter(|r| !seen.contains(r))
        .collect();
    v
}

/// Shape of a watch latency run.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// Server endpoints.
    pub endpoints: Vec<String>,
    /// gRPC connections; streams are spread over them.
    pub conns: usize,
    /// Watch streams.
    pub streams: usize,
    /// Watchers on each stream.
    pub watchers_per_stream: usize,
    /// Puts per second of the writer.
    pub put_rate: f64,
    /// Number of puts.
    pub put_total: u64,
    /// Value bytes (at least 20, the put number).
    pub val_size: usize,
    /// Ask for prev_kv on every watcher.
    pub prev_kv: bool,
    /// The prefix watched; unique per run so old events do not interfere.
    pub prefix: Vec<u8>,
    /// How long a watcher may go without an event, once the writer is done, before its
    /// missing events are declared lost.
    pub settle: Duration,
}

/// A watch run's summary and each watcher's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct WatchReport {
    /// Headline: put→event latency over every event every watcher received (op
    /// `watch-event`); the writer's puts are reported as op `put`.
    pub summary: Summary,
    /// One per watcher.
    pub verdicts: Vec<Verdict>,
}

struct Shared {
    start: Instant,
    /// Nanoseconds after `start` at which put `i` was sent (0 = not yet).
    sent_ns: Vec<AtomicU64>,
}

fn seq_of(value: &[u8]) -> Option<usize> {
    let digits = value.get(..20)?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Runs the workload: creates every watcher, then writes, then waits for the watchers.
pub async fn run_watch(cfg: &WatchConfig) -> Result<WatchReport> {
    let pool = Pool::connect(&cfg.endpoints, cfg.conns).await?;
    let shared = Arc::new(Shared {
        start: Instant::now(),
        sent_ns: (0..cfg.put_total).map(|_| AtomicU64::new(0)).collect(),
    });
    let (last_rev_tx, last_rev_rx) = watch::channel(i64::MAX);
    let mut streams = Vec::new();
    for s in 0..cfg.streams.max(1) {
        streams.push(open_stream(&pool, s, cfg).await?);
    }
    let mut tasks = Vec::new();
    for (s, stream) in streams.into_iter().enumerate() {
        let shared = shared.clone();
        let last = last_rev_rx.clone();
        let settle = cfg.settle;
        tasks.push(tokio::spawn(receive(s, stream, shared, last, settle)));
    }
    let start = Instant::now();
    let (mut rec, expected) = write(&pool, cfg, &shared).await;
    let _ = last_rev_tx.send(expected.last().copied().unwrap_or(0));
    let mut verdicts = Vec::new();
    for task in tasks {
        let (r, logs) = task
            .await
            .map_err(|e| BenchError::Invalid(format!("watch receiver task: {e}")))??;
        rec.merge(&r);
        verdicts.extend(logs.iter().map(|received| verify(&expected, received)));
    }
    let elapsed = start.elapsed();
    let mut summary = rec.summary("watch-latency", elapsed);
    let bad: Vec<usize> = (0..verdicts.len())
        .filter(|&i| !verdicts[i].is_ok())
        .collect();
    let sum = |f: fn(&Verdict) -> usize| verdicts.iter().map(f).sum::<usize>() as u64;
    summary
        .counters
        .insert("watchers".into(), verdicts.len() as u64);
    summary
        .counters
        .insert("watchers ok".into(), (verdicts.len() - bad.len()) as u64);
    summary
        .counters
        .insert("puts acknowledged".into(), expected.len() as u64);
    summary
        .counters
        .insert("events missing".into(), sum(|v| v.missing.len()));
    summary
        .counters
        .insert("events duplicated".into(), sum(|v| v.duplicated.len()));
    summary
        .counters
        .insert("events reordered".into(), sum(|v| v.reordered.len()));
    summary
        .counters
        .insert("events unexpected".into(), sum(|v| v.unexpected.len()));
    summary.notes.push(if bad.is_empty() {
        format!(
            "Watch verification: all {} watchers got all {} events exactly once, in revision order.",
            verdicts.len(),
            expected.len()
        )
    } else {
        format!(
            "Watch verification FAILED for {} of {} watchers (first: watcher {}).",
            bad.len(),
            verdicts.len(),
            bad[0]
        )
    });
    summary.endpoints = cfg.endpoints.clone();
    summary.conns = cfg.conns;
    summary.clients = verdicts.len();
    summary.rate = Some(cfg.put_rate);
    Ok(WatchReport { summary, verdicts })
}

struct OpenStream {
    _requests: mpsc::Sender<WatchRequest>,
    responses: tonic::Streaming<crate::proto::etcdserverpb::WatchResponse>,
    /// watch_id → watcher index within the stream.
    ids: HashMap<i64, usize>,
}

async fn open_stream(pool: &Pool, s: usize, cfg: &WatchConfig) -> Result<OpenStream> {
    let watchers = cfg.watchers_per_stream.max(1);
    let (tx, rx) = mpsc::channel(watchers + 1);
    // Queue every create before opening the stream: a server may send the response headers
    // only with its first message, and the call returns only once they arrive.
    for _ in 0..watchers {
        let create = WatchCreateRequest {
            key: cfg.prefix.clone(),
            range_end: prefix_end(&cfg.prefix),
            prev_kv: cfg.prev_kv,
            ..Default::default()
        };
        tx.send(WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(create)),
        })
        .await
        .map_err(|_| BenchError::Invalid("watch request channel closed".into()))?;
    }
    let mut client = pool.watch(s);
    let mut responses = client
        .watch(ReceiverStream::new(rx))
        .await
        .map_err(|e| BenchError::rpc("open watch stream", e))?
        .into_inner();
    let mut ids = HashMap::new();
    for w in 0..watchers {
        // Creates on one stream are answered in order, and nothing is written yet, so the
        // next response is the next watcher's "created".
        let created = responses
            .message()
            .await
            .map_err(|e| BenchError::rpc("watch create", e))?
            .ok_or_else(|| BenchError::Invalid("watch stream ended during create".into()))?;
        if !created.created || created.canceled {
            return Err(BenchError::Invalid(format!(
                "watch create refused: {}",
                created.cancel_reason
            )));
        }
        ids.insert(created.watch_id, w);
    }
    Ok(OpenStream {
        _requests: tx,
        responses,
        ids,
    })
}

/// Receives one stream's events until every watcher on it has seen the last put's revision,
/// or, once the writer has finished, `settle` passes without an event: a server that is still
/// delivering a backlog is late, not lossy, and its lateness shows in the latencies.
async fn receive(
    s: usize,
    mut stream: OpenStream,
    shared: Arc<Shared>,
    mut last_rev: watch::Receiver<i64>,
    settle: Duration,
) -> Result<(Recorder, Vec<Vec<i64>>)> {
    let mut rec = Recorder::default();
    let mut logs: Vec<Vec<i64>> = vec![Vec::new(); stream.ids.len()];
    let mut highest = vec![0i64; stream.ids.len()];
    let mut deadline: Option<Instant> = None;
    loop {
        let target = *last_rev.borrow();
        if target != i64::MAX {
            if highest.iter().all(|&h| h >= target) {
                break;
            }
            deadline.get_or_insert_with(|| Instant::now() + settle);
        }
        let far = Instant::now() + Duration::from_secs(3600);
        let msg = tokio::select! {
            m = stream.responses.message() => m,
            _ = last_rev.changed(), if target == i64::MAX => continue,
            _ = tokio::time::sleep_until(deadline.unwrap_or(far)) => break,
        };
        let now = Instant::now();
        let resp = match msg {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e) => {
                rec.error("watch stream", &e);
                break;
            }
        };
        let Some(&w) = stream.ids.get(&resp.watch_id) else {
            continue;
        };
        if deadline.is_some() && !resp.events.is_empty() {
            deadline = Some(now + settle);
        }
        for event in resp.events {
            let Some(kv) = event.kv else { continue };
            logs[w].push(kv.mod_revision);
            highest[w] = highest[w].max(kv.mod_revision);
            rec.count("watch events", 1);
            let sent = seq_of(&kv.value)
                .and_then(|i| shared.sent_ns.get(i))
                .map(|a| a.load(Ordering::Acquire));
            match sent {
                Some(ns) if ns > 0 => {
                    let at = shared.start + Duration::from_nanos(ns);
                    rec.ok("watch-event", now.saturating_duration_since(at));
                }
                _ => rec.error_kind(
                    format!("watch-event: unknown value on stream {s}"),
                    String::from_utf8_lossy(&kv.value).into_owned(),
                ),
            }
        }
    }
    Ok((rec, logs))
}

/// Most puts the writer has in flight at once.
const WRITER_IN_FLIGHT_MAX: usize = 64;

/// The writer: `put_total` puts, returning the revisions of the acknowledged ones in
/// increasing order. With a `put_rate` it is open loop: put `i` leaves at `i / put_rate`
/// whether or not earlier puts were answered (up to [`WRITER_IN_FLIGHT_MAX`] in flight), so the
/// rate asked for is the rate offered even when one put takes longer than `1 / put_rate`
/// (a single closed-loop writer managed only ~200 puts/s against etcd here with 100
/// watchers). Without a rate it puts one after the other.
async fn write(pool: &Pool, cfg: &WatchConfig, shared: &Arc<Shared>) -> (Recorder, Vec<i64>) {
    let mut rec = Recorder::default();
    let mut revisions = Vec::with_capacity(cfg.put_total as usize);
    let slots = Arc::new(tokio::sync::Semaphore::new(WRITER_IN_FLIGHT_MAX));
    let mut puts = tokio::task::JoinSet::new();
    let start = Instant::now();
    for i in 0..cfg.put_total {
        if cfg.put_rate > 0.0 {
            tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / cfg.put_rate))
                .await;
        }
        let Ok(permit) = slots.clone().acquire_owned().await else {
            break;
        };
        let mut value = format!("{i:020}").into_bytes();
        value.resize(cfg.val_size.max(20), b'v');
        let mut key = cfg.prefix.clone();
        key.extend_from_slice(format!("{}", i % 64).as_bytes());
        let mut kv = pool.kv(0);
        let shared = shared.clone();
        let put = async move {
            let _permit = permit;
            let sent = Instant::now();
            let ns =
                u64::try_from(sent.duration_since(shared.start).as_nanos()).unwrap_or(u64::MAX);
            if let Some(slot) = shared.sent_ns.get(i as usize) {
                slot.store(ns.max(1), Ordering::Release);
            }
            let r = kv
                .put(PutRequest {
                    key,
                    value,
                    ..Default::default()
                })
                .await;
            (
                sent.elapsed(),
                r.map(|r| r.into_inner().header.map_or(0, |h| h.revision)),
            )
        };
        if cfg.put_rate > 0.0 {
            puts.spawn(put);
        } else {
            record_put(&mut rec, &mut revisions, put.await);
        }
    }
    while let Some(done) = puts.join_next().await {
        match done {
            Ok(outcome) => record_put(&mut rec, &mut revisions, outcome),
            Err(e) => rec.error_kind("put: task".into(), e.to_string()),
        }
    }
    revisions.sort_unstable();
    (rec, revisions)
}

fn record_put(
    rec: &mut Recorder,
    revisions: &mut Vec<i64>,
    (latency, outcome): (Duration, std::result::Result<i64, tonic::Status>),
) {
    match outcome {
        Ok(rev) => {
            rec.ok_side("put", latency);
            revisions.push(rev);
        }
        Err(s) => rec.error("put", &s),
    }
}
