//! Prometheus metrics, with etcd's names, types, help texts and buckets where etcd has the
//! metric (etcd 3.5: `server/etcdserver/metrics.go`, `server/mvcc/metrics.go`,
//! `server/wal/metrics.go`, `server/mvcc/backend/metrics.go`, go-grpc-prometheus, the Go
//! process collector), plus Strata's own `strata_*`.
//!
//! Counters are process-wide atomics in one static, [`METRICS`], as etcd's live in
//! Prometheus' default registry: the hot paths pay one relaxed atomic add. Gauges that the
//! node already knows (leader, sizes, revisions) are read when `/metrics` is scraped. The WAL
//! and the engine report through the function hooks installed by [`install_storage_hooks`].
//! The text is the exposition format 0.0.4.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use strata_raftnode::RaftNode;

use crate::ETCD_VERSION;

/// A histogram with fixed upper bounds, in integer units (nanoseconds, bytes, records),
/// exposed divided by `per_unit` (1e9 turns nanoseconds into etcd's seconds).
pub(crate) struct Histogram<const N: usize> {
    bounds: [u64; N],
    per_unit: f64,
    /// Observations per bucket (not cumulative; the last one is `> bounds[N-1]`).
    buckets: [AtomicU64; N],
    overflow: AtomicU64,
    sum: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    const fn new(bounds: [u64; N], per_unit: f64) -> Self {
        Histogram {
            bounds,
            per_unit,
            buckets: [const { AtomicU64::new(0) }; N],
            overflow: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }

    /// Records one observation of `v` units.
    pub(crate) fn observe(&self, v: u64) {
        // At most a few dozen bounds: a linear scan beats a binary search here.
        match self.bounds.iter().position(|b| v <= *b) {
            Some(i) => self.buckets[i].fetch_add(1, Ordering::Relaxed),
            None => self.overflow.fetch_add(1, Ordering::Relaxed),
        };
        self.sum.fetch_add(v, Ordering::Relaxed);
    }

    fn observe_duration(&self, d: Duration) {
        self.observe(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Writes `_bucket` (cumulative, ending in `+Inf`), `_sum` and `_count`. The count is the
    /// `+Inf` bucket, so the two always agree even while observations race the scrape.
    fn write(&self, out: &mut String, name: &str, help: &str) {
        header(out, name, help, "histogram");
        let mut cumulative = 0u64;
        for (b, n) in self.bounds.iter().zip(&self.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            let le = *b as f64 / self.per_unit;
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        cumulative += self.overflow.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum = self.sum.load(Ordering::Relaxed) as f64 / self.per_unit;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

/// `start * factor^i` for `i < N` (Prometheus' `ExponentialBuckets`).
const fn exponential<const N: usize>(start: u64, factor: u64) -> [u64; N] {
    let mut out = [0u64; N];
    let mut i = 0;
    let mut v = start;
    while i < N {
        out[i] = v;
        v *= factor;
        i += 1;
    }
    out
}

const MS: u64 = 1_000_000;
const NANOS_PER_SECOND: f64 = 1e9;

/// gRPC call kinds, named as go-grpc-prometheus names them.
#[derive(Clone, Copy)]
enum GrpcType {
    Unary,
    ServerStream,
    BidiStream,
}

impl GrpcType {
    fn name(self) -> &'static str {
        match self {
            GrpcType::Unary => "unary",
            GrpcType::ServerStream => "server_stream",
            GrpcType::BidiStream => "bidi_stream",
        }
    }
}

/// Every method of the services Strata serves (`lib.rs` registers KV, Watch, Lease, Cluster
/// and Maintenance), as go-grpc-prometheus pre-registers them: each has its counters from
/// the start, at zero. A service added to the server adds its rows here.
const METHODS: [(&str, &str, GrpcType); 24] = [
    ("etcdserverpb.KV", "Range", GrpcType::Unary),
    ("etcdserverpb.KV", "Put", GrpcType::Unary),
    ("etcdserverpb.KV", "DeleteRange", GrpcType::Unary),
    ("etcdserverpb.KV", "Txn", GrpcType::Unary),
    ("etcdserverpb.KV", "Compact", GrpcType::Unary),
    ("etcdserverpb.Watch", "Watch", GrpcType::BidiStream),
    ("etcdserverpb.Lease", "LeaseGrant", GrpcType::Unary),
    ("etcdserverpb.Lease", "LeaseRevoke", GrpcType::Unary),
    ("etcdserverpb.Lease", "LeaseKeepAlive", GrpcType::BidiStream),
    ("etcdserverpb.Lease", "LeaseTimeToLive", GrpcType::Unary),
    ("etcdserverpb.Lease", "LeaseLeases", GrpcType::Unary),
    ("etcdserverpb.Cluster", "MemberAdd", GrpcType::Unary),
    ("etcdserverpb.Cluster", "MemberRemove", GrpcType::Unary),
    ("etcdserverpb.Cluster", "MemberUpdate", GrpcType::Unary),
    ("etcdserverpb.Cluster", "MemberList", GrpcType::Unary),
    ("etcdserverpb.Cluster", "MemberPromote", GrpcType::Unary),
    ("etcdserverpb.Maintenance", "Alarm", GrpcType::Unary),
    ("etcdserverpb.Maintenance", "Status", GrpcType::Unary),
    ("etcdserverpb.Maintenance", "Defragment", GrpcType::Unary),
    ("etcdserverpb.Maintenance", "Hash", GrpcType::Unary),
    ("etcdserverpb.Maintenance", "HashKV", GrpcType::Unary),
    (
        "etcdserverpb.Maintenance",
        "Snapshot",
        GrpcType::ServerStream,
    ),
    ("etcdserverpb.Maintenance", "MoveLeader", GrpcType::Unary),
    ("etcdserverpb.Maintenance", "Downgrade", GrpcType::Unary),
];

/// gRPC status code names as grpc-go's `codes.Code.String()` spells them, by code number.
const CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// The code recorded for a call whose response stream ended without a status (the client
/// went away): what grpc-go reports for a handler whose context was cancelled.
pub(crate) const CODE_CANCELED: u32 = 1;
/// The code recorded for a status that is not a number tonic would send.
pub(crate) const CODE_UNKNOWN: u32 = 2;

/// The index of a gRPC method in [`METHODS`], from the request path `/service/method`.
pub(crate) fn grpc_method(path: &str) -> Option<usize> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    METHODS
        .iter()
        .position(|(s, m, _)| *s == service && *m == method)
}

/// go-grpc-prometheus' server counters.
struct GrpcCounters {
    started: [AtomicU64; METHODS.len()],
    handled: [[AtomicU64; CODES.len()]; METHODS.len()],
}

/// Every counter and histogram Strata keeps; one per process.
pub(crate) struct Metrics {
    wal_fsync: Histogram<14>,
    wal_write_bytes: AtomicU64,
    wal_batch_bytes: Histogram<16>,
    wal_batch_records: Histogram<12>,
    backend_commit: Histogram<14>,
    backend_defrag: Histogram<13>,
    proposals_pending: AtomicI64,
    proposals_failed: AtomicU64,
    health_success: AtomicU64,
    health_failures: AtomicU64,
    range_total: AtomicU64,
    put_total: AtomicU64,
    delete_total: AtomicU64,
    txn_total: AtomicU64,
    compactions: AtomicU64,
    grpc: GrpcCounters,
    grpc_received_bytes: AtomicU64,
    grpc_sent_bytes: AtomicU64,
}

/// The process's metrics.
pub(crate) static METRICS: Metrics = Metrics {
    // etcd: ExponentialBuckets(0.001, 2, 14) seconds for both.
    wal_fsync: Histogram::new(exponential(MS, 2), NANOS_PER_SECOND),
    wal_write_bytes: AtomicU64::new(0),
    // 4 KiB .. 128 MiB: a batch is at least one 4 KiB-aligned write.
    wal_batch_bytes: Histogram::new(exponential(4096, 2), 1.0),
    // 1 .. 2048 records per batch.
    wal_batch_records: Histogram::new(exponential(1, 2), 1.0),
    backend_commit: Histogram::new(exponential(MS, 2), NANOS_PER_SECOND),
    // etcd: ExponentialBuckets(0.1, 2, 13) seconds.
    backend_defrag: Histogram::new(exponential(100 * MS, 2), NANOS_PER_SECOND),
    proposals_pending: AtomicI64::new(0),
    proposals_failed: AtomicU64::new(0),
    health_success: AtomicU64::new(0),
    health_failures: AtomicU64::new(0),
    range_total: AtomicU64::new(0),
    put_total: AtomicU64::new(0),
    delete_total: AtomicU64::new(0),
    txn_total: AtomicU64::new(0),
    compactions: AtomicU64::new(0),
    grpc: GrpcCounters {
        started: [const { AtomicU64::new(0) }; METHODS.len()],
        handled: [const { [const { AtomicU64::new(0) }; CODES.len()] }; METHODS.len()],
    },
    grpc_received_bytes: AtomicU64::new(0),
    grpc_sent_bytes: AtomicU64::new(0),
};

/// Points the WAL's and the engine's observation hooks at [`METRICS`]. Idempotent.
pub fn install_storage_hooks() {
    strata_wal::observe::set_batch_observer(|b| {
        METRICS.wal_fsync.observe_duration(b.write_sync);
        METRICS
            .wal_write_bytes
            .fetch_add(b.bytes, Ordering::Relaxed);
        METRICS.wal_batch_bytes.observe(b.bytes);
        METRICS.wal_batch_records.observe(b.records);
    });
    strata_engine::observe::set_durable_commit_observer(|d| {
        METRICS.backend_commit.observe_duration(d);
    });
}

impl Metrics {
    /// A proposal entered raft; the returned guard counts it pending until dropped.
    pub(crate) fn proposal(&'static self) -> Pending {
        self.proposals_pending.fetch_add(1, Ordering::Relaxed);
        Pending(self)
    }

    pub(crate) fn proposal_failed(&self) {
        self.proposals_failed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn health(&self, ok: bool) {
        let c = if ok {
            &self.health_success
        } else {
            &self.health_failures
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request's operations as etcd's mvcc layer does: every range, put and delete,
    /// and a txn when it held more than one operation.
    pub(crate) fn ops(&self, ranges: u64, puts: u64, deletes: u64) {
        let add = |c: &AtomicU64, n: u64| {
            if n > 0 {
                c.fetch_add(n, Ordering::Relaxed);
            }
        };
        add(&self.range_total, ranges);
        add(&self.put_total, puts);
        add(&self.delete_total, deletes);
        if ranges + puts + deletes > 1 {
            self.txn_total.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn compaction(&self) {
        self.compactions.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn defrag(&self, took: Duration) {
        self.backend_defrag.observe_duration(took);
    }

    pub(crate) fn grpc_started(&self, method: usize) {
        if let Some(c) = self.grpc.started.get(method) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn grpc_handled(&self, method: usize, code: u32) {
        let code = if (code as usize) < CODES.len() {
            code as usize
        } else {
            CODE_UNKNOWN as usize
        };
        if let Some(c) = self.grpc.handled.get(method).and_then(|m| m.get(code)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn client_bytes(&self, received: u64, sent: u64) {
        if received > 0 {
            self.grpc_received_bytes
                .fetch_add(received, Ordering::Relaxed);
        }
        if sent > 0 {
            self.grpc_sent_bytes.fetch_add(sent, Ordering::Relaxed);
        }
    }
}

/// Counts one proposal as pending while it lives.
pub(crate) struct Pending(&'static Metrics);

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.proposals_pending.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What `/metrics` reports beside the counters: settings fixed at start.
#[derive(Clone, Debug)]
pub struct MetricsInfo {
    /// `--quota-backend-bytes` as in force (etcd reports its 2 GiB default when 0 is given).
    pub quota_backend_bytes: u64,
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Metric families being rendered, each with its name for sorting.
struct Families(Vec<(&'static str, String)>);

impl Families {
    fn add(&mut self, name: &'static str, f: impl FnOnce(&mut String)) {
        let mut s = String::new();
        f(&mut s);
        self.0.push((name, s));
    }

    fn scalar(&mut self, name: &'static str, help: &str, kind: &str, v: impl std::fmt::Display) {
        self.add(name, |o| {
            header(o, name, help, kind);
            let _ = writeln!(o, "{name} {v}");
        });
    }

    fn gauge(&mut self, name: &'static str, help: &str, v: f64) {
        self.scalar(name, help, "gauge", v);
    }

    fn counter(&mut self, name: &'static str, help: &str, c: &AtomicU64) {
        self.scalar(name, help, "counter", c.load(Ordering::Relaxed));
    }

    /// A gauge with one label set to `value` and the sample 1 (etcd's identity gauges).
    fn info(&mut self, name: &'static str, help: &str, label: &str, value: &str) {
        self.add(name, |o| {
            header(o, name, help, "gauge");
            let _ = writeln!(o, "{name}{{{label}=\"{value}\"}} 1");
        });
    }

    fn histogram<const N: usize>(&mut self, name: &'static str, help: &str, h: &Histogram<N>) {
        self.add(name, |o| h.write(o, name, help));
    }
}

/// The exposition text (format 0.0.4), metric families in name order as Go's client sorts
/// them.
pub(crate) fn render(node: &RaftNode, info: &MetricsInfo) -> String {
    let mut f = Families(Vec::with_capacity(64));
    disk(&mut f);
    mvcc(&mut f, node);
    server(&mut f, node, info);
    grpc(&mut f);
    strata(&mut f, node);
    process(&mut f);
    f.0.sort_by(|a, b| a.0.cmp(b.0));
    f.0.into_iter().map(|(_, s)| s).collect()
}

fn disk(f: &mut Families) {
    let m = &METRICS;
    f.histogram(
        "etcd_disk_wal_fsync_duration_seconds",
        "The latency distributions of fsync called by WAL.",
        &m.wal_fsync,
    );
    // A gauge in etcd, though it only grows.
    f.scalar(
        "etcd_disk_wal_write_bytes_total",
        "Total number of bytes written in WAL.",
        "gauge",
        m.wal_write_bytes.load(Ordering::Relaxed),
    );
    f.histogram(
        "etcd_disk_backend_commit_duration_seconds",
        "The latency distributions of commit called by backend.",
        &m.backend_commit,
    );
    f.histogram(
        "etcd_disk_backend_defrag_duration_seconds",
        "The latency distribution of backend defragmentation.",
        &m.backend_defrag,
    );
}

fn mvcc(f: &mut Families, node: &RaftNode) {
    let m = &METRICS;
    let store = node.store();
    if let Ok(db) = store.db().stats() {
        // `free_pages` already counts the pages pending reuse.
        let in_use = db.page_count.saturating_sub(db.free_pages) * db.page_size as u64;
        f.gauge(
            "etcd_mvcc_db_total_size_in_bytes",
            "Total size of the underlying database physically allocated in bytes.",
            // etcd reports the last commit's page high-water mark (bbolt's Tx.Size), which
            // the quota is compared with; the file runs ahead of it by a growth step.
            (db.page_count * db.page_size as u64) as f64,
        );
        f.gauge(
            "strata_db_file_size_bytes",
            "Length of the database file, including space preallocated for growth.",
            db.file_bytes as f64,
        );
        f.gauge(
            "etcd_mvcc_db_total_size_in_use_in_bytes",
            "Total size of the underlying database logically in use in bytes.",
            in_use as f64,
        );
    }
    f.counter(
        "etcd_mvcc_range_total",
        "Total number of ranges seen by this member.",
        &m.range_total,
    );
    f.counter(
        "etcd_mvcc_put_total",
        "Total number of puts seen by this member.",
        &m.put_total,
    );
    f.counter(
        "etcd_mvcc_delete_total",
        "Total number of deletes seen by this member.",
        &m.delete_total,
    );
    f.counter(
        "etcd_mvcc_txn_total",
        "Total number of txns seen by this member.",
        &m.txn_total,
    );
    if let Ok(rev) = store.revision() {
        f.gauge(
            "etcd_debugging_mvcc_current_revision",
            "The current revision of store.",
            rev as f64,
        );
    }
    if let Ok(rev) = store.compacted() {
        f.gauge(
            "etcd_debugging_mvcc_compact_revision",
            "The revision of the last compaction in store.",
            rev as f64,
        );
    }
}

fn server(f: &mut Families, node: &RaftNode, info: &MetricsInfo) {
    let m = &METRICS;
    let st = node.status();
    let b = |v: bool| if v { 1.0 } else { 0.0 };
    f.gauge(
        "etcd_server_has_leader",
        "Whether or not a leader exists. 1 is existence, 0 is not.",
        b(st.leader.is_some()),
    );
    f.gauge(
        "etcd_server_is_leader",
        "Whether or not this member is a leader. 1 if is, 0 otherwise.",
        b(node.is_leader()),
    );
    f.gauge(
        "etcd_server_is_learner",
        "Whether or not this member is a learner. 1 if is, 0 otherwise.",
        0.0,
    );
    f.scalar(
        "etcd_server_leader_changes_seen_total",
        "The number of leader changes seen.",
        "counter",
        node.leader_changes(),
    );
    // One member commits an entry as soon as it is durable in its own log: the last log
    // index is the commit index (etcd reports raft's commit index, a gauge).
    f.gauge(
        "etcd_server_proposals_committed_total",
        "The total number of consensus proposals committed.",
        st.raft_index as f64,
    );
    f.gauge(
        "etcd_server_proposals_applied_total",
        "The total number of consensus proposals applied.",
        st.applied_index as f64,
    );
    f.gauge(
        "etcd_server_proposals_pending",
        "The current number of pending proposals to commit.",
        m.proposals_pending.load(Ordering::Relaxed).max(0) as f64,
    );
    f.counter(
        "etcd_server_proposals_failed_total",
        "The total number of failed proposals seen.",
        &m.proposals_failed,
    );
    f.gauge(
        "etcd_server_quota_backend_bytes",
        "Current backend storage quota size in bytes.",
        info.quota_backend_bytes as f64,
    );
    f.counter(
        "etcd_server_health_success",
        "The total number of successful health checks",
        &m.health_success,
    );
    f.counter(
        "etcd_server_health_failures",
        "The total number of failed health checks",
        &m.health_failures,
    );
    f.info(
        "etcd_server_version",
        "Which version is running. 1 for 'server_version' label with current version.",
        "server_version",
        ETCD_VERSION,
    );
    f.info(
        "etcd_server_id",
        "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
        "server_id",
        &format!("{:x}", node.member_id()),
    );
    f.info(
        "etcd_cluster_version",
        "Which version is running. 1 for 'cluster_version' label with current cluster version",
        "cluster_version",
        "3.5",
    );
}

fn grpc(f: &mut Families) {
    let m = &METRICS;
    // etcd counts gRPC message bytes; Strata counts the client HTTP/2 connections' bytes,
    // framing included.
    f.counter(
        "etcd_network_client_grpc_received_bytes_total",
        "The total number of bytes received from grpc clients.",
        &m.grpc_received_bytes,
    );
    f.counter(
        "etcd_network_client_grpc_sent_bytes_total",
        "The total number of bytes sent to grpc clients.",
        &m.grpc_sent_bytes,
    );
    f.add("grpc_server_started_total", |o| write_grpc_started(o, m));
    f.add("grpc_server_handled_total", |o| write_grpc_handled(o, m));
}

fn strata(f: &mut Families, node: &RaftNode) {
    let m = &METRICS;
    f.histogram(
        "strata_wal_batch_bytes",
        "Bytes per WAL write+fdatasync batch.",
        &m.wal_batch_bytes,
    );
    f.histogram(
        "strata_wal_batch_records",
        "Records per WAL write+fdatasync batch.",
        &m.wal_batch_records,
    );
    f.counter(
        "strata_compactions_total",
        "Compactions applied (each also removes the compacted revisions in the background).",
        &m.compactions,
    );
    if let Ok(db) = node.store().db().stats() {
        f.gauge(
            "strata_backend_open_read_transactions",
            "Read transactions open on the database.",
            db.readers as f64,
        );
        f.gauge(
            "strata_backend_free_pages",
            "Free pages in the database file (reused before the file grows; defragment returns them).",
            db.free_pages as f64,
        );
    }
}

fn process(f: &mut Families) {
    let Some(p) = process_stats() else {
        return;
    };
    f.scalar(
        "process_cpu_seconds_total",
        "Total user and system CPU time spent in seconds.",
        "counter",
        p.cpu_seconds,
    );
    f.gauge(
        "process_open_fds",
        "Number of open file descriptors.",
        p.open_fds as f64,
    );
    if let Some(max) = p.max_fds {
        f.gauge(
            "process_max_fds",
            "Maximum number of open file descriptors.",
            max as f64,
        );
    }
    f.gauge(
        "process_resident_memory_bytes",
        "Resident memory size in bytes.",
        p.resident_bytes as f64,
    );
    f.gauge(
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes.",
        p.virtual_bytes as f64,
    );
    f.gauge(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        p.start_time_seconds,
    );
}

fn write_grpc_started(out: &mut String, m: &Metrics) {
    header(
        out,
        "grpc_server_started_total",
        "Total number of RPCs started on the server.",
        "counter",
    );
    for ((service, method, kind), c) in METHODS.iter().zip(&m.grpc.started) {
        let _ = writeln!(
            out,
            "grpc_server_started_total{{grpc_method=\"{method}\",grpc_service=\"{service}\",grpc_type=\"{}\"}} {}",
            kind.name(),
            c.load(Ordering::Relaxed)
        );
    }
}

fn write_grpc_handled(out: &mut String, m: &Metrics) {
    header(
        out,
        "grpc_server_handled_total",
        "Total number of RPCs completed on the server, regardless of success or failure.",
        "counter",
    );
    for ((service, method, kind), codes) in METHODS.iter().zip(&m.grpc.handled) {
        for (code, c) in CODES.iter().zip(codes) {
            let _ = writeln!(
                out,
                "grpc_server_handled_total{{grpc_code=\"{code}\",grpc_method=\"{method}\",grpc_service=\"{service}\",grpc_type=\"{}\"}} {}",
                kind.name(),
                c.load(Ordering::Relaxed)
            );
        }
    }
}

/// What the Go process collector reports, from `/proc` (Linux).
struct ProcessStats {
    cpu_seconds: f64,
    open_fds: u64,
    max_fds: Option<u64>,
    resident_bytes: u64,
    virtual_bytes: u64,
    start_time_seconds: f64,
}

/// Linux's `USER_HZ`, the unit of `/proc/self/stat` times, is 100 on every architecture
/// Strata builds for (reading `sysconf(_SC_CLK_TCK)` would need `unsafe`).
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

fn process_stats() -> Option<ProcessStats> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: fields after it
    // are split from the last ')'.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): field n is f[n - 3].
    let num = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    let cpu_seconds = (num(14)? + num(15)?) as f64 / CLOCK_TICKS_PER_SECOND;
    let start_ticks = num(22)?;
    let virtual_bytes = num(23)?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let resident_bytes = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024);
    let boot_seconds = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse::<u64>().ok())?;
    let open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    let max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse::<u64>().ok())
        });
    Some(ProcessStats {
        cpu_seconds,
        open_fds,
        max_fds,
        resident_bytes,
        virtual_bytes,
        start_time_seconds: boot_seconds as f64 + start_ticks as f64 / CLOCK_TICKS_PER_SECOND,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::{SystemTime, UNIX_EPOCH};

    fn now_seconds() -> f64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    }

    #[test]
    fn exponential_bounds_are_etcds() {
        let b: [u64; 14] = exponential(MS, 2);
        assert_eq!(b[0], 1_000_000);
        assert_eq!(b[13], 8_192_000_000);
    }

    #[test]
    fn histogram_text_is_cumulative_and_ends_in_count() {
        let h: Histogram<3> = Histogram::new([10, 20, 40], 1.0);
        for v in [1, 10, 11, 39, 41, 1000] {
            h.observe(v);
        }
        let mut s = String::new();
        h.write(&mut s, "x", "help");
        let want = "# HELP x help\n# TYPE x histogram\nx_bucket{le=\"10\"} 2\n\
                    x_bucket{le=\"20\"} 3\nx_bucket{le=\"40\"} 4\nx_bucket{le=\"+Inf\"} 6\n\
                    x_sum 1102\nx_count 6\n";
        assert_eq!(s, want);
    }

    #[test]
    fn seconds_buckets_print_as_etcd_does() {
        let h: Histogram<14> = Histogram::new(exponential(MS, 2), NANOS_PER_SECOND);
        let mut s = String::new();
        h.write(&mut s, "f", "h");
        assert!(s.contains("f_bucket{le=\"0.001\"} 0\n"), "{s}");
        assert!(s.contains("f_bucket{le=\"8.192\"} 0\n"), "{s}");
    }

    #[test]
    fn grpc_methods_are_found_by_path() {
        assert_eq!(grpc_method("/etcdserverpb.KV/Range"), Some(0));
        assert!(grpc_method("/etcdserverpb.Watch/Watch").is_some());
        assert_eq!(grpc_method("/etcdserverpb.Auth/UserAdd"), None);
        assert_eq!(grpc_method("/health"), None);
    }

    #[test]
    fn process_stats_read_proc() {
        let p = process_stats().unwrap();
        assert!(p.resident_bytes > 0);
        assert!(p.open_fds > 0);
        assert!(p.start_time_seconds > 1e9 && p.start_time_seconds <= now_seconds() + 1.0);
    }
}
