//! `--report FILE.html`: one self-contained page with the run's charts and tables.
//!
//! Why inline SVG generated here rather than a chart library: the file must open anywhere,
//! offline and years later, so it embeds everything and fetches nothing; SVG drawn by us renders
//! without JavaScript, stays small (a few hundred kB for a day-long run, since the series is
//! bounded) and lets tests check the DOM for exactly what was drawn. Tooltips are SVG `<title>`s.
//!
//! Charts have stable ids: `throughput`, `tasks`, `concurrency`, `latency-time`, `latency`,
//! `errors` (a run); `throughput`, `concurrency`, `latency`, `errors` (a bench comparison).
//!
//! - [`run_report`]: a `drover run`: totals, the per-backend table, the charts, errors by code.
//! - [`bench_report`]: a `drover bench` comparison: its table and one line per run.

mod charts;
mod page;
mod svg;

use crate::record::RunStats;
use crate::summary::{Percentiles, Summary, fmt_secs};
use page::{Cell, Page};

/// The page of a `drover run`.
pub fn run_report(stats: &RunStats, summary: &Summary) -> String {
    let wall = summary.wall_seconds;
    let groups = charts::backend_groups(stats);
    let mut p = Page::new(&format!("drover run: {}", summary.input));
    let mut meta = vec![
        (
            "started".to_string(),
            summary.started_at.clone().unwrap_or_else(|| "-".into()),
        ),
        (
            "mode".into(),
            match summary.concurrency {
                Some(c) if summary.mode != "serial" => format!("{} ({c} in flight)", summary.mode),
                _ => summary.mode.clone(),
            },
        ),
        (
            "model".into(),
            summary
                .model
                .clone()
                .unwrap_or_else(|| "(not named)".into()),
        ),
        ("input".into(), summary.input.clone()),
        ("output".into(), summary.output.clone()),
    ];
    meta.push(("drover".into(), summary.drover_version.clone()));
    p.header(
        "drover run report",
        summary.interrupted.then_some("interrupted"),
        &meta,
    );

    let t = &summary.tasks;
    let lat =
        |f: fn(&Percentiles) -> f64| summary.latency_ms.as_ref().map_or("-".into(), |l| ms(f(l)));
    let mut cards = vec![
        (t.succeeded.to_string(), "tasks answered".to_string()),
        (t.failed.to_string(), "tasks failed".into()),
        (fmt_secs(summary.wall_seconds), "wall time".into()),
        (
            format!("{:.1}", summary.throughput.tasks_per_s),
            "tasks/s".into(),
        ),
        (
            format!("{:.0}", summary.throughput.output_tokens_per_s),
            "output tokens/s".into(),
        ),
        (
            format!("{:.0}", summary.throughput.prompt_tokens_per_s),
            "prompt tokens/s".into(),
        ),
        (lat(|l| l.p50), "latency p50".into()),
        (lat(|l| l.p99), "latency p99".into()),
        (
            format!("{} / {}", summary.retries, summary.hedges),
            "retries / hedges".into(),
        ),
    ];
    if t.skipped_done > 0 {
        cards.push((t.skipped_done.to_string(), "already done (resumed)".into()));
    }
    if t.unfinished > 0 {
        cards.push((t.unfinished.to_string(), "unfinished (resumable)".into()));
    }
    p.cards(&cards);

    if !summary.backends.is_empty() {
        p.h2("Backends");
        let color_of = |label: &str| {
            groups
                .iter()
                .find(|g| {
                    g.members
                        .iter()
                        .any(|&m| stats.backends.get(m).is_some_and(|b| b.label == label))
                })
                .map(|g| g.color.clone())
        };
        let rows: Vec<Vec<Cell>> = summary
            .backends
            .iter()
            .map(|b| {
                let p = |f: fn(&Percentiles) -> f64| {
                    b.latency_ms.as_ref().map_or("-".into(), |l| ms(f(l)))
                };
                let errors = if b.errors.is_empty() {
                    "-".to_string()
                } else {
                    b.errors
                        .iter()
                        .map(|(k, v)| format!("{k} {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                vec![
                    Cell::Swatch(
                        color_of(&b.backend).unwrap_or_else(|| "#8c8c8c".into()),
                        b.backend.clone(),
                    ),
                    Cell::Left(b.engine.clone().unwrap_or_else(|| "-".into())),
                    Cell::Text(b.succeeded.to_string()),
                    Cell::Share(b.share),
                    Cell::Text(format!("{:.0}", b.output_tokens_per_s)),
                    Cell::Text(p(|l| l.p50)),
                    Cell::Text(p(|l| l.p90)),
                    Cell::Text(p(|l| l.p99)),
                    Cell::Text(b.ttft_ms.as_ref().map_or("-".into(), |l| ms(l.p50))),
                    Cell::Text(format!("{:.1}", b.mean_in_flight)),
                    Cell::Text(b.final_limit.map_or("-".into(), |l| l.to_string())),
                    Cell::Text(b.ejections.to_string()),
                    Cell::Left(errors),
                ]
            })
            .collect();
        p.table(
            "backends",
            &[
                "backend",
                "engine",
                "answered",
                "share",
                "out tok/s",
                "p50",
                "p90",
                "p99",
                "ttft p50",
                "mean in flight",
                "final limit",
                "ejections",
                "failed (by code)",
            ],
            &rows,
        );
    }

    p.h2("Over time");
    p.charts(&[
        charts::throughput(stats, &groups, wall),
        charts::concurrency(stats, &groups, wall),
        charts::tasks(stats, &groups, wall),
        charts::latency_over_time(stats, &groups, wall),
        charts::latency_histogram(stats, &groups),
        charts::errors(stats, wall),
    ]);

    if !summary.errors.is_empty() {
        p.h2("Failed tasks by error code");
        let rows: Vec<Vec<Cell>> = summary
            .errors
            .iter()
            .map(|(code, n)| {
                vec![
                    Cell::Swatch(charts::code_color(code).into(), code.clone()),
                    Cell::Text(n.to_string()),
                    Cell::Share(*n as f64 / t.failed.max(1) as f64),
                ]
            })
            .collect();
        p.table("errors", &["code", "tasks", "share of failures"], &rows);
    }
    p.finish("Written by drover at the end of the run. Self-contained: no script or font is fetched. Hover a chart for the values at that time.")
}

/// A table given as text (e.g. `drover bench`'s comparison).
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// Column names.
    pub headers: Vec<String>,
    /// Rows of cells.
    pub rows: Vec<Vec<String>>,
}

/// One run of a comparison.
#[derive(Debug, Clone, Copy)]
pub struct BenchRun<'a> {
    /// Its name in the table and the legends (e.g. "adaptive").
    pub label: &'a str,
    /// Its statistics.
    pub stats: &'a RunStats,
    /// Its wall time, seconds.
    pub wall_seconds: f64,
}

