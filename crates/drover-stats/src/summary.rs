//! The end-of-run summary: printed as a table, written as JSON with `--summary FILE`.
//! The JSON's shape is a contract, described by `docs/summary.schema.json` (checked in tests).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::record::RunStats;

/// Facts about the run the statistics do not hold.
#[derive(Debug, Clone, Default)]
pub struct SummaryInfo {
    /// `serial`, `concurrent` or `adaptive`.
    pub mode: String,
    /// Total in-flight cap (serial: 1, concurrent: N), if any.
    pub concurrency: Option<usize>,
    /// Model name, if known.
    pub model: Option<String>,
    /// Input path (`-` for stdin).
    pub input: String,
    /// Output path.
    pub output: String,
    /// Wall-clock start.
    pub started_at: Option<SystemTime>,
    /// Wall time.
    pub wall: Duration,
    /// Lines skipped because a resumed output already had them.
    pub skipped_done: u64,
    /// Tasks read but not finished (interrupted; resumable).
    pub unfinished: u64,
    /// Retries scheduled.
    pub retries: u64,
    /// Hedges sent.
    pub hedges: u64,
    /// Whether the run was interrupted.
    pub interrupted: bool,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Mean.
    pub mean: f64,
    /// Maximum.
    pub max: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Option<Percentiles> {
        if h.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Percentiles {
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            mean: h.mean() / 1000.0,
            max: ms(h.max()),
        })
    }
}

/// Task counts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tasks {
    /// Records written by this run.
    pub finished: u64,
    /// Successful records.
    pub succeeded: u64,
    /// Failed records (bad input included).
    pub failed: u64,
    /// Skipped: already in the resumed output.
    pub skipped_done: u64,
    /// Read but not finished (interrupted).
    pub unfinished: u64,
}

/// Throughput.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Throughput {
    /// Finished tasks per second.
    pub tasks_per_s: f64,
    /// Prompt tokens per second.
    pub prompt_tokens_per_s: f64,
    /// Generated tokens per second.
    pub output_tokens_per_s: f64,
}

/// One backend's line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BackendSummary {
    /// Label (host:port).
    pub backend: String,
    /// Engine, if known.
    pub engine: Option<String>,
    /// Tasks answered here.
    pub succeeded: u64,
    /// Tasks whose final attempt failed here.
    pub failed: u64,
    /// Share of all answered tasks, 0–1.
    pub share: f64,
    /// Generated tokens.
    pub output_tokens: u64,
    /// Generated tokens per second of wall time.
    pub output_tokens_per_s: f64,
    /// Latency of answered attempts.
    pub latency_ms: Option<Percentiles>,
    /// Time to first token (streamed answers).
    pub ttft_ms: Option<Percentiles>,
    /// Failures by code.
    pub errors: BTreeMap<String, u64>,
    /// Times ejected.
    pub ejections: u64,
    /// Limit at the end (adaptive mode).
    pub final_limit: Option<u64>,
    /// Mean requests in flight while it had work.
    pub mean_in_flight: f64,
}

/// The summary.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// drover's version.
    pub drover_version: String,
    /// Mode.
    pub mode: String,
    /// Total in-flight cap, if the mode has one.
    pub concurrency: Option<u64>,
    /// Model.
    pub model: Option<String>,
    /// Input path.
    pub input: String,
    /// Output path.
    pub output: String,
    /// RFC 3339 start time.
    pub started_at: Option<String>,
    /// Wall time, seconds.
    pub wall_seconds: f64,
    /// Whether the run was interrupted.
    pub interrupted: bool,
    /// Counts.
    pub tasks: Tasks,
    /// Failures by code.
    pub errors: BTreeMap<String, u64>,
    /// Tokens.
    pub prompt_tokens: u64,
    /// Tokens.
    pub output_tokens: u64,
    /// Rates.
    pub throughput: Throughput,
    /// Latency over all answered tasks.
    pub latency_ms: Option<Percentiles>,
    /// Retries scheduled.
    pub retries: u64,
    /// Hedges sent.
    pub hedges: u64,
    /// Per backend.
    pub backends: Vec<BackendSummary>,
    /// Structured-answer aggregates (with `--schema`), field → counts or stats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answers: Option<serde_json::Value>,
}

