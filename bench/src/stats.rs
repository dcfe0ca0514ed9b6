//! Latency recording (HDR histograms) and the summary a run produces.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Largest latency a histogram records; slower requests are clamped to it (and counted).
const LATENCY_MAX_US: u64 = 60_000_000;

/// One client's record of a run: a latency histogram per operation kind and failures by kind.
///
/// Each client owns one and they are merged at the end, so recording takes no lock.
#[derive(Debug, Clone)]
pub struct Recorder {
    /// Latency of every successful request, in microseconds.
    all: Histogram<u64>,
    per_op: BTreeMap<&'static str, Histogram<u64>>,
    errors: BTreeMap<String, ErrorCount>,
    /// Counters that are not latencies (conflicts, retries, events).
    counters: BTreeMap<&'static str, u64>,
}

/// How many failures of one kind, with one message as an example.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ErrorCount {
    /// Number of failed requests of this kind.
    pub count: u64,
    /// The first message seen.
    pub sample: String,
}

#[expect(
    clippy::expect_used,
    reason = "the bounds are constants that satisfy the constructor's rules (low >= 1, high >= 2 * low, sigfig <= 5)"
)]
fn new_histogram() -> Histogram<u64> {
    // Three significant digits over 1 µs..60 s: a few tens of KiB per histogram.
    Histogram::new_with_bounds(1, LATENCY_MAX_US, 3).expect("constant histogram bounds")
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            all: new_histogram(),
            per_op: BTreeMap::new(),
            errors: BTreeMap::new(),
            counters: BTreeMap::new(),
        }
    }
}

impl Recorder {
    /// Records a successful request of kind `op` that took `latency`.
    pub fn ok(&mut self, op: &'static str, latency: Duration) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, LATENCY_MAX_US);
        self.all.saturating_record(us);
        self.per_op
            .entry(op)
            .or_insert_with(new_histogram)
            .saturating_record(us);
    }

    /// Records a side request (e.g. the writer's puts in the watch workload) under its own
    /// kind only, leaving the headline latency and count to the main measurement.
    pub fn ok_side(&mut self, op: &'static str, latency: Duration) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, LATENCY_MAX_US);
        self.per_op
            .entry(op)
            .or_insert_with(new_histogram)
            .saturating_record(us);
    }

    /// Records a failed request of kind `op`.
    pub fn error(&mut self, op: &'static str, status: &tonic::Status) {
        let kind = format!("{op}: {:?}", status.code());
        let e = self.errors.entry(kind).or_insert_with(|| ErrorCount {
            count: 0,
            sample: status.message().to_owned(),
        });
        e.count += 1;
    }

    /// Records a failure that is not a gRPC status (a verification failure, a bad response).
    pub fn error_kind(&mut self, kind: String, sample: String) {
        let e = self
            .errors
            .entry(kind)
            .or_insert(ErrorCount { count: 0, sample });
        e.count += 1;
    }

    /// Adds `n` to a named counter.
    pub fn count(&mut self, name: &'static str, n: u64) {
        *self.counters.entry(name).or_insert(0) += n;
    }

    /// Number of successful requests.
    pub fn ok_count(&self) -> u64 {
        self.all.len()
    }

    /// Number of failed requests.
    pub fn error_count(&self) -> u64 {
        self.errors.values().map(|e| e.count).sum()
    }

    /// Adds everything `other` recorded.
    pub fn merge(&mut self, other: &Recorder) {
        // Histograms built by new_histogram share bounds, so add cannot fail; if it ever did,
        // the loss shows as a count mismatch in the summary rather than a crash.
        let _ = self.all.add(&other.all);
        for (op, h) in &other.per_op {
            let _ = self.per_op.entry(op).or_insert_with(new_histogram).add(h);
        }
        for (kind, e) in &other.errors {
            let mine = self.errors.entry(kind.clone()).or_insert(ErrorCount {
                count: 0,
                sample: e.sample.clone(),
            });
            mine.count += e.count;
        }
        for (name, n) in &other.counters {
            *self.counters.entry(name).or_insert(0) += n;
        }
    }