/// What a `drover bench` report shows.
#[derive(Debug, Clone)]
pub struct BenchReport<'a> {
    /// Lines under the title (the task set, the fleet).
    pub description: Vec<(String, String)>,
    /// The comparison table.
    pub table: Table,
    /// Notes under the table.
    pub notes: Vec<String>,
    /// The runs, in table order.
    pub runs: Vec<BenchRun<'a>>,
}

/// The page of a `drover bench` comparison: its table and the runs' curves side by side.
pub fn bench_report(r: &BenchReport) -> String {
    let mut p = Page::new("drover bench report");
    let mut meta = r.description.clone();
    meta.push(("drover".into(), env!("CARGO_PKG_VERSION").into()));
    p.header("drover bench report", None, &meta);
    let runs: Vec<charts::RunLine> = r
        .runs
        .iter()
        .enumerate()
        .map(|(k, run)| charts::RunLine {
            name: run.label,
            stats: run.stats,
            wall: run.wall_seconds,
            color: svg::PALETTE[k % svg::PALETTE.len()],
        })
        .collect();
    p.h2("Comparison");
    let headers: Vec<&str> = r.table.headers.iter().map(String::as_str).collect();
    let rows: Vec<Vec<Cell>> = r
        .table
        .rows
        .iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .map(
                    |(k, cell)| match (k, runs.iter().find(|l| l.name == cell)) {
                        (0, Some(l)) => Cell::Swatch(l.color.into(), cell.clone()),
                        (0, None) => Cell::Left(cell.clone()),
                        _ => Cell::Text(cell.clone()),
                    },
                )
                .collect()
        })
        .collect();
    p.table("comparison", &headers, &rows);
    for n in &r.notes {
        p.raw(&format!("<p class=\"meta\">{}</p>", page::escape(n)));
    }
    p.h2("Over time");
    p.charts(&[
        charts::bench_throughput(&runs),
        charts::bench_concurrency(&runs),
        charts::bench_latency(&runs),
        charts::bench_errors(&runs),
    ]);
    p.finish("Written by drover bench. Self-contained: no script or font is fetched. Each run's time axis starts at its own start.")
}

