//! Command-line flags (named like etcd's `benchmark` tool where it has them) and dispatch.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::ceiling::{CeilingServer, WatchFault};
use crate::client::{Keys, Pool};
use crate::compare::{CompareConfig, Source, SystemSpec, Workload, run_compare};
use crate::error::{BenchError, Result};
use crate::kube::{KubeConfig, run_kube};
use crate::kv::{KvConfig, KvOp, KvWorker, parse_mix, prefill};
use crate::load::{self, LoadSpec, Stop};
use crate::output;
use crate::process::EtcdLike;
use crate::procstat;
use crate::stats::Summary;
use crate::watch::{Verdict, WatchConfig, run_watch};

/// strata-bench: an etcd v3 protocol load generator.
#[derive(Debug, Parser)]
#[command(name = "strata-bench", version, about)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Put keys (etcd `benchmark put`).
    Put(KvArgs),
    /// Range one key per request (etcd `benchmark range`).
    Range(RangeArgs),
    /// Delete one key per request.
    Delete(KvArgs),
    /// The apiserver's optimistic update: Txn If mod_revision==rev Then Put Else Get.
    TxnPut(KvArgs),
    /// A weighted mix of put, range-l, range-s, delete and txn-put.
    Mixed(MixedArgs),
    /// Put→event latency of W watchers, and a check that each got every event exactly once,
    /// in revision order.
    WatchLatency(WatchArgs),
    /// Serve Put and Range without storing anything (the protocol stack's ceiling).
    Ceiling(CeilingArgs),
    /// A kube-apiserver-like mix: gets, paginated lists, creates, updates with retry on
    /// conflict, deletes, leased events, watches with progress requests, compaction.
    Kube(KubeArgs),
    /// Run a workload matrix against etcd, Strata and the ceiling in alternating rounds and
    /// write a report with ratios, medians and plots.
    Compare(CompareArgs),
}

/// Flags of kube.
#[derive(Debug, Clone, Args)]
pub struct KubeArgs {
    /// Server endpoints, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    pub endpoints: Vec<String>,
    /// Number of gRPC connections (0: one per ten clients).
    #[arg(long, default_value_t = 0)]
    pub conns: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 10)]
    pub clients: usize,
    /// Run length.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Pods created before the run.
    #[arg(long, default_value_t = 1000)]
    pub objects: u64,
    /// Object size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub val_size: usize,
    /// List page size.
    #[arg(long, default_value_t = 500)]
    pub page_size: i64,
    /// Watchers of the pod prefix.
    #[arg(long, default_value_t = 4)]
    pub watchers: usize,
    /// Seconds between compactions.
    #[arg(long, default_value_t = 5.0)]
    pub compaction_interval_s: f64,
    /// PID of the server, for CPU seconds and peak RSS.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Also write the result as JSON to this file (`-` for stdout).
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Flags of compare.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// etcd binary to start (ignored with --etcd-endpoints).
    #[arg(long, default_value = "/usr/bin/etcd")]
    pub etcd_bin: PathBuf,
    /// Attach to a running etcd instead of starting one.
    #[arg(long, value_delimiter = ',')]
    pub etcd_endpoints: Vec<String>,
    /// PID of the attached etcd.
    #[arg(long)]
    pub etcd_pid: Option<u32>,
    /// Strata server binary to start with etcd's flags.
    #[arg(long)]
    pub strata_bin: Option<PathBuf>,
    /// Attach to a running Strata instead.
    #[arg(long, value_delimiter = ',')]
    pub strata_endpoints: Vec<String>,
    /// PID of the attached Strata.
    #[arg(long)]
    pub strata_pid: Option<u32>,
    /// Leave out the ceiling server.
    #[arg(long)]
    pub no_ceiling: bool,
    /// Parent directory of the servers' data directories (one file system for all).
    #[arg(long)]
    pub data_root: Option<PathBuf>,
    /// Workloads: put, range-l, range-s, txn-put, watch, kube.
    #[arg(long, value_delimiter = ',', default_value = "put,range-l,range-s")]
    pub workloads: Vec<String>,
    /// Client counts.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    pub clients: Vec<usize>,
    /// Connections per run (0: one per ten clients, at most 100).
    #[arg(long, default_value_t = 0)]
    pub conns: usize,
    /// Length of each run.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub duration: Duration,
    /// Rounds (each cell runs once per system per round, order alternating).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Key flags of the KV workloads.
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Puts per second of the `watch` workload's writer.
    #[arg(long, default_value_t = 100.0)]
    pub watch_put_rate: f64,
    /// Output directory for report.{html,md,json} and the SVG plots.
    #[arg(long, default_value = "strata-bench-compare")]
    pub out: PathBuf,
}

