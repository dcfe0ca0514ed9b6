//! `compare`: one workload matrix against several systems (etcd, Strata, the ceiling) in
//! alternating rounds, with medians over rounds, ratios, and an HTML/SVG report.
//!
//! Machine drift cancels because every cell (workload × clients) runs once per system per
//! round, and the order of the systems reverses every round (A B C, C B A, A B C, ...).
//! A system that cannot be started, or a workload a system does not serve, is reported as
//! "not run: reason" in every output, never left out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::cli::{Common, KeyArgs, run_kv};
use crate::client::Pool;
use crate::error::{BenchError, Result};
use crate::kube::{KubeConfig, run_kube};
use crate::kv::{KvOp, prefill};
use crate::process::{EtcdLike, ServerProcess, start_ceiling};
use crate::report;
use crate::stats::Summary;
use crate::watch::{WatchConfig, run_watch};

/// A workload of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Workload {
    /// `put`.
    Put,
    /// `range --consistency l`.
    RangeL,
    /// `range --consistency s`.
    RangeS,
    /// `txn-put`.
    TxnPut,
    /// `watch-latency` with the clients as watchers.
    Watch,
    /// `kube`.
    Kube,
}

impl Workload {
    /// Its name in flags and reports.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Put => "put",
            Workload::RangeL => "range-l",
            Workload::RangeS => "range-s",
            Workload::TxnPut => "txn-put",
            Workload::Watch => "watch",
            Workload::Kube => "kube",
        }
    }

    /// Parses [`Workload::name`].
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "put" => Workload::Put,
            "range-l" | "range" => Workload::RangeL,
            "range-s" => Workload::RangeS,
            "txn-put" => Workload::TxnPut,
            "watch" => Workload::Watch,
            "kube" => Workload::Kube,
            other => return Err(BenchError::Invalid(format!("unknown workload {other:?}"))),
        })
    }
}

/// Where a system under test comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Start this binary with etcd's flags.
    Start(EtcdLike),
    /// Use a running server.
    Attach {
        /// Its endpoints.
        endpoints: Vec<String>,
        /// Its PID, for CPU and memory readings.
        pid: Option<u32>,
    },
    /// This bench's own ceiling server, started as a child process.
    Ceiling(PathBuf),
    /// Not available; the reason is reported.
    Unavailable(String),
}

/// A system under test.
#[derive(Debug, Clone)]
pub struct SystemSpec {
    /// Name in reports (`etcd`, `strata`, `ceiling`).
    pub name: String,
    /// How to reach it.
    pub source: Source,
}

/// The matrix and how to run it.
#[derive(Debug, Clone)]
pub struct CompareConfig {
    /// Systems, in the order of odd rounds.
    pub systems: Vec<SystemSpec>,
    /// Workloads.
    pub workloads: Vec<Workload>,
    /// Client counts.
    pub clients: Vec<usize>,
    /// Connections per run; 0 means one per ten clients (at least 1, at most 100).
    pub conns: usize,
    /// Length of each run.
    pub duration: Duration,
    /// Rounds; every cell runs once per system per round.
    pub rounds: usize,
    /// Key shape of the KV workloads.
    pub keys: KeyArgs,
    /// Puts per second of the `watch` workload's writer.
    pub watch_put_rate: f64,
    /// Where the report goes.
    pub out_dir: PathBuf,
}

/// One cell's result for one system.
#[derive(Debug, Clone, Serialize)]
pub struct CellResult {
    /// Each round's summary (rounds that ran).
    pub rounds: Vec<Summary>,
    /// Why it did not run or was not served, if so.
    pub not_run: Option<String>,
    /// Medians over rounds.
    pub median: Medians,
}

/// Medians over rounds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Medians {
    /// Successful requests per second.
    pub throughput: f64,
    /// p50 latency, ms.
    pub p50_ms: f64,
    /// p99 latency, ms.
    pub p99_ms: f64,
    /// p99.9 latency, ms.
    pub p999_ms: f64,
    /// Server CPU ms per request (0 when unknown).
    pub cpu_ms_per_request: f64,
    /// Server peak RSS, MiB (0 when unknown).
    pub peak_rss_mib: f64,
}

