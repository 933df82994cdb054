//! From statistics to charts: which numbers each chart shows, per backend (a run) or per run
//! (a bench comparison).
//!
//! Rates are per second of the time a bucket covers. The last bucket of a run is usually cut
//! short by the end; when it covers under a third of its width it is merged into the one before,
//! because alone its rate is noise (one answer over 0.1 s reads as 10/s), and dropping it would
//! lose the burst of answers that often ends a run.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use super::svg::{
    Band, Bar, Chart, LegendItem, Line, Marker, PALETTE, TOTAL, XAxis, fmt_clock, fmt_ms, fmt_num,
};
use crate::record::RunStats;
use crate::series::{BackendRow, Row, Series};

/// Most backends drawn one by one; the rest are summed into one "other" line, because a chart
/// with 40 lines shows nothing.
pub(crate) const MAX_LINES: usize = 8;

/// A set of backends drawn as one line.
pub(crate) struct Group {
    pub name: String,
    pub color: String,
    pub members: Vec<usize>,
}

/// One line per backend, the busiest first, the rest together.
pub(crate) fn backend_groups(stats: &RunStats) -> Vec<Group> {
    let mut order: Vec<usize> = (0..stats.backends.len()).collect();
    if order.len() > MAX_LINES {
        order.sort_by_key(|&i| {
            std::cmp::Reverse(stats.backends[i].completion_tokens + stats.backends[i].ok)
        });
    }
    let shown = if order.len() > MAX_LINES {
        MAX_LINES - 1
    } else {
        order.len()
    };
    let mut groups: Vec<Group> = order[..shown]
        .iter()
        .enumerate()
        .map(|(k, &i)| Group {
            name: stats.backends[i].label.clone(),
            color: PALETTE[k % PALETTE.len()].into(),
            members: vec![i],
        })
        .collect();
    if shown < order.len() {
        let rest = order[shown..].to_vec();
        groups.push(Group {
            name: format!("{} other backends", rest.len()),
            color: "#8c8c8c".into(),
            members: rest,
        });
    }
    groups
}

/// A bucket's place on the time axis.
#[derive(Clone, Copy)]
struct Slot {
    x0: f64,
    x1: f64,
}

impl Slot {
    fn mid(self) -> f64 {
        (self.x0 + self.x1) / 2.0
    }
    fn rate(self, v: f64) -> Option<f64> {
        Some(v / (self.x1 - self.x0).max(1e-9))
    }
}

/// The buckets as drawn: each with the time it covers.
struct View {
    slots: Vec<Slot>,
    rows: Vec<Row>,
}

fn view(series: &Series, wall: f64) -> View {
    let w = series.width().as_secs_f64();
    let mut rows = series.rows().to_vec();
    let n = rows.len();
    let mut slots: Vec<Slot> = (0..n)
        .map(|i| {
            let x0 = i as f64 * w;
            let x1 = if i + 1 == n && wall > x0 {
                (x0 + w).min(wall)
            } else {
                x0 + w
            };
            Slot { x0, x1 }
        })
        .collect();
    if n >= 2 && slots[n - 1].x1 - slots[n - 1].x0 < w / 3.0 {
        let last = rows.pop().expect("n >= 2");
        rows[n - 2].merge(&last);
        slots[n - 2].x1 = slots[n - 1].x1;
        slots.pop();
    }
    View { slots, rows }
}

fn sum_rows<T: std::iter::Sum<T>>(row: &Row, members: &[usize], f: impl Fn(&BackendRow) -> T) -> T {
    members
        .iter()
        .filter_map(|&m| row.backends.get(m))
        .map(f)
        .sum()
}

fn x_max(series: &Series, wall: f64) -> f64 {
    let w = series.width().as_secs_f64();
    wall.max(series.rows().len() as f64 * w).max(1.0)
}