fn ms(v: f64) -> String {
    svg::fmt_ms(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{FleetSample, Record, SampleBackend};
    use crate::summary::SummaryInfo;
    use drover_types::{ErrorCode, Usage};
    use std::time::{Duration, Instant};

    fn stats() -> RunStats {
        let t0 = Instant::now();
        let mut s = RunStats::new(t0);
        for k in 0..60u64 {
            let b = (k % 2) as usize;
            let now = t0 + Duration::from_millis(k * 50);
            s.record(
                &Record {
                    backend: Some(b),
                    backend_label: Some(if b == 0 {
                        "a:1".into()
                    } else {
                        "<script>alert(1)</script>:2".into()
                    }),
                    error: (k == 7).then_some(ErrorCode::ServerError),
                    latency: Some(Duration::from_millis(200 + 300 * b as u64)),
                    ttft: None,
                    usage: Usage {
                        prompt_tokens: 5,
                        completion_tokens: 10,
                    },
                    attempts: 1,
                    hedged: false,
                },
                now,
            );
            if k % 20 == 0 {
                let backends = (0..2)
                    .map(|_| SampleBackend {
                        label: String::new(),
                        in_flight: 2,
                        limit: Some(4),
                        state: "up",
                        ejections: 0,
                        engine: Some("vLLM"),
                    })
                    .collect();
                s.sample(&FleetSample { backends }, now, true);
            }
        }
        s
    }

    #[test]
    fn run_report_has_every_chart_and_escapes_server_text() {
        let s = stats();
        let info = SummaryInfo {
            mode: "adaptive".into(),
            model: Some("m<&>".into()),
            wall: Duration::from_secs(3),
            ..SummaryInfo::default()
        };
        let html = run_report(&s, &Summary::build(&s, &info));
        for id in [
            "throughput",
            "tasks",
            "concurrency",
            "latency-time",
            "latency",
            "errors",
        ] {
            assert!(
                html.contains(&format!(r#"<svg class="chart" id="{id}""#)),
                "{id}"
            );
        }
        assert!(!html.contains("<script>alert"), "labels are escaped");
        assert!(html.contains("m&lt;&amp;&gt;"));
        assert!(
            !html.contains("http://") || !html.contains("src=\"http"),
            "nothing fetched"
        );
        assert!(!html.contains("<link"), "no external stylesheet");
        // One <script>, the chart-box recorder, and it loads nothing.
        assert_eq!(html.matches("<script>").count(), 1);
        assert!(
            !html.contains("class=\"empty\""),
            "every chart has data:\n{html}"
        );
    }

    #[test]
    fn a_run_that_did_nothing_still_reports() {
        let s = RunStats::new(Instant::now());
        let info = SummaryInfo {
            mode: "serial".into(),
            interrupted: true,
            ..SummaryInfo::default()
        };
        let html = run_report(&s, &Summary::build(&s, &info));
        assert_eq!(html.matches(r#"<svg class="chart""#).count(), 6);
        assert_eq!(
            html.matches(r#"class="empty""#).count(),
            6,
            "each chart says it has nothing"
        );
        assert!(html.contains("interrupted"));
        assert!(
            !html.contains("NaN") && !html.contains("inf"),
            "no division by zero reaches the page"
        );
    }

    #[test]
    fn bench_report_draws_one_line_per_run() {
        let a = stats();
        let b = stats();
        let r = BenchReport {
            description: vec![("fleet".into(), "2 simulated instances".into())],
            table: Table {
                headers: vec!["mode".into(), "tasks/s".into()],
                rows: vec![
                    vec!["serial".into(), "1.0".into()],
                    vec!["adaptive".into(), "9.0".into()],
                ],
            },
            notes: vec![],
            runs: vec![
                BenchRun {
                    label: "serial",
                    stats: &a,
                    wall_seconds: 3.0,
                },
                BenchRun {
                    label: "adaptive",
                    stats: &b,
                    wall_seconds: 3.0,
                },
            ],
        };
        let html = bench_report(&r);
        let start = html.find(r#"id="throughput""#).unwrap();
        let end = start + html[start..].find("</svg>").unwrap();
        assert_eq!(html[start..end].matches("<path class=\"line\"").count(), 2);
        assert!(html.contains("<table class=\"comparison\">"));
    }
}
