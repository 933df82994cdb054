//! The Prometheus text exposition (format 0.0.4) of a running job, for `--metrics-addr`.
//!
//! Pure rendering: the caller takes the statistics lock and a copy of the fleet, this module
//! turns them into text. Every metric name lives here (and in `docs/observe.md` and the Grafana
//! dashboard that query them). Names follow Prometheus conventions: a `drover_` prefix, base
//! units (seconds), `_total` on counters.
//!
//! The request-duration histogram is derived from the run's HDR histograms at scrape time, so
//! recording a task costs nothing extra; bucket counts are exact to the HDR precision (3
//! significant digits), which is far finer than the bucket bounds.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::record::{RunStats, SampleBackend};

/// Upper bounds of the duration histograms, seconds. LLM calls span milliseconds (a cached
/// short answer) to minutes (long generations on a saturated server).
pub const DURATION_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0,
];

/// What the statistics do not hold: the dispatcher's live view.
#[derive(Debug, Clone, Default)]
pub struct LiveFleet {
    /// Backends by index (in flight, limit, state, ejections).
    pub backends: Vec<SampleBackend>,
    /// Requests in flight, all backends.
    pub in_flight: usize,
    /// Tasks read and waiting to be sent (or to be retried).
    pub queued: usize,
    /// Retries scheduled so far.
    pub retries: u64,
    /// Hedges sent so far.
    pub hedges: u64,
    /// Tasks the input holds (0 when unknown, e.g. stdin).
    pub tasks_expected: u64,
    /// Seconds since the run started.
    pub elapsed_seconds: f64,
}