/// Output tokens/s over time: the total and each backend.
pub(crate) fn throughput(stats: &RunStats, groups: &[Group], wall: f64) -> Chart {
    let series = &stats.series;
    let View { slots, rows } = view(series, wall);
    let mut c = Chart::new(
        "throughput",
        "Output tokens per second",
        "tokens/s",
        XAxis::Time {
            max: x_max(series, wall),
        },
    );
    if groups.len() > 1 {
        let mut total = Line::new(
            "total",
            TOTAL,
            rows.iter()
                .zip(&slots)
                .map(|(r, s)| (s.mid(), s.rate(r.tokens as f64)))
                .collect(),
        );
        total.bold = true;
        c.line(total);
    }
    for g in groups {
        let pts = rows
            .iter()
            .zip(&slots)
            .map(|(r, s)| {
                (
                    s.mid(),
                    s.rate(sum_rows(r, &g.members, |b| b.tokens) as f64),
                )
            })
            .collect();
        c.line(Line::new(&g.name, &g.color, pts));
    }
    c.bands = bands(&slots, |i, s| {
        let r = &rows[i];
        let mut t = format!(
            "{}–{}: {} tok/s",
            fmt_clock(s.x0),
            fmt_clock(s.x1),
            rate_text(s, r.tokens as f64)
        );
        for g in groups {
            let _ = write!(
                t,
                "\n{}: {}",
                g.name,
                rate_text(s, sum_rows(r, &g.members, |b| b.tokens) as f64)
            );
        }
        t
    });
    c.empty = "no tokens generated".into();
    c
}

/// Finished tasks/s over time: the total and each backend.
pub(crate) fn tasks(stats: &RunStats, groups: &[Group], wall: f64) -> Chart {
    let series = &stats.series;
    let View { slots, rows } = view(series, wall);
    let mut c = Chart::new(
        "tasks",
        "Tasks answered per second",
        "tasks/s",
        XAxis::Time {
            max: x_max(series, wall),
        },
    );
    if groups.len() > 1 {
        let mut total = Line::new(
            "total",
            TOTAL,
            rows.iter()
                .zip(&slots)
                .map(|(r, s)| (s.mid(), s.rate(f64::from(r.completions))))
                .collect(),
        );
        total.bold = true;
        c.line(total);
    }
    for g in groups {
        let pts = rows
            .iter()
            .zip(&slots)
            .map(|(r, s)| {
                (
                    s.mid(),
                    s.rate(f64::from(sum_rows(r, &g.members, |b| b.completions))),
                )
            })
            .collect();
        c.line(Line::new(&g.name, &g.color, pts));
    }
    c.bands = bands(&slots, |i, s| {
        let r = &rows[i];
        let mut t = format!(
            "{}–{}: {} answered/s, {} failed",
            fmt_clock(s.x0),
            fmt_clock(s.x1),
            rate_text(s, f64::from(r.completions)),
            r.errors
        );
        for g in groups {
            let _ = write!(
                t,
                "\n{}: {}/s",
                g.name,
                rate_text(s, f64::from(sum_rows(r, &g.members, |b| b.completions)))
            );
        }
        t
    });
    c.empty = "no task answered".into();
    c
}

/// Requests in flight (solid) and the concurrency limit (dashed) per backend.
pub(crate) fn concurrency(stats: &RunStats, groups: &[Group], wall: f64) -> Chart {
    let series = &stats.series;
    let View { slots, rows } = view(series, wall);
    let mut c = Chart::new(
        "concurrency",
        "Requests in flight (solid) and concurrency limit (dashed)",
        "requests",
        XAxis::Time {
            max: x_max(series, wall),
        },
    );
    let mean_of = |r: &Row, g: &Group, f: fn(&BackendRow) -> Option<f32>| -> Option<f64> {
        let vals: Vec<f32> = g
            .members
            .iter()
            .filter_map(|&m| r.backends.get(m).and_then(f))
            .collect();
        (!vals.is_empty()).then(|| vals.iter().map(|v| f64::from(*v)).sum())
    };
    for g in groups {
        let mut l = Line::new(
            format!("{} in flight", g.name),
            &g.color,
            rows.iter()
                .zip(&slots)
                .map(|(r, s)| (s.mid(), mean_of(r, g, BackendRow::in_flight)))
                .collect(),
        );
        l.join_gaps = true;
        c.line(l);
        let limit: Vec<_> = rows
            .iter()
            .zip(&slots)
            .map(|(r, s)| (s.mid(), mean_of(r, g, BackendRow::limit)))
            .collect();
        if limit.iter().any(|p| p.1.is_some()) {
            let mut l = Line::new(format!("{} limit", g.name), &g.color, limit);
            l.dashed = true;
            l.join_gaps = true;
            c.line(l);
        }
    }
    c.bands = bands(&slots, |i, s| {
        let r = &rows[i];
        let mut t = format!("{}–{}", fmt_clock(s.x0), fmt_clock(s.x1));
        for g in groups {
            let f = mean_of(r, g, BackendRow::in_flight).map_or("-".into(), |v| format!("{v:.1}"));
            let l = mean_of(r, g, BackendRow::limit)
                .map_or(String::new(), |v| format!(" (limit {v:.0})"));
            let _ = write!(t, "\n{}: {f} in flight{l}", g.name);
        }
        t
    });
    c.empty = "no fleet samples (run shorter than a second)".into();
    c
}