impl CompareArgs {
    /// The matrix and systems these flags describe.
    pub fn config(&self) -> Result<CompareConfig> {
        let data_root = self
            .data_root
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join("strata-bench-data"));
        let etcd = if !self.etcd_endpoints.is_empty() {
            Source::Attach {
                endpoints: self.etcd_endpoints.clone(),
                pid: self.etcd_pid,
            }
        } else if self.etcd_bin.exists() {
            Source::Start(EtcdLike {
                name: "etcd".into(),
                bin: self.etcd_bin.clone(),
                data_root: data_root.clone(),
                extra_args: vec!["--log-level".into(), "error".into()],
            })
        } else {
            Source::Unavailable(format!("{} not found", self.etcd_bin.display()))
        };
        let strata = if !self.strata_endpoints.is_empty() {
            Source::Attach {
                endpoints: self.strata_endpoints.clone(),
                pid: self.strata_pid,
            }
        } else if let Some(bin) = &self.strata_bin {
            Source::Start(EtcdLike {
                name: "strata".into(),
                bin: bin.clone(),
                data_root: data_root.clone(),
                extra_args: Vec::new(),
            })
        } else {
            Source::Unavailable(
                "no --strata-bin or --strata-endpoints given (the server crate does not exist yet)"
                    .into(),
            )
        };
        let mut systems = vec![
            SystemSpec {
                name: "etcd".into(),
                source: etcd,
            },
            SystemSpec {
                name: "strata".into(),
                source: strata,
            },
        ];
        if !self.no_ceiling {
            let exe = std::env::current_exe()
                .map_err(|e| BenchError::io("find", "the current executable", e))?;
            systems.push(SystemSpec {
                name: "ceiling".into(),
                source: Source::Ceiling(exe),
            });
        }
        let workloads = self
            .workloads
            .iter()
            .map(|w| Workload::parse(w.trim()))
            .collect::<Result<Vec<_>>>()?;
        let mut keys = self.keys.clone();
        if keys.prefix.is_empty() {
            keys.prefix = "/strata-bench/kv/".into();
        }
        Ok(CompareConfig {
            systems,
            workloads,
            clients: self.clients.clone(),
            conns: self.conns,
            duration: self.duration,
            rounds: self.rounds,
            keys,
            watch_put_rate: self.watch_put_rate,
            out_dir: self.out.clone(),
        })
    }
}

/// Flags of watch-latency (named like etcd's `benchmark watch-latency`).
#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// Server endpoints, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    pub endpoints: Vec<String>,
    /// Number of gRPC connections.
    #[arg(long, default_value_t = 1)]
    pub conns: usize,
    /// Watch streams.
    #[arg(long, default_value_t = 10)]
    pub streams: usize,
    /// Watchers per stream.
    #[arg(long, default_value_t = 10)]
    pub watchers_per_stream: usize,
    /// Puts per second.
    #[arg(long, default_value_t = 100.0)]
    pub put_rate: f64,
    /// Number of puts.
    #[arg(long, default_value_t = 1000)]
    pub put_total: u64,
    /// Value size in bytes (at least 20).
    #[arg(long, default_value_t = 32)]
    pub val_size: usize,
    /// Watch with prev_kv, as kube-apiserver does.
    #[arg(long)]
    pub prev_kv: bool,
    /// Seconds without an event, after the last put, before missing events are declared.
    #[arg(long, default_value_t = 5.0)]
    pub settle_s: f64,
    /// PID of the server, for CPU seconds and peak RSS.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Also write the result as JSON to this file (`-` for stdout).
    #[arg(long)]
    pub json: Option<PathBuf>,
}

impl WatchArgs {
    /// The workload these flags ask for, watching a prefix unique to this run.
    pub fn config(&self) -> WatchConfig {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        WatchConfig {
            endpoints: self.endpoints.clone(),
            conns: self.conns,
            streams: self.streams,
            watchers_per_stream: self.watchers_per_stream,
            put_rate: self.put_rate,
            put_total: self.put_total,
            val_size: self.val_size,
            prev_kv: self.prev_kv,
            prefix: format!("/strata-bench/watch/{nanos:x}/").into_bytes(),
            settle: Duration::from_secs_f64(self.settle_s.max(0.0)),
        }
    }
}