/// Renders the exposition.
pub fn render(stats: &RunStats, live: &LiveFleet) -> String {
    let mut out = Out(String::with_capacity(4096));

    out.family("drover_build_info", "gauge", "drover's version (always 1).");
    out.sample(
        "drover_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
    out.family(
        "drover_run_elapsed_seconds",
        "gauge",
        "Seconds since the run started.",
    );
    out.sample("drover_run_elapsed_seconds", &[], live.elapsed_seconds);

    out.family(
        "drover_tasks_total",
        "counter",
        "Tasks finished (a record written), by status.",
    );
    out.sample("drover_tasks_total", &[("status", "ok")], stats.ok as f64);
    out.sample(
        "drover_tasks_total",
        &[("status", "failed")],
        stats.failed as f64,
    );
    out.family(
        "drover_tasks_failed_total",
        "counter",
        "Failed tasks by error code (the code in the output record).",
    );
    for (code, n) in &stats.errors {
        out.sample("drover_tasks_failed_total", &[("code", code)], *n as f64);
    }
    out.family(
        "drover_tasks_expected",
        "gauge",
        "Tasks in the input (0 when unknown, e.g. stdin).",
    );
    out.sample("drover_tasks_expected", &[], live.tasks_expected as f64);
    out.family(
        "drover_tasks_queued",
        "gauge",
        "Tasks read but not sent yet (waiting for a slot or a retry).",
    );
    out.sample("drover_tasks_queued", &[], live.queued as f64);
    out.family(
        "drover_in_flight",
        "gauge",
        "Requests in flight, all backends.",
    );
    out.sample("drover_in_flight", &[], live.in_flight as f64);
    out.family(
        "drover_retries_total",
        "counter",
        "Retries scheduled (transient failures, ejections).",
    );
    out.sample("drover_retries_total", &[], live.retries as f64);
    out.family("drover_hedges_total", "counter", "Tail hedges sent.");
    out.sample("drover_hedges_total", &[], live.hedges as f64);
    out.family(
        "drover_hedge_wins_total",
        "counter",
        "Answers that came from a hedge.",
    );
    out.sample("drover_hedge_wins_total", &[], stats.hedge_wins as f64);
    out.family(
        "drover_prompt_tokens_total",
        "counter",
        "Prompt tokens of answered tasks.",
    );
    out.sample(
        "drover_prompt_tokens_total",
        &[],
        stats.prompt_tokens as f64,
    );
    out.family(
        "drover_output_tokens_total",
        "counter",
        "Generated tokens of answered tasks.",
    );
    out.sample(
        "drover_output_tokens_total",
        &[],
        stats.completion_tokens as f64,
    );

    // Per backend: the fleet view knows every backend, the statistics only those that finished
    // a task; take the union by index.
    let n = live.backends.len().max(stats.backends.len());
    let label = |i: usize| -> &str {
        live.backends
            .get(i)
            .map(|b| b.label.as_str())
            .filter(|l| !l.is_empty())
            .or_else(|| stats.backends.get(i).map(|b| b.label.as_str()))
            .unwrap_or("")
    };
    out.family(
        "drover_backend_up",
        "gauge",
        "1 while the backend takes work, 0 while ejected, probed, draining or removed.",
    );
    for (i, b) in live.backends.iter().enumerate() {
        out.sample(
            "drover_backend_up",
            &[("backend", label(i)), ("state", b.state)],
            f64::from(u8::from(b.state == "up")),
        );
    }
    out.family(
        "drover_backend_in_flight",
        "gauge",
        "drover's requests in flight to the backend.",
    );
    for (i, b) in live.backends.iter().enumerate() {
        out.sample(
            "drover_backend_in_flight",
            &[("backend", label(i))],
            b.in_flight as f64,
        );
    }
    out.family(
        "drover_backend_limit",
        "gauge",
        "The backend's concurrency limit (adaptive mode; absent without one).",
    );
    for (i, b) in live.backends.iter().enumerate() {
        if let Some(l) = b.limit {
            out.sample("drover_backend_limit", &[("backend", label(i))], l as f64);
        }
    }
    out.family(
        "drover_backend_ejections_total",
        "counter",
        "Times the backend was taken out of rotation.",
    );
    for (i, b) in live.backends.iter().enumerate() {
        out.sample(
            "drover_backend_ejections_total",
            &[("backend", label(i))],
            b.ejections as f64,
        );
    }
    out.family(
        "drover_backend_tasks_total",
        "counter",
        "Tasks whose final attempt went to the backend, by status.",
    );
    for (i, b) in stats.backends.iter().enumerate() {
        out.sample(
            "drover_backend_tasks_total",
            &[("backend", label(i)), ("status", "ok")],
            b.ok as f64,
        );
        out.sample(
            "drover_backend_tasks_total",
            &[("backend", label(i)), ("status", "failed")],
            b.failed as f64,
        );
    }
    out.family(
        "drover_backend_output_tokens_total",
        "counter",
        "Generated tokens of tasks the backend answered.",
    );
    for i in 0..n {
        let tokens = stats.backends.get(i).map_or(0, |b| b.completion_tokens);
        out.sample(
            "drover_backend_output_tokens_total",
            &[("backend", label(i))],
            tokens as f64,
        );
    }
    out.family(
        "drover_request_duration_seconds",
        "histogram",
        "Wall time of the attempt that answered a task, by backend.",
    );
    for (i, b) in stats.backends.iter().enumerate() {
        out.histogram("drover_request_duration_seconds", label(i), &b.latency_us());
    }
    out.family(
        "drover_time_to_first_token_seconds",
        "histogram",
        "Time to the first generated token of streamed answers, by backend.",
    );
    for (i, b) in stats.backends.iter().enumerate() {
        if let Some(ttft) = b.ttft_us().filter(|h| !h.is_empty()) {
            out.histogram("drover_time_to_first_token_seconds", label(i), &ttft);
        }
    }
    out.0
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (k, (key, v)) in labels.iter().enumerate() {
                if k > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{key}=\"{}\"", escape_label(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {}", fmt_value(value));
    }

    /// Cumulative buckets from an HDR histogram of microseconds.
    fn histogram(&mut self, name: &str, backend: &str, h: &Histogram<u64>) {
        let mut counts = vec![0u64; DURATION_BUCKETS.len()];
        let mut sum_us = 0.0;
        for v in h.iter_recorded() {
            let us = h.median_equivalent(v.value_iterated_to());
            let c = v.count_at_value();
            sum_us += us as f64 * c as f64;
            if let Some(k) = DURATION_BUCKETS.iter().position(|le| us as f64 <= le * 1e6) {
                counts[k] += c;
            }
        }
        let mut cumulative = 0;
        let bucket = format!("{name}_bucket");
        for (le, c) in DURATION_BUCKETS.iter().zip(&counts) {
            cumulative += c;
            self.sample(
                &bucket,
                &[("backend", backend), ("le", &fmt_value(*le))],
                cumulative as f64,
            );
        }
        self.sample(
            &bucket,
            &[("backend", backend), ("le", "+Inf")],
            h.len() as f64,
        );
        self.sample(
            &format!("{name}_sum"),
            &[("backend", backend)],
            sum_us / 1e6,
        );
        self.sample(
            &format!("{name}_count"),
            &[("backend", backend)],
            h.len() as f64,
        );
    }
}

/// Label values escape `\`, `"` and newlines (exposition format).
fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// Integers without a fraction, others as Rust prints them (shortest round-trip form); the
/// format's spelling of infinities and NaN.
fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;
    use drover_types::{ErrorCode, Usage};
    use std::time::{Duration, Instant};

    fn stats() -> RunStats {
        let t = Instant::now();
        let mut s = RunStats::new(t);
        for (i, ms) in [20u64, 80, 300, 2000].iter().enumerate() {
            s.record(
                &Record {
                    backend: Some(i % 2),
                    backend_label: Some(format!("h\"{}:80", i % 2).into()),
                    error: None,
                    latency: Some(Duration::from_millis(*ms)),
                    ttft: (i == 0).then(|| Duration::from_millis(5)),
                    usage: Usage {
                        prompt_tokens: 3,
                        completion_tokens: 10,
                    },
                    attempts: 1,
                    hedged: false,
                },
                t,
            );
        }
        s.record(
            &Record {
                backend: Some(1),
                backend_label: Some("h\"1:80".into()),
                error: Some(ErrorCode::Timeout),
                latency: None,
                ttft: None,
                usage: Usage::default(),
                attempts: 3,
                hedged: false,
            },
            t,
        );
        s
    }

    fn live() -> LiveFleet {
        let b = |label: &str, in_flight, limit| SampleBackend {
            label: label.into(),
            in_flight,
            limit,
            state: "up",
            ejections: 1,
            engine: None,
        };
        LiveFleet {
            backends: vec![
                b("h\"0:80", 3, Some(8)),
                b("h\"1:80", 0, None),
                b("late:1", 0, None),
            ],
            in_flight: 3,
            queued: 7,
            retries: 2,
            hedges: 1,
            tasks_expected: 100,
            elapsed_seconds: 1.5,
        }
    }

    fn value(text: &str, line_start: &str) -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(line_start))
            .unwrap_or_else(|| panic!("no {line_start} in\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }

    #[test]
    fn counters_gauges_and_escaped_labels() {
        let text = render(&stats(), &live());
        assert_eq!(value(&text, "drover_tasks_total{status=\"ok\"}"), 4.0);
        assert_eq!(value(&text, "drover_tasks_total{status=\"failed\"}"), 1.0);
        assert_eq!(
            value(&text, "drover_tasks_failed_total{code=\"timeout\"}"),
            1.0
        );
        assert_eq!(
            value(&text, "drover_backend_in_flight{backend=\"h\\\"0:80\"}"),
            3.0
        );
        assert_eq!(
            value(&text, "drover_backend_limit{backend=\"h\\\"0:80\"}"),
            8.0
        );
        assert!(
            !text.contains("drover_backend_limit{backend=\"h\\\"1:80\"}"),
            "no limit, no sample"
        );
        assert_eq!(
            value(
                &text,
                "drover_backend_output_tokens_total{backend=\"late:1\"}"
            ),
            0.0
        );
        assert_eq!(
            value(
                &text,
                "drover_backend_output_tokens_total{backend=\"h\\\"1:80\"}"
            ),
            20.0
        );
        assert_eq!(value(&text, "drover_retries_total "), 2.0);
        assert_eq!(value(&text, "drover_tasks_queued "), 7.0);
        // Every sample line belongs to a family declared before it.
        let mut declared = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                declared.insert(rest.split(' ').next().unwrap().to_string());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .filter(|f| declared.contains(*f));
                assert!(
                    declared.contains(name) || family.is_some(),
                    "undeclared {name}"
                );
            }
        }
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_match_the_count() {
        let text = render(&stats(), &live());
        let b0 = "drover_request_duration_seconds_bucket{backend=\"h\\\"0:80\",le=";
        // Backend 0 answered in 20 ms and 300 ms.
        assert_eq!(value(&text, &format!("{b0}\"0.01\"}}")), 0.0);
        assert_eq!(value(&text, &format!("{b0}\"0.025\"}}")), 1.0);
        assert_eq!(value(&text, &format!("{b0}\"0.25\"}}")), 1.0);
        assert_eq!(value(&text, &format!("{b0}\"0.5\"}}")), 2.0);
        assert_eq!(value(&text, &format!("{b0}\"+Inf\"}}")), 2.0);
        assert_eq!(
            value(
                &text,
                "drover_request_duration_seconds_count{backend=\"h\\\"0:80\"}"
            ),
            2.0
        );
        let sum = value(
            &text,
            "drover_request_duration_seconds_sum{backend=\"h\\\"0:80\"}",
        );
        assert!((sum - 0.32).abs() < 0.001, "{sum}");
        assert_eq!(
            value(
                &text,
                "drover_time_to_first_token_seconds_count{backend=\"h\\\"0:80\"}"
            ),
            1.0
        );
        assert!(!text.contains("drover_time_to_first_token_seconds_count{backend=\"h\\\"1:80\"}"));
    }

    /// The dashboard and the docs query and describe these names: renaming one here must fail
    /// until they follow.
    #[test]
    fn dashboard_and_docs_name_only_metrics_that_exist() {
        let text = render(&stats(), &live());
        let families: std::collections::BTreeSet<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        let known = |name: &str| {
            families.contains(name)
                || ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| name.strip_suffix(s).is_some_and(|f| families.contains(f)))
        };
        fn exprs<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
            match v {
                serde_json::Value::Object(m) => {
                    for (k, v) in m {
                        match (k.as_str(), v.as_str()) {
                            ("expr", Some(e)) => out.push(e),
                            _ => exprs(v, out),
                        }
                    }
                }
                serde_json::Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
                _ => {}
            }
        }
        let dashboard: serde_json::Value =
            serde_json::from_str(include_str!("../../../docs/grafana-dashboard.json")).unwrap();
        let mut found = Vec::new();
        exprs(&dashboard, &mut found);
        let mut used = std::collections::BTreeSet::new();
        for e in &found {
            // Grafana fills these in before the query reaches Prometheus.
            let query = e
                .replace("$__rate_interval", "1m")
                .replace("$instance", ".*");
            if let Err(why) = promql_parser::parser::parse(&query) {
                panic!("the dashboard's query is not PromQL: {e}: {why}");
            }
            let mut rest = *e;
            while let Some(i) = rest.find("drover_") {
                let name: String = rest[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    known(&name),
                    "the dashboard queries {name}, which drover does not export: {e}"
                );
                used.insert(name.clone());
                rest = &rest[i + name.len()..];
            }
        }
        assert!(used.len() >= 12, "{used:?}");
        let docs = include_str!("../../../docs/observe.md");
        for f in &families {
            assert!(
                docs.contains(&format!("`{f}`")),
                "docs/observe.md does not describe {f}"
            );
        }
    }

    #[test]
    fn values_are_formatted_for_the_text_format() {
        assert_eq!(fmt_value(3.0), "3");
        assert_eq!(fmt_value(0.25), "0.25");
        assert_eq!(fmt_value(f64::INFINITY), "+Inf");
        assert_eq!(escape_label("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    }
}