/// Mean latency of answers over time per backend: the chart that shows which backend slowed.
pub(crate) fn latency_over_time(stats: &RunStats, groups: &[Group], wall: f64) -> Chart {
    let series = &stats.series;
    let View { slots, rows } = view(series, wall);
    let mut c = Chart::new(
        "latency-time",
        "Mean latency of answers over time",
        "seconds",
        XAxis::Time {
            max: x_max(series, wall),
        },
    );
    c.y_seconds = true;
    let mean = |r: &Row, g: &Group| -> Option<f64> {
        let n = sum_rows(r, &g.members, |b| b.completions);
        (n > 0).then(|| sum_rows(r, &g.members, |b| b.latency_sum) / f64::from(n))
    };
    for g in groups {
        let mut l = Line::new(
            &g.name,
            &g.color,
            rows.iter()
                .zip(&slots)
                .map(|(r, s)| (s.mid(), mean(r, g)))
                .collect(),
        );
        l.join_gaps = true;
        c.line(l);
    }
    c.bands = bands(&slots, |i, s| {
        let r = &rows[i];
        let mut t = format!("{}–{}", fmt_clock(s.x0), fmt_clock(s.x1));
        for g in groups {
            let _ = write!(
                t,
                "\n{}: {}",
                g.name,
                mean(r, g).map_or("-".into(), |v| fmt_ms(v * 1000.0))
            );
        }
        t
    });
    c.empty = "no task answered".into();
    c
}

/// Failed tasks per second over time, stacked by error code.
pub(crate) fn errors(stats: &RunStats, wall: f64) -> Chart {
    let series = &stats.series;
    let View { slots, rows } = view(series, wall);
    let mut c = Chart::new(
        "errors",
        "Failed tasks per second, by error code",
        "failures/s",
        XAxis::Time {
            max: x_max(series, wall),
        },
    );
    let mut codes: Vec<&'static str> = stats.errors.keys().copied().collect();
    if rows
        .iter()
        .any(|r| r.errors > r.error_codes.iter().map(|(_, n)| n).sum::<u32>())
    {
        codes.push("other");
    }
    for (r, s) in rows.iter().zip(&slots) {
        let dur = (s.x1 - s.x0).max(1e-9);
        let mut y = 0.0;
        for &code in &codes {
            let n = if code == "other" {
                r.errors - r.error_codes.iter().map(|(_, n)| n).sum::<u32>()
            } else {
                r.errors_of(code)
            };
            if n == 0 {
                continue;
            }
            let h = f64::from(n) / dur;
            c.bars.push(Bar {
                x0: s.x0,
                x1: s.x1,
                y0: y,
                y1: y + h,
                color: code_color(code).into(),
                tip: format!("{}–{}: {code} {n}", fmt_clock(s.x0), fmt_clock(s.x1)),
            });
            y += h;
        }
    }
    for &code in &codes {
        c.legend.push(LegendItem {
            name: code.into(),
            color: code_color(code).into(),
            dashed: false,
            block: true,
        });
    }
    c.bands = bands(&slots, |i, s| {
        let r = &rows[i];
        let mut t = format!(
            "{}–{}: {} failed",
            fmt_clock(s.x0),
            fmt_clock(s.x1),
            r.errors
        );
        for (code, n) in &r.error_codes {
            let _ = write!(t, "\n{code}: {n}");
        }
        t
    });
    c.empty = "no failed tasks".into();
    c
}

/// A colour per error code, stable across reports.
pub(crate) fn code_color(code: &str) -> &'static str {
    match code {
        "server_error" => "#e15759",
        "timeout" => "#f28e2b",
        "connection_error" => "#b07aa1",
        "rate_limited" => "#edc948",
        "invalid_response" => "#ff9da7",
        "invalid_request" => "#9c755f",
        "invalid_answer" => "#76b7b2",
        "invalid_input" => "#bab0ac",
        "duplicate_custom_id" => "#79706e",
        "no_backend" => "#4e79a7",
        _ => "#555555",
    }
}