impl Summary {
    /// Builds the summary.
    pub fn build(stats: &RunStats, info: &SummaryInfo) -> Summary {
        let wall = info.wall.as_secs_f64().max(1e-9);
        let answered: u64 = stats.backends.iter().map(|b| b.ok).sum();
        let backends = stats
            .backends
            .iter()
            .map(|b| BackendSummary {
                backend: b.label.clone(),
                engine: b.engine.map(str::to_string),
                succeeded: b.ok,
                failed: b.failed,
                share: if answered > 0 {
                    b.ok as f64 / answered as f64
                } else {
                    0.0
                },
                output_tokens: b.completion_tokens,
                output_tokens_per_s: b.completion_tokens as f64 / wall,
                latency_ms: Percentiles::of(&b.latency_us()),
                ttft_ms: b.ttft_us().and_then(|h| Percentiles::of(&h)),
                errors: b.errors.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
                ejections: b.ejections,
                final_limit: b.last_limit.map(|l| l as u64),
                mean_in_flight: if b.in_flight_samples > 0 {
                    b.in_flight_sum as f64 / b.in_flight_samples as f64
                } else {
                    0.0
                },
            })
            .collect();
        Summary {
            drover_version: env!("CARGO_PKG_VERSION").to_string(),
            mode: info.mode.clone(),
            concurrency: info.concurrency.map(|c| c as u64),
            model: info.model.clone(),
            input: info.input.clone(),
            output: info.output.clone(),
            started_at: info
                .started_at
                .map(|t| humantime::format_rfc3339_millis(t).to_string()),
            wall_seconds: info.wall.as_secs_f64(),
            interrupted: info.interrupted,
            tasks: Tasks {
                finished: stats.done(),
                succeeded: stats.ok,
                failed: stats.failed,
                skipped_done: info.skipped_done,
                unfinished: info.unfinished,
            },
            errors: stats
                .errors
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            prompt_tokens: stats.prompt_tokens,
            output_tokens: stats.completion_tokens,
            throughput: Throughput {
                tasks_per_s: stats.done() as f64 / wall,
                prompt_tokens_per_s: stats.prompt_tokens as f64 / wall,
                output_tokens_per_s: stats.completion_tokens as f64 / wall,
            },
            latency_ms: Percentiles::of(&stats.latency_us),
            retries: info.retries,
            hedges: info.hedges,
            backends,
            answers: None,
        }
    }