/// Everything `compare` measured.
#[derive(Debug, Clone, Serialize)]
pub struct CompareReport {
    /// System names in order.
    pub systems: Vec<String>,
    /// Systems that did not run at all, with the reason.
    pub not_run: BTreeMap<String, String>,
    /// Workload names.
    pub workloads: Vec<String>,
    /// Client counts.
    pub clients: Vec<usize>,
    /// Rounds.
    pub rounds: usize,
    /// Seconds per run.
    pub duration_s: f64,
    /// results[workload][clients][system].
    pub results: BTreeMap<String, BTreeMap<usize, BTreeMap<String, CellResult>>>,
}

/// The median of `xs` (0 when empty).
pub fn median(xs: &[f64]) -> f64 {
    let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn medians(rounds: &[Summary]) -> Medians {
    let m = |f: fn(&Summary) -> f64| median(&rounds.iter().map(f).collect::<Vec<_>>());
    Medians {
        throughput: m(|s| s.throughput),
        p50_ms: m(|s| s.latency.p50_ms),
        p99_ms: m(|s| s.latency.p99_ms),
        p999_ms: m(|s| s.latency.p999_ms),
        cpu_ms_per_request: m(|s| s.server.map_or(0.0, |u| u.cpu_ms_per_request)),
        peak_rss_mib: m(|s| {
            s.server
                .map_or(0.0, |u| u.peak_rss_bytes as f64 / 1048576.0)
        }),
    }
}

struct Running {
    name: String,
    endpoints: Vec<String>,
    pid: Option<u32>,
    _process: Option<ServerProcess>,
    prefilled: bool,
}

async fn start(spec: &SystemSpec) -> std::result::Result<Running, String> {
    let ready = Duration::from_secs(30);
    let (endpoints, pid, process) = match &spec.source {
        Source::Start(s) => {
            let p = s.start(ready).await.map_err(|e| e.to_string())?;
            (vec![p.endpoint.clone()], Some(p.pid), Some(p))
        }
        Source::Ceiling(exe) => {
            let p = start_ceiling(exe, ready).await.map_err(|e| e.to_string())?;
            (vec![p.endpoint.clone()], Some(p.pid), Some(p))
        }
        Source::Attach { endpoints, pid } => (endpoints.clone(), *pid, None),
        Source::Unavailable(reason) => return Err(reason.clone()),
    };
    Ok(Running {
        name: spec.name.clone(),
        endpoints,
        pid,
        _process: process,
        prefilled: false,
    })
}

fn conns_for(cfg: &CompareConfig, clients: usize) -> usize {
    if cfg.conns > 0 {
        cfg.conns
    } else {
        clients.div_ceil(10).clamp(1, 100)
    }
}

async fn run_cell(
    cfg: &CompareConfig,
    sys: &mut Running,
    workload: Workload,
    clients: usize,
) -> Result<Summary> {
    let conns = conns_for(cfg, clients);
    let common = Common {
        endpoints: sys.endpoints.clone(),
        conns,
        clients,
        total: None,
        duration: Some(cfg.duration),
        rate: 0.0,
        pid: sys.pid,
        json: None,
        no_progress: true,
    };
    let mut keys = cfg.keys.clone();
    keys.prefill = false;
    let kv = |op: KvOp| vec![(op, 1)];
    match workload {
        Workload::Put => run_kv("put", &common, &keys, kv(KvOp::Put)).await,
        Workload::RangeL | Workload::RangeS => {
            if !sys.prefilled {
                let pool = Pool::connect(&sys.endpoints, 4).await?;
                prefill(&pool, &keys.keys(), keys.val_size, 32).await?;
                sys.prefilled = true;
            }
            let op = if workload == Workload::RangeL {
                KvOp::RangeLinearizable
            } else {
                KvOp::RangeSerializable
            };
            run_kv(op.name(), &common, &keys, kv(op)).await
        }
        Workload::TxnPut => run_kv("txn-put", &common, &keys, kv(KvOp::TxnPut)).await,
        Workload::Watch => {
            let streams = clients.div_ceil(10).max(1);
            let rate = if cfg.watch_put_rate > 0.0 {
                cfg.watch_put_rate
            } else {
                100.0
            };
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let wc = WatchConfig {
                endpoints: sys.endpoints.clone(),
                conns,
                streams,
                watchers_per_stream: clients.div_ceil(streams).max(1),
                put_rate: rate,
                put_total: (cfg.duration.as_secs_f64() * rate).max(1.0) as u64,
                val_size: keys.val_size.max(20),
                prev_kv: true,
                prefix: format!("/strata-bench/compare-watch/{nanos:x}/").into_bytes(),
                settle: Duration::from_secs(5),
            };
            let before = sys.pid.map(crate::procstat::sample).transpose()?;
            let mut r = run_watch(&wc).await?;
            if let Some(b) = before {
                r.summary.server = Some(b.usage_since(r.summary.requests)?);
            }
            Ok(r.summary)
        }
        Workload::Kube => {
            let mut kc = KubeConfig::new(sys.endpoints.clone(), clients, cfg.duration);
            kc.conns = conns;
            kc.pid = sys.pid;
            run_kube(&kc).await
        }
    }
}

/// Why a summary shows the workload was not served, if it was not: every request failed, or
/// some operation of it is not implemented by the server (a partly served mix is not a
/// comparable result).
fn not_served(s: &Summary) -> Option<String> {
    if let Some((kind, e)) = s
        .errors_by_kind
        .iter()
        .find(|(kind, _)| kind.ends_with(": Unimplemented"))
    {
        return Some(format!(
            "not served: {kind} ({:?}), {} errors",
            e.sample, e.count
        ));
    }
    if s.requests > 0 || s.errors == 0 {
        return None;
    }
    let (kind, e) = s.errors_by_kind.iter().max_by_key(|(_, e)| e.count)?;
    Some(format!(
        "not served: {kind} ({:?}), {} errors",
        e.sample, s.errors
    ))
}

/// Runs the matrix and writes `report.json`, `report.md`, `report.html` and the SVG plots
/// into `cfg.out_dir`. Returns the report.
pub async fn run_compare(cfg: &CompareConfig) -> Result<CompareReport> {
    let mut running = Vec::new();
    let mut not_run = BTreeMap::new();
    for spec in &cfg.systems {
        match start(spec).await {
            Ok(r) => running.push(r),
            Err(reason) => {
                eprintln!("compare: {} not run: {reason}", spec.name);
                not_run.insert(spec.name.clone(), reason);
            }
        }
    }
    let mut results: BTreeMap<String, BTreeMap<usize, BTreeMap<String, CellResult>>> =
        BTreeMap::new();
    for round in 0..cfg.rounds.max(1) {
        for &workload in &cfg.workloads {
            for &clients in &cfg.clients {
                let order: Vec<usize> = if round % 2 == 0 {
                    (0..running.len()).collect()
                } else {
                    (0..running.len()).rev().collect()
                };
                for i in order {
                    let sys = &mut running[i];
                    eprintln!(
                        "compare: round {}/{} {} clients={} {}",
                        round + 1,
                        cfg.rounds.max(1),
                        workload.name(),
                        clients,
                        sys.name
                    );
                    let outcome = run_cell(cfg, sys, workload, clients).await;
                    let cell = results
                        .entry(workload.name().to_owned())
                        .or_default()
                        .entry(clients)
                        .or_default()
                        .entry(sys.name.clone())
                        .or_insert_with(|| CellResult {
                            rounds: Vec::new(),
                            not_run: None,
                            median: Medians::default(),
                        });
                    match outcome {
                        Ok(s) => match not_served(&s) {
                            Some(why) => cell.not_run = Some(why),
                            None => cell.rounds.push(s),
                        },
                        Err(e) => cell.not_run = Some(format!("not run: {e}")),
                    }
                }
            }
        }
    }
    for cells in results.values_mut() {
        for systems in cells.values_mut() {
            for cell in systems.values_mut() {
                cell.median = medians(&cell.rounds);
            }
        }
    }
    let report = CompareReport {
        systems: cfg.systems.iter().map(|s| s.name.clone()).collect(),
        not_run,
        workloads: cfg.workloads.iter().map(|w| w.name().to_owned()).collect(),
        clients: cfg.clients.clone(),
        rounds: cfg.rounds.max(1),
        duration_s: cfg.duration.as_secs_f64(),
        results,
    };
    write_outputs(&report, &cfg.out_dir)?;
    Ok(report)
}

fn write_outputs(report: &CompareReport, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| BenchError::io("create", dir, e))?;
    crate::output::write_json(report, &dir.join("report.json"))?;
    let md = report::markdown(report);
    let md_path = dir.join("report.md");
    std::fs::write(&md_path, &md).map_err(|e| BenchError::io("write", &md_path, e))?;
    let html = report::html(report, dir)?;
    let html_path = dir.join("report.html");
    std::fs::write(&html_path, html).map_err(|e| BenchError::io("write", &html_path, e))?;
    Ok(())
}