fn rate_text(s: &Slot, v: f64) -> String {
    fmt_num((v / (s.x1 - s.x0).max(1e-9) * 10.0).round() / 10.0)
}

fn bands(slots: &[Slot], tip: impl Fn(usize, &Slot) -> String) -> Vec<Band> {
    slots
        .iter()
        .enumerate()
        .map(|(i, s)| Band {
            x0: s.x0,
            x1: s.x1,
            tip: tip(i, s),
        })
        .collect()
}

/// Log-spaced bins, ten per decade, spanning every histogram given (milliseconds).
pub(crate) struct Bins {
    lo: f64,
    step: f64,
    n: usize,
}

impl Bins {
    pub(crate) fn spanning<'a>(
        hists: impl IntoIterator<Item = &'a Histogram<u64>>,
    ) -> Option<Bins> {
        let (mut min, mut max) = (u64::MAX, 0u64);
        for h in hists {
            if !h.is_empty() {
                min = min.min(h.min());
                max = max.max(h.max());
            }
        }
        if max == 0 {
            return None;
        }
        let step = 0.1;
        let lo = ((min.max(1) as f64 / 1000.0).log10() / step).floor() * step;
        let mut hi = ((max as f64 / 1000.0).log10() / step).ceil() * step;
        if hi - lo < 1.0 {
            hi = lo + 1.0;
        }
        Some(Bins {
            lo,
            step,
            n: ((hi - lo) / step).round() as usize,
        })
    }

    fn hi(&self) -> f64 {
        self.lo + self.step * self.n as f64
    }

    fn edges(&self, k: usize) -> (f64, f64) {
        (
            10f64.powf(self.lo + self.step * k as f64),
            10f64.powf(self.lo + self.step * (k + 1) as f64),
        )
    }

    pub(crate) fn axis(&self) -> XAxis {
        XAxis::LogMs {
            lo: self.lo,
            hi: self.hi(),
        }
    }

    /// Counts per bin of a histogram of microseconds.
    pub(crate) fn counts(&self, h: &Histogram<u64>) -> Vec<u64> {
        let mut c = vec![0; self.n];
        for v in h.iter_recorded() {
            let ms = h.median_equivalent(v.value_iterated_to()) as f64 / 1000.0;
            let k = ((ms.max(1e-9).log10() - self.lo) / self.step).floor();
            let k = (k.max(0.0) as usize).min(self.n - 1);
            c[k] += v.count_at_value();
        }
        c
    }

    /// The histogram's outline (a step line), which overlays other histograms legibly.
    pub(crate) fn line(&self, name: &str, color: &str, counts: &[u64]) -> Line {
        let pts = counts
            .iter()
            .enumerate()
            .flat_map(|(k, &n)| {
                let (a, b) = self.edges(k);
                [(a, Some(n as f64)), (b, Some(n as f64))]
            })
            .collect();
        Line::new(name, color, pts)
    }
}

/// Latency histogram: bars for all answers, a line per backend, p50/p90/p99 markers.
pub(crate) fn latency_histogram(stats: &RunStats, groups: &[Group]) -> Chart {
    let per_backend: Vec<_> = stats.backends.iter().map(|b| b.latency_us()).collect();
    let hists: Vec<&Histogram<u64>> = per_backend
        .iter()
        .map(|h| &**h)
        .chain([&stats.latency_us])
        .collect();
    let Some(bins) = Bins::spanning(hists) else {
        let mut c = Chart::new(
            "latency",
            "Latency of answers",
            "tasks per bin",
            XAxis::LogMs { lo: 1.0, hi: 4.0 },
        );
        c.empty = "no task answered".into();
        return c;
    };
    let mut c = Chart::new(
        "latency",
        "Latency of answers (log scale)",
        "tasks per bin",
        bins.axis(),
    );
    let total = bins.counts(&stats.latency_us);
    for (k, &n) in total.iter().enumerate() {
        let (a, b) = bins.edges(k);
        c.bars.push(Bar {
            x0: a,
            x1: b,
            y0: 0.0,
            y1: n as f64,
            color: "#a0cbe8".into(),
            tip: format!("{}–{}: {n} tasks", fmt_ms(a), fmt_ms(b)),
        });
    }
    c.legend.push(LegendItem {
        name: "all backends".into(),
        color: "#a0cbe8".into(),
        dashed: false,
        block: true,
    });
    if groups.len() > 1 {
        for g in groups {
            let mut h = Histogram::<u64>::new_from(&stats.latency_us);
            for &m in &g.members {
                let _ = h.add(&*stats.backends[m].latency_us());
            }
            c.line(bins.line(&g.name, &g.color, &bins.counts(&h)));
        }
    }
    for (q, name) in [(0.5, "p50"), (0.9, "p90"), (0.99, "p99")] {
        let ms = stats.latency_us.value_at_quantile(q) as f64 / 1000.0;
        c.markers.push(Marker {
            x: ms,
            label: format!("{name} {}", fmt_ms(ms)),
        });
    }
    c
}