/// Flags of ceiling.
#[derive(Debug, Clone, Args)]
pub struct CeilingArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:23790")]
    pub listen: std::net::SocketAddr,
}

/// Flags every load shares.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Server endpoints, comma-separated (`host:port` or `http://host:port`).
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    pub endpoints: Vec<String>,
    /// Number of gRPC connections.
    #[arg(long, default_value_t = 1)]
    pub conns: usize,
    /// Number of concurrent clients (requests in flight).
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// Total number of requests (default 10000 unless --duration is given).
    #[arg(long, conflicts_with = "duration")]
    pub total: Option<u64>,
    /// Run for this long instead (`10s`, `500ms`, `2m`).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Open loop: requests per second, latency measured from each request's scheduled send
    /// time. 0 means closed loop.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// PID of the server, to report its CPU seconds and peak RSS (Linux /proc).
    #[arg(long)]
    pub pid: Option<u32>,
    /// Also write the result as JSON to this file (`-` for stdout).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Do not draw a progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

impl Common {
    /// The load shape these flags ask for.
    pub fn spec(&self) -> LoadSpec {
        LoadSpec {
            clients: self.clients.max(1),
            stop: match self.duration {
                Some(d) => Stop::Duration(d),
                None => Stop::Total(self.total.unwrap_or(10_000)),
            },
            rate: (self.rate > 0.0).then_some(self.rate),
            progress: !self.no_progress,
        }
    }
}

/// Key and value shape.
#[derive(Debug, Clone, Args)]
pub struct KeyArgs {
    /// Key size in bytes (the zero-padded key index; longer if the index needs it).
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 8)]
    pub val_size: usize,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 1)]
    pub key_space_size: u64,
    /// Use keys in order (request i uses key i mod key-space-size) instead of at random.
    #[arg(long)]
    pub sequential_keys: bool,
    /// Prefix of every key.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Write every key of the key space first (untimed).
    #[arg(long)]
    pub prefill: bool,
}

impl KeyArgs {
    /// The key generator.
    pub fn keys(&self) -> Keys {
        Keys {
            prefix: self.prefix.as_bytes().to_vec(),
            key_size: self.key_size,
            key_space_size: self.key_space_size.max(1),
            sequential: self.sequential_keys,
        }
    }
}

/// Flags of put, delete and txn-put.
#[derive(Debug, Clone, Args)]
pub struct KvArgs {
    /// Load flags.
    #[command(flatten)]
    pub common: Common,
    /// Key flags.
    #[command(flatten)]
    pub keys: KeyArgs,
}

/// Flags of range.
#[derive(Debug, Clone, Args)]
pub struct RangeArgs {
    /// Load flags.
    #[command(flatten)]
    pub common: Common,
    /// Key flags.
    #[command(flatten)]
    pub keys: KeyArgs,
    /// `l` for linearizable, `s` for serializable.
    #[arg(long, default_value = "l")]
    pub consistency: String,
}

/// Flags of mixed.
#[derive(Debug, Clone, Args)]
pub struct MixedArgs {
    /// Load flags.
    #[command(flatten)]
    pub common: Common,
    /// Key flags.
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Weights, e.g. `put=1,range-s=4,txn-put=1`.
    #[arg(long, default_value = "put=1,range-l=1")]
    pub mix: String,
}

/// Parses `10s`, `500ms`, `2m` or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("bad duration unit in {s:?} (use ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("bad duration {s:?}: {e}"))
}

/// Runs a key-value workload and returns its summary.
pub async fn run_kv(
    name: &str,
    common: &Common,
    key_args: &KeyArgs,
    mix: Vec<(KvOp, u32)>,
) -> Result<Summary> {
    let pool = Pool::connect(&common.endpoints, common.conns).await?;
    let keys = key_args.keys();
    if key_args.prefill {
        prefill(&pool, &keys, key_args.val_size, common.clients.max(16)).await?;
    }
    let cfg = KvConfig {
        keys,
        val_size: key_args.val_size,
        mix,
    };
    let spec = common.spec();
    let workers: Vec<KvWorker> = (0..spec.clients)
        .map(|c| KvWorker::new(&pool, c, cfg.clone()))
        .collect();
    let before = common.pid.map(procstat::sample).transpose()?;
    let measured = load::run(workers, spec).await;
    let mut summary = measured.recorder.summary(name, measured.elapsed);
    if let Some(before) = before {
        summary.server = Some(before.usage_since(summary.requests)?);
    }
    fill_shape(&mut summary, common);
    Ok(summary)
}