    /// The terminal rendering.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let t = &self.tasks;
        let _ = writeln!(
            s,
            "done: {} ok, {} failed{} in {} — {:.1} tasks/s, {:.0} output tok/s, {:.0} prompt tok/s",
            t.succeeded,
            t.failed,
            if t.skipped_done > 0 {
                format!(" ({} already done)", t.skipped_done)
            } else {
                String::new()
            },
            fmt_secs(self.wall_seconds),
            self.throughput.tasks_per_s,
            self.throughput.output_tokens_per_s,
            self.throughput.prompt_tokens_per_s,
        );
        if !self.errors.is_empty() {
            let list: Vec<String> = self
                .errors
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            let _ = writeln!(s, "errors: {}", list.join(", "));
        }
        if self.retries > 0 || self.hedges > 0 {
            let _ = writeln!(s, "retries: {}, hedges: {}", self.retries, self.hedges);
        }
        if self.backends.is_empty() {
            return s;
        }
        // "in flight" (mean while it had work) and "limit" (adaptive mode, at the end) are the
        // concurrency each backend settled at.
        let _ = writeln!(
            s,
            "{:<24} {:>8} {:>6} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>6} {:>6}",
            "backend",
            "tasks",
            "share",
            "out tok/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "ttft p50",
            "in flight",
            "limit",
            "failed"
        );
        for b in &self.backends {
            let p = |f: fn(&Percentiles) -> f64| {
                b.latency_ms
                    .as_ref()
                    .map_or("-".into(), |l| format!("{:.0}", f(l)))
            };
            let errors: u64 = b.errors.values().sum();
            let mut notes: Vec<String> = b.errors.iter().map(|(k, v)| format!("{k} {v}")).collect();
            if b.ejections > 0 {
                notes.push(format!(
                    "{} ejection{}",
                    b.ejections,
                    if b.ejections == 1 { "" } else { "s" }
                ));
            }
            let _ = writeln!(
                s,
                "{:<24} {:>8} {:>5.1}% {:>9.0} {:>8} {:>8} {:>8} {:>8} {:>9.1} {:>6} {:>6}{}",
                truncate(&b.backend, 24),
                b.succeeded,
                b.share * 100.0,
                b.output_tokens_per_s,
                p(|l| l.p50),
                p(|l| l.p90),
                p(|l| l.p99),
                b.ttft_ms
                    .as_ref()
                    .map_or("-".into(), |l| format!("{:.0}", l.p50)),
                b.mean_in_flight,
                b.final_limit.map_or("-".into(), |l| l.to_string()),
                errors,
                if notes.is_empty() {
                    String::new()
                } else {
                    format!("  ({})", notes.join(", "))
                },
            );
        }
        s
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

/// `12.3s`, `4m05s`, `1h02m`.
pub fn fmt_secs(secs: f64) -> String {
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else if secs < 3600.0 {
        format!("{}m{:02}s", (secs / 60.0) as u64, (secs % 60.0) as u64)
    } else {
        format!(
            "{}h{:02}m",
            (secs / 3600.0) as u64,
            ((secs % 3600.0) / 60.0) as u64
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Record, RunStats};
    use drover_types::{ErrorCode, Usage};
    use std::time::Instant;

    fn sample() -> Summary {
        let t = Instant::now();
        let mut stats = RunStats::new(t);
        for i in 0..10u64 {
            stats.record(
                &Record {
                    backend: Some((i % 2) as usize),
                    backend_label: Some(format!("127.0.0.1:800{}", i % 2).into()),
                    error: (i == 3).then_some(ErrorCode::Timeout),
                    latency: Some(Duration::from_millis(100 + i * 10)),
                    ttft: Some(Duration::from_millis(5)),
                    usage: Usage {
                        prompt_tokens: 20,
                        completion_tokens: 30,
                    },
                    attempts: 1,
                    hedged: false,
                },
                t,
            );
        }
        let info = SummaryInfo {
            mode: "adaptive".into(),
            input: "in.jsonl".into(),
            output: "out.jsonl".into(),
            started_at: Some(SystemTime::now()),
            wall: Duration::from_secs(2),
            ..SummaryInfo::default()
        };
        Summary::build(&stats, &info)
    }

    #[test]
    fn summary_counts_and_renders() {
        let s = sample();
        assert_eq!((s.tasks.succeeded, s.tasks.failed), (9, 1));
        assert_eq!(s.errors["timeout"], 1);
        assert!((s.throughput.tasks_per_s - 5.0).abs() < 1e-9);
        assert_eq!(s.backends.len(), 2);
        let share: f64 = s.backends.iter().map(|b| b.share).sum();
        assert!((share - 1.0).abs() < 1e-9);
        let text = s.to_text();
        assert!(text.contains("9 ok, 1 failed"), "{text}");
        assert!(text.contains("127.0.0.1:8001"), "{text}");
        // The backend that failed a task says with which code.
        let line = text
            .lines()
            .find(|l| l.starts_with("127.0.0.1:8001"))
            .unwrap();
        assert!(line.ends_with("(timeout 1)"), "{line}");
        assert!(
            text.lines()
                .any(|l| l.contains("in flight") && l.contains("limit") && l.contains("ttft p50")),
            "{text}"
        );
    }

    #[test]
    fn summary_json_matches_its_documented_schema() {
        let schema_text = include_str!("../../../docs/summary.schema.json");
        let schema: serde_json::Value = serde_json::from_str(schema_text).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let value = serde_json::to_value(sample()).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{errors:#?}");
        // The schema is strict: an undocumented field fails it.
        let mut extra = value.clone();
        extra["surprise"] = serde_json::json!(1);
        assert!(!validator.is_valid(&extra));
    }
}