/// One bench run, for comparison charts.
pub(crate) struct RunLine<'a> {
    pub name: &'a str,
    pub stats: &'a RunStats,
    pub wall: f64,
    pub color: &'static str,
}

/// Bench: output tokens/s over time, one line per run.
pub(crate) fn bench_throughput(runs: &[RunLine]) -> Chart {
    let max = runs
        .iter()
        .map(|r| x_max(&r.stats.series, r.wall))
        .fold(1.0, f64::max);
    let mut c = Chart::new(
        "throughput",
        "Output tokens per second, by run",
        "tokens/s",
        XAxis::Time { max },
    );
    for r in runs {
        let View { slots, rows } = view(&r.stats.series, r.wall);
        let pts = rows
            .iter()
            .zip(&slots)
            .map(|(row, s)| (s.mid(), s.rate(row.tokens as f64)))
            .collect();
        c.line(Line::new(r.name, r.color, pts));
    }
    c
}

/// Bench: requests in flight over time (all backends), limit dashed where adaptive.
pub(crate) fn bench_concurrency(runs: &[RunLine]) -> Chart {
    let max = runs
        .iter()
        .map(|r| x_max(&r.stats.series, r.wall))
        .fold(1.0, f64::max);
    let mut c = Chart::new(
        "concurrency",
        "Requests in flight (solid) and sum of limits (dashed), by run",
        "requests",
        XAxis::Time { max },
    );
    for r in runs {
        let View { slots, rows } = view(&r.stats.series, r.wall);
        let sum = |row: &Row, f: fn(&BackendRow) -> Option<f32>| -> Option<f64> {
            let v: Vec<f32> = row.backends.iter().filter_map(f).collect();
            (!v.is_empty()).then(|| v.iter().map(|x| f64::from(*x)).sum())
        };
        let mut l = Line::new(
            format!("{} in flight", r.name),
            r.color,
            rows.iter()
                .zip(&slots)
                .map(|(row, s)| (s.mid(), sum(row, BackendRow::in_flight)))
                .collect(),
        );
        l.join_gaps = true;
        c.line(l);
        let limit: Vec<_> = rows
            .iter()
            .zip(&slots)
            .map(|(row, s)| (s.mid(), sum(row, BackendRow::limit)))
            .collect();
        if limit.iter().any(|p| p.1.is_some()) {
            let mut l = Line::new(format!("{} limit", r.name), r.color, limit);
            l.dashed = true;
            l.join_gaps = true;
            c.line(l);
        }
    }
    c.empty = "no fleet samples".into();
    c
}

/// Bench: latency histogram, one line per run.
pub(crate) fn bench_latency(runs: &[RunLine]) -> Chart {
    let Some(bins) = Bins::spanning(runs.iter().map(|r| &r.stats.latency_us)) else {
        let mut c = Chart::new(
            "latency",
            "Latency of answers",
            "tasks per bin",
            XAxis::LogMs { lo: 1.0, hi: 4.0 },
        );
        c.empty = "no task answered".into();
        return c;
    };
    let mut c = Chart::new(
        "latency",
        "Latency of answers by run (log scale)",
        "tasks per bin",
        bins.axis(),
    );
    for r in runs {
        c.line(bins.line(r.name, r.color, &bins.counts(&r.stats.latency_us)));
    }
    c
}

