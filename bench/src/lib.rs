//! # strata-bench: an etcd v3 protocol load generator
//!
//! Measures any server that speaks etcd's v3 gRPC API — real etcd today, Strata once its
//! server exists — with the same requests, so the two can be compared side by side on one
//! machine. Workloads: put, range (linearizable and serializable), delete, txn-put (the
//! kube-apiserver's optimistic update), weighted mixes, watch latency with an exactly-once,
//! in-order verifier, and `kube`, a kube-apiserver-like mix. `compare` runs a workload matrix
//! against several systems in alternating rounds and writes ratios, medians and plots;
//! `ceiling` serves Put and Range without storing anything, to show what the gRPC stack alone
//! costs on this machine.
//!
//! The wire types come from `proto/` at the repository root (etcd's packages, services and
//! field numbers), compiled by `build.rs` with `protox`, so building needs only cargo.
//!
//! ## Invariants
//! - Every request the driver sends is counted exactly once: as a success in a latency
//!   histogram or as an error of its kind. Nothing is dropped from the counts.
//! - In open loop (`--rate`) latency is measured from the request's scheduled send time, not
//!   from when a client got round to sending it, so server stalls are not hidden
//!   (no coordinated omission).
//! - A system or workload that cannot be measured is reported as "not run: reason", never
//!   left out of a report.
//! - Nothing here asserts wall-clock times; tests check counts and verification logic only.
//!
//! ## Reading the source
//! 1. `cli.rs`: the flags and what each subcommand runs.
//! 2. `load.rs`: the closed/open-loop driver and the [`Worker`] trait.
//! 3. `stats.rs`: HDR histograms and the [`Summary`] of a run; `output.rs` prints it.
//! 4. `kv.rs`: the key-value workloads; `client.rs`: connections and keys.
//! 5. `kube.rs`: the kube-apiserver-like workload.
//! 6. `watch.rs`: the watch latency workload and the exactly-once, in-order verifier.
//! 7. `ceiling.rs`: the store-nothing gRPC server (also the fault-injecting fake for tests).
//! 8. `compare.rs`: the A/B rounds; `report.rs`: its markdown, HTML and SVG plots.
//! 9. `process.rs`: starting etcd, Strata and the ceiling on free ports; `procstat.rs`: server
//!    CPU and peak RSS from `/proc`.
//! 10. `proto.rs`: the generated etcd wire types.

mod ceiling;
mod cli;
mod client;
mod compare;
mod error;
mod kube;
mod kv;
mod load;
mod output;
mod process;
mod procstat;
pub mod proto;
mod report;
mod stats;
mod watch;

pub use ceiling::{CeilingServer, Counts, WatchFault};
pub use cli::{Cli, Command, Common, KeyArgs, dispatch, fill_shape, parse_duration, run_kv};
pub use client::{Keys, Pool, Rng, connect, endpoint_uri, prefix_end};
pub use compare::{
    CellResult, CompareConfig, CompareReport, Medians, Source, SystemSpec, Workload, median,
    run_compare,
};
pub use error::{BenchError, Result};
pub use kube::{KubeConfig, run_kube};
pub use kv::{KvConfig, KvOp, KvWorker, optimistic_put, parse_mix, prefill};
pub use load::{LoadSpec, Measured, Outcome, Stop, Worker, run};
pub use output::{TABLE_HEADER, markdown, markdown_row, write_json};
pub use process::{EtcdLike, ServerProcess, free_port, start_ceiling};
pub use procstat::{CpuSample, peak_rss_bytes, sample};
pub use stats::{ErrorCount, Latency, OpSummary, Recorder, ServerUsage, Summary};
pub use watch::{Verdict, WatchConfig, WatchReport, run_watch, verify};