    /// Summarises the run: `elapsed` is the wall time the load took.
    pub fn summary(&self, workload: &str, elapsed: Duration) -> Summary {
        let secs = elapsed.as_secs_f64().max(1e-9);
        Summary {
            workload: workload.to_owned(),
            requests: self.ok_count(),
            errors: self.error_count(),
            duration_s: elapsed.as_secs_f64(),
            throughput: self.ok_count() as f64 / secs,
            latency: Latency::of(&self.all),
            per_op: self
                .per_op
                .iter()
                .map(|(op, h)| {
                    let s = OpSummary {
                        count: h.len(),
                        throughput: h.len() as f64 / secs,
                        latency: Latency::of(h),
                    };
                    ((*op).to_owned(), s)
                })
                .collect(),
            errors_by_kind: self.errors.clone(),
            counters: self
                .counters
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            cdf: cdf(&self.all),
            ..Summary::default()
        }
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Latency {
    /// Fastest request.
    pub min_ms: f64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Slowest request.
    pub max_ms: f64,
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

impl Latency {
    /// Percentiles of a histogram in microseconds; all zero when it is empty.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            min_ms: ms(h.min()),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

/// Points (quantile, latency ms) of the latency distribution, for CDF plots.
fn cdf(h: &Histogram<u64>) -> Vec<[f64; 2]> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut qs: Vec<f64> = (0..100).map(|i| f64::from(i) / 100.0).collect();
    qs.extend([0.995, 0.999, 0.9999, 1.0]);
    qs.into_iter()
        .map(|q| [q, ms(h.value_at_quantile(q))])
        .collect()
}

/// One operation kind's share of a run.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct OpSummary {
    /// Successful requests.
    pub count: u64,
    /// Successful requests per second.
    pub throughput: f64,
    /// Their latency.
    pub latency: Latency,
}

/// CPU time and memory of the server process during a run, read from `/proc`.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct ServerUsage {
    /// The process watched.
    pub pid: u32,
    /// User + system CPU seconds the server used during the run.
    pub cpu_s: f64,
    /// CPU milliseconds per successful request.
    pub cpu_ms_per_request: f64,
    /// Peak resident set size over the process's life (`VmHWM`), bytes.
    pub peak_rss_bytes: u64,
}

/// The result of one workload run: what machines read (JSON) and people read (markdown).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Summary {
    /// Workload name (`put`, `range-l`, `watch-latency`, `kube`, ...).
    pub workload: String,
    /// Endpoints the load went to.
    pub endpoints: Vec<String>,
    /// gRPC connections.
    pub conns: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Open-loop rate in requests per second; `None` for closed loop.
    pub rate: Option<f64>,
    /// Successful requests.
    pub requests: u64,
    /// Failed requests.
    pub errors: u64,
    /// Wall time of the load, seconds.
    pub duration_s: f64,
    /// Successful requests per second.
    pub throughput: f64,
    /// Latency of successful requests. In open loop it is measured from each request's
    /// scheduled send time, so a stall that delays sending shows up.
    pub latency: Latency,
    /// The same per operation kind (mixed and kube workloads have several).
    pub per_op: BTreeMap<String, OpSummary>,
    /// Failed requests by `operation: gRPC code`.
    pub errors_by_kind: BTreeMap<String, ErrorCount>,
    /// Other counts: txn conflicts, retries, watch events, verification results.
    pub counters: BTreeMap<String, u64>,
    /// Server CPU and memory, when its PID was given.
    pub server: Option<ServerUsage>,
    /// Latency distribution points `[quantile, ms]`.
    pub cdf: Vec<[f64; 2]>,
    /// Extra notes (e.g. the watch verifier's findings).
    pub notes: Vec<String>,
}
