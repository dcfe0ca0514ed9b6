//! The compare report: markdown tables, and HTML with SVG plots (throughput vs clients,
//! latency CDF per system) drawn with `plotters`.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;

use crate::compare::{CellResult, CompareReport};
use crate::error::{BenchError, Result};

const BASELINE: &str = "etcd";
const CEILING: &str = "ceiling";

fn cell<'a>(r: &'a CompareReport, w: &str, c: usize, sys: &str) -> Option<&'a CellResult> {
    r.results.get(w)?.get(&c)?.get(sys)
}

fn ok_cell<'a>(r: &'a CompareReport, w: &str, c: usize, sys: &str) -> Option<&'a CellResult> {
    cell(r, w, c, sys).filter(|x| x.not_run.is_none() && !x.rounds.is_empty())
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "—".into(),
    }
}

/// Rows of one workload's table: header cells and body rows, plus the reasons for empty cells.
fn table(r: &CompareReport, w: &str) -> (Vec<String>, Vec<Vec<String>>, Vec<String>) {
    let systems: Vec<&str> = r
        .systems
        .iter()
        .map(String::as_str)
        .filter(|s| !r.not_run.contains_key(*s))
        .collect();
    let mut head = vec!["clients".to_owned()];
    for s in &systems {
        head.extend([
            format!("{s} req/s"),
            format!("{s} p50 ms"),
            format!("{s} p99 ms"),
            format!("{s} CPU ms/req"),
        ]);
    }
    let has_base = systems.contains(&BASELINE);
    let has_ceiling = systems.contains(&CEILING);
    let others: Vec<&str> = systems
        .iter()
        .copied()
        .filter(|s| *s != BASELINE && *s != CEILING)
        .collect();
    if has_base {
        for s in &others {
            head.push(format!("{s}/{BASELINE} req/s"));
            head.push(format!("{s}/{BASELINE} p99"));
        }
    }
    if has_ceiling {
        for s in systems.iter().filter(|s| **s != CEILING) {
            head.push(format!("{s}/{CEILING} req/s"));
        }
    }
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for &c in &r.clients {
        let mut row = vec![c.to_string()];
        for s in &systems {
            match ok_cell(r, w, c, s) {
                Some(x) => row.extend([
                    format!("{:.0}", x.median.throughput),
                    format!("{:.3}", x.median.p50_ms),
                    format!("{:.3}", x.median.p99_ms),
                    if x.median.cpu_ms_per_request > 0.0 {
                        format!("{:.3}", x.median.cpu_ms_per_request)
                    } else {
                        "—".into()
                    },
                ]),
                None => {
                    row.extend(["—".into(), "—".into(), "—".into(), "—".into()]);
                    let why = cell(r, w, c, s)
                        .and_then(|x| x.not_run.clone())
                        .unwrap_or_else(|| "not run: no result".into());
                    notes.push(format!("{s}, {c} clients: {why}"));
                }
            }
        }
        let tput = |s: &str| ok_cell(r, w, c, s).map(|x| x.median.throughput);
        let p99 = |s: &str| ok_cell(r, w, c, s).map(|x| x.median.p99_ms);
        if has_base {
            for s in &others {
                row.push(ratio(tput(s), tput(BASELINE)));
                row.push(ratio(p99(s), p99(BASELINE)));
            }
        }
        if has_ceiling {
            for s in systems.iter().filter(|s| **s != CEILING) {
                row.push(ratio(tput(s), tput(CEILING)));
            }
        }
        rows.push(row);
    }
    (head, rows, notes)
}

fn preamble(r: &CompareReport) -> Vec<String> {
    let mut lines = vec![format!(
        "Systems: {}. {} round(s) of {:.0} s per run; each cell runs once per system per round, the order of systems reversing every round; figures are medians over rounds.",
        r.systems.join(", "),
        r.rounds,
        r.duration_s
    )];
    for (s, why) in &r.not_run {
        lines.push(format!("{s}: not run: {why}"));
    }
    lines
}