/// Copies the load shape into a summary.
pub fn fill_shape(summary: &mut Summary, common: &Common) {
    summary.endpoints = common.endpoints.clone();
    summary.conns = common.conns;
    summary.clients = common.clients.max(1);
    summary.rate = (common.rate > 0.0).then_some(common.rate);
}

/// Prints a summary as markdown (stdout, or stderr when JSON goes to stdout) and writes its
/// JSON if asked.
pub fn emit(summary: &Summary, json: Option<&std::path::Path>) -> Result<()> {
    let md = output::markdown(summary);
    match json {
        Some(p) if p == std::path::Path::new("-") => eprintln!("{md}"),
        _ => println!("{md}"),
    }
    if let Some(p) = json {
        output::write_json(summary, p)?;
    }
    Ok(())
}

/// Runs the command the flags name.
pub async fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Put(a) => {
            let s = run_kv("put", &a.common, &a.keys, vec![(KvOp::Put, 1)]).await?;
            emit(&s, a.common.json.as_deref())
        }
        Command::Range(a) => {
            let op = match a.consistency.as_str() {
                "l" => KvOp::RangeLinearizable,
                "s" => KvOp::RangeSerializable,
                other => {
                    return Err(BenchError::Invalid(format!(
                        "--consistency {other:?}: use l or s"
                    )));
                }
            };
            let s = run_kv(op.name(), &a.common, &a.keys, vec![(op, 1)]).await?;
            emit(&s, a.common.json.as_deref())
        }
        Command::Delete(a) => {
            let s = run_kv("delete", &a.common, &a.keys, vec![(KvOp::Delete, 1)]).await?;
            emit(&s, a.common.json.as_deref())
        }
        Command::TxnPut(a) => {
            let s = run_kv("txn-put", &a.common, &a.keys, vec![(KvOp::TxnPut, 1)]).await?;
            emit(&s, a.common.json.as_deref())
        }
        Command::Mixed(a) => {
            let mix = parse_mix(&a.mix)?;
            let s = run_kv("mixed", &a.common, &a.keys, mix).await?;
            emit(&s, a.common.json.as_deref())
        }
        Command::WatchLatency(a) => watch_latency(&a).await,
        Command::Kube(a) => kube(&a).await,
        Command::Compare(a) => compare(&a).await,
        Command::Ceiling(a) => {
            let server = CeilingServer::start(a.listen, WatchFault::None).await?;
            eprintln!("ceiling server listening on {}", server.endpoint());
            tokio::signal::ctrl_c()
                .await
                .map_err(|e| BenchError::io("wait for", "ctrl-c", e))?;
            Ok(())
        }
    }
}

async fn watch_latency(a: &WatchArgs) -> Result<()> {
    let before = a.pid.map(procstat::sample).transpose()?;
    let mut report = run_watch(&a.config()).await?;
    if let Some(before) = before {
        let events = report
            .summary
            .counters
            .get("watch events")
            .copied()
            .unwrap_or(0);
        report.summary.server = Some(before.usage_since(events)?);
    }
    emit(&report.summary, a.json.as_deref())?;
    if report.verdicts.iter().all(Verdict::is_ok) {
        Ok(())
    } else {
        Err(BenchError::Invalid("watch verification failed".into()))
    }
}

async fn kube(a: &KubeArgs) -> Result<()> {
    let mut cfg = KubeConfig::new(a.endpoints.clone(), a.clients, a.duration);
    if a.conns > 0 {
        cfg.conns = a.conns;
    }
    cfg.objects = a.objects;
    cfg.val_size = a.val_size;
    cfg.page_size = a.page_size;
    cfg.watchers = a.watchers;
    cfg.compaction_interval = Duration::from_secs_f64(a.compaction_interval_s.max(0.1));
    cfg.pid = a.pid;
    let s = run_kube(&cfg).await?;
    emit(&s, a.json.as_deref())
}

async fn compare(a: &CompareArgs) -> Result<()> {
    let cfg = a.config()?;
    // On Ctrl-C the run is dropped, and with it every server process it started.
    let report = tokio::select! {
        r = run_compare(&cfg) => r?,
        _ = tokio::signal::ctrl_c() => {
            return Err(BenchError::Invalid("compare interrupted; servers stopped".into()));
        }
    };
    println!("{}", crate::report::markdown(&report));
    eprintln!(
        "compare: report written to {}",
        cfg.out_dir.join("report.html").display()
    );
    Ok(())
}