/// Bench: failed tasks per second over time, one line per run.
pub(crate) fn bench_errors(runs: &[RunLine]) -> Chart {
    let max = runs
        .iter()
        .map(|r| x_max(&r.stats.series, r.wall))
        .fold(1.0, f64::max);
    let mut c = Chart::new(
        "errors",
        "Failed tasks per second, by run",
        "failures/s",
        XAxis::Time { max },
    );
    for r in runs.iter().filter(|r| r.stats.failed > 0) {
        let View { slots, rows } = view(&r.stats.series, r.wall);
        let pts = rows
            .iter()
            .zip(&slots)
            .map(|(row, s)| (s.mid(), s.rate(f64::from(row.errors))))
            .collect();
        c.line(Line::new(r.name, r.color, pts));
    }
    c.empty = "no failed tasks".into();
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{FleetSample, Record, SampleBackend};
    use drover_types::{ErrorCode, Usage};
    use std::time::{Duration, Instant};

    fn stats(backends: usize) -> RunStats {
        let t0 = Instant::now();
        let mut s = RunStats::new(t0);
        for k in 0..100u64 {
            let b = (k as usize) % backends;
            let now = t0 + Duration::from_millis(k * 50);
            s.record(
                &Record {
                    backend: Some(b),
                    backend_label: Some(format!("10.0.0.{b}:8000").into()),
                    error: (k % 10 == 3).then_some(ErrorCode::Timeout),
                    latency: Some(Duration::from_millis(100 + 40 * b as u64 + k)),
                    ttft: None,
                    usage: Usage {
                        prompt_tokens: 5,
                        completion_tokens: 20,
                    },
                    attempts: 1,
                    hedged: false,
                },
                now,
            );
            if k % 20 == 0 {
                let sample = FleetSample {
                    backends: (0..backends)
                        .map(|i| SampleBackend {
                            label: format!("10.0.0.{i}:8000"),
                            in_flight: 3,
                            limit: Some(4),
                            state: "up",
                            ejections: 0,
                            engine: None,
                        })
                        .collect(),
                };
                s.sample(&sample, now, true);
            }
        }
        s
    }

    #[test]
    fn many_backends_fold_into_other() {
        let s = stats(12);
        let g = backend_groups(&s);
        assert_eq!(g.len(), MAX_LINES);
        assert_eq!(g.last().unwrap().name, "5 other backends");
        let members: usize = g.iter().map(|g| g.members.len()).sum();
        assert_eq!(members, 12);
    }

    #[test]
    fn throughput_rates_add_up() {
        let s = stats(2);
        let g = backend_groups(&s);
        let c = throughput(&s, &g, 5.0);
        assert_eq!(c.lines.len(), 3, "total + 2 backends");
        // 20 tasks a second, 90% answered, 20 tokens each: 360 tok/s in full buckets.
        let total = &c.lines[0];
        assert_eq!(total.points[1].1, Some(360.0));
        let parts: f64 = c.lines[1..].iter().map(|l| l.points[1].1.unwrap()).sum();
        assert_eq!(parts, 360.0);
    }

    #[test]
    fn a_short_last_bucket_joins_the_one_before() {
        let t0 = Instant::now();
        let mut s = RunStats::new(t0);
        // One answer at 0.5 s, then a burst of nine at 1.05 s; the run ends at 1.1 s.
        for (k, ms) in std::iter::once(500u64)
            .chain(std::iter::repeat_n(1050, 9))
            .enumerate()
        {
            let r = Record {
                backend: Some(0),
                backend_label: Some("a:1".into()),
                error: None,
                latency: Some(Duration::from_millis(100 + k as u64)),
                ttft: None,
                usage: Usage {
                    prompt_tokens: 1,
                    completion_tokens: 20,
                },
                attempts: 1,
                hedged: false,
            };
            s.record(&r, t0 + Duration::from_millis(ms));
        }
        let c = throughput(&s, &backend_groups(&s), 1.1);
        assert_eq!(c.lines.len(), 1, "one backend: no separate total");
        let pts = &c.lines[0].points;
        assert_eq!(pts.len(), 1);
        assert!((pts[0].1.unwrap() - 200.0 / 1.1).abs() < 1e-9, "{pts:?}");
    }

    #[test]
    fn errors_stack_by_code_and_histogram_counts_every_answer() {
        let s = stats(2);
        let e = errors(&s, 5.0);
        let failures: f64 = e.bars.iter().map(|b| (b.y1 - b.y0) * (b.x1 - b.x0)).sum();
        assert!((failures - 10.0).abs() < 1e-9, "{failures}");
        assert!(e.bars.iter().all(|b| b.color == code_color("timeout")));
        let h = latency_histogram(&s, &backend_groups(&s));
        let answered: f64 = h.bars.iter().map(|b| b.y1).sum();
        assert_eq!(answered, 90.0);
        assert_eq!(h.markers.len(), 3);
        let c = concurrency(&s, &backend_groups(&s), 5.0);
        assert!(c.lines.iter().any(|l| l.dashed), "limits drawn");
    }
}
