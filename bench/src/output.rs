//! Results for people (a markdown table) and for machines (JSON).

use std::fmt::Write as _;
use std::path::Path;

use crate::error::{BenchError, Result};
use crate::stats::{Latency, Summary};

/// The header row of [`markdown_row`]'s table.
pub const TABLE_HEADER: &str = "| workload | clients | conns | rate | ok | errors | req/s | min ms | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | server CPU s | server peak RSS MiB |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|";

fn latency_cells(l: &Latency) -> String {
    format!(
        "{:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3}",
        l.min_ms, l.p50_ms, l.p90_ms, l.p99_ms, l.p999_ms, l.max_ms
    )
}

/// One table row for a run.
pub fn markdown_row(s: &Summary) -> String {
    let rate = s
        .rate
        .map_or_else(|| "closed".to_owned(), |r| format!("{r:.0}/s"));
    let (cpu, rss) = s.server.map_or_else(
        || ("".to_owned(), "".to_owned()),
        |u| {
            (
                format!("{:.2}", u.cpu_s),
                format!("{:.1}", u.peak_rss_bytes as f64 / (1024.0 * 1024.0)),
            )
        },
    );
    format!(
        "| {} | {} | {} | {} | {} | {} | {:.0} | {} | {} | {} |",
        s.workload,
        s.clients,
        s.conns,
        rate,
        s.requests,
        s.errors,
        s.throughput,
        latency_cells(&s.latency),
        cpu,
        rss
    )
}

/// A complete markdown report of one run: the table row, per-operation rows, errors by
/// kind, counters and notes.
pub fn markdown(s: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{TABLE_HEADER}");
    let _ = writeln!(out, "{}", markdown_row(s));
    if s.per_op.len() > 1 {
        let _ = writeln!(
            out,
            "\n| operation | ok | req/s | min ms | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for (op, o) in &s.per_op {
            let _ = writeln!(
                out,
                "| {op} | {} | {:.0} | {} |",
                o.count,
                o.throughput,
                latency_cells(&o.latency)
            );
        }
    }
    if !s.errors_by_kind.is_empty() {
        let _ = writeln!(out, "\nErrors by kind:");
        for (kind, e) in &s.errors_by_kind {
            let _ = writeln!(out, "- {kind}: {} (e.g. {:?})", e.count, e.sample);
        }
    }
    if !s.counters.is_empty() {
        let _ = writeln!(out, "\nCounters:");
        for (name, n) in &s.counters {
            let _ = writeln!(out, "- {name}: {n}");
        }
    }
    for note in &s.notes {
        let _ = writeln!(out, "\n{note}");
    }
    out
}

/// Writes `value` as pretty JSON to `path`, or to stdout when `path` is `-`.
pub fn write_json<T: serde::Serialize>(value: &T, path: &Path) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    if path == Path::new("-") {
        println!("{text}");
        Ok(())
    } else {
        std::fs::write(path, text + "\n").map_err(|e| BenchError::io("write", path, e))
    }
}