/// The report as markdown.
pub fn markdown(r: &CompareReport) -> String {
    let mut out = String::from("# strata-bench compare\n\n");
    for l in preamble(r) {
        let _ = writeln!(out, "{l}\n");
    }
    for w in &r.workloads {
        let (head, rows, notes) = table(r, w);
        let _ = writeln!(out, "## {w}\n");
        let _ = writeln!(out, "| {} |", head.join(" | "));
        let _ = writeln!(out, "|{}", "---:|".repeat(head.len()));
        for row in rows {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        for n in notes {
            let _ = writeln!(out, "\n- {n}");
        }
        out.push('\n');
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The report as one HTML page with inline SVG plots; each plot is also written to `dir` as
/// `<workload>-throughput.svg` and `<workload>-cdf.svg`.
pub fn html(r: &CompareReport, dir: &Path) -> Result<String> {
    let mut out = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>strata-bench compare</title>\
         <style>body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}</style></head><body>\
         <h1>strata-bench compare</h1>",
    );
    for l in preamble(r) {
        let _ = write!(out, "<p>{}</p>", esc(&l));
    }
    for w in &r.workloads {
        let (head, rows, notes) = table(r, w);
        let _ = write!(out, "<h2>{}</h2><table><tr>", esc(w));
        for h in head {
            let _ = write!(out, "<th>{}</th>", esc(&h));
        }
        out.push_str("</tr>");
        for row in rows {
            out.push_str("<tr>");
            for c in row {
                let _ = write!(out, "<td>{}</td>", esc(&c));
            }
            out.push_str("</tr>");
        }
        out.push_str("</table><ul>");
        for n in notes {
            let _ = write!(out, "<li>{}</li>", esc(&n));
        }
        out.push_str("</ul>");
        for (suffix, svg) in [
            ("throughput", throughput_plot(r, w)?),
            ("cdf", cdf_plot(r, w)?),
        ] {
            let path = dir.join(format!("{w}-{suffix}.svg"));
            std::fs::write(&path, &svg).map_err(|e| BenchError::io("write", &path, e))?;
            out.push_str(&svg);
        }
    }
    out.push_str("</body></html>\n");
    Ok(out)
}

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn plot_err(w: &str, e: impl std::fmt::Display) -> BenchError {
    BenchError::Plot {
        path: format!("{w}.svg").into(),
        reason: e.to_string(),
    }
}

/// Median throughput against clients, one line per system (log-scale x).
fn throughput_plot(r: &CompareReport, w: &str) -> Result<String> {
    let mut series = Vec::new();
    for s in &r.systems {
        let pts: Vec<(f64, f64)> = r
            .clients
            .iter()
            .filter_map(|&c| ok_cell(r, w, c, s).map(|x| (c as f64, x.median.throughput)))
            .collect();
        series.push((s.clone(), pts));
    }
    let x_max = r.clients.iter().copied().max().unwrap_or(1).max(2) as f64 * 1.5;
    let y_max = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, y)| *y))
        .fold(1.0f64, f64::max)
        * 1.1;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(w, e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("{w}: throughput vs clients"), ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d((0.8f64..x_max).log_scale(), 0f64..y_max)
            .map_err(|e| plot_err(w, e))?;
        chart
            .configure_mesh()
            .x_desc("clients")
            .y_desc("requests/s (median over rounds)")
            .draw()
            .map_err(|e| plot_err(w, e))?;
        for (i, (name, pts)) in series.into_iter().enumerate() {
            if pts.is_empty() {
                continue;
            }
            let color = COLORS[i % COLORS.len()];
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                .map_err(|e| plot_err(w, e))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            chart
                .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))
                .map_err(|e| plot_err(w, e))?;
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()
            .map_err(|e| plot_err(w, e))?;
        root.present().map_err(|e| plot_err(w, e))?;
    }
    Ok(svg)
}

/// Latency CDF at the largest client count each system ran, x in "nines" (-log10(1 - q)).
fn cdf_plot(r: &CompareReport, w: &str) -> Result<String> {
    let mut series = Vec::new();
    for (color, s) in r.systems.iter().enumerate() {
        let Some((c, x)) = r
            .clients
            .iter()
            .rev()
            .find_map(|&c| ok_cell(r, w, c, s).map(|x| (c, x)))
        else {
            continue;
        };
        // The round whose throughput is closest to the median stands for the cell.
        let Some(round) = x.rounds.iter().min_by(|a, b| {
            let da = (a.throughput - x.median.throughput).abs();
            let db = (b.throughput - x.median.throughput).abs();
            da.total_cmp(&db)
        }) else {
            continue;
        };
        let pts: Vec<(f64, f64)> = round
            .cdf
            .iter()
            .map(|[q, ms]| ((-(1.0 - q).max(1e-4).log10()).min(4.0), *ms))
            .collect();
        series.push((color, format!("{s} ({c} clients)"), pts));
    }
    let y_max = series
        .iter()
        .flat_map(|(_, _, p)| p.iter().map(|(_, y)| *y))
        .fold(0.1f64, f64::max)
        * 1.1;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 420)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(w, e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("{w}: latency distribution"), ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..4.0, 0f64..y_max)
            .map_err(|e| plot_err(w, e))?;
        chart
            .configure_mesh()
            .x_desc("percentile (0 = p0, 1 = p90, 2 = p99, 3 = p99.9, 4 = p99.99)")
            .y_desc("latency ms")
            .draw()
            .map_err(|e| plot_err(w, e))?;
        for (i, name, pts) in series {
            let color = COLORS[i % COLORS.len()];
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                .map_err(|e| plot_err(w, e))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()
            .map_err(|e| plot_err(w, e))?;
        root.present().map_err(|e| plot_err(w, e))?;
    }
    Ok(svg)
}
